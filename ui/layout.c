/*
 * layout.c — pane rectangles from the terminal size (design in layout.h).
 *
 * Columns are separated by one blank column (drawn as a vertical rule by the
 * app); rows of panes need no separator since every pane starts with its
 * title bar.
 */
#include "config.h"

#include "layout.h"

#include <string.h>

#include "common.h"

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void ui_layout_compute(int w, int h, struct ui_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->w = w;
	l->h = h;
	if (w < UI_MIN_COLS || h < UI_MIN_ROWS) {
		l->too_small = true;
		return;
	}
	l->header = (struct ui_rect){ 0, 0, w, 1 };
	l->status = (struct ui_rect){ 0, h - 2, w, 1 };
	l->cmdline = (struct ui_rect){ 0, h - 1, w, 1 };
	int top = 1, avail = h - 3; /* rows for the panes */
	l->body = (struct ui_rect){ 0, top, w, avail };
	if (w >= UI_WIDE_COLS) {
		l->wide = true;
		int right = clampi(w * 30 / 100, 46, 64);
		int tree = clampi(w * 28 / 100, 36, 60);
		int text = w - right - tree - 2;
		int kv = clampi(avail * 42 / 100, 8, avail - 12);
		l->pane[UI_PANE_TREE] = (struct ui_rect){ 0, top, tree, avail };
		l->pane[UI_PANE_TEXT] = (struct ui_rect){ tree + 1, top, text, avail };
		l->pane[UI_PANE_KV] = (struct ui_rect){ tree + text + 2, top, right, kv };
		l->pane[UI_PANE_STATS] = (struct ui_rect){ tree + text + 2, top + kv, right, avail - kv };
		return;
	}
	/* two rows: the bottom one holds the stats (they need about 10 rows) */
	int bottom = clampi(avail * 45 / 100, 9, 16);
	int upper = avail - bottom;
	int tree = clampi(w * 42 / 100, 32, 56);
	int kv = clampi(w * 40 / 100, 30, 56);
	l->pane[UI_PANE_TREE] = (struct ui_rect){ 0, top, tree, upper };
	l->pane[UI_PANE_TEXT] = (struct ui_rect){ tree + 1, top, w - tree - 1, upper };
	l->pane[UI_PANE_KV] = (struct ui_rect){ 0, top + upper, kv, bottom };
	l->pane[UI_PANE_STATS] = (struct ui_rect){ kv + 1, top + upper, w - kv - 1, bottom };
}

int ui_layout_pane_at(const struct ui_layout *l, int x, int y)
{
	if (l->too_small)
		return -1;
	for (int p = 0; p < UI_N_PANES; p++) {
		const struct ui_rect *r = &l->pane[p];
		if (x >= r->x && x < r->x + r->w && y >= r->y && y < r->y + r->h)
			return p;
	}
	return -1;
}

const char *ui_pane_name(enum ui_pane p)
{
	static const char *names[UI_N_PANES] = { "tree", "text", "kv", "stats" };
	return (int)p >= 0 && p < UI_N_PANES ? names[p] : "?";
}
