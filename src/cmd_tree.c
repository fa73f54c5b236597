/*
 * cmd_tree.c — `deftree tree`: grow a token tree headless, print it and its
 * metrics; optionally export it as JSON / DOT or save it as a session.
 *
 *   deftree tree -p "Once upon a time" --policy sample:4 --steps 16 --json t.json
 *   deftree tree --load t.json --fork 3:2 --steps 8
 *
 * Order of work: prefill (or load a session), the policy's set-up (sample:N
 * forks N branches at the prompt's end), the --fork requests, then --steps
 * decode steps.  Ctrl-C stops between layers; what was grown is still printed
 * and saved.
 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "engine.h"
#include "gen.h"
#include "kvpool.h"
#include "metrics.h"
#include "session.h"
#include "tokenizer.h"
#include "tree.h"

int cmd_tree(int argc, char **argv);

#define MAX_FORKS 64

static struct engine *running;

static void on_sigint(int sig)
{
	(void)sig;
	if (running)
		engine_cancel(running);
	signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program */
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deftree tree (-p PROMPT | --load SESSION) [options]\n"
		"  -m, --model PATH        GGUF model (default: $DEFTREE_MODEL or the bundled\n"
		"                          %s)\n"
		"  -p, --prompt TEXT       the prompt (the root of the tree)\n"
		"      --load FILE         continue a session saved with --save (same model)\n"
		"      --chat              wrap the prompt in the model's chat template\n"
		"      --policy P          sample:N (N branches from the prompt), greedy,\n"
		"                          beam:W or beam:W:ALPHA (default sample:4)\n"
		"      --steps N           decode steps (default 32)\n"
		"      --algo A            deft-flatten, deft-node, seq or tree-mask (default deft-flatten)\n"
		"      --backend B         where attention runs: cpu, cuda or auto (default auto:\n"
		"                          cuda when a GPU is there)\n"
		"      --fork NODE:INDEX[=TEXT]\n"
		"                          before the steps, a new branch before token INDEX of\n"
		"                          NODE: its first token resampled, or TEXT forced (repeatable)\n"
		"      --max-tokens N      generated tokens per branch, 0 = no limit (default 256)\n"
		"      --temp T --top-k K --top-p P --min-p M --repeat-penalty R --repeat-last-n N\n"
		"      --seed S            sampler settings (see `deftree generate --help`)\n"
		"      --page-size N       KV tokens per page (default 16)\n"
		"      --kv-budget MIB     KV pool size in MiB (default 1024)\n"
		"      --block-size N      deft-flatten block tokens (default 128)\n"
		"      --tile N            most queries per attention group (default 64)\n"
		"  -t, --threads N         CPU threads (default %d)\n"
		"      --json FILE         export: every node with tokens, probabilities, text,\n"
		"                          and the per-step metrics\n"
		"      --dot FILE          Graphviz drawing of the tree\n"
		"      --save FILE         save the session (continue with --load)\n"
		"  -q, --quiet             print the metrics only\n",
		DT_DEFAULT_MODEL_FILE, dt_ncpu());
}

struct fork_req {
	int32_t node, index;
	const char *text; /* NULL: resample */
};

static int parse_fork(const char *s, struct fork_req *f, char *err)
{
	char buf[64];
	const char *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return dt_err(err, "--fork '%s' (expected NODE:INDEX or NODE:INDEX=TEXT)", s);
	memcpy(buf, s, n);
	buf[n] = 0;
	char *colon = strchr(buf, ':');
	if (!colon)
		return dt_err(err, "--fork '%s' (expected NODE:INDEX or NODE:INDEX=TEXT)", s);
	*colon = 0;
	if (gen_parse_i32("--fork NODE", buf, 0, INT32_MAX, &f->node, err) ||
	    gen_parse_i32("--fork INDEX", colon + 1, 0, INT32_MAX, &f->index, err))
		return -1;
	f->text = eq ? eq + 1 : NULL;
	return 0;
}

// ---- printing

static void print_text(FILE *out, const char *s, size_t max_chars)
{
	size_t chars = 0;
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars > max_chars) {
			fputs("...", out);
			break;
		}
		if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '"')
			fputs("\\\"", out);
		else if (*p < 0x20)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* text of tokens [a, b) of a node, invalid UTF-8 replaced; malloc'd */
