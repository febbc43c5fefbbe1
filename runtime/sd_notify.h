/* SPDX-License-Identifier: GPL-2.0 */
/*
 * systemd's readiness protocol (Type=notify) for llmqd: READY=1 once it
 * serves, STOPPING=1 when it begins to shut down.
 */
#ifndef LLMQD_SD_NOTIFY_H
#define LLMQD_SD_NOTIFY_H

__attribute__((format(printf, 1, 2)))
int sd_notifyf(const char *fmt, ...);

#endif /* LLMQD_SD_NOTIFY_H */
