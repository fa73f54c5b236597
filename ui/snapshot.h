/*
 * snapshot.h — a self-contained copy of what the panes show, handed from the
 * engine thread to the UI thread.
 *
 * The engine is not thread-safe, so the UI never reads it.  After every step
 * (and every other job) the worker (ui/worker.c) copies the tree, the pool
 * and the metrics into a new snapshot; the UI swaps it in and draws from it
 * until the next one arrives.  A snapshot owns all its memory (token text
 * included), so the engine may change or even be replaced while the UI draws.
 *
 * Layout: nodes are indexed by tree id (0 .. n_ids-1; absent ids have
 * id == -1).  Each node's tokens are a run of `toks`, its children a run of
 * `kids` (children in the tree first, in creation order, then the pruned
 * subtrees that used to hang there), its pages a run of `pages`.  Token text
 * is a run of bytes in `text` (the raw piece, which may be part of a UTF-8
 * character; the panes join pieces before decoding).
 *
 * Tests build snapshots from trees made in memory (no model) with a piece
 * callback standing in for the tokenizer.
 */
#ifndef DT_UI_SNAPSHOT_H
#define DT_UI_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "sampler.h"
#include "tree.h"
#include "treeplan.h"

#define UI_TOK_PROMPT 1u  /* a prompt token (step 0 of the root) */
#define UI_TOK_CONTROL 2u /* a control token (<|im_start|> ...) */
#define UI_TOK_FORCED 4u  /* no alternatives kept: forced text or a loaded prompt */

struct ui_snap_tok {
	int32_t id;        /* token id */
	float logprob;     /* as the tree holds it */
	int32_t step;      /* decode step that produced it */
	uint32_t text;     /* offset of its piece in snap->text */
	uint16_t text_len; /* piece bytes */
	uint8_t flags;     /* UI_TOK_* */
	float entropy;     /* estimate from the alternatives (bits), < 0 when unknown */
};

struct ui_snap_alt {
	int32_t id;        /* -1 = none */
	float logprob;
	uint32_t text;
	uint16_t text_len;
};

struct ui_snap_node {
	int32_t id;              /* -1: no such node */
	int32_t parent;          /* -1 for the root */
	enum tree_status status;
	int32_t pos0, n_tokens;
	int32_t tok;             /* first token in snap->toks */
	int32_t kid, n_kids;     /* children in snap->kids */
	int32_t n_kids_live;     /* of which the first n_kids_live are in the tree (the rest pruned) */
	int32_t page, n_pages, first_slot; /* pages in snap->pages */
	int32_t depth;           /* 0 for the root */
	int32_t live_below;      /* live leaves in the subtree (the node itself included) */
	int32_t leaves_below;    /* leaves (live or finished) in the subtree */
	int32_t nodes_below;     /* nodes in the subtree, the node excluded */
	int64_t stream;          /* branch stream id, -1 */
	int32_t n_computed;      /* tokens with KV computed */
};

/* facts about the engine, filled by the worker */
struct ui_snap_info {
	bool has_model;
	bool io_only;               /* a replay engine without a model */
	char model[160];            /* short model name */
	char model_path[512];
	char arch[96];              /* "llama 30L 9/3 heads d64" */
	char backend[96];           /* "cpu 2 thr", "cuda NVIDIA H200" (header bar) */
	int backend_kind;           /* enum backend_kind of the main engine, -1 without one */
	char device[160];           /* the backend's device (backend_info) */
	double dev_copy_gbps;       /* cuda: device copy bandwidth measured when it started, 0 else */
	enum treeplan_algo algo;
	char policy[32];
	struct sampler_params sampler;
	int32_t max_tokens;         /* steps a prompt or reply grows (0 = until it ends) */
	int32_t page_size;
	size_t kv_budget;           /* bytes */
	size_t weight_bytes;        /* weights read per forward pass */
	int32_t n_layer;
	int32_t prompt_len;
	int64_t n_steps, n_generated;
	char replay[160];           /* the replay shown, "" when none */
	int64_t replay_len;
	double copy_gbps;           /* host memcpy bandwidth measured at start, 0 if not */
	bool unsaved;
	char session[512];          /* last saved / opened session file */
	bool chat_template;         /* the tokenizer has a chat template (ChatML) */
	uint64_t tree_uid;
	uint64_t tree_version;
};

