/*
 * tokenizer.c — text <-> token ids from GGUF tokenizer metadata.
 *
 * DESIGN
 * The tokenizer owns copies of the vocabulary (token texts in one blob with
 * an offset table), the decoded piece of every token (the bytes it stands
 * for), a hash map text -> id, and for byte-level BPE a hash map
 * (left id, right id) -> (merge rank, merged id). It is immutable after
 * construction, so one tokenizer may be used from several threads.
 *
 * Encoding follows llama.cpp (llama-vocab.cpp, unicode.cpp) so that ids
 * match it:
 *   1. special tokens: control / user-defined / unknown token texts are cut
 *      out of the text, longest text first (control and unknown ones only
 *      when parse_special; user-defined ones always); what is left are raw
 *      text fragments.
 *   2. gpt2 style: each fragment is split by the pre-tokenizer of
 *      tokenizer.ggml.pre (a list of hand-written regex passes over code
 *      points and their category groups), each piece is mapped to GPT-2
 *      byte-level symbols (one per byte) and merged pair by pair, lowest
 *      merge rank first, leftmost first on ties.
 *   3. llama (sentencepiece) style: a fragment gets a leading space when
 *      add_space_prefix and it starts the text or follows a special token,
 *      spaces become U+2581, symbols start as UTF-8 characters and adjacent
 *      symbols whose concatenation is a token merge, highest token score
 *      first; a final symbol that is no token falls back to <0xXX> tokens.
 * Symbols are ids or (offset, length) pairs into one buffer; merge
 * candidates sit in a binary heap and are checked for staleness when popped.
 *
 * A byte with no byte-level token (SmolLM2 has none for 0x04, 0xF1, ...) is
 * dropped, as llama.cpp does; sentencepiece without a <0xXX> token for a
 * byte gives the unknown token.
 *
 * Differences from llama.cpp, on purpose: invalid UTF-8 bytes are kept (as
 * their own byte-level symbols) rather than replaced by U+FFFD; merges never
 * produce control, unknown, byte or unused tokens in the sentencepiece path;
 * decoding never drops the leading space of sentencepiece text.
 */
#include "config.h"

#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "gguf.h"
#include "unicode.h"

// ---- types

enum tok_kind {
	TOK_BPE, /* "gpt2": byte-level BPE with ranked merges */
	TOK_SPM, /* "llama": sentencepiece BPE with scores */
};

/* one pass of a pre-tokenizer; each regex of llama.cpp's list is one pass */
enum tok_pass {
	PASS_NONE = 0,
	PASS_GPT2,          /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
	PASS_LLAMA3,        /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
			       ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
	PASS_QWEN2,         /* the same with \p{N} instead of \p{N}{1,3} */
	PASS_EACH_NUMBER,   /* \p{N} */
	PASS_NUMBER_RUNS,   /* \p{N}+ */
	PASS_PUNCT_RUNS,    /* [\p{P}\$\+<=>\^~\|]+ */
	PASS_ASCII_DIGIT3,  /* [0-9][0-9][0-9] */
};

#define TOK_MAX_PASSES 4

struct tok_pre_def {
	const char *names; /* '|'-separated tokenizer.ggml.pre values */
	enum tok_pass passes[TOK_MAX_PASSES];
	bool ignore_merges; /* a pre-token that is a whole token is taken as is */
	bool add_bos;       /* default of add_bos_token */
};

/* llama.cpp's pre-tokenizer families (llm_tokenizer_bpe) */
static const struct tok_pre_def tok_pre_defs[] = {
	{"default", {PASS_PUNCT_RUNS, PASS_GPT2, PASS_NUMBER_RUNS, PASS_ASCII_DIGIT3}, false, false},
	{"gpt-2|phi-2|mpt|olmo|jais|exaone4", {PASS_GPT2}, false, false},
	{"smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b",
	 {PASS_EACH_NUMBER, PASS_GPT2}, false, false},
	{"qwen2|deepseek-r1-qwen|stablelm2|megrez", {PASS_QWEN2}, false, false},
	{"llama3|llama-v3|llama-bpe|falcon3|pixtral", {PASS_LLAMA3}, true, true},
	{"dbrx|smaug-bpe", {PASS_LLAMA3}, false, false},
};

struct tok_merge_slot {
	uint64_t key; /* left << 32 | right; TOK_EMPTY_KEY when free */
	int32_t rank;
	int32_t id;   /* the merged token */
};
#define TOK_EMPTY_KEY UINT64_MAX

enum tok_chat {
	CHAT_NONE,
	CHAT_CHATML, /* <|im_start|>role\ncontent<|im_end|>\n */
	CHAT_LLAMA3, /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> */
};

struct tokenizer {
	enum tok_kind kind;
	const struct tok_pre_def *pre; /* BPE only */
	int32_t n_vocab;

	char *text;         /* token texts, concatenated */
	uint32_t *text_off; /* (n_vocab + 1) offsets into text */
	char *piece;        /* decoded pieces, concatenated, NUL after each */
	uint32_t *piece_off; /* (n_vocab + 1) offsets into piece; length = next - this - 1 */
	uint8_t *type;      /* (n_vocab) enum tokenizer_token_type */
	float *score;       /* (n_vocab) token scores (merge priority of SPM), or NULL */
	bool *eog;          /* (n_vocab) end-of-generation tokens */

	int32_t *map;       /* text -> id: open addressing, -1 = free */
	uint32_t map_mask;
	struct tok_merge_slot *merges; /* BPE: (left, right) -> rank, merged id */
	uint32_t merge_mask;

	int32_t byte_id[256]; /* BPE: byte-level char token; SPM: <0xXX> token; -1 if none */
	int32_t *special;     /* control / user-defined / unknown ids, longest text first */
	int32_t n_special;

	int32_t bos, eos, unk, eot; /* -1 if none */
	bool add_bos, add_space_prefix;

	enum tok_chat chat;
	char *chat_system; /* ChatML default system message, or NULL */
	char chat_head[48]; /* start of an unsupported template, for the message */
};

/* growable arrays */
struct tok_ivec {
	int32_t *v;
	size_t n, cap;
};
struct tok_uvec {
	uint32_t *v;
	size_t n, cap;
};

static void ivec_push(struct tok_ivec *a, int32_t x)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = x;
}

static void uvec_push(struct tok_uvec *a, uint32_t x)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = x;
}

// ---- hash maps

static uint64_t tok_hash_bytes(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static uint64_t tok_hash_pair(uint64_t key)
{
	key *= 0x9E3779B97F4A7C15ULL;
	return key ^ (key >> 31);
}

static inline const char *tok_text(const struct tokenizer *t, int32_t id, size_t *len)
{
	*len = t->text_off[id + 1] - t->text_off[id];
	return t->text + t->text_off[id];
}

/* id of the token whose text is s[0..n), or -1 */
static int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
	uint32_t i = (uint32_t)tok_hash_bytes(s, n) & t->map_mask;
	for (;;) {
		int32_t id = t->map[i];
		if (id < 0)
			return -1;
		size_t len;
		const char *x = tok_text(t, id, &len);
		if (len == n && memcmp(x, s, n) == 0)
			return id;
		i = (i + 1) & t->map_mask;
	}
}

