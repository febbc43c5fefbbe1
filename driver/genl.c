// SPDX-License-Identifier: GPL-2.0
/*
 * llmq.ko's control plane: the generic netlink family "llmq".  The module
 * holds no state of the runtime's (its scheduler, its metrics, its
 * settings), so it relays: the runtime attached to /dev/llmq registers its
 * netlink socket (LLMQ_CMD_REGISTER); a request from llmqctl is checked
 * here (policy, privilege), forwarded to that socket with a cookie, and
 * its caller sleeps until the runtime's LLMQ_CMD_REPLY with that cookie
 * comes back, the runtime goes away, or relay_timeout_ms passes.  The
 * reply's attributes are then copied into the reply to the caller.
 *
 * The multicast group "events" announces a runtime registering and going
 * away (its socket closed, or its /dev/llmq file released).
 *
 * Documentation/userspace-api/llmq.rst and
 * Documentation/admin-guide/llmqctl.rst describe the messages.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/sched.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sock.h>

#include <uapi/linux/llmq.h>

#include "llmq_internal.h"

static unsigned int relay_timeout_ms = 5000;
module_param(relay_timeout_ms, uint, 0644);
MODULE_PARM_DESC(relay_timeout_ms,
		 "how long a relayed control request waits for the runtime (default 5000)");

/* The room a reply message needs beyond its attributes. */
#define LLMQ_GENL_HDR_ROOM	(NLMSG_HDRLEN + GENL_HDRLEN + 64)

/**
 * struct llmq_relay_req - a request waiting for the runtime's reply
 * @node:	in llmq_relay.reqs while it waits
 * @cookie:	what the runtime's reply names it by
 * @cmd:	the command, also that of the reply
 * @portid:	the caller's socket, where the reply goes
 * @seq:	the caller's sequence number
 * @done:	completed with @reply or @err set
 * @reply:	the reply to the caller, built from the runtime's
 * @err:	-errno if the runtime went away first
 *
 * It lives on its caller's stack: whoever completes it does so under
 * llmq_relay.lock, and the caller unlinks it under the same lock before
 * it returns.
 */
struct llmq_relay_req {
	struct list_head	node;
	u64			cookie;
	u8			cmd;
	u32			portid;
	u32			seq;
	struct completion	done;
	struct sk_buff		*reply;
	int			err;
};

/**
 * struct llmq_relay - the registered runtime and the requests waiting for it
 * @lock:	protects everything below
 * @sk:		the runtime's netlink socket, a reference; NULL if none
 * @portid:	its port, where requests are sent
 * @pid:	its process, in the initial pid namespace
 * @reqs:	requests forwarded to it, not yet answered
 * @next_cookie: the last cookie handed out
 *
 * Replies are accepted from @sk itself, not from whoever holds @portid:
 * netlink_release() frees the port before the notifier tells us, and
 * another socket may bind it in between.
 */
struct llmq_relay {
	struct mutex		lock;	/* the registration and @reqs */
	struct sock		*sk;
	u32			portid;
	u32			pid;
	struct list_head	reqs;
	u64			next_cookie;
};

static struct llmq_relay llmq_relay = {
	.lock	= __MUTEX_INITIALIZER(llmq_relay.lock),
	.reqs	= LIST_HEAD_INIT(llmq_relay.reqs),
};

static struct genl_family llmq_genl_family;

enum llmq_genl_mcgrp {
	LLMQ_GENL_MCGRP_EVENTS_ID,
};

static const struct genl_multicast_group llmq_genl_mcgrps[] = {
	[LLMQ_GENL_MCGRP_EVENTS_ID] = { .name = LLMQ_GENL_MCGRP_EVENTS },
};

/* ---- policies: every attribute of every command ---------------------------- */

static const struct nla_policy llmq_cfg_policy[LLMQ_CFG_MAX + 1] = {
	[LLMQ_CFG_BATCH_TIMEOUT_MS]		= { .type = NLA_S64 },
	[LLMQ_CFG_MAX_BATCH_SIZE]		= { .type = NLA_S64 },
	[LLMQ_CFG_MAX_NUM_SEQS]			= { .type = NLA_S64 },
	[LLMQ_CFG_MAX_NUM_BATCHED_TOKENS]	= { .type = NLA_S64 },
	[LLMQ_CFG_MAX_QUEUED_REQUESTS]		= { .type = NLA_S64 },
};

static const struct nla_policy llmq_set_config_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CONFIG]	= NLA_POLICY_NESTED(llmq_cfg_policy),
};

