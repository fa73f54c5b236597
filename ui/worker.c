/*
 * worker.c — the engine thread: job queue, steps, snapshots (design in worker.h).
 *
 * DESIGN
 *   Shared with the UI thread, under `mu`: the job queue, the flags (quit,
 *   paused, cancel_pending), the run state, the snapshot mailbox, the event
 *   queue and the pointer to the engine in use (`active`, read by
 *   ui_worker_cancel).  Everything else (the model, the engines, the plans
 *   for the what-if figures, the save bookkeeping) belongs to the worker
 *   thread alone and is never locked.
 *
 *   A job runs with the mutex released.  Growing runs engine_step() in a
 *   loop; between steps it honours pause and cancel and publishes a
 *   snapshot.  Growing "only these
 *   branches" (extend one leaf, fork, sample-n, beam from a node) sets every
 *   other live leaf to finished for the duration of the job and back to live
 *   after it: the engine steps all live leaves, and this keeps the rest of the
 *   tree as the user left it.
 *
 *   Engines: `eng` runs the model; a replay (:replay) runs on a second,
 *   IO-only engine with the model's head shape, shown until a job needs the
 *   main engine again.  Settings that change the pool (page size, budget)
 *   and loading another model rebuild the engine and carry the tree over
 *   through a session file (KV is recomputed by engine_load).
 *
 *   Autosave: at the end of every job that changed the tree (and every 10 s
 *   during a long one) the tree is written to the autosave file (through a
 *   temporary file and rename, so a crash mid-write keeps the previous one).
 *
 *   Priority: the worker lowers its own nice value (Linux: per thread) before
 *   loading the model, so the model's compute threads, which it creates,
 *   inherit it.  With every core busy the UI thread then still answers keys
 *   at once (measured: under 50 ms with the model on both cores of a 2-core
 *   machine, against tails of 400 ms at equal priority); idle cores are
 *   used as before.
 */
#include "config.h"

#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "kvpool.h"
#include "metrics.h"
#include "model.h"
#include "tokenizer.h"
#include "tree.h"
#include "workload.h"

#define N_EVENTS 64
#define AUTOSAVE_EVERY_NS (10LL * 1000000000LL)

const char *const ui_worker_settings[] = {
	"temp", "top-k", "top-p", "min-p", "repeat-penalty", "repeat-last-n", "seed", "max-tokens", "page-size",
	"kv-budget", NULL,
};

struct qjob {
	struct ui_job j;
	char *text, *path;
	struct qjob *next;
};

struct ui_worker {
	struct ui_worker_params p;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* shared, under mu */
	struct qjob *head, *tail;
	bool running, quit, paused, cancel_pending;
	struct engine *active;
	struct ui_snap *mail;
	struct ui_event ev[N_EVENTS];
	int n_ev;
	struct ui_run_state rs;

	/* the worker thread's own */
	struct model *model;
	char model_path[512];
	char model_name[160];
	struct engine *eng;
	struct engine *replay;
	struct workload *wl;
	char replay_name[160];
	struct engine_params ep;
	int32_t max_tokens;
	struct treeplan *whatif[TREEPLAN_N_ALGO];
	uint64_t snap_seq;
	uint64_t saved_uid, saved_version;
	char session[512];
	uint64_t auto_uid, auto_version;
	int64_t auto_ns;
	bool auto_failed;
	double copy_gbps;
	bool chat_ok, chatml;
	char err[DT_ERR_LEN];
};

// ---- plumbing

static void wake(struct ui_worker *w)
{
	if (w->p.wake_fd >= 0) {
		ssize_t r = write(w->p.wake_fd, "w", 1);
		(void)r; /* a full pipe already wakes the UI */
	}
}

static void event(struct ui_worker *w, enum ui_event_kind k, int32_t node, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void event(struct ui_worker *w, enum ui_event_kind k, int32_t node, const char *fmt, ...)
{
	struct ui_event e = { k, node, "" };
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e.text, sizeof(e.text), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&w->mu);
	if (w->n_ev == N_EVENTS) {
		memmove(w->ev, w->ev + 1, (N_EVENTS - 1) * sizeof(w->ev[0]));
		w->n_ev--;
	}
	w->ev[w->n_ev++] = e;
	pthread_mutex_unlock(&w->mu);
	wake(w);
}

static struct engine *cur_engine(struct ui_worker *w)
{
	return w->replay ? w->replay : w->eng;
}

static void set_active(struct ui_worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->active = cur_engine(w);
	pthread_mutex_unlock(&w->mu);
}

static void set_progress(struct ui_worker *w, int64_t done, int64_t total)
{
	pthread_mutex_lock(&w->mu);
	w->rs.done = done;
	w->rs.total = total;
	pthread_mutex_unlock(&w->mu);
}

static void set_job_name(struct ui_worker *w, const char *name)
{
	pthread_mutex_lock(&w->mu);
	snprintf(w->rs.job, sizeof(w->rs.job), "%s", name);
	w->rs.since_ns = dt_now_ns();
	pthread_mutex_unlock(&w->mu);
}

/* false when the job should stop (cancel or quit); waits while paused */
static bool wait_unpaused(struct ui_worker *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->paused && !w->cancel_pending && !w->quit) {
		w->rs.paused = true;
		pthread_cond_wait(&w->cv, &w->mu);
	}
	w->rs.paused = false;
	bool go = !w->cancel_pending && !w->quit;
	pthread_mutex_unlock(&w->mu);
	return go;
}

/* sleeps up to ns (replay pacing); false when cancelled meanwhile */
static bool pace(struct ui_worker *w, int64_t ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t = (int64_t)ts.tv_nsec + ns;
	ts.tv_sec += (time_t)(t / 1000000000LL);
	ts.tv_nsec = (long)(t % 1000000000LL);
	pthread_mutex_lock(&w->mu);
	while (!w->cancel_pending && !w->quit) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
	bool go = !w->cancel_pending && !w->quit;
	pthread_mutex_unlock(&w->mu);
	return go;
}

// ---- snapshots

static const char *snap_piece(void *ctx, int32_t id, size_t *len)
{
	const struct tokenizer *tok = engine_tokenizer(ctx);
	if (!tok) {
		*len = 2;
		return "\xc2\xb7";
	}
	return tokenizer_piece(tok, id, len);
}

static bool snap_control(void *ctx, int32_t id)
{
	const struct tokenizer *tok = engine_tokenizer(ctx);
	return tok && tokenizer_token_type(tok, id) == TOKENIZER_TYPE_CONTROL;
}

static int64_t snap_stream(void *ctx, int32_t node)
{
	return engine_stream(ctx, node);
}

