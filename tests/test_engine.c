/* test_engine.c — tree decoding with the default model (SKIP without it):
 * branches grown in a tree equal the same branches generated alone, for every
 * attention algorithm; beam search keeps W live leaves and returns pruned
 * pages; a step refused for lack of KV pages leaves the tree intact; forced
 * text gives the logits of the prompt that contains it; sessions and replays.
 * Kept lean: a few dozen tokens per case. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "engine.h"
#include "kvpool.h"
#include "metrics.h"
#include "model.h"
#include "session.h"
#include "tap.h"
#include "tokenizer.h"
#include "tree.h"
#include "workload.h"

static char err[DT_ERR_LEN];
static struct model *model;
static uint64_t seed;
static const char *prompt = "Once upon a time, in a small village by the sea,";

static struct engine *make(enum treeplan_algo algo, uint64_t root_stream)
{
	struct engine_params p = engine_default_params();
	p.model = model;
	p.algo = algo;
	p.root_stream = root_stream;
	p.sampler.seed = seed;
	p.sampler.temp = 0.9f;
	p.max_branch_tokens = 0;
	p.kv_budget = 64u << 20;
	struct engine *e = engine_new(&p, err);
	if (!e) {
		printf("Bail out! engine_new: %s\n", err);
		exit(1);
	}
	return e;
}

/* generated tokens on the path of leaf (after the prompt) */
static int32_t branch_tokens(struct engine *e, int32_t leaf, int32_t *out, int32_t cap)
{
	struct tree *t = engine_tree(e);
	int32_t len = tree_path_len(t, leaf);
	int32_t *all = xmallocarray((size_t)len, sizeof(*all));
	tree_path_tokens(t, leaf, all, len);
	int32_t n = 0;
	for (int32_t i = engine_prompt_len(e); i < len && n < cap; i++)
		out[n++] = all[i];
	free(all);
	return n;
}

/* The tokens of one branch generated alone, as a plain chain below the same
 * prompt: the prompt as the root, then (when first >= 0) a node holding the
 * forced token `first`, then the branch's node, sampling with `stream` for
 * `steps` steps.  The chain has the node boundaries the branch had in the
 * tree, so every algorithm cuts its path into the same groups. */
static int32_t alone(enum treeplan_algo algo, uint64_t stream, int32_t first, int32_t steps, int32_t *out)
{
	/* new branches take root_stream + 1, + 2, ...: the branch is the last one made */
	struct engine *e = make(algo, stream - (first >= 0 ? 2 : 1));
	if (engine_prefill(e, prompt, false, err)) {
		printf("Bail out! prefill: %s\n", err);
		exit(1);
	}
	struct tree *t = engine_tree(e);
	int32_t root = tree_root(t), leaf;
	if (first >= 0) {
		int32_t c1 = engine_fork(e, root, tree_node(t, root)->n_tokens, ENGINE_FORK_TOKEN, first, NULL, err);
		engine_sample_n(e, c1, 1, 1, &leaf, err);
	} else {
		engine_sample_n(e, root, tree_node(t, root)->n_tokens, 1, &leaf, err);
	}
	if (engine_stream(e, leaf) != (int64_t)stream) {
		printf("Bail out! the alone branch has stream %lld, not %llu\n", (long long)engine_stream(e, leaf),
		       (unsigned long long)stream);
		exit(1);
	}
	engine_run(e, steps, err);
	int32_t got = branch_tokens(e, leaf, out, 64);
	engine_free(e);
	return got;
}

/* Branches grown together equal the same branches grown alone, for every
 * algorithm and every branch.  This holds because the CPU tree attention
 * computes each query's result the same way whatever its grouping (a shared
 * max, exp per key, double sums: cpu_tree_attn.c), and the batched matmuls
 * give each row the same bits as a single-row product. */
