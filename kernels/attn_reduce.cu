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
#include <stdlib.h>

#include "attn_common.cuh"
#include "cuda_common.h"

#define RED_WARPS 8 /* warps per 256-thread block */

/* One warp per (query, query head).  The list bounds and the first 32 slots
 * are plan data, written before the partial kernel ran: loaded before
 * griddepcontrol.wait, so after it a warp waits on the lse and then its rows
 * (in rounds of U). */
template <int D, int U>
static __global__ void __launch_bounds__(RED_WARPS * 32) attn_reduce_kernel(const attn_rparams p)
{
	unsigned long long *prof = p.prof ? p.prof + 3 * blockIdx.x : nullptr;
	if (prof && threadIdx.x == 0)
		prof[0] = attn_gtimer();
	const int warp = threadIdx.x >> 5;
	const long idx = (long)blockIdx.x * RED_WARPS + warp;
	const bool valid = idx < (long)p.n_queries * p.n_head;
	const int q = valid ? (int)(idx / p.n_head) : 0, h = valid ? (int)(idx % p.n_head) : 0;
	const int kvh = h / p.hpk, j0 = h - kvh * p.hpk;
	const long key = (long)q * p.n_kv_head + kvh;
	const int b = valid ? p.red_off[key] : 0, e = valid ? p.red_off[key + 1] : 0;
	const int s0 = attn_red_slot(p.red_slot, b, min(32, e - b));
	/* launched early (programmatic dependent launch): wait for the partials */
	asm volatile("griddepcontrol.wait;" ::: "memory");
	if (prof && threadIdx.x == 0)
		prof[1] = attn_gtimer();
	if (!valid)
		return;
	attn_reduce_heads<D, 1, U>(p.part_o, p.part_lse, p.red_slot, b, e, p.hpk, j0,
				   p.out + ((size_t)q * p.n_head + kvh * p.hpk + j0) * D, s0);
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
	/* few warps (one wave at 16 warps an SM): each waits on its own loads, so
	 * more rows in flight per warp (U = 16, 124 registers at D = 128); many warps:
	 * U = 6 (64 registers, 32 warps an SM) */
	const bool few = pairs <= 2112;
	void (*k)(const attn_rparams) = head_dim == 128 ? (few ? attn_reduce_kernel<128, 16> : attn_reduce_kernel<128, 6>)
						       : (few ? attn_reduce_kernel<64, 16> : attn_reduce_kernel<64, 6>);
	/* DT_ATTN_CARVE=1: ask for the partial kernel's shared-memory carveout, so
	 * the SMs need not switch their L1 / shared split between the two grids */
	static const int carve = [] {
		const char *c = getenv("DT_ATTN_CARVE");
		return c && c[0] == '1' ? 1 : 0;
	}();
	if (carve) {
		static bool set[4] = { false, false, false, false };
		const int i = (head_dim == 128) * 2 + few;
		if (!set[i]) {
			CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout,
							cudaSharedmemCarveoutMaxShared));
			set[i] = true;
		}
	}
	CUDA_CHECK(cudaLaunchKernelEx(&cfg, k, *p));
	CUDA_CHECK_LAUNCH();
	return 0;
}
