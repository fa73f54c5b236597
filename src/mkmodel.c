/*
 * mkmodel.c — writes synthetic GGUF models (see mkmodel.h).
 *
 * DESIGN
 *   The file is streamed: the header, metadata and tensor table are built in
 *   memory (their sizes are small and known up front, so every tensor's data
 *   offset is computed before any weight exists), then each tensor is
 *   generated in chunks of rows and appended.  Rows are generated in parallel
 *   on a thread pool; each row's random numbers come from its own generator
 *   seeded by (seed, tensor index, row), so the file does not depend on the
 *   thread count.
 *
 *   Values: matrices are uniform with standard deviation 1/sqrt(n_in) (so that
 *   activations keep their scale through the layers), norm weights are
 *   1 + U(-0.1, 0.1), biases U(-0.1, 0.1), token embeddings have standard
 *   deviation 2/sqrt(n_embd) (logits of standard deviation ~2 when tied).
 *
 *   Quantizers are plain reference versions of ggml's formats (min/max or
 *   absmax scales, no search): enough for random weights, and checked
 *   against quant_dequant_row() in the tests.  A matrix whose rows are not a
 *   whole number of the type's blocks (q4_k/q6_k need 256) falls back to q8_0,
 *   as llama.cpp's quantizer falls back for such tensors.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "mkmodel.h"
#include "quant.h"
#include "threadpool.h"

#define MK_ALIGN 32
#define MK_N_SPECIAL 3
#define MK_MAX_MERGE_BYTES 16     /* longest synthetic merged token, in UTF-8 bytes */
#define MK_CHUNK_BYTES (64u << 20) /* rows generated per chunk: about 64 MiB */

struct mkmodel_params mkmodel_default_params(void)
{
	struct mkmodel_params p = {
		.n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 4, .n_ff = 128,
		.n_vocab = 512, .n_ctx = 2048, .rope_base = 10000.0f, .rms_eps = 1e-5f, .rope_scale = 1.0f,
		.type = DT_TYPE_Q8_0, .tied = true, .qkv_bias = -1, .seed = 1,
		.n_threads = dt_ncpu(),
	};
	snprintf(p.arch, sizeof(p.arch), "llama");
	return p;
}

// ---- presets

struct mk_preset {
	const char *name;
	const char *arch;
	int32_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
	float rope_base, rms_eps;
	bool tied;
};

static const struct mk_preset mk_presets[] = {
	{ "llama3-8b", "llama", 32, 4096, 32, 8, 14336, 128256, 8192, 500000.0f, 1e-5f, false },
	{ "llama2-7b", "llama", 32, 4096, 32, 32, 11008, 32000, 4096, 10000.0f, 1e-5f, false },
	{ "smollm2-135m", "llama", 30, 576, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f, true },
	{ "tiny-llama", "llama", 2, 64, 4, 2, 128, 512, 2048, 10000.0f, 1e-5f, true },
	{ "tiny-qwen2", "qwen2", 2, 64, 4, 2, 128, 512, 2048, 1000000.0f, 1e-6f, false },
};

int mkmodel_preset(struct mkmodel_params *p, const char *name, char *err)
{
	for (size_t i = 0; i < DT_ARRAY_LEN(mk_presets); i++) {
		const struct mk_preset *s = &mk_presets[i];
		if (strcmp(s->name, name) != 0)
			continue;
		snprintf(p->arch, sizeof(p->arch), "%s", s->arch);
		p->n_layer = s->n_layer;
		p->n_embd = s->n_embd;
		p->n_head = s->n_head;
		p->n_head_kv = s->n_head_kv;
		p->n_ff = s->n_ff;
		p->n_vocab = s->n_vocab;
		p->n_ctx = s->n_ctx;
		p->rope_base = s->rope_base;
		p->rms_eps = s->rms_eps;
		p->tied = s->tied;
		return 0;
	}
	return dt_err(err, "mkmodel: unknown preset '%s' (expected one of %s)", name,
		      mkmodel_preset_names());
}

const char *mkmodel_preset_names(void)
{
	return "llama3-8b, llama2-7b, smollm2-135m, tiny-llama, tiny-qwen2";
}

// ---- random numbers

