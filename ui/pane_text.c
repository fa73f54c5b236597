/*
 * pane_text.c — the text of the path root .. cursor node, token by token.
 *
 * The pieces of the path's tokens are joined into one byte string and only
 * then decoded, so a character whose bytes are split over two tokens is
 * shown once, whole (it is coloured by the token holding its first byte and
 * the token cursor lights it up from either token).  An unfinished character
 * at the very end (the next token brings the rest) is not shown yet.
 *
 * Each character becomes an item; items are word-wrapped to the pane width
 * (newlines break lines; with boundaries on, a dim bar separates tokens and
 * newlines show as a glyph).  Generated tokens are coloured by probability
 * (or by the entropy of their distribution, estimated from the top-k
 * alternatives), prompt and forced tokens are dim.  The token cursor is
 * highlighted and kept on screen.  Below the text, the alternatives block
 * shows the top-k tokens the model offered at the cursor: the
 * counterfactual view, from which `a` forks.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "panes.h"

struct item {
	uint32_t cp;
	int32_t pos, pos_last; /* tokens whose bytes the character spans */
	uint8_t style;
	uint8_t kind;          /* 0 char, 1 newline, 2 boundary */
	uint8_t width;
};

enum ui_style ui_token_style(const struct ui_snap_tok *t, bool entropy)
{
	if (t->flags & UI_TOK_CONTROL)
		return UI_S_DIM;
	if (t->flags & (UI_TOK_PROMPT | UI_TOK_FORCED))
		return UI_S_PROMPT;
	if (entropy) {
		float h = t->entropy;
		if (h < 0)
			return UI_S_PROMPT;
		return h < 0.5f ? UI_S_P0 : h < 1.0f ? UI_S_P1 : h < 2.0f ? UI_S_P2 : h < 3.0f ? UI_S_P3 : UI_S_P4;
	}
	float p = expf(t->logprob);
	return p >= 0.9f ? UI_S_P0 : p >= 0.6f ? UI_S_P1 : p >= 0.3f ? UI_S_P2 : p >= 0.1f ? UI_S_P3 : UI_S_P4;
}

// ---- the path as items

struct path_text {
	char *bytes;
	int32_t *bpos;      /* path position of each byte */
	size_t n;
	const struct ui_snap_tok **tok; /* (path_len) token at each position */
	int32_t len;        /* tokens on the path */
	bool finished;      /* the cursor node does not grow any more */
};

static void path_text_build(const struct ui_snap *s, int32_t node, struct path_text *pt)
{
	memset(pt, 0, sizeof(*pt));
	const struct ui_snap_node *nd = ui_snap_node(s, node);
	if (!nd)
		return;
	pt->len = nd->pos0 + nd->n_tokens;
	pt->finished = nd->status != TREE_LIVE || nd->n_kids_live > 0;
	pt->tok = xcalloc((size_t)(pt->len ? pt->len : 1), sizeof(*pt->tok));
	int32_t np = ui_snap_path(s, node, NULL, 0);
	int32_t *path = xmallocarray((size_t)(np ? np : 1), sizeof(*path));
	ui_snap_path(s, node, path, np);
	size_t total = 0;
	for (int32_t i = 0; i < np; i++) {
		const struct ui_snap_node *x = ui_snap_node(s, path[i]);
		for (int32_t k = 0; k < x->n_tokens; k++)
			total += s->toks[x->tok + k].text_len;
	}
	pt->bytes = xmalloc(total + 1);
	pt->bpos = xmallocarray(total + 1, sizeof(*pt->bpos));
	for (int32_t i = 0; i < np; i++) {
		const struct ui_snap_node *x = ui_snap_node(s, path[i]);
		for (int32_t k = 0; k < x->n_tokens; k++) {
			const struct ui_snap_tok *t = &s->toks[x->tok + k];
			int32_t pos = x->pos0 + k;
			if (pos >= 0 && pos < pt->len)
				pt->tok[pos] = t;
			memcpy(pt->bytes + pt->n, s->text + t->text, t->text_len);
			for (size_t b = 0; b < t->text_len; b++)
				pt->bpos[pt->n + b] = pos;
			pt->n += t->text_len;
		}
	}
	pt->bytes[pt->n] = 0;
	free(path);
}

static void path_text_free(struct path_text *pt)
{
	free(pt->bytes);
	free(pt->bpos);
	free(pt->tok);
}

