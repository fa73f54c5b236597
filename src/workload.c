/*
 * workload.c — reads and validates tree workloads (reasoning lists and
 * speculative token trees) with jansson; builds the synthetic few-shot shape.
 *
 * DESIGN: the whole file is read into memory (bounded by
 * WORKLOAD_MAX_FILE_BYTES) and parsed with duplicate keys rejected.  A
 * reasoning tree is first collected as the file gives it (nodes in key order,
 * children as file ids), then checked as a graph: ids unique and equal to
 * their keys, every child id exists, no node has two parents, exactly one
 * parentless node, every node reachable from it (so no cycles).  The nodes
 * are then renumbered breadth-first from the root and the iteration ranges
 * checked (end = start + value - 1, root ends at iteration 0, a child starts
 * right after its parent ends).  A speculative tree's paths are sorted so
 * that duplicates sit side by side and a path's parent (the path minus its
 * last rank) is found by binary search.
 */
#include "config.h"

#include "workload.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "jsoncheck.h"

#define CTX_LEN 256 /* "path: tree N node M" prefixes */
#define MAX_ITER (1 << 26) /* iterations: node end / start bound */
#define MAX_TURNS 1024     /* prompt turns of a spec record */

// ---- freeing

static void tree_clear(struct workload_tree *t)
{
	free(t->prompt);
	free(t->nodes);
	free(t->children);
}

static void spec_free(struct workload_spec *s)
{
	if (!s)
		return;
	for (int32_t i = 0; i < s->n_records; i++) {
		for (int32_t j = 0; j < s->records[i].n_turns; j++)
			free(s->records[i].turns[j]);
		free(s->records[i].turns);
		free(s->records[i].accept);
	}
	free(s->records);
	free(s->parent);
	free(s->depth);
	free(s->rank);
	free(s);
}

void workload_free(struct workload *w)
{
	if (!w)
		return;
	for (int32_t i = 0; i < w->n_trees; i++)
		tree_clear(&w->trees[i]);
	free(w->trees);
	spec_free(w->spec);
	free(w->name);
	free(w);
}

const char *workload_kind_name(enum workload_kind k)
{
	switch (k) {
	case WORKLOAD_REASONING: return "reasoning";
	case WORKLOAD_SPEC: return "speculative";
	case WORKLOAD_FEWSHOT: return "few-shot";
	}
	return "?";
}

// ---- reasoning trees

/* a node as the file gives it */
struct raw_node {
	int32_t id, value, start, end;
	int32_t first_ref, n_refs; /* into refs[] (child ids) */
	int32_t parent;            /* raw index, -1 = none */
	int32_t new_index;         /* breadth-first index, -1 = not reached */
};

struct id_pair {
	int32_t id, idx;
};

static int cmp_id_pair(const void *a, const void *b)
{
	const struct id_pair *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

static int32_t find_id(const struct id_pair *map, int32_t n, int32_t id)
{
	struct id_pair key = { id, 0 };
	const struct id_pair *p = bsearch(&key, map, (size_t)n, sizeof(*map), cmp_id_pair);
	return p ? p->idx : -1;
}

struct event {
	int32_t iter, delta;
};

static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;
	if (x->iter != y->iter)
		return (x->iter > y->iter) - (x->iter < y->iter);
	return (x->delta > y->delta) - (x->delta < y->delta); /* ends (-1) before starts */
}

static int32_t max_live_of(const struct workload_tree *t)
{
	struct event *ev = xmallocarray((size_t)t->n_nodes * 2, sizeof(*ev));
	int32_t n = 0;
	for (int32_t i = 0; i < t->n_nodes; i++) {
		const struct workload_node *nd = &t->nodes[i];
		if (nd->parent < 0 || nd->value == 0)
			continue;
		ev[n++] = (struct event){ nd->start, +1 };
		ev[n++] = (struct event){ nd->end + 1, -1 };
	}
	qsort(ev, (size_t)n, sizeof(*ev), cmp_event);
	int32_t live = 0, best = 0;
	for (int32_t i = 0; i < n; i++) {
		live += ev[i].delta;
		best = DT_MAX(best, live);
	}
	free(ev);
	return best;
}

