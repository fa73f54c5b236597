/*
 * engine.c — tree decoding over the paged KV pool (design in engine.h).
 *
 * DESIGN
 *   What the engine adds to the tree: for every node id, `done` = how many of
 *   its tokens have their K/V computed (always a prefix of the node; when a
 *   node has pending tokens, so do all its descendants), `stream` = the RNG
 *   stream of the branch whose tip it is, and `score` = the branch's summed
 *   log-probability (beam search).  Every tree operation that may split a
 *   node goes through fork_at(), which moves `done` and the kept logits to
 *   the two halves.
 *
 *   A step gathers its queries (pending tokens first, depth-first; then
 *   recompute queries), resolves for every live leaf where its next-token
 *   logits come from (a query of this step, a row kept from the previous
 *   forward, or a recompute query), checks the pages the appends will need,
 *   and runs the forward pass in n_batch chunks.  Logits rows live in two
 *   buffers: `cur` (this forward) and `keep` (the previous one); they swap
 *   after every forward, so the prefill's last row serves the first tokens of
 *   branches forked at the prompt's end, and the row a token was sampled from
 *   serves a re-sample of that token.
 *
 *   Streams: the root branch has root_stream, every new branch the next
 *   number; a leaf keeps its stream while it grows and when it is split.
 */
#include "config.h"

#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "backend.h"
#include "cpu_tree_attn.h"
#include "kvpool.h"
#include "metrics.h"
#include "model.h"
#include "session.h"
#include "tokenizer.h"
#include "tree.h"
#include "workload.h"

#define MAX_DRAFT 64 /* spec replay: drafted candidate tokens per step */

/* few-shot replays: a prompt of this text repeated to the wanted length */
static const char fewshot_text[] =
	"Example. Input: a list of numbers. Task: sort it in ascending order and explain each step. "
	"Input: [5, 1, 0, 1, 2, 0, 4, 8, 1, 9, 5, 1, 3, 3]. Output: [0, 0, 1, 1, 1, 1, 2, 3, 3, 4, 5, 5, 8, 9]. ";

struct lkey {
	int32_t node, index;
};

/* where a live leaf's next-token logits come from */
struct src {
	int32_t leaf;
	int32_t q;    /* query of this step with want, or -1 */
	int32_t keep; /* row in keep, or -1 */
};

struct logits_buf {
	float *data;       /* (n, n_vocab) */
	struct lkey *key;  /* (n) */
	int32_t n, cap;
};

struct replay {
	bool on;
	enum workload_kind kind;
	const struct workload_tree *wt;
	int32_t *tree_id;  /* (wt->n_nodes) tree node of each workload node */
	int32_t iter;      /* iterations done */
	int64_t length;
	const struct workload_spec *spec;
	const struct workload_spec_record *rec;
	int32_t leaf;      /* spec: the sequence's leaf */
	int32_t k;         /* spec: verification steps done */
	int32_t *cand;     /* spec: (spec->size) tree node of each candidate */
	int32_t draft[MAX_DRAFT];
	int32_t n_draft;
};

struct engine {
	struct engine_params p;
	struct model *model;
	bool own_model;
	struct model_hparams hp;
	struct tokenizer *tok;
	int32_t n_vocab;
	struct kvpool *pool;
	struct tree *tree;
	struct treeplan *plan, *plan_seq;
	struct backend *be; /* where attention runs (NULL in IO-only mode) */
	struct sampler_work *sw;
	struct metrics *metrics;
	atomic_bool cancel;
	enum engine_policy policy;
	int32_t beam_width;
	float beam_alpha;
	char model_path[1024];

	/* by node id */
	int32_t cap_ids;
	int32_t *done;
	int64_t *stream;
	double *score;
	int32_t *qfirst; /* this step: first pending query of the node, -1 */
	int32_t *qrec;   /* this step: recompute query of the node's last token, -1 */

	uint64_t next_stream;
	int32_t prompt_len;
	int64_t n_steps, n_generated;

	/* the queries of the current step */
	int32_t nq, cap_q;
	struct treeplan_query *q;
	int32_t *tok_ids, *pos, *page, *slot, *row;
	bool *store, *want;
	int32_t n_want;

	/* live leaves and their logits sources */
	int32_t *leaves;
	struct src *src;
	int32_t cap_leaves;

	struct logits_buf lb[2];
	int cur; /* lb[cur] is filled by the forward, lb[!cur] is kept */

	/* forward pass state */
	const struct treeplan_flat *flat;
	int32_t sub_off;
	int64_t attn_ns;
	int64_t attn_dev_ns;     /* GPU time of the attention kernels this step */
	float *stk, *stv;        /* stored rows compacted for the backend */
	int32_t *stpage, *stslot;
	int32_t cap_st;
	struct metrics_io io, io_seq;

	/* sampling scratch */
	int32_t *hist;
	int32_t cap_hist;
	int32_t alt_ids[TREE_MAX_ALT + 2 * 64];
	float alt_p[TREE_MAX_ALT + 2 * 64];

	struct replay rp;
};

// ---- params

// ---- the attention backend

static struct backend *new_backend(struct engine *e, enum backend_kind kind, char *err)
{
	struct backend_params bp = backend_default_params();
	bp.n_head = e->hp.n_head;
	bp.n_kv_head = e->hp.n_head_kv;
	bp.head_dim = e->hp.head_dim;
	bp.pool = e->pool;
	bp.tp = model_threadpool(e->model);
	bp.portable = e->p.attn_portable;
	return backend_new(kind, &bp, err);
}

/* Bytes per K/V element the attention reads: the IO model's element size. */
static int32_t kv_elt_bytes(const struct engine *e)
{
	return e->be ? backend_info(e->be)->elt_bytes : kvpool_params(e->pool)->elt_bytes;
}

int engine_set_backend(struct engine *e, enum backend_kind kind, char *err)
{
	if (!e->model)
		return dt_err(err, "backend: an IO-only engine runs no attention"), DT_ERR_ARG;
	if (e->be && backend_info(e->be)->kind == kind)
		return DT_OK;
	struct backend *nb = new_backend(e, kind, err);
	if (!nb)
		return DT_ERR_UNSUPPORTED;
	backend_free(e->be);
	e->be = nb;
	e->p.backend = kind;
	return DT_OK;
}

const struct backend_info *engine_backend_info(const struct engine *e)
{
	return e->be ? backend_info(e->be) : NULL;
}

struct engine_params engine_default_params(void)
{
	struct treeplan_params tp = treeplan_default_params();
	return (struct engine_params){
		.model_path = NULL,
		.model = NULL,
		.n_threads = dt_ncpu(),
		.algo = tp.algo,
		.block_size = tp.block_size,
		.tile_queries = tp.tile_queries,
		.page_size = 16,
		.kv_budget = (size_t)1 << 30,
		.n_alt = 4,
		.sampler = sampler_default_params(),
		.max_branch_tokens = 256,
		.max_total_tokens = 0,
		.root_stream = 0,
		.io_compare = true,
		.io_heads = { .n_layer = 1, .n_head = 32, .n_kv_head = 8, .head_dim = 128, .elt_bytes = 2 },
	};
}

// ---- per-id arrays

static void ensure_ids(struct engine *e)
{
	int32_t n = e->tree ? tree_n_ids(e->tree) : 0;
	if (n <= e->cap_ids)
		return;
	int32_t c = e->cap_ids ? e->cap_ids : 64;
	while (c < n)
		c *= 2;
	e->done = xrealloc(e->done, (size_t)c * sizeof(*e->done));
	e->stream = xrealloc(e->stream, (size_t)c * sizeof(*e->stream));
	e->score = xrealloc(e->score, (size_t)c * sizeof(*e->score));
	e->qfirst = xrealloc(e->qfirst, (size_t)c * sizeof(*e->qfirst));
	e->qrec = xrealloc(e->qrec, (size_t)c * sizeof(*e->qrec));
	for (int32_t i = e->cap_ids; i < c; i++) {
		e->done[i] = 0;
		e->stream[i] = -1;
		e->score[i] = 0;
		e->qfirst[i] = -1;
		e->qrec[i] = -1;
	}
	e->cap_ids = c;
}

static void new_branch(struct engine *e, int32_t leaf, double score)
{
	ensure_ids(e);
	e->stream[leaf] = (int64_t)e->next_stream++;
	e->score[leaf] = score;
	e->done[leaf] = 0;
	metrics_branch_start(e->metrics, (uint64_t)e->stream[leaf], dt_now_ns());
}

// ---- tree operations that keep `done` and the kept logits right

/* tree_fork with bookkeeping: when the fork splits `node`, the upper part
 * takes the first `cut` tokens' state. */
static int32_t fork_at(struct engine *e, int32_t node, int32_t index, char *err)
{
	const struct tree_node *nd = tree_node(e->tree, node);
	if (!nd || nd->status == TREE_PRUNED)
		return dt_err(err, "fork: node %d is not in the tree", node), DT_ERR_ARG;
	int32_t old_parent = nd->parent, d = e->done[node];
	int32_t id = tree_fork(e->tree, node, index, err);
	if (id < 0)
		return DT_ERR_ARG;
	ensure_ids(e);
	nd = tree_node(e->tree, node);
	if (nd->parent != old_parent) { /* split: the upper part is the new parent */
		int32_t up = nd->parent, cut = tree_node(e->tree, up)->n_tokens;
		e->done[up] = DT_MIN(d, cut);
		e->done[node] = DT_MAX(0, d - cut);
		e->stream[up] = -1;
		for (int b = 0; b < 2; b++) { /* kept rows, and this step's rows before the swap */
			struct logits_buf *kb = &e->lb[b];
			int32_t n = b == e->cur ? e->n_want : kb->n;
			for (int32_t i = 0; i < n && i < kb->cap; i++)
				if (kb->key[i].node == node) {
					if (kb->key[i].index < cut)
						kb->key[i].node = up;
					else
						kb->key[i].index -= cut;
				}
		}
	}
	e->done[id] = 0;
	e->stream[id] = -1;
	return id;
}

