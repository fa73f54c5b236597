/*
 * tree.c — token tree over a KV page pool (design in tree.h).
 *
 * DESIGN
 *   Nodes live in a table indexed by id (ids are never reused).  Each node is
 *   a `struct node` whose first member is the public `struct tree_node`; the
 *   extra fields are array capacities.  Every operation checks its arguments
 *   first and reserves what it needs (pages, array room) before it changes
 *   anything, so an error leaves the tree and the pool exactly as they were.
 */
#include "config.h"

#include "tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kvpool.h"

struct node {
	struct tree_node pub;
	int32_t cap_tokens, cap_children, cap_pages;
};

struct tree {
	struct tree_params p;
	struct kvpool *pool;
	int32_t page_size;
	int32_t root;
	struct node **nodes; /* (n_ids) by id; NULL for dropped pruned nodes */
	int32_t n_ids, cap_ids;
	uint64_t uid, version, shape_version;
};

static uint64_t tree_next_uid = 1;

struct tree_params tree_default_params(void)
{
	return (struct tree_params){ .n_alt = 4, .keep_pruned = true };
}

// ---- node storage helpers

static struct node *get(const struct tree *t, int32_t id)
{
	if (id < 0 || id >= t->n_ids)
		return NULL;
	return t->nodes[id];
}

/* The node if it is in the tree (not pruned), else NULL. */
static struct node *get_live(const struct tree *t, int32_t id)
{
	struct node *n = get(t, id);
	return n && n->pub.status != TREE_PRUNED ? n : NULL;
}

static int32_t pages_for(const struct tree *t, int32_t first_slot, int32_t n_tokens)
{
	return (first_slot + n_tokens + t->page_size - 1) / t->page_size;
}

static void grow_i32(int32_t **a, int32_t *cap, int32_t need)
{
	if (need <= *cap)
		return;
	int32_t c = *cap ? *cap : 4;
	while (c < need)
		c = c > INT32_MAX / 2 ? need : c * 2;
	*a = xrealloc(*a, (size_t)c * sizeof(int32_t));
	*cap = c;
}

static void grow_tokens(struct tree *t, struct node *n, int32_t need)
{
	if (need <= n->cap_tokens)
		return;
	int32_t c = n->cap_tokens ? n->cap_tokens : 16;
	while (c < need)
		c = c > INT32_MAX / 2 ? need : c * 2;
	n->pub.tokens = xrealloc(n->pub.tokens, (size_t)c * sizeof(struct tree_token));
	if (t->p.n_alt > 0)
		n->pub.alts = xrealloc(n->pub.alts, (size_t)c * (size_t)t->p.n_alt * sizeof(struct tree_alt));
	n->cap_tokens = c;
}

static struct node *new_node(struct tree *t, int32_t parent)
{
	if (t->n_ids == t->cap_ids) {
		t->cap_ids = t->cap_ids ? t->cap_ids * 2 : 64;
		t->nodes = xrealloc(t->nodes, (size_t)t->cap_ids * sizeof(*t->nodes));
	}
	struct node *n = xcalloc(1, sizeof(*n));
	n->pub.id = t->n_ids;
	n->pub.parent = parent;
	n->pub.status = TREE_LIVE;
	t->nodes[t->n_ids++] = n;
	return n;
}

static void free_node(struct node *n)
{
	if (!n)
		return;
	free(n->pub.tokens);
	free(n->pub.alts);
	free(n->pub.children);
	free(n->pub.pages);
	free(n);
}

static void add_child(struct node *parent, int32_t child)
{
	grow_i32(&parent->pub.children, &parent->cap_children, parent->pub.n_children + 1);
	parent->pub.children[parent->pub.n_children++] = child;
}

static int32_t child_index(const struct node *parent, int32_t child)
{
	for (int32_t i = 0; i < parent->pub.n_children; i++)
		if (parent->pub.children[i] == child)
			return i;
	return -1;
}

// ---- lifetime

