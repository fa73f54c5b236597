/*
 * render.c — cell canvas, clipped views, UTF-8 text placement (design in render.h).
 */
#include "config.h"

#include "render.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "common.h"

// ---- styles

char ui_style_letter(enum ui_style s)
{
	/* tests compare these: keep them stable */
	static const char letters[UI_S_N + 1] = ".dbhsEOWtTlCpLFXqvwxyz|012345#~kM";
	return (int)s >= 0 && s < UI_S_N ? letters[s] : '?';
}

// ---- canvas

struct ui_canvas *ui_canvas_new(int w, int h)
{
	struct ui_canvas *c = xcalloc(1, sizeof(*c));
	ui_canvas_resize(c, w, h);
	return c;
}

void ui_canvas_free(struct ui_canvas *c)
{
	if (!c)
		return;
	free(c->cells);
	free(c);
}

void ui_canvas_resize(struct ui_canvas *c, int w, int h)
{
	c->w = w > 0 ? w : 0;
	c->h = h > 0 ? h : 0;
	free(c->cells);
	c->cells = xcalloc((size_t)(c->w ? c->w : 1) * (size_t)(c->h ? c->h : 1), sizeof(*c->cells));
	ui_canvas_clear(c);
}

void ui_canvas_clear(struct ui_canvas *c)
{
	for (int i = 0; i < c->w * c->h; i++)
		c->cells[i] = (struct ui_cell){ ' ', UI_S_NORMAL };
}

static void row_text(const struct ui_canvas *c, int y, char *out, size_t cap, size_t *len)
{
	size_t n = 0, last = 0;
	for (int x = 0; x < c->w; x++) {
		uint32_t ch = c->cells[y * c->w + x].ch;
		if (ch == 0)
			continue;
		char b[8];
		int l = ui_utf8_put(ch, b);
		if (n + (size_t)l + 1 > cap)
			break;
		memcpy(out + n, b, (size_t)l);
		n += (size_t)l;
		if (ch != ' ')
			last = n;
	}
	out[last] = 0;
	*len = last;
}

void ui_canvas_row(const struct ui_canvas *c, int y, char *buf, size_t cap)
{
	size_t len;
	if (y < 0 || y >= c->h || cap == 0) {
		if (cap)
			buf[0] = 0;
		return;
	}
	row_text(c, y, buf, cap, &len);
}

char *ui_canvas_text(const struct ui_canvas *c)
{
	size_t cap = (size_t)c->w * 4 + 8, total = 0;
	char *out = xmalloc((size_t)c->h * cap + 1), *row = xmalloc(cap);
	for (int y = 0; y < c->h; y++) {
		size_t len;
		row_text(c, y, row, cap, &len);
		memcpy(out + total, row, len);
		total += len;
		if (y + 1 < c->h)
			out[total++] = '\n';
	}
	out[total] = 0;
	free(row);
	return out;
}

char *ui_canvas_styles(const struct ui_canvas *c)
{
	char *out = xmalloc((size_t)c->h * (size_t)(c->w + 1) + 1);
	size_t n = 0;
	for (int y = 0; y < c->h; y++) {
		for (int x = 0; x < c->w; x++)
			out[n++] = ui_style_letter(c->cells[y * c->w + x].style);
		if (y + 1 < c->h)
			out[n++] = '\n';
	}
	out[n] = 0;
	return out;
}

// ---- views

struct ui_view ui_view_of(struct ui_canvas *c, struct ui_rect r)
{
	struct ui_view v = { c, r.x, r.y, r.w, r.h };
	if (v.x < 0) {
		v.w += v.x;
		v.x = 0;
	}
	if (v.y < 0) {
		v.h += v.y;
		v.y = 0;
	}
	if (v.x + v.w > c->w)
		v.w = c->w - v.x;
	if (v.y + v.h > c->h)
		v.h = c->h - v.y;
	if (v.w < 0)
		v.w = 0;
	if (v.h < 0)
		v.h = 0;
	return v;
}

struct ui_view ui_subview(const struct ui_view *v, int x, int y, int w, int h)
{
	struct ui_view s = { v->c, v->x + x, v->y + y, w, h };
	if (x < 0) {
		s.w += x;
		s.x = v->x;
	}
	if (y < 0) {
		s.h += y;
		s.y = v->y;
	}
	if (s.x + s.w > v->x + v->w)
		s.w = v->x + v->w - s.x;
	if (s.y + s.h > v->y + v->h)
		s.h = v->y + v->h - s.y;
	if (s.w < 0)
		s.w = 0;
	if (s.h < 0)
		s.h = 0;
	return s;
}

static struct ui_cell *cell_at(struct ui_view *v, int x, int y)
{
	if (x < 0 || y < 0 || x >= v->w || y >= v->h)
		return NULL;
	return &v->c->cells[(v->y + y) * v->c->w + v->x + x];
}

// ---- UTF-8

uint32_t ui_utf8_next(const char *s, size_t n, int *len, bool *complete)
{
	const unsigned char *u = (const unsigned char *)s;
	if (complete)
		*complete = true;
	if (n == 0) {
		*len = 0;
		return 0;
	}
	unsigned c = u[0];
	int need;
	uint32_t cp, min;
	if (c < 0x80) {
		*len = 1;
		return c;
	} else if ((c & 0xe0) == 0xc0) {
		need = 1, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 2, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		need = 3, cp = c & 0x07, min = 0x10000;
	} else {
		*len = 1;
		return 0xfffd;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n) {
			/* a valid prefix that stops early */
			if (complete)
				*complete = false;
			*len = 1;
			return 0xfffd;
		}
		if ((u[i] & 0xc0) != 0x80) {
			*len = 1;
			return 0xfffd;
		}
		cp = (cp << 6) | (u[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
		*len = 1;
		return 0xfffd;
	}
	*len = need + 1;
	return cp;
}

int ui_utf8_put(uint32_t cp, char *out)
{
	int n;
	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	out[n] = 0;
	return n;
}

int ui_cp_width(uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f)
		return 1; /* drawn as U+FFFD */
	if (cp < 0x7f)
		return 1;
	int w = wcwidth((wchar_t)cp);
	if (w < 0)
		return 1;
	return w;
}

