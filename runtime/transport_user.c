// SPDX-License-Identifier: GPL-2.0
/*
 * The userspace transport, the embedded default: llmqd listens on a
 * SOCK_SEQPACKET unix socket; a client connects and sends LLMQ_MSG_HELLO
 * with its ring memfd and two eventfds (SCM_RIGHTS); the uid and pid come
 * from SO_PEERCRED.  The socket carries only the handshake, admin requests
 * and, by closing, the news that a client is gone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "llmqd.h"
#include "log.h"

#define HELLO_FDS 3

/*
 * accept() out of descriptors (or memory): the connection stays in the
 * backlog, so accepting again at once fails again at once. Wait this long,
 * and warn of such failures at most once per ACCEPT_WARN_NS.
 */
#define ACCEPT_BACKOFF_NS	(100 * 1000000ULL)
#define ACCEPT_WARN_NS		(10 * 1000000000ULL)

/* A connection between accept() and its first message. */
struct conn {
	struct ev	ev;
	int		fd;
	struct __kernel_timespec timeout;	/* for the first message */
	struct msghdr	msg;
	struct iovec	iov;
	union {
		char	buf[CMSG_SPACE(HELLO_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	union {
		struct llmq_msg_hello hello;
		char	raw[1024];
	} in;
};

static int mkdir_parent(const char *path)
{
	char *dir = strdup(path), *slash;
	int err = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			err = -errno;
	}
	free(dir);
	return err;
}

/* Is someone already serving @path?  Then we must not steal it. */
static bool socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	close(fd);
	return alive;
}

static void arm_accept(struct llmqd *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d);

	io_uring_prep_multishot_accept(sqe, d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &d->ev_accept);
}

/**
 * user_listen() - bind the socket and start accepting
 * @d:		the daemon
 *
 * Return: 0 or -errno (logged).
 */
int user_listen(struct llmqd *d)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = d->cfg.socket_path;
	struct stat st;
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		pr_err("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	err = mkdir_parent(path);
	if (err) {
		pr_err("cannot create the directory of %s: %s", path, strerror(-err));
		return err;
	}
	if (socket_alive(&sun)) {
		pr_err("%s: another runtime is already listening there", path);
		return -EADDRINUSE;
	}
	/* A stale socket of ours may go; anything else stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			pr_err("%s exists and is not a socket", path);
			return -EEXIST;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, d->cfg.socket_mode) < 0 || listen(fd, SOMAXCONN) < 0) {
		err = -errno;
		pr_err("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	d->listen_fd = fd;
	d->ev_accept.type = EV_ACCEPT;
	d->accepting = true;
	arm_accept(d);
	return 0;
}

/**
 * user_close_listener() - stop taking clients (shutdown)
 * @d:		the daemon
 */
void user_close_listener(struct llmqd *d)
{
	struct io_uring_sqe *sqe;

	if (!d->accepting)
		return;
	d->accepting = false;
	sqe = loop_sqe(d);
	io_uring_prep_cancel(sqe, &d->ev_accept, 0);
	io_uring_sqe_set_data64(sqe, IGNORE_UD);
	close(d->listen_fd);
	unlink(d->cfg.socket_path);
}

/* A failed accept: warned of at most once per ACCEPT_WARN_NS, with a count. */
static void accept_warn(struct llmqd *d, int err)
{
	uint64_t now = now_ns();

	d->accept_failed++;
	if (d->accept_warned && now - d->accept_warned < ACCEPT_WARN_NS)
		return;
	pr_warn("accept failed: %s (%llu times since the last warning)", strerror(-err),
		(unsigned long long)d->accept_failed);
	d->accept_warned = now;
	d->accept_failed = 0;
}

/**
 * user_on_accept_timer() - TIMER_ACCEPT fired: accept again
 * @d:		the daemon
 * @seq:	the timer's sequence number
 */
void user_on_accept_timer(struct llmqd *d, uint64_t seq)
{
	if (seq != d->accept_seq)
		return;
	d->accept_seq = 0;
	if (d->accepting)
		arm_accept(d);
}

/**
 * user_on_accept() - a client connected: wait for its first message
 * @d:		the daemon
 * @res:	the new socket, or -errno
 * @more:	whether the multishot accept stays armed
 *
 * The first message must come within --handshake-timeout-ms; a connection
 * that sends nothing is closed then, so idle connections cannot hold the
 * runtime's descriptors for ever.
 */
void user_on_accept(struct llmqd *d, int res, bool more)
{
	struct io_uring_sqe *sqe;
	struct conn *cn;
	uint64_t ns;

	if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
		accept_warn(d, res);
		if (!more && d->accepting && !d->accept_seq)
			d->accept_seq = loop_timer_arm(d, TIMER_ACCEPT, ACCEPT_BACKOFF_NS);
		return;
	}
	if (!more && d->accepting)
		arm_accept(d);
	if (res < 0) {
		if (res != -ECANCELED)
			accept_warn(d, res);
		return;
	}
	if (!d->accepting) {
		close(res);
		return;
	}
	cn = calloc(1, sizeof(*cn));
	if (!cn) {
		close(res);
		return;
	}
	cn->ev.type = EV_HELLO;
	cn->fd = res;
	cn->iov.iov_base = &cn->in;
	cn->iov.iov_len = sizeof(cn->in);
	cn->msg.msg_iov = &cn->iov;
	cn->msg.msg_iovlen = 1;
	cn->msg.msg_control = cn->ctl.buf;
	cn->msg.msg_controllen = sizeof(cn->ctl.buf);
	ns = d->cfg.handshake_timeout_ms * 1000000ULL;
	cn->timeout.tv_sec = (long long)(ns / 1000000000ULL);
	cn->timeout.tv_nsec = (long long)(ns % 1000000000ULL);
	/* The receive and its timeout must go to the kernel in one submission. */
	if (io_uring_sq_space_left(&d->ring) < 2)
		io_uring_submit(&d->ring);
	sqe = loop_sqe(d);
	io_uring_prep_recvmsg(sqe, cn->fd, &cn->msg, MSG_CMSG_CLOEXEC);
	io_uring_sqe_set_data(sqe, &cn->ev);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = loop_sqe(d);
	io_uring_prep_link_timeout(sqe, &cn->timeout, 0);
	io_uring_sqe_set_data64(sqe, IGNORE_UD);
}

