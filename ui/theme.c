/*
 * theme.c — the colour tables and theme files (design in theme.h).
 *
 * The one place that knows colours.  Pair n+1 is style n.  The theme in use
 * is chosen before the screen opens (ui_theme_use), and ui_theme_init()
 * turns it into curses pairs and attributes once.  The no-colour attributes
 * (mono_attrs) belong to no theme.
 */
#include "config.h"

#include "theme.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ui_config.h"

#ifndef DT_PKGDATADIR
#define DT_PKGDATADIR "/usr/local/share/deftree"
#endif
#ifndef DT_SRCDIR
#define DT_SRCDIR "."
#endif

#ifndef A_ITALIC
#define A_ITALIC A_NORMAL
#endif

// ---- built-in themes

enum { BLACK = COLOR_BLACK, RED = COLOR_RED, GREEN = COLOR_GREEN, YELLOW = COLOR_YELLOW, BLUE = COLOR_BLUE,
       MAGENTA = COLOR_MAGENTA, CYAN = COLOR_CYAN, WHITE = COLOR_WHITE };
enum { BOLD = UI_ATTR_BOLD, DIM = UI_ATTR_DIM, UNDER = UI_ATTR_UNDERLINE, REV = UI_ATTR_REVERSE };

/* for dark (and most) terminal backgrounds: { fg256, bg256, fg8, bg8, attrs } */
static const struct ui_theme theme_default = { {
	[UI_S_NORMAL] = { -1, -1, -1, -1, 0 },
	[UI_S_DIM] = { 244, -1, -1, -1, 0 },
	[UI_S_BOLD] = { -1, -1, -1, -1, BOLD },
	[UI_S_HEADER] = { 231, 24, WHITE, BLUE, BOLD },
	[UI_S_STATUS] = { 252, 236, BLACK, WHITE, 0 },
	[UI_S_ERROR] = { 210, 236, RED, WHITE, BOLD },
	[UI_S_OK] = { 114, -1, GREEN, -1, 0 },
	[UI_S_WARN] = { 215, -1, YELLOW, -1, 0 },
	[UI_S_TITLE] = { 250, 238, BLACK, WHITE, 0 },
	[UI_S_TITLE_FOCUS] = { 231, 31, WHITE, CYAN, BOLD },
	[UI_S_SEP] = { 238, -1, -1, -1, 0 },
	[UI_S_CURSOR] = { 231, 25, WHITE, BLUE, BOLD },
	[UI_S_PATH] = { 229, -1, YELLOW, -1, BOLD },
	[UI_S_LIVE] = { 46, -1, GREEN, -1, BOLD },
	[UI_S_FINISHED] = { 245, -1, -1, -1, 0 },
	[UI_S_PRUNED] = { 240, -1, RED, -1, 0 },
	[UI_S_PROMPT] = { 110, -1, CYAN, -1, 0 },
	[UI_S_P0] = { 114, -1, GREEN, -1, 0 },
	[UI_S_P1] = { 150, -1, GREEN, -1, 0 },
	[UI_S_P2] = { 221, -1, YELLOW, -1, 0 },
	[UI_S_P3] = { 209, -1, YELLOW, -1, BOLD },
	[UI_S_P4] = { 197, -1, RED, -1, BOLD },
	[UI_S_BOUNDARY] = { 240, -1, -1, -1, 0 },
	[UI_S_OWN0] = { 16, 67, BLACK, BLUE, 0 },
	[UI_S_OWN1] = { 16, 107, BLACK, GREEN, 0 },
	[UI_S_OWN2] = { 16, 137, BLACK, YELLOW, 0 },
	[UI_S_OWN3] = { 16, 97, BLACK, MAGENTA, 0 },
	[UI_S_OWN4] = { 16, 73, BLACK, CYAN, 0 },
	[UI_S_OWN5] = { 16, 143, BLACK, RED, 0 },
	[UI_S_PAGE_SEL] = { 16, 231, BLACK, WHITE, BOLD },
	[UI_S_SPARK] = { 81, -1, CYAN, -1, 0 },
	[UI_S_KEY] = { 223, -1, YELLOW, -1, BOLD },
	[UI_S_MATCH] = { 16, 220, BLACK, YELLOW, 0 },
} };

