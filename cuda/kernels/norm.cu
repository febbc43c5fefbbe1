// SPDX-License-Identifier: GPL-2.0
/*
 * RMSNorm fused with the cast to BF16 that the next GEMM reads, and with an
 * optional row gather (the final norm takes only the rows that need logits).
 */
#include "common.cuh"

/*
 * One block per output row o, reading input row rows[o] (or o). The mean
 * square is a float sum over the block; the scale is rounded once, then
 * y = (x * scale) * w, in the order the CPU backend multiplies.
 */
static __global__ void rmsnorm_kernel(uint16_t *out, const float *x, const int32_t *rows,
				      const float *w, uint32_t dim, float eps)
{
	__shared__ float sh[32];
	const uint32_t o = blockIdx.x;
	const float *xr = x + (uint64_t)(rows ? rows[o] : (int32_t)o) * dim;
	uint16_t *yr = out + (uint64_t)o * dim;
	float ss = 0.0f, scale;
	uint32_t i;

	for (i = threadIdx.x; i < dim; i += blockDim.x)
		ss += xr[i] * xr[i];
	ss = block_sum(ss, sh);
	scale = 1.0f / sqrtf(ss / (float)dim + eps);
	for (i = threadIdx.x; i < dim; i += blockDim.x)
		bf16_store(yr + i, xr[i] * scale * w[i]);
}

/**
 * cuk_rmsnorm() - out[o] = bf16(x[r] / sqrt(mean(x[r]^2) + eps) * w), r = rows[o]
 * @s:		the stream
 * @out:	[n_rows][dim] BF16
 * @x:		FP32 rows of @dim floats
 * @rows:	n_rows row numbers of @x to normalise, or NULL for 0 .. n_rows-1
 * @w:		@dim FP32 weights
 * @n_rows:	output rows
 * @dim:	floats per row
 * @eps:	added to the mean square
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_rmsnorm(cudaStream_t s, uint16_t *out, const float *x,
				   const int32_t *rows, const float *w, uint32_t n_rows,
				   uint32_t dim, float eps)
{
	if (!n_rows)
		return cudaSuccess;
	CUK_LAUNCH(rmsnorm_kernel, n_rows, CUK_ROW_THREADS, s)(out, x, rows, w, dim, eps);
	return cudaGetLastError();
}
