// attn_deft_flatten.cu — the fused partial-attention kernel of DeFT-Flatten
// (also run by seq and deft-node with their own work lists).
//
// DESIGN
//   A persistent grid: CTA c runs the segments cta_off[c] .. cta_off[c+1]
//   (attn_plan.cu balances them), one 256-thread CTA per SM.  A segment is
//   a run of KV tokens of one KV head and up to 128 query ROWS (plan entries
//   x the query heads of that KV head, GQA batched).  The CTA streams the
//   segment's K and V through a cp.async pipeline of NS stages of 64 tokens,
//   gathered through tok_row (the page table) into XOR-swizzled shared
//   memory, so every KV byte of a segment crosses DRAM once for all its rows;
//   the next segment's first tiles are in flight while the current one
//   finishes.  The page-table rows of a tile are copied (cp.async) into a
//   shared ring NS - 1 tiles ahead of its K/V, and its visibility words
//   (precomputed per masked segment by attn_bits_kernel; arithmetic for fully
//   visible ones) travel with its K/V, so no thread waits on a global load
//   in the steady state.
//   Per segment one of two paths, by its row count (cuda_attn_params):
//     tensor cores  mma.sync m16n8k16 (fp16 or bf16 in, fp32 accumulate),
//                   FlashAttention-2 style: a warp owns 16 rows x a slice of
//                   the tile's tokens; S = Q K^T from ldmatrix'd K, masked
//                   (skipped when the warp's tile is fully visible), online
//                   softmax in the exp2 domain with the scale folded into one
//                   FFMA, O rescaled only when a row max moved, P reused from
//                   the accumulators as the A operand of P V (ldmatrix .trans
//                   on V).  With few rows, idle row warps take token slices
//                   instead (WR row warps x TS token warps); the TS parts of
//                   a row merge at the segment end: parts 1.. through shared
//                   memory into the part-0 warp's registers.
//     CUDA cores    rows <= 4: each warp takes 8 tokens of the tile, 8 lanes
//                   per token (16-byte smem reads, conflict free), fp32; its
//                   8 warp parts merge in shared memory.
//   Each row writes its normalized partial and log-sum-exp (natural log),
//   fp32, in a fixed order.  With p.fuse, the CTA then counts its partials
//   per (query, KV head) with one atomic add per key, and the CTA that
//   completes a key merges that key's partials in list order (attn_finish):
//   the atomics only elect who merges, the sum order is fixed.  With helpers
//   it publishes the merges in a queue instead, and every CTA done with its
//   segments takes queue tickets and merges too (attn_help).
#include "config.h"

extern "C" {
#include "common.h"
}

#include <math.h>

#include "attn_common.cuh"
#include "attn_wgmma.cuh"
#include "cuda_common.h"

// ---- configuration

#define ATTN_SEG_CACHE 64 /* a CTA's first segment descriptors, kept in shared memory */
#define ATTN_ROW_RING 16  /* tiles of page-table rows in the shared ring (>= 2 (NS - 1)) */

template <int D> struct attn_cfg {
	static constexpr int CH = D / 8;                       /* 16-byte chunks per K/V row */
	static constexpr int NS = D == 128 ? 5 : 8;            /* stages: 128 / 112 KB in flight */
	static constexpr int STAGE = 2 * ATTN_TILE * D;        /* elements: K tile then V tile */
	static constexpr uint32_t PANEL = ATTN_TILE * 128;     /* bytes of one 64-dim panel of a tile */
	static constexpr int MS = D + 4;                       /* merge row stride (floats): spreads banks */
	static constexpr int MO_ROWS = 96;                     /* parked rows: (TS-1) x 16 x WR <= 96,
								  CUDA-core path 8 x 4 */
	static constexpr size_t SMEM_KV = (size_t)NS * STAGE * 2;
	static constexpr size_t SMEM_MB = (size_t)NS * ATTN_MAX_ROWS * 2 * 4; /* 2 mask words per entry */
	static constexpr size_t SMEM_MO = (size_t)MO_ROWS * MS * 4;
	static constexpr size_t SMEM_ML = 2 * ATTN_MAX_ROWS * 4;
	static constexpr size_t SMEM_SEG = 64 * sizeof(attn_seg); /* ATTN_SEG_CACHE descriptors */
	static constexpr size_t SMEM_ROWS = (size_t)ATTN_ROW_RING * ATTN_TILE * 4;
	static constexpr size_t SMEM = SMEM_KV + SMEM_MB + SMEM_MO + SMEM_ML + SMEM_SEG + SMEM_ROWS;
	static constexpr size_t SMEM_ALLOC = SMEM + 1024;      /* the stages start 1024-byte aligned */
	static_assert(SMEM_ALLOC <= 227 * 1024, "shared memory of one CTA");
	static_assert(SMEM_MO >= (ATTN_THREADS + 2) * 4, "the fused reduction's key list lives in mo");
};

/* Element offset of 16-byte chunk c of row r in a (64 rows, D) tile: D/64
 * panels of 64 rows x 128 bytes, chunk c & 7 of a panel row at (c & 7) ^ (r & 7)
 * (the 128-byte swizzle that wgmma reads, attn_wgmma.cuh; ldmatrix reads it
 * conflict free too). */
template <int D> __device__ __forceinline__ int attn_sw(int r, int c)
{
	return (c >> 3) * (ATTN_TILE * 64) + r * 64 + (((c & 7) ^ (r & 7)) << 3);
}

// ---- visibility bits

/* Bits of the 32 segment tokens starting at tb for segment entry e. */
__device__ __forceinline__ uint32_t attn_bits(const attn_kparams &p, const attn_seg &sg, int e,
					      int tb)
{
	int valid = min(max(sg.n_tok - tb, 0), 32);
	if (sg.gtok0 >= 0) {
		int ent = sg.entry0 + e, gt = sg.gtok0 + tb;
		valid = min(valid, max(p.entry_nvis[ent] - gt, 0));
		uint32_t m = valid >= 32 ? 0xffffffffu : ((1u << valid) - 1u);
		int mo = p.entry_mask[ent];
		if (mo >= 0 && valid > 0)
			m &= p.mask[mo + (gt >> 5)];
		return m;
	}
	return valid >= 32 ? 0xffffffffu : ((1u << valid) - 1u);
}

// ---- the loader: one pipeline over all tiles of the CTA's segments



/* Segment descriptor s: from the CTA's shared-memory copy (segs_s, covering
 * s0 .. s0 + ATTN_SEG_CACHE) when there, else with three 16-byte loads. */
