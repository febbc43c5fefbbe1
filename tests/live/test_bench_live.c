// SPDX-License-Identifier: GPL-2.0
/*
 * llmq-bench against a real llmqd running the null engine, whose every
 * step takes NULL_DELAY_US: exact token counts with --ignore-eos, TPOT and
 * ITL within 10% of the step time, the open loop, a sweep, a file dataset
 * whose prompt token counts the null tokenizer fixes (4 + bytes + 2 per
 * space), SIGINT (outstanding requests cancelled, the report printed), a
 * runtime killed mid-run (failures counted, the report printed, a prompt
 * non-zero exit), a full queue (-EBUSY counted per errno), a runtime that
 * is not there, and bad flags.  Also --plot (a PNG from gnuplot; without
 * gnuplot, the table and a clear error), a sweep cut short by SIGINT, and
 * the progress line: redrawn in place on a terminal (a pseudo-terminal
 * here), never on a pipe or with --no-progress.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

/*
 * 20 ms: the daemon's own time per step (more of it under ASan, on a loaded
 * machine) must stay well inside the 10% the timing checks allow.
 */
#define NULL_DELAY_US	20000
#define NULL_DELAY_MS	(NULL_DELAY_US / 1000.0)
#define OUT_LEN		(256 * 1024)

static struct daemon d;
static char bench[PATH_MAX + 32];
static char out[OUT_LEN], err[OUT_LEN], tty[OUT_LEN];

static const char *const null_args[] = {
	"--null-delay-us", "20000", "--batch-timeout-ms", "0", NULL,
};

static void json_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/llmq-bench-test-%d-%s.json", (int)getpid(), name);
}

static struct json_object *load(const char *path)
{
	struct json_object *j = json_object_from_file(path);

	if (!j)
		fail_msg("%s: not JSON: %s", path, json_util_get_last_err());
	unlink(path);
	return j;
}

static int64_t geti(struct json_object *j, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(j, key, &v))
		fail_msg("no \"%s\" in the JSON", key);
	return json_object_get_int64(v);
}

static double getd(struct json_object *j, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(j, key, &v) || !v)
		fail_msg("no \"%s\" in the JSON", key);
	return json_object_get_double(v);
}

static struct json_object *geta(struct json_object *j, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(j, key, &v) || !json_object_is_type(v, json_type_array))
		fail_msg("no array \"%s\" in the JSON", key);
	return v;
}

/* Run llmq-bench with the daemon's socket and @args; returns its status. */
static int run_bench(const char *sock, const char *const *args)
{
	const char *argv[48];
	int i = 0, n = 0;

	argv[i++] = bench;
	if (sock) {
		argv[i++] = "--socket";
		argv[i++] = sock;
	}
	while (args[n] && i < 46)
		argv[i++] = args[n++];
	argv[i] = NULL;
	return run_cmd(argv, out, sizeof(out), err, sizeof(err));
}

/*
 * Whether TPOT and ITL are within 10% of the null step; a message in @why
 * if not.  Mean and median both: a systematic error moves both.
 */
static bool timing_ok(struct json_object *j, char *why, size_t len)
{
	static const char *const keys[] = {
		"mean_tpot_ms", "median_tpot_ms", "mean_itl_ms", "median_itl_ms",
	};
	double v;
	size_t i;

	for (i = 0; i < 4; i++) {
		v = getd(j, keys[i]);
		if (v < NULL_DELAY_MS * 0.9 || v > NULL_DELAY_MS * 1.1) {
			snprintf(why, len, "%s = %.3f ms, the null step is %.1f ms", keys[i], v,
				 NULL_DELAY_MS);
			return false;
		}
	}
	return true;
}

