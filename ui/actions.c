/*
 * actions.c — what every key and command does (the table is in ui/keys.c).
 *
 * Handlers change UI state directly (cursor, folds, modes) and hand
 * everything that touches the engine to the worker as a job; they never
 * wait for it.  A handler called from a key gets the typed count in
 * a->count; from the command line it gets the arguments in a->rest.
 */
#include "config.h"

#include "actions.h"

#include <ctype.h>
#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "common.h"

#define DONE (UI_HANDLED | UI_REDRAW)

// ---- helpers

static const char *skip_ws(const char *s)
{
	while (s && isspace((unsigned char)*s))
		s++;
	return s ? s : "";
}

/* the count, or the first number in rest, or dflt */
static int count_or(const struct ui_args *a, int dflt)
{
	if (a->count > 0)
		return a->count;
	const char *r = skip_ws(a->rest);
	if (*r) {
		char *end;
		long v = strtol(r, &end, 10);
		if (end != r && v > 0 && v < 1000000)
			return (int)v;
	}
	return dflt;
}

static bool need_tree(struct ui_app *app)
{
	if (app->snap && app->snap->has_tree && ui_snap_node(app->snap, app->vs.cursor))
		return true;
	ui_msg(app, true, "no tree yet: press p and type a prompt");
	return false;
}

static const struct ui_snap_node *cur_node(struct ui_app *app)
{
	return ui_snap_node(app->snap, app->vs.cursor);
}

static int32_t path_len(struct ui_app *app)
{
	const struct ui_snap_node *n = cur_node(app);
	return n ? n->pos0 + n->n_tokens : 0;
}

static void set_tok(struct ui_app *app, int32_t pos)
{
	int32_t len = path_len(app);
	if (pos >= len)
		pos = len - 1;
	if (pos < 0)
		pos = 0;
	app->vs.tok_pos = pos;
	app->follow = pos == len - 1;
}

/* visible outline rows (caller frees) */
static struct ui_tree_row *rows_of(struct ui_app *app, int32_t *n)
{
	*n = ui_tree_rows(app->snap, &app->vs, NULL, 0);
	struct ui_tree_row *rows = xmallocarray((size_t)(*n ? *n : 1), sizeof(*rows));
	ui_tree_rows(app->snap, &app->vs, rows, *n);
	return rows;
}

static void move_rows(struct ui_app *app, int delta)
{
	int32_t n;
	struct ui_tree_row *rows = rows_of(app, &n);
	int32_t r = ui_tree_row_of(rows, n, app->vs.cursor);
	if (n > 0) {
		r = r < 0 ? 0 : r + delta;
		if (r < 0)
			r = 0;
		if (r >= n)
			r = n - 1;
		ui_select(app, rows[r].node, false);
		/* a new node: the token cursor goes to its end */
		const struct ui_snap_node *nd = cur_node(app);
		if (nd)
			set_tok(app, nd->pos0 + nd->n_tokens - 1);
	}
	free(rows);
}

/* text pane: the token on the screen row dy rows away from the cursor */
static void move_lines(struct ui_app *app, int dy)
{
	struct ui_rect r = app->text_area;
	int cx = -1, cy = -1;
	for (int y = 0; app->cell_tok && y < r.h && cy < 0; y++)
		for (int x = 0; x < r.w; x++)
			if (app->cell_tok[y * r.w + x] == app->vs.tok_pos) {
				cx = x;
				cy = y;
				break;
			}
	int ty = cy + dy;
	if (cy >= 0 && ty >= 0 && ty < r.h) {
		for (int x = cx; x >= 0; x--)
			if (app->cell_tok[ty * r.w + x] >= 0) {
				set_tok(app, app->cell_tok[ty * r.w + x]);
				return;
			}
		for (int x = cx; x < r.w; x++)
			if (app->cell_tok[ty * r.w + x] >= 0) {
				set_tok(app, app->cell_tok[ty * r.w + x]);
				return;
			}
	}
	/* off screen: about a line of tokens */
	int per_line = r.w > 8 ? r.w / 5 : 2;
	set_tok(app, app->vs.tok_pos + dy * per_line);
}

static bool text_focus(struct ui_app *app)
{
	return app->focus == UI_PANE_TEXT;
}

// ---- move

UI_ACTION(down)
{
	if (!need_tree(app))
		return DONE;
	int n = a->count > 0 ? a->count : 1;
	if (text_focus(app))
		move_lines(app, n);
	else
		move_rows(app, n);
	return DONE;
}

