/*
 * ui_config.c — the config file reader and ui_config_set() (design in ui_config.h).
 *
 * The reader takes the whole file into memory (at most UI_CONFIG_MAX_BYTES),
 * then walks it line by line.  Each line is checked before anything looks at
 * its meaning: length, control characters, UTF-8; so a message that quotes a
 * value never carries terminal escapes.  Applying a line is the caller's
 * callback: ui_config_set() for config files, the theme's style parser for
 * theme files (ui/theme.c).
 */
#include "config.h"

#include "ui_config.h"

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "backend.h"
#include "render.h"
#include "sampler.h"
#include "theme.h"
#include "treeplan.h"

// ---- messages

void ui_config_msg(struct ui_config_msgs *m, const char *fmt, ...)
{
	if (!m)
		return;
	if (m->n < UI_CONFIG_MSGS_KEPT) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(m->kept[m->n], DT_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	m->n++;
}

void ui_config_msgs_print(const struct ui_config_msgs *m, FILE *f)
{
	int kept = m->n < UI_CONFIG_MSGS_KEPT ? m->n : UI_CONFIG_MSGS_KEPT;
	for (int i = 0; i < kept; i++)
		fprintf(f, "%s\n", m->kept[i]);
	if (m->n > kept)
		fprintf(f, "... and %d more\n", m->n - kept);
}

const char *ui_config_clip(const char *s, char *buf)
{
	size_t n = strlen(s);
	if (n < UI_CONFIG_CLIP)
		return s;
	size_t k = UI_CONFIG_CLIP - 4;
	while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--; /* not inside a UTF-8 sequence */
	memcpy(buf, s, k);
	memcpy(buf + k, "...", 4);
	return buf;
}

// ---- lines

/* Checks one line (n bytes, no '\n'): NULL when it is clean text, else what is wrong. */
static const char *line_problem(const char *s, size_t n, char *why, size_t cap)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\t') {
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			snprintf(why, cap, "control character 0x%02x in column %zu (expected text)", c, i + 1);
			return why;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		int len;
		bool complete;
		uint32_t cp = ui_utf8_next(s + i, n - i, &len, &complete);
		if ((cp == 0xfffd && len == 1) || !complete) {
			snprintf(why, cap, "invalid UTF-8 byte 0x%02x in column %zu (expected UTF-8 text)", c, i + 1);
			return why;
		}
		if (cp < 0xa0) {
			snprintf(why, cap, "control character U+%04X in column %zu (expected text)", (unsigned)cp, i + 1);
			return why;
		}
		i += (size_t)len;
	}
	return NULL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int ui_config_parse(const char *name, const char *text, size_t n, ui_config_entry_fn fn, void *ctx,
		    struct ui_config_msgs *m)
{
	int applied = 0;
	size_t pos = 0;
	if (n >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		pos = 3; /* a UTF-8 byte order mark */
	char *line = xmalloc(UI_CONFIG_MAX_LINE + 1);
	char err[DT_ERR_LEN], why[128], clip[UI_CONFIG_CLIP];
	for (long lineno = 1; pos < n; lineno++) {
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - s) : n - pos;
		pos += len + (nl ? 1 : 0);
		if (len && s[len - 1] == '\r')
			len--;
		if (len > UI_CONFIG_MAX_LINE) {
			ui_config_msg(m, "%s:%ld: line too long (expected at most %d bytes, found %zu)", name, lineno,
				      UI_CONFIG_MAX_LINE, len);
			continue;
		}
		if (line_problem(s, len, why, sizeof(why))) {
			ui_config_msg(m, "%s:%ld: %s", name, lineno, why);
			continue;
		}
		memcpy(line, s, len);
		line[len] = 0;

		/* comments: a '#' at the start, or after a blank */
		char *p = line;
		while (is_blank(*p))
			p++;
		for (char *h = p; (h = strchr(h, '#')) != NULL; h++)
			if (h == p || is_blank(h[-1])) {
				*h = 0;
				break;
			}
		char *end = p + strlen(p);
		while (end > p && is_blank(end[-1]))
			*--end = 0;
		if (!*p)
			continue;

		char *eq = strchr(p, '=');
		if (!eq) {
			ui_config_msg(m, "%s:%ld: no '=' in \"%s\" (expected key = value)", name, lineno, ui_config_clip(p, clip));
			continue;
		}
		char *k_end = eq;
		while (k_end > p && is_blank(k_end[-1]))
			k_end--;
		*k_end = 0;
		char *v = eq + 1;
		while (is_blank(*v))
			v++;
		if (!*p) {
			ui_config_msg(m, "%s:%ld: missing key before '=' (expected key = value)", name, lineno);
			continue;
		}
		if (!*v) {
			const char *k = ui_config_clip(p, clip);
			ui_config_msg(m, "%s:%ld: %s: missing value (expected %s = value)", name, lineno, k, k);
			continue;
		}
		err[0] = 0;
		if (fn(ctx, p, v, err) < 0) {
			ui_config_msg(m, "%s:%ld: %s", name, lineno, err[0] ? err : "bad line");
			continue;
		}
		applied++;
	}
	free(line);
	return applied;
}

