// SPDX-License-Identifier: GPL-2.0
/*
 * llmq-bench's arithmetic on hand-made timings, every expected value worked
 * out by hand in the comments: percentiles with linear interpolation
 * between the closest ranks (numpy's default), mean and population standard
 * deviation, TPOT = (latency - TTFT) / (output tokens - 1), ITL pooled over
 * requests, throughput over the run's duration, failures per errno, and
 * goodput against each SLO with its boundaries.  Also the workload: the
 * calibration's solution, random prompts of an exact word count with a
 * shared prefix, output lengths in range, and gamma-distributed arrivals.
 * And the gnuplot script of --plot: its inline data, its axes, and text
 * that reaches it quoted so that gnuplot substitutes nothing.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../tools/llmq-bench/bench.h"

#define MS	1000000ULL		/* ns */
#define T0	(1000ULL * MS)		/* a run that starts 1 s after boot */
#define EPS	1e-9

static void test_percentile(void **state)
{
	const double v[] = { 1, 2, 3, 4 };
	const double two[] = { 10, 20 };

	(void)state;
	/* rank = p / 100 * (n - 1) */
	assert_float_equal(bench_percentile(v, 4, 0), 1.0, EPS);
	assert_float_equal(bench_percentile(v, 4, 50), 2.5, EPS);	/* rank 1.5 */
	assert_float_equal(bench_percentile(v, 4, 90), 3.7, EPS);	/* rank 2.7 */
	assert_float_equal(bench_percentile(v, 4, 99), 3.97, EPS);	/* rank 2.97 */
	assert_float_equal(bench_percentile(v, 4, 100), 4.0, EPS);
	assert_float_equal(bench_percentile(v, 4, 100.0 / 3), 2.0, EPS);	/* rank 1 */
	assert_float_equal(bench_percentile(two, 2, 25), 12.5, EPS);	/* rank 0.25 */
	assert_float_equal(bench_percentile(two, 1, 99), 10.0, EPS);	/* one sample */
	assert_true(isnan(bench_percentile(v, 0, 50)));
}

static void test_dist(void **state)
{
	double v[] = { 4, 1, 3, 2 }, none[1];
	const double pcts[] = { 50, 99, 0 };
	struct bench_dist d;

	(void)state;
	bench_dist_compute(v, 4, pcts, 3, &d);
	assert_int_equal(d.n, 4);
	assert_float_equal(d.mean, 2.5, EPS);
	assert_float_equal(d.median, 2.5, EPS);
	/* deviations 1.5, 0.5, 0.5, 1.5: sqrt((2.25 + 0.25) * 2 / 4) */
	assert_float_equal(d.std, sqrt(1.25), EPS);
	assert_float_equal(d.pct[0], 2.5, EPS);
	assert_float_equal(d.pct[1], 3.97, EPS);
	assert_float_equal(d.pct[2], 1.0, EPS);
	assert_float_equal(d.p99, 3.97, EPS);
	/* sorted in place */
	assert_float_equal(v[0], 1.0, EPS);
	assert_float_equal(v[3], 4.0, EPS);

	bench_dist_compute(none, 0, pcts, 3, &d);
	assert_int_equal(d.n, 0);
	assert_true(isnan(d.mean) && isnan(d.median) && isnan(d.std) && isnan(d.pct[0]) &&
		    isnan(d.p99));
}

static void test_tpot(void **state)
{
	struct bench_req r = {
		.t_send = T0, .t_first = T0 + 100 * MS, .t_end = T0 + 280 * MS,
		.output_tokens = 10, .status = BENCH_REQ_OK,
	};

	(void)state;
	assert_float_equal(bench_ttft_ms(&r), 100.0, EPS);
	/* (280 - 100) / (10 - 1) */
	assert_float_equal(bench_tpot_ms(&r), 20.0, EPS);
	r.output_tokens = 2;
	assert_float_equal(bench_tpot_ms(&r), 180.0, EPS);
	/* One token: nothing after the first to divide by. */
	r.output_tokens = 1;
	assert_true(isnan(bench_tpot_ms(&r)));
	r.output_tokens = 0;
	r.t_first = 0;
	assert_true(isnan(bench_tpot_ms(&r)));
	assert_true(isnan(bench_ttft_ms(&r)));
}

