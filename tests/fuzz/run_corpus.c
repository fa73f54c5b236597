/*
 * run_corpus.c — replays files through the GGUF fuzz entry without libFuzzer,
 * printing TAP.  Built by `make check` as tests/test_fuzz_corpus.
 *
 *   test_fuzz_corpus                 every file of $DT_TOP_SRCDIR/tests/fuzz/corpus
 *   test_fuzz_corpus FILE|DIR ...    those files (e.g. a crash-* file libFuzzer wrote)
 *
 * A broken reader invariant aborts inside fuzz_gguf_one() (and ASan/UBSan
 * report over-reads in --enable-debug builds), which fails the test.  Over the
 * default corpus it also checks that the seeds include files the reader
 * accepts and files it refuses, so that both paths stay covered.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "../tap.h"

int fuzz_gguf_one(const uint8_t *data, size_t size);

static int n_files, n_opened, n_refused;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		ok(0, "%s: cannot open (%s)", path, strerror(errno));
		return;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = xmalloc(cap);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	fclose(f);
	/* an exact-size copy, so that ASan sees any read past the end */
	uint8_t *exact = xmalloc(len ? len : 1);
	if (len)
		memcpy(exact, buf, len);
	free(buf);
	int opened = fuzz_gguf_one(exact, len);
	free(exact);
	n_files++;
	n_opened += opened;
	n_refused += !opened;
	ok(1, "%s (%zu bytes): %s, invariants hold", path, len, opened ? "opened" : "refused");
}

static void run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		ok(0, "%s: %s", path, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		ok(0, "%s: cannot list (%s)", path, strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char full[4096];
			snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
			run_file(full);
		}
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	tap_plan_lazy();
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			run_path(argv[i]);
		return tap_done();
	}
	char dir[4096];
	const char *top = getenv("DT_TOP_SRCDIR");
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus", top ? top : ".");
	run_path(dir);
	ok(n_files >= 8, "the seed corpus %s has at least 8 files (found %d)", dir, n_files);
	ok(n_opened > 0 && n_refused > 0, "the corpus holds files the reader accepts (%d) and refuses (%d)",
	   n_opened, n_refused);
	return tap_done();
}
