/* test_session.c — a tree saved as a session file loads back as the same tree;
 * the JSON export (with metrics) loads too; DOT export draws every edge;
 * broken and hostile session files are refused with messages, leaving the
 * pool as it was. */
#include "config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "kvpool.h"
#include "metrics.h"
#include "session.h"
#include "tap.h"
#include "tree.h"

#define N_VOCAB 1000

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *tmpdir;
static char err[DT_ERR_LEN];

static struct kvpool *make_pool(int32_t pages)
{
	struct kvpool_params p = kvpool_default_params();
	p.page_size = 4;
	p.n_layer = 2;
	p.n_kv_heads = 1;
	p.head_dim = 8;
	p.host_storage = false;
	p.budget_bytes = (size_t)pages * (size_t)p.page_size * 2 * 2 * 8 * 4;
	struct kvpool *pool = kvpool_new(&p, err);
	if (!pool) {
		printf("Bail out! kvpool_new: %s\n", err);
		exit(1);
	}
	return pool;
}

static void append_random(struct tree *t, int32_t leaf, int32_t n, int32_t step)
{
	int32_t ids[64];
	float lps[64];
	struct tree_alt alts[64 * TREE_MAX_ALT];
	int32_t na = tree_n_alt(t);
	for (int32_t i = 0; i < n; i++) {
		ids[i] = (int32_t)rnd(N_VOCAB);
		lps[i] = rnd(10) == 0 ? -INFINITY : -(float)rnd(100000) / 7919.0f;
		for (int32_t k = 0; k < na; k++)
			alts[i * na + k] = (struct tree_alt){ rnd(5) ? (int32_t)rnd(N_VOCAB) : -1,
							      -(float)rnd(1000) / 31.0f };
	}
	int rc = tree_append(t, leaf, ids, lps, alts, n, step, err);
	if (rc) {
		printf("Bail out! append: %s\n", err);
		exit(1);
	}
}

/* A random tree: prompt, then rounds of forks, appends, prunes, finishes. */
static struct tree *random_tree(struct kvpool *pool, int32_t n_alt, int64_t **streams)
{
	struct tree_params tp = tree_default_params();
	tp.n_alt = n_alt;
	int32_t prompt[20];
	int32_t np = 1 + (int32_t)rnd(20);
	for (int32_t i = 0; i < np; i++)
		prompt[i] = (int32_t)rnd(N_VOCAB);
	struct tree *t = tree_new(&tp, pool, prompt, np, err);
	if (!t) {
		printf("Bail out! tree_new: %s\n", err);
		exit(1);
	}
	for (int32_t step = 1; step <= 12; step++) {
		int32_t leaves[512];
		int32_t nl = tree_live_leaves(t, leaves, 512);
		for (int32_t i = 0; i < nl; i++)
			append_random(t, leaves[i], 1 + (int32_t)rnd(3), step);
		/* a fork at a random node and token index (index >= 1 for the root) */
		int32_t id = (int32_t)rnd((uint32_t)tree_n_ids(t));
		const struct tree_node *nd = tree_node(t, id);
		if (nd && nd->status != TREE_PRUNED && nd->n_tokens > 0 && tree_n_ids(t) < 200) {
			int32_t idx = 1 + (int32_t)rnd((uint32_t)nd->n_tokens);
			int32_t leaf = tree_fork(t, id, idx, err);
			if (leaf >= 0)
				append_random(t, leaf, 1 + (int32_t)rnd(4), step);
		}
		nl = tree_live_leaves(t, leaves, 512);
		if (nl > 3 && rnd(3) == 0)
			tree_prune(t, leaves[rnd((uint32_t)nl)], NULL);
		nl = tree_live_leaves(t, leaves, 512);
		if (nl > 2 && rnd(3) == 0)
			tree_set_status(t, leaves[rnd((uint32_t)nl)], TREE_FINISHED, NULL);
	}
	*streams = xmallocarray((size_t)tree_n_ids(t), sizeof(**streams));
	for (int32_t i = 0; i < tree_n_ids(t); i++)
		(*streams)[i] = rnd(2) ? (int64_t)rnd(1000000) : -1;
	return t;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = xmalloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = 0;
	fclose(f);
	return buf;
}

