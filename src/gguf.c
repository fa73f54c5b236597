/*
 * gguf.c — GGUF v2/v3 reader and writer.
 *
 * DESIGN
 * Reader.  gguf_open() maps the file read-only; gguf_open_mem() takes a
 * caller's buffer.  One pass front to back with a bounds-checked cursor
 * (struct rd) parses header, metadata and tensor infos; every count and length
 * is compared with the bytes left BEFORE anything is allocated or read, every
 * product and sum on file values goes through dt_mul_ok/dt_add_ok, and arrays
 * that hold the parsed records grow as records are actually read, so a hostile
 * header can make us allocate at most a small multiple of the file's size.
 *
 * Storage.  Keys, tensor names and string values are copied once into an
 * arena of chunks that never move (each string: 8-byte length, bytes, NUL), so
 * a string is one `const char *` whose length sits in the 8 bytes before it.
 * A string array is an array of such pointers (the 49152 tokenizer tokens
 * cost one memcpy each).  Numeric and bool arrays are not copied: they point
 * at their packed little-endian elements inside the mapping.  An array of
 * arrays holds its elements as struct gguf_value records (depth limited to
 * GGUF_MAX_DEPTH).  Keys and tensor names are indexed by open-addressing hash
 * tables, which also find duplicates while parsing.
 *
 * Validation choices (stricter than ggml where ggml's leniency has no use):
 *   - version 2 or 3 only (v1 used 32-bit counts and is refused);
 *   - keys and tensor names are non-empty and contain no NUL byte; string
 *     values may hold any byte;
 *   - bool values are 0 or 1;
 *   - general.alignment, when present, is a uint32 power of two;
 *   - tensors have 1..4 dimensions, every dimension >= 1 (ggml accepts
 *     zero-size tensors; nothing in deftree has a use for one), the element
 *     count fits int64, ne[0] is a multiple of the type's block size, and the
 *     type id is one quant_type() knows;
 *   - tensor data lies inside the file, at an offset that is a multiple of the
 *     alignment, and no two tensors' bytes overlap (gaps are allowed).
 *
 * Writer.  Metadata is serialized into a growing buffer as it is added;
 * tensors are kept as records and laid out (aligned offsets, zero padding,
 * also after the last tensor as ggml does) when the file is produced; a file
 * without tensors ends right after its metadata.  The
 * writer writes what it is told (no duplicate checks): the reader validates,
 * and tests use this to build broken files.
 */
#include "config.h"

#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "gguf.c reads little-endian files with memcpy: a little-endian host is assumed");

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24    /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV_BYTES 13    /* key length (8) + value type (4) + a one-byte value */
#define GGUF_MIN_TENSOR_BYTES 32 /* name length 8 + n_dims 4 + one dim 8 + type 4 + offset 8 */
#define ARENA_CHUNK (256 * 1024) /* bytes per arena chunk (bigger strings get their own) */

struct gguf_value {
	uint32_t type; /* enum gguf_type */
	uint32_t elt;  /* arrays: element type */
	uint64_t n;    /* arrays: element count */
	union {
		uint64_t u;            /* UINT8..UINT64 */
		int64_t i;             /* INT8..INT64 */
		double f;              /* FLOAT32, FLOAT64 */
		bool b;                /* BOOL */
		const char *s;         /* STRING: arena string (length in the 8 bytes before) */
		const uint8_t *raw;    /* numeric/bool arrays: n packed elements in the mapping */
		const char **strs;     /* string arrays: n arena strings */
		struct gguf_value *arr; /* arrays of arrays: n values of type ARRAY */
	};
};

struct gguf_kv {
	const char *key; /* arena string */
	struct gguf_value v;
};

/* open-addressing hash index: name -> position; slots with name NULL are empty */
struct gguf_slot {
	const char *name;
	uint64_t hash;
	int64_t idx;
};
struct gguf_index {
	struct gguf_slot *slots;
	uint64_t cap; /* power of two, 0 before the first insert */
	uint64_t n;
};

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct gguf_ctx {
	char *path;             /* name used in messages */
	const uint8_t *base;    /* the file's bytes */
	size_t size;            /* bytes in the file */
	bool mapped;            /* base is our mmap */
	uint32_t version;
	uint32_t alignment;
	size_t data_offset;     /* start of the data section (aligned end of the tensor infos) */
	int64_t n_kv, cap_kv;
	struct gguf_kv *kv;     /* (n_kv) */
	int64_t n_tensors, cap_tensors;
	struct gguf_tensor *tensors; /* (n_tensors) */
	struct gguf_index kv_index, tensor_index;
	struct arena_chunk *arena;
};

