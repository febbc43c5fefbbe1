// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU backend's compute layer: the thread pool, CPU feature choice, the
 * matrix product for every weight dtype on every kernel path, and the row
 * kernels, against an independent float64 numpy reference
 * (tests/ref/kernels_ref.py), against each other, and for the invariances the
 * engine relies on (thread count and batch size change nothing).
 *
 * Inputs are random, from a fresh seed each run (printed first; set
 * LLMQ_TEST_SEED to repeat a run). A path the CPU lacks is skipped, never
 * passed. The AVX-512 code also runs as "avx512-simde" (the same source
 * built over SIMDe, see matmul_avx512.c) where that object is linked in.
 *
 * Tolerances, in units of u = 2^-24 (float's unit roundoff), with bounds
 * that hold for any input rather than typical errors, so no run is flaky:
 *
 * - matmul: every dtype's W is dequantised in registers exactly, x is used
 *   as is, so the only error is float accumulation. A path with L lanes
 *   does ceil(K/L) steps per lane, each at most 2 roundings (FMA: 1), then a
 *   log2(L)-level sum: |y - y64| <= (2 ceil(K/L) + 6) u sum_k |x w|
 *   elementwise, against the float64 product of the dequantised weights.
 *   Also, as a plain figure: ||y - y64|| / ||y64|| < 1e-5 (typically ~1e-7).
 *   No 8-bit quantisation of x is done, so quantised types meet the same
 *   bound as F32 (it would otherwise be ~5e-3 relative).
 * - two paths: each within the bound above of float64, so within twice it
 *   of each other.
 * - exact equalities: quantised W vs F32 W = dequantize(W) on one path;
 *   M rows at once vs one at a time; a thread pool vs the caller alone.
 * - rmsnorm: scale from a double sum, rounded once, then two float products:
 *   4u relative. rope: one rounding of a double expression: 2u (|a| + |b|).
 *   swiglu: expf, add, divide, multiply: 8u relative. add: correctly
 *   rounded, u relative.
 *   get_rows: bit for bit.
 * - attention, against float64 softmax(q K^T s) V over n positions: each
 *   output within ((2 d + 16) A + n + 32) u sum_p w_p |v_p|, w the float64
 *   weights and A the largest sum_i |q_i k_i| s: a score's error is at most
 *   (d + 2) u A, which the weights carry (through exp and the subtracted
 *   maximum) as a relative error twice that; the output and the weights' sum
 *   add one rounding per position and a few for rescaling. Over all outputs,
 *   1e-6 relative (typically 1e-7: the elementwise bound holds for any
 *   input, so it is loose; this catches an exp off by 1e-4). Each row and
 *   head gives the same bits alone, in a tile of rows, beside other heads,
 *   and with its spans split over calls and merged.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dtype.h"
#include "rng.h"
#include "cpu/attention.h"
#include "cpu/cpu_features.h"
#include "cpu/matmul.h"
#include "cpu/ops.h"
#include "cpu/threadpool.h"

#define U	(1.0 / 16777216.0)	/* 2^-24 */

/* Linked in only by builds that compile matmul_avx512.c over SIMDe. */
extern const struct matmul_kernels matmul_avx512_simde __attribute__((weak));
/* attn_avx512.c's 16-lane code built for AVX2 (attn_avx512_emu.o). */
extern const struct attn_kernels attn_avx512_emu __attribute__((weak));

static char tmpdir[] = "/tmp/llmq-kernels-XXXXXX";
static char srcdir[1024];
static unsigned long long seed;
static uint64_t rs[4];
static struct threadpool *pool;
static int case_dir_no;

/* ---- plumbing --------------------------------------------------------------- */

static uint64_t xr(void)
{
	return rng_next(rs);
}

static float frand(void)
{
	return (float)((double)(xr() >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

/* Each test draws from its own stream, so one test repeats alone. */
static void reseed(const char *name)
{
	uint64_t h = 1469598103934665603ULL;

	while (*name)
		h = (h ^ (unsigned char)*name++) * 1099511628211ULL;
	rng_seed(rs, seed ^ h);
}

struct path {
	const char			*name;
	const struct matmul_kernels	*kern;	/* NULL: not on this CPU / build */
	const char			*why;
};

static struct path paths[4];

static void paths_init(void)
{
	paths[0] = (struct path){ "portable", matmul_kernels(CPU_ISA_PORTABLE), NULL };
	paths[1] = (struct path){ "avx2", matmul_kernels(CPU_ISA_AVX2), "CPU lacks AVX2/FMA/F16C" };
	paths[2] = (struct path){ "avx512", matmul_kernels(CPU_ISA_AVX512), "CPU lacks AVX-512F" };
	paths[3] = (struct path){ "avx512-simde", NULL, NULL };
	if (!&matmul_avx512_simde)
		paths[3].why = "not linked (build matmul_avx512.c with -DLLMQ_CPU_SIMDE)";
	else if (!cpu_isa_supported(CPU_ISA_AVX2))
		paths[3].why = "its SIMDe build needs AVX2/FMA/F16C";
	else
		paths[3].kern = &matmul_avx512_simde;
}

static const struct matmul_kernels *path_or_skip(int p)
{
	if (!paths[p].kern) {
		print_message("[  SKIP    ] path %s: %s\n", paths[p].name, paths[p].why);
		skip();
	}
	return paths[p].kern;
}

static bool have_numpy(void)
{
	static int have = -1;

	if (have < 0)
		have = !access("/usr/bin/python3", X_OK) &&
		       !system("/usr/bin/python3 -c 'import numpy' 2>/dev/null");
	return have;
}

/* A fresh directory for one test's cases; its cases.txt is opened. */
static FILE *cases_open(char *dir, size_t len)
{
	char path[1200];
	FILE *f;

	snprintf(dir, len, "%s/%d", tmpdir, case_dir_no++);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/cases.txt", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	return f;
}

static void put(const char *dir, const char *name, const char *field, const void *p, size_t n)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, field);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static double *get(const char *dir, const char *name, const char *field, size_t count)
{
	char path[1200];
	double *a = malloc(count * sizeof(double) + 1);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, field);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(a, sizeof(double), count, f), count);
	fclose(f);
	return a;
}

static void run_reference(const char *dir)
{
	char cmd[3000];

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/ref/kernels_ref.py %s", srcdir, dir);
	if (system(cmd))
		fail_msg("reference failed: %s (seed %llu)", cmd, seed);
}

/* Random W of a type: uniform values in [-1, 1) packed by quantize(). */
static uint8_t *random_weights(uint32_t type, size_t n, size_t k, uint64_t *bytes)
{
	float *f = malloc(n * k * sizeof(float));
	uint8_t *w;
	size_t i;

	assert_int_equal(dtype_row_bytes(type, k, bytes), 0);
	*bytes *= n;
	w = malloc(*bytes);
	for (i = 0; i < n * k; i++)
		f[i] = frand();
	assert_int_equal(quantize(type, f, w, n * k), 0);
	free(f);
	return w;
}

static float *random_floats(size_t n, float scale)
{
	float *x = malloc(n * sizeof(float) + 1);
	size_t i;

	for (i = 0; i < n; i++)
		x[i] = frand() * scale;
	return x;
}

static const char *type_name(uint32_t type)
{
	return dtype_info(type)->name;
}

static size_t block_of(uint32_t type)
{
	return dtype_info(type)->block;
}

/* ---- thread pool ------------------------------------------------------------ */

struct count_job {
	atomic_uint	hits[1000];
	atomic_uint	bad_thread;
	unsigned int	size;
};

static void count_task(void *arg, unsigned int task, unsigned int thread)
{
	struct count_job *j = arg;

	atomic_fetch_add(&j->hits[task], 1);
	if (thread >= j->size)
		atomic_fetch_add(&j->bad_thread, 1);
}

static void check_pool_runs(struct threadpool *p, int rounds)
{
	static const unsigned int sizes[] = { 0, 1, 2, 3, 5, 64, 1000 };
	struct count_job *j = calloc(1, sizeof(*j));
	unsigned int s, t;
	int r;

	j->size = threadpool_size(p);
	for (r = 0; r < rounds; r++) {
		s = sizes[r % 7];
		for (t = 0; t < 1000; t++)
			atomic_store(&j->hits[t], 0);
		threadpool_run(p, s, count_task, j);
		for (t = 0; t < 1000; t++)
			if (atomic_load(&j->hits[t]) != (t < s))
				fail_msg("round %d, %u tasks: task %u ran %u times", r, s, t,
					 atomic_load(&j->hits[t]));
		if (r % 50 == 49)
			usleep(300);	/* longer than the spin: workers go to sleep */
	}
	assert_int_equal(atomic_load(&j->bad_thread), 0);
	free(j);
}

static void test_pool_every_task_once(void **state)
{
	(void)state;
	check_pool_runs(pool, 2000);
	check_pool_runs(NULL, 20);
}

static void test_pool_sizes(void **state)
{
	struct threadpool *p;

	(void)state;
	assert_true(threadpool_default_threads() >= 1);
	p = threadpool_create(0);
	assert_non_null(p);
	assert_int_equal(threadpool_size(p), threadpool_default_threads());
	check_pool_runs(p, 200);
	threadpool_destroy(p);
	p = threadpool_create(1);
	assert_non_null(p);
	assert_int_equal(threadpool_size(p), 1);
	check_pool_runs(p, 50);
	threadpool_destroy(p);
	assert_int_equal(threadpool_size(NULL), 1);
	threadpool_destroy(NULL);
}

static void test_pool_create_destroy(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 30; i++) {
		struct threadpool *p = threadpool_create(1 + i % 5);

		assert_non_null(p);
		if (i % 3)
			check_pool_runs(p, 7);
		threadpool_destroy(p);	/* also with workers never used */
	}
}

