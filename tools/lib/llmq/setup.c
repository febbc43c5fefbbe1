// SPDX-License-Identifier: MIT
/*
 * Ring setup and teardown: choose the transport, lay the shared ring out,
 * and hand it to the runtime over the userspace socket (memfd + eventfds by
 * SCM_RIGHTS), or have /dev/llmq lay it out when the kernel module is
 * loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "libllmq.h"
#include "ring.h"
#include "uds.h"

/**
 * llmq_socket_path() - the userspace-transport socket a client would use
 * @path:	explicit path, or NULL
 *
 * Return: @path if given, else $LLMQ_SOCKET if set and non-empty, else
 * LLMQ_DEFAULT_SOCKET.
 */
const char *llmq_socket_path(const char *path)
{
	const char *env;

	if (path && *path)
		return path;
	env = getenv("LLMQ_SOCKET");
	if (env && *env)
		return env;
	return LLMQ_DEFAULT_SOCKET;
}

/**
 * llmq_uds_connect() - connect a SOCK_SEQPACKET socket to the runtime
 * @path:	socket path (already resolved)
 *
 * Return: the socket fd, or -errno (-ENAMETOOLONG, -ENOENT, -ECONNREFUSED...).
 */
int llmq_uds_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A runtime that accepted but never answers must not hang us. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Point the ring's fields into its mapping. */
static void ring_set(struct llmq_ring *ring, void *map, const struct llmq_layout *lay,
		     const struct llmq_params *p)
{
	ring->map = map;
	ring->map_size = lay->map_size;
	ring->hdr = map;
	ring->sqes = (struct llmq_sqe *)((char *)map + lay->sq_off);
	ring->cqes = (struct llmq_cqe *)((char *)map + lay->cq_off);
	ring->arena = (uint8_t *)map + lay->arena_off;
	ring->sq_entries = p->sq_entries;
	ring->cq_entries = p->cq_entries;
	ring->arena_size = p->arena_size;
}

/*
 * The kernel transport: the device lays the ring out in its own memory; we
 * map it, ring the doorbell with write() and sleep in poll()/read() on the
 * same open file (one descriptor for the doorbell, a dup of it for waking).
 */
