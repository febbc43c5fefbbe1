// SPDX-License-Identifier: GPL-2.0
/*
 * The control plane's second carrier: generic netlink through llmq.ko.
 * On the kernel transport llmqd opens a libnl genl socket, resolves the
 * family "llmq" and registers as its runtime (LLMQ_CMD_REGISTER, which the
 * module allows only to the process attached to /dev/llmq).  The module
 * then forwards each llmqctl request to this socket with LLMQ_ATTR_COOKIE;
 * the loop polls the socket through its io_uring, admin_serve() answers
 * the request exactly as for the admin socket, and the answer goes back as
 * LLMQ_CMD_REPLY with the same cookie.  The module checked the caller's
 * privilege; it is the only sender accepted.
 *
 * Everything runs on the loop's thread, between steps.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "llmqd.h"
#include "log.h"

static struct nla_policy cookie_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_COOKIE]	= { .type = NLA_U64 },
};

/* An empty REPLY for @cookie, or NULL. */
static struct nl_msg *new_reply(struct llmqd *d, uint64_t cookie, size_t size)
{
	struct nl_msg *rep = nlmsg_alloc_size(size);

	if (rep && (!genlmsg_put(rep, NL_AUTO_PORT, NL_AUTO_SEQ, d->genl_family, 0, 0,
				 LLMQ_CMD_REPLY, LLMQ_GENL_VERSION) ||
		    nla_put_u64(rep, LLMQ_ATTR_COOKIE, cookie))) {
		nlmsg_free(rep);
		rep = NULL;
	}
	return rep;
}

static void arm_poll(struct llmqd *d)
{
	struct io_uring_sqe *sqe = loop_sqe(d);

	io_uring_prep_poll_add(sqe, nl_socket_get_fd(d->genl_sk), POLLIN);
	io_uring_sqe_set_data(sqe, &d->ev_genl);
}

/* One message from the socket: a relayed request, answered at once. */
static int on_msg(struct nl_msg *msg, void *arg)
{
	struct llmqd *d = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[LLMQ_ATTR_MAX + 1];
	struct genlmsghdr *gh;
	char too_large[64];
	struct nl_msg *rep;
	uint64_t cookie;
	int err;

	/* Only the kernel may ask (anyone else would need CAP_NET_ADMIN). */
	if (nlmsg_get_src(msg)->nl_pid != 0 || nlh->nlmsg_type != d->genl_family ||
	    !genlmsg_valid_hdr(nlh, 0))
		return NL_SKIP;
	gh = nlmsg_data(nlh);
	if (gh->cmd < LLMQ_CMD_GET_STATUS || gh->cmd > LLMQ_CMD_SHUTDOWN ||
	    genlmsg_parse(nlh, 0, tb, LLMQ_ATTR_MAX, cookie_policy) || !tb[LLMQ_ATTR_COOKIE]) {
		pr_warn("llmq.ko sent a message we do not understand (command %u)", gh->cmd);
		return NL_SKIP;
	}
	cookie = nla_get_u64(tb[LLMQ_ATTR_COOKIE]);
	rep = new_reply(d, cookie, ADMIN_REPLY_MAX);
	if (rep && admin_serve(d, nlh, rep, true, "llmq.ko")) {
		/*
		 * admin_serve() cuts a reply that outgrew @rep back to its
		 * headers and says EMSGSIZE itself; should not even that fit,
		 * say so in a reply of its own.
		 */
		nlmsg_free(rep);
		rep = new_reply(d, cookie, 4096);
		snprintf(too_large, sizeof(too_large), "reply too large (more than %d bytes)",
			 ADMIN_REPLY_MAX);
		if (rep && (nla_put_u32(rep, LLMQ_ATTR_ERRNO, EMSGSIZE) ||
			    nla_put_string(rep, LLMQ_ATTR_ERRMSG, too_large))) {
			nlmsg_free(rep);
			rep = NULL;
		}
	}
	/* Without a reply the caller waits for the module's relay_timeout_ms. */
	if (!rep)
		return NL_SKIP;
	/* No ack asked for: the module complains only if it refuses the reply. */
	err = nl_send_auto(d->genl_sk, rep);
	if (err < 0)
		pr_warn("llmq.ko: sending a reply: %s", nl_geterror(err));
	nlmsg_free(rep);
	return NL_OK;
}

