/* test_tree_attn.c — the CPU tree attention of all four plans against the
 * float64 reference on random trees, and its determinism across threads.
 *
 *   tests/test_tree_attn            the TAP tests
 *   tests/test_tree_attn --bench [n] also attention time per algorithm on the
 *                                   few-shot shape (SmolLM2 heads, 30 layers), 1 and n threads
 *
 * Tolerance: max |out - ref| <= 1e-4 * max |ref| over all outputs of a case
 * (V is uniform in [-1, 1], so outputs are of order 1; fp32 accumulation over
 * a few thousand keys errs by about 1e-6).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "cpu_tree_attn.h"
#include "kvpool.h"
#include "tap.h"
#include "threadpool.h"
#include "tree.h"
#include "treeplan.h"

#define TOL 1e-4

static float frand(void)
{
	return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

static struct kvpool *make_pool(int32_t ps, int32_t n_layer, int32_t hkv, int32_t d, int32_t n_pages)
{
	char err[DT_ERR_LEN];
	struct kvpool_params p = kvpool_default_params();
	p.page_size = ps;
	p.n_layer = n_layer;
	p.n_kv_heads = hkv;
	p.head_dim = d;
	p.budget_bytes = (size_t)n_pages * (size_t)ps * (size_t)n_layer * (size_t)hkv * (size_t)d * 2 * 4;
	struct kvpool *pool = kvpool_new(&p, err);
	DT_ASSERT(pool && kvpool_n_pages(pool) == n_pages);
	return pool;
}

static int append_n(struct tree *t, int32_t node, int32_t n)
{
	char err[DT_ERR_LEN];
	int32_t *ids = xcalloc((size_t)n + 1, sizeof(int32_t));
	int rc = tree_append(t, node, ids, NULL, NULL, n, 0, err);
	free(ids);
	return rc;
}

/* Random K/V for every token of the tree, every layer. */
static void fill_kv(struct tree *t, struct kvpool *pool)
{
	const struct kvpool_params *pp = kvpool_params(pool);
	size_t row = (size_t)pp->n_kv_heads * (size_t)pp->head_dim;
	float *k = xmalloc(row * sizeof(float)), *v = xmalloc(row * sizeof(float));
	for (int32_t id = 0; id < tree_n_ids(t); id++) {
		const struct tree_node *n = tree_node(t, id);
		if (!n || n->status == TREE_PRUNED)
			continue;
		for (int32_t i = 0; i < n->n_tokens; i++) {
			int32_t page, slot;
			tree_kv_loc(t, id, i, &page, &slot);
			for (int32_t l = 0; l < pp->n_layer; l++) {
				for (size_t j = 0; j < row; j++) {
					k[j] = frand();
					v[j] = frand();
				}
				kvpool_store(pool, l, page, slot, k, v);
			}
		}
	}
	free(k);
	free(v);
}

enum shape_kind { DEEP, WIDE, UNBALANCED, SINGLE, N_SHAPES };
static const char *const shape_names[] = { "deep chain", "wide fan", "unbalanced", "single node" };

