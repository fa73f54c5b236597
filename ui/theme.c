/*
 * theme.c — the colour table (design in theme.h).  Pair n+1 is style n.
 */
#include "config.h"

#include "theme.h"

#include <curses.h>

struct style_def {
	short fg256, bg256; /* -1 = terminal default */
	short fg8, bg8;
	attr_t attr;        /* with colours */
	attr_t mono;        /* without */
};

static const struct style_def defs[UI_S_N] = {
	[UI_S_NORMAL] = { -1, -1, -1, -1, A_NORMAL, A_NORMAL },
	[UI_S_DIM] = { 244, -1, -1, -1, A_NORMAL, A_DIM },
	[UI_S_BOLD] = { -1, -1, -1, -1, A_BOLD, A_BOLD },
	[UI_S_HEADER] = { 231, 24, COLOR_WHITE, COLOR_BLUE, A_BOLD, A_REVERSE | A_BOLD },
	[UI_S_STATUS] = { 252, 236, COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE },
	[UI_S_ERROR] = { 210, 236, COLOR_RED, COLOR_WHITE, A_BOLD, A_REVERSE | A_BOLD },
	[UI_S_OK] = { 114, -1, COLOR_GREEN, -1, A_NORMAL, A_BOLD },
	[UI_S_WARN] = { 215, -1, COLOR_YELLOW, -1, A_NORMAL, A_BOLD },
	[UI_S_TITLE] = { 250, 238, COLOR_BLACK, COLOR_WHITE, A_NORMAL, A_REVERSE },
	[UI_S_TITLE_FOCUS] = { 231, 31, COLOR_WHITE, COLOR_CYAN, A_BOLD, A_REVERSE | A_BOLD },
	[UI_S_SEP] = { 238, -1, -1, -1, A_NORMAL, A_DIM },
	[UI_S_CURSOR] = { 231, 25, COLOR_WHITE, COLOR_BLUE, A_BOLD, A_REVERSE },
	[UI_S_PATH] = { 229, -1, COLOR_YELLOW, -1, A_BOLD, A_BOLD },
	[UI_S_LIVE] = { 46, -1, COLOR_GREEN, -1, A_BOLD, A_BOLD },
	[UI_S_FINISHED] = { 245, -1, -1, -1, A_NORMAL, A_DIM },
	[UI_S_PRUNED] = { 240, -1, COLOR_RED, -1, A_NORMAL, A_DIM },
	[UI_S_PROMPT] = { 110, -1, COLOR_CYAN, -1, A_NORMAL, A_DIM },
	[UI_S_P0] = { 114, -1, COLOR_GREEN, -1, A_NORMAL, A_NORMAL },
	[UI_S_P1] = { 150, -1, COLOR_GREEN, -1, A_NORMAL, A_NORMAL },
	[UI_S_P2] = { 221, -1, COLOR_YELLOW, -1, A_NORMAL, A_NORMAL },
	[UI_S_P3] = { 209, -1, COLOR_YELLOW, -1, A_BOLD, A_UNDERLINE },
	[UI_S_P4] = { 197, -1, COLOR_RED, -1, A_BOLD, A_UNDERLINE | A_BOLD },
	[UI_S_BOUNDARY] = { 240, -1, -1, -1, A_NORMAL, A_DIM },
	[UI_S_OWN0] = { 16, 67, COLOR_BLACK, COLOR_BLUE, A_NORMAL, A_NORMAL },
	[UI_S_OWN1] = { 16, 107, COLOR_BLACK, COLOR_GREEN, A_NORMAL, A_NORMAL },
	[UI_S_OWN2] = { 16, 137, COLOR_BLACK, COLOR_YELLOW, A_NORMAL, A_NORMAL },
	[UI_S_OWN3] = { 16, 97, COLOR_BLACK, COLOR_MAGENTA, A_NORMAL, A_NORMAL },
	[UI_S_OWN4] = { 16, 73, COLOR_BLACK, COLOR_CYAN, A_NORMAL, A_NORMAL },
	[UI_S_OWN5] = { 16, 143, COLOR_BLACK, COLOR_RED, A_NORMAL, A_NORMAL },
	[UI_S_PAGE_SEL] = { 16, 231, COLOR_BLACK, COLOR_WHITE, A_BOLD, A_REVERSE },
	[UI_S_SPARK] = { 81, -1, COLOR_CYAN, -1, A_NORMAL, A_NORMAL },
	[UI_S_KEY] = { 223, -1, COLOR_YELLOW, -1, A_BOLD, A_BOLD },
	[UI_S_MATCH] = { 16, 220, COLOR_BLACK, COLOR_YELLOW, A_NORMAL, A_REVERSE | A_UNDERLINE },
};

static enum ui_palette palette = UI_PAL_NONE;

enum ui_palette ui_theme_init(bool no_color)
{
	palette = UI_PAL_NONE;
	if (no_color || !has_colors())
		return palette;
	if (start_color() == ERR)
		return palette;
	use_default_colors();
	palette = COLORS >= 256 ? UI_PAL_256 : COLORS >= 8 ? UI_PAL_8 : UI_PAL_NONE;
	if (palette == UI_PAL_NONE)
		return palette;
	for (int s = 0; s < UI_S_N; s++) {
		const struct style_def *d = &defs[s];
		short fg = palette == UI_PAL_256 ? d->fg256 : d->fg8;
		short bg = palette == UI_PAL_256 ? d->bg256 : d->bg8;
		init_pair((short)(s + 1), fg, bg);
	}
	return palette;
}

short ui_theme_pair(enum ui_style s)
{
	return palette == UI_PAL_NONE || (int)s < 0 || s >= UI_S_N ? 0 : (short)(s + 1);
}

unsigned long ui_theme_attr(enum ui_style s)
{
	if ((int)s < 0 || s >= UI_S_N)
		return A_NORMAL;
	if (palette == UI_PAL_NONE)
		return defs[s].mono;
	/* 8 colours: styles without a colour of their own keep their monochrome attributes */
	if (palette == UI_PAL_8 && defs[s].fg8 < 0 && defs[s].bg8 < 0)
		return defs[s].mono | defs[s].attr;
	return defs[s].attr;
}
