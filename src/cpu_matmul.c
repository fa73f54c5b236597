/*
 * cpu_matmul.c — threaded products of quantized weights with activations.
 *
 * DESIGN
 *   One call = one parallel job (threadpool_run_any).  The output rows of all
 *   ops are cut into chunks of `chunk_rows` rows (a multiple of 4, sized for
 *   about 8 chunks per thread so that a slow or descheduled thread does not
 *   hold the others); threads take chunks from a shared atomic counter.  A chunk computes its rows for every activation row: the weight
 *   tile stays in L1 while the batch of quantized activations streams from L2.
 *
 *   Activations are quantized once per call.  Small inputs (a decode step) are
 *   quantized by the caller before dispatch; large batches in a parallel job
 *   of their own, before the product.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common.h"
#include "cpu_matmul.h"
#include "threadpool.h"

#define MM_MAX_OPS 8
#define MM_CHUNKS_PER_THREAD 8
#define MM_MIN_ROWS_DECODE 16  /* one activation row: chunks of at least 16 weight rows */
#define MM_MIN_ROWS_BATCH 4    /* a batch: each chunk already does n dots per row */
#define MM_MAX_ROWS 256
#define MM_QUANT_INLINE 16384  /* n * n_in up to which the caller quantizes alone */

struct cpu_matmul_ws {
	struct quant_q8 *xq; /* (n, n_in/32) */
	size_t cap;          /* blocks allocated */
};

struct cpu_matmul_ws *cpu_matmul_ws_new(void)
{
	return xcalloc(1, sizeof(struct cpu_matmul_ws));
}

void cpu_matmul_ws_free(struct cpu_matmul_ws *ws)
{
	if (!ws)
		return;
	free(ws->xq);
	free(ws);
}

// ---- the job

struct mm_job {
	struct threadpool *tp;
	const float *x;         /* (n, n_in) */
	struct quant_q8 *xq;    /* (n, n_in/32) or NULL when no op needs it */
	int32_t n;
	int64_t n_in;
	const struct cpu_matmul_op *ops;
	int n_ops;
	bool use_q8[MM_MAX_OPS];
	int64_t first_chunk[MM_MAX_OPS + 1]; /* chunk index where op k starts */
	int64_t chunk_rows;
	atomic_llong next;     /* next chunk */
	atomic_int next_quant; /* next activation row to quantize */
};

static void mm_rows(const struct mm_job *j, int k, int64_t r0, int64_t r1)
{
	const struct cpu_matmul_op *op = &j->ops[k];
	const struct cpu_matrix *w = op->w;
	const int64_t n_in = j->n_in, n_out = w->n_out, nb = n_in / QUANT_Q8_BLOCK;
	const uint8_t *base = w->data;
	int32_t t = 0;
	if (j->use_q8[k]) {
		/* four activation rows per weight row load */
		for (; t + 4 <= j->n; t += 4) {
			const struct quant_q8 *xq[4] = { j->xq + (int64_t)t * nb, j->xq + (int64_t)(t + 1) * nb,
							 j->xq + (int64_t)(t + 2) * nb, j->xq + (int64_t)(t + 3) * nb };
			float *y = op->y + (int64_t)t * n_out;
			for (int64_t r = r0; r < r1; r++) {
				float o[4];
				quant_dot_q8_x4(w->type, base + (size_t)r * w->row_bytes, xq, n_in, o);
				y[r] = o[0];
				y[n_out + r] = o[1];
				y[2 * n_out + r] = o[2];
				y[3 * n_out + r] = o[3];
			}
		}
		for (; t < j->n; t++) {
			const struct quant_q8 *xq = j->xq + (int64_t)t * nb;
			float *y = op->y + (int64_t)t * n_out;
			for (int64_t r = r0; r < r1; r++)
				y[r] = quant_dot_q8(w->type, base + (size_t)r * w->row_bytes, xq, n_in);
		}
	} else {
		for (; t < j->n; t++) {
			const float *x = j->x + (int64_t)t * n_in;
			float *y = op->y + (int64_t)t * n_out;
			for (int64_t r = r0; r < r1; r++)
				y[r] = quant_dot_f32(w->type, base + (size_t)r * w->row_bytes, x, n_in);
		}
	}
	if (op->bias)
		for (t = 0; t < j->n; t++) {
			float *y = op->y + (int64_t)t * n_out;
			for (int64_t r = r0; r < r1; r++)
				y[r] += op->bias[r];
		}
}

/* Activations are quantized as ggml's quantize_row_q8_0/q8_1 do (AVX2 path):
 * d = amax/127 stored as fp16, q = round-to-nearest-even(x * 127/amax),
 * s = fp16(d * sum(q)).  Matching this recipe bit for bit matters: the model's
 * large activation outliers make the logits sensitive to single rounding flips
 * (see tests/test_model.c), and llama.cpp is the reference we compare with. */