static uint64_t itl_a[9], itl_b[4], itl_d[2];

/*
 *   A ok      sent at   0 ms, first token 100, done 280, 10 tokens, 50 prompt, 9 gaps of 20
 *   B ok      sent at 100 ms, first token 400, done 600,  5 tokens, 30 prompt, 4 gaps of 50
 *   C ok      sent at 200 ms, first token 250, done 450,  1 token,  20 prompt
 *   D failed  ECONNRESET, sent at 300, given up at 1000 (the run's last event)
 *   E failed  timeout;  F failed ECONNRESET;  G not sent;  H cancelled
 */
static void mk_run(struct bench_req *r)
{
	int i;

	for (i = 0; i < 9; i++)
		itl_a[i] = 20 * MS;
	for (i = 0; i < 4; i++)
		itl_b[i] = 50 * MS;
	itl_d[0] = itl_d[1] = 999 * MS;		/* a failed request's gaps count nowhere */
	memset(r, 0, 8 * sizeof(*r));
	r[0] = (struct bench_req){ .status = BENCH_REQ_OK, .t_send = T0, .t_first = T0 + 100 * MS,
				   .t_end = T0 + 280 * MS, .output_tokens = 10,
				   .prompt_tokens = 50, .itl = itl_a, .nr_itl = 9 };
	r[1] = (struct bench_req){ .status = BENCH_REQ_OK, .t_send = T0 + 100 * MS,
				   .t_first = T0 + 400 * MS, .t_end = T0 + 600 * MS,
				   .output_tokens = 5, .prompt_tokens = 30, .itl = itl_b,
				   .nr_itl = 4 };
	r[2] = (struct bench_req){ .status = BENCH_REQ_OK, .t_send = T0 + 200 * MS,
				   .t_first = T0 + 250 * MS, .t_end = T0 + 450 * MS,
				   .output_tokens = 1, .prompt_tokens = 20 };
	r[3] = (struct bench_req){ .status = BENCH_REQ_FAILED, .err = ECONNRESET,
				   .t_send = T0 + 300 * MS, .t_first = T0 + 310 * MS,
				   .t_end = T0 + 1000 * MS, .output_tokens = 7, .prompt_tokens = 99,
				   .itl = itl_d, .nr_itl = 2 };
	r[4] = (struct bench_req){ .status = BENCH_REQ_FAILED, .err = BENCH_ETIMEOUT,
				   .t_send = T0 + 310 * MS, .t_end = T0 + 900 * MS };
	r[5] = (struct bench_req){ .status = BENCH_REQ_FAILED, .err = ECONNRESET,
				   .t_send = T0 + 320 * MS, .t_end = T0 + 990 * MS };
	r[6] = (struct bench_req){ .status = BENCH_REQ_UNSENT };
	r[7] = (struct bench_req){ .status = BENCH_REQ_CANCELLED, .t_send = T0 + 330 * MS,
				   .t_end = T0 + 800 * MS, .output_tokens = 3 };
}

static void compute(const struct bench_req *r, size_t n, double ttft, double tpot, double e2el,
		    struct bench_result *res)
{
	const double pcts[] = { 50, 70, 75, 99 };
	struct bench_stat_cfg cfg = {
		.pcts = pcts, .nr_pcts = 4,
		.slo_ttft_ms = ttft, .slo_tpot_ms = tpot, .slo_e2el_ms = e2el,
	};

	assert_int_equal(bench_compute(r, n, T0, &cfg, res), 0);
}

