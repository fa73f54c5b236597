/*
 * session.c — save / load a token tree as versioned JSON; JSON and DOT export.
 *
 * DESIGN: saving walks the tree breadth-first from the root (parents before
 * children, pruned nodes skipped) and writes one object per node.  Loading
 * reads every node into a plain array first and checks it as a graph (ids
 * unique, each parent listed before its child, so no cycles; one root listed
 * first; positions agree), then rebuilds the tree with tree.h operations
 * only: an empty root, tokens appended in runs of equal step, children made
 * with tree_fork at the parent's end (a childless parent is marked finished
 * for that one fork so that the fork adds a child instead of splitting it).
 * Node ids in the new tree may differ from the file's; old_ids maps them.
 */
#include "config.h"

#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "jsoncheck.h"
#include "kvpool.h"
#include "metrics.h"
#include "tokenizer.h"
#include "tree.h"

// ---- text helpers

/* Copies s (n bytes) with every invalid UTF-8 sequence replaced by U+FFFD.
 * malloc'd, NUL-terminated. */
char *session_clean_utf8(const char *s, size_t n)
{
	char *out = xmallocarray(n + 1, 3);
	size_t o = 0;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned c = u[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool good = len > 0 && i + len <= n && c != 0;
		for (size_t k = 1; good && k < len; k++)
			good = (u[i + k] & 0xc0) == 0x80;
		if (good && len > 1) {
			uint32_t cp = c & (0xff >> (len + 1));
			for (size_t k = 1; k < len; k++)
				cp = (cp << 6) | (u[i + k] & 0x3f);
			static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
			good = cp >= min_cp[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
		}
		if (!good) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, len);
		o += len;
		i += len;
	}
	out[o] = 0;
	return out;
}

static char *node_text(const struct tokenizer *tok, const struct tree_node *n)
{
	int32_t *ids = xmallocarray((size_t)(n->n_tokens ? n->n_tokens : 1), sizeof(*ids));
	for (int32_t i = 0; i < n->n_tokens; i++)
		ids[i] = n->tokens[i].id;
	char *raw = tokenizer_decode(tok, ids, n->n_tokens);
	free(ids);
	char *clean = session_clean_utf8(raw, strlen(raw));
	free(raw);
	return clean;
}

// ---- tree walking

/* Node ids of t in breadth-first order from the root (pruned nodes left
 * out); malloc'd, *n their number. */
static int32_t *bfs_ids(const struct tree *t, int32_t *n)
{
	int32_t cap = tree_n_ids(t) > 0 ? tree_n_ids(t) : 1;
	int32_t *q = xmallocarray((size_t)cap, sizeof(*q));
	int32_t head = 0, tail = 0;
	q[tail++] = tree_root(t);
	while (head < tail) {
		const struct tree_node *nd = tree_node(t, q[head++]);
		for (int32_t c = 0; c < nd->n_children; c++) {
			const struct tree_node *ch = tree_node(t, nd->children[c]);
			if (ch && ch->status != TREE_PRUNED) {
				DT_ASSERT(tail < cap);
				q[tail++] = ch->id;
			}
		}
	}
	*n = tail;
	return q;
}

// ---- saving

static json_t *json_logprob(float lp)
{
	return isfinite(lp) ? json_real(lp) : json_null();
}

static json_t *io_json(const struct metrics_io *io)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "kv", (json_int_t)io->kv, "q", (json_int_t)io->q, "mask",
			 (json_int_t)io->mask, "partial", (json_int_t)io->partial, "inter", (json_int_t)io->inter, "other",
			 (json_int_t)io->other);
}

static json_t *stats_json(const struct metrics_stats *s)
{
	return json_pack("{s:I, s:I, s:f, s:I, s:I, s:I, s:I}", "n", (json_int_t)s->n, "total", (json_int_t)s->total,
			 "mean", s->mean, "p50", (json_int_t)s->p50, "p90", (json_int_t)s->p90, "p99",
			 (json_int_t)s->p99, "max", (json_int_t)s->max);
}

