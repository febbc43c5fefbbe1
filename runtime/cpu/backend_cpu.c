// SPDX-License-Identifier: GPL-2.0
/*
 * The CPU backend: a LLaMA-family forward step (llama, qwen2) over a batch of
 * sequences with mixed prefill chunks and decode tokens, K/V in a paged
 * cache of floats or halves, every weight matrix applied once per step to
 * all its tokens.
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
#include "attention.h"
#include "matmul.h"
#include "ops.h"
#include "threadpool.h"

#define CPU_DEFAULT_MAX_TOKENS	512

/*
 * KV cache layout: one array of F32 or F16 elements,
 * [layer][block][K, V][slot][kv_dim], so a block of one layer is
 * 2 * block_size * kv_dim contiguous elements.
 */
struct backend_cpu {
	struct backend		b;
	struct threadpool	*pool;
	struct cpu_rope		rope;
	uint32_t		n_embd, n_head, n_head_kv, head_dim, n_ff, n_layer;
	size_t			q_dim, kv_dim;
	float			attn_scale;
	uint8_t			*kv;
	size_t			kv_elem;	/* bytes per element: 4 or 2 */
	/* Per-step scratch, max_tokens rows each. */
	float			*x, *xn, *q, *k, *v, *att, *gate, *up;
	int32_t			*ids;
	int32_t			*tok_pos;	/* position of each row */
	uint32_t		*tok_seq;	/* sequence of each row */
	uint32_t		*seq_row;	/* first row of each sequence */
	/* Attention: the kernel, and per thread its scratch and the K and V
	 * row pointers of a sequence (2 * max_context). */
	const struct attn_kernels *attn;
	float			*attn_work;
	size_t			attn_work_stride;
	const void		**attn_ptr;
	/* Rows per attention tile; each tile's sequence and first row. */
	uint32_t		tile_rows;
	uint32_t		*tile_seq, *tile_row;
	/* The step's attention tasks and merges, and split decodes' results. */
	struct attn_job		*jobs, *merges;
	uint32_t		n_merges;
	float			*attn_part;
	size_t			attn_part_cap;	/* floats */
	/* The step being run, for the tasks. */
	const struct backend_seq *seqs;
	uint32_t		n_seqs, n_rows, layer;
};

static struct backend_cpu *to_cpu(struct backend *b)
{
	return container_of(b, struct backend_cpu, b);
}

/**
 * backend_kv_block_bytes() - bytes one KV block of the CPU backend takes
 * @m:		the model
 * @block_size:	tokens per block
 * @dtype:	the cache's element type (AUTO: see backend_kv_dtype_cpu())
 *
 * Return: 2 (K and V) * layers * @block_size * kv heads * head_dim * 4 for
 * F32, * 2 for F16.
 */
size_t backend_kv_block_bytes(const struct model *m, uint32_t block_size,
			      enum backend_kv_dtype dtype)
{
	size_t elem = backend_kv_dtype_cpu(m, dtype) == BACKEND_KV_F32 ? 4 : 2;

	return (size_t)2 * m->hp.n_layer * block_size * m->hp.n_head_kv * m->hp.head_dim * elem;
}

static void *kv_at(const struct backend_cpu *c, uint32_t layer, uint32_t block, int v,
		   uint32_t slot)
{
	size_t bs = c->b.block_size;

	return c->kv + ((((size_t)layer * c->b.n_blocks + block) * 2 + v) * bs * c->kv_dim +
			(size_t)slot * c->kv_dim) * c->kv_elem;
}

/*
 * A row of K or V into the cache, rounded to the nearest half for F16. A
 * finite value beyond the half's range saturates at +-65504: an infinite
 * key would make every score of its row NaN, and with it the sequence.
 */
static void kv_store(const struct backend_cpu *c, void *dst, const float *src)
{
	uint16_t *h = dst, x;
	size_t i;

	if (c->kv_elem == sizeof(float)) {
		memcpy(dst, src, c->kv_dim * sizeof(float));
		return;
	}
	for (i = 0; i < c->kv_dim; i++) {
		x = fp32_to_fp16(src[i]);
		if ((x & 0x7fff) == 0x7c00 && isfinite(src[i]))
			x = (x & 0x8000) | 0x7bff;
		h[i] = x;
	}
}

