/*
 * pane_stats.c — what the decode steps cost, as they happen.
 *
 *   cpu 2 threads · deft-flatten · step 14 · 2 live
 *             last step       all steps
 *   KV read   1.41 MiB        18.2 MiB
 *   seq       2.63 MiB  -46%  31.0 MiB  -41%
 *   Q+mask+partial+out  0.12 MiB   weights 80.6 MiB/step
 *   step 182 ms  attn 31 ms (17%)  TTFT 190 ms  TPOT 176 ms  5.5 tok/s
 *   step time ▂▃▃▅▇█▆▅   bytes/step ▁▁▂▂▃▃▄▄
 *   next step: seq 2.6M  node 1.5M  flatten 1.4M  mask 1.9M
 *   bandwidth 0.62 GB/s = 8% of host copy 7.9 GB/s
 *
 * Lines are dropped from the bottom up when the pane is short; the first
 * four always fit in 80x24.  IO figures are the engine's IO model (bytes a
 * kernel following the plan reads and writes, all layers); "seq" is the
 * same step planned as one pass per branch (what attention without tree
 * awareness reads), so the saving is exactly what tree attention avoids.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "panes.h"

const char *ui_fmt_ns(double ns, char *buf, size_t cap)
{
	if (ns < 1e3)
		snprintf(buf, cap, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, cap, "%.1f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, cap, "%.0f ms", ns / 1e6);
	else
		snprintf(buf, cap, "%.2f s", ns / 1e9);
	return buf;
}

const char *ui_fmt_bytes(uint64_t b, char *buf, size_t cap)
{
	double x = (double)b;
	if (b < 1024)
		snprintf(buf, cap, "%llu B", (unsigned long long)b);
	else if (x < 1024.0 * 1024)
		snprintf(buf, cap, "%.1f KiB", x / 1024);
	else if (x < 1024.0 * 1024 * 1024)
		snprintf(buf, cap, "%.1f MiB", x / (1024.0 * 1024));
	else
		snprintf(buf, cap, "%.2f GiB", x / (1024.0 * 1024 * 1024));
	return buf;
}

void ui_sparkline(struct ui_view *v, int x, int y, int width, const double *vals, int n, enum ui_style st)
{
	if (width <= 0 || n <= 0)
		return;
	int from = n > width ? n - width : 0;
	double lo = INFINITY, hi = -INFINITY;
	for (int i = from; i < n; i++) {
		lo = fmin(lo, vals[i]);
		hi = fmax(hi, vals[i]);
	}
	for (int i = from; i < n; i++) {
		int lvl = hi > lo ? (int)((vals[i] - lo) / (hi - lo) * 7.0 + 0.5) : 3;
		if (lvl < 0)
			lvl = 0;
		if (lvl > 7)
			lvl = 7;
		ui_putc(v, x + (i - from), y, ui_g->spark[lvl], st);
	}
}

static int saving_pct(uint64_t algo, uint64_t seq)
{
	if (seq == 0)
		return 0;
	return (int)lround(((double)algo - (double)seq) / (double)seq * 100.0);
}

static uint64_t other_io(const struct metrics_io *io)
{
	return io->q + io->mask + io->partial + io->inter + io->other;
}

static const char *algo_short(int a)
{
	static const char *n[TREEPLAN_N_ALGO] = { "seq", "node", "flatten", "mask" };
	return a >= 0 && a < TREEPLAN_N_ALGO ? n[a] : "?";
}

void ui_stats_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_run_state *rs)
{
	char a[32], b[32], c[32], d[32], line[512];
	int y = 0;
	if (!s) {
		ui_puts(v, 0, 0, UI_S_DIM, "starting...", v->w);
		return;
	}
	const struct ui_snap_info *in = &s->info;
	int32_t live = s->has_tree ? s->tstats.n_live_leaves : 0;
	snprintf(line, sizeof(line), "%s %s %s %s step %lld %s %d live", in->backend[0] ? in->backend : "no backend",
		 ui_g->utf8 ? "\xc2\xb7" : "-", treeplan_algo_name(in->algo), ui_g->utf8 ? "\xc2\xb7" : "-",
		 (long long)in->n_steps, ui_g->utf8 ? "\xc2\xb7" : "-", live);
	ui_puts_fit(v, 0, y++, UI_S_BOLD, line, v->w, false);
	if (y >= v->h)
		return;
	if (!s->has_last) {
		ui_puts(v, 0, y++, UI_S_DIM, "No decode step yet: the numbers start with the first token.", v->w);
		if (s->has_metrics && s->sum.prompt_tokens > 0 && y < v->h) {
			snprintf(line, sizeof(line), "prefill %lld tokens in %s", (long long)s->sum.prompt_tokens,
				 ui_fmt_ns((double)s->sum.prefill_ns, a, sizeof(a)));
			ui_puts(v, 0, y++, UI_S_NORMAL, line, v->w);
		}
	} else {
		const struct metrics_step *L = &s->last;
		const struct metrics_summary *S = &s->sum;
		/* KV read by the algorithm and by seq, last step and all steps */
		ui_puts(v, 0, y, UI_S_DIM, "KV read", -1);
		ui_puts(v, 10, y, UI_S_DIM, "last step", -1);
		if (v->w >= 44)
			ui_puts(v, 28, y, UI_S_DIM, "all steps", -1);
		y++;
		if (y >= v->h)
			return;
		ui_puts_fit(v, 0, y, UI_S_NORMAL, algo_short((int)in->algo), 9, false);
		ui_puts(v, 10, y, UI_S_BOLD, ui_fmt_bytes(L->io.kv, a, sizeof(a)), 17);
		if (v->w >= 44)
			ui_puts(v, 28, y, UI_S_BOLD, ui_fmt_bytes(S->kv_bytes, b, sizeof(b)), -1);
		y++;
		if (y >= v->h)
			return;
		int p1 = saving_pct(L->io.kv, L->io_seq.kv), p2 = saving_pct(S->kv_bytes, S->kv_bytes_seq);
		ui_puts(v, 0, y, UI_S_NORMAL, "seq", -1);
		ui_puts(v, 10, y, UI_S_NORMAL, ui_fmt_bytes(L->io_seq.kv, a, sizeof(a)), -1);
		snprintf(line, sizeof(line), "%+d%%", p1);
		ui_puts(v, 21, y, p1 < 0 ? UI_S_OK : p1 > 0 ? UI_S_WARN : UI_S_DIM, line, -1);
		if (v->w >= 44) {
			ui_puts(v, 28, y, UI_S_NORMAL, ui_fmt_bytes(S->kv_bytes_seq, b, sizeof(b)), -1);
			snprintf(line, sizeof(line), "%+d%%", p2);
			ui_puts(v, 39, y, p2 < 0 ? UI_S_OK : p2 > 0 ? UI_S_WARN : UI_S_DIM, line, -1);
		}
		y++;
		if (y >= v->h)
			return;
		/* the other IO terms, and the weights every forward pass reads */
		snprintf(line, sizeof(line), "other IO %s (q %s mask %s part %s inter %s)",
			 ui_fmt_bytes(other_io(&L->io), a, sizeof(a)), ui_fmt_bytes(L->io.q, b, sizeof(b)),
			 ui_fmt_bytes(L->io.mask, c, sizeof(c)), ui_fmt_bytes(L->io.partial, d, sizeof(d)),
			 ui_fmt_bytes(L->io.inter, line + 400, 32));
		ui_puts_fit(v, 0, y++, UI_S_NORMAL, line, v->w, false);
		if (y >= v->h)
			return;
		double tps = S->tokens_per_s;
		snprintf(line, sizeof(line), "step %s  attn %s (%.0f%%)  %.1f tok/s",
			 ui_fmt_ns((double)L->wall_ns, a, sizeof(a)), ui_fmt_ns((double)L->attn_ns, b, sizeof(b)),
			 L->wall_ns > 0 ? 100.0 * (double)L->attn_ns / (double)L->wall_ns : 0.0, tps);
		ui_puts_fit(v, 0, y++, UI_S_NORMAL, line, v->w, false);
		if (y >= v->h)
			return;
		snprintf(line, sizeof(line), "TTFT %s  TPOT %s  mean step %s",
			 S->ttft.n ? ui_fmt_ns(S->ttft.mean, a, sizeof(a)) : "-",
			 S->tpot.n ? ui_fmt_ns(S->tpot.mean, b, sizeof(b)) : "-", ui_fmt_ns(S->step.mean, c, sizeof(c)));
		ui_puts_fit(v, 0, y++, UI_S_NORMAL, line, v->w, false);
		if (y >= v->h)
			return;
		/* sparklines: step time and bytes per step */
		if (s->n_hist > 1) {
			double *vals = xmallocarray((size_t)s->n_hist, sizeof(double));
			int half = (v->w - 2) / 2;
			int sw = half - 5;
			for (int32_t i = 0; i < s->n_hist; i++)
				vals[i] = (double)s->hist_wall[i];
			ui_puts(v, 0, y, UI_S_DIM, "time", -1);
			ui_sparkline(v, 5, y, sw, vals, s->n_hist, UI_S_SPARK);
			for (int32_t i = 0; i < s->n_hist; i++)
				vals[i] = (double)s->hist_bytes[i];
			ui_puts(v, half + 1, y, UI_S_DIM, "IO", -1);
			ui_sparkline(v, half + 4, y, v->w - half - 4, vals, s->n_hist, UI_S_SPARK);
			free(vals);
			y++;
			if (y >= v->h)
				return;
		}
		/* weights: what dominates a small batch */
		if (in->weight_bytes > 0) {
			snprintf(line, sizeof(line), "weights %s per forward; KV is %.1f%% of the step's bytes",
				 ui_fmt_bytes(in->weight_bytes, a, sizeof(a)),
				 100.0 * (double)L->io.kv / ((double)in->weight_bytes + (double)metrics_io_total(&L->io)));
			ui_puts_fit(v, 0, y++, UI_S_DIM, line, v->w, false);
			if (y >= v->h)
				return;
		}
		/* the roofline view: achieved bytes per second against measured copy bandwidth */
		if (in->copy_gbps > 0 && L->wall_ns > 0) {
			double bytes = (double)in->weight_bytes + (double)metrics_io_total(&L->io);
			double gbps = bytes / (double)L->wall_ns;
			snprintf(line, sizeof(line), "bandwidth %.2f GB/s = %.0f%% of host copy %.1f GB/s", gbps,
				 100.0 * gbps / in->copy_gbps, in->copy_gbps);
			ui_puts_fit(v, 0, y++, UI_S_DIM, line, v->w, false);
			if (y >= v->h)
				return;
		}
	}
	/* what-if: the next step on this tree under each algorithm */
	if (s->has_whatif && s->whatif_queries > 0 && y < v->h) {
		int x = ui_puts(v, 0, y, UI_S_DIM, "next step KV:", -1) + 1;
		for (int k = 0; k < TREEPLAN_N_ALGO; k++) {
			const int order[TREEPLAN_N_ALGO] = { TREEPLAN_SEQ, TREEPLAN_DEFT_NODE, TREEPLAN_DEFT_FLATTEN,
							     TREEPLAN_TREE_MASK };
			int al = order[k];
			snprintf(line, sizeof(line), "%s %s", algo_short(al), ui_fmt_bytes(s->whatif_kv[al], a, sizeof(a)));
			int w = ui_text_width(line, strlen(line));
			if (x + w > v->w)
				break;
			ui_puts(v, x, y, al == (int)in->algo ? UI_S_BOLD : UI_S_NORMAL, line, -1);
			x += w + 2;
		}
		y++;
	}
	(void)rs;
}
