// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the CUDA backend. On a GPU: each kernel of cuda/kernels/ against
 * the CPU backend's row kernels (runtime/cpu/ops.c) or a float64 reference
 * on random inputs, fresh each run (the seed is printed; LLMQ_TEST_SEED
 * repeats a run), outputs poisoned with NaN first; a full forward of tiny
 * llama and qwen2 models against the CPU backend; batched equals alone.
 * Everywhere: the binary carries sm_80 and sm_90 code and sm_90 PTX, and
 * --engine cuda without a GPU (or without CUDA in the build) fails with one
 * clear line.
 *
 * Without a GPU the GPU tests skip, each with a one-line reason. Built as
 * test_cuda_emu (LLMQ_CUDA_EMU), the same kernel and backend tests run on
 * the CPU: the kernels compiled as C++ over tests/cuda_emu/, cudart and
 * cuBLAS emulated; its CLI and fatbin tests are test_cuda's alone.
 *
 * Tolerances, per output dtype: BF16 outputs (norm, SwiGLU, attention) hold
 * 8 significant bits, so 2^-8 of the value per element (one rounding is
 * 2^-9); attention 1e-2 per head (norm-wise); FP32 outputs of the same
 * arithmetic as the CPU (embedding, bias, RoPE) exactly or to one float
 * rounding; whole-model logits 5e-2 norm-wise (BF16 weights and
 * activations against the CPU's FP32; see Documentation/admin-guide/cuda.rst).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "cpu/ops.h"
#include "dtype.h"
#include "model.h"
#include "rng.h"
#include "testenv.h"

#ifdef LLMQ_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "../../cuda/kernels.h"
#endif

static char tmpdir[] = "/tmp/llmq-cuda-XXXXXX";
static uint64_t rng[4];
static char gpu_why[256];

/* Is there a GPU to run on? If not, gpu_why says why, in one line. */
static bool gpu_ok(void)
{
#ifdef LLMQ_HAVE_CUDA
	static int ok = -1;
	cudaError_t e;
	int n = 0;

	if (ok < 0) {
		e = cudaGetDeviceCount(&n);
		if (e != cudaSuccess)
			snprintf(gpu_why, sizeof(gpu_why), "no CUDA device (cudaGetDeviceCount: %s)",
				 cudaGetErrorString(e));
		else if (!n)
			snprintf(gpu_why, sizeof(gpu_why), "no CUDA device");
		ok = e == cudaSuccess && n > 0;
	}
	return ok;
#else
	snprintf(gpu_why, sizeof(gpu_why), "built without CUDA (nvcc not found)");
	return false;
#endif
}

#define NEED_GPU()								\
	do {									\
		if (!gpu_ok()) {						\
			print_message("[  SKIP    ] %s\n", gpu_why);		\
			skip();							\
		}								\
	} while (0)

/* A tiny model of a preset and dtype, written once into tmpdir. */
static void model_path(const char *preset, const char *dtype, char *path, size_t len)
{
	char cmd[3000];

	snprintf(path, len, "%s/%s-%s.gguf", tmpdir, preset, dtype);
	if (access(path, R_OK)) {
		snprintf(cmd, sizeof(cmd),
			 "%s/llmq-mkmodel --preset %s --dtype %s -o %s >/dev/null 2>&1",
			 getenv("LLMQ_BIN_DIR"), preset, dtype, path);
		assert_int_equal(system(cmd), 0);
	}
}

/*
 * --engine cuda where it cannot run: one line saying why, status 1 (llmq
 * run) or not 0 (llmqd), nothing on stdout. On a GPU, llmq run --engine
 * cuda works and is deterministic at temperature 0.
 */
static void test_cli_engine(void **state)
{
	char path[1200], cmd[3000], *o, *e, *o2, *e2;
	const char *bin = getenv("LLMQ_BIN_DIR");
	const char *why;
	int rc;

	(void)state;
#ifdef LLMQ_CUDA_EMU
	print_message("[  SKIP    ] the emulator runs no binaries: test_cuda checks them\n");
	skip();
#endif
	model_path("tiny", "BF16", path, sizeof(path));
#ifdef LLMQ_HAVE_CUDA
	why = "no usable CUDA device";
#else
	why = "no CUDA backend";
#endif
	snprintf(cmd, sizeof(cmd), "%s/llmq run --engine bogus --model %s hi", bin, path);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o, &e), 2);
	assert_int_equal(testenv_lines(e), 1);
	free(o);
	free(e);

	snprintf(cmd, sizeof(cmd), "%s/llmq run --engine cuda --temperature 0 --max-tokens 8 "
		 "--model %s 'In the beginning'", bin, path);
	rc = testenv_sh(tmpdir, cmd, &o, &e);
	if (gpu_ok()) {
		if (rc)
			fail_msg("llmq run --engine cuda on a GPU: rc %d: %s", rc, e);
		assert_int_equal(testenv_sh(tmpdir, cmd, &o2, &e2), 0);
		assert_string_equal(o, o2);
		free(o2);
		free(e2);
	} else {
		if (rc != 1 || !strstr(e, why) || testenv_lines(e) != 1)
			fail_msg("llmq run --engine cuda: rc %d, wanted 1 and one line with '%s': "
				 "'%s'", rc, why, e);
		assert_string_equal(o, "");
		print_message("[          ] llmq run --engine cuda: %s", e);
	}
	free(o);
	free(e);

	if (gpu_ok())
		return;
	snprintf(cmd, sizeof(cmd), "%s/llmqd --engine cuda --model %s --socket %s/sock "
		 "--transport shm", bin, path, tmpdir);
	rc = testenv_sh(tmpdir, cmd, &o, &e);
	if (!rc || !strstr(e, why) || testenv_lines(e) != 1)
		fail_msg("llmqd --engine cuda: rc %d, wanted an error with '%s': '%s'", rc, why, e);
	print_message("[          ] llmqd --engine cuda: status %d: %s", rc, e);
	free(o);
	free(e);
	snprintf(cmd, sizeof(cmd), "%s/llmqd --engine cuda --gpu-memory-utilization 1.5", bin);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o, &e), 2);
	assert_int_equal(testenv_lines(e), 1);
	free(o);
	free(e);
}

/* One fatbin entry as nvcc writes it: a cubin (ELF) or PTX for one arch. */
struct fatbin_entry {
	uint16_t	kind;		/* 1 PTX, 2 ELF */
	uint16_t	version;
	uint32_t	header_size;
	uint64_t	payload_size;
	uint32_t	pad[3];
	uint32_t	arch;		/* 80 = sm_80 */
};

#define FATBIN_MAGIC	0xba55ed50u

/*
 * The plugin's (lib/llmq/backend-cuda.so, which llmqd and llmq load for
 * --engine cuda) .nv_fatbin holds, for every kernel file, SASS for sm_80 and
 * sm_90 and PTX for compute_90 (which later GPUs compile at load). Read
 * from the ELF directly: cuobjdump is not installed everywhere; where it
 * is, its listing must agree.
 */
static void test_fatbin(void **state)
{
#ifdef LLMQ_CUDA_EMU
	(void)state;
	print_message("[  SKIP    ] the emulator has no fatbin: test_cuda checks it\n");
	skip();
#elif defined(LLMQ_HAVE_CUDA)
	unsigned int elf80 = 0, elf90 = 0, ptx90 = 0, other = 0;
	char path[1200], cmd[3000], *o, *e;
	const Elf64_Shdr *sh_tab, *fat = NULL;
	const Elf64_Ehdr *eh;
	const uint8_t *base, *p, *end;
	const char *names;
	struct stat st;
	unsigned int i;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/../lib/llmq/backend-cuda.so", getenv("LLMQ_BIN_DIR"));
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	base = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(base != MAP_FAILED);
	close(fd);
	eh = (const Elf64_Ehdr *)base;
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	sh_tab = (const Elf64_Shdr *)(base + eh->e_shoff);
	names = (const char *)base + sh_tab[eh->e_shstrndx].sh_offset;
	for (i = 0; i < eh->e_shnum; i++)
		if (!strcmp(names + sh_tab[i].sh_name, ".nv_fatbin"))
			fat = &sh_tab[i];
	if (!fat)
		fail_msg("%s has no .nv_fatbin section", path);
	p = base + fat->sh_offset;
	end = p + fat->sh_size;
	/* Fatbins one after another, 8-aligned, zero padding between. */
	while (p + 16 <= end) {
		uint32_t magic;
		uint16_t hsize;
		uint64_t fsize;
		const uint8_t *q, *fend;

		memcpy(&magic, p, 4);
		if (magic != FATBIN_MAGIC) {
			p += 8;
			continue;
		}
		memcpy(&hsize, p + 6, 2);
		memcpy(&fsize, p + 8, 8);
		q = p + hsize;
		fend = q + fsize;
		assert_true(fend <= end);
		while (q + sizeof(struct fatbin_entry) <= fend) {
			struct fatbin_entry fe;

			memcpy(&fe, q, sizeof(fe));
			if (fe.kind == 2 && fe.arch == 80)
				elf80++;
			else if (fe.kind == 2 && fe.arch == 90)
				elf90++;
			else if (fe.kind == 1 && fe.arch == 90)
				ptx90++;
			else
				other++;
			assert_true(fe.header_size > 0);
			q += fe.header_size + fe.payload_size;
		}
		p = fend;
	}
	munmap((void *)base, st.st_size);
	print_message("[          ] backend-cuda.so's fatbin: %u sm_80 cubins, %u sm_90 cubins, %u "
		      "compute_90 PTX, %u other\n", elf80, elf90, ptx90, other);
	assert_true(elf80 >= 9);	/* one per file of cuda/kernels/ */
	assert_int_equal(elf80, elf90);
	assert_int_equal(elf90, ptx90);
	assert_int_equal(other, 0);

	snprintf(cmd, sizeof(cmd), "c=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump);"
		 " test -x $c || exit 77; $c --list-elf --list-ptx %s", path);
	if (testenv_sh(tmpdir, cmd, &o, &e) == 77) {
		print_message("[          ] cuobjdump not installed: the listing above is llmq's "
			      "own reading\n");
	} else {
		if (!strstr(o, "sm_80") || !strstr(o, "sm_90"))
			fail_msg("cuobjdump --list-elf --list-ptx: '%s' '%s'", o, e);
		print_message("[          ] cuobjdump agrees\n");
	}
	free(o);
	free(e);
#else
	(void)state;
	print_message("[  SKIP    ] built without CUDA (nvcc not found): no fatbin\n");
	skip();
#endif
}

#ifdef LLMQ_HAVE_CUDA

static float rnd(float lo, float hi)
{
	return lo + (hi - lo) * (float)rng_double(rng);
}

static uint32_t rnd_u(uint32_t n)
{
	return rng_next(rng) % n;
}

/* Device memory, poisoned: all bits set is NaN in FP32 and in BF16. */
static void *dmalloc(size_t bytes)
{
	void *p = NULL;

	assert_int_equal(cudaMalloc(&p, bytes), cudaSuccess);
	assert_int_equal(cudaMemset(p, 0xff, bytes), cudaSuccess);
	return p;
}

