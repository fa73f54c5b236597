/*
 * snapshot.c — copying a tree, its pool and metrics into a UI snapshot
 * (design in snapshot.h).
 *
 * Built on the engine thread in O(nodes + tokens + pages); the sizes are
 * counted first so every array is allocated once.
 */
#include "config.h"

#include "snapshot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kvpool.h"
#include "render.h"

#define HIST_DEFAULT 120

// ---- building

/* text arena */
struct arena {
	char *p;
	size_t n, cap;
};

static uint32_t arena_add(struct arena *a, const char *s, size_t n)
{
	if (a->n + n + 1 > a->cap) {
		size_t c = a->cap ? a->cap : 4096;
		while (a->n + n + 1 > c)
			c *= 2;
		a->p = xrealloc(a->p, c);
		a->cap = c;
	}
	uint32_t off = (uint32_t)a->n;
	if (n)
		memcpy(a->p + a->n, s, n);
	a->n += n;
	return off;
}

/* The piece of id, cached per id in a small direct-mapped table so that a
 * long tree does not copy the same piece bytes again and again. */
struct piece_cache {
	int32_t id[1024];
	uint32_t off[1024];
	uint16_t len[1024];
};

static void piece_of(const struct ui_snap_src *src, struct arena *a, struct piece_cache *pc, int32_t id,
		     uint32_t *off, uint16_t *len)
{
	if (id < 0) {
		*off = 0;
		*len = 0;
		return;
	}
	unsigned h = (unsigned)id & 1023u;
	if (pc->id[h] == id) {
		*off = pc->off[h];
		*len = pc->len[h];
		return;
	}
	size_t n = 0;
	const char *p = src->piece ? src->piece(src->ctx, id, &n) : NULL;
	if (!p)
		n = 0;
	if (n > 0xffff)
		n = 0xffff;
	*off = arena_add(a, p, n);
	*len = (uint16_t)n;
	pc->id[h] = id;
	pc->off[h] = *off;
	pc->len[h] = *len;
}

/* in-tree subtree sums, children before parents (ids of children are not
 * always larger than their parent's: a split's upper part gets a new id) */
static void subtree_sums(struct ui_snap *s)
{
	int32_t *stack = xmallocarray((size_t)(s->n_ids ? s->n_ids : 1), sizeof(*stack));
	int32_t *order = xmallocarray((size_t)(s->n_ids ? s->n_ids : 1), sizeof(*order));
	int32_t n_order = 0, sp = 0;
	/* one walk from the root reaches every node: the pruned subtree roots
	 * are listed among their parents' kids */
	if (s->root >= 0 && s->root < s->n_ids && s->nodes[s->root].id >= 0) {
		stack[sp++] = s->root;
		while (sp > 0) {
			int32_t x = stack[--sp];
			order[n_order++] = x;
			struct ui_snap_node *nx = &s->nodes[x];
			for (int32_t k = 0; k < nx->n_kids; k++) {
				int32_t c = s->kids[nx->kid + k];
				if (c < 0 || c >= s->n_ids || s->nodes[c].id < 0 || sp >= s->n_ids)
					continue;
				stack[sp++] = c;
			}
		}
	}
	/* depths in pre-order: parents first */
	for (int32_t i = 0; i < n_order; i++) {
		struct ui_snap_node *n = &s->nodes[order[i]];
		n->depth = n->parent >= 0 && s->nodes[n->parent].id >= 0 ? s->nodes[n->parent].depth + 1 : 0;
	}
	/* sums in reverse pre-order: children first */
	for (int32_t i = n_order - 1; i >= 0; i--) {
		struct ui_snap_node *n = &s->nodes[order[i]];
		bool leaf = n->n_kids_live == 0;
		n->live_below += leaf && n->status == TREE_LIVE;
		n->leaves_below += leaf && n->status != TREE_PRUNED;
		if (n->parent >= 0 && s->nodes[n->parent].id >= 0) {
			struct ui_snap_node *p = &s->nodes[n->parent];
			bool in_tree_child = n->status != TREE_PRUNED || p->status == TREE_PRUNED;
			if (in_tree_child) {
				p->live_below += n->live_below;
				p->leaves_below += n->leaves_below;
				p->nodes_below += 1 + n->nodes_below;
			}
		}
	}
	free(stack);
	free(order);
}

