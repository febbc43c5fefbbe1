/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The null backend: the backend interface with a real paged cache and no
 * model; see runtime/backend_null.c.
 */
#ifndef LLMQD_BACKEND_NULL_H
#define LLMQD_BACKEND_NULL_H

#include <stdio.h>

#include "backend.h"

/**
 * struct backend_null_params - what backend_null_create() is asked for
 * @n_vocab:	floats per row of logits
 * @first_word:	first token id the backend emits
 * @n_words:	how many consecutive ids it emits
 * @n_blocks:	KV blocks
 * @block_size:	tokens per block
 * @max_tokens:	most tokens per step
 * @max_context: longest sequence
 * @delay_ns:	wall time a step takes
 */
struct backend_null_params {
	uint32_t	n_vocab;
	uint32_t	first_word;
	uint32_t	n_words;
	uint32_t	n_blocks;
	uint32_t	block_size;
	uint32_t	max_tokens;
	uint32_t	max_context;
	uint64_t	delay_ns;
};

struct backend *backend_null_create(const struct backend_null_params *p, char *err,
				    size_t errlen);

#endif /* LLMQD_BACKEND_NULL_H */
