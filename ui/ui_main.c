/*
 * ui_main.c — `deftree tui` (and `deftree` alone on a terminal): options,
 * locale, then the playground (ui/app.c).
 */
#include "config.h"

#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "common.h"
#include "render.h"
#include "sampler.h"
#include "treeplan.h"

int cmd_tui(int argc, char **argv);

static void usage(FILE *f)
{
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
		"      --no-chat         prompts as raw text, not wrapped in the chat template\n"
		"      --no-color        no colours (as NO_COLOR=1 does)\n"
		"      --ascii           ASCII drawing characters only\n"
		"      --no-mouse        leave mouse clicks to the terminal\n"
		"      --state-dir DIR   history and autosave (default $XDG_STATE_HOME/deftree)\n",
		DT_DEFAULT_MODEL_FILE, dt_ncpu());
}

enum {
	OPT_OPEN = 256,
	OPT_ALGO,
	OPT_BACKEND,
	OPT_MAX_TOKENS,
	OPT_GROW,
	OPT_PAGE,
	OPT_BUDGET,
	OPT_TEMP,
	OPT_TOP_K,
	OPT_TOP_P,
	OPT_MIN_P,
	OPT_SEED,
	OPT_REP,
	OPT_NO_CHAT,
	OPT_NO_COLOR,
	OPT_ASCII,
	OPT_NO_MOUSE,
	OPT_STATE,
	OPT_FPS,
};

static int parse_int(const char *what, const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi) {
		fprintf(stderr, "deftree: %s: expected %ld .. %ld, found '%s'\n", what, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_tui(int argc, char **argv)
{
	struct ui_options o;
	memset(&o, 0, sizeof(o));
	o.engine = engine_default_params();
	o.engine.kv_budget = (size_t)128 << 20;
	o.engine.n_alt = 8;
	backend_choose(NULL, "deftree", NULL, &o.engine.backend, NULL);
	o.max_tokens = 200;
	o.grow = 32;
	o.n_children = 3;
	o.beam_width = 3;
	o.chat = true;
	o.mouse = true;
	o.replay_fps = 20;
	const char *nc = getenv("NO_COLOR");
	o.no_color = nc && *nc;

	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "open", required_argument, NULL, OPT_OPEN },
		{ "algo", required_argument, NULL, OPT_ALGO },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "max-tokens", required_argument, NULL, OPT_MAX_TOKENS },
		{ "grow", required_argument, NULL, OPT_GROW },
		{ "page-size", required_argument, NULL, OPT_PAGE },
		{ "kv-budget", required_argument, NULL, OPT_BUDGET },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "repeat-penalty", required_argument, NULL, OPT_REP },
		{ "no-chat", no_argument, NULL, OPT_NO_CHAT },
		{ "no-color", no_argument, NULL, OPT_NO_COLOR },
		{ "ascii", no_argument, NULL, OPT_ASCII },
		{ "no-mouse", no_argument, NULL, OPT_NO_MOUSE },
		{ "state-dir", required_argument, NULL, OPT_STATE },
		{ "replay-fps", required_argument, NULL, OPT_FPS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[DT_ERR_LEN];
	int opt;
	long v;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "m:p:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'm': o.model_path = optarg; break;
		case 'p': o.prompt = optarg; break;
		case 't': bad = parse_int("--threads", optarg, 1, 1024, &v); o.n_threads = (int32_t)v; break;
		case OPT_OPEN: o.open = optarg; break;
		case OPT_BACKEND:
			bad = backend_choose(optarg, "deftree", NULL, &o.engine.backend, err);
			if (bad)
				fprintf(stderr, "deftree: --backend: %s\n", err);
			break;
		case OPT_ALGO:
			bad = treeplan_algo_parse(optarg, &o.engine.algo, err);
			if (bad)
				fprintf(stderr, "deftree: --algo: %s\n", err);
			break;
		case OPT_MAX_TOKENS:
			bad = parse_int("--max-tokens", optarg, 0, 1 << 24, &v);
			o.max_tokens = (int32_t)v;
			break;
		case OPT_GROW: bad = parse_int("--grow", optarg, 1, 100000, &v); o.grow = (int32_t)v; break;
		case OPT_PAGE:
			bad = parse_int("--page-size", optarg, 1, 4096, &v);
			o.engine.page_size = (int32_t)v;
			break;
		case OPT_BUDGET:
			bad = parse_int("--kv-budget", optarg, 1, 1 << 20, &v);
			o.engine.kv_budget = (size_t)v << 20;
			break;
		case OPT_TEMP:
		case OPT_TOP_K:
		case OPT_TOP_P:
		case OPT_MIN_P:
		case OPT_SEED:
		case OPT_REP: {
			static const char *names[] = { "temp", "top-k", "top-p", "min-p", "seed", "repeat-penalty" };
			bad = sampler_params_set(&o.engine.sampler, names[opt - OPT_TEMP], optarg, err);
			if (bad)
				fprintf(stderr, "deftree: %s\n", err);
			break;
		}
		case OPT_NO_CHAT: o.chat = false; break;
		case OPT_NO_COLOR: o.no_color = true; break;
		case OPT_ASCII: o.ascii = true; break;
		case OPT_NO_MOUSE: o.mouse = false; break;
		case OPT_STATE: o.state_dir = optarg; break;
		case OPT_FPS: bad = parse_int("--replay-fps", optarg, 1, 1000, &v); o.replay_fps = (int32_t)v; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "deftree: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "deftree tui: needs a terminal (try `deftree chat` or `deftree tree` for scripts)\n");
		return 2;
	}
	if (!o.model_path)
		o.model_path = dt_default_model_path();
	setlocale(LC_ALL, "");
	const char *cs = nl_langinfo(CODESET);
	ui_glyphs_set(!o.ascii && cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8")));
	return ui_run(&o);
}
