// SPDX-License-Identifier: GPL-2.0
/*
 * llmq-ringbench: measure the llmq ring itself (round-trip latency of one
 * request at a time, and requests per second from many client processes)
 * and, for comparison, the round trip of a keep-alive HTTP/1.1 GET to a
 * loopback server, with the same timing loop.
 *
 *   llmq-ringbench latency    --socket P [--iters N] [--warmup N] [--op nop|generate]
 *                             [--spin-us N | --spin]
 *   llmq-ringbench throughput --socket P --clients N [--seconds S] [--window W] [--spin-us N]
 *   llmq-ringbench http       --port N [--host A] [--path P] [--iters N] [--warmup N]
 *   llmq-ringbench wake       [--iters N] [--warmup N] [--peer-cpu N]
 *
 * --spin-us N calls llmq_set_spin(): libllmq busy-waits N microseconds for a
 * completion before it sleeps on the wake eventfd (0: sleep at once); without
 * it the library's default stands ($LLMQ_SPIN_US, else 0).  --spin never
 * sleeps: the benchmark itself polls the CQ.
 *
 * Every command also takes --cpu N (pin the benchmark's processes to CPU N).
 * Each prints one human line, or with --json one flat JSON object instead.
 * Exit status: 0, 1 when a request failed or a count was wrong, 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libllmq.h"

#define DEF_ITERS	20000
#define DEF_WARMUP	1000
#define DEF_SECONDS	3.0
#define DEF_WINDOW	4
#define MAX_CLIENTS	1024
#define SLOT_BITS	10	/* throughput user_data: sequence << SLOT_BITS | slot */
#define MAX_WINDOW	(1UL << SLOT_BITS)
#define WAIT_MS		5000	/* a completion later than this is a hang */
#define MAX_SPIN_US	1000000	/* llmq_set_spin()'s own ceiling */
#define HTTP_BUF	65536

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax()	__builtin_ia32_pause()
#else
#define cpu_relax()	__asm__ __volatile__("" ::: "memory")
#endif

static const char prompt[] = "hello ring";

struct opts {
	const char	*socket;
	const char	*host;
	const char	*path;
	const char	*op;
	unsigned long	iters;
	unsigned long	warmup;
	unsigned long	clients;
	unsigned long	window;
	unsigned long	port;
	long		cpu;		/* pin to this CPU, -1 = leave alone */
	long		peer_cpu;	/* wake: pin the child here, -1 = as cpu */
	long		spin_us;	/* llmq_set_spin(), -1 = library default */
	double		seconds;
	bool		spin;
	bool		json;
};

/* One throughput client's tally, sent to the parent over a pipe. */
struct tally {
	uint64_t	requests;	/* finished inside the measured interval */
	uint64_t	cqes;		/* CQEs reaped inside the interval */
	uint64_t	tokens;		/* of those, token CQEs */
	uint64_t	lat_sum_ns;	/* sum of those requests' round trips */
	uint64_t	elapsed_ns;	/* length of the measured interval */
	uint64_t	errors;		/* failed requests or wrong counts */
	int32_t		err;		/* first fatal -errno, 0 if none */
	uint32_t	spin_us;	/* the spin the ring ended up with */
};

/* What llmqd's counters say about a measured interval, per request. */
struct rt_cost {
	bool	valid;
	double	doorbells;	/* doorbell reads */
	double	wakeups;	/* wake eventfd writes */
};

/* What a latency line reports beside the times. */
struct lat_extra {
	long		spin_us;	/* the ring's spin before sleeping, -1: n/a */
	double		blocks;		/* voluntary context switches per round trip */
	struct rt_cost	rc;		/* ring latency only */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llmq-ringbench latency --socket PATH [--iters N] [--warmup N]\n"
		"                              [--op nop|generate] [--spin-us N | --spin] [--json]\n"
		"       llmq-ringbench throughput --socket PATH --clients N [--seconds S]\n"
		"                              [--window W] [--spin-us N] [--json]\n"
		"       llmq-ringbench http --port N [--host ADDR] [--path P] [--iters N]\n"
		"                              [--warmup N] [--json]\n"
		"       llmq-ringbench wake [--iters N] [--warmup N] [--peer-cpu N] [--json]\n"
		"--spin-us N: llmq_set_spin(N), busy-wait N us before sleeping (default:\n"
		"$LLMQ_SPIN_US, else 0); --spin: poll the CQ, never sleep\n"
		"every command also takes --cpu N: run pinned to CPU N\n");
}