static void test_counts_and_throughput(void **state)
{
	struct bench_req r[8];
	struct bench_result res;

	(void)state;
	mk_run(r);
	compute(r, 8, 0, 0, 0, &res);
	assert_int_equal(res.completed, 3);
	assert_int_equal(res.failed, 3);
	assert_int_equal(res.cancelled, 1);
	assert_int_equal(res.unsent, 1);
	/* the most frequent reason first */
	assert_int_equal(res.nr_errs, 2);
	assert_int_equal(res.errs[0].err, ECONNRESET);
	assert_int_equal(res.errs[0].count, 2);
	assert_int_equal(res.errs[1].err, BENCH_ETIMEOUT);
	assert_int_equal(res.errs[1].count, 1);
	/* from the start to D's end, the last event of any request sent */
	assert_float_equal(res.duration_s, 1.0, EPS);
	/* completed requests only: 50 + 30 + 20 in, 10 + 5 + 1 out */
	assert_int_equal(res.total_input, 100);
	assert_int_equal(res.total_output, 16);
	assert_float_equal(res.mean_input, 100.0 / 3, EPS);
	assert_float_equal(res.req_throughput, 3.0, EPS);
	assert_float_equal(res.out_throughput, 16.0, EPS);
	assert_float_equal(res.total_throughput, 116.0, EPS);
	assert_false(res.has_goodput);
}

static void test_latencies(void **state)
{
	struct bench_req r[8];
	struct bench_result res;

	(void)state;
	mk_run(r);
	compute(r, 8, 0, 0, 0, &res);
	/* TTFT 100, 300, 50 -> sorted 50 100 300 */
	assert_int_equal(res.ttft.n, 3);
	assert_float_equal(res.ttft.mean, 150.0, EPS);
	assert_float_equal(res.ttft.median, 100.0, EPS);
	assert_float_equal(res.ttft.pct[1], 180.0, EPS);	/* p70: rank 1.4 */
	assert_float_equal(res.ttft.pct[3], 296.0, EPS);	/* p99: rank 1.98 */
	/* TPOT 20 (A), (600 - 400) / 4 = 50 (B); C has one token and no TPOT */
	assert_int_equal(res.tpot.n, 2);
	assert_float_equal(res.tpot.mean, 35.0, EPS);
	assert_float_equal(res.tpot.median, 35.0, EPS);
	assert_float_equal(res.tpot.pct[3], 49.7, EPS);	/* 20 + 0.99 * 30 */
	assert_float_equal(res.tpot.std, 15.0, EPS);
	/* ITL: 9 x 20 and 4 x 50 pooled; D's gaps left out */
	assert_int_equal(res.itl.n, 13);
	assert_float_equal(res.itl.mean, 380.0 / 13, EPS);
	assert_float_equal(res.itl.median, 20.0, EPS);	/* rank 6 */
	assert_float_equal(res.itl.pct[1], 32.0, EPS);	/* p70: rank 8.4, 20 + 0.4 * 30 */
	assert_float_equal(res.itl.pct[2], 50.0, EPS);	/* p75: rank 9 */
	assert_float_equal(res.itl.pct[3], 50.0, EPS);
	/* E2EL 280, 500, 250 */
	assert_int_equal(res.e2el.n, 3);
	assert_float_equal(res.e2el.mean, 1030.0 / 3, EPS);
	assert_float_equal(res.e2el.median, 280.0, EPS);
}

static void test_goodput(void **state)
{
	struct bench_req r[8];
	struct bench_result res;

	(void)state;
	mk_run(r);
	/* TTFT A 100, B 300, C 50: two within 200 */
	compute(r, 8, 200, 0, 0, &res);
	assert_true(res.has_goodput);
	assert_int_equal(res.good, 2);
	assert_float_equal(res.goodput, 2.0, EPS);
	/* an SLO is met at equality: A's 100 */
	compute(r, 8, 100, 0, 0, &res);
	assert_int_equal(res.good, 2);
	compute(r, 8, 60, 0, 0, &res);
	assert_int_equal(res.good, 1);
	/* TPOT A 20, B 50; C has none and meets any TPOT SLO */
	compute(r, 8, 0, 30, 0, &res);
	assert_int_equal(res.good, 2);
	compute(r, 8, 0, 50, 0, &res);
	assert_int_equal(res.good, 3);
	compute(r, 8, 0, 10, 0, &res);
	assert_int_equal(res.good, 1);
	/* E2EL 280, 500, 250 */
	compute(r, 8, 0, 0, 260, &res);
	assert_int_equal(res.good, 1);
	/* all at once: A (100, 20, 280) and C (50, none, 250); B fails all three */
	compute(r, 8, 150, 30, 300, &res);
	assert_int_equal(res.good, 2);
	/* ... and one more SLO that only C meets */
	compute(r, 8, 60, 30, 300, &res);
	assert_int_equal(res.good, 1);
	assert_float_equal(res.goodput, 1.0, EPS);
}