struct tree *tree_new(const struct tree_params *p, struct kvpool *pool, const int32_t *prompt,
		      int32_t n, char *err)
{
	if (p->n_alt < 0 || p->n_alt > TREE_MAX_ALT)
		return dt_err(err, "tree: n_alt (expected 0 .. %d, found %d)", TREE_MAX_ALT, p->n_alt),
		       NULL;
	if (n < 0)
		return dt_err(err, "tree: prompt length (expected >= 0, found %d)", n), NULL;
	struct tree *t = xcalloc(1, sizeof(*t));
	t->p = *p;
	t->pool = pool;
	t->page_size = kvpool_params(pool)->page_size;
	t->uid = tree_next_uid++;
	struct node *root = new_node(t, -1);
	t->root = root->pub.id;
	if (n > 0 && tree_append(t, t->root, prompt, NULL, NULL, n, 0, err) != DT_OK) {
		tree_free(t);
		return NULL;
	}
	return t;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	for (int32_t i = 0; i < t->n_ids; i++) {
		struct node *n = t->nodes[i];
		if (!n)
			continue;
		for (int32_t k = 0; k < n->pub.n_pages; k++)
			kvpool_unref(t->pool, n->pub.pages[k]);
		free_node(n);
	}
	free(t->nodes);
	free(t);
}

struct kvpool *tree_pool(const struct tree *t)
{
	return t->pool;
}

int32_t tree_root(const struct tree *t)
{
	return t->root;
}

int32_t tree_n_ids(const struct tree *t)
{
	return t->n_ids;
}

int32_t tree_n_alt(const struct tree *t)
{
	return t->p.n_alt;
}

const struct tree_node *tree_node(const struct tree *t, int32_t id)
{
	struct node *n = get(t, id);
	return n ? &n->pub : NULL;
}

uint64_t tree_uid(const struct tree *t)
{
	return t->uid;
}

uint64_t tree_version(const struct tree *t)
{
	return t->version;
}

uint64_t tree_shape_version(const struct tree *t)
{
	return t->shape_version;
}

// ---- operations

int tree_append(struct tree *t, int32_t id, const int32_t *ids, const float *logprobs,
		const struct tree_alt *alts, int32_t n, int32_t step, char *err)
{
	struct node *nd = get_live(t, id);
	if (!nd)
		return dt_err(err, "append: node %d is not in the tree", id), DT_ERR_ARG;
	struct tree_node *p = &nd->pub;
	if (p->n_children > 0)
		return dt_err(err, "append: node %d has %d children (expected a leaf)", id,
			      p->n_children),
		       DT_ERR_ARG;
	if (p->status != TREE_LIVE)
		return dt_err(err, "append: node %d is finished (expected a live leaf)", id), DT_ERR_ARG;
	if (n < 0 || (int64_t)p->pos0 + p->n_tokens + n > INT32_MAX / 2)
		return dt_err(err, "append: %d tokens to node %d (expected 0 .. %d more)", n, id,
			      INT32_MAX / 2 - p->pos0 - p->n_tokens),
		       DT_ERR_ARG;
	if (n == 0)
		return DT_OK;

	int32_t need = pages_for(t, p->first_slot, p->n_tokens + n) - p->n_pages;
	DT_ASSERT(need >= 0);
	if (need > 0) {
		grow_i32(&p->pages, &nd->cap_pages, p->n_pages + need);
		int rc = kvpool_alloc(t->pool, need, p->pages + p->n_pages, err);
		if (rc != DT_OK)
			return rc; /* nothing changed: page array room is not state */
		p->n_pages += need;
	}
	grow_tokens(t, nd, p->n_tokens + n);
	for (int32_t i = 0; i < n; i++) {
		struct tree_token *tk = &p->tokens[p->n_tokens + i];
		tk->id = ids[i];
		tk->logprob = logprobs ? logprobs[i] : 0.0f;
		tk->step = step;
	}
	if (t->p.n_alt > 0) {
		size_t na = (size_t)t->p.n_alt;
		struct tree_alt *dst = p->alts + (size_t)p->n_tokens * na;
		if (alts) {
			memcpy(dst, alts, (size_t)n * na * sizeof(*dst));
		} else {
			for (size_t i = 0; i < (size_t)n * na; i++)
				dst[i] = (struct tree_alt){ .id = -1, .logprob = -INFINITY };
		}
	}
	p->n_tokens += n;
	t->version++;
	return DT_OK;
}

