// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU backend: a LLaMA-family forward step (llama, qwen2) over a batch of
 * sequences with mixed prefill chunks and decode tokens, K/V in a paged
 * float cache, every weight matrix applied once per step to all its tokens.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../dtype.h"
#include "../list.h"
#include "matmul.h"
#include "ops.h"
#include "threadpool.h"

#define CPU_DEFAULT_MAX_TOKENS	512

/*
 * KV cache layout: one float array, [layer][block][K, V][slot][kv_dim], so a
 * block of one layer is 2 * block_size * kv_dim contiguous floats.
 */
struct backend_cpu {
	struct backend		b;
	struct threadpool	*pool;
	struct cpu_rope		rope;
	uint32_t		n_embd, n_head, n_head_kv, head_dim, n_ff, n_layer;
	size_t			q_dim, kv_dim;
	float			attn_scale;
	float			*kv;
	/* Per-step scratch, max_tokens rows each. */
	float			*x, *xn, *q, *k, *v, *att, *gate, *up;
	int32_t			*ids;
	int32_t			*tok_pos;	/* position of each row */
	uint32_t		*tok_seq;	/* sequence of each row */
	uint32_t		*seq_row;	/* first row of each sequence */
	float			*scores;	/* n_threads * attn_heads * max_context */
	/* Query heads per attention task: a GQA group, or 1 when the group
	 * tasks would be too few to keep every thread busy. */
	uint32_t		attn_heads;
	/* The step being run, for the tasks. */
	const struct backend_seq *seqs;
	uint32_t		n_seqs, n_rows, layer;
};

static struct backend_cpu *to_cpu(struct backend *b)
{
	return container_of(b, struct backend_cpu, b);
}

/**
 * backend_kv_block_bytes() - bytes one KV block takes over all layers
 * @m:		the model
 * @block_size:	tokens per block
 *
 * Return: 2 (K and V) * layers * @block_size * kv heads * head_dim * 4.
 */
size_t backend_kv_block_bytes(const struct model *m, uint32_t block_size)
{
	return (size_t)2 * m->hp.n_layer * block_size * m->hp.n_head_kv * m->hp.head_dim *
	       sizeof(float);
}

static float *kv_at(const struct backend_cpu *c, uint32_t layer, uint32_t block, int v,
		    uint32_t slot)
{
	size_t bs = c->b.block_size;

	return c->kv + (((size_t)layer * c->b.n_blocks + block) * 2 + v) * bs * c->kv_dim +
	       (size_t)slot * c->kv_dim;
}

static int matmul(struct backend_cpu *c, const struct gguf_tensor *w, const float *x,
		  size_t ldx, float *y, size_t ldy, size_t m)
{
	struct cpu_matmul mm = {
		.type = w->type, .w = w->data, .n = w->ne[1], .k = w->ne[0],
		.x = x, .ldx = ldx, .y = y, .ldy = ldy, .m = m,
	};

	return cpu_matmul(c->pool, &mm);
}

static const float *f32(const struct gguf_tensor *t)
{
	return t ? t->data : NULL;
}

/* Task per row: RMSNorm of x into xn with the weights in arg's layer. */
struct norm_arg {
	struct backend_cpu	*c;
	const float		*w;
	const float		*src;
	float			*dst;
};

static void norm_task(void *arg, unsigned int row, unsigned int thread)
{
	struct norm_arg *a = arg;
	size_t e = a->c->n_embd;

	(void)thread;
	cpu_rmsnorm(a->dst + row * e, a->src + row * e, a->w, e, a->c->b.model->hp.rms_eps);
}

static void rmsnorm_rows(struct backend_cpu *c, const float *w, const float *src, float *dst,
			 uint32_t rows)
{
	struct norm_arg a = { .c = c, .w = w, .src = src, .dst = dst };

	threadpool_run(c->pool, rows, norm_task, &a);
}

/* Task per row: QKV bias, RoPE at the row's position, K/V into the cache. */
static void qkv_task(void *arg, unsigned int row, unsigned int thread)
{
	struct backend_cpu *c = arg;
	const struct model_layer *l = &c->b.model->layers[c->layer];
	const struct backend_seq *s = &c->seqs[c->tok_seq[row]];
	float *q = c->q + row * c->q_dim, *k = c->k + row * c->kv_dim;
	float *v = c->v + row * c->kv_dim;
	int32_t pos = c->tok_pos[row];
	uint32_t bs = c->b.block_size, block = s->block_table[pos / bs];

	(void)thread;
	if (l->bq) {
		cpu_add(q, q, f32(l->bq), c->q_dim);
		cpu_add(k, k, f32(l->bk), c->kv_dim);
		cpu_add(v, v, f32(l->bv), c->kv_dim);
	}
	cpu_rope(&c->rope, q, c->n_head, pos);
	cpu_rope(&c->rope, k, c->n_head_kv, pos);
	memcpy(kv_at(c, c->layer, block, 0, pos % bs), k, c->kv_dim * sizeof(float));
	memcpy(kv_at(c, c->layer, block, 1, pos % bs), v, c->kv_dim * sizeof(float));
}

