// SPDX-License-Identifier: MIT
/*
 * The submission and completion sides of a client ring: SQE hand-out and
 * publication, the doorbell, CQE reaping and sleeping on the wake eventfd.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libllmq.h"
#include "ring.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static int ring_doorbell(struct llmq_ring *ring)
{
	uint64_t one = 1;

	if (write(ring->doorbell_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

/**
 * llmq_get_sqe() - the next free submission entry
 * @ring:	the ring
 *
 * The entry stays private until llmq_submit(); fill it with a prep helper.
 *
 * Return: the entry, or NULL when the SQ is full (errno is set to EAGAIN):
 * reap completions or wait for the runtime to consume entries, then retry.
 */
struct llmq_sqe *llmq_get_sqe(struct llmq_ring *ring)
{
	uint32_t head = llmq_load_acquire(&ring->hdr->sq_head);

	if (ring->sqe_tail - head >= ring->sq_entries) {
		errno = EAGAIN;
		return NULL;
	}
	return &ring->sqes[ring->sqe_tail++ & (ring->sq_entries - 1)];
}

/**
 * llmq_submit() - publish the prepared entries and ring the doorbell
 * @ring:	the ring
 *
 * Return: the number of entries published (0 rings nothing), or -errno.
 */
int llmq_submit(struct llmq_ring *ring)
{
	uint32_t n = ring->sqe_tail - ring->sq_tail;
	int err;

	if (!n)
		return 0;
	llmq_store_release(&ring->hdr->sq_tail, ring->sqe_tail);
	ring->sq_tail = ring->sqe_tail;
	/* Pairs with the runtime's barrier after it sets NEED_WAKEUP. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(llmq_load_acquire(&ring->hdr->rt_flags) & LLMQ_RING_NEED_WAKEUP))
		return (int)n;		/* the runtime is polling: it will see them */
	err = ring_doorbell(ring);
	return err ? err : (int)n;
}

static int ring_dead(struct llmq_ring *ring)
{
	uint32_t f = llmq_load_acquire(&ring->hdr->rt_flags);
	int e;

	if (!(f & (LLMQ_RING_DEAD | LLMQ_RING_BROKEN)))
		return 0;
	e = (int)llmq_load_acquire(&ring->hdr->rt_errno);
	return e > 0 && e < 4096 ? -e : -ECONNRESET;
}

/**
 * llmq_peek_cqe() - the oldest unseen completion, without sleeping
 * @ring:	the ring
 * @cqe:	set to the entry; valid until llmq_cqe_seen()
 *
 * Return: 0, -EAGAIN when none is there, or -errno once the runtime has
 * gone (-ESHUTDOWN, -ECONNRESET) or dropped this ring (-EPROTO) and every
 * completion it left has been reaped.
 */
