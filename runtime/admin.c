// SPDX-License-Identifier: GPL-2.0
/*
 * The control plane's requests: the generic netlink family "llmq"'s
 * messages (include/uapi/linux/llmq.h), built and parsed with libnl.  One
 * message format, two carriers: admin_serve() answers a parsed request
 * whichever brought it; admin_handle() is the admin socket's carrier (one
 * request per SOCK_SEQPACKET connection, answered and closed), and
 * admin_genl.c is llmq.ko's, which relays requests over generic netlink.
 *
 * On the socket, reads are open to anyone who can reach it; changes need
 * uid 0, CAP_NET_ADMIN or CAP_SYS_ADMIN in the peer (peercred.c), else
 * EPERM.  Through the module, the module checked the caller's capabilities.
 *
 * Everything runs on the loop's thread, between steps.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/capability.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/genl/genl.h>

#include "admin_keys.h"
#include "llmqd.h"
#include "log.h"
#include "peercred.h"

static struct nla_policy top_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CLIENT_PID]	= { .type = NLA_U32 },
	[LLMQ_ATTR_CONFIG]	= { .type = NLA_NESTED },
	[LLMQ_ATTR_CLIENTS_START] = { .type = NLA_U64 },
};

/* admin_serve()'s message, NUL included. */
#define ADMIN_MSG_MAX	256

/*
 * What a reply keeps free after the last LLMQ_ATTR_CLIENT: the
 * LLMQ_ATTR_CLIENTS_NEXT that says where the list was cut, LLMQ_ATTR_ERRNO
 * and an LLMQ_ATTR_ERRMSG as long as admin_serve()'s message may be.
 */
#define CLIENTS_RESERVE	(NLA_ALIGN(NLA_HDRLEN + 8) + NLA_ALIGN(NLA_HDRLEN + 4) + \
			 NLA_ALIGN(NLA_HDRLEN + ADMIN_MSG_MAX))

static struct nla_policy cfg_policy[LLMQ_CFG_MAX + 1] = {
	[LLMQ_CFG_BATCH_TIMEOUT_MS]	  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_BATCH_SIZE]	  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_NUM_SEQS]		  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_NUM_BATCHED_TOKENS] = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_QUEUED_REQUESTS]	  = { .type = NLA_U64 },
};

/**
 * admin_is_netlink() - is this first message an admin request?
 * @buf:	what came
 * @len:	its length
 *
 * A HELLO starts with LLMQ_MAGIC; a netlink message with its own length.
 */
bool admin_is_netlink(const void *buf, size_t len)
{
	struct nlmsghdr h;

	if (len < NLMSG_HDRLEN + GENL_HDRLEN)
		return false;
	memcpy(&h, buf, sizeof(h));
	return h.nlmsg_len == len && h.nlmsg_type == LLMQ_GENL_SOCK_TYPE;
}

static int64_t cfg_value(const struct llmqd *d, int attr)
{
	const struct sched_config *c = &d->sched.cfg;

	switch (attr) {
	case LLMQ_CFG_BATCH_TIMEOUT_MS:
		return (int64_t)(c->batch_timeout_ns / 1000000ULL);
	case LLMQ_CFG_MAX_BATCH_SIZE:
		return c->max_batch_size;
	case LLMQ_CFG_MAX_NUM_SEQS:
		return c->max_num_seqs;
	case LLMQ_CFG_MAX_NUM_BATCHED_TOKENS:
		return c->max_num_batched_tokens;
	case LLMQ_CFG_MAX_QUEUED_REQUESTS:
		return c->max_queued;
	}
	return 0;
}

/*
 * The ceiling of a capped key: what the step's buffers were sized for at
 * start (--max-num-seqs-limit, --max-num-batched-tokens-limit).
 */
static int64_t cfg_cap(const struct llmqd *d, int attr)
{
	return attr == LLMQ_CFG_MAX_NUM_SEQS ? d->cfg.sched.max_num_seqs_limit :
	       d->cfg.max_num_batched_tokens_limit;
}