static void test_no_token_and_nothing_done(void **state)
{
	struct bench_req r[2];
	struct bench_result res;

	(void)state;
	/* A request that ended with no token: no TTFT, its latency stands in. */
	memset(r, 0, sizeof(r));
	r[0] = (struct bench_req){ .status = BENCH_REQ_OK, .t_send = T0, .t_end = T0 + 40 * MS,
				   .prompt_tokens = 9 };
	compute(r, 1, 50, 0, 0, &res);
	assert_int_equal(res.completed, 1);
	assert_int_equal(res.ttft.n, 0);
	assert_int_equal(res.tpot.n, 0);
	assert_int_equal(res.e2el.n, 1);
	assert_int_equal(res.good, 1);
	compute(r, 1, 30, 0, 0, &res);
	assert_int_equal(res.good, 0);

	/* Nothing completed: no sample anywhere, throughput 0, duration still measured. */
	r[0] = (struct bench_req){ .status = BENCH_REQ_FAILED, .err = EIO, .t_send = T0,
				   .t_end = T0 + 500 * MS };
	r[1] = (struct bench_req){ .status = BENCH_REQ_UNSENT };
	compute(r, 2, 0, 0, 0, &res);
	assert_int_equal(res.completed, 0);
	assert_int_equal(res.failed, 1);
	assert_int_equal(res.unsent, 1);
	assert_float_equal(res.duration_s, 0.5, EPS);
	assert_float_equal(res.req_throughput, 0.0, EPS);
	assert_float_equal(res.mean_input, 0.0, EPS);
	assert_true(isnan(res.ttft.mean) && isnan(res.itl.p99) && isnan(res.e2el.median));

	/* Nothing sent at all: a zero duration divides nothing. */
	compute(r + 1, 1, 0, 0, 0, &res);
	assert_float_equal(res.duration_s, 0.0, EPS);
	assert_float_equal(res.out_throughput, 0.0, EPS);
}

static size_t nr_words(const char *s)
{
	size_t n = 1;

	for (; *s; s++)
		n += *s == ' ';
	return n;
}

static void test_calibration(void **state)
{
	struct bench_calib c = { 0 };
	char *all = bench_calib_prompt(2), *h0 = bench_calib_prompt(0), *h1 = bench_calib_prompt(1);
	size_t w = nr_words(all);

	(void)state;
	assert_non_null(all);
	assert_non_null(h0);
	assert_non_null(h1);
	/* the halves make the whole list */
	assert_int_equal(nr_words(h0) + nr_words(h1), w);
	assert_int_equal(strlen(h0) + 1 + strlen(h1), strlen(all));
	/* overhead 4, the halves' words worth 500 and 520 tokens */
	c.probe_tokens[0] = 504;
	c.probe_tokens[1] = 524;
	c.probe_tokens[2] = 1024;
	assert_int_equal(bench_calib_solve(&c), 0);
	assert_float_equal(c.overhead, 4.0, EPS);
	assert_float_equal(c.per_word, 1020.0 / (double)w, EPS);
	/* nonsense: no token per word */
	c.probe_tokens[0] = c.probe_tokens[1] = c.probe_tokens[2] = 5;
	assert_int_equal(bench_calib_solve(&c), -EINVAL);
	free(all);
	free(h0);
	free(h1);
}

