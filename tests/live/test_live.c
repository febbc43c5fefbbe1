// SPDX-License-Identifier: GPL-2.0
/*
 * Live tests: real llmqd processes on private sockets, real client processes
 * with their own rings.  Streams, bad entries, dying and slow clients, the
 * batch window, shutdown, and the command-line tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "null_model.h"
#include "libllmq.h"
#include "requests.h"
#include "ring.h"
#include "uds.h"

#define WAIT_MS 10000

static struct daemon fast, slow, capped, window;

static const char *const fast_args[] = { "--batch-timeout-ms", "1", NULL };
static const char *const slow_args[] = { "--null-delay-us", "2000", "--batch-timeout-ms", "0",
					 NULL };
static const char *const capped_args[] = { "--max-cq-overflow", "64", "--batch-timeout-ms",
					   "0", NULL };
static const char *const window_args[] = { "--batch-timeout-ms", "300", "--max-batch-size",
					   "4", "--poll-us", "0", NULL };

/*
 * The four configurations most tests share.  Over the userspace transport
 * they all run for the whole suite; over /dev/llmq, which takes one runtime
 * at a time, use() starts the one a test needs and stops the others.
 */
static const struct fixture {
	struct daemon		*d;
	const char		*name;
	const char *const	*args;
} fixtures[] = {
	{ &fast, "fast", fast_args },
	{ &slow, "slow", slow_args },
	{ &capped, "capped", capped_args },
	{ &window, "window", window_args },
};

#define NR_FIXTURES	(sizeof(fixtures) / sizeof(fixtures[0]))

/* Stop every shared daemon but @keep (NULL: all of them). */
static void park(const struct daemon *keep)
{
	unsigned int i;

	for (i = 0; i < NR_FIXTURES; i++)
		if (fixtures[i].d != keep && fixtures[i].d->pid > 0)
			daemon_stop(fixtures[i].d, SIGTERM);
}

/* Make @d, one of the shared daemons, the one serving. */
static void use(struct daemon *d)
{
	unsigned int i;

	if (d->pid > 0)
		return;
	park(d);
	for (i = 0; i < NR_FIXTURES; i++)
		if (fixtures[i].d == d)
			assert_int_equal(daemon_start(d, fixtures[i].name, fixtures[i].args), 0);
}

/* A test with its own daemon: on /dev/llmq the shared ones must make room. */
static void own_daemon(void)
{
	if (harness_kernel)
		park(NULL);
}

static int setup(void **state)
{
	unsigned int i;

	(void)state;
	if (harness_kernel)
		return 0;
	for (i = 0; i < NR_FIXTURES; i++)
		if (daemon_start(fixtures[i].d, fixtures[i].name, fixtures[i].args)) {
			fprintf(stderr, "cannot start llmqd from %s\n", harness_bin_dir);
			return -1;
		}
	return 0;
}

static int teardown(void **state)
{
	unsigned int i;

	(void)state;
	for (i = 0; i < NR_FIXTURES; i++)
		daemon_stop(fixtures[i].d, SIGKILL);
	return 0;
}

static struct llmq_params geometry(uint32_t sq, uint32_t cq)
{
	return (struct llmq_params){ .sq_entries = sq, .cq_entries = cq, .arena_size = 65536 };
}

/**
 * struct result - what one request delivered
 */
struct result {
	int	res;
	int	finish;
	int	tokens;
	int	cqes;
	int	bad;		/* invariant violations */
	char	text[8192];
	size_t	text_len;
	uint32_t ids[4096];	/* streamed token ids, the first 4096 */
};

/* Did @res stream exactly the null engine's tokens for @prompt? */
static int null_matches(const struct result *res, const char *prompt)
{
	static uint32_t want[4096];
	int n = res->tokens < 4096 ? res->tokens : 4096;

	null_expect(prompt, n, want);
	return !memcmp(res->ids, want, n * sizeof(*want));
}

/* Reap CQEs of @ud until its final one, checking order and continuity. */
static int collect(struct llmq_ring *r, uint64_t ud, struct result *out)
{
	struct llmq_cqe *cqe;
	int err;

	memset(out, 0, sizeof(*out));
	for (;;) {
		err = llmq_wait_cqe_timeout(r, &cqe, WAIT_MS);
		if (err)
			return err;
		if (cqe->user_data != ud) {
			out->bad++;
			llmq_cqe_seen(r, cqe);
			continue;
		}
		if ((int)cqe->index != out->cqes)
			out->bad++;
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			out->res = cqe->res;
			out->finish = cqe->finish;
			llmq_cqe_seen(r, cqe);
			return 0;
		}
		if (cqe->flags & LLMQ_CQE_F_TOKEN) {
			if (out->tokens < 4096)
				out->ids[out->tokens] = cqe->token;
			out->tokens++;
		}
		if (out->text_len + cqe->text_len < sizeof(out->text)) {
			memcpy(out->text + out->text_len, cqe->text, cqe->text_len);
			out->text_len += cqe->text_len;
		}
		out->cqes++;
		llmq_cqe_seen(r, cqe);
	}
}

/* ---- many clients at once ---------------------------------------------- */

#define MANY_CLIENTS	64
#define MANY_REQS	200
#define MANY_WINDOW	8

struct track {
	uint32_t want, got;
	uint32_t ids[12];
	bool done;
};

