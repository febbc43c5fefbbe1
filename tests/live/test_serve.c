// SPDX-License-Identifier: GPL-2.0
/*
 * Live serving tests on a real model: llmqd --engine cpu on a `tiny` GGUF,
 * many client processes at once.  Batching, preemption and the prefix cache
 * must be invisible in the output: every client gets exactly the greedy
 * tokens it gets when served alone on a daemon that does none of that.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "libllmq.h"

#define WAIT_MS		60000
#define N_CLIENTS	32
#define N_GEN		40

static char model[PATH_MAX];
/*
 * alone: no batching, no prefix cache; crowd: defaults; tight: a tiny KV
 * pool; bare: the same without prefix caching, so preempted sequences are
 * recomputed in full rather than found again in the cache.
 */
static struct daemon alone, crowd, tight, bare;

/* Token ids per client, in memory shared with the client processes. */
struct shared {
	uint32_t	ids[N_CLIENTS][N_GEN];
	int		res[N_CLIENTS];
	uint32_t	ref[N_CLIENTS][N_GEN];
};

static struct shared *sh;

static void prompt_of(int i, char *buf, size_t len)
{
	static const char *const topics[] = {
		"the river", "a lighthouse", "seven ships", "the old mill", "winter rain",
		"the market", "a quiet garden", "iron bells",
	};

	snprintf(buf, len, "Client %d tells a story about %s and number %d:", i,
		 topics[i % 8], i * 37 % 101);
}

/* Generate greedily, streamed, and record the token ids. */
static int generate(const char *sock, const char *prompt, uint32_t n, uint32_t *ids)
{
	struct llmq_params p = { .sq_entries = 4, .cq_entries = 64, .arena_size = 65536 };
	struct llmq_sampling sp;
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	uint32_t got = 0;
	int res = -EPROTO;

	if (llmq_queue_init(&r, sock, &p))
		return -ECONNREFUSED;
	llmq_sampling_init(&sp);
	sp.max_tokens = n;
	sp.flags = LLMQ_SQE_STREAM | LLMQ_SQE_IGNORE_EOS;
	if (llmq_prep_generate(&r, llmq_get_sqe(&r), prompt, strlen(prompt), &sp, 1) ||
	    llmq_submit(&r) != 1)
		goto out;
	for (;;) {
		if (llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS)) {
			res = -ETIMEDOUT;
			break;
		}
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			res = cqe->res;
			llmq_cqe_seen(&r, cqe);
			break;
		}
		if ((cqe->flags & LLMQ_CQE_F_TOKEN) && got < n)
			ids[got++] = cqe->token;
		llmq_cqe_seen(&r, cqe);
	}
	if (res >= 0 && (uint32_t)res != got)
		res = -EPROTO;
out:
	llmq_queue_exit(&r);
	return res;
}

/* All clients at once, each its own process and ring. */
static void crowd_run(const char *sock)
{
	pid_t pids[N_CLIENTS];
	char prompt[128];
	int i, st;

	memset(sh->ids, 0, sizeof(sh->ids));
	for (i = 0; i < N_CLIENTS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			prompt_of(i, prompt, sizeof(prompt));
			sh->res[i] = generate(sock, prompt, N_GEN, sh->ids[i]);
			_exit(0);
		}
	}
	for (i = 0; i < N_CLIENTS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && !WEXITSTATUS(st));
	}
}

