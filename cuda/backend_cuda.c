// SPDX-License-Identifier: GPL-2.0
/*
 * The CUDA backend: the same LLaMA-family step as runtime/cpu/backend_cpu.c
 * (llama, qwen2) on one NVIDIA GPU. Weights and the paged KV cache live in
 * device memory in BF16, quantised weights (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)
 * as they are; every projection and the LM head is one cuBLAS GEMM over all tokens of
 * the step (BF16 in, FP32 accumulation and out), or for quantised weights
 * and a step of a few rows our own product that reads them once; the rest
 * is cuda/kernels/. The host side here plans the step, uploads its
 * small tables once, launches everything on one stream and waits once.
 *
 * Any CUDA or cuBLAS error becomes one line on stderr and -EIO from the
 * step; the caller fails that step's requests and goes on (a context that
 * is broken for good keeps answering -EIO).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "../runtime/backend.h"
#include "../runtime/dtype.h"
#include "../runtime/list.h"
#include "kernels.h"

#define CUDA_DEFAULT_MAX_TOKENS		512
#define CUDA_DEFAULT_UTILIZATION	0.9
/* Host staging for weight uploads: converted to BF16 this much at a time. */
#define CUDA_STAGE_BYTES		(16u << 20)
/*
 * A quantised matrix that a step of many rows multiplies is widened to BF16
 * this much at a time by default, each slice a GEMM: little enough that
 * the slice just written is still in L2 (40 MB on A100, 50 on H100) when
 * its GEMM reads it, large enough that each GEMM has work for every SM.
 */
#define CUDA_WIDEN_SLICE_BYTES		(16u << 20)
/*
 * Rows of a step up to which quantised weights are read as they are, in
 * passes of CUK_QMATVEC_MAX_ROWS (each pass reads the weights once more);
 * a longer step widens them. By estimate two passes of the product cost
 * less than widening (about 900 slices for a llama3-8b, their BF16 written
 * to L2 and read back), three about as much: a GPU's measurements should
 * set it (bench_cuda decodes 16 rows both ways).
 */
#define CUDA_QMATVEC_ROWS		16
/*
 * Penalty entries per row of max_tokens that a step's draws may list, on
 * average (8 bytes each, twice pinned and once on the device): a request
 * whose list does not fit in what a step has left is drawn by the host.
 */
#define CUDA_PEN_PER_ROW		1024
/* Shortest key range worth a split of its own in split-K attention. */
#define CUDA_ATTN_MIN_SPLIT		256
/*
 * Shortest prefill chunk whose attention runs as tiles on tensor cores
 * (cuk_attn_tile): one warp's 16 rows. Shorter ones, and decode tokens,
 * take the kernels of one row per block.
 */
#define CUDA_ATTN_TILE_MIN		16
/*
 * Decode batch sizes captured as CUDA graphs (those up to max_tokens): a
 * decode step is padded up to the next one. Fine steps where a step is
 * short, coarser where padding costs less than another graph's memory.
 */
static const uint32_t cuda_graph_sizes[] = {
	1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256,
};
#define CUDA_MAX_GRAPHS		(sizeof(cuda_graph_sizes) / sizeof(cuda_graph_sizes[0]))
/*
 * cuBLAS's workspace, ours so that no GEMM allocates while a graph is
 * captured; 32 MiB is what cuBLAS itself takes on Hopper.
 */
#define CUDA_BLAS_WORKSPACE		(32u << 20)

/*
 * A weight matrix on the device, [n][k] as GGUF stores it: BF16 (@bf16),
 * or quantised as it came, of GGUF type @type, its blocks split into
 * planes (@q, @s; see &struct cuk_qmat).
 */
struct cuda_mat {
	uint16_t	*bf16;
	uint8_t		*q, *h, *s;
	uint32_t	type;
	uint32_t	n, k;
};

/*
 * Tensors stacked by rows whose products fill consecutive columns of one
 * output (QKV, gate/up): one matrix, one GEMM, when they can be one (all of
 * one kept type, or none kept), else a matrix a tensor, each kept if its
 * type is, so that a Q4_K_M layer's Q6_K attn_v beside Q4_K q and k keeps
 * every byte as it came, for a product each.
 */
struct cuda_stack {
	struct cuda_mat	part[3];
	uint32_t	n_parts;
};

/*
 * One layer's weights on the device; QKV and gate/up fused into one GEMM
 * each where their types allow (struct cuda_stack).
 */
struct cuda_layer {
	struct cuda_stack wqkv;		/* [q_dim + 2 kv_dim][n_embd] */
	float		*bqkv;		/* [q_dim + 2 kv_dim] or NULL */
	struct cuda_mat	wo;		/* [n_embd][q_dim] */
	struct cuda_stack wgu;		/* [2 n_ff][n_embd]: gate rows, then up rows */
	struct cuda_mat	wdown;		/* [n_embd][n_ff] */
	float		*attn_norm, *ffn_norm;
};

/*
 * The step's tables, built on the host in one pinned buffer and copied in
 * one transfer: per row its token, position, cache slot and block-table
 * offset; the rows that need logits and how each is sampled; which rows
 * attention takes one by one (arow) and which as tiles; the block tables
 * themselves; the tokens the penalised draws' penalties touch.
 */
struct cuda_plan {
	int32_t			*ids, *pos, *slot, *bt_off, *out_rows, *feed, *arow;
	struct cuk_attn_tile	*tile;
	struct cuk_sample_row	*draw;
	int32_t			*bt;
	struct cuk_pen		*pen;
};

/*
 * int32 slots of the per-row part of a plan, per row: 7 arrays, a tile
 * (a step has at most one per row) and a draw.
 */
#define PLAN_ROW_WORDS	(7 + (sizeof(struct cuk_attn_tile) + \
			      sizeof(struct cuk_sample_row)) / sizeof(int32_t))

/* What plan_step() counts of a step. */
struct plan_counts {
	uint32_t	longest;	/* positions of the longest context */
	uint32_t	bt;		/* block-table entries */
	uint32_t	pen;		/* penalty entries */
	uint32_t	arows;		/* rows attention takes one by one */
	uint32_t	tiles;		/* and tiles */
};

/*
 * A step submitted (cuda_submit()) and not yet waited for: the sequences
 * its wait hands their tokens, and for the step after it, which of their
 * draws a decode may be fed (@draw_row: the out row of each sequence drawn
 * on the device, else -1).
 */
struct cuda_inflight {
	const struct backend_seq	*seqs;
	uint32_t			n_seqs;
	uint32_t			n_draw;
	int32_t				*draw_row;
	bool				feedable;
};

struct backend_cuda {
	struct backend		b;
	int			device;
	cudaStream_t		stream;
	cublasHandle_t		blas;
	uint32_t		n_embd, n_head, n_head_kv, head_dim, n_ff, n_layer, n_rot;
	uint32_t		q_dim, kv_dim, qkv_dim;
	uint32_t		max_bt;		/* block-table entries per step */
	int			sm_count;
	float			attn_scale, rms_eps;
	bool			neox, broken;
	bool			tiled;		/* prefill attention as tiles */
	bool			keep_quant;	/* quantised weights stay so */
	size_t			widen_slice;	/* bytes widened at a time */
	uint32_t		matvec_rows;	/* up to which a step reads them */
	/* Weights. */
	struct cuda_mat		tok_embd, *head;	/* head may be &tok_embd (tied) */
	struct cuda_mat		out_head;
	float			*out_norm;
	double			*inv_freq;
	struct cuda_layer	*layers;
	/*
	 * The KV cache: [layer][block][K, V][slot][kv_dim] BF16, kv_blocks =
	 * n_blocks + 1: the last one is the padded rows' of a graph.
	 */
	uint16_t		*kv;
	uint32_t		kv_blocks;
	void			*blas_ws;
	/* Decode graphs: batch sizes, the captured ones, those that failed. */
	uint32_t		n_graphs;
	uint32_t		graph_rows[CUDA_MAX_GRAPHS];
	cudaGraphExec_t		graph[CUDA_MAX_GRAPHS];
	bool			graph_off[CUDA_MAX_GRAPHS];
	/* Per-step scratch on the device, max_tokens rows each. */
	float			*x, *qkv, *gu, *logits, *part;
	uint16_t		*xb, *att, *hb;
	uint16_t		*wide;		/* a slice widened (widen_slice) */
	size_t			wide_bytes;
	void			*d_plan;	/* the plan's arrays, device side */
	float			*pen_saved;	/* raw logits while penalised */
	size_t			plan_bytes;
	struct cuda_plan	hp, dp;		/* hp: the slot being submitted */
	/* Tokens drawn on the device and their log-probabilities, per out row. */
	int32_t			*d_tok;
	float			*d_lp;
	/*
	 * Two steps may be out at once (one running, the next queued behind
	 * it), each with its own slot: the plan's host side, where its drawn
	 * tokens land, the event that says it is done. Step n is in slot n % 2.
	 */
	void			*h_plan[2];
	int32_t			*h_tok[2];
	float			*h_lp[2];
	cudaEvent_t		done[2];
	struct cuda_inflight	fl[2];
	uint64_t		n_submitted, n_waited;
};

