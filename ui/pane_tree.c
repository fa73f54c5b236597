/*
 * pane_tree.c — the token tree as an indented outline of spans.
 *
 * One row per shown node, depth-first in child order:
 *
 *   ▾ …Write a haiku about the sea.↵assistant↵                  31
 *   ├─▾ The sea is                                               3
 *   │ ├─● wide and deep, its                                     6
 *   │ └─■ calm and blue.                                         4
 *   └─✗ Waves                                                    1
 *
 * guides, then one mark (▾/▸ for a node with children, open/folded; ● live
 * leaf, ■ finished leaf, ✗ pruned), the node's text (the prompt shows its
 * end), and on the right its token count (a folded node: +hidden nodes
 * first).  The cursor row is highlighted, the rows on the path to it are
 * bold.  Deep trees keep the deepest levels of guides that fit.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "panes.h"

// ---- folding

void ui_view_state_fold_reserve(struct ui_view_state *vs, int32_t n_ids)
{
	if (n_ids <= vs->n_fold)
		return;
	int32_t c = vs->n_fold ? vs->n_fold : 64;
	while (c < n_ids)
		c *= 2;
	vs->fold = xrealloc(vs->fold, (size_t)c);
	memset(vs->fold + vs->n_fold, 0, (size_t)(c - vs->n_fold));
	vs->n_fold = c;
}

static int32_t shown_kids(const struct ui_snap_node *n, const struct ui_view_state *vs)
{
	return n->status == TREE_PRUNED || vs->show_pruned ? n->n_kids : n->n_kids_live;
}

bool ui_tree_folded(const struct ui_snap *s, const struct ui_view_state *vs, int32_t node)
{
	const struct ui_snap_node *n = ui_snap_node(s, node);
	if (!n || shown_kids(n, vs) == 0)
		return false;
	return node < vs->n_fold && vs->fold[node];
}

void ui_tree_fold_level(const struct ui_snap *s, struct ui_view_state *vs, int32_t level)
{
	ui_view_state_fold_reserve(vs, s->n_ids);
	for (int32_t id = 0; id < s->n_ids; id++) {
		const struct ui_snap_node *n = ui_snap_node(s, id);
		if (n)
			vs->fold[id] = level >= 0 && n->depth >= level;
	}
}

void ui_tree_reveal(const struct ui_snap *s, struct ui_view_state *vs, int32_t node)
{
	const struct ui_snap_node *n = ui_snap_node(s, node);
	for (n = n ? ui_snap_node(s, n->parent) : NULL; n; n = ui_snap_node(s, n->parent))
		if (n->id < vs->n_fold)
			vs->fold[n->id] = 0;
}

// ---- rows

static int32_t hidden_below(const struct ui_snap *s, const struct ui_snap_node *n, const struct ui_view_state *vs)
{
	if (n->status == TREE_PRUNED || !vs->show_pruned)
		return n->nodes_below;
	/* in-tree nodes plus the pruned subtrees hanging off them */
	int32_t total = 0;
	for (int32_t k = 0; k < n->n_kids; k++) {
		const struct ui_snap_node *c = ui_snap_node(s, s->kids[n->kid + k]);
		if (c)
			total += 1 + hidden_below(s, c, vs);
	}
	return total;
}

int32_t ui_tree_rows(const struct ui_snap *s, const struct ui_view_state *vs, struct ui_tree_row *rows, int32_t cap)
{
	if (!s || !s->has_tree || !ui_snap_node(s, s->root))
		return 0;
	struct frame {
		int32_t node, depth;
		uint64_t more;
		bool last;
	};
	int32_t scap = 64, sp = 0, n = 0;
	struct frame *st = xmallocarray((size_t)scap, sizeof(*st));
	st[sp++] = (struct frame){ s->root, 0, 0, true };
	while (sp > 0) {
		struct frame f = st[--sp];
		const struct ui_snap_node *nd = ui_snap_node(s, f.node);
		if (!nd)
			continue;
		bool folded = ui_tree_folded(s, vs, f.node);
		if (n < cap)
			rows[n] = (struct ui_tree_row){ f.node, f.depth, f.more, f.last,
							folded ? hidden_below(s, nd, vs) : 0 };
		n++;
		if (folded)
			continue;
		int32_t nk = shown_kids(nd, vs);
		if (sp + nk > scap) {
			while (sp + nk > scap)
				scap *= 2;
			st = xrealloc(st, (size_t)scap * sizeof(*st));
		}
		/* children's guides: this node's own level continues when it has later siblings */
		uint64_t more = f.more;
		if (f.depth >= 1 && f.depth <= 64) {
			if (!f.last)
				more |= 1ull << (f.depth - 1);
			else
				more &= ~(1ull << (f.depth - 1));
		}
		for (int32_t k = nk - 1; k >= 0; k--) /* pushed in reverse: popped in order */
			st[sp++] = (struct frame){ s->kids[nd->kid + k], f.depth + 1, more, k == nk - 1 };
	}
	free(st);
	return n;
}

int32_t ui_tree_row_of(const struct ui_tree_row *rows, int32_t n, int32_t node)
{
	for (int32_t i = 0; i < n; i++)
		if (rows[i].node == node)
			return i;
	return -1;
}

// ---- drawing

static bool on_path(const struct ui_snap *s, int32_t node, int32_t cursor)
{
	for (const struct ui_snap_node *x = ui_snap_node(s, cursor); x; x = ui_snap_node(s, x->parent))
		if (x->id == node)
			return true;
	return false;
}