/* ---- CPU features ----------------------------------------------------------- */

static void test_isa_choice(void **state)
{
	const struct cpu_features *f = cpu_features();
	enum cpu_isa isa;
	bool capped;
	int i;

	(void)state;
	print_message("cpu: avx2 %d fma %d f16c %d avx512f %d bw %d vl %d vnni %d bf16 %d; "
		      "best %s, default %s\n", f->avx2, f->fma, f->f16c, f->avx512f,
		      f->avx512bw, f->avx512vl, f->avx512_vnni, f->avx512_bf16,
		      cpu_isa_name(cpu_isa_best()), cpu_isa_name(cpu_isa_default()));
	for (i = 0; i < CPU_ISA_COUNT; i++) {
		assert_int_equal(cpu_isa_parse(cpu_isa_name(i), &isa), 0);
		assert_int_equal(isa, i);
	}
	assert_int_equal(cpu_isa_parse("AVX2", &isa), 0);
	assert_int_equal(isa, CPU_ISA_AVX2);
	assert_int_equal(cpu_isa_parse("sse9", &isa), -EINVAL);
	assert_string_equal(cpu_isa_name(CPU_ISA_COUNT), "?");

	assert_int_equal(cpu_isa_choose(NULL, CPU_ISA_AVX2, &capped), CPU_ISA_AVX2);
	assert_false(capped);
	assert_int_equal(cpu_isa_choose("", CPU_ISA_AVX512, &capped), CPU_ISA_AVX512);
	assert_int_equal(cpu_isa_choose("portable", CPU_ISA_AVX512, &capped), CPU_ISA_PORTABLE);
	assert_false(capped);
	assert_int_equal(cpu_isa_choose("avx2", CPU_ISA_AVX512, &capped), CPU_ISA_AVX2);
	assert_int_equal(cpu_isa_choose("avx512", CPU_ISA_AVX2, &capped), CPU_ISA_AVX2);
	assert_true(capped);
	assert_int_equal(cpu_isa_choose("avx512", CPU_ISA_PORTABLE, &capped), CPU_ISA_PORTABLE);
	assert_true(capped);
	assert_int_equal(cpu_isa_choose("bogus", CPU_ISA_AVX2, &capped), CPU_ISA_AVX2);
	assert_true(capped);

	assert_true(cpu_isa_supported(CPU_ISA_PORTABLE));
	assert_true(cpu_isa_supported(cpu_isa_best()));
	assert_true(cpu_isa_default() <= cpu_isa_best());
	assert_false(cpu_isa_supported(CPU_ISA_COUNT));
	for (i = 0; i < CPU_ISA_COUNT; i++)
		assert_true(!matmul_kernels(i) == !cpu_isa_supported(i));
	if (f->avx2)
		assert_true(f->avx);
	if (f->avx512bw || f->avx512vl || f->avx512_vnni || f->avx512_bf16)
		assert_true(f->avx512f);
}

/* ---- matmul against numpy ----------------------------------------------------- */

struct mm_param {
	uint32_t	type;
	int		path;
};

static const uint32_t mm_types[] = {
	GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
	GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
	GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
};

#define N_TYPES	(sizeof(mm_types) / sizeof(mm_types[0]))
static struct mm_param mm_params[N_TYPES * 4];
static int path_params[4];

/* Error bound of a float dot product of length k on a path of @lanes lanes. */
static double mm_bound(size_t k, unsigned int lanes, double abs_sum)
{
	return (2.0 * (double)((k + lanes - 1) / lanes) + 6.0) * U * abs_sum;
}

static void run_mm(const struct matmul_kernels *kern, struct threadpool *p, uint32_t type,
		   const void *w, size_t n, size_t k, const float *x, size_t ldx, float *y,
		   size_t ldy, size_t m)
{
	struct cpu_matmul mm = {
		.type = type, .w = w, .n = n, .k = k,
		.x = x, .ldx = ldx, .y = y, .ldy = ldy, .m = m,
	};
	int err = cpu_matmul_with(p, kern, &mm);

	if (err)
		fail_msg("cpu_matmul %s %s m %zu n %zu k %zu: %d", kern->name, type_name(type),
			 m, n, k, err);
}

