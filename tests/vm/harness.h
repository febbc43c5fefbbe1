/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A tiny test harness for the QEMU guest, where no cmocka library can be
 * linked statically: every test runs in its own child process, checks print
 * where they failed, and the summary lines are cmocka's, so that
 * scripts/run-tests.sh counts them.
 */
#ifndef LLMQ_VM_HARNESS_H
#define LLMQ_VM_HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct vm_test {
	const char	*name;
	int		(*fn)(void);
	unsigned int	timeout_s;
};

#define VM_TEST(fn, t)	{ #fn, fn, t }

/* Fail the current test unless @cond holds. */
#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: %s: failed (errno %d: %s)\n", \
				__FILE__, __LINE__, #cond, errno,	\
				strerror(errno));			\
			return -1;					\
		}							\
	} while (0)

/* Fail the current test unless @expr returns -1 with errno @e. */
#define CHECK_ERR(expr, e)						\
	do {								\
		long __r;						\
		errno = 0;						\
		__r = (long)(expr);					\
		if (__r != -1 || errno != (e)) {			\
			fprintf(stderr, "%s:%d: %s: got %ld errno %d (%s), " \
				"want -1 errno %d (%s)\n", __FILE__, __LINE__, \
				#expr, __r, errno, strerror(errno), (e), \
				strerror(e));				\
			return -1;					\
		}							\
	} while (0)

/*
 * Run @n tests, each in a child with a timeout, calling @after (may be NULL)
 * in the parent after each one: it fails the test by returning non-zero.
 * Prints cmocka's summary.  Returns the number of failures.
 */
/* The module's counters, one file each. */
#define STATS		"/sys/class/misc/llmq/stats/"

int vm_run_tests(const char *suite, const struct vm_test *t, unsigned int n,
		 int (*after)(const char *name));
int vm_insmod(const char *ko, const char *params);
int vm_nothing_left(const char *name, unsigned int ms);
long stat_read(const char *name);
int stat_wait(const char *name, long want, unsigned int ms);

#endif /* LLMQ_VM_HARNESS_H */