static json_t *metrics_json(const struct metrics *m)
{
	struct metrics_summary s;
	metrics_summarize(m, &s);
	json_t *sum = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f}",
				"steps", (json_int_t)s.n_steps, "tokens", (json_int_t)s.tokens, "prompt_tokens",
				(json_int_t)s.prompt_tokens, "prefill_ns", (json_int_t)s.prefill_ns, "step_ns",
				stats_json(&s.step), "attn_ns", stats_json(&s.attn), "ttft_ns", stats_json(&s.ttft),
				"tpot_ns", stats_json(&s.tpot), "wall_ns", (json_int_t)s.wall_ns, "bytes",
				(json_int_t)s.bytes, "bytes_seq", (json_int_t)s.bytes_seq, "kv_bytes",
				(json_int_t)s.kv_bytes, "kv_bytes_seq", (json_int_t)s.kv_bytes_seq, "io_ratio",
				s.io_ratio, "sharing", s.sharing, "tokens_per_s", s.tokens_per_s, "attn_share",
				s.attn_share);
	json_t *steps = json_array();
	for (int64_t i = 0; i < metrics_n_steps(m); i++) {
		const struct metrics_step *st = metrics_step_at(m, i);
		json_array_append_new(
			steps, json_pack("{s:I, s:I, s:I, s:i, s:i, s:i, s:I, s:I, s:i, s:o, s:o}", "step",
					 (json_int_t)st->step, "wall_ns", (json_int_t)st->wall_ns, "attn_ns",
					 (json_int_t)st->attn_ns, "n_queries", st->n_queries, "n_branches",
					 st->n_branches, "n_tokens", st->n_tokens, "tree_tokens",
					 (json_int_t)st->tree_tokens, "path_tokens", (json_int_t)st->path_tokens,
					 "kv_pages", st->kv_pages, "io", io_json(&st->io), "io_seq", io_json(&st->io_seq)));
	}
	json_t *br = json_array();
	for (int64_t i = 0; i < metrics_n_branches(m); i++) {
		const struct metrics_branch *b = metrics_branch_at(m, i);
		int64_t ttft, tpot;
		json_t *o = json_pack("{s:I, s:I}", "stream", (json_int_t)b->id, "n_tokens", (json_int_t)b->n_tokens);
		if (metrics_branch_ttft(b, &ttft))
			json_object_set_new(o, "ttft_ns", json_integer(ttft));
		if (metrics_branch_tpot(b, &tpot))
			json_object_set_new(o, "tpot_ns", json_integer(tpot));
		json_array_append_new(br, o);
	}
	return json_pack("{s:o, s:o, s:o}", "summary", sum, "steps", steps, "branches", br);
}

static json_t *node_json(const struct tree *t, const struct tree_node *n, const struct session_meta *meta,
			 const struct session_export *ex)
{
	int32_t n_alt = tree_n_alt(t);
	json_t *tokens = json_array(), *lps = json_array(), *steps = json_array(), *alts = json_array();
	for (int32_t i = 0; i < n->n_tokens; i++) {
		json_array_append_new(tokens, json_integer(n->tokens[i].id));
		json_array_append_new(lps, json_logprob(n->tokens[i].logprob));
		json_array_append_new(steps, json_integer(n->tokens[i].step));
		if (n_alt > 0) {
			json_t *a = json_array();
			for (int32_t k = 0; k < n_alt; k++) {
				const struct tree_alt *al = &n->alts[(size_t)i * n_alt + k];
				json_array_append_new(a, json_integer(al->id));
				json_array_append_new(a, json_logprob(al->logprob));
			}
			json_array_append_new(alts, a);
		}
	}
	const char *status = n->status == TREE_FINISHED ? "finished" : "live";
	json_t *o = json_pack("{s:i, s:i, s:s, s:i, s:o, s:o, s:o}", "id", n->id, "parent", n->parent, "status", status,
			      "pos0", n->pos0, "tokens", tokens, "logprobs", lps, "steps", steps);
	if (n_alt > 0)
		json_object_set_new(o, "alts", alts);
	else
		json_decref(alts);
	if (meta && meta->stream && n->id < meta->n_stream && meta->stream[n->id] >= 0)
		json_object_set_new(o, "stream", json_integer(meta->stream[n->id]));
	if (ex && ex->tok) {
		char *text = node_text(ex->tok, n);
		json_object_set_new(o, "text", json_string(text));
		free(text);
		json_t *pieces = json_array(), *probs = json_array();
		for (int32_t i = 0; i < n->n_tokens; i++) {
			size_t len = 0;
			const char *p = tokenizer_piece(ex->tok, n->tokens[i].id, &len);
			char *clean = session_clean_utf8(p ? p : "", p ? len : 0);
			json_array_append_new(pieces, json_string(clean));
			free(clean);
			json_array_append_new(probs, json_real(exp((double)n->tokens[i].logprob)));
		}
		json_object_set_new(o, "pieces", pieces);
		json_object_set_new(o, "probs", probs);
	}
	return o;
}