int32_t tree_split(struct tree *t, int32_t id, int32_t index, char *err)
{
	struct node *low = get_live(t, id);
	if (!low)
		return dt_err(err, "split: node %d is not in the tree", id);
	struct tree_node *lp = &low->pub;
	bool leaf = lp->n_children == 0;
	if (index <= 0 || index > lp->n_tokens || (index == lp->n_tokens && !leaf))
		return dt_err(err, "split: node %d at %d (expected 1 .. %d)", id, index,
			      leaf ? lp->n_tokens : lp->n_tokens - 1);

	const int32_t ps = t->page_size;
	struct node *up = new_node(t, lp->parent);
	struct tree_node *upp = &up->pub;
	/* the upper part: tokens [0, index), pages [0, ceil((fs+index)/ps)) */
	upp->status = TREE_LIVE;
	upp->pos0 = lp->pos0;
	upp->first_slot = lp->first_slot;
	grow_tokens(t, up, index);
	memcpy(upp->tokens, lp->tokens, (size_t)index * sizeof(struct tree_token));
	if (t->p.n_alt > 0)
		memcpy(upp->alts, lp->alts, (size_t)index * (size_t)t->p.n_alt * sizeof(struct tree_alt));
	upp->n_tokens = index;
	int32_t up_pages = pages_for(t, lp->first_slot, index);
	grow_i32(&upp->pages, &up->cap_pages, up_pages);
	memcpy(upp->pages, lp->pages, (size_t)up_pages * sizeof(int32_t));
	upp->n_pages = up_pages;

	/* the lower part keeps the id: tokens [index, n), pages from floor((fs+index)/ps) */
	int32_t cut = lp->first_slot + index;
	int32_t drop = cut / ps; /* pages only the upper part uses */
	if (cut % ps != 0)
		kvpool_ref(t->pool, lp->pages[drop]); /* the boundary page now has two users */
	memmove(lp->pages, lp->pages + drop, (size_t)(lp->n_pages - drop) * sizeof(int32_t));
	lp->n_pages -= drop;
	memmove(lp->tokens, lp->tokens + index, (size_t)(lp->n_tokens - index) * sizeof(struct tree_token));
	if (t->p.n_alt > 0) {
		size_t na = (size_t)t->p.n_alt;
		memmove(lp->alts, lp->alts + (size_t)index * na,
			(size_t)(lp->n_tokens - index) * na * sizeof(struct tree_alt));
	}
	lp->n_tokens -= index;
	lp->first_slot = cut % ps;
	lp->pos0 += index;

	/* links: up takes low's place under low's parent */
	if (lp->parent >= 0) {
		struct node *par = get(t, lp->parent);
		int32_t ci = child_index(par, id);
		DT_ASSERT(ci >= 0);
		par->pub.children[ci] = upp->id;
	} else {
		t->root = upp->id;
	}
	lp->parent = upp->id;
	add_child(up, id);
	t->version++;
	t->shape_version++;
	return upp->id;
}

int32_t tree_fork(struct tree *t, int32_t id, int32_t index, char *err)
{
	struct node *nd = get_live(t, id);
	if (!nd)
		return dt_err(err, "fork: node %d is not in the tree", id);
	struct tree_node *p = &nd->pub;
	if (index < 0 || index > p->n_tokens)
		return dt_err(err, "fork: node %d at %d (expected 0 .. %d)", id, index, p->n_tokens);
	int32_t parent;
	if (index == 0) {
		if (p->parent < 0)
			return dt_err(err, "fork: node %d is the root (expected a token index >= 1)", id);
		parent = p->parent;
	} else if (index == p->n_tokens && (p->n_children > 0 || p->status != TREE_LIVE)) {
		parent = id;
	} else {
		parent = tree_split(t, id, index, err);
		if (parent < 0)
			return -1;
	}
	return tree_add_child(t, parent, err);
}

