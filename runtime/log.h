/* SPDX-License-Identifier: GPL-2.0 */
/*
 * llmqd's logging: stderr in the foreground, syslog once daemonised.
 */
#ifndef LLMQD_LOG_H
#define LLMQD_LOG_H

#include <syslog.h>

extern int log_verbose;

void log_to_syslog(void);
void llmqd_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pr_err(...)	llmqd_log(LOG_ERR, __VA_ARGS__)
#define pr_warn(...)	llmqd_log(LOG_WARNING, __VA_ARGS__)
#define pr_notice(...)	llmqd_log(LOG_NOTICE, __VA_ARGS__)
#define pr_info(...)	llmqd_log(LOG_INFO, __VA_ARGS__)
#define pr_debug(...)	llmqd_log(LOG_DEBUG, __VA_ARGS__)

#endif /* LLMQD_LOG_H */
