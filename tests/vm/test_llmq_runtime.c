// SPDX-License-Identifier: GPL-2.0
/*
 * llmqd and libllmq over /dev/llmq, as processes in the QEMU guest: requests
 * on the null engine through the kernel transport, many clients, a client
 * killed mid-stream, the runtime killed mid-stream and a new one finishing
 * the queued requests, an orderly shutdown, no runtime at all; and, with
 * "bench", round trips through /dev/llmq beside the userspace transport.
 *
 *   test_llmq_runtime LLMQ.KO LLMQD [bench]
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "libllmq.h"
#include "requests.h"

#define SOCK		"/tmp/llmqd.sock"

static const char *ko_path, *llmqd_path;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Start llmqd on the null engine with @extra arguments (NULL-terminated);
 * with @kernel it serves /dev/llmq, else only its socket.  Waits until it
 * serves.  Returns its pid.
 */
static pid_t llmqd_start(int kernel, const char *const *extra)
{
	const char *argv[32] = {
		llmqd_path, "--foreground", "--engine", "null", "--socket", SOCK,
		"--transport", kernel ? "kernel" : "shm",
	};
	int argc = 8, i, fd;
	pid_t pid;

	for (i = 0; extra && extra[i] && argc < 31; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	/* A runtime killed just before may still be detaching (io_uring teardown). */
	if (kernel && stat_wait("runtime_attached", 0, 5000))
		return -1;
	unlink(SOCK);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		fd = open("/tmp/llmqd.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(llmqd_path, (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 10000; i++) {
		if (kernel ? stat_read("runtime_attached") == 1 : access(SOCK, F_OK) == 0)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(1000);
	}
	fprintf(stderr, "llmqd did not start; its log:\n");
	if (system("tail -n 20 /tmp/llmqd.log >&2") < 0)
		perror("system");
	kill(pid, SIGKILL);
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

/* Reap CQEs until @ud's final one; its res, or -errno of the wait. */
static int reap_final(struct llmq_ring *r, uint64_t ud, int *tokens, int timeout_ms)
{
	struct llmq_cqe *cqe;
	int err, res;

	for (;;) {
		err = llmq_wait_cqe_timeout(r, &cqe, timeout_ms);
		if (err)
			return err;
		if (cqe->user_data != ud) {
			llmq_cqe_seen(r, cqe);
			continue;
		}
		if (cqe->flags & LLMQ_CQE_F_MORE) {
			llmq_cqe_seen(r, cqe);
			continue;
		}
		res = cqe->res;
		if (tokens)
			*tokens = res;
		llmq_cqe_seen(r, cqe);
		return res < 0 ? res : 0;
	}
}

/* ---- tests ----------------------------------------------------------------- */

static int test_rt_no_runtime(void)
{
	struct llmq_ring r;
	struct llmq_cqe *cqe;

	CHECK(stat_read("runtime_attached") == 0);
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(r.sock_fd < 0);		/* the device, not a socket */
	CHECK(llmq_wait_cqe_timeout(&r, &cqe, 1000) == -ENOTCONN);
	llmq_queue_exit(&r);
	return 0;
}

static int test_rt_generate(void)
{
	struct llmq_ring r;
	int tokens = -1, i;
	pid_t d;

	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(r.sock_fd < 0);
	for (i = 0; i < 20; i++) {
		CHECK(test_submit_gen(&r, "The kernel transport", 8, i & 1 ? LLMQ_SQE_STREAM : 0,
				 100 + i) == 0);
		CHECK(reap_final(&r, 100 + i, &tokens, 10000) == 0);
		CHECK(tokens == 8);
	}
	/* Several in flight at once. */
	for (i = 0; i < 8; i++)
		CHECK(test_submit_gen(&r, "batch", 4, LLMQ_SQE_STREAM, 200 + i) == 0);
	for (i = 0; i < 8; i++) {
		CHECK(reap_final(&r, 200 + i, &tokens, 10000) == 0);
		CHECK(tokens == 4);
	}
	llmq_queue_exit(&r);
	CHECK(stat_wait("rings", 0, 2000) == 0);	/* the runtime let go too */
	/* Its OPEN and CLOSE at least (doorbells and wake-ups depend on timing). */
	CHECK(stat_read("events") >= 2);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int client_proc(int n)
{
	struct llmq_ring r;
	int i, tokens, err;

	err = llmq_queue_init(&r, NULL, NULL);
	if (err) {
		fprintf(stderr, "client %d: llmq_queue_init: %s\n", getpid(), strerror(-err));
		return 1;
	}
	for (i = 0; i < n; i++) {
		err = test_submit_gen(&r, "sixteen at once", 3, LLMQ_SQE_STREAM, i + 1);
		if (err) {
			fprintf(stderr, "client %d: submit %d: %s\n", getpid(), i, strerror(-err));
			return 2;
		}
		err = reap_final(&r, i + 1, &tokens, 20000);
		if (err || tokens != 3) {
			fprintf(stderr, "client %d: request %d: %s, %d tokens\n", getpid(), i,
				strerror(-err), tokens);
			return 3;
		}
	}
	llmq_queue_exit(&r);
	return 0;
}

static int test_rt_many_clients(void)
{
	pid_t d, kids[16];
	int i, st;

	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	for (i = 0; i < 16; i++) {
		kids[i] = fork();
		CHECK(kids[i] >= 0);
		if (!kids[i])
			_exit(client_proc(20));
	}
	for (i = 0; i < 16; i++) {
		CHECK(waitpid(kids[i], &st, 0) == kids[i]);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	CHECK(stat_wait("rings", 0, 2000) == 0);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_rt_client_sigkill(void)
{
	const char *slow[] = { "--null-delay-us", "20000", NULL };
	int sync[2], tokens;
	struct llmq_ring r;
	pid_t d, kid;
	char x;

	d = llmqd_start(1, slow);
	CHECK(d > 0);
	CHECK(pipe(sync) == 0);
	kid = fork();
	CHECK(kid >= 0);
	if (!kid) {
		struct llmq_cqe *cqe;

		if (llmq_queue_init(&r, NULL, NULL) ||
		    test_submit_gen(&r, "a long answer", 30000, LLMQ_SQE_STREAM, 1) ||
		    llmq_wait_cqe_timeout(&r, &cqe, 10000))
			_exit(1);
		x = 1;
		if (write(sync[1], &x, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	CHECK(read(sync[0], &x, 1) == 1);	/* streaming now */
	CHECK(stat_read("rings") == 1);
	kill(kid, SIGKILL);
	CHECK(waitpid(kid, NULL, 0) == kid);
	/* The runtime hears of it, drops the request and unmaps the ring. */
	CHECK(stat_wait("rings", 0, 5000) == 0);
	/* And still serves others. */
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(test_submit_gen(&r, "still there?", 2, 0, 7) == 0);
	CHECK(reap_final(&r, 7, &tokens, 10000) == 0);
	CHECK(tokens == 2);
	llmq_queue_exit(&r);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_rt_runtime_sigkill(void)
{
	/* One request at a time per client: the others stay queued in the SQ. */
	const char *args[] = { "--null-delay-us", "20000", "--max-client-requests", "1", NULL };
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	int tokens, i, err;
	pid_t d;

	d = llmqd_start(1, args);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(test_submit_gen(&r, "in flight", 30000, LLMQ_SQE_STREAM, 1) == 0);
	for (i = 2; i <= 4; i++)
		CHECK(test_submit_gen(&r, "queued", 5, 0, i) == 0);
	CHECK(llmq_wait_cqe_timeout(&r, &cqe, 10000) == 0);
	CHECK(cqe->user_data == 1 && (cqe->flags & LLMQ_CQE_F_MORE));
	llmq_cqe_seen(&r, cqe);

	/* The runtime dies mid-stream: the client is told, with the errno. */
	CHECK(llmqd_stop(d, SIGKILL) == 128 + SIGKILL);
	CHECK(stat_wait("runtime_attached", 0, 5000) == 0);
	do {
		err = llmq_wait_cqe_timeout(&r, &cqe, 5000);
		if (!err)
			llmq_cqe_seen(&r, cqe);
	} while (!err);
	CHECK(err == -ECONNRESET);
	CHECK(r.hdr->rt_flags & LLMQ_RING_DEAD);

	/* A new runtime picks up what was still queued. */
	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	for (i = 2; i <= 4; i++) {
		CHECK(reap_final(&r, i, &tokens, 10000) == 0);
		CHECK(tokens == 5);
	}
	/* And serves new work. */
	CHECK(test_submit_gen(&r, "after", 3, 0, 9) == 0);
	CHECK(reap_final(&r, 9, &tokens, 10000) == 0);
	CHECK(tokens == 3);
	llmq_queue_exit(&r);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_rt_shutdown(void)
{
	const char *args[] = { "--null-delay-us", "20000", "--shutdown-timeout-ms", "100", NULL };
	struct llmq_cqe *cqe;
	struct llmq_ring r;
	int err;
	pid_t d;

	d = llmqd_start(1, args);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(test_submit_gen(&r, "cut short", 30000, LLMQ_SQE_STREAM, 1) == 0);
	/* Streaming: llmqd's loop runs and handles SIGTERM (not so at start-up). */
	CHECK(llmq_wait_cqe_timeout(&r, &cqe, 5000) == 0);
	CHECK(cqe->user_data == 1 && (cqe->flags & LLMQ_CQE_F_MORE));
	llmq_cqe_seen(&r, cqe);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	err = reap_final(&r, 1, NULL, 5000);
	/* Failed by the runtime on its way out, or told by the ring. */
	CHECK(err == -ESHUTDOWN);
	CHECK(r.hdr->rt_flags & LLMQ_RING_DEAD);
	CHECK(r.hdr->rt_errno == ESHUTDOWN);
	llmq_queue_exit(&r);
	return 0;
}

/* SIGTERM as soon as llmqd serves the device: still an orderly stop. */
static int test_rt_sigterm_at_start(void)
{
	int i;
	pid_t d;

	for (i = 0; i < 5; i++) {
		d = llmqd_start(1, NULL);
		CHECK(d > 0);
		CHECK(llmqd_stop(d, SIGTERM) == 0);
	}
	return 0;
}

static int test_rt_two_runtimes(void)
{
	pid_t d, d2;

	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	/* A second llmqd on the device is refused and says so. */
	d2 = fork();
	CHECK(d2 >= 0);
	if (!d2) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		execl(llmqd_path, llmqd_path, "--foreground", "--engine", "null", "--socket",
		      "/tmp/other.sock", "--transport", "kernel", (char *)NULL);
		_exit(127);
	}
	CHECK(waitpid(d2, NULL, 0) == d2);
	CHECK(stat_read("runtime_attached") == 1);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* A client that corrupts its indices is dropped; others are not. */
static int test_rt_scribbler(void)
{
	struct llmq_params p = { .sq_entries = 8, .cq_entries = 64, .arena_size = 65536 };
	struct llmq_ring bad, good;
	struct llmq_cqe *cqe;
	struct llmq_stats st;
	uint64_t one = 1;
	int tokens;
	pid_t d;

	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&bad, NULL, &p) == 0);
	CHECK(llmq_queue_init(&good, NULL, &p) == 0);
	bad.hdr->sq_tail = bad.hdr->sq_head + 1000;
	CHECK(write(bad.doorbell_fd, &one, 8) == 8);
	CHECK(llmq_wait_cqe_timeout(&bad, &cqe, 5000) == -EPROTO);
	CHECK(bad.hdr->rt_flags & LLMQ_RING_BROKEN);
	CHECK(test_submit_gen(&good, "unaffected", 7, LLMQ_SQE_STREAM, 5) == 0);
	CHECK(reap_final(&good, 5, &tokens, 5000) == 0);
	CHECK(tokens == 7);
	/* The admin socket still answers on the kernel transport. */
	CHECK(llmq_get_stats(SOCK, &st) == 0);
	CHECK(st.clients_broken == 1 && st.clients_active == 2);
	llmq_queue_exit(&bad);
	llmq_queue_exit(&good);
	CHECK(stat_wait("rings", 0, 2000) == 0);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* A full CQ: completions wait in the runtime until the client makes room. */
static int test_rt_slow_reader(void)
{
	struct llmq_params p = { .sq_entries = 2, .cq_entries = 4, .arena_size = 4096 };
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	struct llmq_stats st;
	int toks = 0, cqes = 0, res = -1;
	pid_t d;

	d = llmqd_start(1, NULL);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&r, NULL, &p) == 0);
	CHECK(test_submit_gen(&r, "slow reader", 200, LLMQ_SQE_STREAM, 1) == 0);
	usleep(300000);
	CHECK(llmq_get_stats(SOCK, &st) == 0);
	CHECK(st.overflow_now > 0);
	CHECK(r.hdr->rt_flags & LLMQ_RING_CQ_OVERFLOW);
	for (;;) {
		CHECK(llmq_wait_cqe_timeout(&r, &cqe, 5000) == 0);
		CHECK(cqe->user_data == 1 && cqe->index == (uint32_t)cqes);
		cqes++;
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			res = cqe->res;
			llmq_cqe_seen(&r, cqe);
			break;
		}
		toks += !!(cqe->flags & LLMQ_CQE_F_TOKEN);
		llmq_cqe_seen(&r, cqe);
	}
	CHECK(res == 200 && toks == 200);
	llmq_queue_exit(&r);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

static int test_rt_cancel(void)
{
	const char *slow[] = { "--null-delay-us", "10000", NULL };
	struct llmq_ring r;
	pid_t d;

	d = llmqd_start(1, slow);
	CHECK(d > 0);
	CHECK(llmq_queue_init(&r, NULL, NULL) == 0);
	CHECK(test_submit_gen(&r, "cancel me", 30000, LLMQ_SQE_STREAM, 1) == 0);
	usleep(50000);
	CHECK(llmq_cancel(&r, 1, 2) == 0);
	CHECK(reap_final(&r, 1, NULL, 5000) == -ECANCELED);
	llmq_queue_exit(&r);
	CHECK(llmqd_stop(d, SIGTERM) == 0);
	return 0;
}

/* ---- benchmark -------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int bench_nop;

/*
 * One client: @n round trips of a 1-token GENERATE (or a NOP); latencies to
 * @fd.  It attaches and makes one round trip first, says so on @ready, and
 * starts when @go closes: attaching, and the other clients being forked, are
 * not the path measured.
 */
static int bench_client(const char *path, int n, int fd, int ready, int go)
{
	uint64_t *lat = calloc(n, sizeof(*lat)), t0;
	struct llmq_ring r;
	int i, tokens;
	char c = 0;

	if (!lat || llmq_queue_init(&r, path, NULL))
		return 1;
	for (i = -1; i < n; i++) {
		if (i == 0 && (write(ready, &c, 1) != 1 || read(go, &c, 1) != 0))
			return 4;
		t0 = now_ns();
		if (bench_nop) {
			struct llmq_sqe *sqe = llmq_get_sqe(&r);

			if (!sqe)
				return 2;
			llmq_prep_nop(sqe, i + 2);
			if (llmq_submit(&r) < 0 || reap_final(&r, i + 2, &tokens, 20000))
				return 2;
		} else if (test_submit_gen(&r, "x", 1, 0, i + 2) ||
			   reap_final(&r, i + 2, &tokens, 20000)) {
			return 2;
		}
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	llmq_queue_exit(&r);
	if (write(fd, lat, n * sizeof(*lat)) != (ssize_t)(n * sizeof(*lat)))
		return 3;
	return 0;
}

struct bench_result {
	double p50_us, p99_us, rps;
};

static int bench_run(int kernel, int clients, int n, struct bench_result *out)
{
	uint64_t *lat = calloc((size_t)clients * n, sizeof(*lat)), t0, t1;
	const char *poll0[] = { "--poll-us", "0", "--batch-timeout-ms", "0", NULL };
	size_t got = 0, want = (size_t)clients * n * sizeof(*lat);
	int p[2], ready[2], go[2], i, st, bad = 0;
	pid_t d, kids[64];
	ssize_t k;
	char c;

	/* Close-on-exec: llmqd must not hold the go pipe open. */
	if (!lat || pipe2(p, O_CLOEXEC) || pipe2(ready, O_CLOEXEC) || pipe2(go, O_CLOEXEC))
		return -1;
	d = llmqd_start(kernel, poll0);
	if (d < 0)
		return -1;
	for (i = 0; i < clients; i++) {
		kids[i] = fork();
		if (!kids[i]) {
			close(go[1]);
			_exit(bench_client(kernel ? NULL : SOCK, n, p[1], ready[1], go[0]));
		}
	}
	close(p[1]);
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < clients && read(ready[0], &c, 1) == 1; i++)
		;
	t0 = now_ns();
	close(go[1]);		/* all at once */
	while (got < want && (k = read(p[0], (char *)lat + got, want - got)) > 0)
		got += k;
	t1 = now_ns();
	for (i = 0; i < clients; i++) {
		if (kids[i] < 0 || waitpid(kids[i], &st, 0) != kids[i] ||
		    !WIFEXITED(st) || WEXITSTATUS(st))
			bad++;
	}
	close(p[0]);
	close(ready[0]);
	llmqd_stop(d, SIGKILL);
	if (got != want || bad) {
		free(lat);
		return -1;
	}
	qsort(lat, (size_t)clients * n, sizeof(*lat), cmp_u64);
	out->p50_us = lat[(size_t)clients * n / 2] / 1e3;
	out->p99_us = lat[(size_t)clients * n * 99 / 100] / 1e3;
	out->rps = clients * n / ((t1 - t0) / 1e9);
	free(lat);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define BENCH_REPS	3

/* The median of each figure over @n runs. */
static struct bench_result bench_median(const struct bench_result *r, int n)
{
	double v[3][BENCH_REPS];
	int i;

	for (i = 0; i < n; i++) {
		v[0][i] = r[i].p50_us;
		v[1][i] = r[i].p99_us;
		v[2][i] = r[i].rps;
	}
	for (i = 0; i < 3; i++)
		qsort(v[i], n, sizeof(double), cmp_double);
	return (struct bench_result){ v[0][n / 2], v[1][n / 2], v[2][n / 2] };
}

/*
 * Each configuration BENCH_REPS times through each transport, interleaved
 * (dev shm, shm dev, dev shm), so a host busy for a while weighs on both;
 * the medians are printed.
 */
static int bench(void)
{
	static const int cl[] = { 1, 16 };
	struct bench_result k[BENCH_REPS], u[BENCH_REPS], km, um;
	unsigned int i;
	int n, rep, first;

	printf("bench: llmqd --engine null --poll-us 0 --batch-timeout-ms 0; dev = /dev/llmq, shm = the socket transport; medians of %d interleaved runs\n",
	       BENCH_REPS);
	printf("bench: %-4s %-8s %10s %10s %10s %10s %10s %10s %8s %8s\n", "op", "clients",
	       "dev p50us", "dev p99us", "dev req/s", "shm p50us", "shm p99us", "shm req/s",
	       "rps d/s", "p99 d/s");
	for (bench_nop = 1; bench_nop >= 0; bench_nop--) {
		for (i = 0; i < sizeof(cl) / sizeof(cl[0]); i++) {
			n = cl[i] == 1 ? 500 : 100;
			for (rep = 0; rep < BENCH_REPS; rep++) {
				first = rep % 2;
				if (bench_run(first, cl[i], n, first ? &k[rep] : &u[rep]) ||
				    bench_run(!first, cl[i], n, first ? &u[rep] : &k[rep])) {
					printf("bench: %d clients failed\n", cl[i]);
					return 1;
				}
			}
			km = bench_median(k, BENCH_REPS);
			um = bench_median(u, BENCH_REPS);
			printf("bench: %-4s %-8d %10.1f %10.1f %10.0f %10.1f %10.1f %10.0f %8.2f %8.2f\n",
			       bench_nop ? "nop" : "gen", cl[i], km.p50_us, km.p99_us, km.rps,
			       um.p50_us, um.p99_us, um.rps, km.rps / um.rps,
			       km.p99_us / um.p99_us);
		}
	}
	return 0;
}

/* Last: the module unloads with nothing left behind. */
static int test_rt_rmmod(void)
{
	CHECK(syscall(SYS_delete_module, "llmq", O_NONBLOCK) == 0);
	return 0;
}

static const struct vm_test tests[] = {
	VM_TEST(test_rt_no_runtime, 20),
	VM_TEST(test_rt_generate, 30),
	VM_TEST(test_rt_many_clients, 60),
	VM_TEST(test_rt_client_sigkill, 30),
	VM_TEST(test_rt_runtime_sigkill, 30),
	VM_TEST(test_rt_shutdown, 30),
	VM_TEST(test_rt_sigterm_at_start, 30),
	VM_TEST(test_rt_two_runtimes, 30),
	VM_TEST(test_rt_scribbler, 30),
	VM_TEST(test_rt_slow_reader, 30),
	VM_TEST(test_rt_cancel, 30),
	VM_TEST(test_rt_rmmod, 20),
};

static int after_test(const char *name)
{
	if (!strcmp(name, "test_rt_rmmod"))
		return 0;
	return vm_nothing_left(name, 3000);
}

int main(int argc, char **argv)
{
	int failed;

	if (argc < 3) {
		fprintf(stderr, "usage: %s LLMQ.KO LLMQD [bench]\n", argv[0]);
		return 2;
	}
	ko_path = argv[1];
	llmqd_path = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (vm_insmod(ko_path, "")) {
		perror("finit_module");
		return 1;
	}
	if (argc > 3 && !strcmp(argv[3], "bench")) {
		/* Timings under TCG on a busy host vary; never let them eat the VM's time. */
		alarm(300);
		failed = bench();
		if (syscall(SYS_delete_module, "llmq", O_NONBLOCK)) {
			perror("delete_module");
			failed++;
		}
	} else {
		failed = vm_run_tests("llmqd over /dev/llmq", tests,
				      sizeof(tests) / sizeof(tests[0]), after_test);
	}
	return failed ? 1 : 0;
}
