// SPDX-License-Identifier: GPL-2.0
/*
 * The attention kernel for AVX2 + FMA + F16C: 8-lane vectors, products
 * contracted into FMAs, halves widened by vcvtph2ps. The body is
 * attn_tmpl.h.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "attention.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define VL		8
#define TARGET		__attribute__((target("avx2,fma,f16c")))
#define LOAD_F16(p)	((vf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define VMAX(a, b)	((vf)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define KERNELS_NAME	attn_avx2
#define PATH_NAME	"avx2"

#include "attn_tmpl.h"
#else
const struct attn_kernels attn_avx2 = { .name = "avx2" };
#endif
