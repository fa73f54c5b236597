/* test_backend.c — the attention backends (src/backend.h) and the engine on
 * each of them.
 *
 * Everywhere: backend names, availability and its reason, the cpu backend's
 * facts, refusing an unavailable backend with a message while the engine
 * keeps running on the one it has.
 *
 * With a CUDA device (SKIP otherwise):
 *   - backend level: a random tree in a host pool (2 layers, random page
 *     size, head layout 8/2/64 or 4/4/128); half of its K/V is in the pool
 *     before the cuda backend exists (the mirror upload of a switch), the
 *     rest arrives through backend_store in random row order (the scatter).
 *     K/V/Q are rounded to fp16 on the host so both backends see the same
 *     inputs; each algorithm's output on cuda against cpu, relative L2 below
 *     2e-3 (tree-mask 1e-2: scores kept in fp16), every value finite; the
 *     counters show device time and uploads;
 *   - engine level: a synthetic model (tests write it with mkmodel), the same
 *     prompt and sampling on a cpu engine and a cuda engine: the prompt's
 *     logits agree within 3e-2 of their range, and a tree grown on the cpu
 *     then switched to cuda keeps growing (pages mirrored), with logits that
 *     agree with an engine that stayed on the cpu.
 * Seed: $DT_SEED or the time (printed). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "common.h"
#include "engine.h"
#include "kvpool.h"
#include "mkmodel.h"
#include "model.h"
#include "tap.h"
#include "tree.h"
#include "treeplan.h"
#ifdef HAVE_CUDA
#include "kernels.h"
#endif

static char err[DT_ERR_LEN];

static float frand(void)
{
	return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

static double rel_l2(const float *a, const float *b, size_t n, bool *finite)
{
	double num = 0, den = 0;
	*finite = true;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(a[i]) || !isfinite(b[i]))
			*finite = false;
		double d = (double)a[i] - b[i];
		num += d * d;
		den += (double)b[i] * b[i];
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

// ---- everywhere

static void test_names(void)
{
	enum backend_kind k;
	ok(backend_kind_parse("cpu", &k, err) == DT_OK && k == BACKEND_CPU, "'cpu' parses");
	ok(backend_kind_parse("cuda", &k, err) == DT_OK && k == BACKEND_CUDA, "'cuda' parses");
	ok(backend_kind_parse("gpu", &k, err) == DT_OK && k == BACKEND_CUDA, "'gpu' is cuda");
	bool have = backend_available(BACKEND_CUDA, NULL);
	ok(backend_kind_parse("auto", &k, err) == DT_OK && k == (have ? BACKEND_CUDA : BACKEND_CPU),
	   "'auto' is cuda exactly when a device is there (%s)", have ? "there" : "not there");
	ok(backend_kind_parse("tpu", &k, err) == DT_ERR_ARG && strstr(err, "tpu") && strstr(err, "cuda"),
	   "an unknown backend is refused with its name and the choices: %s", err);
	ok(!strcmp(backend_kind_name(BACKEND_CPU), "cpu") && !strcmp(backend_kind_name(BACKEND_CUDA), "cuda"),
	   "names round-trip");
	ok(backend_available(BACKEND_CPU, NULL), "the cpu backend is always available");
	char why[DT_ERR_LEN] = "";
	if (!backend_available(BACKEND_CUDA, why))
		ok(why[0] != 0, "no cuda: the reason is given (%s)", why);
	else
		diag("cuda is available here");
}

static void test_cpu_backend(void)
{
	struct kvpool_params kp = kvpool_default_params();
	kp.n_layer = 1;
	kp.n_kv_heads = 2;
	kp.head_dim = 64;
	kp.budget_bytes = 1 << 20;
	struct kvpool *pool = kvpool_new(&kp, err);
	struct backend_params bp = backend_default_params();
	bp.n_head = 8;
	bp.n_kv_head = 2;
	bp.head_dim = 64;
	bp.pool = pool;
	struct backend *b = backend_new(BACKEND_CPU, &bp, err);
	ok(b != NULL, "cpu backend made (%s)", b ? backend_info(b)->device : err);
	if (b) {
		const struct backend_info *in = backend_info(b);
		ok(in->kind == BACKEND_CPU && in->elt_bytes == 4 && in->device[0] && in->device_bytes == 0,
		   "cpu facts: kind cpu, fp32 pool (%d bytes), device '%s', no device memory", in->elt_bytes,
		   in->device);
		float q[8 * 64], out[8 * 64];
		memset(q, 0, sizeof(q));
		ok(backend_attend(b, 0, q, out, err) == DT_ERR_ARG && strstr(err, "plan"),
		   "attend before a plan is refused: %s", err);
	}
	backend_free(b);
	bp.n_head = 7; /* not a multiple of the KV heads */
	b = backend_new(BACKEND_CPU, &bp, err);
	ok(!b && strstr(err, "7/2"), "a bad head layout is refused: %s", err);
	backend_free(b);
	if (!backend_available(BACKEND_CUDA, NULL)) {
		bp.n_head = 8;
		char why[DT_ERR_LEN];
		backend_available(BACKEND_CUDA, why);
		b = backend_new(BACKEND_CUDA, &bp, err);
		ok(!b && !strcmp(err, why), "no cuda: backend_new says why (%s)", err);
		backend_free(b);
	}
	kvpool_free(pool);
}