static struct tree *random_tree(struct kvpool *pool, enum shape_kind kind)
{
	char err[DT_ERR_LEN];
	struct tree_params tp = tree_default_params();
	tp.n_alt = 0;
	int32_t plen = kind == SINGLE ? 1 + rand() % 400 : 1 + rand() % 600;
	int32_t *ids = xcalloc((size_t)plen, sizeof(int32_t));
	struct tree *t = tree_new(&tp, pool, ids, plen, err);
	free(ids);
	DT_ASSERT(t);
	int32_t leaves[512];
	switch (kind) {
	case DEEP: /* a long chain, split here and there, a few side branches */
		for (int k = 0; k < 30; k++) {
			int32_t nl = tree_live_leaves(t, leaves, 512);
			append_n(t, leaves[rand() % nl], 1 + rand() % 40);
			if (rand() % 3 == 0) {
				const struct tree_node *n = tree_node(t, leaves[0]);
				int32_t f = tree_fork(t, n->id, rand() % (n->n_tokens + 1), err);
				if (f >= 0)
					append_n(t, f, 1 + rand() % 5);
			}
		}
		break;
	case WIDE: { /* many branches off the prompt */
		int32_t nb = 20 + rand() % 100;
		for (int32_t b = 0; b < nb; b++) {
			int32_t c = tree_add_child(t, tree_root(t), err);
			append_n(t, c, 1 + rand() % 10);
		}
		break;
	}
	case UNBALANCED: /* random forks anywhere, random growth */
		for (int k = 0; k < 60; k++) {
			int32_t id = rand() % tree_n_ids(t);
			const struct tree_node *n = tree_node(t, id);
			if (!n || n->status == TREE_PRUNED)
				continue;
			int32_t f = tree_fork(t, id, rand() % (n->n_tokens + 1), err);
			if (f >= 0)
				append_n(t, f, 1 + rand() % 200);
			int32_t nl = tree_live_leaves(t, leaves, 512);
			if (nl > 0)
				append_n(t, leaves[rand() % nl], 1 + rand() % 50);
		}
		break;
	case SINGLE:
	case N_SHAPES:
		break;
	}
	return t;
}

static int32_t make_queries(const struct tree *t, struct treeplan_query **q)
{
	int32_t n = treeplan_leaf_queries(t, NULL, 0);
	int32_t cap = n + 80;
	*q = xrealloc(*q, (size_t)cap * sizeof(**q));
	n = treeplan_leaf_queries(t, *q, n);
	if (n > 0) { /* a forced chunk on one branch: several queries in one node */
		struct treeplan_query lq = (*q)[rand() % n];
		for (int32_t i = lq.index - 1; i >= 0 && i >= lq.index - 40 && n < cap; i--)
			(*q)[n++] = (struct treeplan_query){ lq.node, i };
	}
	for (int k = 0; k < 10 && n < cap; k++) { /* inner tokens */
		int32_t id = rand() % tree_n_ids(t);
		const struct tree_node *nd = tree_node(t, id);
		if (nd && nd->status != TREE_PRUNED && nd->n_tokens > 0) {
			int32_t idx = rand() % nd->n_tokens;
			bool dup = false;
			for (int32_t j = 0; j < n; j++)
				dup = dup || ((*q)[j].node == id && (*q)[j].index == idx);
			if (!dup)
				(*q)[n++] = (struct treeplan_query){ id, idx };
		}
	}
	return n;
}

struct shape {
	int32_t hq, hkv, d;
};