/* One client process: 200 requests, 8 in flight, every CQE checked. */
static int many_child(const char *sock, int id)
{
	struct llmq_params p = geometry(16, 256);
	struct track t[MANY_REQS];
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	int sub = 0, done = 0, inflight = 0, err, k;
	char prompt[64];

	memset(t, 0, sizeof(t));
	if (llmq_queue_init(&r, sock, &p))
		return 10;
	while (done < MANY_REQS) {
		while (inflight < MANY_WINDOW && sub < MANY_REQS) {
			k = sub;
			t[k].want = 1 + (uint32_t)(k * 7 + id) % 12;
			snprintf(prompt, sizeof(prompt), "client %d request %d", id, k);
			null_expect(prompt, t[k].want, t[k].ids);
			if (test_submit_gen(&r, prompt, t[k].want, LLMQ_SQE_STREAM, (uint64_t)k))
				return 11;
			sub++;
			inflight++;
		}
		err = llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS);
		if (err)
			return 12;
		if (cqe->user_data >= (uint64_t)sub || t[cqe->user_data].done)
			return 13;		/* unknown, or after its final CQE */
		k = (int)cqe->user_data;
		if (cqe->index != t[k].got)
			return 14;		/* lost, duplicated or reordered */
		if (cqe->flags & LLMQ_CQE_F_MORE) {
			if (!(cqe->flags & LLMQ_CQE_F_TOKEN) || !cqe->text_len)
				return 15;
			if (t[k].got >= t[k].want || cqe->token != t[k].ids[t[k].got])
				return 16;	/* not this prompt's token */
			t[k].got++;
		} else {
			if (cqe->res != (int)t[k].want || t[k].got != t[k].want ||
			    cqe->finish != LLMQ_FINISH_LENGTH)
				return 17;
			t[k].done = true;
			done++;
			inflight--;
		}
		llmq_cqe_seen(&r, cqe);
	}
	llmq_queue_exit(&r);
	return 0;
}

static int idle_cond(const struct llmq_stats *st, void *arg)
{
	(void)arg;
	return st->clients_active == 0 && st->requests_active == 0;
}

static void test_many_clients(void **state)
{
	struct llmq_stats before, after;
	pid_t pids[MANY_CLIENTS];
	int i, st, failed = 0;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_get_stats(fast.sock, &before), 0);
	for (i = 0; i < MANY_CLIENTS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i])
			_exit(many_child(daemon_ring(&fast), i));
	}
	for (i = 0; i < MANY_CLIENTS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			print_error("client %d failed: status %d\n", i, st);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
	assert_int_equal(stats_wait(fast.sock, idle_cond, NULL, WAIT_MS, &after), 0);
	assert_int_equal(after.requests_total - before.requests_total,
			 MANY_CLIENTS * MANY_REQS);
	assert_int_equal(after.requests_failed, before.requests_failed);
	/* Batching happened: far fewer steps than tokens. */
	assert_true(after.steps - before.steps <
		    (after.tokens_generated - before.tokens_generated) / 2);
}

/* ---- output forms --------------------------------------------------------- */

static void test_stream_and_packed_agree(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct result a, b;
	struct llmq_ring r;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	assert_int_equal(test_submit_gen(&r, "same prompt", 100, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&r, 1, &a), 0);
	assert_int_equal(test_submit_gen(&r, "same prompt", 100, 0, 2), 0);
	assert_int_equal(collect(&r, 2, &b), 0);
	assert_int_equal(a.bad + b.bad, 0);
	assert_int_equal(a.res, 100);
	assert_int_equal(b.res, 100);
	assert_int_equal(a.tokens, 100);
	assert_true(null_matches(&a, "same prompt"));
	assert_int_equal(b.tokens, 0);		/* packed text carries no ids */
	assert_true(b.cqes < a.cqes);		/* ... in fewer CQEs */
	assert_int_equal(a.text_len, b.text_len);
	assert_memory_equal(a.text, b.text, a.text_len);
	llmq_queue_exit(&r);
}

static void test_stop_id_and_nop(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_sampling sp;
	struct llmq_ring r;
	struct llmq_sqe *sqe;
	struct result a, b;
	uint32_t stop, want;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	assert_int_equal(test_submit_gen(&r, "stop here", 10, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&r, 1, &a), 0);
	/* Stop at the 4th token: what precedes it is delivered, the stop id is not. */
	assert_true(null_matches(&a, "stop here"));
	stop = a.ids[3];
	for (want = 0; a.ids[want] != stop; want++)
		;
	llmq_sampling_init(&sp);
	sp.max_tokens = 10;
	sp.stop_ids = &stop;
	sp.nr_stop_ids = 1;
	sqe = llmq_get_sqe(&r);
	assert_int_equal(llmq_prep_generate(&r, sqe, "stop here", 9, &sp, 2), 0);
	assert_int_equal(llmq_submit(&r), 1);
	assert_int_equal(collect(&r, 2, &b), 0);
	assert_int_equal(b.res, want);
	assert_int_equal(b.tokens, want);
	assert_int_equal(b.finish, LLMQ_FINISH_STOP);

	sqe = llmq_get_sqe(&r);
	llmq_prep_nop(sqe, 9);
	assert_int_equal(llmq_submit(&r), 1);
	assert_int_equal(collect(&r, 9, &a), 0);
	assert_int_equal(a.res, 0);
	assert_int_equal(a.cqes, 0);
	llmq_queue_exit(&r);
}

/* ---- bad entries ------------------------------------------------------------- */

static int raw_result(struct llmq_ring *r, const struct llmq_sqe *tmpl)
{
	struct llmq_sqe *sqe = llmq_get_sqe(r);
	struct result res;

	if (!sqe)
		return -1000;
	*sqe = *tmpl;
	if (llmq_submit(r) != 1 || collect(r, tmpl->user_data, &res))
		return -1001;
	return res.res;
}