static const struct nla_policy llmq_cancel_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CLIENT_PID]	= { .type = NLA_U32 },
};

/* GET_CLIENTS: the page to start from (none: the first). */
static const struct nla_policy llmq_get_clients_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CLIENTS_START]	= { .type = NLA_U64 },
};

static const struct nla_policy llmq_client_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CLIENT_PID]		= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_UID]		= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_REQUESTS]	= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_TOKENS]	= { .type = NLA_U64 },
	[LLMQ_ATTR_CLIENT_ID]		= { .type = NLA_U64 },
};

/* What a runtime's reply may carry: the replies of every command. */
static const struct nla_policy llmq_reply_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_ERRNO]		= { .type = NLA_U32 },
	[LLMQ_ATTR_ERRMSG]		= { .type = NLA_NUL_STRING, .len = 255 },
	[LLMQ_ATTR_TRANSPORT]		= { .type = NLA_NUL_STRING, .len = 31 },
	[LLMQ_ATTR_ENGINE]		= { .type = NLA_NUL_STRING, .len = 63 },
	[LLMQ_ATTR_MODEL]		= { .type = NLA_NUL_STRING, .len = 255 },
	[LLMQ_ATTR_UPTIME_MS]		= { .type = NLA_U64 },
	[LLMQ_ATTR_REQUESTS_RUNNING]	= { .type = NLA_U64 },
	[LLMQ_ATTR_REQUESTS_WAITING]	= { .type = NLA_U64 },
	[LLMQ_ATTR_KV_BLOCKS_USED]	= { .type = NLA_U64 },
	[LLMQ_ATTR_KV_BLOCKS_TOTAL]	= { .type = NLA_U64 },
	[LLMQ_ATTR_TOKENS_PER_SEC_MILLI] = { .type = NLA_U64 },
	[LLMQ_ATTR_DRAINING]		= { .type = NLA_U8 },
	[LLMQ_ATTR_STATS]		= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_stats)),
	[LLMQ_ATTR_HIST_TTFT]		= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_hist)),
	[LLMQ_ATTR_HIST_ITL]		= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_hist)),
	[LLMQ_ATTR_HIST_E2E]		= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_hist)),
	[LLMQ_ATTR_HIST_QUEUE]		= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_hist)),
	[LLMQ_ATTR_HIST_PREFILL]	= NLA_POLICY_EXACT_LEN(sizeof(struct llmq_hist)),
	[LLMQ_ATTR_CLIENT]		= NLA_POLICY_NESTED(llmq_client_policy),
	[LLMQ_ATTR_CONFIG]		= NLA_POLICY_NESTED(llmq_cfg_policy),
	[LLMQ_ATTR_CANCELLED]		= { .type = NLA_U32 },
	[LLMQ_ATTR_COOKIE]		= { .type = NLA_U64 },
	[LLMQ_ATTR_CLIENTS_NEXT]	= { .type = NLA_U64 },
};

/* ---- events ----------------------------------------------------------------------- */

/*
 * Tell the "events" group that runtime @pid came (@type UP) or went.
 * Called under llmq_relay.lock, so that listeners see ups and downs in the
 * order they happened.
 */
static void llmq_genl_event(u32 type, u32 pid)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(nla_total_size(sizeof(u32)) * 2, GFP_KERNEL);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &llmq_genl_family, 0, LLMQ_CMD_EVENT);
	if (!hdr || nla_put_u32(skb, LLMQ_ATTR_EVENT, type) ||
	    nla_put_u32(skb, LLMQ_ATTR_RUNTIME_PID, pid)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	/* -ESRCH: nobody listens, which is no failure. */
	genlmsg_multicast(&llmq_genl_family, skb, 0, LLMQ_GENL_MCGRP_EVENTS_ID, GFP_KERNEL);
}

/* ---- the registration -------------------------------------------------------------- */

/*
 * Forget the registered runtime if @portid is its socket's port (0:
 * whichever it is), fail every request waiting for it with -ECONNRESET and
 * announce it gone.
 */
static void llmq_relay_unregister(u32 portid)
{
	struct llmq_relay_req *req, *tmp;
	struct sock *sk = NULL;

	mutex_lock(&llmq_relay.lock);
	if (llmq_relay.sk && (!portid || portid == llmq_relay.portid)) {
		sk = llmq_relay.sk;
		llmq_relay.sk = NULL;
		llmq_relay.portid = 0;
		list_for_each_entry_safe(req, tmp, &llmq_relay.reqs, node) {
			list_del_init(&req->node);
			req->err = -ECONNRESET;
			complete(&req->done);
		}
		llmq_genl_event(LLMQ_EVENT_RUNTIME_DOWN, llmq_relay.pid);
		llmq_relay.pid = 0;
	}
	mutex_unlock(&llmq_relay.lock);
	if (sk)
		sock_put(sk);
}

