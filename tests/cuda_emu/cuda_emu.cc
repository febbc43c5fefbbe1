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
 * emu_flush()); on a stream that captures a graph it is recorded instead,
 * under cudart's rules of capture (see cudaStreamBeginCapture()), and a
 * graph's launch queues it again. Blocks run in order, one at a time.
 * Device memory is malloc()ed (256-byte aligned, as cudaMalloc()'s), so
 * under ASan an out-of-bounds access by a kernel is caught. Launches, GEMMs
 * and kernels fail on demand (cuk_emu_fault()), for the error paths.
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
#include <deque>
#include <map>
#include <set>
#include <thread>
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

void __syncwarp(unsigned int mask)
{
	if (mask != 0xffffffffu)
		emu_fail("only full-warp __syncwarp() is emulated");
	block_until(WAIT_SHFL);
}

/* ---- cp.async ---- */

struct emu_copy {
	void		*dst;
	const void	*src;
	size_t		size, zfill;
};

/* Each thread's copies: the batch being issued, and those committed. */
static std::vector<emu_copy> copies_open[EMU_MAX_THREADS];
static std::deque<std::vector<emu_copy>> copies_committed[EMU_MAX_THREADS];

void __pipeline_memcpy_async(void *dst, const void *src, size_t size, size_t zfill)
{
	if ((size != 4 && size != 8 && size != 16) || zfill > size)
		emu_fail("cp.async: a size other than 4, 8 or 16 bytes");
	if ((uintptr_t)dst % size || (uintptr_t)src % size)
		emu_fail("cp.async: a side not aligned to the size");
	copies_open[cur - fibers].push_back({ dst, src, size, zfill });
}

void __pipeline_commit(void)
{
	unsigned int me = (unsigned int)(cur - fibers);

	copies_committed[me].push_back(std::move(copies_open[me]));
	copies_open[me].clear();
}

void __pipeline_wait_prior(size_t n)
{
	std::deque<std::vector<emu_copy>> &q = copies_committed[cur - fibers];

	for (; q.size() > n; q.pop_front())
		for (const emu_copy &c : q.front()) {
			memcpy(c.dst, c.src, c.size - c.zfill);
			memset(static_cast<char *>(c.dst) + c.size - c.zfill, 0, c.zfill);
		}
}

/* ---- what cuda_emu_wmma.h needs ---- */

static const void *warp_slot[EMU_MAX_THREADS][2];
static uint8_t frag_map[EMU_FRAG_KINDS][256], frag_inv[EMU_FRAG_KINDS][256];
static bool frag_drawn;

/*
 * A random element order per kind of fragment, from the run's seed (drawn
 * at the first use, inside a kernel, when the seed is set) but with a
 * generator of its own, so the threads' order does not change with it.
 */
static void frag_draw(void)
{
	uint64_t x = sched_rng_seed ^ 0x9e3779b97f4a7c15ull;
	int k, i;

	for (k = 0; k < EMU_FRAG_KINDS; k++) {
		for (i = 0; i < 256; i++)
			frag_map[k][i] = (uint8_t)i;
		for (i = 255; i > 0; i--) {
			uint8_t t;
			int j;

			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			j = (int)((x * 0x2545f4914f6cdd1dull) >> 33) % (i + 1);
			t = frag_map[k][i];
			frag_map[k][i] = frag_map[k][j];
			frag_map[k][j] = t;
		}
		for (i = 0; i < 256; i++)
			frag_inv[k][frag_map[k][i]] = (uint8_t)i;
	}
	frag_drawn = true;
}

const uint8_t *cuk_emu_frag_map(int kind)
{
	if (!frag_drawn)
		frag_draw();
	return frag_map[kind];
}

const uint8_t *cuk_emu_frag_inv(int kind)
{
	if (!frag_drawn)
		frag_draw();
	return frag_inv[kind];
}

unsigned int cuk_emu_lane(void)
{
	return (unsigned int)(cur - fibers) % 32;
}

void cuk_emu_warp_sync(void)
{
	block_until(WAIT_SHFL);
}

const void **cuk_emu_warp_slots(void)
{
	return &warp_slot[(cur - fibers) & ~31][0];
}

void cuk_emu_wmma_check(const void *p, unsigned int ldm, size_t size)
{
	if ((uintptr_t)p % 32)
		emu_fail("wmma: pointer not 256-bit aligned");
	if (ldm * size % 16)
		emu_fail("wmma: leading dimension not a multiple of 16 bytes");
}

/* Where a new fiber starts; it never returns, it switches away for good. */
/*
 * What a thread may not leave behind. A function of its own, which returns:
 * emu_fiber_main() never does, and ASan would find the scopes of its
 * locals still marked on the stack when the next block reuses it.
 */
static void __attribute__((noinline)) fiber_exit_check(void)
{
	unsigned int me = (unsigned int)(cur - fibers);

	if (!copies_open[me].empty() || !copies_committed[me].empty())
		emu_fail("a thread exited with cp.async copies not waited for");
}

extern "C" void emu_fiber_main(void)
{
	(*body)();
	fiber_exit_check();
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
typedef std::vector<std::function<void()>> emu_work;

static emu_work queue;

static cudaError_t sticky;

/* Run what is queued; after a kernel's fault nothing more runs. */
static cudaError_t emu_flush(void)
{
	size_t i;

	for (i = 0; i < queue.size() && sticky == cudaSuccess; i++)
		queue[i]();
	queue.clear();
	return sticky;
}

/*
 * Streams, for graph capture (the queue above stays one for all of them).
 * While a stream captures, what is issued to it is recorded into @nodes
 * instead of queued, and nothing runs; cudaStreamEndCapture() turns the
 * record into a graph, whose launch queues the same work again. A capture
 * is invalidated, as by cudart, by a call that capture forbids; the stream
 * then refuses work until the capture ends, and the end gives no graph.
 */
struct CUstream_st {
	unsigned int		flags;
	bool			capturing, invalidated;
	cudaStreamCaptureMode	mode;
	std::thread::id		thread;		/* the one that began the capture */
	emu_work		nodes;
};

/* What cudaStreamEndCapture() returns, and what an exec owns a copy of. */
struct CUgraph_st {
	emu_work	nodes;
};

struct CUgraphExec_st {
	emu_work	nodes;
};

/*
 * The streams that exist, cudaStreamPerThread's among them: the emulator's
 * callers are one thread, so one stream stands for every thread's. It is
 * a blocking stream, as cudart's per-thread stream synchronises with the
 * legacy one.
 */
static CUstream_st per_thread_stream = { cudaStreamDefault, false, false,
					 cudaStreamCaptureModeGlobal, std::thread::id(), {} };
static std::set<CUstream_st *> streams = { &per_thread_stream };

/* cudaThreadExchangeStreamCaptureMode(): this thread's side of the rules. */
static thread_local cudaStreamCaptureMode thread_capture_mode = cudaStreamCaptureModeGlobal;

/*
 * Errors that, as on a GPU, also show through cudaGetLastError(): those
 * of capture, and a launch's, which has no return value to carry them.
 */
static cudaError_t last_error;

static cudaError_t emu_error(cudaError_t e)
{
	if (e != cudaSuccess)
		last_error = e;
	return e;
}

/*
 * Faults on demand, for tests of what the backend and llmqd do with a CUDA
 * error (see cuk_emu_fault()): the next fault and how many calls of its
 * kind come before it. A kernel that faults leaves the error sticky, as a
 * fault inside a kernel loses a GPU's context: the rest of the queue never
 * runs and every call that touches the device returns it from then on.
 */
enum emu_fault { FAULT_NONE, FAULT_LAUNCH, FAULT_GEMM, FAULT_KERNEL };

static emu_fault fault_kind;
static unsigned long fault_left;

/* Is this call of @kind the one that fails? */
static bool fault_now(emu_fault kind)
{
	if (fault_kind != kind || --fault_left)
		return false;
	fault_kind = FAULT_NONE;
	return true;
}

/* NULL for the legacy default stream (0 or cudaStreamLegacy). */
static CUstream_st *stream_of(cudaStream_t s)
{
	if (s == NULL || s == cudaStreamLegacy)
		return NULL;
	if (s == cudaStreamPerThread)
		return &per_thread_stream;
	return s;
}

/*
 * Work on the legacy stream waits for every blocking stream, so while one
 * of those captures it would depend on work that does not run: cudart
 * refuses it with cudaErrorStreamCaptureImplicit and invalidates those
 * captures (@invalidate false: only the refusal, as cudaStreamIsCapturing()
 * does).
 */
static cudaError_t legacy_use(bool invalidate)
{
	bool refused = false;

	for (CUstream_st *st : streams)
		if (st->capturing && !(st->flags & cudaStreamNonBlocking)) {
			refused = true;
			if (invalidate)
				st->invalidated = true;
		}
	return refused ? emu_error(cudaErrorStreamCaptureImplicit) : cudaSuccess;
}

/*
 * A "potentially unsafe" call (one that allocates, frees or waits for the
 * device) while captures go on: as cudart (see
 * cudaThreadExchangeStreamCaptureMode()), in a thread of mode Global it is
 * forbidden by any capture begun in Global mode and by a non-relaxed one
 * this thread began; in a thread of mode ThreadLocal only by the latter;
 * Relaxed forbids nothing. A forbidden call fails with
 * cudaErrorStreamCaptureUnsupported and invalidates the captures that
 * forbade it, so that the mistake shows at cudaStreamEndCapture() too.
 */
static cudaError_t unsafe_call(void)
{
	std::thread::id me = std::this_thread::get_id();
	bool refused = false;

	if (thread_capture_mode == cudaStreamCaptureModeRelaxed)
		return cudaSuccess;
	for (CUstream_st *st : streams) {
		if (!st->capturing || st->mode == cudaStreamCaptureModeRelaxed)
			continue;
		if (st->thread == me || (thread_capture_mode == cudaStreamCaptureModeGlobal &&
					 st->mode == cudaStreamCaptureModeGlobal)) {
			st->invalidated = true;
			refused = true;
		}
	}
	return refused ? emu_error(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

/*
 * Hand @fn to the device on @s: queued, or recorded into the graph that
 * @s captures (refused once that capture is invalidated, as cudart
 * refuses work into it).
 */
static cudaError_t emu_submit(cudaStream_t s, std::function<void()> fn)
{
	CUstream_st *st = stream_of(s);
	cudaError_t e;

	if (sticky != cudaSuccess)
		return emu_error(sticky);
	if (!st) {
		e = legacy_use(true);
		if (e != cudaSuccess)
			return e;
	} else if (st->capturing) {
		if (st->invalidated)
			return emu_error(cudaErrorStreamCaptureInvalidated);
		st->nodes.push_back(std::move(fn));
		return cudaSuccess;
	}
	queue.push_back(std::move(fn));
	return cudaSuccess;
}

/*
 * The limits are checked at the launch; the body runs, replays of a graph
 * included, through cuk_emu_run(), so every run of a block gets a fresh
 * thread order and freshly poisoned shared memory.
 */
void cuk_emu_enqueue(dim3 grid, dim3 block, cudaStream_t stream, std::function<void()> fn)
{
	unsigned int n = block.x * block.y * block.z;

	/* The limits of every GPU since compute capability 3.0. */
	if (!n || n > EMU_MAX_THREADS || block.x > 1024 || block.y > 1024 || block.z > 64)
		emu_fail("bad block size");
	if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 ||
	    grid.z > 65535)
		emu_fail("bad grid size");
	if (fault_now(FAULT_LAUNCH)) {
		/* What a launch asking for too many registers gets: nothing runs. */
		emu_error(cudaErrorLaunchOutOfResources);
		return;
	}
	(void)emu_submit(stream, [grid, block, fn]() {
		if (fault_now(FAULT_KERNEL)) {
			sticky = emu_error(cudaErrorIllegalAddress);
			return;
		}
		cuk_emu_run(grid, block, fn);
	});
}

/**
 * cuk_emu_fault() - make the emulated device fail on demand
 * @spec:	"launch:N": the Nth kernel launch from now fails
 *		(cudaErrorLaunchOutOfResources, through cudaGetLastError()),
 *		nothing of it runs; "gemm:N": the Nth cublasGemmEx() fails
 *		(CUBLAS_STATUS_EXECUTION_FAILED); "kernel:N": the Nth kernel to
 *		run faults (cudaErrorIllegalAddress), sticky as on a GPU;
 *		"none": no fault, and a sticky one is gone (a fresh device)
 *
 * LLMQ_CUDA_EMU_FAULT=SPEC in the environment sets one at start-up, for a
 * process (llmqd) that a test cannot call into.
 *
 * Return: 0, or -1 for a @spec of none of these forms.
 */
extern "C" int cuk_emu_fault(const char *spec)
{
	static const struct {
		const char	*name;
		emu_fault	kind;
	} kinds[] = { { "launch:", FAULT_LAUNCH }, { "gemm:", FAULT_GEMM },
		      { "kernel:", FAULT_KERNEL } };
	unsigned long n;
	char *end;

	if (!strcmp(spec, "none")) {
		fault_kind = FAULT_NONE;
		sticky = last_error = cudaSuccess;
		return 0;
	}
	for (const auto &k : kinds) {
		size_t len = strlen(k.name);

		if (strncmp(spec, k.name, len))
			continue;
		n = strtoul(spec + len, &end, 10);
		if (!n || *end)
			return -1;
		fault_kind = k.kind;
		fault_left = n;
		return 0;
	}
	return -1;
}

static void __attribute__((constructor)) fault_from_env(void)
{
	const char *spec = getenv("LLMQ_CUDA_EMU_FAULT");

	if (spec && cuk_emu_fault(spec)) {
		fprintf(stderr, "cuda emulator: LLMQ_CUDA_EMU_FAULT=%s: not launch:N, gemm:N, "
			"kernel:N or none\n", spec);
		abort();
	}
}

/* ---- cudart ---- */

#define EMU_MEMORY	(1ull << 30)

static std::map<const char *, size_t> allocs;
static size_t allocated;

/* Whether @p lies inside a block of @m (start -> bytes). */
static bool in_blocks(const std::map<const char *, size_t> &m, const void *p)
{
	const char *c = static_cast<const char *>(p);
	auto it = m.upper_bound(c);

	if (it == m.begin())
		return false;
	--it;
	return c < it->first + (it->second ? it->second : 1);
}

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

/*
 * Aligned to 256 bytes, as cudaMalloc() promises and as cuBLAS asks of a
 * workspace (cublasSetWorkspace_v2()).
 */
cudaError_t cudaMalloc(void **p, size_t size)
{
	cudaError_t e = sticky != cudaSuccess ? sticky : unsafe_call();

	*p = NULL;
	if (e != cudaSuccess)
		return e;
	if (allocated + size > EMU_MEMORY)
		return cudaErrorMemoryAllocation;
	if (posix_memalign(p, 256, size ? size : 1)) {
		*p = NULL;
		return cudaErrorMemoryAllocation;
	}
	allocs[static_cast<const char *>(*p)] = size;
	allocated += size;
	return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
	cudaError_t e = unsafe_call();
	auto it = allocs.find(static_cast<const char *>(p));

	if (e != cudaSuccess)
		return e;
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
	return in_blocks(pinned, p);
}

cudaError_t cudaMallocHost(void **p, size_t size)
{
	cudaError_t e = unsafe_call();

	*p = NULL;
	if (e != cudaSuccess)
		return e;
	*p = malloc(size ? size : 1);
	if (!*p)
		return cudaErrorMemoryAllocation;
	pinned[static_cast<const char *>(*p)] = size ? size : 1;
	return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
	cudaError_t e = unsafe_call();

	if (e != cudaSuccess)
		return e;
	emu_flush();
	pinned.erase(static_cast<const char *>(p));
	free(p);
	return cudaSuccess;
}

/* A synchronous copy: waits for the device, then copies (unless it faulted). */
static cudaError_t copy_now(void *dst, const void *src, size_t n)
{
	if (emu_flush() != cudaSuccess)
		return emu_error(sticky);
	memmove(dst, src, n);
	return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
	cudaError_t e = unsafe_call();

	(void)kind;
	if (e == cudaSuccess)
		e = legacy_use(true);
	if (e != cudaSuccess)
		return e;
	return copy_now(dst, src, n);
}

/*
 * Whether a copy of @kind touches host memory that is not pinned; with
 * cudaMemcpyDefault, any side outside cudaMalloc()ed memory counts as host.
 */
static bool pageable_side(void *dst, const void *src, enum cudaMemcpyKind kind)
{
	bool src_host = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
	bool dst_host = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;

	if (kind == cudaMemcpyDefault) {
		src_host = !in_blocks(allocs, src);
		dst_host = !in_blocks(allocs, dst);
	}
	return (src_host && !is_pinned(src)) || (dst_host && !is_pinned(dst));
}

/*
 * As cudart: a copy from or to pinned memory is queued; one from pageable
 * memory is staged at once (the source may be reused on return), one to
 * pageable memory waits for the device and copies (returns when done).
 *
 * Captured, a copy is a node that reads its source when it runs, every
 * replay again. The emulator refuses (cudaErrorStreamCaptureUnsupported,
 * capture invalidated) to capture one whose host side is pageable, which
 * is stricter than CUDA: cudart would capture it, but the staging and the
 * synchronous return above are gone in a graph, so such a node reads or
 * writes the pageable buffer whenever the replay runs, which is rarely
 * what the code that issued it meant.
 */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
			    cudaStream_t s)
{
	CUstream_st *st = stream_of(s);

	if (st && st->capturing) {
		if (!st->invalidated && pageable_side(dst, src, kind)) {
			st->invalidated = true;
			return emu_error(cudaErrorStreamCaptureUnsupported);
		}
		return emu_submit(s, [dst, src, n]() { memmove(dst, src, n); });
	}
	if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
		std::vector<char> copy(static_cast<const char *>(src),
				       static_cast<const char *>(src) + n);

		return emu_submit(s, [dst, copy]() { memcpy(dst, copy.data(), copy.size()); });
	}
	if (kind == cudaMemcpyDeviceToHost && !is_pinned(dst)) {
		cudaError_t e = st ? cudaSuccess : legacy_use(true);

		if (e == cudaSuccess)
			e = copy_now(dst, src, n);
		return e;
	}
	return emu_submit(s, [dst, src, n]() { memmove(dst, src, n); });
}

/* On the legacy stream, and so forbidden while a blocking stream captures. */
cudaError_t cudaMemset(void *p, int v, size_t n)
{
	cudaError_t e = unsafe_call();

	if (e != cudaSuccess)
		return e;
	return emu_submit(NULL, [p, v, n]() { memset(p, v, n); });
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
	return emu_submit(s, [p, v, n]() { memset(p, v, n); });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
	if (flags & ~(unsigned int)cudaStreamNonBlocking)
		return cudaErrorInvalidValue;
	*s = new CUstream_st{ flags, false, false, cudaStreamCaptureModeGlobal,
			      std::thread::id(), {} };
	streams.insert(*s);
	return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
	return cudaStreamCreateWithFlags(s, cudaStreamDefault);
}

/*
 * Waiting for a stream that captures would wait for work that never runs:
 * cudart refuses it, in every capture mode, and invalidates the capture.
 */
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
	CUstream_st *st = stream_of(s);
	cudaError_t e = unsafe_call();

	if (st && st->capturing) {
		st->invalidated = true;
		return emu_error(cudaErrorStreamCaptureUnsupported);
	}
	if (e == cudaSuccess && !st)
		e = legacy_use(true);
	if (e != cudaSuccess)
		return e;
	return emu_error(emu_flush());
}