int session_save(const char *path, const struct tree *t, const struct session_meta *meta,
		 const struct session_export *ex, char *err)
{
	struct session_meta empty;
	if (!meta) {
		memset(&empty, 0, sizeof(empty));
		empty.sampler = sampler_default_params();
		meta = &empty;
	}
	char seed[32];
	snprintf(seed, sizeof(seed), "%" PRIu64, meta->sampler.seed);
	const struct sampler_params *sp = &meta->sampler;
	json_t *root = json_pack("{s:s, s:i, s:s, s:s, s:I, s:i, s:{s:f, s:i, s:f, s:f, s:f, s:i, s:s}, s:i}",
				 "format", SESSION_FORMAT, "version", SESSION_VERSION, "model", meta->model, "algo",
				 meta->algo, "step", (json_int_t)meta->step, "n_alt", tree_n_alt(t), "sampler", "temp",
				 (double)sp->temp, "top_k", sp->top_k, "top_p", (double)sp->top_p, "min_p",
				 (double)sp->min_p, "repeat_penalty", (double)sp->repeat_penalty, "repeat_last_n",
				 sp->repeat_last_n, "seed", seed, "root", tree_root(t));
	if (!root)
		return dt_err(err, "%s: cannot encode the session (a model path or algorithm name that is not UTF-8?)",
			      path);
	json_t *nodes = json_array();
	int32_t n;
	int32_t *ids = bfs_ids(t, &n);
	for (int32_t i = 0; i < n; i++)
		json_array_append_new(nodes, node_json(t, tree_node(t, ids[i]), meta, ex));
	free(ids);
	json_object_set_new(root, "nodes", nodes);
	if (ex && ex->metrics)
		json_object_set_new(root, "metrics", metrics_json(ex->metrics));

	/* write to a temporary name, then rename: a failed save never clobbers a good file */
	size_t plen = strlen(path) + 16;
	char *tmp = xmalloc(plen);
	snprintf(tmp, plen, "%s.tmp", path);
	int rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
	json_decref(root);
	if (rc != 0) {
		int e = errno;
		remove(tmp);
		free(tmp);
		return dt_err(err, "%s: cannot write (%s)", path, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		remove(tmp);
		free(tmp);
		return dt_err(err, "%s: cannot write (%s)", path, strerror(e));
	}
	free(tmp);
	return 0;
}

// ---- loading

struct raw_node {
	int32_t id, parent; /* file ids */
	int32_t parent_idx; /* index in the raw array, -1 for the root */
	int32_t pos0, n_tokens;
	bool finished;
	int64_t stream;
	int32_t *tokens, *steps; /* (n_tokens) */
	float *logprobs;         /* (n_tokens) */
	struct tree_alt *alts;   /* (n_tokens, n_alt) or NULL */
	int32_t n_children;
};

struct id_pair {
	int32_t id, idx;
};

static int cmp_id_pair(const void *a, const void *b)
{
	const struct id_pair *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

/* A log-probability: a number <= 0 (a hair above 0 is rounding) or null (-inf). */
static int get_logprob(const json_t *v, float *out)
{
	if (json_is_null(v)) {
		*out = -INFINITY;
		return 0;
	}
	if (!json_is_number(v))
		return -1;
	double x = json_number_value(v);
	if (!isfinite(x) || x > 1e-3 || x < -1e30)
		return -1;
	*out = (float)x;
	return 0;
}

static int parse_sampler(const json_t *root, const char *name, struct sampler_params *sp, char *err)
{
	char ctx[256];
	snprintf(ctx, sizeof(ctx), "%s: field \"sampler\"", name);
	const json_t *js = json_object_get(root, "sampler");
	if (!js || !json_is_object(js))
		return dt_err(err, "%s: field \"sampler\" (expected an object, found %s)", name, jsoncheck_type(js));
	double temp, top_p, min_p, rp;
	int64_t top_k, last_n;
	if (jsoncheck_num(js, "temp", 0, 1e6, &temp, ctx, err) || jsoncheck_int(js, "top_k", 0, INT32_MAX, &top_k, ctx, err) ||
	    jsoncheck_num(js, "top_p", 0, 1, &top_p, ctx, err) || jsoncheck_num(js, "min_p", 0, 1, &min_p, ctx, err) ||
	    jsoncheck_num(js, "repeat_penalty", 0, 1e6, &rp, ctx, err) ||
	    jsoncheck_int(js, "repeat_last_n", -1, INT32_MAX, &last_n, ctx, err))
		return -1;
	const json_t *jseed = json_object_get(js, "seed");
	uint64_t seed;
	if (json_is_string(jseed)) {
		const char *s = json_string_value(jseed);
		char *end;
		errno = 0;
		unsigned long long x = strtoull(s, &end, 10);
		if (!*s || *end || errno || s[0] == '-')
			return dt_err(err, "%s: field \"seed\" (expected a decimal unsigned 64-bit number, found \"%.32s\")",
				      ctx, s);
		seed = x;
	} else if (json_is_integer(jseed) && json_integer_value(jseed) >= 0) {
		seed = (uint64_t)json_integer_value(jseed);
	} else {
		return dt_err(err, "%s: field \"seed\" (expected a decimal string, found %s)", ctx, jsoncheck_type(jseed));
	}
	*sp = (struct sampler_params){ .temp = (float)temp, .top_k = (int32_t)top_k, .top_p = (float)top_p,
				       .min_p = (float)min_p, .repeat_penalty = (float)rp,
				       .repeat_last_n = (int32_t)last_n, .seed = seed };
	if (sampler_params_check(sp, err)) {
		char inner[DT_ERR_LEN];
		snprintf(inner, sizeof(inner), "%s", err);
		return dt_err(err, "%s: %s", ctx, inner);
	}
	return 0;
}

static void raw_free(struct raw_node *raw, int32_t n)
{
	for (int32_t i = 0; i < n; i++) {
		free(raw[i].tokens);
		free(raw[i].steps);
		free(raw[i].logprobs);
		free(raw[i].alts);
	}
	free(raw);
}

static int parse_node(const json_t *jn, int32_t i, int32_t n_alt, int32_t n_vocab, const char *name,
		      struct raw_node *r, char *err)
{
	char ctx[300];
	snprintf(ctx, sizeof(ctx), "%s: node %d", name, i);
	if (!json_is_object(jn))
		return dt_err(err, "%s (expected an object, found %s)", ctx, jsoncheck_type(jn));
	int64_t id, parent, pos0;
	if (jsoncheck_int(jn, "id", 0, SESSION_MAX_NODES * 64LL, &id, ctx, err))
		return -1;
	snprintf(ctx, sizeof(ctx), "%s: node %d (id %" PRId64 ")", name, i, id);
	if (jsoncheck_int(jn, "parent", -1, SESSION_MAX_NODES * 64LL, &parent, ctx, err) ||
	    jsoncheck_int(jn, "pos0", 0, SESSION_MAX_TOKENS, &pos0, ctx, err))
		return -1;
	const json_t *js = json_object_get(jn, "status");
	if (!json_is_string(js) || (strcmp(json_string_value(js), "live") && strcmp(json_string_value(js), "finished")))
		return dt_err(err, "%s: field \"status\" (expected \"live\" or \"finished\", found %s)", ctx,
			      json_is_string(js) ? json_string_value(js) : jsoncheck_type(js));
	const json_t *jstream = json_object_get(jn, "stream");
	int64_t stream = -1;
	if (jstream && jsoncheck_int(jn, "stream", 0, INT64_MAX, &stream, ctx, err))
		return -1;
	const json_t *jt = json_object_get(jn, "tokens"), *jl = json_object_get(jn, "logprobs"),
		     *jst = json_object_get(jn, "steps"), *ja = json_object_get(jn, "alts");
	if (!json_is_array(jt))
		return dt_err(err, "%s: field \"tokens\" (expected an array of token ids, found %s)", ctx, jsoncheck_type(jt));
	size_t n = json_array_size(jt);
	if (n > SESSION_MAX_TOKENS)
		return dt_err(err, "%s: field \"tokens\" (expected at most %d, found %zu)", ctx, SESSION_MAX_TOKENS, n);
	if (!json_is_array(jl) || json_array_size(jl) != n)
		return dt_err(err, "%s: field \"logprobs\" (expected an array of %zu numbers, found %s of %zu)", ctx, n,
			      jsoncheck_type(jl), json_array_size(jl));
	if (!json_is_array(jst) || json_array_size(jst) != n)
		return dt_err(err, "%s: field \"steps\" (expected an array of %zu integers, found %s of %zu)", ctx, n,
			      jsoncheck_type(jst), json_array_size(jst));
	if (n_alt > 0 && (!json_is_array(ja) || json_array_size(ja) != n))
		return dt_err(err, "%s: field \"alts\" (expected an array of %zu entries, found %s of %zu)", ctx, n,
			      jsoncheck_type(ja), json_array_size(ja));
	*r = (struct raw_node){ .id = (int32_t)id, .parent = (int32_t)parent, .parent_idx = -1, .pos0 = (int32_t)pos0,
				.n_tokens = (int32_t)n, .finished = !strcmp(json_string_value(js), "finished"),
				.stream = stream };
	r->tokens = xmallocarray(n ? n : 1, sizeof(int32_t));
	r->steps = xmallocarray(n ? n : 1, sizeof(int32_t));
	r->logprobs = xmallocarray(n ? n : 1, sizeof(float));
	if (n_alt > 0)
		r->alts = xmallocarray((n ? n : 1) * (size_t)n_alt, sizeof(struct tree_alt));
	int32_t vmax = n_vocab > 0 ? n_vocab - 1 : INT32_MAX;
	char fb[48];
	for (size_t k = 0; k < n; k++) {
		const json_t *v = json_array_get(jt, k);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > vmax)
			return dt_err(err, "%s: field \"tokens\" element %zu (expected a token id in [0, %d], found %s)", ctx,
				      k, vmax, jsoncheck_found(v, fb, sizeof(fb)));
		r->tokens[k] = (int32_t)json_integer_value(v);
		if (get_logprob(json_array_get(jl, k), &r->logprobs[k]))
			return dt_err(err, "%s: field \"logprobs\" element %zu (expected a number <= 0 or null, found %s)",
				      ctx, k, jsoncheck_found(json_array_get(jl, k), fb, sizeof(fb)));
		v = json_array_get(jst, k);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
			return dt_err(err, "%s: field \"steps\" element %zu (expected a step number >= 0, found %s)", ctx, k,
				      jsoncheck_found(v, fb, sizeof(fb)));
		r->steps[k] = (int32_t)json_integer_value(v);
		if (n_alt > 0) {
			const json_t *a = json_array_get(ja, k);
			if (!json_is_array(a) || json_array_size(a) != 2 * (size_t)n_alt)
				return dt_err(err, "%s: field \"alts\" element %zu (expected %d [id, logprob] pairs, found %s)",
					      ctx, k, n_alt, jsoncheck_type(a));
			for (int32_t q = 0; q < n_alt; q++) {
				const json_t *aid = json_array_get(a, 2 * (size_t)q);
				struct tree_alt *al = &r->alts[k * n_alt + q];
				if (!json_is_integer(aid) || json_integer_value(aid) < -1 || json_integer_value(aid) > vmax)
					return dt_err(err, "%s: field \"alts\" element %zu: alternative %d (expected a token id or -1, found %s)",
						      ctx, k, q, jsoncheck_found(aid, fb, sizeof(fb)));
				al->id = (int32_t)json_integer_value(aid);
				if (get_logprob(json_array_get(a, 2 * (size_t)q + 1), &al->logprob))
					return dt_err(err, "%s: field \"alts\" element %zu: alternative %d (expected a log-probability <= 0 or null)",
						      ctx, k, q);
			}
		}
	}
	return 0;
}

/* Appends node r's tokens to the tree node id, in runs of equal step. */
static int append_runs(struct tree *t, int32_t id, const struct raw_node *r, int32_t n_alt, char *err)
{
	for (int32_t a = 0; a < r->n_tokens;) {
		int32_t b = a + 1;
		while (b < r->n_tokens && r->steps[b] == r->steps[a])
			b++;
		int rc = tree_append(t, id, r->tokens + a, r->logprobs + a, r->alts ? r->alts + (size_t)a * n_alt : NULL,
				     b - a, r->steps[a], err);
		if (rc)
			return rc;
		a = b;
	}
	return 0;
}

struct tree *session_parse(const char *text, size_t len, const char *name, struct kvpool *pool, int32_t n_vocab,
			   struct session_meta *meta, int32_t **old_ids, char *err)
{
	if (old_ids)
		*old_ids = NULL;
	if (len > SESSION_MAX_FILE_BYTES) {
		dt_err(err, "%s: too large for a session (expected at most %u bytes, found %zu)", name,
		       SESSION_MAX_FILE_BYTES, len);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		dt_err(err, "%s:%d:%d: not valid JSON (%s)", name, jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	struct tree *t = NULL;
	struct raw_node *raw = NULL;
	struct id_pair *map = NULL;
	int32_t n = 0, *new_id = NULL;
	struct session_meta m;
	memset(&m, 0, sizeof(m));

	if (!json_is_object(root)) {
		dt_err(err, "%s: not a session (expected an object, found %s)", name, jsoncheck_type(root));
		goto out;
	}
	const json_t *jf = json_object_get(root, "format");
	if (!json_is_string(jf) || strcmp(json_string_value(jf), SESSION_FORMAT)) {
		dt_err(err, "%s: field \"format\" (expected \"%s\", found %s)", name, SESSION_FORMAT,
		       json_is_string(jf) ? json_string_value(jf) : jsoncheck_type(jf));
		goto out;
	}
	int64_t version, step, n_alt, root_id;
	if (jsoncheck_int(root, "version", 0, INT32_MAX, &version, name, err))
		goto out;
	if (version != SESSION_VERSION) {
		dt_err(err, "%s: field \"version\" (expected %d, found %" PRId64 ": written by another deftree)", name,
		       SESSION_VERSION, version);
		goto out;
	}
	if (jsoncheck_int(root, "step", 0, INT64_MAX, &step, name, err) ||
	    jsoncheck_int(root, "n_alt", 0, TREE_MAX_ALT, &n_alt, name, err) ||
	    jsoncheck_int(root, "root", 0, SESSION_MAX_NODES * 64LL, &root_id, name, err))
		goto out;
	const json_t *jm = json_object_get(root, "model"), *ja = json_object_get(root, "algo");
	if (!json_is_string(jm) || !json_is_string(ja)) {
		dt_err(err, "%s: field \"%s\" (expected a string, found %s)", name, json_is_string(jm) ? "algo" : "model",
		       jsoncheck_type(json_is_string(jm) ? ja : jm));
		goto out;
	}
	if (strlen(json_string_value(jm)) >= sizeof(m.model) || strlen(json_string_value(ja)) >= sizeof(m.algo)) {
		dt_err(err, "%s: field \"model\" or \"algo\" too long (expected fewer than %zu / %zu bytes)", name,
		       sizeof(m.model), sizeof(m.algo));
		goto out;
	}
	snprintf(m.model, sizeof(m.model), "%s", json_string_value(jm));
	snprintf(m.algo, sizeof(m.algo), "%s", json_string_value(ja));
	m.step = step;
	if (parse_sampler(root, name, &m.sampler, err))
		goto out;

	// nodes as given
	const json_t *jn = json_object_get(root, "nodes");
	if (!json_is_array(jn) || json_array_size(jn) < 1 || json_array_size(jn) > SESSION_MAX_NODES) {
		dt_err(err, "%s: field \"nodes\" (expected an array of 1 to %d nodes, found %s of %zu)", name,
		       SESSION_MAX_NODES, jsoncheck_type(jn), json_array_size(jn));
		goto out;
	}
	n = (int32_t)json_array_size(jn);
	raw = xcalloc((size_t)n, sizeof(*raw));
	int64_t total = 0;
	for (int32_t i = 0; i < n; i++) {
		if (parse_node(json_array_get(jn, i), i, (int32_t)n_alt, n_vocab, name, &raw[i], err))
			goto out;
		total += raw[i].n_tokens;
		if (total > SESSION_MAX_TOKENS) {
			dt_err(err, "%s: more than %d tokens in the tree", name, SESSION_MAX_TOKENS);
			goto out;
		}
	}

	// the graph: unique ids, root first, parents listed before children
	map = xcalloc((size_t)n, sizeof(*map));
	for (int32_t i = 0; i < n; i++)
		map[i] = (struct id_pair){ raw[i].id, i };
	qsort(map, (size_t)n, sizeof(*map), cmp_id_pair);
	for (int32_t i = 1; i < n; i++)
		if (map[i].id == map[i - 1].id) {
			dt_err(err, "%s: node id %d appears twice", name, map[i].id);
			goto out;
		}
	if (raw[0].parent != -1 || raw[0].id != root_id) {
		dt_err(err, "%s: node 0 (expected the root, id %" PRId64 " with parent -1, found id %d with parent %d)", name,
		       root_id, raw[0].id, raw[0].parent);
		goto out;
	}
	if (raw[0].pos0 != 0) {
		dt_err(err, "%s: node 0 (id %d): field \"pos0\" (expected 0 for the root, found %d)", name, raw[0].id,
		       raw[0].pos0);
		goto out;
	}
	for (int32_t i = 1; i < n; i++) {
		struct raw_node *r = &raw[i];
		struct id_pair key = { r->parent, 0 };
		const struct id_pair *p = r->parent >= 0 ? bsearch(&key, map, (size_t)n, sizeof(*map), cmp_id_pair) : NULL;
		if (r->parent < 0) {
			dt_err(err, "%s: node %d (id %d) has no parent (expected one root, listed first)", name, i, r->id);
			goto out;
		}
		if (!p) {
			dt_err(err, "%s: node %d (id %d): field \"parent\" (expected an existing node, found %d)", name, i,
			       r->id, r->parent);
			goto out;
		}
		if (p->idx >= i) {
			dt_err(err, "%s: node %d (id %d): its parent %d is listed after it (expected parents first: a cycle?)",
			       name, i, r->id, r->parent);
			goto out;
		}
		const struct raw_node *pr = &raw[p->idx];
		if (pr->n_tokens == 0) {
			dt_err(err, "%s: node %d (id %d): its parent %d has no tokens (expected children only below tokens)",
			       name, i, r->id, r->parent);
			goto out;
		}
		if ((int64_t)r->pos0 != (int64_t)pr->pos0 + pr->n_tokens) {
			dt_err(err, "%s: node %d (id %d): field \"pos0\" (expected parent's pos0 + tokens = %" PRId64 ", found %d)",
			       name, i, r->id, (int64_t)pr->pos0 + pr->n_tokens, r->pos0);
			goto out;
		}
		r->parent_idx = p->idx;
		raw[p->idx].n_children++;
	}

	// rebuild with tree operations
	struct tree_params tp = tree_default_params();
	tp.n_alt = (int32_t)n_alt;
	t = tree_new(&tp, pool, NULL, 0, err);
	if (!t)
		goto out;
	new_id = xmallocarray((size_t)n, sizeof(*new_id));
	int32_t *made = xcalloc((size_t)n, sizeof(*made)); /* children made so far per raw node */
	for (int32_t i = 0; i < n && t; i++) {
		struct raw_node *r = &raw[i];
		int32_t id;
		char inner[DT_ERR_LEN];
		if (i == 0) {
			id = tree_root(t);
		} else {
			int32_t p = r->parent_idx, pid = new_id[p];
			/* a childless live parent would be split by the fork: mark it finished for this fork */
			bool flip = made[p] == 0 && tree_node(t, pid)->status == TREE_LIVE;
			if (flip)
				tree_set_status(t, pid, TREE_FINISHED, NULL);
			id = tree_fork(t, pid, tree_node(t, pid)->n_tokens, inner);
			if (flip)
				tree_set_status(t, pid, TREE_LIVE, NULL);
			made[p]++;
			if (id < 0) {
				dt_err(err, "%s: node %d (id %d): %s", name, i, r->id, inner);
				tree_free(t);
				t = NULL;
				break;
			}
		}
		new_id[i] = id;
		int rc = append_runs(t, id, r, (int32_t)n_alt, inner);
		if (rc) {
			dt_err(err, "%s: node %d (id %d): %s", name, i, r->id, inner);
			tree_free(t);
			t = NULL;
			break;
		}
		if (r->finished && r->n_children == 0)
			tree_set_status(t, id, TREE_FINISHED, NULL);
	}
	free(made);
	if (!t)
		goto out;

	// what the caller asked for, indexed by the new ids
	int32_t n_ids = tree_n_ids(t);
	bool any_stream = false;
	for (int32_t i = 0; i < n; i++)
		any_stream = any_stream || raw[i].stream >= 0;
	if (any_stream) {
		m.stream = xmallocarray((size_t)n_ids, sizeof(*m.stream));
		m.n_stream = n_ids;
		for (int32_t k = 0; k < n_ids; k++)
			m.stream[k] = -1;
		for (int32_t i = 0; i < n; i++)
			m.stream[new_id[i]] = raw[i].stream;
	}
	if (old_ids) {
		*old_ids = xmallocarray((size_t)n_ids, sizeof(**old_ids));
		for (int32_t k = 0; k < n_ids; k++)
			(*old_ids)[k] = -1;
		for (int32_t i = 0; i < n; i++)
			(*old_ids)[new_id[i]] = raw[i].id;
	}
	if (meta)
		*meta = m;
	else
		free(m.stream);
out:
	free(new_id);
	free(map);
	raw_free(raw, n);
	json_decref(root);
	return t;
}

struct tree *session_load(const char *path, struct kvpool *pool, int32_t n_vocab, struct session_meta *meta,
			  int32_t **old_ids, char *err)
{
	if (old_ids)
		*old_ids = NULL;
	size_t n;
	char *buf = dt_read_file(path, SESSION_MAX_FILE_BYTES, "a session", &n, err);
	if (!buf)
		return NULL;
	struct tree *t = session_parse(buf, n, path, pool, n_vocab, meta, old_ids, err);
	free(buf);
	return t;
}

// ---- DOT

static void dot_escaped(FILE *out, const char *s, size_t max_chars)
{
	size_t chars = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars > max_chars) {
			fputs("...", out);
			return;
		}
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20 || *p == 0x7f)
			fputc(' ', out);
		else
			fputc(*p, out);
	}
}