static int32_t snap_computed(void *ctx, int32_t node)
{
	return engine_n_computed(ctx, node);
}

static void head_shape(struct engine *e, struct treeplan_io_params *iop, int32_t *n_layer)
{
	struct model *m = engine_model(e);
	if (m) {
		const struct model_hparams *hp = model_hparams(m);
		*iop = (struct treeplan_io_params){ hp->n_head, hp->n_head_kv, hp->head_dim,
						    kvpool_params(engine_pool(e))->elt_bytes };
		*n_layer = hp->n_layer;
	} else {
		const struct engine_io_heads *h = &engine_params(e)->io_heads;
		*iop = (struct treeplan_io_params){ h->n_head, h->n_kv_head, h->head_dim, h->elt_bytes };
		*n_layer = h->n_layer;
	}
}

static void whatif(struct ui_worker *w, struct engine *e, struct ui_snap *s)
{
	struct tree *t = engine_tree(e);
	if (!t)
		return;
	int32_t cap = tree_n_ids(t) + 1;
	struct treeplan_query *q = xmallocarray((size_t)cap, sizeof(*q));
	int32_t nq = treeplan_leaf_queries(t, q, cap);
	if (nq == 0) {
		/* nothing live: a step on every leaf still compares the algorithms */
		for (int32_t id = 0; id < tree_n_ids(t); id++) {
			const struct tree_node *nd = tree_node(t, id);
			if (nd && nd->status != TREE_PRUNED && nd->n_children == 0 && nd->n_tokens > 0)
				q[nq++] = (struct treeplan_query){ id, nd->n_tokens - 1 };
		}
		s->whatif_all_leaves = true;
	}
	s->whatif_queries = nq;
	if (nq > 0) {
		struct treeplan_io_params iop;
		int32_t n_layer;
		head_shape(e, &iop, &n_layer);
		const struct engine_params *ep = engine_params(e);
		s->has_whatif = true;
		for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
			if (!w->whatif[a]) {
				struct treeplan_params pp = treeplan_default_params();
				pp.algo = (enum treeplan_algo)a;
				pp.block_size = ep->block_size;
				pp.tile_queries = ep->tile_queries;
				w->whatif[a] = treeplan_new(&pp, NULL);
			}
			struct treeplan_io io;
			if (!w->whatif[a] || treeplan_update(w->whatif[a], t, q, nq, NULL) != DT_OK) {
				s->has_whatif = false;
				break;
			}
			treeplan_io(w->whatif[a], &iop, &io);
			s->whatif_kv[a] = io.kv * (uint64_t)n_layer;
			s->whatif_total[a] = io.total * (uint64_t)n_layer;
		}
	}
	free(q);
}

static void fill_info(struct ui_worker *w, struct engine *e, struct ui_snap *s)
{
	struct ui_snap_info *in = &s->info;
	in->copy_gbps = w->copy_gbps;
	in->max_tokens = w->max_tokens;
	snprintf(in->session, sizeof(in->session), "%s", w->session);
	in->backend_kind = -1;
	if (!e) {
		snprintf(in->backend, sizeof(in->backend), "no model");
		return;
	}
	const struct engine_params *ep = engine_params(e);
	struct model *m = engine_model(e);
	in->has_model = m != NULL;
	in->io_only = m == NULL;
	in->algo = ep->algo;
	in->sampler = ep->sampler;
	in->page_size = ep->page_size;
	in->kv_budget = ep->kv_budget;
	in->prompt_len = engine_prompt_len(e);
	in->n_steps = engine_n_steps(e);
	in->n_generated = engine_n_generated(e);
	in->chat_template = w->chat_ok;
	switch (engine_policy(e)) {
	case ENGINE_POLICY_GREEDY: snprintf(in->policy, sizeof(in->policy), "greedy"); break;
	case ENGINE_POLICY_BEAM: snprintf(in->policy, sizeof(in->policy), "beam"); break;
	case ENGINE_POLICY_REPLAY: snprintf(in->policy, sizeof(in->policy), "replay"); break;
	default: snprintf(in->policy, sizeof(in->policy), "sample"); break;
	}
	if (m) {
		const struct model_hparams *hp = model_hparams(m);
		snprintf(in->model, sizeof(in->model), "%s", w->model_name);
		snprintf(in->model_path, sizeof(in->model_path), "%s", w->model_path);
		snprintf(in->arch, sizeof(in->arch), "%s %dL %d/%d heads d%d", hp->arch, hp->n_layer, hp->n_head,
			 hp->n_head_kv, hp->head_dim);
		const struct backend_info *bi = engine_backend_info(e);
		in->backend_kind = (int)bi->kind;
		snprintf(in->device, sizeof(in->device), "%s", bi->device);
		if (bi->kind == BACKEND_CPU) {
			snprintf(in->backend, sizeof(in->backend), "cpu %d thr", model_n_threads(m));
		} else {
			/* "NVIDIA H200 (132 SMs, sm_90), fp16 KV" -> "cuda NVIDIA H200" */
			int nlen = (int)strcspn(bi->device, "(");
			while (nlen > 0 && bi->device[nlen - 1] == ' ')
				nlen--;
			snprintf(in->backend, sizeof(in->backend), "%s %.*s", backend_kind_name(bi->kind), DT_MIN(nlen, 80),
				 bi->device);
			in->dev_copy_gbps = bi->copy_bytes_per_s / 1e9;
		}
		in->weight_bytes = model_weight_bytes(m);
		in->n_layer = hp->n_layer;
	} else {
		const struct engine_io_heads *h = &ep->io_heads;
		snprintf(in->model, sizeof(in->model), "IO-only (%.140s)", w->model_name[0] ? w->model_name : "no model");
		snprintf(in->arch, sizeof(in->arch), "%dL %d/%d heads d%d", h->n_layer, h->n_head, h->n_kv_head, h->head_dim);
		snprintf(in->backend, sizeof(in->backend), "io-only");
		in->n_layer = h->n_layer;
	}
	if (w->replay && e == w->replay) {
		snprintf(in->replay, sizeof(in->replay), "%s", w->replay_name);
		in->replay_len = engine_replay_length(e);
	}
	struct tree *t = engine_tree(e);
	if (t) {
		in->tree_uid = tree_uid(t);
		in->tree_version = tree_version(t);
		in->unsaved = e == w->eng && !(tree_uid(t) == w->saved_uid && tree_version(t) == w->saved_version);
	}
}

