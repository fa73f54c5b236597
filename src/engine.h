/*
 * engine.h — tree decoding: prefill, decode steps over a token tree, policies.
 *
 * The engine owns the model (or borrows a loaded one), the tokenizer, the KV
 * page pool, the token tree, the attention plans, the sampler settings and
 * the metrics.  One decode step (engine_step):
 *
 *   1. queries: every token whose KV is not computed yet (a leaf's last
 *      sampled token, a chunk of forced text, a restored session), in
 *      depth-first order; plus, for a live leaf whose next-token logits are
 *      neither produced by those queries nor kept from the previous step, one
 *      recompute query on the last token of its path (KV already stored, not
 *      written again);
 *   2. the pages the step's appends will need are checked against the pool:
 *      out of pages -> DT_ERR_FULL with a message, nothing changed;
 *   3. the plan is updated for the queries (incrementally, treeplan.h) and ONE
 *      batched model_forward runs them (split into n_batch chunks only when
 *      longer), its kv_ops storing K/V into the tokens' pool slots and running
 *      the tree attention of the backend (backend.h: cpu, or cuda with a
 *      device mirror of the pages) with the plan (timed: attention ns per
 *      step, and GPU ns on cuda);
 *   4. the policy picks tokens: each live leaf samples one (stream = the
 *      branch's stable stream id, pos = the token's position, so a branch
 *      grown in a tree gets the tokens it gets alone, under every algorithm:
 *      cpu_tree_attn.c computes a query's attention independently of how its
 *      keys are grouped), or beam search keeps the
 *      W best continuations and prunes the rest, or a replay follows a
 *      workload's shape; tokens are appended with their log-probability and
 *      top-k alternatives;
 *   5. metrics: wall and attention time, tokens, the plan's IO-model bytes for
 *      the algorithm in use and for `seq` on the same queries, TTFT / TPOT.
 *
 * A branch stops on an end-of-generation token, at max_branch_tokens, or when
 * the session reaches max_total_tokens; a finished leaf stays in the tree.
 * Cancellation (engine_cancel) is checked between steps and between layers;
 * a cancelled step leaves the tree as it was (its tokens stay pending).
 *
 * Without a model (params.model_path == NULL and params.model == NULL) the
 * engine runs in IO-only mode: the same tree, plans and IO model with the head
 * shape of params.io_heads, no forward pass, token id 0 everywhere.  Replays
 * and benchmarks use it to measure plans on large shapes.
 *
 * Not thread-safe: one thread drives an engine (engine_cancel may be called
 * from any thread).
 */
#ifndef DT_ENGINE_H
#define DT_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "sampler.h"
#include "treeplan.h"

struct model;
struct tokenizer;
struct tree;
struct kvpool;
struct metrics;
struct workload;

#define ENGINE_DONE 1 /* engine_step: nothing left to decode */

enum engine_policy {
	ENGINE_POLICY_SAMPLE = 0, /* every live leaf samples its next token */
	ENGINE_POLICY_GREEDY = 1, /* every live leaf takes its most likely token */
	ENGINE_POLICY_BEAM = 2,   /* beam search over the live leaves (width, alpha) */
	ENGINE_POLICY_REPLAY = 3, /* follow a workload's shape (engine_replay_begin) */
};

struct engine_io_heads { /* head shape for IO-only mode */
	int32_t n_layer;   /* default 1 */
	int32_t n_head;    /* default 32 */
	int32_t n_kv_head; /* default 8 */
	int32_t head_dim;  /* default 128 */
	int32_t elt_bytes; /* default 2 (fp16) */
};

