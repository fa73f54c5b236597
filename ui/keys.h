/*
 * keys.h — the action table: every key binding and every `:` command.
 *
 * One table (ui/keys.c) lists the actions with their names, argument
 * usage, help line and keys.  Key presses and command lines both end in an
 * action's handler (ui/actions.c); `?` prints the table, and the command
 * line completes its names.  Handlers return reaction flags: UI_HANDLED
 * (the key meant something), UI_REDRAW (state changed: draw), UI_QUIT.
 */
#ifndef DT_UI_KEYS_H
#define DT_UI_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys: Unicode code points (control keys are 1 .. 31), and curses KEY_*
 * codes offset by UI_KEY_SPECIAL. */
#define UI_KEY_SPECIAL 0x200000u
#define UI_CTRL(c) ((uint32_t)((c) & 0x1f))
#define UI_ESC 27u

enum { UI_HANDLED = 1, UI_REDRAW = 2, UI_QUIT = 4 };

struct ui_app;

struct ui_args {
	int count;         /* the count typed before the key (0: none) */
	uint32_t ch;       /* the character after a two-key action (bookmarks) */
	const char *rest;  /* the command line after the name ("" from a key) */
	bool from_cmdline;
};

typedef int (*ui_action_fn)(struct ui_app *app, const struct ui_args *a);

#define UI_ACT_CHAR 1u   /* the key waits for one more character */
#define UI_ACT_HIDDEN 2u /* not listed in help (aliases) */

struct ui_action {
	const char *name;  /* the command (":name") */
	const char *alias; /* a second name, or NULL */
	const char *args;  /* argument usage, "" */
	const char *group; /* help section */
	const char *help;  /* one line */
	uint32_t keys[3];  /* bindings, 0 = none */
	unsigned flags;
	ui_action_fn fn;
};

extern const struct ui_action ui_actions[];
extern const int ui_n_actions;

const struct ui_action *ui_action_by_key(uint32_t key);
const struct ui_action *ui_action_by_name(const char *name, size_t len);
/* "j", "Down", "C-c", "Tab", "F1" ... into buf; returns buf */
const char *ui_key_name(uint32_t key, char *buf, size_t cap);
/* The keys of an action, "j Down" (buf). */
const char *ui_action_keys(const struct ui_action *a, char *buf, size_t cap);

/* Help text generated from the table: lines (malloc'd array of malloc'd
 * strings, NULL-terminated).  A line starting with '#' is a section title. */
char **ui_help_lines(void);
void ui_help_free(char **lines);

#endif
