/*
 * test_ui_tree.c — the tree pane's outline and folding, rendered from a
 * known tree (tests/ui_fixture.h) into a text buffer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panes.h"
#include "tap.h"
#include "ui_fixture.h"

static struct ui_canvas *draw(const struct ui_snap *s, struct ui_view_state *vs, int w, int h, int32_t *rows)
{
	struct ui_canvas *c = ui_canvas_new(w, h);
	struct ui_view v = ui_view_of(c, (struct ui_rect){ 0, 0, w, h });
	ui_tree_draw(&v, s, vs, rows);
	return c;
}

int main(void)
{
	if (!fx_utf8_locale())
		tap_skip_all("no UTF-8 locale (C.UTF-8) for character widths");
	tap_plan_lazy();
	ui_glyphs_set(true);
	struct fx f;
	fx_build(&f, 2, 64);
	struct ui_snap *s = fx_snap(&f);
	struct ui_view_state vs = { 0 };
	vs.cursor = f.c;
	vs.show_pruned = true;
	vs.tok_pos = 7;
	int32_t rows[16];

	/* ---- the full outline */
	struct ui_canvas *c = draw(s, &vs, 40, 8, rows);
	ok(!strcmp(fx_row(c, 0), "▾ The sea is                           4"), "root: open mark, prompt text, 4 tokens: '%s'",
	   fx_row(c, 0));
	ok(!strcmp(fx_row(c, 1), "├─▾ wide and deep                      3"), "A: tee guide, open, 3 tokens: '%s'",
	   fx_row(c, 1));
	ok(!strcmp(fx_row(c, 2), "│ ├─● blue                             1"), "C: live leaf mark under A: '%s'",
	   fx_row(c, 2));
	ok(!strcmp(fx_row(c, 3), "│ └─✗ Waves                            1"), "D: pruned mark, last child: '%s'",
	   fx_row(c, 3));
	ok(!strcmp(fx_row(c, 4), "└─■ calm✓ ok                           4"),
	   "B: finished mark, the split character whole: '%s'", fx_row(c, 4));
	ok(!strcmp(fx_row(c, 5), ""), "nothing below the last node");
	ok(rows[0] == f.root && rows[1] == f.a && rows[2] == f.c && rows[3] == f.d && rows[4] == f.b && rows[5] == -1,
	   "the row map names the node of each row");
	ok(!strcmp(fx_styles(c, 2), "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"), "the cursor row is highlighted: %s",
	   fx_styles(c, 2));
	ok(!strncmp(fx_styles(c, 0), "p.pppppppppp", 12), "the root is on the cursor's path (bold): %s", fx_styles(c, 0));
	ok(!strncmp(fx_styles(c, 1), "ppp.ppppppppppppp", 17), "A is on the cursor's path: %s", fx_styles(c, 1));
	ok(!strncmp(fx_styles(c, 3), "d.ddX.XXXXX", 11), "the pruned row is greyed: %s", fx_styles(c, 3));
	ok(!strncmp(fx_styles(c, 4), "ddF.", 4), "the finished mark has its style: %s", fx_styles(c, 4));
	ui_canvas_free(c);

	/* ---- folding */
	ui_view_state_fold_reserve(&vs, s->n_ids);
	vs.fold[f.a] = 1;
	vs.cursor = f.b;
	c = draw(s, &vs, 40, 8, rows);
	ok(!strcmp(fx_row(c, 1), "├─▸ wide and deep                   +2 3"),
	   "folded A: closed mark and +2 hidden nodes: '%s'", fx_row(c, 1));
	ok(!strcmp(fx_row(c, 2), "└─■ calm✓ ok                           4") && rows[3] == -1,
	   "A's children are hidden: '%s'", fx_row(c, 2));
	ok(ui_tree_rows(s, &vs, NULL, 0) == 3, "three rows while A is folded");
	ui_canvas_free(c);

	vs.show_pruned = false;
	c = draw(s, &vs, 40, 8, NULL);
	ok(!strcmp(fx_row(c, 1), "├─▸ wide and deep                   +1 3"),
	   "pruned branches hidden: A hides 1 node: '%s'", fx_row(c, 1));
	ui_canvas_free(c);
	vs.fold[f.a] = 0;
	c = draw(s, &vs, 40, 8, NULL);
	ok(!strcmp(fx_row(c, 2), "│ └─● blue                             1") && ui_tree_rows(s, &vs, NULL, 0) == 4,
	   "pruned hidden, unfolded: C is A's last child: '%s'", fx_row(c, 2));
	ui_canvas_free(c);
	vs.show_pruned = true;

	ui_tree_fold_level(s, &vs, 1);
	ok(ui_tree_rows(s, &vs, NULL, 0) == 3 && ui_tree_folded(s, &vs, f.a) && !ui_tree_folded(s, &vs, f.root),
	   "fold level 1: depth-1 nodes with children fold, the root stays open");
	ok(!ui_tree_folded(s, &vs, f.b), "a leaf is never folded");
	ui_tree_reveal(s, &vs, f.c);
	ok(!ui_tree_folded(s, &vs, f.a) && ui_tree_rows(s, &vs, NULL, 0) == 5, "revealing C unfolds A");
	ui_tree_fold_level(s, &vs, 0);
	ok(ui_tree_rows(s, &vs, NULL, 0) == 1, "fold level 0: only the root");
	ui_tree_fold_level(s, &vs, -1);
	ok(ui_tree_rows(s, &vs, NULL, 0) == 5, "fold level -1 unfolds all");

	/* ---- scrolling keeps the cursor on screen */
	vs.cursor = f.b;
	vs.tree_top = 0;
	c = draw(s, &vs, 40, 3, rows);
	ok(rows[1] == f.b || rows[2] == f.b, "a 3-row pane scrolls to show the cursor (top %d)", vs.tree_top);
	ok(!strcmp(fx_row(c, 2), "└─■ calm✓ ok                           4"), "the cursor row is the last one: '%s'",
	   fx_row(c, 2));
	ui_canvas_free(c);

	/* ---- narrow: text cut with an ellipsis, the count stays */
	vs.tree_top = 0;
	c = draw(s, &vs, 16, 6, NULL);
	ok(!strcmp(fx_row(c, 1), "├─▾ wide and…  3"), "16 columns: '%s'", fx_row(c, 1));
	ui_canvas_free(c);

	/* ---- ASCII glyphs */
	ui_glyphs_set(false);
	c = draw(s, &vs, 40, 8, NULL);
	ok(!strcmp(fx_row(c, 2), "| |-* blue                             1"), "ASCII guides and marks: '%s'", fx_row(c, 2));
	ok(!strcmp(fx_row(c, 4), "`-# calm✓ ok                           4"),
	   "ASCII: finished mark '#' (text is mapped to ASCII when it reaches curses): '%s'", fx_row(c, 4));
	ui_canvas_free(c);
	ui_glyphs_set(true);
	ui_snap_free(s);

	/* ---- a deep chain: guides never push the text out */
	struct fx g;
	fx_build(&g, 2, 512);
	char err[DT_ERR_LEN];
	int32_t node = g.c;
	for (int i = 0; i < 30; i++) {
		int32_t k = tree_add_child(g.tree, node, err);
		const int32_t id = 4;
		const float p = 0.9f;
		fx_append(&g, k, &id, &p, 1, 5 + i);
		/* a sibling so that every level is a real fork */
		int32_t sib = tree_add_child(g.tree, node, err);
		fx_append(&g, sib, &id, &p, 1, 5 + i);
		node = k;
	}
	s = fx_snap(&g);
	vs.cursor = node;
	vs.tree_top = 0;
	c = draw(s, &vs, 30, 10, rows);
	const char *last = fx_row(c, 8);
	ok(strstr(last, "wide") != NULL && ui_text_width(last, strlen(last)) <= 30 && rows[8] == node,
	   "depth 32 in 30 columns still shows the text: '%s'", last);
	const struct ui_snap_node *dn = ui_snap_node(s, node);
	ok(dn && dn->depth == 32, "the snapshot knows the depth (%d)", dn ? dn->depth : -1);
	ui_canvas_free(c);
	ui_snap_free(s);
	fx_free(&g);

	/* ---- no tree */
	struct ui_snap_src src = { 0 };
	s = ui_snap_build(&src);
	vs.cursor = -1;
	c = draw(s, &vs, 40, 8, NULL);
	ok(strstr(fx_row(c, 0), "No tree yet.") != NULL, "without a tree the pane says how to start: '%s'", fx_row(c, 0));
	ui_canvas_free(c);
	ui_snap_free(s);

	free(vs.fold);
	fx_free(&f);
	return tap_done();
}
