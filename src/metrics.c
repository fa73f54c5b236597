/*
 * metrics.c — step history, per-branch token timestamps, summaries.
 *
 * DESIGN: the history is a growable array of steps; branches live in a
 * growable array in the order they were first seen, indexed by an
 * open-addressing hash table (id -> index + 1, 0 = empty) that doubles when
 * half full.  Nothing here reads the clock.
 */
#include "config.h"

#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

struct metrics {
	struct metrics_step *steps; /* (n_steps) */
	int64_t n_steps, cap_steps;
	struct metrics_branch *br;  /* (n_br) in order of first sight */
	int64_t n_br, cap_br;
	int64_t *slots;             /* (n_slots) branch index + 1, 0 = empty */
	int64_t n_slots;            /* power of two */
	int64_t prompt_tokens, prefill_ns;
};

uint64_t metrics_io_total(const struct metrics_io *io)
{
	return io->kv + io->q + io->mask + io->partial + io->inter + io->other;
}

// ---- statistics

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* nearest rank: the smallest value with at least pct% of the values <= it */
static int64_t rank_pct(const int64_t *sorted, int64_t n, int pct)
{
	int64_t r = (pct * n + 99) / 100; /* ceil(pct/100 * n), 1-based */
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return sorted[r - 1];
}

void metrics_stats_of(const int64_t *vals, int64_t n, struct metrics_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (n <= 0)
		return;
	int64_t *v = xmallocarray((size_t)n, sizeof(*v));
	memcpy(v, vals, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), cmp_i64);
	s->n = n;
	s->min = v[0];
	s->max = v[n - 1];
	for (int64_t i = 0; i < n; i++)
		s->total += v[i];
	s->mean = (double)s->total / (double)n;
	s->p50 = rank_pct(v, n, 50);
	s->p90 = rank_pct(v, n, 90);
	s->p99 = rank_pct(v, n, 99);
	free(v);
}

// ---- lifetime

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->n_slots = 64;
	m->slots = xcalloc((size_t)m->n_slots, sizeof(*m->slots));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->steps);
	free(m->br);
	free(m->slots);
	free(m);
}

void metrics_reset(struct metrics *m)
{
	m->n_steps = 0;
	m->n_br = 0;
	memset(m->slots, 0, (size_t)m->n_slots * sizeof(*m->slots));
	m->prompt_tokens = 0;
	m->prefill_ns = 0;
}

void metrics_prefill(struct metrics *m, int64_t n_tokens, int64_t ns)
{
	m->prompt_tokens += n_tokens;
	m->prefill_ns += ns;
}

// ---- steps

void metrics_step_add(struct metrics *m, const struct metrics_step *s)
{
	if (m->n_steps == m->cap_steps) {
		m->cap_steps = m->cap_steps ? 2 * m->cap_steps : 64;
		m->steps = xrealloc(m->steps, (size_t)m->cap_steps * sizeof(*m->steps));
	}
	m->steps[m->n_steps] = *s;
	m->steps[m->n_steps].step = m->n_steps;
	m->n_steps++;
}

int64_t metrics_n_steps(const struct metrics *m)
{
	return m->n_steps;
}

const struct metrics_step *metrics_step_at(const struct metrics *m, int64_t i)
{
	DT_ASSERT(i >= 0 && i < m->n_steps);
	return &m->steps[i];
}

const struct metrics_step *metrics_last_step(const struct metrics *m)
{
	return m->n_steps ? &m->steps[m->n_steps - 1] : NULL;
}

// ---- branches

