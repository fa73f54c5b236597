/* test_workload.c — the DeFT workload files parse with their documented counts;
 * hostile files (wrong types, missing fields, cycles, dangling ids, absurd
 * sizes, negative lengths) are refused with a message naming file and field;
 * the few-shot shape. */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "tap.h"
#include "workload.h"

static const char *tmpdir;
static char err[DT_ERR_LEN];

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	return path;
}

/* The file is refused, and the message names the file and contains `what`. */
static void refused(const char *name, const char *text, const char *what)
{
	const char *path = write_file(name, text);
	err[0] = 0;
	struct workload *w = workload_load(path, err);
	ok(w == NULL && strstr(err, name) && strstr(err, what), "%s refused with \"%s\" (got: %s)", name, what,
	   w ? "accepted" : err);
	workload_free(w);
}

/* a small valid reasoning tree: root 0 (3 prompt tokens), children 1 and 2;
 * 2 has child 3 */
#define NODE(id, v, s, e, ch) "\"" #id "\": {\"id\": " #id ", \"value\": " #v ", \"start\": " #s ", \"end\": " #e ", \"children\": " ch "}"
#define TREE(nodes) "[{\"incompleted\": false, \"prompt\": \"hi\", \"data\": {" nodes "}}]"

static void test_small_valid(void)
{
	const char *path = write_file("ok.json",
				      TREE(NODE(0, 3, -2, 0, "[1, 2]") "," NODE(2, 4, 1, 4, "[3]") "," NODE(1, 2, 1, 2, "[]") ","
					   NODE(3, 5, 5, 9, "[]")));
	struct workload *w = workload_load(path, err);
	ok(w != NULL, "a small valid tree loads (%s)", w ? "ok" : err);
	if (!w)
		return;
	const struct workload_tree *t = &w->trees[0];
	ok(w->kind == WORKLOAD_REASONING && w->n_trees == 1 && t->n_nodes == 4, "one reasoning tree of 4 nodes");
	ok(t->nodes[0].id == 0 && t->nodes[0].parent == -1 && t->nodes[0].n_children == 2, "root first, 2 children");
	int bfs = 1;
	for (int i = 1; i < t->n_nodes; i++)
		bfs = bfs && t->nodes[i].parent >= 0 && t->nodes[i].parent < i;
	ok(bfs, "parents come before their children");
	ok(t->n_tokens == 14 && t->n_iters == 9 && t->max_live == 2, "14 tokens, 9 iterations, 2 live at most");
	int32_t live[4];
	int32_t n = workload_tree_live(t, 2, live);
	ok(n == 2 && t->nodes[live[0]].id + t->nodes[live[1]].id == 3, "iteration 2: nodes 1 and 2 grow");
	n = workload_tree_live(t, 6, live);
	ok(n == 1 && t->nodes[live[0]].id == 3 && t->nodes[live[0]].depth == 2, "iteration 6: node 3 (depth 2) grows");
	n = workload_tree_live(t, 0, live);
	ok(n == 1 && live[0] == 0 && workload_tree_live(t, 10, NULL) == 0,
	   "only the root (prompt) spans iteration 0; nothing grows after the end");
	workload_free(w);
}

