/*
 * session.h — a whole token tree as a versioned JSON file, and as DOT.
 *
 * A session file holds what is needed to rebuild the tree and continue:
 *
 *   { "format": "deftree-session", "version": 1,
 *     "model": "...", "algo": "deft-flatten", "step": 12, "n_alt": 4,
 *     "sampler": { "temp": .., "top_k": .., "top_p": .., "min_p": ..,
 *                  "repeat_penalty": .., "repeat_last_n": .., "seed": "123" },
 *     "root": 0,
 *     "nodes": [ { "id": 0, "parent": -1, "status": "live", "pos0": 0,
 *                  "stream": 3,                     (optional: the branch's RNG stream)
 *                  "tokens": [..], "logprobs": [..], "steps": [..],
 *                  "alts": [[id, logprob, id, logprob, ..], ..]   (n_alt pairs per token)
 *                  -- export only, ignored on load: "text", "pieces", "probs" -- }, .. ],
 *     -- export only: "metrics": { "summary": {..}, "steps": [..], "branches": [..] } -- }
 *
 * Nodes are listed parents first.  K/V is not saved: a loaded tree has its
 * slots reserved in the pool but their contents are stale; the engine
 * recomputes them (engine_load).  Pruned nodes are not saved.
 *
 * Loading treats the file as hostile: types and ranges of every field, one
 * root, parents that exist and come first, no cycles, positions that agree
 * with the parents' lengths, token ids below n_vocab, finite log-probs <= 0,
 * equal lengths of the per-token arrays, bounded sizes.  Errors read
 * "path: node 7: field \"tokens\" (expected ..., found ...)".
 */
#ifndef DT_SESSION_H
#define DT_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sampler.h"

struct tree;
struct kvpool;
struct metrics;
struct tokenizer;

#define SESSION_FORMAT "deftree-session"
#define SESSION_VERSION 1
#define SESSION_MAX_FILE_BYTES (1u << 30) /* larger files are refused */
#define SESSION_MAX_NODES (1 << 20)
#define SESSION_MAX_TOKENS (1 << 26)      /* tokens in the whole tree */

/* What a session carries besides the tree. */
struct session_meta {
	char model[1024];          /* model path ("" = unknown) */
	char algo[32];             /* attention algorithm name ("" = unknown) */
	int64_t step;              /* decode steps done so far */
	struct sampler_params sampler;
	/* Branch streams by node id (n_stream entries, -1 = none); NULL when
	 * there are none.  On save: read (not owned).  On load: a malloc'd array
	 * indexed by the NEW tree's ids, n_stream = tree_n_ids(). */
	int64_t *stream;
	int32_t n_stream;
};

/* Export options: what the JSON carries beyond the session itself. */
struct session_export {
	const struct tokenizer *tok;   /* adds "text" and "pieces" per node (NULL: none) */
	const struct metrics *metrics; /* adds "metrics" (NULL: none) */
};

/* Writes the tree (and, with ex, the export extras) to path as JSON.
 * 0, or -1 + "path: ..." in err. */
int session_save(const char *path, const struct tree *t, const struct session_meta *meta,
		 const struct session_export *ex, char *err);

/* Reads a session file and rebuilds its tree on pool.  n_vocab > 0 bounds
 * the token ids (0 skips that check).  meta receives the settings; its
 * stream array (may be NULL) must be freed by the caller with free().
 * old_ids (may be NULL) receives a malloc'd array: old_ids[new id] = the id
 * in the file, or -1.  NULL + err on any problem (the pool is left as it was). */
struct tree *session_load(const char *path, struct kvpool *pool, int32_t n_vocab,
			  struct session_meta *meta, int32_t **old_ids, char *err);
/* The same from text in memory (name is used in messages). */
struct tree *session_parse(const char *text, size_t len, const char *name, struct kvpool *pool,
			   int32_t n_vocab, struct session_meta *meta, int32_t **old_ids, char *err);

/* Graphviz: one box per node (id, token count, the start of its text), edges
 * parent -> child; live leaves green, finished ones grey.  tok may be NULL
 * (token ids are shown then).  0, or -1 + err. */
int session_write_dot(FILE *out, const struct tree *t, const struct tokenizer *tok);
int session_save_dot(const char *path, const struct tree *t, const struct tokenizer *tok, char *err);

/* A copy of s (n bytes) with invalid UTF-8 replaced by U+FFFD; malloc'd,
 * NUL-terminated (NUL bytes in s are replaced too). */
char *session_clean_utf8(const char *s, size_t n);

/* Structural equality from the roots: tokens, log-probs, steps, alternatives,
 * statuses and child order (ids may differ).  For tests and checks. */
bool session_tree_equal(const struct tree *a, const struct tree *b);

#endif