static void test_matmul_vs_numpy(void **state)
{
	const struct mm_param *prm = *state;
	const struct matmul_kernels *kern = path_or_skip(prm->path);
	const size_t blk = block_of(prm->type);
	/* odd sizes: N across micro-tile, cache-tile and task edges; K 1 block up */
	static const size_t ms[] = { 1, 3, 17 }, ns[] = { 1, 7, 61, 203 };
	const size_t ks_dense[] = { 1, 13, 67, 260 }, ks_block[] = { 1, 2, 3, 8 };
	struct { size_t m, n, k; float *y; } cs[48];
	char dir[1100], name[32];
	size_t c = 0, a, b, d, i;
	double num = 0, den = 0;
	FILE *f;

	if (!have_numpy())
		skip();
	reseed(kern->name);
	rs[0] ^= prm->type * 7919u;
	f = cases_open(dir, sizeof(dir));
	for (a = 0; a < 3; a++) {
		for (b = 0; b < 4; b++) {
			for (d = 0; d < 4; d++) {
				size_t m = ms[a], n = ns[b], k;
				uint64_t bytes;
				uint8_t *w;
				float *x;

				k = blk == 1 ? ks_dense[d] : blk * ks_block[d];
				if (b == 3 && d == 3 && a == 2 && prm->path == 0)
					k = blk == 1 ? 100 : blk * 2;	/* keep portable quick */
				w = random_weights(prm->type, n, k, &bytes);
				x = random_floats(m * k, 1.0f);
				snprintf(name, sizeof(name), "mm%zu", c);
				put(dir, name, "w", w, bytes);
				put(dir, name, "x", x, m * k * sizeof(float));
				fprintf(f, "matmul %s %s %zu %zu %zu\n", name, type_name(prm->type),
					m, n, k);
				cs[c].m = m;
				cs[c].n = n;
				cs[c].k = k;
				cs[c].y = malloc(m * n * sizeof(float));
				run_mm(kern, pool, prm->type, w, n, k, x, k, cs[c].y, n, m);
				free(w);
				free(x);
				c++;
			}
		}
	}
	fclose(f);
	run_reference(dir);
	for (i = 0; i < c; i++) {
		size_t cnt = cs[i].m * cs[i].n, e;
		double *ref, *abs;

		snprintf(name, sizeof(name), "mm%zu", i);
		ref = get(dir, name, "ref", cnt);
		abs = get(dir, name, "abs", cnt);
		for (e = 0; e < cnt; e++) {
			double err = fabs((double)cs[i].y[e] - ref[e]);
			double bound = mm_bound(cs[i].k, kern->lanes, abs[e]);

			if (!(err <= bound))
				fail_msg("%s %s m %zu n %zu k %zu: y[%zu][%zu] = %.9g, float64 %.17g, "
					 "error %.3g > bound %.3g (seed %llu)", kern->name,
					 type_name(prm->type), cs[i].m, cs[i].n, cs[i].k,
					 e / cs[i].n, e % cs[i].n, cs[i].y[e], ref[e], err, bound,
					 seed);
			num += err * err;
			den += ref[e] * ref[e];
		}
		free(ref);
		free(abs);
		free(cs[i].y);
	}
	/*
	 * Over all outputs together: one short dot product that cancels can have
	 * a large relative error while inside its elementwise bound.
	 */
	if (!(sqrt(num / den) < 1e-5))
		fail_msg("%s %s: relative error %.3g >= 1e-5 (seed %llu)", kern->name,
			 type_name(prm->type), sqrt(num / den), seed);
	print_message("%s %s: %zu shapes, relative error %.2g\n", kern->name,
		      type_name(prm->type), c, sqrt(num / den));
}

/* ---- matmul invariances (no reference needed) -------------------------------- */

static void test_matmul_exact_dequant(void **state)
{
	const int pth = *(const int *)*state;
	const struct matmul_kernels *kern = path_or_skip(pth);
	const size_t m = 5, n = 37, k = 512;
	float *x, *wf, *y, *yf;
	unsigned int t;

	reseed(kern->name);
	x = random_floats(m * k, 3.0f);
	wf = malloc(n * k * sizeof(float));
	y = malloc(m * n * sizeof(float));
	yf = malloc(m * n * sizeof(float));
	for (t = 1; t < N_TYPES; t++) {
		uint64_t bytes;
		uint8_t *w = random_weights(mm_types[t], n, k, &bytes);

		assert_int_equal(dequantize(mm_types[t], w, wf, n * k), 0);
		run_mm(kern, pool, mm_types[t], w, n, k, x, k, y, n, m);
		run_mm(kern, pool, GGML_TYPE_F32, wf, n, k, x, k, yf, n, m);
		if (memcmp(y, yf, m * n * sizeof(float)))
			fail_msg("%s %s differs from F32 on its dequantised weights (seed %llu)",
				 kern->name, type_name(mm_types[t]), seed);
		free(w);
	}
	free(x);
	free(wf);
	free(y);
	free(yf);
}

/*
 * Batch and thread invariance: M = 17 rows at once, in a pool, equal bit for
 * bit each row computed alone on the caller; strides are honoured and the
 * padding between rows is never written.
 */
static void test_matmul_invariance(void **state)
{
	const int pth = *(const int *)*state;
	const struct matmul_kernels *kern = path_or_skip(pth);
	const size_t m = 17, n = 131, ldx_pad = 5, ldy_pad = 3;
	struct threadpool *p7 = threadpool_create(7);
	unsigned int t;

	reseed(kern->name);
	assert_non_null(p7);
	for (t = 0; t < N_TYPES; t++) {
		const size_t k = block_of(mm_types[t]) == 1 ? 301 : 2 * 256;
		const size_t ldx = k + ldx_pad, ldy = n + ldy_pad;
		float *x = random_floats(m * ldx, 2.0f);
		float *y = malloc(m * ldy * sizeof(float)), *y1 = malloc(n * sizeof(float));
		float *ys = malloc(m * ldy * sizeof(float));
		uint64_t bytes;
		uint8_t *w = random_weights(mm_types[t], n, k, &bytes);
		size_t i, j;

		memset(y, 0xa5, m * ldy * sizeof(float));
		memset(ys, 0xa5, m * ldy * sizeof(float));
		run_mm(kern, p7, mm_types[t], w, n, k, x, ldx, y, ldy, m);
		run_mm(kern, NULL, mm_types[t], w, n, k, x, ldx, ys, ldy, m);
		if (memcmp(y, ys, m * ldy * sizeof(float)))
			fail_msg("%s %s: 7 threads and 1 thread differ (seed %llu)", kern->name,
				 type_name(mm_types[t]), seed);
		for (i = 0; i < m; i++) {
			run_mm(kern, NULL, mm_types[t], w, n, k, x + i * ldx, ldx, y1, n, 1);
			if (memcmp(y + i * ldy, y1, n * sizeof(float)))
				fail_msg("%s %s: row %zu of 17 differs from that row alone "
					 "(seed %llu)", kern->name, type_name(mm_types[t]), i, seed);
			for (j = n; j < ldy; j++) {
				uint32_t bits;

				memcpy(&bits, &y[i * ldy + j], 4);
				assert_int_equal(bits, 0xa5a5a5a5);
			}
		}
		free(x);
		free(y);
		free(y1);
		free(ys);
		free(w);
	}
	threadpool_destroy(p7);
}

/*
 * The packed kernels (PACK_MIN_M rows of x or more, see matmul_tmpl.h) at
 * their edges: more rows than one chunk of accumulators (64) with a few
 * over, K across several K blocks (768) with a tail of less than a vector,
 * N across panels (12) with a partial micro-tile left. Every row equals that
 * row computed alone (the in-register kernels) bit for bit, and every dtype
 * equals F32 on its dequantised weights bit for bit.
 */
static void test_matmul_packed_edges(void **state)
{
	const int pth = *(const int *)*state;
	const struct matmul_kernels *kern = path_or_skip(pth);
	const size_t m = 70, n = 29, ldy = n + 2;
	unsigned int t;

	reseed(kern->name);
	for (t = 0; t < N_TYPES; t++) {
		const size_t blk = block_of(mm_types[t]);
		const size_t k = blk == 1 ? 2 * 768 + 7 : blk == 32 ? 50 * 32 : 4 * 256;
		const size_t ldx = k + 3;
		float *x = random_floats(m * ldx, 2.0f), *wf = malloc(n * k * sizeof(float));
		float *y = malloc(m * ldy * sizeof(float)), *yf = malloc(m * ldy * sizeof(float));
		float *y1 = malloc(n * sizeof(float));
		uint64_t bytes;
		uint8_t *w = random_weights(mm_types[t], n, k, &bytes);
		size_t i;

		assert_int_equal(dequantize(mm_types[t], w, wf, n * k), 0);
		run_mm(kern, pool, mm_types[t], w, n, k, x, ldx, y, ldy, m);
		run_mm(kern, pool, GGML_TYPE_F32, wf, n, k, x, ldx, yf, ldy, m);
		for (i = 0; i < m; i++) {
			run_mm(kern, NULL, mm_types[t], w, n, k, x + i * ldx, ldx, y1, n, 1);
			if (memcmp(y + i * ldy, y1, n * sizeof(float)))
				fail_msg("%s %s: row %zu of %zu differs from that row alone "
					 "(seed %llu)", kern->name, type_name(mm_types[t]), i, m,
					 seed);
			if (memcmp(y + i * ldy, yf + i * ldy, n * sizeof(float)))
				fail_msg("%s %s: row %zu differs from F32 on its dequantised "
					 "weights (seed %llu)", kern->name, type_name(mm_types[t]),
					 i, seed);
		}
		free(x);
		free(wf);
		free(y);
		free(yf);
		free(y1);
		free(w);
	}
}

