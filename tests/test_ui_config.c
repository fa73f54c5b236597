/*
 * test_ui_config.c — the playground's config file and themes (ui/ui_config.c,
 * ui/theme.c).
 *
 * A file with every key applies; the command line wins over it; each kind of
 * bad line gives one "FILE:LINE: ..." message while the other lines apply;
 * files refused whole (directory, FIFO, too large, binary); random junk and
 * random mutations of a good file never crash and leave settings in range;
 * theme lines, theme files and the built-in themes; the shipped
 * assets/themes/NAME.theme equal the built-in tables and assets/deftree.conf
 * lists every key with its true default.  Fixtures live under tap_tmpdir();
 * XDG_CONFIG_HOME and HOME point there, so the user's own files play no part.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "theme.h"
#include "ui_config.h"

static char tmp[256];

static const char *write_file(const char *name, const char *text, size_t n)
{
	static char path[8][512];
	static int k;
	char *p = path[k++ % 8];
	snprintf(p, 512, "%s/%s", tmp, name);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0) {
		printf("Bail out! cannot write %s: %s\n", p, strerror(errno));
		exit(1);
	}
	return p;
}

static const char *write_text(const char *name, const char *text)
{
	return write_file(name, text, strlen(text));
}

static bool feq(float a, double b)
{
	return fabs((double)a - b) < 1e-6;
}

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* the printed messages (malloc'd) */
static char *printed(const struct ui_config_msgs *m)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	ui_config_msgs_print(m, f);
	fclose(f);
	return buf;
}

/* settings inside their documented ranges */
static bool sane(const struct ui_config *c, char *why, size_t cap)
{
	const struct ui_options *o = &c->opt;
	const struct sampler_params *s = &o->engine.sampler;
	if (o->grow < 1 || o->grow > 100000 || o->max_tokens < 0 || o->max_tokens > (1 << 24))
		return snprintf(why, cap, "grow %d max-tokens %d", o->grow, o->max_tokens), false;
	if (o->engine.page_size < 1 || o->engine.page_size > 4096 || o->engine.kv_budget < ((size_t)1 << 20) ||
	    o->engine.kv_budget > ((size_t)1 << 40))
		return snprintf(why, cap, "page-size %d kv-budget %zu", o->engine.page_size, o->engine.kv_budget), false;
	if (o->replay_fps < 1 || o->replay_fps > 1000 || o->n_threads < 0 || o->n_threads > 1024)
		return snprintf(why, cap, "replay-fps %d threads %d", o->replay_fps, o->n_threads), false;
	if ((int)o->engine.algo < 0 || o->engine.algo >= TREEPLAN_N_ALGO)
		return snprintf(why, cap, "algo %d", (int)o->engine.algo), false;
	if (!(s->temp >= 0) || s->top_k < 0 || !(s->top_p > 0 && s->top_p <= 1) || !(s->min_p >= 0 && s->min_p <= 1) ||
	    !(s->repeat_penalty > 0))
		return snprintf(why, cap, "sampler out of range"), false;
	return true;
}

/* the same settings (with_examples: model and threads too) */
static bool same(const struct ui_config *a, const struct ui_config *b, bool with_examples)
{
	const struct ui_options *o = &a->opt, *d = &b->opt;
	const struct sampler_params *x = &o->engine.sampler, *y = &d->engine.sampler;
	bool sampler = x->temp == y->temp && x->top_k == y->top_k && x->top_p == y->top_p && x->min_p == y->min_p &&
		       x->repeat_penalty == y->repeat_penalty && x->repeat_last_n == y->repeat_last_n &&
		       x->seed == y->seed;
	bool examples = o->n_threads == d->n_threads && o->model_path == d->model_path;
	return o->engine.algo == d->engine.algo && o->engine.backend == d->engine.backend &&
	       o->max_tokens == d->max_tokens && o->grow == d->grow && o->engine.page_size == d->engine.page_size &&
	       o->engine.kv_budget == d->engine.kv_budget && o->chat == d->chat && o->no_color == d->no_color &&
	       o->ascii == d->ascii && o->mouse == d->mouse && o->replay_fps == d->replay_fps && sampler &&
	       (!with_examples || (examples && !a->theme == !b->theme));
}

static bool theme_eq(const struct ui_theme *a, const struct ui_theme *b, char *why, size_t cap)
{
	for (int s = 0; s < UI_S_N; s++) {
		const struct ui_theme_style *x = &a->s[s], *y = &b->s[s];
		if (x->fg256 != y->fg256 || x->bg256 != y->bg256 || x->fg8 != y->fg8 || x->bg8 != y->bg8 ||
		    x->attrs != y->attrs) {
			snprintf(why, cap, "%s: %d %d %d %d %#x vs %d %d %d %d %#x", ui_theme_style_name((enum ui_style)s),
				 x->fg256, x->bg256, x->fg8, x->bg8, x->attrs, y->fg256, y->bg256, y->fg8, y->bg8, y->attrs);
			return false;
		}
	}
	snprintf(why, cap, "equal");
	return true;
}

