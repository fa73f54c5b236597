/*
 * ui_config.h — the playground's config file, and the one place where an
 * option's name and value become a setting.
 *
 * Settings come from three places, later ones winning: the defaults
 * (ui_config_init), the config file ($XDG_CONFIG_HOME/deftree/config, or
 * ~/.config/deftree/config, or --config FILE), then the command line.  The
 * file and the command line go through the same ui_config_set(): a config
 * key is a long option of `deftree tui` (model, algo, temp, ...), and the
 * on/off keys (chat, color, ascii, mouse) are the --no-chat style flags.
 *
 * File format (config files and theme files alike, ui_config_parse):
 *
 *     # a comment
 *     key = value     # a '#' after a blank starts a comment too
 *
 * Files are untrusted: every problem becomes one message
 * "FILE:LINE: what is wrong (expected ...)" in a ui_config_msgs, the line is
 * skipped and the rest applies.  A file that is not a regular file, larger
 * than UI_CONFIG_MAX_BYTES or binary is refused whole with one message.
 */
#ifndef DT_UI_UI_CONFIG_H
#define DT_UI_UI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "app.h"
#include "common.h"

#define UI_CONFIG_MAX_BYTES (256 * 1024) /* larger config / theme files are refused */
#define UI_CONFIG_MAX_LINE 1024          /* bytes in one line, '\n' excluded */
#define UI_CONFIG_MSGS_KEPT 5            /* messages kept for printing; the rest are counted */
#define UI_CONFIG_CLIP 64                /* bytes of a value quoted in a message, with its NUL */

// ---- messages

struct ui_config_msgs {
	int n;                                        /* messages reported, all of them */
	char kept[UI_CONFIG_MSGS_KEPT][DT_ERR_LEN];   /* the first UI_CONFIG_MSGS_KEPT */
};

void ui_config_msg(struct ui_config_msgs *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s, or its first bytes + "..." in buf (UI_CONFIG_CLIP bytes) when longer,
 * cut on a UTF-8 character boundary: for quoting values in messages. */
const char *ui_config_clip(const char *s, char *buf);
/* The kept messages, one a line, then "... and N more" when some were not kept. */
void ui_config_msgs_print(const struct ui_config_msgs *m, FILE *f);

// ---- key = value files

/* Called for each `key = value` line, key and value trimmed and non-empty;
 * returns 0, or -1 with a message in err (DT_ERR_LEN) that the parser
 * prefixes with "NAME:LINE: ". */
typedef int (*ui_config_entry_fn)(void *ctx, const char *key, const char *value, char *err);

/* Parses n bytes of text (name is the file name in messages).  Returns the
 * number of entries applied. */
int ui_config_parse(const char *name, const char *text, size_t n, ui_config_entry_fn fn, void *ctx,
		    struct ui_config_msgs *m);
/* Reads path and parses it.  Returns the entries applied (>= 0), DT_ERR_IO
 * with "PATH: why" in err when the file cannot be opened (*missing tells
 * whether it does not exist; may be NULL), or DT_ERR_FORMAT with err when it
 * is refused whole (a directory, a device, too large, binary). */
int ui_config_read(const char *path, ui_config_entry_fn fn, void *ctx, struct ui_config_msgs *m, bool *missing,
		   char *err);

/* The word of words (NULL-terminated) nearest to s, at most 2 edits away
 * ('_' counts as '-'), for "did you mean" hints; NULL when none is. */
const char *ui_config_nearest(const char *s, const char *const *words);

// ---- the playground's settings

struct ui_config {
	struct ui_options opt; /* what ui_run() gets */
	char *model;           /* owned copy behind opt.model_path once set here (NULL: the default) */
	char *theme;           /* theme name or path (NULL: the built-in default) */
};

/* The keys a config file takes (the long options of `deftree tui`), NULL-terminated. */
extern const char *const ui_config_keys[];

/* The defaults of `deftree tui` (NO_COLOR read here). */
void ui_config_init(struct ui_config *c);
void ui_config_free(struct ui_config *c);
/* Applies one setting: key is one of ui_config_keys, value as on the command
 * line (on/off for chat, color, ascii, mouse; "~/" expanded for model and
 * theme).  0, or -1 with "KEY: what is wrong (expected ...)" in err; c is
 * unchanged then. */
int ui_config_set(struct ui_config *c, const char *key, const char *value, char *err);
/* ui_config_set() as a ui_config_parse() callback (ctx: the struct ui_config). */
int ui_config_entry_set(void *ctx, const char *key, const char *value, char *err);
/* $XDG_CONFIG_HOME/deftree/NAME, else $HOME/.config/deftree/NAME, into buf;
 * false when neither variable is set (or the path does not fit). */
bool ui_config_user_path(const char *name, char *buf, size_t cap);
/* Applies a config file to c.  Line problems go to m.  Returns 0 (a missing
 * file counts as read when !must_exist), or -1 with err when the file cannot
 * be read or is refused whole. */
int ui_config_load(struct ui_config *c, const char *path, bool must_exist, struct ui_config_msgs *m, char *err);


enum ui_config_args_rc {
	UI_CONFIG_RUN = 0, /* settings complete: start */
	UI_CONFIG_HELP,    /* --help was asked for */
	UI_CONFIG_USAGE,   /* an unknown option or a stray argument (err says which): show the usage */
	UI_CONFIG_ERROR,   /* a bad value, or --config FILE cannot be read (err says what) */
};
/* The start-up of `deftree tui`: the config file (--config FILE, else the
 * user's unless --no-config), then the options of argv (getopt_long, which
 * may permute argv; --prompt, --open and --state-dir point into argv).
 * Config file problems go to m; returns enum ui_config_args_rc, with the
 * message in err unless RUN or HELP. */
int ui_config_args(struct ui_config *c, int argc, char **argv, struct ui_config_msgs *m, char *err);

#endif
