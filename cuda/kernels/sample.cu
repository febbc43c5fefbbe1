// SPDX-License-Identifier: GPL-2.0
/*
 * Sampling on the device: the argmax of each row of logits (greedy), or a
 * draw with temperature, top-k and top-p, so that only an id and its
 * log-probability per row need cross to the host.
 */
#include <math.h>

#include "common.cuh"

/* Is (v, i) a better pick than (bv, bi)? Larger, or as large and earlier. */
static __device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi)
{
	return v > bv || (v == bv && i < bi);
}

/*
 * Drawing the next token, one block per row, in stages that are each
 * simple rather than fast:
 *
 * 0. the row's statistics in one pass: its argmax (the greedy pick) and
 *    its log-sum-exp, so that every pick comes with its log-probability;
 * 1. top_k 0 (or >= n) with top_p 1, the whole vocabulary: each thread
 *    sums the weights e^((l - l_max) / T) of a contiguous chunk, thread 0
 *    finds the chunk where u times the total falls and walks it;
 * 2. otherwise the k-th largest logit by radix select: logits map to
 *    unsigned keys that order as the floats do; four passes of 8 bits,
 *    each a histogram (in shared memory) of the next digit among the keys
 *    still matching the prefix found so far, pick the digit where the count
 *    from the top reaches k;
 * 3. the candidates, every logit above that key, then those equal to it
 *    (ties) as many as fit, gathered into shared memory and sorted by
 *    (logit descending, id ascending) with a bitonic sort; the first k are
 *    kept;
 * 4. thread 0 walks them in order: top-p cut where the running weight
 *    first reaches p of the total, then the first candidate whose running
 *    weight exceeds u times the kept weight. With no top_k over more than
 *    CUK_SAMPLE_MAX_K logits, the total is the whole row's, and a nucleus
 *    that reaches past the candidates goes back to the host.
 *
 * Every pass reads the row in a fixed order and every sum has a fixed
 * shape, so the same logits and draw give the same token on every run.
 */
#define SAMPLE_SLOTS	(2 * CUK_SAMPLE_MAX_K)

/* Unsigned keys that order as the floats: negatives flipped whole, others get the sign bit. */
static __device__ __forceinline__ uint32_t order_key(float f)
{
	uint32_t b = __float_as_uint(f);

	return b & 0x80000000u ? ~b : b | 0x80000000u;
}

/* Merge a running (max, sum of e^(x - max)) pair into another; -inf max is empty. */
static __device__ __forceinline__ void lse_merge(float *m, float *s, float m2, float s2)
{
	float nm;

	if (m2 == -INFINITY)
		return;
	if (*m == -INFINITY) {
		*m = m2;
		*s = s2;
		return;
	}
	nm = fmaxf(*m, m2);
	*s = *s * expf(*m - nm) + s2 * expf(m2 - nm);
	*m = nm;
}

/*
 * Stage 0: the argmax into *@pick and the row's log-sum-exp into *@lse, in
 * every thread. One strided pass with a running (max, sum), then a tree.
 */
static __device__ void row_stats(const float *row, uint32_t n, int32_t *pick, float *lse)
{
	__shared__ float sm[CUK_ROW_THREADS], ss[CUK_ROW_THREADS], bv_s[CUK_ROW_THREADS];
	__shared__ int32_t bi_s[CUK_ROW_THREADS];
	float m = -INFINITY, s = 0.0f, bv = -INFINITY;
	int32_t bi = 0x7fffffff;
	uint32_t i, stride, t = threadIdx.x;

	for (i = t; i < n; i += blockDim.x) {
		float v = row[i];

		if (better(v, (int32_t)i, bv, bi))
			bv = v, bi = (int32_t)i;
		if (!(v > -INFINITY))
			continue;
		lse_merge(&m, &s, v, 1.0f);
	}
	sm[t] = m;
	ss[t] = s;
	bv_s[t] = bv;
	bi_s[t] = bi;
	__syncthreads();
	for (stride = blockDim.x / 2; stride > 0; stride /= 2) {
		if (t < stride) {
			lse_merge(&sm[t], &ss[t], sm[t + stride], ss[t + stride]);
			if (better(bv_s[t + stride], bi_s[t + stride], bv_s[t], bi_s[t])) {
				bv_s[t] = bv_s[t + stride];
				bi_s[t] = bi_s[t + stride];
			}
		}
		__syncthreads();
	}
	/* A row of -inf or NaN only: the first element, like the host. */
	*pick = bi_s[0] == 0x7fffffff ? 0 : bi_s[0];
	*lse = sm[0] + logf(ss[0]);
	__syncthreads();
}

