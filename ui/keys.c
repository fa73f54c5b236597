/*
 * keys.c — the action table, key names and the generated help (design in keys.h).
 */
#include "config.h"

#include "keys.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "common.h"
#include "render.h"

#define K(c) ((uint32_t)(c))
#define S(k) (UI_KEY_SPECIAL + (uint32_t)(k))

/* Order: as help lists them, section by section. */
const struct ui_action ui_actions[] = {
	/* move */
	{ "down", NULL, "", "move", "next node (tree) / next line (text)", { K('j'), S(KEY_DOWN) }, 0, ui_act_down },
	{ "up", NULL, "", "move", "previous node (tree) / previous line (text)", { K('k'), S(KEY_UP) }, 0, ui_act_up },
	{ "left", NULL, "", "move", "parent node (tree) / previous token (text)", { K('h'), S(KEY_LEFT) }, 0, ui_act_left },
	{ "right", NULL, "", "move", "first child (tree) / next token (text)", { K('l'), S(KEY_RIGHT) }, 0, ui_act_right },
	{ "next-sibling", NULL, "", "move", "next sibling", { K('J') }, 0, ui_act_sib_next },
	{ "prev-sibling", NULL, "", "move", "previous sibling", { K('K') }, 0, ui_act_sib_prev },
	{ "top", NULL, "", "move", "first node / first token", { K('g'), S(KEY_HOME) }, 0, ui_act_top },
	{ "bottom", NULL, "", "move", "last node / last token", { K('G'), S(KEY_END) }, 0, ui_act_bottom },
	{ "page-down", NULL, "", "move", "a page down", { S(KEY_NPAGE), UI_CTRL('d') }, 0, ui_act_page_down },
	{ "page-up", NULL, "", "move", "a page up", { S(KEY_PPAGE), UI_CTRL('u') }, 0, ui_act_page_up },
	{ "prev-token", NULL, "", "move", "token cursor one token back (any pane)", { K(',') }, 0, ui_act_tok_prev },
	{ "next-token", NULL, "", "move", "token cursor one token on (any pane)", { K('.') }, 0, ui_act_tok_next },
	{ "focus", NULL, "", "move", "next pane", { K('\t') }, 0, ui_act_focus_next },
	{ "focus-back", NULL, "", "move", "previous pane", { S(KEY_BTAB) }, 0, ui_act_focus_prev },
	{ "node", NULL, "ID", "move", "select node ID", { 0 }, 0, ui_act_node },
	{ "search", NULL, "TEXT", "move", "search the tree's text", { K('/') }, 0, ui_act_search },
	{ "search-next", NULL, "", "move", "next match", { K('n') }, 0, ui_act_search_next },
	{ "search-prev", NULL, "", "move", "previous match", { K('N') }, 0, ui_act_search_prev },
	{ "mark", NULL, "LETTER", "move", "bookmark the node (m then a letter)", { K('m') }, UI_ACT_CHAR, ui_act_mark },
	{ "jump", NULL, "LETTER", "move", "go to a bookmark (' then a letter)", { K('\'') }, UI_ACT_CHAR, ui_act_jump },

	/* grow */
	{ "prompt", NULL, "TEXT", "grow", "new tree from a prompt (chat message on instruct models)", { K('p') }, 0,
	  ui_act_prompt },
	{ "reply", NULL, "TEXT", "grow", "continue the selected branch's chat with a message", { K('r') }, 0,
	  ui_act_reply },
	{ "extend", NULL, "[N]", "grow", "grow the selected branch by N tokens (count or `grow`)", { K('e') }, 0,
	  ui_act_extend },
	{ "extend-all", NULL, "[N]", "grow", "grow every live branch by N tokens", { K('E') }, 0, ui_act_extend_all },
	{ "fork", NULL, "[TEXT]", "grow", "new branch at the token cursor: resampled (or forced TEXT)", { K('f') }, 0,
	  ui_act_fork },
	{ "fork-text", NULL, "TEXT", "grow", "new branch at the token cursor starting with typed text", { K('F') }, 0,
	  ui_act_fork_text },
	{ "fork-alt", NULL, "K", "grow", "new branch at the token cursor with alternative K (a then 1-9)", { K('a') },
	  0, ui_act_fork_alt },
	{ "sample", NULL, "[N]", "grow", "sample N children below the selected node (count or `n`)", { K('s') }, 0,
	  ui_act_sample },
	{ "sample-here", NULL, "[N]", "grow", "sample N branches at the token cursor", { K('S') }, 0, ui_act_sample_here },
	{ "beam", NULL, "[W [STEPS]]", "grow", "beam search of width W from the selected node", { K('b') }, 0, ui_act_beam },
	{ "pause", NULL, "", "grow", "pause / resume generation", { K(' ') }, 0, ui_act_pause },
	{ "cancel", NULL, "", "grow", "stop generation now (within one layer)", { UI_CTRL('c'), UI_ESC }, 0, ui_act_cancel },

	/* edit */
	{ "prune", NULL, "", "edit", "remove the selected subtree (its KV pages return)", { K('d'), S(KEY_DC) }, 0,
	  ui_act_prune },
	{ "finish", NULL, "", "edit", "mark the branch finished (again: live)", { K('x') }, 0, ui_act_finish },

	/* attention */
	{ "algo", NULL, "[NAME]", "attention", "attention algorithm: deft-flatten deft-node seq tree-mask (cycles)",
	  { K('A') }, 0, ui_act_algo },
	{ "backend", NULL, "[cpu|cuda]", "attention", "where attention runs: cpu or cuda (a GPU; toggles)", { K('B') }, 0,
	  ui_act_backend },

	/* view */
	{ "fold", NULL, "", "view", "fold / unfold the selected node", { K('z'), K('\n'), S(KEY_ENTER) }, 0, ui_act_fold },
	{ "fold-more", NULL, "", "view", "fold one level more", { K('-') }, 0, ui_act_fold_more },
	{ "fold-less", NULL, "", "view", "unfold one level more", { K('+'), K('=') }, 0, ui_act_fold_less },
	{ "fold-level", NULL, "N|all", "view", "fold below depth N (all: unfold everything)", { 0 }, 0,
	  ui_act_fold_level },
	{ "color", NULL, "", "view", "colour tokens by probability / by entropy", { K('c') }, 0, ui_act_color },
	{ "boundaries", NULL, "", "view", "show token boundaries", { K('|') }, 0, ui_act_boundaries },
	{ "show-pruned", NULL, "", "view", "show / hide pruned branches", { K('D') }, 0, ui_act_show_pruned },
	{ "explain", NULL, "", "view", "what the focused pane's numbers mean", { K('i') }, 0, ui_act_explain },
	{ "help", NULL, "", "view", "this help", { K('?'), S(KEY_F(1)) }, 0, ui_act_help },
	{ "redraw", NULL, "", "view", "redraw the screen", { UI_CTRL('l') }, 0, ui_act_redraw },
	{ "set", NULL, "[NAME VALUE]", "view", "settings (no arguments: list them)", { 0 }, 0, ui_act_set },

	/* files */
	{ "save", "w", "[FILE]", "files", "save the session (tree, tokens, settings)", { K('w') }, 0, ui_act_save },
	{ "open", "e", "FILE", "files", "open a saved session", { 0 }, 0, ui_act_open },
	{ "export", NULL, "json|dot FILE", "files", "export the tree as JSON (with text, metrics) or DOT", { 0 }, 0,
	  ui_act_export },
	{ "load", NULL, "MODEL.gguf", "files", "load another model (the tree moves over when it can)", { 0 }, 0,
	  ui_act_load },
	{ "replay", NULL, "WORKLOAD [TREE]|stop", "files",
	  "animate a workload shape, IO-only (fewshot:P:B:S or a file of shared/workloads)", { 0 }, 0, ui_act_replay },
	{ "recover", NULL, "", "files", "open the autosaved tree", { 0 }, 0, ui_act_recover },
	{ "command", NULL, "", "files", "command line (Tab completes)", { K(':') }, 0, ui_act_command },
	{ "quit", "q", "", "files", "quit (asks when the tree is not saved)", { K('q') }, 0, ui_act_quit },
	{ "q!", NULL, "", "files", "quit without saving", { 0 }, UI_ACT_HIDDEN, ui_act_quit_force },
	{ "wq", NULL, "", "files", "save and quit", { 0 }, UI_ACT_HIDDEN, ui_act_save_quit },
};

