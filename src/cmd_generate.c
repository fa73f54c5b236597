/*
 * cmd_generate.c — `deftree generate`: one prompt, one streamed answer, then
 * the timing figures on stderr.
 *
 * The prompt is tokenized (through the chat template with --chat), the
 * KV cache sized to prompt + N tokens, the prompt prefilled in batches and
 * the answer streamed to stdout as whole UTF-8 characters.  Ctrl-C stops the
 * generation between layers; the figures are still printed (exit 130).
 */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gen.h"
#include "model.h"
#include "tokenizer.h"

int cmd_generate(int argc, char **argv);

static atomic_bool cancel_flag;

static void on_sigint(int sig)
{
	(void)sig;
	if (atomic_load(&cancel_flag))
		signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program */
	atomic_store(&cancel_flag, true);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: deftree generate -p PROMPT [options]\n"
		"  -m, --model PATH        GGUF model (default: $DEFTREE_MODEL or the bundled\n"
		"                          %s)\n"
		"  -p, --prompt TEXT       the prompt\n"
		"  -n, --n-predict N       most tokens to generate (default 128)\n"
		"      --chat              wrap the prompt in the model's chat template\n"
		"      --system TEXT       system message (with --chat)\n"
		"      --temp T            temperature, 0 = greedy (default 0.8)\n"
		"      --top-k K           0 = off (default 40)\n"
		"      --top-p P           1 = off (default 0.95)\n"
		"      --min-p M           0 = off (default 0.05)\n"
		"      --repeat-penalty R  1 = off (default 1.0)\n"
		"      --repeat-last-n N   tokens the penalty looks at (default 64, -1 = all)\n"
		"      --seed S            seed of the sampler (default %llu)\n"
		"  -t, --threads N         CPU threads (default %d)\n"
		"Streams the answer to stdout; prompt tokens, TTFT and speeds go to stderr.\n",
		DT_DEFAULT_MODEL_FILE, (unsigned long long)sampler_default_params().seed, dt_ncpu());
}

struct out_state {
	bool any;
	char last;
};

static void emit_stdout(void *ctx, const char *text, size_t len)
{
	struct out_state *o = ctx;
	fwrite(text, 1, len, stdout);
	fflush(stdout);
	o->any = true;
	o->last = text[len - 1];
}

enum { OPT_TEMP = 256, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REP, OPT_REP_N, OPT_SEED, OPT_CHAT,
       OPT_SYSTEM };

int cmd_generate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "n-predict", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "temp", required_argument, NULL, OPT_TEMP },
		{ "top-k", required_argument, NULL, OPT_TOP_K },
		{ "top-p", required_argument, NULL, OPT_TOP_P },
		{ "min-p", required_argument, NULL, OPT_MIN_P },
		{ "repeat-penalty", required_argument, NULL, OPT_REP },
		{ "repeat-last-n", required_argument, NULL, OPT_REP_N },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "chat", no_argument, NULL, OPT_CHAT },
		{ "system", required_argument, NULL, OPT_SYSTEM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_params gp = gen_default_params();
	const char *prompt = NULL, *system = NULL;
	int32_t n_predict = 128;
	bool chat = false;
	char err[DT_ERR_LEN];
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:p:n:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'm': gp.model_path = optarg; break;
		case 'p': prompt = optarg; break;
		case 'n': bad = gen_parse_i32("-n", optarg, 0, 1 << 24, &n_predict, err); break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &gp.n_threads, err); break;
		case OPT_TEMP: bad = sampler_params_set(&gp.sampling, "temp", optarg, err); break;
		case OPT_TOP_K: bad = sampler_params_set(&gp.sampling, "top-k", optarg, err); break;
		case OPT_TOP_P: bad = sampler_params_set(&gp.sampling, "top-p", optarg, err); break;
		case OPT_MIN_P: bad = sampler_params_set(&gp.sampling, "min-p", optarg, err); break;
		case OPT_REP: bad = sampler_params_set(&gp.sampling, "repeat-penalty", optarg, err); break;
		case OPT_REP_N: bad = sampler_params_set(&gp.sampling, "repeat-last-n", optarg, err); break;
		case OPT_SEED: bad = sampler_params_set(&gp.sampling, "seed", optarg, err); break;
		case OPT_CHAT: chat = true; break;
		case OPT_SYSTEM: system = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree generate: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree generate: unknown option %s (try --help)\n",
				argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree generate: %s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "deftree generate: unexpected argument '%s' (the prompt goes after -p)\n",
			argv[optind]);
		return 2;
	}
	if (!prompt) {
		fprintf(stderr, "deftree generate: no prompt (give one with -p TEXT; --help lists the options)\n");
		return 2;
	}
	if (system && !chat) {
		fprintf(stderr, "deftree generate: --system needs --chat\n");
		return 2;
	}
	const char *path = gp.model_path ? gp.model_path : dt_default_model_path();
	gp.model_path = path;
	if (gen_model_missing(path, "deftree generate", stderr))
		return 1;

	struct gen *g = gen_new(&gp, err);
	if (!g) {
		fprintf(stderr, "deftree generate: %s\n", err);
		return 1;
	}
	const struct tokenizer *tok = gen_tokenizer(g);
	char *text = NULL;
	if (chat) {
		struct tokenizer_chat_msg msgs[2];
		int n = 0;
		if (system)
			msgs[n++] = (struct tokenizer_chat_msg){ "system", system };
		msgs[n++] = (struct tokenizer_chat_msg){ "user", prompt };
		text = tokenizer_chat_format(tok, msgs, n, true, err);
		if (!text) {
			fprintf(stderr, "deftree generate: %s\n", err);
			gen_free(g);
			return 1;
		}
	} else {
		text = xstrdup(prompt);
	}
	int32_t *ids = NULL, n_ids = 0;
	if (tokenizer_encode(tok, text, strlen(text), tokenizer_add_bos(tok), true, &ids, &n_ids, err) <
	    0) {
		fprintf(stderr, "deftree generate: %s\n", err);
		free(text);
		gen_free(g);
		return 1;
	}
	free(text);
	if (n_ids == 0) {
		fprintf(stderr, "deftree generate: the prompt has no tokens\n");
		free(ids);
		gen_free(g);
		return 2;
	}
	const struct model_hparams *hp = model_hparams(gen_model(g));
	int64_t want = (int64_t)n_ids + n_predict;
	if (hp->n_ctx_train > 0 && want > hp->n_ctx_train)
		fprintf(stderr, "deftree generate: note: %lld tokens exceed the trained context of %d\n",
			(long long)want, hp->n_ctx_train);
	gen_set_n_ctx(g, (int32_t)DT_MIN(want, (int64_t)INT32_MAX));

	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);

	struct out_state out = { 0 };
	struct gen_stats st;
	int rc = gen_run(g, ids, n_ids, n_predict, emit_stdout, &out, &cancel_flag, &st, err);
	if (out.any && out.last != '\n')
		fputc('\n', stdout);
	fflush(stdout);
	signal(SIGINT, SIG_DFL);
	if (rc != DT_OK)
		fprintf(stderr, "deftree generate: %s\n", err);
	fprintf(stderr, "\n");
	gen_print_stats(&st, stderr);
	free(ids);
	gen_free(g);
	if (rc != DT_OK)
		return 1;
	return st.cancelled ? 130 : 0;
}