/*
 * A stream destroyed while it captures (cudart leaves that undocumented;
 * an error path that skipped cudaStreamEndCapture()) takes its unfinished
 * capture with it, so that the leak checker does not blame the emulator.
 */
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	CUstream_st *st = stream_of(s);

	if (!st || st == &per_thread_stream || !streams.count(st))
		return cudaErrorInvalidResourceHandle;
	emu_flush();
	streams.erase(st);
	delete st;
	return cudaSuccess;
}

/* Waits for every stream, those that capture too: refused in any mode. */
cudaError_t cudaDeviceSynchronize(void)
{
	cudaError_t e = unsafe_call();

	for (CUstream_st *st : streams)
		if (st->capturing) {
			st->invalidated = true;
			e = emu_error(cudaErrorStreamCaptureUnsupported);
		}
	if (e != cudaSuccess)
		return e;
	return emu_error(emu_flush());
}

/*
 * Begin capture on @s: what is issued to it from now on is recorded, not
 * run. The legacy stream cannot capture (cudart answers
 * cudaErrorStreamCaptureUnsupported), nor can a stream that already does.
 */
cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
	CUstream_st *st = stream_of(s);

	if (!st)
		return emu_error(cudaErrorStreamCaptureUnsupported);
	if (!streams.count(st))
		return emu_error(cudaErrorInvalidResourceHandle);
	if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
	    mode != cudaStreamCaptureModeRelaxed)
		return emu_error(cudaErrorInvalidValue);
	if (st->capturing)
		return emu_error(cudaErrorIllegalState);
	st->capturing = true;
	st->invalidated = false;
	st->mode = mode;
	st->thread = std::this_thread::get_id();
	st->nodes.clear();
	return cudaSuccess;
}

