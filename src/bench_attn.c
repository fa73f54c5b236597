/*
 * bench_attn.c — `deftree bench attn`: tree attention on the GPU against its
 * floor and its peers (PERF.md).
 *
 * DESIGN
 *   One layer, one decode step, per case and algorithm (seq, deft-node,
 *   deft-flatten, tree-mask):
 *     time      median GPU time of cuda_attn_run (fused kernel + reduction, or
 *               the three tree-mask kernels + reduction) with the host running
 *               ahead (kernels/bench_util.cu), after warm-up; the inputs
 *               rotate over copies of the KV pages and Q whose total is >= 3x
 *               the L2, so a repetition does not find its KV in the cache;
 *     bytes     the plan's IO model (treeplan_io, fp16) and the bytes the
 *               device work list really reads (KV, partials);
 *     floor     max(U / copy bandwidth, F / fp16 matmul rate), both measured
 *               in this run: U = tokens stored in the tree x Hkv x D x 2 x 2,
 *               F = sum over queries of path length x Hq x D x 4;
 *     check     every algorithm's output against seq's (relative L2).
 *   With --peer SCRIPT the PyTorch peers (bench/torch_tree_baselines.py) run
 *   first in a child process on the same (P, B, S, heads) shapes; their
 *   times join the table.  K/V/Q are random (never zeros: METHOD.md).
 *
 *   Cases (--cases takes names or groups, comma separated):
 *     perf     the ten PERF.md reference rows
 *     fewshot  prompt 4000, b = 20/30/50 (suffix 256/400/400), both head shapes
 *     reason   sorting and doc-merge replays (median tree, busiest iteration)
 *     spec     speculative token trees t = 32/64/128/256 over 1000 tokens
 *     grid     prefix 1k/4k/8k/32k x branches 1/16/64/256 x suffix 64
 *   Synthetic (P, B, S): a prompt of P tokens and B branches of S tokens, one
 *   query at the end of each branch; S = 0 means one token per branch (the
 *   query's own), or with B = 1 the query is the prompt's last token.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

int bench_attn_main(int argc, char **argv);

#ifndef HAVE_CUDA

int bench_attn_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "deftree bench attn: this build has no CUDA (configure --with-cuda)\n");
	return 1;
}

#else

#include "kernels.h"
#include "kvpool.h"
#include "tree.h"
#include "treeplan.h"
#include "workload.h"

#define BA_PAGE 16          /* KV page size of the benchmark pools */
#define BA_L2_MULT 3        /* rotating inputs cover this many L2 sizes */
#define BA_MAX_COPIES 64
#define BA_TIME_BUDGET 0.25 /* seconds of timed repetitions per algorithm */

// ---- cases

enum ba_kind { BA_SYN, BA_SPEC, BA_REASON };

struct ba_case {
	char name[48];
	const char *group;
	enum ba_kind kind;
	int32_t P, B, S;   /* synthetic; spec: P = prefix, B = t */
	int32_t hq, hkv, d;
	const char *file;  /* spec / reasoning: file name under --workloads */
	bool peer;         /* the PyTorch peers run this shape */
	bool peer_approx;  /* ... as (P, B, S) of a different tree */
};

static int ba_n_cases;
static struct ba_case ba_cases[96];

static void ba_add(const char *name, const char *group, enum ba_kind kind, int32_t P, int32_t B, int32_t S,
		   int32_t hq, int32_t hkv, const char *file, bool peer, bool approx)
{
	DT_ASSERT(ba_n_cases < (int)DT_ARRAY_LEN(ba_cases));
	struct ba_case *c = &ba_cases[ba_n_cases++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->group = group;
	c->kind = kind;
	c->P = P;
	c->B = B;
	c->S = S;
	c->hq = hq;
	c->hkv = hkv;
	c->d = 128;
	c->file = file;
	c->peer = peer;
	c->peer_approx = approx;
}

static void ba_build_cases(void)
{
	// PERF.md rows (Llama-3-8B heads 32/8, Llama-2-7B 32/32, dim 128)
	ba_add("fewshot-l3", "perf", BA_SYN, 4000, 20, 256, 32, 8, NULL, true, false);
	ba_add("fewshot-l2", "perf", BA_SYN, 4000, 20, 256, 32, 32, NULL, true, false);
	ba_add("fewshot50-l3", "perf", BA_SYN, 4000, 50, 400, 32, 8, NULL, true, false);
	ba_add("reason-l2", "perf", BA_SYN, 1000, 10, 512, 32, 32, NULL, true, false);
	ba_add("wide64-l3", "perf", BA_SYN, 8000, 64, 128, 32, 8, NULL, true, false);
	ba_add("wide256-l3", "perf", BA_SYN, 8000, 256, 64, 32, 8, NULL, true, false);
	ba_add("spec128-l2", "perf", BA_SYN, 2000, 128, 0, 32, 32, NULL, true, false);
	ba_add("spec256-l3", "perf", BA_SYN, 1000, 256, 0, 32, 8, NULL, true, false);
	ba_add("long32k-l3", "perf", BA_SYN, 32000, 16, 512, 32, 8, NULL, true, false);
	ba_add("single-l3", "perf", BA_SYN, 8000, 1, 0, 32, 8, NULL, true, false);
	// few-shot
	ba_add("fewshot30-l3", "fewshot", BA_SYN, 4000, 30, 400, 32, 8, NULL, true, false);
	ba_add("fewshot30-l2", "fewshot", BA_SYN, 4000, 30, 400, 32, 32, NULL, true, false);
	ba_add("fewshot50-l2", "fewshot", BA_SYN, 4000, 50, 400, 32, 32, NULL, true, false);
	// reasoning replays
	ba_add("sorting-l3", "reason", BA_REASON, 0, 0, 0, 32, 8, "sorting128ToT.json", false, false);
	ba_add("sorting-l2", "reason", BA_REASON, 0, 0, 0, 32, 32, "sorting128ToT.json", false, false);
	ba_add("docmerge-l3", "reason", BA_REASON, 0, 0, 0, 32, 8, "docmergeToT.json", false, false);
	ba_add("docmerge-l2", "reason", BA_REASON, 0, 0, 0, 32, 32, "docmergeToT.json", false, false);
	// speculative token trees (real structures; the peer runs P, t, 0)
	static const char *const spec_files[] = { "spec_tree_size32.json", "spec_tree_size64.json",
						  "spec_tree_size128.json", "spec_tree_size256.json" };
	static const int32_t spec_t[] = { 32, 64, 128, 256 };
	for (int i = 0; i < 4; i++) {
		char nm[48];
		snprintf(nm, sizeof(nm), "spec-t%d-l3", spec_t[i]);
		ba_add(nm, "spec", BA_SPEC, 1000, spec_t[i], 0, 32, 8, spec_files[i], true, true);
	}
	// synthetic grid
	static const int32_t gp[] = { 1000, 4000, 8000, 32000 }, gb[] = { 1, 16, 64, 256 };
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++) {
				char nm[48];
				snprintf(nm, sizeof(nm), "grid-%dk-%d-%s", gp[i] / 1000, gb[j], h ? "l2" : "l3");
				/* the peers materialize per-branch KV and an fp32 reference:
				 * run them where that stays moderate */
				bool peer = (double)gb[j] * (gp[i] + 64) <= 64.0 * 8064;
				ba_add(nm, "grid", BA_SYN, gp[i], gb[j], 64, 32, h ? 32 : 8, NULL, peer, false);
			}
}

