// attn_plan.cu — a treeplan (src/treeplan.h) on the device: the work list of
// the fused kernel, incremental uploads, and cuda_attn_run().
//
// DESIGN
//   The plan's flat arrays go to the device as they are (runs, entries,
//   bitmask); each array keeps a host copy of what was last sent, and only
//   the changed byte span is uploaded again.  A small kernel expands the runs
//   (page, slot, len) into tok_row, one int per token: the page-table row of
//   the token (page * n_kv_heads * page_size + slot), so a group's tokens are
//   tok_row[run_pos[group_run_begin[g]] ..).
//
//   Work list of seq / deft-node / deft-flatten:
//     units    (KV head, group, query tile): a group's entries cut into tiles
//              of at most 128 / hpk entries (128 rows), near-equal; ordered
//              by KV head, then query tile index, then group;
//     cost     per token max(1, rows16 / 100) (bytes vs tensor-core work: a
//              row costs ~1/100 of a token's K+V load) plus 128 + rows/2 per
//              unit (Q load, merge, partial write: about two tiles);
//     split    (all but deft-node) the cost axis is cut into n_cta equal
//              ranges; each 64-token tile goes to the CTA whose range holds
//              its midpoint, so long groups (a long prompt, a query's whole
//              path in seq) are spread over the CTAs -- the balanced split.
//              deft-node keeps whole nodes (its load imbalance is the point);
//     pieces   consecutive tiles of one unit in one CTA, cut where full
//              visibility starts or ends; with DT_ATTN_SNAP=N (a measurement
//              knob, default 0 = off) a unit cut across CTAs keeps no end
//              piece shorter than N tokens (kernels/NOTES.md, v7);
//     merge    within a CTA, a fully visible piece that continues (in
//              tok_row) a fully visible segment of the same KV head and the
//              same queries extends it: one partial instead of one per
//              block, which is what keeps partial traffic small;
//     slots    one partial slot per (segment, entry), in segment order; the
//              reduction list of (query, KV head) is its slots in that order;
//     reduce   attn_reduce.cu runs after the kernel (the default since v12:
//              it was faster on every case).  Fused into the kernel with
//              DT_ATTN_FUSE=1 or up to PLAN_FUSE_TASKS merges per CTA (and
//              when every key has a partial): each CTA gets the
//              list of keys (query, KV head) it wrote partials of, with their
//              counts; the CTA whose count completes a key owns its merge
//              (same code and order as the separate grid, so the same bits).
//              With helpers (PLAN_HELP_TASKS, when the grid fits one CTA per SM)
//              it publishes the merge tasks in a queue that CTAs done with
//              their own segments drain, so one CTA no longer merges a whole
//              KV head's keys at the end (kernels/NOTES.md, v11).
//   tree-mask uses the plan's groups directly (attn_tree_mask.cu), one slot
//   per (entry, KV head).
#include "config.h"

extern "C" {
#include "common.h"
#include "treeplan.h"
}

#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <random>
#include <tuple>
#include <vector>

#include "attn_common.cuh"
#include "cuda_common.h"
#include "kernels.h"

#define PLAN_ROW_COST 0.01   /* tensor-core cost of one query row per token, in token loads
				(v6 sweep, kernels/NOTES.md: a 128-row tile costs little more
				than a few-row one; 0.025 overloaded the CTAs of small units) */
#define PLAN_CC_COST 2.0     /* CUDA-core path, per token (fp16 -> fp32 and FMAs on CUDA cores) */
#define PLAN_UNIT_COST 128.0 /* fixed cost of a unit, in token loads: Q load, merge and partial
				write of a segment cost about two tiles (v6 sweep) */
#define PLAN_SNAP_TOK 0       /* a unit cut across CTAs keeps no end piece shorter than this
				 (tokens; 0: off) */
#define PLAN_WG 1             /* warpgroup MMA (sm_90a builds) for segments of 65-128 rows;
				 2: also 33-64 rows, 3: all tensor-core segments, 0: mma.sync only */
#define PLAN_REBAL_ANY 0      /* 1: the rebalance picks among every segment of the busiest CTA
				 (plan_rebal_pick; v13, not yet run on a GPU: DT_ATTN_REBAL=1) */
#define PLAN_BALANCE 1.03     /* after the split, move work from the busiest CTA until it is
				 within this factor of the mean model cost (0: off; v12 H100:
				 wide256 223 -> 164 us, wide64 81 -> 69, fewshot-l2 88 -> 77) */
#define PLAN_HELP_TASKS 16    /* fused reduction: CTAs done with their own work help merge the
				 keys others complete (attn_help) when a KV head has more than
				 this many merge tasks (the last CTA of a head would take over
				 two rounds of its 8 warps); v12 H100: fewshot-l3 54 -> 47 us,
				 fewshot50 85 -> 79, but reason-l2 (10 tasks a head) 54 -> 59,
				 single 28 -> 33.  DT_ATTN_HELP=0|1 forces it */
#define PLAN_OPEN_SEGS 16    /* open segments a piece may merge into (per CTA) */
#define PLAN_FUSE_TASKS 0    /* fused reduction up to this many (key, 4 heads) merges per CTA
				(v6-v11: 3.5, the CTAs that finish last merge most keys with 8
				warps each); v12: 0, the separate grid (PDL) with the shorter
				merge beat the fused one on every case (H100: fewshot-l3 41 vs
				56 us, long32k 81 vs 121, single 28 vs 44); DT_ATTN_FUSE=1 */

// ---- device arrays with incremental upload

struct dbuf {
	void *d = nullptr;
	size_t cap = 0;
	std::vector<uint8_t> last;
};

static int dbuf_put(dbuf &b, const void *src, size_t bytes, uint64_t *sent, char *err)
{
	if (bytes > b.cap || !b.d) {
		cudaFree(b.d);
		b.d = nullptr;
		size_t cap = std::max<size_t>(bytes + bytes / 2, 256);
		CUDA_CHECK(cudaMalloc(&b.d, cap));
		b.cap = cap;
		b.last.clear();
	}
	const uint8_t *s = (const uint8_t *)src;
	const size_t n = std::min(b.last.size(), bytes);
	size_t lo = 0;
	while (lo + 4096 <= n && !memcmp(b.last.data() + lo, s + lo, 4096))
		lo += 4096;
	while (lo < n && b.last[lo] == s[lo])
		lo++;
	size_t hi = bytes;
	if (b.last.size() >= bytes) {
		while (hi > lo + 4096 && !memcmp(b.last.data() + hi - 4096, s + hi - 4096, 4096))
			hi -= 4096;
		while (hi > lo && b.last[hi - 1] == s[hi - 1])
			hi--;
	}
	if (hi > lo) {
		CUDA_CHECK(cudaMemcpy((uint8_t *)b.d + lo, s + lo, hi - lo, cudaMemcpyHostToDevice));
		*sent += hi - lo;
	}
	b.last.assign(s, s + bytes);
	return 0;
}

template <typename X> static X *dptr(const dbuf &b)
{
	return (X *)b.d;
}

/* Grows a plain device buffer (contents not kept). */
static int dgrow(void **p, size_t *cap, size_t bytes, char *err)
{
	if (bytes <= *cap && *p)
		return 0;
	cudaFree(*p);
	*p = nullptr;
	*cap = std::max<size_t>(bytes + bytes / 4, 256);
	CUDA_CHECK(cudaMalloc(p, *cap));
	return 0;
}

// ---- the object

struct cuda_attn {
	struct cuda_attn_params p;
	int hpk = 1, n_sm = 1, n_cta = 1;
	int algo = -1;
	bool have_plan = false;
	int32_t n_queries = 0, n_groups = 0, n_entries = 0, n_slots = 0, page_size = 0;
	int32_t max_group_tokens = 0, max_group_rows = 0, n_cta_used = 0;