/* A new child at the end of node (which must hold tokens); a childless live
 * node is marked finished first so that the fork adds a child instead of
 * splitting it (the node stops growing itself). */
static int32_t child_at_end(struct engine *e, int32_t node, char *err)
{
	const struct tree_node *nd = tree_node(e->tree, node);
	if (!nd || nd->status == TREE_PRUNED)
		return dt_err(err, "node %d is not in the tree", node), DT_ERR_ARG;
	if (nd->n_tokens == 0)
		return dt_err(err, "node %d has no tokens to branch from", node), DT_ERR_ARG;
	if (nd->n_children == 0 && nd->status == TREE_LIVE)
		tree_set_status(e->tree, node, TREE_FINISHED, NULL);
	return fork_at(e, node, nd->n_tokens, err);
}

/* Prunes a dead leaf and every ancestor left without another child (never the root). */
static void prune_up(struct engine *e, int32_t leaf)
{
	int32_t root = tree_root(e->tree), n = leaf;
	for (;;) {
		const struct tree_node *nd = tree_node(e->tree, n);
		if (nd->parent < 0 || nd->parent == root)
			break;
		if (tree_node(e->tree, nd->parent)->n_children != 1)
			break;
		n = nd->parent;
	}
	if (n != root)
		tree_prune(e->tree, n, NULL);
}

// ---- lifetime

static void logits_reserve(struct engine *e, struct logits_buf *b, int32_t n)
{
	if (n <= b->cap)
		return;
	int32_t c = b->cap ? b->cap : 8;
	while (c < n)
		c *= 2;
	b->data = xrealloc(b->data, (size_t)c * (size_t)e->n_vocab * sizeof(float));
	b->key = xrealloc(b->key, (size_t)c * sizeof(*b->key));
	b->cap = c;
}

struct engine *engine_new(const struct engine_params *p, char *err)
{
	if (p->page_size < 1 || p->page_size > 4096)
		return dt_err(err, "engine: page size (expected 1 .. 4096, found %d)", p->page_size), NULL;
	if (p->block_size < 1 || p->tile_queries < 1)
		return dt_err(err, "engine: block size and tile size must be >= 1 (found %d, %d)", p->block_size,
			      p->tile_queries),
		       NULL;
	if (p->n_alt < 0 || p->n_alt > TREE_MAX_ALT)
		return dt_err(err, "engine: alternatives per token (expected 0 .. %d, found %d)", TREE_MAX_ALT, p->n_alt),
		       NULL;
	if (p->max_branch_tokens < 0 || p->max_total_tokens < 0)
		return dt_err(err, "engine: token limits must be >= 0"), NULL;
	if (sampler_params_check(&p->sampler, err))
		return NULL;

	struct engine *e = xcalloc(1, sizeof(*e));
	e->p = *p;
	e->p.model_path = NULL;
	e->p.model = NULL;
	atomic_init(&e->cancel, false);
	e->policy = ENGINE_POLICY_SAMPLE;
	e->beam_width = 1;
	e->metrics = metrics_new();

	if (p->model) {
		e->model = p->model;
	} else if (p->model_path) {
		struct model_params mp = model_default_params();
		if (p->n_threads > 0)
			mp.n_threads = p->n_threads;
		e->model = model_load(p->model_path, &mp, err);
		if (!e->model)
			goto fail;
		e->own_model = true;
		snprintf(e->model_path, sizeof(e->model_path), "%s", p->model_path);
	}
	struct kvpool_params kp = kvpool_default_params();
	kp.page_size = p->page_size;
	kp.budget_bytes = p->kv_budget;
	if (e->model) {
		e->hp = *model_hparams(e->model);
		e->tok = tokenizer_from_gguf(model_gguf(e->model), err);
		if (!e->tok)
			goto fail;
		e->n_vocab = e->hp.n_vocab;
		kp.elt_bytes = 4;
		kp.host_storage = true;
	} else {
		const struct engine_io_heads *h = &p->io_heads;
		if (h->n_layer < 1 || h->n_head < 1 || h->n_kv_head < 1 || h->n_head % h->n_kv_head || h->head_dim < 1 ||
		    (h->elt_bytes != 2 && h->elt_bytes != 4)) {
			dt_err(err, "engine: IO-only head shape %d layers, %d/%d heads, dim %d, %d bytes is not valid",
			       h->n_layer, h->n_head, h->n_kv_head, h->head_dim, h->elt_bytes);
			goto fail;
		}
		snprintf(e->hp.arch, sizeof(e->hp.arch), "io-only");
		e->hp.n_layer = h->n_layer;
		e->hp.n_head = h->n_head;
		e->hp.n_head_kv = h->n_kv_head;
		e->hp.head_dim = h->head_dim;
		e->hp.n_embd = h->n_head * h->head_dim;
		e->hp.n_vocab = 1;
		e->n_vocab = 1;
		kp.elt_bytes = h->elt_bytes;
		kp.host_storage = false;
	}
	kp.n_layer = e->hp.n_layer;
	kp.n_kv_heads = e->hp.n_head_kv;
	kp.head_dim = e->hp.head_dim;
	e->pool = kvpool_new(&kp, err);
	if (!e->pool)
		goto fail;

	struct treeplan_params pp = treeplan_default_params();
	pp.algo = p->algo;
	pp.block_size = p->block_size;
	pp.tile_queries = p->tile_queries;
	e->plan = treeplan_new(&pp, err);
	if (!e->plan)
		goto fail;
	pp.algo = TREEPLAN_SEQ;
	e->plan_seq = treeplan_new(&pp, err);
	if (!e->plan_seq)
		goto fail;
	if (e->model) {
		e->be = new_backend(e, p->backend, err);
		if (!e->be)
			goto fail;
		e->sw = sampler_work_new(e->n_vocab);
	}
	return e;
fail:
	engine_free(e);
	return NULL;
}

static void replay_clear(struct replay *rp)
{
	free(rp->tree_id);
	free(rp->cand);
	memset(rp, 0, sizeof(*rp));
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	replay_clear(&e->rp);
	tree_free(e->tree);
	kvpool_free(e->pool);
	treeplan_free(e->plan);
	treeplan_free(e->plan_seq);
	backend_free(e->be);
	free(e->stk);
	free(e->stv);
	free(e->stpage);
	free(e->stslot);
	sampler_work_free(e->sw);
	tokenizer_free(e->tok);
	if (e->own_model)
		model_free(e->model);
	metrics_free(e->metrics);
	free(e->done);
	free(e->stream);
	free(e->score);
	free(e->qfirst);
	free(e->qrec);
	free(e->q);
	free(e->tok_ids);
	free(e->pos);
	free(e->page);
	free(e->slot);
	free(e->row);
	free(e->store);
	free(e->want);
	free(e->leaves);
	free(e->src);
	for (int i = 0; i < 2; i++) {
		free(e->lb[i].data);
		free(e->lb[i].key);
	}
	free(e->hist);
	free(e);
}

// ---- queries of a step

static void q_reserve(struct engine *e, int32_t n)
{
	if (n <= e->cap_q)
		return;
	int32_t c = e->cap_q ? e->cap_q : 64;
	while (c < n)
		c *= 2;
	e->q = xrealloc(e->q, (size_t)c * sizeof(*e->q));
	e->tok_ids = xrealloc(e->tok_ids, (size_t)c * sizeof(*e->tok_ids));
	e->pos = xrealloc(e->pos, (size_t)c * sizeof(*e->pos));
	e->page = xrealloc(e->page, (size_t)c * sizeof(*e->page));
	e->slot = xrealloc(e->slot, (size_t)c * sizeof(*e->slot));
	e->row = xrealloc(e->row, (size_t)c * sizeof(*e->row));
	e->store = xrealloc(e->store, (size_t)c * sizeof(*e->store));
	e->want = xrealloc(e->want, (size_t)c * sizeof(*e->want));
	e->cap_q = c;
}

static int32_t add_query(struct engine *e, int32_t node, int32_t index, bool store)
{
	q_reserve(e, e->nq + 1);
	const struct tree_node *nd = tree_node(e->tree, node);
	int32_t i = e->nq++;
	e->q[i] = (struct treeplan_query){ node, index };
	e->tok_ids[i] = nd->tokens[index].id;
	e->pos[i] = nd->pos0 + index;
	e->store[i] = store;
	e->want[i] = false;
	e->row[i] = -1;
	if (store)
		tree_kv_loc(e->tree, node, index, &e->page[i], &e->slot[i]);
	else
		e->page[i] = e->slot[i] = -1;
	return i;
}

/* Every pending token, depth-first, ascending within a node.  Pending tokens
 * of finished leaves are left out (nothing will read them) unless
 * with_finished; with skip_leaf_last the last token of every live leaf stays
 * pending (a restored session computes it in its first step). */
