/*
 * threadpool.h — a persistent pool of worker threads for the CPU backend.
 *
 * One decode step runs a few hundred small parallel jobs (one per weight
 * matrix product), so dispatch and join must cost about a microsecond: idle
 * workers spin on a generation counter for a short while, then sleep on a
 * condition variable so that an idle program does not burn CPU.  The calling
 * thread is worker 0 and takes part in every job.
 *
 *   struct threadpool *tp = threadpool_new(4);
 *   threadpool_run(tp, fn, arg);   // fn(arg, ith, nth) on ith = 0..nth-1, returns when all did
 *   threadpool_free(tp);
 *
 * threadpool_run_any(tp, fn, arg) is the same for jobs that hand out their
 * work through an atomic counter: workers that are not running right now are
 * not waited for.  Inside a threadpool_run() job, threadpool_barrier() waits
 * for every worker of the job.
 * Jobs must not call threadpool_run() on the same pool.  One thread at a time
 * may submit jobs to a pool.
 */
#ifndef DT_THREADPOOL_H
#define DT_THREADPOOL_H

#include <stdint.h>

struct threadpool;

typedef void (*threadpool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 counts the caller; n_threads - 1 workers are started. */
struct threadpool *threadpool_new(int n_threads);
void threadpool_free(struct threadpool *tp);
int threadpool_n_threads(const struct threadpool *tp);

/* Runs fn(arg, ith, nth) on every thread of the pool (the caller is ith 0)
 * and returns when all have returned. tp may be NULL: runs fn(arg, 0, 1). */
void threadpool_run(struct threadpool *tp, threadpool_fn fn, void *arg);

/* Runs fn(arg, ith, nth) on the caller (ith 0) and on whichever workers pick
 * the job up before the caller's own call returns; returns when every call
 * that started has returned.  nth is the pool size (an upper bound on the
 * callers, each ith unique), so fn must take its work from a shared counter
 * until none is left, never from a fixed ith/nth slice, and must not use
 * threadpool_barrier().  On a busy machine a descheduled worker then costs
 * nothing instead of a time slice per job. */
void threadpool_run_any(struct threadpool *tp, threadpool_fn fn, void *arg);

/* Inside a threadpool_run() job: returns when every thread has called it. */
void threadpool_barrier(struct threadpool *tp);

/* How long idle workers spin before sleeping (nanoseconds, default 2 ms). */
void threadpool_set_spin_ns(struct threadpool *tp, int64_t ns);

#endif
