/*
 * pane_stats.c — what the decode steps cost, as they happen.
 *
 *   step 56 · 4 live · 112 generated · prompt 33
 *   KV read   last step         all steps
 *   flatten   6.2 MiB           173.6 MiB
 *   seq       14.3 MiB   -56%   311.7 MiB  -44%
 *   other IO 1.9 MiB (q 540.0 KiB mask 1.3 KiB part 1.1 MiB inter 0 B)
 *   step 16 ms  attn 2 ms (12%)  160.9 tok/s
 *   TTFT 35 ms  TPOT 12 ms (mean step, p90 18 ms)
 *   time ▆▃▁▁▁▁▁█▇▆▆▅▆▅▅   IO ▄▄▄▅▅▁▁▁▁▁▄▄▅▅▆▇██
 *   weights 92.1 MiB per forward; KV is 6.2% of the step's bytes
 *   bandwidth 6.44 GB/s = 30% of host copy 21.2 GB/s
 *   next step KV: seq 14.5M  node 6.42M  flatten 6.42M  mask 6.42M
 *
 * Lines are dropped from the bottom up when the pane is short; the KV
 * comparison comes first.  "host copy" is a memcpy timed when the worker
 * starts (bytes read + written per second): the roofline's ceiling on the
 * CPU, where the matmuls run.  With the cuda backend a GPU line follows:
 *   GPU attn 212 us: KV 6.2 MiB at 30.6 GB/s = 1% of device copy 4240 GB/s
 * (the attention kernels alone, CUDA events, against the device's copy rate
 * measured when the backend started).  An IO-only replay shows no times that
 * would describe no model.  IO figures are the engine's IO model (bytes a
 * kernel following the plan reads and writes, all layers); "seq" is the
 * same step planned as one pass per branch (what attention without tree
 * awareness reads), so the saving is exactly what tree attention avoids.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
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

/* a line, cut to the pane; false when the pane is full */
static bool put_line(struct ui_view *v, int *y, enum ui_style st, const char *text)
{
	if (*y >= v->h)
		return false;
	ui_puts_fit(v, 0, (*y)++, st, text, v->w, false);
	return *y < v->h;
}

/* the KV rows: algorithm and seq, last step and all steps */
static bool kv_rows(struct ui_view *v, int *y, const struct ui_snap *s)
{
	const struct metrics_step *L = &s->last;
	const struct metrics_summary *S = &s->sum;
	char a[32], b[32], line[64];
	bool wide = v->w >= 44;
	ui_puts(v, 0, *y, UI_S_DIM, "KV read", -1);
	ui_puts(v, 10, *y, UI_S_DIM, "last step", -1);
	if (wide)
		ui_puts(v, 28, *y, UI_S_DIM, "all steps", -1);
	if (++*y >= v->h)
		return false;
	ui_puts_fit(v, 0, *y, UI_S_NORMAL, algo_short((int)s->info.algo), 9, false);
	ui_puts(v, 10, *y, UI_S_BOLD, ui_fmt_bytes(L->io.kv, a, sizeof(a)), 17);
	if (wide)
		ui_puts(v, 28, *y, UI_S_BOLD, ui_fmt_bytes(S->kv_bytes, b, sizeof(b)), -1);
	if (++*y >= v->h)
		return false;
	int p1 = saving_pct(L->io.kv, L->io_seq.kv), p2 = saving_pct(S->kv_bytes, S->kv_bytes_seq);
	ui_puts(v, 0, *y, UI_S_NORMAL, "seq", -1);
	ui_puts(v, 10, *y, UI_S_NORMAL, ui_fmt_bytes(L->io_seq.kv, a, sizeof(a)), -1);
	snprintf(line, sizeof(line), "%+d%%", p1);
	ui_puts(v, 21, *y, p1 < 0 ? UI_S_OK : p1 > 0 ? UI_S_WARN : UI_S_DIM, line, -1);
	if (wide) {
		ui_puts(v, 28, *y, UI_S_NORMAL, ui_fmt_bytes(S->kv_bytes_seq, b, sizeof(b)), -1);
		snprintf(line, sizeof(line), "%+d%%", p2);
		ui_puts(v, 39, *y, p2 < 0 ? UI_S_OK : p2 > 0 ? UI_S_WARN : UI_S_DIM, line, -1);
	}
	return ++*y < v->h;
}