__device__ __forceinline__ attn_seg attn_load_seg(const attn_kparams &p, int s, const uint4 *segs_s = nullptr,
						  int s0 = 0)
{
	const bool cached = segs_s && s - s0 < ATTN_SEG_CACHE;
	const uint4 *src = cached ? segs_s + 3 * (s - s0) : reinterpret_cast<const uint4 *>(p.segs + s);
	const uint4 a = cached ? src[0] : __ldg(src), b = cached ? src[1] : __ldg(src + 1),
		    c = cached ? src[2] : __ldg(src + 2);
	attn_seg x;
	x.tok_off = (int32_t)a.x;
	x.n_tok = (int32_t)a.y;
	x.entry0 = (int32_t)a.z;
	x.ne = (int32_t)a.w;
	x.kvh = (int32_t)b.x;
	x.gtok0 = (int32_t)b.y;
	x.slot0 = (int32_t)b.z;
	x.cls = (int32_t)b.w;
	x.bits_off = (int32_t)c.x;
	x.pad[0] = x.pad[1] = x.pad[2] = 0;
	return x;
}

/* Tokens (tok_off, n_tok) of segment s, as attn_load_seg finds it. */
__device__ __forceinline__ int2 attn_seg_tok(const attn_kparams &p, int s, const uint4 *segs_s, int s0)
{
	if (s - s0 < ATTN_SEG_CACHE) {
		const uint4 a = segs_s[3 * (s - s0)];
		return make_int2((int)a.x, (int)a.y);
	}
	return __ldg(reinterpret_cast<const int2 *>(p.segs + s));
}

/* 4 or 8 bytes global -> shared through L1 (cp.async.ca); zero-filled when !valid. */
template <int N> __device__ __forceinline__ void attn_cp_async_ca(uint32_t saddr, const void *gmem, bool valid)
{
	int n = valid ? N : 0;
	asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(saddr), "l"(gmem), "n"(N), "r"(n));
}

/* Each call of issue() starts the copies of one tile as one cp.async group.
 * The tile's page-table rows were copied into the shared ring rows_s by the
 * group issued RA = NS - 1 tiles earlier (a second cursor walks the same
 * segments RA tiles ahead), so they have landed by the time the pipeline
 * reaches them: no thread waits on a global load in the steady state.  The
 * visibility words of a masked tile travel in the tile's own group, into the
 * stage's mask words; those of a fully visible tile are arithmetic. */
template <int D, typename T> struct attn_loader {
	using C = attn_cfg<D>;
	static constexpr int RPT = ATTN_TILE * C::CH / ATTN_THREADS; /* 16-byte chunks per thread */
	static constexpr int RA = C::NS - 1;                         /* rows loaded this many tiles ahead */
	static_assert(ATTN_ROW_RING >= 2 * RA, "the prologue issues RA tiles without a barrier");
	T *kv_s;
	uint32_t *mb_s;
	int32_t *rows_s;     /* (ATTN_ROW_RING, ATTN_TILE) tok_row of tile n in slot n % ATTN_ROW_RING */
	const uint4 *segs_s; /* cached descriptors of segments seg0 .. */
	int seg0;
	int seg, seg_end, tile; /* next tile to issue */
	int n_issued, n_done;   /* stages issued / consumed */
	attn_seg cur, nxt;
	int rseg, rtile;        /* the rows cursor: RA tiles ahead of (seg, tile) */
	int2 rcur, rnxt;        /* (tok_off, n_tok) of segments rseg, rseg + 1 */

	/* Copies the rows of the rows cursor's tile into ring slot `slot` and
	 * advances the cursor (part of the current cp.async group). */
	__device__ void rows_issue(const attn_kparams &p, int slot)
	{
		if (rseg >= seg_end)
			return;
		if (threadIdx.x < ATTN_TILE) {
			const int tok = rtile * ATTN_TILE + threadIdx.x;
			const bool ok = tok < rcur.y;
			attn_cp_async_ca<4>((uint32_t)__cvta_generic_to_shared(rows_s + slot * ATTN_TILE + threadIdx.x),
					    p.tok_row + (ok ? rcur.x + tok : 0), ok);
		}
		if (++rtile * ATTN_TILE >= rcur.y) {
			rtile = 0;
			if (++rseg < seg_end) {
				rcur = rnxt;
				if (rseg + 1 < seg_end)
					rnxt = attn_seg_tok(p, rseg + 1, segs_s, seg0);
			}
		}
	}

	__device__ void start(const attn_kparams &p, int s0, int s1, T *kv, uint32_t *mb, int32_t *rs,
			      const uint4 *ss)
	{
		kv_s = kv;
		mb_s = mb;
		rows_s = rs;
		segs_s = ss;
		seg0 = s0;
		seg = s0;
		seg_end = s1;
		tile = 0;
		n_issued = n_done = 0;
		cur = attn_load_seg(p, s0, segs_s, seg0);
		nxt = s0 + 1 < s1 ? attn_load_seg(p, s0 + 1, segs_s, seg0) : cur;
		rseg = s0;
		rtile = 0;
		rcur = make_int2(cur.tok_off, cur.n_tok);
		rnxt = make_int2(nxt.tok_off, nxt.n_tok);
		/* the rows of the first RA tiles, all in flight at once */
#pragma unroll 1
		for (int i = 0; i < RA; i++)
			rows_issue(p, i);
		attn_cp_async_commit();
		attn_cp_async_wait<0>();
		__syncthreads();
	}

	/* Issues the next tile (or nothing) as one cp.async group. */
	__device__ void issue(const attn_kparams &p)
	{
		if (seg < seg_end) {
			const int st = n_issued % C::NS;
			/* this thread's chunk column c and first row r0 are the same for all
			 * i (ATTN_THREADS is a multiple of CH); rows step by ATTN_THREADS/CH,
			 * a multiple of 8, so the swizzle is the same for all i too */
			const int r0 = threadIdx.x / C::CH, c = threadIdx.x % C::CH;
			const uint32_t sdst = (uint32_t)__cvta_generic_to_shared(kv_s) + (uint32_t)st * (C::STAGE * 2) +
					      (uint32_t)attn_sw<D>(r0, c) * 2;
			const size_t col = ((size_t)cur.kvh * p.page_size * D + c * 8) * sizeof(T);
			const char *kcol = (const char *)p.k + col, *vcol = (const char *)p.v + col;
			const int32_t *rr = rows_s + (n_issued % ATTN_ROW_RING) * ATTN_TILE;
			const int nv = cur.n_tok - tile * ATTN_TILE; /* valid tokens of this tile */
#pragma unroll
			for (int i = 0; i < RPT; i++) {
				const int tk = r0 + i * (ATTN_THREADS / C::CH);
				const bool ok = tk < nv;
				const size_t off = ok ? (size_t)(uint32_t)rr[tk] * (D * sizeof(T)) : 0;
				const uint32_t d = sdst + (uint32_t)(i * (ATTN_THREADS / C::CH) * 128);
				attn_cp_async16_u32(d, kcol + off, ok);
				attn_cp_async16_u32(d + ATTN_TILE * D * 2, vcol + off, ok);
			}
			if ((int)threadIdx.x < cur.ne) {
				uint2 *mdst = reinterpret_cast<uint2 *>(mb_s + st * ATTN_MAX_ROWS * 2) + threadIdx.x;
				if (cur.bits_off >= 0) {
					attn_cp_async_ca<8>((uint32_t)__cvta_generic_to_shared(mdst),
							    p.seg_bits + cur.bits_off + tile * cur.ne + threadIdx.x, true);
				} else {
					const int v0 = min(max(nv, 0), 32), v1 = min(max(nv - 32, 0), 32);
					*mdst = make_uint2(v0 >= 32 ? 0xffffffffu : ((1u << v0) - 1u),
							   v1 >= 32 ? 0xffffffffu : ((1u << v1) - 1u));
				}
			}
			if (++tile * ATTN_TILE >= cur.n_tok) {
				tile = 0;
				if (++seg < seg_end) {
					cur = nxt;
					if (seg + 1 < seg_end)
						nxt = attn_load_seg(p, seg + 1, segs_s, seg0);
				}
			}
			rows_issue(p, (n_issued + RA) % ATTN_ROW_RING);
		}
		attn_cp_async_commit();
		n_issued++;
	}

	/* Waits for the next stage to land and returns its index; frees the
	 * stage consumed last and refills it. */
	__device__ int next(const attn_kparams &p)
	{
		attn_cp_async_wait<C::NS - 2>();
		if (ATTN_WGMMA && p.wg)
			attn_fence_proxy_async(); /* the landed tile is read by wgmma (async proxy) */
		__syncthreads();
		issue(p);
		return n_done++ % C::NS;
	}
};

