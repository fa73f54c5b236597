// attn_reduce.cu — the exact reduction of tree attention: each (query, query
// head) merges its partial results in the fixed order of its list.
//
// DESIGN
//   The separate reduction grid, launched under programmatic dependent
//   launch right behind the partial kernel; the default (attn_plan.cu,
//   PLAN_FUSE_TASKS: faster than the fused reduction on every measured case,
//   kernels/NOTES.md v12).  One warp per (query, query head)
//   runs attn_reduce_heads (attn_common.cuh), the same code as the
//   fused kernel's reduction: pass 1 takes M = the largest log-sum-exp of the
//   list; pass 2 walks the list in order and accumulates exp(lse_i - M) *
//   out_i and exp(lse_i - M) in fp32.  Every lane adds in the same order and
//   there are no atomics, so the result is bitwise repeatable, and the same
//   as the fused reduction.  Partials that saw no token carry lse = -inf and
//   weigh 0.
#include "config.h"

extern "C" {
#include "common.h"
}

#include <math.h>

#include "attn_common.cuh"
#include "cuda_common.h"

#define RED_WARPS 8 /* warps per 256-thread block */

template <int D> static __global__ void attn_reduce_kernel(const attn_rparams p)
{
	unsigned long long *prof = p.prof ? p.prof + 3 * blockIdx.x : nullptr;
	if (prof && threadIdx.x == 0)
		prof[0] = attn_gtimer();
	/* launched early (programmatic dependent launch): wait for the partials */
	asm volatile("griddepcontrol.wait;" ::: "memory");
	if (prof && threadIdx.x == 0)
		prof[1] = attn_gtimer();
	const int warp = threadIdx.x >> 5;
	const long idx = (long)blockIdx.x * RED_WARPS + warp;
	if (idx >= (long)p.n_queries * p.n_head)
		return;
	const int q = (int)(idx / p.n_head), h = (int)(idx % p.n_head);
	const int kvh = h / p.hpk, j0 = h - kvh * p.hpk;
	const long key = (long)q * p.n_kv_head + kvh;
	attn_reduce_heads<D, 1>(p.part_o, p.part_lse, p.red_slot, p.red_off[key], p.red_off[key + 1], p.hpk,
			     j0, p.out + ((size_t)q * p.n_head + kvh * p.hpk + j0) * D);
	if (prof && (threadIdx.x & 31) == 0)
		atomicMax(prof + 2, attn_gtimer());
}

int attn_reduce_launch(const attn_rparams *p, int head_dim, cudaStream_t s, char *err)
{
	const long pairs = (long)p->n_queries * p->n_head;
	if (pairs == 0)
		return 0;
	if (head_dim != 128 && head_dim != 64)
		return dt_err(err, "reduce: head_dim %d (expected 64 or 128)", head_dim),
		       DT_ERR_UNSUPPORTED;
	/* programmatic dependent launch: the grid is scheduled while the partial
	 * kernel drains and waits in griddepcontrol.wait, hiding launch latency */
	cudaLaunchConfig_t cfg = {};
	cfg.gridDim = dim3((unsigned)((pairs + RED_WARPS - 1) / RED_WARPS));
	cfg.blockDim = dim3(RED_WARPS * 32);
	cfg.stream = s;
	cudaLaunchAttribute attr[1];
	attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
	attr[0].val.programmaticStreamSerializationAllowed = 1;
	cfg.attrs = attr;
	cfg.numAttrs = 1;
	if (head_dim == 128)
		CUDA_CHECK(cudaLaunchKernelEx(&cfg, attn_reduce_kernel<128>, *p));
	else
		CUDA_CHECK(cudaLaunchKernelEx(&cfg, attn_reduce_kernel<64>, *p));
	CUDA_CHECK_LAUNCH();
	return 0;
}