static const char *const type_names[GGUF_TYPE_COUNT] = {
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
};
static const uint8_t type_sizes[GGUF_TYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

const char *gguf_type_name(enum gguf_type t)
{
	return (unsigned)t < GGUF_TYPE_COUNT ? type_names[t] : "unknown";
}

size_t gguf_type_size(enum gguf_type t)
{
	return (unsigned)t < GGUF_TYPE_COUNT ? type_sizes[t] : 0;
}

static bool type_is_int(uint32_t t)
{
	return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

static bool type_is_signed(uint32_t t)
{
	return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
	       t == GGUF_TYPE_INT64;
}

static bool type_is_float(uint32_t t)
{
	return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
}

/* bytes the smallest encoding of one value of type t takes in a file */
static uint64_t type_min_bytes(uint32_t t)
{
	if (t == GGUF_TYPE_STRING)
		return 8;
	if (t == GGUF_TYPE_ARRAY)
		return 12;
	return type_sizes[t];
}

// ---- text rendering (messages and dumps)

struct sbuf {
	char *p;
	size_t cap, len; /* p holds cap bytes; len excludes the NUL */
	bool cut;        /* something did not fit */
};

static void sb_init(struct sbuf *b, char *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->cut = false;
	if (cap)
		p[0] = 0;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (b->cap == 0) {
		b->cut = b->cut || n > 0;
		return;
	}
	size_t room = b->cap - 1 - b->len;
	if (n > room) {
		n = room;
		b->cut = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Bytes as a C-like string body: printable ASCII as is, \\ \" \n \t, other
 * bytes as \xNN; after max bytes of input, "..." and stop. */
static void sb_bytes(struct sbuf *b, const char *s, size_t n, size_t max)
{
	for (size_t i = 0; i < n && !b->cut; i++) {
		if (i == max) {
			sb_putn(b, "...", 3);
			return;
		}
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == '"') {
			char e[2] = { '\\', (char)c };
			sb_putn(b, e, 2);
		} else if (c == '\n') {
			sb_putn(b, "\\n", 2);
		} else if (c == '\t') {
			sb_putn(b, "\\t", 2);
		} else if (c >= 0x20 && c < 0x7f) {
			sb_putn(b, (const char *)&c, 1);
		} else {
			sb_printf(b, "\\x%02x", c);
		}
	}
}

/* marks a cut output with "..." at its end */
static void sb_finish(struct sbuf *b)
{
	if (b->cut && b->cap >= 4)
		memcpy(b->p + b->cap - 4, "...", 4);
}

/* shortest %g rendering that reads back as the same value */
static void sb_double(struct sbuf *b, double v, bool single)
{
	char tmp[48];
	for (int prec = single ? 6 : 15; prec <= (single ? 9 : 17); prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		double back = strtod(tmp, NULL);
		if (single ? (float)back == (float)v : back == v)
			break;
	}
	if (isnan(v))
		snprintf(tmp, sizeof(tmp), "nan");
	sb_putn(b, tmp, strlen(tmp));
}

// ---- arena of strings

static uint64_t str_len(const char *s)
{
	uint64_t n;
	memcpy(&n, s - 8, 8);
	return n;
}

static const char *arena_str(struct gguf_ctx *c, const uint8_t *src, uint64_t n)
{
	/* n <= the file size (checked by the caller), so 9 + n cannot overflow */
	size_t need = 8 + (size_t)n + 1;
	struct arena_chunk *ch = c->arena;
	if (!ch || ch->cap - ch->used < need) {
		/* a string takes 8 + n bytes in the file and 9 + n here: a small
		 * file needs at most 9/8 of its size */
		size_t small = c->size + c->size / 8 + 16;
		size_t chunk = small < ARENA_CHUNK ? small : ARENA_CHUNK;
		size_t cap = need > chunk ? need : chunk;
		ch = xmalloc(sizeof(*ch) + cap);
		ch->next = c->arena;
		ch->used = 0;
		ch->cap = cap;
		c->arena = ch;
	}
	char *p = ch->data + ch->used;
	memcpy(p, &n, 8);
	if (n)
		memcpy(p + 8, src, (size_t)n);
	p[8 + n] = 0;
	ch->used += need;
	return p + 8;
}

// ---- hash index

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int64_t index_find_h(const struct gguf_index *ix, const char *name, uint64_t h)
{
	if (!ix->cap)
		return -1;
	for (uint64_t i = h & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
		const struct gguf_slot *s = &ix->slots[i];
		if (!s->name)
			return -1;
		if (s->hash == h && !strcmp(s->name, name))
			return s->idx;
	}
}

static void index_put(struct gguf_index *ix, const char *name, uint64_t h, int64_t idx)
{
	for (uint64_t i = h & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
		struct gguf_slot *s = &ix->slots[i];
		if (!s->name) {
			s->name = name;
			s->hash = h;
			s->idx = idx;
			ix->n++;
			return;
		}
	}
}

/* Inserts name -> idx; returns the index of an earlier equal name, or -1. */
static int64_t index_add(struct gguf_index *ix, const char *name, int64_t idx)
{
	uint64_t h = hash_str(name);
	int64_t prev = index_find_h(ix, name, h);
	if (prev >= 0)
		return prev;
	if ((ix->n + 1) * 2 > ix->cap) { /* keep the load factor <= 1/2 */
		struct gguf_index old = *ix;
		ix->cap = old.cap ? old.cap * 2 : 64;
		ix->slots = xcalloc(ix->cap, sizeof(*ix->slots));
		ix->n = 0;
		for (uint64_t i = 0; i < old.cap; i++)
			if (old.slots[i].name)
				index_put(ix, old.slots[i].name, old.slots[i].hash, old.slots[i].idx);
		free(old.slots);
	}
	index_put(ix, name, h, idx);
	return -1;
}

// ---- cursor over untrusted bytes

struct rd {
	const uint8_t *p;
	size_t len, pos;
	const char *name; /* for messages */
	char *err;
	char where[256];  /* what is being read: "key 3 'general.name'" */
	struct gguf_ctx *c;
};

__attribute__((format(printf, 2, 3))) static bool rd_fail(struct rd *r, const char *fmt, ...)
{
	char msg[DT_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->where[0])
		dt_err(r->err, "%s: %s: %s", r->name, r->where, msg);
	else
		dt_err(r->err, "%s: %s", r->name, msg);
	return false;
}

static size_t rd_left(const struct rd *r)
{
	return r->len - r->pos;
}

static bool rd_need(struct rd *r, uint64_t n, const char *what)
{
	if (n > rd_left(r))
		return rd_fail(r, "file ends inside %s at offset %zu (expected %" PRIu64
			       " more bytes, found %zu)", what, r->pos, n, rd_left(r));
	return true;
}

static bool rd_u8(struct rd *r, uint8_t *v, const char *what)
{
	if (!rd_need(r, 1, what))
		return false;
	*v = r->p[r->pos++];
	return true;
}

static bool rd_u32(struct rd *r, uint32_t *v, const char *what)
{
	if (!rd_need(r, 4, what))
		return false;
	memcpy(v, r->p + r->pos, 4);
	r->pos += 4;
	return true;
}

static bool rd_u64(struct rd *r, uint64_t *v, const char *what)
{
	if (!rd_need(r, 8, what))
		return false;
	memcpy(v, r->p + r->pos, 8);
	r->pos += 8;
	return true;
}

/* A string: length then bytes, copied into the arena.  Names (keys and
 * tensor names) must be non-empty and free of NUL bytes. */
static bool rd_str(struct rd *r, const char **out, const char *what, bool is_name)
{
	uint64_t n;
	if (!rd_u64(r, &n, what))
		return false;
	if (n > rd_left(r))
		return rd_fail(r, "%s length %" PRIu64 " at offset %zu runs past the end of the file"
			       " (expected at most %zu, found %" PRIu64 ")",
			       what, n, r->pos - 8, rd_left(r), n);
	const uint8_t *src = r->p + r->pos;
	if (is_name) {
		if (n == 0)
			return rd_fail(r, "empty %s (expected 1 or more bytes, found 0)", what);
		const uint8_t *nul = memchr(src, 0, (size_t)n);
		if (nul)
			return rd_fail(r, "%s contains a NUL byte (expected none, found one at byte %td)",
				       what, nul - src);
	}
	*out = arena_str(r->c, src, n);
	r->pos += (size_t)n;
	return true;
}

static void rd_where_name(struct rd *r, const char *what, int64_t i, const char *name)
{
	struct sbuf b;
	sb_init(&b, r->where, sizeof(r->where));
	sb_printf(&b, "%s %" PRId64 " '", what, i);
	sb_bytes(&b, name, str_len(name), 96);
	sb_putn(&b, "'", 1);
}

// ---- reader: values

static void value_free(struct gguf_value *v)
{
	if (v->type != GGUF_TYPE_ARRAY)
		return;
	if (v->elt == GGUF_TYPE_STRING) {
		free(v->strs);
	} else if (v->elt == GGUF_TYPE_ARRAY) {
		for (uint64_t i = 0; i < v->n; i++)
			value_free(&v->arr[i]);
		free(v->arr);
	}
}

static bool rd_value(struct rd *r, uint32_t type, struct gguf_value *v, int depth);

static bool rd_array(struct rd *r, struct gguf_value *v, int depth)
{
	uint32_t elt;
	uint64_t n;
	if (!rd_u32(r, &elt, "array element type") || !rd_u64(r, &n, "array length"))
		return false;
	if (elt >= GGUF_TYPE_COUNT)
		return rd_fail(r, "unknown array element type at offset %zu (expected 0 to %d, found %" PRIu32 ")",
			       r->pos - 12, GGUF_TYPE_COUNT - 1, elt);
	if (elt == GGUF_TYPE_ARRAY && depth + 1 >= GGUF_MAX_DEPTH)
		return rd_fail(r, "arrays nested too deeply at offset %zu (expected at most %d levels, found more)",
			       r->pos - 12, GGUF_MAX_DEPTH);
	uint64_t min = type_min_bytes(elt);
	if (n > rd_left(r) / min)
		return rd_fail(r, "array of %" PRIu64 " %s at offset %zu does not fit in the %zu bytes left"
			       " (expected at most %" PRIu64 " elements, found %" PRIu64 ")",
			       n, type_names[elt], r->pos - 12, rd_left(r), (uint64_t)(rd_left(r) / min), n);
	v->elt = elt;
	if (elt == GGUF_TYPE_STRING) {
		v->strs = xmallocarray(n ? n : 1, sizeof(*v->strs));
		v->n = n;
		for (uint64_t i = 0; i < n; i++)
			if (!rd_str(r, &v->strs[i], "string", false))
				return false;
	} else if (elt == GGUF_TYPE_ARRAY) {
		/* elements grow as they are read: a claimed count costs nothing */
		uint64_t cap = n < 16 ? n : 16;
		v->arr = xcalloc(cap ? cap : 1, sizeof(*v->arr));
		v->n = 0;
		for (uint64_t i = 0; i < n; i++) {
			if (i == cap) {
				uint64_t ncap = cap * 2 < n ? cap * 2 : n;
				v->arr = xrealloc(v->arr, ncap * sizeof(*v->arr));
				memset(v->arr + cap, 0, (ncap - cap) * sizeof(*v->arr));
				cap = ncap;
			}
			v->n = i + 1;
			if (!rd_value(r, GGUF_TYPE_ARRAY, &v->arr[i], depth + 1))
				return false;
		}
	} else {
		v->raw = r->p + r->pos;
		v->n = n;
		if (elt == GGUF_TYPE_BOOL)
			for (uint64_t i = 0; i < n; i++)
				if (v->raw[i] > 1)
					return rd_fail(r, "bool element %" PRIu64 " at offset %zu (expected 0 or 1, found %u)",
						       i, r->pos + (size_t)i, v->raw[i]);
		r->pos += (size_t)(n * min);
	}
	return true;
}

static bool rd_value(struct rd *r, uint32_t type, struct gguf_value *v, int depth)
{
	v->type = type;
	switch (type) {
	case GGUF_TYPE_UINT8: {
		uint8_t x;
		if (!rd_u8(r, &x, "uint8 value"))
			return false;
		v->u = x;
		return true;
	}
	case GGUF_TYPE_INT8: {
		uint8_t x;
		if (!rd_u8(r, &x, "int8 value"))
			return false;
		v->i = (int8_t)x;
		return true;
	}
	case GGUF_TYPE_UINT16:
	case GGUF_TYPE_INT16: {
		uint16_t x;
		if (!rd_need(r, 2, "16-bit value"))
			return false;
		memcpy(&x, r->p + r->pos, 2);
		r->pos += 2;
		if (type == GGUF_TYPE_INT16)
			v->i = (int16_t)x;
		else
			v->u = x;
		return true;
	}
	case GGUF_TYPE_UINT32:
	case GGUF_TYPE_INT32:
	case GGUF_TYPE_FLOAT32: {
		uint32_t x;
		if (!rd_u32(r, &x, "32-bit value"))
			return false;
		if (type == GGUF_TYPE_INT32) {
			v->i = (int32_t)x;
		} else if (type == GGUF_TYPE_FLOAT32) {
			float f;
			memcpy(&f, &x, 4);
			v->f = f;
		} else {
			v->u = x;
		}
		return true;
	}
	case GGUF_TYPE_UINT64:
	case GGUF_TYPE_INT64:
	case GGUF_TYPE_FLOAT64: {
		uint64_t x;
		if (!rd_u64(r, &x, "64-bit value"))
			return false;
		if (type == GGUF_TYPE_INT64)
			v->i = (int64_t)x;
		else if (type == GGUF_TYPE_FLOAT64)
			memcpy(&v->f, &x, 8);
		else
			v->u = x;
		return true;
	}
	case GGUF_TYPE_BOOL: {
		uint8_t x;
		if (!rd_u8(r, &x, "bool value"))
			return false;
		if (x > 1)
			return rd_fail(r, "bool value at offset %zu (expected 0 or 1, found %u)", r->pos - 1, x);
		v->b = x;
		return true;
	}
	case GGUF_TYPE_STRING:
		return rd_str(r, &v->s, "string", false);
	case GGUF_TYPE_ARRAY:
		return rd_array(r, v, depth);
	default:
		return rd_fail(r, "unknown value type (expected 0 to %d, found %" PRIu32 ")",
			       GGUF_TYPE_COUNT - 1, type);
	}
}

// ---- reader: file structure

static bool parse_header(struct rd *r, uint64_t *n_tensors, uint64_t *n_kv)
{
	struct gguf_ctx *c = r->c;
	if (r->len < 4)
		return rd_fail(r, "not a GGUF file: too short (expected at least %d bytes, found %zu)",
			       GGUF_HEADER_BYTES, r->len);
	if (memcmp(r->p, GGUF_MAGIC, 4)) {
		char shown[64];
		struct sbuf b;
		sb_init(&b, shown, sizeof(shown));
		sb_bytes(&b, (const char *)r->p, 4, 4);
		return rd_fail(r, "not a GGUF file: bad magic (expected \"GGUF\", found \"%s\")", shown);
	}
	r->pos = 4;
	if (!rd_u32(r, &c->version, "the version"))
		return false;
	uint32_t v = c->version;
	if (v == 1)
		return rd_fail(r, "GGUF version 1 is not supported (expected 2 or 3, found 1);"
			       " convert the file with a current llama.cpp");
	if (v != 2 && v != 3) {
		if (__builtin_bswap32(v) >= 1 && __builtin_bswap32(v) <= 3)
			return rd_fail(r, "big-endian GGUF files are not supported (expected version 2 or 3"
				       " little-endian, found %" PRIu32 " big-endian)", __builtin_bswap32(v));
		return rd_fail(r, "unsupported GGUF version (expected 2 or 3, found %" PRIu32 ")", v);
	}
	if (!rd_u64(r, n_tensors, "the tensor count") || !rd_u64(r, n_kv, "the key-value count"))
		return false;
	uint64_t max_kv = rd_left(r) / GGUF_MIN_KV_BYTES;
	if (*n_kv > max_kv)
		return rd_fail(r, "n_kv %" PRIu64 " cannot fit in the %zu bytes after the header"
			       " (expected at most %" PRIu64 ", found %" PRIu64 ")",
			       *n_kv, rd_left(r), max_kv, *n_kv);
	uint64_t max_t = (rd_left(r) - *n_kv * GGUF_MIN_KV_BYTES) / GGUF_MIN_TENSOR_BYTES;
	if (*n_tensors > max_t)
		return rd_fail(r, "n_tensors %" PRIu64 " cannot fit in the %zu bytes after the header"
			       " (expected at most %" PRIu64 ", found %" PRIu64 ")",
			       *n_tensors, rd_left(r), max_t, *n_tensors);
	return true;
}

static bool parse_kv(struct rd *r, uint64_t n_kv)
{
	struct gguf_ctx *c = r->c;
	for (uint64_t i = 0; i < n_kv; i++) {
		snprintf(r->where, sizeof(r->where), "key %" PRIu64, i);
		const char *key;
		if (!rd_str(r, &key, "key", true))
			return false;
		rd_where_name(r, "key", (int64_t)i, key);
		int64_t prev = index_add(&c->kv_index, key, (int64_t)i);
		if (prev >= 0)
			return rd_fail(r, "duplicate key (expected each key once, found it again after index %" PRId64 ")", prev);
		uint32_t type;
		if (!rd_u32(r, &type, "the value type"))
			return false;
		if (type >= GGUF_TYPE_COUNT)
			return rd_fail(r, "unknown value type at offset %zu (expected 0 to %d, found %" PRIu32 ")",
				       r->pos - 4, GGUF_TYPE_COUNT - 1, type);
		if (c->n_kv == c->cap_kv) {
			c->cap_kv = c->cap_kv ? c->cap_kv * 2 : 64;
			c->kv = xrealloc(c->kv, (size_t)c->cap_kv * sizeof(*c->kv));
		}
		struct gguf_kv *kv = &c->kv[c->n_kv++];
		memset(kv, 0, sizeof(*kv));
		kv->key = key;
		if (!rd_value(r, type, &kv->v, 0))
			return false;
	}
	r->where[0] = 0;
	return true;
}

static bool parse_alignment(struct rd *r)
{
	struct gguf_ctx *c = r->c;
	c->alignment = GGUF_DEFAULT_ALIGNMENT;
	int64_t i = gguf_find_key(c, "general.alignment");
	if (i < 0)
		return true;
	const struct gguf_value *v = &c->kv[i].v;
	snprintf(r->where, sizeof(r->where), "key %" PRId64 " 'general.alignment'", i);
	if (v->type != GGUF_TYPE_UINT32)
		return rd_fail(r, "wrong type (expected uint32, found %s)", type_names[v->type]);
	if (v->u == 0 || (v->u & (v->u - 1)))
		return rd_fail(r, "alignment is not a power of two (expected 1, 2, 4, ..., found %" PRIu64 ")", v->u);
	c->alignment = (uint32_t)v->u;
	r->where[0] = 0;
	return true;
}

static bool parse_tensor_info(struct rd *r, int64_t i, struct gguf_tensor *t)
{
	snprintf(r->where, sizeof(r->where), "tensor %" PRId64, i);
	if (!rd_str(r, &t->name, "tensor name", true))
		return false;
	rd_where_name(r, "tensor", i, t->name);
	if (!rd_u32(r, &t->n_dims, "the dimension count"))
		return false;
	if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
		return rd_fail(r, "bad dimension count (expected 1 to %d, found %" PRIu32 ")",
			       GGUF_MAX_DIMS, t->n_dims);
	uint64_t ne[GGUF_MAX_DIMS] = { 1, 1, 1, 1 };
	for (uint32_t d = 0; d < t->n_dims; d++) {
		if (!rd_u64(r, &ne[d], "a dimension"))
			return false;
		if (ne[d] < 1 || ne[d] > INT64_MAX)
			return rd_fail(r, "bad size of dimension %" PRIu32 " (expected 1 to %" PRId64
				       ", found %" PRIu64 ")", d, INT64_MAX, ne[d]);
	}
	if (!rd_u32(r, &t->type, "the tensor type") || !rd_u64(r, &t->offset, "the data offset"))
		return false;
	const struct quant_type_info *info = quant_type(t->type);
	if (!info || !info->name || info->block_size < 1 || info->type_size < 1)
		return rd_fail(r, "unknown tensor type (expected a ggml type id, found %" PRIu32 ")", t->type);
	uint64_t nel = 1;
	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		t->ne[d] = (int64_t)ne[d];
		if (!dt_mul_ok(nel, ne[d], &nel) || nel > INT64_MAX)
			return rd_fail(r, "element count overflows (expected at most %" PRId64 " elements,"
				       " found %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64 ")",
				       INT64_MAX, ne[0], ne[1], ne[2], ne[3]);
	}
	if (ne[0] % (uint64_t)info->block_size)
		return rd_fail(r, "row length is not a multiple of the %s block size (expected a multiple"
			       " of %" PRId32 ", found ne[0] = %" PRIu64 ")", info->name, info->block_size, ne[0]);
	uint64_t nbytes = ne[0] / (uint64_t)info->block_size;
	if (!dt_mul_ok(nbytes, info->type_size, &nbytes) || !dt_mul_ok(nbytes, ne[1], &nbytes) ||
	    !dt_mul_ok(nbytes, ne[2], &nbytes) || !dt_mul_ok(nbytes, ne[3], &nbytes) || nbytes > SIZE_MAX)
		return rd_fail(r, "byte size overflows (expected %s data of at most %zu bytes, found"
			       " %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64 " elements)",
			       info->name, (size_t)SIZE_MAX, ne[0], ne[1], ne[2], ne[3]);
	t->nbytes = (size_t)nbytes;
	return true;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool parse_tensors(struct rd *r, uint64_t n_tensors)
{
	struct gguf_ctx *c = r->c;
	for (uint64_t i = 0; i < n_tensors; i++) {
		if (c->n_tensors == c->cap_tensors) {
			c->cap_tensors = c->cap_tensors ? c->cap_tensors * 2 : 64;
			c->tensors = xrealloc(c->tensors, (size_t)c->cap_tensors * sizeof(*c->tensors));
		}
		struct gguf_tensor *t = &c->tensors[c->n_tensors];
		memset(t, 0, sizeof(*t));
		if (!parse_tensor_info(r, (int64_t)i, t))
			return false;
		c->n_tensors++;
		int64_t prev = index_add(&c->tensor_index, t->name, (int64_t)i);
		if (prev >= 0)
			return rd_fail(r, "duplicate tensor name (expected each name once, found it again after"
				       " tensor %" PRId64 ")", prev);
	}
	r->where[0] = 0;

	/* the data section starts at the next multiple of the alignment */
	uint64_t a = c->alignment;
	uint64_t data_off = (r->pos + a - 1) / a * a; /* pos < 2^63, a <= 2^31: no overflow */
	c->data_offset = (size_t)data_off;
	uint64_t data_len = data_off <= r->len ? r->len - data_off : 0;

	for (int64_t i = 0; i < c->n_tensors; i++) {
		struct gguf_tensor *t = &c->tensors[i];
		rd_where_name(r, "tensor", i, t->name);
		if (t->offset % a)
			return rd_fail(r, "data offset is not aligned (expected a multiple of %" PRIu64
				       ", found %" PRIu64 ")", a, t->offset);
		uint64_t end;
		if (!dt_add_ok(t->offset, t->nbytes, &end) || end > data_len)
			return rd_fail(r, "data runs past the end of the file (expected offset + %zu bytes"
				       " <= %" PRIu64 " bytes of data, found offset %" PRIu64 ")",
				       t->nbytes, data_len, t->offset);
		t->data = c->base + data_off + t->offset;
	}
	r->where[0] = 0;

	if (c->n_tensors > 1) {
		const struct gguf_tensor **by_off = xmallocarray((size_t)c->n_tensors, sizeof(*by_off));
		for (int64_t i = 0; i < c->n_tensors; i++)
			by_off[i] = &c->tensors[i];
		qsort(by_off, (size_t)c->n_tensors, sizeof(*by_off), cmp_by_offset);
		for (int64_t i = 1; i < c->n_tensors; i++) {
			const struct gguf_tensor *p = by_off[i - 1], *t = by_off[i];
			if (p->offset + p->nbytes > t->offset) {
				rd_where_name(r, "tensor", t - c->tensors, t->name);
				char pname[160];
				struct sbuf b;
				sb_init(&b, pname, sizeof(pname));
				sb_bytes(&b, p->name, str_len(p->name), 96);
				rd_fail(r, "data overlaps tensor %td '%s' (expected offset >= %" PRIu64
					", found %" PRIu64 ")", p - c->tensors, pname,
					p->offset + p->nbytes, t->offset);
				free(by_off);
				return false;
			}
		}
		free(by_off);
	}
	return true;
}

static struct gguf_ctx *parse(const uint8_t *buf, size_t len, const char *name, char *err)
{
	struct gguf_ctx *c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(name ? name : "(memory)");
	c->base = buf;
	c->size = len;
	struct rd r = { .p = buf, .len = len, .name = c->path, .err = err, .c = c };
	uint64_t n_tensors, n_kv;
	bool ok = parse_header(&r, &n_tensors, &n_kv) && parse_kv(&r, n_kv) &&
		  parse_alignment(&r) && parse_tensors(&r, n_tensors);
	if (!ok) {
		gguf_close(c);
		return NULL;
	}
	return c;
}

// ---- reader: public entry points

struct gguf_ctx *gguf_open_mem(const void *buf, size_t len, const char *name, char *err)
{
	static const uint8_t empty[1];
	return parse(buf ? buf : empty, buf ? len : 0, name, err);
}

struct gguf_ctx *gguf_open(const char *path, char *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		dt_err(err, "%s: cannot open (%s)", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		dt_err(err, "%s: cannot stat (%s)", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		dt_err(err, "%s: not a regular file (expected a GGUF file, found a %s)", path,
		       S_ISDIR(st.st_mode) ? "directory" : "special file");
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		dt_err(err, "%s: file too large to map (%jd bytes)", path, (intmax_t)st.st_size);
		close(fd);
		return NULL;
	}
	size_t size = (size_t)st.st_size;
	if (size == 0) {
		close(fd);
		return gguf_open_mem(NULL, 0, path, err);
	}
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	int map_errno = errno;
	close(fd);
	if (map == MAP_FAILED) {
		dt_err(err, "%s: cannot map %zu bytes (%s)", path, size, strerror(map_errno));
		return NULL;
	}
	struct gguf_ctx *c = parse(map, size, path, err);
	if (!c) {
		munmap(map, size);
		return NULL;
	}
	c->mapped = true;
	return c;
}

void gguf_close(struct gguf_ctx *c)
{
	if (!c)
		return;
	for (int64_t i = 0; i < c->n_kv; i++)
		value_free(&c->kv[i].v);
	free(c->kv);
	free(c->tensors);
	free(c->kv_index.slots);
	free(c->tensor_index.slots);
	while (c->arena) {
		struct arena_chunk *next = c->arena->next;
		free(c->arena);
		c->arena = next;
	}
	if (c->mapped)
		munmap((void *)c->base, c->size);
	free(c->path);
	free(c);
}

uint32_t gguf_version(const struct gguf_ctx *c)
{
	return c->version;
}

const char *gguf_path(const struct gguf_ctx *c)
{
	return c->path;
}

size_t gguf_file_size(const struct gguf_ctx *c)
{
	return c->size;
}

uint32_t gguf_alignment(const struct gguf_ctx *c)
{
	return c->alignment;
}

size_t gguf_data_offset(const struct gguf_ctx *c)
{
	return c->data_offset;
}

// ---- metadata access

int64_t gguf_n_kv(const struct gguf_ctx *c)
{
	return c->n_kv;
}

const char *gguf_kv_key(const struct gguf_ctx *c, int64_t i)
{
	return i >= 0 && i < c->n_kv ? c->kv[i].key : NULL;
}

enum gguf_type gguf_kv_type(const struct gguf_ctx *c, int64_t i)
{
	return i >= 0 && i < c->n_kv ? (enum gguf_type)c->kv[i].v.type : GGUF_TYPE_COUNT;
}

int64_t gguf_find_key(const struct gguf_ctx *c, const char *key)
{
	return index_find_h(&c->kv_index, key, hash_str(key));
}

const struct gguf_value *gguf_kv_value(const struct gguf_ctx *c, int64_t i)
{
	return i >= 0 && i < c->n_kv ? &c->kv[i].v : NULL;
}

const struct gguf_value *gguf_find_value(const struct gguf_ctx *c, const char *key)
{
	return gguf_kv_value(c, gguf_find_key(c, key));
}

/* "string", "array[int32]", "array[array]" */
static void value_type_str(const struct gguf_value *v, char *buf, size_t len)
{
	if (v->type == GGUF_TYPE_ARRAY)
		snprintf(buf, len, "array[%s]", type_names[v->elt]);
	else
		snprintf(buf, len, "%s", type_names[v->type]);
}

static const struct gguf_value *get_checked(const struct gguf_ctx *c, const char *key,
					    bool (*accept)(const struct gguf_value *),
					    const char *expected, char *err)
{
	const struct gguf_value *v = gguf_find_value(c, key);
	if (!v) {
		dt_err(err, "%s: key '%s' not found (expected %s)", c->path, key, expected);
		return NULL;
	}
	if (!accept(v)) {
		char found[32];
		value_type_str(v, found, sizeof(found));
		dt_err(err, "%s: key '%s': wrong type (expected %s, found %s)", c->path, key, expected, found);
		return NULL;
	}
	return v;
}

static bool accept_int(const struct gguf_value *v)
{
	return type_is_int(v->type);
}
static bool accept_float(const struct gguf_value *v)
{
	return type_is_float(v->type);
}
static bool accept_bool(const struct gguf_value *v)
{
	return v->type == GGUF_TYPE_BOOL;
}
static bool accept_str(const struct gguf_value *v)
{
	return v->type == GGUF_TYPE_STRING;
}
static bool accept_arr(const struct gguf_value *v)
{
	return v->type == GGUF_TYPE_ARRAY;
}

static int range_err(const struct gguf_ctx *c, const char *key, const struct gguf_value *v,
		     const char *expected, char *err)
{
	if (type_is_signed(v->type))
		return dt_err(err, "%s: key '%s': value out of range (expected %s, found %" PRId64 ")",
			      c->path, key, expected, v->i);
	return dt_err(err, "%s: key '%s': value out of range (expected %s, found %" PRIu64 ")",
		      c->path, key, expected, v->u);
}

int gguf_get_u32(const struct gguf_ctx *c, const char *key, uint32_t *out, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_int, "uint32", err);
	if (!v)
		return -1;
	uint64_t x;
	if (!gguf_value_u64(v, &x) || x > UINT32_MAX)
		return range_err(c, key, v, "0 to 4294967295", err);
	*out = (uint32_t)x;
	return 0;
}

int gguf_get_i64(const struct gguf_ctx *c, const char *key, int64_t *out, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_int, "int64", err);
	if (!v)
		return -1;
	if (!gguf_value_i64(v, out))
		return range_err(c, key, v, "at most 9223372036854775807", err);
	return 0;
}

