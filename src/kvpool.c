/*
 * kvpool.c — fixed-size KV pages, reference counts and a free stack.
 *
 * DESIGN
 *   count[p] is 0 for a free page and the number of users otherwise.  Free
 *   pages sit on a stack (free_stack[0 .. n_free)); allocation pops from the
 *   top, so the most recently freed page (warm in cache) is reused first.
 *   Allocation of n pages is all-or-nothing, so a refused step leaves the pool
 *   exactly as it was.  K/V memory is one calloc per layer and per K/V; the OS
 *   maps it on first touch.
 */
#include "config.h"

#include "kvpool.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

struct kvpool {
	struct kvpool_params p;
	int32_t n_pages;
	int32_t n_free;
	int32_t *count;      /* (n_pages) users of each page, 0 = free */
	int32_t *free_stack; /* (n_pages) free page ids in [0, n_free) */
	size_t page_elems;   /* floats of one page of one layer of K (or V) */
	float **k, **v;      /* (n_layer) each (n_pages, n_kv_heads, page_size, head_dim), or NULL */
};

struct kvpool_params kvpool_default_params(void)
{
	return (struct kvpool_params){
		.page_size = 16,
		.n_layer = 1,
		.n_kv_heads = 1,
		.head_dim = 64,
		.elt_bytes = 4,
		.budget_bytes = (size_t)256 << 20,
		.host_storage = true,
	};
}

static size_t page_bytes_of(const struct kvpool_params *p)
{
	return (size_t)p->page_size * (size_t)p->n_layer * (size_t)p->n_kv_heads *
	       (size_t)p->head_dim * 2 * (size_t)p->elt_bytes;
}

struct kvpool *kvpool_new(const struct kvpool_params *p, char *err)
{
	if (p->page_size < 1 || p->page_size > (1 << 16))
		return dt_err(err, "kvpool: page_size (expected 1 .. 65536, found %d)", p->page_size),
		       NULL;
	if (p->n_layer < 1 || p->n_kv_heads < 1 || p->head_dim < 1 || p->n_layer > 4096 ||
	    p->n_kv_heads > 4096 || p->head_dim > 4096)
		return dt_err(err, "kvpool: shape (expected 1 .. 4096 layers, kv heads, head_dim, found "
				   "%d, %d, %d)",
			      p->n_layer, p->n_kv_heads, p->head_dim),
		       NULL;
	if (p->elt_bytes != 2 && p->elt_bytes != 4)
		return dt_err(err, "kvpool: elt_bytes (expected 2 or 4, found %d)", p->elt_bytes), NULL;
	if (p->host_storage && p->elt_bytes != 4)
		return dt_err(err, "kvpool: host storage is fp32 (expected elt_bytes 4, found %d)",
			      p->elt_bytes),
		       NULL;
	size_t pb = page_bytes_of(p);
	uint64_t n = p->budget_bytes / pb;
	if (n < 1)
		return dt_err(err, "kvpool: budget %zu bytes holds no page (expected at least %zu bytes)",
			      p->budget_bytes, pb),
		       NULL;
	if (n > INT32_MAX / 2)
		n = INT32_MAX / 2;

	struct kvpool *pool = xcalloc(1, sizeof(*pool));
	pool->p = *p;
	pool->n_pages = (int32_t)n;
	pool->n_free = pool->n_pages;
	pool->count = xcalloc((size_t)n, sizeof(int32_t));
	pool->free_stack = xmallocarray((size_t)n, sizeof(int32_t));
	/* page 0 on top of the stack: pages are handed out in increasing order at first */
	for (int32_t i = 0; i < pool->n_pages; i++)
		pool->free_stack[i] = pool->n_pages - 1 - i;
	pool->page_elems = (size_t)p->n_kv_heads * (size_t)p->page_size * (size_t)p->head_dim;
	if (p->host_storage) {
		pool->k = xcalloc((size_t)p->n_layer, sizeof(float *));
		pool->v = xcalloc((size_t)p->n_layer, sizeof(float *));
		for (int32_t l = 0; l < p->n_layer; l++) {
			pool->k[l] = xcalloc((size_t)n * pool->page_elems, sizeof(float));
			pool->v[l] = xcalloc((size_t)n * pool->page_elems, sizeof(float));
		}
	}
	return pool;
}

void kvpool_free(struct kvpool *pool)
{
	if (!pool)
		return;
	if (pool->k) {
		for (int32_t l = 0; l < pool->p.n_layer; l++) {
			free(pool->k[l]);
			free(pool->v[l]);
		}
	}
	free(pool->k);
	free(pool->v);
	free(pool->count);
	free(pool->free_stack);
	free(pool);
}

const struct kvpool_params *kvpool_params(const struct kvpool *pool)
{
	return &pool->p;
}

// ---- sizes and counts

size_t kvpool_page_bytes(const struct kvpool *pool)
{
	return page_bytes_of(&pool->p);
}