static void test_exact_counts_and_timing(void **state)
{
	char path[128], why[128] = "";
	const char *args[] = {
		"--num-prompts", "8", "--max-concurrency", "4", "--random-input-len", "64",
		"--random-output-len", "20", "--ignore-eos", "--percentiles", "50,90,99",
		"--json", path, NULL,
	};
	struct json_object *j, *ol, *itls;
	int rc, attempt;
	double v;
	size_t i;

	(void)state;
	json_path(path, sizeof(path), "exact");
	/*
	 * The counts must be exact every time.  The timings measure the null
	 * engine's sleeps, which a machine saturated by other work stretches
	 * (the engine thread waits for a CPU after each): up to three runs.
	 */
	for (attempt = 0; attempt < 3; attempt++) {
		rc = run_bench(d.sock, args);
		if (rc)
			fail_msg("llmq-bench exited %d: %s", rc, err);
		assert_non_null(strstr(out, "Successful requests:"));
		assert_non_null(strstr(out, "Mean TPOT (ms):"));
		j = load(path);
		assert_int_equal(geti(j, "completed"), 8);
		assert_int_equal(geti(j, "failed"), 0);
		assert_int_equal(geti(j, "total_output_tokens"), 8 * 20);
		ol = geta(j, "output_lens");
		itls = geta(j, "itls_ms");
		assert_int_equal(json_object_array_length(ol), 8);
		for (i = 0; i < 8; i++) {
			assert_int_equal(json_object_get_int64(json_object_array_get_idx(ol, i)),
					 20);
			/* 20 tokens, 19 gaps between them */
			assert_int_equal(json_object_array_length(
				json_object_array_get_idx(itls, i)), 19);
			assert_true(json_object_get_int64(json_object_array_get_idx(
				geta(j, "input_lens"), i)) > 4);
		}
		assert_int_equal(geti(j, "n_itl"), 8 * 19);
		/* calibrated: within one word (about 8 null tokens) of the 64 asked for */
		v = getd(j, "mean_input_tokens");
		if (v < 52 || v > 76)
			fail_msg("mean input tokens %.1f, asked for 64", v);
		assert_true(getd(j, "p90_ttft_ms") >= getd(j, "p50_ttft_ms"));
		assert_true(getd(j, "output_throughput") > 0);
		/* one engine step per token: TPOT and ITL within 10% of the step */
		if (timing_ok(j, why, sizeof(why))) {
			json_object_put(j);
			return;
		}
		print_message("timing off (a loaded machine?): %s; again\n", why);
		json_object_put(j);
	}
	fail_msg("%s", why);
}

static void test_open_loop(void **state)
{
	char path[128];
	const char *args[] = {
		"--num-prompts", "20", "--request-rate", "200", "--burstiness", "0.5",
		"--random-input-len", "16", "--random-output-len", "5", "--ignore-eos",
		"--goodput", "ttft:10000", "tpot:10000", "--json", path, NULL,
	};
	struct json_object *j, *ol;
	size_t i;
	int rc;

	(void)state;
	json_path(path, sizeof(path), "open");
	rc = run_bench(d.sock, args);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, err);
	assert_non_null(strstr(out, "open loop, 200.00 req/s, burstiness 0.50"));
	j = load(path);
	assert_int_equal(geti(j, "completed"), 20);
	ol = geta(j, "output_lens");
	for (i = 0; i < 20; i++)
		assert_int_equal(json_object_get_int64(json_object_array_get_idx(ol, i)), 5);
	/* every request meets SLOs of 10 s: goodput is the request throughput */
	assert_float_equal(getd(j, "request_goodput"), getd(j, "request_throughput"), 1e-9);
	json_object_put(j);
}

static void test_sweep(void **state)
{
	char path[128];
	const char *args[] = {
		"--sweep", "1,2", "--num-prompts", "4", "--random-input-len", "16",
		"--random-output-len", "5", "--ignore-eos", "--json", path, NULL,
	};
	struct json_object *j, *pts, *p;
	size_t i;
	int rc;

	(void)state;
	json_path(path, sizeof(path), "sweep");
	rc = run_bench(d.sock, args);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, err);
	assert_non_null(strstr(out, "Concurrency Sweep"));
	assert_non_null(strstr(out, "1.00x"));
	assert_string_equal(err, "");	/* no terminal: no progress line */
	j = load(path);
	pts = geta(j, "sweep");
	assert_int_equal(json_object_array_length(pts), 2);
	for (i = 0; i < 2; i++) {
		p = json_object_array_get_idx(pts, i);
		assert_int_equal(geti(p, "max_concurrency"), (int64_t)i + 1);
		assert_int_equal(geti(p, "completed"), 4);
		assert_int_equal(geti(p, "total_output_tokens"), 20);
	}
	json_object_put(j);
}

