// SPDX-License-Identifier: GPL-2.0
/*
 * Requests: admitted from a validated SQE copy, fed tokens by the scheduler,
 * and turned into CQEs.  Streamed output goes out a token at a time; other
 * output is kept and packed into as few CQEs as possible at the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmqd.h"
#include "sampler.h"
#include "sqe_check.h"

static void req_release(struct request *r);

static void *copy_out(const void *src, size_t len)
{
	void *p = malloc(len ? len : 1);

	if (p && len)
		memcpy(p, src, len);
	return p;
}

/* Stop strings: NUL-terminated, none empty, the list ends with a NUL. */
static int stop_list_check(const char *s, uint32_t len)
{
	uint32_t i, start = 0;

	if (!len)
		return 0;
	if (s[len - 1])
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i])
			continue;
		if (i == start)
			return -EINVAL;
		start = i + 1;
	}
	return utf8_check((const uint8_t *)s, len);
}

/* Split a NUL-separated stop list into the sampler's array of strings. */
static int stop_split(struct request *r)
{
	uint32_t i, n = 0;

	for (i = 0; i < r->stop_len; i++)
		n += !r->stop[i];
	if (n > SAMPLER_MAX_STOP)
		return -EINVAL;
	r->stops = calloc(n ? n : 1, sizeof(*r->stops));
	if (!r->stops)
		return -ENOMEM;
	for (i = 0; i < r->stop_len; i += strlen(r->stop + i) + 1)
		r->stops[r->nr_stops++] = r->stop + i;
	return 0;
}

static float fp(int64_t v)
{
	return (float)v / LLMQ_FP_ONE;
}

/* Tokenize the prompt and build the request's sampler and sequence. */
static int req_prepare(struct request *r, const struct llmq_sqe *sqe)
{
	struct llmqd *d = r->c->d;
	struct engine *e = &d->engine;
	struct sampler_params sp = {
		.temperature = fp(sqe->temperature),
		.top_k = sqe->top_k,
		.top_p = sqe->top_p ? fp(sqe->top_p) : 1.0f,
		.min_p = fp(sqe->min_p),
		.repetition_penalty = sqe->repetition_penalty ? fp(sqe->repetition_penalty) : 1.0f,
		.presence_penalty = fp(sqe->presence_penalty),
		.frequency_penalty = fp(sqe->frequency_penalty),
		.seed = sqe->seed,
		.ignore_eos = sqe->flags & LLMQ_SQE_IGNORE_EOS,
		.eos_ids = e->eos_ids,
		.nr_eos_ids = e->nr_eos,
		.stop_ids = r->stop_ids,
		.nr_stop_ids = r->nr_stop_ids,
		.stop = (const char *const *)r->stops,
		.nr_stop = r->nr_stops,
	};
	struct sched_seq *q = &r->seq;
	uint32_t *ids, i, max_len;
	size_t n;
	int err;

	err = tok_encode(e->tok, r->prompt, r->prompt_len, true, false, &ids, &n);
	if (err)
		return err;
	if (!n) {
		free(ids);
		return -EINVAL;
	}
	for (i = 0; i < r->nr_stop_ids; i++)
		if (r->stop_ids[i] >= e->be->n_vocab)
			goto inval;
	/* The prompt must leave room for one token within max-model-len. */
	if (n >= e->max_model_len) {
		free(ids);
		return -E2BIG;
	}
	max_len = n + r->max_tokens;
	if (max_len > e->max_model_len || max_len < n)
		max_len = e->max_model_len;
	sp.max_tokens = max_len - n;
	if (sampler_check(&sp, NULL, 0))
		goto inval;
	q->tokens = realloc(ids, max_len * sizeof(*ids));
	if (!q->tokens) {
		free(ids);
		return -ENOMEM;
	}
	q->blocks = calloc(sched_max_blocks(&d->sched), sizeof(*q->blocks));
	r->smp = sampler_create(&sp, e->be->n_vocab, q->tokens, n);
	if (!q->blocks || !r->smp)
		return -ENOMEM;
	q->n_tokens = n;
	q->n_prompt = n;
	q->max_len = max_len;
	q->priority = r->priority;
	q->salt = d->cfg.prefix_salt_uid ? r->c->uid : 0;
	q->priv = r;
	r->prompt_tokens = n;
	return 0;
inval:
	free(ids);
	return -EINVAL;
}

