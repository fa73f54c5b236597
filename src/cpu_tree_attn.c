/*
 * cpu_tree_attn.c — executes a tree attention plan on the CPU (design in
 * cpu_tree_attn.h, plan format in treeplan.h).
 *
 * DESIGN
 *   Work item i = (group g, KV head hk), handed out by an atomic counter so
 *   that uneven groups (deft-node's root) balance over the threads.  Three
 *   passes per layer:
 *     1. max: for every entry (a query's share of a group) and query head,
 *        the largest visible score s = scale * q.k; then per query the max M
 *        over its entries.  A max does not depend on how keys are grouped.
 *     2. sums: p = exp(s - M) for every visible key (fp32, the same function
 *        for every key, so p is the same number whatever group or SIMD lane
 *        the key lands in), l_e = sum p and acc_e = sum p v accumulated in
 *        double.
 *     3. reduction: out = sum_e acc_e / sum_e l_e in double, rounded once.
 *   Why not one online-softmax pass with a running max: its rescaling makes
 *   each result depend on the grouping, so the same branch would get slightly
 *   different attention under deft-flatten in a tree than alone, and the
 *   model's q8 activation rounding turns 1e-7 differences into different
 *   tokens.  With a shared max and double sums, the algorithms agree to the
 *   last fp32 bit except where double rounding order (~1e-16) straddles a
 *   float boundary, which the next matmul's q8 rounding almost always absorbs.
 *   Pass 1 keeps its scores for pass 2, so q.k runs once.  The inner kernels (q.k over 8 keys,
 *   exp over a tile, p.V into a double accumulator) have an AVX2+FMA version
 *   (runtime dispatch) and a portable one.
 */
#include "config.h"

#include "cpu_tree_attn.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kvpool.h"
#include "threadpool.h"
#include "tree.h"
#include "treeplan.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86_SIMD 1
#endif

/* Keys per tile: K and V of 32 keys at head_dim 64 are 16 KiB, which stays in
 * L1 while every entry and head of the group reads it.  Exactly 32: a tile's
 * visibility for one entry is then one uint32 word (bit j = key t0 + j), and
 * the plan's mask words line up with tiles. */
#define TILE 32
_Static_assert(TILE == 32, "a tile's visibility is one 32-bit word");

struct kernels {
	/* s[0..n8) = scale * q . kp[j], n8 a multiple of 8; each key's dot is
	 * computed the same way whatever its position j */
	void (*qk)(const float *q, const float *const *kp, int n8, int d, float scale, float *s);
	/* p[j] = exp(s[j] - mx) for visible j (bit j of vis), else 0, j < n8;
	 * returns sum p in double, summed in j order */
	double (*expsum)(const float *s, uint32_t vis, int n8, float mx, float *p);
	/* acc[0..d) += sum_j p[j] vp[j][0..d) over j < n, in double */
	void (*pv)(double *acc, const float *p, const float *const *vp, int n, int d);
};

struct cpu_tree_attn {
	struct cpu_tree_attn_params p;
	struct threadpool *tp;
	struct kernels k;
	const char *kname;
	float *zero;   /* (head_dim) padding row */
	double *part;  /* (cap_e, n_head, head_dim) partial sums of p v */
	float *m;      /* (cap_e, n_head) entry max, then the query's max M */
	double *l;     /* (cap_e, n_head) partial sums of p */
	int32_t cap_e;
	float *sc;       /* pass 1's scores, reused by pass 2: entry e, head h, its
			  * visible span rounded up to tiles, at sc_off[e] + h * span */
	int64_t *sc_off; /* (cap_e + 1) */
	size_t cap_sc;   /* floats in sc */
};

// ---- portable kernels

static void qk_portable(const float *q, const float *const *kp, int n8, int d, float scale, float *s)
{
	for (int j = 0; j < n8; j++) {
		const float *k = kp[j];
		float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
		int i = 0;
		for (; i + 4 <= d; i += 4) {
			a0 += q[i] * k[i];
			a1 += q[i + 1] * k[i + 1];
			a2 += q[i + 2] * k[i + 2];
			a3 += q[i + 3] * k[i + 3];
		}
		for (; i < d; i++)
			a0 += q[i] * k[i];
		s[j] = scale * ((a0 + a1) + (a2 + a3));
	}
}

