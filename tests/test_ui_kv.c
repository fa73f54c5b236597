/*
 * test_ui_kv.c — the KV pane's page grid and totals from known trees:
 * owners, sharing marks, free pages, the selected node's pages, pruning,
 * and several pages per cell when the pool outgrows the grid.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panes.h"
#include "tap.h"
#include "ui_fixture.h"

static struct ui_canvas *draw(const struct ui_snap *s, const struct ui_view_state *vs, int w, int h)
{
	struct ui_canvas *c = ui_canvas_new(w, h);
	struct ui_view v = ui_view_of(c, (struct ui_rect){ 0, 0, w, h });
	ui_kv_draw(&v, s, vs);
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
	char err[DT_ERR_LEN];
	struct ui_view_state vs = { 0 };
	vs.cursor = -1;

	/* B live again: two live branches read the prompt's pages */
	tree_set_status(f.tree, f.b, TREE_LIVE, err);
	struct ui_snap *s = fx_snap(&f);
	struct ui_canvas *c = draw(s, &vs, 40, 8);
	ok(!strcmp(fx_row(c, 0), "16 logical / 12 stored = 1.33x"),
	   "totals: paths 8+8 = 16 logical, 12 stored: '%s'", fx_row(c, 0));
	ok(!strcmp(fx_row(c, 1), "pages 7/64, 57 free, 224 B of 2.0 KiB"),
	   "pages used / free, bytes, page size: '%s'", fx_row(c, 1));
	ok(!strcmp(fx_row(c, 2), "2211111·································"),
	   "grid: prompt pages read by 2 branches, the pruned D's page free: '%s'", fx_row(c, 2));
	ok(!strncmp(fx_styles(c, 2), "0011223d", 8), "colours by owner: root 0, A 1, B 2, C 3 (%s)", fx_styles(c, 2));
	ok(!strcmp(fx_row(c, 7), "digit: live readers, colour: node"), "legend on the last row: '%s'", fx_row(c, 7));
	ui_canvas_free(c);

	c = draw(s, &vs, 64, 8);
	ok(!strcmp(fx_row(c, 0), "logical 16 tokens, stored 12: sharing 1.33x") &&
		   !strcmp(fx_row(c, 1), "pages 7/64 used, 57 free, 224 B of 2.0 KiB, 2 tok/page"),
	   "a wide pane spells the totals out: '%s' / '%s'", fx_row(c, 0), fx_row(c, 1));
	ui_canvas_free(c);

	/* the pages of B: which ones? */
	const struct tree_node *bn = tree_node(f.tree, f.b);
	diag("B's pages: %d %d, C's: %d", bn->pages[0], bn->pages[1], tree_node(f.tree, f.c)->pages[0]);

	/* selection: the cursor node's pages stand out */
	vs.cursor = f.c;
	c = draw(s, &vs, 40, 8);
	int32_t cpage = tree_node(f.tree, f.c)->pages[0];
	ok(fx_styles(c, 2)[cpage] == '#', "C's page %d is highlighted: %s", cpage, fx_styles(c, 2));
	ui_canvas_free(c);
	ui_snap_free(s);

	/* B finished: its pages show branch counts, dimmed */
	tree_set_status(f.tree, f.b, TREE_FINISHED, err);
	s = fx_snap(&f);
	vs.cursor = -1;
	c = draw(s, &vs, 40, 8);
	ok(fx_styles(c, 2)[bn->pages[0]] == 'd' && fx_row(c, 2)[bn->pages[0]] == '1',
	   "a page only a finished branch reads: its branch count, dim (%s)", fx_styles(c, 2));
	ok(!strncmp(fx_row(c, 2), "11", 2), "the prompt pages: one live branch (C) reads them: '%s'", fx_row(c, 2));
	ui_canvas_free(c);
	ui_snap_free(s);

	/* pruning B returns its two pages */
	int rc = tree_prune(f.tree, f.b, err);
	ok(rc == 0, "prune B");
	s = fx_snap(&f);
	c = draw(s, &vs, 40, 8);
	ok(!strcmp(fx_row(c, 1), "pages 5/64, 59 free, 160 B of 2.0 KiB"), "after the prune: '%s'",
	   fx_row(c, 1));
	ok(fx_row(c, 2)[bn->pages[0]] != '1', "B's first page is free again: '%s'", fx_row(c, 2));
	ok(!strcmp(fx_row(c, 0), "8 logical / 8 stored = 1.00x"), "one path left: '%s'", fx_row(c, 0));
	ui_canvas_free(c);

	/* a small grid: several pages per cell, no room for the legend */
	c = draw(s, &vs, 10, 4);
	ok(!strcmp(fx_row(c, 2), "11········") && !strcmp(fx_row(c, 3), "······"),
	   "64 pages in 20 cells: 4 pages a cell: '%s' / '%s'", fx_row(c, 2), fx_row(c, 3));
	ui_canvas_free(c);
	c = draw(s, &vs, 40, 12);
	ok(!strcmp(fx_row(c, 11), "digit: live readers, colour: node"),
	   "one page per cell when the grid is large enough: '%s'", fx_row(c, 11));
	ui_canvas_free(c);
	c = draw(s, &vs, 12, 8);
	ok(!strncmp(fx_row(c, 7), "1 cell = 2", 10),
	   "the legend says how many pages a cell holds: '%s'", fx_row(c, 7));
	ui_canvas_free(c);
	ui_snap_free(s);

	/* no pool */
	struct ui_snap_src src = { 0 };
	s = ui_snap_build(&src);
	c = draw(s, &vs, 40, 4);
	ok(strstr(fx_row(c, 0), "No KV pool") != NULL, "without a model: '%s'", fx_row(c, 0));
	ui_canvas_free(c);
	ui_snap_free(s);
	fx_free(&f);
	return tap_done();
}
