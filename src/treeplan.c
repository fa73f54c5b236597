/*
 * treeplan.c — attention plans (seq, deft-node, deft-flatten, tree-mask) and
 * their IO model.  Format and formulas in treeplan.h.
 *
 * DESIGN
 *   Three of the four algorithms are the same machine with a different
 *   LAYOUT: a list of blocks, each an ordered list of node segments (node,
 *   first token, length), every in-tree token in exactly one segment.
 *     deft-flatten  pre-order token stream cut into blocks of block_size
 *     deft-node     one block per non-empty node
 *     tree-mask     one block holding every node (zero-length segments too,
 *                   so that every node can grow in place)
 *   seq has no layout: a group per query over its path.
 *
 *   The layout is rebuilt when the tree's shape version moves and patched
 *   when nodes only grew (a node's new tokens extend its last segment while
 *   its block has room, then go to new blocks at the end).
 *
 *   Each block keeps its output (struct blk_out: entries with nvis and mask
 *   words, runs, token count) while it is valid.  It becomes invalid when
 *   the block grows or is made, when the list of query nodes differs from
 *   the last update (all blocks), or when a query's own-node segment in it
 *   is seen differently at the query's new index than at its old one.
 *
 *   Writing the flat plan of a step:
 *     1. for each query, walk its path nodes that have a segment in an
 *        invalid block, and their segments (only the query's own segments up
 *        to its token), giving (block, query) pairs for invalid blocks,
 *        de-duplicated per query with a mark per block;
 *     2. bucket the pairs by block (counting sort keeps queries ascending);
 *     3. per invalid block: each entry's visibility from the block's segments
 *        (an ancestor's segment is fully visible, the query's own node up
 *        to its token, anything else not) -> nvis, and a bitmask only when
 *        the visible tokens are not a prefix; the block's token count is the
 *        largest nvis; runs are cut from the segments at page boundaries;
 *     4. every block in order: its output is copied into the flat arrays and
 *        its entries split into query tiles (groups);
 *     5. the reduction lists from the entries in order.
 *   The ancestor test uses pre-order Euler intervals: a is an ancestor of b
 *   (or b) iff tin[a] <= tin[b] <= tout[a].
 */
#include "config.h"

#include "treeplan.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kvpool.h"
#include "tree.h"

struct seg {
	int32_t node;  /* node id */
	int32_t begin; /* first token (index in the node) */
	int32_t len;   /* tokens */
	int32_t block; /* block holding it */
	int32_t next;  /* next segment of the same node, -1 */
};

struct pair {
	int32_t block, query;
};

/* What one block contributes to the flat plan, kept between updates while it
 * stays valid (see DESIGN above for what invalidates it). */
struct blk_out {
	bool valid;
	int32_t n_entries, ntok, n_runs, n_words;
	int32_t cap_e, cap_r, cap_w;
	int32_t *e_query, *e_nvis, *e_mask; /* (n_entries); e_mask: offset in words, or -1 */
	uint32_t *words;                     /* (n_words) */
	int32_t *r_page, *r_slot, *r_len, *r_tok; /* (n_runs) */
};

struct treeplan {
	struct treeplan_params p;
	struct treeplan_stats st;
	struct treeplan_flat f;
	int32_t cap_groups, cap_runs, cap_entries, cap_mask, cap_queries;

	/* layout */
	bool valid;
	uint64_t tree_uid, shape_version;
	int32_t n_ids, cap_ids;
	int32_t *tin, *tout; /* (n_ids) Euler interval, -1 when not in the tree */
	int32_t *len;        /* (n_ids) tokens of each node the layout holds */
	int32_t *first_seg;  /* (n_ids) first / last segment of each node, -1 */
	int32_t *last_seg;
	int32_t *order;      /* (n_order) node ids in pre-order */
	int32_t n_order;
	struct seg *segs;
	int32_t n_segs, cap_segs;
	int32_t *blk_seg_off; /* (n_blocks + 1): segments of block b are contiguous */
	int32_t *blk_tokens;  /* (n_blocks) */
	int32_t n_blocks, cap_blocks;
	int32_t blk_cap;      /* most tokens a block may hold */

	/* scratch of one update */
	int32_t *mark, *cnt, *boff; /* per block */
	int32_t cap_blk_scratch;
	struct pair *pairs;
	int32_t n_pairs, cap_pairs;
	int32_t *e_query; /* (entries of one block) */
	int32_t cap_e;
	int32_t *path;
	int32_t cap_path;
	int32_t *seg_off; /* token offset of each segment of one block */
	int32_t cap_seg_off;
	struct treeplan_query *queries; /* (n_queries) a copy of the step's queries */
	int32_t cap_q;
	struct blk_out *bout;           /* (cap_bout) per block */
	int32_t cap_bout;
	int32_t *last_qnode, *last_qindex; /* (n_last_q) the queries of the last update */
	int32_t n_last_q, cap_last_q;
	uint32_t *node_stamp;           /* (cap_ids) == stamp: the node has a block to recompute */
	uint32_t stamp;
};

static const char *const algo_names[TREEPLAN_N_ALGO] = { "seq", "deft-node", "deft-flatten",
							 "tree-mask" };

const char *treeplan_algo_name(enum treeplan_algo a)
{
	return (unsigned)a < TREEPLAN_N_ALGO ? algo_names[a] : "?";
}

int treeplan_algo_parse(const char *name, enum treeplan_algo *out, char *err)
{
	for (int i = 0; i < TREEPLAN_N_ALGO; i++)
		if (!strcmp(name, algo_names[i])) {
			*out = (enum treeplan_algo)i;
			return DT_OK;
		}
	dt_err(err, "attention algorithm \"%s\" (expected seq, deft-node, deft-flatten or tree-mask)",
	       name);
	return DT_ERR_ARG;
}

struct treeplan_params treeplan_default_params(void)
{
	return (struct treeplan_params){
		.algo = TREEPLAN_DEFT_FLATTEN,
		.block_size = 128,
		.tile_queries = 64,
	};
}