int llmq_peek_cqe(struct llmq_ring *ring, struct llmq_cqe **cqe)
{
	uint32_t tail = llmq_load_acquire(&ring->hdr->cq_tail);
	int err;

	if (tail != ring->cq_head) {
		*cqe = &ring->cqes[ring->cq_head & (ring->cq_entries - 1)];
		return 0;
	}
	err = ring_dead(ring);
	if (err)
		return err;
	/* Completions wait in the runtime for room we have just made. */
	/* Our cq_head store before the flag load: the ABI's wake rule. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((llmq_load_acquire(&ring->hdr->rt_flags) &
	     (LLMQ_RING_CQ_OVERFLOW | LLMQ_RING_NEED_WAKEUP)) ==
	    (LLMQ_RING_CQ_OVERFLOW | LLMQ_RING_NEED_WAKEUP) &&
	    ring->ovf_bell != ring->cq_head + 1) {
		ring->ovf_bell = ring->cq_head + 1;
		err = ring_doorbell(ring);
		if (err)
			return err;
	}
	return -EAGAIN;
}

/**
 * llmq_wait_cqe_timeout() - the oldest unseen completion, sleeping for it
 * @ring:	the ring
 * @cqe:	set to the entry
 * @timeout_ms:	how long to sleep at most, -1 for ever
 *
 * Busy-waits for the ring's spin time first (llmq_set_spin()), then sleeps
 * on the wake eventfd and on the connection, so a runtime that dies without
 * a word still wakes the caller.
 *
 * Return: 0, -ETIME on timeout, -ECONNRESET if the runtime went away, or
 * the errors of llmq_peek_cqe().
 */
int llmq_wait_cqe_timeout(struct llmq_ring *ring, struct llmq_cqe **cqe, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = ring->wake_fd, .events = POLLIN },
		{ .fd = ring->sock_fd, .events = POLLIN },
	};
	uint64_t v, end, deadline = 0;
	char junk[64];
	int err, n, left = timeout_ms;

	err = llmq_peek_cqe(ring, cqe);
	if (err != -EAGAIN)
		return err;
	if (timeout_ms >= 0)
		deadline = now_us() + (uint64_t)timeout_ms * 1000;
	if (ring->spin_us && timeout_ms != 0) {
		end = now_us() + ring->spin_us;
		if (timeout_ms > 0 && end > deadline)
			end = deadline;
		do {
			llmq_cpu_relax();
			err = llmq_peek_cqe(ring, cqe);
			if (err != -EAGAIN)
				return err;
		} while (now_us() < end);
	}
	for (;;) {
		/* Announce the sleep, then look once more (see the ABI's wake rule). */
		llmq_store_release(&ring->hdr->cl_flags, LLMQ_CL_WAITING);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		err = llmq_peek_cqe(ring, cqe);
		if (err != -EAGAIN)
			break;
		if (timeout_ms >= 0) {
			/* A wake-up that brought nothing does not restart the clock. */
			end = now_us();
			left = end >= deadline ? 0 : (int)((deadline - end + 999) / 1000);
		}
		n = poll(pfd, 2, left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0) {
			err = -ETIME;
			break;
		}
		if (pfd[0].revents & POLLIN)
			(void)!read(ring->wake_fd, &v, sizeof(v));
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			/* The socket only ever speaks at the end: the runtime left. */
			if (recv(ring->sock_fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0) {
				err = llmq_peek_cqe(ring, cqe);
				if (err == -EAGAIN)
					err = -ECONNRESET;
				break;
			}
		}
	}
	if (!ring->event_fd_used)
		llmq_store_release(&ring->hdr->cl_flags, 0);
	return err;
}

/**
 * llmq_wait_cqe() - the oldest unseen completion, sleeping as long as needed
 * @ring:	the ring
 * @cqe:	set to the entry
 *
 * Return: as llmq_wait_cqe_timeout().
 */
int llmq_wait_cqe(struct llmq_ring *ring, struct llmq_cqe **cqe)
{
	return llmq_wait_cqe_timeout(ring, cqe, -1);
}

/**
 * llmq_cqe_seen() - hand a completion entry back to the ring
 * @ring:	the ring
 * @cqe:	the entry returned by the last peek or wait
 */
void llmq_cqe_seen(struct llmq_ring *ring, struct llmq_cqe *cqe)
{
	(void)cqe;
	ring->cq_head++;
	llmq_store_release(&ring->hdr->cq_head, ring->cq_head);
}

/**
 * llmq_cancel() - submit a cancellation of every request with user_data @target
 * @ring:	the ring
 * @target:	user_data of the request(s) to cancel
 * @user_data:	user_data of the cancellation's own completion
 *
 * The cancelled request ends with res -ECANCELED; the cancellation completes
 * with the number of requests it hit, or -ENOENT.
 *
 * Return: 0, or -EAGAIN when the SQ is full, or -errno from llmq_submit().
 */
int llmq_cancel(struct llmq_ring *ring, uint64_t target, uint64_t user_data)
{
	struct llmq_sqe *sqe = llmq_get_sqe(ring);
	int n;

	if (!sqe)
		return -EAGAIN;
	llmq_prep_cancel(sqe, target, user_data);
	n = llmq_submit(ring);
	return n < 0 ? n : 0;
}