	// host work
	std::vector<int32_t> run_pos, group_tok;
	std::vector<attn_seg> segs;
	std::vector<int32_t> cta_off, red_off, red_slot, masked, cta_key_off;
	std::vector<int4> cta_keys; /* fused reduction: {key, count, red_b, red_e} per CTA */
	int fuse_env = -1;          /* DT_ATTN_FUSE: 0 separate reduction, 1 always fused,
				       unset: fused up to PLAN_FUSE_TASKS */
	bool fuse = false;          /* this plan merges its partials in the fused kernel */
	int help_env = -1;          /* DT_ATTN_HELP: 0 never, 1 whenever possible, unset: by
				       PLAN_HELP_TASKS */
	bool help = false;          /* this plan's fused reduction has helpers (needs the whole
				       grid resident: at most one CTA per SM) */
	int32_t red_cap = 0;        /* merge tasks of a run (queue slots) */
	size_t red_ctl_off = 0, red_q_off = 0; /* in red_cnt: the queue counters and slots */
	double row_cost = PLAN_ROW_COST, unit_cost = PLAN_UNIT_COST; /* DT_ATTN_ROW_COST, DT_ATTN_UNIT_COST */
	int32_t snap_tok = PLAN_SNAP_TOK; /* DT_ATTN_SNAP */
	double balance = PLAN_BALANCE;     /* DT_ATTN_BALANCE */
	int32_t rebal_any = PLAN_REBAL_ANY; /* DT_ATTN_REBAL */
	double cls_cost[3] = { 0, 0, 0 }; /* DT_ATTN_CLS_COST=w32,w64,w128: per-token cost of the
					     <= 32 / 64 / 128-row classes (0: the row_cost rule) */
	int32_t wg = PLAN_WG;             /* DT_ATTN_WG: warpgroup MMA level (attn_kparams.wg) */
	int32_t n_bits = 0; /* uint2 visibility words of the masked segments */
	std::vector<int64_t> e_moff;

	// device arrays (incremental)
	dbuf d_run_page, d_run_slot, d_run_len, d_run_pos;
	dbuf d_entry_query, d_entry_nvis, d_entry_mask, d_mask;
	dbuf d_segs, d_cta_off, d_red_off, d_red_slot, d_masked, d_cta_keys, d_cta_key_off;
	dbuf d_group_tok, d_group_ntok, d_group_eoff, d_e_moff;

	// device scratch
	void *tok_row = nullptr, *part_o = nullptr, *part_lse = nullptr, *dmask = nullptr,
	     *scores = nullptr, *seg_bits = nullptr, *red_cnt = nullptr;
	size_t tok_row_cap = 0, part_o_cap = 0, part_lse_cap = 0, dmask_cap = 0, scores_cap = 0,
	       seg_bits_cap = 0, red_cnt_cap = 0;

	struct cuda_attn_stats st;
	unsigned long long *prof = nullptr;     /* set during cuda_attn_profile */
	unsigned long long *red_prof = nullptr; /* the separate reduction's, the same */
};

extern "C" struct cuda_attn_params cuda_attn_default_params(void)
{
	struct cuda_attn_params p;
	memset(&p, 0, sizeof(p));
	p.n_head = 1;
	p.n_kv_head = 1;
	p.head_dim = 128;
	p.type = CUDA_DT_F16;
	p.scale = 0.f;
	p.n_cta = 0;
	p.cc_max_rows = 0; /* measured slower than the tensor cores at every size (NOTES.md) */
	p.split = -1;
	p.merge = 1;
	return p;
}

extern "C" void cuda_attn_free(struct cuda_attn *a)
{
	if (!a)
		return;
	dbuf *bufs[] = { &a->d_run_page,  &a->d_run_slot,   &a->d_run_len,    &a->d_run_pos,
			 &a->d_entry_query, &a->d_entry_nvis, &a->d_entry_mask, &a->d_mask,
			 &a->d_segs,      &a->d_cta_off,    &a->d_red_off,    &a->d_red_slot,
			 &a->d_masked,      &a->d_cta_keys,   &a->d_cta_key_off,
			 &a->d_group_tok, &a->d_group_ntok, &a->d_group_eoff, &a->d_e_moff };
	for (dbuf *b : bufs)
		cudaFree(b->d);
	cudaFree(a->tok_row);
	cudaFree(a->part_o);
	cudaFree(a->part_lse);
	cudaFree(a->dmask);
	cudaFree(a->scores);
	cudaFree(a->seg_bits);
	cudaFree(a->red_cnt);
	delete a;
}

/* The parameters' checks, shared by cuda_attn_new and cuda_attn_plan_model. */
static bool attn_params_ok(const struct cuda_attn_params *p, char *err)
{
	if (p->n_kv_head < 1 || p->n_head < p->n_kv_head || p->n_head % p->n_kv_head) {
		dt_err(err, "cuda attention: %d query heads over %d KV heads (expected a multiple)",
		       p->n_head, p->n_kv_head);
		return false;
	}
	if (p->n_head / p->n_kv_head > ATTN_MAX_ROWS) {
		dt_err(err, "cuda attention: %d query heads per KV head (expected at most %d)",
		       p->n_head / p->n_kv_head, ATTN_MAX_ROWS);
		return false;
	}
	if (p->head_dim != 64 && p->head_dim != 128) {
		dt_err(err, "cuda attention: head_dim %d (expected 64 or 128)", p->head_dim);
		return false;
	}
	if (p->cc_max_rows < 0 || p->cc_max_rows > ATTN_CC_ROWS) {
		dt_err(err, "cuda attention: cc_max_rows %d (expected 0 .. %d)", p->cc_max_rows,
		       ATTN_CC_ROWS);
		return false;
	}
	return true;
}

/* A cuda_attn for n_sm SMs with the measurement knobs of the environment;
 * nothing on the device yet. */
static struct cuda_attn *attn_make(const struct cuda_attn_params *p, int n_sm)
{
	struct cuda_attn *a = new cuda_attn();
	a->p = *p;
	a->hpk = p->n_head / p->n_kv_head;
	a->n_sm = n_sm;
	a->n_cta = p->n_cta > 0 ? p->n_cta : n_sm;
	const char *fe = getenv("DT_ATTN_FUSE");
	a->fuse_env = fe && fe[0] == '0' ? 0 : fe && fe[0] == '1' ? 1 : -1;
	/* cost model overrides, for measuring it (kernels/NOTES.md) */
	const char *rc = getenv("DT_ATTN_ROW_COST"), *uc = getenv("DT_ATTN_UNIT_COST");
	if (rc && atof(rc) > 0)
		a->row_cost = atof(rc);
	if (uc && atof(uc) >= 0)
		a->unit_cost = atof(uc);
	const char *bl = getenv("DT_ATTN_BALANCE");
	if (bl && (atof(bl) == 0 || atof(bl) >= 1))
		a->balance = atof(bl);
	const char *rb = getenv("DT_ATTN_REBAL");
	if (rb && (rb[0] == '0' || rb[0] == '1') && !rb[1])
		a->rebal_any = rb[0] - '0';
	const char *cc = getenv("DT_ATTN_CLS_COST");
	if (cc && sscanf(cc, "%lf,%lf,%lf", &a->cls_cost[0], &a->cls_cost[1], &a->cls_cost[2]) != 3)
		a->cls_cost[0] = a->cls_cost[1] = a->cls_cost[2] = 0;
	const char *wg = getenv("DT_ATTN_WG");
	if (wg && wg[0] >= '0' && wg[0] <= '3' && !wg[1])
		a->wg = wg[0] - '0';
	const char *hp = getenv("DT_ATTN_HELP");
	if (hp && (hp[0] == '0' || hp[0] == '1') && !hp[1])
		a->help_env = hp[0] - '0';
	const char *sn = getenv("DT_ATTN_SNAP");
	if (sn && atoi(sn) >= 0)
		a->snap_tok = atoi(sn);
	memset(&a->st, 0, sizeof(a->st));
	return a;
}

extern "C" struct cuda_attn *cuda_attn_new(const struct cuda_attn_params *p, char *err)
{
	if (!attn_params_ok(p, err))
		return NULL;
	int dev = 0, n_sm = 0;
	if (cudaGetDevice(&dev) != cudaSuccess ||
	    cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
		cudaGetLastError();
		dt_err(err, "cuda attention: no CUDA device");
		return NULL;
	}
	return attn_make(p, n_sm);
}

extern "C" void cuda_attn_get_stats(const struct cuda_attn *a, struct cuda_attn_stats *st)
{
	*st = a->st;
}

// ---- token rows from runs

