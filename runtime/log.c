// SPDX-License-Identifier: GPL-2.0
/*
 * llmqd's logging: one line per message; notices (asked-for output such
 * as the metrics dump), warnings and errors always, info with -v, debug
 * with -vv.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "log.h"

int log_verbose;
static bool use_syslog;

void log_to_syslog(void)
{
	openlog("llmqd", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

void llmqd_log(int prio, const char *fmt, ...)
{
	va_list ap;

	if (prio == LOG_INFO && log_verbose < 1)
		return;
	if (prio == LOG_DEBUG && log_verbose < 2)
		return;
	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		fputs("llmqd: ", stderr);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
