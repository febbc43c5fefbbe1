// SPDX-License-Identifier: GPL-2.0
/*
 * Serving: requests into the scheduler, each planned step through the
 * backend, every sampled token out to its request, and the metrics of it
 * all.  This is the one place that knows requests, the scheduler and the
 * engine at once; each of those knows nothing of the others.
 *
 * On the CPU a step runs on the loop's thread and blocks it for the step's
 * length: new SQEs and cancellations are read between steps, which is when
 * continuous batching could act on them anyway, and a finished sequence's
 * final CQE goes out the moment its last token is sampled.  A backend that
 * runs ahead (the GPU's) takes step N + 1 before step N is collected, so
 * the loop plans, posts CQEs and reads the rings while the device works:
 * see step_ahead().
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmqd.h"
#include "log.h"
#include "sampler.h"

/*
 * Room for one token's text.  Vocabularies stay far below; a longer piece
 * fails its request with -ENOSPC rather than being cut.
 */
#define PIECE_MAX	16384

static char piece[PIECE_MAX];	/* steps run on the loop's one thread */

/**
 * serve_init() - open the engine and set up the scheduler over its cache
 * @d:		the daemon, configured
 * @err:	a message on failure
 * @errlen:	its size
 *
 * Return: 0, or -errno with a message in @err.
 */
int serve_init(struct llmqd *d, char *err, size_t errlen)
{
	struct sched_config sc = d->cfg.sched;
	struct backend *be;
	uint32_t room;
	int ret, i;

	ret = engine_open(&d->engine, &d->cfg.engine, err, errlen);
	if (ret)
		return ret;
	be = d->engine.be;
	d->kv = kvb_create(be->n_blocks, be->block_size, d->cfg.prefix_caching);
	sc.max_model_len = d->engine.max_model_len;
	sc.watermark_blocks = be->n_blocks / 100;
	ret = d->kv ? sched_init(&d->sched, &sc, d->kv) : -ENOMEM;
	if (ret) {
		snprintf(err, errlen, "scheduler: %s", strerror(-ret));
		goto fail;
	}
	/* Rows for the most sequences a step may ever hold, raised live or not. */
	room = d->sched.cfg.max_num_seqs_limit;
	d->logits = malloc((size_t)room * be->n_vocab * sizeof(*d->logits));
	ret = d->logits ? 0 : -ENOMEM;
	for (i = 0; i < 2; i++) {
		d->steps[i].seqs = calloc(room, sizeof(*d->steps[i].seqs));
		d->steps[i].bseqs = calloc(room, sizeof(*d->steps[i].bseqs));
		d->steps[i].samples = calloc(room, sizeof(*d->steps[i].samples));
		if (!d->steps[i].seqs || !d->steps[i].bseqs || !d->steps[i].samples)
			ret = -ENOMEM;
	}
	if (ret) {
		snprintf(err, errlen, "out of memory for %u rows of logits", room);
		goto fail;
	}
	d->stats.kv_blocks_total = be->n_blocks;
	return 0;
fail:
	serve_fini(d);
	return ret;
}

/**
 * serve_fini() - free what serve_init() made
 * @d:		the daemon, with no requests left
 */
void serve_fini(struct llmqd *d)
{
	int i;

	/* A step still out writes into the arrays below until it is done. */
	if (d->flight && d->engine.be)
		(void)backend_wait(d->engine.be);
	d->flight = NULL;
	free(d->logits);
	d->logits = NULL;
	for (i = 0; i < 2; i++) {
		free(d->steps[i].seqs);
		free(d->steps[i].bseqs);
		free(d->steps[i].samples);
		d->steps[i] = (struct serve_step){ 0 };
	}
	sched_fini(&d->sched);
	kvb_destroy(d->kv);
	d->kv = NULL;
	engine_close(&d->engine);
}

/**
 * serve_submit() - queue a new request for scheduling
 * @d:		the daemon
 * @r:		a request fresh from req_create()
 *
 * Return: 0, -EBUSY when --max-queued-requests wait already, -E2BIG for a
 * prompt too long for --max-model-len.  On error the caller finishes @r.
 */
int serve_submit(struct llmqd *d, struct request *r)
{
	return sched_add(&d->sched, &r->seq, now_ns());
}

/**
 * serve_remove() - take a request out of scheduling, in whatever state
 * @d:		the daemon
 * @r:		the request, being freed
 */
