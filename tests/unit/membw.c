// SPDX-License-Identifier: GPL-2.0
/*
 * Copy and read bandwidth over a thread pool: memcpy of a buffer, and a
 * load-bound pass that sums it, each the best of a few runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "membw.h"

struct job {
	uint8_t		*dst;
	const uint8_t	*src;
	size_t		len;
	unsigned int	parts;
	uint64_t	sink[64];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void copy_task(void *arg, unsigned int task, unsigned int thread)
{
	struct job *j = arg;
	size_t per = j->len / j->parts, off = (size_t)task * per;

	(void)thread;
	memcpy(j->dst + off, j->src + off, task == j->parts - 1 ? j->len - off : per);
}

/* Read every byte: 8 independent 64-bit sums, so the loop is load-bound. */
static void read_task(void *arg, unsigned int task, unsigned int thread)
{
	struct job *j = arg;
	size_t per = j->len / j->parts / 64 * 64, off = (size_t)task * per, n, i;
	const uint64_t *p = (const uint64_t *)(const void *)(j->src + off);
	uint64_t s[8] = { 0 };

	(void)thread;
	n = (task == j->parts - 1 ? j->len - off : per) / 64;
	for (i = 0; i < n; i++, p += 8) {
		s[0] += p[0];
		s[1] += p[1];
		s[2] += p[2];
		s[3] += p[3];
		s[4] += p[4];
		s[5] += p[5];
		s[6] += p[6];
		s[7] += p[7];
	}
	j->sink[task % 64] = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
}

static double measure(struct threadpool *pool, threadpool_fn fn, size_t len, unsigned int parts,
		      int reps)
{
	struct job j = { .len = len, .parts = parts ? parts : 1 };
	uint8_t *buf = malloc(2 * len);
	double best = 1e30, t;
	int r;

	if (!buf) {
		fprintf(stderr, "membw: out of memory for %zu bytes\n", 2 * len);
		exit(1);
	}
	memset(buf, 1, 2 * len);	/* pages touched before timing */
	j.src = buf;
	j.dst = buf + len;
	for (r = 0; r < reps; r++) {
		t = now();
		threadpool_run(pool, j.parts, fn, &j);
		t = now() - t;
		if (t < best)
			best = t;
	}
	free(buf);
	return (double)len / best / 1e9;
}

/**
 * membw_copy() - memcpy bandwidth: bytes copied per second, in GB/s
 * @pool:	the threads to use (NULL: the caller alone)
 * @len:	bytes to copy
 * @parts:	pieces the copy is split into
 * @reps:	runs; the best counts
 *
 * Return: GB/s.
 */
double membw_copy(struct threadpool *pool, size_t len, unsigned int parts, int reps)
{
	return measure(pool, copy_task, len, parts, reps);
}

/**
 * membw_read() - read bandwidth: bytes loaded per second, in GB/s
 * @pool:	the threads to use (NULL: the caller alone)
 * @len:	bytes to read
 * @parts:	pieces the pass is split into
 * @reps:	runs; the best counts
 *
 * Return: GB/s.
 */
double membw_read(struct threadpool *pool, size_t len, unsigned int parts, int reps)
{
	return measure(pool, read_task, len, parts, reps);
}