UI_ACTION(up)
{
	if (!need_tree(app))
		return DONE;
	int n = a->count > 0 ? a->count : 1;
	if (text_focus(app))
		move_lines(app, -n);
	else
		move_rows(app, -n);
	return DONE;
}

UI_ACTION(left)
{
	if (!need_tree(app))
		return DONE;
	if (text_focus(app)) {
		set_tok(app, app->vs.tok_pos - (a->count > 0 ? a->count : 1));
		return DONE;
	}
	const struct ui_snap_node *n = cur_node(app);
	if (n && n->parent >= 0)
		ui_select(app, n->parent, true);
	else
		ui_msg(app, false, "the root has no parent");
	return DONE;
}

UI_ACTION(right)
{
	if (!need_tree(app))
		return DONE;
	if (text_focus(app)) {
		set_tok(app, app->vs.tok_pos + (a->count > 0 ? a->count : 1));
		return DONE;
	}
	const struct ui_snap_node *n = cur_node(app);
	int32_t nk = n ? (n->status == TREE_PRUNED || app->vs.show_pruned ? n->n_kids : n->n_kids_live) : 0;
	if (nk == 0) {
		ui_msg(app, false, "#%d has no children", n ? n->id : -1);
		return DONE;
	}
	if (n->id < app->vs.n_fold)
		app->vs.fold[n->id] = 0;
	ui_select(app, app->snap->kids[n->kid], true);
	return DONE;
}

static void sibling(struct ui_app *app, int dir)
{
	const struct ui_snap_node *n = cur_node(app);
	const struct ui_snap_node *p = n ? ui_snap_node(app->snap, n->parent) : NULL;
	if (!p) {
		ui_msg(app, false, "the root has no siblings");
		return;
	}
	int32_t nk = p->status == TREE_PRUNED || app->vs.show_pruned ? p->n_kids : p->n_kids_live;
	for (int32_t k = 0; k < nk; k++)
		if (app->snap->kids[p->kid + k] == n->id) {
			int32_t t = k + dir;
			if (t < 0 || t >= nk) {
				ui_msg(app, false, "no %s sibling", dir > 0 ? "next" : "previous");
				return;
			}
			ui_select(app, app->snap->kids[p->kid + t], true);
			return;
		}
}

UI_ACTION(sib_next)
{
	if (need_tree(app))
		sibling(app, 1);
	return DONE;
}

UI_ACTION(sib_prev)
{
	if (need_tree(app))
		sibling(app, -1);
	return DONE;
}

UI_ACTION(top)
{
	if (!need_tree(app))
		return DONE;
	if (text_focus(app))
		set_tok(app, 0);
	else
		move_rows(app, -(1 << 30));
	return DONE;
}

UI_ACTION(bottom)
{
	if (!need_tree(app))
		return DONE;
	if (text_focus(app))
		set_tok(app, path_len(app) - 1);
	else
		move_rows(app, 1 << 30);
	return DONE;
}

UI_ACTION(page_down)
{
	if (!need_tree(app))
		return DONE;
	int h = (text_focus(app) ? app->text_area.h : app->tree_area.h) - 1;
	if (text_focus(app))
		move_lines(app, h > 1 ? h : 1);
	else
		move_rows(app, h > 1 ? h : 1);
	return DONE;
}

UI_ACTION(page_up)
{
	if (!need_tree(app))
		return DONE;
	int h = (text_focus(app) ? app->text_area.h : app->tree_area.h) - 1;
	if (text_focus(app))
		move_lines(app, -(h > 1 ? h : 1));
	else
		move_rows(app, -(h > 1 ? h : 1));
	return DONE;
}

UI_ACTION(focus_next)
{
	app->focus = (app->focus + 1) % UI_N_PANES;
	return DONE;
}

UI_ACTION(focus_prev)
{
	app->focus = (app->focus + UI_N_PANES - 1) % UI_N_PANES;
	return DONE;
}

UI_ACTION(tok_prev)
{
	if (need_tree(app))
		set_tok(app, app->vs.tok_pos - (a->count > 0 ? a->count : 1));
	return DONE;
}

UI_ACTION(tok_next)
{
	if (need_tree(app))
		set_tok(app, app->vs.tok_pos + (a->count > 0 ? a->count : 1));
	return DONE;
}

