// SPDX-License-Identifier: GPL-2.0
/*
 * llmqd --engine cuda end to end without a GPU: the CUDA backend built over
 * the CUDA emulator (tests/cuda_emu/) as a plugin, backend-cuda-emu.so,
 * which llmqd and llmq run load through $LLMQ_CUDA_BACKEND as they would
 * the real one.  It drives what only serving reaches: tokens drawn on the
 * device for every kind of request, penalised ones included, side by side
 * in one step; decode steps from CUDA graphs.
 * The emulator computes each row alone, in a fixed order, so batching and
 * graphs change no bit: every client gets exactly what it gets alone, as
 * long as its prompt is prefilled in one piece in both (see setup()).
 * Steps run ahead (one planned and queued while the one before runs) on
 * every daemon here; llmq run, one step at a time, is the reference for
 * that.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
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

#define WAIT_MS		120000
#define N_CLIENTS	10
#define N_KINDS		5
#define N_GEN		12

static char model[PATH_MAX], plugin[PATH_MAX + 32];
static bool have_plugin;
/* The stop id of kind 4, and how many tokens come before it. */
static uint32_t stop_id[N_CLIENTS], stop_at[N_CLIENTS];
/* alone: one sequence a step, no prefix cache; crowd: batching */
static struct daemon alone, crowd;

struct result {
	uint32_t	ids[N_GEN];
	int32_t		lp[N_GEN];	/* fixed point, LLMQ_FP_ONE */
	int		res;
};

/* Results per client, in memory shared with the client processes. */
struct shared {
	struct result	got[N_CLIENTS];
	struct result	ref[N_CLIENTS];
};

static struct shared *sh;

/*
 * Client i's request: greedy; temperature with top-k and top-p; a nucleus
 * over the whole vocabulary with min-p; with repetition, presence and
 * frequency penalties (the device counting the token it feeds, which the
 * host's list has not yet); or greedy with a stop id (the request ends
 * while the step after its last has gone out). All drawn on the device.
 */
static void request_of(int i, char *prompt, size_t len, struct llmq_sampling *sp)
{
	llmq_sampling_init(sp);
	snprintf(prompt, len, "Client %d asks about the number %d:", i, i * 53 % 97);
	sp->max_tokens = N_GEN;
	sp->flags = LLMQ_SQE_STREAM | LLMQ_SQE_IGNORE_EOS;
	sp->seed = 1000 + i;
	switch (i % N_KINDS) {
	case 1:
		sp->temperature = 0.8f;
		sp->top_k = 40;
		sp->top_p = 0.9f;
		break;
	case 2:
		sp->temperature = 1.0f;
		sp->top_p = 0.95f;
		sp->min_p = 0.02f;
		break;
	case 3:
		sp->temperature = 0.7f;
		sp->repetition_penalty = 1.3f;
		sp->presence_penalty = 0.4f;
		sp->frequency_penalty = 0.3f;
		break;
	case 4:
		if (stop_id[i] != UINT32_MAX) {
			sp->stop_ids = &stop_id[i];
			sp->nr_stop_ids = 1;
		}
		break;
	}
}

/*
 * Client i's request, streamed, on a fresh ring to @sock; @max_tokens, if
 * not 0, instead of its own. Returns 0, -ECONNREFUSED (no ring), or
 * -EPROTO (the ring open, for the caller to close).
 */
static int start_request(const char *sock, int i, uint32_t max_tokens, struct llmq_ring *r)
{
	struct llmq_params p = { .sq_entries = 4, .cq_entries = 64, .arena_size = 65536 };
	struct llmq_sampling sp;
	char prompt[128];

	request_of(i, prompt, sizeof(prompt), &sp);
	if (max_tokens)
		sp.max_tokens = max_tokens;
	if (llmq_queue_init(r, sock, &p))
		return -ECONNREFUSED;
	if (llmq_prep_generate(r, llmq_get_sqe(r), prompt, strlen(prompt), &sp, 1) ||
	    llmq_submit(r) != 1)
		return -EPROTO;
	return 0;
}