// ---- growable arrays

static int32_t grow_cap(int32_t cap, int64_t need)
{
	DT_ASSERT(need <= INT32_MAX);
	int64_t c = cap ? cap : 64;
	while (c < need)
		c *= 2;
	return (int32_t)DT_MIN(c, (int64_t)INT32_MAX);
}

#define GROW(ptr, n) ((ptr) = xrealloc((ptr), (size_t)(n) * sizeof(*(ptr))))

static void ensure_groups(struct treeplan *pl, int64_t need)
{
	if (need + 1 <= pl->cap_groups)
		return;
	int32_t c = grow_cap(pl->cap_groups, need + 1);
	struct treeplan_flat *f = &pl->f;
	GROW(f->group_run_begin, c);
	GROW(f->group_run_end, c);
	GROW(f->group_n_tokens, c);
	GROW(f->group_entry_off, c);
	pl->cap_groups = c;
}

static void ensure_runs(struct treeplan *pl, int64_t need)
{
	if (need <= pl->cap_runs)
		return;
	int32_t c = grow_cap(pl->cap_runs, need);
	struct treeplan_flat *f = &pl->f;
	GROW(f->run_page, c);
	GROW(f->run_slot, c);
	GROW(f->run_len, c);
	GROW(f->run_tok, c);
	pl->cap_runs = c;
}

static void ensure_entries(struct treeplan *pl, int64_t need)
{
	if (need <= pl->cap_entries)
		return;
	int32_t c = grow_cap(pl->cap_entries, need);
	struct treeplan_flat *f = &pl->f;
	GROW(f->entry_query, c);
	GROW(f->entry_group, c);
	GROW(f->entry_nvis, c);
	GROW(f->entry_mask, c);
	GROW(f->red_entry, c);
	pl->cap_entries = c;
}

static void ensure_mask(struct treeplan *pl, int64_t need)
{
	if (need <= pl->cap_mask)
		return;
	pl->cap_mask = grow_cap(pl->cap_mask, need);
	GROW(pl->f.mask, pl->cap_mask);
}

static void ensure_queries(struct treeplan *pl, int64_t need)
{
	if (need + 1 <= pl->cap_queries)
		return;
	pl->cap_queries = grow_cap(pl->cap_queries, need + 1);
	GROW(pl->f.red_off, pl->cap_queries);
}

// ---- lifetime

struct treeplan *treeplan_new(const struct treeplan_params *p, char *err)
{
	if ((unsigned)p->algo >= TREEPLAN_N_ALGO)
		return dt_err(err, "treeplan: algorithm %d (expected 0 .. %d)", (int)p->algo,
			      TREEPLAN_N_ALGO - 1),
		       NULL;
	if (p->block_size < 1 || p->block_size > (1 << 20))
		return dt_err(err, "treeplan: block_size (expected 1 .. %d, found %d)", 1 << 20,
			      p->block_size),
		       NULL;
	if (p->tile_queries < 1 || p->tile_queries > (1 << 20))
		return dt_err(err, "treeplan: tile_queries (expected 1 .. %d, found %d)", 1 << 20,
			      p->tile_queries),
		       NULL;
	struct treeplan *pl = xcalloc(1, sizeof(*pl));
	pl->p = *p;
	ensure_groups(pl, 1);
	ensure_queries(pl, 1);
	pl->f.group_entry_off[0] = 0;
	pl->f.red_off[0] = 0;
	return pl;
}

void treeplan_free(struct treeplan *pl)
{
	if (!pl)
		return;
	struct treeplan_flat *f = &pl->f;
	free(f->group_run_begin);
	free(f->group_run_end);
	free(f->group_n_tokens);
	free(f->group_entry_off);
	free(f->run_page);
	free(f->run_slot);
	free(f->run_len);
	free(f->run_tok);
	free(f->entry_query);
	free(f->entry_group);
	free(f->entry_nvis);
	free(f->entry_mask);
	free(f->mask);
	free(f->red_off);
	free(f->red_entry);
	free(pl->tin);
	free(pl->tout);
	free(pl->len);
	free(pl->first_seg);
	free(pl->last_seg);
	free(pl->order);
	free(pl->segs);
	free(pl->blk_seg_off);
	free(pl->blk_tokens);
	free(pl->mark);
	free(pl->cnt);
	free(pl->boff);
	free(pl->pairs);
	free(pl->e_query);
	free(pl->path);
	free(pl->seg_off);
	free(pl->queries);
	for (int32_t b = 0; b < pl->cap_bout; b++) {
		struct blk_out *o = &pl->bout[b];
		free(o->e_query);
		free(o->e_nvis);
		free(o->e_mask);
		free(o->words);
		free(o->r_page);
		free(o->r_slot);
		free(o->r_len);
		free(o->r_tok);
	}
	free(pl->bout);
	free(pl->last_qnode);
	free(pl->last_qindex);
	free(pl->node_stamp);
	free(pl);
}

const struct treeplan_params *treeplan_params(const struct treeplan *pl)
{
	return &pl->p;
}

const struct treeplan_flat *treeplan_flat(const struct treeplan *pl)
{
	return &pl->f;
}

const struct treeplan_stats *treeplan_stats(const struct treeplan *pl)
{
	return &pl->st;
}

void treeplan_invalidate(struct treeplan *pl)
{
	pl->valid = false;
}

// ---- layout

static int32_t new_block(struct treeplan *pl)
{
	if (pl->n_blocks + 1 >= pl->cap_blocks) {
		pl->cap_blocks = grow_cap(pl->cap_blocks, pl->n_blocks + 2);
		GROW(pl->blk_seg_off, pl->cap_blocks);
		GROW(pl->blk_tokens, pl->cap_blocks);
	}
	if (pl->n_blocks + 1 > pl->cap_bout) {
		int32_t c = grow_cap(pl->cap_bout, pl->n_blocks + 1);
		GROW(pl->bout, c);
		memset(pl->bout + pl->cap_bout, 0, (size_t)(c - pl->cap_bout) * sizeof(*pl->bout));
		pl->cap_bout = c;
	}
	int32_t b = pl->n_blocks++;
	pl->bout[b].valid = false;
	pl->blk_seg_off[b] = pl->n_segs;
	pl->blk_seg_off[b + 1] = pl->n_segs;
	pl->blk_tokens[b] = 0;
	return b;
}

