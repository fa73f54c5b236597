/*
 * test_gen.c — the single-sequence generation loop of src/gen.c on the
 * default model: prefix reuse gives the logits of a fresh prefill, only the
 * new tokens run, cancellation and a full context leave the sequence
 * consistent, greedy runs repeat.  SKIPs without the model.
 */
#include "config.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gen.h"
#include "model.h"
#include "tap.h"
#include "tokenizer.h"

struct text_buf {
	char s[4096];
	size_t n;
};

static void collect(void *ctx, const char *text, size_t len)
{
	struct text_buf *b = ctx;
	if (b->n + len < sizeof(b->s)) {
		memcpy(b->s + b->n, text, len);
		b->n += len;
		b->s[b->n] = '\0';
	}
}

static double max_rel_diff(const float *a, const float *b, int32_t n)
{
	double worst = 0, scale = 0;
	for (int32_t i = 0; i < n; i++)
		scale = fmax(scale, fabs(a[i]));
	for (int32_t i = 0; i < n; i++)
		worst = fmax(worst, fabs(a[i] - b[i]) / (scale > 0 ? scale : 1));
	return worst;
}

int main(void)
{
	char err[DT_ERR_LEN];
	FILE *devnull = fopen("/dev/null", "w");
	const char *path = tap_model_path();
	tap_plan_lazy();
	ok(gen_model_missing("/nonexistent/model.gguf", "test", devnull),
	   "a missing model file is reported");
	if (!path) {
		tap_skip("no default model (run ./bootstrap)");
		fclose(devnull);
		return tap_done();
	}
	ok(!gen_model_missing(path, "test", devnull), "the default model is found");
	fclose(devnull);

	struct gen_params gp = gen_default_params();
	gp.model_path = path;
	gp.n_threads = 2;
	gp.n_ctx = 256;
	gp.sampling.temp = 0;
	struct gen *g = gen_new(&gp, err);
	if (!ok(g != NULL, "the model loads%s%s", g ? "" : ": ", g ? "" : err))
		return tap_done();
	const struct tokenizer *tok = gen_tokenizer(g);
	int32_t n_vocab = model_hparams(gen_model(g))->n_vocab;
	const char *a = "The capital of France is", *b = "The capital of France is Paris, and the capital";
	int32_t *ia = NULL, *ib = NULL, na = 0, nb = 0;
	tokenizer_encode(tok, a, strlen(a), tokenizer_add_bos(tok), false, &ia, &na, err);
	tokenizer_encode(tok, b, strlen(b), tokenizer_add_bos(tok), false, &ib, &nb, err);
	ok(na > 2 && nb > na && !memcmp(ia, ib, (size_t)na * sizeof(*ia)),
	   "the longer prompt extends the shorter one (%d, %d tokens)", na, nb);

	float *l1 = xmallocarray((size_t)n_vocab, sizeof(float));
	float *l2 = xmallocarray((size_t)n_vocab, sizeof(float));
	int32_t np = -1;
	int rc = gen_set_sequence(g, ia, na, &np, NULL, err);
	ok(rc == DT_OK && np == na && gen_n_tokens(g) == na, "a fresh sequence prefills all %d tokens",
	   na);
	memcpy(l1, gen_logits(g), (size_t)n_vocab * sizeof(float));
	rc = gen_set_sequence(g, ia, na, &np, NULL, err);
	ok(rc == DT_OK && np == 0 && !memcmp(l1, gen_logits(g), (size_t)n_vocab * sizeof(float)),
	   "the same sequence again runs nothing and keeps the logits");

	rc = gen_set_sequence(g, ib, nb, &np, NULL, err);
	ok(rc == DT_OK && np == nb - na, "an extension prefills only the %d new tokens (ran %d)",
	   nb - na, np);
	memcpy(l2, gen_logits(g), (size_t)n_vocab * sizeof(float));
	gen_reset(g);
	rc = gen_set_sequence(g, ib, nb, &np, NULL, err);
	double d = max_rel_diff(l2, gen_logits(g), n_vocab);
	ok(rc == DT_OK && np == nb && d < 1e-3 &&
		   sampler_greedy(l2, n_vocab) == sampler_greedy(gen_logits(g), n_vocab),
	   "reusing the prefix gives the logits of a fresh prefill (max rel diff %.2g)", d);

	/* a different continuation of the first 3 tokens keeps those 3 */
	int32_t *ic = xmallocarray((size_t)na + 1, sizeof(*ic));
	memcpy(ic, ia, 3 * sizeof(*ic));
	ic[3] = (ia[3] + 1) % n_vocab;
	rc = gen_set_sequence(g, ic, 4, &np, NULL, err);
	ok(rc == DT_OK && np == 1 && gen_n_tokens(g) == 4, "a diverging sequence keeps the common prefix");

	/* greedy runs repeat; the stats add up */
	struct text_buf t1 = { .n = 0 }, t2 = { .n = 0 };
	struct gen_stats st1, st2;
	gen_reset(g);
	rc = gen_run(g, ia, na, 8, collect, &t1, NULL, &st1, err);
	int rc2 = gen_run(g, ia, na, 8, collect, &t2, NULL, &st2, err);
	bool same = rc == DT_OK && rc2 == DT_OK && t1.n > 0 && !strcmp(t1.s, t2.s);
	for (char *p = t1.s; *p; p++) /* one TAP line */
		if (*p == '\n')
			*p = ' ';
	ok(same, "two greedy runs give the same text ('%s')", t1.s);
	ok(st1.n_prompt == na && st1.n_prefilled == na && st2.n_prefilled == 1 && st1.n_gen <= 8 &&
		   st1.ttft_s > 0,
	   "stats: %d prompt tokens, the second run reuses all but the last (%d)", st1.n_prompt,
	   st2.n_prefilled);

	/* cancellation before the first layer leaves the sequence as it was */
	atomic_bool cancel;
	atomic_init(&cancel, true);
	gen_reset(g);
	gen_set_sequence(g, ia, na, NULL, NULL, err);
	struct gen_stats st3;
	rc = gen_run(g, ib, nb, 8, NULL, NULL, &cancel, &st3, err);
	ok(rc == DT_OK && st3.cancelled && st3.n_gen == 0 && gen_n_tokens(g) == na,
	   "a cancelled run keeps the cached %d tokens (has %d)", na, gen_n_tokens(g));
	atomic_store(&cancel, false);
	rc = gen_run(g, ib, nb, 2, NULL, NULL, &cancel, &st3, err);
	ok(rc == DT_OK && !st3.cancelled && st3.n_prefilled == nb - na,
	   "after a cancel the next run goes on from the cache");

	/* a context too small for the prompt is a reported error */
	gen_set_n_ctx(g, 4);
	rc = gen_run(g, ia, na, 2, NULL, NULL, NULL, &st3, err);
	ok(rc == DT_ERR_FULL && strstr(err, "context full"), "a full context is reported (%s)", err);

	free(ia);
	free(ib);
	free(ic);
	free(l1);
	free(l2);
	gen_free(g);
	return tap_done();
}
