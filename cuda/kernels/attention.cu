// SPDX-License-Identifier: GPL-2.0
/*
 * Paged attention over the KV cache, for decode tokens and prefill chunks
 * alike: each query row attends causally to positions 0 .. its own of its
 * sequence, reading K and V through the sequence's block table, with an
 * online (flash-style) softmax so that scores are never stored.
 *
 * One thread block per (row, KV head, split): the block computes every
 * query head of that KV head's GQA group (up to ATTN_MAX_GROUP), so each
 * K and V row is read once for the group, not once per query head; at
 * batch 256 and GQA 4 that is most of a decode step's bytes. Larger
 * groups fall back to a block per (row, query head, split). A split is a
 * range of key positions; with one split the block writes the heads'
 * output directly (short contexts, or enough rows to fill the GPU), with
 * several each writes a partial (max, sum, weighted V) per head and
 * attn_merge_kernel combines them (split-K, for long decodes that would
 * leave most of the GPU idle).
 *
 * Written to be obviously right first: each row reads its keys on its own
 * (prefill rows of one sequence do not share K/V loads through shared
 * memory), dot products are FP32 on CUDA cores. A tiled prefill kernel on
 * tensor cores is the next step once this one is checked on a GPU.
 */
#include <math.h>

#include "common.cuh"

#define ATTN_THREADS	128
#define ATTN_WARPS	(ATTN_THREADS / 32)
/* Elements of a head each lane holds: head_dim / 32, rounded up. */
#define ATTN_PER_LANE	(CUK_ATTN_MAX_HEAD_DIM / 32)
/* Query heads per KV head that attn_group_kernel holds in registers. */
#define ATTN_MAX_GROUP	CUK_ATTN_MAX_GROUP

/*
 * The block of (row, h, split) = blockIdx. Each warp walks every
 * ATTN_WARPS-th key of the split with its own running max m, sum l and
 * accumulator acc (lane holds elements lane, lane + 32, ...): for a key
 * with score s, m' = max(m, s), and the old sums are rescaled by
 * exp(m - m'), the new term weighs exp(s - m'). The warps' states are then
 * merged the same way through shared memory.
 */
