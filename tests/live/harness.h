/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Starting and stopping real llmqd instances for the live tests.
 */
#ifndef LLMQ_TEST_HARNESS_H
#define LLMQ_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "libllmq.h"

/**
 * struct daemon - one llmqd a test started
 * @pid:	its pid, 0 once stopped
 * @sock:	its socket: stats and the userspace transport
 * @kernel:	it serves /dev/llmq (harness_kernel); clients reach it there
 */
struct daemon {
	pid_t	pid;
	char	sock[128];
	bool	kernel;
};

extern char harness_bin_dir[];
extern bool harness_kernel;

void harness_init(const char *argv0);
int daemon_start(struct daemon *d, const char *name, const char *const *args);
int daemon_start_nofile(struct daemon *d, const char *name, const char *const *args,
			unsigned int nofile);
int daemon_stop(struct daemon *d, int sig);
const char *daemon_ring(const struct daemon *d);
int run_cmd(const char *const *argv, char *out, size_t out_len, char *err, size_t err_len);
uint64_t now_ns(void);
int stats_wait(const char *sock, int (*cond)(const struct llmq_stats *st, void *arg), void *arg,
	       int timeout_ms, struct llmq_stats *st);

#endif /* LLMQ_TEST_HARNESS_H */
