// SPDX-License-Identifier: GPL-2.0
/*
 * Matrix kernels for AVX2 + FMA + F16C: 8-lane vectors, micro-tiles of up to
 * 4 rows of x by 4 rows of W in the 16 YMM registers; packed micro-tiles of
 * 4 by 3 (12 accumulators, 3 W vectors and one x vector: all 16). The body is
 * matmul_tmpl.h; this file supplies the vector vocabulary.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "matmul.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TARGET		__attribute__((target("avx2,fma,f16c")))
#define VL		8
#define NR1		4
#define NR2		4
#define NR3		3
#define NR4		2
#define PMR		4
#define PNR		3
#define ROWS_PROLOGUE()	do { } while (0)
#define VI		static inline __attribute__((always_inline)) TARGET

typedef __m256 vec;

VI vec v_zero(void)
{
	return _mm256_setzero_ps();
}

VI vec v_set1(float f)
{
	return _mm256_set1_ps(f);
}

VI vec v_load(const float *p)
{
	return _mm256_loadu_ps(p);
}

VI void v_store(float *p, vec v)
{
	_mm256_storeu_ps(p, v);
}

VI vec v_fma(vec a, vec b, vec c)
{
	return _mm256_fmadd_ps(a, b, c);
}

VI vec v_mul(vec a, vec b)
{
	return _mm256_mul_ps(a, b);
}

VI vec v_sub(vec a, vec b)
{
	return _mm256_sub_ps(a, b);
}

VI vec v_keep(vec v)
{
	__asm__("" : "+x"(v));
	return v;
}

/* ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) */
VI float v_hsum(vec v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

VI vec v_load_f16(const uint8_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

VI vec v_load_bf16(const uint8_t *p)
{
	__m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

VI vec v_load_i8(const uint8_t *p)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}

VI vec v_load_u4(const uint8_t *p, int hi)
{
	__m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));

	b = hi ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, _mm256_set1_epi32(0x0f));
	return _mm256_cvtepi32_ps(b);
}

/*
 * Byte-wise in one XMM register: shifting 16-bit lanes moves a neighbour's
 * bits only above the mask (mask <= 3, sh + 2 <= 8 where mask is 3).
 */
VI vec v_load_u4h(const uint8_t *p, int hi, const uint8_t *h, int sh, int mask)
{
	__m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
	__m128i t = _mm_loadl_epi64((const __m128i *)(const void *)h);
	__m128i lo = _mm_set1_epi8(0x0f);

	b = _mm_and_si128(hi ? _mm_srli_epi16(b, 4) : b, lo);
	t = _mm_and_si128(_mm_srl_epi16(t, _mm_cvtsi32_si128(sh)), _mm_set1_epi8((char)mask));
	b = _mm_or_si128(b, _mm_slli_epi16(t, 4));
	return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

VI vec v_load_u4b(const uint8_t *p, int hi, uint32_t qh, int e)
{
	__m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
	__m256i sh = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
				      _mm256_set1_epi32(e));
	__m256i h = _mm256_srlv_epi32(_mm256_set1_epi32((int)qh), sh);

	b = hi ? _mm256_srli_epi32(b, 4) : _mm256_and_si256(b, _mm256_set1_epi32(0x0f));
	h = _mm256_slli_epi32(_mm256_and_si256(h, _mm256_set1_epi32(1)), 4);
	return _mm256_cvtepi32_ps(_mm256_or_si256(b, h));
}

VI float s_f16(const uint8_t *p)
{
	return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
}

#include "matmul_tmpl.h"

const struct matmul_kernels matmul_avx2 = MATMUL_KERNELS("avx2");

#else
const struct matmul_kernels matmul_avx2 = { .name = "avx2" };
#endif
