/*
 * theme.h — semantic styles (render.h) to curses attributes.
 *
 * Three palettes: 256 colours, 8 colours, and none (NO_COLOR set, or a
 * terminal without colours), where only bold / dim / reverse / underline
 * carry meaning (the cursor is reverse, low-probability tokens underlined,
 * the path bold).
 */
#ifndef DT_UI_THEME_H
#define DT_UI_THEME_H

#include <stdbool.h>

#include "render.h"

enum ui_palette { UI_PAL_NONE = 0, UI_PAL_8 = 8, UI_PAL_256 = 256 };

/* After initscr(): starts colours unless no_color; returns the palette used. */
enum ui_palette ui_theme_init(bool no_color);
/* curses attributes (attr_t with the colour pair) and the pair number of a style */
unsigned long ui_theme_attr(enum ui_style s);
short ui_theme_pair(enum ui_style s);

#endif