// ---- the merge: parts of (m, l, O) per row -> one normalized partial

/* parts x prow rows parked in mo/ml (m in ml[0..128), l in ml[128..256)),
 * part k of row r at k * prow + r.  All threads; rows < n_rows are written. */
template <int D>
__device__ void attn_merge_write(const attn_kparams &p, const attn_seg &sg, const float *mo,
				 const float *ml, int parts, int prow, int n_rows)
{
	using C = attn_cfg<D>;
	constexpr int D4 = D / 4;
	for (int i = threadIdx.x; i < n_rows * D4; i += ATTN_THREADS) {
		const int r = i / D4, c = i % D4;
		float M = -INFINITY;
		for (int k = 0; k < parts; k++)
			M = fmaxf(M, ml[k * prow + r]);
		const float Mu = M == -INFINITY ? 0.f : M;
		float L = 0.f;
		float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
		for (int k = 0; k < parts; k++) {
			const float w = attn_ex2(ml[k * prow + r] - Mu);
			L += w * ml[ATTN_MAX_ROWS + k * prow + r];
			const float4 x = *reinterpret_cast<const float4 *>(&mo[(k * prow + r) * C::MS + 4 * c]);
			acc.x += w * x.x;
			acc.y += w * x.y;
			acc.z += w * x.z;
			acc.w += w * x.w;
		}
		const float inv = L > 0.f ? 1.f / L : 0.f;
		const int e = r / p.hpk, j = r - e * p.hpk;
		const size_t slot = (size_t)(sg.slot0 + e) * p.hpk + j;
		*reinterpret_cast<float4 *>(&p.part_o[slot * D + 4 * c]) =
			make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
		if (c == 0)
			p.part_lse[slot] = L > 0.f ? (M + __log2f(L)) * 0.69314718055994531f : -INFINITY;
	}
}

/* Row of q for segment row r (r < ne * hpk). */
template <int D, typename T>
__device__ __forceinline__ const T *attn_qrow(const attn_kparams &p, const attn_seg &sg, int r)
{
	const int e = r / p.hpk, j = r - e * p.hpk;
	const int qi = p.entry_query[sg.entry0 + e];
	return (const T *)p.q + ((size_t)qi * p.n_head + sg.kvh * p.hpk + j) * D;
}

// ---- tensor-core path

/* ps: the segment's profile stamps (--prof only, else nullptr): [1] its query
 * rows in registers, [2] its last tile done (thread 0's view) */
