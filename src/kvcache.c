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
 *   attend() is one parallel job over tasks (query i, kv head g); a task does
 *   the n_head/n_head_kv query heads that share kv head g together so that
 *   each key and value row is converted once.  Scores are exact softmax (max
 *   subtracted, sum in double) in a per-thread scratch row.
 *
 *   f16 storage follows ggml's f16 matrix products: the other operand (q for
 *   q·k, the softmax weights for p·v) is rounded to f16, products are summed
 *   in f32.  With AVX2+F16C the conversions and dots use SIMD.
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
#include "cpu_ops.h"
#include "kvcache.h"
#include "threadpool.h"

struct kvcache {
	int32_t n_layer, n_head, n_head_kv, head_dim, n_ctx;
	enum dt_type type;
	size_t elt;          /* bytes per element: 2 or 4 */
	void *k, *v;         /* (n_layer, n_head_kv, n_ctx, head_dim) */
	int32_t n_past;      /* committed tokens */
	struct threadpool *tp;
	int nth;
	float *scratch;      /* (nth, scratch_stride) */
	size_t scratch_stride; /* floats per thread: G*n_ctx scores + G*head_dim q + G*head_dim acc */
	bool simd;
};

struct kvcache_params kvcache_default_params(void)
{
	return (struct kvcache_params){ .n_ctx = 4096, .type = DT_TYPE_F16 };
}

// ---- f16 kernels

static inline float round_f16(float x)
{
	return quant_f16_to_f32(quant_f32_to_f16(x));
}

static float dot_f16_scalar(const uint16_t *k, const float *q, int32_t n)
{
	float s = 0.0f;
	for (int32_t d = 0; d < n; d++)
		s += quant_f16_to_f32(k[d]) * q[d];
	return s;
}

static void axpy_f16_scalar(float *out, float a, const uint16_t *v, int32_t n)
{
	for (int32_t d = 0; d < n; d++)
		out[d] += a * quant_f16_to_f32(v[d]);
}

static void to_f16_scalar(uint16_t *dst, const float *src, int32_t n)
{
	for (int32_t d = 0; d < n; d++)
		dst[d] = quant_f32_to_f16(src[d]);
}

#if defined(__x86_64__)
#define KV_SIMD_TARGET __attribute__((target("avx2,fma,f16c")))

KV_SIMD_TARGET static float dot_f16_avx2(const uint16_t *k, const float *q, int32_t n)
{
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int32_t d = 0;
	for (; d + 16 <= n; d += 16) {
		__m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + d)));
		__m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + d + 8)));
		acc0 = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + d), acc0);
		acc1 = _mm256_fmadd_ps(k1, _mm256_loadu_ps(q + d + 8), acc1);
	}
	for (; d + 8 <= n; d += 8) {
		__m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + d)));
		acc0 = _mm256_fmadd_ps(k0, _mm256_loadu_ps(q + d), acc0);
	}
	acc0 = _mm256_add_ps(acc0, acc1);
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	float r = _mm_cvtss_f32(s);
	for (; d < n; d++)
		r += quant_f16_to_f32(k[d]) * q[d];
	return r;
}

KV_SIMD_TARGET static void axpy_f16_avx2(float *out, float a, const uint16_t *v, int32_t n)
{
	const __m256 va = _mm256_set1_ps(a);
	int32_t d = 0;
	for (; d + 8 <= n; d += 8) {
		__m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + d)));
		_mm256_storeu_ps(out + d, _mm256_fmadd_ps(va, v0, _mm256_loadu_ps(out + d)));
	}
	for (; d < n; d++)
		out[d] += a * quant_f16_to_f32(v[d]);
}

KV_SIMD_TARGET static void to_f16_avx2(uint16_t *dst, const float *src, int32_t n)
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

static inline float kv_dot_f16(bool simd, const uint16_t *k, const float *q, int32_t n)
{
#if defined(__x86_64__)
	if (simd)
		return dot_f16_avx2(k, q, n);
#endif
	return dot_f16_scalar(k, q, n);
}

static inline void kv_axpy_f16(bool simd, float *out, float a, const uint16_t *v, int32_t n)
{
#if defined(__x86_64__)
	if (simd) {
		axpy_f16_avx2(out, a, v, n);
		return;
	}
#endif
	axpy_f16_scalar(out, a, v, n);
}

static inline void kv_to_f16(bool simd, uint16_t *dst, const float *src, int32_t n)
{
#if defined(__x86_64__)
	if (simd) {
		to_f16_avx2(dst, src, n);
		return;
	}
#endif
	to_f16_scalar(dst, src, n);
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
	c->head_dim = hp->head_dim;
	c->n_ctx = p->n_ctx;
	c->type = p->type;
	c->elt = p->type == DT_TYPE_F16 ? 2 : 4;
	const size_t n_elt = (size_t)c->n_layer * c->n_head_kv * c->n_ctx * c->head_dim;
	c->k = xmallocarray(n_elt, c->elt);
	c->v = xmallocarray(n_elt, c->elt);
	c->tp = tp;
	c->nth = threadpool_n_threads(tp);
	const size_t g = (size_t)(c->n_head / c->n_head_kv);
	c->scratch_stride = g * (size_t)c->n_ctx + 2 * g * (size_t)c->head_dim;
	c->scratch_stride = (c->scratch_stride + 15) & ~(size_t)15;
	c->scratch = xmallocarray((size_t)c->nth * c->scratch_stride, sizeof(float));
	c->simd = kv_cpu_has_simd();
	return c;
}