int32_t tree_add_child(struct tree *t, int32_t id, char *err)
{
	struct node *par = get_live(t, id);
	if (!par)
		return dt_err(err, "add child: node %d is not in the tree", id);
	struct node *leaf = new_node(t, id);
	leaf->pub.pos0 = par->pub.pos0 + par->pub.n_tokens;
	add_child(par, leaf->pub.id);
	t->version++;
	t->shape_version++;
	return leaf->pub.id;
}

static void prune_rec(struct tree *t, struct node *n)
{
	struct tree_node *p = &n->pub;
	for (int32_t i = 0; i < p->n_children; i++)
		prune_rec(t, get(t, p->children[i]));
	for (int32_t k = 0; k < p->n_pages; k++)
		kvpool_unref(t->pool, p->pages[k]);
	p->n_pages = 0;
	p->status = TREE_PRUNED;
	if (!t->p.keep_pruned) {
		t->nodes[p->id] = NULL;
		free_node(n);
	}
}

int tree_prune(struct tree *t, int32_t id, char *err)
{
	struct node *nd = get_live(t, id);
	if (!nd)
		return dt_err(err, "prune: node %d is not in the tree", id), DT_ERR_ARG;
	if (nd->pub.parent < 0)
		return dt_err(err, "prune: node %d is the root (free the tree instead)", id), DT_ERR_ARG;
	struct node *par = get(t, nd->pub.parent);
	int32_t ci = child_index(par, id);
	DT_ASSERT(ci >= 0);
	memmove(par->pub.children + ci, par->pub.children + ci + 1,
		(size_t)(par->pub.n_children - ci - 1) * sizeof(int32_t));
	par->pub.n_children--;
	prune_rec(t, nd);
	t->version++;
	t->shape_version++;
	return DT_OK;
}

int tree_set_status(struct tree *t, int32_t id, enum tree_status st, char *err)
{
	struct node *nd = get_live(t, id);
	if (!nd)
		return dt_err(err, "status: node %d is not in the tree", id), DT_ERR_ARG;
	if (st != TREE_LIVE && st != TREE_FINISHED)
		return dt_err(err, "status: node %d (expected live or finished, found %d)", id, (int)st),
		       DT_ERR_ARG;
	if (nd->pub.status != st) {
		nd->pub.status = st;
		t->version++;
	}
	return DT_OK;
}

// ---- queries

void tree_kv_loc(const struct tree *t, int32_t id, int32_t index, int32_t *page, int32_t *slot)
{
	const struct node *nd = get_live(t, id);
	DT_ASSERT(nd && index >= 0 && index < nd->pub.n_tokens);
	int32_t s = nd->pub.first_slot + index;
	*page = nd->pub.pages[s / t->page_size];
	*slot = s % t->page_size;
}

/* Depth-first (pre-order) walk over the nodes in the tree with an explicit
 * stack; calls fn(node, arg) on each. */
static void walk(const struct tree *t, void (*fn)(const struct tree_node *n, void *arg), void *arg)
{
	int32_t cap = 64, top = 0;
	int32_t *stack = xmalloc((size_t)cap * sizeof(int32_t));
	stack[top++] = t->root;
	while (top > 0) {
		const struct node *nn = get(t, stack[--top]);
		if (!nn)
			continue; /* a broken link: tree_check reports it */
		const struct tree_node *n = &nn->pub;
		fn(n, arg);
		if (top + n->n_children > cap) {
			cap = (top + n->n_children) * 2;
			stack = xrealloc(stack, (size_t)cap * sizeof(int32_t));
		}
		for (int32_t i = n->n_children - 1; i >= 0; i--) /* first child on top */
			stack[top++] = n->children[i];
	}
	free(stack);
}

struct leaves_ctx {
	int32_t *out;
	int32_t cap, n;
};

static void leaves_fn(const struct tree_node *n, void *arg)
{
	struct leaves_ctx *c = arg;
	if (n->n_children == 0 && n->status == TREE_LIVE) {
		if (c->n < c->cap)
			c->out[c->n] = n->id;
		c->n++;
	}
}

