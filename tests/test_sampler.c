/*
 * test_sampler.c — greedy, truncation, temperature, the stateless random
 * draws, repetition penalty and non-finite logits of src/sampler.c, against a
 * reference that sorts the whole vocabulary in double precision.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "sampler.h"
#include "tap.h"

// ---- fixtures

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_unif(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53;
}

/* Gaussian logits with standard deviation sd (Box-Muller). */
static void random_logits(float *l, int32_t n, double sd)
{
	for (int32_t i = 0; i < n; i++) {
		double u1 = rng_unif(), u2 = rng_unif();
		if (u1 < 1e-300)
			u1 = 1e-300;
		l[i] = (float)(sd * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
	}
}

static const float *cmp_logits;

static int cmp_desc(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (cmp_logits[x] != cmp_logits[y])
		return cmp_logits[x] > cmp_logits[y] ? -1 : 1;
	return x < y ? -1 : 1;
}

/* Reference: the distribution the sampler draws from (probs[n], zeros where
 * truncated), built by sorting everything.  Returns the kept count. */
static int32_t ref_dist(const struct sampler_params *p, const float *l, int32_t n, double *probs)
{
	int32_t *ids = xmallocarray((size_t)n, sizeof(*ids));
	for (int32_t i = 0; i < n; i++)
		ids[i] = i;
	cmp_logits = l;
	qsort(ids, (size_t)n, sizeof(*ids), cmp_desc);
	float lmax = l[ids[0]];
	int32_t k = p->top_k > 0 && p->top_k < n ? p->top_k : n, len = k;
	double z = 0;
	for (int32_t i = 0; i < k; i++)
		z += exp((double)l[ids[i]] - lmax);
	if (p->top_p < 1) {
		double cum = 0;
		for (int32_t i = 0; i < k; i++) {
			cum += exp((double)l[ids[i]] - lmax) / z;
			if (cum >= p->top_p) {
				len = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0)
		for (int32_t i = 0; i < len; i++)
			if (l[ids[i]] < lmax + logf(p->min_p)) {
				len = i;
				break;
			}
	if (len < 1)
		len = 1;
	memset(probs, 0, (size_t)n * sizeof(*probs));
	double t = 0;
	for (int32_t i = 0; i < len; i++)
		t += probs[ids[i]] = exp(((double)l[ids[i]] - lmax) / p->temp);
	for (int32_t i = 0; i < len; i++)
		probs[ids[i]] /= t;
	free(ids);
	return len;
}

static struct sampler_params plain(float temp)
{
	struct sampler_params p = sampler_default_params();
	p.temp = temp;
	p.top_k = 0;
	p.top_p = 1;
	p.min_p = 0;
	p.repeat_penalty = 1;
	return p;
}

/* Draws n_draws tokens at positions 0.. and counts them (counts: n). */
static void draw_counts(const struct sampler_params *p, const float *l, int32_t n, uint64_t stream,
			int32_t n_draws, int64_t *counts, struct sampler_work *w)
{
	memset(counts, 0, (size_t)n * sizeof(*counts));
	for (int32_t i = 0; i < n_draws; i++) {
		int32_t t = sampler_sample(p, l, n, NULL, 0, stream, i, NULL, w);
		if (t >= 0 && t < n)
			counts[t]++;
	}
}

/* Every kept token within 6 standard deviations of its expectation (plus 2
 * for the discreteness) and no truncated token drawn at all.  Returns the
 * worst deviation in standard deviations through *worst. */
static bool counts_match(const int64_t *counts, const double *probs, int32_t n, int32_t n_draws,
			 double *worst, int32_t *bad_id)
{
	*worst = 0;
	*bad_id = -1;
	for (int32_t i = 0; i < n; i++) {
		double e = probs[i] * n_draws, sd = sqrt(n_draws * probs[i] * (1 - probs[i]));
		if (probs[i] == 0) {
			if (counts[i] != 0) {
				*bad_id = i;
				return false;
			}
			continue;
		}
		double dev = fabs((double)counts[i] - e);
		if (sd > 0 && dev / sd > *worst)
			*worst = dev / sd;
		if (dev > 6 * sd + 2) {
			*bad_id = i;
			return false;
		}
	}
	return true;
}

// ---- tests

static void test_greedy(void)
{
	float l[8] = { 0.5f, 3.0f, -1.0f, 3.0f, 2.9f, NAN, 3.0f, 0 };
	ok(sampler_greedy(l, 8) == 1, "greedy: argmax with ties to the lowest id (expected 1, got %d)",
	   (int)sampler_greedy(l, 8));

	float big[1000];
	int agree_t0 = 1, agree_k1 = 1;
	for (int trial = 0; trial < 50; trial++) {
		random_logits(big, 1000, 2.0);
		if (trial % 5 == 0) { /* ties at the top */
			int32_t g = sampler_greedy(big, 1000);
			big[999] = big[g];
			big[g / 2] = big[g];
		}
		int32_t g = sampler_greedy(big, 1000);
		struct sampler_params p = sampler_default_params();
		p.temp = 0;
		if (sampler_sample(&p, big, 1000, NULL, 0, 7, trial, NULL, NULL) != g)
			agree_t0 = 0;
		p.temp = 1.5f;
		p.top_k = 1;
		if (sampler_sample(&p, big, 1000, NULL, 0, 7, trial, NULL, NULL) != g)
			agree_k1 = 0;
	}
	ok(agree_t0, "temp 0 gives the greedy token on 50 random rows (ties included)");
	ok(agree_k1, "top_k 1 at temp 1.5 gives the greedy token on 50 random rows (ties included)");
}

static void test_determinism(void)
{
	enum { N = 300 };
	float l[N];
	random_logits(l, N, 0.5); /* flat: many likely tokens */
	struct sampler_params p = plain(1.0f);
	struct sampler_work *w = sampler_work_new(N);
	int same = 1, same_nowork = 1;
	for (int32_t pos = 0; pos < 100; pos++) {
		int32_t a = sampler_sample(&p, l, N, NULL, 0, 3, pos, NULL, w);
		int32_t b = sampler_sample(&p, l, N, NULL, 0, 3, pos, NULL, w);
		int32_t c = sampler_sample(&p, l, N, NULL, 0, 3, pos, NULL, NULL);
		same &= a == b;
		same_nowork &= a == c;
	}
	ok(same, "same (seed, stream, pos) gives the same token, 100 positions");
	ok(same_nowork, "a reused scratch and a fresh one give the same tokens");
	ok(sampler_uniform(1, 2, 3) == sampler_uniform(1, 2, 3) && sampler_uniform(1, 2, 3) >= 0 &&
		   sampler_uniform(1, 2, 3) < 1,
	   "sampler_uniform is a pure function with values in [0, 1)");

	/* interleaving: drawing stream 9 between the draws of stream 3 changes nothing */
	int inter = 1;
	for (int32_t pos = 0; pos < 50; pos++) {
		int32_t a = sampler_sample(&p, l, N, NULL, 0, 3, pos, NULL, w);
		(void)sampler_sample(&p, l, N, NULL, 0, 9, pos, NULL, w);
		inter &= a == sampler_sample(&p, l, N, NULL, 0, 3, pos, NULL, NULL);
	}
	ok(inter, "draws of another stream in between do not change a stream's tokens");

	int equal = 0, equal_seed = 0;
	for (int32_t pos = 0; pos < 400; pos++) {
		int32_t a = sampler_sample(&p, l, N, NULL, 0, 0, pos, NULL, w);
		equal += a == sampler_sample(&p, l, N, NULL, 0, 1, pos, NULL, w);
		struct sampler_params q = p;
		q.seed = p.seed + 1;
		equal_seed += a == sampler_sample(&q, l, N, NULL, 0, 0, pos, NULL, w);
	}
	/* the chance of equal tokens is sum p_i^2, about 1/200 here */
	ok(equal < 40, "streams 0 and 1 draw different tokens (equal at %d of 400 positions, expected < 40)",
	   equal);
	ok(equal_seed < 40, "seeds s and s+1 draw different tokens (equal at %d of 400, expected < 40)",
	   equal_seed);

	/* the uniform numbers of one stream over positions look uniform: 10 bins */
	int64_t bins[10] = { 0 };
	for (int32_t pos = 0; pos < 100000; pos++)
		bins[(int)(sampler_uniform(42, 5, pos) * 10)]++;
	int flat = 1;
	for (int b = 0; b < 10; b++) /* sd = sqrt(1e5 * .1 * .9) = 95 */
		flat &= llabs(bins[b] - 10000) < 600;
	ok(flat, "uniform numbers over 100000 positions fill 10 bins evenly (within 6 sd)");
	sampler_work_free(w);
}

static void test_distribution(const char *what, struct sampler_params p, int32_t n, double sd,
			      int32_t n_draws)
{
	float *l = xmallocarray((size_t)n, sizeof(*l));
	double *probs = xmallocarray((size_t)n, sizeof(*probs));
	int64_t *counts = xmallocarray((size_t)n, sizeof(*counts));
	random_logits(l, n, sd);
	int32_t kept = ref_dist(&p, l, n, probs);
	struct sampler_work *w = sampler_work_new(n);
	draw_counts(&p, l, n, 11, n_draws, counts, w);
	double worst;
	int32_t bad;
	bool good = counts_match(counts, probs, n, n_draws, &worst, &bad);
	ok(good, "%s: %d draws match the reference distribution over %d kept tokens "
		 "(worst %.2f sd%s)",
	   what, n_draws, kept, worst, good ? "" : ", FAILED");
	if (!good)
		diag("token %d: count %lld, expected %.1f", bad, (long long)counts[bad],
		     probs[bad] * n_draws);
	sampler_work_free(w);
	free(l);
	free(probs);
	free(counts);
}

/* Flat rows with top-k off: the nucleus holds thousands of tokens (spread
 * over many histogram bins).  Checked by the support (no token
 * outside the reference set) and by 10 bins of equal reference mass. */
static void test_wide_nucleus(void)
{
	enum { N = 6000, DRAWS = 20000 };
	float *l = xmallocarray(N, sizeof(*l));
	double *probs = xmallocarray(N, sizeof(*probs));
	int64_t *counts = xmallocarray(N, sizeof(*counts));
	random_logits(l, N, 0.3);
	struct sampler_params p = plain(0.9f);
	p.top_p = 0.7f;
	int32_t kept = ref_dist(&p, l, N, probs);
	draw_counts(&p, l, N, 4, DRAWS, counts, NULL);
	int outside = 0;
	for (int32_t i = 0; i < N; i++)
		outside += probs[i] == 0 && counts[i] != 0;
	ok(kept > 1000 && outside == 0,
	   "top-p 0.7 on a flat row keeps %d tokens (> 1000), none drawn outside them (%d)", kept,
	   outside);
	/* bins by id order, 10 of them, of roughly equal mass */
	double bin_p[10] = { 0 };
	int64_t bin_c[10] = { 0 };
	double cum = 0;
	for (int32_t i = 0; i < N; i++) {
		int b = (int)(cum * 10);
		if (b > 9)
			b = 9;
		bin_p[b] += probs[i];
		bin_c[b] += counts[i];
		cum += probs[i];
	}
	int good = 1;
	for (int b = 0; b < 10; b++) {
		double e = bin_p[b] * DRAWS, s = sqrt(DRAWS * bin_p[b] * (1 - bin_p[b]));
		good &= fabs((double)bin_c[b] - e) <= 6 * s + 2;
	}
	ok(good, "top-p 0.7 on a flat row: 10 bins of the kept tokens match their mass (6 sd)");
	free(l);
	free(probs);
	free(counts);

	/* all logits equal: one bin, the tie order (lower id first) decides */
	enum { M = 1000 };
	float flat[M];
	int64_t c[M];
	for (int32_t i = 0; i < M; i++)
		flat[i] = 1.25f;
	p = plain(1.0f);
	p.top_p = 0.4995f; /* 500 tokens of 0.001 reach it, 499 do not */
	draw_counts(&p, flat, M, 0, 5000, c, NULL);
	int below = 1, lo = 0, hi = 0;
	for (int32_t i = 0; i < M; i++) {
		below &= i < 500 || c[i] == 0;
		lo += i < 250 ? (int)c[i] : 0;
		hi += i >= 250 && i < 500 ? (int)c[i] : 0;
	}
	ok(below && lo > 2000 && hi > 2000,
	   "top-p on 1000 equal logits keeps exactly ids 0..499 (draws in 0..249: %d, 250..499: %d)",
	   lo, hi);
}

static void test_truncation(void)
{
	/* probabilities 0.5 0.3 0.15 0.05 */
	float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
	int64_t c[4];
	struct sampler_params p = plain(1.0f);

	p.top_p = 0.75f;
	draw_counts(&p, l, 4, 0, 2000, c, NULL);
	ok(c[0] > 0 && c[1] > 0 && c[2] == 0 && c[3] == 0,
	   "top-p 0.75 over (.5 .3 .15 .05) keeps {0,1} (counts %lld %lld %lld %lld)",
	   (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3]);
	p.top_p = 0.85f;
	draw_counts(&p, l, 4, 0, 2000, c, NULL);
	ok(c[2] > 0 && c[3] == 0, "top-p 0.85 keeps {0,1,2} (counts %lld %lld %lld %lld)",
	   (long long)c[0], (long long)c[1], (long long)c[2], (long long)c[3]);
	p.top_p = 0.4f;
	draw_counts(&p, l, 4, 0, 500, c, NULL);
	ok(c[0] == 500, "top-p 0.4 keeps only the top token (it alone reaches 0.4)");

	p = plain(1.0f);
	p.min_p = 0.2f; /* keeps p >= 0.1 */
	draw_counts(&p, l, 4, 0, 2000, c, NULL);
	ok(c[2] > 0 && c[3] == 0, "min-p 0.2 drops 0.05 < 0.2*0.5 and keeps 0.15 (counts %lld %lld)",
	   (long long)c[2], (long long)c[3]);
	p.min_p = 0.5f; /* keeps p >= 0.25 */
	draw_counts(&p, l, 4, 0, 2000, c, NULL);
	ok(c[1] > 0 && c[2] == 0 && c[3] == 0, "min-p 0.5 keeps {0,1}");

	p = plain(1.0f);
	p.top_k = 2;
	draw_counts(&p, l, 4, 0, 2000, c, NULL);
	ok(c[1] > 0 && c[2] == 0 && c[3] == 0, "top-k 2 keeps {0,1}");
	/* top-p after top-k renormalises over the k: .5/.8 = .625 >= .6 */
	p.top_p = 0.6f;
	draw_counts(&p, l, 4, 0, 500, c, NULL);
	ok(c[0] == 500, "top-p 0.6 after top-k 2 measures mass within the two (keeps one)");
}

static void test_penalty(void)
{
	struct sampler_params p = plain(0);
	p.repeat_penalty = 2.0f;
	p.repeat_last_n = 64;
	float a[4] = { 2.0f, 1.5f, -1.0f, -1.2f };
	int32_t h0[1] = { 0 };
	ok(sampler_sample(&p, a, 4, h0, 1, 0, 0, NULL, NULL) == 1,
	   "penalty 2 divides a positive logit: 2.0 -> 1.0 < 1.5");
	float b[2] = { -1.0f, -1.5f };
	ok(sampler_sample(&p, b, 2, h0, 1, 0, 0, NULL, NULL) == 1,
	   "penalty 2 multiplies a negative logit: -1.0 -> -2.0 < -1.5");
	int32_t h1[3] = { 0, 5, 3 };
	p.repeat_last_n = 2;
	ok(sampler_sample(&p, a, 4, h1, 3, 0, 0, NULL, NULL) == 0,
	   "repeat_last_n 2 ignores older tokens (and ids out of range)");
	p.repeat_last_n = -1;
	ok(sampler_sample(&p, a, 4, h1, 3, 0, 0, NULL, NULL) == 1, "repeat_last_n -1 looks at all");
	p.repeat_last_n = 64;
	p.repeat_penalty = 1.5f;
	float c[2] = { 2.0f, 1.2f };
	int32_t h2[3] = { 0, 0, 0 };
	ok(sampler_sample(&p, c, 2, h2, 3, 0, 0, NULL, NULL) == 0,
	   "a token repeated 3 times is penalised once (2.0/1.5 > 1.2)");
	float before[2] = { c[0], c[1] };
	float prob;
	p.temp = 1;
	(void)sampler_sample(&p, c, 2, h2, 3, 0, 0, &prob, NULL);
	ok(c[0] == before[0] && c[1] == before[1], "the caller's logits are not modified");
	p.temp = 0;
	int32_t t = sampler_sample(&p, c, 2, h2, 3, 0, 0, &prob, NULL);
	double e0 = exp(2.0 / 1.5), e1 = exp(1.2);
	ok(t == 0 && fabs(prob - e0 / (e0 + e1)) < 1e-5,
	   "prob_out uses the penalised logits (expected %.5f, got %.5f)", e0 / (e0 + e1), prob);
}

static void test_prob_out(void)
{
	enum { N = 5000 };
	float l[N];
	random_logits(l, N, 3.0);
	struct sampler_params p = sampler_default_params();
	p.temp = 0.7f;
	double worst = 0;
	for (int32_t pos = 0; pos < 20; pos++) {
		float prob;
		int32_t t = sampler_sample(&p, l, N, NULL, 0, 1, pos, &prob, NULL);
		double lmax = l[sampler_greedy(l, N)], z = 0;
		for (int32_t i = 0; i < N; i++)
			z += exp((l[i] - lmax) / p.temp);
		double e = exp((l[t] - lmax) / p.temp) / z;
		if (fabs(prob - e) / e > worst)
			worst = fabs(prob - e) / e;
	}
	ok(worst < 1e-4, "prob_out is softmax(l / T) of the chosen token (worst relative error %.2g)",
	   worst);
}

static void test_alternatives(void)
{
	enum { N = 152064 };
	float *l = xmallocarray(N, sizeof(*l));
	random_logits(l, N, 2.0);
	for (int32_t i = 0; i < N; i++) /* coarse values: many ties */
		l[i] = roundf(l[i] * 8) / 8;
	int32_t ids[50], *ref = xmallocarray(N, sizeof(*ref));
	float probs[50];
	int32_t k = sampler_topk_alternatives(l, N, 50, ids, probs);
	for (int32_t i = 0; i < N; i++)
		ref[i] = i;
	cmp_logits = l;
	qsort(ref, N, sizeof(*ref), cmp_desc);
	double lmax = l[ref[0]], z = 0;
	for (int32_t i = 0; i < N; i++)
		z += exp(l[i] - lmax);
	int same = k == 50;
	double worst = 0;
	for (int32_t i = 0; same && i < 50; i++) {
		same &= ids[i] == ref[i];
		double e = exp(l[ids[i]] - lmax) / z;
		worst = DT_MAX(worst, fabs(probs[i] - e) / e);
	}
	ok(same, "top-50 alternatives over 152064 tied logits equal a full sort (ties to lower id)");
	ok(worst < 1e-4, "alternatives carry softmax probabilities at temperature 1 (worst rel %.2g)",
	   worst);
	ok(sampler_topk_alternatives(l, 3, 10, ids, NULL) == 3, "k larger than the vocabulary gives n");
	free(l);
	free(ref);

	float nan_row[5] = { NAN, 1.0f, NAN, 2.0f, 0.5f };
	k = sampler_topk_alternatives(nan_row, 5, 5, ids, probs);
	ok(k == 5 && ids[0] == 3 && ids[1] == 1 && ids[2] == 4 && probs[3] == 0 && probs[4] == 0,
	   "alternatives put NaN last with probability 0");
}

static void test_nonfinite(void)
{
	struct sampler_params p = sampler_default_params();
	float a[5] = { NAN, 1.0f, NAN, 0.5f, -INFINITY };
	int fine = 1;
	for (int32_t pos = 0; pos < 200; pos++) {
		int32_t t = sampler_sample(&p, a, 5, NULL, 0, 0, pos, NULL, NULL);
		fine &= t == 1 || t == 3;
	}
	ok(fine, "NaN and -inf logits are never drawn while finite ones exist");
	float b[4] = { 1.0f, INFINITY, 3.0f, INFINITY };
	int infs = 1;
	for (int32_t pos = 0; pos < 200; pos++) {
		int32_t t = sampler_sample(&p, b, 4, NULL, 0, 0, pos, NULL, NULL);
		infs &= t == 1 || t == 3;
	}
	ok(infs, "+inf logits take all the mass");
	float c[3] = { NAN, NAN, -INFINITY }, prob = 1;
	int32_t t = sampler_sample(&p, c, 3, NULL, 0, 0, 0, &prob, NULL);
	ok(t == 0 && prob == 0, "all NaN / -inf gives token 0 with probability 0 (got %d, %g)", (int)t,
	   (double)prob);
	p.temp = 0;
	ok(sampler_sample(&p, a, 5, NULL, 0, 0, 0, NULL, NULL) == 1, "greedy skips NaN");
	p = plain(1.0f);
	fine = 1;
	for (int32_t pos = 0; pos < 100; pos++) { /* the untruncated path */
		int32_t u = sampler_sample(&p, a, 5, NULL, 0, 0, pos, NULL, NULL);
		fine &= u == 1 || u == 3;
	}
	ok(fine, "NaN skipped without truncation too");
}

static void test_params(void)
{
	struct sampler_params p = sampler_default_params();
	char err[DT_ERR_LEN];
	ok(sampler_params_check(&p, err) == 0, "the default parameters are valid");
	ok(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f && p.min_p == 0.05f &&
		   p.repeat_penalty == 1.0f && p.repeat_last_n == 64,
	   "defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, penalty 1, last 64");
	p.temp = -1;
	ok(sampler_params_check(&p, err) < 0 && strstr(err, "temperature"),
	   "temp -1 is refused (%s)", err);
	p = sampler_default_params();
	p.top_p = 2;
	ok(sampler_params_check(&p, err) < 0 && strstr(err, "top-p"), "top-p 2 is refused (%s)", err);
	p.top_p = 0;
	ok(sampler_params_check(&p, err) < 0, "top-p 0 is refused");
	p = sampler_default_params();
	p.min_p = -0.1f;
	ok(sampler_params_check(&p, err) < 0 && strstr(err, "min-p"), "min-p -0.1 is refused");
	p = sampler_default_params();
	p.top_k = -2;
	ok(sampler_params_check(&p, err) < 0, "top-k -2 is refused");
	p = sampler_default_params();
	p.repeat_penalty = 0;
	ok(sampler_params_check(&p, err) < 0, "repeat penalty 0 is refused");
	p = sampler_default_params();
	p.temp = NAN;
	ok(sampler_params_check(&p, err) < 0, "temp NaN is refused");

	/* text settings, as typed */
	p = sampler_default_params();
	ok(sampler_params_set(&p, "temp", "0.25", err) == 0 && p.temp == 0.25f, "set temp 0.25");
	ok(sampler_params_set(&p, "top-k", "7", err) == 0 && p.top_k == 7, "set top-k 7");
	ok(sampler_params_set(&p, "seed", "0x10", err) == 0 && p.seed == 16, "set seed 0x10");
	ok(sampler_params_set(&p, "repeat-last-n", "-1", err) == 0 && p.repeat_last_n == -1,
	   "set repeat-last-n -1");
	struct sampler_params before = p;
	ok(sampler_params_set(&p, "top-p", "2", err) < 0 && strstr(err, "top-p") &&
		   !memcmp(&p, &before, sizeof(p)),
	   "set top-p 2 is refused and changes nothing (%s)", err);
	ok(sampler_params_set(&p, "temp", "0.5x", err) < 0 && p.temp == before.temp,
	   "set temp 0.5x is refused (%s)", err);
	ok(sampler_params_set(&p, "top-k", "1.5", err) < 0, "set top-k 1.5 is refused");
	ok(sampler_params_set(&p, "seed", "-3", err) < 0, "set seed -3 is refused");
	ok(sampler_params_set(&p, "temp", "", err) < 0, "an empty value is refused");
	ok(sampler_params_set(&p, "warmth", "1", err) < 0 && strstr(err, "warmth"),
	   "an unknown name is refused (%s)", err);
}

int main(void)
{
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	const char *env = getenv("DT_TEST_SEED");
	if (env)
		seed = strtoull(env, NULL, 0);
	rng_state = seed;
	diag("fixture seed %llu (set DT_TEST_SEED to repeat)", (unsigned long long)seed);
	tap_plan_lazy();

	test_greedy();
	test_determinism();

	struct sampler_params p = sampler_default_params(); /* k 40, p .95, min-p .05, T .8 */
	test_distribution("defaults", p, 1000, 2.0, 30000);
	p = plain(1.3f);
	test_distribution("no truncation, T 1.3", p, 50, 1.0, 30000);
	p = plain(0.6f);
	p.top_p = 0.9f;
	test_distribution("top-p 0.9 alone, T 0.6", p, 2000, 2.5, 30000);
	p = plain(1.0f);
	p.min_p = 0.1f;
	test_distribution("min-p 0.1 alone", p, 2000, 2.0, 30000);
	p = plain(0.5f);
	p.top_k = 10;
	p.top_p = 0.8f;
	p.min_p = 0.02f;
	test_distribution("top-k 10, top-p 0.8, min-p 0.02, T 0.5", p, 500, 1.5, 30000);
	test_wide_nucleus();

	test_truncation();
	test_penalty();
	test_prob_out();
	test_alternatives();
	test_nonfinite();
	test_params();
	return tap_done();
}
