/* test_tree.c — the token tree over the KV page pool: fork at every position,
 * split, prune, the budget, sharing ratios, and a long random operation
 * sequence checked against a plain mirror of every node's path, with the
 * consistency check (tree + pool) after every operation. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "kvpool.h"
#include "tap.h"
#include "tree.h"

#define HD 4 /* head_dim of the test pools: K = (token id, position, 7, 1), V = -K */

static struct kvpool *make_pool(int32_t ps, int32_t n_pages)
{
	char err[DT_ERR_LEN];
	struct kvpool_params p = kvpool_default_params();
	p.page_size = ps;
	p.n_layer = 1;
	p.n_kv_heads = 1;
	p.head_dim = HD;
	p.budget_bytes = (size_t)n_pages * (size_t)ps * HD * 2 * 4;
	struct kvpool *pool = kvpool_new(&p, err);
	DT_ASSERT(pool && kvpool_n_pages(pool) == n_pages);
	return pool;
}

/* Writes the K/V that encode (token id, position) for tokens [from, to) of node. */
static void write_kv(struct tree *t, int32_t node, int32_t from, int32_t to)
{
	const struct tree_node *n = tree_node(t, node);
	for (int32_t i = from; i < to; i++) {
		int32_t page, slot;
		tree_kv_loc(t, node, i, &page, &slot);
		float k[HD] = { (float)n->tokens[i].id, (float)(n->pos0 + i), 7.0f, 1.0f };
		float v[HD] = { -k[0], -k[1], -k[2], -k[3] };
		kvpool_store(tree_pool(t), 0, page, slot, k, v);
	}
}

/* Every token of every node in the tree still finds its own K/V. */
static bool kv_intact(const struct tree *t)
{
	const struct kvpool *pool = tree_pool(t);
	const int32_t ps = kvpool_params(pool)->page_size;
	const float *kb = kvpool_k(pool, 0), *vb = kvpool_v(pool, 0);
	for (int32_t id = 0; id < tree_n_ids(t); id++) {
		const struct tree_node *n = tree_node(t, id);
		if (!n || n->status == TREE_PRUNED)
			continue;
		for (int32_t i = 0; i < n->n_tokens; i++) {
			int32_t page, slot;
			tree_kv_loc(t, id, i, &page, &slot);
			const float *k = kb + ((size_t)page * (size_t)ps + (size_t)slot) * HD;
			const float *v = vb + ((size_t)page * (size_t)ps + (size_t)slot) * HD;
			if (k[0] != (float)n->tokens[i].id || k[1] != (float)(n->pos0 + i) || v[1] != -k[1])
				return false;
		}
	}
	return true;
}

static int32_t append_n(struct tree *t, int32_t node, int32_t n, int32_t base, char *err)
{
	int32_t ids[256];
	DT_ASSERT(n <= 256);
	for (int32_t i = 0; i < n; i++)
		ids[i] = base + i;
	int32_t before = tree_node(t, node)->n_tokens;
	int rc = tree_append(t, node, ids, NULL, NULL, n, 1, err);
	if (rc == DT_OK)
		write_kv(t, node, before, before + n);
	return rc;
}

static bool path_is(const struct tree *t, int32_t node, const int32_t *want, int32_t n)
{
	int32_t buf[4096];
	int32_t len = tree_path_tokens(t, node, buf, 4096);
	if (len != n)
		return false;
	return memcmp(buf, want, (size_t)n * sizeof(int32_t)) == 0;
}

// ---- fork at every position of a node

