/*
 * kernels.h — the C entry points of the CUDA kernels (the kernels directory).
 * Every function returns 0 on success or a negative dt_status with a message
 * in err (DT_ERR_LEN bytes).  Only built with CUDA (HAVE_CUDA); the engine
 * reaches these through the backend interface, never directly from the UI.
 */
#ifndef DT_KERNELS_H
#define DT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cuda_device_info {
	char name[256];
	int cc_major, cc_minor;
	int n_sm;
	size_t mem_total; /* bytes */
	size_t l2_bytes;
};

/* Number of usable CUDA devices (0 when none or no driver). */
int cuda_device_count(void);
/* Facts about device `dev`; 0 on success. */
int cuda_device_query(int dev, struct cuda_device_info *out, char *err);
/* Makes `dev` the current device of the calling thread; 0 on success. */
int cuda_set_device(int dev, char *err);

/* A GPU stopwatch on the default stream (CUDA events). */
struct cuda_timer;
struct cuda_timer *cuda_timer_new(char *err);
void cuda_timer_free(struct cuda_timer *t);
int cuda_timer_start(struct cuda_timer *t, char *err);
int cuda_timer_stop(struct cuda_timer *t, char *err);
/* Waits for the stop event; nanoseconds between start and stop, or < 0 + err. */
double cuda_timer_ns(struct cuda_timer *t, char *err);

// ---- memory helpers (kernels/kv_gpu.cu): for tests and benchmarks, which
// have no CUDA headers.  All copies are synchronous.
enum cuda_dtype {
	CUDA_DT_F16 = 0,  /* IEEE half */
	CUDA_DT_BF16 = 1, /* bfloat16 */
};
const char *cuda_dtype_name(enum cuda_dtype t); /* "fp16", "bf16" */

void *cuda_malloc(size_t bytes, char *err); /* NULL + err on failure */
void cuda_free(void *p);                    /* NULL is a no-op */
int cuda_upload(void *dst, const void *src, size_t bytes, char *err);
/* Pinned host memory (NULL + err on failure) and copies on the default stream
 * that return at once; src / dst must be pinned and stay untouched until a
 * cuda_sync() or a timer's end shows the copy done. */
void *cuda_host_alloc(size_t bytes, char *err);
void cuda_host_free(void *p);
int cuda_upload_async(void *dst, const void *src, size_t bytes, char *err);
int cuda_download_async(void *dst, const void *src, size_t bytes, char *err);
int cuda_download(void *dst, const void *src, size_t bytes, char *err);
/* n fp32 values from the host, rounded to t, into device memory dst. */
int cuda_upload_convert(void *dst, const float *src, size_t n, enum cuda_dtype t, char *err);
/* n fp32 values already on the device, rounded to t into dst (a kernel; the
 * host conversion of cuda_upload_convert costs ~10 ns a value). */
int cuda_convert(void *dst, const float *src, size_t n, enum cuda_dtype t, char *err);
/* Fills n floats with NaN (outputs are poisoned before each run). */
int cuda_fill_nan(float *dst, size_t n, char *err);
/* n elements of type t, uniform in [-amp, amp], from a seed. */
int cuda_fill_random(void *dst, size_t n, enum cuda_dtype t, uint64_t seed, float amp, char *err);
int cuda_sync(char *err);
/* Rounds fp32 values to t and back, on the host (what an upload keeps). */
void cuda_round_host(float *x, size_t n, enum cuda_dtype t);

// ---- device KV pages (kernels/kv_gpu.cu)
// The mirror of a struct kvpool on the device, same page ids and indexing:
//     k[copy][layer]: (n_pages, n_kv_heads, page_size, head_dim)  fp16 or bf16
// n_copies > 1 keeps independent copies of all pages (benchmarks rotate over
// them so that a repeated step does not find its KV in L2).
struct cuda_kv_params {
	int32_t n_pages;    /* pages (the pool's kvpool_n_pages or fewer) */
	int32_t page_size;  /* slots per page (the pool's) */
	int32_t n_layer;    /* layers (default 1) */
	int32_t n_kv_heads; /* KV heads */
	int32_t head_dim;   /* 64 or 128 for the attention kernels */
	enum cuda_dtype type;
	int32_t n_copies;   /* independent copies (default 1) */
};
struct cuda_kv_params cuda_kv_default_params(void);
struct cuda_kv;
struct cuda_kv *cuda_kv_new(const struct cuda_kv_params *p, char *err);
void cuda_kv_free(struct cuda_kv *kv);
const struct cuda_kv_params *cuda_kv_params(const struct cuda_kv *kv);
size_t cuda_kv_bytes(const struct cuda_kv *kv); /* device memory held */
/* Incremental upload: slots [slot0, slot0 + n) of one page, every KV head, of
 * one layer, from host fp32 K/V in the kvpool layout (k_host = kvpool_k(pool,
 * layer)), rounded to the device type, into every copy. */