/**
 * req_create() - admit a GENERATE whose SQE copy passed sqe_check()
 * @c:		the client
 * @sqe:	the private copy
 * @out:	the new request
 *
 * Copies the prompt and stop lists out of the arena once, tokenizes the
 * prompt and sets up the request's sampler; everything later works on the
 * copies.  The caller hands the request to serve_submit().
 *
 * Return: 0, -EILSEQ for a prompt that is not UTF-8, -EINVAL for a
 * malformed stop list, an empty prompt or a stop id outside the vocabulary,
 * -E2BIG for a prompt that leaves no room in --max-model-len, -ENOMEM.
 */
int req_create(struct client *c, const struct llmq_sqe *sqe, struct request **out)
{
	struct llmqd *d = c->d;
	struct request *r;
	int err = -ENOMEM;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	INIT_LIST_HEAD(&r->seq.link);
	INIT_LIST_HEAD(&r->clink);
	r->c = c;
	r->prompt = copy_out(c->arena + sqe->prompt_off, sqe->prompt_len);
	r->stop = copy_out(c->arena + sqe->stop_off, sqe->stop_len);
	r->stop_ids = copy_out(c->arena + sqe->stop_ids_off,
			       (size_t)sqe->stop_ids_count * sizeof(uint32_t));
	if (!r->prompt || !r->stop || !r->stop_ids)
		goto fail;
	r->prompt_len = sqe->prompt_len;
	r->stop_len = sqe->stop_len;
	r->nr_stop_ids = sqe->stop_ids_count;
	err = utf8_check((const uint8_t *)r->prompt, r->prompt_len);
	if (err)
		goto fail;
	err = stop_list_check(r->stop, r->stop_len);
	if (!err)
		err = stop_split(r);
	if (err)
		goto fail;
	r->user_data = sqe->user_data;
	r->priority = sqe->priority;
	r->flags = sqe->flags;
	r->max_tokens = sqe->max_tokens ? sqe->max_tokens : 16;
	if (r->max_tokens > d->cfg.max_tokens_limit)
		r->max_tokens = d->cfg.max_tokens_limit;
	err = req_prepare(r, sqe);
	if (err)
		goto fail;
	r->t_arrival = now_ns();
	list_add_tail(&r->clink, &c->reqs);
	c->nr_reqs++;
	d->stats.requests_active++;
	*out = r;
	return 0;
fail:
	req_release(r);
	return err;
}

/* A log-probability in the CQE's fixed point, saturated. */
static int32_t llmq_fp_logprob(float lp)
{
	double v = (double)lp * LLMQ_FP_ONE;

	if (!(v > INT32_MIN))
		return INT32_MIN;
	return v > 0 ? 0 : (int32_t)v;
}

/* Longest prefix of @s, at most @max bytes, that ends on a character boundary. */
static uint32_t utf8_cut(const char *s, uint32_t len, uint32_t max)
{
	uint32_t n;

	if (len <= max)
		return len;
	n = max;
	while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80)
		n--;
	return n ? n : max;
}

static void post_text(struct request *r, const char *text, uint32_t len, bool token, uint32_t id,
		      float logprob)
{
	struct llmq_cqe cqe;
	uint32_t n;

	do {
		memset(&cqe, 0, sizeof(cqe));
		cqe.user_data = r->user_data;
		cqe.flags = LLMQ_CQE_F_MORE;
		if (token) {
			cqe.flags |= LLMQ_CQE_F_TOKEN;
			cqe.token = id;
			cqe.logprob = llmq_fp_logprob(logprob);
			token = false;
		}
		cqe.index = r->index++;
		n = utf8_cut(text, len, LLMQ_CQE_TEXT_MAX);
		memcpy(cqe.text, text, n);
		cqe.text_len = (uint8_t)n;
		text += n;
		len -= n;
		client_post(r->c, &cqe);
	} while (len);
}

