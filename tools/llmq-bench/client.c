// SPDX-License-Identifier: GPL-2.0
/*
 * The clients: threads, each with a ring of its own as separate local
 * programs would have, that take requests from the workload when they are
 * due, submit them, and time every CQE as they reap it.
 *
 * Closed loop (--max-concurrency C) is C clients with one request in flight
 * each; open loop is the same clients taking requests at their arrival
 * times.  Nothing waits without a bound: a client sleeps at most TICK_MS at
 * a time, so it sees SIGINT, a request past --timeout-s and the end of the
 * run promptly, and a runtime that dies wakes every sleeper through its
 * ring's socket (libllmq returns -ECONNRESET).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "libllmq.h"

#define TICK_MS		100
#define NS_PER_MS	1000000ULL
#define NS_PER_S	1000000000ULL
#define GRACE_NS	(5 * NS_PER_S)	/* for a cancelled request's final CQE */
#define CANCEL_UD	(1ULL << 63)	/* user_data bit of our cancellations */
#define NOP_UD		(CANCEL_UD | (1ULL << 62))	/* SQEs handed back unused */
#define BAR_WIDTH	20

enum slot_state {
	SLOT_FREE = 0,
	SLOT_PENDING,		/* taken from the workload, not yet submitted */
	SLOT_RUNNING,
	SLOT_CANCELLING,	/* cancel sent: waiting for the final CQE */
};

struct slot {
	size_t		idx;
	int		state;
	bool		recorded;	/* the request's outcome is already set */
	bool		cancel_sent;
	uint64_t	deadline;	/* RUNNING: --timeout-s; CANCELLING: grace */
};

struct run {
	const struct bench_opts		*o;
	struct bench_req		*reqs;
	size_t				n;
	unsigned long			cap;	/* a sweep point's concurrency */
	struct llmq_params		params;
	uint64_t			t0;
	pthread_mutex_t			lock;
	pthread_cond_t			cond;
	unsigned long			ready;	/* clients with a ring (or an error) */
	bool				go;
	size_t				next;	/* under lock: next request to take */
	/* Atomics, for the progress line and the stop. */
	unsigned long			done;
	unsigned long			failed;
	unsigned long			tokens;
	unsigned long			finished;	/* clients that returned */
	int				stop;		/* enum bench_stop */
	int				gone_err;
};

