/*
 * cmd_bench.c — `deftree bench SUBCOMMAND`: the measurements that
 * performance claims come from (see PERF.md).  Each subcommand prints a
 * table next to its peers measured in the same run and can write JSON.
 *
 * A subcommand is `int bench_NAME(int argc, char **argv)` (argv[0] is its
 * name), here or in its own file, with one line in `bench_subs` below.
 *
 * bench cpu: prompt processing (one prefill of --pp synthetic tokens from an
 * empty cache) and generation (--tg single-token forward passes from an
 * empty cache, as llama-bench's tg), median tokens/s over --reps runs after a
 * warm-up, on the CPU; with --peer the same file, threads and token ids
 * through llama.cpp (assets/bench/llamacpp_cpu.py, llama-cpp-python) after
 * ours, side by side with the ratio.  Synthetic ids: splitmix64(0xdef7ee + i)
 * mod n_vocab, the same formula in the script.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "gen.h"
#include "model.h"

int cmd_bench(int argc, char **argv);
int bench_cpu(int argc, char **argv);
int bench_tree_main(int argc, char **argv); /* src/bench_tree.c */
int bench_attn_main(int argc, char **argv); /* src/bench_attn.c */

static const struct bench_sub {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} bench_subs[] = {
	/* BENCH SUBCOMMANDS: one line each */
	{ "cpu", bench_cpu, "prompt and generation tokens/s on the CPU, beside llama.cpp" },
	{ "tree", bench_tree_main, "tree decoding on the CPU: attention and step time per algorithm" },
	{ "attn", bench_attn_main, "GPU tree attention per algorithm vs the floor and the PyTorch peers" },
};

static void bench_usage(FILE *f)
{
	fprintf(f, "usage: deftree bench SUBCOMMAND [options]\n\nsubcommands:\n");
	for (size_t i = 0; i < DT_ARRAY_LEN(bench_subs); i++)
		fprintf(f, "  %-8s %s\n", bench_subs[i].name, bench_subs[i].summary);
	fprintf(f, "\n`deftree bench SUBCOMMAND --help` describes each one.\n");
}

int cmd_bench(int argc, char **argv)
{
	if (argc < 2) {
		bench_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		bench_usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < DT_ARRAY_LEN(bench_subs); i++)
		if (!strcmp(argv[1], bench_subs[i].name))
			return bench_subs[i].run(argc - 1, argv + 1);
	fprintf(stderr, "deftree bench: unknown subcommand '%s' (try `deftree bench --help`)\n",
		argv[1]);
	return 2;
}

// ---- helpers

static uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double *s = xmallocarray((size_t)n, sizeof(*s));
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
	free(s);
	return m;
}

static json_t *json_doubles(const double *v, int n)
{
	json_t *a = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(a, json_real(v[i]));
	return a;
}

static double mib(double bytes)
{
	return bytes / (1024.0 * 1024.0);
}

/* "model name" of the first CPU in /proc/cpuinfo, or "". */
static void cpu_name(char *out, size_t n)
{
	out[0] = '\0';
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10)) {
			const char *v = strchr(line, ':');
			if (v) {
				v++;
				while (*v == ' ')
					v++;
				snprintf(out, n, "%s", v);
				out[strcspn(out, "\n")] = '\0';
			}
			break;
		}
	}
	fclose(f);
}

// ---- the llama.cpp peer

/* The peer script: $DEFTREE_ASSETS/bench/..., next to the binary, the source
 * tree this file was compiled from, the current directory. */
static bool find_peer_script(char *out, size_t n)
{
	static const char rel[] = "bench/llamacpp_cpu.py";
	char exe[PATH_MAX], src[PATH_MAX];
	const char *env = getenv("DEFTREE_ASSETS");
	if (env && *env) {
		snprintf(out, n, "%s/%s", env, rel);
		if (access(out, R_OK) == 0)
			return true;
	}
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k > 0) {
		exe[k] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
	} else {
		snprintf(exe, sizeof(exe), ".");
	}
	/* __FILE__ is .../src/cmd_bench.c, absolute or relative to the build dir */
	snprintf(src, sizeof(src), "%s", __FILE__);
	char *s = strstr(src, "src/cmd_bench.c");
	if (s)
		*s = '\0';
	size_t sl = strlen(src);
	if (sl > 1 && src[sl - 1] == '/')
		src[sl - 1] = '\0';
	else if (sl == 0)
		snprintf(src, sizeof(src), ".");
	const char *dirs[] = { exe, "", "" };
	char buf1[PATH_MAX + 8], buf2[PATH_MAX * 2 + 8];
	snprintf(buf1, sizeof(buf1), "%s/..", exe);
	if (src[0] == '/')
		snprintf(buf2, sizeof(buf2), "%s", src);
	else
		snprintf(buf2, sizeof(buf2), "%s/%s", exe, src);
	dirs[1] = buf1;
	dirs[2] = buf2;
	for (size_t i = 0; i < DT_ARRAY_LEN(dirs); i++) {
		snprintf(out, n, "%s/assets/%s", dirs[i][0] ? dirs[i] : ".", rel);
		if (access(out, R_OK) == 0)
			return true;
	}
	snprintf(out, n, "assets/%s", rel);
	return access(out, R_OK) == 0;
}

