/*
 * metrics.h — counters and latency histories of a tree decoding session.
 *
 * The engine records one `struct metrics_step` per decode step (wall time,
 * attention time, tokens, the IO-model bytes of the algorithm in use and of
 * `seq` for the same step) and tells the metrics when a branch starts and when
 * it gets a token; TTFT and TPOT per branch come from those timestamps:
 *
 *   TTFT = first token time - branch start time
 *   TPOT = (last token time - first token time) / (tokens - 1)   (needs >= 2 tokens)
 *
 * All times are nanoseconds of the monotonic clock passed in by the caller
 * (the metrics never read the clock, so tests can feed exact values).
 * A summary reduces the history to totals, means and percentiles.
 */
#ifndef DT_METRICS_H
#define DT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* IO model of one decode step, all layers (bytes). */
struct metrics_io {
	uint64_t kv;      /* K and V bytes read */
	uint64_t q;       /* query bytes read */
	uint64_t mask;    /* mask / visibility bytes read */
	uint64_t partial; /* partial outputs + log-sum-exp written and read back */
	uint64_t inter;   /* intermediates (QK^T, softmax) written and read */
	uint64_t other;   /* final output written + plan arrays read */
};
uint64_t metrics_io_total(const struct metrics_io *io);

struct metrics_step {
	int64_t step;          /* 0-based index of the step in the session */
	int64_t t_start_ns;    /* when the step began */
	int64_t wall_ns;       /* the whole step: plan, forward, sampling, appends */
	int64_t attn_ns;       /* inside the tree attention (all layers) */
	int64_t attn_dev_ns;   /* GPU time of the attention kernels (cuda backend; 0 on the cpu) */
	int32_t n_queries;     /* query tokens in the batch */
	int32_t n_branches;    /* live branches that took part */
	int32_t n_tokens;      /* tokens appended to the tree by this step */
	int64_t tree_tokens;   /* tokens with KV stored in the tree after the step */
	int64_t path_tokens;   /* sum over queries of the KV tokens each attends to */
	int32_t kv_pages;      /* pool pages in use after the step */
	struct metrics_io io;     /* the algorithm in use */
	struct metrics_io io_seq; /* `seq` (one pass per branch) for the same step */
};

/* Distribution of a series of nanosecond values. */
struct metrics_stats {
	int64_t n;
	int64_t total, min, max;
	double mean;
	int64_t p50, p90, p99; /* nearest-rank percentiles */
};
/* Fills s from vals (n values, not modified); all zero when n == 0. */
void metrics_stats_of(const int64_t *vals, int64_t n, struct metrics_stats *s);

struct metrics_branch {
	uint64_t id;          /* the branch's stable id */
	int64_t t_start_ns;   /* when it was requested (prefill start or fork) */
	int64_t t_first_ns;   /* its first token (valid when n_tokens > 0) */
	int64_t t_last_ns;    /* its latest token */
	int64_t n_tokens;     /* tokens it produced */
};

struct metrics_summary {
	int64_t n_steps;
	int64_t tokens;           /* produced by decode steps (and first tokens after prefill) */
	int64_t prompt_tokens;    /* prefilled */
	int64_t prefill_ns;
	struct metrics_stats step;   /* step wall time */
	struct metrics_stats attn;   /* attention time per step */
	struct metrics_stats attn_dev; /* GPU time of the attention kernels per step (cuda; n = 0 otherwise) */
	uint64_t kv_bytes_dev;       /* KV bytes (IO model) of the steps with GPU time */
	struct metrics_stats ttft;   /* over branches with >= 1 token */
	struct metrics_stats tpot;   /* over branches with >= 2 tokens */
	int64_t wall_ns;             /* sum of step wall times */
	uint64_t bytes;              /* IO total, algorithm in use, all steps */
	uint64_t bytes_seq;          /* IO total of seq, all steps */
	uint64_t kv_bytes, kv_bytes_seq;
	double io_ratio;             /* bytes_seq / bytes (how much less the algorithm reads); 0 if none */
	double sharing;              /* sum path_tokens / sum tree_tokens over steps: KV reuse; 0 if none */
	double tokens_per_s;         /* tokens / (wall_ns seconds); 0 if none */
	double attn_share;           /* attention time / step time */
};

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_reset(struct metrics *m);

/* Prefill of n prompt tokens took ns (accumulates over several prefills). */
void metrics_prefill(struct metrics *m, int64_t n_tokens, int64_t ns);

/* Appends a copy of s to the history (s->step is renumbered to the history
 * index). */
void metrics_step_add(struct metrics *m, const struct metrics_step *s);
int64_t metrics_n_steps(const struct metrics *m);
/* Step i (0 <= i < metrics_n_steps()), valid until the next add or reset. */
const struct metrics_step *metrics_step_at(const struct metrics *m, int64_t i);
/* The latest step, or NULL before the first one. */
const struct metrics_step *metrics_last_step(const struct metrics *m);

/* A branch was requested at t_ns (a second call for the same id restarts it). */
void metrics_branch_start(struct metrics *m, uint64_t id, int64_t t_ns);
/* Branch id got n tokens at t_ns (n >= 1); unknown ids start at t_ns. */
void metrics_branch_tokens(struct metrics *m, uint64_t id, int64_t t_ns, int64_t n);
/* NULL when the id was never seen. */
const struct metrics_branch *metrics_branch_get(const struct metrics *m, uint64_t id);
int64_t metrics_n_branches(const struct metrics *m);
const struct metrics_branch *metrics_branch_at(const struct metrics *m, int64_t i);
/* TTFT of a branch in ns: false when it has no token yet. */
bool metrics_branch_ttft(const struct metrics_branch *b, int64_t *ns);
/* TPOT of a branch in ns: false when it has fewer than 2 tokens. */
bool metrics_branch_tpot(const struct metrics_branch *b, int64_t *ns);

void metrics_summarize(const struct metrics *m, struct metrics_summary *s);

/* Human summary, a few lines, each starting with prefix. */
void metrics_print_summary(const struct metrics_summary *s, const char *prefix, FILE *out);

/* "12.3 KiB" style, into buf (cap >= 16). Returns buf. */
const char *metrics_fmt_bytes(uint64_t bytes, char *buf, size_t cap);
/* "1.23 ms" style from ns. Returns buf. */
const char *metrics_fmt_ns(double ns, char *buf, size_t cap);

#endif
