/*
 * test_ui_stats.c — the stats pane from known metrics: KV bytes of the
 * algorithm against seq for the last step and all steps with the saving,
 * the other IO terms, times, sparklines, the what-if row, the GPU roofline
 * line on the cuda backend, and what an IO-only replay leaves out.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "metrics.h"
#include "panes.h"
#include "tap.h"
#include "ui_fixture.h"

static struct ui_canvas *draw(const struct ui_snap *s, int w, int h)
{
	struct ui_canvas *c = ui_canvas_new(w, h);
	struct ui_view v = ui_view_of(c, (struct ui_rect){ 0, 0, w, h });
	struct ui_run_state rs = { 0 };
	ui_stats_draw(&v, s, &rs);
	return c;
}

static struct metrics_step step(uint64_t kv, uint64_t kv_seq, int64_t wall_ms)
{
	struct metrics_step st;
	memset(&st, 0, sizeof(st));
	st.wall_ns = wall_ms * 1000000;
	st.attn_ns = wall_ms * 250000;
	st.n_queries = st.n_branches = st.n_tokens = 4;
	st.io.kv = kv;
	st.io.q = 2048;
	st.io.partial = 1024;
	st.io_seq.kv = kv_seq;
	st.io_seq.q = 2048;
	return st;
}

int main(void)
{
	if (!fx_utf8_locale())
		tap_skip_all("no UTF-8 locale (C.UTF-8) for character widths");
	tap_plan_lazy();
	ui_glyphs_set(true);
	struct fx f;
	fx_build(&f, 2, 64);
	struct metrics *m = metrics_new();
	struct ui_snap_src src = { 0 };
	src.tree = f.tree;
	src.pool = f.pool;
	src.piece = fx_piece;
	src.metrics = m;

	/* no step yet */
	struct ui_snap *s = ui_snap_build(&src);
	snprintf(s->info.backend, sizeof(s->info.backend), "cpu 2 thr");
	s->info.algo = TREEPLAN_DEFT_FLATTEN;
	struct ui_canvas *c = draw(s, 60, 12);
	ok(!strcmp(fx_row(c, 0), "step 0 · 1 live · 0 generated · prompt 0"), "the first line: '%s'", fx_row(c, 0));
	ok(strstr(fx_row(c, 1), "No decode step yet") != NULL, "before the first step: '%s'", fx_row(c, 1));
	ui_canvas_free(c);
	ui_snap_free(s);

	/* two steps: 1 MiB vs 4 MiB, then 2 MiB vs 4 MiB */
	struct metrics_step a = step(1u << 20, 4u << 20, 100), b = step(2u << 20, 4u << 20, 300);
	metrics_step_add(m, &a);
	metrics_step_add(m, &b);
	s = ui_snap_build(&src);
	snprintf(s->info.backend, sizeof(s->info.backend), "cpu 2 thr");
	s->info.algo = TREEPLAN_DEFT_FLATTEN;
	s->info.n_steps = 2;
	s->info.weight_bytes = 100u << 20;
	s->has_whatif = true;
	s->whatif_queries = 4;
	s->whatif_kv[TREEPLAN_SEQ] = 4u << 20;
	s->whatif_kv[TREEPLAN_DEFT_NODE] = 2u << 20;
	s->whatif_kv[TREEPLAN_DEFT_FLATTEN] = 2u << 20;
	s->whatif_kv[TREEPLAN_TREE_MASK] = 3u << 20;
	c = draw(s, 70, 12);
	ok(!strcmp(fx_row(c, 1), "KV read   last step         all steps"), "column heads: '%s'", fx_row(c, 1));
	ok(!strcmp(fx_row(c, 2), "flatten   2.0 MiB           3.0 MiB"), "the algorithm's KV, last and all: '%s'",
	   fx_row(c, 2));
	ok(!strcmp(fx_row(c, 3), "seq       4.0 MiB    -50%   8.0 MiB    -63%"), "seq and the savings: '%s'", fx_row(c, 3));
	ok(!strncmp(fx_styles(c, 3) + 21, "OOOO", 4), "a saving is drawn in the saving colour: %s", fx_styles(c, 3));
	ok(!strcmp(fx_row(c, 4), "other IO 3.0 KiB (q 2.0 KiB mask 0 B part 1.0 KiB inter 0 B)"),
	   "the other IO terms: '%s'", fx_row(c, 4));
	ok(!strncmp(fx_row(c, 5), "step 300 ms  attn 75 ms (25%)", 29), "step and attention time: '%s'", fx_row(c, 5));
	ok(strstr(fx_row(c, 6), "TPOT 200 ms (mean step, p90 300 ms)") != NULL, "TPOT is the mean step: '%s'", fx_row(c, 6));
	ok(!strncmp(fx_row(c, 7), "time ▁█", strlen("time ▁█")) && strstr(fx_row(c, 7), "IO ▁█"),
	   "sparklines of step time and IO: '%s'", fx_row(c, 7));
	ok(strstr(fx_row(c, 8), "weights 100.0 MiB per forward") != NULL, "the weights a forward reads: '%s'", fx_row(c, 8));
	ok(!strcmp(fx_row(c, 9), "next step KV: seq 4.00M  node 2.00M  flatten 2.00M  mask 3.00M"),
	   "the what-if row compares the four algorithms: '%s'", fx_row(c, 9));
	ok(fx_styles(c, 9)[37] == 'b', "the algorithm in use is bold in the what-if row: %s", fx_styles(c, 9));
	ui_canvas_free(c);

	/* a short pane keeps the first lines */
	c = draw(s, 70, 4);
	ok(!strcmp(fx_row(c, 3), "seq       4.0 MiB    -50%   8.0 MiB    -63%"), "4 rows: the KV comparison still shows");
	ui_canvas_free(c);
	/* a narrow pane drops the all-steps column */
	c = draw(s, 40, 6);
	ok(!strcmp(fx_row(c, 3), "seq       4.0 MiB    -50%"), "40 columns: last step only: '%s'", fx_row(c, 3));
	ui_canvas_free(c);

	/* the cuda backend: the GPU roofline line (kernels alone against the device copy) */
	ui_snap_free(s);
	struct metrics_step g = step(64u << 20, 256u << 20, 10);
	g.attn_dev_ns = 40000; /* 64 MiB in 40 us: 1677.7 GB/s */
	metrics_step_add(m, &g);
	s = ui_snap_build(&src);
	s->info.algo = TREEPLAN_DEFT_FLATTEN;
	s->info.n_steps = 3;
	s->info.backend_kind = BACKEND_CUDA;
	s->info.dev_copy_gbps = 3000.0;
	c = draw(s, 90, 14);
	char *txt = ui_canvas_text(c);
	ok(strstr(txt, "GPU attn 40.0 us: KV 64.0 MiB at 1677.7 GB/s = 55.9% of device copy 3000 GB/s") != NULL,
	   "on cuda: the kernels' KV bandwidth against the device's copy rate");
	free(txt);
	ui_canvas_free(c);
	s->info.backend_kind = BACKEND_CPU;
	c = draw(s, 90, 14);
	txt = ui_canvas_text(c);
	ok(!strstr(txt, "GPU attn"), "on the cpu: no GPU line");
	free(txt);
	ui_canvas_free(c);

	/* IO-only: no times that mean nothing */
	s->info.io_only = true;
	c = draw(s, 70, 12);
	ok(strstr(fx_row(c, 5), "IO-only replay: plan 10 ms a step") != NULL, "IO-only says what the time is: '%s'",
	   fx_row(c, 5));
	char *all = ui_canvas_text(c);
	ok(!strstr(all, "TTFT") && !strstr(all, "tok/s") && !strstr(all, "bandwidth"),
	   "IO-only leaves out TTFT, tokens/s and bandwidth");
	free(all);
	ui_canvas_free(c);
	ui_snap_free(s);
	metrics_free(m);
	fx_free(&f);
	return tap_done();
}
