/* test_cuda_attn.c — the CUDA tree attention (kernels/attn_*.cu) against the
 * float64 CPU reference (src/cpu_tree_attn.h) on fresh random trees.
 *
 * Every case builds a random tree of one shape class (deep chain, wide fan,
 * unbalanced, single node with a causal chunk, long nodes, speculative token
 * tree, more queries than a tile), random K/V/Q rounded to the device type on
 * the host (so both sides see the same inputs), mirrors the pages on the
 * device (every slot first poisoned with NaN, so a read of a slot that holds
 * no token shows), poisons the output with NaN, and runs all four algorithms
 * with random page size, block size, query tile, head layout, dtype, CTA
 * count, CUDA-core threshold and merging.
 *
 * Tolerance (relative: |out - ref|_2 / |ref|_2, and every output finite):
 *   fused kernel (seq, deft-node, deft-flatten): fp16 2e-3, bf16 1e-2
 *     (P is rounded to the KV type for the P V product; fp32 accumulation)
 *   tree-mask: fp16 1e-2, bf16 5e-2 (scores and probabilities are stored in
 *     the KV type, as eager fp16 attention does).
 * Also: bitwise repeatable runs, decode steps with incremental KV and
 * plan uploads, and the fused reduction against the separate one (same bits).  Seed: $DT_SEED or the time (printed).  DT_TEST_QUICK=1 runs
 * fewer, smaller cases (for compute-sanitizer).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "tap.h"

#ifndef HAVE_CUDA
int main(void)
{
	tap_skip_all("no CUDA device (built without CUDA)");
}
#else

#include "cpu_tree_attn.h"
#include "kernels.h"
#include "kvpool.h"
#include "tree.h"
#include "treeplan.h"

static int quick;

static float frand(void)
{
	return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

// ---- fixtures

static int append_n(struct tree *t, int32_t node, int32_t n)
{
	char err[DT_ERR_LEN];
	int32_t *ids = xcalloc((size_t)n + 1, sizeof(int32_t));
	int rc = tree_append(t, node, ids, NULL, NULL, n, 0, err);
	free(ids);
	return rc;
}

enum shape_kind { DEEP, WIDE, UNBALANCED, SINGLE, LONG, SPEC, MANYQ, N_SHAPES };
static const char *const shape_names[] = { "deep chain", "wide fan",  "unbalanced", "single node",
					   "long nodes", "spec tree", "many queries" };

static struct tree *random_tree(struct kvpool *pool, enum shape_kind kind)
{
	char err[DT_ERR_LEN];
	struct tree_params tp = tree_default_params();
	tp.n_alt = 0;
	const int big = quick ? 1 : 3;
	int32_t plen = 1 + rand() % (kind == LONG ? 1500 * big : 500);
	int32_t *ids = xcalloc((size_t)plen, sizeof(int32_t));
	struct tree *t = tree_new(&tp, pool, ids, plen, err);
	free(ids);
	DT_ASSERT(t);
	int32_t leaves[1024];
	switch (kind) {
	case DEEP:
		for (int k = 0; k < 20; k++) {
			int32_t nl = tree_live_leaves(t, leaves, 1024);
			append_n(t, leaves[rand() % nl], 1 + rand() % 90);
			if (rand() % 3 == 0) {
				const struct tree_node *n = tree_node(t, leaves[0]);
				int32_t f = tree_fork(t, n->id, rand() % (n->n_tokens + 1), err);
				if (f >= 0)
					append_n(t, f, 1 + rand() % 5);
			}
		}
		break;
	case WIDE:
	case MANYQ: {
		int32_t nb = kind == MANYQ ? 130 + rand() % (quick ? 10 : 100) : 10 + rand() % 60;
		for (int32_t b = 0; b < nb; b++) {
			int32_t c = tree_add_child(t, tree_root(t), err);
			append_n(t, c, 1 + rand() % (rand() % 4 ? 12 : 200));
		}
		break;
	}
	case UNBALANCED:
		for (int k = 0; k < 40; k++) {
			int32_t id = rand() % tree_n_ids(t);
			const struct tree_node *n = tree_node(t, id);
			if (!n || n->status == TREE_PRUNED)
				continue;
			int32_t f = tree_fork(t, id, rand() % (n->n_tokens + 1), err);
			if (f >= 0)
				append_n(t, f, 1 + rand() % 150);
			int32_t nl = tree_live_leaves(t, leaves, 1024);
			if (nl > 0)
				append_n(t, leaves[rand() % nl], 1 + rand() % 40);
		}
		break;
	case LONG: {
		int32_t nb = 1 + rand() % 5;
		for (int32_t b = 0; b < nb; b++) {
			int32_t c = tree_add_child(t, tree_root(t), err);
			append_n(t, c, 100 + rand() % (300 * big));
		}
		break;
	}
	case SPEC: { /* candidates of one token each under the prompt */
		int32_t n = 8 + rand() % (quick ? 40 : 120);
		int32_t *cand = xcalloc((size_t)n, sizeof(int32_t));
		for (int32_t i = 0; i < n; i++) {
			int32_t parent = i == 0 ? tree_root(t) : cand[rand() % i];
			if (i > 0 && rand() % 4 == 0)
				parent = cand[0];
			cand[i] = tree_add_child(t, parent, err);
			DT_ASSERT(cand[i] >= 0);
			append_n(t, cand[i], 1);
		}
		free(cand);
		break;
	}
	case SINGLE:
	case N_SHAPES:
		break;
	}
	return t;
}

