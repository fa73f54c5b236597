/*
 * cmdline.h — GNU readline inside curses, through its callback interface.
 *
 * Readline never touches the terminal here: its terminal preparation and
 * signal handling are turned off, its output goes to /dev/null, it reads
 * the bytes the app feeds it (keys from curses, UTF-8 encoded; curses'
 * special keys translated to readline's control keys) and its redisplay
 * hook only records that the line changed.  The app draws the line in the
 * last row from rl_line_buffer / rl_point (ui_cmdline_draw).  So curses
 * owns the screen and readline only edits a buffer, with its history,
 * keys and completion.
 *
 * History is shared by every kind of line and saved in a file between
 * sessions.  Tab completes command names, setting names, algorithm names
 * and file paths (for :open, :save, :load, :export, :replay).
 */
#ifndef DT_UI_CMDLINE_H
#define DT_UI_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "render.h"

enum ui_cl_kind {
	UI_CL_COMMAND = 0, /* ":" */
	UI_CL_SEARCH,      /* "/" */
	UI_CL_PROMPT,      /* a new prompt */
	UI_CL_REPLY,       /* a chat reply */
	UI_CL_FORCE,       /* forced text of a fork */
};

/* history_path may be NULL (no history file). */
void ui_cmdline_init(const char *history_path);
void ui_cmdline_shutdown(void);

void ui_cmdline_open(enum ui_cl_kind kind, const char *prompt);
/* Inserts text at the cursor of the open line. */
void ui_cmdline_insert(const char *text);
bool ui_cmdline_active(void);
enum ui_cl_kind ui_cmdline_kind(void);
/* Feeds one key.  Returns true when the line ended: *line is the accepted
 * text (malloc'd), or NULL when it was cancelled (Esc, C-c, C-d on an empty
 * line). */
bool ui_cmdline_key(uint32_t key, char **line);
/* Draws prompt + line into row 0 of v; *cursor_x receives the cursor column. */
void ui_cmdline_draw(struct ui_view *v, int *cursor_x);
/* The completion candidates readline last listed ("" when none). */
const char *ui_cmdline_matches(void);

/* Words the completion offers, set by the app: NULL-terminated lists. */
void ui_cmdline_set_words(const char *const *commands, const char *const *settings);

#endif
