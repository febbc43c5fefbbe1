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

#include <type_traits>

#include "common.cuh"

/* Bytes of the weight plane one thread reads at a time: one 16-byte load. */
#define Q_CHUNK		16

/*
 * One chunk's weights: two runs of 16 consecutive columns (Q8_0's 16 bytes
 * are one run), run u being @s[u] * @w[u][i] - @m[u] at column @col[u] + i.
 * @m is Q4_K's and Q5_K's only; @w are small integers, exact.
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
	static const bool	mins = T == CUK_Q4_K || T == CUK_Q5_K;
};

/* Bytes a row of the weight plane has (every type but Q8_0 has nibbles there). */
static __host__ __device__ __forceinline__ uint32_t q_row_bytes(uint32_t type, uint32_t k)
{
	return type == CUK_Q8_0 ? k : k / 2;
}

/*
 * The 16 bytes of high bits of row @row at byte @b of its plane (Q5_K: k / 8
 * bytes a row, Q6_K: k / 4), streamed as the weights are.
 */
template <uint32_t T>
static __device__ __forceinline__ uint4 q_high(const struct cuk_qmat &w, uint32_t row, uint32_t b)
{
	const uint32_t rb = T == CUK_Q5_K ? w.k / 8 : w.k / 4;

	return __ldcs(reinterpret_cast<const uint4 *>(w.h + (size_t)row * rb + b));
}

static __device__ __forceinline__ float q_half_bits(uint32_t h)
{
	return __half2float(__ushort_as_half((unsigned short)h));
}