/* Adds a segment to block b, which must be the last block. */
static void add_seg(struct treeplan *pl, int32_t b, int32_t node, int32_t begin, int32_t len)
{
	DT_ASSERT(b == pl->n_blocks - 1);
	if (pl->n_segs == pl->cap_segs) {
		pl->cap_segs = grow_cap(pl->cap_segs, pl->n_segs + 1);
		GROW(pl->segs, pl->cap_segs);
	}
	int32_t s = pl->n_segs++;
	pl->segs[s] = (struct seg){ .node = node, .begin = begin, .len = len, .block = b, .next = -1 };
	pl->blk_seg_off[b + 1] = pl->n_segs;
	pl->blk_tokens[b] += len;
	if (pl->last_seg[node] >= 0)
		pl->segs[pl->last_seg[node]].next = s;
	else
		pl->first_seg[node] = s;
	pl->last_seg[node] = s;
}

/* Puts tokens [from, to) of node into blocks: the node's last segment grows
 * while its block has room, the rest goes to new blocks. */
static void place_tokens(struct treeplan *pl, int32_t node, int32_t from, int32_t to)
{
	int32_t s = pl->last_seg[node];
	if (s >= 0 && pl->segs[s].begin + pl->segs[s].len == from) {
		int32_t b = pl->segs[s].block;
		int32_t g = DT_MIN(pl->blk_cap - pl->blk_tokens[b], to - from);
		if (g > 0) {
			pl->segs[s].len += g;
			pl->blk_tokens[b] += g;
			pl->bout[b].valid = false;
			from += g;
		}
	}
	while (from < to) {
		int32_t b = new_block(pl);
		int32_t g = DT_MIN(pl->blk_cap, to - from);
		add_seg(pl, b, node, from, g);
		from += g;
	}
}

static void rebuild_layout(struct treeplan *pl, const struct tree *t)
{
	int32_t n_ids = tree_n_ids(t);
	if (n_ids > pl->cap_ids) {
		pl->cap_ids = grow_cap(pl->cap_ids, n_ids);
		GROW(pl->tin, pl->cap_ids);
		GROW(pl->tout, pl->cap_ids);
		GROW(pl->len, pl->cap_ids);
		GROW(pl->first_seg, pl->cap_ids);
		GROW(pl->last_seg, pl->cap_ids);
		GROW(pl->order, pl->cap_ids);
		GROW(pl->node_stamp, pl->cap_ids);
	}
	for (int32_t i = 0; i < n_ids; i++)
		pl->node_stamp[i] = 0;
	pl->stamp = 0;
	pl->n_ids = n_ids;
	for (int32_t i = 0; i < n_ids; i++) {
		pl->tin[i] = pl->tout[i] = -1;
		pl->first_seg[i] = pl->last_seg[i] = -1;
		pl->len[i] = 0;
	}

	/* pre-order with an explicit stack (order[] doubles as the stack's
	 * output; the stack itself lives in tout[] until the sizes are known) */
	int32_t *stack = xmallocarray((size_t)n_ids + 1, sizeof(int32_t));
	int32_t top = 0, n = 0;
	stack[top++] = tree_root(t);
	while (top > 0) {
		int32_t id = stack[--top];
		const struct tree_node *nd = tree_node(t, id);
		pl->tin[id] = n;
		pl->order[n++] = id;
		for (int32_t i = nd->n_children - 1; i >= 0; i--)
			stack[top++] = nd->children[i];
	}
	free(stack);
	pl->n_order = n;
	for (int32_t k = 0; k < n; k++)
		pl->tout[pl->order[k]] = 1; /* subtree sizes */
	for (int32_t k = n - 1; k > 0; k--) {
		int32_t id = pl->order[k];
		pl->tout[tree_node(t, id)->parent] += pl->tout[id];
	}
	for (int32_t k = 0; k < n; k++) {
		int32_t id = pl->order[k];
		pl->tout[id] = pl->tin[id] + pl->tout[id] - 1;
	}

	/* blocks */
	pl->n_blocks = 0;
	pl->n_segs = 0;
	switch (pl->p.algo) {
	case TREEPLAN_DEFT_FLATTEN:
		pl->blk_cap = pl->p.block_size;
		for (int32_t k = 0; k < n; k++) {
			int32_t id = pl->order[k];
			int32_t len = tree_node(t, id)->n_tokens;
			int32_t from = 0;
			while (from < len) {
				int32_t b = pl->n_blocks - 1;
				if (b < 0 || pl->blk_tokens[b] == pl->blk_cap)
					b = new_block(pl);
				int32_t g = DT_MIN(pl->blk_cap - pl->blk_tokens[b], len - from);
				add_seg(pl, b, id, from, g);
				from += g;
			}
			pl->len[id] = len;
		}
		break;
	case TREEPLAN_DEFT_NODE:
		pl->blk_cap = INT32_MAX;
		for (int32_t k = 0; k < n; k++) {
			int32_t id = pl->order[k];
			int32_t len = tree_node(t, id)->n_tokens;
			if (len > 0)
				add_seg(pl, new_block(pl), id, 0, len);
			pl->len[id] = len;
		}
		break;
	case TREEPLAN_TREE_MASK: {
		pl->blk_cap = INT32_MAX;
		int32_t b = new_block(pl);
		for (int32_t k = 0; k < n; k++) {
			int32_t id = pl->order[k];
			int32_t len = tree_node(t, id)->n_tokens;
			add_seg(pl, b, id, 0, len);
			pl->len[id] = len;
		}
		break;
	}
	case TREEPLAN_SEQ:
		for (int32_t k = 0; k < n; k++)
			pl->len[pl->order[k]] = tree_node(t, pl->order[k])->n_tokens;
		break;
	}
	pl->valid = true;
	pl->tree_uid = tree_uid(t);
	pl->shape_version = tree_shape_version(t);
}

