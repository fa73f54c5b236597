/*
 * gen.c — one plain sequence of text generation (see gen.h).
 *
 * DESIGN
 * The struct owns the model (and through it the mapped file), the tokenizer,
 * a contiguous KV cache and the sampler scratch.  `tokens` mirrors the cache:
 * a token is appended only after the forward pass that stored its K/V
 * returned DT_OK, batch by batch, so that a cancelled prefill keeps exactly
 * the batches that completed.  `logits` holds the last row the model
 * produced; `have_logits` says whether it belongs to the last token of the
 * sequence (sampling is only allowed then).
 */
#include "config.h"

#include "gen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "kvcache.h"
#include "model.h"
#include "tokenizer.h"

struct gen {
	struct gen_params params;
	struct model *model;
	struct tokenizer *tok;
	struct kvcache *kv;          /* NULL until first use */
	int32_t n_ctx;               /* capacity of kv (and of tokens) */
	int32_t n_vocab;
	int32_t *tokens;             /* (n_ctx) the sequence */
	int32_t n_tokens;
	float *logits;               /* (n_vocab) last row */
	bool have_logits;
	struct sampler_work *sw;
	char *text;                  /* streaming decode buffer */
	size_t text_cap;
};

struct gen_params gen_default_params(void)
{
	return (struct gen_params){
		.model_path = NULL,
		.n_threads = 0,
		.n_ctx = 0,
		.sampling = sampler_default_params(),
	};
}

bool gen_model_missing(const char *path, const char *who, FILE *f)
{
	if (access(path, R_OK) == 0)
		return false;
	fprintf(f,
		"%s: no model at %s (%s)\n"
		"  Fetch the default model (%s) with ./bootstrap in the source tree,\n"
		"  or give a GGUF file with -m PATH or DEFTREE_MODEL=PATH.\n",
		who, path, strerror(errno), DT_DEFAULT_MODEL_FILE);
	return true;
}

int gen_parse_i32(const char *opt, const char *s, int32_t lo, int32_t hi, int32_t *out, char *err)
{
	char *end = NULL;
	errno = 0;
	long long v = s && *s ? strtoll(s, &end, 10) : 0;
	if (!s || !*s || *end || errno)
		return dt_err(err, "%s: expected an integer (found '%s')", opt, s ? s : "");
	if (v < lo || v > hi)
		return dt_err(err, "%s: %lld out of range (expected %d .. %d)", opt, v, lo, hi);
	*out = (int32_t)v;
	return 0;
}

struct gen *gen_new(const struct gen_params *p, char *err)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	g->params = *p;
	const char *path = p->model_path ? p->model_path : dt_default_model_path();
	struct model_params mp = model_default_params();
	if (p->n_threads > 0)
		mp.n_threads = p->n_threads;
	g->model = model_load(path, &mp, err);
	if (!g->model) {
		free(g);
		return NULL;
	}
	g->tok = tokenizer_from_gguf(model_gguf(g->model), err);
	if (!g->tok) {
		model_free(g->model);
		free(g);
		return NULL;
	}
	const struct model_hparams *hp = model_hparams(g->model);
	g->n_vocab = hp->n_vocab;
	g->logits = xmallocarray((size_t)g->n_vocab, sizeof(*g->logits));
	g->sw = sampler_work_new(g->n_vocab);
	g->n_ctx = p->n_ctx;
	if (g->n_ctx <= 0)
		g->n_ctx = hp->n_ctx_train > 0 ? DT_MIN(4096, hp->n_ctx_train) : 4096;
	g->text_cap = 256;
	g->text = xmalloc(g->text_cap);
	return g;
}

void gen_free(struct gen *g)
{
	if (!g)
		return;
	kvcache_free(g->kv);
	tokenizer_free(g->tok);
	model_free(g->model);
	sampler_work_free(g->sw);
	free(g->tokens);
	free(g->logits);
	free(g->text);
	free(g);
}

struct model *gen_model(struct gen *g)
{
	return g->model;
}

const struct tokenizer *gen_tokenizer(const struct gen *g)
{
	return g->tok;
}

