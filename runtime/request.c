// SPDX-License-Identifier: GPL-2.0
/*
 * Requests: admitted from a validated SQE copy, fed tokens by the scheduler,
 * and turned into CQEs.  Streamed output goes out a token at a time; other
 * output is kept and packed into as few CQEs as possible at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "llmqd.h"
#include "sqe_check.h"

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

/**
 * req_create() - admit a GENERATE whose SQE copy passed sqe_check()
 * @c:		the client
 * @sqe:	the private copy
 * @out:	the new request
 *
 * Copies the prompt and stop lists out of the arena once; everything later
 * works on the copies.
 *
 * Return: 0, -EILSEQ for a prompt that is not UTF-8, -EINVAL for a
 * malformed stop list, -ENOMEM.
 */
int req_create(struct client *c, const struct llmq_sqe *sqe, struct request **out)
{
	struct llmqd *d = c->d;
	struct request *r;
	int err = -ENOMEM;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	INIT_LIST_HEAD(&r->slink);
	INIT_LIST_HEAD(&r->clink);
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
	if (err)
		goto fail;
	r->c = c;
	r->user_data = sqe->user_data;
	r->priority = sqe->priority;
	r->flags = sqe->flags;
	r->max_tokens = sqe->max_tokens ? sqe->max_tokens : 16;
	if (r->max_tokens > d->cfg.max_tokens_limit)
		r->max_tokens = d->cfg.max_tokens_limit;
	r->seq.prompt = r->prompt;
	r->seq.prompt_len = r->prompt_len;
	r->prompt_tokens = d->engine.ops->prompt_tokens(&d->engine, r->prompt, r->prompt_len);
	list_add_tail(&r->clink, &c->reqs);
	c->nr_reqs++;
	d->stats.requests_active++;
	*out = r;
	return 0;
fail:
	free(r->prompt);
	free(r->stop);
	free(r->stop_ids);
	free(r);
	return err;
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

static void post_text(struct request *r, const char *text, uint32_t len, bool token, uint32_t id)
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

static bool is_stop_id(const struct request *r, uint32_t token)
{
	uint32_t i;

	for (i = 0; i < r->nr_stop_ids; i++)
		if (r->stop_ids[i] == token)
			return true;
	return false;
}

static int text_append(struct request *r, const char *t, uint32_t len)
{
	uint32_t cap;
	char *p;

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
 * req_emit() - deliver the token the engine produced for @r
 * @r:		a running request
 * @s:		its sequence after the step
 *
 * May finish (and free) @r.
 */
void req_emit(struct request *r, const struct engine_seq *s)
{
	struct llmqd *d = r->c->d;

	if (r->c->nobufs) {
		req_finish(r, -ENOBUFS, LLMQ_FINISH_ERROR);
		return;
	}
	d->stats.tokens_generated++;
	if (is_stop_id(r, s->token) || (s->eos && !(r->flags & LLMQ_SQE_IGNORE_EOS))) {
		req_finish(r, (int)r->generated, LLMQ_FINISH_STOP);
		return;
	}
	r->generated++;
	if (r->flags & LLMQ_SQE_STREAM) {
		post_text(r, s->text, s->text_len, true, s->token);
	} else if (text_append(r, s->text, s->text_len)) {
		req_finish(r, -ENOMEM, LLMQ_FINISH_ERROR);
		return;
	}
	if (r->generated >= r->max_tokens)
		req_finish(r, (int)r->generated, LLMQ_FINISH_LENGTH);
}

static void req_free(struct request *r)
{
	struct client *c = r->c;

	sched_remove(c->d, r);
	list_del_init(&r->clink);
	c->nr_reqs--;
	c->d->stats.requests_active--;
	free(r->prompt);
	free(r->stop);
	free(r->stop_ids);
	free(r->text);
	free(r);
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
		post_text(r, r->text, r->text_len, false, 0);
	memset(&cqe, 0, sizeof(cqe));
	cqe.user_data = r->user_data;
	cqe.res = res;
	cqe.finish = finish;
	cqe.token = r->prompt_tokens;
	cqe.index = r->index;
	client_post(c, &cqe);
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