static void collect_pending(struct engine *e, bool with_finished, bool skip_leaf_last)
{
	e->nq = 0;
	e->n_want = 0;
	for (int32_t i = 0; i < e->cap_ids; i++)
		e->qfirst[i] = e->qrec[i] = -1;
	int32_t cap = tree_n_ids(e->tree) + 1;
	int32_t *stack = xmallocarray((size_t)cap, sizeof(*stack));
	int32_t top = 0;
	stack[top++] = tree_root(e->tree);
	while (top > 0) {
		const struct tree_node *nd = tree_node(e->tree, stack[--top]);
		bool leaf = nd->n_children == 0;
		if (!(leaf && nd->status == TREE_FINISHED && !with_finished)) {
			int32_t end = nd->n_tokens;
			if (skip_leaf_last && leaf && nd->status == TREE_LIVE && end > 0)
				end--;
			for (int32_t i = e->done[nd->id]; i < end; i++) {
				int32_t qi = add_query(e, nd->id, i, true);
				if (i == e->done[nd->id])
					e->qfirst[nd->id] = qi;
			}
		}
		for (int32_t c = nd->n_children - 1; c >= 0; c--) {
			DT_ASSERT(top < cap);
			stack[top++] = nd->children[c];
		}
	}
	free(stack);
}

static void mark_want(struct engine *e, int32_t qi)
{
	if (!e->want[qi]) {
		e->want[qi] = true;
		e->n_want++;
	}
}

static int32_t keep_find(const struct engine *e, int32_t node, int32_t index)
{
	const struct logits_buf *kb = &e->lb[!e->cur];
	for (int32_t i = 0; i < kb->n; i++)
		if (kb->key[i].node == node && kb->key[i].index == index)
			return i;
	return -1;
}

/* The query (pending or recompute) or kept row that gives the logits after
 * token index of node. */
static struct src resolve(struct engine *e, int32_t leaf, int32_t node, int32_t index)
{
	struct src s = { leaf, -1, -1 };
	if (e->done[node] <= index) {
		DT_ASSERT(e->qfirst[node] >= 0);
		s.q = e->qfirst[node] + (index - e->done[node]);
		mark_want(e, s.q);
		return s;
	}
	s.keep = keep_find(e, node, index);
	if (s.keep >= 0)
		return s;
	if (index == tree_node(e->tree, node)->n_tokens - 1) {
		if (e->qrec[node] < 0)
			e->qrec[node] = add_query(e, node, index, false);
		s.q = e->qrec[node];
	} else {
		s.q = add_query(e, node, index, false);
	}
	mark_want(e, s.q);
	return s;
}

/* The last token on a leaf's path: its own last, or its parent's. */
static void path_last(const struct engine *e, int32_t leaf, int32_t *node, int32_t *index)
{
	const struct tree_node *nd = tree_node(e->tree, leaf);
	if (nd->n_tokens > 0) {
		*node = leaf;
		*index = nd->n_tokens - 1;
	} else {
		const struct tree_node *par = tree_node(e->tree, nd->parent);
		*node = par->id;
		*index = par->n_tokens - 1;
	}
}

static int32_t gather_leaves(struct engine *e)
{
	int32_t n = tree_live_leaves(e->tree, NULL, 0);
	if (n > e->cap_leaves) {
		e->cap_leaves = n * 2;
		e->leaves = xrealloc(e->leaves, (size_t)e->cap_leaves * sizeof(*e->leaves));
		e->src = xrealloc(e->src, (size_t)e->cap_leaves * sizeof(*e->src));
	}
	return tree_live_leaves(e->tree, e->leaves, n);
}

/* Rows of `want` queries in batch order; the keys of the cur buffer. */
static void assign_rows(struct engine *e)
{
	struct logits_buf *cb = &e->lb[e->cur];
	logits_reserve(e, cb, e->n_want);
	int32_t r = 0;
	for (int32_t i = 0; i < e->nq; i++)
		if (e->want[i]) {
			e->row[i] = r;
			cb->key[r] = (struct lkey){ e->q[i].node, e->q[i].index };
			r++;
		}
	cb->n = 0; /* filled by the forward */
	DT_ASSERT(r == e->n_want);
}

static const float *src_logits(const struct engine *e, const struct src *s)
{
	if (s->keep >= 0)
		return e->lb[!e->cur].data + (size_t)s->keep * (size_t)e->n_vocab;
	return e->lb[e->cur].data + (size_t)e->row[s->q] * (size_t)e->n_vocab;
}

// ---- the forward pass

static int kv_store(void *ctx, int32_t layer, int32_t n, const float *k, const float *v, char *err)
{
	struct engine *e = ctx;
	int64_t t0 = dt_now_ns();
	size_t kvd = (size_t)e->hp.n_head_kv * (size_t)e->hp.head_dim;
	int32_t ns = 0;
	for (int32_t r = 0; r < n; r++) {
		int32_t i = e->sub_off + r;
		if (e->store[i]) {
			kvpool_store(e->pool, layer, e->page[i], e->slot[i], k + r * kvd, v + r * kvd);
			ns++;
		}
	}
	/* the backend gets the stored rows only (recompute queries are not stored) */
	int rc = DT_OK;
	if (ns == n) {
		rc = backend_store(e->be, layer, n, e->page + e->sub_off, e->slot + e->sub_off, k, v, err);
	} else if (ns > 0) {
		if (ns > e->cap_st) {
			e->cap_st = ns * 2;
			e->stk = xrealloc(e->stk, (size_t)e->cap_st * kvd * sizeof(float));
			e->stv = xrealloc(e->stv, (size_t)e->cap_st * kvd * sizeof(float));
			e->stpage = xrealloc(e->stpage, (size_t)e->cap_st * sizeof(int32_t));
			e->stslot = xrealloc(e->stslot, (size_t)e->cap_st * sizeof(int32_t));
		}
		int32_t j = 0;
		for (int32_t r = 0; r < n; r++) {
			int32_t i = e->sub_off + r;
			if (!e->store[i])
				continue;
			memcpy(e->stk + (size_t)j * kvd, k + (size_t)r * kvd, kvd * sizeof(float));
			memcpy(e->stv + (size_t)j * kvd, v + (size_t)r * kvd, kvd * sizeof(float));
			e->stpage[j] = e->page[i];
			e->stslot[j] = e->slot[i];
			j++;
		}
		rc = backend_store(e->be, layer, ns, e->stpage, e->stslot, e->stk, e->stv, err);
	}
	e->attn_ns += dt_now_ns() - t0;
	return rc;
}

static int kv_attend(void *ctx, int32_t layer, int32_t n, const float *q, float *out, char *err)
{
	struct engine *e = ctx;
	int64_t t0 = dt_now_ns();
	int rc = backend_attend(e->be, layer, q, out, err);
	e->attn_ns += dt_now_ns() - t0;
	return rc;
}

static void io_add(struct metrics_io *dst, const struct treeplan_io *io, int32_t n_layer)
{
	dst->kv += io->kv * (uint64_t)n_layer;
	dst->q += io->q * (uint64_t)n_layer;
	dst->mask += io->mask * (uint64_t)n_layer;
	dst->partial += io->partial * (uint64_t)n_layer;
	dst->inter += io->inter * (uint64_t)n_layer;
	dst->other += (io->out + io->plan) * (uint64_t)n_layer;
}

/* Runs the collected queries (n_batch at a time, in order) and marks stored
 * tokens as computed.  with_io: record the IO model of both plans. */
static int forward(struct engine *e, bool with_io, char *err)
{
	memset(&e->io, 0, sizeof(e->io));
	memset(&e->io_seq, 0, sizeof(e->io_seq));
	e->attn_ns = 0;
	e->attn_dev_ns = 0;
	assign_rows(e);
	if (e->nq == 0)
		return DT_OK;
	struct treeplan_io_params iop = { e->hp.n_head, e->hp.n_head_kv, e->hp.head_dim, kv_elt_bytes(e) };
	int32_t nb_max = e->model ? model_n_batch(e->model) : e->nq;
	struct model_kv_ops ops = { e, kv_store, kv_attend };
	int32_t row = 0;
	for (int32_t off = 0; off < e->nq;) {
		int32_t nb = DT_MIN(nb_max, e->nq - off);
		int rc = treeplan_update(e->plan, e->tree, e->q + off, nb, err);
		if (rc)
			return rc;
		if (with_io) {
			struct treeplan_io io;
			treeplan_io(e->plan, &iop, &io);
			io_add(&e->io, &io, e->hp.n_layer);
			if (e->p.io_compare && treeplan_params(e->plan)->algo != TREEPLAN_SEQ) {
				rc = treeplan_update(e->plan_seq, e->tree, e->q + off, nb, err);
				if (rc)
					return rc;
				treeplan_io(e->plan_seq, &iop, &io);
			}
			io_add(&e->io_seq, &io, e->hp.n_layer);
		}
		int32_t w = 0;
		for (int32_t i = off; i < off + nb; i++)
			w += e->want[i];
		if (e->model) {
			e->flat = treeplan_flat(e->plan);
			e->sub_off = off;
			rc = backend_set_plan(e->be, e->flat, (int)treeplan_params(e->plan)->algo, err);
			if (rc)
				return rc;
			struct model_batch b = { nb, e->tok_ids + off, e->pos + off, e->want + off };
			float *out = e->lb[e->cur].data + (size_t)row * (size_t)e->n_vocab;
			rc = model_forward(e->model, &b, &ops, out, &e->cancel, err);
			struct backend_counters bc;
			backend_get_counters(e->be, &bc);
			e->attn_dev_ns += bc.device_ns;
			if (rc)
				return rc;
		} else {
			/* IO-only: a flat distribution over the one token */
			for (int32_t r = 0; r < w; r++)
				e->lb[e->cur].data[(size_t)(row + r) * (size_t)e->n_vocab] = 0;
		}
		for (int32_t i = off; i < off + nb; i++)
			if (e->store[i])
				e->done[e->q[i].node] = DT_MAX(e->done[e->q[i].node], e->q[i].index + 1);
		row += w;
		e->lb[e->cur].n = row;
		off += nb;
	}
	return DT_OK;
}

