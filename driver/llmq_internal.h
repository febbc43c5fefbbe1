/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the two halves of llmq.ko tell each other: main.c (/dev/llmq, the
 * rings, the runtime's attachment) and genl.c (the generic netlink family
 * "llmq", which relays control requests to that runtime).
 */
#ifndef _LLMQ_INTERNAL_H
#define _LLMQ_INTERNAL_H

#include <linux/types.h>

/* main.c */
bool llmq_runtime_is_current(void);

/* genl.c */
int llmq_genl_init(void);
void llmq_genl_exit(void);
void llmq_genl_runtime_detached(void);

#endif /* _LLMQ_INTERNAL_H */
