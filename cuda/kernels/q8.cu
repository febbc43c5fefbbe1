// SPDX-License-Identifier: GPL-2.0
/*
 * Q8_0 weights as they came, on the device: a decode step's few rows times
 * a Q8_0 matrix, reading each weight once, and the matrix widened to BF16 a
 * slice at a time for cuBLAS where a step has more rows than that.
 *
 * A step of a few rows reads every weight for little arithmetic: it takes
 * as long as the bytes take, and Q8_0 is 1.0625 bytes a weight where BF16
 * is 2. A step of many rows is arithmetic, which the tensor cores do, and
 * they take BF16.
 */
#include <cuda_fp16.h>

#include "common.cuh"

/* Warps per block of the product, and weight rows per warp. */
#define Q8_WARPS	4
#define Q8_NR		2
/* Weights a lane takes at a time: one 16-byte load, half a Q8_0 block. */
#define Q8_LANE		16
#define Q8_STEP		(32 * Q8_LANE)

static __device__ __forceinline__ float q8_scale(const uint16_t *d)
{
	return __half2float(__ushort_as_half(*d));
}

/*
 * The four int8 weights of @word as floats, exactly. The float whose bits
 * are 0x4b0000XX is 2^23 + XX, so one byte permute and one subtraction make
 * each (q + 128 in the low byte, less 2^23 + 128), where a conversion
 * instruction runs at 16 a cycle per SM (an eighth of an H100's FP32 rate)
 * and would be what a decode step waits for, not its bytes.
 */
static __device__ __forceinline__ void q8_unpack4(uint32_t word, float *f)
{
	const uint32_t u = word ^ 0x80808080u;

	f[0] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7540u)) - 8388736.0f;
	f[1] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7541u)) - 8388736.0f;
	f[2] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7542u)) - 8388736.0f;
	f[3] = __uint_as_float(__byte_perm(u, 0x4b000000u, 0x7543u)) - 8388736.0f;
}

/* Eight BF16 of @v as floats (a BF16 is the high half of its float). */
static __device__ __forceinline__ void bf16_unpack8(uint4 v, float *f)
{
	const uint32_t w[4] = { v.x, v.y, v.z, v.w };

	for (int i = 0; i < 4; i++) {
		f[2 * i] = __uint_as_float(w[i] << 16);
		f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
	}
}

/*
 * A warp computes Q8_NR weight rows for all R rows of x: each lane takes 16
 * weights of each of its rows per step, so a warp reads 512 contiguous bytes
 * of a row at a time, and the x values it loads serve Q8_NR rows. The
 * lanes' partial sums meet in shared memory, not in R * Q8_NR rounds of
 * shuffles.
 */
template <int R>
static __global__ void __launch_bounds__(Q8_WARPS * 32)
q8_matvec_kernel(float *y, uint32_t ldy, float beta, struct cuk_q8 w, const uint16_t *x)
{
	/* 33 floats a row, so that the sums' reads hit 32 different banks. */
	__shared__ float sh[Q8_WARPS][R * Q8_NR][33];
	const unsigned int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const uint32_t n0 = (blockIdx.x * Q8_WARPS + warp) * Q8_NR;
	const uint32_t nb = w.k / CUK_Q8_BLOCK;
	float acc[R][Q8_NR], wf[Q8_NR][Q8_LANE], xf[Q8_LANE], ds[Q8_NR], dot;
	uint32_t c, row;
	int r, j, i;

	if (n0 >= w.n)
		return;
	for (r = 0; r < R; r++)
		for (j = 0; j < Q8_NR; j++)
			acc[r][j] = 0.0f;
	for (c = lane * Q8_LANE; c < w.k; c += Q8_STEP) {
		for (j = 0; j < Q8_NR; j++) {
			/* A warp past the last row reads that row again, and drops it. */
			row = min(n0 + j, w.n - 1);
			const uint4 q = *reinterpret_cast<const uint4 *>(w.q + (size_t)row * w.k +
									 c);

			ds[j] = q8_scale(w.d + (size_t)row * nb + c / CUK_Q8_BLOCK);
			q8_unpack4(q.x, wf[j]);
			q8_unpack4(q.y, wf[j] + 4);
			q8_unpack4(q.z, wf[j] + 8);
			q8_unpack4(q.w, wf[j] + 12);
		}
		for (r = 0; r < R; r++) {
			const uint4 *xp = reinterpret_cast<const uint4 *>(x + (size_t)r * w.k + c);

			bf16_unpack8(xp[0], xf);
			bf16_unpack8(xp[1], xf + 8);
			for (j = 0; j < Q8_NR; j++) {
				dot = 0.0f;
				for (i = 0; i < Q8_LANE; i++)
					dot = fmaf(xf[i], wf[j][i], dot);
				acc[r][j] = fmaf(ds[j], dot, acc[r][j]);
			}
		}
	}
	for (r = 0; r < R; r++)
		for (j = 0; j < Q8_NR; j++)
			sh[warp][r * Q8_NR + j][lane] = acc[r][j];
	__syncwarp();
	if (lane >= R * Q8_NR)
		return;
	r = lane / Q8_NR;
	j = lane % Q8_NR;
	if (n0 + j >= w.n)
		return;
	dot = 0.0f;
	for (i = 0; i < 32; i++)
		dot += sh[warp][lane][i];
	/* beta 0 reads nothing of y, as cuBLAS: it may be uninitialised. */
	float *out = y + (size_t)r * ldy + n0 + j;
	*out = beta != 0.0f ? fmaf(beta, *out, dot) : dot;
}

