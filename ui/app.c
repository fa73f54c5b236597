/*
 * app.c — the terminal playground's loop, screen and terminal (design in app.h).
 *
 * DESIGN
 *   Dirty flags: anything that changes what is shown (a key, a snapshot, an
 *   event, a resize) sets app->dirty; the loop draws at most once per
 *   wake-up, from state, into the canvas (ui/render.h), then copies the
 *   canvas to curses, which sends only the cells that changed.
 *
 *   Waiting: poll() on the terminal, the wake pipe (the worker writes a
 *   byte per snapshot / event) and the signal pipe (SIGTERM, SIGHUP, SIGINT
 *   handlers write the signal number).  While a job runs the timeout is
 *   short so the elapsed time and spinner move; idle, the loop sleeps.
 *
 *   Terminal restore: one function (term_restore) ends curses; it runs on
 *   quit, from atexit, from the fatal hooks (DT_ASSERT, out of memory) and,
 *   for fatal signals, a signal-safe variant writes the terminfo strings
 *   that leave the alternate screen, show the cursor and reset attributes,
 *   and puts back the saved termios, then re-raises the signal.  SIGTERM
 *   and SIGHUP (the terminal died) autosave the tree first.
 */
#include "config.h"

#include "app.h"

#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <term.h>
#include <termios.h>
#include <unistd.h>

#include "actions.h"
#include "common.h"
#include "theme.h"

// ---- terminal

static struct {
	bool active;
	struct termios saved;
	bool have_saved;
	char restore_seq[256]; /* rmcup + cnorm + sgr0 + mouse off, for the signal handler */
	size_t restore_len;
	int sig_wr;
} term;

static void append_cap(const char *name)
{
	char *s = tigetstr(name);
	if (!s || s == (char *)-1)
		return;
	size_t n = strlen(s);
	if (term.restore_len + n < sizeof(term.restore_seq)) {
		memcpy(term.restore_seq + term.restore_len, s, n);
		term.restore_len += n;
	}
}

static void term_restore(void)
{
	if (!term.active)
		return;
	term.active = false;
	mousemask(0, NULL);
	curs_set(1);
	endwin();
	fflush(stdout);
}

/* async-signal-safe: write the saved strings, restore termios */
static void term_restore_signal(void)
{
	if (!term.active)
		return;
	term.active = false;
	static const char mouse_off[] = "\033[?1000l\033[?1002l\033[?1006l";
	ssize_t r = write(STDOUT_FILENO, mouse_off, sizeof(mouse_off) - 1);
	r = write(STDOUT_FILENO, term.restore_seq, term.restore_len);
	(void)r;
	if (term.have_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &term.saved);
}

static void on_fatal_signal(int sig)
{
	term_restore_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_notify_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t r = write(term.sig_wr, &b, 1);
	(void)r;
	errno = saved;
}

