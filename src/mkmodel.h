/*
 * mkmodel.h — synthetic GGUF models: any supported shape, random weights,
 * a complete byte-level BPE vocabulary, loadable by deftree and llama.cpp.
 *
 * Used by tests (small models of each architecture and weight type) and for
 * timing large shapes (Llama-3-8B, Llama-2-7B) without their weights; figures
 * measured on these files are to be labelled as synthetic.
 *
 * The vocabulary is three control tokens (<|endoftext|>, <|im_start|>,
 * <|im_end|>), the 256 byte tokens of GPT-2's byte-to-unicode mapping, and
 * n_vocab - 259 random merges of existing tokens, or the tokenizer metadata
 * copied from another model (vocab_from).  Weights are deterministic in the
 * seed (independent of the thread count) and written tensor by tensor, so a
 * file larger than memory can be made.
 */
#ifndef DT_MKMODEL_H
#define DT_MKMODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "quant.h"

struct mkmodel_params {
	char arch[32];      /* "llama" (default) or "qwen2" */
	int32_t n_layer;    /* blocks (default 2) */
	int32_t n_embd;     /* hidden width (default 64) */
	int32_t n_head;     /* query heads (default 4) */
	int32_t n_head_kv;  /* kv heads (default n_head) */
	int32_t n_ff;       /* feed-forward width (default 128) */
	int32_t n_vocab;    /* tokens (default 512, at least 259); ignored with vocab_from */
	int32_t n_ctx;      /* context_length metadata (default 2048) */
	float rope_base;    /* rope.freq_base (default 10000) */
	float rms_eps;      /* attention.layer_norm_rms_epsilon (default 1e-5) */
	float rope_scale;   /* linear rope scaling factor, rope.scaling.type/factor (default 1: none) */
	bool rope_freqs;    /* write a Llama-3.1-style rope_freqs.weight (factor 8, default false) */
	enum dt_type type;  /* 2-D weight type (default q8_0): f32 f16 q8_0 q4_1 q4_k q6_k */
	bool tied;          /* no output.weight: logits use token_embd (default true) */
	int qkv_bias;       /* 1: write blk.N.attn_{q,k,v}.bias, 0: not, -1: arch default (qwen2 yes) */
	uint64_t seed;      /* weights and merges (default 1) */
	const char *vocab_from; /* copy tokenizer.* metadata from this GGUF (NULL = synthetic vocab) */
	int32_t n_threads;  /* threads generating weights (default dt_ncpu()) */
};
struct mkmodel_params mkmodel_default_params(void);

/* Presets: "llama3-8b", "llama2-7b", "smollm2-135m", "tiny-llama", "tiny-qwen2".
 * Fills the shape fields of p (type, seed, vocab_from and threads are kept).
 * 0, or -1 + err for an unknown name. */
int mkmodel_preset(struct mkmodel_params *p, const char *name, char *err);
/* Comma-separated preset names for usage messages. */
const char *mkmodel_preset_names(void);

/* Writes the model to path; a summary line goes to log when non-NULL.
 * 0, or -1 + err (bad shape, unsupported type, I/O). */
int mkmodel_write(const struct mkmodel_params *p, const char *path, FILE *log, char *err);

/* Quantizes n floats (a multiple of the type's block) into dst, a row of type t
 * (f32, f16, q8_0, q4_1, q4_k, q6_k).  Exposed for tests. */
void mkmodel_quantize_row(enum dt_type t, const float *x, void *dst, int64_t n);
bool mkmodel_type_ok(enum dt_type t);

#endif