/* Runs the peer; returns its JSON object or NULL with the reason in why. */
static json_t *run_peer(const char *script, const char *model, int threads, int pp, int tg,
			int reps, char *why, size_t why_n)
{
	char a_thr[16], a_pp[16], a_tg[16], a_reps[16];
	snprintf(a_thr, sizeof(a_thr), "%d", threads);
	snprintf(a_pp, sizeof(a_pp), "%d", pp);
	snprintf(a_tg, sizeof(a_tg), "%d", tg);
	snprintf(a_reps, sizeof(a_reps), "%d", reps);
	char *const args[] = { "python3", (char *)script, "--model", (char *)model, "--threads", a_thr,
			       "--pp", a_pp, "--tg", a_tg, "--reps", a_reps, NULL };
	char errpath[] = "/tmp/deftree-peer-XXXXXX";
	int errfd = mkstemp(errpath);
	if (errfd >= 0)
		unlink(errpath);
	int fds[2];
	if (pipe(fds) < 0) {
		snprintf(why, why_n, "pipe: %s", strerror(errno));
		return NULL;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, why_n, "fork: %s", strerror(errno));
		return NULL;
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		if (errfd >= 0)
			dup2(errfd, STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp("python3", args);
		_exit(127);
	}
	close(fds[1]);
	size_t len = 0, cap = 4096;
	char *out = xmalloc(cap);
	for (;;) {
		if (len + 1024 > cap)
			out = xrealloc(out, cap *= 2);
		ssize_t k = read(fds[0], out + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = '\0';
	close(fds[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	json_t *res = NULL;
	if (code == 0) {
		/* the last line that opens a JSON object */
		const char *brace = NULL;
		for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
			if (*p == '{')
				brace = p;
		json_error_t je;
		res = brace ? json_loads(brace, 0, &je) : NULL;
		if (!res || !json_is_object(res)) {
			snprintf(why, why_n, "the peer printed no JSON object");
			json_decref(res);
			res = NULL;
		}
	} else if (code == 2) {
		snprintf(why, why_n, "llama-cpp-python is not installed (pip install llama-cpp-python)");
	} else if (code == 127) {
		snprintf(why, why_n, "python3 not found");
	} else {
		char tail[400] = "";
		if (errfd >= 0) {
			off_t end = lseek(errfd, 0, SEEK_END);
			off_t start = end > (off_t)sizeof(tail) - 1 ? end - (off_t)sizeof(tail) + 1 : 0;
			ssize_t k = pread(errfd, tail, sizeof(tail) - 1, start);
			tail[k > 0 ? k : 0] = '\0';
			for (char *p = tail; *p; p++)
				if (*p == '\n')
					*p = ' ';
		}
		snprintf(why, why_n, "the peer failed (exit %d): %s", code, tail);
	}
	if (errfd >= 0)
		close(errfd);
	free(out);
	return res;
}

// ---- bench cpu

static void cpu_usage(FILE *f)
{
	fprintf(f,
		"usage: deftree bench cpu [options]\n"
		"Prompt processing (one prefill of PP tokens) and generation (TG single-token steps)\n"
		"speed on the CPU, median of REPS runs after a warm-up.\n"
		"  -m, --model PATH   GGUF model (default: $DEFTREE_MODEL or the bundled one)\n"
		"  -t, --threads N    CPU threads (default %d)\n"
		"      --pp N         prompt tokens (default 512)\n"
		"      --tg N         generated tokens (default 128)\n"
		"      --reps N       timed runs of each (default 3)\n"
		"      --json FILE    also write the results as JSON\n"
		"      --peer         run llama.cpp (llama-cpp-python) on the same file, threads and\n"
		"                     tokens after ours, and print the ratio ours / llama.cpp\n",
		dt_ncpu());
}

enum { OPT_PP = 256, OPT_TG, OPT_REPS, OPT_JSON, OPT_PEER };

int bench_cpu(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "threads", required_argument, NULL, 't' },
		{ "pp", required_argument, NULL, OPT_PP },
		{ "tg", required_argument, NULL, OPT_TG },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "peer", no_argument, NULL, OPT_PEER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_params gp = gen_default_params();
	int32_t pp = 512, tg = 128, reps = 3;
	const char *json_path = NULL;
	bool peer = false;
	char err[DT_ERR_LEN];
	int c;
	gp.n_threads = dt_ncpu();
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:t:h", opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'm': gp.model_path = optarg; break;
		case 't': bad = gen_parse_i32("-t", optarg, 1, 1024, &gp.n_threads, err); break;
		case OPT_PP: bad = gen_parse_i32("--pp", optarg, 0, 1 << 20, &pp, err); break;
		case OPT_TG: bad = gen_parse_i32("--tg", optarg, 0, 1 << 20, &tg, err); break;
		case OPT_REPS: bad = gen_parse_i32("--reps", optarg, 1, 1000, &reps, err); break;
		case OPT_JSON: json_path = optarg; break;
		case OPT_PEER: peer = true; break;
		case 'h': cpu_usage(stdout); return 0;
		case ':':
			fprintf(stderr, "deftree bench cpu: option %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "deftree bench cpu: unknown option %s (try --help)\n",
				argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "deftree bench cpu: %s\n", err);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "deftree bench cpu: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (pp + tg == 0) {
		fprintf(stderr, "deftree bench cpu: nothing to measure (--pp and --tg are both 0)\n");
		return 2;
	}
	const char *path = gp.model_path ? gp.model_path : dt_default_model_path();
	gp.model_path = path;
	if (gen_model_missing(path, "deftree bench cpu", stderr))
		return 1;
	char script[PATH_MAX + 64] = "";
	if (peer && !find_peer_script(script, sizeof(script))) {
		fprintf(stderr, "deftree bench cpu: assets/bench/llamacpp_cpu.py not found (set "
				"DEFTREE_ASSETS to the assets folder)\n");
		return 1;
	}

	struct stat stf;
	size_t file_bytes = stat(path, &stf) == 0 ? (size_t)stf.st_size : 0;
	gp.n_ctx = DT_MAX(pp, tg) + 1;
	struct gen *g = gen_new(&gp, err);
	if (!g) {
		fprintf(stderr, "deftree bench cpu: %s\n", err);
		return 1;
	}
	struct model *m = gen_model(g);
	const struct model_hparams *hp = model_hparams(m);
	int32_t n_tok = DT_MAX(pp, tg);
	int32_t *ids = xmallocarray((size_t)n_tok, sizeof(*ids));
	for (int32_t i = 0; i < n_tok; i++)
		ids[i] = (int32_t)(splitmix64(0xdef7eeULL + (uint64_t)i) % (uint64_t)hp->n_vocab);
	size_t kv_bytes = gen_kv_bytes(g);

	char cpu[256];
	cpu_name(cpu, sizeof(cpu));
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	printf("deftree bench cpu: %s, %d thread%s (%d CPUs: %s)\n", base, model_n_threads(m),
	       model_n_threads(m) == 1 ? "" : "s", dt_ncpu(), cpu[0] ? cpu : "?");
	printf("pp %d, tg %d, median of %d after a warm-up; synthetic token ids\n", pp, tg, reps);
	fflush(stdout);

	/* warm-up: one prefill, a few steps */
	int rc = DT_OK;
	if (pp > 0) {
		gen_reset(g);
		rc = gen_append(g, ids, pp, NULL, err);
	}
	for (int32_t i = 0; rc == DT_OK && i < DT_MIN(tg, 16); i++) {
		if (i == 0)
			gen_reset(g);
		rc = gen_append(g, ids + i, 1, NULL, err);
	}
	double *pp_runs = xcalloc((size_t)reps, sizeof(double));
	double *tg_runs = xcalloc((size_t)reps, sizeof(double));
	for (int r = 0; rc == DT_OK && r < reps && pp > 0; r++) {
		gen_reset(g);
		double t0 = dt_now_s();
		rc = gen_append(g, ids, pp, NULL, err);
		pp_runs[r] = pp / (dt_now_s() - t0);
	}
	for (int r = 0; rc == DT_OK && r < reps && tg > 0; r++) {
		gen_reset(g);
		double t0 = dt_now_s();
		for (int32_t i = 0; rc == DT_OK && i < tg; i++)
			rc = gen_append(g, ids + i, 1, NULL, err);
		tg_runs[r] = tg / (dt_now_s() - t0);
	}
	if (rc != DT_OK) {
		fprintf(stderr, "deftree bench cpu: %s\n", err);
		free(pp_runs);
		free(tg_runs);
		free(ids);
		gen_free(g);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double rss_bytes = (double)ru.ru_maxrss * 1024.0;
	double our_pp = pp > 0 ? median(pp_runs, reps) : 0, our_tg = tg > 0 ? median(tg_runs, reps) : 0;
	size_t weight_bytes = model_weight_bytes(m);
	int threads = model_n_threads(m);
	gen_free(g); /* release the cores and memory before the peer runs */

	json_t *pj = NULL;
	char why[600] = "";
	if (peer) {
		printf("running llama.cpp (%s) ...\n", script);
		fflush(stdout);
		pj = run_peer(script, path, threads, pp, tg, reps, why, sizeof(why));
	}
	double peer_pp = pj ? json_number_value(json_object_get(pj, "pp_tokens_per_s")) : 0;
	double peer_tg = pj ? json_number_value(json_object_get(pj, "tg_tokens_per_s")) : 0;
	double peer_rss = pj ? json_number_value(json_object_get(pj, "maxrss_kib")) * 1024.0 : 0;

	printf("\n%-22s %12s", "", "deftree");
	if (pj)
		printf(" %12s %10s", "llama.cpp", "ratio");
	printf("\n");
	char label[64];
	if (pp > 0) {
		snprintf(label, sizeof(label), "pp%d tokens/s", pp);
		printf("%-22s %12.1f", label, our_pp);
		if (pj)
			printf(" %12.1f %9.2fx", peer_pp, peer_pp > 0 ? our_pp / peer_pp : 0);
		printf("\n");
	}
	if (tg > 0) {
		snprintf(label, sizeof(label), "tg%d tokens/s", tg);
		printf("%-22s %12.1f", label, our_tg);
		if (pj)
			printf(" %12.1f %9.2fx", peer_tg, peer_tg > 0 ? our_tg / peer_tg : 0);
		printf("\n");
	}
	printf("%-22s %10.1f MiB", "peak resident memory", mib(rss_bytes));
	if (pj)
		printf(" %8.1f MiB", mib(peer_rss));
	printf("\n");
	printf("model file %.1f MiB (weights %.1f MiB, mapped, not copied: resident pages of the\n"
	       "file count in the peak above); KV cache %.1f MiB for %d tokens\n",
	       mib((double)file_bytes), mib((double)weight_bytes), mib((double)kv_bytes),
	       DT_MAX(pp, tg) + 1);
	if (peer && !pj)
		printf("llama.cpp: not measured: %s\n", why);

	int ret = 0;
	if (json_path) {
		json_t *o = json_object();
		json_object_set_new(o, "bench", json_string("cpu"));
		json_object_set_new(o, "model", json_string(path));
		json_object_set_new(o, "model_file_bytes", json_integer((json_int_t)file_bytes));
		json_object_set_new(o, "weight_bytes", json_integer((json_int_t)weight_bytes));
		json_object_set_new(o, "kv_bytes", json_integer((json_int_t)kv_bytes));
		json_object_set_new(o, "threads", json_integer(threads));
		json_object_set_new(o, "n_cpus", json_integer(dt_ncpu()));
		json_object_set_new(o, "cpu", json_string(cpu));
		json_object_set_new(o, "pp", json_integer(pp));
		json_object_set_new(o, "tg", json_integer(tg));
		json_object_set_new(o, "reps", json_integer(reps));
		json_t *d = json_object();
		json_object_set_new(d, "pp_tokens_per_s", pp > 0 ? json_real(our_pp) : json_null());
		json_object_set_new(d, "tg_tokens_per_s", tg > 0 ? json_real(our_tg) : json_null());
		json_object_set_new(d, "pp_runs", json_doubles(pp_runs, pp > 0 ? reps : 0));
		json_object_set_new(d, "tg_runs", json_doubles(tg_runs, tg > 0 ? reps : 0));
		json_object_set_new(d, "maxrss_bytes", json_real(rss_bytes));
		json_object_set_new(o, "deftree", d);
		if (pj) {
			json_object_set(o, "llama_cpp", pj);
			json_t *ratio = json_object();
			json_object_set_new(ratio, "pp", peer_pp > 0 ? json_real(our_pp / peer_pp) : json_null());
			json_object_set_new(ratio, "tg", peer_tg > 0 ? json_real(our_tg / peer_tg) : json_null());
			json_object_set_new(o, "ratio", ratio);
		} else {
			json_object_set_new(o, "llama_cpp", json_null());
			if (peer)
				json_object_set_new(o, "llama_cpp_error", json_string(why));
		}
		if (json_dump_file(o, json_path, JSON_INDENT(2)) < 0) {
			fprintf(stderr, "deftree bench cpu: %s: cannot write (%s)\n", json_path,
				strerror(errno));
			ret = 1;
		}
		json_decref(o);
	}
	json_decref(pj);
	free(pp_runs);
	free(tg_runs);
	free(ids);
	return ret;
}
