/*
 * cmd_chat.c — the interactive prompt (`deftree` with no arguments, or
 * `deftree chat`) until the terminal UI exists.
 *
 * DESIGN
 * Each input line is a user message; lines starting with '/' are commands
 * (the table `chat_cmds`).  The conversation is kept as text messages; each
 * turn formats the whole conversation through the chat template (or, for a
 * model without one, concatenates the plain text), tokenizes it and hands it
 * to gen_run(), which keeps the longest common prefix with the cached tokens:
 * only the new message (and the template's glue) is prefilled, and /reset
 * still reuses the cached system prompt.
 *
 * Input: GNU readline through its callback interface when built with the TUI
 * and stdin is a terminal (history in $XDG_STATE_HOME/deftree/history or
 * ~/.local/state/deftree/history); plain getline otherwise, so that
 * `printf 'Hello\n/quit\n' | deftree` scripts it.  Without a terminal, stdout
 * carries only the answers (one per line); banners and timings go to stderr.
 *
 * Signals: SIGINT sets a flag.  At the prompt it clears the line (readline)
 * or the partial input; during an answer it sets the cancel flag that
 * model_forward() checks between layers, which ends that answer only.
 * SIGINT is blocked outside pselect() at the readline prompt so that it can
 * never be missed between the check and the wait.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_TUI
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "common.h"
#include "gen.h"
#include "model.h"
#include "tokenizer.h"

int cmd_chat(int argc, char **argv);

// ---- signals

static atomic_bool cancel_flag;
static volatile sig_atomic_t got_sigint;

static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
	atomic_store(&cancel_flag, true);
}

#ifdef HAVE_TUI
static volatile sig_atomic_t got_winch;

static void on_winch(int sig)
{
	(void)sig;
	got_winch = 1;
}
#endif

/* restart: whether reads resume after the handler (during answers) or fail
 * with EINTR (at the plain prompt, so that Ctrl-C drops the line). */
static void install_sigint(bool restart)
{
	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigint;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
}

// ---- the conversation

struct chat {
	struct gen *g;
	const struct tokenizer *tok;
	int32_t n_predict;       /* most tokens per answer */
	bool templ;              /* the chat template works for this model */
	bool tty;                /* stdin is a terminal */
	char *system;            /* system message or NULL (the template's default) */
	struct tokenizer_chat_msg *msgs; /* (n_msgs) owned role and content strings */
	int n_msgs, cap_msgs;
	char *plain;             /* plain-continuation document (no template) */
	char *reply;             /* the answer being generated */
	size_t reply_len, reply_cap;
	bool quit;
};

static void chat_push(struct chat *c, const char *role, const char *content)
{
	if (c->n_msgs == c->cap_msgs) {
		c->cap_msgs = c->cap_msgs ? 2 * c->cap_msgs : 8;
		c->msgs = xrealloc(c->msgs, (size_t)c->cap_msgs * sizeof(*c->msgs));
	}
	c->msgs[c->n_msgs++] = (struct tokenizer_chat_msg){ xstrdup(role), xstrdup(content) };
}

static void chat_pop(struct chat *c)
{
	DT_ASSERT(c->n_msgs > 0);
	c->n_msgs--;
	free((char *)c->msgs[c->n_msgs].role);
	free((char *)c->msgs[c->n_msgs].content);
}

static void chat_clear(struct chat *c)
{
	while (c->n_msgs > 0)
		chat_pop(c);
	if (c->system)
		chat_push(c, "system", c->system);
	free(c->plain);
	c->plain = xstrdup("");
}

static void emit_answer(void *ctx, const char *text, size_t len)
{
	struct chat *c = ctx;
	if (c->reply_len + len + 1 > c->reply_cap) {
		c->reply_cap = 2 * (c->reply_len + len + 1);
		c->reply = xrealloc(c->reply, c->reply_cap);
	}
	memcpy(c->reply + c->reply_len, text, len);
	c->reply_len += len;
	c->reply[c->reply_len] = '\0';
	fwrite(text, 1, len, stdout);
	fflush(stdout);
}