static void swap_logits(struct engine *e)
{
	e->cur = !e->cur;
	e->lb[e->cur].n = 0;
}

// ---- sampling

/* Pages that appending one token to each of the leaves needs. */
static int32_t pages_for_appends(const struct engine *e, const int32_t *leaves, int32_t n)
{
	int32_t ps = kvpool_params(e->pool)->page_size, need = 0;
	for (int32_t i = 0; i < n; i++) {
		const struct tree_node *nd = tree_node(e->tree, leaves[i]);
		need += (nd->first_slot + nd->n_tokens) % ps == 0;
	}
	return need;
}

static int refuse_full(struct engine *e, int32_t need, char *err)
{
	char b1[32], b2[32];
	dt_err(err,
	       "kv pool full: this step needs %d new pages, %d of %d are free (%s per page, budget %s); "
	       "prune branches or give a larger KV budget",
	       need, kvpool_n_free(e->pool), kvpool_n_pages(e->pool),
	       metrics_fmt_bytes(kvpool_page_bytes(e->pool), b1, sizeof(b1)),
	       metrics_fmt_bytes((uint64_t)kvpool_n_pages(e->pool) * kvpool_page_bytes(e->pool), b2, sizeof(b2)));
	return DT_ERR_FULL;
}

/* history for the repetition penalty: the leaf's path, last repeat_last_n */
static const int32_t *history(struct engine *e, int32_t leaf, int32_t *n)
{
	*n = 0;
	const struct sampler_params *sp = &e->p.sampler;
	if (sp->repeat_penalty == 1.0f || sp->repeat_last_n == 0 || !e->model)
		return NULL;
	int32_t len = tree_path_len(e->tree, leaf);
	if (len > e->cap_hist) {
		e->cap_hist = len * 2;
		e->hist = xrealloc(e->hist, (size_t)e->cap_hist * sizeof(*e->hist));
	}
	tree_path_tokens(e->tree, leaf, e->hist, len);
	int32_t keep = sp->repeat_last_n < 0 ? len : DT_MIN(len, sp->repeat_last_n);
	*n = keep;
	return e->hist + (len - keep);
}

/* Samples the next token of a leaf from logits and appends it. */
static int sample_append(struct engine *e, int32_t leaf, const float *logits, bool greedy, bool stops, char *err)
{
	if (e->stream[leaf] < 0)
		new_branch(e, leaf, 0);
	int32_t pos = tree_path_len(e->tree, leaf);
	int32_t tok = 0;
	float prob = 1.0f;
	struct tree_alt alts[TREE_MAX_ALT];
	int32_t n_alt = tree_n_alt(e->tree);
	if (e->model) {
		struct sampler_params sp = e->p.sampler;
		if (greedy)
			sp.temp = 0;
		int32_t nh;
		const int32_t *h = history(e, leaf, &nh);
		tok = sampler_sample(&sp, logits, e->n_vocab, h, nh, (uint64_t)e->stream[leaf], pos, &prob, e->sw);
		int32_t k = sampler_topk_alternatives(logits, e->n_vocab, n_alt, e->alt_ids, e->alt_p);
		for (int32_t i = 0; i < n_alt; i++)
			alts[i] = i < k ? (struct tree_alt){ e->alt_ids[i], logf(e->alt_p[i]) }
					: (struct tree_alt){ -1, -INFINITY };
	} else {
		for (int32_t i = 0; i < n_alt; i++)
			alts[i] = (struct tree_alt){ -1, -INFINITY };
	}
	float lp = logf(prob);
	int rc = tree_append(e->tree, leaf, &tok, &lp, alts, 1, (int32_t)(e->n_steps + 1), err);
	if (rc)
		return rc;
	e->score[leaf] += lp;
	e->n_generated++;
	metrics_branch_tokens(e->metrics, (uint64_t)e->stream[leaf], dt_now_ns(), 1);
	if (stops) {
		bool eog = e->tok && tokenizer_is_eog(e->tok, tok);
		bool full = e->p.max_branch_tokens > 0 && pos + 1 - e->prompt_len >= e->p.max_branch_tokens;
		if (eog || full)
			tree_set_status(e->tree, leaf, TREE_FINISHED, NULL);
	}
	return DT_OK;
}

// ---- metrics of a step

static void record_step(struct engine *e, int64_t t0, int32_t n_branches, int32_t n_tokens)
{
	struct metrics_step s;
	memset(&s, 0, sizeof(s));
	s.t_start_ns = t0;
	s.wall_ns = dt_now_ns() - t0;
	s.attn_ns = e->attn_ns;
	s.attn_dev_ns = e->attn_dev_ns;
	s.n_queries = e->nq;
	s.n_branches = n_branches;
	s.n_tokens = n_tokens;
	struct tree_stats ts;
	tree_stats(e->tree, &ts);
	s.tree_tokens = ts.stored_tokens;
	for (int32_t i = 0; i < e->nq; i++)
		s.path_tokens += e->pos[i] + 1;
	s.kv_pages = kvpool_n_used(e->pool);
	s.io = e->io;
	s.io_seq = e->io_seq;
	metrics_step_add(e->metrics, &s);
	e->n_steps++;
}

// ---- steps

/* Gathers queries and logits sources for the live leaves. */
static int32_t prepare(struct engine *e, bool with_finished)
{
	int32_t nl = gather_leaves(e);
	collect_pending(e, with_finished, false);
	for (int32_t i = 0; i < nl; i++) {
		int32_t node, index;
		path_last(e, e->leaves[i], &node, &index);
		e->src[i] = resolve(e, e->leaves[i], node, index);
	}
	return nl;
}

static int step_sample(struct engine *e, bool replay, char *err)
{
	int64_t t0 = dt_now_ns();
	int32_t nl = prepare(e, false);
	if (nl == 0)
		return ENGINE_DONE;
	int32_t need = pages_for_appends(e, e->leaves, nl);
	if (need > kvpool_n_free(e->pool))
		return refuse_full(e, need, err);
	int rc = forward(e, true, err);
	if (rc)
		return rc;
	bool greedy = e->policy == ENGINE_POLICY_GREEDY;
	for (int32_t i = 0; i < nl; i++) {
		rc = sample_append(e, e->src[i].leaf, src_logits(e, &e->src[i]), greedy, !replay, err);
		DT_ASSERT(rc == DT_OK); /* pages were checked */
	}
	if (e->nq > 0)
		swap_logits(e);
	record_step(e, t0, nl, nl);
	return DT_OK;
}

struct beam_cand {
	int32_t leaf, si, tok; /* si: the leaf's index in e->src */
	float lp;
	double raw, norm;
	bool eog;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct beam_cand *x = a, *y = b;
	if (x->norm != y->norm)
		return x->norm < y->norm ? 1 : -1;
	if (x->leaf != y->leaf)
		return x->leaf - y->leaf;
	return x->tok - y->tok;
}

