// SPDX-License-Identifier: GPL-2.0
/*
 * Quantised weights (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) as they came, on the device: a
 * decode step's few rows times such a matrix, reading each weight once,
 * and the matrix widened to BF16 a slice at a time for cuBLAS where a step
 * has more rows than that.
 *
 * A step of a few rows reads every weight for little arithmetic: it takes
 * as long as the bytes take, and Q8_0 is 1.0625 bytes a weight, Q6_K
 * 0.8203, Q5_K 0.6875, Q4_0 and Q4_K 0.5625, where BF16 is 2. A step of many rows is arithmetic, which
 * the tensor cores do, and they take BF16.
 */
#include "quant.cuh"

/* Warps per block of the product, and weight rows per warp. */
#define Q_WARPS		4
#define Q_NR		2

/* Sixteen BF16 at @p (32-byte aligned) as floats: a BF16 is its float's high half. */
static __device__ __forceinline__ void bf16_load16(const uint16_t *p, float *f)
{
	const uint4 *v = reinterpret_cast<const uint4 *>(p);
	int i;

	for (i = 0; i < 2; i++) {
		const uint32_t w[4] = { v[i].x, v[i].y, v[i].z, v[i].w };

		for (int j = 0; j < 4; j++) {
			f[8 * i + 2 * j] = __uint_as_float(w[j] << 16);
			f[8 * i + 2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
		}
	}
}

/*
 * One chunk of each of the warp's weight rows (@q) into the sums of every
 * row of x: each run of 16 against x, scaled once (Q4_K: less its min
 * times the sum of x).
 */
template <uint32_t T, int R>
static __device__ __forceinline__ void qmatvec_runs(float (*acc)[Q_NR], const struct qrun *q,
						    const uint16_t *x, uint32_t k)
{
	float xf[16], dot, sum;
	int r, j, u, i;

	for (r = 0; r < R; r++) {
		for (u = 0; u < qt<T>::runs; u++) {
			bf16_load16(x + (size_t)r * k + q[0].col[u], xf);
			sum = 0.0f;
			if (qt<T>::mins)
				for (i = 0; i < 16; i++)
					sum += xf[i];
			for (j = 0; j < Q_NR; j++) {
				dot = 0.0f;
				for (i = 0; i < 16; i++)
					dot = fmaf(xf[i], q[j].w[u][i], dot);
				acc[r][j] = fmaf(q[j].s[u], dot, acc[r][j]);
				if (qt<T>::mins)
					acc[r][j] = fmaf(-q[j].m[u], sum, acc[r][j]);
			}
		}
	}
}

/*
 * Chunks of each weight row a lane loads before it decodes any: a step of
 * one or two rows of x (a decode of few sequences) has registers to spare
 * and waits for its bytes, so each round trip to memory brings 4 or 2
 * chunks, not 1.
 */
#define Q_AHEAD(R)	((R) == 1 ? 4 : (R) == 2 ? 2 : 1)

/*
 * A warp computes Q_NR weight rows for all R rows of x: each lane takes a
 * 16-byte chunk of each of its rows per step, so a warp reads 512
 * contiguous bytes of a row at a time, and the x values it loads serve
 * Q_NR rows. The scale multiplies a run's 16 products once. The lanes'
 * sums meet in shared memory, not in R * Q_NR rounds of shuffles.
 */
template <uint32_t T, int R>
static __global__ void __launch_bounds__(Q_WARPS * 32)
qmatvec_kernel(float *y, uint32_t ldy, float beta, struct cuk_qmat w, const uint16_t *x)
{
	/* 33 floats a row, so that the sums' reads hit 32 different banks. */
	__shared__ float sh[Q_WARPS][R * Q_NR][33];
	const unsigned int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const uint32_t n0 = (blockIdx.x * Q_WARPS + warp) * Q_NR, rb = q_row_bytes(T, w.k);
	const uint32_t step = 32 * Q_CHUNK;
	uint4 raw[Q_AHEAD(R)][Q_NR];
	uint32_t b0, b, row[Q_NR];
	float acc[R][Q_NR], dot;
	struct qrun q[Q_NR];
	int r, j, i, a;

	if (n0 >= w.n)
		return;
	/* A warp past the last row reads that row again, and drops it. */
	for (j = 0; j < Q_NR; j++)
		row[j] = min(n0 + j, w.n - 1);
	for (r = 0; r < R; r++)
		for (j = 0; j < Q_NR; j++)
			acc[r][j] = 0.0f;
	for (b0 = lane * Q_CHUNK; b0 < rb; b0 += Q_AHEAD(R) * step) {
		/* Unrolled whole, so that raw[] stays in registers. */
#pragma unroll
		for (a = 0; a < Q_AHEAD(R); a++)
			for (j = 0; j < Q_NR; j++)
				if (b0 + a * step < rb)
					raw[a][j] = q_raw<T>(w, row[j], b0 + a * step);
#pragma unroll
		for (a = 0; a < Q_AHEAD(R); a++) {
			b = b0 + a * step;
			if (b < rb) {
				for (j = 0; j < Q_NR; j++)
					q_decode<T>(w, row[j], b, raw[a][j], q[j]);
				qmatvec_runs<T, R>(acc, q, x, w.k);
			}
		}
	}
	for (r = 0; r < R; r++)
		for (j = 0; j < Q_NR; j++)
			sh[warp][r * Q_NR + j][lane] = acc[r][j];
	__syncwarp();
	if (lane >= R * Q_NR)
		return;
	r = lane / Q_NR;
	j = lane % Q_NR;
	if (n0 + j >= w.n)
		return;
	dot = 0.0f;
	for (i = 0; i < 32; i++)
		dot += sh[warp][lane][i];
	/* beta 0 reads nothing of y, as cuBLAS: it may be uninitialised. */
	float *out = y + (size_t)r * ldy + n0 + j;
	*out = beta != 0.0f ? fmaf(beta, *out, dot) : dot;
}

typedef void (*qmatvec_fn)(float *, uint32_t, float, struct cuk_qmat, const uint16_t *);

/* The product's kernel for each row count, 1 .. CUK_QMATVEC_MAX_ROWS. */
template <uint32_t T>
struct qmatvec_table {
	static constexpr qmatvec_fn k[] = {
		qmatvec_kernel<T, 1>, qmatvec_kernel<T, 2>, qmatvec_kernel<T, 3>,
		qmatvec_kernel<T, 4>, qmatvec_kernel<T, 5>, qmatvec_kernel<T, 6>,
		qmatvec_kernel<T, 7>, qmatvec_kernel<T, 8>,
	};
	static_assert(sizeof(k) / sizeof(k[0]) == CUK_QMATVEC_MAX_ROWS,
		      "a kernel for every row count");
};

/**
 * cuk_qmatvec() - y[r][0 .. n) = x[r] . W^T + beta * y[r], W quantised
 * @s:		the stream
 * @y:		[rows][ldy] FP32
 * @ldy:	floats per row of @y, >= @w->n
 * @beta:	0 (y is only written) or the factor of y's old value (1: add)
 * @w:		the matrix, [n][k] (see &struct cuk_qmat); its planes 16-byte
 *		aligned
 * @x:		[rows][k] BF16, 16-byte aligned
 * @rows:	1 .. CUK_QMATVEC_MAX_ROWS
 *
 * Each weight is read once for all @rows rows; products and sums are FP32,
 * the weights exact (a quantised weight is a small integer times a scale),
 * each run of 16 scaled once.
 *
 * Return: cudaErrorInvalidValue for @rows out of range, a type not kept,
 * @w->k not whole blocks, or a pointer not aligned; else the launch's
 * status.
 */
extern "C" cudaError_t cuk_qmatvec(cudaStream_t s, float *y, uint32_t ldy, float beta,
				   const struct cuk_qmat *w, const uint16_t *x, uint32_t rows)
{
	const unsigned int grid = cuk_blocks(w->n, Q_WARPS * Q_NR);
	qmatvec_fn k = NULL;

	if (!rows || rows > CUK_QMATVEC_MAX_ROWS || !q_shape_ok(w) || ldy < w->n ||
	    (uintptr_t)x % 16)
		return cudaErrorInvalidValue;
	if (!w->n)
		return cudaSuccess;
	q_by_type(w->type, [&](auto t) { k = qmatvec_table<decltype(t)::value>::k[rows - 1]; });
	CUK_LAUNCH(k, grid, Q_WARPS * 32, s)(y, ldy, beta, *w, x);
	return cudaGetLastError();
}

/* One thread per chunk: one load of weights, a run of 16 BF16 stored at a time. */
template <uint32_t T>
static __global__ void qwiden_kernel(uint16_t *out, struct cuk_qmat w, uint32_t row0,
				     uint32_t n_rows)
{
	const uint32_t per_row = q_row_bytes(T, w.k) / Q_CHUNK;
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint32_t r = (uint32_t)(e / per_row);
	struct qrun q;
	uint32_t h[8];
	int u, i;

	if (r >= n_rows)
		return;
	q_chunk<T>(w, row0 + r, (uint32_t)(e % per_row) * Q_CHUNK, q);
	for (u = 0; u < qt<T>::runs; u++) {
		uint4 *o = reinterpret_cast<uint4 *>(out + (size_t)r * w.k + q.col[u]);

		for (i = 0; i < 8; i++) {
			const __nv_bfloat162 v = __floats2bfloat162_rn(q_weight<T>(q, u, 2 * i),
								       q_weight<T>(q, u, 2 * i + 1));

			h[i] = *reinterpret_cast<const uint32_t *>(&v);
		}
		o[0] = make_uint4(h[0], h[1], h[2], h[3]);
		o[1] = make_uint4(h[4], h[5], h[6], h[7]);
	}
}

/**
 * cuk_qwiden() - rows @row0 .. @row0 + @n_rows - 1 of a quantised matrix in BF16
 * @s:		the stream
 * @out:	[n_rows][k] BF16, 16-byte aligned
 * @w:		the matrix; its planes 16-byte aligned
 * @row0:	first row
 * @n_rows:	rows, @row0 + @n_rows <= @w->n
 *
 * Each weight is computed as the host's dequantize() computes it and
 * rounded to BF16 once: the bits of a matrix widened at load.
 *
 * Return: cudaErrorInvalidValue for rows past @w->n, a type not kept,
 * @w->k not whole blocks, or a pointer not aligned; else the launch's
 * status.
 */
extern "C" cudaError_t cuk_qwiden(cudaStream_t s, uint16_t *out, const struct cuk_qmat *w,
				  uint32_t row0, uint32_t n_rows)
{
	uint64_t n;

	if (!q_shape_ok(w) || row0 > w->n || n_rows > w->n - row0 || (uintptr_t)out % 16)
		return cudaErrorInvalidValue;
	n = (uint64_t)n_rows * q_row_bytes(w->type, w->k) / Q_CHUNK;
	if (!n)
		return cudaSuccess;
	q_by_type(w->type, [&](auto t) {
		auto k = qwiden_kernel<decltype(t)::value>;

		CUK_LAUNCH(k, cuk_blocks(n, 256), 256, s)(out, *w, row0, n_rows);
	});
	return cudaGetLastError();
}
