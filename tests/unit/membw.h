/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Memory bandwidth measured in the same run as a benchmark, for the
 * benchmarks' "against the bandwidth floor" figures.
 */
#ifndef LLMQ_MEMBW_H
#define LLMQ_MEMBW_H

#include <stddef.h>

#include "cpu/threadpool.h"

double membw_copy(struct threadpool *pool, size_t len, unsigned int parts, int reps);
double membw_read(struct threadpool *pool, size_t len, unsigned int parts, int reps);

#endif /* LLMQ_MEMBW_H */
