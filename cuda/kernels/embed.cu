// SPDX-License-Identifier: GPL-2.0
/*
 * Embedding gather: the FP32 rows of a step's tokens from the table, BF16
 * or quantised (see quant.cuh).
 */
#include "quant.cuh"

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

/* One thread per 16-byte chunk of a row's weights: its one or two runs of 16. */
template <uint32_t T>
static __global__ void embed_q_kernel(float *x, struct cuk_qmat table, const int32_t *ids,
				      uint32_t n_rows)
{
	const uint32_t per_row = q_row_bytes(T, table.k) / Q_CHUNK;
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / per_row;
	struct qrun q;
	int u, i;

	if (t >= n_rows)
		return;
	q_chunk<T>(table, (uint32_t)ids[t], (uint32_t)(e % per_row) * Q_CHUNK, q);
	for (u = 0; u < qt<T>::runs; u++) {
		/* 64-byte aligned: a run starts at a multiple of 16 columns. */
		float4 *o = reinterpret_cast<float4 *>(x + t * table.k + q.col[u]);

		for (i = 0; i < 4; i++)
			o[i] = make_float4(q_weight<T>(q, u, 4 * i), q_weight<T>(q, u, 4 * i + 1),
					   q_weight<T>(q, u, 4 * i + 2),
					   q_weight<T>(q, u, 4 * i + 3));
	}
}

/**
 * cuk_embed_q() - x[t] = table[ids[t]], a quantised table dequantised to FP32
 * @s:		the stream
 * @x:		[n_rows][table->k] FP32 out, 16-byte aligned
 * @table:	[n_vocab][dim] (see &struct cuk_qmat), its planes 16-byte aligned
 * @ids:	n_rows token ids, checked by the caller to be < @table->n
 * @n_rows:	tokens
 *
 * Each element is the host's dequantize() of it, bit for bit.
 *
 * Return: cudaErrorInvalidValue for a type not kept, a width not whole
 * blocks, or a pointer not aligned to 16 bytes; else the launch's status.
 */
extern "C" cudaError_t cuk_embed_q(cudaStream_t s, float *x, const struct cuk_qmat *table,
				   const int32_t *ids, uint32_t n_rows)
{
	uint64_t n;

	if (!q_shape_ok(table) || (uintptr_t)x % 16)
		return cudaErrorInvalidValue;
	n = (uint64_t)n_rows * q_row_bytes(table->type, table->k) / Q_CHUNK;
	if (!n)
		return cudaSuccess;
	q_by_type(table->type, [&](auto t) {
		auto k = embed_q_kernel<decltype(t)::value>;

		CUK_LAUNCH(k, cuk_blocks(n, 256), 256, s)(x, *table, ids, n_rows);
	});
	return cudaGetLastError();
}
