/*
 * treeplan.h — attention plans from a token tree, and their IO model.
 *
 * A decode step attends a set of QUERIES to the tree.  A query is a token of
 * the tree whose KV is stored (struct treeplan_query: node id + token index in
 * the node); it attends causally to its path: every token of its ancestors and
 * the tokens 0 .. index of its own node.  Usually there is one query per live
 * leaf (its last token); a chunk of forced tokens on one branch gives several
 * queries in one node; any token of the tree may be a query.
 *
 * The plan cuts the step into GROUPS.  A group is a list of KV tokens (pool
 * pages and slots) and a list of ENTRIES, one per query that reads the group.
 * Each entry produces a partial result (output normalized over the tokens it
 * sees in the group, plus its log-sum-exp); each query then merges its entries'
 * partials in a fixed order (the reduction).  Four exact algorithms:
 *
 *   seq           one group per query over its whole path (Q-guided; what
 *                 Flash-Decoding and paged attention without tree awareness
 *                 do: a shared prefix is read once per branch).
 *   deft-node     one group per tree node with every query below it (KV-guided:
 *                 each node's KV read once per query tile).
 *   deft-flatten  the tree's KV in depth-first (pre-order) order cut into blocks
 *                 of block_size tokens; each block carries the union of its
 *                 nodes' queries and a per-entry visibility bitmask.
 *   tree-mask     every query against every tree token with a dense mask
 *                 (the Medusa / SpecInfer baseline).
 *
 * deft-node, deft-flatten and tree-mask split a group with more than
 * tile_queries entries into ceil(n / tile_queries) groups of near-equal size
 * that share the same KV (each reads it again).
 *
 * ---- Incremental updates
 * treeplan_update() keeps a LAYOUT between calls: the pre-order of nodes, an
 * Euler interval per node (ancestor test in O(1)), and for deft-flatten the
 * blocks as lists of node segments.  When the tree's shape version changed
 * (split, fork, prune) the layout is rebuilt (O(nodes + blocks)); otherwise
 * the nodes that grew are patched in: a leaf's new tokens extend its last
 * segment while that block has room, then go to new blocks appended after
 * the existing ones (so after growth a block may hold fewer than block_size
 * tokens, never more).  Each block's share of the flat plan (its entries,
 * masks and runs) is kept too and recomputed only when the block grew, is
 * new, or a query that sits in it moved to a token that changes what it sees
 * there; when the list of query nodes changes, every block is recomputed.
 * In a decode step (every leaf's query moves one token on) that is one block
 * per branch; the rest is copied.  seq writes its runs afresh each step.
 *
 * ---- The flat plan (struct treeplan_flat): int32/uint32 arrays, device-ready
 * Counts: Q = n_queries, G = n_groups, R = n_runs, E = n_entries, W = n_mask_words.
 *
 *   group_run_begin[G], group_run_end[G]
 *       group g reads the runs [group_run_begin[g], group_run_end[g]); groups
 *       that are query tiles of one block/node share the same run range.
 *   group_n_tokens[G]
 *       the group's KV tokens: the first group_n_tokens[g] tokens of its runs
 *       taken in order (the last run may extend past it: those tokens are not
 *       read).  "Token t of group g" means this order, t = 0 .. n_tokens-1.
 *   group_entry_off[G+1]
 *       entries of group g: [group_entry_off[g], group_entry_off[g+1]),
 *       ascending query index within a group; at most tile_queries entries
 *       for the tiled algorithms.
 *   run_page[R], run_slot[R], run_len[R], run_tok[R]
 *       a run is run_len consecutive slots run_slot .. run_slot+run_len-1 of
 *       pool page run_page (never crossing a page); run_tok is the group
 *       token index of the run's first token (0 for the first run of a range,
 *       then the running sum of run_len).
 *   entry_query[E], entry_group[E]
 *       the query (row of q and out) and the group of each entry.
 *   entry_nvis[E]
 *       tokens t >= entry_nvis[e] of the group are not visible to the entry
 *       (1 <= entry_nvis <= group_n_tokens).
 *   entry_mask[E], mask[W]
 *       entry_mask[e] == -1: every token t < entry_nvis[e] is visible.
 *       Otherwise token t < entry_nvis[e] is visible iff bit (t % 32) of
 *       mask[entry_mask[e] + t / 32] is set; an entry has ceil(nvis/32) words.
 *       Every entry sees at least one token.
 *   red_off[Q+1], red_entry[E]
 *       the reduction: query q merges the partials of entries
 *       red_entry[red_off[q] .. red_off[q+1]) in that order (ascending entry,
 *       hence ascending group).  Every query has at least one entry, and the
 *       union of its entries' visible tokens is exactly its path, each token
 *       once (treeplan_check verifies this).
 *
 * Partial results of entry e (fp32): out_e (n_head, head_dim), normalized by
 * its own softmax sum, and lse_e (n_head) = log sum exp(score) over its visible
 * tokens.  The reduction is out_q = sum_e w_e out_e with w_e = exp(lse_e - M) /
 * sum_e' exp(lse_e' - M), M = max_e lse_e.  A score is scale * (q . k) with
 * scale = 1/sqrt(head_dim), and with GQA query head h reads KV head
 * h / (n_head / n_kv_head).
 *
 * ---- IO model (struct treeplan_io, bytes per layer for one step)
 * With e = kv_elt_bytes (2 fp16 on the GPU, 4 fp32 on the CPU), Hq = n_head,
 * Hkv = n_kv_head, D = head_dim, n_g = group_n_tokens[g], E_g = entries of g:
 *   kv       = sum_g n_g * Hkv * D * 2 * e        each group reads its K and V once
 *                                                  (all query heads of a KV head share it)
 *   q        = sum_g E_g * Hq * D * e             Q read once per group entry
 *   mask     = deft:      sum over entries with a bitmask of 4 * ceil(nvis / 32)
 *              tree-mask: sum_g E_g * n_g * e      (dense additive mask, materialized)
 *              seq:       0
 *   partial  = sum over queries with k > 1 entries of k * Hq * (D + 1) * 4 * 2
 *                                                  (out + lse in fp32, written then read)
 *   inter    = tree-mask: sum_g E_g * n_g * Hq * e * 4   (QK^T written + read by the
 *                                                  softmax, probabilities written + read)
 *              others:    0 (fused: scores stay on chip)
 *   out      = Q * Hq * D * e                     final output written
 *   plan     = bytes of the flat arrays (the kernels read them)
 *   total    = the sum of all of the above.
 * Example (tests/test_treeplan.c): prompt 4000, 20 branches of 200 tokens,
 * queries at the 20 leaves: seq reads 20 * 4200 = 84000 tokens of KV,
 * deft-flatten 8000 (every tree token once): 9.5 %.
 */