/*
 * End capture on @s: *@graph is the recorded work, or NULL with
 * cudaErrorStreamCaptureInvalidated when a forbidden call invalidated the
 * capture. A stream that does not capture gives cudaErrorIllegalState, as
 * the driver does (the documentation names only cudaErrorInvalidValue).
 * Outside Relaxed mode only the thread that began may end it.
 */
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
	CUstream_st *st = stream_of(s);
	bool invalidated;

	if (!graph)
		return emu_error(cudaErrorInvalidValue);
	*graph = NULL;
	if (!st)
		return emu_error(cudaErrorIllegalState);
	if (!streams.count(st))
		return emu_error(cudaErrorInvalidResourceHandle);
	if (!st->capturing)
		return emu_error(cudaErrorIllegalState);
	if (st->mode != cudaStreamCaptureModeRelaxed &&
	    st->thread != std::this_thread::get_id())
		return emu_error(cudaErrorStreamCaptureWrongThread);
	invalidated = st->invalidated;
	st->capturing = false;
	st->invalidated = false;
	if (invalidated) {
		st->nodes.clear();
		return emu_error(cudaErrorStreamCaptureInvalidated);
	}
	*graph = new CUgraph_st{ std::move(st->nodes) };
	st->nodes.clear();
	return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status)
{
	CUstream_st *st = stream_of(s);

	if (!status)
		return emu_error(cudaErrorInvalidValue);
	if (!st) {
		*status = cudaStreamCaptureStatusNone;
		return legacy_use(false);
	}
	if (!streams.count(st))
		return emu_error(cudaErrorInvalidResourceHandle);
	*status = !st->capturing ? cudaStreamCaptureStatusNone :
		  st->invalidated ? cudaStreamCaptureStatusInvalidated :
		  cudaStreamCaptureStatusActive;
	return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode *mode)
{
	cudaStreamCaptureMode old = thread_capture_mode;

	if (!mode)
		return emu_error(cudaErrorInvalidValue);
	if (*mode != cudaStreamCaptureModeGlobal && *mode != cudaStreamCaptureModeThreadLocal &&
	    *mode != cudaStreamCaptureModeRelaxed)
		return emu_error(cudaErrorInvalidValue);
	thread_capture_mode = *mode;
	*mode = old;
	return cudaSuccess;
}

