// SPDX-License-Identifier: GPL-2.0
/*
 * Bandwidth table of the CPU matrix kernels (not run by make check): for a
 * ~100 MB weight matrix of each dtype, on each kernel path this CPU runs, the
 * weight bytes streamed per second at M = 1 (decode) and M = 16 (a batch, or
 * --m rows),
 * beside this machine's copy and read bandwidth and one core's FMA peak
 * measured in the same run.
 * Then the attention kernel, one call on one thread, as a step calls it at
 * the end of a 2048-token context: a prefill tile and a decode.
 *
 *   bench_kernels [--threads N] [--mb MB] [--k K] [--m M] [--reps R]
 *                 [--isa PATH] [--only matmul|attn]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtype.h"
#include "cpu/attention.h"
#include "cpu/cpu_features.h"
#include "cpu/matmul.h"
#include "cpu/threadpool.h"
#include "membw.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nop_task(void *arg, unsigned int task, unsigned int thread)
{
	(void)arg;
	(void)task;
	(void)thread;
}

/*
 * One core's FMA peak in GFLOP/s: 12 independent chains of 16-lane (zmm) or
 * 8-lane (ymm) FMAs, enough to cover the latency of two FMA pipes, in
 * assembly so that no compiler choice (spills, a dependency) lowers it.
 * The figure the kernels' GFLOP/s are to be read against.
 */
#if defined(__x86_64__)
#define FMA12(r)							\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "0\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "1\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "2\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "3\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "4\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "5\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "6\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "7\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "8\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "9\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "10\n\t"		\
	"vfmadd231ps %%" r "14, %%" r "15, %%" r "11\n\t"

/* zeros in every register the loop reads, so no denormal slows it */
#define ZERO16								\
	"vxorps %%ymm0, %%ymm0, %%ymm0\n\tvmovaps %%ymm0, %%ymm1\n\t"	\
	"vmovaps %%ymm0, %%ymm2\n\tvmovaps %%ymm0, %%ymm3\n\t"		\
	"vmovaps %%ymm0, %%ymm4\n\tvmovaps %%ymm0, %%ymm5\n\t"		\
	"vmovaps %%ymm0, %%ymm6\n\tvmovaps %%ymm0, %%ymm7\n\t"		\
	"vmovaps %%ymm0, %%ymm8\n\tvmovaps %%ymm0, %%ymm9\n\t"		\
	"vmovaps %%ymm0, %%ymm10\n\tvmovaps %%ymm0, %%ymm11\n\t"		\
	"vmovaps %%ymm0, %%ymm14\n\tvmovaps %%ymm0, %%ymm15\n\t"

static double fma_peak(bool zmm)
{
	const long iters = 100000000;
	double best = 0, t0;
	long n;
	int r;

	for (r = 0; r < 3; r++) {
		n = iters;
		t0 = now();
		if (zmm)
			__asm__ volatile(ZERO16 "1:\n\t" FMA12("zmm") "dec %0\n\tjnz 1b"
					 : "+r"(n) : : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
					 "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
					 "xmm14", "xmm15", "cc");
		else
			__asm__ volatile(ZERO16 "1:\n\t" FMA12("ymm") "dec %0\n\tjnz 1b"
					 : "+r"(n) : : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
					 "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
					 "xmm14", "xmm15", "cc");
		/* 12 FMAs of 2 flops per lane each iteration */
		t0 = (double)iters * 12 * 2 * (zmm ? 16 : 8) / (now() - t0) / 1e9;
		if (t0 > best)
			best = t0;
	}
	return best;
}
#endif

/* Mean cost of one threadpool_run() of one empty task per thread, back to back. */
static double pool_overhead_us(struct threadpool *pool)
{
	const int calls = 20000;
	double t = now();
	int i;

	for (i = 0; i < calls; i++)
		threadpool_run(pool, threadpool_size(pool), nop_task, NULL);
	return (now() - t) / calls * 1e6;
}