static __global__ void plan_expand_kernel(const int32_t *run_page, const int32_t *run_slot,
					  const int32_t *run_len, const int32_t *run_pos, int32_t n_runs,
					  int32_t page_rows, int32_t *tok_row)
{
	const int r = blockIdx.x * blockDim.x + threadIdx.x;
	if (r >= n_runs)
		return;
	const int32_t base = run_page[r] * page_rows + run_slot[r], pos = run_pos[r];
	for (int i = 0; i < run_len[r]; i++)
		tok_row[pos + i] = base + i;
}

// ---- work list of the fused kernel

struct plan_unit {
	int32_t g, k, e0, ne, rows, cls, min_nvis; /* k: query tile order key within the block */
	bool any_mask;
	double w, fixed;
};

static int plan_cls(int rows, int cc_max)
{
	if (rows <= cc_max)
		return ATTN_CLS_CC;
	return rows <= 32 ? ATTN_CLS_WR2 : rows <= 64 ? ATTN_CLS_WR4 : ATTN_CLS_WR8;
}

/* Cost of one token of a segment of this class and row count, in token loads. */
static double plan_tok_cost(const struct cuda_attn *a, int cls, int rows)
{
	if (cls == ATTN_CLS_CC)
		return PLAN_CC_COST;
	if (a->cls_cost[cls - ATTN_CLS_WR2] > 0)
		return a->cls_cost[cls - ATTN_CLS_WR2];
	return std::max(1.0, a->row_cost * ((rows + 15) / 16 * 16));
}

/* Fixed model cost of a unit or segment of this many rows (Q load, merge,
 * partial write), in token loads. */
static double plan_fixed_cost(const struct cuda_attn *a, int rows)
{
	return a->unit_cost + 0.5 * rows;
}

/* Model cost of a segment, in token loads. */
static double plan_seg_cost(const struct cuda_attn *a, const attn_seg &s)
{
	const int rows = s.ne * a->hpk;
	return plan_fixed_cost(a, rows) + plan_tok_cost(a, s.cls, rows) * s.n_tok;
}

/* The move of one rebalance step from the busiest CTA's segments (load lM)
 * to the idlest CTA (load lm): segment *j whole (*k = 0) or its last *k
 * tiles as a new segment.  Default (v10, measured): the last segment, at most
 * the smaller of the busiest CTA's excess and the idlest's gap to the mean.
 * rebal_any (v13, DT_ATTN_REBAL=1, not yet run on a GPU): any segment, about
 * half the two CTAs' difference, the move that leaves the lower of their two
 * loads' maximum.  False: nothing movable makes the busiest CTA lighter. */
static bool plan_rebal_pick(const struct cuda_attn *a, const std::vector<attn_seg> &segs, double lM,
			    double lm, double mean, int *j, int32_t *k)
{
	auto tiles = [&](const attn_seg &sg, double want) {
		const double w = plan_tok_cost(a, sg.cls, sg.ne * a->hpk);
		const int32_t n_t = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE;
		return (int32_t)std::min<double>(n_t - 1, std::floor((want - plan_fixed_cost(a, sg.ne * a->hpk)) /
								   (w * ATTN_TILE)));
	};
	if (!a->rebal_any) {
		const attn_seg &sg = segs.back();
		const double cs = plan_seg_cost(a, sg), want = std::min(lM - mean, mean - lm);
		const int32_t kk = tiles(sg, want);
		*j = (int)segs.size() - 1;
		*k = cs <= want || kk < 1 ? 0 : kk;
		return !(*k == 0 && cs > want && lm + cs >= lM);
	}
	double best = lM;
	*j = -1;
	for (int i = 0; i < (int)segs.size(); i++) {
		const attn_seg &sg = segs[i];
		const double cs = plan_seg_cost(a, sg), w = plan_tok_cost(a, sg.cls, sg.ne * a->hpk);
		double mx = std::max(lM - cs, lm + cs);
		if (mx < best) {
			best = mx;
			*j = i;
			*k = 0;
		}
		const int32_t kk = tiles(sg, 0.5 * (lM - lm));
		if (kk < 1)
			continue;
		const int32_t n_t = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE;
		const double tail = w * (sg.n_tok - (n_t - kk) * ATTN_TILE);
		mx = std::max(lM - tail, lm + plan_fixed_cost(a, sg.ne * a->hpk) + tail);
		if (mx < best) {
			best = mx;
			*j = i;
			*k = kk;
		}
	}
	return *j >= 0;
}

/* The split charges a unit's fixed cost to its first tile, but a piece that
 * merges into an open segment pays none and a unit cut across CTAs pays it
 * twice, so the CTAs' model costs after merging are not even (v10 profile:
 * the model's busiest CTA 1.1-1.8x its mean, the measured 1.2-1.7x, and the
 * two go together).  Moves work from the busiest CTA to the idlest
 * (plan_rebal_pick) until the busiest is within a->balance of the mean.  A
 * full segment stays full, a masked one keeps its group offset; every segment
 * has its own partial slots, so the result is as exact. */
static void plan_rebalance(struct cuda_attn *a)
{
	const int n_cta = a->n_cta;
	std::vector<std::vector<attn_seg>> per(n_cta);
	std::vector<double> load(n_cta, 0.0);
	double total = 0;
	for (int c = 0; c < n_cta; c++) {
		per[c].assign(a->segs.begin() + a->cta_off[c], a->segs.begin() + a->cta_off[c + 1]);
		for (const attn_seg &sg : per[c])
			load[c] += plan_seg_cost(a, sg);
		total += load[c];
	}
	const double mean0 = total / n_cta;
	bool moved = false;
	for (int it = 0; it < 8 * n_cta; it++) {
		int M = 0, m = 0;
		for (int c = 1; c < n_cta; c++) {
			if (load[c] > load[M])
				M = c;
			if (load[c] < load[m])
				m = c;
		}
		/* the default keeps v10's target (the mean before any split) */
		if (load[M] <= a->balance * (a->rebal_any ? total / n_cta : mean0) || per[M].empty())
			break;
		int j;
		int32_t k;
		if (!plan_rebal_pick(a, per[M], load[M], load[m], mean0, &j, &k))
			break;
		attn_seg &sg = per[M][j];
		moved = true;
		if (k == 0) { /* the whole segment */
			const double cs = plan_seg_cost(a, sg);
			per[m].push_back(sg);
			per[M].erase(per[M].begin() + j);
			load[M] -= cs;
			load[m] += cs;
			continue;
		}
		const double w = plan_tok_cost(a, sg.cls, sg.ne * a->hpk), fixed = plan_fixed_cost(a, sg.ne * a->hpk);
		const int32_t head = ((sg.n_tok + ATTN_TILE - 1) / ATTN_TILE - k) * ATTN_TILE;
		attn_seg tail = sg;
		tail.tok_off = sg.tok_off + head;
		tail.n_tok = sg.n_tok - head;
		if (sg.gtok0 >= 0)
			tail.gtok0 = sg.gtok0 + head;
		sg.n_tok = head;
		load[M] -= w * tail.n_tok;
		load[m] += fixed + w * tail.n_tok;
		total += fixed;
		per[m].push_back(tail);
	}
	if (!moved)
		return;
	a->segs.clear();
	for (int c = 0; c < n_cta; c++) {
		a->cta_off[c] = (int32_t)a->segs.size();
		a->segs.insert(a->segs.end(), per[c].begin(), per[c].end());
	}
	a->cta_off[n_cta] = (int32_t)a->segs.size();
}

/* Host check of plan_rebalance, both picks (no device): n_sets random segment
 * sets piled unevenly on the CTAs; every token keeps its (entries, KV head,
 * group offset), masked pieces start on a tile, and the busiest CTA never gets
 * heavier.  *bal_last / *bal_any: the mean busiest / mean model cost after. */