static int parse_tree(const json_t *jt, int32_t ti, const char *name, struct workload_tree *t, char *err)
{
	char ctx[CTX_LEN];
	snprintf(ctx, sizeof(ctx), "%s: tree %d", name, ti);
	if (!json_is_object(jt))
		return dt_err(err, "%s (expected an object, found %s)", ctx, jsoncheck_type(jt));
	const json_t *jp = jsoncheck_typed(jt, "prompt", JSON_STRING, "a string", ctx, err);
	if (!jp)
		return -1;
	const json_t *jinc = json_object_get(jt, "incompleted");
	if (jinc && !json_is_boolean(jinc))
		return dt_err(err, "%s: field \"incompleted\" (expected a boolean, found %s)", ctx, jsoncheck_type(jinc));
	const json_t *data = jsoncheck_typed(jt, "data", JSON_OBJECT, "an object of nodes", ctx, err);
	if (!data)
		return -1;
	size_t n = json_object_size(data);
	if (n < 1 || n > WORKLOAD_MAX_NODES)
		return dt_err(err, "%s: field \"data\" (expected 1 to %d nodes, found %zu)", ctx, WORKLOAD_MAX_NODES, n);

	struct raw_node *raw = xcalloc(n, sizeof(*raw));
	struct id_pair *map = xcalloc(n, sizeof(*map));
	int32_t *refs = NULL;
	int32_t n_refs = 0, cap_refs = 0;
	int rc = -1;
	int32_t i = 0;
	const char *key;
	json_t *jn;

	// collect the nodes as given
	json_object_foreach((json_t *)data, key, jn) {
		char nctx[CTX_LEN + 48];
		snprintf(nctx, sizeof(nctx), "%s node \"%.32s\"", ctx, key);
		if (!json_is_object(jn)) {
			dt_err(err, "%s (expected an object, found %s)", nctx, jsoncheck_type(jn));
			goto out;
		}
		int64_t id, value, start, end;
		if (jsoncheck_int(jn, "id", 0, INT32_MAX, &id, nctx, err) ||
		    jsoncheck_int(jn, "value", 0, WORKLOAD_MAX_NODE_TOKENS, &value, nctx, err) ||
		    jsoncheck_int(jn, "start", -WORKLOAD_MAX_NODE_TOKENS, MAX_ITER, &start, nctx, err) ||
		    jsoncheck_int(jn, "end", -WORKLOAD_MAX_NODE_TOKENS, MAX_ITER, &end, nctx, err))
			goto out;
		char idtxt[16];
		snprintf(idtxt, sizeof(idtxt), "%" PRId64, id);
		if (strcmp(idtxt, key) != 0) {
			dt_err(err, "%s: field \"id\" (expected the key \"%.32s\", found %s)", nctx, key, idtxt);
			goto out;
		}
		const json_t *jc = jsoncheck_typed(jn, "children", JSON_ARRAY, "an array of node ids", nctx, err);
		if (!jc)
			goto out;
		size_t nc = json_array_size(jc);
		if (nc > n - 1) {
			dt_err(err, "%s: field \"children\" (expected at most %zu children, found %zu)", nctx, n - 1, nc);
			goto out;
		}
		raw[i] = (struct raw_node){ .id = (int32_t)id, .value = (int32_t)value, .start = (int32_t)start,
					    .end = (int32_t)end, .first_ref = n_refs, .n_refs = (int32_t)nc,
					    .parent = -1, .new_index = -1 };
		for (size_t c = 0; c < nc; c++) {
			const json_t *jcid = json_array_get(jc, c);
			if (!json_is_integer(jcid) || json_integer_value(jcid) < 0 ||
			    json_integer_value(jcid) > INT32_MAX) {
				char fb[48];
				dt_err(err, "%s: field \"children\" element %zu (expected a node id, found %s)", nctx, c,
				       jsoncheck_found(jcid, fb, sizeof(fb)));
				goto out;
			}
			if (n_refs >= (int32_t)n - 1) {
				dt_err(err, "%s: more child links than nodes minus one (%zu nodes): some node has two parents",
				       ctx, n);
				goto out;
			}
			if (n_refs == cap_refs) {
				cap_refs = cap_refs ? 2 * cap_refs : 64;
				refs = xrealloc(refs, (size_t)cap_refs * sizeof(*refs));
			}
			refs[n_refs++] = (int32_t)json_integer_value(jcid);
		}
		map[i] = (struct id_pair){ (int32_t)id, i };
		i++;
	}

	// the graph: unique ids, existing children, one parent each, one root
	qsort(map, n, sizeof(*map), cmp_id_pair);
	for (size_t k = 1; k < n; k++)
		if (map[k].id == map[k - 1].id) {
			dt_err(err, "%s: node id %d appears twice", ctx, map[k].id);
			goto out;
		}
	for (int32_t k = 0; k < (int32_t)n; k++) {
		for (int32_t r = 0; r < raw[k].n_refs; r++) {
			int32_t cid = refs[raw[k].first_ref + r];
			int32_t c = find_id(map, (int32_t)n, cid);
			if (c < 0) {
				dt_err(err, "%s node %d: child %d does not exist", ctx, raw[k].id, cid);
				goto out;
			}
			if (c == k) {
				dt_err(err, "%s node %d: lists itself as a child (a cycle)", ctx, raw[k].id);
				goto out;
			}
			if (raw[c].parent >= 0) {
				dt_err(err, "%s node %d: has two parents (nodes %d and %d)", ctx, cid,
				       raw[raw[c].parent].id, raw[k].id);
				goto out;
			}
			raw[c].parent = k;
		}
	}
	int32_t root = -1;
	for (int32_t k = 0; k < (int32_t)n; k++) {
		if (raw[k].parent >= 0)
			continue;
		if (root >= 0) {
			dt_err(err, "%s: two roots (nodes %d and %d have no parent)", ctx, raw[root].id, raw[k].id);
			goto out;
		}
		root = k;
	}
	if (root < 0) {
		dt_err(err, "%s: no root (every node is a child: the links form a cycle)", ctx);
		goto out;
	}

	// breadth-first renumbering
	int32_t *order = xmallocarray(n, sizeof(*order));
	int32_t head = 0, tail = 0;
	order[tail++] = root;
	raw[root].new_index = 0;
	while (head < tail) {
		int32_t k = order[head++];
		for (int32_t r = 0; r < raw[k].n_refs; r++) {
			int32_t c = find_id(map, (int32_t)n, refs[raw[k].first_ref + r]);
			if (raw[c].new_index >= 0)
				continue; /* cannot happen with one parent each; kept as a guard */
			raw[c].new_index = tail;
			order[tail++] = c;
		}
	}
	if (tail != (int32_t)n) {
		int32_t lost = 0;
		for (int32_t k = 0; k < (int32_t)n; k++)
			if (raw[k].new_index < 0) {
				lost = raw[k].id;
				break;
			}
		free(order);
		dt_err(err, "%s: node %d is not reachable from root %d (the links form a cycle)", ctx, lost,
		       raw[root].id);
		goto out;
	}

	t->n_nodes = (int32_t)n;
	t->nodes = xcalloc(n, sizeof(*t->nodes));
	t->children = xmallocarray(n > 1 ? n - 1 : 1, sizeof(*t->children));
	int32_t n_children = 0;
	for (int32_t j = 0; j < (int32_t)n; j++) {
		const struct raw_node *r = &raw[order[j]];
		struct workload_node *nd = &t->nodes[j];
		nd->id = r->id;
		nd->value = r->value;
		nd->start = r->start;
		nd->end = r->end;
		nd->parent = r->parent >= 0 ? raw[r->parent].new_index : -1;
		nd->depth = nd->parent >= 0 ? t->nodes[nd->parent].depth + 1 : 0;
		nd->first_child = n_children;
		nd->n_children = r->n_refs;
		for (int32_t c = 0; c < r->n_refs; c++)
			t->children[n_children++] = raw[find_id(map, (int32_t)n, refs[r->first_ref + c])].new_index;
	}
	free(order);

	// iteration ranges
	int64_t tokens = 0;
	for (int32_t j = 0; j < t->n_nodes; j++) {
		const struct workload_node *nd = &t->nodes[j];
		if ((int64_t)nd->end != (int64_t)nd->start + nd->value - 1) {
			dt_err(err, "%s node %d: field \"end\" (expected start + value - 1 = %" PRId64 ", found %d)", ctx,
			       nd->id, (int64_t)nd->start + nd->value - 1, nd->end);
			goto out;
		}
		if (nd->parent < 0) {
			if (nd->value < 1 || nd->end != 0) {
				dt_err(err, "%s node %d: the root holds the prompt (expected value >= 1 and end 0, found value %d, end %d)",
				       ctx, nd->id, nd->value, nd->end);
				goto out;
			}
		} else {
			const struct workload_node *p = &t->nodes[nd->parent];
			if (nd->start != p->end + 1) {
				dt_err(err, "%s node %d: field \"start\" (expected its parent %d's end + 1 = %d, found %d)", ctx,
				       nd->id, p->id, p->end + 1, nd->start);
				goto out;
			}
		}
		tokens += nd->value;
		if (tokens > WORKLOAD_MAX_TREE_TOKENS) {
			dt_err(err, "%s: more than %d tokens in the tree", ctx, WORKLOAD_MAX_TREE_TOKENS);
			goto out;
		}
		t->n_iters = DT_MAX(t->n_iters, nd->end);
	}
	t->n_tokens = tokens;
	t->prompt = xstrdup(json_string_value(jp));
	t->incompleted = jinc && json_is_true(jinc);
	t->max_live = max_live_of(t);
	rc = 0;
out:
	free(raw);
	free(map);
	free(refs);
	return rc;
}

