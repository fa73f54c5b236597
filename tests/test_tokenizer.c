/*
 * test_tokenizer.c — unicode tables, byte-level BPE and sentencepiece
 * tokenization, decoding (whole and streaming), chat formatting, and the
 * validation of tokenizer metadata.
 *
 * Expected ids come from llama.cpp (tools/gen_tokenizer_data.py):
 *   tests/data/tokenizer_smollm2.tsv    SmolLM2's tokenizer (needs the model)
 *   tests/data/tokenizer_spm_vocab.tsv  a small sentencepiece vocabulary that
 *   tests/data/tokenizer_spm.tsv        this test writes as a GGUF in memory
 * The other fixtures (a tiny byte-level vocabulary, broken variants of it)
 * are built here with the GGUF writer.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "tap.h"
#include "tokenizer.h"
#include "unicode.h"

// ---- helpers

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = xmalloc(cap);
	size_t k;
	while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (cap - n - 1 == 0)
			buf = xrealloc(buf, cap *= 2);
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* undoes the escaping of the .tsv files (\\ \t \n \r \xHH); *len bytes */
static char *unesc(const char *s, size_t *len)
{
	char *out = xmalloc(strlen(s) + 1);
	size_t o = 0;
	for (const char *p = s; *p; p++) {
		if (*p != '\\') {
			out[o++] = *p;
			continue;
		}
		p++;
		if (*p == 'x') {
			char hex[3] = {p[1], p[2], 0};
			out[o++] = (char)strtol(hex, NULL, 16);
			p += 2;
		} else {
			out[o++] = *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
}

/* splits line at tabs in place; returns the field count */
static int split_tabs(char *line, char **f, int max)
{
	int n = 0;
	f[n++] = line;
	for (char *p = line; *p && n < max; p++) {
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

static int parse_ids(const char *s, int32_t *ids, int max)
{
	int n = 0;
	char *end;
	while (*s && n < max) {
		long v = strtol(s, &end, 10);
		if (end == s)
			break;
		ids[n++] = (int32_t)v;
		s = end;
	}
	return n;
}

static bool ids_equal(const int32_t *a, int na, const int32_t *b, int nb)
{
	return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0);
}

static void diag_ids(const char *what, const int32_t *ids, int n)
{
	char buf[512];
	size_t o = 0;
	for (int i = 0; i < n && o + 16 < sizeof(buf); i++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%d", i ? " " : "", ids[i]);
	diag("%s: %s", what, buf);
}

/* Is s[0..n) well-formed UTF-8 with no partial character? */
static bool utf8_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		bool valid;
		i += unicode_decode_utf8(s + i, n - i, &cp, &valid);
		if (!valid)
			return false;
	}
	return true;
}

static struct tokenizer *from_writer(struct gguf_writer *w, const char *name, char *err)
{
	size_t len;
	void *buf = gguf_writer_bytes(w, &len);
	gguf_writer_free(w);
	struct gguf_ctx *g = gguf_open_mem(buf, len, name, err);
	struct tokenizer *t = g ? tokenizer_from_gguf(g, err) : NULL;
	gguf_close(g);
	free(buf);
	return t;
}

/* Streams ids one at a time; checks every chunk is complete UTF-8 and
 * returns the concatenation (flushed) in a malloc'd string. */
static char *stream_all(const struct tokenizer *t, const int32_t *ids, int n, bool *chunks_ok, size_t *len)
{
	struct tokenizer_stream st = {0};
	size_t cap = 64, o = 0;
	char *s = xmalloc(cap);
	*chunks_ok = true;
	for (int i = 0; i <= n; i++) {
		char chunk[512];
		size_t k = i < n ? tokenizer_decode_stream(t, &st, ids[i], chunk, sizeof(chunk))
				 : tokenizer_stream_flush(&st, chunk, sizeof(chunk));
		if (!utf8_ok(chunk, k))
			*chunks_ok = false;
		if (o + k + 1 > cap)
			s = xrealloc(s, cap = 2 * (o + k + 1));
		memcpy(s + o, chunk, k);
		o += k;
	}
	s[o] = '\0';
	*len = o;
	return s;
}

// ---- unicode

static void test_unicode(void)
{
	static const struct {
		uint32_t cp;
		uint16_t flags;
	} cases[] = {
		{'a', UNICODE_LETTER}, {'Z', UNICODE_LETTER}, {'7', UNICODE_NUMBER},
		{' ', UNICODE_SEPARATOR | UNICODE_WHITESPACE}, {'\n', UNICODE_CONTROL | UNICODE_WHITESPACE},
		{'!', UNICODE_PUNCTUATION}, {'$', UNICODE_SYMBOL}, {'+', UNICODE_SYMBOL}, {'_', UNICODE_PUNCTUATION},
		{0x00E9, UNICODE_LETTER}, {0x4E2D, UNICODE_LETTER}, {0x0661, UNICODE_NUMBER},
		{0x2167, UNICODE_NUMBER}, {0x1F600, UNICODE_SYMBOL}, {0x0301, UNICODE_MARK},
		{0x3000, UNICODE_SEPARATOR | UNICODE_WHITESPACE}, {0x00A0, UNICODE_SEPARATOR | UNICODE_WHITESPACE},
		{0x0085, UNICODE_CONTROL | UNICODE_WHITESPACE}, {0x200D, UNICODE_CONTROL},
		{0x0378, UNICODE_UNDEFINED}, {0xE000, UNICODE_CONTROL}, {0x10FFFF, UNICODE_UNDEFINED},
		{0x110000, 0},
	};
	int bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(cases); i++) {
		if (unicode_flags(cases[i].cp) != cases[i].flags) {
			diag("U+%04X: flags 0x%x, expected 0x%x", cases[i].cp, unicode_flags(cases[i].cp),
			     cases[i].flags);
			bad++;
		}
	}
	ok(bad == 0, "unicode_flags gives the category group (+ White_Space) of %zu sample code points",
	   DT_ARRAY_LEN(cases));

	bool bij = true;
	for (int b = 0; b < 256; b++)
		bij = bij && unicode_cpt_to_byte(unicode_byte_to_cpt((uint8_t)b)) == b;
	ok(bij && unicode_byte_to_cpt(' ') == 0x120 && unicode_byte_to_cpt('\n') == 0x10A &&
		   unicode_byte_to_cpt('a') == 'a' && unicode_byte_to_cpt(0xAD) == 0x143 &&
		   unicode_cpt_to_byte(0x144) == -1 && unicode_cpt_to_byte(' ') == -1,
	   "GPT-2 byte mapping is a bijection with ' ' -> U+0120, '\\n' -> U+010A, 0xAD -> U+0143");

	int rt_bad = 0;
	for (int i = 0; i < 2000; i++) {
		uint32_t cp = rnd() % 0x110000, back;
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		char buf[4];
		bool valid;
		size_t n = unicode_encode_utf8(cp, buf);
		size_t k = unicode_decode_utf8(buf, n, &back, &valid);
		rt_bad += !(valid && k == n && back == cp);
	}
	ok(rt_bad == 0, "UTF-8 encode/decode round-trips random code points (%d failures)", rt_bad);

	static const char *const bad_seqs[] = {"\xC0\x80", "\xED\xA0\x80", "\xF5\x80\x80\x80", "\x80",
					       "\xE2\x82", "\xF4\x90\x80\x80", "\xE0\x80\x80"};
	int rejected = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(bad_seqs); i++) {
		uint32_t cp;
		bool valid;
		size_t k = unicode_decode_utf8(bad_seqs[i], strlen(bad_seqs[i]), &cp, &valid);
		rejected += !valid && k == 1 && cp == UNICODE_REPLACEMENT;
	}
	ok(rejected == (int)DT_ARRAY_LEN(bad_seqs),
	   "malformed UTF-8 (overlong, surrogate, > U+10FFFF, stray, truncated) consumes 1 byte as U+FFFD");
}