static void publish(struct ui_worker *w)
{
	struct engine *e = cur_engine(w);
	struct ui_snap_src src = { 0 };
	if (e) {
		src.tree = engine_tree(e);
		src.pool = engine_pool(e);
		src.metrics = engine_metrics(e);
		src.ctx = e;
		src.piece = snap_piece;
		src.is_control = snap_control;
		src.stream = snap_stream;
		src.n_computed = snap_computed;
	}
	struct ui_snap *s = ui_snap_build(&src);
	s->seq = ++w->snap_seq;
	fill_info(w, e, s);
	if (e)
		whatif(w, e, s);
	pthread_mutex_lock(&w->mu);
	ui_snap_free(w->mail);
	w->mail = s;
	pthread_mutex_unlock(&w->mu);
	wake(w);
}

// ---- saving

static bool tree_saved(struct ui_worker *w)
{
	struct tree *t = w->eng ? engine_tree(w->eng) : NULL;
	return t && tree_uid(t) == w->saved_uid && tree_version(t) == w->saved_version;
}

static void mark_saved(struct ui_worker *w)
{
	struct tree *t = w->eng ? engine_tree(w->eng) : NULL;
	w->saved_uid = t ? tree_uid(t) : 0;
	w->saved_version = t ? tree_version(t) : 0;
}

/* engine_save through a temporary file and rename */
static int save_atomic(struct engine *e, const char *path, char *err)
{
	char tmp[1100];
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	int rc = engine_save(e, tmp, false, err);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	if (rename(tmp, path) != 0) {
		dt_err(err, "%s: cannot rename the saved file (%s)", path, strerror(errno));
		unlink(tmp);
		return DT_ERR_IO;
	}
	return DT_OK;
}

static void autosave(struct ui_worker *w, bool force)
{
	struct tree *t = w->eng ? engine_tree(w->eng) : NULL;
	if (!w->p.autosave_path || !t)
		return;
	if (!force && tree_uid(t) == w->auto_uid && tree_version(t) == w->auto_version)
		return;
	if (save_atomic(w->eng, w->p.autosave_path, w->err)) {
		if (!w->auto_failed)
			event(w, UI_EV_ERROR, -1, "autosave: %s", w->err);
		w->auto_failed = true;
		return;
	}
	w->auto_failed = false;
	w->auto_uid = tree_uid(t);
	w->auto_version = tree_version(t);
	w->auto_ns = dt_now_ns();
}

// ---- growing

/* Steps the engine (at most `steps`, 0 = until nothing is live); with focus,
 * only those leaves (and branches they spawn) grow.  DT_OK, or the error. */
static int grow(struct ui_worker *w, struct engine *e, const int32_t *focus, int32_t n_focus, int64_t steps)
{
	struct tree *t = engine_tree(e);
	if (!t) {
		event(w, UI_EV_ERROR, -1, "no tree yet: press p and type a prompt");
		return DT_ERR_ARG;
	}
	int32_t cap = tree_n_ids(t);
	int32_t *paused = xmallocarray((size_t)(cap ? cap : 1), sizeof(*paused));
	int32_t n_paused = 0;
	if (focus) {
		int32_t n = tree_live_leaves(t, paused, cap);
		for (int32_t i = 0; i < n; i++) {
			bool keep = false;
			for (int32_t k = 0; k < n_focus && !keep; k++)
				keep = paused[i] == focus[k];
			if (!keep) {
				tree_set_status(t, paused[i], TREE_FINISHED, NULL);
				paused[n_paused++] = paused[i];
			}
		}
	}
	int rc = DT_OK;
	int64_t done = 0, t0 = dt_now_ns(), last_pub = 0;
	bool replay = e == w->replay;
	set_progress(w, 0, steps);
	if (!replay && tree_live_leaves(t, NULL, 0) == 0)
		event(w, UI_EV_INFO, -1, "nothing to grow: every branch is finished (e on a leaf grows it again)");
	while ((steps <= 0 || done < steps) && (replay || tree_live_leaves(t, NULL, 0) > 0)) {
		if (!wait_unpaused(w)) {
			rc = DT_ERR_CANCELLED;
			event(w, UI_EV_INFO, -1, "cancelled after %lld steps", (long long)done);
			break;
		}
		rc = engine_step(e, w->err);
		if (rc == ENGINE_DONE) {
			rc = DT_OK;
			break;
		}
		if (rc == DT_ERR_CANCELLED) {
			event(w, UI_EV_INFO, -1, "cancelled after %lld steps (the step in flight was dropped)",
			      (long long)done);
			break;
		}
		if (rc < 0) {
			event(w, UI_EV_ERROR, -1, "%s", w->err);
			break;
		}
		done++;
		set_progress(w, done, steps);
		int64_t now = dt_now_ns();
		if (replay || now - last_pub > 20000000LL) { /* at most 50 snapshots a second */
			publish(w);
			last_pub = now;
		}
		if (replay && w->p.replay_fps > 0 && !pace(w, 1000000000LL / w->p.replay_fps)) {
			rc = DT_ERR_CANCELLED;
			event(w, UI_EV_INFO, -1, "replay stopped after %lld steps", (long long)done);
			break;
		}
		if (!replay && now - w->auto_ns > AUTOSAVE_EVERY_NS)
			autosave(w, false);
	}
	for (int32_t i = 0; i < n_paused; i++) {
		const struct tree_node *nd = tree_node(t, paused[i]);
		if (nd && nd->status == TREE_FINISHED && nd->n_children == 0)
			tree_set_status(t, paused[i], TREE_LIVE, NULL);
	}
	free(paused);
	if (rc == DT_OK && done > 0 && !replay) {
		double s = (double)(dt_now_ns() - t0) * 1e-9;
		event(w, UI_EV_INFO, -1, "%lld steps in %.1f s", (long long)done, s);
	}
	return rc;
}

// ---- engines

static int32_t first_live_leaf(struct tree *t);

static struct engine *new_engine(struct ui_worker *w, struct model *m, char *err)
{
	struct engine_params ep = w->ep;
	ep.model = m;
	ep.model_path = NULL;
	ep.max_branch_tokens = 0; /* each job says how many steps it grows */
	struct engine *e = engine_new(&ep, err);
	if (!e && ep.backend != BACKEND_CPU) {
		/* the GPU cannot take this model (head dim, memory): attention on the cpu */
		event(w, UI_EV_INFO, -1, "%s backend: %s; attention on the cpu", backend_kind_name(ep.backend), err);
		ep.backend = w->ep.backend = BACKEND_CPU;
		e = engine_new(&ep, err);
	}
	return e;
}

static void close_replay(struct ui_worker *w)
{
	if (!w->replay)
		return;
	struct engine *r = w->replay;
	w->replay = NULL;
	set_active(w);
	engine_free(r);
	workload_free(w->wl);
	w->wl = NULL;
	w->replay_name[0] = 0;
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		treeplan_free(w->whatif[a]);
		w->whatif[a] = NULL;
	}
}