static struct workload *parse_reasoning(const json_t *root, const char *name, char *err)
{
	size_t n = json_array_size(root);
	if (n < 1 || n > WORKLOAD_MAX_TREES) {
		dt_err(err, "%s: a reasoning workload (expected 1 to %d trees, found %zu)", name, WORKLOAD_MAX_TREES, n);
		return NULL;
	}
	struct workload *w = xcalloc(1, sizeof(*w));
	w->kind = WORKLOAD_REASONING;
	w->name = xstrdup(name);
	w->trees = xcalloc(n, sizeof(*w->trees));
	for (size_t i = 0; i < n; i++) {
		if (parse_tree(json_array_get(root, i), (int32_t)i, name, &w->trees[i], err)) {
			tree_clear(&w->trees[i]);
			workload_free(w);
			return NULL;
		}
		w->n_trees = (int32_t)i + 1;
	}
	return w;
}

// ---- speculative token trees

struct spec_path {
	const int32_t *r; /* ranks */
	int32_t len;
	int32_t file_idx; /* 0-based in Tree_Structure */
};

static int cmp_path(const void *a, const void *b)
{
	const struct spec_path *x = a, *y = b;
	int32_t m = DT_MIN(x->len, y->len);
	for (int32_t i = 0; i < m; i++)
		if (x->r[i] != y->r[i])
			return (x->r[i] > y->r[i]) - (x->r[i] < y->r[i]);
	return (x->len > y->len) - (x->len < y->len);
}

