// attn_common.cuh — what the tree-attention .cu files share: element types,
// the PTX wrappers (cp.async, ldmatrix, mma.sync m16n8k16), the device work
// list, and the launchers' internal interfaces.  Not part of kernels.h.
#ifndef DT_ATTN_COMMON_CUH
#define DT_ATTN_COMMON_CUH

#include <stdint.h>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels.h"

// ---- element types

template <typename T> __device__ __forceinline__ T attn_from_float(float x);
template <> __device__ __forceinline__ __half attn_from_float<__half>(float x)
{
	return __float2half_rn(x);
}
template <> __device__ __forceinline__ __nv_bfloat16 attn_from_float<__nv_bfloat16>(float x)
{
	return __float2bfloat16_rn(x);
}

/* %globaltimer, ns (the profile's stamps) */
__device__ __forceinline__ unsigned long long attn_gtimer()
{
	unsigned long long t;
	asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
	return t;
}

__device__ __forceinline__ float attn_to_float(__half x)
{
	return __half2float(x);
}
__device__ __forceinline__ float attn_to_float(__nv_bfloat16 x)
{
	return __bfloat162float(x);
}

/* Two floats as one 32-bit register of T (low half = a). */
template <typename T> __device__ __forceinline__ uint32_t attn_pack2(float a, float b);
template <> __device__ __forceinline__ uint32_t attn_pack2<__half>(float a, float b)
{
	__half2 h = __floats2half2_rn(a, b);
	return *reinterpret_cast<uint32_t *>(&h);
}
template <> __device__ __forceinline__ uint32_t attn_pack2<__nv_bfloat16>(float a, float b)
{
	__nv_bfloat162 h = __floats2bfloat162_rn(a, b);
	return *reinterpret_cast<uint32_t *>(&h);
}

/* 8 elements of T in a uint4 -> 8 floats. */
__device__ __forceinline__ void attn_unpack8(const uint4 &u, __half, float *f)
{
	const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		float2 x = __half22float2(h[i]);
		f[2 * i] = x.x;
		f[2 * i + 1] = x.y;
	}
}
__device__ __forceinline__ void attn_unpack8(const uint4 &u, __nv_bfloat16, float *f)
{
	const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&u);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		float2 x = __bfloat1622float2(h[i]);
		f[2 * i] = x.x;
		f[2 * i + 1] = x.y;
	}
}

// ---- PTX wrappers

__device__ __forceinline__ float attn_ex2(float x)
{
	float y;
	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

/* 16 bytes global -> shared (32-bit shared address), bypassing L1; zero-filled
 * when !valid (gmem must still be a valid address). */
__device__ __forceinline__ void attn_cp_async16_u32(uint32_t saddr, const void *gmem, bool valid)
{
	int n = valid ? 16 : 0;
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void attn_cp_async_commit()
{
	asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void attn_cp_async_wait()
{
	asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* ldmatrix x4 (and .trans) from a 32-bit shared-memory address. */
__device__ __forceinline__ void attn_ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3,
					     uint32_t saddr)
{
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
		     : "r"(saddr));
}
__device__ __forceinline__ void attn_ldsm_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2,
						   uint32_t &r3, uint32_t saddr)
{
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
		     : "r"(saddr));
}

/* c += a (16x16, row) * b (16x8, col), fp32 accumulate (not volatile: registers only,
 * so the compiler may interleave it with the ldmatrix loads). */
template <typename T>
__device__ __forceinline__ void attn_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
					 uint32_t b1);
template <>
__device__ __forceinline__ void attn_mma<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
						 uint32_t b1)
{
	asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
	    "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void attn_mma<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
							uint32_t b0, uint32_t b1)
{
	asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
	    "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- the device work list of the fused kernel (built by attn_plan.cu)

#define ATTN_TILE 64       /* KV tokens per pipeline stage: 4 PV k-steps, one mask word pair */
#define ATTN_THREADS 256   /* 8 warps: up to 8 x 16 query rows on the tensor cores */
#define ATTN_MAX_ROWS 128  /* rows (entries x query heads of one KV head) of one segment */
#define ATTN_CC_ROWS 4     /* the CUDA-core path handles up to 4 rows (8 tokens x 4 rows
			      = one value per lane) */

enum attn_cls {
	ATTN_CLS_CC = 0,  /* CUDA cores, rows <= ATTN_CC_ROWS */
	ATTN_CLS_WR2 = 2, /* tensor cores, 2 row warps (<= 32 rows) x 4 token warps */
	ATTN_CLS_WR4 = 3, /* 4 row warps (<= 64 rows) x 2 token warps */
	ATTN_CLS_WR8 = 4, /* 8 row warps (<= 128 rows) */
};

