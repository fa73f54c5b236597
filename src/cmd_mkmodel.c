/*
 * cmd_mkmodel.c — `deftree mkmodel -o FILE [OPTIONS]`: write a synthetic GGUF
 * model (random weights, byte-level BPE vocabulary) of any supported shape.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "common.h"
#include "mkmodel.h"
#include "quant.h"

int cmd_mkmodel(int argc, char **argv);

static void usage(FILE *out)
{
	const struct mkmodel_params d = mkmodel_default_params();
	fprintf(out,
		"usage: deftree mkmodel -o FILE [OPTIONS]\n"
		"Write a GGUF model with random weights (for tests and for timing large shapes;\n"
		"label figures measured on it as synthetic). deftree and llama.cpp load it.\n\n"
		"options:\n"
		"  -o, --output FILE   the file to write (required)\n"
		"  --preset NAME       a shape: %s\n"
		"                      (the options below override it)\n"
		"  --arch A            llama or qwen2 (default %s)\n"
		"  --layers N          blocks (default %d)\n"
		"  --embd N            hidden width (default %d)\n"
		"  --heads N           query heads (default %d)\n"
		"  --kv-heads N        key/value heads (default: --heads)\n"
		"  --ff N              feed-forward width (default %d)\n"
		"  --vocab N           tokens, >= 259 (default %d)\n"
		"  --ctx N             context_length metadata (default %d)\n"
		"  --rope-base F       rope frequency base (default %g)\n"
		"  --rope-scale F      linear rope scaling factor (default 1: none)\n"
		"  --rope-freqs        write Llama-3.1 rope_freqs.weight factors\n"
		"  --type T            weights: f32 f16 q8_0 q4_1 q4_k q6_k (default q8_0)\n"
		"  --tied / --untied   share token_embd as the output matrix (default tied)\n"
		"  --qkv-bias / --no-qkv-bias   q/k/v biases (default: qwen2 yes, llama no)\n"
		"  --vocab-from MODEL  copy the tokenizer metadata of MODEL (sets the vocab size)\n"
		"  --seed S            random seed (default %llu)\n"
		"  -t, --threads N     threads generating weights (default %d)\n"
		"  -h, --help          this text\n",
		mkmodel_preset_names(), d.arch, d.n_layer, d.n_embd, d.n_head, d.n_ff, d.n_vocab,
		d.n_ctx, (double)d.rope_base, (unsigned long long)d.seed, d.n_threads);
}

static int parse_int(const char *opt, const char *s, int32_t lo, int32_t *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == 0 || *end != 0 || v < lo || v > (1 << 30)) {
		fprintf(stderr, "deftree mkmodel: %s: bad value '%s' (expected an integer >= %d)\n", opt,
			s, lo);
		return -1;
	}
	*out = (int32_t)v;
	return 0;
}

static int parse_type(const char *s, enum dt_type *out)
{
	for (uint32_t t = 0; t < DT_TYPE_COUNT; t++) {
		const struct quant_type_info *ti = quant_type(t);
		if (ti && !strcmp(ti->name, s) && mkmodel_type_ok((enum dt_type)t)) {
			*out = (enum dt_type)t;
			return 0;
		}
	}
	/* accept upper-case K spellings: q4_K, Q4_K */
	char low[16];
	size_t n = strlen(s);
	if (n < sizeof(low)) {
		for (size_t i = 0; i <= n; i++)
			low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
		if (!strcmp(low, "q4_k") || !strcmp(low, "q6_k")) {
			*out = low[1] == '4' ? DT_TYPE_Q4_K : DT_TYPE_Q6_K;
			return 0;
		}
		if (strcmp(low, s) != 0)
			return parse_type(low, out);
	}
	fprintf(stderr, "deftree mkmodel: --type: unknown type '%s' (expected f32, f16, q8_0, q4_1, q4_k or q6_k)\n", s);
	return -1;
}

