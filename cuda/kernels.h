/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The CUDA backend's own kernels, as C functions that launch them on a
 * stream: everything of a forward step that cuBLAS does not do. Each
 * cuda/kernels/X.cu holds one job; this header is all the host side sees.
 *
 * Conventions: activations are FP32 row-major [rows][n]; BF16 tensors
 * (weights, GEMM inputs, the KV cache) are passed as uint16_t, bit patterns
 * of __nv_bfloat16, so that C code can hold them. Every function returns
 * the launch's status (cudaGetLastError()); an error in the kernel itself
 * shows at the next synchronisation. None synchronises.
 */
#ifndef LLMQ_CUDA_KERNELS_H
#define LLMQ_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest head the attention kernel holds in registers and shared memory. */
#define CUK_ATTN_MAX_HEAD_DIM	256
/* Most key/value splits of one query row in split-K attention. */
#define CUK_ATTN_MAX_SPLITS	64
/*
 * Most query heads per KV head computed by one block (one per row, KV head
 * and split); larger GQA groups take a block per query head.
 */
#define CUK_ATTN_MAX_GROUP	8

/*
 * Block types the backend keeps as they are on the device, by GGUF's
 * numbers. Q8_0: 32 weights, an FP16 d and 32 int8 q, w = d q. Q4_0: 32
 * weights, an FP16 d and 16 bytes of nibbles, w = d (q - 8). Q4_K: 256
 * weights in 8 sub-blocks of 32, an FP16 d and dmin, 12 bytes of 6-bit
 * sub-block scales and mins, 128 bytes of nibbles, w = d sc q - dmin m.
 * Q5_K: Q4_K's with 32 bytes of fifth bits between scales and nibbles
 * (bit j of byte l: weight l of sub-block j). Q6_K: 256 weights in 16
 * sub-blocks of 16: 128 bytes of low nibbles, 64 of high bit pairs, 16
 * int8 scales, an FP16 d last, w = d sc (q - 32).
 */
#define CUK_Q4_0	2
#define CUK_Q8_0	8
#define CUK_Q4_K	12
#define CUK_Q5_K	13
#define CUK_Q6_K	14

/**
 * struct cuk_qtype - how a kept type's blocks are split into planes
 * @block:	weights a block
 * @head:	bytes of its scales, which go to &cuk_qmat.s
 * @head_at:	where they start in the block
 * @high:	bytes of its weights' high bits (Q5_K, Q6_K; else 0), which
 *		go to &cuk_qmat.h
 * @high_at:	where they start
 * @body:	bytes of its weights' low bits (nibbles, Q8_0's int8), which go
 *		to &cuk_qmat.q
 * @body_at:	where they start
 */
struct cuk_qtype {
	uint32_t	block;
	uint32_t	head, head_at;
	uint32_t	high, high_at;
	uint32_t	body, body_at;
};

/* The split of @type's blocks, or NULL for a type not kept. */
static inline const struct cuk_qtype *cuk_qtype(uint32_t type)
{
	static const struct cuk_qtype q8_0 = { 32, 2, 0, 0, 0, 32, 2 };
	static const struct cuk_qtype q4_0 = { 32, 2, 0, 0, 0, 16, 2 };
	static const struct cuk_qtype q4_k = { 256, 16, 0, 0, 0, 128, 16 };
	static const struct cuk_qtype q5_k = { 256, 16, 0, 32, 16, 128, 48 };
	static const struct cuk_qtype q6_k = { 256, 18, 192, 64, 128, 128, 0 };

	switch (type) {
	case CUK_Q8_0:
		return &q8_0;
	case CUK_Q4_0:
		return &q4_0;
	case CUK_Q4_K:
		return &q4_k;
	case CUK_Q5_K:
		return &q5_k;
	case CUK_Q6_K:
		return &q6_k;
	default:
		return (const struct cuk_qtype *)0;
	}
}

/*
 * @nb blocks of a type split by @t, from @blk as GGUF stores them, to the
 * next @nb blocks of each plane.
 */
static inline void cuk_qsplit(const struct cuk_qtype *t, const uint8_t *blk, uint64_t nb,
			      uint8_t *s, uint8_t *h, uint8_t *q)
{
	const uint32_t bs = t->head + t->high + t->body;
	uint64_t b;

	for (b = 0; b < nb; b++, blk += bs) {
		memcpy(s + b * t->head, blk + t->head_at, t->head);
		if (t->high)
			memcpy(h + b * t->high, blk + t->high_at, t->high);
		memcpy(q + b * t->body, blk + t->body_at, t->body);
	}
}

/* Most rows of x cuk_qmatvec() takes; a step of more widens to BF16. */
#define CUK_QMATVEC_MAX_ROWS	8