// ---- a good file

static void test_valid(void)
{
	struct ui_config c;
	struct ui_config_msgs m = { 0 };
	char err[DT_ERR_LEN] = "";
	ui_config_init(&c);
	ok(c.opt.chat && c.opt.mouse && !c.opt.ascii && !c.opt.no_color && c.opt.grow == 32 && c.opt.max_tokens == 200 &&
		   c.opt.engine.kv_budget == ((size_t)128 << 20) && c.opt.replay_fps == 20 && !c.theme && !c.opt.model_path,
	   "defaults: chat, mouse, colours on, grow 32, max-tokens 200, kv-budget 128 MiB, no model or theme set");

	const char *path = write_text("all.conf",
				      "\xef\xbb\xbf# every key, with a BOM, CRLF, tabs and comments\n"
				      "model = ~/models/x.gguf\n"
				      "algo=seq\n"
				      "\tbackend =\tcpu\r\n"
				      "max-tokens = 50   # trailing comment\n"
				      "\n"
				      "grow = 7\n"
				      "page-size = 32\n"
				      "kv-budget = 64\n"
				      "temp = 0.5\n"
				      "top-k = 10\n"
				      "top-p = 0.9\n"
				      "min-p = 0.1\n"
				      "seed = 0x2a\n"
				      "repeat-penalty = 1.1\n"
				      "chat = off\n"
				      "color = OFF\n"
				      "ascii = yes\n"
				      "mouse = false\n"
				      "replay-fps = 5\n"
				      "threads = 3\n"
				      "theme = light\n"
				      "   # an indented comment\n");
	int rc = ui_config_load(&c, path, true, &m, err);
	ok(rc == 0 && m.n == 0, "a file with every key loads without messages (rc %d, %d messages: %s)", rc, m.n,
	   m.n ? m.kept[0] : "");
	const struct ui_options *o = &c.opt;
	char want_model[600];
	snprintf(want_model, sizeof(want_model), "%s/home/models/x.gguf", tmp);
	ok(o->model_path && !strcmp(o->model_path, want_model), "model: ~/ expands to $HOME (found %s)",
	   o->model_path ? o->model_path : "(null)");
	ok(o->engine.algo == TREEPLAN_SEQ && o->engine.backend == BACKEND_CPU, "algo seq, backend cpu");
	ok(o->max_tokens == 50 && o->grow == 7 && o->engine.page_size == 32 &&
		   o->engine.kv_budget == ((size_t)64 << 20) && o->replay_fps == 5 && o->n_threads == 3,
	   "max-tokens 50, grow 7, page-size 32, kv-budget 64 MiB, replay-fps 5, threads 3 (a trailing comment cut)");
	const struct sampler_params *s = &o->engine.sampler;
	ok(feq(s->temp, 0.5) && s->top_k == 10 && feq(s->top_p, 0.9) && feq(s->min_p, 0.1) && s->seed == 42 &&
		   feq(s->repeat_penalty, 1.1),
	   "sampler: temp 0.5, top-k 10, top-p 0.9, min-p 0.1, seed 0x2a = 42, repeat-penalty 1.1");
	ok(!o->chat && o->no_color && o->ascii && !o->mouse, "chat off, color OFF, ascii yes, mouse false");
	ok(c.theme && !strcmp(c.theme, "light"), "theme light");
	ui_config_free(&c);
}

// ---- the command line over the file

static int run_args(struct ui_config *c, struct ui_config_msgs *m, char *err, int argc, const char **args)
{
	char *argv[32];
	DT_ASSERT(argc < 32);
	for (int i = 0; i < argc; i++)
		argv[i] = (char *)args[i];
	argv[argc] = NULL;
	memset(m, 0, sizeof(*m));
	err[0] = 0;
	ui_config_init(c);
	return ui_config_args(c, argc, argv, m, err);
}