static int step_beam(struct engine *e, char *err)
{
	int64_t t0 = dt_now_ns();
	int32_t nl = prepare(e, false);
	if (nl == 0)
		return ENGINE_DONE;
	int rc = forward(e, true, err);
	if (rc)
		return rc;
	const int32_t W = e->beam_width;
	int32_t k = DT_MIN(2 * W, e->n_vocab);
	k = DT_MIN(k, (int32_t)DT_ARRAY_LEN(e->alt_ids));
	struct beam_cand *c = xmallocarray((size_t)nl * (size_t)k, sizeof(*c));
	int32_t nc = 0;
	for (int32_t i = 0; i < nl; i++) {
		int32_t leaf = e->src[i].leaf;
		const float *lg = src_logits(e, &e->src[i]);
		int32_t got = e->model ? sampler_topk_alternatives(lg, e->n_vocab, k, e->alt_ids, e->alt_p) : 1;
		if (!e->model) {
			e->alt_ids[0] = 0;
			e->alt_p[0] = 1;
		}
		int32_t len = tree_path_len(e->tree, leaf) + 1 - e->prompt_len;
		double denom = pow((double)DT_MAX(len, 1), (double)e->beam_alpha);
		for (int32_t j = 0; j < got; j++) {
			float lp = logf(e->alt_p[j]);
			double raw = e->score[leaf] + lp;
			c[nc++] = (struct beam_cand){ leaf, i, e->alt_ids[j], lp, raw, raw / denom,
						      e->tok && tokenizer_is_eog(e->tok, e->alt_ids[j]) };
		}
	}
	qsort(c, (size_t)nc, sizeof(*c), cmp_cand);
	/* the W best that go on, plus finished hypotheses ranked above the last of them */
	int32_t n_live = 0, n_sel = 0;
	for (int32_t i = 0; i < nc && n_live < W; i++) {
		if (!c[i].eog)
			n_live++;
		c[n_sel++] = c[i];
	}
	/* pages: at most one per selection (continuations and new leaves) */
	int32_t need = 0, ps = kvpool_params(e->pool)->page_size;
	for (int32_t i = 0; i < n_sel; i++) {
		const struct tree_node *nd = tree_node(e->tree, c[i].leaf);
		bool first = true;
		for (int32_t j = 0; j < i; j++)
			first = first && c[j].leaf != c[i].leaf;
		need += first && c[i].leaf != tree_root(e->tree) ? (nd->first_slot + nd->n_tokens) % ps == 0 : 1;
	}
	if (need > kvpool_n_free(e->pool)) {
		free(c);
		if (e->nq > 0)
			swap_logits(e);
		return refuse_full(e, need, err);
	}
	/* prune the beams nobody continues */
	for (int32_t i = 0; i < nl; i++) {
		int32_t leaf = e->src[i].leaf;
		bool used = false;
		for (int32_t j = 0; j < n_sel && !used; j++)
			used = c[j].leaf == leaf;
		if (!used && leaf != tree_root(e->tree))
			prune_up(e, leaf);
	}
	/* extend: the first selection of a leaf continues it, the others fork below
	 * its old end (the root, the prompt, only gets children) */
	int32_t step_no = (int32_t)(e->n_steps + 1), n_tokens = 0;
	for (int32_t i = 0; i < n_sel; i++) {
		int32_t leaf = c[i].leaf, target;
		const struct tree_node *nd = tree_node(e->tree, leaf);
		bool first = true;
		for (int32_t j = 0; j < i; j++)
			first = first && c[j].leaf != leaf;
		if (leaf == tree_root(e->tree) || nd->status != TREE_LIVE || nd->n_children > 0) {
			target = child_at_end(e, leaf, err);
			DT_ASSERT(target >= 0);
			new_branch(e, target, c[i].raw);
		} else if (first) {
			target = leaf;
			e->score[leaf] = c[i].raw;
		} else {
			/* leaf already got its first selection: branch off before that token */
			int32_t at = tree_node(e->tree, leaf)->n_tokens - 1;
			target = at > 0 ? fork_at(e, leaf, at, err) : fork_at(e, leaf, 0, err);
			DT_ASSERT(target >= 0);
			new_branch(e, target, c[i].raw);
		}
		struct tree_alt alts[TREE_MAX_ALT];
		int32_t n_alt = tree_n_alt(e->tree), got = 0;
		if (e->model)
			got = sampler_topk_alternatives(src_logits(e, &e->src[c[i].si]), e->n_vocab, n_alt, e->alt_ids,
							e->alt_p);
		for (int32_t a = 0; a < n_alt; a++)
			alts[a] = a < got ? (struct tree_alt){ e->alt_ids[a], logf(e->alt_p[a]) }
					  : (struct tree_alt){ -1, -INFINITY };
		rc = tree_append(e->tree, target, &c[i].tok, &c[i].lp, alts, 1, step_no, err);
		DT_ASSERT(rc == DT_OK);
		e->n_generated++;
		n_tokens++;
		metrics_branch_tokens(e->metrics, (uint64_t)e->stream[target], dt_now_ns(), 1);
		int32_t len = tree_path_len(e->tree, target) - e->prompt_len;
		if (c[i].eog || (e->p.max_branch_tokens > 0 && len >= e->p.max_branch_tokens))
			tree_set_status(e->tree, target, TREE_FINISHED, NULL);
	}
	free(c);
	if (e->nq > 0)
		swap_logits(e);
	record_step(e, t0, nl, n_tokens);
	return DT_OK;
}

// ---- replay steps

static int step_replay_tree(struct engine *e, char *err)
{
	struct replay *rp = &e->rp;
	const struct workload_tree *wt = rp->wt;
	int32_t i = rp->iter + 1;
	if (i > wt->n_iters) { /* the shape is done: its last branches stop */
		int32_t nl = gather_leaves(e);
		for (int32_t l = 0; l < nl; l++)
			tree_set_status(e->tree, e->leaves[l], TREE_FINISHED, NULL);
		return ENGINE_DONE;
	}
	/* check pages before changing the shape: new nodes take one page each */
	int32_t new_nodes = 0;
	for (int32_t j = 1; j < wt->n_nodes; j++)
		new_nodes += wt->nodes[j].start == i && wt->nodes[j].value > 0;
	int32_t nl = gather_leaves(e);
	int32_t need = new_nodes;
	for (int32_t l = 0; l < nl; l++) {
		/* leaves that end before this iteration finish instead of growing */
		const struct tree_node *nd = tree_node(e->tree, e->leaves[l]);
		bool ends = false;
		for (int32_t j = 0; j < wt->n_nodes && !ends; j++)
			ends = rp->tree_id[j] == nd->id && wt->nodes[j].end == i - 1;
		if (!ends)
			need += pages_for_appends(e, &e->leaves[l], 1);
	}
	if (need > kvpool_n_free(e->pool))
		return refuse_full(e, need, err);
	for (int32_t j = 0; j < wt->n_nodes; j++) {
		const struct workload_node *wn = &wt->nodes[j];
		if (wn->value > 0 && wn->end == i - 1 && rp->tree_id[j] >= 0) {
			const struct tree_node *nd = tree_node(e->tree, rp->tree_id[j]);
			if (nd->n_children == 0 && nd->status == TREE_LIVE)
				tree_set_status(e->tree, nd->id, TREE_FINISHED, NULL);
		}
	}
	for (int32_t j = 1; j < wt->n_nodes; j++) {
		const struct workload_node *wn = &wt->nodes[j];
		if (wn->start != i)
			continue;
		if (rp->tree_id[j] >= 0)
			continue; /* made by an attempt of this iteration that was refused or cancelled */
		int32_t parent = rp->tree_id[wn->parent];
		if (wn->value == 0) {
			rp->tree_id[j] = parent; /* an empty node: its children hang off its parent */
			continue;
		}
		int32_t leaf = child_at_end(e, parent, err);
		if (leaf < 0)
			return leaf;
		rp->tree_id[j] = leaf;
		ensure_ids(e);
		e->stream[leaf] = (int64_t)(e->p.root_stream + 1 + (uint64_t)wn->id);
		metrics_branch_start(e->metrics, (uint64_t)e->stream[leaf], dt_now_ns());
	}
	int rc = step_sample(e, true, err);
	if (rc == DT_OK || rc == ENGINE_DONE)
		rp->iter = i;
	return rc == ENGINE_DONE ? DT_OK : rc;
}

/* spec: the draft tokens for the next candidates: the most likely tokens after the last accepted one */
static void spec_draft(struct engine *e, const float *logits)
{
	struct replay *rp = &e->rp;
	int32_t want = 1;
	for (int32_t c = 1; c < rp->spec->size; c++)
		want = DT_MAX(want, rp->spec->rank[c] + 1);
	want = DT_MIN(want, MAX_DRAFT);
	if (e->model) {
		float p[MAX_DRAFT];
		rp->n_draft = sampler_topk_alternatives(logits, e->n_vocab, want, rp->draft, p);
	} else {
		rp->n_draft = 1;
		rp->draft[0] = 0;
	}
}