static void test_round_trip(void)
{
	int all_equal = 1, pages_equal = 1, streams_ok = 1, meta_ok = 1, checks_ok = 1;
	for (int round = 0; round < 8; round++) {
		struct kvpool *pool = make_pool(4096), *pool2 = make_pool(4096);
		int64_t *streams;
		int32_t n_alt = round % 3 == 0 ? 0 : (int32_t)rnd(TREE_MAX_ALT) + 1;
		struct tree *t = random_tree(pool, n_alt, &streams);
		struct session_meta meta;
		memset(&meta, 0, sizeof(meta));
		snprintf(meta.model, sizeof(meta.model), "models/x-%d.gguf", round);
		snprintf(meta.algo, sizeof(meta.algo), "deft-flatten");
		meta.step = 12;
		meta.sampler = sampler_default_params();
		meta.sampler.seed = 0xfedcba9876543210ULL; /* above INT64_MAX: stored as a string */
		meta.sampler.temp = 0.5f;
		meta.stream = streams;
		meta.n_stream = tree_n_ids(t);
		char path[512];
		snprintf(path, sizeof(path), "%s/s%d.json", tmpdir, round);
		if (session_save(path, t, &meta, NULL, err)) {
			ok(0, "save: %s", err);
			continue;
		}
		struct session_meta m2;
		int32_t *old = NULL;
		struct tree *u = session_load(path, pool2, N_VOCAB, &m2, &old, err);
		if (!u) {
			ok(0, "load round %d: %s", round, err);
			all_equal = 0;
		} else {
			all_equal = all_equal && session_tree_equal(t, u);
			struct tree_stats sa, sb;
			tree_stats(t, &sa);
			tree_stats(u, &sb);
			pages_equal = pages_equal && sa.n_nodes == sb.n_nodes && sa.stored_tokens == sb.stored_tokens &&
				      sa.logical_tokens == sb.logical_tokens && sa.n_live_leaves == sb.n_live_leaves &&
				      kvpool_n_used(pool2) == sb.pages;
			checks_ok = checks_ok && tree_check(u, err) == 0;
			meta_ok = meta_ok && !strcmp(m2.model, meta.model) && !strcmp(m2.algo, "deft-flatten") &&
				  m2.step == 12 && m2.sampler.seed == meta.sampler.seed && m2.sampler.temp == 0.5f &&
				  m2.sampler.top_k == meta.sampler.top_k;
			for (int32_t k = 0; k < tree_n_ids(u); k++) {
				const struct tree_node *nd = tree_node(u, k);
				if (!nd || nd->status == TREE_PRUNED || old[k] < 0)
					continue;
				int64_t want = streams[old[k]], got = m2.stream ? m2.stream[k] : -1;
				streams_ok = streams_ok && want == got;
			}
			free(m2.stream);
			free(old);
		}
		tree_free(u);
		tree_free(t);
		free(streams);
		kvpool_free(pool);
		kvpool_free(pool2);
	}
	ok(all_equal, "8 random trees (forks, prunes, finished leaves, -inf log-probs) load back equal");
	ok(pages_equal, "the loaded trees have the same nodes, stored and path tokens, live leaves; the pool holds their pages");
	ok(checks_ok, "the loaded trees pass tree_check (%s)", checks_ok ? "ok" : err);
	ok(streams_ok, "branch streams come back under the new ids");
	ok(meta_ok, "model, algorithm, step and sampler (64-bit seed) come back");
}