static float tilemax(const float *s, uint32_t vis, int n8)
{
	float mx = -INFINITY;
	for (int j = 0; j < n8; j++)
		if (vis >> j & 1)
			mx = s[j] > mx ? s[j] : mx;
	return mx;
}

static double expsum_portable(const float *s, uint32_t vis, int n8, float mx, float *p)
{
	double sum = 0.0;
	for (int j = 0; j < n8; j++) {
		p[j] = vis >> j & 1 ? expf(s[j] - mx) : 0.0f;
		sum += p[j];
	}
	return sum;
}

static void pv_portable(double *acc, const float *p, const float *const *vp, int n, int d)
{
	for (int j = 0; j < n; j++) {
		const double pj = p[j];
		const float *v = vp[j];
		if (pj == 0.0)
			continue;
		for (int i = 0; i < d; i++)
			acc[i] += pj * (double)v[i];
	}
}

// ---- AVX2 + FMA kernels (head_dim a multiple of 8)

#ifdef HAVE_X86_SIMD
#define SIMD_FN __attribute__((target("avx2,fma")))

SIMD_FN static void qk_avx2(const float *q, const float *const *kp, int n8, int d, float scale,
			    float *s)
{
	const __m256 sc = _mm256_set1_ps(scale);
	for (int j = 0; j < n8; j += 8) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
		       a7 = a0;
		const float *k0 = kp[j], *k1 = kp[j + 1], *k2 = kp[j + 2], *k3 = kp[j + 3],
			    *k4 = kp[j + 4], *k5 = kp[j + 5], *k6 = kp[j + 6], *k7 = kp[j + 7];
		for (int i = 0; i < d; i += 8) {
			__m256 qv = _mm256_loadu_ps(q + i);
			a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
			a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
			a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
			a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
			a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k4 + i), a4);
			a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k5 + i), a5);
			a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k6 + i), a6);
			a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k7 + i), a7);
		}
		/* 8 vectors -> one vector of their 8 horizontal sums */
		__m256 s01 = _mm256_hadd_ps(a0, a1), s23 = _mm256_hadd_ps(a2, a3);
		__m256 s45 = _mm256_hadd_ps(a4, a5), s67 = _mm256_hadd_ps(a6, a7);
		__m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
		__m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20);
		__m256 hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
		_mm256_storeu_ps(s + j, _mm256_mul_ps(sc, _mm256_add_ps(lo, hi)));
	}
}

/* exp of 8 floats, Cephes expf polynomial (about 1 ulp on [-88, 88]);
 * inputs below -88 (and -inf, NaN) give exactly 0. */
SIMD_FN static __m256 exp8_avx2(__m256 x)
{
	const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.0f);
	__m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
	x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
	__m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
	fx = _mm256_floor_ps(fx);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
	__m256 y = _mm256_set1_ps(1.9875691500e-4f);
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
	y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
	y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
	return _mm256_and_ps(y, keep);
}

/* Lanes of vector g (tokens 8g .. 8g+7) whose bit is set in vis. */
SIMD_FN static __m256 vis_lanes(uint32_t vis, int g)
{
	const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
	__m256i w = _mm256_set1_epi32((int)((vis >> (8 * g)) & 0xffu));
	return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(w, bits), bits));
}

SIMD_FN static double expsum_avx2(const float *s, uint32_t vis, int n8, float mx, float *p)
{
	const __m256 ninf = _mm256_set1_ps(-INFINITY);
	const __m256 mv = _mm256_set1_ps(mx);
	for (int g = 0; g < n8 / 8; g++) {
		__m256 v = _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + 8 * g), vis_lanes(vis, g));
		_mm256_storeu_ps(p + 8 * g, exp8_avx2(_mm256_sub_ps(v, mv))); /* -inf lanes give 0 */
	}
	double sum = 0.0;
	for (int j = 0; j < n8; j++)
		sum += p[j];
	return sum;
}

