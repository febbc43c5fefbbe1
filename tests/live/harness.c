// SPDX-License-Identifier: GPL-2.0
/*
 * Live-test harness: run build/bin/llmqd in the foreground on a private
 * socket, wait until it answers, stop it and collect its exit status; run a
 * command and capture its output.
 *
 * With LLMQ_TEST_TRANSPORT=kernel in the environment (the QEMU guest of
 * make vm-check) the daemons serve /dev/llmq instead, and their clients
 * reach them there: the same suite over the kernel transport.  The device
 * takes one runtime at a time, so a test must stop one daemon before it
 * starts the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

char harness_bin_dir[PATH_MAX + 16];
bool harness_kernel;

#define RUNTIME_ATTACHED	"/sys/class/misc/llmq/stats/runtime_attached"

/* Every daemon started, so a failed test cannot leave one running. */
static struct daemon *started[32];
static int nr_started;

static void kill_started(void)
{
	int i;

	for (i = 0; i < nr_started; i++)
		if (started[i]->pid > 0)
			daemon_stop(started[i], SIGKILL);
}

/* Binaries live in ../bin relative to the test binary. */
void harness_init(const char *argv0)
{
	char path[PATH_MAX], *slash;

	if (!realpath(argv0, path))
		snprintf(path, sizeof(path), "%s", argv0);
	slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	snprintf(harness_bin_dir, sizeof(harness_bin_dir), "%s/../bin", path);
	slash = getenv("LLMQ_TEST_TRANSPORT");
	harness_kernel = slash && !strcmp(slash, "kernel");
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_started);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * A runtime killed a moment ago may still be detaching from /dev/llmq (its
 * io_uring winds down after the process is gone): wait for the device.
 */
static int device_free(void)
{
	char buf[16] = "";
	int i, fd;

	for (i = 0; i < 500; i++) {
		fd = open(RUNTIME_ATTACHED, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
		if (buf[0] == '0')
			return 0;
		usleep(10000);
	}
	return -EBUSY;
}

/**
 * daemon_ring() - where a client of @d sets its ring up
 * @d:	a started daemon
 *
 * Return: the socket of a userspace-transport daemon, or NULL (libllmq's
 * choice, the device) for one serving /dev/llmq.
 */
const char *daemon_ring(const struct daemon *d)
{
	return d->kernel ? NULL : d->sock;
}

/**
 * daemon_start_nofile() - start llmqd with a descriptor limit of its own
 * @d:		filled
 * @name:	names its socket
 * @args:	more llmqd flags, NULL-terminated, or NULL
 * @nofile:	its RLIMIT_NOFILE, soft and hard, set before it runs; 0 = ours
 *
 * Return: 0 once it answers STATS, or -errno.
 */
int daemon_start_nofile(struct daemon *d, const char *name, const char *const *args,
			unsigned int nofile)
{
	const char *argv[32];
	char bin[PATH_MAX + 32];
	struct llmq_stats st;
	int i = 0, n = 0, err;

	if (harness_kernel) {
		err = device_free();
		if (err)
			return err;
	}
	d->kernel = harness_kernel;
	snprintf(bin, sizeof(bin), "%s/llmqd", harness_bin_dir);
	snprintf(d->sock, sizeof(d->sock), "/tmp/llmq-test-%d-%s.sock", (int)getpid(), name);
	argv[i++] = bin;
	argv[i++] = "--foreground";
	argv[i++] = "--socket";
	argv[i++] = d->sock;
	argv[i++] = "--transport";
	argv[i++] = harness_kernel ? "kernel" : "shm";
	for (n = 0; args && args[n]; n++)
		if (!strcmp(args[n], "--engine") || !strcmp(args[n], "--model"))
			break;
	if (!args || !args[n]) {	/* the tests' default engine is the null one */
		argv[i++] = "--engine";
		argv[i++] = "null";
	}
	n = 0;
	while (args && args[n] && i < 30)
		argv[i++] = args[n++];
	argv[i] = NULL;
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0) {
		struct rlimit rl = { .rlim_cur = nofile, .rlim_max = nofile };

		if (nofile && setrlimit(RLIMIT_NOFILE, &rl))
			_exit(126);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	if (nr_started < (int)(sizeof(started) / sizeof(started[0])))
		started[nr_started++] = d;
	for (i = 0; i < 500; i++) {
		if (llmq_get_stats(d->sock, &st) == 0)
			return 0;
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			return -ECHILD;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

int daemon_start(struct daemon *d, const char *name, const char *const *args)
{
	return daemon_start_nofile(d, name, args, 0);
}

/* Returns the exit status (0..255), or -1 if it did not exit by itself. */
int daemon_stop(struct daemon *d, int sig)
{
	int st, i;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, sig);
	for (i = 0; i < 1000; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		usleep(10000);
	}
	kill(d->pid, SIGKILL);
	waitpid(d->pid, &st, 0);
	d->pid = 0;
	return -1;
}

/* Append what @fd has to @buf; false at end of file. */
static bool drain(int fd, char *buf, size_t len, size_t *have)
{
	char junk[256];
	ssize_t n;

	if (!buf || *have + 1 >= len)
		return read(fd, junk, sizeof(junk)) > 0;
	n = read(fd, buf + *have, len - *have - 1);
	if (n <= 0)
		return false;
	*have += (size_t)n;
	buf[*have] = '\0';
	return true;
}

/* Run argv, capturing stdout and stderr; returns the exit status. */
int run_cmd(const char *const *argv, char *out, size_t out_len, char *err, size_t err_len)
{
	struct pollfd pfd[2];
	size_t have[2] = { 0, 0 };
	char *bufs[2] = { out, err };
	size_t lens[2] = { out_len, err_len };
	int po[2], pe[2], st, i, open_fds = 2;
	pid_t pid;

	if (pipe(po) || pipe(pe))
		return -1;
	if (out)
		out[0] = '\0';
	if (err)
		err[0] = '\0';
	pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	pfd[0] = (struct pollfd){ .fd = po[0], .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = pe[0], .events = POLLIN };
	while (open_fds && poll(pfd, 2, 20000) > 0) {
		for (i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			if (!drain(pfd[i].fd, bufs[i], lens[i], &have[i])) {
				pfd[i].fd = -1;
				open_fds--;
			}
		}
	}
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int stats_wait(const char *sock, int (*cond)(const struct llmq_stats *st, void *arg), void *arg,
	       int timeout_ms, struct llmq_stats *st)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	int err;

	do {
		err = llmq_get_stats(sock, st);
		if (!err && cond(st, arg))
			return 0;
		usleep(5000);
	} while (now_ns() < end);
	return err ? err : -ETIMEDOUT;
}