/* Patches in the tokens of nodes that grew since the layout was made. */
static void patch_layout(struct treeplan *pl, const struct tree *t)
{
	for (int32_t k = 0; k < pl->n_order; k++) {
		int32_t id = pl->order[k];
		int32_t len = tree_node(t, id)->n_tokens;
		if (len == pl->len[id])
			continue;
		DT_ASSERT(len > pl->len[id]); /* only splits shrink a node, and they change the shape */
		if (pl->p.algo != TREEPLAN_SEQ)
			place_tokens(pl, id, pl->len[id], len);
		pl->len[id] = len;
	}
}

// ---- writing the flat plan

/* Runs of tokens [begin, begin+len) of node into run arrays at *r (room for
 * len / ps + 2 runs); *tok counts group tokens.  One division per call: after
 * the first run every run starts at slot 0 of the next page. */
static void cut_runs(const struct tree_node *nd, int32_t ps, int32_t begin, int32_t len, int32_t *tok,
		     int32_t *page, int32_t *slot_out, int32_t *len_out, int32_t *tok_out, int32_t *r)
{
	if (len <= 0)
		return;
	int32_t s = nd->first_slot + begin, pi = s / ps, slot = s % ps, k = *r;
	while (len > 0) {
		int32_t l = DT_MIN(ps - slot, len);
		page[k] = nd->pages[pi];
		slot_out[k] = slot;
		len_out[k] = l;
		tok_out[k] = *tok;
		k++;
		*tok += l;
		len -= l;
		pi++;
		slot = 0;
	}
	*r = k;
}

static void emit_runs(struct treeplan *pl, const struct tree_node *nd, int32_t begin, int32_t len,
		      int32_t *tok)
{
	struct treeplan_flat *f = &pl->f;
	ensure_runs(pl, (int64_t)f->n_runs + len / f->page_size + 2);
	cut_runs(nd, f->page_size, begin, len, tok, f->run_page, f->run_slot, f->run_len, f->run_tok,
		 &f->n_runs);
}

/* Sets bits [from, to) of a bit array. */
static void set_bits(uint32_t *w, int32_t from, int32_t to)
{
	while (from < to && (from & 31)) {
		w[from >> 5] |= 1u << (from & 31);
		from++;
	}
	for (; from + 32 <= to; from += 32)
		w[from >> 5] = 0xffffffffu;
	for (; from < to; from++)
		w[from >> 5] |= 1u << (from & 31);
}

static void push_group(struct treeplan *pl, int32_t run_begin, int32_t run_end, int32_t n_tokens,
		       int32_t entry_end)
{
	struct treeplan_flat *f = &pl->f;
	ensure_groups(pl, (int64_t)f->n_groups + 1);
	int32_t g = f->n_groups++;
	f->group_run_begin[g] = run_begin;
	f->group_run_end[g] = run_end;
	f->group_n_tokens[g] = n_tokens;
	f->group_entry_off[g + 1] = entry_end;
	for (int32_t e = f->group_entry_off[g]; e < entry_end; e++)
		f->entry_group[e] = g;
	f->max_group_tokens = DT_MAX(f->max_group_tokens, n_tokens);
	f->max_group_entries = DT_MAX(f->max_group_entries, entry_end - f->group_entry_off[g]);
}

static void write_seq(struct treeplan *pl, const struct tree *t, const struct treeplan_query *q,
		      int32_t nq)
{
	struct treeplan_flat *f = &pl->f;
	ensure_entries(pl, nq);
	for (int32_t i = 0; i < nq; i++) {
		int32_t depth = tree_path_nodes(t, q[i].node, pl->path, pl->cap_path);
		if (depth > pl->cap_path) {
			pl->cap_path = grow_cap(pl->cap_path, depth);
			GROW(pl->path, pl->cap_path);
			tree_path_nodes(t, q[i].node, pl->path, pl->cap_path);
		}
		int32_t run_begin = f->n_runs, tok = 0;
		for (int32_t k = 0; k < depth; k++) {
			const struct tree_node *nd = tree_node(t, pl->path[k]);
			int32_t len = k == depth - 1 ? q[i].index + 1 : nd->n_tokens;
			emit_runs(pl, nd, 0, len, &tok);
		}
		int32_t e = f->n_entries++;
		f->entry_query[e] = i;
		f->entry_nvis[e] = tok;
		f->entry_mask[e] = -1;
		push_group(pl, run_begin, f->n_runs, tok, f->n_entries);
	}
}

/* Visible tokens of one segment for query (qn, qi): a prefix of the segment. */
static int32_t seg_visible(const struct treeplan *pl, const struct seg *s, int32_t qn, int32_t qi)
{
	if (s->node == qn)
		return DT_MAX(0, DT_MIN(s->len, qi + 1 - s->begin));
	if (pl->tin[s->node] <= pl->tin[qn] && pl->tin[qn] <= pl->tout[s->node])
		return s->len;
	return 0;
}

/* Computes the entries (visibility, masks) and runs of block b for the
 * queries e_query[0 .. ne) into its blk_out. */
