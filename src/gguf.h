/*
 * gguf.h — reader (and small writer) for GGUF v2/v3 model files.
 *
 * The reader maps the file, parses header, metadata and tensor table into
 * owned arrays, and validates everything against the file size before
 * allocating: counts, string lengths, nested arrays, dimension products,
 * alignment, tensor data ranges (inside the file, aligned, non-overlapping),
 * duplicate keys and tensor names.  A bad file gives NULL and
 * "path: what is wrong (expected X, found Y)" in err.
 *
 * The writer builds files for tests, fuzz seeds and `deftree mkmodel`.
 */
#ifndef DT_GGUF_H
#define DT_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "quant.h"

enum gguf_type {
	GGUF_TYPE_UINT8 = 0,
	GGUF_TYPE_INT8 = 1,
	GGUF_TYPE_UINT16 = 2,
	GGUF_TYPE_INT16 = 3,
	GGUF_TYPE_UINT32 = 4,
	GGUF_TYPE_INT32 = 5,
	GGUF_TYPE_FLOAT32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_UINT64 = 10,
	GGUF_TYPE_INT64 = 11,
	GGUF_TYPE_FLOAT64 = 12,
	GGUF_TYPE_COUNT
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DEPTH 8 /* levels of nested arrays the reader accepts */

struct gguf_tensor {
	const char *name;
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1;
				    * the reader takes 1..4 dims, each >= 1 */
	uint32_t type;             /* enum dt_type id */
	uint64_t offset;           /* from the start of the data section */
	size_t nbytes;
	const void *data;          /* inside the mapping */
};

struct gguf_ctx;

/* Opens and validates a file (mmap, read-only). NULL + err on failure. */
struct gguf_ctx *gguf_open(const char *path, char *err);
/* Parses a buffer in memory (not copied; must outlive the ctx); name is used in messages. */
struct gguf_ctx *gguf_open_mem(const void *buf, size_t len, const char *name, char *err);
void gguf_close(struct gguf_ctx *ctx);

uint32_t gguf_version(const struct gguf_ctx *ctx);
const char *gguf_path(const struct gguf_ctx *ctx);
size_t gguf_file_size(const struct gguf_ctx *ctx);
uint32_t gguf_alignment(const struct gguf_ctx *ctx);
size_t gguf_data_offset(const struct gguf_ctx *ctx);

// ---- metadata
int64_t gguf_n_kv(const struct gguf_ctx *ctx);
const char *gguf_kv_key(const struct gguf_ctx *ctx, int64_t i);
enum gguf_type gguf_kv_type(const struct gguf_ctx *ctx, int64_t i);
/* Index of key, or -1. */
int64_t gguf_find_key(const struct gguf_ctx *ctx, const char *key);
const char *gguf_type_name(enum gguf_type t);

/* Typed getters: 0 on success; -1 with "path: key K: ..." when the key is
 * missing or of another type (integers convert between widths when the value
 * fits; floats accept float32/float64). */
int gguf_get_u32(const struct gguf_ctx *ctx, const char *key, uint32_t *out, char *err);
int gguf_get_i64(const struct gguf_ctx *ctx, const char *key, int64_t *out, char *err);
int gguf_get_f32(const struct gguf_ctx *ctx, const char *key, float *out, char *err);
int gguf_get_bool(const struct gguf_ctx *ctx, const char *key, bool *out, char *err);
int gguf_get_str(const struct gguf_ctx *ctx, const char *key, const char **out, char *err);
/* Array: element type and length; data points at n packed elements for
 * numeric types (little-endian, unaligned-safe access via memcpy), NULL for
 * strings and nested arrays (use gguf_get_arr_str / gguf_value_arr_at). */
int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, enum gguf_type *elt,
		 int64_t *n, const void **data, char *err);
/* i-th string of a string array (NUL-terminated; length in *len if non-NULL). */
const char *gguf_get_arr_str(const struct gguf_ctx *ctx, const char *key, int64_t i, size_t *len);

/* Generic value access for dumping (inspect): writes a short human-readable
 * rendering of value i into buf (arrays abbreviated after `max_elems`). */
void gguf_kv_format(const struct gguf_ctx *ctx, int64_t i, char *buf, size_t len, int max_elems);