UI_ACTION(node)
{
	int id = count_or(a, -1);
	const char *r = skip_ws(a->rest);
	if (!strcmp(r, "0"))
		id = 0;
	if (id < 0 || !ui_snap_node(app->snap, id)) {
		ui_msg(app, true, "node: no node '%s' (ids are shown as #N in the status line)", r);
		return DONE;
	}
	ui_select(app, id, true);
	return DONE;
}

// ---- search

struct match {
	int32_t node, pos;
};

static int32_t find_matches(struct ui_app *app, struct match **out)
{
	*out = NULL;
	const char *q = app->search;
	size_t m = strlen(q);
	if (!m || !app->snap || !app->snap->has_tree)
		return 0;
	struct ui_view_state all = app->vs;
	all.fold = NULL;
	all.n_fold = 0;
	int32_t nr = ui_tree_rows(app->snap, &all, NULL, 0);
	struct ui_tree_row *rows = xmallocarray((size_t)(nr ? nr : 1), sizeof(*rows));
	ui_tree_rows(app->snap, &all, rows, nr);
	int32_t cap = 16, n = 0;
	struct match *ms = xmallocarray((size_t)cap, sizeof(*ms));
	for (int32_t r = 0; r < nr; r++) {
		const struct ui_snap_node *nd = ui_snap_node(app->snap, rows[r].node);
		int32_t *tok_of;
		size_t len;
		char *text = ui_snap_node_text(app->snap, nd->id, &tok_of, &len);
		for (size_t i = 0; i + m <= len; i++) {
			if (strncasecmp(text + i, q, m))
				continue;
			if (n == cap)
				ms = xrealloc(ms, (size_t)(cap *= 2) * sizeof(*ms));
			ms[n++] = (struct match){ nd->id, nd->pos0 + tok_of[i] };
			i += m - 1;
		}
		free(text);
		free(tok_of);
	}
	free(rows);
	*out = ms;
	return n;
}

static void search_step(struct ui_app *app, int dir)
{
	if (!app->search[0]) {
		ui_msg(app, true, "no search yet: / and a text");
		return;
	}
	struct match *ms;
	int32_t n = find_matches(app, &ms);
	if (n == 0) {
		ui_msg(app, true, "'%s' is not in the tree", app->search);
		free(ms);
		return;
	}
	/* the match after (or before) the current one, in outline order */
	int32_t cur = -1;
	for (int32_t i = 0; i < n; i++)
		if (ms[i].node == app->match_node && ms[i].pos == app->match_pos)
			cur = i;
	int32_t next = cur < 0 ? (dir > 0 ? 0 : n - 1) : (cur + dir + n) % n;
	app->match_node = ms[next].node;
	app->match_pos = ms[next].pos;
	ui_select(app, ms[next].node, false);
	app->vs.tok_pos = ms[next].pos;
	app->follow = false;
	ui_msg(app, false, "'%s': match %d of %d", app->search, next + 1, n);
	free(ms);
}

UI_ACTION(search)
{
	const char *r = skip_ws(a->rest);
	if (!a->from_cmdline) {
		app->mode = UI_MODE_CMDLINE;
		ui_cmdline_open(UI_CL_SEARCH, "/");
		return DONE;
	}
	if (!*r) {
		app->search[0] = 0;
		ui_msg(app, false, "search cleared");
		return DONE;
	}
	snprintf(app->search, sizeof(app->search), "%s", r);
	app->match_node = app->match_pos = -1;
	search_step(app, 1);
	return DONE;
}

UI_ACTION(search_next)
{
	search_step(app, 1);
	return DONE;
}

UI_ACTION(search_prev)
{
	search_step(app, -1);
	return DONE;
}

static int letter_of(const struct ui_args *a)
{
	uint32_t c = a->ch;
	if (!c && a->rest)
		c = (uint32_t)(unsigned char)*skip_ws(a->rest);
	if (c >= 'A' && c <= 'Z')
		c += 32;
	return c >= 'a' && c <= 'z' ? (int)(c - 'a') : -1;
}

UI_ACTION(mark)
{
	int l = letter_of(a);
	if (l < 0) {
		ui_msg(app, true, "mark: a letter a-z names the bookmark");
		return DONE;
	}
	if (!need_tree(app))
		return DONE;
	app->marks[l] = app->vs.cursor;
	ui_msg(app, false, "bookmark %c: #%d", 'a' + l, app->vs.cursor);
	return DONE;
}