/* Client i's request on @sock, streamed; token ids and log-probabilities. */
static void generate(const char *sock, int i, struct result *out)
{
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	uint32_t got = 0;

	memset(out, 0, sizeof(*out));
	out->res = start_request(sock, i, 0, &r);
	if (out->res == -ECONNREFUSED)
		return;
	if (out->res)
		goto out;
	for (;;) {
		if (llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS)) {
			out->res = -ETIMEDOUT;
			break;
		}
		if (!(cqe->flags & LLMQ_CQE_F_MORE)) {
			out->res = cqe->res;
			llmq_cqe_seen(&r, cqe);
			break;
		}
		if ((cqe->flags & LLMQ_CQE_F_TOKEN) && got < N_GEN) {
			out->lp[got] = cqe->logprob;
			out->ids[got++] = cqe->token;
		}
		llmq_cqe_seen(&r, cqe);
	}
	if (out->res >= 0 && (uint32_t)out->res != got)
		out->res = -EPROTO;
out:
	llmq_queue_exit(&r);
}

static int setup(void **state)
{
	static const char *const alone_args[] = { "--engine", "cuda", "--model", model,
		"--num-kv-blocks", "64", "--max-num-seqs", "1", "--batch-timeout-ms", "0",
		"--no-prefix-caching", NULL };
	/*
	 * The crowd's steps hold every prompt whole, as alone: a prompt split
	 * across steps would leave a chunk too short for attention's tiles,
	 * taken row by row, whose roundings differ from the tiles' (within
	 * test_cuda's tolerances, but not bit for bit).
	 */
	static const char *const crowd_args[] = { "--engine", "cuda", "--model", model,
		"--num-kv-blocks", "64", "--batch-timeout-ms", "200",
		"--max-num-batched-tokens", "512", NULL };
	char cmd[PATH_MAX * 2 + 64];
	int i;

	(void)state;
	snprintf(plugin, sizeof(plugin), "%s/../tests/backend-cuda-emu.so", harness_bin_dir);
	have_plugin = !access(plugin, R_OK);
	if (!have_plugin)
		return 0;
	setenv("LLMQ_CUDA_BACKEND", plugin, 1);
	snprintf(model, sizeof(model), "/tmp/llmq-test-serve-cuda-%d.gguf", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s/llmq-mkmodel --preset tiny --dtype BF16 -o %s >/dev/null",
		 harness_bin_dir, model);
	if (system(cmd)) {
		fprintf(stderr, "cannot make %s\n", model);
		return -1;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -1;
	if (daemon_start(&alone, "cuda-alone", alone_args) ||
	    daemon_start(&crowd, "cuda-crowd", crowd_args)) {
		fprintf(stderr, "cannot start llmqd --engine cuda over %s\n", plugin);
		return -1;
	}
	/*
	 * Kind 4 stops at the first token of its own greedy continuation that
	 * comes third or later and not before: run it once without a stop.
	 */
	for (i = 0; i < N_CLIENTS; i++)
		stop_id[i] = UINT32_MAX;
	for (i = N_KINDS - 1; i < N_CLIENTS; i += N_KINDS) {
		uint32_t j, k;

		generate(alone.sock, i, &sh->ref[i]);
		if (sh->ref[i].res != N_GEN)
			return -1;
		for (j = 2; j < N_GEN && stop_id[i] == UINT32_MAX; j++) {
			for (k = 0; k < j && sh->ref[i].ids[k] != sh->ref[i].ids[j]; k++)
				;
			if (k == j) {
				stop_id[i] = sh->ref[i].ids[j];
				stop_at[i] = j;
			}
		}
	}
	/* The reference: each request served alone, one after the other. */
	for (i = 0; i < N_CLIENTS; i++) {
		uint32_t want = stop_id[i] != UINT32_MAX ? stop_at[i] : N_GEN;

		generate(alone.sock, i, &sh->ref[i]);
		if (sh->ref[i].res != (int)want) {
			fprintf(stderr, "reference generation %d: %d, expected %u\n", i,
				sh->ref[i].res, want);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!have_plugin)
		return 0;
	daemon_stop(&alone, SIGKILL);
	daemon_stop(&crowd, SIGKILL);
	unlink(model);
	return 0;
}

#define NEED_PLUGIN()								\
	do {									\
		if (!have_plugin) {						\
			print_message("[  SKIP    ] %s is not built (it needs nvcc's " \
				      "headers and a C++ compiler)\n", plugin);	\
			skip();							\
		}								\
	} while (0)

/*
 * Ten clients at once, two of each kind of request, get the tokens and
 * log-probabilities each gets alone (the stopped ones exactly up to their
 * stop id); they were batched, their decode steps came from CUDA graphs
 * and ran ahead, and the device drew every token.
 */
static void test_crowd_same_as_alone(void **state)
{
	uint64_t tokens = 0;
	struct llmq_stats a, b;
	pid_t pids[N_CLIENTS];
	int i, st;

	(void)state;
	NEED_PLUGIN();
	assert_int_equal(llmq_get_stats(crowd.sock, &a), 0);
	for (i = 0; i < N_CLIENTS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			generate(crowd.sock, i, &sh->got[i]);
			_exit(0);
		}
	}
	for (i = 0; i < N_CLIENTS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && !WEXITSTATUS(st));
	}
	assert_int_equal(llmq_get_stats(crowd.sock, &b), 0);
	for (i = 0; i < N_CLIENTS; i++) {
		if (sh->got[i].res != sh->ref[i].res)
			fail_msg("client %d: res %d, alone %d", i, sh->got[i].res, sh->ref[i].res);
		if (memcmp(sh->got[i].ids, sh->ref[i].ids, sizeof(sh->ref[i].ids)))
			fail_msg("client %d (kind %d): tokens differ from its run alone", i,
				 i % N_KINDS);
		if (memcmp(sh->got[i].lp, sh->ref[i].lp, sizeof(sh->ref[i].lp)))
			fail_msg("client %d (kind %d): log-probabilities differ from its run "
				 "alone", i, i % N_KINDS);
	}
	assert_true(b.steps - a.steps < (uint64_t)N_CLIENTS * N_GEN / 2);
	print_message("[          ] %u and %u tokens before the stop ids; %llu tokens, %llu drawn on "
		      "the device, %llu steps, %llu from graphs, %llu run ahead\n", stop_at[4],
		      stop_at[9], (unsigned long long)(b.tokens_generated - a.tokens_generated),
		      (unsigned long long)(b.device_sampled_tokens - a.device_sampled_tokens),
		      (unsigned long long)(b.steps - a.steps),
		      (unsigned long long)(b.graph_steps - a.graph_steps),
		      (unsigned long long)(b.steps_ahead - a.steps_ahead));
	/*
	 * Every token, the stop ids included, once: none counted for a step
	 * that ran ahead past a request's end. All drawn on the GPU.
	 */
	for (i = 0; i < N_CLIENTS; i++)
		tokens += sh->ref[i].res + (stop_id[i] != UINT32_MAX);
	assert_int_equal(b.tokens_generated - a.tokens_generated, tokens);
	assert_int_equal(b.device_sampled_tokens - a.device_sampled_tokens, tokens);
	assert_true(b.graph_steps - a.graph_steps >= N_GEN - 2);
	/* Every step but the first of a run goes out before the one before ends. */
	assert_true(b.steps_ahead - a.steps_ahead >= N_GEN - 2);
	assert_int_equal(b.requests_failed, a.requests_failed);
	assert_int_equal(b.kv_blocks_used, 0);
}