int session_write_dot(FILE *out, const struct tree *t, const struct tokenizer *tok)
{
	int32_t n;
	int32_t *ids = bfs_ids(t, &n);
	fprintf(out, "digraph deftree {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
	for (int32_t i = 0; i < n; i++) {
		const struct tree_node *nd = tree_node(t, ids[i]);
		bool leaf = nd->n_children == 0;
		const char *style = !leaf ? "" : nd->status == TREE_FINISHED ? ", style=filled, fillcolor=\"#dddddd\""
									     : ", style=filled, fillcolor=\"#c8f0c8\"";
		fprintf(out, "  n%d [label=\"#%d  %d tok  @%d\\n", nd->id, nd->id, nd->n_tokens, nd->pos0);
		if (tok) {
			char *text = node_text(tok, nd);
			dot_escaped(out, text, 48);
			free(text);
		} else {
			for (int32_t k = 0; k < nd->n_tokens && k < 12; k++)
				fprintf(out, "%s%d", k ? " " : "", nd->tokens[k].id);
			if (nd->n_tokens > 12)
				fputs(" ...", out);
		}
		fprintf(out, "\"%s];\n", style);
	}
	for (int32_t i = 0; i < n; i++) {
		const struct tree_node *nd = tree_node(t, ids[i]);
		if (nd->parent >= 0)
			fprintf(out, "  n%d -> n%d;\n", nd->parent, nd->id);
	}
	fprintf(out, "}\n");
	free(ids);
	return ferror(out) ? -1 : 0;
}

int session_save_dot(const char *path, const struct tree *t, const struct tokenizer *tok, char *err)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return dt_err(err, "%s: cannot open for writing (%s)", path, strerror(errno));
	int rc = session_write_dot(f, t, tok);
	if (fclose(f) != 0 || rc)
		return dt_err(err, "%s: write error", path);
	return 0;
}

