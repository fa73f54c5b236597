/*
 * make_corpus.c — writes the seed corpus of the GGUF fuzz target.
 *
 *   make fuzz-corpus     (runs tests/fuzz/make_corpus $(top_srcdir)/tests/fuzz/corpus)
 *
 * Seeds are small (a few KB at most) and deterministic: valid files built by
 * the writer that reach every value type, nested arrays, tensors of several
 * types, another alignment and a miniature llama-style header; plus a few
 * near-valid broken files (truncated, duplicate key, overlapping or misaligned
 * tensors, v1) so that mutations start close to each check.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "quant.h"

static const char *out_dir;

static void save_bytes(const char *name, const void *p, size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", out_dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "make_corpus: cannot write %s\n", path);
		exit(1);
	}
	printf("%-28s %6zu bytes\n", name, len);
}

/* saves the writer's file, and its first `cut` bytes as name.trunc when cut > 0 */
static void save(const char *name, struct gguf_writer *w, size_t cut)
{
	size_t len;
	void *p = gguf_writer_bytes(w, &len);
	save_bytes(name, p, len);
	if (cut && cut < len) {
		char tname[256];
		snprintf(tname, sizeof(tname), "%s.trunc", name);
		save_bytes(tname, p, cut);
	}
	free(p);
	gguf_writer_free(w);
}

static void seed_scalars(void)
{
	struct gguf_writer *w = gguf_writer_new(2);
	uint8_t u8 = 7;
	int8_t i8 = -7;
	uint16_t u16 = 700;
	int16_t i16 = -700;
	int64_t i64 = -70000000000;
	double f64 = 0.125;
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_scalar(w, "u8", GGUF_TYPE_UINT8, &u8);
	gguf_w_scalar(w, "i8", GGUF_TYPE_INT8, &i8);
	gguf_w_scalar(w, "u16", GGUF_TYPE_UINT16, &u16);
	gguf_w_scalar(w, "i16", GGUF_TYPE_INT16, &i16);
	gguf_w_u32(w, "u32", 70000);
	gguf_w_i32(w, "i32", -70000);
	gguf_w_f32(w, "f32", 1e-5f);
	gguf_w_bool(w, "bool", true);
	gguf_w_strn(w, "str", "a\0b\xff", 4);
	gguf_w_u64(w, "u64", 1ull << 40);
	gguf_w_scalar(w, "i64", GGUF_TYPE_INT64, &i64);
	gguf_w_scalar(w, "f64", GGUF_TYPE_FLOAT64, &f64);
	save("scalars_v2.gguf", w, 0);
}

static void seed_arrays(void)
{
	struct gguf_writer *w = gguf_writer_new(3);
	uint8_t b[4] = { 1, 0, 1, 1 };
	int16_t s[3] = { -1, 0, 1 };
	float f[4] = { 0.5f, -1.0f, 2.0f, 3.5f };
	uint64_t u[2] = { 1, 1ull << 63 };
	static const char *const strs[] = { "<|endoftext|>", "<|im_start|>", "hello", "" };
	gguf_w_arr(w, "bools", GGUF_TYPE_BOOL, b, 4);
	gguf_w_arr(w, "i16s", GGUF_TYPE_INT16, s, 3);
	gguf_w_arr(w, "f32s", GGUF_TYPE_FLOAT32, f, 4);
	gguf_w_arr(w, "u64s", GGUF_TYPE_UINT64, u, 2);
	gguf_w_arr(w, "empty", GGUF_TYPE_INT32, NULL, 0);
	gguf_w_arr_str(w, "strs", strs, 4);
	gguf_w_arr_begin(w, "nested", GGUF_TYPE_ARRAY);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_UINT8);
	gguf_w_elem(w, &b[0]);
	gguf_w_arr_end(w);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_ARRAY);
	gguf_w_arr_begin(w, NULL, GGUF_TYPE_STRING);
	gguf_w_elem_str(w, "x", 1);
	gguf_w_arr_end(w);
	gguf_w_arr_end(w);
	gguf_w_arr_end(w);
	save("arrays.gguf", w, 0);
}