template <int D, typename T, int WR, bool WG = false>
__device__ void attn_seg_mma(const attn_kparams &p, const attn_seg &sg, attn_loader<D, T> &ld,
			     float *mo, float *ml, unsigned long long *ps)
{
	using C = attn_cfg<D>;
	constexpr int TS = (8 / WR) < 4 ? (8 / WR) : 4; /* token warps */
	constexpr int NW = ATTN_TILE / TS;               /* tokens per warp per tile: 64/32/16 */
	constexpr int NT = NW / 8;                       /* S n-tiles */
	constexpr int KS = D / 16;                       /* k-steps of Q K^T */
	constexpr int DT = D / 8;                        /* O n-tiles */
	constexpr uint32_t ROWB = 128;                   /* bytes per row of a 64-dim panel */
	constexpr uint32_t KVB = ATTN_TILE * D * 2;      /* bytes of the K tile (V follows) */
	/* warpgroup path: WR 8 = two warpgroups of 64 rows over the whole tile; WR 4 = one
	 * block of 64 rows, warpgroup g takes tokens 32 g .. 32 g + 31 (TS 2) */
	static_assert(!WG || WR == 8 || WR == 4, "warpgroups: 8 row warps, or 4 row warps x 2 token warps");
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int wr = warp % WR, ts = warp / WR;
	const int g = lane >> 2, q4 = lane & 3;
	const int n_rows = sg.ne * p.hpk;
	/* wgmma is warpgroup-wide: a warpgroup (64 rows) runs if any of its rows is real */
	const bool active = WG ? (WR == 8 ? (warp >> 2) * 64 : 0) < n_rows : ts < TS && wr * 16 < n_rows;
	const int r_lo = wr * 16 + g, r_hi = r_lo + 8;
	const int e_lo = r_lo / p.hpk, e_hi = r_hi / p.hpk;
	const float sl2 = p.scale_log2;
	const int tw0 = ts * NW;

	/* ldmatrix byte offsets inside a stage.  With the XOR swizzle, chunk c of
	 * row r sits at chunk c ^ (r & 7); a lane's rows all have r & 7 == lane & 7,
	 * so k-step kk = 4 q + rr reads chunk 8 q + ((2 rr + b) ^ (lane & 7)):
	 * four per-lane bases, then immediates (q * 128 bytes, 8 or 16 rows). */
	const int x7 = lane & 7;
	uint32_t koff[4], voff[4];
#pragma unroll
	for (int rr = 0; rr < 4; rr++) {
		koff[rr] = (uint32_t)(tw0 + x7 + ((lane >> 4) << 3)) * ROWB +
			   (uint32_t)(((2 * rr + ((lane >> 3) & 1)) ^ x7) << 4);
		voff[rr] = KVB + (uint32_t)(tw0 + x7 + (((lane >> 3) & 1) << 3)) * ROWB +
			   (uint32_t)(((2 * rr + (lane >> 4)) ^ x7) << 4);
	}
	const uint32_t kv_s0 = (uint32_t)__cvta_generic_to_shared(ld.kv_s);

	uint32_t qa[KS][4];
	float o[DT][4];
	float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f; /* m: raw score units */
#pragma unroll
	for (int i = 0; i < DT; i++)
		o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
	if (active) {
		const T *qlo = r_lo < n_rows ? attn_qrow<D, T>(p, sg, r_lo) : nullptr;
		const T *qhi = r_hi < n_rows ? attn_qrow<D, T>(p, sg, r_hi) : nullptr;
#pragma unroll
		for (int kk = 0; kk < KS; kk++) {
			const int c0 = kk * 16 + 2 * q4;
			qa[kk][0] = qlo ? *reinterpret_cast<const uint32_t *>(qlo + c0) : 0u;
			qa[kk][1] = qhi ? *reinterpret_cast<const uint32_t *>(qhi + c0) : 0u;
			qa[kk][2] = qlo ? *reinterpret_cast<const uint32_t *>(qlo + c0 + 8) : 0u;
			qa[kk][3] = qhi ? *reinterpret_cast<const uint32_t *>(qhi + c0 + 8) : 0u;
		}
	}
	if (ps && threadIdx.x == 0) { /* waits for the query loads, then stamps */
		asm volatile("" ::"r"(qa[0][0] ^ qa[KS - 1][3]));
		ps[1] = attn_gtimer();
	}

	const int n_tiles = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE;
	for (int t = 0; t < n_tiles; t++) {
		const int st = ld.next(p);
		if (!active)
			continue;
		const uint32_t sb = kv_s0 + (uint32_t)st * (C::STAGE * 2);
		const uint32_t *mb = ld.mb_s + st * ATTN_MAX_ROWS * 2;

		// S = Q K^T (raw scores)
		float s[NT][4];
#pragma unroll
		for (int j = 0; j < NT; j++)
			s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
		if constexpr (WG) {
			attn_wg_pin(s);
			attn_wg_fence();
#pragma unroll
			for (int kk = 0; kk < KS; kk++) {
				const uint64_t dk =
					attn_wg_desc(sb + tw0 * ROWB + (kk >> 2) * C::PANEL + (kk & 3) * 32, 16, 1024);
				if constexpr (NT == 8)
					attn_wg_m64n64<T>(s, qa[kk], dk, kk > 0, 0);
				else
					attn_wg_m64n32<T>(s, qa[kk], dk, kk > 0, 0);
			}
			attn_wg_commit();
			attn_wg_wait0();
			attn_wg_pin(s);
		} else {
#pragma unroll
			for (int kk = 0; kk < KS; kk++) {
#pragma unroll
				for (int j = 0; j < NT; j += 2) {
					uint32_t b0, b1, b2, b3;
					attn_ldsm_x4(b0, b1, b2, b3,
						     sb + koff[kk & 3] + (kk >> 2) * C::PANEL + j * 8 * ROWB);
					attn_mma<T>(s[j], qa[kk], b0, b1);
					attn_mma<T>(s[j + 1], qa[kk], b2, b3);
				}
			}
		}

		// visibility: the warp's NW tokens lie in one word (NW <= 32) or are the whole tile
		const uint32_t w_lo0 = mb[2 * e_lo + (tw0 >> 5)], w_hi0 = mb[2 * e_hi + (tw0 >> 5)];
		const uint32_t w_lo1 = NW > 32 ? mb[2 * e_lo + 1] : 0xffffffffu;
		const uint32_t w_hi1 = NW > 32 ? mb[2 * e_hi + 1] : 0xffffffffu;
		const uint32_t nwm = NW >= 32 ? 0xffffffffu : (((1u << NW) - 1u) << (tw0 & 31));
		const bool full = ((w_lo0 & w_hi0 & nwm) == nwm) && ((w_lo1 & w_hi1) == 0xffffffffu);
		if (!__all_sync(0xffffffffu, full)) {
#pragma unroll
			for (int j = 0; j < NT; j++) {
				const int tb = (tw0 & 31) + 8 * j;
				const uint32_t w_lo = tb < 32 ? w_lo0 : w_lo1, w_hi = tb < 32 ? w_hi0 : w_hi1;
				const int b = (tb & 31) + 2 * q4;
				if (!((w_lo >> b) & 1u))
					s[j][0] = -INFINITY;
				if (!((w_lo >> (b + 1)) & 1u))
					s[j][1] = -INFINITY;
				if (!((w_hi >> b) & 1u))
					s[j][2] = -INFINITY;
				if (!((w_hi >> (b + 1)) & 1u))
					s[j][3] = -INFINITY;
			}
		}

		// online softmax: max on raw scores, exp2((s - m) * scale * log2 e) as one FFMA
		float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
		for (int j = 0; j < NT; j++) {
			mx_lo = fmaxf(mx_lo, fmaxf(s[j][0], s[j][1]));
			mx_hi = fmaxf(mx_hi, fmaxf(s[j][2], s[j][3]));
		}
		mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 1));
		mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 2));
		mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 1));
		mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 2));
		const float mn_lo = fmaxf(m_lo, mx_lo), mn_hi = fmaxf(m_hi, mx_hi);
		const float nb_lo = mn_lo == -INFINITY ? 0.f : -mn_lo * sl2;
		const float nb_hi = mn_hi == -INFINITY ? 0.f : -mn_hi * sl2;
		const float a_lo = mn_lo == m_lo ? 1.f : attn_ex2(fmaf(m_lo, sl2, nb_lo));
		const float a_hi = mn_hi == m_hi ? 1.f : attn_ex2(fmaf(m_hi, sl2, nb_hi));
		m_lo = mn_lo;
		m_hi = mn_hi;
		float rs_lo = 0.f, rs_hi = 0.f;
