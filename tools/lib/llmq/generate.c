// SPDX-License-Identifier: MIT
/*
 * The convenience path: one streamed request, a callback per piece of text,
 * and the runtime's counters for tools and tests.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libllmq.h"
#include "uds.h"

#define GENERATE_UD	0x6c6c6d7167656e00ULL	/* "llmqgen" */

/**
 * llmq_generate() - run one prompt to completion, streaming to a callback
 * @ring:	a ring with no other requests in flight
 * @prompt:	NUL-terminated UTF-8 prompt
 * @sp:		sampling, or NULL for the defaults
 * @cb:		called for each piece of output, may be NULL
 * @arg:	passed to @cb
 *
 * With LLMQ_SQE_STREAM in @sp->flags (the default) @cb sees each token as it
 * is generated; without it, @cb sees the whole text in pieces once the
 * request has finished, with token UINT32_MAX.  If @cb returns non-zero the request is cancelled and the call returns
 * -ECANCELED once the runtime confirms.  Completions of other requests met
 * on the way are consumed and dropped.
 *
 * Return: the number of tokens generated, or -errno: the request's error,
 * the submission's (-EAGAIN, -E2BIG, -ERANGE) or the ring's (-ECONNRESET).
 */
int llmq_generate(struct llmq_ring *ring, const char *prompt, const struct llmq_sampling *sp,
		  llmq_token_cb cb, void *arg)
{
	struct llmq_sampling s;
	struct llmq_sqe *sqe;
	struct llmq_cqe *cqe;
	int err, res, stopped = 0;

	if (sp)
		s = *sp;
	else
		llmq_sampling_init(&s);
	sqe = llmq_get_sqe(ring);
	if (!sqe)
		return -EAGAIN;
	err = llmq_prep_generate(ring, sqe, prompt, strlen(prompt), &s, GENERATE_UD);
	if (err) {
		/* Hand the entry back as a harmless no-op. */
		llmq_prep_nop(sqe, GENERATE_UD + 1);
		llmq_submit(ring);
		return err;
	}
	err = llmq_submit(ring);
	if (err < 0)
		return err;
	for (;;) {
		err = llmq_wait_cqe(ring, &cqe);
		if (err)
			return err;
		if (cqe->user_data != GENERATE_UD) {
			llmq_cqe_seen(ring, cqe);
			continue;
		}
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			res = cqe->res;
			llmq_cqe_seen(ring, cqe);
			return res;
		}
		if (cb && !stopped && cqe->text_len &&
		    cb(cqe->flags & LLMQ_CQE_F_TOKEN ? cqe->token : UINT32_MAX,
		       (const char *)cqe->text, cqe->text_len, arg)) {
			stopped = 1;
			llmq_cancel(ring, GENERATE_UD, GENERATE_UD + 1);
		}
		llmq_cqe_seen(ring, cqe);
	}
}

/**
 * llmq_get_stats() - read the runtime's counters
 * @path:	userspace-transport socket, or NULL for llmq_socket_path()'s choice
 * @st:		filled with the counters
 *
 * Return: 0, or -errno (-ECONNREFUSED / -ENOENT: no runtime there).
 */
int llmq_get_stats(const char *path, struct llmq_stats *st)
{
	struct llmq_msg_hello msg = {
		.magic = LLMQ_MAGIC,
		.version = LLMQ_ABI_VERSION,
		.type = LLMQ_MSG_STATS,
	};
	struct {
		struct llmq_msg_reply rep;
		struct llmq_stats st;
	} buf;
	ssize_t n;
	int fd;

	fd = llmq_uds_connect(llmq_socket_path(path));
	if (fd < 0)
		return fd;
	memset(&buf, 0, sizeof(buf));
	n = llmq_uds_send(fd, &msg, sizeof(msg), NULL, 0);
	if (n >= 0) {
		n = recv(fd, &buf, sizeof(buf), 0);
		if (n < 0)
			n = errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
	close(fd);
	if (n < 0)
		return (int)n;
	if ((size_t)n >= sizeof(buf.rep) && buf.rep.magic == LLMQ_MAGIC && buf.rep.error)
		return -(int)buf.rep.error;
	if (n != sizeof(buf) || buf.rep.magic != LLMQ_MAGIC || buf.rep.type != LLMQ_MSG_STATS)
		return -EPROTO;
	*st = buf.st;
	return 0;
}