/* Each SIMD path against the portable one, within twice the float64 bound. */
static void test_matmul_paths_agree(void **state)
{
	const int pth = *(const int *)*state;
	const struct matmul_kernels *kern = path_or_skip(pth);
	const struct matmul_kernels *port = matmul_kernels(CPU_ISA_PORTABLE);
	const size_t m = 3, n = 50;
	unsigned int t;

	reseed(kern->name);
	for (t = 0; t < N_TYPES; t++) {
		const size_t k = block_of(mm_types[t]) == 1 ? 771 : 3 * 256;
		float *x = random_floats(m * k, 1.0f), *wf = malloc(n * k * sizeof(float));
		float *y = malloc(m * n * sizeof(float)), *yp = malloc(m * n * sizeof(float));
		uint64_t bytes;
		uint8_t *w = random_weights(mm_types[t], n, k, &bytes);
		size_t i, j, l;

		dequantize(mm_types[t], w, wf, n * k);
		run_mm(kern, pool, mm_types[t], w, n, k, x, k, y, n, m);
		run_mm(port, pool, mm_types[t], w, n, k, x, k, yp, n, m);
		for (i = 0; i < m; i++) {
			for (j = 0; j < n; j++) {
				double abs = 0, bound;

				for (l = 0; l < k; l++)
					abs += fabs((double)x[i * k + l] * wf[j * k + l]);
				bound = mm_bound(k, kern->lanes, abs) + mm_bound(k, port->lanes, abs);
				if (!(fabs((double)y[i * n + j] - yp[i * n + j]) <= bound))
					fail_msg("%s %s y[%zu][%zu] = %.9g, portable %.9g (seed %llu)",
						 kern->name, type_name(mm_types[t]), i, j,
						 y[i * n + j], yp[i * n + j], seed);
			}
		}
		free(x);
		free(wf);
		free(y);
		free(yp);
		free(w);
	}
}

static void test_matmul_errors(void **state)
{
	float x[64] = { 0 }, y[4] = { 1, 2, 3, 4 };
	uint8_t w[4 * 34] = { 0 };
	struct cpu_matmul mm = {
		.type = GGML_TYPE_Q8_0, .w = w, .n = 2, .k = 32,
		.x = x, .ldx = 32, .y = y, .ldy = 2, .m = 2,
	};
	struct cpu_matmul bad;

	(void)state;
	assert_int_equal(cpu_matmul(pool, &mm), 0);
	assert_true(y[0] == 0 && y[3] == 0);
	bad = mm;
	bad.type = GGML_TYPE_Q2_K;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad.type = 99;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.k = 48;		/* not whole blocks */
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.ldx = 31;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.ldy = 1;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.n = 0;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.x = NULL;
	assert_int_equal(cpu_matmul(pool, &bad), -EINVAL);
	bad = mm;
	bad.n = SIZE_MAX / 8;
	assert_int_equal(cpu_matmul(pool, &bad), -EOVERFLOW);
	bad = mm;
	bad.m = 0;
	bad.y = NULL;		/* nothing to compute, nothing written */
	assert_int_equal(cpu_matmul(pool, &bad), 0);
	if (!cpu_isa_supported(CPU_ISA_AVX512))
		assert_int_equal(cpu_matmul_isa(pool, CPU_ISA_AVX512, &mm), -EOPNOTSUPP);
	assert_int_equal(cpu_matmul_isa(pool, CPU_ISA_PORTABLE, &mm), 0);
}

/*
 * cpu_matmul_many(): products of different types and shapes in one pool run
 * give what each gives alone, bit for bit, on 1, 2 and 7 threads; a bad
 * product anywhere in the list, or too many, runs none of them.
 */
static void test_matmul_many(void **state)
{
	static const uint32_t types[3] = { GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_F32 };
	static const size_t ns[3] = { 300, 100, 29 };
	const size_t k = 256, m = 9;
	struct threadpool *pools[3] = { NULL, pool, threadpool_create(7) };
	struct cpu_matmul mm[CPU_MATMUL_MANY + 1];
	float *x, *y[3], *ref[3];
	uint8_t *w[3];
	unsigned int i, p;
	uint64_t bytes;
	size_t j;

	(void)state;
	reseed("many");
	x = random_floats(m * k, 2.0f);
	assert_non_null(pools[2]);
	for (i = 0; i < 3; i++) {
		w[i] = random_weights(types[i], ns[i], k, &bytes);
		y[i] = malloc(m * ns[i] * sizeof(float));
		ref[i] = malloc(m * ns[i] * sizeof(float));
		mm[i] = (struct cpu_matmul){
			.type = types[i], .w = w[i], .n = ns[i], .k = k,
			.x = x, .ldx = k, .y = ref[i], .ldy = ns[i], .m = m,
		};
		assert_int_equal(cpu_matmul(NULL, &mm[i]), 0);
		mm[i].y = y[i];
	}
	for (p = 0; p < 3; p++) {
		for (i = 0; i < 3; i++)
			memset(y[i], 0xa5, m * ns[i] * sizeof(float));
		assert_int_equal(cpu_matmul_many(pools[p], mm, 3), 0);
		for (i = 0; i < 3; i++)
			if (memcmp(y[i], ref[i], m * ns[i] * sizeof(float)))
				fail_msg("product %u (%s) of 3 in one run differs from it alone, "
					 "pool %u (seed %llu)", i, type_name(types[i]), p, seed);
	}

	/* nothing runs when any product is bad, or when there are too many */
	for (i = 0; i < 3; i++)
		memset(y[i], 0xa5, m * ns[i] * sizeof(float));
	mm[3] = mm[0];
	mm[3].k = 48;
	assert_int_equal(cpu_matmul_many(pool, mm, 4), -EINVAL);
	for (i = 0; i < CPU_MATMUL_MANY + 1; i++)
		mm[i] = mm[i % 3];
	assert_int_equal(cpu_matmul_many(pool, mm, CPU_MATMUL_MANY + 1), -EINVAL);
	for (i = 0; i < 3; i++)
		for (j = 0; j < m * ns[i]; j++)
			if (((uint32_t *)y[i])[j] != 0xa5a5a5a5u)
				fail_msg("a refused list wrote product %u's y[%zu]", i, j);
	assert_int_equal(cpu_matmul_many(pool, mm, 0), 0);

	threadpool_destroy(pools[2]);
	for (i = 0; i < 3; i++) {
		free(w[i]);
		free(y[i]);
		free(ref[i]);
	}
	free(x);
}

/* ---- row kernels against numpy ----------------------------------------------- */