static uint32_t tok_table_size(uint64_t n)
{
	uint32_t size = 64;
	while (size < 2 * n)
		size *= 2;
	return size;
}

static const struct tok_merge_slot *tok_merge_find(const struct tokenizer *t, int32_t left, int32_t right)
{
	uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
	uint32_t i = (uint32_t)tok_hash_pair(key) & t->merge_mask;
	for (;;) {
		const struct tok_merge_slot *s = &t->merges[i];
		if (s->key == key)
			return s;
		if (s->key == TOK_EMPTY_KEY)
			return NULL;
		i = (i + 1) & t->merge_mask;
	}
}

// ---- construction

/* Plain-array description of a vocabulary (what tokenizer_from_gguf reads). */
struct tok_src {
	const char *name;        /* for messages (the GGUF path) */
	const char *model;       /* "gpt2" | "llama" */
	const char *pre;         /* tokenizer.ggml.pre or NULL */
	int64_t n_vocab;
	const char **tokens;     /* (n_vocab) */
	const size_t *token_len; /* (n_vocab) */
	const int32_t *types;    /* (n_vocab) or NULL: all normal */
	const float *scores;     /* (n_vocab) or NULL */
	int64_t n_merges;
	const char **merges;     /* (n_merges) "left right" */
	const size_t *merge_len; /* (n_merges) */
	int64_t bos, eos, unk, eot, eom; /* -2: key absent (model default) */
	int add_bos, add_space_prefix;   /* -1: key absent */
	const char *chat_template;       /* or NULL */
};

static bool tok_is_text_special(int type)
{
	return type == TOKENIZER_TYPE_CONTROL || type == TOKENIZER_TYPE_USER_DEFINED ||
	       type == TOKENIZER_TYPE_UNKNOWN;
}

/* End-of-generation token texts (llama.cpp's list). */
static const char *const tok_eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
	"<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
};

static int tok_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 :
	       c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* the byte of a "<0xAB>" token text, or -1 */
static int tok_byte_text(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	int hi = tok_hex(s[3]), lo = tok_hex(s[4]);
	return hi < 0 || lo < 0 ? -1 : hi << 4 | lo;
}

/* appends the piece of token id (and a NUL) to *buf */
static void tok_build_piece(const struct tokenizer *t, int32_t id, char **buf, size_t *len, size_t *cap)
{
	size_t n;
	const char *s = tok_text(t, id, &n);
	size_t need = *len + n + 1;
	if (need > *cap) {
		while (*cap < need)
			*cap = *cap ? 2 * *cap : 1 << 16;
		*buf = xrealloc(*buf, *cap);
	}
	char *out = *buf + *len;
	size_t o = 0;
	int type = t->type[id], byte = type == TOKENIZER_TYPE_BYTE ? tok_byte_text(s, n) : -1;
	if (byte >= 0) {
		out[o++] = (char)byte;
	} else if (tok_is_text_special(type)) {
		memcpy(out, s, n);
		o = n;
	} else if (t->kind == TOK_SPM) {
		for (size_t i = 0; i < n;) {
			if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
				out[o++] = ' ';
				i += 3;
			} else {
				out[o++] = s[i++];
			}
		}
	} else {
		/* undo the byte-level mapping; a char that is no byte's image stays */
		for (size_t i = 0; i < n;) {
			uint32_t cp;
			bool valid;
			size_t k = unicode_decode_utf8(s + i, n - i, &cp, &valid);
			int b = valid ? unicode_cpt_to_byte(cp) : -1;
			if (b >= 0) {
				out[o++] = (char)b;
			} else {
				memcpy(out + o, s + i, k);
				o += k;
			}
			i += k;
		}
	}
	out[o++] = '\0';
	*len += o;
}

static int tok_find_pre(const char *pre, const struct tok_pre_def **out)
{
	const char *name = pre && *pre ? pre : "default";
	size_t nl = strlen(name);
	for (size_t i = 0; i < DT_ARRAY_LEN(tok_pre_defs); i++) {
		const char *p = tok_pre_defs[i].names;
		while (*p) {
			size_t k = strcspn(p, "|");
			if (k == nl && memcmp(p, name, k) == 0) {
				*out = &tok_pre_defs[i];
				return 0;
			}
			p += k + (p[k] == '|');
		}
	}
	return -1;
}