extern "C" int cuda_attn_rebalance_selftest(unsigned seed, int n_sets, double *bal_last, double *bal_any,
					    char *err)
{
	std::mt19937 rng(seed);
	auto busiest = [](const cuda_attn &a) {
		double mx = 0, tot = 0;
		for (int c = 0; c < a.n_cta; c++) {
			double l = 0;
			for (int32_t i = a.cta_off[c]; i < a.cta_off[c + 1]; i++)
				l += plan_seg_cost(&a, a.segs[i]);
			mx = std::max(mx, l);
			tot += l;
		}
		return tot > 0 ? mx / (tot / a.n_cta) : 1.0;
	};
	auto cover = [](const cuda_attn &a) { /* (token, entries, head, group offset) of every token */
		std::vector<std::tuple<int, int, int, int, int>> m;
		for (const attn_seg &sg : a.segs)
			for (int k = 0; k < sg.n_tok; k++)
				m.emplace_back(sg.tok_off + k, sg.entry0, sg.ne, sg.kvh, sg.gtok0 < 0 ? -1 : sg.gtok0 + k);
		std::sort(m.begin(), m.end());
		return m;
	};
	double sum[2] = { 0, 0 };
	for (int t = 0; t < n_sets; t++) {
		cuda_attn base;
		base.hpk = 1 + (int)(rng() % 8);
		base.n_cta = 4 + (int)(rng() % 132);
		base.balance = 1.03;
		std::vector<std::vector<attn_seg>> per(base.n_cta);
		const int nseg = 1 + (int)(rng() % 600);
		for (int s = 0; s < nseg; s++) {
			attn_seg sg;
			memset(&sg, 0, sizeof(sg));
			sg.tok_off = (int32_t)(rng() % 100000);
			sg.n_tok = 1 + (int32_t)(rng() % (rng() % 2 ? 64 : 2000));
			sg.ne = 1 + (int32_t)(rng() % (ATTN_MAX_ROWS / base.hpk));
			sg.entry0 = (int32_t)(rng() % 1000);
			sg.kvh = (int32_t)(rng() % 8);
			sg.gtok0 = rng() % 3 ? -1 : ATTN_TILE * (int32_t)(rng() % 10);
			const int rows = sg.ne * base.hpk;
			sg.cls = rows <= 32 ? ATTN_CLS_WR2 : rows <= 64 ? ATTN_CLS_WR4 : ATTN_CLS_WR8;
			const int few = std::max(1, base.n_cta / 8); /* a quarter of them on a few CTAs */
			per[rng() % (rng() % 4 ? base.n_cta : few)].push_back(sg);
		}
		base.cta_off.assign(base.n_cta + 1, 0);
		for (int c = 0; c < base.n_cta; c++) {
			base.cta_off[c] = (int32_t)base.segs.size();
			base.segs.insert(base.segs.end(), per[c].begin(), per[c].end());
		}
		base.cta_off[base.n_cta] = (int32_t)base.segs.size();
		const double b0 = busiest(base);
		const auto c0 = cover(base);
		for (int any = 0; any < 2; any++) {
			cuda_attn a;
			a.hpk = base.hpk;
			a.n_cta = base.n_cta;
			a.balance = base.balance;
			a.rebal_any = any;
			a.segs = base.segs;
			a.cta_off = base.cta_off;
			plan_rebalance(&a);
			if (cover(a) != c0)
				return dt_err(err, "rebalance (set %d, pick %d): tokens changed their rows", t, any),
				       DT_ERR_ARG;
			for (const attn_seg &sg : a.segs)
				if (sg.n_tok < 1 || (sg.gtok0 >= 0 && sg.gtok0 % ATTN_TILE))
					return dt_err(err, "rebalance (set %d, pick %d): a piece of %d tokens at group "
							   "offset %d", t, any, sg.n_tok, sg.gtok0),
					       DT_ERR_ARG;
			const double b1 = busiest(a);
			if (b1 > b0 * (1 + 1e-9))
				return dt_err(err, "rebalance (set %d, pick %d): busiest CTA %.3f -> %.3f of the mean",
					      t, any, b0, b1),
				       DT_ERR_ARG;
			sum[any] += b1;
		}
	}
	*bal_last = sum[0] / n_sets;
	*bal_any = sum[1] / n_sets;
	return 0;
}

