/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Causal attention of a group of query heads over one KV head, reading K and
 * V rows through per-position pointers (the paged cache's block tables are
 * resolved by the caller), on one of the CPU kernel paths.
 */
#ifndef LLMQD_CPU_ATTENTION_H
#define LLMQD_CPU_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"

/* Positions per online-softmax chunk, on every path. */
#define ATTN_CHUNK	16
/* Positions per span, whose results are folded in order (a multiple of the
 * chunk): the unit in which one sequence may be split over threads. */
#define ATTN_SPAN	256
/* Heads of a row whose p * V the kernel computes together. */
#define ATTN_GROUP	3
/* Queries in a call from which an F16 chunk is widened once for all. */
#define ATTN_WIDEN_MIN	4
/* Most floats per vector of any path. */
#define ATTN_MAX_LANES	16

/**
 * struct cpu_attn - attention of consecutive rows of one sequence
 * @q:		the first row's first query head of the group; a row's heads are
 *		consecutive, @d floats each
 * @ldq:	floats from one row of @q to the next
 * @out:	written like @q: each head's softmax(q K^T * @scale) V
 * @ldo:	floats from one row of @out to the next
 * @k:		@k[p] is the K row of this KV head at position p, @d floats
 *		(halves if @f16), for p < @pos + @rows
 * @v:		the same for V
 * @pos:	position of the first row; row r attends to positions 0 .. @pos + r
 * @rows:	rows (tokens) of the sequence in this call
 * @heads:	query heads sharing this KV head
 * @d:		head dimension
 * @scale:	score scale, 1 / sqrt(@d)
 * @f16:	K and V rows are IEEE halves, not floats
 * @span_lo:	first span (of ATTN_SPAN positions from position 0) to attend
 * @span_hi:	span past the last to attend; 0 = through the last row's own
 * @part:	NULL: write @out. Otherwise keep each span's unnormalised result
 *		apart, cpu_attn_part_floats(@d) floats for query q (row * @heads
 *		+ head) and span s at (q * @part_spans + s) times that, for
 *		&attn_kernels.merge to fold once every span is done
 * @part_spans:	spans per query in @part
 * @work:	cpu_attn_work_floats(@rows * @heads, @d) floats, 64-byte aligned
 */
struct cpu_attn {
	const float		*q;
	size_t			ldq;
	float			*out;
	size_t			ldo;
	const void * const	*k;
	const void * const	*v;
	uint32_t		pos;
	uint32_t		rows;
	uint32_t		heads;
	uint32_t		d;
	float			scale;
	bool			f16;
	uint32_t		span_lo;
	uint32_t		span_hi;
	float			*part;
	uint32_t		part_spans;
	float			*work;
};

/**
 * struct attn_kernels - one path's attention kernel
 * @name:	the path's name
 * @lanes:	floats per vector
 * @run:	computes @a->out, or its spans' results into @a->part;
 *		single-threaded
 * @merge:	folds @a->part's @a->part_spans spans of each query, in order,
 *		into @a->out (reads @part, @part_spans, @out, @ldo, @rows,
 *		@heads, @d)
 */
struct attn_kernels {
	const char	*name;
	unsigned int	lanes;
	void		(*run)(const struct cpu_attn *a);
	void		(*merge)(const struct cpu_attn *a);
};

extern const struct attn_kernels attn_portable;
extern const struct attn_kernels attn_avx2;
extern const struct attn_kernels attn_avx512;

const struct attn_kernels *attn_kernels(enum cpu_isa isa);
size_t cpu_attn_work_floats(uint32_t queries, uint32_t d);
size_t cpu_attn_part_floats(uint32_t d);

#endif /* LLMQD_CPU_ATTENTION_H */