static void test_file_dataset(void **state)
{
	char path[128], data[128];
	const char *args[] = {
		"--dataset", "file", "--dataset-path", data, "--random-output-len", "3",
		"--ignore-eos", "--max-concurrency", "2", "--json", path, NULL,
	};
	struct json_object *j, *il, *ol;
	FILE *f;
	int rc;

	(void)state;
	json_path(path, sizeof(path), "file");
	snprintf(data, sizeof(data), "/tmp/llmq-bench-test-%d.jsonl", (int)getpid());
	f = fopen(data, "w");
	assert_non_null(f);
	fputs("{\"prompt\": \"hello world\", \"output_len\": 4}\n\n"
	      "{\"prompt\": \"a b c\"}\n", f);
	fclose(f);
	rc = run_bench(d.sock, args);
	unlink(data);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, err);
	j = load(path);
	assert_int_equal(geti(j, "completed"), 2);
	il = geta(j, "input_lens");
	ol = geta(j, "output_lens");
	/* 4 + 11 bytes + 2 for the space; 4 + 5 bytes + 2 x 2 spaces */
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(il, 0)), 17);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(il, 1)), 13);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(ol, 0)), 4);
	assert_int_equal(json_object_get_int64(json_object_array_get_idx(ol, 1)), 3);
	json_object_put(j);
}

static int idle(const struct llmq_stats *st, void *arg)
{
	(void)arg;
	return st->requests_active == 0 && st->clients_active == 0;
}

static int busy(const struct llmq_stats *st, void *arg)
{
	(void)arg;
	return st->requests_active >= 2;
}

/*
 * Run @argv with its standard output in out[], SIGINT it @delay_us after
 * its run began, and wait for it: it must stop within 7 s.  The run has
 * begun when two requests are in flight at once (the calibration's probes
 * go one at a time).  Returns its wait status.
 */