static void *dup_to_dev(const void *src, size_t bytes)
{
	void *p = dmalloc(bytes);

	assert_int_equal(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
	return p;
}

static void from_dev(void *dst, const void *src, size_t bytes)
{
	assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
	assert_int_equal(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
}

static float *frand(size_t n, float lo, float hi)
{
	float *x = malloc(n * sizeof(float));
	size_t i;

	assert_non_null(x);
	for (i = 0; i < n; i++)
		x[i] = rnd(lo, hi);
	return x;
}

/* A BF16 output holds the reference to 2^-8 of its size (+ a floor). */
static void check_bf16(const uint16_t *got, const float *ref, size_t n, const char *what)
{
	size_t i;

	for (i = 0; i < n; i++) {
		float g = bf16_to_fp32(got[i]);

		if (!(fabsf(g - ref[i]) <= fabsf(ref[i]) / 256 + 1e-6f))
			fail_msg("%s[%zu]: %g, want %g (BF16 tolerance 2^-8)", what, i, g, ref[i]);
	}
}

static void embed_case(void)
{
	const uint32_t V = 300, dim = 200, n = 17;
	uint16_t *table = malloc((size_t)V * dim * 2), *d_table;
	int32_t ids[17], *d_ids;
	float *x = malloc((size_t)n * dim * 4), *d_x;
	uint32_t t, i;

	for (i = 0; i < V * dim; i++)
		table[i] = fp32_to_bf16(rnd(-2, 2));
	for (t = 0; t < n; t++)
		ids[t] = rnd_u(V);
	d_table = dup_to_dev(table, (size_t)V * dim * 2);
	d_ids = dup_to_dev(ids, sizeof(ids));
	d_x = dmalloc((size_t)n * dim * 4);
	assert_int_equal(cuk_embed(0, d_x, d_table, d_ids, n, dim), cudaSuccess);
	from_dev(x, d_x, (size_t)n * dim * 4);
	for (t = 0; t < n; t++)
		for (i = 0; i < dim; i++)
			assert_true(x[t * dim + i] == bf16_to_fp32(table[ids[t] * dim + i]));
	cudaFree(d_table);
	cudaFree(d_ids);
	cudaFree(d_x);
	free(table);
	free(x);
}

/* The GPU check first: a skip must leave nothing allocated (LeakSanitizer). */
static void test_embed(void **state)
{
	(void)state;
	NEED_GPU();
	embed_case();
}

/* The gathered form (the final norm) and the plain one. */
static void rmsnorm_case(void)
{
	const uint32_t in_rows = 12, n = 9, dim = 1000;
	float *x = frand((size_t)in_rows * dim, -3, 3), *w = frand(dim, -1.5f, 1.5f);
	float *ref = malloc((size_t)n * dim * 4), *d_x, *d_w;
	uint16_t *got = malloc((size_t)n * dim * 2), *d_out;
	int32_t rows[9], *d_rows;
	uint32_t o, gather;

	for (o = 0; o < n; o++)
		rows[o] = (o * 5 + 3) % in_rows;
	d_x = dup_to_dev(x, (size_t)in_rows * dim * 4);
	d_w = dup_to_dev(w, dim * 4);
	d_rows = dup_to_dev(rows, sizeof(rows));
	for (gather = 0; gather < 2; gather++) {
		d_out = dmalloc((size_t)n * dim * 2);
		assert_int_equal(cuk_rmsnorm(0, d_out, d_x, gather ? d_rows : NULL, d_w, n, dim,
					     1e-5f), cudaSuccess);
		from_dev(got, d_out, (size_t)n * dim * 2);
		for (o = 0; o < n; o++)
			cpu_rmsnorm(ref + (size_t)o * dim,
				    x + (size_t)(gather ? rows[o] : (int32_t)o) * dim, w, dim, 1e-5f);
		check_bf16(got, ref, (size_t)n * dim, gather ? "rmsnorm gathered" : "rmsnorm");
		cudaFree(d_out);
	}
	cudaFree(d_x);
	cudaFree(d_w);
	cudaFree(d_rows);
	free(x);
	free(w);
	free(ref);
	free(got);
}

static void test_rmsnorm(void **state)
{
	(void)state;
	NEED_GPU();
	rmsnorm_case();
}

static void bias_case(void)
{
	const uint32_t n_rows = 5, n = 300, ld = 320;
	float *y = frand((size_t)n_rows * ld, -1, 1), *b = frand(n, -1, 1);
	float *got = malloc((size_t)n_rows * ld * 4), *d_y, *d_b;
	uint32_t t, i;

	d_y = dup_to_dev(y, (size_t)n_rows * ld * 4);
	d_b = dup_to_dev(b, n * 4);
	assert_int_equal(cuk_add_bias(0, d_y, d_b, n_rows, n, ld), cudaSuccess);
	from_dev(got, d_y, (size_t)n_rows * ld * 4);
	for (t = 0; t < n_rows; t++)
		for (i = 0; i < ld; i++)
			assert_true(got[t * ld + i] == (i < n ? y[t * ld + i] + b[i] : y[t * ld + i]));
	cudaFree(d_y);
	cudaFree(d_b);
	free(y);
	free(b);
	free(got);
}

static void test_bias(void **state)
{
	(void)state;
	NEED_GPU();
	bias_case();
}

/* Both layouts, whole and partial rotation, positions up to 100000. */
static void test_rope(void **state)
{
	const uint32_t n_rows = 6, hq = 4, hk = 2, d = 64, ld = (hq + 2 * hk) * d;
	const uint32_t n_rots[] = { 64, 32 };
	int32_t pos[6], *d_pos;
	uint32_t mode, ri, t, i;

	(void)state;
	NEED_GPU();
	for (t = 0; t < n_rows; t++)
		pos[t] = t ? (int32_t)rnd_u(100000) : 0;
	d_pos = dup_to_dev(pos, sizeof(pos));
	for (mode = 0; mode < 2; mode++) {
		for (ri = 0; ri < 2; ri++) {
			float *x = frand((size_t)n_rows * ld, -2, 2);
			float *ref = malloc((size_t)n_rows * ld * 4), *got = malloc((size_t)n_rows * ld * 4);
			struct cpu_rope cr;
			struct cuk_rope r;
			double *d_freq;
			float *d_x;

			assert_int_equal(cpu_rope_init(&cr, mode ? ROPE_NEOX : ROPE_NORMAL, d,
						       n_rots[ri], 10000.0f, 1.0f), 0);
			memcpy(ref, x, (size_t)n_rows * ld * 4);
			for (t = 0; t < n_rows; t++) {
				cpu_rope(&cr, ref + (size_t)t * ld, hq, pos[t]);
				cpu_rope(&cr, ref + (size_t)t * ld + hq * d, hk, pos[t]);
			}
			d_x = dup_to_dev(x, (size_t)n_rows * ld * 4);
			d_freq = dup_to_dev(cr.inv_freq, n_rots[ri] / 2 * sizeof(double));
			r = (struct cuk_rope){
				.x = d_x, .ld = ld, .k_off = hq * d, .pos = d_pos,
				.inv_freq = d_freq, .n_rows = n_rows, .n_head_q = hq,
				.n_head_k = hk, .head_dim = d, .n_rot = n_rots[ri], .neox = mode,
			};
			assert_int_equal(cuk_rope(0, &r), cudaSuccess);
			from_dev(got, d_x, (size_t)n_rows * ld * 4);
			/* Both round a double once; cos/sin may differ in the last bit. */
			for (i = 0; i < n_rows * ld; i++)
				if (!(fabsf(got[i] - ref[i]) <= 2e-7f * fmaxf(1, fabsf(ref[i]))))
					fail_msg("rope %s n_rot %u [%u]: %g, want %g",
						 mode ? "neox" : "normal", n_rots[ri], i, got[i],
						 ref[i]);
			cudaFree(d_x);
			cudaFree(d_freq);
			free(x);
			free(ref);
			free(got);
		}
	}
	cudaFree(d_pos);
}

static void swiglu_case(void)
{
	const uint32_t n_rows = 5, n_ff = 777;
	float *gu = frand((size_t)n_rows * 2 * n_ff, -6, 6);
	float *ref = malloc((size_t)n_rows * n_ff * 4), *d_gu;
	uint16_t *got = malloc((size_t)n_rows * n_ff * 2), *d_out;
	uint32_t t;

	for (t = 0; t < n_rows; t++)
		cpu_swiglu(ref + (size_t)t * n_ff, gu + (size_t)t * 2 * n_ff,
			   gu + (size_t)t * 2 * n_ff + n_ff, n_ff);
	d_gu = dup_to_dev(gu, (size_t)n_rows * 2 * n_ff * 4);
	d_out = dmalloc((size_t)n_rows * n_ff * 2);
	assert_int_equal(cuk_swiglu(0, d_out, d_gu, n_rows, n_ff), cudaSuccess);
	from_dev(got, d_out, (size_t)n_rows * n_ff * 2);
	check_bf16(got, ref, (size_t)n_rows * n_ff, "swiglu");
	cudaFree(d_gu);
	cudaFree(d_out);
	free(gu);
	free(ref);
	free(got);
}

static void test_swiglu(void **state)
{
	(void)state;
	NEED_GPU();
	swiglu_case();
}

/*
 * A random matrix of a kept type as a GGUF file holds it (random weight
 * bytes, random 6-bit scales, d and dmin of either sign), its two planes
 * split from it, and the host's dequantize() of it: the reference.
 */
struct qhost {
	struct cuk_qmat	dev;
	uint8_t		*blocks, *q, *h, *s;
	float		*w;
};

static void qhost_make(struct qhost *h, uint32_t type, uint32_t n, uint32_t k)
{
	const struct cuk_qtype *t = cuk_qtype(type);
	const uint32_t nb = k / t->block, bs = t->head + t->high + t->body;
	/* where the block's halves are: d (and the K types' dmin) */
	const uint32_t d_at = type == CUK_Q6_K ? 208 : 0;
	const uint32_t n_d = type == CUK_Q4_K || type == CUK_Q5_K ? 2 : 1;
	uint8_t *blk;
	size_t i, b;

	h->blocks = malloc((size_t)n * nb * bs);
	h->q = malloc((size_t)n * nb * t->body);
	h->h = malloc((size_t)n * nb * t->high + 1);
	h->s = malloc((size_t)n * nb * t->head);
	h->w = malloc((size_t)n * k * sizeof(float));
	assert_true(h->blocks && h->q && h->h && h->s && h->w);
	for (b = 0; b < (size_t)n * nb; b++) {
		blk = h->blocks + b * bs;
		for (i = 0; i < bs; i++)
			blk[i] = (uint8_t)rnd_u(256);
		/* d (and dmin) finite: a weight is then a number. */
		for (i = 0; i < n_d; i++) {
			uint16_t d = fp32_to_fp16(rnd(-0.02f, 0.02f));

			memcpy(blk + d_at + 2 * i, &d, 2);
		}
	}
	cuk_qsplit(t, h->blocks, (uint64_t)n * nb, h->s, h->h, h->q);
	assert_int_equal(bs, dtype_info(type)->size);
	for (i = 0; i < n; i++)
		assert_int_equal(dequantize(type, h->blocks + i * nb * bs, h->w + i * k, k), 0);
	h->dev = (struct cuk_qmat){
		.type = type, .n = n, .k = k,
		.q = dup_to_dev(h->q, (size_t)n * nb * t->body),
		.h = t->high ? dup_to_dev(h->h, (size_t)n * nb * t->high) : NULL,
		.s = dup_to_dev(h->s, (size_t)n * nb * t->head),
	};
}

static void qhost_free(struct qhost *h)
{
	cudaFree((void *)h->dev.q);
	cudaFree((void *)h->dev.h);
	cudaFree((void *)h->dev.s);
	free(h->blocks);
	free(h->q);
	free(h->h);
	free(h->s);
	free(h->w);
}

static const char *qname(uint32_t type)
{
	return dtype_info(type)->name;
}

/*
 * y = x . W^T + beta y for @rows rows: against a float64 sum of the same
 * BF16 x and the host's dequantised weights, within 1e-6 of the sum of the
 * terms' sizes (FP32 sums of 16 terms, then of a lane's steps, then of the
 * lanes); columns past n untouched. Returns the worst error so measured.
 */
static double qmatvec_case(uint32_t type, uint32_t n, uint32_t k, uint32_t rows, float beta)
{
	const uint32_t ldy = n + 3;
	uint16_t *x = malloc((size_t)rows * k * 2), *d_x;
	float *y = frand((size_t)rows * ldy, -1, 1), *got = malloc((size_t)rows * ldy * 4);
	float *d_y;
	struct qhost h;
	double worst = 0;
	uint32_t r, j, c;
	size_t i;

	qhost_make(&h, type, n, k);
	for (i = 0; i < (size_t)rows * k; i++)
		x[i] = fp32_to_bf16(rnd(-2, 2));
	d_x = dup_to_dev(x, (size_t)rows * k * 2);
	d_y = dmalloc((size_t)rows * ldy * 4);
	/* beta 0: y is poison and must not be read; else it is y's old value. */
	if (beta != 0.0f)
		assert_int_equal(cudaMemcpy(d_y, y, (size_t)rows * ldy * 4,
					    cudaMemcpyHostToDevice), cudaSuccess);
	assert_int_equal(cuk_qmatvec(0, d_y, ldy, beta, &h.dev, d_x, rows), cudaSuccess);
	from_dev(got, d_y, (size_t)rows * ldy * 4);
	for (r = 0; r < rows; r++) {
		for (j = 0; j < ldy; j++) {
			double ref = beta != 0.0f ? (double)beta * y[(size_t)r * ldy + j] : 0;
			double size = fabs(ref);
			float g = got[(size_t)r * ldy + j];

			if (j >= n) {
				assert_true(beta != 0.0f ? g == y[(size_t)r * ldy + j] : isnan(g));
				continue;
			}
			for (c = 0; c < k; c++) {
				double t = (double)bf16_to_fp32(x[(size_t)r * k + c]) *
					   h.w[(size_t)j * k + c];

				ref += t;
				size += fabs(t);
			}
			if (!(fabs(g - ref) <= 1e-6 * size + 1e-30))
				fail_msg("%s matvec %ux%u, %u rows, beta %g: y[%u][%u] = %.9g, want "
					 "%.9g (limit 1e-6 of %.3g)", qname(type), n, k, rows, beta,
					 r, j, g, ref, size);
			worst = fmax(worst, fabs(g - ref) / size);
		}
	}
	qhost_free(&h);
	cudaFree(d_x);
	cudaFree(d_y);
	free(x);
	free(y);
	free(got);
	return worst;
}

/* Rows row0 .. row0 + nr - 1 in BF16: the host's dequantised weights rounded, bit for bit. */
static void qwiden_case(uint32_t type, uint32_t n, uint32_t k, uint32_t row0, uint32_t nr)
{
	uint16_t *got = malloc((size_t)(nr + 1) * k * 2), *d_out;
	struct qhost h;
	uint32_t r, c;

	qhost_make(&h, type, n, k);
	d_out = dmalloc((size_t)(nr + 1) * k * 2);
	assert_int_equal(cuk_qwiden(0, d_out, &h.dev, row0, nr), cudaSuccess);
	from_dev(got, d_out, (size_t)(nr + 1) * k * 2);
	for (r = 0; r < nr; r++)
		for (c = 0; c < k; c++) {
			uint16_t want = fp32_to_bf16(h.w[(size_t)(row0 + r) * k + c]);

			if (got[(size_t)r * k + c] != want)
				fail_msg("%s widen: row %u col %u: %#x, want %#x", qname(type),
					 row0 + r, c, got[(size_t)r * k + c], want);
		}
	/* The row after the slice is still poison. */
	for (c = 0; c < k; c++)
		assert_int_equal(got[(size_t)nr * k + c], 0xffff);
	qhost_free(&h);
	cudaFree(d_out);
	free(got);
}

/* A quantised table's rows in FP32: the host's dequantize(), bit for bit. */
static void qembed_case(uint32_t type, uint32_t dim)
{
	const uint32_t V = 300, n = 13;
	float *x = malloc((size_t)n * dim * 4), *d_x;
	int32_t ids[13], *d_ids;
	struct qhost h;
	uint32_t t, i;

	qhost_make(&h, type, V, dim);
	for (t = 0; t < n; t++)
		ids[t] = t ? rnd_u(V) : V - 1;
	d_ids = dup_to_dev(ids, sizeof(ids));
	d_x = dmalloc((size_t)n * dim * 4);
	assert_int_equal(cuk_embed_q(0, d_x, &h.dev, d_ids, n), cudaSuccess);
	from_dev(x, d_x, (size_t)n * dim * 4);
	for (t = 0; t < n; t++)
		for (i = 0; i < dim; i++)
			if (memcmp(&x[t * dim + i], &h.w[(size_t)ids[t] * dim + i], 4))
				fail_msg("%s embed: row %d col %u: %g, want %g", qname(type), ids[t],
					 i, x[t * dim + i], h.w[(size_t)ids[t] * dim + i]);
	qhost_free(&h);
	cudaFree(d_ids);
	cudaFree(d_x);
	free(x);
}

/* What the quantised kernels refuse, before launching anything. */
static void q_refused_case(void)
{
	struct cuk_qmat bad;
	struct qhost h;
	uint16_t *d_x = dmalloc(8 * 256 * 2), *d_o = dmalloc(8 * 256 * 2);
	float *d_y = dmalloc(8 * 256 * 4);
	int32_t *d_ids = dmalloc(4);

	qhost_make(&h, CUK_Q4_K, 8, 256);
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &h.dev, d_x, 0), cudaErrorInvalidValue);
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &h.dev, d_x, CUK_QMATVEC_MAX_ROWS + 1),
			 cudaErrorInvalidValue);
	assert_int_equal(cuk_qmatvec(0, d_y, 7, 0, &h.dev, d_x, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &h.dev, d_x + 1, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o, &h.dev, 5, 4), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o, &h.dev, 9, 0), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o + 1, &h.dev, 0, 1), cudaErrorInvalidValue);
	/* Q4_K's blocks are 256 wide; F16 is not a kept type. */
	bad = h.dev;
	bad.k = 128;
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &bad, d_x, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o, &bad, 0, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_embed_q(0, (float *)d_y, &bad, d_ids, 1), cudaErrorInvalidValue);
	bad = h.dev;
	bad.type = GGML_TYPE_F16;
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &bad, d_x, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o, &bad, 0, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_embed_q(0, (float *)d_y, &bad, d_ids, 1), cudaErrorInvalidValue);
	bad = h.dev;
	bad.q = h.dev.q + 1;
	assert_int_equal(cuk_qwiden(0, d_o, &bad, 0, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_embed_q(0, (float *)d_y, &bad, d_ids, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_embed_q(0, (float *)d_y + 1, &h.dev, d_ids, 1),
			 cudaErrorInvalidValue);
	qhost_free(&h);
	/* Q6_K without its plane of high bits, or with it misaligned */
	qhost_make(&h, CUK_Q6_K, 8, 256);
	bad = h.dev;
	bad.h = NULL;
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &bad, d_x, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_qwiden(0, d_o, &bad, 0, 1), cudaErrorInvalidValue);
	assert_int_equal(cuk_embed_q(0, (float *)d_y, &bad, d_ids, 1), cudaErrorInvalidValue);
	bad.h = h.dev.h + 8;
	assert_int_equal(cuk_qmatvec(0, d_y, 256, 0, &bad, d_x, 1), cudaErrorInvalidValue);
	/* Nothing was launched, so nothing failed. */
	assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
	assert_int_equal(cudaGetLastError(), cudaSuccess);
	qhost_free(&h);
	cudaFree(d_x);
	cudaFree(d_o);
	cudaFree(d_y);
	cudaFree(d_ids);
}

