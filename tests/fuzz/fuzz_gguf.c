/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader (and, on every input
 * the reader accepts, the writer).
 *
 *   make fuzz      builds tests/fuzz/fuzz_gguf with clang -fsanitize=fuzzer,address,undefined
 *   tests/fuzz/fuzz_gguf -max_len=4096 -max_total_time=200 NEW_DIR $(srcdir)/tests/fuzz/corpus
 *
 * For each input: gguf_open_mem() either refuses it with a message naming the
 * input, or every accessor is exercised and checked against the invariants the
 * reader promises (keys found at their own index, strings NUL-terminated at
 * their length, tensor data inside the buffer, aligned and non-overlapping).
 * Then the parsed file is written again with the writer and re-read: it must
 * give the same keys, values and tensors.  A broken invariant aborts, which
 * libFuzzer reports as a crash.  tests/fuzz/run_corpus.c replays the seed
 * corpus through fuzz_gguf_one() in `make check`.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_gguf_one(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "fuzz_gguf: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                     \
			abort();                                                      \
		}                                                                     \
	} while (0)

static char fmt_a[4096], fmt_b[4096];

/* touches every element of v; returns a checksum so nothing is optimized out */
static uint64_t walk(const struct gguf_value *v, int depth)
{
	CHECK(depth < GGUF_MAX_DEPTH);
	uint64_t sum = 0, u;
	int64_t i;
	double f;
	bool b;
	size_t len;
	enum gguf_type t = gguf_value_type(v);
	CHECK((unsigned)t < GGUF_TYPE_COUNT);
	if (gguf_value_u64(v, &u))
		sum += u;
	if (gguf_value_i64(v, &i))
		sum += (uint64_t)i;
	if (gguf_value_f64(v, &f))
		sum += f == f;
	if (gguf_value_bool(v, &b))
		sum += b;
	const char *s = gguf_value_str(v, &len);
	CHECK((s != NULL) == (t == GGUF_TYPE_STRING));
	if (s)
		CHECK(s[len] == 0 && strlen(s) <= len);
	if (t != GGUF_TYPE_ARRAY) {
		CHECK(gguf_value_arr_n(v) == -1 && gguf_value_arr_at(v, 0) == NULL);
		return sum;
	}
	enum gguf_type elt = gguf_value_arr_type(v);
	int64_t n = gguf_value_arr_n(v);
	CHECK((unsigned)elt < GGUF_TYPE_COUNT && n >= 0);
	if (elt == GGUF_TYPE_STRING) {
		for (int64_t k = 0; k < n; k++) {
			s = gguf_value_arr_str(v, k, &len);
			CHECK(s && s[len] == 0);
			sum += len;
		}
		CHECK(gguf_value_arr_str(v, n, NULL) == NULL);
	} else if (elt == GGUF_TYPE_ARRAY) {
		for (int64_t k = 0; k < n; k++)
			sum += walk(gguf_value_arr_at(v, k), depth + 1);
		CHECK(gguf_value_arr_at(v, n) == NULL);
	} else {
		const uint8_t *p = gguf_value_arr_data(v);
		size_t es = gguf_type_size(elt);
		CHECK(p && es);
		for (int64_t k = 0; k < n * (int64_t)es; k++)
			sum += p[k];
		if (elt == GGUF_TYPE_BOOL)
			for (int64_t k = 0; k < n; k++)
				CHECK(p[k] <= 1);
	}
	return sum;
}

// ---- the writer, fed from a parsed file

static void rewrite_value(struct gguf_writer *w, const char *key, const struct gguf_value *v)
{
	enum gguf_type t = gguf_value_type(v);
	size_t len;
	if (t == GGUF_TYPE_STRING) {
		const char *s = gguf_value_str(v, &len);
		if (key)
			gguf_w_strn(w, key, s, len);
		else
			gguf_w_elem_str(w, s, len);
		return;
	}
	if (t != GGUF_TYPE_ARRAY) {
		/* scalars inside arrays never reach here: arrays of scalars are packed */
		uint8_t raw[8];
		uint64_t u;
		int64_t i;
		double f;
		bool b;
		if (t == GGUF_TYPE_FLOAT32) {
			gguf_value_f64(v, &f);
			float x = (float)f;
			memcpy(raw, &x, 4);
		} else if (t == GGUF_TYPE_FLOAT64) {
			gguf_value_f64(v, &f);
			memcpy(raw, &f, 8);
		} else if (t == GGUF_TYPE_BOOL) {
			gguf_value_bool(v, &b);
			raw[0] = b;
		} else if (gguf_value_i64(v, &i)) {
			memcpy(raw, &i, 8); /* little-endian: the low bytes come first */
		} else {
			CHECK(gguf_value_u64(v, &u));
			memcpy(raw, &u, 8);
		}
		gguf_w_scalar(w, key, t, raw);
		return;
	}
	enum gguf_type elt = gguf_value_arr_type(v);
	int64_t n = gguf_value_arr_n(v);
	gguf_w_arr_begin(w, key, elt);
	for (int64_t k = 0; k < n; k++) {
		if (elt == GGUF_TYPE_STRING) {
			const char *s = gguf_value_arr_str(v, k, &len);
			gguf_w_elem_str(w, s, len);
		} else if (elt == GGUF_TYPE_ARRAY) {
			rewrite_value(w, NULL, gguf_value_arr_at(v, k));
		} else {
			const uint8_t *p = gguf_value_arr_data(v);
			gguf_w_elem(w, p + (size_t)k * gguf_type_size(elt));
		}
	}
	gguf_w_arr_end(w);
}

static void check_rewrite(const struct gguf_ctx *c)
{
	struct gguf_writer *w = gguf_writer_new(gguf_version(c));
	for (int64_t i = 0; i < gguf_n_kv(c); i++)
		rewrite_value(w, gguf_kv_key(c, i), gguf_kv_value(c, i));
	for (int64_t i = 0; i < gguf_n_tensors(c); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(c, i);
		gguf_w_tensor_ref(w, t->name, t->type, (int)t->n_dims, t->ne, t->data);
	}
	size_t len;
	void *buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	char err[DT_ERR_LEN];
	struct gguf_ctx *c2 = gguf_open_mem(buf, len, "rewrite", err);
	if (!c2)
		fprintf(stderr, "fuzz_gguf: the rewritten file is refused: %s\n", err);
	CHECK(c2);
	CHECK(gguf_version(c2) == gguf_version(c) && gguf_alignment(c2) == gguf_alignment(c));
	CHECK(gguf_n_kv(c2) == gguf_n_kv(c) && gguf_n_tensors(c2) == gguf_n_tensors(c));
	for (int64_t i = 0; i < gguf_n_kv(c); i++) {
		CHECK(!strcmp(gguf_kv_key(c, i), gguf_kv_key(c2, i)));
		gguf_kv_format(c, i, fmt_a, sizeof(fmt_a), -1);
		gguf_kv_format(c2, i, fmt_b, sizeof(fmt_b), -1);
		CHECK(!strcmp(fmt_a, fmt_b));
	}
	for (int64_t i = 0; i < gguf_n_tensors(c); i++) {
		const struct gguf_tensor *a = gguf_tensor_at(c, i), *b = gguf_tensor_at(c2, i);
		CHECK(!strcmp(a->name, b->name) && a->type == b->type && a->n_dims == b->n_dims);
		CHECK(!memcmp(a->ne, b->ne, sizeof(a->ne)) && a->nbytes == b->nbytes);
		CHECK(!memcmp(a->data, b->data, a->nbytes));
	}
	gguf_close(c2);
	free(buf);
}

// ---- entry points

/* 1 when the reader accepted the input, 0 when it refused it. */
int fuzz_gguf_one(const uint8_t *data, size_t size)
{
	char err[DT_ERR_LEN] = "";
	struct gguf_ctx *c = gguf_open_mem(data, size, "fuzz", err);
	if (!c) {
		CHECK(!strncmp(err, "fuzz: ", 6) && strlen(err) > 8);
		return 0;
	}
	CHECK(gguf_file_size(c) == size && !strcmp(gguf_path(c), "fuzz"));
	CHECK(gguf_version(c) == 2 || gguf_version(c) == 3);
	uint32_t a = gguf_alignment(c);
	CHECK(a && !(a & (a - 1)) && gguf_data_offset(c) % a == 0);

	uint64_t sum = 0;
	for (int64_t i = 0; i < gguf_n_kv(c); i++) {
		const char *key = gguf_kv_key(c, i);
		CHECK(key && key[0] && gguf_find_key(c, key) == i);
		CHECK(gguf_kv_type(c, i) == gguf_value_type(gguf_kv_value(c, i)));
		sum += walk(gguf_kv_value(c, i), 0);
		gguf_kv_format(c, i, fmt_a, 48, 3);
		CHECK(strlen(fmt_a) < 48);
		gguf_kv_format(c, i, fmt_a, sizeof(fmt_a), -1);
		CHECK(strlen(fmt_a) < sizeof(fmt_a));

		/* every typed getter either succeeds or names the input and key */
		uint32_t u32;
		int64_t i64;
		float f32;
		bool b;
		const char *s;
		enum gguf_type elt;
		int64_t n;
		const void *p;
		int rc[6] = {
			gguf_get_u32(c, key, &u32, err), gguf_get_i64(c, key, &i64, err),
			gguf_get_f32(c, key, &f32, err), gguf_get_bool(c, key, &b, err),
			gguf_get_str(c, key, &s, err), gguf_get_arr(c, key, &elt, &n, &p, err),
		};
		int n_ok = 0;
		for (int k = 0; k < 6; k++)
			n_ok += rc[k] == 0;
		CHECK(n_ok <= 2 && !strncmp(err, "fuzz: key '", 11));
		if (gguf_kv_type(c, i) == GGUF_TYPE_ARRAY && elt == GGUF_TYPE_STRING && n > 0)
			CHECK(gguf_get_arr_str(c, key, n - 1, NULL) != NULL);
	}
	CHECK(gguf_kv_key(c, gguf_n_kv(c)) == NULL && gguf_kv_value(c, -1) == NULL);

	int64_t nt = gguf_n_tensors(c);
	for (int64_t i = 0; i < nt; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(c, i);
		CHECK(t && gguf_find_tensor(c, t->name) == t && t->name[0]);
		CHECK(t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS);
		const struct quant_type_info *info = quant_type(t->type);
		CHECK(info);
		int64_t rows = 1;
		for (int d = 0; d < GGUF_MAX_DIMS; d++) {
			CHECK(t->ne[d] >= 1);
			if (d > 0)
				rows *= t->ne[d];
		}
		CHECK(t->nbytes == quant_row_size(t->type, t->ne[0]) * (size_t)rows);
		const uint8_t *p = t->data;
		CHECK(p >= data && (size_t)(p - data) == gguf_data_offset(c) + t->offset);
		CHECK(t->offset % a == 0 && (size_t)(p - data) + t->nbytes <= size);
		sum += p[0] + p[t->nbytes - 1];
		if (nt <= 256)
			for (int64_t j = 0; j < i; j++) {
				const struct gguf_tensor *o = gguf_tensor_at(c, j);
				CHECK(o->offset + o->nbytes <= t->offset || t->offset + t->nbytes <= o->offset);
			}
	}
	CHECK(gguf_tensor_at(c, nt) == NULL);
	if (sum == 0x5eed5eed5eed5eedull) /* keep the walk */
		fprintf(stderr, "lucky checksum\n");

	check_rewrite(c);
	gguf_close(c);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_gguf_one(data, size);
	return 0;
}