SIMD_FN static void pv_avx2(double *acc, const float *p, const float *const *vp, int n, int d)
{
	int c = 0;
	for (; c + 32 <= d; c += 32) { /* 8 double accumulators in registers */
		__m256d a0 = _mm256_loadu_pd(acc + c), a1 = _mm256_loadu_pd(acc + c + 4);
		__m256d a2 = _mm256_loadu_pd(acc + c + 8), a3 = _mm256_loadu_pd(acc + c + 12);
		__m256d a4 = _mm256_loadu_pd(acc + c + 16), a5 = _mm256_loadu_pd(acc + c + 20);
		__m256d a6 = _mm256_loadu_pd(acc + c + 24), a7 = _mm256_loadu_pd(acc + c + 28);
		for (int j = 0; j < n; j++) {
			if (p[j] == 0.0f)
				continue;
			const __m256d pj = _mm256_set1_pd((double)p[j]);
			const float *v = vp[j] + c;
			__m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
			__m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
			a0 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)), a0);
			a1 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)), a1);
			a2 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)), a2);
			a3 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)), a3);
			a4 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_castps256_ps128(v2)), a4);
			a5 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_extractf128_ps(v2, 1)), a5);
			a6 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_castps256_ps128(v3)), a6);
			a7 = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_extractf128_ps(v3, 1)), a7);
		}
		_mm256_storeu_pd(acc + c, a0);
		_mm256_storeu_pd(acc + c + 4, a1);
		_mm256_storeu_pd(acc + c + 8, a2);
		_mm256_storeu_pd(acc + c + 12, a3);
		_mm256_storeu_pd(acc + c + 16, a4);
		_mm256_storeu_pd(acc + c + 20, a5);
		_mm256_storeu_pd(acc + c + 24, a6);
		_mm256_storeu_pd(acc + c + 28, a7);
	}
	for (; c < d; c += 8) { /* the rest, 8 values at a time */
		__m256d a = _mm256_loadu_pd(acc + c), b = _mm256_loadu_pd(acc + c + 4);
		for (int j = 0; j < n; j++) {
			const __m256d pj = _mm256_set1_pd((double)p[j]);
			__m256 v = _mm256_loadu_ps(vp[j] + c);
			a = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_castps256_ps128(v)), a);
			b = _mm256_fmadd_pd(pj, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), b);
		}
		_mm256_storeu_pd(acc + c, a);
		_mm256_storeu_pd(acc + c + 4, b);
	}
}
#endif

// ---- lifetime

struct cpu_tree_attn_params cpu_tree_attn_default_params(void)
{
	return (struct cpu_tree_attn_params){
		.n_head = 1, .n_kv_head = 1, .head_dim = 64, .scale = 0.0f, .portable = false
	};
}

struct cpu_tree_attn *cpu_tree_attn_new(const struct cpu_tree_attn_params *p, struct threadpool *tp,
					char *err)
{
	if (p->n_head < 1 || p->n_kv_head < 1 || p->n_head % p->n_kv_head != 0 || p->head_dim < 1 ||
	    p->head_dim > 4096)
		return dt_err(err, "tree attention: heads %d / %d, head_dim %d (expected n_head a "
				   "multiple of n_kv_head, head_dim 1 .. 4096)",
			      p->n_head, p->n_kv_head, p->head_dim),
		       NULL;
	struct cpu_tree_attn *a = xcalloc(1, sizeof(*a));
	a->p = *p;
	if (!(a->p.scale > 0.0f))
		a->p.scale = 1.0f / sqrtf((float)p->head_dim);
	a->tp = tp;
	a->zero = xcalloc((size_t)p->head_dim, sizeof(float));
	a->k = (struct kernels){ qk_portable, expsum_portable, pv_portable };
	a->kname = "portable";
#ifdef HAVE_X86_SIMD
	__builtin_cpu_init();
	if (!p->portable && p->head_dim % 8 == 0 && __builtin_cpu_supports("avx2") &&
	    __builtin_cpu_supports("fma")) {
		a->k = (struct kernels){ qk_avx2, expsum_avx2, pv_avx2 };
		a->kname = "avx2";
	}
#endif
	return a;
}

void cpu_tree_attn_free(struct cpu_tree_attn *a)
{
	if (!a)
		return;
	free(a->zero);
	free(a->part);
	free(a->m);
	free(a->l);
	free(a->sc);
	free(a->sc_off);
	free(a);
}

const char *cpu_tree_attn_kernel_name(const struct cpu_tree_attn *a)
{
	return a->kname;
}

// ---- one work item: (group, kv head)

