// SPDX-License-Identifier: GPL-2.0
/*
 * A CUDA emulator for tests on machines without a GPU: the cudart and cuBLAS
 * calls the CUDA backend and its tests make, on host memory, and a kernel
 * runner (see cuda_emu.h) that executes cuda/kernels/ compiled as C++.
 *
 * Each block's threads are fibers on the calling thread, run until each
 * blocks: at __syncthreads() a fiber waits for every thread of its block,
 * at a warp shuffle for every lane of its warp; then they are released
 * together. Between two such points the fibers run, each to its next one,
 * in a fresh random order (seed printed once, LLMQ_CUDA_EMU_SEED=N repeats
 * it), so that a missing barrier shows whichever of two threads a fixed
 * order would have run first. Shared memory is filled with 0xff bytes
 * before each block (see cuda_emu.h). Rules the hardware leaves undefined
 * stop the test: a barrier that not every thread reaches, one reached
 * after some threads exited, a full-warp shuffle with lanes exited or
 * missing (a block not a multiple of 32), launches past the hardware's
 * limits. Device work is queued and runs when the host synchronises (see
 * emu_flush()). Blocks run in order, one at a time. Device memory is
 * malloc()ed, so under ASan an out-of-bounds access by a kernel is caught.
 * A fiber switch is a few instructions of our own (x86-64: the callee-saved
 * registers and the stack pointer), not swapcontext(), whose signal-mask
 * system call per switch made the emulated attention ten times slower.
 *
 * What it cannot show: speed, races between blocks (there are none when one
 * runs at a time), memory-model and alignment faults, real cuBLAS
 * behaviour. It checks that the code computes what it should.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <vector>

#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "cuda_emu.h"

dim3 threadIdx, blockIdx, blockDim, gridDim;

enum fiber_state { RUNNABLE, WAIT_SYNC, WAIT_SHFL, DONE };

#define EMU_MAX_THREADS	1024
#define EMU_STACK	(128 * 1024)

struct fiber {
	void		*sp;		/* saved stack pointer while switched out */
	fiber_state	state;
	dim3		tid;
};

/*
 * emu_switch(&save, to): push rbp, rbx, r12-r15 on the current stack, save
 * its pointer in *save, load @to, pop the same registers there and return
 * into whatever that stack was doing. The System V ABI asks nothing else
 * to survive a call.
 */
extern "C" void emu_switch(void **save, void *to);
asm(".text\n"
    ".globl emu_switch\n"
    ".type emu_switch, @function\n"
    "emu_switch:\n"
    "	pushq %rbp\n"
    "	pushq %rbx\n"
    "	pushq %r12\n"
    "	pushq %r13\n"
    "	pushq %r14\n"
    "	pushq %r15\n"
    "	movq %rsp, (%rdi)\n"
    "	movq %rsi, %rsp\n"
    "	popq %r15\n"
    "	popq %r14\n"
    "	popq %r13\n"
    "	popq %r12\n"
    "	popq %rbx\n"
    "	popq %rbp\n"
    "	ret\n"
    ".size emu_switch, .-emu_switch\n");

static fiber fibers[EMU_MAX_THREADS];
static unsigned int order[EMU_MAX_THREADS];
static uint64_t sched_rng, sched_rng_seed;
static char *stacks;
static void *sched_sp;
static fiber *cur;
static const std::function<void()> *body;
static float shfl_slot[EMU_MAX_THREADS];

static void emu_fail(const char *what)
{
	fprintf(stderr, "cuda emulator: %s (block %u,%u,%u; LLMQ_CUDA_EMU_SEED=%llu)\n", what,
		blockIdx.x, blockIdx.y, blockIdx.z, (unsigned long long)sched_rng_seed);
	abort();
}

static void block_until(fiber_state st)
{
	cur->state = st;
	emu_switch(&cur->sp, sched_sp);
}

void __syncthreads(void)
{
	block_until(WAIT_SYNC);
}

/* Lanes publish, wait for the warp, read their partner, wait again. */
float __shfl_xor_sync(unsigned int mask, float v, int lane_mask, int width)
{
	unsigned int me = (unsigned int)(cur - fibers);
	unsigned int lane = me % 32, partner = (me & ~31u) | ((lane ^ lane_mask) % width);
	float r;

	if (mask != 0xffffffffu || width != 32)
		emu_fail("only full-warp shuffles are emulated");
	shfl_slot[me] = v;
	block_until(WAIT_SHFL);
	r = shfl_slot[partner];
	block_until(WAIT_SHFL);
	return r;
}