UI_ACTION(jump)
{
	int l = letter_of(a);
	if (l < 0 || app->marks[l] < 0) {
		ui_msg(app, true, "jump: no bookmark %c", l < 0 ? '?' : 'a' + l);
		return DONE;
	}
	if (!ui_snap_node(app->snap, app->marks[l])) {
		ui_msg(app, true, "bookmark %c: node #%d is gone", 'a' + l, app->marks[l]);
		return DONE;
	}
	ui_select(app, app->marks[l], true);
	return DONE;
}

// ---- grow

static bool need_model(struct ui_app *app)
{
	if (app->snap && app->snap->info.has_model)
		return true;
	ui_msg(app, true, "no model loaded: :load PATH loads one");
	return false;
}

static int64_t prompt_steps(struct ui_app *app)
{
	return app->snap && app->snap->info.max_tokens > 0 ? app->snap->info.max_tokens : 0;
}

UI_ACTION(prompt)
{
	if (!need_model(app))
		return DONE;
	const char *r = skip_ws(a->rest);
	if (!*r) {
		app->mode = UI_MODE_CMDLINE;
		ui_cmdline_open(UI_CL_PROMPT, app->chat && app->snap->info.chat_template ? "chat> " : "prompt> ");
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_PROMPT, .text = r, .flag = app->chat, .n = 1, .steps = prompt_steps(app) };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(reply)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	const struct ui_snap_node *n = cur_node(app);
	if (n->n_kids_live > 0) {
		ui_msg(app, true, "reply: select a leaf (the end of a branch)");
		return DONE;
	}
	const char *r = skip_ws(a->rest);
	if (!*r) {
		app->mode = UI_MODE_CMDLINE;
		ui_cmdline_open(UI_CL_REPLY, "reply> ");
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_REPLY, .node = n->id, .text = r, .steps = prompt_steps(app) };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(extend)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	struct ui_job j = { .kind = UI_JOB_GROW, .node = app->vs.cursor, .steps = count_or(a, app->grow_n) };
	app->follow = true;
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(extend_all)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	struct ui_job j = { .kind = UI_JOB_GROW, .node = -1, .steps = count_or(a, app->grow_n) };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(fork)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	int32_t node, index;
	if (!ui_cursor_token(app, &node, &index))
		return DONE;
	const char *r = skip_ws(a->rest);
	struct ui_job j = { .kind = UI_JOB_FORK, .node = node, .index = index, .steps = app->grow_n };
	j.mode = *r ? ENGINE_FORK_TEXT : ENGINE_FORK_RESAMPLE;
	j.text = *r ? r : NULL;
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(fork_text)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	const char *r = skip_ws(a->rest);
	if (*r) {
		struct ui_args b = *a;
		return ui_act_fork(app, &b);
	}
	app->mode = UI_MODE_CMDLINE;
	ui_cmdline_open(UI_CL_FORCE, "force text> ");
	return DONE;
}