static int32_t make_queries(const struct tree *t, enum shape_kind kind, struct treeplan_query **q)
{
	if (kind == SPEC) { /* every candidate token is a query */
		int32_t n = 0;
		*q = xrealloc(*q, (size_t)tree_n_ids(t) * sizeof(**q));
		for (int32_t id = 0; id < tree_n_ids(t); id++) {
			const struct tree_node *nd = tree_node(t, id);
			if (nd && nd->status != TREE_PRUNED && id != tree_root(t) && nd->n_tokens > 0)
				(*q)[n++] = (struct treeplan_query){ id, nd->n_tokens - 1 };
		}
		return n;
	}
	int32_t n = treeplan_leaf_queries(t, NULL, 0);
	int32_t cap = n + 80;
	*q = xrealloc(*q, (size_t)cap * sizeof(**q));
	n = treeplan_leaf_queries(t, *q, n);
	if (n > 0 && (kind == SINGLE || rand() % 2)) { /* a causal chunk in one node */
		struct treeplan_query lq = (*q)[rand() % n];
		for (int32_t i = lq.index - 1; i >= 0 && i >= lq.index - 40 && n < cap; i--)
			(*q)[n++] = (struct treeplan_query){ lq.node, i };
	}
	for (int k = 0; k < 6 && n < cap; k++) { /* inner tokens */
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

/* Random K/V (rounded to the device type) for tokens [from, n_tokens) of
 * every node, into the host pool and the device mirror.  Returns the bytes
 * uploaded. */
static uint64_t fill_kv(struct tree *t, struct kvpool *pool, struct cuda_kv *kv,
			const int32_t *from, enum cuda_dtype dt)
{
	char err[DT_ERR_LEN];
	const struct kvpool_params *pp = kvpool_params(pool);
	const size_t row = (size_t)pp->n_kv_heads * (size_t)pp->head_dim;
	float *k = xmalloc(row * sizeof(float)), *v = xmalloc(row * sizeof(float));
	uint64_t before = cuda_kv_uploaded_bytes(kv);
	for (int32_t id = 0; id < tree_n_ids(t); id++) {
		const struct tree_node *n = tree_node(t, id);
		if (!n || n->status == TREE_PRUNED)
			continue;
		int32_t i0 = from ? from[id] : 0;
		for (int32_t i = i0; i < n->n_tokens; i++) {
			int32_t page, slot;
			tree_kv_loc(t, id, i, &page, &slot);
			for (size_t j = 0; j < row; j++) {
				k[j] = frand();
				v[j] = frand();
			}
			cuda_round_host(k, row, dt);
			cuda_round_host(v, row, dt);
			kvpool_store(pool, 0, page, slot, k, v);
		}
		/* upload runs of consecutive slots of one page */
		for (int32_t i = i0; i < n->n_tokens;) {
			int32_t page, slot, len = 1;
			tree_kv_loc(t, id, i, &page, &slot);
			while (i + len < n->n_tokens && slot + len < pp->page_size)
				len++;
			int rc = cuda_kv_upload(kv, 0, kvpool_k(pool, 0), kvpool_v(pool, 0), page, slot, len,
						err);
			DT_ASSERT(rc == 0);
			i += len;
		}
	}
	free(k);
	free(v);
	return cuda_kv_uploaded_bytes(kv) - before;
}

struct shape {
	int32_t hq, hkv, d;
};

struct errs {
	double rel;   /* |out - ref| / |ref| */
	bool finite;  /* every output written and finite */
};

static struct errs compare(const float *out, const double *ref, size_t n)
{
	struct errs e = { 0, true };
	double num = 0, den = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(out[i]))
			e.finite = false;
		double d = (double)out[i] - ref[i];
		num += d * d;
		den += ref[i] * ref[i];
	}
	e.rel = den > 0 ? sqrt(num / den) : sqrt(num);
	return e;
}