/* Where a new fiber starts; it never returns, it switches away for good. */
extern "C" void emu_fiber_main(void)
{
	(*body)();
	cur->state = DONE;
	emu_switch(&cur->sp, sched_sp);
	emu_fail("a finished fiber was resumed");
}

/*
 * A fresh stack that emu_switch() "returns" into emu_fiber_main: six zero
 * registers, the entry address, and one slot more so that the entry sees
 * the stack as a called function does (rsp + 8 a multiple of 16).
 */
static void *fiber_stack(unsigned int i)
{
	uintptr_t top = ((uintptr_t)(stacks + (size_t)(i + 1) * EMU_STACK)) & ~(uintptr_t)15;
	void **sp = reinterpret_cast<void **>(top - 64);

	memset(sp, 0, 64);
	sp[6] = reinterpret_cast<void *>(emu_fiber_main);
	return sp;
}

/*
 * Release what may go on; false when nothing can (a broken barrier). A
 * warp's shuffle goes on when every lane waits at one; a full-warp shuffle
 * that a lane cannot join (it exited, or the block ends inside the warp)
 * is undefined on a GPU and stops here, as does a barrier reached after
 * some threads of the block exited.
 */
static bool release(unsigned int n)
{
	bool any = false, all_sync = true, some_done = false;
	unsigned int w, i;

	for (w = 0; w < n; w += 32) {
		bool warp_shfl = true, some = false, lane_done = w + 32 > n;

		for (i = w; i < n && i < w + 32; i++) {
			if (fibers[i].state == DONE) {
				lane_done = true;
				continue;
			}
			some = true;
			if (fibers[i].state != WAIT_SHFL)
				warp_shfl = false;
		}
		if (some && warp_shfl) {
			if (lane_done)
				emu_fail("full-warp shuffle with lanes exited or missing");
			for (i = w; i < w + 32; i++)
				fibers[i].state = RUNNABLE;
			any = true;
		}
	}
	if (any)
		return true;
	for (i = 0; i < n; i++) {
		if (fibers[i].state != DONE && fibers[i].state != WAIT_SYNC)
			all_sync = false;
		some_done |= fibers[i].state == DONE;
	}
	if (!all_sync)
		return false;
	if (some_done)
		emu_fail("__syncthreads() after some threads of the block exited");
	for (i = 0; i < n; i++)
		if (fibers[i].state == WAIT_SYNC) {
			fibers[i].state = RUNNABLE;
			any = true;
		}
	return any;
}

static uint64_t sched_next(void)
{
	/* xorshift64* */
	sched_rng ^= sched_rng >> 12;
	sched_rng ^= sched_rng << 25;
	sched_rng ^= sched_rng >> 27;
	return sched_rng * 0x2545f4914f6cdd1dull;
}

/* A fresh random order of the block's n threads for the next round. */
static void shuffle_order(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		order[i] = i;
	for (i = n - 1; i > 0; i--) {
		unsigned int k = (unsigned int)(sched_next() % (i + 1)), t = order[i];

		order[i] = order[k];
		order[k] = t;
	}
}

/* The kernels' __shared__ variables (see cuda_emu.h), absent under ASan. */
extern "C" char __start_cuda_emu_shared[] __attribute__((weak));
extern "C" char __stop_cuda_emu_shared[] __attribute__((weak));

static void run_block(unsigned int n)
{
	unsigned int i, done;

	if (__start_cuda_emu_shared)
		memset(__start_cuda_emu_shared, 0xff,
		       (size_t)(__stop_cuda_emu_shared - __start_cuda_emu_shared));

	for (i = 0; i < n; i++) {
		fiber *f = &fibers[i];

		f->tid = dim3(i % blockDim.x, i / blockDim.x % blockDim.y,
			      i / (blockDim.x * blockDim.y));
		f->state = RUNNABLE;
		f->sp = fiber_stack(i);
	}
	for (;;) {
		shuffle_order(n);
		for (i = 0, done = 0; i < n; i++) {
			fiber *f = &fibers[order[i]];

			if (f->state == RUNNABLE) {
				cur = f;
				threadIdx = cur->tid;
				emu_switch(&sched_sp, cur->sp);
			}
			done += f->state == DONE;
		}
		if (done == n)
			return;
		if (!release(n))
			emu_fail("deadlock: threads wait at different barriers");
	}
}