static void test_random_prompts(void **state)
{
	struct bench_opts o = { .input_len = 10, .output_len = 7, .prefix_len = 5, .seed = 42 };
	struct bench_calib c = { .overhead = 0, .per_word = 1 };
	struct bench_prompt *p, *q;
	size_t i, plen;
	const char *sp;
	int k;

	(void)state;
	assert_int_equal(bench_workload_random(&o, &c, 20, &p), 0);
	/* the prefix: the first 5 words of every prompt */
	for (sp = p[0].text, k = 0; k < 5; k++)
		sp = strchr(sp, ' ') + 1;
	plen = (size_t)(sp - p[0].text);
	for (i = 0; i < 20; i++) {
		assert_int_equal(nr_words(p[i].text), 15);	/* prefix + input, 1 token a word */
		assert_int_equal(p[i].len, strlen(p[i].text));
		assert_int_equal(p[i].max_tokens, 7);
		assert_memory_equal(p[i].text, p[0].text, plen);
	}
	/* same seed, same prompts; another seed, others */
	assert_int_equal(bench_workload_random(&o, &c, 20, &q), 0);
	assert_string_equal(p[19].text, q[19].text);
	bench_workload_free(q, 20);
	o.seed = 43;
	assert_int_equal(bench_workload_random(&o, &c, 20, &q), 0);
	assert_string_not_equal(p[19].text, q[19].text);
	bench_workload_free(q, 20);
	bench_workload_free(p, 20);

	/* lengths in len x [1 - r, 1 + r]; the overhead comes off the words */
	o = (struct bench_opts){ .input_len = 20, .output_len = 10, .range_ratio = 0.5 };
	c = (struct bench_calib){ .overhead = 4, .per_word = 2 };
	assert_int_equal(bench_workload_random(&o, &c, 200, &p), 0);
	for (i = 0; i < 200; i++) {
		/* 10..30 tokens: (10 - 4) / 2 = 3 .. (30 - 4) / 2 = 13 words */
		assert_in_range(nr_words(p[i].text), 3, 13);
		assert_in_range(p[i].max_tokens, 5, 15);
	}
	bench_workload_free(p, 200);
}

static void test_arrivals(void **state)
{
	struct bench_req *r = calloc(20001, sizeof(*r));
	struct bench_rng g;
	double sum = 0, mean, var = 0, x;
	int i;

	(void)state;
	assert_non_null(r);
	/* Poisson at 10/s: mean gap 0.1 s; the exponential's deviation is its mean */
	bench_arrivals(r, 20001, 10, 1, 7);
	assert_int_equal(r[0].arrival_ns, 0);
	for (i = 1; i < 20001; i++)
		assert_true(r[i].arrival_ns >= r[i - 1].arrival_ns);
	mean = (double)r[20000].arrival_ns / 1e9 / 20000;
	assert_float_equal(mean, 0.1, 0.003);
	for (i = 1; i < 20001; i++) {
		x = (double)(r[i].arrival_ns - r[i - 1].arrival_ns) / 1e9 - mean;
		var += x * x;
	}
	assert_float_equal(sqrt(var / 20000), 0.1, 0.005);
	/* burstiness 0.25: same mean, deviation 0.1 / sqrt(0.25) = 0.2 */
	bench_arrivals(r, 20001, 10, 0.25, 7);
	assert_float_equal((double)r[20000].arrival_ns / 1e9 / 20000, 0.1, 0.005);
	/* all at once */
	bench_arrivals(r, 100, INFINITY, 1, 7);
	for (i = 0; i < 100; i++)
		assert_int_equal(r[i].arrival_ns, 0);
	/* gamma(3, 2): mean 6 */
	bench_rng_seed(&g, 1);
	for (i = 0; i < 20000; i++)
		sum += bench_rng_gamma(&g, 3, 2);
	assert_float_equal(sum / 20000, 6.0, 0.1);
	free(r);
}

