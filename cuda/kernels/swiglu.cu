// SPDX-License-Identifier: GPL-2.0
/*
 * SwiGLU: silu(gate) * up, cast to BF16 for the down projection.
 */
#include "common.cuh"

/* One thread per (row t, column i); gate is column i, up column n_ff + i. */
static __global__ void swiglu_kernel(uint16_t *out, const float *gu, uint32_t n_rows,
				     uint32_t n_ff)
{
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / n_ff, i = e % n_ff;
	float g, u;

	if (t >= n_rows)
		return;
	g = gu[t * 2 * n_ff + i];
	u = gu[t * 2 * n_ff + n_ff + i];
	/* expf, not __expf: the same function as the CPU's, to a rounding. */
	bf16_store(out + e, g / (1.0f + expf(-g)) * u);
}

/**
 * cuk_swiglu() - out[t][i] = bf16(g / (1 + exp(-g)) * u), g, u from @gate_up
 * @s:		the stream
 * @out:	[n_rows][n_ff] BF16
 * @gate_up:	[n_rows][2 * n_ff] FP32: the gate projection, then the up one
 * @n_rows:	rows
 * @n_ff:	feed-forward width
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_swiglu(cudaStream_t s, uint16_t *out, const float *gate_up,
				  uint32_t n_rows, uint32_t n_ff)
{
	const uint64_t n = (uint64_t)n_rows * n_ff;

	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(swiglu_kernel, cuk_blocks(n, 256), 256, s)(out, gate_up, n_rows, n_ff);
	return cudaGetLastError();
}
