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

struct gguf_tensor {
	const char *name;
	uint32_t n_dims;
	int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
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
 * strings and nested arrays (use gguf_get_arr_str / gguf_kv_arr_at). */
int gguf_get_arr(const struct gguf_ctx *ctx, const char *key, enum gguf_type *elt,
		 int64_t *n, const void **data, char *err);
/* i-th string of a string array (NUL-terminated; length in *len if non-NULL). */
const char *gguf_get_arr_str(const struct gguf_ctx *ctx, const char *key, int64_t i, size_t *len);

/* Generic value access for dumping (inspect): writes a short human-readable
 * rendering of value i into buf (arrays abbreviated after `max_elems`). */
void gguf_kv_format(const struct gguf_ctx *ctx, int64_t i, char *buf, size_t len, int max_elems);

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
/* Serializes into a malloc'd buffer (*len bytes) / writes to path (0 or -1 + err). */
void *gguf_writer_bytes(struct gguf_writer *w, size_t *len);
int gguf_writer_save(struct gguf_writer *w, const char *path, char *err);

#endif