static void test_bad_sqes(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_ring r, other;
	struct llmq_sqe s;
	struct result res;
	int i;
	static const struct {
		const char *what;
		int field, err;
	} rows[] = {
		{ "unknown opcode", 0, -EOPNOTSUPP },
		{ "prompt outside the arena", 1, -EFAULT },
		{ "offset + length overflow", 2, -EOVERFLOW },
		{ "temperature out of range", 3, -ERANGE },
		{ "reserved field set", 4, -EINVAL },
		{ "unknown flag", 5, -EINVAL },
		{ "prompt not UTF-8", 6, -EILSEQ },
		{ "prompt too long", 7, -E2BIG },
		{ "stop list without NUL", 8, -EINVAL },
		{ "cancel of nothing", 9, -ENOENT },
		{ "max_tokens over the limit", 10, -ERANGE },
	};

	(void)state;
	use(&fast);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	assert_int_equal(llmq_queue_init(&other, daemon_ring(&fast), &p), 0);
	memcpy(r.arena, "hello\xff\xfe", 7);
	memcpy(r.arena + 100, "stop", 4);
	for (i = 0; i < (int)(sizeof(rows) / sizeof(rows[0])); i++) {
		memset(&s, 0, sizeof(s));
		s.opcode = LLMQ_OP_GENERATE;
		s.user_data = 100 + (uint64_t)i;
		s.prompt_len = 5;
		switch (rows[i].field) {
		case 0: s.opcode = 77; break;
		case 1: s.prompt_off = 65534; break;
		case 2: s.prompt_off = 0xffffffffu; break;
		case 3: s.temperature = 101 * LLMQ_FP_ONE; break;
		case 4: s.resv[4] = 1; break;
		case 5: s.flags = 0x40; break;
		case 6: s.prompt_len = 7; break;
		case 7: s.prompt_len = (1 << 20) + 1; break;
		case 8: s.stop_off = 100; s.stop_len = 4; break;
		case 9:
			memset(&s, 0, sizeof(s));
			s.opcode = LLMQ_OP_CANCEL;
			s.user_data = 109;
			s.target = 12345;
			break;
		case 10: s.max_tokens = 40000; break;
		}
		if (raw_result(&r, &s) != rows[i].err) {
			print_error("%s: want %d\n", rows[i].what, rows[i].err);
			fail();
		}
	}
	/* The ring still works, and so does everyone else's. */
	assert_int_equal(test_submit_gen(&r, "still fine", 5, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&r, 1, &res), 0);
	assert_int_equal(res.res, 5);
	assert_int_equal(test_submit_gen(&other, "me too", 5, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&other, 1, &res), 0);
	assert_int_equal(res.res, 5);
	llmq_queue_exit(&r);
	llmq_queue_exit(&other);
}

/* A client scribbling over its indices loses its ring and nothing else. */
static void test_scribbler(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_stats before, after;
	struct llmq_ring bad, good;
	struct llmq_cqe *cqe;
	struct result res;
	uint64_t one = 1;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_get_stats(fast.sock, &before), 0);
	assert_int_equal(llmq_queue_init(&bad, daemon_ring(&fast), &p), 0);
	assert_int_equal(llmq_queue_init(&good, daemon_ring(&fast), &p), 0);
	bad.hdr->sq_tail = bad.hdr->sq_head + 1000;
	assert_int_equal(write(bad.doorbell_fd, &one, 8), 8);
	assert_int_equal(llmq_wait_cqe_timeout(&bad, &cqe, WAIT_MS), -EPROTO);
	assert_true(bad.hdr->rt_flags & LLMQ_RING_BROKEN);
	assert_int_equal(test_submit_gen(&good, "unaffected", 7, LLMQ_SQE_STREAM, 5), 0);
	assert_int_equal(collect(&good, 5, &res), 0);
	assert_int_equal(res.res, 7);
	assert_int_equal(llmq_get_stats(fast.sock, &after), 0);
	assert_int_equal(after.clients_broken, before.clients_broken + 1);
	llmq_queue_exit(&bad);
	llmq_queue_exit(&good);
}

/* Handshakes that must be refused, each with its errno. */
static int raw_hello(const char *sock, struct llmq_msg_hello *h, const int *fds, int n)
{
	struct llmq_msg_reply rep;
	int fd = llmq_uds_connect(sock), got;

	if (fd < 0)
		return fd;
	if (llmq_uds_send(fd, h, sizeof(*h), fds, n) < 0) {
		close(fd);
		return -1000;
	}
	got = (int)recv(fd, &rep, sizeof(rep), 0);
	close(fd);
	if (got != (int)sizeof(rep))
		return -1001;
	return -(int)rep.error;
}

static void test_bad_handshakes(void **state)
{
	struct llmq_params p = geometry(4, 8);
	struct llmq_layout lay;
	struct llmq_msg_hello h;
	int fds[3], plain, unsealed, e1, e2;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_params_check(&p, &lay), 0);
	plain = memfd_create("t", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(plain, lay.map_size), 0);
	unsealed = memfd_create("u", 0);
	assert_int_equal(ftruncate(unsealed, lay.map_size), 0);
	e1 = eventfd(0, 0);
	e2 = eventfd(0, 0);
	fds[0] = plain;
	fds[1] = e1;
	fds[2] = e2;

	memset(&h, 0, sizeof(h));
	h.magic = LLMQ_MAGIC;
	h.version = LLMQ_ABI_VERSION;
	h.type = LLMQ_MSG_HELLO;
	h.params = p;

	h.magic = 0x1234;
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EPROTO);
	h.magic = LLMQ_MAGIC;
	h.version = 99;
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EPROTONOSUPPORT);
	h.version = LLMQ_ABI_VERSION;
	assert_int_equal(raw_hello(fast.sock, &h, fds, 2), -EBADF);
	/* Not sealed: it could shrink under the runtime. */
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EPERM);
	fds[0] = unsealed;		/* cannot be sealed at all */
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EPERM);
	fds[0] = e2;			/* not a memfd */
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EBADF);
	fcntl(plain, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
	fds[0] = plain;
	h.params.cq_entries = 256;	/* does not match the memfd size */
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EINVAL);
	h.params.cq_entries = 3;
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EINVAL);
	h.params = p;
	fds[1] = plain;			/* a doorbell that is not an eventfd */
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EBADF);
	fds[1] = e1;
	h.type = 99;
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), -EOPNOTSUPP);
	h.type = LLMQ_MSG_HELLO;
	{
		int four[4] = { plain, e1, e2, e2 };

		assert_int_equal(raw_hello(fast.sock, &h, four, 4), -EBADF);
	}
	assert_int_equal(raw_hello(fast.sock, &h, fds, 3), 0);
	close(plain);
	close(unsealed);
	close(e1);
	close(e2);
}

/* Descriptors process @pid has open, or -errno. */
static int fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Wait up to @ms for @pid to hold at most @n descriptors; what it holds. */
static int fd_count_wait(pid_t pid, int n, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ULL;
	int got;

	while ((got = fd_count(pid)) > n && now_ns() < end)
		usleep(10000);
	return got;
}

/* CPU seconds (user + system) process @pid has used. */
static double cpu_seconds(pid_t pid)
{
	unsigned long ut = 0, st = 0;
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');		/* fields 14 and 15, after the name */
	assert_non_null(p);
	assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				&ut, &st), 2);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * An empty first message that carries descriptors: they are closed with
 * the connection, not kept by llmqd for ever (each leaked memfd also held
 * its pages).
 */