int gguf_get_f32(const struct gguf_ctx *c, const char *key, float *out, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_float, "float32", err);
	if (!v)
		return -1;
	*out = (float)v->f;
	return 0;
}

int gguf_get_bool(const struct gguf_ctx *c, const char *key, bool *out, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_bool, "bool", err);
	if (!v)
		return -1;
	*out = v->b;
	return 0;
}

int gguf_get_str(const struct gguf_ctx *c, const char *key, const char **out, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_str, "string", err);
	if (!v)
		return -1;
	*out = v->s;
	return 0;
}

int gguf_get_arr(const struct gguf_ctx *c, const char *key, enum gguf_type *elt, int64_t *n,
		 const void **data, char *err)
{
	const struct gguf_value *v = get_checked(c, key, accept_arr, "array", err);
	if (!v)
		return -1;
	if (elt)
		*elt = (enum gguf_type)v->elt;
	if (n)
		*n = (int64_t)v->n;
	if (data)
		*data = gguf_value_arr_data(v);
	return 0;
}

const char *gguf_get_arr_str(const struct gguf_ctx *c, const char *key, int64_t i, size_t *len)
{
	return gguf_value_arr_str(gguf_find_value(c, key), i, len);
}

// ---- generic values

enum gguf_type gguf_value_type(const struct gguf_value *v)
{
	return (enum gguf_type)v->type;
}

