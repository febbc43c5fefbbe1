// SPDX-License-Identifier: GPL-2.0
/*
 * The attention kernel for AVX-512F: 16-lane vectors. Built once more with
 * -DLLMQ_CPU_EMU as "avx512-emu", the same 16-lane code for AVX2 (GCC lowers
 * each vector to two; halves widened by the portable conversion), so
 * machines without AVX-512 test this path's arithmetic: results depend on
 * the lane count, not on the registers.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "attention.h"

#if defined(__x86_64__) || defined(__i386__)
#define VL		16
#if defined(LLMQ_CPU_EMU)
#define TARGET		__attribute__((target("avx2,fma")))
#define KERNELS_NAME	attn_avx512_emu
#define PATH_NAME	"avx512-emu"
#else
#include <immintrin.h>

#define TARGET		__attribute__((target("avx512f,fma")))
#define LOAD_F16(p)	((vf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p))))
#define VMAX(a, b)	((vf)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define KERNELS_NAME	attn_avx512
#define PATH_NAME	"avx512"
#endif

#include "attn_tmpl.h"
#elif !defined(LLMQ_CPU_EMU)
const struct attn_kernels attn_avx512 = { .name = "avx512" };
#endif