static void test_empty_message_fds(void **state)
{
	int fds[3], before, fd, i, n;

	(void)state;
	use(&fast);
	fds[0] = memfd_create("t", 0);
	fds[1] = eventfd(0, 0);
	fds[2] = eventfd(0, 0);
	assert_true(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0);
	before = fd_count(fast.pid);
	assert_true(before > 0);
	for (i = 0; i < 20; i++) {
		fd = llmq_uds_connect(fast.sock);
		assert_true(fd >= 0);
		assert_int_equal(llmq_uds_send(fd, "", 0, fds, 3), 0);
		close(fd);
	}
	/* (Other tests' clients may still be closing: at most as many.) */
	n = fd_count_wait(fast.pid, before, WAIT_MS);
	if (n > before)
		fail_msg("llmqd holds %d descriptors, %d before 20 empty messages", n, before);
	for (i = 0; i < 3; i++)
		close(fds[i]);
}

/* A connection that says nothing is closed after --handshake-timeout-ms. */
static void test_handshake_timeout(void **state)
{
	static const char *const args[] = { "--handshake-timeout-ms", "200", NULL };
	static struct daemon d;
	struct pollfd pfd;
	uint64_t t0;
	char c;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "hs", args), 0);
	pfd.fd = llmq_uds_connect(d.sock);
	assert_true(pfd.fd >= 0);
	pfd.events = POLLIN;
	t0 = now_ns();
	assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
	assert_int_equal(recv(pfd.fd, &c, 1, 0), 0);		/* closed, no reply */
	assert_true(now_ns() - t0 >= 150 * 1000000ULL);
	close(pfd.fd);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/*
 * Out of descriptors: llmqd waits before it accepts again instead of
 * failing the same accept in a busy loop, and takes clients again once
 * descriptors are free. (The limit must be set before it starts: an armed
 * io_uring accept keeps the limit it was armed under.)
 */
static void test_out_of_fds(void **state)
{
	static const char *const args[] = { "--handshake-timeout-ms", "1000", NULL };
	struct llmq_params p = geometry(4, 8);
	static struct daemon d;
	struct llmq_ring r;
	struct result res;
	int idle[48], i, err;
	double cpu;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start_nofile(&d, "nofd", args, 24), 0);
	for (i = 0; i < 48; i++) {		/* some accepted, the rest wait */
		idle[i] = llmq_uds_connect(d.sock);
		assert_true(idle[i] >= 0);
	}
	for (i = 0; i < 200 && fd_count(d.pid) < 20; i++)	/* the limit is reached */
		usleep(10000);
	assert_true(fd_count(d.pid) >= 20);
	usleep(100000);
	cpu = cpu_seconds(d.pid);
	usleep(500000);
	cpu = cpu_seconds(d.pid) - cpu;
	/* Spinning on accept took a whole core; waiting takes next to none. */
	if (cpu > 0.2)
		fail_msg("llmqd used %.2f s of CPU in 0.5 s while out of descriptors", cpu);
	for (i = 0; i < 48; i++)
		close(idle[i]);
	/*
	 * The backlog drains (each closed at once, or after the timeout); until
	 * it has, a client may be told -EMFILE (llmqd had no descriptor for its
	 * ring), never left waiting.
	 */
	for (i = 0; i < 100; i++) {
		err = llmq_queue_init(&r, daemon_ring(&d), &p);
		if (err != -EMFILE)
			break;
		usleep(50000);
	}
	if (err)
		fail_msg("a client after the others left: %s", strerror(-err));
	assert_int_equal(test_submit_gen(&r, "back", 3, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&r, 1, &res), 0);
	assert_int_equal(res.res, 3);
	llmq_queue_exit(&r);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- full rings ---------------------------------------------------------- */

static void test_sq_full(void **state)
{
	struct llmq_params p = geometry(2, 8);
	struct llmq_ring r;
	struct llmq_sqe *a, *b;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	a = llmq_get_sqe(&r);
	b = llmq_get_sqe(&r);
	assert_non_null(a);
	assert_non_null(b);
	errno = 0;
	assert_null(llmq_get_sqe(&r));
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(llmq_generate(&r, "x", NULL, NULL, NULL), -EAGAIN);
	llmq_prep_nop(a, 1);
	llmq_prep_nop(b, 2);
	assert_int_equal(llmq_submit(&r), 2);
	llmq_queue_exit(&r);
}