static int tok_special_cmp_len(const void *a, const void *b, void *arg)
{
	const struct tokenizer *t = arg;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint32_t lx = t->text_off[x + 1] - t->text_off[x], ly = t->text_off[y + 1] - t->text_off[y];
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

static void tok_detect_chat(struct tokenizer *t, const char *tmpl);

static struct tokenizer *tok_new(const struct tok_src *src, char *err)
{
	const char *name = src->name ? src->name : "tokenizer";
	struct tokenizer *t = xcalloc(1, sizeof(*t));

	if (strcmp(src->model, "gpt2") == 0) {
		t->kind = TOK_BPE;
		if (tok_find_pre(src->pre, &t->pre) < 0) {
			dt_err(err, "%s: tokenizer.ggml.pre: unsupported pre-tokenizer '%s' (expected one "
				    "of default, gpt-2, smollm, starcoder, qwen2, llama-bpe, llama3, dbrx, ...)",
			       name, src->pre);
			goto fail;
		}
	} else if (strcmp(src->model, "llama") == 0) {
		t->kind = TOK_SPM;
	} else {
		dt_err(err, "%s: tokenizer.ggml.model: unsupported tokenizer model '%s' (expected gpt2 or llama)",
		       name, src->model);
		goto fail;
	}
	if (src->n_vocab <= 0 || src->n_vocab >= INT32_MAX / 2) {
		dt_err(err, "%s: tokenizer.ggml.tokens: bad token count (expected 1..%d, found %lld)", name,
		       INT32_MAX / 2 - 1, (long long)src->n_vocab);
		goto fail;
	}
	int32_t n = (int32_t)src->n_vocab;
	t->n_vocab = n;

	// token texts
	uint64_t total = 0;
	for (int32_t i = 0; i < n; i++)
		total += src->token_len[i];
	if (total >= UINT32_MAX / 4) {
		dt_err(err, "%s: tokenizer.ggml.tokens: token texts too large (%llu bytes)", name,
		       (unsigned long long)total);
		goto fail;
	}
	t->text = xmalloc(total + 1);
	t->text_off = xmallocarray((size_t)n + 1, sizeof(uint32_t));
	t->type = xmalloc((size_t)n);
	uint32_t off = 0;
	for (int32_t i = 0; i < n; i++) {
		t->text_off[i] = off;
		memcpy(t->text + off, src->tokens[i], src->token_len[i]);
		off += (uint32_t)src->token_len[i];
		int32_t ty = src->types ? src->types[i] : TOKENIZER_TYPE_NORMAL;
		if (ty < 0 || ty > TOKENIZER_TYPE_BYTE) {
			dt_err(err, "%s: tokenizer.ggml.token_type[%d]: bad token type (expected 0..6, found %d)",
			       name, i, ty);
			goto fail;
		}
		t->type[i] = (uint8_t)ty;
	}
	t->text_off[n] = off;
	if (src->scores) {
		t->score = xmallocarray((size_t)n, sizeof(float));
		memcpy(t->score, src->scores, (size_t)n * sizeof(float));
	} else if (t->kind == TOK_SPM) {
		t->score = xcalloc((size_t)n, sizeof(float));
	}

	// text -> id
	uint32_t size = tok_table_size((uint64_t)n);
	t->map = xmallocarray(size, sizeof(int32_t));
	memset(t->map, 0xff, size * sizeof(int32_t));
	t->map_mask = size - 1;
	for (int32_t i = 0; i < n; i++) {
		size_t len;
		const char *s = tok_text(t, i, &len);
		if (len == 0)
			continue; /* an empty token is never produced nor looked up */
		uint32_t h = (uint32_t)tok_hash_bytes(s, len) & t->map_mask;
		for (;;) {
			int32_t other = t->map[h];
			if (other < 0)
				break;
			size_t ol;
			const char *os = tok_text(t, other, &ol);
			if (ol == len && memcmp(os, s, len) == 0) {
				dt_err(err, "%s: tokenizer.ggml.tokens: duplicate token text '%.*s' (ids %d and %d)",
				       name, (int)DT_MIN(len, 40), s, other, i);
				goto fail;
			}
			h = (h + 1) & t->map_mask;
		}
		t->map[h] = i;
	}

	// byte tokens
	for (int b = 0; b < 256; b++) {
		char buf[8];
		size_t k;
		if (t->kind == TOK_BPE) {
			k = unicode_encode_utf8(unicode_byte_to_cpt((uint8_t)b), buf);
		} else {
			snprintf(buf, sizeof(buf), "<0x%02X>", b);
			k = 6;
		}
		t->byte_id[b] = tok_lookup(t, buf, k);
	}

	// merges
	if (t->kind == TOK_BPE) {
		if (!src->merges) {
			dt_err(err, "%s: tokenizer.ggml.merges: missing (required by the gpt2 tokenizer model)", name);
			goto fail;
		}
		if (src->n_merges >= INT32_MAX / 4) {
			dt_err(err, "%s: tokenizer.ggml.merges: too many merges (%lld)", name,
			       (long long)src->n_merges);
			goto fail;
		}
		size = tok_table_size((uint64_t)src->n_merges);
		t->merges = xmallocarray(size, sizeof(*t->merges));
		for (uint32_t i = 0; i < size; i++)
			t->merges[i].key = TOK_EMPTY_KEY;
		t->merge_mask = size - 1;
		char *cat = NULL;
		size_t cat_cap = 0;
		for (int64_t m = 0; m < src->n_merges; m++) {
			const char *s = src->merges[m];
			size_t len = src->merge_len[m];
			const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
			if (!sp) {
				free(cat);
				dt_err(err, "%s: tokenizer.ggml.merges[%lld]: expected \"left right\", found '%.*s'",
				       name, (long long)m, (int)DT_MIN(len, 40), s);
				goto fail;
			}
			size_t ll = (size_t)(sp - s), rl = len - ll - 1;
			int32_t l = tok_lookup(t, s, ll), r = tok_lookup(t, sp + 1, rl);
			if (ll + rl > cat_cap) {
				cat_cap = 2 * (ll + rl);
				cat = xrealloc(cat, cat_cap);
			}
			memcpy(cat, s, ll);
			memcpy(cat + ll, sp + 1, rl);
			int32_t res = tok_lookup(t, cat, ll + rl);
			if (l < 0 || r < 0 || res < 0) {
				free(cat);
				dt_err(err, "%s: tokenizer.ggml.merges[%lld]: '%.*s': %s is not a token", name,
				       (long long)m, (int)DT_MIN(len, 40), s,
				       l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged text");
				goto fail;
			}
			uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
			uint32_t h = (uint32_t)tok_hash_pair(key) & t->merge_mask;
			while (t->merges[h].key != TOK_EMPTY_KEY && t->merges[h].key != key)
				h = (h + 1) & t->merge_mask;
			if (t->merges[h].key == key)
				continue; /* a repeated pair keeps its first (lowest) rank */
			t->merges[h] = (struct tok_merge_slot){key, (int32_t)m, res};
		}
		free(cat);
	}

	// special ids
	int64_t ids[5] = {src->bos, src->eos, src->unk, src->eot, src->eom};
	static const char *const id_keys[5] = {"bos_token_id", "eos_token_id", "unknown_token_id",
						"eot_token_id", "eom_token_id"};
	static const int64_t spm_default[5] = {1, 2, 0, -1, -1};
	for (int k = 0; k < 5; k++) {
		if (ids[k] == -2) { /* key absent: sentencepiece defaults when they exist */
			int64_t d = t->kind == TOK_SPM ? spm_default[k] : -1;
			ids[k] = d < n ? d : -1;
		} else if (ids[k] < 0 || ids[k] >= n) {
			dt_err(err, "%s: tokenizer.ggml.%s: token id out of range (expected 0..%d, found %lld)",
			       name, id_keys[k], n - 1, (long long)ids[k]);
			goto fail;
		}
	}
	t->bos = (int32_t)ids[0];
	t->eos = (int32_t)ids[1];
	t->unk = (int32_t)ids[2];
	t->eot = (int32_t)ids[3];
	t->add_bos = src->add_bos >= 0 ? src->add_bos : (t->kind == TOK_SPM || (t->pre && t->pre->add_bos));
	t->add_space_prefix = src->add_space_prefix >= 0 ? src->add_space_prefix : t->kind == TOK_SPM;

	// end of generation
	t->eog = xcalloc((size_t)n, sizeof(bool));
	for (size_t i = 0; i < DT_ARRAY_LEN(tok_eog_texts); i++) {
		int32_t id = tok_lookup(t, tok_eog_texts[i], strlen(tok_eog_texts[i]));
		if (id >= 0)
			t->eog[id] = true;
	}
	for (int k = 1; k < 5; k++) {
		if (k != 2 && ids[k] >= 0)
			t->eog[ids[k]] = true;
	}

	// special tokens, longest first
	t->special = xmallocarray((size_t)n, sizeof(int32_t));
	for (int32_t i = 0; i < n; i++) {
		if (tok_is_text_special(t->type[i]) && t->text_off[i + 1] > t->text_off[i])
			t->special[t->n_special++] = i;
	}
	qsort_r(t->special, (size_t)t->n_special, sizeof(int32_t), tok_special_cmp_len, t);

	// pieces
	size_t plen = 0, pcap = 0;
	t->piece_off = xmallocarray((size_t)n + 1, sizeof(uint32_t));
	for (int32_t i = 0; i < n; i++) {
		t->piece_off[i] = (uint32_t)plen;
		tok_build_piece(t, i, &t->piece, &plen, &pcap);
	}
	t->piece_off[n] = (uint32_t)plen;

	tok_detect_chat(t, src->chat_template);
	return t;
fail:
	tokenizer_free(t);
	return NULL;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	free(t->text);
	free(t->text_off);
	free(t->piece);
	free(t->piece_off);
	free(t->type);
	free(t->score);
	free(t->eog);
	free(t->map);
	free(t->merges);
	free(t->special);
	free(t->chat_system);
	free(t);
}

// ---- GGUF binding

/* optional token id key: -2 when absent */
static int tok_gguf_id(const struct gguf_ctx *g, const char *key, int64_t *out, char *err)
{
	*out = -2;
	if (gguf_find_key(g, key) < 0)
		return 0;
	return gguf_get_i64(g, key, out, err);
}

static int tok_gguf_bool(const struct gguf_ctx *g, const char *key, int *out, char *err)
{
	*out = -1;
	if (gguf_find_key(g, key) < 0)
		return 0;
	bool b;
	if (gguf_get_bool(g, key, &b, err) < 0)
		return -1;
	*out = b;
	return 0;
}

struct tokenizer *tokenizer_from_gguf(const struct gguf_ctx *g, char *err)
{
	const char *path = gguf_path(g);
	struct tok_src src = {.name = path};
	struct tokenizer *t = NULL;
	const char **tokens = NULL, **merges = NULL;
	size_t *token_len = NULL, *merge_len = NULL;
	int32_t *types = NULL;
	float *scores = NULL;
	enum gguf_type elt;
	int64_t n;
	const void *data;

	if (gguf_get_str(g, "tokenizer.ggml.model", &src.model, err) < 0)
		return NULL;
	if (gguf_find_key(g, "tokenizer.ggml.pre") >= 0 &&
	    gguf_get_str(g, "tokenizer.ggml.pre", &src.pre, err) < 0)
		return NULL;
	if (gguf_get_arr(g, "tokenizer.ggml.tokens", &elt, &n, &data, err) < 0)
		return NULL;
	if (elt != GGUF_TYPE_STRING) {
		dt_err(err, "%s: tokenizer.ggml.tokens: expected an array of strings, found %s elements",
		       path, gguf_type_name(elt));
		return NULL;
	}
	if (n <= 0 || n >= INT32_MAX / 2) {
		dt_err(err, "%s: tokenizer.ggml.tokens: bad token count (expected 1..%d, found %lld)", path,
		       INT32_MAX / 2 - 1, (long long)n);
		return NULL;
	}
	src.n_vocab = n;
	tokens = xmallocarray((size_t)n, sizeof(*tokens));
	token_len = xmallocarray((size_t)n, sizeof(*token_len));
	for (int64_t i = 0; i < n; i++) {
		tokens[i] = gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &token_len[i]);
		if (!tokens[i]) {
			dt_err(err, "%s: tokenizer.ggml.tokens[%lld]: cannot read the string", path, (long long)i);
			goto out;
		}
	}
	src.tokens = tokens;
	src.token_len = token_len;

	if (gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
		int64_t nt;
		if (gguf_get_arr(g, "tokenizer.ggml.token_type", &elt, &nt, &data, err) < 0)
			goto out;
		if (elt != GGUF_TYPE_INT32 || nt != n) {
			dt_err(err, "%s: tokenizer.ggml.token_type: expected %lld int32 values (one per token), "
				    "found %lld %s values", path, (long long)n, (long long)nt, gguf_type_name(elt));
			goto out;
		}
		types = xmallocarray((size_t)n, sizeof(int32_t));
		memcpy(types, data, (size_t)n * sizeof(int32_t));
		src.types = types;
	}
	if (gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
		int64_t ns;
		if (gguf_get_arr(g, "tokenizer.ggml.scores", &elt, &ns, &data, err) < 0)
			goto out;
		if (elt != GGUF_TYPE_FLOAT32 || ns != n) {
			dt_err(err, "%s: tokenizer.ggml.scores: expected %lld float32 values (one per token), "
				    "found %lld %s values", path, (long long)n, (long long)ns, gguf_type_name(elt));
			goto out;
		}
		scores = xmallocarray((size_t)n, sizeof(float));
		memcpy(scores, data, (size_t)n * sizeof(float));
		src.scores = scores;
	}
	if (gguf_find_key(g, "tokenizer.ggml.merges") >= 0) {
		int64_t nm;
		if (gguf_get_arr(g, "tokenizer.ggml.merges", &elt, &nm, &data, err) < 0)
			goto out;
		if (elt != GGUF_TYPE_STRING) {
			dt_err(err, "%s: tokenizer.ggml.merges: expected an array of strings, found %s elements",
			       path, gguf_type_name(elt));
			goto out;
		}
		merges = xmallocarray((size_t)nm + 1, sizeof(*merges));
		merge_len = xmallocarray((size_t)nm + 1, sizeof(*merge_len));
		for (int64_t i = 0; i < nm; i++) {
			merges[i] = gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &merge_len[i]);
			if (!merges[i]) {
				dt_err(err, "%s: tokenizer.ggml.merges[%lld]: cannot read the string", path,
				       (long long)i);
				goto out;
			}
		}
		src.merges = merges;
		src.merge_len = merge_len;
		src.n_merges = nm;
	}
	if (tok_gguf_id(g, "tokenizer.ggml.bos_token_id", &src.bos, err) < 0 ||
	    tok_gguf_id(g, "tokenizer.ggml.eos_token_id", &src.eos, err) < 0 ||
	    tok_gguf_id(g, "tokenizer.ggml.unknown_token_id", &src.unk, err) < 0 ||
	    tok_gguf_id(g, "tokenizer.ggml.eot_token_id", &src.eot, err) < 0 ||
	    tok_gguf_id(g, "tokenizer.ggml.eom_token_id", &src.eom, err) < 0 ||
	    tok_gguf_bool(g, "tokenizer.ggml.add_bos_token", &src.add_bos, err) < 0 ||
	    tok_gguf_bool(g, "tokenizer.ggml.add_space_prefix", &src.add_space_prefix, err) < 0)
		goto out;
	if (gguf_find_key(g, "tokenizer.chat_template") >= 0 &&
	    gguf_get_str(g, "tokenizer.chat_template", &src.chat_template, err) < 0)
		goto out;

	t = tok_new(&src, err);
out:
	free(tokens);
	free(token_len);
	free(merges);
	free(merge_len);
	free(types);
	free(scores);
	return t;
}