static void install_signals(int sig_wr)
{
	term.sig_wr = sig_wr;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	for (size_t i = 0; i < DT_ARRAY_LEN(fatal); i++)
		sigaction(fatal[i], &sa, NULL);
	sa.sa_handler = on_notify_signal;
	sa.sa_flags = SA_RESTART;
	const int notify[] = { SIGTERM, SIGHUP, SIGINT, SIGQUIT };
	for (size_t i = 0; i < DT_ARRAY_LEN(notify); i++)
		sigaction(notify[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static bool term_setup(struct ui_app *app)
{
	if (tcgetattr(STDIN_FILENO, &term.saved) == 0)
		term.have_saved = true;
	if (!initscr())
		return false;
	term.active = true;
	term.restore_len = 0;
	append_cap("rmcup");
	append_cap("cnorm");
	append_cap("sgr0");
	dt_add_fatal_hook(term_restore);
	atexit(term_restore);
	raw();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	meta(stdscr, TRUE);
	app->palette = ui_theme_init(app->opt.no_color);
	if (app->opt.mouse) {
		mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
		mouseinterval(0);
	}
	return true;
}

// ---- messages and helpers used by the actions

void ui_msg(struct ui_app *app, bool err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(app->msg, sizeof(app->msg), fmt, ap);
	va_end(ap);
	app->msg_err = err;
	app->dirty |= UI_DIRTY_ALL;
}

void ui_submit(struct ui_app *app, const struct ui_job *j)
{
	bool busy = ui_worker_busy(app->w);
	ui_worker_submit(app->w, j);
	if (busy)
		ui_msg(app, false, "queued: it runs when the current job ends (Esc cancels both)");
	else
		app->msg[0] = 0;
	app->dirty |= UI_DIRTY_ALL;
}

bool ui_cursor_token(struct ui_app *app, int32_t *node, int32_t *index)
{
	if (!app->snap || !ui_snap_node(app->snap, app->vs.cursor))
		return false;
	return ui_snap_locate(app->snap, app->vs.cursor, app->vs.tok_pos, node, index);
}

void ui_select(struct ui_app *app, int32_t node, bool to_end)
{
	const struct ui_snap_node *n = ui_snap_node(app->snap, node);
	if (!n)
		return;
	app->vs.cursor = node;
	ui_tree_reveal(app->snap, &app->vs, node);
	if (to_end) {
		app->vs.tok_pos = n->pos0 + n->n_tokens - 1;
		app->follow = true;
	} else {
		int32_t len = n->pos0 + n->n_tokens;
		if (app->vs.tok_pos >= len)
			app->vs.tok_pos = len - 1;
	}
	app->dirty |= UI_DIRTY_ALL;
}

void ui_show_info(struct ui_app *app, const char *title, const char *text)
{
	free(app->info);
	app->info = xstrdup(text);
	snprintf(app->info_title, sizeof(app->info_title), "%s", title);
	app->info_top = 0;
	app->mode = UI_MODE_INFO;
	app->dirty |= UI_DIRTY_ALL;
}

const char *ui_pane_explain(int pane)
{
	switch (pane) {
	case UI_PANE_TREE:
		return "The token tree. Each row is a node: a run of tokens that follow its parent's last token. "
		       "The root holds the prompt; a fork splits a node where the branches part, so shared text is "
		       "stored (and its KV cached) once. Marks: a filled dot is a live leaf (it grows on the next "
		       "step), a square a finished one, a cross a pruned branch (kept greyed when shown); open and "
		       "closed triangles are unfolded and folded nodes, with the number of hidden nodes on the right "
		       "before the node's token count. The highlighted row is the cursor; the rows in bold lead to it: "
		       "that path's text is in the text pane.";
	case UI_PANE_TEXT:
		return "The text of the path from the root to the selected node, token by token. Generated tokens "
		       "are coloured by the probability the model gave them when they were sampled (green: likely, "
		       "red: unlikely) or, with c, by the entropy of the distribution they were drawn from, estimated "
		       "from the top-k alternatives (a lower bound). Prompt and forced tokens are plain. The "
		       "highlighted token is the token cursor (h/l or , and .): f forks there, a forks with one of the "
		       "alternatives listed below it - the tokens the model almost chose, with their probabilities at "
		       "temperature 1. | shows token boundaries.";
	case UI_PANE_KV:
		return "The KV cache as pages of a fixed number of token slots. Each cell is one page (or several when "
		       "the pool is large), coloured by the node that owns it; the digit is how many live branches "
		       "read the page on each step. A prompt page read by 4 branches is stored once but read 4 times: "
		       "that is the sharing a tree gives. Logical tokens count every root-to-leaf path in full, stored "
		       "tokens count each once; their ratio is the sharing. Forks never copy KV: a split page is "
		       "shared by both parts. Pruning returns a branch's pages to the free list (dots).";
	case UI_PANE_STATS:
		return "What each decode step costs. KV read is the bytes of keys and values the attention reads "
		       "under the chosen algorithm (the engine's IO model, all layers), against seq - one pass per "
		       "branch over its whole path, what attention without tree awareness does - for the same step; "
		       "the percentage is the saving. deft-flatten and deft-node read shared KV once per step; "
		       "tree-mask also reads a dense mask and writes scores. Other IO: queries, masks, partial results "
		       "merged across groups, intermediates. Weights are read once per forward pass and dominate at "
		       "small batch. Step time is the whole step, attention the part inside tree attention; TTFT is "
		       "the time from a branch's start to its first token, TPOT the time per token of a growing branch "
		       "(the mean step: each step gives every live branch one token). The sparklines show the last "
		       "steps; next step KV compares the algorithms on this tree now. Bandwidth is the roofline view: "
		       "bytes a step moves per second against a copy timed at start (host memory on the cpu). With the "
		       "cuda backend (B toggles) the GPU line times the attention kernels alone with CUDA events and "
		       "divides the step's KV bytes by that time, against the device's own measured copy rate: how "
		       "close tree attention comes to streaming each KV byte once at full speed.";
	default:
		return "";
	}
}

// ---- snapshots and events

static bool shown(const struct ui_app *app, const struct ui_snap_node *n)
{
	return n && (n->status != TREE_PRUNED || app->vs.show_pruned);
}

static void apply_snapshot(struct ui_app *app, struct ui_snap *s)
{
	struct ui_snap *old = app->snap;
	app->snap = s;
	ui_view_state_fold_reserve(&app->vs, s->n_ids);
	if (old && old->info.tree_uid != s->info.tree_uid) {
		/* another tree (a prompt, :open, a replay): ids mean other nodes now */
		memset(app->vs.fold, 0, (size_t)app->vs.n_fold);
		for (int i = 0; i < 26; i++)
			app->marks[i] = -1;
		app->match_node = app->match_pos = -1;
		app->vs.tree_top = app->vs.text_top = 0;
		ui_snap_free(old);
		old = NULL;
	}
	/* pruned subtrees start folded */
	for (int32_t id = 0; id < s->n_ids; id++) {
		const struct ui_snap_node *n = ui_snap_node(s, id);
		if (!n || n->status != TREE_PRUNED)
			continue;
		const struct ui_snap_node *o = ui_snap_node(old, id);
		if (!o || o->status != TREE_PRUNED)
			app->vs.fold[id] = 1;
	}
	/* the cursor: its node, else the nearest shown ancestor */
	int32_t c = app->vs.cursor;
	const struct ui_snap_node *n = ui_snap_node(s, c);
	if (!shown(app, n)) {
		const struct ui_snap_node *o = ui_snap_node(old, c);
		int32_t id = -1;
		while (o) {
			const struct ui_snap_node *x = ui_snap_node(s, o->id);
			if (shown(app, x)) {
				id = x->id;
				break;
			}
			o = ui_snap_node(old, o->parent);
		}
		if (id < 0 && s->has_tree)
			id = s->root;
		app->vs.cursor = id;
		n = ui_snap_node(s, id);
		if (n && app->vs.tok_pos >= n->pos0 + n->n_tokens)
			app->vs.tok_pos = n->pos0 + n->n_tokens - 1;
	}
	if (n && app->follow)
		app->vs.tok_pos = n->pos0 + n->n_tokens - 1;
	if (!s->has_tree)
		app->vs.cursor = -1;
	if (app->algo_req >= 0 && (int)s->info.algo == app->algo_req)
		app->algo_req = -1;
	ui_snap_free(old);
	app->dirty |= UI_DIRTY_ALL;
}

static void take_events(struct ui_app *app)
{
	struct ui_event ev[16];
	int n;
	bool any = false;
	while ((n = ui_worker_take_events(app->w, ev, 16)) > 0) {
		any = true;
		for (int i = 0; i < n; i++) {
			switch (ev[i].kind) {
			case UI_EV_INFO:
				ui_msg(app, false, "%s", ev[i].text);
				break;
			case UI_EV_ERROR:
				ui_msg(app, true, "%s", ev[i].text);
				break;
			case UI_EV_SELECT:
				/* the node may be newer than the snapshot: remember it */
				app->vs.cursor = ev[i].node;
				app->follow = true;
				if (app->snap && ui_snap_node(app->snap, ev[i].node))
					ui_select(app, ev[i].node, true);
				break;
			case UI_EV_SAVED:
				snprintf(app->session_path, sizeof(app->session_path), "%s", ev[i].text);
				break;
			}
		}
		app->dirty |= UI_DIRTY_ALL;
	}
	/* a start-up notice comes after the model's load message, so that it stays */
	if (any && app->opt.notice) {
		ui_msg(app, true, "%s", app->opt.notice);
		app->opt.notice = NULL;
	}
}

// ---- drawing

static void draw_title(struct ui_app *app, struct ui_view *v, int pane, const char *text)
{
	enum ui_style st = pane == app->focus ? UI_S_TITLE_FOCUS : UI_S_TITLE;
	ui_fill(v, 0, 0, v->w, 1, ' ', st);
	ui_puts_fit(v, 1, 0, st, text, v->w - 2, false);
}

static const char *dot(void)
{
	return ui_g->utf8 ? " \xc2\xb7 " : " - ";
}

static void pane_titles(struct ui_app *app, int pane, char *buf, size_t cap)
{
	const struct ui_snap *s = app->snap;
	switch (pane) {
	case UI_PANE_TREE:
		if (s && s->has_tree)
			snprintf(buf, cap, "Tree%s%d nodes%s%d live%s%d leaves", dot(), s->tstats.n_nodes, dot(),
				 s->tstats.n_live_leaves, dot(), s->tstats.n_leaves);
		else
			snprintf(buf, cap, "Tree");
		break;
	case UI_PANE_TEXT: {
		const struct ui_snap_node *n = s ? ui_snap_node(s, app->vs.cursor) : NULL;
		if (n)
			snprintf(buf, cap, "Text%s#%d%s%d tokens%scursor %d%s%s", dot(), n->id, dot(), n->pos0 + n->n_tokens,
				 dot(), app->vs.tok_pos, dot(), app->vs.entropy ? "colour: entropy" : "colour: probability");
		else
			snprintf(buf, cap, "Text");
		break;
	}
	case UI_PANE_KV:
		if (s && s->pool_pages)
			snprintf(buf, cap, "KV pages%s%d/%d used%ssharing %.2fx", dot(), s->pool_pages - s->pool_free,
				 s->pool_pages, dot(), s->tstats.sharing);
		else
			snprintf(buf, cap, "KV pages");
		break;
	case UI_PANE_STATS:
		if (s)
			snprintf(buf, cap, "Stats%s%s vs seq%s%s", dot(), treeplan_algo_name(s->info.algo), dot(),
				 s->info.replay[0] ? "replay, IO-only" : s->info.backend);
		else
			snprintf(buf, cap, "Stats");
		break;
	}
}

static void draw_header(struct ui_app *app, struct ui_view *v)
{
	const struct ui_snap *s = app->snap;
	ui_fill(v, 0, 0, v->w, 1, ' ', UI_S_HEADER);
	char left[512], right[160];
	if (s && s->info.has_model) {
		/* the longest form that fits: the sampler, then the backend go first */
		char samp[96];
		snprintf(samp, sizeof(samp), "%sT %.2g k %d p %.2g%s%s", dot(), (double)s->info.sampler.temp,
			 s->info.sampler.top_k, (double)s->info.sampler.top_p, app->chat && s->info.chat_template ? dot() : "",
			 app->chat && s->info.chat_template ? "chat" : "");
		for (int form = 0; form < 3; form++) {
			snprintf(left, sizeof(left), " deftree%s%s%s%s%s%s%s", dot(), s->info.model, form < 2 ? dot() : "",
				 form < 2 ? s->info.backend : "", dot(), treeplan_algo_name(s->info.algo), form < 1 ? samp : "");
			int need = ui_text_width(left, strlen(left)) + 24;
			if (need <= v->w)
				break;
		}
	}
	else if (s && s->info.io_only)
		snprintf(left, sizeof(left), " deftree%sreplay %s%s%s", dot(), s->info.replay, dot(), s->info.model);
	else
		snprintf(left, sizeof(left), " deftree%sno model (:load PATH)", dot());
	if (s && s->info.replay[0] && s->info.has_model)
		strncat(left, " (replay)", sizeof(left) - strlen(left) - 1);
	static const char *spin_u[] = { "\xe2\xa0\x8b", "\xe2\xa0\x99", "\xe2\xa0\xb9", "\xe2\xa0\xb8",
					"\xe2\xa0\xbc", "\xe2\xa0\xb4", "\xe2\xa0\xa6", "\xe2\xa0\xa7" };
	static const char *spin_a[] = { "|", "/", "-", "\\", "|", "/", "-", "\\" };
	int phase = (int)((dt_now_ns() / 120000000LL) % 8);
	const char *unsaved = s && s->info.unsaved ? "[+] " : "";
	if (app->rs.busy && app->rs.paused)
		snprintf(right, sizeof(right), "%spaused ", unsaved);
	else if (app->rs.busy)
		snprintf(right, sizeof(right), "%s%s %s ", unsaved, ui_g->utf8 ? spin_u[phase] : spin_a[phase],
			 app->rs.job[0] ? app->rs.job : "working");
	else
		snprintf(right, sizeof(right), "%sidle ", unsaved);
	int rw = ui_text_width(right, strlen(right));
	ui_puts_fit(v, 0, 0, UI_S_HEADER, left, v->w - rw - 1, false);
	ui_puts(v, v->w - rw, 0, UI_S_HEADER, right, rw);
}

static void draw_status(struct ui_app *app, struct ui_view *v)
{
	ui_fill(v, 0, 0, v->w, 1, ' ', UI_S_STATUS);
	char right[160] = "", left[600];
	const struct ui_snap *s = app->snap;
	const struct ui_snap_node *n = s ? ui_snap_node(s, app->vs.cursor) : NULL;
	if (n) {
		const char *st = n->status == TREE_PRUNED ? "pruned" : n->n_kids_live > 0 ? "inner"
								      : n->status == TREE_LIVE ? "live" : "finished";
		snprintf(right, sizeof(right), "#%d %s%stoken %d/%d ", n->id, st, dot(), app->vs.tok_pos,
			 n->pos0 + n->n_tokens);
	}
	int rw = ui_text_width(right, strlen(right));
	enum ui_style ls = UI_S_STATUS;
	if (app->mode == UI_MODE_CONFIRM) {
		snprintf(left, sizeof(left), " %s", app->confirm_q);
		ls = UI_S_ERROR;
	} else if (app->mode == UI_MODE_CMDLINE && ui_cmdline_matches()[0]) {
		snprintf(left, sizeof(left), " %s", ui_cmdline_matches());
	} else if (app->msg[0]) {
		snprintf(left, sizeof(left), " %s", app->msg);
		ls = app->msg_err ? UI_S_ERROR : UI_S_STATUS;
	} else if (app->rs.busy) {
		char t[32];
		double el = (double)(dt_now_ns() - app->rs.since_ns);
		if (app->rs.total > 0)
			snprintf(left, sizeof(left), " %s %lld/%lld%s%s%sSpace pause%sEsc cancel", app->rs.job,
				 (long long)app->rs.done, (long long)app->rs.total, dot(), ui_fmt_ns(el, t, sizeof(t)), dot(),
				 dot());
		else
			snprintf(left, sizeof(left), " %s %lld%s%s%sEsc cancel", app->rs.job, (long long)app->rs.done, dot(),
				 ui_fmt_ns(el, t, sizeof(t)), dot());
	} else if (s && s->info.replay[0]) {
		snprintf(left, sizeof(left), " replay %s (IO-only): Esc returns to the model's tree", s->info.replay);
	} else {
		snprintf(left, sizeof(left), " %s", s && s->has_tree ? "ready" : "p: type a prompt");
	}
	ui_puts_fit(v, 0, 0, ls, left, v->w - rw - 1, false);
	ui_puts(v, v->w - rw, 0, UI_S_STATUS, right, rw);
}

static void draw_hints(struct ui_app *app, struct ui_view *v, int *cursor_x)
{
	*cursor_x = -1;
	if (app->mode == UI_MODE_CMDLINE) {
		ui_cmdline_draw(v, cursor_x);
		return;
	}
	const char *m = ui_cmdline_matches();
	int x = 0;
	if (app->count > 0 || app->pending) {
		char b[64];
		if (app->pending)
			snprintf(b, sizeof(b), "%s: which letter? ", app->pending->name);
		else
			snprintf(b, sizeof(b), "%d", app->count);
		x += ui_puts(v, 0, 0, UI_S_KEY, b, -1) + 1;
	}
	if (m && m[0] && app->mode == UI_MODE_NORMAL && !app->msg[0]) {
		ui_puts_fit(v, x, 0, UI_S_DIM, m, v->w - x, false);
		return;
	}
	static const char *hints[][2] = {
		{ "p", "prompt" }, { "e", "extend" }, { "f", "fork" }, { "a", "alt" }, { "s", "sample" },
		{ "b", "beam" }, { "d", "prune" }, { "A", "algo" }, { ":", "cmd" }, { "?", "help" },
		{ "q", "quit" }, { "Tab", "pane" },
	};
	if (app->mode == UI_MODE_HELP || app->mode == UI_MODE_INFO) {
		ui_puts(v, x, 0, UI_S_DIM, "j/k scroll  q/Esc close", -1);
		return;
	}
	for (size_t i = 0; i < DT_ARRAY_LEN(hints); i++) {
		int need = (int)strlen(hints[i][0]) + 1 + (int)strlen(hints[i][1]) + 2;
		if (x + need > v->w)
			break;
		x += ui_puts(v, x, 0, UI_S_KEY, hints[i][0], -1) + 1;
		x += ui_puts(v, x, 0, UI_S_DIM, hints[i][1], -1) + 2;
	}
}

static void wrap_text(const char *text, int w, char ***out, int *n_out)
{
	int cap = 32, n = 0;
	char **wl_lines = xcalloc((size_t)cap, sizeof(char *));
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t para = nl ? (size_t)(nl - p) : strlen(p);
		size_t i = 0;
		do {
			/* take as many words as fit in w columns */
			size_t end = i, last_sp = 0;
			int cols = 0;
			while (end < para) {
				int len;
				uint32_t cp = ui_utf8_next(p + end, para - end, &len, NULL);
				int cw = ui_cp_width(cp);
				if (cols + cw > w)
					break;
				if (cp == ' ')
					last_sp = end;
				cols += cw;
				end += (size_t)len;
			}
			if (end < para && last_sp > i)
				end = last_sp;
			if (n + 1 >= cap)
				wl_lines = xrealloc(wl_lines, (size_t)(cap *= 2) * sizeof(char *));
			char *l = xmalloc(end - i + 1);
			memcpy(l, p + i, end - i);
			l[end - i] = 0;
			wl_lines[n++] = l;
			i = end;
			while (i < para && p[i] == ' ')
				i++;
		} while (i < para);
		p += para;
		if (*p == '\n')
			p++;
	}
	*out = wl_lines;
	*n_out = n;
}

static void draw_overlay(struct ui_app *app, struct ui_canvas *c)
{
	struct ui_rect b = app->lay.body;
	struct ui_view v = ui_view_of(c, b);
	ui_fill(&v, 0, 0, v.w, v.h, ' ', UI_S_NORMAL);
	if (app->mode == UI_MODE_HELP) {
		if (!app->help)
			app->help = ui_help_lines();
		int n = 0;
		while (app->help[n])
			n++;
		if (app->help_top > n - v.h)
			app->help_top = n - v.h;
		if (app->help_top < 0)
			app->help_top = 0;
		for (int y = 0; y < v.h && app->help_top + y < n; y++) {
			const char *l = app->help[app->help_top + y];
			if (l[0] == '#')
				ui_puts(&v, 1, y, UI_S_BOLD, l + 1, v.w - 2);
			else {
				/* keys column highlighted */
				int kx = ui_putn(&v, 1, y, UI_S_KEY, l, strlen(l) < 12 ? strlen(l) : 12, -1);
				(void)kx;
				if (strlen(l) > 12)
					ui_puts(&v, 13, y, UI_S_NORMAL, l + 12, v.w - 14);
			}
		}
		return;
	}
	if (app->mode == UI_MODE_INFO && app->info) {
		int w = DT_MIN(v.w - 4, 96);
		char **wl_lines;
		int n;
		wrap_text(app->info, w - 2, &wl_lines, &n);
		int x0 = (v.w - w) / 2;
		ui_fill(&v, x0, 0, w, 1, ' ', UI_S_TITLE_FOCUS);
		ui_puts(&v, x0 + 1, 0, UI_S_TITLE_FOCUS, app->info_title, w - 2);
		if (app->info_top > n - (v.h - 2))
			app->info_top = n - (v.h - 2);
		if (app->info_top < 0)
			app->info_top = 0;
		for (int y = 0; y < v.h - 2 && app->info_top + y < n; y++)
			ui_puts(&v, x0 + 1, y + 2, UI_S_NORMAL, wl_lines[app->info_top + y], w - 2);
		for (int i = 0; i < n; i++)
			free(wl_lines[i]);
		free(wl_lines);
	}
}

static void draw_too_small(struct ui_app *app, struct ui_canvas *c)
{
	struct ui_view v = ui_view_of(c, (struct ui_rect){ 0, 0, c->w, c->h });
	char a[128], b[128];
	snprintf(a, sizeof(a), "deftree needs at least %dx%d", UI_MIN_COLS, UI_MIN_ROWS);
	snprintf(b, sizeof(b), "(this terminal is %dx%d)", c->w, c->h);
	const char *l3 = "enlarge it, or press q to quit";
	int y = c->h / 2 - 1;
	if (y < 0)
		y = 0;
	const char *ls[3] = { a, b, l3 };
	for (int i = 0; i < 3; i++) {
		int tw = ui_text_width(ls[i], strlen(ls[i]));
		int x = (c->w - tw) / 2;
		ui_puts(&v, x < 0 ? 0 : x, y + i, i == 0 ? UI_S_BOLD : UI_S_NORMAL, ls[i], -1);
	}
	(void)app;
}

static void flush_canvas(struct ui_canvas *c)
{
	for (int y = 0; y < c->h; y++) {
		for (int x = 0; x < c->w; x++) {
			const struct ui_cell *cell = &c->cells[y * c->w + x];
			if (cell->ch == 0)
				continue; /* right half of a wide character */
			wchar_t wc[2] = { (wchar_t)cell->ch, 0 };
			if (!ui_g->utf8 && cell->ch > 0x7e)
				wc[0] = L'?';
			cchar_t cc;
			setcchar(&cc, wc, (attr_t)ui_theme_attr((enum ui_style)cell->style),
				 ui_theme_pair((enum ui_style)cell->style), NULL);
			mvadd_wch(y, x, &cc);
		}
	}
}

static void draw(struct ui_app *app)
{
	int w = COLS, h = LINES;
	if (app->canvas->w != w || app->canvas->h != h)
		ui_canvas_resize(app->canvas, w, h);
	else
		ui_canvas_clear(app->canvas);
	ui_layout_compute(w, h, &app->lay);
	struct ui_canvas *c = app->canvas;
	int cursor_x = -1;
	if (app->lay.too_small) {
		draw_too_small(app, c);
	} else {
		struct ui_view hv = ui_view_of(c, app->lay.header);
		draw_header(app, &hv);
		if (app->mode == UI_MODE_HELP || app->mode == UI_MODE_INFO) {
			draw_overlay(app, c);
		} else {
			for (int p = 0; p < UI_N_PANES; p++) {
				struct ui_rect r = app->lay.pane[p];
				struct ui_view pv = ui_view_of(c, r);
				char title[256];
				pane_titles(app, p, title, sizeof(title));
				draw_title(app, &pv, p, title);
				struct ui_view cv = ui_subview(&pv, 0, 1, pv.w, pv.h - 1);
				/* vertical rule left of a pane that does not start at column 0 */
				if (r.x > 0) {
					struct ui_view sv = ui_view_of(c, (struct ui_rect){ r.x - 1, r.y, 1, r.h });
					for (int y = 0; y < sv.h; y++)
						ui_putc(&sv, 0, y, ui_g->vline, UI_S_SEP);
				}
				switch (p) {
				case UI_PANE_TREE:
					app->tree_area = (struct ui_rect){ cv.x, cv.y, cv.w, cv.h };
					app->row_node = xrealloc(app->row_node, (size_t)(cv.h > 0 ? cv.h : 1) * sizeof(int32_t));
					ui_tree_draw(&cv, app->snap, &app->vs, app->row_node);
					break;
				case UI_PANE_TEXT:
					app->text_area = (struct ui_rect){ cv.x, cv.y, cv.w, cv.h };
					app->cell_tok = xrealloc(app->cell_tok,
								 (size_t)(cv.w * cv.h > 0 ? cv.w * cv.h : 1) * sizeof(int32_t));
					app->vs.search = app->search[0] ? app->search : NULL;
					app->vs.alt_pick = app->mode == UI_MODE_ALT_PICK;
					ui_text_draw(&cv, app->snap, &app->vs, app->cell_tok);
					break;
				case UI_PANE_KV:
					ui_kv_draw(&cv, app->snap, &app->vs);
					break;
				case UI_PANE_STATS:
					ui_stats_draw(&cv, app->snap, &app->rs);
					break;
				}
			}
		}
		struct ui_view sv = ui_view_of(c, app->lay.status);
		draw_status(app, &sv);
		struct ui_view cl = ui_view_of(c, app->lay.cmdline);
		draw_hints(app, &cl, &cursor_x);
	}
	flush_canvas(c);
	if (cursor_x >= 0 && !app->lay.too_small) {
		curs_set(1);
		move(app->lay.cmdline.y, cursor_x);
	} else {
		curs_set(0);
	}
	wnoutrefresh(stdscr);
	doupdate();
	app->dirty = 0;
}

// ---- keys

static void finish_line(struct ui_app *app, enum ui_cl_kind kind, char *line)
{
	app->mode = UI_MODE_NORMAL;
	app->dirty |= UI_DIRTY_ALL;
	if (!line)
		return;
	struct ui_job j = { 0 };
	int32_t node, index;
	switch (kind) {
	case UI_CL_COMMAND: {
		int r = ui_run_command(app, line);
		if (r & UI_QUIT)
			app->quit = true;
		break;
	}
	case UI_CL_SEARCH: {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "search %s", line);
		ui_run_command(app, cmd);
		break;
	}
	case UI_CL_PROMPT:
		if (!line[0])
			break;
		j.kind = UI_JOB_PROMPT;
		j.text = line;
		j.flag = app->chat;
		j.n = 1;
		j.steps = app->snap && app->snap->info.max_tokens > 0 ? app->snap->info.max_tokens : 0;
		ui_submit(app, &j);
		break;
	case UI_CL_REPLY:
		if (!line[0])
			break;
		j.kind = UI_JOB_REPLY;
		j.node = app->vs.cursor;
		j.text = line;
		j.steps = app->snap && app->snap->info.max_tokens > 0 ? app->snap->info.max_tokens : 0;
		ui_submit(app, &j);
		break;
	case UI_CL_FORCE:
		if (!line[0] || !ui_cursor_token(app, &node, &index))
			break;
		j.kind = UI_JOB_FORK;
		j.node = node;
		j.index = index;
		j.mode = ENGINE_FORK_TEXT;
		j.text = line;
		j.steps = app->grow_n;
		ui_submit(app, &j);
		break;
	}
	free(line);
}

static void mouse_event(struct ui_app *app)
{
	MEVENT ev;
	if (getmouse(&ev) != OK || app->mode != UI_MODE_NORMAL || app->lay.too_small)
		return;
	int pane = ui_layout_pane_at(&app->lay, ev.x, ev.y);
	if (pane < 0)
		return;
	if (ev.bstate & (BUTTON4_PRESSED | BUTTON5_PRESSED)) {
		bool up = ev.bstate & BUTTON4_PRESSED;
		int saved = app->focus;
		app->focus = pane;
		struct ui_args a = { 0, 0, "", false };
		for (int i = 0; i < 3; i++)
			(up ? ui_act_up : ui_act_down)(app, &a);
		app->focus = saved;
		app->dirty |= UI_DIRTY_ALL;
		return;
	}
	app->focus = pane;
	if (pane == UI_PANE_TREE) {
		int y = ev.y - app->tree_area.y;
		if (y >= 0 && y < app->tree_area.h && app->row_node && app->row_node[y] >= 0)
			ui_select(app, app->row_node[y], false);
	} else if (pane == UI_PANE_TEXT) {
		int x = ev.x - app->text_area.x, y = ev.y - app->text_area.y;
		if (x >= 0 && y >= 0 && x < app->text_area.w && y < app->text_area.h && app->cell_tok) {
			int32_t pos = app->cell_tok[y * app->text_area.w + x];
			if (pos >= 0) {
				app->vs.tok_pos = pos;
				app->follow = false;
			}
		}
	}
	app->dirty |= UI_DIRTY_ALL;
}

static void suspend(struct ui_app *app)
{
	endwin();
	kill(getpid(), SIGTSTP);
	/* continued */
	refresh();
	clearok(curscr, TRUE);
	app->dirty |= UI_DIRTY_ALL;
}

static void handle_key(struct ui_app *app, uint32_t key)
{
	app->dirty |= UI_DIRTY_ALL;
	if (key == UI_KEY_SPECIAL + KEY_RESIZE)
		return; /* the next draw lays out for the new size */
	if (key == UI_KEY_SPECIAL + KEY_MOUSE) {
		mouse_event(app);
		return;
	}
	if (app->lay.too_small && app->mode != UI_MODE_CONFIRM) {
		/* only quitting makes sense on a tiny terminal */
		if (key == 'q' || key == UI_CTRL('c')) {
			struct ui_args a = { 0, 0, "", false };
			if (ui_act_quit(app, &a) & UI_QUIT)
				app->quit = true;
		}
		return;
	}
	switch (app->mode) {
	case UI_MODE_CMDLINE: {
		char *line;
		enum ui_cl_kind kind = ui_cmdline_kind();
		if (ui_cmdline_key(key, &line))
			finish_line(app, kind, line);
		return;
	}
	case UI_MODE_HELP:
	case UI_MODE_INFO: {
		int *top = app->mode == UI_MODE_HELP ? &app->help_top : &app->info_top;
		int page = app->lay.body.h - 2;
		if (key == 'j' || key == UI_KEY_SPECIAL + KEY_DOWN)
			(*top)++;
		else if (key == 'k' || key == UI_KEY_SPECIAL + KEY_UP)
			(*top)--;
		else if (key == ' ' || key == UI_KEY_SPECIAL + KEY_NPAGE)
			*top += page;
		else if (key == UI_KEY_SPECIAL + KEY_PPAGE)
			*top -= page;
		else if (key == 'g' || key == UI_KEY_SPECIAL + KEY_HOME)
			*top = 0;
		else if (key == 'G' || key == UI_KEY_SPECIAL + KEY_END)
			*top = 1 << 20;
		else if (key == 'q' || key == UI_ESC || key == '?' || key == 'i' || key == '\n' || key == UI_CTRL('c'))
			app->mode = UI_MODE_NORMAL;
		return;
	}
	case UI_MODE_CONFIRM:
		if (app->confirm == UI_CONFIRM_QUIT) {
			if (key == 'y' || key == 'Y') {
				app->mode = UI_MODE_NORMAL;
				struct ui_args a = { 0, 0, "", false };
				if (ui_act_save_quit(app, &a) & UI_QUIT)
					app->quit = true;
			} else if (key == 'n' || key == 'N') {
				app->quit = true;
			} else if (key == UI_ESC || key == 'c' || key == UI_CTRL('c')) {
				app->mode = UI_MODE_NORMAL;
				ui_msg(app, false, "not quitting");
			}
		}
		return;
	case UI_MODE_ALT_PICK:
		app->mode = UI_MODE_NORMAL;
		if (key >= '1' && key <= '9') {
			char rest[8];
			snprintf(rest, sizeof(rest), "%c", (char)key);
			struct ui_args a = { 0, 0, rest, true };
			ui_act_fork_alt(app, &a);
		} else {
			ui_msg(app, false, "no fork");
		}
		return;
	case UI_MODE_NORMAL:
		break;
	}
	if (app->pending) {
		const struct ui_action *ac = app->pending;
		app->pending = NULL;
		if (key == UI_ESC || key == UI_CTRL('c'))
			return;
		struct ui_args a = { app->count, key, "", false };
		app->count = 0;
		if (ac->fn(app, &a) & UI_QUIT)
			app->quit = true;
		return;
	}
	if (key >= '0' && key <= '9' && (app->count > 0 || key != '0')) {
		if (app->count < 100000)
			app->count = app->count * 10 + (int)(key - '0');
		return;
	}
	if (key == UI_CTRL('z')) {
		suspend(app);
		return;
	}
	if (key == '\r')
		key = '\n';
	const struct ui_action *ac = ui_action_by_key(key);
	if (!ac) {
		char kb[32];
		ui_msg(app, true, "%s is not a key here (? lists the keys)", ui_key_name(key, kb, sizeof(kb)));
		app->count = 0;
		return;
	}
	if (ac->flags & UI_ACT_CHAR) {
		app->pending = ac;
		return;
	}
	struct ui_args a = { app->count, 0, "", false };
	app->count = 0;
	if (key != UI_ESC && key != UI_CTRL('c'))
		app->msg[0] = 0;
	if (ac->fn(app, &a) & UI_QUIT)
		app->quit = true;
}

static void read_keys(struct ui_app *app)
{
	wint_t wc;
	int r;
	while ((r = get_wch(&wc)) != ERR) {
		uint32_t key = r == KEY_CODE_YES ? UI_KEY_SPECIAL + (uint32_t)wc : (uint32_t)wc;
		handle_key(app, key);
		if (app->quit)
			return;
	}
}

// ---- files and start-up

static int mkdir_p(const char *path)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static void state_paths(struct ui_app *app)
{
	const char *dir = app->opt.state_dir;
	char buf[512];
	if (!dir) {
		const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
		if (xdg && *xdg)
			snprintf(buf, sizeof(buf), "%s/deftree", xdg);
		else if (home && *home)
			snprintf(buf, sizeof(buf), "%s/.local/state/deftree", home);
		else
			snprintf(buf, sizeof(buf), "/tmp/deftree-%d", (int)getuid());
		dir = buf;
	}
	snprintf(app->state_dir, sizeof(app->state_dir), "%s", dir);
	if (mkdir_p(app->state_dir) != 0) {
		app->state_dir[0] = 0;
		return;
	}
	snprintf(app->autosave_path, sizeof(app->autosave_path), "%s/autosave.json", app->state_dir);
	snprintf(app->history_path, sizeof(app->history_path), "%s/tui_history", app->state_dir);
	/* the previous run's autosave becomes the one :recover opens */
	char prev[700];
	snprintf(prev, sizeof(prev), "%s/autosave.prev.json", app->state_dir);
	if (access(app->autosave_path, R_OK) == 0 && rename(app->autosave_path, prev) == 0)
		app->had_autosave = true;
}

static void drain(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static int make_pipe(int *rd, int *wr)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	}
	*rd = fds[0];
	*wr = fds[1];
	return 0;
}