/* A client that leaves its CQ full for a while loses nothing. */
static void test_slow_reader(void **state)
{
	struct llmq_params p = geometry(2, 4);
	struct llmq_stats before, after;
	struct llmq_ring r;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_get_stats(fast.sock, &before), 0);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	assert_int_equal(test_submit_gen(&r, "slow reader one", 300, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(test_submit_gen(&r, "slow reader two", 200, LLMQ_SQE_STREAM, 2), 0);
	usleep(300000);
	assert_int_equal(llmq_get_stats(fast.sock, &after), 0);
	assert_true(after.overflow_now > 0);
	/* Requests interleave; reap both streams and check each. */
	{
		struct llmq_cqe *cqe;
		int got[3] = { 0 }, tok[3] = { 0 }, done = 0, res[3] = { 0 }, k;
		static uint32_t want[3][300];

		null_expect("slow reader one", 300, want[1]);
		null_expect("slow reader two", 200, want[2]);
		while (done < 2) {
			assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
			assert_true(cqe->user_data == 1 || cqe->user_data == 2);
			k = (int)cqe->user_data;
			assert_int_equal(cqe->index, got[k]);
			got[k]++;
			if (cqe->flags & LLMQ_CQE_F_MORE) {
				assert_int_equal(cqe->token, want[k][tok[k]]);
				tok[k]++;
			} else {
				res[k] = cqe->res;
				done++;
			}
			llmq_cqe_seen(&r, cqe);
		}
		assert_int_equal(tok[1], 300);
		assert_int_equal(tok[2], 200);
		assert_int_equal(res[1], 300);
		assert_int_equal(res[2], 200);
	}
	assert_int_equal(llmq_get_stats(fast.sock, &after), 0);
	assert_true(after.cqes_overflowed - before.cqes_overflowed > 400);
	llmq_queue_exit(&r);
}

/* A client that never reads is capped: -ENOBUFS for it, others unaffected. */
static void test_overflow_cap(void **state)
{
	struct llmq_params p = geometry(2, 4);
	struct llmq_stats st;
	struct llmq_ring r, other;
	struct llmq_sampling sp;
	struct llmq_sqe *a, *b;
	struct llmq_cqe *cqe;
	struct result res;
	int cqes = 0, finals = 0, nobufs = 0;

	(void)state;
	use(&capped);
	llmq_sampling_init(&sp);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&capped), &p), 0);
	assert_int_equal(llmq_queue_init(&other, daemon_ring(&capped), &p), 0);
	/* One submission, so both are admitted before the CQ backs up. */
	sp.max_tokens = 20000;
	a = llmq_get_sqe(&r);
	b = llmq_get_sqe(&r);
	assert_int_equal(llmq_prep_generate(&r, a, "never read", 10, &sp, 1), 0);
	assert_int_equal(llmq_prep_generate(&r, b, "never read 2", 12, &sp, 2), 0);
	assert_int_equal(llmq_submit(&r), 2);
	usleep(300000);
	assert_int_equal(llmq_get_stats(capped.sock, &st), 0);
	assert_true(st.overflow_now <= 64 + 8);		/* the cap, plus the finals */
	assert_int_equal(test_submit_gen(&other, "reads fine", 50, LLMQ_SQE_STREAM, 3), 0);
	assert_int_equal(collect(&other, 3, &res), 0);
	assert_int_equal(res.res, 50);
	assert_int_equal(res.bad, 0);
	while (finals < 2) {
		assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
		cqes++;
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			finals++;
			nobufs += cqe->res == -ENOBUFS;
		}
		llmq_cqe_seen(&r, cqe);
	}
	assert_int_equal(nobufs, 2);
	assert_true(cqes <= 4 + 64 + 8);
	/* Once drained, the ring serves again. */
	assert_int_equal(test_submit_gen(&r, "again", 5, LLMQ_SQE_STREAM, 4), 0);
	assert_int_equal(collect(&r, 4, &res), 0);
	assert_int_equal(res.res, 5);
	llmq_queue_exit(&r);
	llmq_queue_exit(&other);
}

/* ---- clients that go away ------------------------------------------------ */

static int killed_cond(const struct llmq_stats *st, void *arg)
{
	const struct llmq_stats *b = arg;

	return st->clients_active == b->clients_active &&
	       st->requests_active == b->requests_active &&
	       st->requests_cancelled >= b->requests_cancelled + 2;
}

static void test_sigkill_midstream(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_stats before, after;
	struct llmq_ring r;
	struct result res;
	int pipefd[2], st;
	char c;
	pid_t pid;

	(void)state;
	use(&slow);
	assert_int_equal(llmq_get_stats(slow.sock, &before), 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct llmq_ring cr;
		struct llmq_cqe *cqe;
		int n = 0;

		if (llmq_queue_init(&cr, daemon_ring(&slow), &p) ||
		    test_submit_gen(&cr, "doomed", 30000, LLMQ_SQE_STREAM, 1) ||
		    test_submit_gen(&cr, "doomed too", 30000, LLMQ_SQE_STREAM, 2))
			_exit(1);
		while (n < 5 && !llmq_wait_cqe_timeout(&cr, &cqe, WAIT_MS)) {
			llmq_cqe_seen(&cr, cqe);
			n++;
		}
		(void)!write(pipefd[1], "x", 1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	close(pipefd[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	assert_int_equal(stats_wait(slow.sock, killed_cond, &before, WAIT_MS, &after), 0);
	/* The runtime keeps serving. */
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&slow), &p), 0);
	assert_int_equal(test_submit_gen(&r, "survivor", 5, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&r, 1, &res), 0);
	assert_int_equal(res.res, 5);
	llmq_queue_exit(&r);
}

static void test_cancel(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	int got_cancel = 0, got_final = 0, tokens = 0;

	(void)state;
	use(&slow);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&slow), &p), 0);
	assert_int_equal(test_submit_gen(&r, "cancel me", 30000, LLMQ_SQE_STREAM, 7), 0);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
	llmq_cqe_seen(&r, cqe);
	assert_int_equal(llmq_cancel(&r, 7, 8), 0);
	while (!got_cancel || !got_final) {
		assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
		if (cqe->user_data == 8) {
			assert_int_equal(cqe->res, 1);
			got_cancel = 1;
		} else if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			assert_int_equal(cqe->res, -ECANCELED);
			assert_int_equal(cqe->finish, LLMQ_FINISH_CANCELLED);
			got_final = 1;
		} else {
			tokens++;
		}
		llmq_cqe_seen(&r, cqe);
	}
	assert_true(tokens < 1000);
	llmq_queue_exit(&r);
}