static void test_fork_every_position(int32_t ps)
{
	char err[DT_ERR_LEN];
	const int32_t P = 5, L = 37;
	bool all_ok = true, shared_ok = true, data_ok = true;
	char what[DT_ERR_LEN + 64] = "";
	for (int32_t i = 0; i <= L && all_ok; i++) {
		struct kvpool *pool = make_pool(ps, 256);
		int32_t prompt[5] = { 100, 101, 102, 103, 104 };
		struct tree_params tp = tree_default_params();
		struct tree *t = tree_new(&tp, pool, prompt, P, err);
		write_kv(t, 0, 0, P);
		int32_t a = tree_add_child(t, tree_root(t), err);
		append_n(t, a, L, 200, err);
		int32_t full[64];
		tree_path_tokens(t, a, full, 64);
		int32_t used = kvpool_n_used(pool);

		int32_t leaf = tree_fork(t, a, i, err);
		if (leaf < 0 || tree_check(t, err)) {
			snprintf(what, sizeof(what), "fork at %d: %s", i, err);
			all_ok = false;
		}
		all_ok = all_ok && path_is(t, leaf, full, P + i) && path_is(t, a, full, P + L);
		all_ok = all_ok && tree_node(t, leaf)->n_tokens == 0 &&
			 tree_node(t, leaf)->status == TREE_LIVE;
		all_ok = all_ok && kvpool_n_used(pool) == used; /* forking takes no page */
		if (i > 0 && i < L) {
			const struct tree_node *an = tree_node(t, a), *up = tree_node(t, an->parent);
			bool boundary = (up->first_slot + i) % ps != 0;
			shared_ok = shared_ok && up->n_tokens == i && an->n_tokens == L - i &&
				    an->pos0 == P + i &&
				    (!boundary || (up->pages[up->n_pages - 1] == an->pages[0] &&
						   kvpool_refcount(pool, an->pages[0]) == 2));
		}
		/* both branches grow; nothing the other one owns is overwritten */
		all_ok = all_ok && append_n(t, leaf, 9, 300, err) == DT_OK && tree_check(t, err) == 0;
		all_ok = all_ok && append_n(t, a, 9, 400, err) == DT_OK && tree_check(t, err) == 0;
		data_ok = data_ok && kv_intact(t);
		int32_t want[64];
		memcpy(want, full, sizeof(full));
		for (int32_t k = 0; k < 9; k++)
			want[P + i + k] = 300 + k;
		all_ok = all_ok && path_is(t, leaf, want, P + i + 9);
		if (!all_ok && !what[0])
			snprintf(what, sizeof(what), "fork at %d: %s", i, err);
		tree_free(t);
		all_ok = all_ok && kvpool_n_used(pool) == 0;
		kvpool_free(pool);
	}
	ok(all_ok, "page size %d: fork at each of 0..%d of a %d-token node keeps both paths, takes no page, "
		   "and both branches grow %s",
	   ps, L, L, what);
	ok(shared_ok, "page size %d: a split inside a page shares that page (count 2) between the parts", ps);
	ok(data_ok, "page size %d: every token still reads its own K/V after fork + appends", ps);
}

// ---- sharing ratios on known trees

static void test_sharing(void)
{
	char err[DT_ERR_LEN];
	struct kvpool *pool = make_pool(16, 64);
	int32_t prompt[100];
	for (int i = 0; i < 100; i++)
		prompt[i] = i;
	struct tree_params tp = tree_default_params();
	struct tree *t = tree_new(&tp, pool, prompt, 100, err);
	struct tree_stats s;
	tree_stats(t, &s);
	ok(s.stored_tokens == 100 && s.logical_tokens == 100 && s.sharing == 1.0 && s.pages == 7,
	   "a 100-token chain: stored 100, logical 100, sharing 1, 7 pages of 16");
	for (int b = 0; b < 3; b++) {
		int32_t c = tree_add_child(t, tree_root(t), err);
		append_n(t, c, 10, 1000 * b, err);
	}
	tree_stats(t, &s);
	ok(s.stored_tokens == 130 && s.logical_tokens == 330 && fabs(s.sharing - 330.0 / 130.0) < 1e-12 &&
		   s.pages == 10 && s.n_leaves == 3 && s.n_live_leaves == 3,
	   "prompt 100 + 3 branches of 10: stored 130, logical 3*110 = 330, sharing %.4f, 10 pages (found %lld, %lld, %.4f, %d)",
	   330.0 / 130.0, (long long)s.stored_tokens, (long long)s.logical_tokens, s.sharing, s.pages);
	ok(s.kv_bytes == 10 * kvpool_page_bytes(pool), "kv bytes = pages * page bytes");
	tree_free(t);

	/* two levels: prompt 50 -> 2 x 20 -> 2 x 5 each */
	t = tree_new(&tp, pool, prompt, 50, err);
	for (int b = 0; b < 2; b++) {
		int32_t c = tree_add_child(t, tree_root(t), err);
		append_n(t, c, 20, 100, err);
		for (int k = 0; k < 2; k++) {
			int32_t g = tree_add_child(t, c, err);
			append_n(t, g, 5, 200, err);
		}
	}
	tree_stats(t, &s);
	ok(s.stored_tokens == 110 && s.logical_tokens == 300 && s.n_nodes == 7,
	   "prompt 50, 2 x 20, 4 x 5: stored 110, logical 4*75 = 300, 7 nodes (found %lld, %lld, %d)",
	   (long long)s.stored_tokens, (long long)s.logical_tokens, s.n_nodes);
	tree_free(t);
	kvpool_free(pool);
}

