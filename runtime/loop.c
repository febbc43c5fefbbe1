// SPDX-License-Identifier: GPL-2.0
/*
 * The event loop: one io_uring for everything (accepts, handshakes, client
 * doorbells and hang-ups, /dev/llmq's events, signals, timers, wake-up
 * writes).  Each turn
 * submits what the last turn queued and waits in the same io_uring_enter(),
 * handles every completion, runs at most one engine step, then publishes
 * and wakes each client with news once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "llmqd.h"
#include "log.h"
#include "sd_notify.h"
#include "ring.h"

/**
 * now_ns() - CLOCK_MONOTONIC in nanoseconds
 *
 * Return: the time.
 */
uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/**
 * loop_sqe() - an SQE of the daemon's io_uring, submitting to make room
 * @d:		the daemon
 *
 * Return: an SQE; never NULL (the ring is drained by submitting).
 */
struct io_uring_sqe *loop_sqe(struct llmqd *d)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&d->ring)))
		io_uring_submit(&d->ring);
	return sqe;
}

/**
 * loop_timer_arm() - arm a one-shot timer
 * @d:		the daemon
 * @kind:	TIMER_*
 * @ns:		relative time
 *
 * Return: the arming's sequence number, non-zero; the owner compares it
 * when the timer fires and ignores stale ones.
 */
uint64_t loop_timer_arm(struct llmqd *d, enum timer_kind kind, uint64_t ns)
{
	static uint64_t seq;
	struct io_uring_sqe *sqe = loop_sqe(d);
	/* The kernel copies the timespec at submission; the loop submits first. */
	static struct __kernel_timespec ts[TIMER_KINDS];

	seq = (seq + 1) & ((1ULL << 48) - 1);
	if (!seq)
		seq = 1;
	ts[kind].tv_sec = (long long)(ns / 1000000000ULL);
	ts[kind].tv_nsec = (long long)(ns % 1000000000ULL);
	io_uring_prep_timeout(sqe, &ts[kind], 0, 0);
	io_uring_sqe_set_data64(sqe, TIMER_UD | (uint64_t)kind << 48 | seq);
	return seq;
}

static void arm_signal(struct llmqd *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d);

	io_uring_prep_read(sqe, d->signal_fd, &d->sigbuf, sizeof(d->sigbuf), 0);
	io_uring_sqe_set_data(sqe, &d->ev_signal);
}

/**
 * llmqd_stop() - begin an orderly shutdown
 * @d:		the daemon
 * @now:	fail in-flight requests at once instead of letting them finish
 *
 * New clients and new requests are refused with -ESHUTDOWN; running ones
 * get --shutdown-timeout-ms to finish, then fail with -ESHUTDOWN.
 */
void llmqd_stop(struct llmqd *d, bool now)
{
	if (!d->stopping) {
		d->stopping = true;
		sd_notifyf("STOPPING=1");
		pr_info("shutting down: %llu requests in flight",
			(unsigned long long)d->stats.requests_active);
		user_close_listener(d);
		if (!now)
			d->shutdown_seq = loop_timer_arm(d, TIMER_SHUTDOWN,
							 d->cfg.shutdown_timeout_ms * 1000000ULL);
	}
	if (now)
		d->shutdown_seq = 0;
}

/* SIGUSR1: every metric, one log line each. */
static void dump_metrics(struct llmqd *d)
{
	char *buf = NULL, *line, *save;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return;
	serve_dump_metrics(d, f);
	fclose(f);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		pr_notice("%s", line);
	free(buf);
}

static void on_signal(struct llmqd *d, int res)
{
	struct signalfd_siginfo *si = &d->sigbuf;

	if (res != sizeof(*si)) {
		pr_err("signalfd read failed: %d", res);
		llmqd_stop(d, true);
		return;
	}
	if (si->ssi_signo == SIGUSR1) {
		dump_metrics(d);
		arm_signal(d);
		return;
	}
	pr_info("got signal %u", si->ssi_signo);
	/* A second signal means: now. */
	llmqd_stop(d, d->stopping);
	arm_signal(d);
}