static void test_tree_equals_alone(enum treeplan_algo algo)
{
	const char *name = treeplan_algo_name(algo);
	struct engine *e = make(algo, 0);
	if (engine_prefill(e, prompt, false, err)) {
		ok(0, "%s: prefill: %s", name, err);
		engine_free(e);
		return;
	}
	struct tree *t = engine_tree(e);
	int32_t root = tree_root(t), leaves[3];
	int rc = engine_sample_n(e, root, tree_node(t, root)->n_tokens, 3, leaves, err);
	ok(rc == 0, "%s: sample-n 3 at the prompt's end (%s)", name, rc ? err : "ok");
	if (rc) {
		engine_free(e);
		return;
	}
	int64_t n = engine_run(e, 7, err);
	ok(n == 7 && tree_check(t, err) == 0, "%s: 7 steps, tree consistent (%s)", name, n == 7 ? "ok" : err);
	int same[3];
	for (int b = 0; b < 3; b++) {
		int32_t in_tree[64], solo[64];
		int32_t nt = branch_tokens(e, leaves[b], in_tree, 64);
		int32_t ns = alone(algo, (uint64_t)engine_stream(e, leaves[b]), -1, nt, solo);
		same[b] = nt == 7 && ns == nt && !memcmp(in_tree, solo, (size_t)nt * sizeof(int32_t));
	}
	ok(same[0], "%s: the first branch has the same 7 tokens as when generated alone with its stream", name);
	ok(same[1] && same[2], "%s: branches 2 and 3 too (%s, %s)", name, same[1] ? "same" : "differ",
	   same[2] ? "same" : "differ");

	/* a fork in the middle of the first branch: its 2nd token resampled */
	int32_t fork = engine_fork(e, leaves[0], 1, ENGINE_FORK_RESAMPLE, 0, NULL, err);
	ok(fork >= 0, "%s: fork at token 1 of branch 1 (%s)", name, fork >= 0 ? "ok" : err);
	n = fork >= 0 ? engine_run(e, 4, err) : -1;
	ok(n == 4 && tree_check(t, err) == 0, "%s: 4 more steps, tree consistent", name);
	if (fork >= 0) {
		int32_t in_tree[64], solo[64];
		int32_t nt = branch_tokens(e, fork, in_tree, 64);
		int32_t ns = alone(algo, (uint64_t)engine_stream(e, fork), in_tree[0], 4, solo);
		ok(nt == 5 && ns == 5 && !memcmp(in_tree, solo, 5 * sizeof(int32_t)),
		   "%s: the forked branch equals a chain from prompt + its first token (%d, %d tokens)", name, nt, ns);
	}
	engine_free(e);
}

static void test_beam(void)
{
	struct engine *e = make(TREEPLAN_DEFT_FLATTEN, 0);
	engine_prefill(e, prompt, false, err);
	int rc = engine_set_policy(e, ENGINE_POLICY_BEAM, 3, 1.0f, err);
	ok(rc == 0, "beam policy set");
	struct tree *t = engine_tree(e);
	int live_ok = 1;
	for (int s = 0; s < 6; s++) {
		rc = engine_step(e, err);
		struct tree_stats st;
		tree_stats(t, &st);
		live_ok = live_ok && rc == 0 && st.n_live_leaves == 3;
	}
	ok(live_ok, "beam width 3: 3 live leaves after every step");
	struct tree_stats st;
	tree_stats(t, &st);
	int pruned = 0;
	for (int32_t i = 0; i < tree_n_ids(t); i++)
		pruned += tree_node(t, i) && tree_node(t, i)->status == TREE_PRUNED;
	ok(pruned > 0, "beam search pruned %d nodes", pruned);
	ok(tree_check(t, err) == 0 && kvpool_n_used(engine_pool(e)) == st.pages,
	   "pruned pages returned: the pool holds exactly the tree's %d pages (%d used)", st.pages,
	   kvpool_n_used(engine_pool(e)));
	engine_free(e);

	/* width 1 without length penalty is greedy decoding */
	e = make(TREEPLAN_DEFT_FLATTEN, 0);
	engine_prefill(e, prompt, false, err);
	engine_set_policy(e, ENGINE_POLICY_BEAM, 1, 0.0f, err);
	engine_run(e, 6, err);
	int32_t beam[64], greedy[64];
	int32_t leaf;
	tree_live_leaves(engine_tree(e), &leaf, 1);
	int32_t nb = branch_tokens(e, leaf, beam, 64);
	engine_free(e);
	e = make(TREEPLAN_DEFT_FLATTEN, 0);
	engine_prefill(e, prompt, false, err);
	engine_set_policy(e, ENGINE_POLICY_GREEDY, 0, 0, err);
	engine_run(e, 6, err);
	int32_t ng = branch_tokens(e, tree_root(engine_tree(e)), greedy, 64);
	ok(nb == 6 && ng == 6 && !memcmp(beam, greedy, 6 * sizeof(int32_t)), "beam width 1 equals greedy (%d, %d tokens)",
	   nb, ng);
	engine_free(e);
}

