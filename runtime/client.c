// SPDX-License-Identifier: GPL-2.0
/*
 * Client rings as the runtime sees them: attach, SQ drain (copy each entry
 * once, validate the copy), CQE posting with an overflow list for full CQs,
 * batched publication and wake-ups, and teardown.
 *
 * A client can write anything into its mapping at any time.  The runtime
 * keeps its own sq_head, cq_tail and geometry, reads only sq_tail and
 * cq_head from the header, and drops a ring whose indices are impossible.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmqd.h"
#include "log.h"
#include "ring.h"
#include "sqe_check.h"

#define OVF_MIN 16

static void client_arm_doorbell(struct client *c)
{
	struct io_uring_sqe *sqe = loop_sqe(c->d);

	io_uring_prep_read(sqe, c->door_fd, &c->door_val, sizeof(c->door_val), 0);
	io_uring_sqe_set_data(sqe, &c->ev_door);
	c->ops++;
}

static void client_arm_sock(struct client *c)
{
	struct io_uring_sqe *sqe = loop_sqe(c->d);

	io_uring_prep_recv(sqe, c->sock_fd, c->sock_buf, sizeof(c->sock_buf), 0);
	io_uring_sqe_set_data(sqe, &c->ev_sock);
	c->ops++;
}

static void client_store_flags(struct client *c)
{
	llmq_store_release(&c->hdr->rt_flags, c->rt_flags);
}

static void client_mark_dirty(struct client *c)
{
	if (!c->dirty) {
		c->dirty = true;
		list_add_tail(&c->dirty_link, &c->d->dirty);
	}
}

static int map_check(int fd, const struct llmq_layout *lay)
{
	struct stat st;
	int seals;

	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -EBADF;		/* not a memfd */
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EPERM;		/* could shrink under us: SIGBUS */
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != lay->map_size)
		return -EINVAL;
	return 0;
}

/* The doorbell and wake descriptors must be eventfds, nothing else. */
static int eventfd_check(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -EBADF;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") ? -EBADF : 0;
}

/**
 * client_attach() - take over a ring handed in by a client
 * @d:		the daemon
 * @sock_fd:	the client's connection
 * @fds:	memfd, doorbell eventfd, wake eventfd (consumed on success)
 * @p:		the geometry the client announced
 * @pid:	from SO_PEERCRED
 * @uid:	from SO_PEERCRED
 * @out:	the new client
 *
 * Return: 0 or -errno, which goes back to the client in the reply.
 */