static int parse_ulong(const char *flag, const char *s, unsigned long lo, unsigned long hi,
		       unsigned long *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-' || *s == '+')
		goto bad;
	v = strtoul(s, &end, 10);
	if (*end || errno || v < lo || v > hi)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "llmq-ringbench: --%s: '%s' is not in %lu..%lu\n", flag, s, lo, hi);
	return -EINVAL;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket",	required_argument, NULL, 's' },
		{ "iters",	required_argument, NULL, 'n' },
		{ "warmup",	required_argument, NULL, 'w' },
		{ "op",		required_argument, NULL, 'o' },
		{ "clients",	required_argument, NULL, 'c' },
		{ "seconds",	required_argument, NULL, 't' },
		{ "window",	required_argument, NULL, 'W' },
		{ "port",	required_argument, NULL, 'p' },
		{ "host",	required_argument, NULL, 'H' },
		{ "path",	required_argument, NULL, 'P' },
		{ "cpu",	required_argument, NULL, 'C' },
		{ "peer-cpu",	required_argument, NULL, 'D' },
		{ "spin",	no_argument,	   NULL, 'S' },
		{ "spin-us",	required_argument, NULL, 'U' },
		{ "json",	no_argument,	   NULL, 'j' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'n':
			if (parse_ulong("iters", optarg, 1, 100000000, &o->iters))
				return -EINVAL;
			break;
		case 'w':
			if (parse_ulong("warmup", optarg, 0, 100000000, &o->warmup))
				return -EINVAL;
			break;
		case 'o':
			if (strcmp(optarg, "nop") && strcmp(optarg, "generate")) {
				fprintf(stderr, "llmq-ringbench: --op: '%s' is not nop or generate\n",
					optarg);
				return -EINVAL;
			}
			o->op = optarg;
			break;
		case 'c':
			if (parse_ulong("clients", optarg, 1, MAX_CLIENTS, &o->clients))
				return -EINVAL;
			break;
		case 't':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (*end || errno || !(o->seconds > 0 && o->seconds <= 3600)) {
				fprintf(stderr, "llmq-ringbench: --seconds: '%s' is not in (0, 3600]\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'W':
			if (parse_ulong("window", optarg, 1, MAX_WINDOW, &o->window))
				return -EINVAL;
			break;
		case 'p':
			if (parse_ulong("port", optarg, 1, 65535, &o->port))
				return -EINVAL;
			break;
		case 'H':
			o->host = optarg;
			break;
		case 'P':
			o->path = optarg;
			break;
		case 'C':
			if (parse_ulong("cpu", optarg, 0, CPU_SETSIZE - 1, &v))
				return -EINVAL;
			o->cpu = (long)v;
			break;
		case 'D':
			if (parse_ulong("peer-cpu", optarg, 0, CPU_SETSIZE - 1, &v))
				return -EINVAL;
			o->peer_cpu = (long)v;
			break;
		case 'S':
			o->spin = true;
			break;
		case 'U':
			if (parse_ulong("spin-us", optarg, 0, MAX_SPIN_US, &v))
				return -EINVAL;
			o->spin_us = (long)v;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "llmq-ringbench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->spin && o->spin_us >= 0) {
		fprintf(stderr, "llmq-ringbench: --spin and --spin-us exclude each other\n");
		return -EINVAL;
	}
	return 0;
}

static int pin_cpu(const char *flag, long cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "llmq-ringbench: --%s %ld: %s\n", flag, cpu, strerror(errno));
		return -errno;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct summary {
	double	p50, p99, mean, min, max;	/* microseconds */
};

/* Nearest-rank percentiles of @n samples in nanoseconds; sorts @v. */
static void summarise(uint64_t *v, size_t n, struct summary *s)
{
	long double sum = 0;
	size_t i;

	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 0; i < n; i++)
		sum += v[i];
	s->p50 = v[(size_t)ceil(0.50 * n) - 1] / 1e3;
	s->p99 = v[(size_t)ceil(0.99 * n) - 1] / 1e3;
	s->mean = (double)(sum / n) / 1e3;
	s->min = v[0] / 1e3;
	s->max = v[n - 1] / 1e3;
}

/*
 * Voluntary context switches of this process so far: how often it blocked,
 * i.e. really slept instead of finding its answer on the way to sleep.
 */
static long vcsw(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? 0 : ru.ru_nvcsw;
}