/*
 * Seeded requests drawn on the device are repeatable, and the seed
 * matters: the same request twice gives the same tokens, another seed
 * other tokens.
 */
static void test_seeded_draws_repeat(void **state)
{
	struct result again;
	int i, differ = 0;

	(void)state;
	NEED_PLUGIN();
	for (i = 1; i < N_CLIENTS; i += N_KINDS) {
		generate(alone.sock, i, &again);
		assert_int_equal(again.res, N_GEN);
		assert_memory_equal(again.ids, sh->ref[i].ids, sizeof(again.ids));
	}
	/* Clients 1 and 6 ask the same but for prompt and seed. */
	for (i = 0; i < N_GEN; i++)
		differ += sh->ref[1].ids[i] != sh->ref[6].ids[i];
	assert_true(differ > 0);
}

/*
 * A long request on @sock that reads 3 tokens, then tells @fd and either
 * waits to be killed or (@cancel) cancels itself and checks that it ends
 * with -ECANCELED. Runs in a child; exits 0 when all went as expected.
 */
static void doomed(const char *sock, int fd, bool cancel)
{
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	int n = 0;

	if (start_request(sock, cancel ? 1 : 3, 400, &r))
		_exit(1);
	while (n < 3 && !llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS)) {
		n += (cqe->flags & LLMQ_CQE_F_TOKEN) != 0;
		llmq_cqe_seen(&r, cqe);
	}
	(void)!write(fd, "x", 1);
	if (!cancel)
		pause();
	if (llmq_cancel(&r, 1, 2))
		_exit(2);
	for (;;) {
		if (llmq_wait_cqe_timeout(&r, &cqe, WAIT_MS))
			_exit(3);
		if (cqe->user_data == 1 && !(cqe->flags & LLMQ_CQE_F_MORE))
			_exit(cqe->res == -ECANCELED ? 0 : 4);
		llmq_cqe_seen(&r, cqe);
	}
}