static void check_close(const char *what, size_t i, double got, double ref, double bound)
{
	if (!(fabs(got - ref) <= bound))
		fail_msg("%s [%zu]: %.9g, float64 %.17g, error %.3g > %.3g (seed %llu)", what, i,
			 got, ref, fabs(got - ref), bound, seed);
}

static void test_rmsnorm(void **state)
{
	static const size_t ns[] = { 1, 7, 4096 };
	static const float eps[] = { 1e-5f, 1e-6f, 1e-5f };
	float *x[3], *g[3], *y[3];
	char dir[1100], name[16];
	size_t c, i;
	FILE *f;

	(void)state;
	if (!have_numpy())
		skip();
	reseed("rmsnorm");
	f = cases_open(dir, sizeof(dir));
	for (c = 0; c < 3; c++) {
		x[c] = random_floats(ns[c], c == 2 ? 30.0f : 1.0f);
		g[c] = random_floats(ns[c], 2.0f);
		y[c] = malloc(ns[c] * sizeof(float));
		snprintf(name, sizeof(name), "rn%zu", c);
		put(dir, name, "x", x[c], ns[c] * 4);
		put(dir, name, "g", g[c], ns[c] * 4);
		fprintf(f, "rmsnorm %s %zu %a\n", name, ns[c], (double)eps[c]);
		cpu_rmsnorm(y[c], x[c], g[c], ns[c], eps[c]);
	}
	fclose(f);
	run_reference(dir);
	for (c = 0; c < 3; c++) {
		double *ref;

		snprintf(name, sizeof(name), "rn%zu", c);
		ref = get(dir, name, "ref", ns[c]);
		for (i = 0; i < ns[c]; i++)
			check_close("rmsnorm", i, y[c][i], ref[i], 4 * U * fabs(ref[i]));
		/* in place, and without weights */
		cpu_rmsnorm(x[c], x[c], g[c], ns[c], eps[c]);
		assert_memory_equal(x[c], y[c], ns[c] * 4);
		free(ref);
		free(x[c]);
		free(g[c]);
		free(y[c]);
	}
	{
		float a[3] = { 3, 4, 0 }, b[3];

		cpu_rmsnorm(b, a, NULL, 3, 0);
		check_close("rmsnorm no weight", 0, b[0], 3 / sqrt(25.0 / 3), 4 * U * 2);
	}
}

static void test_rope(void **state)
{
	static const struct {
		size_t rows, heads, hd, n_rot;
		float base, scale;
		enum rope_type mode;
	} cs[] = {
		{ 5, 4, 64, 64, 10000.0f, 1.0f, ROPE_NORMAL },
		{ 5, 4, 64, 64, 1000000.0f, 1.0f, ROPE_NEOX },
		{ 3, 2, 80, 32, 10000.0f, 1.0f, ROPE_NORMAL },	/* partial rotation */
		{ 3, 2, 80, 32, 500000.0f, 0.25f, ROPE_NEOX },
		{ 1, 1, 2, 2, 10000.0f, 1.0f, ROPE_NEOX },
	};
	const size_t nc = sizeof(cs) / sizeof(cs[0]);
	float *x[5], *y[5];
	int32_t *pos[5];
	char dir[1100], name[16];
	size_t c, i, r;
	FILE *f;

	(void)state;
	if (!have_numpy())
		skip();
	reseed("rope");
	f = cases_open(dir, sizeof(dir));
	for (c = 0; c < nc; c++) {
		size_t row = cs[c].heads * cs[c].hd;
		struct cpu_rope rope;

		x[c] = random_floats(cs[c].rows * row, 2.0f);
		y[c] = malloc(cs[c].rows * row * sizeof(float));
		memcpy(y[c], x[c], cs[c].rows * row * sizeof(float));
		pos[c] = malloc(cs[c].rows * sizeof(int32_t));
		for (r = 0; r < cs[c].rows; r++)
			pos[c][r] = r == 0 ? 0 : r == 1 ? 1 : (int32_t)(xr() % 100000);
		snprintf(name, sizeof(name), "rope%zu", c);
		put(dir, name, "x", x[c], cs[c].rows * row * 4);
		put(dir, name, "pos", pos[c], cs[c].rows * 4);
		fprintf(f, "rope %s %zu %zu %zu %zu %a %a %d\n", name, cs[c].rows, cs[c].heads,
			cs[c].hd, cs[c].n_rot, (double)cs[c].base, (double)cs[c].scale,
			cs[c].mode == ROPE_NEOX ? 2 : 0);
		assert_int_equal(cpu_rope_init(&rope, cs[c].mode, cs[c].hd, cs[c].n_rot,
					       cs[c].base, cs[c].scale), 0);
		for (r = 0; r < cs[c].rows; r++)
			cpu_rope(&rope, y[c] + r * row, cs[c].heads, pos[c][r]);
	}
	fclose(f);
	run_reference(dir);
	for (c = 0; c < nc; c++) {
		size_t row = cs[c].heads * cs[c].hd, n = cs[c].rows * row, half = cs[c].n_rot / 2;
		double *ref;

		snprintf(name, sizeof(name), "rope%zu", c);
		ref = get(dir, name, "ref", n);
		for (i = 0; i < n; i++) {
			size_t d = i % cs[c].hd, mate;

			if (d >= cs[c].n_rot) {		/* not rotated: untouched */
				assert_memory_equal(&y[c][i], &x[c][i], 4);
				continue;
			}
			if (cs[c].mode == ROPE_NEOX)
				mate = d < half ? i + half : i - half;
			else
				mate = d % 2 ? i - 1 : i + 1;
			check_close("rope", i, y[c][i], ref[i],
				    2 * U * (fabs(x[c][i]) + fabs(x[c][mate])));
		}
		/* position 0 is the identity */
		assert_memory_equal(y[c], x[c], row * 4);
		free(ref);
		free(x[c]);
		free(y[c]);
		free(pos[c]);
	}
	{
		struct cpu_rope rope;

		assert_int_equal(cpu_rope_init(&rope, ROPE_NORMAL, 64, 65, 1e4f, 1), -EINVAL);
		assert_int_equal(cpu_rope_init(&rope, ROPE_NORMAL, 64, 66, 1e4f, 1), -EINVAL);
		assert_int_equal(cpu_rope_init(&rope, ROPE_NORMAL, 64, 0, 1e4f, 1), -EINVAL);
		assert_int_equal(cpu_rope_init(&rope, ROPE_NEOX, 64, 64, 0, 1), -EINVAL);
		assert_int_equal(cpu_rope_init(&rope, ROPE_NEOX, 4096, 2048, 1e4f, 1), -EINVAL);
	}
}

static void test_swiglu_add(void **state)
{
	const size_t n = 1000;
	float *g, *u, *a, *b, *y, *z;
	char dir[1100];
	double *ref;
	size_t i;
	FILE *f;

	(void)state;
	if (!have_numpy())
		skip();
	reseed("swiglu");
	f = cases_open(dir, sizeof(dir));
	g = random_floats(n, 20.0f);
	g[0] = -100.0f;		/* exp(100) overflows float: silu is -0 */
	g[1] = 100.0f;
	u = random_floats(n, 3.0f);
	a = random_floats(n, 1e3f);
	b = random_floats(n, 1.0f);
	y = malloc(n * sizeof(float));
	z = malloc(n * sizeof(float));
	put(dir, "sw", "g", g, n * 4);
	put(dir, "sw", "u", u, n * 4);
	put(dir, "ad", "a", a, n * 4);
	put(dir, "ad", "b", b, n * 4);
	fprintf(f, "swiglu sw %zu\nadd ad %zu\n", n, n);
	fclose(f);
	cpu_swiglu(y, g, u, n);
	cpu_add(z, a, b, n);
	run_reference(dir);
	ref = get(dir, "sw", "ref", n);
	for (i = 0; i < n; i++)
		check_close("swiglu", i, y[i], ref[i], 8 * U * fabs(ref[i]) + FLT_MIN);
	free(ref);
	ref = get(dir, "ad", "ref", n);
	for (i = 0; i < n; i++)
		check_close("add", i, z[i], ref[i], U * fabs(ref[i]));
	free(ref);
	/* in place */
	cpu_swiglu(g, g, u, n);
	assert_memory_equal(g, y, n * 4);
	cpu_add(a, a, b, n);
	assert_memory_equal(a, z, n * 4);
	free(g);
	free(u);
	free(a);
	free(b);
	free(y);
	free(z);
}