static int cmp_depth_then_file(const void *a, const void *b)
{
	const struct spec_path *x = a, *y = b;
	if (x->len != y->len)
		return (x->len > y->len) - (x->len < y->len);
	return (x->file_idx > y->file_idx) - (x->file_idx < y->file_idx);
}

static int parse_spec_record(const json_t *jr, int32_t ri, int32_t max_accept, const char *name,
			     struct workload_spec_record *rec, char *err)
{
	char ctx[CTX_LEN];
	snprintf(ctx, sizeof(ctx), "%s: record %d", name, ri);
	if (!json_is_object(jr))
		return dt_err(err, "%s (expected an object, found %s)", ctx, jsoncheck_type(jr));
	const json_t *jp = jsoncheck_typed(jr, "prompt", JSON_ARRAY, "an array of prompt turns", ctx, err);
	if (!jp)
		return -1;
	size_t nt = json_array_size(jp);
	if (nt > MAX_TURNS)
		return dt_err(err, "%s: field \"prompt\" (expected at most %d turns, found %zu)", ctx, MAX_TURNS, nt);
	for (size_t i = 0; i < nt; i++)
		if (!json_is_string(json_array_get(jp, i)))
			return dt_err(err, "%s: field \"prompt\" element %zu (expected a string, found %s)", ctx, i,
				      jsoncheck_type(json_array_get(jp, i)));
	const json_t *ja = jsoncheck_typed(jr, "Accept_length", JSON_ARRAY, "an array of accepted lengths", ctx, err);
	if (!ja)
		return -1;
	size_t ns = json_array_size(ja);
	if (ns < 1 || ns > WORKLOAD_MAX_RECORD_STEPS)
		return dt_err(err, "%s: field \"Accept_length\" (expected 1 to %d steps, found %zu)", ctx,
			      WORKLOAD_MAX_RECORD_STEPS, ns);
	for (size_t i = 0; i < ns; i++) {
		const json_t *v = json_array_get(ja, i);
		if (!json_is_integer(v))
			return dt_err(err, "%s: field \"Accept_length\" element %zu (expected an integer, found %s)", ctx, i,
				      jsoncheck_type(v));
		if (json_integer_value(v) < 0 || json_integer_value(v) > max_accept)
			return dt_err(err, "%s: field \"Accept_length\" element %zu (expected 0 to %d: the tree depth + 1, found %lld)",
				      ctx, i, max_accept, (long long)json_integer_value(v));
	}
	const json_t *javg = json_object_get(jr, "Avg_accept_length");
	if (!javg)
		return dt_err(err, "%s: missing field \"Avg_accept_length\" (expected a number)", ctx);
	if (!json_is_number(javg))
		return dt_err(err, "%s: field \"Avg_accept_length\" (expected a number, found %s)", ctx, jsoncheck_type(javg));