static double tolerance(int algo, enum cuda_dtype dt)
{
	if (algo == TREEPLAN_TREE_MASK)
		return dt == CUDA_DT_BF16 ? 5e-2 : 1e-2;
	return dt == CUDA_DT_BF16 ? 1e-2 : 2e-3;
}

/* One random case: all four algorithms against the reference. */
static void run_case(int ci, enum shape_kind kind, struct shape sh, int32_t ps, int32_t block, int32_t tile,
		     enum cuda_dtype dt, int32_t n_cta, int32_t cc, int32_t merge, float qscale, int wg,
		     int balance)
{
	char err[DT_ERR_LEN];
	struct kvpool_params kp = kvpool_default_params();
	kp.page_size = ps;
	kp.n_kv_heads = sh.hkv;
	kp.head_dim = sh.d;
	const int32_t n_pages = 14000 / ps + 1400;
	kp.budget_bytes = (size_t)n_pages * ps * sh.hkv * sh.d * 2 * 4;
	struct kvpool *pool = kvpool_new(&kp, err);
	DT_ASSERT(pool);
	struct tree *t = random_tree(pool, kind);

	struct cuda_kv_params cp = cuda_kv_default_params();
	cp.n_pages = kvpool_n_pages(pool);
	cp.page_size = ps;
	cp.n_kv_heads = sh.hkv;
	cp.head_dim = sh.d;
	cp.type = dt;
	struct cuda_kv *kv = cuda_kv_new(&cp, err);
	DT_ASSERT(kv);
	DT_ASSERT(cuda_kv_fill_random(kv, 1, NAN, err) == 0); /* every slot NaN until uploaded */
	fill_kv(t, pool, kv, NULL, dt);

	struct treeplan_query *q = NULL;
	int32_t nq = make_queries(t, kind, &q);
	size_t nout = (size_t)nq * sh.hq * sh.d;
	float *qv = xmalloc(nout * sizeof(float)), *out = xmalloc(nout * sizeof(float));
	double *ref = xmalloc(nout * sizeof(double));
	for (size_t i = 0; i < nout; i++)
		qv[i] = frand() * qscale;
	cuda_round_host(qv, nout, dt);
	cpu_tree_attn_ref(t, pool, 0, q, nq, qv, sh.hq, 0.0, ref);

	void *dq = cuda_malloc(nout * 2, err);
	float *dout = cuda_malloc(nout * sizeof(float), err);
	DT_ASSERT(dq && dout);
	DT_ASSERT(cuda_upload_convert(dq, qv, nout, dt, err) == 0);

	struct tree_stats ts;
	tree_stats(t, &ts);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct treeplan_params pp = treeplan_default_params();
		pp.algo = (enum treeplan_algo)a;
		pp.block_size = block;
		pp.tile_queries = tile;
		struct treeplan *pl = treeplan_new(&pp, err);
		DT_ASSERT(pl);
		int rc = treeplan_update(pl, t, q, nq, err);
		rc = rc ? rc : treeplan_check(pl, t, err);

		struct cuda_attn_params ap = cuda_attn_default_params();
		ap.n_head = sh.hq;
		ap.n_kv_head = sh.hkv;
		ap.head_dim = sh.d;
		ap.type = dt;
		ap.n_cta = n_cta;
		ap.cc_max_rows = cc;
		ap.merge = merge;
		char wgs[2] = { (char)('0' + wg), 0 }; /* warpgroup MMA level (attn_plan.cu) */
		setenv("DT_ATTN_WG", wgs, 1);
		setenv("DT_ATTN_BALANCE", balance ? "1.03" : "0", 1); /* the rebalance after the split */
		setenv("DT_ATTN_REBAL", balance == 2 ? "1" : "0", 1); /* 2: its any-segment pick */
		struct cuda_attn *at = rc ? NULL : cuda_attn_new(&ap, err);
		unsetenv("DT_ATTN_WG");
		unsetenv("DT_ATTN_BALANCE");
		unsetenv("DT_ATTN_REBAL");
		if (!rc && !at)
			rc = -1;
		rc = rc ? rc : cuda_attn_set_plan(at, treeplan_flat(pl), a, err);
		rc = rc ? rc : cuda_fill_nan(dout, nout, err);
		rc = rc ? rc : cuda_attn_run(at, kv, 0, 0, dq, dout, err);
		rc = rc ? rc : cuda_sync(err);
		rc = rc ? rc : cuda_download(out, dout, nout * sizeof(float), err);
		struct errs e = rc ? (struct errs){ INFINITY, false } : compare(out, ref, nout);
		struct cuda_attn_stats st;
		if (at)
			cuda_attn_get_stats(at, &st);
		else
			memset(&st, 0, sizeof(st));
		double tol = tolerance(a, dt);
		ok(rc == 0 && e.finite && e.rel <= tol,
		   "case %d %s %s %s: %d/%d heads x %d, page %d block %d tile %d, ctas %d cc %d merge %d wg %d balance %d, "
		   "q x%.0f, %d tokens, %d queries, %d segments (%d cc): rel err %.2e <= %.0e, all finite %s",
		   ci, shape_names[kind], treeplan_algo_name((enum treeplan_algo)a), cuda_dtype_name(dt), sh.hq,
		   sh.hkv, sh.d, ps, block, tile, n_cta, cc, merge, wg, balance, qscale, (int)ts.stored_tokens, nq,
		   st.n_segments, st.n_cc_segments, e.rel, tol, rc ? err : (e.finite ? "yes" : "NO"));
		cuda_attn_free(at);
		treeplan_free(pl);
	}
	cuda_free(dq);
	cuda_free(dout);
	free(qv);
	free(out);
	free(ref);
	free(q);
	cuda_kv_free(kv);
	tree_free(t);
	kvpool_free(pool);
}