/*
 * The quantised kernels on random matrices of each kept type: the split of
 * its blocks is GGUF's (dtype.c's sizes); the product for every row count,
 * widths below, at and past a warp's 512 bytes a step, more weight rows
 * than a block's 8, beta 0 and 1; slices widened from the first row, the
 * middle and the last; the embedding gather; what they refuse.
 */
static void test_quant(void **state)
{
	static const uint32_t types[] = { CUK_Q8_0, CUK_Q4_0, CUK_Q4_K, CUK_Q5_K, CUK_Q6_K };
	double e = 0;
	uint32_t ti, rows, type, b;

	(void)state;
	NEED_GPU();
	for (ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		type = types[ti];
		b = cuk_qtype(type)->block;
		assert_int_equal(b, dtype_info(type)->block);
		for (rows = 1; rows <= CUK_QMATVEC_MAX_ROWS; rows++)
			e = fmax(e, qmatvec_case(type, 37, 3 * 256, rows,
						 rows % 2 ? 0.0f : 1.0f));
		e = fmax(e, qmatvec_case(type, 1, b, 1, 0.0f));
		e = fmax(e, qmatvec_case(type, 300, 2 * 256, 3, 1.0f));
		e = fmax(e, qmatvec_case(type, 130, 16 * 256 + b, 8, 0.0f));
		e = fmax(e, qmatvec_case(type, 9, 14336, 2, 1.0f));
		qwiden_case(type, 37, 256, 0, 37);
		qwiden_case(type, 100, 3 * 256, 41, 17);
		qwiden_case(type, 20, b, 19, 1);
		qembed_case(type, b == 256 ? 512 : 96);
	}
	print_message("[          ] Q8_0, Q4_0, Q4_K, Q5_K, Q6_K products: worst error %.3g of "
		      "the terms' sizes (limit 1e-6)\n", e);
	q_refused_case();
}

/*
 * Greedy rows of cuk_sample() (temperature 0): random rows, a tie (the first
 * wins), all -inf, NaNs beside a maximum, as the host's argmax picks.
 */
static void argmax_case(void)
{
	const uint32_t n_rows = 6, n = 50021;
	float *x = frand((size_t)n_rows * n, -10, 10), *d_x, *d_lp;
	const struct cuk_sample_row greedy[6] = { { .top_p = 1.0f } };
	struct cuk_sample_row *d_r;
	int32_t got[6], *d_out;
	uint32_t t, i;

	x[2 * n + 100] = 20;
	x[2 * n + 40000] = 20;
	for (i = 0; i < n; i++)
		x[3 * n + i] = -INFINITY;
	for (i = 1; i < n; i += 97)
		x[4 * n + i] = NAN;
	x[5 * n + n - 1] = 30;	/* the very last element */
	d_x = dup_to_dev(x, (size_t)n_rows * n * 4);
	d_out = dmalloc(sizeof(got));
	d_lp = dmalloc(n_rows * sizeof(float));
	d_r = dup_to_dev(greedy, sizeof(greedy));
	assert_int_equal(cuk_sample(0, d_out, d_lp, d_x, d_r, NULL, NULL, NULL, n_rows, n),
			 cudaSuccess);
	from_dev(got, d_out, sizeof(got));
	for (t = 0; t < n_rows; t++)
		assert_int_equal(got[t], argmax(x + (size_t)t * n, n));
	assert_int_equal(got[2], 100);
	assert_int_equal(got[3], 0);
	assert_int_equal(got[5], n - 1);
	cudaFree(d_x);
	cudaFree(d_out);
	cudaFree(d_lp);
	cudaFree(d_r);
	free(x);
}

static void test_argmax(void **state)
{
	(void)state;
	NEED_GPU();
	argmax_case();
}

struct cand {
	float		v;
	int32_t		id;
};

/* Larger logit first; the lower id among equals. */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int cand_id_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * The host's reading of cuk_sample() for one row, in double, from its
 * definition: sort, keep the top_k and their ties, then what min_p keeps,
 * then the smallest prefix reaching top_p of the top-k set's weight (ties
 * by lowest id), then walk the kept ones in id order. Returns the token,
 * and in *@edge how near (relative) the draw or the top-p cut fell to a
 * boundary of the weights, or a logit to the min-p bound, where the
 * kernel's float and fixed-point sums may go either way. @c has room for
 * @n candidates.
 */
static int32_t sample_ref(struct cand *c, const float *x, uint32_t n,
			  const struct cuk_sample_row *r, double *edge)
{
	const double t = r->temperature;
	double z = 0, kept = 0, target, w;
	float mx, kth = -INFINITY, xcut = -INFINITY;
	uint32_t i, m = 0, keep;

	*edge = 1;
	if (r->temperature == 0.0f)
		return (int32_t)argmax(x, n);
	for (i = 0; i < n; i++)
		if (!isnan(x[i]))
			c[m++] = (struct cand){ x[i], (int32_t)i };
	qsort(c, m, sizeof(*c), cand_cmp);
	mx = c[0].v;
	if (r->top_k && r->top_k < m)
		kth = c[r->top_k - 1].v;
	if (r->min_p > 0.0f)
		xcut = mx + r->temperature * logf(r->min_p);
	for (i = 0; i < m && c[i].v >= kth; i++)
		z += exp((c[i].v - mx) / t);
	for (keep = 0; keep < m && c[keep].v >= kth && c[keep].v >= xcut; keep++)
		;
	for (i = 0; i < m && r->min_p > 0.0f; i++)
		if (fabsf(c[i].v - xcut) <= 1e-6f * (1.0f + fabsf(xcut)))
			*edge = 0;
	if (r->top_p < 1.0f) {
		target = z * ((double)r->top_p - 1e-6);
		for (i = 0; i < keep; i++) {
			kept += exp((c[i].v - mx) / t);
			*edge = fmin(*edge, fabs(kept - target) / z);
			if (kept >= target) {
				keep = i + 1;
				break;
			}
		}
	}
	qsort(c, keep, sizeof(*c), cand_id_cmp);
	for (i = 0, z = 0; i < keep; i++)
		z += exp((c[i].v - mx) / t);
	target = r->u * z;
	for (i = 0, kept = 0; i < keep; i++) {
		w = exp((c[i].v - mx) / t);
		*edge = fmin(*edge, fabs(kept - target) / z);
		kept += w;
		if (kept > target) {
			*edge = fmin(*edge, fabs(kept - target) / z);
			return c[i].id;
		}
	}
	return c[keep - 1].id;
}

/*
 * Run cuk_sample() over @n_rows rows of @n logits (host @x), into @got,
 * and check every answer against sample_ref(): the same token unless the
 * draw fell within 1e-4 of a boundary; a skipped row untouched; the
 * log-probability of a pick within 2e-4 of the log-softmax in double.
 * Returns how many rows fell at a boundary.
 */
static uint32_t sample_check(const float *x, const struct cuk_sample_row *r, uint32_t n_rows,
			     uint32_t n, int32_t *got)
{
	float *d_x = dup_to_dev(x, (size_t)n_rows * n * 4), *d_lp = dmalloc(n_rows * 4);
	struct cuk_sample_row *d_r = dup_to_dev(r, n_rows * sizeof(*r));
	struct cand *c = malloc(n * sizeof(*c));
	int32_t *d_out = dmalloc(n_rows * 4);
	float *lp = malloc(n_rows * 4);
	uint32_t t, near = 0;

	assert_non_null(c);
	assert_non_null(lp);
	assert_int_equal(cuk_sample(0, d_out, d_lp, d_x, d_r, NULL, NULL, NULL, n_rows, n),
			 cudaSuccess);
	from_dev(got, d_out, n_rows * 4);
	from_dev(lp, d_lp, n_rows * 4);
	for (t = 0; t < n_rows; t++) {
		const float *row = x + (size_t)t * n;
		double edge, want_lp;
		int32_t want;

		if (r[t].temperature < 0) {
			assert_int_equal(got[t], CUK_SAMPLE_SKIP);
			assert_true(isnan(lp[t]));	/* still the poison */
			continue;
		}
		want = sample_ref(c, row, n, &r[t], &edge);
		if (got[t] != want) {
			if (edge > 1e-4)
				fail_msg("sample row %u (T %g, k %u, p %g, min_p %g, u %g): %d, "
					 "want %d (boundary %.2g away)", t, r[t].temperature,
					 r[t].top_k, r[t].top_p, r[t].min_p, r[t].u, got[t], want,
					 edge);
			near++;
		}
		assert_true(got[t] >= 0 && (uint32_t)got[t] < n);
		want_lp = row[got[t]] - testenv_lse(row, n);
		if (!(fabs(lp[t] - want_lp) <= 2e-4))
			fail_msg("sample row %u: logprob %g, want %g", t, lp[t], want_lp);
	}
	cudaFree(d_x);
	cudaFree(d_lp);
	cudaFree(d_r);
	cudaFree(d_out);
	free(c);
	free(lp);
	return near;
}

/* Run sample_check() twice: the second run must give the same tokens. */
static uint32_t sample_twice(const float *x, const struct cuk_sample_row *r, uint32_t n_rows,
			     uint32_t n)
{
	int32_t *a = malloc(n_rows * 4), *b = malloc(n_rows * 4);
	uint32_t near;

	assert_non_null(a);
	assert_non_null(b);
	near = sample_check(x, r, n_rows, n, a);
	sample_check(x, r, n_rows, n, b);
	assert_memory_equal(a, b, n_rows * 4);
	free(a);
	free(b);
	return near;
}

#define SAMPLE_ROWS	48

/*
 * Greedy, temperature, top-k, top-p and min-p on the device against the
 * host's reading, each row twice (the same tokens both times): rows of
 * 5000 logits with random settings (top_k 0, small, past 1024, all, one
 * short of all; top_p 0.3 to 1; min_p 0 to 0.5) and fresh draws; ties at
 * the k-th, which all take part; ties at the edge of the nucleus, of
 * which the lowest ids join; a peaked row whose nucleus is a few dozen and
 * a flat one whose nucleus is most of the row; min_p 1 (the maximum and
 * its ties); a top_p so small it keeps one; ties left out of a nucleus
 * before a pick in the same run of ids; skipped rows; a row shorter
 * than its top_k, one of a single logit; a vocabulary of 151936 (Qwen's)
 * with nuclei of tens of thousands.
 */
static void sample_case(void)
{
	static const float temps[] = { 0.5f, 1.0f, 1.7f, 0.0f, 0.8f };
	static const uint32_t ks[] = { 0, 1, 5, 40, 2000, 1024, 3, 5000, 7, 4999, 0 };
	static const float ps[] = { 1.0f, 0.9f, 0.3f, 0.999f, 0.95f };
	static const float mins[] = { 0.0f, 0.0f, 0.05f, 0.5f, 0.01f };
	const uint32_t n_rows = SAMPLE_ROWS, n = 5000, big = 151936;
	float *x = frand((size_t)n_rows * n, -5, 5);
	struct cuk_sample_row r[SAMPLE_ROWS];
	uint32_t t, i, near;

	for (t = 0; t < n_rows; t++) {
		r[t] = (struct cuk_sample_row){
			.temperature = temps[rnd_u(5)], .top_k = ks[rnd_u(11)],
			.top_p = ps[rnd_u(5)], .min_p = mins[rnd_u(5)], .u = rnd(0, 1),
		};
	}
	/*
	 * Row 0: ties at the k-th: with top_k 5, the largest logit then eight
	 * equal ones, all of which take part. Row 1: eight equal largest ones
	 * at the edge of a nucleus (T 0.1 leaves the rest about 0.3 of one's
	 * weight): top_p 0.5 needs five of them, the five lowest ids.
	 */
	x[4321] = 6.0f;
	for (t = 0; t < 2; t++)
		for (i = 0; i < 8; i++)
			x[(size_t)t * n + 4000 - 450 * i] = 5.5f;
	r[0] = (struct cuk_sample_row){ .temperature = 1.0f, .top_k = 5, .top_p = 1.0f,
					.u = rnd(0, 1) };
	r[1] = (struct cuk_sample_row){ .temperature = 0.1f, .top_p = 0.5f, .u = rnd(0, 1) };
	/* Row 2: peaked, top_k 0, top_p 0.9: a nucleus of a few dozen. */
	r[2] = (struct cuk_sample_row){ .temperature = 1.0f, .top_p = 0.9f, .u = rnd(0, 1) };
	for (i = 0; i < 40; i++)
		x[2 * n + 97 * i] = 12.0f + 0.05f * i;
	/* Row 3: flat, top_k 0, top_p 0.9: the nucleus is most of the row. */
	r[3] = (struct cuk_sample_row){ .temperature = 1.7f, .top_p = 0.9f, .u = rnd(0, 1) };
	/* Row 4: min_p 1 keeps the largest and its ties; row 5: top_p 1e-7, the largest. */
	x[4 * n + 17] = 9.0f;
	x[4 * n + 4017] = 9.0f;
	r[4] = (struct cuk_sample_row){ .temperature = 1.0f, .top_p = 1.0f, .min_p = 1.0f,
					.u = rnd(0, 1) };
	r[5] = (struct cuk_sample_row){ .temperature = 2.0f, .top_p = 1e-7f, .u = rnd(0, 1) };
	r[6].temperature = -1.0f;
	r[7].temperature = -1.0f;
	/*
	 * Row 8: in one thread's run of ids, eight ties at the nucleus' edge
	 * (2000 to 2007), then four larger ones: four ties join, and a draw
	 * past their weight (4 x e^-0.5) picks the first larger one, 2008,
	 * not a tie left out.
	 */
	for (i = 0; i < n; i++)
		x[8 * n + i] = -20.0f;
	for (i = 0; i < 8; i++)
		x[8 * n + 2000 + i] = 2.5f;
	for (i = 0; i < 4; i++)
		x[8 * n + 2008 + i] = 3.0f;
	r[8] = (struct cuk_sample_row){ .temperature = 1.0f, .top_p = 0.7f, .u = 0.42f };
	near = sample_twice(x, r, n_rows, n);
	{
		int32_t got[SAMPLE_ROWS];

		sample_check(x, r, 9, n, got);
		assert_true(got[0] == 4321 || (got[0] <= 4000 && (4000 - got[0]) % 450 == 0));
		assert_true(got[1] >= 850 && got[1] <= 2650 && (4000 - got[1]) % 450 == 0);
		assert_true(got[4] == 17 || got[4] == 4017);
		assert_int_equal(got[5], argmax(x + 5 * (size_t)n, n));
		assert_int_equal(got[8], 2008);
	}

	/* A row of 37, shorter than its top_k (40), and one of 1. */
	r[0] = (struct cuk_sample_row){ .temperature = 1.0f, .top_k = 40, .top_p = 1.0f,
					.u = rnd(0, 1) };
	near += sample_twice(x, r, 1, 37);
	r[0].top_p = 0.5f;
	r[0].min_p = 0.3f;
	near += sample_twice(x, r, 1, 1);

	/*
	 * Ties past any list of candidates: top_k 1024 over 10 large logits
	 * and 4990 equal ones, all kept as the k-th's ties.
	 */
	for (i = 0; i < n; i++)
		x[i] = 0.0f;
	for (i = 0; i < 10; i++)
		x[7 + 499 * i] = 20.0f + 0.1f * i;
	r[0] = (struct cuk_sample_row){ .temperature = 1.0f, .top_k = 1024, .top_p = 1.0f,
					.u = rnd(0, 1) };
	near += sample_twice(x, r, 1, n);
	free(x);

	/* Qwen's vocabulary, logits spread as a language model's (-15 to 15). */
	x = frand((size_t)4 * big, -15, 15);
	for (t = 0; t < 4; t++)
		r[t] = (struct cuk_sample_row){ .temperature = 0.7f + 0.4f * t,
						.top_k = t == 3 ? 50000 : 0,
						.top_p = t ? 0.95f : 1.0f,
						.min_p = t == 2 ? 0.001f : 0.0f, .u = rnd(0, 1) };
	near += sample_twice(x, r, 4, big);
	print_message("[          ] sampling: %u rows as the host reads them, %u at a "
		      "boundary\n", n_rows + 7 - near, near);
	free(x);
}

