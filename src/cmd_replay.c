/*
 * cmd_replay.c — `deftree replay`: replays a tree workload's shape and prints
 * the IO and time of every step.
 *
 *   deftree replay shared/workloads/deft/sorting128ToT.json --tree 3 --algo all
 *   deftree replay spec_tree_size64.json -m model.gguf --steps 20
 *   deftree replay --fewshot 4000:20:400 --algo deft-flatten
 *
 * Without -m the replay is IO-only: the same tree, plans and IO model for a
 * given head shape (default Llama-3-8B: 32 query heads, 8 KV heads, dim 128,
 * fp16, per layer) without running a model, so the whole shape replays in
 * seconds.  With -m the model runs every step (matmuls on the CPU, attention
 * on the --backend: cpu or cuda) and the times are real; the tokens come from
 * the model, the shape from the file.  On cuda the summary adds the GPU time
 * of the attention kernels per step and the KV bandwidth it reached.
 */
#include "config.h"

#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "engine.h"
#include "gen.h"
#include "metrics.h"
#include "model.h"
#include "tree.h"
#include "workload.h"

int cmd_replay(int argc, char **argv);

static struct engine *running;

static void on_sigint(int sig)
{
	(void)sig;
	if (running)
		engine_cancel(running);
	signal(SIGINT, SIG_DFL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deftree replay (WORKLOAD.json | --fewshot P:B:S) [options]\n"
		"  WORKLOAD.json           a reasoning tree list or a speculative token tree\n"
		"                          (shared/workloads/README.md)\n"
		"      --fewshot P:B:S     the synthetic shape: prompt P, B branches, S steps\n"
		"      --tree N            which tree (reasoning) or record (speculative) (default 0)\n"
		"      --algo A            deft-flatten, deft-node, seq, tree-mask or all (default deft-flatten)\n"
		"  -m, --model PATH        run this model (default: IO-only, no model)\n"
		"      --backend B         with -m, where attention runs: cpu, cuda or auto\n"
		"                          (default auto: cuda when a GPU is there)\n"
		"      --steps N           replay at most N iterations (default: the whole shape)\n"
		"      --prefix N          speculative: prefix tokens before the token tree (default 1000)\n"
		"      --heads Q/KV/D      IO-only head shape (default 32/8/128)\n"
		"      --layers N          IO-only layers (default 1: figures per layer)\n"
		"      --fp32              IO-only: 4-byte K/V elements (default fp16)\n"
		"      --page-size N       KV tokens per page (default 16)\n"
		"      --kv-budget MIB     KV pool size in MiB (default 4096)\n"
		"      --block-size N      deft-flatten block tokens (default 128)\n"
		"      --tile N            most queries per attention group (default 64)\n"
		"  -t, --threads N         CPU threads with -m (default %d)\n"
		"      --every N           print every N-th step (default: about 20 rows)\n"
		"      --json FILE         per-step figures and summaries as JSON\n",
		dt_ncpu());
}

struct run_result {
	enum treeplan_algo algo;
	struct metrics_summary s;
	int64_t steps;
	json_t *steps_json;
};

static void print_row(const struct metrics_step *st)
{
	char a[32], b[32], c[32], d[32], e[32];
	printf("%6lld %8d %8d %10lld %11s %11s %11s %10s %10s\n", (long long)st->step + 1, st->n_branches,
	       st->n_queries, (long long)st->tree_tokens, metrics_fmt_bytes(st->io.kv, a, sizeof(a)),
	       metrics_fmt_bytes(st->io_seq.kv, b, sizeof(b)), metrics_fmt_bytes(metrics_io_total(&st->io), c, sizeof(c)),
	       metrics_fmt_ns((double)st->wall_ns, d, sizeof(d)), metrics_fmt_ns((double)st->attn_ns, e, sizeof(e)));
}