static void test_random_cases(void)
{
	static const struct shape shapes[] = { { 32, 8, 128 }, { 32, 32, 128 }, { 8, 2, 64 },  { 6, 3, 64 },
					       { 4, 4, 128 },  { 24, 1, 64 },   { 12, 4, 128 }, { 2, 1, 64 } };
	static const int32_t pages[] = { 1, 7, 16, 32 }, blocks[] = { 32, 100, 128, 256 };
	static const int32_t ctas[] = { 0, 1, 5 };
	int ci = 0;
	for (int round = 0; round < (quick ? 1 : 2); round++) {
		for (int kind = 0; kind < N_SHAPES; kind++) {
			struct shape sh = shapes[rand() % DT_ARRAY_LEN(shapes)];
			if (quick && sh.hq > 8)
				sh = shapes[2 + rand() % 2];
			int32_t hpk = sh.hq / sh.hkv;
			int32_t tiles[] = { 3, 64, DT_MAX(1, 128 / hpk) };
			const int wg = ci % 4;              /* every warpgroup MMA level in turn */
			const int balance = (ci / 4) % 3; /* without the rebalance, with it, with its
							     any-segment pick (attn_plan.cu) */
			run_case(ci++, (enum shape_kind)kind, sh, pages[rand() % 4], blocks[rand() % 4],
				 tiles[rand() % 3], rand() % 2 ? CUDA_DT_BF16 : CUDA_DT_F16, ctas[rand() % 3],
				 rand() % 3 ? 4 : 0, rand() % 4 ? 1 : 0, rand() % 3 ? 1.0f : 8.0f, wg, balance);
		}
	}
}

/* Decode steps on a fan: each step appends a token to every leaf, uploads
 * only the new slots and the changed plan bytes, and must match the
 * reference; the same plan run twice gives the same bits. */