/* One segment: a run of KV tokens of one KV head against the query rows of
 * ne consecutive plan entries (entry0 ..), producing one partial per entry. */
struct __align__(16) attn_seg {
	int32_t tok_off;  /* first token in tok_row */
	int32_t n_tok;    /* tokens (>= 1) */
	int32_t entry0;   /* rows: entries entry0 .. entry0+ne-1, x hpk query heads each */
	int32_t ne;
	int32_t kvh;      /* KV head */
	int32_t gtok0;    /* -1: every token visible to every row; else the group token index of
			     token 0 (a multiple of 64) for entry_nvis / entry_mask */
	int32_t slot0;    /* partial slot of entry0; entry entry0+i writes slot0+i */
	int32_t cls;      /* enum attn_cls */
	int32_t bits_off; /* gtok0 >= 0: visibility words of tile t, entry e at
			     seg_bits[bits_off + t * ne + e] (two words: tokens 0-31, 32-63) */
	int32_t pad[3];
};

struct attn_kparams {
	const void *k, *v;           /* one layer of one copy of the KV mirror */
	const int32_t *tok_row;      /* token -> page * n_kv_heads * page_size + slot */
	const void *q;               /* (n_queries, n_head, D) */
	const struct attn_seg *segs; /* (n_segments) */
	const int32_t *cta_off;      /* (n_cta + 1): CTA c runs segments [cta_off[c], cta_off[c+1]) */
	const int32_t *entry_query, *entry_nvis, *entry_mask;
	const uint32_t *mask;
	uint2 *seg_bits;             /* per masked segment, tile and entry (attn_bits_kernel) */
	float *part_o;               /* (n_slots * hpk, D) */
	float *part_lse;             /* (n_slots * hpk), natural log */
	int32_t n_head, hpk, page_size;
	float scale_log2;            /* scale * log2(e) */
	/* fused reduction (fuse = 1): after its last segment CTA c adds, for each
	 * key (query * n_kv_head + KV head) in cta_keys[cta_key_off[c] ..), its
	 * count of partials to red_cnt[key]; the CTA whose add completes a key
	 * (count reaches red_e - red_b) merges that key's partials in list order
	 * into out and resets red_cnt[key] to 0 */
	const int4 *cta_keys;        /* {key, partials of this CTA, red_b, red_e} */
	const int32_t *cta_key_off;  /* (n_cta + 1) */
	int32_t *red_cnt;            /* (n_queries * n_kv_head), 0 between runs */
	/* helpers (red_q non-NULL): the completing CTA publishes each merge task
	 * (cta_keys index x G + head group) in red_q; CTAs done with their own
	 * work take tickets and merge them too (attn_finish, attn_help) */
	unsigned long long *red_q;   /* (red_cap) slots: generation << 32 | claimed << 31 | task */
	uint32_t *red_ctl;           /* counters, one 128-byte line each: ATTN_Q_* */
	int32_t red_cap;             /* tasks of a run: n_queries * n_kv_head * G */
	const int32_t *red_slot;     /* the reduction lists (as attn_rparams) */
	float *out;                  /* (n_queries, n_head, D) */
	int32_t n_kv_head, fuse;
	int32_t wg; /* warpgroup MMA (sm_90a builds): 0 off, 1 for 65-128-row segments, 2 also
		       33-64, 3 every tensor-core segment (DT_ATTN_WG; kernels/NOTES.md) */
	/* profile (cuda_attn_profile, else NULL): %globaltimer stamps, ns: prof[4 s ..] segment s
	 * started, its query rows loaded, its last tile done (thread 0), unused; then per CTA c
	 * at prof[4 n_segs + 3 c ..]: start, segments done
	 * (before the fused reduction), end; n_segs = cta_off[gridDim.x] */
	unsigned long long *prof;
};

/* attn_deft_flatten.cu */
/* Visibility words of every tile and entry of the masked segments. */
int attn_bits_launch(const struct attn_kparams *p, const int32_t *masked_segs, int32_t n_masked,
		     cudaStream_t s, char *err);
int attn_part_launch(const struct attn_kparams *p, int head_dim, enum cuda_dtype t, int n_cta,
		     cudaStream_t s, char *err);

// ---- the exact reduction of one (query, KV head): shared by attn_reduce.cu
// and the fused kernel, so both give the same bits.

