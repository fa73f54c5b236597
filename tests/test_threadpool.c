/*
 * test_threadpool.c — the worker pool: every thread runs every job once,
 * barriers order the phases of a job, thousands of back-to-back jobs (the
 * decode pattern) lose no work, workers that went to sleep wake up, and
 * run_any jobs do each work item exactly once whoever joins them.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tap.h"
#include "threadpool.h"

struct count_job {
	atomic_int calls;
	atomic_int seen[8];
	atomic_int nth_seen;
};

static void count_fn(void *arg, int ith, int nth)
{
	struct count_job *j = arg;
	atomic_fetch_add(&j->calls, 1);
	atomic_fetch_add(&j->seen[ith], 1);
	atomic_store(&j->nth_seen, nth);
}

/* phase p: thread ith writes slot[p][ith]; after the barrier it checks that
 * every thread wrote slot[p] (a missing barrier shows as a zero). */
struct barrier_job {
	struct threadpool *tp;
	int slot[16][8];
	atomic_int errors;
};

static void barrier_fn(void *arg, int ith, int nth)
{
	struct barrier_job *j = arg;
	for (int p = 0; p < 16; p++) {
		j->slot[p][ith] = p + 1;
		threadpool_barrier(j->tp);
		for (int t = 0; t < nth; t++)
			if (j->slot[p][t] != p + 1)
				atomic_fetch_add(&j->errors, 1);
		threadpool_barrier(j->tp);
	}
}

struct sum_job {
	const int *x;
	int n;
	long long part[8];
};

static void sum_fn(void *arg, int ith, int nth)
{
	struct sum_job *j = arg;
	long long s = 0;
	for (int i = ith; i < j->n; i += nth)
		s += j->x[i];
	j->part[ith] = s;
}

/* an "any" job: items handed out by a counter, each must run exactly once */
struct any_job {
	atomic_int next;
	int n;
	atomic_int *hits; /* (n) */
	atomic_int callers;
};

static void any_fn(void *arg, int ith, int nth)
{
	struct any_job *j = arg;
	atomic_fetch_add(&j->callers, 1);
	for (;;) {
		int i = atomic_fetch_add(&j->next, 1);
		if (i >= j->n)
			break;
		atomic_fetch_add(&j->hits[i], 1);
	}
}

static int run_any_rounds(struct threadpool *tp, int rounds, int n, int *max_callers)
{
	atomic_int *hits = xcalloc((size_t)n, sizeof(atomic_int));
	int wrong = 0;
	*max_callers = 0;
	for (int r = 0; r < rounds; r++) {
		struct any_job j = { .n = n, .hits = hits };
		atomic_init(&j.next, 0);
		atomic_init(&j.callers, 0);
		for (int i = 0; i < n; i++)
			atomic_init(&hits[i], 0);
		threadpool_run_any(tp, any_fn, &j);
		for (int i = 0; i < n; i++)
			wrong += atomic_load(&hits[i]) != 1;
		*max_callers = DT_MAX(*max_callers, atomic_load(&j.callers));
	}
	free(hits);
	return wrong;
}

int main(void)
{
	tap_plan_lazy();
	for (int nth = 1; nth <= 4; nth++) {
		struct threadpool *tp = threadpool_new(nth);
		ok(threadpool_n_threads(tp) == nth, "pool of %d reports %d threads", nth,
		   threadpool_n_threads(tp));

		struct count_job cj;
		memset(&cj, 0, sizeof(cj));
		threadpool_run(tp, count_fn, &cj);
		bool each_once = true;
		for (int i = 0; i < nth; i++)
			each_once &= atomic_load(&cj.seen[i]) == 1;
		ok(atomic_load(&cj.calls) == nth && each_once && atomic_load(&cj.nth_seen) == nth,
		   "%d threads: one job runs once on each thread", nth);

		struct barrier_job bj;
		memset(&bj, 0, sizeof(bj));
		bj.tp = tp;
		threadpool_run(tp, barrier_fn, &bj);
		ok(atomic_load(&bj.errors) == 0, "%d threads: 32 barriers in a job order its phases (%d errors)",
		   nth, atomic_load(&bj.errors));

		/* the decode pattern: many short jobs back to back */
		/* fewer when threads outnumber cores: each join may wait for a time slice */
		enum { N = 1000 };
		const int JOBS = nth <= dt_ncpu() ? 5000 : 500;
		static int x[N];
		long long want = 0;
		for (int i = 0; i < N; i++)
			want += (x[i] = i * 7 % 13);
		int wrong = 0;
		for (int r = 0; r < JOBS; r++) {
			struct sum_job sj = { .x = x, .n = N };
			threadpool_run(tp, sum_fn, &sj);
			long long s = 0;
			for (int t = 0; t < nth; t++)
				s += sj.part[t];
			wrong += s != want;
		}
		ok(wrong == 0, "%d threads: %d back-to-back jobs all complete (%d wrong sums)", nth, JOBS, wrong);

		/* sleeping workers wake up: spin 0 sends them to the condvar at once */
		threadpool_set_spin_ns(tp, 0);
		wrong = 0;
		for (int r = 0; r < 200; r++) {
			memset(&cj, 0, sizeof(cj));
			threadpool_run(tp, count_fn, &cj);
			wrong += atomic_load(&cj.calls) != nth;
			if (r % 50 == 0) {
				/* give workers time to reach the condvar: poll a clock, no sleep() */
				const int64_t t0 = dt_now_ns();
				while (dt_now_ns() - t0 < 2000000)
					;
			}
		}
		ok(wrong == 0, "%d threads: workers asleep on the condvar wake for each job (%d missed)", nth,
		   wrong);
		threadpool_set_spin_ns(tp, 2000000);

		/* "any" jobs: every item once, whoever joins; alternating with "all" jobs */
		int max_callers;
		wrong = run_any_rounds(tp, JOBS, 4000, &max_callers);
		ok(wrong == 0 && max_callers >= 1 && max_callers <= nth,
		   "%d threads: %d run_any jobs do each item exactly once (%d wrong, up to %d callers)",
		   nth, JOBS, wrong, max_callers);
		wrong = 0;
		for (int r = 0; r < 300; r++) {
			int mc;
			wrong += run_any_rounds(tp, 1, 64, &mc);
			memset(&cj, 0, sizeof(cj));
			threadpool_run(tp, count_fn, &cj);
			wrong += atomic_load(&cj.calls) != nth;
		}
		ok(wrong == 0, "%d threads: run_any and run jobs interleave (%d wrong)", nth, wrong);
		threadpool_set_spin_ns(tp, 0);
		wrong = run_any_rounds(tp, 300, 256, &max_callers);
		ok(wrong == 0, "%d threads: run_any with sleeping workers (%d wrong)", nth, wrong);
		threadpool_free(tp);
	}
	threadpool_run(NULL, count_fn, &(struct count_job){ 0 });
	ok(1, "a NULL pool runs the job inline");
	threadpool_free(NULL);
	return tap_done();
}