static void test_steps_and_repeat(void)
{
	char err[DT_ERR_LEN];
	const struct shape sh = { 8, 2, 128 };
	const enum cuda_dtype dt = CUDA_DT_F16;
	struct kvpool_params kp = kvpool_default_params();
	kp.n_kv_heads = sh.hkv;
	kp.head_dim = sh.d;
	kp.budget_bytes = (size_t)2000 * 16 * sh.hkv * sh.d * 2 * 4;
	struct kvpool *pool = kvpool_new(&kp, err);
	DT_ASSERT(pool);
	struct tree_params tp = tree_default_params();
	tp.n_alt = 0;
	int32_t plen = 700 + rand() % 300;
	int32_t *ids = xcalloc((size_t)plen, sizeof(int32_t));
	struct tree *t = tree_new(&tp, pool, ids, plen, err);
	free(ids);
	int32_t nb = 12 + rand() % 20;
	for (int32_t b = 0; b < nb; b++)
		append_n(t, tree_add_child(t, tree_root(t), err), 1 + rand() % 30);

	struct cuda_kv_params cp = cuda_kv_default_params();
	cp.n_pages = kvpool_n_pages(pool);
	cp.page_size = kp.page_size;
	cp.n_kv_heads = sh.hkv;
	cp.head_dim = sh.d;
	cp.type = dt;
	struct cuda_kv *kv = cuda_kv_new(&cp, err);
	DT_ASSERT(kv && cuda_kv_fill_random(kv, 2, NAN, err) == 0);
	fill_kv(t, pool, kv, NULL, dt);

	struct treeplan_params pp = treeplan_default_params();
	pp.tile_queries = 128 / (sh.hq / sh.hkv);
	struct treeplan *pl = treeplan_new(&pp, err);
	struct cuda_attn_params ap = cuda_attn_default_params();
	ap.n_head = sh.hq;
	ap.n_kv_head = sh.hkv;
	ap.head_dim = sh.d;
	ap.type = dt;
	struct cuda_attn *at = cuda_attn_new(&ap, err);
	DT_ASSERT(pl && at);

	int32_t *from = xcalloc((size_t)4 * nb + 16, sizeof(int32_t));
	struct treeplan_query *q = NULL;
	bool all_ok = true, kv_exact = true;
	double worst = 0;
	uint64_t plan_sent = 0, plan_full = 0;
	const int steps = 4;
	for (int step = 0; step < steps; step++) {
		if (step > 0) { /* one new token per leaf, only its slot goes up */
			int32_t leaves[256];
			int32_t nl = tree_live_leaves(t, leaves, 256);
			for (int32_t id = 0; id < tree_n_ids(t); id++) {
				const struct tree_node *n = tree_node(t, id);
				from[id] = n ? n->n_tokens : 0;
			}
			for (int32_t i = 0; i < nl; i++)
				append_n(t, leaves[i], 1);
			uint64_t sent = fill_kv(t, pool, kv, from, dt);
			kv_exact = kv_exact && sent == (uint64_t)nl * sh.hkv * sh.d * 2 * 2;
		}
		int32_t nq = treeplan_leaf_queries(t, NULL, 0);
		q = xrealloc(q, (size_t)nq * sizeof(*q));
		treeplan_leaf_queries(t, q, nq);
		size_t nout = (size_t)nq * sh.hq * sh.d;
		float *qv = xmalloc(nout * sizeof(float)), *out = xmalloc(nout * sizeof(float));
		float *out2 = xmalloc(nout * sizeof(float));
		double *ref = xmalloc(nout * sizeof(double));
		for (size_t i = 0; i < nout; i++)
			qv[i] = frand();
		cuda_round_host(qv, nout, dt);
		cpu_tree_attn_ref(t, pool, 0, q, nq, qv, sh.hq, 0.0, ref);
		void *dq = cuda_malloc(nout * 2, err);
		float *dout = cuda_malloc(nout * 4, err);
		int rc = treeplan_update(pl, t, q, nq, err);
		rc = rc ? rc : cuda_attn_set_plan(at, treeplan_flat(pl), TREEPLAN_DEFT_FLATTEN, err);
		struct cuda_attn_stats st;
		cuda_attn_get_stats(at, &st);
		if (step > 0) {
			struct treeplan_io_params iop = { sh.hq, sh.hkv, sh.d, 2 };
			struct treeplan_io io;
			treeplan_io(pl, &iop, &io);
			plan_sent += st.upload_bytes;
			plan_full += io.plan;
		}
		rc = rc ? rc : cuda_upload_convert(dq, qv, nout, dt, err);
		for (int rep = 0; rep < 2 && !rc; rep++) {
			rc = rc ? rc : cuda_fill_nan(dout, nout, err);
			rc = rc ? rc : cuda_attn_run(at, kv, 0, 0, dq, dout, err);
			rc = rc ? rc : cuda_download(rep ? out2 : out, dout, nout * 4, err);
		}
		struct errs e = rc ? (struct errs){ INFINITY, false } : compare(out, ref, nout);
		worst = DT_MAX(worst, e.rel);
		all_ok = all_ok && rc == 0 && e.finite && e.rel <= tolerance(TREEPLAN_DEFT_FLATTEN, dt);
		ok(rc == 0 && memcmp(out, out2, nout * 4) == 0,
		   "step %d: two runs of the same deft-flatten plan give the same bits %s", step, rc ? err : "");
		if (rc)
			diag("step %d: %s", step, err);
		cuda_free(dq);
		cuda_free(dout);
		free(qv);
		free(out);
		free(out2);
		free(ref);
	}
	ok(all_ok, "%d decode steps on a %d-branch fan (deft-flatten, incremental KV and plan uploads): "
		   "max rel err %.2e <= %.0e",
	   steps, nb, worst, tolerance(TREEPLAN_DEFT_FLATTEN, dt));
	ok(kv_exact, "each step uploads exactly the new tokens' K/V (n_leaves x %d bytes)",
	   sh.hkv * sh.d * 2 * 2);
	diag("plan bytes uploaded over %d steps: %llu of %llu in the flat plans", steps - 1,
	     (unsigned long long)plan_sent, (unsigned long long)plan_full);
	free(from);
	free(q);
	cuda_attn_free(at);
	treeplan_free(pl);
	cuda_kv_free(kv);
	tree_free(t);
	kvpool_free(pool);
}