int cuda_kv_upload(struct cuda_kv *kv, int32_t layer, const float *k_host, const float *v_host,
		   int32_t page, int32_t slot0, int32_t n, char *err);
/* Scatter: n token rows of host fp32 K and V, each (n_kv_heads * head_dim),
 * into (page[i], slot[i]) of one layer, every copy, rounded to the device
 * type on the device: one asynchronous upload (through a pinned stage) and
 * one kernel whatever n is; returns before the copy is done (k, v, page and
 * slot may be reused at once).  Checks every page and slot. */
int cuda_kv_store_rows(struct cuda_kv *kv, int32_t layer, int32_t n, const int32_t *page,
		       const int32_t *slot, const float *k, const float *v, char *err);
/* Every slot of every page, layer and copy: uniform in [-amp, amp]. */
int cuda_kv_fill_random(struct cuda_kv *kv, uint64_t seed, float amp, char *err);
/* Bytes uploaded by cuda_kv_upload so far. */
uint64_t cuda_kv_uploaded_bytes(const struct cuda_kv *kv);

// ---- tree attention (kernels/attn_*.cu)
// Executes a struct treeplan_flat (src/treeplan.h) for one layer on the
// device: q (n_queries, n_head, head_dim) in the KV type, out fp32, same
// shape.  seq, deft-node and deft-flatten run the fused partial-attention
// kernel (attn_deft_flatten.cu) over a work list derived from the plan
// (attn_plan.cu), then the exact reduction: inside the fused kernel (the CTA
// that completes a (query, KV head) merges it, in list order) when there are
// few merges per CTA, else the separate kernel of attn_reduce.cu; both give
// the same bits.  tree-mask runs with a dense mask and materialized scores
// (attn_tree_mask.cu).  One cuda_attn runs on one stream at a time (its
// reduction counters are reset by each complete run).
struct treeplan_flat;

struct cuda_attn_params {
	int32_t n_head;      /* query heads */
	int32_t n_kv_head;   /* KV heads (n_head is a multiple) */
	int32_t head_dim;    /* 64 or 128 */
	enum cuda_dtype type;
	float scale;         /* score scale (default 0 = 1/sqrt(head_dim)) */
	int32_t n_cta;       /* persistent CTAs of the fused kernel (default 0 = one per SM) */
	int32_t cc_max_rows; /* work with at most this many rows (entries x query heads per KV
				head) takes the CUDA-core path; 0 = tensor cores only, max 4
				(default 0: on the H200 the tensor-core path is faster even for
				one row, kernels/NOTES.md) */
	int32_t split;       /* cut groups into 64-token pieces and balance them over the CTAs:
				1 yes, 0 no, -1 by algorithm: all but deft-node (default -1) */
	int32_t merge;       /* merge a CTA's consecutive fully visible pieces of the same
				queries into one partial (default 1) */
};
struct cuda_attn_params cuda_attn_default_params(void);

/* What the last cuda_attn_set_plan() built and uploaded. */
struct cuda_attn_stats {
	int32_t n_units;          /* (KV head, group, query tile) units of the plan */
	int32_t n_segments;       /* work segments after splitting and merging */
	int32_t n_slots;          /* partial results per KV head row set */
	int32_t n_cta_used;       /* CTAs with work */
	int32_t n_cc_segments;    /* segments on the CUDA-core path */
	double cost_max, cost_mean; /* model cost of the busiest / average CTA */
	uint64_t kv_bytes;        /* KV bytes the segments read (all KV heads) */
	uint64_t partial_bytes;   /* partial out + lse written and read */
	uint64_t scratch_bytes;   /* tree-mask: scores + probabilities + dense mask */
	uint64_t upload_bytes;    /* bytes sent by the last set_plan (incremental) */
	uint64_t upload_total;    /* bytes sent by every set_plan so far */
	double build_s;           /* host time of the last set_plan */
};

struct cuda_attn;
struct cuda_attn *cuda_attn_new(const struct cuda_attn_params *p, char *err);
void cuda_attn_free(struct cuda_attn *a);
/* Builds the work list of the plan for algorithm algo and uploads what changed
 * since the last call.  The plan must come from a tree whose pages are
 * mirrored in the cuda_kv that cuda_attn_run gets. */