static void test_hostile(void)
{
	refused("notjson.json", "[{\"prompt\": ", "not valid JSON");
	refused("number.json", "42", "not a workload");
	refused("empty.json", "[]", "expected 1 to");
	refused("treetype.json", "[7]", "tree 0 (expected an object, found an integer)");
	refused("noprompt.json", "[{\"data\": {" NODE(0, 1, 0, 0, "[]") "}}]", "missing field \"prompt\"");
	refused("prompttype.json", "[{\"prompt\": 5, \"data\": {" NODE(0, 1, 0, 0, "[]") "}}]",
		"field \"prompt\" (expected a string, found an integer)");
	refused("nodata.json", "[{\"prompt\": \"x\"}]", "missing field \"data\"");
	refused("valuetype.json", TREE("\"0\": {\"id\": 0, \"value\": \"3\", \"start\": -2, \"end\": 0, \"children\": []}"),
		"field \"value\" (expected an integer, found a string)");
	refused("valuereal.json", TREE("\"0\": {\"id\": 0, \"value\": 1.5, \"start\": -2, \"end\": 0, \"children\": []}"),
		"field \"value\" (expected an integer, found a real number)");
	refused("negvalue.json", TREE(NODE(0, -3, 4, 0, "[]")), "field \"value\" (expected an integer in [0,");
	refused("hugevalue.json", TREE(NODE(0, 1000000000, -999999999, 0, "[]")), "field \"value\"");
	refused("noend.json", TREE("\"0\": {\"id\": 0, \"value\": 1, \"start\": 0, \"children\": []}"),
		"missing field \"end\"");
	refused("idkey.json", TREE("\"0\": {\"id\": 1, \"value\": 1, \"start\": 0, \"end\": 0, \"children\": []}"),
		"field \"id\" (expected the key \"0\"");
	refused("childtype.json", TREE(NODE(0, 1, 0, 0, "{}")), "field \"children\" (expected an array");
	refused("childelem.json", TREE(NODE(0, 1, 0, 0, "[\"1\"]") "," NODE(1, 1, 1, 1, "[]")),
		"field \"children\" element 0 (expected a node id, found a string)");
	refused("dangling.json", TREE(NODE(0, 1, 0, 0, "[1, 9]") "," NODE(1, 1, 1, 1, "[]") "," NODE(2, 1, 1, 1, "[]")),
		"child 9 does not exist");
	refused("selfchild.json", TREE(NODE(0, 1, 0, 0, "[1]") "," NODE(1, 1, 1, 1, "[1]") "," NODE(2, 1, 1, 1, "[]")),
		"lists itself");
	refused("cycle.json",
		TREE(NODE(0, 1, 0, 0, "[]") "," NODE(1, 1, 1, 1, "[2]") "," NODE(2, 1, 2, 2, "[1]")),
		"cycle");
	refused("twoparents.json",
		TREE(NODE(0, 1, 0, 0, "[1, 2]") "," NODE(1, 1, 1, 1, "[2]") "," NODE(2, 1, 1, 1, "[]")),
		"two parents");
	refused("tworoots.json", TREE(NODE(0, 1, 0, 0, "[]") "," NODE(1, 1, 1, 1, "[]")), "two roots");
	refused("badend.json", TREE(NODE(0, 3, -2, 0, "[1]") "," NODE(1, 4, 1, 9, "[]")), "field \"end\"");
	refused("badstart.json", TREE(NODE(0, 3, -2, 0, "[1]") "," NODE(1, 4, 3, 6, "[]")),
		"field \"start\" (expected its parent 0's end + 1 = 1, found 3)");
	refused("rootend.json", TREE(NODE(0, 3, 0, 2, "[]")), "the root holds the prompt");
	refused("dupkey.json", "[{\"prompt\": \"x\", \"prompt\": \"y\", \"data\": {}}]", "not valid JSON");

	/* speculative trees */
#define SPEC(size, structure, records) \
	"{\"Tree_ID\": 1, \"Token_Tree_size\": " #size ", \"Tree_Structure\": " structure ", \"Records\": " records "}"
#define REC "[{\"prompt\": [\"a\"], \"Accept_length\": [1, 2, 3], \"Avg_accept_length\": 2.0}]"
	refused("spec_size.json", SPEC(5, "[[0], [1], [0, 0]]", REC), "expected Token_Tree_size - 1 = 4 paths, found 3");
	refused("spec_parent.json", SPEC(4, "[[0], [1], [2, 0]]", REC), "element 2: its parent path");
	refused("spec_dup.json", SPEC(4, "[[0], [1], [0]]", REC), "elements 0 and 2 are the same path");
	refused("spec_negrank.json", SPEC(3, "[[0], [-1]]", REC), "element 1 rank 0");
	refused("spec_emptypath.json", SPEC(3, "[[0], []]", REC), "expected a path of 1 to");
	refused("spec_hugesize.json", SPEC(100000000, "[]", REC), "field \"Token_Tree_size\"");
	refused("spec_accept.json",
		SPEC(3, "[[0], [0, 0]]", "[{\"prompt\": [], \"Accept_length\": [1, 4], \"Avg_accept_length\": 2}]"),
		"field \"Accept_length\" element 1 (expected 0 to 3");
	refused("spec_noavg.json", SPEC(2, "[[0]]", "[{\"prompt\": [], \"Accept_length\": [1]}]"),
		"missing field \"Avg_accept_length\"");
	refused("spec_norecords.json", SPEC(2, "[[0]]", "[]"), "field \"Records\" (expected 1 to");
	refused("spec_turn.json", SPEC(2, "[[0]]", "[{\"prompt\": [3], \"Accept_length\": [1], \"Avg_accept_length\": 1}]"),
		"field \"prompt\" element 0 (expected a string, found an integer)");
	refused("spec_noid.json", "{\"Token_Tree_size\": 2, \"Tree_Structure\": [[0]], \"Records\": " REC "}",
		"missing field \"Tree_ID\"");

	err[0] = 0;
	struct workload *w = workload_load("/nonexistent/dir/w.json", err);
	ok(!w && strstr(err, "/nonexistent/dir/w.json") && strstr(err, "cannot open"), "a missing file: %s", err);
	w = workload_load(tmpdir, err);
	ok(!w && strstr(err, "not a regular file"), "a directory: %s", err);

	/* a valid spec tree, paths out of order: breadth-first renumbering */
	const char *path = write_file("spec_ok.json", SPEC(5, "[[0, 1], [0], [1], [0, 0]]", REC));
	w = workload_load(path, err);
	ok(w && w->kind == WORKLOAD_SPEC && w->spec->size == 5 && w->spec->max_depth == 2,
	   "a small spec tree loads (%s)", w ? "ok" : err);
	if (w) {
		const struct workload_spec *s = w->spec;
		ok(s->parent[0] == -1 && s->parent[1] == 0 && s->parent[2] == 0 && s->parent[3] == 1 &&
			   s->parent[4] == 1 && s->rank[3] == 1 && s->rank[4] == 0,
		   "spec candidates: root, [0], [1], [0,1], [0,0] with their parents and ranks");
		ok(s->n_records == 1 && s->records[0].n_steps == 3 && s->records[0].accept[2] == 3 &&
			   !strcmp(s->records[0].turns[0], "a"),
		   "spec record: 3 steps, one turn");
	}
	workload_free(w);

	/* in-memory parse names the source given */
	w = workload_parse("{}", 2, "memory-thing", err);
	ok(!w && strstr(err, "memory-thing") && strstr(err, "Tree_ID"), "in-memory parse names its source: %s", err);
}