// ---- accessors

int32_t tokenizer_n_vocab(const struct tokenizer *t)
{
	return t->n_vocab;
}

int32_t tokenizer_bos(const struct tokenizer *t)
{
	return t->bos;
}

int32_t tokenizer_eos(const struct tokenizer *t)
{
	return t->eos;
}

bool tokenizer_is_eog(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab && t->eog[id];
}

bool tokenizer_add_bos(const struct tokenizer *t)
{
	return t->add_bos && t->bos >= 0;
}

int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len)
{
	return len ? tok_lookup(t, text, len) : -1;
}

int tokenizer_token_type(const struct tokenizer *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab ? t->type[id] : 0;
}

const char *tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || id >= t->n_vocab) {
		*len = 0;
		return NULL;
	}
	*len = t->piece_off[id + 1] - t->piece_off[id] - 1;
	return t->piece + t->piece_off[id];
}

// ---- encoding: scratch state

/* A text fragment decoded into code points: cp[i] starts at byte bo[i]. */
struct tok_work {
	uint32_t *cp;   /* (n) code points (U+FFFD for an invalid byte) */
	uint16_t *fl;   /* (n) unicode_flags of cp */
	uint32_t *bo;   /* (n + 1) byte offsets */
	size_t n, cap;
	struct tok_uvec ends[2]; /* chunk ends (code point indices), ping-pong between passes */
	/* merge state */
	struct tok_sym *sym;
	size_t sym_cap;
	struct tok_cand *heap;
	size_t heap_n, heap_cap;
	char *buf; /* escaped / byte-encoded text */
	size_t buf_cap;
};