/* Replaces the main engine by ne, carrying the tree over; frees the old
 * engine (and old_model after it, when not NULL).  false + event when the
 * tree could not be carried (ne is then freed, unless keep_on_fail). */
static bool swap_engine(struct ui_worker *w, struct engine *ne, struct model *old_model, bool must_carry)
{
	struct tree *t = w->eng ? engine_tree(w->eng) : NULL;
	bool was_saved = tree_saved(w);
	if (t) {
		char tmp[600];
		snprintf(tmp, sizeof(tmp), "%s.carry%d.json", w->p.autosave_path ? w->p.autosave_path : "/tmp/deftree",
			 (int)getpid());
		int rc = engine_save(w->eng, tmp, false, w->err);
		if (rc == DT_OK)
			rc = engine_load(ne, tmp, w->err);
		unlink(tmp);
		if (rc != DT_OK) {
			if (must_carry) {
				event(w, UI_EV_ERROR, -1, "the tree cannot move to the new engine: %s", w->err);
				return false;
			}
			event(w, UI_EV_INFO, -1, "the tree was not carried over (%s); it stays in the autosave", w->err);
		}
	}
	struct engine *old = w->eng;
	w->eng = ne;
	set_active(w);
	engine_free(old);
	if (old_model)
		model_free(old_model);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		treeplan_free(w->whatif[a]);
		w->whatif[a] = NULL;
	}
	if (was_saved)
		mark_saved(w);
	/* ids are new in the carried tree: the cursor goes to a live branch */
	if (engine_tree(ne))
		event(w, UI_EV_SELECT, first_live_leaf(engine_tree(ne)), NULL);
	return true;
}

static void model_facts(struct ui_worker *w)
{
	const char *base = strrchr(w->model_path, '/');
	base = base ? base + 1 : w->model_path;
	snprintf(w->model_name, sizeof(w->model_name), "%.150s", base);
	char *ext = strstr(w->model_name, ".gguf");
	if (ext && ext[5] == 0)
		*ext = 0;
	const struct tokenizer *tok = engine_tokenizer(w->eng);
	w->chat_ok = false;
	w->chatml = false;
	if (tok) {
		struct tokenizer_chat_msg msg = { "user", "x" };
		char *s = tokenizer_chat_format(tok, &msg, 1, true, NULL);
		w->chat_ok = s != NULL;
		free(s);
		w->chatml = tokenizer_find(tok, "<|im_start|>", 12) >= 0 && tokenizer_find(tok, "<|im_end|>", 10) >= 0;
	}
}

static void do_load_model(struct ui_worker *w, const char *path)
{
	set_job_name(w, "loading model");
	struct model_params mp = model_default_params();
	if (w->p.n_threads > 0)
		mp.n_threads = w->p.n_threads;
	struct model *m = model_load(path, &mp, w->err);
	if (!m) {
		if (w->eng)
			event(w, UI_EV_ERROR, -1, "%s (the current model and tree stay)", w->err);
		else
			event(w, UI_EV_ERROR, -1, "%s (./bootstrap fetches the default model; :load PATH loads one)",
			      w->err);
		return;
	}
	struct engine *ne = new_engine(w, m, w->err);
	if (!ne) {
		event(w, UI_EV_ERROR, -1, "%s", w->err);
		model_free(m);
		return;
	}
	close_replay(w);
	struct model *old = w->model;
	if (w->eng) {
		autosave(w, false);
		swap_engine(w, ne, old, false);
	} else {
		w->eng = ne;
		set_active(w);
		model_free(old);
	}
	w->model = m;
	snprintf(w->model_path, sizeof(w->model_path), "%s", path);
	model_facts(w);
	event(w, UI_EV_INFO, -1, "loaded %s (%s, %s of weights)", w->model_name, model_hparams(m)->arch,
	      ui_fmt_bytes(model_weight_bytes(m), w->err, 32));
}

static void rebuild(struct ui_worker *w, const char *what)
{
	if (!w->model) {
		event(w, UI_EV_INFO, -1, "%s: takes effect when a model is loaded", what);
		return;
	}
	set_job_name(w, "rebuilding the KV pool");
	struct engine *ne = new_engine(w, w->model, w->err);
	if (!ne) {
		event(w, UI_EV_ERROR, -1, "%s", w->err);
		return;
	}
	/* keep the sampler and algorithm the old engine used */
	if (w->eng) {
		engine_set_sampler(ne, &engine_params(w->eng)->sampler, NULL);
		engine_set_algo(ne, engine_params(w->eng)->algo, NULL);
	}
	if (!swap_engine(w, ne, NULL, true)) {
		engine_free(ne);
		return;
	}
	struct kvpool *pool = engine_pool(w->eng);
	event(w, UI_EV_INFO, -1, "%s: %d pages of %d tokens (%s each)", what, kvpool_n_pages(pool),
	      kvpool_params(pool)->page_size, ui_fmt_bytes(kvpool_page_bytes(pool), w->err, 32));
}

// ---- jobs

static bool need_main(struct ui_worker *w)
{
	close_replay(w);
	if (!w->eng) {
		event(w, UI_EV_ERROR, -1, "no model loaded: :load PATH loads one");
		return false;
	}
	return true;
}

static const struct tree_node *leaf_or_error(struct ui_worker *w, int32_t node)
{
	struct tree *t = engine_tree(w->eng);
	const struct tree_node *nd = t ? tree_node(t, node) : NULL;
	if (!nd || nd->status == TREE_PRUNED) {
		event(w, UI_EV_ERROR, -1, "node %d is not in the tree", node);
		return NULL;
	}
	return nd;
}

static void job_prompt(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	engine_set_policy(e, ENGINE_POLICY_SAMPLE, 1, 1, NULL);
	bool chat = q->j.flag && w->chat_ok;
	set_job_name(w, "prefill");
	int rc = engine_prefill(e, q->text ? q->text : "", chat, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "prompt: %s", w->err);
		return;
	}
	w->session[0] = 0;
	struct tree *t = engine_tree(e);
	int32_t root = tree_root(t), n = q->j.n > 0 ? q->j.n : 1;
	int32_t *ids = xmallocarray((size_t)n, sizeof(*ids));
	rc = engine_sample_n(e, root, tree_node(t, root)->n_tokens, n, ids, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "prompt: %s", w->err);
		free(ids);
		return;
	}
	event(w, UI_EV_SELECT, ids[0], NULL);
	publish(w);
	set_job_name(w, "generating");
	grow(w, e, ids, n, q->j.steps);
	free(ids);
}