static inline uint64_t mk_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static inline float mk_uniform(uint64_t *s)
{
	return (float)(mk_splitmix(s) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

// ---- quantizers (ggml block layouts)

static inline uint16_t mk_f16(float x)
{
	return quant_f32_to_f16(x);
}

static inline float mk_f16_round(float x)
{
	return quant_f16_to_f32(quant_f32_to_f16(x));
}

static void quantize_q8_0(const float *x, uint8_t *dst, int64_t n)
{
	for (int64_t b = 0; b < n / 32; b++, x += 32, dst += 34) {
		float amax = 0.0f;
		for (int i = 0; i < 32; i++)
			amax = fmaxf(amax, fabsf(x[i]));
		const float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
		const uint16_t dh = mk_f16(d);
		memcpy(dst, &dh, 2);
		for (int i = 0; i < 32; i++)
			dst[2 + i] = (uint8_t)(int8_t)lrintf(x[i] * id);
	}
}

static void quantize_q4_1(const float *x, uint8_t *dst, int64_t n)
{
	for (int64_t b = 0; b < n / 32; b++, x += 32, dst += 20) {
		float mn = x[0], mx = x[0];
		for (int i = 1; i < 32; i++) {
			mn = fminf(mn, x[i]);
			mx = fmaxf(mx, x[i]);
		}
		const float d = (mx - mn) / 15.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
		const uint16_t dh = mk_f16(d), mh = mk_f16(mn);
		memcpy(dst, &dh, 2);
		memcpy(dst + 2, &mh, 2);
		for (int i = 0; i < 16; i++) {
			int q0 = (int)lrintf((x[i] - mn) * id), q1 = (int)lrintf((x[i + 16] - mn) * id);
			q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
			q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
			dst[4 + i] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

/* block_q4_K: d, dmin (f16), scales[12] (6-bit scale and min per 32), qs[128] */
static void quantize_q4_k(const float *x, uint8_t *dst, int64_t n)
{
	for (int64_t b = 0; b < n / 256; b++, x += 256, dst += 144) {
		float scale[8], minv[8], max_scale = 0.0f, max_min = 0.0f;
		for (int j = 0; j < 8; j++) {
			float mn = x[32 * j], mx = x[32 * j];
			for (int i = 1; i < 32; i++) {
				mn = fminf(mn, x[32 * j + i]);
				mx = fmaxf(mx, x[32 * j + i]);
			}
			mn = fminf(mn, 0.0f);
			scale[j] = (mx - mn) / 15.0f;
			minv[j] = -mn;
			max_scale = fmaxf(max_scale, scale[j]);
			max_min = fmaxf(max_min, minv[j]);
		}
		const float d = mk_f16_round(max_scale / 63.0f), dmin = mk_f16_round(max_min / 63.0f);
		const uint16_t dh = mk_f16(d), mh = mk_f16(dmin);
		memcpy(dst, &dh, 2);
		memcpy(dst + 2, &mh, 2);
		uint8_t *sc = dst + 4, *qs = dst + 16;
		uint8_t ls[8], lm[8];
		memset(sc, 0, 12);
		for (int j = 0; j < 8; j++) {
			int a = d > 0.0f ? (int)lrintf(scale[j] / d) : 0;
			int c = dmin > 0.0f ? (int)lrintf(minv[j] / dmin) : 0;
			ls[j] = (uint8_t)(a < 0 ? 0 : a > 63 ? 63 : a);
			lm[j] = (uint8_t)(c < 0 ? 0 : c > 63 ? 63 : c);
			if (j < 4) {
				sc[j] = ls[j];
				sc[j + 4] = lm[j];
			} else {
				sc[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
				sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
				sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
			}
		}
		uint8_t L[256];
		for (int j = 0; j < 8; j++) {
			const float sd = d * ls[j], m = dmin * lm[j];
			for (int i = 0; i < 32; i++) {
				int q = sd > 0.0f ? (int)lrintf((x[32 * j + i] + m) / sd) : 0;
				L[32 * j + i] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
			}
		}
		for (int j = 0; j < 256; j += 64)
			for (int l = 0; l < 32; l++)
				*qs++ = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
	}
}

/* block_q6_K: ql[128], qh[64], scales[16] (int8 per 16), d (f16) */
static void quantize_q6_k(const float *x, uint8_t *dst, int64_t n)
{
	for (int64_t b = 0; b < n / 256; b++, x += 256, dst += 210) {
		float scale[16], max_scale = 0.0f;
		for (int j = 0; j < 16; j++) {
			float amax = 0.0f;
			for (int i = 0; i < 16; i++)
				amax = fmaxf(amax, fabsf(x[16 * j + i]));
			scale[j] = amax / 31.0f;
			max_scale = fmaxf(max_scale, scale[j]);
		}
		const float d = mk_f16_round(max_scale / 127.0f);
		uint8_t *ql = dst, *qh = dst + 128;
		int8_t *sc = (int8_t *)(dst + 192);
		const uint16_t dh = mk_f16(d);
		memcpy(dst + 208, &dh, 2);
		uint8_t L[256];
		for (int j = 0; j < 16; j++) {
			int s = d > 0.0f ? (int)lrintf(scale[j] / d) : 0;
			sc[j] = (int8_t)(s > 127 ? 127 : s);
			const float sd = d * sc[j];
			for (int i = 0; i < 16; i++) {
				int q = sd > 0.0f ? (int)lrintf(x[16 * j + i] / sd) : 0;
				q = q < -32 ? -32 : q > 31 ? 31 : q;
				L[16 * j + i] = (uint8_t)(q + 32);
			}
		}
		memset(qh, 0, 64);
		for (int j = 0; j < 256; j += 128) {
			for (int l = 0; l < 32; l++) {
				const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
				const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
				ql[l] = (uint8_t)(q1 | (q3 << 4));
				ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
				qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
						  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
			}
			ql += 64;
			qh += 32;
		}
	}
}

bool mkmodel_type_ok(enum dt_type t)
{
	return t == DT_TYPE_F32 || t == DT_TYPE_F16 || t == DT_TYPE_Q8_0 || t == DT_TYPE_Q4_1 ||
	       t == DT_TYPE_Q4_K || t == DT_TYPE_Q6_K;
}

void mkmodel_quantize_row(enum dt_type t, const float *x, void *dst, int64_t n)
{
	switch (t) {
	case DT_TYPE_F32:
		memcpy(dst, x, (size_t)n * sizeof(float));
		break;
	case DT_TYPE_F16:
		for (int64_t i = 0; i < n; i++) {
			const uint16_t h = mk_f16(x[i]);
			memcpy((uint8_t *)dst + 2 * i, &h, 2);
		}
		break;
	case DT_TYPE_Q8_0:
		quantize_q8_0(x, dst, n);
		break;
	case DT_TYPE_Q4_1:
		quantize_q4_1(x, dst, n);
		break;
	case DT_TYPE_Q4_K:
		quantize_q4_k(x, dst, n);
		break;
	case DT_TYPE_Q6_K:
		quantize_q6_k(x, dst, n);
		break;
	default:
		DT_ASSERT(!"mkmodel_quantize_row: unsupported type");
	}
}

// ---- metadata serialization (GGUF v3, little-endian)

struct mk_buf {
	uint8_t *p;
	size_t len, cap;
	uint64_t n_kv;
};

static void mk_put(struct mk_buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = DT_MAX(b->cap * 2, b->len + n + 4096);
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void mk_u32(struct mk_buf *b, uint32_t v)
{
	mk_put(b, &v, 4);
}

static void mk_u64(struct mk_buf *b, uint64_t v)
{
	mk_put(b, &v, 8);
}

static void mk_str(struct mk_buf *b, const char *s, size_t len)
{
	mk_u64(b, len);
	mk_put(b, s, len);
}

static void mk_key(struct mk_buf *b, const char *key, enum gguf_type t)
{
	mk_str(b, key, strlen(key));
	mk_u32(b, (uint32_t)t);
	b->n_kv++;
}

static void mk_kv_u32(struct mk_buf *b, const char *key, uint32_t v)
{
	mk_key(b, key, GGUF_TYPE_UINT32);
	mk_u32(b, v);
}

static void mk_kv_f32(struct mk_buf *b, const char *key, float v)
{
	mk_key(b, key, GGUF_TYPE_FLOAT32);
	mk_put(b, &v, 4);
}

static void mk_kv_bool(struct mk_buf *b, const char *key, bool v)
{
	const uint8_t x = v;
	mk_key(b, key, GGUF_TYPE_BOOL);
	mk_put(b, &x, 1);
}

static void mk_kv_str(struct mk_buf *b, const char *key, const char *v)
{
	mk_key(b, key, GGUF_TYPE_STRING);
	mk_str(b, v, strlen(v));
}

static size_t mk_gguf_type_size(enum gguf_type t)
{
	switch (t) {
	case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL:
		return 1;
	case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
		return 2;
	case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32:
		return 4;
	case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64:
		return 8;
	default:
		return 0;
	}
}

/* Copies key i of src (scalars, numeric arrays, string arrays). */
static int mk_copy_kv(struct mk_buf *b, const struct gguf_ctx *src, int64_t i, char *err)
{
	const char *key = gguf_kv_key(src, i);
	const enum gguf_type t = gguf_kv_type(src, i);
	if (t == GGUF_TYPE_STRING) {
		const char *s;
		if (gguf_get_str(src, key, &s, err) != 0)
			return -1;
		mk_kv_str(b, key, s);
	} else if (t == GGUF_TYPE_ARRAY) {
		enum gguf_type elt;
		int64_t n;
		const void *data;
		if (gguf_get_arr(src, key, &elt, &n, &data, err) != 0)
			return -1;
		if (elt == GGUF_TYPE_STRING) {
			mk_key(b, key, GGUF_TYPE_ARRAY);
			mk_u32(b, GGUF_TYPE_STRING);
			mk_u64(b, (uint64_t)n);
			for (int64_t k = 0; k < n; k++) {
				size_t len = 0;
				const char *s = gguf_get_arr_str(src, key, k, &len);
				mk_str(b, s ? s : "", s ? len : 0);
			}
		} else if (mk_gguf_type_size(elt) > 0 && data) {
			mk_key(b, key, GGUF_TYPE_ARRAY);
			mk_u32(b, (uint32_t)elt);
			mk_u64(b, (uint64_t)n);
			mk_put(b, data, (size_t)n * mk_gguf_type_size(elt));
		} /* nested arrays: not copied */
	} else if (t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) {
		float v;
		if (gguf_get_f32(src, key, &v, err) != 0)
			return -1;
		mk_kv_f32(b, key, v);
	} else if (t == GGUF_TYPE_BOOL) {
		bool v;
		if (gguf_get_bool(src, key, &v, err) != 0)
			return -1;
		mk_kv_bool(b, key, v);
	} else {
		int64_t v;
		if (gguf_get_i64(src, key, &v, err) != 0)
			return -1;
		const size_t sz = mk_gguf_type_size(t);
		mk_key(b, key, t);
		mk_put(b, &v, sz); /* little-endian: the low bytes */
	}
	return 0;
}

// ---- synthetic byte-level BPE vocabulary

/* GPT-2's bytes_to_unicode: the code point byte b is written as. */
static uint32_t mk_byte_cp(int b)
{
	if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
		return (uint32_t)b;
	uint32_t n = 0;
	for (int c = 0; c < b; c++)
		if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
			n++;
	return 256 + n;
}

static size_t mk_utf8(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xC0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3F));
	return 2; /* byte code points are < 0x800 */
}

struct mk_vocab {
	char **tokens;   /* (n) */
	int32_t *types;  /* (n) */
	char **merges;   /* (n_merges) "left right" */
	int64_t n, n_merges;
};

static uint64_t mk_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void mk_vocab_build(struct mk_vocab *v, int32_t n_vocab, uint64_t seed)
{
	static const char *const special[MK_N_SPECIAL] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
	v->n = n_vocab;
	v->tokens = xcalloc((size_t)n_vocab, sizeof(char *));
	v->types = xcalloc((size_t)n_vocab, sizeof(int32_t));
	v->n_merges = n_vocab - MK_N_SPECIAL - 256;
	v->merges = xcalloc((size_t)DT_MAX(v->n_merges, 1), sizeof(char *));
	for (int i = 0; i < MK_N_SPECIAL; i++) {
		v->tokens[i] = xstrdup(special[i]);
		v->types[i] = 3; /* control */
	}
	/* open-addressing set of token strings (ids), for uniqueness */
	size_t cap = 1;
	while (cap < (size_t)n_vocab * 2)
		cap <<= 1;
	int32_t *set = xmallocarray(cap, sizeof(int32_t));
	for (size_t i = 0; i < cap; i++)
		set[i] = -1;
#define MK_SET_FIND(str, slot)                                                  \
	do {                                                                      \
		slot = mk_hash(str) & (cap - 1);                                      \
		while (set[slot] >= 0 && strcmp(v->tokens[set[slot]], str) != 0)     \
			slot = (slot + 1) & (cap - 1);                                    \
	} while (0)
	size_t slot;
	for (int b = 0; b < 256; b++) {
		char s[4];
		const size_t len = mk_utf8(mk_byte_cp(b), s);
		s[len] = 0;
		const int32_t id = MK_N_SPECIAL + b;
		v->tokens[id] = xstrdup(s);
		v->types[id] = 1;
		MK_SET_FIND(s, slot);
		set[slot] = id;
	}
	uint64_t rng = seed ^ 0x6d65726765ull; /* "merge" */
	for (int64_t m = 0; m < v->n_merges; m++) {
		const int32_t id = (int32_t)(MK_N_SPECIAL + 256 + m);
		for (;;) {
			/* bias towards early (short) tokens: pick among the first k */
			const int64_t have = id - MK_N_SPECIAL;
			const int64_t a = MK_N_SPECIAL + (int64_t)(mk_splitmix(&rng) % (uint64_t)have);
			const int64_t c = MK_N_SPECIAL + (int64_t)(mk_splitmix(&rng) % (uint64_t)have);
			const size_t la = strlen(v->tokens[a]), lc = strlen(v->tokens[c]);
			if (la + lc > MK_MAX_MERGE_BYTES)
				continue;
			char s[MK_MAX_MERGE_BYTES + 1];
			memcpy(s, v->tokens[a], la);
			memcpy(s + la, v->tokens[c], lc);
			s[la + lc] = 0;
			MK_SET_FIND(s, slot);
			if (set[slot] >= 0)
				continue;
			v->tokens[id] = xstrdup(s);
			v->types[id] = 1;
			set[slot] = id;
			char *mg = xmalloc(la + lc + 2);
			memcpy(mg, v->tokens[a], la);
			mg[la] = ' ';
			memcpy(mg + la + 1, v->tokens[c], lc + 1);
			v->merges[m] = mg;
			break;
		}
	}
#undef MK_SET_FIND
	free(set);
}

static void mk_vocab_free(struct mk_vocab *v)
{
	for (int64_t i = 0; i < v->n; i++)
		free(v->tokens[i]);
	for (int64_t i = 0; i < v->n_merges; i++)
		free(v->merges[i]);
	free(v->tokens);
	free(v->types);
	free(v->merges);
}

static void mk_kv_arr_str(struct mk_buf *b, const char *key, char *const *v, int64_t n)
{
	mk_key(b, key, GGUF_TYPE_ARRAY);
	mk_u32(b, GGUF_TYPE_STRING);
	mk_u64(b, (uint64_t)n);
	for (int64_t i = 0; i < n; i++)
		mk_str(b, v[i], strlen(v[i]));
}

static const char mk_chatml[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
	"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\\n' }}{% endif %}";

// ---- tensors

enum mk_fill { MK_FILL_MATRIX, MK_FILL_EMBD, MK_FILL_NORM, MK_FILL_BIAS, MK_FILL_ROPE_FREQS };

/* Llama 3.1's rope frequency factors (convert_hf_to_gguf.py: factor 8, low/high
 * frequency factors 1 and 4, original context 8192): x (n_rot/2). */
static void mk_rope_freqs(float *x, int64_t n, float base)
{
	const double factor = 8.0, lo = 1.0, hi = 4.0, old_ctx = 8192.0;
	const double lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
	for (int64_t i = 0; i < n; i++) {
		const double freq = 1.0 / pow((double)base, (double)(2 * i) / (double)(2 * n));
		const double wavelen = 2.0 * M_PI / freq;
		if (wavelen < hi_wavelen) {
			x[i] = 1.0f;
		} else if (wavelen > lo_wavelen) {
			x[i] = (float)factor;
		} else {
			const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
			x[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
		}
	}
}

struct mk_tensor {
	char name[64];
	int n_dims;
	int64_t ne[2];   /* ne[0] = row length */
	enum dt_type type;
	enum mk_fill fill;
	uint64_t offset; /* in the data section */
	size_t nbytes;
};

static void mk_add(struct mk_tensor *t, int *n, const char *name, int64_t ne0, int64_t ne1,
		   enum dt_type type, enum mk_fill fill)
{
	struct mk_tensor *x = &t[(*n)++];
	snprintf(x->name, sizeof(x->name), "%s", name);
	x->n_dims = ne1 > 0 ? 2 : 1;
	x->ne[0] = ne0;
	x->ne[1] = ne1 > 0 ? ne1 : 1;
	x->fill = fill;
	if (fill == MK_FILL_NORM || fill == MK_FILL_BIAS || fill == MK_FILL_ROPE_FREQS)
		x->type = DT_TYPE_F32;
	else if (ne0 % quant_type(type)->block_size == 0)
		x->type = type;
	else
		x->type = DT_TYPE_Q8_0; /* caller checked that widths are multiples of 32 */
	x->nbytes = quant_row_size(x->type, ne0) * (size_t)x->ne[1];
}

struct mk_gen_job {
	const struct mk_tensor *t;
	int tensor_index;
	uint64_t seed;
	float rope_base;
	int64_t r0, n_rows;
	uint8_t *out;     /* (n_rows, row_bytes) */
	size_t row_bytes;
	float *scratch;   /* (nth, ne[0]) */
	atomic_llong next; /* next row */
};

static void mk_gen_worker(void *arg, int ith, int nth)
{
	struct mk_gen_job *j = arg;
	const struct mk_tensor *t = j->t;
	const int64_t n = t->ne[0];
	float *x = j->scratch + (size_t)ith * (size_t)n;
	const float amp = t->fill == MK_FILL_MATRIX ? sqrtf(3.0f / (float)n) :
			  t->fill == MK_FILL_EMBD   ? 2.0f * sqrtf(3.0f / (float)n) : 0.1f;
	for (;;) {
		const int64_t r = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (r >= j->n_rows)
			break;
		if (t->fill == MK_FILL_ROPE_FREQS) {
			mk_rope_freqs(x, n, j->rope_base);
			mkmodel_quantize_row(t->type, x, j->out + (size_t)r * j->row_bytes, n);
			continue;
		}
		uint64_t s = j->seed ^ ((uint64_t)(j->tensor_index + 1) << 40) ^ (uint64_t)(j->r0 + r);
		mk_splitmix(&s);
		for (int64_t i = 0; i < n; i++)
			x[i] = (t->fill == MK_FILL_NORM ? 1.0f : 0.0f) + amp * mk_uniform(&s);
		mkmodel_quantize_row(t->type, x, j->out + (size_t)r * j->row_bytes, n);
	}
}

// ---- writing

static int mk_write_all(FILE *f, const void *p, size_t n, const char *path, char *err)
{
	if (n && fwrite(p, 1, n, f) != n)
		return dt_err(err, "%s: write failed: %s", path, strerror(errno));
	return 0;
}

int mkmodel_write(const struct mkmodel_params *p, const char *path, FILE *log, char *err)
{
	const bool qwen2 = !strcmp(p->arch, "qwen2");
	if (!qwen2 && strcmp(p->arch, "llama") != 0)
		return dt_err(err, "mkmodel: unsupported architecture '%s' (expected llama or qwen2)",
			      p->arch);
	if (!mkmodel_type_ok(p->type))
		return dt_err(err, "mkmodel: unsupported weight type %s (expected f32, f16, q8_0, q4_1, q4_k or q6_k)",
			      quant_type_name(p->type));
	if (!(p->rope_scale > 0.0f) || !(p->rope_base > 0.0f))
		return dt_err(err, "mkmodel: rope scale %g and base %g must be positive",
			      (double)p->rope_scale, (double)p->rope_base);
	if (p->n_layer < 1 || p->n_embd < 32 || p->n_head < 1 || p->n_head_kv < 1 || p->n_ff < 32 ||
	    p->n_ctx < 1)
		return dt_err(err, "mkmodel: bad shape (layers %d, embd %d, heads %d/%d, ff %d, ctx %d)",
			      p->n_layer, p->n_embd, p->n_head, p->n_head_kv, p->n_ff, p->n_ctx);
	if (p->n_embd % p->n_head || p->n_head % p->n_head_kv || (p->n_embd / p->n_head) % 2)
		return dt_err(err, "mkmodel: embd %d must be a multiple of heads %d (even head size), heads a multiple of kv heads %d",
			      p->n_embd, p->n_head, p->n_head_kv);
	const int64_t head_dim = p->n_embd / p->n_head, kv_dim = head_dim * p->n_head_kv;
	if (p->n_embd % 32 || p->n_ff % 32 || kv_dim % 32)
		return dt_err(err, "mkmodel: embd %d, ff %d and kv width %lld must be multiples of 32",
			      p->n_embd, p->n_ff, (long long)kv_dim);

	/* tokenizer metadata first: its size fixes n_vocab */
	struct gguf_ctx *src = NULL;
	struct mk_buf kv = { 0 };
	char key[128];
	int32_t n_vocab = p->n_vocab;
	mk_kv_str(&kv, "general.architecture", p->arch);
	char name[96];
	snprintf(name, sizeof(name), "deftree synthetic %s (random weights)", p->arch);
	mk_kv_str(&kv, "general.name", name);
	mk_kv_u32(&kv, "general.alignment", MK_ALIGN);
#define ARCH_KEY(s) (snprintf(key, sizeof(key), "%s.%s", p->arch, s), key)
	mk_kv_u32(&kv, ARCH_KEY("context_length"), (uint32_t)p->n_ctx);
	mk_kv_u32(&kv, ARCH_KEY("embedding_length"), (uint32_t)p->n_embd);
	mk_kv_u32(&kv, ARCH_KEY("block_count"), (uint32_t)p->n_layer);
	mk_kv_u32(&kv, ARCH_KEY("feed_forward_length"), (uint32_t)p->n_ff);
	mk_kv_u32(&kv, ARCH_KEY("attention.head_count"), (uint32_t)p->n_head);
	mk_kv_u32(&kv, ARCH_KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv);
	mk_kv_u32(&kv, ARCH_KEY("rope.dimension_count"), (uint32_t)head_dim);
	mk_kv_f32(&kv, ARCH_KEY("rope.freq_base"), p->rope_base);
	mk_kv_f32(&kv, ARCH_KEY("attention.layer_norm_rms_epsilon"), p->rms_eps);
	if (p->rope_scale != 1.0f) {
		mk_kv_str(&kv, ARCH_KEY("rope.scaling.type"), "linear");
		mk_kv_f32(&kv, ARCH_KEY("rope.scaling.factor"), p->rope_scale);
	}
#undef ARCH_KEY
	if (p->vocab_from) {
		src = gguf_open(p->vocab_from, err);
		if (!src) {
			free(kv.p);
			return -1;
		}
		n_vocab = 0;
		for (int64_t i = 0; i < gguf_n_kv(src); i++) {
			const char *k = gguf_kv_key(src, i);
			if (strncmp(k, "tokenizer.", 10) != 0)
				continue;
			if (mk_copy_kv(&kv, src, i, err) != 0) {
				gguf_close(src);
				free(kv.p);
				return -1;
			}
			if (!strcmp(k, "tokenizer.ggml.tokens")) {
				enum gguf_type elt;
				int64_t n;
				const void *d;
				if (gguf_get_arr(src, k, &elt, &n, &d, NULL) == 0 && n < (1 << 30))
					n_vocab = (int32_t)n;
			}
		}
		gguf_close(src);
		if (n_vocab <= 0) {
			free(kv.p);
			return dt_err(err, "%s: no tokenizer.ggml.tokens array to copy", p->vocab_from);
		}
	} else {
		if (n_vocab < MK_N_SPECIAL + 256) {
			free(kv.p);
			return dt_err(err, "mkmodel: vocab %d too small (expected at least %d: 3 control tokens + 256 bytes)",
				      n_vocab, MK_N_SPECIAL + 256);
		}
		struct mk_vocab v;
		mk_vocab_build(&v, n_vocab, p->seed);
		mk_kv_str(&kv, "tokenizer.ggml.model", "gpt2");
		mk_kv_str(&kv, "tokenizer.ggml.pre", qwen2 ? "qwen2" : "smollm");
		mk_kv_arr_str(&kv, "tokenizer.ggml.tokens", v.tokens, v.n);
		mk_key(&kv, "tokenizer.ggml.token_type", GGUF_TYPE_ARRAY);
		mk_u32(&kv, GGUF_TYPE_INT32);
		mk_u64(&kv, (uint64_t)v.n);
		mk_put(&kv, v.types, (size_t)v.n * sizeof(int32_t));
		mk_kv_arr_str(&kv, "tokenizer.ggml.merges", v.merges, v.n_merges);
		mk_kv_u32(&kv, "tokenizer.ggml.bos_token_id", 0);
		mk_kv_u32(&kv, "tokenizer.ggml.eos_token_id", 2);
		mk_kv_u32(&kv, "tokenizer.ggml.padding_token_id", 0);
		mk_kv_bool(&kv, "tokenizer.ggml.add_bos_token", false);
		mk_kv_str(&kv, "tokenizer.chat_template", mk_chatml);
		mk_vocab_free(&v);
	}

	/* tensor table */
	const int max_t = 4 + p->n_layer * 12;
	struct mk_tensor *ts = xcalloc((size_t)max_t, sizeof(*ts));
	int nt = 0;
	const bool bias = p->qkv_bias < 0 ? qwen2 : p->qkv_bias > 0;
	mk_add(ts, &nt, "token_embd.weight", p->n_embd, n_vocab, p->type, MK_FILL_EMBD);
	mk_add(ts, &nt, "output_norm.weight", p->n_embd, 0, DT_TYPE_F32, MK_FILL_NORM);
	if (!p->tied)
		mk_add(ts, &nt, "output.weight", p->n_embd, n_vocab, p->type, MK_FILL_MATRIX);
	if (p->rope_freqs)
		mk_add(ts, &nt, "rope_freqs.weight", head_dim / 2, 0, DT_TYPE_F32, MK_FILL_ROPE_FREQS);
	for (int l = 0; l < p->n_layer; l++) {
		char tn[64];
#define TN(s) (snprintf(tn, sizeof(tn), "blk.%d.%s", l, s), tn)
		mk_add(ts, &nt, TN("attn_norm.weight"), p->n_embd, 0, DT_TYPE_F32, MK_FILL_NORM);
		mk_add(ts, &nt, TN("attn_q.weight"), p->n_embd, p->n_embd, p->type, MK_FILL_MATRIX);
		mk_add(ts, &nt, TN("attn_k.weight"), p->n_embd, kv_dim, p->type, MK_FILL_MATRIX);
		mk_add(ts, &nt, TN("attn_v.weight"), p->n_embd, kv_dim, p->type, MK_FILL_MATRIX);
		if (bias) {
			mk_add(ts, &nt, TN("attn_q.bias"), p->n_embd, 0, DT_TYPE_F32, MK_FILL_BIAS);
			mk_add(ts, &nt, TN("attn_k.bias"), kv_dim, 0, DT_TYPE_F32, MK_FILL_BIAS);
			mk_add(ts, &nt, TN("attn_v.bias"), kv_dim, 0, DT_TYPE_F32, MK_FILL_BIAS);
		}
		mk_add(ts, &nt, TN("attn_output.weight"), p->n_embd, p->n_embd, p->type, MK_FILL_MATRIX);
		mk_add(ts, &nt, TN("ffn_norm.weight"), p->n_embd, 0, DT_TYPE_F32, MK_FILL_NORM);
		mk_add(ts, &nt, TN("ffn_gate.weight"), p->n_embd, p->n_ff, p->type, MK_FILL_MATRIX);
		mk_add(ts, &nt, TN("ffn_up.weight"), p->n_embd, p->n_ff, p->type, MK_FILL_MATRIX);
		mk_add(ts, &nt, TN("ffn_down.weight"), p->n_ff, p->n_embd, p->type, MK_FILL_MATRIX);
#undef TN
	}
	DT_ASSERT(nt <= max_t);

	/* header + metadata + tensor infos, then pad to the alignment */
	struct mk_buf hdr = { 0 };
	mk_put(&hdr, "GGUF", 4);
	mk_u32(&hdr, 3);
	mk_u64(&hdr, (uint64_t)nt);
	mk_u64(&hdr, kv.n_kv);
	mk_put(&hdr, kv.p, kv.len);
	free(kv.p);
	uint64_t off = 0, n_params = 0;
	int n_fallback = 0;
	for (int i = 0; i < nt; i++) {
		struct mk_tensor *t = &ts[i];
		t->offset = off;
		off += (t->nbytes + MK_ALIGN - 1) / MK_ALIGN * MK_ALIGN;
		n_params += (uint64_t)t->ne[0] * (uint64_t)t->ne[1];
		n_fallback += t->fill <= MK_FILL_EMBD && t->type != p->type;
		mk_str(&hdr, t->name, strlen(t->name));
		mk_u32(&hdr, (uint32_t)t->n_dims);
		for (int d = 0; d < t->n_dims; d++)
			mk_u64(&hdr, (uint64_t)t->ne[d]);
		mk_u32(&hdr, (uint32_t)t->type);
		mk_u64(&hdr, t->offset);
	}
	static const uint8_t zeros[MK_ALIGN];
	mk_put(&hdr, zeros, (MK_ALIGN - hdr.len % MK_ALIGN) % MK_ALIGN);

	FILE *f = fopen(path, "wb");
	if (!f) {
		free(hdr.p);
		free(ts);
		return dt_err(err, "%s: cannot create: %s", path, strerror(errno));
	}
	int rc = mk_write_all(f, hdr.p, hdr.len, path, err);
	free(hdr.p);

	struct threadpool *tp = threadpool_new(DT_MAX(1, p->n_threads));
	const int nth = threadpool_n_threads(tp);
	int64_t max_row = 0;
	for (int i = 0; i < nt; i++)
		max_row = DT_MAX(max_row, ts[i].ne[0]);
	float *scratch = xmallocarray((size_t)nth * (size_t)max_row, sizeof(float));
	uint8_t *buf = NULL;
	size_t buf_cap = 0;
	for (int i = 0; i < nt && rc == 0; i++) {
		const struct mk_tensor *t = &ts[i];
		const size_t row_bytes = quant_row_size(t->type, t->ne[0]);
		const int64_t chunk = DT_MAX(1, (int64_t)(MK_CHUNK_BYTES / row_bytes));
		for (int64_t r0 = 0; r0 < t->ne[1] && rc == 0; r0 += chunk) {
			const int64_t rows = DT_MIN(chunk, t->ne[1] - r0);
			const size_t need = (size_t)rows * row_bytes;
			if (need > buf_cap) {
				free(buf);
				buf = xmalloc(need);
				buf_cap = need;
			}
			struct mk_gen_job j = { .t = t, .tensor_index = i, .seed = p->seed,
						.rope_base = p->rope_base, .r0 = r0,
						.n_rows = rows, .out = buf, .row_bytes = row_bytes,
						.scratch = scratch };
			atomic_init(&j.next, 0);
			threadpool_run_any(tp, mk_gen_worker, &j);
			rc = mk_write_all(f, buf, need, path, err);
		}
		const size_t pad = (MK_ALIGN - t->nbytes % MK_ALIGN) % MK_ALIGN;
		if (rc == 0)
			rc = mk_write_all(f, zeros, pad, path, err);
	}
	free(buf);
	free(scratch);
	threadpool_free(tp);
	if (fclose(f) != 0 && rc == 0)
		rc = dt_err(err, "%s: write failed: %s", path, strerror(errno));
	if (rc == 0 && log) {
		fprintf(log, "%s: %s, %d layers, embd %d, heads %d/%d, ff %d, vocab %d, %s weights%s, "
			     "%.1f M parameters, %.1f MiB (synthetic: random weights)\n",
			path, p->arch, p->n_layer, p->n_embd, p->n_head, p->n_head_kv, p->n_ff, n_vocab,
			quant_type_name(p->type), n_fallback ? " (q8_0 where rows do not fit its blocks)" : "",
			(double)n_params / 1e6, (double)(hdr.len + off) / (1024.0 * 1024.0));
	}
	free(ts);
	if (rc != 0)
		remove(path);
	return rc;
}