// ---- a tiny byte-level vocabulary built here

enum tiny_break {
	TINY_OK,
	TINY_TYPES_SHORT,
	TINY_SCORES_SHORT,
	TINY_MERGE_UNKNOWN,
	TINY_MERGE_NO_SPACE,
	TINY_BOS_RANGE,
	TINY_BAD_PRE,
	TINY_BAD_MODEL,
	TINY_DUPLICATE,
	TINY_NO_MERGES,
};

static const char *const tiny_special[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"};
static const int tiny_special_type[] = {3, 3, 3, 4};
static const char *const tiny_merges[] = {"Ġ t", "h e", "Ġt he", "i n", "in g", "Ġ Ġ", "e r", "ĠĠ ĠĠ"};

#define TINY_BYTE0 4 /* id of byte 0's token */
#define TINY_MERGE0 (TINY_BYTE0 + 256)

static struct tokenizer *tiny_bpe(enum tiny_break brk, const char *pre, const char *tmpl, char *err)
{
	int n_merges = (int)DT_ARRAY_LEN(tiny_merges), n = TINY_MERGE0 + n_merges;
	char **tok = xcalloc((size_t)n, sizeof(char *));
	int32_t *types = xcalloc((size_t)n, sizeof(int32_t));
	float *scores = xcalloc((size_t)n, sizeof(float));
	for (int i = 0; i < 4; i++) {
		tok[i] = xstrdup(tiny_special[i]);
		types[i] = tiny_special_type[i];
	}
	for (int b = 0; b < 256; b++) {
		char buf[5] = {0};
		unicode_encode_utf8(unicode_byte_to_cpt((uint8_t)b), buf);
		tok[TINY_BYTE0 + b] = xstrdup(buf);
		types[TINY_BYTE0 + b] = 1;
	}
	const char *merges[DT_ARRAY_LEN(tiny_merges)];
	for (int m = 0; m < n_merges; m++) {
		char buf[32];
		const char *sp = strchr(tiny_merges[m], ' ');
		snprintf(buf, sizeof(buf), "%.*s%s", (int)(sp - tiny_merges[m]), tiny_merges[m], sp + 1);
		tok[TINY_MERGE0 + m] = xstrdup(buf);
		types[TINY_MERGE0 + m] = 1;
		merges[m] = tiny_merges[m];
	}
	if (brk == TINY_MERGE_UNKNOWN)
		merges[3] = "i zz";
	if (brk == TINY_MERGE_NO_SPACE)
		merges[3] = "in";
	if (brk == TINY_DUPLICATE) {
		free(tok[TINY_MERGE0 + 1]);
		tok[TINY_MERGE0 + 1] = xstrdup("<|im_end|>");
	}

	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_str(w, "tokenizer.ggml.model", brk == TINY_BAD_MODEL ? "bert" : "gpt2");
	gguf_w_str(w, "tokenizer.ggml.pre", brk == TINY_BAD_PRE ? "no-such-pre" : pre ? pre : "smollm");
	gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, n);
	gguf_w_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n - (brk == TINY_TYPES_SHORT));
	if (brk == TINY_SCORES_SHORT)
		gguf_w_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n - 1);
	if (brk != TINY_NO_MERGES)
		gguf_w_arr_str(w, "tokenizer.ggml.merges", merges, n_merges);
	gguf_w_u32(w, "tokenizer.ggml.bos_token_id", brk == TINY_BOS_RANGE ? (uint32_t)n : 1);
	gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
	gguf_w_bool(w, "tokenizer.ggml.add_bos_token", false);
	if (tmpl)
		gguf_w_str(w, "tokenizer.chat_template", tmpl);
	for (int i = 0; i < n; i++)
		free(tok[i]);
	free(tok);
	free(types);
	free(scores);
	return from_writer(w, "tiny.gguf", err);
}