/**
 * struct cuk_qmat - a quantised matrix on the device, its blocks split in two planes
 * @type:	CUK_Q8_0, CUK_Q4_0, CUK_Q4_K, CUK_Q5_K or CUK_Q6_K
 * @q:		[n][k / block * body]: each block's weights (their low bits) as
 *		GGUF has them (Q4_0: low nibbles the block's first 16, high ones
 *		its last 16; Q4_K, Q5_K: sub-blocks in pairs of 32 bytes, low
 *		nibbles the first of the pair; Q6_K: ql); apart from the
 *		scales, every row is 16-byte aligned for wide loads
 * @h:		[n][k / block * high]: Q5_K's and Q6_K's high bits (qh) as
 *		GGUF has them; NULL for the other types
 * @s:		[n][k / block * head]: each block's scales as GGUF has them
 * @n:		rows
 * @k:		columns, whole blocks
 */
struct cuk_qmat {
	uint32_t	type;
	const uint8_t	*q;
	const uint8_t	*h;
	const uint8_t	*s;
	uint32_t	n;
	uint32_t	k;
};

cudaError_t cuk_embed(cudaStream_t s, float *x, const uint16_t *table, const int32_t *ids,
		      uint32_t n_rows, uint32_t dim);
cudaError_t cuk_embed_q(cudaStream_t s, float *x, const struct cuk_qmat *table,
			const int32_t *ids, uint32_t n_rows);
cudaError_t cuk_qmatvec(cudaStream_t s, float *y, uint32_t ldy, float beta,
			const struct cuk_qmat *w, const uint16_t *x, uint32_t rows);
cudaError_t cuk_qwiden(cudaStream_t s, uint16_t *out, const struct cuk_qmat *w, uint32_t row0,
		       uint32_t n_rows);

cudaError_t cuk_feed(cudaStream_t s, int32_t *ids, const int32_t *feed, const int32_t *tok,
		     uint32_t n_rows);

cudaError_t cuk_rmsnorm(cudaStream_t s, uint16_t *out, const float *x, const int32_t *rows,
			const float *w, uint32_t n_rows, uint32_t dim, float eps);

cudaError_t cuk_add_bias(cudaStream_t s, float *y, const float *bias, uint32_t n_rows,
			 uint32_t n, uint32_t ld);

/**
 * struct cuk_rope - what cuk_rope() rotates
 * @x:		rows of @ld floats; the heads to rotate lie from column 0
 *		(q: @n_head_q heads) and from column @k_off (k: @n_head_k heads)
 * @ld:		floats per row
 * @k_off:	first column of k
 * @pos:	position of each row
 * @inv_freq:	@n_rot / 2 frequencies (device memory, double)
 * @n_rows:	rows
 * @n_head_q:	q heads
 * @n_head_k:	k heads
 * @head_dim:	floats per head
 * @n_rot:	rotated floats of each head (even, <= @head_dim)
 * @neox:	rotate (x[i], x[i + n_rot/2]) instead of (x[2i], x[2i+1])
 */
struct cuk_rope {
	float		*x;
	uint32_t	ld;
	uint32_t	k_off;
	const int32_t	*pos;
	const double	*inv_freq;
	uint32_t	n_rows;
	uint32_t	n_head_q;
	uint32_t	n_head_k;
	uint32_t	head_dim;
	uint32_t	n_rot;
	int		neox;
};

cudaError_t cuk_rope(cudaStream_t s, const struct cuk_rope *r);

cudaError_t cuk_kv_store(cudaStream_t s, uint16_t *kv, const float *src, uint32_t ld,
			 uint32_t k_off, uint32_t v_off, const int32_t *slots, uint32_t n_rows,
			 uint32_t kv_dim, uint32_t block_size);

/* Query rows of one tile of attention, and the heads a tile can take. */
#define CUK_ATTN_TILE_ROWS		64
#define CUK_ATTN_TILE_MAX_HEAD_DIM	128

/*
 * Can rows of heads of @head_dim floats be tiles? The tensor cores take
 * 16 at a time, and the registers hold at most 128.
 */
static inline int cuk_attn_tiles_fit(uint32_t head_dim)
{
	return head_dim && head_dim % 16 == 0 && head_dim <= CUK_ATTN_TILE_MAX_HEAD_DIM;
}

/**
 * struct cuk_attn_tile - query rows that cuk_attention() takes together
 * @row:	the first: the tile is rows @row .. @row + @n - 1, which must
 *		be of one sequence (one block table) at consecutive positions,
 *		in order
 * @n:		rows, 1 .. CUK_ATTN_TILE_ROWS
 */
struct cuk_attn_tile {
	int32_t		row;
	int32_t		n;
};