static bool ba_selected(const struct ba_case *c, const char *list)
{
	if (!list || !*list || !strcmp(list, "all"))
		return true;
	char *dup = xstrdup(list), *save = NULL;
	bool hit = false;
	for (char *tok = strtok_r(dup, ",", &save); tok && !hit; tok = strtok_r(NULL, ",", &save))
		hit = !strcmp(tok, c->name) || !strcmp(tok, c->group);
	free(dup);
	return hit;
}

// ---- trees

static int ba_append(struct tree *t, int32_t node, int32_t n, char *err)
{
	int32_t *ids = xcalloc((size_t)n + 1, sizeof(int32_t));
	int rc = tree_append(t, node, ids, NULL, NULL, n, 0, err);
	free(ids);
	return rc;
}

static struct tree *ba_new_tree(struct kvpool *pool, int32_t prompt, char *err)
{
	struct tree_params tp = tree_default_params();
	tp.n_alt = 0;
	int32_t *ids = xcalloc((size_t)prompt + 1, sizeof(int32_t));
	struct tree *t = tree_new(&tp, pool, ids, prompt, err);
	free(ids);
	return t;
}

struct ba_tree {
	struct kvpool *pool;
	struct tree *t;
	struct workload *w;
	struct treeplan_query *q;
	int32_t nq;
	char desc[96];
};

static void ba_tree_free(struct ba_tree *bt)
{
	tree_free(bt->t);
	kvpool_free(bt->pool);
	workload_free(bt->w);
	free(bt->q);
	memset(bt, 0, sizeof(*bt));
}

/* The busiest iteration of the median-size tree of a reasoning file. */
static int ba_reason_shape(const struct workload *w, int32_t *tree_i, int32_t *iter)
{
	int32_t n = w->n_trees;
	if (n < 1)
		return -1;
	int32_t *order = xmallocarray((size_t)n, sizeof(int32_t));
	for (int32_t i = 0; i < n; i++)
		order[i] = i;
	for (int32_t i = 1; i < n; i++) /* insertion sort by tokens */
		for (int32_t j = i; j > 0 && w->trees[order[j]].n_tokens < w->trees[order[j - 1]].n_tokens; j--) {
			int32_t x = order[j];
			order[j] = order[j - 1];
			order[j - 1] = x;
		}
	*tree_i = order[n / 2];
	free(order);
	const struct workload_tree *wt = &w->trees[*tree_i];
	int32_t best = -1;
	*iter = 1;
	for (int32_t it = 1; it <= wt->n_iters; it++) {
		int32_t live = workload_tree_live(wt, it, NULL);
		if (live >= best) {
			best = live;
			*iter = it;
		}
	}
	return 0;
}