struct tok_sym {
	int32_t id;       /* BPE: token id (-1: byte without token) */
	uint32_t off, n;  /* bytes in the word / escaped text; n == 0: merged away */
	int32_t prev, next;
};

struct tok_cand {
	double key;       /* BPE: merge rank; SPM: -score (smaller pops first) */
	int32_t left, right;
	int32_t id;       /* BPE: merged token */
	uint32_t size;    /* SPM: bytes of the merged text */
};

static void work_free(struct tok_work *w)
{
	free(w->cp);
	free(w->fl);
	free(w->bo);
	free(w->ends[0].v);
	free(w->ends[1].v);
	free(w->sym);
	free(w->heap);
	free(w->buf);
}


static void work_reserve(struct tok_work *w, size_t n_sym, size_t n_buf)
{
	if (n_sym > w->sym_cap) {
		w->sym_cap = n_sym + n_sym / 2 + 16;
		w->sym = xrealloc(w->sym, w->sym_cap * sizeof(*w->sym));
	}
	if (n_buf > w->buf_cap) {
		w->buf_cap = n_buf + n_buf / 2 + 16;
		w->buf = xrealloc(w->buf, w->buf_cap);
	}
}

// ---- encoding: merge candidates (binary min-heap on (key, left))

static bool cand_less(const struct tok_cand *a, const struct tok_cand *b)
{
	return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(struct tok_work *w, struct tok_cand c)
{
	if (w->heap_n == w->heap_cap) {
		w->heap_cap = w->heap_cap ? 2 * w->heap_cap : 64;
		w->heap = xrealloc(w->heap, w->heap_cap * sizeof(*w->heap));
	}
	size_t i = w->heap_n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!cand_less(&c, &w->heap[parent]))
			break;
		w->heap[i] = w->heap[parent];
		i = parent;
	}
	w->heap[i] = c;
}