// ---- generic values (nested arrays, dumps, fuzzing); valid while ctx is open
/* Bytes of one element of a numeric/bool type; 0 for string, array, unknown. */
size_t gguf_type_size(enum gguf_type t);
struct gguf_value;
/* Value i / the value of key; NULL when out of range / missing. */
const struct gguf_value *gguf_kv_value(const struct gguf_ctx *ctx, int64_t i);
const struct gguf_value *gguf_find_value(const struct gguf_ctx *ctx, const char *key);
enum gguf_type gguf_value_type(const struct gguf_value *v);
/* "uint32", "string", "array[int32]", "array[array]" */
void gguf_value_type_str(const struct gguf_value *v, char *buf, size_t len);
/* Scalars: false when v (may be NULL) is not of a matching kind or the value
 * does not fit: u64/i64 take any integer type, f64 float32/float64. */
bool gguf_value_u64(const struct gguf_value *v, uint64_t *out);
bool gguf_value_i64(const struct gguf_value *v, int64_t *out);
bool gguf_value_f64(const struct gguf_value *v, double *out);
bool gguf_value_bool(const struct gguf_value *v, bool *out);
/* String value (NUL-terminated; it may hold NULs, *len has the full length). */
const char *gguf_value_str(const struct gguf_value *v, size_t *len);
/* Arrays: element type (GGUF_TYPE_COUNT if v is no array), length (-1 if no
 * array), packed numeric/bool elements (NULL for strings and arrays), the
 * i-th string, the i-th nested array (NULL when out of range or another kind). */
enum gguf_type gguf_value_arr_type(const struct gguf_value *v);
int64_t gguf_value_arr_n(const struct gguf_value *v);
const void *gguf_value_arr_data(const struct gguf_value *v);
const char *gguf_value_arr_str(const struct gguf_value *v, int64_t i, size_t *len);
const struct gguf_value *gguf_value_arr_at(const struct gguf_value *v, int64_t i);
/* As gguf_kv_format for any value; max_elems < 0 shows every element. */
void gguf_value_format(const struct gguf_value *v, char *buf, size_t len, int max_elems);

// ---- tensors
int64_t gguf_n_tensors(const struct gguf_ctx *ctx);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_ctx *ctx, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *ctx, const char *name);

// ---- writer (for tests, fuzz seeds and mkmodel)
struct gguf_writer;
struct gguf_writer *gguf_writer_new(uint32_t version); /* 2 or 3 */
void gguf_writer_free(struct gguf_writer *w);
void gguf_w_u32(struct gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(struct gguf_writer *w, const char *key, int32_t v);
void gguf_w_u64(struct gguf_writer *w, const char *key, uint64_t v);
void gguf_w_f32(struct gguf_writer *w, const char *key, float v);
void gguf_w_bool(struct gguf_writer *w, const char *key, bool v);
void gguf_w_str(struct gguf_writer *w, const char *key, const char *v);
/* numeric array: elt is a numeric gguf_type, data holds n packed elements */
void gguf_w_arr(struct gguf_writer *w, const char *key, enum gguf_type elt, const void *data, int64_t n);
void gguf_w_arr_str(struct gguf_writer *w, const char *key, const char *const *v, int64_t n);
/* tensor: data (nbytes = quant_row_size(type, ne[0]) * rows) is copied */
void gguf_w_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
		   const int64_t *ne, const void *data);
/* Any numeric/bool scalar: v points at one value of that type (bool: one byte 0/1). */
void gguf_w_scalar(struct gguf_writer *w, const char *key, enum gguf_type type, const void *v);
/* String of len bytes (may hold any byte, NULs included). */
void gguf_w_strn(struct gguf_writer *w, const char *key, const char *v, size_t len);
/* Arrays built element by element, nested arrays included: begin opens an
 * array of elt (key is NULL when it is an element of the array open around
 * it); elements are added with gguf_w_elem (one numeric/bool value),
 * gguf_w_elem_str, or a nested begin/end pair; end closes the innermost. */
void gguf_w_arr_begin(struct gguf_writer *w, const char *key, enum gguf_type elt);
void gguf_w_elem(struct gguf_writer *w, const void *v);
void gguf_w_elem_str(struct gguf_writer *w, const char *s, size_t len);
void gguf_w_arr_end(struct gguf_writer *w);
/* As gguf_w_tensor, but data is not copied: it must stay valid until the
 * last gguf_writer_bytes / gguf_writer_save (for big synthetic models). */
void gguf_w_tensor_ref(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
		       const int64_t *ne, const void *data);
/* The writer writes what it is given (duplicates included: tests build bad
 * files with it); general.alignment written as a uint32 power of two sets the
 * alignment of the data section.
 * Serializes into a malloc'd buffer (*len bytes) / writes to path (0 or -1 + err). */
void *gguf_writer_bytes(struct gguf_writer *w, size_t *len);
int gguf_writer_save(struct gguf_writer *w, const char *path, char *err);

#endif