UI_ACTION(fork_alt)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	int32_t node, index;
	if (!ui_cursor_token(app, &node, &index))
		return DONE;
	const struct ui_snap *s = app->snap;
	const struct ui_snap_node *nd = ui_snap_node(s, node);
	const struct ui_snap_tok *t = &s->toks[nd->tok + index];
	const struct ui_snap_alt *alts = s->n_alt ? &s->alts[(nd->tok + index) * s->n_alt] : NULL;
	int32_t n_alt = 0;
	while (alts && n_alt < s->n_alt && alts[n_alt].id >= 0)
		n_alt++;
	if (n_alt == 0) {
		ui_msg(app, true, "token %d has no alternatives (%s)", app->vs.tok_pos,
		       t->flags & UI_TOK_PROMPT ? "a prompt token" : "forced text");
		return DONE;
	}
	const char *r = skip_ws(a->rest);
	if (!a->from_cmdline && !*r) {
		app->mode = UI_MODE_ALT_PICK;
		return DONE;
	}
	int k = count_or(a, 0);
	if (k < 1 || k > n_alt) {
		ui_msg(app, true, "fork-alt: alternative 1 .. %d", n_alt);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_FORK, .node = node, .index = index, .mode = ENGINE_FORK_TOKEN,
			    .token = alts[k - 1].id, .steps = app->grow_n };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(sample)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	const struct ui_snap_node *n = cur_node(app);
	if (n->n_tokens == 0) {
		ui_msg(app, true, "sample: #%d has no tokens yet (it gets its first one on the next step)", n->id);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_SAMPLE, .node = n->id, .index = n->n_tokens, .n = count_or(a, app->sample_n),
			    .steps = app->grow_n };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(sample_here)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	int32_t node, index;
	if (!ui_cursor_token(app, &node, &index))
		return DONE;
	struct ui_job j = { .kind = UI_JOB_SAMPLE, .node = node, .index = index, .n = count_or(a, app->sample_n),
			    .steps = app->grow_n };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(beam)
{
	if (!need_model(app) || !need_tree(app))
		return DONE;
	int width = app->beam_w, steps = app->grow_n;
	if (a->count > 0)
		width = a->count;
	const char *r = skip_ws(a->rest);
	if (*r) {
		int w2 = 0, s2 = 0;
		int got = sscanf(r, "%d %d", &w2, &s2);
		if (got >= 1)
			width = w2;
		if (got >= 2)
			steps = s2;
	}
	if (width < 1 || width > 64 || steps < 1) {
		ui_msg(app, true, "beam: width 1 .. 64 and steps >= 1");
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_BEAM, .node = app->vs.cursor, .n = width, .alpha = app->beam_alpha,
			    .steps = steps };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(pause)
{
	if (!app->rs.busy) {
		ui_msg(app, false, "nothing is running");
		return DONE;
	}
	ui_worker_pause(app->w, !app->rs.paused);
	ui_msg(app, false, app->rs.paused ? "resumed" : "paused after this step (Space resumes)");
	return DONE;
}

UI_ACTION(cancel)
{
	if (app->rs.busy || ui_worker_busy(app->w)) {
		ui_worker_cancel(app->w);
		ui_msg(app, false, "cancelling...");
		return DONE;
	}
	if (app->snap && app->snap->info.replay[0]) {
		struct ui_job j = { .kind = UI_JOB_REPLAY_STOP };
		ui_submit(app, &j);
		return DONE;
	}
	app->msg[0] = 0;
	app->search[0] = 0;
	return DONE;
}

// ---- edit

UI_ACTION(prune)
{
	if (!need_tree(app))
		return DONE;
	const struct ui_snap_node *n = cur_node(app);
	if (n->parent < 0) {
		ui_msg(app, true, "prune: the root holds the prompt (p starts a new tree)");
		return DONE;
	}
	if (n->status == TREE_PRUNED) {
		ui_msg(app, true, "prune: #%d is already pruned", n->id);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_PRUNE, .node = n->id };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(finish)
{
	if (!need_tree(app))
		return DONE;
	const struct ui_snap_node *n = cur_node(app);
	bool leaf = n->n_kids_live == 0;
	struct ui_job j = { .kind = UI_JOB_FINISH, .node = n->id, .flag = !leaf || n->status == TREE_LIVE };
	ui_submit(app, &j);
	return DONE;
}

// ---- attention

UI_ACTION(algo)
{
	const char *r = skip_ws(a->rest);
	enum treeplan_algo al;
	char err[DT_ERR_LEN];
	if (*r) {
		if (treeplan_algo_parse(r, &al, err)) {
			ui_msg(app, true, "algo: %s", err);
			return DONE;
		}
	} else {
		static const enum treeplan_algo cycle[TREEPLAN_N_ALGO] = { TREEPLAN_DEFT_FLATTEN, TREEPLAN_DEFT_NODE,
									   TREEPLAN_SEQ, TREEPLAN_TREE_MASK };
		enum treeplan_algo now = app->algo_req >= 0 ? (enum treeplan_algo)app->algo_req
				       : app->snap ? app->snap->info.algo : TREEPLAN_DEFT_FLATTEN;
		int k = 0;
		while (k < TREEPLAN_N_ALGO && cycle[k] != now)
			k++;
		al = cycle[(k + 1) % TREEPLAN_N_ALGO];
	}
	app->algo_req = (int)al;
	struct ui_job j = { .kind = UI_JOB_ALGO, .n = (int32_t)al };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(backend)
{
	const char *r = skip_ws(a->rest);
	char err[DT_ERR_LEN], why[DT_ERR_LEN];
	enum backend_kind k;
	if (*r) {
		if (backend_kind_parse(r, &k, err)) {
			ui_msg(app, true, "backend: %s", err);
			return DONE;
		}
	} else {
		/* toggle */
		int now = app->snap ? app->snap->info.backend_kind : -1;
		k = now == BACKEND_CUDA ? BACKEND_CPU : BACKEND_CUDA;
	}
	if (!backend_available(k, why)) {
		ui_msg(app, true, "backend %s: %s; attention stays on %s", backend_kind_name(k), why,
		       app->snap && app->snap->info.backend[0] ? app->snap->info.backend : "the cpu");
		return DONE;
	}
	if (app->snap && app->snap->info.backend_kind == (int)k) {
		ui_msg(app, false, "backend: already %s (%s)", backend_kind_name(k), app->snap->info.device);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_BACKEND, .n = (int32_t)k };
	ui_submit(app, &j);
	return DONE;
}

// ---- view

UI_ACTION(fold)
{
	if (!need_tree(app))
		return DONE;
	const struct ui_snap_node *n = cur_node(app);
	int32_t nk = n->status == TREE_PRUNED || app->vs.show_pruned ? n->n_kids : n->n_kids_live;
	if (nk == 0) {
		ui_msg(app, false, "#%d has nothing to fold", n->id);
		return DONE;
	}
	ui_view_state_fold_reserve(&app->vs, app->snap->n_ids);
	app->vs.fold[n->id] = !app->vs.fold[n->id];
	return DONE;
}

static int32_t max_depth(struct ui_app *app)
{
	int32_t d = 0;
	for (int32_t id = 0; app->snap && id < app->snap->n_ids; id++) {
		const struct ui_snap_node *n = ui_snap_node(app->snap, id);
		if (n && n->depth > d)
			d = n->depth;
	}
	return d;
}

/* the deepest level at which nothing is folded */
static int32_t fold_level_now(struct ui_app *app)
{
	int32_t lvl = max_depth(app) + 1;
	for (int32_t id = 0; app->snap && id < app->snap->n_ids; id++)
		if (ui_tree_folded(app->snap, &app->vs, id)) {
			const struct ui_snap_node *n = ui_snap_node(app->snap, id);
			if (n->depth < lvl)
				lvl = n->depth;
		}
	return lvl;
}

static void fold_to(struct ui_app *app, int32_t level)
{
	ui_tree_fold_level(app->snap, &app->vs, level);
	ui_tree_reveal(app->snap, &app->vs, app->vs.cursor);
	if (level < 0)
		ui_msg(app, false, "everything unfolded");
	else
		ui_msg(app, false, "folded below depth %d", level);
}

UI_ACTION(fold_more)
{
	if (!need_tree(app))
		return DONE;
	int32_t l = fold_level_now(app) - 1;
	if (l < 0)
		l = 0;
	fold_to(app, l);
	return DONE;
}

UI_ACTION(fold_less)
{
	if (!need_tree(app))
		return DONE;
	int32_t l = fold_level_now(app) + 1;
	fold_to(app, l > max_depth(app) ? -1 : l);
	return DONE;
}

UI_ACTION(fold_level)
{
	if (!need_tree(app))
		return DONE;
	const char *r = skip_ws(a->rest);
	if (!strcmp(r, "all") || !strcmp(r, "none") || !*r) {
		fold_to(app, -1);
		return DONE;
	}
	char *end;
	long l = strtol(r, &end, 10);
	if (*end || l < 0) {
		ui_msg(app, true, "fold-level: a depth >= 0, or all");
		return DONE;
	}
	fold_to(app, (int32_t)l);
	return DONE;
}

UI_ACTION(color)
{
	app->vs.entropy = !app->vs.entropy;
	ui_msg(app, false, "tokens coloured by %s", app->vs.entropy ? "entropy (bits, from the top-k; green: sure)"
								   : "probability (green: likely, red: unlikely)");
	return DONE;
}

UI_ACTION(boundaries)
{
	app->vs.boundaries = !app->vs.boundaries;
	return DONE;
}

UI_ACTION(show_pruned)
{
	app->vs.show_pruned = !app->vs.show_pruned;
	ui_msg(app, false, "pruned branches %s", app->vs.show_pruned ? "shown" : "hidden");
	const struct ui_snap_node *n = cur_node(app);
	if (n && n->status == TREE_PRUNED && !app->vs.show_pruned) {
		while (n && n->status == TREE_PRUNED)
			n = ui_snap_node(app->snap, n->parent);
		if (n)
			ui_select(app, n->id, true);
	}
	return DONE;
}

UI_ACTION(explain)
{
	char title[64];
	snprintf(title, sizeof(title), "About the %s pane", ui_pane_name((enum ui_pane)app->focus));
	ui_show_info(app, title, ui_pane_explain(app->focus));
	return DONE;
}

UI_ACTION(help)
{
	app->mode = UI_MODE_HELP;
	app->help_top = 0;
	return DONE;
}

UI_ACTION(redraw)
{
	clearok(curscr, TRUE);
	return DONE;
}

static bool parse_on_off(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = false;
	else
		return false;
	return true;
}

UI_ACTION(set)
{
	const char *r = skip_ws(a->rest);
	char name[64] = "", value[256] = "";
	if (!*r) {
		char buf[2048];
		const struct ui_snap_info *in = app->snap ? &app->snap->info : NULL;
		char sp[256] = "";
		if (in)
			sampler_params_describe(&in->sampler, sp, sizeof(sp));
		snprintf(buf, sizeof(buf),
			 "sampler: %s\n"
			 "max-tokens %d (steps an answer grows after a prompt or a reply; 0: until it ends)\n"
			 "page-size %d tokens, kv-budget %zu MiB (changing either rebuilds the pool; the tree moves over)\n"
			 "grow %d (tokens per e, E, f, a, s)   n %d (branches of s, S)   beam %d, beam-alpha %.2f\n"
			 "chat %s   show-pruned %s   boundaries %s   entropy %s\n"
			 "\n:set NAME VALUE changes one, e.g. :set temp 0.2 or :set top-k 0",
			 sp, in ? in->max_tokens : 0, in ? in->page_size : 0, in ? in->kv_budget >> 20 : (size_t)0,
			 app->grow_n, app->sample_n, app->beam_w, (double)app->beam_alpha, app->chat ? "on" : "off",
			 app->vs.show_pruned ? "on" : "off", app->vs.boundaries ? "on" : "off",
			 app->vs.entropy ? "on" : "off");
		ui_show_info(app, "Settings", buf);
		return DONE;
	}
	if (sscanf(r, "%63s %255[^\n]", name, value) < 2) {
		ui_msg(app, true, "set: NAME VALUE (Tab lists the names)");
		return DONE;
	}
	long v;
	char *end;
	bool b;
	if (!strcmp(name, "grow") || !strcmp(name, "n") || !strcmp(name, "beam")) {
		v = strtol(value, &end, 10);
		if (*end || v < 1 || v > (strcmp(name, "grow") ? 64 : 100000)) {
			ui_msg(app, true, "set %s: a number from 1 (found '%s')", name, value);
			return DONE;
		}
		*(!strcmp(name, "grow") ? &app->grow_n : !strcmp(name, "n") ? &app->sample_n : &app->beam_w) = (int32_t)v;
		ui_msg(app, false, "%s = %ld", name, v);
		return DONE;
	}
	if (!strcmp(name, "beam-alpha")) {
		double x = strtod(value, &end);
		if (*end || !(x >= 0 && x <= 10)) {
			ui_msg(app, true, "set beam-alpha: 0 .. 10 (found '%s')", value);
			return DONE;
		}
		app->beam_alpha = (float)x;
		ui_msg(app, false, "beam-alpha = %g", x);
		return DONE;
	}
	if (!strcmp(name, "chat") || !strcmp(name, "show-pruned") || !strcmp(name, "boundaries") ||
	    !strcmp(name, "entropy")) {
		if (!parse_on_off(value, &b)) {
			ui_msg(app, true, "set %s: on or off (found '%s')", name, value);
			return DONE;
		}
		if (!strcmp(name, "chat"))
			app->chat = b;
		else if (!strcmp(name, "show-pruned"))
			app->vs.show_pruned = b;
		else if (!strcmp(name, "boundaries"))
			app->vs.boundaries = b;
		else
			app->vs.entropy = b;
		ui_msg(app, false, "%s = %s", name, b ? "on" : "off");
		return DONE;
	}
	bool known = false;
	for (int i = 0; ui_worker_settings[i]; i++)
		known = known || !strcmp(ui_worker_settings[i], name);
	if (!known) {
		ui_msg(app, true, "set: unknown setting '%s' (Tab lists them)", name);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_SET, .text = name, .path = value };
	ui_submit(app, &j);
	return DONE;
}

// ---- files

static const char *default_session(struct ui_app *app)
{
	return app->session_path[0] ? app->session_path : "deftree-session.json";
}

UI_ACTION(save)
{
	if (!need_tree(app))
		return DONE;
	const char *r = skip_ws(a->rest);
	struct ui_job j = { .kind = UI_JOB_SAVE, .path = *r ? r : default_session(app) };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(open)
{
	const char *r = skip_ws(a->rest);
	if (!*r) {
		app->mode = UI_MODE_CMDLINE;
		ui_cmdline_open(UI_CL_COMMAND, ":");
		ui_cmdline_insert("open ");
		return DONE;
	}
	if (!need_model(app))
		return DONE;
	struct ui_job j = { .kind = UI_JOB_OPEN, .path = r };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(export)
{
	const char *r = skip_ws(a->rest);
	char fmt[16] = "", path[512] = "";
	if (sscanf(r, "%15s %511[^\n]", fmt, path) < 2 || (strcmp(fmt, "json") && strcmp(fmt, "dot"))) {
		ui_msg(app, true, "export: json FILE or dot FILE");
		return DONE;
	}
	if (!need_tree(app))
		return DONE;
	struct ui_job j = { .kind = UI_JOB_EXPORT, .text = fmt, .path = path };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(load)
{
	const char *r = skip_ws(a->rest);
	if (!*r) {
		ui_msg(app, true, "load: a GGUF file (:load models/x.gguf)");
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_LOAD_MODEL, .path = r };
	ui_submit(app, &j);
	ui_msg(app, false, "loading %s ...", r);
	return DONE;
}

UI_ACTION(replay)
{
	const char *r = skip_ws(a->rest);
	if (!*r) {
		ui_msg(app, true, "replay: WORKLOAD.json [TREE], fewshot:P:B:S, or stop");
		return DONE;
	}
	if (!strcmp(r, "stop")) {
		struct ui_job j = { .kind = UI_JOB_REPLAY_STOP };
		ui_worker_cancel(app->w);
		ui_submit(app, &j);
		return DONE;
	}
	char path[512] = "";
	int index = 0;
	if (sscanf(r, "%511s %d", path, &index) < 1 || index < 0) {
		ui_msg(app, true, "replay: WORKLOAD.json [TREE]");
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_REPLAY, .path = path, .n = index };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(recover)
{
	char prev[700];
	snprintf(prev, sizeof(prev), "%s/autosave.prev.json", app->state_dir);
	if (!app->state_dir[0] || access(prev, R_OK) != 0) {
		ui_msg(app, true, "recover: no autosaved tree (%s)", prev);
		return DONE;
	}
	struct ui_job j = { .kind = UI_JOB_OPEN, .path = prev };
	ui_submit(app, &j);
	return DONE;
}

UI_ACTION(quit)
{
	if (app->snap && app->snap->info.unsaved && app->snap->has_tree) {
		app->mode = UI_MODE_CONFIRM;
		app->confirm = UI_CONFIRM_QUIT;
		snprintf(app->confirm_q, sizeof(app->confirm_q),
			 "The tree is not saved. Save it to %.160s and quit? y: save and quit, n: quit, Esc: stay",
			 default_session(app));
		return DONE;
	}
	return UI_QUIT;
}

UI_ACTION(quit_force)
{
	return UI_QUIT;
}

UI_ACTION(save_quit)
{
	if (!app->snap || !app->snap->has_tree)
		return UI_QUIT;
	ui_worker_cancel(app->w);
	ui_worker_wait_idle(app->w, 3000);
	struct ui_job j = { .kind = UI_JOB_SAVE, .path = default_session(app) };
	ui_worker_submit(app->w, &j);
	ui_worker_wait_idle(app->w, 10000);
	return UI_QUIT;
}

UI_ACTION(command)
{
	app->mode = UI_MODE_CMDLINE;
	ui_cmdline_open(UI_CL_COMMAND, ":");
	return DONE;
}

// ---- the command line

int ui_run_command(struct ui_app *app, const char *line)
{
	const char *p = skip_ws(line);
	if (*p == ':')
		p++;
	if (!*p)
		return DONE;
	size_t n = 0;
	while (p[n] && !isspace((unsigned char)p[n]))
		n++;
	const struct ui_action *ac = ui_action_by_name(p, n);
	if (!ac) {
		ui_msg(app, true, "unknown command '%.*s' (Tab completes, :help lists them)", (int)n, p);
		return DONE;
	}
	struct ui_args a = { 0, 0, skip_ws(p + n), true };
	return ac->fn(app, &a);
}
