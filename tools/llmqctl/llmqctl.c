// SPDX-License-Identifier: GPL-2.0
/*
 * llmqctl: see and steer a running llmqd.  Each command is one generic
 * netlink message of the "llmq" family (include/uapi/linux/llmq.h), built
 * and parsed with libnl, over one of two carriers: generic netlink, where
 * llmq.ko relays it to the llmqd attached to /dev/llmq, or llmqd's admin
 * socket, one message per SOCK_SEQPACKET message, one request per
 * connection.  Without --socket or --netlink the module is asked first and
 * the socket when no llmqd is registered there.
 * Documentation/admin-guide/llmqctl.rst has the commands, exit statuses and
 * JSON shapes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>
#include <linux/genetlink.h>
#include <linux/llmq.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "admin_keys.h"
#include "libllmq.h"
#include "metrics.h"

/* Exit statuses, documented in llmqctl.rst. */
enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,	/* llmqd refused or failed the command */
	EXIT_USAGE	= 2,	/* bad command line, unknown key, not a number */
	EXIT_VALUE	= 3,	/* llmqd rejected the value */
	EXIT_PERM	= 4,	/* not allowed to change llmqd */
	EXIT_CONNECT	= 5,	/* cannot reach llmqd, or a malformed reply */
};

/* How requests travel: --socket, --netlink, or the module then the socket. */
enum carrier {
	CARRIER_AUTO,
	CARRIER_SOCKET,
	CARRIER_NETLINK,
};

/* transact_genl(): no llmqd is registered with the module; try the socket. */
#define TRY_SOCKET	(-1)

static const char *sock_path = LLMQ_DEFAULT_SOCKET;
static enum carrier carrier = CARRIER_AUTO;
static bool json;


#define STAT(f) { #f, offsetof(struct llmq_stats, f), sizeof(((struct llmq_stats *)0)->f) }
static const struct {
	const char	*name;
	size_t		off;
	size_t		size;
} stat_fields[] = {
	STAT(clients_active), STAT(clients_total), STAT(clients_broken),
	STAT(requests_active), STAT(requests_waiting), STAT(requests_total),
	STAT(requests_failed), STAT(requests_cancelled), STAT(steps),
	STAT(tokens_generated), STAT(cqes_posted), STAT(cqes_overflowed),
	STAT(overflow_now), STAT(wakeups), STAT(doorbells), STAT(requests_running),
	STAT(kv_blocks_used), STAT(kv_blocks_total), STAT(preemptions),
	STAT(prefix_cache_queries), STAT(prefix_cache_hits), STAT(prompt_tokens),
	STAT(ttft_p50_us), STAT(ttft_p99_us), STAT(itl_p50_us), STAT(itl_p99_us),
	STAT(e2e_p50_us), STAT(e2e_p99_us), STAT(queue_p50_us), STAT(queue_p99_us),
	STAT(graph_steps), STAT(device_sampled_tokens), STAT(steps_ahead),
};

static struct nla_policy reply_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_ERRNO]		= { .type = NLA_U32 },
	[LLMQ_ATTR_ERRMSG]		= { .type = NLA_STRING },
	[LLMQ_ATTR_TRANSPORT]		= { .type = NLA_STRING },
	[LLMQ_ATTR_ENGINE]		= { .type = NLA_STRING },
	[LLMQ_ATTR_MODEL]		= { .type = NLA_STRING },
	[LLMQ_ATTR_UPTIME_MS]		= { .type = NLA_U64 },
	[LLMQ_ATTR_REQUESTS_RUNNING]	= { .type = NLA_U64 },
	[LLMQ_ATTR_REQUESTS_WAITING]	= { .type = NLA_U64 },
	[LLMQ_ATTR_KV_BLOCKS_USED]	= { .type = NLA_U64 },
	[LLMQ_ATTR_KV_BLOCKS_TOTAL]	= { .type = NLA_U64 },
	[LLMQ_ATTR_TOKENS_PER_SEC_MILLI] = { .type = NLA_U64 },
	[LLMQ_ATTR_DRAINING]		= { .type = NLA_U8 },
	[LLMQ_ATTR_STATS]		= { .minlen = sizeof(struct llmq_stats) },
	[LLMQ_ATTR_HIST_TTFT]		= { .minlen = sizeof(struct llmq_hist) },
	[LLMQ_ATTR_HIST_ITL]		= { .minlen = sizeof(struct llmq_hist) },
	[LLMQ_ATTR_HIST_E2E]		= { .minlen = sizeof(struct llmq_hist) },
	[LLMQ_ATTR_HIST_QUEUE]		= { .minlen = sizeof(struct llmq_hist) },
	[LLMQ_ATTR_HIST_PREFILL]	= { .minlen = sizeof(struct llmq_hist) },
	[LLMQ_ATTR_CLIENT]		= { .type = NLA_NESTED },
	[LLMQ_ATTR_CONFIG]		= { .type = NLA_NESTED },
	[LLMQ_ATTR_CANCELLED]		= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENTS_NEXT]	= { .type = NLA_U64 },
};