#define ATTN_Q_TAIL 0  /* red_ctl: slots published (reserved) this run */
#define ATTN_Q_HEAD 32 /* tickets taken by helpers this run */
#define ATTN_Q_EXIT 64 /* CTAs done with the queue this run */
#define ATTN_Q_GEN 96  /* runs so far: slots of this run carry gen + 1 */
#define ATTN_Q_CTL_WORDS 128
#define ATTN_HELP_WAIT_NS 2000000ull /* a helper waits at most 2 ms for one slot */
#define ATTN_RED_HEADS 4 /* query heads one warp of the fused reduction merges at once
			    (independent loads); the separate grid takes one per warp */

/* Lane i of the n (<= 32) partials at list position c: returns its slot
 * and sets x to its log-sum-exp per head (-inf past the list's end). */
/* Lane i's slot of partial c + i of a reduction list (i < n), else 0: plan
 * data, so the separate grid loads it before waiting for the partials. */
__device__ __forceinline__ int attn_red_slot(const int32_t *red_slot, int c, int n)
{
	const int lane = threadIdx.x & 31;
	return lane < n ? red_slot[c + lane] : 0;
}

/* Lane i's log-sum-exp of the partial whose slot it holds (heads j0 .. j0 +
 * nh), -inf for lanes >= n. */
template <int H>
__device__ __forceinline__ void attn_red_lse(const float *part_lse, int s, int n, int hpk, int j0, int nh,
					     float (&x)[H])
{
	const int lane = threadIdx.x & 31;
	const size_t r = (size_t)s * hpk + j0;
#pragma unroll
	for (int jj = 0; jj < H; jj++)
		x[jj] = lane < n && jj < nh ? __ldcg(part_lse + r + jj) : -INFINITY;
}

/* One warp merges the partial rows red_slot[b .. e) x hpk + j0 .. j0 + nh
 * (nh = min(H, hpk - j0) query heads of one KV head) into dst (nh rows of D
 * floats); s0 is lane i's slot of partial b + i (attn_red_slot, loaded by the
 * caller).  Pass 1 takes each head's largest log-sum-exp (lane i holds partial
 * b + i, then b + 32 + i, ..); pass 2 walks the list in order, 32 partials at a
 * time (lane i holds partial i's slot and weight exp(lse - M); the first 32 are
 * still in registers from pass 1), and accumulates w * out and w in fp32 in
 * list order; every lane owns D/32 consecutive dims.  In the separate grid
 * (H = 1) the rows of U partials are loaded before any is added (U = 6 where
 * the grid has many warps, 16 where it has few and each waits on its own
 * loads: v13); the fused kernel (H = 4, no registers to spare) loads one row
 * after another.  Each head's sum is the same whatever H and U are.  The
 * partials were written by other CTAs of this grid or an earlier one: read
 * through L2 (ld.cg). */
