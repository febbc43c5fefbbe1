// SPDX-License-Identifier: GPL-2.0
/*
 * Bias add: the same vector added to every row (Qwen2's QKV biases).
 */
#include "common.cuh"

/* One thread per (row, column). */
static __global__ void add_bias_kernel(float *y, const float *bias, uint32_t n_rows, uint32_t n,
				       uint32_t ld)
{
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / n, i = e % n;

	if (t >= n_rows)
		return;
	y[t * ld + i] += bias[i];
}

/**
 * cuk_add_bias() - y[t][i] += bias[i] for i < n
 * @s:		the stream
 * @y:		[n_rows][ld] FP32, in place
 * @bias:	@n FP32
 * @n_rows:	rows
 * @n:		columns to add to, from 0
 * @ld:		floats per row of @y
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_add_bias(cudaStream_t s, float *y, const float *bias,
				    uint32_t n_rows, uint32_t n, uint32_t ld)
{
	const uint64_t total = (uint64_t)n_rows * n;

	if (!total)
		return cudaSuccess;
	CUK_LAUNCH(add_bias_kernel, cuk_blocks(total, 256), 256, s)(y, bias, n_rows, n, ld);
	return cudaGetLastError();
}