/**
 * llmq_genl_runtime_detached() - the runtime's /dev/llmq file is gone
 *
 * A runtime that no longer serves the device serves no control requests
 * either, even if its netlink socket is still open.
 */
void llmq_genl_runtime_detached(void)
{
	llmq_relay_unregister(0);
}

/* A netlink socket was released: was it the runtime's? */
static int llmq_genl_notify(struct notifier_block *nb, unsigned long state, void *ptr)
{
	struct netlink_notify *n = ptr;

	if (state == NETLINK_URELEASE && n->protocol == NETLINK_GENERIC && n->portid &&
	    net_eq(n->net, &init_net))
		llmq_relay_unregister(n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block llmq_genl_notifier = {
	.notifier_call	= llmq_genl_notify,
};

/**
 * llmq_genl_register() - LLMQ_CMD_REGISTER: the runtime offers its socket
 * @skb:	the request
 * @info:	its sender
 *
 * Only the process attached to /dev/llmq as the runtime may register (it
 * is trusted with every prompt already), and only one socket at a time.
 *
 * Return: 0, -EPERM if the caller is not the runtime, -EBUSY if another
 * socket is registered.
 */
static int llmq_genl_register(struct sk_buff *skb, struct genl_info *info)
{
	struct sock *sk = NETLINK_CB(skb).sk;
	u32 pid = task_tgid_nr(current);
	int err = 0;

	mutex_lock(&llmq_relay.lock);
	/*
	 * Checked under the lock: a detach after this clears the registration
	 * only once we drop it, so no stale runtime stays registered.
	 */
	if (!llmq_runtime_is_current()) {
		GENL_SET_ERR_MSG(info, "only the runtime attached to /dev/llmq may register");
		err = -EPERM;
	} else if (llmq_relay.sk && llmq_relay.sk != sk) {
		GENL_SET_ERR_MSG(info, "another socket of the runtime is registered");
		err = -EBUSY;
	} else {
		if (!llmq_relay.sk) {
			sock_hold(sk);
			llmq_relay.sk = sk;
		}
		llmq_relay.portid = info->snd_portid;
		llmq_relay.pid = pid;
		llmq_genl_event(LLMQ_EVENT_RUNTIME_UP, pid);
	}
	mutex_unlock(&llmq_relay.lock);
	return err;
}

/* ---- relaying -------------------------------------------------------------------------- */

/*
 * Copy every attribute of @nlh's payload but the cookie into @skb, flags
 * (NLA_F_NESTED) and all.  The policy checked them; nla_put() zeroes the
 * padding.
 */
static int llmq_copy_attrs(struct sk_buff *skb, const struct nlmsghdr *nlh)
{
	const struct nlattr *a;
	int rem;

	nlmsg_for_each_attr(a, nlh, GENL_HDRLEN, rem) {
		if (nla_type(a) == LLMQ_ATTR_COOKIE)
			continue;
		if (nla_put(skb, a->nla_type, nla_len(a), nla_data(a)))
			return -EMSGSIZE;
	}
	return 0;
}

/**
 * llmq_genl_reply() - LLMQ_CMD_REPLY: the runtime answers a relayed request
 * @skb:	the reply
 * @info:	its sender, which must be the registered runtime
 *
 * The reply to the waiting caller is built here, under the lock that
 * keeps the caller's request alive, and handed over.
 *
 * Return: 0 (also for a cookie nobody waits for any more: its caller gave
 * up), -EPERM from anyone but the registered runtime, -EINVAL without a
 * cookie, -ENOMEM.
 */
static int llmq_genl_reply(struct sk_buff *skb, struct genl_info *info)
{
	struct llmq_relay_req *req;
	struct sk_buff *msg;
	u64 cookie;
	void *hdr;
	int err = 0;

	if (!info->attrs[LLMQ_ATTR_COOKIE]) {
		GENL_SET_ERR_MSG(info, "a reply needs LLMQ_ATTR_COOKIE");
		return -EINVAL;
	}
	cookie = nla_get_u64(info->attrs[LLMQ_ATTR_COOKIE]);
	mutex_lock(&llmq_relay.lock);
	if (!llmq_relay.sk || NETLINK_CB(skb).sk != llmq_relay.sk) {
		GENL_SET_ERR_MSG(info, "not the registered runtime");
		err = -EPERM;
		goto out;
	}
	list_for_each_entry(req, &llmq_relay.reqs, node)
		if (req->cookie == cookie)
			goto found;
	goto out;
found:
	msg = genlmsg_new(genlmsg_len(info->genlhdr) + LLMQ_GENL_HDR_ROOM, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	hdr = genlmsg_put(msg, req->portid, req->seq, &llmq_genl_family, 0, req->cmd);
	if (!hdr || llmq_copy_attrs(msg, info->nlhdr)) {
		/* Sized for what it copies: cannot happen. */
		nlmsg_free(msg);
		err = -EMSGSIZE;
		goto out;
	}
	genlmsg_end(msg, hdr);
	list_del_init(&req->node);
	req->reply = msg;
	complete(&req->done);
out:
	mutex_unlock(&llmq_relay.lock);
	return err;
}

/* Answer @info's request with LLMQ_ATTR_ERRNO @err and a message. */
static int llmq_genl_answer_err(struct genl_info *info, int err, const char *why)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(nla_total_size(sizeof(u32)) + nla_total_size(strlen(why) + 1),
			  GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &llmq_genl_family, 0, info->genlhdr->cmd);
	if (!hdr || nla_put_u32(msg, LLMQ_ATTR_ERRNO, -err) ||
	    nla_put_string(msg, LLMQ_ATTR_ERRMSG, why)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* Does the command change the runtime? */
static bool llmq_cmd_changes(u8 cmd)
{
	return cmd == LLMQ_CMD_SET_CONFIG || cmd == LLMQ_CMD_CANCEL_CLIENT ||
	       cmd == LLMQ_CMD_DRAIN || cmd == LLMQ_CMD_SHUTDOWN;
}

/* The message forwarded to the runtime: @info's command, @cookie, its attributes. */
static struct sk_buff *llmq_relay_msg(struct genl_info *info, u64 cookie)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(genlmsg_len(info->genlhdr) + nla_total_size_64bit(sizeof(u64)),
			  GFP_KERNEL);
	if (!msg)
		return NULL;
	hdr = genlmsg_put(msg, 0, 0, &llmq_genl_family, 0, info->genlhdr->cmd);
	if (!hdr || nla_put_u64_64bit(msg, LLMQ_ATTR_COOKIE, cookie, LLMQ_ATTR_PAD) ||
	    llmq_copy_attrs(msg, info->nlhdr)) {
		nlmsg_free(msg);
		return NULL;
	}
	genlmsg_end(msg, hdr);
	return msg;
}

/**
 * llmq_genl_relay() - a control request: forward it, wait, answer
 * @skb:	the request
 * @info:	its sender
 *
 * Reads are open to everyone; changes need CAP_NET_ADMIN or CAP_SYS_ADMIN
 * of the socket's opener and of the sender, as for GENL_ADMIN_PERM but
 * with either capability and with an answer llmqctl can print.  The
 * family has parallel_ops, so the caller may sleep here.
 *
 * Return: 0 once answered (the answer may carry an error), -EINTR if a
 * signal interrupted the wait, -ENOMEM.
 */
static int llmq_genl_relay(struct sk_buff *skb, struct genl_info *info)
{
	struct llmq_relay_req req = { .cmd = info->genlhdr->cmd };
	struct sk_buff *msg;
	long left;
	int err;

	if (llmq_cmd_changes(req.cmd) && !netlink_capable(skb, CAP_NET_ADMIN) &&
	    !netlink_capable(skb, CAP_SYS_ADMIN))
		return llmq_genl_answer_err(info, -EPERM,
					    "changing llmqd needs CAP_NET_ADMIN or CAP_SYS_ADMIN");
	req.portid = info->snd_portid;
	req.seq = info->snd_seq;
	INIT_LIST_HEAD(&req.node);
	init_completion(&req.done);

	mutex_lock(&llmq_relay.lock);
	if (!llmq_relay.sk) {
		mutex_unlock(&llmq_relay.lock);
		return llmq_genl_answer_err(info, -ENOTCONN,
					    "no llmqd is registered with llmq.ko (llmqd --transport kernel)");
	}
	req.cookie = ++llmq_relay.next_cookie;
	msg = llmq_relay_msg(info, req.cookie);
	if (!msg) {
		mutex_unlock(&llmq_relay.lock);
		return -ENOMEM;
	}
	list_add_tail(&req.node, &llmq_relay.reqs);
	/*
	 * Sent under the lock: the runtime's reply takes it too, so it finds
	 * the request listed; genlmsg_unicast() does not sleep (MSG_DONTWAIT).
	 */
	err = genlmsg_unicast(&init_net, msg, llmq_relay.portid);
	if (err)
		list_del_init(&req.node);
	mutex_unlock(&llmq_relay.lock);
	if (err == -EAGAIN)
		return llmq_genl_answer_err(info, -EBUSY,
					    "llmqd's netlink socket is full; try again");
	if (err)
		return llmq_genl_answer_err(info, -ENOTCONN,
					    "llmqd's netlink socket is gone");

	left = msecs_to_jiffies(READ_ONCE(relay_timeout_ms));
	left = wait_for_completion_interruptible_timeout(&req.done, left);
	mutex_lock(&llmq_relay.lock);
	list_del_init(&req.node);
	msg = req.reply;
	err = req.err;
	mutex_unlock(&llmq_relay.lock);

	if (msg && left >= 0)
		return genlmsg_reply(msg, info);
	nlmsg_free(msg);	/* a reply that came with the signal */
	if (left < 0)
		return -EINTR;
	if (err)
		return llmq_genl_answer_err(info, err, "llmqd went away before it answered");
	return llmq_genl_answer_err(info, -ETIMEDOUT, "llmqd did not answer in time");
}

/* ---- the family ----------------------------------------------------------------------- */

/*
 * Commands without a policy take no attributes: resv_start_op makes the
 * core reject any (genl_policy_reject_all) and check genlmsghdr strictly.
 */
static const struct genl_ops llmq_genl_ops[] = {
	{ .cmd = LLMQ_CMD_GET_STATUS,	.doit = llmq_genl_relay },
	{ .cmd = LLMQ_CMD_GET_STATS,	.doit = llmq_genl_relay },
	{
		.cmd	 = LLMQ_CMD_GET_CLIENTS,
		.doit	 = llmq_genl_relay,
		.policy	 = llmq_get_clients_policy,
		.maxattr = LLMQ_ATTR_MAX,
	},
	{ .cmd = LLMQ_CMD_GET_CONFIG,	.doit = llmq_genl_relay },
	{
		.cmd	 = LLMQ_CMD_SET_CONFIG,
		.doit	 = llmq_genl_relay,
		.policy	 = llmq_set_config_policy,
		.maxattr = LLMQ_ATTR_MAX,
	},
	{
		.cmd	 = LLMQ_CMD_CANCEL_CLIENT,
		.doit	 = llmq_genl_relay,
		.policy	 = llmq_cancel_policy,
		.maxattr = LLMQ_ATTR_MAX,
	},
	{ .cmd = LLMQ_CMD_DRAIN,	.doit = llmq_genl_relay },
	{ .cmd = LLMQ_CMD_SHUTDOWN,	.doit = llmq_genl_relay },
	{ .cmd = LLMQ_CMD_REGISTER,	.doit = llmq_genl_register },
	{
		.cmd	 = LLMQ_CMD_REPLY,
		.doit	 = llmq_genl_reply,
		.policy	 = llmq_reply_policy,
		.maxattr = LLMQ_ATTR_MAX,
	},
};

static struct genl_family llmq_genl_family __ro_after_init = {
	.name		= LLMQ_GENL_NAME,
	.version	= LLMQ_GENL_VERSION,
	.module		= THIS_MODULE,
	.ops		= llmq_genl_ops,
	.n_ops		= ARRAY_SIZE(llmq_genl_ops),
	.resv_start_op	= LLMQ_CMD_UNSPEC + 1,
	.mcgrps		= llmq_genl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(llmq_genl_mcgrps),
	.parallel_ops	= true,
};

/**
 * llmq_genl_init() - register the family and the socket-release notifier
 *
 * Return: 0 or -errno.
 */
int llmq_genl_init(void)
{
	int err;

	err = netlink_register_notifier(&llmq_genl_notifier);
	if (err)
		return err;
	err = genl_register_family(&llmq_genl_family);
	if (err)
		goto notifier;
	return 0;
notifier:
	netlink_unregister_notifier(&llmq_genl_notifier);
	return err;
}

/**
 * llmq_genl_exit() - unregister the family and the notifier
 *
 * Called once /dev/llmq is gone: no runtime is attached (its file held the
 * module), so none is registered and no request waits.
 */
void llmq_genl_exit(void)
{
	/* Waits for every doit still running. */
	genl_unregister_family(&llmq_genl_family);
	netlink_unregister_notifier(&llmq_genl_notifier);
	WARN_ON(llmq_relay.sk || !list_empty(&llmq_relay.reqs));
}
