/*
 * jsoncheck.h — validating reads of untrusted JSON (jansson): a field of the
 * expected type and range, or a message "CTX: field "F" (expected X, found Y)".
 * Session files and workload files share these.
 */
#ifndef DT_JSONCHECK_H
#define DT_JSONCHECK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* "an integer", "a string", ...; "nothing" for NULL. */
const char *jsoncheck_type(const json_t *v);
/* The value itself for numbers, else its type: for "found ..." messages. */
const char *jsoncheck_found(const json_t *v, char *buf, size_t cap);
/* Integer field in [lo, hi] into *out; 0, or -1 + err naming ctx and field. */
int jsoncheck_int(const json_t *obj, const char *field, int64_t lo, int64_t hi, int64_t *out, const char *ctx,
		  char *err);
/* Number field (integer or real) in [lo, hi]. */
int jsoncheck_num(const json_t *obj, const char *field, double lo, double hi, double *out, const char *ctx,
		  char *err);
/* Field of the given type (`what` names it in the message); NULL + err otherwise. */
const json_t *jsoncheck_typed(const json_t *obj, const char *field, json_type type, const char *what,
			      const char *ctx, char *err);

#endif
