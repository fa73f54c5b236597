/*
 * kvcache.c — contiguous per-sequence KV cache with causal attention.
 *
 * DESIGN
 *   K and V of layer l, kv head g live in one contiguous (n_ctx, head_dim)
 *   slab: [l][g][t][d], so one head's keys stream through the cache.
 *   `n_past` tokens are committed; store() writes the batch at rows
 *   n_past .. n_past+n-1 of its layer, attend() lets batch query i read rows
 *   0 .. n_past+i, and the attend() of the last layer commits the batch.
 *
 *   attend() splits the keys of each query into chunks of KV_CHUNK (fixed
 *   boundaries 0, KV_CHUNK, 2*KV_CHUNK, ...).  A task is (query i, kv head g,
 *   chunk c) and handles the n_head/n_head_kv query heads that share kv head g:
 *   scores s = q.k / sqrt(head_dim), chunk max m, e = exp(s - m), l = sum(e),
 *   acc = sum(e v).  A second pass merges the chunks of each (i, g) in chunk
 *   order: M = max m_c, out = sum_c acc_c e^(m_c - M) / sum_c l_c e^(m_c - M).
 *   The result does not depend on the thread count or on how a sequence was
 *   cut into batches, and a single decoded token still spreads over all
 *   threads (flash-decoding style).
 *
 *   f16 storage follows ggml's f16 matrix products: q and the weights e are
 *   rounded to f16 before their dot products with k and v, sums are f32.
 *   With AVX2+FMA+F16C the kernels use SIMD (a polynomial exp good to ~2 ulp);
 *   the scalar path is the reference.
 */
#include "config.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"
#include "kvcache.h"
#include "threadpool.h"

#define KV_CHUNK 256 /* keys per attention task: 256 x head_dim f16 K and V stay in L1/L2 */

struct kvcache {
	int32_t n_layer, n_head, n_head_kv, head_dim, n_ctx, grp;
	enum dt_type type;
	size_t elt;            /* bytes per element: 2 or 4 */
	void *k, *v;           /* (n_layer, n_head_kv, n_ctx, head_dim) */
	int32_t n_past;        /* committed tokens */
	struct threadpool *tp;
	int nth;
	float *scratch;        /* (nth, scratch_stride): scores (grp, KV_CHUNK) + q (grp, head_dim) */
	size_t scratch_stride;
	float *part;           /* (tasks, grp, head_dim + 2): m, l, acc of each chunk task */
	size_t part_cap;       /* tasks allocated */
	int32_t *task_base;    /* (n + 1): first task of query i */
	int32_t base_cap;
	bool simd;
};

struct kvcache_params kvcache_default_params(void)
{
	return (struct kvcache_params){ .n_ctx = 4096, .type = DT_TYPE_F16 };
}

// ---- scalar kernels (the reference)

static inline float round_f16(float x)
{
	return quant_f16_to_f32(quant_f32_to_f16(x));
}

static inline float kv_load(const struct kvcache *c, const void *base, size_t i)
{
	return c->type == DT_TYPE_F16 ? quant_f16_to_f32(((const uint16_t *)base)[i])
				      : ((const float *)base)[i];
}

/* s[h*KV_CHUNK + t] = scale * q_h . k_(t0+t), t < nk */
static void scores_scalar(const struct kvcache *c, const void *kb, int32_t nk, const float *q,
			  float scale, float *s)
{
	const int32_t hd = c->head_dim;
	for (int32_t h = 0; h < c->grp; h++)
		for (int32_t t = 0; t < nk; t++) {
			float acc = 0.0f;
			for (int32_t d = 0; d < hd; d++)
				acc += kv_load(c, kb, (size_t)t * hd + d) * q[h * hd + d];
			s[h * KV_CHUNK + t] = acc * scale;
		}
}

/* e = exp(s - max) in place, returns the max; *l = sum(e) before rounding */
static float softmax_chunk_scalar(float *s, int32_t nk, bool f16, float *l)
{
	float m = -INFINITY;
	for (int32_t t = 0; t < nk; t++)
		m = fmaxf(m, s[t]);
	float sum = 0.0f;
	for (int32_t t = 0; t < nk; t++) {
		const float e = expf(s[t] - m);
		sum += e;
		s[t] = f16 ? round_f16(e) : e;
	}
	*l = sum;
	return m;
}

/* acc (hd) = sum_t e[t] v_(t0+t) */
static void pv_scalar(const struct kvcache *c, const void *vb, int32_t nk, const float *e, float *acc)
{
	const int32_t hd = c->head_dim;
	memset(acc, 0, (size_t)hd * sizeof(float));
	for (int32_t t = 0; t < nk; t++)
		for (int32_t d = 0; d < hd; d++)
			acc[d] += e[t] * kv_load(c, vb, (size_t)t * hd + d);
}