int32_t tree_live_leaves(const struct tree *t, int32_t *out, int32_t cap)
{
	struct leaves_ctx c = { .out = out, .cap = cap, .n = 0 };
	walk(t, leaves_fn, &c);
	return c.n;
}

int32_t tree_path_len(const struct tree *t, int32_t id)
{
	const struct node *nd = get_live(t, id);
	DT_ASSERT(nd);
	return nd->pub.pos0 + nd->pub.n_tokens;
}

int32_t tree_path_nodes(const struct tree *t, int32_t id, int32_t *out, int32_t cap)
{
	int32_t depth = 0;
	for (int32_t x = id; x >= 0; x = get(t, x)->pub.parent)
		depth++;
	int32_t i = depth;
	for (int32_t x = id; x >= 0; x = get(t, x)->pub.parent) {
		i--;
		if (i < cap)
			out[i] = x;
	}
	return depth;
}

int32_t tree_path_tokens(const struct tree *t, int32_t id, int32_t *out, int32_t cap)
{
	const struct node *nd = get_live(t, id);
	DT_ASSERT(nd);
	int32_t len = nd->pub.pos0 + nd->pub.n_tokens;
	for (int32_t x = id; x >= 0; x = get(t, x)->pub.parent) {
		const struct tree_node *p = &get(t, x)->pub;
		for (int32_t i = 0; i < p->n_tokens; i++)
			if (p->pos0 + i < cap)
				out[p->pos0 + i] = p->tokens[i].id;
	}
	return len;
}

bool tree_is_ancestor(const struct tree *t, int32_t a, int32_t b)
{
	for (int32_t x = b; x >= 0; x = get(t, x)->pub.parent)
		if (x == a)
			return true;
	return false;
}

static void stats_fn(const struct tree_node *n, void *arg)
{
	struct tree_stats *s = arg;
	s->n_nodes++;
	s->stored_tokens += n->n_tokens;
	if (n->n_children == 0) {
		s->n_leaves++;
		s->logical_tokens += n->pos0 + n->n_tokens;
		if (n->status == TREE_LIVE)
			s->n_live_leaves++;
	}
	/* a node whose tokens start inside a page shares that page with its
	 * parent (tree.h: only splits make first_slot > 0), so it is counted once */
	s->pages += n->n_pages - (n->first_slot > 0 && n->n_pages > 0);
}

void tree_stats(const struct tree *t, struct tree_stats *s)
{
	memset(s, 0, sizeof(*s));
	walk(t, stats_fn, s);
	s->sharing = s->stored_tokens > 0 ? (double)s->logical_tokens / (double)s->stored_tokens : 0.0;
	s->kv_bytes = (size_t)s->pages * kvpool_page_bytes(t->pool);
}

// ---- consistency check

struct check_ctx {
	const struct tree *t;
	int32_t *users;    /* (n_pages) */
	uint8_t *claimed;  /* (n_pages * page_size) */
	int32_t n_reached;
	char *err;
	int rc;
};

