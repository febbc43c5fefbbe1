// SPDX-License-Identifier: GPL-2.0
/*
 * Matrix kernels in portable C: 4-lane GCC vector extensions (one SSE2
 * register on a baseline x86-64 build, one NEON register on arm64); halves
 * widened exactly with integer operations on all four lanes at once (scalar
 * ones through a 64Ki-entry table). The body is matmul_tmpl.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "matmul.h"

#define TARGET
#define VL		4
#define NR1		4
#define NR2		4
#define NR3		3
#define NR4		2
#define PMR		4
#define PNR		3
#define VI		static inline __attribute__((always_inline))

typedef float vec __attribute__((vector_size(16)));
typedef int32_t vec_i32 __attribute__((vector_size(16)));
typedef uint32_t vec_u32 __attribute__((vector_size(16)));
typedef int8_t vec_i8 __attribute__((vector_size(4)));
typedef uint8_t vec_u8 __attribute__((vector_size(4)));
typedef uint16_t vec_u16 __attribute__((vector_size(8)));

static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void f16_table_fill(void)
{
	uint32_t h;

	for (h = 0; h < 65536; h++)
		f16_table[h] = fp16_to_fp32((uint16_t)h);
}

#define ROWS_PROLOGUE()	pthread_once(&f16_once, f16_table_fill)

VI vec v_zero(void)
{
	return (vec){ 0 };
}

VI vec v_set1(float f)
{
	return (vec){ f, f, f, f };
}

VI vec v_load(const float *p)
{
	vec v;

	memcpy(&v, p, sizeof(v));
	return v;
}

VI void v_store(float *p, vec v)
{
	memcpy(p, &v, sizeof(v));
}

/*
 * Keep products and sums separately rounded where the compiler could fuse
 * them (an FMA-capable target, or a fused multiply-add by default).
 */
VI vec v_keep(vec v)
{
#if defined(__FMA__) || defined(__FP_FAST_FMAF)
	__asm__("" : "+m"(v));
#endif
	return v;
}

VI vec v_fma(vec a, vec b, vec c)
{
	return v_keep(a * b) + c;
}

VI vec v_mul(vec a, vec b)
{
	return a * b;
}

VI vec v_sub(vec a, vec b)
{
	return a - b;
}

/* (l0 + l2) + (l1 + l3) */
VI float v_hsum(vec v)
{
	return (v[0] + v[2]) + (v[1] + v[3]);
}

/*
 * Half to float, exactly (subnormals, infinities, NaN): move exponent and
 * mantissa into place and rebias; exponent 31 gets the rest of the bias,
 * exponent 0 is rebuilt as 2^-14 * (1.m) - 2^-14 = 2^-14 * 0.m, an exact
 * float subtraction.
 */
VI vec v_load_f16(const uint8_t *p)
{
	const vec_u32 exp_mask = (vec_u32){ 0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000 };
	const vec magic = v_set1(6.103515625e-05f);	/* 2^-14 */
	vec_u16 h16;
	vec_u32 h, o, e, inf, zero;
	vec f;

	memcpy(&h16, p, sizeof(h16));
	h = __builtin_convertvector(h16, vec_u32);
	o = (h & 0x7fff) << 13;
	e = o & exp_mask;
	o += (127 - 15) << 23;
	inf = (vec_u32)(e == exp_mask);
	zero = (vec_u32)(e == 0);
	o += inf & ((128 - 16) << 23);
	o += zero & (1 << 23);
	f = (vec)o;
	f = (vec)(((vec_u32)(f - magic) & zero) | ((vec_u32)f & ~zero));
	return (vec)((vec_u32)f | ((h & 0x8000) << 16));
}

VI vec v_load_bf16(const uint8_t *p)
{
	vec_u16 h;
	vec_u32 u;

	memcpy(&h, p, sizeof(h));
	u = __builtin_convertvector(h, vec_u32) << 16;
	return (vec)u;
}

VI vec v_load_i8(const uint8_t *p)
{
	vec_i8 b;

	memcpy(&b, p, sizeof(b));
	return __builtin_convertvector(__builtin_convertvector(b, vec_i32), vec);
}

VI vec v_load_u4(const uint8_t *p, int hi)
{
	vec_u8 b;

	memcpy(&b, p, sizeof(b));
	b = hi ? b >> 4 : b & 0x0f;
	return __builtin_convertvector(__builtin_convertvector(b, vec_i32), vec);
}

VI vec v_load_u4h(const uint8_t *p, int hi, const uint8_t *h, int sh, int mask)
{
	vec_u8 b, t;

	memcpy(&b, p, sizeof(b));
	memcpy(&t, h, sizeof(t));
	b = hi ? b >> 4 : b & 0x0f;
	b |= ((t >> sh) & (uint8_t)mask) << 4;
	return __builtin_convertvector(__builtin_convertvector(b, vec_i32), vec);
}

VI vec v_load_u4b(const uint8_t *p, int hi, uint32_t qh, int e)
{
	vec_u8 b;
	vec_i32 q;

	memcpy(&b, p, sizeof(b));
	b = hi ? b >> 4 : b & 0x0f;
	q = __builtin_convertvector(b, vec_i32);
	q |= (vec_i32){ (int32_t)(qh >> e & 1), (int32_t)(qh >> (e + 1) & 1),
			(int32_t)(qh >> (e + 2) & 1), (int32_t)(qh >> (e + 3) & 1) } << 4;
	return __builtin_convertvector(q, vec);
}

VI float s_f16(const uint8_t *p)
{
	return f16_table[p[0] | p[1] << 8];
}

#include "matmul_tmpl.h"

const struct matmul_kernels matmul_portable = MATMUL_KERNELS("portable");