// ---- AVX2 kernels

#if defined(__x86_64__)
#define KV_SIMD __attribute__((target("avx2,fma,f16c")))

KV_SIMD static inline __m256 load8(bool f16, const void *base, size_t i)
{
	if (f16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
	return _mm256_loadu_ps((const float *)base + i);
}

/* head_dim a multiple of 8: four keys at a time, q read once per four */
KV_SIMD static void scores_avx2(const struct kvcache *c, const void *kb, int32_t nk,
				const float *q, float scale, float *s)
{
	const int32_t hd = c->head_dim;
	const bool f16 = c->type == DT_TYPE_F16;
	for (int32_t h = 0; h < c->grp; h++) {
		const float *qh = q + (size_t)h * hd;
		float *sh = s + (size_t)h * KV_CHUNK;
		int32_t t = 0;
		for (; t + 4 <= nk; t += 4) {
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			const size_t r = (size_t)t * hd;
			for (int32_t d = 0; d < hd; d += 8) {
				const __m256 qv = _mm256_loadu_ps(qh + d);
				a0 = _mm256_fmadd_ps(load8(f16, kb, r + d), qv, a0);
				a1 = _mm256_fmadd_ps(load8(f16, kb, r + hd + d), qv, a1);
				a2 = _mm256_fmadd_ps(load8(f16, kb, r + 2 * hd + d), qv, a2);
				a3 = _mm256_fmadd_ps(load8(f16, kb, r + 3 * hd + d), qv, a3);
			}
			/* four horizontal sums at once */
			__m256 h01 = _mm256_hadd_ps(a0, a1), h23 = _mm256_hadd_ps(a2, a3);
			__m256 hs = _mm256_hadd_ps(h01, h23); /* [k0 k1 k2 k3 | k0 k1 k2 k3] halves */
			__m128 sum = _mm_add_ps(_mm256_castps256_ps128(hs), _mm256_extractf128_ps(hs, 1));
			_mm_storeu_ps(sh + t, _mm_mul_ps(sum, _mm_set1_ps(scale)));
		}
		for (; t < nk; t++) {
			__m256 a = _mm256_setzero_ps();
			for (int32_t d = 0; d < hd; d += 8)
				a = _mm256_fmadd_ps(load8(f16, kb, (size_t)t * hd + d), _mm256_loadu_ps(qh + d), a);
			__m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
			x = _mm_add_ps(x, _mm_movehl_ps(x, x));
			x = _mm_add_ss(x, _mm_movehdup_ps(x));
			sh[t] = _mm_cvtss_f32(x) * scale;
		}
	}
}

/* exp(x) for x <= 0 (Cephes polynomial, ~2 ulp); underflows to ~1e-38 below -87 */
KV_SIMD static inline __m256 exp_avx2(__m256 x)
{
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
	const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
					  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	__m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
	__m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

KV_SIMD static float softmax_chunk_avx2(float *s, int32_t nk, bool f16, float *l)
{
	float m = -INFINITY;
	int32_t t = 0;
	__m256 mv = _mm256_set1_ps(-INFINITY);
	for (; t + 8 <= nk; t += 8)
		mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + t));
	__m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
	m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
	m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
	m = _mm_cvtss_f32(m4);
	for (; t < nk; t++)
		m = fmaxf(m, s[t]);
	const __m256 mb = _mm256_set1_ps(m);
	__m256 sum = _mm256_setzero_ps();
	for (t = 0; t + 8 <= nk; t += 8) {
		__m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + t), mb));
		sum = _mm256_add_ps(sum, e);
		if (f16)
			e = _mm256_cvtph_ps(_mm256_cvtps_ph(e, _MM_FROUND_TO_NEAREST_INT));
		_mm256_storeu_ps(s + t, e);
	}
	__m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
	s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
	float total = _mm_cvtss_f32(s4);
	for (; t < nk; t++) {
		const float e = expf(s[t] - m);
		total += e;
		s[t] = f16 ? round_f16(e) : e;
	}
	*l = total;
	return m;
}

