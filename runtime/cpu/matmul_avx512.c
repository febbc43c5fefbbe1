// SPDX-License-Identifier: GPL-2.0
/*
 * Matrix kernels for AVX-512F: 16-lane vectors, micro-tiles of up to 4 rows
 * of x by 8 rows of W in the 32 ZMM registers; packed micro-tiles of 4 by 6
 * (24 accumulators, 6 W vectors, one x vector). The body is matmul_tmpl.h;
 * this file supplies the vector vocabulary.
 *
 * Built with -DLLMQ_CPU_SIMDE (and -mavx2 -mfma -mf16c) the same source
 * compiles against SIMDe's portable AVX-512 into matmul_avx512_simde, so the
 * tests execute this path's code on machines without AVX-512. SIMDe splits
 * each 512-bit operation into two native 256-bit ones (FMA stays fused), so
 * the emulated kernels round exactly as the real ones. (Add -Wno-psabi:
 * SIMDe's headers pass 512-bit unions by value, which GCC notes.)
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "matmul.h"

#if defined(LLMQ_CPU_SIMDE)
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>

#define TARGET
#define M512(op)	simde_mm512_##op
#define M256(op)	simde_mm256_##op
#define M128(op)	simde_mm_##op
#define KERNELS_NAME	matmul_avx512_simde
#define PATH_NAME	"avx512-simde"
typedef simde__m512 vec;
typedef simde__m512i vec_i;
typedef simde__m256i half_i;
typedef simde__m128i quarter_i;
#elif defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TARGET		__attribute__((target("avx512f,avx2,fma,f16c")))
#define M512(op)	_mm512_##op
#define M256(op)	_mm256_##op
#define M128(op)	_mm_##op
#define KERNELS_NAME	matmul_avx512
#define PATH_NAME	"avx512"
typedef __m512 vec;
typedef __m512i vec_i;
typedef __m256i half_i;
typedef __m128i quarter_i;
#endif

#ifdef M512
#define VL		16
#define NR1		8
#define NR2		6
#define NR3		4
#define NR4		4
#define PMR		4
#define PNR		6
#define ROWS_PROLOGUE()	do { } while (0)
/* up to 32 rows of F16 / BF16 x, 4 x 4 in-register tiles beat the packed
 * path on a Zen 5 EPYC (bench_kernels --k 768 --m 32: 313-382 against
 * 274-296 GFLOP/s; level at 64 rows) */
#define PACK_MIN_M_HALF	33
#define VI		static inline __attribute__((always_inline)) TARGET

VI vec v_zero(void)
{
	return M512(setzero_ps)();
}

VI vec v_set1(float f)
{
	return M512(set1_ps)(f);
}

VI vec v_load(const float *p)
{
	return M512(loadu_ps)(p);
}

VI void v_store(float *p, vec v)
{
	M512(storeu_ps)(p, v);
}

VI vec v_fma(vec a, vec b, vec c)
{
	return M512(fmadd_ps)(a, b, c);
}

VI vec v_mul(vec a, vec b)
{
	return M512(mul_ps)(a, b);
}

VI vec v_sub(vec a, vec b)
{
	return M512(sub_ps)(a, b);
}

VI vec v_keep(vec v)
{
#if defined(LLMQ_CPU_SIMDE)
	__asm__("" : "+m"(v));
#else
	__asm__("" : "+v"(v));
#endif
	return v;
}

/* the two 256-bit halves added, then the AVX2 order within them */
VI float v_hsum(vec v)
{
	__m256 lo = M512(castps512_ps256)(v);
	__m256 hi = M256(castpd_ps)(M512(extractf64x4_pd)(M512(castps_pd)(v), 1));
	__m256 h = M256(add_ps)(lo, hi);
	__m128 s = M128(add_ps)(M256(castps256_ps128)(h), M256(extractf128_ps)(h, 1));

	s = M128(add_ps)(s, M128(movehl_ps)(s, s));
	s = M128(add_ss)(s, M128(shuffle_ps)(s, s, 1));
	return M128(cvtss_f32)(s);
}

#if defined(LLMQ_CPU_SIMDE)
/* Two 256-bit halves into one 512-bit vector (SIMDe 0.7 lacks some widenings). */
VI vec join_ps(__m256 lo, __m256 hi)
{
	return M512(castpd_ps)(M512(insertf64x4)(M512(castpd256_pd512)(M256(castps_pd)(lo)),
						 M256(castps_pd)(hi), 1));
}
#endif

VI vec v_load_f16(const uint8_t *p)
{
#if defined(LLMQ_CPU_SIMDE)
	quarter_i lo = M128(loadu_si128)((const void *)p);
	quarter_i hi = M128(loadu_si128)((const void *)(p + 16));

	return join_ps(M256(cvtph_ps)(lo), M256(cvtph_ps)(hi));
#else
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
#endif
}