static int dev_setup(struct llmq_ring *ring, const struct llmq_params *p)
{
	struct llmq_setup s = {
		.magic = LLMQ_MAGIC,
		.version = LLMQ_ABI_VERSION,
		.params = *p,
	};
	struct llmq_layout lay;
	void *map;
	int fd, err;

	err = llmq_params_check(p, &lay);
	if (err)
		return err;
	fd = open(LLMQ_DEVICE, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	ring->doorbell_fd = fd;
	if (ioctl(fd, LLMQ_IOC_SETUP, &s) < 0)
		return -errno;
	/* Both sides compute the layout; a kernel that disagrees speaks another ABI. */
	if (s.map_size != lay.map_size)
		return -EPROTO;
	ring->wake_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (ring->wake_fd < 0)
		return -errno;
	map = mmap(NULL, lay.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	ring_set(ring, map, &lay, p);
	ring->client_id = s.client_id;
	return 0;
}

static int ring_map(struct llmq_ring *ring, const struct llmq_params *p, int *memfd)
{
	struct llmq_layout lay;
	struct llmq_ring_hdr *hdr;
	void *map;
	int fd, err;

	err = llmq_params_check(p, &lay);
	if (err)
		return err;
	fd = memfd_create("llmq-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, lay.map_size) < 0)
		goto fail;
	/* The runtime refuses rings it could lose pages of under its feet. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	map = mmap(NULL, lay.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		goto fail;
	ring_set(ring, map, &lay, p);
	hdr = map;
	hdr->magic = LLMQ_MAGIC;
	hdr->version = LLMQ_ABI_VERSION;
	hdr->sq_entries = p->sq_entries;
	hdr->cq_entries = p->cq_entries;
	hdr->arena_size = p->arena_size;
	hdr->sq_off = lay.sq_off;
	hdr->cq_off = lay.cq_off;
	hdr->arena_off = lay.arena_off;
	hdr->map_size = lay.map_size;
	*memfd = fd;
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

static int hello(struct llmq_ring *ring, int memfd, const struct llmq_params *p)
{
	struct llmq_msg_hello msg = {
		.magic = LLMQ_MAGIC,
		.version = LLMQ_ABI_VERSION,
		.type = LLMQ_MSG_HELLO,
		.params = *p,
	};
	struct llmq_msg_reply rep;
	int fds[3] = { memfd, ring->doorbell_fd, ring->wake_fd };
	ssize_t n;

	n = llmq_uds_send(ring->sock_fd, &msg, sizeof(msg), fds, 3);
	if (n < 0)
		return (int)n;
	n = recv(ring->sock_fd, &rep, sizeof(rep), 0);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n != sizeof(rep) || rep.magic != LLMQ_MAGIC || rep.type != LLMQ_MSG_HELLO)
		return -EPROTO;
	if (rep.error)
		return -(int)rep.error;
	ring->client_id = rep.client_id;
	return 0;
}

static void ring_free(struct llmq_ring *ring)
{
	if (ring->map)
		munmap(ring->map, ring->map_size);
	if (ring->sock_fd >= 0)
		close(ring->sock_fd);
	if (ring->doorbell_fd >= 0)
		close(ring->doorbell_fd);
	if (ring->wake_fd >= 0)
		close(ring->wake_fd);
	free(ring->slots);
	memset(ring, 0, sizeof(*ring));
	ring->sock_fd = ring->doorbell_fd = ring->wake_fd = -1;
}

/**
 * llmq_queue_init() - set up a ring and attach it to the runtime
 * @ring:	the ring to initialise
 * @path:	userspace-transport socket, or NULL to choose automatically
 * @p:		geometry, or NULL for the defaults (64 SQEs, 1024 CQEs, 1 MiB)
 *
 * With @path NULL the kernel transport (/dev/llmq) is used when present,
 * else the socket named by $LLMQ_SOCKET, else LLMQ_DEFAULT_SOCKET.  On the
 * kernel transport a ring set up while no runtime is attached succeeds; the
 * first wait for a completion then returns -ENOTCONN, and what was
 * submitted waits in the ring for the next runtime.
 *
 * Return: 0, or -errno: -EINVAL bad geometry, -ENOENT / -ECONNREFUSED no
 * runtime, -EPROTO / -EPROTONOSUPPORT the runtime speaks another ABI, or
 * the runtime's own refusal (-EACCES, -EMFILE...); on the kernel
 * transport -EACCES (not in the device's group) and the device's refusals
 * (-ENOSPC, -ENOMEM).
 */
int llmq_queue_init(struct llmq_ring *ring, const char *path, const struct llmq_params *p)
{
	struct llmq_params def = {
		.sq_entries = LLMQ_DEFAULT_SQ_ENTRIES,
		.cq_entries = LLMQ_DEFAULT_CQ_ENTRIES,
		.arena_size = LLMQ_DEFAULT_ARENA,
	};
	int memfd = -1, err;
	const char *spin;

	memset(ring, 0, sizeof(*ring));
	ring->sock_fd = ring->doorbell_fd = ring->wake_fd = -1;
	if (!p)
		p = &def;
	ring->slots = calloc(p->sq_entries, sizeof(*ring->slots));
	if (!ring->slots) {
		err = -ENOMEM;
		goto fail;
	}
	if ((!path || !*path) && access(LLMQ_DEVICE, F_OK) == 0) {
		err = dev_setup(ring, p);
		if (err)
			goto fail;
		goto spin;
	}
	err = ring_map(ring, p, &memfd);
	if (err)
		goto fail;
	ring->doorbell_fd = eventfd(0, EFD_CLOEXEC);
	ring->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ring->doorbell_fd < 0 || ring->wake_fd < 0) {
		err = -errno;
		goto fail;
	}
	ring->sock_fd = llmq_uds_connect(llmq_socket_path(path));
	if (ring->sock_fd < 0) {
		err = ring->sock_fd;
		ring->sock_fd = -1;
		goto fail;
	}
	err = hello(ring, memfd, p);
	if (err)
		goto fail;
	close(memfd);
spin:
	spin = getenv("LLMQ_SPIN_US");
	if (spin && *spin >= '0' && *spin <= '9') {
		unsigned long long us;
		char *end;

		errno = 0;
		us = strtoull(spin, &end, 10);
		/* Malformed values are ignored: the library never fails on them. */
		if (!*end && !errno)
			llmq_set_spin(ring, us > 1000000 ? 1000000 : (unsigned int)us);
	}
	return 0;
fail:
	if (memfd >= 0)
		close(memfd);
	ring_free(ring);
	return err;
}

/**
 * llmq_queue_exit() - detach from the runtime and free the ring
 * @ring:	a ring set up by llmq_queue_init()
 *
 * Requests still running are cancelled by the runtime when it sees the
 * connection close.
 */
void llmq_queue_exit(struct llmq_ring *ring)
{
	ring_free(ring);
}

/**
 * llmq_set_spin() - busy-wait this long for a completion before sleeping
 * @ring:	the ring
 * @usec:	microseconds, 0 to sleep at once (the default, or $LLMQ_SPIN_US)
 *
 * Spinning trades a little CPU for not paying a sleeping wake-up when the
 * answer comes quickly; it pays most with llmqd --poll-us.
 */
void llmq_set_spin(struct llmq_ring *ring, unsigned int usec)
{
	ring->spin_us = usec > 1000000 ? 1000000 : usec;
}

/**
 * llmq_ring_fd() - a descriptor that polls readable when CQEs may be there
 * @ring:	the ring
 *
 * For event loops: poll it for POLLIN, read its 8-byte counter to reset it,
 * then reap with llmq_peek_cqe() until -EAGAIN.  Once this has been called
 * the runtime writes it after every batch of completions (the ring stays
 * marked LLMQ_CL_WAITING).  It does not report a runtime killed without a
 * word; llmq_wait_cqe_timeout(ring, &cqe, 0) now and then notices that.
 *
 * Return: the wake eventfd.
 */
int llmq_ring_fd(struct llmq_ring *ring)
{
	ring->event_fd_used = 1;
	llmq_store_release(&ring->hdr->cl_flags, LLMQ_CL_WAITING);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ring->wake_fd;
}