/* "482M", "79.8M", "12.0K": three digits */
static const char *fmt_short(uint64_t b, char *buf, size_t cap)
{
	static const char units[] = "BKMGT";
	double x = (double)b;
	int u = 0;
	while (x >= 1000 && u < 4) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%lluB", (unsigned long long)b);
	else if (x < 10)
		snprintf(buf, cap, "%.2f%c", x, units[u]);
	else if (x < 100)
		snprintf(buf, cap, "%.1f%c", x, units[u]);
	else
		snprintf(buf, cap, "%.0f%c", x, units[u]);
	return buf;
}

static bool sparklines(struct ui_view *v, int *y, const struct ui_snap *s)
{
	if (s->n_hist < 2)
		return *y < v->h;
	double *vals = xmallocarray((size_t)s->n_hist, sizeof(double));
	int half = (v->w - 2) / 2;
	for (int32_t i = 0; i < s->n_hist; i++)
		vals[i] = (double)s->hist_wall[i];
	ui_puts(v, 0, *y, UI_S_DIM, "time", -1);
	ui_sparkline(v, 5, *y, half - 5, vals, s->n_hist, UI_S_SPARK);
	for (int32_t i = 0; i < s->n_hist; i++)
		vals[i] = (double)s->hist_bytes[i];
	ui_puts(v, half + 1, *y, UI_S_DIM, "IO", -1);
	ui_sparkline(v, half + 4, *y, v->w - half - 4, vals, s->n_hist, UI_S_SPARK);
	free(vals);
	return ++*y < v->h;
}

static void whatif_row(struct ui_view *v, int *y, const struct ui_snap *s)
{
	if (!s->has_whatif || s->whatif_queries == 0 || *y >= v->h)
		return;
	char lbl[64], a[32], line[96];
	snprintf(lbl, sizeof(lbl), "%s KV:", s->whatif_all_leaves ? "all leaves" : "next step");
	int x = ui_puts(v, 0, *y, UI_S_DIM, lbl, -1) + 1;
	static const int order[TREEPLAN_N_ALGO] = { TREEPLAN_SEQ, TREEPLAN_DEFT_NODE, TREEPLAN_DEFT_FLATTEN,
						    TREEPLAN_TREE_MASK };
	for (int k = 0; k < TREEPLAN_N_ALGO; k++) {
		int al = order[k];
		snprintf(line, sizeof(line), "%s %s", algo_short(al), fmt_short(s->whatif_kv[al], a, sizeof(a)));
		int w = ui_text_width(line, strlen(line));
		if (x + w > v->w)
			break;
		ui_puts(v, x, *y, al == (int)s->info.algo ? UI_S_BOLD : UI_S_NORMAL, line, -1);
		x += w + 2;
	}
	(*y)++;
}

