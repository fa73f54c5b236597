/*
 * panes.h — the four panes: each draws a snapshot into a view.
 *
 * Panes hold no state of their own: the tree pane's folds and cursor, the
 * text pane's token cursor and display modes live in `struct ui_view_state`,
 * owned by the app (ui/app.c) and by the unit tests.  Drawing also fills hit
 * maps (which node is on which row, which token in which cell) that mouse
 * clicks are resolved against.
 */
#ifndef DT_UI_PANES_H
#define DT_UI_PANES_H

#include <stdbool.h>
#include <stdint.h>

#include "render.h"
#include "snapshot.h"

/* what the panes need to know besides the snapshot */
struct ui_view_state {
	/* tree pane */
	uint8_t *fold;       /* (n_fold) by node id: 1 = children hidden */
	int32_t n_fold;
	int32_t cursor;      /* selected node id, -1 = none */
	int32_t tree_top;    /* first outline row shown */
	bool show_pruned;    /* pruned subtrees in the outline */
	/* text pane */
	int32_t tok_pos;     /* token cursor: position on the path root .. cursor */
	bool entropy;        /* colour by entropy instead of probability */
	bool boundaries;     /* show token boundaries */
	int32_t text_top;    /* first wrapped line shown */
	const char *search;  /* highlight this text (case-insensitive), NULL = none */
	bool alt_pick;       /* the alternatives list is waiting for a digit */
	/* kv pane */
	int32_t kv_top;      /* first grid row shown */
};

// ---- tree pane (ui/pane_tree.c)

struct ui_tree_row {
	int32_t node;
	int32_t depth;
	uint64_t more;       /* bit d: the ancestor at depth d+1 has later siblings (guides) */
	bool last;           /* the node is its parent's last shown child */
	int32_t hidden;      /* nodes hidden below a fold */
};

/* The outline's visible rows in depth-first order (folded subtrees skipped).
 * Writes at most cap rows, returns how many there are. */
int32_t ui_tree_rows(const struct ui_snap *s, const struct ui_view_state *vs, struct ui_tree_row *rows,
		     int32_t cap);
/* Row index of node in rows, or -1. */
int32_t ui_tree_row_of(const struct ui_tree_row *rows, int32_t n, int32_t node);
/* Whether node is folded (and has children to hide). */
bool ui_tree_folded(const struct ui_snap *s, const struct ui_view_state *vs, int32_t node);
/* Folds every node at depth >= level (level < 0: unfolds all). */
void ui_tree_fold_level(const struct ui_snap *s, struct ui_view_state *vs, int32_t level);
/* Unfolds the ancestors of node so that it is visible. */
void ui_tree_reveal(const struct ui_snap *s, struct ui_view_state *vs, int32_t node);
void ui_view_state_fold_reserve(struct ui_view_state *vs, int32_t n_ids);

/* Draws the outline; row_node (v->h entries, may be NULL) receives the node
 * of each screen row (-1 for none).  Adjusts vs->tree_top to keep the cursor
 * visible. */
void ui_tree_draw(struct ui_view *v, const struct ui_snap *s, struct ui_view_state *vs, int32_t *row_node);

// ---- text pane (ui/pane_text.c)

/* Draws the path text; cell_tok (v->w * v->h entries, may be NULL) receives
 * the path position of the token in each cell (-1 for none). */
void ui_text_draw(struct ui_view *v, const struct ui_snap *s, struct ui_view_state *vs, int32_t *cell_tok);
/* Rows the alternatives block takes at the bottom of a text pane of height h. */
int ui_text_alt_rows(const struct ui_snap *s, int h);

// ---- kv pane (ui/pane_kv.c)

void ui_kv_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_view_state *vs);

// ---- stats pane (ui/pane_stats.c)

/* what the worker is doing, for the stats and status lines */
struct ui_run_state {
	bool busy, paused;
	char job[96];        /* "generating", "loading model", ... */
	int64_t done, total; /* steps of the job */
	int64_t since_ns;    /* when the job began */
};

void ui_stats_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_run_state *rs);

// ---- shared helpers (ui/pane_stats.c)

/* Sparkline of vals (n) into width cells from column x. */
void ui_sparkline(struct ui_view *v, int x, int y, int width, const double *vals, int n, enum ui_style st);
/* "1.23 ms", "12.3 KiB" */
const char *ui_fmt_ns(double ns, char *buf, size_t cap);
const char *ui_fmt_bytes(uint64_t b, char *buf, size_t cap);
/* The probability style of a token (prompt / forced tokens: UI_S_PROMPT). */
enum ui_style ui_token_style(const struct ui_snap_tok *t, bool entropy);

#endif