	rec->n_turns = (int32_t)nt;
	rec->turns = xcalloc(nt ? nt : 1, sizeof(*rec->turns));
	for (size_t i = 0; i < nt; i++)
		rec->turns[i] = xstrdup(json_string_value(json_array_get(jp, i)));
	rec->n_steps = (int32_t)ns;
	rec->accept = xmallocarray(ns, sizeof(*rec->accept));
	for (size_t i = 0; i < ns; i++)
		rec->accept[i] = (int32_t)json_integer_value(json_array_get(ja, i));
	rec->avg_accept = json_number_value(javg);
	return 0;
}

static struct workload *parse_spec(const json_t *root, const char *name, char *err)
{
	char ctx[CTX_LEN];
	snprintf(ctx, sizeof(ctx), "%s", name);
	int64_t tree_id, size;
	if (jsoncheck_int(root, "Tree_ID", INT32_MIN, INT32_MAX, &tree_id, ctx, err) ||
	    jsoncheck_int(root, "Token_Tree_size", 1, WORKLOAD_MAX_SPEC_SIZE, &size, ctx, err))
		return NULL;
	const json_t *js = jsoncheck_typed(root, "Tree_Structure", JSON_ARRAY, "an array of paths", ctx, err);
	if (!js)
		return NULL;
	const json_t *jrec = jsoncheck_typed(root, "Records", JSON_ARRAY, "an array of records", ctx, err);
	if (!jrec)
		return NULL;
	size_t np = json_array_size(js);
	if (np != (size_t)size - 1) {
		dt_err(err, "%s: field \"Tree_Structure\" (expected Token_Tree_size - 1 = %" PRId64 " paths, found %zu)",
		       name, size - 1, np);
		return NULL;
	}
	size_t nr = json_array_size(jrec);
	if (nr < 1 || nr > WORKLOAD_MAX_RECORDS) {
		dt_err(err, "%s: field \"Records\" (expected 1 to %d records, found %zu)", name, WORKLOAD_MAX_RECORDS, nr);
		return NULL;
	}

