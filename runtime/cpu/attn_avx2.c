// SPDX-License-Identifier: GPL-2.0
/*
 * The attention kernel for AVX2 + FMA: 8-lane vectors, products contracted
 * into FMAs. The body is attn_tmpl.h.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"

#if defined(__x86_64__) || defined(__i386__)
#define VL		8
#define TARGET		__attribute__((target("avx2,fma")))
#define KERNELS_NAME	attn_avx2
#define PATH_NAME	"avx2"

#include "attn_tmpl.h"
#else
const struct attn_kernels attn_avx2 = { .name = "avx2" };
#endif
