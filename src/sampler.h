/*
 * sampler.h — picks the next token from a row of logits: greedy, repetition
 * penalty, top-k, top-p, min-p, temperature, seeded random draw.
 *
 * Order of operations (llama.cpp's common sampler chain):
 *   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw
 * top-p and min-p look at probabilities at temperature 1 of the candidates
 * left by the previous step (top-p renormalises over the top-k set when top-k
 * is on, over the whole vocabulary otherwise); the temperature then reshapes
 * the surviving candidates only.  temp == 0 means greedy (after the penalty).
 *
 * Random numbers carry no hidden state: the uniform number of a draw is a
 * splitmix64 hash of (seed, stream, pos).  `stream` names a branch of a token
 * tree and `pos` the position of the token being sampled, so a branch sampled
 * inside a batch of branches gets exactly the tokens it gets when generated
 * alone, and re-running a step reproduces it.
 *
 * Non-finite logits: NaN counts as -inf (never chosen while any other token
 * is possible), +inf as the largest float (the +inf tokens share the mass).
 * When every logit is NaN or -inf, the sampler returns token 0 with
 * probability 0 rather than failing.
 */
#ifndef DT_SAMPLER_H
#define DT_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sampler_params {
	float temp;             /* temperature; 0.8; 0 = greedy */
	int32_t top_k;          /* keep the k most likely tokens; 40; 0 = off */
	float top_p;            /* nucleus: smallest set reaching this mass; 0.95; 1 = off */
	float min_p;            /* drop tokens below min_p * max prob; 0.05; 0 = off */
	float repeat_penalty;   /* divide positive / multiply negative logits of recent tokens; 1.0 = off */
	int32_t repeat_last_n;  /* how many recent tokens the penalty looks at; 64; 0 = off, -1 = all */
	uint64_t seed;          /* seed of the random draws; 0xdef7ee */
};

struct sampler_params sampler_default_params(void);

/* Checks the ranges (temp >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1,
 * repeat_penalty > 0, repeat_last_n >= -1, all finite): 0, or -1 + a message
 * naming the bad field in err (DT_ERR_LEN bytes). */
int sampler_params_check(const struct sampler_params *p, char *err);

/* Sets one field from text, as typed in a command line or `/set`: name is
 * temp, top-k, top-p, min-p, repeat-penalty, repeat-last-n or seed.  The
 * whole value must parse and the result must pass sampler_params_check();
 * otherwise p is unchanged and -1 + a message is in err. */
int sampler_params_set(struct sampler_params *p, const char *name, const char *value, char *err);
/* Writes "temp 0.8, top-k 40, ..." into buf (size n). */
void sampler_params_describe(const struct sampler_params *p, char *buf, size_t n);

/* Scratch buffers sized for a vocabulary, reused from call to call so that
 * sampling a token allocates nothing.  One per thread. */
struct sampler_work;
struct sampler_work *sampler_work_new(int32_t n_vocab);
void sampler_work_free(struct sampler_work *w);

/* The uniform number in [0, 1) of the draw at (seed, stream, pos). */
double sampler_uniform(uint64_t seed, uint64_t stream, int32_t pos);

/* Samples one token from logits (n_vocab).  history (n_history ids, oldest
 * first) feeds the repetition penalty; it may be NULL when n_history is 0.
 * stream / pos select the random number (see above).  prob_out (may be NULL)
 * receives the model's probability of the chosen token: softmax over the
 * whole vocabulary of the penalised logits divided by the temperature
 * (temperature 1 when greedy), before top-k / top-p / min-p truncation.
 * w may be NULL (then a scratch is allocated for this call).  The logits are
 * not modified. */
int32_t sampler_sample(const struct sampler_params *p, const float *logits, int32_t n_vocab,
		       const int32_t *history, int32_t n_history, uint64_t stream, int32_t pos,
		       float *prob_out, struct sampler_work *w);

/* argmax, ties to the lowest id, NaN ignored (0 when all are NaN). */
int32_t sampler_greedy(const float *logits, int32_t n);

/* The counterfactual view: the k most likely tokens (ids_out, best first,
 * ties to the lowest id) with their softmax probabilities at temperature 1
 * over the whole vocabulary (probs_out, may be NULL).  Returns how many were
 * written: min(k, n_vocab).  Allocates nothing. */
int32_t sampler_topk_alternatives(const float *logits, int32_t n_vocab, int32_t k, int32_t *ids_out,
				  float *probs_out);

#endif