/* Tokens the case's tree will hold (for sizing the pool), or -1. */
static int ba_build_tree(const struct ba_case *c, const char *wdir, struct ba_tree *bt, char *err)
{
	memset(bt, 0, sizeof(*bt));
	int64_t tokens = 0, nodes = 0;
	char path[4096];
	int32_t tree_i = 0, iter = 0;
	if (c->kind == BA_SYN) {
		tokens = c->P + (int64_t)c->B * DT_MAX(c->S, 1);
		nodes = c->B + 1;
	} else {
		snprintf(path, sizeof(path), "%s/%s", wdir, c->file);
		bt->w = workload_load(path, err);
		if (!bt->w)
			return -1;
		if (c->kind == BA_SPEC) {
			if (bt->w->kind != WORKLOAD_SPEC)
				return dt_err(err, "%s: not a speculative tree", path);
			tokens = c->P + bt->w->spec->size;
			nodes = bt->w->spec->size + 1;
		} else {
			if (bt->w->kind != WORKLOAD_REASONING || ba_reason_shape(bt->w, &tree_i, &iter))
				return dt_err(err, "%s: not a reasoning workload", path);
			tokens = bt->w->trees[tree_i].n_tokens;
			nodes = bt->w->trees[tree_i].n_nodes;
		}
	}
	struct kvpool_params kp = kvpool_default_params();
	kp.page_size = BA_PAGE;
	kp.n_kv_heads = c->hkv;
	kp.head_dim = c->d;
	kp.elt_bytes = 2;
	kp.host_storage = false;
	int64_t pages = tokens / BA_PAGE + 2 * nodes + 64;
	kp.budget_bytes = (size_t)pages * BA_PAGE * c->hkv * c->d * 2 * 2;
	bt->pool = kvpool_new(&kp, err);
	if (!bt->pool)
		return -1;

	if (c->kind == BA_SYN) {
		bt->t = ba_new_tree(bt->pool, c->P, err);
		if (!bt->t)
			return -1;
		if (!(c->B == 1 && c->S == 0))
			for (int32_t b = 0; b < c->B; b++) {
				int32_t ch = tree_add_child(bt->t, tree_root(bt->t), err);
				if (ch < 0 || ba_append(bt->t, ch, DT_MAX(c->S, 1), err))
					return -1;
			}
		snprintf(bt->desc, sizeof(bt->desc), "P=%d B=%d S=%d", c->P, c->B, c->S);
	} else if (c->kind == BA_SPEC) {
		const struct workload_spec *sp = bt->w->spec;
		bt->t = ba_new_tree(bt->pool, c->P, err);
		if (!bt->t)
			return -1;
		int32_t *id = xmallocarray((size_t)sp->size, sizeof(int32_t));
		for (int32_t i = 0; i < sp->size; i++) {
			int32_t parent = sp->parent[i] < 0 ? tree_root(bt->t) : id[sp->parent[i]];
			id[i] = tree_add_child(bt->t, parent, err);
			if (id[i] < 0 || ba_append(bt->t, id[i], 1, err)) {
				free(id);
				return -1;
			}
		}
		bt->nq = sp->size;
		bt->q = xmallocarray((size_t)sp->size, sizeof(*bt->q));
		for (int32_t i = 0; i < sp->size; i++)
			bt->q[i] = (struct treeplan_query){ id[i], 0 };
		free(id);
		snprintf(bt->desc, sizeof(bt->desc), "P=%d t=%d depth %d", c->P, sp->size, sp->max_depth);
	} else {
		const struct workload_tree *wt = &bt->w->trees[tree_i];
		int32_t *id = xmallocarray((size_t)wt->n_nodes, sizeof(int32_t));
		bt->t = ba_new_tree(bt->pool, wt->nodes[0].value, err);
		if (!bt->t) {
			free(id);
			return -1;
		}
		id[0] = tree_root(bt->t);
		bt->q = xmallocarray((size_t)wt->n_nodes, sizeof(*bt->q));
		bt->nq = 0;
		for (int32_t i = 1; i < wt->n_nodes; i++) {
			const struct workload_node *nd = &wt->nodes[i];
			int32_t grown = DT_MIN(nd->value, iter - nd->start + 1);
			id[i] = -1;
			if (grown <= 0 || id[nd->parent] < 0)
				continue;
			id[i] = tree_add_child(bt->t, id[nd->parent], err);
			if (id[i] < 0 || ba_append(bt->t, id[i], grown, err)) {
				free(id);
				return -1;
			}
			if (nd->start <= iter && iter <= nd->end)
				bt->q[bt->nq++] = (struct treeplan_query){ id[i], grown - 1 };
		}
		free(id);
		snprintf(bt->desc, sizeof(bt->desc), "tree %d iter %d: %d nodes", tree_i, iter, wt->n_nodes);
	}
	if (!bt->q) {
		int32_t n = treeplan_leaf_queries(bt->t, NULL, 0);
		bt->q = xmallocarray((size_t)n + 1, sizeof(*bt->q));
		bt->nq = treeplan_leaf_queries(bt->t, bt->q, n);
	}
	return bt->nq > 0 ? 0 : dt_err(err, "%s: no queries", c->name);
}

// ---- the PyTorch peers

struct ba_peer {
	bool have;
	double seq_us, cascade_us, floor_us, err_seq, err_cascade;
};

static struct ba_peer ba_peers[DT_ARRAY_LEN(ba_cases)];
static double ba_peer_bw, ba_peer_fl;
static char ba_peer_torch[64];

static int ba_run_peer(const char *script, const bool *sel, double mem_limit, char *err)
{
	char dir[] = "/tmp/deftree-peer-XXXXXX";
	if (!mkdtemp(dir))
		return dt_err(err, "peer: mkdtemp: %s", strerror(errno));
	char **args = xcalloc(DT_ARRAY_LEN(ba_cases) + 4, sizeof(char *));
	int na = 0;
	args[na++] = xstrdup("python3");
	args[na++] = xstrdup(script);
	for (int i = 0; i < ba_n_cases; i++) {
		const struct ba_case *c = &ba_cases[i];
		if (!sel[i] || !c->peer)
			continue;
		/* the script materializes per-branch KV and an fp32 reference */
		double L = (double)c->P + c->S;
		double bytes = (double)c->B * L * (c->hkv * c->d * 2 * 2 + c->hq * c->d * 4 * 2 + c->hq * 4 * 2);
		if (bytes > mem_limit) {
			printf("peer: %s skipped (needs about %.0f GB)\n", c->name, bytes / 1e9);
			continue;
		}
		char spec[160];
		snprintf(spec, sizeof(spec), "%.47s:%d:%d:%d:%d:%d:%d", c->name, c->P, c->B, c->S, c->hq, c->hkv,
			 c->d);
		args[na++] = xstrdup(spec);
	}
	int rc = 0;
	if (na > 2) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			setenv("OUT", dir, 1);
			setenv("PYTHONUNBUFFERED", "1", 1);
			execvp("python3", args);
			_exit(127);
		}
		int st = 0;
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = dt_err(err, "peer: %s failed (status %d)", script, st);
	}
	for (int i = 0; i < na; i++)
		free(args[i]);
	free(args);
	if (rc || na <= 2)
		return rc;
	char path[256];
	snprintf(path, sizeof(path), "%s/tree_attn_baselines.json", dir);
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root)
		return dt_err(err, "%s: %s", path, je.text);
	ba_peer_bw = json_number_value(json_object_get(root, "copy_bw_TBs")) * 1e12;
	ba_peer_fl = json_number_value(json_object_get(root, "matmul_TFLOPs")) * 1e12;
	snprintf(ba_peer_torch, sizeof(ba_peer_torch), "%s",
		 json_string_value(json_object_get(root, "torch")) ? json_string_value(json_object_get(root, "torch"))
								     : "?");
	json_t *rows = json_object_get(root, "rows");
	size_t k;
	json_t *r;
	json_array_foreach(rows, k, r)
	{
		const char *nm = json_string_value(json_object_get(r, "name"));
		for (int i = 0; nm && i < ba_n_cases; i++)
			if (!strcmp(nm, ba_cases[i].name)) {
				struct ba_peer *p = &ba_peers[i];
				p->have = true;
				p->seq_us = json_number_value(json_object_get(r, "t_seq_us"));
				p->cascade_us = json_number_value(json_object_get(r, "t_cascade_us"));
				p->floor_us = json_number_value(json_object_get(r, "t_floor_us"));
				p->err_seq = json_number_value(json_object_get(r, "err_seq"));
				p->err_cascade = json_number_value(json_object_get(r, "err_cascade"));
			}
	}
	json_decref(root);
	unlink(path);
	rmdir(dir);
	return 0;
}