struct job {
	const struct cpu_tree_attn *a;
	const struct treeplan_flat *f;
	const float *kb, *vb; /* layer base: (n_pages, n_kv_head, page_size, head_dim) */
	const float *q;
	float *out;
	int32_t n_items;
	bool max_pass;
	atomic_int next;
};

/* Pass 1 (max_pass) or pass 2 (sums) over one (group, kv head). */
static void run_item(const struct job *jb, int32_t g, int32_t hk, bool max_pass)
{
	const struct cpu_tree_attn *a = jb->a;
	const struct treeplan_flat *f = jb->f;
	const int d = a->p.head_dim, hq = a->p.n_head, hkv = a->p.n_kv_head, gs = hq / hkv;
	const int32_t ps = f->page_size;
	const int32_t e0 = f->group_entry_off[g], e1 = f->group_entry_off[g + 1];
	const int32_t ng = f->group_n_tokens[g];
	const float scale = a->p.scale;

	for (int32_t e = e0; e < e1; e++)
		for (int h = hk * gs; h < (hk + 1) * gs; h++) {
			size_t row = (size_t)e * (size_t)hq + (size_t)h;
			if (max_pass) {
				a->m[row] = -INFINITY;
			} else {
				a->l[row] = 0.0;
				memset(a->part + row * (size_t)d, 0, (size_t)d * sizeof(double));
			}
		}

	const float *kp[TILE], *vp[TILE];
	float pr[TILE];
	int32_t r = f->group_run_begin[g], in_run = 0;
	for (int32_t t0 = 0; t0 < ng; t0 += TILE) {
		const int nt = (int)DT_MIN(TILE, ng - t0);
		for (int j = 0; j < nt; j++) {
			if (in_run == f->run_len[r]) {
				r++;
				in_run = 0;
			}
			size_t off = (((size_t)f->run_page[r] * (size_t)hkv + (size_t)hk) * (size_t)ps +
				      (size_t)(f->run_slot[r] + in_run)) *
				     (size_t)d;
			kp[j] = jb->kb + off;
			vp[j] = jb->vb + off;
			in_run++;
		}
		for (int j = nt; j < TILE; j++)
			kp[j] = vp[j] = a->zero;

		for (int32_t e = e0; e < e1; e++) {
			const int32_t nvis = f->entry_nvis[e];
			if (t0 >= nvis)
				continue;
			/* visible tokens of this tile: bit j for token t0 + j (t0 % 32 == 0,
			 * so the entry's mask word for the tile is word t0 / 32) */
			const int n = (int)DT_MIN(nt, nvis - t0);
			uint32_t vis = n == 32 ? 0xffffffffu : (1u << n) - 1u;
			if (f->entry_mask[e] >= 0)
				vis &= f->mask[f->entry_mask[e] + (t0 >> 5)];
			if (!vis)
				continue;
			const int n_used = 32 - __builtin_clz(vis); /* last visible token + 1 */
			const int n8 = (n_used + 7) & ~7;
			const int32_t qi = f->entry_query[e];
			const int64_t span = ((int64_t)nvis + TILE - 1) / TILE * TILE;
			for (int h = hk * gs; h < (hk + 1) * gs; h++) {
				const float *qr = jb->q + ((size_t)qi * (size_t)hq + (size_t)h) * (size_t)d;
				size_t row = (size_t)e * (size_t)hq + (size_t)h;
				float *s = a->sc + a->sc_off[e] + (int64_t)h * span + t0;
				if (max_pass)
					a->k.qk(qr, kp, n8, d, scale, s);
				if (max_pass) {
					float mx = tilemax(s, vis, n8);
					a->m[row] = mx > a->m[row] ? mx : a->m[row];
				} else {
					a->l[row] += a->k.expsum(s, vis, n8, a->m[row], pr);
					a->k.pv(a->part + row * (size_t)d, pr, vp, n_used, d);
				}
			}
		}
	}
}

static void groups_fn(void *arg, int ith, int nth)
{
	struct job *jb = arg;
	const int32_t hkv = jb->a->p.n_kv_head;
	(void)ith;
	(void)nth;
	for (;;) {
		int32_t i = atomic_fetch_add_explicit(&jb->next, 1, memory_order_relaxed);
		if (i >= jb->n_items)
			break;
		run_item(jb, i / hkv, i % hkv, jb->max_pass);
	}
}

