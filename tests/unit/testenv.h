/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a test binary finds the tools it runs: $(O)/tests/test_X looks in
 * $(O)/bin, unless $LLMQ_BIN_DIR already says otherwise.
 */
#ifndef LLMQ_TESTENV_H
#define LLMQ_TESTENV_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int testenv_bin_dir(const char *argv0)
{
	char path[PATH_MAX], dir[PATH_MAX + 8], *slash;

	if (getenv("LLMQ_BIN_DIR"))
		return 0;
	if (!realpath(argv0, path))
		return -1;
	slash = strrchr(path, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(dir, sizeof(dir), "%s/../bin", path);
	return setenv("LLMQ_BIN_DIR", dir, 1);
}

/* The first index of the largest element: greedy sampling, as the references do. */
static inline uint32_t argmax(const float *x, size_t n)
{
	uint32_t best = 0;
	size_t i;

	for (i = 1; i < n; i++)
		if (x[i] > x[best])
			best = (uint32_t)i;
	return best;
}

#endif /* LLMQ_TESTENV_H */
