/*
 * test_gguf.c — the GGUF reader and writer.
 *
 * Good files come from the writer (every value type, nested arrays, v2 and
 * v3, alignment 64) and must read back equal; bad files are hand-built byte
 * by byte (struct raw) or patched writer output, and each must be refused
 * with "bad.gguf: what (expected X, found Y)" without a crash.  Every parse
 * runs on an exact-size heap copy so that an over-read shows up under ASan
 * (--enable-debug).  With the default model present, its facts are checked.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"
#include "gguf.h"
#include "quant.h"
#include "tap.h"

// ---- helpers

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state; /* xorshift64* */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 2685821657736338717ull;
}

static void rng_fill(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(rng_next() >> 56);
}

/* hand-built bytes */
struct raw {
	uint8_t *p;
	size_t len, cap;
};

static void r_put(struct raw *r, const void *src, size_t n)
{
	if (r->cap - r->len < n) {
		r->cap = (r->cap + n) * 2;
		r->p = xrealloc(r->p, r->cap);
	}
	memcpy(r->p + r->len, src, n);
	r->len += n;
}
static void r_u8(struct raw *r, uint8_t v)
{
	r_put(r, &v, 1);
}
static void r_u32(struct raw *r, uint32_t v)
{
	r_put(r, &v, 4);
}
static void r_u64(struct raw *r, uint64_t v)
{
	r_put(r, &v, 8);
}
static void r_str(struct raw *r, const char *s)
{
	r_u64(r, strlen(s));
	r_put(r, s, strlen(s));
}
static void r_header(struct raw *r, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	r_put(r, "GGUF", 4);
	r_u32(r, version);
	r_u64(r, n_tensors);
	r_u64(r, n_kv);
}
static void r_pad(struct raw *r, size_t align)
{
	while (r->len % align)
		r_u8(r, 0);
}
static void r_free(struct raw *r)
{
	free(r->p);
	memset(r, 0, sizeof(*r));
}

struct tspec {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[4];
	uint32_t type;
	uint64_t offset;
};

/* header, general.architecture = "test", tensor infos, padding to 32, data_len bytes */
static void build(struct raw *r, const struct tspec *t, int nt, uint64_t data_len)
{
	r_header(r, 3, (uint64_t)nt, 1);
	r_str(r, "general.architecture");
	r_u32(r, GGUF_TYPE_STRING);
	r_str(r, "test");
	for (int i = 0; i < nt; i++) {
		r_str(r, t[i].name);
		r_u32(r, t[i].n_dims);
		for (uint32_t d = 0; d < t[i].n_dims; d++)
			r_u64(r, d < 4 ? t[i].ne[d] : 1);
		r_u32(r, t[i].type);
		r_u64(r, t[i].offset);
	}
	r_pad(r, 32);
	for (uint64_t i = 0; i < data_len; i++)
		r_u8(r, (uint8_t)i);
}

/* Opens an exact-size copy of buf; *copy must be freed after gguf_close. */
static struct gguf_ctx *open_copy(const void *buf, size_t len, const char *name, char *err, void **copy)
{
	*copy = xmalloc(len ? len : 1);
	if (len)
		memcpy(*copy, buf, len);
	return gguf_open_mem(*copy, len, name, err);
}

static bool has(const char *s, const char *sub)
{
	return sub == NULL || strstr(s, sub) != NULL;
}

/* The file must be refused with "bad.gguf: " + s1 (+ s2) in the message. */
static void expect_bad(const struct raw *r, const char *what, const char *s1, const char *s2)
{
	char err[DT_ERR_LEN] = "";
	void *copy;
	struct gguf_ctx *c = open_copy(r->p, r->len, "bad.gguf", err, &copy);
	bool good = !c && !strncmp(err, "bad.gguf: ", 10) && has(err, s1) && has(err, s2);
	ok(good, "%s is refused, message names the file and says '%s'%s%s%s [%s]", what, s1,
	   s2 ? " and '" : "", s2 ? s2 : "", s2 ? "'" : "", c ? "it opened" : err);
	gguf_close(c);
	free(copy);
}

// ---- a good file with every value type

static const char *const tok4[] = { "<|endoftext|>", "<|im_start|>", "x", "y" };
static const char weird_key[] = "k\x01\xff\"\xc3\xa9 key";
static const char str_val[] = "hello\0world\xff"; /* 12 bytes */

struct values {
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
	uint8_t a_u8[7];
	int8_t a_i8[5];
	uint16_t a_u16[3];
	int16_t a_i16[4];
	uint32_t a_u32[6];
	int32_t a_i32[9];
	float a_f32[5];
	uint8_t a_bool[6];
	uint64_t a_u64[3];
	int64_t a_i64[2];
	double a_f64[4];
	char strs[300][12]; /* random strings, no NUL inside */
	uint8_t t_a[6 * 4];        /* f32 {3, 2} */
	uint8_t t_b[2 * 34 * 3];   /* q8_0 {64, 3} */
	uint8_t t_c[5 * 2];        /* f16 {5} */
	uint8_t t_d[24 * 4];       /* f32 {1, 2, 3, 4} */
	uint8_t t_e[20];           /* q4_1 {32} */
};

static void make_values(struct values *v)
{
	rng_fill(v, sizeof(*v));
	v->u8 = 200;
	v->i8 = -100;
	v->u16 = 60000;
	v->i16 = -30000;
	v->u32 = 4000000000u;
	v->i32 = -2000000000;
	v->f32 = (float)(rng_next() >> 40) * 1e-3f;
	v->u64 = (1ull << 63) + 5;
	v->i64 = -(1ll << 62) - 3;
	v->f64 = (double)(rng_next() >> 11) * 1e-7;
	for (size_t i = 0; i < DT_ARRAY_LEN(v->a_f32); i++)
		v->a_f32[i] = (float)(rng_next() % 100000) * 0.25f - 5000.0f;
	for (size_t i = 0; i < DT_ARRAY_LEN(v->a_f64); i++)
		v->a_f64[i] = (double)(int64_t)rng_next() * 1e-9;
	for (size_t i = 0; i < DT_ARRAY_LEN(v->a_bool); i++)
		v->a_bool[i] = rng_next() & 1;
	for (size_t i = 0; i < DT_ARRAY_LEN(v->strs); i++) {
		size_t n = rng_next() % 11;
		for (size_t j = 0; j < n; j++)
			v->strs[i][j] = (char)(1 + rng_next() % 255);
		v->strs[i][n] = 0;
	}
}

