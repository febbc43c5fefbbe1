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
 * Those kernels take each row on its own: dot products in FP32 on CUDA
 * cores, every row reading its keys itself. That suits decode (each key
 * read once per group, memory-bound anyway) but not a prefill chunk, whose
 * rows would read the same keys hundreds of times. So the host may hand
 * such rows over as tiles (struct cuk_attn_tile): attn_tile_kernel takes
 * up to 64 rows of one sequence at once, loads each block of keys into
 * shared memory once for all of them and multiplies on tensor cores
 * (wmma, BF16 in, FP32 out), flash-attention style.
 */
#include <math.h>

#ifndef LLMQ_CUDA_EMU
#include <cuda_pipeline.h>
#include <mma.h>
#endif

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
	const uint32_t row = a.rows ? a.rows[blockIdx.x] : blockIdx.x;
	const uint32_t h = blockIdx.y, split = blockIdx.z;
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
		float *part = a.part + (((uint64_t)blockIdx.x * a.n_head + h) * a.n_splits +
					split) * (d + 2);

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
	const uint32_t row = a.rows ? a.rows[blockIdx.x] : blockIdx.x;
	const uint32_t kvh = blockIdx.y, split = blockIdx.z;
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
			float *part = a.part + (((uint64_t)blockIdx.x * a.n_head + h) * a.n_splits +
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
	const uint32_t row = a.rows ? a.rows[blockIdx.x] : blockIdx.x;
	const uint32_t h = blockIdx.y, d = a.head_dim;
	const float *part = a.part + ((uint64_t)blockIdx.x * a.n_head + h) * a.n_splits * (d + 2);
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

/*
 * The tiled kernel's shape: a block of ATTN_WARPS warps takes a tile of
 * TILE_ROWS query rows, 16 per warp (one wmma row block), and walks the
 * keys TILE_KEYS at a time. Shared-memory rows are padded by 16 bytes so
 * that consecutive rows start in other banks, and stay multiples of the
 * 32 bytes wmma wants.
 */
#define TILE_ROWS	CUK_ATTN_TILE_ROWS
#define TILE_KEYS	32
#define TILE_MAX_D	CUK_ATTN_TILE_MAX_HEAD_DIM
#define TILE_FRAGS	(TILE_MAX_D / 16)
#define TILE_LD		(TILE_MAX_D + 8)	/* BF16 per row of K, V (and Q) */
#define TILE_S_LD	(TILE_KEYS + 4)		/* floats per row of a warp's scores */
#define TILE_P_LD	(TILE_KEYS + 8)		/* BF16 per row of a warp's weights */

typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16,
			       nvcuda::wmma::row_major> tile_a;
/* K as the B of Q K^T: K's rows are B's columns. */
typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16,
			       nvcuda::wmma::col_major> tile_kt;
typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16,
			       nvcuda::wmma::row_major> tile_v;
typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> tile_c;

static __device__ __forceinline__ const __nv_bfloat16 *as_bf16(const uint16_t *p)
{
	return reinterpret_cast<const __nv_bfloat16 *>(p);
}

/*
 * Keys k0 .. k0 + TILE_KEYS - 1 of the tile's sequence into kv_s[0] (K)
 * and kv_s[1] (V), one stage of the walk: 16-byte asynchronous copies
 * (cp.async), committed as one batch, that land while the tile computes
 * on the other stage. Keys past @last are zeros, which the scores' mask
 * then ignores (zeros, not whatever shared memory held: a NaN there would
 * survive a weight of 0).
 */
static __device__ __forceinline__ void tile_fetch_keys(uint16_t (*kv_s)[TILE_KEYS][TILE_LD],
						       const struct cuk_attn *a, const int32_t *bt,
						       uint32_t kvh, int64_t k0, int64_t last)
{
	const uint32_t d = a->head_dim, bs = a->block_size, kv_dim = a->n_head_kv * d;
	const uint32_t chunks = d / 8;		/* of 8 BF16 per key row */
	const uint4 zero = { 0, 0, 0, 0 };
	uint32_t i;

	for (i = threadIdx.x; i < 2 * TILE_KEYS * chunks; i += blockDim.x) {
		const uint32_t which = i / (TILE_KEYS * chunks), k = i / chunks % TILE_KEYS;
		const uint32_t c = i % chunks;
		const int64_t j = k0 + k;

		if (j <= last) {
			const uint64_t at = ((uint64_t)bt[j / bs] * 2 * bs + (uint64_t)(j % bs) +
					     (uint64_t)which * bs) * kv_dim + (uint64_t)kvh * d;

			__pipeline_memcpy_async(&kv_s[which][k][8 * c], a->kv + at + 8 * c, 16);
		} else {
			*reinterpret_cast<uint4 *>(&kv_s[which][k][8 * c]) = zero;
		}
	}
	__pipeline_commit();
}

/* S = Q K^T of a warp's 16 rows (q in @qf) and 32 keys (@k_s), into @s. */
static __device__ __forceinline__ void tile_scores(float (*s)[TILE_S_LD], const tile_a *qf,
						   const uint16_t (*k_s)[TILE_LD], uint32_t nf)
{
	tile_c sc;
	uint32_t n, c;

	for (n = 0; n < TILE_KEYS / 16; n++) {
		nvcuda::wmma::fill_fragment(sc, 0.0f);
#pragma unroll
		for (c = 0; c < TILE_FRAGS; c++) {
			tile_kt kf;

			if (c >= nf)
				break;
			nvcuda::wmma::load_matrix_sync(kf, as_bf16(&k_s[16 * n][16 * c]), TILE_LD);
			nvcuda::wmma::mma_sync(sc, qf[c], kf, sc);
		}
		nvcuda::wmma::store_matrix_sync(&s[0][16 * n], sc, TILE_S_LD,
						nvcuda::wmma::mem_row_major);
	}
}

/*
 * One row's online softmax over 32 keys from @k0, two lanes a row, each
 * with 16 columns (@half): keys past @prow are masked, the running max @m
 * and sum @l updated, the weights written to @p in BF16 (and @l sums them
 * as rounded, the values P V multiplies). The whole warp calls it: @p
 * lies over the warp's scores (@s among them). Returns e^(m_old - m_new),
 * by which the row's output must be rescaled.
 */
static __device__ __forceinline__ float tile_softmax(const float *s, uint16_t *p, int64_t k0,
						     int64_t prow, uint32_t half, float scale,
						     float *m, float *l)
{
	float x[16], mx = -INFINITY, sum = 0.0f, m_new, corr;
	uint32_t i;

#pragma unroll
	for (i = 0; i < 16; i++) {
		x[i] = k0 + 16 * half + i <= prow ? s[16 * half + i] * scale : -INFINITY;
		mx = fmaxf(mx, x[i]);
	}
	__syncwarp();	/* @p lies over the warp's scores: all read before any is written */
	mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
	/* Key 0 is in every row's first block, so m_new is finite. */
	m_new = fmaxf(*m, mx);
	corr = expf(*m - m_new);	/* 0 for the first block: m = -inf */
#pragma unroll
	for (i = 0; i < 16; i++) {
		bf16_store(&p[16 * half + i], expf(x[i] - m_new));
		sum += bf16_load(&p[16 * half + i]);
	}
	sum += __shfl_xor_sync(0xffffffffu, sum, 1);
	*l = *l * corr + sum;
	*m = m_new;
	return corr;
}

/* O += P V of a warp's 16 rows (O in @of), the weights @p of 32 keys (@v_s). */
static __device__ __forceinline__ void tile_pv(tile_c *of, const uint16_t (*p)[TILE_P_LD],
					       const uint16_t (*v_s)[TILE_LD], uint32_t nf)
{
	uint32_t n, c;

	for (n = 0; n < TILE_KEYS / 16; n++) {
		tile_a pf;

		nvcuda::wmma::load_matrix_sync(pf, as_bf16(&p[0][16 * n]), TILE_P_LD);
#pragma unroll
		for (c = 0; c < TILE_FRAGS; c++) {
			tile_v vf;

			if (c >= nf)
				break;
			nvcuda::wmma::load_matrix_sync(vf, as_bf16(&v_s[16 * n][16 * c]), TILE_LD);
			nvcuda::wmma::mma_sync(of[c], pf, vf, of[c]);
		}
	}
}

/*
 * The block of (tile, query head) = blockIdx. Each warp keeps its 16 rows'
 * q in registers (BF16 A fragments) and their output O in FP32
 * accumulators. The key blocks arrive in two stages, the next one's
 * copies in flight while the block computes on this one; per key block:
 * S = Q K^T on tensor cores into shared memory; two lanes per row mask S
 * causally, update the row's running max m and sum l, and write the
 * weights P = e^(S - m) in BF16; O is rescaled by e^(m_old - m) row by row
 * and O += P V on tensor cores. A fragment's
 * elements are spread over the lanes in an order CUDA does not specify,
 * so the row of each accumulator element is learnt by loading a matrix
 * of row numbers into a fragment of the same kind (rid): element i of any
 * accumulator is then in row rid.x[i]. l sums the weights as rounded to
 * BF16, the values P V multiplies.
 */
static __global__ void __launch_bounds__(ATTN_THREADS) attn_tile_kernel(struct cuk_attn a)
{
	/* Two stages of K and V: one computed on while the next arrives. */
	__shared__ __align__(32) uint16_t kv_s[2][2][TILE_KEYS][TILE_LD];
	__shared__ __align__(32) float s_s[ATTN_WARPS][16][TILE_S_LD];
	__shared__ __align__(32) float rid_s[16][16];
	__shared__ float corr_s[ATTN_WARPS][16];
	/* Before the walk, q of the tile's rows: [TILE_ROWS][TILE_LD] over stage 0. */
	uint16_t (*q_s)[TILE_LD] = &kv_s[0][0][0];
	/* Each warp's weights P lie over its scores: all fits 48 KB of static shared memory. */
	uint16_t (*p_s)[TILE_P_LD];
	const struct cuk_attn_tile t = a.tiles[blockIdx.x];
	const uint32_t h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	const uint32_t d = a.head_dim, nf = d / 16, r0 = 16 * warp;
	const uint32_t kvh = h / (a.n_head / a.n_head_kv);
	/* Lanes 2r and 2r + 1 keep row r of the warp's 16: columns half * 16 .. +15. */
	const uint32_t sr = lane / 2, half = lane % 2;
	const bool busy = r0 < (uint32_t)t.n;
	const int32_t *bt, *pos;
	int64_t last, wlast, prow, k0;
	tile_a qf[TILE_FRAGS];
	tile_c of[TILE_FRAGS], rid;
	float m = -INFINITY, l = 0.0f;
	uint32_t i, c, st;

	if (t.n < 1 || t.n > TILE_ROWS)
		return;
	p_s = reinterpret_cast<uint16_t (*)[TILE_P_LD]>(&s_s[warp][0][0]);
	bt = a.bt + a.row_bt[t.row];
	pos = a.row_pos + t.row;
	/* Rows past the tile's end (in the last warp) act as its last row. */
	last = pos[t.n - 1];
	wlast = pos[min(r0 + 15, (uint32_t)t.n - 1)];
	prow = pos[min(r0 + sr, (uint32_t)t.n - 1)];

	for (i = threadIdx.x; i < 256; i += blockDim.x)
		rid_s[i / 16][i % 16] = (float)(i / 16);
	for (i = threadIdx.x; i < TILE_ROWS * d; i += blockDim.x) {
		const uint32_t r = i / d, e = i % d;

		bf16_store(&q_s[r][e], r < (uint32_t)t.n ?
			   a.q[(uint64_t)(t.row + r) * a.ldq + (uint64_t)h * d + e] : 0.0f);
	}
	__syncthreads();
	nvcuda::wmma::load_matrix_sync(rid, &rid_s[0][0], 16, nvcuda::wmma::mem_row_major);
#pragma unroll
	for (c = 0; c < TILE_FRAGS; c++) {
		if (c >= nf)
			break;
		nvcuda::wmma::load_matrix_sync(qf[c], as_bf16(&q_s[r0][16 * c]), TILE_LD);
		nvcuda::wmma::fill_fragment(of[c], 0.0f);
	}
	__syncthreads();	/* q_s is stage 0: read before the keys overwrite it */

	tile_fetch_keys(kv_s[0], &a, bt, kvh, 0, last);
	for (k0 = 0, st = 0; k0 <= last; k0 += TILE_KEYS, st ^= 1) {
		const bool more = k0 + TILE_KEYS <= last;

		/* The next stage was last read before the barrier that ended the walk's step. */
		if (more)
			tile_fetch_keys(kv_s[st ^ 1], &a, bt, kvh, k0 + TILE_KEYS, last);
		__pipeline_wait_prior(more ? 1 : 0);
		__syncthreads();	/* every thread's copies of this stage are in */
		/* The whole warp skips a block all of whose keys its rows are before. */
		if (busy && k0 <= wlast) {
			float corr;

			tile_scores(s_s[warp], qf, kv_s[st][0], nf);
			__syncwarp();
			corr = tile_softmax(s_s[warp][sr], p_s[sr], k0, prow, half, a.scale,
					    &m, &l);
			if (!half)
				corr_s[warp][sr] = corr;
			__syncwarp();
#pragma unroll
			for (c = 0; c < TILE_FRAGS; c++) {
				if (c >= nf)
					break;
				for (i = 0; i < (uint32_t)of[c].num_elements; i++)
					of[c].x[i] *= corr_s[warp][(uint32_t)rid.x[i]];
			}
			tile_pv(of, p_s, kv_s[st][1], nf);
		}
		__syncthreads();	/* every warp is done with these keys */
	}

	if (!busy)
		return;
	/* O / l, row by row, through the warp's score buffer. */
	if (!half)
		corr_s[warp][sr] = 1.0f / l;
	__syncwarp();
#pragma unroll
	for (c = 0; c < TILE_FRAGS; c++) {
		if (c >= nf)
			break;
		nvcuda::wmma::store_matrix_sync(&s_s[warp][0][0], of[c], TILE_S_LD,
						nvcuda::wmma::mem_row_major);
		__syncwarp();
		for (i = lane; i < 256; i += 32) {
			const uint32_t r = i / 16, e = i % 16;

			if (r0 + r < (uint32_t)t.n)
				bf16_store(a.out + (uint64_t)(t.row + r0 + r) * a.n_head * d +
					   (uint64_t)h * d + 16 * c + e,
					   s_s[warp][r][e] * corr_s[warp][r]);
		}
		__syncwarp();
	}
}

/**
 * cuk_attention() - causal paged attention of a step's rows, one layer
 * @s:		the stream
 * @a:		inputs, outputs and shape (see &struct cuk_attn)
 *
 * Every row's K and V, its own included, must be in the cache already
 * (cuk_kv_store() first). Returns cudaErrorInvalidValue for a head longer
 * than CUK_ATTN_MAX_HEAD_DIM, split counts outside 1 .. CUK_ATTN_MAX_SPLITS,
 * a GQA that does not divide, or tiles of a head cuk_attn_tiles_fit()
 * refuses.
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_attention(cudaStream_t s, const struct cuk_attn *a)
{
	const bool grouped = a->n_head_kv && a->n_head / a->n_head_kv <= ATTN_MAX_GROUP;
	dim3 grid(a->n_rows, grouped ? a->n_head_kv : a->n_head, a->n_splits);
	cudaError_t e;

	if (!a->head_dim || a->head_dim > CUK_ATTN_MAX_HEAD_DIM || !a->n_splits ||
	    a->n_splits > CUK_ATTN_MAX_SPLITS || !a->split_len || !a->n_head_kv ||
	    a->n_head % a->n_head_kv || (a->n_splits > 1 && !a->part) ||
	    (a->n_tiles && (!a->tiles || !cuk_attn_tiles_fit(a->head_dim))))
		return cudaErrorInvalidValue;
	if (a->n_tiles) {
		CUK_LAUNCH(attn_tile_kernel, dim3(a->n_tiles, a->n_head), ATTN_THREADS, s)(*a);
		e = cudaGetLastError();
		if (e != cudaSuccess)
			return e;
	}
	if (!a->n_rows)
		return cudaSuccess;
	if (grouped)
		CUK_LAUNCH(attn_group_kernel, grid, ATTN_THREADS, s)(*a);
	else
		CUK_LAUNCH(attn_kernel, grid, ATTN_THREADS, s)(*a);
	if (a->n_splits > 1) {
		e = cudaGetLastError();
		if (e != cudaSuccess)
			return e;
		CUK_LAUNCH(attn_merge_kernel, dim3(a->n_rows, a->n_head), ATTN_THREADS, s)(*a);
	}
	return cudaGetLastError();
}