/*
 * Check every key of @tb, then apply them all, or none: the scheduler reads
 * its configuration at each poll and plan, so a change takes effect from
 * the next step on.
 */
static int set_config(struct llmqd *d, struct nlattr **tb, char *msg, size_t msglen)
{
	struct sched_config nc = d->sched.cfg;
	int64_t v, hi;
	unsigned int i;
	int n = 0;

	for (i = 0; i < ADMIN_NR_KEYS; i++) {
		const struct admin_key *k = &admin_keys[i];

		if (!tb[k->attr])
			continue;
		n++;
		v = (int64_t)nla_get_u64(tb[k->attr]);
		hi = k->capped ? cfg_cap(d, k->attr) : k->hi;
		if (v < k->lo || v > hi) {
			snprintf(msg, msglen, "%s: %" PRId64 " is out of range %" PRId64 "..%" PRId64
				 "%s%s%s", k->name, v, k->lo, hi,
				 k->capped && hi < k->hi ? " (the step's buffers were sized for "
				 "that at start; restart llmqd with a larger --" : "",
				 k->capped && hi < k->hi ? k->limit_flag : "",
				 k->capped && hi < k->hi ? ")" : "");
			return -ERANGE;
		}
		switch (k->attr) {
		case LLMQ_CFG_BATCH_TIMEOUT_MS:
			nc.batch_timeout_ns = (uint64_t)v * 1000000ULL;
			break;
		case LLMQ_CFG_MAX_BATCH_SIZE:
			nc.max_batch_size = (uint32_t)v;
			break;
		case LLMQ_CFG_MAX_NUM_SEQS:
			nc.max_num_seqs = (uint32_t)v;
			break;
		case LLMQ_CFG_MAX_NUM_BATCHED_TOKENS:
			nc.max_num_batched_tokens = (uint32_t)v;
			break;
		case LLMQ_CFG_MAX_QUEUED_REQUESTS:
			nc.max_queued = (uint32_t)v;
			break;
		}
	}
	if (!n) {
		snprintf(msg, msglen, "no setting given");
		return -EINVAL;
	}
	if (nc.max_num_batched_tokens < nc.max_num_seqs) {
		snprintf(msg, msglen, "max_num_batched_tokens %u would be below max_num_seqs %u",
			 nc.max_num_batched_tokens, nc.max_num_seqs);
		return -EINVAL;
	}
	for (i = 0; i < ADMIN_NR_KEYS; i++)
		if (tb[admin_keys[i].attr])
			pr_info("config: %s = %" PRId64, admin_keys[i].name,
				(int64_t)nla_get_u64(tb[admin_keys[i].attr]));
	d->sched.cfg = nc;
	d->cfg.batch_timeout_ms = (uint32_t)(nc.batch_timeout_ns / 1000000ULL);
	/* A shorter window may already have closed: look again. */
	d->window_deadline = 0;
	return 0;
}

static int put_config(struct nl_msg *m, const struct llmqd *d)
{
	struct nlattr *nest = nla_nest_start(m, LLMQ_ATTR_CONFIG);
	unsigned int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < ADMIN_NR_KEYS; i++)
		if (nla_put_u64(m, admin_keys[i].attr, (uint64_t)cfg_value(d, admin_keys[i].attr)))
			return -EMSGSIZE;
	nla_nest_end(m, nest);
	return 0;
}

static uint64_t tokens_per_sec_milli(const struct llmqd *d)
{
	uint64_t sec = now_ns() / 1000000000ULL, sum = 0;
	unsigned int i;

	/* The last five whole seconds. */
	for (i = 0; i < 8; i++)
		if (d->tps_sec[i] + 5 >= sec && d->tps_sec[i] < sec)
			sum += d->tps_tok[i];
	return sum * 1000 / 5;
}

