/*
 * cmdline.c — readline's callback interface driven by curses keys (design in cmdline.h).
 */
#include "config.h"

#include "cmdline.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "common.h"
#include "keys.h"
#include "treeplan.h"

#define HISTORY_MAX 1000

static struct {
	bool init, active, done;
	enum ui_cl_kind kind;
	char prompt[64];
	char *line;                 /* the accepted line */
	unsigned char feed[8];      /* bytes handed to readline's getc */
	int n_feed, i_feed;
	char matches[512];
	char *history_path;
	FILE *devnull;
	const char *const *commands;
	const char *const *settings;
} cl;

// ---- readline hooks

static int cl_getc(FILE *f)
{
	(void)f;
	if (cl.i_feed < cl.n_feed)
		return cl.feed[cl.i_feed++];
	return 0; /* never asked for more than was fed */
}

static int cl_input_available(void)
{
	return cl.i_feed < cl.n_feed;
}

static void cl_redisplay(void)
{
	/* the app draws the line from rl_line_buffer on its next frame */
}

static void cl_prep(int meta)
{
	(void)meta;
}

static void cl_deprep(void)
{
}

static void cl_on_line(char *line)
{
	cl.done = true;
	cl.line = line; /* malloc'd by readline, or NULL on EOF */
	rl_callback_handler_remove();
	cl.active = false;
}

static void cl_display_matches(char **matches, int n, int max)
{
	(void)max;
	size_t k = 0;
	cl.matches[0] = 0;
	for (int i = 1; i <= n && k + 2 < sizeof(cl.matches); i++) {
		const char *m = matches[i];
		const char *slash = strrchr(m, '/');
		if (slash && slash[1])
			m = slash + 1;
		k += (size_t)snprintf(cl.matches + k, sizeof(cl.matches) - k, "%s%s", i > 1 ? "  " : "", m);
	}
	if (k >= sizeof(cl.matches))
		k = sizeof(cl.matches) - 1;
	cl.matches[k] = 0;
}

// ---- completion

static const char *const *gen_list;
static const char *const algo_names[] = { "deft-flatten", "deft-node", "seq", "tree-mask", NULL };
static const char *const backend_names[] = { "cpu", "cuda", "auto", NULL };
static const char *const export_formats[] = { "json", "dot", NULL };
static const char *const on_off[] = { "on", "off", NULL };
static const char *const replay_words[] = { "stop", "fewshot:", NULL };

static char *list_generator(const char *text, int state)
{
	static int i;
	static size_t len;
	if (!state) {
		i = 0;
		len = strlen(text);
	}
	while (gen_list && gen_list[i]) {
		const char *w = gen_list[i++];
		if (!strncmp(w, text, len))
			return xstrdup(w);
	}
	return NULL;
}

/* the n-th word (0-based) of the line before position end, into buf */
static int words_before(int end, char words[3][64])
{
	int n = 0, i = 0;
	while (i < end && n < 3) {
		while (i < end && rl_line_buffer[i] == ' ')
			i++;
		if (i >= end)
			break;
		int s = i;
		while (i < end && rl_line_buffer[i] != ' ')
			i++;
		if (i >= end)
			break; /* the word being completed */
		snprintf(words[n], 64, "%.*s", i - s, rl_line_buffer + s);
		n++;
	}
	return n;
}

static char **cl_complete(const char *text, int start, int end)
{
	(void)end;
	rl_attempted_completion_over = 1; /* no default completion */
	if (cl.kind != UI_CL_COMMAND)
		return NULL;
	char w[3][64] = { "", "", "" };
	int n = words_before(start, w);
	gen_list = NULL;
	if (n == 0) {
		gen_list = cl.commands;
	} else if (!strcmp(w[0], "set")) {
		if (n == 1)
			gen_list = cl.settings;
		else if (n == 2 && (!strcmp(w[1], "chat") || !strcmp(w[1], "show-pruned") || !strcmp(w[1], "boundaries") ||
				    !strcmp(w[1], "entropy")))
			gen_list = on_off;
	} else if (!strcmp(w[0], "algo") && n == 1) {
		gen_list = algo_names;
	} else if (!strcmp(w[0], "backend") && n == 1) {
		gen_list = backend_names;
	} else if (!strcmp(w[0], "export") && n == 1) {
		gen_list = export_formats;
	} else if ((!strcmp(w[0], "export") && n == 2) || (n == 1 && (!strcmp(w[0], "open") || !strcmp(w[0], "e") ||
								     !strcmp(w[0], "save") || !strcmp(w[0], "w") ||
								     !strcmp(w[0], "load")))) {
		rl_attempted_completion_over = 0;
		return rl_completion_matches(text, rl_filename_completion_function);
	} else if (!strcmp(w[0], "replay") && n == 1) {
		char **m = rl_completion_matches(text, rl_filename_completion_function);
		if (m)
			return m;
		gen_list = replay_words;
	}
	if (!gen_list)
		return NULL;
	return rl_completion_matches(text, list_generator);
}

// ---- interface

void ui_cmdline_set_words(const char *const *commands, const char *const *settings)
{
	cl.commands = commands;
	cl.settings = settings;
}

