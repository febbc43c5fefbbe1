// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's test runner: one child per test, a timeout per test, and
 * cmocka's output format.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/**
 * vm_insmod() - load the module under test
 * @ko:		its path
 * @params:	module parameters, "" for none
 *
 * Return: 0, or -1 with errno set.
 */
int vm_insmod(const char *ko, const char *params)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -1;
	err = (int)syscall(SYS_finit_module, fd, params, 0);
	close(fd);
	return err ? -1 : 0;
}

/**
 * vm_nothing_left() - after a test: no ring and no runtime left behind
 * @name:	the test, for the message
 * @ms:		how long teardown (io_uring's, a killed process's) may take
 *
 * Return: 0, or -1 having said what was left.
 */
int vm_nothing_left(const char *name, unsigned int ms)
{
	if (stat_wait("rings", 0, ms) || stat_wait("runtime_attached", 0, ms)) {
		fprintf(stderr, "%s: left rings (%ld) or a runtime (%ld) behind\n", name,
			stat_read("rings"), stat_read("runtime_attached"));
		return -1;
	}
	return 0;
}

/**
 * stat_read() - one of the module's counters
 * @name:	its file under STATS
 *
 * Return: its value, or -1 if it cannot be read.
 */
long stat_read(const char *name)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), STATS "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/**
 * stat_wait() - wait for a counter to read a value
 * @name:	its file under STATS
 * @want:	the value
 * @ms:		how long to wait at most
 *
 * Return: 0, or -1 if it did not read @want within @ms.
 */
int stat_wait(const char *name, long want, unsigned int ms)
{
	while (stat_read(name) != want) {
		if (!ms--)
			return -1;
		usleep(1000);
	}
	return 0;
}

static int run_one(const struct vm_test *t)
{
	struct timespec t0, t1;
	pid_t pid, w;
	int status = 0;
	unsigned int waited_ms = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		setpgid(0, 0);
		_exit(t->fn() ? 1 : 0);
	}
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (waited_ms >= t->timeout_s * 1000) {
			fprintf(stderr, "%s: timed out after %u s\n", t->name, t->timeout_s);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(10000);
		waited_ms += 10;
	}
	/* Whatever the test forked and left behind goes too. */
	kill(-pid, SIGKILL);
	while (waitpid(-pid, NULL, 0) > 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: killed by signal %d\n", t->name, WTERMSIG(status));
		return -1;
	}
	fprintf(stderr, "%s: %.2f s\n", t->name,
		(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return WEXITSTATUS(status) ? -1 : 0;
}

int vm_run_tests(const char *suite, const struct vm_test *t, unsigned int n,
		 int (*after)(const char *name))
{
	unsigned int i, failed = 0;
	char *bad = calloc(n, 1);

	printf("[==========] %s: Running %u test(s).\n", suite, n);
	for (i = 0; i < n; i++) {
		int err;

		printf("[ RUN      ] %s\n", t[i].name);
		err = run_one(&t[i]);
		/* After a failure too: the next test must not inherit its mess. */
		if (after && after(t[i].name))
			err = -1;
		if (err) {
			printf("[  FAILED  ] %s\n", t[i].name);
			failed++;
			if (bad)
				bad[i] = 1;
		} else {
			printf("[       OK ] %s\n", t[i].name);
		}
		fflush(stdout);
	}
	printf("[==========] %s: %u test(s) run.\n", suite, n);
	printf("[  PASSED  ] %u test(s).\n", n - failed);
	if (failed) {
		printf("[  FAILED  ] %u test(s), listed below:\n", failed);
		for (i = 0; i < n; i++)
			if (bad && bad[i])
				printf("[  FAILED  ] %s\n", t[i].name);
	}
	fflush(stdout);
	free(bad);
	return (int)failed;
}
