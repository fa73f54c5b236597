/*
 * bench_tree.c — `deftree bench tree`: whole tree-decoding steps on the CPU
 * with the default model, for each attention algorithm.
 *
 * Workloads: the few-shot shape (one prompt of --prompt tokens, --branches
 * branches decoding together) and one reasoning replay (a Graph-of-Thoughts
 * tree from shared/workloads: its prompt and its branches as the file gives
 * them).  For each algorithm the same replay runs with the same seed (so the
 * same tokens): --warmup steps, then --steps measured steps.  Reported per
 * step: wall time and attention time (medians), the attention share, and the
 * plan's IO model (KV bytes and all bytes, fp32 K/V, all layers) beside what
 * `seq` reads for the same queries.  Times are CPU figures of this machine.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "engine.h"
#include "gen.h"
#include "metrics.h"
#include "model.h"
#include "workload.h"

int bench_tree_main(int argc, char **argv);

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deftree bench tree [options]\n"
		"  -m, --model PATH      GGUF model (default: $DEFTREE_MODEL or the bundled\n"
		"                        %s)\n"
		"      --steps N         measured steps per algorithm and workload (default 8)\n"
		"      --warmup N        steps before measuring (default 2)\n"
		"      --prompt N        few-shot prompt tokens (default 1000)\n"
		"      --branches B      few-shot branches (default 20)\n"
		"      --reasoning FILE  reasoning workload (default: deft/sorting128ToT.json under\n"
		"                        $DEFTREE_WORKLOADS or shared/workloads beside the sources)\n"
		"      --tree N          which reasoning tree (default 0)\n"
		"      --algo LIST       comma-separated algorithms (default seq,deft-node,deft-flatten,tree-mask)\n"
		"  -t, --threads N       CPU threads (default %d)\n"
		"      --json FILE       the figures as JSON\n",
		DT_DEFAULT_MODEL_FILE, dt_ncpu());
}

/* shared/workloads/deft/NAME: $DEFTREE_WORKLOADS, beside the binary, the
 * source tree this file was compiled from, the current directory. */
static bool find_workload(const char *name, char *out, size_t n)
{
	const char *env = getenv("DEFTREE_WORKLOADS");
	if (env && *env) {
		snprintf(out, n, "%s/deft/%s", env, name);
		if (access(out, R_OK) == 0)
			return true;
	}
	char exe[PATH_MAX] = ".", src[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k > 0) {
		exe[k] = 0;
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
	}
	snprintf(src, sizeof(src), "%s", __FILE__);
	char *s = strstr(src, "src/bench_tree.c");
	if (s)
		*s = 0;
	const char *bases[] = { exe, src[0] == '/' ? src : ".", "." };
	for (size_t b = 0; b < DT_ARRAY_LEN(bases); b++) {
		const char *base = bases[b][0] ? bases[b] : ".";
		snprintf(out, n, "%s/../shared/workloads/deft/%s", base, name);
		if (access(out, R_OK) == 0)
			return true;
		snprintf(out, n, "%s/../../shared/workloads/deft/%s", base, name);
		if (access(out, R_OK) == 0)
			return true;
	}
	snprintf(out, n, "shared/workloads/deft/%s", name);
	return access(out, R_OK) == 0;
}

struct figures {
	char workload[96];
	enum treeplan_algo algo;
	int64_t steps, queries;
	int64_t step_p50, attn_p50;
	double attn_share;
	double kv, kv_seq, io, io_seq; /* bytes per step, means */
	double tree_tokens;            /* tokens in the tree at the last step */
};

static int measure(const struct engine_params *ep, const struct workload *w, int32_t index, int32_t warmup,
		   int32_t steps, struct figures *f, char *err)
{
	struct engine *e = engine_new(ep, err);
	if (!e)
		return -1;
	int rc = engine_replay_begin(e, w, index, 1000, err);
	for (int32_t i = 0; i < warmup && rc == 0; i++)
		rc = engine_step(e, err);
	int64_t first = metrics_n_steps(engine_metrics(e));
	for (int32_t i = 0; i < steps && rc == 0; i++)
		rc = engine_step(e, err);
	if (rc == ENGINE_DONE)
		rc = 0;
	if (rc) {
		engine_free(e);
		return rc;
	}
	const struct metrics *m = engine_metrics(e);
	int64_t n = metrics_n_steps(m) - first;
	int64_t *wall = xmallocarray((size_t)(n ? n : 1), sizeof(*wall)),
		*attn = xmallocarray((size_t)(n ? n : 1), sizeof(*attn));
	f->algo = ep->algo;
	f->steps = n;
	f->queries = 0;
	f->kv = f->kv_seq = f->io = f->io_seq = 0;
	int64_t wall_sum = 0, attn_sum = 0;
	for (int64_t i = 0; i < n; i++) {
		const struct metrics_step *st = metrics_step_at(m, first + i);
		wall[i] = st->wall_ns;
		attn[i] = st->attn_ns;
		wall_sum += st->wall_ns;
		attn_sum += st->attn_ns;
		f->queries += st->n_queries;
		f->kv += (double)st->io.kv;
		f->kv_seq += (double)st->io_seq.kv;
		f->io += (double)metrics_io_total(&st->io);
		f->io_seq += (double)metrics_io_total(&st->io_seq);
		f->tree_tokens = (double)st->tree_tokens;
	}
	struct metrics_stats sw, sa;
	metrics_stats_of(wall, n, &sw);
	metrics_stats_of(attn, n, &sa);
	f->step_p50 = sw.p50;
	f->attn_p50 = sa.p50;
	f->attn_share = wall_sum ? (double)attn_sum / (double)wall_sum : 0;
	if (n) {
		f->kv /= (double)n;
		f->kv_seq /= (double)n;
		f->io /= (double)n;
		f->io_seq /= (double)n;
	}
	free(wall);
	free(attn);
	engine_free(e);
	return 0;
}