static void test_get_rows(void **state)
{
	const size_t rows = 50, nids = 7;
	char dir[1100], name[16];
	float *out[N_TYPES];
	int32_t ids[7];
	size_t dims[N_TYPES];
	unsigned int t;
	size_t i, j;
	FILE *f;

	(void)state;
	if (!have_numpy())
		skip();
	reseed("get_rows");
	f = cases_open(dir, sizeof(dir));
	for (i = 0; i < nids; i++)
		ids[i] = (int32_t)(xr() % rows);
	ids[0] = 0;
	ids[1] = (int32_t)rows - 1;
	for (t = 0; t < N_TYPES; t++) {
		uint64_t bytes;
		uint8_t *w;
		float *row;

		dims[t] = block_of(mm_types[t]) == 1 ? 77 : 512;
		w = random_weights(mm_types[t], rows, dims[t], &bytes);
		out[t] = malloc(nids * (dims[t] + 2) * sizeof(float));
		row = malloc(dims[t] * sizeof(float));
		snprintf(name, sizeof(name), "gr%u", t);
		put(dir, name, "w", w, bytes);
		put(dir, name, "ids", ids, sizeof(ids));
		fprintf(f, "getrows %s %s %zu %zu %zu\n", name, type_name(mm_types[t]), rows,
			dims[t], nids);
		assert_int_equal(cpu_get_rows(mm_types[t], w, rows, dims[t], ids, nids, out[t],
					      dims[t] + 2), 0);
		for (i = 0; i < nids; i++) {
			dequantize(mm_types[t], w + (size_t)ids[i] * (bytes / rows), row, dims[t]);
			assert_memory_equal(row, out[t] + i * (dims[t] + 2), dims[t] * 4);
		}
		{
			int32_t bad[2] = { 3, (int32_t)rows };
			float *scratch = malloc(2 * dims[t] * sizeof(float));

			assert_int_equal(cpu_get_rows(mm_types[t], w, rows, dims[t], bad, 2,
						      scratch, dims[t]), -ERANGE);
			bad[1] = -1;
			assert_int_equal(cpu_get_rows(mm_types[t], w, rows, dims[t], bad, 2,
						      scratch, dims[t]), -ERANGE);
			assert_int_equal(cpu_get_rows(mm_types[t], w, rows, dims[t], ids, 1,
						      scratch, dims[t] - 1), -EINVAL);
			free(scratch);
		}
		free(w);
		free(row);
	}
	fclose(f);
	run_reference(dir);
	for (t = 0; t < N_TYPES; t++) {
		double *ref;

		snprintf(name, sizeof(name), "gr%u", t);
		ref = get(dir, name, "ref", nids * dims[t]);
		for (i = 0; i < nids; i++)
			for (j = 0; j < dims[t]; j++)
				if ((float)ref[i * dims[t] + j] != out[t][i * (dims[t] + 2) + j])
					fail_msg("get_rows %s row %zu [%zu]: %a, numpy %a",
						 type_name(mm_types[t]), i, j,
						 out[t][i * (dims[t] + 2) + j], ref[i * dims[t] + j]);
		free(ref);
		free(out[t]);
	}
	assert_int_equal(cpu_get_rows(GGML_TYPE_Q2_K, out, 1, 32, ids, 0, NULL, 32), -EINVAL);
	assert_int_equal(cpu_get_rows(GGML_TYPE_Q8_0, out, 1, 33, ids, 0, NULL, 33), -EINVAL);
}

/* ---- main --------------------------------------------------------------------- */

/* ---- attention ------------------------------------------------------------- */

struct attn_path {
	const char			*name;
	const struct attn_kernels	*kern;
	const char			*why;
};

static struct attn_path attn_paths[4];

static void attn_paths_init(void)
{
	int p;

	for (p = 0; p < 3; p++)
		attn_paths[p] = (struct attn_path){ paths[p].name, attn_kernels(p), paths[p].why };
	attn_paths[3] = (struct attn_path){ "avx512-emu", NULL, NULL };
	if (!&attn_avx512_emu)
		attn_paths[3].why = "not linked (attn_avx512_emu.o)";
	else if (!cpu_isa_supported(CPU_ISA_AVX2))
		attn_paths[3].why = "its build needs AVX2/FMA";
	else
		attn_paths[3].kern = &attn_avx512_emu;
}

static const struct attn_kernels *attn_or_skip(int p)
{
	if (!attn_paths[p].kern) {
		print_message("[  SKIP    ] path %s: %s\n", attn_paths[p].name, attn_paths[p].why);
		skip();
	}
	return attn_paths[p].kern;
}

/*
 * One attention case: rows of a sequence from position pos, heads query
 * heads over one KV head of dimension d; K and V rows (floats, or halves for
 * an F16 cache) scattered in a pool in a random order, as a paged cache's
 * blocks are. kval, vval: the rows' values as floats, in position order.
 */
struct attn_case {
	uint32_t	rows, heads, d, pos;
	bool		f16;
	float		*q, *kval, *vval, *out;
	void		*kpool, *vpool;
	const void	**k, **v;
};

/* n * d random values into a pool of floats or halves, and their values. */
static void *kv_pool(size_t n, bool f16, float **val)
{
	float *f = random_floats(n, 1.0f);
	uint16_t *h;
	size_t i;

	*val = f;
	if (!f16) {
		float *copy = malloc(n * sizeof(float));

		memcpy(copy, f, n * sizeof(float));
		return copy;
	}
	h = malloc(n * sizeof(*h));
	for (i = 0; i < n; i++) {
		h[i] = fp32_to_fp16(f[i]);
		f[i] = fp16_to_fp32(h[i]);
	}
	return h;
}

static void attn_case_make(struct attn_case *c, uint32_t rows, uint32_t heads, uint32_t d,
			   uint32_t pos, bool f16)
{
	uint32_t n = pos + rows, *perm = malloc(n * sizeof(*perm)), i;
	size_t esz = f16 ? 2 : 4;
	float *kv, *vv;

	*c = (struct attn_case){ .rows = rows, .heads = heads, .d = d, .pos = pos, .f16 = f16 };
	c->q = random_floats((size_t)rows * heads * d, 2.0f);
	c->kpool = kv_pool((size_t)n * d, f16, &kv);
	c->vpool = kv_pool((size_t)n * d, f16, &vv);
	c->kval = malloc((size_t)n * d * sizeof(float));
	c->vval = malloc((size_t)n * d * sizeof(float));
	c->out = malloc((size_t)rows * heads * d * sizeof(float));
	c->k = malloc(n * sizeof(*c->k));
	c->v = malloc(n * sizeof(*c->v));
	for (i = 0; i < n; i++)
		perm[i] = i;
	for (i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(xr() % (i + 1)), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < n; i++) {
		c->k[i] = (const uint8_t *)c->kpool + (size_t)perm[i] * d * esz;
		c->v[i] = (const uint8_t *)c->vpool + (size_t)perm[i] * d * esz;
		memcpy(c->kval + (size_t)i * d, kv + (size_t)perm[i] * d, d * sizeof(float));
		memcpy(c->vval + (size_t)i * d, vv + (size_t)perm[i] * d, d * sizeof(float));
	}
	free(kv);
	free(vv);
	free(perm);
}