int ui_config_read(const char *path, ui_config_entry_fn fn, void *ctx, struct ui_config_msgs *m, bool *missing,
		   char *err)
{
	if (missing)
		*missing = false;
	/* O_NONBLOCK: a FIFO must not hang the start; it is refused below anyway */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (missing)
			*missing = errno == ENOENT || errno == ENOTDIR;
		dt_err(err, "%s: cannot open: %s", path, strerror(errno));
		return DT_ERR_IO;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		dt_err(err, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return DT_ERR_IO;
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
		close(fd); /* /dev/null: an empty file, as `--config /dev/null` means */
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		dt_err(err, "%s: %s (expected a text file)", path,
		       S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
		close(fd);
		return DT_ERR_FORMAT;
	}
	if (st.st_size > UI_CONFIG_MAX_BYTES) {
		dt_err(err, "%s: too large (expected at most %d bytes, found %lld)", path, UI_CONFIG_MAX_BYTES,
		       (long long)st.st_size);
		close(fd);
		return DT_ERR_FORMAT;
	}
	/* read to the end, one byte more than allowed in case it grew */
	char *buf = xmalloc(UI_CONFIG_MAX_BYTES + 1);
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, UI_CONFIG_MAX_BYTES + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			dt_err(err, "%s: cannot read: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return DT_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > UI_CONFIG_MAX_BYTES) {
			dt_err(err, "%s: too large (expected at most %d bytes)", path, UI_CONFIG_MAX_BYTES);
			free(buf);
			close(fd);
			return DT_ERR_FORMAT;
		}
	}
	close(fd);
	const char *nul = memchr(buf, 0, n);
	if (nul) {
		dt_err(err, "%s: binary data, a NUL byte at offset %zu (expected a text file of key = value lines)",
		       path, (size_t)(nul - buf));
		free(buf);
		return DT_ERR_FORMAT;
	}
	int applied = ui_config_parse(path, buf, n, fn, ctx, m);
	free(buf);
	return applied;
}

// ---- settings

const char *const ui_config_keys[] = {
	"model", "algo", "backend", "max-tokens", "grow", "page-size", "kv-budget", "temp", "top-k", "top-p",
	"min-p", "seed", "repeat-penalty", "chat", "color", "ascii", "mouse", "replay-fps", "threads", "theme",
	NULL,
};

void ui_config_init(struct ui_config *c)
{
	memset(c, 0, sizeof(*c));
	struct ui_options *o = &c->opt;
	o->engine = engine_default_params();
	o->engine.kv_budget = (size_t)128 << 20;
	o->engine.n_alt = 8;
	backend_choose(NULL, "deftree", NULL, &o->engine.backend, NULL);
	o->max_tokens = 200;
	o->grow = 32;
	o->n_children = 3;
	o->beam_width = 3;
	o->chat = true;
	o->mouse = true;
	o->replay_fps = 20;
	const char *nc = getenv("NO_COLOR");
	o->no_color = nc && *nc;
}

void ui_config_free(struct ui_config *c)
{
	if (!c)
		return;
	free(c->model);
	free(c->theme);
	c->model = c->theme = NULL;
}