/* The script for @n points, in a string to free(). */
static char *script(const char *title, const char *sub, const unsigned long *conc,
		    const struct bench_result *rs, unsigned int n, int *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*err = bench_plot_script(f, title, sub, conc, rs, n);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void result(struct bench_result *r, double tput, double ttft99, double itl99)
{
	memset(r, 0, sizeof(*r));
	r->completed = 8;
	r->out_throughput = tput;
	r->ttft.p99 = ttft99;
	r->itl.p99 = itl99;
}

static void test_plot_script(void **state)
{
	const unsigned long conc[] = { 1, 8, 32 }, two[] = { 2, 4 };
	struct bench_result rs[3];
	char *s;
	int err;

	(void)state;
	/* bench-serve's figures: concurrency 1 to 32, latencies 14.64 to 3702.11 ms */
	result(&rs[0], 77.76, 196.64, 14.64);
	result(&rs[1], 235.70, 1476.22, 159.24);
	result(&rs[2], 241.03, 3702.11, 203.94);
	rs[2].failed = 1;
	rs[2].unsent = 2;
	s = script("it's `echo no` @GPVAL_TERM", "line 2\nline 3\tend", conc, rs, 3, &err);
	assert_int_equal(err, 0);
	/* conc, tok/s, TTFT p99, ITL p99, ratio to conc 1 (235.7 / 77.76), ok, not ok */
	assert_non_null(strstr(s, "$sweep << EOD\n"
				  "1 77.76 196.64 14.64 1 8 0\n"
				  "8 235.7 1476.22 159.24 3.03112 8 0\n"
				  "32 241.03 3702.11 203.94 3.09967 8 3\n"
				  "EOD\n"));
	/* quotes doubled, a newline joins two strings, a tab is not kept */
	assert_non_null(strstr(s, "title = 'it''s `echo no` @GPVAL_TERM' . \"\\n\" . "
				  "'line 2' . \"\\n\" . 'line 3?end'\n"));
	/* 32 / 1 and 3702.11 / 14.64: log axes */
	assert_non_null(strstr(s, "set logscale x 2\n"));
	assert_non_null(strstr(s, "set logscale y 10\n"));
	assert_non_null(strstr(s, "set xtics (1, 8, 32)\n"));
	assert_non_null(strstr(s, "ratio to concurrency 1)"));
	assert_non_null(strstr(s, "title 'TTFT p99'"));
	assert_non_null(strstr(s, "title 'ITL p99'"));
	assert_non_null(strstr(s, "pngcairo"));
	assert_null(strstr(s, "set output"));	/* the PNG goes to standard output */
	free(s);

	/* No concurrency 1: ratios to the first point; 4 / 2: linear axes. */
	result(&rs[0], 100, 20, NAN);
	result(&rs[1], 150, 30, NAN);
	s = script("t", NULL, two, rs, 2, &err);
	assert_int_equal(err, 0);
	assert_non_null(strstr(s, "2 100 20 ? 1 8 0\n4 150 30 ? 1.5 8 0\n"));
	assert_non_null(strstr(s, "title = 't'\n"));
	assert_non_null(strstr(s, "ratio to concurrency 2)"));
	assert_null(strstr(s, "logscale"));
	assert_non_null(strstr(s, "set xrange [1.4:4.6]\n"));
	assert_non_null(strstr(s, "title 'TTFT p99'"));
	assert_null(strstr(s, "title 'ITL p99'"));	/* no ITL sample: no line */
	free(s);

	/* Nothing measured at all: an empty panel that says so. */
	result(&rs[0], 0, NAN, NAN);
	s = script("t", NULL, conc, rs, 1, &err);
	assert_int_equal(err, 0);
	assert_non_null(strstr(s, "1 0 ? ? ? 8 0\n"));
	assert_non_null(strstr(s, "no latency samples"));
	assert_non_null(strstr(s, "plot NaN notitle\n"));
	free(s);

	s = script("t", NULL, conc, rs, 0, &err);
	assert_int_equal(err, -EINVAL);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_dist),
		cmocka_unit_test(test_tpot),
		cmocka_unit_test(test_counts_and_throughput),
		cmocka_unit_test(test_latencies),
		cmocka_unit_test(test_goodput),
		cmocka_unit_test(test_no_token_and_nothing_done),
		cmocka_unit_test(test_calibration),
		cmocka_unit_test(test_random_prompts),
		cmocka_unit_test(test_arrivals),
		cmocka_unit_test(test_plot_script),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