static void test_export(void)
{
	struct kvpool *pool = make_pool(4096);
	int64_t *streams;
	struct tree *t = random_tree(pool, 2, &streams);
	free(streams);
	struct metrics *m = metrics_new();
	for (int i = 0; i < 5; i++) {
		struct metrics_step s = { .wall_ns = 1000 + i, .attn_ns = 100, .n_queries = 3, .n_tokens = 3 };
		s.io.kv = 4096;
		s.io_seq.kv = 8192;
		metrics_step_add(m, &s);
		metrics_branch_tokens(m, 5, 1000 * i, 1);
	}
	struct session_export ex = { .tok = NULL, .metrics = m };
	char path[512];
	snprintf(path, sizeof(path), "%s/export.json", tmpdir);
	int rc = session_save(path, t, NULL, &ex, err);
	ok(rc == 0, "export with metrics written (%s)", rc ? err : "ok");
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	json_t *steps = j ? json_object_get(json_object_get(j, "metrics"), "steps") : NULL;
	ok(json_array_size(steps) == 5 &&
		   json_integer_value(json_object_get(json_object_get(json_array_get(steps, 2), "io_seq"), "kv")) == 8192,
	   "the export carries the 5 steps with their IO bytes");
	json_t *br = j ? json_object_get(json_object_get(j, "metrics"), "branches") : NULL;
	ok(json_array_size(br) == 1 && json_integer_value(json_object_get(json_array_get(br, 0), "tpot_ns")) == 1000,
	   "the export carries branch TPOT");
	json_decref(j);
	struct kvpool *pool2 = make_pool(4096);
	struct tree *u = session_load(path, pool2, 0, NULL, NULL, err);
	ok(u && session_tree_equal(t, u), "the export loads back as the same tree (%s)", u ? "ok" : err);
	tree_free(u);

	/* DOT: one node line per node, one edge per non-root node */
	snprintf(path, sizeof(path), "%s/tree.dot", tmpdir);
	rc = session_save_dot(path, t, NULL, err);
	size_t len = 0;
	char *dot = rc ? NULL : read_all(path, &len);
	int nodes = 0, edges = 0;
	for (char *p = dot; p && (p = strstr(p, "\n  n")); p++) {
		if (p[4] < '0' || p[4] > '9')
			continue;
		if (strstr(p, " -> ") && strstr(p, " -> ") < strchr(p + 1, '\n'))
			edges++;
		else
			nodes++;
	}
	struct tree_stats st;
	tree_stats(t, &st);
	ok(dot && !strncmp(dot, "digraph", 7) && nodes == st.n_nodes && edges == st.n_nodes - 1,
	   "DOT has %d node lines and %d edges (got %d, %d)", st.n_nodes, st.n_nodes - 1, nodes, edges);
	free(dot);
	metrics_free(m);
	tree_free(t);
	kvpool_free(pool);
	kvpool_free(pool2);
}

/* A small valid session as a JSON object, edited by the hostile cases. */
static json_t *small_session(void)
{
	struct kvpool *pool = make_pool(64);
	struct tree_params tp = tree_default_params();
	tp.n_alt = 1;
	int32_t prompt[] = { 5, 6, 7 };
	struct tree *t = tree_new(&tp, pool, prompt, 3, err);
	tree_set_status(t, tree_root(t), TREE_FINISHED, NULL); /* fork at its end adds a child */
	int32_t a = tree_fork(t, tree_root(t), 3, err);
	append_random(t, a, 2, 1);
	int32_t b = tree_fork(t, tree_root(t), 2, err);
	append_random(t, b, 2, 1);
	char path[512];
	snprintf(path, sizeof(path), "%s/small.json", tmpdir);
	session_save(path, t, NULL, NULL, err);
	tree_free(t);
	kvpool_free(pool);
	json_error_t je;
	return json_load_file(path, 0, &je);
}

static void refused(const char *label, json_t *j, const char *what, int32_t pool_pages)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.json", tmpdir, label);
	json_dump_file(j, path, 0);
	json_decref(j);
	struct kvpool *pool = make_pool(pool_pages);
	int32_t free_before = kvpool_n_free(pool);
	err[0] = 0;
	struct tree *t = session_load(path, pool, N_VOCAB, NULL, NULL, err);
	ok(!t && strstr(err, label) && strstr(err, what) && kvpool_n_free(pool) == free_before,
	   "%s refused with \"%s\", pool untouched (got: %s)", label, what, t ? "accepted" : err);
	tree_free(t);
	kvpool_free(pool);
}

#define NODE(j, i) json_array_get(json_object_get(j, "nodes"), i)

