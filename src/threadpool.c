/*
 * threadpool.c — persistent workers with a spinning dispatch and join.
 *
 * DESIGN
 *   One 64-bit atomic word `job` publishes work: generation (high 32 bits),
 *   an ANY flag, a CLOSED flag and a count of joined workers (low bits).  The
 *   submitter stores fn/arg, resets the join counters, then stores the new
 *   generation (release).  Idle workers spin on the word (pause instruction)
 *   and remember the last generation they saw.
 *
 *   threadpool_run ("all" jobs): every worker runs the job once and bumps
 *   n_done; the submitter runs share 0 and waits for n_done == nth - 1.
 *
 *   threadpool_run_any ("any" jobs): a worker joins by a CAS that bumps the
 *   count while the generation is unchanged and CLOSED is clear; when the
 *   submitter has run its own call (which takes work from the job's shared
 *   counter until none is left) it sets CLOSED, reads how many joined, and
 *   waits for that many to leave.  A worker that is descheduled or still
 *   asleep simply misses the job: on a busy machine the submitter does the
 *   work alone instead of waiting a time slice for every one of the few
 *   hundred jobs of a decode step.
 *
 *   Sleeping: a worker that sees no new job for `spin_ns` takes the mutex,
 *   counts itself in `n_sleeping`, re-checks the word and waits on `cv`.  The
 *   submitter publishes the job and then reads `n_sleeping` (both seq_cst):
 *   either it sees the sleeper and broadcasts under the mutex, or the sleeper
 *   sees the new generation before waiting.  The join works the same way in
 *   the other direction: the submitter spins a while, then sets
 *   `submitter_waiting` and sleeps on `done_cv`; a worker bumps its done
 *   counter, then reads `submitter_waiting` and signals under the mutex.
 *
 *   Barrier (inside "all" jobs only): a counter and a phase; the last thread
 *   to arrive resets the counter and bumps the phase, the others spin on it,
 *   yielding the CPU once the wait gets long.
 */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "threadpool.h"

#define TP_CACHELINE 64
#define TP_SPIN_NS_DEFAULT 2000000 /* idle workers spin 2 ms, then sleep */
#define TP_YIELD_AFTER 4096        /* pause iterations before a barrier wait starts yielding */
#define TP_YIELD_IDLE_NS 50000     /* an idle worker spins 50 us, then yields while it spins */
#define TP_DONE_SPIN 16384         /* pause iterations (~0.1-0.5 ms) the submitter spins before sleeping */

#define JOB_ANY (1ull << 31)
#define JOB_CLOSED (1ull << 30)
#define JOB_COUNT_MASK (JOB_CLOSED - 1)
#define JOB_GEN(j) ((uint32_t)((j) >> 32))

struct tp_worker {
	struct threadpool *tp;
	pthread_t thread;
	int ith;
};

struct threadpool {
	int n_threads;
	struct tp_worker *workers; /* (n_threads - 1) */

	/* written by the submitter before it publishes the job */
	threadpool_fn fn;
	void *arg;

	_Alignas(TP_CACHELINE) atomic_ullong job;  /* gen << 32 | ANY | CLOSED | joined */
	_Alignas(TP_CACHELINE) atomic_int n_done;  /* workers done with the current job */
	_Alignas(TP_CACHELINE) atomic_int bar_count;
	atomic_uint bar_phase;
	_Alignas(TP_CACHELINE) atomic_int n_sleeping;
	atomic_bool submitter_waiting;
	atomic_bool stop;
	atomic_llong spin_ns;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* workers wait here for a job */
	pthread_cond_t done_cv; /* the submitter waits here for workers to finish */
};

// ---- spinning helpers

static inline void tp_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

// ---- workers

/* Marks this worker done with a job; wakes the submitter if it sleeps. */
static void tp_done(struct threadpool *tp)
{
	atomic_fetch_add(&tp->n_done, 1); /* seq_cst: before the submitter_waiting load */
	if (atomic_load(&tp->submitter_waiting)) {
		pthread_mutex_lock(&tp->mu);
		pthread_cond_signal(&tp->done_cv);
		pthread_mutex_unlock(&tp->mu);
	}
}

