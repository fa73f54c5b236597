/*
 * test_ui_layout.c — pane rectangles for terminal sizes (ui/layout.c).
 *
 * Exact rectangles at 80x24 and 120x40, the three-column layout on wide
 * terminals, "too small" below 80x24, and for random sizes: every cell of
 * the body belongs to exactly one pane or one separator column, nothing
 * leaves the screen, and every pane has a title row and content.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "tap.h"

static bool rect_eq(struct ui_rect r, int x, int y, int w, int h)
{
	return r.x == x && r.y == y && r.w == w && r.h == h;
}

/* every body cell covered once by a pane or a separator; panes inside the screen */
static bool tiles(const struct ui_layout *l, char *why, size_t cap)
{
	int w = l->w, h = l->h;
	unsigned char *cov = calloc((size_t)w * (size_t)h, 1);
	for (int p = 0; p < UI_N_PANES; p++) {
		struct ui_rect r = l->pane[p];
		if (r.x < 0 || r.y < 1 || r.x + r.w > w || r.y + r.h > h - 2 || r.h < 3 || r.w < 20) {
			snprintf(why, cap, "pane %d out of place: %d,%d %dx%d", p, r.x, r.y, r.w, r.h);
			free(cov);
			return false;
		}
		for (int y = r.y; y < r.y + r.h; y++)
			for (int x = r.x; x < r.x + r.w; x++)
				cov[y * w + x]++;
		/* the separator column left of a pane that does not start at 0 */
		if (r.x > 0)
			for (int y = r.y; y < r.y + r.h; y++)
				cov[y * w + r.x - 1] += 0x10;
	}
	for (int y = 1; y < h - 2; y++)
		for (int x = 0; x < w; x++) {
			unsigned char c = cov[y * w + x];
			bool good = c == 1 || ((c & 0xf0) && (c & 0x0f) == 0);
			if (!good) {
				snprintf(why, cap, "cell %d,%d covered %#x", x, y, c);
				free(cov);
				return false;
			}
		}
	free(cov);
	return true;
}

int main(void)
{
	tap_plan_lazy();
	struct ui_layout l;
	char why[128];

	ui_layout_compute(80, 24, &l);
	ok(!l.too_small && !l.wide, "80x24 is usable, two rows of panes");
	ok(rect_eq(l.header, 0, 0, 80, 1) && rect_eq(l.status, 0, 22, 80, 1) && rect_eq(l.cmdline, 0, 23, 80, 1),
	   "80x24: header on row 0, status on 22, command line on 23");
	ok(rect_eq(l.pane[UI_PANE_TREE], 0, 1, 33, 12) && rect_eq(l.pane[UI_PANE_TEXT], 34, 1, 46, 12),
	   "80x24: tree 0,1 33x12 and text 34,1 46x12 (found %d,%d %dx%d and %d,%d %dx%d)", l.pane[0].x, l.pane[0].y,
	   l.pane[0].w, l.pane[0].h, l.pane[1].x, l.pane[1].y, l.pane[1].w, l.pane[1].h);
	ok(rect_eq(l.pane[UI_PANE_KV], 0, 13, 32, 9) && rect_eq(l.pane[UI_PANE_STATS], 33, 13, 47, 9),
	   "80x24: kv 0,13 32x9 and stats 33,13 47x9 (found %d,%d %dx%d and %d,%d %dx%d)", l.pane[2].x, l.pane[2].y,
	   l.pane[2].w, l.pane[2].h, l.pane[3].x, l.pane[3].y, l.pane[3].w, l.pane[3].h);
	ok(tiles(&l, why, sizeof(why)), "80x24 tiles the body (%s)", why);

	ui_layout_compute(120, 40, &l);
	ok(!l.wide && rect_eq(l.pane[UI_PANE_TREE], 0, 1, 50, 21) && rect_eq(l.pane[UI_PANE_STATS], 49, 22, 71, 16),
	   "120x40: tree 50x21 at the top left, stats 71x16 at the bottom right (found %dx%d, %d,%d %dx%d)", l.pane[0].w,
	   l.pane[0].h, l.pane[3].x, l.pane[3].y, l.pane[3].w, l.pane[3].h);
	ok(tiles(&l, why, sizeof(why)), "120x40 tiles the body (%s)", why);

	ui_layout_compute(200, 50, &l);
	ok(l.wide, "200x50 uses three columns");
	ok(l.pane[UI_PANE_KV].x == l.pane[UI_PANE_STATS].x && l.pane[UI_PANE_KV].x > l.pane[UI_PANE_TEXT].x &&
		   l.pane[UI_PANE_TEXT].x > l.pane[UI_PANE_TREE].x,
	   "wide: tree | text | kv over stats");
	ok(l.pane[UI_PANE_TREE].h == 47 && l.pane[UI_PANE_KV].h + l.pane[UI_PANE_STATS].h == 47,
	   "wide: the columns take the whole body height (47 rows)");
	ok(tiles(&l, why, sizeof(why)), "200x50 tiles the body (%s)", why);

	ui_layout_compute(79, 24, &l);
	ok(l.too_small, "79x24 is too small");
	ui_layout_compute(80, 23, &l);
	ok(l.too_small, "80x23 is too small");
	ok(ui_layout_pane_at(&l, 5, 5) == -1, "no pane is hit on a too-small screen");

	ui_layout_compute(100, 30, &l);
	bool hits = true;
	for (int p = 0; p < UI_N_PANES; p++) {
		struct ui_rect r = l.pane[p];
		hits = hits && ui_layout_pane_at(&l, r.x, r.y) == p && ui_layout_pane_at(&l, r.x + r.w - 1, r.y + r.h - 1) == p;
	}
	ok(hits, "pane_at finds each pane at its corners");
	ok(ui_layout_pane_at(&l, 0, 0) == -1 && ui_layout_pane_at(&l, 0, 29) == -1,
	   "the header and the command line are no pane");

	unsigned seed = (unsigned)time(NULL);
	diag("seed %u", seed);
	srand(seed);
	bool all = true;
	for (int i = 0; i < 300 && all; i++) {
		int w = 80 + rand() % 240, h = 24 + rand() % 80;
		ui_layout_compute(w, h, &l);
		all = !l.too_small && tiles(&l, why, sizeof(why));
		if (!all)
			diag("%dx%d: %s", w, h, why);
	}
	ok(all, "300 random sizes from 80x24 up tile the body");
	return tap_done();
}