static unsigned char fold_ascii(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* bytes inside a case-insensitive match of needle */
static uint8_t *match_bytes(const struct path_text *pt, const char *needle)
{
	if (!needle || !*needle)
		return NULL;
	size_t m = strlen(needle);
	uint8_t *hit = xcalloc(pt->n + 1, 1);
	for (size_t i = 0; i + m <= pt->n; i++) {
		size_t j = 0;
		while (j < m && fold_ascii((unsigned char)pt->bytes[i + j]) == fold_ascii((unsigned char)needle[j]))
			j++;
		if (j == m)
			memset(hit + i, 1, m);
	}
	return hit;
}

static int32_t build_items(const struct path_text *pt, const struct ui_view_state *vs, struct item **out)
{
	int32_t cap = (int32_t)pt->n * 2 + pt->len + 8, n = 0;
	struct item *it = xmallocarray((size_t)cap, sizeof(*it));
	uint8_t *hit = match_bytes(pt, vs->search);
	int32_t prev_pos = -1;
	for (size_t i = 0; i < pt->n;) {
		int len;
		bool complete;
		uint32_t cp = ui_utf8_next(pt->bytes + i, pt->n - i, &len, &complete);
		if (!complete && !pt->finished)
			break; /* the rest of this character comes with the next token */
		int32_t pos = pt->bpos[i], last = pt->bpos[i + (size_t)len - 1];
		const struct ui_snap_tok *t = pt->tok[pos];
		enum ui_style st = t ? ui_token_style(t, vs->entropy) : UI_S_NORMAL;
		bool matched = false;
		for (int k = 0; hit && k < len; k++)
			matched = matched || hit[i + (size_t)k];
		if (matched)
			st = UI_S_MATCH;
		if (vs->boundaries && prev_pos >= 0 && pos != prev_pos)
			it[n++] = (struct item){ ui_g->boundary, pos, pos, UI_S_BOUNDARY, 2, 1 };
		prev_pos = last;
		if (cp == '\n') {
			if (vs->boundaries)
				it[n++] = (struct item){ ui_g->newline, pos, last, (uint8_t)st, 0, 1 };
			it[n++] = (struct item){ '\n', pos, last, (uint8_t)st, 1, 0 };
		} else {
			if (cp == '\t')
				cp = ' ';
			else if (cp == '\r')
				cp = ui_g->newline;
			int w = ui_cp_width(cp);
			if (w > 0)
				it[n++] = (struct item){ cp, pos, last, (uint8_t)st, 0, (uint8_t)w };
		}
		i += (size_t)len;
	}
	/* tokens with no bytes of their own (empty pieces) still get a cell for the cursor */
	free(hit);
	*out = it;
	return n;
}

/* line starts of the wrapped items (word wrap at spaces); returns the line count */
static int32_t wrap_items(const struct item *it, int32_t n, int w, int32_t **starts)
{
	int32_t cap = 64, nl = 0;
	int32_t *ls = xmallocarray((size_t)cap, sizeof(*ls));
	int32_t i = 0;
	ls[nl++] = 0;
	int col = 0;
	int32_t line_start = 0, last_space = -1;
	while (i < n) {
		if (it[i].kind == 1) { /* newline */
			i++;
			if (nl == cap)
				ls = xrealloc(ls, (size_t)(cap *= 2) * sizeof(*ls));
			ls[nl++] = i;
			line_start = i;
			col = 0;
			last_space = -1;
			continue;
		}
		if (col + it[i].width > w && i > line_start) {
			/* a space at the edge hangs at the end of the line (not drawn) */
			int32_t brk = it[i].cp == ' ' && it[i].kind == 0 ? i + 1 : last_space > line_start ? last_space + 1 : i;
			if (nl == cap)
				ls = xrealloc(ls, (size_t)(cap *= 2) * sizeof(*ls));
			ls[nl++] = brk;
			line_start = brk;
			col = 0;
			last_space = -1;
			if (brk > i) {
				i = brk; /* the hanging space stays behind */
				continue;
			}
			for (int32_t k = brk; k < i; k++)
				col += it[k].width;
			continue;
		}
		if (it[i].cp == ' ' && it[i].kind == 0)
			last_space = i;
		col += it[i].width;
		i++;
	}
	*starts = ls;
	return nl;
}

// ---- alternatives

/* a piece for display: control characters as glyphs, broken UTF-8 as \xNN */
static void piece_display(const char *p, size_t n, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 8 < cap;) {
		int len;
		bool complete;
		uint32_t cp = ui_utf8_next(p + i, n - i, &len, &complete);
		if (cp == 0xfffd && !(len == 3 && (unsigned char)p[i] == 0xef)) {
			k += (size_t)snprintf(out + k, cap - k, "\\x%02X", (unsigned char)p[i]);
			i++;
			continue;
		}
		if (cp == '\n')
			cp = ui_g->newline;
		else if (cp == '\t')
			cp = ui_g->tab;
		else if (cp < 0x20)
			cp = 0xfffd;
		k += (size_t)ui_utf8_put(cp, out + k);
		i += (size_t)len;
	}
	out[k] = 0;
}

