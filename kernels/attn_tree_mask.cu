// attn_tree_mask.cu — the tree-mask baseline (Medusa / SpecInfer style): every
// query against every token of the tree with a dense additive mask, scores
// materialized in memory.
//
// DESIGN
//   Three kernels per layer, as eager attention runs them:
//     scores   S = Q K^T * scale + M   (written in the KV type, like an fp16
//              model's attention weights), one CTA per (group, KV head,
//              64-token tile): K tile in shared memory as fp32 (row stride
//              D+1: no bank conflicts), query rows 16 at a time;
//     softmax  one CTA per (entry, query head) row: max, sum, P written back
//              in place (fp32 math), and the row's log-sum-exp;
//     P V      one CTA per (group, KV head, 32 rows): V tile and P tile in
//              shared memory, each thread owns one dim of 16 (or 8) rows.
//   The dense mask M (0 / -inf per entry and token) is materialized once per
//   plan from the plan's nvis and bitmask (attn_tm_build_mask).  Each entry
//   writes one partial (slot entry * n_kv_head + kvh) for the reduction.
#include "config.h"

extern "C" {
#include "common.h"
}

#include <math.h>

#include "attn_common.cuh"
#include "cuda_common.h"

#define TM_TILE 64    /* tokens per scores / P V tile */
#define TM_QROWS 16   /* query rows per pass of the scores kernel */
#define TM_PROWS 32   /* rows per P V block */

// ---- dense mask

template <typename T> static __global__ void tm_mask_kernel(const attn_tmparams p)
{
	const int e = blockIdx.x;
	const int64_t off = p.entry_moff[e];
	const int n = (int)(p.entry_moff[e + 1] - off);
	const int nvis = p.entry_nvis[e], mo = p.entry_mask[e];
	T *dm = (T *)p.dmask + off;
	for (int t = threadIdx.x; t < n; t += blockDim.x) {
		bool vis = t < nvis && (mo < 0 || ((p.mask[mo + (t >> 5)] >> (t & 31)) & 1u));
		dm[t] = attn_from_float<T>(vis ? 0.f : -INFINITY);
	}
}

int attn_tm_build_mask(const attn_tmparams *p, enum cuda_dtype t, cudaStream_t s, char *err)
{
	if (p->n_entries == 0)
		return 0;
	if (t == CUDA_DT_BF16)
		tm_mask_kernel<__nv_bfloat16><<<p->n_entries, 256, 0, s>>>(*p);
	else
		tm_mask_kernel<__half><<<p->n_entries, 256, 0, s>>>(*p);
	CUDA_CHECK_LAUNCH();
	return 0;
}

// ---- scores

template <int D, typename T> static __global__ void tm_scores_kernel(const attn_tmparams p)
{
	__shared__ float ks[TM_TILE][D + 1];
	__shared__ float qs[TM_QROWS][D];
	const int g = blockIdx.x, kvh = blockIdx.y, t0 = blockIdx.z * TM_TILE;
	const int n = p.group_ntok[g];
	if (t0 >= n)
		return;
	const T *kb = (const T *)p.k;
	const int tok0 = p.group_tok[g];
	for (int i = threadIdx.x; i < TM_TILE * D; i += blockDim.x) {
		const int r = i / D, d = i % D, tok = t0 + r;
		ks[r][d] = tok < n ? attn_to_float(kb[((size_t)p.tok_row[tok0 + tok] +
						       (size_t)kvh * p.page_size) * D + d])
				   : 0.f;
	}
	const int e0 = p.group_eoff[g];
	const int rows = (p.group_eoff[g + 1] - e0) * p.hpk;
	const int tt = threadIdx.x % TM_TILE, rsub = threadIdx.x / TM_TILE;
	const T *qb = (const T *)p.q;
	T *sb = (T *)p.scores;
	const T *dm = (const T *)p.dmask;
	for (int rc = 0; rc < rows; rc += TM_QROWS) {
		__syncthreads();
		for (int i = threadIdx.x; i < TM_QROWS * D; i += blockDim.x) {
			const int r = i / D, d = i % D, row = rc + r;
			float x = 0.f;
			if (row < rows) {
				const int e = e0 + row / p.hpk, j = row % p.hpk;
				x = attn_to_float(qb[((size_t)p.entry_query[e] * p.n_head + kvh * p.hpk + j) * D + d]);
			}
			qs[r][d] = x;
		}
		__syncthreads();
#pragma unroll
		for (int rr = 0; rr < TM_QROWS / 4; rr++) {
			const int r = rsub * (TM_QROWS / 4) + rr, row = rc + r, tok = t0 + tt;
			if (row >= rows || tok >= n)
				continue;
			float dot = 0.f;
#pragma unroll 16
			for (int d = 0; d < D; d++)
				dot = fmaf(qs[r][d], ks[tt][d], dot);
			const int e = e0 + row / p.hpk, j = row % p.hpk;
			const int64_t mo = p.entry_moff[e];
			const float v = dot * p.scale + attn_to_float(dm[mo + tok]);
			sb[mo * p.n_head + (int64_t)(kvh * p.hpk + j) * n + tok] = attn_from_float<T>(v);
		}
	}
}

// ---- softmax (in place) + log-sum-exp

