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
	unsigned int		first_task;	/* of this product, in the pool run */
};

/* The products of one pool run: tasks [jobs[i].first_task, jobs[i + 1]...) are jobs[i]'s. */
struct matmul_run {
	struct matmul_job	jobs[CPU_MATMUL_MANY];
	unsigned int		n_jobs;
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
	case GGML_TYPE_Q4_1:
		return kern->q4_1;
	case GGML_TYPE_Q5_0:
		return kern->q5_0;
	case GGML_TYPE_Q5_1:
		return kern->q5_1;
	case GGML_TYPE_Q4_K:
		return kern->q4_k;
	case GGML_TYPE_Q5_K:
		return kern->q5_k;
	case GGML_TYPE_Q6_K:
		return kern->q6_k;
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
	const struct matmul_run *run = arg;
	const struct matmul_job *job = run->jobs;
	const struct cpu_matmul *mm;
	size_t n0, n1;

	(void)thread;
	while (job + 1 < run->jobs + run->n_jobs && task >= job[1].first_task)
		job++;
	mm = job->mm;
	n0 = (size_t)(task - job->first_task) * job->rows_per_task;
	n1 = n0 + job->rows_per_task;
	if (n1 > mm->n)
		n1 = mm->n;
	job->fn(job->w + n0 * job->row_bytes, job->row_bytes, n1 - n0, mm->x, mm->ldx, mm->m,
		mm->k, mm->y + n0, mm->ldy);
}

/* Split one product's W rows into tasks; returns how many. */
static unsigned int plan_job(struct matmul_job *job, unsigned int threads)
{
	const struct cpu_matmul *mm = job->mm;
	size_t tasks, per, min_rows;

	tasks = (size_t)threads * TASKS_PER_THREAD;
	min_rows = MIN_TASK_BYTES / job->row_bytes + 1;
	if (tasks > mm->n / min_rows)
		tasks = mm->n / min_rows;
	if (tasks < 1)
		tasks = 1;
	per = (mm->n + tasks - 1) / tasks;
	per = (per + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
	job->rows_per_task = per;
	return (unsigned int)((mm->n + per - 1) / per);
}

static int matmul_many_with(struct threadpool *pool, const struct matmul_kernels *kern,
			    const struct cpu_matmul *mm, unsigned int count)
{
	struct matmul_run run = { .n_jobs = 0 };
	unsigned int i, tasks = 0;
	uint64_t rb;
	int err;

	if (count > CPU_MATMUL_MANY)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		err = cpu_matmul_check(&mm[i]);
		if (err)
			return err;
		if (mm[i].m && !rows_fn(kern, mm[i].type))
			return -EINVAL;
	}
	for (i = 0; i < count; i++) {
		struct matmul_job *job = &run.jobs[run.n_jobs];

		if (!mm[i].m)
			continue;
		dtype_row_bytes(mm[i].type, mm[i].k, &rb);
		*job = (struct matmul_job){
			.fn = rows_fn(kern, mm[i].type), .mm = &mm[i], .w = mm[i].w,
			.row_bytes = rb, .first_task = tasks,
		};
		tasks += plan_job(job, threadpool_size(pool));
		run.n_jobs++;
	}
	if (tasks)
		threadpool_run(pool, tasks, matmul_task, &run);
	return 0;
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
	return matmul_many_with(pool, kern, mm, 1);
}

/**
 * cpu_matmul_many() - several products in one run of the pool
 * @pool:	threads, or NULL
 * @mm:		the products (independent: none may write what another reads)
 * @count:	how many, at most CPU_MATMUL_MANY
 *
 * The same results, bit for bit, as cpu_matmul() on each, with one wake-up
 * and one wait of the pool instead of @count: a step's Q, K and V
 * projections (or gate and up) share their tasks, so a thread that finishes
 * its share of one takes the next product's instead of waiting.
 *
 * Return: 0; -EINVAL for more than CPU_MATMUL_MANY, or the first error of
 * cpu_matmul_check(), before any product runs.
 */
int cpu_matmul_many(struct threadpool *pool, const struct cpu_matmul *mm, unsigned int count)
{
	const struct matmul_kernels *kern = matmul_kernels(cpu_isa_default());

	if (!kern)
		return -EOPNOTSUPP;
	return matmul_many_with(pool, kern, mm, count);
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
