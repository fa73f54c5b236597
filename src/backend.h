/*
 * backend.h — where the tree attention runs: the one interface the CPU and
 * the CUDA backend implement.
 *
 * The engine's page pool (kvpool, host memory, fp32) is the authority for K/V;
 * both backends address tokens by the pool's page ids and follow the same
 * plan (treeplan_flat).  Per forward pass the engine calls
 *
 *   backend_set_plan()  once: the plan of the batch (the same for every layer)
 *   per layer:
 *   backend_store()     the batch's K/V rows into their (page, slot) — the
 *                       engine has written them to the pool already
 *   backend_attend()    attention of the batch's queries following the plan
 *
 *   cpu   cpu_tree_attn.c on the pool: exact, the reference.
 *   cuda  a device mirror of the pool in fp16 (kernels/kv_gpu.cu): each
 *         layer's new rows go up with one copy and are scattered by one
 *         kernel; the plan is uploaded incrementally; attention runs the
 *         kernels of kernels/attn_*.cu (deft-flatten fused partial attention
 *         + exact reduction, deft-node, seq, tree-mask); q goes up and the
 *         output comes down per layer, and the kernels are timed with CUDA
 *         events.  Created while the pool holds pages (a switch at run time)
 *         it uploads every page in use first.
 *
 * The rest of the forward pass (matmuls, norms) runs on the CPU with either
 * backend; a GPU forward pass is separate work.  Without CUDA at build time
 * or without a device at run time, backend_available(BACKEND_CUDA) says why
 * and backend_new() refuses with that message.
 */
#ifndef DT_BACKEND_H
#define DT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct kvpool;
struct threadpool;
struct treeplan_flat;

enum backend_kind {
	BACKEND_CPU = 0,
	BACKEND_CUDA = 1,
	BACKEND_N_KIND
};
const char *backend_kind_name(enum backend_kind k); /* "cpu", "cuda" */
/* "cpu", "cuda" (or "gpu"); "auto" gives cuda when available, else cpu.
 * DT_OK or DT_ERR_ARG + err naming the accepted values. */
int backend_kind_parse(const char *s, enum backend_kind *out, char *err);
/* Whether kind can run here; false with the reason in why (DT_ERR_LEN, may be NULL). */
bool backend_available(enum backend_kind k, char *why);
/* For commands: text as backend_kind_parse (NULL = "auto"); when auto finds
 * no device, a one-line notice "PROG: attention on the cpu (WHY)" goes to
 * notice (may be NULL).  DT_OK or DT_ERR_ARG + err. */
int backend_choose(const char *text, const char *prog, FILE *notice, enum backend_kind *out, char *err);

struct backend_params {
	int32_t n_head;         /* query heads (a multiple of n_kv_head) */
	int32_t n_kv_head;      /* KV heads (the pool's) */
	int32_t head_dim;       /* the pool's; cuda: 64 or 128 */
	struct kvpool *pool;    /* borrowed: the pages, their layout and ids */
	struct threadpool *tp;  /* cpu: worker threads (may be NULL) */
	bool portable;          /* cpu: force the portable kernels (default false) */
	int32_t device;         /* cuda: device index (default 0) */
	bool bf16;              /* cuda: bf16 KV instead of fp16 (default false) */
	bool measure_copy;      /* cuda: time a device copy at creation, the roofline's
				   ceiling (default true; about 10 ms) */
};
struct backend_params backend_default_params(void);

struct backend_info {
	enum backend_kind kind;
	char device[160];       /* "cpu avx2" or "NVIDIA H200 (132 SMs, sm_90), fp16 KV" */
	int32_t elt_bytes;      /* bytes per K/V element the attention reads (cpu 4, cuda 2) */
	double copy_bytes_per_s;/* measured device copy (bytes read + written per second), 0 = not measured */
	uint64_t device_bytes;  /* device memory held (KV mirror + buffers), 0 on the cpu */
};

/* What the backend did since the last backend_set_plan() (one forward pass). */
struct backend_counters {
	int64_t device_ns;      /* cuda: GPU time of the attention kernels (events), 0 on the cpu */
	uint64_t upload_bytes;  /* cuda: host -> device bytes (K/V rows, q, plan) */
	uint64_t download_bytes;/* cuda: device -> host bytes (attention output) */
};

struct backend;

/* NULL + err when the kind is not available or the shape is not supported. */
struct backend *backend_new(enum backend_kind k, const struct backend_params *p, char *err);
void backend_free(struct backend *b);
const struct backend_info *backend_info(const struct backend *b);

/* The plan of the next forward pass; algo is its enum treeplan_algo.  Resets
 * the counters. */
int backend_set_plan(struct backend *b, const struct treeplan_flat *f, int algo, char *err);
/* n token rows: k, v (n, n_kv_head*head_dim) fp32, already in the pool at
 * (page[i], slot[i]) of layer. */
int backend_store(struct backend *b, int32_t layer, int32_t n, const int32_t *page, const int32_t *slot,
		  const float *k, const float *v, char *err);
/* q, out: (n_queries of the plan, n_head*head_dim) fp32. */
int backend_attend(struct backend *b, int32_t layer, const float *q, float *out, char *err);
void backend_get_counters(const struct backend *b, struct backend_counters *c);

#endif