/*
 * The exec owns a copy of the graph's work (kernel arguments included), so
 * either may be destroyed first. The flags change nothing here; unknown
 * ones are refused as cudart refuses them.
 */
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
				 unsigned long long flags)
{
	const unsigned long long known = cudaGraphInstantiateFlagAutoFreeOnLaunch |
		cudaGraphInstantiateFlagUpload | cudaGraphInstantiateFlagDeviceLaunch |
		cudaGraphInstantiateFlagUseNodePriority;

	if (!exec || !graph || (flags & ~known))
		return emu_error(cudaErrorInvalidValue);
	*exec = new CUgraphExec_st{ graph->nodes };
	return cudaSuccess;
}

/*
 * Queue every recorded item again, in order, on @s: it runs at the next
 * synchronise like any queued work. Into a stream that captures, the work
 * is recorded, as cudart records a child graph.
 */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
	cudaError_t e = cudaSuccess;
	size_t i;

	if (!exec)
		return emu_error(cudaErrorInvalidValue);
	for (i = 0; i < exec->nodes.size() && e == cudaSuccess; i++)
		e = emu_submit(s, exec->nodes[i]);
	return e;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
	delete exec;
	return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
	delete graph;
	return cudaSuccess;
}

/* A sticky error is never cleared: the context is lost. */
cudaError_t cudaGetLastError(void)
{
	cudaError_t e = last_error;

	last_error = sticky;
	return e;
}