static int run_and_interrupt(const char *const *argv, useconds_t delay_us)
{
	struct llmq_stats st;
	int fd[2], status = 0, i;
	size_t have = 0;
	ssize_t got;
	uint64_t t;
	FILE *f;
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(fd[1], 1);
		close(fd[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	if (stats_wait(d.sock, busy, NULL, 10000, &st)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("llmq-bench's run did not begin within 10 s");
	}
	usleep(delay_us);
	kill(pid, SIGINT);
	t = now_ns();
	f = fdopen(fd[0], "r");
	while ((got = (ssize_t)fread(out + have, 1, sizeof(out) - 1 - have, f)) > 0)
		have += (size_t)got;
	out[have] = '\0';
	fclose(f);
	for (i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) != pid; i++)
		usleep(10000);
	if (i == 1000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("llmq-bench did not stop within 10 s of SIGINT");
	}
	assert_true(now_ns() - t < 7000000000ULL);
	return status;
}

/* The number after @label in the report, which must have it. */
static long report_count(const char *label)
{
	const char *p = strstr(out, label);

	if (!p)
		fail_msg("no \"%s\" in the report:\n%s", label, out);
	return strtol(p + strlen(label), NULL, 10);
}

static void test_interrupt(void **state)
{
	char path[128];
	const char *argv[] = {
		bench, "--socket", d.sock, "--num-prompts", "100", "--max-concurrency", "4",
		"--random-output-len", "30", "--ignore-eos", "--json", path, NULL,
	};
	struct llmq_stats st;
	struct json_object *j;
	int status;

	(void)state;
	json_path(path, sizeof(path), "sigint");
	/* Mid-run: each request takes 30 steps of 10 ms. */
	status = run_and_interrupt(argv, 500000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	assert_non_null(strstr(out, "Interrupted:"));
	j = load(path);
	assert_true(json_object_get_boolean(json_object_object_get(j, "interrupted")));
	assert_true(geti(j, "completed") + geti(j, "cancelled") + geti(j, "not_sent") +
		    geti(j, "failed") == 100);
	/* The report says what was measured, as the JSON does. */
	assert_int_equal(report_count("Successful requests:"), geti(j, "completed"));
	assert_int_equal(report_count("Cancelled requests:"), geti(j, "cancelled"));
	assert_int_equal(report_count("Requests not sent:"), geti(j, "not_sent"));
	assert_int_equal(geti(j, "failed"), 0);
	assert_true(geti(j, "not_sent") > 0);
	json_object_put(j);
	/* Nothing left running in the runtime. */
	assert_int_equal(stats_wait(d.sock, idle, NULL, 5000, &st), 0);
}

static void *kill_later(void *arg)
{
	usleep(500000);
	daemon_stop(arg, SIGKILL);
	return NULL;
}

static void test_runtime_killed(void **state)
{
	struct daemon k;
	char path[128];
	const char *args[] = {
		"--num-prompts", "200", "--max-concurrency", "4", "--random-output-len", "50",
		"--ignore-eos", "--json", path, NULL,
	};
	struct json_object *j;
	pthread_t th;
	uint64_t t;
	int rc;

	(void)state;
	json_path(path, sizeof(path), "killed");
	assert_int_equal(daemon_start(&k, "bench-killed", null_args), 0);
	assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
	t = now_ns();
	rc = run_bench(k.sock, args);
	t = now_ns() - t;
	pthread_join(th, NULL);
	unlink(k.sock);		/* a killed llmqd leaves its socket behind */
	assert_int_equal(rc, 1);
	/* 200 requests of 0.5 s at 4 at a time would take 25 s */
	if (t > 5000000000ULL)
		fail_msg("llmq-bench took %.1f s to notice the runtime died", (double)t / 1e9);
	assert_non_null(strstr(out, "Failed requests:"));
	assert_non_null(strstr(out, "Requests not sent:"));
	assert_non_null(strstr(err, "the run stopped"));
	j = load(path);
	assert_true(geti(j, "failed") >= 1);
	assert_true(geti(j, "completed") + geti(j, "failed") + geti(j, "not_sent") == 200);
	assert_true(json_object_object_length(json_object_object_get(j, "failures")) >= 1);
	json_object_put(j);
}

/* A runtime that refuses work: the refusals are failures, counted by errno. */
static void test_queue_full(void **state)
{
	static const char *const full_args[] = {
		"--null-delay-us", "10000", "--batch-timeout-ms", "0", "--max-num-seqs", "1",
		"--max-queued-requests", "1", NULL,
	};
	struct daemon q;
	char path[128];
	const char *args[] = {
		"--num-prompts", "8", "--random-input-len", "16", "--random-output-len", "5",
		"--ignore-eos", "--json", path, NULL,
	};
	struct json_object *j, *f;
	int rc;

	(void)state;
	json_path(path, sizeof(path), "full");
	assert_int_equal(daemon_start(&q, "full", full_args), 0);
	rc = run_bench(q.sock, args);
	daemon_stop(&q, SIGTERM);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "EBUSY (Device or resource busy):"));
	j = load(path);
	f = json_object_object_get(j, "failures");
	assert_non_null(json_object_object_get(f, "EBUSY"));
	assert_true(geti(j, "failed") >= 1);
	assert_true(geti(j, "completed") >= 1);
	assert_int_equal(geti(j, "completed") + geti(j, "failed"), 8);
	assert_int_equal(json_object_get_int64(json_object_object_get(f, "EBUSY")),
			 geti(j, "failed"));
	json_object_put(j);
}

static void test_no_runtime(void **state)
{
	const char *args[] = { "--num-prompts", "2", NULL };
	int rc;

	(void)state;
	rc = run_bench("/tmp/llmq-bench-test-no-such.sock", args);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(err, "llmqd did not answer"));
	assert_string_equal(out, "");
}