static void test_args(void)
{
	struct ui_config c;
	struct ui_config_msgs m;
	char err[DT_ERR_LEN];
	const char *path = write_text("base.conf", "temp = 0.5\ngrow = 7\nchat = off\nascii = on\nthreads = 3\n"
						   "theme = mono\nmodel = /m/one.gguf\n");
	const char *a1[] = { "deftree", "--config", path, "--temp", "0.9", "--chat", "-t", "2", "--no-ascii",
			     "--theme", "light", "-m", "/m/two.gguf", "-p", "hello" };
	int rc = run_args(&c, &m, err, 15, a1);
	ok(rc == UI_CONFIG_RUN && m.n == 0, "--config FILE then options: runs (rc %d: %s)", rc, err);
	ok(feq(c.opt.engine.sampler.temp, 0.9) && c.opt.chat && !c.opt.ascii && c.opt.n_threads == 2 &&
		   !strcmp(c.theme, "light") && !strcmp(c.opt.model_path, "/m/two.gguf"),
	   "the command line wins: --temp 0.9, --chat, --no-ascii, -t 2, --theme light, -m");
	ok(c.opt.grow == 7 && c.opt.prompt && !strcmp(c.opt.prompt, "hello"),
	   "what the command line leaves alone keeps the file's value (grow 7), -p is taken");
	ui_config_free(&c);

	/* the user's file through XDG_CONFIG_HOME, and --no-config */
	write_text("xdg/deftree/config", "grow = 9\n");
	const char *a2[] = { "deftree", "--max-tokens", "5" };
	rc = run_args(&c, &m, err, 3, a2);
	ok(rc == UI_CONFIG_RUN && c.opt.grow == 9 && c.opt.max_tokens == 5,
	   "$XDG_CONFIG_HOME/deftree/config applies without --config (grow %d)", c.opt.grow);
	ui_config_free(&c);
	const char *a3[] = { "deftree", "--no-config" };
	rc = run_args(&c, &m, err, 2, a3);
	ok(rc == UI_CONFIG_RUN && c.opt.grow == 32, "--no-config skips it (grow %d)", c.opt.grow);
	ui_config_free(&c);

	/* a relative XDG_CONFIG_HOME is ignored: $HOME/.config */
	char home_cfg[600];
	snprintf(home_cfg, sizeof(home_cfg), "%s/xdg", tmp);
	setenv("XDG_CONFIG_HOME", "relative/dir", 1);
	write_text("home/.config/deftree/config", "grow = 13\n");
	rc = run_args(&c, &m, err, 1, a2);
	ok(rc == UI_CONFIG_RUN && c.opt.grow == 13, "a relative XDG_CONFIG_HOME is ignored for ~/.config (grow %d)",
	   c.opt.grow);
	ui_config_free(&c);
	setenv("XDG_CONFIG_HOME", home_cfg, 1);

	/* a missing default file is silent, a missing --config FILE is an error */
	char gone[600];
	snprintf(gone, sizeof(gone), "%s/xdg/deftree/config", tmp);
	unlink(gone);
	rc = run_args(&c, &m, err, 1, a2);
	ok(rc == UI_CONFIG_RUN && m.n == 0, "no user config: no message (rc %d, %d messages)", rc, m.n);
	ui_config_free(&c);
	const char *a4[] = { "deftree", "--config", gone };
	rc = run_args(&c, &m, err, 3, a4);
	ok(rc == UI_CONFIG_ERROR && strstr(err, gone) && strstr(err, "No such file"),
	   "a missing --config FILE is an error naming it (%s)", err);
	ui_config_free(&c);

	/* bad options */
	const char *a5[] = { "deftree", "--temp", "hot" };
	rc = run_args(&c, &m, err, 3, a5);
	ok(rc == UI_CONFIG_ERROR && starts_with(err, "--temp: "), "--temp hot: an error naming --temp (%s)", err);
	ui_config_free(&c);
	const char *a6[] = { "deftree", "--frobnicate" };
	rc = run_args(&c, &m, err, 2, a6);
	ok(rc == UI_CONFIG_USAGE && strstr(err, "--frobnicate"), "an unknown option asks for the usage (%s)", err);
	ui_config_free(&c);
	const char *a7[] = { "deftree", "--grow" };
	rc = run_args(&c, &m, err, 2, a7);
	ok(rc == UI_CONFIG_USAGE && strstr(err, "needs a value"), "--grow without a value (%s)", err);
	ui_config_free(&c);
	const char *a8[] = { "deftree", "--temp", "x", "--help" };
	rc = run_args(&c, &m, err, 4, a8);
	ok(rc == UI_CONFIG_HELP, "--help wins over a bad option");
	ui_config_free(&c);
	const char *a9[] = { "deftree", "--theme", "no-such-theme" };
	rc = run_args(&c, &m, err, 3, a9);
	ok(rc == UI_CONFIG_ERROR && strstr(err, "no-such-theme"), "--theme of no theme is an error (%s)", err);
	ui_config_free(&c);

	/* NO_COLOR, and color = on over it */
	setenv("NO_COLOR", "1", 1);
	rc = run_args(&c, &m, err, 2, a3);
	ok(c.opt.no_color, "NO_COLOR=1: no colours");
	ui_config_free(&c);
	const char *on = write_text("coloron.conf", "color = on\n");
	const char *a10[] = { "deftree", "--config", on };
	rc = run_args(&c, &m, err, 3, a10);
	ok(rc == UI_CONFIG_RUN && !c.opt.no_color, "color = on in the file wins over NO_COLOR (as no-color.org asks)");
	ui_config_free(&c);
	const char *a11[] = { "deftree", "--config", on, "--no-color" };
	rc = run_args(&c, &m, err, 4, a11);
	ok(rc == UI_CONFIG_RUN && c.opt.no_color, "--no-color wins over the file");
	ui_config_free(&c);
	unsetenv("NO_COLOR");
}

