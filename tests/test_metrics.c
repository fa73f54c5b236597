/* test_metrics.c — step history, TTFT / TPOT arithmetic, percentiles, summary. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "metrics.h"
#include "tap.h"

static uint64_t rng_state;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void test_stats(void)
{
	int64_t v[] = { 5, 1, 4, 2, 3, 10, 9, 8, 7, 6 };
	struct metrics_stats s;
	metrics_stats_of(v, 10, &s);
	ok(s.n == 10 && s.min == 1 && s.max == 10 && s.total == 55, "stats: n 10, min 1, max 10, total 55");
	ok(s.mean == 5.5, "stats: mean 5.5 (got %g)", s.mean);
	ok(s.p50 == 5 && s.p90 == 9 && s.p99 == 10, "stats: nearest-rank p50 5, p90 9, p99 10 (got %lld %lld %lld)",
	   (long long)s.p50, (long long)s.p90, (long long)s.p99);
	ok(v[0] == 5 && v[9] == 6, "stats: input left unsorted");
	metrics_stats_of(v, 0, &s);
	ok(s.n == 0 && s.mean == 0 && s.max == 0, "stats of nothing are zero");

	/* fresh random series against a brute-force median */
	int n = 1 + (int)(rnd() % 200);
	int64_t *r = xmallocarray((size_t)n, sizeof(*r));
	for (int i = 0; i < n; i++)
		r[i] = (int64_t)(rnd() % 1000000);
	metrics_stats_of(r, n, &s);
	int64_t med = -1;
	for (int i = 0; i < n && med < 0; i++) {
		int le = 0;
		for (int j = 0; j < n; j++)
			le += r[j] <= r[i];
		int lt = 0;
		for (int j = 0; j < n; j++)
			lt += r[j] < r[i];
		/* r[i] is the nearest-rank median when lt < ceil(n/2) <= le */
		if (lt < (n + 1) / 2 && (n + 1) / 2 <= le)
			med = r[i];
	}
	ok(s.p50 == med, "stats: p50 of %d random values is the nearest-rank median (%lld vs %lld)", n,
	   (long long)s.p50, (long long)med);
	free(r);
}

static void test_branches(void)
{
	struct metrics *m = metrics_new();
	/* branch 7: requested at 1000, first token at 1500, then 3 more at 1700, 1900, 2300 */
	metrics_branch_start(m, 7, 1000);
	metrics_branch_tokens(m, 7, 1500, 1);
	metrics_branch_tokens(m, 7, 1700, 1);
	metrics_branch_tokens(m, 7, 1900, 1);
	metrics_branch_tokens(m, 7, 2300, 1);
	const struct metrics_branch *b = metrics_branch_get(m, 7);
	int64_t ttft = -1, tpot = -1;
	bool has = b && metrics_branch_ttft(b, &ttft);
	ok(has && ttft == 500, "TTFT = 1500 - 1000 = 500 (got %lld)", (long long)ttft);
	has = b && metrics_branch_tpot(b, &tpot);
	ok(has && tpot == 266, "TPOT = (2300 - 1500) / 3 = 266 (got %lld)", (long long)tpot);
	ok(b && b->n_tokens == 4, "4 tokens counted");

	/* a branch with one token has a TTFT and no TPOT; a chunk of 3 counts 3 */
	metrics_branch_start(m, 9, 2000);
	metrics_branch_tokens(m, 9, 2600, 1);
	b = metrics_branch_get(m, 9);
	ok(b && metrics_branch_ttft(b, &ttft) && ttft == 600 && !metrics_branch_tpot(b, &tpot),
	   "one token: TTFT 600, no TPOT");
	metrics_branch_tokens(m, 9, 3600, 3);
	has = b && metrics_branch_tpot(b, &tpot);
	ok(has && tpot == 333, "chunk of 3: TPOT (3600 - 2600) / 3 = 333 (got %lld)",
	   (long long)tpot);
	metrics_branch_start(m, 11, 5000);
	b = metrics_branch_get(m, 11);
	ok(b && !metrics_branch_ttft(b, &ttft), "no token yet: no TTFT");
	ok(metrics_branch_get(m, 12345) == NULL, "unknown branch: NULL");

	/* many branches with random ids (exercises the hash table) */
	int n = 500 + (int)(rnd() % 500);
	uint64_t *ids = xmallocarray((size_t)n, sizeof(*ids));
	int64_t *st = xmallocarray((size_t)n, sizeof(*st));
	for (int i = 0; i < n; i++) {
		ids[i] = (rnd() << 8) | (uint64_t)i; /* distinct */
		st[i] = (int64_t)(rnd() % 1000000);
		metrics_branch_start(m, ids[i], st[i]);
		metrics_branch_tokens(m, ids[i], st[i] + 100 + i, 1);
	}
	int good = 1;
	for (int i = 0; i < n; i++) {
		b = metrics_branch_get(m, ids[i]);
		good = good && b && metrics_branch_ttft(b, &ttft) && ttft == 100 + i;
	}
	ok(good, "%d random branch ids keep their own TTFT", n);
	ok(metrics_n_branches(m) == n + 3, "branch count %d", n + 3);

	struct metrics_summary s;
	metrics_summarize(m, &s);
	ok(s.ttft.n == n + 2, "summary TTFT over the %d branches with a token (got %lld)", n + 2, (long long)s.ttft.n);
	ok(s.tpot.n == 2 && s.tpot.total == 266 + 333, "summary TPOT over the 2 branches with 2+ tokens");
	ok(s.tokens == 4 + 4 + n, "summary tokens %d (got %lld)", 8 + n, (long long)s.tokens);
	free(ids);
	free(st);
	metrics_free(m);
}