static struct nla_policy client_policy[LLMQ_ATTR_MAX + 1] = {
	[LLMQ_ATTR_CLIENT_PID]		= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_UID]		= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_REQUESTS]	= { .type = NLA_U32 },
	[LLMQ_ATTR_CLIENT_TOKENS]	= { .type = NLA_U64 },
	[LLMQ_ATTR_CLIENT_ID]		= { .type = NLA_U64 },
};

static struct nla_policy cfg_policy[LLMQ_CFG_MAX + 1] = {
	[LLMQ_CFG_BATCH_TIMEOUT_MS]	  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_BATCH_SIZE]	  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_NUM_SEQS]		  = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_NUM_BATCHED_TOKENS] = { .type = NLA_U64 },
	[LLMQ_CFG_MAX_QUEUED_REQUESTS]	  = { .type = NLA_U64 },
};

/* A reply: its buffer and the attributes pointing into it. */
struct reply {
	void		*buf;
	struct nlattr	*tb[LLMQ_ATTR_MAX + 1];
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llmqctl [--socket PATH | --netlink] [--json] COMMAND\n"
		"\n"
		"  status                  transport, model, engine, uptime, load\n"
		"  stats [--prometheus]    every counter; or Prometheus text exposition\n"
		"  config get [KEY]        live settings\n"
		"  config set KEY VALUE    change one (root, CAP_NET_ADMIN or CAP_SYS_ADMIN)\n"
		"  clients                 attached clients\n"
		"  cancel --client PID     cancel every request of process PID\n"
		"  drain                   refuse new requests, finish the running ones\n"
		"  shutdown                stop llmqd as SIGTERM does\n"
		"  monitor [--count N]     print llmq.ko's runtime up / down events\n"
		"\n"
		"  --socket PATH   only llmqd's admin socket (default %s)\n"
		"  --netlink       only llmq.ko's generic netlink family\n"
		"                  (default: the family if an llmqd is registered there,\n"
		"                  else the socket)\n"
		"  --json          JSON on stdout\n"
		"\n"
		"keys: batch_timeout_ms, max_batch_size, max_num_seqs, max_num_batched_tokens,\n"
		"      max_queued_requests\n"
		"exit: 0 ok, 1 llmqd refused, 2 usage, 3 bad value, 4 not permitted,\n"
		"      5 cannot reach llmqd\n", LLMQ_DEFAULT_SOCKET);
}

static int die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "llmqctl: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

/* Parse the reply message in @rep->buf (@len bytes); an exit status. */
static int parse_reply(struct reply *rep, size_t len, const char *from)
{
	struct nlmsghdr *nlh = rep->buf;

	if (!nlmsg_ok(nlh, (int)len) ||
	    genlmsg_parse(nlh, 0, rep->tb, LLMQ_ATTR_MAX, reply_policy) ||
	    !rep->tb[LLMQ_ATTR_ERRNO]) {
		fprintf(stderr, "llmqctl: malformed reply from %s (is it an llmqd with the "
			"control plane?)\n", from);
		free(rep->buf);
		rep->buf = NULL;
		return EXIT_CONNECT;
	}
	return EXIT_OK;
}

/* A generic netlink socket to llmq.ko's family, its id in @family; or NULL. */
static struct nl_sock *genl_open(int *family, bool quiet)
{
	struct nl_sock *sk = nl_socket_alloc();
	int err = -NLE_NOMEM;

	if (sk)
		err = genl_connect(sk);
	if (sk && !err)
		err = genl_ctrl_resolve(sk, LLMQ_GENL_NAME);
	if (err < 0) {
		if (!quiet)
			fprintf(stderr, "llmqctl: cannot reach llmq.ko's generic netlink family "
				"\"%s\": %s (is the module loaded?)\n", LLMQ_GENL_NAME,
				nl_geterror(err));
		nl_socket_free(sk);
		return NULL;
	}
	*family = err;
	return sk;
}

/*
 * Send @req to llmq.ko, which relays it to its llmqd.  Returns an exit
 * status, or TRY_SOCKET when @fallback and the family is missing or has no
 * llmqd registered.
 */