int client_attach(struct llmqd *d, int sock_fd, const int fds[3],
		  const struct llmq_params *p, pid_t pid, uid_t uid, struct client **out)
{
	struct llmq_layout lay;
	struct client *c;
	void *map;
	int err;

	err = llmq_params_check(p, &lay);
	if (err)
		return err;
	err = map_check(fds[0], &lay);
	if (!err)
		err = eventfd_check(fds[1]);
	if (!err)
		err = eventfd_check(fds[2]);
	if (err)
		return err;
	map = mmap(NULL, lay.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
	if (map == MAP_FAILED)
		return -errno;
	c = client_new(d, map, &lay, p, pid, uid);
	if (!c) {
		munmap(map, lay.map_size);
		return -ENOMEM;
	}
	c->sock_fd = sock_fd;
	c->door_fd = fds[1];
	c->wake_fd = fds[2];
	close(fds[0]);
	client_arm_doorbell(c);
	client_arm_sock(c);
	*out = c;
	return 0;
}

/**
 * client_new() - serve a ring mapped at @map, whatever brought it
 * @d:		the daemon
 * @map:	the mapping, of @lay->map_size bytes; the client owns it after
 * @lay:	its layout, computed from @p by the runtime
 * @p:		its geometry, validated
 * @pid:	the client's pid
 * @uid:	the client's uid
 *
 * The transport sets the descriptors (-1 here) and arms what it needs.
 *
 * Return: the client, or NULL without memory.
 */
struct client *client_new(struct llmqd *d, void *map, const struct llmq_layout *lay,
			  const struct llmq_params *p, pid_t pid, uid_t uid)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->d = d;
	c->id = ++d->next_client_id;
	c->pid = pid;
	c->uid = uid;
	c->ev_door.type = EV_DOORBELL;
	c->ev_sock.type = EV_SOCK;
	c->ev_wake.type = EV_WAKE;
	c->sock_fd = c->door_fd = c->wake_fd = -1;
	c->map = map;
	c->map_size = lay->map_size;
	c->hdr = map;
	c->sqes = (struct llmq_sqe *)((char *)map + lay->sq_off);
	c->cqes = (struct llmq_cqe *)((char *)map + lay->cq_off);
	c->arena = (uint8_t *)map + lay->arena_off;
	c->sq_entries = p->sq_entries;
	c->cq_entries = p->cq_entries;
	c->arena_size = p->arena_size;
	/* Start from whatever indices the client laid out, as a new runtime would. */
	c->sq_head = llmq_load_acquire(&c->hdr->sq_head);
	c->cq_tail = llmq_load_acquire(&c->hdr->cq_tail);
	INIT_LIST_HEAD(&c->reqs);
	INIT_LIST_HEAD(&c->dirty_link);
	list_add_tail(&c->link, &d->clients);
	/*
	 * The loop is awake now; it sets NEED_WAKEUP on every ring before it
	 * sleeps.  Without polling the doorbell is always needed.
	 */
	c->rt_flags = d->cfg.poll_us ? 0 : LLMQ_RING_NEED_WAKEUP;
	client_store_flags(c);
	d->stats.clients_active++;
	d->stats.clients_total++;
	pr_info("client %llu attached: pid %d uid %u, sq %u cq %u arena %u",
		(unsigned long long)c->id, (int)pid, (unsigned int)uid,
		p->sq_entries, p->cq_entries, p->arena_size);
	return c;
}

static void client_free(struct client *c)
{
	struct llmqd *d = c->d;

	list_del_init(&c->link);
	if (c->dirty)
		list_del_init(&c->dirty_link);
	munmap(c->map, c->map_size);
	if (c->sock_fd >= 0) {
		close(c->sock_fd);
		close(c->door_fd);
		close(c->wake_fd);
	}
	free(c->ovf);
	d->stats.overflow_now -= c->ovf_tail - c->ovf_head;
	d->stats.clients_active--;
	pr_info("client %llu freed", (unsigned long long)c->id);
	free(c);
}

/**
 * client_close() - the client went away: drop its requests, cancel our
 * reads, free it when no io_uring operation points at it any more
 * @c:		the client
 */
void client_close(struct client *c)
{
	struct list_head *pos, *n;
	struct io_uring_sqe *sqe;

	if (!c->closing && c->sock_fd < 0) {
		/* /dev/llmq's: no reads of ours to cancel. */
		c->closing = true;
		list_for_each_safe(pos, n, &c->reqs)
			req_free_silent(list_entry(pos, struct request, clink));
	}
	if (!c->closing) {
		c->closing = true;
		list_for_each_safe(pos, n, &c->reqs)
			req_free_silent(list_entry(pos, struct request, clink));
		sqe = loop_sqe(c->d);
		io_uring_prep_cancel(sqe, &c->ev_door, 0);
		io_uring_sqe_set_data64(sqe, IGNORE_UD);
		sqe = loop_sqe(c->d);
		io_uring_prep_cancel(sqe, &c->ev_sock, 0);
		io_uring_sqe_set_data64(sqe, IGNORE_UD);
		if (c->wake_inflight) {
			sqe = loop_sqe(c->d);
			io_uring_prep_cancel(sqe, &c->ev_wake, 0);
			io_uring_sqe_set_data64(sqe, IGNORE_UD);
		}
	}
	if (!c->ops)
		client_free(c);
}