#pragma unroll
		for (int j = 0; j < NT; j++) {
			s[j][0] = attn_ex2(fmaf(s[j][0], sl2, nb_lo));
			s[j][1] = attn_ex2(fmaf(s[j][1], sl2, nb_lo));
			s[j][2] = attn_ex2(fmaf(s[j][2], sl2, nb_hi));
			s[j][3] = attn_ex2(fmaf(s[j][3], sl2, nb_hi));
			rs_lo += s[j][0] + s[j][1];
			rs_hi += s[j][2] + s[j][3];
		}
		l_lo = fmaf(l_lo, a_lo, rs_lo);
		l_hi = fmaf(l_hi, a_hi, rs_hi);
		if (__any_sync(0xffffffffu, a_lo != 1.f || a_hi != 1.f)) {
#pragma unroll
			for (int i = 0; i < DT; i++) {
				o[i][0] *= a_lo;
				o[i][1] *= a_lo;
				o[i][2] *= a_hi;
				o[i][3] *= a_hi;
			}
		}

		// O += P V
		if constexpr (WG) {
			uint32_t pa[NW / 16][4];
#pragma unroll
			for (int k2 = 0; k2 < NW / 16; k2++) {
				pa[k2][0] = attn_pack2<T>(s[2 * k2][0], s[2 * k2][1]);
				pa[k2][1] = attn_pack2<T>(s[2 * k2][2], s[2 * k2][3]);
				pa[k2][2] = attn_pack2<T>(s[2 * k2 + 1][0], s[2 * k2 + 1][1]);
				pa[k2][3] = attn_pack2<T>(s[2 * k2 + 1][2], s[2 * k2 + 1][3]);
			}
			attn_wg_pin(o);
			attn_wg_fence();
#pragma unroll
			for (int k2 = 0; k2 < NW / 16; k2++) {
				const uint64_t dv = attn_wg_desc(sb + KVB + (tw0 + k2 * 16) * ROWB, C::PANEL, 1024);
				if constexpr (D == 128)
					attn_wg_m64n128<T>(o, pa[k2], dv, 1, 1);
				else
					attn_wg_m64n64<T>(o, pa[k2], dv, 1, 1);
			}
			attn_wg_commit();
			attn_wg_wait0();
			attn_wg_pin(o);
		} else {
#pragma unroll
			for (int k2 = 0; k2 < NW / 16; k2++) {
				const uint32_t pa[4] = {
					attn_pack2<T>(s[2 * k2][0], s[2 * k2][1]),
					attn_pack2<T>(s[2 * k2][2], s[2 * k2][3]),
					attn_pack2<T>(s[2 * k2 + 1][0], s[2 * k2 + 1][1]),
					attn_pack2<T>(s[2 * k2 + 1][2], s[2 * k2 + 1][3]),
				};
#pragma unroll
				for (int dp = 0; dp < D / 16; dp++) {
					uint32_t b0, b1, b2, b3;
					attn_ldsm_x4_trans(b0, b1, b2, b3,
							   sb + voff[dp & 3] + (dp >> 2) * C::PANEL + k2 * 16 * ROWB);
					attn_mma<T>(o[2 * dp], pa, b0, b1);
					attn_mma<T>(o[2 * dp + 1], pa, b2, b3);
				}
			}
		}
	}

	if (ps && threadIdx.x == 0) {
		asm volatile("" ::"f"(o[0][0]), "f"(o[DT - 1][3]));
		ps[2] = attn_gtimer();
	}

	// merge the TS token-warp parts of each row: parts 1.. park in shared
	// memory, the part-0 warps fold them in (fixed order) and write the
	// normalized partial and its log-sum-exp straight from registers
	if (active) {
		l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
		l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
		l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
		l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
		if (TS > 1 && ts > 0) { /* WR 2: only the rows that exist (a 4-row segment parks 4 of 16;
					  guarding the 64-row path too made its merge 0.8 us slower, v13) */
			const int base = (ts - 1) * 16 * WR;
#pragma unroll
			for (int i = 0; i < DT; i++) {
				if (WR > 2 || r_lo < n_rows)
					*reinterpret_cast<float2 *>(&mo[(base + r_lo) * C::MS + 8 * i + 2 * q4]) =
						make_float2(o[i][0], o[i][1]);
				if (WR > 2 || r_hi < n_rows)
					*reinterpret_cast<float2 *>(&mo[(base + r_hi) * C::MS + 8 * i + 2 * q4]) =
						make_float2(o[i][2], o[i][3]);
			}
			if (q4 == 0) { /* m in log2 units of the scaled score */
				ml[base + r_lo] = m_lo * sl2;
				ml[base + r_hi] = m_hi * sl2;
				ml[ATTN_MAX_ROWS + base + r_lo] = l_lo;
				ml[ATTN_MAX_ROWS + base + r_hi] = l_hi;
			}
		}
	}
	if (TS > 1)
		__syncthreads();
	if (active && ts == 0) {
		const float s_lo = m_lo * sl2, s_hi = m_hi * sl2;
		float M_lo = s_lo, M_hi = s_hi;
#pragma unroll
		for (int k = 1; k < TS; k++) {
			M_lo = fmaxf(M_lo, ml[(k - 1) * 16 * WR + r_lo]);
			M_hi = fmaxf(M_hi, ml[(k - 1) * 16 * WR + r_hi]);
		}
		const float U_lo = M_lo == -INFINITY ? 0.f : M_lo, U_hi = M_hi == -INFINITY ? 0.f : M_hi;
		const float w_lo = attn_ex2(s_lo - U_lo), w_hi = attn_ex2(s_hi - U_hi);
		float L_lo = l_lo * w_lo, L_hi = l_hi * w_hi;
#pragma unroll
		for (int i = 0; i < DT; i++) {
			o[i][0] *= w_lo;
			o[i][1] *= w_lo;
			o[i][2] *= w_hi;
			o[i][3] *= w_hi;
		}
#pragma unroll
		for (int k = 1; k < TS; k++) {
			const int b = (k - 1) * 16 * WR;
			const float v_lo = attn_ex2(ml[b + r_lo] - U_lo), v_hi = attn_ex2(ml[b + r_hi] - U_hi);
			L_lo += v_lo * ml[ATTN_MAX_ROWS + b + r_lo];
			L_hi += v_hi * ml[ATTN_MAX_ROWS + b + r_hi];
#pragma unroll
			for (int i = 0; i < DT; i++) {
				const float2 x = WR > 2 || r_lo < n_rows ? *reinterpret_cast<const float2 *>(
									 &mo[(b + r_lo) * C::MS + 8 * i + 2 * q4])
							       : make_float2(0.f, 0.f);
				const float2 y = WR > 2 || r_hi < n_rows ? *reinterpret_cast<const float2 *>(
									 &mo[(b + r_hi) * C::MS + 8 * i + 2 * q4])
							       : make_float2(0.f, 0.f);
				o[i][0] += v_lo * x.x;
				o[i][1] += v_lo * x.y;
				o[i][2] += v_hi * y.x;
				o[i][3] += v_hi * y.y;
			}
		}
		const float i_lo = L_lo > 0.f ? 1.f / L_lo : 0.f, i_hi = L_hi > 0.f ? 1.f / L_hi : 0.f;
		if (r_lo < n_rows) {
			const size_t slot = (size_t)(sg.slot0 + e_lo) * p.hpk + (r_lo - e_lo * p.hpk);
			float *dst = p.part_o + slot * D + 2 * q4;
#pragma unroll
			for (int i = 0; i < DT; i++)
				*reinterpret_cast<float2 *>(dst + 8 * i) = make_float2(o[i][0] * i_lo, o[i][1] * i_lo);
			if (q4 == 0)
				p.part_lse[slot] = L_lo > 0.f ? (M_lo + __log2f(L_lo)) * 0.69314718055994531f : -INFINITY;
		}
		if (r_hi < n_rows) {
			const size_t slot = (size_t)(sg.slot0 + e_hi) * p.hpk + (r_hi - e_hi * p.hpk);
			float *dst = p.part_o + slot * D + 2 * q4;
#pragma unroll
			for (int i = 0; i < DT; i++)
				*reinterpret_cast<float2 *>(dst + 8 * i) = make_float2(o[i][2] * i_hi, o[i][3] * i_hi);
			if (q4 == 0)
				p.part_lse[slot] = L_hi > 0.f ? (M_hi + __log2f(L_hi)) * 0.69314718055994531f : -INFINITY;
		}
	}
}

