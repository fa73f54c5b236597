/*
 * cmd_inspect.c — `deftree inspect [OPTIONS] [FILE]`: a dump of a GGUF file.
 *
 * Prints the header (version, alignment, size, data offset), the metadata
 * (key, type, value; long arrays and strings abbreviated), the architecture
 * summary, and the tensor table (index, name, type, shape, bytes, offset) with
 * totals.  `--key KEY` prints one value in full (arrays one element a line,
 * strings as text).  Everything read from the file is printed escaped (\xNN)
 * where it is not printable text: keys and strings may hold any byte, and a
 * file must not be able to send escape sequences to the terminal.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "common.h"
#include "gguf.h"
#include "model.h"
#include "quant.h"

int cmd_inspect(int argc, char **argv);

#define INSPECT_KEY_WIDTH 40  /* key column; longer keys push the type column right */
#define INSPECT_NAME_WIDTH 28 /* tensor name column */
#define INSPECT_VALUE_LEN 160 /* bytes of a rendered value in the metadata table */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: deftree inspect [OPTIONS] [FILE]\n"
		"Print a GGUF file's header, metadata and tensor table.\n"
		"FILE defaults to the default model (%s).\n\n"
		"options:\n"
		"  --no-tensors      leave out the tensor table\n"
		"  --no-metadata     leave out the metadata\n"
		"  --key KEY         print only the value of KEY (arrays: one element a line)\n"
		"  --max-elems N     array elements shown per value (default 4, -1: all)\n"
		"  -h, --help        this text\n",
		dt_default_model_path());
}

/* s[0..n) with printable ASCII as is and other bytes as \xNN */
static void put_escaped(FILE *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, out);
		else if (c == '\\')
			fputs("\\\\", out);
		else
			fprintf(out, "\\x%02x", c);
	}
}

/* Length of a well-formed UTF-8 sequence at s (n bytes left) that encodes a
 * printable code point (>= U+00A0, not a surrogate), else 0. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
	if (s[0] >= 0xf5 || !len || len > n)
		return 0;
	uint32_t cp = s[0] & (0x7f >> len);
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	bool shortest = len == 2 ? cp >= 0x80 : len == 3 ? cp >= 0x800 : cp >= 0x10000;
	if (!shortest || cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* A value for --key: text as it is (newlines, tabs, printable UTF-8), other
 * control and invalid bytes as \xNN so the terminal stays safe. */
static void put_text(FILE *out, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = u[i] >= 0x80 ? utf8_printable(u + i, n - i) : 0;
		if (k) {
			fwrite(u + i, 1, k, out);
			i += k;
		} else if (u[i] == '\n' || u[i] == '\t' || (u[i] >= 0x20 && u[i] < 0x7f)) {
			fputc(u[i++], out);
		} else {
			fprintf(out, "\\x%02x", u[i++]);
		}
	}
}

static size_t escaped_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		n += (c >= 0x20 && c < 0x7f) ? (c == '\\' ? 2 : 1) : 4;
	}
	return n;
}

static void put_padded(FILE *out, const char *s, int width)
{
	put_escaped(out, s, strlen(s));
	for (int n = (int)escaped_len(s); n < width; n++)
		fputc(' ', out);
}

static void human_bytes(char *buf, size_t len, uint64_t n)
{
	if (n >= (1ull << 30))
		snprintf(buf, len, "%.2f GiB", (double)n / (1ull << 30));
	else if (n >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)n / (1ull << 20));
	else
		snprintf(buf, len, "%.1f KiB", (double)n / 1024);
}

// ---- --key

/* element k of a numeric/bool array, as text */
static void put_elem(FILE *out, enum gguf_type t, const uint8_t *p)
{
	union {
		uint8_t u8;
		int8_t i8;
		uint16_t u16;
		int16_t i16;
		uint32_t u32;
		int32_t i32;
		float f32;
		uint64_t u64;
		int64_t i64;
		double f64;
	} x;
	memcpy(&x, p, gguf_type_size(t));
	switch (t) {
	case GGUF_TYPE_UINT8: fprintf(out, "%u\n", x.u8); break;
	case GGUF_TYPE_INT8: fprintf(out, "%d\n", x.i8); break;
	case GGUF_TYPE_UINT16: fprintf(out, "%u\n", x.u16); break;
	case GGUF_TYPE_INT16: fprintf(out, "%d\n", x.i16); break;
	case GGUF_TYPE_UINT32: fprintf(out, "%" PRIu32 "\n", x.u32); break;
	case GGUF_TYPE_INT32: fprintf(out, "%" PRId32 "\n", x.i32); break;
	case GGUF_TYPE_FLOAT32: fprintf(out, "%.9g\n", x.f32); break;
	case GGUF_TYPE_BOOL: fprintf(out, "%s\n", x.u8 ? "true" : "false"); break;
	case GGUF_TYPE_UINT64: fprintf(out, "%" PRIu64 "\n", x.u64); break;
	case GGUF_TYPE_INT64: fprintf(out, "%" PRId64 "\n", x.i64); break;
	case GGUF_TYPE_FLOAT64: fprintf(out, "%.17g\n", x.f64); break;
	default: DT_ASSERT(!"not a numeric type");
	}
}

