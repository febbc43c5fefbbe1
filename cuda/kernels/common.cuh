/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the kernels share: BF16 loads and stores from the uint16_t the C side
 * passes, and sums across a warp and across a block.
 */
#ifndef LLMQ_CUDA_COMMON_CUH
#define LLMQ_CUDA_COMMON_CUH

#include <stdint.h>

#include <cuda_bf16.h>

#include "../kernels.h"

/*
 * CUK_LAUNCH(kernel, grid, block, stream)(args...) launches a kernel: the
 * <<<>>> form under nvcc; the CUDA emulator (tests/cuda_emu/) defines its
 * own, which runs the same kernel code on the CPU.
 */
#ifndef LLMQ_CUDA_EMU
#define CUK_LAUNCH(k, grid, block, stream)	k<<<(grid), (block), 0, (stream)>>>
#endif

/* Threads of the row kernels (norm, argmax): 8 warps. */
#define CUK_ROW_THREADS	256

static __device__ __forceinline__ float bf16_load(const uint16_t *p)
{
	return __bfloat162float(*reinterpret_cast<const __nv_bfloat16 *>(p));
}

/* Round to nearest even, as fp32_to_bf16() does on the host. */
static __device__ __forceinline__ void bf16_store(uint16_t *p, float v)
{
	*reinterpret_cast<__nv_bfloat16 *>(p) = __float2bfloat16_rn(v);
}

/* The sum of @v over the warp, in every lane (butterfly). */
static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/*
 * The sum of @v over the block, in every thread. @blockDim.x is a multiple
 * of 32 and at most 1024; @sh holds 32 floats. Ends with a barrier, so @sh
 * may be reused at once.
 */
static __device__ __forceinline__ float block_sum(float v, float *sh)
{
	const unsigned int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
	const unsigned int n_warps = blockDim.x / 32;

	v = warp_sum(v);
	if (lane == 0)
		sh[warp] = v;
	__syncthreads();
	v = lane < n_warps ? sh[lane] : 0.0f;
	v = warp_sum(v);
	__syncthreads();
	return v;
}

/* Blocks of @threads threads to cover @n items, one each. */
static inline unsigned int cuk_blocks(uint64_t n, unsigned int threads)
{
	return (unsigned int)((n + threads - 1) / threads);
}

#endif /* LLMQ_CUDA_COMMON_CUH */
