// SPDX-License-Identifier: GPL-2.0
/*
 * llmqctl through llmq.ko's generic netlink family, in the QEMU guest:
 * llmqd --transport kernel --engine null registers with the module, which
 * relays every llmqctl command to it.  Every command with its JSON parsed
 * and checked, live configuration seen in the step counter, each error's
 * exit status (an unprivileged caller included), the "events" multicast
 * group, the family's own checks (who may register or reply, attribute
 * policies), and the runtime dying or hanging while a request waits in the
 * relay.
 *
 *   test_llmq_genl LLMQ.KO LLMQD LLMQCTL
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include <linux/genetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "harness.h"
#include "requests.h"
#include "libllmq.h"

/* Not the default path: llmqctl without --socket can only have used netlink. */
#define SOCK		"/tmp/llmqd-genl.sock"
#define PARAM_TIMEOUT	"/sys/module/llmq/parameters/relay_timeout_ms"

static const char *ko_path, *llmqd_path, *ctl_path;
static char out[128 * 1024], err[4096];

/* llmqctl's stderr goes here: one file per uid, which that uid may write. */
static void err_path(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/ctl-%u.err", (unsigned int)getuid());
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Read @fd to its end into @buf (NUL-terminated, truncated to @size). */
static void slurp(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while ((n = read(fd, buf + len, size - 1 - len)) > 0 && len + n < size - 1)
		len += (size_t)n;
	if (n > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

/*
 * Start llmqctl with @argv (NULL-terminated, after the program name), its
 * stdout on a pipe (*@outfd) and its stderr into err_path()'s file.
 */
static pid_t ctl_spawn(const char *const *argv, int *outfd)
{
	const char *a[24] = { ctl_path };
	char path[64];
	int p[2], i, fd;
	pid_t pid;

	for (i = 0; argv[i] && i < 22; i++)
		a[i + 1] = argv[i];
	a[i + 1] = NULL;
	if (pipe(p))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		err_path(path, sizeof(path));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(p[1], 1);
		if (fd >= 0)
			dup2(fd, 2);
		close(p[0]);
		execv(ctl_path, (char *const *)a);
		_exit(127);
	}
	close(p[1]);
	*outfd = p[0];
	return pid;
}

/* Run llmqctl ARGS... (NULL-terminated); its exit status, output in out and err. */
static int ctl(const char *first, ...)
{
	const char *argv[24];
	char path[64];
	va_list ap;
	int i = 0, st, fd;
	pid_t pid;

	argv[i++] = first;
	va_start(ap, first);
	while (i < 23 && (argv[i] = va_arg(ap, const char *)))
		i++;
	va_end(ap);
	argv[i] = NULL;
	pid = ctl_spawn(argv, &fd);
	if (pid < 0)
		return -1;
	slurp(fd, out, sizeof(out));
	close(fd);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	err_path(path, sizeof(path));
	fd = open(path, O_RDONLY);
	err[0] = '\0';
	if (fd >= 0) {
		slurp(fd, err, sizeof(err));
		close(fd);
	}
	if (err[0])
		fprintf(stderr, "  llmqctl %s ...: %s", first, err);
	return WEXITSTATUS(st);
}

/* llmqctl --netlink --json CMD [ARG [ARG]]: the parsed output, or NULL. */
static struct json_object *ctl_json(const char *cmd, const char *a1, const char *a2)
{
	if (ctl("--netlink", "--json", cmd, a1, a2, NULL) != 0)
		return NULL;
	return json_tokener_parse(out);
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		fprintf(stderr, "no integer %s in %s\n", key, out);
		return INT64_MIN;
	}
	return json_object_get_int64(v);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* 1 or 0 for a boolean @key, -1 if there is none. */
static int jbool(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return -1;
	return json_object_get_boolean(v);
}

/*
 * Start llmqd on the null engine over /dev/llmq with @extra arguments
 * (NULL-terminated) and wait until llmqctl reaches it through the module.
 * Returns its pid.
 */
static pid_t llmqd_start(const char *const *extra)
{
	const char *argv[32] = {
		llmqd_path, "--foreground", "--engine", "null", "--socket", SOCK,
		"--transport", "kernel",
	};
	int argc = 8, i, fd;
	uint64_t end;
	pid_t pid;

	for (i = 0; extra && extra[i] && argc < 31; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	if (stat_wait("runtime_attached", 0, 5000))
		return -1;
	unlink(SOCK);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		fd = open("/tmp/llmqd-genl.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(llmqd_path, (char *const *)argv);
		_exit(127);
	}
	/* Attached, then registered: a status through the module answers. */
	for (end = now_ms() + 10000; now_ms() < end; usleep(20000)) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		if (stat_read("runtime_attached") == 1 &&
		    ctl("--netlink", "status", NULL) == 0)
			return pid;
	}
	fprintf(stderr, "llmqd did not register; its log:\n");
	if (system("tail -n 20 /tmp/llmqd-genl.log >&2") < 0)
		perror("system");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static int llmqd_stop(pid_t pid, int sig)
{
	int st;

	kill(pid, sig);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The step counter, through the module. */
static int64_t steps(void)
{
	struct json_object *o = ctl_json("stats", NULL, NULL);
	int64_t v = jint(o, "steps");

	json_object_put(o);
	return v;
}

/*
 * Four one-token requests 60 ms apart (a step of the null engine takes well
 * under a millisecond, even under TCG): how many steps do they take?
 */
static int64_t steps_for_four(void)
{
	int64_t before = steps();

	if (test_generate_n(NULL, 4, 1, 60) != 4)
		return -1;
	return steps() - before;
}

/*
 * Do four requests take @want steps?  Up to three tries: a TCG vCPU the
 * host leaves unscheduled for longer than the gap merges two requests into
 * one step however the window is set.
 */
static bool four_take(int64_t want)
{
	int64_t got = -1;
	int i;

	for (i = 0; i < 3 && got != want; i++) {
		got = steps_for_four();
		if (got != want)
			fprintf(stderr, "four requests took %lld steps, not %lld\n",
				(long long)got, (long long)want);
	}
	return got == want;
}

/*
 * The generic netlink socket of process @pid (its only one): its receive
 * queue's bytes and its first 32 multicast groups, from /proc/net/netlink,
 * found by the inode of a socket among the process's descriptors.  Returns
 * 0, or -1 if it has none.
 */
static int nl_sock_of(pid_t pid, unsigned long *rmem, unsigned long *groups)
{
	unsigned long inodes[64], sk, ino, g, rm;
	unsigned int eth, port, n = 0, i;
	char path[300], link[64], line[256];
	struct dirent *de;
	int ret = -1;
	ssize_t len;
	FILE *f;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((de = readdir(dir)) && n < 64) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) == 1)
			inodes[n++] = ino;
	}
	closedir(dir);
	f = fopen("/proc/net/netlink", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx %u %u %lx %lu %*u %*u %*u %*u %lu", &sk, &eth, &port, &g,
			   &rm, &ino) != 6 || eth != NETLINK_GENERIC)
			continue;
		for (i = 0; i < n; i++)
			if (inodes[i] == ino) {
				*rmem = rm;
				*groups = g;
				ret = 0;
			}
	}
	fclose(f);
	return ret;
}