/*
 * Stage 1: the whole row, weights e^((x - @mx) * @inv_t). Returns the pick
 * in every thread.
 */
static __device__ int32_t sample_all(const float *row, uint32_t n, float mx, float inv_t,
				     float u)
{
	__shared__ float part[CUK_ROW_THREADS];
	__shared__ int32_t pick;
	const uint32_t chunk = (n + blockDim.x - 1) / blockDim.x;
	const uint32_t lo = min(n, threadIdx.x * chunk), hi = min(n, lo + chunk);
	float w = 0.0f;
	uint32_t i;

	for (i = lo; i < hi; i++)
		w += expf((row[i] - mx) * inv_t);
	part[threadIdx.x] = w;
	__syncthreads();
	if (!threadIdx.x) {
		float total = 0.0f, target, acc = 0.0f;
		uint32_t t, last = 0;

		for (t = 0; t < blockDim.x; t++)
			total += part[t];
		target = u * total;
		pick = -1;
		for (t = 0; t < blockDim.x && pick < 0; t++) {
			if (!(part[t] > 0.0f))
				continue;
			if (acc + part[t] <= target) {
				acc += part[t];
				continue;
			}
			for (i = min(n, t * chunk); i < min(n, t * chunk + chunk); i++) {
				float wi = expf((row[i] - mx) * inv_t);

				if (!(wi > 0.0f))
					continue;
				last = i;
				acc += wi;
				if (acc > target) {
					pick = (int32_t)i;
					break;
				}
			}
			/* Rounding left the chunk short of the target: its last. */
			if (pick < 0)
				pick = (int32_t)last;
		}
		/* u * total rounded up to the total itself: the row's last weight. */
		if (pick < 0) {
			for (i = n; i-- > 0;)
				if (expf((row[i] - mx) * inv_t) > 0.0f)
					break;
			pick = (int32_t)(i < n ? i : 0);
		}
	}
	__syncthreads();
	return pick;
}

/*
 * Stages 2 to 4: the pick among the @k largest, in every thread, or
 * CUK_SAMPLE_HOST. @whole: the row asked for all of its logits, more than
 * fit; the top-p cut then measures against the whole row's weight.
 */