static const char *model_file(void)
{
	static char path[1024];
	if (path[0])
		return path;
	struct mkmodel_params mp = mkmodel_default_params();
	mp.n_layer = 2;
	mp.n_embd = 256;
	mp.n_head = 4; /* head dim 64 */
	mp.n_head_kv = 2;
	mp.n_ff = 384;
	mp.n_vocab = 600;
	mp.type = DT_TYPE_F16;
	mp.seed = 7;
	snprintf(path, sizeof(path), "%s/backend_model.gguf", tap_tmpdir());
	if (mkmodel_write(&mp, path, NULL, err)) {
		printf("Bail out! mkmodel: %s\n", err);
		exit(1);
	}
	return path;
}

static struct engine *make_engine(struct model *m, enum backend_kind k, uint64_t seed)
{
	struct engine_params p = engine_default_params();
	p.model = m;
	p.backend = k;
	p.sampler.seed = seed;
	p.sampler.temp = 0.8f;
	p.kv_budget = 8u << 20;
	p.max_branch_tokens = 0;
	struct engine *e = engine_new(&p, err);
	if (!e) {
		printf("Bail out! engine_new(%s): %s\n", backend_kind_name(k), err);
		exit(1);
	}
	return e;
}

static void test_engine_refuses(struct model *m)
{
	if (backend_available(BACKEND_CUDA, NULL))
		return;
	struct engine *e = make_engine(m, BACKEND_CPU, 1);
	ok(engine_prefill(e, "abc", false, err) == DT_OK, "prefill on the cpu");
	int rc = engine_set_backend(e, BACKEND_CUDA, err);
	ok(rc < 0 && err[0], "switching to cuda without a device fails with a message: %s", err);
	ok(engine_backend_info(e)->kind == BACKEND_CPU, "the engine stays on the cpu");
	ok(engine_step(e, err) == DT_OK, "and keeps decoding");
	engine_free(e);
}

#ifdef HAVE_CUDA
// ---- with a device

static void append_n(struct tree *t, int32_t node, int32_t n)
{
	int32_t ids[512] = { 0 };
	int rc = tree_append(t, node, ids, NULL, NULL, n, 0, err);
	DT_ASSERT(rc == DT_OK);
}

