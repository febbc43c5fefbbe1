// SPDX-License-Identifier: GPL-2.0
/*
 * Requests as the tests make them, on the host and in the QEMU guest.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "requests.h"

/**
 * test_submit_gen() - queue one GENERATE of @prompt and submit it
 * @r:		the ring
 * @prompt:	its text
 * @max_tokens:	how many tokens at most
 * @flags:	LLMQ_SQE_* flags
 * @ud:		its user_data
 *
 * Return: 0, -EAGAIN with the SQ full, or libllmq's error.
 */
int test_submit_gen(struct llmq_ring *r, const char *prompt, uint32_t max_tokens,
		    uint32_t flags, uint64_t ud)
{
	struct llmq_sampling sp;
	struct llmq_sqe *sqe = llmq_get_sqe(r);
	int err;

	if (!sqe)
		return -EAGAIN;
	llmq_sampling_init(&sp);
	sp.max_tokens = max_tokens;
	sp.flags = flags;
	err = llmq_prep_generate(r, sqe, prompt, strlen(prompt), &sp, ud);
	if (err)
		return err;
	err = llmq_submit(r);
	return err < 0 ? err : 0;
}

/**
 * test_generate_n() - @n requests of @max_tokens each from one new ring
 * @sock:	the runtime's socket, or NULL for libllmq's choice (/dev/llmq)
 * @n:		how many, at most 8
 * @max_tokens:	tokens each, past end-of-sequence
 * @gap_ms:	milliseconds between two submissions
 *
 * Return: the tokens of all of them, or the first request's error, or
 * -ETIMEDOUT when a completion takes over 20 s.
 */
int test_generate_n(const char *sock, int n, uint32_t max_tokens, int gap_ms)
{
	struct llmq_params p = { .sq_entries = 8, .cq_entries = 256, .arena_size = 65536 };
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	int i, done = 0, sum = 0, res = 0, e;

	e = llmq_queue_init(&r, sock, &p);
	if (e)
		return e;
	for (i = 0; i < n; i++) {
		if (test_submit_gen(&r, "hello", max_tokens, LLMQ_SQE_IGNORE_EOS, (uint64_t)i + 1)) {
			res = -EPROTO;
			goto out;
		}
		if (gap_ms)
			usleep((useconds_t)gap_ms * 1000);
	}
	while (done < n) {
		if (llmq_wait_cqe_timeout(&r, &cqe, 20000)) {
			res = -ETIMEDOUT;
			goto out;
		}
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			done++;
			if (cqe->res < 0 && !res)
				res = cqe->res;
			else if (cqe->res > 0)
				sum += cqe->res;
		}
		llmq_cqe_seen(&r, cqe);
	}
	if (!res)
		res = sum;
out:
	llmq_queue_exit(&r);
	return res;
}