static void test_fewshot(void)
{
	struct workload *w = workload_fewshot(1000, 20, 400, err);
	ok(w && w->kind == WORKLOAD_FEWSHOT && w->n_trees == 1, "few-shot(1000, 20, 400) builds");
	if (w) {
		const struct workload_tree *t = &w->trees[0];
		ok(t->n_nodes == 21 && t->nodes[0].value == 1000 && t->nodes[0].start == -999 && t->nodes[0].end == 0,
		   "root: the 1000-token prompt, iterations -999 .. 0");
		ok(t->n_tokens == 1000 + 20 * 400 && t->n_iters == 400 && t->max_live == 20, "8000 branch tokens, 400 steps");
		ok(workload_tree_live(t, 1, NULL) == 20 && workload_tree_live(t, 400, NULL) == 20 &&
			   workload_tree_live(t, 401, NULL) == 0,
		   "20 branches live from iteration 1 to 400");
	}
	workload_free(w);
	ok(!workload_fewshot(0, 20, 10, err) && strstr(err, "prompt"), "few-shot with no prompt refused: %s", err);
	ok(!workload_fewshot(10, 0, 10, err) && strstr(err, "branches"), "few-shot with no branches refused: %s", err);
	ok(!workload_fewshot(10, 2, -1, err) && strstr(err, "steps"), "few-shot with negative steps refused: %s", err);
}