/* One result line: the round trips @s and what @x adds. */
static void print_latency(const struct opts *o, const char *what, const char *variant,
			  unsigned long iters, uint64_t errors, const struct summary *s,
			  const struct lat_extra *x)
{
	const struct rt_cost *rc = &x->rc;

	if (o->json) {
		printf("{\"mode\":\"%s\",\"op\":\"%s\",\"iters\":%lu,\"errors\":%llu,"
		       "\"p50_us\":%.2f,\"p99_us\":%.2f,\"mean_us\":%.2f,"
		       "\"min_us\":%.2f,\"max_us\":%.2f",
		       what, variant, iters, (unsigned long long)errors,
		       s->p50, s->p99, s->mean, s->min, s->max);
		printf(",\"blocks_per_request\":%.3f", x->blocks);
		if (x->spin_us >= 0)
			printf(",\"spin_us\":%ld", x->spin_us);
		if (rc->valid)
			printf(",\"doorbells_per_request\":%.3f,\"wakeups_per_request\":%.3f",
			       rc->doorbells, rc->wakeups);
		printf("}\n");
	} else {
		printf("%s %s: %lu round trips, p50 %.2f us, p99 %.2f us, mean %.2f us "
		       "(min %.2f, max %.2f), %llu errors",
		       what, variant, iters, s->p50, s->p99, s->mean, s->min, s->max,
		       (unsigned long long)errors);
		printf(", client blocked %.3f times per round trip", x->blocks);
		if (x->spin_us >= 0)
			printf(", client spin %ld us", x->spin_us);
		if (rc->valid)
			printf(", %.3f doorbells and %.3f wake-ups per request",
			       rc->doorbells, rc->wakeups);
		printf("\n");
	}
	fflush(stdout);
}

/* Per-request doorbells and wake-ups between two readings of the counters. */
static void rt_cost(struct rt_cost *rc, const struct llmq_stats *a, const struct llmq_stats *b,
		    uint64_t requests)
{
	rc->valid = requests && b->doorbells >= a->doorbells && b->wakeups >= a->wakeups;
	if (!rc->valid)
		return;
	rc->doorbells = (double)(b->doorbells - a->doorbells) / requests;
	rc->wakeups = (double)(b->wakeups - a->wakeups) / requests;
}

/* Apply --spin-us to a ring just attached. */
static void set_spin(const struct opts *o, struct llmq_ring *ring)
{
	if (o->spin_us >= 0)
		llmq_set_spin(ring, (unsigned int)o->spin_us);
}

/* Wait for the next completion: libllmq's spin-then-sleep, or --spin. */
static int reap_one(struct llmq_ring *ring, struct llmq_cqe **cqe, bool spin)
{
	uint64_t limit;
	int err;

	if (!spin)
		return llmq_wait_cqe_timeout(ring, cqe, WAIT_MS);
	limit = now_ns() + WAIT_MS * 1000000ULL;
	for (;;) {
		err = llmq_peek_cqe(ring, cqe);
		if (err != -EAGAIN)
			return err;
		if (now_ns() > limit)
			return -ETIME;
		cpu_relax();
	}
}

/* Fill one SQE for request @ud: a NOP, or GENERATE of one streamed token. */
static int prep_request(struct llmq_ring *ring, struct llmq_sqe *sqe, bool nop,
			const struct llmq_sampling *sp, uint64_t ud)
{
	if (nop) {
		llmq_prep_nop(sqe, ud);
		return 0;
	}
	return llmq_prep_generate(ring, sqe, prompt, sizeof(prompt) - 1, sp, ud);
}

/*
 * Check the @nth CQE of a request against what a NOP (one final CQE, res 0)
 * or a one-token streamed GENERATE (a token CQE with MORE, then a final
 * CQE with res 1) must produce.  Returns true for a well-formed CQE.
 */
static bool cqe_ok(const struct llmq_cqe *cqe, bool nop, unsigned int nth)
{
	bool final = !(cqe->flags & LLMQ_CQE_F_MORE);

	if (nop)
		return final && cqe->res == 0 && nth == 0;
	if (final)
		return cqe->res == 1 && cqe->finish == LLMQ_FINISH_LENGTH && nth == 1;
	return cqe->res == 0 && (cqe->flags & LLMQ_CQE_F_TOKEN) && nth == 0;
}