void ui_stats_draw(struct ui_view *v, const struct ui_snap *s, const struct ui_run_state *rs)
{
	char a[32], b[32], c[32], d[32], e[32], line[512];
	int y = 0;
	(void)rs;
	if (!s) {
		ui_puts(v, 0, 0, UI_S_DIM, "starting...", v->w);
		return;
	}
	const struct ui_snap_info *in = &s->info;
	const char *sep = ui_g->utf8 ? "\xc2\xb7" : "-";
	snprintf(line, sizeof(line), "step %lld %s %d live %s %lld generated %s prompt %d", (long long)in->n_steps, sep,
		 s->has_tree ? s->tstats.n_live_leaves : 0, sep, (long long)in->n_generated, sep, in->prompt_len);
	if (!put_line(v, &y, UI_S_BOLD, line))
		return;
	if (!s->has_last) {
		if (!put_line(v, &y, UI_S_DIM, "No decode step yet: the numbers start with the first token."))
			return;
		if (s->has_metrics && s->sum.prompt_tokens > 0) {
			snprintf(line, sizeof(line), "prefill %lld tokens in %s", (long long)s->sum.prompt_tokens,
				 ui_fmt_ns((double)s->sum.prefill_ns, a, sizeof(a)));
			if (!put_line(v, &y, UI_S_NORMAL, line))
				return;
		}
		whatif_row(v, &y, s);
		return;
	}
	const struct metrics_step *L = &s->last;
	const struct metrics_summary *S = &s->sum;
	if (!kv_rows(v, &y, s))
		return;
	/* the other IO terms of the step */
	snprintf(line, sizeof(line), "other IO %s (q %s mask %s part %s inter %s)", ui_fmt_bytes(other_io(&L->io), a, sizeof(a)),
		 ui_fmt_bytes(L->io.q, b, sizeof(b)), ui_fmt_bytes(L->io.mask, c, sizeof(c)),
		 ui_fmt_bytes(L->io.partial, d, sizeof(d)), ui_fmt_bytes(L->io.inter, e, sizeof(e)));
	if (!put_line(v, &y, UI_S_NORMAL, line))
		return;
	if (in->io_only) {
		snprintf(line, sizeof(line), "IO-only replay: plan %s a step, no model runs",
			 ui_fmt_ns((double)L->wall_ns, a, sizeof(a)));
		if (!put_line(v, &y, UI_S_DIM, line) || !sparklines(v, &y, s))
			return;
		whatif_row(v, &y, s);
		return;
	}
	snprintf(line, sizeof(line), "step %s  attn %s (%.0f%%)  %.1f tok/s", ui_fmt_ns((double)L->wall_ns, a, sizeof(a)),
		 ui_fmt_ns((double)L->attn_ns, b, sizeof(b)),
		 L->wall_ns > 0 ? 100.0 * (double)L->attn_ns / (double)L->wall_ns : 0.0, S->tokens_per_s);
	if (!put_line(v, &y, UI_S_NORMAL, line))
		return;
	/* TPOT as the mean step: every step gives each live branch its next token.
	 * (The metrics' per-branch TPOT also counts the pauses between the
	 * user's actions, which in a playground says little.) */
	snprintf(line, sizeof(line), "TTFT %s  TPOT %s (mean step, p90 %s)",
		 S->ttft.n ? ui_fmt_ns(S->ttft.mean, a, sizeof(a)) : "-", ui_fmt_ns(S->step.mean, b, sizeof(b)),
		 ui_fmt_ns((double)S->step.p90, c, sizeof(c)));
	if (!put_line(v, &y, UI_S_NORMAL, line) || !sparklines(v, &y, s))
		return;
	/* the GPU roofline: the attention kernels alone against the device's copy rate */
	if (in->backend_kind == BACKEND_CUDA && L->attn_dev_ns > 0) {
		double gbps = (double)L->io.kv / (double)L->attn_dev_ns;
		char kb[32];
		snprintf(line, sizeof(line), "GPU attn %s: KV %s at %.1f GB/s = %.1f%% of device copy %.0f GB/s",
			 ui_fmt_ns((double)L->attn_dev_ns, a, sizeof(a)), ui_fmt_bytes(L->io.kv, kb, sizeof(kb)), gbps,
			 in->dev_copy_gbps > 0 ? 100.0 * gbps / in->dev_copy_gbps : 0.0, in->dev_copy_gbps);
		if (!put_line(v, &y, UI_S_NORMAL, line))
			return;
	}
	/* weights: what dominates a small batch */
	if (in->weight_bytes > 0) {
		snprintf(line, sizeof(line), "weights %s per forward; KV is %.1f%% of the step's bytes",
			 ui_fmt_bytes(in->weight_bytes, a, sizeof(a)),
			 100.0 * (double)L->io.kv / ((double)in->weight_bytes + (double)metrics_io_total(&L->io)));
		if (!put_line(v, &y, UI_S_DIM, line))
			return;
	}
	/* the roofline view: bytes a step moves per second against the measured copy bandwidth */
	if (in->copy_gbps > 0 && L->wall_ns > 0) {
		double gbps = ((double)in->weight_bytes + (double)metrics_io_total(&L->io)) / (double)L->wall_ns;
		snprintf(line, sizeof(line), "bandwidth %.2f GB/s = %.0f%% of host copy %.1f GB/s", gbps,
			 100.0 * gbps / in->copy_gbps, in->copy_gbps);
		if (!put_line(v, &y, UI_S_DIM, line))
			return;
	}
	whatif_row(v, &y, s);
}
