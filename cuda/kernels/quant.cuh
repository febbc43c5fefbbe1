/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading the quantised weights the backend keeps as they are (see &struct
 * cuk_qmat): 16 bytes of a row's weight plane at a time, as floats with
 * their scales. Shared by the products (quant.cu) and the embedding gather
 * (embed.cu).
 */
#ifndef LLMQ_CUDA_QUANT_CUH
#define LLMQ_CUDA_QUANT_CUH

#include <cuda_fp16.h>

#include "common.cuh"

/* Bytes of the weight plane one thread reads at a time: one 16-byte load. */
#define Q_CHUNK		16

/*
 * One chunk's weights: two runs of 16 consecutive columns (Q8_0's 16 bytes
 * are one run), run u being @s[u] * @w[u][i] - @m[u] at column @col[u] + i.
 * @m is Q4_K's only; @w are small integers, exact.
 */
struct qrun {
	float		w[2][16];
	float		s[2], m[2];
	uint32_t	col[2];
};

/* Runs of a chunk, and whether they have mins, by type. */
template <uint32_t T>
struct qt {
	static const int	runs = T == CUK_Q8_0 ? 1 : 2;
	static const bool	mins = T == CUK_Q4_K;
};

/* Bytes a row of the weight plane has. */
static __device__ __forceinline__ uint32_t q_row_bytes(uint32_t type, uint32_t k)
{
	return type == CUK_Q8_0 ? k : k / 2;
}

static __device__ __forceinline__ float q_half(const uint8_t *p)
{
	return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t *>(p)));
}

/*
 * The four bytes of @u as floats, less @off: the float whose bits are
 * 0x4b0000XX is 2^23 + XX, so a byte permute and a subtraction make each,
 * exactly, where a conversion instruction runs at 16 a cycle per SM (an
 * eighth of an H100's FP32 rate) and would be what a decode step waits for,
 * not its bytes.
 */
static __device__ __forceinline__ void q_bytes4(uint32_t u, float off, float *f)
{
	f[0] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7540u)) - off;
	f[1] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7541u)) - off;
	f[2] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7542u)) - off;
	f[3] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7543u)) - off;
}

/* Q4_K's 6-bit scale and min of sub-block @j from its 12 bytes @sc, as dtype.c reads them. */
static __device__ __forceinline__ void q4k_scale_min(uint32_t j, const uint8_t *sc, float *s,
						     float *m)
{
	if (j < 4) {
		*s = (float)(sc[j] & 63);
		*m = (float)(sc[j + 4] & 63);
	} else {
		*s = (float)((sc[j + 4] & 0x0f) | ((sc[j - 4] >> 6) << 4));
		*m = (float)((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4));
	}
}

/*
 * The chunk at byte @b of row @row's weights. Q8_0: 16 int8 of one block.
 * Q4_0: one block, its low nibbles columns 0-15, its high ones 16-31, less
 * 8. Q4_K: half of a pair of sub-blocks (2j, 2j + 1) whose 32 bytes hold
 * the first in their low nibbles, the second in their high ones; their
 * scales and mins times the super-block's d and dmin (exact: 11 bits by 6).
 */
template <uint32_t T>
static __device__ __forceinline__ void q_chunk(const struct cuk_qmat &w, uint32_t row, uint32_t b,
					       struct qrun &r)
{
	const uint4 v = *reinterpret_cast<const uint4 *>(w.q + (size_t)row *
							 q_row_bytes(T, w.k) + b);
	const uint32_t word[4] = { v.x, v.y, v.z, v.w };
	int i;

	if constexpr (T == CUK_Q8_0) {
		r.col[0] = b;
		r.s[0] = q_half(w.s + ((size_t)row * (w.k / 32) + b / 32) * 2);
		r.m[0] = 0.0f;
		/* q + 128 in each byte: 2^23 + 128 comes off. */
		for (i = 0; i < 4; i++)
			q_bytes4(word[i] ^ 0x80808080u, 8388736.0f, r.w[0] + 4 * i);
	} else {
		/* Q4_0's q - 8: 2^23 + 8 comes off. */
		const float off = T == CUK_Q4_0 ? 8388616.0f : 8388608.0f;

		for (i = 0; i < 4; i++) {
			q_bytes4(word[i] & 0x0f0f0f0fu, off, r.w[0] + 4 * i);
			q_bytes4(word[i] >> 4 & 0x0f0f0f0fu, off, r.w[1] + 4 * i);
		}
		if constexpr (T == CUK_Q4_0) {
			r.col[0] = b * 2;
			r.col[1] = b * 2 + 16;
			r.s[0] = r.s[1] = q_half(w.s + ((size_t)row * (w.k / 32) + b / 16) * 2);
			r.m[0] = r.m[1] = 0.0f;
		} else {
			const uint32_t sb = b / 128, j = b % 128 / 32;
			const uint8_t *h = w.s + ((size_t)row * (w.k / 256) + sb) * 16;
			const float d = q_half(h), dmin = q_half(h + 2);
			float sc, m;

			r.col[0] = sb * 256 + 64 * j + b % 32;
			r.col[1] = r.col[0] + 32;
			q4k_scale_min(2 * j, h + 4, &sc, &m);
			r.s[0] = d * sc;
			r.m[0] = dmin * m;
			q4k_scale_min(2 * j + 1, h + 4, &sc, &m);
			r.s[1] = d * sc;
			r.m[1] = dmin * m;
		}
	}
}

/* Weight i of run u: one rounding, as dtype.c's dequantisation has it. */
template <uint32_t T>
static __device__ __forceinline__ float q_weight(const struct qrun &r, int u, int i)
{
	/* Q4_K: d1 q is exact, so the FMA rounds d1 q - m1 once, as the host does. */
	if constexpr (qt<T>::mins)
		return fmaf(r.s[u], r.w[u][i], -r.m[u]);
	else
		return r.s[u] * r.w[u][i];
}

#endif /* LLMQ_CUDA_QUANT_CUH */