// ---- bad lines

static void test_bad_lines(void)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "top_k = 5", "did you mean 'top-k'" },
		{ "frobnicate = 1", "unknown key 'frobnicate' (expected one of model" },
		{ "threads = many", "threads: not an integer" },
		{ "grow = 0", "grow: out of range: '0' (expected an integer 1 .. 100000)" },
		{ "page-size = 99999999999999999999", "page-size: out of range" },
		{ "chat = maybe", "chat: 'maybe' is not on or off (expected on or off)" },
		{ "algo = fast", "algo: attention algorithm \"fast\" (expected seq" },
		{ "backend = tpu", "backend: unknown backend 'tpu' (expected cpu, cuda or auto)" },
		{ "top-p = 2", "top-p: top-p must be in (0, 1]" },
		{ "temp = warm", "temp: not a number (found 'warm')" },
		{ "seed = -1", "seed: expected an unsigned integer" },
		{ "theme = nosuch", "theme: no theme 'nosuch' (expected default, light, mono" },
		{ "theme = ../x/", "theme: theme file '../x/' not found" },
		{ "grow 5", "no '=' in \"grow 5\" (expected key = value)" },
		{ " = 5", "missing key before '='" },
		{ "grow =", "grow: missing value" },
		{ "grow = 5 # = 6", NULL }, /* fine: a comment */
		{ "gr\x01ow = 5", "control character 0x01 in column 3 (expected text)" },
		{ "grow = \x1b[31m5", "control character 0x1b in column 8" },
		{ "model = caf\xe9.gguf", "invalid UTF-8 byte 0xe9 in column 12 (expected UTF-8 text)" },
		{ "model = a\xc2\x9b" "b", "control character U+009B" },
	};
	int n = (int)(sizeof(cases) / sizeof(cases[0]));
	for (int i = 0; i < n; i++) {
		char text[512], name[64];
		snprintf(text, sizeof(text), "max-tokens = 11\n%s\npage-size = 8\n", cases[i].line);
		snprintf(name, sizeof(name), "bad%d.conf", i);
		const char *path = write_text(name, text);
		struct ui_config c;
		struct ui_config_msgs m = { 0 };
		char err[DT_ERR_LEN], prefix[600];
		ui_config_init(&c);
		struct ui_config before = c;
		int rc = ui_config_load(&c, path, true, &m, err);
		bool applied = c.opt.max_tokens == 11 && c.opt.engine.page_size == 8;
		if (!cases[i].want) {
			ok(rc == 0 && m.n == 0 && applied && c.opt.grow == 5, "'%s': fine, no message", cases[i].line);
			ui_config_free(&c);
			continue;
		}
		snprintf(prefix, sizeof(prefix), "%s:2: ", path);
		/* the bad line changed nothing: compare what it could have touched */
		bool unchanged = c.opt.grow == before.opt.grow && c.opt.engine.algo == before.opt.engine.algo &&
				 c.opt.engine.sampler.top_p == before.opt.engine.sampler.top_p &&
				 c.opt.engine.sampler.temp == before.opt.engine.sampler.temp &&
				 c.opt.engine.sampler.seed == before.opt.engine.sampler.seed && c.opt.chat == before.opt.chat &&
				 !c.theme && !c.model;
		ok(rc == 0 && m.n == 1 && starts_with(m.kept[0], prefix) && strstr(m.kept[0], cases[i].want) && applied &&
			   unchanged,
		   "bad line %d: one message '%s:2: ...%s...', the other lines apply, the bad one changes nothing "
		   "(found %d: %s)",
		   i, name, cases[i].want, m.n, m.n ? m.kept[0] : "");
		ui_config_free(&c);
	}

	/* an overlong line, and a long value quoted short */
	size_t big = UI_CONFIG_MAX_LINE + 10;
	char *text = malloc(big + 64);
	int k = snprintf(text, big + 64, "grow = 3\nmodel = ");
	memset(text + k, 'x', big);
	snprintf(text + k + big, 64, "\ntemp = 0.25\n");
	const char *path = write_text("long.conf", text);
	struct ui_config c;
	struct ui_config_msgs m = { 0 };
	char err[DT_ERR_LEN], want[600];
	ui_config_init(&c);
	int rc = ui_config_load(&c, path, true, &m, err);
	snprintf(want, sizeof(want), "%s:2: line too long (expected at most %d bytes, found %zu)", path,
		 UI_CONFIG_MAX_LINE, big + 8);
	ok(rc == 0 && m.n == 1 && !strcmp(m.kept[0], want) && c.opt.grow == 3 && feq(c.opt.engine.sampler.temp, 0.25) &&
		   !c.model,
	   "an overlong line: '%s', the others apply (found %s)", want, m.n ? m.kept[0] : "");
	ui_config_free(&c);
	free(text);

	/* many bad lines: five shown, the rest counted */
	char many[2048] = "";
	for (int i = 0; i < 12; i++)
		strcat(many, "grow = none\n");
	strcat(many, "grow = 4\n");
	path = write_text("many.conf", many);
	memset(&m, 0, sizeof(m));
	ui_config_init(&c);
	ui_config_load(&c, path, true, &m, err);
	char *out = printed(&m);
	int lines = 0;
	for (const char *p = out; *p; p++)
		lines += *p == '\n';
	snprintf(want, sizeof(want), "%s:5: grow", path);
	ok(m.n == 12 && lines == 6 && strstr(out, "... and 7 more\n") && strstr(out, want) && c.opt.grow == 4,
	   "12 bad lines: 5 printed then '... and 7 more', the good line applies (%d messages, %d lines)", m.n, lines);
	free(out);
	ui_config_free(&c);
}