template <int D, int H, int U = 6>
__device__ __forceinline__ void attn_reduce_heads(const float *part_o, const float *part_lse,
						  const int32_t *red_slot, int b, int e, int hpk,
						  int j0, float *dst, int s0)
{
	constexpr int E = D / 32;           /* dims per lane: 4 or 2 */
	using V = typename std::conditional<E == 4, float4, float2>::type;
	const int lane = threadIdx.x & 31;
	const int nh = min(H, hpk - j0);
	float M[H], Mu[H], L[H], acc[H][E], x0[H];
#pragma unroll
	for (int jj = 0; jj < H; jj++) {
		L[jj] = 0.f;
#pragma unroll
		for (int k = 0; k < E; k++)
			acc[jj][k] = 0.f;
	}
	attn_red_lse<H>(part_lse, s0, min(32, e - b), hpk, j0, nh, x0);
#pragma unroll
	for (int jj = 0; jj < H; jj++)
		M[jj] = x0[jj];
	for (int i = b + 32 + lane; i < e; i += 32) {
		const size_t r = (size_t)red_slot[i] * hpk + j0;
#pragma unroll
		for (int jj = 0; jj < H; jj++)
			if (jj < nh)
				M[jj] = fmaxf(M[jj], __ldcg(part_lse + r + jj));
	}
#pragma unroll
	for (int jj = 0; jj < H; jj++) {
#pragma unroll
		for (int off = 16; off > 0; off >>= 1)
			M[jj] = fmaxf(M[jj], __shfl_xor_sync(0xffffffffu, M[jj], off));
		Mu[jj] = M[jj] == -INFINITY ? 0.f : M[jj];
	}
	for (int c = b; c < e; c += 32) {
		const int n = min(32, e - c);
		int s = s0;
		if (c != b) {
			s = attn_red_slot(red_slot, c, n);
			attn_red_lse<H>(part_lse, s, n, hpk, j0, nh, x0);
		}
		float w[H];
#pragma unroll
		for (int jj = 0; jj < H; jj++)
			w[jj] = lane < n && jj < nh ? expf(x0[jj] - Mu[jj]) : 0.f;
		if constexpr (H > 1) {
			/* the fused kernel (255 registers): one row load after another;
			 * batched loads here made ptxas spill in the main loop */
#pragma unroll 4
			for (int k = 0; k < n; k++) {
				const int sk = __shfl_sync(0xffffffffu, s, k);
				const float *src = part_o + ((size_t)sk * hpk + j0) * D + lane * E;
#pragma unroll
				for (int jj = 0; jj < H; jj++) {
					const float wk = __shfl_sync(0xffffffffu, w[jj], k);
					if (jj < nh) {
						const V x = __ldcg(reinterpret_cast<const V *>(src + jj * D));
						L[jj] += wk;
						acc[jj][0] += wk * x.x;
						acc[jj][1] += wk * x.y;
						if constexpr (E == 4) {
							acc[jj][2] += wk * x.z;
							acc[jj][3] += wk * x.w;
						}
					}
				}
			}
		} else {
#pragma unroll 1
			for (int k0 = 0; k0 < n; k0 += U) {
				V x[U];
#pragma unroll
				for (int u = 0; u < U; u++)
					if (k0 + u < n)
						x[u] = __ldcg(reinterpret_cast<const V *>(
							part_o + ((size_t)__shfl_sync(0xffffffffu, s, k0 + u) * hpk + j0) * D + lane * E));
#pragma unroll
				for (int u = 0; u < U; u++) {
					if (k0 + u < n) {
						const float wk = __shfl_sync(0xffffffffu, w[0], k0 + u);
						L[0] += wk;
						acc[0][0] += wk * x[u].x;
						acc[0][1] += wk * x[u].y;
						if constexpr (E == 4) {
							acc[0][2] += wk * x[u].z;
							acc[0][3] += wk * x[u].w;
						}
					}
				}
			}
		}
	}
#pragma unroll
	for (int jj = 0; jj < H; jj++) {
		if (jj < nh) {
			const float inv = L[jj] > 0.f ? 1.f / L[jj] : 0.f;
			float *d = dst + jj * D + lane * E;
			if constexpr (E == 4)
				*reinterpret_cast<float4 *>(d) = make_float4(acc[jj][0] * inv, acc[jj][1] * inv,
									     acc[jj][2] * inv, acc[jj][3] * inv);
			else
				*reinterpret_cast<float2 *>(d) = make_float2(acc[jj][0] * inv, acc[jj][1] * inv);
		}
	}
}

/* attn_reduce.cu: out[q][h] = merge of part rows red_slot[red_off[q*Hkv+kvh] ..) */
struct attn_rparams {
	const float *part_o, *part_lse;
	const int32_t *red_off, *red_slot;
	float *out;
	int32_t n_queries, n_head, n_kv_head, hpk;
	/* profile (cuda_attn_profile, else NULL): per block b, prof[3 b ..] = %globaltimer at
	 * its start, after griddepcontrol.wait (the partials complete), its last warp's end */
	unsigned long long *prof;
};
int attn_reduce_launch(const struct attn_rparams *p, int head_dim, cudaStream_t s, char *err);

/* attn_tree_mask.cu */
struct attn_tmparams {
	const void *k, *v;
	const int32_t *tok_row;
	const void *q;
	const int32_t *group_tok;   /* (n_groups) first token of each group in tok_row */
	const int32_t *group_ntok;  /* (n_groups) */
	const int32_t *group_eoff;  /* (n_groups + 1) */
	const int32_t *entry_query, *entry_nvis, *entry_mask;
	const uint32_t *mask;
	const int64_t *entry_moff;  /* (n_entries) offset of the entry's row in the dense mask */
	void *dmask;                /* dense additive mask (sum_e n_g(e)) of T: 0 or -inf */
	void *scores;               /* (sum_e n_g(e) * n_head) of T: scores, then probabilities */
	float *part_o, *part_lse;   /* slot = entry * n_kv_head + kvh */
	int32_t n_groups, n_entries, max_group_tokens, max_group_rows;
	int32_t n_head, n_kv_head, hpk, page_size;
	float scale;
};
int attn_tm_build_mask(const struct attn_tmparams *p, enum cuda_dtype t, cudaStream_t s,
		       char *err);
int attn_tm_launch(const struct attn_tmparams *p, int head_dim, enum cuda_dtype t, cudaStream_t s,
		   char *err);

/* kv_gpu.cu */
const void *cuda_kv_k_ptr(const struct cuda_kv *kv, int32_t copy, int32_t layer);
const void *cuda_kv_v_ptr(const struct cuda_kv *kv, int32_t copy, int32_t layer);

#endif