static void plan_segments(struct cuda_attn *a, const struct treeplan_flat *f, bool split, bool merge)
{
	const int hpk = a->hpk, hkv = a->p.n_kv_head, n_cta = a->n_cta;
	const int max_e = ATTN_MAX_ROWS / hpk;
	std::vector<plan_unit> units;
	double unit_cost = 0;
	int32_t ptile = 0; /* the plan's query tile index of group g within its block */
	for (int32_t g = 0; g < f->n_groups; g++) {
		const int32_t eb = f->group_entry_off[g], ne_g = f->group_entry_off[g + 1] - eb;
		const int n_tiles = (ne_g + max_e - 1) / max_e;
		ptile = g > 0 && f->group_run_begin[g] == f->group_run_begin[g - 1] &&
				f->group_n_tokens[g] == f->group_n_tokens[g - 1]
			? ptile + 1
			: 0;
		for (int k = 0; k < n_tiles; k++) {
			plan_unit u;
			u.g = g;
			u.k = ptile * 64 + k; /* sort key: plan tile, then our row tile */
			u.e0 = eb + (int32_t)(((int64_t)ne_g * k) / n_tiles);
			const int32_t e1 = eb + (int32_t)(((int64_t)ne_g * (k + 1)) / n_tiles);
			u.ne = e1 - u.e0;
			u.rows = u.ne * hpk;
			u.cls = plan_cls(u.rows, a->p.cc_max_rows);
			u.w = plan_tok_cost(a, u.cls, u.rows);
			u.fixed = plan_fixed_cost(a, u.rows);
			u.any_mask = false;
			u.min_nvis = INT32_MAX;
			for (int32_t e = u.e0; e < e1; e++) {
				u.any_mask |= f->entry_mask[e] >= 0;
				u.min_nvis = std::min(u.min_nvis, f->entry_nvis[e]);
			}
			unit_cost += u.fixed + u.w * f->group_n_tokens[g];
			units.push_back(u);
		}
	}
	/* query tile k of every group first, then tile k+1: a CTA's range then
	 * holds one query tile over many blocks (one partial per row, merged),
	 * and the CTAs of tiles 0, 1, .. read the same blocks at the same time,
	 * so the repeated reads of a block's KV come from L2 */
	std::stable_sort(units.begin(), units.end(),
			 [](const plan_unit &x, const plan_unit &y) { return x.k < y.k; });
	a->st.n_units = (int32_t)units.size() * hkv;
	const double total = unit_cost * hkv;
	const double target = std::max(total / n_cta, 1e-9);

	a->segs.clear();
	a->cta_off.assign(n_cta + 1, 0);
	int cur_cta = 0;
	std::vector<int> open; /* indices into segs of this CTA's mergeable segments */
	double cum = 0;
	auto cta_of = [&](double mid) {
		int c = (int)(mid / target);
		return std::min(std::max(c, cur_cta), n_cta - 1);
	};
	auto same_queries = [&](int32_t ea, int32_t eb, int32_t ne) {
		if (ea == eb)
			return true;
		for (int32_t i = 0; i < ne; i++)
			if (f->entry_query[ea + i] != f->entry_query[eb + i])
				return false;
		return true;
	};
	auto add_piece = [&](int cta, int kvh, const plan_unit &u, int32_t t0, int32_t t1, bool full) {
		if (cta > cur_cta) {
			for (int c = cur_cta + 1; c <= cta; c++)
				a->cta_off[c] = (int32_t)a->segs.size();
			cur_cta = cta;
			open.clear();
		}
		const int32_t tok_off = a->group_tok[u.g] + t0;
		if (full && merge) {
			for (int i = (int)open.size() - 1; i >= 0; i--) {
				attn_seg &s = a->segs[open[i]];
				if (s.kvh == kvh && s.ne == u.ne && s.tok_off + s.n_tok == tok_off &&
				    same_queries(s.entry0, u.e0, u.ne)) {
					s.n_tok += t1 - t0;
					return;
				}
			}
		}
		attn_seg s;
		s.tok_off = tok_off;
		s.n_tok = t1 - t0;
		s.entry0 = u.e0;
		s.ne = u.ne;
		s.kvh = kvh;
		s.gtok0 = full ? -1 : t0;
		s.slot0 = 0;
		s.cls = u.cls;
		s.bits_off = -1;
		s.pad[0] = s.pad[1] = s.pad[2] = 0;
		a->segs.push_back(s);
		if (full) {
			open.push_back((int)a->segs.size() - 1);
			if (open.size() > PLAN_OPEN_SEGS)
				open.erase(open.begin());
		}
	};

	struct piece {
		int cta;
		int32_t t0, t1;
		bool full;
	};
	std::vector<piece> pcs;
	for (int kvh = 0; kvh < hkv; kvh++) {
		for (const plan_unit &u : units) {
			const int32_t n = f->group_n_tokens[u.g];
			if (!split) {
				const double c = u.fixed + u.w * n;
				add_piece(cta_of(cum + 0.5 * c), kvh, u, 0, n, !u.any_mask && u.min_nvis >= n);
				cum += c;
				continue;
			}
			/* the unit's pieces: runs of tiles with the same CTA and visibility */
			pcs.clear();
			for (int32_t t0 = 0; t0 < n; t0 += ATTN_TILE) {
				const int32_t t1 = std::min(n, t0 + ATTN_TILE);
				const double c = u.w * (t1 - t0) + (t0 == 0 ? u.fixed : 0.0);
				const int cta = std::max(cta_of(cum + 0.5 * c), pcs.empty() ? 0 : pcs.back().cta);
				const bool full = !u.any_mask && t1 <= u.min_nvis;
				if (!pcs.empty() && pcs.back().cta == cta && pcs.back().full == full)
					pcs.back().t1 = t1;
				else
					pcs.push_back({ cta, t0, t1, full });
				cum += c;
			}
			/* snap: a unit cut across CTAs leaves no end piece of fewer than
			 * snap_tok tokens; that piece joins its neighbour's CTA (its Q load,
			 * merge and partial rows would cost more than its tokens) */
			if (a->snap_tok > 0 && pcs.size() > 1) {
				auto toks = [&](int c, size_t i0) {
					int32_t t = 0;
					for (size_t i = i0; i < pcs.size() && pcs[i].cta == c; i++)
						t += pcs[i].t1 - pcs[i].t0;
					return t;
				};
				const int c_first = pcs.front().cta, c_last = pcs.back().cta;
				if (c_first != c_last && toks(c_first, 0) < a->snap_tok) {
					size_t i = 0;
					int c_next = c_first;
					while (i < pcs.size() && pcs[i].cta == c_first)
						i++;
					c_next = pcs[i].cta;
					for (size_t j = 0; j < i; j++)
						pcs[j].cta = c_next;
				}
				const int c_first2 = pcs.front().cta;
				size_t lb = pcs.size();
				while (lb > 0 && pcs[lb - 1].cta == c_last)
					lb--;
				if (lb > 0 && c_first2 != c_last && toks(c_last, lb) < a->snap_tok)
					for (size_t j = lb; j < pcs.size(); j++)
						pcs[j].cta = pcs[lb - 1].cta;
			}
			for (size_t i = 0; i < pcs.size(); i++) {
				if (i + 1 < pcs.size() && pcs[i + 1].cta == pcs[i].cta && pcs[i + 1].full == pcs[i].full) {
					pcs[i + 1].t0 = pcs[i].t0;
					continue;
				}
				add_piece(pcs[i].cta, kvh, u, pcs[i].t0, pcs[i].t1, pcs[i].full);
			}
		}
	}
	for (int c = cur_cta + 1; c <= n_cta; c++)
		a->cta_off[c] = (int32_t)a->segs.size();
	if (split && a->balance > 0)
		plan_rebalance(a);

	// slots, reduction lists, statistics
	int32_t slot = 0;
	a->masked.clear();
	a->n_bits = 0;
	std::vector<double> cta_cost(n_cta, 0.0);
	a->st.n_cc_segments = 0;
	a->st.kv_bytes = 0;
	a->n_cta_used = 0;
	for (int c = 0; c < n_cta; c++) {
		for (int32_t i = a->cta_off[c]; i < a->cta_off[c + 1]; i++) {
			attn_seg &s = a->segs[i];
			s.slot0 = slot;
			slot += s.ne;
			if (s.gtok0 >= 0) {
				s.bits_off = a->n_bits;
				a->n_bits += (s.n_tok + ATTN_TILE - 1) / ATTN_TILE * s.ne;
				a->masked.push_back(i);
			}
			cta_cost[c] += plan_seg_cost(a, s);
			a->st.n_cc_segments += s.cls == ATTN_CLS_CC;
			a->st.kv_bytes += (uint64_t)s.n_tok * a->p.head_dim * 2 * 2;
		}
		if (a->cta_off[c + 1] > a->cta_off[c])
			a->n_cta_used = c + 1;
	}
	a->n_slots = slot;
	const int nkey = f->n_queries * hkv;
	a->red_off.assign(nkey + 1, 0);
	auto sees = [&](const attn_seg &s, int i) {
		return s.gtok0 < 0 || f->entry_nvis[s.entry0 + i] > s.gtok0;
	};
	for (const attn_seg &s : a->segs)
		for (int i = 0; i < s.ne; i++)
			if (sees(s, i))
				a->red_off[f->entry_query[s.entry0 + i] * hkv + s.kvh + 1]++;
	for (int k = 0; k < nkey; k++)
		a->red_off[k + 1] += a->red_off[k];
	a->red_slot.assign(a->red_off[nkey], 0);
	std::vector<int32_t> cur(a->red_off.begin(), a->red_off.end() - 1);
	for (const attn_seg &s : a->segs)
		for (int i = 0; i < s.ne; i++)
			if (sees(s, i))
				a->red_slot[cur[f->entry_query[s.entry0 + i] * hkv + s.kvh]++] = s.slot0 + i;

	// fused reduction: per CTA, the keys it contributes to and how many
	// partials; possible when every key has at least one partial (else the
	// separate reduction writes the zeros of the empty keys)
	const int64_t n_red_tasks = (int64_t)nkey * ((hpk + ATTN_RED_HEADS - 1) / ATTN_RED_HEADS);
	a->fuse = a->fuse_env != 0 && a->n_cta_used > 0 &&
		  (a->fuse_env == 1 || n_red_tasks <= PLAN_FUSE_TASKS * a->n_cta_used);
	for (int k = 0; k < nkey && a->fuse; k++)
		a->fuse = a->red_off[k + 1] > a->red_off[k];
	a->help = a->fuse && a->help_env != 0 && a->n_cta_used <= a->n_sm &&
		  (a->help_env == 1 || n_red_tasks > (int64_t)PLAN_HELP_TASKS * hkv);
	a->red_cap = a->fuse ? (int32_t)n_red_tasks : 0;
	a->cta_keys.clear();
	a->cta_key_off.assign(n_cta + 1, 0);
	if (a->fuse) {
		std::vector<int32_t> seen(nkey, -1), at(nkey, 0);
		for (int c = 0; c < n_cta; c++) {
			for (int32_t si = a->cta_off[c]; si < a->cta_off[c + 1]; si++) {
				const attn_seg &s = a->segs[si];
				for (int i = 0; i < s.ne; i++) {
					if (!sees(s, i))
						continue;
					const int key = f->entry_query[s.entry0 + i] * hkv + s.kvh;
					if (seen[key] != c) {
						seen[key] = c;
						at[key] = (int32_t)a->cta_keys.size();
						a->cta_keys.push_back(make_int4(key, 0, a->red_off[key], a->red_off[key + 1]));
					}
					a->cta_keys[at[key]].y++;
				}
			}
			a->cta_key_off[c + 1] = (int32_t)a->cta_keys.size();
		}
	}

	a->st.n_segments = (int32_t)a->segs.size();
	a->st.n_slots = a->n_slots;
	a->st.n_cta_used = a->n_cta_used;
	double mx = 0, sum = 0;
	for (double c : cta_cost) {
		mx = std::max(mx, c);
		sum += c;
	}
	a->st.cost_max = mx;
	a->st.cost_mean = sum / n_cta;
	a->st.partial_bytes = (uint64_t)a->n_slots * hpk * (a->p.head_dim + 1) * 4 * 2;
	a->st.scratch_bytes = 0;
}

/* The fused reduction's buffer (red_cnt): one counter per key, then (with
 * helpers) the queue counters (ATTN_Q_CTL_WORDS) and red_cap slots; sets
 * red_ctl_off and red_q_off, returns its size in bytes. */
static size_t plan_red_layout(struct cuda_attn *a, int32_t n_queries)
{
	a->red_ctl_off = ((size_t)n_queries * a->p.n_kv_head * 4 + 511) / 512 * 512;
	a->red_q_off = a->red_ctl_off + ATTN_Q_CTL_WORDS * 4;
	return a->red_q_off + (a->help ? (size_t)a->red_cap * 8 : 0) + 16;
}

