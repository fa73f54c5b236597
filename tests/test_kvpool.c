/* test_kvpool.c — page accounting, all-or-nothing allocation, the budget,
 * the consistency check, and the K/V memory layout. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "kvpool.h"
#include "tap.h"

static struct kvpool_params small_params(void)
{
	struct kvpool_params p = kvpool_default_params();
	p.page_size = 4;
	p.n_layer = 2;
	p.n_kv_heads = 3;
	p.head_dim = 8;
	/* page bytes = 4 slots * 2 layers * 3 heads * 8 * 2 (K,V) * 4 = 1536 */
	p.budget_bytes = 1536 * 10 + 1000; /* 10 pages and change */
	return p;
}

int main(void)
{
	char err[DT_ERR_LEN];
	const char *env_seed = getenv("DT_SEED"); /* DT_SEED=n reruns a printed seed */
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
	srand(seed);
	tap_plan_lazy();
	diag("seed %u (DT_SEED=%u to repeat)", seed, seed);

	// ---- params and sizes
	struct kvpool_params p = kvpool_default_params();
	ok(p.page_size == 16 && p.elt_bytes == 4 && p.host_storage, "defaults: 16-token pages, fp32, host storage");
	p = small_params();
	struct kvpool *pool = kvpool_new(&p, err);
	ok(pool != NULL, "a small pool is made");
	ok(kvpool_page_bytes(pool) == 1536, "page bytes = 4*2*3*8*2*4 = 1536 (found %zu)", kvpool_page_bytes(pool));
	ok(kvpool_token_bytes(pool) == 384, "token bytes = 384 (found %zu)", kvpool_token_bytes(pool));
	ok(kvpool_n_pages(pool) == 10, "budget 16360 bytes holds 10 pages (found %d)", kvpool_n_pages(pool));
	ok(kvpool_n_free(pool) == 10 && kvpool_n_used(pool) == 0, "all pages start free");
	ok(kvpool_check(pool, NULL, err) == 0, "fresh pool is consistent");

	struct kvpool_params bad = small_params();
	bad.budget_bytes = 1000;
	ok(kvpool_new(&bad, err) == NULL && strstr(err, "holds no page"), "a budget below one page is refused: %s", err);
	bad = small_params();
	bad.elt_bytes = 2;
	ok(kvpool_new(&bad, err) == NULL && strstr(err, "fp32"), "fp16 with host storage is refused: %s", err);
	bad.host_storage = false;
	struct kvpool *p16 = kvpool_new(&bad, err);
	ok(p16 && kvpool_n_pages(p16) == 21 && kvpool_k(p16, 0) == NULL,
	   "fp16 accounting-only pool: 16360 / 768 = 21 pages, no host K/V");
	kvpool_free(p16);
	bad = small_params();
	bad.page_size = 0;
	ok(kvpool_new(&bad, err) == NULL, "page size 0 is refused: %s", err);

	// ---- allocation
	int32_t pages[16];
	ok(kvpool_alloc(pool, 4, pages, err) == DT_OK && kvpool_n_free(pool) == 6, "4 pages taken, 6 free");
	bool distinct = true, counted = true;
	for (int i = 0; i < 4; i++) {
		counted = counted && kvpool_refcount(pool, pages[i]) == 1;
		for (int j = 0; j < i; j++)
			distinct = distinct && pages[i] != pages[j];
	}
	ok(distinct && counted, "allocated pages are distinct with count 1");
	int rc = kvpool_alloc(pool, 7, pages + 4, err);
	ok(rc == DT_ERR_FULL && strstr(err, "kv pool full") && kvpool_n_free(pool) == 6,
	   "7 more pages with 6 free: refused, nothing taken (%s)", err);
	ok(kvpool_check(pool, NULL, err) == 0, "pool consistent after a refused allocation");
	ok(kvpool_alloc(pool, 6, pages + 4, err) == DT_OK && kvpool_n_free(pool) == 0, "the last 6 pages are taken");
	ok(kvpool_alloc(pool, 1, pages + 10, err) == DT_ERR_FULL, "a full pool refuses one page");

	kvpool_ref(pool, pages[0]);
	ok(kvpool_refcount(pool, pages[0]) == 2, "ref raises the count to 2");
	kvpool_unref(pool, pages[0]);
	ok(kvpool_refcount(pool, pages[0]) == 1 && kvpool_n_free(pool) == 0, "unref to 1 keeps the page");
	kvpool_unref(pool, pages[0]);
	ok(kvpool_refcount(pool, pages[0]) == 0 && kvpool_n_free(pool) == 1, "unref to 0 frees the page");
	int32_t again;
	ok(kvpool_alloc(pool, 1, &again, err) == DT_OK && again == pages[0], "the freed page is handed out next");

	// ---- the consistency check can fail
	int32_t *users = xcalloc((size_t)kvpool_n_pages(pool), sizeof(int32_t));
	for (int i = 0; i < 10; i++)
		users[pages[i]] = 1;
	ok(kvpool_check(pool, users, err) == 0, "counts equal users");
	users[pages[3]] = 2;
	ok(kvpool_check(pool, users, err) != 0 && strstr(err, "count 1 (expected 2 users)"),
	   "a count that differs from its users is reported: %s", err);
	free(users);

	// ---- random ref/unref against a shadow count
	int32_t np = kvpool_n_pages(pool);
	for (int i = 0; i < 10; i++)
		kvpool_unref(pool, pages[i]);
	int32_t *shadow = xcalloc((size_t)np, sizeof(int32_t));
	bool fine = true;
	for (int step = 0; step < 3000 && fine; step++) {
		int op = rand() % 3;
		int32_t pg = rand() % np;
		if (op == 0) {
			int32_t n = 1 + rand() % 3, got[3];
			int r = kvpool_alloc(pool, n, got, err);
			int32_t free_shadow = 0;
			for (int32_t k = 0; k < np; k++)
				free_shadow += shadow[k] == 0;
			if (n > free_shadow)
				fine = fine && r == DT_ERR_FULL;
			else {
				fine = fine && r == DT_OK;
				for (int32_t k = 0; k < n && fine; k++) {
					fine = shadow[got[k]] == 0;
					shadow[got[k]] = 1;
				}
			}
		} else if (op == 1 && shadow[pg] > 0) {
			kvpool_ref(pool, pg);
			shadow[pg]++;
		} else if (op == 2 && shadow[pg] > 0) {
			kvpool_unref(pool, pg);
			shadow[pg]--;
		}
		fine = fine && kvpool_check(pool, shadow, err) == 0;
	}
	ok(fine, "3000 random alloc/ref/unref keep counts equal to a shadow count (%s)", fine ? "ok" : err);
	free(shadow);
	kvpool_free(pool);

	// ---- K/V memory layout: (n_pages, n_kv_heads, page_size, head_dim) per layer
	p = small_params();
	pool = kvpool_new(&p, err);
	float k[3 * 8], v[3 * 8];
	for (int i = 0; i < 24; i++) {
		k[i] = (float)(1000 + i);
		v[i] = (float)(-1000 - i);
	}
	kvpool_store(pool, 1, 7, 2, k, v);
	const float *kb = kvpool_k(pool, 1), *vb = kvpool_v(pool, 1);
	bool layout = true;
	for (int h = 0; h < 3; h++)
		for (int d = 0; d < 8; d++) {
			size_t at = (((size_t)7 * 3 + (size_t)h) * 4 + 2) * 8 + (size_t)d;
			layout = layout && kb[at] == k[h * 8 + d] && vb[at] == v[h * 8 + d];
		}
	ok(layout, "kvpool_store writes K/V at ((page*n_kv_heads + head)*page_size + slot)*head_dim");
	ok(kvpool_k(pool, 0)[(((size_t)7 * 3) * 4 + 2) * 8] == 0.0f, "other layers are untouched");
	kvpool_free(pool);
	kvpool_free(NULL);
	ok(1, "kvpool_free(NULL) is a no-op");
	return tap_done();
}