/* One case: a random tree, K/V and queries; every algorithm against the reference. */
static void run_case(int ci, enum shape_kind kind, struct shape sh, int32_t ps, int32_t block, int32_t tile,
		     float qscale, bool portable, struct threadpool *tp, double *worst, int *n_fail, char *first,
		     size_t first_len)
{
	char err[DT_ERR_LEN];
	const int32_t layer = 1;
	struct kvpool *pool = make_pool(ps, 2, sh.hkv, sh.d, 20000 / ps + 600);
	struct tree *t = random_tree(pool, kind);
	fill_kv(t, pool);
	struct treeplan_query *q = NULL;
	int32_t nq = make_queries(t, &q);
	size_t nout = (size_t)nq * (size_t)sh.hq * (size_t)sh.d;
	float *qv = xmalloc(nout * sizeof(float)), *out = xmalloc(nout * sizeof(float));
	double *ref = xmalloc(nout * sizeof(double));
	for (size_t i = 0; i < nout; i++)
		qv[i] = frand() * qscale;
	cpu_tree_attn_ref(t, pool, layer, q, nq, qv, sh.hq, 0.0, ref);
	double rmax = 0;
	for (size_t i = 0; i < nout; i++)
		rmax = DT_MAX(rmax, fabs(ref[i]));

	struct cpu_tree_attn_params ap = cpu_tree_attn_default_params();
	ap.n_head = sh.hq;
	ap.n_kv_head = sh.hkv;
	ap.head_dim = sh.d;
	ap.portable = portable;
	struct cpu_tree_attn *at = cpu_tree_attn_new(&ap, tp, err);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct treeplan_params pp = treeplan_default_params();
		pp.algo = (enum treeplan_algo)a;
		pp.block_size = block;
		pp.tile_queries = tile;
		struct treeplan *pl = treeplan_new(&pp, err);
		int rc = treeplan_update(pl, t, q, nq, err);
		rc = rc ? rc : cpu_tree_attn_run(at, treeplan_flat(pl), pool, layer, qv, out, err);
		double e = 0;
		for (size_t i = 0; i < nout; i++)
			e = DT_MAX(e, fabs((double)out[i] - ref[i]));
		e /= rmax > 0 ? rmax : 1;
		*worst = DT_MAX(*worst, e);
		if (rc != DT_OK || !(e <= TOL)) {
			if (!(*n_fail)++)
				snprintf(first, first_len,
					 "case %d %s %s: %d/%d heads x %d, page %d block %d tile %d, q x%.0f, %s, "
					 "%d queries: rel err %.3g %s",
					 ci, shape_names[kind], treeplan_algo_name((enum treeplan_algo)a), sh.hq, sh.hkv,
					 sh.d, ps, block, tile, qscale, cpu_tree_attn_kernel_name(at), nq, e,
					 rc ? err : "");
		}
		treeplan_free(pl);
	}
	cpu_tree_attn_free(at);
	free(qv);
	free(out);
	free(ref);
	free(q);
	tree_free(t);
	kvpool_free(pool);
}

static void test_against_reference(struct threadpool *tp)
{
	static const struct shape shapes[] = { { 8, 2, 64 }, { 4, 4, 32 }, { 9, 3, 64 }, { 2, 1, 20 }, { 4, 2, 128 } };
	static const int32_t pages[] = { 1, 16, 64 }, blocks[] = { 16, 128 }, tiles[] = { 3, 64 };
	char first[DT_ERR_LEN + 256] = "";
	int n_fail = 0, n_cases = 0;
	double worst = 0;
	for (int kind = 0; kind < N_SHAPES; kind++) {
		for (int s = 0; s < (int)DT_ARRAY_LEN(shapes); s++) {
			int32_t ps = pages[rand() % 3], blk = blocks[rand() % 2], tile = tiles[rand() % 2];
			float qs = rand() % 3 ? 1.0f : 8.0f;
			run_case(n_cases++, (enum shape_kind)kind, shapes[s], ps, blk, tile, qs, false, tp, &worst, &n_fail,
				 first, sizeof(first));
		}
	}
	ok(n_fail == 0, "%d random cases x 4 algorithms (chains, fans, unbalanced, single node; GQA 8/2, 9/3, 4/2, "
			"MHA 4/4; head_dim 20..128; pages 1/16/64; blocks 16/128; tiles 3/64; forced chunks): "
			"max rel err %.2g <= %.0e %s",
	   n_cases, worst, TOL, first);

	/* every page size and block size on one kind of tree, and the portable kernels */
	n_fail = 0;
	worst = 0;
	first[0] = 0;
	int n2 = 0;
	for (int pi = 0; pi < 3; pi++)
		for (int bi = 0; bi < 2; bi++)
			run_case(n2, UNBALANCED, shapes[0], pages[pi], blocks[bi], tiles[(pi + bi) % 2], 1.0f, false, tp, &worst,
				 &n_fail, first, sizeof(first)), n2++;
	ok(n_fail == 0, "pages 1/16/64 x blocks 16/128, GQA 8/2 x 64: max rel err %.2g %s", worst, first);
	n_fail = 0;
	worst = 0;
	first[0] = 0;
	for (int k = 0; k < 3; k++)
		run_case(k, (enum shape_kind)k, shapes[2], 16, 128, 64, 4.0f, true, tp, &worst, &n_fail, first,
			 sizeof(first));
	ok(n_fail == 0, "portable kernels: max rel err %.2g %s", worst, first);
}