/* SIGTERM / SIGHUP / SIGINT / SIGQUIT arrived through the signal pipe */
static void handle_signals(struct ui_app *app)
{
	unsigned char b[32];
	ssize_t n;
	while ((n = read(app->sig_rd, b, sizeof(b))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (b[i] == SIGINT) {
				struct ui_args a = { 0, 0, "", false };
				ui_act_cancel(app, &a);
			} else {
				/* the terminal is gone or we are asked to stop: keep the tree, leave */
				app->quit = true;
			}
		}
	}
}

static const char *const ui_settings_local[] = { "grow", "n", "beam", "beam-alpha", "chat", "show-pruned",
						 "boundaries", "entropy", NULL };

const char *const *ui_setting_words(void)
{
	static const char *words[64];
	if (!words[0]) {
		int n = 0;
		for (int i = 0; ui_worker_settings[i] && n < 60; i++)
			words[n++] = ui_worker_settings[i];
		for (int i = 0; ui_settings_local[i] && n < 62; i++)
			words[n++] = ui_settings_local[i];
		words[n] = NULL;
	}
	return words;
}

const char *const *ui_command_words(void)
{
	static const char *words[256];
	if (!words[0]) {
		int n = 0;
		for (int i = 0; i < ui_n_actions && n < 250; i++) {
			words[n++] = ui_actions[i].name;
			if (ui_actions[i].alias)
				words[n++] = ui_actions[i].alias;
		}
		words[n] = NULL;
	}
	return words;
}