static void job_reply(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	const struct tree_node *nd = leaf_or_error(w, q->j.node);
	if (!nd)
		return;
	if (nd->n_children > 0) {
		event(w, UI_EV_ERROR, -1, "reply: node %d is not a leaf (select the branch's last node)", nd->id);
		return;
	}
	struct tree *t = engine_tree(e);
	const struct tokenizer *tok = engine_tokenizer(e);
	int32_t leaf = nd->id;
	if (nd->status == TREE_FINISHED)
		tree_set_status(t, leaf, TREE_LIVE, NULL);
	int rc;
	if (w->chatml && tok) {
		/* close the assistant turn (unless it closed itself), add the user's, open the next */
		bool closed = nd->n_tokens > 0 && tokenizer_is_eog(tok, nd->tokens[nd->n_tokens - 1].id);
		size_t len = strlen(q->text) + 96;
		char *turn = xmalloc(len);
		snprintf(turn, len, "%s\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", closed ? "" : "<|im_end|>",
			 q->text);
		int32_t *ids = NULL, n = 0;
		rc = tokenizer_encode(tok, turn, strlen(turn), false, true, &ids, &n, w->err);
		free(turn);
		if (rc == 0)
			rc = tree_append(t, leaf, ids, NULL, NULL, n, (int32_t)(engine_n_steps(e) + 1), w->err);
		free(ids);
	} else {
		rc = engine_force_text(e, leaf, q->text, w->err);
	}
	if (rc) {
		event(w, UI_EV_ERROR, -1, "reply: %s", w->err);
		return;
	}
	event(w, UI_EV_SELECT, leaf, NULL);
	set_job_name(w, "generating");
	grow(w, e, &leaf, 1, q->j.steps);
}

static void job_grow(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	set_job_name(w, "generating");
	if (q->j.node < 0) {
		grow(w, e, NULL, 0, q->j.steps);
		return;
	}
	const struct tree_node *nd = leaf_or_error(w, q->j.node);
	if (!nd)
		return;
	struct tree *t = engine_tree(e);
	int32_t cap = tree_n_ids(t);
	int32_t *leaves = xmallocarray((size_t)(cap ? cap : 1), sizeof(*leaves));
	int32_t n = 0;
	if (nd->n_children == 0) {
		if (nd->status == TREE_FINISHED)
			tree_set_status(t, nd->id, TREE_LIVE, NULL);
		leaves[n++] = nd->id;
	} else {
		/* every live leaf below the node */
		int32_t nl = tree_live_leaves(t, leaves, cap);
		for (int32_t i = 0; i < nl; i++)
			if (tree_is_ancestor(t, nd->id, leaves[i]))
				leaves[n++] = leaves[i];
		if (n == 0) {
			event(w, UI_EV_ERROR, -1, "no live branch below node %d: select a leaf (or fork with f)", nd->id);
			free(leaves);
			return;
		}
	}
	grow(w, e, leaves, n, q->j.steps);
	free(leaves);
}

static void job_fork(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	if (!leaf_or_error(w, q->j.node))
		return;
	int32_t id = engine_fork(e, q->j.node, q->j.index, q->j.mode, q->j.token, q->text, w->err);
	if (id < 0) {
		event(w, UI_EV_ERROR, -1, "fork: %s", w->err);
		return;
	}
	event(w, UI_EV_SELECT, id, NULL);
	publish(w);
	set_job_name(w, "generating");
	grow(w, e, &id, 1, q->j.steps);
}

static void job_sample(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	if (!leaf_or_error(w, q->j.node))
		return;
	int32_t n = q->j.n;
	if (n < 1 || n > 64) {
		event(w, UI_EV_ERROR, -1, "sample: branch count (expected 1 .. 64, found %d)", n);
		return;
	}
	int32_t ids[64];
	int rc = engine_sample_n(e, q->j.node, q->j.index, n, ids, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "sample: %s", w->err);
		return;
	}
	event(w, UI_EV_SELECT, ids[0], NULL);
	publish(w);
	set_job_name(w, "sampling");
	grow(w, e, ids, n, q->j.steps);
}

static void job_beam(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	const struct tree_node *nd = leaf_or_error(w, q->j.node);
	if (!nd)
		return;
	if (nd->n_tokens == 0) {
		event(w, UI_EV_ERROR, -1, "beam: node %d has no tokens yet", nd->id);
		return;
	}
	int rc = engine_set_policy(e, ENGINE_POLICY_BEAM, q->j.n, q->j.alpha, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "beam: %s", w->err);
		return;
	}
	int32_t leaf;
	rc = engine_sample_n(e, nd->id, nd->n_tokens, 1, &leaf, w->err);
	if (rc) {
		engine_set_policy(e, ENGINE_POLICY_SAMPLE, 1, 1, NULL);
		event(w, UI_EV_ERROR, -1, "beam: %s", w->err);
		return;
	}
	event(w, UI_EV_SELECT, leaf, NULL);
	set_job_name(w, "beam search");
	int32_t from = nd->id;
	grow(w, e, &leaf, 1, q->j.steps);
	engine_set_policy(e, ENGINE_POLICY_SAMPLE, 1, 1, NULL);
	/* the cursor to a surviving beam (the one it was on may be pruned) */
	struct tree *t = engine_tree(e);
	int32_t cap = tree_n_ids(t);
	int32_t *leaves = xmallocarray((size_t)(cap ? cap : 1), sizeof(*leaves));
	int32_t nl = tree_live_leaves(t, leaves, cap), pick = -1;
	for (int32_t i = 0; i < nl && pick < 0; i++)
		if (tree_node(t, from) && tree_is_ancestor(t, from, leaves[i]))
			pick = leaves[i];
	free(leaves);
	if (pick >= 0)
		event(w, UI_EV_SELECT, pick, NULL);
}

static void job_prune(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	const struct tree_node *nd = leaf_or_error(w, q->j.node);
	if (!nd)
		return;
	int32_t parent = nd->parent;
	struct kvpool *pool = engine_pool(e);
	int32_t free0 = kvpool_n_free(pool);
	struct tree_stats s0, s1;
	tree_stats(engine_tree(e), &s0);
	int rc = engine_prune(e, q->j.node, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "%s", w->err);
		return;
	}
	tree_stats(engine_tree(e), &s1);
	event(w, UI_EV_INFO, -1, "pruned #%d: %d nodes, %lld tokens; %d pages freed", q->j.node,
	      s0.n_nodes - s1.n_nodes, (long long)(s0.stored_tokens - s1.stored_tokens), kvpool_n_free(pool) - free0);
	event(w, UI_EV_SELECT, parent, NULL);
}

