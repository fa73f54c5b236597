/*
 * test_ui_text.c — the text pane: path text, word wrap, the token cursor,
 * UTF-8 split over tokens, boundaries, colours, search marks, the hit map
 * and the alternatives block, rendered from known trees.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panes.h"
#include "tap.h"
#include "ui_fixture.h"

static struct ui_canvas *draw(const struct ui_snap *s, struct ui_view_state *vs, int w, int h, int32_t **cells)
{
	struct ui_canvas *c = ui_canvas_new(w, h);
	struct ui_view v = ui_view_of(c, (struct ui_rect){ 0, 0, w, h });
	int32_t *ct = malloc((size_t)w * (size_t)h * sizeof(int32_t));
	ui_text_draw(&v, s, vs, ct);
	if (cells)
		*cells = ct;
	else
		free(ct);
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
	vs.tok_pos = 7;
	int32_t *cells;

	/* ---- path text, wrapped at word boundaries; no room for alternatives in 6 rows */
	struct ui_canvas *c = draw(s, &vs, 16, 6, &cells);
	ok(!strcmp(fx_row(c, 0), "<s>The sea is") && !strcmp(fx_row(c, 1), "wide and deep") && !strcmp(fx_row(c, 2), "blue"),
	   "C's path wraps at spaces: '%s' / '%s' / '%s'", fx_row(c, 0), fx_row(c, 1), fx_row(c, 2));
	ok(!strcmp(fx_styles(c, 0), "dddqqqqqqqqqqv.."),
	   "control token dim, prompt tokens in the prompt style, the space of ' wide' hangs at the end: %s",
	   fx_styles(c, 0));
	ok(!strcmp(fx_styles(c, 1), "vvvvwwwwxxxxxC.."), "p .95 .7 .4: three probability colours: %s", fx_styles(c, 1));
	ok(!strncmp(fx_styles(c, 2), "CCCC", 4), "the token cursor (' blue', position 7) is highlighted: %s",
	   fx_styles(c, 2));
	ok(cells[2 * 16 + 0] == 7 && cells[1 * 16 + 0] == 4 && cells[0 * 16 + 4] == 1,
	   "the hit map gives each cell's token position (%d %d %d)", cells[32], cells[16], cells[4]);
	ok(cells[2 * 16 + 10] == -1, "cells past the text map to no token");
	free(cells);
	ui_canvas_free(c);

	/* ---- the split character: shown once, lit by either token */
	vs.cursor = f.b;
	vs.tok_pos = 5;
	c = draw(s, &vs, 30, 6, &cells);
	ok(!strcmp(fx_row(c, 0), "<s>The sea is calm✓ ok"), "B's path: the split ✓ is one character: '%s'", fx_row(c, 0));
	ok(!strcmp(fx_styles(c, 0), "dddqqqqqqqqqqyyyyyCxxx........"), "cursor on token 5 (first half) lights ✓: %s",
	   fx_styles(c, 0));
	free(cells);
	ui_canvas_free(c);
	vs.tok_pos = 6;
	c = draw(s, &vs, 30, 6, NULL);
	ok(fx_styles(c, 0)[18] == 'C', "cursor on token 6 (second half) lights the same cell: %s", fx_styles(c, 0));
	ui_canvas_free(c);

	/* ---- boundaries */
	vs.boundaries = true;
	vs.cursor = f.c;
	vs.tok_pos = 7;
	c = draw(s, &vs, 40, 6, NULL);
	ok(!strcmp(fx_row(c, 0), "<s>│The│ sea│ is│ wide│ and│ deep│ blue"), "boundaries between tokens: '%s'",
	   fx_row(c, 0));
	ok(fx_styles(c, 0)[3] == '|', "the boundary mark has its own style");
	ui_canvas_free(c);
	vs.boundaries = false;

	/* ---- entropy colours differ from probability colours */
	vs.entropy = true;
	c = draw(s, &vs, 16, 6, NULL);
	char ent[32];
	snprintf(ent, sizeof(ent), "%s", fx_styles(c, 1));
	ok(strcmp(ent, "vvvvwwwwxxxxxC..") != 0, "entropy colouring gives other colours: %s", ent);
	ui_canvas_free(c);
	vs.entropy = false;

	/* ---- search marks */
	vs.search = "SEA";
	c = draw(s, &vs, 16, 6, NULL);
	ok(!strcmp(fx_styles(c, 0), "dddqqqqMMMqqqv.."), "case-insensitive search marks 'sea': %s", fx_styles(c, 0));
	ui_canvas_free(c);
	vs.search = NULL;

	/* ---- the alternatives block (tall pane) */
	c = draw(s, &vs, 60, 20, NULL);
	int rows = ui_text_alt_rows(s, 20);
	ok(rows == 6, "a 20-row pane has a 6-row alternatives block (rule, header, 4 alternatives): %d", rows);
	ok(!strncmp(fx_row(c, 14), "──────", 6), "a rule above the block: '%s'", fx_row(c, 14));
	ok(strstr(fx_row(c, 15), "token 7 ' blue'") != NULL && strstr(fx_row(c, 15), "p 0.65") != NULL,
	   "the header names the token and its probability: '%s'", fx_row(c, 15));
	ok(!strncmp(fx_row(c, 16), "1 ' blue'", 9) && strstr(fx_row(c, 16), "65.0%") && strstr(fx_row(c, 16), "< taken"),
	   "alternative 1 is the taken token: '%s'", fx_row(c, 16));
	ok(!strncmp(fx_row(c, 17), "2 ' ok'", 7) && strstr(fx_row(c, 17), "5.0%"), "alternative 2: '%s'", fx_row(c, 17));
	ui_canvas_free(c);
	vs.tok_pos = 2;
	c = draw(s, &vs, 60, 20, NULL);
	ok(strstr(fx_row(c, 15), "token 2 ' sea'  prompt") != NULL, "a prompt token says so: '%s'", fx_row(c, 15));
	ui_canvas_free(c);
	vs.tok_pos = 7;

	/* ---- scrolling: the cursor line stays visible */
	c = draw(s, &vs, 6, 3, NULL);
	ok(strstr(fx_row(c, 2), "blue") != NULL || strstr(fx_row(c, 1), "blue") != NULL,
	   "a 6x3 pane scrolls to the cursor (top %d)", vs.text_top);
	ui_canvas_free(c);
	ui_snap_free(s);

	/* ---- streaming: an unfinished character waits for its next token */
	char err[DT_ERR_LEN];
	int32_t leaf = tree_add_child(f.tree, f.root, err);
	const int32_t first_half = 10, second_half = 11;
	const float p = 0.5f;
	fx_append(&f, leaf, &first_half, &p, 1, 9);
	s = fx_snap(&f);
	vs.cursor = leaf;
	vs.tok_pos = 4;
	vs.text_top = 0;
	c = draw(s, &vs, 30, 4, NULL);
	ok(!strcmp(fx_row(c, 0), "<s>The sea is"), "a live branch ending in half a character hides it: '%s'", fx_row(c, 0));
	ui_canvas_free(c);
	ui_snap_free(s);
	fx_append(&f, leaf, &second_half, &p, 1, 10);
	s = fx_snap(&f);
	c = draw(s, &vs, 30, 4, NULL);
	ok(!strcmp(fx_row(c, 0), "<s>The sea is✓"), "the next token completes it: '%s'", fx_row(c, 0));
	ui_canvas_free(c);
	ui_snap_free(s);

	/* ---- wide characters and newlines */
	const int32_t wide[] = { 14, 9, 14 };
	const float pw[] = { 0.9f, 0.9f, 0.9f };
	fx_append(&f, leaf, wide, pw, 3, 11);
	s = fx_snap(&f);
	vs.tok_pos = 6;
	c = draw(s, &vs, 30, 4, NULL);
	ok(!strcmp(fx_row(c, 0), "<s>The sea is✓日本") && !strcmp(fx_row(c, 1), "日本"),
	   "wide characters and a newline: '%s' / '%s'", fx_row(c, 0), fx_row(c, 1));
	ok(ui_text_width("日本", strlen("日本")) == 4, "日本 is 4 columns wide");
	ui_canvas_free(c);
	c = draw(s, &vs, 15, 4, NULL);
	ok(!strcmp(fx_row(c, 0), "<s>The sea") && !strcmp(fx_row(c, 1), "is✓日本") && !strcmp(fx_row(c, 2), "日本"),
	   "15 columns: the line breaks at the last space before the wide characters: '%s' / '%s' / '%s'",
	   fx_row(c, 0), fx_row(c, 1), fx_row(c, 2));
	ui_canvas_free(c);
	ui_snap_free(s);

	fx_free(&f);
	return tap_done();
}