static int transact_genl(struct nl_msg *req, struct reply *rep, bool fallback)
{
	struct nlmsghdr *nlh = nlmsg_hdr(req), *m;
	struct sockaddr_nl peer;
	unsigned char *buf = NULL;
	struct nl_sock *sk;
	int family, n, ret = EXIT_CONNECT, err;

	sk = genl_open(&family, fallback);
	if (!sk)
		return fallback ? TRY_SOCKET : EXIT_CONNECT;
	nl_socket_disable_auto_ack(sk);
	nlh->nlmsg_type = (uint16_t)family;
	nlh->nlmsg_seq = NL_AUTO_SEQ;
	err = nl_send_auto(sk, req);
	if (err < 0) {
		fprintf(stderr, "llmqctl: sending to llmq.ko: %s\n", nl_geterror(err));
		goto out;
	}
	/* The reply, or an error from the family itself (policy, no memory). */
	for (;;) {
		n = nl_recv(sk, &peer, &buf, NULL);
		if (n <= 0) {
			fprintf(stderr, "llmqctl: waiting for llmq.ko: %s\n",
				n ? nl_geterror(n) : "no reply");
			goto out;
		}
		for (m = (struct nlmsghdr *)buf; nlmsg_ok(m, n); m = nlmsg_next(m, &n)) {
			if (m->nlmsg_seq != nlh->nlmsg_seq)
				continue;
			if (m->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = nlmsg_data(m);

				fprintf(stderr, "llmqctl: llmq.ko refused the request: %s\n",
					strerror(-e->error));
				ret = e->error == -EPERM ? EXIT_PERM : EXIT_FAIL;
				goto out;
			}
			if (m->nlmsg_type != family)
				continue;
			rep->buf = malloc(m->nlmsg_len);
			if (!rep->buf)
				goto out;
			memcpy(rep->buf, m, m->nlmsg_len);
			ret = parse_reply(rep, m->nlmsg_len, "llmq.ko");
			/* The module's own answer: nobody registered. */
			if (!ret && fallback &&
			    nla_get_u32(rep->tb[LLMQ_ATTR_ERRNO]) == ENOTCONN) {
				free(rep->buf);
				rep->buf = NULL;
				ret = TRY_SOCKET;
			}
			goto out;
		}
		free(buf);
		buf = NULL;
	}
out:
	free(buf);
	nl_socket_free(sk);
	nlh->nlmsg_type = LLMQ_GENL_SOCK_TYPE;
	return ret;
}

/* Send @req over the admin socket; on success @rep holds the parsed reply. */
static int transact_sock(struct nl_msg *req, struct reply *rep)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct nlmsghdr *nlh = nlmsg_hdr(req);
	ssize_t n;
	int fd;

	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "llmqctl: socket path too long: %s\n", sock_path);
		return EXIT_USAGE;
	}
	strcpy(sun.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "llmqctl: cannot reach llmqd at %s: %s\n", sock_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return EXIT_CONNECT;
	}
	if (send(fd, nlh, nlh->nlmsg_len, MSG_NOSIGNAL) != (ssize_t)nlh->nlmsg_len)
		goto io_err;
	n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
	if (n <= 0)
		goto io_err;
	rep->buf = malloc((size_t)n);
	if (!rep->buf || recv(fd, rep->buf, (size_t)n, 0) != n)
		goto io_err;
	close(fd);
	nlh = rep->buf;
	if (nlmsg_ok(nlh, (int)n) && nlh->nlmsg_type == LLMQ_GENL_SOCK_TYPE)
		return parse_reply(rep, (size_t)n, sock_path);
	fprintf(stderr, "llmqctl: malformed reply from llmqd at %s (is it an llmqd with "
		"the control plane?)\n", sock_path);
	free(rep->buf);
	rep->buf = NULL;
	return EXIT_CONNECT;
io_err:
	fprintf(stderr, "llmqctl: talking to llmqd at %s: %s\n", sock_path,
		errno ? strerror(errno) : "connection closed");
	close(fd);
	free(rep->buf);
	rep->buf = NULL;
	return EXIT_CONNECT;
}

/* Send @req by the carrier chosen; on success @rep holds the parsed reply. */
static int transact(struct nl_msg *req, struct reply *rep)
{
	int ret;

	memset(rep, 0, sizeof(*rep));
	if (carrier != CARRIER_SOCKET) {
		ret = transact_genl(req, rep, carrier == CARRIER_AUTO);
		if (ret != TRY_SOCKET)
			return ret;
	}
	return transact_sock(req, rep);
}

static struct nl_msg *new_req(uint8_t cmd)
{
	struct nl_msg *m = nlmsg_alloc();