static void draw_empty(struct ui_view *v)
{
	static const char *lines[] = {
		"No tree yet.",
		"",
		"Press p and type a prompt:",
		"the answer grows here as a",
		"tree you can fork anywhere.",
		"",
		"? lists every key.",
	};
	int y0 = v->h > 9 ? 1 : 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(lines) && (int)i + y0 < v->h; i++)
		ui_puts(v, 2, y0 + (int)i, i == 0 ? UI_S_BOLD : UI_S_DIM, lines[i], v->w - 3);
}

static void draw_row(struct ui_view *v, int y, const struct ui_snap *s, const struct ui_view_state *vs,
		     const struct ui_tree_row *r)
{
	const struct ui_snap_node *nd = ui_snap_node(s, r->node);
	bool cur = r->node == vs->cursor;
	bool path = !cur && vs->cursor >= 0 && on_path(s, r->node, vs->cursor);
	bool pruned = nd->status == TREE_PRUNED;
	enum ui_style base = cur ? UI_S_CURSOR : UI_S_NORMAL;
	if (cur)
		ui_fill(v, 0, y, v->w, 1, ' ', UI_S_CURSOR);

	/* guides: the deepest levels that leave room for 12 columns of text */
	int max_levels = (v->w - 14) / 2;
	if (max_levels < 1)
		max_levels = 1;
	int first = r->depth > max_levels ? r->depth - max_levels + 1 : 1;
	int x = 0;
	enum ui_style gs = cur ? UI_S_CURSOR : path ? UI_S_PATH : UI_S_DIM;
	for (int L = first; L <= r->depth; L++) {
		if (L < r->depth) {
			bool more = L - 1 < 64 && (r->more >> (L - 1)) & 1;
			ui_putc(v, x, y, more ? ui_g->vline : ' ', cur ? UI_S_CURSOR : UI_S_DIM);
			ui_putc(v, x + 1, y, ' ', base);
		} else {
			ui_putc(v, x, y, r->last ? ui_g->elbow : ui_g->tee, gs);
			ui_putc(v, x + 1, y, ui_g->hline, gs);
		}
		x += 2;
	}
	/* mark */
	uint32_t mark;
	enum ui_style ms;
	int32_t nk = shown_kids(nd, vs);
	if (pruned) {
		mark = ui_g->pruned;
		ms = UI_S_PRUNED;
	} else if (nk > 0) {
		mark = r->hidden > 0 ? ui_g->fold_closed : ui_g->fold_open;
		ms = path ? UI_S_PATH : UI_S_NORMAL;
	} else if (nd->status == TREE_LIVE) {
		mark = ui_g->live;
		ms = UI_S_LIVE;
	} else {
		mark = ui_g->finished;
		ms = UI_S_FINISHED;
	}
	ui_putc(v, x, y, mark, cur ? UI_S_CURSOR : ms);
	x += 2;

	/* right part: [+hidden ]tokens */
	char right[48];
	if (r->hidden > 0)
		snprintf(right, sizeof(right), "+%d %d", r->hidden, nd->n_tokens);
	else
		snprintf(right, sizeof(right), "%d", nd->n_tokens);
	int rw = (int)strlen(right);
	int text_w = v->w - x - rw - 1;
	if (text_w > 0) {
		char prev[1024];
		ui_snap_preview(s, r->node, r->node == s->root, text_w, prev, sizeof(prev));
		if (!prev[0] && nd->n_tokens == 0)
			snprintf(prev, sizeof(prev), "%s", nd->status == TREE_LIVE ? "(waiting for its first token)" : "(empty)");
		enum ui_style ts = cur ? UI_S_CURSOR : pruned ? UI_S_PRUNED : path ? UI_S_PATH : UI_S_NORMAL;
		ui_puts_fit(v, x, y, ts, prev, text_w, false);
	}
	if (v->w - rw >= x)
		ui_puts(v, v->w - rw, y, cur ? UI_S_CURSOR : UI_S_DIM, right, rw);
}

void ui_tree_draw(struct ui_view *v, const struct ui_snap *s, struct ui_view_state *vs, int32_t *row_node)
{
	for (int y = 0; row_node && y < v->h; y++)
		row_node[y] = -1;
	if (!s || !s->has_tree) {
		draw_empty(v);
		return;
	}
	int32_t n = ui_tree_rows(s, vs, NULL, 0);
	struct ui_tree_row *rows = xmallocarray((size_t)(n ? n : 1), sizeof(*rows));
	ui_tree_rows(s, vs, rows, n);
	int32_t cr = ui_tree_row_of(rows, n, vs->cursor);
	/* keep the cursor on screen with a row of context where possible */
	if (cr >= 0) {
		if (cr < vs->tree_top + 1)
			vs->tree_top = cr - 1;
		if (cr > vs->tree_top + v->h - 2)
			vs->tree_top = cr - v->h + 2;
	}
	if (vs->tree_top > n - v->h)
		vs->tree_top = n - v->h;
	if (vs->tree_top < 0)
		vs->tree_top = 0;
	for (int y = 0; y < v->h && vs->tree_top + y < n; y++) {
		draw_row(v, y, s, vs, &rows[vs->tree_top + y]);
		if (row_node)
			row_node[y] = rows[vs->tree_top + y].node;
	}
	free(rows);
}
