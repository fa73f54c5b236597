/*
 * cpu_ops.h — the small element-wise operations of a transformer layer on
 * the CPU: RMSNorm, rotary position embedding, SwiGLU, softmax, add.
 *
 * The arithmetic follows ggml's CPU code (sums of squares and softmax
 * denominators in double, the RoPE angle recurrence theta *= base^(-2/n_rot)
 * in float) so that results stay close to llama.cpp on the same weights.
 * Single-threaded, one row at a time: callers split rows across threads.
 */
#ifndef DT_CPU_OPS_H
#define DT_CPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n (out may be x). */
void cpu_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* Rotary embedding of one token. */
struct cpu_rope {
	int32_t n_rot;             /* rotated dimensions per head (even, <= head_dim) */
	float base;                /* frequency base, e.g. 10000 */
	float freq_scale;          /* 1 / linear scaling factor (1 = none) */
	const float *freq_factors; /* (n_rot/2) divisors of each frequency (llama3 rope_freqs), or NULL */
	bool neox;                 /* rotate (i, i + n_rot/2) instead of (2i, 2i+1) */
};
/* cs: (n_rot) = cos, sin of each rotated pair at position pos. */
void cpu_rope_cache(const struct cpu_rope *r, int32_t pos, float *cs);
/* Rotates n_heads heads of head_dim floats each in place with a cache from cpu_rope_cache(). */
void cpu_rope_apply(const struct cpu_rope *r, float *x, int32_t n_heads, int32_t head_dim,
		    const float *cs);

/* out[i] = silu(gate[i]) * up[i] (out may alias gate or up). */
void cpu_swiglu(float *out, const float *gate, const float *up, int64_t n);

/* In place: x = softmax(x) over n values. */
void cpu_softmax(float *x, int64_t n);

/* out[i] = a[i] + b[i] (out may alias a or b). */
void cpu_add(float *out, const float *a, const float *b, int64_t n);

#endif
