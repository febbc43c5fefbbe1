// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU backend's thread pool: workers created once, woken per parallel
 * loop by a generation counter (a short spin, then a futex sleep), tasks
 * handed out by an atomic counter, the caller working beside them and
 * returning when the last worker has checked in.
 *
 * Memory ordering: the caller writes the job, then increments @gen (seq_cst,
 * so release); a worker that observes the new generation (acquire) sees the
 * job. Each worker decrements @pending when it has finished (release); the
 * caller returns when it reads 0 (acquire), so it sees every task's writes.
 * A worker touches the job only between those two points, so the next job
 * cannot overwrite fields a straggler is still reading.
 *
 * Sleep/wake: a sleeper raises @sleepers (or @caller_waits) before its
 * FUTEX_WAIT; the waker changes the futex word before it reads that count.
 * Both are seq_cst, so either the waker sees the sleeper and wakes it, or the
 * sleeper's FUTEX_WAIT finds the word changed and returns at once.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "threadpool.h"

/* How long an idle thread spins before it sleeps: covers the gap between two
 * kernels of a forward pass, not the gap between two steps. */
#define SPIN_NS		50000

struct threadpool {
	unsigned int		n_threads;	/* including the caller */
	pthread_t		*threads;	/* n_threads - 1 workers */

	/* the job, valid while a generation runs */
	threadpool_fn		fn;
	void			*arg;
	unsigned int		n_tasks;

	_Alignas(64) atomic_uint next;		/* next task to hand out */
	_Alignas(64) atomic_uint gen;		/* futex: bumped per job */
	atomic_uint		sleepers;	/* workers in FUTEX_WAIT on gen */
	atomic_bool		stop;
	_Alignas(64) atomic_uint pending;	/* futex: workers not done */
	atomic_uint		caller_waits;
};

struct worker_start {
	struct threadpool	*pool;
	unsigned int		index;
};

static void futex_wait(atomic_uint *word, unsigned int val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Wait until *word != val: spin for SPIN_NS, then sleep on the futex.
 * @sleepers is raised around the sleep so the waker knows to call FUTEX_WAKE.
 * Return: the new value.
 */
static unsigned int wait_change(atomic_uint *word, unsigned int val, atomic_uint *sleepers)
{
	uint64_t deadline = 0;
	unsigned int v, i;

	for (i = 0;; i++) {
		v = atomic_load_explicit(word, memory_order_acquire);
		if (v != val)
			return v;
		cpu_relax();
		if (i % 64)
			continue;
		if (!deadline) {
			deadline = now_ns() + SPIN_NS;
		} else if (now_ns() > deadline) {
			atomic_fetch_add(sleepers, 1);
			while ((v = atomic_load(word)) == val)
				futex_wait(word, val);
			atomic_fetch_sub(sleepers, 1);
			return v;
		}
	}
}

static void run_tasks(struct threadpool *pool, unsigned int thread)
{
	unsigned int t;

	while ((t = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed)) <
	       pool->n_tasks)
		pool->fn(pool->arg, t, thread);
}

static void *worker(void *p)
{
	struct worker_start *ws = p;
	struct threadpool *pool = ws->pool;
	unsigned int index = ws->index, seen = 0;

	free(ws);
	for (;;) {
		seen = wait_change(&pool->gen, seen, &pool->sleepers);
		if (atomic_load(&pool->stop))
			return NULL;
		run_tasks(pool, index);
		if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_waits))
			futex_wake(&pool->pending);
	}
}

/**
 * threadpool_default_threads() - how many threads a pool gets by default
 *
 * Return: the CPUs this process may run on (its affinity mask, which is the
 * online cores unless restricted with taskset or cgroups), at least 1.
 */
unsigned int threadpool_default_threads(void)
{
	cpu_set_t set;
	long n;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
		return (unsigned int)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned int)n : 1;
}

/**
 * threadpool_create() - start a pool
 * @n_threads:	threads including the caller of threadpool_run(); 0 for
 *		threadpool_default_threads(); 1 makes a pool that runs every
 *		task on the caller
 *
 * Return: the pool, or NULL with errno set.
 */
struct threadpool *threadpool_create(unsigned int n_threads)
{
	struct threadpool *pool;
	sigset_t all, old;
	unsigned int i;
	int err;

	if (!n_threads)
		n_threads = threadpool_default_threads();
	if (n_threads > 1024) {
		errno = EINVAL;
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->threads = calloc(n_threads, sizeof(*pool->threads));
	if (!pool->threads) {
		free(pool);
		return NULL;
	}
	pool->n_threads = 1;
	/*
	 * Workers inherit a mask blocking every signal, so SIGTERM and SIGINT
	 * always reach the thread that reads them from its signalfd, whether
	 * the pool was made before or after that thread blocked them.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 1; i < n_threads; i++) {
		struct worker_start *ws = malloc(sizeof(*ws));

		if (!ws) {
			err = ENOMEM;
			goto fail;
		}
		ws->pool = pool;
		ws->index = i;
		err = pthread_create(&pool->threads[i - 1], NULL, worker, ws);
		if (err) {
			free(ws);
			goto fail;
		}
		pool->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pool;
fail:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	threadpool_destroy(pool);
	errno = err;
	return NULL;
}

/**
 * threadpool_destroy() - stop and join the workers, free the pool
 * @pool:	the pool, or NULL; no threadpool_run() may be in progress
 */
void threadpool_destroy(struct threadpool *pool)
{
	unsigned int i;

	if (!pool)
		return;
	atomic_store(&pool->stop, true);
	atomic_fetch_add(&pool->gen, 1);
	futex_wake(&pool->gen);
	for (i = 1; i < pool->n_threads; i++)
		pthread_join(pool->threads[i - 1], NULL);
	free(pool->threads);
	free(pool);
}

/**
 * threadpool_size() - threads that run tasks, the caller included
 * @pool:	the pool, or NULL (which runs tasks on the caller alone)
 *
 * Return: at least 1.
 */
unsigned int threadpool_size(const struct threadpool *pool)
{
	return pool ? pool->n_threads : 1;
}

/**
 * threadpool_run() - run @fn for every task index, in parallel
 * @pool:	the pool, or NULL to run every task on the caller
 * @n_tasks:	how many tasks; each index in [0, @n_tasks) runs exactly once
 * @fn:		the task function
 * @arg:	passed to @fn
 *
 * Tasks are handed out one at a time, in increasing order, to whichever
 * thread asks next; the caller runs tasks too, as thread 0. Returns when
 * every task has finished, with their memory effects visible to the caller.
 * One thread calls threadpool_run() on a pool at a time, and @fn must not
 * call it on the same pool.
 */
void threadpool_run(struct threadpool *pool, unsigned int n_tasks, threadpool_fn fn, void *arg)
{
	unsigned int t, p;

	if (!pool || pool->n_threads == 1 || n_tasks <= 1) {
		for (t = 0; t < n_tasks; t++)
			fn(arg, t, 0);
		return;
	}
	pool->fn = fn;
	pool->arg = arg;
	pool->n_tasks = n_tasks;
	atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
	atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
	atomic_fetch_add(&pool->gen, 1);		/* publishes the job */
	if (atomic_load(&pool->sleepers))
		futex_wake(&pool->gen);
	run_tasks(pool, 0);
	p = atomic_load_explicit(&pool->pending, memory_order_acquire);
	if (p) {
		/* wait_change() on pending: wakes once it moves from p; loop to 0 */
		while ((p = atomic_load_explicit(&pool->pending, memory_order_acquire)))
			wait_change(&pool->pending, p, &pool->caller_waits);
	}
}