static int32_t tiny_byte(int b)
{
	return TINY_BYTE0 + b;
}

static int32_t tiny_merged(int m)
{
	return TINY_MERGE0 + m;
}

static void test_validation(void)
{
	static const struct {
		enum tiny_break brk;
		const char *needle;
		const char *what;
	} cases[] = {
		{TINY_TYPES_SHORT, "tokenizer.ggml.token_type", "token_type shorter than tokens"},
		{TINY_SCORES_SHORT, "tokenizer.ggml.scores", "scores shorter than tokens"},
		{TINY_MERGE_UNKNOWN, "merges[3]", "a merge whose right part is no token"},
		{TINY_MERGE_NO_SPACE, "expected \"left right\"", "a merge without a space"},
		{TINY_BOS_RANGE, "bos_token_id", "bos id out of range"},
		{TINY_BAD_PRE, "no-such-pre", "an unknown pre-tokenizer"},
		{TINY_BAD_MODEL, "bert", "an unsupported tokenizer model"},
		{TINY_DUPLICATE, "duplicate", "a duplicate token text"},
		{TINY_NO_MERGES, "merges", "gpt2 model without merges"},
	};
	for (size_t i = 0; i < DT_ARRAY_LEN(cases); i++) {
		char err[DT_ERR_LEN] = "";
		struct tokenizer *t = tiny_bpe(cases[i].brk, NULL, NULL, err);
		ok(!t && strstr(err, "tiny.gguf: ") == err && strstr(err, cases[i].needle),
		   "rejects %s with a message naming '%s' (got: %s)", cases[i].what, cases[i].needle, err);
		tokenizer_free(t);
	}
}