	// paths
	int32_t *ranks = xmallocarray(np * WORKLOAD_MAX_SPEC_DEPTH + 1, sizeof(*ranks));
	struct spec_path *paths = xcalloc(np ? np : 1, sizeof(*paths));
	struct workload *w = NULL;
	int32_t max_depth = 0;
	for (size_t i = 0; i < np; i++) {
		const json_t *jpath = json_array_get(js, i);
		if (!json_is_array(jpath)) {
			dt_err(err, "%s: field \"Tree_Structure\" element %zu (expected an array of child ranks, found %s)",
			       name, i, jsoncheck_type(jpath));
			goto fail;
		}
		size_t len = json_array_size(jpath);
		if (len < 1 || len > WORKLOAD_MAX_SPEC_DEPTH) {
			dt_err(err, "%s: field \"Tree_Structure\" element %zu (expected a path of 1 to %d ranks, found %zu)",
			       name, i, WORKLOAD_MAX_SPEC_DEPTH, len);
			goto fail;
		}
		int32_t *r = ranks + i * WORKLOAD_MAX_SPEC_DEPTH;
		for (size_t k = 0; k < len; k++) {
			const json_t *v = json_array_get(jpath, k);
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) >= WORKLOAD_MAX_SPEC_SIZE) {
				char fb[48];
				dt_err(err, "%s: field \"Tree_Structure\" element %zu rank %zu (expected an integer in [0, %d), found %s)",
				       name, i, k, WORKLOAD_MAX_SPEC_SIZE, jsoncheck_found(v, fb, sizeof(fb)));
				goto fail;
			}
			r[k] = (int32_t)json_integer_value(v);
		}
		paths[i] = (struct spec_path){ r, (int32_t)len, (int32_t)i };
		max_depth = DT_MAX(max_depth, (int32_t)len);
	}
	// duplicates and parents: sort lexicographically (a prefix sorts before its extensions)
	struct spec_path *sorted = xcalloc(np ? np : 1, sizeof(*sorted));
	memcpy(sorted, paths, np * sizeof(*paths));
	qsort(sorted, np, sizeof(*sorted), cmp_path);
	for (size_t i = 1; i < np; i++)
		if (cmp_path(&sorted[i - 1], &sorted[i]) == 0) {
			dt_err(err, "%s: field \"Tree_Structure\": elements %d and %d are the same path", name,
			       DT_MIN(sorted[i - 1].file_idx, sorted[i].file_idx),
			       DT_MAX(sorted[i - 1].file_idx, sorted[i].file_idx));
			free(sorted);
			goto fail;
		}
	int32_t *parent_file = xmallocarray(np ? np : 1, sizeof(*parent_file)); /* -1 = root */
	for (size_t i = 0; i < np; i++) {
		parent_file[i] = -1;
		if (paths[i].len == 1)
			continue;
		struct spec_path key = { paths[i].r, paths[i].len - 1, 0 };
		const struct spec_path *p = bsearch(&key, sorted, np, sizeof(*sorted), cmp_path);
		if (!p) {
			dt_err(err, "%s: field \"Tree_Structure\" element %zu: its parent path (the path without its last rank) is missing",
			       name, i);
			free(sorted);
			free(parent_file);
			goto fail;
		}
		parent_file[i] = p->file_idx;
	}
	// breadth-first order: candidate 0 is the root, then by depth, ties in file order
	memcpy(sorted, paths, np * sizeof(*paths));
	qsort(sorted, np, sizeof(*sorted), cmp_depth_then_file);
	int32_t *new_of_file = xmallocarray(np ? np : 1, sizeof(*new_of_file));
	for (size_t i = 0; i < np; i++)
		new_of_file[sorted[i].file_idx] = (int32_t)i + 1;

	w = xcalloc(1, sizeof(*w));
	w->kind = WORKLOAD_SPEC;
	w->name = xstrdup(name);
	struct workload_spec *s = w->spec = xcalloc(1, sizeof(*s));
	s->tree_id = (int32_t)tree_id;
	s->size = (int32_t)size;
	s->max_depth = max_depth;
	s->parent = xmallocarray((size_t)size, sizeof(*s->parent));
	s->depth = xmallocarray((size_t)size, sizeof(*s->depth));
	s->rank = xmallocarray((size_t)size, sizeof(*s->rank));
	s->parent[0] = -1;
	s->depth[0] = 0;
	s->rank[0] = 0;
	for (size_t i = 0; i < np; i++) {
		int32_t c = new_of_file[i];
		s->parent[c] = parent_file[i] < 0 ? 0 : new_of_file[parent_file[i]];
		s->depth[c] = paths[i].len;
		s->rank[c] = paths[i].r[paths[i].len - 1];
	}
	free(sorted);
	free(parent_file);
	free(new_of_file);

	s->records = xcalloc(nr, sizeof(*s->records));
	for (size_t i = 0; i < nr; i++) {
		if (parse_spec_record(json_array_get(jrec, i), (int32_t)i, max_depth + 1, name, &s->records[i], err)) {
			s->n_records = (int32_t)i + 1; /* frees the partial one too */
			goto fail;
		}
		s->n_records = (int32_t)i + 1;
	}
	free(ranks);
	free(paths);
	return w;
fail:
	free(ranks);
	free(paths);
	workload_free(w);
	return NULL;
}

