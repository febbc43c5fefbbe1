/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Compiling the files of cuda/kernels/ as host C++ for the CUDA emulator
 * (cuda_emu.cc): included first (g++ -include) so that the kernels' CUDA
 * words mean something on a CPU. A block's threads become fibers on one OS
 * thread; __syncthreads() and __shfl_xor_sync() switch between them, so
 * barriers, shared memory and warp shuffles behave as on a GPU for code
 * that follows CUDA's rules, and a kernel that breaks them (a barrier not
 * every thread reaches) stops with a message instead of passing.
 */
#ifndef LLMQ_CUDA_EMU_H
#define LLMQ_CUDA_EMU_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

#include <cuda_runtime_api.h>

/*
 * Blocks run one after another, so a block's shared memory can be static.
 * Outside ASan it lies in a section of its own that the emulator fills with
 * 0xff bytes (NaN, -1) before every block, as a GPU leaves it undefined, so
 * a read of shared memory that no thread wrote shows; under ASan it is not
 * (ASan leaves a named section's variables without redzones), so that ASan
 * catches an index past a shared array instead.
 */
#undef __shared__
#ifdef __SANITIZE_ADDRESS__
#define __shared__ static
#else
#define __shared__ static __attribute__((section("cuda_emu_shared")))
#endif
#define __launch_bounds__(...)

using std::max;
using std::min;

extern dim3 threadIdx, blockIdx, blockDim, gridDim;

void __syncthreads(void);

/* Fibers switch only at barriers, so a plain read-modify-write is atomic. */
static inline unsigned int atomicAdd(unsigned int *p, unsigned int v)
{
	unsigned int old = *p;

	*p = old + v;
	return old;
}

static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
	unsigned long long old = *p;

	*p = old + v;
	return old;
}

static inline unsigned int __float_as_uint(float f)
{
	unsigned int u;

	__builtin_memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float __uint_as_float(unsigned int u)
{
	float f;

	__builtin_memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * PRMT's default mode: byte i of the result is byte (s >> 4i) & 7 of the
 * eight bytes of y:x, x's the low four.
 */
static inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s)
{
	const uint64_t v = (uint64_t)y << 32 | x;
	unsigned int r = 0;

	for (int i = 0; i < 4; i++)
		r |= (unsigned int)(v >> (8 * ((s >> (4 * i)) & 7)) & 0xff) << (8 * i);
	return r;
}

/* A load with a cache hint (streaming): the hint means nothing on a CPU. */
template <typename T>
static inline T __ldcs(const T *p)
{
	return *p;
}

/* One IEEE operation each, never fused: the host compiles these without FMA. */
static inline float __fdiv_rn(float a, float b)
{
	return a / b;
}

static inline float __fmul_rn(float a, float b)
{
	return a * b;
}

static inline float __fsub_rn(float a, float b)
{
	return a - b;
}

float __shfl_xor_sync(unsigned int mask, float v, int lane_mask, int width = 32);
/* A barrier of the warp; only the full mask is emulated. */
void __syncwarp(unsigned int mask = 0xffffffffu);

/*
 * cp.async, as cuda_pipeline.h spells it: a copy of @size bytes (4, 8 or
 * 16, both sides aligned to it), the last @zfill of them zeros, is issued;
 * a commit closes the thread's batch of copies; waiting for all but the
 * last @n batches makes the older ones happen. The emulator copies only
 * then, so a thread that reads what it copied before waiting sees what
 * was there before, as a GPU may show it; one that exits with copies not
 * waited for stops the test.
 */
void __pipeline_memcpy_async(void *dst, const void *src, size_t size, size_t zfill = 0);
void __pipeline_commit(void);
void __pipeline_wait_prior(size_t n);

/*
 * Queue @body to run as every thread of every block of @grid x @block on
 * @stream: it runs when the host next synchronises (or copies
 * synchronously), as a kernel on a GPU has not run when its launch
 * returns; on a stream that captures a graph it is recorded instead (see
 * cudaStreamBeginCapture() in cuda_emu.cc). A launch that fails (into an
 * invalidated capture) reports as a GPU's does, through cudaGetLastError().
 */
void cuk_emu_enqueue(dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> body);

/*
 * CUK_LAUNCH(kernel, grid, block, stream)(args...): the emulator's form of
 * kernel<<<grid, block, 0, stream>>>(args...).
 */
template <typename... P>
struct cuk_emu_launch {
	dim3		grid, block;
	cudaStream_t	stream;
	void		(*kernel)(P...);

	/*
	 * The arguments are copied, as a launch copies them: a graph that
	 * captured the launch replays it with these values.
	 */
	template <typename... A>
	void operator()(A &&...args) const
	{
		void (*k)(P...) = kernel;

		cuk_emu_enqueue(grid, block, stream, [=]() { k(args...); });
	}
};

template <typename... P>
static inline cuk_emu_launch<P...> cuk_emu_launcher(dim3 grid, dim3 block, cudaStream_t stream,
						     void (*kernel)(P...))
{
	return cuk_emu_launch<P...>{ grid, block, stream, kernel };
}

#define CUK_LAUNCH(k, grid, block, stream)	\
	cuk_emu_launcher(dim3(grid), dim3(block), (stream), (k))

#include "cuda_emu_wmma.h"

#endif /* LLMQ_CUDA_EMU_H */