static void test_bad_flags(void **state)
{
	static const struct {
		const char *args[8];
		const char *line;
	} cases[] = {
		{ { "--num-prompts", "x" },
		  "llmq-bench: --num-prompts: 'x' is not an integer in 1..1000000\n" },
		{ { "--random-range-ratio", "1.5" },
		  "llmq-bench: --random-range-ratio: '1.5' is not a number in [0, 1)\n" },
		{ { "--request-rate", "0" },
		  "llmq-bench: --request-rate: '0' is not inf or a number in (0, 1e9]\n" },
		{ { "--percentiles", "99,200" },
		  "llmq-bench: --percentiles: '200' is not a number in 0..100\n" },
		{ { "--goodput", "ttft:-1" },
		  "llmq-bench: --goodput: 'ttft:-1' has an SLO that is not a number of ms in "
		  "(0, 1e9]\n" },
		{ { "--sweep", "1,0" },
		  "llmq-bench: --sweep: '0' is not an integer in 1..4096\n" },
		{ { "--dataset", "sharegpt" },
		  "llmq-bench: --dataset: 'sharegpt' is not random or file\n" },
		{ { "--max-concurrency", "5000" },
		  "llmq-bench: --max-concurrency: '5000' is not an integer in 1..4096\n" },
		{ { "--burstiness", "2" },
		  "llmq-bench: --burstiness: '2' needs a finite --request-rate\n" },
		{ { "--timeout-s", "-1" },
		  "llmq-bench: --timeout-s: '-1' is not an integer in 1..86400\n" },
		{ { "--plot", "x.png" },
		  "llmq-bench: --plot: 'x.png' draws a sweep: it needs --sweep\n" },
		{ { "--sweep", "1", "--plot", "/nonexistent-llmq-bench-test/x.png" },
		  "llmq-bench: --plot: '/nonexistent-llmq-bench-test/x.png' cannot be written: "
		  "No such file or directory\n" },
		{ { "--sweep", "1", "--plot", "x", "--json", "x" },
		  "llmq-bench: --plot: 'x' is also the --json file\n" },
		{ { "--plot-title", "two\nlines" },
		  "llmq-bench: --plot-title: has a control character (a newline, a tab...)\n" },
		{ { "--sweep", "1", "--plot-title", "t" },
		  "llmq-bench: --plot-title: 't' needs --plot\n" },
	};
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = run_bench(NULL, cases[i].args);
		assert_int_equal(rc, 2);
		assert_string_equal(err, cases[i].line);
		assert_string_equal(out, "");
	}
}

static void png_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/llmq-bench-test-%d-%s.png", (int)getpid(), name);
}

static uint32_t be32(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* A PNG of @w x @h pixels: the signature, then IHDR's width and height. */
static void assert_png(const char *path, uint32_t w, uint32_t h)
{
	unsigned char b[24];
	FILE *f = fopen(path, "rb");

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	if (fread(b, 1, sizeof(b), f) != sizeof(b))
		fail_msg("%s: shorter than a PNG header", path);
	fclose(f);
	assert_memory_equal(b, "\x89PNG\r\n\x1a\n", 8);
	assert_memory_equal(b + 12, "IHDR", 4);
	assert_int_equal(be32(b + 16), w);
	assert_int_equal(be32(b + 20), h);
}

static void test_plot(void **state)
{
	char png[128], line[160];
	const char *args[] = {
		"--sweep", "1,2", "--num-prompts", "4", "--random-input-len", "16",
		"--random-output-len", "5", "--ignore-eos", "--plot", png,
		"--plot-title", "it's a \"title\" `false` @GPVAL_TERM", NULL,
	};
	int rc;

	(void)state;
	png_path(png, sizeof(png), "plot");
	rc = run_bench(d.sock, args);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, err);
	assert_non_null(strstr(out, "Concurrency Sweep"));
	snprintf(line, sizeof(line), "(plot: %s)\n", png);
	assert_non_null(strstr(out, line));
	assert_png(png, 1000, 800);
	unlink(png);
}

/* No gnuplot on the PATH: the table all the same, a clear error, no file. */
static void test_plot_no_gnuplot(void **state)
{
	char png[128], want[256], *path = getenv("PATH");
	const char *args[] = {
		"--sweep", "1,2", "--num-prompts", "4", "--random-input-len", "16",
		"--random-output-len", "5", "--ignore-eos", "--plot", png, NULL,
	};
	int rc;

	(void)state;
	png_path(png, sizeof(png), "nognuplot");
	path = path ? strdup(path) : NULL;
	setenv("PATH", "/nonexistent-llmq-bench-test", 1);
	rc = run_bench(d.sock, args);
	if (path)
		setenv("PATH", path, 1);
	else
		unsetenv("PATH");
	free(path);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "Concurrency Sweep"));
	assert_non_null(strstr(out, "1.00x"));
	assert_null(strstr(out, "(plot:"));
	snprintf(want, sizeof(want), "llmq-bench: --plot: '%s': cannot run gnuplot: No such "
		 "file or directory (install it: apt-get install gnuplot-nox)\n", png);
	assert_string_equal(err, want);
	assert_int_equal(access(png, F_OK), -1);
	assert_int_equal(errno, ENOENT);
}