// ---- the budget

static void test_budget(void)
{
	char err[DT_ERR_LEN];
	struct kvpool *pool = make_pool(4, 8); /* 32 slots */
	int32_t prompt[10] = { 0 };
	struct tree_params tp = tree_default_params();
	struct tree *big = tree_new(&tp, pool, (int32_t[40]){ 0 }, 40, err);
	ok(big == NULL && strstr(err, "kv pool full") && kvpool_n_used(pool) == 0,
	   "a 40-token prompt in 32 slots is refused and takes nothing: %s", err);

	struct tree *t = tree_new(&tp, pool, prompt, 10, err); /* 3 pages */
	write_kv(t, tree_root(t), 0, 10);
	int32_t a = tree_add_child(t, tree_root(t), err), b = tree_add_child(t, tree_root(t), err);
	int n_ok = 0, rc = DT_OK;
	for (int step = 0; step < 100 && rc == DT_OK; step++) {
		rc = append_n(t, step % 2 ? b : a, 1, step, err);
		n_ok += rc == DT_OK;
		if (tree_check(t, err))
			break;
	}
	/* 5 pages left for two fresh branches growing in turn: a takes its 3rd page
	 * at its 9th token (append 17), b would need a 6th page at its 9th */
	ok(rc == DT_ERR_FULL && n_ok == 17, "17 single-token appends fit in turn, the 18th is refused (found %d, rc %d)",
	   n_ok, rc);
	ok(strstr(err, "kv pool full") != NULL, "the refusal says why: %s", err);
	uint64_t v = tree_version(t);
	struct tree_stats s0, s1;
	tree_stats(t, &s0);
	rc = append_n(t, a, 4, 0, err); /* a has 9 tokens in 3 pages: 3 slots left, not 4 */
	tree_stats(t, &s1);
	ok(rc == DT_ERR_FULL && tree_version(t) == v && !memcmp(&s0, &s1, sizeof(s0)) &&
		   tree_check(t, err) == 0 && kv_intact(t),
	   "a refused append leaves the tree, its K/V and the pool unchanged and consistent");
	ok(tree_prune(t, b, err) == DT_OK && tree_check(t, err) == 0 && kvpool_n_free(pool) == 2,
	   "pruning a branch returns its 2 pages");
	ok(append_n(t, a, 12, 50, err) == DT_ERR_FULL, "12 more tokens for a do not fit in 3 + 8 slots");
	ok(append_n(t, a, 11, 50, err) == DT_OK && tree_check(t, err) == 0 && kv_intact(t) &&
		   kvpool_n_free(pool) == 0,
	   "11 do: the prune made room for the other branch");
	tree_free(t);
	ok(kvpool_n_free(pool) == 8, "freeing the tree returns every page");
	kvpool_free(pool);
}

// ---- errors and details