struct ui_snap {
	uint64_t seq;                  /* increases with every snapshot */
	bool has_tree;
	int32_t n_ids, root;
	struct ui_snap_node *nodes;    /* (n_ids) */
	struct ui_snap_tok *toks;      /* (n_toks) */
	int64_t n_toks;
	int32_t n_alt;                 /* alternatives per token */
	struct ui_snap_alt *alts;      /* (n_toks, n_alt) */
	int32_t *kids;
	int32_t *pages;
	char *text;                    /* token pieces */
	size_t n_text;

	/* the page pool */
	int32_t pool_pages, pool_free, page_size;
	size_t page_bytes, token_bytes;
	int32_t *page_owner;           /* (pool_pages) owning node (shallowest user), -1 = free */
	int32_t *page_live;            /* (pool_pages) live branches reading the page */
	int32_t *page_branches;        /* (pool_pages) branches (leaves) reading the page */
	struct tree_stats tstats;

	/* metrics */
	bool has_metrics;
	struct metrics_summary sum;
	bool has_last;
	struct metrics_step last;
	int32_t n_hist;                /* last steps, oldest first */
	int64_t *hist_wall;            /* (n_hist) ns */
	uint64_t *hist_bytes;          /* (n_hist) all IO terms, algorithm in use */
	int64_t ttft_last_ns;          /* TTFT of the newest branch with a token, -1 */

	/* next step on this tree under each algorithm (what-if), bytes all layers */
	bool has_whatif;
	uint64_t whatif_kv[TREEPLAN_N_ALGO];
	uint64_t whatif_total[TREEPLAN_N_ALGO];
	int32_t whatif_queries;
	bool whatif_all_leaves;        /* no live leaf: the figures are for a step on every leaf */

	struct ui_snap_info info;
};

struct ui_snap_src {
	const struct tree *tree;       /* NULL: no tree yet */
	const struct kvpool *pool;     /* the tree's pool (or the engine's when tree is NULL; may be NULL) */
	const struct metrics *metrics; /* may be NULL */
	int32_t hist_max;              /* steps kept for sparklines (default 0 = 120) */
	void *ctx;                     /* passed to the callbacks */
	/* token text (required when tree is not NULL) */
	const char *(*piece)(void *ctx, int32_t id, size_t *len);
	bool (*is_control)(void *ctx, int32_t id);  /* may be NULL */
	int64_t (*stream)(void *ctx, int32_t node); /* may be NULL */
	int32_t (*n_computed)(void *ctx, int32_t node); /* may be NULL (all computed) */
};

struct ui_snap *ui_snap_build(const struct ui_snap_src *src);
void ui_snap_free(struct ui_snap *s);

/* The node if the id exists in the snapshot, else NULL. */
const struct ui_snap_node *ui_snap_node(const struct ui_snap *s, int32_t id);
/* Children of a node (in-tree ones only unless with_pruned). */
int32_t ui_snap_n_kids(const struct ui_snap_node *n, bool with_pruned);
/* Node ids root .. id into out (cap), returns the path length in nodes. */
int32_t ui_snap_path(const struct ui_snap *s, int32_t id, int32_t *out, int32_t cap);
/* Tokens on the path root .. id. */
int32_t ui_snap_path_len(const struct ui_snap *s, int32_t id);
/* The node and token index holding position pos of the path root .. id;
 * false when pos is outside the path. */
bool ui_snap_locate(const struct ui_snap *s, int32_t id, int32_t pos, int32_t *node, int32_t *index);
/* Piece bytes of a token / an alternative. */
const char *ui_snap_piece(const struct ui_snap *s, const struct ui_snap_tok *t, size_t *len);

/* One-line preview of a node's text into buf (cap bytes): control tokens
 * left out, newlines as the newline glyph, tabs as spaces, bytes of a
 * character begun in the parent left to the parent and a character that the
 * node's last token leaves unfinished completed from its first child.  With
 * tail, the end of the text is kept (for the prompt).  max_cols bounds the
 * width; an ellipsis marks a cut. */
void ui_snap_preview(const struct ui_snap *s, int32_t id, bool tail, int max_cols, char *buf, size_t cap);

/* Plain text of a node (malloc'd, raw bytes of its pieces, control tokens
 * included). */
char *ui_snap_node_text(const struct ui_snap *s, int32_t id, int32_t **tok_of_byte, size_t *len);

#endif