int ui_text_alt_rows(const struct ui_snap *s, int h)
{
	if (!s || s->n_alt == 0 || h < 8)
		return 0;
	int vertical = 2 + s->n_alt; /* rule + header + one row per alternative */
	if (h >= vertical + 8)
		return vertical;
	return 3; /* rule + header + one row of alternatives side by side */
}

static void draw_alts(struct ui_view *v, int y0, int rows, const struct ui_snap *s, const struct ui_view_state *vs,
		      const struct path_text *pt)
{
	ui_fill(v, 0, y0, v->w, 1, ui_g->hline, UI_S_SEP);
	int32_t pos = vs->tok_pos;
	const struct ui_snap_tok *t = pos >= 0 && pos < pt->len ? pt->tok[pos] : NULL;
	if (!t)
		return;
	int32_t node, index;
	ui_snap_locate(s, vs->cursor, pos, &node, &index);
	char piece[256], line[512];
	size_t plen;
	const char *p = ui_snap_piece(s, t, &plen);
	piece_display(p, plen, piece, sizeof(piece));
	int x = 0;
	if (vs->alt_pick)
		x += ui_puts(v, 0, y0 + 1, UI_S_KEY, "fork with which? 1-9, Esc: ", -1);
	snprintf(line, sizeof(line), "token %d '%s'", pos, piece);
	x += ui_puts(v, x, y0 + 1, UI_S_BOLD, line, v->w - x);
	if (t->flags & UI_TOK_PROMPT)
		snprintf(line, sizeof(line), "  prompt");
	else if (t->flags & UI_TOK_FORCED)
		snprintf(line, sizeof(line), "  forced");
	else if (t->entropy >= 0)
		snprintf(line, sizeof(line), "  p %.2f  H>=%.2f bit  step %d", exp((double)t->logprob), (double)t->entropy,
			 t->step);
	else
		snprintf(line, sizeof(line), "  p %.2f  step %d", exp((double)t->logprob), t->step);
	x += ui_puts(v, x, y0 + 1, UI_S_DIM, line, v->w - x);
	snprintf(line, sizeof(line), "  #%d[%d]", node, index);
	ui_puts(v, x, y0 + 1, UI_S_DIM, line, v->w - x);

	const struct ui_snap_alt *alts = &s->alts[(t - s->toks) * s->n_alt];
	int vertical = rows > 3;
	int y = y0 + 2;
	x = 0;
	for (int32_t a = 0; a < s->n_alt; a++) {
		if (alts[a].id < 0)
			break;
		const char *ap = s->text + alts[a].text;
		piece_display(ap, alts[a].text_len, piece, sizeof(piece));
		double prob = exp((double)alts[a].logprob);
		bool chosen = alts[a].id == t->id;
		char num[16];
		snprintf(num, sizeof(num), "%d", a + 1);
		if (vertical) {
			if (y >= y0 + rows)
				break;
			ui_puts(v, 0, y, vs->alt_pick ? UI_S_KEY : UI_S_DIM, num, 2);
			snprintf(line, sizeof(line), "'%s'", piece);
			ui_puts_fit(v, 2, y, chosen ? UI_S_BOLD : UI_S_NORMAL, line, 18, false);
			snprintf(line, sizeof(line), "%5.1f%%", prob * 100);
			ui_puts(v, 21, y, UI_S_NORMAL, line, -1);
			int bw = v->w - 30;
			if (bw > 20)
				bw = 20;
			int fill = (int)lround(prob * bw);
			for (int k = 0; k < fill; k++)
				ui_putc(v, 29 + k, y, ui_g->bar_full, ui_token_style(&(struct ui_snap_tok){ .logprob = alts[a].logprob }, false));
			if (chosen && 29 + bw + 2 < v->w)
				ui_puts(v, 29 + bw + 1, y, UI_S_DIM, "< taken", -1);
			y++;
		} else {
			snprintf(line, sizeof(line), "'%s' %.0f%%", piece, prob * 100);
			int need = 2 + ui_text_width(line, strlen(line)) + 2;
			if (x + need > v->w)
				break;
			ui_puts(v, x, y, vs->alt_pick ? UI_S_KEY : UI_S_DIM, num, -1);
			ui_puts(v, x + 2, y, chosen ? UI_S_BOLD : UI_S_NORMAL, line, -1);
			x += need;
		}
	}
}