/* for light backgrounds: dark text, pastel page owners, no yellow text */
static const struct ui_theme theme_light = { {
	[UI_S_NORMAL] = { -1, -1, -1, -1, 0 },
	[UI_S_DIM] = { 243, -1, -1, -1, 0 },
	[UI_S_BOLD] = { -1, -1, -1, -1, BOLD },
	[UI_S_HEADER] = { 231, 25, WHITE, BLUE, BOLD },
	[UI_S_STATUS] = { 235, 252, WHITE, BLACK, 0 },
	[UI_S_ERROR] = { 124, 224, RED, WHITE, BOLD },
	[UI_S_OK] = { 28, -1, GREEN, -1, 0 },
	[UI_S_WARN] = { 130, -1, MAGENTA, -1, 0 },
	[UI_S_TITLE] = { 235, 250, WHITE, BLACK, 0 },
	[UI_S_TITLE_FOCUS] = { 231, 31, WHITE, CYAN, BOLD },
	[UI_S_SEP] = { 250, -1, -1, -1, 0 },
	[UI_S_CURSOR] = { 231, 25, WHITE, BLUE, BOLD },
	[UI_S_PATH] = { 90, -1, MAGENTA, -1, BOLD },
	[UI_S_LIVE] = { 22, -1, GREEN, -1, BOLD },
	[UI_S_FINISHED] = { 244, -1, -1, -1, 0 },
	[UI_S_PRUNED] = { 248, -1, RED, -1, 0 },
	[UI_S_PROMPT] = { 25, -1, BLUE, -1, 0 },
	[UI_S_P0] = { 28, -1, GREEN, -1, 0 },
	[UI_S_P1] = { 64, -1, CYAN, -1, 0 },
	[UI_S_P2] = { 136, -1, BLUE, -1, 0 },
	[UI_S_P3] = { 166, -1, MAGENTA, -1, BOLD },
	[UI_S_P4] = { 160, -1, RED, -1, BOLD },
	[UI_S_BOUNDARY] = { 250, -1, -1, -1, 0 },
	[UI_S_OWN0] = { 16, 153, BLACK, BLUE, 0 },
	[UI_S_OWN1] = { 16, 151, BLACK, GREEN, 0 },
	[UI_S_OWN2] = { 16, 223, BLACK, YELLOW, 0 },
	[UI_S_OWN3] = { 16, 183, BLACK, MAGENTA, 0 },
	[UI_S_OWN4] = { 16, 152, BLACK, CYAN, 0 },
	[UI_S_OWN5] = { 16, 217, BLACK, RED, 0 },
	[UI_S_PAGE_SEL] = { 231, 236, WHITE, BLACK, BOLD },
	[UI_S_SPARK] = { 31, -1, CYAN, -1, 0 },
	[UI_S_KEY] = { 25, -1, BLUE, -1, BOLD },
	[UI_S_MATCH] = { 16, 220, BLACK, YELLOW, 0 },
} };

/* without colours (NO_COLOR, --no-color, a terminal without colours), and the "mono" theme */
static const unsigned mono_attrs[UI_S_N] = {
	[UI_S_DIM] = DIM,
	[UI_S_BOLD] = BOLD,
	[UI_S_HEADER] = REV | BOLD,
	[UI_S_STATUS] = REV,
	[UI_S_ERROR] = REV | BOLD,
	[UI_S_OK] = BOLD,
	[UI_S_WARN] = BOLD,
	[UI_S_TITLE] = REV,
	[UI_S_TITLE_FOCUS] = REV | BOLD,
	[UI_S_SEP] = DIM,
	[UI_S_CURSOR] = REV,
	[UI_S_PATH] = BOLD,
	[UI_S_LIVE] = BOLD,
	[UI_S_FINISHED] = DIM,
	[UI_S_PRUNED] = DIM,
	[UI_S_PROMPT] = DIM,
	[UI_S_P3] = UNDER,
	[UI_S_P4] = UNDER | BOLD,
	[UI_S_BOUNDARY] = DIM,
	[UI_S_PAGE_SEL] = REV,
	[UI_S_KEY] = BOLD,
	[UI_S_MATCH] = REV | UNDER,
};