static struct backend_cuda *to_cuda(struct backend *b)
{
	return container_of(b, struct backend_cuda, b);
}

/*
 * Check a CUDA runtime call: on failure say which call failed where, and
 * yield -EIO. Used as: if (cu_err(cudaFoo(...), "what", err, len)) goto fail.
 */
static int cu_err(cudaError_t e, const char *what, char *err, size_t len)
{
	if (e == cudaSuccess)
		return 0;
	return backend_errf(err, len, -EIO, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
			    cudaGetErrorName(e));
}

static const char *blas_str(cublasStatus_t s)
{
	switch (s) {
	case CUBLAS_STATUS_NOT_INITIALIZED:	return "not initialized";
	case CUBLAS_STATUS_ALLOC_FAILED:	return "allocation failed";
	case CUBLAS_STATUS_INVALID_VALUE:	return "invalid value";
	case CUBLAS_STATUS_ARCH_MISMATCH:	return "architecture mismatch";
	case CUBLAS_STATUS_MAPPING_ERROR:	return "mapping error";
	case CUBLAS_STATUS_EXECUTION_FAILED:	return "execution failed";
	case CUBLAS_STATUS_INTERNAL_ERROR:	return "internal error";
	case CUBLAS_STATUS_NOT_SUPPORTED:	return "not supported";
	default:				return "error";
	}
}

static int blas_err(cublasStatus_t s, const char *what, char *err, size_t len)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return 0;
	return backend_errf(err, len, -EIO, "cublas: %s: %s (%d)", what, blas_str(s), (int)s);
}

/*
 * A step's error: one line on stderr (a step has no err buffer). Waits for
 * what was queued; a sticky error (a fault inside a kernel) shows again
 * there and leaves the context unusable for good, so later steps fail at
 * once. A launch error that is not sticky is cleared.
 */
static int step_err(struct backend_cuda *c, int ret, const char *msg)
{
	cudaError_t e;

	fprintf(stderr, "llmq: cuda backend: %s\n", msg);
	e = cudaStreamSynchronize(c->stream);
	(void)cudaGetLastError();
	if (e != cudaSuccess)
		c->broken = true;
	return ret;
}

/**
 * backend_cuda_kv_block_bytes() - bytes one KV block takes on the GPU
 * @m:		the model
 * @block_size:	tokens per block
 *
 * Return: 2 (K and V) * layers * @block_size * kv heads * head_dim * 2 (BF16).
 */
size_t backend_cuda_kv_block_bytes(const struct model *m, uint32_t block_size)
{
	return (size_t)2 * m->hp.n_layer * block_size * m->hp.n_head_kv * m->hp.head_dim *
	       sizeof(uint16_t);
}

static int dev_alloc(void *pp, size_t bytes, const char *what, char *err, size_t len)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "cudaMalloc %zu bytes for %s", bytes, what);
	return cu_err(cudaMalloc((void **)pp, bytes ? bytes : 1), msg, err, len);
}

/*
 * Upload rows of one weight tensor (any dtype llmq reads: dequantised on the
 * host, then rounded to BF16) to @dst, @stage_bytes at a time.
 */
static int upload_bf16(uint16_t *dst, const struct gguf_tensor *t, uint16_t *stage, float *row,
		       char *err, size_t len)
{
	uint64_t k = t->ne[0], n = t->nelem / t->ne[0], rb, r, done = 0, i;
	size_t per = CUDA_STAGE_BYTES / sizeof(uint16_t) / k;

	if (dtype_row_bytes(t->type, k, &rb) || !per)
		return backend_errf(err, len, -EINVAL, "tensor %.*s: type %u, row of %lu",
				    (int)t->name.len, t->name.p, t->type, (unsigned long)k);
	/*
	 * BF16 is what the device holds: the file's bytes go as they are, in
	 * one copy, not through a widening and a rounding that give them back
	 * (a llama3-8b's 16 GB on one core, seconds of a GPU lease).
	 */
	if (t->type == GGML_TYPE_BF16)
		return cu_err(cudaMemcpy(dst, t->data, t->nelem * sizeof(uint16_t),
					 cudaMemcpyHostToDevice), "upload weights", err, len);
	for (r = 0; r < n; r++) {
		if (dequantize(t->type, (const uint8_t *)t->data + r * rb, row, k))
			return backend_errf(err, len, -EINVAL, "tensor %.*s: cannot dequantise",
					    (int)t->name.len, t->name.p);
		for (i = 0; i < k; i++)
			stage[(r - done) * k + i] = fp32_to_bf16(row[i]);
		if (r + 1 - done == per || r + 1 == n) {
			if (cu_err(cudaMemcpy(dst + done * k, stage, (r + 1 - done) * k * 2,
					      cudaMemcpyHostToDevice), "upload weights", err, len))
				return -EIO;
			done = r + 1;
		}
	}
	return 0;
}

/* An F32 vector (norm weights, biases) to @dst. */
static int upload_f32(float *dst, const struct gguf_tensor *t, char *err, size_t len)
{
	return cu_err(cudaMemcpy(dst, t->data, t->nelem * sizeof(float), cudaMemcpyHostToDevice),
		      "upload vector", err, len);
}

_Static_assert(CUK_Q8_0 == GGML_TYPE_Q8_0 && CUK_Q4_0 == GGML_TYPE_Q4_0 &&
	       CUK_Q4_K == GGML_TYPE_Q4_K && CUK_Q5_K == GGML_TYPE_Q5_K &&
	       CUK_Q6_K == GGML_TYPE_Q6_K, "the kernels' type numbers are GGUF's");

/*
 * Rows of one quantised tensor to the planes @q, @h and @s (cuk_qsplit()),
 * CUDA_STAGE_BYTES at a time.
 */
static int upload_quant(uint8_t *q, uint8_t *h, uint8_t *s, const struct gguf_tensor *t,
			uint8_t *stage, char *err, size_t len)
{
	const struct cuk_qtype *qt = cuk_qtype(t->type);
	const uint32_t bs = qt->head + qt->high + qt->body;
	const uint8_t *src = t->data;
	uint64_t nb = t->ne[0] / qt->block, n = t->nelem / t->ne[0], r, done;
	size_t per = CUDA_STAGE_BYTES / (nb * bs);
	uint8_t *sq = stage, *sh = sq + per * nb * qt->body, *ss = sh + per * nb * qt->high;

	if (!per)
		return backend_errf(err, len, -EINVAL, "tensor %.*s: a row of %lu blocks",
				    (int)t->name.len, t->name.p, (unsigned long)nb);
	for (done = 0; done < n; done += r) {
		r = n - done < per ? n - done : per;
		cuk_qsplit(qt, src + done * nb * bs, r * nb, ss, sh, sq);
		if (cu_err(cudaMemcpy(q + done * nb * qt->body, sq, r * nb * qt->body,
				      cudaMemcpyHostToDevice), "upload weights", err, len) ||
		    (qt->high && cu_err(cudaMemcpy(h + done * nb * qt->high, sh, r * nb * qt->high,
						   cudaMemcpyHostToDevice), "upload weights",
					err, len)) ||
		    cu_err(cudaMemcpy(s + done * nb * qt->head, ss, r * nb * qt->head,
				      cudaMemcpyHostToDevice), "upload scales", err, len))
			return -EIO;
	}
	return 0;
}

/*
 * Do @n tensors stacked by rows stay quantised? All of one type the kernels
 * take (cuk_qtype()), unless told not to.
 */