static void plan_tree_mask(struct cuda_attn *a, const struct treeplan_flat *f)
{
	const int hkv = a->p.n_kv_head, hpk = a->hpk;
	a->e_moff.assign(f->n_entries + 1, 0);
	a->max_group_rows = 0;
	for (int32_t g = 0; g < f->n_groups; g++) {
		a->max_group_rows = std::max(a->max_group_rows,
					     (f->group_entry_off[g + 1] - f->group_entry_off[g]) * hpk);
		for (int32_t e = f->group_entry_off[g]; e < f->group_entry_off[g + 1]; e++)
			a->e_moff[e + 1] = a->e_moff[e] + f->group_n_tokens[g];
	}
	const int nkey = f->n_queries * hkv;
	a->red_off.assign(nkey + 1, 0);
	a->red_slot.clear();
	for (int32_t q = 0; q < f->n_queries; q++)
		for (int kvh = 0; kvh < hkv; kvh++) {
			for (int32_t i = f->red_off[q]; i < f->red_off[q + 1]; i++)
				a->red_slot.push_back(f->red_entry[i] * hkv + kvh);
			a->red_off[q * hkv + kvh + 1] = (int32_t)a->red_slot.size();
		}
	a->n_slots = f->n_entries * hkv;
	a->fuse = false;
	a->segs.clear();
	a->st.n_units = f->n_groups * hkv;
	a->st.n_segments = 0;
	a->st.n_slots = a->n_slots;
	a->st.n_cta_used = 0;
	a->st.n_cc_segments = 0;
	a->st.cost_max = a->st.cost_mean = 0;
	uint64_t kv = 0;
	for (int32_t g = 0; g < f->n_groups; g++)
		kv += (uint64_t)f->group_n_tokens[g] * hkv * a->p.head_dim * 2 * 2;
	a->st.kv_bytes = kv;
	a->st.partial_bytes = (uint64_t)a->n_slots * hpk * (a->p.head_dim + 1) * 4 * 2;
	const uint64_t cells = (uint64_t)a->e_moff[f->n_entries];
	a->st.scratch_bytes = cells * 2 + cells * a->p.n_head * 2 * 4;
}

/* The plan's sizes and each run's and group's first token row, on the host. */
static void plan_host_take(struct cuda_attn *a, const struct treeplan_flat *f, int algo)
{
	a->algo = algo;
	a->n_queries = f->n_queries;
	a->n_groups = f->n_groups;
	a->n_entries = f->n_entries;
	a->page_size = f->page_size;
	a->max_group_tokens = f->max_group_tokens;
	a->run_pos.assign(f->n_runs + 1, 0);
	for (int32_t r = 0; r < f->n_runs; r++)
		a->run_pos[r + 1] = a->run_pos[r] + f->run_len[r];
	a->group_tok.resize(f->n_groups);
	for (int32_t g = 0; g < f->n_groups; g++)
		a->group_tok[g] = a->run_pos[f->group_run_begin[g]];
}

/* The work list of plan f for algorithm algo (seq, deft-node or deft-flatten)
 * on n_sm SMs, built on the host only (no device): its statistics, the
 * model's balance among them (bench attn --plan-only). */
extern "C" int cuda_attn_plan_model(const struct cuda_attn_params *p, int n_sm, const struct treeplan_flat *f,
				    int algo, struct cuda_attn_stats *st, char *err)
{
	if (!attn_params_ok(p, err))
		return DT_ERR_ARG;
	if (algo < 0 || algo >= TREEPLAN_N_ALGO || algo == TREEPLAN_TREE_MASK || n_sm < 1)
		return dt_err(err, "cuda attention model: algorithm %d on %d SMs (expected seq, deft-node or "
				   "deft-flatten on >= 1)", algo, n_sm),
		       DT_ERR_ARG;
	struct cuda_attn *a = attn_make(p, n_sm);
	plan_host_take(a, f, algo);
	const bool split = a->p.split < 0 ? algo != TREEPLAN_DEFT_NODE : a->p.split != 0;
	plan_segments(a, f, split, a->p.merge != 0);
	*st = a->st;
	delete a;
	return 0;
}

extern "C" int cuda_attn_set_plan(struct cuda_attn *a, const struct treeplan_flat *f, int algo,
				  char *err)
{
	const double t0 = dt_now_s();
	if (algo < 0 || algo >= TREEPLAN_N_ALGO)
		return dt_err(err, "cuda attention: algorithm %d (expected 0 .. %d)", algo,
			      TREEPLAN_N_ALGO - 1),
		       DT_ERR_ARG;
	uint64_t sent = 0;
	plan_host_take(a, f, algo);

	// runs -> token rows
	const size_t nr = (size_t)f->n_runs * 4;
	int rc = 0;
	rc = rc ? rc : dbuf_put(a->d_run_page, f->run_page, nr, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_run_slot, f->run_slot, nr, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_run_len, f->run_len, nr, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_run_pos, a->run_pos.data(), nr, &sent, err);
	rc = rc ? rc : dgrow(&a->tok_row, &a->tok_row_cap, (size_t)a->run_pos[f->n_runs] * 4 + 4, err);
	if (rc)
		return rc;
	if (f->n_runs > 0) {
		plan_expand_kernel<<<(f->n_runs + 127) / 128, 128>>>(
			dptr<int32_t>(a->d_run_page), dptr<int32_t>(a->d_run_slot),
			dptr<int32_t>(a->d_run_len), dptr<int32_t>(a->d_run_pos), f->n_runs,
			a->p.n_kv_head * f->page_size, (int32_t *)a->tok_row);
		CUDA_CHECK_LAUNCH();
	}

	// entries and bitmask
	const size_t ne = (size_t)f->n_entries * 4;
	rc = rc ? rc : dbuf_put(a->d_entry_query, f->entry_query, ne, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_entry_nvis, f->entry_nvis, ne, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_entry_mask, f->entry_mask, ne, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_mask, f->mask, (size_t)f->n_mask_words * 4, &sent, err);
	if (rc)
		return rc;

	if (algo == TREEPLAN_TREE_MASK) {
		plan_tree_mask(a, f);
		rc = rc ? rc : dbuf_put(a->d_group_tok, a->group_tok.data(), (size_t)f->n_groups * 4, &sent, err);
		rc = rc ? rc : dbuf_put(a->d_group_ntok, f->group_n_tokens, (size_t)f->n_groups * 4, &sent, err);
		rc = rc ? rc : dbuf_put(a->d_group_eoff, f->group_entry_off, (size_t)(f->n_groups + 1) * 4, &sent, err);
		rc = rc ? rc : dbuf_put(a->d_e_moff, a->e_moff.data(), a->e_moff.size() * 8, &sent, err);
		const size_t cells = (size_t)a->e_moff[f->n_entries];
		rc = rc ? rc : dgrow(&a->dmask, &a->dmask_cap, cells * 2 + 16, err);
		rc = rc ? rc : dgrow(&a->scores, &a->scores_cap, cells * a->p.n_head * 2 + 16, err);
		if (rc)
			return rc;
	} else {
		const bool split = a->p.split < 0 ? algo != TREEPLAN_DEFT_NODE : a->p.split != 0;
		plan_segments(a, f, split, a->p.merge != 0);
		rc = rc ? rc : dbuf_put(a->d_segs, a->segs.data(), a->segs.size() * sizeof(attn_seg), &sent, err);
		rc = rc ? rc : dbuf_put(a->d_cta_off, a->cta_off.data(), a->cta_off.size() * 4, &sent, err);
		rc = rc ? rc : dbuf_put(a->d_masked, a->masked.data(), a->masked.size() * 4, &sent, err);
		rc = rc ? rc : dgrow(&a->seg_bits, &a->seg_bits_cap, (size_t)a->n_bits * 8 + 16, err);
		if (rc)
			return rc;
		if (a->fuse) {
			rc = rc ? rc : dbuf_put(a->d_cta_keys, a->cta_keys.data(), a->cta_keys.size() * sizeof(int4),
						&sent, err);
			rc = rc ? rc : dbuf_put(a->d_cta_key_off, a->cta_key_off.data(), a->cta_key_off.size() * 4,
						&sent, err);
			/* one buffer: the per-key counters, then the helpers' queue
			 * counters and slots (plan_red_layout); they are 0 (or of an
			 * older generation) after every complete run; zero them here
			 * too, so that a run that failed half-way cannot leave one behind */
			const size_t bytes = plan_red_layout(a, f->n_queries);
			rc = rc ? rc : dgrow(&a->red_cnt, &a->red_cnt_cap, bytes, err);
			if (rc)
				return rc;
			CUDA_CHECK(cudaMemsetAsync(a->red_cnt, 0, bytes, 0));
		}
		attn_kparams bp;
		memset(&bp, 0, sizeof(bp));
		bp.segs = dptr<attn_seg>(a->d_segs);
		bp.entry_query = dptr<int32_t>(a->d_entry_query);
		bp.entry_nvis = dptr<int32_t>(a->d_entry_nvis);
		bp.entry_mask = dptr<int32_t>(a->d_entry_mask);
		bp.mask = dptr<uint32_t>(a->d_mask);
		bp.seg_bits = (uint2 *)a->seg_bits;
		rc = attn_bits_launch(&bp, dptr<int32_t>(a->d_masked), (int32_t)a->masked.size(), 0, err);
	}
	rc = rc ? rc : dbuf_put(a->d_red_off, a->red_off.data(), a->red_off.size() * 4, &sent, err);
	rc = rc ? rc : dbuf_put(a->d_red_slot, a->red_slot.data(), a->red_slot.size() * 4, &sent, err);
	const size_t rows = (size_t)a->n_slots * a->hpk;
	rc = rc ? rc : dgrow(&a->part_o, &a->part_o_cap, rows * a->p.head_dim * 4 + 16, err);
	rc = rc ? rc : dgrow(&a->part_lse, &a->part_lse_cap, rows * 4 + 16, err);
	if (rc)
		return rc;
	if (algo == TREEPLAN_TREE_MASK && f->n_entries > 0) {
		attn_tmparams tp;
		memset(&tp, 0, sizeof(tp));
		tp.entry_nvis = dptr<int32_t>(a->d_entry_nvis);
		tp.entry_mask = dptr<int32_t>(a->d_entry_mask);
		tp.mask = dptr<uint32_t>(a->d_mask);
		tp.entry_moff = dptr<int64_t>(a->d_e_moff);
		tp.dmask = a->dmask;
		tp.n_entries = f->n_entries;
		rc = attn_tm_build_mask(&tp, a->p.type, 0, err);
		if (rc)
			return rc;
	}
	a->have_plan = true;
	a->st.upload_bytes = sent;
	a->st.upload_total += sent;
	a->st.build_s = dt_now_s() - t0;
	return 0;
}