static int put_status(struct nl_msg *m, struct llmqd *d)
{
	struct llmq_stats *st = &d->stats;

	serve_update_stats(d);
	if (nla_put_string(m, LLMQ_ATTR_TRANSPORT, d->dev_fd >= 0 ? "kernel" : "shm") ||
	    nla_put_string(m, LLMQ_ATTR_ENGINE, d->engine.be->ops->name) ||
	    nla_put_string(m, LLMQ_ATTR_MODEL, d->engine.desc) ||
	    nla_put_u64(m, LLMQ_ATTR_UPTIME_MS, (now_ns() - d->t_start) / 1000000ULL) ||
	    nla_put_u64(m, LLMQ_ATTR_REQUESTS_RUNNING, st->requests_running) ||
	    nla_put_u64(m, LLMQ_ATTR_REQUESTS_WAITING, st->requests_waiting) ||
	    nla_put_u64(m, LLMQ_ATTR_KV_BLOCKS_USED, st->kv_blocks_used) ||
	    nla_put_u64(m, LLMQ_ATTR_KV_BLOCKS_TOTAL, st->kv_blocks_total) ||
	    nla_put_u64(m, LLMQ_ATTR_TOKENS_PER_SEC_MILLI, tokens_per_sec_milli(d)) ||
	    nla_put_u8(m, LLMQ_ATTR_DRAINING, d->draining))
		return -EMSGSIZE;
	return 0;
}

static int put_stats(struct nl_msg *m, struct llmqd *d)
{
	const struct serve_metrics *sm = &d->metrics;

	serve_update_stats(d);
	if (nla_put(m, LLMQ_ATTR_STATS, sizeof(d->stats), &d->stats) ||
	    nla_put(m, LLMQ_ATTR_HIST_TTFT, sizeof(sm->ttft), &sm->ttft) ||
	    nla_put(m, LLMQ_ATTR_HIST_ITL, sizeof(sm->itl), &sm->itl) ||
	    nla_put(m, LLMQ_ATTR_HIST_E2E, sizeof(sm->e2e), &sm->e2e) ||
	    nla_put(m, LLMQ_ATTR_HIST_QUEUE, sizeof(sm->queue), &sm->queue) ||
	    nla_put(m, LLMQ_ATTR_HIST_PREFILL, sizeof(sm->prefill), &sm->prefill))
		return -EMSGSIZE;
	return 0;
}

/*
 * One page of the clients: those with an id of @start or more, in id order,
 * as many as fit in @m short of CLIENTS_RESERVE.  If some are left,
 * LLMQ_ATTR_CLIENTS_NEXT names the first of them and the caller asks again
 * from there: a client listed on one page is never on another, one that
 * attached since is on a later page, one that went is on none.
 *
 * client_new() appends each client to d->clients with an id above all
 * before it and nothing reorders the list, so it is in id order.
 */
static int put_clients(struct nl_msg *m, struct llmqd *d, uint64_t start)
{
	size_t max = nlmsg_get_max_size(m);
	struct list_head *pos;
	struct nlattr *nest;
	bool any = false;

	list_for_each(pos, &d->clients) {
		struct client *c = list_entry(pos, struct client, link);

		if (c->closing || c->id < start)
			continue;
		nest = nla_nest_start(m, LLMQ_ATTR_CLIENT);
		if (!nest || nla_put_u64(m, LLMQ_ATTR_CLIENT_ID, c->id) ||
		    nla_put_u32(m, LLMQ_ATTR_CLIENT_PID, (uint32_t)c->pid) ||
		    nla_put_u32(m, LLMQ_ATTR_CLIENT_UID, (uint32_t)c->uid) ||
		    nla_put_u32(m, LLMQ_ATTR_CLIENT_REQUESTS, c->nr_reqs) ||
		    nla_put_u64(m, LLMQ_ATTR_CLIENT_TOKENS, c->tokens) ||
		    nlmsg_hdr(m)->nlmsg_len + CLIENTS_RESERVE > max) {
			/* Not even one: no page that would let the caller go on. */
			if (!any)
				return -EMSGSIZE;
			if (nest)
				nla_nest_cancel(m, nest);
			return nla_put_u64(m, LLMQ_ATTR_CLIENTS_NEXT, c->id) ? -EMSGSIZE : 0;
		}
		nla_nest_end(m, nest);
		any = true;
	}
	return 0;
}