static __device__ __forceinline__ float q_half(const uint8_t *p)
{
	return q_half_bits(*reinterpret_cast<const uint16_t *>(p));
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

/*
 * Byte @i (0 .. 11, not known at compile time) of a Q4_K header's scales,
 * the words @v.y, @v.z, @v.w: selects, where indexing an array of them
 * would put it in local memory.
 */
static __device__ __forceinline__ uint32_t q4k_byte(const uint4 &v, uint32_t i)
{
	const uint32_t w = i < 4 ? v.y : i < 8 ? v.z : v.w;

	return w >> (8 * (i % 4)) & 0xff;
}

/* Q4_K's 6-bit scale and min of sub-block @j from its header @v, as dtype.c reads them. */
static __device__ __forceinline__ void q4k_scale_min(uint32_t j, const uint4 &v, float *s,
						     float *m)
{
	if (j < 4) {
		*s = (float)(q4k_byte(v, j) & 63);
		*m = (float)(q4k_byte(v, j + 4) & 63);
	} else {
		*s = (float)((q4k_byte(v, j + 4) & 0x0f) | (q4k_byte(v, j - 4) >> 6) << 4);
		*m = (float)((q4k_byte(v, j + 4) >> 4) | (q4k_byte(v, j) >> 6) << 4);
	}
}

/*
 * The 16 bytes at byte @b of row @row's weights, streamed: each is read
 * once, and in L1 it would only push out x, which is read again.
 */
template <uint32_t T>
static __device__ __forceinline__ uint4 q_raw(const struct cuk_qmat &w, uint32_t row, uint32_t b)
{
	return __ldcs(reinterpret_cast<const uint4 *>(w.q + (size_t)row * q_row_bytes(T, w.k) +
						      b));
}

/*
 * The nibbles of the four words @word, low ones to run 0 and high ones to
 * run 1, each with (@hw >> @sh0 or @sh1) & @mask above it (Q5_K's and
 * Q6_K's high bits; @mask 0 for none), less @off.
 */
static __device__ __forceinline__ void q_nibbles(const uint32_t *word, const uint32_t *hw,
						 uint32_t sh0, uint32_t sh1, uint32_t mask,
						 float off, struct qrun &r)
{
	int i;

	for (i = 0; i < 4; i++) {
		q_bytes4((word[i] & 0x0f0f0f0fu) | (hw[i] >> sh0 & mask) << 4, off, r.w[0] + 4 * i);
		q_bytes4((word[i] >> 4 & 0x0f0f0f0fu) | (hw[i] >> sh1 & mask) << 4, off,
			 r.w[1] + 4 * i);
	}
}

/*
 * Q4_K's and Q5_K's half pair of sub-blocks 2j, 2j + 1 at byte @b of the
 * weight plane: columns, and scales and mins times the super-block's d and
 * dmin (exact: 11 bits by 6), from the 16-byte header in one load.
 */
template <uint32_t T>
static __device__ __forceinline__ void q4k_runs(const struct cuk_qmat &w, uint32_t row,
						uint32_t b, struct qrun &r)
{
	const uint32_t sb = b / 128, j = b % 128 / 32;
	const uint4 h = *reinterpret_cast<const uint4 *>(w.s + ((size_t)row * (w.k / 256) + sb) *
							 16);
	const float d = q_half_bits(h.x & 0xffff), dmin = q_half_bits(h.x >> 16);
	float sc, m;

	r.col[0] = sb * 256 + 64 * j + b % 32;
	r.col[1] = r.col[0] + 32;
	q4k_scale_min(2 * j, h, &sc, &m);
	r.s[0] = d * sc;
	r.m[0] = dmin * m;
	q4k_scale_min(2 * j + 1, h, &sc, &m);
	r.s[1] = d * sc;
	r.m[1] = dmin * m;
}

/*
 * The chunk @v, read at byte @b of row @row's weights, as runs. Q8_0: 16
 * int8 of one block. Q4_0: one block, its low nibbles columns 0-15, its
 * high ones 16-31, less 8. Q4_K: half of a pair of sub-blocks (2j, 2j + 1)
 * whose 32 bytes hold the first in their low nibbles, the second in their
 * high ones. Q5_K: the same, with bits 2j and 2j + 1 of the 16 matching
 * qh bytes above the nibbles. Q6_K: 16 bytes of one half's ql (64 bytes
 * for its groups g = 0 .. 3 of 32 weights: low nibbles g = 0 and 1, high
 * ones g = 2 and 3), bits 2g, 2g + 1 of its qh bytes above them, less 32;
 * a run is 16 weights under one int8 scale (exact times d: 11 bits by 8).
 *
 * Shifting a word of high bits moves the next byte's bits down, but no
 * lower than bit 8 - 7 = 1 (one bit kept: Q5_K) or 8 - 6 = 2 (two bits:
 * Q6_K), which the masks drop.
 */
template <uint32_t T>
static __device__ __forceinline__ void q_decode(const struct cuk_qmat &w, uint32_t row,
						uint32_t b, uint4 v, struct qrun &r)
{
	const uint32_t word[4] = { v.x, v.y, v.z, v.w };
	int i;

	if constexpr (T == CUK_Q8_0) {
		r.col[0] = b;
		r.s[0] = q_half(w.s + ((size_t)row * (w.k / 32) + b / 32) * 2);
		r.m[0] = 0.0f;
		/* q + 128 in each byte: 2^23 + 128 comes off. */
		for (i = 0; i < 4; i++)
			q_bytes4(word[i] ^ 0x80808080u, 8388736.0f, r.w[0] + 4 * i);
	} else if constexpr (T == CUK_Q4_0 || T == CUK_Q4_K) {
		const uint32_t none[4] = { 0, 0, 0, 0 };

		/* Q4_0's q - 8: 2^23 + 8 comes off. */
		q_nibbles(word, none, 0, 0, 0, T == CUK_Q4_0 ? 8388616.0f : 8388608.0f, r);
		if constexpr (T == CUK_Q4_0) {
			r.col[0] = b * 2;
			r.col[1] = b * 2 + 16;
			r.s[0] = r.s[1] = q_half(w.s + ((size_t)row * (w.k / 32) + b / 16) * 2);
			r.m[0] = r.m[1] = 0.0f;
		} else {
			q4k_runs<T>(w, row, b, r);
		}
	} else if constexpr (T == CUK_Q5_K) {
		const uint32_t j = b % 128 / 32;
		const uint4 hv = q_high<T>(w, row, b / 128 * 32 + b % 32);
		const uint32_t hw[4] = { hv.x, hv.y, hv.z, hv.w };

		q_nibbles(word, hw, 2 * j, 2 * j + 1, 0x01010101u, 8388608.0f, r);
		q4k_runs<T>(w, row, b, r);
	} else {
		const uint32_t sb = b / 128, n = b % 128 / 64, g = b % 64 / 32, l = b % 32;
		const uint4 hv = q_high<T>(w, row, sb * 64 + 32 * n + l);
		const uint32_t hw[4] = { hv.x, hv.y, hv.z, hv.w };
		const uint8_t *sc = w.s + ((size_t)row * (w.k / 256) + sb) * 18;
		const float d = q_half(sc + 16);

		/* q - 32: 2^23 + 32 comes off. */
		q_nibbles(word, hw, 2 * g, 2 * g + 4, 0x03030303u, 8388640.0f, r);
		r.col[0] = sb * 256 + 128 * n + 32 * g + l;
		r.col[1] = r.col[0] + 64;
		r.s[0] = d * (float)(int8_t)sc[8 * n + 2 * g + l / 16];
		r.s[1] = d * (float)(int8_t)sc[8 * n + 2 * g + 4 + l / 16];
		r.m[0] = r.m[1] = 0.0f;
	}
}

/* The chunk at byte @b of row @row, loaded and decoded. */
template <uint32_t T>
static __device__ __forceinline__ void q_chunk(const struct cuk_qmat &w, uint32_t row, uint32_t b,
					       struct qrun &r)
{
	q_decode<T>(w, row, b, q_raw<T>(w, row, b), r);
}

/*
 * @f(T) with T a std::integral_constant of @type, for each kept type: the
 * one place a launch picks its kernel's instantiation. The caller has
 * checked @type (q_shape_ok()).
 */
template <typename F>
static inline void q_by_type(uint32_t type, F f)
{
	switch (type) {
	case CUK_Q8_0:
		f(std::integral_constant<uint32_t, CUK_Q8_0>());
		break;
	case CUK_Q4_0:
		f(std::integral_constant<uint32_t, CUK_Q4_0>());
		break;
	case CUK_Q4_K:
		f(std::integral_constant<uint32_t, CUK_Q4_K>());
		break;
	case CUK_Q5_K:
		f(std::integral_constant<uint32_t, CUK_Q5_K>());
		break;
	case CUK_Q6_K:
		f(std::integral_constant<uint32_t, CUK_Q6_K>());
		break;
	}
}

/* Does @w have a kept type, whole blocks, and planes aligned for wide loads? */
static inline bool q_shape_ok(const struct cuk_qmat *w)
{
	const struct cuk_qtype *t = cuk_qtype(w->type);

	return t && w->k && w->k % t->block == 0 && (uintptr_t)w->q % 16 == 0 &&
	       (uintptr_t)w->s % 16 == 0 && (!t->high || (w->h && (uintptr_t)w->h % 16 == 0));
}

/* Weight i of run u: one rounding, as dtype.c's dequantisation has it. */
template <uint32_t T>
static __device__ __forceinline__ float q_weight(const struct qrun &r, int u, int i)
{
	/*
	 * Q4_K, Q5_K: d1 q is exact (17 bits by 5 at most), so the FMA rounds
	 * d1 q - m1 once, as the host does.
	 */
	if constexpr (qt<T>::mins)
		return fmaf(r.s[u], r.w[u][i], -r.m[u]);
	else
		return r.s[u] * r.w[u][i];
}

#endif /* LLMQ_CUDA_QUANT_CUH */