int cmd_mkmodel(int argc, char **argv)
{
	enum { O_PRESET = 256, O_ARCH, O_LAYERS, O_EMBD, O_HEADS, O_KV, O_FF, O_VOCAB, O_CTX, O_BASE,
	       O_TYPE, O_RSCALE, O_RFREQS, O_TIED, O_UNTIED, O_BIAS, O_NOBIAS, O_VFROM, O_SEED };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' }, { "preset", required_argument, NULL, O_PRESET },
		{ "arch", required_argument, NULL, O_ARCH }, { "layers", required_argument, NULL, O_LAYERS },
		{ "embd", required_argument, NULL, O_EMBD }, { "heads", required_argument, NULL, O_HEADS },
		{ "kv-heads", required_argument, NULL, O_KV }, { "ff", required_argument, NULL, O_FF },
		{ "vocab", required_argument, NULL, O_VOCAB }, { "ctx", required_argument, NULL, O_CTX },
		{ "rope-base", required_argument, NULL, O_BASE },
		{ "rope-scale", required_argument, NULL, O_RSCALE }, { "rope-freqs", no_argument, NULL, O_RFREQS }, { "type", required_argument, NULL, O_TYPE },
		{ "tied", no_argument, NULL, O_TIED }, { "untied", no_argument, NULL, O_UNTIED },
		{ "qkv-bias", no_argument, NULL, O_BIAS }, { "no-qkv-bias", no_argument, NULL, O_NOBIAS },
		{ "vocab-from", required_argument, NULL, O_VFROM }, { "seed", required_argument, NULL, O_SEED },
		{ "threads", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mkmodel_params p = mkmodel_default_params();
	const char *out = NULL;
	char err[DT_ERR_LEN];
	int32_t kv_heads = -1;

	/* the preset first, so that explicit options override it wherever they stand */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--preset") && mkmodel_preset(&p, argv[i + 1], err) != 0) {
			fprintf(stderr, "deftree %s\n", err);
			return 2;
		}
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--preset=", 9) && mkmodel_preset(&p, argv[i] + 9, err) != 0) {
			fprintf(stderr, "deftree %s\n", err);
			return 2;
		}
	const bool preset_kv = p.n_head_kv != p.n_head;

	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "o:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'o': out = optarg; break;
		case O_PRESET: break; /* applied above */
		case O_ARCH: snprintf(p.arch, sizeof(p.arch), "%s", optarg); break;
		case O_LAYERS: bad = parse_int("--layers", optarg, 1, &p.n_layer); break;
		case O_EMBD: bad = parse_int("--embd", optarg, 32, &p.n_embd); break;
		case O_HEADS: bad = parse_int("--heads", optarg, 1, &p.n_head); break;
		case O_KV: bad = parse_int("--kv-heads", optarg, 1, &kv_heads); break;
		case O_FF: bad = parse_int("--ff", optarg, 32, &p.n_ff); break;
		case O_VOCAB: bad = parse_int("--vocab", optarg, 259, &p.n_vocab); break;
		case O_CTX: bad = parse_int("--ctx", optarg, 1, &p.n_ctx); break;
		case O_BASE: {
			char *end;
			p.rope_base = strtof(optarg, &end);
			if (*end || !(p.rope_base > 0)) {
				fprintf(stderr, "deftree mkmodel: --rope-base: bad value '%s'\n", optarg);
				bad = -1;
			}
			break;
		}
		case O_RSCALE: {
			char *end;
			p.rope_scale = strtof(optarg, &end);
			if (*end || !(p.rope_scale > 0)) {
				fprintf(stderr, "deftree mkmodel: --rope-scale: bad value '%s'\n", optarg);
				bad = -1;
			}
			break;
		}
		case O_RFREQS: p.rope_freqs = true; break;
		case O_TYPE: bad = parse_type(optarg, &p.type); break;
		case O_TIED: p.tied = true; break;
		case O_UNTIED: p.tied = false; break;
		case O_BIAS: p.qkv_bias = 1; break;
		case O_NOBIAS: p.qkv_bias = 0; break;
		case O_VFROM: p.vocab_from = optarg; break;
		case O_SEED: {
			char *end;
			p.seed = strtoull(optarg, &end, 10);
			if (!*optarg || *end) {
				fprintf(stderr, "deftree mkmodel: --seed: bad value '%s'\n", optarg);
				bad = -1;
			}
			break;
		}
		case 't': bad = parse_int("--threads", optarg, 1, &p.n_threads); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "deftree mkmodel: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!out) {
		fprintf(stderr, "deftree mkmodel: -o FILE is required\n");
		usage(stderr);
		return 2;
	}
	p.n_head_kv = kv_heads > 0 ? kv_heads : preset_kv ? p.n_head_kv : p.n_head;
	if (mkmodel_write(&p, out, stdout, err) != 0) {
		fprintf(stderr, "deftree %s\n", err);
		return 1;
	}
	return 0;
}