/* Joins "any" job j (generation g): true when this worker may run it. */
static bool tp_join(struct threadpool *tp, unsigned long long j)
{
	const uint32_t g = JOB_GEN(j);
	while (JOB_GEN(j) == g && !(j & JOB_CLOSED)) {
		if (atomic_compare_exchange_weak(&tp->job, &j, j + 1))
			return true;
	}
	return false;
}

static void *tp_worker_main(void *p)
{
	struct tp_worker *w = p;
	struct threadpool *tp = w->tp;
	uint32_t seen = 0;

	for (;;) {
		unsigned long long j;
		uint32_t iters = 0;
		int64_t t0 = 0;
		while (JOB_GEN(j = atomic_load_explicit(&tp->job, memory_order_acquire)) == seen &&
		       !atomic_load_explicit(&tp->stop, memory_order_relaxed)) {
			tp_pause();
			if ((++iters & 255) != 0)
				continue;
			int64_t now = dt_now_ns();
			if (t0 == 0) {
				t0 = now;
				continue;
			}
			if (now - t0 < atomic_load_explicit(&tp->spin_ns, memory_order_relaxed)) {
				/* past the gaps between the jobs of one token (microseconds),
				 * give way to other threads on this CPU while waiting */
				if (now - t0 > TP_YIELD_IDLE_NS)
					sched_yield();
				continue;
			}
			pthread_mutex_lock(&tp->mu);
			atomic_fetch_add(&tp->n_sleeping, 1);
			while (JOB_GEN(atomic_load(&tp->job)) == seen && !atomic_load(&tp->stop))
				pthread_cond_wait(&tp->cv, &tp->mu);
			atomic_fetch_sub(&tp->n_sleeping, 1);
			pthread_mutex_unlock(&tp->mu);
			t0 = 0;
			iters = 0;
		}
		if (atomic_load(&tp->stop))
			return NULL;
		seen = JOB_GEN(j);
		if (j & JOB_ANY) {
			if (!tp_join(tp, j))
				continue; /* closed or replaced: the others did the work */
			tp->fn(tp->arg, w->ith, tp->n_threads);
			tp_done(tp);
		} else {
			tp->fn(tp->arg, w->ith, tp->n_threads);
			tp_done(tp);
		}
	}
}

// ---- public API

struct threadpool *threadpool_new(int n_threads)
{
	DT_ASSERT(n_threads >= 1);
	struct threadpool *tp = aligned_alloc(TP_CACHELINE, (sizeof(*tp) + TP_CACHELINE - 1) /
						       TP_CACHELINE * TP_CACHELINE);
	if (!tp) {
		fprintf(stderr, "deftree: out of memory\n");
		exit(1);
	}
	*tp = (struct threadpool){ .n_threads = n_threads };
	atomic_init(&tp->job, 0);
	atomic_init(&tp->n_done, 0);
	atomic_init(&tp->bar_count, 0);
	atomic_init(&tp->bar_phase, 0);
	atomic_init(&tp->n_sleeping, 0);
	atomic_init(&tp->submitter_waiting, false);
	atomic_init(&tp->stop, false);
	atomic_init(&tp->spin_ns, TP_SPIN_NS_DEFAULT);
	pthread_mutex_init(&tp->mu, NULL);
	pthread_cond_init(&tp->cv, NULL);
	pthread_cond_init(&tp->done_cv, NULL);
	tp->workers = xcalloc((size_t)n_threads, sizeof(*tp->workers));
	for (int i = 1; i < n_threads; i++) {
		struct tp_worker *w = &tp->workers[i - 1];
		w->tp = tp;
		w->ith = i;
		if (pthread_create(&w->thread, NULL, tp_worker_main, w) != 0) {
			fprintf(stderr, "deftree: cannot start worker thread %d\n", i);
			exit(1);
		}
	}
	return tp;
}

