/*
 * worker.h — the engine thread of the terminal UI.
 *
 * The engine is not thread-safe, so one thread owns it (and the model): the
 * worker.  The UI thread submits jobs (prompt, grow, fork, prune, save, ...)
 * to a queue (mutex + condition variable) and never waits for them.  After
 * every decode step and at the end of every job the worker copies what the
 * panes show into a new snapshot (ui/snapshot.h), parks it in a one-slot
 * mailbox under the mutex and writes a byte to the UI's wake pipe
 * (non-blocking: a full pipe already means "wake up").  Messages (errors,
 * results, "select this node") go through a small event queue the same way.
 *
 * Cancel: ui_worker_cancel() drops the queued jobs and calls engine_cancel()
 * on the engine in use (under the mutex, so the engine cannot be swapped
 * meanwhile); model_forward() checks the flag between layers, so a running
 * step stops within one layer and leaves the tree as it was.  Pause stops a
 * grow between steps until resumed.
 */
#ifndef DT_UI_WORKER_H
#define DT_UI_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "panes.h"
#include "snapshot.h"

enum ui_job_kind {
	UI_JOB_LOAD_MODEL = 1, /* path */
	UI_JOB_PROMPT,         /* text, flag = chat, n = branches, steps */
	UI_JOB_REPLY,          /* node (a leaf), text: a chat turn appended, then grown */
	UI_JOB_GROW,           /* node (-1 = every live leaf), steps */
	UI_JOB_FORK,           /* node, index, mode, token, text, steps */
	UI_JOB_SAMPLE,         /* node, index, n, steps */
	UI_JOB_BEAM,           /* node (children at its end), n = width, alpha, steps */
	UI_JOB_PRUNE,          /* node */
	UI_JOB_FINISH,         /* node; flag = finished (true) or live */
	UI_JOB_ALGO,           /* n = enum treeplan_algo */
	UI_JOB_BACKEND,        /* n = enum backend_kind */
	UI_JOB_SET,            /* text = name, path = value */
	UI_JOB_SAVE,           /* path */
	UI_JOB_OPEN,           /* path */
	UI_JOB_EXPORT,         /* text = "json" | "dot", path */
	UI_JOB_REPLAY,         /* path = workload file or "fewshot:P:B:S", n = tree index */
	UI_JOB_REPLAY_STOP,
	UI_JOB_AUTOSAVE,       /* save to the autosave file now */
};

struct ui_job {
	enum ui_job_kind kind;
	int32_t node, index, n, token;
	int64_t steps;
	float alpha;
	enum engine_fork_mode mode;
	bool flag;
	const char *text; /* copied on submit */
	const char *path; /* copied on submit */
};

enum ui_event_kind {
	UI_EV_INFO = 0,   /* text: a result to show */
	UI_EV_ERROR = 1,  /* text: an error to show */
	UI_EV_SELECT = 2, /* node: move the cursor there (a new branch) */
	UI_EV_SAVED = 3,  /* text: the session file now in use */
};

struct ui_event {
	enum ui_event_kind kind;
	int32_t node;
	char text[512];
};

struct ui_worker_params {
	const char *model_path;      /* loaded first (NULL: start without a model) */
	int32_t n_threads;           /* model threads (0 = dt_ncpu()) */
	struct engine_params engine; /* page size, budget, algorithm, sampler, ... (model fields ignored) */
	int32_t max_tokens;          /* tokens an answer grows after a prompt or reply, 0 = until it ends */
	int wake_fd;                 /* write end of the UI's wake pipe (non-blocking) */
	const char *autosave_path;   /* NULL: no autosave */
	bool measure_bandwidth;      /* time a host memcpy at start (the roofline's ceiling) */
	int32_t replay_fps;          /* replay steps per second shown (default 20) */
	int nice;                    /* nice value of the engine and compute threads (Linux: per thread) */
};

struct ui_worker;

struct ui_worker *ui_worker_start(const struct ui_worker_params *p);
/* Cancels what runs, stops the thread, frees the engines and the model. */
void ui_worker_stop(struct ui_worker *w);

void ui_worker_submit(struct ui_worker *w, const struct ui_job *j);
/* Drops queued jobs and stops the running step within one layer. */
void ui_worker_cancel(struct ui_worker *w);
void ui_worker_pause(struct ui_worker *w, bool paused);

/* The newest snapshot if one arrived since the last call (the caller owns
 * it), else NULL. */
struct ui_snap *ui_worker_take_snap(struct ui_worker *w);
/* Moves up to cap pending events into out; returns how many. */
int ui_worker_take_events(struct ui_worker *w, struct ui_event *out, int cap);
void ui_worker_run_state(struct ui_worker *w, struct ui_run_state *rs);
/* Jobs queued or running. */
bool ui_worker_busy(struct ui_worker *w);
/* Blocks until the queue is empty and nothing runs, at most timeout_ms;
 * true when idle. */
bool ui_worker_wait_idle(struct ui_worker *w, int timeout_ms);

/* Setting names the worker understands (for completion and :set). */
extern const char *const ui_worker_settings[];

#endif