size_t kvpool_token_bytes(const struct kvpool *pool)
{
	return page_bytes_of(&pool->p) / (size_t)pool->p.page_size;
}

int32_t kvpool_n_pages(const struct kvpool *pool)
{
	return pool->n_pages;
}

int32_t kvpool_n_free(const struct kvpool *pool)
{
	return pool->n_free;
}

int32_t kvpool_n_used(const struct kvpool *pool)
{
	return pool->n_pages - pool->n_free;
}

// ---- pages

int kvpool_alloc(struct kvpool *pool, int32_t n, int32_t *pages, char *err)
{
	DT_ASSERT(n >= 0);
	if (n > pool->n_free) {
		dt_err(err,
		       "kv pool full: need %d pages, %d free of %d (budget %.2f MiB, %zu bytes per page)",
		       n, pool->n_free, pool->n_pages, (double)pool->p.budget_bytes / (1 << 20),
		       kvpool_page_bytes(pool));
		return DT_ERR_FULL;
	}
	for (int32_t i = 0; i < n; i++) {
		int32_t pg = pool->free_stack[--pool->n_free];
		DT_ASSERT(pool->count[pg] == 0);
		pool->count[pg] = 1;
		pages[i] = pg;
	}
	return DT_OK;
}

void kvpool_ref(struct kvpool *pool, int32_t page)
{
	DT_ASSERT(page >= 0 && page < pool->n_pages && pool->count[page] > 0);
	pool->count[page]++;
}

void kvpool_unref(struct kvpool *pool, int32_t page)
{
	DT_ASSERT(page >= 0 && page < pool->n_pages && pool->count[page] > 0);
	if (--pool->count[page] == 0)
		pool->free_stack[pool->n_free++] = page;
}

int32_t kvpool_refcount(const struct kvpool *pool, int32_t page)
{
	DT_ASSERT(page >= 0 && page < pool->n_pages);
	return pool->count[page];
}

int kvpool_check(const struct kvpool *pool, const int32_t *users, char *err)
{
	if (pool->n_free < 0 || pool->n_free > pool->n_pages)
		return dt_err(err, "kvpool: free count (expected 0 .. %d, found %d)", pool->n_pages,
			      pool->n_free);
	uint8_t *seen = xcalloc((size_t)pool->n_pages, 1);
	int rc = 0;
	for (int32_t i = 0; i < pool->n_free && rc == 0; i++) {
		int32_t pg = pool->free_stack[i];
		if (pg < 0 || pg >= pool->n_pages)
			rc = dt_err(err, "kvpool: free list entry %d (expected a page id, found %d)", i, pg);
		else if (seen[pg])
			rc = dt_err(err, "kvpool: page %d is twice on the free list", pg);
		else if (pool->count[pg] != 0)
			rc = dt_err(err, "kvpool: free page %d has count %d (expected 0)", pg,
				    pool->count[pg]);
		else
			seen[pg] = 1;
	}
	for (int32_t pg = 0; pg < pool->n_pages && rc == 0; pg++) {
		if (pool->count[pg] < 0)
			rc = dt_err(err, "kvpool: page %d count %d (expected >= 0)", pg, pool->count[pg]);
		else if (pool->count[pg] == 0 && !seen[pg])
			rc = dt_err(err, "kvpool: page %d has count 0 but is not on the free list", pg);
		else if (users && pool->count[pg] != users[pg])
			rc = dt_err(err, "kvpool: page %d count %d (expected %d users)", pg,
				    pool->count[pg], users[pg]);
	}
	free(seen);
	return rc;
}

// ---- K/V memory

float *kvpool_k(const struct kvpool *pool, int32_t layer)
{
	DT_ASSERT(layer >= 0 && layer < pool->p.n_layer);
	return pool->k ? pool->k[layer] : NULL;
}

float *kvpool_v(const struct kvpool *pool, int32_t layer)
{
	DT_ASSERT(layer >= 0 && layer < pool->p.n_layer);
	return pool->v ? pool->v[layer] : NULL;
}

void kvpool_store(struct kvpool *pool, int32_t layer, int32_t page, int32_t slot, const float *k,
		  const float *v)
{
	const struct kvpool_params *p = &pool->p;
	DT_ASSERT(pool->k && layer >= 0 && layer < p->n_layer);
	DT_ASSERT(page >= 0 && page < pool->n_pages && slot >= 0 && slot < p->page_size);
	size_t hd = (size_t)p->head_dim;
	float *kb = pool->k[layer] + (size_t)page * pool->page_elems + (size_t)slot * hd;
	float *vb = pool->v[layer] + (size_t)page * pool->page_elems + (size_t)slot * hd;
	for (int32_t h = 0; h < p->n_kv_heads; h++) {
		size_t off = (size_t)h * (size_t)p->page_size * hd;
		memcpy(kb + off, k + (size_t)h * hd, hd * sizeof(float));
		memcpy(vb + off, v + (size_t)h * hd, hd * sizeof(float));
	}
}
