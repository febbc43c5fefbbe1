// SPDX-License-Identifier: GPL-2.0
/*
 * Element types: the table of ggml block layouts, IEEE half and bfloat16
 * conversion, and (de)quantisation of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 * Q5_K and Q6_K following the reference definitions of ggml (ggml-quants.c's *_ref and
 * dequantize_row_* routines).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "dtype.h"

static const struct dtype_info types[GGML_TYPE_COUNT] = {
	[GGML_TYPE_F32]		= { "F32",	1,	4,	true },
	[GGML_TYPE_F16]		= { "F16",	1,	2,	true },
	[GGML_TYPE_Q4_0]	= { "Q4_0",	32,	18,	true },
	[GGML_TYPE_Q4_1]	= { "Q4_1",	32,	20,	true },
	[GGML_TYPE_Q5_0]	= { "Q5_0",	32,	22,	true },
	[GGML_TYPE_Q5_1]	= { "Q5_1",	32,	24,	true },
	[GGML_TYPE_Q8_0]	= { "Q8_0",	32,	34,	true },
	[GGML_TYPE_Q8_1]	= { "Q8_1",	32,	36,	false },
	[GGML_TYPE_Q2_K]	= { "Q2_K",	256,	84,	false },
	[GGML_TYPE_Q3_K]	= { "Q3_K",	256,	110,	false },
	[GGML_TYPE_Q4_K]	= { "Q4_K",	256,	144,	true },
	[GGML_TYPE_Q5_K]	= { "Q5_K",	256,	176,	true },
	[GGML_TYPE_Q6_K]	= { "Q6_K",	256,	210,	true },
	[GGML_TYPE_Q8_K]	= { "Q8_K",	256,	292,	false },
	[GGML_TYPE_I8]		= { "I8",	1,	1,	false },
	[GGML_TYPE_I16]		= { "I16",	1,	2,	false },
	[GGML_TYPE_I32]		= { "I32",	1,	4,	false },
	[GGML_TYPE_I64]		= { "I64",	1,	8,	false },
	[GGML_TYPE_F64]		= { "F64",	1,	8,	false },
	[GGML_TYPE_BF16]	= { "BF16",	1,	2,	true },
};

/**
 * dtype_info() - the layout of a GGUF tensor type
 * @type:	enum ggml_type value from a file
 *
 * Return: its description, or NULL for a number GGUF does not define here.
 */
const struct dtype_info *dtype_info(uint32_t type)
{
	if (type >= GGML_TYPE_COUNT || !types[type].size)
		return NULL;
	return &types[type];
}

/**
 * dtype_row_bytes() - bytes of @n elements of @type, checked
 * @type:	element type
 * @n:		element count
 * @bytes:	the size
 *
 * Return: 0; -EINVAL for an unknown type or @n not a whole number of blocks;
 * -EOVERFLOW if the size does not fit 64 bits.
 */
int dtype_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes)
{
	const struct dtype_info *ti = dtype_info(type);
	uint64_t blocks;

	if (!ti || n % ti->block)
		return -EINVAL;
	blocks = n / ti->block;
	if (blocks > UINT64_MAX / ti->size)
		return -EOVERFLOW;
	*bytes = blocks * ti->size;
	return 0;
}

/**
 * fp16_to_fp32() - IEEE 754 binary16 to binary32, exactly
 * @h:		the half's bits
 *
 * Return: the value (subnormals, infinities and NaNs included).
 */
float fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000 | (man << 13);
	} else if (exp) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man) {
		/* subnormal half: normalise */
		exp = 113;
		while (!(man & 0x400)) {
			man <<= 1;
			exp--;
		}
		bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
	} else {
		bits = sign;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/**
 * fp32_to_fp16() - binary32 to binary16, round to nearest even
 * @f:		the value
 *
 * Return: the half's bits; overflow gives infinity, NaN stays NaN.
 */
uint16_t fp32_to_fp16(float f)
{
	uint32_t x, sign, mant;
	int32_t exp;
	uint32_t h;

	memcpy(&x, &f, sizeof(x));
	sign = (x >> 16) & 0x8000;
	exp = (int32_t)((x >> 23) & 0xff);
	mant = x & 0x7fffff;
	if (exp == 0xff)
		return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
	exp -= 127 - 15;
	if (exp >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		uint32_t shift, half, rem;

		if (exp < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		shift = (uint32_t)(14 - exp);
		h = mant >> shift;
		rem = mant & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	h = ((uint32_t)exp << 10) | (mant >> 13);
	if ((mant & 0x1fff) > 0x1000 || ((mant & 0x1fff) == 0x1000 && (h & 1)))
		h++;	/* may carry into the exponent, up to infinity: correct */
	return (uint16_t)(sign | h);
}

/**
 * bf16_to_fp32() - bfloat16 to binary32, exactly
 * @h:		the bfloat16's bits
 *
 * Return: the value.
 */
float bf16_to_fp32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

/**
 * fp32_to_bf16() - binary32 to bfloat16, round to nearest even
 * @f:		the value
 *
 * Return: the bfloat16's bits; NaN stays a quiet NaN.
 */
uint16_t fp32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Q8_0: 32 int8 with one half scale: x = d * q. */
static void dequant_q8_0(const uint8_t *b, float *y, uint64_t nb)
{
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, b += 34, y += 32) {
		float d = fp16_to_fp32(rd16(b));

		for (j = 0; j < 32; j++)
			y[j] = d * (float)(int8_t)b[2 + j];
	}
}

/* Q4_0: 32 nibbles, low halves first, offset 8: x = d * (q - 8). */
static void dequant_q4_0(const uint8_t *b, float *y, uint64_t nb)
{
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, b += 18, y += 32) {
		float d = fp16_to_fp32(rd16(b));

		for (j = 0; j < 16; j++) {
			y[j] = d * (float)((b[2 + j] & 0x0f) - 8);
			y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
		}
	}
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Q4_1, Q5_0 and Q5_1: 32 values, low nibbles the first 16 as Q4_0's.
 * Q5_0 and Q5_1 put the fifth bit of value j at bit j of a 32-bit qh
 * before the nibbles. Q4_1 and Q5_1 have a half min m after d and no
 * offset: x = d * q + m; Q5_0's offset is 16: x = d * (q - 16).
 */
static void dequant_q32(uint32_t type, const uint8_t *b, float *y, uint64_t nb)
{
	const bool min = type != GGML_TYPE_Q5_0, five = type != GGML_TYPE_Q4_1;
	const uint32_t bs = dtype_info(type)->size, qs = 2 + 2 * min + 4 * five;
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, b += bs, y += 32) {
		float d = fp16_to_fp32(rd16(b)), m = min ? fp16_to_fp32(rd16(b + 2)) : 0;
		uint32_t qh = five ? rd32(b + 2 + 2 * min) : 0;

		for (j = 0; j < 32; j++) {
			int q = (b[qs + j % 16] >> (j / 16 * 4) & 0x0f) | (qh >> j & 1) << 4;

			if (min)
				y[j] = (float)q * d + m;
			else
				y[j] = (float)(q - 16) * d;
		}
	}
}

/* The 6-bit scale and min of sub-block @j of a Q4_K block. */
static void q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/*
 * Q4_K: 256 values in 8 sub-blocks of 32, each with a 6-bit scale and min
 * under the block's half d and dmin: x = d * sc * q - dmin * m. Q5_K
 * (@five): the same with a fifth bit per weight, qh (32 bytes: bit j of
 * byte l is the high bit of weight l of sub-block j) between the scales
 * and the 128 bytes of nibbles: x = d * sc * (q + 16 h) - dmin * m.
 */
static void dequant_kq(const uint8_t *b, float *y, uint64_t nb, bool five)
{
	const uint32_t bs = five ? 176 : 144;
	uint64_t i;
	int j, l, is;

	for (i = 0; i < nb; i++, b += bs) {
		float d = fp16_to_fp32(rd16(b)), dmin = fp16_to_fp32(rd16(b + 2));
		const uint8_t *scales = b + 4, *qh = b + 16, *q = b + (five ? 48 : 16);

		for (j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
			uint8_t sc, m;
			float d1, m1, d2, m2;

			q4k_scale_min(is, scales, &sc, &m);
			d1 = d * sc;
			m1 = dmin * m;
			q4k_scale_min(is + 1, scales, &sc, &m);
			d2 = d * sc;
			m2 = dmin * m;
			for (l = 0; l < 32; l++)
				*y++ = d1 * (float)((q[l] & 0x0f) |
						    (five ? (qh[l] >> is & 1) << 4 : 0)) - m1;
			for (l = 0; l < 32; l++)
				*y++ = d2 * (float)((q[l] >> 4) |
						    (five ? (qh[l] >> (is + 1) & 1) << 4 : 0)) - m2;
		}
	}
}

/*
 * Q6_K: 256 six-bit weights in 16 sub-blocks of 16, each with an int8 scale
 * under the block's half d, which comes last: ql (128 bytes of low nibbles),
 * qh (64 bytes of high bit pairs), the 16 scales, d. Each half of 128
 * weights takes 64 bytes of ql and 32 of qh: its weight 32 g + l (g < 4,
 * l < 32) is nibble g / 2 of ql[l + 32 (g % 2)] with bits 2g, 2g + 1 of
 * qh[l] above it, under scale 8 (half) + l / 16 + 2g.
 * x = d * sc * (q - 32).
 */
static void dequant_q6_k(const uint8_t *b, float *y, uint64_t nb)
{
	uint64_t i;
	int n, g, l;

	for (i = 0; i < nb; i++, b += 210) {
		float d = fp16_to_fp32(rd16(b + 208));
		const uint8_t *ql = b, *qh = b + 128;
		const int8_t *sc = (const int8_t *)(b + 192);

		for (n = 0; n < 2; n++, ql += 64, qh += 32, sc += 8) {
			for (g = 0; g < 4; g++) {
				for (l = 0; l < 32; l++) {
					int lo = ql[l + 32 * (g & 1)] >> (4 * (g >> 1)) & 0x0f;
					int q = (lo | ((qh[l] >> (2 * g)) & 3) << 4) - 32;

					*y++ = d * (float)sc[l / 16 + 2 * g] * (float)q;
				}
			}
		}
	}
}

/**
 * dequantize() - expand @n elements of @type to float
 * @type:	element type
 * @src:	packed data
 * @dst:	@n floats
 * @n:		element count, a whole number of blocks
 *
 * Return: 0, or -EINVAL for a type llmq does not read or a partial block.
 */
int dequantize(uint32_t type, const void *src, float *dst, uint64_t n)
{
	const struct dtype_info *ti = dtype_info(type);
	const uint8_t *s = src;
	uint64_t i;

	if (!ti || !ti->supported || n % ti->block)
		return -EINVAL;
	switch (type) {
	case GGML_TYPE_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case GGML_TYPE_F16:
		for (i = 0; i < n; i++)
			dst[i] = fp16_to_fp32(rd16(s + 2 * i));
		break;
	case GGML_TYPE_BF16:
		for (i = 0; i < n; i++)
			dst[i] = bf16_to_fp32(rd16(s + 2 * i));
		break;
	case GGML_TYPE_Q8_0:
		dequant_q8_0(s, dst, n / QK8_0);
		break;
	case GGML_TYPE_Q4_0:
		dequant_q4_0(s, dst, n / QK4_0);
		break;
	case GGML_TYPE_Q4_1:
	case GGML_TYPE_Q5_0:
	case GGML_TYPE_Q5_1:
		dequant_q32(type, s, dst, n / 32);
		break;
	case GGML_TYPE_Q4_K:
	case GGML_TYPE_Q5_K:
		dequant_kq(s, dst, n / QK_K, type == GGML_TYPE_Q5_K);
		break;
	case GGML_TYPE_Q6_K:
		dequant_q6_k(s, dst, n / QK_K);
		break;
	}
	return 0;
}

/* ggml's quantize_row_q8_0_ref. */
static void quant_q8_0(const float *x, uint8_t *b, uint64_t nb)
{
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, x += 32, b += 34) {
		float amax = 0, d, id;

		for (j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		d = amax / 127;
		id = d ? 1.0f / d : 0.0f;
		wr16(b, fp32_to_fp16(d));
		for (j = 0; j < 32; j++)
			b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
	}
}

/* ggml's quantize_row_q4_0_ref. */
static void quant_q4_0(const float *x, uint8_t *b, uint64_t nb)
{
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, x += 32, b += 18) {
		float amax = 0, max = 0, d, id;

		for (j = 0; j < 32; j++) {
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		d = max / -8;
		id = d ? 1.0f / d : 0.0f;
		wr16(b, fp32_to_fp16(d));
		for (j = 0; j < 16; j++) {
			int x0 = (int)(x[j] * id + 8.5f), x1 = (int)(x[j + 16] * id + 8.5f);

			x0 = x0 > 15 ? 15 : x0;
			x1 = x1 > 15 ? 15 : x1;
			b[2 + j] = (uint8_t)(x0 | x1 << 4);
		}
	}
}

/*
 * Q4_1, Q5_0 and Q5_1 as ggml's reference quantisers: Q5_0 maps the value
 * of largest magnitude to -16 (Q4_0's way); Q4_1 and Q5_1 span min .. max
 * in 15 or 31 steps.
 */
static void quant_q32(uint32_t type, const float *x, uint8_t *b, uint64_t nb)
{
	const bool min = type != GGML_TYPE_Q5_0, five = type != GGML_TYPE_Q4_1;
	const uint32_t bs = dtype_info(type)->size, qs = 2 + 2 * min + 4 * five;
	const int top = five ? 31 : 15;
	uint64_t i;
	int j;

	for (i = 0; i < nb; i++, x += 32, b += bs) {
		float lo = x[0], hi = x[0], amax = 0, max = 0, d, id;
		uint32_t qh = 0;

		for (j = 0; j < 32; j++) {
			lo = fminf(lo, x[j]);
			hi = fmaxf(hi, x[j]);
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		d = min ? (hi - lo) / (float)top : max / -16;
		id = d ? 1.0f / d : 0.0f;
		wr16(b, fp32_to_fp16(d));
		if (min)
			wr16(b + 2, fp32_to_fp16(lo));
		memset(b + qs, 0, 16);
		for (j = 0; j < 32; j++) {
			int q = min ? (int)(roundf((x[j] - lo) * id)) : (int)(x[j] * id + 16.5f);

			q = q < 0 ? 0 : q > top ? top : q;
			b[qs + j % 16] |= (uint8_t)((q & 0x0f) << (j / 16 * 4));
			qh |= (uint32_t)(q >> 4) << j;
		}
		if (five) {
			b[2 + 2 * min] = (uint8_t)qh;
			b[3 + 2 * min] = (uint8_t)(qh >> 8);
			b[4 + 2 * min] = (uint8_t)(qh >> 16);
			b[5 + 2 * min] = (uint8_t)(qh >> 24);
		}
	}
}

/*
 * The 6-bit scales and mins of a Q4_K or Q5_K block's sub-blocks from their
 * float values (d = max / 63, dmin likewise), packed as q4k_scale_min()
 * reads them; the halves as stored go to @d and @dmin.
 */
static void kq_pack_scales(uint8_t *b, const float *sub_scale, const float *sub_min,
			   uint8_t *ls, uint8_t *lm, float *d, float *dmin)
{
	float max_scale = 0, max_min = 0;
	uint8_t *scales = b + 4;
	int j;

	for (j = 0; j < 8; j++) {
		max_scale = fmaxf(max_scale, sub_scale[j]);
		max_min = fmaxf(max_min, sub_min[j]);
	}
	wr16(b, fp32_to_fp16(max_scale / 63));
	wr16(b + 2, fp32_to_fp16(max_min / 63));
	*d = fp16_to_fp32(rd16(b));
	*dmin = fp16_to_fp32(rd16(b + 2));
	for (j = 0; j < 8; j++) {
		ls[j] = (uint8_t)(*d ? fminf(63, roundf(sub_scale[j] / *d)) : 0);
		lm[j] = (uint8_t)(*dmin ? fminf(63, roundf(sub_min[j] / *dmin)) : 0);
	}
	for (j = 0; j < 4; j++) {
		scales[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
		scales[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
		scales[j + 8] = (uint8_t)((ls[j + 4] & 0x0f) | (lm[j + 4] & 0x0f) << 4);
	}
}

/* Sub-block float scales and mins of a K-quant with @levels steps. */
static void kq_fit(const float *x, int levels, float *sub_scale, float *sub_min)
{
	int j, l;

	for (j = 0; j < 8; j++) {
		float lo = x[32 * j], hi = x[32 * j];

		for (l = 1; l < 32; l++) {
			lo = fminf(lo, x[32 * j + l]);
			hi = fmaxf(hi, x[32 * j + l]);
		}
		lo = fminf(lo, 0);
		sub_scale[j] = (hi - lo) / (float)levels;
		sub_min[j] = -lo;
	}
}

/* x's level under scale d1 and offset m1, in 0 .. max. */
static int kq_level(float x, float d1, float m1, int max)
{
	int q = d1 ? (int)roundf((x + m1) / d1) : 0;

	return q < 0 ? 0 : q > max ? max : q;
}

/*
 * Q4_K, and Q5_K (@five) over 32 levels, by a plain min/max fit per
 * sub-block (not ggml's iterative search: any valid encoding reads back
 * the same way).
 */
static void quant_kq(const float *x, uint8_t *b, uint64_t nb, bool five)
{
	const uint32_t bs = five ? 176 : 144;
	const int top = five ? 31 : 15;
	uint64_t i;
	int j, l;

	for (i = 0; i < nb; i++, x += QK_K, b += bs) {
		float sub_scale[8], sub_min[8], d, dmin;
		uint8_t ls[8], lm[8], *qh = b + 16, *q = b + (five ? 48 : 16);

		kq_fit(x, top, sub_scale, sub_min);
		kq_pack_scales(b, sub_scale, sub_min, ls, lm, &d, &dmin);
		if (five)
			memset(qh, 0, 32);
		for (j = 0; j < 8; j += 2) {
			float d1 = d * ls[j], m1 = dmin * lm[j];
			float d2 = d * ls[j + 1], m2 = dmin * lm[j + 1];

			for (l = 0; l < 32; l++) {
				int q0 = kq_level(x[32 * j + l], d1, m1, top);
				int q1 = kq_level(x[32 * (j + 1) + l], d2, m2, top);

				q[16 * j + l] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
				if (five)
					qh[l] |= (uint8_t)((q0 >> 4) << j | (q1 >> 4) << (j + 1));
			}
		}
	}
}

/*
 * Q6_K: each sub-block of 16 gets the scale that maps its largest magnitude
 * to -32 (as Q4_0 does), the block d = largest scale / 127 (int8 scales).
 */
static void quant_q6_k(const float *x, uint8_t *b, uint64_t nb)
{
	uint64_t i;
	int j, l, n, g;

	for (i = 0; i < nb; i++, x += QK_K, b += 210) {
		float sub_scale[16], max_scale = 0, d;
		uint8_t *ql = b, *qh = b + 128;
		int8_t *sc = (int8_t *)(b + 192);

		for (j = 0; j < 16; j++) {
			float amax = 0, max = 0;

			for (l = 0; l < 16; l++) {
				if (fabsf(x[16 * j + l]) > amax) {
					amax = fabsf(x[16 * j + l]);
					max = x[16 * j + l];
				}
			}
			sub_scale[j] = max / -32;
			max_scale = fmaxf(max_scale, fabsf(sub_scale[j]));
		}
		wr16(b + 208, fp32_to_fp16(max_scale / 127));
		d = fp16_to_fp32(rd16(b + 208));
		for (j = 0; j < 16; j++)
			sc[j] = (int8_t)(d ? fmaxf(-127, fminf(127, roundf(sub_scale[j] / d))) : 0);
		memset(b, 0, 192);
		/* weight 128 n + 32 g + l, as dequant_q6_k() reads it */
		for (n = 0; n < 2; n++) {
			for (g = 0; g < 4; g++) {
				for (l = 0; l < 32; l++) {
					int e = 128 * n + 32 * g + l;
					float d1 = d * sc[e / 16];
					int q = d1 ? (int)roundf(x[e] / d1) : 0;

					q = (q < -32 ? -32 : q > 31 ? 31 : q) + 32;
					ql[64 * n + l + 32 * (g & 1)] |= (uint8_t)((q & 0x0f) << (4 * (g >> 1)));
					qh[32 * n + l] |= (uint8_t)((q >> 4) << (2 * g));
				}
			}
		}
	}
}

/**
 * quantize() - pack @n floats as @type
 * @type:	F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K
 * @src:	the values
 * @dst:	room for dtype_row_bytes(@type, @n)
 * @n:		element count, a whole number of blocks
 *
 * Return: 0, or -EINVAL.
 */
int quantize(uint32_t type, const float *src, void *dst, uint64_t n)
{
	const struct dtype_info *ti = dtype_info(type);
	uint8_t *d = dst;
	uint64_t i;

	if (!ti || !ti->supported || n % ti->block)
		return -EINVAL;
	switch (type) {
	case GGML_TYPE_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case GGML_TYPE_F16:
		for (i = 0; i < n; i++)
			wr16(d + 2 * i, fp32_to_fp16(src[i]));
		break;
	case GGML_TYPE_BF16:
		for (i = 0; i < n; i++)
			wr16(d + 2 * i, fp32_to_bf16(src[i]));
		break;
	case GGML_TYPE_Q8_0:
		quant_q8_0(src, d, n / QK8_0);
		break;
	case GGML_TYPE_Q4_0:
		quant_q4_0(src, d, n / QK4_0);
		break;
	case GGML_TYPE_Q4_1:
	case GGML_TYPE_Q5_0:
	case GGML_TYPE_Q5_1:
		quant_q32(type, src, d, n / 32);
		break;
	case GGML_TYPE_Q4_K:
	case GGML_TYPE_Q5_K:
		quant_kq(src, d, n / QK_K, type == GGML_TYPE_Q5_K);
		break;
	case GGML_TYPE_Q6_K:
		quant_q6_k(src, d, n / QK_K);
		break;
	}
	return 0;
}