static struct workload *load_real(const char *name)
{
	const char *top = getenv("DT_TOP_SRCDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/../shared/workloads/deft/%s", top ? top : ".", name);
	if (access(path, R_OK) != 0)
		return NULL;
	struct workload *w = workload_load(path, err);
	ok(w != NULL, "%s parses (%s)", name, w ? "ok" : err);
	return w;
}

static void test_real(void)
{
	struct workload *w = load_real("sorting128ToT.json");
	if (!w) {
		tap_skip("shared/workloads not found beside the source tree");
	} else {
		int64_t nodes = 0, tokens = 0;
		for (int i = 0; i < w->n_trees; i++) {
			nodes += w->trees[i].n_nodes;
			tokens += w->trees[i].n_tokens;
		}
		ok(w->n_trees == 100, "sorting: 100 trees (got %d)", w->n_trees);
		ok(nodes == 8030 && tokens == 3135616, "sorting: 8030 nodes, 3135616 tokens (got %lld, %lld)",
		   (long long)nodes, (long long)tokens);
		const struct workload_tree *t = &w->trees[0];
		ok(t->n_nodes == 11 && t->nodes[0].value == 1104 && t->nodes[0].n_children == 10 && t->n_tokens == 11407 &&
			   t->n_iters == 1455 && t->max_live == 10 && workload_tree_live(t, 10, NULL) == 9,
		   "sorting tree 0: 11 nodes, prompt 1104, 11407 tokens, 1455 iterations, 10 live at most, 9 at iteration 10");
		ok(t->prompt && !strncmp(t->prompt, "<Instruction> Sort", 18) && t->incompleted, "sorting tree 0: prompt text and flag");
		workload_free(w);
	}
	w = load_real("docmergeToT.json");
	if (!w) {
		tap_skip("shared/workloads not found");
	} else {
		int64_t nodes = 0, tokens = 0;
		for (int i = 0; i < w->n_trees; i++) {
			nodes += w->trees[i].n_nodes;
			tokens += w->trees[i].n_tokens;
		}
		ok(w->n_trees == 50 && nodes == 1550 && tokens == 1557671,
		   "docmerge: 50 trees, 1550 nodes, 1557671 tokens (got %d, %lld, %lld)", w->n_trees, (long long)nodes,
		   (long long)tokens);
		const struct workload_tree *t = &w->trees[0];
		ok(t->n_nodes == 31 && t->n_tokens == 23376 && t->n_iters == 2375 && t->max_live == 16,
		   "docmerge tree 0: 31 nodes, 23376 tokens, 2375 iterations, 16 live at most");
		workload_free(w);
	}
	static const int sizes[] = { 32, 64, 128, 256 };
	for (size_t i = 0; i < DT_ARRAY_LEN(sizes); i++) {
		char name[64];
		snprintf(name, sizeof(name), "spec_tree_size%d.json", sizes[i]);
		w = load_real(name);
		if (!w) {
			tap_skip("shared/workloads not found");
			continue;
		}
		const struct workload_spec *s = w->spec;
		int parents_first = 1;
		for (int c = 1; c < s->size; c++)
			parents_first = parents_first && s->parent[c] >= 0 && s->parent[c] < c &&
					s->depth[c] == s->depth[s->parent[c]] + 1;
		ok(w->kind == WORKLOAD_SPEC && s->size == sizes[i] && s->max_depth == 4 && parents_first,
		   "%s: %d candidates, depth 4, parents before children", name, sizes[i]);
		double sum = 0;
		for (int k = 0; k < s->records[0].n_steps; k++)
			sum += s->records[0].accept[k];
		ok(s->n_records == 80 && s->records[0].n_steps == 700 && s->records[0].n_turns == 2 &&
			   sum / 700 > s->records[0].avg_accept - 1e-9 && sum / 700 < s->records[0].avg_accept + 1e-9,
		   "%s: 80 records of 700 steps; record 0's mean accept length equals its Avg_accept_length", name);
		workload_free(w);
	}
}

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) % n);
}