static void test_backend_level(int ci)
{
	const int lay = ci % 2;
	const int32_t hq = lay ? 4 : 8, hkv = lay ? 4 : 2, d = lay ? 128 : 64, nl = 2;
	const int32_t page_sizes[] = { 1, 7, 16, 64 };
	struct kvpool_params kp = kvpool_default_params();
	kp.n_layer = nl;
	kp.n_kv_heads = hkv;
	kp.head_dim = d;
	kp.page_size = page_sizes[rand() % 4];
	kp.budget_bytes = 64u << 20;
	struct kvpool *pool = kvpool_new(&kp, err);
	struct tree_params tp = tree_default_params();
	tp.n_alt = 0;
	int32_t plen = 1 + rand() % 300;
	int32_t *ids = xcalloc((size_t)plen, sizeof(int32_t));
	struct tree *t = tree_new(&tp, pool, ids, plen, err);
	free(ids);
	DT_ASSERT(t);
	/* a fan with a few deeper branches and a fork */
	int32_t nb = 2 + rand() % 20;
	for (int32_t b = 0; b < nb; b++) {
		int32_t c = tree_add_child(t, tree_root(t), err);
		append_n(t, c, 1 + rand() % 100);
		if (rand() % 3 == 0) {
			int32_t f = tree_fork(t, c, rand() % (tree_node(t, c)->n_tokens + 1), err);
			if (f >= 0)
				append_n(t, f, 1 + rand() % 30);
		}
	}
	const size_t row = (size_t)hkv * d;
	/* every token's K/V; the first half stored before the cuda backend exists */
	int32_t n_tok = 0;
	for (int32_t id = 0; id < tree_n_ids(t); id++)
		if (tree_node(t, id) && tree_node(t, id)->status != TREE_PRUNED)
			n_tok += tree_node(t, id)->n_tokens;
	int32_t *pg = xcalloc((size_t)n_tok, sizeof(int32_t)), *sl = xcalloc((size_t)n_tok, sizeof(int32_t));
	float *kk = xmalloc((size_t)n_tok * row * sizeof(float) * nl);
	float *vv = xmalloc((size_t)n_tok * row * sizeof(float) * nl);
	int32_t j = 0;
	for (int32_t id = 0; id < tree_n_ids(t); id++) {
		const struct tree_node *n = tree_node(t, id);
		if (!n || n->status == TREE_PRUNED)
			continue;
		for (int32_t i = 0; i < n->n_tokens; i++, j++)
			tree_kv_loc(t, id, i, &pg[j], &sl[j]);
	}
	for (size_t i = 0; i < (size_t)n_tok * row * nl; i++) {
		kk[i] = frand();
		vv[i] = frand();
	}
	cuda_round_host(kk, (size_t)n_tok * row * nl, CUDA_DT_F16);
	cuda_round_host(vv, (size_t)n_tok * row * nl, CUDA_DT_F16);
	/* shuffle the token order: rows arrive in any order */
	for (int32_t i = n_tok - 1; i > 0; i--) {
		int32_t r = rand() % (i + 1), tp0 = pg[i], ts = sl[i];
		pg[i] = pg[r], sl[i] = sl[r], pg[r] = tp0, sl[r] = ts;
	}
	int32_t half = n_tok / 2;
	for (int32_t l = 0; l < nl; l++)
		for (int32_t i = 0; i < half; i++)
			kvpool_store(pool, l, pg[i], sl[i], kk + ((size_t)l * n_tok + i) * row,
				     vv + ((size_t)l * n_tok + i) * row);
	struct backend_params bp = backend_default_params();
	bp.n_head = hq;
	bp.n_kv_head = hkv;
	bp.head_dim = d;
	bp.pool = pool;
	bp.measure_copy = ci == 0;
	struct backend *cpu = backend_new(BACKEND_CPU, &bp, err);
	struct backend *gpu = backend_new(BACKEND_CUDA, &bp, err);
	ok(cpu && gpu, "case %d: both backends made (%s)", ci, gpu ? backend_info(gpu)->device : err);
	if (!cpu || !gpu)
		goto done;
	if (ci == 0)
		ok(backend_info(gpu)->copy_bytes_per_s > 1e11 && backend_info(gpu)->elt_bytes == 2 &&
			   backend_info(gpu)->device_bytes > 0,
		   "cuda facts: copy %.0f GB/s, fp16, %.1f MiB on the device",
		   backend_info(gpu)->copy_bytes_per_s / 1e9, backend_info(gpu)->device_bytes / 1048576.0);
	/* the rest through backend_store, in chunks of random size */
	int32_t chunk = 1 + rand() % 64;
	for (int32_t l = 0; l < nl; l++)
		for (int32_t i = half; i < n_tok; i += chunk) {
			int32_t n = DT_MIN(chunk, n_tok - i);
			const float *k = kk + ((size_t)l * n_tok + i) * row, *v = vv + ((size_t)l * n_tok + i) * row;
			for (int32_t r = 0; r < n; r++)
				kvpool_store(pool, l, pg[i + r], sl[i + r], k + r * row, v + r * row);
			int rc = backend_store(cpu, l, n, pg + i, sl + i, k, v, err);
			rc = rc ? rc : backend_store(gpu, l, n, pg + i, sl + i, k, v, err);
			DT_ASSERT(rc == DT_OK);
		}
	int32_t nq = treeplan_leaf_queries(t, NULL, 0);
	struct treeplan_query *q = xcalloc((size_t)nq, sizeof(*q));
	treeplan_leaf_queries(t, q, nq);
	size_t qn = (size_t)nq * hq * d;
	float *qv = xmalloc(qn * sizeof(float)), *o1 = xmalloc(qn * sizeof(float)), *o2 = xmalloc(qn * sizeof(float));
	for (size_t i = 0; i < qn; i++)
		qv[i] = frand();
	cuda_round_host(qv, qn, CUDA_DT_F16);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct treeplan_params pp = treeplan_default_params();
		pp.algo = (enum treeplan_algo)a;
		pp.block_size = rand() % 2 ? 128 : 16;
		struct treeplan *pl = treeplan_new(&pp, err);
		int rc = treeplan_update(pl, t, q, nq, err);
		DT_ASSERT(rc == DT_OK);
		const struct treeplan_flat *f = treeplan_flat(pl);
		for (int32_t l = 0; l < nl; l++) {
			for (size_t i = 0; i < qn; i++)
				o2[i] = NAN;
			rc = backend_set_plan(cpu, f, a, err);
			rc = rc ? rc : backend_attend(cpu, l, qv, o1, err);
			rc = rc ? rc : backend_set_plan(gpu, f, a, err);
			rc = rc ? rc : backend_attend(gpu, l, qv, o2, err);
			bool fin;
			double e = rel_l2(o2, o1, qn, &fin);
			double tol = a == TREEPLAN_TREE_MASK ? 1e-2 : 2e-3;
			struct backend_counters bc;
			backend_get_counters(gpu, &bc);
			ok(rc == DT_OK && fin && e < tol && bc.device_ns > 0 && bc.download_bytes == qn * 4,
			   "case %d %s layer %d: cuda vs cpu rel %.2e < %.0e (%d queries, %d/%d/%d, page %d), "
			   "GPU %.1f us%s%s",
			   ci, treeplan_algo_name((enum treeplan_algo)a), l, e, tol, nq, hq, hkv, d, kp.page_size,
			   bc.device_ns / 1e3, fin ? "" : ", NOT FINITE", rc ? err : "");
		}
		treeplan_free(pl);
	}
	free(q);
	free(qv);
	free(o1);
	free(o2);