/* The text the model continues: the formatted conversation, or the plain
 * document with the new line appended. */
static char *chat_prompt_text(struct chat *c, const char *line, char *err)
{
	if (c->templ) {
		chat_push(c, "user", line);
		char *s = tokenizer_chat_format(c->tok, c->msgs, c->n_msgs, true, err);
		if (!s)
			chat_pop(c);
		return s;
	}
	size_t n = strlen(c->plain), m = strlen(line);
	char *s = xmalloc(n + m + 2);
	memcpy(s, c->plain, n);
	size_t o = n;
	if (n > 0 && c->plain[n - 1] != '\n')
		s[o++] = '\n';
	memcpy(s + o, line, m + 1);
	return s;
}

static void chat_answer(struct chat *c, const char *line)
{
	char err[DT_ERR_LEN];
	char *text = chat_prompt_text(c, line, err);
	if (!text) {
		fprintf(stderr, "error: %s\n", err);
		return;
	}
	/* the whole conversation: gen_run() reuses the cached prefix */
	int32_t *ids = NULL, n = 0;
	if (tokenizer_encode(c->tok, text, strlen(text), tokenizer_add_bos(c->tok), true, &ids, &n,
			     err) < 0 ||
	    (n == 0 && dt_err(err, "nothing to say (the input has no tokens)"))) {
		free(ids);
		fprintf(stderr, "error: %s\n", err);
		if (c->templ)
			chat_pop(c);
		free(text);
		return;
	}
	c->reply_len = 0;
	if (c->reply)
		c->reply[0] = '\0';
	atomic_store(&cancel_flag, false);
	got_sigint = 0;
	install_sigint(true);
	struct gen_stats st;
	int rc = gen_run(c->g, ids, n, c->n_predict, emit_answer, c, &cancel_flag, &st, err);
	install_sigint(false);
	free(ids);
	if (c->reply_len > 0 ? c->reply[c->reply_len - 1] != '\n' : rc == DT_OK)
		fputc('\n', stdout); /* one line per answer, even an empty one */
	fflush(stdout);
	if (rc != DT_OK) {
		fprintf(stderr, "error: %s%s\n", err,
			rc == DT_ERR_FULL ? " (/reset starts a new conversation)" : "");
		if (c->templ)
			chat_pop(c);
		free(text);
		return;
	}
	const char *reply = c->reply ? c->reply : "";
	if (c->templ) {
		chat_push(c, "assistant", reply);
	} else {
		size_t a = strlen(text), b = strlen(reply);
		free(c->plain);
		c->plain = xmalloc(a + b + 1);
		memcpy(c->plain, text, a);
		memcpy(c->plain + a, reply, b + 1);
	}
	free(text);
	double tps = st.n_gen > 1 && st.decode_s > 0 ? (st.n_gen - 1) / st.decode_s : 0;
	bool dim = isatty(STDERR_FILENO);
	fprintf(stderr, "%s[%d prompt tokens (%d new), TTFT %.0f ms, %d tokens, %.1f tokens/s%s]%s\n",
		dim ? "\033[2m" : "", st.n_prompt, st.n_prefilled, st.ttft_s * 1e3, st.n_gen, tps,
		st.cancelled ? ", interrupted" : st.ctx_full ? ", context full" : "",
		dim ? "\033[0m" : "");
}

// ---- slash commands

static void cmd_help_lines(struct chat *c, const char *args);
static void cmd_reset(struct chat *c, const char *args);
static void cmd_set(struct chat *c, const char *args);
static void cmd_quit(struct chat *c, const char *args);