static int run_one(const struct engine_params *ep, const struct workload *w, int32_t index, int32_t prefix,
		   int32_t max_steps, int32_t every, bool table, struct run_result *res, char *err)
{
	struct engine *e = engine_new(ep, err);
	if (!e)
		return -1;
	int rc = engine_replay_begin(e, w, index, prefix, err);
	if (rc) {
		engine_free(e);
		return rc;
	}
	int64_t len = engine_replay_length(e);
	int64_t limit = max_steps > 0 ? DT_MIN(len, max_steps) : len;
	if (every <= 0)
		every = (int32_t)DT_MAX(1, (limit + 19) / 20);
	if (table)
		printf("%6s %8s %8s %10s %11s %11s %11s %10s %10s\n", "step", "branches", "queries", "tree tok",
		       "KV read", "KV seq", "IO total", "step", "attention");
	running = e;
	res->steps_json = json_array();
	int64_t n = 0;
	for (; n < limit; n++) {
		rc = engine_step(e, err);
		if (rc == ENGINE_DONE) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		const struct metrics_step *st = metrics_last_step(engine_metrics(e));
		if (!st)
			continue;
		if (table && (n % every == 0 || n + 1 == limit))
			print_row(st);
		json_array_append_new(res->steps_json,
				      json_pack("{s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "step",
						(json_int_t)st->step + 1, "branches", st->n_branches, "queries",
						st->n_queries, "tree_tokens", (json_int_t)st->tree_tokens, "kv",
						(json_int_t)st->io.kv, "kv_seq", (json_int_t)st->io_seq.kv, "io_total",
						(json_int_t)metrics_io_total(&st->io), "wall_ns", (json_int_t)st->wall_ns,
						"attn_ns", (json_int_t)st->attn_ns));
		json_object_set_new(json_array_get(res->steps_json, json_array_size(res->steps_json) - 1), "gpu_attn_ns",
				    json_integer((json_int_t)st->attn_dev_ns));
	}
	running = NULL;
	res->algo = ep->algo;
	res->steps = n;
	metrics_summarize(engine_metrics(e), &res->s);
	engine_free(e);
	return rc < 0 ? rc : 0;
}

static void print_summary_line(const struct run_result *r)
{
	const struct metrics_summary *s = &r->s;
	double n = s->n_steps ? (double)s->n_steps : 1;
	char a[32], b[32], c[32], d[32], e[32], f[32];
	printf("%-13s %6lld %11s %11s %11s %7.2fx %10s %10s", treeplan_algo_name(r->algo), (long long)s->n_steps,
	       metrics_fmt_bytes((uint64_t)((double)s->kv_bytes / n), a, sizeof(a)),
	       metrics_fmt_bytes((uint64_t)((double)s->kv_bytes_seq / n), b, sizeof(b)),
	       metrics_fmt_bytes((uint64_t)((double)s->bytes / n), c, sizeof(c)),
	       s->kv_bytes ? (double)s->kv_bytes_seq / (double)s->kv_bytes : 0,
	       metrics_fmt_ns((double)s->step.p50, d, sizeof(d)), metrics_fmt_ns((double)s->attn.p50, e, sizeof(e)));
	if (s->attn_dev.n) /* cuda: the kernels alone, and the KV rate they reached */
		printf(" %10s %8.1f", metrics_fmt_ns((double)s->attn_dev.p50, f, sizeof(f)),
		       s->attn_dev.total > 0 ? (double)s->kv_bytes_dev / (double)s->attn_dev.total : 0.0);
	printf("\n");
}

enum { OPT_FEWSHOT = 256, OPT_TREE, OPT_ALGO, OPT_STEPS, OPT_PREFIX, OPT_HEADS, OPT_LAYERS, OPT_FP32, OPT_PAGE,
       OPT_BUDGET, OPT_BLOCK, OPT_TILE, OPT_EVERY, OPT_JSON, OPT_BACKEND };