/* The same plan on 1 and 2 threads, twice: bitwise the same output. */
static void test_determinism(struct threadpool *tp)
{
	char err[DT_ERR_LEN];
	const struct shape sh = { 9, 3, 64 };
	struct kvpool *pool = make_pool(16, 1, sh.hkv, sh.d, 2000);
	struct tree *t = random_tree(pool, UNBALANCED);
	fill_kv(t, pool);
	struct treeplan_query *q = NULL;
	int32_t nq = make_queries(t, &q);
	size_t nout = (size_t)nq * (size_t)sh.hq * (size_t)sh.d;
	float *qv = xmalloc(nout * sizeof(float));
	float *o1 = xmalloc(nout * sizeof(float)), *o2 = xmalloc(nout * sizeof(float)),
	      *o3 = xmalloc(nout * sizeof(float));
	for (size_t i = 0; i < nout; i++)
		qv[i] = frand();
	struct cpu_tree_attn_params ap = cpu_tree_attn_default_params();
	ap.n_head = sh.hq;
	ap.n_kv_head = sh.hkv;
	ap.head_dim = sh.d;
	struct cpu_tree_attn *serial = cpu_tree_attn_new(&ap, NULL, err), *par = cpu_tree_attn_new(&ap, tp, err);
	bool same = true;
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct treeplan_params pp = treeplan_default_params();
		pp.algo = (enum treeplan_algo)a;
		pp.block_size = 16;
		pp.tile_queries = 4;
		struct treeplan *pl = treeplan_new(&pp, err);
		treeplan_update(pl, t, q, nq, err);
		cpu_tree_attn_run(serial, treeplan_flat(pl), pool, 0, qv, o1, err);
		cpu_tree_attn_run(par, treeplan_flat(pl), pool, 0, qv, o2, err);
		cpu_tree_attn_run(par, treeplan_flat(pl), pool, 0, qv, o3, err);
		same = same && !memcmp(o1, o2, nout * sizeof(float)) && !memcmp(o2, o3, nout * sizeof(float));
		treeplan_free(pl);
	}
	ok(same, "1 thread, %d threads and a second run give bitwise equal outputs for all algorithms",
	   threadpool_n_threads(tp));

	/* a pool that does not match is refused */
	struct kvpool *other = make_pool(16, 1, 2, 64, 10);
	struct treeplan_params pp = treeplan_default_params();
	struct treeplan *pl = treeplan_new(&pp, err);
	treeplan_update(pl, t, q, nq, err);
	ok(cpu_tree_attn_run(serial, treeplan_flat(pl), other, 0, qv, o1, err) == DT_ERR_ARG,
	   "a pool with other head shapes is refused: %s", err);
	ap.n_head = 8;
	ok(cpu_tree_attn_new(&ap, NULL, err) == NULL, "8 query heads over 3 KV heads are refused: %s", err);
	treeplan_free(pl);
	kvpool_free(other);
	cpu_tree_attn_free(serial);
	cpu_tree_attn_free(par);
	free(qv);
	free(o1);
	free(o2);
	free(o3);
	free(q);
	tree_free(t);
	kvpool_free(pool);
}