/*
 * q . k over @d floats in 8 interleaved partial sums (a fixed order, so the
 * compiler may keep them in one vector register), then summed pairwise.
 */
static float dot8(const float *q, const float *k, size_t d)
{
	float acc[8] = { 0 };
	size_t i, j;

	for (i = 0; i + 8 <= d; i += 8)
		for (j = 0; j < 8; j++)
			acc[j] += q[i + j] * k[i + j];
	for (; i < d; i++)
		acc[0] += q[i] * k[i];
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/*
 * out += w * v over @d floats, in blocks of 8 the compiler turns into vector
 * operations (restrict: out never overlaps the cache). Each element gets
 * the same multiply and add as a plain loop, so the result is the same.
 */
static void axpy8(float *restrict out, float w, const float *restrict v, size_t d)
{
	size_t i, j;

	for (i = 0; i + 8 <= d; i += 8)
		for (j = 0; j < 8; j++)
			out[i + j] += w * v[i + j];
	for (; i < d; i++)
		out[i] += w * v[i];
}

/*
 * Positions ahead to prefetch K or V rows: a row of one head is a few cache
 * lines 1 KB or more from the next, and the work per row is too short for
 * out-of-order execution to keep enough of those misses in flight.
 */
#define KV_AHEAD	8

/* Inlined: GCC deems a function of prefetches alone pure and drops calls. */
static inline __attribute__((always_inline)) void
prefetch_kv(const struct backend_cpu *c, const struct backend_seq *s, int v, uint32_t j,
	    size_t kvo)
{
	uint32_t bs = c->b.block_size;
	const float *p = kv_at(c, c->layer, s->block_table[j / bs], v, j % bs) + kvo;
	size_t i;

	for (i = 0; i < c->head_dim; i += 16)
		__builtin_prefetch(p + i);
}

/*
 * Task per (sequence, group of @c->attn_heads query heads sharing a KV
 * head): causal attention of each of the sequence's rows over positions
 * 0 .. its own, K/V read through the block table. Each K and V row is read
 * once for the whole group, so a group of GQA heads costs one pass over the
 * cache; every head's arithmetic is the same whatever the grouping.
 */
static void attn_task(void *arg, unsigned int task, unsigned int thread)
{
	struct backend_cpu *c = arg;
	uint32_t groups = c->n_head / c->attn_heads;
	uint32_t si = task / groups, h0 = task % groups * c->attn_heads, nh = c->attn_heads;
	const struct backend_seq *s = &c->seqs[si];
	uint32_t kvh = h0 / (c->n_head / c->n_head_kv), bs = c->b.block_size;
	size_t d = c->head_dim, kvo = (size_t)kvh * d, mc = c->b.max_context;
	float *sc = c->scores + (size_t)thread * c->attn_heads * mc;
	uint32_t t, j, h;

	for (t = 0; t < s->n_tokens; t++) {
		size_t row = c->seq_row[si] + t;
		const float *q = c->q + row * c->q_dim + (size_t)h0 * d;
		float *out = c->att + row * c->q_dim + (size_t)h0 * d;
		uint32_t n = s->pos + t + 1;

		for (j = 0; j < n; j++) {
			const float *kp = kv_at(c, c->layer, s->block_table[j / bs], 0, j % bs) +
					  kvo;

			if (j + KV_AHEAD < n)
				prefetch_kv(c, s, 0, j + KV_AHEAD, kvo);
			for (h = 0; h < nh; h++)
				sc[h * mc + j] = dot8(q + h * d, kp, d) * c->attn_scale;
		}
		for (h = 0; h < nh; h++)
			cpu_softmax(sc + h * mc, n);
		memset(out, 0, nh * d * sizeof(float));
		for (j = 0; j < n; j++) {
			const float *vp = kv_at(c, c->layer, s->block_table[j / bs], 1, j % bs) +
					  kvo;

			if (j + KV_AHEAD < n)
				prefetch_kv(c, s, 1, j + KV_AHEAD, kvo);
			for (h = 0; h < nh; h++)
				axpy8(out + h * d, sc[h * mc + j], vp, d);
		}
	}
}

/* Task per row: x += tmp (the residual), or gate = swiglu(gate, up). */
struct rows_arg {
	float		*y;
	const float	*a, *b;
	size_t		n;
	bool		swiglu;
};

static void rows_task(void *arg, unsigned int row, unsigned int thread)
{
	struct rows_arg *r = arg;
	size_t o = row * r->n;

	(void)thread;
	if (r->swiglu)
		cpu_swiglu(r->y + o, r->a + o, r->b + o, r->n);
	else
		cpu_add(r->y + o, r->a + o, r->b + o, r->n);
}

static void rows_run(struct backend_cpu *c, float *y, const float *a, const float *b, size_t n,
		     bool swiglu, uint32_t rows)
{
	struct rows_arg r = { .y = y, .a = a, .b = b, .n = n, .swiglu = swiglu };

	threadpool_run(c->pool, rows, rows_task, &r);
}

static int cpu_step(struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		    float *logits)
{
	struct backend_cpu *c = to_cpu(b);
	const struct model *m = b->model;
	const struct gguf_tensor *head = m->output ? m->output : m->tok_embd;
	struct backend_step_counts cnt;
	uint32_t n_rows, n_out, i, j, row, o;
	size_t e = c->n_embd;
	int err;

	err = backend_check_step(b, seqs, n_seqs, &cnt);
	if (err)
		return err;
	n_rows = cnt.rows;
	n_out = cnt.out;
	if (n_out && !logits)
		return -EINVAL;
	c->seqs = seqs;
	c->n_seqs = n_seqs;
	c->n_rows = n_rows;
	for (i = 0, row = 0; i < n_seqs; i++) {
		c->seq_row[i] = row;
		for (j = 0; j < seqs[i].n_tokens; j++, row++) {
			c->ids[row] = seqs[i].tokens[j];
			c->tok_pos[row] = seqs[i].pos + j;
			c->tok_seq[row] = i;
		}
	}

	err = cpu_get_rows(m->tok_embd->type, m->tok_embd->data, b->n_vocab, e, c->ids, n_rows,
			   c->x, e);
	if (err)
		return err;

	for (c->layer = 0; c->layer < c->n_layer; c->layer++) {
		const struct model_layer *l = &m->layers[c->layer];

		rmsnorm_rows(c, f32(l->attn_norm), c->x, c->xn, n_rows);
		err = matmul(c, l->wq, c->xn, e, c->q, c->q_dim, n_rows);
		err = err ? err : matmul(c, l->wk, c->xn, e, c->k, c->kv_dim, n_rows);
		err = err ? err : matmul(c, l->wv, c->xn, e, c->v, c->kv_dim, n_rows);
		if (err)
			return err;
		threadpool_run(c->pool, n_rows, qkv_task, c);
		c->attn_heads = n_seqs * c->n_head_kv >= 4 * c->b.n_threads ?
				c->n_head / c->n_head_kv : 1;
		threadpool_run(c->pool, n_seqs * (c->n_head / c->attn_heads), attn_task, c);
		err = matmul(c, l->wo, c->att, c->q_dim, c->xn, e, n_rows);
		if (err)
			return err;
		rows_run(c, c->x, c->x, c->xn, e, false, n_rows);

		rmsnorm_rows(c, f32(l->ffn_norm), c->x, c->xn, n_rows);
		err = matmul(c, l->w_gate, c->xn, e, c->gate, c->n_ff, n_rows);
		err = err ? err : matmul(c, l->w_up, c->xn, e, c->up, c->n_ff, n_rows);
		if (err)
			return err;
		rows_run(c, c->gate, c->gate, c->up, c->n_ff, true, n_rows);
		err = matmul(c, l->w_down, c->gate, c->n_ff, c->xn, e, n_rows);
		if (err)
			return err;
		rows_run(c, c->x, c->x, c->xn, e, false, n_rows);
	}

	/* Gather the rows that need logits, normed, into xn; then the LM head. */
	for (i = 0, o = 0; i < n_seqs; i++) {
		const struct backend_seq *s = &seqs[i];
		uint32_t first = s->logits == BACKEND_LOGITS_ALL ? 0 : s->n_tokens - 1;

		if (s->logits == BACKEND_LOGITS_NONE)
			continue;
		for (j = first; j < s->n_tokens; j++, o++)
			memcpy(c->xn + (size_t)o * e, c->x + (size_t)(c->seq_row[i] + j) * e,
				e * sizeof(float));
	}
	if (!n_out)
		return 0;
	rmsnorm_rows(c, f32(m->output_norm), c->xn, c->xn, n_out);
	return matmul(c, head, c->xn, e, logits, b->n_vocab, n_out);
}

static void cpu_destroy(struct backend *b)
{
	struct backend_cpu *c = to_cpu(b);

	if (c->pool)
		threadpool_destroy(c->pool);
	free(c->kv);
	free(c->x);
	free(c->xn);
	free(c->q);
	free(c->k);
	free(c->v);
	free(c->att);
	free(c->gate);
	free(c->up);
	free(c->ids);
	free(c->tok_pos);
	free(c->tok_seq);
	free(c->seq_row);
	free(c->scores);
	free(c);
}

static const struct backend_ops cpu_ops = {
	.name		= "cpu",
	.step		= cpu_step,
	.destroy	= cpu_destroy,
};

static float *falloc(size_t rows, size_t n)
{
	return aligned_alloc(64, ((rows * n * sizeof(float)) + 63) & ~(size_t)63);
}

/**
 * backend_cpu_create() - a CPU backend for a loaded model
 * @m:		the model; must outlive the backend
 * @p:		threads, KV budget, block size, limits (see &backend_params)
 * @err:	a one-line reason on failure
 * @errlen:	its size
 *
 * Allocates the KV cache (one allocation, as many blocks as fit @p->kv_bytes)
 * and every per-step buffer now, so a step allocates nothing.
 *
 * Return: the backend, or NULL with @err set.
 */
struct backend *backend_cpu_create(const struct model *m, const struct backend_params *p,
				   char *err, size_t errlen)
{
	const struct model_hparams *hp = &m->hp;
	struct backend_cpu *c;
	size_t block_bytes, T, n_blocks;

	if (backend_check_model(m, err, errlen))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		backend_errf(err, errlen, -ENOMEM, "out of memory");
		return NULL;
	}
	backend_init(&c->b, &cpu_ops, m, p, CPU_DEFAULT_MAX_TOKENS);
	c->n_embd = hp->n_embd;
	c->n_head = hp->n_head;
	c->n_head_kv = hp->n_head_kv;
	c->head_dim = hp->head_dim;
	c->n_ff = hp->n_ff;
	c->n_layer = hp->n_layer;
	c->q_dim = (size_t)hp->n_head * hp->head_dim;
	c->kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
	c->attn_scale = (float)(1.0 / sqrt((double)hp->head_dim));
	if (cpu_rope_init(&c->rope, hp->rope, hp->head_dim, hp->n_rot, hp->rope_freq_base, 1.0f)) {
		backend_errf(err, errlen, -EINVAL, "rope: head_dim %u n_rot %u", hp->head_dim,
			     hp->n_rot);
		goto fail;
	}

	block_bytes = backend_kv_block_bytes(m, c->b.block_size);
	n_blocks = p->kv_bytes / block_bytes;
	if (!n_blocks)
		n_blocks = 1;
	if (n_blocks > UINT32_MAX)
		n_blocks = UINT32_MAX;
	c->b.n_blocks = n_blocks;
	c->b.kv_bytes = n_blocks * block_bytes;
	c->kv = aligned_alloc(64, (c->b.kv_bytes + 63) & ~(size_t)63);
	if (!c->kv) {
		backend_errf(err, errlen, -ENOMEM, "KV cache: %zu bytes: out of memory",
			     c->b.kv_bytes);
		goto fail;
	}

	T = c->b.max_tokens;
	c->x = falloc(T, c->n_embd);
	c->xn = falloc(T, c->n_embd);
	c->q = falloc(T, c->q_dim);
	c->k = falloc(T, c->kv_dim);
	c->v = falloc(T, c->kv_dim);
	c->att = falloc(T, c->q_dim);
	c->gate = falloc(T, c->n_ff);
	c->up = falloc(T, c->n_ff);
	c->ids = calloc(T, sizeof(*c->ids));
	c->tok_pos = calloc(T, sizeof(*c->tok_pos));
	c->tok_seq = calloc(T, sizeof(*c->tok_seq));
	c->seq_row = calloc(T, sizeof(*c->seq_row));
	c->pool = threadpool_create(p->n_threads ? p->n_threads : threadpool_default_threads());
	if (!c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->gate || !c->up ||
	    !c->ids || !c->tok_pos || !c->tok_seq || !c->seq_row || !c->pool) {
		backend_errf(err, errlen, -ENOMEM, "scratch for %zu tokens: out of memory", T);
		goto fail;
	}
	c->b.n_threads = threadpool_size(c->pool);
	c->scores = falloc((size_t)c->b.n_threads * (c->n_head / c->n_head_kv),
			   c->b.max_context);
	if (!c->scores) {
		backend_errf(err, errlen, -ENOMEM, "attention scratch: out of memory");
		goto fail;
	}
	return &c->b;

fail:
	cpu_destroy(&c->b);
	return NULL;
}
