/*
 * gen.h — one plain sequence of text generation: model + tokenizer + a
 * contiguous KV cache + the sampler.  What `deftree generate`, the
 * interactive prompt and `deftree bench cpu` share; the tree engine is
 * separate.
 *
 *   struct gen *g = gen_new(&params, err);
 *   gen_run(g, prompt_ids, n, n_predict, emit, ctx, &cancel, &stats, err);
 *   ... gen_run again with the whole conversation: only the part after the
 *   longest common prefix with the cached tokens is prefilled.
 *   gen_free(g);
 *
 * The sequence's tokens (g->tokens) always equal what the KV cache holds;
 * a cancelled or failed forward pass leaves both as they were before it.
 */
#ifndef DT_GEN_H
#define DT_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sampler.h"

struct model;
struct tokenizer;

struct gen_params {
	const char *model_path;          /* NULL: dt_default_model_path() */
	int32_t n_threads;               /* worker threads incl. the caller; 0 = dt_ncpu() */
	int32_t n_ctx;                   /* KV cache capacity, tokens; 0 = min(4096, trained context) */
	struct sampler_params sampling;  /* sampler_default_params() */
};
struct gen_params gen_default_params(void);

/* When the model file cannot be read, prints what to do (run ./bootstrap,
 * or -m PATH / DEFTREE_MODEL) to f, prefixed by who, and returns true. */
bool gen_model_missing(const char *path, const char *who, FILE *f);

/* Parses a whole decimal integer in [lo, hi] for option opt: 0, or -1 +
 * "opt: ..." in err. */
int gen_parse_i32(const char *opt, const char *s, int32_t lo, int32_t hi, int32_t *out, char *err);

struct gen;

/* Loads the model and its tokenizer (the KV cache is allocated on first
 * use).  NULL + "path: ..." in err when the file is missing or bad. */
struct gen *gen_new(const struct gen_params *p, char *err);
void gen_free(struct gen *g);

struct model *gen_model(struct gen *g);
const struct tokenizer *gen_tokenizer(const struct gen *g);
struct sampler_params *gen_sampling(struct gen *g); /* may be changed between calls */
int32_t gen_n_tokens(const struct gen *g);          /* tokens in the sequence (cached) */
int32_t gen_n_ctx(const struct gen *g);
/* Sets the KV cache capacity (tokens); drops the sequence if it changes. */
void gen_set_n_ctx(struct gen *g, int32_t n_ctx);
size_t gen_kv_bytes(struct gen *g); /* memory held by the KV cache */
void gen_reset(struct gen *g);      /* empty sequence */

/* Appends ids[0..n) to the sequence (prefill in batches of the model's
 * n_batch); the logits of the last one are then ready for gen_sample().
 * DT_OK, DT_ERR_CANCELLED (the batches before the cancel are kept), or a
 * negative dt_status + err (context full, model failure). */
int gen_append(struct gen *g, const int32_t *ids, int32_t n, const atomic_bool *cancel, char *err);

/* Makes the sequence ids[0..n) (n >= 1): keeps the longest common prefix
 * with the cached tokens and prefills the rest (at least the last token, for
 * its logits).  *n_prefilled (may be NULL) receives how many were run. */
int gen_set_sequence(struct gen *g, const int32_t *ids, int32_t n, int32_t *n_prefilled,
		     const atomic_bool *cancel, char *err);

/* Samples the next token from the last logits: stream 0, position =
 * gen_n_tokens(), the sequence as repetition history.  prob: see sampler.h. */
int32_t gen_sample(struct gen *g, float *prob);
const float *gen_logits(const struct gen *g); /* (n_vocab) logits of the last token */

/* Receives generated text: whole UTF-8 characters only. */
typedef void (*gen_emit_fn)(void *ctx, const char *text, size_t len);

struct gen_stats {
	int32_t n_prompt;    /* prompt tokens given */
	int32_t n_prefilled; /* of those, run through the model (the rest were cached) */
	double prefill_s;    /* time of the prefill */
	double ttft_s;       /* from the call to the first generated token (prefill + sample) */
	int32_t n_gen;       /* tokens generated (an end-of-generation token is not counted) */
	double decode_s;     /* from the first generated token to the last */
	bool eog;            /* stopped at an end-of-generation token */
	bool cancelled;      /* stopped through the cancel flag */
	bool ctx_full;       /* stopped because the KV cache is full */
};

/* The whole loop: sets the sequence to prompt (see gen_set_sequence), then
 * samples up to n_predict tokens, streaming their text through emit (may be
 * NULL), until an end-of-generation token, n_predict, a full context or the
 * cancel flag.  The generated tokens (text) stay in the sequence except the
 * last one sampled, which is not run through the model.  0, or a negative
 * dt_status + err for failures other than cancellation. */
int gen_run(struct gen *g, const int32_t *prompt, int32_t n_prompt, int32_t n_predict,
	    gen_emit_fn emit, void *emit_ctx, const atomic_bool *cancel, struct gen_stats *st,
	    char *err);

/* Prints the stats to f: prompt tokens (prefilled / cached), TTFT, prompt
 * tokens/s (prefilled / prefill time), generated tokens, generated tokens/s
 * ((n_gen - 1) forward passes over decode_s: the first token comes from the
 * prefill). */
void gen_print_stats(const struct gen_stats *st, FILE *f);

#endif
