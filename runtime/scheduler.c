// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler: "the bus leaves when full or on time".  When the engine is
 * idle and a request arrives, the batch window opens for batch_timeout_ms or
 * until max_batch_size requests wait; then steps run back to back.  At every
 * step boundary finished sequences have already left (their final CQE went
 * out the moment they finished) and waiting ones join, up to max_batch_size.
 */
#include <errno.h>
#include <stdlib.h>

#include "llmqd.h"
#include "log.h"

int sched_init(struct llmqd *d)
{
	struct sched *s = &d->sched;

	INIT_LIST_HEAD(&s->waiting);
	INIT_LIST_HEAD(&s->running);
	s->state = SCHED_S_IDLE;
	s->seqs = calloc(d->cfg.max_batch_size, sizeof(*s->seqs));
	s->reqs = calloc(d->cfg.max_batch_size, sizeof(*s->reqs));
	if (!s->seqs || !s->reqs)
		return -ENOMEM;
	return 0;
}

void sched_fini(struct llmqd *d)
{
	free(d->sched.seqs);
	free(d->sched.reqs);
}

/* Start a step: waiting requests join, then the step runs now or on a timer. */
static void step_begin(struct llmqd *d)
{
	struct sched *s = &d->sched;
	struct request *r;

	while (s->nr_running < d->cfg.max_batch_size && !list_empty(&s->waiting)) {
		r = list_first_entry(&s->waiting, struct request, slink);
		list_del_init(&r->slink);
		s->nr_waiting--;
		if (r->c->nobufs) {
			/* Its client stopped reading its CQ: see client_post(). */
			req_finish(r, -ENOBUFS, LLMQ_FINISH_ERROR);
			continue;
		}
		list_add_tail(&r->slink, &s->running);
		s->nr_running++;
		r->running = true;
	}
	d->stats.requests_waiting = s->nr_waiting;
	s->window_seq = 0;
	if (!s->nr_running) {
		s->state = SCHED_S_IDLE;
		s->step_ready = false;
		return;
	}
	s->state = SCHED_S_STEP;
	if (d->engine.step_delay_ns)
		s->step_seq = loop_timer_arm(d, TIMER_STEP, d->engine.step_delay_ns);
	else
		s->step_ready = true;
}

/**
 * sched_add() - queue a new request
 * @d:		the daemon
 * @r:		a request no list holds yet
 *
 * Lower priority values go first; equal priorities keep arrival order.
 */
void sched_add(struct llmqd *d, struct request *r)
{
	struct sched *s = &d->sched;
	struct list_head *pos = s->waiting.prev;

	while (pos != &s->waiting &&
	       list_entry(pos, struct request, slink)->priority > r->priority)
		pos = pos->prev;
	list_add(&r->slink, pos);
	s->nr_waiting++;
	d->stats.requests_waiting = s->nr_waiting;

	switch (s->state) {
	case SCHED_S_IDLE:
		if (!d->cfg.batch_timeout_ms || s->nr_waiting >= d->cfg.max_batch_size) {
			step_begin(d);
		} else {
			s->state = SCHED_S_WINDOW;
			s->window_seq = loop_timer_arm(d, TIMER_WINDOW,
						       d->cfg.batch_timeout_ms * 1000000ULL);
		}
		break;
	case SCHED_S_WINDOW:
		/* The bus is full: leave now; the window timer goes stale. */
		if (s->nr_waiting >= d->cfg.max_batch_size)
			step_begin(d);
		break;
	case SCHED_S_STEP:
		break;
	}
}

/**
 * sched_remove() - take a request off the scheduler (finished or cancelled)
 * @d:		the daemon
 * @r:		the request
 */
void sched_remove(struct llmqd *d, struct request *r)
{
	struct sched *s = &d->sched;

	if (list_empty(&r->slink))
		return;
	list_del_init(&r->slink);
	if (r->running)
		s->nr_running--;
	else
		s->nr_waiting--;
	r->running = false;
	d->stats.requests_waiting = s->nr_waiting;
}

/**
 * sched_run_step() - run the step under way and post its output
 * @d:		the daemon
 *
 * Called from the loop when step_ready is set, or when the step timer of an
 * engine with a step delay fires.
 */
void sched_run_step(struct llmqd *d)
{
	struct sched *s = &d->sched;
	struct list_head *pos, *n;
	unsigned int i = 0, nr;
	int err;

	s->step_ready = false;
	list_for_each_safe(pos, n, &s->running) {
		struct request *r = list_entry(pos, struct request, slink);

		s->reqs[i] = r;
		s->seqs[i] = &r->seq;
		r->seq.pos = r->generated;
		i++;
	}
	nr = i;
	if (nr) {
		d->stats.steps++;
		err = d->engine.ops->step(&d->engine, s->seqs, nr);
		for (i = 0; i < nr; i++) {
			if (err)
				req_finish(s->reqs[i], err, LLMQ_FINISH_ERROR);
			else
				req_emit(s->reqs[i], s->seqs[i]);
		}
		if (err)
			pr_err("engine step failed: %d", err);
	}
	step_begin(d);
}

/**
 * sched_on_timer() - a scheduler timer fired
 * @d:		the daemon
 * @kind:	TIMER_WINDOW or TIMER_STEP
 * @seq:	which arming it was; stale ones are ignored
 */
void sched_on_timer(struct llmqd *d, int kind, uint64_t seq)
{
	struct sched *s = &d->sched;

	if (kind == TIMER_WINDOW && s->state == SCHED_S_WINDOW && seq == s->window_seq)
		step_begin(d);
	else if (kind == TIMER_STEP && s->state == SCHED_S_STEP && seq == s->step_seq)
		sched_run_step(d);
}