void threadpool_free(struct threadpool *tp)
{
	if (!tp)
		return;
	pthread_mutex_lock(&tp->mu);
	atomic_store(&tp->stop, true);
	pthread_cond_broadcast(&tp->cv);
	pthread_mutex_unlock(&tp->mu);
	for (int i = 1; i < tp->n_threads; i++)
		pthread_join(tp->workers[i - 1].thread, NULL);
	pthread_mutex_destroy(&tp->mu);
	pthread_cond_destroy(&tp->cv);
	pthread_cond_destroy(&tp->done_cv);
	free(tp->workers);
	free(tp);
}

int threadpool_n_threads(const struct threadpool *tp)
{
	return tp ? tp->n_threads : 1;
}

void threadpool_set_spin_ns(struct threadpool *tp, int64_t ns)
{
	if (tp)
		atomic_store(&tp->spin_ns, ns < 0 ? 0 : ns);
}

/* Publishes a job and wakes sleeping workers. */
static void tp_publish(struct threadpool *tp, threadpool_fn fn, void *arg, bool any)
{
	tp->fn = fn;
	tp->arg = arg;
	atomic_store_explicit(&tp->n_done, 0, memory_order_relaxed);
	const unsigned long long gen = JOB_GEN(atomic_load_explicit(&tp->job, memory_order_relaxed)) + 1u;
	atomic_store(&tp->job, (gen << 32) | (any ? JOB_ANY : 0)); /* seq_cst: before n_sleeping */
	if (atomic_load(&tp->n_sleeping) > 0) {
		pthread_mutex_lock(&tp->mu);
		pthread_cond_broadcast(&tp->cv);
		pthread_mutex_unlock(&tp->mu);
	}
}

/* Waits until n_done == want: spins, then sleeps on done_cv. */
static void tp_wait_done(struct threadpool *tp, int want)
{
	for (uint32_t iters = 0; iters < TP_DONE_SPIN; iters++) {
		if (atomic_load_explicit(&tp->n_done, memory_order_acquire) == want)
			return;
		tp_pause();
	}
	pthread_mutex_lock(&tp->mu);
	atomic_store(&tp->submitter_waiting, true);
	while (atomic_load(&tp->n_done) != want)
		pthread_cond_wait(&tp->done_cv, &tp->mu);
	atomic_store(&tp->submitter_waiting, false);
	pthread_mutex_unlock(&tp->mu);
}

void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *arg)
{
	if (!tp || tp->n_threads == 1) {
		fn(arg, 0, 1);
		return;
	}
	tp_publish(tp, fn, arg, false);
	fn(arg, 0, tp->n_threads);
	tp_wait_done(tp, tp->n_threads - 1);
}

void threadpool_run_any(struct threadpool *tp, threadpool_fn fn, void *arg)
{
	if (!tp || tp->n_threads == 1) {
		fn(arg, 0, 1);
		return;
	}
	tp_publish(tp, fn, arg, true);
	fn(arg, 0, tp->n_threads);
	const unsigned long long j = atomic_fetch_or(&tp->job, JOB_CLOSED);
	const int joined = (int)(j & JOB_COUNT_MASK);
	if (joined > 0)
		tp_wait_done(tp, joined);
}

void threadpool_barrier(struct threadpool *tp)
{
	if (!tp || tp->n_threads == 1)
		return;
	unsigned phase = atomic_load_explicit(&tp->bar_phase, memory_order_acquire);
	if (atomic_fetch_add(&tp->bar_count, 1) == tp->n_threads - 1) {
		atomic_store_explicit(&tp->bar_count, 0, memory_order_relaxed);
		atomic_fetch_add(&tp->bar_phase, 1);
		return;
	}
	uint32_t iters = 0;
	while (atomic_load_explicit(&tp->bar_phase, memory_order_acquire) == phase) {
		if (++iters < TP_YIELD_AFTER)
			tp_pause();
		else
			sched_yield();
	}
}
