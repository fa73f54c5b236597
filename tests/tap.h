/*
 * tap.h — a tiny TAP producer for the test programs (automake tap-driver).
 *
 *   tap_plan(n) or tap_plan_lazy() + tap_done()
 *   ok(cond, "what was expected %d", x)       one behaviour per ok()
 *   tap_skip_all("no CUDA device")             prints 1..0 # SKIP ... and exits 0
 *   tap_model_path()                           the default model if present, else NULL
 *   tap_tmpdir()                               a fresh directory for fixtures
 *
 * Header-only so each test is one .c file; every function is static.
 */
#ifndef DT_TAP_H
#define DT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_n_run, tap_n_failed, tap_planned = -1;

static inline void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_plan_lazy(void)
{
	tap_planned = 0;
}

__attribute__((format(printf, 2, 3))) static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n_run++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_n_failed++;
	return cond;
}

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static inline void tap_skip(const char *fmt, ...)
{
	va_list ap;
	tap_n_run++;
	printf("ok %d # SKIP ", tap_n_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline _Noreturn void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	exit(0);
}

/* Ends the program: prints the lazy plan and returns the exit status. */
static inline int tap_done(void)
{
	if (tap_planned == 0)
		printf("1..%d\n", tap_n_run);
	else if (tap_planned != tap_n_run)
		printf("# planned %d tests but ran %d\n", tap_planned, tap_n_run);
	fflush(stdout);
	return tap_n_failed ? 1 : 0;
}

/* The default model (SmolLM2-135M-Instruct Q4_1) when ./bootstrap fetched it:
 * $DEFTREE_MODEL, else $DT_TOP_SRCDIR/models/..., else NULL. */
static inline const char *tap_model_path(void)
{
	static char path[4096];
	const char *env = getenv("DEFTREE_MODEL");
	if (env && *env && access(env, R_OK) == 0)
		return env;
	const char *top = getenv("DT_TOP_SRCDIR");
	snprintf(path, sizeof(path), "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", top ? top : ".");
	if (access(path, R_OK) == 0)
		return path;
	return NULL;
}

/* Path of a test data file shipped in tests/data. */
static inline const char *tap_data_path(const char *name)
{
	static char path[4096];
	const char *top = getenv("DT_TOP_SRCDIR");
	snprintf(path, sizeof(path), "%s/tests/data/%s", top ? top : ".", name);
	return path;
}

/* A fresh temporary directory (removed by the caller if it cares). */
static inline const char *tap_tmpdir(void)
{
	static char dir[256];
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/deftree-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		printf("Bail out! cannot create a temporary directory\n");
		exit(1);
	}
	return dir;
}

#endif