static void job_finish(struct ui_worker *w, const struct qjob *q)
{
	struct engine *e = w->eng;
	const struct tree_node *nd = leaf_or_error(w, q->j.node);
	if (!nd)
		return;
	struct tree *t = engine_tree(e);
	enum tree_status st = q->j.flag ? TREE_FINISHED : TREE_LIVE;
	if (nd->n_children == 0) {
		tree_set_status(t, nd->id, st, NULL);
		event(w, UI_EV_INFO, -1, "#%d is %s", nd->id, q->j.flag ? "finished" : "live again");
		return;
	}
	int32_t cap = tree_n_ids(t), n = 0;
	int32_t *leaves = xmallocarray((size_t)(cap ? cap : 1), sizeof(*leaves));
	int32_t nl = tree_live_leaves(t, leaves, cap);
	for (int32_t i = 0; i < nl; i++)
		if (tree_is_ancestor(t, nd->id, leaves[i])) {
			tree_set_status(t, leaves[i], TREE_FINISHED, NULL);
			n++;
		}
	free(leaves);
	event(w, UI_EV_INFO, -1, "%d live branches below #%d finished", n, nd->id);
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*end || errno || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static void job_set(struct ui_worker *w, const struct qjob *q)
{
	const char *name = q->text ? q->text : "", *value = q->path ? q->path : "";
	struct engine *e = w->eng; /* a replay does not sample */
	long v;
	if (!strcmp(name, "max-tokens")) {
		if (!parse_long(value, 0, 1 << 24, &v)) {
			event(w, UI_EV_ERROR, -1, "max-tokens: expected 0 .. 16777216 (0 = no limit), found '%s'", value);
			return;
		}
		w->max_tokens = (int32_t)v;
		event(w, UI_EV_INFO, -1, "max-tokens = %ld (steps an answer grows after a prompt or reply)", v);
		return;
	}
	if (!strcmp(name, "page-size")) {
		if (!parse_long(value, 1, 4096, &v)) {
			event(w, UI_EV_ERROR, -1, "page-size: expected 1 .. 4096 tokens, found '%s'", value);
			return;
		}
		int32_t old = w->ep.page_size;
		w->ep.page_size = (int32_t)v;
		close_replay(w);
		rebuild(w, "page-size");
		if (w->eng && engine_params(w->eng)->page_size != (int32_t)v)
			w->ep.page_size = old;
		return;
	}
	if (!strcmp(name, "kv-budget")) {
		if (!parse_long(value, 1, 1 << 20, &v)) {
			event(w, UI_EV_ERROR, -1, "kv-budget: expected 1 .. 1048576 MiB, found '%s'", value);
			return;
		}
		size_t old = w->ep.kv_budget;
		w->ep.kv_budget = (size_t)v << 20;
		close_replay(w);
		rebuild(w, "kv-budget");
		if (w->eng && engine_params(w->eng)->kv_budget != (size_t)v << 20)
			w->ep.kv_budget = old;
		return;
	}
	struct sampler_params sp = e ? engine_params(e)->sampler : w->ep.sampler;
	if (sampler_params_set(&sp, name, value, w->err)) {
		event(w, UI_EV_ERROR, -1, "set: %s", w->err);
		return;
	}
	if (e && engine_set_sampler(e, &sp, w->err)) {
		event(w, UI_EV_ERROR, -1, "set: %s", w->err);
		return;
	}
	w->ep.sampler = sp;
	char d[256];
	sampler_params_describe(&sp, d, sizeof(d));
	event(w, UI_EV_INFO, -1, "%s = %s (%s)", name, value, d);
}

static void job_save(struct ui_worker *w, const struct qjob *q)
{
	if (!engine_tree(w->eng)) {
		event(w, UI_EV_ERROR, -1, "save: no tree yet");
		return;
	}
	if (save_atomic(w->eng, q->path, w->err)) {
		event(w, UI_EV_ERROR, -1, "save: %s", w->err);
		return;
	}
	mark_saved(w);
	snprintf(w->session, sizeof(w->session), "%s", q->path);
	struct tree_stats s;
	tree_stats(engine_tree(w->eng), &s);
	event(w, UI_EV_SAVED, -1, "%s", q->path);
	event(w, UI_EV_INFO, -1, "saved %d nodes, %lld tokens to %s", s.n_nodes, (long long)s.stored_tokens, q->path);
}

static int32_t first_live_leaf(struct tree *t)
{
	int32_t cap = tree_n_ids(t), id = tree_root(t);
	int32_t *leaves = xmallocarray((size_t)(cap ? cap : 1), sizeof(*leaves));
	if (tree_live_leaves(t, leaves, cap) > 0)
		id = leaves[0];
	free(leaves);
	return id;
}

static void job_open(struct ui_worker *w, const struct qjob *q)
{
	autosave(w, false);
	set_job_name(w, "opening (recomputing KV)");
	int64_t t0 = dt_now_ns();
	int rc = engine_load(w->eng, q->path, w->err);
	if (rc) {
		/* session_load refuses a broken file before anything changes; a
		 * failure after that (KV recompute) leaves the loaded tree */
		event(w, UI_EV_ERROR, -1, "open: %s", w->err);
		if (!engine_tree(w->eng))
			return;
	}
	mark_saved(w);
	snprintf(w->session, sizeof(w->session), "%s", q->path);
	struct tree *t = engine_tree(w->eng);
	struct tree_stats s;
	tree_stats(t, &s);
	event(w, UI_EV_SAVED, -1, "%s", q->path);
	event(w, UI_EV_SELECT, first_live_leaf(t), NULL);
	if (rc == DT_OK)
		event(w, UI_EV_INFO, -1, "opened %s: %d nodes, %lld tokens (KV recomputed in %.1f s)", q->path, s.n_nodes,
		      (long long)s.stored_tokens, (double)(dt_now_ns() - t0) * 1e-9);
}

static void job_export(struct ui_worker *w, const struct qjob *q)
{
	const char *fmt = q->text ? q->text : "";
	int rc;
	if (!strcmp(fmt, "json"))
		rc = engine_save(w->eng, q->path, true, w->err);
	else if (!strcmp(fmt, "dot"))
		rc = engine_save_dot(w->eng, q->path, w->err);
	else {
		event(w, UI_EV_ERROR, -1, "export: format '%s' (expected json or dot)", fmt);
		return;
	}
	if (rc)
		event(w, UI_EV_ERROR, -1, "export: %s", w->err);
	else
		event(w, UI_EV_INFO, -1, "exported %s to %s", fmt, q->path);
}

/* A pool about 1.5 times what the replay stores, so that the KV grid shows
 * the workload's pages rather than a sea of free ones. */
static size_t replay_budget(const struct workload *wl, int32_t index, const struct engine_params *ep)
{
	int64_t tokens = 4096;
	if (wl->kind == WORKLOAD_SPEC && wl->spec) {
		const struct workload_spec *sp = wl->spec;
		int32_t r = index >= 0 && index < sp->n_records ? index : 0;
		int64_t steps = sp->n_records > 0 ? sp->records[r].n_steps : 0;
		tokens = 1000 + sp->size + steps * (sp->max_depth + 1) + (int64_t)sp->size * 2;
	} else if (wl->n_trees > 0) {
		const struct workload_tree *t = &wl->trees[index >= 0 && index < wl->n_trees ? index : 0];
		tokens = t->n_tokens + (int64_t)t->n_nodes * ep->page_size;
	}
	const struct engine_io_heads *h = &ep->io_heads;
	uint64_t token_bytes = (uint64_t)h->n_layer * (uint64_t)h->n_kv_head * (uint64_t)h->head_dim * 2u *
			       (uint64_t)h->elt_bytes;
	uint64_t b = (uint64_t)(tokens + tokens / 2 + 64) * token_bytes;
	return b < ((uint64_t)1 << 20) ? (size_t)1 << 20 : (size_t)b;
}

static void job_replay(struct ui_worker *w, const struct qjob *q)
{
	close_replay(w);
	const char *spec = q->path ? q->path : "";
	struct workload *wl;
	if (!strncmp(spec, "fewshot:", 8)) {
		int p = 0, b = 0, s = 0;
		if (sscanf(spec + 8, "%d:%d:%d", &p, &b, &s) != 3) {
			event(w, UI_EV_ERROR, -1, "replay: '%s' (expected fewshot:PROMPT:BRANCHES:STEPS)", spec);
			return;
		}
		wl = workload_fewshot(p, b, s, w->err);
	} else {
		wl = workload_load(spec, w->err);
	}
	if (!wl) {
		event(w, UI_EV_ERROR, -1, "replay: %s", w->err);
		return;
	}
	struct engine_params ep = w->ep;
	ep.model = NULL;
	ep.model_path = NULL;
	ep.n_alt = 0;
	ep.max_branch_tokens = 0;
	if (w->eng)
		ep.algo = engine_params(w->eng)->algo;
	if (w->model) {
		const struct model_hparams *hp = model_hparams(w->model);
		ep.io_heads = (struct engine_io_heads){ hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, 4 };
	}
	ep.kv_budget = replay_budget(wl, q->j.n, &ep); /* accounting only: no K/V memory in IO-only mode */
	struct engine *re = engine_new(&ep, w->err);
	if (!re) {
		event(w, UI_EV_ERROR, -1, "replay: %s", w->err);
		workload_free(wl);
		return;
	}
	set_job_name(w, "replay prefill");
	int rc = engine_replay_begin(re, wl, q->j.n, 1000, w->err);
	if (rc) {
		event(w, UI_EV_ERROR, -1, "replay: %s", w->err);
		engine_free(re);
		workload_free(wl);
		return;
	}
	w->replay = re;
	w->wl = wl;
	const char *base = strrchr(spec, '/');
	snprintf(w->replay_name, sizeof(w->replay_name), "%s #%d", base ? base + 1 : spec, q->j.n);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++) {
		treeplan_free(w->whatif[a]);
		w->whatif[a] = NULL;
	}
	set_active(w);
	event(w, UI_EV_SELECT, tree_root(engine_tree(re)), NULL);
	publish(w);
	set_job_name(w, "replay");
	rc = grow(w, re, NULL, 0, engine_replay_length(re) + 1);
	if (rc == DT_OK)
		event(w, UI_EV_INFO, -1, "replay of %s done: %lld steps (IO-only; Esc or :replay stop returns)",
		      w->replay_name, (long long)engine_n_steps(re));
}