static struct gguf_writer *write_values(uint32_t version, const struct values *v)
{
	struct gguf_writer *w = gguf_writer_new(version);
	gguf_w_str(w, "general.architecture", "test");
	gguf_w_u32(w, "general.alignment", 64);
	gguf_w_scalar(w, "t.u8", GGUF_TYPE_UINT8, &v->u8);
	gguf_w_scalar(w, "t.i8", GGUF_TYPE_INT8, &v->i8);
	gguf_w_scalar(w, "t.u16", GGUF_TYPE_UINT16, &v->u16);
	gguf_w_scalar(w, "t.i16", GGUF_TYPE_INT16, &v->i16);
	gguf_w_u32(w, "t.u32", v->u32);
	gguf_w_i32(w, "t.i32", v->i32);
	gguf_w_f32(w, "t.f32", v->f32);
	gguf_w_bool(w, "t.bool", true);
	gguf_w_bool(w, "t.false", false);
	gguf_w_strn(w, "t.str", str_val, sizeof(str_val) - 1);
	gguf_w_str(w, "t.empty", "");
	gguf_w_u64(w, "t.u64", v->u64);
	gguf_w_scalar(w, "t.i64", GGUF_TYPE_INT64, &v->i64);
	gguf_w_scalar(w, "t.f64", GGUF_TYPE_FLOAT64, &v->f64);
	gguf_w_f32(w, "t.eps", 1e-5f);
	gguf_w_u32(w, weird_key, 7);
	gguf_w_arr(w, "a.u8", GGUF_TYPE_UINT8, v->a_u8, DT_ARRAY_LEN(v->a_u8));
	gguf_w_arr(w, "a.i8", GGUF_TYPE_INT8, v->a_i8, DT_ARRAY_LEN(v->a_i8));
	gguf_w_arr(w, "a.u16", GGUF_TYPE_UINT16, v->a_u16, DT_ARRAY_LEN(v->a_u16));
	gguf_w_arr(w, "a.i16", GGUF_TYPE_INT16, v->a_i16, DT_ARRAY_LEN(v->a_i16));
	gguf_w_arr(w, "a.u32", GGUF_TYPE_UINT32, v->a_u32, DT_ARRAY_LEN(v->a_u32));
	gguf_w_arr(w, "a.i32", GGUF_TYPE_INT32, v->a_i32, DT_ARRAY_LEN(v->a_i32));
	gguf_w_arr(w, "a.f32", GGUF_TYPE_FLOAT32, v->a_f32, DT_ARRAY_LEN(v->a_f32));
	gguf_w_arr(w, "a.bool", GGUF_TYPE_BOOL, v->a_bool, DT_ARRAY_LEN(v->a_bool));
	gguf_w_arr(w, "a.u64", GGUF_TYPE_UINT64, v->a_u64, DT_ARRAY_LEN(v->a_u64));
	gguf_w_arr(w, "a.i64", GGUF_TYPE_INT64, v->a_i64, DT_ARRAY_LEN(v->a_i64));
	gguf_w_arr(w, "a.f64", GGUF_TYPE_FLOAT64, v->a_f64, DT_ARRAY_LEN(v->a_f64));
	gguf_w_arr(w, "a.empty", GGUF_TYPE_INT32, NULL, 0);
	gguf_w_arr_str(w, "a.tokens", tok4, 4);
	const char *ptrs[DT_ARRAY_LEN(v->strs)];
	for (size_t i = 0; i < DT_ARRAY_LEN(v->strs); i++)
		ptrs[i] = v->strs[i];
	gguf_w_arr_str(w, "a.strs", ptrs, DT_ARRAY_LEN(v->strs));
	int32_t small[3] = { 1, -2, 3 };
	gguf_w_arr(w, "a.small", GGUF_TYPE_INT32, small, 3);

	/* [[1, 2, 3] uint16, ["a", "", "b\0c"], [[true, false], [] float64]] */
	gguf_w_arr_begin(w, "a.nested", GGUF_TYPE_ARRAY);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_UINT16);
	for (uint16_t x = 1; x <= 3; x++)
		gguf_w_elem(w, &x);
	gguf_w_arr_end(w);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_STRING);
	gguf_w_elem_str(w, "a", 1);
	gguf_w_elem_str(w, "", 0);
	gguf_w_elem_str(w, "b\0c", 3);
	gguf_w_arr_end(w);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_ARRAY);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_BOOL);
	uint8_t t = 1, f = 0;
	gguf_w_elem(w, &t);
	gguf_w_elem(w, &f);
	gguf_w_arr_end(w);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_FLOAT64);
	gguf_w_arr_end(w);
	gguf_w_arr_end(w);
	gguf_w_arr_end(w);

	/* the deepest nesting the reader accepts, with one int at the bottom */
	for (int d = 0; d < GGUF_MAX_DEPTH; d++)
		gguf_w_arr_begin(w, d ? NULL : "a.deep", d < GGUF_MAX_DEPTH - 1 ? GGUF_TYPE_ARRAY : GGUF_TYPE_INT32);
	int32_t bottom = 42;
	gguf_w_elem(w, &bottom);
	for (int d = 0; d < GGUF_MAX_DEPTH; d++)
		gguf_w_arr_end(w);

	gguf_w_tensor(w, "a", DT_TYPE_F32, 2, (const int64_t[]){ 3, 2 }, v->t_a);
	gguf_w_tensor(w, "blk.0.b", DT_TYPE_Q8_0, 2, (const int64_t[]){ 64, 3 }, v->t_b);
	gguf_w_tensor(w, "c", DT_TYPE_F16, 1, (const int64_t[]){ 5 }, v->t_c);
	gguf_w_tensor(w, "d", DT_TYPE_F32, 4, (const int64_t[]){ 1, 2, 3, 4 }, v->t_d);
	gguf_w_tensor_ref(w, "e", DT_TYPE_Q4_1, 1, (const int64_t[]){ 32 }, v->t_e);
	return w;
}

static bool arr_eq(const struct gguf_ctx *c, const char *key, enum gguf_type elt, const void *want,
		   int64_t n)
{
	enum gguf_type e;
	int64_t got_n;
	const void *data;
	char err[DT_ERR_LEN];
	if (gguf_get_arr(c, key, &e, &got_n, &data, err) < 0)
		return false;
	return e == elt && got_n == n && !memcmp(data, want, (size_t)n * gguf_type_size(elt));
}

