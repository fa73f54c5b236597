/*
 * theme.h — semantic styles (render.h) to curses attributes; themes.
 *
 * Three palettes: 256 colours, 8 colours, and none (NO_COLOR set, or a
 * terminal without colours), where only bold / dim / reverse / underline
 * carry meaning (the cursor is reverse, low-probability tokens underlined,
 * the path bold).
 *
 * A theme gives each style its colours for 256 and for 8 colours and its
 * attributes; the no-colour attributes are fixed, so NO_COLOR and --no-color
 * win over any theme.  Built in: "default", "light" (for light terminal
 * backgrounds) and "mono" (attributes only).  A theme file has one line per
 * style it changes, in the key = value format of ui_config.h:
 *
 *     # style = fg256 bg256 fg8 bg8 [attrs]
 *     title-focus = 231 31 white cyan bold
 *
 * Colours are -1 (or "default": the terminal's), 0 .. 255 (0 .. 7 for the
 * 8-colour pair) or black red green yellow blue magenta cyan white; attrs is
 * a comma-separated list of normal bold dim underline reverse italic.  Styles
 * not listed keep the default theme's.  ui_theme_find() says where a name
 * leads: $XDG_CONFIG_HOME/deftree/themes/NAME.theme, then the installed
 * themes (DT_PKGDATADIR/themes), then the source tree's assets/themes, then
 * the built-in copy; a name with a '/' or ending in .theme is a path.
 */
#ifndef DT_UI_THEME_H
#define DT_UI_THEME_H

#include <stdbool.h>
#include <stddef.h>

#include "render.h"

struct ui_config_msgs;

enum ui_palette { UI_PAL_NONE = 0, UI_PAL_8 = 8, UI_PAL_256 = 256 };

enum {
	UI_ATTR_BOLD = 1u << 0,
	UI_ATTR_DIM = 1u << 1,
	UI_ATTR_UNDERLINE = 1u << 2,
	UI_ATTR_REVERSE = 1u << 3,
	UI_ATTR_ITALIC = 1u << 4,
};

struct ui_theme_style {
	short fg256, bg256; /* 0 .. 255, -1 = terminal default */
	short fg8, bg8;     /* 0 .. 7 (black red green yellow blue magenta cyan white), -1 */
	unsigned attrs;     /* UI_ATTR_* used with colours */
};

struct ui_theme {
	struct ui_theme_style s[UI_S_N];
};

/* "title-focus", "p0", "own3": the style's name in theme files (NULL out of range). */
const char *ui_theme_style_name(enum ui_style s);
/* A built-in theme into t: false when name is none of default, light, mono. */
bool ui_theme_builtin(const char *name, struct ui_theme *t);
/* Applies one theme line "style = fg256 bg256 fg8 bg8 [attrs]" to t:
 * 0, or -1 with "STYLE: what is wrong (expected ...)" in err. */
int ui_theme_set(struct ui_theme *t, const char *style, const char *value, char *err);
/* Where a theme name or path leads: the file into path (cap bytes), or ""
 * for a built-in theme.  -1 with err when there is no such theme. */
int ui_theme_find(const char *name, char *path, size_t cap, char *err);
/* Loads a theme (name or path) into t: the default theme with the file's
 * lines applied; line problems go to m.  -1 with err when the theme cannot be
 * found or its file cannot be read (t is then the default theme). */
int ui_theme_load(const char *name, struct ui_theme *t, struct ui_config_msgs *m, char *err);
/* The theme ui_theme_init() installs (call before it; the default until then). */
void ui_theme_use(const struct ui_theme *t);

/* After initscr(): starts colours unless no_color; returns the palette used. */
enum ui_palette ui_theme_init(bool no_color);
/* curses attributes (attr_t with the colour pair) and the pair number of a style */
unsigned long ui_theme_attr(enum ui_style s);
short ui_theme_pair(enum ui_style s);

#endif