static struct tok_cand heap_pop(struct tok_work *w)
{
	struct tok_cand top = w->heap[0];
	struct tok_cand last = w->heap[--w->heap_n];
	size_t i = 0, n = w->heap_n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && cand_less(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!cand_less(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (n > 0)
		w->heap[i] = last;
	return top;
}

/* Pops candidates until one is still current (both symbols alive and of the
 * sizes they had when it was pushed; a symbol only grows by absorbing its
 * right neighbour, so this also proves adjacency) and merges it. Returns the
 * merged left index, or -1 when the heap is empty. */
static int32_t merge_next(struct tok_work *w)
{
	while (w->heap_n > 0) {
		struct tok_cand c = heap_pop(w);
		struct tok_sym *l = &w->sym[c.left], *r = &w->sym[c.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != c.size)
			continue;
		l->id = c.id;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = c.left;
		return c.left;
	}
	return -1;
}

// ---- encoding: byte-level BPE

static void bpe_try(const struct tokenizer *t, struct tok_work *w, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return;
	const struct tok_sym *l = &w->sym[left], *r = &w->sym[right];
	if (l->id < 0 || r->id < 0)
		return;
	const struct tok_merge_slot *m = tok_merge_find(t, l->id, r->id);
	if (m)
		heap_push(w, (struct tok_cand){(double)m->rank, left, right, m->id, l->n + r->n});
}

/* one pre-token s[0..len) -> ids */
static void bpe_word(const struct tokenizer *t, struct tok_work *w, const char *s, size_t len,
		     struct tok_ivec *out)
{
	const unsigned char *u = (const unsigned char *)s;
	if (t->pre->ignore_merges) {
		work_reserve(w, 0, 2 * len);
		size_t k = 0;
		for (size_t i = 0; i < len; i++)
			k += unicode_encode_utf8(unicode_byte_to_cpt(u[i]), w->buf + k);
		int32_t id = tok_lookup(t, w->buf, k);
		if (id >= 0 && !tok_is_text_special(t->type[id])) {
			ivec_push(out, id);
			return;
		}
	}
	work_reserve(w, len, 0);
	for (size_t i = 0; i < len; i++)
		w->sym[i] = (struct tok_sym){t->byte_id[u[i]], (uint32_t)i, 1, (int32_t)i - 1, (int32_t)i + 1};
	w->sym[len - 1].next = -1;
	w->heap_n = 0;
	for (size_t i = 1; i < len; i++)
		bpe_try(t, w, (int32_t)i - 1, (int32_t)i);
	int32_t m;
	while ((m = merge_next(w)) >= 0) {
		bpe_try(t, w, w->sym[m].prev, m);
		bpe_try(t, w, m, w->sym[m].next);
	}
	for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
		if (w->sym[i].id >= 0) /* a byte the vocabulary cannot spell is dropped (as llama.cpp) */
			ivec_push(out, w->sym[i].id);
	}
}

// ---- encoding: pre-tokenizer passes

static void work_decode(struct tok_work *w, const char *s, size_t len)
{
	if (len + 1 > w->cap) {
		w->cap = len + 1 + len / 2;
		w->cp = xrealloc(w->cp, w->cap * sizeof(*w->cp));
		w->fl = xrealloc(w->fl, w->cap * sizeof(*w->fl));
		w->bo = xrealloc(w->bo, w->cap * sizeof(*w->bo));
	}
	size_t i = 0, n = 0;
	while (i < len) {
		uint32_t cp;
		bool valid;
		size_t k = unicode_decode_utf8(s + i, len - i, &cp, &valid);
		w->cp[n] = cp;
		w->fl[n] = unicode_flags(cp);
		w->bo[n] = (uint32_t)i;
		n++;
		i += k;
	}
	w->bo[n] = (uint32_t)len;
	w->n = n;
}

/* one chunk [ini, end) of code points being split; sub-chunk ends go to out */
struct tok_split {
	const uint32_t *cp;
	const uint16_t *fl;
	uint32_t end, prev;
	struct tok_uvec *out;
};

#define F_WS UNICODE_WHITESPACE
#define F_L UNICODE_LETTER
#define F_N UNICODE_NUMBER

static inline uint16_t sp_fl(const struct tok_split *s, uint32_t pos)
{
	return pos < s->end ? s->fl[pos] : 0;
}

static inline uint32_t sp_cp(const struct tok_split *s, uint32_t pos)
{
	return pos < s->end ? s->cp[pos] : UINT32_MAX;
}

static inline void sp_emit(struct tok_split *s, uint32_t end)
{
	if (end > s->prev) {
		uvec_push(s->out, end);
		s->prev = end;
	}
}

static uint32_t ascii_lower(uint32_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at pos: its length (0 if none) */
static uint32_t sp_contraction(const struct tok_split *s, uint32_t pos, bool any_case)
{
	if (s->cp[pos] != '\'' || pos + 1 >= s->end)
		return 0;
	uint32_t c1 = s->cp[pos + 1];
	if (any_case)
		c1 = ascii_lower(c1);
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if (pos + 2 >= s->end)
		return 0;
	uint32_t c2 = s->cp[pos + 2];
	if (any_case)
		c2 = ascii_lower(c2);
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void pass_gpt2(struct tok_split *s, uint32_t ini)
{
	for (uint32_t pos = ini; pos < s->end;) {
		uint32_t c = s->cp[pos], k;
		if ((k = sp_contraction(s, pos, false))) {
			pos += k;
			sp_emit(s, pos);
			continue;
		}
		uint16_t f2 = c == ' ' ? sp_fl(s, pos + 1) : s->fl[pos];
		if (f2 & (F_L | F_N)) { /* ' ?\p{L}+' or ' ?\p{N}+' */
			uint16_t cls = f2 & F_L ? F_L : F_N;
			pos += c == ' ';
			while (sp_fl(s, pos) & cls)
				pos++;
			sp_emit(s, pos);
			continue;
		}
		if (!(f2 & (F_WS | F_L | F_N)) && f2) { /* ' ?[^\s\p{L}\p{N}]+' */
			pos += c == ' ';
			for (uint16_t f; (f = sp_fl(s, pos)) && !(f & (F_WS | F_L | F_N));)
				pos++;
			sp_emit(s, pos);
			continue;
		}
		uint32_t nws = 0;
		while (sp_fl(s, pos + nws) & F_WS)
			nws++;
		if (nws > 1 && pos + nws < s->end) { /* '\s+(?!\S)': leave one for the next word */
			pos += nws - 1;
			sp_emit(s, pos);
			continue;
		}
		pos += nws ? nws : 1;
		sp_emit(s, pos);
	}
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void pass_llama3(struct tok_split *s, uint32_t ini, uint32_t max_digits)
{
	for (uint32_t pos = ini; pos < s->end;) {
		uint32_t c = s->cp[pos], k;
		uint16_t f = s->fl[pos];
		if ((k = sp_contraction(s, pos, true))) {
			pos += k;
			sp_emit(s, pos);
			continue;
		}
		if (!(c == '\r' || c == '\n' || (f & F_N)) && ((f & F_L) || (sp_fl(s, pos + 1) & F_L))) {
			pos++;
			while (sp_fl(s, pos) & F_L)
				pos++;
			sp_emit(s, pos);
			continue;
		}
		if (f & F_N) {
			uint32_t start = pos;
			while (sp_fl(s, pos) & F_N) {
				if (++pos - start >= max_digits) {
					sp_emit(s, pos);
					start = pos;
				}
			}
			sp_emit(s, pos);
			continue;
		}
		uint16_t f2 = c == ' ' ? sp_fl(s, pos + 1) : f;
		if (!(f2 & (F_WS | F_L | F_N)) && f) {
			pos += c == ' ';
			for (uint16_t g; (g = sp_fl(s, pos)) && !(g & (F_WS | F_L | F_N));)
				pos++;
			for (uint32_t c2; (c2 = sp_cp(s, pos)) == '\r' || c2 == '\n';)
				pos++;
			sp_emit(s, pos);
			continue;
		}
		uint32_t nws = 0, last_rn = 0;
		while (sp_fl(s, pos + nws) & F_WS) {
			uint32_t c2 = s->cp[pos + nws];
			if (c2 == '\r' || c2 == '\n')
				last_rn = pos + nws + 1;
			nws++;
		}
		if (last_rn > 0) /* \s*[\r\n]+ */
			pos = last_rn;
		else if (nws > 1 && pos + nws < s->end) /* \s+(?!\S) */
			pos += nws - 1;
		else
			pos += nws ? nws : 1;
		sp_emit(s, pos);
	}
}

static bool cls_number(uint32_t cp, uint16_t fl)
{
	(void)cp;
	return fl & F_N;
}

/* [\p{P}\$\+<=>\^~\|] */
static bool cls_punct_default(uint32_t cp, uint16_t fl)
{
	return (fl & UNICODE_PUNCTUATION) ||
	       (cp < 128 && cp && strchr("$+<=>^~|", (int)cp) != NULL);
}

/* X+ (runs) or X (each one alone): matches and the gaps between them */
static void pass_class(struct tok_split *s, uint32_t ini, bool (*cls)(uint32_t, uint16_t), bool single)
{
	bool prev_m = false;
	for (uint32_t pos = ini; pos < s->end; pos++) {
		bool m = cls(s->cp[pos], s->fl[pos]);
		if (single && m) {
			sp_emit(s, pos);
			sp_emit(s, pos + 1);
		} else if (!single && pos > ini && m != prev_m) {
			sp_emit(s, pos);
		}
		prev_m = m;
	}
	sp_emit(s, s->end);
}

/* [0-9][0-9][0-9] */
static void pass_digit3(struct tok_split *s, uint32_t ini)
{
	for (uint32_t pos = ini; pos + 3 <= s->end;) {
		const uint32_t *c = s->cp + pos;
		if (c[0] - '0' < 10 && c[1] - '0' < 10 && c[2] - '0' < 10) {
			sp_emit(s, pos);
			sp_emit(s, pos + 3);
			pos += 3;
		} else {
			pos++;
		}
	}
	sp_emit(s, s->end);
}

/* Runs the passes of t's pre-tokenizer over the decoded fragment in w;
 * returns the chunk ends (code point indices). */
static const struct tok_uvec *pretokenize(const struct tokenizer *t, struct tok_work *w)
{
	int cur = 0;
	w->ends[0].n = 0;
	uvec_push(&w->ends[0], (uint32_t)w->n);
	for (int p = 0; p < TOK_MAX_PASSES && t->pre->passes[p] != PASS_NONE; p++) {
		struct tok_uvec *in = &w->ends[cur], *out = &w->ends[1 - cur];
		out->n = 0;
		uint32_t start = 0;
		for (size_t i = 0; i < in->n; i++) {
			struct tok_split s = {w->cp, w->fl, in->v[i], start, out};
			switch (t->pre->passes[p]) {
			case PASS_GPT2: pass_gpt2(&s, start); break;
			case PASS_LLAMA3: pass_llama3(&s, start, 3); break;
			case PASS_QWEN2: pass_llama3(&s, start, 1); break;
			case PASS_EACH_NUMBER: pass_class(&s, start, cls_number, true); break;
			case PASS_NUMBER_RUNS: pass_class(&s, start, cls_number, false); break;
			case PASS_PUNCT_RUNS: pass_class(&s, start, cls_punct_default, false); break;
			case PASS_ASCII_DIGIT3: pass_digit3(&s, start); break;
			case PASS_NONE: break;
			}
			DT_ASSERT(s.prev == in->v[i]);
			start = in->v[i];
		}
		cur = 1 - cur;
	}
	return &w->ends[cur];
}

#undef F_WS
#undef F_L
#undef F_N

// ---- encoding: sentencepiece

static bool spm_mergeable(int type)
{
	return type == TOKENIZER_TYPE_NORMAL || type == TOKENIZER_TYPE_USER_DEFINED ||
	       type == TOKENIZER_TYPE_UNDEFINED;
}

static int32_t spm_lookup(const struct tokenizer *t, const char *s, size_t n)
{
	int32_t id = tok_lookup(t, s, n);
	return id >= 0 && spm_mergeable(t->type[id]) ? id : -1;
}

static void spm_try(const struct tokenizer *t, struct tok_work *w, int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return;
	const struct tok_sym *l = &w->sym[left], *r = &w->sym[right];
	int32_t id = spm_lookup(t, w->buf + l->off, l->n + r->n);
	if (id >= 0)
		heap_push(w, (struct tok_cand){-(double)t->score[id], left, right, id, l->n + r->n});
}

static void spm_fragment(const struct tokenizer *t, struct tok_work *w, const char *s, size_t len,
			 bool space_prefix, struct tok_ivec *out)
{
	static const char lbl[] = "\xE2\x96\x81"; /* U+2581, sentencepiece's space */
	work_reserve(w, 0, 3 * (len + 1));
	size_t k = 0;
	if (space_prefix) {
		memcpy(w->buf, lbl, 3);
		k = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ') {
			memcpy(w->buf + k, lbl, 3);
			k += 3;
		} else {
			w->buf[k++] = s[i];
		}
	}
	if (k == 0)
		return;
	/* symbols: UTF-8 characters by their lead byte (as llama.cpp, unvalidated) */
	static const uint8_t lead_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	work_reserve(w, k, 0);
	int32_t n = 0;
	for (size_t off = 0; off < k; n++) {
		size_t cl = DT_MIN((size_t)lead_len[(unsigned char)w->buf[off] >> 4], k - off);
		w->sym[n] = (struct tok_sym){-1, (uint32_t)off, (uint32_t)cl, n - 1, n + 1};
		off += cl;
	}
	w->sym[n - 1].next = -1;
	w->heap_n = 0;
	for (int32_t i = 1; i < n; i++)
		spm_try(t, w, i - 1, i);
	int32_t m;
	while ((m = merge_next(w)) >= 0) {
		spm_try(t, w, w->sym[m].prev, m);
		spm_try(t, w, m, w->sym[m].next);
	}
	for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
		const struct tok_sym *sy = &w->sym[i];
		int32_t id = sy->id >= 0 ? sy->id : spm_lookup(t, w->buf + sy->off, sy->n);
		if (id >= 0) {
			ivec_push(out, id);
			continue;
		}
		for (uint32_t b = 0; b < sy->n; b++) { /* byte fallback */
			int32_t bid = t->byte_id[(unsigned char)w->buf[sy->off + b]];
			if (bid >= 0)
				ivec_push(out, bid);
			else if (t->unk >= 0)
				ivec_push(out, t->unk);
		}
	}
}

// ---- encoding: special tokens and the driver

struct tok_frag {
	int32_t id;       /* a special token, or -1 for raw text */
	uint32_t off, len;
};

struct tok_fvec {
	struct tok_frag *v;
	size_t n, cap;
};

static void fvec_push(struct tok_fvec *a, struct tok_frag f)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = f;
}

/* Cuts special token texts out of text, longest token first (llama.cpp's
 * tokenizer_st_partition): the result in *a. */
static void tok_partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
			  struct tok_fvec *a)
{
	struct tok_fvec b = {0};
	bool present[256] = {false};
	for (size_t i = 0; i < len; i++)
		present[(unsigned char)text[i]] = true;
	a->n = 0;
	fvec_push(a, (struct tok_frag){-1, 0, (uint32_t)len});
	for (int32_t k = 0; k < t->n_special; k++) {
		int32_t id = t->special[k];
		if (!parse_special && t->type[id] != TOKENIZER_TYPE_USER_DEFINED)
			continue;
		size_t sl;
		const char *st = tok_text(t, id, &sl);
		if (!present[(unsigned char)st[0]] || sl > len)
			continue;
		b.n = 0;
		bool found = false;
		for (size_t i = 0; i < a->n; i++) {
			struct tok_frag f = a->v[i];
			if (f.id >= 0 || f.len < sl) {
				fvec_push(&b, f);
				continue;
			}
			size_t pos = f.off, end = (size_t)f.off + f.len;
			const char *hit;
			while (pos < end && (hit = memmem(text + pos, end - pos, st, sl))) {
				size_t m = (size_t)(hit - text);
				if (m > pos)
					fvec_push(&b, (struct tok_frag){-1, (uint32_t)pos, (uint32_t)(m - pos)});
				fvec_push(&b, (struct tok_frag){id, (uint32_t)m, (uint32_t)sl});
				pos = m + sl;
				found = true;
			}
			if (pos < end)
				fvec_push(&b, (struct tok_frag){-1, (uint32_t)pos, (uint32_t)(end - pos)});
		}
		if (found) {
			struct tok_fvec tmp = *a;
			*a = b;
			b = tmp;
		}
	}
	free(b.v);
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
		     bool parse_special, int32_t **ids, int32_t *n, char *err)
{
	*ids = NULL;
	*n = 0;
	if (len >= INT32_MAX / 4)
		return dt_err(err, "tokenizer: text too long (expected < %d bytes, found %zu)", INT32_MAX / 4, len);
	if (add_bos && t->bos < 0)
		return dt_err(err, "tokenizer: a BOS token was requested but the vocabulary has none");

	struct tok_ivec out = {0};
	struct tok_work w = {0};
	struct tok_fvec frags = {0};
	if (add_bos)
		ivec_push(&out, t->bos);
	if (len > 0)
		tok_partition(t, text, len, parse_special, &frags);
	bool prev_special = true;
	for (size_t i = 0; i < frags.n; i++) {
		const struct tok_frag *f = &frags.v[i];
		if (f->id >= 0) {
			ivec_push(&out, f->id);
			prev_special = true;
			continue;
		}
		const char *s = text + f->off;
		if (t->kind == TOK_SPM) {
			spm_fragment(t, &w, s, f->len, t->add_space_prefix && prev_special, &out);
		} else {
			work_decode(&w, s, f->len);
			const struct tok_uvec *ends = pretokenize(t, &w);
			uint32_t start = 0;
			for (size_t c = 0; c < ends->n; c++) {
				uint32_t b0 = w.bo[start], b1 = w.bo[ends->v[c]];
				bpe_word(t, &w, s + b0, b1 - b0, &out);
				start = ends->v[c];
			}
		}
		prev_special = false;
	}
	free(frags.v);
	work_free(&w);
	if (out.n >= (size_t)INT32_MAX) {
		free(out.v);
		return dt_err(err, "tokenizer: too many tokens");
	}
	*ids = out.v ? out.v : xmalloc(sizeof(int32_t));
	*n = (int32_t)out.n;
	return 0;
}