// ---- equality

static const struct tree_node *in_tree(const struct tree *t, int32_t id)
{
	const struct tree_node *n = tree_node(t, id);
	return n && n->status != TREE_PRUNED ? n : NULL;
}

static bool lp_same(float a, float b)
{
	return a == b || (isnan(a) && isnan(b));
}

bool session_tree_equal(const struct tree *a, const struct tree *b)
{
	if (tree_n_alt(a) != tree_n_alt(b))
		return false;
	int32_t n_alt = tree_n_alt(a);
	int32_t cap = DT_MAX(tree_n_ids(a), 1);
	int32_t *sa = xmallocarray((size_t)cap, sizeof(*sa)), *sb = xmallocarray((size_t)cap, sizeof(*sb));
	int32_t top = 0;
	bool same = true;
	sa[top] = tree_root(a);
	sb[top++] = tree_root(b);
	while (top > 0 && same) {
		top--;
		const struct tree_node *x = tree_node(a, sa[top]), *y = tree_node(b, sb[top]);
		if (!x || !y || x->n_tokens != y->n_tokens || x->pos0 != y->pos0 ||
		    (x->n_children == 0 && y->n_children == 0 && x->status != y->status)) {
			same = false;
			break;
		}
		for (int32_t i = 0; i < x->n_tokens && same; i++) {
			same = x->tokens[i].id == y->tokens[i].id && lp_same(x->tokens[i].logprob, y->tokens[i].logprob) &&
			       x->tokens[i].step == y->tokens[i].step;
			for (int32_t k = 0; k < n_alt && same; k++) {
				const struct tree_alt *p = &x->alts[(size_t)i * n_alt + k], *q = &y->alts[(size_t)i * n_alt + k];
				same = p->id == q->id && lp_same(p->logprob, q->logprob);
			}
		}
		/* children in the tree (pruned ones left out), in order */
		int32_t cx = 0, cy = 0;
		for (;;) {
			while (cx < x->n_children && in_tree(a, x->children[cx]) == NULL)
				cx++;
			while (cy < y->n_children && in_tree(b, y->children[cy]) == NULL)
				cy++;
			if (cx == x->n_children || cy == y->n_children) {
				same = same && cx == x->n_children && cy == y->n_children;
				break;
			}
			if (top >= cap) {
				same = false; /* more nodes than ids: cannot happen */
				break;
			}
			sa[top] = x->children[cx++];
			sb[top++] = y->children[cy++];
		}
	}
	free(sa);
	free(sb);
	return same;
}