cudaError_t cudaPeekAtLastError(void)
{
	return last_error;
}

const char *cudaGetErrorString(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return "no error";
	case cudaErrorInvalidValue:
		return "invalid argument";
	case cudaErrorMemoryAllocation:
		return "out of memory";
	case cudaErrorInvalidResourceHandle:
		return "invalid resource handle";
	case cudaErrorIllegalState:
		return "the resource is not in a valid state to perform the requested operation";
	case cudaErrorStreamCaptureUnsupported:
		return "operation not permitted when stream is capturing";
	case cudaErrorStreamCaptureInvalidated:
		return "operation failed due to a previous error during capture";
	case cudaErrorStreamCaptureImplicit:
		return "operation would make the legacy stream depend on a capturing blocking stream";
	case cudaErrorStreamCaptureWrongThread:
		return "attempt to terminate a thread-local capture sequence from another thread";
	case cudaErrorLaunchOutOfResources:
		return "too many resources requested for launch";
	case cudaErrorIllegalAddress:
		return "an illegal memory access was encountered";
	default:
		return "emulated error";
	}
}

const char *cudaGetErrorName(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return "cudaSuccess";
	case cudaErrorInvalidValue:
		return "cudaErrorInvalidValue";
	case cudaErrorMemoryAllocation:
		return "cudaErrorMemoryAllocation";
	case cudaErrorInvalidResourceHandle:
		return "cudaErrorInvalidResourceHandle";
	case cudaErrorIllegalState:
		return "cudaErrorIllegalState";
	case cudaErrorStreamCaptureUnsupported:
		return "cudaErrorStreamCaptureUnsupported";
	case cudaErrorStreamCaptureInvalidated:
		return "cudaErrorStreamCaptureInvalidated";
	case cudaErrorStreamCaptureImplicit:
		return "cudaErrorStreamCaptureImplicit";
	case cudaErrorStreamCaptureWrongThread:
		return "cudaErrorStreamCaptureWrongThread";
	case cudaErrorLaunchOutOfResources:
		return "cudaErrorLaunchOutOfResources";
	case cudaErrorIllegalAddress:
		return "cudaErrorIllegalAddress";
	default:
		return "cudaErrorEmulated";
	}
}

