/* SPDX-License-Identifier: GPL-2.0 */
/*
 * y = x W^T for F32 activations and a GGUF weight matrix of any dtype llmq
 * reads, on one of the CPU kernel paths, split across a thread pool.
 */
#ifndef LLMQD_CPU_MATMUL_H
#define LLMQD_CPU_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"
#include "threadpool.h"

/**
 * struct cpu_matmul - one product y[m][n] = sum_k x[m][k] * W[n][k]
 * @type:	W's element type (enum ggml_type): F32, F16, BF16, Q8_0, Q4_0,
 *		Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K
 * @w:		W as GGUF stores it: @n rows (ne1) of @k elements (ne0), each row
 *		dtype_row_bytes(@type, @k) bytes, rows contiguous; no alignment
 *		needed
 * @n:		output features (rows of W)
 * @k:		input features, a whole number of @type's blocks
 * @x:		@m rows of @k floats
 * @ldx:	distance between rows of @x, in floats (>= @k)
 * @y:		@m rows of @n floats, written
 * @ldy:	distance between rows of @y, in floats (>= @n)
 * @m:		rows of @x (tokens in the step)
 */
/* Most products cpu_matmul_many() runs at once. */
#define CPU_MATMUL_MANY	4

struct cpu_matmul {
	uint32_t	type;
	const void	*w;
	size_t		n;
	size_t		k;
	const float	*x;
	size_t		ldx;
	float		*y;
	size_t		ldy;
	size_t		m;
};

/*
 * One path's kernels. rows[type] computes y[0..m)[0..n_rows) for n_rows
 * consecutive rows of W (each @row_bytes long), single-threaded.
 */
typedef void (*matmul_rows_fn)(const uint8_t *w, size_t row_bytes, size_t n_rows,
			       const float *x, size_t ldx, size_t m, size_t k,
			       float *y, size_t ldy);

/**
 * struct matmul_kernels - the matrix kernels of one path
 * @name:	the path's name
 * @lanes:	floats per vector: the number of partial sums per dot product
 * @q8_0, @q4_0, @q4_1, @q5_0, @q5_1, @q4_k, @q5_k, @q6_k, @f32, @f16, @bf16:
 *		one function per weight type
 */
struct matmul_kernels {
	const char	*name;
	unsigned int	lanes;
	matmul_rows_fn	f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k;
};

extern const struct matmul_kernels matmul_portable;
extern const struct matmul_kernels matmul_avx2;
extern const struct matmul_kernels matmul_avx512;

const struct matmul_kernels *matmul_kernels(enum cpu_isa isa);
int cpu_matmul_check(const struct cpu_matmul *mm);
int cpu_matmul_with(struct threadpool *pool, const struct matmul_kernels *kern,
		    const struct cpu_matmul *mm);
int cpu_matmul_isa(struct threadpool *pool, enum cpu_isa isa, const struct cpu_matmul *mm);
int cpu_matmul(struct threadpool *pool, const struct cpu_matmul *mm);
int cpu_matmul_many(struct threadpool *pool, const struct cpu_matmul *mm, unsigned int count);

#endif /* LLMQD_CPU_MATMUL_H */
