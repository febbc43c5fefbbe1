// SPDX-License-Identifier: GPL-2.0
/*
 * The matrix product's front door: argument checks, the choice of kernel
 * path, and the split of W's rows across the thread pool. The kernels are in
 * matmul_{portable,avx2,avx512}.c.
 */
#include <errno.h>
#include <stdint.h>

#include "../dtype.h"
#include "matmul.h"

/* Smallest share of W one task gets: below this, waking threads costs more
 * than it saves. */
#define MIN_TASK_BYTES	(32 * 1024)
/* Tasks per thread: lets early finishers take work from late starters. */
#define TASKS_PER_THREAD 4
/* Task boundaries fall on multiples of this many rows (the micro-tile
 * widths divide it), so no micro-tile re-reads a row across a boundary. */
#define ROW_ALIGN	24

struct matmul_job {
	matmul_rows_fn		fn;
	const struct cpu_matmul	*mm;
	const uint8_t		*w;
	size_t			row_bytes;
	size_t			rows_per_task;
};

/**
 * matmul_kernels() - a path's matrix kernels
 * @isa:	the path
 *
 * Return: the kernels, or NULL if the CPU cannot run @isa.
 */
const struct matmul_kernels *matmul_kernels(enum cpu_isa isa)
{
	if (!cpu_isa_supported(isa))
		return NULL;
	switch (isa) {
	case CPU_ISA_PORTABLE:
		return &matmul_portable;
	case CPU_ISA_AVX2:
		return matmul_avx2.f32 ? &matmul_avx2 : NULL;
	case CPU_ISA_AVX512:
		return matmul_avx512.f32 ? &matmul_avx512 : NULL;
	default:
		return NULL;
	}
}

static matmul_rows_fn rows_fn(const struct matmul_kernels *kern, uint32_t type)
{
	switch (type) {
	case GGML_TYPE_F32:
		return kern->f32;
	case GGML_TYPE_F16:
		return kern->f16;
	case GGML_TYPE_BF16:
		return kern->bf16;
	case GGML_TYPE_Q8_0:
		return kern->q8_0;
	case GGML_TYPE_Q4_0:
		return kern->q4_0;
	case GGML_TYPE_Q4_K:
		return kern->q4_k;
	default:
		return NULL;
	}
}

/**
 * cpu_matmul_check() - whether a product is well formed
 * @mm:		the product
 *
 * Return: 0; -EINVAL for a weight type without kernels, @k not a whole
 * number of blocks, a zero @n or @k, a row stride shorter than its row, or a
 * missing pointer; -EOVERFLOW if W's size does not fit.
 */
int cpu_matmul_check(const struct cpu_matmul *mm)
{
	uint64_t rb;
	int err;

	if (!rows_fn(&matmul_portable, mm->type) || !mm->n || !mm->k)
		return -EINVAL;
	err = dtype_row_bytes(mm->type, mm->k, &rb);
	if (err)
		return err;
	if (rb > SIZE_MAX / mm->n)
		return -EOVERFLOW;
	if (!mm->m)
		return 0;
	if (!mm->w || !mm->x || !mm->y || mm->ldx < mm->k || mm->ldy < mm->n)
		return -EINVAL;
	return 0;
}

static void matmul_task(void *arg, unsigned int task, unsigned int thread)
{
	const struct matmul_job *job = arg;
	const struct cpu_matmul *mm = job->mm;
	size_t n0 = (size_t)task * job->rows_per_task, n1 = n0 + job->rows_per_task;

	(void)thread;
	if (n1 > mm->n)
		n1 = mm->n;
	job->fn(job->w + n0 * job->row_bytes, job->row_bytes, n1 - n0, mm->x, mm->ldx, mm->m,
		mm->k, mm->y + n0, mm->ldy);
}

/**
 * cpu_matmul_with() - y = x W^T with a given set of kernels
 * @pool:	threads to split W's rows across, or NULL for the caller alone
 * @kern:	the kernels (matmul_kernels(), or a test's own)
 * @mm:		the product
 *
 * Every W row is read from memory once for all rows of x. The result does not
 * depend on @pool's size: each output is computed by the same operations
 * whichever thread computes it.
 *
 * Return: 0, or an error from cpu_matmul_check().
 */
int cpu_matmul_with(struct threadpool *pool, const struct matmul_kernels *kern,
		    const struct cpu_matmul *mm)
{
	struct matmul_job job;
	size_t tasks, per, min_rows;
	uint64_t rb;
	int err;

	err = cpu_matmul_check(mm);
	if (err || !mm->m)
		return err;
	job.fn = rows_fn(kern, mm->type);
	if (!job.fn)
		return -EINVAL;
	dtype_row_bytes(mm->type, mm->k, &rb);
	job.mm = mm;
	job.w = mm->w;
	job.row_bytes = rb;

	tasks = (size_t)threadpool_size(pool) * TASKS_PER_THREAD;
	min_rows = MIN_TASK_BYTES / rb + 1;
	if (tasks > mm->n / min_rows)
		tasks = mm->n / min_rows;
	if (tasks < 1)
		tasks = 1;
	per = (mm->n + tasks - 1) / tasks;
	per = (per + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
	job.rows_per_task = per;
	tasks = (mm->n + per - 1) / per;
	threadpool_run(pool, (unsigned int)tasks, matmul_task, &job);
	return 0;
}

/**
 * cpu_matmul_isa() - y = x W^T on a named path
 * @pool:	threads, or NULL
 * @isa:	the path; must be cpu_isa_supported()
 * @mm:		the product
 *
 * Return: 0, -EOPNOTSUPP if the CPU lacks @isa, or cpu_matmul_check()'s error.
 */
int cpu_matmul_isa(struct threadpool *pool, enum cpu_isa isa, const struct cpu_matmul *mm)
{
	const struct matmul_kernels *kern = matmul_kernels(isa);

	if (!kern)
		return -EOPNOTSUPP;
	return cpu_matmul_with(pool, kern, mm);
}

/**
 * cpu_matmul() - y = x W^T on the default path (cpu_isa_default())
 * @pool:	threads, or NULL
 * @mm:		the product
 *
 * Return: 0, or cpu_matmul_check()'s error.
 */
int cpu_matmul(struct threadpool *pool, const struct cpu_matmul *mm)
{
	return cpu_matmul_isa(pool, cpu_isa_default(), mm);
}