/* A client that jams its wake eventfd blocks only its own wake-ups. */
static void test_jammed_wake(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_stats before, after;
	struct llmq_ring r, other;
	struct result res;
	uint64_t max = 0xfffffffffffffffeULL, v;
	int i;

	(void)state;
	use(&fast);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&fast), &p), 0);
	assert_int_equal(llmq_queue_init(&other, daemon_ring(&fast), &p), 0);
	assert_int_equal(fcntl(r.wake_fd, F_SETFL, 0), 0);	/* blocking, shared with llmqd */
	assert_int_equal(write(r.wake_fd, &max, 8), 8);		/* counter full: writes wait */
	r.hdr->cl_flags = LLMQ_CL_WAITING;			/* "asleep": wake me */
	assert_int_equal(llmq_get_stats(fast.sock, &before), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(test_submit_gen(&r, "jam", 3, LLMQ_SQE_STREAM, (uint64_t)i), 0);
		usleep(20000);
	}
	assert_int_equal(llmq_get_stats(fast.sock, &after), 0);
	/* Five requests finished apart, yet one wake-up write waits, not five. */
	assert_int_equal(after.wakeups - before.wakeups, 1);
	assert_int_equal(test_submit_gen(&other, "free", 9, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(collect(&other, 1, &res), 0);
	assert_int_equal(res.res, 9);
	assert_int_equal(read(r.wake_fd, &v, 8), 8);		/* unjam */
	assert_int_equal(fcntl(r.wake_fd, F_SETFL, O_NONBLOCK), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(collect(&r, (uint64_t)i, &res), 0);
		assert_int_equal(res.res, 3);
	}
	llmq_queue_exit(&r);
	llmq_queue_exit(&other);
}

/* A runtime killed without a word still wakes its clients with an error. */
static void test_runtime_killed(void **state)
{
	static const char *const args[] = { "--null-delay-us", "5000", NULL };
	struct llmq_params p = geometry(8, 64);
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	static struct daemon d;
	uint64_t t0;
	int err;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "killed", args), 0);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&d), &p), 0);
	assert_int_equal(test_submit_gen(&r, "orphan", 30000, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
	llmq_cqe_seen(&r, cqe);
	daemon_stop(&d, SIGKILL);
	t0 = now_ns();
	do {
		err = llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS);
		if (!err)
			llmq_cqe_seen(&r, cqe);
	} while (!err);
	assert_int_equal(err, -ECONNRESET);
	assert_true(now_ns() - t0 < 2000000000ULL);
	llmq_queue_exit(&r);
}

/* While llmqd polls, a submission needs no doorbell; asleep, it asks for one. */
static void test_polling_doorbell(void **state)
{
	static const char *const args[] = { "--poll-us", "100000", NULL };
	struct llmq_params p = geometry(8, 64);
	struct llmq_stats before, after;
	struct llmq_ring r;
	struct result res;
	static struct daemon d;
	int i, polled;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "poll", args), 0);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&d), &p), 0);
	/*
	 * Just served, the runtime polls for 100 ms: a submission then needs no
	 * doorbell.  A loaded machine can stall us past the window, so one of
	 * five tries must show it; an idle one shows it the first time.
	 */
	for (i = 0, polled = 0; i < 5 && !polled; i++) {
		assert_int_equal(test_submit_gen(&r, "first", 2, LLMQ_SQE_STREAM, 1), 0);
		assert_int_equal(collect(&r, 1, &res), 0);
		if (r.hdr->rt_flags & LLMQ_RING_NEED_WAKEUP)
			continue;
		assert_int_equal(llmq_get_stats(d.sock, &before), 0);
		assert_int_equal(test_submit_gen(&r, "second", 2, LLMQ_SQE_STREAM, 2), 0);
		assert_int_equal(collect(&r, 2, &res), 0);
		assert_int_equal(res.res, 2);
		assert_int_equal(llmq_get_stats(d.sock, &after), 0);
		polled = after.doorbells == before.doorbells;	/* found by polling */
	}
	assert_true(polled);
	usleep(300000);
	assert_true(r.hdr->rt_flags & LLMQ_RING_NEED_WAKEUP);	/* asleep again */
	assert_int_equal(test_submit_gen(&r, "third", 2, LLMQ_SQE_STREAM, 3), 0);
	assert_int_equal(collect(&r, 3, &res), 0);
	assert_int_equal(res.res, 2);
	llmq_queue_exit(&r);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- the batch window ----------------------------------------------------- */

/* Time from submission to the first token, and steps the request took part in. */
static void test_window_lone(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	struct result res;
	uint64_t t0, ms;

	(void)state;
	use(&window);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&window), &p), 0);
	t0 = now_ns();
	assert_int_equal(test_submit_gen(&r, "alone", 3, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
	ms = (now_ns() - t0) / 1000000;
	llmq_cqe_seen(&r, cqe);
	/* Held for the window (300 ms), and not much longer. */
	assert_true(ms >= 250);
	assert_true(ms <= 300 + 200);
	assert_int_equal(collect(&r, 1, &res), 0);
	llmq_queue_exit(&r);
}

static void test_window_batches(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_stats before, after;
	struct llmq_ring r[3];
	struct result res;
	int i;

	(void)state;
	use(&window);
	for (i = 0; i < 3; i++)
		assert_int_equal(llmq_queue_init(&r[i], daemon_ring(&window), &p), 0);
	assert_int_equal(llmq_get_stats(window.sock, &before), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(test_submit_gen(&r[i], "together", 10, LLMQ_SQE_STREAM, 1), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(collect(&r[i], 1, &res), 0);
		assert_int_equal(res.res, 10);
	}
	assert_int_equal(llmq_get_stats(window.sock, &after), 0);
	/* Three requests arriving within the window ran as one batch. */
	assert_int_equal(after.steps - before.steps, 10);
	for (i = 0; i < 3; i++)
		llmq_queue_exit(&r[i]);
}

/* A full bus leaves at once, without waiting out the window. */
static void test_window_full(void **state)
{
	struct llmq_params p = geometry(8, 64);
	struct llmq_ring r;
	uint64_t t0, ms;
	int i;

	(void)state;
	use(&window);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&window), &p), 0);
	t0 = now_ns();
	for (i = 0; i < 4; i++)
		assert_int_equal(test_submit_gen(&r, "full bus", 2, LLMQ_SQE_STREAM, (uint64_t)i), 0);
	for (i = 0; i < 4; i++) {
		struct llmq_cqe *cqe;
		int finals = 0;

		while (!finals) {
			assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
			finals = !(cqe->flags & LLMQ_CQE_F_MORE);
			llmq_cqe_seen(&r, cqe);
		}
	}
	ms = (now_ns() - t0) / 1000000;
	assert_true(ms < 200);
	llmq_queue_exit(&r);
}

/* ---- admission limits ------------------------------------------------------ */

