/* jsoncheck.c — validating reads of untrusted JSON (jsoncheck.h). */
#include "config.h"

#include "jsoncheck.h"

#include <inttypes.h>
#include <stdio.h>

#include "common.h"

const char *jsoncheck_type(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

const char *jsoncheck_found(const json_t *v, char *buf, size_t cap)
{
	if (json_is_integer(v))
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, cap, "%g", json_real_value(v));
	else
		snprintf(buf, cap, "%s", jsoncheck_type(v));
	return buf;
}

int jsoncheck_int(const json_t *obj, const char *field, int64_t lo, int64_t hi, int64_t *out, const char *ctx,
		  char *err)
{
	const json_t *v = json_object_get(obj, field);
	if (!v)
		return dt_err(err, "%s: missing field \"%s\" (expected an integer)", ctx, field);
	if (!json_is_integer(v))
		return dt_err(err, "%s: field \"%s\" (expected an integer, found %s)", ctx, field, jsoncheck_type(v));
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return dt_err(err, "%s: field \"%s\" (expected an integer in [%" PRId64 ", %" PRId64 "], found %lld)",
			      ctx, field, lo, hi, (long long)x);
	*out = x;
	return 0;
}

int jsoncheck_num(const json_t *obj, const char *field, double lo, double hi, double *out, const char *ctx,
		  char *err)
{
	const json_t *v = json_object_get(obj, field);
	if (!v)
		return dt_err(err, "%s: missing field \"%s\" (expected a number)", ctx, field);
	if (!json_is_number(v))
		return dt_err(err, "%s: field \"%s\" (expected a number, found %s)", ctx, field, jsoncheck_type(v));
	double x = json_number_value(v);
	if (!(x >= lo && x <= hi))
		return dt_err(err, "%s: field \"%s\" (expected a number in [%g, %g], found %g)", ctx, field, lo, hi, x);
	*out = x;
	return 0;
}

const json_t *jsoncheck_typed(const json_t *obj, const char *field, json_type type, const char *what,
			      const char *ctx, char *err)
{
	const json_t *v = json_object_get(obj, field);
	if (!v) {
		dt_err(err, "%s: missing field \"%s\" (expected %s)", ctx, field, what);
		return NULL;
	}
	if (json_typeof(v) != type) {
		dt_err(err, "%s: field \"%s\" (expected %s, found %s)", ctx, field, what, jsoncheck_type(v));
		return NULL;
	}
	return v;
}