static int parse_long(const char *key, const char *s, long lo, long hi, long *out, char *err)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
	{
		char clip[UI_CONFIG_CLIP];
		return dt_err(err, "%s: %s '%s' (expected an integer %ld .. %ld)", key,
			      !*s || *end ? "not an integer:" : "out of range:", ui_config_clip(s, clip), lo, hi);
	}
	*out = v;
	return 0;
}

static int parse_bool(const char *key, const char *s, bool *out, char *err)
{
	static const char *const yes[] = { "on", "yes", "true", "1" }, *const no[] = { "off", "no", "false", "0" };
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(s, no[i]))
			return *out = false, 0;
	}
	char clip[UI_CONFIG_CLIP];
	return dt_err(err, "%s: '%s' is not on or off (expected on or off)", key, ui_config_clip(s, clip));
}

/* "~/x" -> "$HOME/x" (malloc'd) */
static char *expand_home(const char *s)
{
	const char *home = getenv("HOME");
	if (s[0] != '~' || s[1] != '/' || !home || !*home)
		return xstrdup(s);
	size_t n = strlen(home) + strlen(s);
	char *out = xmalloc(n + 1);
	snprintf(out, n + 1, "%s%s", home, s + 1);
	return out;
}

/* err as "KEY: ..." when the message does not name the key already */
static int key_err(const char *key, char *err)
{
	size_t k = strlen(key);
	if (err && k + 3 < DT_ERR_LEN && (strncmp(err, key, k) || err[k] != ':')) {
		size_t n = strnlen(err, DT_ERR_LEN - 1);
		if (k + 2 + n > DT_ERR_LEN - 1)
			n = DT_ERR_LEN - 1 - k - 2;
		memmove(err + k + 2, err, n);
		memcpy(err, key, k);
		err[k] = ':';
		err[k + 1] = ' ';
		err[k + 2 + n] = 0;
	}
	return -1;
}