// ---- options that shape the runs
static int ba_cc = -1;      /* cc_max_rows (-1: the default) */
static int ba_copies = 0;   /* KV copies (0: enough to cover BA_L2_MULT x L2) */
static int ba_reps = 0;     /* timed repetitions (0: by the time budget) */
static int ba_split = -1;   /* work-list split (-1: by algorithm) */
static int ba_merge = -1;   /* merging (-1: default) */
static bool ba_prof;        /* --prof: where the fused kernel's time goes (cuda_attn_profile) */

// ---- timing one algorithm

struct ba_ctx {
	struct cuda_attn *at;
	struct cuda_kv *kv;
	void **q;
	int n_copies;
	float *out;
};

static int ba_step(void *vctx, int iter, char *err)
{
	struct ba_ctx *c = vctx;
	int copy = iter % c->n_copies;
	return cuda_attn_run(c->at, c->kv, 0, copy, c->q[copy], c->out, err);
}

struct ba_result {
	bool ran;
	struct cuda_bench_times tm;
	struct treeplan_io io;
	struct cuda_attn_stats st;
	double agree; /* relative L2 difference to seq's output */
	bool have_prof;
	struct cuda_attn_prof prof;
	char err[DT_ERR_LEN];
};

static double ba_rel(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];
		num += d * d;
		den += (double)b[i] * b[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The case's plan for algorithm algo (NULL and err on failure; *rc from the update). */
static struct treeplan *ba_plan(const struct ba_case *c, const struct ba_tree *bt, int algo, int32_t block,
				int *rc, char *err)
{
	struct treeplan_params pp = treeplan_default_params();
	pp.algo = (enum treeplan_algo)algo;
	pp.block_size = block;
	pp.tile_queries = DT_MAX(1, 128 / (c->hq / c->hkv));
	struct treeplan *pl = treeplan_new(&pp, err);
	*rc = pl ? treeplan_update(pl, bt->t, bt->q, bt->nq, err) : -1;
	return pl;
}

/* The case's kernel parameters with the command line's work-list options. */
static struct cuda_attn_params ba_attn_params(const struct ba_case *c, enum cuda_dtype dt)
{
	struct cuda_attn_params ap = cuda_attn_default_params();
	ap.n_head = c->hq;
	ap.n_kv_head = c->hkv;
	ap.head_dim = c->d;
	ap.type = dt;
	if (ba_cc >= 0)
		ap.cc_max_rows = ba_cc;
	if (ba_split >= 0)
		ap.split = ba_split;
	if (ba_merge >= 0)
		ap.merge = ba_merge;
	return ap;
}

static int ba_run_algo(const struct ba_case *c, struct ba_tree *bt, int algo, enum cuda_dtype dt,
		       int32_t block, struct ba_ctx *ctx, float *host_out, const float *seq_out,
		       struct ba_result *res, char *err)
{
	memset(res, 0, sizeof(*res));
	int rc;
	struct treeplan *pl = ba_plan(c, bt, algo, block, &rc, err);
	if (!pl)
		return -1;
	struct treeplan_io_params iop = { c->hq, c->hkv, c->d, 2 };
	if (!rc)
		treeplan_io(pl, &iop, &res->io);
	struct cuda_attn_params ap = ba_attn_params(c, dt);
	struct cuda_attn *at = rc ? NULL : cuda_attn_new(&ap, err);
	if (!rc && !at)
		rc = -1;
	rc = rc ? rc : cuda_attn_set_plan(at, treeplan_flat(pl), algo, err);
	treeplan_free(pl);
	if (rc) {
		cuda_attn_free(at);
		return rc;
	}
	cuda_attn_get_stats(at, &res->st);
	ctx->at = at;
	/* estimate one step, then as many repetitions as the budget allows */
	double t0 = dt_now_s();
	for (int i = 0; i < 2 && !rc; i++)
		rc = ba_step(ctx, i, err);
	rc = rc ? rc : cuda_sync(err);
	double est = (dt_now_s() - t0) / 2;
	int reps = ba_reps > 0 ? ba_reps : (int)DT_MIN(200.0, DT_MAX(10.0, BA_TIME_BUDGET / DT_MAX(est, 1e-6)));
	rc = rc ? rc : cuda_bench_time(ba_step, ctx, 3, reps, &res->tm, err);
	if (!rc && ba_prof && algo != TREEPLAN_TREE_MASK) {
		const int copy = reps % ctx->n_copies;
		rc = cuda_attn_profile(at, ctx->kv, 0, copy, ctx->q[copy], ctx->out, &res->prof, err);
		res->have_prof = !rc;
	}
	size_t nout = (size_t)bt->nq * c->hq * c->d;
	rc = rc ? rc : cuda_fill_nan(ctx->out, nout, err);
	rc = rc ? rc : ba_step(ctx, 0, err);
	rc = rc ? rc : cuda_sync(err);
	rc = rc ? rc : cuda_download(host_out, ctx->out, nout * sizeof(float), err);
	if (!rc) {
		bool finite = true;
		for (size_t i = 0; i < nout; i++)
			finite = finite && isfinite(host_out[i]);
		res->agree = !finite ? INFINITY : seq_out ? ba_rel(host_out, seq_out, nout) : 0.0;
		res->ran = true;
	}
	cuda_attn_free(at);
	ctx->at = NULL;
	return rc;
}

// ---- output

static json_t *ba_io_json(const struct treeplan_io *io)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "kv", (json_int_t)io->kv, "q", (json_int_t)io->q,
			 "mask", (json_int_t)io->mask, "partial", (json_int_t)io->partial, "inter",
			 (json_int_t)io->inter, "out", (json_int_t)io->out, "plan", (json_int_t)io->plan, "total",
			 (json_int_t)io->total);
}

/* --prof: indented lines under the case's table line (the final table has none) */
static const char *const ba_cls_name[4] = { "cc", "r32", "r64", "r128" };

