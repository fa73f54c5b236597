/*
 * tokenizer.h — text <-> token ids from GGUF tokenizer metadata.
 *
 * Two styles, chosen by tokenizer.ggml.model:
 *   "gpt2"   byte-level BPE (SmolLM2, Qwen2, Llama 3): a hand-written
 *            pre-tokenizer per tokenizer.ggml.pre, the GPT-2 byte<->unicode
 *            mapping, merges ranked by their order in tokenizer.ggml.merges.
 *   "llama"  sentencepiece BPE: spaces -> U+2581, optional space prefix,
 *            bigram merges by highest score, byte fallback to <0xXX>.
 * Control and user-defined tokens are matched in the text first (longest
 * match) when parse_special is set; BPE never produces them otherwise.
 */
#ifndef DT_TOKENIZER_H
#define DT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct gguf_ctx;
struct tokenizer;

/* token types (tokenizer.ggml.token_type) */
enum tokenizer_token_type {
	TOKENIZER_TYPE_UNDEFINED = 0,
	TOKENIZER_TYPE_NORMAL = 1,
	TOKENIZER_TYPE_UNKNOWN = 2,
	TOKENIZER_TYPE_CONTROL = 3,
	TOKENIZER_TYPE_USER_DEFINED = 4,
	TOKENIZER_TYPE_UNUSED = 5,
	TOKENIZER_TYPE_BYTE = 6,
};

/* Builds a tokenizer from a GGUF file's metadata; NULL + "path: ..." in err
 * (DT_ERR_LEN bytes) when the metadata is missing, inconsistent or of an
 * unsupported model / pre-tokenizer type. */
struct tokenizer *tokenizer_from_gguf(const struct gguf_ctx *g, char *err);
void tokenizer_free(struct tokenizer *t);

int32_t tokenizer_n_vocab(const struct tokenizer *t);
int32_t tokenizer_bos(const struct tokenizer *t); /* -1 if none */
int32_t tokenizer_eos(const struct tokenizer *t); /* -1 if none */
/* end of generation: eos, eot, <|im_end|>, <|endoftext|>, <|eot_id|>, ... */
bool tokenizer_is_eog(const struct tokenizer *t, int32_t id);
bool tokenizer_add_bos(const struct tokenizer *t); /* tokenizer.ggml.add_bos_token */
/* token id of an exact token text, or -1 */
int32_t tokenizer_find(const struct tokenizer *t, const char *text, size_t len);
/* tokenizer.ggml.token_type of id (TOKENIZER_TYPE_*), 0 when out of range */
int tokenizer_token_type(const struct tokenizer *t, int32_t id);

/* text -> ids: *ids is malloc'd (free() it), *n its length. parse_special:
 * recognise control / user-defined token strings such as <|im_start|> in the
 * text. 0, or -1 + err. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
		     bool parse_special, int32_t **ids, int32_t *n, char *err);

/* The raw bytes a token stands for (byte-level mapping undone, U+2581 ->
 * space, <0xAB> byte tokens -> the byte); control tokens render as their
 * text. Not NUL-terminated in general; NULL (len 0) for an id out of range. */
const char *tokenizer_piece(const struct tokenizer *t, int32_t id, size_t *len);

/* Streaming decode that never emits a partial UTF-8 character: feed ids one
 * at a time. Zero-initialise the state. Returns the bytes written to out
 * (complete characters only; a byte that cannot be part of a valid character
 * becomes U+FFFD, so for valid text the stream equals tokenizer_decode).
 * cap >= 3 * (piece length + 3) is always enough; characters that do not fit
 * are dropped. An id out of range adds nothing. */
struct tokenizer_stream {
	char pending[8];
	int n_pending;
};
size_t tokenizer_decode_stream(const struct tokenizer *t, struct tokenizer_stream *s, int32_t id,
			       char *out, size_t cap);
/* Leftover bytes of an unfinished character, as U+FFFD; resets the state. */
size_t tokenizer_stream_flush(struct tokenizer_stream *s, char *out, size_t cap);

/* Whole-sequence decode: malloc'd, NUL-terminated (the raw bytes; ids out of
 * range are skipped). */
char *tokenizer_decode(const struct tokenizer *t, const int32_t *ids, int32_t n);

/* Chat template (from tokenizer.chat_template): ChatML (SmolLM2, Qwen2; the
 * default system message of SmolLM2 when the first message is not a system
 * message) and the Llama 3 header form. add_assistant appends the assistant
 * turn opener. malloc'd string, or NULL + err naming the unsupported form. */
struct tokenizer_chat_msg {
	const char *role, *content;
};
char *tokenizer_chat_format(const struct tokenizer *t, const struct tokenizer_chat_msg *msgs,
			    int n, bool add_assistant, char *err);

#endif