static void run_job(struct ui_worker *w, const struct qjob *q)
{
	switch (q->j.kind) {
	case UI_JOB_LOAD_MODEL:
		do_load_model(w, q->path);
		break;
	case UI_JOB_PROMPT:
		if (need_main(w))
			job_prompt(w, q);
		break;
	case UI_JOB_REPLY:
		if (need_main(w))
			job_reply(w, q);
		break;
	case UI_JOB_GROW:
		if (need_main(w))
			job_grow(w, q);
		break;
	case UI_JOB_FORK:
		if (need_main(w))
			job_fork(w, q);
		break;
	case UI_JOB_SAMPLE:
		if (need_main(w))
			job_sample(w, q);
		break;
	case UI_JOB_BEAM:
		if (need_main(w))
			job_beam(w, q);
		break;
	case UI_JOB_PRUNE:
		if (need_main(w))
			job_prune(w, q);
		break;
	case UI_JOB_FINISH:
		if (need_main(w))
			job_finish(w, q);
		break;
	case UI_JOB_ALGO: {
		struct engine *e = cur_engine(w);
		if (!e) {
			event(w, UI_EV_ERROR, -1, "no model loaded");
			break;
		}
		if (engine_set_algo(e, (enum treeplan_algo)q->j.n, w->err)) {
			event(w, UI_EV_ERROR, -1, "algo: %s", w->err);
			break;
		}
		if (e == w->eng)
			w->ep.algo = (enum treeplan_algo)q->j.n;
		event(w, UI_EV_INFO, -1, "attention algorithm: %s (from the next step on)",
		      treeplan_algo_name((enum treeplan_algo)q->j.n));
		break;
	}
	case UI_JOB_BACKEND: {
		if (!need_main(w))
			break;
		enum backend_kind k = (enum backend_kind)q->j.n;
		set_job_name(w, k == BACKEND_CUDA ? "starting the cuda backend" : "switching backend");
		if (engine_set_backend(w->eng, k, w->err)) {
			event(w, UI_EV_ERROR, -1, "backend %s: %s", backend_kind_name(k), w->err);
			break;
		}
		w->ep.backend = k;
		event(w, UI_EV_INFO, -1, "attention on %s: %s (from the next step on)", backend_kind_name(k),
		      engine_backend_info(w->eng)->device);
		break;
	}
	case UI_JOB_SET:
		job_set(w, q);
		break;
	case UI_JOB_SAVE:
		if (need_main(w))
			job_save(w, q);
		break;
	case UI_JOB_OPEN:
		if (need_main(w))
			job_open(w, q);
		break;
	case UI_JOB_EXPORT:
		if (need_main(w))
			job_export(w, q);
		break;
	case UI_JOB_REPLAY:
		job_replay(w, q);
		break;
	case UI_JOB_REPLAY_STOP:
		if (w->replay) {
			close_replay(w);
			event(w, UI_EV_INFO, -1, "back to the model's tree");
			if (w->eng && engine_tree(w->eng))
				event(w, UI_EV_SELECT, first_live_leaf(engine_tree(w->eng)), NULL);
		}
		break;
	case UI_JOB_AUTOSAVE:
		autosave(w, true);
		break;
	}
}