/* 32 output dims (4 registers) at a time, every key of the chunk */
KV_SIMD static void pv_avx2(const struct kvcache *c, const void *vb, int32_t nk, const float *e,
			    float *acc)
{
	const int32_t hd = c->head_dim;
	const bool f16 = c->type == DT_TYPE_F16;
	int32_t d = 0;
	for (; d + 32 <= hd; d += 32) {
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (int32_t t = 0; t < nk; t++) {
			const __m256 w = _mm256_broadcast_ss(e + t);
			const size_t r = (size_t)t * hd + d;
			a0 = _mm256_fmadd_ps(w, load8(f16, vb, r), a0);
			a1 = _mm256_fmadd_ps(w, load8(f16, vb, r + 8), a1);
			a2 = _mm256_fmadd_ps(w, load8(f16, vb, r + 16), a2);
			a3 = _mm256_fmadd_ps(w, load8(f16, vb, r + 24), a3);
		}
		_mm256_storeu_ps(acc + d, a0);
		_mm256_storeu_ps(acc + d + 8, a1);
		_mm256_storeu_ps(acc + d + 16, a2);
		_mm256_storeu_ps(acc + d + 24, a3);
	}
	for (; d < hd; d += 8) {
		__m256 a = _mm256_setzero_ps();
		for (int32_t t = 0; t < nk; t++)
			a = _mm256_fmadd_ps(_mm256_broadcast_ss(e + t), load8(f16, vb, (size_t)t * hd + d), a);
		_mm256_storeu_ps(acc + d, a);
	}
}

KV_SIMD static void to_f16_avx2(uint16_t *dst, const float *src, int32_t n)
{
	int32_t d = 0;
	for (; d + 8 <= n; d += 8)
		_mm_storeu_si128((__m128i *)(dst + d),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + d), _MM_FROUND_TO_NEAREST_INT));
	for (; d < n; d++)
		dst[d] = quant_f32_to_f16(src[d]);
}

static bool kv_cpu_has_simd(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __builtin_cpu_supports("f16c");
}
#else
static bool kv_cpu_has_simd(void)
{
	return false;
}
#endif

static void kv_to_f16(const struct kvcache *c, uint16_t *dst, const float *src, int32_t n)
{
#if defined(__x86_64__)
	if (c->simd) {
		to_f16_avx2(dst, src, n);
		return;
	}
#endif
	for (int32_t d = 0; d < n; d++)
		dst[d] = quant_f32_to_f16(src[d]);
}

// ---- lifetime

struct kvcache *kvcache_new(const struct model_hparams *hp, const struct kvcache_params *p,
			    struct threadpool *tp)
{
	struct kvcache_params def = kvcache_default_params();
	if (!p)
		p = &def;
	DT_ASSERT(p->n_ctx > 0 && (p->type == DT_TYPE_F16 || p->type == DT_TYPE_F32));
	DT_ASSERT(hp->n_head_kv > 0 && hp->n_head % hp->n_head_kv == 0);
	struct kvcache *c = xcalloc(1, sizeof(*c));
	c->n_layer = hp->n_layer;
	c->n_head = hp->n_head;
	c->n_head_kv = hp->n_head_kv;
	c->grp = hp->n_head / hp->n_head_kv;
	c->head_dim = hp->head_dim;
	c->n_ctx = p->n_ctx;
	c->type = p->type;
	c->elt = p->type == DT_TYPE_F16 ? 2 : 4;
	const size_t n_elt = (size_t)c->n_layer * c->n_head_kv * c->n_ctx * c->head_dim;
	c->k = xmallocarray(n_elt, c->elt);
	c->v = xmallocarray(n_elt, c->elt);
	c->tp = tp;
	c->nth = threadpool_n_threads(tp);
	c->scratch_stride = (size_t)c->grp * (KV_CHUNK + (size_t)c->head_dim);
	c->scratch_stride = (c->scratch_stride + 15) & ~(size_t)15;
	c->scratch = xmallocarray((size_t)c->nth * c->scratch_stride, sizeof(float));
	c->simd = kv_cpu_has_simd() && c->head_dim % 8 == 0;
	return c;
}

void kvcache_free(struct kvcache *c)
{
	if (!c)
		return;
	free(c->k);
	free(c->v);
	free(c->scratch);
	free(c->part);
	free(c->task_base);
	free(c);
}

int32_t kvcache_n_tokens(const struct kvcache *c)
{
	return c->n_past;
}

int32_t kvcache_n_ctx(const struct kvcache *c)
{
	return c->n_ctx;
}

void kvcache_truncate(struct kvcache *c, int32_t n)
{
	DT_ASSERT(n >= 0);
	if (n < c->n_past)
		c->n_past = n;
}

void kvcache_clear(struct kvcache *c)
{
	c->n_past = 0;
}

size_t kvcache_bytes(const struct kvcache *c)
{
	return 2 * (size_t)c->n_layer * c->n_head_kv * c->n_ctx * c->head_dim * c->elt;
}

