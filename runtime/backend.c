// SPDX-License-Identifier: GPL-2.0
/*
 * What every backend shares: the one-line error it gives its caller, and
 * the shape of model the forward step of runtime/cpu/ and cuda/ computes.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"

/**
 * backend_errf() - write a one-line reason and pass an error through
 * @err:	where the reason goes, or NULL
 * @len:	its size
 * @ret:	what to return
 * @fmt:	printf format of the reason
 *
 * Return: @ret.
 */
int backend_errf(char *err, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static bool is_f32(const struct gguf_tensor *t)
{
	return !t || t->type == GGML_TYPE_F32;
}

/**
 * backend_check_model() - can the LLaMA-family step compute with @m?
 * @m:		a loaded model
 * @err:	the reason, when not
 * @len:	its size
 *
 * Query heads in whole groups per KV head, norms and biases in F32 (they
 * are read as vectors, never as matrices), and Q, K and V biases all
 * present or all absent.  A backend adds what it alone needs.
 *
 * Return: 0 or -EINVAL.
 */
int backend_check_model(const struct model *m, char *err, size_t len)
{
	const struct model_hparams *hp = &m->hp;
	uint32_t i;

	if (!hp->n_head_kv || hp->n_head % hp->n_head_kv)
		return backend_errf(err, len, -EINVAL, "%u heads over %u kv heads", hp->n_head,
				    hp->n_head_kv);
	if (!is_f32(m->output_norm))
		return backend_errf(err, len, -EINVAL, "output_norm is not F32");
	for (i = 0; i < hp->n_layer; i++) {
		const struct model_layer *l = &m->layers[i];

		if (!is_f32(l->attn_norm) || !is_f32(l->ffn_norm) || !is_f32(l->bq) ||
		    !is_f32(l->bk) || !is_f32(l->bv))
			return backend_errf(err, len, -EINVAL,
					    "layer %u: norms and biases must be F32", i);
		if (!l->bq != !l->bk || !l->bq != !l->bv)
			return backend_errf(err, len, -EINVAL, "layer %u: some QKV biases missing",
					    i);
	}
	return 0;
}

/*
 * Does the list name a token twice? A drawer may apply its entries at once
 * (the GPU's threads), so each logit must have one. Checked each step for
 * each penalised draw, so against a bitmap of the vocabulary kept by the
 * checking thread (it grows, never shrinks) and cleared again word by word
 * after the list: no allocation per token. Return: 0, -EINVAL if so,
 * -ENOMEM.
 */
static int pen_dup(const struct sampler_pen *pen, uint32_t n, uint32_t n_vocab)
{
	static __thread uint64_t *seen;
	static __thread size_t words;
	size_t need = ((size_t)n_vocab + 63) / 64;
	uint32_t i, id;
	int err = 0;

	if (need > words) {
		uint64_t *grown = calloc(need, sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		free(seen);
		seen = grown;
		words = need;
	}
	for (i = 0; i < n && !err; i++) {
		id = pen[i].id;
		if (seen[id / 64] & 1ULL << (id % 64))
			err = -EINVAL;
		seen[id / 64] |= 1ULL << (id % 64);
	}
	while (i-- > 0)				/* the bits this list set, only */
		seen[pen[i].id / 64] = 0;
	return err;
}

/*
 * A draw the backend can make (see &struct backend_sample): 0, with its
 * penalty entries added to *@pen, -EINVAL or -ENOMEM.
 */
static int check_sample(const struct backend *b, const struct backend_seq *s, uint64_t *pen)
{
	const struct sampler_draw *p = &s->sample->set;
	uint32_t j;
	int err;

	if (!b->draws_tokens || s->logits != BACKEND_LOGITS_LAST)
		return -EINVAL;
	if (!(p->temperature >= 0.0f) || isinf(p->temperature) || !(p->top_p > 0.0f) ||
	    !(p->top_p <= 1.0f) || !(p->min_p >= 0.0f) || !(p->min_p <= 1.0f) ||
	    !(p->u >= 0.0f) || !(p->u < 1.0f))
		return -EINVAL;
	if (!backend_draw_penalised(p))
		return 0;
	if (!(p->rep > 0.0f) || isinf(p->rep) || !isfinite(p->pres) || !isfinite(p->freq) ||
	    p->n_pen > b->n_vocab)
		return -EINVAL;
	for (j = 0; j < p->n_pen; j++)
		if (p->pen[j].id >= b->n_vocab)
			return -EINVAL;
	err = pen_dup(p->pen, p->n_pen, b->n_vocab);
	if (err)
		return err;
	*pen += p->n_pen + 1;
	return 0;
}

/**
 * backend_check_step() - is this a step backend_step() may run?
 * @b:		the backend
 * @seqs:	the step's sequences
 * @n_seqs:	how many
 * @c:		out: rows (tokens), rows of logits, block-table entries and
 *		penalty entries
 *
 * Every backend refuses the same steps with the same errors, before it
 * touches anything: see backend_step().
 *
 * Return: 0, -EINVAL, -E2BIG, or -ENOMEM (checking a long penalty list).
 */
int backend_check_step(const struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		       struct backend_step_counts *c)
{
	uint64_t rows = 0, out = 0, bt = 0, pen = 0;
	uint32_t i, j;

	if (!seqs || !n_seqs)
		return -EINVAL;
	for (i = 0; i < n_seqs; i++) {
		const struct backend_seq *s = &seqs[i];
		uint64_t end = (uint64_t)s->pos + s->n_tokens;
		uint64_t blocks = (end + b->block_size - 1) / b->block_size;

		if (!s->n_tokens || !s->tokens || !s->block_table || s->logits > BACKEND_LOGITS_ALL)
			return -EINVAL;
		if (end > b->max_context)
			return -E2BIG;
		if ((uint64_t)s->n_blocks * b->block_size < end)
			return -EINVAL;
		for (j = 0; j < blocks; j++)
			if (s->block_table[j] >= b->n_blocks)
				return -EINVAL;
		/* A fed token is the backend's own: see &backend_seq.feed. */
		if (s->feed && (s->n_tokens != 1 || !b->ops->submit))
			return -EINVAL;
		for (j = 0; !s->feed && j < s->n_tokens; j++)
			if (s->tokens[j] >= b->n_vocab)
				return -EINVAL;
		if (s->sample) {
			int err = check_sample(b, s, &pen);

			if (err)
				return err;
		}
		rows += s->n_tokens;
		out += s->logits == BACKEND_LOGITS_ALL ? s->n_tokens :
		       s->logits == BACKEND_LOGITS_LAST;
		bt += blocks;
	}
	if (rows > b->max_tokens || pen > b->pen_room)
		return -E2BIG;
	c->rows = rows;
	c->out = out;
	c->bt = bt;
	c->pen = pen;
	return 0;
}

/**
 * backend_kv_dtype_cpu() - the CPU backend's KV element type for a model
 * @m:		the model
 * @dtype:	what was asked for
 *
 * Return: @dtype, or for BACKEND_KV_AUTO: F32 if the model's matrices are
 * F32 (so an F32 model computes in F32 throughout), F16 otherwise.
 */
enum backend_kv_dtype backend_kv_dtype_cpu(const struct model *m, enum backend_kv_dtype dtype)
{
	if (dtype != BACKEND_KV_AUTO)
		return dtype;
	if (m->hp.n_layer && m->layers[0].wk && m->layers[0].wk->type == GGML_TYPE_F32)
		return BACKEND_KV_F32;
	return BACKEND_KV_F16;
}

/**
 * backend_kv_dtype_parse() - a KV element type from its name
 * @s:		"auto", "f32" or "f16" (also "float32", "float16", "fp16", and
 *		"bf16" / "bfloat16", which only the CUDA backend takes)
 * @dtype:	out: the type
 *
 * Return: 0, or -EINVAL for any other name.
 */
int backend_kv_dtype_parse(const char *s, enum backend_kv_dtype *dtype)
{
	static const struct { const char *name; enum backend_kv_dtype t; } names[] = {
		{ "auto", BACKEND_KV_AUTO }, { "f32", BACKEND_KV_F32 },
		{ "float32", BACKEND_KV_F32 }, { "f16", BACKEND_KV_F16 },
		{ "fp16", BACKEND_KV_F16 }, { "float16", BACKEND_KV_F16 },
		{ "bf16", BACKEND_KV_BF16 }, { "bfloat16", BACKEND_KV_BF16 },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i].name)) {
			*dtype = names[i].t;
			return 0;
		}
	}
	return -EINVAL;
}