	if (!m || !genlmsg_put(m, NL_AUTO_PORT, 1, LLMQ_GENL_SOCK_TYPE, 0, NLM_F_REQUEST, cmd,
			       LLMQ_GENL_VERSION)) {
		fprintf(stderr, "llmqctl: out of memory\n");
		exit(EXIT_FAIL);
	}
	return m;
}

/* Send and check llmqd's errno; returns an exit status, the reply in @rep. */
static int call(struct nl_msg *req, struct reply *rep, const char *what)
{
	uint32_t e;
	int ret = transact(req, rep);

	nlmsg_free(req);
	if (ret)
		return ret;
	e = nla_get_u32(rep->tb[LLMQ_ATTR_ERRNO]);
	if (!e)
		return EXIT_OK;
	fprintf(stderr, "llmqctl: %s: %s\n", what, rep->tb[LLMQ_ATTR_ERRMSG] ?
		nla_get_string(rep->tb[LLMQ_ATTR_ERRMSG]) : strerror((int)e));
	if (e == EPERM)
		ret = EXIT_PERM;
	else if (e == ERANGE || e == EINVAL)
		ret = EXIT_VALUE;
	else if (e == ENOTCONN || e == ECONNRESET || e == ETIMEDOUT)
		ret = EXIT_CONNECT;	/* llmq.ko: no llmqd, or it went or hung */
	else
		ret = EXIT_FAIL;
	free(rep->buf);
	rep->buf = NULL;
	return ret;
}

static uint64_t get_u64(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_u64(tb[a]) : 0;
}

static const char *get_str(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_string(tb[a]) : "";
}

