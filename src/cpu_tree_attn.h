/*
 * cpu_tree_attn.h — tree attention on the CPU: executes a struct treeplan_flat
 * (src/treeplan.h) for one layer, plus a float64 reference.
 *
 *   struct cpu_tree_attn *a = cpu_tree_attn_new(&params, tp, err);
 *   treeplan_update(plan, tree, queries, n, err);            // once per step
 *   for each layer:
 *       cpu_tree_attn_run(a, treeplan_flat(plan), pool, layer, q, out, err);
 *
 * q and out: (n_queries, n_head, head_dim) fp32, rows in the plan's query
 * order; K/V are read from the pool's pages (src/kvpool.h layout).  Each
 * (group, KV head) is one work item: all query heads of that KV head and all
 * entries of the group run against one tile of 32 keys at a time (keys and
 * values stay in L1 while every entry uses them), with an online softmax into
 * the entry's partial (normalized out + log-sum-exp).  Then each query merges
 * its partials in the plan's order.  Every work item is computed by one thread
 * from start to end and the merge order is fixed, so the result does not
 * depend on the thread count or on scheduling: runs are bitwise repeatable.
 * Inner loops have an AVX2+FMA version chosen at run time and a portable one.
 */
#ifndef DT_CPU_TREE_ATTN_H
#define DT_CPU_TREE_ATTN_H

#include <stdbool.h>
#include <stdint.h>

struct kvpool;
struct tree;
struct treeplan_flat;
struct treeplan_query;
struct threadpool;

struct cpu_tree_attn_params {
	int32_t n_head;    /* query heads (a multiple of n_kv_head) */
	int32_t n_kv_head; /* KV heads (the pool's n_kv_heads) */
	int32_t head_dim;  /* the pool's head_dim */
	float scale;       /* score scale (default 0 = 1/sqrt(head_dim)) */
	bool portable;     /* force the portable kernels (default false: AVX2+FMA when present) */
};
struct cpu_tree_attn_params cpu_tree_attn_default_params(void);

struct cpu_tree_attn;

/* tp may be NULL (runs on the calling thread); it must outlive the object. */
struct cpu_tree_attn *cpu_tree_attn_new(const struct cpu_tree_attn_params *p, struct threadpool *tp,
					char *err);
void cpu_tree_attn_free(struct cpu_tree_attn *a);
/* "avx2" or "portable": the kernels in use. */
const char *cpu_tree_attn_kernel_name(const struct cpu_tree_attn *a);

/* Attention of one layer following the plan.  DT_OK, or DT_ERR_ARG + err when
 * the pool's shape does not match or it has no host storage. */
int cpu_tree_attn_run(struct cpu_tree_attn *a, const struct treeplan_flat *plan,
		      const struct kvpool *pool, int32_t layer, const float *q, float *out, char *err);

/* Float64 reference, straight from the tree: for each query, softmax over its
 * path (ancestors' tokens and its own node's tokens 0 .. index).
 * q: (n, n_head, head_dim) fp32; out: (n, n_head, head_dim) float64.
 * scale 0 = 1/sqrt(head_dim).  GQA as above. */
void cpu_tree_attn_ref(const struct tree *t, const struct kvpool *pool, int32_t layer,
		       const struct treeplan_query *queries, int32_t n, const float *q, int32_t n_head,
		       double scale, double *out);

#endif