static void print_row(const struct figures *f, const struct figures *seq)
{
	char a[32], b[32], c[32], d[32], e[32];
	printf("%-24s %-13s %5lld %7.1f %10s %10s %6.1f%% %10s %10s %10s %8.2fx\n", f->workload,
	       treeplan_algo_name(f->algo), (long long)f->steps, f->steps ? (double)f->queries / (double)f->steps : 0,
	       metrics_fmt_ns((double)f->step_p50, a, sizeof(a)), metrics_fmt_ns((double)f->attn_p50, b, sizeof(b)),
	       100 * f->attn_share, metrics_fmt_bytes((uint64_t)f->kv, c, sizeof(c)),
	       metrics_fmt_bytes((uint64_t)f->kv_seq, d, sizeof(d)), metrics_fmt_bytes((uint64_t)f->io, e, sizeof(e)),
	       f->kv > 0 ? f->kv_seq / f->kv : 0);
	if (seq && seq->attn_p50 > 0 && f->attn_p50 > 0)
		printf("%-24s %-13s seq/this: attention time %.2fx, step time %.2fx\n", "", "",
		       (double)seq->attn_p50 / (double)f->attn_p50, (double)seq->step_p50 / (double)f->step_p50);
}

static json_t *figures_json(const struct figures *f)
{
	return json_pack("{s:s, s:s, s:I, s:f, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "workload", f->workload, "algo",
			 treeplan_algo_name(f->algo), "steps", (json_int_t)f->steps, "queries_per_step",
			 f->steps ? (double)f->queries / (double)f->steps : 0, "step_ns_p50", (json_int_t)f->step_p50,
			 "attn_ns_p50", (json_int_t)f->attn_p50, "attn_share", f->attn_share, "kv_bytes_per_step", f->kv,
			 "kv_bytes_seq_per_step", f->kv_seq, "io_bytes_per_step", f->io, "io_bytes_seq_per_step", f->io_seq,
			 "tree_tokens", f->tree_tokens);
}

enum { OPT_STEPS = 256, OPT_WARMUP, OPT_PROMPT, OPT_BRANCHES, OPT_REASONING, OPT_TREE, OPT_ALGO, OPT_JSON };

