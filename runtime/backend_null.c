// SPDX-License-Identifier: GPL-2.0
/*
 * The null backend, like ublk's null target: no model and no arithmetic,
 * for testing the serving path and measuring the ring without a model's cost.
 *
 * It still keeps a real paged KV cache, one 64-bit word per slot, and its
 * output depends on every slot of the sequence: each token writes
 * mix(token, position) into its slot, and the logits for position p are a
 * one-hot on word (sum over i <= p of slot i times (i + 1)) mod n_words.  A
 * block table that points at the wrong block, a shared prefix block that was
 * overwritten or a recomputation that went astray therefore changes the
 * token stream, just as it would with a real model.  A step takes
 * delay_ns of wall time, whatever the batch, as a memory-bound decode step
 * would.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_null.h"

struct null_backend {
	struct backend	b;
	uint64_t	*slots;
	uint32_t	first_word;
	uint32_t	n_words;
	uint64_t	delay_ns;
};

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t *slot(struct null_backend *nb, const struct backend_seq *s, uint32_t pos)
{
	uint32_t bs = nb->b.block_size;

	return &nb->slots[(size_t)s->block_table[pos / bs] * bs + pos % bs];
}

static int seq_check(const struct backend *b, const struct backend_seq *s)
{
	uint32_t i, end;

	if (!s->n_tokens || !s->tokens || !s->block_table)
		return -EINVAL;
	if (s->pos > b->max_context || s->n_tokens > b->max_context - s->pos)
		return -E2BIG;
	end = s->pos + s->n_tokens;
	if ((uint64_t)s->n_blocks * b->block_size < end)
		return -EINVAL;
	for (i = 0; i < s->n_tokens; i++)
		if (s->tokens[i] >= b->n_vocab)
			return -EINVAL;
	for (i = 0; i < (end + b->block_size - 1) / b->block_size; i++)
		if (s->block_table[i] >= b->n_blocks)
			return -EINVAL;
	if (s->logits > BACKEND_LOGITS_ALL)
		return -EINVAL;
	return 0;
}

static void one_hot(struct null_backend *nb, const struct backend_seq *s, uint32_t pos,
		    float *row)
{
	uint64_t h = 0;
	uint32_t i;

	for (i = 0; i <= pos; i++)
		h += *slot(nb, s, i) * (i + 1);
	/* -1e30, not -inf: a sampler's temperature must not make NaNs of it */
	for (i = 0; i < nb->b.n_vocab; i++)
		row[i] = -1e30f;
	row[nb->first_word + mix(h) % nb->n_words] = 0.0f;
}

static int null_step(struct backend *b, const struct backend_seq *seqs, uint32_t n_seqs,
		     float *logits)
{
	struct null_backend *nb = (struct null_backend *)b;
	uint32_t i, j, total = 0;
	struct timespec ts;
	int err;

	if (!n_seqs || !seqs)
		return -EINVAL;
	for (i = 0; i < n_seqs; i++) {
		err = seq_check(b, &seqs[i]);
		if (err)
			return err;
		total += seqs[i].n_tokens;
		if (total > b->max_tokens)
			return -E2BIG;
	}
	for (i = 0; i < n_seqs; i++) {
		const struct backend_seq *s = &seqs[i];

		for (j = 0; j < s->n_tokens; j++)
			*slot(nb, s, s->pos + j) = mix((uint64_t)s->tokens[j] << 32 | (s->pos + j));
		if (s->logits == BACKEND_LOGITS_LAST) {
			one_hot(nb, s, s->pos + s->n_tokens - 1, logits);
			logits += b->n_vocab;
		} else if (s->logits == BACKEND_LOGITS_ALL) {
			for (j = 0; j < s->n_tokens; j++, logits += b->n_vocab)
				one_hot(nb, s, s->pos + j, logits);
		}
	}
	if (nb->delay_ns) {
		ts.tv_sec = nb->delay_ns / 1000000000ULL;
		ts.tv_nsec = nb->delay_ns % 1000000000ULL;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	return 0;
}

static void null_destroy(struct backend *b)
{
	struct null_backend *nb = (struct null_backend *)b;

	free(nb->slots);
	free(nb);
}

static const struct backend_ops null_ops = {
	.name = "null",
	.step = null_step,
	.destroy = null_destroy,
};

/**
 * backend_null_create() - a backend that computes nothing, carefully
 * @p:		sizes, and the vocabulary's word tokens to emit
 * @err:	message on failure
 * @errlen:	its size
 *
 * Return: the backend, or NULL with a message in @err.
 */
struct backend *backend_null_create(const struct backend_null_params *p, char *err,
				    size_t errlen)
{
	struct null_backend *nb;

	if (!p->n_blocks || !p->block_size || !p->max_tokens || !p->max_context ||
	    !p->n_words || p->first_word > p->n_vocab || p->n_words > p->n_vocab - p->first_word) {
		snprintf(err, errlen, "null backend: bad sizes");
		return NULL;
	}
	nb = calloc(1, sizeof(*nb));
	if (!nb)
		goto nomem;
	nb->slots = calloc((size_t)p->n_blocks * p->block_size, sizeof(*nb->slots));
	if (!nb->slots)
		goto nomem;
	nb->b.ops = &null_ops;
	nb->b.n_vocab = p->n_vocab;
	nb->b.block_size = p->block_size;
	nb->b.n_blocks = p->n_blocks;
	nb->b.kv_bytes = (size_t)p->n_blocks * p->block_size * sizeof(*nb->slots);
	nb->b.max_tokens = p->max_tokens;
	nb->b.max_context = p->max_context;
	nb->b.n_threads = 1;
	nb->first_word = p->first_word;
	nb->n_words = p->n_words;
	nb->delay_ns = p->delay_ns;
	return &nb->b;
nomem:
	if (nb)
		free(nb->slots);
	free(nb);
	snprintf(err, errlen, "null backend: out of memory for %u blocks", p->n_blocks);
	return NULL;
}