int ui_run(const struct ui_options *opt)
{
	struct ui_app *app = xcalloc(1, sizeof(*app));
	app->opt = *opt;
	app->grow_n = opt->grow > 0 ? opt->grow : 32;
	app->sample_n = opt->n_children > 0 ? opt->n_children : 3;
	app->beam_w = opt->beam_width > 0 ? opt->beam_width : 3;
	app->beam_alpha = 1.0f;
	app->chat = opt->chat;
	app->algo_req = -1;
	app->vs.cursor = -1;
	app->vs.show_pruned = true;
	app->follow = true;
	for (int i = 0; i < 26; i++)
		app->marks[i] = -1;
	app->focus = UI_PANE_TREE;
	state_paths(app);
	if (make_pipe(&app->wake_rd, &app->wake_wr) || make_pipe(&app->sig_rd, &app->sig_wr)) {
		fprintf(stderr, "deftree: cannot create pipes: %s\n", strerror(errno));
		free(app);
		return 1;
	}
	install_signals(app->sig_wr);
	if (!term_setup(app)) {
		fprintf(stderr, "deftree: cannot initialise the terminal\n");
		free(app);
		return 1;
	}
	app->utf8 = ui_g->utf8;
	app->canvas = ui_canvas_new(COLS, LINES);
	ui_cmdline_init(app->history_path[0] ? app->history_path : NULL);
	ui_cmdline_set_words(ui_command_words(), ui_setting_words());

	struct ui_worker_params wp = { 0 };
	wp.model_path = opt->model_path;
	wp.n_threads = opt->n_threads;
	wp.engine = opt->engine;
	wp.max_tokens = opt->max_tokens;
	wp.wake_fd = app->wake_wr;
	wp.autosave_path = app->autosave_path[0] ? app->autosave_path : NULL;
	wp.measure_bandwidth = true;
	wp.replay_fps = opt->replay_fps;
	wp.nice = 5;
	app->w = ui_worker_start(&wp);
	if (opt->open) {
		struct ui_job j = { .kind = UI_JOB_OPEN, .path = opt->open };
		ui_worker_submit(app->w, &j);
	}
	if (opt->prompt) {
		struct ui_job j = { .kind = UI_JOB_PROMPT, .text = opt->prompt, .flag = app->chat, .n = 1,
				    .steps = opt->max_tokens };
		ui_worker_submit(app->w, &j);
	}
	if (app->had_autosave && !opt->open && !opt->prompt)
		ui_msg(app, false, "the last session's tree was autosaved: :recover opens it");
	app->dirty = UI_DIRTY_ALL;

	struct ui_run_state last_rs = { 0 };
	while (!app->quit) {
		if (app->dirty)
			draw(app);
		struct pollfd pfd[3] = { { STDIN_FILENO, POLLIN, 0 }, { app->wake_rd, POLLIN, 0 }, { app->sig_rd, POLLIN, 0 } };
		int timeout = app->rs.busy ? 120 : 1000;
		int pr = poll(pfd, 3, timeout);
		if (pr < 0 && errno != EINTR)
			break;
		if (pfd[2].revents & POLLIN)
			handle_signals(app);
		if (pfd[1].revents & POLLIN)
			drain(app->wake_rd);
		struct ui_snap *s = ui_worker_take_snap(app->w);
		if (s)
			apply_snapshot(app, s);
		take_events(app);
		ui_worker_run_state(app->w, &app->rs);
		if (app->rs.busy != last_rs.busy || app->rs.done != last_rs.done || app->rs.paused != last_rs.paused ||
		    app->rs.busy)
			app->dirty |= UI_DIRTY_ALL; /* elapsed time and spinner */
		last_rs = app->rs;
		if (pfd[0].revents & (POLLHUP | POLLERR)) {
			app->quit = true; /* the terminal is gone */
			break;
		}
		read_keys(app);
	}

	/* leave: stop what runs, keep the tree in the autosave, restore the terminal */
	ui_worker_cancel(app->w);
	ui_worker_wait_idle(app->w, 3000);
	struct ui_job j = { .kind = UI_JOB_AUTOSAVE };
	ui_worker_submit(app->w, &j);
	ui_worker_wait_idle(app->w, 5000);
	ui_cmdline_shutdown();
	term_restore();
	ui_worker_stop(app->w);
	ui_snap_free(app->snap);
	ui_canvas_free(app->canvas);
	ui_help_free(app->help);
	free(app->info);
	free(app->vs.fold);
	free(app->row_node);
	free(app->cell_tok);
	close(app->wake_rd);
	close(app->wake_wr);
	/* the signal pipe stays open: a late signal must find it */
	free(app);
	return 0;
}
