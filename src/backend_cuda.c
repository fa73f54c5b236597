/*
 * backend_cuda.c — the cuda backend of backend.h: tree attention on the GPU
 * over a device mirror of the host page pool.
 *
 *   mirror   cuda_kv (kernels/kv_gpu.cu), fp16 or bf16, the pool's page ids;
 *            zeroed at creation, then every page in use is uploaded (a switch
 *            at run time), then each layer's new rows are scattered by
 *            cuda_kv_store_rows (one copy + one kernel);
 *   plan     cuda_attn_set_plan once per forward pass (incremental upload);
 *   attend   q uploaded in fp32 and rounded on the device (the host
 *            conversion cost ~10 ns a value), cuda_attn_run between two CUDA
 *            events, the fp32 output downloaded: all queued on the default
 *            stream through pinned buffers, then one wait (the CPU forward
 *            pass needs the output for the next matmul).
 * Built without CUDA, backend_cuda_available() says so and nothing else runs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "common.h"

#ifndef HAVE_CUDA

bool backend_cuda_available(char *why)
{
	if (why)
		dt_err(why, "this deftree was built without CUDA (configure found no nvcc)");
	return false;
}

int backend_cuda_init(struct backend *b, char *err)
{
	(void)b;
	backend_cuda_available(err);
	return DT_ERR_UNSUPPORTED;
}

#else

#include "kernels.h"
#include "kvpool.h"
#include "treeplan.h"

struct cuda_impl {
	struct cuda_kv *kv;
	struct cuda_attn *attn;
	struct cuda_timer *timer;
	enum cuda_dtype type;
	void *q_dev;       /* (n_q, n_head, head_dim) in the KV type */
	float *q32_dev;    /* the same in fp32, as uploaded */
	float *out_dev;    /* (n_q, n_head, head_dim) */
	float *q_host, *out_host; /* pinned copies: the transfers run asynchronously */
	size_t qo_cap;     /* elements of each of these buffers */
	int32_t n_q;       /* queries of the current plan, -1 before one */
};

bool backend_cuda_available(char *why)
{
	int n = cuda_device_count();
	if (n < 1) {
		if (why)
			dt_err(why, "no CUDA device found (no GPU or no driver)");
		return false;
	}
	return true;
}

static int cuda_set_plan(struct backend *b, const struct treeplan_flat *f, int algo, char *err)
{
	struct cuda_impl *c = b->impl;
	int rc = cuda_attn_set_plan(c->attn, f, algo, err);
	if (rc)
		return rc;
	struct cuda_attn_stats st;
	cuda_attn_get_stats(c->attn, &st);
	b->cnt.upload_bytes += st.upload_bytes;
	size_t need = (size_t)f->n_queries * (size_t)b->p.n_head * (size_t)b->p.head_dim;
	if (need > c->qo_cap) {
		int rc2 = cuda_sync(err); /* nothing may still use the old buffers */
		if (rc2)
			return rc2;
		cuda_free(c->q_dev);
		cuda_free(c->q32_dev);
		cuda_free(c->out_dev);
		cuda_host_free(c->q_host);
		cuda_host_free(c->out_host);
		c->q32_dev = c->out_dev = c->q_host = c->out_host = NULL;
		c->qo_cap = 0;
		need += need / 2; /* room to grow */
		c->q_dev = cuda_malloc(need * 2, err);
		c->q32_dev = c->q_dev ? cuda_malloc(need * sizeof(float), err) : NULL;
		c->out_dev = c->q32_dev ? cuda_malloc(need * sizeof(float), err) : NULL;
		c->q_host = c->out_dev ? cuda_host_alloc(need * sizeof(float), err) : NULL;
		c->out_host = c->q_host ? cuda_host_alloc(need * sizeof(float), err) : NULL;
		if (!c->out_host)
			return DT_ERR_DEVICE;
		c->qo_cap = need;
	}
	c->n_q = f->n_queries;
	return DT_OK;
}

static int cuda_store(struct backend *b, int32_t layer, int32_t n, const int32_t *page, const int32_t *slot,
		      const float *k, const float *v, char *err)
{
	struct cuda_impl *c = b->impl;
	uint64_t before = cuda_kv_uploaded_bytes(c->kv);
	int rc = cuda_kv_store_rows(c->kv, layer, n, page, slot, k, v, err);
	b->cnt.upload_bytes += cuda_kv_uploaded_bytes(c->kv) - before;
	return rc;
}

