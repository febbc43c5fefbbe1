// SPDX-License-Identifier: GPL-2.0
/*
 * Writing a step's K and V into the paged cache through the slot mapping.
 */
#include "common.cuh"

/*
 * One thread per (row t, element j of kv_dim). Slot s = block * block_size
 * + offset; the layer's cache is [block][K, V][offset][kv_dim], so K of
 * slot s lies at (block * 2 * block_size + offset) * kv_dim and its V
 * block_size * kv_dim further.
 */
static __global__ void kv_store_kernel(uint16_t *kv, const float *src, uint32_t ld,
				       uint32_t k_off, uint32_t v_off, const int32_t *slots,
				       uint32_t n_rows, uint32_t kv_dim, uint32_t bs)
{
	const uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	const uint64_t t = e / kv_dim, j = e % kv_dim;
	uint64_t block, off, k_at;

	if (t >= n_rows)
		return;
	block = (uint64_t)slots[t] / bs;
	off = (uint64_t)slots[t] % bs;
	k_at = (block * 2 * bs + off) * kv_dim + j;
	bf16_store(kv + k_at, src[t * ld + k_off + j]);
	bf16_store(kv + k_at + (uint64_t)bs * kv_dim, src[t * ld + v_off + j]);
}

/**
 * cuk_kv_store() - copy each row's k and v into its cache slot, as BF16
 * @s:		the stream
 * @kv:		one layer's cache: [block][K, V][block_size][kv_dim] BF16
 * @src:	[n_rows][ld] FP32 holding k from column @k_off and v from @v_off
 * @ld:		floats per row of @src
 * @k_off:	first column of k
 * @v_off:	first column of v
 * @slots:	each row's slot: block id * @block_size + position % @block_size
 * @n_rows:	rows
 * @kv_dim:	floats of k (and of v) per row
 * @block_size:	tokens per block
 *
 * Return: the launch's status.
 */
extern "C" cudaError_t cuk_kv_store(cudaStream_t s, uint16_t *kv, const float *src, uint32_t ld,
				    uint32_t k_off, uint32_t v_off, const int32_t *slots,
				    uint32_t n_rows, uint32_t kv_dim, uint32_t block_size)
{
	const uint64_t n = (uint64_t)n_rows * kv_dim;

	if (!n)
		return cudaSuccess;
	CUK_LAUNCH(kv_store_kernel, cuk_blocks(n, 256), 256, s)(kv, src, ld, k_off, v_off,
								slots, n_rows, kv_dim,
								block_size);
	return cudaGetLastError();
}