static struct cpu_matmul product(const struct gguf_tensor *w, const float *x, size_t ldx,
				 float *y, size_t ldy, size_t m)
{
	return (struct cpu_matmul){
		.type = w->type, .w = w->data, .n = w->ne[1], .k = w->ne[0],
		.x = x, .ldx = ldx, .y = y, .ldy = ldy, .m = m,
	};
}

static int matmul(struct backend_cpu *c, const struct gguf_tensor *w, const float *x,
		  size_t ldx, float *y, size_t ldy, size_t m)
{
	struct cpu_matmul mm = product(w, x, ldx, y, ldy, m);

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
	kv_store(c, kv_at(c, c->layer, block, 0, pos % bs), k);
	kv_store(c, kv_at(c, c->layer, block, 1, pos % bs), v);
}

/*
 * Attention tasks: (tile of a sequence's rows, KV head). A tile holds about
 * ATTN_TILE_QUERIES query heads, so the kernel reads each chunk of K and V
 * rows from memory once for that many heads (a GQA group times the tile's
 * rows) and then from L1; a decode is a tile of one row.
 *
 * When a step has too few of those for the threads (a long decode alone),
 * each decode is also split by span (ATTN_SPAN positions) into about
 * ATTN_SPLIT_TASKS per thread in all: a task takes a run of consecutive
 * spans and keeps each span's result apart, and a second pass folds them
 * span by span, which gives the same bits as one task (see attn_tmpl.h)
 * however the spans were cut into runs. The results' store grows to what
 * the longest split step needed (a result per span, query head and split
 * decode); where it cannot grow, the step does not split.
 */
#define ATTN_TILE_QUERIES	48
#define ATTN_SPLIT_TASKS	2

/* One attention task; @part is an offset into attn_part, or -1 for none. */
struct attn_job {
	uint32_t	tile, kvh;
	uint32_t	span_lo, span_hi;
	int64_t		part;
	uint32_t	spans;
};

static struct cpu_attn attn_args(struct backend_cpu *c, const struct attn_job *j,
				 unsigned int thread, const void **kp, const void **vp)
{
	const struct backend_seq *s = &c->seqs[c->tile_seq[j->tile]];
	uint32_t t0 = c->tile_row[j->tile], group = c->n_head / c->n_head_kv;
	uint32_t rows = s->n_tokens - t0 < c->tile_rows ? s->n_tokens - t0 : c->tile_rows;
	size_t d = c->head_dim, row = c->seq_row[c->tile_seq[j->tile]] + t0;

	return (struct cpu_attn){
		.q = c->q + row * c->q_dim + j->kvh * group * d, .ldq = c->q_dim,
		.out = c->att + row * c->q_dim + j->kvh * group * d, .ldo = c->q_dim,
		.k = kp, .v = vp, .pos = s->pos + t0, .rows = rows, .heads = group,
		.d = (uint32_t)d, .scale = c->attn_scale, .f16 = c->kv_elem == 2,
		.span_lo = j->span_lo, .span_hi = j->span_hi,
		.part = j->part < 0 ? NULL : c->attn_part + j->part, .part_spans = j->spans,
		.work = c->attn_work + thread * c->attn_work_stride,
	};
}

static void attn_task(void *arg, unsigned int task, unsigned int thread)
{
	struct backend_cpu *c = arg;
	const struct attn_job *j = &c->jobs[task];
	const struct backend_seq *s = &c->seqs[c->tile_seq[j->tile]];
	const void **kp = c->attn_ptr + (size_t)thread * 2 * c->b.max_context;
	const void **vp = kp + c->b.max_context;
	struct cpu_attn a = attn_args(c, j, thread, kp, vp);
	uint32_t bs = c->b.block_size, end = a.pos + a.rows, p;
	size_t kvo = j->kvh * (size_t)c->head_dim * c->kv_elem;

	if (j->span_hi && j->span_hi * ATTN_SPAN < end)
		end = j->span_hi * ATTN_SPAN;
	for (p = j->span_lo * ATTN_SPAN; p < end; p++) {
		uint32_t block = s->block_table[p / bs];

		kp[p] = (const uint8_t *)kv_at(c, c->layer, block, 0, p % bs) + kvo;
		vp[p] = (const uint8_t *)kv_at(c, c->layer, block, 1, p % bs) + kvo;
	}
	c->attn->run(&a);
}