static int setup(void **state)
{
	static const char *const alone_args[] = { "--model", model, "--threads", "1",
		"--max-num-seqs", "1", "--batch-timeout-ms", "0", "--no-prefix-caching", NULL };
	static const char *const crowd_args[] = { "--model", model, "--threads", "1",
		"--batch-timeout-ms", "20", NULL };
	/* 24 blocks of 16 tokens for 32 sequences of ~70 tokens: preemption. */
	static const char *const tight_args[] = { "--model", model, "--threads", "1",
		"--num-kv-blocks", "24", "--batch-timeout-ms", "20", NULL };
	static const char *const bare_args[] = { "--model", model, "--threads", "1",
		"--num-kv-blocks", "24", "--batch-timeout-ms", "20", "--no-prefix-caching", NULL };
	char cmd[PATH_MAX * 2 + 64], prompt[128];
	int i;

	(void)state;
	snprintf(model, sizeof(model), "/tmp/llmq-test-serve-%d.gguf", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s/llmq-mkmodel --preset tiny --dtype F32 -o %s >/dev/null",
		 harness_bin_dir, model);
	if (system(cmd)) {
		fprintf(stderr, "cannot make %s\n", model);
		return -1;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -1;
	if (daemon_start(&alone, "alone", alone_args) ||
	    daemon_start(&crowd, "crowd", crowd_args) ||
	    daemon_start(&tight, "tight", tight_args) || daemon_start(&bare, "bare", bare_args)) {
		fprintf(stderr, "cannot start llmqd from %s\n", harness_bin_dir);
		return -1;
	}
	/* The reference: each prompt served alone, one after the other. */
	for (i = 0; i < N_CLIENTS; i++) {
		prompt_of(i, prompt, sizeof(prompt));
		if (generate(alone.sock, prompt, N_GEN, sh->ref[i]) != N_GEN) {
			fprintf(stderr, "reference generation %d failed\n", i);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	daemon_stop(&alone, SIGKILL);
	daemon_stop(&crowd, SIGKILL);
	daemon_stop(&tight, SIGKILL);
	daemon_stop(&bare, SIGKILL);
	unlink(model);
	return 0;
}

/*
 * SIGTERM and SIGINT stop a CPU-engine llmqd cleanly (status 0) even with
 * compute threads, which must not be the ones the signal lands on.
 */
static void test_signals_stop_cleanly(void **state)
{
	static const char *const args[] = { "--model", model, "--threads", "2", NULL };
	static const int sigs[] = { SIGTERM, SIGINT };
	uint32_t ids[8];
	struct daemon d;
	char name[16];
	unsigned int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "sig%u", i);
		assert_int_equal(daemon_start(&d, name, args), 0);
		assert_int_equal(generate(d.sock, "warm up", 4, ids), 4);
		assert_int_equal(daemon_stop(&d, sigs[i]), 0);
	}
}

static void assert_same_as_alone(void)
{
	int i;

	for (i = 0; i < N_CLIENTS; i++) {
		if (sh->res[i] != N_GEN)
			fail_msg("client %d: res %d, expected %d tokens", i, sh->res[i], N_GEN);
		if (memcmp(sh->ids[i], sh->ref[i], sizeof(sh->ref[i])))
			fail_msg("client %d: tokens differ from its run alone", i);
	}
}

/* 32 clients at once get what each gets alone; and they were batched. */
static void test_crowd_same_tokens(void **state)
{
	struct llmq_stats a, b;

	(void)state;
	assert_int_equal(llmq_get_stats(crowd.sock, &a), 0);
	crowd_run(crowd.sock);
	assert_int_equal(llmq_get_stats(crowd.sock, &b), 0);
	assert_same_as_alone();
	/* Batched: far fewer steps than the 32 * 40 tokens. */
	assert_true(b.steps - a.steps < (uint64_t)N_CLIENTS * N_GEN / 4);
	assert_int_equal(b.tokens_generated - a.tokens_generated, N_CLIENTS * N_GEN);
	assert_int_equal(b.kv_blocks_used, 0);
	assert_int_equal(b.requests_failed, a.requests_failed);
}

/* A KV pool too small for everyone: preemption happens, output does not change. */
static void tight_run(struct daemon *d)
{
	struct llmq_stats a, b;

	assert_int_equal(llmq_get_stats(d->sock, &a), 0);
	assert_int_equal(a.kv_blocks_total, 24);
	crowd_run(d->sock);
	assert_int_equal(llmq_get_stats(d->sock, &b), 0);
	assert_same_as_alone();
	assert_true(b.preemptions > a.preemptions);
	assert_int_equal(b.kv_blocks_used, 0);
	assert_int_equal(b.requests_failed, a.requests_failed);
}

static void test_tight_pool_preempts(void **state)
{
	(void)state;
	tight_run(&tight);
}

static void test_tight_pool_recomputes(void **state)
{
	(void)state;
	tight_run(&bare);
}

/* Two prompts sharing a long prefix: the second finds it in the cache. */
static void test_prefix_shared(void **state)
{
	char p1[2048], p2[2048], common[1536];
	uint32_t want[8], got[8];
	struct llmq_stats a, b, c;
	int i, n = 0;

	(void)state;
	for (i = 0; i < 24; i++)
		n += snprintf(common + n, sizeof(common) - n, "rule %d of the house; ", i);
	snprintf(p1, sizeof(p1), "%sFirst question?", common);
	snprintf(p2, sizeof(p2), "%sA different second question!", common);
	assert_int_equal(llmq_get_stats(crowd.sock, &a), 0);
	assert_int_equal(generate(crowd.sock, p1, 8, got), 8);
	assert_int_equal(llmq_get_stats(crowd.sock, &b), 0);
	assert_int_equal(generate(crowd.sock, p2, 8, got), 8);
	assert_int_equal(llmq_get_stats(crowd.sock, &c), 0);
	/* The common text is well over 100 tokens: at least 6 full blocks hit. */
	assert_true(c.prefix_cache_hits - b.prefix_cache_hits >= 96);
	assert_true(c.prompt_tokens - b.prompt_tokens <
		    (b.prompt_tokens - a.prompt_tokens) - 96 + 32);
	/* ... and the cached prefix gives the same answer as computing it. */
	assert_int_equal(generate(alone.sock, p2, 8, want), 8);
	assert_memory_equal(got, want, sizeof(want));
}

/* By default users do not share cached prefixes (salted by uid). */
static void test_prefix_salted_by_uid(void **state)
{
	char prompt[1024];
	uint32_t got[4];
	struct llmq_stats a, b;
	int i, n = 0, st;
	pid_t pid;

	(void)state;
	if (geteuid()) {
		skip();		/* needs root to act as a second user */
		return;
	}
	for (i = 0; i < 20; i++)
		n += snprintf(prompt + n, sizeof(prompt) - n, "private note %d; ", i);
	assert_int_equal(generate(crowd.sock, prompt, 4, got), 4);
	assert_int_equal(llmq_get_stats(crowd.sock, &a), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		if (setgid(65534) || setuid(65534))
			_exit(3);
		_exit(generate(crowd.sock, prompt, 4, got) == 4 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && !WEXITSTATUS(st));
	assert_int_equal(llmq_get_stats(crowd.sock, &b), 0);
	assert_int_equal(b.prefix_cache_hits, a.prefix_cache_hits);
	/* The same user again does hit. */
	assert_int_equal(generate(crowd.sock, prompt, 4, got), 4);
	assert_int_equal(llmq_get_stats(crowd.sock, &a), 0);
	assert_true(a.prefix_cache_hits > b.prefix_cache_hits);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crowd_same_tokens),
		cmocka_unit_test(test_tight_pool_preempts),
		cmocka_unit_test(test_tight_pool_recomputes),
		cmocka_unit_test(test_prefix_shared),
		cmocka_unit_test(test_prefix_salted_by_uid),
		cmocka_unit_test(test_signals_stop_cleanly),
	};

	(void)argc;
	harness_init(argv[0]);
	return cmocka_run_group_tests(tests, setup, teardown);
}