static void check_values(const struct gguf_ctx *c, const struct values *v, const char *label)
{
	char err[DT_ERR_LEN];
	const struct gguf_value *x;
	uint64_t u;
	int64_t i;
	double f;
	bool b;
	size_t len;

	ok(gguf_n_kv(c) == 35, "%s: 35 keys (found %" PRId64 ")", label, gguf_n_kv(c));
	ok(gguf_alignment(c) == 64 && gguf_data_offset(c) % 64 == 0,
	   "%s: alignment 64 from general.alignment, data section at a multiple of it (%u, %zu)", label,
	   gguf_alignment(c), gguf_data_offset(c));
	ok(gguf_value_u64(gguf_find_value(c, "t.u8"), &u) && u == v->u8 &&
		   gguf_kv_type(c, gguf_find_key(c, "t.u8")) == GGUF_TYPE_UINT8,
	   "%s: uint8 round-trips", label);
	ok(gguf_value_i64(gguf_find_value(c, "t.i8"), &i) && i == v->i8 &&
		   gguf_value_type(gguf_find_value(c, "t.i8")) == GGUF_TYPE_INT8,
	   "%s: int8 round-trips", label);
	ok(gguf_value_u64(gguf_find_value(c, "t.u16"), &u) && u == v->u16, "%s: uint16 round-trips", label);
	ok(gguf_value_i64(gguf_find_value(c, "t.i16"), &i) && i == v->i16, "%s: int16 round-trips", label);
	ok(gguf_value_u64(gguf_find_value(c, "t.u32"), &u) && u == v->u32, "%s: uint32 round-trips", label);
	ok(gguf_value_i64(gguf_find_value(c, "t.i32"), &i) && i == v->i32, "%s: int32 round-trips", label);
	ok(gguf_value_f64(gguf_find_value(c, "t.f32"), &f) && (float)f == v->f32, "%s: float32 round-trips", label);
	ok(gguf_value_bool(gguf_find_value(c, "t.bool"), &b) && b &&
		   gguf_value_bool(gguf_find_value(c, "t.false"), &b) && !b,
	   "%s: bools round-trip", label);
	x = gguf_find_value(c, "t.str");
	ok(gguf_value_str(x, &len) && len == 12 && !memcmp(gguf_value_str(x, NULL), str_val, 13),
	   "%s: string with NUL and 0xff bytes round-trips (12 bytes + NUL)", label);
	ok(gguf_value_str(gguf_find_value(c, "t.empty"), &len) && len == 0, "%s: empty string round-trips", label);
	ok(gguf_value_u64(gguf_find_value(c, "t.u64"), &u) && u == v->u64, "%s: uint64 round-trips", label);
	ok(gguf_value_i64(gguf_find_value(c, "t.i64"), &i) && i == v->i64, "%s: int64 round-trips", label);
	ok(gguf_value_f64(gguf_find_value(c, "t.f64"), &f) && f == v->f64, "%s: float64 round-trips", label);
	int64_t wk = gguf_find_key(c, weird_key);
	ok(wk >= 0 && !strcmp(gguf_kv_key(c, wk), weird_key) && gguf_value_u64(gguf_kv_value(c, wk), &u) && u == 7,
	   "%s: key with control, 0xff, quote and UTF-8 bytes is found", label);
	ok(arr_eq(c, "a.u8", GGUF_TYPE_UINT8, v->a_u8, 7) && arr_eq(c, "a.i8", GGUF_TYPE_INT8, v->a_i8, 5) &&
		   arr_eq(c, "a.u16", GGUF_TYPE_UINT16, v->a_u16, 3) &&
		   arr_eq(c, "a.i16", GGUF_TYPE_INT16, v->a_i16, 4),
	   "%s: 8- and 16-bit arrays round-trip", label);
	ok(arr_eq(c, "a.u32", GGUF_TYPE_UINT32, v->a_u32, 6) && arr_eq(c, "a.i32", GGUF_TYPE_INT32, v->a_i32, 9) &&
		   arr_eq(c, "a.f32", GGUF_TYPE_FLOAT32, v->a_f32, 5),
	   "%s: 32-bit arrays round-trip", label);
	ok(arr_eq(c, "a.u64", GGUF_TYPE_UINT64, v->a_u64, 3) && arr_eq(c, "a.i64", GGUF_TYPE_INT64, v->a_i64, 2) &&
		   arr_eq(c, "a.f64", GGUF_TYPE_FLOAT64, v->a_f64, 4),
	   "%s: 64-bit arrays round-trip", label);
	ok(arr_eq(c, "a.bool", GGUF_TYPE_BOOL, v->a_bool, 6), "%s: bool array round-trips", label);
	ok(gguf_value_arr_n(gguf_find_value(c, "a.empty")) == 0 &&
		   gguf_value_arr_type(gguf_find_value(c, "a.empty")) == GGUF_TYPE_INT32,
	   "%s: empty int32 array round-trips", label);
	bool strs_ok = gguf_value_arr_n(gguf_find_value(c, "a.strs")) == 300;
	for (int k = 0; k < 300 && strs_ok; k++) {
		const char *s = gguf_get_arr_str(c, "a.strs", k, &len);
		strs_ok = s && len == strlen(v->strs[k]) && !strcmp(s, v->strs[k]);
	}
	ok(strs_ok, "%s: 300 random strings round-trip", label);
	ok(gguf_get_arr_str(c, "a.strs", 300, NULL) == NULL && gguf_get_arr_str(c, "a.strs", -1, NULL) == NULL &&
		   gguf_get_arr_str(c, "a.u8", 0, NULL) == NULL && gguf_get_arr_str(c, "nope", 0, NULL) == NULL,
	   "%s: gguf_get_arr_str is NULL out of range, on other arrays and missing keys", label);

	/* nested */
	const struct gguf_value *n = gguf_find_value(c, "a.nested");
	const struct gguf_value *n0 = gguf_value_arr_at(n, 0), *n1 = gguf_value_arr_at(n, 1);
	const struct gguf_value *n2 = gguf_value_arr_at(n, 2);
	const struct gguf_value *n20 = gguf_value_arr_at(n2, 0), *n21 = gguf_value_arr_at(n2, 1);
	const uint16_t want16[3] = { 1, 2, 3 };
	const uint8_t wantb[2] = { 1, 0 };
	ok(gguf_value_arr_type(n) == GGUF_TYPE_ARRAY && gguf_value_arr_n(n) == 3 &&
		   gguf_value_arr_data(n) == NULL && gguf_value_arr_at(n, 3) == NULL,
	   "%s: array of 3 arrays", label);
	ok(gguf_value_arr_type(n0) == GGUF_TYPE_UINT16 && gguf_value_arr_n(n0) == 3 &&
		   !memcmp(gguf_value_arr_data(n0), want16, 6),
	   "%s: nested uint16 array [1, 2, 3]", label);
	const char *s2 = gguf_value_arr_str(n1, 2, &len);
	ok(gguf_value_arr_n(n1) == 3 && !strcmp(gguf_value_arr_str(n1, 0, NULL), "a") &&
		   !strcmp(gguf_value_arr_str(n1, 1, NULL), "") && s2 && len == 3 && !memcmp(s2, "b\0c", 4),
	   "%s: nested string array [\"a\", \"\", \"b\\0c\"]", label);
	ok(gguf_value_arr_n(n2) == 2 && gguf_value_arr_type(n20) == GGUF_TYPE_BOOL &&
		   gguf_value_arr_n(n20) == 2 && !memcmp(gguf_value_arr_data(n20), wantb, 2) &&
		   gguf_value_arr_type(n21) == GGUF_TYPE_FLOAT64 && gguf_value_arr_n(n21) == 0,
	   "%s: third level [[true, false], [] float64]", label);
	const struct gguf_value *d = gguf_find_value(c, "a.deep");
	int depth = 1;
	while (gguf_value_arr_type(d) == GGUF_TYPE_ARRAY) {
		d = gguf_value_arr_at(d, 0);
		depth++;
	}
	int32_t bottom = 0;
	if (gguf_value_arr_data(d))
		memcpy(&bottom, gguf_value_arr_data(d), 4);
	ok(depth == GGUF_MAX_DEPTH && gguf_value_arr_n(d) == 1 && bottom == 42,
	   "%s: %d levels of nesting read back (found %d, bottom %d)", label, GGUF_MAX_DEPTH, depth, bottom);

	/* tensors */
	struct {
		const char *name;
		uint32_t type;
		uint32_t n_dims;
		int64_t ne[4];
		const void *data;
		size_t nbytes;
	} want[5] = {
		{ "a", DT_TYPE_F32, 2, { 3, 2, 1, 1 }, v->t_a, sizeof(v->t_a) },
		{ "blk.0.b", DT_TYPE_Q8_0, 2, { 64, 3, 1, 1 }, v->t_b, sizeof(v->t_b) },
		{ "c", DT_TYPE_F16, 1, { 5, 1, 1, 1 }, v->t_c, sizeof(v->t_c) },
		{ "d", DT_TYPE_F32, 4, { 1, 2, 3, 4 }, v->t_d, sizeof(v->t_d) },
		{ "e", DT_TYPE_Q4_1, 1, { 32, 1, 1, 1 }, v->t_e, sizeof(v->t_e) },
	};
	bool t_ok = gguf_n_tensors(c) == 5;
	for (int k = 0; k < 5 && t_ok; k++) {
		const struct gguf_tensor *t = gguf_tensor_at(c, k);
		t_ok = t && t == gguf_find_tensor(c, want[k].name) && !strcmp(t->name, want[k].name) &&
		       t->type == want[k].type && t->n_dims == want[k].n_dims &&
		       !memcmp(t->ne, want[k].ne, sizeof(t->ne)) && t->nbytes == want[k].nbytes &&
		       !memcmp(t->data, want[k].data, t->nbytes) && t->offset % 64 == 0;
		if (!t_ok)
			diag("tensor %d differs", k);
	}
	ok(t_ok, "%s: 5 tensors (f32, q8_0, f16, 4-dim f32, q4_1) with names, shapes, types, data,"
	   " 64-aligned offsets", label);
	ok(gguf_find_tensor(c, "missing") == NULL && gguf_tensor_at(c, 5) == NULL && gguf_tensor_at(c, -1) == NULL,
	   "%s: unknown tensor name and out-of-range index give NULL", label);
	(void)err;
}