#define PEN_ROWS	14	/* 12 random, 2 that a fed token's count must flip */
#define PEN_PROMPT	40

/* The host's penalties on @row, in its operations: see sampler_sample(). */
static void pen_apply(float *row, const struct cuk_sample_row *r, const struct cuk_pen *pen,
		      int32_t extra)
{
	bool seen = false;
	uint32_t j, o;
	float v;

	for (j = 0; j <= r->pen_n; j++) {
		uint32_t id = j < r->pen_n ? pen[j].id : (uint32_t)extra;

		if (j == r->pen_n && (extra < 0 || seen))
			break;
		o = j < r->pen_n ? pen[j].n & ~CUK_PEN_PROMPT : 1;
		if ((int32_t)id == extra && j < r->pen_n) {
			o++;
			seen = true;
		}
		v = row[id];
		if (r->rep != 1.0f)
			v = v > 0 ? v / r->rep : v * r->rep;
		if (o) {
			v -= r->freq * (float)o;
			v -= r->pres;
		}
		row[id] = v;
	}
}

/* Does @d's penalty list hold @tok? */
static bool pen_listed(const struct sampler_draw *d, uint32_t tok)
{
	uint32_t i;

	for (i = 0; i < d->n_pen; i++)
		if (d->pen[i].id == tok)
			return true;
	return false;
}

/*
 * Penalties on the device: twelve rows, each a real host sampler's
 * (repetition 0.8 to 1.3, presence -0.3 to 0.4, frequency 0 to 0.3) after
 * a prompt of 40 tokens and some output, its list as sampler_next_draw()
 * gives it; a third of them count one more token fed on the device, listed
 * or not. Two more, greedy, whose pick a fed token's count decides: one
 * listed (its frequency penalty goes from 0 to 0.6, 8 to 7.4 below 7.5),
 * one new (its presence penalty of 0.5 takes it from 8 to 7.5 below 7.7).
 * Greedy rows pick what sampler_sample() picks once the host has
 * the fed token too; the others what the reading of the same rule picks
 * from the row penalised on the host, with the same draw. The
 * log-probability is the raw row's; every row is back as it was, bit for
 * bit.
 */
static void pen_case(void)
{
	static const float reps[] = { 1.0f, 1.3f, 0.8f }, pres[] = { 0.4f, 0.0f, -0.3f };
	const uint32_t n = 5000;
	float *x = frand((size_t)PEN_ROWS * n, -5, 5), *back = malloc(PEN_ROWS * n * 4);
	float *want_x = malloc(PEN_ROWS * n * 4), *d_x, *d_lp, *d_saved, lp[PEN_ROWS];
	struct cuk_pen *pen = malloc(PEN_ROWS * (n + 1) * sizeof(*pen)), *d_pen;
	struct cuk_sample_row r[PEN_ROWS], *d_r;
	int32_t ids[PEN_ROWS], got[PEN_ROWS], want[PEN_ROWS], extra[PEN_ROWS], *d_ids, *d_out;
	double edge, edges[PEN_ROWS];
	struct cand *c = malloc(n * sizeof(*c));
	uint32_t prompt[PEN_PROMPT], t, i, used = 0, near = 0;

	assert_non_null(back);
	assert_non_null(want_x);
	assert_non_null(pen);
	assert_non_null(c);
	x[12 * n + 100] = 8.0f;
	x[12 * n + 200] = 7.5f;
	x[13 * n + 300] = 8.0f;
	x[13 * n + 400] = 7.7f;
	memcpy(want_x, x, PEN_ROWS * n * 4);
	for (t = 0; t < PEN_ROWS; t++) {
		struct sampler_params sp = {
			.temperature = t % 4 == 0 ? 0.0f : 0.9f, .top_k = t % 3 == 1 ? 50 : 0,
			.top_p = t % 2 ? 0.9f : 1.0f, .min_p = t % 5 == 2 ? 0.05f : 0.0f,
			.repetition_penalty = reps[t % 3], .presence_penalty = pres[t % 3],
			.frequency_penalty = t % 2 ? 0.3f : 0.0f, .seed = t, .max_tokens = 1000,
		};
		const bool flip = t >= 12;
		struct sampler_draw d;
		struct sampler *smp;
		const char *emit;
		size_t emit_len;
		float *row = want_x + (size_t)t * n;

		/* Tokens among the likeliest, so the penalties move the pick. */
		for (i = 0; i < PEN_PROMPT; i++)
			prompt[i] = (argmax(row, n) + i % 7 * 13 + rnd_u(3)) % n;
		if (flip) {
			sp = (struct sampler_params){
				.top_p = 1.0f, .repetition_penalty = 1.0f, .max_tokens = 1000,
				.frequency_penalty = t == 12 ? 0.6f : 0.0f,
				.presence_penalty = t == 13 ? 0.5f : 0.0f,
			};
			for (i = 0; i < PEN_PROMPT; i++)
				prompt[i] = t == 12 ? 100 : 5;
		}
		smp = sampler_create(&sp, n, prompt, PEN_PROMPT);
		assert_non_null(smp);
		for (i = 0; !flip && i < t % 6; i++)
			sampler_accept(smp, prompt[rnd_u(PEN_PROMPT)], "", 0, &emit, &emit_len);
		sampler_next_draw(smp, &d);
		assert_true(backend_draw_penalised(&d));
		r[t] = (struct cuk_sample_row){
			.temperature = d.temperature, .top_k = d.top_k, .top_p = d.top_p,
			.min_p = d.min_p, .u = d.u, .rep = d.rep, .pres = d.pres, .freq = d.freq,
			.pen_off = used, .pen_n = d.n_pen,
		};
		memcpy(pen + used, d.pen, d.n_pen * sizeof(*pen));
		used += d.n_pen + 1;
		/* Fed on the device: a listed token (t % 3 == 1) or a new one. */
		extra[t] = -1;
		ids[t] = 0;
		if (flip) {
			ids[t] = t == 12 ? 100 : 300;
			extra[t] = ids[t];
			r[t].extra = t + 1;
			sampler_accept(smp, (uint32_t)ids[t], "", 0, &emit, &emit_len);
		} else if (t % 3 != 2) {
			ids[t] = t % 3 == 1 ? (int32_t)d.pen[rnd_u(d.n_pen)].id :
				 (int32_t)(rnd_u(n / 2) + n / 2);
			while (t % 3 == 0 && pen_listed(&d, (uint32_t)ids[t]))
				ids[t] = (ids[t] + 1) % n;
			extra[t] = ids[t];
			r[t].extra = t + 1;
			sampler_accept(smp, (uint32_t)ids[t], "", 0, &emit, &emit_len);
		}
		edges[t] = 1;
		if (!d.temperature) {
			want[t] = (int32_t)sampler_sample(smp, row, NULL);
		} else {
			pen_apply(row, &r[t], pen + r[t].pen_off, extra[t]);
			want[t] = sample_ref(c, row, n, &r[t], &edge);
			edges[t] = edge;
		}
		sampler_free(smp);
	}
	d_x = dup_to_dev(x, (size_t)PEN_ROWS * n * 4);
	d_lp = dmalloc(sizeof(lp));
	d_out = dmalloc(sizeof(got));
	d_r = dup_to_dev(r, sizeof(r));
	d_pen = dup_to_dev(pen, used * sizeof(*pen));
	d_saved = dmalloc(used * sizeof(float));
	d_ids = dup_to_dev(ids, sizeof(ids));
	assert_int_equal(cuk_sample(0, d_out, d_lp, d_x, d_r, d_pen, d_saved, d_ids, PEN_ROWS, n),
			 cudaSuccess);
	from_dev(got, d_out, sizeof(got));
	from_dev(lp, d_lp, sizeof(lp));
	from_dev(back, d_x, PEN_ROWS * n * 4);
	assert_memory_equal(back, x, PEN_ROWS * n * 4);
	for (t = 0; t < PEN_ROWS; t++) {
		const float *row = x + (size_t)t * n;
		double want_lp;

		assert_true(got[t] >= 0 && (uint32_t)got[t] < n);
		if (got[t] != want[t] && edges[t] <= 1e-4)
			near++;
		else if (got[t] != want[t])
			fail_msg("penalised row %u (T %g, k %u, p %g, min_p %g, rep %g, pres %g, "
				 "freq %g, %u listed, fed %d): %d, the host reads %d", t,
				 r[t].temperature, r[t].top_k, r[t].top_p, r[t].min_p, r[t].rep,
				 r[t].pres, r[t].freq, r[t].pen_n, extra[t], got[t], want[t]);
		want_lp = row[got[t]] - testenv_lse(row, n);
		if (!(fabs(lp[t] - want_lp) <= 2e-4))
			fail_msg("penalised row %u: logprob %g, want the raw row's %g", t, lp[t],
				 want_lp);
	}
	assert_int_equal(got[12], 200);
	assert_int_equal(got[13], 400);
	print_message("[          ] penalties: %u rows as the host sampler reads them, %u at a "
		      "boundary\n", PEN_ROWS - near, near);
	cudaFree(d_x);
	cudaFree(d_lp);
	cudaFree(d_out);
	cudaFree(d_r);
	cudaFree(d_pen);
	cudaFree(d_saved);
	cudaFree(d_ids);
	free(x);
	free(back);
	free(want_x);
	free(pen);
	free(c);
}

static void test_sample(void **state)
{
	(void)state;
	NEED_GPU();
	sample_case();
	pen_case();
}

#define AT_SEQS		4
#define AT_BS		16
#define AT_BLOCKS	96
#define AT_MODES	5
#define AT_LISTED	5

/*
 * The ways attention_case() runs its rows: the last 5 of each sequence one
 * by one, in one pass, with 3 and with 16 splits (more rows would only
 * slow the emulator); every row as tiles; sequences 1 and 3 as tiles with
 * the last 5 rows of 0 and 2 one by one, in 3 splits.
 */
static const char *const at_mode[AT_MODES] = {
	"one pass", "3 splits", "16 splits", "tiles", "tiles and listed rows",
};

/* Tiles of at most CUK_ATTN_TILE_ROWS for the rows of the sequences in @mask. */
static uint32_t at_tiles(struct cuk_attn_tile *t, const uint32_t *first, const uint32_t *nq,
			 uint32_t mask)
{
	uint32_t s, i, n = 0;

	for (s = 0; s < AT_SEQS; s++)
		for (i = 0; mask & (1u << s) && i < nq[s]; i += CUK_ATTN_TILE_ROWS, n++) {
			t[n].row = (int32_t)(first[s] + i);
			t[n].n = (int32_t)(nq[s] - i < CUK_ATTN_TILE_ROWS ? nq[s] - i :
					   CUK_ATTN_TILE_ROWS);
		}
	return n;
}

/*
 * K/V of 4 sequences (contexts 1, 40, 130, 700) written through scattered
 * block tables into a poisoned cache: exactly the written slots change, to
 * BF16(k), BF16(v). Then each sequence's last positions attend as a
 * prefill chunk's rows would (1, 23, 70 and 90 of them), every way of
 * at_mode[], against a float64 reference over the BF16 cache: 1e-2 per
 * head, norm-wise (the output is BF16; tiles also round q and the weights
 * to BF16). The output is poisoned before each way, and any read of an
 * unwritten slot would bring NaN (the second sequence's tile ends in a
 * half-filled key block in the stage no block had yet: keys past its
 * end must be zeros, not the poison of fresh shared memory). GQA groups
 * of 1, 4 and 8 take the grouped kernel, 16 the kernel of one query head
 * per block; a head that cannot be tiled is refused as tiles.
 */
