/*
 * model.h — a decoder-only transformer read from a GGUF file and run on the CPU.
 *
 * Supported architectures: `llama` and `qwen2` (RMSNorm, RoPE, grouped-query
 * attention, SwiGLU feed-forward, tied or separate output projection, optional
 * q/k/v biases).  Hyper-parameters come from the `{arch}.*` metadata keys and
 * every tensor's shape is checked against them when the model is loaded.
 * Weights stay inside the read-only mapping of the file (never copied).
 *
 * The forward pass does not own a KV cache: for each layer it computes q, k, v
 * (after RoPE) for the whole batch and hands k/v to kv->store() and q to
 * kv->attend(), which writes the attention output.  src/kvcache.h implements
 * this for one plain causal sequence; the tree engine implements it over the
 * paged pool with tree attention plans.
 *
 * Threads: one persistent worker pool per model (model_params.n_threads);
 * model_forward() must not be called concurrently on one model.
 */
#ifndef DT_MODEL_H
#define DT_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct gguf_ctx;
struct threadpool;

enum model_rope_scaling {
	MODEL_ROPE_SCALING_NONE = 0,
	MODEL_ROPE_SCALING_LINEAR,  /* positions divided by rope_scale */
	MODEL_ROPE_SCALING_FREQS,   /* per-dimension factors from the rope_freqs tensor (llama3) */
};

struct model_hparams {
	char arch[32];        /* "llama" or "qwen2" */
	char name[64];        /* general.name, "" when absent */
	int32_t n_layer;      /* {arch}.block_count */
	int32_t n_embd;       /* {arch}.embedding_length */
	int32_t n_head;       /* {arch}.attention.head_count */
	int32_t n_head_kv;    /* {arch}.attention.head_count_kv (default n_head) */
	int32_t head_dim;     /* n_embd / n_head (or {arch}.attention.key_length) */
	int32_t n_rot;        /* {arch}.rope.dimension_count (default head_dim): rotated dims per head */
	int32_t n_ff;         /* {arch}.feed_forward_length */
	int32_t n_vocab;      /* tokenizer.ggml.tokens length, else token_embd rows */
	int32_t n_ctx_train;  /* {arch}.context_length */
	float rope_base;      /* {arch}.rope.freq_base (default 10000) */
	float rope_scale;     /* position divisor: {arch}.rope.scaling.factor for linear, else 1 */
	float rms_eps;        /* {arch}.attention.layer_norm_rms_epsilon (default 1e-5) */
	enum model_rope_scaling rope_scaling;
	bool rope_neox;       /* rotate halves (qwen2) instead of adjacent pairs (llama) */
	bool has_qkv_bias;    /* blk.N.attn_{q,k,v}.bias present (qwen2) */
	bool tied_output;     /* no output.weight: logits use token_embd */
};

struct model_params {
	int32_t n_threads; /* worker threads including the caller (default dt_ncpu()) */
	int32_t n_batch;   /* most tokens per model_forward() call (default 512) */
};
struct model_params model_default_params(void);

struct model;

/* Opens path, reads the hyper-parameters and binds every weight.
 * NULL + "path: ..." in err for I/O errors, missing keys, wrong tensor shapes,
 * unsupported architectures or tensor types. */
struct model *model_load(const char *path, const struct model_params *p, char *err);
void model_free(struct model *m);

const struct model_hparams *model_hparams(const struct model *m);
/* The parsed file (owned by the model): the tokenizer is built from it. */
struct gguf_ctx *model_gguf(const struct model *m);
/* The model's worker pool, for attention implementations to share. */
struct threadpool *model_threadpool(struct model *m);
/* Bytes of weights a forward pass reads (all tensors the model binds). */
size_t model_weight_bytes(const struct model *m);
int32_t model_n_threads(const struct model *m);
int32_t model_n_batch(const struct model *m);

/* Architecture summary for `deftree inspect`: hyper-parameters derived from the
 * metadata, parameter count, bytes per tensor type. Prints the error message
 * instead when g is not a supported model. */
void model_describe(const struct gguf_ctx *g, FILE *out);

// ---- forward pass

/* How a forward pass stores K/V and attends.  Per layer the model calls
 * store() with the batch's k and v (after RoPE), then attend() with q; attend
 * writes softmax(q k^T / sqrt(head_dim)) v per query head (query head h reads
 * kv head h / (n_head / n_head_kv)) over whatever keys the implementation
 * deems visible to each query.  Both return 0, or a negative enum dt_status
 * (DT_ERR_FULL when out of KV space) + err, which model_forward() returns. */
struct model_kv_ops {
	void *ctx;
	int (*store)(void *ctx, int32_t layer, int32_t n, const float *k, const float *v,
		     char *err); /* k, v: (n, n_head_kv*head_dim) */
	int (*attend)(void *ctx, int32_t layer, int32_t n, const float *q, float *out,
		      char *err); /* q, out: (n, n_head*head_dim) */
};

struct model_batch {
	int32_t n;             /* tokens in the batch, 1 .. model_n_batch() */
	const int32_t *tokens; /* (n) token ids */
	const int32_t *pos;    /* (n) positions (RoPE) */
	const bool *logits;    /* (n) rows that need logits; NULL = the last row only */
};

/* Runs the batch through the model.  logits_out: (rows with logits, n_vocab),
 * in batch order.  cancel may be NULL; it is checked between layers and gives
 * DT_ERR_CANCELLED (the KV implementation may then hold partial writes for this
 * batch).  Returns DT_OK or a negative enum dt_status + err. */
int model_forward(struct model *m, const struct model_batch *b, const struct model_kv_ops *kv,
		  float *logits_out, const atomic_bool *cancel, char *err);

/* Where the time of the last model_forward() went (nanoseconds, wall clock). */
struct model_timing {
	int32_t n_tokens;   /* batch size */
	int64_t total_ns;   /* the whole call */
	int64_t attend_ns;  /* inside kv->store() + kv->attend() */
	int64_t matmul_ns;  /* weight matrix products (all layers, output excluded) */
	int64_t output_ns;  /* final norm + output projection */
};
const struct model_timing *model_last_timing(const struct model *m);

#endif