// ---- CUDA-core path (rows <= 4)

template <int D, typename T>
__device__ void attn_seg_cc(const attn_kparams &p, const attn_seg &sg, attn_loader<D, T> &ld,
			    float *mo, float *ml)
{
	using C = attn_cfg<D>;
	constexpr int CPL = D / 64;   /* 16-byte chunks per lane: chunk li + 8 * cc */
	constexpr int EPL = CPL * 8;  /* elements per lane */
	constexpr int R = ATTN_CC_ROWS;
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int grp = lane >> 3, li = lane & 7;
	const int n_rows = sg.ne * p.hpk;
	const float sl2 = p.scale_log2;

	float qf[R][EPL], o[R][EPL], m[R], l[R];
	int er[R];
#pragma unroll
	for (int r = 0; r < R; r++) {
		m[r] = -INFINITY;
		l[r] = 0.f;
		er[r] = r < n_rows ? r / p.hpk : -1;
#pragma unroll
		for (int i = 0; i < EPL; i++) {
			o[r][i] = 0.f;
			qf[r][i] = 0.f;
		}
		if (r < n_rows) {
			const T *qr = attn_qrow<D, T>(p, sg, r);
#pragma unroll
			for (int cc = 0; cc < CPL; cc++) {
				const uint4 u = *reinterpret_cast<const uint4 *>(qr + (li + 8 * cc) * 8);
				attn_unpack8(u, T(), &qf[r][cc * 8]);
			}
		}
	}

	const int n_tiles = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE;
	for (int t = 0; t < n_tiles; t++) {
		const int st = ld.next(p);
		const T *ks = ld.kv_s + (size_t)st * C::STAGE, *vs = ks + ATTN_TILE * D;
		const uint32_t *mb = ld.mb_s + st * ATTN_MAX_ROWS * 2;
		float sc[2][R];
#pragma unroll
		for (int it = 0; it < 2; it++) {
			const int tok = 8 * warp + 4 * it + grp;
			float kf[EPL];
#pragma unroll
			for (int cc = 0; cc < CPL; cc++) {
				const uint4 u = *reinterpret_cast<const uint4 *>(ks + attn_sw<D>(tok, li + 8 * cc));
				attn_unpack8(u, T(), &kf[cc * 8]);
			}
#pragma unroll
			for (int r = 0; r < R; r++) {
				float d = 0.f;
#pragma unroll
				for (int i = 0; i < EPL; i++)
					d = fmaf(qf[r][i], kf[i], d);
				d += __shfl_xor_sync(0xffffffffu, d, 1);
				d += __shfl_xor_sync(0xffffffffu, d, 2);
				d += __shfl_xor_sync(0xffffffffu, d, 4);
				bool vis = false;
				if (er[r] >= 0)
					vis = (mb[2 * er[r] + (tok >> 5)] >> (tok & 31)) & 1u;
				sc[it][r] = vis ? d * sl2 : -INFINITY;
			}
		}
		float vf[2][EPL];
#pragma unroll
		for (int it = 0; it < 2; it++) {
			const int tok = 8 * warp + 4 * it + grp;
#pragma unroll
			for (int cc = 0; cc < CPL; cc++) {
				const uint4 u = *reinterpret_cast<const uint4 *>(vs + attn_sw<D>(tok, li + 8 * cc));
				attn_unpack8(u, T(), &vf[it][cc * 8]);
			}
		}
#pragma unroll
		for (int r = 0; r < R; r++) {
			float mx = fmaxf(sc[0][r], sc[1][r]);
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
			mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
			const float mn = fmaxf(m[r], mx);
			const float mu = mn == -INFINITY ? 0.f : mn;
			const float a = attn_ex2(m[r] - mu);
			m[r] = mn;
			const float p0 = attn_ex2(sc[0][r] - mu), p1 = attn_ex2(sc[1][r] - mu);
			l[r] = l[r] * a + p0 + p1;
#pragma unroll
			for (int i = 0; i < EPL; i++)
				o[r][i] = fmaf(p1, vf[1][i], fmaf(p0, vf[0][i], o[r][i] * a));
		}
	}

	// the 4 lane groups hold the same m: sum their l and O, park per warp
#pragma unroll
	for (int r = 0; r < R; r++) {
		l[r] += __shfl_xor_sync(0xffffffffu, l[r], 8);
		l[r] += __shfl_xor_sync(0xffffffffu, l[r], 16);
#pragma unroll
		for (int i = 0; i < EPL; i++) {
			o[r][i] += __shfl_xor_sync(0xffffffffu, o[r][i], 8);
			o[r][i] += __shfl_xor_sync(0xffffffffu, o[r][i], 16);
		}
	}
	if (grp == 0) {
#pragma unroll
		for (int r = 0; r < R; r++) {
#pragma unroll
			for (int cc = 0; cc < CPL; cc++) {
				float *dst = &mo[(warp * R + r) * C::MS + (li + 8 * cc) * 8];
				*reinterpret_cast<float4 *>(dst) =
					make_float4(o[r][cc * 8], o[r][cc * 8 + 1], o[r][cc * 8 + 2], o[r][cc * 8 + 3]);
				*reinterpret_cast<float4 *>(dst + 4) = make_float4(
					o[r][cc * 8 + 4], o[r][cc * 8 + 5], o[r][cc * 8 + 6], o[r][cc * 8 + 7]);
			}
			if (li == 0) {
				ml[warp * R + r] = m[r];
				ml[ATTN_MAX_ROWS + warp * R + r] = l[r];
			}
		}
	}
	__syncthreads();
	attn_merge_write<D>(p, sg, mo, ml, ATTN_THREADS / 32, R, n_rows);
}

// ---- the fused reduction

/* One merge task: key cta_keys[task / G], query heads (task % G) * 4 .. of it
 * (the whole warp; lists in fixed order, so the bits do not depend on which
 * warp of which CTA runs it). */
template <int D> __device__ __forceinline__ void attn_merge_task(const attn_kparams &p, int task, int G)
{
	const int i = task / G, g = task - i * G, j0 = g * ATTN_RED_HEADS;
	const int4 kk = __ldg(&p.cta_keys[i]);
	const int q = kk.x / p.n_kv_head, kvh = kk.x - q * p.n_kv_head;
	attn_reduce_heads<D, ATTN_RED_HEADS>(p.part_o, p.part_lse, p.red_slot, kk.z, kk.w, p.hpk, j0,
					     p.out + ((size_t)q * p.n_head + kvh * p.hpk + j0) * D,
					     attn_red_slot(p.red_slot, kk.z, min(32, kk.w - kk.z)));
	if (g == 0 && (threadIdx.x & 31) == 0)
		p.red_cnt[kk.x] = 0;
}

