/*
 * quant.h — tensor element formats: the type table (block size, bytes per
 * block), dequantization, and dot products of a quantized row against
 * activations.
 *
 * Type ids are ggml's (they are what GGUF files store).  Activations for the
 * fast dot products are quantized once per matmul into struct quant_q8 blocks
 * of 32 (int8 values, float scale d, and d*sum(q) for formats with a min),
 * which serves every weight format here (K-quant sub-blocks are 16 or 32 wide).
 * Each format has a scalar reference and, where the CPU has AVX2/FMA (chosen at
 * run time), a SIMD path giving the same result within float tolerance.
 */
#ifndef DT_QUANT_H
#define DT_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum dt_type {
	DT_TYPE_F32 = 0,
	DT_TYPE_F16 = 1,
	DT_TYPE_Q4_0 = 2,
	DT_TYPE_Q4_1 = 3,
	DT_TYPE_Q5_0 = 6,
	DT_TYPE_Q5_1 = 7,
	DT_TYPE_Q8_0 = 8,
	DT_TYPE_Q8_1 = 9,
	DT_TYPE_Q2_K = 10,
	DT_TYPE_Q3_K = 11,
	DT_TYPE_Q4_K = 12,
	DT_TYPE_Q5_K = 13,
	DT_TYPE_Q6_K = 14,
	DT_TYPE_Q8_K = 15,
	DT_TYPE_I8 = 24,
	DT_TYPE_I16 = 25,
	DT_TYPE_I32 = 26,
	DT_TYPE_I64 = 27,
	DT_TYPE_F64 = 28,
	DT_TYPE_BF16 = 30,
	DT_TYPE_COUNT = 40, /* upper bound of the id space, not a type */
};

struct quant_type_info {
	const char *name;   /* "q4_1"; NULL for ids that are not a type */
	int32_t block_size; /* elements per block */
	size_t type_size;   /* bytes per block */
	bool supported;     /* deftree can dequantize and dot it */
};

/* Info for a type id; NULL when id is not a known type. The size table covers
 * every ggml type so that GGUF validation can size any tensor; `supported`
 * says whether deftree can compute with it. */
const struct quant_type_info *quant_type(uint32_t id);
const char *quant_type_name(uint32_t id); /* "f32", or "type-N" for unknown */
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size
 * or the type is unknown. */
size_t quant_row_size(uint32_t id, int64_t n);

// ---- half precision helpers
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

// ---- dequantization and float dot products (reference semantics)
/* y[0..n) = dequantized row x of type t (n a multiple of the block size). */
void quant_dequant_row(enum dt_type t, const void *x, float *y, int64_t n);
/* dot(row x of type t, float vector y) of length n */
float quant_dot_f32(enum dt_type t, const void *x, const float *y, int64_t n);

// ---- fast path: activations quantized to q8 blocks of 32
#define QUANT_Q8_BLOCK 32
struct quant_q8 {
	float d;               /* scale: x ~ d * q */
	float s;               /* d * sum(q), for formats with a min (Q4_1, Q4_K) */
	int8_t q[QUANT_Q8_BLOCK];
};
/* Quantize n floats (n a multiple of 32) into n/32 q8 blocks. */
void quant_q8_quantize(const float *x, struct quant_q8 *out, int64_t n);
/* Whether the q8 fast dot exists for type t (else use quant_dot_f32). */
bool quant_has_q8_dot(enum dt_type t);
/* dot(row x of type t, activations xq) of length n. */
float quant_dot_q8(enum dt_type t, const void *x, const struct quant_q8 *xq, int64_t n);
/* The same dot for 4 activation vectors at once (batched matmuls: prefill and
 * tree decoding run many tokens through the same weights); the row's blocks
 * are loaded and unpacked once.  out[k] = quant_dot_q8(t, row, xq[k], n). */
void quant_dot_q8_x4(enum dt_type t, const void *row, const struct quant_q8 *const xq[4], int64_t n,
		     float out[4]);

// ---- SIMD selection
/* "avx2" or "scalar": what the dot products use now. */
const char *quant_simd_name(void);
/* Force the portable path (tests compare both); returns the previous state. */
bool quant_force_scalar(bool on);

#endif