static const char *const style_names[UI_S_N + 1] = {
	[UI_S_NORMAL] = "normal", [UI_S_DIM] = "dim", [UI_S_BOLD] = "bold", [UI_S_HEADER] = "header",
	[UI_S_STATUS] = "status", [UI_S_ERROR] = "error", [UI_S_OK] = "ok", [UI_S_WARN] = "warn",
	[UI_S_TITLE] = "title", [UI_S_TITLE_FOCUS] = "title-focus", [UI_S_SEP] = "sep", [UI_S_CURSOR] = "cursor",
	[UI_S_PATH] = "path", [UI_S_LIVE] = "live", [UI_S_FINISHED] = "finished", [UI_S_PRUNED] = "pruned",
	[UI_S_PROMPT] = "prompt", [UI_S_P0] = "p0", [UI_S_P1] = "p1", [UI_S_P2] = "p2", [UI_S_P3] = "p3",
	[UI_S_P4] = "p4", [UI_S_BOUNDARY] = "boundary", [UI_S_OWN0] = "own0", [UI_S_OWN1] = "own1",
	[UI_S_OWN2] = "own2", [UI_S_OWN3] = "own3", [UI_S_OWN4] = "own4", [UI_S_OWN5] = "own5",
	[UI_S_PAGE_SEL] = "page-sel", [UI_S_SPARK] = "spark", [UI_S_KEY] = "key", [UI_S_MATCH] = "match",
	[UI_S_N] = NULL,
};

const char *ui_theme_style_name(enum ui_style s)
{
	return (int)s >= 0 && s < UI_S_N ? style_names[s] : NULL;
}

bool ui_theme_builtin(const char *name, struct ui_theme *t)
{
	if (!strcmp(name, "default")) {
		*t = theme_default;
	} else if (!strcmp(name, "light")) {
		*t = theme_light;
	} else if (!strcmp(name, "mono")) {
		for (int s = 0; s < UI_S_N; s++)
			t->s[s] = (struct ui_theme_style){ -1, -1, -1, -1, mono_attrs[s] };
	} else {
		return false;
	}
	return true;
}

// ---- theme files

static const char *const colour_names[] = { "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white" };

static int parse_colour(const char *style, const char *field, const char *s, int hi, short *out, char *err)
{
	if (!strcmp(s, "default") || !strcmp(s, "-1")) {
		*out = -1;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		if (!strcmp(s, colour_names[i])) {
			*out = (short)i;
			return 0;
		}
	char *end;
	long v = strtol(s, &end, 10);
	if (*s && !*end && v >= -1 && v <= hi && strlen(s) <= 4) {
		*out = (short)v;
		return 0;
	}
	char clip[UI_CONFIG_CLIP];
	return dt_err(err, "%s: bad %s colour '%s' (expected -1 .. %d or black, red, green, yellow, blue, "
			   "magenta, cyan, white)", style, field, ui_config_clip(s, clip), hi);
}

static int parse_attrs(const char *style, const char *s, unsigned *out, char *err)
{
	static const struct {
		const char *name;
		unsigned bits;
	} names[] = { { "normal", 0 }, { "bold", UI_ATTR_BOLD }, { "dim", UI_ATTR_DIM },
		      { "underline", UI_ATTR_UNDERLINE }, { "reverse", UI_ATTR_REVERSE }, { "italic", UI_ATTR_ITALIC } };
	unsigned bits = 0;
	const char *p = s;
	for (;;) {
		size_t n = strcspn(p, ",");
		size_t i = 0;
		for (; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == n && !strncmp(p, names[i].name, n))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			char word[2 * UI_CONFIG_CLIP], clip[UI_CONFIG_CLIP];
			snprintf(word, sizeof(word), "%.*s", (int)(n < sizeof(word) ? n : sizeof(word) - 1), p);
			return dt_err(err, "%s: unknown attribute '%s' (expected normal, bold, dim, underline, reverse "
					   "or italic, joined by commas)", style, ui_config_clip(word, clip));
		}
		bits |= names[i].bits;
		if (!p[n])
			break;
		p += n + 1;
	}
	*out = bits;
	return 0;
}