static int step_replay_spec(struct engine *e, char *err)
{
	struct replay *rp = &e->rp;
	const struct workload_spec *sp = rp->spec;
	if (rp->k >= rp->rec->n_steps)
		return ENGINE_DONE;
	int64_t t0 = dt_now_ns();
	int32_t L = rp->leaf;
	/* pages: a new page per candidate leaf, then the accepted tokens */
	int32_t need = sp->size - 1 + 1 + (sp->max_depth + 1 + kvpool_params(e->pool)->page_size - 1) /
						  kvpool_params(e->pool)->page_size;
	if (need > kvpool_n_free(e->pool))
		return refuse_full(e, need, err);
	int32_t step_no = (int32_t)(e->n_steps + 1);
	rp->cand[0] = L;
	for (int32_t c = 1; c < sp->size; c++) {
		int32_t leaf = child_at_end(e, rp->cand[sp->parent[c]], err);
		DT_ASSERT(leaf >= 0);
		int32_t tok = rp->draft[sp->rank[c] % DT_MAX(rp->n_draft, 1)];
		float lp = 0;
		int rc = tree_append(e->tree, leaf, &tok, &lp, NULL, 1, step_no, err);
		DT_ASSERT(rc == DT_OK);
		tree_set_status(e->tree, leaf, TREE_FINISHED, NULL);
		rp->cand[c] = leaf;
	}
	/* the accepted path: the root candidate, then first children (rank 0) */
	int32_t acc = DT_MAX(1, rp->rec->accept[rp->k]);
	int32_t path[WORKLOAD_MAX_SPEC_DEPTH + 2], np = 0, cur = 0;
	path[np++] = 0;
	while (np < acc) {
		int32_t next = -1;
		for (int32_t c = 1; c < sp->size && next < 0; c++)
			if (sp->parent[c] == cur && sp->rank[c] == 0)
				next = c;
		if (next < 0)
			break;
		path[np++] = cur = next;
	}
	collect_pending(e, true, false);
	struct src srcs[WORKLOAD_MAX_SPEC_DEPTH + 2];
	for (int32_t j = 0; j < np; j++) {
		const struct tree_node *nd = tree_node(e->tree, rp->cand[path[j]]);
		srcs[j] = resolve(e, nd->id, nd->id, nd->n_tokens - 1);
	}
	int rc = forward(e, true, err);
	if (rc) {
		/* leave the sequence as it was: drop the candidates */
		while (tree_node(e->tree, L)->n_children > 0)
			tree_prune(e->tree, tree_node(e->tree, L)->children[0], NULL);
		tree_set_status(e->tree, L, TREE_LIVE, NULL);
		return rc;
	}
	/* accepted tokens with their log-probabilities, then the bonus token */
	int32_t toks[WORKLOAD_MAX_SPEC_DEPTH + 2];
	float lps[WORKLOAD_MAX_SPEC_DEPTH + 2];
	for (int32_t j = 1; j < np; j++) {
		toks[j - 1] = tree_node(e->tree, rp->cand[path[j]])->tokens[0].id;
		lps[j - 1] = 0;
		if (e->model) {
			const float *lg = src_logits(e, &srcs[j - 1]);
			float mx = -INFINITY;
			for (int32_t v = 0; v < e->n_vocab; v++)
				mx = fmaxf(mx, lg[v]);
			double s = 0;
			for (int32_t v = 0; v < e->n_vocab; v++)
				s += exp((double)(lg[v] - mx));
			lps[j - 1] = (float)((double)(lg[toks[j - 1]] - mx) - log(s));
		}
	}
	const float *last = src_logits(e, &srcs[np - 1]);
	int32_t pos = tree_path_len(e->tree, L) + np - 1;
	float prob = 1;
	toks[np - 1] = 0;
	if (e->model) {
		int32_t nh;
		const int32_t *h = history(e, L, &nh);
		toks[np - 1] = sampler_sample(&e->p.sampler, last, e->n_vocab, h, nh, (uint64_t)e->stream[L], pos, &prob,
					      e->sw);
	}
	lps[np - 1] = logf(prob);
	spec_draft(e, last);
	while (tree_node(e->tree, L)->n_children > 0)
		tree_prune(e->tree, tree_node(e->tree, L)->children[0], NULL);
	tree_set_status(e->tree, L, TREE_LIVE, NULL);
	rc = tree_append(e->tree, L, toks, lps, NULL, np, step_no, err);
	DT_ASSERT(rc == DT_OK);
	e->n_generated += np;
	metrics_branch_tokens(e->metrics, (uint64_t)e->stream[L], dt_now_ns(), np);
	if (e->nq > 0)
		swap_logits(e);
	record_step(e, t0, 1, np);
	rp->k++;
	return DT_OK;
}

int engine_step(struct engine *e, char *err)
{
	if (!e->tree)
		return dt_err(err, "engine: no prompt yet (prefill first)"), DT_ERR_ARG;
	if (atomic_load(&e->cancel))
		return dt_err(err, "engine: cancelled"), DT_ERR_CANCELLED;
	if (e->policy == ENGINE_POLICY_REPLAY) {
		if (e->rp.kind == WORKLOAD_SPEC)
			return step_replay_spec(e, err);
		return step_replay_tree(e, err);
	}
	if (e->p.max_total_tokens > 0 && e->n_generated >= e->p.max_total_tokens)
		return ENGINE_DONE;
	if (e->policy == ENGINE_POLICY_BEAM)
		return step_beam(e, err);
	return step_sample(e, false, err);
}

int64_t engine_run(struct engine *e, int64_t max_steps, char *err)
{
	int64_t n = 0;
	while (max_steps <= 0 || n < max_steps) {
		int rc = engine_step(e, err);
		if (rc == ENGINE_DONE)
			break;
		if (rc < 0)
			return rc;
		n++;
	}
	return n;
}

void engine_cancel(struct engine *e)
{
	atomic_store(&e->cancel, true);
}

void engine_clear_cancel(struct engine *e)
{
	atomic_store(&e->cancel, false);
}

// ---- prompt

static void reset_session(struct engine *e)
{
	replay_clear(&e->rp);
	if (e->policy == ENGINE_POLICY_REPLAY)
		e->policy = ENGINE_POLICY_SAMPLE;
	tree_free(e->tree);
	e->tree = NULL;
	for (int32_t i = 0; i < e->cap_ids; i++) {
		e->done[i] = 0;
		e->stream[i] = -1;
		e->score[i] = 0;
	}
	e->lb[0].n = e->lb[1].n = 0;
	e->next_stream = e->p.root_stream;
	e->n_steps = e->n_generated = 0;
	e->prompt_len = 0;
	metrics_reset(e->metrics);
}

/* Computes every pending token (keeping the last token's logits of each live
 * leaf when keep_logits), without sampling. */
static int catch_up(struct engine *e, bool skip_leaf_last, char *err)
{
	int32_t nl = gather_leaves(e);
	collect_pending(e, false, skip_leaf_last);
	if (!skip_leaf_last)
		for (int32_t i = 0; i < nl; i++) {
			const struct tree_node *nd = tree_node(e->tree, e->leaves[i]);
			if (nd->n_tokens > 0 && e->done[nd->id] < nd->n_tokens)
				mark_want(e, e->qfirst[nd->id] + (nd->n_tokens - 1 - e->done[nd->id]));
		}
	int rc = forward(e, false, err);
	if (rc)
		return rc;
	if (e->nq > 0)
		swap_logits(e);
	return DT_OK;
}

int engine_prefill_tokens(struct engine *e, const int32_t *ids, int32_t n, char *err)
{
	if (n < 1)
		return dt_err(err, "engine: empty prompt (expected at least one token)"), DT_ERR_ARG;
	for (int32_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= e->n_vocab)
			return dt_err(err, "engine: prompt token %d is %d (expected 0 .. %d)", i, ids[i], e->n_vocab - 1),
			       DT_ERR_ARG;
	reset_session(e);
	int64_t t0 = dt_now_ns();
	struct tree_params tp = tree_default_params();
	tp.n_alt = e->p.n_alt;
	e->tree = tree_new(&tp, e->pool, ids, n, err);
	if (!e->tree)
		return DT_ERR_FULL;
	ensure_ids(e);
	int32_t root = tree_root(e->tree);
	e->prompt_len = n;
	e->done[root] = 0;
	e->stream[root] = (int64_t)e->next_stream++;
	metrics_branch_start(e->metrics, (uint64_t)e->stream[root], t0);
	int rc = catch_up(e, false, err);
	if (rc) {
		tree_free(e->tree);
		e->tree = NULL;
		return rc;
	}
	metrics_prefill(e->metrics, n, dt_now_ns() - t0);
	return DT_OK;
}

static int encode(struct engine *e, const char *text, bool chat, bool bos, int32_t **ids, int32_t *n, char *err)
{
	if (!e->tok)
		return dt_err(err, "engine: no tokenizer in IO-only mode"), DT_ERR_ARG;
	char *formatted = NULL;
	if (chat) {
		struct tokenizer_chat_msg msg = { "user", text };
		formatted = tokenizer_chat_format(e->tok, &msg, 1, true, err);
		if (!formatted)
			return DT_ERR_UNSUPPORTED;
		text = formatted;
	}
	int rc = tokenizer_encode(e->tok, text, strlen(text), bos && tokenizer_add_bos(e->tok), chat, ids, n, err);
	free(formatted);
	return rc ? DT_ERR_ARG : DT_OK;
}

int engine_prefill(struct engine *e, const char *text, bool chat, char *err)
{
	int32_t *ids, n;
	int rc = encode(e, text, chat, true, &ids, &n, err);
	if (rc)
		return rc;
	rc = engine_prefill_tokens(e, ids, n, err);
	free(ids);
	return rc;
}

// ---- policies

int engine_set_policy(struct engine *e, enum engine_policy pol, int32_t beam_width, float beam_alpha, char *err)
{
	switch (pol) {
	case ENGINE_POLICY_SAMPLE:
	case ENGINE_POLICY_GREEDY:
		break;
	case ENGINE_POLICY_BEAM:
		if (beam_width < 1 || beam_width > 64)
			return dt_err(err, "beam width (expected 1 .. 64, found %d)", beam_width), DT_ERR_ARG;
		if (!(beam_alpha >= 0 && beam_alpha <= 10))
			return dt_err(err, "beam length penalty alpha (expected 0 .. 10, found %g)", beam_alpha), DT_ERR_ARG;
		e->beam_width = beam_width;
		e->beam_alpha = beam_alpha;
		break;
	case ENGINE_POLICY_REPLAY:
		return dt_err(err, "replay is started with engine_replay_begin"), DT_ERR_ARG;
	default:
		return dt_err(err, "unknown policy %d", (int)pol), DT_ERR_ARG;
	}
	if (e->policy == ENGINE_POLICY_REPLAY)
		replay_clear(&e->rp);
	e->policy = pol;
	return DT_OK;
}

enum engine_policy engine_policy(const struct engine *e)
{
	return e->policy;
}

static bool parse_int_full(const char *s, long lo, long hi, int32_t *out)
{
	char *end;
	if (!*s)
		return false;
	long v = strtol(s, &end, 10);
	if (*end || v < lo || v > hi)
		return false;
	*out = (int32_t)v;
	return true;
}

