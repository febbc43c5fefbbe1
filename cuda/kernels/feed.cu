// SPDX-License-Identifier: GPL-2.0
/*
 * Token feed: a decode row whose token the previous step drew on the device
 * takes it from there, so the host can plan and queue a step before it
 * knows the tokens of the one before (run-ahead).
 */
#include "common.cuh"

static __global__ void feed_kernel(int32_t *ids, const int32_t *feed, const int32_t *tok,
				   uint32_t n_rows)
{
	const uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;

	/* A draw that was not a token (the host's): the host fed none; keep the id. */
	if (t < n_rows && feed[t] >= 0 && tok[feed[t]] >= 0)
		ids[t] = tok[feed[t]];
}

/**
 * cuk_feed() - ids[t] = tok[feed[t]] where feed[t] >= 0
 * @s:		the stream
 * @ids:	the step's n_rows token ids, some to be filled in
 * @feed:	per row, the previous step's out row whose drawn token it
 *		takes, or -1 to keep its id
 * @tok:	the previous step's drawn tokens (cuk_sample()'s @out), each
 *		a token (the host fed only rows drawn for certain)
 * @n_rows:	rows
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_feed(cudaStream_t s, int32_t *ids, const int32_t *feed,
				const int32_t *tok, uint32_t n_rows)
{
	if (!n_rows)
		return cudaSuccess;
	CUK_LAUNCH(feed_kernel, cuk_blocks(n_rows, 256), 256, s)(ids, feed, tok, n_rows);
	return cudaGetLastError();
}
