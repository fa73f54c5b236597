/* common.c — error helper, allocation family, fatal hooks, clocks. */
#include "config.h"

#include "common.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

int dt_err(char *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, DT_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static _Noreturn void die_oom(size_t n)
{
	dt_run_fatal_hooks();
	fprintf(stderr, "deftree: out of memory (allocating %zu bytes)\n", n);
	exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die_oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die_oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		die_oom(n);
	return q;
}

void *xmallocarray(size_t n, size_t size)
{
	uint64_t total;
	if (!dt_mul_ok(n, size, &total) || total > SIZE_MAX)
		die_oom(SIZE_MAX);
	return xmalloc((size_t)total);
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xmalloc(n);
	memcpy(p, s, n);
	return p;
}

// ---- files

char *dt_read_file(const char *path, size_t max_bytes, const char *what, size_t *len, char *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		dt_err(err, "%s: cannot open (%s)", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		dt_err(err, "%s: not a regular file", path);
		return NULL;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		fclose(f);
		dt_err(err, "%s: too large for %s (expected at most %zu bytes, found %lld)", path, what, max_bytes,
		       (long long)st.st_size);
		return NULL;
	}
	size_t n = (size_t)st.st_size;
	char *buf = xmalloc(n + 1);
	size_t got = fread(buf, 1, n, f);
	int rerr = ferror(f);
	fclose(f);
	if (got != n || rerr) {
		free(buf);
		dt_err(err, "%s: read error (expected %zu bytes, read %zu)", path, n, got);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

// ---- fatal hooks

#define MAX_FATAL_HOOKS 8
static void (*fatal_hooks[MAX_FATAL_HOOKS])(void);
static int n_fatal_hooks;

void dt_add_fatal_hook(void (*fn)(void))
{
	if (n_fatal_hooks < MAX_FATAL_HOOKS)
		fatal_hooks[n_fatal_hooks++] = fn;
}

void dt_run_fatal_hooks(void)
{
	/* each hook runs at most once, even if a hook itself fails */
	while (n_fatal_hooks > 0) {
		void (*fn)(void) = fatal_hooks[--n_fatal_hooks];
		fn();
	}
}

void dt_assert_fail(const char *cond, const char *file, int line)
{
	dt_run_fatal_hooks();
	fprintf(stderr, "deftree: %s:%d: assertion failed: %s\n", file, line, cond);
	abort();
}

// ---- clocks and machine facts

int64_t dt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double dt_now_s(void)
{
	return (double)dt_now_ns() * 1e-9;
}

int dt_ncpu(void)
{
#ifdef CPU_COUNT
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return n;
	}
#endif
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

const char *dt_default_model_path(void)
{
	static char path[PATH_MAX + 64];
	const char *env = getenv("DEFTREE_MODEL");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			/* the binary sits at the top of the build tree, or in tests/ */
			snprintf(path, sizeof(path), "%s/models/%s", exe, DT_DEFAULT_MODEL_FILE);
			if (access(path, R_OK) == 0)
				return path;
			snprintf(path, sizeof(path), "%s/../models/%s", exe, DT_DEFAULT_MODEL_FILE);
			if (access(path, R_OK) == 0)
				return path;
		}
	}
	snprintf(path, sizeof(path), "models/%s", DT_DEFAULT_MODEL_FILE);
	return path;
}