int ui_theme_set(struct ui_theme *t, const char *style, const char *value, char *err)
{
	int s = 0;
	while (s < UI_S_N && strcmp(style, style_names[s]))
		s++;
	if (s == UI_S_N) {
		const char *near = ui_config_nearest(style, style_names);
		char clip[UI_CONFIG_CLIP];
		style = ui_config_clip(style, clip);
		if (near)
			return dt_err(err, "unknown style '%s' (did you mean '%s'?)", style, near);
		return dt_err(err, "unknown style '%s' (expected a style such as title-focus, p0 or own3; "
				   "assets/themes/default.theme lists them all)", style);
	}
	/* up to 6 fields, to name the count when there are too many */
	char buf[UI_CONFIG_MAX_LINE + 1], *f[6];
	int n = 0;
	snprintf(buf, sizeof(buf), "%s", value);
	for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == 6) {
			n++;
			break;
		}
		f[n++] = tok;
	}
	if (n < 4 || n > 5)
		return dt_err(err, "%s: %s%d fields (expected fg256 bg256 fg8 bg8 [attrs])", style, n > 5 ? "more than " : "",
			      n > 5 ? 5 : n);
	struct ui_theme_style d = { 0 };
	if (parse_colour(style, "fg256", f[0], 255, &d.fg256, err) || parse_colour(style, "bg256", f[1], 255, &d.bg256, err) ||
	    parse_colour(style, "fg8", f[2], 7, &d.fg8, err) || parse_colour(style, "bg8", f[3], 7, &d.bg8, err))
		return -1;
	if (n == 5 && parse_attrs(style, f[4], &d.attrs, err))
		return -1;
	t->s[s] = d;
	return 0;
}

static bool is_theme_path(const char *name)
{
	size_t n = strlen(name);
	return strchr(name, '/') || (n > 6 && !strcmp(name + n - 6, ".theme"));
}

int ui_theme_find(const char *name, char *path, size_t cap, char *err)
{
	if (!name || !*name)
		return dt_err(err, "theme: missing name (expected default, light, mono, a theme name or a path)");
	if (is_theme_path(name)) {
		if (access(name, F_OK) != 0)
			return dt_err(err, "theme file '%s' not found (expected an existing .theme file)", name);
		if ((size_t)snprintf(path, cap, "%s", name) >= cap)
			return dt_err(err, "theme file name too long (expected at most %zu bytes)", cap - 1);
		return 0;
	}
	size_t n = strlen(name);
	bool good = n <= 64 && name[0] != '.' && name[0] != '-';
	for (size_t i = 0; good && i < n; i++) {
		char c = name[i];
		good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		       c == '_' || c == '.';
	}
	if (!good) {
		char clip[UI_CONFIG_CLIP];
		return dt_err(err, "theme name '%s' (expected letters, digits, '-', '_', '.', or a path with a '/')",
			      ui_config_clip(name, clip));
	}
	char file[96], user[1024];
	snprintf(file, sizeof(file), "themes/%s.theme", name);
	bool have_user = ui_config_user_path(file, user, sizeof(user));
	char dirs[3][1024];
	int nd = 0;
	if (have_user)
		snprintf(dirs[nd++], sizeof(dirs[0]), "%s", user);
	snprintf(dirs[nd++], sizeof(dirs[0]), "%s/%s", DT_PKGDATADIR, file);
	snprintf(dirs[nd++], sizeof(dirs[0]), "%s/assets/%s", DT_SRCDIR, file);
	for (int i = 0; i < nd; i++)
		if (access(dirs[i], F_OK) == 0) {
			if ((size_t)snprintf(path, cap, "%s", dirs[i]) >= cap)
				return dt_err(err, "theme file name too long (expected at most %zu bytes)", cap - 1);
			return 0;
		}
	struct ui_theme t;
	if (ui_theme_builtin(name, &t)) {
		if (cap)
			path[0] = 0;
		return 0;
	}
	return dt_err(err, "no theme '%s' (expected default, light, mono, or a theme file %s)", name,
		      have_user ? user : "$XDG_CONFIG_HOME/deftree/themes/NAME.theme");
}