// ---- one layer

extern "C" int cuda_attn_run(struct cuda_attn *a, const struct cuda_kv *kv, int32_t layer,
			     int32_t copy, const void *q, float *out, char *err)
{
	const struct cuda_kv_params *kp = cuda_kv_params(kv);
	if (!a->have_plan)
		return dt_err(err, "cuda attention: no plan"), DT_ERR_ARG;
	if (kp->n_kv_heads != a->p.n_kv_head || kp->head_dim != a->p.head_dim ||
	    kp->type != a->p.type || kp->page_size != a->page_size)
		return dt_err(err, "cuda attention: KV mirror (kv heads %d, head dim %d, %s, page %d) "
				   "does not match (expected %d, %d, %s, %d)",
			      kp->n_kv_heads, kp->head_dim, cuda_dtype_name(kp->type), kp->page_size,
			      a->p.n_kv_head, a->p.head_dim, cuda_dtype_name(a->p.type), a->page_size),
		       DT_ERR_ARG;
	if (layer < 0 || layer >= kp->n_layer || copy < 0 || copy >= kp->n_copies)
		return dt_err(err, "cuda attention: layer %d / copy %d out of range", layer, copy),
		       DT_ERR_ARG;
	if (a->n_queries == 0)
		return 0;
	const float scale = a->p.scale > 0.f ? a->p.scale : 1.0f / sqrtf((float)a->p.head_dim);
	int rc;
	if (a->algo == TREEPLAN_TREE_MASK) {
		attn_tmparams tp;
		memset(&tp, 0, sizeof(tp));
		tp.k = cuda_kv_k_ptr(kv, copy, layer);
		tp.v = cuda_kv_v_ptr(kv, copy, layer);
		tp.tok_row = (const int32_t *)a->tok_row;
		tp.q = q;
		tp.group_tok = dptr<int32_t>(a->d_group_tok);
		tp.group_ntok = dptr<int32_t>(a->d_group_ntok);
		tp.group_eoff = dptr<int32_t>(a->d_group_eoff);
		tp.entry_query = dptr<int32_t>(a->d_entry_query);
		tp.entry_nvis = dptr<int32_t>(a->d_entry_nvis);
		tp.entry_mask = dptr<int32_t>(a->d_entry_mask);
		tp.mask = dptr<uint32_t>(a->d_mask);
		tp.entry_moff = dptr<int64_t>(a->d_e_moff);
		tp.dmask = a->dmask;
		tp.scores = a->scores;
		tp.part_o = (float *)a->part_o;
		tp.part_lse = (float *)a->part_lse;
		tp.n_groups = a->n_groups;
		tp.n_entries = a->n_entries;
		tp.max_group_tokens = a->max_group_tokens;
		tp.max_group_rows = a->max_group_rows;
		tp.n_head = a->p.n_head;
		tp.n_kv_head = a->p.n_kv_head;
		tp.hpk = a->hpk;
		tp.page_size = a->page_size;
		tp.scale = scale;
		rc = attn_tm_launch(&tp, a->p.head_dim, a->p.type, 0, err);
	} else {
		attn_kparams kp2;
		memset(&kp2, 0, sizeof(kp2));
		kp2.k = cuda_kv_k_ptr(kv, copy, layer);
		kp2.v = cuda_kv_v_ptr(kv, copy, layer);
		kp2.tok_row = (const int32_t *)a->tok_row;
		kp2.q = q;
		kp2.segs = dptr<attn_seg>(a->d_segs);
		kp2.cta_off = dptr<int32_t>(a->d_cta_off);
		kp2.entry_query = dptr<int32_t>(a->d_entry_query);
		kp2.entry_nvis = dptr<int32_t>(a->d_entry_nvis);
		kp2.entry_mask = dptr<int32_t>(a->d_entry_mask);
		kp2.mask = dptr<uint32_t>(a->d_mask);
		kp2.seg_bits = (uint2 *)a->seg_bits;
		kp2.part_o = (float *)a->part_o;
		kp2.part_lse = (float *)a->part_lse;
		kp2.n_head = a->p.n_head;
		kp2.hpk = a->hpk;
		kp2.page_size = a->page_size;
		kp2.scale_log2 = scale * 1.4426950408889634f;
		kp2.n_kv_head = a->p.n_kv_head;
		kp2.fuse = a->fuse ? 1 : 0;
		kp2.wg = a->wg;
		kp2.prof = a->prof;
		if (a->fuse) {
			kp2.cta_keys = dptr<int4>(a->d_cta_keys);
			kp2.cta_key_off = dptr<int32_t>(a->d_cta_key_off);
			kp2.red_cnt = (int32_t *)a->red_cnt;
			if (a->help) {
				kp2.red_ctl = (uint32_t *)((char *)a->red_cnt + a->red_ctl_off);
				kp2.red_q = (unsigned long long *)((char *)a->red_cnt + a->red_q_off);
				kp2.red_cap = a->red_cap;
			}
			kp2.red_slot = dptr<int32_t>(a->d_red_slot);
			kp2.out = out;
		}
		rc = attn_part_launch(&kp2, a->p.head_dim, a->p.type, a->n_cta_used, 0, err);
		if (!rc && a->fuse)
			return 0; /* the fused kernel merged the partials itself */
	}
	if (rc)
		return rc;
	attn_rparams rp;
	rp.part_o = (const float *)a->part_o;
	rp.part_lse = (const float *)a->part_lse;
	rp.red_off = dptr<int32_t>(a->d_red_off);
	rp.red_slot = dptr<int32_t>(a->d_red_slot);
	rp.out = out;
	rp.n_queries = a->n_queries;
	rp.n_head = a->p.n_head;
	rp.n_kv_head = a->p.n_kv_head;
	rp.hpk = a->hpk;
	rp.prof = a->red_prof;
	return attn_reduce_launch(&rp, a->p.head_dim, 0, err);
}

