// SPDX-License-Identifier: GPL-2.0
/*
 * Greedy sampling on the device: the argmax of each row of logits, so that
 * only one id per row need cross to the host.
 */
#include <math.h>

#include "common.cuh"

/* Is (v, i) a better pick than (bv, bi)? Larger, or as large and earlier. */
static __device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi)
{
	return v > bv || (v == bv && i < bi);
}

/*
 * One block per row: each thread keeps the best of its strided elements,
 * then a tree over shared memory. NaN never wins (every comparison with it
 * is false); a row of -inf gives 0, as the host's argmax does.
 */
static __global__ void argmax_kernel(int32_t *out, const float *x, uint32_t n)
{
	__shared__ float sv[CUK_ROW_THREADS];
	__shared__ int32_t si[CUK_ROW_THREADS];
	const float *row = x + (uint64_t)blockIdx.x * n;
	float bv = -INFINITY;
	int32_t bi = 0x7fffffff;
	uint32_t i, stride;

	for (i = threadIdx.x; i < n; i += blockDim.x)
		if (better(row[i], (int32_t)i, bv, bi))
			bv = row[i], bi = (int32_t)i;
	sv[threadIdx.x] = bv;
	si[threadIdx.x] = bi;
	__syncthreads();
	for (stride = blockDim.x / 2; stride > 0; stride /= 2) {
		if (threadIdx.x < stride &&
		    better(sv[threadIdx.x + stride], si[threadIdx.x + stride], sv[threadIdx.x],
			   si[threadIdx.x])) {
			sv[threadIdx.x] = sv[threadIdx.x + stride];
			si[threadIdx.x] = si[threadIdx.x + stride];
		}
		__syncthreads();
	}
	/* A row of -inf or NaN only: the first element, like the host. */
	if (!threadIdx.x)
		out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}

/**
 * cuk_argmax() - out[t] = the first index of the largest element of row t
 * @s:		the stream
 * @out:	@n_rows ids
 * @x:		[n_rows][n] FP32
 * @n_rows:	rows
 * @n:		elements per row, >= 1
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_argmax(cudaStream_t s, int32_t *out, const float *x,
				  uint32_t n_rows, uint32_t n)
{
	if (!n_rows)
		return cudaSuccess;
	CUK_LAUNCH(argmax_kernel, n_rows, CUK_ROW_THREADS, s)(out, x, n);
	return cudaGetLastError();
}