// ---- entry points

struct workload *workload_parse(const char *text, size_t len, const char *name, char *err)
{
	if (len > WORKLOAD_MAX_FILE_BYTES) {
		dt_err(err, "%s: too large for a workload (expected at most %u bytes, found %zu)", name,
		       WORKLOAD_MAX_FILE_BYTES, len);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		dt_err(err, "%s:%d:%d: not valid JSON (%s)", name, jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	struct workload *w = NULL;
	if (json_is_array(root))
		w = parse_reasoning(root, name, err);
	else if (json_is_object(root))
		w = parse_spec(root, name, err);
	else
		dt_err(err, "%s: not a workload (expected a list of reasoning trees or a speculative tree object, found %s)",
		       name, jsoncheck_type(root));
	json_decref(root);
	return w;
}

struct workload *workload_load(const char *path, char *err)
{
	size_t n;
	char *buf = dt_read_file(path, WORKLOAD_MAX_FILE_BYTES, "a workload", &n, err);
	if (!buf)
		return NULL;
	struct workload *w = workload_parse(buf, n, path, err);
	free(buf);
	return w;
}

struct workload *workload_fewshot(int32_t prompt_len, int32_t n_branches, int32_t n_steps, char *err)
{
	if (prompt_len < 1 || prompt_len > WORKLOAD_MAX_NODE_TOKENS) {
		dt_err(err, "few-shot: prompt length (expected 1 to %d tokens, found %d)", WORKLOAD_MAX_NODE_TOKENS,
		       prompt_len);
		return NULL;
	}
	if (n_branches < 1 || n_branches >= WORKLOAD_MAX_NODES) {
		dt_err(err, "few-shot: branches (expected 1 to %d, found %d)", WORKLOAD_MAX_NODES - 1, n_branches);
		return NULL;
	}
	if (n_steps < 1 || n_steps > WORKLOAD_MAX_NODE_TOKENS) {
		dt_err(err, "few-shot: steps (expected 1 to %d, found %d)", WORKLOAD_MAX_NODE_TOKENS, n_steps);
		return NULL;
	}
	if ((int64_t)prompt_len + (int64_t)n_branches * n_steps > WORKLOAD_MAX_TREE_TOKENS) {
		dt_err(err, "few-shot: %d + %d x %d tokens (expected at most %d)", prompt_len, n_branches, n_steps,
		       WORKLOAD_MAX_TREE_TOKENS);
		return NULL;
	}
	struct workload *w = xcalloc(1, sizeof(*w));
	char name[64];
	snprintf(name, sizeof(name), "few-shot(%d,%d,%d)", prompt_len, n_branches, n_steps);
	w->kind = WORKLOAD_FEWSHOT;
	w->name = xstrdup(name);
	w->n_trees = 1;
	w->trees = xcalloc(1, sizeof(*w->trees));
	struct workload_tree *t = &w->trees[0];
	t->n_nodes = 1 + n_branches;
	t->nodes = xcalloc((size_t)t->n_nodes, sizeof(*t->nodes));
	t->children = xmallocarray((size_t)n_branches, sizeof(*t->children));
	t->nodes[0] = (struct workload_node){ .id = 0, .parent = -1, .value = prompt_len, .start = 1 - prompt_len,
					      .end = 0, .first_child = 0, .n_children = n_branches, .depth = 0 };
	for (int32_t i = 1; i <= n_branches; i++) {
		t->nodes[i] = (struct workload_node){ .id = i, .parent = 0, .value = n_steps, .start = 1,
						      .end = n_steps, .first_child = n_branches, .n_children = 0,
						      .depth = 1 };
		t->children[i - 1] = i;
	}
	t->n_iters = n_steps;
	t->n_tokens = prompt_len + (int64_t)n_branches * n_steps;
	t->max_live = n_branches;
	return w;
}

int32_t workload_tree_live(const struct workload_tree *t, int32_t iter, int32_t *out)
{
	int32_t n = 0;
	for (int32_t i = 0; i < t->n_nodes; i++) {
		const struct workload_node *nd = &t->nodes[i];
		if (nd->value > 0 && nd->start <= iter && iter <= nd->end) {
			if (out)
				out[n] = i;
			n++;
		}
	}
	return n;
}