/*
 * Descriptors that came with the message: the first @max are kept, any more
 * closed.  Returns how many came, so that a wrong count can be refused.
 */
static int take_fds(struct msghdr *msg, int *fds, int max)
{
	struct cmsghdr *cm;
	int n = 0, i, cnt;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n] = fd;
			else
				close(fd);
			n++;
		}
	}
	return n;
}

static void reply(int fd, uint32_t type, int err, uint64_t id, const void *extra, size_t len)
{
	struct {
		struct llmq_msg_reply rep;
		struct llmq_stats st;
	} buf;

	memset(&buf, 0, sizeof(buf));
	buf.rep.magic = LLMQ_MAGIC;
	buf.rep.version = LLMQ_ABI_VERSION;
	buf.rep.type = type;
	buf.rep.error = (uint32_t)-err;
	buf.rep.client_id = id;
	if (len > sizeof(buf.st))
		len = sizeof(buf.st);
	if (extra)
		memcpy(&buf.st, extra, len);
	/* Non-blocking: a client that does not read its reply gets none. */
	(void)!send(fd, &buf, sizeof(buf.rep) + (extra ? len : 0), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int hello_check(const struct conn *cn, ssize_t len, int nr_fds)
{
	const struct llmq_msg_hello *h = &cn->in.hello;
	int room = (int)((sizeof(cn->ctl.buf) - CMSG_LEN(0)) / sizeof(int));

	/*
	 * Descriptors cut short though the buffer had room for more: the
	 * kernel could not install them, this process is out of descriptors.
	 */
	if ((cn->msg.msg_flags & MSG_CTRUNC) && nr_fds < room)
		return -EMFILE;
	if (cn->msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	if (len != sizeof(*h) || h->magic != LLMQ_MAGIC)
		return -EPROTO;
	if (h->version != LLMQ_ABI_VERSION)
		return -EPROTONOSUPPORT;
	if (h->flags)
		return -EINVAL;
	if (h->type == LLMQ_MSG_HELLO && nr_fds != HELLO_FDS)
		return -EBADF;
	if (h->type == LLMQ_MSG_STATS && nr_fds)
		return -EBADF;
	if (h->type != LLMQ_MSG_HELLO && h->type != LLMQ_MSG_STATS)
		return -EOPNOTSUPP;
	return 0;
}

/**
 * user_on_hello() - a connection's first message arrived
 * @d:		the daemon
 * @ev:		the connection's event
 * @res:	bytes received, or -errno
 *
 * HELLO attaches a ring; STATS answers with the counters.  Anything else is
 * refused with an errno in the reply and the connection is closed.
 */
void user_on_hello(struct llmqd *d, struct ev *ev, int res)
{
	struct conn *cn = container_of(ev, struct conn, ev);
	struct client *c = NULL;
	struct ucred cred = { 0 };
	socklen_t clen = sizeof(cred);
	int fds[HELLO_FDS], n = 0, got = 0, err, i;
	uint32_t type = cn->in.hello.type;

	/* Descriptors may come with an empty message too: they are closed. */
	if (res >= 0)
		got = take_fds(&cn->msg, fds, HELLO_FDS);
	n = got < HELLO_FDS ? got : HELLO_FDS;	/* the ones we hold */
	if (res <= 0) {
		if (res == -ECANCELED)
			pr_debug("a connection sent nothing in %u ms: closed",
				 d->cfg.handshake_timeout_ms);
		err = res ? res : -ECONNRESET;
		goto out;
	}
	if (!got && !(cn->msg.msg_flags & MSG_TRUNC) && admin_is_netlink(&cn->in, res)) {
		if (getsockopt(cn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
			cred.uid = (uid_t)-1;	/* no credentials: unprivileged */
		admin_handle(d, cn->fd, &cn->in, res, cred.pid, cred.uid);
		err = 0;
		goto out;
	}
	err = hello_check(cn, res, got);
	if (!err && getsockopt(cn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
		err = -errno;
	if (err)
		goto out;
	if (type == LLMQ_MSG_STATS) {
		serve_update_stats(d);
		reply(cn->fd, type, 0, 0, &d->stats, sizeof(d->stats));
		goto out;
	}
	if (d->stopping || d->draining) {
		err = -ESHUTDOWN;
		goto out;
	}
	err = client_attach(d, cn->fd, fds, &cn->in.hello.params, cred.pid, cred.uid, &c);
	if (!err) {
		reply(cn->fd, type, 0, c->id, NULL, 0);
		free(cn);
		return;
	}
out:
	if (err && res > 0) {
		pr_info("refused a connection (pid %d): %s", (int)cred.pid, strerror(-err));
		reply(cn->fd, type, err, 0, NULL, 0);
	}
	for (i = 0; i < n; i++)
		close(fds[i]);
	close(cn->fd);
	free(cn);
}