static void seed_tensors(void)
{
	static uint8_t data[4096];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_tensor(w, "f32", DT_TYPE_F32, 2, (const int64_t[]){ 4, 2 }, data);
	gguf_w_tensor(w, "q8_0", DT_TYPE_Q8_0, 1, (const int64_t[]){ 64 }, data);
	gguf_w_tensor(w, "q4_1", DT_TYPE_Q4_1, 2, (const int64_t[]){ 32, 2 }, data);
	gguf_w_tensor(w, "f16", DT_TYPE_F16, 3, (const int64_t[]){ 2, 2, 2 }, data);
	gguf_w_tensor(w, "q4_k", DT_TYPE_Q4_K, 1, (const int64_t[]){ 256 }, data);
	gguf_w_tensor(w, "q6_k", DT_TYPE_Q6_K, 1, (const int64_t[]){ 256 }, data);
	gguf_w_tensor(w, "bf16", DT_TYPE_BF16, 4, (const int64_t[]){ 2, 1, 1, 2 }, data);
	save("tensors.gguf", w, 0);

	w = gguf_writer_new(3);
	gguf_w_u32(w, "general.alignment", 64);
	gguf_w_tensor(w, "a", DT_TYPE_F32, 1, (const int64_t[]){ 16 }, data);
	gguf_w_tensor(w, "b", DT_TYPE_F32, 1, (const int64_t[]){ 16 }, data);
	save("align64.gguf", w, 100);

	save_bytes("header_only.gguf", "GGUF\3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
	save_bytes("v1.gguf", "GGUF\1\0\0\0\0\0\0\0\0\0\0\0", 16);
}

/* a miniature llama-style header: what model and tokenizer code read */
static void seed_llama(void)
{
	static uint8_t data[4096];
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_str(w, "general.name", "tiny");
	gguf_w_u32(w, "llama.block_count", 1);
	gguf_w_u32(w, "llama.context_length", 64);
	gguf_w_u32(w, "llama.embedding_length", 32);
	gguf_w_u32(w, "llama.feed_forward_length", 64);
	gguf_w_u32(w, "llama.attention.head_count", 2);
	gguf_w_u32(w, "llama.attention.head_count_kv", 1);
	gguf_w_f32(w, "llama.rope.freq_base", 100000.0f);
	gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
	gguf_w_str(w, "tokenizer.ggml.pre", "smollm");
	static const char *const toks[] = { "<|endoftext|>", "a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "a" };
	static const char *const merges[] = { "a b", "\xc4\xa0 a" };
	int32_t types[6] = { 3, 1, 1, 1, 1, 1 };
	gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
	gguf_w_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 6);
	gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, 2);
	gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 0);
	gguf_w_tensor(w, "token_embd.weight", DT_TYPE_Q8_0, 2, (const int64_t[]){ 32, 6 }, data);
	gguf_w_tensor(w, "blk.0.attn_norm.weight", DT_TYPE_F32, 1, (const int64_t[]){ 32 }, data);
	gguf_w_tensor(w, "blk.0.attn_q.weight", DT_TYPE_Q4_1, 2, (const int64_t[]){ 32, 32 }, data);
	gguf_w_tensor(w, "output_norm.weight", DT_TYPE_F32, 1, (const int64_t[]){ 32 }, data);
	save("llama_tiny.gguf", w, 700);
}