static char *span_text(const struct tokenizer *tok, const struct tree_node *nd, int32_t a, int32_t b)
{
	if (!tok || b <= a)
		return xstrdup("");
	int32_t *ids = xmallocarray((size_t)(b - a), sizeof(*ids));
	for (int32_t i = a; i < b; i++)
		ids[i - a] = nd->tokens[i].id;
	char *raw = tokenizer_decode(tok, ids, b - a);
	free(ids);
	char *clean = session_clean_utf8(raw, strlen(raw));
	free(raw);
	return clean;
}

static void print_tree(struct engine *e, FILE *out)
{
	struct tree *t = engine_tree(e);
	const struct tokenizer *tok = engine_tokenizer(e);
	int32_t cap = tree_n_ids(t) + 1;
	int32_t *stack = xmallocarray((size_t)cap, sizeof(*stack)), *depth = xmallocarray((size_t)cap, sizeof(*depth));
	int32_t top = 0;
	stack[top] = tree_root(t);
	depth[top++] = 0;
	while (top > 0) {
		top--;
		const struct tree_node *nd = tree_node(t, stack[top]);
		int32_t d = depth[top];
		/* prompt tokens (step 0) first, then what decoding added */
		int32_t np = 0;
		while (np < nd->n_tokens && nd->tokens[np].step == 0)
			np++;
		if (np > 0) {
			char *text = span_text(tok, nd, 0, np);
			fprintf(out, "%*s#%d [prompt, %d tok] ", 2 * d, "", nd->id, np);
			print_text(out, text, 120);
			fputc('\n', out);
			free(text);
		}
		if (np < nd->n_tokens || np == 0) {
			double lp = 0;
			for (int32_t i = np; i < nd->n_tokens; i++)
				lp += nd->tokens[i].logprob;
			int32_t gen = nd->n_tokens - np;
			fprintf(out, "%*s#%d%s [%d tok", 2 * (d + (np > 0)), "", nd->id, np > 0 ? "+" : "", gen);
			if (gen > 0)
				fprintf(out, ", mean p %.2f", exp(lp / gen));
			if (nd->n_children == 0) {
				bool eog = nd->n_tokens > 0 && tok && tokenizer_is_eog(tok, nd->tokens[nd->n_tokens - 1].id);
				fprintf(out, ", %s, stream %lld", nd->status == TREE_LIVE ? "live" : eog ? "eos" : "finished",
					(long long)engine_stream(e, nd->id));
			}
			fputs("] ", out);
			char *text = span_text(tok, nd, np, nd->n_tokens);
			print_text(out, text, 400);
			free(text);
			fputc('\n', out);
		}
		for (int32_t c = nd->n_children - 1; c >= 0; c--) {
			stack[top] = nd->children[c];
			depth[top++] = d + 1;
		}
	}
	free(stack);
	free(depth);
}

static void print_summary(struct engine *e, const char *algo, const char *policy, FILE *out)
{
	struct metrics_summary s;
	metrics_summarize(engine_metrics(e), &s);
	struct tree_stats ts;
	tree_stats(engine_tree(e), &ts);
	struct kvpool *pool = engine_pool(e);
	char a[32], b[32];
	const struct backend_info *bi = engine_backend_info(e);
	fprintf(out, "\nmetrics (algorithm %s, policy %s, attention on %s: %s):\n", algo, policy,
		backend_kind_name(bi->kind), bi->device);
	metrics_print_summary(&s, "  ", out);
	fprintf(out, "  tree: %d nodes, %d leaves (%d live), %lld tokens stored, %lld on all paths (sharing %.2fx)\n",
		ts.n_nodes, ts.n_leaves, ts.n_live_leaves, (long long)ts.stored_tokens, (long long)ts.logical_tokens,
		ts.sharing);
	fprintf(out, "  KV pool: %d of %d pages in use (%s of %s)\n", kvpool_n_used(pool), kvpool_n_pages(pool),
		metrics_fmt_bytes((uint64_t)kvpool_n_used(pool) * kvpool_page_bytes(pool), a, sizeof(a)),
		metrics_fmt_bytes((uint64_t)kvpool_n_pages(pool) * kvpool_page_bytes(pool), b, sizeof(b)));
}