// ---- files refused whole

static void test_refused(void)
{
	struct ui_config c;
	struct ui_config_msgs m = { 0 };
	char err[DT_ERR_LEN], dir[600], fifo[600];
	ui_config_init(&c);

	snprintf(dir, sizeof(dir), "%s/adir", tmp);
	mkdir(dir, 0700);
	int rc = ui_config_load(&c, dir, true, &m, err);
	ok(rc < 0 && strstr(err, "is a directory (expected a text file)") && m.n == 0, "a directory: refused (%s)", err);

	snprintf(fifo, sizeof(fifo), "%s/afifo", tmp);
	if (mkfifo(fifo, 0600) == 0) {
		rc = ui_config_load(&c, fifo, true, &m, err);
		ok(rc < 0 && strstr(err, "not a regular file"), "a FIFO: refused without blocking (%s)", err);
	} else {
		tap_skip("mkfifo: %s", strerror(errno));
	}

	rc = ui_config_load(&c, "/dev/null", true, &m, err);
	ok(rc == 0 && m.n == 0, "/dev/null reads as an empty file");

	size_t big = UI_CONFIG_MAX_BYTES + 1;
	char *text = malloc(big);
	for (size_t i = 0; i < big; i++)
		text[i] = i % 64 == 63 ? '\n' : '#';
	const char *path = write_file("big.conf", text, big);
	rc = ui_config_load(&c, path, true, &m, err);
	ok(rc < 0 && strstr(err, "too large"), "a file over %d bytes: refused (%s)", UI_CONFIG_MAX_BYTES, err);
	free(text);

	/* the user's default config unreadable as a directory: a message, not an exit */
	char xdgcfg[600];
	snprintf(xdgcfg, sizeof(xdgcfg), "%s/xdg/deftree/config", tmp);
	unlink(xdgcfg);
	mkdir(xdgcfg, 0700);
	char *argv[] = { "deftree", "--grow", "6", NULL };
	ui_config_free(&c);
	ui_config_init(&c);
	memset(&m, 0, sizeof(m));
	rc = ui_config_args(&c, 3, argv, &m, err);
	ok(rc == UI_CONFIG_RUN && m.n == 1 && strstr(m.kept[0], "is a directory") && c.opt.grow == 6,
	   "a directory as the user's config: one message, the command line still applies (%s)", m.n ? m.kept[0] : "");
	rmdir(xdgcfg);
	ui_config_free(&c);
}

// ---- random junk