void ui_cmdline_init(const char *history_path)
{
	if (cl.init)
		return;
	cl.init = true;
	rl_readline_name = "deftree";
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_change_environment = 0;
	rl_prep_term_function = cl_prep;
	rl_deprep_term_function = cl_deprep;
	rl_getc_function = cl_getc;
	rl_input_available_hook = cl_input_available;
	rl_redisplay_function = cl_redisplay;
	rl_attempted_completion_function = cl_complete;
	rl_completion_display_matches_hook = cl_display_matches;
	cl.devnull = fopen("/dev/null", "w");
	rl_outstream = cl.devnull ? cl.devnull : stderr;
	rl_instream = stdin;
	rl_inhibit_completion = 0;
	rl_variable_bind("bell-style", "none");
	rl_variable_bind("horizontal-scroll-mode", "on");
	using_history();
	stifle_history(HISTORY_MAX);
	if (history_path) {
		cl.history_path = xstrdup(history_path);
		read_history(history_path);
	}
}

void ui_cmdline_shutdown(void)
{
	if (!cl.init)
		return;
	if (cl.active) {
		rl_callback_handler_remove();
		cl.active = false;
	}
	if (cl.history_path) {
		write_history(cl.history_path);
		free(cl.history_path);
		cl.history_path = NULL;
	}
	if (cl.devnull) {
		rl_outstream = NULL;
		fclose(cl.devnull);
		cl.devnull = NULL;
	}
	cl.init = false;
}

void ui_cmdline_open(enum ui_cl_kind kind, const char *prompt)
{
	if (cl.active)
		rl_callback_handler_remove();
	cl.kind = kind;
	snprintf(cl.prompt, sizeof(cl.prompt), "%s", prompt);
	cl.active = true;
	cl.done = false;
	cl.line = NULL;
	cl.matches[0] = 0;
	rl_callback_handler_install(cl.prompt, cl_on_line);
	rl_replace_line("", 0);
	rl_point = rl_end = 0;
}

void ui_cmdline_insert(const char *text)
{
	if (cl.active)
		rl_insert_text(text);
}

bool ui_cmdline_active(void)
{
	return cl.active;
}

enum ui_cl_kind ui_cmdline_kind(void)
{
	return cl.kind;
}

static void feed_bytes(const unsigned char *b, int n)
{
	for (int i = 0; i < n && cl.active; i++) {
		cl.feed[0] = b[i];
		cl.n_feed = 1;
		cl.i_feed = 0;
		rl_callback_read_char();
	}
}

static void cancel_line(void)
{
	rl_replace_line("", 0);
	rl_point = rl_end = 0;
	rl_callback_handler_remove();
	cl.active = false;
	cl.done = true;
	cl.line = NULL;
}

bool ui_cmdline_key(uint32_t key, char **line)
{
	*line = NULL;
	if (!cl.active)
		return true;
	cl.done = false;
	if (key == UI_ESC || key == UI_CTRL('c') || key == UI_CTRL('g')) {
		cancel_line();
		return true;
	}
	if (key != '\t')
		cl.matches[0] = 0;
	unsigned char b[8];
	int n = 0;
	if (key >= UI_KEY_SPECIAL) {
		switch ((int)(key - UI_KEY_SPECIAL)) {
		case KEY_LEFT: b[n++] = UI_CTRL('b'); break;
		case KEY_RIGHT: b[n++] = UI_CTRL('f'); break;
		case KEY_UP: b[n++] = UI_CTRL('p'); break;
		case KEY_DOWN: b[n++] = UI_CTRL('n'); break;
		case KEY_HOME: b[n++] = UI_CTRL('a'); break;
		case KEY_END: b[n++] = UI_CTRL('e'); break;
		case KEY_BACKSPACE: b[n++] = 0x7f; break;
		case KEY_DC:
			if (rl_end > 0)
				b[n++] = UI_CTRL('d');
			break;
		case KEY_ENTER: b[n++] = '\r'; break;
		default: break;
		}
	} else if (key == '\n' || key == '\r') {
		b[n++] = '\r';
	} else if (key == UI_CTRL('d') && rl_end == 0) {
		cancel_line();
		return true;
	} else if (key == 8) {
		b[n++] = 0x7f;
	} else {
		char u[8];
		n = ui_utf8_put(key, u);
		memcpy(b, u, (size_t)n);
	}
	feed_bytes(b, n);
	if (cl.done) {
		if (cl.line && *cl.line) {
			HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
			if (!last || strcmp(last->line, cl.line))
				add_history(cl.line);
		}
		*line = cl.line;
		cl.line = NULL;
		return true;
	}
	return false;
}

void ui_cmdline_draw(struct ui_view *v, int *cursor_x)
{
	int x = ui_puts(v, 0, 0, UI_S_KEY, cl.prompt, -1);
	const char *buf = rl_line_buffer ? rl_line_buffer : "";
	int point = rl_point, end = rl_end;
	if (point > end)
		point = end;
	int before = ui_text_width(buf, (size_t)point);
	int avail = v->w - x - 1;
	/* scroll horizontally so that the cursor stays visible */
	size_t from = 0;
	while (before > avail && from < (size_t)point) {
		int len;
		bool complete;
		uint32_t cp = ui_utf8_next(buf + from, (size_t)point - from, &len, &complete);
		before -= ui_cp_width(cp);
		from += (size_t)len;
	}
	ui_putn(v, x, 0, UI_S_NORMAL, buf + from, (size_t)end - from, avail);
	*cursor_x = x + before;
}

const char *ui_cmdline_matches(void)
{
	return cl.matches;
}