const int ui_n_actions = (int)DT_ARRAY_LEN(ui_actions);

const struct ui_action *ui_action_by_key(uint32_t key)
{
	for (int i = 0; i < ui_n_actions; i++)
		for (int k = 0; k < 3; k++)
			if (ui_actions[i].keys[k] && ui_actions[i].keys[k] == key)
				return &ui_actions[i];
	return NULL;
}

const struct ui_action *ui_action_by_name(const char *name, size_t len)
{
	for (int i = 0; i < ui_n_actions; i++) {
		const struct ui_action *a = &ui_actions[i];
		if (strlen(a->name) == len && !strncmp(a->name, name, len))
			return a;
		if (a->alias && strlen(a->alias) == len && !strncmp(a->alias, name, len))
			return a;
	}
	return NULL;
}

const char *ui_key_name(uint32_t key, char *buf, size_t cap)
{
	if (key >= UI_KEY_SPECIAL) {
		int k = (int)(key - UI_KEY_SPECIAL);
		const char *n = NULL;
		switch (k) {
		case KEY_DOWN: n = "Down"; break;
		case KEY_UP: n = "Up"; break;
		case KEY_LEFT: n = "Left"; break;
		case KEY_RIGHT: n = "Right"; break;
		case KEY_HOME: n = "Home"; break;
		case KEY_END: n = "End"; break;
		case KEY_NPAGE: n = "PgDn"; break;
		case KEY_PPAGE: n = "PgUp"; break;
		case KEY_BTAB: n = "S-Tab"; break;
		case KEY_DC: n = "Del"; break;
		case KEY_ENTER: n = "Enter"; break;
		case KEY_BACKSPACE: n = "BS"; break;
		default:
			if (k >= KEY_F(1) && k <= KEY_F(12)) {
				snprintf(buf, cap, "F%d", k - KEY_F(0));
				return buf;
			}
			snprintf(buf, cap, "key%d", k);
			return buf;
		}
		snprintf(buf, cap, "%s", n);
		return buf;
	}
	if (key == '\t')
		snprintf(buf, cap, "Tab");
	else if (key == '\n' || key == '\r')
		snprintf(buf, cap, "Enter");
	else if (key == UI_ESC)
		snprintf(buf, cap, "Esc");
	else if (key == ' ')
		snprintf(buf, cap, "Space");
	else if (key < 32)
		snprintf(buf, cap, "C-%c", (char)(key + 'a' - 1));
	else {
		char u[8];
		ui_utf8_put(key, u);
		snprintf(buf, cap, "%s", u);
	}
	return buf;
}