static bool stack_kept(const struct backend_cuda *c, const struct gguf_tensor *const *t, int n)
{
	const struct cuk_qtype *qt = cuk_qtype(t[0]->type);
	int i;

	if (!c->keep_quant || !qt)
		return false;
	for (i = 0; i < n; i++)
		if (t[i]->type != t[0]->type || t[i]->ne[0] % qt->block)
			return false;
	return true;
}

/*
 * Several tensors of one width stacked by rows into one matrix, allocated
 * here: quantised if all are of one kept type (and c->keep_quant), else
 * BF16.
 */
static int upload_mat(struct backend_cuda *c, struct cuda_mat *w,
		      const struct gguf_tensor *const *t, int n, void *stage, float *row,
		      char *err, size_t len)
{
	const struct cuk_qtype *qt = cuk_qtype(t[0]->type);
	uint64_t total = 0, at = 0, k = t[0]->ne[0], qb, hb, sb;
	size_t bytes;
	int i, ret;

	for (i = 0; i < n; i++)
		total += t[i]->nelem / k;
	w->n = (uint32_t)total;
	w->k = (uint32_t)k;
	if (stack_kept(c, t, n)) {
		w->type = t[0]->type;
		qb = k / qt->block * qt->body;
		hb = k / qt->block * qt->high;
		sb = k / qt->block * qt->head;
		bytes = total * (qb + hb + sb);
		ret = dev_alloc(&w->q, total * qb, "weights", err, len);
		if (!ret && hb)
			ret = dev_alloc(&w->h, total * hb, "weights' high bits", err, len);
		ret = ret ? ret : dev_alloc(&w->s, total * sb, "weight scales", err, len);
		for (i = 0; !ret && i < n; i++) {
			ret = upload_quant(w->q + at * qb, w->h ? w->h + at * hb : NULL,
					   w->s + at * sb, t[i], stage, err, len);
			at += t[i]->nelem / k;
		}
	} else {
		bytes = total * k * sizeof(uint16_t);
		ret = dev_alloc(&w->bf16, bytes, "weights", err, len);
		for (i = 0; !ret && i < n; i++) {
			ret = upload_bf16(w->bf16 + at * k, t[i], stage, row, err, len);
			at += t[i]->nelem / k;
		}
	}
	if (!ret)
		c->b.weight_bytes += bytes;
	return ret;
}

/* @n tensors (at most 3) stacked as one matrix, or kept a matrix each (struct cuda_stack). */
static int upload_stack(struct backend_cuda *c, struct cuda_stack *st,
			const struct gguf_tensor *const *t, int n, void *stage, float *row,
			char *err, size_t len)
{
	bool some = false;
	int i, ret = 0;

	for (i = 0; i < n; i++)
		some |= stack_kept(c, &t[i], 1);
	if (!some || stack_kept(c, t, n)) {
		st->n_parts = 1;
		return upload_mat(c, &st->part[0], t, n, stage, row, err, len);
	}
	st->n_parts = (uint32_t)n;
	for (i = 0; !ret && i < n; i++)
		ret = upload_mat(c, &st->part[i], &t[i], 1, stage, row, err, len);
	return ret;
}

/* A kept matrix as the kernels take it. */
static struct cuk_qmat qmat(const struct cuda_mat *w)
{
	return (struct cuk_qmat){
		.type = w->type, .q = w->q, .h = w->h, .s = w->s, .n = w->n, .k = w->k,
	};
}

static void free_mat(struct cuda_mat *w)
{
	cudaFree(w->bf16);
	cudaFree(w->q);
	cudaFree(w->h);
	cudaFree(w->s);
}

static void free_stack(struct cuda_stack *st)
{
	uint32_t i;

	for (i = 0; i < st->n_parts; i++)
		free_mat(&st->part[i]);
}

/* Rows of quantised matrix @w that one slice widens to BF16: 1 .. w->n. */
static uint32_t slice_rows(const struct backend_cuda *c, const struct cuda_mat *w)
{
	size_t rows = c->widen_slice / ((size_t)w->k * sizeof(uint16_t));

	return rows < 1 ? 1 : rows > w->n ? w->n : (uint32_t)rows;
}

/* The widening scratch @w needs, if it is quantised, into c->wide_bytes. */
static void need_wide(struct backend_cuda *c, const struct cuda_mat *w)
{
	size_t bytes;

	if (!w->q)
		return;
	bytes = (size_t)slice_rows(c, w) * w->k * sizeof(uint16_t);
	if (bytes > c->wide_bytes)
		c->wide_bytes = bytes;
}

static void need_wide_stack(struct backend_cuda *c, const struct cuda_stack *st)
{
	uint32_t i;

	for (i = 0; i < st->n_parts; i++)
		need_wide(c, &st->part[i]);
}

static int upload_weights(struct backend_cuda *c, char *err, size_t len)
{
	const struct model *m = c->b.model;
	uint64_t widest = m->hp.n_embd > m->hp.n_ff ? m->hp.n_embd : m->hp.n_ff;
	uint16_t *stage;
	float *row;
	uint32_t i;
	int ret;

	if (widest < c->q_dim)
		widest = c->q_dim;
	stage = malloc(CUDA_STAGE_BYTES);
	row = malloc(widest * sizeof(float));
	c->layers = calloc(c->n_layer, sizeof(*c->layers));
	if (!stage || !row || !c->layers) {
		ret = backend_errf(err, len, -ENOMEM, "out of host memory");
		goto out;
	}
	ret = upload_mat(c, &c->tok_embd, &m->tok_embd, 1, stage, row, err, len);
	c->head = &c->tok_embd;		/* tied embeddings */
	if (!ret && m->output) {
		c->head = &c->out_head;
		ret = upload_mat(c, c->head, &m->output, 1, stage, row, err, len);
	}
	need_wide(c, c->head);
	ret = ret ? ret : dev_alloc(&c->out_norm, c->n_embd * sizeof(float), "norm", err, len);
	ret = ret ? ret : upload_f32(c->out_norm, m->output_norm, err, len);
	for (i = 0; !ret && i < c->n_layer; i++) {
		const struct model_layer *l = &m->layers[i];
		struct cuda_layer *d = &c->layers[i];
		const struct gguf_tensor *qkv[3] = { l->wq, l->wk, l->wv };
		const struct gguf_tensor *gu[2] = { l->w_gate, l->w_up };

		ret = upload_stack(c, &d->wqkv, qkv, 3, stage, row, err, len);
		ret = ret ? ret : upload_mat(c, &d->wo, &l->wo, 1, stage, row, err, len);
		ret = ret ? ret : upload_stack(c, &d->wgu, gu, 2, stage, row, err, len);
		ret = ret ? ret : upload_mat(c, &d->wdown, &l->w_down, 1, stage, row, err, len);
		need_wide_stack(c, &d->wqkv);
		need_wide(c, &d->wo);
		need_wide_stack(c, &d->wgu);
		need_wide(c, &d->wdown);
		ret = ret ? ret : dev_alloc(&d->attn_norm, c->n_embd * 4, "norm", err, len);
		ret = ret ? ret : upload_f32(d->attn_norm, l->attn_norm, err, len);
		ret = ret ? ret : dev_alloc(&d->ffn_norm, c->n_embd * 4, "norm", err, len);
		ret = ret ? ret : upload_f32(d->ffn_norm, l->ffn_norm, err, len);
		if (!ret && l->bq) {
			ret = dev_alloc(&d->bqkv, c->qkv_dim * sizeof(float), "bias", err, len);
			ret = ret ? ret : upload_f32(d->bqkv, l->bq, err, len);
			ret = ret ? ret : upload_f32(d->bqkv + c->q_dim, l->bk, err, len);
			ret = ret ? ret : upload_f32(d->bqkv + c->q_dim + c->kv_dim, l->bv, err,
						     len);
		}
	}
out:
	free(stage);
	free(row);
	return ret;
}

/*
 * y[rows][n] (FP32) = x[rows][k] (BF16) . W^T, W [n][k] BF16 row-major as
 * GGUF stores it, plus beta * y (beta 1: the residual add for free).
 * cuBLAS is column-major: W is a k x n matrix with ld k, so y^T (n x rows)
 * = op(W)^T (n x k) . x^T (k x rows): OP_T on W, OP_N on x.
 */