// ---- profile: where the fused kernel's time goes

/* Keeps the GPU busy while the host enqueues the profiled step, so the events
 * around it time the GPU, not the host's launch (as cuda_bench_time does). */
static __global__ void prof_spin(unsigned long long ns)
{
	const unsigned long long t0 = attn_gtimer();
	while (attn_gtimer() - t0 < ns) {
	}
}

extern "C" int cuda_attn_profile(struct cuda_attn *a, const struct cuda_kv *kv, int32_t layer,
				 int32_t copy, const void *q, float *out, struct cuda_attn_prof *pr,
				 char *err)
{
	memset(pr, 0, sizeof(*pr));
	if (!a->have_plan || a->algo == TREEPLAN_TREE_MASK)
		return dt_err(err, "cuda attention profile: needs a plan of seq, deft-node or deft-flatten"),
		       DT_ERR_ARG;
	const int n_cta = a->n_cta_used;
	const size_t n_seg = a->segs.size(), n = 4 * n_seg + 3 * (size_t)n_cta;
	if (n_cta == 0)
		return 0;
	/* the separate reduction's blocks (attn_reduce.cu: 8 warps, one (query, head) each) */
	const size_t n_red = a->fuse ? 0 : 3 * (((size_t)a->n_queries * a->p.n_head + 7) / 8);
	CUDA_CHECK(cudaDeviceSynchronize());
	CUDA_CHECK(cudaMalloc(&a->prof, (n + n_red) * sizeof(unsigned long long)));
	cudaEvent_t ev[2] = { nullptr, nullptr };
	if (cudaMemset(a->prof, 0, (n + n_red) * sizeof(unsigned long long)) != cudaSuccess ||
	    cudaEventCreate(&ev[0]) != cudaSuccess || cudaEventCreate(&ev[1]) != cudaSuccess) {
		cudaFree(a->prof);
		a->prof = nullptr;
		for (cudaEvent_t e : ev)
			if (e)
				cudaEventDestroy(e);
		return dt_err(err, "cuda attention profile: %s", cudaGetErrorString(cudaGetLastError())),
		       DT_ERR_DEVICE;
	}
	a->red_prof = n_red ? a->prof + n : nullptr;
	prof_spin<<<1, 1>>>(500000ull);
	cudaEventRecord(ev[0], 0);
	int rc = cuda_attn_run(a, kv, layer, copy, q, out, err);
	cudaEventRecord(ev[1], 0);
	std::vector<unsigned long long> t(n + n_red);
	float step_ms = 0;
	if (!rc && (cudaDeviceSynchronize() != cudaSuccess ||
		    cudaMemcpy(t.data(), a->prof, (n + n_red) * sizeof(unsigned long long),
			       cudaMemcpyDeviceToHost) != cudaSuccess ||
		    cudaEventElapsedTime(&step_ms, ev[0], ev[1]) != cudaSuccess)) {
		dt_err(err, "cuda attention profile: %s", cudaGetErrorString(cudaGetLastError()));
		rc = DT_ERR_DEVICE;
	}
	cudaFree(a->prof);
	a->prof = nullptr;
	a->red_prof = nullptr;
	cudaEventDestroy(ev[0]);
	cudaEventDestroy(ev[1]);
	if (rc)
		return rc;
	pr->step_us = step_ms * 1e3;
	const unsigned long long *ct = t.data() + 4 * n_seg;
	unsigned long long t_lo = ~0ull, t_hi = 0, t_done = 0;
	double sum = 0, rsum = 0;
	pr->n_cta = n_cta;
	pr->fused = a->fuse;
	pr->help = a->help;
	struct fit {
		double n = 0, x = 0, y = 0, xx = 0, xy = 0;
	} fits[4][2];
	for (int c = 0; c < n_cta; c++) {
		const unsigned long long t0 = ct[3 * c], t1 = ct[3 * c + 1], t2 = ct[3 * c + 2];
		if (t0 == 0 || t2 < t0)
			continue; /* a CTA without work */
		t_lo = std::min(t_lo, t0);
		t_hi = std::max(t_hi, t2);
		t_done = std::max(t_done, t1);
		const double us = (t1 - t0) * 1e-3, rus = (t2 - t1) * 1e-3;
		pr->cta_max_us = std::max(pr->cta_max_us, us);
		pr->red_max_us = std::max(pr->red_max_us, rus);
		sum += us;
		rsum += rus;
		if (a->cta_off[c] < a->cta_off[c + 1] && t[4 * a->cta_off[c]] > t0) {
			const double pro = (t[4 * a->cta_off[c]] - t0) * 1e-3;
			pr->pro_max_us = std::max(pr->pro_max_us, pro);
			pr->pro_mean_us += pro / n_cta;
		}
		for (int32_t i = a->cta_off[c]; i < a->cta_off[c + 1]; i++) {
			const attn_seg &sg = a->segs[i];
			const unsigned long long *st = &t[4 * (size_t)i];
			const unsigned long long e = i + 1 < a->cta_off[c + 1] ? st[4] : t1;
			const double y = e > st[0] ? (e - st[0]) * 1e-3 : 0.0;
			const double x = (sg.n_tok + ATTN_TILE - 1) / ATTN_TILE;
			const int k = sg.cls == ATTN_CLS_CC ? 0 : sg.cls - 1, m = sg.gtok0 >= 0;
			cuda_attn_prof_class &pc = pr->cls[k][m];
			pc.n_seg++;
			pc.n_tiles += (int64_t)x;
			pc.us += y;
			if (st[1] >= st[0] && st[2] >= st[1] && e >= st[2] && st[1] != 0) {
				pc.q_us += (st[1] - st[0]) * 1e-3;
				if (i == a->cta_off[c]) {
					pc.n_first++;
					pc.q_first_us += (st[1] - st[0]) * 1e-3;
				}
				pc.loop_us += (st[2] - st[1]) * 1e-3;
				pc.epi_us += (e - st[2]) * 1e-3;
			}
			fit &f = fits[k][m];
			f.n += 1;
			f.x += x;
			f.y += y;
			f.xx += x * x;
			f.xy += x * y;
		}
	}
	pr->span_us = t_hi > t_lo ? (t_hi - t_lo) * 1e-3 : 0.0;
	pr->timeline_us = pr->span_us;
	if (n_red) { /* the reduction grid on the same clock */
		unsigned long long r0 = ~0ull, r1 = ~0ull, r2 = 0;
		for (size_t b = 0; b < n_red / 3; b++) {
			const unsigned long long *rb = t.data() + n + 3 * b;
			if (rb[0])
				r0 = std::min(r0, rb[0]);
			if (rb[1])
				r1 = std::min(r1, rb[1]);
			r2 = std::max(r2, rb[2]);
		}
		if (r1 != ~0ull && r2 > r1 && t_hi > t_lo) {
			pr->red_start_us = ((double)r0 - (double)t_hi) * 1e-3;
			pr->red_wait_us = ((double)r1 - (double)t_hi) * 1e-3;
			pr->red_us = (r2 - r1) * 1e-3;
			pr->timeline_us = (std::max(r2, t_hi) - t_lo) * 1e-3;
		}
	}
	pr->tail_us = t_hi > t_done ? (t_hi - t_done) * 1e-3 : 0.0;
	pr->cta_mean_us = sum / n_cta;
	pr->red_mean_us = rsum / n_cta;
	pr->model_max = a->st.cost_max;
	pr->model_mean = a->st.cost_mean * a->n_cta / n_cta;
	for (int k = 0; k < 4; k++)
		for (int m = 0; m < 2; m++) {
			const fit &f = fits[k][m];
			const double den = f.n * f.xx - f.x * f.x;
			if (f.n < 2 || den <= 0)
				continue;
			pr->cls[k][m].us_per_tile = (f.n * f.xy - f.x * f.y) / den;
			pr->cls[k][m].us_fixed = (f.y - pr->cls[k][m].us_per_tile * f.x) / f.n;
		}
	return 0;
}
