/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A persistent pool of worker threads that runs one parallel loop at a time,
 * with the calling thread taking part.
 */
#ifndef LLMQD_CPU_THREADPOOL_H
#define LLMQD_CPU_THREADPOOL_H

/**
 * typedef threadpool_fn - one task of a parallel loop
 * @arg:	the argument given to threadpool_run()
 * @task:	this task's index, 0 <= @task < n_tasks
 * @thread:	the running thread's index, 0 (the caller) <= @thread < pool size;
 *		use it to pick per-thread scratch space
 */
typedef void (*threadpool_fn)(void *arg, unsigned int task, unsigned int thread);

struct threadpool;

struct threadpool *threadpool_create(unsigned int n_threads);
void threadpool_destroy(struct threadpool *pool);
unsigned int threadpool_size(const struct threadpool *pool);
void threadpool_run(struct threadpool *pool, unsigned int n_tasks, threadpool_fn fn, void *arg);
unsigned int threadpool_default_threads(void);

#endif /* LLMQD_CPU_THREADPOOL_H */
