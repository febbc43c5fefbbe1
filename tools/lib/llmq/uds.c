// SPDX-License-Identifier: MIT
/*
 * Sending a handshake message with descriptors attached (SCM_RIGHTS).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "uds.h"

#define UDS_MAX_FDS 4

/**
 * llmq_uds_send() - send one message, optionally carrying descriptors
 * @fd:		connected SOCK_SEQPACKET socket
 * @buf:	payload
 * @len:	payload bytes
 * @fds:	descriptors to pass, or NULL
 * @nr_fds:	how many (at most 4)
 *
 * Return: bytes sent, or -errno.
 */
ssize_t llmq_uds_send(int fd, const void *buf, size_t len, const int *fds, int nr_fds)
{
	union {
		char buf[CMSG_SPACE(UDS_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (nr_fds < 0 || nr_fds > UDS_MAX_FDS)
		return -EINVAL;
	if (nr_fds) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nr_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nr_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nr_fds * sizeof(int));
	}
	n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	return n < 0 ? -errno : n;
}