struct engine_params {
	const char *model_path;   /* GGUF file to load (default NULL) */
	struct model *model;      /* or a loaded model, borrowed (default NULL); wins over the path */
	int32_t n_threads;        /* threads when loading the model (default dt_ncpu()) */
	enum treeplan_algo algo;  /* attention algorithm (default deft-flatten) */
	int32_t block_size;       /* deft-flatten tokens per block (default 128) */
	int32_t tile_queries;     /* most queries per group (default 64) */
	int32_t page_size;        /* KV tokens per pool page (default 16) */
	size_t kv_budget;         /* KV pool bytes (default 1 GiB) */
	int32_t n_alt;            /* top-k alternatives kept per token (default 4) */
	struct sampler_params sampler; /* default sampler_default_params() */
	int32_t max_branch_tokens;     /* generated tokens per branch, 0 = no limit (default 256) */
	int64_t max_total_tokens;      /* generated tokens in the session, 0 = no limit (default 0) */
	uint64_t root_stream;          /* stream id of the first branch (default 0); later
					  branches take root_stream + 1, + 2, ... */
	bool io_compare;               /* also plan `seq` each step for the IO comparison (default true) */
	bool attn_portable;            /* force the portable (non-SIMD) attention kernels (default false) */
	enum backend_kind backend;     /* where attention runs (default BACKEND_CPU, the reference;
					  the commands and the playground ask for "auto") */
	struct engine_io_heads io_heads; /* IO-only mode head shape */
};
struct engine_params engine_default_params(void);

struct engine;

/* NULL + err when the model cannot be loaded or a parameter is out of range. */
struct engine *engine_new(const struct engine_params *p, char *err);
void engine_free(struct engine *e);

// ---- prompt

/* Starts a session: the prompt text (with chat: wrapped in the model's chat
 * template as one user turn, assistant turn opened) is tokenized, becomes the
 * root, and is run through the model.  The root is then the one live leaf,
 * with stream root_stream.  A second call starts over. */
int engine_prefill(struct engine *e, const char *text, bool chat, char *err);
int engine_prefill_tokens(struct engine *e, const int32_t *ids, int32_t n, char *err);

// ---- decoding

/* One decode step (see above).  DT_OK, ENGINE_DONE when nothing is left to
 * decode, or a negative status (DT_ERR_FULL, DT_ERR_CANCELLED, ...) + err;
 * on error the tree is left as it was before the step. */
int engine_step(struct engine *e, char *err);
/* Steps until ENGINE_DONE or max_steps (0 = no limit); returns the number of
 * steps run, or a negative status + err. */
int64_t engine_run(struct engine *e, int64_t max_steps, char *err);

void engine_cancel(struct engine *e);       /* from any thread */
void engine_clear_cancel(struct engine *e);

// ---- policies

/* SAMPLE / GREEDY / BEAM (width >= 1, alpha >= 0: score = sum logprob /
 * len^alpha).  REPLAY is set by engine_replay_begin. */
int engine_set_policy(struct engine *e, enum engine_policy pol, int32_t beam_width, float beam_alpha,
		      char *err);
enum engine_policy engine_policy(const struct engine *e);

/* A policy as typed: "sample:N" (N branches from the prompt, each sampling),
 * "sample" (N = 1), "greedy", "beam:W" or "beam:W:ALPHA" (ALPHA default 1). */
struct engine_policy_spec {
	enum engine_policy policy;
	int32_t n;     /* sample: branches (1 .. 4096) */
	int32_t width; /* beam: width (1 .. 64) */
	float alpha;   /* beam: length penalty (0 .. 10) */
};
int engine_policy_parse(const char *text, struct engine_policy_spec *out, char *err);

/* n new branches below token index-1 of node (their path is the node's tokens
 * [0, index)); index == n_tokens of a leaf makes them children of its end and
 * the leaf stops growing itself.  Their first tokens are sampled by the next
 * step.  The ids of the new leaves go to out (n entries, may be NULL).
 * DT_OK or DT_ERR_ARG + err (no such node, index out of range). */
int engine_sample_n(struct engine *e, int32_t node, int32_t index, int32_t n, int32_t *out, char *err);

