/* test_ui_worker.c — the playground's engine thread (ui/worker.c) without a
 * terminal: a model made by the test (mkmodel, head dim 64), a prompt grown
 * by jobs, snapshots and events as the UI would take them, and the backend
 * switch.
 *
 * Everywhere: the worker starts on the backend it was given (cuda without a
 * device falls back to the cpu with a message, and the prompt still runs);
 * a switch to cuda without a device is refused with the reason and decoding
 * goes on.
 * With a CUDA device: the worker starts on cuda, its snapshots name the
 * device, carry the device copy rate and GPU kernel time per step (the
 * stats pane's roofline); a switch to the cpu and back keeps the tree and
 * keeps growing it, and the GPU time follows the backend. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "common.h"
#include "engine.h"
#include "mkmodel.h"
#include "snapshot.h"
#include "tap.h"
#include "worker.h"

static char err[DT_ERR_LEN];
static int wake[2];

static const char *model_file(void)
{
	static char path[1024];
	struct mkmodel_params mp = mkmodel_default_params();
	mp.n_layer = 2;
	mp.n_embd = 256;
	mp.n_head = 4; /* head dim 64: the cuda kernels take it */
	mp.n_head_kv = 2;
	mp.n_ff = 384;
	mp.n_vocab = 600;
	mp.type = DT_TYPE_Q8_0;
	snprintf(path, sizeof(path), "%s/worker_model.gguf", tap_tmpdir());
	if (mkmodel_write(&mp, path, NULL, err)) {
		printf("Bail out! mkmodel: %s\n", err);
		exit(1);
	}
	return path;
}

static struct ui_worker *start(const char *model, enum backend_kind k)
{
	struct ui_worker_params p = { 0 };
	p.model_path = model;
	p.n_threads = 2;
	p.engine = engine_default_params();
	p.engine.backend = k;
	p.engine.kv_budget = 16u << 20;
	p.engine.n_alt = 4;
	p.max_tokens = 6;
	p.wake_fd = wake[1];
	p.replay_fps = 1000;
	return ui_worker_start(&p);
}

/* The newest snapshot after the worker went idle (the older ones freed). */
static struct ui_snap *settle(struct ui_worker *w, struct ui_snap *prev)
{
	bool idle = ui_worker_wait_idle(w, 60000);
	if (!idle)
		diag("the worker did not go idle in 60 s");
	struct ui_snap *s;
	while ((s = ui_worker_take_snap(w))) {
		ui_snap_free(prev);
		prev = s;
	}
	char junk[64];
	while (read(wake[0], junk, sizeof(junk)) > 0) {
	}
	return prev;
}

/* Concatenated event texts (kind: 'i' info, 'e' error) since the last call. */
static void events(struct ui_worker *w, char *out, size_t cap)
{
	struct ui_event ev[16];
	int n;
	size_t len = 0;
	out[0] = 0;
	while ((n = ui_worker_take_events(w, ev, 16)) > 0)
		for (int i = 0; i < n; i++) {
			if (ev[i].kind != UI_EV_INFO && ev[i].kind != UI_EV_ERROR)
				continue;
			int m = snprintf(out + len, cap - len, "[%c] %s\n", ev[i].kind == UI_EV_ERROR ? 'e' : 'i',
					 ev[i].text);
			if (m > 0)
				len = DT_MIN(cap - 1, len + (size_t)m);
		}
}

/* Events until one holds `want` (at most 60 s), all of them into out. */
static void events_until(struct ui_worker *w, const char *want, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = 0;
	for (int i = 0; i < 6000 && !strstr(out, want); i++) {
		events(w, out + len, cap - len);
		len = strlen(out);
		if (!strstr(out, want))
			usleep(10000);
	}
}

static void submit(struct ui_worker *w, enum ui_job_kind kind, int32_t n, int64_t steps, const char *text)
{
	struct ui_job j = { .kind = kind, .node = -1, .n = n, .steps = steps, .text = text };
	ui_worker_submit(w, &j);
}