static void mm_quantize_scalar(const float *x, struct quant_q8 *out, int64_t nb)
{
	for (int64_t b = 0; b < nb; b++) {
		const float *xb = x + b * QUANT_Q8_BLOCK;
		float amax = 0.0f;
		for (int i = 0; i < QUANT_Q8_BLOCK; i++)
			amax = fmaxf(amax, fabsf(xb[i]));
		const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
		int sum = 0;
		for (int i = 0; i < QUANT_Q8_BLOCK; i++) {
			const int q = (int)nearbyintf(xb[i] * id);
			out[b].q[i] = (int8_t)q;
			sum += q;
		}
		out[b].d = quant_f16_to_f32(quant_f32_to_f16(d));
		out[b].s = quant_f16_to_f32(quant_f32_to_f16(d * (float)sum));
	}
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static void mm_quantize_avx2(const float *x,
								       struct quant_q8 *out, int64_t nb)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	for (int64_t b = 0; b < nb; b++) {
		const float *xb = x + b * QUANT_Q8_BLOCK;
		__m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
		__m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
		__m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
		m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
		__m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
		m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
		m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
		const float amax = _mm_cvtss_f32(m4);
		const float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
		const __m256 mul = _mm256_set1_ps(id);
		const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
		__m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), rnd));
		__m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), rnd));
		__m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), rnd));
		__m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), rnd));
		__m256i s8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
		__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
		s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
		const int sum = _mm_cvtsi128_si32(s4);
		__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
		_mm256_storeu_si256((__m256i *)out[b].q, _mm256_permutevar8x32_epi32(p, order));
		out[b].d = _cvtsh_ss(_cvtss_sh(d, 0));
		out[b].s = _cvtsh_ss(_cvtss_sh(d * (float)sum, 0));
	}
}
#endif

static void mm_quantize_row(const float *x, struct quant_q8 *out, int64_t n)
{
#if defined(__x86_64__)
	static int simd = -1;
	if (simd < 0) {
		__builtin_cpu_init();
		simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       __builtin_cpu_supports("f16c");
	}
	if (simd) {
		mm_quantize_avx2(x, out, n / QUANT_Q8_BLOCK);
		return;
	}
#endif
	mm_quantize_scalar(x, out, n / QUANT_Q8_BLOCK);
}

#define MM_QUANT_ROWS 4 /* activation rows per quantization task */

/* Quantizes activation rows, MM_QUANT_ROWS at a time from the shared counter. */
static void mm_quant_worker(void *arg, int ith, int nth)
{
	struct mm_job *j = arg;
	const int64_t nb = j->n_in / QUANT_Q8_BLOCK;
	for (;;) {
		const int32_t t0 = atomic_fetch_add_explicit(&j->next_quant, MM_QUANT_ROWS, memory_order_relaxed);
		if (t0 >= j->n)
			break;
		for (int32_t t = t0; t < DT_MIN(t0 + MM_QUANT_ROWS, j->n); t++)
			mm_quantize_row(j->x + (int64_t)t * j->n_in, j->xq + (int64_t)t * nb, j->n_in);
	}
}

static void mm_worker(void *arg, int ith, int nth)
{
	struct mm_job *j = arg;
	const int64_t n_chunks = j->first_chunk[j->n_ops];
	int k = 0;
	for (;;) {
		const int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (c >= n_chunks)
			break;
		while (c >= j->first_chunk[k + 1]) /* a thread's chunks only increase */
			k++;
		const int64_t r0 = (c - j->first_chunk[k]) * j->chunk_rows;
		const int64_t r1 = DT_MIN(r0 + j->chunk_rows, j->ops[k].w->n_out);
		mm_rows(j, k, r0, r1);
	}
}

// ---- public API

void cpu_matmul(struct threadpool *tp, struct cpu_matmul_ws *ws, const float *x, int32_t n,
		int64_t n_in, const struct cpu_matmul_op *ops, int n_ops)
{
	DT_ASSERT(n_ops >= 1 && n_ops <= MM_MAX_OPS && n >= 1 && n_in % QUANT_Q8_BLOCK == 0);
	const int nth = threadpool_n_threads(tp);
	struct mm_job j = { .tp = tp, .x = x, .n = n, .n_in = n_in, .ops = ops, .n_ops = n_ops };

	bool any_q8 = false;
	int64_t total_rows = 0;
	for (int k = 0; k < n_ops; k++) {
		DT_ASSERT(ops[k].w->n_in == n_in);
		j.use_q8[k] = quant_has_q8_dot(ops[k].w->type);
		any_q8 |= j.use_q8[k];
		total_rows += ops[k].w->n_out;
	}

	int64_t rows = total_rows / ((int64_t)nth * MM_CHUNKS_PER_THREAD);
	rows = DT_MAX(rows, n == 1 ? MM_MIN_ROWS_DECODE : MM_MIN_ROWS_BATCH);
	rows = DT_MIN(rows, MM_MAX_ROWS);
	rows = (rows + 3) & ~(int64_t)3;
	j.chunk_rows = rows;
	j.first_chunk[0] = 0;
	for (int k = 0; k < n_ops; k++)
		j.first_chunk[k + 1] = j.first_chunk[k] + (ops[k].w->n_out + rows - 1) / rows;
	atomic_init(&j.next, 0);
	atomic_init(&j.next_quant, 0);

	if (any_q8) {
		const int64_t nb = n_in / QUANT_Q8_BLOCK;
		const size_t need = (size_t)n * (size_t)nb;
		if (ws->cap < need) {
			free(ws->xq);
			ws->xq = xmallocarray(need, sizeof(struct quant_q8));
			ws->cap = need;
		}
		j.xq = ws->xq;
		if (nth == 1 || (int64_t)n * n_in <= MM_QUANT_INLINE)
			mm_quant_worker(&j, 0, 1);
		else
			threadpool_run_any(tp, mm_quant_worker, &j);
	}
	threadpool_run_any(tp, mm_worker, &j);
}

void cpu_matrix_row(const struct cpu_matrix *w, int64_t r, float *y)
{
	DT_ASSERT(r >= 0 && r < w->n_out);
	quant_dequant_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, y, w->n_in);
}
