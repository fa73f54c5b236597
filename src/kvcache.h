/*
 * kvcache.h — a contiguous KV cache for one sequence with plain causal
 * attention: the simplest implementation of struct model_kv_ops.
 *
 * store() appends the batch's keys/values after the tokens already cached;
 * attend() lets query i of the batch see every cached token and the batch's
 * tokens 0..i.  The batch becomes part of the sequence when the last layer
 * has attended, so a cancelled forward pass leaves the cache as it was.
 *
 * K/V are stored in f16 (as llama.cpp does by default; q and the softmax
 * weights are then rounded to f16 before their dot products, as ggml's f16
 * matrix products do) or in f32.  Attention is split over (query, kv head)
 * across the threads of the pool.
 */
#ifndef DT_KVCACHE_H
#define DT_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "quant.h"

struct threadpool;

struct kvcache_params {
	int32_t n_ctx;     /* most tokens the cache holds (default 4096) */
	enum dt_type type; /* DT_TYPE_F16 (default) or DT_TYPE_F32 */
};
struct kvcache_params kvcache_default_params(void);

struct kvcache;

/* Sized for the model's layers and heads; tp (may be NULL) runs the attention. */
struct kvcache *kvcache_new(const struct model_hparams *hp, const struct kvcache_params *p,
			    struct threadpool *tp);
void kvcache_free(struct kvcache *c);

/* The ops to pass to model_forward(). */
struct model_kv_ops kvcache_ops(struct kvcache *c);

int32_t kvcache_n_tokens(const struct kvcache *c); /* tokens in the sequence */
int32_t kvcache_n_ctx(const struct kvcache *c);
void kvcache_truncate(struct kvcache *c, int32_t n); /* keep the first n tokens */
void kvcache_clear(struct kvcache *c);
size_t kvcache_bytes(const struct kvcache *c); /* memory held by K and V */

#endif
