// SPDX-License-Identifier: GPL-2.0
/*
 * Greedy sampling on the device: the argmax of each row of logits, so that
 * only one id per row need cross to the host.
 */
#include <math.h>

#include "common.cuh"

/* Is (v, i) a better pick than (bv, bi)? Larger, or as large and earlier. */
static __device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi)
{
	return v > bv || (v == bv && i < bi);
}

/*
 * One block per row: each thread keeps the best of its strided elements,
 * then a tree over shared memory. NaN never wins (every comparison with it
 * is false); a row of -inf gives 0, as the host's argmax does.
 */
static __global__ void argmax_kernel(int32_t *out, const float *x, uint32_t n)
{
	__shared__ float sv[CUK_ROW_THREADS];
	__shared__ int32_t si[CUK_ROW_THREADS];
	const float *row = x + (uint64_t)blockIdx.x * n;
	float bv = -INFINITY;
	int32_t bi = 0x7fffffff;
	uint32_t i, stride;

	for (i = threadIdx.x; i < n; i += blockDim.x)
		if (better(row[i], (int32_t)i, bv, bi))
			bv = row[i], bi = (int32_t)i;
	sv[threadIdx.x] = bv;
	si[threadIdx.x] = bi;
	__syncthreads();
	for (stride = blockDim.x / 2; stride > 0; stride /= 2) {
		if (threadIdx.x < stride &&
		    better(sv[threadIdx.x + stride], si[threadIdx.x + stride], sv[threadIdx.x],
			   si[threadIdx.x])) {
			sv[threadIdx.x] = sv[threadIdx.x + stride];
			si[threadIdx.x] = si[threadIdx.x + stride];
		}
		__syncthreads();
	}
	/* A row of -inf or NaN only: the first element, like the host. */
	if (!threadIdx.x)
		out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}

/**
 * cuk_argmax() - out[t] = the first index of the largest element of row t
 * @s:		the stream
 * @out:	@n_rows ids
 * @x:		[n_rows][n] FP32
 * @n_rows:	rows
 * @n:		elements per row, >= 1
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_argmax(cudaStream_t s, int32_t *out, const float *x,
				  uint32_t n_rows, uint32_t n)
{
	if (!n_rows)
		return cudaSuccess;
	CUK_LAUNCH(argmax_kernel, n_rows, CUK_ROW_THREADS, s)(out, x, n);
	return cudaGetLastError();
}

/*
 * Sampling with temperature, top-k and top-p, one block per row, in three
 * stages that are each simple rather than fast:
 *
 * 1. the k-th largest logit by radix select: logits map to unsigned keys
 *    that order as the floats do; four passes of 8 bits, each a histogram
 *    (in shared memory) of the next digit among the rows still matching the
 *    prefix found so far, pick the digit where the count from the top
 *    reaches k;
 * 2. the candidates, every logit above that key, then those equal to it
 *    (ties) as many as fit, gathered into shared memory and sorted by
 *    (logit descending, id ascending) with a bitonic sort; the first k are
 *    kept;
 * 3. thread 0 walks them in order: weights e^((l - l_max) / T), top-p cut
 *    where the running sum first reaches p of the total, then the first
 *    candidate whose running sum exceeds u times the kept sum.
 */
#define SAMPLE_SLOTS	(2 * CUK_SAMPLE_MAX_K)

/* Unsigned keys that order as the floats: negatives flipped whole, others get the sign bit. */
static __device__ __forceinline__ uint32_t order_key(float f)
{
	uint32_t b = __float_as_uint(f);

	return b & 0x80000000u ? ~b : b | 0x80000000u;
}