/* Bytes waiting in @pid's generic netlink socket, or -1. */
static long nl_rmem(pid_t pid)
{
	unsigned long rmem, groups;

	return nl_sock_of(pid, &rmem, &groups) ? -1 : (long)rmem;
}

/* Has @pid's generic netlink socket joined a multicast group (of the first 32)? */
static bool nl_subscribed(pid_t pid)
{
	unsigned long rmem, groups;

	return !nl_sock_of(pid, &rmem, &groups) && groups;
}

/* How many of the @n processes @pids sleep in the module's relay? */
static int in_relay(const pid_t *pids, int n)
{
	char path[64], wchan[64];
	int i, fd, waiting = 0;
	ssize_t len;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pids[i]);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, wchan, sizeof(wchan) - 1);
		close(fd);
		wchan[len > 0 ? len : 0] = '\0';
		if (!strcmp(wchan, "llmq_genl_relay"))
			waiting++;
	}
	return waiting;
}

/* ---- tests ----------------------------------------------------------------- */

static int test_genl_no_runtime(void)
{
	/* The module answers alone: nobody registered. */
	CHECK(ctl("--netlink", "status", NULL) == 5);
	CHECK(strstr(err, "no llmqd is registered with llmq.ko"));
	CHECK(ctl("--netlink", "config", "set", "batch_timeout_ms", "3", NULL) == 5);
	/* Without --netlink it tries the default socket next: not there either. */
	CHECK(ctl("status", NULL) == 5);
	CHECK(strstr(err, "cannot reach llmqd at /run/llmq/llmq.sock"));
	CHECK(ctl("--netlink", "--socket", SOCK, "status", NULL) == 2);
	return 0;
}

