/*
 * cpu_matmul.h — products of quantized weight matrices with a batch of
 * activation rows on the CPU: y (n, n_out) = x (n, n_in) · W^T (+ bias).
 *
 * W is stored as GGUF lays it out: n_out rows of n_in elements in any type of
 * quant.h.  The activations are quantized once per call into q8 blocks
 * (quant_q8_quantize) and every row product is a quant_dot_q8; types without a
 * q8 dot (f32, f16, bf16) use quant_dot_f32 on the float activations.
 * Several matrices that read the same x (q, k, v; gate, up) go in one call and
 * one parallel job; the work is cut into chunks of output rows that threads of
 * the pool take from a shared counter.
 */
#ifndef DT_CPU_MATMUL_H
#define DT_CPU_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

struct threadpool;

/* A weight matrix inside the model mapping. */
struct cpu_matrix {
	const void *data;  /* (n_out, row_bytes) */
	enum dt_type type;
	int64_t n_in;      /* elements per row (GGUF ne[0]) */
	int64_t n_out;     /* rows (GGUF ne[1]) */
	size_t row_bytes;  /* quant_row_size(type, n_in) */
};

/* One product of a cpu_matmul() call. */
struct cpu_matmul_op {
	const struct cpu_matrix *w;
	const float *bias; /* (n_out) added to every row, or NULL */
	float *y;          /* (n, n_out) */
};

/* Scratch reused across calls (the quantized activations). */
struct cpu_matmul_ws;
struct cpu_matmul_ws *cpu_matmul_ws_new(void);
void cpu_matmul_ws_free(struct cpu_matmul_ws *ws);

/* For each op: op.y = x · op.w^T + op.bias.  x: (n, n_in), every op.w->n_in
 * equals n_in (a multiple of 32).  tp may be NULL (single thread). */
void cpu_matmul(struct threadpool *tp, struct cpu_matmul_ws *ws, const float *x, int32_t n,
		int64_t n_in, const struct cpu_matmul_op *ops, int n_ops);

/* Row r of W as floats (for embedding lookups): y (n_in). */
void cpu_matrix_row(const struct cpu_matrix *w, int64_t r, float *y);

#endif