bool gguf_value_u64(const struct gguf_value *v, uint64_t *out)
{
	if (!v || !type_is_int(v->type) || (type_is_signed(v->type) && v->i < 0))
		return false;
	*out = type_is_signed(v->type) ? (uint64_t)v->i : v->u;
	return true;
}

bool gguf_value_i64(const struct gguf_value *v, int64_t *out)
{
	if (!v || !type_is_int(v->type) || (!type_is_signed(v->type) && v->u > INT64_MAX))
		return false;
	*out = type_is_signed(v->type) ? v->i : (int64_t)v->u;
	return true;
}

bool gguf_value_f64(const struct gguf_value *v, double *out)
{
	if (!v || !type_is_float(v->type))
		return false;
	*out = v->f;
	return true;
}

bool gguf_value_bool(const struct gguf_value *v, bool *out)
{
	if (!v || v->type != GGUF_TYPE_BOOL)
		return false;
	*out = v->b;
	return true;
}

const char *gguf_value_str(const struct gguf_value *v, size_t *len)
{
	if (!v || v->type != GGUF_TYPE_STRING)
		return NULL;
	if (len)
		*len = (size_t)str_len(v->s);
	return v->s;
}

enum gguf_type gguf_value_arr_type(const struct gguf_value *v)
{
	return v && v->type == GGUF_TYPE_ARRAY ? (enum gguf_type)v->elt : GGUF_TYPE_COUNT;
}