static void check_fn(const struct tree_node *n, void *arg)
{
	struct check_ctx *c = arg;
	const struct tree *t = c->t;
	const int32_t ps = t->page_size, np = kvpool_n_pages(t->pool);
	if (c->rc)
		return;
	c->n_reached++;
	if (n->status == TREE_PRUNED) {
		c->rc = dt_err(c->err, "tree: node %d is reachable but pruned", n->id);
		return;
	}
	if (n->id == t->root) {
		if (n->parent != -1 || n->pos0 != 0) {
			c->rc = dt_err(c->err, "tree: root %d has parent %d, pos0 %d (expected -1, 0)", n->id,
				       n->parent, n->pos0);
			return;
		}
	} else {
		const struct node *par = get(t, n->parent);
		if (!par || par->pub.status == TREE_PRUNED || child_index(par, n->id) < 0) {
			c->rc = dt_err(c->err, "tree: node %d: parent %d does not list it", n->id,
				       n->parent);
			return;
		}
		if (n->pos0 != par->pub.pos0 + par->pub.n_tokens) {
			c->rc = dt_err(c->err, "tree: node %d pos0 %d (expected %d)", n->id, n->pos0,
				       par->pub.pos0 + par->pub.n_tokens);
			return;
		}
	}
	for (int32_t i = 0; i < n->n_children; i++) {
		const struct node *ch = get(t, n->children[i]);
		if (!ch || ch->pub.parent != n->id) {
			c->rc = dt_err(c->err, "tree: node %d: child %d does not point back", n->id,
				       n->children[i]);
			return;
		}
		for (int32_t j = 0; j < i; j++)
			if (n->children[j] == n->children[i]) {
				c->rc = dt_err(c->err, "tree: node %d lists child %d twice", n->id,
					       n->children[i]);
				return;
			}
	}
	if (n->first_slot < 0 || n->first_slot >= ps || n->n_tokens < 0 ||
	    n->n_pages != pages_for(t, n->first_slot, n->n_tokens)) {
		c->rc = dt_err(c->err, "tree: node %d: %d pages for first slot %d + %d tokens (expected %d)",
			       n->id, n->n_pages, n->first_slot, n->n_tokens,
			       pages_for(t, n->first_slot, n->n_tokens));
		return;
	}
	for (int32_t k = 0; k < n->n_pages; k++) {
		int32_t pg = n->pages[k];
		if (pg < 0 || pg >= np) {
			c->rc = dt_err(c->err, "tree: node %d page %d (expected 0 .. %d, found %d)", n->id,
				       k, np - 1, pg);
			return;
		}
		for (int32_t j = 0; j < k; j++)
			if (n->pages[j] == pg) {
				c->rc = dt_err(c->err, "tree: node %d lists page %d twice", n->id, pg);
				return;
			}
		c->users[pg]++;
	}
	for (int32_t i = 0; i < n->n_tokens; i++) {
		int32_t s = n->first_slot + i;
		size_t at = (size_t)n->pages[s / ps] * (size_t)ps + (size_t)(s % ps);
		if (c->claimed[at]) {
			c->rc = dt_err(c->err, "tree: node %d token %d: page %d slot %d is claimed twice",
				       n->id, i, n->pages[s / ps], s % ps);
			return;
		}
		c->claimed[at] = 1;
	}
}

int tree_check(const struct tree *t, char *err)
{
	const int32_t np = kvpool_n_pages(t->pool);
	struct node *root = get(t, t->root);
	if (!root || root->pub.status == TREE_PRUNED)
		return dt_err(err, "tree: root %d is missing", t->root);
	struct check_ctx c = {
		.t = t,
		.users = xcalloc((size_t)np, sizeof(int32_t)),
		.claimed = xcalloc((size_t)np * (size_t)t->page_size, 1),
		.err = err,
	};
	walk(t, check_fn, &c);
	int32_t n_in_tree = 0;
	for (int32_t i = 0; i < t->n_ids && c.rc == 0; i++) {
		const struct node *n = t->nodes[i];
		if (!n)
			continue;
		if (n->pub.id != i)
			c.rc = dt_err(err, "tree: table entry %d holds node %d", i, n->pub.id);
		else if (n->pub.status == TREE_PRUNED && n->pub.n_pages != 0)
			c.rc = dt_err(err, "tree: pruned node %d holds %d pages (expected 0)", i,
				      n->pub.n_pages);
		else if (n->pub.status != TREE_PRUNED)
			n_in_tree++;
	}
	if (c.rc == 0 && n_in_tree != c.n_reached)
		c.rc = dt_err(err, "tree: %d nodes reachable from the root (expected %d in the table)",
			      c.n_reached, n_in_tree);
	if (c.rc == 0) {
		struct tree_stats st;
		int32_t used = 0;
		tree_stats(t, &st);
		for (int32_t pg = 0; pg < np; pg++)
			used += c.users[pg] > 0;
		if (st.pages != used)
			c.rc = dt_err(err, "tree: stats count %d pages (expected %d pages in use)", st.pages, used);
	}
	if (c.rc == 0)
		c.rc = kvpool_check(t->pool, c.users, err);
	free(c.users);
	free(c.claimed);
	return c.rc;
}