void serve_remove(struct llmqd *d, struct request *r)
{
	uint32_t i, j;

	sched_finish(&d->sched, &r->seq);
	/* A step out that held it delivers nothing to it. */
	for (i = 0; i < 2; i++)
		for (j = 0; j < d->steps[i].n; j++)
			if (d->steps[i].seqs[j] == &r->seq)
				d->steps[i].seqs[j] = NULL;
}

/**
 * serve_poll() - should a step run now?
 * @d:		the daemon
 *
 * Arms the batch-window timer while the window is open, so that the loop
 * wakes when it closes.
 *
 * Return: true when serve_step() should run at once.
 */
bool serve_poll(struct llmqd *d)
{
	uint64_t dl, now = now_ns();

	/* A step out: plan the next while it runs, or at least collect it. */
	if (d->flight)
		return true;
	switch (sched_poll(&d->sched, now, &dl)) {
	case SCHED_ACT_STEP:
		return true;
	case SCHED_ACT_WAIT:
		if (d->window_deadline != dl) {
			d->window_deadline = dl;
			loop_timer_arm(d, TIMER_WINDOW, dl - now);
		}
		return false;
	case SCHED_ACT_IDLE:
		break;
	}
	return false;
}

static bool is_stop_token(const struct llmqd *d, const struct request *r, uint32_t tok)
{
	uint32_t i;

	if (!(r->flags & LLMQ_SQE_IGNORE_EOS))
		for (i = 0; i < d->engine.nr_eos; i++)
			if (d->engine.eos_ids[i] == tok)
				return true;
	for (i = 0; i < r->nr_stop_ids; i++)
		if (r->stop_ids[i] == tok)
			return true;
	return false;
}

static void note_latency(struct llmqd *d, struct request *r, uint64_t now)
{
	struct sched_seq *q = &r->seq;

	if (!r->t_last_token) {
		hist_add(&d->metrics.ttft, now - r->t_arrival);
		hist_add(&d->metrics.queue, q->t_scheduled - q->t_arrival);
		hist_add(&d->metrics.prefill, now - q->t_scheduled);
	} else {
		hist_add(&d->metrics.itl, now - r->t_last_token);
	}
	r->t_last_token = now;
}

/*
 * Hand @r its next token @tok (log-probability @lp) and its text, and end
 * the request if the token ends it.  May free @r.
 */
static void emit_token(struct llmqd *d, struct request *r, uint32_t tok, float lp, uint64_t now)
{
	struct sched_seq *q = &r->seq;
	const char *out;
	size_t out_len;
	int n, fin, err;

	/* Run ahead, the token was appended as pending when its step went out. */
	if (q->n_pending)
		sched_resolve(&d->sched, q, tok);
	else
		sched_append(&d->sched, q, tok);
	note_latency(d, r, now);
	if (r->c->nobufs) {
		/* Its client stopped reading its CQ: see client_post(). */
		req_finish(r, -ENOBUFS, LLMQ_FINISH_ERROR);
		return;
	}
	n = tok_stream_next(d->engine.tok, &r->ts, tok, piece, sizeof(piece));
	if (n < 0) {
		req_finish(r, n, LLMQ_FINISH_ERROR);
		return;
	}
	fin = sampler_accept(r->smp, tok, piece, n, &out, &out_len);
	if (fin < 0) {
		req_finish(r, fin, LLMQ_FINISH_ERROR);
		return;
	}
	if (fin == SAMPLER_STOP && is_stop_token(d, r, tok)) {
		/* The stop token is not output, but text held back for it is. */
		err = out_len ? req_output(r, false, 0, 0.0f, out, out_len) : 0;
		req_finish(r, err ? err : (int)r->generated,
			   err ? LLMQ_FINISH_ERROR : LLMQ_FINISH_STOP);
		return;
	}
	err = req_output(r, true, tok, lp, out, out_len);
	if (!err && fin == SAMPLER_CONTINUE && q->n_tokens < q->max_len)
		return;
	if (!err && fin == SAMPLER_CONTINUE) {
		/* max-model-len cut the request short of its max_tokens */
		sampler_flush(r->smp, &out, &out_len);
		if (out_len)
			err = req_output(r, false, 0, 0.0f, out, out_len);
		fin = SAMPLER_LENGTH;
	}
	if (err)
		req_finish(r, err, LLMQ_FINISH_ERROR);
	else
		req_finish(r, (int)r->generated,
			   fin == SAMPLER_LENGTH ? LLMQ_FINISH_LENGTH : LLMQ_FINISH_STOP);
}