static void test_hostile(void)
{
	json_t *j = small_session();
	ok(j && json_array_size(json_object_get(j, "nodes")) == 4, "the small session has 4 nodes");
	if (!j)
		return;
	json_decref(j);

	j = small_session();
	json_object_set_new(j, "version", json_integer(2));
	refused("version", j, "field \"version\" (expected 1, found 2", 64);
	j = small_session();
	json_object_set_new(j, "format", json_string("gguf"));
	refused("format", j, "field \"format\" (expected \"deftree-session\"", 64);
	j = small_session();
	json_object_del(NODE(j, 1), "tokens");
	refused("notokens", j, "field \"tokens\" (expected an array", 64);
	j = small_session();
	json_array_set_new(json_object_get(NODE(j, 1), "tokens"), 0, json_integer(N_VOCAB));
	refused("vocab", j, "field \"tokens\" element 0 (expected a token id in [0, 999]", 64);
	j = small_session();
	json_array_set_new(json_object_get(NODE(j, 1), "tokens"), 0, json_string("x"));
	refused("tokentype", j, "found a string", 64);
	j = small_session();
	json_array_set_new(json_object_get(NODE(j, 2), "logprobs"), 0, json_real(0.5));
	refused("logprob", j, "field \"logprobs\" element 0 (expected a number <= 0 or null", 64);
	j = small_session();
	json_array_remove(json_object_get(NODE(j, 2), "steps"), 0);
	refused("steps", j, "field \"steps\" (expected an array of 2 integers", 64);
	j = small_session();
	json_array_remove(json_array_get(json_object_get(NODE(j, 2), "alts"), 1), 0);
	refused("alts", j, "field \"alts\" element 1 (expected 1 [id, logprob] pairs", 64);
	j = small_session();
	json_object_set_new(NODE(j, 3), "parent", json_integer(77));
	refused("dangling", j, "field \"parent\" (expected an existing node, found 77)", 64);
	j = small_session();
	/* node 1's parent is node 3, listed after it: a cycle can only look like this */
	json_object_set_new(NODE(j, 1), "parent", json_object_get(NODE(j, 3), "id"));
	json_incref(json_object_get(NODE(j, 3), "id"));
	refused("cycle", j, "is listed after it", 64);
	j = small_session();
	json_object_set_new(NODE(j, 2), "parent", json_integer(-1));
	refused("tworoots", j, "has no parent (expected one root", 64);
	j = small_session();
	json_object_set(NODE(j, 3), "id", json_object_get(NODE(j, 2), "id"));
	refused("dupid", j, "appears twice", 64);
	j = small_session();
	json_object_set_new(NODE(j, 2), "pos0", json_integer(9));
	refused("pos0", j, "field \"pos0\" (expected parent's pos0 + tokens", 64);
	j = small_session();
	json_object_set_new(NODE(j, 1), "status", json_string("zombie"));
	refused("status", j, "field \"status\" (expected \"live\" or \"finished\", found zombie)", 64);
	j = small_session();
	json_object_set_new(json_object_get(j, "sampler"), "top_p", json_real(2.0));
	refused("sampler", j, "field \"top_p\" (expected a number in [0, 1], found 2)", 64);
	j = small_session();
	json_object_set_new(json_object_get(j, "sampler"), "seed", json_string("-5"));
	refused("seed", j, "field \"seed\" (expected a decimal", 64);
	j = small_session();
	json_object_set_new(j, "n_alt", json_integer(99));
	refused("nalt", j, "field \"n_alt\" (expected an integer in [0, 16], found 99)", 64);
	j = small_session();
	json_object_set_new(j, "nodes", json_array());
	refused("nonodes", j, "field \"nodes\" (expected an array of 1 to", 64);
	j = small_session();
	json_object_set_new(j, "nodes", json_string("lots"));
	refused("nodestype", j, "field \"nodes\" (expected an array", 64);
	/* a valid file whose tree does not fit: DT_ERR_FULL, nothing leaked */
	j = small_session();
	refused("full", j, "kv pool full", 2);

	char path[512];
	snprintf(path, sizeof(path), "%s/garbage.json", tmpdir);
	FILE *f = fopen(path, "w");
	fputs("{\"format\": \"deftree-session\", \"version\": 1, \"nodes\": [", f);
	fclose(f);
	struct kvpool *pool = make_pool(16);
	ok(!session_load(path, pool, 0, NULL, NULL, err) && strstr(err, "not valid JSON"), "truncated JSON: %s", err);
	ok(!session_load("/nonexistent/s.json", pool, 0, NULL, NULL, err) && strstr(err, "cannot open"),
	   "missing file: %s", err);
	kvpool_free(pool);
}

int main(void)
{
	rng_state = (uint64_t)time(NULL);
	diag("seed %llu", (unsigned long long)rng_state);
	tmpdir = tap_tmpdir();
	tap_plan_lazy();
	test_round_trip();
	test_export();
	test_hostile();
	return tap_done();
}