static int text_append(struct request *r, const char *t, uint32_t len)
{
	uint32_t cap;
	char *p;

	/* Nothing yet may mean no buffer yet: memcpy() must not see its NULL. */
	if (!len)
		return 0;
	if (r->text_len + len > r->text_cap) {
		cap = r->text_cap ? r->text_cap : 256;
		while (cap < r->text_len + len)
			cap *= 2;
		p = realloc(r->text, cap);
		if (!p)
			return -ENOMEM;
		r->text = p;
		r->text_cap = cap;
	}
	memcpy(r->text + r->text_len, t, len);
	r->text_len += len;
	return 0;
}

/**
 * req_output() - deliver one sampled token's text
 * @r:		a running request
 * @is_token:	the text comes with a new output token (not: text held back
 *		until the request's stop token arrived)
 * @token:	the token id
 * @logprob:	its log-probability
 * @text:	the text it releases (may be empty: held back by a stop string
 *		that might be starting, or an unfinished UTF-8 character)
 * @len:	bytes of @text
 *
 * Streamed requests get a CQE per token; others keep the text for the end.
 *
 * Return: 0, or -ENOMEM.
 */
int req_output(struct request *r, bool is_token, uint32_t token, float logprob,
	       const char *text, uint32_t len)
{
	r->generated += is_token;
	if (is_token) {
		struct llmqd *d = r->c->d;
		/* The step's clock, read once for all its tokens (note_latency()). */
		uint64_t sec = r->t_last_token / 1000000000ULL;

		r->c->tokens++;
		if (d->tps_sec[sec % 8] != sec) {
			d->tps_sec[sec % 8] = sec;
			d->tps_tok[sec % 8] = 0;
		}
		d->tps_tok[sec % 8]++;
	}
	if (r->flags & LLMQ_SQE_STREAM) {
		if (is_token || len)
			post_text(r, text, len, is_token, token, logprob);
		return 0;
	}
	return text_append(r, text, len);
}

/* Free @r's memory: it is on no list. */
static void req_release(struct request *r)
{
	sampler_free(r->smp);
	free(r->seq.tokens);
	free(r->seq.blocks);
	free(r->prompt);
	free(r->stop);
	free(r->stops);
	free(r->stop_ids);
	free(r->text);
	free(r);
}

static void req_free(struct request *r)
{
	struct client *c = r->c;

	serve_remove(c->d, r);
	list_del_init(&r->clink);
	c->nr_reqs--;
	c->d->stats.requests_active--;
	req_release(r);
}

/**
 * req_finish() - post the final CQE of @r and free it
 * @r:		the request
 * @res:	tokens generated, or -errno
 * @finish:	LLMQ_FINISH_*
 */
void req_finish(struct request *r, int res, uint8_t finish)
{
	struct client *c = r->c;
	struct llmq_cqe cqe;

	if (r->text_len && res >= 0)
		post_text(r, r->text, r->text_len, false, 0, 0.0f);
	memset(&cqe, 0, sizeof(cqe));
	cqe.user_data = r->user_data;
	cqe.res = res;
	cqe.finish = finish;
	cqe.token = r->prompt_tokens;
	cqe.index = r->index;
	client_post(c, &cqe);
	if (res >= 0)
		hist_add(&c->d->metrics.e2e, now_ns() - r->t_arrival);
	if (finish == LLMQ_FINISH_CANCELLED)
		c->d->stats.requests_cancelled++;
	else if (res < 0)
		c->d->stats.requests_failed++;
	req_free(r);
	client_req_done(c);
}

/**
 * req_free_silent() - drop @r without a CQE (its client is gone)
 * @r:		the request
 */
void req_free_silent(struct request *r)
{
	r->c->d->stats.requests_cancelled++;
	req_free(r);
}