static void test_budget(void)
{
	struct engine_params p = engine_default_params();
	p.model = model;
	p.page_size = 4;
	p.sampler.seed = seed;
	p.max_branch_tokens = 0;
	struct engine *probe = engine_new(&p, err);
	size_t page = kvpool_page_bytes(engine_pool(probe));
	engine_free(probe);
	p.kv_budget = 8 * page; /* 8 pages of 4 tokens */
	struct engine *e = engine_new(&p, err);
	int32_t ids[10];
	for (int i = 0; i < 10; i++)
		ids[i] = 100 + i;
	int rc = engine_prefill_tokens(e, ids, 10, err); /* 3 pages */
	struct tree *t = engine_tree(e);
	engine_sample_n(e, tree_root(t), 10, 4, NULL, err);
	int64_t steps = 0;
	for (;;) {
		uint64_t version = tree_version(t);
		struct tree_stats before, after;
		tree_stats(t, &before);
		rc = engine_step(e, err);
		if (rc == DT_ERR_FULL) {
			tree_stats(t, &after);
			ok(tree_version(t) == version && after.stored_tokens == before.stored_tokens &&
				   after.n_live_leaves == before.n_live_leaves && tree_check(t, err) == 0,
			   "the refused step left the tree as it was (%lld tokens, %d live leaves)",
			   (long long)after.stored_tokens, after.n_live_leaves);
			break;
		}
		if (rc != 0 || ++steps > 40)
			break;
	}
	ok(rc == DT_ERR_FULL && strstr(err, "kv pool full"), "after %lld steps the 8-page budget refuses a step: %s",
	   (long long)steps, err);
	/* pruning a branch frees pages: the step goes through */
	int32_t leaves[8];
	int32_t nl = tree_live_leaves(t, leaves, 8);
	engine_prune(e, leaves[0], err);
	engine_prune(e, leaves[1], err);
	rc = engine_step(e, err);
	ok(nl == 4 && rc == 0, "after pruning two of %d branches the step succeeds (%s)", nl, rc ? err : "ok");
	engine_free(e);
}

static void test_forced_text(void)
{
	const char *text = " The old fisherman";
	struct engine *a = make(TREEPLAN_DEFT_FLATTEN, 0);
	engine_prefill(a, prompt, false, err);
	struct tree *t = engine_tree(a);
	int32_t root = tree_root(t);
	int rc = engine_force_text(a, root, text, err);
	int32_t n_forced = tree_node(t, root)->n_tokens - engine_prompt_len(a);
	rc = rc ? rc : engine_step(a, err);
	const float *la = engine_logits(a, root, tree_node(t, root)->n_tokens - 2);

	struct engine *b = make(TREEPLAN_DEFT_FLATTEN, 0);
	int32_t n = tree_node(t, root)->n_tokens - 1; /* prompt + forced text */
	int32_t *ids = xmallocarray((size_t)n, sizeof(*ids));
	tree_path_tokens(t, root, ids, n);
	engine_prefill_tokens(b, ids, n, err);
	const float *lb = engine_logits(b, tree_root(engine_tree(b)), n - 1);
	float maxdiff = -1, scale = 0;
	if (la && lb) {
		maxdiff = 0;
		for (int32_t v = 0; v < model_hparams(model)->n_vocab; v++) {
			maxdiff = fmaxf(maxdiff, fabsf(la[v] - lb[v]));
			scale = fmaxf(scale, fabsf(lb[v]));
		}
	}
	ok(rc == 0 && n_forced >= 3 && la && lb && maxdiff >= 0 && maxdiff < 1e-3f * DT_MAX(1.0f, scale),
	   "forced text (%d tokens) gives the next-token logits of the prompt containing it (max diff %g, scale %g)",
	   n_forced, maxdiff, scale);
	free(ids);
	engine_free(a);
	engine_free(b);
}

static void test_session(void)
{
	const char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/s.json", dir);
	struct engine *a = make(TREEPLAN_DEFT_NODE, 0);
	engine_prefill(a, prompt, false, err);
	struct tree *t = engine_tree(a);
	engine_sample_n(a, tree_root(t), tree_node(t, tree_root(t))->n_tokens, 2, NULL, err);
	engine_run(a, 3, err);
	int rc = engine_save(a, path, true, err);
	ok(rc == 0, "engine session saved (%s)", rc ? err : "ok");
	struct engine *b = make(TREEPLAN_DEFT_FLATTEN, 0);
	rc = engine_load(b, path, err);
	ok(rc == 0 && session_tree_equal(engine_tree(a), engine_tree(b)), "engine session loaded, same tree (%s)",
	   rc ? err : "ok");
	engine_run(a, 3, err);
	engine_run(b, 3, err);
	int32_t la[4], lb[4];
	int32_t na = tree_live_leaves(engine_tree(a), la, 4), nb = tree_live_leaves(engine_tree(b), lb, 4);
	int same = na == 2 && nb == 2;
	for (int i = 0; i < na && same; i++) {
		int32_t x[64], y[64];
		int32_t nx = branch_tokens(a, la[i], x, 64), ny = branch_tokens(b, lb[i], y, 64);
		same = nx == 6 && ny == 6 && !memcmp(x, y, 6 * sizeof(int32_t)) &&
		       engine_stream(a, la[i]) == engine_stream(b, lb[i]);
	}
	ok(same, "a loaded session continues with the same tokens as the original (2 branches x 6)");
	engine_free(a);
	engine_free(b);
}