/*
 * Let the backend draw @r's next token when it can (a GPU then sends back
 * one id instead of a row of logits): @bs filled, or NULL for the host's
 * sampler. A penalised draw takes its list's room out of *@pen_left; one
 * that does not fit is the host's.
 */
static struct backend_sample *device_draw(struct llmqd *d, struct request *r,
					  struct backend_sample *bs, uint32_t *pen_left)
{
	uint32_t need = sampler_pen_room(r->smp);

	if (!d->engine.be->draws_tokens || need > *pen_left)
		return NULL;
	*pen_left -= need;
	sampler_next_draw(r->smp, &bs->set);
	bs->token = BACKEND_NO_TOKEN;
	return bs;
}

/*
 * Copy the planned step into @st: its sequences, what the backend is
 * given for each, and the draws asked of it. Returns whether the backend
 * draws every token of the step, so that the step may be left to run
 * while the next is planned.
 */
static bool step_fill(struct llmqd *d, struct serve_step *st, const struct sched_batch *b)
{
	uint32_t pen_left = d->engine.be->pen_room;
	bool ahead = true;
	uint32_t i;

	for (i = 0; i < b->n_seqs; i++) {
		struct sched_seq *q = b->seqs[i];
		struct backend_seq *bq = &st->bseqs[i];
		struct request *r = q->priv;

		st->seqs[i] = q;
		*bq = (struct backend_seq){
			.block_table = q->blocks,
			.n_blocks = q->n_blocks,
			.pos = q->step_pos,
			.tokens = q->tokens + q->step_pos,
			.n_tokens = q->step_len,
			.logits = q->step_sample ? BACKEND_LOGITS_LAST : BACKEND_LOGITS_NONE,
		};
		/* Its token is still on the device: the step out drew it. */
		if (q->n_pending)
			bq->feed = r->flight_idx + 1;
		if (!q->step_sample)
			continue;
		bq->sample = device_draw(d, r, &st->samples[i], &pen_left);
		if (!bq->sample)
			ahead = false;
	}
	st->n = b->n_seqs;
	return ahead;
}

/* A failed step: each of its requests still there ends with @err. */
static void step_fail(struct llmqd *d, struct serve_step *st, int err)
{
	struct backend *be = d->engine.be;
	uint32_t i, n = 0;

	for (i = 0; i < st->n; i++)
		n += st->seqs[i] != NULL;
	/* Requests cancelled or gone while a step ran ahead have left it already. */
	if (n == st->n)
		pr_err("%s step of %u sequences failed: %s", be->ops->name, n, strerror(-err));
	else
		pr_err("%s step of %u sequences failed (%u of them had ended already): %s",
		       be->ops->name, st->n, st->n - n, strerror(-err));
	for (i = st->n; i-- > 0;)
		if (st->seqs[i])
			req_finish(st->seqs[i]->priv, err, LLMQ_FINISH_ERROR);
	st->n = 0;
}

/* Hand each sequence of a computed step its token; ended ones are skipped. */
static void step_deliver(struct llmqd *d, struct serve_step *st)
{
	struct backend *be = d->engine.be;
	uint64_t now = now_ns();
	uint32_t i, row = 0;

	for (i = 0; i < st->n; i++) {
		struct backend_seq *bq = &st->bseqs[i];
		struct backend_sample *bs = bq->sample;
		struct request *r;
		uint32_t tok;
		float lp;

		if (bq->logits != BACKEND_LOGITS_LAST)
			continue;
		if (!st->seqs[i]) {
			row++;
			continue;
		}
		r = st->seqs[i]->priv;
		if (bs) {
			tok = bs->token;
			lp = bs->logprob;
			d->stats.device_sampled_tokens++;
		} else {
			tok = sampler_sample(r->smp, d->logits + (size_t)row * be->n_vocab, &lp);
		}
		row++;
		emit_token(d, r, tok, lp, now);
	}
	st->n = 0;
}

/* Wait for the oldest step out, @st, and deliver it. */
static void step_complete(struct llmqd *d, struct serve_step *st)
{
	int err = backend_wait(d->engine.be);

	st->out = false;
	if (d->flight == st)
		d->flight = NULL;
	if (err)
		step_fail(d, st, err);
	else
		step_deliver(d, st);
}

/*
 * Run ahead: queue this step, then collect the one out before it while the
 * device runs it. With @ahead (the backend draws every token of this
 * step), its sequences get their tokens as pending and it stays out: the
 * next step is planned and queued, its decodes fed on the device, before
 * this one is waited for. Otherwise (a draw the host makes: a request
 * whose penalty list did not fit) it is waited for at once.
 */