static float entropy_of(const struct ui_snap_alt *a, int32_t n_alt)
{
	double h = 0, mass = 0;
	int32_t got = 0;
	for (int32_t i = 0; i < n_alt; i++) {
		if (a[i].id < 0 || !isfinite(a[i].logprob))
			continue;
		double p = exp((double)a[i].logprob);
		h -= p * log2(p > 0 ? p : 1);
		mass += p;
		got++;
	}
	if (!got)
		return -1;
	double r = 1 - mass;
	if (r > 1e-9)
		h -= r * log2(r);
	return (float)h;
}

struct ui_snap *ui_snap_build(const struct ui_snap_src *src)
{
	struct ui_snap *s = xcalloc(1, sizeof(*s));
	s->root = -1;
	const struct tree *t = src->tree;
	const struct kvpool *pool = src->pool ? src->pool : (t ? tree_pool(t) : NULL);
	struct arena text = { 0 };
	arena_add(&text, "", 0);

	if (t) {
		s->has_tree = true;
		s->n_ids = tree_n_ids(t);
		s->root = tree_root(t);
		s->n_alt = tree_n_alt(t);
		s->nodes = xcalloc((size_t)(s->n_ids ? s->n_ids : 1), sizeof(*s->nodes));
		/* counts: tokens, kids (tree children + pruned subtree roots), pages */
		int64_t n_toks = 0, n_kids = 0, n_pages = 0;
		int32_t *extra = xcalloc((size_t)(s->n_ids ? s->n_ids : 1), sizeof(*extra)); /* pruned kids */
		for (int32_t id = 0; id < s->n_ids; id++) {
			const struct tree_node *tn = tree_node(t, id);
			if (!tn)
				continue;
			n_toks += tn->n_tokens;
			n_kids += tn->n_children;
			n_pages += tn->n_pages;
			if (tn->status == TREE_PRUNED && tn->parent >= 0) {
				const struct tree_node *p = tree_node(t, tn->parent);
				if (p && p->status != TREE_PRUNED) {
					extra[tn->parent]++;
					n_kids++;
				}
			}
		}
		s->n_toks = n_toks;
		s->toks = xcalloc((size_t)(n_toks ? n_toks : 1), sizeof(*s->toks));
		s->alts = xcalloc((size_t)(n_toks ? n_toks : 1) * (size_t)(s->n_alt ? s->n_alt : 1), sizeof(*s->alts));
		s->kids = xcalloc((size_t)(n_kids ? n_kids : 1), sizeof(*s->kids));
		s->pages = xcalloc((size_t)(n_pages ? n_pages : 1), sizeof(*s->pages));
		struct piece_cache *pc = xmalloc(sizeof(*pc));
		for (int i = 0; i < 1024; i++)
			pc->id[i] = -1;
		int64_t tk = 0;
		int32_t kd = 0, pg = 0;
		const struct tree_node *root = tree_node(t, s->root);
		for (int32_t id = 0; id < s->n_ids; id++) {
			struct ui_snap_node *n = &s->nodes[id];
			const struct tree_node *tn = tree_node(t, id);
			if (!tn) {
				n->id = -1;
				continue;
			}
			n->id = id;
			n->parent = tn->parent;
			n->status = tn->status;
			n->pos0 = tn->pos0;
			n->n_tokens = tn->n_tokens;
			n->tok = (int32_t)tk;
			n->first_slot = tn->first_slot;
			n->stream = src->stream ? src->stream(src->ctx, id) : -1;
			n->n_computed = src->n_computed ? src->n_computed(src->ctx, id) : tn->n_tokens;
			for (int32_t i = 0; i < tn->n_tokens; i++, tk++) {
				struct ui_snap_tok *st = &s->toks[tk];
				st->id = tn->tokens[i].id;
				st->logprob = tn->tokens[i].logprob;
				st->step = tn->tokens[i].step;
				piece_of(src, &text, pc, st->id, &st->text, &st->text_len);
				if (tn == root && tn->tokens[i].step == 0)
					st->flags |= UI_TOK_PROMPT;
				if (src->is_control && src->is_control(src->ctx, st->id))
					st->flags |= UI_TOK_CONTROL;
				bool any = false;
				for (int32_t a = 0; a < s->n_alt; a++) {
					struct ui_snap_alt *sa = &s->alts[tk * s->n_alt + a];
					const struct tree_alt *ta = tn->alts ? &tn->alts[(size_t)i * (size_t)s->n_alt + (size_t)a] : NULL;
					sa->id = ta ? ta->id : -1;
					sa->logprob = ta ? ta->logprob : -INFINITY;
					any = any || sa->id >= 0;
					piece_of(src, &text, pc, sa->id, &sa->text, &sa->text_len);
				}
				if (!any)
					st->flags |= UI_TOK_FORCED;
				st->entropy = any ? entropy_of(&s->alts[tk * s->n_alt], s->n_alt) : -1;
			}
			n->kid = kd;
			for (int32_t c = 0; c < tn->n_children; c++)
				s->kids[kd++] = tn->children[c];
			n->n_kids_live = tn->status == TREE_PRUNED ? 0 : tn->n_children;
			n->n_kids = tn->n_children;
			/* pruned subtree roots are appended below, once their parents' runs exist */
			kd += extra[id];
			n->page = pg;
			n->n_pages = tn->n_pages;
			for (int32_t k = 0; k < tn->n_pages; k++)
				s->pages[pg++] = tn->pages[k];
		}
		/* pruned subtree roots after their parent's tree children, in id order */
		for (int32_t id = 0; id < s->n_ids; id++) {
			const struct ui_snap_node *n = &s->nodes[id];
			if (n->id < 0 || n->status != TREE_PRUNED || n->parent < 0)
				continue;
			struct ui_snap_node *p = &s->nodes[n->parent];
			if (p->id < 0 || p->status == TREE_PRUNED)
				continue;
			s->kids[p->kid + p->n_kids++] = id;
		}
		free(extra);
		free(pc);
		subtree_sums(s);
		tree_stats(t, &s->tstats);
	}

