/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a test binary finds the tools it runs: $(O)/tests/test_X looks in
 * $(O)/bin, unless $LLMQ_BIN_DIR already says otherwise.
 */
#ifndef LLMQ_TESTENV_H
#define LLMQ_TESTENV_H

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

/* log(sum(e^x)) over a row, in double: the references' log-softmax is x - this. */
static inline double testenv_lse(const float *x, size_t n)
{
	double m = -INFINITY, sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (x[i] > m)
			m = x[i];
	for (i = 0; i < n; i++)
		sum += exp((double)x[i] - m);
	return m + log(sum);
}

/* The first 64 KiB of file @path, NUL-terminated, malloc'ed; NULL if unreadable. */
static inline char *testenv_slurp(const char *path)
{
	char *buf = calloc(1, 65536);
	FILE *f = fopen(path, "r");

	if (!buf || !f) {
		free(buf);
		if (f)
			fclose(f);
		return NULL;
	}
	if (fread(buf, 1, 65535, f) == 0 && ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/*
 * Run @cmd in a shell; its stdout and stderr (the first 64 KiB of each)
 * into malloc'ed strings, by way of two files in @dir.  Returns its exit
 * status, or -1 if it did not exit or its output could not be read.
 */
static inline int testenv_sh(const char *dir, const char *cmd, char **out, char **err)
{
	char o[1200], e[1200], full[4000];
	int rc;

	snprintf(o, sizeof(o), "%s/cli.out", dir);
	snprintf(e, sizeof(e), "%s/cli.err", dir);
	snprintf(full, sizeof(full), "%s >%s 2>%s", cmd, o, e);
	rc = system(full);
	*out = testenv_slurp(o);
	*err = testenv_slurp(e);
	if (!*out || !*err)
		return -1;
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* How many lines @s has (newlines). */
static inline size_t testenv_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#endif /* LLMQ_TESTENV_H */
