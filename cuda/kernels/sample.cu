// SPDX-License-Identifier: GPL-2.0
/*
 * Sampling on the device: the argmax of each row of logits (greedy), or a
 * draw with temperature, top-k, top-p and min-p over the whole vocabulary,
 * so that only an id and its log-probability per row need cross to the
 * host.
 */
#include <math.h>

#include "common.cuh"

/*
 * A draw, one block per row, sorts nothing:
 *
 * 0. the row's statistics in one pass: its argmax (the greedy pick, and
 *    the maximum the weights e^((l - max) / T) are taken against) and its
 *    log-sum-exp, so that every pick comes with its log-probability;
 * 1. top-k: the k-th largest logit by radix select over keys that order as
 *    the floats do: four passes of 8 bits, each a histogram (in shared
 *    memory) of the next digit among the keys that match the digits found
 *    so far, taking the digit where the count from the top reaches k.
 *    Every logit at least as large takes part, ties included. min-p is a
 *    bound on the logit too: max + T log(min_p);
 * 2. top-p: the same radix search, weighted: each histogram sums the
 *    weights of its digit, and the digit taken is where the weight from
 *    the top reaches top_p of the top-k set's. The threshold logit comes
 *    out exact, with what the logits equal to it must add: so many of
 *    them, the lowest ids, join the nucleus;
 * 3. the draw: each thread sums the kept weight of a contiguous run of
 *    ids, thread 0 finds the run where u times the total falls and walks
 *    it, in id order.
 *
 * Weights are summed in 64-bit fixed point, 2^W_SHIFT for the maximum's,
 * so every sum is exact whatever order the threads add in: the same logits
 * and draw give the same token on every run, and a walk always meets the
 * total its run promised. A weight under 2^-W_SHIFT of the maximum's
 * counts as none; n * 2^W_SHIFT must fit in 64 bits (CUK_SAMPLE_MAX_N).
 */
#define W_SHIFT		40
#define KEY_NAN		0u	/* NaN's key: below every number, never drawn */

typedef unsigned long long u64;	/* what CUDA's 64-bit atomicAdd() takes */

/* Is (v, i) a better pick than (bv, bi)? Larger, or as large and earlier. */
static __device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi)
{
	return v > bv || (v == bv && i < bi);
}

/*
 * Unsigned keys that order as the floats: negatives flipped whole, others
 * get the sign bit; -0 is 0, and NaN is KEY_NAN.
 */
static __device__ __forceinline__ uint32_t order_key(float f)
{
	uint32_t b;

	if (f != f)
		return KEY_NAN;
	b = f == 0.0f ? 0u : __float_as_uint(f);
	return b & 0x80000000u ? ~b : b | 0x80000000u;
}

/* The float of a key: order_key() undone. */
static __device__ __forceinline__ float key_float(uint32_t k)
{
	return __uint_as_float(k & 0x80000000u ? k & 0x7fffffffu : ~k);
}

/* The weight of logit @x, e^((x - mx) / T), in fixed point; @mx is the row's largest. */
static __device__ __forceinline__ u64 weight(float x, float mx, float inv_t)
{
	return (u64)(expf((x - mx) * inv_t) * (float)(1ull << W_SHIFT));
}

