/*
 * sampler.c — next-token selection (see sampler.h for the order of
 * operations and the stateless random numbers).
 *
 * DESIGN
 * A call copies the logits into the scratch (NaN -> -inf, +inf -> FLT_MAX),
 * applies the repetition penalty to the distinct recent tokens, and then
 * works on a candidate list `ids` sorted best first (higher logit, then
 * lower id: a total order, so equal inputs give equal outputs everywhere).
 * The vocabulary is never sorted whole:
 *   top-k on       a heap selects the k best (O(n log k)), sorted best
 *                  first; top-p and min-p cut that list.
 *   top-k off      top-p and min-p each keep a prefix of the sorted order, so
 *                  the kept set is the shorter prefix, and a prefix is known
 *                  by its last token.  min-p is a logit threshold.  For top-p
 *                  one pass adds each token's mass into a histogram over
 *                  (lmax - logit) in bins of 1/BIN_SCALE; the bin where the
 *                  mass from the top crosses top_p is the only one sorted,
 *                  to find the last kept token.  The draw then walks the
 *                  vocabulary in id order over the kept tokens.  O(n) plus
 *                  one bin (all of n only when every logit is within one bin).
 *   no truncation  the same walk in id order, nothing kept out.
 * The temperature reshapes the surviving candidates; the draw picks the first
 * candidate whose cumulative weight exceeds u * total, u from the hash.
 */
#include "config.h"

#include "sampler.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Nucleus histogram: bins of 1/BIN_SCALE logit below the max; everything
 * beyond N_BINS/BIN_SCALE = 32 (mass < e^-32 each) shares the last bin. */
#define BIN_SCALE 64
#define N_BINS 2048

struct sampler_work {
	int32_t n_vocab;  /* capacity of the buffers below */
	float *logits;    /* (n_vocab) sanitised, penalised copy of the logits */
	int32_t *ids;     /* (n_vocab) candidate ids, best first */
	double *weights;  /* (n_vocab) candidate weights exp((l - max) / T) */
	uint32_t *seen;   /* (n_vocab) stamp of the last call that penalised the token */
	uint32_t stamp;   /* this call's stamp (never 0) */
	double bin_mass[N_BINS];   /* nucleus histogram: sum of exp(l - lmax) per bin */
	int32_t bin_count[N_BINS]; /* tokens per bin */
};

struct sampler_params sampler_default_params(void)
{
	return (struct sampler_params){
		.temp = 0.8f,
		.top_k = 40,
		.top_p = 0.95f,
		.min_p = 0.05f,
		.repeat_penalty = 1.0f,
		.repeat_last_n = 64,
		.seed = 0xdef7ee,
	};
}

int sampler_params_check(const struct sampler_params *p, char *err)
{
	if (!isfinite(p->temp) || p->temp < 0)
		return dt_err(err, "temperature must be >= 0 (found %g)", (double)p->temp);
	if (p->top_k < 0)
		return dt_err(err, "top-k must be >= 0, 0 = off (found %d)", (int)p->top_k);
	if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1)
		return dt_err(err, "top-p must be in (0, 1], 1 = off (found %g)", (double)p->top_p);
	if (!isfinite(p->min_p) || p->min_p < 0 || p->min_p > 1)
		return dt_err(err, "min-p must be in [0, 1], 0 = off (found %g)", (double)p->min_p);
	if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
		return dt_err(err, "repeat penalty must be > 0, 1 = off (found %g)",
			      (double)p->repeat_penalty);
	if (p->repeat_last_n < -1)
		return dt_err(err, "repeat-last-n must be >= -1, -1 = all, 0 = off (found %d)",
			      (int)p->repeat_last_n);
	return 0;
}