static __device__ int32_t sample_top(const float *row, uint32_t n, uint32_t k, bool whole,
				     float mx, float inv_t, float top_p, float u)
{
	__shared__ uint32_t hist[256];
	__shared__ uint32_t prefix, want, n_cand;
	__shared__ float cv[SAMPLE_SLOTS];
	__shared__ int32_t ci[SAMPLE_SLOTS];
	__shared__ float red[32];
	__shared__ int32_t pick;
	float z_all = 0.0f;
	uint32_t i, pass, size, stride;

	if (whole) {
		float w = 0.0f;

		for (i = threadIdx.x; i < n; i += blockDim.x)
			w += expf((row[i] - mx) * inv_t);
		z_all = block_sum(w, red);
	}
	if (!threadIdx.x) {
		prefix = 0;
		want = k;	/* how many of the largest are still to be placed */
		n_cand = 0;
	}
	/* 2. Radix select: digits from the top, 8 bits a pass. */
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
	 * 3. prefix is now the k-th largest key: gather the larger ones (fewer
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
	/* 4. Weights, top-p, the draw: serial, in sorted order. */
	if (!threadIdx.x) {
		float total = 0.0f, kept = 0.0f, target;
		uint32_t keep = 0, c;
		bool cut = false;

		for (c = 0; c < k; c++)
			total += expf((cv[c] - cv[0]) * inv_t);
		/* cv[0] is the row's maximum, so the weights agree with z_all's. */
		if (whole)
			total = z_all;
		for (c = 0; c < k; c++) {
			kept += expf((cv[c] - cv[0]) * inv_t);
			keep = c + 1;
			if (kept >= top_p * total) {
				cut = true;
				break;
			}
		}
		target = u * kept;
		kept = 0.0f;
		pick = ci[keep - 1];
		for (c = 0; c < keep; c++) {
			kept += expf((cv[c] - cv[0]) * inv_t);
			if (kept > target) {
				pick = ci[c];
				break;
			}
		}
		if (whole && !cut)
			pick = CUK_SAMPLE_HOST;
	}
	__syncthreads();
	return pick;
}

static __global__ void __launch_bounds__(CUK_ROW_THREADS)
sample_kernel(int32_t *out, float *logprob, const float *x, uint32_t n,
	      const struct cuk_sample_row *rows)
{
	const float *row = x + (uint64_t)blockIdx.x * n;
	const struct cuk_sample_row r = rows[blockIdx.x];
	/* The k the row asks for: all of it for 0 or more than there are. */
	const uint32_t k_req = r.top_k && r.top_k < n ? r.top_k : n;
	const bool whole = k_req > CUK_SAMPLE_MAX_K;
	float lse;
	int32_t tok;

	if (r.temperature < 0.0f) {
		if (!threadIdx.x)
			out[blockIdx.x] = CUK_SAMPLE_SKIP;
		return;
	}
	row_stats(row, n, &tok, &lse);
	if (r.temperature > 0.0f) {
		const float inv_t = 1.0f / r.temperature, mx = row[tok];

		if (k_req == n && r.top_p >= 1.0f)
			tok = sample_all(row, n, mx, inv_t, r.u);
		else if (whole && k_req < n)
			tok = CUK_SAMPLE_HOST;
		else
			tok = sample_top(row, n, whole ? CUK_SAMPLE_MAX_K : k_req, whole, mx,
					 inv_t, r.top_p, r.u);
	}
	if (!threadIdx.x) {
		out[blockIdx.x] = tok;
		if (tok >= 0)
			logprob[blockIdx.x] = row[tok] - lse;
	}
}

/**
 * cuk_sample() - draw one token per row: greedy, or temperature, top-k, top-p
 * @s:		the stream
 * @out:	@n_rows ids; CUK_SAMPLE_SKIP for a row that asked for none,
 *		CUK_SAMPLE_HOST for one the host must draw
 * @logprob:	@n_rows floats: the log-softmax of the raw row at the pick
 *		(left alone where @out is negative)
 * @x:		[n_rows][n] FP32 logits, finite
 * @rows:	per row its &struct cuk_sample_row (device memory)
 * @n_rows:	rows
 * @n:		logits per row, >= 1
 *
 * Greedy rows (temperature 0) take the first largest logit. Others weigh
 * the logits e^(l / T) and keep the top_k largest (ties to the lowest id;
 * 0 or n or more: all), then the smallest prefix of them, largest first,
 * whose weight reaches top_p of the kept set's, and pick by u: the first
 * whose running weight exceeds u times the prefix's. The device holds at
 * most CUK_SAMPLE_MAX_K candidates: a top_k between that and n, or a
 * nucleus over the whole row that does not fit in them, is the host's.
 * When more logits tie with the k-th than 2 x CUK_SAMPLE_MAX_K less the
 * larger ones, which of the tied ones take part is not fixed; the larger
 * ones always do.
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_sample(cudaStream_t s, int32_t *out, float *logprob, const float *x,
				  const struct cuk_sample_row *rows, uint32_t n_rows, uint32_t n)
{
	if (!n_rows)
		return cudaSuccess;
	if (!n)
		return cudaErrorInvalidValue;
	CUK_LAUNCH(sample_kernel, n_rows, CUK_ROW_THREADS, s)(out, logprob, x, n, rows);
	return cudaGetLastError();
}