static int print_key(const struct gguf_ctx *g, const char *key)
{
	const struct gguf_value *v = gguf_find_value(g, key);
	if (!v) {
		fprintf(stderr, "%s: key '%s' not found\n", gguf_path(g), key);
		return 1;
	}
	size_t len;
	const char *s = gguf_value_str(v, &len);
	if (s) {
		put_text(stdout, s, len);
		putchar('\n');
		return 0;
	}
	if (gguf_value_type(v) != GGUF_TYPE_ARRAY) {
		char buf[64];
		gguf_value_format(v, buf, sizeof(buf), -1);
		printf("%s\n", buf);
		return 0;
	}
	enum gguf_type elt = gguf_value_arr_type(v);
	int64_t n = gguf_value_arr_n(v);
	const uint8_t *data = gguf_value_arr_data(v);
	size_t big = 1 << 16;
	char *buf = xmalloc(big);
	for (int64_t i = 0; i < n; i++) {
		if (elt == GGUF_TYPE_STRING) {
			s = gguf_value_arr_str(v, i, &len);
			put_text(stdout, s, len);
			putchar('\n');
		} else if (elt == GGUF_TYPE_ARRAY) {
			gguf_value_format(gguf_value_arr_at(v, i), buf, big, -1);
			printf("%s\n", buf);
		} else {
			put_elem(stdout, elt, data + (size_t)i * gguf_type_size(elt));
		}
	}
	free(buf);
	return 0;
}

// ---- the dump

static void print_header(const struct gguf_ctx *g)
{
	char hb[32];
	human_bytes(hb, sizeof(hb), gguf_file_size(g));
	printf("file:         ");
	put_escaped(stdout, gguf_path(g), strlen(gguf_path(g)));
	printf("\nsize:         %zu bytes (%s)\n", gguf_file_size(g), hb);
	printf("version:      GGUF v%" PRIu32 "\n", gguf_version(g));
	printf("alignment:    %" PRIu32 "\n", gguf_alignment(g));
	printf("data offset:  %zu\n", gguf_data_offset(g));
	printf("keys:         %" PRId64 "\n", gguf_n_kv(g));
	printf("tensors:      %" PRId64 "\n", gguf_n_tensors(g));
}

static void print_metadata(const struct gguf_ctx *g, int max_elems)
{
	int64_t n = gguf_n_kv(g);
	printf("\nmetadata (%" PRId64 " keys):\n", n);
	printf("  %-*s %-16s %s\n", INSPECT_KEY_WIDTH, "KEY", "TYPE", "VALUE");
	char value[INSPECT_VALUE_LEN], type[32];
	for (int64_t i = 0; i < n; i++) {
		const struct gguf_value *v = gguf_kv_value(g, i);
		gguf_value_type_str(v, type, sizeof(type));
		gguf_kv_format(g, i, value, sizeof(value), max_elems);
		printf("  ");
		put_padded(stdout, gguf_kv_key(g, i), INSPECT_KEY_WIDTH);
		printf(" %-16s %s\n", type, value);
	}
}

static void print_tensors(const struct gguf_ctx *g)
{
	int64_t n = gguf_n_tensors(g);
	printf("\ntensors (%" PRId64 "):\n", n);
	printf("  %5s  %-*s %-6s %-22s %12s %12s\n", "IDX", INSPECT_NAME_WIDTH, "NAME", "TYPE", "SHAPE", "BYTES",
	       "OFFSET");
	uint64_t total_bytes = 0, total_elems = 0;
	for (int64_t i = 0; i < n; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(g, i);
		char shape[96];
		int len = 0;
		uint64_t elems = 1;
		for (uint32_t d = 0; d < t->n_dims; d++)
			len += snprintf(shape + len, sizeof(shape) - (size_t)len, "%s%" PRId64, d ? " x " : "",
					t->ne[d]);
		for (int d = 0; d < GGUF_MAX_DIMS; d++)
			elems *= (uint64_t)t->ne[d];
		total_bytes += t->nbytes;
		total_elems += elems;
		printf("  %5" PRId64 "  ", i);
		put_padded(stdout, t->name, INSPECT_NAME_WIDTH);
		printf(" %-6s %-22s %12zu %12" PRIu64 "\n", quant_type_name(t->type), shape, t->nbytes, t->offset);
	}
	char hb[32];
	human_bytes(hb, sizeof(hb), total_bytes);
	printf("  total: %" PRId64 " tensors, %" PRIu64 " elements, %" PRIu64 " bytes (%s)\n", n, total_elems,
	       total_bytes, hb);
}

int cmd_inspect(int argc, char **argv)
{
	const char *path = NULL, *key = NULL;
	bool tensors = true, metadata = true;
	int max_elems = 4;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--no-tensors")) {
			tensors = false;
		} else if (!strcmp(a, "--no-metadata")) {
			metadata = false;
		} else if (!strcmp(a, "--key") && i + 1 < argc) {
			key = argv[++i];
		} else if (!strcmp(a, "--max-elems") && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || v < -1 || v > 1000000) {
				fprintf(stderr, "deftree inspect: --max-elems: expected -1 to 1000000, found '%s'\n",
					argv[i]);
				return 2;
			}
			max_elems = (int)v;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "deftree inspect: unknown or incomplete option '%s'\n", a);
			usage(stderr);
			return 2;
		} else if (!path) {
			path = a;
		} else {
			fprintf(stderr, "deftree inspect: one FILE only (found '%s' and '%s')\n", path, a);
			usage(stderr);
			return 2;
		}
	}
	if (!path)
		path = dt_default_model_path();

	char err[DT_ERR_LEN];
	struct gguf_ctx *g = gguf_open(path, err);
	if (!g) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int rc = 0;
	if (key) {
		rc = print_key(g, key);
	} else {
		print_header(g);
		if (metadata)
			print_metadata(g, max_elems);
		printf("\n");
		model_describe(g, stdout); /* architecture summary, or why it is not a model */
		if (tensors)
			print_tensors(g);
	}
	gguf_close(g);
	return rc;
}