/* SIGINT in a sweep: the points measured, in the table, the JSON and the plot. */
static void test_interrupt_sweep(void **state)
{
	char path[128], png[128], line[160];
	const char *argv[] = {
		bench, "--socket", d.sock, "--sweep", "2,4", "--num-prompts", "40",
		"--random-input-len", "16", "--random-output-len", "30", "--ignore-eos",
		"--json", path, "--plot", png, NULL,
	};
	unsigned long conc, ok, notok;
	struct json_object *j, *p;
	const char *row;
	int status;

	(void)state;
	json_path(path, sizeof(path), "sigint-sweep");
	png_path(png, sizeof(png), "sigint-sweep");
	/* 40 requests of 30 steps of 10 ms, 2 at a time: 6 s for the first point */
	status = run_and_interrupt(argv, 500000);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 130);
	assert_non_null(strstr(out, "Concurrency Sweep"));
	assert_non_null(strstr(out, "(stopped after 1 of 2 points)"));
	row = strstr(out, "\n    2 ");
	assert_non_null(row);
	assert_int_equal(sscanf(row, "%lu %lu %lu", &conc, &ok, &notok), 3);
	assert_int_equal(conc, 2);
	assert_int_equal(ok + notok, 40);
	j = load(path);
	p = geta(j, "sweep");
	assert_int_equal(json_object_array_length(p), 1);
	p = json_object_array_get_idx(p, 0);
	assert_true(json_object_get_boolean(json_object_object_get(p, "interrupted")));
	assert_int_equal(geti(p, "completed"), ok);
	json_object_put(j);
	snprintf(line, sizeof(line), "(plot: %s)\n", png);
	assert_non_null(strstr(out, line));
	assert_png(png, 1000, 800);
	unlink(png);
}

/*
 * Run @argv with its standard error on a pseudo-terminal @cols wide (raw:
 * no newline translation) and its standard output on a pipe, the one into
 * tty[], the other into out[].  Returns the exit status.
 */