static const struct chat_cmd {
	const char *name, *args, *help;
	void (*run)(struct chat *c, const char *args);
} chat_cmds[] = {
	{ "help", "", "this list", cmd_help_lines },
	{ "reset", "", "start a new conversation", cmd_reset },
	{ "set", "[NAME VALUE]", "show or change temp, top-k, top-p, min-p, repeat-penalty, "
				 "repeat-last-n, seed, n (tokens per answer)", cmd_set },
	{ "quit", "", "leave (also Ctrl-D)", cmd_quit },
	{ "exit", "", "same as /quit", cmd_quit },
};

static void cmd_help_lines(struct chat *c, const char *args)
{
	(void)c;
	(void)args;
	printf("Type a message and press Enter; the answer streams below it.\n"
	       "Ctrl-C stops an answer; Ctrl-D or /quit leaves.\n");
	for (size_t i = 0; i < DT_ARRAY_LEN(chat_cmds); i++) {
		char head[64];
		snprintf(head, sizeof(head), "/%s %s", chat_cmds[i].name, chat_cmds[i].args);
		printf("  %-22s %s\n", head, chat_cmds[i].help);
	}
}

static void cmd_reset(struct chat *c, const char *args)
{
	(void)args;
	chat_clear(c);
	printf("(new conversation)\n");
}

static void cmd_set(struct chat *c, const char *args)
{
	char name[64], value[128], extra[8];
	char err[DT_ERR_LEN];
	int k = sscanf(args, "%63s %127s %7s", name, value, extra);
	if (k <= 0) {
		char d[256];
		sampler_params_describe(gen_sampling(c->g), d, sizeof(d));
		printf("%s, n %d\n", d, c->n_predict);
		return;
	}
	if (k != 2) {
		printf("usage: /set NAME VALUE (e.g. /set temp 0.7)\n");
		return;
	}
	if (!strcmp(name, "n")) {
		if (gen_parse_i32("n", value, 1, 1 << 24, &c->n_predict, err) < 0)
			printf("error: %s\n", err);
		return;
	}
	if (sampler_params_set(gen_sampling(c->g), name, value, err) < 0)
		printf("error: %s\n", err);
}

static void cmd_quit(struct chat *c, const char *args)
{
	(void)args;
	c->quit = true;
}

static void chat_line(struct chat *c, char *line)
{
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	const char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return;
	if (*s != '/') {
		chat_answer(c, line);
		return;
	}
	s++;
	size_t len = strcspn(s, " \t");
	const char *args = s + len;
	while (*args == ' ' || *args == '\t')
		args++;
	for (size_t i = 0; i < DT_ARRAY_LEN(chat_cmds); i++) {
		if (strlen(chat_cmds[i].name) == len && !strncmp(s, chat_cmds[i].name, len)) {
			chat_cmds[i].run(c, args);
			fflush(stdout);
			return;
		}
	}
	printf("unknown command /%.*s (try /help)\n", (int)len, s);
	fflush(stdout);
}

// ---- input

/* Plain input: getline on stdin; Ctrl-C drops the partial line. */
static void loop_plain(struct chat *c)
{
	char *line = NULL;
	size_t cap = 0;
	install_sigint(false);
	while (!c->quit) {
		if (c->tty) {
			printf("> ");
			fflush(stdout);
		}
		got_sigint = 0;
		errno = 0;
		ssize_t k = getline(&line, &cap, stdin);
		if (k < 0) {
			if (got_sigint && errno == EINTR) {
				clearerr(stdin);
				printf("\n");
				continue;
			}
			break; /* end of input */
		}
		chat_line(c, line);
	}
	if (c->tty)
		printf("\n");
	free(line);
}

#ifdef HAVE_TUI
static struct chat *rl_chat;
static char history_path[4096];

/* $XDG_STATE_HOME/deftree/history or ~/.local/state/deftree/history, the
 * directories created; "" when there is no home. */