static void compute_block(struct treeplan *pl, const struct tree *t, const struct treeplan_query *q,
			  int32_t b, const int32_t *e_query, int32_t ne)
{
	struct blk_out *o = &pl->bout[b];
	const int32_t ps = pl->f.page_size;
	int32_t s0 = pl->blk_seg_off[b], s1 = pl->blk_seg_off[b + 1];
	if (s1 - s0 + 1 > pl->cap_seg_off) {
		pl->cap_seg_off = grow_cap(pl->cap_seg_off, s1 - s0 + 1);
		GROW(pl->seg_off, pl->cap_seg_off);
	}
	pl->seg_off[0] = 0;
	for (int32_t s = s0; s < s1; s++)
		pl->seg_off[s - s0 + 1] = pl->seg_off[s - s0] + pl->segs[s].len;

	if (ne > o->cap_e) {
		o->cap_e = grow_cap(o->cap_e, ne);
		GROW(o->e_query, o->cap_e);
		GROW(o->e_nvis, o->cap_e);
		GROW(o->e_mask, o->cap_e);
	}
	o->n_entries = ne;
	o->n_words = 0;
	o->ntok = 0;
	for (int32_t k = 0; k < ne; k++) {
		int32_t qi = e_query[k], qn = q[qi].node, qx = q[qi].index;
		int32_t nvis = 0;
		bool prefix = true, gap = false;
		for (int32_t s = s0; s < s1; s++) {
			const struct seg *sg = &pl->segs[s];
			int32_t v = seg_visible(pl, sg, qn, qx);
			if (v > 0) {
				nvis = pl->seg_off[s - s0] + v;
				if (gap)
					prefix = false;
			}
			if (v < sg->len)
				gap = true;
		}
		DT_ASSERT(nvis > 0);
		o->e_query[k] = qi;
		o->e_nvis[k] = nvis;
		o->e_mask[k] = -1;
		if (!prefix) {
			int32_t nw = (nvis + 31) / 32;
			if (o->n_words + nw > o->cap_w) {
				o->cap_w = grow_cap(o->cap_w, (int64_t)o->n_words + nw);
				GROW(o->words, o->cap_w);
			}
			uint32_t *w = o->words + o->n_words;
			memset(w, 0, (size_t)nw * sizeof(uint32_t));
			for (int32_t s = s0; s < s1; s++) {
				int32_t v = seg_visible(pl, &pl->segs[s], qn, qx);
				set_bits(w, pl->seg_off[s - s0], pl->seg_off[s - s0] + v);
			}
			o->e_mask[k] = o->n_words;
			o->n_words += nw;
		}
		o->ntok = DT_MAX(o->ntok, nvis);
	}

	/* runs over the first ntok tokens of the segments */
	int64_t need = 0;
	for (int32_t s = s0; s < s1; s++)
		need += pl->segs[s].len / ps + 2;
	if (need > o->cap_r) {
		o->cap_r = grow_cap(o->cap_r, need);
		GROW(o->r_page, o->cap_r);
		GROW(o->r_slot, o->cap_r);
		GROW(o->r_len, o->cap_r);
		GROW(o->r_tok, o->cap_r);
	}
	int32_t tok = 0;
	o->n_runs = 0;
	for (int32_t s = s0; s < s1 && tok < o->ntok; s++) {
		const struct seg *sg = &pl->segs[s];
		cut_runs(tree_node(t, sg->node), ps, sg->begin, DT_MIN(sg->len, o->ntok - tok), &tok, o->r_page,
			 o->r_slot, o->r_len, o->r_tok, &o->n_runs);
	}
	o->valid = true;
}

/* Appends block b's cached output to the flat plan, cut into query tiles. */
static void append_block(struct treeplan *pl, int32_t b)
{
	struct treeplan_flat *f = &pl->f;
	const struct blk_out *o = &pl->bout[b];
	const int32_t ne = o->n_entries, tile = pl->p.tile_queries;
	if (ne == 0)
		return;
	ensure_runs(pl, (int64_t)f->n_runs + o->n_runs);
	size_t rb = (size_t)o->n_runs * sizeof(int32_t);
	memcpy(f->run_page + f->n_runs, o->r_page, rb);
	memcpy(f->run_slot + f->n_runs, o->r_slot, rb);
	memcpy(f->run_len + f->n_runs, o->r_len, rb);
	memcpy(f->run_tok + f->n_runs, o->r_tok, rb);
	int32_t run_begin = f->n_runs;
	f->n_runs += o->n_runs;

	ensure_entries(pl, (int64_t)f->n_entries + ne);
	ensure_mask(pl, (int64_t)f->n_mask_words + o->n_words);
	int32_t e0 = f->n_entries, w0 = f->n_mask_words;
	memcpy(f->entry_query + e0, o->e_query, (size_t)ne * sizeof(int32_t));
	memcpy(f->entry_nvis + e0, o->e_nvis, (size_t)ne * sizeof(int32_t));
	for (int32_t k = 0; k < ne; k++)
		f->entry_mask[e0 + k] = o->e_mask[k] < 0 ? -1 : o->e_mask[k] + w0;
	if (o->n_words > 0)
		memcpy(f->mask + w0, o->words, (size_t)o->n_words * sizeof(uint32_t));
	f->n_entries += ne;
	f->n_mask_words += o->n_words;

	int32_t n_tiles = (ne + tile - 1) / tile;
	for (int32_t k = 0; k < n_tiles; k++) {
		/* near-equal tiles: the last ne % n_tiles get one more */
		int32_t end = e0 + (int32_t)(((int64_t)ne * (k + 1)) / n_tiles);
		push_group(pl, run_begin, f->n_runs, o->ntok, end);
	}
}