static void ba_print_prof(const char *algo, const struct cuda_attn_prof *p)
{
	const double model = p->model_max > 0 ? p->model_mean / p->model_max : 0;
	printf("    prof %s: %d CTAs, span %.1f us, CTA segments max %.1f mean %.1f us (balance %.2f, "
	       "model %.2f), prologue max %.1f mean %.1f us, reduction %s: tail %.1f us, per CTA max %.1f "
	       "mean %.1f us\n",
	       algo, p->n_cta, p->span_us, p->cta_max_us, p->cta_mean_us,
	       p->cta_max_us > 0 ? p->cta_mean_us / p->cta_max_us : 0.0, model, p->pro_max_us,
	       p->pro_mean_us, !p->fused ? "separate" : p->help ? "fused+help" : "fused", p->tail_us,
	       p->red_max_us, p->red_mean_us);
	printf("    prof   step %.1f us (events) = kernels %.1f us (first CTA start to the reduction's end) "
	       "+ %.1f us outside; reduction grid: starts %+.1f us, past its wait %+.1f us after the last "
	       "CTA, runs %.1f us\n",
	       p->step_us, p->timeline_us, p->step_us - p->timeline_us, p->red_start_us, p->red_wait_us,
	       p->red_us);
	for (int k = 0; k < 4; k++)
		for (int m = 0; m < 2; m++) {
			const struct cuda_attn_prof_class *c = &p->cls[k][m];
			if (c->n_seg == 0)
				continue;
			printf("    prof   %-4s %-6s %6d segs %8lld tiles %9.1f us (%.3f us/tile); fit %.3f us/tile "
			       "+ %.2f us/seg; per seg: query %.2f (first of a CTA %.2f x %d, others %.2f), "
			       "tiles %.2f (%.3f/tile), end %.2f us\n",
			       ba_cls_name[k], m ? "masked" : "full", c->n_seg, (long long)c->n_tiles, c->us,
			       c->n_tiles > 0 ? c->us / c->n_tiles : 0.0, c->us_per_tile, c->us_fixed,
			       c->q_us / c->n_seg, c->n_first ? c->q_first_us / c->n_first : 0.0, c->n_first,
			       c->n_seg > c->n_first ? (c->q_us - c->q_first_us) / (c->n_seg - c->n_first) : 0.0,
			       c->loop_us / c->n_seg,
			       c->n_tiles > 0 ? c->loop_us / c->n_tiles : 0.0, c->epi_us / c->n_seg);
		}
}

static json_t *ba_prof_json(const struct cuda_attn_prof *p)
{
	json_t *jc = json_array();
	for (int k = 0; k < 4; k++)
		for (int m = 0; m < 2; m++) {
			const struct cuda_attn_prof_class *c = &p->cls[k][m];
			if (c->n_seg)
				json_array_append_new(jc, json_pack("{s:s,s:b,s:i,s:I,s:f,s:f,s:f,s:f,s:f,s:f}",
								    "class", ba_cls_name[k], "masked", m,
								    "segments", c->n_seg, "tiles",
								    (json_int_t)c->n_tiles, "us", c->us,
								    "fit_us_per_tile", c->us_per_tile,
								    "fit_us_fixed", c->us_fixed, "query_us",
								    c->q_us, "tiles_us", c->loop_us, "end_us",
								    c->epi_us));
		}
	json_t *j = json_pack("{s:f,s:f,s:f,s:f,s:f}", "step_us", p->step_us, "timeline_us",
			      p->timeline_us, "red_start_us", p->red_start_us, "red_wait_us",
			      p->red_wait_us, "red_us", p->red_us);
	json_t *k = json_pack("{s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:s,s:f,s:o}", "ctas", p->n_cta,
			 "prologue_max_us", p->pro_max_us, "prologue_mean_us", p->pro_mean_us, "span_us",
			 p->span_us, "cta_max_us", p->cta_max_us, "cta_mean_us", p->cta_mean_us, "red_max_us",
			 p->red_max_us, "red_mean_us", p->red_mean_us, "model_max", p->model_max,
			 "model_mean", p->model_mean, "reduction",
			 !p->fused ? "separate" : p->help ? "fused+help" : "fused", "tail_us", p->tail_us,
			 "classes", jc);
	json_object_update(k, j);
	json_decref(j);
	return k;
}

/* --plan-only: each case's work list built on the host for n_sm SMs (no
 * device, no timing): segments, partial slots and bytes, and the cost model's
 * balance (mean / busiest CTA), for every fused-kernel algorithm selected. */
static int ba_plan_only(const bool *sel, const bool *run_algo, const char *wdir, int32_t block, int n_sm)
{
	char err[DT_ERR_LEN];
	int status = 0;
	printf("work lists on %d SMs (host only, no device; the cost model's units)\n", n_sm);
	printf("%-14s %-12s %7s %7s %9s %8s %9s %9s %9s %7s\n", "case", "algo", "units", "segs", "slots",
	       "CTAs", "KV MB", "part MB", "model", "balance");
	for (int ci = 0; ci < ba_n_cases; ci++) {
		if (!sel[ci])
			continue;
		const struct ba_case *c = &ba_cases[ci];
		struct ba_tree bt;
		if (ba_build_tree(c, wdir, &bt, err)) {
			fprintf(stderr, "bench attn: %s: %s\n", c->name, err);
			ba_tree_free(&bt);
			status = 1;
			continue;
		}
		for (int algo = 0; algo < TREEPLAN_N_ALGO; algo++) {
			if (!run_algo[algo] || algo == TREEPLAN_TREE_MASK)
				continue;
			int rc;
			struct treeplan *pl = ba_plan(c, &bt, algo, block, &rc, err);
			struct cuda_attn_params ap = ba_attn_params(c, CUDA_DT_F16);
			struct cuda_attn_stats st;
			rc = rc ? rc : cuda_attn_plan_model(&ap, n_sm, treeplan_flat(pl), algo, &st, err);
			treeplan_free(pl);
			if (rc) {
				fprintf(stderr, "bench attn: %s %s: %s\n", c->name,
					treeplan_algo_name((enum treeplan_algo)algo), err);
				status = 1;
				continue;
			}
			printf("%-14s %-12s %7d %7d %9d %8d %9.1f %9.1f %9.0f %7.2f\n", c->name,
			       treeplan_algo_name((enum treeplan_algo)algo), st.n_units, st.n_segments, st.n_slots,
			       st.n_cta_used, st.kv_bytes / 1e6, st.partial_bytes / 1e6, st.cost_max,
			       st.cost_max > 0 ? st.cost_mean / st.cost_max : 0.0);
		}
		ba_tree_free(&bt);
	}
	return status;
}