int64_t gguf_value_arr_n(const struct gguf_value *v)
{
	return v && v->type == GGUF_TYPE_ARRAY ? (int64_t)v->n : -1;
}

const void *gguf_value_arr_data(const struct gguf_value *v)
{
	if (!v || v->type != GGUF_TYPE_ARRAY || v->elt == GGUF_TYPE_STRING || v->elt == GGUF_TYPE_ARRAY)
		return NULL;
	return v->raw;
}

const char *gguf_value_arr_str(const struct gguf_value *v, int64_t i, size_t *len)
{
	if (!v || v->type != GGUF_TYPE_ARRAY || v->elt != GGUF_TYPE_STRING || i < 0 || (uint64_t)i >= v->n)
		return NULL;
	if (len)
		*len = (size_t)str_len(v->strs[i]);
	return v->strs[i];
}

const struct gguf_value *gguf_value_arr_at(const struct gguf_value *v, int64_t i)
{
	if (!v || v->type != GGUF_TYPE_ARRAY || v->elt != GGUF_TYPE_ARRAY || i < 0 || (uint64_t)i >= v->n)
		return NULL;
	return &v->arr[i];
}

// ---- formatting

#define FMT_STR_MAX 160     /* bytes of a string value shown */
#define FMT_ELEM_STR_MAX 40 /* bytes of a string shown inside an array */