static void find_history_path(void)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char dir[4000];
	if (state && *state)
		snprintf(dir, sizeof(dir), "%s/deftree", state);
	else if (home && *home)
		snprintf(dir, sizeof(dir), "%s/.local/state/deftree", home);
	else
		return;
	for (char *p = dir + 1; *p; p++) { /* mkdir -p */
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0700);
			*p = '/';
		}
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return;
	snprintf(history_path, sizeof(history_path), "%s/history", dir);
	FILE *f = fopen(history_path, "a"); /* append_history needs the file */
	if (f)
		fclose(f);
	else
		history_path[0] = '\0';
}

static void rl_on_line(char *line)
{
	struct chat *c = rl_chat;
	if (!line) { /* Ctrl-D */
		c->quit = true;
		rl_callback_handler_remove();
		printf("\n");
		return;
	}
	rl_callback_handler_remove();
	if (*line) {
		add_history(line);
		if (history_path[0])
			append_history(1, history_path);
	}
	/* answers run with SIGINT delivered (to cancel), not only inside pselect */
	sigset_t none;
	sigemptyset(&none);
	sigaddset(&none, SIGINT);
	sigprocmask(SIG_UNBLOCK, &none, NULL);
	chat_line(c, line);
	sigprocmask(SIG_BLOCK, &none, NULL);
	got_sigint = 0;
	free(line);
	if (!c->quit)
		rl_callback_handler_install("> ", rl_on_line);
}

static void loop_readline(struct chat *c)
{
	rl_chat = c;
	rl_readline_name = "deftree";
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	find_history_path();
	if (history_path[0])
		read_history(history_path);

	install_sigint(false);
	struct sigaction sw = { 0 };
	sw.sa_handler = on_winch;
	sigemptyset(&sw.sa_mask);
	sigaction(SIGWINCH, &sw, NULL);

	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigset_t wait_mask = old;
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGWINCH);

	rl_callback_handler_install("> ", rl_on_line);
	while (!c->quit) {
		fd_set fds;
		FD_ZERO(&fds);
		FD_SET(STDIN_FILENO, &fds);
		int r = pselect(STDIN_FILENO + 1, &fds, NULL, NULL, NULL, &wait_mask);
		if (r < 0) {
			if (errno != EINTR)
				break;
			if (got_winch) {
				got_winch = 0;
				rl_resize_terminal();
			}
			if (got_sigint) { /* drop the line being typed */
				got_sigint = 0;
				rl_free_line_state();
				rl_replace_line("", 0);
				printf("^C\n");
				rl_on_new_line();
				rl_redisplay();
			}
			continue;
		}
		rl_callback_read_char();
	}
	if (!c->quit)
		rl_callback_handler_remove();
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGWINCH, SIG_DFL);
	if (history_path[0])
		history_truncate_file(history_path, 1000);
}
#endif

// ---- the command

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deftree [chat] [options]\n"
		"An interactive chat on the model: each line is a message, the answer streams.\n"
		"  -m, --model PATH        GGUF model (default: $DEFTREE_MODEL or the bundled\n"
		"                          %s)\n"
		"  -n, --n-predict N       most tokens per answer (default 512)\n"
		"  -c, --ctx N             KV cache size in tokens (default: 4096 or the trained context)\n"
		"      --system TEXT       system message\n"
		"      --plain             no chat template: each line continues the text as typed\n"
		"      --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --seed\n"
		"                          sampling, as for `deftree generate`\n"
		"  -t, --threads N         CPU threads (default %d)\n"
		"At the prompt: /help lists the commands.\n",
		DT_DEFAULT_MODEL_FILE, dt_ncpu());
}

enum { OPT_TEMP = 256, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REP, OPT_REP_N, OPT_SEED, OPT_SYSTEM,
       OPT_PLAIN };