static void attention_case(uint32_t n_head, uint32_t n_head_kv, uint32_t d)
{
	static const uint32_t ctx[AT_SEQS] = { 1, 40, 130, 700 };
	static const uint32_t qrows[AT_SEQS] = { 1, 23, 70, 90 };
	static const uint32_t splits[AT_MODES] = { 1, 3, 16, 1, 3 };
	const uint32_t kv_dim = n_head_kv * d, q_dim = n_head * d, ld = q_dim + 2 * kv_dim;
	const size_t cache_n = (size_t)AT_BLOCKS * 2 * AT_BS * kv_dim;
	uint32_t perm[AT_BLOCKS], bt_off[AT_SEQS], first[AT_SEQS], n_kv = 0, n_q = 0, s, i, j, h;
	int32_t bt[AT_BLOCKS], *slots, *row_pos, *row_bt, *list, *d_bt, *d_slots, *d_pos, *d_rbt;
	int32_t *d_list[2];
	uint16_t *cache, *d_cache, *out, *d_out;
	float *src, *q, *d_src, *d_q, *d_part, worst[AT_MODES] = { 0 };
	struct cuk_attn_tile tiles[AT_SEQS * 2], *d_tiles;
	uint32_t *kv_seq, *kv_p, n_list[2] = { 0 }, mode;
	const bool fit = cuk_attn_tiles_fit(d);
	size_t poisoned = 0;
	uint8_t *done;
	double *ref;

	for (i = 0; i < AT_BLOCKS; i++)
		perm[i] = i;
	for (i = AT_BLOCKS - 1; i > 0; i--) {
		uint32_t k = rnd_u(i + 1), tmp = perm[i];

		perm[i] = perm[k];
		perm[k] = tmp;
	}
	for (s = 0, j = 0; s < AT_SEQS; s++) {
		bt_off[s] = j;
		for (i = 0; i < (ctx[s] + AT_BS - 1) / AT_BS; i++, j++)
			bt[j] = perm[j];
		n_kv += ctx[s];
		first[s] = n_q;
		n_q += qrows[s];
	}
	/* Every position of every sequence: its k and v at columns q_dim, +kv_dim. */
	src = frand((size_t)n_kv * ld, -2, 2);
	slots = malloc(n_kv * 4);
	kv_seq = malloc(n_kv * 4);
	kv_p = malloc(n_kv * 4);
	for (s = 0, j = 0; s < AT_SEQS; s++)
		for (i = 0; i < ctx[s]; i++, j++) {
			slots[j] = bt[bt_off[s] + i / AT_BS] * AT_BS + i % AT_BS;
			kv_seq[j] = s;
			kv_p[j] = i;
		}
	d_cache = dmalloc(cache_n * 2);
	d_src = dup_to_dev(src, (size_t)n_kv * ld * 4);
	d_slots = dup_to_dev(slots, n_kv * 4);
	assert_int_equal(cuk_kv_store(0, d_cache, d_src, ld, q_dim, q_dim + kv_dim, d_slots, n_kv,
				      kv_dim, AT_BS), cudaSuccess);
	cache = malloc(cache_n * 2);
	from_dev(cache, d_cache, cache_n * 2);
	for (j = 0; j < n_kv; j++) {
		size_t k_at = ((size_t)(slots[j] / AT_BS) * 2 * AT_BS + slots[j] % AT_BS) * kv_dim;

		for (i = 0; i < kv_dim; i++) {
			assert_int_equal(cache[k_at + i], fp32_to_bf16(src[(size_t)j * ld + q_dim + i]));
			assert_int_equal(cache[k_at + (size_t)AT_BS * kv_dim + i],
					 fp32_to_bf16(src[(size_t)j * ld + q_dim + kv_dim + i]));
		}
	}
	for (i = 0; i < cache_n; i++)
		poisoned += cache[i] == 0xffff;
	assert_int_equal(poisoned, cache_n - (size_t)n_kv * 2 * kv_dim);

	/* Query rows: the last qrows[s] positions of each sequence, in order. */
	q = frand((size_t)n_q * ld, -2, 2);
	row_pos = malloc(n_q * 4);
	row_bt = malloc(n_q * 4);
	/* The rows taken one by one: list 0 (n_list[0]), then list 1. */
	list = malloc(2 * n_q * 4);
	done = malloc(n_q);
	for (s = 0, j = 0; s < AT_SEQS; s++)
		for (i = ctx[s] - qrows[s]; i < ctx[s]; i++, j++) {
			row_pos[j] = i;
			row_bt[j] = bt_off[s];
			if (i + AT_LISTED < ctx[s])
				continue;
			list[n_list[0]++] = j;
			if (s % 2 == 0)
				list[n_q + n_list[1]++] = j;
		}
	/* The reference: float64 over the BF16 values the cache holds. */
	ref = calloc((size_t)n_q * q_dim, sizeof(double));
	for (j = 0; j < n_q; j++) {
		uint32_t sq = 0, kv0 = 0;

		/* The row's sequence: the one whose positions it reads. */
		for (s = 0; s < AT_SEQS; s++)
			if (bt_off[s] == (uint32_t)row_bt[j])
				sq = s;
		for (i = 0; i < n_kv; i++)
			if (kv_seq[i] == sq && kv_p[i] == 0)
				kv0 = i;
		for (h = 0; h < n_head; h++) {
			uint32_t kvh = h / (n_head / n_head_kv), np = row_pos[j] + 1, p, e;
			double *sc = malloc(np * sizeof(double)), mx = -INFINITY, sum = 0;

			for (p = 0; p < np; p++) {
				const float *kr = src + (size_t)(kv0 + p) * ld + q_dim + kvh * d;
				double dot = 0;

				for (e = 0; e < d; e++)
					dot += (double)q[(size_t)j * ld + h * d + e] *
					       bf16_to_fp32(fp32_to_bf16(kr[e]));
				sc[p] = dot / sqrt((double)d);
				mx = fmax(mx, sc[p]);
			}
			for (p = 0; p < np; p++)
				sum += (sc[p] = exp(sc[p] - mx));
			for (p = 0; p < np; p++) {
				const float *vr = src + (size_t)(kv0 + p) * ld + q_dim + kv_dim +
						  kvh * d;

				for (e = 0; e < d; e++)
					ref[(size_t)j * q_dim + h * d + e] +=
						sc[p] / sum * bf16_to_fp32(fp32_to_bf16(vr[e]));
			}
			free(sc);
		}
	}

	d_q = dup_to_dev(q, (size_t)n_q * ld * 4);
	d_pos = dup_to_dev(row_pos, n_q * 4);
	d_rbt = dup_to_dev(row_bt, n_q * 4);
	d_bt = dup_to_dev(bt, sizeof(bt));
	d_list[0] = dup_to_dev(list, n_list[0] * 4);
	d_list[1] = dup_to_dev(list + n_q, n_list[1] * 4);
	d_tiles = dmalloc(sizeof(tiles));
	d_part = dmalloc((size_t)n_q * n_head * 16 * (d + 2) * 4);
	out = malloc((size_t)n_q * q_dim * 2);
	for (mode = 0; mode < AT_MODES; mode++) {
		struct cuk_attn a = {
			.q = d_q, .ldq = ld, .kv = d_cache, .row_pos = d_pos, .row_bt = d_rbt,
			.bt = d_bt, .part = d_part, .rows = d_list[0], .n_rows = n_list[0],
			.n_head = n_head,
			.n_head_kv = n_head_kv, .head_dim = d, .block_size = AT_BS,
			.scale = (float)(1.0 / sqrt((double)d)), .n_splits = splits[mode],
			.split_len = (700 + splits[mode] - 1) / splits[mode],
		};

		if (mode >= 3) {
			a.n_tiles = at_tiles(tiles, first, qrows, mode == 3 ? 0xf : 0xa);
			a.tiles = d_tiles;
			a.rows = d_list[1];
			a.n_rows = mode == 3 ? 0 : n_list[1];
			assert_int_equal(cudaMemcpy(d_tiles, tiles, sizeof(tiles),
						    cudaMemcpyHostToDevice), cudaSuccess);
		}
		/* The rows this way computes; the others stay poisoned, unchecked. */
		memset(done, 0, n_q);
		for (i = 0; i < a.n_rows; i++)
			done[mode < 3 ? list[i] : list[n_q + i]] = 1;
		for (i = 0; i < a.n_tiles; i++)
			memset(done + tiles[i].row, 1, tiles[i].n);
		if (mode >= 3 && !fit) {
			assert_int_equal(cuk_attention(0, &a), cudaErrorInvalidValue);
			continue;
		}
		d_out = dmalloc((size_t)n_q * q_dim * 2);
		a.out = d_out;
		assert_int_equal(cuk_attention(0, &a), cudaSuccess);
		from_dev(out, d_out, (size_t)n_q * q_dim * 2);
		for (j = 0; j < n_q; j++)
			for (h = 0; done[j] && h < n_head; h++) {
				double num = 0, den = 0, e2;
				uint32_t e;

				for (e = 0; e < d; e++) {
					double r = ref[(size_t)j * q_dim + h * d + e];
					double g = bf16_to_fp32(out[(size_t)j * q_dim + h * d + e]);

					num += (g - r) * (g - r);
					den += r * r;
				}
				e2 = sqrt(num / den);
				if (!(e2 < 1e-2))
					fail_msg("attention d %u, %s, row %u (pos %d) head %u: "
						 "relative error %g", d, at_mode[mode], j, row_pos[j],
						 h, e2);
				if (e2 > worst[mode])
					worst[mode] = e2;
			}
		cudaFree(d_out);
	}
	if (fit)
		print_message("[          ] attention %u/%u heads of %u: worst head error %.2g (one "
			      "pass), %.2g (3 splits), %.2g (16 splits), %.2g (tiles), %.2g (tiles "
			      "and rows); limit 1e-2\n", n_head, n_head_kv, d, worst[0], worst[1],
			      worst[2], worst[3], worst[4]);
	else
		print_message("[          ] attention %u/%u heads of %u: worst head error %.2g (one "
			      "pass), %.2g (3 splits), %.2g (16 splits); as tiles refused; limit "
			      "1e-2\n", n_head, n_head_kv, d, worst[0], worst[1], worst[2]);
	cudaFree(d_cache);
	cudaFree(d_src);
	cudaFree(d_slots);
	cudaFree(d_q);
	cudaFree(d_pos);
	cudaFree(d_rbt);
	cudaFree(d_bt);
	cudaFree(d_list[0]);
	cudaFree(d_list[1]);
	cudaFree(d_tiles);
	cudaFree(d_part);
	free(src);
	free(slots);
	free(kv_seq);
	free(kv_p);
	free(cache);
	free(q);
	free(row_pos);
	free(row_bt);
	free(list);
	free(done);
	free(ref);
	free(out);
}

static void test_attention(void **state)
{
	(void)state;
	NEED_GPU();
	attention_case(8, 2, 64);
	attention_case(4, 4, 80);	/* not a multiple of 32; no GQA */
	attention_case(8, 1, 128);
	attention_case(16, 1, 64);	/* a group too large for one block */
	attention_case(4, 2, 40);	/* a head tiles cannot take */
}

/* ---- whole steps: the CUDA backend beside the CPU backend ---- */

#define N_BLOCKS	128

struct pair {
	struct model	m;
	struct backend	*cpu, *gpu;
};

static void pair_load(struct pair *p, const char *preset, const char *dtype)
{
	struct backend_params bp = { .n_threads = 2, .max_tokens = 256, .max_context = 512 };
	struct backend_cuda_params cp = { .n_blocks = N_BLOCKS };
	char path[1200], err[256];

	model_path(preset, dtype, path, sizeof(path));
	if (model_load(&p->m, path))
		fail_msg("%s: %s", path, p->m.err);
	bp.kv_bytes = N_BLOCKS * backend_kv_block_bytes(&p->m, 16, BACKEND_KV_AUTO);
	p->cpu = backend_cpu_create(&p->m, &bp, err, sizeof(err));
	if (!p->cpu)
		fail_msg("cpu backend: %s", err);
	p->gpu = backend_cuda_create(&p->m, &bp, &cp, err, sizeof(err));
	if (!p->gpu)
		fail_msg("cuda backend: %s", err);
	assert_int_equal(p->gpu->n_blocks, N_BLOCKS);
	assert_int_equal(p->gpu->kv_dtype, BACKEND_KV_BF16);
	/* Its cache is BF16 only: another type is refused, with the reason. */
	bp.kv_dtype = BACKEND_KV_F16;
	assert_null(backend_cuda_create(&p->m, &bp, &cp, err, sizeof(err)));
	assert_non_null(strstr(err, "the CUDA backend keeps bf16"));
	assert_int_equal(p->gpu->n_vocab, p->cpu->n_vocab);
}

static void pair_free(struct pair *p)
{
	backend_destroy(p->cpu);
	backend_destroy(p->gpu);
	model_free(&p->m);
}

static double rel_err(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return den ? sqrt(num / den) : sqrt(num);
}

static void tokens_fill(uint32_t *t, size_t n, uint32_t n_vocab)
{
	size_t i;

	for (i = 0; i < n; i++)
		t[i] = 3 + rnd_u(n_vocab - 3);
}

#define FW_PROMPT	64
#define FW_DECODE	16

/*
 * A 64-token prompt in one step, then 16 decode steps on the CPU's greedy
 * tokens, through scattered blocks: the logits of every position beside the
 * CPU backend's, 5e-2 norm-wise over all of them; how often the greedy
 * token agrees is printed.
 */
static void forward_case(const char *preset, const char *dtype)
{
	uint32_t tok[FW_PROMPT + FW_DECODE], table[8] = { 17, 3, 90, 44, 5, 127, 64, 0 }, i;
	uint32_t agree = 0, n = FW_PROMPT + FW_DECODE;
	float *lc, *lg;
	struct pair p;
	double e;
	size_t v;

	pair_load(&p, preset, dtype);
	v = p.cpu->n_vocab;
	lc = malloc(n * v * 4);
	lg = malloc(n * v * 4);
	for (i = 0; i < n * v; i++)
		lg[i] = NAN;
	tokens_fill(tok, FW_PROMPT, v);
	for (i = 0; i < n;) {
		struct backend_seq s = {
			.block_table = table, .n_blocks = 8, .pos = i, .tokens = tok + i,
			.n_tokens = i ? 1 : FW_PROMPT, .logits = BACKEND_LOGITS_ALL,
		};

		assert_int_equal(backend_step(p.cpu, &s, 1, lc + i * v), 0);
		assert_int_equal(backend_step(p.gpu, &s, 1, lg + i * v), 0);
		i += s.n_tokens;
		if (i < n)
			tok[i] = argmax(lc + (i - 1) * v, v);
	}
	for (i = 0; i < n; i++)
		agree += argmax(lc + i * v, v) == argmax(lg + i * v, v);
	e = rel_err(lg, lc, n * v);
	print_message("[          ] %s %s: CUDA vs CPU logits relative error %.3g (limit 5e-2), "
		      "greedy token agrees at %u of %u positions\n", preset, dtype, e, agree, n);
	assert_true(e < 5e-2);
	free(lc);
	free(lg);
	pair_free(&p);
}

#define LONG_PROMPT	300
#define LONG_DECODE	4

/*
 * Past CUDA_ATTN_MIN_SPLIT (256) positions a lone decode row is split
 * (split-K and the merge, planned by the backend): a 300-token prompt in
 * chunks of 256 and 44, then 4 decodes, beside the CPU backend, 5e-2.
 */
static void long_case(const char *preset, const char *dtype)
{
	uint32_t tok[LONG_PROMPT + LONG_DECODE], table[20], i, n = LONG_PROMPT + LONG_DECODE;
	float *lc, *lg;
	struct pair p;
	double e;
	size_t v;

	pair_load(&p, preset, dtype);
	v = p.cpu->n_vocab;
	for (i = 0; i < 20; i++)
		table[i] = 100 - 5 * i;
	lc = malloc(n * v * 4);
	lg = malloc(n * v * 4);
	tokens_fill(tok, n, v);
	for (i = 0; i < n;) {
		struct backend_seq s = {
			.block_table = table, .n_blocks = 20, .pos = i, .tokens = tok + i,
			.n_tokens = i < LONG_PROMPT ? (i ? LONG_PROMPT - 256 : 256) : 1,
			.logits = BACKEND_LOGITS_ALL,
		};

		assert_int_equal(backend_step(p.cpu, &s, 1, lc + (size_t)i * v), 0);
		assert_int_equal(backend_step(p.gpu, &s, 1, lg + (size_t)i * v), 0);
		i += s.n_tokens;
	}
	e = rel_err(lg + (size_t)LONG_PROMPT * v, lc + (size_t)LONG_PROMPT * v, LONG_DECODE * v);
	print_message("[          ] %s %s, decodes at %u positions (split-K): relative error "
		      "%.3g (limit 5e-2)\n", preset, dtype, LONG_PROMPT, e);
	assert_true(e < 5e-2);
	assert_true(rel_err(lg, lc, (size_t)n * v) < 5e-2);
	free(lc);
	free(lg);
	pair_free(&p);
}

/*
 * Prefill attention as tiles (cuk_attn_tile, tensor cores) beside the same
 * steps with every row taken one by one: a 300-token prompt of tiny in
 * chunks of 256, 30 and 14 (four full tiles, one of 30 rows, 14 rows one
 * by one) and 4 decodes, every row's logits within 1e-2 norm-wise (tiles
 * round q and the softmax weights to BF16); the tiled backend counts its
 * tiles, the other none.
 */