static void print_json(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static struct json_object *status_json(struct nlattr **tb)
{
	struct json_object *o = json_object_new_object();
	uint64_t used = get_u64(tb, LLMQ_ATTR_KV_BLOCKS_USED);
	uint64_t total = get_u64(tb, LLMQ_ATTR_KV_BLOCKS_TOTAL);

	json_object_object_add(o, "transport",
			       json_object_new_string(get_str(tb, LLMQ_ATTR_TRANSPORT)));
	json_object_object_add(o, "engine", json_object_new_string(get_str(tb, LLMQ_ATTR_ENGINE)));
	json_object_object_add(o, "model", json_object_new_string(get_str(tb, LLMQ_ATTR_MODEL)));
	json_object_object_add(o, "uptime_ms",
			       json_object_new_int64((int64_t)get_u64(tb, LLMQ_ATTR_UPTIME_MS)));
	json_object_object_add(o, "requests_running",
			       json_object_new_int64((int64_t)get_u64(tb,
						     LLMQ_ATTR_REQUESTS_RUNNING)));
	json_object_object_add(o, "requests_waiting",
			       json_object_new_int64((int64_t)get_u64(tb,
						     LLMQ_ATTR_REQUESTS_WAITING)));
	json_object_object_add(o, "kv_blocks_used", json_object_new_int64((int64_t)used));
	json_object_object_add(o, "kv_blocks_total", json_object_new_int64((int64_t)total));
	json_object_object_add(o, "kv_cache_usage",
			       json_object_new_double(total ? (double)used / total : 0.0));
	json_object_object_add(o, "tokens_per_sec",
			       json_object_new_double(get_u64(tb,
							LLMQ_ATTR_TOKENS_PER_SEC_MILLI) / 1e3));
	json_object_object_add(o, "draining", json_object_new_boolean(
			       tb[LLMQ_ATTR_DRAINING] && nla_get_u8(tb[LLMQ_ATTR_DRAINING])));
	return o;
}

static void status_text(struct nlattr **tb)
{
	uint64_t used = get_u64(tb, LLMQ_ATTR_KV_BLOCKS_USED);
	uint64_t total = get_u64(tb, LLMQ_ATTR_KV_BLOCKS_TOTAL);

	printf("transport:         %s\n", get_str(tb, LLMQ_ATTR_TRANSPORT));
	printf("engine:            %s\n", get_str(tb, LLMQ_ATTR_ENGINE));
	printf("model:             %s\n", get_str(tb, LLMQ_ATTR_MODEL));
	printf("uptime:            %.1f s\n", get_u64(tb, LLMQ_ATTR_UPTIME_MS) / 1e3);
	printf("requests running:  %" PRIu64 "\n", get_u64(tb, LLMQ_ATTR_REQUESTS_RUNNING));
	printf("requests waiting:  %" PRIu64 "\n", get_u64(tb, LLMQ_ATTR_REQUESTS_WAITING));
	printf("kv cache:          %" PRIu64 " / %" PRIu64 " blocks (%.1f%%)\n", used, total,
	       total ? 100.0 * used / total : 0.0);
	printf("tokens/s:          %.1f\n", get_u64(tb, LLMQ_ATTR_TOKENS_PER_SEC_MILLI) / 1e3);
	printf("draining:          %s\n",
	       tb[LLMQ_ATTR_DRAINING] && nla_get_u8(tb[LLMQ_ATTR_DRAINING]) ? "yes" : "no");
}

static int cmd_status(void)
{
	struct reply rep;
	int ret = call(new_req(LLMQ_CMD_GET_STATUS), &rep, "status");

	if (ret)
		return ret;
	if (json)
		print_json(status_json(rep.tb));
	else
		status_text(rep.tb);
	free(rep.buf);
	return EXIT_OK;
}

static uint64_t stat_value(const struct llmq_stats *st, unsigned int i)
{
	const char *p = (const char *)st + stat_fields[i].off;
	uint32_t v32;
	uint64_t v64;

	if (stat_fields[i].size == 4) {
		memcpy(&v32, p, 4);
		return v32;
	}
	memcpy(&v64, p, 8);
	return v64;
}

static int cmd_stats(int argc, char **argv)
{
	static const int hist_attr[] = { LLMQ_ATTR_HIST_TTFT, LLMQ_ATTR_HIST_ITL,
		LLMQ_ATTR_HIST_E2E, LLMQ_ATTR_HIST_QUEUE, LLMQ_ATTR_HIST_PREFILL };
	struct serve_metrics m;
	struct hist *hists[] = { &m.ttft, &m.itl, &m.e2e, &m.queue, &m.prefill };
	struct llmq_stats st;
	struct json_object *o;
	struct reply rep;
	bool prom = false;
	unsigned int i;
	int ret;

	if (argc == 2 && !strcmp(argv[1], "--prometheus"))
		prom = true;
	else if (argc != 1)
		return die_usage("usage: llmqctl stats [--prometheus]%s", "");
	if (prom && json)
		return die_usage("stats: --prometheus and --json exclude each other%s", "");
	ret = call(new_req(LLMQ_CMD_GET_STATS), &rep, "stats");
	if (ret)
		return ret;
	if (!rep.tb[LLMQ_ATTR_STATS]) {
		fprintf(stderr, "llmqctl: stats: the reply has no counters\n");
		free(rep.buf);
		return EXIT_CONNECT;
	}
	memcpy(&st, nla_data(rep.tb[LLMQ_ATTR_STATS]), sizeof(st));
	if (prom) {
		memset(&m, 0, sizeof(m));
		for (i = 0; i < sizeof(hist_attr) / sizeof(hist_attr[0]); i++)
			if (rep.tb[hist_attr[i]])
				memcpy(hists[i], nla_data(rep.tb[hist_attr[i]]), sizeof(*hists[i]));
		metrics_print(stdout, &st, &m);
	} else if (json) {
		o = json_object_new_object();
		for (i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
			json_object_object_add(o, stat_fields[i].name,
					       json_object_new_int64((int64_t)stat_value(&st, i)));
		print_json(o);
	} else {
		for (i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
			printf("%-22s %" PRIu64 "\n", stat_fields[i].name, stat_value(&st, i));
	}
	free(rep.buf);
	return EXIT_OK;
}

static int cfg_key(const char *name)
{
	int i;

	for (i = 0; i < (int)ADMIN_NR_KEYS; i++)
		if (!strcmp(admin_keys[i].name, name))
			return admin_keys[i].attr;
	return 0;
}

/* Print the settings in @rep, all of them or only @only. */
static int show_config(struct reply *rep, int only)
{
	struct nlattr *ctb[LLMQ_CFG_MAX + 1];
	struct json_object *o = json ? json_object_new_object() : NULL;
	int i;

	if (!rep->tb[LLMQ_ATTR_CONFIG] ||
	    nla_parse_nested(ctb, LLMQ_CFG_MAX, rep->tb[LLMQ_ATTR_CONFIG], cfg_policy)) {
		fprintf(stderr, "llmqctl: config: malformed reply\n");
		json_object_put(o);
		return EXIT_CONNECT;
	}
	for (i = 0; i < (int)ADMIN_NR_KEYS; i++) {
		const struct admin_key *k = &admin_keys[i];
		int64_t v;

		if ((only && k->attr != only) || !ctb[k->attr])
			continue;
		v = (int64_t)nla_get_u64(ctb[k->attr]);
		if (o)
			json_object_object_add(o, k->name, json_object_new_int64(v));
		else if (only)
			printf("%" PRId64 "\n", v);
		else
			printf("%-24s %" PRId64 "\n", k->name, v);
	}
	if (o)
		print_json(o);
	return EXIT_OK;
}

static int cmd_config(int argc, char **argv)
{
	struct nlattr *nest;
	struct nl_msg *req;
	struct reply rep;
	long long v;
	char *end;
	int key = 0, ret;

	if (argc >= 2 && !strcmp(argv[1], "get") && argc <= 3) {
		if (argc == 3)
			key = cfg_key(argv[2]);
		if (argc == 3 && !key)
			return die_usage("config: unknown key '%s' (batch_timeout_ms, "
					 "max_batch_size, max_num_seqs, max_num_batched_tokens, "
					 "max_queued_requests)", argv[2]);
		ret = call(new_req(LLMQ_CMD_GET_CONFIG), &rep, "config get");
		if (ret)
			return ret;
		ret = show_config(&rep, key);
		free(rep.buf);
		return ret;
	}
	if (argc != 4 || strcmp(argv[1], "set"))
		return die_usage("usage: llmqctl config get [KEY] | config set KEY VALUE%s", "");
	key = cfg_key(argv[2]);
	if (!key)
		return die_usage("config: unknown key '%s' (batch_timeout_ms, max_batch_size, "
				 "max_num_seqs, max_num_batched_tokens, max_queued_requests)",
				 argv[2]);
	errno = 0;
	v = strtoll(argv[3], &end, 10);
	if (errno || end == argv[3] || *end)
		return die_usage("config set: '%s' is not a whole number", argv[3]);
	req = new_req(LLMQ_CMD_SET_CONFIG);
	nest = nla_nest_start(req, LLMQ_ATTR_CONFIG);
	if (!nest || nla_put_u64(req, key, (uint64_t)v)) {
		nlmsg_free(req);
		return EXIT_FAIL;
	}
	nla_nest_end(req, nest);
	ret = call(req, &rep, "config set");
	if (ret)
		return ret;
	ret = show_config(&rep, json ? 0 : key);
	free(rep.buf);
	return ret;
}

/* Print the clients of one GET_CLIENTS reply, or add them to @arr. */
static void show_clients(struct reply *rep, struct json_object *arr)
{
	struct nlattr *ctb[LLMQ_ATTR_MAX + 1], *a;
	struct nlmsghdr *nlh = rep->buf;
	struct json_object *o;
	int rem;

	nlmsg_for_each_attr(a, nlh, GENL_HDRLEN, rem) {
		if (nla_type(a) != LLMQ_ATTR_CLIENT ||
		    nla_parse_nested(ctb, LLMQ_ATTR_MAX, a, client_policy))
			continue;
		if (!arr) {
			printf("%8" PRIu64 " %8" PRIu64 " %10" PRIu64 " %12" PRIu64 "\n",
			       ctb[LLMQ_ATTR_CLIENT_PID] ? nla_get_u32(ctb[LLMQ_ATTR_CLIENT_PID]) :
			       (uint64_t)0,
			       ctb[LLMQ_ATTR_CLIENT_UID] ? nla_get_u32(ctb[LLMQ_ATTR_CLIENT_UID]) :
			       (uint64_t)0,
			       ctb[LLMQ_ATTR_CLIENT_REQUESTS] ?
			       nla_get_u32(ctb[LLMQ_ATTR_CLIENT_REQUESTS]) : (uint64_t)0,
			       get_u64(ctb, LLMQ_ATTR_CLIENT_TOKENS));
			continue;
		}
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_int64(
				       (int64_t)get_u64(ctb, LLMQ_ATTR_CLIENT_ID)));
		json_object_object_add(o, "pid", json_object_new_int64(ctb[LLMQ_ATTR_CLIENT_PID] ?
				       nla_get_u32(ctb[LLMQ_ATTR_CLIENT_PID]) : 0));
		json_object_object_add(o, "uid", json_object_new_int64(ctb[LLMQ_ATTR_CLIENT_UID] ?
				       nla_get_u32(ctb[LLMQ_ATTR_CLIENT_UID]) : 0));
		json_object_object_add(o, "requests", json_object_new_int64(
				       ctb[LLMQ_ATTR_CLIENT_REQUESTS] ?
				       nla_get_u32(ctb[LLMQ_ATTR_CLIENT_REQUESTS]) : 0));
		json_object_object_add(o, "tokens", json_object_new_int64(
				       (int64_t)get_u64(ctb, LLMQ_ATTR_CLIENT_TOKENS)));
		json_object_array_add(arr, o);
	}
}

/*
 * A reply holds as many clients as fit in 64 KiB; LLMQ_ATTR_CLIENTS_NEXT
 * says where the next one starts.  Every page is fetched before anything
 * is printed, so that a failure part way prints nothing.
 */
static int cmd_clients(void)
{
	struct reply *pages = NULL, *p;
	struct json_object *arr;
	struct nl_msg *req;
	uint64_t start = 0, next;
	size_t n = 0, i;
	int ret;

	for (;;) {
		p = realloc(pages, (n + 1) * sizeof(*pages));
		if (!p) {
			fprintf(stderr, "llmqctl: out of memory\n");
			ret = EXIT_FAIL;
			goto out;
		}
		pages = p;
		req = new_req(LLMQ_CMD_GET_CLIENTS);
		/* None on the first page: an llmqd or llmq.ko without paging takes none. */
		if (start && nla_put_u64(req, LLMQ_ATTR_CLIENTS_START, start)) {
			nlmsg_free(req);
			ret = EXIT_FAIL;
			goto out;
		}
		ret = call(req, &pages[n], "clients");
		if (ret)
			goto out;
		p = &pages[n++];
		if (!p->tb[LLMQ_ATTR_CLIENTS_NEXT])
			break;
		next = nla_get_u64(p->tb[LLMQ_ATTR_CLIENTS_NEXT]);
		if (next <= start) {
			fprintf(stderr, "llmqctl: clients: malformed reply (the list does not go "
				"on from client %" PRIu64 ")\n", start);
			ret = EXIT_CONNECT;
			goto out;
		}
		start = next;
	}
	arr = json ? json_object_new_array() : NULL;
	if (!arr)
		printf("%8s %8s %10s %12s\n", "PID", "UID", "REQUESTS", "TOKENS");
	for (i = 0; i < n; i++)
		show_clients(&pages[i], arr);
	if (arr)
		print_json(arr);
out:
	for (i = 0; i < n; i++)
		free(pages[i].buf);
	free(pages);
	return ret;
}

static int cmd_cancel(int argc, char **argv)
{
	struct json_object *o;
	struct nl_msg *req;
	struct reply rep;
	unsigned long pid;
	uint32_t n;
	char *end;
	int ret;

	if (argc != 3 || strcmp(argv[1], "--client"))
		return die_usage("usage: llmqctl cancel --client PID%s", "");
	errno = 0;
	pid = strtoul(argv[2], &end, 10);
	if (errno || end == argv[2] || *end || !pid || pid > INT_MAX || argv[2][0] == '-')
		return die_usage("cancel: '%s' is not a process id", argv[2]);
	req = new_req(LLMQ_CMD_CANCEL_CLIENT);
	if (nla_put_u32(req, LLMQ_ATTR_CLIENT_PID, (uint32_t)pid)) {
		nlmsg_free(req);
		return EXIT_FAIL;
	}
	ret = call(req, &rep, "cancel");
	if (ret)
		return ret;
	n = rep.tb[LLMQ_ATTR_CANCELLED] ? nla_get_u32(rep.tb[LLMQ_ATTR_CANCELLED]) : 0;
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "pid", json_object_new_int64((int64_t)pid));
		json_object_object_add(o, "cancelled", json_object_new_int64(n));
		print_json(o);
	} else {
		printf("cancelled %u request%s of pid %lu\n", n, n == 1 ? "" : "s", pid);
	}
	free(rep.buf);
	return EXIT_OK;
}