static int cmd_latency(const struct opts *o)
{
	bool nop = !strcmp(o->op, "nop");
	unsigned long total = o->warmup + o->iters, i;
	struct lat_extra x = { .spin_us = -1 };
	struct llmq_stats st0, st1;
	struct llmq_sampling sp;
	struct llmq_ring ring;
	struct llmq_sqe *sqe;
	struct llmq_cqe *cqe;
	struct summary s;
	uint64_t *lat, t0, errors = 0;
	unsigned int nth;
	bool final, have_stats = false;
	long sw0 = 0;
	int err, ret = 1;

	if (!o->socket) {
		fprintf(stderr, "llmq-ringbench: latency needs --socket\n");
		return 2;
	}
	lat = calloc(o->iters, sizeof(*lat));
	if (!lat) {
		fprintf(stderr, "llmq-ringbench: out of memory\n");
		return 1;
	}
	llmq_sampling_init(&sp);
	sp.max_tokens = 1;
	sp.flags = LLMQ_SQE_STREAM;
	err = llmq_queue_init(&ring, o->socket, NULL);
	if (err) {
		fprintf(stderr, "llmq-ringbench: cannot attach to %s: %s\n", o->socket,
			strerror(-err));
		goto out_free;
	}
	set_spin(o, &ring);
	for (i = 0; i < total; i++) {
		/* The counters, read outside the timing, cover the timed requests. */
		if (i == o->warmup) {
			have_stats = !llmq_get_stats(o->socket, &st0);
			sw0 = vcsw();
		}
		t0 = now_ns();
		sqe = llmq_get_sqe(&ring);
		if (!sqe) {
			/* Nothing is in flight between iterations: a full SQ is a bug. */
			err = -EAGAIN;
			goto fail;
		}
		err = prep_request(&ring, sqe, nop, &sp, i);
		if (err)
			goto fail;
		err = llmq_submit(&ring);
		if (err < 0)
			goto fail;
		nth = 0;
		do {
			err = reap_one(&ring, &cqe, o->spin);
			if (err)
				goto fail;
			final = !(cqe->flags & LLMQ_CQE_F_MORE);
			if (cqe->user_data != i || !cqe_ok(cqe, nop, nth))
				errors++;
			nth++;
			llmq_cqe_seen(&ring, cqe);
		} while (!final);
		if (i >= o->warmup)
			lat[i - o->warmup] = now_ns() - t0;
	}
	x.blocks = (double)(vcsw() - sw0) / o->iters;
	if (have_stats && !llmq_get_stats(o->socket, &st1))
		rt_cost(&x.rc, &st0, &st1, o->iters);
	if (!o->spin)
		x.spin_us = ring.spin_us;
	summarise(lat, o->iters, &s);
	print_latency(o, o->spin ? "ring-spin" : "ring", o->op, o->iters, errors, &s, &x);
	ret = errors ? 1 : 0;
	goto out_exit;
fail:
	fprintf(stderr, "llmq-ringbench: latency: request %lu: %s\n", i, strerror(-err));
out_exit:
	llmq_queue_exit(&ring);
out_free:
	free(lat);
	return ret;
}

/*
 * One throughput client: attach, report ready, wait for the start, then
 * keep @window GENERATE requests of one token in flight for @seconds.
 * Requests still in flight at the deadline are drained but not counted.
 */