static void cuk_emu_run(dim3 grid, dim3 block, const std::function<void()> &fn)
{
	unsigned int n = block.x * block.y * block.z;

	if (!sched_rng) {
		const char *env = getenv("LLMQ_CUDA_EMU_SEED");

		sched_rng = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
		if (!sched_rng)
			sched_rng = 1;
		sched_rng_seed = sched_rng;
		fprintf(stderr, "cuda emulator: thread order seed %llu (LLMQ_CUDA_EMU_SEED=%llu "
			"repeats it)\n", (unsigned long long)sched_rng,
			(unsigned long long)sched_rng);
	}
	if (!stacks) {
		stacks = static_cast<char *>(malloc((size_t)EMU_MAX_THREADS * EMU_STACK));
		if (!stacks)
			emu_fail("out of memory for fiber stacks");
	}
	body = &fn;
	gridDim = grid;
	blockDim = block;
	for (blockIdx.z = 0; blockIdx.z < grid.z; blockIdx.z++)
		for (blockIdx.y = 0; blockIdx.y < grid.y; blockIdx.y++)
			for (blockIdx.x = 0; blockIdx.x < grid.x; blockIdx.x++)
				run_block(n);
	blockIdx = dim3(0, 0, 0);
}

/*
 * The device's work queue (all streams as one, in order): launches, GEMMs,
 * memsets and copies that involve pinned host memory run when the host
 * synchronises or copies synchronously, not when they are issued, so that
 * a host that reads a result, or rewrites a pinned buffer an async copy
 * still reads, before it waits sees what a GPU would give it.
 */
static std::vector<std::function<void()>> queue;

static void emu_flush(void)
{
	size_t i;

	for (i = 0; i < queue.size(); i++)
		queue[i]();
	queue.clear();
}

void cuk_emu_enqueue(dim3 grid, dim3 block, std::function<void()> fn)
{
	unsigned int n = block.x * block.y * block.z;

	/* The limits of every GPU since compute capability 3.0. */
	if (!n || n > EMU_MAX_THREADS || block.x > 1024 || block.y > 1024 || block.z > 64)
		emu_fail("bad block size");
	if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 ||
	    grid.z > 65535)
		emu_fail("bad grid size");
	queue.push_back([grid, block, fn]() { cuk_emu_run(grid, block, fn); });
}

/* ---- cudart ---- */

#define EMU_MEMORY	(1ull << 30)

static std::map<void *, size_t> allocs;
static size_t allocated;

extern "C" {

cudaError_t cudaGetDeviceCount(int *count)
{
	*count = 1;
	return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
	return device ? cudaErrorInvalidDevice : cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
	if (device)
		return cudaErrorInvalidDevice;
	memset(prop, 0, sizeof(*prop));
	snprintf(prop->name, sizeof(prop->name), "llmq CUDA emulator");
	prop->major = 9;
	prop->minor = 0;
	/* Few multiprocessors, so that small steps take the split-K path. */
	prop->multiProcessorCount = 4;
	prop->totalGlobalMem = EMU_MEMORY;
	return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
	*total = EMU_MEMORY;
	*free_b = EMU_MEMORY - allocated;
	return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t size)
{
	if (allocated + size > EMU_MEMORY) {
		*p = NULL;
		return cudaErrorMemoryAllocation;
	}
	*p = malloc(size ? size : 1);
	if (!*p)
		return cudaErrorMemoryAllocation;
	allocs[*p] = size;
	allocated += size;
	return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
	auto it = allocs.find(p);

	emu_flush();	/* cudaFree() waits for the device */
	if (!p)
		return cudaSuccess;
	if (it == allocs.end())
		return cudaErrorInvalidValue;
	allocated -= it->second;
	allocs.erase(it);
	free(p);
	return cudaSuccess;
}

/* Pinned host buffers: start -> bytes. */
static std::map<const char *, size_t> pinned;

static bool is_pinned(const void *p)
{
	const char *c = static_cast<const char *>(p);
	auto it = pinned.upper_bound(c);

	if (it == pinned.begin())
		return false;
	--it;
	return c < it->first + it->second;
}

cudaError_t cudaMallocHost(void **p, size_t size)
{
	*p = malloc(size ? size : 1);
	if (!*p)
		return cudaErrorMemoryAllocation;
	pinned[static_cast<const char *>(*p)] = size ? size : 1;
	return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
	emu_flush();
	pinned.erase(static_cast<const char *>(p));
	free(p);
	return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
	(void)kind;
	emu_flush();
	memmove(dst, src, n);
	return cudaSuccess;
}

/*
 * As cudart: a copy from or to pinned memory is queued; one from pageable
 * memory is staged at once (the source may be reused on return), one to
 * pageable memory waits for the device and copies (returns when done).
 */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
			    cudaStream_t s)
{
	(void)s;
	if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
		std::vector<char> copy(static_cast<const char *>(src),
				       static_cast<const char *>(src) + n);

		queue.push_back([dst, copy]() { memcpy(dst, copy.data(), copy.size()); });
		return cudaSuccess;
	}
	if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst))
		return cudaMemcpy(dst, src, n, kind);
	queue.push_back([dst, src, n]() { memmove(dst, src, n); });
	return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n)
{
	queue.push_back([p, v, n]() { memset(p, v, n); });
	return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
	(void)flags;
	*s = reinterpret_cast<cudaStream_t>(&allocs);
	return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	(void)s;
	emu_flush();
	return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	(void)s;
	emu_flush();
	return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
	emu_flush();
	return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
	return cudaSuccess;
}