/* element i of a numeric/bool array, as a scalar value */
static struct gguf_value arr_elem(const struct gguf_value *a, uint64_t i)
{
	struct gguf_value e = { .type = a->elt };
	const uint8_t *p = a->raw + i * type_sizes[a->elt];
	switch (a->elt) {
	case GGUF_TYPE_UINT8: e.u = p[0]; break;
	case GGUF_TYPE_INT8: e.i = (int8_t)p[0]; break;
	case GGUF_TYPE_BOOL: e.b = p[0] != 0; break;
	case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); e.u = x; break; }
	case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); e.i = x; break; }
	case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); e.u = x; break; }
	case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); e.i = x; break; }
	case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); e.f = x; break; }
	case GGUF_TYPE_UINT64: memcpy(&e.u, p, 8); break;
	case GGUF_TYPE_INT64: memcpy(&e.i, p, 8); break;
	case GGUF_TYPE_FLOAT64: memcpy(&e.f, p, 8); break;
	default: DT_ASSERT(!"not a numeric element type");
	}
	return e;
}

static void fmt_value(struct sbuf *b, const struct gguf_value *v, int max_elems, bool nested)
{
	switch (v->type) {
	case GGUF_TYPE_BOOL:
		sb_printf(b, "%s", v->b ? "true" : "false");
		return;
	case GGUF_TYPE_FLOAT32:
	case GGUF_TYPE_FLOAT64:
		sb_double(b, v->f, v->type == GGUF_TYPE_FLOAT32);
		return;
	case GGUF_TYPE_STRING:
		sb_putn(b, "\"", 1);
		sb_bytes(b, v->s, str_len(v->s), nested ? FMT_ELEM_STR_MAX : FMT_STR_MAX);
		sb_putn(b, "\"", 1);
		return;
	case GGUF_TYPE_ARRAY:
		break;
	default:
		if (type_is_signed(v->type))
			sb_printf(b, "%" PRId64, v->i);
		else
			sb_printf(b, "%" PRIu64, v->u);
		return;
	}
	const char *what = v->elt == GGUF_TYPE_STRING ? (v->n == 1 ? "string" : "strings") :
			   v->elt == GGUF_TYPE_ARRAY ? (v->n == 1 ? "array" : "arrays") : type_names[v->elt];
	sb_printf(b, "[%" PRIu64 " %s", v->n, what);
	uint64_t show = max_elems < 0 ? v->n : DT_MIN(v->n, (uint64_t)max_elems);
	for (uint64_t i = 0; i < show && !b->cut; i++) {
		sb_putn(b, i ? ", " : ": ", 2);
		if (v->elt == GGUF_TYPE_STRING) {
			struct gguf_value s = { .type = GGUF_TYPE_STRING, .s = v->strs[i] };
			fmt_value(b, &s, max_elems, true);
		} else if (v->elt == GGUF_TYPE_ARRAY) {
			fmt_value(b, &v->arr[i], max_elems, true);
		} else {
			struct gguf_value e = arr_elem(v, i);
			fmt_value(b, &e, max_elems, true);
		}
	}
	if (show < v->n)
		sb_putn(b, show ? ", ..." : ": ...", 5);
	sb_putn(b, "]", 1);
}