static void test_tiles(void **state)
{
	static const uint32_t chunk[] = { 256, 30, 14, 1, 1, 1, 1 };
	struct backend_params bp = { .n_threads = 2, .max_tokens = 256, .max_context = 512 };
	struct backend_cuda_params cp = { .n_blocks = N_BLOCKS, .untiled = true };
	uint32_t tok[LONG_PROMPT + LONG_DECODE], table[20], i, k, n = LONG_PROMPT + LONG_DECODE;
	struct backend *flat;
	float *lt, *lf;
	char err[256];
	struct pair p;
	double e;
	size_t v;

	(void)state;
	NEED_GPU();
	pair_load(&p, "tiny", "F16");
	bp.kv_bytes = N_BLOCKS * backend_kv_block_bytes(&p.m, 16, BACKEND_KV_AUTO);
	flat = backend_cuda_create(&p.m, &bp, &cp, err, sizeof(err));
	if (!flat)
		fail_msg("cuda backend, untiled: %s", err);
	v = p.gpu->n_vocab;
	for (i = 0; i < 20; i++)
		table[i] = 3 * i + 1;
	lt = malloc(n * v * 4);
	lf = malloc(n * v * 4);
	tokens_fill(tok, n, v);
	for (i = 0, k = 0; i < n; i += chunk[k++]) {
		struct backend_seq s = {
			.block_table = table, .n_blocks = 20, .pos = i, .tokens = tok + i,
			.n_tokens = chunk[k], .logits = BACKEND_LOGITS_ALL,
		};

		assert_int_equal(backend_step(p.gpu, &s, 1, lt + (size_t)i * v), 0);
		assert_int_equal(backend_step(flat, &s, 1, lf + (size_t)i * v), 0);
	}
	assert_int_equal(i, n);
	/* 5 tiles a layer: 256 rows in 4, 30 in one. */
	assert_int_equal(p.gpu->attn_tiles, 5);
	assert_int_equal(flat->attn_tiles, 0);
	e = rel_err(lt, lf, (size_t)n * v);
	print_message("[          ] tiny F16, %u positions: tiled attention against untiled, "
		      "relative error %.3g (limit 1e-2)\n", n, e);
	assert_true(e < 1e-2);
	free(lt);
	free(lf);
	backend_destroy(flat);
	pair_free(&p);
}

#define Q_SEQS		5
#define Q_PROMPT	64

/* One step of @n of the sequences @s, on each of @nb backends, into @out[i]. */
static void q_step(struct backend **b, int nb, const struct backend_seq *s, uint32_t n,
		   float **out, size_t at)
{
	int i;

	for (i = 0; i < nb; i++)
		assert_int_equal(backend_step(b[i], s, n, out[i] + at), 0);
}

/*
 * Quantised weights kept as they are (the default) beside the same model
 * widened to BF16 at load (bf16_weights): the weights take the GGUF
 * blocks' bytes, block bytes / (2 x block weights) of BF16's (17/32 for
 * Q8_0, 9/32 for Q4_0 and Q4_K); for a mix (@type 0: Q4_K_M), the file's
 * bytes of every matrix, its QKV stack of Q4_K and Q6_K kept as two
 * matrices. A 64-token prompt (widened in slices),
 * a prompt of 9 tokens (the product in two passes, 8 rows and 1), prompts
 * of 10 to 12 tokens for 3 more sequences in one step (widened), then
 * decodes of 1 sequence and of all 5 (the product, from CUDA graphs):
 * logits within 2e-2 norm-wise of the BF16
 * backend's (whose weights are each rounded by up to 2^-9, the kept ones
 * exact: 5e-3 to 9e-3 apart through tiny's 9 matrices). A third
 * backend widens 4 KiB at a time (slices of 2 or 8 rows, the LM head's last
 * one short): the prompts' logits within 1e-5 of the default's.
 */
static void quant_weights_case(const char *dtype, uint32_t type)
{
	struct backend_params bp = { .n_threads = 2, .max_tokens = 256, .max_context = 512 };
	struct backend_cuda_params cp = { .n_blocks = N_BLOCKS }, cb = cp, cs = cp;
	uint32_t tok[Q_SEQS][Q_PROMPT + 8], table[Q_SEQS][8], len[Q_SEQS], i, j, st;
	struct backend_seq s[Q_SEQS];
	struct backend *b[3];
	float *out[3];
	double e, ep, ed = 0;
	char path[1200], err[256];
	struct model m;
	size_t v, at, last[Q_SEQS];

	cb.bf16_weights = true;
	cs.widen_slice_bytes = 4096;
	model_path("tiny", dtype, path, sizeof(path));
	if (model_load(&m, path))
		fail_msg("%s: %s", path, m.err);
	bp.kv_bytes = N_BLOCKS * backend_kv_block_bytes(&m, 16, BACKEND_KV_AUTO);
	b[0] = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	b[1] = backend_cuda_create(&m, &bp, &cb, err, sizeof(err));
	b[2] = backend_cuda_create(&m, &bp, &cs, err, sizeof(err));
	if (!b[0] || !b[1] || !b[2])
		fail_msg("cuda backend: %s", err);
	if (type) {
		assert_true(b[0]->weight_bytes * 2 * dtype_info(type)->block ==
			    b[1]->weight_bytes * dtype_info(type)->size);
	} else {
		/* a mix: every matrix kept, a QKV stack of two types as two */
		size_t bytes = 0;

		for (i = 0; i < m.gguf.n_tensors; i++)
			if (m.gguf.tensors[i].n_dims == 2)
				bytes += m.gguf.tensors[i].size;
		assert_int_equal(b[0]->weight_bytes, bytes);
	}
	assert_true(b[2]->weight_bytes == b[0]->weight_bytes);
	v = b[0]->n_vocab;
	for (i = 0; i < 3; i++)
		out[i] = malloc((Q_PROMPT + 4 * Q_SEQS) * v * sizeof(float));
	for (i = 0; i < Q_SEQS; i++) {
		len[i] = i ? 8 + i : Q_PROMPT;
		tokens_fill(tok[i], len[i], v);
		for (j = 0; j < 8; j++)
			table[i][j] = (j * Q_SEQS + i) * 3 % N_BLOCKS;
		s[i] = (struct backend_seq){
			.block_table = table[i], .n_blocks = 8, .tokens = tok[i],
			.n_tokens = len[i], .logits = i ? BACKEND_LOGITS_LAST : BACKEND_LOGITS_ALL,
		};
	}
	/* The prompts: 64 rows of logits, then one for each of the other 4. */
	q_step(b, 3, s, 1, out, 0);
	q_step(b, 3, s + 1, 1, out, Q_PROMPT * v);
	q_step(b, 3, s + 2, Q_SEQS - 2, out, (Q_PROMPT + 1) * v);
	at = (Q_PROMPT + Q_SEQS - 1) * v;
	ep = rel_err(out[0], out[1], at);
	assert_true(ep < 2e-2);
	assert_true(rel_err(out[2], out[0], at) < 1e-5);
	/* Decodes: sequence 0 alone twice, then all five twice; greedy on the BF16 one. */
	last[0] = (Q_PROMPT - 1) * v;
	for (i = 1; i < Q_SEQS; i++)
		last[i] = (Q_PROMPT + i - 1) * v;
	for (st = 0; st < 4; st++) {
		uint32_t n = st < 2 ? 1 : Q_SEQS;

		for (i = 0; i < n; i++) {
			tok[i][len[i]] = argmax(out[1] + last[i], v);
			s[i].pos = len[i];
			s[i].tokens = tok[i] + len[i];
			s[i].n_tokens = 1;
			s[i].logits = BACKEND_LOGITS_LAST;
			last[i] = at + i * v;
			len[i]++;
		}
		q_step(b, 2, s, n, out, at);
		e = rel_err(out[0] + at, out[1] + at, n * v);
		ed = e > ed ? e : ed;
		at += n * v;
	}
	print_message("[          ] tiny %s: weights %zu bytes kept, %zu as BF16; logits against "
		      "BF16's: prompts %.3g, decodes %.3g (limit 2e-2), %u from graphs\n", dtype,
		      b[0]->weight_bytes, b[1]->weight_bytes, ep, ed,
		      (unsigned int)b[0]->graph_steps);
	assert_true(ed < 2e-2);
	assert_true(b[0]->graph_steps > 0);
	for (i = 0; i < 3; i++) {
		backend_destroy(b[i]);
		free(out[i]);
	}
	model_free(&m);
}

static void test_quant_weights(void **state)
{
	(void)state;
	NEED_GPU();
	quant_weights_case("Q8_0", CUK_Q8_0);
	quant_weights_case("Q4_0", CUK_Q4_0);
	quant_weights_case("Q4_K", CUK_Q4_K);
	quant_weights_case("Q5_K", CUK_Q5_K);
	quant_weights_case("Q6_K", CUK_Q6_K);
	quant_weights_case("Q4_K_M", 0);
}

static void test_forward(void **state)
{
	(void)state;
	NEED_GPU();
	long_case("tiny", "F16");
	forward_case("tiny", "F32");
	forward_case("tiny", "Q8_0");
	forward_case("tiny", "Q4_0");
	forward_case("tiny", "Q4_K");
	forward_case("tiny", "Q6_K");
	forward_case("tiny", "Q4_K_M");
	forward_case("tiny-qwen2", "Q5_K");
	forward_case("tiny-qwen2", "Q5_0");
	forward_case("tiny-qwen2", "Q8_0");
	forward_case("tiny-qwen2", "BF16");
	forward_case("tiny-qwen2", "F16");
}

#define NSEQ	8
#define EXTRA	3

/*
 * Serving's "batched equals alone" on the GPU: 8 sequences of different
 * lengths advance together in chunks of 1, 7, 64 and 3 tokens with
 * interleaved block tables, and each gets the logits it gets alone. Not
 * bit-identical: cuBLAS may choose another kernel for another row count,
 * and split-K attention depends on the step's shape, so sums are ordered
 * differently; 1e-2 norm-wise (BF16 activations), the worst printed.
 */
static void batch_case(const char *preset, const char *dtype)
{
	static const uint32_t len[NSEQ] = { 1, 5, 16, 17, 33, 40, 64, 3 };
	static const uint32_t chunks[] = { 1, 7, 64, 3, 1 };
	uint32_t *tok[NSEQ], table[NSEQ][8], done[NSEQ] = { 0 }, i, j, step;
	float *alone[NSEQ], *together[NSEQ], *out;
	struct backend_seq s[NSEQ];
	struct backend *b;
	struct pair p;
	double worst = 0;
	bool exact = true;
	size_t v;

	pair_load(&p, preset, dtype);
	b = p.gpu;
	v = b->n_vocab;
	out = malloc(256 * v * sizeof(float));
	for (i = 0; i < NSEQ; i++) {
		uint32_t n = len[i] + EXTRA;

		tok[i] = malloc(n * sizeof(uint32_t));
		tokens_fill(tok[i], n, v);
		alone[i] = malloc(n * v * sizeof(float));
		together[i] = malloc(n * v * sizeof(float));
		/* Alone: contiguous blocks 0.., the prompt at once, then decodes. */
		for (j = 0; j < 8; j++)
			table[i][j] = j;
		for (j = 0; j < n; j = j ? j + 1 : len[i]) {
			struct backend_seq d = {
				.block_table = table[i], .n_blocks = 8, .pos = j, .tokens = &tok[i][j],
				.n_tokens = j ? 1 : len[i], .logits = BACKEND_LOGITS_ALL,
			};

			assert_int_equal(backend_step(b, &d, 1, alone[i] + (size_t)j * v), 0);
		}
		for (j = 0; j < 8; j++)
			table[i][j] = N_BLOCKS - 1 - (j * NSEQ + (i * 3) % NSEQ);
	}
	for (step = 0;; step++) {
		uint32_t n = 0, o = 0;

		for (i = 0; i < NSEQ; i++) {
			uint32_t left = len[i] + EXTRA - done[i], c = chunks[(i + step) % 5];

			if (!left)
				continue;
			s[n++] = (struct backend_seq){
				.block_table = table[i], .n_blocks = 8, .pos = done[i],
				.tokens = tok[i] + done[i], .n_tokens = c < left ? c : left,
				.logits = BACKEND_LOGITS_ALL,
			};
		}
		if (!n)
			break;
		assert_int_equal(backend_step(b, s, n, out), 0);
		for (i = 0, j = 0; i < NSEQ; i++) {
			if (done[i] == len[i] + EXTRA)
				continue;
			memcpy(together[i] + (size_t)done[i] * v, out + (size_t)o * v,
			       s[j].n_tokens * v * sizeof(float));
			o += s[j].n_tokens;
			done[i] += s[j].n_tokens;
			j++;
		}
	}
	for (i = 0; i < NSEQ; i++) {
		size_t n = (size_t)(len[i] + EXTRA) * v;
		double e = rel_err(together[i], alone[i], n);

		if (memcmp(together[i], alone[i], n * sizeof(float)))
			exact = false;
		worst = e > worst ? e : worst;
		free(tok[i]);
		free(alone[i]);
		free(together[i]);
	}
	print_message("[          ] %s %s, CUDA backend: %u steps, worst relative difference %.3g "
		      "(limit 1e-2)%s\n", preset, dtype, step, worst,
		      exact ? " (bit-identical)" : "");
	assert_true(worst < 1e-2);
	free(out);
	pair_free(&p);
}

static void test_batch(void **state)
{
	(void)state;
	NEED_GPU();
	batch_case("tiny", "F16");
	batch_case("tiny-qwen2", "BF16");
}

/* Bad steps: the CPU backend's errors, before any work; then a good step. */
#define GR_SEQS		8
#define GR_PROMPT	24

/*
 * Decode steps replayed from CUDA graphs beside the same steps launched one
 * by one (enforce_eager): 8 sequences with prompts of 24 tokens, one of
 * them from the cache's last block (beside the pads' spare one), then decode steps of 1, 3, 5, 8, 2,
 * 8 and 6 sequences (padded to 1, 4, 8, 8, 2, 8, 8 rows), the graphs'
 * attention split for a context of 512 (its second split empty); every row of
 * logits within 1e-2 of the eager one; a graph per batch size, captured
 * once and replayed after; the greedy draw in the graph the eager logits'
 * argmax (or within their tolerance of it) with its log-probability, its
 * row left unwritten. Steps
 * with prefill chunks run eagerly.
 */