cudaError_t cudaPeekAtLastError(void)
{
	return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaSuccess ? "no error" : "emulated error";
}

const char *cudaGetErrorName(cudaError_t e)
{
	return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated";
}

/* Events (bench_cuda times with them): host clock readings. */
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	*e = reinterpret_cast<cudaEvent_t>(calloc(1, sizeof(struct timespec)));
	return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	(void)s;
	queue.push_back([e]() {
		clock_gettime(CLOCK_MONOTONIC, reinterpret_cast<struct timespec *>(e));
	});
	return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	(void)e;
	emu_flush();
	return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
	const struct timespec *x = reinterpret_cast<struct timespec *>(a);
	const struct timespec *y = reinterpret_cast<struct timespec *>(b);

	*ms = (float)((y->tv_sec - x->tv_sec) * 1e3 + (y->tv_nsec - x->tv_nsec) / 1e6);
	return cudaSuccess;
}

/* ---- cuBLAS: the one GEMM the backend uses ---- */

cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
	*h = reinterpret_cast<cublasHandle_t>(&allocs);
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
	(void)h;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
	(void)h;
	(void)s;
	return CUBLAS_STATUS_SUCCESS;
}

/* Row r of op(M) as floats: M is column-major BF16, @t whether op transposes. */
static void op_row(float *out, const void *M, int ld, bool t, int r, int len)
{
	const __nv_bfloat16 *m = static_cast<const __nv_bfloat16 *>(M);
	int l;

	for (l = 0; l < len; l++)
		out[l] = __bfloat162float(t ? m[l + (size_t)r * ld] : m[r + (size_t)l * ld]);
}

/*
 * Column-major C (m x n, ldc) = alpha op(A) (m x k) op(B) (k x n) + beta C,
 * BF16 A and B, FP32 C and accumulation; only what the backend asks for.
 * op(A) is unpacked by rows and op(B) by columns, so each element of C is
 * a dot product of two contiguous float vectors.
 */
static void gemm_run(bool ta, bool tb, int m, int n, int k, float al, const void *A, int lda,
		     const void *B, int ldb, float be, float *c, int ldc)
{
	float *a = static_cast<float *>(malloc(((size_t)m * k + 1) * sizeof(float)));
	float *b = static_cast<float *>(malloc(((size_t)n * k + 1) * sizeof(float)));
	int i, j, l;

	if (!a || !b)
		emu_fail("out of memory for a GEMM");
	/* Row i of op(A); column j of op(B) is row j of op(B)^T. */
	for (i = 0; i < m; i++)
		op_row(a + (size_t)i * k, A, lda, ta, i, k);
	for (j = 0; j < n; j++)
		op_row(b + (size_t)j * k, B, ldb, !tb, j, k);
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			const float *x = a + (size_t)i * k, *y = b + (size_t)j * k;
			float acc = 0;

			for (l = 0; l < k; l++)
				acc += x[l] * y[l];
			c[i + (size_t)j * ldc] = al * acc + (be ? be * c[i + (size_t)j * ldc] : 0);
		}
	free(a);
	free(b);
}

/* Checked now, computed in order on the queue; alpha and beta read now (host pointers). */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
			    int m, int n, int k, const void *alpha, const void *A,
			    cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb,
			    const void *beta, void *C, cudaDataType ct, int ldc,
			    cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
	const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
	const bool opa = ta != CUBLAS_OP_N, opb = tb != CUBLAS_OP_N;
	float *c = static_cast<float *>(C);

	(void)h;
	(void)algo;
	if (at != CUDA_R_16BF || bt != CUDA_R_16BF || ct != CUDA_R_32F ||
	    comp != CUBLAS_COMPUTE_32F)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) ||
	    ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m)
		return CUBLAS_STATUS_INVALID_VALUE;
	queue.push_back([=]() { gemm_run(opa, opb, m, n, k, al, A, lda, B, ldb, be, c, ldc); });
	return CUBLAS_STATUS_SUCCESS;
}

}	/* extern "C" */