static int cmd_simple(uint8_t cmd, const char *what)
{
	struct reply rep;
	int ret = call(new_req(cmd), &rep, what);

	if (ret)
		return ret;
	if (cmd == LLMQ_CMD_DRAIN) {
		if (json)
			print_json(status_json(rep.tb));
		else
			printf("draining: new requests fail with ESHUTDOWN; %" PRIu64
			       " running, %" PRIu64 " waiting will finish\n",
			       get_u64(rep.tb, LLMQ_ATTR_REQUESTS_RUNNING),
			       get_u64(rep.tb, LLMQ_ATTR_REQUESTS_WAITING));
	} else if (json) {
		print_json(json_object_new_object());
	} else {
		printf("llmqd is shutting down\n");
	}
	free(rep.buf);
	return EXIT_OK;
}

/* What monitor counts, and the family its events must come from. */
struct monitor {
	int		family;
	unsigned long	seen;
};

static int on_event(struct nl_msg *msg, void *arg)
{
	static struct nla_policy policy[LLMQ_ATTR_MAX + 1] = {
		[LLMQ_ATTR_EVENT]	= { .type = NLA_U32 },
		[LLMQ_ATTR_RUNTIME_PID]	= { .type = NLA_U32 },
	};
	struct nlattr *tb[LLMQ_ATTR_MAX + 1];
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct monitor *mon = arg;
	struct json_object *o;
	const char *what;
	uint32_t pid;

	if (nlh->nlmsg_type != mon->family || !genlmsg_valid_hdr(nlh, 0) ||
	    ((struct genlmsghdr *)nlmsg_data(nlh))->cmd != LLMQ_CMD_EVENT ||
	    genlmsg_parse(nlh, 0, tb, LLMQ_ATTR_MAX, policy) || !tb[LLMQ_ATTR_EVENT])
		return NL_SKIP;
	switch (nla_get_u32(tb[LLMQ_ATTR_EVENT])) {
	case LLMQ_EVENT_RUNTIME_UP:
		what = "up";
		break;
	case LLMQ_EVENT_RUNTIME_DOWN:
		what = "down";
		break;
	default:
		return NL_SKIP;		/* a newer module's: not ours to guess */
	}
	pid = tb[LLMQ_ATTR_RUNTIME_PID] ? nla_get_u32(tb[LLMQ_ATTR_RUNTIME_PID]) : 0;
	if (json) {
		/* One object per line, so that a reader can take them as they come. */
		o = json_object_new_object();
		json_object_object_add(o, "event", json_object_new_string(what));
		json_object_object_add(o, "pid", json_object_new_int64(pid));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		printf("runtime %s pid %u\n", what, pid);
	}
	fflush(stdout);
	mon->seen++;
	return NL_OK;
}

