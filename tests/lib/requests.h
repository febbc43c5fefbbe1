/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Requests as the tests make them, on the host (tests/live) and in the
 * QEMU guest (tests/vm) alike: libllmq only, no test framework.
 */
#ifndef LLMQ_TEST_REQUESTS_H
#define LLMQ_TEST_REQUESTS_H

#include <stdint.h>

#include "libllmq.h"

int test_submit_gen(struct llmq_ring *r, const char *prompt, uint32_t max_tokens,
		    uint32_t flags, uint64_t ud);
int test_generate_n(const char *sock, int n, uint32_t max_tokens, int gap_ms);

#endif /* LLMQ_TEST_REQUESTS_H */