static __global__ void __launch_bounds__(ATTN_THREADS) attn_kernel(struct cuk_attn a)
{
	__shared__ float q_s[CUK_ATTN_MAX_HEAD_DIM];
	__shared__ float w_m[ATTN_WARPS], w_l[ATTN_WARPS];
	__shared__ float w_acc[ATTN_WARPS][CUK_ATTN_MAX_HEAD_DIM];
	const uint32_t row = blockIdx.x, h = blockIdx.y, split = blockIdx.z;
	const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	const uint32_t d = a.head_dim, bs = a.block_size;
	const uint32_t kv_dim = a.n_head_kv * d;
	/* GQA: n_head / n_head_kv consecutive query heads share a KV head. */
	const uint32_t kvh = h / (a.n_head / a.n_head_kv);
	/* Causal: the row at position pos sees positions 0 .. pos. */
	const int64_t ctx = (int64_t)a.row_pos[row] + 1;
	const int64_t start = (int64_t)split * a.split_len;
	const int64_t end = min(ctx, start + (int64_t)a.split_len);
	const int32_t *bt = a.bt + a.row_bt[row];
	float m = -INFINITY, l = 0.0f, acc[ATTN_PER_LANE];
	float big_m, big_l;
	int64_t j;
	uint32_t i, w;

	for (i = threadIdx.x; i < d; i += blockDim.x)
		q_s[i] = a.q[(uint64_t)row * a.ldq + (uint64_t)h * d + i];
#pragma unroll
	for (i = 0; i < ATTN_PER_LANE; i++)
		acc[i] = 0.0f;
	__syncthreads();

	for (j = start + warp; j < end; j += ATTN_WARPS) {
		/* Block bt[j / bs], offset j % bs: K there, V bs rows further. */
		const uint64_t at = ((uint64_t)bt[j / bs] * 2 * bs + (uint64_t)(j % bs)) * kv_dim +
				    (uint64_t)kvh * d;
		const uint16_t *kp = a.kv + at, *vp = kp + (uint64_t)bs * kv_dim;
		float s = 0.0f, m_new, corr, p;

		for (i = lane; i < d; i += 32)
			s += q_s[i] * bf16_load(kp + i);
		s = warp_sum(s) * a.scale;
		m_new = fmaxf(m, s);
		corr = expf(m - m_new);		/* 0 for the first key: m = -inf */
		p = expf(s - m_new);
		l = l * corr + p;
#pragma unroll
		for (i = 0; i < ATTN_PER_LANE; i++)
			if (lane + 32 * i < d)
				acc[i] = acc[i] * corr + p * bf16_load(vp + lane + 32 * i);
		m = m_new;
	}

	if (!lane) {
		w_m[warp] = m;
		w_l[warp] = l;
	}
#pragma unroll
	for (i = 0; i < ATTN_PER_LANE; i++)
		if (lane + 32 * i < d)
			w_acc[warp][lane + 32 * i] = acc[i];
	__syncthreads();

	/* Merge the warps; a warp that saw no key has m = -inf and adds 0. */
	big_m = -INFINITY;
	for (w = 0; w < ATTN_WARPS; w++)
		big_m = fmaxf(big_m, w_m[w]);
	big_l = 0.0f;
	for (w = 0; w < ATTN_WARPS; w++)
		if (w_m[w] > -INFINITY)
			big_l += w_l[w] * expf(w_m[w] - big_m);

	if (a.n_splits == 1) {
		uint16_t *out = a.out + (uint64_t)row * a.n_head * d + (uint64_t)h * d;

		for (i = threadIdx.x; i < d; i += blockDim.x) {
			float o = 0.0f;

			for (w = 0; w < ATTN_WARPS; w++)
				if (w_m[w] > -INFINITY)
					o += w_acc[w][i] * expf(w_m[w] - big_m);
			/* ctx >= 1, so some warp saw a key and big_l > 0. */
			bf16_store(out + i, o / big_l);
		}
	} else {
		/* Partial (m, l, acc[d]) of this split, merged later. */
		float *part = a.part + (((uint64_t)row * a.n_head + h) * a.n_splits + split) *
				       (d + 2);

		for (i = threadIdx.x; i < d; i += blockDim.x) {
			float o = 0.0f;

			for (w = 0; w < ATTN_WARPS; w++)
				if (w_m[w] > -INFINITY)
					o += w_acc[w][i] * expf(w_m[w] - big_m);
			part[2 + i] = o;
		}
		if (!threadIdx.x) {
			part[0] = big_m;	/* -inf: the split lies past ctx */
			part[1] = big_l;
		}
	}
}

/*
 * The block of (row, KV head kvh, split) = blockIdx, for the G = n_head /
 * n_head_kv query heads h0 .. h0 + G - 1 that share kvh. The same walk as
 * attn_kernel's, but each warp loads a key's K and V row into registers
 * once (lane holds elements lane, lane + 32, ...) and updates G running
 * states with it, one per query head. Loops over the group run to
 * ATTN_MAX_GROUP with a warp-uniform test, so the arrays stay in
 * registers (compile-time indices only).
 */