static void test_errors(void)
{
	char err[DT_ERR_LEN];
	struct kvpool *pool = make_pool(4, 64);
	int32_t prompt[6] = { 1, 2, 3, 4, 5, 6 };
	struct tree_params tp = tree_default_params();
	struct tree *t = tree_new(&tp, pool, prompt, 6, err);
	write_kv(t, tree_root(t), 0, 6);
	int32_t root = tree_root(t);
	int32_t c = tree_add_child(t, root, err);
	append_n(t, c, 5, 10, err);
	ok(tree_append(t, root, prompt, NULL, NULL, 1, 0, err) == DT_ERR_ARG && strstr(err, "expected a leaf"),
	   "append to an inner node is refused: %s", err);
	ok(tree_fork(t, root, 0, err) < 0 && strstr(err, "root"), "fork before the root's first token is refused: %s", err);
	ok(tree_prune(t, root, err) == DT_ERR_ARG, "pruning the root is refused: %s", err);
	ok(tree_split(t, c, 0, err) < 0 && tree_split(t, c, 6, err) < 0, "split outside 1 .. n is refused: %s", err);
	ok(tree_split(t, root, 6, err) < 0, "splitting an inner node at its end is refused: %s", err);
	ok(tree_set_status(t, c, TREE_FINISHED, err) == DT_OK &&
		   tree_append(t, c, prompt, NULL, NULL, 1, 0, err) == DT_ERR_ARG,
	   "append to a finished leaf is refused: %s", err);
	ok(tree_live_leaves(t, NULL, 0) == 0, "a finished leaf is not live");
	int32_t f = tree_fork(t, c, 5, err);
	ok(f >= 0 && tree_node(t, f)->parent == c && tree_node(t, c)->n_tokens == 5,
	   "fork at the end of a finished leaf makes a direct child (no split)");
	ok(tree_check(t, err) == 0, "consistent: %s", err);

	/* a live leaf forked at its end: it continues, empty, beside the new leaf */
	int32_t d = tree_add_child(t, root, err);
	append_n(t, d, 3, 50, err); /* pos 6..8: page holds slots 0..2 */
	int32_t e = tree_fork(t, d, 3, err);
	const struct tree_node *dn = tree_node(t, d), *up = tree_node(t, dn->parent);
	ok(e >= 0 && dn->n_tokens == 0 && dn->first_slot == 3 && dn->n_pages == 1 && up->n_tokens == 3 &&
		   tree_node(t, e)->parent == up->id && tree_node(t, e)->n_pages == 0,
	   "fork at a live leaf's end: the leaf keeps its id, empty, continuing at slot 3 of the shared page");
	ok(append_n(t, d, 2, 60, err) == DT_OK && append_n(t, e, 2, 70, err) == DT_OK && tree_check(t, err) == 0 &&
		   kv_intact(t),
	   "both continue without overwriting each other: %s", err);
	int32_t path[16];
	int32_t np = tree_path_nodes(t, e, path, 16);
	ok(np == 3 && path[0] == root && path[1] == up->id && path[2] == e, "path nodes root .. leaf");
	ok(tree_is_ancestor(t, root, e) && tree_is_ancestor(t, e, e) && !tree_is_ancestor(t, d, e),
	   "ancestor test");
	int32_t leaves[8];
	int32_t nl = tree_live_leaves(t, leaves, 8);
	ok(nl == 3 && leaves[0] == f && leaves[1] == d && leaves[2] == e, "live leaves in depth-first order");

	/* pruned nodes */
	int32_t used = kvpool_n_used(pool);
	ok(tree_prune(t, up->id, err) == DT_OK && tree_check(t, err) == 0 && kvpool_n_used(pool) < used,
	   "pruning a subtree returns its pages");
	ok(tree_node(t, d)->status == TREE_PRUNED && tree_node(t, d)->n_tokens == 2 &&
		   tree_node(t, d)->tokens[0].id == 60,
	   "a pruned node keeps its tokens readable (keep_pruned)");
	ok(append_n(t, d, 1, 0, err) == DT_ERR_ARG && tree_fork(t, d, 0, err) < 0 &&
		   tree_prune(t, d, err) == DT_ERR_ARG,
	   "operations on a pruned node are refused: %s", err);
	/* the check can fail: one extra reference on a used page */
	int32_t pg = tree_node(t, root)->pages[0];
	kvpool_ref(pool, pg);
	ok(tree_check(t, err) != 0 && strstr(err, "expected 1 users"), "tree_check notices a count that is not its users: %s", err);
	kvpool_unref(pool, pg);
	ok(tree_check(t, err) == 0, "and passes again once it is undone");
	tree_free(t);

	tp.keep_pruned = false;
	t = tree_new(&tp, pool, prompt, 6, err);
	c = tree_add_child(t, tree_root(t), err);
	tree_prune(t, c, err);
	ok(tree_node(t, c) == NULL && tree_check(t, err) == 0, "without keep_pruned a pruned id has no node");
	tree_free(t);

	/* alternatives follow their tokens through a split */
	tp = tree_default_params();
	t = tree_new(&tp, pool, prompt, 2, err);
	int32_t ids[3] = { 7, 8, 9 };
	float lp[3] = { -0.5f, -1.5f, -2.5f };
	struct tree_alt alts[3 * 4];
	for (int i = 0; i < 12; i++)
		alts[i] = (struct tree_alt){ .id = 500 + i, .logprob = -(float)i };
	ok(tree_append(t, tree_root(t), ids, lp, alts, 3, 4, err) == DT_OK, "append with logprobs and alternatives");
	int32_t old_root = tree_root(t);
	int32_t u = tree_split(t, old_root, 3, err);
	const struct tree_node *lo = tree_node(t, old_root);
	ok(u == tree_root(t) && lo->n_tokens == 2 && lo->tokens[0].id == 8 && lo->tokens[0].logprob == -1.5f &&
		   lo->tokens[0].step == 4 && lo->alts[0].id == 504 && lo->alts[7].id == 511 &&
		   tree_node(t, u)->alts[8].id == 500,
	   "after a split the lower part keeps tokens, logprobs, steps and alternatives; the upper is the new root");
	ok(tree_check(t, err) == 0, "consistent after splitting the root: %s", err);
	tree_free(t);
	tree_free(NULL);
	kvpool_free(pool);
}