static void step_ahead(struct llmqd *d, struct serve_step *st, bool ahead)
{
	struct serve_step *prev = d->flight;
	uint32_t i;
	int err;

	err = backend_submit(d->engine.be, st->bseqs, st->n, d->logits);
	if (err) {
		if (prev)
			step_complete(d, prev);
		step_fail(d, st, err);
		return;
	}
	st->out = true;
	d->n_steps++;
	sched_advance(&d->sched);
	if (prev) {
		d->stats.steps_ahead++;
		step_complete(d, prev);
	}
	if (!ahead) {
		step_complete(d, st);
		return;
	}
	for (i = 0; i < st->n; i++) {
		struct sched_seq *q = st->seqs[i];

		if (!q || st->bseqs[i].logits != BACKEND_LOGITS_LAST)
			continue;
		sched_append_pending(&d->sched, q);
		((struct request *)q->priv)->flight_idx = i;
	}
	d->flight = st;
}

/**
 * serve_step() - plan a step, compute it, deliver its tokens
 * @d:		the daemon
 *
 * On a backend that runs ahead (backend_submit()), the step computed may
 * be the one planned before: see step_ahead(). A backend failure fails
 * every request of the step with its errno; the others, and the daemon,
 * go on.
 */
void serve_step(struct llmqd *d)
{
	struct backend *be = d->engine.be;
	struct serve_step *st = &d->steps[d->n_steps % 2];
	const struct sched_batch *b;
	bool ahead;
	int err;

	d->window_deadline = 0;
	b = sched_plan(&d->sched, now_ns());
	if (!b->n_seqs) {
		if (d->flight)
			step_complete(d, d->flight);
		return;
	}
	ahead = step_fill(d, st, b);
	d->stats.steps++;
	if (be->ops->submit) {
		step_ahead(d, st, ahead);
		return;
	}
	err = backend_step(be, st->bseqs, st->n, d->logits);
	if (err) {
		step_fail(d, st, err);
		return;
	}
	sched_advance(&d->sched);
	step_deliver(d, st);
}

/* A quantile in microseconds, saturated to the __u32 of struct llmq_stats. */
static uint32_t quantile_us(const struct hist *h, double q)
{
	uint64_t us = hist_quantile(h, q) / 1000;

	return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/**
 * serve_update_stats() - refresh the gauges and counters in d->stats
 * @d:		the daemon
 *
 * Called when someone reads them (a STATS reply, the SIGUSR1 dump), not
 * per step: the percentiles walk every histogram bucket.
 */
void serve_update_stats(struct llmqd *d)
{
	struct llmq_stats *st = &d->stats;
	struct serve_metrics *m = &d->metrics;
	st->requests_waiting = d->sched.nr_waiting;
	st->requests_running = d->sched.nr_running;
	st->kv_blocks_used = kvb_num_used(d->kv);
	st->preemptions = d->sched.stats.preemptions;
	/* The scheduler's counts: the block manager's also count retries. */
	if (d->cfg.prefix_caching) {
		st->prefix_cache_queries = d->sched.stats.cache_queries;
		st->prefix_cache_hits = d->sched.stats.cached_tokens;
	}
	st->prompt_tokens = d->sched.stats.prompt_tokens;
	st->tokens_generated = d->sched.stats.generation_tokens;
	st->ttft_p50_us = quantile_us(&m->ttft, 0.5);
	st->ttft_p99_us = quantile_us(&m->ttft, 0.99);
	st->itl_p50_us = quantile_us(&m->itl, 0.5);
	st->itl_p99_us = quantile_us(&m->itl, 0.99);
	st->e2e_p50_us = quantile_us(&m->e2e, 0.5);
	st->e2e_p99_us = quantile_us(&m->e2e, 0.99);
	st->queue_p50_us = quantile_us(&m->queue, 0.5);
	st->queue_p99_us = quantile_us(&m->queue, 0.99);
	st->graph_steps = d->engine.be->graph_steps;
}

/**
 * serve_dump_metrics() - write every metric in Prometheus' text format
 * @d:		the daemon
 * @f:		where (llmqd sends it to its log on SIGUSR1)
 *
 * Names follow vLLM's ("vllm:" becomes "llmq:"); metrics_print() has them,
 * for llmqctl stats --prometheus too.
 */
void serve_dump_metrics(struct llmqd *d, FILE *f)
{
	serve_update_stats(d);
	metrics_print(f, &d->stats, &d->metrics);
}
