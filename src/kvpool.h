/*
 * kvpool.h — a pool of fixed-size KV pages with reference counts.
 *
 * The pool owns the K and V memory of every token of a tree (src/tree.h) and
 * nothing else: which token lives in which (page, slot) is the tree's business.
 * A page holds `page_size` consecutive token slots for every layer.  A page is
 * free (count 0) or used by `count` tree nodes; kvpool_unref() of the last user
 * returns it to the free list.  The number of pages is fixed when the pool is
 * made: budget_bytes / kvpool_page_bytes(); running out is a normal condition
 * (DT_ERR_FULL from kvpool_alloc), never an abort.
 *
 * Memory layout (host, fp32), one K array and one V array per layer:
 *
 *     k[layer]: (n_pages, n_kv_heads, page_size, head_dim)   float
 *     v[layer]: (n_pages, n_kv_heads, page_size, head_dim)   float
 *
 * so the element (layer, page, head, slot, d) sits at
 *     k[layer][((page * n_kv_heads + head) * page_size + slot) * head_dim + d].
 * Why this order: attention runs per layer over runs of slots of one page and
 * one KV head at a time, which are then one contiguous (len, head_dim) matrix;
 * a GPU mirror uses the same indexing with page ids from the attention plan
 * (src/treeplan.h), so a page id means the same thing on both sides.  Pages are
 * allocated lazily by the OS (calloc), so an unused budget costs no memory.
 *
 * With host_storage = false the pool only keeps the page accounting (ids and
 * counts) and no K/V memory: for a backend that keeps K/V on the device, and
 * for plan and IO-model work on large trees.
 *
 * Not thread-safe: one thread (the engine's) changes the pool; attention
 * threads only read K/V through kvpool_k()/kvpool_v().
 */
#ifndef DT_KVPOOL_H
#define DT_KVPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvpool_params {
	int32_t page_size;   /* token slots per page (default 16) */
	int32_t n_layer;     /* layers (default 1) */
	int32_t n_kv_heads;  /* KV heads per layer (default 1) */
	int32_t head_dim;    /* floats per head (default 64) */
	int32_t elt_bytes;   /* bytes per K/V element used for the budget: 4 (fp32 host, default)
				or 2 (fp16 device mirror; then host_storage must be false) */
	size_t budget_bytes; /* memory budget (default 256 MiB); n_pages = budget / page bytes */
	bool host_storage;   /* keep K/V in host memory (default true) */
};
struct kvpool_params kvpool_default_params(void);

struct kvpool;

/* NULL with a message in err when the params are invalid or the budget holds
 * no page at all. */
struct kvpool *kvpool_new(const struct kvpool_params *p, char *err);
void kvpool_free(struct kvpool *pool);
const struct kvpool_params *kvpool_params(const struct kvpool *pool);

// ---- sizes and counts
size_t kvpool_page_bytes(const struct kvpool *pool);  /* all layers, K and V */
size_t kvpool_token_bytes(const struct kvpool *pool); /* one token slot, all layers, K and V */
int32_t kvpool_n_pages(const struct kvpool *pool);    /* pages in the budget */
int32_t kvpool_n_free(const struct kvpool *pool);
int32_t kvpool_n_used(const struct kvpool *pool);

// ---- pages
/* Takes n free pages (count 1 each) into pages[0..n) or none at all:
 * DT_OK, or DT_ERR_FULL with a message ("kv pool full: ...") and nothing changed. */
int kvpool_alloc(struct kvpool *pool, int32_t n, int32_t *pages, char *err);
void kvpool_ref(struct kvpool *pool, int32_t page);   /* count + 1 (page must be in use) */
void kvpool_unref(struct kvpool *pool, int32_t page); /* count - 1; frees the page at 0 */
int32_t kvpool_refcount(const struct kvpool *pool, int32_t page);

/* Pool invariants: free list and counts agree; if users is not NULL, every
 * page's count equals users[page] (n_pages entries).  0, or -1 + err. */
int kvpool_check(const struct kvpool *pool, const int32_t *users, char *err);

// ---- K/V memory (host_storage only; NULL otherwise)
/* Base of a layer's K or V: (n_pages, n_kv_heads, page_size, head_dim). */
float *kvpool_k(const struct kvpool *pool, int32_t layer);
float *kvpool_v(const struct kvpool *pool, int32_t layer);
/* Writes one token's K and V of one layer: k, v: (n_kv_heads, head_dim). */
void kvpool_store(struct kvpool *pool, int32_t layer, int32_t page, int32_t slot,
		  const float *k, const float *v);

#endif