static void test_roundtrip(void)
{
	struct values *v = xmalloc(sizeof(*v));
	make_values(v);
	for (uint32_t version = 2; version <= 3; version++) {
		char label[32], err[DT_ERR_LEN] = "";
		snprintf(label, sizeof(label), "v%u in memory", version);
		struct gguf_writer *w = write_values(version, v);
		size_t len;
		void *buf = gguf_writer_bytes(w, &len);
		void *copy;
		struct gguf_ctx *c = open_copy(buf, len, "good.gguf", err, &copy);
		if (!ok(c != NULL, "%s: writer output opens [%s]", label, c ? "" : err)) {
			free(buf);
			gguf_writer_free(w);
			continue;
		}
		ok(gguf_version(c) == version && gguf_file_size(c) == len && !strcmp(gguf_path(c), "good.gguf"),
		   "%s: version %u, size %zu, name", label, version, len);
		check_values(c, v, label);
		gguf_close(c);
		free(copy);

		/* through a file and mmap */
		char path[512];
		const char *dir = tap_tmpdir();
		snprintf(path, sizeof(path), "%s/v%u.gguf", dir, version);
		ok(gguf_writer_save(w, path, err) == 0, "v%u: gguf_writer_save writes %s", version, path);
		c = gguf_open(path, err);
		snprintf(label, sizeof(label), "v%u from a file", version);
		if (ok(c != NULL, "%s opens [%s]", label, c ? "" : err)) {
			struct stat st;
			ok(stat(path, &st) == 0 && (size_t)st.st_size == len && gguf_file_size(c) == len,
			   "%s: file has the same %zu bytes as gguf_writer_bytes", label, len);
			check_values(c, v, label);
		}
		gguf_close(c);
		unlink(path);
		rmdir(dir);
		free(buf);
		gguf_writer_free(w);
	}
	free(v);
}

// ---- getters and formatting

