/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who may change llmqd through its admin socket: the peer's connect-time
 * credentials and its capabilities now, read without the pid-reuse and
 * exec races of a plain /proc lookup (runtime/peercred.c says how).
 */
#ifndef LLMQD_PEERCRED_H
#define LLMQD_PEERCRED_H

#include <stdbool.h>
#include <sys/types.h>

bool peer_may_change(int fd, pid_t pid, uid_t uid);

#endif /* LLMQD_PEERCRED_H */