VI vec v_load_bf16(const uint8_t *p)
{
#if defined(LLMQ_CPU_SIMDE)
	quarter_i lo = M128(loadu_si128)((const void *)p);
	quarter_i hi = M128(loadu_si128)((const void *)(p + 16));

	return join_ps(M256(castsi256_ps)(M256(slli_epi32)(M256(cvtepu16_epi32)(lo), 16)),
		       M256(castsi256_ps)(M256(slli_epi32)(M256(cvtepu16_epi32)(hi), 16)));
#else
	vec_i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
#endif
}

VI vec v_load_i8(const uint8_t *p)
{
#if defined(LLMQ_CPU_SIMDE)
	quarter_i lo = M128(loadl_epi64)((const void *)p);
	quarter_i hi = M128(loadl_epi64)((const void *)(p + 8));

	return join_ps(M256(cvtepi32_ps)(M256(cvtepi8_epi32)(lo)),
		       M256(cvtepi32_ps)(M256(cvtepi8_epi32)(hi)));
#else
	return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
#endif
}

VI vec v_load_u4(const uint8_t *p, int hi)
{
#if defined(LLMQ_CPU_SIMDE)
	half_i a = M256(cvtepu8_epi32)(M128(loadl_epi64)((const void *)p));
	half_i b = M256(cvtepu8_epi32)(M128(loadl_epi64)((const void *)(p + 8)));
	half_i mask = M256(set1_epi32)(0x0f);

	a = hi ? M256(srli_epi32)(a, 4) : M256(and_si256)(a, mask);
	b = hi ? M256(srli_epi32)(b, 4) : M256(and_si256)(b, mask);
	return join_ps(M256(cvtepi32_ps)(a), M256(cvtepi32_ps)(b));
#else
	vec_i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));

	b = hi ? _mm512_srli_epi32(b, 4) : _mm512_and_si512(b, _mm512_set1_epi32(0x0f));
	return _mm512_cvtepi32_ps(b);
#endif
}

/*
 * Byte-wise in one XMM register: shifting 16-bit lanes moves a neighbour's
 * bits only above the mask (mask <= 3, sh + 2 <= 8 where mask is 3).
 */
VI vec v_load_u4h(const uint8_t *p, int hi, const uint8_t *h, int sh, int mask)
{
	quarter_i b = M128(loadu_si128)((const void *)p);
	quarter_i t = M128(loadu_si128)((const void *)h);
	quarter_i lo = M128(set1_epi8)(0x0f);

	b = M128(and_si128)(hi ? M128(srli_epi16)(b, 4) : b, lo);
	t = M128(and_si128)(M128(srl_epi16)(t, M128(cvtsi32_si128)(sh)),
			    M128(set1_epi8)((char)mask));
	b = M128(or_si128)(b, M128(slli_epi16)(t, 4));
#if defined(LLMQ_CPU_SIMDE)
	return join_ps(M256(cvtepi32_ps)(M256(cvtepu8_epi32)(b)),
		       M256(cvtepi32_ps)(M256(cvtepu8_epi32)(M128(srli_si128)(b, 8))));
#else
	return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
#endif
}

VI vec v_load_u4b(const uint8_t *p, int hi, uint32_t qh, int e)
{
#if defined(LLMQ_CPU_SIMDE)
	half_i sh = M256(add_epi32)(M256(setr_epi32)(0, 1, 2, 3, 4, 5, 6, 7), M256(set1_epi32)(e));
	half_i h = M256(set1_epi32)((int)qh), one = M256(set1_epi32)(1);
	half_i a = M256(cvtepu8_epi32)(M128(loadl_epi64)((const void *)p));
	half_i b = M256(cvtepu8_epi32)(M128(loadl_epi64)((const void *)(p + 8)));
	half_i ha = M256(and_si256)(M256(srlv_epi32)(h, sh), one);
	half_i hb = M256(and_si256)(M256(srlv_epi32)(h, M256(add_epi32)(sh, M256(set1_epi32)(8))),
				   one);
	half_i mask = M256(set1_epi32)(0x0f);

	a = hi ? M256(srli_epi32)(a, 4) : M256(and_si256)(a, mask);
	b = hi ? M256(srli_epi32)(b, 4) : M256(and_si256)(b, mask);
	a = M256(or_si256)(a, M256(slli_epi32)(ha, 4));
	b = M256(or_si256)(b, M256(slli_epi32)(hb, 4));
	return join_ps(M256(cvtepi32_ps)(a), M256(cvtepi32_ps)(b));
#else
	vec_i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
	vec_i sh = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
						      13, 14, 15), _mm512_set1_epi32(e));
	vec_i h = _mm512_srlv_epi32(_mm512_set1_epi32((int)qh), sh);

	b = hi ? _mm512_srli_epi32(b, 4) : _mm512_and_si512(b, _mm512_set1_epi32(0x0f));
	h = _mm512_slli_epi32(_mm512_and_si512(h, _mm512_set1_epi32(1)), 4);
	return _mm512_cvtepi32_ps(_mm512_or_si512(b, h));
#endif
}

VI float s_f16(const uint8_t *p)
{
	return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
}

#include "matmul_tmpl.h"

const struct matmul_kernels KERNELS_NAME = MATMUL_KERNELS(PATH_NAME);

#else
const struct matmul_kernels matmul_avx512 = { .name = "avx512" };
#endif
