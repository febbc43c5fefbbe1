/* SPDX-License-Identifier: MIT */
/*
 * Unix-socket helpers of the userspace transport, shared by libllmq and its
 * tools (not installed).
 */
#ifndef LLMQ_UDS_H
#define LLMQ_UDS_H

#include <sys/types.h>

int llmq_uds_connect(const char *path);
ssize_t llmq_uds_send(int fd, const void *buf, size_t len, const int *fds, int nr_fds);

#endif /* LLMQ_UDS_H */