static void write_blocks(struct treeplan *pl, const struct tree *t, const struct treeplan_query *q,
			 int32_t nq)
{
	const int32_t nb = pl->n_blocks;
	if (nb + 1 > pl->cap_blk_scratch) {
		pl->cap_blk_scratch = grow_cap(pl->cap_blk_scratch, nb + 1);
		GROW(pl->mark, pl->cap_blk_scratch);
		GROW(pl->cnt, pl->cap_blk_scratch);
		GROW(pl->boff, pl->cap_blk_scratch);
	}

	/* 0. which blocks must be recomputed.  A block's output depends on the
	 * list of query nodes, on its segments, and, for a segment of a query's
	 * own node, on how much of it the query's index lets it see.  So: all
	 * blocks when the query nodes changed; else those where a query's own
	 * segment is seen differently than last time.  Grown and new blocks are
	 * already invalid (place_tokens, new_block). */
	bool same = nq == pl->n_last_q;
	for (int32_t i = 0; i < nq && same; i++)
		same = q[i].node == pl->last_qnode[i];
	if (!same) {
		for (int32_t b = 0; b < nb; b++)
			pl->bout[b].valid = false;
	} else {
		for (int32_t i = 0; i < nq; i++) {
			if (q[i].index == pl->last_qindex[i])
				continue;
			for (int32_t s = pl->first_seg[q[i].node]; s >= 0; s = pl->segs[s].next) {
				const struct seg *sg = &pl->segs[s];
				if (seg_visible(pl, sg, q[i].node, q[i].index) !=
				    seg_visible(pl, sg, q[i].node, pl->last_qindex[i]))
					pl->bout[sg->block].valid = false;
			}
		}
	}
	/* nodes with a segment in a block to recompute: the only ones pass 1 walks */
	if (++pl->stamp == 0) { /* wrapped: clear the stamps */
		for (int32_t i = 0; i < pl->n_ids; i++)
			pl->node_stamp[i] = 0;
		pl->stamp = 1;
	}
	for (int32_t b = 0; b < nb; b++) {
		pl->mark[b] = -1;
		pl->cnt[b] = 0;
		if (!pl->bout[b].valid)
			for (int32_t s = pl->blk_seg_off[b]; s < pl->blk_seg_off[b + 1]; s++)
				pl->node_stamp[pl->segs[s].node] = pl->stamp;
	}

	/* 1. (block, query) pairs of the invalid blocks */
	pl->n_pairs = 0;
	for (int32_t i = 0; i < nq; i++) {
		for (int32_t x = q[i].node; x >= 0; x = tree_node(t, x)->parent) {
			if (pl->node_stamp[x] != pl->stamp)
				continue;
			for (int32_t s = pl->first_seg[x]; s >= 0; s = pl->segs[s].next) {
				const struct seg *sg = &pl->segs[s];
				if (x == q[i].node && sg->begin > q[i].index)
					break;
				if (sg->len == 0 || pl->bout[sg->block].valid || pl->mark[sg->block] == i)
					continue;
				pl->mark[sg->block] = i;
				pl->cnt[sg->block]++;
				if (pl->n_pairs == pl->cap_pairs) {
					pl->cap_pairs = grow_cap(pl->cap_pairs, pl->n_pairs + 1);
					GROW(pl->pairs, pl->cap_pairs);
				}
				pl->pairs[pl->n_pairs++] = (struct pair){ sg->block, i };
			}
		}
	}

	/* 2. bucket by block (queries stay ascending) */
	pl->boff[0] = 0;
	for (int32_t b = 0; b < nb; b++)
		pl->boff[b + 1] = pl->boff[b] + pl->cnt[b];
	if (pl->n_pairs > pl->cap_e) {
		pl->cap_e = grow_cap(pl->cap_e, pl->n_pairs);
		GROW(pl->e_query, pl->cap_e);
	}
	for (int32_t b = 0; b < nb; b++) /* cnt becomes the fill cursor */
		pl->cnt[b] = 0;
	for (int32_t k = 0; k < pl->n_pairs; k++) {
		int32_t b = pl->pairs[k].block;
		pl->e_query[pl->boff[b] + pl->cnt[b]++] = pl->pairs[k].query;
	}

	/* 3. recompute the invalid blocks, then every block in order into the flat plan */
	pl->st.n_blocks_computed = 0;
	for (int32_t b = 0; b < nb; b++) {
		if (!pl->bout[b].valid) {
			compute_block(pl, t, q, b, pl->e_query + pl->boff[b], pl->boff[b + 1] - pl->boff[b]);
			pl->st.n_blocks_computed++;
		}
		append_block(pl, b);
	}

	if (nq > pl->cap_last_q) {
		pl->cap_last_q = grow_cap(pl->cap_last_q, nq);
		GROW(pl->last_qnode, pl->cap_last_q);
		GROW(pl->last_qindex, pl->cap_last_q);
	}
	for (int32_t i = 0; i < nq; i++) {
		pl->last_qnode[i] = q[i].node;
		pl->last_qindex[i] = q[i].index;
	}
	pl->n_last_q = nq;
}

static void write_reduction(struct treeplan *pl, int32_t nq)
{
	struct treeplan_flat *f = &pl->f;
	ensure_queries(pl, nq);
	for (int32_t i = 0; i <= nq; i++)
		f->red_off[i] = 0;
	for (int32_t e = 0; e < f->n_entries; e++)
		f->red_off[f->entry_query[e] + 1]++;
	for (int32_t i = 0; i < nq; i++)
		f->red_off[i + 1] += f->red_off[i];
	/* fill with a cursor per query kept in the entry_group order */
	int32_t *cur = xmallocarray((size_t)nq + 1, sizeof(int32_t));
	memcpy(cur, f->red_off, (size_t)nq * sizeof(int32_t));
	for (int32_t e = 0; e < f->n_entries; e++)
		f->red_entry[cur[f->entry_query[e]]++] = e;
	free(cur);
}

static void clear_flat(struct treeplan *pl, int32_t page_size)
{
	struct treeplan_flat *f = &pl->f;
	f->n_queries = f->n_groups = f->n_runs = f->n_entries = f->n_mask_words = 0;
	f->max_group_tokens = f->max_group_entries = 0;
	f->page_size = page_size;
	f->group_entry_off[0] = 0;
	f->red_off[0] = 0;
}