static int test_genl_commands(void)
{
	const char *slow[] = { "--null-delay-us", "5000", NULL };
	struct json_object *o, *c;
	static char sock_text[sizeof(out)];
	char pidbuf[32];
	int sync[2], st, found = 0;
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	size_t i;
	pid_t d, kid;
	char x;

	d = llmqd_start(slow);
	CHECK(d > 0);
	CHECK(test_generate_n(NULL, 3, 5, 0) == 15);

	o = ctl_json("status", NULL, NULL);
	CHECK(o);
	CHECK(!strcmp(jstr(o, "transport"), "kernel"));
	CHECK(!strcmp(jstr(o, "engine"), "null"));
	CHECK(strstr(jstr(o, "model"), "null engine"));
	CHECK(jint(o, "uptime_ms") >= 0);
	CHECK(jint(o, "requests_running") == 0 && jint(o, "requests_waiting") == 0);
	CHECK(jint(o, "kv_blocks_total") > 0);
	CHECK(jbool(o, "draining") == 0);
	json_object_put(o);
	/* Without --netlink too: the default socket is not llmqd's, so this was netlink. */
	CHECK(ctl("status", NULL) == 0);
	CHECK(strstr(out, "transport:         kernel\n"));

	o = ctl_json("stats", NULL, NULL);
	CHECK(o);
	CHECK(json_object_object_length(o) == 33);	/* every field of struct llmq_stats */
	CHECK(jint(o, "requests_total") == 3);
	CHECK(jint(o, "tokens_generated") == 15);
	CHECK(jint(o, "ttft_p50_us") > 0);
	json_object_put(o);
	CHECK(ctl("--netlink", "stats", "--prometheus", NULL) == 0);
	CHECK(strstr(out, "\nllmq:generation_tokens_total 15\n"));
	CHECK(strstr(out, "# TYPE llmq:e2e_request_latency_seconds histogram\n"));
	CHECK(strstr(out, "\nllmq:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 3\n"));

	/* Same output over both carriers. */
	CHECK(ctl("--socket", SOCK, "config", "get", NULL) == 0);
	strcpy(sock_text, out);
	CHECK(ctl("--netlink", "config", "get", NULL) == 0);
	CHECK(!strcmp(out, sock_text));
	CHECK(strstr(out, "batch_timeout_ms         2\n"));
	o = ctl_json("config", "get", NULL);
	CHECK(o);
	CHECK(json_object_object_length(o) == 5);
	CHECK(jint(o, "batch_timeout_ms") == 2 && jint(o, "max_num_seqs") == 64);
	json_object_put(o);
	CHECK(ctl("--netlink", "config", "get", "max_queued_requests", NULL) == 0);
	CHECK(!strcmp(out, "4096\n"));

	/* A client with a long request: listed, then cancelled. */
	CHECK(pipe(sync) == 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		struct llmq_sampling sp;

		llmq_sampling_init(&sp);
		sp.max_tokens = 30000;
		sp.flags = LLMQ_SQE_STREAM | LLMQ_SQE_IGNORE_EOS;
		if (llmq_queue_init(&r, NULL, NULL) ||
		    llmq_prep_generate(&r, llmq_get_sqe(&r), "long", 4, &sp, 1) ||
		    llmq_submit(&r) != 1 || llmq_wait_cqe_timeout(&r, &cqe, 10000))
			_exit(1);
		x = 1;
		if (write(sync[1], &x, 1) != 1)
			_exit(1);
		/* Stream until the final CQE: its result is our exit status. */
		for (;;) {
			if (!(cqe->flags & LLMQ_CQE_F_MORE))
				_exit(cqe->res == -ECANCELED ? 0 : 2);
			llmq_cqe_seen(&r, cqe);
			if (llmq_wait_cqe_timeout(&r, &cqe, 20000))
				_exit(3);
		}
	}
	close(sync[1]);
	CHECK(read(sync[0], &x, 1) == 1);
	o = ctl_json("clients", NULL, NULL);
	CHECK(o && json_object_is_type(o, json_type_array));
	for (i = 0; i < json_object_array_length(o); i++) {
		c = json_object_array_get_idx(o, i);
		if (jint(c, "pid") == kid) {
			found = 1;
			CHECK(jint(c, "requests") == 1 && jint(c, "uid") == 0 && jint(c, "id") > 0);
		}
	}
	json_object_put(o);
	CHECK(found);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)kid);
	o = ctl_json("cancel", "--client", pidbuf);
	CHECK(o);
	CHECK(jint(o, "pid") == kid && jint(o, "cancelled") == 1);
	json_object_put(o);
	CHECK(waitpid(kid, &st, 0) == kid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(ctl("--netlink", "cancel", "--client", "999999", NULL) == 1);
	CHECK(strstr(err, "no client with pid 999999"));

	/* Drain: new requests fail, llmqctl still answers. */
	o = ctl_json("drain", NULL, NULL);
	CHECK(o);
	CHECK(jbool(o, "draining") == 1);
	json_object_put(o);
	CHECK(test_generate_n(NULL, 1, 2, 0) == -ESHUTDOWN);
	o = ctl_json("status", NULL, NULL);
	CHECK(jbool(o, "draining") == 1);
	json_object_put(o);

	/* Shutdown: the reply, then llmqd exits 0 and unregisters. */
	o = ctl_json("shutdown", NULL, NULL);
	CHECK(o && json_object_object_length(o) == 0);
	json_object_put(o);
	CHECK(waitpid(d, &st, 0) == d);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(ctl("--netlink", "status", NULL) == 5);
	return 0;
}

