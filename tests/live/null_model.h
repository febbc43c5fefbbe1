/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The null engine's output, computed independently of llmqd: the tests'
 * oracle for "every request got exactly its own tokens", whatever batching,
 * paging, prefix sharing or preemption happened on the way.
 *
 * What runtime/engine.c and runtime/backend_null.c promise: a prompt
 * encodes as BOS (id 1) and then one byte token (id 3 + byte) per byte of
 * the prompt with U+2581 in front and for every space; the token after
 * position p is word 259 + mix(sum over i <= p of mix(id_i << 32 | i) *
 * (i + 1)) % 64.
 */
#ifndef LLMQ_TEST_NULL_MODEL_H
#define LLMQ_TEST_NULL_MODEL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NULL_FIRST_WORD	259
#define NULL_N_WORDS	64

static inline uint64_t null_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static inline uint32_t null_push(uint64_t *h, uint32_t id, uint32_t pos)
{
	*h += null_mix((uint64_t)id << 32 | pos) * (pos + 1);
	return NULL_FIRST_WORD + (uint32_t)(null_mix(*h) % NULL_N_WORDS);
}

/* The prompt's token count. */
static inline uint32_t null_prompt_tokens(const char *prompt)
{
	uint32_t n = 1 + (*prompt ? 3 : 0), i;

	for (i = 0; prompt[i]; i++)
		n += prompt[i] == ' ' ? 3 : 1;
	return n;
}

/* The first @n tokens the null engine generates for @prompt, into @out. */
static inline void null_expect(const char *prompt, uint32_t n, uint32_t *out)
{
	static const uint8_t space[3] = { 0xe2, 0x96, 0x81 };
	uint32_t pos = 0, next = 0, i, k;
	uint64_t h = 0;

	next = null_push(&h, 1, pos++);
	/* an empty prompt is BOS alone: no text, no space prefix */
	for (k = 0; k < 3 && *prompt; k++)
		next = null_push(&h, 3 + space[k], pos++);
	for (i = 0; prompt[i]; i++) {
		if (prompt[i] == ' ')
			for (k = 0; k < 3; k++)
				next = null_push(&h, 3 + space[k], pos++);
		else
			next = null_push(&h, 3 + (uint8_t)prompt[i], pos++);
	}
	for (i = 0; i < n; i++) {
		out[i] = next;
		next = null_push(&h, next, pos++);
	}
}

#endif /* LLMQ_TEST_NULL_MODEL_H */