void kvcache_free(struct kvcache *c)
{
	if (!c)
		return;
	free(c->k);
	free(c->v);
	free(c->scratch);
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
				kv_to_f16(c->simd, (uint16_t *)c->k + off, ks, hd);
				kv_to_f16(c->simd, (uint16_t *)c->v + off, vs, hd);
			} else {
				memcpy((float *)c->k + off, ks, (size_t)hd * sizeof(float));
				memcpy((float *)c->v + off, vs, (size_t)hd * sizeof(float));
			}
		}
	}
	return 0;
}

// ---- attend

struct kv_attend_job {
	struct kvcache *c;
	int32_t layer, n;
	const float *q; /* (n, n_head*head_dim) */
	float *out;     /* (n, n_head*head_dim) */
	atomic_int next;
};

/* Query i of the batch, kv head g: the group of query heads reading g. */
static void kv_attend_task(struct kvcache *c, int32_t layer, int32_t i, int32_t g,
			   const float *q, float *out, float *scratch)
{
	const int32_t hd = c->head_dim, grp = c->n_head / c->n_head_kv;
	const int32_t n_kv = c->n_past + i + 1; /* visible keys */
	const float scale = 1.0f / sqrtf((float)hd);
	const size_t base = kv_off(c, layer, g, 0);
	float *scores = scratch;                        /* (grp, n_ctx) */
	float *qr = scratch + (size_t)grp * c->n_ctx;   /* (grp, hd) */
	float *acc = qr + (size_t)grp * hd;             /* (grp, hd) */
	const bool f16 = c->type == DT_TYPE_F16;
	const size_t qrow = (size_t)i * c->n_head * hd;

	for (int32_t h = 0; h < grp; h++) {
		const float *qh = q + qrow + (size_t)(g * grp + h) * hd;
		for (int32_t d = 0; d < hd; d++)
			qr[(size_t)h * hd + d] = f16 ? round_f16(qh[d]) : qh[d];
	}
	for (int32_t t = 0; t < n_kv; t++) {
		if (f16) {
			const uint16_t *kt = (const uint16_t *)c->k + base + (size_t)t * hd;
			for (int32_t h = 0; h < grp; h++)
				scores[(size_t)h * c->n_ctx + t] =
					kv_dot_f16(c->simd, kt, qr + (size_t)h * hd, hd) * scale;
		} else {
			const float *kt = (const float *)c->k + base + (size_t)t * hd;
			for (int32_t h = 0; h < grp; h++) {
				const float *qh = qr + (size_t)h * hd;
				float s = 0.0f;
				for (int32_t d = 0; d < hd; d++)
					s += kt[d] * qh[d];
				scores[(size_t)h * c->n_ctx + t] = s * scale;
			}
		}
	}
	for (int32_t h = 0; h < grp; h++) {
		float *sh = scores + (size_t)h * c->n_ctx;
		cpu_softmax(sh, n_kv);
		if (f16)
			for (int32_t t = 0; t < n_kv; t++)
				sh[t] = round_f16(sh[t]);
	}
	memset(acc, 0, (size_t)grp * hd * sizeof(float));
	for (int32_t t = 0; t < n_kv; t++) {
		if (f16) {
			const uint16_t *vt = (const uint16_t *)c->v + base + (size_t)t * hd;
			for (int32_t h = 0; h < grp; h++)
				kv_axpy_f16(c->simd, acc + (size_t)h * hd, scores[(size_t)h * c->n_ctx + t],
					    vt, hd);
		} else {
			const float *vt = (const float *)c->v + base + (size_t)t * hd;
			for (int32_t h = 0; h < grp; h++) {
				const float p = scores[(size_t)h * c->n_ctx + t];
				float *ah = acc + (size_t)h * hd;
				for (int32_t d = 0; d < hd; d++)
					ah[d] += p * vt[d];
			}
		}
	}
	for (int32_t h = 0; h < grp; h++)
		memcpy(out + qrow + (size_t)(g * grp + h) * hd, acc + (size_t)h * hd,
		       (size_t)hd * sizeof(float));
}

static void kv_attend_worker(void *arg, int ith, int nth)
{
	struct kv_attend_job *j = arg;
	struct kvcache *c = j->c;
	float *scratch = c->scratch + (size_t)ith * c->scratch_stride;
	const int n_tasks = j->n * c->n_head_kv;
	for (;;) {
		const int task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (task >= n_tasks)
			break;
		/* larger i first: later queries see more keys */
		const int32_t i = j->n - 1 - task / c->n_head_kv, g = task % c->n_head_kv;
		kv_attend_task(c, j->layer, i, g, j->q, j->out, scratch);
	}
}

static int kv_attend(void *ctx, int32_t layer, int32_t n, const float *q, float *out, char *err)
{
	struct kvcache *c = ctx;
	if (layer < 0 || layer >= c->n_layer || n > c->n_ctx - c->n_past) {
		dt_err(err, "kvcache: attend of %d tokens at layer %d out of range", n, layer);
		return DT_ERR_ARG;
	}
	struct kv_attend_job j = { .c = c, .layer = layer, .n = n, .q = q, .out = out };
	const bool parallel = c->nth > 1 && n * c->n_head_kv > 1;
	atomic_init(&j.next, 0);
	if (parallel)
		threadpool_run_any(c->tp, kv_attend_worker, &j);
	else
		kv_attend_worker(&j, 0, 1);
	if (layer == c->n_layer - 1)
		c->n_past += n;
	return 0;
}

struct model_kv_ops kvcache_ops(struct kvcache *c)
{
	return (struct model_kv_ops){ .ctx = c, .store = kv_store, .attend = kv_attend };
}