static int theme_entry(void *ctx, const char *key, const char *value, char *err)
{
	return ui_theme_set(ctx, key, value, err);
}

int ui_theme_load(const char *name, struct ui_theme *t, struct ui_config_msgs *m, char *err)
{
	char path[1024];
	*t = theme_default;
	if (ui_theme_find(name, path, sizeof(path), err) < 0)
		return -1;
	if (!path[0])
		return ui_theme_builtin(name, t) ? 0 : -1;
	if (ui_config_read(path, theme_entry, t, m, NULL, err) < 0) {
		*t = theme_default;
		return -1;
	}
	return 0;
}

// ---- curses

static const struct ui_theme *theme = &theme_default;
static struct ui_theme theme_custom;
static enum ui_palette palette = UI_PAL_NONE;

void ui_theme_use(const struct ui_theme *t)
{
	theme_custom = *t;
	theme = &theme_custom;
}

static attr_t to_attr(unsigned bits)
{
	attr_t a = A_NORMAL;
	if (bits & UI_ATTR_BOLD)
		a |= A_BOLD;
	if (bits & UI_ATTR_DIM)
		a |= A_DIM;
	if (bits & UI_ATTR_UNDERLINE)
		a |= A_UNDERLINE;
	if (bits & UI_ATTR_REVERSE)
		a |= A_REVERSE;
	if (bits & UI_ATTR_ITALIC)
		a |= A_ITALIC;
	return a;
}

enum ui_palette ui_theme_init(bool no_color)
{
	palette = UI_PAL_NONE;
	if (no_color || !has_colors())
		return palette;
	if (start_color() == ERR)
		return palette;
	use_default_colors();
	palette = COLORS >= 256 ? UI_PAL_256 : COLORS >= 8 ? UI_PAL_8 : UI_PAL_NONE;
	if (palette == UI_PAL_NONE)
		return palette;
	for (int s = 0; s < UI_S_N; s++) {
		const struct ui_theme_style *d = &theme->s[s];
		short fg = palette == UI_PAL_256 ? d->fg256 : d->fg8;
		short bg = palette == UI_PAL_256 ? d->bg256 : d->bg8;
		init_pair((short)(s + 1), fg, bg);
	}
	return palette;
}

short ui_theme_pair(enum ui_style s)
{
	return palette == UI_PAL_NONE || (int)s < 0 || s >= UI_S_N ? 0 : (short)(s + 1);
}

unsigned long ui_theme_attr(enum ui_style s)
{
	if ((int)s < 0 || s >= UI_S_N)
		return A_NORMAL;
	if (palette == UI_PAL_NONE)
		return to_attr(mono_attrs[s]);
	const struct ui_theme_style *d = &theme->s[s];
	/* 8 colours: styles without a colour of their own keep their monochrome attributes */
	if (palette == UI_PAL_8 && d->fg8 < 0 && d->bg8 < 0)
		return to_attr(mono_attrs[s] | d->attrs);
	return to_attr(d->attrs);
}