static int run_on_tty(const char *const *argv, unsigned short cols)
{
	struct winsize ws = { .ws_row = 24, .ws_col = cols };
	char *bufs[2] = { out, tty };
	size_t have[2] = { 0, 0 };
	int master, slave, po[2], st, i, open_fds = 2;
	struct pollfd pfd[2];
	struct termios tio;
	ssize_t n;
	pid_t pid;

	if (openpty(&master, &slave, NULL, NULL, &ws))
		fail_msg("openpty: %s", strerror(errno));
	assert_int_equal(tcgetattr(slave, &tio), 0);
	cfmakeraw(&tio);
	assert_int_equal(tcsetattr(slave, TCSANOW, &tio), 0);
	assert_int_equal(pipe(po), 0);
	out[0] = tty[0] = '\0';
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(po[1], 1);
		dup2(slave, 2);
		close(po[0]);
		close(po[1]);
		close(master);
		close(slave);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(slave);
	pfd[0] = (struct pollfd){ .fd = po[0], .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = master, .events = POLLIN };
	while (open_fds && poll(pfd, 2, 20000) > 0) {
		for (i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			n = read(pfd[i].fd, bufs[i] + have[i], OUT_LEN - 1 - have[i]);
			/* end of file; EIO: the terminal's last user closed it */
			if (n <= 0) {
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			have[i] += (size_t)n;
			bufs[i][have[i]] = '\0';
		}
	}
	close(po[0]);
	close(master);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Each redraw of the progress line is "\r", the line, "\033[K"; the last
 * has no line (it erases).  Checks that every line fits in @cols - 1 and
 * starts with @start; returns how many there were.
 */
static int progress_lines(const char *s, unsigned short cols, const char *start)
{
	const char *p, *end;
	int n = 0;

	for (p = strchr(s, '\r'); p; p = strchr(end, '\r')) {
		end = strstr(p, "\033[K");
		if (!end)
			fail_msg("a progress line not ended by erase-to-end: %s", p + 1);
		if (end == p + 1)
			continue;	/* the erase at the end */
		if (end - p - 1 > cols - 1)
			fail_msg("a progress line of %d columns on a terminal of %u: %.*s",
				 (int)(end - p - 1), cols, (int)(end - p - 1), p + 1);
		if (strncmp(p + 1, start, strlen(start)))
			fail_msg("a progress line that does not start with \"%s\": %.*s", start,
				 (int)(end - p - 1), p + 1);
		if (memchr(p, '\n', (size_t)(end - p)))
			fail_msg("a progress line with a newline");
		n++;
	}
	return n;
}

static void test_progress(void **state)
{
	const char *one[] = {
		bench, "--socket", d.sock, "--num-prompts", "8", "--max-concurrency", "4",
		"--random-input-len", "16", "--random-output-len", "20", "--ignore-eos", NULL,
	};
	const char *swp[] = {
		bench, "--socket", d.sock, "--sweep", "1,2", "--num-prompts", "4",
		"--random-input-len", "16", "--random-output-len", "20", "--ignore-eos", NULL,
	};
	const char *quiet[] = {
		bench, "--socket", d.sock, "--num-prompts", "8", "--max-concurrency", "4",
		"--random-input-len", "16", "--random-output-len", "20", "--ignore-eos",
		"--no-progress", NULL,
	};
	const char *args[] = {
		"--num-prompts", "8", "--max-concurrency", "4", "--random-input-len", "16",
		"--random-output-len", "20", "--ignore-eos", NULL,
	};
	size_t len;
	int rc;

	(void)state;
	/* 8 requests of 20 steps of 10 ms, 4 at a time: 0.4 s, a redraw every 0.1 s */
	rc = run_on_tty(one, 120);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, tty);
	assert_non_null(strstr(out, "Successful requests:"));	/* the report: stdout */
	assert_true(progress_lines(tty, 120, "[") >= 1);
	assert_non_null(strstr(tty, "/8 requests, 0 failed, "));
	assert_non_null(strstr(tty, " tok/s, "));
	/* the line is gone at the end, the report not mixed into it */
	len = strlen(tty);
	assert_true(len >= 4);
	assert_string_equal(tty + len - 4, "\r\033[K");
	assert_null(strstr(tty, "Successful"));

	/* A sweep says which point; a narrow terminal cuts the line, never wraps it. */
	rc = run_on_tty(swp, 40);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, tty);
	assert_non_null(strstr(out, "Concurrency Sweep"));
	assert_true(progress_lines(tty, 40, "conc ") >= 2);
	assert_non_null(strstr(tty, "\rconc 1 ["));
	assert_non_null(strstr(tty, "\rconc 2 ["));

	/* --no-progress: nothing on the terminal at all */
	rc = run_on_tty(quiet, 120);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, tty);
	assert_non_null(strstr(out, "Successful requests:"));
	assert_string_equal(tty, "");

	/* Not a terminal (CI): nothing on standard error either. */
	rc = run_bench(d.sock, args);
	if (rc)
		fail_msg("llmq-bench exited %d: %s", rc, err);
	assert_non_null(strstr(out, "Successful requests:"));
	assert_string_equal(err, "");
}

static int setup(void **state)
{
	(void)state;
	if (daemon_start(&d, "bench", null_args))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	daemon_stop(&d, SIGTERM);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_counts_and_timing),
		cmocka_unit_test(test_open_loop),
		cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_file_dataset),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_interrupt_sweep),
		cmocka_unit_test(test_plot),
		cmocka_unit_test(test_plot_no_gnuplot),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_runtime_killed),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_no_runtime),
		cmocka_unit_test(test_bad_flags),
	};

	(void)argc;
	harness_init(argv[0]);
	snprintf(bench, sizeof(bench), "%s/llmq-bench", harness_bin_dir);
	return cmocka_run_group_tests(tests, setup, teardown);
}
