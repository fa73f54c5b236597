/*
 * ui_main.c — `deftree tui` (and `deftree` alone on a terminal): settings
 * (defaults, then the config file, then the command line: ui/ui_config.h),
 * the theme, the locale, then the playground (ui/app.c).
 */
#include "config.h"

#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "common.h"
#include "render.h"
#include "theme.h"
#include "ui_config.h"

#ifndef DT_PKGDATADIR
#define DT_PKGDATADIR "/usr/local/share/deftree"
#endif

int cmd_tui(int argc, char **argv);

static void usage(FILE *f)
{
	char cfg[1024];
	if (!ui_config_user_path("config", cfg, sizeof(cfg)))
		snprintf(cfg, sizeof(cfg), "$XDG_CONFIG_HOME/deftree/config");
	fprintf(f,
		"usage: deftree [tui] [options]\n"
		"The terminal playground: type a prompt, grow the answer as a tree, fork it anywhere,\n"
		"and watch KV sharing, IO and latency as it happens.  ? inside lists the keys.\n\n"
		"  -m, --model PATH      GGUF model (default: $DEFTREE_MODEL or the bundled\n"
		"                        %s)\n"
		"  -p, --prompt TEXT     start growing this prompt at once\n"
		"      --open FILE       start with a saved session\n"
		"  -t, --threads N       CPU threads (default %d)\n"
		"      --algo A          deft-flatten, deft-node, seq or tree-mask (default deft-flatten)\n"
		"      --backend B       where attention runs: cpu, cuda or auto (default auto: cuda\n"
		"                        when a GPU is there; B inside toggles)\n"
		"      --max-tokens N    tokens an answer grows after a prompt (default 200; 0 = until it ends)\n"
		"      --grow N          tokens per extend / fork / sample (default 32)\n"
		"      --page-size N     KV tokens per page (default 16)\n"
		"      --kv-budget MIB   KV pool size (default 128)\n"
		"      --temp T --top-k K --top-p P --min-p M --seed S --repeat-penalty R\n"
		"                        sampler settings (also :set inside)\n"
		"      --replay-fps N    frames per second of :replay (default 20)\n"
		"      --no-chat         prompts as raw text, not wrapped in the chat template (--chat: wrapped)\n"
		"      --no-color        no colours, as NO_COLOR=1 does (--color: colours even so)\n"
		"      --ascii           ASCII drawing characters only (--no-ascii: UTF-8 when the locale has it)\n"
		"      --no-mouse        leave mouse clicks to the terminal (--mouse: take them)\n"
		"      --theme NAME|FILE colours: default, light (light backgrounds), mono, or a .theme file\n"
		"                        (NAME.theme in $XDG_CONFIG_HOME/deftree/themes is found by NAME)\n"
		"      --state-dir DIR   history and autosave (default $XDG_STATE_HOME/deftree)\n"
		"      --config FILE     settings file (default %s, if it exists)\n"
		"      --no-config       no settings file\n\n"
		"The settings file has `key = value` lines and # comments.  Its keys: model, threads, algo,\n"
		"backend, max-tokens, grow, page-size, kv-budget, temp, top-k, top-p, min-p, seed,\n"
		"repeat-penalty, replay-fps, theme, and chat, color, ascii, mouse (= on or off).  The\n"
		"command line wins over it.  An example with every key and its default:\n"
		"%s/deftree.conf (assets/deftree.conf in the source tree).\n",
		DT_DEFAULT_MODEL_FILE, dt_ncpu(), cfg, DT_PKGDATADIR);
}

int cmd_tui(int argc, char **argv)
{
	struct ui_config c;
	struct ui_config_msgs m = { 0 };
	char err[DT_ERR_LEN];
	ui_config_init(&c);
	int rc = ui_config_args(&c, argc, argv, &m, err);
	if (rc == UI_CONFIG_HELP) {
		usage(stdout);
		ui_config_free(&c);
		return 0;
	}
	if (rc != UI_CONFIG_RUN) {
		ui_config_msgs_print(&m, stderr);
		fprintf(stderr, "deftree: %s\n", err);
		if (rc == UI_CONFIG_USAGE)
			usage(stderr);
		ui_config_free(&c);
		return 2;
	}
	/* the theme: its file's problems are reported like the config's; without colours it is unused */
	if (c.theme && !c.opt.no_color) {
		struct ui_theme t;
		if (ui_theme_load(c.theme, &t, &m, err) < 0)
			ui_config_msg(&m, "%s", err);
		ui_theme_use(&t);
	}
	ui_config_msgs_print(&m, stderr);
	char notice[DT_ERR_LEN + 64];
	if (m.n > 0) {
		snprintf(notice, sizeof(notice), "%s%s", m.kept[0],
			 m.n > 1 ? " (and more: printed when the playground ends)" : "");
		c.opt.notice = notice;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "deftree tui: needs a terminal (try `deftree chat` or `deftree tree` for scripts)\n");
		ui_config_free(&c);
		return 2;
	}
	struct ui_options *o = &c.opt;
	if (!o->model_path)
		o->model_path = dt_default_model_path();
	setlocale(LC_ALL, "");
	const char *cs = nl_langinfo(CODESET);
	ui_glyphs_set(!o->ascii && cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8")));
	rc = ui_run(o);
	ui_config_free(&c);
	return rc;
}