// ---- the thread

static double measure_copy(void)
{
	size_t n = (size_t)64 << 20;
	char *a = malloc(n), *b = malloc(n);
	if (!a || !b) {
		free(a);
		free(b);
		return 0;
	}
	memset(a, 1, n);
	memset(b, 0, n);
	int64_t best = INT64_MAX;
	for (int i = 0; i < 3; i++) {
		int64_t t0 = dt_now_ns();
		memcpy(b, a, n);
		int64_t t = dt_now_ns() - t0;
		a[i] = b[n - 1 - (size_t)i]; /* keep the copies */
		if (t < best)
			best = t;
	}
	free(a);
	free(b);
	return best > 0 ? 2.0 * (double)n / (double)best : 0; /* bytes read + written per ns = GB/s */
}

static void *worker_main(void *arg)
{
	struct ui_worker *w = arg;
	/* The engine thread and the compute threads it starts (they inherit its
	 * nice value) yield to the UI thread and the terminal: keys are answered
	 * at once even when the model keeps every core busy. */
#ifdef __linux__
	if (w->p.nice > 0)
		setpriority(PRIO_PROCESS, (id_t)gettid(), w->p.nice);
#endif
	if (w->p.measure_bandwidth)
		w->copy_gbps = measure_copy();
	if (w->p.model_path) {
		pthread_mutex_lock(&w->mu);
		w->rs.busy = true;
		pthread_mutex_unlock(&w->mu);
		do_load_model(w, w->p.model_path);
	}
	publish(w);
	for (;;) {
		pthread_mutex_lock(&w->mu);
		w->running = false;
		w->rs.busy = false;
		w->rs.done = w->rs.total = 0;
		w->rs.job[0] = 0;
		pthread_cond_broadcast(&w->cv); /* ui_worker_wait_idle */
		while (!w->quit && !w->head)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		struct qjob *q = w->head;
		w->head = q->next;
		if (!w->head)
			w->tail = NULL;
		if (w->cancel_pending) {
			if (w->active)
				engine_clear_cancel(w->active);
			w->cancel_pending = false;
		}
		w->running = true;
		w->rs.busy = true;
		w->rs.since_ns = dt_now_ns();
		pthread_mutex_unlock(&w->mu);
		wake(w);
		run_job(w, q);
		if (q->j.kind != UI_JOB_AUTOSAVE)
			autosave(w, false);
		free(q->text);
		free(q->path);
		free(q);
		publish(w);
	}
	return NULL;
}

struct ui_worker *ui_worker_start(const struct ui_worker_params *p)
{
	struct ui_worker *w = xcalloc(1, sizeof(*w));
	w->p = *p;
	w->p.model_path = p->model_path ? xstrdup(p->model_path) : NULL;
	w->p.autosave_path = p->autosave_path ? xstrdup(p->autosave_path) : NULL;
	if (w->p.replay_fps <= 0)
		w->p.replay_fps = 20;
	w->ep = p->engine;
	w->max_tokens = p->max_tokens;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
		fprintf(stderr, "deftree: cannot start the engine thread\n");
		exit(1);
	}
	return w;
}

void ui_worker_stop(struct ui_worker *w)
{
	if (!w)
		return;
	ui_worker_cancel(w);
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	close_replay(w);
	engine_free(w->eng);
	model_free(w->model);
	for (int a = 0; a < TREEPLAN_N_ALGO; a++)
		treeplan_free(w->whatif[a]);
	ui_snap_free(w->mail);
	while (w->head) {
		struct qjob *q = w->head;
		w->head = q->next;
		free(q->text);
		free(q->path);
		free(q);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free((char *)w->p.model_path);
	free((char *)w->p.autosave_path);
	free(w);
}

void ui_worker_submit(struct ui_worker *w, const struct ui_job *j)
{
	struct qjob *q = xcalloc(1, sizeof(*q));
	q->j = *j;
	q->text = j->text ? xstrdup(j->text) : NULL;
	q->path = j->path ? xstrdup(j->path) : NULL;
	q->j.text = q->text;
	q->j.path = q->path;
	pthread_mutex_lock(&w->mu);
	if (w->tail)
		w->tail->next = q;
	else
		w->head = q;
	w->tail = q;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void ui_worker_cancel(struct ui_worker *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->head) {
		struct qjob *q = w->head;
		w->head = q->next;
		free(q->text);
		free(q->path);
		free(q);
	}
	w->tail = NULL;
	if (w->running) {
		w->cancel_pending = true;
		if (w->active)
			engine_cancel(w->active);
	}
	w->paused = false;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void ui_worker_pause(struct ui_worker *w, bool paused)
{
	pthread_mutex_lock(&w->mu);
	w->paused = paused;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

struct ui_snap *ui_worker_take_snap(struct ui_worker *w)
{
	pthread_mutex_lock(&w->mu);
	struct ui_snap *s = w->mail;
	w->mail = NULL;
	pthread_mutex_unlock(&w->mu);
	return s;
}

int ui_worker_take_events(struct ui_worker *w, struct ui_event *out, int cap)
{
	pthread_mutex_lock(&w->mu);
	int n = w->n_ev < cap ? w->n_ev : cap;
	memcpy(out, w->ev, (size_t)n * sizeof(*out));
	memmove(w->ev, w->ev + n, (size_t)(w->n_ev - n) * sizeof(*out));
	w->n_ev -= n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void ui_worker_run_state(struct ui_worker *w, struct ui_run_state *rs)
{
	pthread_mutex_lock(&w->mu);
	*rs = w->rs;
	rs->paused = w->paused && w->running;
	pthread_mutex_unlock(&w->mu);
}

bool ui_worker_busy(struct ui_worker *w)
{
	pthread_mutex_lock(&w->mu);
	bool b = w->running || w->head;
	pthread_mutex_unlock(&w->mu);
	return b;
}

bool ui_worker_wait_idle(struct ui_worker *w, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t = (int64_t)ts.tv_nsec + (int64_t)timeout_ms * 1000000LL;
	ts.tv_sec += (time_t)(t / 1000000000LL);
	ts.tv_nsec = (long)(t % 1000000000LL);
	pthread_mutex_lock(&w->mu);
	while (w->running || w->head) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
	bool idle = !w->running && !w->head;
	pthread_mutex_unlock(&w->mu);
	return idle;
}