	if (pool) {
		s->pool_pages = kvpool_n_pages(pool);
		s->pool_free = kvpool_n_free(pool);
		s->page_size = kvpool_params(pool)->page_size;
		s->page_bytes = kvpool_page_bytes(pool);
		s->token_bytes = kvpool_token_bytes(pool);
		size_t np = (size_t)(s->pool_pages ? s->pool_pages : 1);
		s->page_owner = xmallocarray(np, sizeof(*s->page_owner));
		s->page_live = xcalloc(np, sizeof(*s->page_live));
		s->page_branches = xcalloc(np, sizeof(*s->page_branches));
		for (int32_t p = 0; p < s->pool_pages; p++)
			s->page_owner[p] = -1;
		for (int32_t id = 0; id < s->n_ids; id++) {
			const struct ui_snap_node *n = &s->nodes[id];
			if (n->id < 0 || n->status == TREE_PRUNED)
				continue;
			for (int32_t k = 0; k < n->n_pages; k++) {
				int32_t p = s->pages[n->page + k];
				if (p < 0 || p >= s->pool_pages)
					continue;
				int32_t o = s->page_owner[p];
				if (o < 0 || s->nodes[o].depth > n->depth)
					s->page_owner[p] = id;
				s->page_live[p] = DT_MAX(s->page_live[p], n->live_below);
				s->page_branches[p] = DT_MAX(s->page_branches[p], n->leaves_below);
			}
		}
	}

	if (src->metrics) {
		const struct metrics *m = src->metrics;
		s->has_metrics = true;
		metrics_summarize(m, &s->sum);
		const struct metrics_step *last = metrics_last_step(m);
		if (last) {
			s->has_last = true;
			s->last = *last;
		}
		int64_t n = metrics_n_steps(m), keep = src->hist_max > 0 ? src->hist_max : HIST_DEFAULT;
		int64_t first = n > keep ? n - keep : 0;
		s->n_hist = (int32_t)(n - first);
		s->hist_wall = xcalloc((size_t)(s->n_hist ? s->n_hist : 1), sizeof(*s->hist_wall));
		s->hist_bytes = xcalloc((size_t)(s->n_hist ? s->n_hist : 1), sizeof(*s->hist_bytes));
		for (int64_t i = first; i < n; i++) {
			const struct metrics_step *st = metrics_step_at(m, i);
			s->hist_wall[i - first] = st->wall_ns;
			s->hist_bytes[i - first] = metrics_io_total(&st->io);
		}
		/* TTFT of the branch that started last and has a token */
		s->ttft_last_ns = -1;
		int64_t best_start = INT64_MIN;
		for (int64_t i = 0; i < metrics_n_branches(m); i++) {
			const struct metrics_branch *b = metrics_branch_at(m, i);
			int64_t ns;
			if (metrics_branch_ttft(b, &ns) && b->t_start_ns >= best_start) {
				best_start = b->t_start_ns;
				s->ttft_last_ns = ns;
			}
		}
	}
	s->text = text.p;
	s->n_text = text.n;
	return s;
}