static int gone_cond(const struct llmq_stats *st, void *arg)
{
	const struct llmq_stats *b = arg;

	return st->requests_active == b->requests_active &&
	       st->requests_cancelled >= b->requests_cancelled + 2;
}

/*
 * Clients that leave in the middle, on a daemon that batches and runs
 * ahead as the crowd's does: one is killed and one cancels, each after 3
 * tokens of a long request, while ten others are served. Their tokens were
 * still on the device, fed to a step already out, when they went; the ten
 * still get exactly what each gets alone, and the daemon counts both as
 * cancelled and serves on. Its prefix cache is off: the crowd's holds these
 * prompts, and a prompt found there would be prefilled only in its last
 * few tokens, row by row, not as the tiles it is alone.
 */
static void test_leave_midstream(void **state)
{
	static const char *const args[] = { "--engine", "cuda", "--model", model,
		"--num-kv-blocks", "96", "--batch-timeout-ms", "200",
		"--max-num-batched-tokens", "512", "--no-prefix-caching", NULL };
	struct daemon d = { 0 };
	struct llmq_stats a, b;
	pid_t pids[N_CLIENTS], kill_pid, cancel_pid;
	int i, st, pfd[2];
	char c;

	(void)state;
	NEED_PLUGIN();
	assert_int_equal(daemon_start(&d, "cuda-leave", args), 0);
	assert_int_equal(llmq_get_stats(d.sock, &a), 0);
	assert_int_equal(pipe(pfd), 0);
	kill_pid = fork();
	assert_true(kill_pid >= 0);
	if (!kill_pid)
		doomed(d.sock, pfd[1], false);
	cancel_pid = fork();
	assert_true(cancel_pid >= 0);
	if (!cancel_pid)
		doomed(d.sock, pfd[1], true);
	for (i = 0; i < N_CLIENTS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			generate(d.sock, i, &sh->got[i]);
			_exit(0);
		}
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	kill(kill_pid, SIGKILL);
	assert_int_equal(waitpid(kill_pid, &st, 0), kill_pid);
	assert_int_equal(waitpid(cancel_pid, &st, 0), cancel_pid);
	assert_true(WIFEXITED(st) && !WEXITSTATUS(st));
	for (i = 0; i < N_CLIENTS; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && !WEXITSTATUS(st));
		if (sh->got[i].res != sh->ref[i].res ||
		    memcmp(sh->got[i].ids, sh->ref[i].ids, sizeof(sh->ref[i].ids)) ||
		    memcmp(sh->got[i].lp, sh->ref[i].lp, sizeof(sh->ref[i].lp)))
			fail_msg("client %d (kind %d): not what it gets alone", i, i % N_KINDS);
	}
	assert_int_equal(stats_wait(d.sock, gone_cond, &a, WAIT_MS, &b), 0);
	assert_true(b.steps_ahead > a.steps_ahead);
	print_message("[          ] 2 clients gone mid-request, %llu cancelled; the other %d "
		      "as alone\n", (unsigned long long)(b.requests_cancelled -
						       a.requests_cancelled), N_CLIENTS);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/*
 * A CUDA error in a step, on a daemon of its own (the emulator's
 * LLMQ_CUDA_EMU_FAULT, the emulated plugin only): a launch that fails
 * ends the request in that step with -EIO after the tokens it already
 * streamed, and the daemon serves the next one as if nothing happened (the
 * tokens and log-probabilities of the reference); a fault inside a kernel
 * (sticky, the GPU's context lost) fails that request and every later one
 * with -EIO, while the daemon stays up to say so (stats answer, counting
 * them as failed).
 */