static cublasStatus_t blas_gemm(struct backend_cuda *c, const uint16_t *w, uint32_t n,
				uint32_t k, const uint16_t *x, uint32_t rows, float *y,
				uint32_t ldy, float beta)
{
	const float alpha = 1.0f;

	return cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, k, &alpha, w,
			    CUDA_R_16BF, k, x, CUDA_R_16BF, k, &beta, y, CUDA_R_32F, ldy,
			    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

/*
 * y[rows][0 .. w->n) = x . W^T + beta * y, as blas_gemm(), for @what. A
 * quantised W is read as it is by a step of up to c->matvec_rows rows
 * (CUK_QMATVEC_MAX_ROWS at a time), which waits for its bytes, not its
 * arithmetic; a longer step widens it to BF16 a slice of rows at a time
 * (c->wide), each slice one GEMM into its columns of y, so that the tensor
 * cores do the arithmetic. Return: 0, or -EIO with a message in @msg.
 */
static int gemm(struct backend_cuda *c, const struct cuda_mat *w, const uint16_t *x,
		uint32_t rows, float *y, uint32_t ldy, float beta, const char *what, char *msg,
		size_t len)
{
	const struct cuk_qmat q = qmat(w);
	uint32_t r0, nr, slice;

	if (!w->q)
		return blas_err(blas_gemm(c, w->bf16, w->n, w->k, x, rows, y, ldy, beta), what,
				msg, len);
	if (!rows)
		return 0;
	if (rows <= c->matvec_rows) {
		for (r0 = 0; r0 < rows; r0 += nr) {
			nr = rows - r0 < CUK_QMATVEC_MAX_ROWS ? rows - r0 : CUK_QMATVEC_MAX_ROWS;
			if (cu_err(cuk_qmatvec(c->stream, y + (size_t)r0 * ldy, ldy, beta, &q,
					       x + (size_t)r0 * w->k, nr), what, msg, len))
				return -EIO;
		}
		return 0;
	}
	slice = slice_rows(c, w);
	for (r0 = 0; r0 < w->n; r0 += nr) {
		nr = w->n - r0 < slice ? w->n - r0 : slice;
		if (cu_err(cuk_qwiden(c->stream, c->wide, &q, r0, nr), what, msg, len) ||
		    blas_err(blas_gemm(c, c->wide, nr, w->k, x, rows, y + r0, ldy, beta), what,
			     msg, len))
			return -EIO;
	}
	return 0;
}

/* y = x . W^T for a stack: each part's product into its columns of y. */
static int gemm_stack(struct backend_cuda *c, const struct cuda_stack *st, const uint16_t *x,
		      uint32_t rows, float *y, uint32_t ldy, const char *what, char *msg,
		      size_t len)
{
	uint32_t i;

	for (i = 0; i < st->n_parts; i++) {
		if (gemm(c, &st->part[i], x, rows, y, ldy, 0.0f, what, msg, len))
			return -EIO;
		y += st->part[i].n;
	}
	return 0;
}

/* Carve the plan's arrays out of one buffer (host or device). */
static void plan_layout(struct cuda_plan *p, void *base, uint32_t T, uint32_t max_bt)
{
	int32_t *a = base;

	p->ids = a;
	p->pos = a + T;
	p->slot = a + 2 * (size_t)T;
	p->bt_off = a + 3 * (size_t)T;
	p->out_rows = a + 4 * (size_t)T;
	p->feed = a + 5 * (size_t)T;
	p->arow = a + 6 * (size_t)T;
	p->tile = (struct cuk_attn_tile *)(a + 7 * (size_t)T);
	p->draw = (struct cuk_sample_row *)(p->tile + T);
	p->bt = a + PLAN_ROW_WORDS * (size_t)T;
	p->pen = (struct cuk_pen *)(p->bt + max_bt);
}

_Static_assert(sizeof(struct sampler_pen) == sizeof(struct cuk_pen) &&
	       offsetof(struct sampler_pen, n) == offsetof(struct cuk_pen, n) &&
	       SAMPLER_PEN_PROMPT == CUK_PEN_PROMPT, "the host's penalty list is the kernel's");

/*
 * A drawn row's settings; a penalised one's token list goes to the plan's
 * at *@pen_used, and @extra (0: none, else row + 1) is the row whose
 * token, fed on the device, its list has not counted yet.
 */
static struct cuk_sample_row plan_draw(struct backend_cuda *c, const struct sampler_draw *d,
				       int32_t extra, uint32_t *pen_used)
{
	struct cuk_sample_row r = {
		.temperature = d->temperature, .top_k = d->top_k, .top_p = d->top_p,
		.min_p = d->min_p, .u = d->u, .rep = 1.0f,
	};

	if (!backend_draw_penalised(d))
		return r;
	r.rep = d->rep;
	r.pres = d->pres;
	r.freq = d->freq;
	r.pen_off = *pen_used;
	r.pen_n = d->n_pen;
	r.extra = extra;
	memcpy(c->hp.pen + *pen_used, d->pen, (size_t)d->n_pen * sizeof(*d->pen));
	*pen_used += d->n_pen + 1;
	return r;
}

/*
 * Attention's share of a sequence's rows, @row onwards: a long enough
 * prefill chunk as tiles of up to CUK_ATTN_TILE_ROWS rows, anything else
 * row by row.
 */
static void plan_attn(struct backend_cuda *c, uint32_t row, uint32_t n, struct plan_counts *k)
{
	uint32_t j;

	if (!c->tiled || n < CUDA_ATTN_TILE_MIN) {
		for (j = 0; j < n; j++)
			c->hp.arow[k->arows++] = (int32_t)(row + j);
		return;
	}
	for (j = 0; j < n; j += CUK_ATTN_TILE_ROWS)
		c->hp.tile[k->tiles++] = (struct cuk_attn_tile){
			.row = (int32_t)(row + j),
			.n = (int32_t)(n - j < CUK_ATTN_TILE_ROWS ? n - j : CUK_ATTN_TILE_ROWS),
		};
}

/*
 * Fill the host plan, count what @k counts, and in @fl->n_draw the rows of
 * logits the device samples.
 */
static void plan_step(struct backend_cuda *c, const struct backend_seq *seqs, uint32_t n_seqs,
		      struct cuda_inflight *fl, struct plan_counts *k)
{
	uint32_t bs = c->b.block_size, i, j, row = 0, o = 0, bt = 0;
	const struct cuk_sample_row skip = { .temperature = -1.0f };
	const struct cuda_inflight *prev = &c->fl[(c->n_submitted + 1) % 2];

	fl->n_draw = 0;
	*k = (struct plan_counts){ 0 };

	for (i = 0; i < n_seqs; i++) {
		const struct backend_seq *s = &seqs[i];
		uint32_t nb = (s->pos + s->n_tokens + bs - 1) / bs;
		uint32_t first = s->logits == BACKEND_LOGITS_ALL ? 0 : s->n_tokens - 1;

		plan_attn(c, row, s->n_tokens, k);
		for (j = 0; j < nb; j++)
			c->hp.bt[bt + j] = s->block_table[j];
		fl->draw_row[i] = -1;
		for (j = 0; j < s->n_tokens; j++, row++) {
			uint32_t p = s->pos + j;

			/* A fed token is the device's; cuda_submit() checked the feed. */
			c->hp.ids[row] = s->feed ? 0 : s->tokens[j];
			c->hp.feed[row] = s->feed ? prev->draw_row[s->feed - 1] : -1;
			c->hp.pos[row] = p;
			c->hp.slot[row] = s->block_table[p / bs] * bs + p % bs;
			c->hp.bt_off[row] = bt;
			if (s->logits == BACKEND_LOGITS_NONE || j < first)
				continue;
			c->hp.draw[o] = skip;
			if (s->sample) {
				c->hp.draw[o] = plan_draw(c, &s->sample->set,
							  s->feed ? (int32_t)row + 1 : 0, &k->pen);
				fl->n_draw++;
				fl->draw_row[i] = (int32_t)o;
			}
			c->hp.out_rows[o++] = row;
		}
		bt += nb;
		if (s->pos + s->n_tokens > k->longest)
			k->longest = s->pos + s->n_tokens;
	}
	k->bt = bt;
}

/* Attention blocks per row: see cuk_attention(). */
static uint32_t attn_heads_per_row(const struct backend_cuda *c)
{
	return c->n_head / c->n_head_kv <= CUK_ATTN_MAX_GROUP ? c->n_head_kv : c->n_head;
}

/*
 * How a step's attention runs (see struct cuk_attn): @n_rows rows one by
 * one, the plan's arow (@listed) or rows 0 .. @n_rows - 1, each in
 * @n_splits ranges of @split_len keys; and @n_tiles tiles of the plan.
 */
struct attn_shape {
	bool		listed;
	uint32_t	n_rows, n_tiles, n_splits, split_len;
};

/*
 * Split-K only when the rows alone leave the GPU idle (a small decode
 * batch: fewer blocks than two per multiprocessor) and the context is long
 * enough to share: as many splits of at least CUDA_ATTN_MIN_SPLIT keys as
 * make about two blocks per multiprocessor. A block is a (row, KV head),
 * or a (row, query head) for GQA groups over CUK_ATTN_MAX_GROUP. With B <
 * 2 S blocks and n = ceil(2 S / B) splits, n * B < 2 S + B < 4 S blocks,
 * each with a partial per query head it computes: the scratch holds 4 S x
 * group size partials.
 */
static void attn_splits(struct backend_cuda *c, uint32_t longest, struct attn_shape *a)
{
	uint64_t blocks = (uint64_t)a->n_rows * attn_heads_per_row(c);
	uint32_t n = 1;

	if (blocks && blocks < 2ull * c->sm_count) {
		n = (2ull * c->sm_count + blocks - 1) / blocks;
		if (n > (longest + CUDA_ATTN_MIN_SPLIT - 1) / CUDA_ATTN_MIN_SPLIT)
			n = (longest + CUDA_ATTN_MIN_SPLIT - 1) / CUDA_ATTN_MIN_SPLIT;
		if (n > CUK_ATTN_MAX_SPLITS)
			n = CUK_ATTN_MAX_SPLITS;
		if (!n)
			n = 1;
	}
	a->n_splits = n;
	a->split_len = (longest + n - 1) / n;
}

/* Launch status to -EIO with a message naming the kernel. */
#define LAUNCH(call, what)						\
	do {								\
		cudaError_t e_ = (call);				\
		if (e_ != cudaSuccess) {				\
			snprintf(msg, sizeof(msg), "%s: %s", (what),	\
				 cudaGetErrorString(e_));		\
			return step_err(c, -EIO, msg);			\
		}							\
	} while (0)

/*
 * Queue the copies of the rows of logits the host samples: runs of rows
 * that the device does not, one copy per run (usually one in all).
 */
static int copy_rows(struct backend_cuda *c, float *logits, uint32_t n_out, char *msg,
		     size_t len)
{
	size_t v = c->b.n_vocab;
	uint32_t o = 0, end;
	cudaError_t e;

	while (o < n_out) {
		if (c->hp.draw[o].temperature >= 0.0f) {
			o++;
			continue;
		}
		for (end = o + 1; end < n_out && c->hp.draw[end].temperature < 0.0f; end++)
			;
		e = cudaMemcpyAsync(logits + o * v, c->logits + o * v, (end - o) * v * sizeof(float),
				    cudaMemcpyDeviceToHost, c->stream);
		if (e != cudaSuccess) {
			snprintf(msg, len, "copy logits: %s", cudaGetErrorString(e));
			return -EIO;
		}
		o = end;
	}
	return 0;
}

/* After the step: each drawn token to its sequence. */
static int take_draws(struct backend_cuda *c, unsigned int slot)
{
	const struct cuda_inflight *fl = &c->fl[slot];
	size_t v = c->b.n_vocab;
	uint32_t i, o = 0;
	char msg[160];

	for (i = 0; i < fl->n_seqs; i++) {
		const struct backend_seq *s = &fl->seqs[i];
		int32_t tok;

		if (s->logits == BACKEND_LOGITS_NONE)
			continue;
		if (s->logits == BACKEND_LOGITS_ALL) {
			o += s->n_tokens;
			continue;
		}
		if (s->sample) {
			tok = c->h_tok[slot][o];
			s->sample->token = BACKEND_NO_TOKEN;
			if (tok < 0 || (uint32_t)tok >= v) {
				snprintf(msg, sizeof(msg), "sample: row %u came back as %d", o, tok);
				return step_err(c, -EIO, msg);
			}
			s->sample->token = (uint32_t)tok;
			s->sample->logprob = c->h_lp[slot][o];
		}
		o++;
	}
	return 0;
}

/* The step's rows of the embedding table, in FP32, to c->x. */
static cudaError_t embed(struct backend_cuda *c, uint32_t n_rows)
{
	const struct cuda_mat *t = &c->tok_embd;
	const struct cuk_qmat q = qmat(t);

	if (t->q)
		return cuk_embed_q(c->stream, c->x, &q, c->dp.ids, n_rows);
	return cuk_embed(c->stream, c->x, t->bf16, c->dp.ids, n_rows, t->k);
}

/*
 * Queue the forward of @n_rows rows whose tables are on the device (c->dp),
 * the LM head over @n_out of them and, with @draw, the sampling kernel over
 * those. Launches and GEMMs only, no copy and no synchronisation, so the
 * same calls can be captured into a CUDA graph. Return: 0, or -EIO with a
 * message in @msg.
 */
static int queue_forward(struct backend_cuda *c, uint32_t n_rows, uint32_t n_out,
			 const struct attn_shape *as, bool draw, char *msg, size_t len)
{
	const struct backend *b = &c->b;
	size_t layer_kv = (size_t)c->kv_blocks * 2 * b->block_size * c->kv_dim;
	struct cuk_rope rope;
	struct cuk_attn attn;
	uint32_t i;

	if (cu_err(cuk_feed(c->stream, c->dp.ids, c->dp.feed, c->d_tok, n_rows), "feed", msg,
		   len) ||
	    cu_err(embed(c, n_rows), "embed", msg, len))
		return -EIO;
	rope = (struct cuk_rope){
		.x = c->qkv, .ld = c->qkv_dim, .k_off = c->q_dim, .pos = c->dp.pos,
		.inv_freq = c->inv_freq, .n_rows = n_rows, .n_head_q = c->n_head,
		.n_head_k = c->n_head_kv, .head_dim = c->head_dim, .n_rot = c->n_rot,
		.neox = c->neox,
	};
	attn = (struct cuk_attn){
		.out = c->att, .q = c->qkv, .ldq = c->qkv_dim, .row_pos = c->dp.pos,
		.row_bt = c->dp.bt_off, .bt = c->dp.bt, .part = c->part,
		.rows = as->listed ? c->dp.arow : NULL, .n_rows = as->n_rows,
		.tiles = c->dp.tile, .n_tiles = as->n_tiles, .n_head = c->n_head,
		.n_head_kv = c->n_head_kv, .head_dim = c->head_dim, .block_size = b->block_size,
		.scale = c->attn_scale, .n_splits = as->n_splits, .split_len = as->split_len,
	};
	for (i = 0; i < c->n_layer; i++) {
		const struct cuda_layer *l = &c->layers[i];
		uint16_t *kv = c->kv + i * layer_kv;

		if (cu_err(cuk_rmsnorm(c->stream, c->xb, c->x, NULL, l->attn_norm, n_rows,
				       c->n_embd, c->rms_eps), "attn_norm", msg, len) ||
		    gemm_stack(c, &l->wqkv, c->xb, n_rows, c->qkv, c->qkv_dim, "qkv", msg, len) ||
		    (l->bqkv && cu_err(cuk_add_bias(c->stream, c->qkv, l->bqkv, n_rows,
						    c->qkv_dim, c->qkv_dim), "qkv bias", msg, len)) ||
		    cu_err(cuk_rope(c->stream, &rope), "rope", msg, len) ||
		    cu_err(cuk_kv_store(c->stream, kv, c->qkv, c->qkv_dim, c->q_dim,
					c->q_dim + c->kv_dim, c->dp.slot, n_rows, c->kv_dim,
					b->block_size), "kv store", msg, len))
			return -EIO;
		attn.kv = kv;
		if (cu_err(cuk_attention(c->stream, &attn), "attention", msg, len) ||
		    gemm(c, &l->wo, c->att, n_rows, c->x, c->n_embd, 1.0f, "attn output", msg,
			 len) ||
		    cu_err(cuk_rmsnorm(c->stream, c->xb, c->x, NULL, l->ffn_norm, n_rows,
				       c->n_embd, c->rms_eps), "ffn_norm", msg, len) ||
		    gemm_stack(c, &l->wgu, c->xb, n_rows, c->gu, 2 * c->n_ff, "gate/up", msg,
			       len) ||
		    cu_err(cuk_swiglu(c->stream, c->hb, c->gu, n_rows, c->n_ff), "swiglu", msg,
			   len) ||
		    gemm(c, &l->wdown, c->hb, n_rows, c->x, c->n_embd, 1.0f, "down", msg, len))
			return -EIO;
	}
	if (!n_out)
		return 0;
	if (cu_err(cuk_rmsnorm(c->stream, c->xb, c->x, c->dp.out_rows, c->out_norm, n_out,
			       c->n_embd, c->rms_eps), "output_norm", msg, len) ||
	    gemm(c, c->head, c->xb, n_out, c->logits, b->n_vocab, 0.0f, "lm head", msg, len))
		return -EIO;
	if (draw && cu_err(cuk_sample(c->stream, c->d_tok, c->d_lp, c->logits, c->dp.draw,
				      c->dp.pen, c->pen_saved, c->dp.ids, n_out, b->n_vocab),
			   "sample", msg, len))
		return -EIO;
	return 0;
}

/*
 * The graph bucket of a step: the index of the smallest captured batch size
 * that holds it when every sequence decodes one token and wants it sampled
 * (what a step is, most of the time, once prompts are in), else -1.
 */
static int graph_bucket(const struct backend_cuda *c, const struct backend_seq *seqs,
			uint32_t n_seqs)
{
	uint32_t i;

	if (!c->n_graphs)
		return -1;
	for (i = 0; i < n_seqs; i++)
		if (seqs[i].n_tokens != 1 || seqs[i].logits != BACKEND_LOGITS_LAST)
			return -1;
	for (i = 0; i < c->n_graphs; i++)
		if (c->graph_rows[i] >= n_seqs)
			return (int)i;
	return -1;
}

/*
 * Fill the plan's rows from @n_rows up to @to with rows that harm nothing:
 * token 0 at position 0, written to and read from the spare block no
 * sequence owns, sampled by no one.
 */
static void plan_pad(struct backend_cuda *c, uint32_t n_rows, uint32_t to, uint32_t n_bt)
{
	const struct cuk_sample_row skip = { .temperature = -1.0f };
	uint32_t row;

	c->hp.bt[n_bt] = c->b.n_blocks;
	for (row = n_rows; row < to; row++) {
		c->hp.ids[row] = 0;
		c->hp.pos[row] = 0;
		c->hp.slot[row] = (int32_t)(c->b.n_blocks * c->b.block_size);
		c->hp.bt_off[row] = n_bt;
		c->hp.out_rows[row] = row;
		c->hp.feed[row] = -1;
		c->hp.draw[row] = skip;
	}
}

/*
 * Capture graph @k: a decode step of graph_rows[k] rows, attention split
 * for the longest context, sampling included. On failure the bucket runs
 * eagerly from then on and -EIO comes back with the reason in @msg; the
 * stream is left out of capture either way.
 */
static int graph_capture(struct backend_cuda *c, int k, char *msg, size_t len)
{
	uint32_t rows = c->graph_rows[k];
	struct attn_shape as = { .n_rows = rows };
	cudaGraph_t g = NULL;
	cudaError_t e;
	int err;

	attn_splits(c, c->b.max_context, &as);
	e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
	if (cu_err(e, "cudaStreamBeginCapture", msg, len))
		goto fail;
	err = queue_forward(c, rows, rows, &as, true, msg, len);
	e = cudaStreamEndCapture(c->stream, &g);
	if (err || cu_err(e, "cudaStreamEndCapture", msg, len))
		goto fail;
	e = cudaGraphInstantiate(&c->graph[k], g, 0);
	cudaGraphDestroy(g);
	if (cu_err(e, "cudaGraphInstantiate", msg, len))
		goto fail;
	c->b.graphs++;
	return 0;
fail:
	if (g)
		cudaGraphDestroy(g);
	c->graph[k] = NULL;
	c->graph_off[k] = true;
	(void)cudaGetLastError();
	return -EIO;
}

/*
 * May @seqs feed from the step submitted just before? Each fed sequence
 * names one of that step's sequences whose token it drew.
 */
static int check_feed(const struct backend_cuda *c, const struct backend_seq *seqs,
		      uint32_t n_seqs)
{
	const struct cuda_inflight *prev = &c->fl[(c->n_submitted + 1) % 2];
	uint32_t i;

	for (i = 0; i < n_seqs; i++) {
		uint32_t f = seqs[i].feed;

		if (f && (!prev->feedable || f > prev->n_seqs || prev->draw_row[f - 1] < 0))
			return -EINVAL;
	}
	return 0;
}

/*
 * Queue a step and return: see backend_submit(). The host plans in the
 * step's own slot, so the step before may still run (and its drawn tokens
 * land in its slot) while this one is planned and queued behind it.
 */
static int cuda_submit(struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		       float *logits)
{
	struct backend_cuda *c = to_cuda(b);
	uint32_t n_rows, n_out;
	struct plan_counts pc;
	unsigned int slot = c->n_submitted % 2;
	struct cuda_inflight *fl = &c->fl[slot];
	struct backend_step_counts cnt;
	char msg[256];
	int err, k;

	err = backend_check_step(b, seqs, n_seqs, &cnt);
	if (err)
		return err;
	/* Cannot happen within max_tokens rows of max_context; kept as a guard. */
	if (cnt.bt + 1 > c->max_bt)
		return -E2BIG;
	n_rows = cnt.rows;
	n_out = cnt.out;
	if (n_out && !logits)
		return -EINVAL;
	if (c->n_submitted - c->n_waited >= 2)
		return -EBUSY;
	err = check_feed(c, seqs, n_seqs);
	if (err)
		return err;
	if (c->broken)
		return step_err(c, -EIO, "an earlier CUDA error left the device unusable");
	/*
	 * The current device is per host thread: a step on another thread than
	 * backend_cuda_create()'s would otherwise launch on device 0.
	 */
	LAUNCH(cudaSetDevice(c->device), "cudaSetDevice");
	plan_layout(&c->hp, c->h_plan[slot], b->max_tokens, c->max_bt);
	plan_step(c, seqs, n_seqs, fl, &pc);
	/*
	 * From here this step may overwrite the tokens the one before drew
	 * (d_tok): whether it is submitted or fails, no later step feeds from
	 * that one.
	 */
	fl->feedable = false;
	c->fl[(c->n_submitted + 1) % 2].feedable = false;
	k = graph_bucket(c, seqs, n_seqs);
	if (k >= 0 && c->graph_off[k])
		k = -1;
	if (k >= 0)
		plan_pad(c, n_rows, c->graph_rows[k], pc.bt++);

	/* The per-row arrays, then the block tables in use. */
	LAUNCH(cudaMemcpyAsync(c->dp.ids, c->hp.ids,
			       PLAN_ROW_WORDS * b->max_tokens * sizeof(int32_t),
			       cudaMemcpyHostToDevice, c->stream), "copy the step's tables");
	LAUNCH(cudaMemcpyAsync(c->dp.bt, c->hp.bt, (size_t)pc.bt * sizeof(int32_t),
			       cudaMemcpyHostToDevice, c->stream), "copy the block tables");
	if (pc.pen)
		LAUNCH(cudaMemcpyAsync(c->dp.pen, c->hp.pen,
				       (size_t)pc.pen * sizeof(struct cuk_pen),
				       cudaMemcpyHostToDevice, c->stream), "copy the penalty lists");
	if (k >= 0 && !c->graph[k] && graph_capture(c, k, msg, sizeof(msg)))
		fprintf(stderr, "llmq: cuda backend: decode steps of %u rows run without a CUDA "
			"graph: %s\n", c->graph_rows[k], msg);
	if (k >= 0 && c->graph[k]) {
		LAUNCH(cudaGraphLaunch(c->graph[k], c->stream), "cudaGraphLaunch");
		b->graph_steps++;
	} else {
		/* Rows by a list only when some are tiles; else all of them. */
		struct attn_shape as = {
			.listed = pc.tiles > 0, .n_rows = pc.tiles ? pc.arows : n_rows,
			.n_tiles = pc.tiles,
		};

		attn_splits(c, pc.longest, &as);
		err = queue_forward(c, n_rows, n_out, &as, fl->n_draw, msg, sizeof(msg));
		if (err)
			return step_err(c, err, msg);
		b->attn_tiles += pc.tiles;
	}
	if (fl->n_draw) {
		LAUNCH(cudaMemcpyAsync(c->h_tok[slot], c->d_tok, n_out * sizeof(int32_t),
				       cudaMemcpyDeviceToHost, c->stream), "copy tokens");
		LAUNCH(cudaMemcpyAsync(c->h_lp[slot], c->d_lp, n_out * sizeof(float),
				       cudaMemcpyDeviceToHost, c->stream),
		       "copy log-probabilities");
	}
	if (n_out) {
		err = copy_rows(c, logits, n_out, msg, sizeof(msg));
		if (err)
			return step_err(c, err, msg);
	}
	LAUNCH(cudaEventRecord(c->done[slot], c->stream), "cudaEventRecord");
	fl->seqs = seqs;
	fl->n_seqs = n_seqs;
	fl->feedable = true;
	c->n_submitted++;
	return 0;
}

/* Wait for the oldest step out: see backend_wait(). */
static int cuda_wait(struct backend *b)
{
	struct backend_cuda *c = to_cuda(b);
	unsigned int slot = c->n_waited % 2;
	char msg[64];

	if (c->n_waited == c->n_submitted)
		return -EINVAL;
	c->n_waited++;
	LAUNCH(cudaEventSynchronize(c->done[slot]), "step");
	return c->fl[slot].n_draw ? take_draws(c, slot) : 0;
}

static int cuda_step(struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		     float *logits)
{
	struct backend_cuda *c = to_cuda(b);
	int err;

	if (c->n_submitted != c->n_waited)
		return -EBUSY;
	err = cuda_submit(b, seqs, n_seqs, logits);
	return err ? err : cuda_wait(b);
}

static void cuda_destroy(struct backend *b)
{
	struct backend_cuda *c = to_cuda(b);
	uint32_t i;

	/* Errors ignored: nothing to do about them while tearing down. */
	if (c->stream)
		cudaStreamSynchronize(c->stream);
	for (i = 0; i < c->n_graphs; i++)
		if (c->graph[i])
			cudaGraphExecDestroy(c->graph[i]);
	for (i = 0; c->layers && i < c->n_layer; i++) {
		struct cuda_layer *l = &c->layers[i];

		free_stack(&l->wqkv);
		cudaFree(l->bqkv);
		free_mat(&l->wo);
		free_stack(&l->wgu);
		free_mat(&l->wdown);
		cudaFree(l->attn_norm);
		cudaFree(l->ffn_norm);
	}
	free(c->layers);
	free_mat(&c->out_head);
	free_mat(&c->tok_embd);
	cudaFree(c->out_norm);
	cudaFree(c->inv_freq);
	cudaFree(c->kv);
	cudaFree(c->x);
	cudaFree(c->qkv);
	cudaFree(c->gu);
	cudaFree(c->logits);
	cudaFree(c->part);
	cudaFree(c->xb);
	cudaFree(c->att);
	cudaFree(c->hb);
	cudaFree(c->wide);
	cudaFree(c->d_plan);
	cudaFree(c->pen_saved);
	cudaFree(c->d_tok);
	cudaFree(c->d_lp);
	cudaFree(c->blas_ws);
	for (i = 0; i < 2; i++) {
		if (c->h_plan[i])
			cudaFreeHost(c->h_plan[i]);
		if (c->h_tok[i])
			cudaFreeHost(c->h_tok[i]);
		if (c->h_lp[i])
			cudaFreeHost(c->h_lp[i]);
		if (c->done[i])
			cudaEventDestroy(c->done[i]);
		free(c->fl[i].draw_row);
	}
	if (c->blas)
		cublasDestroy(c->blas);
	if (c->stream)
		cudaStreamDestroy(c->stream);
	free(c);
}

static const struct backend_ops cuda_ops = {
	.name		= "cuda",
	.step		= cuda_step,
	.submit		= cuda_submit,
	.wait		= cuda_wait,
	.destroy	= cuda_destroy,
};

/* What this backend computes with: as the CPU backend, and heads that fit. */
static int check_model(const struct model *m, char *err, size_t len)
{
	const struct model_hparams *hp = &m->hp;

	if (!hp->head_dim || hp->head_dim > CUK_ATTN_MAX_HEAD_DIM)
		return backend_errf(err, len, -EINVAL, "head_dim %u: the CUDA backend takes 1..%u",
				    hp->head_dim, CUK_ATTN_MAX_HEAD_DIM);
	if (!hp->n_rot || hp->n_rot % 2 || hp->n_rot > hp->head_dim || !(hp->rope_freq_base > 0))
		return backend_errf(err, len, -EINVAL, "rope: head_dim %u n_rot %u", hp->head_dim,
				    hp->n_rot);
	return backend_check_model(m, err, len);
}

static int alloc_scratch(struct backend_cuda *c, char *err, size_t len)
{
	size_t T = c->b.max_tokens;
	size_t parts = (size_t)4 * c->sm_count * (c->n_head / attn_heads_per_row(c)) *
		       (c->head_dim + 2);
	unsigned int i;
	int ret;

	/* And one for the padded rows of a graph. */
	c->max_bt = (uint32_t)(T * ((c->b.max_context + c->b.block_size - 1) / c->b.block_size)) +
		    1;
	c->plan_bytes = (PLAN_ROW_WORDS * T + c->max_bt) * sizeof(int32_t) +
			(size_t)c->b.pen_room * sizeof(struct cuk_pen);
	ret = dev_alloc(&c->x, T * c->n_embd * 4, "activations", err, len);
	ret = ret ? ret : dev_alloc(&c->qkv, T * c->qkv_dim * 4, "qkv", err, len);
	ret = ret ? ret : dev_alloc(&c->gu, T * 2 * c->n_ff * 4, "gate/up", err, len);
	ret = ret ? ret : dev_alloc(&c->logits, T * c->b.n_vocab * 4, "logits", err, len);
	ret = ret ? ret : dev_alloc(&c->part, parts * 4, "attention partials", err, len);
	ret = ret ? ret : dev_alloc(&c->xb, T * c->n_embd * 2, "normed", err, len);
	ret = ret ? ret : dev_alloc(&c->att, T * c->q_dim * 2, "attention out", err, len);
	ret = ret ? ret : dev_alloc(&c->hb, T * c->n_ff * 2, "swiglu out", err, len);
	if (!ret && c->wide_bytes && T > c->matvec_rows)
		ret = dev_alloc(&c->wide, c->wide_bytes, "widened weights", err, len);
	ret = ret ? ret : dev_alloc(&c->d_plan, c->plan_bytes, "step tables", err, len);
	ret = ret ? ret : dev_alloc(&c->pen_saved, (size_t)c->b.pen_room * sizeof(float),
				    "penalised logits", err, len);
	ret = ret ? ret : dev_alloc(&c->d_tok, T * sizeof(int32_t), "tokens", err, len);
	ret = ret ? ret : dev_alloc(&c->d_lp, T * sizeof(float), "log-probabilities", err, len);
	ret = ret ? ret : dev_alloc(&c->blas_ws, CUDA_BLAS_WORKSPACE, "cuBLAS workspace", err,
				    len);
	ret = ret ? ret : blas_err(cublasSetWorkspace(c->blas, c->blas_ws, CUDA_BLAS_WORKSPACE),
				   "cublasSetWorkspace", err, len);
	for (i = 0; !ret && i < 2; i++) {
		ret = cu_err(cudaMallocHost(&c->h_plan[i], c->plan_bytes), "cudaMallocHost", err,
			     len);
		ret = ret ? ret : cu_err(cudaMallocHost((void **)&c->h_tok[i], T * sizeof(int32_t)),
					 "cudaMallocHost", err, len);
		ret = ret ? ret : cu_err(cudaMallocHost((void **)&c->h_lp[i], T * sizeof(float)),
					 "cudaMallocHost", err, len);
		ret = ret ? ret : cu_err(cudaEventCreate(&c->done[i]), "cudaEventCreate", err,
					 len);
		c->fl[i].draw_row = calloc(T, sizeof(int32_t));
		if (!ret && !c->fl[i].draw_row)
			ret = backend_errf(err, len, -ENOMEM, "out of host memory");
	}
	if (ret)
		return ret;
	plan_layout(&c->hp, c->h_plan[0], T, c->max_bt);
	plan_layout(&c->dp, c->d_plan, T, c->max_bt);
	return 0;
}

/*
 * The KV cache: @cp->n_blocks, or what is left of utilization * total
 * memory now that weights and scratch are in.
 */
static int alloc_kv(struct backend_cuda *c, const struct backend_cuda_params *cp, char *err,
		    size_t len)
{
	double util = cp->gpu_memory_utilization > 0 ? cp->gpu_memory_utilization :
		      CUDA_DEFAULT_UTILIZATION;
	size_t block = backend_cuda_kv_block_bytes(c->b.model, c->b.block_size);
	size_t free_b, total_b, n;
	double budget;

	if (cu_err(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo", err, len))
		return -EIO;
	if (cp->n_blocks) {
		n = cp->n_blocks;
	} else {
		/* Ours and anyone else's use so far counts against the share. */
		budget = util * (double)total_b - (double)(total_b - free_b);
		n = budget > 0 ? (size_t)(budget / (double)block) : 0;
		/* The spare block comes out of the share too. */
		if (n < 2)
			return backend_errf(err, len, -ENOMEM, "--gpu-memory-utilization %.2f of "
					    "%zu MiB leaves no room for KV blocks after the "
					    "weights (%zu MiB in use)", util, total_b >> 20,
					    (total_b - free_b) >> 20);
		n--;
	}
	/* Slots are int32 on the device, the spare block's too. */
	if (n >= INT32_MAX / c->b.block_size)
		n = INT32_MAX / c->b.block_size - 1;
	c->b.n_blocks = n;
	c->kv_blocks = n + 1;
	c->b.kv_bytes = (n + 1) * block;
	return dev_alloc(&c->kv, c->b.kv_bytes, "the KV cache", err, len);
}

/* One CUDA device is there, usable: @dev exists, or a clear reason why not. */
static int open_device(struct backend_cuda *c, int dev, char *err, size_t len)
{
	struct cudaDeviceProp prop;
	int n = 0;
	cudaError_t e;

	e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess)
		return backend_errf(err, len, -ENODEV,
				    "no usable CUDA device: cudaGetDeviceCount: %s",
				    cudaGetErrorString(e));
	if (dev < 0 || dev >= n)
		return backend_errf(err, len, -ENODEV, "no CUDA device %d (%d present)", dev, n);
	if (cu_err(cudaSetDevice(dev), "cudaSetDevice", err, len) ||
	    cu_err(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties", err, len))
		return -EIO;
	if (prop.major < 8)
		return backend_errf(err, len, -ENODEV, "%s is compute capability %d.%d; llmq's "
				    "CUDA backend needs 8.0 (Ampere) or later", prop.name,
				    prop.major, prop.minor);
	c->device = dev;
	c->sm_count = prop.multiProcessorCount;
	return 0;
}

/**
 * backend_cuda_create() - a CUDA backend for a loaded model
 * @m:		the model; must outlive the backend
 * @p:		block size, max_tokens, max_context (n_threads and kv_bytes are
 *		the CPU's and ignored)
 * @cp:		GPU memory share or an exact KV block count, the device
 * @err:	a one-line reason on failure
 * @errlen:	its size
 *
 * Uploads the weights (BF16; quantised ones as they are, unless
 * @cp->bf16_weights), allocates every per-step buffer, then the KV cache
 * from what the memory share leaves, so a step allocates nothing.
 *
 * Return: the backend, or NULL with @err set (no GPU, too little memory,
 * a model it cannot run).
 */
struct backend *backend_cuda_create(const struct model *m, const struct backend_params *p,
				    const struct backend_cuda_params *cp, char *err,
				    size_t errlen)
{
	const struct model_hparams *hp = &m->hp;
	struct backend_cuda *c;
	double *inv_freq = NULL;
	uint32_t i;

	if (check_model(m, err, errlen))
		return NULL;
	if (cp->gpu_memory_utilization < 0 || cp->gpu_memory_utilization > 1) {
		backend_errf(err, errlen, -EINVAL, "gpu memory utilization %.3f is not in (0, 1]",
			     cp->gpu_memory_utilization);
		return NULL;
	}
	if (p->kv_dtype != BACKEND_KV_AUTO && p->kv_dtype != BACKEND_KV_BF16) {
		backend_errf(err, errlen, -EINVAL, "KV cache dtype %s: the CUDA backend keeps bf16",
			     backend_kv_dtype_name(p->kv_dtype));
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		backend_errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	backend_init(&c->b, &cuda_ops, m, p, CUDA_DEFAULT_MAX_TOKENS);
	c->b.kv_dtype = BACKEND_KV_BF16;
	c->b.n_threads = 1;
	c->b.draws_tokens = c->b.n_vocab <= CUK_SAMPLE_MAX_N;
	c->b.pen_room = c->b.draws_tokens ? CUDA_PEN_PER_ROW * c->b.max_tokens : 0;
	for (i = 0; !cp->enforce_eager && i < CUDA_MAX_GRAPHS; i++)
		if (cuda_graph_sizes[i] <= c->b.max_tokens)
			c->graph_rows[c->n_graphs++] = cuda_graph_sizes[i];
	c->n_embd = hp->n_embd;
	c->n_head = hp->n_head;
	c->n_head_kv = hp->n_head_kv;
	c->head_dim = hp->head_dim;
	c->n_ff = hp->n_ff;
	c->n_layer = hp->n_layer;
	c->n_rot = hp->n_rot;
	c->q_dim = hp->n_head * hp->head_dim;
	c->kv_dim = hp->n_head_kv * hp->head_dim;
	c->qkv_dim = c->q_dim + 2 * c->kv_dim;
	c->attn_scale = (float)(1.0 / sqrt((double)hp->head_dim));
	c->rms_eps = hp->rms_eps;
	c->neox = hp->rope == ROPE_NEOX;
	c->tiled = cuk_attn_tiles_fit(hp->head_dim) && !cp->untiled;
	c->keep_quant = !cp->bf16_weights;
	c->widen_slice = cp->widen_slice_bytes ? cp->widen_slice_bytes : CUDA_WIDEN_SLICE_BYTES;
	c->matvec_rows = cp->matvec_rows ? cp->matvec_rows : CUDA_QMATVEC_ROWS;

	if (open_device(c, cp->device, err, errlen))
		goto fail;
	if (cu_err(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking),
		   "cudaStreamCreate", err, errlen) ||
	    blas_err(cublasCreate(&c->blas), "cublasCreate", err, errlen) ||
	    blas_err(cublasSetStream(c->blas, c->stream), "cublasSetStream", err, errlen))
		goto fail;

	/* RoPE frequencies in double, as cpu_rope_init() computes them. */
	inv_freq = malloc(c->n_rot / 2 * sizeof(double));
	if (!inv_freq) {
		backend_errf(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	for (i = 0; i < c->n_rot / 2; i++)
		inv_freq[i] = pow((double)hp->rope_freq_base, -2.0 * (double)i / (double)c->n_rot);
	if (dev_alloc(&c->inv_freq, c->n_rot / 2 * sizeof(double), "rope", err, errlen) ||
	    cu_err(cudaMemcpy(c->inv_freq, inv_freq, c->n_rot / 2 * sizeof(double),
			      cudaMemcpyHostToDevice), "upload rope", err, errlen))
		goto fail;
	free(inv_freq);
	inv_freq = NULL;

	if (upload_weights(c, err, errlen) || alloc_scratch(c, err, errlen) ||
	    alloc_kv(c, cp, err, errlen))
		goto fail;
	/*
	 * A cudaMemcpy from pageable memory may return before its DMA ends,
	 * and steps run on a non-blocking stream that does not wait for the
	 * legacy one: the weights must be in place before the first step.
	 */
	if (cu_err(cudaDeviceSynchronize(), "upload weights", err, errlen))
		goto fail;
	return &c->b;

fail:
	free(inv_freq);
	cuda_destroy(&c->b);
	return NULL;
}