/* The sum of @v over the block, in every thread; @sh holds blockDim.x entries. */
static __device__ u64 block_sum_u64(u64 v, u64 *sh)
{
	uint32_t s;

	sh[threadIdx.x] = v;
	__syncthreads();
	for (s = blockDim.x / 2; s > 0; s /= 2) {
		if (threadIdx.x < s)
			sh[threadIdx.x] += sh[threadIdx.x + s];
		__syncthreads();
	}
	v = sh[0];
	__syncthreads();
	return v;
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
 * Radix search over the keys of @row from @lo up, each counting 1 or, with
 * @weighted, its weight(): the largest key t whose keys from t up count at
 * least @want (> 0). Returns t in every thread, and in *@rest what of
 * @want the keys equal to t must cover (the keys above t count the rest);
 * or 0 when all keys from @lo up count less than @want.
 */
static __device__ uint32_t radix_search(const float *row, uint32_t n, uint32_t lo, u64 want,
					bool weighted, float mx, float inv_t, u64 *rest)
{
	__shared__ u64 hist[256], left;
	__shared__ uint32_t prefix;
	__shared__ bool fell_short;
	uint32_t pass, i;

	if (!threadIdx.x) {
		prefix = 0;
		left = want;
		fell_short = false;
	}
	for (pass = 0; pass < 4; pass++) {
		const uint32_t shift = 24 - 8 * pass;
		/* Keys that agree with prefix above this digit. */
		const uint32_t mask = pass ? 0xffffffffu << (32 - 8 * pass) : 0;

		for (i = threadIdx.x; i < 256; i += blockDim.x)
			hist[i] = 0;
		__syncthreads();
		for (i = threadIdx.x; i < n; i += blockDim.x) {
			uint32_t key = order_key(row[i]);

			if (key < lo || (key & mask) != (prefix & mask))
				continue;
			atomicAdd(&hist[(key >> shift) & 0xff],
				  weighted ? weight(row[i], mx, inv_t) : 1ull);
		}
		__syncthreads();
		if (!threadIdx.x) {
			u64 above = 0;
			uint32_t d = 256;

			/* The digit at which the count from the top reaches what is left. */
			while (d-- > 0) {
				if (above + hist[d] >= left)
					break;
				above += hist[d];
			}
			/* Only the first pass can fall short. */
			fell_short = d >= 256;
			prefix |= fell_short ? 0 : d << shift;
			left -= above;
		}
		__syncthreads();
		if (fell_short)
			break;
	}
	*rest = left;
	i = fell_short ? KEY_NAN : prefix;
	__syncthreads();
	return i;
}

/*
 * Stage 3: the pick, in every thread, or -1 if nothing weighs anything.
 * Kept: the keys above @t, and the @need lowest ids of those equal to it,
 * of weight @w_t each.
 */
static __device__ int32_t draw(const float *row, uint32_t n, float mx, float inv_t, uint32_t t,
			       uint32_t need, u64 w_t, float u)
{
	__shared__ u64 part[CUK_ROW_THREADS];
	__shared__ uint32_t ties[CUK_ROW_THREADS];
	__shared__ int32_t pick;
	const uint32_t chunk = (n + blockDim.x - 1) / blockDim.x;
	const uint32_t a = min(n, threadIdx.x * chunk), e = min(n, a + chunk);
	u64 w = 0;
	uint32_t c = 0, i;

	for (i = a; i < e; i++) {
		uint32_t key = order_key(row[i]);

		if (key > t)
			w += weight(row[i], mx, inv_t);
		else if (key == t)
			c++;
	}
	part[threadIdx.x] = w;
	ties[threadIdx.x] = c;
	__syncthreads();
	if (!threadIdx.x) {
		u64 total = 0, target, acc = 0, cw;
		uint32_t j, before = 0;

		/* A run's weight: its keys above t, and its ties still needed. */
		for (j = 0; j < blockDim.x; j++) {
			total += part[j] + min(ties[j], need - min(before, need)) * w_t;
			before += ties[j];
		}
		target = (u64)((double)u * (double)total);
		if (target >= total)
			target = total - 1;
		pick = -1;
		before = 0;
		for (j = 0; j < blockDim.x && total && pick < 0; j++) {
			cw = part[j] + min(ties[j], need - min(before, need)) * w_t;
			if (acc + cw <= target) {
				acc += cw;
				before += ties[j];
				continue;
			}
			for (i = min(n, j * chunk); i < min(n, j * chunk + chunk); i++) {
				uint32_t key = order_key(row[i]);

				if (key > t)
					acc += weight(row[i], mx, inv_t);
				else if (key == t && before++ < need)
					acc += w_t;
				else
					continue;
				if (acc > target) {
					pick = (int32_t)i;
					break;
				}
			}
		}
	}
	__syncthreads();
	return pick;
}

/*
 * Stages 1 to 3 for a row of largest logit @mx: the pick, in every thread,
 * or -1 if nothing weighs anything.
 */
static __device__ int32_t sample_row(const float *row, uint32_t n, const struct cuk_sample_row *r,
				     float mx)
{
	__shared__ u64 red[CUK_ROW_THREADS];
	const float inv_t = 1.0f / r->temperature;
	uint32_t lo = KEY_NAN + 1, k_lo, t, need = 0, i;
	u64 rest, w_t = 0, z = 0, want;
	double share;

	/* 1. Every logit from the k-th largest up, then those min-p keeps. */
	if (r->top_k && r->top_k < n) {
		t = radix_search(row, n, lo, r->top_k, false, mx, inv_t, &rest);
		if (t != KEY_NAN)
			lo = t;
	}
	k_lo = lo;
	if (r->min_p > 0.0f)
		lo = max(lo, order_key(mx + r->temperature * logf(r->min_p)));
	t = lo - 1;
	/* 2. The nucleus: its share of the top-k set's weight, from the top. */
	if (r->top_p < 1.0f) {
		for (i = threadIdx.x; i < n; i += blockDim.x)
			if (order_key(row[i]) >= k_lo)
				z += weight(row[i], mx, inv_t);
		z = block_sum_u64(z, red);
		share = (double)z * ((double)r->top_p - CUK_SAMPLE_TOP_P_SLACK);
		/* Nothing to reach (a top_p under the slack): the largest alone. */
		want = share > 1.0 ? (u64)share : 1;
		i = radix_search(row, n, lo, want, true, mx, inv_t, &rest);
		if (i != KEY_NAN) {
			t = i;
			w_t = weight(key_float(t), mx, inv_t);
			need = (uint32_t)((rest + w_t - 1) / w_t);
		}
	}
	return draw(row, n, mx, inv_t, t, need, w_t, r->u);
}

/* A penalised logit, in the host sampler's operations and roundings (no FMA). */
static __device__ __forceinline__ float penalty(float v, const struct cuk_sample_row *r,
						uint32_t out)
{
	if (r->rep != 1.0f)
		v = v > 0.0f ? __fdiv_rn(v, r->rep) : __fmul_rn(v, r->rep);
	if (out) {
		v = __fsub_rn(v, __fmul_rn(r->freq, (float)out));
		v = __fsub_rn(v, r->pres);
	}
	return v;
}

/*
 * Apply a row's penalties in place, its raw logits kept in @saved (the
 * row's own slots): each listed token's, and @extra's (-1: none) once more
 * in the output. Returns, in every thread, where @extra is in @pen, or
 * -1 (then its raw logit is in @saved[@r->pen_n]).
 */
static __device__ int32_t penalise(float *row, const struct cuk_sample_row *r,
				   const struct cuk_pen *pen, float *saved, int32_t extra)
{
	__shared__ int32_t at;
	uint32_t j;

	if (!threadIdx.x)
		at = -1;
	__syncthreads();
	/* The list holds each token once: at most one thread finds it. */
	for (j = threadIdx.x; extra >= 0 && j < r->pen_n; j += blockDim.x)
		if (pen[j].id == (uint32_t)extra)
			at = (int32_t)j;
	__syncthreads();
	for (j = threadIdx.x; j < r->pen_n; j += blockDim.x) {
		uint32_t id = pen[j].id, o = (pen[j].n & ~CUK_PEN_PROMPT) + ((int32_t)j == at);

		saved[j] = row[id];
		row[id] = penalty(row[id], r, o);
	}
	if (!threadIdx.x && extra >= 0 && at < 0) {
		saved[r->pen_n] = row[extra];
		row[extra] = penalty(row[extra], r, 1);
	}
	j = (uint32_t)at;
	__syncthreads();
	return (int32_t)j;
}

/*
 * The raw logit of @tok, in every thread, and the row back as it was:
 * what penalise() changed, it puts back.
 */
static __device__ float unpenalise(float *row, const struct cuk_sample_row *r,
				   const struct cuk_pen *pen, const float *saved, int32_t extra,
				   int32_t at, int32_t tok)
{
	__shared__ float raw;
	uint32_t j;
	float v;

	if (!threadIdx.x)
		raw = extra == tok && at < 0 ? saved[r->pen_n] : row[tok];
	__syncthreads();
	for (j = threadIdx.x; j < r->pen_n; j += blockDim.x) {
		if (pen[j].id == (uint32_t)tok)
			raw = saved[j];
		row[pen[j].id] = saved[j];
	}
	if (!threadIdx.x && extra >= 0 && at < 0)
		row[extra] = saved[r->pen_n];
	__syncthreads();
	v = raw;
	__syncthreads();
	return v;
}

static __global__ void __launch_bounds__(CUK_ROW_THREADS)
sample_kernel(int32_t *out, float *logprob, float *x, uint32_t n,
	      const struct cuk_sample_row *rows, const struct cuk_pen *pen, float *saved,
	      const int32_t *ids)
{
	float *row = x + (uint64_t)blockIdx.x * n;
	const struct cuk_sample_row r = rows[blockIdx.x];
	const bool penalised = r.pen_n || r.extra;
	int32_t tok, pick, extra = -1, at = -1;
	float lse, raw;

	if (r.temperature < 0.0f) {
		if (!threadIdx.x)
			out[blockIdx.x] = CUK_SAMPLE_SKIP;
		return;
	}
	/* The log-probability is of the raw row, the pick of the penalised one. */
	row_stats(row, n, &tok, &lse);
	if (penalised) {
		extra = r.extra ? ids[r.extra - 1] : -1;
		at = penalise(row, &r, pen + r.pen_off, saved + r.pen_off, extra);
		row_stats(row, n, &tok, &raw);
	}
	/* A row with no number but -inf has nothing to weigh: its first, like the host. */
	if (r.temperature > 0.0f && row[tok] > -INFINITY) {
		pick = sample_row(row, n, &r, row[tok]);
		if (pick >= 0)
			tok = pick;
	}
	raw = penalised ? unpenalise(row, &r, pen + r.pen_off, saved + r.pen_off, extra, at, tok) :
		row[tok];
	if (!threadIdx.x) {
		out[blockIdx.x] = tok;
		logprob[blockIdx.x] = raw - lse;
	}
}

/**
 * cuk_sample() - draw one token per row, as the host's sampler would
 * @s:		the stream
 * @out:	@n_rows ids; CUK_SAMPLE_SKIP for a row that asked for none
 * @logprob:	@n_rows floats: the log-softmax of the raw row at the pick
 *		(left alone where @out is negative)
 * @x:		[n_rows][n] FP32 logits; -inf masks one, NaN is never drawn.
 *		Penalised while a row draws, and back as they were after.
 * @rows:	per row its &struct cuk_sample_row (device memory)
 * @pen:	the penalised rows' token lists, at their &cuk_sample_row.pen_off
 * @saved:	as many floats as @pen has entries: scratch
 * @ids:	what &cuk_sample_row.extra indexes (may be NULL with no extra)
 * @n_rows:	rows
 * @n:		logits per row, 1 to CUK_SAMPLE_MAX_N
 *
 * A row with a token list first has its penalties applied, as the host's
 * sampler does: every listed token's logit divided by the repetition penalty if
 * positive, else multiplied; then, for one in the output, less the
 * frequency penalty per occurrence and the presence penalty. Greedy rows
 * (temperature 0) take the first largest logit. Others weigh the logits
 * e^(l / T) and keep, as the host's sampler does: the top_k
 * largest and every logit tied with the k-th (0 or n or more: all); of
 * those, the ones min_p keeps (p >= min_p p_max); of those, the smallest
 * set of the largest whose weight reaches top_p (less
 * CUK_SAMPLE_TOP_P_SLACK) of the top-k set's, ties at its edge taken by
 * lowest id. They pick by u: walking the kept logits in id order, the
 * first whose running weight exceeds u times the kept weight. Any
 * vocabulary, any top_k, any nucleus: nothing comes back to the host.
 *
 * Return: the launch's status; cudaErrorInvalidValue for @n out of range.
 */
extern "C" cudaError_t cuk_sample(cudaStream_t s, int32_t *out, float *logprob, float *x,
				  const struct cuk_sample_row *rows, const struct cuk_pen *pen,
				  float *saved, const int32_t *ids, uint32_t n_rows, uint32_t n)
{
	if (!n_rows)
		return cudaSuccess;
	if (!n || n > CUK_SAMPLE_MAX_N)
		return cudaErrorInvalidValue;
	CUK_LAUNCH(sample_kernel, n_rows, CUK_ROW_THREADS, s)(out, logprob, x, n, rows, pen, saved,
							      ids);
	return cudaGetLastError();
}