static int cuda_attend(struct backend *b, int32_t layer, const float *q, float *out, char *err)
{
	struct cuda_impl *c = b->impl;
	if (c->n_q < 0)
		return dt_err(err, "cuda backend: attend before a plan was set"), DT_ERR_ARG;
	size_t n = (size_t)c->n_q * (size_t)b->p.n_head * (size_t)b->p.head_dim;
	if (n == 0)
		return DT_OK;
	/* one queue on the default stream, one wait at its end */
	memcpy(c->q_host, q, n * sizeof(float));
	int rc = cuda_upload_async(c->q32_dev, c->q_host, n * sizeof(float), err);
	rc = rc ? rc : cuda_convert(c->q_dev, c->q32_dev, n, c->type, err);
	rc = rc ? rc : cuda_timer_start(c->timer, err);
	rc = rc ? rc : cuda_attn_run(c->attn, c->kv, layer, 0, c->q_dev, c->out_dev, err);
	rc = rc ? rc : cuda_timer_stop(c->timer, err);
	rc = rc ? rc : cuda_download_async(c->out_host, c->out_dev, n * sizeof(float), err);
	rc = rc ? rc : cuda_sync(err);
	if (rc)
		return rc;
	memcpy(out, c->out_host, n * sizeof(float));
	double ns = cuda_timer_ns(c->timer, err);
	if (ns < 0)
		return DT_ERR_DEVICE;
	b->cnt.device_ns += (int64_t)ns;
	b->cnt.upload_bytes += n * sizeof(float);
	b->cnt.download_bytes += n * sizeof(float);
	return DT_OK;
}

static void cuda_impl_free(struct backend *b)
{
	struct cuda_impl *c = b->impl;
	if (!c)
		return;
	cuda_attn_free(c->attn);
	cuda_kv_free(c->kv);
	cuda_timer_free(c->timer);
	cuda_free(c->q_dev);
	cuda_free(c->q32_dev);
	cuda_free(c->out_dev);
	cuda_host_free(c->q_host);
	cuda_host_free(c->out_host);
	free(c);
}

static const struct backend_ops cuda_ops = { cuda_set_plan, cuda_store, cuda_attend, cuda_impl_free };

/* Every page in use, every layer: the mirror of a pool that already holds a tree. */
static int mirror_pool(struct backend *b, char *err)
{
	struct cuda_impl *c = b->impl;
	const struct kvpool *pool = b->p.pool;
	const struct kvpool_params *kp = kvpool_params(pool);
	for (int32_t layer = 0; layer < kp->n_layer; layer++) {
		const float *k = kvpool_k(pool, layer), *v = kvpool_v(pool, layer);
		for (int32_t pg = 0; pg < kvpool_n_pages(pool); pg++) {
			if (kvpool_refcount(pool, pg) <= 0)
				continue;
			int rc = cuda_kv_upload(c->kv, layer, k, v, pg, 0, kp->page_size, err);
			if (rc)
				return rc;
		}
	}
	return DT_OK;
}

int backend_cuda_init(struct backend *b, char *err)
{
	const struct backend_params *p = &b->p;
	const struct kvpool_params *kp = kvpool_params(p->pool);
	if (!backend_cuda_available(err))
		return DT_ERR_UNSUPPORTED;
	if (p->head_dim != 64 && p->head_dim != 128)
		return dt_err(err, "cuda backend: head dim %d is not supported (the kernels take 64 or 128)",
			      p->head_dim),
		       DT_ERR_UNSUPPORTED;
	if (!kp->host_storage)
		return dt_err(err, "cuda backend: the pool keeps no K/V (IO-only engine)"), DT_ERR_ARG;
	int rc = cuda_set_device(p->device, err);
	if (rc)
		return rc;
	struct cuda_device_info di;
	rc = cuda_device_query(p->device, &di, err);
	if (rc)
		return rc;

	struct cuda_impl *c = xcalloc(1, sizeof(*c));
	b->impl = c;
	b->ops = &cuda_ops;
	c->type = p->bf16 ? CUDA_DT_BF16 : CUDA_DT_F16;
	c->n_q = -1;
	snprintf(b->info.device, sizeof(b->info.device), "%.100s (%d SMs, sm_%d%d), %s KV", di.name, di.n_sm,
		 di.cc_major, di.cc_minor, cuda_dtype_name(c->type));
	b->info.elt_bytes = 2;

	struct cuda_kv_params vp = cuda_kv_default_params();
	vp.n_pages = kvpool_n_pages(p->pool);
	vp.page_size = kp->page_size;
	vp.n_layer = kp->n_layer;
	vp.n_kv_heads = kp->n_kv_heads;
	vp.head_dim = kp->head_dim;
	vp.type = c->type;
	c->kv = cuda_kv_new(&vp, err);
	if (!c->kv)
		return DT_ERR_DEVICE;
	struct cuda_attn_params ap = cuda_attn_default_params();
	ap.n_head = p->n_head;
	ap.n_kv_head = p->n_kv_head;
	ap.head_dim = p->head_dim;
	ap.type = c->type;
	c->attn = cuda_attn_new(&ap, err);
	if (!c->attn)
		return DT_ERR_DEVICE;
	c->timer = cuda_timer_new(err);
	if (!c->timer)
		return DT_ERR_DEVICE;
	if (p->measure_copy) {
		double bw = 0;
		rc = cuda_bench_copy_bw((size_t)256 << 20, 5, &bw, err);
		if (rc)
			return rc;
		b->info.copy_bytes_per_s = bw;
	}
	rc = mirror_pool(b, err);
	if (rc)
		return rc;
	b->info.device_bytes = cuda_kv_bytes(c->kv);
	return DT_OK;
}

#endif