static void test_graph(void **state)
{
	static const uint32_t batch[] = { 1, 3, 5, 8, 2, 8, 6 };
	struct backend_params bp = { .max_tokens = 64, .max_context = 512 };
	struct backend_cuda_params cp = { .n_blocks = N_BLOCKS }, ce = cp;
	uint32_t tok[GR_SEQS][GR_PROMPT + 8], table[GR_SEQS][16], pos[GR_SEQS], i, j, st;
	struct backend_sample bs[GR_SEQS];
	struct backend_seq s[GR_SEQS];
	struct backend *g, *e;
	float *lg, *le;
	double worst = 0;
	struct model m;
	char path[1200], err[256];
	size_t v;

	(void)state;
	NEED_GPU();
	model_path("tiny", "BF16", path, sizeof(path));
	if (model_load(&m, path))
		fail_msg("%s: %s", path, m.err);
	ce.enforce_eager = true;
	g = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	e = g ? backend_cuda_create(&m, &bp, &ce, err, sizeof(err)) : NULL;
	if (!g || !e)
		fail_msg("cuda backend: %s", err);
	v = g->n_vocab;
	lg = malloc(GR_SEQS * v * 4);
	le = malloc(GR_SEQS * v * 4);
	/* Sequence 0's first block is the last of the cache: a pad there shows. */
	for (i = 0; i < GR_SEQS; i++) {
		tokens_fill(tok[i], GR_PROMPT + 8, v);
		for (j = 0; j < 16; j++)
			table[i][j] = N_BLOCKS - 1 - i - GR_SEQS * j;
		s[i] = (struct backend_seq){
			.block_table = table[i], .n_blocks = 16, .tokens = tok[i],
			.n_tokens = GR_PROMPT / 8, .logits = BACKEND_LOGITS_LAST,
		};
		pos[i] = 0;
	}
	assert_int_equal(table[0][0], N_BLOCKS - 1);
	/* The prompts, 8 chunks each, all sequences per step: eager in both. */
	for (st = 0; st < 8; st++) {
		for (i = 0; i < GR_SEQS; i++) {
			s[i].pos = pos[i];
			s[i].tokens = tok[i] + pos[i];
			s[i].n_tokens = st < 7 ? GR_PROMPT / 8 : GR_PROMPT - 7 * (GR_PROMPT / 8);
			pos[i] += s[i].n_tokens;
		}
		assert_int_equal(backend_step(g, s, GR_SEQS, lg), 0);
		assert_int_equal(backend_step(e, s, GR_SEQS, le), 0);
	}
	assert_int_equal(g->graph_steps, 0);
	for (st = 0; st < sizeof(batch) / sizeof(batch[0]); st++) {
		uint32_t n = batch[st], first = st % 3;

		for (i = 0; i < n; i++) {
			uint32_t q = (first + i * 5) % GR_SEQS;

			s[i] = (struct backend_seq){
				.block_table = table[q], .n_blocks = 16, .pos = pos[q],
				.tokens = tok[q] + pos[q], .n_tokens = 1,
				.logits = BACKEND_LOGITS_LAST,
			};
			pos[q]++;
		}
		assert_int_equal(backend_step(e, s, n, le), 0);
		/* Half the graph's rows drawn greedily on the device, others each step. */
		for (i = st % 2; i < n; i += 2) {
			bs[i] = (struct backend_sample){ .set = { .top_p = 1.0f } };
			s[i].sample = &bs[i];
		}
		for (i = 0; i < n * v; i++)
			lg[i] = NAN;
		assert_int_equal(backend_step(g, s, n, lg), 0);
		for (i = 0; i < n; i++) {
			if (s[i].sample) {
				float best = le[i * v + argmax(le + i * v, v)];

				/* The argmax, or one within the logits' tolerance of it. */
				double lp;

				assert_true(bs[i].token < v);
				assert_true(le[i * v + bs[i].token] >= best - 1e-2f * (fabsf(best) + 1));
				assert_true(isnan(lg[i * v]));
				lp = le[i * v + bs[i].token] - testenv_lse(le + i * v, v);
				worst = fmax(worst, fabs(bs[i].logprob - lp) / fmax(1, fabs(lp)));
				continue;
			}
			worst = fmax(worst, rel_err(lg + i * v, le + i * v, v));
		}
		assert_int_equal(g->graph_steps, st + 1);
	}
	/* Sizes 1, 4, 8 and 2: four graphs, each captured once. */
	assert_int_equal(g->graphs, 4);
	assert_int_equal(e->graphs, 0);
	assert_int_equal(e->graph_steps, 0);
	print_message("[          ] %u decode steps from %u CUDA graphs: worst relative difference "
		      "%.3g from eager launches (limit 1e-2)\n", (unsigned int)g->graph_steps, g->graphs, worst);
	assert_true(worst < 1e-2);
	free(lg);
	free(le);
	backend_destroy(g);
	backend_destroy(e);
	model_free(&m);
}

#define RA_SEQS		6
#define RA_STEPS	10
#define RA_PROMPT	8

/* A penalty list as a sampler keeps it, of @prompt and the first @n_out of @out. */
static uint32_t pen_list(struct sampler_pen *l, const uint32_t *prompt, const uint32_t *out,
			 uint32_t n_out)
{
	uint32_t i, j, n = 0;

	for (i = 0; i < RA_PROMPT + n_out; i++) {
		uint32_t tok = i < RA_PROMPT ? prompt[i] : out[i - RA_PROMPT];

		for (j = 0; j < n && l[j].id != tok; j++)
			;
		if (j == n)
			l[n++] = (struct sampler_pen){ .id = tok };
		l[j].n += i < RA_PROMPT ? (l[j].n | SAMPLER_PEN_PROMPT) - l[j].n : 1;
	}
	return n;
}

static void ra_penalise(struct sampler_draw *d, const struct sampler_pen *l, uint32_t n)
{
	d->rep = 1.3f;
	d->pres = 0.4f;
	d->freq = 0.3f;
	d->pen = l;
	d->n_pen = n;
}

/*
 * Run-ahead (backend_submit() / backend_wait()): six sequences decode ten
 * steps with step k + 1 submitted before step k is waited for, each decode
 * fed the token step k drew on the device (&backend_seq.feed), beside the
 * same steps one at a time with the host passing each drawn token back.
 * Greedy and seeded top-k draws, two of them with penalties (the host's
 * list a token short while it runs ahead: the fed one counts on the
 * device), give the same tokens and log-probabilities both ways. A feed
 * naming no sequence or not a decode, a third step out, a wait with none
 * out and a backend_step() with one out are refused.
 */
static void test_run_ahead(void **state)
{
	struct backend_params bp = { .max_tokens = 64, .max_context = 256 };
	struct backend_cuda_params cp = { .n_blocks = N_BLOCKS };
	uint32_t prompt[RA_SEQS][RA_PROMPT], table[RA_SEQS][4], tok[RA_SEQS][RA_STEPS + 1];
	uint32_t pend = UINT32_MAX, i, k;
	struct sampler_pen pl[2][RA_SEQS][RA_PROMPT + RA_STEPS + 1];
	struct backend_sample bs[2][RA_SEQS], ss[RA_SEQS];
	struct backend_seq sq[2][RA_SEQS], one[RA_SEQS];
	float lp[RA_SEQS][RA_STEPS + 1], u[RA_STEPS + 1][RA_SEQS];
	struct backend *a, *b;
	float *out;
	struct model m;
	char path[1200], err[256];

	(void)state;
	NEED_GPU();
	model_path("tiny", "BF16", path, sizeof(path));
	if (model_load(&m, path))
		fail_msg("%s: %s", path, m.err);
	a = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	b = a ? backend_cuda_create(&m, &bp, &cp, err, sizeof(err)) : NULL;
	if (!a || !b)
		fail_msg("cuda backend: %s", err);
	assert_non_null(a->ops->submit);
	out = malloc(2 * RA_SEQS * a->n_vocab * sizeof(float));
	assert_non_null(out);
	for (k = 0; k <= RA_STEPS; k++)
		for (i = 0; i < RA_SEQS; i++)
			u[k][i] = rnd(0, 1);
	for (i = 0; i < RA_SEQS; i++) {
		tokens_fill(prompt[i], RA_PROMPT, a->n_vocab);
		for (k = 0; k < 4; k++)
			table[i][k] = 4 * i + k;
	}
	/* The reference: one step at a time, the host passing each token on. */
	for (k = 0; k <= RA_STEPS; k++) {
		for (i = 0; i < RA_SEQS; i++) {
			ss[i] = (struct backend_sample){ .set = {
				.temperature = i % 2 ? 0.9f : 0.0f, .top_k = i % 2 ? 20 : 0,
				.top_p = 1.0f, .u = i % 2 ? u[k][i] : 0.0f } };
			/* The host knows every token so far. */
			if (i >= 4)
				ra_penalise(&ss[i].set, pl[0][i],
					    pen_list(pl[0][i], prompt[i], tok[i], k));
			one[i] = (struct backend_seq){
				.block_table = table[i], .n_blocks = 4, .pos = k ? 7 + k : 0,
				.tokens = k ? &tok[i][k - 1] : prompt[i],
				.n_tokens = k ? 1 : RA_PROMPT,
				.logits = BACKEND_LOGITS_LAST, .sample = &ss[i],
			};
		}
		assert_int_equal(backend_step(b, one, RA_SEQS, out), 0);
		for (i = 0; i < RA_SEQS; i++) {
			assert_true(ss[i].token < b->n_vocab);
			tok[i][k] = ss[i].token;
			lp[i][k] = ss[i].logprob;
		}
	}
	/* Run-ahead: step k + 1 goes out before step k is waited for. */
	assert_int_equal(backend_wait(a), -EINVAL);
	for (k = 0; k <= RA_STEPS + 1; k++) {
		struct backend_seq *s = sq[k % 2];
		float *o = out + (size_t)(k % 2) * RA_SEQS * a->n_vocab;

		if (k <= RA_STEPS) {
			for (i = 0; i < RA_SEQS; i++) {
				bs[k % 2][i] = (struct backend_sample){ .set = {
					.temperature = i % 2 ? 0.9f : 0.0f,
					.top_k = i % 2 ? 20 : 0, .top_p = 1.0f,
					.u = i % 2 ? u[k][i] : 0.0f } };
				/* All but the token of the step still out, fed. */
				if (i >= 4)
					ra_penalise(&bs[k % 2][i].set, pl[k % 2][i],
						    pen_list(pl[k % 2][i], prompt[i], tok[i],
							     k ? k - 1 : 0));
				s[i] = (struct backend_seq){
					.block_table = table[i], .n_blocks = 4, .pos = k ? 7 + k : 0,
					.tokens = k ? &pend : prompt[i],
					.n_tokens = k ? 1 : RA_PROMPT,
					.logits = BACKEND_LOGITS_LAST, .sample = &bs[k % 2][i],
					.feed = k ? i + 1 : 0,
				};
			}
			assert_int_equal(backend_submit(a, s, RA_SEQS, o), 0);
			if (k == 3) {
				/* Two out: no third, no step. */
				assert_int_equal(backend_submit(a, s, RA_SEQS, o), -EBUSY);
				assert_int_equal(backend_step(a, s, RA_SEQS, out), -EBUSY);
			}
		}
		if (!k)
			continue;
		assert_int_equal(backend_wait(a), 0);
		for (i = 0; i < RA_SEQS; i++) {
			const struct backend_sample *d = &bs[(k - 1) % 2][i];

			if (d->token != tok[i][k - 1] || d->logprob != lp[i][k - 1])
				fail_msg("sequence %u, step %u: token %u (%g), one at a time %u "
					 "(%g)", i, k - 1, d->token, d->logprob, tok[i][k - 1],
					 lp[i][k - 1]);
		}
	}
	assert_int_equal(backend_wait(a), -EINVAL);
	/* A feed naming no sequence of the step before, or not a decode. */
	for (i = 0; i < RA_SEQS; i++)
		sq[0][i] = (struct backend_seq){
			.block_table = table[i], .n_blocks = 4, .pos = 19, .tokens = &pend,
			.n_tokens = 1, .logits = BACKEND_LOGITS_LAST, .feed = i + 1,
		};
	sq[0][0].feed = RA_SEQS + 1;
	assert_int_equal(backend_submit(a, sq[0], 1, out), -EINVAL);
	sq[0][0].feed = 1;
	sq[0][0].n_tokens = 2;
	assert_int_equal(backend_submit(a, sq[0], 1, out), -EINVAL);
	free(out);
	backend_destroy(a);
	backend_destroy(b);
	model_free(&m);
}

/* The penalty cases of bad_draws(); @t draws into @bs. */
static void pen_bad(struct backend *gpu, const struct backend_seq *t, struct backend_sample *bs,
		    float *out)
{
	static const struct sampler_pen list[3] = { { 1, 0 }, { 2, 3 }, { 3, SAMPLER_PEN_PROMPT } };
	const struct backend_sample ok = {
		.set = { .temperature = 0.7f, .top_p = 1.0f, .u = 0.5f, .rep = 1.2f,
			 .pen = list, .n_pen = 3 },
	};
	struct sampler_pen far[3];
	uint32_t room = gpu->pen_room;

	*bs = ok;
	assert_int_equal(backend_step(gpu, t, 1, out), 0);
	bs->set.rep = 0.0f;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	bs->set.rep = NAN;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	*bs = ok;
	bs->set.pres = INFINITY;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	*bs = ok;
	memcpy(far, list, sizeof(far));
	far[2].id = gpu->n_vocab;
	bs->set.pen = far;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	*bs = ok;
	bs->set.n_pen = gpu->n_vocab + 1;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	/* A token listed twice, in a short list and in a long one. */
	*bs = ok;
	memcpy(far, list, sizeof(far));
	far[2].id = far[0].id;
	bs->set.pen = far;
	assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
	{
		struct sampler_pen *lng = calloc(100, sizeof(*lng));
		uint32_t i;

		assert_non_null(lng);
		assert_true(gpu->n_vocab >= 100);
		for (i = 0; i < 100; i++)
			lng[i].id = (i * 37) % 100;	/* 100 distinct ids */
		*bs = ok;
		bs->set.pen = lng;
		bs->set.n_pen = 100;
		assert_int_equal(backend_step(gpu, t, 1, out), 0);
		lng[99].id = lng[3].id;
		assert_int_equal(backend_step(gpu, t, 1, out), -EINVAL);
		free(lng);
	}
	/* Three listed and one more for a fed token: four, not three. */
	*bs = ok;
	gpu->pen_room = 3;
	assert_int_equal(backend_step(gpu, t, 1, out), -E2BIG);
	gpu->pen_room = 4;
	assert_int_equal(backend_step(gpu, t, 1, out), 0);
	gpu->pen_room = room;
}

/*
 * Draws a backend cannot make, each -EINVAL before anything runs: on the
 * CPU backend (it samples nowhere but on the host), beside a row of all
 * logits, a temperature, top_p or min_p out of range, a draw of 1; a
 * repetition penalty of 0 or NaN, a presence penalty of infinity, a listed
 * token past the vocabulary, a list longer than it, a token listed twice
 * (in a short list and a long one; the valid short list passes again
 * afterwards, so the check forgets each list). A list past the
 * step's penalty room is -E2BIG. A top_k past the vocabulary is all of it.
 */
static void bad_draws(struct backend *gpu, struct backend *cpu, const struct backend_seq *s,
		      float *out)
{
	static const float bad_min_p[] = { -0.1f, 1.5f, NAN };
	struct backend_sample ok = {
		.set = { .temperature = 0.7f, .top_k = 0, .top_p = 1.0f, .u = 0.5f },
	}, bs;
	struct backend_seq t = *s;
	uint32_t i;

	t.logits = BACKEND_LOGITS_LAST;
	t.sample = &bs;
	bs = ok;
	assert_false(cpu->draws_tokens);
	assert_int_equal(backend_step(cpu, &t, 1, out), -EINVAL);
	t.logits = BACKEND_LOGITS_ALL;
	assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	t.logits = BACKEND_LOGITS_LAST;
	bs = ok;
	bs.set.temperature = NAN;
	assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	bs = ok;
	bs.set.temperature = -1.0f;
	assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	bs = ok;
	bs.set.top_p = 0.0f;
	assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	for (i = 0; i < 3; i++) {
		bs = ok;
		bs.set.min_p = bad_min_p[i];
		assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	}
	bs = ok;
	bs.set.u = 1.0f;
	assert_int_equal(backend_step(gpu, &t, 1, out), -EINVAL);
	pen_bad(gpu, &t, &bs, out);
	bs = ok;
	bs.set.top_k = gpu->n_vocab + 5;
	bs.set.min_p = 1.0f;
	bs.token = 12345;
	assert_int_equal(backend_step(gpu, &t, 1, out), 0);
	assert_true(bs.token < gpu->n_vocab);
}