static void test_tiny(void)
{
	char err[DT_ERR_LEN];
	struct tokenizer *t = tiny_bpe(TINY_OK, NULL, NULL, err);
	if (!ok(t != NULL, "tiny byte-level vocabulary loads (%s)", t ? "ok" : err))
		return;
	int32_t *ids, n;

	/* hand-derived: " the" = Ġ t h e -> Ġt, he -> Ġthe; "thing" = t h i n g -> in -> ing */
	tokenizer_encode(t, " the thing", 10, false, false, &ids, &n, err);
	int32_t want1[] = {tiny_merged(2), tiny_merged(0), tiny_byte('h'), tiny_merged(4)};
	ok(ids_equal(ids, n, want1, 4), "' the thing' -> [Ġthe, Ġt, h, ing] by merge rank");
	free(ids);

	/* smollm splits digits one by one and leaves one space before a word */
	tokenizer_encode(t, "a12     b", 9, false, false, &ids, &n, err);
	int32_t want2[] = {tiny_byte('a'), tiny_byte('1'), tiny_byte('2'), tiny_merged(7), tiny_byte(' '),
			   tiny_byte('b')};
	ok(ids_equal(ids, n, want2, 6), "'a12     b' -> a 1 2 ĠĠĠĠ Ġ b (digits alone, 4+1 spaces)");
	if (!ids_equal(ids, n, want2, 6))
		diag_ids("got", ids, n);
	free(ids);

	const char *sp = "x<|im_start|>user<tool><|im_end|>";
	tokenizer_encode(t, sp, strlen(sp), true, true, &ids, &n, err);
	ok(n == 8 && ids[0] == 1 && ids[1] == tiny_byte('x') && ids[2] == 1 && ids[5] == tiny_merged(6) &&
		   ids[6] == 3 && ids[7] == 2,
	   "parse_special: BOS + control and user-defined tokens found in the text");
	free(ids);
	tokenizer_encode(t, sp, strlen(sp), false, false, &ids, &n, err);
	bool no_control = true, has_user = false;
	for (int i = 0; i < n; i++) {
		no_control = no_control && !(ids[i] >= 0 && ids[i] <= 2);
		has_user = has_user || ids[i] == 3;
	}
	ok(no_control && has_user, "without parse_special control tokens are spelled out, user-defined "
				   "ones still match");
	free(ids);

	/* random bytes (valid UTF-8 or not) round-trip exactly */
	int rt_bad = 0;
	for (int it = 0; it < 300; it++) {
		char buf[200];
		size_t len = rnd() % sizeof(buf);
		for (size_t i = 0; i < len; i++) {
			uint32_t r = rnd() % 10;
			buf[i] = r < 6 ? " abcdefghin\n\t1"[rnd() % 14] : (char)(1 + rnd() % 255);
		}
		if (len > 20 && rnd() % 2)
			memcpy(buf + rnd() % (len - 13), "<|im_start|>", 12);
		bool special = rnd() % 2;
		if (tokenizer_encode(t, buf, len, false, special, &ids, &n, err) < 0) {
			rt_bad++;
			continue;
		}
		char *back = tokenizer_decode(t, ids, n);
		rt_bad += strlen(back) != len || memcmp(back, buf, len) != 0;
		free(back);
		free(ids);
	}
	ok(rt_bad == 0, "300 random byte strings (invalid UTF-8, special text) round-trip through "
			"encode/decode (%d failures)", rt_bad);

	/* streaming over byte tokens: random code points are split across ids */
	int st_bad = 0, chunk_bad = 0;
	for (int it = 0; it < 200; it++) {
		char buf[256];
		size_t len = 0;
		while (len + 4 < sizeof(buf) && rnd() % 40) {
			uint32_t cp = rnd() % 4 == 0 ? rnd() % 128 : 0x80 + rnd() % (0x10FFFF - 0x80);
			if (cp >= 0xD800 && cp <= 0xDFFF)
				cp = 0x1F600;
			len += unicode_encode_utf8(cp ? cp : 'x', buf + len);
		}
		tokenizer_encode(t, buf, len, false, false, &ids, &n, err);
		bool chunks_ok;
		size_t slen;
		char *s = stream_all(t, ids, n, &chunks_ok, &slen);
		st_bad += slen != len || memcmp(s, buf, len) != 0;
		chunk_bad += !chunks_ok;
		free(s);
		free(ids);
	}
	ok(st_bad == 0 && chunk_bad == 0,
	   "streaming decode of random UTF-8 over byte tokens: only whole characters per call, same "
	   "text as the input (%d wrong, %d broken chunks)", st_bad, chunk_bad);

	/* invalid bytes in the stream: U+FFFD, never broken output */
	{
		int32_t seq[] = {tiny_byte(0xF0), tiny_byte(0x9F), tiny_byte('a'), tiny_byte(0xE2),
				 tiny_byte(0x82)};
		bool chunks_ok;
		size_t slen;
		char *s = stream_all(t, seq, 5, &chunks_ok, &slen);
		ok(chunks_ok && strcmp(s, "\xEF\xBF\xBD\xEF\xBF\xBD" "a" "\xEF\xBF\xBD") == 0,
		   "a cut character becomes U+FFFD per byte before 'a' and one U+FFFD at the flush");
		free(s);
	}

	size_t plen;
	const char *p = tokenizer_piece(t, tiny_merged(2), &plen);
	ok(plen == 4 && memcmp(p, " the", 4) == 0 && tokenizer_piece(t, -1, &plen) == NULL &&
		   tokenizer_piece(t, tokenizer_n_vocab(t), &plen) == NULL,
	   "piece of 'Ġthe' is ' the'; ids out of range give NULL");
	ok(tokenizer_is_eog(t, 2) && tokenizer_is_eog(t, 0) && !tokenizer_is_eog(t, 1) &&
		   !tokenizer_is_eog(t, -5) && tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 &&
		   !tokenizer_add_bos(t),
	   "eos and <|endoftext|> end generation, <|im_start|> does not; bos 1, eos 2, no auto BOS");
	tokenizer_free(t);

	/* chat templates */
	struct tokenizer_chat_msg msgs[] = {{"user", "Hi"}, {"assistant", " Hello. "}};
	t = tiny_bpe(TINY_OK, NULL, "{% raise %}weird template", err);
	char *c = t ? tokenizer_chat_format(t, msgs, 2, true, err) : NULL;
	ok(t && !c && strstr(err, "not supported") && strstr(err, "weird template"),
	   "an unknown template form is refused, naming it (%s)", err);
	free(c);
	tokenizer_free(t);
	t = tiny_bpe(TINY_OK, NULL,
		     "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
		     "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}", err);
	c = t ? tokenizer_chat_format(t, msgs, 2, true, err) : NULL;
	ok(c && strcmp(c, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
			  "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
			  "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0,
	   "Llama 3 header form with trimmed content and the assistant header");
	free(c);
	tokenizer_free(t);
	t = tiny_bpe(TINY_OK, NULL, NULL, err);
	c = t ? tokenizer_chat_format(t, msgs, 1, false, err) : NULL;
	ok(c && strcmp(c, "<|im_start|>user\nHi<|im_end|>\n") == 0,
	   "no template but ChatML tokens: plain ChatML without a default system message");
	free(c);
	tokenizer_free(t);
}

// ---- expected ids from llama.cpp

/* Checks every line of a .tsv against t; returns the number of lines read. */
static int check_tsv(const struct tokenizer *t, const char *file)
{
	size_t len;
	char *data = read_file(tap_data_path(file), &len);
	if (!ok(data != NULL, "%s is readable", file))
		return 0;
	int lines = 0;
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		char *f[64];
		int nf = split_tabs(line, f, 64);
		char err[DT_ERR_LEN] = "";
		size_t tl;
		if (strcmp(f[0], "encode") == 0 && nf >= 3) {
			char *text = unesc(f[2], &tl);
			int32_t want[4096], *ids = NULL, n = 0;
			int nw = nf > 3 ? parse_ids(f[3], want, 4096) : 0;
			int rc = tokenizer_encode(t, text, tl, strchr(f[1], 'b') != NULL, strchr(f[1], 's') != NULL,
						  &ids, &n, err);
			if (!ok(rc == 0 && ids_equal(ids, n, want, nw), "%s: %s '%.40s' -> %d ids as llama.cpp",
				file, f[1], f[2], nw)) {
				diag_ids("want", want, nw);
				diag_ids("got ", ids, n);
			}
			free(ids);
			free(text);
		} else if (strcmp(f[0], "chat") == 0 && nf >= 5) {
			char *want = unesc(f[2], &tl);
			int nm = (nf - 3) / 2;
			struct tokenizer_chat_msg msgs[32];
			char *owned[64];
			for (int i = 0; i < nm && i < 32; i++) {
				msgs[i].role = owned[2 * i] = unesc(f[3 + 2 * i], &tl);
				msgs[i].content = owned[2 * i + 1] = unesc(f[4 + 2 * i], &tl);
			}
			char *got = tokenizer_chat_format(t, msgs, nm, f[1][0] == '1', err);
			if (!ok(got && strcmp(got, want) == 0, "%s: chat of %d messages renders as the jinja "
							       "template does", file, nm))
				diag("got: %s", got ? got : err);
			free(got);
			free(want);
			for (int i = 0; i < 2 * nm; i++)
				free(owned[i]);
		} else {
			ok(0, "%s: unknown line kind '%s'", file, f[0]);
		}
		lines++;
	}
	free(data);
	return lines;
}