static void attn_case_free(struct attn_case *c)
{
	free(c->q);
	free(c->kpool);
	free(c->vpool);
	free(c->kval);
	free(c->vval);
	free(c->out);
	free(c->k);
	free(c->v);
}

/* Rows [r0, r0 + rows) and heads [h0, h0 + heads) of case c into out (c's layout). */
static void attn_call(const struct attn_kernels *kern, const struct attn_case *c, uint32_t r0,
		      uint32_t rows, uint32_t h0, uint32_t heads, float *out)
{
	size_t ld = (size_t)c->heads * c->d;
	float *work = aligned_alloc(64, (cpu_attn_work_floats(rows * heads, c->d) * sizeof(float) +
					 63) & ~(size_t)63);
	struct cpu_attn a = {
		.q = c->q + r0 * ld + (size_t)h0 * c->d, .ldq = ld,
		.out = out + r0 * ld + (size_t)h0 * c->d, .ldo = ld,
		.k = c->k, .v = c->v, .pos = c->pos + r0, .rows = rows, .heads = heads,
		.d = c->d, .scale = (float)(1.0 / sqrt((double)c->d)), .f16 = c->f16,
		.work = work,
	};

	assert_non_null(work);
	kern->run(&a);
	free(work);
}

static void test_attention_vs_numpy(void **state)
{
	const int pth = *(const int *)*state;
	const struct attn_kernels *kern = attn_or_skip(pth);
	/* rows, heads, d, pos, f16: decode, GQA groups, prefill from 0 and
	 * later, d with tails past every lane count, contexts of many chunks,
	 * float and half caches */
	static const uint32_t cs[][5] = {
		{ 1, 1, 64, 0, 0 }, { 1, 3, 64, 1000, 1 }, { 7, 4, 128, 37, 0 },
		{ 17, 2, 18, 100, 1 }, { 5, 1, 2, 20, 0 }, { 33, 3, 64, 0, 1 },
		{ 1, 8, 130, 300, 1 }, { 40, 1, 256, 15, 0 }, { 3, 2, 128, 600, 1 },
		{ 2, 1, 6, 40, 1 }, { 20, 2, 64, 245, 0 }, { 30, 3, 40, 500, 1 },
	};
	struct attn_case c[12];
	char dir[1100], name[16];
	double num = 0, den = 0;
	size_t i, e;
	FILE *f;

	if (!have_numpy())
		skip();
	reseed(kern->name);
	f = cases_open(dir, sizeof(dir));
	for (i = 0; i < 12; i++) {
		uint32_t n = cs[i][3] + cs[i][0];
		size_t cnt;

		attn_case_make(&c[i], cs[i][0], cs[i][1], cs[i][2], cs[i][3], cs[i][4]);
		cnt = (size_t)c[i].rows * c[i].heads * c[i].d;
		snprintf(name, sizeof(name), "at%zu", i);
		put(dir, name, "q", c[i].q, cnt * sizeof(float));
		put(dir, name, "k", c[i].kval, (size_t)n * c[i].d * sizeof(float));
		put(dir, name, "v", c[i].vval, (size_t)n * c[i].d * sizeof(float));
		fprintf(f, "attention %s %u %u %u %u\n", name, c[i].rows, c[i].heads, c[i].d,
			c[i].pos);
		for (e = 0; e < cnt; e++)		/* every output must be written */
			c[i].out[e] = NAN;
		attn_call(kern, &c[i], 0, c[i].rows, 0, c[i].heads, c[i].out);
	}
	fclose(f);
	run_reference(dir);
	for (i = 0; i < 12; i++) {
		const struct attn_case *a = &c[i];
		size_t cnt = (size_t)a->rows * a->heads * a->d, ld = (size_t)a->heads * a->d;
		double *ref, *abs, s = 1.0 / sqrt((double)a->d);

		snprintf(name, sizeof(name), "at%zu", i);
		ref = get(dir, name, "ref", cnt);
		abs = get(dir, name, "abs", cnt);
		for (e = 0; e < cnt; e++) {
			uint32_t r = (uint32_t)(e / ld), n = a->pos + r + 1, p, j;
			const float *q = a->q + e / a->d * a->d;
			double big = 0, err = fabs((double)a->out[e] - ref[e]), bound;

			for (p = 0; p < n; p++) {
				double t = 0;

				for (j = 0; j < a->d; j++)
					t += fabs((double)q[j] * a->kval[(size_t)p * a->d + j]);
				big = t * s > big ? t * s : big;
			}
			bound = ((2.0 * a->d + 16) * big + n + 32) * U * abs[e];
			if (!(err <= bound))
				fail_msg("%s attention rows %u heads %u d %u pos %u%s: out[%zu] = "
					 "%.9g, float64 %.17g, error %.3g > bound %.3g (seed %llu)",
					 kern->name, a->rows, a->heads, a->d, a->pos,
					 a->f16 ? " f16" : "", e, a->out[e], ref[e], err, bound,
					 seed);
			num += err * err;
			den += ref[e] * ref[e];
		}
		free(ref);
		free(abs);
		attn_case_free(&c[i]);
	}
	if (!(sqrt(num / den) < 1e-6))
		fail_msg("%s attention: relative error %.3g >= 1e-6 (seed %llu)", kern->name,
			 sqrt(num / den), seed);
	print_message("%s attention: 12 shapes, relative error %.2g\n", kern->name,
		      sqrt(num / den));
}

/* A row's heads give the same bits whatever else shares the call. */
static void test_attention_invariance(void **state)
{
	const int pth = *(const int *)*state;
	const struct attn_kernels *kern = attn_or_skip(pth);
	static const uint32_t cs[][5] = {
		{ 23, 3, 64, 0, 0 }, { 9, 4, 40, 70, 1 }, { 12, 2, 130, 5, 0 }, { 20, 3, 64, 9, 1 },
		/* rows ending in different spans */
		{ 20, 2, 64, 245, 0 }, { 30, 3, 40, 500, 1 },
		/* heads in a group of ATTN_GROUP and a smaller one */
		{ 6, 5, 24, 30, 1 }, { 4, 7, 72, 17, 0 },
	};
	size_t i;

	reseed(kern->name);
	for (i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		struct attn_case c;
		size_t cnt;
		float *one, *tiles;
		uint32_t r, h;

		attn_case_make(&c, cs[i][0], cs[i][1], cs[i][2], cs[i][3], cs[i][4]);
		cnt = (size_t)c.rows * c.heads * c.d;
		one = malloc(cnt * sizeof(float));
		tiles = malloc(cnt * sizeof(float));
		attn_call(kern, &c, 0, c.rows, 0, c.heads, c.out);
		for (r = 0; r < c.rows; r++)		/* each row and head alone */
			for (h = 0; h < c.heads; h++)
				attn_call(kern, &c, r, 1, h, 1, one);
		for (r = 0; r < c.rows; r += 5)		/* tiles of 5 rows */
			attn_call(kern, &c, r, c.rows - r < 5 ? c.rows - r : 5, 0, c.heads, tiles);
		if (memcmp(c.out, one, cnt * sizeof(float)) ||
		    memcmp(c.out, tiles, cnt * sizeof(float)))
			fail_msg("%s attention rows %u heads %u d %u pos %u: results depend on the "
				 "call's other rows or heads (seed %llu)", kern->name, c.rows,
				 c.heads, c.d, c.pos, seed);
		free(one);
		free(tiles);
		attn_case_free(&c);
	}
	/* No score is a number (NaN queries): zeros, never what out held before. */
	{
		struct attn_case c;
		size_t e, cnt;

		attn_case_make(&c, 2, 3, 64, 300, 1);
		cnt = (size_t)c.rows * c.heads * c.d;
		for (e = 0; e < cnt; e++) {
			c.q[e] = NAN;
			c.out[e] = 12345.0f;
		}
		attn_call(kern, &c, 0, c.rows, 0, c.heads, c.out);
		for (e = 0; e < cnt; e++)
			if (c.out[e] != 0.0f)
				fail_msg("%s attention of NaN queries: out[%zu] = %g, not 0",
					 kern->name, e, c.out[e]);
		attn_case_free(&c);
	}
}