/* A full waiting queue refuses at once; a prompt past max-model-len too. */
static void test_queue_bound_and_model_len(void **state)
{
	static const char *const args[] = { "--null-delay-us", "20000", "--max-num-seqs", "1",
		"--max-queued-requests", "2", "--batch-timeout-ms", "0", "--max-model-len", "64",
		NULL };
	struct llmq_params p = geometry(8, 64);
	static struct daemon d;
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	struct result res;
	char longp[128];
	int finals = 0, busy = 0;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "bound", args), 0);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&d), &p), 0);
	/* 'a' runs (one sequence per step), 'b' and 'c' wait, 'd' is one too many. */
	assert_int_equal(test_submit_gen(&r, "a", 40, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
	assert_int_equal(cqe->user_data, 1);
	llmq_cqe_seen(&r, cqe);
	assert_int_equal(test_submit_gen(&r, "b", 2, 0, 2), 0);
	assert_int_equal(test_submit_gen(&r, "c", 2, 0, 3), 0);
	assert_int_equal(test_submit_gen(&r, "d", 2, 0, 4), 0);
	while (finals < 4) {
		assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			if (cqe->user_data == 4) {
				assert_int_equal(cqe->res, -EBUSY);
				/* at once: before 'a', which has 40 steps of 20 ms to go */
				assert_int_equal(finals, 0);
				busy++;
			} else {
				assert_true(cqe->res > 0);
			}
			finals++;
		}
		llmq_cqe_seen(&r, cqe);
	}
	assert_int_equal(busy, 1);
	/* 1 + 3 + 100 + 3 tokens: more than --max-model-len 64 */
	memset(longp, 'x', 100);
	longp[100] = '\0';
	assert_int_equal(test_submit_gen(&r, longp, 2, 0, 5), 0);
	assert_int_equal(collect(&r, 5, &res), 0);
	assert_int_equal(res.res, -E2BIG);
	/* a prompt that fits, and max_tokens cut to what is left of 64 */
	memset(longp, 'y', 40);
	longp[40] = '\0';
	assert_int_equal(test_submit_gen(&r, longp, 100, LLMQ_SQE_STREAM, 6), 0);
	assert_int_equal(collect(&r, 6, &res), 0);
	assert_int_equal(res.res, 64 - (int)null_prompt_tokens(longp));
	assert_int_equal(res.finish, LLMQ_FINISH_LENGTH);
	assert_true(null_matches(&res, longp));
	llmq_queue_exit(&r);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* Many clients on a KV pool far too small: preemption, and still exact output. */
static void test_null_preemption(void **state)
{
	static const char *const args[] = { "--num-kv-blocks", "12", "--batch-timeout-ms", "5",
		NULL };
	static struct daemon d;
	struct llmq_stats a, b;
	pid_t pids[16];
	int i, st;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "preempt", args), 0);
	assert_int_equal(llmq_get_stats(d.sock, &a), 0);
	for (i = 0; i < 16; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			struct llmq_params p = geometry(8, 256);
			struct llmq_ring r;
			struct result res;
			char prompt[64];

			snprintf(prompt, sizeof(prompt), "preempted client number %d", i);
			if (llmq_queue_init(&r, daemon_ring(&d), &p) ||
			    test_submit_gen(&r, prompt, 60, LLMQ_SQE_STREAM, 1) || collect(&r, 1, &res))
				_exit(1);
			_exit(res.res == 60 && res.tokens == 60 && !res.bad &&
			      null_matches(&res, prompt) ? 0 : 2);
		}
	}
	for (i = 0; i < 16; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	assert_int_equal(llmq_get_stats(d.sock, &b), 0);
	assert_true(b.preemptions > a.preemptions);
	assert_int_equal(b.kv_blocks_used, 0);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* ---- shutdown, flags, tools ----------------------------------------------- */

static void test_sigterm(void **state)
{
	static const char *const args[] = { "--null-delay-us", "2000",
					     "--shutdown-timeout-ms", "200", NULL };
	struct llmq_params p = geometry(8, 64);
	static struct daemon d;
	struct llmq_ring r, late;
	struct llmq_cqe *cqe;
	int final_res = 1, err;

	(void)state;
	own_daemon();
	assert_int_equal(daemon_start(&d, "term", args), 0);
	assert_int_equal(llmq_queue_init(&r, daemon_ring(&d), &p), 0);
	assert_int_equal(test_submit_gen(&r, "interrupted", 30000, LLMQ_SQE_STREAM, 1), 0);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS), 0);
	llmq_cqe_seen(&r, cqe);
	assert_int_equal(kill(d.pid, SIGTERM), 0);
	/* Keep reading while it shuts down: the final CQE needs CQ room. */
	for (;;) {
		err = llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS);
		if (err)
			break;
		if (!(cqe->flags & LLMQ_CQE_F_MORE))
			final_res = cqe->res;
		llmq_cqe_seen(&r, cqe);
	}
	assert_int_equal(final_res, -ESHUTDOWN);
	assert_int_equal(err, -ESHUTDOWN);
	assert_int_equal(daemon_stop(&d, 0), 0);	/* exited 0 by itself */
	if (!d.kernel) {
		assert_int_not_equal(llmq_queue_init(&late, daemon_ring(&d), &p), 0);
	} else {
		/*
		 * The device takes a late ring and keeps its request for the
		 * next runtime, but tells the client none serves now.
		 */
		assert_int_equal(llmq_queue_init(&late, daemon_ring(&d), &p), 0);
		assert_int_equal(test_submit_gen(&late, "late", 2, 0, 1), 0);
		assert_int_equal(llmq_wait_cqe_timeout(&late, &cqe, 2000), -ENOTCONN);
		llmq_queue_exit(&late);
	}
	llmq_queue_exit(&r);
}

static void test_bad_flags(void **state)
{
	static const char *const bad[][3] = {
		{ "--max-batch-size", "0", NULL },
		{ "--max-batch-size", "4097", NULL },
		{ "--batch-timeout-ms", "abc", NULL },
		{ "--batch-timeout-ms", "-1", NULL },
		{ "--null-delay-us", "1e3", NULL },
		{ "--engine", "cuda-please", NULL },
		{ "--max-cq-overflow", "0", NULL },
		{ "--socket-mode", "999", NULL },
		{ "--no-such-flag", NULL, NULL },
		{ "--model", "", NULL },
		{ "--kv-cache-mb", "0", NULL },
		{ "--kv-cache-dtype", "fp8", NULL },
		{ "--gpu-weights", "q4", NULL },
		{ "--num-kv-blocks", "x", NULL },
		{ "--max-num-seqs", "0", NULL },
		{ "--max-num-batched-tokens", "70000", NULL },
		{ "--max-model-len", "1", NULL },
		{ "--max-queued-requests", "0", NULL },
		{ "--prefix-cache-salt", "everyone", NULL },
		{ "--threads", "-2", NULL },
		{ "--block-size", "0", NULL },
		{ "--handshake-timeout-ms", "0", NULL },
	};
	char bin[PATH_MAX + 32], err[512];
	unsigned int i;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/llmqd", harness_bin_dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = { bin, "--foreground", "--socket", "/tmp/llmq-never.sock",
				       bad[i][0], bad[i][1], NULL };

		assert_int_equal(run_cmd(argv, NULL, 0, err, sizeof(err)), 2);
		/* One line, naming the flag. */
		assert_non_null(strchr(err, '\n'));
		assert_null(strchr(err, '\n') + 1 < err + strlen(err) ?
			    strchr(err, '\n') + 1 : NULL);
		assert_non_null(strstr(err, "llmqd:"));
	}
}