__device__ __forceinline__ unsigned long long attn_ld_relaxed(const unsigned long long *a)
{
	unsigned long long v;
	asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(a) : "memory");
	return v;
}

__device__ __forceinline__ void attn_st_relaxed(unsigned long long *a, unsigned long long v)
{
	asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(a), "l"(v) : "memory");
}

/* Queue slot of this run (generation gen), ready or claimed. */
#define ATTN_Q_CLAIMED 0x80000000ull
__device__ __forceinline__ bool attn_q_mine(unsigned long long v, uint32_t gen)
{
	return (uint32_t)(v >> 32) == gen;
}

/* Help: each warp takes queue tickets (red_ctl[ATTN_Q_HEAD]) in order, waits
 * for its slot to be published by the CTA that completes the key (a slot
 * < red_cap is published exactly once per run: every key completes once),
 * and merges the task if no one claimed it first.  Tickets >= red_cap end the
 * help.  A warp waits at most ATTN_HELP_WAIT_NS for one slot, then stops
 * helping: the publishing CTA drains its own tasks too, so the results never
 * depend on the helpers (they only need the grid co-resident to be useful). */
template <int D> __device__ void attn_help(const attn_kparams &p, uint32_t gen, int G)
{
	const int lane = threadIdx.x & 31;
	for (;;) {
		int ticket = 0;
		unsigned long long v = 0;
		if (lane == 0) {
			ticket = (int)atomicAdd(&p.red_ctl[ATTN_Q_HEAD], 1u);
			if (ticket < p.red_cap) {
				unsigned long long *slot = p.red_q + ticket;
				const unsigned long long t0 = attn_gtimer();
				unsigned ns = 32;
				for (;;) {
					v = attn_ld_relaxed(slot);
					if (attn_q_mine(v, gen))
						break;
					if (attn_gtimer() - t0 > ATTN_HELP_WAIT_NS) {
						ticket = p.red_cap; /* give up helping */
						break;
					}
					__nanosleep(ns);
					ns = min(ns * 2, 512u);
				}
				if (ticket < p.red_cap && !(v & ATTN_Q_CLAIMED) &&
				    atomicCAS(slot, v, v | ATTN_Q_CLAIMED) != v)
					v |= ATTN_Q_CLAIMED; /* the publisher or another helper took it */
			}
		}
		ticket = __shfl_sync(0xffffffffu, ticket, 0);
		if (ticket >= p.red_cap)
			break;
		v = __shfl_sync(0xffffffffu, v, 0);
		if (v & ATTN_Q_CLAIMED)
			continue;
		__threadfence(); /* acquire: the key's partials, published before the slot */
		attn_merge_task<D>(p, (int)(v & 0x7fffffffull), G);
	}
}

/* After the CTA's last segment: count this CTA's partials into red_cnt (one
 * atomic add per key it touched, 256 keys at a time); the CTA whose add
 * completes a key owns its merge (attn_reduce_heads: fixed list order, so the
 * counter decides only who merges, never the order of the sum).  Without
 * helpers (red_q NULL) it merges the batch's keys itself, 8 warps.  With
 * helpers it publishes the batch's tasks in the queue (red_q, one slot per
 * task, tagged with the run's generation), then drains them from the back
 * while the helpers (CTAs done with their own work, attn_help) take them from
 * the front; each slot is claimed once (atomicCAS).  The task resets the key's
 * counter for the next run.  Release: every thread fences its partial stores
 * before the barrier that precedes the adds, and again before publishing;
 * acquire: a fence after the add / the claim, before reading partials.
 * list: 258 ints of shared memory (the merge buffer, free by now).  The last
 * CTA to leave resets the queue counters and advances the generation. */
template <int D> __device__ void attn_finish(const attn_kparams &p, int *list)
{
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int k0 = p.cta_key_off[blockIdx.x], k1 = p.cta_key_off[blockIdx.x + 1];
	const int G = (p.hpk + ATTN_RED_HEADS - 1) / ATTN_RED_HEADS;
	int *n_list = list + ATTN_THREADS, *q_pos = list + ATTN_THREADS + 1;
	const bool q = p.red_q != nullptr;
	const uint32_t gen = q ? *(volatile uint32_t *)&p.red_ctl[ATTN_Q_GEN] + 1u : 0u;
	__threadfence();
	__syncthreads(); /* the last segment's merge may still read mo */
	for (int base = k0; base < k1; base += ATTN_THREADS) {
		if (threadIdx.x == 0)
			*n_list = 0;
		__syncthreads();
		const int i = base + (int)threadIdx.x;
		if (i < k1) {
			const int4 kk = __ldg(&p.cta_keys[i]);
			if (atomicAdd(&p.red_cnt[kk.x], kk.y) + kk.y == kk.w - kk.z)
				list[atomicAdd(n_list, 1)] = i;
		}
		__threadfence();
		__syncthreads();
		const int nt = *n_list * G;
		if (!q) {
			for (int t = warp; t < nt; t += ATTN_THREADS / 32)
				attn_merge_task<D>(p, list[t / G] * G + t % G, G);
			__syncthreads(); /* list and n_list are reused */
			continue;
		}
		if (threadIdx.x == 0)
			*q_pos = nt ? (int)atomicAdd(&p.red_ctl[ATTN_Q_TAIL], (unsigned)nt) : 0;
		__syncthreads();
		const int pos0 = *q_pos;
		__threadfence(); /* release, after the barrier: the partials this CTA saw complete */
		for (int t = threadIdx.x; t < nt; t += ATTN_THREADS)
			if (pos0 + t < p.red_cap) /* always, unless a failed run left the tail behind */
				attn_st_relaxed(p.red_q + pos0 + t,
						(unsigned long long)gen << 32 | (uint32_t)(list[t / G] * G + t % G));
		__threadfence(); /* the slots are in L2 before this CTA's own claims below */
		__syncthreads();
		/* drain from the back, one task per warp at a time (a claimed task
		 * is not free for a helper until merged) */
		for (int t = nt - 1 - warp; t >= 0; t -= ATTN_THREADS / 32) {
			const int task = list[t / G] * G + t % G;
			bool mine = true;
			if (lane == 0 && pos0 + t < p.red_cap) {
				const unsigned long long v = (unsigned long long)gen << 32 | (uint32_t)task;
				mine = atomicCAS(p.red_q + pos0 + t, v, v | ATTN_Q_CLAIMED) == v;
			}
			if (__shfl_sync(0xffffffffu, mine, 0))
				attn_merge_task<D>(p, task, G);
		}
		__syncthreads(); /* list, n_list and q_pos are reused */
	}
	if (!q)
		return;
	attn_help<D>(p, gen, G);
	__syncthreads();
	if (threadIdx.x == 0 && atomicAdd(&p.red_ctl[ATTN_Q_EXIT], 1u) == gridDim.x - 1) {
		/* every CTA has left the queue: reset it for the next run */
		p.red_ctl[ATTN_Q_HEAD] = 0;
		p.red_ctl[ATTN_Q_TAIL] = 0;
		p.red_ctl[ATTN_Q_EXIT] = 0;
		p.red_ctl[ATTN_Q_GEN] = gen;
	}
}