// ---- store

/* Element offset of row t of (layer, kv head g). */
static inline size_t kv_off(const struct kvcache *c, int32_t layer, int32_t g, int32_t t)
{
	return (((size_t)layer * c->n_head_kv + g) * c->n_ctx + t) * c->head_dim;
}

static int kv_store(void *ctx, int32_t layer, int32_t n, const float *k, const float *v, char *err)
{
	struct kvcache *c = ctx;
	if (layer < 0 || layer >= c->n_layer) {
		dt_err(err, "kvcache: layer %d out of range (expected < %d)", layer, c->n_layer);
		return DT_ERR_ARG;
	}
	if (n > c->n_ctx - c->n_past) {
		dt_err(err, "kvcache: context full (%d tokens cached + %d new > n_ctx %d)", c->n_past,
		       n, c->n_ctx);
		return DT_ERR_FULL;
	}
	const int32_t hd = c->head_dim, kvd = c->n_head_kv * hd;
	for (int32_t i = 0; i < n; i++) {
		for (int32_t g = 0; g < c->n_head_kv; g++) {
			const size_t off = kv_off(c, layer, g, c->n_past + i);
			const float *ks = k + (size_t)i * kvd + (size_t)g * hd;
			const float *vs = v + (size_t)i * kvd + (size_t)g * hd;
			if (c->type == DT_TYPE_F16) {
				kv_to_f16(c, (uint16_t *)c->k + off, ks, hd);
				kv_to_f16(c, (uint16_t *)c->v + off, vs, hd);
			} else {
				memcpy((float *)c->k + off, ks, (size_t)hd * sizeof(float));
				memcpy((float *)c->v + off, vs, (size_t)hd * sizeof(float));
			}
		}
	}
	return 0;
}

// ---- attend: chunk tasks, then the merge

struct kv_attend_job {
	struct kvcache *c;
	int32_t layer, n;
	const float *q;   /* (n, n_head*head_dim) */
	float *out;       /* (n, n_head*head_dim) */
	int32_t n_tasks;
	atomic_int next;  /* next chunk task */
	atomic_int next_merge; /* next (i, g) to merge */
};

static inline int32_t kv_n_chunks(const struct kvcache *c, int32_t i)
{
	return (c->n_past + i + 1 + KV_CHUNK - 1) / KV_CHUNK; /* query i sees n_past + i + 1 keys */
}

/* Chunk ch of kv head g for batch query i: m, l, acc of each query head of the group. */
static void kv_chunk_task(struct kv_attend_job *j, int32_t i, int32_t g, int32_t ch, float *scratch,
			  float *part)
{
	const struct kvcache *c = j->c;
	const int32_t hd = c->head_dim, grp = c->grp;
	const int32_t t0 = ch * KV_CHUNK, nk = DT_MIN(KV_CHUNK, c->n_past + i + 1 - t0);
	const float scale = 1.0f / sqrtf((float)hd);
	const bool f16 = c->type == DT_TYPE_F16;
	float *s = scratch;                          /* (grp, KV_CHUNK) */
	float *qr = scratch + (size_t)grp * KV_CHUNK; /* (grp, hd) */
	const float *q = j->q + ((size_t)i * c->n_head + (size_t)g * grp) * hd;
	for (int32_t x = 0; x < grp * hd; x++)
		qr[x] = f16 ? round_f16(q[x]) : q[x];
	const size_t off = kv_off(c, j->layer, g, t0) * c->elt;
	const void *kb = (const uint8_t *)c->k + off, *vb = (const uint8_t *)c->v + off;
#if defined(__x86_64__)
	if (c->simd) {
		scores_avx2(c, kb, nk, qr, scale, s);
		for (int32_t h = 0; h < grp; h++) {
			float *ph = part + (size_t)h * (hd + 2);
			ph[0] = softmax_chunk_avx2(s + (size_t)h * KV_CHUNK, nk, f16, &ph[1]);
			pv_avx2(c, vb, nk, s + (size_t)h * KV_CHUNK, ph + 2);
		}
		return;
	}
#endif
	scores_scalar(c, kb, nk, qr, scale, s);
	for (int32_t h = 0; h < grp; h++) {
		float *ph = part + (size_t)h * (hd + 2);
		ph[0] = softmax_chunk_scalar(s + (size_t)h * KV_CHUNK, nk, f16, &ph[1]);
		pv_scalar(c, vb, nk, s + (size_t)h * KV_CHUNK, ph + 2);
	}
}