static void tp_client(const struct opts *o, int ready_fd, int go_fd, struct tally *t)
{
	uint64_t sent_at[MAX_WINDOW], busy_ud[MAX_WINDOW], start, deadline, now, seq = 0, ud;
	unsigned int cqes_of[MAX_WINDOW], free_slot[MAX_WINDOW], nr_free;
	struct llmq_params p = {
		.sq_entries = 64,
		.cq_entries = 256,
		.arena_size = 64 * 1024,
	};
	unsigned int inflight = 0, pending = 0, slot;
	struct llmq_sampling sp;
	struct llmq_ring ring;
	struct llmq_sqe *sqe;
	struct llmq_cqe *cqe;
	bool final, counting;
	char c = 0;
	int err, init_err;

	while (p.sq_entries < o->window)
		p.sq_entries *= 2;
	while (p.cq_entries < 4 * p.sq_entries)
		p.cq_entries *= 2;
	llmq_sampling_init(&sp);
	sp.max_tokens = 1;
	sp.flags = LLMQ_SQE_STREAM;
	init_err = llmq_queue_init(&ring, o->socket, &p);
	if (!init_err) {
		set_spin(o, &ring);
		t->spin_us = ring.spin_us;
	}
	/*
	 * Ready (or failed): the parent starts everyone at once when all have
	 * said so or died, which it learns from EOF once every copy of the
	 * write end is closed.
	 */
	err = write(ready_fd, &c, 1) == 1 ? 0 : -EPIPE;
	close(ready_fd);
	if (read(go_fd, &c, 1) < 0 && !err)
		err = -errno;
	if (init_err || err) {
		t->err = init_err ? init_err : err;
		if (!init_err)
			llmq_queue_exit(&ring);
		return;
	}
	/* Requests may finish out of order: each in-flight one owns a slot. */
	for (nr_free = 0; nr_free < o->window; nr_free++) {
		free_slot[nr_free] = nr_free;
		busy_ud[nr_free] = UINT64_MAX;
	}
	start = now_ns();
	deadline = start + (uint64_t)(o->seconds * 1e9);
	counting = true;
	for (;;) {
		now = now_ns();
		if (counting && now >= deadline)
			counting = false;
		/* Top the window up. */
		while (counting && inflight < o->window) {
			sqe = llmq_get_sqe(&ring);
			if (!sqe)
				break;		/* SQ full: reap first */
			slot = free_slot[nr_free - 1];
			ud = seq << SLOT_BITS | slot;
			err = llmq_prep_generate(&ring, sqe, prompt, sizeof(prompt) - 1, &sp, ud);
			if (err == -EAGAIN) {
				/* Arena full: the SQE is ours, send it as a NOP and reap. */
				llmq_prep_nop(sqe, UINT64_MAX);
				pending++;
				break;
			}
			if (err)
				goto fail;
			nr_free--;
			busy_ud[slot] = ud;
			sent_at[slot] = now;
			cqes_of[slot] = 0;
			seq++;
			inflight++;
			pending++;
		}
		if (pending) {
			err = llmq_submit(&ring);
			if (err < 0)
				goto fail;
			pending = 0;
		}
		if (!inflight)
			break;
		err = llmq_wait_cqe_timeout(&ring, &cqe, WAIT_MS);
		if (err)
			goto fail;
		now = now_ns();
		do {
			final = !(cqe->flags & LLMQ_CQE_F_MORE);
			if (cqe->user_data == UINT64_MAX) {
				/* the filler NOP of an arena stall */
				llmq_cqe_seen(&ring, cqe);
				continue;
			}
			slot = cqe->user_data & ((1U << SLOT_BITS) - 1);
			if (slot >= o->window || busy_ud[slot] != cqe->user_data) {
				/* not a request in flight: wrong user_data or a 2nd end */
				t->errors++;
				llmq_cqe_seen(&ring, cqe);
				continue;
			}
			if (!cqe_ok(cqe, false, cqes_of[slot]))
				t->errors++;
			cqes_of[slot]++;
			if (now < deadline) {
				t->cqes++;
				if (cqe->flags & LLMQ_CQE_F_TOKEN)
					t->tokens++;
			}
			if (final) {
				busy_ud[slot] = UINT64_MAX;
				free_slot[nr_free++] = slot;
				inflight--;
				if (now < deadline) {
					t->requests++;
					t->lat_sum_ns += now - sent_at[slot];
				}
			}
			llmq_cqe_seen(&ring, cqe);
		} while (llmq_peek_cqe(&ring, &cqe) == 0);
	}
	t->elapsed_ns = deadline - start;
	llmq_queue_exit(&ring);
	return;
fail:
	t->err = err;
	llmq_queue_exit(&ring);
}

