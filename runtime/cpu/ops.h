/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The small kernels of a LLaMA-family forward pass, one row at a time:
 * RMSNorm, rotary position embedding, SwiGLU, vector add, and the
 * embedding-row gather.
 */
#ifndef LLMQD_CPU_OPS_H
#define LLMQD_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../model.h"

#define CPU_ROPE_MAX_DIM	1024

/**
 * struct cpu_rope - rotary embedding parameters, with the frequencies
 * @mode:	ROPE_NORMAL rotates (x[2i], x[2i+1]); ROPE_NEOX (x[i], x[i+n_rot/2])
 * @head_dim:	floats per head
 * @n_rot:	rotated dimensions of each head (even, <= @head_dim); the rest
 *		pass through
 * @inv_freq:	freq_scale * freq_base^(-2i/n_rot) for i < n_rot/2, in double
 */
struct cpu_rope {
	enum rope_type	mode;
	size_t		head_dim;
	size_t		n_rot;
	double		inv_freq[CPU_ROPE_MAX_DIM / 2];
};

void cpu_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps);
int cpu_rope_init(struct cpu_rope *r, enum rope_type mode, size_t head_dim, size_t n_rot,
		  float freq_base, float freq_scale);
void cpu_rope(const struct cpu_rope *r, float *x, size_t n_heads, int32_t pos);
void cpu_swiglu(float *y, const float *gate, const float *up, size_t n);
void cpu_add(float *y, const float *a, const float *b, size_t n);
int cpu_get_rows(uint32_t type, const void *table, size_t n_rows, size_t dim,
		 const int32_t *ids, size_t n_ids, float *out, size_t ldo);

#endif /* LLMQD_CPU_OPS_H */