static void kv_chunk_worker(void *arg, int ith, int nth)
{
	struct kv_attend_job *j = arg;
	const struct kvcache *c = j->c;
	float *scratch = c->scratch + (size_t)ith * c->scratch_stride;
	const size_t part_stride = (size_t)c->grp * (c->head_dim + 2);
	int32_t i = 0;
	for (;;) {
		const int32_t task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (task >= j->n_tasks)
			break;
		while (task >= c->task_base[i + 1]) /* a thread's tasks only increase */
			i++;
		const int32_t k = task - c->task_base[i];
		kv_chunk_task(j, i, k % c->n_head_kv, k / c->n_head_kv, scratch,
			      c->part + (size_t)task * part_stride);
	}
}

/* out of (i, g): the chunks merged in order, exact softmax normalisation */
static void kv_merge(struct kv_attend_job *j, int32_t i, int32_t g)
{
	const struct kvcache *c = j->c;
	const int32_t hd = c->head_dim, grp = c->grp, n_ch = kv_n_chunks(c, i);
	const size_t part_stride = (size_t)grp * (hd + 2);
	for (int32_t h = 0; h < grp; h++) {
		float *o = j->out + ((size_t)i * c->n_head + (size_t)g * grp + h) * hd;
		const float *p0 = c->part + (size_t)(c->task_base[i] + g) * part_stride + (size_t)h * (hd + 2);
		const size_t step = (size_t)c->n_head_kv * part_stride; /* next chunk, same g */
		float mx = -INFINITY;
		for (int32_t ch = 0; ch < n_ch; ch++)
			mx = fmaxf(mx, p0[ch * step]);
		double l = 0.0;
		memset(o, 0, (size_t)hd * sizeof(float));
		for (int32_t ch = 0; ch < n_ch; ch++) {
			const float *p = p0 + ch * step;
			const float w = expf(p[0] - mx);
			l += (double)p[1] * w;
			for (int32_t d = 0; d < hd; d++)
				o[d] += w * p[2 + d];
		}
		const float inv = (float)(1.0 / l);
		for (int32_t d = 0; d < hd; d++)
			o[d] *= inv;
	}
}

static void kv_merge_worker(void *arg, int ith, int nth)
{
	struct kv_attend_job *j = arg;
	const int32_t n_items = j->n * j->c->n_head_kv;
	for (;;) {
		const int32_t x = atomic_fetch_add_explicit(&j->next_merge, 1, memory_order_relaxed);
		if (x >= n_items)
			break;
		kv_merge(j, x / j->c->n_head_kv, x % j->c->n_head_kv);
	}
}

static int kv_attend(void *ctx, int32_t layer, int32_t n, const float *q, float *out, char *err)
{
	struct kvcache *c = ctx;
	if (layer < 0 || layer >= c->n_layer || n < 1 || n > c->n_ctx - c->n_past) {
		dt_err(err, "kvcache: attend of %d tokens at layer %d out of range", n, layer);
		return DT_ERR_ARG;
	}
	/* task numbering: query i's tasks are task_base[i] + chunk * n_head_kv + g */
	if (n + 1 > c->base_cap) {
		free(c->task_base);
		c->base_cap = n + 1;
		c->task_base = xmallocarray((size_t)c->base_cap, sizeof(int32_t));
	}
	c->task_base[0] = 0;
	for (int32_t i = 0; i < n; i++)
		c->task_base[i + 1] = c->task_base[i] + kv_n_chunks(c, i) * c->n_head_kv;
	const int32_t n_tasks = c->task_base[n];
	if ((size_t)n_tasks > c->part_cap) {
		free(c->part);
		c->part_cap = (size_t)n_tasks + (size_t)n_tasks / 2;
		c->part = xmallocarray(c->part_cap * (size_t)c->grp * (size_t)(c->head_dim + 2),
				       sizeof(float));
	}
	struct kv_attend_job j = { .c = c, .layer = layer, .n = n, .q = q, .out = out,
				   .n_tasks = n_tasks };
	atomic_init(&j.next, 0);
	atomic_init(&j.next_merge, 0);
	if (c->nth > 1 && n_tasks > 1)
		threadpool_run_any(c->tp, kv_chunk_worker, &j);
	else
		kv_chunk_worker(&j, 0, 1);
	if (c->nth > 1 && n * c->n_head_kv >= 4 * c->nth)
		threadpool_run_any(c->tp, kv_merge_worker, &j);
	else
		kv_merge_worker(&j, 0, 1);
	if (layer == c->n_layer - 1)
		c->n_past += n;
	return 0;
}

struct model_kv_ops kvcache_ops(struct kvcache *c)
{
	return (struct model_kv_ops){ .ctx = c, .store = kv_store, .attend = kv_attend };
}