static void test_getters(void)
{
	struct values *v = xmalloc(sizeof(*v));
	make_values(v);
	struct gguf_writer *w = write_values(3, v);
	size_t len;
	void *buf = gguf_writer_bytes(w, &len);
	char err[DT_ERR_LEN] = "", out[256];
	struct gguf_ctx *c = gguf_open_mem(buf, len, "get.gguf", err);
	if (!ok(c != NULL, "getter fixture opens [%s]", err)) {
		free(buf);
		gguf_writer_free(w);
		free(v);
		return;
	}
	uint32_t u32 = 0;
	int64_t i64 = 0;
	float f32 = 0;
	bool b = false;
	const char *s = NULL;
	ok(gguf_get_u32(c, "t.u8", &u32, err) == 0 && u32 == 200, "gguf_get_u32 widens a uint8 (200)");
	ok(gguf_get_u32(c, "t.u32", &u32, err) == 0 && u32 == 4000000000u, "gguf_get_u32 reads a uint32");
	ok(gguf_get_i64(c, "t.i8", &i64, err) == 0 && i64 == -100, "gguf_get_i64 widens an int8 (-100)");
	ok(gguf_get_i64(c, "t.i64", &i64, err) == 0 && i64 == v->i64, "gguf_get_i64 reads an int64");
	ok(gguf_get_u32(c, "t.i8", &u32, err) < 0 && has(err, "get.gguf: key 't.i8': value out of range") &&
		   has(err, "found -100"),
	   "gguf_get_u32 on -100 reports out of range [%s]", err);
	ok(gguf_get_u32(c, "t.u64", &u32, err) < 0 && has(err, "out of range") && has(err, "9223372036854775813"),
	   "gguf_get_u32 on 2^63+5 reports out of range [%s]", err);
	ok(gguf_get_i64(c, "t.u64", &i64, err) < 0 && has(err, "'t.u64'") && has(err, "out of range"),
	   "gguf_get_i64 on 2^63+5 reports out of range [%s]", err);
	ok(gguf_get_f32(c, "t.f32", &f32, err) == 0 && f32 == v->f32, "gguf_get_f32 reads a float32");
	ok(gguf_get_f32(c, "t.f64", &f32, err) == 0 && f32 == (float)v->f64, "gguf_get_f32 accepts a float64");
	ok(gguf_get_bool(c, "t.bool", &b, err) == 0 && b, "gguf_get_bool reads true");
	ok(gguf_get_str(c, "general.architecture", &s, err) == 0 && !strcmp(s, "test"), "gguf_get_str reads \"test\"");
	ok(gguf_get_u32(c, "general.architecture", &u32, err) < 0 &&
		   has(err, "get.gguf: key 'general.architecture': wrong type (expected uint32, found string)"),
	   "wrong-type getter names file, key and both types [%s]", err);
	ok(gguf_get_f32(c, "t.u32", &f32, err) < 0 && has(err, "'t.u32'") &&
		   has(err, "expected float32, found uint32"),
	   "gguf_get_f32 on a uint32 is a type mismatch [%s]", err);
	ok(gguf_get_str(c, "a.i32", &s, err) < 0 && has(err, "expected string, found array[int32]"),
	   "gguf_get_str on an int32 array names the array's element type [%s]", err);
	ok(gguf_get_bool(c, "t.u8", &b, err) < 0 && has(err, "expected bool, found uint8"),
	   "gguf_get_bool on a uint8 is a type mismatch [%s]", err);
	ok(gguf_get_arr(c, "t.u8", NULL, NULL, NULL, err) < 0 && has(err, "expected array, found uint8"),
	   "gguf_get_arr on a scalar is a type mismatch [%s]", err);
	ok(gguf_get_i64(c, "no.such.key", &i64, err) < 0 && has(err, "get.gguf: key 'no.such.key' not found"),
	   "missing key is reported with file and key [%s]", err);
	enum gguf_type elt;
	int64_t n;
	const void *data = (const void *)1;
	ok(gguf_get_arr(c, "a.tokens", &elt, &n, &data, err) == 0 && elt == GGUF_TYPE_STRING && n == 4 && !data,
	   "gguf_get_arr on strings: element type, length, data NULL");
	ok(gguf_find_key(c, "t.u") < 0 && gguf_find_key(c, "") < 0 && gguf_kv_key(c, gguf_n_kv(c)) == NULL &&
		   gguf_kv_value(c, -1) == NULL,
	   "prefix of a key, empty key, out-of-range index: not found");
	bool all_found = true;
	for (int64_t k = 0; k < gguf_n_kv(c); k++)
		all_found = all_found && gguf_find_key(c, gguf_kv_key(c, k)) == k;
	ok(all_found, "every key is found at its own index");

	/* formatting */
	gguf_kv_format(c, gguf_find_key(c, "a.tokens"), out, sizeof(out), 2);
	ok(!strcmp(out, "[4 strings: \"<|endoftext|>\", \"<|im_start|>\", ...]"), "string array abbreviated: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "a.small"), out, sizeof(out), 8);
	ok(!strcmp(out, "[3 int32: 1, -2, 3]"), "short int32 array in full: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "t.str"), out, sizeof(out), 8);
	ok(!strcmp(out, "\"hello\\x00world\\xff\""), "string escapes NUL and 0xff: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "a.nested"), out, sizeof(out), 8);
	ok(!strcmp(out, "[3 arrays: [3 uint16: 1, 2, 3], [3 strings: \"a\", \"\", \"b\\x00c\"],"
			" [2 arrays: [2 bool: true, false], [0 float64]]]"),
	   "nested arrays: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "t.eps"), out, sizeof(out), 8);
	ok(!strcmp(out, "1e-05"), "float32 1e-5 shows as 1e-05: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "t.i64"), out, sizeof(out), 8);
	char want[64];
	snprintf(want, sizeof(want), "%" PRId64, v->i64);
	ok(!strcmp(out, want), "int64 shows as %s: %s", want, out);
	gguf_kv_format(c, gguf_find_key(c, "a.strs"), out, 20, 8);
	ok(strlen(out) == 19 && !strcmp(out + 16, "..."), "output cut to the buffer ends in ...: %s", out);
	gguf_kv_format(c, gguf_find_key(c, "a.u8"), out, sizeof(out), 0);
	ok(!strcmp(out, "[7 uint8: ...]"), "max_elems 0 shows only the count: %s", out);
	char ts[32];
	gguf_value_type_str(gguf_find_value(c, "a.nested"), ts, sizeof(ts));
	ok(!strcmp(ts, "array[array]"), "type string of nested arrays: %s", ts);

	gguf_close(c);
	free(buf);
	gguf_writer_free(w);
	free(v);
}

// ---- truncation and corruption

static void test_truncation(void)
{
	/* tensor sizes are multiples of the alignment: no padding after the last
	 * one, so every strict prefix of the file is invalid */
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_u32(w, "general.alignment", 32);
	gguf_w_f32(w, "x.f", 0.5f);
	gguf_w_bool(w, "x.b", true);
	gguf_w_arr_str(w, "x.tokens", tok4, 4);
	int16_t a16[3] = { -1, 2, -3 };
	gguf_w_arr(w, "x.a16", GGUF_TYPE_INT16, a16, 3);
	gguf_w_arr_begin(w, "x.nested", GGUF_TYPE_ARRAY);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_UINT8);
	uint8_t one = 1;
	gguf_w_elem(w, &one);
	gguf_w_arr_end(w);
	gguf_w_arr_end(w);
	float data[16];
	rng_fill(data, sizeof(data));
	gguf_w_tensor(w, "t0", DT_TYPE_F32, 2, (const int64_t[]){ 8, 2 }, data);
	gguf_w_tensor(w, "t1", DT_TYPE_F16, 1, (const int64_t[]){ 16 }, data);
	size_t len;
	uint8_t *buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);

	char err[DT_ERR_LEN];
	void *copy;
	struct gguf_ctx *c = open_copy(buf, len, "trunc.gguf", err, &copy);
	ok(c && gguf_n_tensors(c) == 2 && len % 32 == 0, "the %zu-byte file opens whole", len);
	gguf_close(c);
	free(copy);

	size_t bad_at = SIZE_MAX;
	char bad_err[DT_ERR_LEN] = "";
	int n_msgs_with_expected = 0;
	for (size_t cut = 0; cut < len; cut++) {
		err[0] = 0;
		c = open_copy(buf, cut, "trunc.gguf", err, &copy);
		if ((c || strncmp(err, "trunc.gguf: ", 12) || strlen(err) < 20) && bad_at == SIZE_MAX) {
			bad_at = cut;
			snprintf(bad_err, sizeof(bad_err), "%s", c ? "(opened)" : err);
		}
		n_msgs_with_expected += has(err, "(expected") != 0;
		gguf_close(c);
		free(copy);
	}
	ok(bad_at == SIZE_MAX, "each of the %zu truncations is refused with a message%s%s", len,
	   bad_at == SIZE_MAX ? "" : "; first not: ", bad_err);
	if (bad_at != SIZE_MAX)
		diag("first bad truncation at %zu bytes", bad_at);
	ok(n_msgs_with_expected == (int)len, "each truncation message says what was expected (%d of %zu)",
	   n_msgs_with_expected, len);

	/* every byte corrupted in turn (random new value): open or refuse, never crash */
	int opened = 0, refused = 0, bad_msgs = 0;
	for (size_t pos = 0; pos < len; pos++) {
		uint8_t *mut = xmalloc(len);
		memcpy(mut, buf, len);
		mut[pos] ^= (uint8_t)(1 + rng_next() % 255);
		c = gguf_open_mem(mut, len, "flip.gguf", err);
		if (c) {
			opened++;
			char out[512];
			for (int64_t k = 0; k < gguf_n_kv(c); k++)
				gguf_kv_format(c, k, out, sizeof(out), 4);
		} else {
			refused++;
			bad_msgs += strncmp(err, "flip.gguf: ", 11) != 0;
		}
		gguf_close(c);
		free(mut);
	}
	ok(bad_msgs == 0 && opened + refused == (int)len,
	   "each of %zu single-byte corruptions opens (%d) or is refused with a message (%d)", len, opened, refused);
	free(buf);
}

// ---- hand-built bad files

static void test_header(void)
{
	struct raw r = { 0 };
	r_put(&r, "GGUX", 4);
	r_u32(&r, 3);
	r_u64(&r, 0);
	r_u64(&r, 0);
	expect_bad(&r, "bad magic", "bad magic (expected \"GGUF\", found \"GGUX\")", NULL);
	r_free(&r);

	r_header(&r, 1, 0, 0);
	expect_bad(&r, "version 1", "version 1 is not supported", "expected 2 or 3, found 1");
	r_free(&r);
	r_header(&r, 4, 0, 0);
	expect_bad(&r, "version 4", "unsupported GGUF version (expected 2 or 3, found 4)", NULL);
	r_free(&r);
	r_header(&r, 0x03000000, 0, 0);
	expect_bad(&r, "a big-endian v3 file", "big-endian", NULL);
	r_free(&r);
	expect_bad(&r, "an empty buffer", "too short", "found 0");

	r_header(&r, 2, 0, 0);
	char err[DT_ERR_LEN];
	struct gguf_ctx *c = gguf_open_mem(r.p, r.len, "empty.gguf", err);
	ok(c && gguf_n_kv(c) == 0 && gguf_n_tensors(c) == 0 && gguf_alignment(c) == 32,
	   "a v2 header with no keys and no tensors opens (alignment 32)");
	gguf_close(c);
	r_free(&r);

	r_header(&r, 3, 0, 1ull << 63);
	expect_bad(&r, "n_kv = 2^63", "n_kv 9223372036854775808 cannot fit", "expected at most 0");
	r_free(&r);
	r_header(&r, 3, 0, UINT64_MAX);
	r_str(&r, "k");
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u8(&r, 1);
	expect_bad(&r, "n_kv = 2^64-1", "n_kv 18446744073709551615 cannot fit", "expected at most 1,");
	r_free(&r);
	r_header(&r, 3, 1ull << 63, 0);
	expect_bad(&r, "n_tensors = 2^63", "n_tensors 9223372036854775808 cannot fit", NULL);
	r_free(&r);
}

/* one key-value pair after a v3 header: key, type, then raw value bytes from the caller */
static void kv_start(struct raw *r, const char *key, uint32_t type)
{
	r_header(r, 3, 0, 1);
	r_str(r, key);
	r_u32(r, type);
}

static void test_metadata(void)
{
	struct raw r = { 0 };

	kv_start(&r, "s", GGUF_TYPE_STRING);
	r_u64(&r, 1ull << 63);
	r_put(&r, "abc", 3);
	expect_bad(&r, "string length 2^63", "key 0 's': string length 9223372036854775808", "expected at most 3");
	r_free(&r);
	kv_start(&r, "s", GGUF_TYPE_STRING);
	r_u64(&r, UINT64_MAX);
	expect_bad(&r, "string length 2^64-1", "string length 18446744073709551615", NULL);
	r_free(&r);
	r_header(&r, 3, 0, 1);
	r_u64(&r, 1ull << 62);
	r_put(&r, "key.....", 8);
	expect_bad(&r, "key length 2^62", "key 0: key length 4611686018427387904", "runs past the end");
	r_free(&r);

	kv_start(&r, "arr", GGUF_TYPE_ARRAY);
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u64(&r, 1ull << 62);
	r_put(&r, "0123456789", 10);
	expect_bad(&r, "uint8 array length 2^62", "key 0 'arr': array of 4611686018427387904 uint8",
		   "expected at most 10 elements");
	r_free(&r);
	kv_start(&r, "arr", GGUF_TYPE_ARRAY);
	r_u32(&r, GGUF_TYPE_STRING);
	r_u64(&r, UINT64_MAX);
	r_u64(&r, 0);
	expect_bad(&r, "string array length 2^64-1", "array of 18446744073709551615 string",
		   "expected at most 1 elements");
	r_free(&r);
	kv_start(&r, "arr", GGUF_TYPE_ARRAY);
	r_u32(&r, GGUF_TYPE_UINT32);
	r_u64(&r, 1ull << 62); /* n * 4 wraps to 0 in 64 bits */
	expect_bad(&r, "uint32 array whose byte size wraps", "array of 4611686018427387904 uint32", NULL);
	r_free(&r);

	kv_start(&r, "k", 13);
	r_u32(&r, 0);
	expect_bad(&r, "value type 13", "key 0 'k': unknown value type", "expected 0 to 12, found 13");
	r_free(&r);
	kv_start(&r, "k", GGUF_TYPE_ARRAY);
	r_u32(&r, 77);
	r_u64(&r, 0);
	expect_bad(&r, "array element type 77", "unknown array element type", "found 77");
	r_free(&r);

	kv_start(&r, "deep", GGUF_TYPE_ARRAY);
	for (int d = 0; d < GGUF_MAX_DEPTH; d++) {
		r_u32(&r, GGUF_TYPE_ARRAY);
		r_u64(&r, 1);
	}
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u64(&r, 0);
	expect_bad(&r, "arrays nested 9 deep", "key 0 'deep': arrays nested too deeply", "at most 8 levels");
	r_free(&r);

	kv_start(&r, "b", GGUF_TYPE_BOOL);
	r_u8(&r, 2);
	expect_bad(&r, "bool value 2", "key 0 'b': bool value", "expected 0 or 1, found 2");
	r_free(&r);
	kv_start(&r, "b", GGUF_TYPE_ARRAY);
	r_u32(&r, GGUF_TYPE_BOOL);
	r_u64(&r, 3);
	r_put(&r, "\x01\x00\x07", 3);
	expect_bad(&r, "bool array element 7", "bool element 2", "expected 0 or 1, found 7");
	r_free(&r);

	r_header(&r, 3, 0, 1);
	r_u64(&r, 5);
	r_put(&r, "ab\0cd", 5);
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u8(&r, 0);
	expect_bad(&r, "key with a NUL byte", "key 0: key contains a NUL byte", "found one at byte 2");
	r_free(&r);
	r_header(&r, 3, 0, 1);
	r_u64(&r, 0);
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u8(&r, 0);
	expect_bad(&r, "empty key", "empty key", NULL);
	r_free(&r);

	r_header(&r, 3, 0, 3);
	r_str(&r, "general.name");
	r_u32(&r, GGUF_TYPE_STRING);
	r_str(&r, "x");
	r_str(&r, "a");
	r_u32(&r, GGUF_TYPE_UINT8);
	r_u8(&r, 1);
	r_str(&r, "general.name");
	r_u32(&r, GGUF_TYPE_UINT32);
	r_u32(&r, 1);
	expect_bad(&r, "duplicate key", "key 2 'general.name': duplicate key", "after index 0");
	r_free(&r);

	/* key bytes shown escaped in messages */
	kv_start(&r, "evil\x1b[2J", GGUF_TYPE_BOOL);
	r_u8(&r, 9);
	expect_bad(&r, "key with an escape sequence", "key 0 'evil\\x1b[2J'", NULL);
	r_free(&r);

	/* general.alignment */
	uint32_t bad_align[] = { 0, 48, 3 };
	for (size_t k = 0; k < DT_ARRAY_LEN(bad_align); k++) {
		kv_start(&r, "general.alignment", GGUF_TYPE_UINT32);
		r_u32(&r, bad_align[k]);
		char what[64], found[64];
		snprintf(what, sizeof(what), "general.alignment = %u", bad_align[k]);
		snprintf(found, sizeof(found), "found %u)", bad_align[k]);
		expect_bad(&r, what, "'general.alignment': alignment is not a power of two", found);
		r_free(&r);
	}
	kv_start(&r, "general.alignment", GGUF_TYPE_UINT64);
	r_u64(&r, 64);
	expect_bad(&r, "general.alignment as uint64", "'general.alignment': wrong type", "expected uint32, found uint64");
	r_free(&r);
	kv_start(&r, "general.alignment", GGUF_TYPE_STRING);
	r_str(&r, "32");
	expect_bad(&r, "general.alignment as string", "wrong type", "found string");
	r_free(&r);
}

/* offset just after tensor `name`'s name inside a file (n_dims follows) */
static size_t tensor_info_pos(const uint8_t *buf, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 8; i + n <= len; i++) {
		uint64_t l;
		memcpy(&l, buf + i - 8, 8);
		if (l == n && !memcmp(buf + i, name, n))
			return i + n;
	}
	return 0;
}

static void test_tensors(void)
{
	struct raw r = { 0 };
	char err[DT_ERR_LEN];

	struct tspec good[] = {
		{ "b", 1, { 16 }, DT_TYPE_F32, 128 }, /* out of order, with a gap */
		{ "a", 2, { 32, 2 }, DT_TYPE_Q8_0, 0 },
	};
	build(&r, good, 2, 192);
	struct gguf_ctx *c = gguf_open_mem(r.p, r.len, "ok.gguf", err);
	ok(c && gguf_find_tensor(c, "a")->nbytes == 68 && gguf_find_tensor(c, "b")->offset == 128,
	   "tensors out of offset order with a gap between them are accepted [%s]", c ? "" : err);
	gguf_close(c);
	r_free(&r);

	struct {
		const char *what;
		struct tspec t[2];
		int nt;
		uint64_t data;
		const char *s1, *s2;
	} cases[] = {
		{ "ne = 2^32 x 2^32 x 2^32", { { "big", 3, { 1ull << 32, 1ull << 32, 1ull << 32 }, DT_TYPE_F32, 0 } }, 1, 32,
		  "tensor 0 'big': element count overflows", NULL },
		{ "ne[0] = 2^61 of f64 (bytes overflow)", { { "w", 1, { 1ull << 61 }, DT_TYPE_F64, 0 } }, 1, 32,
		  "byte size overflows", NULL },
		{ "ne = 2^63", { { "w", 1, { 1ull << 63 }, DT_TYPE_F32, 0 } }, 1, 32,
		  "bad size of dimension 0", "found 9223372036854775808" },
		{ "a zero dimension", { { "w", 2, { 4, 0 }, DT_TYPE_F32, 0 } }, 1, 32,
		  "bad size of dimension 1 (expected 1 to", "found 0" },
		{ "n_dims 0", { { "w", 0, { 0 }, DT_TYPE_F32, 0 } }, 1, 32,
		  "bad dimension count (expected 1 to 4, found 0)", NULL },
		{ "n_dims 5", { { "w", 5, { 1, 1, 1, 1 }, DT_TYPE_F32, 0 } }, 1, 32,
		  "bad dimension count (expected 1 to 4, found 5)", NULL },
		{ "ne[0] = 33 for q8_0", { { "w", 1, { 33 }, DT_TYPE_Q8_0, 0 } }, 1, 64,
		  "not a multiple of the q8_0 block size", "expected a multiple of 32, found ne[0] = 33" },
		{ "tensor type 4 (removed from ggml)", { { "w", 1, { 32 }, 4, 0 } }, 1, 64,
		  "tensor 0 'w': unknown tensor type", "found 4" },
		{ "tensor type 99", { { "w", 1, { 32 }, 99, 0 } }, 1, 64, "unknown tensor type", "found 99" },
		{ "misaligned offset 4", { { "w", 1, { 4 }, DT_TYPE_F32, 4 } }, 1, 64,
		  "tensor 0 'w': data offset is not aligned", "expected a multiple of 32, found 4" },
		{ "offset 2^40", { { "w", 1, { 4 }, DT_TYPE_F32, 1ull << 40 } }, 1, 64,
		  "data runs past the end of the file", "found offset 1099511627776" },
		{ "offset 2^64-32 (offset + size wraps)", { { "w", 1, { 16 }, DT_TYPE_F32, UINT64_MAX - 31 } }, 1, 64,
		  "data runs past the end of the file", NULL },
		{ "data one byte short", { { "w", 1, { 16 }, DT_TYPE_F32, 0 } }, 1, 63,
		  "data runs past the end", "<= 63 bytes of data" },
		{ "overlapping tensors", { { "a", 1, { 16 }, DT_TYPE_F32, 0 }, { "b", 1, { 16 }, DT_TYPE_F32, 32 } }, 2, 128,
		  "tensor 1 'b': data overlaps tensor 0 'a'", "expected offset >= 64, found 32" },
		{ "two tensors at one offset", { { "a", 1, { 8 }, DT_TYPE_F32, 32 }, { "b", 1, { 8 }, DT_TYPE_F32, 32 } }, 2, 128,
		  "overlaps", NULL },
		{ "duplicate tensor name", { { "w", 1, { 8 }, DT_TYPE_F32, 0 }, { "w", 1, { 8 }, DT_TYPE_F32, 32 } }, 2, 64,
		  "tensor 1 'w': duplicate tensor name", "after tensor 0" },
	};
	for (size_t k = 0; k < DT_ARRAY_LEN(cases); k++) {
		build(&r, cases[k].t, cases[k].nt, cases[k].data);
		expect_bad(&r, cases[k].what, cases[k].s1, cases[k].s2);
		r_free(&r);
	}

	/* tensor name with a NUL, huge tensor name */
	r_header(&r, 3, 1, 0);
	r_u64(&r, 3);
	r_put(&r, "a\0b", 3);
	r_u32(&r, 1);
	r_u64(&r, 8);
	r_u32(&r, DT_TYPE_F32);
	r_u64(&r, 0);
	r_pad(&r, 32);
	r_put(&r, "0123456789abcdef0123456789abcdef", 32);
	expect_bad(&r, "tensor name with a NUL", "tensor 0: tensor name contains a NUL byte", NULL);
	r_free(&r);
	r_header(&r, 3, 1, 0);
	r_u64(&r, 1ull << 60);
	for (int k = 0; k < 5; k++)
		r_u64(&r, 0);
	expect_bad(&r, "tensor name length 2^60", "tensor name length 1152921504606846976", "runs past the end");
	r_free(&r);

	/* a writer file whose tensor offset is patched: misaligned within a 64 alignment */
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_u32(w, "general.alignment", 64);
	float zeros[32] = { 0 };
	gguf_w_tensor(w, "t0", DT_TYPE_F32, 1, (const int64_t[]){ 32 }, zeros);
	gguf_w_tensor(w, "t1", DT_TYPE_F32, 1, (const int64_t[]){ 16 }, zeros);
	size_t len;
	uint8_t *buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	size_t pos = tensor_info_pos(buf, len, "t1"); /* n_dims 4, ne 8, type 4, offset 8 */
	uint64_t off;
	memcpy(&off, buf + pos + 16, 8);
	ok(pos && off == 128, "writer placed t1 at offset 128 (found %" PRIu64 ")", off);
	off = 96; /* a multiple of 32 but not of 64 */
	memcpy(buf + pos + 16, &off, 8);
	r.p = buf;
	r.len = len;
	expect_bad(&r, "offset 96 under general.alignment 64", "tensor 1 't1': data offset is not aligned",
		   "expected a multiple of 64, found 96");
	free(buf);
	memset(&r, 0, sizeof(r));
}

static void test_writer_edges(void)
{
	/* a huge alignment without tensors: no padding is written */
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_u32(w, "general.alignment", 1u << 30);
	size_t len;
	void *buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	char err[DT_ERR_LEN];
	struct gguf_ctx *c = gguf_open_mem(buf, len, "align.gguf", err);
	ok(len < 100 && c && gguf_alignment(c) == 1u << 30 && gguf_n_tensors(c) == 0,
	   "alignment 2^30 without tensors: a %zu-byte file that reads back [%s]", len, c ? "" : err);
	gguf_close(c);
	free(buf);

	/* alignment 1: tensors packed back to back */
	w = gguf_writer_new(3);
	gguf_w_u32(w, "general.alignment", 1);
	uint8_t d[6] = { 1, 2, 3, 4, 5, 6 };
	gguf_w_tensor(w, "a", DT_TYPE_I8, 1, (const int64_t[]){ 3 }, d);
	gguf_w_tensor(w, "b", DT_TYPE_I8, 1, (const int64_t[]){ 3 }, d + 3);
	buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	c = gguf_open_mem(buf, len, "align1.gguf", err);
	const struct gguf_tensor *b = c ? gguf_find_tensor(c, "b") : NULL;
	ok(b && b->offset == 3 && !memcmp(b->data, d + 3, 3) && gguf_data_offset(c) + 6 == len,
	   "alignment 1: tensors back to back, file ends with the data [%s]", c ? "" : err);
	gguf_close(c);
	free(buf);
}

static void test_open_errors(void)
{
	char err[DT_ERR_LEN];
	const char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/missing.gguf", dir);
	ok(!gguf_open(path, err) && has(err, path) && has(err, "cannot open"), "missing file: %s", err);
	ok(!gguf_open(dir, err) && has(err, dir) && has(err, "not a regular file"), "a directory: %s", err);
	snprintf(path, sizeof(path), "%s/empty.gguf", dir);
	FILE *f = fopen(path, "wb");
	if (f)
		fclose(f);
	ok(!gguf_open(path, err) && has(err, path) && has(err, "too short"), "an empty file: %s", err);
	unlink(path);
	rmdir(dir);
	gguf_close(NULL);
	gguf_writer_free(NULL);
	ok(1, "gguf_close(NULL) and gguf_writer_free(NULL) do nothing");
}

// ---- the default model

static void test_model(void)
{
	const char *path = tap_model_path();
	if (!path) {
		for (int k = 0; k < 8; k++)
			tap_skip("default model not present");
		return;
	}
	char err[DT_ERR_LEN];
	double t0 = dt_now_s();
	struct gguf_ctx *c = gguf_open(path, err);
	double dt = dt_now_s() - t0;
	if (!ok(c != NULL, "default model opens [%s]", c ? "" : err)) {
		for (int k = 0; k < 7; k++)
			tap_skip("model did not open");
		return;
	}
	diag("opened %s in %.1f ms (%" PRId64 " keys, %" PRId64 " tensors)", path, dt * 1e3, gguf_n_kv(c),
	     gguf_n_tensors(c));
	const char *arch = NULL;
	bool good = gguf_get_str(c, "general.architecture", &arch, err) == 0 && !strcmp(arch, "llama");
	ok(good, "architecture is llama (found %s)", arch ? arch : err);
	ok(gguf_n_tensors(c) == 272, "272 tensors (found %" PRId64 ")", gguf_n_tensors(c));
	uint32_t blocks = 0;
	good = gguf_get_u32(c, "llama.block_count", &blocks, err) == 0 && blocks == 30;
	ok(good, "llama.block_count 30 (found %u)", blocks);
	enum gguf_type elt = GGUF_TYPE_COUNT;
	int64_t n = 0;
	good = gguf_get_arr(c, "tokenizer.ggml.tokens", &elt, &n, NULL, err) == 0 && elt == GGUF_TYPE_STRING &&
	       n == 49152;
	ok(good, "tokenizer.ggml.tokens: 49152 strings (found %" PRId64 ")", n);
	const char *t0s = gguf_get_arr_str(c, "tokenizer.ggml.tokens", 0, NULL);
	const char *t1s = gguf_get_arr_str(c, "tokenizer.ggml.tokens", 1, NULL);
	ok(t0s && t1s && !strcmp(t0s, "<|endoftext|>") && !strcmp(t1s, "<|im_start|>"),
	   "tokens 0 and 1 are <|endoftext|> and <|im_start|> (found %s, %s)", t0s ? t0s : "-", t1s ? t1s : "-");
	const struct gguf_tensor *te = gguf_find_tensor(c, "token_embd.weight");
	ok(te && te->type == DT_TYPE_Q8_0 && te->n_dims == 2 && te->ne[0] == 576 && te->ne[1] == 49152 &&
		   te->nbytes == (size_t)576 / 32 * 34 * 49152,
	   "token_embd.weight is q8_0 {576, 49152}");
	size_t total = 0;
	bool inside = true;
	const uint8_t *lo = (const uint8_t *)gguf_tensor_at(c, 0)->data - gguf_tensor_at(c, 0)->offset;
	for (int64_t k = 0; k < gguf_n_tensors(c); k++) {
		const struct gguf_tensor *t = gguf_tensor_at(c, k);
		total += t->nbytes;
		inside = inside && (const uint8_t *)t->data == lo + t->offset &&
			 gguf_data_offset(c) + t->offset + t->nbytes <= gguf_file_size(c);
	}
	ok(inside && total <= gguf_file_size(c) - gguf_data_offset(c),
	   "all tensor data inside the data section (%zu of %zu bytes)", total, gguf_file_size(c));
	gguf_close(c);
}

int main(void)
{
	const char *seed = getenv("DT_TEST_SEED"); /* to replay a failure */
	rng_state = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
	if (!rng_state)
		rng_state = 1;
	diag("seed %" PRIu64 " (DT_TEST_SEED=%" PRIu64 " replays it)", rng_state, rng_state);
	tap_plan_lazy();
	test_roundtrip();
	test_getters();
	test_truncation();
	test_header();
	test_metadata();
	test_tensors();
	test_writer_edges();
	test_open_errors();
	test_model();
	return tap_done();
}
