/*
 * backend.c — the backend interface (backend.h) and the cpu backend, which
 * runs cpu_tree_attn.c on the host pool: the reference every other backend
 * is tested against.  The cuda backend lives in backend_cuda.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "common.h"
#include "cpu_tree_attn.h"
#include "kvpool.h"
#include "threadpool.h"

static const char *const kind_names[BACKEND_N_KIND] = { "cpu", "cuda" };

const char *backend_kind_name(enum backend_kind k)
{
	return (int)k >= 0 && k < BACKEND_N_KIND ? kind_names[k] : "?";
}

int backend_kind_parse(const char *s, enum backend_kind *out, char *err)
{
	if (!strcmp(s, "cpu")) {
		*out = BACKEND_CPU;
	} else if (!strcmp(s, "cuda") || !strcmp(s, "gpu")) {
		*out = BACKEND_CUDA;
	} else if (!strcmp(s, "auto")) {
		*out = backend_available(BACKEND_CUDA, NULL) ? BACKEND_CUDA : BACKEND_CPU;
	} else {
		return dt_err(err, "unknown backend '%s' (expected cpu, cuda or auto)", s), DT_ERR_ARG;
	}
	return DT_OK;
}

bool backend_available(enum backend_kind k, char *why)
{
	if (k == BACKEND_CPU)
		return true;
	if (k == BACKEND_CUDA)
		return backend_cuda_available(why);
	if (why)
		dt_err(why, "unknown backend %d", (int)k);
	return false;
}

int backend_choose(const char *text, const char *prog, FILE *notice, enum backend_kind *out, char *err)
{
	if (!text)
		text = "auto";
	int rc = backend_kind_parse(text, out, err);
	if (rc)
		return rc;
	char why[DT_ERR_LEN];
	if (!strcmp(text, "auto") && *out == BACKEND_CPU && notice && !backend_available(BACKEND_CUDA, why))
		fprintf(notice, "%s: attention on the cpu (%s)\n", prog, why);
	return DT_OK;
}

struct backend_params backend_default_params(void)
{
	struct backend_params p;
	memset(&p, 0, sizeof(p));
	p.measure_copy = true;
	return p;
}

// ---- cpu

struct cpu_impl {
	struct cpu_tree_attn *attn;
	const struct treeplan_flat *plan; /* of the current forward pass */
};

static int cpu_set_plan(struct backend *b, const struct treeplan_flat *f, int algo, char *err)
{
	(void)algo;
	(void)err;
	((struct cpu_impl *)b->impl)->plan = f;
	return DT_OK;
}

static int cpu_store(struct backend *b, int32_t layer, int32_t n, const int32_t *page, const int32_t *slot,
		     const float *k, const float *v, char *err)
{
	/* the pool is the cpu backend's memory: the engine has written the rows */
	(void)b, (void)layer, (void)n, (void)page, (void)slot, (void)k, (void)v, (void)err;
	return DT_OK;
}

static int cpu_attend(struct backend *b, int32_t layer, const float *q, float *out, char *err)
{
	struct cpu_impl *c = b->impl;
	if (!c->plan)
		return dt_err(err, "cpu backend: attend before a plan was set"), DT_ERR_ARG;
	return cpu_tree_attn_run(c->attn, c->plan, b->p.pool, layer, q, out, err);
}

static void cpu_free(struct backend *b)
{
	struct cpu_impl *c = b->impl;
	if (c)
		cpu_tree_attn_free(c->attn);
	free(c);
}

static const struct backend_ops cpu_ops = { cpu_set_plan, cpu_store, cpu_attend, cpu_free };

static int cpu_init(struct backend *b, char *err)
{
	struct cpu_tree_attn_params ap = cpu_tree_attn_default_params();
	ap.n_head = b->p.n_head;
	ap.n_kv_head = b->p.n_kv_head;
	ap.head_dim = b->p.head_dim;
	ap.portable = b->p.portable;
	struct cpu_impl *c = xcalloc(1, sizeof(*c));
	b->impl = c;
	b->ops = &cpu_ops;
	c->attn = cpu_tree_attn_new(&ap, b->p.tp, err);
	if (!c->attn)
		return DT_ERR_ARG;
	int nt = b->p.tp ? threadpool_n_threads(b->p.tp) : 1;
	snprintf(b->info.device, sizeof(b->info.device), "cpu %d thr %s", nt, cpu_tree_attn_kernel_name(c->attn));
	b->info.elt_bytes = (int32_t)kvpool_params(b->p.pool)->elt_bytes;
	return DT_OK;
}

// ---- the interface

struct backend *backend_new(enum backend_kind k, const struct backend_params *p, char *err)
{
	if ((int)k < 0 || k >= BACKEND_N_KIND) {
		dt_err(err, "unknown backend %d", (int)k);
		return NULL;
	}
	if (!p->pool || p->n_head < 1 || p->n_kv_head < 1 || p->n_head % p->n_kv_head || p->head_dim < 1) {
		dt_err(err, "%s backend: bad shape (%d/%d heads, dim %d%s)", kind_names[k], p->n_head, p->n_kv_head,
		       p->head_dim, p->pool ? "" : ", no pool");
		return NULL;
	}
	struct backend *b = xcalloc(1, sizeof(*b));
	b->p = *p;
	b->info.kind = k;
	int rc = k == BACKEND_CPU ? cpu_init(b, err) : backend_cuda_init(b, err);
	if (rc) {
		backend_free(b);
		return NULL;
	}
	return b;
}

void backend_free(struct backend *b)
{
	if (!b)
		return;
	if (b->ops)
		b->ops->free(b);
	free(b);
}

const struct backend_info *backend_info(const struct backend *b)
{
	return &b->info;
}

int backend_set_plan(struct backend *b, const struct treeplan_flat *f, int algo, char *err)
{
	memset(&b->cnt, 0, sizeof(b->cnt));
	return b->ops->set_plan(b, f, algo, err);
}

int backend_store(struct backend *b, int32_t layer, int32_t n, const int32_t *page, const int32_t *slot,
		  const float *k, const float *v, char *err)
{
	return b->ops->store(b, layer, n, page, slot, k, v, err);
}

int backend_attend(struct backend *b, int32_t layer, const float *q, float *out, char *err)
{
	return b->ops->attend(b, layer, q, out, err);
}

void backend_get_counters(const struct backend *b, struct backend_counters *c)
{
	*c = b->cnt;
}
