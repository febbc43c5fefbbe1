/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The settings that can change while llmqd runs: one table of names and
 * bounds for llmqd's flags, its admin socket and llmqctl, so the three
 * cannot disagree.
 */
#ifndef LLMQD_ADMIN_KEYS_H
#define LLMQD_ADMIN_KEYS_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/llmq.h>

#define LLMQ_BATCH_TIMEOUT_MS_MAX	60000
#define LLMQ_MAX_BATCH_SIZE_MAX		4096
#define LLMQ_MAX_NUM_SEQS_MAX		4096
#define LLMQ_MAX_BATCHED_TOKENS_MAX	65536
#define LLMQ_MAX_QUEUED_MAX		(1 << 20)

/*
 * struct admin_key - a live setting: its attribute, name, the bounds of
 * llmqd's flag, and whether it may only go up to a ceiling fixed at start
 * (the step's buffers were sized for it) and the flag that sets that
 */
struct admin_key {
	int		attr;
	const char	*name;
	int64_t		lo, hi;
	bool		capped;
	const char	*limit_flag;
};

static const struct admin_key admin_keys[] = {
	{ LLMQ_CFG_BATCH_TIMEOUT_MS, "batch_timeout_ms", 0, LLMQ_BATCH_TIMEOUT_MS_MAX, false, NULL },
	{ LLMQ_CFG_MAX_BATCH_SIZE, "max_batch_size", 1, LLMQ_MAX_BATCH_SIZE_MAX, false, NULL },
	{ LLMQ_CFG_MAX_NUM_SEQS, "max_num_seqs", 1, LLMQ_MAX_NUM_SEQS_MAX, true,
	  "max-num-seqs-limit" },
	{ LLMQ_CFG_MAX_NUM_BATCHED_TOKENS, "max_num_batched_tokens", 1,
	  LLMQ_MAX_BATCHED_TOKENS_MAX, true, "max-num-batched-tokens-limit" },
	{ LLMQ_CFG_MAX_QUEUED_REQUESTS, "max_queued_requests", 1, LLMQ_MAX_QUEUED_MAX, false, NULL },
};

#define ADMIN_NR_KEYS	(sizeof(admin_keys) / sizeof(admin_keys[0]))

#endif /* LLMQD_ADMIN_KEYS_H */