int sampler_params_set(struct sampler_params *p, const char *name, const char *value, char *err)
{
	struct sampler_params q = *p;
	char *end = NULL;
	errno = 0;
	if (!value || !*value)
		return dt_err(err, "%s: missing value", name);
	if (!strcmp(name, "temp") || !strcmp(name, "top-p") || !strcmp(name, "min-p") ||
	    !strcmp(name, "repeat-penalty")) {
		double v = strtod(value, &end);
		if (*end || errno)
			return dt_err(err, "%s: not a number (found '%s')", name, value);
		float f = (float)v;
		if (!strcmp(name, "temp"))
			q.temp = f;
		else if (!strcmp(name, "top-p"))
			q.top_p = f;
		else if (!strcmp(name, "min-p"))
			q.min_p = f;
		else
			q.repeat_penalty = f;
	} else if (!strcmp(name, "top-k") || !strcmp(name, "repeat-last-n")) {
		long long v = strtoll(value, &end, 10);
		if (*end || errno || v < INT32_MIN || v > INT32_MAX)
			return dt_err(err, "%s: not an integer (found '%s')", name, value);
		if (!strcmp(name, "top-k"))
			q.top_k = (int32_t)v;
		else
			q.repeat_last_n = (int32_t)v;
	} else if (!strcmp(name, "seed")) {
		if (*value == '-')
			return dt_err(err, "seed: expected an unsigned integer (found '%s')", value);
		unsigned long long v = strtoull(value, &end, 0);
		if (*end || errno)
			return dt_err(err, "seed: not an unsigned integer (found '%s')", value);
		q.seed = (uint64_t)v;
	} else {
		return dt_err(err, "unknown sampler setting '%s' (expected temp, top-k, top-p, min-p, "
				   "repeat-penalty, repeat-last-n or seed)", name);
	}
	if (sampler_params_check(&q, err) < 0)
		return -1;
	*p = q;
	return 0;
}

void sampler_params_describe(const struct sampler_params *p, char *buf, size_t n)
{
	snprintf(buf, n,
		 "temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g, repeat-last-n %d, seed %llu",
		 (double)p->temp, (int)p->top_k, (double)p->top_p, (double)p->min_p,
		 (double)p->repeat_penalty, (int)p->repeat_last_n, (unsigned long long)p->seed);
}

struct sampler_work *sampler_work_new(int32_t n_vocab)
{
	DT_ASSERT(n_vocab > 0);
	struct sampler_work *w = xcalloc(1, sizeof(*w));
	w->n_vocab = n_vocab;
	w->logits = xmallocarray((size_t)n_vocab, sizeof(*w->logits));
	w->ids = xmallocarray((size_t)n_vocab, sizeof(*w->ids));
	w->weights = xmallocarray((size_t)n_vocab, sizeof(*w->weights));
	w->seen = xcalloc((size_t)n_vocab, sizeof(*w->seen));
	w->stamp = 0;
	return w;
}

void sampler_work_free(struct sampler_work *w)
{
	if (!w)
		return;
	free(w->logits);
	free(w->ids);
	free(w->weights);
	free(w->seen);
	free(w);
}

// ---- random numbers

static inline uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double sampler_uniform(uint64_t seed, uint64_t stream, int32_t pos)
{
	uint64_t h = splitmix64(seed);
	h = splitmix64(h ^ stream);
	h = splitmix64(h ^ (uint64_t)(uint32_t)pos);
	return (double)(h >> 11) * 0x1.0p-53;
}

// ---- selection

/* The candidate order: higher logit first, then lower id; NaN last. */
static inline bool better(const float *l, int32_t a, int32_t b)
{
	float x = l[a], y = l[b];
	if (x > y)
		return true;
	if (x == y)
		return a < b;
	if (x < y)
		return false;
	return isnan(y) && (!isnan(x) || a < b); /* NaN sorts last */
}