// ---- random operations against a mirror

struct mirror {
	int32_t **path; /* (ids) path tokens root .. end of node */
	int32_t *len;
	int32_t cap;
};

static void mirror_set(struct mirror *m, int32_t id, const int32_t *p, int32_t n)
{
	if (id >= m->cap) {
		int32_t c = m->cap ? m->cap : 64;
		while (c <= id)
			c *= 2;
		m->path = xrealloc(m->path, (size_t)c * sizeof(*m->path));
		m->len = xrealloc(m->len, (size_t)c * sizeof(*m->len));
		for (int32_t i = m->cap; i < c; i++) {
			m->path[i] = NULL;
			m->len[i] = 0;
		}
		m->cap = c;
	}
	int32_t *np = xmalloc((size_t)(n + 1) * sizeof(int32_t));
	memcpy(np, p, (size_t)n * sizeof(int32_t));
	free(m->path[id]);
	m->path[id] = np;
	m->len[id] = n;
}

static void test_random_ops(int32_t ps, int n_ops)
{
	char err[DT_ERR_LEN] = "";
	struct kvpool *pool = make_pool(ps, 1024 / ps + 8);
	struct tree_params tp = tree_default_params();
	tp.keep_pruned = rand() % 2;
	int32_t prompt[20];
	for (int i = 0; i < 20; i++)
		prompt[i] = rand() % 1000;
	struct tree *t = tree_new(&tp, pool, prompt, 20, err);
	write_kv(t, tree_root(t), 0, 20);
	struct mirror m = { 0 };
	mirror_set(&m, tree_root(t), prompt, 20);
	int32_t *ids = xmalloc(4096 * sizeof(int32_t)), *buf = xmalloc(4096 * sizeof(int32_t));
	int n_fail = 0, counts[6] = { 0 }, n_full = 0;
	char first[DT_ERR_LEN + 128] = "";

	for (int op = 0; op < n_ops && n_fail == 0; op++) {
		int32_t n_ids = tree_n_ids(t), n_in = 0;
		for (int32_t i = 0; i < n_ids; i++) {
			const struct tree_node *n = tree_node(t, i);
			if (n && n->status != TREE_PRUNED)
				ids[n_in++] = i;
		}
		int32_t node = ids[rand() % n_in];
		const struct tree_node *nd = tree_node(t, node);
		int kind = rand() % 10;
		if (kind < 5) { /* append to a live leaf */
			int32_t nl = tree_live_leaves(t, buf, 4096);
			if (nl == 0)
				continue;
			int32_t leaf = buf[rand() % nl], k = 1 + rand() % 12, base = rand() % 50000;
			int32_t before = tree_node(t, leaf)->n_tokens;
			uint64_t v = tree_version(t);
			int32_t free_before = kvpool_n_free(pool);
			int rc = append_n(t, leaf, k, base, err);
			if (rc == DT_OK) {
				int32_t *p = xmalloc((size_t)(m.len[leaf] + k) * sizeof(int32_t));
				memcpy(p, m.path[leaf], (size_t)m.len[leaf] * sizeof(int32_t));
				for (int32_t i = 0; i < k; i++)
					p[m.len[leaf] + i] = base + i;
				mirror_set(&m, leaf, p, m.len[leaf] + k);
				free(p);
				counts[0]++;
			} else if (rc == DT_ERR_FULL && tree_version(t) == v &&
				   kvpool_n_free(pool) == free_before && tree_node(t, leaf)->n_tokens == before) {
				n_full++;
				/* a policy: prune a random non-root subtree to make room */
				int32_t victim = ids[rand() % n_in];
				if (victim != tree_root(t) && tree_prune(t, victim, err) != DT_OK)
					n_fail++;
			} else {
				n_fail++;
			}
		} else if (kind < 7) { /* fork anywhere */
			int32_t idx = rand() % (nd->n_tokens + 1);
			int32_t before_ids = tree_n_ids(t), pos0 = nd->pos0;
			bool refuse = idx == 0 && nd->parent < 0;
			int32_t leaf = tree_fork(t, node, idx, err);
			if (refuse) {
				n_fail += leaf >= 0;
			} else if (leaf < 0) {
				n_fail++;
			} else {
				if (tree_n_ids(t) == before_ids + 2) /* split: the upper part is before_ids */
					mirror_set(&m, before_ids, m.path[node], pos0 + idx);
				mirror_set(&m, leaf, m.path[node], pos0 + idx);
				counts[1]++;
			}
		} else if (kind == 7) { /* prune */
			if (nd->parent >= 0) {
				n_fail += tree_prune(t, node, err) != DT_OK;
				counts[2]++;
			}
		} else if (kind == 8) { /* split */
			bool leaf = nd->n_children == 0;
			int32_t hi = leaf ? nd->n_tokens : nd->n_tokens - 1;
			if (hi >= 1) {
				int32_t idx = 1 + rand() % hi, pos0 = nd->pos0;
				int32_t u = tree_split(t, node, idx, err);
				if (u < 0)
					n_fail++;
				else
					mirror_set(&m, u, m.path[node], pos0 + idx);
				counts[3]++;
			}
		} else { /* status */
			if (nd->n_children == 0) {
				n_fail += tree_set_status(t, node, rand() % 4 ? TREE_LIVE : TREE_FINISHED, err) != DT_OK;
				counts[4]++;
			}
		}
		if (n_fail && !first[0])
			snprintf(first, sizeof(first), "op %d kind %d node %d: %s", op, kind, node, err);
		if (tree_check(t, err) != 0) {
			n_fail++;
			if (!first[0])
				snprintf(first, sizeof(first), "check after op %d kind %d: %s", op, kind, err);
		}
		if (op % 64 == 0 || op == n_ops - 1) { /* every path and every K/V */
			for (int32_t i = 0; i < tree_n_ids(t) && !n_fail; i++) {
				const struct tree_node *n = tree_node(t, i);
				if (!n || n->status == TREE_PRUNED)
					continue;
				if (!path_is(t, i, m.path[i], m.len[i])) {
					n_fail++;
					snprintf(first, sizeof(first), "op %d: path of node %d differs from the mirror", op, i);
				}
			}
			if (!n_fail && !kv_intact(t)) {
				n_fail++;
				snprintf(first, sizeof(first), "op %d: a token's K/V was overwritten", op);
			}
		}
	}
	struct tree_stats s;
	tree_stats(t, &s);
	ok(n_fail == 0, "page size %d: %d random ops (%d appends, %d forks, %d prunes, %d splits, %d status, "
			"%d refused for memory): tree_check after each, paths and K/V match a mirror %s",
	   ps, n_ops, counts[0], counts[1], counts[2], counts[3], counts[4], n_full, first);
	diag("page size %d: final tree %d nodes, %d live leaves, stored %lld, logical %lld, sharing %.2f, %d pages",
	     ps, s.n_nodes, s.n_live_leaves, (long long)s.stored_tokens, (long long)s.logical_tokens, s.sharing,
	     s.pages);
	tree_free(t);
	ok(kvpool_n_used(pool) == 0 && kvpool_check(pool, NULL, err) == 0, "page size %d: all pages back after tree_free", ps);
	for (int32_t i = 0; i < m.cap; i++)
		free(m.path[i]);
	free(m.path);
	free(m.len);
	free(ids);
	free(buf);
	kvpool_free(pool);
}

int main(void)
{
	const char *env_seed = getenv("DT_SEED"); /* DT_SEED=n reruns a printed seed */
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 10) : (unsigned)time(NULL);
	srand(seed);
	tap_plan_lazy();
	diag("seed %u (DT_SEED=%u to repeat)", seed, seed);
	test_fork_every_position(1);
	test_fork_every_position(4);
	test_fork_every_position(16);
	test_sharing();
	test_budget();
	test_errors();
	test_random_ops(1, 1500);
	test_random_ops(4, 2000);
	test_random_ops(16, 2000);
	return tap_done();
}