/* The product's kernel for each row count, 1 .. CUK_Q8_MATVEC_MAX_ROWS. */
static void (*const q8_matvec[])(float *, uint32_t, float, struct cuk_q8, const uint16_t *) = {
	q8_matvec_kernel<1>, q8_matvec_kernel<2>, q8_matvec_kernel<3>, q8_matvec_kernel<4>,
	q8_matvec_kernel<5>, q8_matvec_kernel<6>, q8_matvec_kernel<7>, q8_matvec_kernel<8>,
};

static_assert(sizeof(q8_matvec) / sizeof(q8_matvec[0]) == CUK_Q8_MATVEC_MAX_ROWS,
	      "a kernel for every row count");

/**
 * cuk_q8_matvec() - y[r][0 .. n) = x[r] . W^T + beta * y[r], W Q8_0
 * @s:		the stream
 * @y:		[rows][ldy] FP32
 * @ldy:	floats per row of @y, >= @w->n
 * @beta:	0 (y is only written) or the factor of y's old value (1: add)
 * @w:		the matrix, [n][k] (see &struct cuk_q8); @w->q 16-byte aligned
 * @x:		[rows][k] BF16, 16-byte aligned
 * @rows:	1 .. CUK_Q8_MATVEC_MAX_ROWS
 *
 * Each weight is read once for all @rows rows; products and sums are FP32,
 * the weights exact (a Q8_0 weight is a float), each block's sum scaled
 * once.
 *
 * Return: cudaErrorInvalidValue for @rows out of range, @w->k not a
 * multiple of CUK_Q8_BLOCK, or a pointer not aligned; else the launch's
 * status.
 */
extern "C" cudaError_t cuk_q8_matvec(cudaStream_t s, float *y, uint32_t ldy, float beta,
				     const struct cuk_q8 *w, const uint16_t *x, uint32_t rows)
{
	const unsigned int grid = cuk_blocks(w->n, Q8_WARPS * Q8_NR);

	if (!rows || rows > CUK_Q8_MATVEC_MAX_ROWS || !w->k || w->k % CUK_Q8_BLOCK ||
	    ldy < w->n || ((uintptr_t)w->q | (uintptr_t)x) % 16)
		return cudaErrorInvalidValue;
	if (!w->n)
		return cudaSuccess;
	CUK_LAUNCH(q8_matvec[rows - 1], grid, Q8_WARPS * 32, s)(y, ldy, beta, *w, x);
	return cudaGetLastError();
}

/* One thread per 16 weights: one load of q, two stores of BF16. */
static __global__ void q8_widen_kernel(uint16_t *out, struct cuk_q8 w, uint32_t row0,
				       uint32_t n_rows)
{
	const uint64_t e = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * Q8_LANE;
	const uint64_t r = e / w.k + row0, c = e % w.k;
	float f[Q8_LANE], d;
	uint32_t h[Q8_LANE / 2];
	int i;

	if (e >= (uint64_t)n_rows * w.k)
		return;
	const uint4 q = *reinterpret_cast<const uint4 *>(w.q + r * w.k + c);

	d = q8_scale(w.d + r * (w.k / CUK_Q8_BLOCK) + c / CUK_Q8_BLOCK);
	q8_unpack4(q.x, f);
	q8_unpack4(q.y, f + 4);
	q8_unpack4(q.z, f + 8);
	q8_unpack4(q.w, f + 12);
	for (i = 0; i < Q8_LANE / 2; i++) {
		/* d * q is exact in FP32 (11 bits times 8); one rounding, to BF16. */
		const __nv_bfloat162 b = __floats2bfloat162_rn(d * f[2 * i], d * f[2 * i + 1]);

		h[i] = *reinterpret_cast<const uint32_t *>(&b);
	}
	uint4 *o = reinterpret_cast<uint4 *>(out + e);

	o[0] = make_uint4(h[0], h[1], h[2], h[3]);
	o[1] = make_uint4(h[4], h[5], h[6], h[7]);
}

/**
 * cuk_q8_widen() - rows @row0 .. @row0 + @n_rows - 1 of a Q8_0 matrix in BF16
 * @s:		the stream
 * @out:	[n_rows][k] BF16, 16-byte aligned
 * @w:		the matrix; @w->q 16-byte aligned
 * @row0:	first row
 * @n_rows:	rows, @row0 + @n_rows <= @w->n
 *
 * Each weight is rounded to BF16 once, as the host rounds a dequantised
 * Q8_0 weight: the same bits as a matrix widened at load.
 *
 * Return: cudaErrorInvalidValue for rows past @w->n, @w->k not a multiple
 * of CUK_Q8_BLOCK, or a pointer not aligned; else the launch's status.
 */
extern "C" cudaError_t cuk_q8_widen(cudaStream_t s, uint16_t *out, const struct cuk_q8 *w,
				    uint32_t row0, uint32_t n_rows)
{
	const uint64_t n = (uint64_t)n_rows * w->k / Q8_LANE;

	if (!w->k || w->k % CUK_Q8_BLOCK || row0 > w->n || n_rows > w->n - row0 ||
	    ((uintptr_t)w->q | (uintptr_t)out) % 16)
		return cudaErrorInvalidValue;
	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(q8_widen_kernel, cuk_blocks(n, 256), 256, s)(out, *w, row0, n_rows);
	return cudaGetLastError();
}