static void test_junk(unsigned seed)
{
	srand(seed);
	diag("junk seed %u", seed);
	char err[DT_ERR_LEN], why[128];

	/* binary bytes with a NUL: refused whole with one message */
	size_t n = 200 + (size_t)(rand() % 2000);
	unsigned char *junk = malloc(n);
	for (size_t i = 0; i < n; i++)
		junk[i] = (unsigned char)rand();
	junk[rand() % (int)n] = 0;
	const char *path = write_file("junk.bin", (const char *)junk, n);
	struct ui_config c;
	struct ui_config_msgs m = { 0 };
	ui_config_init(&c);
	int rc = ui_config_load(&c, path, true, &m, err);
	ok(rc < 0 && strstr(err, "binary data") && strstr(err, "(expected a text file"),
	   "random binary with a NUL: refused as binary (%s)", err);
	ui_config_free(&c);
	free(junk);

	/* random bytes without NULs, and random text: read, no crash, settings in range */
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz-_= \t#\n\r0123456789.~/\x01\x7f\xc3\xa9\xff";
	bool all_sane = true, counted = true;
	for (int iter = 0; iter < 200; iter++) {
		size_t len = (size_t)(rand() % 3000);
		char *t = malloc(len + 1);
		bool text_mode = iter % 2;
		size_t lines = 1;
		for (size_t i = 0; i < len; i++) {
			t[i] = text_mode ? alphabet[rand() % (int)(sizeof(alphabet) - 1)] : (char)(1 + rand() % 255);
			lines += t[i] == '\n';
		}
		path = write_file("junk.txt", t, len);
		memset(&m, 0, sizeof(m));
		ui_config_init(&c);
		rc = ui_config_load(&c, path, true, &m, err);
		if (rc != 0 || !sane(&c, why, sizeof(why)))
			all_sane = false;
		if ((size_t)m.n > lines)
			counted = false;
		for (int i = 0; i < m.n && i < UI_CONFIG_MSGS_KEPT; i++)
			for (const char *p = m.kept[i]; *p; p++)
				if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
					counted = false; /* a message never carries control characters */
		free(t);
		ui_config_free(&c);
	}
	ok(all_sane, "200 random junk files: read, settings stay in range (%s)", all_sane ? "all" : why);
	ok(counted, "... at most one message a line, none with control characters");

	/* random mutations of a good file: the untouched lines still apply */
	static const char good[] = "model = /m/x.gguf\nalgo = deft-node\ngrow = 12\npage-size = 16\nkv-budget = 32\n"
				   "temp = 0.7\ntop-k = 20\ntop-p = 0.8\nmin-p = 0.02\nseed = 7\nchat = off\n"
				   "replay-fps = 30\nthreads = 2\ntheme = light\n";
	int n_lines = 14;
	all_sane = true;
	bool accounted = true;
	for (int iter = 0; iter < 300; iter++) {
		char t[sizeof(good)];
		memcpy(t, good, sizeof(good));
		int flips = 1 + rand() % 3;
		for (int f = 0; f < flips; f++)
			t[rand() % (int)(sizeof(good) - 1)] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
		int t_lines = 0;
		for (size_t i = 0; i + 1 < sizeof(good); i++)
			t_lines += t[i] == '\n';
		memset(&m, 0, sizeof(m));
		ui_config_init(&c);
		int applied = ui_config_parse("mutant", t, sizeof(good) - 1, ui_config_entry_set, &c, &m);
		if (!sane(&c, why, sizeof(why)))
			all_sane = false;
		/* every line either applied, or gave one message, or is blank / a comment now */
		if (applied + m.n > t_lines + 1 || (t_lines == n_lines && applied + m.n < n_lines - flips))
			accounted = false;
		ui_config_free(&c);
	}
	ok(all_sane, "300 mutated good files: settings stay in range (%s)", all_sane ? "all" : why);
	ok(accounted, "... each line applies or gives a message");
}

// ---- themes