#ifndef DT_TREEPLAN_H
#define DT_TREEPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tree;

enum treeplan_algo {
	TREEPLAN_SEQ = 0,
	TREEPLAN_DEFT_NODE = 1,
	TREEPLAN_DEFT_FLATTEN = 2,
	TREEPLAN_TREE_MASK = 3,
};
#define TREEPLAN_N_ALGO 4

/* "seq", "deft-node", "deft-flatten", "tree-mask" */
const char *treeplan_algo_name(enum treeplan_algo a);
/* DT_OK, or DT_ERR_ARG + err for an unknown name. */
int treeplan_algo_parse(const char *name, enum treeplan_algo *out, char *err);

struct treeplan_params {
	enum treeplan_algo algo; /* default TREEPLAN_DEFT_FLATTEN */
	int32_t block_size;      /* deft-flatten: KV tokens per block (default 128) */
	int32_t tile_queries;    /* most entries per group for deft-node, deft-flatten and
				    tree-mask (default 64) */
};
struct treeplan_params treeplan_default_params(void);

struct treeplan_query {
	int32_t node;  /* node id */
	int32_t index; /* token index in the node, 0 .. n_tokens-1 */
};

/* The plan of one step in flat arrays; layout documented above.  Owned by
 * the plan, valid until the next treeplan_update() / treeplan_free(). */