const char *ui_config_nearest(const char *s, const char *const *words)
{
	const char *best = NULL;
	int best_d = 3;
	size_t n = strlen(s);
	if (n > 40)
		return NULL;
	for (int i = 0; words[i]; i++) {
		const char *k = words[i];
		size_t m = strlen(k);
		int d[48], prev;
		if (m > 40)
			continue;
		for (size_t j = 0; j <= m; j++)
			d[j] = (int)j;
		for (size_t a = 1; a <= n; a++) {
			prev = d[0];
			d[0] = (int)a;
			for (size_t j = 1; j <= m; j++) {
				char x = s[a - 1] == '_' ? '-' : s[a - 1];
				int sub = prev + (x == k[j - 1] ? 0 : 1);
				int del = d[j] + 1, ins = d[j - 1] + 1;
				prev = d[j];
				d[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
			}
		}
		if (d[m] < best_d) {
			best_d = d[m];
			best = k;
		}
	}
	return best;
}

int ui_config_set(struct ui_config *c, const char *key, const char *value, char *err)
{
	struct ui_options *o = &c->opt;
	long v;
	if (!value || !*value)
		return dt_err(err, "%s: missing value", key);
	if (!strcmp(key, "model")) {
		free(c->model);
		c->model = expand_home(value);
		o->model_path = c->model;
	} else if (!strcmp(key, "theme")) {
		char *t = expand_home(value);
		char path[1024];
		if (ui_theme_find(t, path, sizeof(path), err) < 0) {
			free(t);
			return key_err(key, err);
		}
		free(c->theme);
		c->theme = t;
	} else if (!strcmp(key, "algo")) {
		if (treeplan_algo_parse(value, &o->engine.algo, err))
			return key_err(key, err);
	} else if (!strcmp(key, "backend")) {
		if (backend_choose(value, "deftree", NULL, &o->engine.backend, err))
			return key_err(key, err);
	} else if (!strcmp(key, "threads")) {
		if (parse_long(key, value, 1, 1024, &v, err))
			return -1;
		o->n_threads = (int32_t)v;
	} else if (!strcmp(key, "max-tokens")) {
		if (parse_long(key, value, 0, 1 << 24, &v, err))
			return -1;
		o->max_tokens = (int32_t)v;
	} else if (!strcmp(key, "grow")) {
		if (parse_long(key, value, 1, 100000, &v, err))
			return -1;
		o->grow = (int32_t)v;
	} else if (!strcmp(key, "page-size")) {
		if (parse_long(key, value, 1, 4096, &v, err))
			return -1;
		o->engine.page_size = (int32_t)v;
	} else if (!strcmp(key, "kv-budget")) {
		if (parse_long(key, value, 1, 1 << 20, &v, err))
			return -1;
		o->engine.kv_budget = (size_t)v << 20;
	} else if (!strcmp(key, "replay-fps")) {
		if (parse_long(key, value, 1, 1000, &v, err))
			return -1;
		o->replay_fps = (int32_t)v;
	} else if (!strcmp(key, "temp") || !strcmp(key, "top-k") || !strcmp(key, "top-p") || !strcmp(key, "min-p") ||
		   !strcmp(key, "seed") || !strcmp(key, "repeat-penalty")) {
		if (sampler_params_set(&o->engine.sampler, key, value, err))
			return key_err(key, err);
	} else if (!strcmp(key, "chat") || !strcmp(key, "color") || !strcmp(key, "ascii") || !strcmp(key, "mouse")) {
		bool b = false;
		if (parse_bool(key, value, &b, err))
			return -1;
		if (!strcmp(key, "chat"))
			o->chat = b;
		else if (!strcmp(key, "color"))
			o->no_color = !b;
		else if (!strcmp(key, "ascii"))
			o->ascii = b;
		else
			o->mouse = b;
	} else {
		const char *near = ui_config_nearest(key, ui_config_keys);
		char clip[UI_CONFIG_CLIP];
		key = ui_config_clip(key, clip);
		if (near)
			return dt_err(err, "unknown key '%s' (did you mean '%s'?)", key, near);
		return dt_err(err, "unknown key '%s' (expected one of model, algo, backend, max-tokens, grow, "
				   "page-size, kv-budget, temp, top-k, top-p, min-p, seed, repeat-penalty, chat, color, "
				   "ascii, mouse, replay-fps, threads, theme)", key);
	}
	return 0;
}

bool ui_config_user_path(const char *name, char *buf, size_t cap)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;
	/* the XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored */
	if (xdg && xdg[0] == '/')
		n = snprintf(buf, cap, "%s/deftree/%s", xdg, name);
	else if (home && *home)
		n = snprintf(buf, cap, "%s/.config/deftree/%s", home, name);
	else
		return false;
	return n > 0 && (size_t)n < cap;
}

int ui_config_entry_set(void *ctx, const char *key, const char *value, char *err)
{
	return ui_config_set(ctx, key, value, err);
}

int ui_config_load(struct ui_config *c, const char *path, bool must_exist, struct ui_config_msgs *m, char *err)
{
	bool missing = false;
	int rc = ui_config_read(path, ui_config_entry_set, c, m, &missing, err);
	if (rc >= 0 || (missing && !must_exist))
		return 0;
	return -1;
}

// ---- the command line

enum {
	OPT_KEY = 256, /* a config key: the option's name is the key */
	OPT_FLAG,      /* an on/off flag: see flags[] */
	OPT_OPEN,
	OPT_STATE,
	OPT_CONFIG,
	OPT_NO_CONFIG,
};

/* the flags of the command line as config keys and values */
static const struct {
	const char *opt, *key, *value;
} flags[] = {
	{ "chat", "chat", "on" },       { "no-chat", "chat", "off" }, { "color", "color", "on" },
	{ "no-color", "color", "off" }, { "ascii", "ascii", "on" },   { "no-ascii", "ascii", "off" },
	{ "mouse", "mouse", "on" },     { "no-mouse", "mouse", "off" },
};