// ---- decoding

char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, int32_t n)
{
	size_t total = 0, len;
	for (int32_t i = 0; i < n; i++) {
		if (tokenizer_piece(t, ids[i], &len))
			total += len;
	}
	char *s = xmalloc(total + 1), *p = s;
	for (int32_t i = 0; i < n; i++) {
		const char *piece = tokenizer_piece(t, ids[i], &len);
		if (piece) {
			memcpy(p, piece, len);
			p += len;
		}
	}
	*p = '\0';
	return s;
}

/* u[0..n) with n shorter than the sequence its lead byte announces: could
 * more bytes still complete it into a valid character? */
static bool utf8_valid_prefix(const unsigned char *u, size_t n)
{
	size_t need = unicode_utf8_seq_len(u[0]);
	if (need <= 1 || n >= need)
		return false;
	for (size_t i = 1; i < n; i++) {
		unsigned char lo = 0x80, hi = 0xBF;
		if (i == 1) {
			if (u[0] == 0xE0)
				lo = 0xA0; /* no overlong forms */
			else if (u[0] == 0xED)
				hi = 0x9F; /* no surrogates */
			else if (u[0] == 0xF0)
				lo = 0x90;
			else if (u[0] == 0xF4)
				hi = 0x8F; /* <= U+10FFFF */
		}
		if (u[i] < lo || u[i] > hi)
			return false;
	}
	return true;
}