/* llmqd never deletes a file at its socket path that is not a socket. */
static void test_socket_path_not_socket(void **state)
{
	const char *path = "/tmp/llmq-test-not-a-socket";
	char bin[PATH_MAX + 32], err[512];
	const char *argv[] = { bin, "--foreground", "--socket", path, NULL };
	struct stat st;
	int fd;

	(void)state;
	snprintf(bin, sizeof(bin), "%s/llmqd", harness_bin_dir);
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(run_cmd(argv, NULL, 0, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	unlink(path);
}

/* Take "--socket PATH" out of @argv: the CLI then finds /dev/llmq itself. */
static void drop_socket(const char **argv)
{
	int i = 0;

	while (argv[i] && strcmp(argv[i], "--socket"))
		i++;
	for (; argv[i] && argv[i + 1]; i++)
		argv[i] = argv[i + 2];
}

static void test_cli(void **state)
{
	char bin[PATH_MAX + 32], out[4096], out2[4096], err[512];
	const char *gen[] = { bin, "generate", "--socket", fast.sock, "--max-tokens", "12",
			      "--temperature", "0.5", "--top-p", "0.9", "--top-k", "40",
			      "--seed", "7", "cli prompt", NULL };
	const char *stream[] = { bin, "generate", "--socket", fast.sock, "--max-tokens", "12",
				 "--stream", "cli prompt", NULL };
	const char *none[] = { bin, "generate", "--socket", "/tmp/llmq-nobody-here.sock", "x",
			       NULL };
	const char *badv[] = { bin, "generate", "--socket", fast.sock, "--top-p", "1.5", "x",
			       NULL };
	/* An empty socket would fall back to $LLMQ_SOCKET: another runtime. */
	const char *empty[] = { bin, "generate", "--socket", "", "x", NULL };
	const char *empty_st[] = { bin, "stats", "--socket", "", NULL };
	const char *extra_st[] = { bin, "stats", "--socket", fast.sock, "bogus", NULL };

	(void)state;
	use(&fast);
	snprintf(bin, sizeof(bin), "%s/llmq", harness_bin_dir);
	if (fast.kernel) {
		drop_socket(gen);
		drop_socket(stream);
		drop_socket(badv);
	}
	assert_int_equal(run_cmd(gen, out, sizeof(out), err, sizeof(err)), 0);
	assert_int_equal(run_cmd(stream, out2, sizeof(out2), err, sizeof(err)), 0);
	assert_true(strlen(out) > 12);
	assert_string_equal(out, out2);
	assert_int_equal(run_cmd(none, out, sizeof(out), err, sizeof(err)), 1);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "cannot reach the runtime"));
	assert_int_equal(run_cmd(badv, out, sizeof(out), err, sizeof(err)), 2);
	assert_non_null(strstr(err, "--top-p"));
	setenv("LLMQ_SOCKET", fast.sock, 1);	/* a runtime the empty path could reach */
	assert_int_equal(run_cmd(empty, out, sizeof(out), err, sizeof(err)), 2);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "--socket: '' is empty"));
	assert_int_equal(run_cmd(empty_st, out, sizeof(out), err, sizeof(err)), 2);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "--socket: '' is empty"));
	unsetenv("LLMQ_SOCKET");
	assert_int_equal(run_cmd(extra_st, out, sizeof(out), err, sizeof(err)), 2);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "unexpected argument 'bogus'"));
}

/*
 * Over /dev/llmq the suite runs without the tests of what only the socket
 * has: its handshake, its path, and client eventfds a client could jam (the
 * device wakes its sleepers itself).  Flags are checked before a transport.
 */
static bool socket_only(const char *name)
{
	static const char *const names[] = {
		"test_bad_handshakes", "test_jammed_wake", "test_bad_flags",
		"test_socket_path_not_socket", "test_empty_message_fds",
		"test_handshake_timeout", "test_out_of_fds",
	};
	unsigned int i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest all[] = {
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_stream_and_packed_agree),
		cmocka_unit_test(test_stop_id_and_nop),
		cmocka_unit_test(test_bad_sqes),
		cmocka_unit_test(test_scribbler),
		cmocka_unit_test(test_bad_handshakes),
		cmocka_unit_test(test_empty_message_fds),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_out_of_fds),
		cmocka_unit_test(test_sq_full),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_overflow_cap),
		cmocka_unit_test(test_sigkill_midstream),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_jammed_wake),
		cmocka_unit_test(test_runtime_killed),
		cmocka_unit_test(test_polling_doorbell),
		cmocka_unit_test(test_window_lone),
		cmocka_unit_test(test_window_batches),
		cmocka_unit_test(test_window_full),
		cmocka_unit_test(test_sigterm),
		cmocka_unit_test(test_queue_bound_and_model_len),
		cmocka_unit_test(test_null_preemption),
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_socket_path_not_socket),
		cmocka_unit_test(test_cli),
	};
	struct CMUnitTest tests[sizeof(all) / sizeof(all[0])];
	size_t i, n = 0;

	(void)argc;
	harness_init(argv[0]);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (harness_kernel && socket_only(all[i].name))
			continue;
		tests[n++] = all[i];
	}
	return _cmocka_run_group_tests(harness_kernel ? "live over /dev/llmq" : "live", tests, n,
				       setup, teardown);
}