/* Random valid trees (ids shuffled, keys in random order) parse to the same
 * token count and live counts; breaking one child's start is caught. */
static void test_random(void)
{
	int good = 1, caught = 1;
	for (int round = 0; round < 20; round++) {
		int n = 1 + (int)rnd(60);
		int *parent = xcalloc((size_t)n, sizeof(int)), *value = xcalloc((size_t)n, sizeof(int));
		int *start = xcalloc((size_t)n, sizeof(int)), *id = xcalloc((size_t)n, sizeof(int));
		for (int i = 0; i < n; i++) {
			parent[i] = i ? (int)rnd((uint32_t)i) : -1;
			value[i] = i ? (int)rnd(20) : 1 + (int)rnd(50);
			start[i] = i ? start[parent[i]] + value[parent[i]] : 1 - value[0];
			id[i] = i;
		}
		for (int i = n - 1; i > 0; i--) { /* shuffle the file ids */
			int j = (int)rnd((uint32_t)i + 1), t = id[i];
			id[i] = id[j];
			id[j] = t;
		}
		for (int broken = 0; broken < 2; broken++) {
			if (broken && n < 2)
				break;
			int victim = broken ? 1 + (int)rnd((uint32_t)n - 1) : -1;
			json_t *data = json_object();
			for (int k = 0; k < n; k++) {
				int i = (k * 7 + 3) % n; /* insertion order differs from index order */
				if (n % 7 == 0)
					i = k;
				json_t *ch = json_array();
				for (int c = 0; c < n; c++)
					if (parent[c] == i)
						json_array_append_new(ch, json_integer(id[c]));
				int s = start[i] + (i == victim ? 1 : 0);
				json_t *nd = json_pack("{s:i, s:i, s:i, s:i, s:o}", "id", id[i], "value", value[i], "start", s,
						       "end", s + value[i] - 1, "children", ch);
				char key[16];
				snprintf(key, sizeof(key), "%d", id[i]);
				json_object_set_new(data, key, nd);
			}
			json_t *root = json_pack("[{s:b, s:s, s:o}]", "incompleted", 0, "prompt", "p", "data", data);
			char *text = json_dumps(root, JSON_COMPACT);
			json_decref(root);
			struct workload *w = workload_parse(text, strlen(text), "random", err);
			free(text);
			if (broken) {
				caught = caught && !w && strstr(err, "field \"start\"");
				workload_free(w);
				continue;
			}
			if (!w) {
				diag("round %d: %s", round, err);
				good = 0;
				continue;
			}
			int64_t tokens = 0;
			for (int i = 0; i < n; i++)
				tokens += value[i];
			const struct workload_tree *t = &w->trees[0];
			good = good && t->n_nodes == n && t->n_tokens == tokens && t->nodes[0].value == value[0];
			for (int it = 1; it < 200 && good; it++) {
				int live = 0;
				for (int i = 1; i < n; i++)
					live += start[i] <= it && it < start[i] + value[i];
				good = workload_tree_live(t, it, NULL) == live;
			}
			workload_free(w);
		}
		free(parent);
		free(value);
		free(start);
		free(id);
	}
	ok(good, "20 random trees parse with the same tokens and live branches per iteration");
	ok(caught, "a random child with a shifted start is refused");
}

int main(void)
{
	rng_state = (uint64_t)time(NULL);
	diag("seed %llu", (unsigned long long)rng_state);
	tmpdir = tap_tmpdir();
	tap_plan_lazy();
	test_small_valid();
	test_hostile();
	test_fewshot();
	test_random();
	test_real();
	return tap_done();
}