static void test_replays(void)
{
	/* reasoning: prompt of 6, two children of 3 and 4 tokens, one grandchild of 2 */
	const char *wtext =
		"[{\"prompt\": \"Sort [3, 1, 2].\", \"data\": {"
		"\"0\": {\"id\": 0, \"value\": 6, \"start\": -5, \"end\": 0, \"children\": [1, 2]},"
		"\"1\": {\"id\": 1, \"value\": 3, \"start\": 1, \"end\": 3, \"children\": [3]},"
		"\"2\": {\"id\": 2, \"value\": 4, \"start\": 1, \"end\": 4, \"children\": []},"
		"\"3\": {\"id\": 3, \"value\": 2, \"start\": 4, \"end\": 5, \"children\": []}}}]";
	struct workload *w = workload_parse(wtext, strlen(wtext), "small", err);
	struct engine *e = make(TREEPLAN_DEFT_FLATTEN, 0);
	int rc = w ? engine_replay_begin(e, w, 0, 0, err) : -1;
	int64_t n = rc ? -1 : engine_run(e, 0, err);
	struct tree *t = engine_tree(e);
	struct tree_stats st;
	tree_stats(t, &st);
	ok(n == 5 && st.stored_tokens == 6 + 3 + 4 + 2 && st.n_leaves == 2 && st.n_live_leaves == 0 &&
		   tree_check(t, err) == 0,
	   "reasoning replay: 5 iterations, 15 tokens, 2 leaves (got %lld, %lld, %d)", (long long)n,
	   (long long)st.stored_tokens, st.n_leaves);
	const struct metrics_step *s3 = metrics_step_at(engine_metrics(e), 3);
	ok(s3->n_branches == 2 && s3->n_tokens == 2, "iteration 4: nodes 2 and 3 grow (%d branches, %d tokens)",
	   s3->n_branches, s3->n_tokens);
	engine_free(e);
	workload_free(w);

	/* speculative: 5 candidates ([0], [1], [0,0], [0,0,0]), accepted 2, 4, 1, 0 */
	const char *stext = "{\"Tree_ID\": 0, \"Token_Tree_size\": 5, \"Tree_Structure\": [[0], [1], [0, 0], [0, 0, 0]],"
			    "\"Records\": [{\"prompt\": [\"Hello there\"], \"Accept_length\": [2, 4, 1, 0], "
			    "\"Avg_accept_length\": 1.75}]}";
	w = workload_parse(stext, strlen(stext), "spec", err);
	e = make(TREEPLAN_TREE_MASK, 0);
	rc = w ? engine_replay_begin(e, w, 0, 40, err) : -1;
	t = engine_tree(e);
	int32_t leaf = -1;
	if (rc == 0)
		tree_live_leaves(t, &leaf, 1);
	int32_t before = rc == 0 ? tree_path_len(t, leaf) : 0;
	n = rc ? -1 : engine_run(e, 0, err);
	int32_t after = rc == 0 ? tree_path_len(t, leaf) : 0;
	tree_stats(t, &st);
	ok(rc == 0 && n == 4 && after - before == 2 + 4 + 1 + 1 && st.n_live_leaves == 1 && tree_check(t, err) == 0,
	   "spec replay: 4 steps append 2+4+1+1 tokens (got %lld steps, %d tokens)", (long long)n, after - before);
	const struct metrics_step *s1 = rc == 0 ? metrics_step_at(engine_metrics(e), 1) : NULL;
	ok(s1 && s1->n_queries == 2 + 4, "spec step 2 verifies 4 candidates plus the 2 tokens accepted before (%d)",
	   s1 ? s1->n_queries : -1);
	engine_free(e);
	workload_free(w);
}

