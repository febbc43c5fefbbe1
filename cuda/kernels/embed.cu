// SPDX-License-Identifier: GPL-2.0
/*
 * Embedding gather: the FP32 rows of a step's tokens from the table, BF16
 * or Q8_0.
 */
#include <cuda_fp16.h>

#include "common.cuh"

/* One thread per element of the output: row t, column i. */
static __global__ void embed_kernel(float *x, const uint16_t *table, const int32_t *ids,
				    uint32_t n_rows, uint32_t dim)
{
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / dim, i = e % dim;

	if (t >= n_rows)
		return;
	x[e] = bf16_load(table + (uint64_t)ids[t] * dim + i);
}

/**
 * cuk_embed() - x[t] = table[ids[t]], widened to FP32
 * @s:		the stream
 * @x:		[n_rows][dim] FP32 out
 * @table:	[n_vocab][dim] BF16
 * @ids:	n_rows token ids, checked by the caller to be < n_vocab
 * @n_rows:	tokens
 * @dim:	floats per row
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_embed(cudaStream_t s, float *x, const uint16_t *table,
				 const int32_t *ids, uint32_t n_rows, uint32_t dim)
{
	const uint64_t n = (uint64_t)n_rows * dim;

	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(embed_kernel, cuk_blocks(n, 256), 256, s)(x, table, ids, n_rows, dim);
	return cudaGetLastError();
}

/* One thread per element, as embed_kernel(); d * q is exact in FP32. */
static __global__ void embed_q8_kernel(float *x, struct cuk_q8 table, const int32_t *ids,
				       uint32_t n_rows)
{
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / table.k, i = e % table.k;
	uint64_t id;

	if (t >= n_rows)
		return;
	id = (uint64_t)ids[t];
	x[e] = __half2float(__ushort_as_half(table.d[id * (table.k / CUK_Q8_BLOCK) +
						      i / CUK_Q8_BLOCK])) *
	       (float)table.q[id * table.k + i];
}

/**
 * cuk_embed_q8() - x[t] = table[ids[t]], a Q8_0 table dequantised to FP32
 * @s:		the stream
 * @x:		[n_rows][table->k] FP32 out
 * @table:	[n_vocab][dim] Q8_0 (see &struct cuk_q8)
 * @ids:	n_rows token ids, checked by the caller to be < @table->n
 * @n_rows:	tokens
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_embed_q8(cudaStream_t s, float *x, const struct cuk_q8 *table,
				    const int32_t *ids, uint32_t n_rows)
{
	const uint64_t n = (uint64_t)n_rows * table->k;

	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(embed_q8_kernel, cuk_blocks(n, 256), 256, s)(x, *table, ids, n_rows);
	return cudaGetLastError();
}