static __global__ void __launch_bounds__(ATTN_THREADS) attn_group_kernel(struct cuk_attn a)
{
	__shared__ float q_s[ATTN_MAX_GROUP][CUK_ATTN_MAX_HEAD_DIM];
	__shared__ float w_m[ATTN_WARPS][ATTN_MAX_GROUP], w_l[ATTN_WARPS][ATTN_MAX_GROUP];
	__shared__ float w_acc[ATTN_WARPS][ATTN_MAX_GROUP][CUK_ATTN_MAX_HEAD_DIM];
	const uint32_t row = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
	const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	const uint32_t d = a.head_dim, bs = a.block_size, kv_dim = a.n_head_kv * d;
	const uint32_t G = a.n_head / a.n_head_kv, h0 = kvh * G;
	/* Causal: the row at position pos sees positions 0 .. pos. */
	const int64_t ctx = (int64_t)a.row_pos[row] + 1;
	const int64_t start = (int64_t)split * a.split_len;
	const int64_t end = min(ctx, start + (int64_t)a.split_len);
	const int32_t *bt = a.bt + a.row_bt[row];
	float m[ATTN_MAX_GROUP], l[ATTN_MAX_GROUP], acc[ATTN_MAX_GROUP][ATTN_PER_LANE];
	int64_t j;
	uint32_t i, g, w, e;

	/* The group's q heads are adjacent: columns h0 * d .. (h0 + G) * d. */
	for (i = threadIdx.x; i < G * d; i += blockDim.x)
		q_s[i / d][i % d] = a.q[(uint64_t)row * a.ldq + (uint64_t)h0 * d + i];
#pragma unroll
	for (g = 0; g < ATTN_MAX_GROUP; g++) {
		m[g] = -INFINITY;
		l[g] = 0.0f;
#pragma unroll
		for (i = 0; i < ATTN_PER_LANE; i++)
			acc[g][i] = 0.0f;
	}
	__syncthreads();

	for (j = start + warp; j < end; j += ATTN_WARPS) {
		/* Block bt[j / bs], offset j % bs: K there, V bs rows further. */
		const uint64_t at = ((uint64_t)bt[j / bs] * 2 * bs + (uint64_t)(j % bs)) * kv_dim +
				    (uint64_t)kvh * d;
		const uint16_t *kp = a.kv + at, *vp = kp + (uint64_t)bs * kv_dim;
		float kr[ATTN_PER_LANE], vr[ATTN_PER_LANE];

#pragma unroll
		for (i = 0; i < ATTN_PER_LANE; i++) {
			kr[i] = lane + 32 * i < d ? bf16_load(kp + lane + 32 * i) : 0.0f;
			vr[i] = lane + 32 * i < d ? bf16_load(vp + lane + 32 * i) : 0.0f;
		}
#pragma unroll
		for (g = 0; g < ATTN_MAX_GROUP; g++) {
			float s = 0.0f, m_new, corr, p;

			if (g >= G)	/* the same for the whole block */
				break;
#pragma unroll
			for (i = 0; i < ATTN_PER_LANE; i++)
				if (lane + 32 * i < d)
					s += q_s[g][lane + 32 * i] * kr[i];
			s = warp_sum(s) * a.scale;
			m_new = fmaxf(m[g], s);
			corr = expf(m[g] - m_new);	/* 0 for the first key */
			p = expf(s - m_new);
			l[g] = l[g] * corr + p;
#pragma unroll
			for (i = 0; i < ATTN_PER_LANE; i++)
				acc[g][i] = acc[g][i] * corr + p * vr[i];
			m[g] = m_new;
		}
	}

#pragma unroll
	for (g = 0; g < ATTN_MAX_GROUP; g++) {
		if (g >= G)
			break;
		if (!lane) {
			w_m[warp][g] = m[g];
			w_l[warp][g] = l[g];
		}
#pragma unroll
		for (i = 0; i < ATTN_PER_LANE; i++)
			if (lane + 32 * i < d)
				w_acc[warp][g][lane + 32 * i] = acc[g][i];
	}
	__syncthreads();

	/* Merge the warps per head; a warp that saw no key adds 0. */
	for (i = threadIdx.x; i < G * d; i += blockDim.x) {
		const uint32_t h = h0 + i / d;
		float big_m = -INFINITY, big_l = 0.0f, o = 0.0f;

		g = i / d;
		e = i % d;
		for (w = 0; w < ATTN_WARPS; w++)
			big_m = fmaxf(big_m, w_m[w][g]);
		for (w = 0; w < ATTN_WARPS; w++)
			if (w_m[w][g] > -INFINITY) {
				big_l += w_l[w][g] * expf(w_m[w][g] - big_m);
				o += w_acc[w][g][e] * expf(w_m[w][g] - big_m);
			}
		if (a.n_splits == 1) {
			/* ctx >= 1, so some warp saw a key and big_l > 0. */
			bf16_store(a.out + (uint64_t)row * a.n_head * d + (uint64_t)h * d + e,
				   o / big_l);
		} else {
			float *part = a.part + (((uint64_t)row * a.n_head + h) * a.n_splits +
						split) * (d + 2);

			part[2 + e] = o;
			if (!e) {
				part[0] = big_m;	/* -inf: the split lies past ctx */
				part[1] = big_l;
			}
		}
	}
}

