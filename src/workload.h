/*
 * workload.h — tree shapes for replay and benchmarks (shared/workloads/README.md).
 *
 * Three kinds:
 *   reasoning  a JSON list of Graph-of-Thoughts trees (DeFT sorting / docmerge):
 *              nodes with a token count and the iterations [start, end] during
 *              which they grow by one token per iteration; the root holds the
 *              prompt (start = 1 - value, end = 0).
 *   spec       a speculative-decoding token tree (Medusa style): t candidate
 *              tokens given as paths of child ranks, plus records of how many
 *              tokens each verification step accepted.
 *   few-shot   synthetic: one prompt of P tokens, b branches, s steps each
 *              (built in memory as a reasoning tree of 1 + b nodes).
 *
 * Files are untrusted: every field is type-checked, ids must be unique and
 * consistent with their keys, children must exist, every node has at most
 * one parent, everything hangs off one root (no cycles), iteration ranges
 * agree with the token counts, and sizes are bounded (WORKLOAD_MAX_*).
 * Errors read "path: tree 3 node 17: field \"end\" (expected ..., found ...)".
 */
#ifndef DT_WORKLOAD_H
#define DT_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKLOAD_MAX_FILE_BYTES (512u << 20) /* a workload file larger than this is refused */
#define WORKLOAD_MAX_TREES 100000         /* trees in a reasoning file */
#define WORKLOAD_MAX_NODES (1 << 20)      /* nodes in one reasoning tree */
#define WORKLOAD_MAX_NODE_TOKENS (1 << 24) /* tokens in one node */
#define WORKLOAD_MAX_TREE_TOKENS (1 << 28) /* tokens in one tree */
#define WORKLOAD_MAX_SPEC_SIZE 4096       /* candidates of a speculative token tree */
#define WORKLOAD_MAX_SPEC_DEPTH 64        /* depth of a speculative token tree */
#define WORKLOAD_MAX_RECORDS 100000       /* records of a speculative workload */
#define WORKLOAD_MAX_RECORD_STEPS (1 << 20) /* verification steps of one record */

enum workload_kind {
	WORKLOAD_REASONING = 1,
	WORKLOAD_SPEC = 2,
	WORKLOAD_FEWSHOT = 3,
};

struct workload_node {
	int32_t id;          /* the file's id (few-shot: the index) */
	int32_t parent;      /* index in nodes[], -1 for the root */
	int32_t value;       /* tokens in the node (>= 0) */
	int32_t start, end;  /* first and last iteration it grows; end = start + value - 1 */
	int32_t first_child; /* its children are children[first_child .. + n_children) */
	int32_t n_children;
	int32_t depth;       /* 0 for the root */
};

/* One reasoning tree.  nodes[0] is the root; nodes are in breadth-first
 * order, so a parent's index is always smaller than its children's. */
struct workload_tree {
	bool incompleted;             /* the file's "incompleted" flag */
	char *prompt;                 /* the prompt text; NULL for synthetic shapes */
	int32_t n_nodes;
	struct workload_node *nodes;  /* (n_nodes) */
	int32_t *children;            /* (n_nodes - 1) child indices, grouped by parent */
	int32_t n_iters;              /* last iteration in which any node grows (>= 0) */
	int64_t n_tokens;             /* sum of node values, prompt included */
	int32_t max_live;             /* most nodes growing in one iteration */
};

struct workload_spec_record {
	int32_t n_turns;
	char **turns;        /* (n_turns) the prompt turns */
	int32_t n_steps;
	int32_t *accept;     /* (n_steps) tokens accepted per verification step, 0 .. max_depth + 1 */
	double avg_accept;   /* the file's Avg_accept_length */
};

/* A speculative token tree: candidate 0 is the root (the token the base model
 * already chose), candidates 1.. are the Tree_Structure paths in breadth-first
 * order (by depth, ties in file order). */
struct workload_spec {
	int32_t tree_id;
	int32_t size;        /* t = Token_Tree_size: candidates including the root */
	int32_t *parent;     /* (size) parent candidate, -1 for the root */
	int32_t *depth;      /* (size) 0 for the root */
	int32_t *rank;       /* (size) child rank under its parent (last element of its path), 0 for root */
	int32_t max_depth;
	int32_t n_records;
	struct workload_spec_record *records; /* (n_records) */
};

struct workload {
	enum workload_kind kind;
	char *name;                    /* the path, or "few-shot(P,b,s)" */
	int32_t n_trees;               /* reasoning / few-shot */
	struct workload_tree *trees;   /* (n_trees) */
	struct workload_spec *spec;    /* kind == WORKLOAD_SPEC */
};

/* Reads and validates a workload file (a reasoning list or a spec tree, told
 * apart by the top-level JSON type).  NULL + message in err (DT_ERR_LEN). */
struct workload *workload_load(const char *path, char *err);
/* The same from text in memory; name is used in messages. */
struct workload *workload_parse(const char *text, size_t len, const char *name, char *err);
/* The synthetic few-shot shape: a prompt of prompt_len tokens (>= 1), then
 * n_branches (>= 1) children that each grow one token per iteration for
 * n_steps (>= 1) iterations.  NULL + err for out-of-range arguments. */
struct workload *workload_fewshot(int32_t prompt_len, int32_t n_branches, int32_t n_steps, char *err);
void workload_free(struct workload *w);

const char *workload_kind_name(enum workload_kind k);

/* Nodes of t growing at iteration iter (start <= iter <= end): writes their
 * indices to out (capacity t->n_nodes, may be NULL to count) in index order
 * and returns how many. */
int32_t workload_tree_live(const struct workload_tree *t, int32_t iter, int32_t *out);

#endif