// ---- sentencepiece

static struct tokenizer *spm_build(char *err)
{
	size_t len;
	char *data = read_file(tap_data_path("tokenizer_spm_vocab.tsv"), &len);
	if (!data) {
		snprintf(err, DT_ERR_LEN, "cannot read tokenizer_spm_vocab.tsv");
		return NULL;
	}
	int cap = 1024, n = 0;
	char **tok = xmalloc((size_t)cap * sizeof(char *));
	int32_t *types = xmalloc((size_t)cap * sizeof(int32_t));
	float *scores = xmalloc((size_t)cap * sizeof(float));
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line && n < cap; line = strtok_r(NULL, "\n", &save)) {
		char *f[3];
		if (line[0] == '#' || split_tabs(line, f, 3) != 3)
			continue;
		size_t tl;
		types[n] = atoi(f[0]);
		scores[n] = strtof(f[1], NULL);
		tok[n++] = unesc(f[2], &tl);
	}
	free(data);
	/* the same keys tools/gen_tokenizer_data.py gives llama.cpp */
	struct gguf_writer *w = gguf_writer_new(3);
	gguf_w_str(w, "general.architecture", "llama");
	gguf_w_u32(w, "llama.block_count", 1);
	gguf_w_u32(w, "llama.context_length", 512);
	gguf_w_u32(w, "llama.embedding_length", 64);
	gguf_w_u32(w, "llama.feed_forward_length", 128);
	gguf_w_u32(w, "llama.attention.head_count", 4);
	gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	gguf_w_str(w, "tokenizer.ggml.model", "llama");
	gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, n);
	gguf_w_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n);
	gguf_w_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n);
	gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
	gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
	gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	gguf_w_bool(w, "tokenizer.ggml.add_bos_token", true);
	gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", true);
	for (int i = 0; i < n; i++)
		free(tok[i]);
	free(tok);
	free(types);
	free(scores);
	return from_writer(w, "spm.gguf", err);
}