static int cmd_throughput(const struct opts *o)
{
	int ready[2], go[2], res[2];
	unsigned long i, started = 0, got = 0;
	struct tally sum = { 0 }, t;
	double rps = 0, cps = 0, tps = 0, lat = 0, per_step = 0, per_wake = 0;
	struct llmq_stats st0, st1;
	struct rt_cost rc = { 0 };
	long spin_us = -1;
	bool have_stats;
	pid_t *pids;
	char c;
	int status, ret = 1;
	ssize_t n;

	if (!o->socket || !o->clients) {
		fprintf(stderr, "llmq-ringbench: throughput needs --socket and --clients\n");
		return 2;
	}
	pids = calloc(o->clients, sizeof(*pids));
	if (!pids)
		return 1;
	if (pipe(ready) < 0)
		goto out_free;
	if (pipe(go) < 0)
		goto out_ready;
	if (pipe(res) < 0)
		goto out_go;
	fflush(stdout);
	for (i = 0; i < o->clients; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("llmq-ringbench: fork");
			break;
		}
		if (!pids[i]) {
			memset(&t, 0, sizeof(t));
			close(ready[0]);
			close(go[1]);
			close(res[0]);
			tp_client(o, ready[1], go[0], &t);
			/* sizeof(t) < PIPE_BUF: the write is atomic */
			_exit(write(res[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
		}
		started++;
	}
	close(ready[1]);
	close(go[0]);
	close(res[1]);
	ready[1] = go[0] = res[1] = -1;
	/* Everyone attached (or failed); then start them all at once. */
	for (i = 0; i < started; i++) {
		if (read(ready[0], &c, 1) != 1)
			break;
	}
	have_stats = !llmq_get_stats(o->socket, &st0);
	close(go[1]);
	go[1] = -1;
	while ((n = read(res[0], &t, sizeof(t))) == sizeof(t)) {
		got++;
		if (t.err && !sum.err)
			sum.err = t.err;
		sum.errors += t.errors;
		if (!t.err && t.elapsed_ns) {
			rps += t.requests * 1e9 / t.elapsed_ns;
			cps += t.cqes * 1e9 / t.elapsed_ns;
		}
		sum.requests += t.requests;
		sum.cqes += t.cqes;
		sum.tokens += t.tokens;
		if (!t.err && t.elapsed_ns)
			tps += t.tokens * 1e9 / t.elapsed_ns;
		sum.lat_sum_ns += t.lat_sum_ns;
		if (!t.err)
			spin_us = t.spin_us;
	}
	for (i = 0; i < started; i++)
		waitpid(pids[i], &status, 0);
	/* Runtime's view, drained requests included: batching and wake-ups. */
	if (have_stats && !llmq_get_stats(o->socket, &st1)) {
		if (st1.steps > st0.steps)
			per_step = (double)(st1.requests_total - st0.requests_total) /
				   (st1.steps - st0.steps);
		if (st1.wakeups > st0.wakeups)
			per_wake = (double)(st1.cqes_posted - st0.cqes_posted) /
				   (st1.wakeups - st0.wakeups);
		rt_cost(&rc, &st0, &st1, st1.requests_total - st0.requests_total);
	}
	if (sum.requests)
		lat = sum.lat_sum_ns / 1e3 / sum.requests;
	if (o->json) {
		printf("{\"mode\":\"throughput\",\"clients\":%lu,\"window\":%lu,\"seconds\":%.2f,"
		       "\"requests\":%llu,\"tokens\":%llu,\"cqes\":%llu,\"errors\":%llu,"
		       "\"failed_clients\":%lu,\"requests_per_s\":%.0f,\"tokens_per_s\":%.0f,"
		       "\"cqes_per_s\":%.0f,\"mean_latency_us\":%.2f,"
		       "\"requests_per_step\":%.2f,\"cqes_per_wakeup\":%.2f,"
		       "\"doorbells_per_request\":%.3f,\"wakeups_per_request\":%.3f,"
		       "\"spin_us\":%ld}\n",
		       o->clients, o->window, o->seconds, (unsigned long long)sum.requests,
		       (unsigned long long)sum.tokens, (unsigned long long)sum.cqes,
		       (unsigned long long)sum.errors, o->clients - got, rps, tps, cps, lat,
		       per_step, per_wake, rc.doorbells, rc.wakeups, spin_us);
	} else {
		printf("throughput %lu clients x window %lu, %.1f s, client spin %ld us: "
		       "%.0f requests/s, %.0f tokens/s, %.0f CQEs/s, mean latency %.2f us, "
		       "%.2f requests/step, %.2f CQEs/wake-up, %.3f doorbells/request, "
		       "%llu errors\n",
		       o->clients, o->window, o->seconds, spin_us, rps, tps, cps, lat,
		       per_step, per_wake, rc.doorbells, (unsigned long long)sum.errors);
	}
	fflush(stdout);
	if (sum.err)
		fprintf(stderr, "llmq-ringbench: throughput: a client failed: %s\n",
			strerror(-sum.err));
	if (got != o->clients)
		fprintf(stderr, "llmq-ringbench: throughput: %lu of %lu clients reported\n",
			got, o->clients);
	ret = sum.err || sum.errors || got != o->clients;
	close(res[0]);
out_go:
	if (go[0] >= 0)
		close(go[0]);
	if (go[1] >= 0)
		close(go[1]);
out_ready:
	close(ready[0]);
	if (ready[1] >= 0)
		close(ready[1]);
out_free:
	free(pids);
	return ret;
}

/*
 * The machine's floor for any two-process round trip that sleeps: a child
 * and the parent wake each other through two eventfds, the parent sleeping
 * in poll() as llmq_wait_cqe() does.
 */
static int cmd_wake(const struct opts *o)
{
	unsigned long total = o->warmup + o->iters, i;
	struct lat_extra x = { .spin_us = -1 };
	struct pollfd pfd;
	struct summary s;
	uint64_t *lat, t0, v = 1;
	int ping, pong, ret = 1, status;
	long sw0 = 0;
	pid_t pid;

	lat = calloc(o->iters, sizeof(*lat));
	if (!lat)
		return 1;
	ping = eventfd(0, EFD_CLOEXEC);
	pong = eventfd(0, EFD_CLOEXEC);
	if (ping < 0 || pong < 0) {
		perror("llmq-ringbench: eventfd");
		goto out_close;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("llmq-ringbench: fork");
		goto out_close;
	}
	if (!pid) {
		if (o->peer_cpu >= 0 && pin_cpu("peer-cpu", o->peer_cpu))
			_exit(1);
		for (i = 0; i < total; i++) {
			if (read(ping, &v, sizeof(v)) != sizeof(v) ||
			    write(pong, &v, sizeof(v)) != sizeof(v))
				_exit(1);
		}
		_exit(0);
	}
	pfd = (struct pollfd){ .fd = pong, .events = POLLIN };
	for (i = 0; i < total; i++) {
		if (i == o->warmup)
			sw0 = vcsw();
		t0 = now_ns();
		if (write(ping, &v, sizeof(v)) != sizeof(v))
			break;
		if (poll(&pfd, 1, WAIT_MS) != 1 || read(pong, &v, sizeof(v)) != sizeof(v))
			break;
		if (i >= o->warmup)
			lat[i - o->warmup] = now_ns() - t0;
	}
	if (i < total) {
		fprintf(stderr, "llmq-ringbench: wake: round trip %lu failed\n", i);
		kill(pid, SIGKILL);
	}
	x.blocks = (double)(vcsw() - sw0) / o->iters;
	waitpid(pid, &status, 0);
	if (i == total) {
		summarise(lat, o->iters, &s);
		print_latency(o, "wake", "eventfd", o->iters, 0, &s, &x);
		ret = 0;
	}
out_close:
	if (ping >= 0)
		close(ping);
	if (pong >= 0)
		close(pong);
	free(lat);
	return ret;
}

static int http_connect(const struct opts *o)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)o->port),
	};
	int fd, one = 1;

	if (inet_pton(AF_INET, o->host, &sin.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		one = -errno;
		close(fd);
		return one;
	}
	return fd;
}