/*
 * The client corrupted its indices.  Tell it why, then hang up: the
 * connection closing is what tears the ring down.
 */
static void client_break(struct client *c, int err)
{
	if (c->closing || (c->rt_flags & LLMQ_RING_BROKEN))
		return;
	pr_warn("client %llu (pid %d): ring indices corrupt, dropping it",
		(unsigned long long)c->id, (int)c->pid);
	c->d->stats.clients_broken++;
	c->hdr->rt_errno = (uint32_t)-err;
	c->rt_flags |= LLMQ_RING_BROKEN;
	client_store_flags(c);
	c->need_wake = true;
	client_mark_dirty(c);
	/* On /dev/llmq the ring stays, ignored, until the client closes it. */
	if (c->sock_fd >= 0)
		shutdown(c->sock_fd, SHUT_RDWR);
}

static int ovf_push(struct client *c, const struct llmq_cqe *cqe)
{
	uint32_t used = c->ovf_tail - c->ovf_head, size, i;
	struct llmq_cqe *n;

	if (used == c->ovf_size) {
		size = c->ovf_size ? c->ovf_size * 2 : OVF_MIN;
		n = malloc((size_t)size * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (i = 0; i < used; i++)
			n[i] = c->ovf[(c->ovf_head + i) & (c->ovf_size - 1)];
		free(c->ovf);
		c->ovf = n;
		c->ovf_head = 0;
		c->ovf_tail = used;
		c->ovf_size = size;
	}
	c->ovf[c->ovf_tail++ & (c->ovf_size - 1)] = *cqe;
	return 0;
}

/* Free CQ slots, or -1 if the client's cq_head is impossible. */
static int64_t cq_room(struct client *c)
{
	uint32_t head = llmq_load_acquire(&c->hdr->cq_head);

	if (!llmq_ring_sane(head, c->cq_tail, c->cq_entries))
		return -1;
	return c->cq_entries - llmq_ring_used(head, c->cq_tail);
}

/* Move what fits of the overflow list into the CQ. */
static void ovf_flush(struct client *c)
{
	int64_t room = cq_room(c);

	if (room < 0) {
		client_break(c, -EPROTO);
		return;
	}
	while (room-- > 0 && c->ovf_head != c->ovf_tail) {
		c->cqes[c->cq_tail++ & (c->cq_entries - 1)] =
			c->ovf[c->ovf_head++ & (c->ovf_size - 1)];
		c->d->stats.overflow_now--;
		c->d->stats.cqes_posted++;
		c->need_wake = true;
	}
	if (c->ovf_head == c->ovf_tail)
		c->nobufs = false;
	client_mark_dirty(c);
}

/**
 * client_post() - queue one CQE for @c
 * @c:		the client
 * @cqe:	the entry
 *
 * Goes into the CQ when there is room and nothing is held back, else onto the
 * overflow list: nothing is dropped.  Past --max-cq-overflow held entries
 * the client's requests fail with -ENOBUFS at their next step.
 */
void client_post(struct client *c, const struct llmq_cqe *cqe)
{
	struct llmqd *d = c->d;
	int64_t room;

	if (c->closing)
		return;
	if (c->ovf_head == c->ovf_tail) {
		room = cq_room(c);
		if (room < 0) {
			client_break(c, -EPROTO);
			return;
		}
		if (room > 0) {
			c->cqes[c->cq_tail++ & (c->cq_entries - 1)] = *cqe;
			d->stats.cqes_posted++;
			c->need_wake = true;
			client_mark_dirty(c);
			return;
		}
	}
	if (ovf_push(c, cqe)) {
		pr_err("client %llu: out of memory for held CQEs", (unsigned long long)c->id);
		client_break(c, -ENOMEM);
		return;
	}
	d->stats.cqes_overflowed++;
	d->stats.overflow_now++;
	if (c->ovf_tail - c->ovf_head > d->cfg.max_cq_overflow && !c->nobufs) {
		pr_warn("client %llu (pid %d) does not read its CQ: failing its requests",
			(unsigned long long)c->id, (int)c->pid);
		c->nobufs = true;
	}
	c->need_wake = true;
	client_mark_dirty(c);
}

/* The single CQE of a NOP, a CANCEL or a refused SQE. */
static void post_result(struct client *c, uint64_t user_data, int res)
{
	struct llmq_cqe cqe = {
		.user_data = user_data,
		.res = res,
		.finish = res < 0 ? LLMQ_FINISH_ERROR : LLMQ_FINISH_NONE,
	};

	if (res < 0)
		c->d->stats.requests_failed++;
	client_post(c, &cqe);
}

static void do_cancel(struct client *c, const struct llmq_sqe *sqe)
{
	struct list_head *pos, *n;
	int hit = 0;

	list_for_each_safe(pos, n, &c->reqs) {
		struct request *r = list_entry(pos, struct request, clink);

		if (r->user_data == sqe->target) {
			req_finish(r, -ECANCELED, LLMQ_FINISH_CANCELLED);
			hit++;
		}
	}
	post_result(c, sqe->user_data, hit ? hit : -ENOENT);
}

static void handle_sqe(struct client *c, const struct llmq_sqe *sqe)
{
	struct llmqd *d = c->d;
	struct sqe_limits lim = {
		.arena_size = c->arena_size,
		.max_prompt_bytes = d->cfg.max_prompt_bytes,
		.max_tokens = d->cfg.max_tokens_limit,
	};
	struct request *r;
	int err;

	d->stats.requests_total++;
	err = sqe_check(sqe, &lim);
	if (err) {
		pr_debug("client %llu: bad SQE (opcode %u): %d", (unsigned long long)c->id,
			 sqe->opcode, err);
		post_result(c, sqe->user_data, err);
		return;
	}
	switch (sqe->opcode) {
	case LLMQ_OP_NOP:
		post_result(c, sqe->user_data, 0);
		break;
	case LLMQ_OP_CANCEL:
		do_cancel(c, sqe);
		break;
	case LLMQ_OP_GENERATE:
		if (d->stopping || d->draining) {
			post_result(c, sqe->user_data, -ESHUTDOWN);
			break;
		}
		err = req_create(c, sqe, &r);
		if (err)
			post_result(c, sqe->user_data, err);
		else if ((err = serve_submit(d, r)))
			req_finish(r, err, LLMQ_FINISH_ERROR);
		break;
	}
}

/*
 * Consume what the client submitted, unless it already has its share of
 * requests or CQEs held back: then the SQ fills and the client sees EAGAIN.
 */
static void client_drain(struct client *c)
{
	struct llmq_sqe sqe;
	uint32_t tail;

	if (c->closing)
		return;
	c->stalled = false;
	tail = llmq_load_acquire(&c->hdr->sq_tail);
	if (!llmq_ring_sane(c->sq_head, tail, c->sq_entries)) {
		client_break(c, -EPROTO);
		return;
	}
	while (c->sq_head != tail) {
		if (c->nr_reqs >= c->d->cfg.max_client_requests || c->ovf_head != c->ovf_tail) {
			c->stalled = true;
			break;
		}
		/* One copy out of shared memory; only the copy is looked at. */
		memcpy(&sqe, &c->sqes[c->sq_head & (c->sq_entries - 1)], sizeof(sqe));
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		c->sq_head++;
		handle_sqe(c, &sqe);
		if (c->closing)
			return;
	}
	client_mark_dirty(c);
}

/**
 * client_on_doorbell() - the client rang: flush held CQEs, drain its SQ
 * @c:		the client
 * @res:	the eventfd read's result
 */
void client_on_doorbell(struct client *c, int res)
{
	c->ops--;
	if (c->closing) {
		client_close(c);
		return;
	}
	if (res != sizeof(c->door_val)) {
		pr_err("client %llu: doorbell read failed: %d", (unsigned long long)c->id, res);
		client_close(c);
		return;
	}
	client_doorbell(c);
	if (!c->closing)
		client_arm_doorbell(c);
}

/**
 * client_doorbell() - the client rang: flush held CQEs, drain its SQ
 * @c:		the client
 */
void client_doorbell(struct client *c)
{
	c->d->stats.doorbells++;
	if (c->rt_flags & LLMQ_RING_BROKEN)
		return;
	if (c->ovf_head != c->ovf_tail)
		ovf_flush(c);
	client_drain(c);
}

/**
 * client_on_sock() - the connection spoke or closed
 * @c:		the client
 * @res:	the recv's result; <= 0 means the client is gone
 */
void client_on_sock(struct client *c, int res)
{
	c->ops--;
	if (res <= 0 || c->closing) {
		if (!c->closing)
			pr_info("client %llu (pid %d) disconnected", (unsigned long long)c->id,
				(int)c->pid);
		client_close(c);
		return;
	}
	/* Nothing is spoken on an attached ring's connection yet. */
	client_arm_sock(c);
}

/**
 * client_on_wake() - a wake-up write completed
 * @c:		the client
 * @res:	the write's result
 *
 * A client can keep its eventfd from taking writes (counter at its maximum);
 * the write then waits, and no second one is queued behind it.
 */
void client_on_wake(struct client *c, int res)
{
	c->ops--;
	c->wake_inflight = false;
	if (c->closing) {
		client_close(c);
		return;
	}
	if (res < 0 && res != -ECANCELED)
		pr_debug("client %llu: wake-up failed: %s", (unsigned long long)c->id,
			 strerror(-res));
	/* News that came while the write was pending. */
	if (c->need_wake)
		client_mark_dirty(c);
}

/**
 * client_req_done() - one of @c's requests ended
 * @c:		the client
 *
 * A client held back by its request cap may submit again: drain it at the
 * next flush, not here, since we may be in the middle of a step.
 */
void client_req_done(struct client *c)
{
	if (c->stalled)
		client_mark_dirty(c);
}

/**
 * client_flush() - publish indices and wake every client with news
 * @d:		the daemon
 *
 * Runs once per loop turn: each client gets at most one wake-up write, all
 * of them submitted with the loop's next io_uring_enter().
 */
void client_flush(struct llmqd *d)
{
	static const uint64_t one = 1;
	struct io_uring_sqe *sqe;
	struct client *c;
	uint32_t flags;

	/* Draining one client can dirty another: take from the head until empty. */
	while (!list_empty(&d->dirty)) {
		c = list_first_entry(&d->dirty, struct client, dirty_link);

		if (c->stalled && !c->closing) {
			if (c->ovf_head != c->ovf_tail)
				ovf_flush(c);
			client_drain(c);
		}
		list_del_init(&c->dirty_link);
		c->dirty = false;
		if (c->closing)
			continue;
		llmq_store_release(&c->hdr->cq_tail, c->cq_tail);
		llmq_store_release(&c->hdr->sq_head, c->sq_head);
		c->hdr->cq_overflow = c->ovf_tail - c->ovf_head;
		flags = c->rt_flags & ~LLMQ_RING_CQ_OVERFLOW;
		if (c->ovf_head != c->ovf_tail)
			flags |= LLMQ_RING_CQ_OVERFLOW;
		if (flags != c->rt_flags) {
			c->rt_flags = flags;
			client_store_flags(c);
		}
		if (!c->need_wake || c->wake_inflight)
			continue;
		/* Pairs with the client's barrier between LLMQ_CL_WAITING and its last look. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!(llmq_load_acquire(&c->hdr->cl_flags) & LLMQ_CL_WAITING) &&
		    !(c->rt_flags & (LLMQ_RING_BROKEN | LLMQ_RING_DEAD)))
			continue;	/* awake: it will see the CQEs itself */
		c->need_wake = false;
		if (c->kid) {
			kernel_wake(d, c);
			continue;
		}
		c->wake_inflight = true;
		c->ops++;
		sqe = loop_sqe(d);
		io_uring_prep_write(sqe, c->wake_fd, &one, sizeof(one), 0);
		io_uring_sqe_set_data(sqe, &c->ev_wake);
		d->stats.wakeups++;
	}
	/* /dev/llmq's clients: one system call wakes them all. */
	kernel_wake_flush(d);
}

/**
 * client_poll_all() - look at every ring without being told (--poll-us)
 * @d:		the daemon
 *
 * Drains clients that published SQEs and flushes held CQEs of clients that
 * made CQ room, doorbell or not.
 *
 * Return: whether any client had work.
 */
bool client_poll_all(struct llmqd *d)
{
	struct list_head *pos, *n;
	bool work = false;

	list_for_each_safe(pos, n, &d->clients) {
		struct client *c = list_entry(pos, struct client, link);
		int64_t room;

		if (c->closing)
			continue;
		if (c->ovf_head != c->ovf_tail) {
			room = cq_room(c);
			if (room) {
				ovf_flush(c);
				work = true;
			}
		}
		if (llmq_load_acquire(&c->hdr->sq_tail) != c->sq_head && !c->stalled) {
			client_drain(c);
			work = true;
		}
	}
	return work;
}

/**
 * client_set_need_wakeup() - tell every client whether to ring the doorbell
 * @d:		the daemon
 * @on:		true before the loop sleeps, false while it polls
 *
 * Setting is followed by a full barrier; the caller then looks at every ring
 * once more (client_poll_all()) before sleeping, so a submission that saw
 * the flag clear is never missed.
 */
void client_set_need_wakeup(struct llmqd *d, bool on)
{
	struct list_head *pos;

	for (pos = d->clients.next; pos != &d->clients; pos = pos->next) {
		struct client *c = list_entry(pos, struct client, link);

		if (on)
			c->rt_flags |= LLMQ_RING_NEED_WAKEUP;
		else
			c->rt_flags &= ~LLMQ_RING_NEED_WAKEUP;
		client_store_flags(c);
	}
	if (on)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/**
 * client_kill_all() - the runtime is going: fail what is left and say so
 * @d:		the daemon
 * @err:	positive errno for the rings (ESHUTDOWN)
 *
 * Posts -@err for every remaining request, marks every ring dead, and wakes
 * every client (the loop is about to end).  CQEs that still find no CQ room
 * are lost with the runtime; their clients see LLMQ_RING_DEAD and @err.
 */
void client_kill_all(struct llmqd *d, int err)
{
	static const uint64_t one = 1;
	struct list_head *pos, *n, *rp, *rn;
	struct io_uring_sqe *sqe;

	list_for_each_safe(pos, n, &d->clients) {
		struct client *c = list_entry(pos, struct client, link);

		if (c->closing)
			continue;
		list_for_each_safe(rp, rn, &c->reqs)
			req_finish(list_entry(rp, struct request, clink), -err,
				   LLMQ_FINISH_ERROR);
		if (c->ovf_head != c->ovf_tail)
			ovf_flush(c);
		llmq_store_release(&c->hdr->cq_tail, c->cq_tail);
		llmq_store_release(&c->hdr->sq_head, c->sq_head);
		c->hdr->rt_errno = (uint32_t)err;
		c->rt_flags |= LLMQ_RING_DEAD;
		client_store_flags(c);
		/*
		 * Through the ring, not write(2): a client can make its eventfd
		 * block.  Writes still pending when the ring is torn down are
		 * cancelled; the connection closing wakes those clients anyway.
		 */
		sqe = loop_sqe(d);
		io_uring_prep_write(sqe, c->wake_fd, &one, sizeof(one), 0);
		io_uring_sqe_set_data64(sqe, IGNORE_UD);
	}
	io_uring_submit(&d->ring);
}