static const char tok_fffd[3] = {'\xEF', '\xBF', '\xBD'};

static size_t stream_put(char *out, size_t cap, size_t o, const char *s, size_t n)
{
	if (o + n > cap)
		return o; /* no room: the character is dropped (see tokenizer.h) */
	memcpy(out + o, s, n);
	return o + n;
}

size_t tokenizer_decode_stream(const struct tokenizer *t, struct tokenizer_stream *s, int32_t id,
			       char *out, size_t cap)
{
	size_t plen = 0;
	const char *piece = tokenizer_piece(t, id, &plen);
	if (!piece)
		plen = 0;
	DT_ASSERT(s->n_pending >= 0 && s->n_pending < 4);
	size_t total = (size_t)s->n_pending + plen;
	char small[256];
	char *buf = total <= sizeof(small) ? small : xmalloc(total);
	memcpy(buf, s->pending, (size_t)s->n_pending);
	if (plen)
		memcpy(buf + s->n_pending, piece, plen);
	s->n_pending = 0;

	size_t o = 0;
	for (size_t i = 0; i < total;) {
		uint32_t cp;
		bool valid;
		size_t k = unicode_decode_utf8(buf + i, total - i, &cp, &valid);
		if (valid) {
			o = stream_put(out, cap, o, buf + i, k);
			i += k;
		} else if (utf8_valid_prefix((const unsigned char *)buf + i, total - i)) {
			memcpy(s->pending, buf + i, total - i); /* wait for the rest */
			s->n_pending = (int)(total - i);
			break;
		} else {
			o = stream_put(out, cap, o, tok_fffd, 3);
			i++;
		}
	}
	if (buf != small)
		free(buf);
	return o;
}

size_t tokenizer_stream_flush(struct tokenizer_stream *s, char *out, size_t cap)
{
	size_t o = 0;
	if (s->n_pending > 0)
		o = stream_put(out, cap, 0, tok_fffd, 3);
	s->n_pending = 0;
	return o;
}

// ---- chat templates

static void tok_detect_chat(struct tokenizer *t, const char *tmpl)
{
	static const char sys_open[] = "<|im_start|>system";
	if (!tmpl) {
		/* no template: ChatML when the vocabulary speaks it (llama.cpp's default) */
		if (tok_lookup(t, "<|im_start|>", 12) >= 0 && tok_lookup(t, "<|im_end|>", 10) >= 0)
			t->chat = CHAT_CHATML;
		return;
	}
	if (strstr(tmpl, "<|im_start|>")) {
		t->chat = CHAT_CHATML;
		/* a literal default system message: <|im_start|>system\n TEXT <|im_end|>
		 * where TEXT holds no template syntax (quotes, braces, +) */
		for (const char *p = strstr(tmpl, sys_open); p; p = strstr(p + 1, sys_open)) {
			const char *q = p + strlen(sys_open);
			if (*q == '\n')
				q++;
			else if (q[0] == '\\' && q[1] == 'n')
				q += 2;
			else
				continue;
			const char *e = strstr(q, "<|im_end|>");
			if (!e || e == q || strcspn(q, "'\"{}+") < (size_t)(e - q))
				continue;
			char *m = xmalloc((size_t)(e - q) + 1), *o = m;
			for (const char *c = q; c < e; c++) {
				if (c[0] == '\\' && c[1] == 'n' && c + 1 < e) {
					*o++ = '\n';
					c++;
				} else {
					*o++ = *c;
				}
			}
			*o = '\0';
			t->chat_system = m;
			break;
		}
	} else if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>")) {
		t->chat = CHAT_LLAMA3;
	} else {
		t->chat = CHAT_NONE;
		size_t k = 0;
		for (const char *c = tmpl; *c && k + 4 < sizeof(t->chat_head); c++)
			t->chat_head[k++] = *c == '\n' ? ' ' : *c;
		if (strlen(tmpl) > k)
			memcpy(t->chat_head + k, "...", 4);
	}
}

struct tok_str {
	char *s;
	size_t n, cap;
};

static void str_add(struct tok_str *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = 2 * (b->n + n + 1) + 64;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

static void str_cat(struct tok_str *b, const char *s)
{
	str_add(b, s, strlen(s));
}

static bool tok_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char *tokenizer_chat_format(const struct tokenizer *t, const struct tokenizer_chat_msg *msgs,
			    int n, bool add_assistant, char *err)
{
	if (t->chat == CHAT_NONE) {
		if (t->chat_head[0])
			dt_err(err, "tokenizer: chat template not supported (expected the ChatML <|im_start|> "
				    "or the Llama 3 <|start_header_id|> form, found \"%s\")", t->chat_head);
		else
			dt_err(err, "tokenizer: no chat template (tokenizer.chat_template is missing and the "
				    "vocabulary has no <|im_start|> / <|im_end|> tokens)");
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		if (!msgs[i].role || !msgs[i].content || !*msgs[i].role) {
			dt_err(err, "tokenizer: chat message %d: missing role or content", i);
			return NULL;
		}
	}
	struct tok_str b = {0};
	str_add(&b, "", 0);
	if (t->chat == CHAT_CHATML) {
		if (n > 0 && t->chat_system && strcmp(msgs[0].role, "system") != 0) {
			str_cat(&b, "<|im_start|>system\n");
			str_cat(&b, t->chat_system);
			str_cat(&b, "<|im_end|>\n");
		}
		for (int i = 0; i < n; i++) {
			str_cat(&b, "<|im_start|>");
			str_cat(&b, msgs[i].role);
			str_cat(&b, "\n");
			str_cat(&b, msgs[i].content);
			str_cat(&b, "<|im_end|>\n");
		}
		if (add_assistant)
			str_cat(&b, "<|im_start|>assistant\n");
	} else {
		for (int i = 0; i < n; i++) { /* content | trim */
			const char *c = msgs[i].content, *e = c + strlen(c);
			while (c < e && tok_isspace(*c))
				c++;
			while (e > c && tok_isspace(e[-1]))
				e--;
			str_cat(&b, "<|start_header_id|>");
			str_cat(&b, msgs[i].role);
			str_cat(&b, "<|end_header_id|>\n\n");
			str_add(&b, c, (size_t)(e - c));
			str_cat(&b, "<|eot_id|>");
		}
		if (add_assistant)
			str_cat(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
	}
	return b.s;
}
