/*
 * tree.h — the token tree: nodes are spans of tokens, their KV lives in pool pages.
 *
 * A node holds a run of tokens that follow its parent's last token; a token's
 * position is node->pos0 + index.  The root holds the prompt.  Only leaves
 * grow (tree_append refuses a node with children), so a node's tokens never
 * change once it has children.
 *
 * Page scheme (see also src/kvpool.h).  A node's tokens occupy consecutive
 * slots of its own page list, starting at slot first_slot of pages[0]:
 *     token i of node n  ->  page n->pages[(first_slot + i) / page_size],
 *                            slot (first_slot + i) % page_size,
 *     n_pages == ceil((first_slot + n_tokens) / page_size),  0 <= first_slot < page_size.
 * Splitting node n at token i (tree_split) gives the upper part pages
 * [0, ceil((fs+i)/ps)) and the lower part pages [floor((fs+i)/ps), n_pages) with
 * first_slot (fs+i) % ps; when the cut falls inside a page, that boundary page
 * is used by both parts (its count goes up by one).  No K/V moves.  A fresh
 * node (tree_fork) starts with no pages and first_slot 0: its first append
 * takes a new page.
 *   Why there is no copy-on-write: pages are shared only along an ancestor
 * chain (a split's upper and lower parts), and the lower part always holds
 * the later slots of a shared page.  Only leaves are appended to, and a
 * leaf's next slot lies after every slot any other node claims in that page
 * (its ancestors own earlier slots; a leaf has no descendants; a fork's new
 * leaf never starts inside an existing page).  So two nodes never write the
 * same (page, slot); tree_check() verifies exactly this after every
 * operation, together with "every page's count equals its users".
 *
 * Ids are stable: a node keeps its id for the life of the tree and ids are
 * never reused.  tree_split keeps the id on the LOWER part (the tail that
 * ends in the old node's children or is the leaf), so a leaf's id stays
 * valid as a branch handle across forks; the upper part gets a new id (the
 * root id changes when the root is split: use tree_root()).
 *
 * Memory: tree_append reserves the KV slots of the new tokens, all or nothing.
 * Out of pages it returns DT_ERR_FULL with a message and changes nothing.
 * tree_split / tree_fork never need a page, tree_prune returns pages.
 *
 * Not thread-safe; the engine thread owns the tree and its pool.
 */
#ifndef DT_TREE_H
#define DT_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvpool;

#define TREE_MAX_ALT 16 /* most top-k alternatives stored per token */

enum tree_status {
	TREE_LIVE = 0,     /* in the tree; a live leaf decodes */
	TREE_FINISHED = 1, /* in the tree, KV kept, but a finished leaf does not decode */
	TREE_PRUNED = 2,   /* removed: no pages, not a child of anything in the tree */
};

struct tree_params {
	int32_t n_alt;    /* top-k alternatives kept per token (default 4, 0 .. TREE_MAX_ALT) */
	bool keep_pruned; /* keep pruned nodes' tokens readable under their ids (default true);
			     false frees them and tree_node() returns NULL for their ids */
};
struct tree_params tree_default_params(void);

struct tree_token {
	int32_t id;      /* token id */
	float logprob;   /* log-probability it was sampled with (prompt: 0) */
	int32_t step;    /* decode step that produced it (prompt: 0) */
};

struct tree_alt {
	int32_t id;    /* alternative token id, -1 = none */
	float logprob; /* its log-probability */
};

/* A node as the tree holds it: read-only for callers. */
struct tree_node {
	int32_t id;
	int32_t parent;            /* parent id, -1 for the root */
	enum tree_status status;
	int32_t pos0;              /* position of tokens[0]: tokens on the path above this node */
	int32_t n_tokens;
	struct tree_token *tokens; /* (n_tokens) */
	struct tree_alt *alts;     /* (n_tokens, n_alt), or NULL when n_alt is 0 */
	int32_t n_children;
	int32_t *children;         /* (n_children) ids, in creation order */
	int32_t first_slot;        /* slot of tokens[0] in pages[0], 0 .. page_size-1 */
	int32_t n_pages;           /* ceil((first_slot + n_tokens) / page_size), 0 once pruned */
	int32_t *pages;            /* (n_pages) kvpool page ids */
};

