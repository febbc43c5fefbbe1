/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Validation of one SQE copied out of a client ring.
 */
#ifndef LLMQD_SQE_CHECK_H
#define LLMQD_SQE_CHECK_H

#include <stdint.h>
#include <linux/llmq.h>

/**
 * struct sqe_limits - what the runtime accepts
 * @arena_size:		the client's arena, from the runtime's private copy
 * @max_prompt_bytes:	longest prompt
 * @max_tokens:		largest max_tokens
 */
struct sqe_limits {
	uint32_t arena_size;
	uint32_t max_prompt_bytes;
	uint32_t max_tokens;
};

int sqe_check(const struct llmq_sqe *sqe, const struct sqe_limits *lim);
int utf8_check(const uint8_t *s, uint32_t len);

#endif /* LLMQD_SQE_CHECK_H */