static uint64_t hash_id(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int64_t find_slot(const struct metrics *m, uint64_t id)
{
	uint64_t mask = (uint64_t)m->n_slots - 1;
	for (uint64_t h = hash_id(id) & mask;; h = (h + 1) & mask) {
		int64_t s = m->slots[h];
		if (s == 0 || m->br[s - 1].id == id)
			return (int64_t)h;
	}
}

static void rehash(struct metrics *m)
{
	free(m->slots);
	m->n_slots *= 2;
	m->slots = xcalloc((size_t)m->n_slots, sizeof(*m->slots));
	for (int64_t i = 0; i < m->n_br; i++)
		m->slots[find_slot(m, m->br[i].id)] = i + 1;
}

static struct metrics_branch *branch_get_or_add(struct metrics *m, uint64_t id, int64_t t_ns,
						bool *added)
{
	int64_t h = find_slot(m, id);
	*added = false;
	if (m->slots[h])
		return &m->br[m->slots[h] - 1];
	if (m->n_br == m->cap_br) {
		m->cap_br = m->cap_br ? 2 * m->cap_br : 16;
		m->br = xrealloc(m->br, (size_t)m->cap_br * sizeof(*m->br));
	}
	struct metrics_branch *b = &m->br[m->n_br];
	memset(b, 0, sizeof(*b));
	b->id = id;
	b->t_start_ns = t_ns;
	m->slots[h] = ++m->n_br;
	*added = true;
	if (2 * m->n_br > m->n_slots) {
		rehash(m);
		b = &m->br[m->n_br - 1];
	}
	return b;
}

void metrics_branch_start(struct metrics *m, uint64_t id, int64_t t_ns)
{
	bool added;
	struct metrics_branch *b = branch_get_or_add(m, id, t_ns, &added);
	b->t_start_ns = t_ns;
	b->t_first_ns = b->t_last_ns = 0;
	b->n_tokens = 0;
}

void metrics_branch_tokens(struct metrics *m, uint64_t id, int64_t t_ns, int64_t n)
{
	DT_ASSERT(n >= 1);
	bool added;
	struct metrics_branch *b = branch_get_or_add(m, id, t_ns, &added);
	if (b->n_tokens == 0)
		b->t_first_ns = t_ns;
	b->t_last_ns = t_ns;
	b->n_tokens += n;
}

const struct metrics_branch *metrics_branch_get(const struct metrics *m, uint64_t id)
{
	int64_t h = find_slot(m, id);
	return m->slots[h] ? &m->br[m->slots[h] - 1] : NULL;
}

int64_t metrics_n_branches(const struct metrics *m)
{
	return m->n_br;
}

const struct metrics_branch *metrics_branch_at(const struct metrics *m, int64_t i)
{
	DT_ASSERT(i >= 0 && i < m->n_br);
	return &m->br[i];
}

bool metrics_branch_ttft(const struct metrics_branch *b, int64_t *ns)
{
	if (b->n_tokens < 1)
		return false;
	*ns = b->t_first_ns - b->t_start_ns;
	return true;
}

bool metrics_branch_tpot(const struct metrics_branch *b, int64_t *ns)
{
	if (b->n_tokens < 2)
		return false;
	*ns = (b->t_last_ns - b->t_first_ns) / (b->n_tokens - 1);
	return true;
}

// ---- summary

void metrics_summarize(const struct metrics *m, struct metrics_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->n_steps = m->n_steps;
	s->prompt_tokens = m->prompt_tokens;
	s->prefill_ns = m->prefill_ns;
	int64_t n = DT_MAX(m->n_steps, m->n_br);
	int64_t *v = xmallocarray((size_t)(n ? n : 1), sizeof(*v));
	double path = 0, tree = 0;
	int64_t attn = 0;
	for (int64_t i = 0; i < m->n_steps; i++) {
		const struct metrics_step *st = &m->steps[i];
		v[i] = st->wall_ns;
		s->wall_ns += st->wall_ns;
		attn += st->attn_ns;
		s->bytes += metrics_io_total(&st->io);
		s->bytes_seq += metrics_io_total(&st->io_seq);
		s->kv_bytes += st->io.kv;
		s->kv_bytes_seq += st->io_seq.kv;
		path += (double)st->path_tokens;
		tree += (double)st->tree_tokens;
	}
	metrics_stats_of(v, m->n_steps, &s->step);
	for (int64_t i = 0; i < m->n_steps; i++)
		v[i] = m->steps[i].attn_ns;
	metrics_stats_of(v, m->n_steps, &s->attn);
	int64_t nd = 0;
	for (int64_t i = 0; i < m->n_steps; i++)
		if (m->steps[i].attn_dev_ns > 0) {
			v[nd++] = m->steps[i].attn_dev_ns;
			s->kv_bytes_dev += m->steps[i].io.kv;
		}
	metrics_stats_of(v, nd, &s->attn_dev);
	int64_t k = 0;
	for (int64_t i = 0; i < m->n_br; i++) {
		s->tokens += m->br[i].n_tokens;
		if (metrics_branch_ttft(&m->br[i], &v[k]))
			k++;
	}
	metrics_stats_of(v, k, &s->ttft);
	k = 0;
	for (int64_t i = 0; i < m->n_br; i++)
		if (metrics_branch_tpot(&m->br[i], &v[k]))
			k++;
	metrics_stats_of(v, k, &s->tpot);
	free(v);
	s->io_ratio = s->bytes ? (double)s->bytes_seq / (double)s->bytes : 0;
	s->sharing = tree > 0 ? path / tree : 0;
	s->tokens_per_s = s->wall_ns > 0 ? (double)s->tokens / ((double)s->wall_ns * 1e-9) : 0;
	s->attn_share = s->wall_ns > 0 ? (double)attn / (double)s->wall_ns : 0;
}

const char *metrics_fmt_bytes(uint64_t bytes, char *buf, size_t cap)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)bytes;
	size_t u = 0;
	while (x >= 1024 && u + 1 < DT_ARRAY_LEN(unit)) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, cap, "%.*f %s", x < 10 ? 2 : x < 100 ? 1 : 0, x, unit[u]);
	return buf;
}