int bench_tree_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "warmup", required_argument, NULL, OPT_WARMUP },
		{ "prompt", required_argument, NULL, OPT_PROMPT },
		{ "branches", required_argument, NULL, OPT_BRANCHES },
		{ "reasoning", required_argument, NULL, OPT_REASONING },
		{ "tree", required_argument, NULL, OPT_TREE },
		{ "algo", required_argument, NULL, OPT_ALGO },
		{ "threads", required_argument, NULL, 't' },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_params ep = engine_default_params();
	const char *model_path = NULL, *reasoning = NULL, *algo_list = "seq,deft-node,deft-flatten,tree-mask",
		   *json = NULL;
	int32_t steps = 8, warmup = 2, prompt = 1000, branches = 20, tree_index = 0;
	char err[DT_ERR_LEN];
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'm': model_path = optarg; break;
		case OPT_STEPS: bad = gen_parse_i32("--steps", optarg, 1, 100000, &steps, err); break;
		case OPT_WARMUP: bad = gen_parse_i32("--warmup", optarg, 0, 100000, &warmup, err); break;
		case OPT_PROMPT: bad = gen_parse_i32("--prompt", optarg, 1, 1 << 20, &prompt, err); break;
		case OPT_BRANCHES: bad = gen_parse_i32("--branches", optarg, 1, 4096, &branches, err); break;
		case OPT_REASONING: reasoning = optarg; break;
		case OPT_TREE: bad = gen_parse_i32("--tree", optarg, 0, INT32_MAX, &tree_index, err); break;
		case OPT_ALGO: algo_list = optarg; break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &ep.n_threads, err); break;
		case OPT_JSON: json = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree bench tree: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree bench tree: unknown option %s (try --help)\n", argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree bench tree: %s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "deftree bench tree: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	enum treeplan_algo algos[TREEPLAN_N_ALGO];
	int n_algos = 0;
	char list[128];
	snprintf(list, sizeof(list), "%s", algo_list);
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n_algos == TREEPLAN_N_ALGO || treeplan_algo_parse(tok, &algos[n_algos], err)) {
			fprintf(stderr, "deftree bench tree: --algo: %s\n", n_algos == TREEPLAN_N_ALGO ? "too many" : err);
			return 2;
		}
		n_algos++;
	}
	char rpath[PATH_MAX + 64];
	if (reasoning)
		snprintf(rpath, sizeof(rpath), "%s", reasoning);
	else if (!find_workload("sorting128ToT.json", rpath, sizeof(rpath)))
		rpath[0] = 0;

	const char *path = model_path ? model_path : dt_default_model_path();
	if (gen_model_missing(path, "deftree bench tree", stderr))
		return 1;
	struct model_params mp = model_default_params();
	mp.n_threads = ep.n_threads;
	struct model *m = model_load(path, &mp, err);
	if (!m) {
		fprintf(stderr, "deftree bench tree: %s\n", err);
		return 1;
	}
	ep.model = m;
	ep.max_branch_tokens = 0;

	struct workload *ws[2] = { NULL, NULL };
	char names[2][96];
	ws[0] = workload_fewshot(prompt, branches, warmup + steps, err);
	if (!ws[0]) {
		fprintf(stderr, "deftree bench tree: %s\n", err);
		model_free(m);
		return 2;
	}
	snprintf(names[0], sizeof(names[0]), "few-shot %dx%d", prompt, branches);
	if (rpath[0]) {
		ws[1] = workload_load(rpath, err);
		if (!ws[1] || ws[1]->kind != WORKLOAD_REASONING || tree_index >= ws[1]->n_trees) {
			fprintf(stderr, "deftree bench tree: %s\n",
				!ws[1] ? err : "the reasoning workload is not a reasoning tree list or has no such tree");
			workload_free(ws[0]);
			workload_free(ws[1]);
			model_free(m);
			return 2;
		}
		const char *base = strrchr(rpath, '/');
		snprintf(names[1], sizeof(names[1]), "%.40s #%d", base ? base + 1 : rpath, tree_index);
	} else {
		fprintf(stderr, "deftree bench tree: note: no reasoning workload found (give --reasoning FILE); "
				"measuring the few-shot shape only\n");
	}

	const struct model_hparams *hp = model_hparams(m);
	printf("bench tree: %s on the CPU, %d threads; %d layers, %d/%d heads, dim %d, K/V fp32\n", path,
	       model_n_threads(m), hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim);
	printf("%d warm-up + %d measured steps per row; KV and IO bytes per step are the plan's IO model "
	       "(all layers); times are medians\n\n",
	       warmup, steps);
	printf("%-24s %-13s %5s %7s %10s %10s %7s %10s %10s %10s %9s\n", "workload", "algorithm", "steps", "queries",
	       "step", "attention", "attn%", "KV/step", "seq KV", "IO/step", "seq/this");
	json_t *rows = json_array();
	int status = 0;
	for (int wi = 0; wi < 2 && status == 0; wi++) {
		if (!ws[wi])
			continue;
		struct figures seq_f;
		bool have_seq = false;
		for (int a = 0; a < n_algos; a++) {
			struct figures f;
			memset(&f, 0, sizeof(f));
			ep.algo = algos[a];
			int rc = measure(&ep, ws[wi], wi == 1 ? tree_index : 0, warmup, steps, &f, err);
			if (rc) {
				fprintf(stderr, "deftree bench tree: %s, %s: %s\n", names[wi], treeplan_algo_name(algos[a]), err);
				status = 1;
				break;
			}
			snprintf(f.workload, sizeof(f.workload), "%.80s", names[wi]);
			print_row(&f, have_seq && algos[a] != TREEPLAN_SEQ ? &seq_f : NULL);
			fflush(stdout);
			if (algos[a] == TREEPLAN_SEQ) {
				seq_f = f;
				have_seq = true;
			}
			json_array_append_new(rows, figures_json(&f));
		}
	}
	if (json) {
		json_t *root = json_pack("{s:s, s:s, s:i, s:i, s:i, s:o}", "bench", "tree", "model", path, "threads",
					 model_n_threads(m), "steps", steps, "warmup", warmup, "rows", rows);
		if (json_dump_file(root, json, JSON_INDENT(1)) != 0) {
			fprintf(stderr, "deftree bench tree: %s: cannot write\n", json);
			status = status ? status : 1;
		}
		json_decref(root);
	} else {
		json_decref(rows);
	}
	workload_free(ws[0]);
	workload_free(ws[1]);
	model_free(m);
	return status;
}