static void test_io_only(void)
{
	struct workload *w = workload_fewshot(200, 8, 6, err);
	uint64_t kv[TREEPLAN_N_ALGO] = { 0 }, kv_seq = 0;
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		struct engine_params p = engine_default_params();
		p.algo = (enum treeplan_algo)a;
		struct engine *e = engine_new(&p, err);
		engine_replay_begin(e, w, 0, 0, err);
		engine_run(e, 0, err);
		struct metrics_summary s;
		metrics_summarize(engine_metrics(e), &s);
		kv[a] = s.kv_bytes;
		kv_seq = s.kv_bytes_seq;
		engine_free(e);
	}
	ok(kv[TREEPLAN_SEQ] == kv_seq && kv[TREEPLAN_DEFT_FLATTEN] < kv_seq / 4 && kv[TREEPLAN_DEFT_NODE] < kv_seq / 4,
	   "IO-only few-shot (200, 8 branches): deft reads under a quarter of seq's KV bytes (%llu, %llu vs %llu)",
	   (unsigned long long)kv[TREEPLAN_DEFT_FLATTEN], (unsigned long long)kv[TREEPLAN_DEFT_NODE],
	   (unsigned long long)kv_seq);
	workload_free(w);
}

/* Bad requests are refused with messages (IO-only engine: no model needed). */
static void test_bad_input(void)
{
	struct engine_policy_spec ps;
	ok(engine_policy_parse("sample:4", &ps, err) == 0 && ps.policy == ENGINE_POLICY_SAMPLE && ps.n == 4,
	   "policy sample:4 parses");
	ok(engine_policy_parse("beam:3:0.5", &ps, err) == 0 && ps.policy == ENGINE_POLICY_BEAM && ps.width == 3 &&
		   ps.alpha == 0.5f,
	   "policy beam:3:0.5 parses");
	ok(engine_policy_parse("wide:3", &ps, err) != 0 && strstr(err, "unknown policy 'wide:3'"), "unknown policy: %s",
	   err);
	ok(engine_policy_parse("sample:x", &ps, err) != 0 && strstr(err, "branch count"), "bad branch count: %s", err);
	ok(engine_policy_parse("beam:4:-1", &ps, err) != 0 && strstr(err, "length penalty"), "bad alpha: %s", err);
	struct engine_params p = engine_default_params();
	struct engine *e = engine_new(&p, err);
	ok(engine_step(e, err) == DT_ERR_ARG && strstr(err, "prefill first"), "a step before a prompt: %s", err);
	int32_t ids[8] = { 0 };
	ok(engine_prefill_tokens(e, ids, 0, err) == DT_ERR_ARG && strstr(err, "empty prompt"), "empty prompt: %s", err);
	ids[3] = 7;
	ok(engine_prefill_tokens(e, ids, 8, err) == DT_ERR_ARG && strstr(err, "prompt token 3 is 7"),
	   "a token outside the vocabulary: %s", err);
	ids[3] = 0;
	engine_prefill_tokens(e, ids, 8, err);
	ok(engine_fork(e, 99, 1, ENGINE_FORK_RESAMPLE, 0, NULL, err) == DT_ERR_ARG && strstr(err, "node 99 does not exist"),
	   "a fork at a node that does not exist: %s", err);
	ok(engine_sample_n(e, 0, 9, 2, NULL, err) == DT_ERR_ARG && strstr(err, "token index 9 out of range"),
	   "a fork past the node's end: %s", err);
	ok(engine_sample_n(e, 0, 0, 2, NULL, err) == DT_ERR_ARG, "a fork before the root's first token: %s", err);
	ok(engine_set_policy(e, ENGINE_POLICY_BEAM, 0, 1, err) == DT_ERR_ARG && strstr(err, "beam width"),
	   "beam width 0: %s", err);
	ok(engine_prune(e, 0, err) != 0 && strstr(err, "root"), "pruning the root: %s", err);
	engine_free(e);
	p.page_size = 0;
	ok(engine_new(&p, err) == NULL && strstr(err, "page size"), "page size 0: %s", err);
}

int main(void)
{
	seed = (uint64_t)time(NULL);
	diag("seed %llu", (unsigned long long)seed);
	tap_plan_lazy();
	test_bad_input();
	test_io_only();
	const char *path = tap_model_path();
	if (!path) {
		tap_skip("no default model (run ./bootstrap to fetch it)");
		return tap_done();
	}
	struct model_params mp = model_default_params();
	model = model_load(path, &mp, err);
	if (!model) {
		printf("Bail out! %s\n", err);
		return 1;
	}
	for (int a = 0; a < TREEPLAN_N_ALGO; a++)
		test_tree_equals_alone((enum treeplan_algo)a);
	test_beam();
	test_budget();
	test_forced_text();
	test_session();
	test_replays();
	model_free(model);
	return tap_done();
}