static void test_spm(void)
{
	char err[DT_ERR_LEN];
	struct tokenizer *t = spm_build(err);
	if (!ok(t != NULL, "sentencepiece vocabulary from tokenizer_spm_vocab.tsv loads (%s)", t ? "ok" : err))
		return;
	ok(tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 && tokenizer_add_bos(t),
	   "sentencepiece: bos 1, eos 2, BOS added by default");
	size_t plen;
	const char *p = tokenizer_piece(t, tokenizer_find(t, "<0x41>", 6), &plen);
	const char *q = tokenizer_piece(t, tokenizer_find(t, "\xE2\x96\x81the", 6), &plen);
	ok(p && p[0] == 'A' && q && strcmp(q, " the") == 0, "pieces: <0x41> -> 'A', '▁the' -> ' the'");
	int lines = check_tsv(t, "tokenizer_spm.tsv");
	ok(lines >= 20, "tokenizer_spm.tsv has %d cases (expected >= 20)", lines);

	static const char *const texts[] = {
		"hello world", "Mixed CASE and   spaces\tand\nnewlines ", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC",
		"emoji \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", "  ", "x",
	};
	int bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(texts); i++) {
		int32_t *ids, n;
		tokenizer_encode(t, texts[i], strlen(texts[i]), false, false, &ids, &n, err);
		char *back = tokenizer_decode(t, ids, n);
		bad += back[0] != ' ' || strcmp(back + 1, texts[i]) != 0;
		free(back);
		free(ids);
	}
	ok(bad == 0, "sentencepiece round trip: decode(encode(x)) == ' ' + x (the space prefix stays)");
	tokenizer_free(t);
}

