/*
 * layout.h — where the panes go for a terminal size.
 *
 *   row 0            header bar (model, backend, algorithm, state)
 *   rows 1 .. h-3    the four panes
 *   row h-2          status line
 *   row h-1          command line / key hints
 *
 * Wide terminals (>= UI_WIDE_COLS) get three columns: tree | text | KV over
 * stats.  Otherwise two rows: tree | text on top, KV | stats below.  Below
 * UI_MIN_COLS x UI_MIN_ROWS the layout is `too_small` and only a message is
 * drawn.  Pure arithmetic: tested by tests/test_ui_layout.c.
 */
#ifndef DT_UI_LAYOUT_H
#define DT_UI_LAYOUT_H

#include <stdbool.h>

#include "render.h"

#define UI_MIN_COLS 80
#define UI_MIN_ROWS 24
#define UI_WIDE_COLS 150

enum ui_pane { UI_PANE_TREE = 0, UI_PANE_TEXT = 1, UI_PANE_KV = 2, UI_PANE_STATS = 3, UI_N_PANES = 4 };

struct ui_layout {
	int w, h;
	bool too_small;
	bool wide;                      /* three columns */
	struct ui_rect header, status, cmdline;
	struct ui_rect pane[UI_N_PANES]; /* each pane including its one-row title bar */
	struct ui_rect body;            /* the area of all panes (help and overlays) */
};

void ui_layout_compute(int w, int h, struct ui_layout *l);
/* The pane under a screen cell, or -1. */
int ui_layout_pane_at(const struct ui_layout *l, int x, int y);
const char *ui_pane_name(enum ui_pane p);

#endif
