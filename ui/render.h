/*
 * render.h — the cell buffer every pane draws into, before anything reaches curses.
 *
 * A canvas is a grid of cells (one Unicode code point + a style each); a view
 * is a clipped rectangle of a canvas with its own origin.  Panes write text
 * into views (UTF-8 in, display widths from wcwidth, wide characters take two
 * cells), the app copies the whole canvas to curses once per frame
 * (ui/app.c), and the unit tests dump it as plain text (ui_canvas_text) or as
 * one style letter per cell (ui_canvas_styles) and compare exact strings.
 * Nothing here includes curses.
 *
 * Styles are semantic (what a cell is, not its colour); ui/theme.c maps them
 * to curses attributes for 256 colours, 8 colours and NO_COLOR.
 * Glyphs (tree guides, marks, sparkline blocks) have a UTF-8 and an ASCII set,
 * chosen once by ui_glyphs_set() from the locale's codeset.
 */
#ifndef DT_UI_RENDER_H
#define DT_UI_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ui_style {
	UI_S_NORMAL = 0,
	UI_S_DIM,        /* secondary text, free pages, labels */
	UI_S_BOLD,       /* emphasis, values */
	UI_S_HEADER,     /* the top bar */
	UI_S_STATUS,     /* the status line */
	UI_S_ERROR,      /* error messages */
	UI_S_OK,         /* success messages, savings */
	UI_S_WARN,       /* warnings, costs */
	UI_S_TITLE,      /* a pane's title bar */
	UI_S_TITLE_FOCUS, /* the focused pane's title bar */
	UI_S_SEP,        /* separators between panes */
	UI_S_CURSOR,     /* the selected row / token */
	UI_S_PATH,       /* nodes on the root-to-cursor path */
	UI_S_LIVE,       /* live leaves */
	UI_S_FINISHED,   /* finished leaves */
	UI_S_PRUNED,     /* pruned nodes */
	UI_S_PROMPT,     /* prompt tokens */
	UI_S_P0,         /* token probability >= 0.9 (or entropy < 0.5 bit) */
	UI_S_P1,         /* >= 0.6 */
	UI_S_P2,         /* >= 0.3 */
	UI_S_P3,         /* >= 0.1 */
	UI_S_P4,         /* < 0.1 */
	UI_S_BOUNDARY,   /* token boundary marks */
	UI_S_OWN0,       /* KV page owner colours: node id % 6 */
	UI_S_OWN1,
	UI_S_OWN2,
	UI_S_OWN3,
	UI_S_OWN4,
	UI_S_OWN5,
	UI_S_PAGE_SEL,   /* pages of the selected node */
	UI_S_SPARK,      /* sparklines */
	UI_S_KEY,        /* key names in help and hints */
	UI_S_MATCH,      /* search matches */
	UI_S_N
};

/* One letter per style for ui_canvas_styles() (tests). */
char ui_style_letter(enum ui_style s);

struct ui_cell {
	uint32_t ch;   /* code point; 0 = right half of a wide character */
	uint8_t style; /* enum ui_style */
};

struct ui_canvas {
	int w, h;
	struct ui_cell *cells; /* (h, w) */
};

struct ui_rect {
	int x, y, w, h;
};

/* A clipped window onto a canvas: coordinates are relative to (x, y). */
struct ui_view {
	struct ui_canvas *c;
	int x, y, w, h;
};

struct ui_canvas *ui_canvas_new(int w, int h);
void ui_canvas_free(struct ui_canvas *c);
void ui_canvas_resize(struct ui_canvas *c, int w, int h); /* contents cleared */
void ui_canvas_clear(struct ui_canvas *c);
struct ui_view ui_view_of(struct ui_canvas *c, struct ui_rect r); /* clipped to the canvas */
struct ui_view ui_subview(const struct ui_view *v, int x, int y, int w, int h);

/* Plain text of the canvas: rows joined by '\n', trailing spaces cut
 * (malloc'd).  One style letter per cell per row the same way (malloc'd). */
char *ui_canvas_text(const struct ui_canvas *c);
char *ui_canvas_styles(const struct ui_canvas *c);
/* One row of the canvas as text (trailing spaces cut) into buf. */
void ui_canvas_row(const struct ui_canvas *c, int y, char *buf, size_t cap);

// ---- drawing

void ui_fill(struct ui_view *v, int x, int y, int w, int h, uint32_t ch, enum ui_style st);
/* Sets the style of cells, keeping their characters. */
void ui_restyle(struct ui_view *v, int x, int y, int w, int st);
void ui_putc(struct ui_view *v, int x, int y, uint32_t ch, enum ui_style st);
/* Writes UTF-8 text from column x on row y, at most maxw columns (-1: to the
 * view's edge); control characters are shown as U+FFFD, invalid bytes too.
 * Returns the columns used. */
int ui_puts(struct ui_view *v, int x, int y, enum ui_style st, const char *s, int maxw);
/* The same for the first n bytes of s. */
int ui_putn(struct ui_view *v, int x, int y, enum ui_style st, const char *s, size_t n, int maxw);
/* printf into the view; returns the columns used. */
int ui_printf(struct ui_view *v, int x, int y, enum ui_style st, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Text cut to w columns with a trailing ellipsis when it does not fit,
 * right-aligned when right is true. */
int ui_puts_fit(struct ui_view *v, int x, int y, enum ui_style st, const char *s, int w, bool right);

// ---- UTF-8 and widths

/* Decodes one character of s[0 .. n): its code point and byte length.
 * Invalid or truncated sequences give U+FFFD with length 1; *complete is
 * false when the bytes are a valid but unfinished prefix (more may follow). */
uint32_t ui_utf8_next(const char *s, size_t n, int *len, bool *complete);
/* Columns of a code point on the terminal (0 for combining marks, 2 for
 * wide ones, 1 for control characters, which are drawn as U+FFFD). */
int ui_cp_width(uint32_t cp);
/* Display width of UTF-8 text. */
int ui_text_width(const char *s, size_t n);
/* Encodes cp as UTF-8 into out (>= 5 bytes), NUL-terminated; returns the length. */
int ui_utf8_put(uint32_t cp, char *out);

// ---- glyphs

struct ui_glyphs {
	bool utf8;
	uint32_t vline, hline, tee, elbow; /* tree guides: │ ─ ├ └ */
	uint32_t live, finished, pruned, inner; /* node marks */
	uint32_t fold_open, fold_closed;
	uint32_t ellipsis, newline, tab, boundary;
	uint32_t page_free;
	uint32_t bar_full;       /* bar charts */
	uint32_t spark[8];       /* sparkline levels, lowest first */
	uint32_t arrow_up, arrow_down;
	uint32_t bullet;
};
extern const struct ui_glyphs *ui_g;
void ui_glyphs_set(bool utf8);

#endif