static void test_steps(void)
{
	struct metrics *m = metrics_new();
	ok(metrics_last_step(m) == NULL, "no step yet");
	int64_t wall_total = 0, attn_total = 0;
	uint64_t kv = 0, kv_seq = 0;
	for (int i = 0; i < 10; i++) {
		struct metrics_step s = { 0 };
		s.step = 99; /* renumbered */
		s.wall_ns = 1000 * (i + 1);
		s.attn_ns = 100 * (i + 1);
		s.n_queries = 4;
		s.n_tokens = 4;
		s.tree_tokens = 100 + 4 * i;
		s.path_tokens = 4 * (100 + i);
		s.io.kv = 1000 + (uint64_t)(rnd() % 1000);
		s.io.q = 10;
		s.io_seq.kv = 4 * s.io.kv;
		s.io_seq.q = 10;
		wall_total += s.wall_ns;
		attn_total += s.attn_ns;
		kv += s.io.kv;
		kv_seq += s.io_seq.kv;
		metrics_step_add(m, &s);
	}
	ok(metrics_n_steps(m) == 10, "10 steps in the history");
	ok(metrics_step_at(m, 3)->step == 3 && metrics_step_at(m, 3)->wall_ns == 4000,
	   "step 3 renumbered and kept");
	ok(metrics_last_step(m)->wall_ns == 10000, "last step is the 10th");
	metrics_prefill(m, 50, 7000);
	struct metrics_summary s;
	metrics_summarize(m, &s);
	ok(s.n_steps == 10 && s.wall_ns == wall_total && s.step.total == wall_total, "summary wall total %lld",
	   (long long)wall_total);
	ok(s.attn.total == attn_total && s.attn_share > 0.0999 && s.attn_share < 0.1001,
	   "attention share 10%% (got %g)", s.attn_share);
	ok(s.kv_bytes == kv && s.kv_bytes_seq == kv_seq, "KV bytes summed for both algorithms");
	ok(s.bytes == kv + 100 && s.bytes_seq == kv_seq + 100, "all IO = KV + Q bytes");
	double ratio = (double)(kv_seq + 100) / (double)(kv + 100);
	ok(s.io_ratio > ratio - 1e-9 && s.io_ratio < ratio + 1e-9, "io ratio seq/this %g", ratio);
	double sharing = 0, p = 0, t = 0;
	for (int i = 0; i < 10; i++) {
		p += 4 * (100 + i);
		t += 100 + 4 * i;
	}
	sharing = p / t;
	ok(s.sharing > sharing - 1e-9 && s.sharing < sharing + 1e-9, "sharing ratio %g (got %g)", sharing, s.sharing);
	ok(s.prompt_tokens == 50 && s.prefill_ns == 7000, "prefill recorded");
	metrics_reset(m);
	ok(metrics_n_steps(m) == 0 && metrics_n_branches(m) == 0, "reset empties the history");
	metrics_free(m);
	metrics_free(NULL);
	ok(1, "metrics_free(NULL) is a no-op");
}

static void test_format(void)
{
	char buf[32];
	ok(!strcmp(metrics_fmt_bytes(512, buf, sizeof(buf)), "512 B"), "512 B (got %s)", buf);
	ok(!strcmp(metrics_fmt_bytes(3 << 20, buf, sizeof(buf)), "3.00 MiB"), "3.00 MiB (got %s)", buf);
	ok(!strcmp(metrics_fmt_ns(2.5e6, buf, sizeof(buf)), "2.50 ms"), "2.50 ms (got %s)", buf);
}

int main(void)
{
	uint64_t seed = (uint64_t)time(NULL);
	rng_state = seed;
	diag("seed %llu", (unsigned long long)seed);
	tap_plan_lazy();
	test_stats();
	test_branches();
	test_steps();
	test_format();
	return tap_done();
}