static void ba_usage(FILE *f)
{
	fprintf(f,
		"usage: deftree bench attn [options]\n"
		"  --cases LIST      case names or groups, comma separated (perf, fewshot, reason, spec,\n"
		"                    grid, all; default all)\n"
		"  --json FILE       write every figure as JSON\n"
		"  --peer SCRIPT     run the PyTorch peers (bench/torch_tree_baselines.py) first\n"
		"  --workloads DIR   folder of the DeFT workload files (default shared/workloads/deft,\n"
		"                    then ../shared/workloads/deft)\n"
		"  --dtype fp16|bf16 KV / Q type (default fp16)\n"
		"  --block N         deft-flatten block size of the plan (default 128)\n"
		"  --algos LIST      seq,deft-node,deft-flatten,tree-mask (default all; seq is the\n"
		"                    reference of the agreement check)\n"
		"  --copies N        KV/Q copies to rotate over (default: enough for 3 x L2)\n"
		"  --cc N            rows up to which the CUDA-core path runs (0..4, default 4)\n"
		"  --split 0|1 --merge 0|1   work-list options of the fused kernel\n"
		"  --reps N          timed repetitions (default: 0.25 s worth, 10..200)\n"
		"  --prof            after the timing, one run of each fused-kernel algorithm with\n"
		"                    timestamps: CTA balance against the cost model, time per tile\n"
		"                    and per segment of each row class\n"
		"  --plan-only N     no device: build each case's work list for N SMs on the host and\n"
		"                    print its segments, partial bytes and the cost model's balance\n"
		"                    (DT_ATTN_* knobs apply, kernels/NOTES.md)\n"
		"  --list            print the cases and exit\n");
}