static __global__ void __launch_bounds__(CUK_ROW_THREADS) sample_kernel(int32_t *out,
									const float *x, uint32_t n,
									const struct cuk_sample_row *rows)
{
	__shared__ uint32_t hist[256];
	__shared__ uint32_t prefix, want, n_cand;
	__shared__ float cv[SAMPLE_SLOTS];
	__shared__ int32_t ci[SAMPLE_SLOTS];
	const float *row = x + (uint64_t)blockIdx.x * n;
	const struct cuk_sample_row r = rows[blockIdx.x];
	const uint32_t k = r.top_k && r.top_k < CUK_SAMPLE_MAX_K && r.top_k < n ? r.top_k :
			   (n < CUK_SAMPLE_MAX_K ? n : CUK_SAMPLE_MAX_K);
	uint32_t i, pass, size, stride;

	if (!threadIdx.x) {
		prefix = 0;
		want = k;	/* how many of the largest are still to be placed */
		n_cand = 0;
	}
	/* 1. Radix select: digits from the top, 8 bits a pass. */
	for (pass = 0; pass < 4; pass++) {
		const uint32_t shift = 24 - 8 * pass;
		/* Keys that agree with prefix above this digit. */
		const uint32_t mask = pass ? 0xffffffffu << (32 - 8 * pass) : 0;

		for (i = threadIdx.x; i < 256; i += blockDim.x)
			hist[i] = 0;
		__syncthreads();
		for (i = threadIdx.x; i < n; i += blockDim.x) {
			uint32_t key = order_key(row[i]);

			if ((key & mask) == (prefix & mask))
				atomicAdd(&hist[(key >> shift) & 0xff], 1u);
		}
		__syncthreads();
		if (!threadIdx.x) {
			uint32_t d = 256, above = 0;

			/* The digit at which the count from the top reaches want. */
			while (d-- > 0) {
				if (above + hist[d] >= want)
					break;
				above += hist[d];
			}
			prefix |= d << shift;
			want -= above;
		}
		__syncthreads();
	}
	/*
	 * 2. prefix is now the k-th largest key: gather the larger ones (fewer
	 * than k, so all fit; the test only guards the slots), then after them
	 * the equal ones, as many as fit. One pass for both would let ties
	 * that win the race for a slot push out larger logits when more than
	 * SAMPLE_SLOTS - k tie.
	 */
	for (i = threadIdx.x; i < n; i += blockDim.x) {
		if (order_key(row[i]) > prefix) {
			uint32_t at = atomicAdd(&n_cand, 1u);

			if (at < SAMPLE_SLOTS) {
				cv[at] = row[i];
				ci[at] = (int32_t)i;
			}
		}
	}
	__syncthreads();
	for (i = threadIdx.x; i < n; i += blockDim.x) {
		if (order_key(row[i]) == prefix) {
			uint32_t at = atomicAdd(&n_cand, 1u);

			if (at < SAMPLE_SLOTS) {
				cv[at] = row[i];
				ci[at] = (int32_t)i;
			}
		}
	}
	__syncthreads();
	/* Pad to the power of two the sort needs with entries that sort last. */
	size = min(n_cand, (uint32_t)SAMPLE_SLOTS);
	for (stride = 1; stride < size; stride *= 2)
		;
	for (i = size + threadIdx.x; i < stride; i += blockDim.x) {
		cv[i] = -INFINITY;
		ci[i] = 0x7fffffff;
	}
	size = stride;
	__syncthreads();
	/* Bitonic sort, descending by logit, ascending by id among equals. */
	for (uint32_t len = 2; len <= size; len *= 2) {
		for (uint32_t half = len / 2; half > 0; half /= 2) {
			for (i = threadIdx.x; i < size; i += blockDim.x) {
				uint32_t o = i ^ half;

				if (o > i) {
					bool first = better(cv[i], ci[i], cv[o], ci[o]);
					bool down = !(i & len);	/* this run sorts best first */

					if (first != down) {
						float tv = cv[i];
						int32_t ti = ci[i];

						cv[i] = cv[o];
						ci[i] = ci[o];
						cv[o] = tv;
						ci[o] = ti;
					}
				}
			}
			__syncthreads();
		}
	}
	/* 3. Weights, top-p, the draw: serial, in sorted order. */
	if (!threadIdx.x) {
		const float inv_t = 1.0f / r.temperature;
		float total = 0.0f, kept = 0.0f, target;
		uint32_t keep = 0, c;

		for (c = 0; c < k; c++)
			total += expf((cv[c] - cv[0]) * inv_t);
		for (c = 0; c < k; c++) {
			kept += expf((cv[c] - cv[0]) * inv_t);
			keep = c + 1;
			if (kept >= r.top_p * total)
				break;
		}
		target = r.u * kept;
		kept = 0.0f;
		out[blockIdx.x] = ci[keep - 1];
		for (c = 0; c < keep; c++) {
			kept += expf((cv[c] - cv[0]) * inv_t);
			if (kept > target) {
				out[blockIdx.x] = ci[c];
				break;
			}
		}
	}
}

/**
 * cuk_sample() - draw one token per row: temperature, top-k, top-p
 * @s:		the stream
 * @out:	@n_rows ids
 * @x:		[n_rows][n] FP32 logits, finite
 * @rows:	per row its &struct cuk_sample_row (device memory)
 * @n_rows:	rows
 * @n:		logits per row, >= 1
 *
 * Keeps the top_k largest logits (ties to the lowest id; 0 or more than
 * CUK_SAMPLE_MAX_K means CUK_SAMPLE_MAX_K), weighs them e^(l / T), keeps
 * the smallest prefix whose weight reaches top_p of theirs, and picks by u:
 * the first whose running weight exceeds u times the prefix's. Greedy rows
 * (temperature 0) are cuk_argmax()'s. When more logits tie with the k-th
 * than 2 x CUK_SAMPLE_MAX_K less the larger ones, which of the tied ones
 * take part is not fixed; the larger ones always do.
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_sample(cudaStream_t s, int32_t *out, const float *x,
				  const struct cuk_sample_row *rows, uint32_t n_rows, uint32_t n)
{
	if (!n_rows)
		return cudaSuccess;
	if (!n)
		return cudaErrorInvalidValue;
	CUK_LAUNCH(sample_kernel, n_rows, CUK_ROW_THREADS, s)(out, x, n, rows);
	return cudaGetLastError();
}