const char *metrics_fmt_ns(double ns, char *buf, size_t cap)
{
	if (ns < 1e3)
		snprintf(buf, cap, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, cap, "%.1f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, cap, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, cap, "%.3f s", ns / 1e9);
	return buf;
}

void metrics_print_summary(const struct metrics_summary *s, const char *prefix, FILE *out)
{
	char a[32], b[32], c[32], d[32];
	fprintf(out, "%ssteps %lld, tokens %lld (%.1f tok/s), prompt %lld tokens in %s\n", prefix,
		(long long)s->n_steps, (long long)s->tokens, s->tokens_per_s,
		(long long)s->prompt_tokens, metrics_fmt_ns((double)s->prefill_ns, a, sizeof(a)));
	fprintf(out, "%sstep time: mean %s, p50 %s, p90 %s, max %s\n", prefix,
		metrics_fmt_ns(s->step.mean, a, sizeof(a)), metrics_fmt_ns((double)s->step.p50, b, sizeof(b)),
		metrics_fmt_ns((double)s->step.p90, c, sizeof(c)),
		metrics_fmt_ns((double)s->step.max, d, sizeof(d)));
	fprintf(out, "%sattention time: mean %s per step, p50 %s (%.1f%% of the step)\n", prefix,
		metrics_fmt_ns(s->attn.mean, a, sizeof(a)), metrics_fmt_ns((double)s->attn.p50, b, sizeof(b)),
		100.0 * s->attn_share);
	if (s->attn_dev.n)
		fprintf(out, "%sGPU attention kernels: mean %s per step, p50 %s; KV read at %.1f GB/s\n", prefix,
			metrics_fmt_ns(s->attn_dev.mean, a, sizeof(a)), metrics_fmt_ns((double)s->attn_dev.p50, b, sizeof(b)),
			s->attn_dev.total > 0 ? (double)s->kv_bytes_dev / (double)s->attn_dev.total : 0.0);
	fprintf(out, "%sKV bytes read: %s vs seq %s; all IO %s vs seq %s (seq/this %.2fx), sharing %.2fx\n",
		prefix, metrics_fmt_bytes(s->kv_bytes, a, sizeof(a)),
		metrics_fmt_bytes(s->kv_bytes_seq, b, sizeof(b)), metrics_fmt_bytes(s->bytes, c, sizeof(c)),
		metrics_fmt_bytes(s->bytes_seq, d, sizeof(d)), s->io_ratio, s->sharing);
	if (s->ttft.n)
		fprintf(out, "%sTTFT: mean %s, p50 %s over %lld branches\n", prefix,
			metrics_fmt_ns(s->ttft.mean, a, sizeof(a)),
			metrics_fmt_ns((double)s->ttft.p50, b, sizeof(b)), (long long)s->ttft.n);
	if (s->tpot.n)
		fprintf(out, "%sTPOT: mean %s, p50 %s over %lld branches\n", prefix,
			metrics_fmt_ns(s->tpot.mean, a, sizeof(a)),
			metrics_fmt_ns((double)s->tpot.p50, b, sizeof(b)), (long long)s->tpot.n);
}
