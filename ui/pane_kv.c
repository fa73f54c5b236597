/*
 * pane_kv.c — the KV page pool as a grid.
 *
 *   logical 96 tokens, stored 52: sharing 1.85x
 *   pages 5/91 used, 86 free, 3.5 MiB of 64.0 MiB, 16 tok/page
 *   3322···························
 *   ·······························
 *   digit: live readers, colour: node
 *
 * One cell per page, in page id order (several pages per cell when the pool
 * is larger than the grid: the header says how many).  A used page is drawn
 * in the colour of the node that owns it (the shallowest node whose tokens
 * sit in it) and marked with the number of live branches that read it — a
 * page of the prompt read by three live branches shows 3: stored once, read
 * three times.  Pages that only finished branches read show their branch
 * count dimmed; free pages are dots.  Pages of the selected node are
 * highlighted.  Each header line has shorter forms for narrow panes.
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

static void put_first_fit(struct ui_view *v, int y, char line[][256], int n)
{
	for (int i = 0; i < n; i++)
		if (ui_text_width(line[i], strlen(line[i])) <= v->w || i == n - 1) {
			ui_puts_fit(v, 0, y, UI_S_NORMAL, line[i], v->w, false);
			return;
		}
}

void ui_kv_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_view_state *vs)
{
	if (!s || s->pool_pages == 0) {
		ui_puts(v, 1, 0, UI_S_DIM, "No KV pool (no model loaded).", v->w - 2);
		return;
	}
	char b1[32], b2[32], line[3][256];
	const struct tree_stats *ts = &s->tstats;
	int32_t used = s->pool_pages - s->pool_free;
	int y = 0;
	/* the longest form that fits */
	snprintf(line[0], sizeof(line[0]), "logical %lld tokens, stored %lld: sharing %.2fx", (long long)ts->logical_tokens,
		 (long long)ts->stored_tokens, ts->sharing);
	snprintf(line[1], sizeof(line[1]), "%lld logical / %lld stored = %.2fx", (long long)ts->logical_tokens,
		 (long long)ts->stored_tokens, ts->sharing);
	snprintf(line[2], sizeof(line[2]), "%lld/%lld tok %.2fx", (long long)ts->logical_tokens,
		 (long long)ts->stored_tokens, ts->sharing);
	put_first_fit(v, y++, line, 3);
	ui_fmt_bytes((uint64_t)used * s->page_bytes, b1, sizeof(b1));
	ui_fmt_bytes((uint64_t)s->pool_pages * s->page_bytes, b2, sizeof(b2));
	snprintf(line[0], sizeof(line[0]), "pages %d/%d used, %d free, %s of %s, %d tok/page", used, s->pool_pages,
		 s->pool_free, b1, b2, s->page_size);
	snprintf(line[1], sizeof(line[1]), "pages %d/%d, %d free, %s of %s", used, s->pool_pages, s->pool_free, b1, b2);
	snprintf(line[2], sizeof(line[2]), "pages %d/%d, %s", used, s->pool_pages, b1);
	put_first_fit(v, y++, line, 3);
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
		char lg[3][256];
		snprintf(lg[0], sizeof(lg[0]), "digit: live branches reading a page, colour: its node, dot: free");
		snprintf(lg[1], sizeof(lg[1]), "digit: live readers, colour: node");
		snprintf(lg[2], sizeof(lg[2]), "digit: live readers");
		if (per > 1) {
			char pre[64];
			snprintf(pre, sizeof(pre), "1 cell = %d pages; ", per);
			for (int i = 0; i < 3; i++) {
				char t[256];
				snprintf(t, sizeof(t), "%.60s%.190s", pre, lg[i]);
				snprintf(lg[i], sizeof(lg[i]), "%s", t);
			}
		}
		for (int i = 0; i < 3; i++)
			if (ui_text_width(lg[i], strlen(lg[i])) <= v->w || i == 2) {
				ui_puts_fit(v, 0, v->h - 1, UI_S_DIM, lg[i], v->w, false);
				break;
			}
	}
}