void ui_snap_free(struct ui_snap *s)
{
	if (!s)
		return;
	free(s->nodes);
	free(s->toks);
	free(s->alts);
	free(s->kids);
	free(s->pages);
	free(s->text);
	free(s->page_owner);
	free(s->page_live);
	free(s->page_branches);
	free(s->hist_wall);
	free(s->hist_bytes);
	free(s);
}

// ---- queries

const struct ui_snap_node *ui_snap_node(const struct ui_snap *s, int32_t id)
{
	if (!s || id < 0 || id >= s->n_ids || s->nodes[id].id < 0)
		return NULL;
	return &s->nodes[id];
}

int32_t ui_snap_n_kids(const struct ui_snap_node *n, bool with_pruned)
{
	return with_pruned ? n->n_kids : n->n_kids_live;
}

int32_t ui_snap_path(const struct ui_snap *s, int32_t id, int32_t *out, int32_t cap)
{
	int32_t n = 0;
	for (const struct ui_snap_node *x = ui_snap_node(s, id); x; x = ui_snap_node(s, x->parent))
		n++;
	int32_t i = n;
	for (const struct ui_snap_node *x = ui_snap_node(s, id); x; x = ui_snap_node(s, x->parent)) {
		i--;
		if (i < cap)
			out[i] = x->id;
	}
	return n;
}

int32_t ui_snap_path_len(const struct ui_snap *s, int32_t id)
{
	const struct ui_snap_node *n = ui_snap_node(s, id);
	return n ? n->pos0 + n->n_tokens : 0;
}

bool ui_snap_locate(const struct ui_snap *s, int32_t id, int32_t pos, int32_t *node, int32_t *index)
{
	for (const struct ui_snap_node *x = ui_snap_node(s, id); x; x = ui_snap_node(s, x->parent)) {
		if (pos >= x->pos0 && pos < x->pos0 + x->n_tokens) {
			*node = x->id;
			*index = pos - x->pos0;
			return true;
		}
	}
	return false;
}

const char *ui_snap_piece(const struct ui_snap *s, const struct ui_snap_tok *t, size_t *len)
{
	*len = t->text_len;
	return s->text + t->text;
}

char *ui_snap_node_text(const struct ui_snap *s, int32_t id, int32_t **tok_of_byte, size_t *len)
{
	const struct ui_snap_node *n = ui_snap_node(s, id);
	size_t total = 0;
	for (int32_t i = 0; n && i < n->n_tokens; i++)
		total += s->toks[n->tok + i].text_len;
	char *out = xmalloc(total + 1);
	int32_t *map = tok_of_byte ? xmallocarray(total + 1, sizeof(int32_t)) : NULL;
	size_t k = 0;
	for (int32_t i = 0; n && i < n->n_tokens; i++) {
		const struct ui_snap_tok *t = &s->toks[n->tok + i];
		memcpy(out + k, s->text + t->text, t->text_len);
		for (size_t b = 0; map && b < t->text_len; b++)
			map[k + b] = i;
		k += t->text_len;
	}
	out[k] = 0;
	if (tok_of_byte)
		*tok_of_byte = map;
	if (len)
		*len = k;
	return out;
}

// ---- previews

/* bytes of the node's visible tokens (control tokens left out) */
static size_t visible_bytes(const struct ui_snap *s, const struct ui_snap_node *n, char *out, size_t cap)
{
	size_t k = 0;
	for (int32_t i = 0; i < n->n_tokens; i++) {
		const struct ui_snap_tok *t = &s->toks[n->tok + i];
		if (t->flags & UI_TOK_CONTROL)
			continue;
		size_t l = t->text_len;
		if (k + l > cap)
			l = cap - k;
		memcpy(out + k, s->text + t->text, l);
		k += l;
		if (k == cap)
			break;
	}
	return k;
}