// ---- per query: the shared max, then the reduction

/* The max M over the query's entries, written back into every entry's row:
 * pass 2 reads it there. */
static void share_max(const struct job *jb, int32_t qi)
{
	const struct cpu_tree_attn *a = jb->a;
	const struct treeplan_flat *f = jb->f;
	const int hq = a->p.n_head;
	const int32_t k0 = f->red_off[qi], k1 = f->red_off[qi + 1];
	for (int h = 0; h < hq; h++) {
		float mx = -INFINITY;
		for (int32_t k = k0; k < k1; k++) {
			float m = a->m[(size_t)f->red_entry[k] * (size_t)hq + (size_t)h];
			mx = m > mx ? m : mx;
		}
		for (int32_t k = k0; k < k1; k++)
			a->m[(size_t)f->red_entry[k] * (size_t)hq + (size_t)h] = mx;
	}
}

static void reduce_query(const struct job *jb, int32_t qi)
{
	const struct cpu_tree_attn *a = jb->a;
	const struct treeplan_flat *f = jb->f;
	const int d = a->p.head_dim, hq = a->p.n_head;
	const int32_t k0 = f->red_off[qi], k1 = f->red_off[qi + 1];
	double acc[4096];
	for (int h = 0; h < hq; h++) {
		double l = 0.0;
		for (int i = 0; i < d; i++)
			acc[i] = 0.0;
		for (int32_t k = k0; k < k1; k++) { /* entries in plan order */
			size_t row = (size_t)f->red_entry[k] * (size_t)hq + (size_t)h;
			const double *pa = a->part + row * (size_t)d;
			l += a->l[row];
			for (int i = 0; i < d; i++)
				acc[i] += pa[i];
		}
		DT_ASSERT(l > 0.0); /* the key holding the max contributes exp(0) = 1 */
		float *o = jb->out + ((size_t)qi * (size_t)hq + (size_t)h) * (size_t)d;
		for (int i = 0; i < d; i++)
			o[i] = (float)(acc[i] / l);
	}
}

static void per_query_fn(void *arg, int ith, int nth)
{
	struct job *jb = arg;
	const int32_t nq = jb->f->n_queries;
	/* contiguous slices: which thread does a query does not change its result */
	int32_t q0 = (int32_t)((int64_t)nq * ith / nth), q1 = (int32_t)((int64_t)nq * (ith + 1) / nth);
	for (int32_t qi = q0; qi < q1; qi++) {
		if (jb->max_pass)
			share_max(jb, qi);
		else
			reduce_query(jb, qi);
	}
}

int cpu_tree_attn_run(struct cpu_tree_attn *a, const struct treeplan_flat *f,
		      const struct kvpool *pool, int32_t layer, const float *q, float *out, char *err)
{
	const struct kvpool_params *pp = kvpool_params(pool);
	if (pp->n_kv_heads != a->p.n_kv_head || pp->head_dim != a->p.head_dim ||
	    pp->page_size != f->page_size)
		return dt_err(err, "tree attention: pool has %d kv heads x %d, page %d (expected %d x %d, "
				   "page %d)",
			      pp->n_kv_heads, pp->head_dim, pp->page_size, a->p.n_kv_head,
			      a->p.head_dim, f->page_size),
		       DT_ERR_ARG;
	if (!pp->host_storage || layer < 0 || layer >= pp->n_layer)
		return dt_err(err, "tree attention: layer %d of a pool with %d layers%s", layer,
			      pp->n_layer, pp->host_storage ? "" : " and no host storage"),
		       DT_ERR_ARG;
	if (f->n_entries > a->cap_e) {
		int32_t c = a->cap_e ? a->cap_e : 64;
		while (c < f->n_entries)
			c *= 2;
		size_t rows = (size_t)c * (size_t)a->p.n_head;
		free(a->part);
		free(a->m);
		free(a->l);
		a->part = xmallocarray(rows * (size_t)a->p.head_dim, sizeof(double));
		a->m = xmallocarray(rows, sizeof(float));
		a->l = xmallocarray(rows, sizeof(double));
		free(a->sc_off);
		a->sc_off = xmallocarray((size_t)c + 1, sizeof(int64_t));
		a->cap_e = c;
	}
	/* where pass 1 keeps each entry's scores */
	int64_t n_sc = 0;
	for (int32_t e = 0; e < f->n_entries; e++) {
		a->sc_off[e] = n_sc;
		n_sc += ((int64_t)f->entry_nvis[e] + TILE - 1) / TILE * TILE * a->p.n_head;
	}
	a->sc_off[f->n_entries] = n_sc;
	if ((size_t)n_sc > a->cap_sc) {
		free(a->sc);
		a->cap_sc = (size_t)n_sc + (size_t)n_sc / 2;
		a->sc = xmallocarray(a->cap_sc, sizeof(float));
	}
	struct job jb = {
		.a = a,
		.f = f,
		.kb = kvpool_k(pool, layer),
		.vb = kvpool_v(pool, layer),
		.q = q,
		.out = out,
		.n_items = f->n_groups * a->p.n_kv_head,
		.max_pass = true,
	};
	atomic_init(&jb.next, 0);
	threadpool_run(a->tp, groups_fn, &jb);    /* 1. entry max */
	threadpool_run(a->tp, per_query_fn, &jb); /*    query max */
	jb.max_pass = false;
	atomic_store(&jb.next, 0);
	threadpool_run(a->tp, groups_fn, &jb);    /* 2. sums with the shared max */
	threadpool_run(a->tp, per_query_fn, &jb); /* 3. reduction */
	return DT_OK;
}