// ---- the kernel

template <int D, typename T>
__global__ void __launch_bounds__(ATTN_THREADS, 1) attn_part_kernel(const attn_kparams p)
{
	using C = attn_cfg<D>;
	extern __shared__ __align__(128) unsigned char attn_smem_raw[];
	/* the K/V stages start 1024-byte aligned (the 128-byte swizzle repeats every 1024 bytes) */
	unsigned char *attn_smem =
		attn_smem_raw + ((1024u - ((uint32_t)__cvta_generic_to_shared(attn_smem_raw) & 1023u)) & 1023u);
	T *kv_s = reinterpret_cast<T *>(attn_smem);
	uint32_t *mb_s = reinterpret_cast<uint32_t *>(attn_smem + C::SMEM_KV);
	float *mo = reinterpret_cast<float *>(attn_smem + C::SMEM_KV + C::SMEM_MB);
	float *ml = mo + C::MO_ROWS * C::MS;
	uint4 *segs_s = reinterpret_cast<uint4 *>(attn_smem + C::SMEM_KV + C::SMEM_MB + C::SMEM_MO + C::SMEM_ML);
	int32_t *rows_s = reinterpret_cast<int32_t *>(attn_smem + C::SMEM_KV + C::SMEM_MB + C::SMEM_MO +
						      C::SMEM_ML + C::SMEM_SEG);

	/* let the reduction grid launch now; it waits for this grid's end */
	asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
	const int s0 = p.cta_off[blockIdx.x], s1 = p.cta_off[blockIdx.x + 1];
	if (s0 >= s1) {
		if (p.fuse && p.red_q) /* no segments: a helper of the fused reduction */
			attn_finish<D>(p, reinterpret_cast<int *>(mo));
		return;
	}
	unsigned long long *prof_cta = p.prof ? p.prof + 4 * p.cta_off[gridDim.x] + 3 * blockIdx.x : nullptr;
	if (prof_cta && threadIdx.x == 0)
		prof_cta[0] = attn_gtimer();
	{ /* the CTA's segment descriptors into shared memory */
		const int n = min(s1 - s0, ATTN_SEG_CACHE) * 3;
		const uint4 *src = reinterpret_cast<const uint4 *>(p.segs + s0);
		for (int i = threadIdx.x; i < n; i += ATTN_THREADS)
			segs_s[i] = __ldg(src + i);
		__syncthreads();
	}
	attn_loader<D, T> ld;
	ld.start(p, s0, s1, kv_s, mb_s, rows_s, segs_s);
#pragma unroll 1
	for (int i = 0; i < C::NS - 1; i++)
		ld.issue(p);
#pragma unroll 1
	for (int s = s0; s < s1; s++) {
		const attn_seg sg = attn_load_seg(p, s, segs_s, s0);
		unsigned long long *ps = prof_cta ? p.prof + 4 * s : nullptr;
		if (ps && threadIdx.x == 0)
			ps[0] = attn_gtimer();
		switch (sg.cls) {
		case ATTN_CLS_CC:
			attn_seg_cc<D, T>(p, sg, ld, mo, ml);
			break;
		case ATTN_CLS_WR2:
			if (ATTN_WGMMA && p.wg >= 3)
				attn_seg_mma<D, T, 4, true>(p, sg, ld, mo, ml, ps);
			else
				attn_seg_mma<D, T, 2>(p, sg, ld, mo, ml, ps);
			break;
		case ATTN_CLS_WR4:
			if (ATTN_WGMMA && p.wg >= 2)
				attn_seg_mma<D, T, 4, true>(p, sg, ld, mo, ml, ps);
			else
				attn_seg_mma<D, T, 4>(p, sg, ld, mo, ml, ps);
			break;
		default:
			if (ATTN_WGMMA && p.wg >= 1)
				attn_seg_mma<D, T, 8, true>(p, sg, ld, mo, ml, ps);
			else
				attn_seg_mma<D, T, 8>(p, sg, ld, mo, ml, ps);
			break;
		}
	}
	attn_cp_async_wait<0>();
	if (prof_cta && threadIdx.x == 0)
		prof_cta[1] = attn_gtimer();
	if (p.fuse)
		attn_finish<D>(p, reinterpret_cast<int *>(mo));
	if (prof_cta) {
		__syncthreads();
		if (threadIdx.x == 0)
			prof_cta[2] = attn_gtimer();
	}
}

// ---- visibility words of the masked segments (once per plan)

static __global__ void attn_bits_kernel(const attn_kparams p, const int32_t *masked)
{
	const attn_seg sg = attn_load_seg(p, masked[blockIdx.x]);
	const int n = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE * sg.ne;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		const int t = i / sg.ne, e = i - t * sg.ne;
		p.seg_bits[sg.bits_off + i] = make_uint2(attn_bits(p, sg, e, t * ATTN_TILE),
							 attn_bits(p, sg, e, t * ATTN_TILE + 32));
	}
}

int attn_bits_launch(const attn_kparams *p, const int32_t *masked_segs, int32_t n_masked,
		     cudaStream_t s, char *err)
{
	if (n_masked <= 0)
		return 0;
	attn_bits_kernel<<<n_masked, 128, 0, s>>>(*p, masked_segs);
	CUDA_CHECK_LAUNCH();
	return 0;
}

// ---- launcher

template <int D, typename T>
static int attn_part_launch_t(const attn_kparams *p, int n_cta, cudaStream_t s, char *err)
{
	using C = attn_cfg<D>;
	static bool attr_set = false;
	if (!attr_set) {
		CUDA_CHECK(cudaFuncSetAttribute(attn_part_kernel<D, T>,
						cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM_ALLOC));
		attr_set = true;
	}
	attn_part_kernel<D, T><<<n_cta, ATTN_THREADS, C::SMEM_ALLOC, s>>>(*p);
	CUDA_CHECK_LAUNCH();
	return 0;
}

int attn_part_launch(const attn_kparams *p, int head_dim, enum cuda_dtype t, int n_cta,
		     cudaStream_t s, char *err)
{
	if (n_cta <= 0)
		return 0;
	if (head_dim == 128)
		return t == CUDA_DT_BF16 ? attn_part_launch_t<128, __nv_bfloat16>(p, n_cta, s, err)
					 : attn_part_launch_t<128, __half>(p, n_cta, s, err);
	if (head_dim == 64)
		return t == CUDA_DT_BF16 ? attn_part_launch_t<64, __nv_bfloat16>(p, n_cta, s, err)
					 : attn_part_launch_t<64, __half>(p, n_cta, s, err);
	return dt_err(err, "attention: head_dim %d (expected 64 or 128)", head_dim), DT_ERR_UNSUPPORTED;
}