void gguf_value_format(const struct gguf_value *v, char *buf, size_t len, int max_elems)
{
	struct sbuf b;
	sb_init(&b, buf, len);
	if (v)
		fmt_value(&b, v, max_elems, false);
	sb_finish(&b);
}

void gguf_kv_format(const struct gguf_ctx *c, int64_t i, char *buf, size_t len, int max_elems)
{
	gguf_value_format(gguf_kv_value(c, i), buf, len, max_elems);
}

void gguf_value_type_str(const struct gguf_value *v, char *buf, size_t len)
{
	value_type_str(v, buf, len);
}

// ---- tensors

int64_t gguf_n_tensors(const struct gguf_ctx *c)
{
	return c->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const struct gguf_ctx *c, int64_t i)
{
	return i >= 0 && i < c->n_tensors ? &c->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *c, const char *name)
{
	int64_t i = index_find_h(&c->tensor_index, name, hash_str(name));
	return i >= 0 ? &c->tensors[i] : NULL;
}

// ---- writer

struct wbuf {
	uint8_t *p;
	size_t len, cap;
};

static void wb_put(struct wbuf *b, const void *src, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void wb_u32(struct wbuf *b, uint32_t v)
{
	wb_put(b, &v, 4);
}

static void wb_u64(struct wbuf *b, uint64_t v)
{
	wb_put(b, &v, 8);
}

static void wb_str(struct wbuf *b, const char *s, size_t n)
{
	wb_u64(b, n);
	wb_put(b, s, n);
}

struct wtensor {
	char *name;
	uint32_t type;
	int n_dims;
	int64_t ne[GGUF_MAX_DIMS];
	size_t nbytes;
	const void *data; /* owned copy unless ref */
	bool owned;
};

struct warr {
	size_t count_pos; /* where the element count of the open array sits in kv */
	uint32_t elt;
	uint64_t n;
};

struct gguf_writer {
	uint32_t version;
	uint32_t alignment; /* from a valid general.alignment, else the default */
	struct wbuf kv;     /* serialized key-value pairs */
	int64_t n_kv;
	struct wtensor *t;
	int64_t n_t, cap_t;
	int depth;          /* open nested arrays */
	struct warr open[GGUF_MAX_DEPTH];
};

struct gguf_writer *gguf_writer_new(uint32_t version)
{
	DT_ASSERT(version == 2 || version == 3);
	struct gguf_writer *w = xcalloc(1, sizeof(*w));
	w->version = version;
	w->alignment = GGUF_DEFAULT_ALIGNMENT;
	return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	for (int64_t i = 0; i < w->n_t; i++) {
		free(w->t[i].name);
		if (w->t[i].owned)
			free((void *)w->t[i].data);
	}
	free(w->t);
	free(w->kv.p);
	free(w);
}

static void w_key(struct gguf_writer *w, const char *key, enum gguf_type type)
{
	DT_ASSERT(w->depth == 0 && key);
	wb_str(&w->kv, key, strlen(key));
	wb_u32(&w->kv, type);
	w->n_kv++;
}

void gguf_w_scalar(struct gguf_writer *w, const char *key, enum gguf_type type, const void *v)
{
	DT_ASSERT((unsigned)type < GGUF_TYPE_COUNT && type_sizes[type]);
	w_key(w, key, type);
	wb_put(&w->kv, v, type_sizes[type]);
	if (!strcmp(key, "general.alignment") && type == GGUF_TYPE_UINT32) {
		uint32_t a;
		memcpy(&a, v, 4);
		if (a && !(a & (a - 1)))
			w->alignment = a;
	}
}

void gguf_w_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	gguf_w_scalar(w, key, GGUF_TYPE_UINT32, &v);
}

void gguf_w_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	gguf_w_scalar(w, key, GGUF_TYPE_INT32, &v);
}

void gguf_w_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	gguf_w_scalar(w, key, GGUF_TYPE_UINT64, &v);
}

void gguf_w_f32(struct gguf_writer *w, const char *key, float v)
{
	gguf_w_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}