/* The fused kernel merges the partials itself (the last CTA of each key
 * publishes the merge, CTAs done with their own work help): the same bits as
 * the separate reduction grid (DT_ATTN_FUSE=0) and as the fused reduction
 * without helpers (DT_ATTN_HELP=0), on every shape, with a random CTA count,
 * run twice (the counters reset, the queue's generation advances); fusion
 * forced (DT_ATTN_FUSE=1) whatever the number of keys. */
static void test_fused_reduction(void)
{
	char err[DT_ERR_LEN];
	static const struct shape shapes[] = { { 32, 8, 128 }, { 8, 2, 64 }, { 24, 1, 64 }, { 12, 4, 128 } };
	static const int32_t ctas[] = { 0, 1, 3, 7 };
	for (int kind = 0; kind < N_SHAPES; kind++) {
		struct shape sh = shapes[rand() % DT_ARRAY_LEN(shapes)];
		if (quick)
			sh = shapes[1];
		const enum cuda_dtype dt = rand() % 2 ? CUDA_DT_BF16 : CUDA_DT_F16;
		const int32_t n_cta = ctas[rand() % DT_ARRAY_LEN(ctas)];
		struct kvpool_params kp = kvpool_default_params();
		kp.page_size = 16;
		kp.n_kv_heads = sh.hkv;
		kp.head_dim = sh.d;
		const int32_t n_pages = 14000 / 16 + 1400;
		kp.budget_bytes = (size_t)n_pages * 16 * sh.hkv * sh.d * 2 * 4;
		struct kvpool *pool = kvpool_new(&kp, err);
		DT_ASSERT(pool);
		struct tree *t = random_tree(pool, (enum shape_kind)kind);
		struct cuda_kv_params cp = cuda_kv_default_params();
		cp.n_pages = kvpool_n_pages(pool);
		cp.page_size = 16;
		cp.n_kv_heads = sh.hkv;
		cp.head_dim = sh.d;
		cp.type = dt;
		struct cuda_kv *kv = cuda_kv_new(&cp, err);
		DT_ASSERT(kv && cuda_kv_fill_random(kv, 3, NAN, err) == 0);
		fill_kv(t, pool, kv, NULL, dt);
		struct treeplan_query *q = NULL;
		int32_t nq = make_queries(t, (enum shape_kind)kind, &q);
		size_t nout = (size_t)nq * sh.hq * sh.d;
		float *qv = xmalloc(nout * sizeof(float));
		float *out[4] = { xmalloc(nout * 4), xmalloc(nout * 4), xmalloc(nout * 4), xmalloc(nout * 4) };
		for (size_t i = 0; i < nout; i++)
			qv[i] = frand();
		void *dq = cuda_malloc(nout * 2, err);
		float *dout = cuda_malloc(nout * 4, err);
		DT_ASSERT(dq && dout && cuda_upload_convert(dq, qv, nout, dt, err) == 0);
		struct treeplan_params pp = treeplan_default_params();
		pp.tile_queries = DT_MAX(1, 128 / (sh.hq / sh.hkv));
		struct treeplan *pl = treeplan_new(&pp, err);
		DT_ASSERT(pl);
		int rc = treeplan_update(pl, t, q, nq, err);
		/* runs: fused with helpers, the same again (the counters were reset),
		 * separate, fused without helpers */
		for (int r = 0; r < 3 && !rc; r++) {
			setenv("DT_ATTN_FUSE", r == 1 ? "0" : "1", 1);
			setenv("DT_ATTN_HELP", r == 2 ? "0" : "1", 1);
			struct cuda_attn_params ap = cuda_attn_default_params();
			ap.n_head = sh.hq;
			ap.n_kv_head = sh.hkv;
			ap.head_dim = sh.d;
			ap.type = dt;
			ap.n_cta = n_cta;
			struct cuda_attn *at = cuda_attn_new(&ap, err);
			unsetenv("DT_ATTN_FUSE");
			unsetenv("DT_ATTN_HELP");
			rc = at ? 0 : -1;
			rc = rc ? rc : cuda_attn_set_plan(at, treeplan_flat(pl), TREEPLAN_DEFT_FLATTEN, err);
			for (int rep = 0; rep < (r == 0 ? 2 : 1) && !rc; rep++) {
				rc = rc ? rc : cuda_fill_nan(dout, nout, err);
				rc = rc ? rc : cuda_attn_run(at, kv, 0, 0, dq, dout, err);
				rc = rc ? rc : cuda_download(out[rep ? 1 : r ? r + 1 : 0], dout, nout * 4, err);
			}
			cuda_attn_free(at);
		}
		bool finite = true;
		for (size_t i = 0; !rc && i < nout; i++)
			finite = finite && isfinite(out[0][i]);
		ok(rc == 0 && finite && !memcmp(out[0], out[1], nout * 4) && !memcmp(out[0], out[2], nout * 4) &&
			   !memcmp(out[0], out[3], nout * 4),
		   "%s %s %d/%d heads x %d, ctas %d, %d queries: fused reduction with helpers finite, "
		   "repeatable, and the same bits as the separate reduction and as the fused one without "
		   "helpers %s",
		   shape_names[kind], cuda_dtype_name(dt), sh.hq, sh.hkv, sh.d, n_cta, nq, rc ? err : "");
		treeplan_free(pl);
		cuda_free(dq);
		cuda_free(dout);
		free(qv);
		for (int r = 0; r < 4; r++)
			free(out[r]);
		free(q);
		cuda_kv_free(kv);
		tree_free(t);
		kvpool_free(pool);
	}
}