struct sampler_params *gen_sampling(struct gen *g)
{
	return &g->params.sampling;
}

int32_t gen_n_tokens(const struct gen *g)
{
	return g->n_tokens;
}

int32_t gen_n_ctx(const struct gen *g)
{
	return g->n_ctx;
}

const float *gen_logits(const struct gen *g)
{
	return g->logits;
}

static void ensure_kv(struct gen *g)
{
	if (g->kv)
		return;
	struct kvcache_params kp = kvcache_default_params();
	kp.n_ctx = g->n_ctx;
	g->kv = kvcache_new(model_hparams(g->model), &kp, model_threadpool(g->model));
	g->tokens = xmallocarray((size_t)g->n_ctx, sizeof(*g->tokens));
	g->n_tokens = 0;
}

void gen_set_n_ctx(struct gen *g, int32_t n_ctx)
{
	DT_ASSERT(n_ctx > 0);
	if (n_ctx == g->n_ctx)
		return;
	kvcache_free(g->kv);
	free(g->tokens);
	g->kv = NULL;
	g->tokens = NULL;
	g->n_tokens = 0;
	g->have_logits = false;
	g->n_ctx = n_ctx;
}

size_t gen_kv_bytes(struct gen *g)
{
	ensure_kv(g);
	return kvcache_bytes(g->kv);
}

void gen_reset(struct gen *g)
{
	if (g->kv)
		kvcache_clear(g->kv);
	g->n_tokens = 0;
	g->have_logits = false;
}

// ---- prefill

int gen_append(struct gen *g, const int32_t *ids, int32_t n, const atomic_bool *cancel, char *err)
{
	ensure_kv(g);
	if (n <= 0)
		return DT_OK;
	if (n > g->n_ctx - g->n_tokens) {
		dt_err(err, "context full (%d tokens cached + %d new > %d, the KV cache size)",
		       g->n_tokens, n, g->n_ctx);
		return DT_ERR_FULL;
	}
	for (int32_t i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= g->n_vocab) {
			dt_err(err, "token id %d out of range (vocabulary of %d)", ids[i], g->n_vocab);
			return DT_ERR_ARG;
		}
	}
	const struct model_kv_ops ops = kvcache_ops(g->kv);
	const int32_t n_batch = model_n_batch(g->model);
	int32_t *pos = xmallocarray((size_t)DT_MIN(n, n_batch), sizeof(*pos));
	int rc = DT_OK;
	for (int32_t done = 0; done < n;) {
		int32_t nb = DT_MIN(n - done, n_batch);
		for (int32_t i = 0; i < nb; i++)
			pos[i] = g->n_tokens + i;
		struct model_batch b = { .n = nb, .tokens = ids + done, .pos = pos, .logits = NULL };
		g->have_logits = false;
		rc = model_forward(g->model, &b, &ops, g->logits, cancel, err);
		if (rc != DT_OK)
			break;
		memcpy(g->tokens + g->n_tokens, ids + done, (size_t)nb * sizeof(*ids));
		g->n_tokens += nb;
		done += nb;
		g->have_logits = done == n;
	}
	free(pos);
	DT_ASSERT(kvcache_n_tokens(g->kv) == g->n_tokens);
	return rc;
}

int gen_set_sequence(struct gen *g, const int32_t *ids, int32_t n, int32_t *n_prefilled,
		     const atomic_bool *cancel, char *err)
{
	DT_ASSERT(n >= 1);
	ensure_kv(g);
	int32_t common = 0;
	while (common < n && common < g->n_tokens && g->tokens[common] == ids[common])
		common++;
	if (common == n && g->n_tokens == n && g->have_logits) {
		if (n_prefilled)
			*n_prefilled = 0;
		return DT_OK;
	}
	if (common == n)
		common = n - 1; /* rerun the last token for its logits */
	kvcache_truncate(g->kv, common);
	g->n_tokens = common;
	g->have_logits = false;
	if (n_prefilled)
		*n_prefilled = n - common;
	return gen_append(g, ids + common, n - common, cancel, err);
}

// ---- sampling and the loop