/* many keys and tensors (index growth), wide and deep nested arrays */
static void seed_many(void)
{
	static uint8_t data[64];
	struct gguf_writer *w = gguf_writer_new(3);
	char name[32];
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		gguf_w_u32(w, name, (uint32_t)i);
	}
	gguf_w_arr_begin(w, "wide", GGUF_TYPE_ARRAY);
	for (int i = 0; i < 20; i++) {
		gguf_w_arr_begin(w, NULL, GGUF_TYPE_INT8);
		gguf_w_elem(w, &data[i]);
		gguf_w_arr_end(w);
	}
	gguf_w_arr_end(w);
	for (int i = 0; i < 36; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		gguf_w_tensor(w, name, DT_TYPE_F32, 1, (const int64_t[]){ 1 }, data);
	}
	save("many.gguf", w, 0);

	/* 8 levels (the most the reader takes), and 9 */
	for (int levels = GGUF_MAX_DEPTH; levels <= GGUF_MAX_DEPTH + 1; levels++) {
		w = gguf_writer_new(3);
		gguf_w_u32(w, "general.alignment", 8);
		gguf_w_arr_begin(w, "deep", levels > 1 ? GGUF_TYPE_ARRAY : GGUF_TYPE_UINT8);
		for (int d = 1; d < levels && d < GGUF_MAX_DEPTH; d++)
			gguf_w_arr_begin(w, NULL, d + 1 < levels ? GGUF_TYPE_ARRAY : GGUF_TYPE_UINT8);
		for (int d = 0; d < levels && d < GGUF_MAX_DEPTH; d++)
			gguf_w_arr_end(w);
		size_t len;
		uint8_t *p = gguf_writer_bytes(w, &len);
		gguf_writer_free(w);
		if (levels > GGUF_MAX_DEPTH) {
			/* the writer stops at the limit: turn the innermost uint8 array
			 * (element type 0, count 0, at the end) into an array of one array */
			size_t at = len - 12;
			uint32_t arr = GGUF_TYPE_ARRAY;
			uint64_t one = 1;
			memcpy(p + at, &arr, 4);
			memcpy(p + at + 4, &one, 8);
			uint8_t tail[12] = { 0 }; /* element type uint8, count 0 */
			uint8_t *q = xmalloc(len + 12);
			memcpy(q, p, len);
			memcpy(q + len, tail, 12);
			save_bytes("deep9.gguf", q, len + 12);
			free(q);
		} else {
			save_bytes("deep8.gguf", p, len);
		}
		free(p);
	}
}

/* near-valid broken files */
static void seed_broken(void)
{
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_u32(w, "k", 1);
	gguf_w_u32(w, "k", 2);
	save("dup_key.gguf", w, 0);

	static uint8_t data[64];
	w = gguf_writer_new(3);
	gguf_w_tensor(w, "t", DT_TYPE_F32, 1, (const int64_t[]){ 8 }, data);
	gguf_w_tensor(w, "t", DT_TYPE_F32, 1, (const int64_t[]){ 8 }, data);
	save("dup_tensor.gguf", w, 0);

	/* a tensor whose offset is patched to overlap / to be misaligned */
	w = gguf_writer_new(3);
	gguf_w_tensor(w, "a", DT_TYPE_F32, 1, (const int64_t[]){ 16 }, data);
	gguf_w_tensor(w, "b", DT_TYPE_F32, 1, (const int64_t[]){ 8 }, data);
	size_t len;
	uint8_t *p = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	/* b's info: name "b" then n_dims 4, ne 8, type 4, offset 8 */
	for (size_t i = 8; i + 1 < len; i++) {
		uint64_t l;
		memcpy(&l, p + i - 8, 8);
		if (l == 1 && p[i] == 'b') {
			uint64_t off = 32;
			memcpy(p + i + 1 + 16, &off, 8);
			save_bytes("overlap.gguf", p, len);
			off = 68;
			memcpy(p + i + 1 + 16, &off, 8);
			save_bytes("misaligned.gguf", p, len);
			break;
		}
	}
	free(p);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	out_dir = argv[1];
	seed_scalars();
	seed_arrays();
	seed_tensors();
	seed_llama();
	seed_many();
	seed_broken();
	return 0;
}