/* Heap with the worst kept candidate at the root. */
static void sift_down(const float *l, int32_t *h, int32_t n, int32_t i)
{
	for (;;) {
		int32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && better(l, h[c], h[c + 1]))
			c++; /* the worse child */
		if (!better(l, h[i], h[c]))
			break;
		int32_t t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

/* A heap h[0..n) -> sorted best first (the worst goes to the end first). */
static void heap_extract(const float *l, int32_t *h, int32_t n)
{
	for (int32_t end = n - 1; end > 0; end--) {
		int32_t t = h[0];
		h[0] = h[end];
		h[end] = t;
		sift_down(l, h, end, 0);
	}
}

/* h[0..n) (ids) sorted best first: heap sort. */
static void sort_ids(const float *l, int32_t *h, int32_t n)
{
	for (int32_t i = n / 2 - 1; i >= 0; i--)
		sift_down(l, h, n, i);
	heap_extract(l, h, n);
}

/* ids[0..k) <- the k best of l[0..n), best first.  O(n log k). */
static void select_top(const float *l, int32_t n, int32_t k, int32_t *ids)
{
	DT_ASSERT(k >= 1 && k <= n);
	for (int32_t i = 0; i < k; i++)
		ids[i] = i;
	for (int32_t i = k / 2 - 1; i >= 0; i--)
		sift_down(l, ids, k, i);
	for (int32_t i = k; i < n; i++) {
		if (better(l, i, ids[0])) {
			ids[0] = i;
			sift_down(l, ids, k, 0);
		}
	}
	heap_extract(l, ids, k);
}

static int32_t argmax(const float *l, int32_t n)
{
	int32_t best = 0;
	for (int32_t i = 1; i < n; i++)
		if (l[i] > l[best])
			best = i;
	return best;
}

static inline int bin_of(float l, float lmax)
{
	float d = (lmax - l) * BIN_SCALE;
	return d < N_BINS - 1 ? (int)d : N_BINS - 1; /* also inf */
}

/* Top-p over the whole vocabulary: the last token of the smallest prefix of
 * the sorted order whose mass reaches top_p (see DESIGN). */
static int32_t nucleus_last(const struct sampler_params *p, struct sampler_work *w, int32_t n,
			    float lmax)
{
	const float *l = w->logits;
	memset(w->bin_mass, 0, sizeof(w->bin_mass));
	memset(w->bin_count, 0, sizeof(w->bin_count));
	double z = 0;
	for (int32_t i = 0; i < n; i++) {
		double e = expf(l[i] - lmax);
		int b = bin_of(l[i], lmax);
		z += e;
		w->bin_mass[b] += e;
		w->bin_count[b]++;
	}
	double target = (double)p->top_p * z, cum = 0;
	int b = 0, last_nonempty = 0;
	for (; b < N_BINS; b++) {
		if (w->bin_count[b])
			last_nonempty = b;
		if (cum + w->bin_mass[b] >= target && w->bin_count[b])
			break;
		cum += w->bin_mass[b];
	}
	if (b == N_BINS) /* rounding: the mass never reached the target */
		b = last_nonempty;
	int32_t c = 0;
	for (int32_t i = 0; i < n; i++)
		if (bin_of(l[i], lmax) == b)
			w->ids[c++] = i;
	sort_ids(l, w->ids, c);
	for (int32_t j = 0; j < c; j++) {
		cum += expf(l[w->ids[j]] - lmax);
		if (cum >= target)
			return w->ids[j];
	}
	return w->ids[c - 1];
}

/* Length of the prefix of ids[0..k) that top-p then min-p keep (>= 1).
 * z: the sum of exp(l - lmax) over the set top-p normalises by. */
static int32_t cut_prefix(const struct sampler_params *p, const float *l, const int32_t *ids,
			  int32_t k, float lmax, double z)
{
	int32_t len = k;
	if (p->top_p < 1.0f) {
		double cum = 0;
		for (int32_t i = 0; i < k; i++) {
			cum += (double)expf(l[ids[i]] - lmax) / z;
			if (cum >= (double)p->top_p) {
				len = i + 1;
				break;
			}
		}
	}
	if (p->min_p > 0.0f) {
		float thr = lmax + logf(p->min_p); /* p_i >= min_p * p_max */
		for (int32_t i = 0; i < len; i++) {
			if (l[ids[i]] < thr) {
				len = i;
				break;
			}
		}
	}
	return len > 0 ? len : 1;
}

// ---- the sampler

static void apply_penalty(const struct sampler_params *p, struct sampler_work *w, int32_t n_vocab,
			  const int32_t *history, int32_t n_history)
{
	if (p->repeat_penalty == 1.0f || p->repeat_last_n == 0 || n_history <= 0 || !history)
		return;
	int32_t n = p->repeat_last_n < 0 ? n_history : DT_MIN(p->repeat_last_n, n_history);
	if (++w->stamp == 0) { /* wrapped: forget old stamps */
		memset(w->seen, 0, (size_t)w->n_vocab * sizeof(*w->seen));
		w->stamp = 1;
	}
	for (int32_t i = n_history - n; i < n_history; i++) {
		int32_t t = history[i];
		if (t < 0 || t >= n_vocab || w->seen[t] == w->stamp)
			continue;
		w->seen[t] = w->stamp;
		float *x = &w->logits[t];
		if (*x > 0)
			*x /= p->repeat_penalty;
		else
			*x *= p->repeat_penalty;
	}
}

/* Picks the first index whose cumulative weight exceeds u * total. */
static int32_t draw(const double *weights, int32_t n, double total, double u)
{
	double target = u * total, cum = 0;
	int32_t last = 0;
	for (int32_t i = 0; i < n; i++) {
		if (weights[i] <= 0)
			continue;
		last = i;
		cum += weights[i];
		if (cum > target)
			return i;
	}
	return last; /* rounding: the last candidate with weight */
}

int32_t sampler_sample(const struct sampler_params *p, const float *logits, int32_t n_vocab,
		       const int32_t *history, int32_t n_history, uint64_t stream, int32_t pos,
		       float *prob_out, struct sampler_work *w)
{
	DT_ASSERT(n_vocab > 0);
	bool penalty = p->repeat_penalty != 1.0f && p->repeat_last_n != 0 && n_history > 0;
	if (p->temp <= 0 && !penalty && !prob_out) /* plain greedy: no copy needed */
		return sampler_greedy(logits, n_vocab);
	struct sampler_work *own = NULL;
	if (!w)
		w = own = sampler_work_new(n_vocab);
	DT_ASSERT(n_vocab <= w->n_vocab);

	float *l = w->logits;
	for (int32_t i = 0; i < n_vocab; i++) { /* branch-free, so that it vectorises */
		float x = logits[i];
		float y = x > FLT_MAX ? FLT_MAX : x;
		l[i] = x == x ? y : -INFINITY;
	}
	apply_penalty(p, w, n_vocab, history, n_history);
	/* the best token: the first of the top-k selection, else a pass */
	bool topk = p->temp > 0 && p->top_k > 0 && p->top_k < n_vocab;
	if (topk)
		select_top(l, n_vocab, p->top_k, w->ids);
	int32_t imax = topk ? w->ids[0] : argmax(l, n_vocab);
	float lmax = l[imax];
	if (lmax == -INFINITY) { /* nothing is possible: see sampler.h */
		if (prob_out)
			*prob_out = 0;
		sampler_work_free(own);
		return 0;
	}

	int32_t tok;
	if (p->temp <= 0) {
		tok = imax;
	} else {
		int32_t n_cand = 0; /* > 0: candidates in w->ids (top-k path) */
		if (topk) {
			double z = 0;
			for (int32_t i = 0; i < p->top_k; i++)
				z += expf(l[w->ids[i]] - lmax);
			n_cand = cut_prefix(p, l, w->ids, p->top_k, lmax, z);
		}
		double inv_t = 1.0 / p->temp, total = 0;
		double u = sampler_uniform(p->seed, stream, pos);
		if (n_cand > 0) {
			for (int32_t i = 0; i < n_cand; i++) {
				w->weights[i] = exp((double)(l[w->ids[i]] - lmax) * inv_t);
				total += w->weights[i];
			}
			tok = w->ids[draw(w->weights, n_cand, total, u)];
		} else {
			/* kept: l >= thr (min-p) and not after `last` in the order (top-p) */
			int32_t last = p->top_p < 1.0f ? nucleus_last(p, w, n_vocab, lmax) : -1;
			float l_last = last >= 0 ? l[last] : -INFINITY;
			float thr = p->min_p > 0.0f ? lmax + logf(p->min_p) : -INFINITY;
			for (int32_t i = 0; i < n_vocab; i++) {
				float x = l[i];
				bool kept = x >= thr &&
					    (last < 0 || x > l_last || (x == l_last && i <= last));
				w->weights[i] = kept ? expf((float)((double)(x - lmax) * inv_t)) : 0.0;
				total += w->weights[i];
			}
			tok = draw(w->weights, n_vocab, total, u);
		}
	}

	if (prob_out) {
		double inv_t = p->temp > 0 ? 1.0 / p->temp : 1.0, z = 0;
		for (int32_t i = 0; i < n_vocab; i++)
			z += expf((float)((double)(l[i] - lmax) * inv_t));
		*prob_out = (float)(exp((double)(l[tok] - lmax) * inv_t) / z);
	}
	sampler_work_free(own);
	return tok;
}

int32_t sampler_greedy(const float *logits, int32_t n)
{
	int32_t best = -1;
	for (int32_t i = 0; i < n; i++) {
		if (isnan(logits[i]))
			continue;
		if (best < 0 || logits[i] > logits[best])
			best = i;
	}
	return best < 0 ? 0 : best;
}

int32_t sampler_topk_alternatives(const float *logits, int32_t n_vocab, int32_t k, int32_t *ids_out,
				  float *probs_out)
{
	if (k <= 0 || n_vocab <= 0)
		return 0;
	k = DT_MIN(k, n_vocab);
	int32_t best = sampler_greedy(logits, n_vocab);
	float lmax = logits[best];
	select_top(logits, n_vocab, k, ids_out);
	if (probs_out) {
		double z = 0;
		bool finite_max = isfinite(lmax);
		for (int32_t i = 0; i < n_vocab; i++) {
			float x = logits[i];
			if (isnan(x))
				continue;
			z += finite_max ? expf(x - lmax) : (x == lmax ? 1.0 : 0.0);
		}
		for (int32_t i = 0; i < k; i++) {
			float x = logits[ids_out[i]];
			double e = isnan(x) ? 0 : finite_max ? expf(x - lmax) : (x == lmax ? 1.0 : 0.0);
			probs_out[i] = z > 0 ? (float)(e / z) : 0.0f;
		}
	}
	return k;
}