done:
	backend_free(cpu);
	backend_free(gpu);
	free(pg);
	free(sl);
	free(kk);
	free(vv);
	tree_free(t);
	kvpool_free(pool);
}

static double logits_diff(const float *a, const float *b, int32_t n)
{
	float lo = a[0], hi = a[0];
	double m = 0;
	for (int32_t i = 0; i < n; i++) {
		lo = fminf(lo, b[i]);
		hi = fmaxf(hi, b[i]);
		m = fmax(m, fabs((double)a[i] - b[i]));
	}
	return hi > lo ? m / (hi - lo) : m;
}

static void test_engine_level(struct model *m, uint64_t seed)
{
	const int32_t nv = model_hparams(m)->n_vocab;
	struct engine *ec = make_engine(m, BACKEND_CPU, seed), *eg = make_engine(m, BACKEND_CUDA, seed);
	ok(engine_backend_info(eg)->kind == BACKEND_CUDA, "engine on cuda: %s", engine_backend_info(eg)->device);
	const char *prompt = "The tree of tokens grows one step at a time, and every branch";
	int rc = engine_prefill(ec, prompt, false, err);
	rc = rc ? rc : engine_prefill(eg, prompt, false, err);
	ok(rc == DT_OK, "prefill on both (%s)", rc ? err : "ok");
	if (rc)
		goto out;
	int32_t root = tree_root(engine_tree(ec)), n = tree_node(engine_tree(ec), root)->n_tokens;
	const float *lc = engine_logits(ec, root, n - 1), *lg = engine_logits(eg, root, n - 1);
	double dl = lc && lg ? logits_diff(lg, lc, nv) : 1e9;
	ok(dl < 3e-2, "prompt logits: cuda vs cpu max diff %.2e of their range (< 3e-2)", dl);
	/* a tree on the cuda engine: three branches, a fork */
	int32_t kids[3];
	rc = engine_sample_n(eg, root, n, 3, kids, err);
	for (int s = 0; s < 6 && rc == DT_OK; s++)
		rc = engine_step(eg, err);
	ok(rc == DT_OK, "three branches grow on cuda (%s)", rc ? err : "ok");
	if (rc == DT_OK) {
		int32_t f = engine_fork(eg, kids[1], 2, ENGINE_FORK_RESAMPLE, 0, NULL, err);
		rc = f >= 0 ? DT_OK : (int)f;
		for (int s = 0; s < 4 && rc == DT_OK; s++)
			rc = engine_step(eg, err);
		int32_t leaves = 0;
		for (int32_t id = 0; id < tree_n_ids(engine_tree(eg)); id++) {
			const struct tree_node *nd = tree_node(engine_tree(eg), id);
			leaves += nd && nd->status != TREE_PRUNED && nd->n_children == 0;
		}
		ok(rc == DT_OK && leaves == 4, "a fork grows on cuda: %d leaves (%s)", leaves, rc ? err : "ok");
	}
	/* the cpu engine grows the same tree, then switches to cuda */
	rc = engine_sample_n(ec, root, n, 3, kids, err);
	for (int s = 0; s < 3 && rc == DT_OK; s++)
		rc = engine_step(ec, err);
	struct engine *ref = make_engine(m, BACKEND_CPU, seed);
	int rc2 = engine_prefill(ref, prompt, false, err);
	int32_t rk[3];
	rc2 = rc2 ? rc2 : engine_sample_n(ref, root, n, 3, rk, err);
	for (int s = 0; s < 3 && rc2 == DT_OK; s++)
		rc2 = engine_step(ref, err);
	ok(rc == DT_OK && rc2 == DT_OK, "two cpu engines grow three branches");
	rc = engine_set_backend(ec, BACKEND_CUDA, err);
	ok(rc == DT_OK && engine_backend_info(ec)->kind == BACKEND_CUDA, "switch to cuda mid-session (%s)",
	   rc ? err : engine_backend_info(ec)->device);
	/* force the same token on both so the next logits compare position by position */
	if (rc == DT_OK) {
		struct tree *t1 = engine_tree(ec), *t2 = engine_tree(ref);
		int32_t l1[8], l2[8];
		int32_t n1 = tree_live_leaves(t1, l1, 8), n2 = tree_live_leaves(t2, l2, 8);
		bool same = n1 == n2;
		for (int32_t i = 0; same && i < n1; i++) {
			engine_force_text(ec, l1[i], " and", err);
			engine_force_text(ref, l2[i], " and", err);
		}
		rc = engine_step(ec, err);
		rc2 = engine_step(ref, err);
		double worst = 0;
		for (int32_t i = 0; same && rc == DT_OK && rc2 == DT_OK && i < n1; i++) {
			const struct tree_node *a = tree_node(t1, l1[i]), *b = tree_node(t2, l2[i]);
			/* the forced text's last token: its logits came from this step's forward */
			int32_t ia = a->n_tokens - 2, ib = b->n_tokens - 2;
			const float *x = engine_logits(ec, l1[i], ia), *y = engine_logits(ref, l2[i], ib);
			worst = x && y ? fmax(worst, logits_diff(x, y, nv)) : 1e9;
		}
		ok(same && rc == DT_OK && rc2 == DT_OK && worst < 3e-2,
		   "after the switch every branch's logits agree with the cpu engine: %.2e (< 3e-2)%s", worst,
		   rc ? err : "");
		for (int s = 0; s < 3 && rc == DT_OK; s++)
			rc = engine_step(ec, err);
		ok(rc == DT_OK, "and keep growing on cuda (%s)", rc ? err : "ok");
		rc = engine_set_backend(ec, BACKEND_CPU, err);
		rc = rc ? rc : engine_step(ec, err);
		ok(rc == DT_OK && engine_backend_info(ec)->kind == BACKEND_CPU, "and back on the cpu (%s)",
		   rc ? err : "ok");
	}
	engine_free(ref);
out:
	engine_free(ec);
	engine_free(eg);
}
#endif

int main(void)
{
	tap_plan_lazy();
	uint64_t seed = getenv("DT_SEED") ? strtoull(getenv("DT_SEED"), NULL, 10) : (uint64_t)time(NULL);
	diag("seed %llu", (unsigned long long)seed);
	srand((unsigned)seed);
	test_names();
	test_cpu_backend();
	struct model_params mp = model_default_params();
	mp.n_threads = 2;
	struct model *m = model_load(model_file(), &mp, err);
	if (!m) {
		printf("Bail out! model_load: %s\n", err);
		return 1;
	}
	test_engine_refuses(m);
	if (!backend_available(BACKEND_CUDA, NULL)) {
		tap_skip("no CUDA device: the cuda backend tests");
	} else {
#ifdef HAVE_CUDA
		for (int ci = 0; ci < 6; ci++)
			test_backend_level(ci);
		test_engine_level(m, seed);
#endif
	}
	model_free(m);
	return tap_done();
}
