// SPDX-License-Identifier: GPL-2.0
/*
 * Row kernels of the forward pass in portable C: RMSNorm, RoPE (normal and
 * NeoX), SwiGLU, vector add, embedding rows. Each works on caller
 * memory only (no allocation, no shared state), so rows may be split across
 * threads freely. Reductions use double where it costs little and buys
 * accuracy; tests hold each to a bound in units of float rounding.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "../dtype.h"
#include "ops.h"

/**
 * cpu_rmsnorm() - y = x / sqrt(mean(x^2) + eps) * w
 * @y:		@n floats out; may be @x
 * @x:		@n floats in
 * @w:		@n weights, or NULL for none
 * @n:		row length, > 0
 * @eps:	added to the mean square
 *
 * The mean square is summed in double; the scale is rounded once to float,
 * then y = (x * scale) * w in float, as llama.cpp does.
 */
void cpu_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
	double ss = 0;
	float scale;
	size_t i;

	for (i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	scale = (float)(1.0 / sqrt(ss / (double)n + eps));
	if (w) {
		for (i = 0; i < n; i++)
			y[i] = x[i] * scale * w[i];
	} else {
		for (i = 0; i < n; i++)
			y[i] = x[i] * scale;
	}
}

/**
 * cpu_rope_init() - precompute a rotary embedding
 * @r:		filled
 * @mode:	ROPE_NORMAL (LLaMA) or ROPE_NEOX (Qwen2, GPT-NeoX)
 * @head_dim:	floats per head
 * @n_rot:	rotated dimensions, even, <= @head_dim and CPU_ROPE_MAX_DIM
 * @freq_base:	theta base (10000, 500000, 1e6 ...)
 * @freq_scale:	linear position scaling, 1 for none
 *
 * Return: 0, or -EINVAL for a bad dimension or a non-positive base.
 */
int cpu_rope_init(struct cpu_rope *r, enum rope_type mode, size_t head_dim, size_t n_rot,
		  float freq_base, float freq_scale)
{
	size_t i;

	if (!n_rot || n_rot % 2 || n_rot > head_dim || n_rot > CPU_ROPE_MAX_DIM ||
	    !(freq_base > 0) || !isfinite(freq_scale) ||
	    (mode != ROPE_NORMAL && mode != ROPE_NEOX))
		return -EINVAL;
	r->mode = mode;
	r->head_dim = head_dim;
	r->n_rot = n_rot;
	for (i = 0; i < n_rot / 2; i++)
		r->inv_freq[i] = (double)freq_scale *
				 pow((double)freq_base, -2.0 * (double)i / (double)n_rot);
	return 0;
}

/**
 * cpu_rope() - rotate the heads of one token's q or k row
 * @r:		from cpu_rope_init()
 * @x:		@n_heads heads of @r->head_dim floats, in place
 * @n_heads:	heads in the row
 * @pos:	the token's position
 *
 * Pair i turns by pos * inv_freq[i]: (a, b) -> (a cos - b sin, a sin + b cos),
 * computed in double and rounded once.
 */
void cpu_rope(const struct cpu_rope *r, float *x, size_t n_heads, int32_t pos)
{
	double c[CPU_ROPE_MAX_DIM / 2], s[CPU_ROPE_MAX_DIM / 2];
	size_t half = r->n_rot / 2, h, i, i0, i1;

	for (i = 0; i < half; i++) {
		double th = (double)pos * r->inv_freq[i];

		c[i] = cos(th);
		s[i] = sin(th);
	}
	for (h = 0; h < n_heads; h++, x += r->head_dim) {
		for (i = 0; i < half; i++) {
			double a, b;

			i0 = r->mode == ROPE_NEOX ? i : 2 * i;
			i1 = r->mode == ROPE_NEOX ? i + half : 2 * i + 1;
			a = x[i0];
			b = x[i1];
			x[i0] = (float)(a * c[i] - b * s[i]);
			x[i1] = (float)(a * s[i] + b * c[i]);
		}
	}
}

/**
 * cpu_swiglu() - y = silu(gate) * up, silu(g) = g / (1 + exp(-g))
 * @y:		@n floats out; may be @gate or @up
 * @gate:	@n floats
 * @up:		@n floats
 * @n:		row length
 */
void cpu_swiglu(float *y, const float *gate, const float *up, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/**
 * cpu_add() - y = a + b
 * @y:		@n floats out; may be @a or @b
 * @a:		@n floats
 * @b:		@n floats
 * @n:		length
 */
void cpu_add(float *y, const float *a, const float *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

/**
 * cpu_get_rows() - dequantise rows of an embedding table
 * @type:	the table's element type
 * @table:	@n_rows rows of @dim elements (token_embd: ne0 = dim, ne1 = vocab)
 * @n_rows:	rows in the table
 * @dim:	elements per row, a whole number of @type's blocks
 * @ids:	@n_ids row numbers
 * @n_ids:	rows to fetch
 * @out:	@n_ids rows of @dim floats
 * @ldo:	distance between rows of @out, in floats (>= @dim)
 *
 * Values are exactly those dequantize() gives.
 *
 * Return: 0; -EINVAL for a type llmq does not read, a bad @dim or @ldo;
 * -ERANGE for an id outside [0, @n_rows) (nothing after it is written).
 */
int cpu_get_rows(uint32_t type, const void *table, size_t n_rows, size_t dim,
		 const int32_t *ids, size_t n_ids, float *out, size_t ldo)
{
	const struct dtype_info *ti = dtype_info(type);
	uint64_t rb;
	size_t i;

	if (!ti || !ti->supported || ldo < dim || dtype_row_bytes(type, dim, &rb))
		return -EINVAL;
	for (i = 0; i < n_ids; i++) {
		if (ids[i] < 0 || (size_t)ids[i] >= n_rows)
			return -ERANGE;
		dequantize(type, (const uint8_t *)table + (size_t)ids[i] * rb, out + i * ldo, dim);
	}
	return 0;
}