/* Value of header @name in the header block @hdr (NUL-terminated), or -1. */
static long header_long(const char *hdr, const char *name)
{
	size_t nl = strlen(name);
	const char *p = hdr;

	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (!strncasecmp(p, name, nl) && p[nl] == ':')
			return strtol(p + nl + 1, NULL, 10);
	}
	return -1;
}

static bool header_has(const char *hdr, const char *name, const char *value)
{
	size_t nl = strlen(name);
	const char *p = hdr, *e;

	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (strncasecmp(p, name, nl) || p[nl] != ':')
			continue;
		e = strstr(p, "\r\n");
		p += nl + 1;
		while (*p == ' ')
			p++;
		return e && (size_t)(e - p) >= strlen(value) &&
		       !strncasecmp(p, value, strlen(value));
	}
	return false;
}

/*
 * One GET on the keep-alive connection @fd: send, read the header block,
 * then exactly Content-Length body bytes.  Returns 0 with *keep telling
 * whether the server keeps the connection, -EPIPE if the server had
 * already closed it (retry on a new one), or another -errno.
 */
static int http_get(int fd, const char *req, size_t req_len, char *buf, bool *keep)
{
	size_t have = 0, hdr_len = 0, want = 0;
	long clen;
	char *end;
	ssize_t n;

	n = send(fd, req, req_len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
	if ((size_t)n != req_len)
		return -EIO;
	for (;;) {
		n = recv(fd, buf + have, HTTP_BUF - 1 - have, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECONNRESET && !have ? -EPIPE : -errno;
		}
		if (n == 0)
			return have ? -EPROTO : -EPIPE;
		have += (size_t)n;
		buf[have] = '\0';
		if (!hdr_len) {
			end = strstr(buf, "\r\n\r\n");
			if (!end) {
				if (have == HTTP_BUF - 1)
					return -E2BIG;
				continue;
			}
			hdr_len = (size_t)(end - buf) + 4;
			if (strncmp(buf, "HTTP/1.1 200", 12))
				return -EPROTO;
			clen = header_long(buf, "Content-Length");
			if (clen < 0 || (size_t)clen > HTTP_BUF - 1 - hdr_len)
				return -EPROTO;
			want = hdr_len + (size_t)clen;
			*keep = !header_has(buf, "Connection", "close");
		}
		if (have >= want)
			return have == want ? 0 : -EPROTO;
	}
}

static int cmd_http(const struct opts *o)
{
	unsigned long total = o->warmup + o->iters, i;
	struct lat_extra x = { .spin_us = -1 };
	uint64_t *lat, t0;
	struct summary s;
	char req[512], *buf;
	long sw0 = 0;
	unsigned long reconnects = 0;
	int fd = -1, err = 0, ret = 1, len;
	bool keep = true;

	if (!o->port) {
		fprintf(stderr, "llmq-ringbench: http needs --port\n");
		return 2;
	}
	len = snprintf(req, sizeof(req),
		       "GET %s HTTP/1.1\r\nHost: %s:%lu\r\nUser-Agent: llmq-ringbench\r\n"
		       "Accept: */*\r\n\r\n", o->path, o->host, o->port);
	if (len < 0 || (size_t)len >= sizeof(req)) {
		fprintf(stderr, "llmq-ringbench: --path too long\n");
		return 2;
	}
	lat = calloc(o->iters, sizeof(*lat));
	buf = malloc(HTTP_BUF);
	if (!lat || !buf) {
		fprintf(stderr, "llmq-ringbench: out of memory\n");
		goto out_free;
	}
	for (i = 0; i < total; i++) {
		if (fd < 0 || !keep) {
			if (fd >= 0) {
				close(fd);
				reconnects++;
			}
			fd = http_connect(o);
			if (fd < 0) {
				err = fd;
				goto fail;
			}
		}
		if (i == o->warmup)
			sw0 = vcsw();
		t0 = now_ns();
		err = http_get(fd, req, (size_t)len, buf, &keep);
		if (err == -EPIPE) {
			/* closed while idle: a new connection, and time it afresh */
			close(fd);
			reconnects++;
			fd = http_connect(o);
			if (fd < 0) {
				err = fd;
				goto fail;
			}
			t0 = now_ns();
			err = http_get(fd, req, (size_t)len, buf, &keep);
		}
		if (err)
			goto fail;
		if (i >= o->warmup)
			lat[i - o->warmup] = now_ns() - t0;
	}
	x.blocks = (double)(vcsw() - sw0) / o->iters;
	summarise(lat, o->iters, &s);
	print_latency(o, "http", "get", o->iters, 0, &s, &x);
	if (reconnects)
		fprintf(stderr, "llmq-ringbench: http: server closed the connection %lu times\n",
			reconnects);
	ret = 0;
	goto out_close;
fail:
	fprintf(stderr, "llmq-ringbench: http: request %lu to %s:%lu: %s\n", i, o->host, o->port,
		strerror(-err));
out_close:
	if (fd >= 0)
		close(fd);
out_free:
	free(buf);
	free(lat);
	return ret;
}

/**
 * main() - run one benchmark command
 * @argc:	argument count
 * @argv:	the command (latency, throughput, http, wake), then its options
 *
 * Return: 0, 1 when the benchmark failed or saw a wrong count, 2 on usage.
 */
int main(int argc, char **argv)
{
	struct opts o = {
		.host = "127.0.0.1",
		.path = "/",
		.op = "generate",
		.iters = DEF_ITERS,
		.warmup = DEF_WARMUP,
		.window = DEF_WINDOW,
		.seconds = DEF_SECONDS,
		.cpu = -1,
		.peer_cpu = -1,
		.spin_us = -1,
	};
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (parse_opts(&o, argc - 1, argv + 1))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (o.cpu >= 0 && pin_cpu("cpu", o.cpu))
		return 2;
	if (!strcmp(cmd, "latency"))
		return cmd_latency(&o);
	if (!strcmp(cmd, "throughput"))
		return cmd_throughput(&o);
	if (!strcmp(cmd, "http"))
		return cmd_http(&o);
	if (!strcmp(cmd, "wake"))
		return cmd_wake(&o);
	fprintf(stderr, "llmq-ringbench: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