// ---- drawing

void ui_text_draw(struct ui_view *v, const struct ui_snap *s, struct ui_view_state *vs, int32_t *cell_tok)
{
	for (int i = 0; cell_tok && i < v->w * v->h; i++)
		cell_tok[i] = -1;
	if (!s || !s->has_tree || !ui_snap_node(s, vs->cursor)) {
		ui_puts(v, 1, 0, UI_S_DIM, "The text of the selected branch shows here.", v->w - 2);
		return;
	}
	struct path_text pt;
	path_text_build(s, vs->cursor, &pt);
	if (vs->tok_pos >= pt.len)
		vs->tok_pos = pt.len - 1;
	if (vs->tok_pos < 0)
		vs->tok_pos = 0;
	int alt_rows = ui_text_alt_rows(s, v->h);
	int text_h = v->h - alt_rows;
	struct item *it;
	int32_t n = build_items(&pt, vs, &it);
	int32_t *ls;
	int32_t nl = wrap_items(it, n, v->w, &ls);
	/* the cursor's line: the last one holding a character of the token (its
	 * leading space may hang at the end of the line before) */
	int32_t cur_line = -1;
	for (int32_t l = nl - 1; l >= 0 && cur_line < 0; l--) {
		int32_t end = l + 1 < nl ? ls[l + 1] : n;
		for (int32_t i = ls[l]; i < end; i++)
			if (it[i].kind != 2 && vs->tok_pos >= it[i].pos && vs->tok_pos <= it[i].pos_last) {
				cur_line = l;
				break;
			}
	}
	if (cur_line < 0)
		cur_line = nl - 1;
	if (cur_line < vs->text_top)
		vs->text_top = cur_line;
	if (cur_line >= vs->text_top + text_h)
		vs->text_top = cur_line - text_h + 1;
	if (vs->text_top > nl - text_h)
		vs->text_top = nl - text_h; /* a taller pane shows more of the text above */
	if (vs->text_top < 0)
		vs->text_top = 0;
	bool cursor_drawn = false;
	for (int y = 0; y < text_h && vs->text_top + y < nl; y++) {
		int32_t l = vs->text_top + y;
		int32_t end = l + 1 < nl ? ls[l + 1] : n;
		int x = 0;
		for (int32_t i = ls[l]; i < end; i++) {
			if (it[i].kind == 1)
				continue;
			if (x + it[i].width > v->w)
				break;
			bool cur = it[i].kind != 2 && vs->tok_pos >= it[i].pos && vs->tok_pos <= it[i].pos_last;
			enum ui_style st = cur ? UI_S_CURSOR : (enum ui_style)it[i].style;
			cursor_drawn = cursor_drawn || cur;
			ui_putc(v, x, y, it[i].cp, st);
			if (cell_tok && it[i].kind != 2)
				for (int k = 0; k < it[i].width; k++)
					cell_tok[y * v->w + x + k] = it[i].pos;
			x += it[i].width;
		}
	}
	/* a token with no character of its own (an empty piece): a cursor cell after the text */
	if (!cursor_drawn && pt.len > 0 && n >= 0) {
		int32_t l = DT_MIN(nl - 1, vs->text_top + text_h - 1);
		int32_t end = l + 1 < nl ? ls[l + 1] : n, x = 0;
		for (int32_t i = ls[l]; i < end; i++)
			x += it[i].kind == 1 ? 0 : it[i].width;
		if (x < v->w && l - vs->text_top < text_h)
			ui_putc(v, x, l - vs->text_top, ' ', UI_S_CURSOR);
	}
	if (alt_rows > 0)
		draw_alts(v, text_h, alt_rows, s, vs, &pt);
	free(ls);
	free(it);
	path_text_free(&pt);
}
