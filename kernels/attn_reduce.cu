// attn_reduce.cu — the exact reduction of tree attention: each (query, query
// head) merges its partial results in the fixed order of its list.
//
// DESIGN
//   One warp per (query, head).  Pass 1 takes M = the largest log-sum-exp of
//   the list; pass 2 walks the list in order and accumulates
//   exp(lse_i - M) * out_i and exp(lse_i - M) in fp32, each lane owning D/32
//   consecutive dims (16-byte loads for D = 128).  Every lane adds in the same
//   order and there are no atomics, so the result is bitwise repeatable.
//   Partials that saw no token carry lse = -inf and weigh 0.
#include "config.h"

extern "C" {
#include "common.h"
}

#include <math.h>

#include "attn_common.cuh"
#include "cuda_common.h"

#define RED_WARPS 8 /* (query, head) pairs per 256-thread block */

template <int D> static __global__ void attn_reduce_kernel(const attn_rparams p)
{
	constexpr int E = D / 32; /* dims per lane: 4 or 2 */
	/* launched early (programmatic dependent launch): wait for the partials */
	asm volatile("griddepcontrol.wait;" ::: "memory");
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const long idx = (long)blockIdx.x * RED_WARPS + warp;
	if (idx >= (long)p.n_queries * p.n_head)
		return;
	const int q = (int)(idx / p.n_head), h = (int)(idx % p.n_head);
	const int kvh = h / p.hpk, j = h - kvh * p.hpk;
	const int b = p.red_off[q * p.n_kv_head + kvh], e = p.red_off[q * p.n_kv_head + kvh + 1];

	float M = -INFINITY;
	for (int i = b + lane; i < e; i += 32)
		M = fmaxf(M, p.part_lse[(size_t)p.red_slot[i] * p.hpk + j]);
#pragma unroll
	for (int off = 16; off > 0; off >>= 1)
		M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
	const float Mu = M == -INFINITY ? 0.f : M;

	float acc[E], L = 0.f;
#pragma unroll
	for (int k = 0; k < E; k++)
		acc[k] = 0.f;
	for (int i = b; i < e; i++) {
		const size_t row = (size_t)p.red_slot[i] * p.hpk + j;
		const float w = expf(p.part_lse[row] - Mu);
		L += w;
		const float *src = p.part_o + row * D + lane * E;
		if (E == 4) {
			const float4 x = *reinterpret_cast<const float4 *>(src);
			acc[0] += w * x.x;
			acc[1] += w * x.y;
			acc[2] += w * x.z;
			acc[3] += w * x.w;
		} else {
			const float2 x = *reinterpret_cast<const float2 *>(src);
			acc[0] += w * x.x;
			acc[1] += w * x.y;
		}
	}
	const float inv = L > 0.f ? 1.f / L : 0.f;
	float *dst = p.out + ((size_t)q * p.n_head + h) * D + lane * E;
#pragma unroll
	for (int k = 0; k < E; k++)
		dst[k] = acc[k] * inv;
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