enum engine_fork_mode {
	ENGINE_FORK_RESAMPLE = 0, /* a new branch whose first token is sampled anew */
	ENGINE_FORK_TOKEN = 1,    /* a new branch starting with a given token */
	ENGINE_FORK_TEXT = 2,     /* a new branch starting with forced text */
};
/* A new branch at token index of node (its path: the node's tokens [0, index)).
 * Returns the new leaf id, or a negative status + err. */
int32_t engine_fork(struct engine *e, int32_t node, int32_t index, enum engine_fork_mode mode,
		    int32_t token, const char *text, char *err);
/* Appends forced text to a live leaf (computed by the next step). */
int engine_force_text(struct engine *e, int32_t leaf, const char *text, char *err);
/* Removes a branch (node and subtree, not the root); its pages return. */
int engine_prune(struct engine *e, int32_t node, char *err);

// ---- replay

/* Replays workload w (tree / record `index`): builds the prompt (the tree's
 * prompt text, or synthetic text, tokenized and cut or repeated to the
 * workload's prompt length; spec workloads use prefix_len tokens), prefills it
 * and sets the REPLAY policy.  Reasoning / few-shot: at iteration i every node
 * with start <= i <= end is a live branch growing one token (engine_step runs
 * one iteration).  Speculative: each step verifies the tree's t candidates at
 * once (plus the tokens appended by the previous step, whose KV this engine
 * computes then), then appends the recorded number of accepted tokens. */
int engine_replay_begin(struct engine *e, const struct workload *w, int32_t index, int32_t prefix_len,
			char *err);
/* Iterations of the replay (reasoning: the tree's last iteration; spec: the
 * record's steps); 0 when no replay runs. */
int64_t engine_replay_length(const struct engine *e);

// ---- sessions

/* Saves the tree and the settings (session.h); with export true the JSON
 * also carries text, pieces, probabilities and the metrics. */
int engine_save(struct engine *e, const char *path, bool export_extras, char *err);
/* Loads a session saved with the same model: rebuilds the tree, computes the
 * KV of every token except each live leaf's last, restores the streams and
 * the sampler.  Replaces the current tree. */
int engine_load(struct engine *e, const char *path, char *err);
int engine_save_dot(struct engine *e, const char *path, char *err);

// ---- state

struct tree *engine_tree(struct engine *e); /* NULL before a prefill */
struct metrics *engine_metrics(struct engine *e);
const struct tokenizer *engine_tokenizer(const struct engine *e); /* NULL in IO-only mode */
struct model *engine_model(struct engine *e);                      /* NULL in IO-only mode */
struct kvpool *engine_pool(struct engine *e);
const struct engine_params *engine_params(const struct engine *e);
int32_t engine_prompt_len(const struct engine *e);
int64_t engine_n_steps(const struct engine *e);
int64_t engine_n_generated(const struct engine *e);
/* The branch stream of a node (-1 when it is not a branch tip). */
int64_t engine_stream(const struct engine *e, int32_t node);
/* Tokens of node with KV computed (a prefix of its tokens). */
int32_t engine_n_computed(const struct engine *e, int32_t node);
/* Logits (n_vocab) computed by the last forward pass for token index of node
 * (the distribution of the token after it); NULL when not kept. */
const float *engine_logits(const struct engine *e, int32_t node, int32_t index);
/* The algorithm in use; switching takes effect at the next step. */
int engine_set_algo(struct engine *e, enum treeplan_algo algo, char *err);
/* Moves attention to another backend (backend.h) from the next step on; the
 * tree and its KV stay (a new cuda backend uploads the pages in use).  On
 * failure (no device, unsupported head dim) the current backend stays and
 * err says why. */
int engine_set_backend(struct engine *e, enum backend_kind kind, char *err);
/* The backend in use; NULL in IO-only mode. */
const struct backend_info *engine_backend_info(const struct engine *e);
/* Sampler settings for the next steps (checked). */
int engine_set_sampler(struct engine *e, const struct sampler_params *sp, char *err);

/* Human text of a branch or node (malloc'd, invalid UTF-8 replaced). */
char *engine_node_text(const struct engine *e, int32_t node);

#endif