int cuda_attn_set_plan(struct cuda_attn *a, const struct treeplan_flat *f, int algo, char *err);
/* The same work list built on the host only, for n_sm SMs (no device): its
 * statistics (bench attn --plan-only).  Not for tree-mask. */
int cuda_attn_plan_model(const struct cuda_attn_params *p, int n_sm, const struct treeplan_flat *f, int algo,
			 struct cuda_attn_stats *st, char *err);
/* One layer: q and out are device pointers. copy selects the KV copy. */
int cuda_attn_run(struct cuda_attn *a, const struct cuda_kv *kv, int32_t layer, int32_t copy,
		  const void *q, float *out, char *err);
void cuda_attn_get_stats(const struct cuda_attn *a, struct cuda_attn_stats *st);

/* Where the fused kernel's time goes (seq, deft-node, deft-flatten): one run
 * with %globaltimer stamps per CTA and per segment (the stamps cost little;
 * the run is a normal one, out is written).  A segment's time is from its
 * start to the next segment's (or the CTA's last segment end); the classes
 * are the tensor-core row classes (<= 32, <= 64, <= 128 rows) and the
 * CUDA-core path, each split into fully visible and masked segments; per
 * class a least-squares line us = per_tile x tiles + fixed. */
struct cuda_attn_prof_class {
	int32_t n_seg;
	int64_t n_tiles;               /* 64-token tiles */
	double us;                     /* total segment time, all CTAs */
	double us_per_tile, us_fixed;  /* the fitted line (0 when fewer than 2 segments) */
	double q_us, loop_us, epi_us;  /* the segment time split, all CTAs (thread 0's view): start
					  to its query rows loaded, to its last tile done, to the
					  next segment's start */
	int32_t n_first;               /* segments that are their CTA's first */
	double q_first_us;             /* their q_us */
};
struct cuda_attn_prof {
	int32_t n_cta;
	double span_us;           /* first CTA start to last CTA end */
	double cta_max_us, cta_mean_us; /* per CTA: start to its segments done (the balance) */
	double red_max_us, red_mean_us; /* per CTA: segments done to end (the fused reduction:
					   its own keys, then helping others, attn_finish) */
	double tail_us;           /* last CTA's segments done to the last CTA's end */
	double pro_max_us, pro_mean_us; /* per CTA: start to its first segment (descriptors, first rows) */
	/* the separate reduction grid against the partial kernel's last CTA end (%globaltimer):
	 * its first block's start (negative: launched early under PDL), its first block past
	 * griddepcontrol.wait, and first past the wait to its last warp's end */
	double red_start_us, red_wait_us, red_us;
	double timeline_us; /* first CTA start to the reduction's end */
	double step_us;     /* the profiled step between two CUDA events (launch gaps included) */
	int32_t fused, help;      /* the plan's reduction: fused into the kernel, with helpers */
	double model_max, model_mean;   /* the plan's cost model: busiest / average CTA */
	struct cuda_attn_prof_class cls[4][2]; /* [CC, <=32, <=64, <=128 rows][full, masked] */
};
/* Host check of the work list's rebalance, no device needed (attn_plan.cu):
 * random segment sets; returns 0 when every invariant held, with the mean
 * busiest / mean model cost after each pick (last segment, any segment). */
int cuda_attn_rebalance_selftest(unsigned seed, int n_sets, double *bal_last, double *bal_any, char *err);
int cuda_attn_profile(struct cuda_attn *a, const struct cuda_kv *kv, int32_t layer, int32_t copy,
		      const void *q, float *out, struct cuda_attn_prof *pr, char *err);

// ---- bench utilities (kernels/bench_util.cu)
/* Device-to-device copy of `bytes`: bytes read + written per second (median of reps). */
int cuda_bench_copy_bw(size_t bytes, int reps, double *bytes_per_s, char *err);
/* cuBLAS fp16 n x n x n product (fp32 accumulate) on random data: FLOP/s (median). */
int cuda_bench_gemm_rate(int n, int reps, double *flop_per_s, char *err);

struct cuda_bench_times {
	double median_s;       /* median GPU time of one call, host running ahead */
	double min_s, max_s;
	double median_alone_s; /* median of calls timed alone (record, call, record, sync) */
	int n;                 /* timed calls */
};
/* fn enqueues one repetition on the default stream (iter counts from 0, use it
 * to rotate buffers); 0 or a status with err filled. */
typedef int (*cuda_bench_fn)(void *ctx, int iter, char *err);
int cuda_bench_time(cuda_bench_fn fn, void *ctx, int warmup, int reps, struct cuda_bench_times *out,
		    char *err);

#ifdef __cplusplus
}
#endif

#endif