int cmd_chat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "ctx", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "repeat-penalty", required_argument, NULL, OPT_REP },
		{ "repeat-last-n", required_argument, NULL, OPT_REP_N },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "system", required_argument, NULL, OPT_SYSTEM },
		{ "plain", no_argument, NULL, OPT_PLAIN },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_params gp = gen_default_params();
	struct chat c = { .n_predict = 512 };
	const char *system = NULL;
	bool plain = false;
	char err[DT_ERR_LEN];
	int opt;
	optind = 1;
	opterr = 0;
	while (argc > 0 && (opt = getopt_long(argc, argv, ":m:n:c:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'm': gp.model_path = optarg; break;
		case 'n': bad = gen_parse_i32("-n", optarg, 1, 1 << 24, &c.n_predict, err); break;
		case 'c': bad = gen_parse_i32("--ctx", optarg, 16, 1 << 24, &gp.n_ctx, err); break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &gp.n_threads, err); break;
		case OPT_TEMP: bad = sampler_params_set(&gp.sampling, "temp", optarg, err); break;
		case OPT_TOP_K: bad = sampler_params_set(&gp.sampling, "top-k", optarg, err); break;
		case OPT_TOP_P: bad = sampler_params_set(&gp.sampling, "top-p", optarg, err); break;
		case OPT_MIN_P: bad = sampler_params_set(&gp.sampling, "min-p", optarg, err); break;
		case OPT_REP: bad = sampler_params_set(&gp.sampling, "repeat-penalty", optarg, err); break;
		case OPT_REP_N: bad = sampler_params_set(&gp.sampling, "repeat-last-n", optarg, err); break;
		case OPT_SEED: bad = sampler_params_set(&gp.sampling, "seed", optarg, err); break;
		case OPT_SYSTEM: system = optarg; break;
		case OPT_PLAIN: plain = true; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree: unknown option %s (try `deftree chat --help`)\n",
				argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree: %s\n", err);
			return 2;
		}
	}
	if (argc > 0 && optind < argc) {
		fprintf(stderr, "deftree: unexpected argument '%s' (try `deftree help`)\n", argv[optind]);
		return 2;
	}
	const char *path = gp.model_path ? gp.model_path : dt_default_model_path();
	gp.model_path = path;
	if (gen_model_missing(path, "deftree", stderr))
		return 1;
	c.tty = isatty(STDIN_FILENO);
	if (c.tty)
		fprintf(stderr, "loading %s ...\n", path);
	c.g = gen_new(&gp, err);
	if (!c.g) {
		fprintf(stderr, "deftree: %s\n", err);
		return 1;
	}
	c.tok = gen_tokenizer(c.g);
	c.system = system ? xstrdup(system) : NULL;
	if (!plain) {
		struct tokenizer_chat_msg probe = { "user", "hi" };
		char *t = tokenizer_chat_format(c.tok, &probe, 1, true, err);
		c.templ = t != NULL;
		free(t);
		if (!c.templ)
			fprintf(stderr, "note: %s; each line continues the text as typed\n", err);
	}
	if (!c.templ && system)
		fprintf(stderr, "note: --system is ignored without a chat template\n");
	chat_clear(&c);

	const struct model_hparams *hp = model_hparams(gen_model(c.g));
	if (c.tty)
		fprintf(stderr,
			"deftree %s: %s (%s, %d layers), %d threads, context %d tokens.\n"
			"Type a message; /help lists the commands; Ctrl-D quits.\n",
			PACKAGE_VERSION, hp->name[0] ? hp->name : path, hp->arch, hp->n_layer,
			model_n_threads(gen_model(c.g)), gen_n_ctx(c.g));

#ifdef HAVE_TUI
	if (c.tty)
		loop_readline(&c);
	else
		loop_plain(&c);
#else
	loop_plain(&c);
#endif
	signal(SIGINT, SIG_DFL);
	while (c.n_msgs > 0)
		chat_pop(&c);
	free(c.msgs);
	free(c.plain);
	free(c.reply);
	free(c.system);
	gen_free(c.g);
	return 0;
}