/* Print the "events" group's messages as they come, @count of them (0: for ever). */
static int cmd_monitor(int argc, char **argv)
{
	struct monitor mon = { 0 };
	unsigned long count = 0;
	struct nl_sock *sk;
	char *end;
	int grp, err;

	if (argc == 3 && !strcmp(argv[1], "--count")) {
		errno = 0;
		count = strtoul(argv[2], &end, 10);
		if (errno || end == argv[2] || *end || argv[2][0] == '-' || !count)
			return die_usage("monitor: '%s' is not a positive count", argv[2]);
	} else if (argc != 1) {
		return die_usage("usage: llmqctl monitor [--count N]%s", "");
	}
	if (carrier == CARRIER_SOCKET)
		return die_usage("monitor: events come from llmq.ko's generic netlink family, "
				 "not from a socket%s", "");
	sk = genl_open(&mon.family, false);
	if (!sk)
		return EXIT_CONNECT;
	grp = genl_ctrl_resolve_grp(sk, LLMQ_GENL_NAME, LLMQ_GENL_MCGRP_EVENTS);
	err = grp < 0 ? grp : nl_socket_add_membership(sk, grp);
	if (err) {
		fprintf(stderr, "llmqctl: monitor: cannot join the \"%s\" group: %s\n",
			LLMQ_GENL_MCGRP_EVENTS, nl_geterror(err));
		nl_socket_free(sk);
		return EXIT_CONNECT;
	}
	nl_socket_disable_seq_check(sk);
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_event, &mon);
	while (!count || mon.seen < count) {
		err = nl_recvmsgs_default(sk);
		if (err < 0) {
			fprintf(stderr, "llmqctl: monitor: %s\n", nl_geterror(err));
			nl_socket_free(sk);
			return EXIT_CONNECT;
		}
	}
	nl_socket_free(sk);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket",	required_argument, NULL, 's' },
		{ "netlink",	no_argument,	   NULL, 'n' },
		{ "json",	no_argument,	   NULL, 'j' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cmd;
	int c;

	/* Options stop at the command: its own follow it. */
	while ((c = getopt_long(argc, argv, "+s:njh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg)
				return die_usage("--socket: '%s' is empty", optarg);
			sock_path = optarg;
			if (carrier == CARRIER_NETLINK)
				return die_usage("--socket and --netlink exclude each other%s", "");
			carrier = CARRIER_SOCKET;
			break;
		case 'n':
			if (carrier == CARRIER_SOCKET)
				return die_usage("--socket and --netlink exclude each other%s", "");
			carrier = CARRIER_NETLINK;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	cmd = argv[0];
	if (!strcmp(cmd, "status") && argc == 1)
		return cmd_status();
	if (!strcmp(cmd, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(cmd, "config"))
		return cmd_config(argc, argv);
	if (!strcmp(cmd, "clients") && argc == 1)
		return cmd_clients();
	if (!strcmp(cmd, "cancel"))
		return cmd_cancel(argc, argv);
	if (!strcmp(cmd, "drain") && argc == 1)
		return cmd_simple(LLMQ_CMD_DRAIN, "drain");
	if (!strcmp(cmd, "shutdown") && argc == 1)
		return cmd_simple(LLMQ_CMD_SHUTDOWN, "shutdown");
	if (!strcmp(cmd, "monitor"))
		return cmd_monitor(argc, argv);
	fprintf(stderr, "llmqctl: unknown command or arguments: %s\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