/**
 * struct cuk_attn - one layer's paged attention over a step's rows
 * @out:	[row][n_head * head_dim] BF16, the heads' outputs side by side
 * @q:		[row][ldq] FP32, q heads from column 0 (already rotated)
 * @ldq:	floats per row of @q
 * @kv:		this layer's KV cache: [block][K, V][slot][n_head_kv * head_dim]
 *		BF16
 * @row_pos:	position of each row: it attends to positions 0 .. pos of
 *		its sequence (causal), whose K/V are already in the cache
 * @row_bt:	each row's block table, as an offset into @bt
 * @bt:		block tables, concatenated: position p of a row is in block
 *		@bt[@row_bt[row] + p / @block_size], slot p % @block_size
 * @part:	split-K scratch: n_rows * n_head * @n_splits * (head_dim + 2)
 *		floats; unused when @n_splits is 1
 * @rows:	the rows taken one by one: @rows[0 .. @n_rows - 1], or with
 *		NULL rows 0 .. @n_rows - 1
 * @n_rows:	rows (query tokens) taken one by one
 * @tiles:	rows taken as tiles (prefill chunks), a block per tile and head;
 *		no row may be in both
 * @n_tiles:	entries of @tiles; none unless cuk_attn_tiles_fit(@head_dim)
 * @n_head:	query heads
 * @n_head_kv:	KV heads; divides @n_head (GQA)
 * @head_dim:	floats per head, <= CUK_ATTN_MAX_HEAD_DIM
 * @block_size:	tokens per KV block
 * @scale:	multiplies q . k (1 / sqrt(head_dim))
 * @n_splits:	key ranges per row, each of @split_len positions, computed
 *		apart and merged by a second kernel; 1: one pass, no merge
 * @split_len:	positions per split; @n_splits * @split_len must cover the
 *		longest row's context
 */
struct cuk_attn {
	uint16_t	*out;
	const float	*q;
	uint32_t	ldq;
	const uint16_t	*kv;
	const int32_t	*row_pos;
	const int32_t	*row_bt;
	const int32_t	*bt;
	float		*part;
	const int32_t	*rows;
	uint32_t	n_rows;
	const struct cuk_attn_tile *tiles;
	uint32_t	n_tiles;
	uint32_t	n_head;
	uint32_t	n_head_kv;
	uint32_t	head_dim;
	uint32_t	block_size;
	float		scale;
	uint32_t	n_splits;
	uint32_t	split_len;
};

cudaError_t cuk_attention(cudaStream_t s, const struct cuk_attn *a);

cudaError_t cuk_swiglu(cudaStream_t s, uint16_t *out, const float *gate_up, uint32_t n_rows,
		       uint32_t n_ff);

/* Longest row cuk_sample() takes: its fixed-point weights must sum in 64 bits. */
#define CUK_SAMPLE_MAX_N	(1u << 23)
/* cuk_sample()'s answer for a row that asked for no token. */
#define CUK_SAMPLE_SKIP		(-1)
/* Float rounding allowed in top-p's sum, as the host's sampler allows. */
#define CUK_SAMPLE_TOP_P_SLACK	1e-6

/* &cuk_pen.n: the token is in the prompt; the other bits count it in the output. */
#define CUK_PEN_PROMPT		(1u << 31)

/**
 * struct cuk_pen - a token a row's penalties touch (the host's struct sampler_pen)
 * @id:		the token
 * @n:		its occurrences in the output, | CUK_PEN_PROMPT if in the prompt
 */
struct cuk_pen {
	uint32_t	id;
	uint32_t	n;
};

/**
 * struct cuk_sample_row - one row's sampling settings for cuk_sample()
 * @temperature:	0: greedy; > 0: the temperature; < 0: skip the row
 * @top_k:		keep the k largest and their ties, 0 = all
 * @top_p:		keep the smallest prefix with this share of the weight,
 *			(0, 1]
 * @min_p:		keep only p >= min_p * p_max, [0, 1]
 * @u:			the draw, uniform in [0, 1)
 * @rep:		repetition penalty (1 = off) on every listed token
 * @pres:		presence penalty on the listed tokens of the output
 * @freq:		frequency penalty, per occurrence in the output
 * @pen_off:		the row's entries in cuk_sample()'s @pen and @saved:
 *			@pen_n of them, and one slot more
 * @pen_n:		tokens the penalties touch, each listed once; with
 *			none and no @extra, the penalties are not applied
 * @extra:		0, or i + 1: the token at index i of cuk_sample()'s
 *			@ids counts once more in the output (a token fed on
 *			the device, which the host's list does not have yet)
 */
struct cuk_sample_row {
	float		temperature;
	uint32_t	top_k;
	float		top_p;
	float		min_p;
	float		u;
	float		rep;
	float		pres;
	float		freq;
	uint32_t	pen_off;
	uint32_t	pen_n;
	int32_t		extra;
};

cudaError_t cuk_sample(cudaStream_t s, int32_t *out, float *logprob, float *x,
		       const struct cuk_sample_row *rows, const struct cuk_pen *pen, float *saved,
		       const int32_t *ids, uint32_t n_rows, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* LLMQ_CUDA_KERNELS_H */