static const struct option opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "prompt", required_argument, NULL, 'p' },
	{ "threads", required_argument, NULL, 't' },
	{ "open", required_argument, NULL, OPT_OPEN },
	{ "algo", required_argument, NULL, OPT_KEY },
	{ "backend", required_argument, NULL, OPT_KEY },
	{ "max-tokens", required_argument, NULL, OPT_KEY },
	{ "grow", required_argument, NULL, OPT_KEY },
	{ "page-size", required_argument, NULL, OPT_KEY },
	{ "kv-budget", required_argument, NULL, OPT_KEY },
	{ "temp", required_argument, NULL, OPT_KEY },
	{ "top-k", required_argument, NULL, OPT_KEY },
	{ "top-p", required_argument, NULL, OPT_KEY },
	{ "min-p", required_argument, NULL, OPT_KEY },
	{ "seed", required_argument, NULL, OPT_KEY },
	{ "repeat-penalty", required_argument, NULL, OPT_KEY },
	{ "replay-fps", required_argument, NULL, OPT_KEY },
	{ "theme", required_argument, NULL, OPT_KEY },
	{ "chat", no_argument, NULL, OPT_FLAG },
	{ "no-chat", no_argument, NULL, OPT_FLAG },
	{ "color", no_argument, NULL, OPT_FLAG },
	{ "no-color", no_argument, NULL, OPT_FLAG },
	{ "ascii", no_argument, NULL, OPT_FLAG },
	{ "no-ascii", no_argument, NULL, OPT_FLAG },
	{ "mouse", no_argument, NULL, OPT_FLAG },
	{ "no-mouse", no_argument, NULL, OPT_FLAG },
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "no-config", no_argument, NULL, OPT_NO_CONFIG },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
static const char short_opts[] = ":m:p:t:h"; /* ':' first: a missing value returns ':' */

/* what getopt_long stopped at: "unknown option '--x'" or "option '--x' needs a value" */
static int getopt_err(int opt, char **argv, char *err)
{
	char clip[UI_CONFIG_CLIP];
	const char *arg = ui_config_clip(optind > 0 ? argv[optind - 1] : "?", clip);
	if (opt == ':')
		return dt_err(err, "option '%s' needs a value", arg);
	if (optopt)
		return dt_err(err, "unknown option '-%c'", optopt);
	return dt_err(err, "unknown option '%s'", arg);
}

int ui_config_args(struct ui_config *c, int argc, char **argv, struct ui_config_msgs *m, char *err)
{
	const char *config = NULL;
	bool no_config = false, help = false;
	char path[1024];
	int opt, idx;

	/* first pass: only --config, --no-config and --help (the second reports the rest) */
	optind = 0; /* glibc: start over */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, short_opts, opts, &idx)) != -1) {
		if (opt == OPT_CONFIG)
			config = optarg;
		else if (opt == OPT_NO_CONFIG)
			no_config = true;
		else if (opt == 'h')
			help = true;
	}
	if (help)
		return UI_CONFIG_HELP;
	if (!no_config) {
		bool explicit = config != NULL;
		if (!config && ui_config_user_path("config", path, sizeof(path)))
			config = path;
		char ferr[DT_ERR_LEN];
		if (config && ui_config_load(c, config, explicit, m, ferr) < 0) {
			if (explicit)
				return dt_err(err, "--config: %s", ferr), UI_CONFIG_ERROR;
			ui_config_msg(m, "%s", ferr);
		}
	}

	optind = 0;
	while ((opt = getopt_long(argc, argv, short_opts, opts, &idx)) != -1) {
		const char *key = NULL, *value = optarg;
		switch (opt) {
		case 'm': key = "model"; break;
		case 't': key = "threads"; break;
		case OPT_KEY: key = opts[idx].name; break;
		case OPT_FLAG:
			for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
				if (!strcmp(flags[i].opt, opts[idx].name))
					key = flags[i].key, value = flags[i].value;
			DT_ASSERT(key);
			break;
		case 'p': c->opt.prompt = optarg; break;
		case OPT_OPEN: c->opt.open = optarg; break;
		case OPT_STATE: c->opt.state_dir = optarg; break;
		case OPT_CONFIG:
		case OPT_NO_CONFIG: break;
		default: return getopt_err(opt, argv, err), UI_CONFIG_USAGE;
		}
		char serr[DT_ERR_LEN];
		if (key && ui_config_set(c, key, value, serr) < 0)
			return dt_err(err, "--%s", serr), UI_CONFIG_ERROR;
	}
	if (optind < argc)
		return dt_err(err, "unexpected argument '%s'", ui_config_clip(argv[optind], path)), UI_CONFIG_USAGE;
	return UI_CONFIG_RUN;
}