/*
 * Events (bench_cuda times with them): host clock readings. Recorded on a
 * stream that captures, an event only marks a point of the capture in
 * cudart (for other streams to wait on; a captured cudaEventRecord() is no
 * node of the graph), and the emulator records nothing.
 */
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	*e = reinterpret_cast<cudaEvent_t>(calloc(1, sizeof(struct timespec)));
	return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	/* Work queued to record it may still be pending: let it run first. */
	emu_flush();
	free(e);
	return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	CUstream_st *st = stream_of(s);

	if (st && st->capturing)
		return st->invalidated ? emu_error(cudaErrorStreamCaptureInvalidated) :
		       cudaSuccess;
	return emu_submit(s, [e]() {
		clock_gettime(CLOCK_MONOTONIC, reinterpret_cast<struct timespec *>(e));
	});
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
	cudaError_t err = unsafe_call();

	(void)e;
	if (err != cudaSuccess)
		return err;
	return emu_error(emu_flush());
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
	const struct timespec *x = reinterpret_cast<struct timespec *>(a);
	const struct timespec *y = reinterpret_cast<struct timespec *>(b);

	*ms = (float)((y->tv_sec - x->tv_sec) * 1e3 + (y->tv_nsec - x->tv_nsec) / 1e6);
	return cudaSuccess;
}