/* The work lists of random trees built on the host (cuda_attn_plan_model, no
 * device): seq reads each query's path once, deft-node and deft-flatten read
 * no more than seq and at least the longest path, every CTA count is within
 * the SMs given. */
static void test_plan_model_host(void)
{
	static const struct shape shapes[] = { { 32, 8, 128 }, { 32, 32, 128 }, { 8, 2, 64 }, { 12, 4, 128 } };
	char err[DT_ERR_LEN] = "";
	int bad = 0, n = 0;
	for (int kind = 0; kind < N_SHAPES; kind++) {
		const struct shape sh = shapes[rand() % DT_ARRAY_LEN(shapes)];
		struct kvpool_params kp = kvpool_default_params();
		kp.page_size = 16;
		kp.n_kv_heads = sh.hkv;
		kp.head_dim = sh.d;
		kp.budget_bytes = (size_t)(14000 / 16 + 1400) * 16 * sh.hkv * sh.d * 2 * 4;
		struct kvpool *pool = kvpool_new(&kp, err);
		DT_ASSERT(pool);
		struct tree *t = random_tree(pool, (enum shape_kind)kind);
		struct treeplan_query *q = NULL;
		const int32_t nq = make_queries(t, (enum shape_kind)kind, &q);
		const uint64_t per_tok = (uint64_t)sh.hkv * sh.d * 2 * 2;
		uint64_t paths = 0, longest = 0;
		for (int32_t i = 0; i < nq; i++) {
			const uint64_t len = (uint64_t)tree_node(t, q[i].node)->pos0 + q[i].index + 1;
			paths += len * per_tok;
			longest = DT_MAX(longest, len * per_tok);
		}
		const int n_sm = rand() % 2 ? 132 : 1 + rand() % 16;
		for (int a = 0; a < TREEPLAN_N_ALGO && nq > 0; a++) {
			if (a == TREEPLAN_TREE_MASK)
				continue;
			struct treeplan_params pp = treeplan_default_params();
			pp.algo = (enum treeplan_algo)a;
			pp.block_size = 128;
			pp.tile_queries = DT_MAX(1, 128 / (sh.hq / sh.hkv));
			struct treeplan *pl = treeplan_new(&pp, err);
			DT_ASSERT(pl);
			struct cuda_attn_params ap = cuda_attn_default_params();
			ap.n_head = sh.hq;
			ap.n_kv_head = sh.hkv;
			ap.head_dim = sh.d;
			struct cuda_attn_stats st;
			int rc = treeplan_update(pl, t, q, nq, err);
			rc = rc ? rc : cuda_attn_plan_model(&ap, n_sm, treeplan_flat(pl), a, &st, err);
			treeplan_free(pl);
			n++;
			const bool good = rc == 0 && st.n_segments >= 1 && st.n_cta_used >= 1 && st.n_cta_used <= n_sm &&
					  st.cost_max >= st.cost_mean && st.cost_mean > 0 && st.partial_bytes > 0 &&
					  (a == TREEPLAN_SEQ ? st.kv_bytes == paths
							     : st.kv_bytes <= paths && st.kv_bytes >= longest);
			if (!good) {
				bad++;
				diag("%s, %s, %d SMs: rc %d %s; KV %llu bytes (paths %llu, longest %llu), %d segments "
				     "on %d CTAs", shape_names[kind], treeplan_algo_name((enum treeplan_algo)a), n_sm, rc,
				     rc ? err : "", (unsigned long long)st.kv_bytes, (unsigned long long)paths,
				     (unsigned long long)longest, st.n_segments, st.n_cta_used);
			}
		}
		free(q);
		tree_free(t);
		kvpool_free(pool);
	}
	ok(bad == 0, "work lists of %d random trees x algorithms built on the host: seq reads each path once, "
		     "the tree algorithms no more than seq", n);
}