static int test_genl_config_live(void)
{
	const char *args[] = { "--batch-timeout-ms", "0", NULL };
	struct json_object *o;
	pid_t d;

	d = llmqd_start(args);
	CHECK(d > 0);
	/* No window: each request its own step. */
	CHECK(four_take(4));
	/* A one-second window: all four in one step, no restart. */
	CHECK(ctl("--netlink", "config", "set", "batch_timeout_ms", "1000", NULL) == 0);
	CHECK(!strcmp(out, "1000\n"));
	CHECK(four_take(1));
	CHECK(ctl("--netlink", "--json", "config", "set", "batch_timeout_ms", "0", NULL) == 0);
	o = json_tokener_parse(out);
	CHECK(jint(o, "batch_timeout_ms") == 0 && jint(o, "max_num_seqs") == 64);
	json_object_put(o);
	CHECK(four_take(4));
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_genl_errors(void)
{
	struct json_object *o;
	int st, p[2];
	char buf[512] = "";
	ssize_t n;
	pid_t d, kid;

	d = llmqd_start(NULL);
	CHECK(d > 0);
	/* A bad key and a non-number: llmqctl's own usage errors, 2. */
	CHECK(ctl("--netlink", "config", "set", "batch_window", "5", NULL) == 2);
	CHECK(strstr(err, "unknown key 'batch_window'"));
	CHECK(ctl("--netlink", "config", "set", "max_num_seqs", "12abc", NULL) == 2);
	CHECK(strstr(err, "not a whole number"));
	/* A negative value: llmqd refuses it through the module, 3. */
	CHECK(ctl("--netlink", "config", "set", "batch_timeout_ms", "-5", NULL) == 3);
	CHECK(strstr(err, "batch_timeout_ms: -5 is out of range 0..60000"));
	CHECK(ctl("--netlink", "config", "set", "max_queued_requests", "2000000", NULL) == 3);
	CHECK(strstr(err, "out of range 1..1048576"));

	/* Unprivileged: reads work, changes are refused by the module, 4. */
	CHECK(pipe(p) == 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		close(p[0]);
		if (setgid(65534) || setuid(65534))
			_exit(90);
		if (ctl("--netlink", "status", NULL) != 0 ||
		    ctl("--netlink", "stats", NULL) != 0 ||
		    ctl("--netlink", "clients", NULL) != 0 ||
		    ctl("--netlink", "config", "get", NULL) != 0)
			_exit(91);
		st = ctl("--netlink", "config", "set", "batch_timeout_ms", "5", NULL);
		(void)!write(p[1], err, strlen(err));
		if (ctl("--netlink", "drain", NULL) != 4 ||
		    ctl("--netlink", "shutdown", NULL) != 4 ||
		    ctl("--netlink", "cancel", "--client", "1", NULL) != 4)
			_exit(92);
		_exit(st);
	}
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	CHECK(waitpid(kid, &st, 0) == kid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4);
	CHECK(strstr(buf, "needs CAP_NET_ADMIN or CAP_SYS_ADMIN"));

	/* None of it changed anything. */
	o = ctl_json("config", "get", NULL);
	CHECK(jint(o, "batch_timeout_ms") == 2 && jint(o, "max_queued_requests") == 4096);
	json_object_put(o);
	o = ctl_json("status", NULL, NULL);
	CHECK(jbool(o, "draining") == 0);
	json_object_put(o);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_genl_monitor(void)
{
	const char *argv[] = { "--netlink", "--json", "monitor", "--count", "2", NULL };
	struct json_object *up, *down;
	struct nl_sock *sk = nl_socket_alloc();
	char text[1024], *nl;
	int fd, st, i, grp;
	pid_t mon, d;

	CHECK(sk && genl_connect(sk) == 0);
	grp = genl_ctrl_resolve_grp(sk, LLMQ_GENL_NAME, LLMQ_GENL_MCGRP_EVENTS);
	nl_socket_free(sk);
	CHECK(grp > 0);
	mon = ctl_spawn(argv, &fd);
	CHECK(mon > 0);
	/* /proc/net/netlink shows the first 32 groups only. */
	if (grp <= 32) {
		for (i = 0; i < 500 && !nl_subscribed(mon); i++)
			usleep(10000);
		CHECK(nl_subscribed(mon));
	} else {
		usleep(500000);
	}
	d = llmqd_start(NULL);
	CHECK(d > 0);
	CHECK(llmqd_stop(d, SIGKILL) == 128 + SIGKILL);
	slurp(fd, text, sizeof(text));
	close(fd);
	CHECK(waitpid(mon, &st, 0) == mon);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* One JSON object per line. */
	nl = strchr(text, '\n');
	CHECK(nl);
	*nl = '\0';
	up = json_tokener_parse(text);
	down = json_tokener_parse(nl + 1);
	CHECK(up && down);
	CHECK(!strcmp(jstr(up, "event"), "up") && jint(up, "pid") == d);
	CHECK(!strcmp(jstr(down, "event"), "down") && jint(down, "pid") == d);
	json_object_put(up);
	json_object_put(down);
	/* Not from a socket. */
	CHECK(ctl("--socket", SOCK, "monitor", NULL) == 2);
	return 0;
}

/* The runtime killed while a request waits in the relay: the caller fails at once. */
static int test_genl_runtime_dies(void)
{
	const char *argv[] = { "--netlink", "status", NULL };
	uint64_t t0;
	int fd, st, i;
	pid_t d, c;

	d = llmqd_start(NULL);
	CHECK(d > 0);
	/* A timeout that cannot be what ends the wait (after_test restores it). */
	fd = open(PARAM_TIMEOUT, O_WRONLY);
	CHECK(fd >= 0 && write(fd, "30000", 5) == 5);
	close(fd);
	CHECK(kill(d, SIGSTOP) == 0);
	c = ctl_spawn(argv, &fd);
	CHECK(c > 0);
	/* The request waits, forwarded, in the stopped runtime's socket. */
	for (i = 0; i < 1000 && in_relay(&c, 1) < 1; i++)
		usleep(10000);
	CHECK(in_relay(&c, 1) == 1 && nl_rmem(d) > 0);
	t0 = now_ms();
	CHECK(llmqd_stop(d, SIGKILL) == 128 + SIGKILL);
	slurp(fd, out, sizeof(out));
	close(fd);
	CHECK(waitpid(c, &st, 0) == c);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5);
	/* Woken by the death, not the clock. */
	CHECK(now_ms() - t0 < 10000);
	fd = open("/tmp/ctl-0.err", O_RDONLY);
	CHECK(fd >= 0);
	slurp(fd, err, sizeof(err));
	close(fd);
	CHECK(strstr(err, "llmqd went away before it answered"));
	CHECK(stat_wait("runtime_attached", 0, 5000) == 0);
	CHECK(ctl("--netlink", "status", NULL) == 5);
	return 0;
}

/*
 * Eight callers wait in the relay at once (the runtime stopped), four
 * commands with replies of four shapes; each gets its own answer when the
 * runtime resumes.
 */
static int test_genl_parallel(void)
{
	static const char *const cmds[4][2] = {
		{ "status", NULL }, { "stats", NULL }, { "config", "get" }, { "clients", NULL },
	};
	static const char *const key[4] = { "transport", "steps", "batch_timeout_ms", NULL };
	const char *argv[6] = { "--netlink", "--json" };
	static char text[8][8192];
	struct json_object *o;
	int fd[8], st, i, n;
	pid_t d, c[8];

	d = llmqd_start(NULL);
	CHECK(d > 0);
	/* Eight processes to start under TCG: time enough (after_test restores it). */
	fd[0] = open(PARAM_TIMEOUT, O_WRONLY);
	CHECK(fd[0] >= 0 && write(fd[0], "30000", 5) == 5);
	close(fd[0]);
	CHECK(kill(d, SIGSTOP) == 0);
	for (i = 0; i < 8; i++) {
		argv[2] = cmds[i % 4][0];
		argv[3] = cmds[i % 4][1];
		c[i] = ctl_spawn(argv, &fd[i]);
		CHECK(c[i] > 0);
	}
	/* Until all eight sleep in the relay, forwarded to the stopped runtime. */
	for (i = 0; i < 2000 && (n = in_relay(c, 8)) < 8; i++)
		usleep(10000);
	CHECK(n == 8);
	CHECK(kill(d, SIGCONT) == 0);
	for (i = 0; i < 8; i++) {
		slurp(fd[i], text[i], sizeof(text[i]));
		close(fd[i]);
		CHECK(waitpid(c[i], &st, 0) == c[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	/* Each the shape of its own command: no answer went to another caller. */
	for (i = 0; i < 8; i++) {
		o = json_tokener_parse(text[i]);
		CHECK(o);
		if (key[i % 4])
			CHECK(json_object_object_get_ex(o, key[i % 4], NULL));
		else
			CHECK(json_object_is_type(o, json_type_array));
		json_object_put(o);
	}
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* A runtime that hangs: the caller gives up after relay_timeout_ms; a late reply is dropped. */
static int test_genl_runtime_hangs(void)
{
	struct json_object *o;
	uint64_t t0;
	int fd;
	pid_t d;

	d = llmqd_start(NULL);
	CHECK(d > 0);
	fd = open(PARAM_TIMEOUT, O_WRONLY);
	CHECK(fd >= 0 && write(fd, "300", 3) == 3);
	close(fd);
	CHECK(kill(d, SIGSTOP) == 0);
	t0 = now_ms();
	CHECK(ctl("--netlink", "config", "set", "batch_timeout_ms", "7", NULL) == 5);
	CHECK(now_ms() - t0 >= 300);
	CHECK(strstr(err, "llmqd did not answer in time"));
	CHECK(kill(d, SIGCONT) == 0);
	/* Its late reply found nobody; llmqd goes on answering the next. */
	fd = open(PARAM_TIMEOUT, O_WRONLY);
	CHECK(fd >= 0 && write(fd, "5000", 4) == 4);
	close(fd);
	o = ctl_json("config", "get", NULL);
	/* The change itself was made: only its answer was late. */
	CHECK(jint(o, "batch_timeout_ms") == 7);
	json_object_put(o);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* Build a message of the family: @cmd, and @attr (u32) unless it is 0. */
static struct nl_msg *family_msg(int family, uint8_t cmd, int attr)
{
	struct nl_msg *m = nlmsg_alloc();

	if (!m || !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, cmd,
			       LLMQ_GENL_VERSION) || (attr && nla_put_u32(m, attr, 1))) {
		nlmsg_free(m);
		return NULL;
	}
	return m;
}

/* The family's own checks: who may register and reply; attribute policies. */
static int test_genl_family_checks(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_msg *m;
	int family;
	pid_t d;

	CHECK(sk && genl_connect(sk) == 0);
	family = genl_ctrl_resolve(sk, LLMQ_GENL_NAME);
	CHECK(family > 0);
	CHECK(genl_ctrl_resolve_grp(sk, LLMQ_GENL_NAME, LLMQ_GENL_MCGRP_EVENTS) > 0);
	/* Not the runtime (none attached, and we are not it). */
	m = family_msg(family, LLMQ_CMD_REGISTER, 0);
	CHECK(m && nl_send_sync(sk, m) == -NLE_PERM);
	d = llmqd_start(NULL);
	CHECK(d > 0);
	m = family_msg(family, LLMQ_CMD_REGISTER, 0);
	CHECK(m && nl_send_sync(sk, m) == -NLE_PERM);
	/* A reply from anyone but the registered runtime. */
	m = family_msg(family, LLMQ_CMD_REPLY, 0);
	CHECK(m && nla_put_u64(m, LLMQ_ATTR_COOKIE, 1) == 0 && nl_send_sync(sk, m) == -NLE_PERM);
	/* Attributes a command does not take, and a malformed one. */
	m = family_msg(family, LLMQ_CMD_GET_STATUS, LLMQ_ATTR_CLIENT_PID);
	CHECK(m && nl_send_sync(sk, m) == -NLE_INVAL);
	m = family_msg(family, LLMQ_CMD_CANCEL_CLIENT, 0);
	CHECK(m && nla_put_u64(m, LLMQ_ATTR_CLIENT_PID, 1) == 0);
	CHECK(nl_send_sync(sk, m) == -NLE_INVAL);
	m = family_msg(family, LLMQ_CMD_SET_CONFIG, 0);
	CHECK(m && nla_put_u64(m, LLMQ_ATTR_CONFIG, 1) == 0);
	CHECK(nl_send_sync(sk, m) == -NLE_INVAL);
	/* Events are the module's to send. */
	m = family_msg(family, LLMQ_CMD_EVENT, 0);
	CHECK(m && nl_send_sync(sk, m) == -NLE_OPNOTSUPP);
	nl_socket_free(sk);
	/* The runtime is still registered and serving. */
	CHECK(ctl("--netlink", "status", NULL) == 0);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* Send a REPLY for @cookie with @st (a struct llmq_stats of @st_len bytes, if any). */
static int fake_reply(struct nl_sock *sk, int family, uint64_t cookie, const void *st,
		      int st_len)
{
	struct nl_msg *m = family_msg(family, LLMQ_CMD_REPLY, 0);

	if (!m || nla_put_u64(m, LLMQ_ATTR_COOKIE, cookie) ||
	    nla_put_u32(m, LLMQ_ATTR_ERRNO, 0) || nla_put_string(m, LLMQ_ATTR_TRANSPORT, "fake") ||
	    nla_put_string(m, LLMQ_ATTR_ENGINE, "test") ||
	    nla_put_string(m, LLMQ_ATTR_MODEL, "a model of the test's") ||
	    nla_put_u64(m, LLMQ_ATTR_UPTIME_MS, 42) ||
	    (st && nla_put(m, LLMQ_ATTR_STATS, st_len, st))) {
		nlmsg_free(m);
		return -NLE_NOMEM;
	}
	return nl_send_sync(sk, m);
}

/*
 * The relay alone, with this process as the runtime: the forwarded request
 * and its cookie, a reply with a wrong cookie ignored, a malformed one
 * refused while the caller waits on, the right one returned verbatim, a
 * second one ignored; the registration ends with the socket.
 */
static int test_genl_fake_runtime(void)
{
	const char *argv[] = { "--netlink", "--json", "status", NULL };
	struct llmq_attach a = { .magic = LLMQ_MAGIC, .version = LLMQ_ABI_VERSION };
	struct nlattr *tb[LLMQ_ATTR_MAX + 1];
	struct nl_sock *sk = nl_socket_alloc();
	struct json_object *o;
	struct sockaddr_nl peer;
	unsigned char *buf = NULL;
	struct nlmsghdr *nlh;
	char stats[sizeof(struct llmq_stats) + 8] = "";
	uint64_t cookie;
	int dev, family, fd, st, n;
	pid_t c;

	dev = open(LLMQ_DEVICE, O_RDWR | O_CLOEXEC);
	CHECK(dev >= 0 && ioctl(dev, LLMQ_IOC_ATTACH, &a) == 0);
	CHECK(sk && genl_connect(sk) == 0);
	family = genl_ctrl_resolve(sk, LLMQ_GENL_NAME);
	CHECK(family > 0);
	CHECK(nl_send_sync(sk, family_msg(family, LLMQ_CMD_REGISTER, 0)) == 0);

	c = ctl_spawn(argv, &fd);
	CHECK(c > 0);
	/* The request, from the kernel, with its command and a cookie. */
	n = nl_recv(sk, &peer, &buf, NULL);
	CHECK(n > 0 && peer.nl_pid == 0);
	nlh = (struct nlmsghdr *)buf;
	CHECK(nlmsg_ok(nlh, n) && nlh->nlmsg_type == family);
	CHECK(((struct genlmsghdr *)nlmsg_data(nlh))->cmd == LLMQ_CMD_GET_STATUS);
	CHECK(genlmsg_parse(nlh, 0, tb, LLMQ_ATTR_MAX, NULL) == 0 && tb[LLMQ_ATTR_COOKIE]);
	cookie = nla_get_u64(tb[LLMQ_ATTR_COOKIE]);
	free(buf);

	CHECK(fake_reply(sk, family, cookie + 1, NULL, 0) == 0);
	/* A binary attribute of the wrong size: out of its policy's range. */
	n = fake_reply(sk, family, cookie, stats, (int)sizeof(stats));
	if (n != -NLE_RANGE)
		fprintf(stderr, "malformed reply: %d (%s)\n", n, nl_geterror(n));
	CHECK(n == -NLE_RANGE);
	CHECK(waitpid(c, &st, WNOHANG) == 0);		/* still waiting */
	CHECK(fake_reply(sk, family, cookie, stats, (int)sizeof(struct llmq_stats)) == 0);
	slurp(fd, out, sizeof(out));
	close(fd);
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	o = json_tokener_parse(out);
	CHECK(o);
	CHECK(!strcmp(jstr(o, "transport"), "fake") && !strcmp(jstr(o, "engine"), "test"));
	CHECK(!strcmp(jstr(o, "model"), "a model of the test's"));
	CHECK(jint(o, "uptime_ms") == 42);
	json_object_put(o);
	/* Answered already: a second reply finds nobody. */
	CHECK(fake_reply(sk, family, cookie, NULL, 0) == 0);

	/* The socket goes: nobody is registered, though the device is attached. */
	nl_socket_free(sk);
	CHECK(ctl("--netlink", "status", NULL) == 5);
	CHECK(strstr(err, "no llmqd is registered"));
	close(dev);
	return 0;
}

/* Last: the module unloads with nothing left behind. */
static int test_genl_rmmod(void)
{
	CHECK(syscall(SYS_delete_module, "llmq", O_NONBLOCK) == 0);
	/* And the family went with it. */
	CHECK(ctl("--netlink", "status", NULL) == 5);
	CHECK(strstr(err, "is the module loaded?"));
	return 0;
}

static const struct vm_test tests[] = {
	VM_TEST(test_genl_no_runtime, 20),
	VM_TEST(test_genl_commands, 60),
	VM_TEST(test_genl_config_live, 60),
	VM_TEST(test_genl_errors, 60),
	VM_TEST(test_genl_monitor, 30),
	VM_TEST(test_genl_parallel, 30),
	VM_TEST(test_genl_runtime_dies, 30),
	VM_TEST(test_genl_runtime_hangs, 30),
	VM_TEST(test_genl_family_checks, 30),
	VM_TEST(test_genl_fake_runtime, 30),
	VM_TEST(test_genl_rmmod, 20),
};

static int after_test(const char *name)
{
	int fd;

	if (!strcmp(name, "test_genl_rmmod"))
		return 0;
	/* A test that failed half-way must not leave the relay impatient. */
	fd = open(PARAM_TIMEOUT, O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "5000", 4);
		close(fd);
	}
	return vm_nothing_left(name, 3000);
}

int main(int argc, char **argv)
{
	int failed;

	if (argc < 4) {
		fprintf(stderr, "usage: %s LLMQ.KO LLMQD LLMQCTL\n", argv[0]);
		return 2;
	}
	ko_path = argv[1];
	llmqd_path = argv[2];
	ctl_path = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vm_insmod(ko_path, "")) {
		perror("finit_module");
		return 1;
	}
	failed = vm_run_tests("llmqctl over generic netlink", tests,
			      sizeof(tests) / sizeof(tests[0]), after_test);
	return failed ? 1 : 0;
}