int ui_text_width(const char *s, size_t n)
{
	int w = 0;
	for (size_t i = 0; i < n;) {
		int len;
		uint32_t cp = ui_utf8_next(s + i, n - i, &len, NULL);
		w += ui_cp_width(cp);
		i += (size_t)len;
	}
	return w;
}

// ---- drawing

void ui_fill(struct ui_view *v, int x, int y, int w, int h, uint32_t ch, enum ui_style st)
{
	for (int j = y; j < y + h; j++)
		for (int i = x; i < x + w; i++) {
			struct ui_cell *c = cell_at(v, i, j);
			if (c)
				*c = (struct ui_cell){ ch, (uint8_t)st };
		}
}

void ui_restyle(struct ui_view *v, int x, int y, int w, int st)
{
	for (int i = x; i < x + w; i++) {
		struct ui_cell *c = cell_at(v, i, y);
		if (c)
			c->style = (uint8_t)st;
	}
}

/* Places a code point of width cw (1 or 2) at (x, y). */
static void place(struct ui_view *v, int x, int y, uint32_t cp, int cw, enum ui_style st)
{
	struct ui_cell *c = cell_at(v, x, y);
	if (!c)
		return;
	if (cw == 2) {
		struct ui_cell *c2 = cell_at(v, x + 1, y);
		if (!c2) { /* a wide character that does not fit: a space */
			*c = (struct ui_cell){ ' ', (uint8_t)st };
			return;
		}
		*c = (struct ui_cell){ cp, (uint8_t)st };
		*c2 = (struct ui_cell){ 0, (uint8_t)st };
		return;
	}
	*c = (struct ui_cell){ cp, (uint8_t)st };
}

void ui_putc(struct ui_view *v, int x, int y, uint32_t ch, enum ui_style st)
{
	int w = ui_cp_width(ch);
	if (ch < 0x20 || ch == 0x7f)
		ch = 0xfffd;
	place(v, x, y, ch, w, st);
}

int ui_putn(struct ui_view *v, int x, int y, enum ui_style st, const char *s, size_t n, int maxw)
{
	if (maxw < 0)
		maxw = v->w - x;
	int used = 0;
	for (size_t i = 0; i < n && s[i];) {
		int len;
		uint32_t cp = ui_utf8_next(s + i, n - i, &len, NULL);
		i += (size_t)len;
		int w = ui_cp_width(cp);
		if (w == 0)
			continue; /* combining marks are dropped: one cell, one code point */
		if (used + w > maxw)
			break;
		if (cp < 0x20 || cp == 0x7f)
			cp = 0xfffd;
		place(v, x + used, y, cp, w, st);
		used += w;
	}
	return used;
}

int ui_puts(struct ui_view *v, int x, int y, enum ui_style st, const char *s, int maxw)
{
	return ui_putn(v, x, y, st, s, strlen(s), maxw);
}

int ui_printf(struct ui_view *v, int x, int y, enum ui_style st, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return ui_puts(v, x, y, st, buf, -1);
}

int ui_puts_fit(struct ui_view *v, int x, int y, enum ui_style st, const char *s, int w, bool right)
{
	if (w <= 0)
		return 0;
	size_t n = strlen(s);
	int tw = ui_text_width(s, n);
	if (tw <= w) {
		int off = right ? w - tw : 0;
		return off + ui_putn(v, x + off, y, st, s, n, w);
	}
	int used = ui_putn(v, x, y, st, s, n, w - 1);
	ui_putc(v, x + used, y, ui_g->ellipsis, st);
	return used + 1;
}

// ---- glyphs

static const struct ui_glyphs glyphs_utf8 = {
	.utf8 = true,
	.vline = 0x2502, .hline = 0x2500, .tee = 0x251c, .elbow = 0x2514,
	.live = 0x25cf, .finished = 0x25a0, .pruned = 0x2717, .inner = 0x25cb,
	.fold_open = 0x25be, .fold_closed = 0x25b8,
	.ellipsis = 0x2026, .newline = 0x21b5, .tab = 0x2192, .boundary = 0x2502,
	.page_free = 0x00b7,
	.bar_full = 0x2588,
	.spark = { 0x2581, 0x2582, 0x2583, 0x2584, 0x2585, 0x2586, 0x2587, 0x2588 },
	.arrow_up = 0x2191, .arrow_down = 0x2193,
	.bullet = 0x00b7,
};

static const struct ui_glyphs glyphs_ascii = {
	.utf8 = false,
	.vline = '|', .hline = '-', .tee = '|', .elbow = '`',
	.live = '*', .finished = '#', .pruned = 'x', .inner = 'o',
	.fold_open = '-', .fold_closed = '+',
	.ellipsis = '~', .newline = '$', .tab = '>', .boundary = '|',
	.page_free = '.',
	.bar_full = '#',
	.spark = { '_', '.', '-', '-', '=', '=', '#', '#' },
	.arrow_up = '^', .arrow_down = 'v',
	.bullet = '-',
};

const struct ui_glyphs *ui_g = &glyphs_utf8;

void ui_glyphs_set(bool utf8)
{
	ui_g = utf8 ? &glyphs_utf8 : &glyphs_ascii;
}