static void test_themes(void)
{
	struct ui_theme t, d, l;
	char err[DT_ERR_LEN], why[256];
	ok(ui_theme_builtin("default", &d) && ui_theme_builtin("light", &l) && ui_theme_builtin("mono", &t) &&
		   !ui_theme_builtin("nope", &t),
	   "built-in themes: default, light, mono (and not 'nope')");
	ok(!theme_eq(&d, &l, why, sizeof(why)), "light differs from default");
	bool mono_plain = true;
	for (int s = 0; s < UI_S_N; s++)
		mono_plain &= t.s[s].fg256 == -1 && t.s[s].bg256 == -1 && t.s[s].fg8 == -1 && t.s[s].bg8 == -1;
	ok(mono_plain && t.s[UI_S_CURSOR].attrs == UI_ATTR_REVERSE, "mono: no colours, the cursor reversed");
	ok(d.s[UI_S_TITLE_FOCUS].fg256 == 231 && d.s[UI_S_TITLE_FOCUS].bg256 == 31 &&
		   d.s[UI_S_TITLE_FOCUS].bg8 == 6 && d.s[UI_S_TITLE_FOCUS].attrs == UI_ATTR_BOLD,
	   "default title-focus: 231 on 31, white on cyan, bold (the table as it was)");

	/* style names round-trip */
	bool names = true;
	for (int s = 0; s < UI_S_N; s++) {
		char line[64];
		ui_theme_builtin("default", &t);
		snprintf(line, sizeof(line), "%d %d %d %d underline", s, 255 - s, s % 8, 7 - s % 8);
		const char *nm = ui_theme_style_name((enum ui_style)s);
		names &= nm && ui_theme_set(&t, nm, line, err) == 0 && t.s[s].fg256 == s && t.s[s].bg256 == 255 - s &&
			 t.s[s].fg8 == s % 8 && t.s[s].attrs == UI_ATTR_UNDERLINE;
	}
	ok(names && ui_theme_style_name(UI_S_N) == NULL, "every style name takes a theme line");

	ui_theme_builtin("default", &t);
	ok(ui_theme_set(&t, "p0", "default 17 green black bold,underline,italic", err) == 0 && t.s[UI_S_P0].fg256 == -1 &&
		   t.s[UI_S_P0].bg256 == 17 && t.s[UI_S_P0].fg8 == 2 && t.s[UI_S_P0].bg8 == 0 &&
		   t.s[UI_S_P0].attrs == (UI_ATTR_BOLD | UI_ATTR_UNDERLINE | UI_ATTR_ITALIC),
	   "p0 = default 17 green black bold,underline,italic");
	ok(ui_theme_set(&t, "own3", "1 2 3 4", err) == 0 && t.s[UI_S_OWN3].attrs == 0, "four fields: attrs normal");

	static const struct {
		const char *style, *value, *want;
	} bad[] = {
		{ "title_focus", "1 2 3 4", "unknown style 'title_focus' (did you mean 'title-focus'?)" },
		{ "sparkles", "1 2 3 4", "unknown style 'sparkles' (expected a style such as" },
		{ "p1", "256 -1 -1 -1", "p1: bad fg256 colour '256' (expected -1 .. 255" },
		{ "p1", "1 purple -1 -1", "p1: bad bg256 colour 'purple'" },
		{ "p1", "1 1 8 -1", "p1: bad fg8 colour '8' (expected -1 .. 7" },
		{ "p1", "1 1 1 -2", "p1: bad bg8 colour '-2'" },
		{ "p1", "1 1 1 1 blink", "p1: unknown attribute 'blink' (expected normal, bold" },
		{ "p1", "1 1 1 1 bold,", "p1: unknown attribute ''" },
		{ "p1", "1 1 1", "p1: 3 fields (expected fg256 bg256 fg8 bg8 [attrs])" },
		{ "p1", "1 1 1 1 bold x y", "p1: more than 5 fields" },
	};
	bool all = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ui_theme_builtin("default", &t);
		err[0] = 0;
		int rc = ui_theme_set(&t, bad[i].style, bad[i].value, err);
		if (rc == 0 || !strstr(err, bad[i].want) || !theme_eq(&t, &d, why, sizeof(why))) {
			diag("'%s = %s': expected '%s', found '%s'", bad[i].style, bad[i].value, bad[i].want, err);
			all = false;
		}
	}
	ok(all, "bad theme lines: unknown style, bad colours, bad attribute, field counts; the theme unchanged");

	/* a theme file with good and bad lines, found by name in $XDG_CONFIG_HOME/deftree/themes */
	const char *path = write_text("xdg/deftree/themes/mine.theme", "# mine\n"
									"header = 15 88 white red bold\n"
									"p0 = 300 -1 -1 -1\n"
									"bogus = 1 1 1 1\n"
									"cursor = 0 231 black white reverse\n");
	struct ui_config_msgs m = { 0 };
	char p[600];
	ok(ui_theme_find("mine", p, sizeof(p), err) == 0 && !strcmp(p, path), "'mine' found in the user's themes (%s)", p);
	int rc = ui_theme_load("mine", &t, &m, err);
	char want2[700], want3[700];
	snprintf(want2, sizeof(want2), "%s:3: p0: bad fg256 colour '300'", path);
	snprintf(want3, sizeof(want3), "%s:4: unknown style 'bogus'", path);
	ok(rc == 0 && m.n == 2 && starts_with(m.kept[0], want2) && starts_with(m.kept[1], want3),
	   "theme file: two messages FILE:3 and FILE:4 (found %d: %s | %s)", m.n, m.n > 0 ? m.kept[0] : "",
	   m.n > 1 ? m.kept[1] : "");
	ok(t.s[UI_S_HEADER].fg256 == 15 && t.s[UI_S_HEADER].bg8 == 1 && t.s[UI_S_CURSOR].attrs == UI_ATTR_REVERSE &&
		   t.s[UI_S_P0].fg256 == d.s[UI_S_P0].fg256 && t.s[UI_S_SPARK].fg256 == d.s[UI_S_SPARK].fg256,
	   "... header and cursor applied; p0 (bad) and spark (not listed) keep the default");

	/* a user theme named like a built-in wins over it; a path works too */
	write_text("xdg/deftree/themes/light.theme", "header = 1 2 3 4\n");
	memset(&m, 0, sizeof(m));
	rc = ui_theme_load("light", &t, &m, err);
	ok(rc == 0 && t.s[UI_S_HEADER].fg256 == 1 && t.s[UI_S_P0].fg256 == d.s[UI_S_P0].fg256,
	   "a user light.theme wins over the built-in light, unlisted styles from default");
	snprintf(p, sizeof(p), "%s/xdg/deftree/themes/light.theme", tmp);
	unlink(p);
	memset(&m, 0, sizeof(m));
	rc = ui_theme_load(path, &t, &m, err);
	ok(rc == 0 && m.n == 2 && t.s[UI_S_HEADER].fg256 == 15, "a theme by path");
	ok(ui_theme_load("no-such", &t, &m, err) < 0 && strstr(err, "no theme 'no-such'") &&
		   theme_eq(&t, &d, why, sizeof(why)),
	   "an unknown theme: an error, the default theme (%s)", err);
	ok(ui_theme_find("../../etc/passwd", p, sizeof(p), err) < 0 || strchr(p, '/'),
	   "a name with '/' is a path, not a name under the themes directory");
	ok(ui_theme_find("a b", p, sizeof(p), err) < 0 && strstr(err, "expected letters"), "a bad name (%s)", err);
	snprintf(p, sizeof(p), "%s/xdg/deftree/themes/dir.theme", tmp);
	mkdir(p, 0700);
	ok(ui_theme_load("dir", &t, &m, err) < 0 && strstr(err, "is a directory"), "a directory as a theme (%s)", err);
}

