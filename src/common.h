/*
 * common.h — what every module of deftree shares: the status codes, the one
 * error helper for untrusted input, the allocation family that dies cleanly,
 * the assert macro that restores the terminal first, and a monotonic clock.
 *
 * Three error tiers (STYLE.md):
 *   untrusted input   -> return a status / NULL and fill `char err[DT_ERR_LEN]`
 *                        through dt_err(): "file: what is wrong (expected X, found Y)"
 *   broken invariant  -> DT_ASSERT(cond): runs the fatal hooks, prints file:line, aborts
 *   host OOM          -> xmalloc & co. print a message and exit(1)
 */
#ifndef DT_COMMON_H
#define DT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" { /* the CUDA files include this header too */
#endif

#define DT_ERR_LEN 512 /* size of every error message buffer */

enum dt_status {
	DT_OK = 0,
	DT_ERR_IO = -1,          /* cannot open / read / write a file */
	DT_ERR_FORMAT = -2,      /* malformed or hostile input */
	DT_ERR_ARG = -3,         /* bad argument or command */
	DT_ERR_UNSUPPORTED = -4, /* well-formed but not supported (arch, type) */
	DT_ERR_FULL = -5,        /* out of a budgeted resource (KV pages) */
	DT_ERR_CANCELLED = -6,   /* stopped on request */
	DT_ERR_DEVICE = -7,      /* GPU / backend failure */
};

/* Formats a message into err (DT_ERR_LEN bytes; err may be NULL) and
 * returns -1 so that callers can write `return dt_err(err, "...")`. */
int dt_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation that never returns NULL: prints and exits on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* n*size with an overflow check (dies on overflow: only for trusted sizes). */
void *xmallocarray(size_t n, size_t size);

/* Overflow-checked arithmetic for untrusted sizes: return false on overflow. */
static inline bool dt_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
static inline bool dt_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* Fatal hooks run (last registered first) before an abort from DT_ASSERT,
 * a fatal signal or xmalloc failure: the UI registers its terminal restore. */
void dt_add_fatal_hook(void (*fn)(void));
void dt_run_fatal_hooks(void);
__attribute__((noreturn)) void dt_assert_fail(const char *cond, const char *file, int line);
#define DT_ASSERT(cond) \
	((cond) ? (void)0 : dt_assert_fail(#cond, __FILE__, __LINE__))

/* Reads a whole regular file of at most max_bytes into a malloc'd buffer with a
 * NUL after it (length in *len); NULL + "path: ..." naming `what` (e.g. "a
 * session") when it cannot be opened, is not a regular file, is too large or
 * cannot be read. */
char *dt_read_file(const char *path, size_t max_bytes, const char *what, size_t *len, char *err);

/* Monotonic clock in nanoseconds / seconds. */
int64_t dt_now_ns(void);
double dt_now_s(void);

/* Number of CPUs available to this process (>= 1). */
int dt_ncpu(void);

/* Default model path: $DEFTREE_MODEL, else models/<default> next to the
 * executable or in the current directory. Returns a static string. */
const char *dt_default_model_path(void);
#define DT_DEFAULT_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

#define DT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DT_MAX(a, b) ((a) > (b) ? (a) : (b))

#ifdef __cplusplus
}
#endif

#endif