int bench_attn_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cases", required_argument, NULL, 'c' }, { "json", required_argument, NULL, 'j' },
		{ "peer", required_argument, NULL, 'p' },  { "workloads", required_argument, NULL, 'w' },
		{ "dtype", required_argument, NULL, 't' }, { "block", required_argument, NULL, 'b' },
		{ "list", no_argument, NULL, 'l' },        { "help", no_argument, NULL, 'h' },
		{ "algos", required_argument, NULL, 'a' }, { "copies", required_argument, NULL, 'C' },
		{ "cc", required_argument, NULL, 'r' },    { "reps", required_argument, NULL, 'R' },
		{ "split", required_argument, NULL, 'S' }, { "merge", required_argument, NULL, 'M' },
		{ "prof", no_argument, NULL, 'P' },        { "plan-only", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cases = NULL, *json_path = NULL, *peer = NULL, *wdir = NULL;
	enum cuda_dtype dt = CUDA_DT_F16;
	int32_t block = 128;
	bool list = false;
	int plan_sms = 0;
	bool run_algo[TREEPLAN_N_ALGO] = { true, true, true, true };
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:j:p:w:t:b:lha:C:r:R:S:M:PO:", opts, NULL)) != -1) {
		switch (o) {
		case 'O':
			plan_sms = atoi(optarg);
			if (plan_sms < 1 || plan_sms > 4096) {
				fprintf(stderr, "bench attn: --plan-only %s (expected SMs, 1..4096)\n", optarg);
				return 2;
			}
			break;
		case 'a': {
			char *dup = xstrdup(optarg), *save = NULL;
			for (int a = 0; a < TREEPLAN_N_ALGO; a++)
				run_algo[a] = false;
			for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				enum treeplan_algo al;
				char e2[DT_ERR_LEN];
				if (treeplan_algo_parse(tok, &al, e2)) {
					fprintf(stderr, "bench attn: %s\n", e2);
					free(dup);
					return 2;
				}
				run_algo[al] = true;
			}
			free(dup);
			break;
		}
		case 'C': ba_copies = atoi(optarg); break;
		case 'r': ba_cc = atoi(optarg); break;
		case 'R': ba_reps = atoi(optarg); break;
		case 'S': ba_split = atoi(optarg); break;
		case 'M': ba_merge = atoi(optarg); break;
		case 'P': ba_prof = true; break;
		case 'c': cases = optarg; break;
		case 'j': json_path = optarg; break;
		case 'p': peer = optarg; break;
		case 'w': wdir = optarg; break;
		case 't':
			if (!strcmp(optarg, "bf16"))
				dt = CUDA_DT_BF16;
			else if (strcmp(optarg, "fp16")) {
				fprintf(stderr, "bench attn: --dtype %s (expected fp16 or bf16)\n", optarg);
				return 2;
			}
			break;
		case 'b':
			block = atoi(optarg);
			if (block < 1) {
				fprintf(stderr, "bench attn: --block %s (expected >= 1)\n", optarg);
				return 2;
			}
			break;
		case 'l': list = true; break;
		case 'h': ba_usage(stdout); return 0;
		default: ba_usage(stderr); return 2;
		}
	}
	ba_n_cases = 0;
	ba_build_cases();
	bool sel[DT_ARRAY_LEN(ba_cases)];
	int n_sel = 0;
	for (int i = 0; i < ba_n_cases; i++) {
		sel[i] = ba_selected(&ba_cases[i], cases);
		n_sel += sel[i];
		if (list && sel[i])
			printf("%-18s %-8s %d/%d/%d\n", ba_cases[i].name, ba_cases[i].group, ba_cases[i].hq,
			       ba_cases[i].hkv, ba_cases[i].d);
	}
	if (list)
		return 0;
	if (n_sel == 0) {
		fprintf(stderr, "bench attn: no case matches \"%s\" (try --list)\n", cases);
		return 2;
	}
	if (!wdir)
		wdir = access("shared/workloads/deft", R_OK) == 0 ? "shared/workloads/deft"
								  : "../shared/workloads/deft";
	if (plan_sms > 0)
		return ba_plan_only(sel, run_algo, wdir, block, plan_sms);
	char err[DT_ERR_LEN];
	if (cuda_device_count() < 1) {
		fprintf(stderr, "bench attn: no CUDA device\n");
		return 1;
	}
	struct cuda_device_info di;
	if (cuda_device_query(0, &di, err)) {
		fprintf(stderr, "bench attn: %s\n", err);
		return 1;
	}

	memset(ba_peers, 0, sizeof(ba_peers));
	if (peer && ba_run_peer(peer, sel, 0.6 * (double)di.mem_total, err))
		fprintf(stderr, "bench attn: %s (continuing without the peers)\n", err);

	double bw = 0, fl = 0;
	if (cuda_bench_copy_bw((size_t)2 << 30, 20, &bw, err) || cuda_bench_gemm_rate(8192, 10, &fl, err)) {
		fprintf(stderr, "bench attn: %s\n", err);
		return 1;
	}
	printf("device %s, %d SMs, L2 %.0f MB: copy %.2f TB/s (read + write), fp16 matmul %.0f TFLOP/s; KV %s\n",
	       di.name, di.n_sm, di.l2_bytes / 1e6, bw / 1e12, fl / 1e12, cuda_dtype_name(dt));
	if (ba_peer_bw > 0)
		printf("peers (torch %s): copy %.2f TB/s, matmul %.0f TFLOP/s\n", ba_peer_torch, ba_peer_bw / 1e12,
		       ba_peer_fl / 1e12);

	json_t *jcases = json_array();
	char line[4096];
	char (*lines)[512] = xcalloc((size_t)ba_n_cases, sizeof(*lines));
	int status = 0;
	for (int ci = 0; ci < ba_n_cases; ci++) {
		if (!sel[ci])
			continue;
		const struct ba_case *c = &ba_cases[ci];
		struct ba_tree bt;
		if (ba_build_tree(c, wdir, &bt, err)) {
			fprintf(stderr, "bench attn: %s: %s\n", c->name, err);
			ba_tree_free(&bt);
			status = 1;
			continue;
		}
		struct tree_stats ts;
		tree_stats(bt.t, &ts);
		double U = (double)ts.stored_tokens * c->hkv * c->d * 2 * 2;
		double F = 0;
		for (int32_t i = 0; i < bt.nq; i++) {
			const struct tree_node *nd = tree_node(bt.t, bt.q[i].node);
			F += (double)(nd->pos0 + bt.q[i].index + 1) * c->hq * c->d * 4;
		}
		double f_io = U / bw, f_fl = F / fl, floor_s = DT_MAX(f_io, f_fl);

		/* rotating copies: together >= BA_L2_MULT x L2 */
		struct cuda_kv_params kp = cuda_kv_default_params();
		kp.n_pages = kvpool_n_pages(bt.pool);
		kp.page_size = BA_PAGE;
		kp.n_kv_heads = c->hkv;
		kp.head_dim = c->d;
		kp.type = dt;
		double pool_bytes = (double)kp.n_pages * BA_PAGE * c->hkv * c->d * 2 * 2;
		int copies = (int)ceil(BA_L2_MULT * (double)di.l2_bytes / DT_MAX(U, 1.0));
		copies = DT_MAX(1, DT_MIN(copies, BA_MAX_COPIES));
		if (ba_copies > 0)
			copies = ba_copies;
		while (copies > 1 && copies * pool_bytes > 16e9)
			copies--;
		kp.n_copies = copies;
		struct cuda_kv *kv = cuda_kv_new(&kp, err);
		size_t nout = (size_t)bt.nq * c->hq * c->d;
		struct ba_ctx ctx = { NULL, kv, xcalloc((size_t)copies, sizeof(void *)), copies, NULL };
		int rc = kv ? cuda_kv_fill_random(kv, 7 + ci, 1.0f, err) : -1;
		for (int i = 0; i < copies && !rc; i++) {
			ctx.q[i] = cuda_malloc(nout * 2, err);
			rc = ctx.q[i] ? cuda_fill_random(ctx.q[i], nout, dt, 1000 + 31 * ci + i, 1.0f, err) : -1;
		}
		ctx.out = rc ? NULL : cuda_malloc(nout * sizeof(float), err);
		if (!rc && !ctx.out)
			rc = -1;
		float *seq_out = xmalloc(nout * sizeof(float)), *tmp_out = xmalloc(nout * sizeof(float));
		struct ba_result res[TREEPLAN_N_ALGO];
		memset(res, 0, sizeof(res));
		for (int a = 0; a < TREEPLAN_N_ALGO && !rc; a++) {
			if (!run_algo[a])
				continue;
			if (ba_run_algo(c, &bt, a, dt, block, &ctx, a == 0 ? seq_out : tmp_out,
					a == 0 ? NULL : (res[0].ran ? seq_out : NULL), &res[a], err)) {
				snprintf(res[a].err, sizeof(res[a].err), "%s", err);
				fprintf(stderr, "bench attn: %s %s: %s\n", c->name,
					treeplan_algo_name((enum treeplan_algo)a), err);
				status = 1;
			}
		}
		if (rc) {
			fprintf(stderr, "bench attn: %s: %s\n", c->name, err);
			status = 1;
		}

		// one table line
		const double tseq = res[0].ran ? res[0].tm.median_s : 0;
		int n = snprintf(line, sizeof(line), "%-16s %5.1f %6.1f %5.1f/%5.1f", c->name, U / 1048576.0,
				 floor_s * 1e6, f_io * 1e6, f_fl * 1e6);
		static const int col_order[] = { TREEPLAN_DEFT_FLATTEN, TREEPLAN_DEFT_NODE, TREEPLAN_SEQ,
						 TREEPLAN_TREE_MASK };
		for (int k = 0; k < 4; k++) {
			const struct ba_result *r = &res[col_order[k]];
			if (r->ran)
				n += snprintf(line + n, sizeof(line) - n, " %8.1f %5.2fx", r->tm.median_s * 1e6,
					      r->tm.median_s / floor_s);
			else
				n += snprintf(line + n, sizeof(line) - n, " %8s %6s", "-", "");
		}
		const struct ba_peer *pe = &ba_peers[ci];
		if (pe->have)
			n += snprintf(line + n, sizeof(line) - n, " %8.1f %8.1f%s", pe->seq_us, pe->cascade_us,
				      c->peer_approx ? "~" : " ");
		else
			n += snprintf(line + n, sizeof(line) - n, " %8s %8s ", "-", "-");
		const struct ba_result *fr = &res[TREEPLAN_DEFT_FLATTEN];
		if (fr->ran && tseq > 0)
			n += snprintf(line + n, sizeof(line) - n, " %5.2f", tseq / fr->tm.median_s);
		if (fr->ran && pe->have)
			n += snprintf(line + n, sizeof(line) - n, " %5.2f",
				      DT_MIN(pe->seq_us, pe->cascade_us) * 1e-6 / fr->tm.median_s);
		if (fr->ran)
			n += snprintf(line + n, sizeof(line) - n, "  %4.0f GB/s", U / fr->tm.median_s / 1e9);
		double worst_agree = 0;
		for (int a = 1; a < TREEPLAN_N_ALGO; a++)
			if (res[a].ran)
				worst_agree = DT_MAX(worst_agree, res[a].agree);
		snprintf(line + n, sizeof(line) - n, "  %.0e", worst_agree);
		snprintf(lines[ci], sizeof(lines[ci]), "%.511s", line);
		printf("%s\n", line);
		for (int a = 0; a < TREEPLAN_N_ALGO; a++)
			if (res[a].have_prof)
				ba_print_prof(treeplan_algo_name((enum treeplan_algo)a), &res[a].prof);
		fflush(stdout);

		// JSON
		json_t *jc = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:I,s:i,s:f,s:f,s:f,s:f,s:f,s:i}", "name", c->name,
				       "group", c->group, "shape", bt.desc, "n_head", c->hq, "n_kv_head", c->hkv,
				       "head_dim", c->d, "tokens", (json_int_t)ts.stored_tokens, "queries", bt.nq,
				       "unique_kv_bytes", U, "flops", F, "floor_io_us", f_io * 1e6, "floor_flop_us",
				       f_fl * 1e6, "floor_us", floor_s * 1e6, "kv_copies", copies);
		json_t *ja = json_object();
		for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
			const struct ba_result *r = &res[a];
			if (!r->ran) {
				json_object_set_new(ja, treeplan_algo_name((enum treeplan_algo)a),
						    json_pack("{s:s}", "error", r->err[0] ? r->err : "not run"));
				continue;
			}
			json_t *jr = json_pack(
				"{s:f,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:o,s:{s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:I,s:f}}",
				"t_us", r->tm.median_s * 1e6, "t_alone_us", r->tm.median_alone_s * 1e6, "t_min_us",
				r->tm.min_s * 1e6, "t_max_us", r->tm.max_s * 1e6, "reps", r->tm.n, "over_floor",
				r->tm.median_s / floor_s, "bw_unique_GBs", U / r->tm.median_s / 1e9,
				"speedup_vs_seq", tseq > 0 ? tseq / r->tm.median_s : 0.0, "agree_vs_seq",
				isfinite(r->agree) ? r->agree : -1.0, "io_model", ba_io_json(&r->io), "exec",
				"kv_bytes", (json_int_t)r->st.kv_bytes, "partial_bytes", (json_int_t)r->st.partial_bytes,
				"scratch_bytes", (json_int_t)r->st.scratch_bytes, "units", r->st.n_units, "segments",
				r->st.n_segments, "cc_segments", r->st.n_cc_segments, "slots", r->st.n_slots,
				"ctas", r->st.n_cta_used, "cost_max", r->st.cost_max, "cost_mean", r->st.cost_mean,
				"plan_upload_bytes", (json_int_t)r->st.upload_bytes, "plan_build_s", r->st.build_s);
			if (r->have_prof)
				json_object_set_new(jr, "prof", ba_prof_json(&r->prof));
			json_object_set_new(ja, treeplan_algo_name((enum treeplan_algo)a), jr);
		}
		json_object_set_new(jc, "algos", ja);
		if (pe->have) {
			json_t *jp = json_pack("{s:f,s:f,s:f,s:f,s:f,s:b}", "seq_us", pe->seq_us, "cascade_us",
					       pe->cascade_us, "floor_us", pe->floor_us, "err_seq", pe->err_seq,
					       "err_cascade", pe->err_cascade, "approx_shape", c->peer_approx);
			if (fr->ran) {
				json_object_set_new(jp, "flatten_speedup_vs_seq",
						    json_real(pe->seq_us * 1e-6 / fr->tm.median_s));
				json_object_set_new(jp, "flatten_speedup_vs_cascade",
						    json_real(pe->cascade_us * 1e-6 / fr->tm.median_s));
			}
			json_object_set_new(jc, "peer", jp);
		}
		json_array_append_new(jcases, jc);

		for (int i = 0; i < copies; i++)
			cuda_free(ctx.q[i]);
		free(ctx.q);
		cuda_free(ctx.out);
		cuda_kv_free(kv);
		free(seq_out);
		free(tmp_out);
		ba_tree_free(&bt);
	}

	printf("\n%-16s %5s %6s %11s %8s %6s %8s %6s %8s %6s %8s %6s %8s %8s %5s %5s %9s %6s\n", "case", "U MiB",
	       "floor", "io/flop us", "flat us", "/floor", "node us", "/floor", "seq us", "/floor", "mask us",
	       "/floor", "pt seq", "pt casc", "xseq", "xpeer", "flat bw", "agree");
	for (int ci = 0; ci < ba_n_cases; ci++)
		if (sel[ci] && lines[ci][0])
			printf("%s\n", lines[ci]);
	printf("(times in us per layer-step, median; x = time / floor; xseq = seq / flat; xpeer = best PyTorch / "
	       "flat; ~ = peer on (P, t, 0); agree = worst rel. L2 vs seq)\n");
	free(lines);

	if (json_path) {
		json_t *root = json_pack("{s:s,s:i,s:f,s:f,s:f,s:s,s:o}", "device", di.name, "n_sm", di.n_sm,
					 "l2_bytes", (double)di.l2_bytes, "copy_bw_TBs", bw / 1e12, "matmul_TFLOPs",
					 fl / 1e12, "dtype", cuda_dtype_name(dt), "cases", jcases);
		if (ba_peer_bw > 0)
			json_object_set_new(root, "peer", json_pack("{s:s,s:f,s:f}", "torch", ba_peer_torch,
								    "copy_bw_TBs", ba_peer_bw / 1e12,
								    "matmul_TFLOPs", ba_peer_fl / 1e12));
		if (json_dump_file(root, json_path, JSON_INDENT(1))) {
			fprintf(stderr, "bench attn: cannot write %s\n", json_path);
			status = 1;
		}
		json_decref(root);
	} else {
		json_decref(jcases);
	}
	return status;
}

#endif