// ---- the command

enum { OPT_LOAD = 256, OPT_CHAT, OPT_POLICY, OPT_STEPS, OPT_ALGO, OPT_FORK, OPT_MAXTOK, OPT_TEMP, OPT_TOP_K,
       OPT_TOP_P, OPT_MIN_P, OPT_REP, OPT_REP_N, OPT_SEED, OPT_PAGE, OPT_BUDGET, OPT_BLOCK, OPT_TILE, OPT_JSON,
       OPT_DOT, OPT_SAVE, OPT_BACKEND };

int cmd_tree(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "load", required_argument, NULL, OPT_LOAD },
		{ "chat", no_argument, NULL, OPT_CHAT },
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "steps", required_argument, NULL, OPT_STEPS },
		{ "algo", required_argument, NULL, OPT_ALGO },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "fork", required_argument, NULL, OPT_FORK },
		{ "max-tokens", required_argument, NULL, OPT_MAXTOK },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "repeat-penalty", required_argument, NULL, OPT_REP },
		{ "repeat-last-n", required_argument, NULL, OPT_REP_N },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "page-size", required_argument, NULL, OPT_PAGE },
		{ "kv-budget", required_argument, NULL, OPT_BUDGET },
		{ "block-size", required_argument, NULL, OPT_BLOCK },
		{ "tile", required_argument, NULL, OPT_TILE },
		{ "threads", required_argument, NULL, 't' },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "dot", required_argument, NULL, OPT_DOT },
		{ "save", required_argument, NULL, OPT_SAVE },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_params ep = engine_default_params();
	const char *model_path = NULL, *prompt = NULL, *load = NULL, *json = NULL, *dot = NULL, *save = NULL;
	const char *policy_text = "sample:4", *algo_text = "deft-flatten", *backend_text = NULL;
	struct engine_policy_spec pol;
	struct fork_req forks[MAX_FORKS];
	int n_forks = 0, pol_given = 0;
	int32_t steps = 32, budget_mib = 1024;
	bool chat = false, quiet = false;
	char err[DT_ERR_LEN];
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:p:t:qh", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'm': model_path = optarg; break;
		case 'p': prompt = optarg; break;
		case OPT_LOAD: load = optarg; break;
		case OPT_CHAT: chat = true; break;
		case OPT_POLICY:
			policy_text = optarg;
			pol_given = 1;
			break;
		case OPT_STEPS: bad = gen_parse_i32("--steps", optarg, 0, 1 << 24, &steps, err); break;
		case OPT_ALGO: algo_text = optarg; break;
		case OPT_BACKEND: backend_text = optarg; break;
		case OPT_FORK:
			if (n_forks == MAX_FORKS)
				bad = dt_err(err, "--fork: at most %d forks", MAX_FORKS);
			else
				bad = parse_fork(optarg, &forks[n_forks++], err);
			break;
		case OPT_MAXTOK: bad = gen_parse_i32("--max-tokens", optarg, 0, 1 << 24, &ep.max_branch_tokens, err); break;
		case OPT_TEMP: bad = sampler_params_set(&ep.sampler, "temp", optarg, err); break;
		case OPT_TOP_K: bad = sampler_params_set(&ep.sampler, "top-k", optarg, err); break;
		case OPT_TOP_P: bad = sampler_params_set(&ep.sampler, "top-p", optarg, err); break;
		case OPT_MIN_P: bad = sampler_params_set(&ep.sampler, "min-p", optarg, err); break;
		case OPT_REP: bad = sampler_params_set(&ep.sampler, "repeat-penalty", optarg, err); break;
		case OPT_REP_N: bad = sampler_params_set(&ep.sampler, "repeat-last-n", optarg, err); break;
		case OPT_SEED: bad = sampler_params_set(&ep.sampler, "seed", optarg, err); break;
		case OPT_PAGE: bad = gen_parse_i32("--page-size", optarg, 1, 4096, &ep.page_size, err); break;
		case OPT_BUDGET: bad = gen_parse_i32("--kv-budget", optarg, 1, 1 << 20, &budget_mib, err); break;
		case OPT_BLOCK: bad = gen_parse_i32("--block-size", optarg, 1, 1 << 20, &ep.block_size, err); break;
		case OPT_TILE: bad = gen_parse_i32("--tile", optarg, 1, 1 << 16, &ep.tile_queries, err); break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &ep.n_threads, err); break;
		case OPT_JSON: json = optarg; break;
		case OPT_DOT: dot = optarg; break;
		case OPT_SAVE: save = optarg; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree tree: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree tree: unknown option %s (try --help)\n", argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree tree: %s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "deftree tree: unexpected argument '%s' (the prompt goes after -p)\n", argv[optind]);
		return 2;
	}
	if (!prompt == !load) {
		fprintf(stderr, "deftree tree: give a prompt with -p TEXT or a session with --load FILE (--help lists the options)\n");
		return 2;
	}
	if (load && pol_given == 0)
		policy_text = "sample";
	if (engine_policy_parse(policy_text, &pol, err) || treeplan_algo_parse(algo_text, &ep.algo, err) ||
	    backend_choose(backend_text, "deftree tree", quiet ? NULL : stderr, &ep.backend, err)) {
		fprintf(stderr, "deftree tree: %s\n", err);
		return 2;
	}
	ep.kv_budget = (size_t)budget_mib << 20;
	const char *path = model_path ? model_path : dt_default_model_path();
	if (gen_model_missing(path, "deftree tree", stderr))
		return 1;
	ep.model_path = path;
	struct engine *e = engine_new(&ep, err);
	if (!e) {
		fprintf(stderr, "deftree tree: %s\n", err);
		return 1;
	}
	int status = 0;
	int rc = load ? engine_load(e, load, err) : engine_prefill(e, prompt, chat, err);
	if (rc) {
		fprintf(stderr, "deftree tree: %s\n", err);
		engine_free(e);
		return load ? 2 : 1;
	}
	/* the policy's set-up */
	struct tree *t = engine_tree(e);
	if (pol.policy == ENGINE_POLICY_SAMPLE && pol.n > 1 && !load) {
		int32_t root = tree_root(t);
		rc = engine_sample_n(e, root, tree_node(t, root)->n_tokens, pol.n, NULL, err);
	}
	if (rc == 0)
		rc = engine_set_policy(e, pol.policy, pol.width, pol.alpha, err);
	for (int i = 0; i < n_forks && rc == 0; i++) {
		int32_t leaf = engine_fork(e, forks[i].node, forks[i].index,
					   forks[i].text ? ENGINE_FORK_TEXT : ENGINE_FORK_RESAMPLE, 0, forks[i].text, err);
		if (leaf < 0)
			rc = leaf;
		else if (!quiet)
			printf("fork %d:%d -> new branch #%d\n", forks[i].node, forks[i].index, leaf);
	}
	if (rc) {
		fprintf(stderr, "deftree tree: %s\n", err);
		engine_free(e);
		return 2;
	}

	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	running = e;
	sigaction(SIGINT, &sa, NULL);
	int64_t done = 0;
	for (; done < steps; done++) {
		rc = engine_step(e, err);
		if (rc == ENGINE_DONE)
			break;
		if (rc < 0) {
			fprintf(stderr, "deftree tree: step %lld: %s\n", (long long)done + 1, err);
			status = rc == DT_ERR_CANCELLED ? 130 : 1;
			break;
		}
	}
	signal(SIGINT, SIG_DFL);
	running = NULL;

	if (!quiet) {
		printf("tree after %lld steps:\n", (long long)done);
		print_tree(e, stdout);
	}
	print_summary(e, treeplan_algo_name(ep.algo), policy_text, stdout);
	if (json && engine_save(e, json, true, err)) {
		fprintf(stderr, "deftree tree: %s\n", err);
		status = status ? status : 1;
	}
	if (dot && engine_save_dot(e, dot, err)) {
		fprintf(stderr, "deftree tree: %s\n", err);
		status = status ? status : 1;
	}
	if (save && engine_save(e, save, false, err)) {
		fprintf(stderr, "deftree tree: %s\n", err);
		status = status ? status : 1;
	}
	engine_free(e);
	return status;
}
