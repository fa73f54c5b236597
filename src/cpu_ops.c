/*
 * cpu_ops.c — element-wise transformer operations (see cpu_ops.h).
 * Written as plain loops that the compiler vectorises; the matrix products
 * and attention, where the time goes, live in cpu_matmul.c and kvcache.c.
 */
#include "config.h"

#include <math.h>

#include "cpu_ops.h"

// ---- normalisation

void cpu_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)(x[i] * x[i]);
	const float mean = (float)(sum / (double)n);
	const float scale = 1.0f / sqrtf(mean + eps);
	for (int64_t i = 0; i < n; i++)
		out[i] = (x[i] * scale) * w[i];
}

// ---- rotary position embedding

void cpu_rope_cache(const struct cpu_rope *r, int32_t pos, float *cs)
{
	const float theta_scale = powf(r->base, -2.0f / (float)r->n_rot);
	float theta = (float)pos;
	for (int32_t i0 = 0; i0 < r->n_rot; i0 += 2) {
		const float ff = r->freq_factors ? r->freq_factors[i0 / 2] : 1.0f;
		const float t = r->freq_scale * (theta / ff);
		cs[i0 + 0] = cosf(t);
		cs[i0 + 1] = sinf(t);
		theta *= theta_scale;
	}
}

void cpu_rope_apply(const struct cpu_rope *r, float *x, int32_t n_heads, int32_t head_dim,
		    const float *cs)
{
	const int32_t n_rot = r->n_rot;
	for (int32_t h = 0; h < n_heads; h++) {
		float *v = x + (int64_t)h * head_dim;
		if (r->neox) {
			const int32_t half = n_rot / 2;
			for (int32_t i = 0; i < half; i++) {
				const float c = cs[2 * i], s = cs[2 * i + 1];
				const float x0 = v[i], x1 = v[i + half];
				v[i] = x0 * c - x1 * s;
				v[i + half] = x0 * s + x1 * c;
			}
		} else {
			for (int32_t i0 = 0; i0 < n_rot; i0 += 2) {
				const float c = cs[i0], s = cs[i0 + 1];
				const float x0 = v[i0], x1 = v[i0 + 1];
				v[i0] = x0 * c - x1 * s;
				v[i0 + 1] = x0 * s + x1 * c;
			}
		}
	}
}

// ---- activations

void cpu_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		const float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void cpu_softmax(float *x, int64_t n)
{
	float max = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		max = x[i] > max ? x[i] : max;
	double sum = 0.0;
	for (int64_t i = 0; i < n; i++) {
		const float e = expf(x[i] - max);
		x[i] = e;
		sum += (double)e;
	}
	const float inv = (float)(1.0 / sum);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
}

void cpu_add(float *out, const float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}