/*
 * One block per (row, head): out = sum_s acc_s e^(m_s - M) / sum_s l_s
 * e^(m_s - M), M the largest m_s. Split 0 always holds position 0, so M is
 * finite and the denominator positive; empty splits (m_s = -inf) add 0.
 */
static __global__ void __launch_bounds__(ATTN_THREADS) attn_merge_kernel(struct cuk_attn a)
{
	const uint32_t row = blockIdx.x, h = blockIdx.y, d = a.head_dim;
	const float *part = a.part + ((uint64_t)row * a.n_head + h) * a.n_splits * (d + 2);
	uint16_t *out = a.out + (uint64_t)row * a.n_head * d + (uint64_t)h * d;
	float big_m = -INFINITY, big_l = 0.0f;
	uint32_t s, i;

	for (s = 0; s < a.n_splits; s++)
		big_m = fmaxf(big_m, part[s * (d + 2)]);
	for (s = 0; s < a.n_splits; s++)
		if (part[s * (d + 2)] > -INFINITY)
			big_l += part[s * (d + 2) + 1] * expf(part[s * (d + 2)] - big_m);
	for (i = threadIdx.x; i < d; i += blockDim.x) {
		float o = 0.0f;

		for (s = 0; s < a.n_splits; s++)
			if (part[s * (d + 2)] > -INFINITY)
				o += part[s * (d + 2) + 2 + i] * expf(part[s * (d + 2)] - big_m);
		bf16_store(out + i, o / big_l);
	}
}

/**
 * cuk_attention() - causal paged attention of a step's rows, one layer
 * @s:		the stream
 * @a:		inputs, outputs and shape (see &struct cuk_attn)
 *
 * Every row's K and V, its own included, must be in the cache already
 * (cuk_kv_store() first). Returns cudaErrorInvalidValue for a head longer
 * than CUK_ATTN_MAX_HEAD_DIM, split counts outside 1 .. CUK_ATTN_MAX_SPLITS
 * or a GQA that does not divide.
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_attention(cudaStream_t s, const struct cuk_attn *a)
{
	const bool grouped = a->n_head_kv && a->n_head / a->n_head_kv <= ATTN_MAX_GROUP;
	dim3 grid(a->n_rows, grouped ? a->n_head_kv : a->n_head, a->n_splits);

	if (!a->n_rows)
		return cudaSuccess;
	if (!a->head_dim || a->head_dim > CUK_ATTN_MAX_HEAD_DIM || !a->n_splits ||
	    a->n_splits > CUK_ATTN_MAX_SPLITS || !a->split_len || !a->n_head_kv ||
	    a->n_head % a->n_head_kv || (a->n_splits > 1 && !a->part))
		return cudaErrorInvalidValue;
	if (grouped)
		CUK_LAUNCH(attn_group_kernel, grid, ATTN_THREADS, s)(*a);
	else
		CUK_LAUNCH(attn_kernel, grid, ATTN_THREADS, s)(*a);
	if (a->n_splits > 1) {
		cudaError_t e = cudaGetLastError();

		if (e != cudaSuccess)
			return e;
		CUK_LAUNCH(attn_merge_kernel, dim3(a->n_rows, a->n_head), ATTN_THREADS, s)(*a);
	}
	return cudaGetLastError();
}