/* The module refused a reply (its caller may have given up): say so, go on. */
static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	(void)nla;
	(void)arg;
	if (e->error)
		pr_warn("llmq.ko refused a reply: %s", strerror(-e->error));
	return NL_SKIP;
}

/**
 * admin_genl_open() - register with llmq.ko's generic netlink family
 * @d:		the daemon, attached to /dev/llmq
 *
 * Without the family (an older module) or when the module refuses, llmqd
 * serves on and llmqctl reaches it through the admin socket only.
 *
 * Return: 0 if registered, else -ENOTCONN or -ENOMEM (logged).
 */
int admin_genl_open(struct llmqd *d)
{
	struct nl_msg *m;
	int err;

	d->ev_genl.type = EV_GENL;
	d->genl_sk = nl_socket_alloc();
	if (!d->genl_sk)
		return -ENOMEM;
	err = genl_connect(d->genl_sk);
	if (err)
		goto fail;
	/*
	 * Netlink refuses a message longer than the send buffer less 32
	 * bytes, and libnl's default buffer (32 KiB, which the kernel
	 * doubles) falls just short of a whole reply.
	 */
	err = nl_socket_set_buffer_size(d->genl_sk, 0, 2 * ADMIN_REPLY_MAX);
	if (err)
		pr_warn("llmq.ko's netlink socket: cannot size its send buffer: %s; "
			"replies near %d bytes may be lost", nl_geterror(err), ADMIN_REPLY_MAX);
	err = genl_ctrl_resolve(d->genl_sk, LLMQ_GENL_NAME);
	if (err < 0)
		goto fail;
	d->genl_family = err;
	m = nlmsg_alloc();
	if (!m) {
		err = -NLE_NOMEM;
		goto fail;
	}
	if (!genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, d->genl_family, 0, 0, LLMQ_CMD_REGISTER,
			 LLMQ_GENL_VERSION)) {
		nlmsg_free(m);
		err = -NLE_NOMEM;
		goto fail;
	}
	/* Sends, waits for the ack and frees @m. */
	err = nl_send_sync(d->genl_sk, m);
	if (err)
		goto fail;
	/* From now on the module's requests come unasked, sequence 0. */
	nl_socket_disable_seq_check(d->genl_sk);
	nl_socket_disable_auto_ack(d->genl_sk);
	nl_socket_modify_cb(d->genl_sk, NL_CB_VALID, NL_CB_CUSTOM, on_msg, d);
	nl_socket_modify_err_cb(d->genl_sk, NL_CB_CUSTOM, on_error, d);
	err = nl_socket_set_nonblocking(d->genl_sk);
	if (err)
		goto fail;
	arm_poll(d);
	pr_info("registered with llmq.ko's generic netlink family: llmqctl reaches us there too");
	return 0;
fail:
	pr_warn("cannot register with llmq.ko's generic netlink family \"%s\": %s; "
		"llmqctl reaches llmqd through its socket only", LLMQ_GENL_NAME,
		nl_geterror(err));
	nl_socket_free(d->genl_sk);
	d->genl_sk = NULL;
	return -ENOTCONN;
}

/**
 * admin_genl_on_poll() - the genl socket is readable
 * @d:		the daemon
 * @res:	the poll's result: events, or -errno
 */
void admin_genl_on_poll(struct llmqd *d, int res)
{
	struct nl_cb *cb;
	int n;

	if (!d->genl_sk)
		return;
	if (res < 0 && res != -EINTR && res != -ECANCELED) {
		pr_err("llmq.ko's netlink socket: poll failed: %s", strerror(-res));
		return;
	}
	/* Each call reads one datagram and handles its messages; 0: no more. */
	cb = nl_socket_get_cb(d->genl_sk);
	do {
		n = nl_recvmsgs_report(d->genl_sk, cb);
	} while (n > 0);
	nl_cb_put(cb);
	if (n < 0)
		pr_warn("llmq.ko's netlink socket: %s", nl_geterror(n));
	arm_poll(d);
}

/**
 * admin_genl_close() - close the socket; the module unregisters us
 * @d:		the daemon
 */
void admin_genl_close(struct llmqd *d)
{
	nl_socket_free(d->genl_sk);
	d->genl_sk = NULL;
}