// ---- --bench: the few-shot shape with SmolLM2 heads, 30 layers

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void bench_fewshot(int32_t prompt, int32_t n_br, int32_t br_len, struct threadpool *tp)
{
	char err[DT_ERR_LEN];
	const int32_t n_layer = 30, hq = 9, hkv = 3, d = 64, ps = 16;
	const int32_t tokens = prompt + n_br * br_len;
	struct kvpool *pool = make_pool(ps, n_layer, hkv, d, tokens / ps + n_br * 2 + 8);
	struct tree_params tpp = tree_default_params();
	int32_t *ids = xcalloc((size_t)prompt, sizeof(int32_t));
	struct tree *t = tree_new(&tpp, pool, ids, prompt, err);
	free(ids);
	for (int32_t b = 0; b < n_br; b++)
		append_n(t, tree_add_child(t, tree_root(t), err), br_len);
	fill_kv(t, pool);
	struct treeplan_query q[256];
	int32_t nq = treeplan_leaf_queries(t, q, 256);
	size_t nout = (size_t)nq * hq * d;
	float *qv = xmalloc(nout * sizeof(float)), *out = xmalloc(nout * sizeof(float));
	for (size_t i = 0; i < nout; i++)
		qv[i] = frand();
	struct cpu_tree_attn_params ap = cpu_tree_attn_default_params();
	ap.n_head = hq;
	ap.n_kv_head = hkv;
	ap.head_dim = d;
	struct cpu_tree_attn *at = cpu_tree_attn_new(&ap, tp, err);
	const struct treeplan_io_params iop = { .n_head = hq, .n_kv_head = hkv, .head_dim = d, .kv_elt_bytes = 4 };
	printf("# few-shot: prompt %d, %d branches x %d, heads %d/%d x %d, %d layers, fp32, %s kernels, %d threads\n",
	       prompt, n_br, br_len, hq, hkv, d, n_layer, cpu_tree_attn_kernel_name(at), threadpool_n_threads(tp));
	printf("# %-13s %9s %9s %10s %12s %12s %8s\n", "algorithm", "min ms", "median", "per layer",
	       "KV MiB/layer", "IO MiB/layer", "vs seq");
	/* the algorithms take turns, so that load from other processes spreads over all of them */
	enum { REPS = 9 };
	struct treeplan *pl[TREEPLAN_N_ALGO];
	int64_t times[TREEPLAN_N_ALGO][REPS];
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct treeplan_params pp = treeplan_default_params();
		pp.algo = (enum treeplan_algo)a;
		pl[a] = treeplan_new(&pp, err);
		treeplan_update(pl[a], t, q, nq, err);
	}
	for (int r = 0; r < REPS; r++)
		for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
			int64_t t0 = dt_now_ns();
			for (int32_t l = 0; l < n_layer; l++)
				cpu_tree_attn_run(at, treeplan_flat(pl[a]), pool, l, qv, out, err);
			times[a][r] = dt_now_ns() - t0;
		}
	double seq_ms = 0;
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		qsort(times[a], REPS, sizeof(int64_t), cmp_i64);
		double ms = times[a][0] / 1e6, med = times[a][REPS / 2] / 1e6;
		if (a == TREEPLAN_SEQ)
			seq_ms = ms;
		struct treeplan_io io;
		treeplan_io(pl[a], &iop, &io);
		printf("# %-13s %9.2f %9.2f %10.3f %12.2f %12.2f %7.2fx\n", treeplan_algo_name((enum treeplan_algo)a),
		       ms, med, ms / n_layer, io.kv / 1048576.0, io.total / 1048576.0, seq_ms / ms);
		treeplan_free(pl[a]);
	}
	cpu_tree_attn_free(at);
	free(qv);
	free(out);
	tree_free(t);
	kvpool_free(pool);
}

int main(int argc, char **argv)
{
	const char *env_seed = getenv("DT_SEED"); /* DT_SEED=n reruns a printed seed */
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
	srand(seed);
	tap_plan_lazy();
	diag("seed %u (DT_SEED=%u to repeat)", seed, seed);
	struct threadpool *tp = threadpool_new(2);
	test_against_reference(tp);
	test_determinism(tp);
	if (argc > 1 && !strcmp(argv[1], "--bench")) { /* --bench [threads, default 2] */
		int nth = argc > 2 ? atoi(argv[2]) : 2;
		struct threadpool *one = threadpool_new(1), *many = threadpool_new(nth > 1 ? nth : 2);
		bench_fewshot(1000, 20, 128, one);
		bench_fewshot(1000, 20, 128, many);
		bench_fewshot(4000, 20, 256, one);
		bench_fewshot(4000, 20, 256, many);
		threadpool_free(one);
		threadpool_free(many);
	}
	threadpool_free(tp);
	return tap_done();
}