#define DRAW_SEQS	9
#define DRAW_PROMPT	12
#define BUNDLED		"models/kjv-11m-q8_0.gguf"

/*
 * Tokens drawn in the step (&backend_seq.sample) on the bundled model, a
 * real vocabulary of 4096 and real distributions: nine prompts in one
 * step, run once for the rows of logits and again with the device drawing
 * eight of them (greedy; top-k with top-p; the whole row; a nucleus
 * without top-k; one so flat its nucleus is most of the vocabulary; min-p;
 * a top-k of 2000; all at once, with penalties on its prompt's tokens)
 * and not the ninth. Each drawn token is the host's reading of the same
 * row (penalised as the host does) and draw, with the raw row's
 * log-probability; a drawn row is left unwritten; the ninth comes back as
 * its row, the same as the first run's. Every drawn token may feed the
 * next step.
 */
static void test_draw(void **state)
{
	static const struct sampler_draw set[DRAW_SEQS - 1] = {
		{ .temperature = 0.0f, .top_p = 1.0f },
		{ .temperature = 0.8f, .top_k = 40, .top_p = 0.95f },
		{ .temperature = 1.0f, .top_k = 0, .top_p = 1.0f },
		{ .temperature = 0.7f, .top_k = 0, .top_p = 0.9f },
		{ .temperature = 3.0f, .top_k = 0, .top_p = 0.999f },
		{ .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.1f },
		{ .temperature = 1.2f, .top_k = 2000, .top_p = 1.0f },
		{ .temperature = 0.9f, .top_k = 1500, .top_p = 0.8f, .min_p = 0.02f,
		  .rep = 1.2f, .pres = 0.5f, .freq = 0.2f },
	};
	struct cuk_pen pen[DRAW_PROMPT];
	uint32_t n_pen = 0, j;
	struct backend_params bp = { .max_tokens = 160, .max_context = 256 };
	struct backend_cuda_params cp = { .n_blocks = 2 * DRAW_SEQS };
	uint32_t tok[DRAW_SEQS][DRAW_PROMPT], table[DRAW_SEQS][1], i;
	struct backend_sample bs[DRAW_SEQS - 1];
	struct backend_seq seqs[DRAW_SEQS];
	struct cand *c;
	struct model m;
	struct backend *b;
	float *la, *lb, *pr;
	char err[256];
	size_t v;

	(void)state;
	NEED_GPU();
	if (model_load(&m, BUNDLED))
		fail_msg("%s: %s", BUNDLED, m.err);
	b = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	if (!b)
		fail_msg("cuda backend: %s", err);
	v = b->n_vocab;
	assert_true(v > 2000);
	assert_true(b->draws_tokens);
	la = malloc(DRAW_SEQS * v * 4);
	lb = malloc(DRAW_SEQS * v * 4);
	pr = malloc(v * 4);
	c = malloc(v * sizeof(*c));
	assert_non_null(la);
	assert_non_null(lb);
	assert_non_null(pr);
	assert_non_null(c);
	for (i = 0; i < DRAW_SEQS; i++) {
		tokens_fill(tok[i], DRAW_PROMPT, v);
		table[i][0] = 2 * i + 1;
		seqs[i] = (struct backend_seq){
			.block_table = table[i], .n_blocks = 1, .tokens = tok[i],
			.n_tokens = DRAW_PROMPT, .logits = BACKEND_LOGITS_LAST,
		};
	}
	assert_int_equal(backend_step(b, seqs, DRAW_SEQS, la), 0);
	for (i = 0; i < DRAW_SEQS * v; i++)
		lb[i] = NAN;
	for (i = 0; i < DRAW_SEQS - 1; i++) {
		bs[i] = (struct backend_sample){ .set = set[i], .token = 7 };
		if (set[i].temperature > 0)
			bs[i].set.u = rnd(0, 1);
		seqs[i].sample = &bs[i];
	}
	/* The last draw's penalties: its prompt's tokens, some also in the output. */
	for (i = 0; i < DRAW_PROMPT; i++) {
		for (j = 0; j < n_pen && pen[j].id != tok[DRAW_SEQS - 2][i]; j++)
			;
		if (j == n_pen)
			pen[n_pen++] = (struct cuk_pen){ tok[DRAW_SEQS - 2][i],
							 CUK_PEN_PROMPT | (i % 3) };
	}
	bs[DRAW_SEQS - 2].set.pen = (const struct sampler_pen *)pen;
	bs[DRAW_SEQS - 2].set.n_pen = n_pen;
	assert_int_equal(backend_step(b, seqs, DRAW_SEQS, lb), 0);
	for (i = 0; i < DRAW_SEQS - 1; i++) {
		const float *row = la + i * v;
		struct cuk_sample_row r = {
			.temperature = set[i].temperature, .top_k = set[i].top_k,
			.top_p = set[i].top_p, .min_p = set[i].min_p, .u = bs[i].set.u,
			.rep = set[i].rep, .pres = set[i].pres, .freq = set[i].freq,
			.pen_n = bs[i].set.n_pen,
		};
		double edge, lp;
		int32_t want;

		memcpy(pr, row, v * 4);
		if (bs[i].set.pen)
			pen_apply(pr, &r, pen, -1);
		want = sample_ref(c, pr, v, &r, &edge);

		assert_true(bs[i].token < v);
		if ((int32_t)bs[i].token != want && edge > 1e-4)
			fail_msg("draw %u (T %g, k %u, p %g, min_p %g, u %g): %u, the host reads "
				 "%d", i, r.temperature, r.top_k, r.top_p, r.min_p, r.u,
				 bs[i].token, want);
		lp = row[bs[i].token] - testenv_lse(row, v);
		if (!(fabs(bs[i].logprob - lp) <= 2e-4))
			fail_msg("draw %u: logprob %g, want %g", i, bs[i].logprob, lp);
		assert_true(isnan(lb[i * v]) && isnan(lb[i * v + v - 1]));
	}
	assert_memory_equal(lb + (DRAW_SEQS - 1) * v, la + (DRAW_SEQS - 1) * v, v * 4);
	/* Run-ahead: a decode may be fed any drawn token, not an undrawn row's. */
	assert_int_equal(backend_submit(b, seqs, DRAW_SEQS, lb), 0);
	{
		uint32_t pend = UINT32_MAX, dtab[1] = { 0 };
		struct backend_seq f = {
			.block_table = dtab, .n_blocks = 1, .tokens = &pend, .n_tokens = 1,
			.logits = BACKEND_LOGITS_NONE, .feed = DRAW_SEQS,
		};

		assert_int_equal(backend_submit(b, &f, 1, NULL), -EINVAL);
		f.feed = 5;
		assert_int_equal(backend_submit(b, &f, 1, NULL), 0);
		assert_int_equal(backend_wait(b), 0);
		assert_int_equal(backend_wait(b), 0);
		assert_true(bs[4].token < v);
	}
	free(la);
	free(lb);
	free(pr);
	free(c);
	backend_destroy(b);
	model_free(&m);
}

#ifdef LLMQ_CUDA_EMU
int cuk_emu_fault(const char *spec);

#define FT_PROMPT	20

/*
 * A 20-token prompt of @tok at blocks @table, drawn greedily, as @s (which
 * must last until the step is waited for); 0 or the step's error.
 */
static int fault_step(struct backend *b, struct backend_seq *s, uint32_t *tok,
		      uint32_t *table, struct backend_sample *bs, float *logits, bool ahead)
{
	*s = (struct backend_seq){
		.block_table = table, .n_blocks = 2, .tokens = tok, .n_tokens = FT_PROMPT,
		.logits = BACKEND_LOGITS_LAST, .sample = bs,
	};
	*bs = (struct backend_sample){ .set = { .top_p = 1.0f } };
	return ahead ? backend_submit(b, s, 1, logits) : backend_step(b, s, 1, logits);
}

/*
 * CUDA errors in a step, made by the emulator (cuk_emu_fault()): a kernel
 * launch that fails, and a GEMM that fails, cost their step -EIO and
 * nothing more: the same step again draws the token of a step that never
 * failed, with its log-probability bit for bit. A step queued behind one still out
 * (running ahead) fails alone, and the one out still delivers its token.
 * A fault inside a kernel is sticky, as on a GPU: its step fails at the
 * wait, every later one at once, and the backend is still destroyed
 * cleanly (ASan: nothing leaks).
 */
static void test_faults(void **state)
{
	static const char *const soft[] = { "launch:1", "launch:9", "gemm:1", "gemm:5" };
	uint32_t tok[2][FT_PROMPT], table[2][2] = { { 0, 1 }, { 2, 3 } }, i, want;
	struct backend_sample bs[2];
	struct backend_seq sq[2];
	float *got, want_lp;
	struct pair p;
	size_t v;

	(void)state;
	NEED_GPU();
	pair_load(&p, "tiny", "F16");
	v = p.gpu->n_vocab;
	got = malloc(2 * v * sizeof(float));
	tokens_fill(tok[0], FT_PROMPT, (uint32_t)v);
	tokens_fill(tok[1], FT_PROMPT, (uint32_t)v);
	assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, false), 0);
	want = bs[0].token;
	want_lp = bs[0].logprob;
	for (i = 0; i < sizeof(soft) / sizeof(soft[0]); i++) {
		assert_int_equal(cuk_emu_fault(soft[i]), 0);
		assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, false), -EIO);
		assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, false), 0);
		assert_int_equal(bs[0].token, want);
		assert_memory_equal(&bs[0].logprob, &want_lp, sizeof(want_lp));
	}
	/* Running ahead: the second step's launch fails, the first's token comes. */
	assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, true), 0);
	assert_int_equal(cuk_emu_fault("launch:1"), 0);
	assert_int_equal(fault_step(p.gpu, &sq[1], tok[1], table[1], &bs[1], got + v, true), -EIO);
	assert_int_equal(backend_wait(p.gpu), 0);
	assert_int_equal(bs[0].token, want);
	assert_memory_equal(&bs[0].logprob, &want_lp, sizeof(want_lp));
	assert_int_equal(backend_wait(p.gpu), -EINVAL);	/* nothing else out */

	/* Sticky: the fault shows at the wait, and then at every step. */
	assert_int_equal(cuk_emu_fault("kernel:3"), 0);
	assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, false), -EIO);
	for (i = 0; i < 2; i++)
		assert_int_equal(fault_step(p.gpu, &sq[i], tok[i], table[i], &bs[i], got, false), -EIO);
	assert_int_equal(cuk_emu_fault("none"), 0);
	/* The device is back (the emulator's reset), the backend stays broken. */
	assert_int_equal(fault_step(p.gpu, &sq[0], tok[0], table[0], &bs[0], got, false), -EIO);
	assert_int_equal(cuk_emu_fault("bogus:1"), -1);
	assert_int_equal(cuk_emu_fault("launch:0"), -1);
	free(got);
	pair_free(&p);
}
#endif

static void test_bad_steps(void **state)
{
	uint32_t tok[300] = { 0 }, table[32] = { 0 };
	struct backend_seq s = { .block_table = table, .n_blocks = 1, .tokens = tok,
				 .n_tokens = 1 };
	struct backend_seq t;
	struct pair p;
	float *out;

	(void)state;
	NEED_GPU();
	pair_load(&p, "tiny", "BF16");
	out = malloc(300 * p.gpu->n_vocab * sizeof(float));
	assert_int_equal(backend_step(p.gpu, &s, 0, out), -EINVAL);
	assert_int_equal(backend_step(p.gpu, &s, 1, NULL), -EINVAL);
	t = s;
	tok[0] = p.gpu->n_vocab;
	assert_int_equal(backend_step(p.gpu, &t, 1, out), -EINVAL);
	tok[0] = 0;
	t.n_tokens = 17;
	assert_int_equal(backend_step(p.gpu, &t, 1, out), -EINVAL);
	t = s;
	table[0] = N_BLOCKS;
	assert_int_equal(backend_step(p.gpu, &t, 1, out), -EINVAL);
	table[0] = 0;
	t.n_blocks = 32;
	t.n_tokens = 257;
	assert_int_equal(backend_step(p.gpu, &t, 1, out), -E2BIG);
	t.n_tokens = 1;
	t.pos = 512;
	assert_int_equal(backend_step(p.gpu, &t, 1, out), -E2BIG);
	assert_int_equal(backend_step(p.gpu, &s, 1, out), 0);
	bad_draws(p.gpu, p.cpu, &s, out);
	free(out);
	pair_free(&p);
}

#else	/* !LLMQ_HAVE_CUDA */

static void test_gpu_none(void **state)
{
	(void)state;
	NEED_GPU();
}

#endif

static int setup(void **state)
{
	const char *env = getenv("LLMQ_TEST_SEED");
	uint64_t seed;

	(void)state;
	seed = env && *env ? strtoull(env, NULL, 0) :
	       (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	rng_seed(rng, seed);
	print_message("[          ] seed %llu (LLMQ_TEST_SEED=%llu repeats this run)\n",
		      (unsigned long long)seed, (unsigned long long)seed);
#ifdef LLMQ_CUDA_EMU
	print_message("[          ] kernels and backend on the CUDA emulator "
		      "(tests/cuda_emu/), not on a GPU\n");
#endif
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[1200];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) ? -1 : 0;
}

/*
 * LLMQ_TEST_ONLY=test_embed,test_rope: the tests named (fnmatch() patterns,
 * comma-separated), for a run that must be short (compute-sanitizer).
 */
static bool test_wanted(const char *list, const char *name)
{
	char pat[128];
	size_t len;

	while (*list) {
		len = strcspn(list, ",");
		if (len < sizeof(pat)) {
			memcpy(pat, list, len);
			pat[len] = '\0';
			if (!fnmatch(pat, name, 0))
				return true;
		}
		list += len + (list[len] == ',');
	}
	return false;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_engine),
		cmocka_unit_test(test_fatbin),
#ifdef LLMQ_HAVE_CUDA
		cmocka_unit_test(test_embed),
		cmocka_unit_test(test_rmsnorm),
		cmocka_unit_test(test_bias),
		cmocka_unit_test(test_rope),
		cmocka_unit_test(test_swiglu),
		cmocka_unit_test(test_quant),
		cmocka_unit_test(test_argmax),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_attention),
		cmocka_unit_test(test_forward),
		cmocka_unit_test(test_tiles),
		cmocka_unit_test(test_quant_weights),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_draw),
		cmocka_unit_test(test_graph),
		cmocka_unit_test(test_run_ahead),
		cmocka_unit_test(test_bad_steps),
#ifdef LLMQ_CUDA_EMU
		cmocka_unit_test(test_faults),
#endif
#else
		cmocka_unit_test(test_gpu_none),
#endif
	};

	struct CMUnitTest only[sizeof(tests) / sizeof(tests[0])];
	const char *want = getenv("LLMQ_TEST_ONLY");
	size_t i, n = 0;

	(void)argc;
	if (testenv_bin_dir(argv[0]))
		return 1;
	if (!want)
		return cmocka_run_group_tests_name("cuda", tests, setup, teardown);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (test_wanted(want, tests[i].name))
			only[n++] = tests[i];
	return _cmocka_run_group_tests("cuda", only, n, setup, teardown);
}