/* the shipped files: assets/themes/NAME.theme equal the built-ins, assets/deftree.conf tells the defaults */
static void test_assets(void)
{
	const char *top = getenv("DT_TOP_SRCDIR");
	if (!top) {
		tap_skip("DT_TOP_SRCDIR not set: the assets are not found");
		return;
	}
	static const char *const names[] = { "default", "light", "mono" };
	char path[1024], err[DT_ERR_LEN], why[256];
	for (int i = 0; i < 3; i++) {
		struct ui_theme file, built;
		struct ui_config_msgs m = { 0 };
		snprintf(path, sizeof(path), "%s/assets/themes/%s.theme", top, names[i]);
		int rc = ui_theme_load(path, &file, &m, err);
		ui_theme_builtin(names[i], &built);
		ok(rc == 0 && m.n == 0, "assets/themes/%s.theme parses without messages (%s)", names[i],
		   rc ? err : m.n ? m.kept[0] : "none");
		ok(theme_eq(&file, &built, why, sizeof(why)), "... and equals the built-in %s (%s)", names[i], why);
	}
	/* default.theme lists every style */
	snprintf(path, sizeof(path), "%s/assets/themes/default.theme", top);
	FILE *f = fopen(path, "r");
	int listed = 0;
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		listed += line[0] != '#' && strchr(line, '=') != NULL;
	if (f)
		fclose(f);
	ok(listed == UI_S_N, "default.theme lists all %d styles (found %d)", UI_S_N, listed);

	/* the example config: silent as shipped; uncommented, the defaults it claims are the real ones */
	snprintf(path, sizeof(path), "%s/assets/deftree.conf", top);
	struct ui_config c, def;
	struct ui_config_msgs m = { 0 };
	ui_config_init(&c);
	ui_config_init(&def);
	int rc = ui_config_load(&c, path, true, &m, err);
	ok(rc == 0 && m.n == 0 && same(&c, &def, true), "assets/deftree.conf as shipped: no messages, no change");
	f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;
	FILE *out = open_memstream(&text, &cap);
	bool seen[32] = { false };
	while (f && fgets(line, sizeof(line), f)) {
		char key[64];
		if (sscanf(line, "# %63[a-z-]", key) == 1 && !strncmp(line + 2 + strlen(key), " = ", 3)) {
			for (int k = 0; ui_config_keys[k]; k++)
				if (!strcmp(ui_config_keys[k], key))
					seen[k] = true;
			fputs(line + 2, out);
		}
	}
	if (f)
		fclose(f);
	fclose(out);
	int missing = 0;
	for (int k = 0; ui_config_keys[k]; k++)
		if (!seen[k]) {
			diag("assets/deftree.conf lacks '%s'", ui_config_keys[k]);
			missing++;
		}
	ok(missing == 0, "assets/deftree.conf lists every key (%d missing)", missing);
	memset(&m, 0, sizeof(m));
	ui_config_parse("deftree.conf uncommented", text, strlen(text), ui_config_entry_set, &c, &m);
	ok(m.n == 0, "uncommented, every line applies (%s)", m.n ? m.kept[0] : "none");
	ok(same(&c, &def, false) && c.theme && !strcmp(c.theme, "default"),
	   "... and its values are the real defaults (all but model and threads, which are examples)");
	free(text);
	ui_config_free(&c);
	ui_config_free(&def);
}

int main(void)
{
	tap_plan_lazy();
	snprintf(tmp, sizeof(tmp), "%s", tap_tmpdir());
	char xdg[600], home[600], path[700];
	snprintf(xdg, sizeof(xdg), "%s/xdg", tmp);
	snprintf(home, sizeof(home), "%s/home", tmp);
	const char *dirs[] = { "xdg", "xdg/deftree", "xdg/deftree/themes", "home", "home/.config",
			       "home/.config/deftree" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp, dirs[i]);
		mkdir(path, 0700);
	}
	setenv("XDG_CONFIG_HOME", xdg, 1);
	setenv("HOME", home, 1);
	unsetenv("NO_COLOR");
	unsigned seed = (unsigned)time(NULL);
	const char *env_seed = getenv("DT_SEED");
	if (env_seed)
		seed = (unsigned)strtoul(env_seed, NULL, 10);

	test_valid();
	test_args();
	test_bad_lines();
	test_refused();
	test_junk(seed);
	test_themes();
	test_assets();
	return tap_done();
}