static void attn_merge_task(void *arg, unsigned int task, unsigned int thread)
{
	struct backend_cpu *c = arg;
	struct cpu_attn a = attn_args(c, &c->merges[task], thread, NULL, NULL);

	c->attn->merge(&a);
}

/* rows x n floats, 64-byte aligned (aligned_alloc wants a whole number of 64s). */
static float *falloc(size_t rows, size_t n)
{
	return aligned_alloc(64, ((rows * n * sizeof(float)) + 63) & ~(size_t)63);
}

/* The spans of tile @t if it is a decode that may split (2 or more), or 0. */
static uint32_t tile_split_spans(const struct backend_cpu *c, uint32_t t)
{
	const struct backend_seq *s = &c->seqs[c->tile_seq[t]];
	uint32_t end = s->pos + c->tile_row[t] + 1;
	uint32_t spans = (end + ATTN_SPAN - 1) / ATTN_SPAN;
	bool one = s->n_tokens - c->tile_row[t] == 1 || c->tile_rows == 1;

	return one && spans >= 2 ? spans : 0;
}

/*
 * Splits the step's sequences into attention tiles and those into tasks
 * (c->jobs), and the split decodes' merges (c->merges); returns the tasks.
 */
static uint32_t attn_plan(struct backend_cpu *c)
{
	uint32_t i, t, kvh, n = 0, tasks, runs = 0, group = c->n_head / c->n_head_kv;
	uint32_t want = ATTN_SPLIT_TASKS * c->b.n_threads;
	size_t pf = cpu_attn_part_floats(c->head_dim), used = 0;
	bool split;

	for (i = 0; i < c->n_seqs; i++) {
		for (t = 0; t < c->seqs[i].n_tokens; t += c->tile_rows, n++) {
			c->tile_seq[n] = i;
			c->tile_row[n] = t;
		}
	}
	split = c->b.n_threads > 1 && n * c->n_head_kv < want;
	for (t = 0; split && t < n; t++)
		used += (size_t)c->n_head_kv * group * tile_split_spans(c, t) * pf;
	if (split && used > c->attn_part_cap) {
		float *part = falloc(used, 1);

		if (part) {
			free(c->attn_part);
			c->attn_part = part;
			c->attn_part_cap = used;
		} else {
			split = false;
		}
	}
	if (split)			/* runs per (tile, KV head) */
		runs = (want + n * c->n_head_kv - 1) / (n * c->n_head_kv);
	used = 0;
	c->n_merges = 0;
	for (t = 0, tasks = 0; t < n; t++) {
		uint32_t spans = split ? tile_split_spans(c, t) : 0, r, nr;

		nr = runs < spans ? runs : spans;
		for (kvh = 0; kvh < c->n_head_kv; kvh++) {
			if (!spans) {
				c->jobs[tasks++] = (struct attn_job){
					.tile = t, .kvh = kvh, .part = -1,
				};
				continue;
			}
			for (r = 0; r < nr; r++) {
				uint32_t hi = (uint32_t)((uint64_t)(r + 1) * spans / nr);

				c->jobs[tasks++] = (struct attn_job){
					.tile = t, .kvh = kvh,
					.span_lo = (uint32_t)((uint64_t)r * spans / nr),
					.span_hi = hi < spans ? hi : 0,
					.part = (int64_t)used, .spans = spans,
				};
			}
			c->merges[c->n_merges++] = (struct attn_job){
				.tile = t, .kvh = kvh, .part = (int64_t)used, .spans = spans,
			};
			used += (size_t)group * spans * pf;
		}
	}
	return tasks;
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
	struct cpu_matmul mm[3];
	uint32_t n_rows, n_out, n_attn, i, j, row, o;
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
	n_attn = attn_plan(c);

	err = cpu_get_rows(m->tok_embd->type, m->tok_embd->data, b->n_vocab, e, c->ids, n_rows,
			   c->x, e);
	if (err)
		return err;

	for (c->layer = 0; c->layer < c->n_layer; c->layer++) {
		const struct model_layer *l = &m->layers[c->layer];

		rmsnorm_rows(c, f32(l->attn_norm), c->x, c->xn, n_rows);
		/* one pool run for the three: no wait between them */
		mm[0] = product(l->wq, c->xn, e, c->q, c->q_dim, n_rows);
		mm[1] = product(l->wk, c->xn, e, c->k, c->kv_dim, n_rows);
		mm[2] = product(l->wv, c->xn, e, c->v, c->kv_dim, n_rows);
		err = cpu_matmul_many(c->pool, mm, 3);
		if (err)
			return err;
		threadpool_run(c->pool, n_rows, qkv_task, c);
		threadpool_run(c->pool, n_attn, attn_task, c);
		if (c->n_merges) {
			threadpool_run(c->pool, c->n_merges, attn_merge_task, c);
			b->attn_split_steps++;
		}
		err = matmul(c, l->wo, c->att, c->q_dim, c->xn, e, n_rows);
		if (err)
			return err;
		rows_run(c, c->x, c->x, c->xn, e, false, n_rows);

		rmsnorm_rows(c, f32(l->ffn_norm), c->x, c->xn, n_rows);
		mm[0] = product(l->w_gate, c->xn, e, c->gate, c->n_ff, n_rows);
		mm[1] = product(l->w_up, c->xn, e, c->up, c->n_ff, n_rows);
		err = cpu_matmul_many(c->pool, mm, 2);
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
	free(c->tile_seq);
	free(c->tile_row);
	free(c->jobs);
	free(c->merges);
	free(c->attn_part);
	free(c->attn_work);
	free(c->attn_ptr);
	free(c);
}

static const struct backend_ops cpu_ops = {
	.name		= "cpu",
	.step		= cpu_step,
	.destroy	= cpu_destroy,
};

/* The attention kernel of the matrix kernels' path, or the best one below. */
static const struct attn_kernels *attn_path(void)
{
	int isa;

	for (isa = cpu_isa_default(); isa > CPU_ISA_PORTABLE; isa--)
		if (attn_kernels(isa))
			return attn_kernels(isa);
	return &attn_portable;
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
	size_t block_bytes, T, n_blocks, split;

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

	if (p->kv_dtype != BACKEND_KV_AUTO && p->kv_dtype != BACKEND_KV_F32 &&
	    p->kv_dtype != BACKEND_KV_F16) {
		backend_errf(err, errlen, -EINVAL, "KV cache dtype %s: the CPU backend keeps f32 "
			     "or f16", backend_kv_dtype_name(p->kv_dtype));
		goto fail;
	}
	c->b.kv_dtype = backend_kv_dtype_cpu(m, p->kv_dtype);
	c->kv_elem = c->b.kv_dtype == BACKEND_KV_F32 ? 4 : 2;
	block_bytes = backend_kv_block_bytes(m, c->b.block_size, c->b.kv_dtype);
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
	c->attn = attn_path();
	c->tile_rows = ATTN_TILE_QUERIES / (c->n_head / c->n_head_kv);
	if (!c->tile_rows)
		c->tile_rows = 1;
	c->attn_work_stride = (cpu_attn_work_floats(c->tile_rows * (c->n_head / c->n_head_kv),
						     c->head_dim) + 15) & ~(size_t)15;
	c->attn_work = falloc(c->b.n_threads, c->attn_work_stride);
	c->attn_ptr = calloc((size_t)c->b.n_threads * 2 * c->b.max_context, sizeof(void *));
	c->tile_seq = calloc(T, sizeof(*c->tile_seq));
	c->tile_row = calloc(T, sizeof(*c->tile_row));
	/*
	 * Splits happen only below ATTN_SPLIT_TASKS * threads (tile, KV head)
	 * pairs, into runs that add up to fewer than twice that many tasks.
	 */
	split = ATTN_SPLIT_TASKS * (size_t)c->b.n_threads;
	c->jobs = calloc(T * c->n_head_kv + 2 * split, sizeof(*c->jobs));
	c->merges = calloc(split, sizeof(*c->merges));
	if (!c->attn_work || !c->attn_ptr || !c->tile_seq || !c->tile_row || !c->jobs ||
	    !c->merges) {
		backend_errf(err, errlen, -ENOMEM, "attention scratch: out of memory");
		goto fail;
	}
	return &c->b;

fail:
	cpu_destroy(&c->b);
	return NULL;
}