/* Cancel every request of every client of process @pid. */
static int cancel_client(struct llmqd *d, pid_t pid, uint32_t *cancelled)
{
	struct list_head *cpos, *rpos, *n;
	bool found = false;

	*cancelled = 0;
	list_for_each(cpos, &d->clients) {
		struct client *c = list_entry(cpos, struct client, link);

		if (c->pid != pid || c->closing)
			continue;
		found = true;
		list_for_each_safe(rpos, n, &c->reqs) {
			struct request *r = list_entry(rpos, struct request, clink);

			req_finish(r, -ECANCELED, LLMQ_FINISH_CANCELLED);
			(*cancelled)++;
		}
	}
	return found ? 0 : -ESRCH;
}

static bool is_change(uint8_t cmd)
{
	return cmd == LLMQ_CMD_SET_CONFIG || cmd == LLMQ_CMD_CANCEL_CLIENT ||
	       cmd == LLMQ_CMD_DRAIN || cmd == LLMQ_CMD_SHUTDOWN;
}

static int dispatch(struct llmqd *d, struct nl_msg *rep, uint8_t cmd, struct nlattr **tb,
		    char *msg, size_t msglen)
{
	struct nlattr *ctb[LLMQ_CFG_MAX + 1];
	uint32_t cancelled;
	int err;

	switch (cmd) {
	case LLMQ_CMD_GET_STATUS:
		return put_status(rep, d);
	case LLMQ_CMD_GET_STATS:
		return put_stats(rep, d);
	case LLMQ_CMD_GET_CLIENTS:
		return put_clients(rep, d, tb[LLMQ_ATTR_CLIENTS_START] ?
				   nla_get_u64(tb[LLMQ_ATTR_CLIENTS_START]) : 0);
	case LLMQ_CMD_GET_CONFIG:
		return put_config(rep, d);
	case LLMQ_CMD_SET_CONFIG:
		if (!tb[LLMQ_ATTR_CONFIG]) {
			snprintf(msg, msglen, "no LLMQ_ATTR_CONFIG");
			return -EINVAL;
		}
		err = nla_parse_nested(ctb, LLMQ_CFG_MAX, tb[LLMQ_ATTR_CONFIG], cfg_policy);
		if (err) {
			snprintf(msg, msglen, "malformed LLMQ_ATTR_CONFIG");
			return -EINVAL;
		}
		err = set_config(d, ctb, msg, msglen);
		return err ? err : put_config(rep, d);
	case LLMQ_CMD_CANCEL_CLIENT:
		if (!tb[LLMQ_ATTR_CLIENT_PID]) {
			snprintf(msg, msglen, "no LLMQ_ATTR_CLIENT_PID");
			return -EINVAL;
		}
		err = cancel_client(d, (pid_t)nla_get_u32(tb[LLMQ_ATTR_CLIENT_PID]), &cancelled);
		if (err) {
			snprintf(msg, msglen, "no client with pid %u",
				 nla_get_u32(tb[LLMQ_ATTR_CLIENT_PID]));
			return err;
		}
		pr_info("admin: cancelled %u requests of pid %u", cancelled,
			nla_get_u32(tb[LLMQ_ATTR_CLIENT_PID]));
		return nla_put_u32(rep, LLMQ_ATTR_CANCELLED, cancelled) ? -EMSGSIZE : 0;
	case LLMQ_CMD_DRAIN:
		if (!d->draining)
			pr_info("admin: draining; new requests fail with ESHUTDOWN");
		d->draining = true;
		return put_status(rep, d);
	case LLMQ_CMD_SHUTDOWN:
		pr_info("admin: shutdown");
		llmqd_stop(d, d->stopping);
		return 0;
	}
	snprintf(msg, msglen, "unknown command %u", cmd);
	return -EOPNOTSUPP;
}