struct treeplan_flat {
	int32_t n_queries, n_groups, n_runs, n_entries, n_mask_words;
	int32_t page_size;         /* the pool's page size */
	int32_t max_group_tokens;  /* largest group_n_tokens */
	int32_t max_group_entries; /* most entries in one group */
	int32_t *group_run_begin;  /* (n_groups) */
	int32_t *group_run_end;    /* (n_groups) */
	int32_t *group_n_tokens;   /* (n_groups) */
	int32_t *group_entry_off;  /* (n_groups + 1) */
	int32_t *run_page;         /* (n_runs) */
	int32_t *run_slot;         /* (n_runs) */
	int32_t *run_len;          /* (n_runs) */
	int32_t *run_tok;          /* (n_runs) */
	int32_t *entry_query;      /* (n_entries) */
	int32_t *entry_group;      /* (n_entries) */
	int32_t *entry_nvis;       /* (n_entries) */
	int32_t *entry_mask;       /* (n_entries) word offset into mask, or -1 */
	uint32_t *mask;            /* (n_mask_words) */
	int32_t *red_off;          /* (n_queries + 1) */
	int32_t *red_entry;        /* (n_entries) */
};

struct treeplan_io_params {
	int32_t n_head;       /* query heads */
	int32_t n_kv_head;    /* KV heads */
	int32_t head_dim;
	int32_t kv_elt_bytes; /* bytes per K/V/Q element: 2 (fp16) or 4 (fp32) */
};

struct treeplan_io { /* bytes per layer for one step; formulas above */
	uint64_t kv, q, mask, partial, inter, out, plan, total;
};

struct treeplan_stats {
	int64_t n_updates;     /* treeplan_update calls that succeeded */
	int64_t n_rebuilds;    /* of which rebuilt the layout */
	int64_t n_patched;     /* of which patched grown nodes into the layout */
	int64_t layout_ns;     /* last update: time spent on the layout (rebuild or patch) */
	int64_t flat_ns;       /* last update: time spent writing the flat arrays */
	int32_t n_blocks;      /* blocks in the layout (deft-flatten, deft-node, tree-mask) */
	int32_t n_blocks_computed; /* last update: blocks whose output was recomputed (the
				      others were reused from the update before) */
};

struct treeplan;

struct treeplan *treeplan_new(const struct treeplan_params *p, char *err);
void treeplan_free(struct treeplan *plan);
const struct treeplan_params *treeplan_params(const struct treeplan *plan);

/* Builds the plan of one step for tree t and queries q[0 .. n) (their order
 * is the row order of q/out in attention).  DT_OK, or DT_ERR_ARG + err for a
 * bad query (not in the tree, index out of range); the plan is then empty. */
int treeplan_update(struct treeplan *plan, const struct tree *t, const struct treeplan_query *q,
		    int32_t n, char *err);
/* Forgets the layout: the next update rebuilds it (for measurements). */
void treeplan_invalidate(struct treeplan *plan);
const struct treeplan_flat *treeplan_flat(const struct treeplan *plan);
const struct treeplan_stats *treeplan_stats(const struct treeplan *plan);

/* The IO model of the current plan (see above). */
void treeplan_io(const struct treeplan *plan, const struct treeplan_io_params *p,
		 struct treeplan_io *io);

/* The queries of a plain decode step: the last token of every live leaf with
 * at least one token, in depth-first order.  Writes at most cap, returns the
 * count. */
int32_t treeplan_leaf_queries(const struct tree *t, struct treeplan_query *out, int32_t cap);

/* Verifies the flat plan against the tree: array bounds and offsets, and for
 * every query that its entries see exactly the tokens of its path, each once.
 * 0, or -1 + err. */
int treeplan_check(const struct treeplan *plan, const struct tree *t, char *err);

#endif