int treeplan_update(struct treeplan *pl, const struct tree *t, const struct treeplan_query *q,
		    int32_t nq, char *err)
{
	int64_t t0 = dt_now_ns();
	const int32_t ps = kvpool_params(tree_pool(t))->page_size;
	clear_flat(pl, ps);
	if (nq < 0)
		return dt_err(err, "plan: %d queries (expected >= 0)", nq), DT_ERR_ARG;

	bool rebuild = !pl->valid || pl->tree_uid != tree_uid(t) ||
		       pl->shape_version != tree_shape_version(t);
	if (rebuild)
		rebuild_layout(pl, t);
	else
		patch_layout(pl, t);
	int64_t t1 = dt_now_ns();

	for (int32_t i = 0; i < nq; i++) {
		const struct tree_node *nd = tree_node(t, q[i].node);
		if (!nd || nd->status == TREE_PRUNED || q[i].node >= pl->n_ids || pl->tin[q[i].node] < 0)
			return dt_err(err, "plan: query %d: node %d is not in the tree", i, q[i].node),
			       DT_ERR_ARG;
		if (q[i].index < 0 || q[i].index >= nd->n_tokens)
			return dt_err(err, "plan: query %d: token %d of node %d (expected 0 .. %d)", i,
				      q[i].index, q[i].node, nd->n_tokens - 1),
			       DT_ERR_ARG;
	}

	if (nq > pl->cap_q) {
		pl->cap_q = grow_cap(pl->cap_q, nq);
		GROW(pl->queries, pl->cap_q);
	}
	if (nq > 0)
		memcpy(pl->queries, q, (size_t)nq * sizeof(*q));
	pl->st.n_blocks_computed = 0;
	if (pl->p.algo == TREEPLAN_SEQ)
		write_seq(pl, t, q, nq);
	else
		write_blocks(pl, t, q, nq);
	write_reduction(pl, nq);
	pl->f.n_queries = nq;

	int64_t t2 = dt_now_ns();
	pl->st.n_updates++;
	if (rebuild)
		pl->st.n_rebuilds++;
	else
		pl->st.n_patched++;
	pl->st.layout_ns = t1 - t0;
	pl->st.flat_ns = t2 - t1;
	pl->st.n_blocks = pl->n_blocks;
	return DT_OK;
}

int32_t treeplan_leaf_queries(const struct tree *t, struct treeplan_query *out, int32_t cap)
{
	int32_t n_leaves = tree_live_leaves(t, NULL, 0);
	int32_t *leaves = xmallocarray((size_t)n_leaves + 1, sizeof(int32_t));
	tree_live_leaves(t, leaves, n_leaves);
	int32_t n = 0;
	for (int32_t i = 0; i < n_leaves; i++) {
		const struct tree_node *nd = tree_node(t, leaves[i]);
		if (nd->n_tokens == 0)
			continue;
		if (n < cap)
			out[n] = (struct treeplan_query){ .node = nd->id, .index = nd->n_tokens - 1 };
		n++;
	}
	free(leaves);
	return n;
}

// ---- IO model

void treeplan_io(const struct treeplan *pl, const struct treeplan_io_params *p,
		 struct treeplan_io *io)
{
	const struct treeplan_flat *f = &pl->f;
	const uint64_t e = (uint64_t)p->kv_elt_bytes, hq = (uint64_t)p->n_head,
		       hkv = (uint64_t)p->n_kv_head, d = (uint64_t)p->head_dim;
	const bool dense = pl->p.algo == TREEPLAN_TREE_MASK;
	memset(io, 0, sizeof(*io));
	for (int32_t g = 0; g < f->n_groups; g++) {
		uint64_t n = (uint64_t)f->group_n_tokens[g];
		uint64_t ne = (uint64_t)(f->group_entry_off[g + 1] - f->group_entry_off[g]);
		io->kv += n * hkv * d * 2 * e;
		io->q += ne * hq * d * e;
		if (dense) {
			io->mask += ne * n * e;
			io->inter += ne * n * hq * e * 4;
		}
	}
	if (!dense)
		for (int32_t k = 0; k < f->n_entries; k++)
			if (f->entry_mask[k] >= 0)
				io->mask += 4 * (uint64_t)((f->entry_nvis[k] + 31) / 32);
	for (int32_t i = 0; i < f->n_queries; i++) {
		uint64_t k = (uint64_t)(f->red_off[i + 1] - f->red_off[i]);
		if (k > 1)
			io->partial += k * hq * (d + 1) * 4 * 2;
	}
	io->out = (uint64_t)f->n_queries * hq * d * e;
	io->plan = 4 * ((uint64_t)f->n_groups * 4 + 1 + (uint64_t)f->n_runs * 4 +
			(uint64_t)f->n_entries * 5 + (uint64_t)f->n_mask_words + (uint64_t)f->n_queries + 1);
	io->total = io->kv + io->q + io->mask + io->partial + io->inter + io->out + io->plan;
}

// ---- verification