/* ---- cuBLAS: the one GEMM the backend uses ---- */

/* A handle: its stream (cublasSetStream_v2()) and user workspace. */
struct cublasContext {
	cudaStream_t	stream;
	void		*workspace;
	size_t		workspace_bytes;
};

cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
{
	*h = new cublasContext{ NULL, NULL, 0 };
	return CUBLAS_STATUS_SUCCESS;
}

/* cuBLAS documents that its destroy waits for the device. */
cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	emu_flush();
	delete h;
	return CUBLAS_STATUS_SUCCESS;
}

/* As cuBLAS, setting the stream puts the default workspace back. */
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
{
	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	h->stream = s;
	h->workspace = NULL;
	h->workspace_bytes = 0;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *s)
{
	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	*s = h->stream;
	return CUBLAS_STATUS_SUCCESS;
}

/*
 * The emulated GEMM needs no workspace, but the call is checked as cuBLAS
 * checks it: NULL only with 0 bytes (back to the default), the pointer
 * aligned to 256 bytes.
 */
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *ws, size_t bytes)
{
	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if ((!ws && bytes) || ((uintptr_t)ws & 255))
		return CUBLAS_STATUS_INVALID_VALUE;
	h->workspace = ws;
	h->workspace_bytes = bytes;
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

/*
 * Checked now, computed in order on the handle's stream; alpha and beta
 * read now (host pointers), so a captured GEMM replays with those values.
 */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
			    int m, int n, int k, const void *alpha, const void *A,
			    cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb,
			    const void *beta, void *C, cudaDataType ct, int ldc,
			    cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
	const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
	const bool opa = ta != CUBLAS_OP_N, opb = tb != CUBLAS_OP_N;
	float *c = static_cast<float *>(C);

	(void)algo;
	if (!h)
		return CUBLAS_STATUS_NOT_INITIALIZED;
	if (at != CUDA_R_16BF || bt != CUDA_R_16BF || ct != CUDA_R_32F ||
	    comp != CUBLAS_COMPUTE_32F)
		return CUBLAS_STATUS_NOT_SUPPORTED;
	if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) ||
	    ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m)
		return CUBLAS_STATUS_INVALID_VALUE;
	if (fault_now(FAULT_GEMM))
		return CUBLAS_STATUS_EXECUTION_FAILED;
	if (emu_submit(h->stream, [=]() {
		gemm_run(opa, opb, m, n, k, al, A, lda, B, ldb, be, c, ldc);
	}) != cudaSuccess)
		return CUBLAS_STATUS_EXECUTION_FAILED;
	return CUBLAS_STATUS_SUCCESS;
}

}	/* extern "C" */