template <typename T> static __global__ void tm_softmax_kernel(const attn_tmparams p)
{
	__shared__ float red[32];
	const int e = blockIdx.x / p.n_head, h = blockIdx.x % p.n_head;
	const int64_t mo = p.entry_moff[e];
	const int n = (int)(p.entry_moff[e + 1] - mo);
	T *row = (T *)p.scores + mo * p.n_head + (int64_t)h * n;
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;

	float mx = -INFINITY;
	for (int t = threadIdx.x; t < n; t += blockDim.x)
		mx = fmaxf(mx, attn_to_float(row[t]));
	for (int off = 16; off > 0; off >>= 1)
		mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
	if (lane == 0)
		red[warp] = mx;
	__syncthreads();
	mx = -INFINITY;
	for (int i = 0; i < nw; i++)
		mx = fmaxf(mx, red[i]);
	__syncthreads();

	float sum = 0.f;
	for (int t = threadIdx.x; t < n; t += blockDim.x)
		sum += expf(attn_to_float(row[t]) - mx);
	for (int off = 16; off > 0; off >>= 1)
		sum += __shfl_xor_sync(0xffffffffu, sum, off);
	if (lane == 0)
		red[warp] = sum;
	__syncthreads();
	sum = 0.f;
	for (int i = 0; i < nw; i++)
		sum += red[i];
	const float inv = 1.f / sum;
	for (int t = threadIdx.x; t < n; t += blockDim.x)
		row[t] = attn_from_float<T>(expf(attn_to_float(row[t]) - mx) * inv);
	if (threadIdx.x == 0) {
		const int kvh = h / p.hpk, j = h % p.hpk;
		p.part_lse[((size_t)e * p.n_kv_head + kvh) * p.hpk + j] = mx + logf(sum);
	}
}

// ---- P V

template <int D, typename T> static __global__ void tm_pv_kernel(const attn_tmparams p)
{
	constexpr int RG = 256 / D;            /* row groups: 2 or 4 */
	constexpr int RPT = TM_PROWS / RG;     /* rows per thread: 16 or 8 */
	__shared__ float vs[TM_TILE][D];
	__shared__ float ps[TM_PROWS][TM_TILE + 1];
	const int g = blockIdx.x, kvh = blockIdx.y, r0 = blockIdx.z * TM_PROWS;
	const int e0 = p.group_eoff[g];
	const int rows = (p.group_eoff[g + 1] - e0) * p.hpk;
	if (r0 >= rows)
		return;
	const int n = p.group_ntok[g], tok0 = p.group_tok[g];
	const int d = threadIdx.x % D, rg = threadIdx.x / D;
	const T *vb = (const T *)p.v;
	const T *sb = (const T *)p.scores;
	float acc[RPT];
#pragma unroll
	for (int k = 0; k < RPT; k++)
		acc[k] = 0.f;
	for (int t0 = 0; t0 < n; t0 += TM_TILE) {
		__syncthreads();
		for (int i = threadIdx.x; i < TM_TILE * D; i += blockDim.x) {
			const int r = i / D, dd = i % D, tok = t0 + r;
			vs[r][dd] = tok < n ? attn_to_float(vb[((size_t)p.tok_row[tok0 + tok] +
							       (size_t)kvh * p.page_size) * D + dd])
					    : 0.f;
		}
		for (int i = threadIdx.x; i < TM_PROWS * TM_TILE; i += blockDim.x) {
			const int r = i / TM_TILE, tt = i % TM_TILE, row = r0 + r, tok = t0 + tt;
			float x = 0.f;
			if (row < rows && tok < n) {
				const int e = e0 + row / p.hpk, j = row % p.hpk;
				x = attn_to_float(sb[p.entry_moff[e] * p.n_head +
						     (int64_t)(kvh * p.hpk + j) * n + tok]);
			}
			ps[r][tt] = x;
		}
		__syncthreads();
#pragma unroll 8
		for (int tt = 0; tt < TM_TILE; tt++) {
			const float v = vs[tt][d];
#pragma unroll
			for (int k = 0; k < RPT; k++)
				acc[k] = fmaf(ps[rg * RPT + k][tt], v, acc[k]);
		}
	}
#pragma unroll
	for (int k = 0; k < RPT; k++) {
		const int row = r0 + rg * RPT + k;
		if (row < rows) {
			const int e = e0 + row / p.hpk, j = row % p.hpk;
			p.part_o[(((size_t)e * p.n_kv_head + kvh) * p.hpk + j) * D + d] = acc[k];
		}
	}
}

template <int D, typename T> static int tm_launch_t(const attn_tmparams *p, cudaStream_t s, char *err)
{
	if (p->n_groups == 0)
		return 0;
	dim3 gs(p->n_groups, p->n_kv_head, (p->max_group_tokens + TM_TILE - 1) / TM_TILE);
	tm_scores_kernel<D, T><<<gs, 256, 0, s>>>(*p);
	CUDA_CHECK_LAUNCH();
	tm_softmax_kernel<T><<<p->n_entries * p->n_head, 256, 0, s>>>(*p);
	CUDA_CHECK_LAUNCH();
	dim3 gp(p->n_groups, p->n_kv_head, (p->max_group_rows + TM_PROWS - 1) / TM_PROWS);
	tm_pv_kernel<D, T><<<gp, 256, 0, s>>>(*p);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int attn_tm_launch(const attn_tmparams *p, int head_dim, enum cuda_dtype t, cudaStream_t s,
		   char *err)
{
	if (head_dim == 128)
		return t == CUDA_DT_BF16 ? tm_launch_t<128, __nv_bfloat16>(p, s, err)
					 : tm_launch_t<128, __half>(p, s, err);
	if (head_dim == 64)
		return t == CUDA_DT_BF16 ? tm_launch_t<64, __nv_bfloat16>(p, s, err)
					 : tm_launch_t<64, __half>(p, s, err);
	return dt_err(err, "tree-mask: head_dim %d (expected 64 or 128)", head_dim), DT_ERR_UNSUPPORTED;
}