int cmd_replay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "fewshot", required_argument, NULL, OPT_FEWSHOT },
		{ "tree", required_argument, NULL, OPT_TREE },
		{ "algo", required_argument, NULL, OPT_ALGO },
		{ "model", required_argument, NULL, 'm' },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "prefix", required_argument, NULL, OPT_PREFIX },
		{ "heads", required_argument, NULL, OPT_HEADS },
		{ "layers", required_argument, NULL, OPT_LAYERS },
		{ "fp32", no_argument, NULL, OPT_FP32 },
		{ "page-size", required_argument, NULL, OPT_PAGE },
		{ "kv-budget", required_argument, NULL, OPT_BUDGET },
		{ "block-size", required_argument, NULL, OPT_BLOCK },
		{ "tile", required_argument, NULL, OPT_TILE },
		{ "threads", required_argument, NULL, 't' },
		{ "every", required_argument, NULL, OPT_EVERY },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_params ep = engine_default_params();
	const char *fewshot = NULL, *algo_text = "deft-flatten", *model = NULL, *json = NULL, *backend_text = NULL;
	int32_t index = 0, steps = 0, prefix = 1000, budget_mib = 4096, every = 0;
	char err[DT_ERR_LEN];
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case OPT_FEWSHOT: fewshot = optarg; break;
		case OPT_TREE: bad = gen_parse_i32("--tree", optarg, 0, INT32_MAX, &index, err); break;
		case OPT_ALGO: algo_text = optarg; break;
		case 'm': model = optarg; break;
		case OPT_BACKEND: backend_text = optarg; break;
		case OPT_STEPS: bad = gen_parse_i32("--steps", optarg, 1, INT32_MAX, &steps, err); break;
		case OPT_PREFIX: bad = gen_parse_i32("--prefix", optarg, 1, 1 << 24, &prefix, err); break;
		case OPT_HEADS:
			if (sscanf(optarg, "%d/%d/%d", &ep.io_heads.n_head, &ep.io_heads.n_kv_head,
				   &ep.io_heads.head_dim) != 3 ||
			    ep.io_heads.n_head < 1 || ep.io_heads.n_kv_head < 1 || ep.io_heads.head_dim < 1 ||
			    ep.io_heads.n_head % ep.io_heads.n_kv_head || ep.io_heads.n_head > 4096 ||
			    ep.io_heads.head_dim > 4096)
				bad = dt_err(err, "--heads '%s' (expected Q/KV/D with Q a multiple of KV, e.g. 32/8/128)", optarg);
			break;
		case OPT_LAYERS: bad = gen_parse_i32("--layers", optarg, 1, 1024, &ep.io_heads.n_layer, err); break;
		case OPT_FP32: ep.io_heads.elt_bytes = 4; break;
		case OPT_PAGE: bad = gen_parse_i32("--page-size", optarg, 1, 4096, &ep.page_size, err); break;
		case OPT_BUDGET: bad = gen_parse_i32("--kv-budget", optarg, 1, 1 << 22, &budget_mib, err); break;
		case OPT_BLOCK: bad = gen_parse_i32("--block-size", optarg, 1, 1 << 20, &ep.block_size, err); break;
		case OPT_TILE: bad = gen_parse_i32("--tile", optarg, 1, 1 << 16, &ep.tile_queries, err); break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &ep.n_threads, err); break;
		case OPT_EVERY: bad = gen_parse_i32("--every", optarg, 1, INT32_MAX, &every, err); break;
		case OPT_JSON: json = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree replay: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree replay: unknown option %s (try --help)\n", argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree replay: %s\n", err);
			return 2;
		}
	}
	const char *file = optind < argc ? argv[optind] : NULL;
	if (optind + 1 < argc) {
		fprintf(stderr, "deftree replay: unexpected argument '%s'\n", argv[optind + 1]);
		return 2;
	}
	if (!file == !fewshot) {
		fprintf(stderr, "deftree replay: give one workload file or --fewshot P:B:S (--help lists the options)\n");
		return 2;
	}
	if (backend_choose(backend_text, "deftree replay", model ? stderr : NULL, &ep.backend, err)) {
		fprintf(stderr, "deftree replay: %s\n", err);
		return 2;
	}
	bool all = !strcmp(algo_text, "all");
	if (!all && treeplan_algo_parse(algo_text, &ep.algo, err)) {
		fprintf(stderr, "deftree replay: %s\n", err);
		return 2;
	}
	struct workload *w;
	if (fewshot) {
		int32_t p, b, s;
		char tail;
		if (sscanf(fewshot, "%d:%d:%d%c", &p, &b, &s, &tail) != 3) {
			fprintf(stderr, "deftree replay: --fewshot '%s' (expected P:B:S, e.g. 4000:20:400)\n", fewshot);
			return 2;
		}
		w = workload_fewshot(p, b, s, err);
	} else {
		w = workload_load(file, err);
	}
	if (!w) {
		fprintf(stderr, "deftree replay: %s\n", err);
		return 2;
	}
	int32_t n_items = w->kind == WORKLOAD_SPEC ? w->spec->n_records : w->n_trees;
	if (index >= n_items) {
		fprintf(stderr, "deftree replay: %s: --tree %d (expected 0 .. %d)\n", w->name, index, n_items - 1);
		workload_free(w);
		return 2;
	}
	ep.kv_budget = (size_t)budget_mib << 20;
	if (model) {
		if (gen_model_missing(model, "deftree replay", stderr)) {
			workload_free(w);
			return 1;
		}
		ep.model_path = model;
	}
	/* one model for all algorithms */
	struct engine *holder = NULL;
	if (model) {
		struct engine_params hp = ep;
		hp.backend = BACKEND_CPU; /* holds the model only */
		holder = engine_new(&hp, err);
		if (!holder) {
			fprintf(stderr, "deftree replay: %s\n", err);
			workload_free(w);
			return 1;
		}
		ep.model = engine_model(holder);
		ep.model_path = NULL;
	}

	if (w->kind == WORKLOAD_SPEC)
		printf("replay %s record %d: speculative token tree of %d candidates (depth %d), %d steps, prefix %d\n",
		       w->name, index, w->spec->size, w->spec->max_depth, w->spec->records[index].n_steps, prefix);
	else
		printf("replay %s tree %d: %s, %d nodes, %lld tokens, %d iterations, up to %d branches at once\n",
		       w->name, index, workload_kind_name(w->kind), w->trees[index].n_nodes,
		       (long long)w->trees[index].n_tokens, w->trees[index].n_iters, w->trees[index].max_live);
	if (model) {
		char why[DT_ERR_LEN] = "";
		struct engine *probe = ep.backend == BACKEND_CPU ? NULL : engine_new(&ep, why);
		if (ep.backend != BACKEND_CPU && !probe) {
			fprintf(stderr, "deftree replay: %s\n", why);
			engine_free(holder);
			workload_free(w);
			return 1;
		}
		printf("model %s: matmuls on the CPU (%d threads), attention on %s (%s)\n", model,
		       model_n_threads(ep.model), backend_kind_name(ep.backend),
		       probe ? engine_backend_info(probe)->device : "fp32 K/V");
		engine_free(probe);
	}
	else
		printf("IO-only (no model): %d/%d heads, dim %d, %s, %d layer%s\n", ep.io_heads.n_head,
		       ep.io_heads.n_kv_head, ep.io_heads.head_dim, ep.io_heads.elt_bytes == 2 ? "fp16" : "fp32",
		       ep.io_heads.n_layer, ep.io_heads.n_layer > 1 ? "s" : "");

	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	struct run_result res[TREEPLAN_N_ALGO];
	int n_res = 0, status = 0;
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		if (all)
			ep.algo = (enum treeplan_algo)a;
		else if (a > 0)
			break;
		if (!all)
			printf("algorithm %s\n", treeplan_algo_name(ep.algo));
		int rc = run_one(&ep, w, index, prefix, steps, every, !all, &res[n_res], err);
		if (rc) {
			fprintf(stderr, "deftree replay: %s: %s\n", treeplan_algo_name(ep.algo), err);
			status = rc == DT_ERR_CANCELLED ? 130 : 1;
			json_decref(res[n_res].steps_json);
			break;
		}
		n_res++;
	}
	signal(SIGINT, SIG_DFL);
	if (n_res > 0) {
		printf("\n%-13s %6s %11s %11s %11s %8s %10s %10s%s\n", "algorithm", "steps", "KV/step", "seq KV/step",
		       "IO/step", "seq/this", "step p50", "attn p50",
		       res[0].s.attn_dev.n ? "    GPU p50     GB/s" : "");
		for (int i = 0; i < n_res; i++)
			print_summary_line(&res[i]);
		if (!model)
			printf("(IO-only: times are planning only; KV and IO bytes are the IO model of each plan)\n");
	}
	if (json && n_res > 0) {
		json_t *runs = json_array();
		for (int i = 0; i < n_res; i++) {
			const struct metrics_summary *s = &res[i].s;
			json_array_append_new(runs, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "algo",
							      treeplan_algo_name(res[i].algo), "steps",
							      (json_int_t)s->n_steps, "kv_bytes", (json_int_t)s->kv_bytes,
							      "kv_bytes_seq", (json_int_t)s->kv_bytes_seq, "bytes",
							      (json_int_t)s->bytes, "bytes_seq", (json_int_t)s->bytes_seq,
							      "step_ns_p50", (json_int_t)s->step.p50, "attn_ns_p50",
							      (json_int_t)s->attn.p50, "per_step", res[i].steps_json));
			json_object_set_new(json_array_get(runs, (size_t)i), "gpu_attn_ns_p50",
					    json_integer((json_int_t)s->attn_dev.p50));
			res[i].steps_json = NULL;
		}
		json_t *root = json_pack("{s:s, s:s, s:i, s:s, s:o}", "workload", w->name, "kind",
					 workload_kind_name(w->kind), "index", index, "mode", model ? "model" : "io-only",
					 "runs", runs);
		if (json_dump_file(root, json, JSON_INDENT(1)) != 0) {
			fprintf(stderr, "deftree replay: %s: cannot write\n", json);
			status = status ? status : 1;
		}
		json_decref(root);
	}
	for (int i = 0; i < n_res; i++)
		json_decref(res[i].steps_json);
	engine_free(holder);
	workload_free(w);
	return status;
}