static int check_arrays(const struct treeplan *pl, int32_t n_pages, char *err)
{
	const struct treeplan_flat *f = &pl->f;
	const int32_t ps = f->page_size;
	if (f->group_entry_off[0] != 0 || f->group_entry_off[f->n_groups] != f->n_entries)
		return dt_err(err, "plan: entry offsets span %d .. %d (expected 0 .. %d)",
			      f->group_entry_off[0], f->group_entry_off[f->n_groups], f->n_entries);
	for (int32_t g = 0; g < f->n_groups; g++) {
		int32_t rb = f->group_run_begin[g], re = f->group_run_end[g];
		if (rb < 0 || rb > re || re > f->n_runs)
			return dt_err(err, "plan: group %d runs %d .. %d (expected within 0 .. %d)", g, rb,
				      re, f->n_runs);
		int32_t ne = f->group_entry_off[g + 1] - f->group_entry_off[g];
		if (ne < 1 || (pl->p.algo != TREEPLAN_SEQ && ne > pl->p.tile_queries))
			return dt_err(err, "plan: group %d has %d entries (expected 1 .. %d)", g, ne,
				      pl->p.tile_queries);
		int32_t tok = 0;
		for (int32_t r = rb; r < re; r++) {
			if (f->run_tok[r] != tok)
				return dt_err(err, "plan: run %d starts at token %d (expected %d)", r,
					      f->run_tok[r], tok);
			if (f->run_page[r] < 0 || f->run_page[r] >= n_pages || f->run_len[r] < 1 ||
			    f->run_slot[r] < 0 || f->run_slot[r] + f->run_len[r] > ps)
				return dt_err(err, "plan: run %d (page %d slot %d len %d) is outside the pool",
					      r, f->run_page[r], f->run_slot[r], f->run_len[r]);
			tok += f->run_len[r];
		}
		if (f->group_n_tokens[g] < 1 || f->group_n_tokens[g] > tok ||
		    (re > rb && tok - f->run_len[re - 1] >= f->group_n_tokens[g]))
			return dt_err(err, "plan: group %d has %d tokens (its runs cover %d)", g,
				      f->group_n_tokens[g], tok);
		for (int32_t e = f->group_entry_off[g]; e < f->group_entry_off[g + 1]; e++) {
			if (f->entry_group[e] != g)
				return dt_err(err, "plan: entry %d names group %d (expected %d)", e,
					      f->entry_group[e], g);
			if (f->entry_query[e] < 0 || f->entry_query[e] >= f->n_queries ||
			    (e > f->group_entry_off[g] && f->entry_query[e] <= f->entry_query[e - 1]))
				return dt_err(err, "plan: entry %d query %d (expected ascending within 0 .. %d)",
					      e, f->entry_query[e], f->n_queries - 1);
			if (f->entry_nvis[e] < 1 || f->entry_nvis[e] > f->group_n_tokens[g])
				return dt_err(err, "plan: entry %d sees %d tokens (expected 1 .. %d)", e,
					      f->entry_nvis[e], f->group_n_tokens[g]);
			if (f->entry_mask[e] != -1 &&
			    (f->entry_mask[e] < 0 ||
			     f->entry_mask[e] + (f->entry_nvis[e] + 31) / 32 > f->n_mask_words))
				return dt_err(err, "plan: entry %d mask at word %d (expected -1 or within %d)",
					      e, f->entry_mask[e], f->n_mask_words);
		}
	}
	if (f->red_off[0] != 0 || f->red_off[f->n_queries] != f->n_entries)
		return dt_err(err, "plan: reduction offsets span %d .. %d (expected 0 .. %d)",
			      f->red_off[0], f->red_off[f->n_queries], f->n_entries);
	uint8_t *seen = xcalloc((size_t)f->n_entries + 1, 1);
	int rc = 0;
	for (int32_t i = 0; i < f->n_queries && rc == 0; i++) {
		if (f->red_off[i + 1] <= f->red_off[i])
			rc = dt_err(err, "plan: query %d has no entry", i);
		for (int32_t k = f->red_off[i]; k < f->red_off[i + 1] && rc == 0; k++) {
			int32_t e = f->red_entry[k];
			if (e < 0 || e >= f->n_entries || seen[e] || f->entry_query[e] != i ||
			    (k > f->red_off[i] && e <= f->red_entry[k - 1]))
				rc = dt_err(err, "plan: query %d reduces entry %d (expected its own entries "
						 "once, ascending)", i, e);
			else
				seen[e] = 1;
		}
	}
	free(seen);
	return rc;
}

int treeplan_check(const struct treeplan *pl, const struct tree *t, char *err)
{
	const struct treeplan_flat *f = &pl->f;
	const int32_t ps = f->page_size, n_pages = kvpool_n_pages(tree_pool(t));
	if (check_arrays(pl, n_pages, err))
		return -1;
	/* stamp[page*ps + slot]: 2q+1 = on query q's path and not yet seen, 2q+2 = seen */
	int64_t *stamp = xcalloc((size_t)n_pages * (size_t)ps, sizeof(int64_t));
	int rc = 0;
	for (int32_t qi = 0; qi < f->n_queries && rc == 0; qi++) {
		const struct treeplan_query *q = &pl->queries[qi];
		const int64_t want = 2 * (int64_t)qi + 1, got = want + 1;
		int64_t path_len = 0, n_seen = 0;
		for (int32_t x = q->node; x >= 0; x = tree_node(t, x)->parent) {
			const struct tree_node *nd = tree_node(t, x);
			int32_t len = x == q->node ? q->index + 1 : nd->n_tokens;
			for (int32_t i = 0; i < len; i++) {
				int32_t page, slot;
				tree_kv_loc(t, x, i, &page, &slot);
				stamp[(size_t)page * (size_t)ps + (size_t)slot] = want;
			}
			path_len += len;
		}
		for (int32_t k = f->red_off[qi]; k < f->red_off[qi + 1] && rc == 0; k++) {
			int32_t e = f->red_entry[k], g = f->entry_group[e], n_vis_e = 0;
			const uint32_t *m = f->entry_mask[e] >= 0 ? f->mask + f->entry_mask[e] : NULL;
			for (int32_t r = f->group_run_begin[g]; r < f->group_run_end[g] && rc == 0; r++) {
				for (int32_t j = 0; j < f->run_len[r]; j++) {
					int32_t tk = f->run_tok[r] + j;
					if (tk >= f->entry_nvis[e])
						break;
					if (m && !(m[tk >> 5] >> (tk & 31) & 1))
						continue;
					int64_t *st = &stamp[(size_t)f->run_page[r] * (size_t)ps +
							     (size_t)(f->run_slot[r] + j)];
					if (*st != want) {
						rc = dt_err(err, "plan: query %d (node %d token %d), entry %d: "
								 "token %d (page %d slot %d) is %s",
							    qi, q->node, q->index, e, tk, f->run_page[r],
							    f->run_slot[r] + j,
							    *st == got ? "seen twice" : "not on its path");
						break;
					}
					*st = got;
					n_seen++;
					n_vis_e++;
				}
			}
			if (rc == 0 && n_vis_e == 0)
				rc = dt_err(err, "plan: entry %d of query %d sees no token", e, qi);
		}
		if (rc == 0 && n_seen != path_len)
			rc = dt_err(err, "plan: query %d (node %d token %d) sees %lld tokens (expected its "
					 "path: %lld)",
				    qi, q->node, q->index, (long long)n_seen, (long long)path_len);
	}
	free(stamp);
	return rc;
}