int engine_policy_parse(const char *text, struct engine_policy_spec *out, char *err)
{
	*out = (struct engine_policy_spec){ ENGINE_POLICY_SAMPLE, 1, 1, 1.0f };
	char buf[64];
	if (strlen(text) >= sizeof(buf))
		return dt_err(err, "policy '%.20s...' is too long", text), DT_ERR_ARG;
	snprintf(buf, sizeof(buf), "%s", text);
	char *a = strchr(buf, ':'), *b = NULL;
	if (a) {
		*a++ = 0;
		b = strchr(a, ':');
		if (b)
			*b++ = 0;
	}
	if (!strcmp(buf, "greedy") && !a) {
		out->policy = ENGINE_POLICY_GREEDY;
		return DT_OK;
	}
	if (!strcmp(buf, "sample") && !b) {
		if (a && !parse_int_full(a, 1, 4096, &out->n))
			return dt_err(err, "policy '%s': branch count (expected 1 .. 4096, found '%s')", text, a), DT_ERR_ARG;
		return DT_OK;
	}
	if (!strcmp(buf, "beam") && a) {
		out->policy = ENGINE_POLICY_BEAM;
		if (!parse_int_full(a, 1, 64, &out->width))
			return dt_err(err, "policy '%s': beam width (expected 1 .. 64, found '%s')", text, a), DT_ERR_ARG;
		if (b) {
			char *end;
			double x = strtod(b, &end);
			if (!*b || *end || !(x >= 0 && x <= 10))
				return dt_err(err, "policy '%s': length penalty (expected 0 .. 10, found '%s')", text, b),
				       DT_ERR_ARG;
			out->alpha = (float)x;
		}
		return DT_OK;
	}
	return dt_err(err, "unknown policy '%s' (expected sample:N, greedy, beam:W or beam:W:ALPHA)", text), DT_ERR_ARG;
}

static int check_node(const struct engine *e, int32_t node, char *err)
{
	if (!e->tree)
		return dt_err(err, "no prompt yet (prefill first)"), DT_ERR_ARG;
	const struct tree_node *nd = tree_node(e->tree, node);
	if (!nd || nd->status == TREE_PRUNED)
		return dt_err(err, "node %d does not exist (the tree has ids 0 .. %d)", node, tree_n_ids(e->tree) - 1),
		       DT_ERR_ARG;
	return DT_OK;
}

int engine_sample_n(struct engine *e, int32_t node, int32_t index, int32_t n, int32_t *out, char *err)
{
	if (check_node(e, node, err))
		return DT_ERR_ARG;
	const struct tree_node *nd = tree_node(e->tree, node);
	if (n < 1 || n > 4096)
		return dt_err(err, "sample-n: branch count (expected 1 .. 4096, found %d)", n), DT_ERR_ARG;
	if (index < 0 || index > nd->n_tokens || (index == 0 && nd->parent < 0))
		return dt_err(err, "node %d: token index %d out of range (expected %d .. %d)", node, index,
			      nd->parent < 0 ? 1 : 0, nd->n_tokens),
		       DT_ERR_ARG;
	/* Branches that take over a leaf which has produced no token yet (the
	 * prompt right after its prefill) inherit its start time: their TTFT then
	 * counts from the request, prompt processing included. */
	int64_t t_start = -1;
	if (index == nd->n_tokens && e->stream[node] >= 0) {
		const struct metrics_branch *mb = metrics_branch_get(e->metrics, (uint64_t)e->stream[node]);
		if (mb && mb->n_tokens == 0)
			t_start = mb->t_start_ns;
	}
	int32_t first;
	if (index == nd->n_tokens && index > 0)
		first = child_at_end(e, node, err);
	else
		first = fork_at(e, node, index, err);
	if (first < 0)
		return first;
	int32_t parent = tree_node(e->tree, first)->parent;
	for (int32_t i = 0; i < n; i++) {
		int32_t id = first;
		if (i > 0) {
			id = fork_at(e, parent, tree_node(e->tree, parent)->n_tokens, err);
			DT_ASSERT(id >= 0);
		}
		new_branch(e, id, 0);
		if (t_start >= 0)
			metrics_branch_start(e->metrics, (uint64_t)e->stream[id], t_start);
		if (out)
			out[i] = id;
	}
	return DT_OK;
}

int32_t engine_fork(struct engine *e, int32_t node, int32_t index, enum engine_fork_mode mode, int32_t token,
		    const char *text, char *err)
{
	if (check_node(e, node, err))
		return DT_ERR_ARG;
	int32_t *ids = NULL, n = 0;
	if (mode == ENGINE_FORK_TOKEN) {
		if (token < 0 || token >= e->n_vocab)
			return dt_err(err, "fork: token %d out of range (expected 0 .. %d)", token, e->n_vocab - 1), DT_ERR_ARG;
	} else if (mode == ENGINE_FORK_TEXT) {
		int rc = encode(e, text ? text : "", false, false, &ids, &n, err);
		if (rc)
			return rc;
		if (n == 0) {
			free(ids);
			return dt_err(err, "fork: the forced text gives no tokens"), DT_ERR_ARG;
		}
	} else if (mode != ENGINE_FORK_RESAMPLE) {
		return dt_err(err, "fork: unknown mode %d", (int)mode), DT_ERR_ARG;
	}
	int32_t n_new = mode == ENGINE_FORK_TOKEN ? 1 : n;
	int32_t ps = kvpool_params(e->pool)->page_size, need = (n_new + ps - 1) / ps;
	if (need > kvpool_n_free(e->pool)) {
		free(ids);
		return refuse_full(e, need, err);
	}
	int32_t leaf;
	int rc = engine_sample_n(e, node, index, 1, &leaf, err);
	if (rc) {
		free(ids);
		return rc;
	}
	if (mode == ENGINE_FORK_TOKEN) {
		/* its log-probability: from the alternatives of the token it replaces, or kept logits */
		float lp = 0;
		const struct tree_node *par = tree_node(e->tree, tree_node(e->tree, leaf)->parent);
		const struct tree_node *sib = NULL;
		for (int32_t c = 0; c < par->n_children && !sib; c++) {
			const struct tree_node *s = tree_node(e->tree, par->children[c]);
			if (s->id != leaf && s->n_tokens > 0)
				sib = s;
		}
		bool found = false;
		if (sib) {
			if (sib->tokens[0].id == token) {
				lp = sib->tokens[0].logprob;
				found = true;
			}
			for (int32_t a = 0; a < tree_n_alt(e->tree) && !found; a++)
				if (sib->alts[a].id == token) {
					lp = sib->alts[a].logprob;
					found = true;
				}
		}
		if (!found) {
			int32_t kr = keep_find(e, par->id, par->n_tokens - 1);
			if (kr >= 0 && e->model) {
				const float *lg = e->lb[!e->cur].data + (size_t)kr * (size_t)e->n_vocab;
				float mx = -INFINITY;
				for (int32_t v = 0; v < e->n_vocab; v++)
					mx = fmaxf(mx, lg[v]);
				double s = 0;
				for (int32_t v = 0; v < e->n_vocab; v++)
					s += exp((double)(lg[v] - mx));
				lp = (float)((double)(lg[token] - mx) - log(s));
			}
		}
		rc = tree_append(e->tree, leaf, &token, &lp, NULL, 1, (int32_t)(e->n_steps + 1), err);
	} else if (mode == ENGINE_FORK_TEXT) {
		rc = tree_append(e->tree, leaf, ids, NULL, NULL, n, (int32_t)(e->n_steps + 1), err);
	}
	free(ids);
	if (rc) {
		tree_prune(e->tree, leaf, NULL);
		return rc;
	}
	return leaf;
}

int engine_force_text(struct engine *e, int32_t leaf, const char *text, char *err)
{
	if (check_node(e, leaf, err))
		return DT_ERR_ARG;
	const struct tree_node *nd = tree_node(e->tree, leaf);
	if (nd->n_children > 0 || nd->status != TREE_LIVE)
		return dt_err(err, "force: node %d is not a live leaf", leaf), DT_ERR_ARG;
	int32_t *ids, n;
	int rc = encode(e, text, false, false, &ids, &n, err);
	if (rc)
		return rc;
	rc = tree_append(e->tree, leaf, ids, NULL, NULL, n, (int32_t)(e->n_steps + 1), err);
	free(ids);
	return rc;
}

int engine_prune(struct engine *e, int32_t node, char *err)
{
	if (check_node(e, node, err))
		return DT_ERR_ARG;
	return tree_prune(e->tree, node, err);
}

// ---- replay

/* ids of text tokenized, cut or repeated to exactly n (IO-only: zeros) */
static int32_t *prompt_of_length(struct engine *e, const char *text, int32_t n, char *err)
{
	int32_t *out = xmallocarray((size_t)n, sizeof(*out));
	if (!e->tok) {
		memset(out, 0, (size_t)n * sizeof(*out));
		return out;
	}
	int32_t *ids, m;
	if (encode(e, text, false, true, &ids, &m, err)) {
		free(out);
		return NULL;
	}
	if (m == 0) {
		free(ids);
		if (encode(e, fewshot_text, false, true, &ids, &m, err)) {
			free(out);
			return NULL;
		}
	}
	int32_t start = (m > 1 && tokenizer_add_bos(e->tok)) ? 1 : 0; /* repeat the text, not the BOS */
	for (int32_t i = 0; i < n; i++)
		out[i] = i < m ? ids[i] : ids[start + (i - m) % (m - start)];
	free(ids);
	return out;
}