/*
 * A call's spans kept apart (cpu_attn.part) by several calls over different
 * span ranges, then merged, give the bits of one call over everything.
 */
static void test_attention_split(void **state)
{
	const int pth = *(const int *)*state;
	const struct attn_kernels *kern = attn_or_skip(pth);
	/* rows, heads, d, pos, f16; and where the calls' span ranges end */
	static const uint32_t cs[][5] = {
		{ 1, 4, 64, 1000, 1 }, { 3, 3, 40, 700, 0 }, { 1, 1, 130, 256, 0 },
		{ 2, 2, 64, 2500, 1 },
	};
	size_t i;

	reseed(kern->name);
	for (i = 0; i < 4; i++) {
		struct attn_case c;
		uint32_t end, spans, lo, hi;
		size_t cnt, ld, pf;
		float *split, *part, *work;

		attn_case_make(&c, cs[i][0], cs[i][1], cs[i][2], cs[i][3], cs[i][4]);
		end = c.pos + c.rows;
		spans = (end + ATTN_SPAN - 1) / ATTN_SPAN;
		cnt = (size_t)c.rows * c.heads * c.d;
		ld = (size_t)c.heads * c.d;
		pf = cpu_attn_part_floats(c.d);
		split = malloc(cnt * sizeof(float));
		part = malloc((size_t)c.rows * c.heads * spans * pf * sizeof(float));
		work = aligned_alloc(64, (cpu_attn_work_floats(c.rows * c.heads, c.d) *
					  sizeof(float) + 63) & ~(size_t)63);
		attn_call(kern, &c, 0, c.rows, 0, c.heads, c.out);
		for (lo = 0; lo < spans; lo = hi) {	/* ranges of 1 span, then 2s */
			struct cpu_attn a = {
				.q = c.q, .ldq = ld, .out = NULL, .ldo = ld, .k = c.k, .v = c.v,
				.pos = c.pos, .rows = c.rows, .heads = c.heads, .d = c.d,
				.scale = (float)(1.0 / sqrt((double)c.d)), .f16 = c.f16,
				.part = part, .part_spans = spans, .work = work,
			};

			hi = lo + 1 + lo % 2;
			a.span_lo = lo;
			a.span_hi = hi < spans ? hi : 0;
			kern->run(&a);
		}
		for (lo = 0; lo < cnt; lo++)
			split[lo] = NAN;
		{
			struct cpu_attn a = {
				.out = split, .ldo = ld, .rows = c.rows, .heads = c.heads, .d = c.d,
				.part = part, .part_spans = spans,
			};

			kern->merge(&a);
		}
		if (memcmp(c.out, split, cnt * sizeof(float)))
			fail_msg("%s attention rows %u heads %u d %u pos %u: %u spans split over "
				 "calls and merged differ from one call (seed %llu)", kern->name,
				 c.rows, c.heads, c.d, c.pos, spans, seed);
		free(split);
		free(part);
		free(work);
		attn_case_free(&c);
	}
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	pool = threadpool_create(3);	/* more threads than CI's two cores */
	return pool ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[1200];

	(void)state;
	threadpool_destroy(pool);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(void)
{
	struct CMUnitTest tests[N_TYPES * 4 + 48];
	const char *env = getenv("LLMQ_TEST_SEED");
	static char names[N_TYPES * 4 + 32][64];
	size_t nt = 0, t, p, nn = 0;

	seed = env ? strtoull(env, NULL, 0) : ((unsigned long long)time(NULL) << 20) ^
					       (unsigned long long)getpid();
	printf("test_kernels: seed %llu (LLMQ_TEST_SEED=%llu repeats this run)\n", seed, seed);
	fflush(stdout);
	if (!getcwd(srcdir, sizeof(srcdir)))
		return 1;
	paths_init();
	attn_paths_init();
	for (p = 0; p < 4; p++)
		path_params[p] = (int)p;

#define ADD(fn, nm, st)	do {						\
		tests[nt] = (struct CMUnitTest)cmocka_unit_test_prestate(fn, st); \
		tests[nt++].name = nm;					\
	} while (0)
	ADD(test_pool_every_task_once, "pool_every_task_once", NULL);
	ADD(test_pool_sizes, "pool_sizes", NULL);
	ADD(test_pool_create_destroy, "pool_create_destroy", NULL);
	ADD(test_isa_choice, "isa_choice", NULL);
	for (p = 0; p < 4; p++) {
		for (t = 0; t < N_TYPES; t++) {
			struct mm_param *prm = &mm_params[p * N_TYPES + t];

			prm->type = mm_types[t];
			prm->path = (int)p;
			snprintf(names[nn], sizeof(names[nn]), "matmul_vs_numpy/%s/%s",
				 paths[p].name, type_name(mm_types[t]));
			ADD(test_matmul_vs_numpy, names[nn], prm);
			nn++;
		}
	}
	for (p = 0; p < 4; p++) {
		snprintf(names[nn], sizeof(names[nn]), "matmul_exact_dequant/%s", paths[p].name);
		ADD(test_matmul_exact_dequant, names[nn++], &path_params[p]);
		snprintf(names[nn], sizeof(names[nn]), "matmul_invariance/%s", paths[p].name);
		ADD(test_matmul_invariance, names[nn++], &path_params[p]);
		snprintf(names[nn], sizeof(names[nn]), "matmul_packed_edges/%s", paths[p].name);
		ADD(test_matmul_packed_edges, names[nn++], &path_params[p]);
		if (p) {
			snprintf(names[nn], sizeof(names[nn]), "matmul_agrees_with_portable/%s",
				 paths[p].name);
			ADD(test_matmul_paths_agree, names[nn++], &path_params[p]);
		}
	}
	for (p = 0; p < 4; p++) {
		snprintf(names[nn], sizeof(names[nn]), "attention_vs_numpy/%s", attn_paths[p].name);
		ADD(test_attention_vs_numpy, names[nn++], &path_params[p]);
		snprintf(names[nn], sizeof(names[nn]), "attention_invariance/%s",
			 attn_paths[p].name);
		ADD(test_attention_invariance, names[nn++], &path_params[p]);
		snprintf(names[nn], sizeof(names[nn]), "attention_split/%s", attn_paths[p].name);
		ADD(test_attention_split, names[nn++], &path_params[p]);
	}
	ADD(test_matmul_errors, "matmul_errors", NULL);
	ADD(test_matmul_many, "matmul_many", NULL);
	ADD(test_rmsnorm, "rmsnorm", NULL);
	ADD(test_rope, "rope", NULL);
	ADD(test_swiglu_add, "swiglu_add", NULL);
	ADD(test_get_rows, "get_rows", NULL);
	return _cmocka_run_group_tests("kernels", tests, nt, setup, teardown);
}