static void fault_case(const char *spec, bool sticky)
{
	static const char *const args[] = { "--engine", "cuda", "--model", model,
		"--num-kv-blocks", "64", "--max-num-seqs", "1", "--batch-timeout-ms", "0",
		"--no-prefix-caching", "--enforce-eager", NULL };
	struct llmq_stats st;
	struct daemon fd = { 0 };
	struct result r;
	int i;

	setenv("LLMQ_CUDA_EMU_FAULT", spec, 1);
	assert_int_equal(daemon_start(&fd, "cuda-fault", args), 0);
	unsetenv("LLMQ_CUDA_EMU_FAULT");
	generate(fd.sock, 0, &r);
	assert_int_equal(r.res, -EIO);
	for (i = 0; i < 2; i++) {
		generate(fd.sock, 0, &r);
		if (sticky) {
			assert_int_equal(r.res, -EIO);
			continue;
		}
		assert_int_equal(r.res, sh->ref[0].res);
		assert_memory_equal(r.ids, sh->ref[0].ids, sizeof(r.ids));
		assert_memory_equal(r.lp, sh->ref[0].lp, sizeof(r.lp));
	}
	assert_int_equal(llmq_get_stats(fd.sock, &st), 0);
	assert_int_equal(st.requests_failed, sticky ? 3 : 1);
	print_message("[          ] %s: %llu of 3 requests failed with -EIO, llmqd still up\n",
		      spec, (unsigned long long)st.requests_failed);
	assert_int_equal(daemon_stop(&fd, SIGTERM), 0);
}

static void test_device_faults(void **state)
{
	(void)state;
	NEED_PLUGIN();
	/* About 17 launches a step: the third step, a decode running ahead. */
	fault_case("launch:40", false);
	fault_case("gemm:20", false);
	fault_case("kernel:40", true);
}

/*
 * llmq run --engine cuda (in-process, one step at a time, the host passing
 * each token on) writes the text the daemon (running ahead, feeding the
 * device's draws to the next step) does: greedy, seeded top-k with top-p,
 * seeded over the whole vocabulary, seeded nucleus with min-p, and with
 * penalties, greedy and seeded (the daemon's device counting the token it
 * fed, which the host's list lacks).
 */
static void test_run_same_as_daemon(void **state)
{
	/* temperature, top-k, top-p, min-p, repetition, presence and frequency */
	static const char *const sets[][6] = {
		{ "0", "0", "1", "0", "1", "0" }, { "0.8", "40", "0.9", "0", "1", "0" },
		{ "1.0", "0", "1", "0", "1", "0" }, { "1.0", "0", "0.95", "0.02", "1", "0" },
		{ "0", "0", "1", "0", "1.3", "0.7" }, { "0.9", "30", "0.95", "0", "1.2", "0.5" },
	};
	char out_run[4096], out_gen[4096], err[4096], prompt[128], seed[32];
	char bin[PATH_MAX + 8];
	struct llmq_sampling sp;
	unsigned int k;

	(void)state;
	NEED_PLUGIN();
	snprintf(bin, sizeof(bin), "%s/llmq", harness_bin_dir);
	for (k = 0; k < 6; k++) {
		const char *run_argv[] = { bin, "run", "--engine", "cuda", "--model", model,
			"--temperature", sets[k][0], "--top-k", sets[k][1], "--top-p",
			sets[k][2], "--min-p", sets[k][3], "--repetition-penalty", sets[k][4],
			"--presence-penalty", sets[k][5], "--frequency-penalty", sets[k][5],
			"--seed", seed, "--max-tokens", "12", prompt, NULL };
		const char *gen_argv[] = { bin, "generate", "--socket", alone.sock,
			"--temperature", sets[k][0], "--top-k", sets[k][1], "--top-p",
			sets[k][2], "--min-p", sets[k][3], "--repetition-penalty", sets[k][4],
			"--presence-penalty", sets[k][5], "--frequency-penalty", sets[k][5],
			"--seed", seed, "--max-tokens", "12", prompt, NULL };

		request_of(k, prompt, sizeof(prompt), &sp);
		snprintf(seed, sizeof(seed), "%llu", (unsigned long long)sp.seed);
		if (run_cmd(run_argv, out_run, sizeof(out_run), err, sizeof(err)))
			fail_msg("llmq run --engine cuda: %s", err);
		if (run_cmd(gen_argv, out_gen, sizeof(out_gen), err, sizeof(err)))
			fail_msg("llmq generate: %s", err);
		assert_true(strlen(out_run) > 0);
		if (strcmp(out_run, out_gen))
			fail_msg("T %s, top-k %s, top-p %s, min-p %s, penalties %s %s: llmq "
				 "run wrote '%s', the daemon '%s'", sets[k][0], sets[k][1],
				 sets[k][2], sets[k][3], sets[k][4], sets[k][5], out_run, out_gen);
	}
}