static void on_timer(struct llmqd *d, uint64_t ud, int res)
{
	int kind = (int)((ud >> 48) & 0x7fff);
	uint64_t seq = ud & ((1ULL << 48) - 1);

	if (res != -ETIME)
		return;		/* removed or failed: nothing fired */
	if (kind == TIMER_SHUTDOWN) {
		if (d->stopping && seq == d->shutdown_seq)
			d->shutdown_seq = 0;
		return;
	}
	if (kind == TIMER_ACCEPT) {
		user_on_accept_timer(d, seq);
		return;
	}
	/* TIMER_WINDOW: waking the loop was the point; serve_poll() decides. */
}

static void dispatch(struct llmqd *d, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct ev *ev;

	if (ud == IGNORE_UD) {
		if (cqe->res < 0 && cqe->res != -ENOENT && cqe->res != -EALREADY &&
		    cqe->res != -ECANCELED)
			pr_debug("background op failed: %s", strerror(-cqe->res));
		return;
	}
	if (ud & TIMER_UD) {
		on_timer(d, ud, cqe->res);
		return;
	}
	ev = (struct ev *)(uintptr_t)ud;
	switch (ev->type) {
	case EV_ACCEPT:
		user_on_accept(d, cqe->res, cqe->flags & IORING_CQE_F_MORE);
		break;
	case EV_HELLO:
		user_on_hello(d, ev, cqe->res);
		break;
	case EV_DOORBELL:
		client_on_doorbell(container_of(ev, struct client, ev_door), cqe->res);
		break;
	case EV_SOCK:
		client_on_sock(container_of(ev, struct client, ev_sock), cqe->res);
		break;
	case EV_SIGNAL:
		on_signal(d, cqe->res);
		break;
	case EV_WAKE:
		client_on_wake(container_of(ev, struct client, ev_wake), cqe->res);
		break;
	case EV_KEVENTS:
		kernel_on_events(d, cqe->res);
		break;
	case EV_GENL:
		admin_genl_on_poll(d, cqe->res);
		break;
	}
}

/* Block SIGTERM/SIGINT and read them from a signalfd through the ring. */
static int signals_init(struct llmqd *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	signal(SIGPIPE, SIG_IGN);
	d->signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (d->signal_fd < 0)
		return -errno;
	d->ev_signal.type = EV_SIGNAL;
	arm_signal(d);
	return 0;
}

/*
 * Spin for up to --poll-us looking for work without a syscall: completions
 * in our io_uring, or rings with news that did not ring the doorbell.
 */
static bool loop_poll(struct llmqd *d)
{
	uint64_t end = now_ns() + d->cfg.poll_us * 1000ULL;

	do {
		if (io_uring_cq_ready(&d->ring) || client_poll_all(d))
			return true;
		llmq_cpu_relax();
	} while (now_ns() < end);
	return false;
}

/* Sleep until a completion, after one last look with NEED_WAKEUP set. */
static int loop_sleep(struct llmqd *d)
{
	int err;

	if (!d->cfg.poll_us)
		return io_uring_submit_and_wait(&d->ring, 1);
	err = io_uring_submit(&d->ring);
	if (err < 0 || loop_poll(d))
		return err;
	client_set_need_wakeup(d, true);
	if (client_poll_all(d) || io_uring_cq_ready(&d->ring))
		err = io_uring_submit(&d->ring);
	else
		err = io_uring_submit_and_wait(&d->ring, 1);
	client_set_need_wakeup(d, false);
	return err;
}

/**
 * loop_run() - serve until shut down
 * @d:		the daemon, listening
 *
 * Return: 0 after an orderly shutdown, -errno if the ring failed.
 */
int loop_run(struct llmqd *d)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n;
	int err;

	err = signals_init(d);
	if (err)
		return err;
	for (;;) {
		if (d->stopping && (!d->stats.requests_active || !d->shutdown_seq))
			break;
		client_flush(d);
		if (serve_poll(d)) {
			/*
			 * Steps back to back: clients do not ring while we
			 * do not sleep, so look at their rings ourselves.
			 */
			client_poll_all(d);
			err = io_uring_submit(&d->ring);
		}
		else
			err = loop_sleep(d);
		if (err < 0 && err != -EINTR && err != -EBUSY && err != -ETIME) {
			pr_err("io_uring_submit: %s", strerror(-err));
			return err;
		}
		n = 0;
		io_uring_for_each_cqe(&d->ring, head, cqe) {
			dispatch(d, cqe);
			n++;
		}
		io_uring_cq_advance(&d->ring, n);
		if (serve_poll(d))
			serve_step(d);
	}
	client_kill_all(d, ESHUTDOWN);
	return 0;
}