struct client {
	struct run	*run;
	struct llmq_ring ring;
	struct slot	*slots;
	unsigned long	nr_slots;
	unsigned long	used;
	pthread_t	tid;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/**
 * bench_signals_init() - SIGINT stops the run; a second one kills the tool
 */
void bench_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	/* No SA_RESTART: a sleep in the main thread ends at once. */
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/**
 * bench_interrupted() - has SIGINT arrived?
 *
 * Return: true once it has.
 */
bool bench_interrupted(void)
{
	return interrupted;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static int ms_until(uint64_t when, uint64_t now)
{
	return when <= now ? 0 : (int)((when - now + NS_PER_MS - 1) / NS_PER_MS);
}

static void sampling_of(const struct bench_opts *o, uint32_t max_tokens, struct llmq_sampling *sp)
{
	llmq_sampling_init(sp);
	sp->max_tokens = max_tokens;
	sp->flags = LLMQ_SQE_STREAM | (o->ignore_eos ? LLMQ_SQE_IGNORE_EOS : 0);
}

/* Ring geometry that fits @per_client requests and prompts up to @max_len bytes. */
static void params_for(unsigned long per_client, size_t max_len, struct llmq_params *p)
{
	uint64_t arena = (uint64_t)1 << 20, want = ((uint64_t)max_len * 2 + 4095) & ~4095ULL;
	uint32_t sq = 8;

	/* Room for every request and a cancellation of each. */
	while (sq < 2 * per_client && sq < LLMQ_MAX_SQ_ENTRIES)
		sq *= 2;
	if (want > arena)
		arena = want < LLMQ_MAX_ARENA ? want : LLMQ_MAX_ARENA;
	memset(p, 0, sizeof(*p));
	p->sq_entries = sq;
	p->cq_entries = per_client > 1 ? 4096 : 256;
	p->arena_size = (uint32_t)arena;
}

/**
 * bench_probe() - one request with max_tokens 1, for the prompt's token count
 * @o:		--socket, --timeout-s
 * @prompt:	the prompt
 * @prompt_tokens: set from the final CQE
 *
 * Also the first sign of life of the runtime, before anything is measured.
 *
 * Return: 0, -EINTR on SIGINT, -ETIME past --timeout-s, or the ring's or
 * the request's -errno.
 */
int bench_probe(const struct bench_opts *o, const char *prompt, uint32_t *prompt_tokens)
{
	uint64_t deadline = now_ns() + o->timeout_s * NS_PER_S, now;
	struct llmq_sampling sp;
	struct llmq_params p;
	struct llmq_ring ring;
	struct llmq_sqe *sqe;
	struct llmq_cqe *cqe;
	size_t len = strlen(prompt);
	int err;

	params_for(1, len, &p);
	err = llmq_queue_init(&ring, o->socket, &p);
	if (err)
		return err;
	sampling_of(o, 1, &sp);
	/* A fresh ring has a free SQE. */
	sqe = llmq_get_sqe(&ring);
	err = llmq_prep_generate(&ring, sqe, prompt, len, &sp, 1);
	if (err)
		goto out;
	err = llmq_submit(&ring);
	if (err < 0)
		goto out;
	for (;;) {
		now = now_ns();
		if (interrupted || now >= deadline) {
			err = interrupted ? -EINTR : -ETIME;
			break;
		}
		err = llmq_wait_cqe_timeout(&ring, &cqe, TICK_MS);
		if (err == -ETIME)
			continue;
		if (err)
			break;
		if (cqe->user_data == 1 && !(cqe->flags & LLMQ_CQE_F_MORE)) {
			err = cqe->res < 0 ? cqe->res : 0;
			*prompt_tokens = cqe->token;
			llmq_cqe_seen(&ring, cqe);
			break;
		}
		llmq_cqe_seen(&ring, cqe);
	}
out:
	llmq_queue_exit(&ring);
	return err;
}

static void set_stop(struct run *run, int why, int err)
{
	int none = BENCH_STOP_NONE, zero = 0;

	__atomic_compare_exchange_n(&run->stop, &none, why, false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
	if (err)
		__atomic_compare_exchange_n(&run->gone_err, &zero, err, false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
}

/* Set the outcome of @s's request, once. */
static void record(struct client *c, struct slot *s, int status, int err, uint64_t now)
{
	struct bench_req *r = &c->run->reqs[s->idx];

	if (s->recorded)
		return;
	s->recorded = true;
	r->status = status;
	r->err = err;
	r->t_end = now;
	if (status != BENCH_REQ_UNSENT)
		__atomic_add_fetch(&c->run->done, 1, __ATOMIC_RELAXED);
	if (status == BENCH_REQ_FAILED)
		__atomic_add_fetch(&c->run->failed, 1, __ATOMIC_RELAXED);
}

static void slot_free(struct client *c, struct slot *s)
{
	s->state = SLOT_FREE;
	c->used--;
}

static void send_cancel(struct client *c, struct slot *s)
{
	/* -EAGAIN: the SQ is full; expire() tries again on the next tick. */
	if (!s->cancel_sent && !llmq_cancel(&c->ring, s->idx + 1, CANCEL_UD | s->idx))
		s->cancel_sent = true;
}

/* Submit a taken request; it stays PENDING while the ring has no room. */
static int submit(struct client *c, struct slot *s)
{
	struct bench_req *r = &c->run->reqs[s->idx];
	struct llmq_sampling sp;
	struct llmq_sqe *sqe;
	int err;

	sqe = llmq_get_sqe(&c->ring);
	if (!sqe)
		return 0;
	sampling_of(c->run->o, r->prompt->max_tokens, &sp);
	err = llmq_prep_generate(&c->ring, sqe, r->prompt->text, r->prompt->len, &sp,
				 s->idx + 1);
	if (err) {
		/* The SQE is ours already: hand it back as a no-op. */
		llmq_prep_nop(sqe, NOP_UD);
		if (err != -EAGAIN) {
			r->t_send = now_ns();
			record(c, s, BENCH_REQ_FAILED, -err, r->t_send);
			slot_free(c, s);
		}
		err = llmq_submit(&c->ring);
		return err < 0 ? err : 0;
	}
	r->t_send = now_ns();
	s->state = SLOT_RUNNING;
	s->deadline = r->t_send + c->run->o->timeout_s * NS_PER_S;
	err = llmq_submit(&c->ring);
	return err < 0 ? err : 0;
}

static struct slot *free_slot(struct client *c)
{
	unsigned long i;

	for (i = 0; i < c->nr_slots; i++)
		if (c->slots[i].state == SLOT_FREE)
			return &c->slots[i];
	return NULL;
}

/*
 * Submit what is pending, then take due requests while there is room.
 * Sets *next_due to the arrival of the next request not yet due (0: none).
 * Returns 0 or the ring's -errno.
 */
static int take_work(struct client *c, uint64_t now, uint64_t *next_due)
{
	struct run *run = c->run;
	struct slot *s;
	unsigned long i;
	uint64_t due;
	size_t idx;
	int err;

	*next_due = 0;
	for (i = 0; i < c->nr_slots; i++) {
		if (c->slots[i].state != SLOT_PENDING)
			continue;
		err = submit(c, &c->slots[i]);
		if (err)
			return err;
		if (c->slots[i].state == SLOT_PENDING)
			return 0;	/* no room yet: keep the order */
	}
	while (c->used < c->nr_slots) {
		pthread_mutex_lock(&run->lock);
		if (run->next >= run->n) {
			pthread_mutex_unlock(&run->lock);
			break;
		}
		due = run->t0 + run->reqs[run->next].arrival_ns;
		if (due > now) {
			*next_due = due;
			pthread_mutex_unlock(&run->lock);
			break;
		}
		idx = run->next++;
		pthread_mutex_unlock(&run->lock);
		s = free_slot(c);
		*s = (struct slot){ .idx = idx, .state = SLOT_PENDING };
		c->used++;
		err = submit(c, s);
		if (err)
			return err;
		if (s->state == SLOT_PENDING)
			break;
	}
	return 0;
}

/* Requests past --timeout-s fail and are cancelled; cancellations end. */
static void expire(struct client *c, uint64_t now)
{
	struct slot *s;
	unsigned long i;

	for (i = 0; i < c->nr_slots; i++) {
		s = &c->slots[i];
		if (s->state == SLOT_RUNNING && now >= s->deadline) {
			record(c, s, BENCH_REQ_FAILED, BENCH_ETIMEOUT, now);
			s->state = SLOT_CANCELLING;
			s->deadline = now + GRACE_NS;
		}
		if (s->state != SLOT_CANCELLING)
			continue;
		send_cancel(c, s);
		if (now >= s->deadline) {
			/* The runtime never confirmed: give the request up. */
			record(c, s, BENCH_REQ_CANCELLED, 0, now);
			slot_free(c, s);
		}
	}
}

/* SIGINT: cancel what runs, forget what was not sent. */
static void cancel_all(struct client *c, uint64_t now)
{
	struct slot *s;
	unsigned long i;

	for (i = 0; i < c->nr_slots; i++) {
		s = &c->slots[i];
		if (s->state == SLOT_PENDING) {
			record(c, s, BENCH_REQ_UNSENT, 0, 0);
			slot_free(c, s);
		} else if (s->state == SLOT_RUNNING) {
			s->state = SLOT_CANCELLING;
			s->deadline = now + GRACE_NS;
			send_cancel(c, s);
		}
	}
}

static void push_itl(struct bench_req *r, uint64_t gap)
{
	uint32_t cap;
	uint64_t *n;

	if (r->nr_itl == r->cap_itl) {
		cap = r->cap_itl ? r->cap_itl * 2 : (r->prompt->max_tokens > 1 ?
						       r->prompt->max_tokens : 16);
		n = realloc(r->itl, cap * sizeof(*n));
		if (!n)
			return;		/* the gap goes unrecorded; the run goes on */
		r->itl = n;
		r->cap_itl = cap;
	}
	r->itl[r->nr_itl++] = gap;
}

static void handle_cqe(struct client *c, const struct llmq_cqe *cqe)
{
	struct run *run = c->run;
	struct bench_req *r;
	struct slot *s = NULL;
	uint64_t ud = cqe->user_data, now;
	unsigned long i;

	if (!ud || ud > run->n)
		return;		/* our cancellations and no-ops */
	for (i = 0; i < c->nr_slots; i++) {
		if (c->slots[i].state >= SLOT_RUNNING && c->slots[i].idx == ud - 1) {
			s = &c->slots[i];
			break;
		}
	}
	if (!s)
		return;		/* a request already given up */
	r = &run->reqs[s->idx];
	now = now_ns();
	if (cqe->flags & LLMQ_CQE_F_MORE) {
		if (!(cqe->flags & LLMQ_CQE_F_TOKEN) || s->recorded)
			return;	/* the rest of a long token's text */
		if (!r->t_first)
			r->t_first = now;
		else
			push_itl(r, now - r->t_last);
		r->t_last = now;
		__atomic_add_fetch(&run->tokens, 1, __ATOMIC_RELAXED);
		return;
	}
	if (!s->recorded) {
		r->prompt_tokens = cqe->token;
		if (cqe->res >= 0) {
			r->output_tokens = (uint32_t)cqe->res;
			record(c, s, BENCH_REQ_OK, 0, now);
		} else if (cqe->res == -ECANCELED && s->state == SLOT_CANCELLING) {
			record(c, s, BENCH_REQ_CANCELLED, 0, now);
		} else {
			record(c, s, BENCH_REQ_FAILED, -cqe->res, now);
		}
	}
	slot_free(c, s);
}

/* The ring is gone: what it carried failed, and the run stops. */
static void ring_failed(struct client *c, int err)
{
	uint64_t now = now_ns();
	struct slot *s;
	unsigned long i;
	bool stopping = __atomic_load_n(&c->run->stop, __ATOMIC_SEQ_CST) == BENCH_STOP_INTERRUPT;

	for (i = 0; i < c->nr_slots; i++) {
		s = &c->slots[i];
		if (s->state == SLOT_PENDING)
			record(c, s, BENCH_REQ_UNSENT, 0, 0);
		else if (s->state == SLOT_CANCELLING && stopping)
			record(c, s, BENCH_REQ_CANCELLED, 0, now);
		else if (s->state != SLOT_FREE)
			record(c, s, BENCH_REQ_FAILED, err, now);
		if (s->state != SLOT_FREE)
			slot_free(c, s);
	}
	set_stop(c->run, BENCH_STOP_GONE, err);
}

static bool work_left(struct run *run)
{
	bool left;

	pthread_mutex_lock(&run->lock);
	left = run->next < run->n;
	pthread_mutex_unlock(&run->lock);
	return left;
}

static void sleep_until(uint64_t when)
{
	struct timespec ts = {
		.tv_sec = (time_t)(when / NS_PER_S),
		.tv_nsec = (long)(when % NS_PER_S),
	};

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void client_loop(struct client *c)
{
	struct run *run = c->run;
	uint64_t now, next_due, tick;
	struct llmq_cqe *cqe;
	bool cancelled = false;
	int err, stop, tmo;

	for (;;) {
		now = now_ns();
		stop = __atomic_load_n(&run->stop, __ATOMIC_SEQ_CST);
		if (stop == BENCH_STOP_INTERRUPT && !cancelled) {
			cancel_all(c, now);
			cancelled = true;
		}
		expire(c, now);
		next_due = 0;
		if (!stop) {
			err = take_work(c, now, &next_due);
			if (err) {
				ring_failed(c, -err);
				return;
			}
		}
		tick = now + TICK_MS * NS_PER_MS;
		if (!c->used) {
			if (stop || !work_left(run))
				return;
			sleep_until(next_due && next_due < tick ? next_due : tick);
			continue;
		}
		tmo = TICK_MS;
		if (next_due && c->used < c->nr_slots && ms_until(next_due, now) < tmo)
			tmo = ms_until(next_due, now);
		err = llmq_wait_cqe_timeout(&c->ring, &cqe, tmo);
		if (err == -ETIME || err == -EINTR)
			continue;
		if (err) {
			ring_failed(c, -err);
			return;
		}
		/* Everything already there, before looking at the clock again. */
		do {
			handle_cqe(c, cqe);
			llmq_cqe_seen(&c->ring, cqe);
		} while (!llmq_peek_cqe(&c->ring, &cqe));
	}
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct run *run = c->run;
	int err;

	err = llmq_queue_init(&c->ring, run->o->socket, &run->params);
	pthread_mutex_lock(&run->lock);
	run->ready++;
	pthread_cond_broadcast(&run->cond);
	while (!run->go)
		pthread_cond_wait(&run->cond, &run->lock);
	pthread_mutex_unlock(&run->lock);
	if (err)
		set_stop(run, BENCH_STOP_GONE, -err);
	else if (!__atomic_load_n(&run->stop, __ATOMIC_SEQ_CST))
		client_loop(c);
	if (!err)
		llmq_queue_exit(&c->ring);
	__atomic_add_fetch(&run->finished, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Columns of the terminal on stderr, 80 when it does not say. */
static unsigned int term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) || ws.ws_col < 20)
		return 80;
	return ws.ws_col;
}

/*
 * The progress line, redrawn in place ("\r", then the line, then erase to
 * its end) and cut to the terminal's width so that it never wraps:
 *
 *   conc 8 [#######.............] 12/32 requests, 0 failed, 812 tok/s, 3.4 s
 *
 * @last erases it, leaving the cursor where the line began.
 */
static void progress(struct run *run, bool last)
{
	unsigned long done = __atomic_load_n(&run->done, __ATOMIC_RELAXED);
	unsigned long failed = __atomic_load_n(&run->failed, __ATOMIC_RELAXED);
	unsigned long tokens = __atomic_load_n(&run->tokens, __ATOMIC_RELAXED);
	double secs = (double)(now_ns() - run->t0) / 1e9;
	size_t fill = run->n ? done * BAR_WIDTH / run->n : 0, i, cols = term_cols() - 1;
	char line[256], bar[BAR_WIDTH + 1];
	int len = 0;

	if (last) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		return;
	}
	for (i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	if (run->o->nr_sweep)
		len = snprintf(line, sizeof(line), "conc %lu ", run->cap);
	snprintf(line + len, sizeof(line) - (size_t)len,
		 "[%s] %lu/%zu requests, %lu failed, %.0f tok/s, %.1f s", bar, done, run->n,
		 failed, secs > 0 ? (double)tokens / secs : 0.0, secs);
	if (cols < sizeof(line))
		line[cols] = '\0';
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
}

/**
 * bench_run() - send a workload and time it
 * @o:		the options (--socket, --timeout-s, --ignore-eos, progress)
 * @t:		clients, requests per client, rate
 * @reqs:	the requests, prompts and arrivals set; measurements are filled
 * @n:		how many
 * @t0:		set to the run's start, CLOCK_MONOTONIC ns
 * @gone_err:	set to the errno that ended a BENCH_STOP_GONE run
 *
 * Return: enum bench_stop, or -errno when the clients could not be started.
 */
int bench_run(const struct bench_opts *o, const struct bench_traffic *t, struct bench_req *reqs,
	      size_t n, uint64_t *t0, int *gone_err)
{
	struct run run = { .o = o, .reqs = reqs, .n = n, .cap = t->cap };
	struct client *cl;
	pthread_condattr_t ca;
	unsigned long i, started = 0, nr = t->clients;
	size_t max_len = 0, k;
	struct slot *slots;
	int err = 0, ret = 0;

	for (k = 0; k < n; k++)
		if (reqs[k].prompt->len > max_len)
			max_len = reqs[k].prompt->len;
	params_for(t->per_client, max_len, &run.params);
	cl = calloc(nr, sizeof(*cl));
	slots = calloc(nr * t->per_client, sizeof(*slots));
	if (!cl || !slots) {
		err = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_init(&run.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_cond_init(&run.cond, &ca);
	pthread_condattr_destroy(&ca);
	for (i = 0; i < nr; i++) {
		cl[i].run = &run;
		cl[i].slots = slots + i * t->per_client;
		cl[i].nr_slots = t->per_client;
		err = -pthread_create(&cl[i].tid, NULL, client_main, &cl[i]);
		if (err)
			break;
		started++;
	}
	/* Every ring is set up before the clock starts. */
	pthread_mutex_lock(&run.lock);
	while (run.ready < started)
		pthread_cond_wait(&run.cond, &run.lock);
	run.t0 = now_ns();
	if (err)
		run.stop = BENCH_STOP_GONE;
	run.go = true;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.lock);

	while (__atomic_load_n(&run.finished, __ATOMIC_SEQ_CST) < started) {
		sleep_until(now_ns() + TICK_MS * NS_PER_MS);
		if (interrupted)
			set_stop(&run, BENCH_STOP_INTERRUPT, 0);
		if (o->progress)
			progress(&run, false);
	}
	if (o->progress)
		progress(&run, true);
	for (i = 0; i < started; i++)
		pthread_join(cl[i].tid, NULL);
	pthread_cond_destroy(&run.cond);
	pthread_mutex_destroy(&run.lock);
	*t0 = run.t0;
	*gone_err = run.gone_err;
	ret = run.stop;
out_free:
	free(slots);
	free(cl);
	return err ? err : ret;
}