// ---- float64 reference

void cpu_tree_attn_ref(const struct tree *t, const struct kvpool *pool, int32_t layer,
		       const struct treeplan_query *queries, int32_t n, const float *q, int32_t n_head,
		       double scale, double *out)
{
	const struct kvpool_params *pp = kvpool_params(pool);
	const int d = pp->head_dim, hkv = pp->n_kv_heads, ps = pp->page_size;
	const int gs = n_head / hkv;
	const float *kb = kvpool_k(pool, layer), *vb = kvpool_v(pool, layer);
	if (!(scale > 0.0))
		scale = 1.0 / sqrt((double)d);
	for (int32_t qi = 0; qi < n; qi++) {
		int32_t len = 0;
		for (int32_t x = queries[qi].node; x >= 0; x = tree_node(t, x)->parent)
			len += x == queries[qi].node ? queries[qi].index + 1 : tree_node(t, x)->n_tokens;
		size_t *off = xmallocarray((size_t)len, sizeof(size_t)); /* row offsets / head_dim */
		int32_t k = 0;
		for (int32_t x = queries[qi].node; x >= 0; x = tree_node(t, x)->parent) {
			int32_t cnt = x == queries[qi].node ? queries[qi].index + 1 : tree_node(t, x)->n_tokens;
			for (int32_t i = 0; i < cnt; i++) {
				int32_t page, slot;
				tree_kv_loc(t, x, i, &page, &slot);
				off[k++] = ((size_t)page * (size_t)hkv * (size_t)ps + (size_t)slot) * (size_t)d;
			}
		}
		double *sc = xmallocarray((size_t)len, sizeof(double));
		for (int h = 0; h < n_head; h++) {
			const int hk = h / gs;
			const size_t hoff = (size_t)hk * (size_t)ps * (size_t)d;
			const float *qr = q + ((size_t)qi * (size_t)n_head + (size_t)h) * (size_t)d;
			double mx = -INFINITY;
			for (int32_t j = 0; j < len; j++) {
				const float *kr = kb + off[j] + hoff;
				double dot = 0.0;
				for (int i = 0; i < d; i++)
					dot += (double)qr[i] * (double)kr[i];
				sc[j] = dot * scale;
				mx = sc[j] > mx ? sc[j] : mx;
			}
			double sum = 0.0;
			double *o = out + ((size_t)qi * (size_t)n_head + (size_t)h) * (size_t)d;
			for (int i = 0; i < d; i++)
				o[i] = 0.0;
			for (int32_t j = 0; j < len; j++) {
				double w = exp(sc[j] - mx);
				const float *vr = vb + off[j] + hoff;
				sum += w;
				for (int i = 0; i < d; i++)
					o[i] += w * (double)vr[i];
			}
			for (int i = 0; i < d; i++)
				o[i] /= sum;
		}
		free(sc);
		free(off);
	}
}