static void test_without_device(const char *model)
{
	char ev[4096], why[DT_ERR_LEN];
	backend_available(BACKEND_CUDA, why);
	/* asked for cuda: falls back with a message */
	struct ui_worker *w = start(model, BACKEND_CUDA);
	events_until(w, "loaded", ev, sizeof(ev));
	struct ui_snap *s = settle(w, NULL);
	ok(strstr(ev, "attention on the cpu") && strstr(ev, why), "cuda without a device: the worker says so: %s", ev);
	submit(w, UI_JOB_PROMPT, 1, 4, "Once upon a time");
	s = settle(w, s);
	ok(s && s->has_tree && s->info.backend_kind == BACKEND_CPU && s->has_last && s->last.attn_dev_ns == 0,
	   "the prompt runs on the cpu (%s)", s ? s->info.backend : "no snapshot");
	/* a switch to cuda is refused, decoding goes on */
	events(w, ev, sizeof(ev));
	submit(w, UI_JOB_BACKEND, BACKEND_CUDA, 0, NULL);
	s = settle(w, s);
	events(w, ev, sizeof(ev));
	ok(strstr(ev, "[e] backend cuda: ") && strstr(ev, why), "the switch to cuda is refused with the reason: %s", ev);
	int64_t steps = s ? s->info.n_steps : 0;
	submit(w, UI_JOB_GROW, 0, 3, NULL);
	s = settle(w, s);
	ok(s && s->info.n_steps > steps && s->info.backend_kind == BACKEND_CPU, "and the tree keeps growing on the cpu");
	ui_snap_free(s);
	ui_worker_stop(w);
}

#ifdef HAVE_CUDA
static void test_with_device(const char *model)
{
	char ev[4096];
	struct ui_worker *w = start(model, BACKEND_CUDA);
	events_until(w, "loaded", ev, sizeof(ev));
	struct ui_snap *s = settle(w, NULL);
	submit(w, UI_JOB_PROMPT, 1, 5, "Once upon a time");
	s = settle(w, s);
	ok(s && s->info.backend_kind == BACKEND_CUDA && strstr(s->info.backend, "cuda ") && s->info.device[0],
	   "the worker runs on cuda: header '%s', device '%s'", s ? s->info.backend : "", s ? s->info.device : "");
	ok(s && s->info.dev_copy_gbps > 100, "the device copy rate is measured: %.0f GB/s",
	   s ? s->info.dev_copy_gbps : 0.0);
	ok(s && s->has_last && s->last.attn_dev_ns > 0 && s->last.io.kv > 0,
	   "the last step has GPU kernel time (%lld ns) for %llu KV bytes: the roofline's inputs",
	   s ? (long long)s->last.attn_dev_ns : 0LL, s ? (unsigned long long)s->last.io.kv : 0ULL);
	int32_t tokens = s ? (int32_t)s->n_toks : 0;
	submit(w, UI_JOB_BACKEND, BACKEND_CPU, 0, NULL);
	submit(w, UI_JOB_GROW, 0, 3, NULL);
	s = settle(w, s);
	events(w, ev, sizeof(ev));
	ok(strstr(ev, "attention on cpu") && s && s->info.backend_kind == BACKEND_CPU && s->last.attn_dev_ns == 0 &&
		   s->n_toks > tokens,
	   "switched to the cpu: the tree grows (%d -> %lld tokens), no GPU time", tokens,
	   s ? (long long)s->n_toks : 0LL);
	tokens = s ? (int32_t)s->n_toks : 0;
	submit(w, UI_JOB_BACKEND, BACKEND_CUDA, 0, NULL);
	submit(w, UI_JOB_GROW, 0, 3, NULL);
	s = settle(w, s);
	events(w, ev, sizeof(ev));
	ok(strstr(ev, "attention on cuda") && s && s->info.backend_kind == BACKEND_CUDA && s->last.attn_dev_ns > 0 &&
		   s->n_toks > tokens,
	   "and back on cuda: the same tree keeps growing (%d -> %lld tokens) with GPU time", tokens,
	   s ? (long long)s->n_toks : 0LL);
	ui_snap_free(s);
	ui_worker_stop(w);
}
#endif

int main(void)
{
	tap_plan_lazy();
	if (pipe(wake)) {
		printf("Bail out! pipe\n");
		return 1;
	}
	fcntl(wake[0], F_SETFL, O_NONBLOCK);
	fcntl(wake[1], F_SETFL, O_NONBLOCK);
	const char *model = model_file();
	if (!backend_available(BACKEND_CUDA, NULL)) {
		test_without_device(model);
		tap_skip("no CUDA device: the worker on cuda");
	} else {
#ifdef HAVE_CUDA
		test_with_device(model);
#endif
	}
	return tap_done();
}