// ---- the SmolLM2 model

static const char *const smol_texts[] = {
	"Hello world! The quick brown fox jumps over the lazy dog.",
	"Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m \xC3\x9C""ber Stra\xC3\x9F""e",
	"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE4\xB8\xAD\xE6\x96\x87 \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
	"family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\xE2\x80\x8D\xF0\x9F\x91\xA6 "
	"flag \xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F\x8C\x88 thumbs \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
	"\t\ttabs\n\n\nnewlines   spaces  \r\n trailing   ",
	"int main(void) {\n\tfor (int i = 0; i < 10; i++)\n\t\tprintf(\"%d\\n\", i);\n}\n",
	"   ", "\n", "",
};

static void test_smollm2(const char *path)
{
	char err[DT_ERR_LEN];
	double t0 = dt_now_s();
	struct gguf_ctx *g = gguf_open(path, err);
	struct tokenizer *t = g ? tokenizer_from_gguf(g, err) : NULL;
	double t_load = dt_now_s() - t0;
	gguf_close(g);
	if (!ok(t != NULL, "SmolLM2 tokenizer loads (%s)", t ? "ok" : err))
		return;
	diag("load: %.1f ms", t_load * 1e3);
	ok(tokenizer_n_vocab(t) == 49152 && tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 &&
		   !tokenizer_add_bos(t) && tokenizer_is_eog(t, 2) && tokenizer_is_eog(t, 0) &&
		   !tokenizer_is_eog(t, 1),
	   "SmolLM2: 49152 tokens, bos 1, eos 2 (<|im_end|>), <|endoftext|> ends generation, no auto BOS");

	int lines = check_tsv(t, "tokenizer_smollm2.tsv");
	ok(lines >= 40, "tokenizer_smollm2.tsv has %d cases (expected >= 40)", lines);

	int bad = 0;
	for (size_t i = 0; i < DT_ARRAY_LEN(smol_texts); i++) {
		int32_t *ids, n;
		tokenizer_encode(t, smol_texts[i], strlen(smol_texts[i]), false, false, &ids, &n, err);
		char *back = tokenizer_decode(t, ids, n);
		if (strcmp(back, smol_texts[i]) != 0) {
			diag("round trip failed: '%s' -> '%s'", smol_texts[i], back);
			bad++;
		}
		free(back);
		free(ids);
	}
	ok(bad == 0, "SmolLM2 round trip decode(encode(x)) == x on %zu varied texts", DT_ARRAY_LEN(smol_texts));

	/* an emoji's bytes split over tokens: the stream waits for whole characters */
	const char *emo = smol_texts[3];
	int32_t *ids, n;
	tokenizer_encode(t, emo, strlen(emo), false, false, &ids, &n, err);
	int split = 0;
	for (int i = 0; i < n; i++) {
		size_t plen;
		const char *p = tokenizer_piece(t, ids[i], &plen);
		split += !utf8_ok(p, plen);
	}
	bool chunks_ok;
	size_t slen;
	char *s = stream_all(t, ids, n, &chunks_ok, &slen);
	ok(split > 0 && chunks_ok && strcmp(s, emo) == 0,
	   "streaming the ZWJ emoji text (%d tokens are partial characters) gives whole characters and "
	   "the same text", split);
	free(s);
	free(ids);

	/* random code points through the real vocabulary */
	int rt_bad = 0, st_bad = 0;
	for (int it = 0; it < 100; it++) {
		char buf[400];
		size_t len = 0;
		while (len + 4 < sizeof(buf) && rnd() % 60) {
			uint32_t r = rnd() % 10, cp;
			if (r < 5)
				cp = 32 + rnd() % 95; /* ASCII */
			else if (r < 6)
				cp = (unsigned char)" \t\n\r"[rnd() % 4];
			else if (r < 8)
				cp = 0xA0 + rnd() % 0x2F00; /* Latin .. CJK punctuation */
			else /* SmolLM2 has no byte tokens for 0xF1, 0xF2: no U+40000..U+BFFFF */
				cp = 0x80 + rnd() % (0x40000 - 0x80);
			if (cp >= 0xD800 && cp <= 0xDFFF)
				cp = 0x4E2D;
			len += unicode_encode_utf8(cp, buf + len);
		}
		tokenizer_encode(t, buf, len, false, rnd() % 2, &ids, &n, err);
		char *back = tokenizer_decode(t, ids, n);
		rt_bad += strlen(back) != len || memcmp(back, buf, len) != 0;
		s = stream_all(t, ids, n, &chunks_ok, &slen);
		st_bad += !chunks_ok || slen != len || memcmp(s, buf, len) != 0;
		free(s);
		free(back);
		free(ids);
	}
	ok(rt_bad == 0 && st_bad == 0, "100 random Unicode strings round-trip (whole: %d, stream: %d failures)",
	   rt_bad, st_bad);

	tokenizer_encode(t, "<|im_start|>", 12, false, true, &ids, &n, err);
	bool one = n == 1 && ids[0] == 1;
	free(ids);
	tokenizer_encode(t, "<|im_start|>", 12, false, false, &ids, &n, err);
	bool none = n > 1;
	for (int i = 0; i < n; i++)
		none = none && ids[i] > 16;
	free(ids);
	ok(one && none, "'<|im_start|>' is token 1 with parse_special and plain text without");

	/* speed: a few KB of mixed text */
	size_t cap = 8192, len = 0;
	char *big = xmalloc(cap);
	for (int r = 0; len < 4096; r++) {
		const char *x = smol_texts[r % 6];
		size_t k = strlen(x);
		memcpy(big + len, x, k);
		len += k;
	}
	int iters = 50;
	t0 = dt_now_s();
	int32_t total = 0;
	for (int i = 0; i < iters; i++) {
		tokenizer_encode(t, big, len, false, false, &ids, &n, err);
		total = n;
		free(ids);
	}
	double dt = (dt_now_s() - t0) / iters;
	diag("encode speed: %zu bytes -> %d tokens in %.3f ms (%.1f MB/s)", len, total, dt * 1e3,
	     len / dt / 1e6);
	ok(total > 0, "encoded %zu bytes of mixed text (%.3f ms per call; CPU, see diag)", len, dt * 1e3);
	free(big);
	tokenizer_free(t);
}

int main(void)
{
	const char *seed_env = getenv("DT_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)dt_now_ns();
	rng_state = seed ? seed : 1;
	diag("seed %llu (set DT_SEED to reproduce)", (unsigned long long)seed);
	tap_plan_lazy();
	test_unicode();
	test_validation();
	test_tiny();
	test_spm();
	const char *model = tap_model_path();
	if (model)
		test_smollm2(model);
	else
		tap_skip("SmolLM2 tests: no model (run ./bootstrap or set DEFTREE_MODEL)");
	return tap_done();
}