/*
 * A Q8_0 model served with its weights kept Q8_0 (the default) and with
 * --gpu-weights bf16: llmqctl status reports the weights' size on the
 * device (17/32 of it kept: 34 bytes a block of 32 against 64), and in
 * each mode llmq run --engine cuda (same flag) writes the greedy text the
 * daemon does, so both paths of a Q8_0 projection (the product of the few
 * rows of a decode, the widened slices of a prompt) serve end to end.
 */
static void test_q8_weights(void **state)
{
	static const char *const modes[] = { "auto", "bf16" };
	char q8[PATH_MAX], cmd[PATH_MAX * 2 + 64], bin[PATH_MAX + 8], ctl[PATH_MAX + 16];
	char out_run[4096], out_gen[4096], status[4096], err[4096];
	double mib[2];
	unsigned int k;

	(void)state;
	NEED_PLUGIN();
	snprintf(q8, sizeof(q8), "/tmp/llmq-test-serve-cuda-q8-%d.gguf", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s/llmq-mkmodel --preset tiny --dtype Q8_0 -o %s >/dev/null",
		 harness_bin_dir, q8);
	assert_int_equal(system(cmd), 0);
	snprintf(bin, sizeof(bin), "%s/llmq", harness_bin_dir);
	snprintf(ctl, sizeof(ctl), "%s/llmqctl", harness_bin_dir);
	for (k = 0; k < 2; k++) {
		const char *const args[] = { "--engine", "cuda", "--model", q8,
			"--num-kv-blocks", "64", "--max-num-seqs", "1", "--batch-timeout-ms", "0",
			"--no-prefix-caching", "--gpu-weights", modes[k], NULL };
		struct daemon d = { 0 };
		const char *run_argv[] = { bin, "run", "--engine", "cuda", "--model", q8,
			"--gpu-weights", modes[k], "--temperature", "0", "--max-tokens", "12",
			"In the beginning", NULL };
		const char *gen_argv[] = { bin, "generate", "--socket", d.sock, "--temperature",
			"0", "--max-tokens", "12", "In the beginning", NULL };
		const char *ctl_argv[] = { ctl, "--socket", d.sock, "status", NULL };
		const char *w;

		assert_int_equal(daemon_start(&d, "cuda-q8", args), 0);
		if (run_cmd(ctl_argv, status, sizeof(status), err, sizeof(err)))
			fail_msg("llmqctl status: %s", err);
		w = strstr(status, "weights ");
		if (!w || sscanf(w, "weights %lf MiB", &mib[k]) != 1)
			fail_msg("--gpu-weights %s: no weights in '%s'", modes[k], status);
		if (run_cmd(run_argv, out_run, sizeof(out_run), err, sizeof(err)))
			fail_msg("llmq run --engine cuda --gpu-weights %s: %s", modes[k], err);
		if (run_cmd(gen_argv, out_gen, sizeof(out_gen), err, sizeof(err)))
			fail_msg("llmq generate: %s", err);
		assert_true(strlen(out_run) > 0);
		if (strcmp(out_run, out_gen))
			fail_msg("--gpu-weights %s: llmq run wrote '%s', the daemon '%s'", modes[k],
				 out_run, out_gen);
		assert_int_equal(daemon_stop(&d, SIGTERM), 0);
	}
	print_message("[          ] tiny Q8_0: weights %.2f MiB kept, %.2f MiB as BF16\n", mib[0],
		      mib[1]);
	assert_true(fabs(mib[0] / mib[1] - 17.0 / 32) < 0.01);
	unlink(q8);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crowd_same_as_alone),
		cmocka_unit_test(test_seeded_draws_repeat),
		cmocka_unit_test(test_run_same_as_daemon),
		cmocka_unit_test(test_leave_midstream),
		cmocka_unit_test(test_device_faults),
		cmocka_unit_test(test_q8_weights),
	};

	(void)argc;
	harness_init(argv[0]);
	return cmocka_run_group_tests_name("serve_cuda", tests, setup, teardown);
}