static float frand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (float)((double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

/*
 * Attention shapes: the 100m preset's heads (d = 64, 3 query heads per KV
 * head) over the last positions of a 2048-token context.
 */
#define ATT_CTX		2048
#define ATT_D		64
#define ATT_HEADS	3

/* GFLOP/s of one attention call of @rows rows ending at ATT_CTX positions. */
static double attn_rate(const struct attn_kernels *kern, bool f16, uint32_t rows,
			const void **kp, const void **vp, const float *q, float *out,
			float *work, int reps)
{
	struct cpu_attn a = {
		.q = q, .ldq = ATT_HEADS * ATT_D, .out = out, .ldo = ATT_HEADS * ATT_D,
		.k = kp, .v = vp, .pos = ATT_CTX - rows, .rows = rows, .heads = ATT_HEADS,
		.d = ATT_D, .scale = 0.125f, .f16 = f16, .work = work,
	};
	double flops = 0, best = 1e30, t0;
	uint32_t r;
	int i;

	for (r = 0; r < rows; r++)
		flops += 4.0 * ATT_D * ATT_HEADS * (a.pos + r + 1);
	kern->run(&a);			/* warm up */
	for (i = 0; i < reps; i++) {
		t0 = now();
		kern->run(&a);
		t0 = now() - t0;
		if (t0 < best)
			best = t0;
	}
	return flops / best / 1e9;
}

/* The attention table: each path, float and half cache, tile and decode. */
static int bench_attention(int only, int reps)
{
	const uint32_t tile = 48 / ATT_HEADS;	/* backend_cpu.c's tile */
	size_t n = (size_t)ATT_CTX * ATT_D, i;
	float *kf = malloc(2 * n * sizeof(float)), *q, *out, *work;
	uint16_t *kh = malloc(2 * n * sizeof(uint16_t));
	const void **ptr = malloc(4 * ATT_CTX * sizeof(void *));
	uint64_t seed = 7;
	unsigned int isa;
	int ret = 1;

	q = malloc((size_t)tile * ATT_HEADS * ATT_D * sizeof(float));
	out = malloc((size_t)tile * ATT_HEADS * ATT_D * sizeof(float));
	work = aligned_alloc(64, (cpu_attn_work_floats(tile * ATT_HEADS, ATT_D) + 15) /
				 16 * 64);
	if (!kf || !kh || !ptr || !q || !out || !work)
		goto out;
	for (i = 0; i < 2 * n; i++) {
		kf[i] = frand(&seed);
		kh[i] = fp32_to_fp16(kf[i]);
	}
	for (i = 0; i < (size_t)tile * ATT_HEADS * ATT_D; i++)
		q[i] = frand(&seed);
	printf("\nattention, one call on one thread, %u query heads per KV head, d = %u, "
	       "rows ending at position %u (GFLOP/s, 4 d flops per query and position):\n",
	       ATT_HEADS, ATT_D, ATT_CTX);
	printf("%-9s %12s %12s %12s %12s\n", "path", "tile f32", "tile f16", "decode f32",
	       "decode f16");
	for (isa = 0; isa < CPU_ISA_COUNT; isa++) {
		const struct attn_kernels *kern = attn_kernels(isa);
		double g[4];
		int c;

		if (!kern || (only >= 0 && (int)isa != only))
			continue;
		for (c = 0; c < 4; c++) {
			bool f16 = c & 1;

			for (i = 0; i < ATT_CTX; i++) {
				ptr[i] = f16 ? (const void *)(kh + i * ATT_D) :
					       (const void *)(kf + i * ATT_D);
				ptr[ATT_CTX + i] = f16 ? (const void *)(kh + n + i * ATT_D) :
							 (const void *)(kf + n + i * ATT_D);
			}
			g[c] = attn_rate(kern, f16, c < 2 ? tile : 1, ptr, ptr + ATT_CTX, q, out,
					 work, reps);
		}
		printf("%-9s %12.1f %12.1f %12.1f %12.1f\n", kern->name, g[0], g[1], g[2], g[3]);
	}
	ret = 0;
out:
	free(kf);
	free(kh);
	free(ptr);
	free(q);
	free(out);
	free(work);
	return ret;
}

int main(int argc, char **argv)
{
	static const uint32_t types[] = {
		GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
		GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
		GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
	};
	size_t ms[] = { 1, 16 };
	unsigned int threads = 0, i, t, isa, mi;
	size_t mb = 100, k = 4096, len, maxrb, n;
	int reps = 10, r;
	struct threadpool *pool;
	double copy1, copyn, readn;
	uint8_t *w;
	float *x, *y, *row;
	uint64_t seed = 1, rb;
	int only = -1, what = 0;	/* 0 both, 1 matmul, 2 attention */
	char head[32];

	for (i = 1; i + 1 < (unsigned int)argc; i += 2) {
		if (!strcmp(argv[i], "--threads"))
			threads = (unsigned int)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--mb"))
			mb = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--k"))
			k = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--m"))
			ms[1] = (size_t)atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--reps"))
			reps = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--isa")) {
			enum cpu_isa want;

			if (cpu_isa_parse(argv[i + 1], &want))
				return 2;
			only = (int)want;
		} else if (!strcmp(argv[i], "--only")) {
			what = !strcmp(argv[i + 1], "matmul") ? 1 :
			       !strcmp(argv[i + 1], "attn") ? 2 : -1;
			if (what < 0) {
				fprintf(stderr, "bench_kernels: --only matmul|attn\n");
				return 2;
			}
		}
	}
	if (what == 2)
		return bench_attention(only, reps);
	if (k % 256 || !mb || reps < 1 || ms[1] < 1 || ms[1] > 4096) {
		fprintf(stderr, "bench_kernels: --k must be a multiple of 256, --m 1 to 4096\n");
		return 2;
	}
	pool = threadpool_create(threads);
	if (!pool)
		return 1;
	threads = threadpool_size(pool);
	len = mb << 20;

	copy1 = membw_copy(NULL, len, 1, 5);
	copyn = membw_copy(pool, len, threads, 5);
	readn = membw_read(pool, len, threads, 5);

	printf("CPU kernel paths here:");
	for (isa = 0; isa < CPU_ISA_COUNT; isa++)
		if (cpu_isa_supported(isa))
			printf(" %s", cpu_isa_name(isa));
	printf("; %u threads; W = %zu MB, K = %zu\n", threads, mb, k);
	printf("threadpool_run, empty tasks: %.2f us per call\n", pool_overhead_us(pool));
#if defined(__x86_64__)
	if (cpu_isa_supported(CPU_ISA_AVX512))
		printf("FMA peak, one core: %.1f GFLOP/s on 16 lanes, %.1f on 8\n",
		       fma_peak(true), fma_peak(false));
	else if (cpu_isa_supported(CPU_ISA_AVX2))
		printf("FMA peak, one core: %.1f GFLOP/s on 8 lanes\n", fma_peak(false));
#endif
	printf("memcpy: %.1f GB/s (1 thread), %.1f GB/s (%u threads); "
	       "read: %.1f GB/s (%u threads)\n", copy1, copyn, threads, readn, threads);
	printf("(memcpy GB/s = bytes copied per second; %%copy and %%read divide the weight "
	       "bytes streamed per second at M=1 by the %u-thread memcpy and read figures)\n\n",
	       threads);
	snprintf(head, sizeof(head), "M=%zu GB/s", ms[1]);
	printf("%-6s %-9s %9s %6s %6s %7s %10s %8s %8s\n", "dtype", "path", "M=1 GB/s",
	       "%copy", "%read", "ms", head, "ms", "GFLOP/s");

	maxrb = k * 4;
	n = len / (k * 2);		/* rows: sized per type below */
	w = malloc(len + maxrb);
	x = malloc(ms[1] * k * sizeof(float));
	y = malloc(ms[1] * (len / ((size_t)k * 9 / 16) + 64) * sizeof(float));
	row = malloc(k * sizeof(float));
	if (!w || !x || !y || !row)
		return 1;
	for (i = 0; i < ms[1] * k; i++)
		x[i] = frand(&seed);

	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		dtype_row_bytes(types[t], k, &rb);
		n = len / rb / 24 * 24;
		/* one random row quantised, repeated: realistic bytes, quick setup */
		for (i = 0; i < k; i++)
			row[i] = frand(&seed);
		quantize(types[t], row, w, k);
		for (i = 1; i < n; i++)
			memcpy(w + i * rb, w, rb);
		for (isa = 0; isa < CPU_ISA_COUNT; isa++) {
			double gbs[2], ms_[2];

			if (!cpu_isa_supported(isa) || (only >= 0 && (int)isa != only))
				continue;
			for (mi = 0; mi < 2; mi++) {
				struct cpu_matmul mm = {
					.type = types[t], .w = w, .n = n, .k = k,
					.x = x, .ldx = k, .y = y, .ldy = n, .m = ms[mi],
				};
				double best = 1e30, t0;

				cpu_matmul_isa(pool, isa, &mm);		/* warm up */
				for (r = 0; r < reps; r++) {
					t0 = now();
					cpu_matmul_isa(pool, isa, &mm);
					t0 = now() - t0;
					if (t0 < best)
						best = t0;
				}
				gbs[mi] = (double)(n * rb) / best / 1e9;
				ms_[mi] = best * 1e3;
			}
			printf("%-6s %-9s %9.1f %5.0f%% %5.0f%% %7.2f %10.1f %8.2f %8.1f\n",
			       dtype_info(types[t])->name, cpu_isa_name(isa), gbs[0],
			       100 * gbs[0] / copyn, 100 * gbs[0] / readn, ms_[0], gbs[1], ms_[1],
			       2.0 * (double)ms[1] * (double)n * (double)k / (ms_[1] * 1e-3) /
			       1e9);
			fflush(stdout);
		}
	}
	free(w);
	free(x);
	free(y);
	free(row);
	threadpool_destroy(pool);
	return what ? 0 : bench_attention(only, reps);
}