void ui_snap_preview(const struct ui_snap *s, int32_t id, bool tail, int max_cols, char *buf, size_t cap)
{
	buf[0] = 0;
	const struct ui_snap_node *n = ui_snap_node(s, id);
	if (!n || cap < 8)
		return;
	size_t raw_cap = 0;
	for (int32_t i = 0; i < n->n_tokens; i++)
		raw_cap += s->toks[n->tok + i].text_len;
	raw_cap += 8;
	char *raw = xmalloc(raw_cap);
	size_t len = visible_bytes(s, n, raw, raw_cap - 8);
	size_t start = 0;
	/* a character begun in the parent belongs to the parent */
	if (n->parent >= 0)
		while (start < len && start < 3 && ((unsigned char)raw[start] & 0xc0) == 0x80)
			start++;
	/* a character left unfinished: its continuation bytes from the first child */
	if (len > start) {
		size_t i = len;
		int back = 0;
		while (i > start && back < 4 && ((unsigned char)raw[i - 1] & 0xc0) == 0x80) {
			i--;
			back++;
		}
		if (i > start) {
			int clen;
			bool complete;
			ui_utf8_next(raw + i - 1, len - (i - 1), &clen, &complete);
			if (!complete && n->n_kids_live > 0) {
				const struct ui_snap_node *c = ui_snap_node(s, s->kids[n->kid]);
				char more[8];
				size_t m = c ? visible_bytes(s, c, more, 4) : 0;
				for (size_t j = 0; j < m && ((unsigned char)more[j] & 0xc0) == 0x80; j++)
					raw[len++] = more[j];
			}
		}
	}
	/* decode into display characters */
	uint32_t *cps = xmallocarray(len - start + 1, sizeof(*cps));
	int n_cp = 0;
	for (size_t i = start; i < len;) {
		int l;
		bool complete;
		uint32_t cp = ui_utf8_next(raw + i, len - i, &l, &complete);
		i += (size_t)l;
		if (!complete)
			break; /* an unfinished last character: not shown yet */
		if (cp == '\n')
			cp = ui_g->newline;
		else if (cp == '\t' || cp == '\r')
			cp = ' ';
		cps[n_cp++] = cp;
	}
	free(raw);
	/* the end of a prompt: no trailing newlines (a chat turn ends with one) */
	while (tail && n_cp > 0 && (cps[n_cp - 1] == ui_g->newline || cps[n_cp - 1] == ' '))
		n_cp--;
	/* an outline reads better without the leading space of a word piece */
	int lead = 0;
	while (!tail && lead < n_cp && cps[lead] == ' ')
		lead++;
	memmove(cps, cps + lead, (size_t)(n_cp - lead) * sizeof(*cps));
	n_cp -= lead;
	/* cut to max_cols */
	int total = 0;
	for (int i = 0; i < n_cp; i++)
		total += ui_cp_width(cps[i]);
	int from = 0, to = n_cp;
	bool cut_front = false, cut_back = false;
	if (max_cols > 0 && total > max_cols) {
		int w = 0;
		if (tail) {
			cut_front = true;
			from = n_cp;
			while (from > 0 && w + ui_cp_width(cps[from - 1]) <= max_cols - 1)
				w += ui_cp_width(cps[--from]);
			while (from < n_cp && cps[from] == ' ')
				from++;
		} else {
			cut_back = true;
			to = 0;
			while (to < n_cp && w + ui_cp_width(cps[to]) <= max_cols - 1)
				w += ui_cp_width(cps[to++]);
			while (to > 0 && cps[to - 1] == ' ')
				to--;
		}
	}
	size_t k = 0;
	char b[8];
	if (cut_front) {
		int l = ui_utf8_put(ui_g->ellipsis, b);
		memcpy(buf + k, b, (size_t)l);
		k += (size_t)l;
	}
	for (int i = from; i < to; i++) {
		int l = ui_utf8_put(cps[i], b);
		if (k + (size_t)l + 5 > cap)
			break;
		memcpy(buf + k, b, (size_t)l);
		k += (size_t)l;
	}
	if (cut_back) {
		int l = ui_utf8_put(ui_g->ellipsis, b);
		memcpy(buf + k, b, (size_t)l);
		k += (size_t)l;
	}
	buf[k] = 0;
	free(cps);
}