void gguf_w_bool(struct gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v;
	gguf_w_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

void gguf_w_str(struct gguf_writer *w, const char *key, const char *v)
{
	gguf_w_strn(w, key, v, strlen(v));
}

void gguf_w_strn(struct gguf_writer *w, const char *key, const char *v, size_t len)
{
	w_key(w, key, GGUF_TYPE_STRING);
	wb_str(&w->kv, v, len);
}

void gguf_w_arr(struct gguf_writer *w, const char *key, enum gguf_type elt, const void *data, int64_t n)
{
	DT_ASSERT((unsigned)elt < GGUF_TYPE_COUNT && type_sizes[elt] && n >= 0);
	w_key(w, key, GGUF_TYPE_ARRAY);
	wb_u32(&w->kv, elt);
	wb_u64(&w->kv, (uint64_t)n);
	wb_put(&w->kv, data, (size_t)n * type_sizes[elt]);
}

void gguf_w_arr_str(struct gguf_writer *w, const char *key, const char *const *v, int64_t n)
{
	DT_ASSERT(n >= 0);
	w_key(w, key, GGUF_TYPE_ARRAY);
	wb_u32(&w->kv, GGUF_TYPE_STRING);
	wb_u64(&w->kv, (uint64_t)n);
	for (int64_t i = 0; i < n; i++)
		wb_str(&w->kv, v[i], strlen(v[i]));
}

void gguf_w_arr_begin(struct gguf_writer *w, const char *key, enum gguf_type elt)
{
	DT_ASSERT((unsigned)elt < GGUF_TYPE_COUNT);
	if (w->depth == 0) {
		w_key(w, key, GGUF_TYPE_ARRAY);
	} else {
		struct warr *up = &w->open[w->depth - 1];
		DT_ASSERT(up->elt == GGUF_TYPE_ARRAY && w->depth < GGUF_MAX_DEPTH);
		up->n++;
	}
	wb_u32(&w->kv, elt);
	struct warr *a = &w->open[w->depth++];
	a->count_pos = w->kv.len;
	a->elt = elt;
	a->n = 0;
	wb_u64(&w->kv, 0);
}

void gguf_w_elem(struct gguf_writer *w, const void *v)
{
	DT_ASSERT(w->depth > 0);
	struct warr *a = &w->open[w->depth - 1];
	DT_ASSERT(type_sizes[a->elt]);
	wb_put(&w->kv, v, type_sizes[a->elt]);
	a->n++;
}

void gguf_w_elem_str(struct gguf_writer *w, const char *s, size_t len)
{
	DT_ASSERT(w->depth > 0);
	struct warr *a = &w->open[w->depth - 1];
	DT_ASSERT(a->elt == GGUF_TYPE_STRING);
	wb_str(&w->kv, s, len);
	a->n++;
}

void gguf_w_arr_end(struct gguf_writer *w)
{
	DT_ASSERT(w->depth > 0);
	struct warr *a = &w->open[--w->depth];
	memcpy(w->kv.p + a->count_pos, &a->n, 8);
}

static struct wtensor *w_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
				const int64_t *ne)
{
	DT_ASSERT(w->depth == 0 && name && n_dims >= 1 && n_dims <= GGUF_MAX_DIMS);
	const struct quant_type_info *info = quant_type(type);
	DT_ASSERT(info && info->block_size > 0);
	uint64_t rows = 1;
	for (int d = 1; d < n_dims; d++) {
		DT_ASSERT(ne[d] >= 1);
		DT_ASSERT(dt_mul_ok(rows, (uint64_t)ne[d], &rows));
	}
	DT_ASSERT(ne[0] >= 1 && ne[0] % info->block_size == 0);
	uint64_t nbytes = (uint64_t)(ne[0] / info->block_size);
	DT_ASSERT(dt_mul_ok(nbytes, info->type_size, &nbytes) && dt_mul_ok(nbytes, rows, &nbytes) &&
		  nbytes <= SIZE_MAX);
	if (w->n_t == w->cap_t) {
		w->cap_t = w->cap_t ? w->cap_t * 2 : 16;
		w->t = xrealloc(w->t, (size_t)w->cap_t * sizeof(*w->t));
	}
	struct wtensor *t = &w->t[w->n_t++];
	memset(t, 0, sizeof(*t));
	t->name = xstrdup(name);
	t->type = type;
	t->n_dims = n_dims;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->nbytes = (size_t)nbytes;
	return t;
}

void gguf_w_tensor(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
		   const int64_t *ne, const void *data)
{
	struct wtensor *t = w_tensor(w, name, type, n_dims, ne);
	void *copy = xmalloc(t->nbytes);
	memcpy(copy, data, t->nbytes);
	t->data = copy;
	t->owned = true;
}

void gguf_w_tensor_ref(struct gguf_writer *w, const char *name, uint32_t type, int n_dims,
		       const int64_t *ne, const void *data)
{
	struct wtensor *t = w_tensor(w, name, type, n_dims, ne);
	t->data = data;
}

/* output: a memory buffer or a FILE */
struct wsink {
	struct wbuf *mem;
	FILE *f;
	uint64_t pos;
	bool failed;
};

static void sink_put(struct wsink *s, const void *p, size_t n)
{
	s->pos += n;
	if (s->mem)
		wb_put(s->mem, p, n);
	else if (!s->failed && n && fwrite(p, 1, n, s->f) != n)
		s->failed = true;
}

static void sink_pad(struct wsink *s, uint64_t align)
{
	static const uint8_t zeros[64];
	uint64_t pad = (align - s->pos % align) % align;
	while (pad) {
		size_t n = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
		sink_put(s, zeros, n);
		pad -= n;
	}
}

static void writer_emit(const struct gguf_writer *w, struct wsink *s)
{
	DT_ASSERT(w->depth == 0);
	uint64_t a = w->alignment;
	uint32_t u32;
	uint64_t u64;
	sink_put(s, GGUF_MAGIC, 4);
	u32 = w->version;
	sink_put(s, &u32, 4);
	u64 = (uint64_t)w->n_t;
	sink_put(s, &u64, 8);
	u64 = (uint64_t)w->n_kv;
	sink_put(s, &u64, 8);
	sink_put(s, w->kv.p, w->kv.len);
	uint64_t off = 0;
	for (int64_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->t[i];
		u64 = strlen(t->name);
		sink_put(s, &u64, 8);
		sink_put(s, t->name, (size_t)u64);
		u32 = (uint32_t)t->n_dims;
		sink_put(s, &u32, 4);
		for (int d = 0; d < t->n_dims; d++)
			sink_put(s, &t->ne[d], 8);
		sink_put(s, &t->type, 4);
		sink_put(s, &off, 8);
		off += (t->nbytes + a - 1) / a * a;
	}
	if (w->n_t) /* no data section without tensors (and no 2^31 bytes of padding) */
		sink_pad(s, a);
	for (int64_t i = 0; i < w->n_t; i++) {
		sink_put(s, w->t[i].data, w->t[i].nbytes);
		sink_pad(s, a);
	}
}

void *gguf_writer_bytes(struct gguf_writer *w, size_t *len)
{
	struct wbuf b = { 0 };
	struct wsink s = { .mem = &b };
	writer_emit(w, &s);
	*len = b.len;
	return b.p ? b.p : xmalloc(1);
}

int gguf_writer_save(struct gguf_writer *w, const char *path, char *err)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return dt_err(err, "%s: cannot create (%s)", path, strerror(errno));
	struct wsink s = { .f = f };
	writer_emit(w, &s);
	int saved = errno;
	if (fclose(f) != 0 && !s.failed) {
		saved = errno;
		s.failed = true;
	}
	if (s.failed) {
		unlink(path);
		return dt_err(err, "%s: cannot write (%s)", path, strerror(saved));
	}
	return 0;
}