struct tree_stats {
	int32_t n_nodes;        /* nodes in the tree (pruned ones excluded) */
	int32_t n_leaves;       /* nodes without children */
	int32_t n_live_leaves;  /* leaves with status TREE_LIVE */
	int64_t stored_tokens;  /* tokens held once each: sum of n_tokens */
	int64_t logical_tokens; /* tokens summed over every root-to-leaf path */
	double sharing;         /* logical / stored (1 for a chain; 0 for an empty tree) */
	int32_t pages;          /* pool pages the tree uses */
	size_t kv_bytes;        /* pages * page bytes */
};

struct tree;

/* A tree whose root holds the prompt's n tokens (n >= 0).  NULL + err when the
 * params are invalid or the prompt does not fit the pool (DT_ERR_FULL message).
 * The pool is not owned and must outlive the tree. */
struct tree *tree_new(const struct tree_params *p, struct kvpool *pool, const int32_t *prompt,
		      int32_t n, char *err);
void tree_free(struct tree *t); /* returns every page to the pool */

struct kvpool *tree_pool(const struct tree *t);
int32_t tree_root(const struct tree *t);
int32_t tree_n_ids(const struct tree *t); /* ids handed out so far: 0 .. n-1 */
int32_t tree_n_alt(const struct tree *t);
/* NULL when id is out of range or a dropped pruned node. */
const struct tree_node *tree_node(const struct tree *t, int32_t id);
uint64_t tree_uid(const struct tree *t);           /* unique per tree object in this process */
uint64_t tree_version(const struct tree *t);       /* changes on every change */
uint64_t tree_shape_version(const struct tree *t); /* changes on split, fork, prune (not append) */

// ---- operations (each returns DT_OK / an id, or a negative status / -1 with err)

/* Appends n tokens to a leaf (no children, not pruned, not finished) and
 * reserves their KV slots.  logprobs may be NULL (0), alts (n, n_alt) may be
 * NULL (none).  DT_ERR_FULL when the pool lacks pages: nothing changed. */
int tree_append(struct tree *t, int32_t node, const int32_t *ids, const float *logprobs,
		const struct tree_alt *alts, int32_t n, int32_t step, char *err);
/* Splits node at token index (0 < index < n_tokens, or index == n_tokens for a
 * leaf, which leaves node empty); returns the id of the new upper part. */
int32_t tree_split(struct tree *t, int32_t node, int32_t index, char *err);
/* A new empty live leaf whose path is root .. node's tokens [0, index):
 * index 0 makes a sibling of node (not for the root); 0 < index < n_tokens
 * splits node there; index == n_tokens makes a child of node, or, when node is
 * a live leaf, first splits it at its end so that node (now empty) continues
 * as a live leaf beside the new one.  Returns the new leaf's id. */
int32_t tree_fork(struct tree *t, int32_t node, int32_t index, char *err);
/* A new empty live leaf as the last child of node (which, if it was a leaf,
 * becomes an inner node: appends to it are refused from then on).  For
 * building given shapes; tree_fork is the branching operation. */
int32_t tree_add_child(struct tree *t, int32_t node, char *err);
/* Removes node and its subtree (not the root) and returns their pages. */
int tree_prune(struct tree *t, int32_t node, char *err);
/* TREE_LIVE <-> TREE_FINISHED for a node in the tree. */
int tree_set_status(struct tree *t, int32_t node, enum tree_status st, char *err);

// ---- queries

/* KV location (pool page, slot) of token index (0 .. n_tokens-1) of node. */
void tree_kv_loc(const struct tree *t, int32_t node, int32_t index, int32_t *page, int32_t *slot);
/* Live leaves in depth-first order; writes at most cap ids, returns the count. */
int32_t tree_live_leaves(const struct tree *t, int32_t *out, int32_t cap);
/* Tokens on the path root .. node (pos0 + n_tokens). */
int32_t tree_path_len(const struct tree *t, int32_t node);
/* Writes the path's token ids (at most cap), returns the path length. */
int32_t tree_path_tokens(const struct tree *t, int32_t node, int32_t *out, int32_t cap);
/* Writes the node ids root .. node (at most cap), returns their number. */
int32_t tree_path_nodes(const struct tree *t, int32_t node, int32_t *out, int32_t cap);
/* True when a is b or an ancestor of b. */
bool tree_is_ancestor(const struct tree *t, int32_t a, int32_t b);
void tree_stats(const struct tree *t, struct tree_stats *s);

/* Every tree and pool invariant: links, positions, page lists, no (page, slot)
 * claimed twice, and every page's count equal to its users (the tree must be
 * the pool's only user).  0, or -1 + err naming the node and what is wrong. */
int tree_check(const struct tree *t, char *err);

#endif