/* The work list's rebalance on the host (runs without a device). */
static void test_rebalance_host(unsigned seed)
{
	char err[DT_ERR_LEN] = "";
	double last = 0, any = 0;
	const int rc = cuda_attn_rebalance_selftest(seed, 200, &last, &any, err);
	if (!ok(rc == 0, "rebalance of 200 random work lists keeps every token's rows, tile-aligned masked "
			 "pieces, never a heavier busiest CTA"))
		diag("%s", err);
	else
		diag("busiest / mean model cost after: last-segment pick %.3f, any-segment pick %.3f", last, any);
}

int main(void)
{
	const char *s = getenv("DT_SEED");
	unsigned seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
	const char *qk = getenv("DT_TEST_QUICK");
	quick = qk && *qk && *qk != '0';
	srand(seed);
	tap_plan_lazy();
	diag("seed %u (DT_SEED=%u reproduces)%s", seed, seed, quick ? ", quick" : "");
	test_rebalance_host(seed);
	test_plan_model_host();
	if (cuda_device_count() == 0) {
		tap_skip("no CUDA device: the kernel tests");
		return tap_done();
	}
	struct cuda_device_info di;
	char err[DT_ERR_LEN];
	if (cuda_device_query(0, &di, err) == 0)
		diag("device %s, sm_%d%d, %d SMs", di.name, di.cc_major, di.cc_minor, di.n_sm);
	test_random_cases();
	test_steps_and_repeat();
	test_fused_reduction();
	return tap_done();
}

#endif