/**
 * admin_serve() - answer one request, whichever carrier brought it
 * @d:		the daemon
 * @req:	the request: a whole netlink message, genlmsghdr and attributes
 * @rep:	the reply, its headers put: the command's attributes,
 *		LLMQ_ATTR_ERRNO and maybe LLMQ_ATTR_ERRMSG are added
 * @may_change:	the caller may change llmqd (the carrier checked)
 * @who:	the caller, for the log
 *
 * A command that fails takes back whatever attributes it had added: the
 * reply is cut back to its headers, and only LLMQ_ATTR_ERRNO and
 * LLMQ_ATTR_ERRMSG follow.  So a reply that outgrew @rep still tells its
 * caller why (EMSGSIZE, "reply too large").
 *
 * Return: 0, or -EMSGSIZE if even the errno did not fit in @rep.
 */
int admin_serve(struct llmqd *d, const struct nlmsghdr *req, struct nl_msg *rep,
		bool may_change, const char *who)
{
	struct nlattr *tb[LLMQ_ATTR_MAX + 1];
	const struct genlmsghdr *gh = nlmsg_data(req);
	/* libnl appends at nlmsg_len: setting it back drops what came after. */
	uint32_t hdr_len = nlmsg_hdr(rep)->nlmsg_len;
	char msg[ADMIN_MSG_MAX] = "";
	uint8_t cmd = gh->cmd;
	int err;

	err = genlmsg_parse((struct nlmsghdr *)req, 0, tb, LLMQ_ATTR_MAX, top_policy);
	if (err) {
		snprintf(msg, sizeof(msg), "malformed request");
		err = -EINVAL;
	} else if (is_change(cmd) && !may_change) {
		snprintf(msg, sizeof(msg), "changing llmqd needs root, CAP_NET_ADMIN or "
			 "CAP_SYS_ADMIN");
		err = -EPERM;
	} else {
		err = dispatch(d, rep, cmd, tb, msg, sizeof(msg));
	}
	if (err)
		nlmsg_hdr(rep)->nlmsg_len = hdr_len;
	if (err == -EMSGSIZE && !msg[0])
		snprintf(msg, sizeof(msg), "reply too large (more than %zu bytes)",
			 nlmsg_get_max_size(rep));
	if (err && cmd != LLMQ_CMD_GET_STATUS)
		pr_info("admin command %u from %s: %s", cmd, who, msg[0] ? msg : strerror(-err));
	if (nla_put_u32(rep, LLMQ_ATTR_ERRNO, (uint32_t)-err) ||
	    (msg[0] && nla_put_string(rep, LLMQ_ATTR_ERRMSG, msg)))
		return -EMSGSIZE;
	return 0;
}

/**
 * admin_handle() - answer one admin request from the socket
 * @d:		the daemon
 * @fd:		the connection (the caller closes it)
 * @buf:	the netlink message, admin_is_netlink() said so
 * @len:	its length
 * @pid:	the peer's, from SO_PEERCRED
 * @uid:	likewise; (uid_t)-1 if unknown
 */
void admin_handle(struct llmqd *d, int fd, const void *buf, size_t len, pid_t pid, uid_t uid)
{
	struct nlmsghdr *req = (struct nlmsghdr *)buf, *nlh;
	struct genlmsghdr *gh = nlmsg_data(req);
	struct nl_msg *rep;
	char who[64];

	if (!nlmsg_ok(req, (int)len))
		return;
	rep = nlmsg_alloc_size(ADMIN_REPLY_MAX);
	if (!rep)
		return;
	snprintf(who, sizeof(who), "pid %d uid %d", (int)pid, (int)uid);
	if (!genlmsg_put(rep, NL_AUTO_PORT, req->nlmsg_seq, LLMQ_GENL_SOCK_TYPE, 0, 0, gh->cmd,
			 LLMQ_GENL_VERSION) ||
	    admin_serve(d, req, rep, is_change(gh->cmd) && peer_may_change(fd, pid, uid), who)) {
		nlmsg_free(rep);
		return;
	}
	nlh = nlmsg_hdr(rep);
	/* Non-blocking: a client that does not read its reply gets none. */
	(void)!send(fd, nlh, nlh->nlmsg_len, MSG_DONTWAIT | MSG_NOSIGNAL);
	nlmsg_free(rep);
}
