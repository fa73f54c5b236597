/*
 * test_ui_keys.c — the action table that keys, help and the command line
 * share: no key bound twice, every name unique and found again, help lists
 * every visible action, key names read as a person types them.
 */
#include "config.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "keys.h"
#include "tap.h"

int main(void)
{
	tap_plan_lazy();
	ok(ui_n_actions > 40, "the table has the playground's actions (%d)", ui_n_actions);

	bool named = true;
	for (int i = 0; i < ui_n_actions; i++) {
		const struct ui_action *a = &ui_actions[i];
		named = named && a->name && a->name[0] && a->help && a->help[0] && a->group && a->fn && a->args;
	}
	ok(named, "every action has a name, a help line, a group and a handler");

	int dup_keys = 0, dup_names = 0;
	for (int i = 0; i < ui_n_actions; i++)
		for (int j = i + 1; j < ui_n_actions; j++) {
			const struct ui_action *a = &ui_actions[i], *b = &ui_actions[j];
			for (int k = 0; k < 3; k++)
				for (int l = 0; l < 3; l++)
					if (a->keys[k] && a->keys[k] == b->keys[l]) {
						diag("key bound twice: %s and %s", a->name, b->name);
						dup_keys++;
					}
			const char *an[2] = { a->name, a->alias }, *bn[2] = { b->name, b->alias };
			for (int k = 0; k < 2; k++)
				for (int l = 0; l < 2; l++)
					if (an[k] && bn[l] && !strcmp(an[k], bn[l])) {
						diag("name used twice: %s", an[k]);
						dup_names++;
					}
		}
	ok(dup_keys == 0, "no key is bound to two actions");
	ok(dup_names == 0, "no command name is used twice");

	bool roundtrip = true;
	for (int i = 0; i < ui_n_actions; i++) {
		const struct ui_action *a = &ui_actions[i];
		roundtrip = roundtrip && ui_action_by_name(a->name, strlen(a->name)) == a;
		if (a->alias)
			roundtrip = roundtrip && ui_action_by_name(a->alias, strlen(a->alias)) == a;
		for (int k = 0; k < 3; k++)
			if (a->keys[k])
				roundtrip = roundtrip && ui_action_by_key(a->keys[k]) == a;
	}
	ok(roundtrip, "every name, alias and key finds its action");
	ok(ui_action_by_name("sav", 3) == NULL && ui_action_by_name("savex", 5) == NULL,
	   "names match whole words only");
	ok(ui_action_by_name("save now", 4) == ui_action_by_name("save", 4), "a name is matched by its length");
	ok(ui_action_by_key('Z' + 1000) == NULL, "an unbound key finds nothing");

	/* the keys the issue asks for */
	const struct {
		uint32_t key;
		const char *name;
	} want[] = {
		{ 'j', "down" }, { UI_KEY_SPECIAL + KEY_DOWN, "down" }, { 'h', "left" }, { '/', "search" },
		{ 'n', "search-next" }, { 'N', "search-prev" }, { 'f', "fork" }, { 's', "sample" }, { 'b', "beam" },
		{ ' ', "pause" }, { UI_CTRL('c'), "cancel" }, { 'd', "prune" }, { 'x', "finish" }, { 'A', "algo" },
		{ '?', "help" }, { ':', "command" }, { 'q', "quit" }, { 'm', "mark" }, { '\'', "jump" },
	};
	bool all = true;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct ui_action *a = ui_action_by_key(want[i].key);
		if (!a || strcmp(a->name, want[i].name)) {
			diag("key %u: expected %s, found %s", want[i].key, want[i].name, a ? a->name : "(none)");
			all = false;
		}
	}
	ok(all, "navigation, grow, edit, attention and quit keys are where the help says");

	char **help = ui_help_lines();
	int listed = 0, visible = 0;
	for (int i = 0; i < ui_n_actions; i++) {
		if (ui_actions[i].flags & UI_ACT_HIDDEN)
			continue;
		visible++;
		char needle[64];
		snprintf(needle, sizeof(needle), ":%s", ui_actions[i].name);
		for (int l = 0; help[l]; l++)
			if (strstr(help[l], needle) && strstr(help[l], ui_actions[i].help)) {
				listed++;
				break;
			}
	}
	ok(listed == visible, "help lists every visible action with its help line (%d of %d)", listed, visible);
	bool has_section = false;
	for (int l = 0; help[l]; l++)
		has_section = has_section || !strcmp(help[l], "#grow");
	ok(has_section, "help has a section per group");
	int fork_line = -1;
	for (int l = 0; help[l]; l++)
		if (strstr(help[l], ":fork [TEXT]"))
			fork_line = l;
	ok(fork_line >= 0 && !strncmp(help[fork_line], "f ", 2), "the fork line starts with its key: '%s'",
	   fork_line >= 0 ? help[fork_line] : "");
	ui_help_free(help);

	char b[32];
	ok(!strcmp(ui_key_name(UI_CTRL('c'), b, sizeof(b)), "C-c"), "C-c reads as C-c");
	ok(!strcmp(ui_key_name(UI_KEY_SPECIAL + KEY_DOWN, b, sizeof(b)), "Down"), "KEY_DOWN reads as Down");
	ok(!strcmp(ui_key_name('\t', b, sizeof(b)), "Tab") && !strcmp(ui_key_name(' ', b, sizeof(b)), "Space"),
	   "Tab and Space by name");
	ok(!strcmp(ui_key_name(UI_KEY_SPECIAL + KEY_F(1), b, sizeof(b)), "F1"), "F1 by name");

	const char *const *cw = ui_command_words();
	bool has_save = false, has_w = false;
	for (int i = 0; cw[i]; i++) {
		has_save = has_save || !strcmp(cw[i], "save");
		has_w = has_w || !strcmp(cw[i], "w");
	}
	ok(has_save && has_w, "completion offers command names and aliases");
	const char *const *sw = ui_setting_words();
	bool has_temp = false, has_grow = false;
	for (int i = 0; sw[i]; i++) {
		has_temp = has_temp || !strcmp(sw[i], "temp");
		has_grow = has_grow || !strcmp(sw[i], "grow");
	}
	ok(has_temp && has_grow, "completion offers engine and UI settings");
	return tap_done();
}
