/*
 * pane_kv.c — the KV page pool as a grid.
 *
 *   logical 96 tok  stored 52  sharing 1.85x
 *   pages 5/91 used  86 free  3.5/64 MiB  16 tok/page
 *   3322···························
 *   ·······························
 *
 * One cell per page, in page id order (several pages per cell when the pool
 * is larger than the grid: the header says how many).  A used page is drawn
 * in the colour of the node that owns it (the shallowest node whose tokens
 * sit in it) and marked with the number of live branches that read it — a
 * page of the prompt read by three live branches shows 3: stored once, read
 * three times.  Pages that only finished branches read show their branch
 * count dimmed; free pages are dots.  Pages of the selected node are
 * highlighted.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "panes.h"

static bool page_selected(const struct ui_snap *s, int32_t page, int32_t node)
{
	const struct ui_snap_node *n = ui_snap_node(s, node);
	if (!n)
		return false;
	for (int32_t k = 0; k < n->n_pages; k++)
		if (s->pages[n->page + k] == page)
			return true;
	return false;
}

void ui_kv_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_view_state *vs)
{
	if (!s || s->pool_pages == 0) {
		ui_puts(v, 1, 0, UI_S_DIM, "No KV pool (no model loaded).", v->w - 2);
		return;
	}
	char b1[32], b2[32], line[256];
	const struct tree_stats *ts = &s->tstats;
	int32_t used = s->pool_pages - s->pool_free;
	int y = 0;
	snprintf(line, sizeof(line), "logical %lld tok  stored %lld  sharing %.2fx", (long long)ts->logical_tokens,
		 (long long)ts->stored_tokens, ts->sharing);
	ui_puts(v, 0, y++, UI_S_NORMAL, line, v->w);
	snprintf(line, sizeof(line), "pages %d/%d used  %d free  %s/%s  %d tok/page", used, s->pool_pages, s->pool_free,
		 ui_fmt_bytes((uint64_t)used * s->page_bytes, b1, sizeof(b1)),
		 ui_fmt_bytes((uint64_t)s->pool_pages * s->page_bytes, b2, sizeof(b2)), s->page_size);
	ui_puts(v, 0, y++, UI_S_NORMAL, line, v->w);
	int rows = v->h - y;
	bool legend = rows >= 4;
	if (legend)
		rows--;
	if (rows < 1 || v->w < 4)
		return;
	int64_t cells = (int64_t)rows * v->w;
	int32_t per = (int32_t)((s->pool_pages + cells - 1) / cells);
	if (per < 1)
		per = 1;
	int32_t n_cells = (s->pool_pages + per - 1) / per;
	for (int32_t c = 0; c < n_cells; c++) {
		int x = c % v->w, yy = y + c / v->w;
		if (yy >= y + rows)
			break;
		int32_t live = 0, branches = 0, owner = -1;
		bool any = false, sel = false;
		for (int32_t p = c * per; p < (c + 1) * per && p < s->pool_pages; p++) {
			if (s->page_owner[p] < 0)
				continue;
			if (!any)
				owner = s->page_owner[p];
			any = true;
			live = DT_MAX(live, s->page_live[p]);
			branches = DT_MAX(branches, s->page_branches[p]);
			sel = sel || page_selected(s, p, vs ? vs->cursor : -1);
		}
		if (!any) {
			ui_putc(v, x, yy, ui_g->page_free, UI_S_DIM);
			continue;
		}
		int32_t k = live > 0 ? live : branches;
		uint32_t ch = k <= 9 ? (uint32_t)('0' + k) : '+';
		enum ui_style st = sel ? UI_S_PAGE_SEL : live > 0 ? (enum ui_style)(UI_S_OWN0 + owner % 6) : UI_S_DIM;
		ui_putc(v, x, yy, ch, st);
	}
	if (legend) {
		if (per > 1)
			snprintf(line, sizeof(line), "1 cell = %d pages; digit: live branches reading it; colour: owner node", per);
		else
			snprintf(line, sizeof(line), "digit: live branches reading the page; colour: owner node");
		ui_puts_fit(v, 0, v->h - 1, UI_S_DIM, line, v->w, false);
	}
}