const char *ui_action_keys(const struct ui_action *a, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = 0;
	for (int k = 0; k < 3 && a->keys[k]; k++) {
		char kb[32];
		ui_key_name(a->keys[k], kb, sizeof(kb));
		n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? " " : "", kb);
		if (n >= cap)
			break;
	}
	return buf;
}

char **ui_help_lines(void)
{
	int cap = ui_n_actions * 2 + 16, n = 0;
	char **lines = xcalloc((size_t)cap, sizeof(char *));
	const char *group = NULL;
	char buf[512], keys[64];
	lines[n++] = xstrdup("#deftree: grow a token tree, watch its KV sharing, IO and latency");
	lines[n++] = xstrdup("A count typed before a key (5e) is its N.  Every action is also a command: ':name ARGS'.");
	for (int i = 0; i < ui_n_actions; i++) {
		const struct ui_action *a = &ui_actions[i];
		if (a->flags & UI_ACT_HIDDEN)
			continue;
		if (!group || strcmp(group, a->group)) {
			group = a->group;
			snprintf(buf, sizeof(buf), "#%s", group);
			lines[n++] = xstrdup("");
			lines[n++] = xstrdup(buf);
		}
		ui_action_keys(a, keys, sizeof(keys));
		char cmd[64];
		snprintf(cmd, sizeof(cmd), ":%s%s%s%s%s", a->name, a->alias ? " :" : "", a->alias ? a->alias : "",
			 a->args[0] ? " " : "", a->args);
		snprintf(buf, sizeof(buf), "%-12s %-28s %s", keys, cmd, a->help);
		lines[n++] = xstrdup(buf);
	}
	lines[n] = NULL;
	return lines;
}

void ui_help_free(char **lines)
{
	for (int i = 0; lines && lines[i]; i++)
		free(lines[i]);
	free(lines);
}
