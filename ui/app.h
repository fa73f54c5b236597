/*
 * app.h — the terminal playground: state, loop, drawing (ui/app.c) and the
 * action handlers (ui/actions.c) that share it.
 *
 * One UI thread owns curses, readline and everything in struct ui_app; the
 * engine runs on the worker thread (ui/worker.h) and is seen only through
 * snapshots.  The loop: poll() the terminal, the wake pipe (worker
 * results) and the signal pipe; take the newest snapshot and the worker's
 * events; dispatch keys through the action table; then draw once if
 * anything set a dirty flag.
 */
#ifndef DT_UI_APP_H
#define DT_UI_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "cmdline.h"
#include "engine.h"
#include "keys.h"
#include "layout.h"
#include "panes.h"
#include "snapshot.h"
#include "worker.h"

enum ui_mode {
	UI_MODE_NORMAL = 0,
	UI_MODE_CMDLINE,  /* readline owns the keys */
	UI_MODE_HELP,     /* the help screen (scrolls) */
	UI_MODE_INFO,     /* a text overlay: pane explanations, settings */
	UI_MODE_CONFIRM,  /* a y/n question */
	UI_MODE_ALT_PICK, /* a digit picks an alternative */
};

enum ui_confirm {
	UI_CONFIRM_QUIT = 1, /* unsaved tree: save before quitting? */
};

#define UI_DIRTY_ALL 1u

/* what `deftree` (tui) was started with */
struct ui_options {
	const char *model_path;
	int32_t n_threads;
	struct engine_params engine; /* algo, page size, budget, sampler */
	int32_t max_tokens;          /* steps a prompt or reply grows (default 200, 0 = until it ends) */
	int32_t grow;                /* tokens per extend / fork (default 32) */
	int32_t n_children;          /* sample-n (default 3) */
	int32_t beam_width;          /* default 3 */
	bool chat;                   /* wrap prompts in the chat template (default on) */
	bool no_color;               /* NO_COLOR or --no-color */
	bool ascii;                  /* force ASCII glyphs */
	bool mouse;                  /* mouse clicks (default on) */
	const char *prompt;          /* start with this prompt */
	const char *open;            /* start with this session */
	const char *state_dir;       /* history and autosave (default $XDG_STATE_HOME/deftree) */
	int32_t replay_fps;
	const char *notice;          /* shown on the status line once the first worker event is in
					(the config file's problems), NULL = none */
};

struct ui_app {
	struct ui_options opt;
	struct ui_worker *w;
	struct ui_snap *snap;      /* the snapshot drawn (owned) */
	struct ui_view_state vs;
	struct ui_layout lay;
	struct ui_canvas *canvas;
	struct ui_run_state rs;
	int focus;                 /* enum ui_pane */
	unsigned dirty;
	enum ui_mode mode;
	bool quit;

	/* key state */
	int count;                 /* count prefix being typed */
	const struct ui_action *pending; /* a UI_ACT_CHAR action waiting for its character */

	/* messages */
	char msg[512];
	bool msg_err;

	/* overlays */
	char **help;
	int help_top;
	char *info;                /* text of the info overlay (malloc'd) */
	char info_title[64];
	int info_top;
	enum ui_confirm confirm;
	char confirm_q[256];

	/* hit maps of the last frame */
	int32_t *row_node;         /* tree pane rows */
	int32_t *cell_tok;         /* text pane cells */
	struct ui_rect tree_area, text_area;

	/* settings held by the UI */
	int32_t grow_n, sample_n, beam_w;
	float beam_alpha;
	bool chat;
	int algo_req;              /* algorithm asked for and not yet in a snapshot, -1 */

	/* cursor bookkeeping across snapshots */
	bool follow;               /* the token cursor stays on the newest token */
	int32_t marks[26];
	char search[256];
	int32_t match_node, match_pos; /* the current match */

	/* files */
	char state_dir[512];
	char autosave_path[600];
	char history_path[600];
	char session_path[512];    /* last saved / opened */
	bool had_autosave;

	/* pipes */
	int wake_rd, wake_wr;
	int sig_rd, sig_wr;
	bool utf8;
	int palette;
};

int ui_run(const struct ui_options *opt);

// ---- used by the actions (ui/actions.c)

void ui_msg(struct ui_app *app, bool err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ui_submit(struct ui_app *app, const struct ui_job *j);
/* The token cursor's node and index in it (false without a tree). */
bool ui_cursor_token(struct ui_app *app, int32_t *node, int32_t *index);
void ui_select(struct ui_app *app, int32_t node, bool to_end);
void ui_show_info(struct ui_app *app, const char *title, const char *text);
/* Runs a command line (":" already stripped). */
int ui_run_command(struct ui_app *app, const char *line);
/* The explanation paragraph of a pane. */
const char *ui_pane_explain(int pane);
/* Words for completion: commands and settings (NULL-terminated). */
const char *const *ui_command_words(void);
const char *const *ui_setting_words(void);

#endif