/**
 * backend_kv_dtype_name() - a KV element type's name
 * @dtype:	the type
 *
 * Return: "auto", "f32", "f16", "bf16", or "?".
 */
const char *backend_kv_dtype_name(enum backend_kv_dtype dtype)
{
	switch (dtype) {
	case BACKEND_KV_AUTO:
		return "auto";
	case BACKEND_KV_F32:
		return "f32";
	case BACKEND_KV_F16:
		return "f16";
	case BACKEND_KV_BF16:
		return "bf16";
	}
	return "?";
}

/**
 * backend_init() - fill in the part of a backend its users read
 * @b:			the backend being created
 * @ops:		its implementation
 * @m:			the model
 * @p:			what it was asked for; zeros take the defaults
 * @max_tokens:		its own default for @p->max_tokens
 *
 * The defaults every backend shares: BACKEND_DEFAULT_BLOCK_SIZE, and the
 * model's training context (4096 if it names none) as the longest sequence.
 */
void backend_init(struct backend *b, const struct backend_ops *ops, const struct model *m,
		  const struct backend_params *p, uint32_t max_tokens)
{
	b->ops = ops;
	b->model = m;
	b->n_vocab = m->hp.n_vocab;
	b->block_size = p->block_size ? p->block_size : BACKEND_DEFAULT_BLOCK_SIZE;
	b->max_tokens = p->max_tokens ? p->max_tokens : max_tokens;
	b->max_context = p->max_context ? p->max_context : m->hp.n_ctx_train;
	if (!b->max_context)
		b->max_context = 4096;
}