int engine_replay_begin(struct engine *e, const struct workload *w, int32_t index, int32_t prefix_len, char *err)
{
	int rc;
	if (w->kind == WORKLOAD_SPEC) {
		const struct workload_spec *sp = w->spec;
		if (index < 0 || index >= sp->n_records)
			return dt_err(err, "%s: record %d (expected 0 .. %d)", w->name, index, sp->n_records - 1), DT_ERR_ARG;
		if (prefix_len < 1)
			return dt_err(err, "%s: prefix length (expected >= 1, found %d)", w->name, prefix_len), DT_ERR_ARG;
		const struct workload_spec_record *rec = &sp->records[index];
		size_t len = 1;
		for (int32_t i = 0; i < rec->n_turns; i++)
			len += strlen(rec->turns[i]) + 1;
		char *text = xmalloc(len);
		text[0] = 0;
		for (int32_t i = 0; i < rec->n_turns; i++) {
			strcat(text, rec->turns[i]);
			strcat(text, "\n");
		}
		int32_t *ids = prompt_of_length(e, text, prefix_len, err);
		free(text);
		if (!ids)
			return DT_ERR_ARG;
		rc = engine_prefill_tokens(e, ids, prefix_len, err);
		free(ids);
		if (rc)
			return rc;
		struct replay *rp = &e->rp;
		rp->on = true;
		rp->kind = WORKLOAD_SPEC;
		rp->spec = sp;
		rp->rec = rec;
		rp->length = rec->n_steps;
		rp->cand = xmallocarray((size_t)sp->size, sizeof(*rp->cand));
		/* the sequence: a branch below the prompt with its first token (the first root candidate) */
		int32_t root = tree_root(e->tree);
		int32_t L = child_at_end(e, root, err);
		if (L < 0)
			return L;
		ensure_ids(e);
		e->stream[L] = e->stream[root];
		int32_t kr = keep_find(e, root, tree_node(e->tree, root)->n_tokens - 1);
		DT_ASSERT(kr >= 0);
		const float *lg = e->lb[!e->cur].data + (size_t)kr * (size_t)e->n_vocab;
		rc = sample_append(e, L, lg, false, false, err);
		if (rc)
			return rc;
		rp->leaf = L;
		spec_draft(e, lg);
		e->policy = ENGINE_POLICY_REPLAY;
		return DT_OK;
	}
	if (index < 0 || index >= w->n_trees)
		return dt_err(err, "%s: tree %d (expected 0 .. %d)", w->name, index, w->n_trees - 1), DT_ERR_ARG;
	const struct workload_tree *wt = &w->trees[index];
	int32_t n = wt->nodes[0].value;
	int32_t *ids = prompt_of_length(e, wt->prompt ? wt->prompt : fewshot_text, n, err);
	if (!ids)
		return DT_ERR_ARG;
	rc = engine_prefill_tokens(e, ids, n, err);
	free(ids);
	if (rc)
		return rc;
	struct replay *rp = &e->rp;
	rp->on = true;
	rp->kind = w->kind;
	rp->wt = wt;
	rp->length = wt->n_iters;
	rp->tree_id = xmallocarray((size_t)wt->n_nodes, sizeof(*rp->tree_id));
	for (int32_t j = 0; j < wt->n_nodes; j++)
		rp->tree_id[j] = -1;
	rp->tree_id[0] = tree_root(e->tree);
	e->policy = ENGINE_POLICY_REPLAY;
	return DT_OK;
}

int64_t engine_replay_length(const struct engine *e)
{
	return e->rp.on ? e->rp.length : 0;
}

// ---- sessions

int engine_save(struct engine *e, const char *path, bool export_extras, char *err)
{
	if (!e->tree)
		return dt_err(err, "%s: nothing to save (no prompt yet)", path), DT_ERR_ARG;
	struct session_meta meta;
	memset(&meta, 0, sizeof(meta));
	snprintf(meta.model, sizeof(meta.model), "%s", e->model_path);
	snprintf(meta.algo, sizeof(meta.algo), "%s", treeplan_algo_name(treeplan_params(e->plan)->algo));
	meta.step = e->n_steps;
	meta.sampler = e->p.sampler;
	ensure_ids(e);
	meta.stream = e->stream;
	meta.n_stream = tree_n_ids(e->tree);
	struct session_export ex = { e->tok, e->metrics };
	return session_save(path, e->tree, &meta, export_extras ? &ex : NULL, err);
}

int engine_load(struct engine *e, const char *path, char *err)
{
	struct session_meta meta;
	struct tree *t = session_load(path, e->pool, e->n_vocab, &meta, NULL, err);
	if (!t)
		return DT_ERR_FORMAT;
	enum treeplan_algo algo;
	bool algo_ok = meta.algo[0] && treeplan_algo_parse(meta.algo, &algo, NULL) == DT_OK;
	reset_session(e);
	e->tree = t;
	ensure_ids(e);
	int64_t max_stream = (int64_t)e->p.root_stream - 1;
	for (int32_t i = 0; i < meta.n_stream; i++) {
		e->stream[i] = meta.stream[i];
		max_stream = DT_MAX(max_stream, meta.stream[i]);
	}
	free(meta.stream);
	e->next_stream = (uint64_t)(max_stream + 1);
	int64_t now = dt_now_ns();
	for (int32_t i = 0; i < tree_n_ids(t); i++) /* TTFT of a restored branch: from the load */
		if (e->stream[i] >= 0 && tree_node(t, i) && tree_node(t, i)->n_children == 0)
			metrics_branch_start(e->metrics, (uint64_t)e->stream[i], now);
	e->n_steps = meta.step;
	e->p.sampler = meta.sampler;
	if (algo_ok)
		engine_set_algo(e, algo, NULL);
	/* the prompt: the root's leading tokens of step 0 */
	const struct tree_node *r = tree_node(t, tree_root(t));
	int32_t pl = 0;
	while (pl < r->n_tokens && r->tokens[pl].step == 0)
		pl++;
	e->prompt_len = pl;
	int64_t t0 = dt_now_ns();
	int rc = catch_up(e, true, err);
	if (rc)
		return rc;
	struct tree_stats ts;
	tree_stats(t, &ts);
	metrics_prefill(e->metrics, ts.stored_tokens, dt_now_ns() - t0);
	return DT_OK;
}

int engine_save_dot(struct engine *e, const char *path, char *err)
{
	if (!e->tree)
		return dt_err(err, "%s: nothing to draw (no prompt yet)", path), DT_ERR_ARG;
	return session_save_dot(path, e->tree, e->tok, err);
}

// ---- state

struct tree *engine_tree(struct engine *e)
{
	return e->tree;
}

struct metrics *engine_metrics(struct engine *e)
{
	return e->metrics;
}

const struct tokenizer *engine_tokenizer(const struct engine *e)
{
	return e->tok;
}

struct model *engine_model(struct engine *e)
{
	return e->model;
}

struct kvpool *engine_pool(struct engine *e)
{
	return e->pool;
}

const struct engine_params *engine_params(const struct engine *e)
{
	return &e->p;
}

int32_t engine_prompt_len(const struct engine *e)
{
	return e->prompt_len;
}

int64_t engine_n_steps(const struct engine *e)
{
	return e->n_steps;
}

int64_t engine_n_generated(const struct engine *e)
{
	return e->n_generated;
}

int64_t engine_stream(const struct engine *e, int32_t node)
{
	return node >= 0 && node < e->cap_ids ? e->stream[node] : -1;
}

int32_t engine_n_computed(const struct engine *e, int32_t node)
{
	return node >= 0 && node < e->cap_ids ? e->done[node] : 0;
}

const float *engine_logits(const struct engine *e, int32_t node, int32_t index)
{
	if (!e->tree)
		return NULL;
	int32_t k = keep_find(e, node, index);
	return k >= 0 ? e->lb[!e->cur].data + (size_t)k * (size_t)e->n_vocab : NULL;
}

int engine_set_algo(struct engine *e, enum treeplan_algo algo, char *err)
{
	if ((int)algo < 0 || (int)algo >= TREEPLAN_N_ALGO)
		return dt_err(err, "unknown attention algorithm %d", (int)algo), DT_ERR_ARG;
	struct treeplan_params pp = *treeplan_params(e->plan);
	if (pp.algo == algo)
		return DT_OK;
	pp.algo = algo;
	struct treeplan *pl = treeplan_new(&pp, err);
	if (!pl)
		return DT_ERR_ARG;
	treeplan_free(e->plan);
	e->plan = pl;
	e->p.algo = algo;
	return DT_OK;
}

int engine_set_sampler(struct engine *e, const struct sampler_params *sp, char *err)
{
	if (sampler_params_check(sp, err))
		return DT_ERR_ARG;
	e->p.sampler = *sp;
	return DT_OK;
}

char *engine_node_text(const struct engine *e, int32_t node)
{
	const struct tree_node *nd = e->tree ? tree_node(e->tree, node) : NULL;
	if (!nd || !e->tok)
		return xstrdup("");
	int32_t *ids = xmallocarray((size_t)(nd->n_tokens ? nd->n_tokens : 1), sizeof(*ids));
	for (int32_t i = 0; i < nd->n_tokens; i++)
		ids[i] = nd->tokens[i].id;
	char *raw = tokenizer_decode(e->tok, ids, nd->n_tokens);
	free(ids);
	char *clean = session_clean_utf8(raw, strlen(raw));
	free(raw);
	return clean;
}