int32_t gen_sample(struct gen *g, float *prob)
{
	DT_ASSERT(g->have_logits);
	return sampler_sample(&g->params.sampling, g->logits, g->n_vocab, g->tokens, g->n_tokens, 0,
			      g->n_tokens, prob, g->sw);
}

static void emit_token(struct gen *g, struct tokenizer_stream *ts, int32_t id, gen_emit_fn emit,
		       void *ctx)
{
	if (!emit)
		return;
	size_t plen = 0;
	(void)tokenizer_piece(g->tok, id, &plen);
	if (plen + 32 > g->text_cap) {
		g->text_cap = plen + 32;
		g->text = xrealloc(g->text, g->text_cap);
	}
	size_t k = tokenizer_decode_stream(g->tok, ts, id, g->text, g->text_cap);
	if (k)
		emit(ctx, g->text, k);
}

int gen_run(struct gen *g, const int32_t *prompt, int32_t n_prompt, int32_t n_predict,
	    gen_emit_fn emit, void *emit_ctx, const atomic_bool *cancel, struct gen_stats *st,
	    char *err)
{
	memset(st, 0, sizeof(*st));
	st->n_prompt = n_prompt;
	if (n_prompt < 1) {
		dt_err(err, "empty prompt (expected at least one token)");
		return DT_ERR_ARG;
	}
	double t0 = dt_now_s();
	int rc = gen_set_sequence(g, prompt, n_prompt, &st->n_prefilled, cancel, err);
	st->prefill_s = dt_now_s() - t0;
	if (rc == DT_ERR_CANCELLED) {
		st->cancelled = true;
		return DT_OK;
	}
	if (rc != DT_OK)
		return rc;

	struct tokenizer_stream ts = { 0 };
	double t_first = 0;
	for (;;) {
		if (st->n_gen >= n_predict)
			break;
		if (cancel && atomic_load(cancel)) {
			st->cancelled = true;
			break;
		}
		int32_t id = gen_sample(g, NULL);
		if (st->n_gen == 0) {
			t_first = dt_now_s();
			st->ttft_s = t_first - t0;
		}
		if (tokenizer_is_eog(g->tok, id)) {
			st->eog = true;
			break;
		}
		st->n_gen++;
		st->decode_s = dt_now_s() - t_first;
		emit_token(g, &ts, id, emit, emit_ctx);
		if (st->n_gen >= n_predict)
			break;
		if (g->n_tokens >= g->n_ctx) {
			st->ctx_full = true;
			break;
		}
		rc = gen_append(g, &id, 1, cancel, err);
		if (rc == DT_ERR_CANCELLED) {
			st->cancelled = true;
			break;
		}
		if (rc != DT_OK)
			return rc;
	}
	if (emit) {
		size_t k = tokenizer_stream_flush(&ts, g->text, g->text_cap);
		if (k)
			emit(emit_ctx, g->text, k);
	}
	return DT_OK;
}

void gen_print_stats(const struct gen_stats *st, FILE *f)
{
	fprintf(f, "prompt tokens:       %d", st->n_prompt);
	if (st->n_prefilled != st->n_prompt)
		fprintf(f, " (%d prefilled, %d cached)", st->n_prefilled, st->n_prompt - st->n_prefilled);
	fprintf(f, "\n");
	if (st->ttft_s > 0)
		fprintf(f, "TTFT:                %.1f ms\n", st->ttft_s * 1e3);
	else
		fprintf(f, "TTFT:                -\n");
	if (st->n_prefilled > 0 && st->prefill_s > 0)
		fprintf(f, "prompt tokens/s:     %.1f\n", st->n_prefilled / st->prefill_s);
	fprintf(f, "generated tokens:    %d%s\n", st->n_gen,
		st->cancelled  ? " (interrupted)"
		: st->eog      ? " (end of generation)"
		: st->ctx_full ? " (context full)"
			       : "");
	if (st->n_gen > 1 && st->decode_s > 0)
		fprintf(f, "generated tokens/s:  %.1f\n", (st->n_gen - 1) / st->decode_s);
	else
		fprintf(f, "generated tokens/s:  -\n");
}
