// SPDX-License-Identifier: GPL-2.0
/*
 * The sampler on hand-built logits: greedy choice and ties, the sampled
 * distribution against softmax(logits / T), top-k, top-p and min-p sets,
 * penalties pinned to the exact float they should produce, seeds, logprobs
 * against a double-precision log-softmax, and the stop logic: eos and stop
 * ids, stop strings split across pieces, max_tokens, flush; plus the
 * parameter checks.
 *
 * Statistical checks use a fixed seed (so they are deterministic) and
 * 50000 draws; they require both max |empirical - expected| < 0.01 (at
 * least 4.4 standard deviations for any probability) and a chi-square
 * statistic below the p = 0.001 critical value for the degrees of freedom.
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

#include "../../runtime/sampler.h"
#include "testenv.h"

#define DRAWS	50000

/* uniform in [0, 1] */
static float frand(void)
{
	return (float)((double)rand() / RAND_MAX);
}

static struct sampler_params base_params(void)
{
	struct sampler_params p;

	memset(&p, 0, sizeof(p));
	p.temperature = 1.0f;
	p.top_p = 1.0f;
	p.repetition_penalty = 1.0f;
	p.seed = 1234;
	p.max_tokens = 1000000;
	return p;
}

static struct sampler *mk(const struct sampler_params *p, uint32_t vocab,
			  const uint32_t *prompt, uint32_t nr_prompt)
{
	struct sampler *s = sampler_create(p, vocab, prompt, nr_prompt);

	assert_non_null(s);
	return s;
}

/* softmax(x / t) in double */
static void softmax(const float *x, uint32_t n, double t, double *out)
{
	double m = -INFINITY, sum = 0;
	uint32_t i;

	for (i = 0; i < n; i++)
		if (x[i] / t > m)
			m = x[i] / t;
	for (i = 0; i < n; i++) {
		out[i] = exp(x[i] / t - m);
		sum += out[i];
	}
	for (i = 0; i < n; i++)
		out[i] /= sum;
}

static void draw_counts(struct sampler *s, float *logits, uint32_t n, uint32_t *counts,
			uint32_t draws)
{
	uint32_t i, tok;

	memset(counts, 0, n * sizeof(*counts));
	for (i = 0; i < draws; i++) {
		tok = sampler_sample(s, logits, NULL);
		assert_true(tok < n);
		counts[tok]++;
	}
}

/* chi-square critical values at p = 0.001 for 1..10 degrees of freedom */
static const double chi2_crit[] = {
	0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59,
};

/*
 * Empirical frequencies against @expect: tokens with expected probability 0
 * must never be drawn; the others pass max-abs-diff and chi-square.
 */
static void check_distribution(const uint32_t *counts, const double *expect, uint32_t n,
			       uint32_t draws)
{
	double chi2 = 0, f, e;
	uint32_t i, df = 0;

	for (i = 0; i < n; i++) {
		f = (double)counts[i] / draws;
		if (expect[i] == 0) {
			assert_int_equal(counts[i], 0);
			continue;
		}
		if (fabs(f - expect[i]) >= 0.01)
			fail_msg("token %u: frequency %f, expected %f", i, f, expect[i]);
		e = expect[i] * draws;
		chi2 += (counts[i] - e) * (counts[i] - e) / e;
		df++;
	}
	df--;
	assert_true(df >= 1 && df <= 10);
	if (chi2 >= chi2_crit[df])
		fail_msg("chi-square %f >= %f (df %u)", chi2, chi2_crit[df], df);
}

/* ---- parameter checks ---- */

static void expect_bad(const struct sampler_params *p, int err, const char *word)
{
	char msg[128] = "";

	assert_int_equal(sampler_check(p, msg, sizeof(msg)), err);
	if (!strstr(msg, word))
		fail_msg("message \"%s\" does not name %s", msg, word);
	assert_null(sampler_create(p, 10, NULL, 0));
	assert_int_equal(errno, -err);
}

#define BAD(field, val, err, word)		\
	do {					\
		q = p;				\
		q.field = (val);		\
		expect_bad(&q, err, word);	\
	} while (0)

static void test_check(void **state)
{
	static const char *const too_many[33] = {
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
		"a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
	};
	struct sampler_params p = base_params(), q;
	const char *stops[2] = { "ok", NULL };
	char longstop[300], msg[128];

	(void)state;
	assert_int_equal(sampler_check(&p, msg, sizeof(msg)), 0);
	assert_int_equal(sampler_check(NULL, msg, sizeof(msg)), -EINVAL);
	/* NULL or empty message buffers are fine */
	q = p;
	q.top_p = 0;
	assert_int_equal(sampler_check(&q, NULL, 0), -ERANGE);

	/* edges that are allowed */
	q = p;
	q.temperature = 0;
	q.top_p = 1;
	q.min_p = 1;
	q.repetition_penalty = 10;
	q.presence_penalty = -2;
	q.frequency_penalty = 2;
	q.max_tokens = 1;
	assert_int_equal(sampler_check(&q, msg, sizeof(msg)), 0);
	q.temperature = 100;
	q.min_p = 0;
	q.presence_penalty = 2;
	q.frequency_penalty = -2;
	assert_int_equal(sampler_check(&q, msg, sizeof(msg)), 0);

	BAD(temperature, -0.1f, -ERANGE, "temperature");
	BAD(temperature, 100.5f, -ERANGE, "temperature");
	BAD(temperature, NAN, -ERANGE, "temperature");
	BAD(temperature, INFINITY, -ERANGE, "temperature");
	BAD(top_p, 0, -ERANGE, "top_p");
	BAD(top_p, 1.01f, -ERANGE, "top_p");
	BAD(top_p, NAN, -ERANGE, "top_p");
	BAD(min_p, -0.01f, -ERANGE, "min_p");
	BAD(min_p, 1.5f, -ERANGE, "min_p");
	BAD(repetition_penalty, 0, -ERANGE, "repetition_penalty");
	BAD(repetition_penalty, 10.5f, -ERANGE, "repetition_penalty");
	BAD(presence_penalty, -2.5f, -ERANGE, "presence_penalty");
	BAD(presence_penalty, 2.5f, -ERANGE, "presence_penalty");
	BAD(frequency_penalty, -2.5f, -ERANGE, "frequency_penalty");
	BAD(frequency_penalty, NAN, -ERANGE, "frequency_penalty");
	BAD(max_tokens, 0, -ERANGE, "max_tokens");
	BAD(nr_eos_ids, 1, -EINVAL, "eos_ids");
	BAD(nr_stop_ids, 2, -EINVAL, "stop_ids");
	BAD(nr_stop, 1, -EINVAL, "stop");
	q = p;
	q.stop = too_many;
	q.nr_stop = 33;
	expect_bad(&q, -EINVAL, "stop");
	q.nr_stop = 32;
	assert_int_equal(sampler_check(&q, msg, sizeof(msg)), 0);
	q = p;
	q.stop = stops;
	q.nr_stop = 2;
	expect_bad(&q, -EINVAL, "stop string 1");
	stops[1] = "";
	expect_bad(&q, -EINVAL, "stop string 1");
	memset(longstop, 'x', 257);
	longstop[257] = 0;
	stops[1] = longstop;
	expect_bad(&q, -EINVAL, "stop string 1");
	longstop[256] = 0;
	assert_int_equal(sampler_check(&q, msg, sizeof(msg)), 0);
}

static void test_create_bad(void **state)
{
	struct sampler_params p = base_params();
	uint32_t prompt[2] = { 3, 10 };

	(void)state;
	assert_null(sampler_create(&p, 0, NULL, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(sampler_create(&p, 10, prompt, 2));	/* id 10 >= vocab */
	assert_int_equal(errno, EINVAL);
	assert_null(sampler_create(&p, 10, NULL, 1));
	assert_int_equal(errno, EINVAL);
	sampler_free(mk(&p, 11, prompt, 2));
	sampler_free(NULL);
}

/* ---- choice ---- */

static void test_greedy(void **state)
{
	struct sampler_params p = base_params();
	float x[6] = { 0.5f, 2.0f, -1.0f, 3.25f, 3.0f, -INFINITY };
	float ties[5] = { -INFINITY, 1.0f, 7.0f, 7.0f, 7.0f };
	float masked[3] = { -INFINITY, -INFINITY, -INFINITY };
	struct sampler *s;
	int i;

	(void)state;
	p.temperature = 0;
	p.top_k = 1;		/* ignored when greedy */
	p.top_p = 0.1f;
	s = mk(&p, 6, NULL, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(sampler_sample(s, x, NULL), 3);
	sampler_free(s);
	s = mk(&p, 5, NULL, 0);
	assert_int_equal(sampler_sample(s, ties, NULL), 2);	/* lowest id */
	sampler_free(s);
	s = mk(&p, 3, NULL, 0);
	assert_int_equal(sampler_sample(s, masked, NULL), 0);
	sampler_free(s);

	/* below vLLM's 1e-5 the temperature means greedy too */
	p.temperature = 5e-6f;
	s = mk(&p, 5, NULL, 0);
	for (i = 0; i < 100; i++)
		assert_int_equal(sampler_sample(s, ties, NULL), 2);
	sampler_free(s);
}

static void test_temperature(void **state)
{
	static const float temps[] = { 1.0f, 0.7f, 2.5f };
	float x[6] = { 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 2.0f };
	struct sampler_params p = base_params();
	double expect[6];
	uint32_t counts[6];
	struct sampler *s;
	unsigned int k;

	(void)state;
	for (k = 0; k < sizeof(temps) / sizeof(temps[0]); k++) {
		p.temperature = temps[k];
		p.seed = 42 + k;
		s = mk(&p, 6, NULL, 0);
		draw_counts(s, x, 6, counts, DRAWS);
		softmax(x, 6, temps[k], expect);
		check_distribution(counts, expect, 6, DRAWS);
		sampler_free(s);
	}
}

static void test_top_k(void **state)
{
	float x[10] = { 0.1f, 1.5f, -2.0f, 1.4f, 0.3f, 1.45f, -1.0f, 0.0f, 0.2f, 1.2f };
	struct sampler_params p = base_params();
	double expect[10], two[2];
	uint32_t counts[10];
	struct sampler *s;
	int i;

	(void)state;
	/* top 2 are ids 1 (1.5) and 5 (1.45) */
	p.top_k = 2;
	p.temperature = 1.5f;
	s = mk(&p, 10, NULL, 0);
	draw_counts(s, x, 10, counts, DRAWS);
	softmax((float[]){ x[1], x[5] }, 2, 1.5, two);
	for (i = 0; i < 10; i++)
		expect[i] = 0;
	expect[1] = two[0];
	expect[5] = two[1];
	check_distribution(counts, expect, 10, DRAWS);
	sampler_free(s);

	/* k = 1 is greedy; k >= vocab keeps everything */
	p.top_k = 1;
	s = mk(&p, 10, NULL, 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal(sampler_sample(s, x, NULL), 1);
	sampler_free(s);
	p.top_k = 10;
	s = mk(&p, 10, NULL, 0);
	draw_counts(s, x, 10, counts, DRAWS);
	softmax(x, 10, 1.5, expect);
	check_distribution(counts, expect, 10, DRAWS);
	sampler_free(s);

	/* tokens tied with the k-th stay in, as in vLLM; both selection paths */
	p.top_k = 2;
	p.temperature = 1.0f;
	for (i = 0; i < 2; i++) {
		uint32_t nv = i ? 64 : 5, j;
		float t[64], u[64];
		double e[64];
		uint32_t cnt[64];

		for (j = 0; j < nv; j++) {
			t[j] = j == 0 ? 3.0f : j % 21 == 1 || j == 2 ? 1.0f : -1.0f + 0.01f * j;
			u[j] = t[j] >= 1.0f ? t[j] : -INFINITY;
		}
		s = mk(&p, nv, NULL, 0);
		draw_counts(s, t, nv, cnt, DRAWS);
		softmax(u, nv, 1.0, e);
		check_distribution(cnt, e, nv, DRAWS);
		sampler_free(s);
	}
}

static int cmp_desc_idx(const void *a, const void *b, void *arg)
{
	const float *x = arg;
	float u = x[*(const uint32_t *)a], v = x[*(const uint32_t *)b];

	return (u < v) - (u > v);
}

/* A big vocabulary: top-k selects exactly the k best (quickselect path). */
static void test_top_k_large(void **state)
{
	const uint32_t n = 50000, k = 7;
	struct sampler_params p = base_params();
	uint32_t *idx, i, tok, hits[7] = { 0 };
	struct sampler *s;
	float *x;

	(void)state;
	x = malloc(n * sizeof(*x));
	idx = malloc(n * sizeof(*idx));
	srand(7);
	for (i = 0; i < n; i++) {
		x[i] = frand() * 4.0f - 2.0f;
		idx[i] = i;
	}
	qsort_r(idx, n, sizeof(*idx), cmp_desc_idx, x);
	p.top_k = k;
	s = mk(&p, n, NULL, 0);
	for (i = 0; i < 3000; i++) {
		uint32_t j;

		tok = sampler_sample(s, x, NULL);
		for (j = 0; j < k; j++)
			if (idx[j] == tok)
				break;
		if (j == k)
			fail_msg("token %u (logit %f) outside the top %u", tok, x[tok], k);
		hits[j]++;
	}
	for (i = 0; i < k; i++)
		assert_true(hits[i] > 0);
	sampler_free(s);

	/* a large k takes the quickselect path: never below the k-th value */
	p.top_k = 12000;
	p.temperature = 0.5f;
	s = mk(&p, n, NULL, 0);
	for (i = 0; i < 3000; i++) {
		tok = sampler_sample(s, x, NULL);
		assert_true(x[tok] >= x[idx[p.top_k - 1]]);
	}
	sampler_free(s);
	free(x);
	free(idx);
}

static void logs_of(const double *prob, float *x, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		x[i] = (float)log(prob[i]);
}

static void test_top_p(void **state)
{
	static const double prob[4] = { 0.5, 0.3, 0.15, 0.05 };
	struct sampler_params p = base_params();
	double expect[4];
	uint32_t counts[4];
	struct sampler *s;
	float x[4];

	(void)state;
	logs_of(prob, x, 4);

	/* 0.5 + 0.3 reaches 0.8: the nucleus is exactly the first two */
	p.top_p = 0.8f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, DRAWS);
	expect[0] = 0.5 / 0.8;
	expect[1] = 0.3 / 0.8;
	expect[2] = expect[3] = 0;
	check_distribution(counts, expect, 4, DRAWS);
	sampler_free(s);

	/* a little more needs the third */
	p.top_p = 0.81f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, DRAWS);
	expect[0] = 0.5 / 0.95;
	expect[1] = 0.3 / 0.95;
	expect[2] = 0.15 / 0.95;
	expect[3] = 0;
	check_distribution(counts, expect, 4, DRAWS);
	sampler_free(s);

	/* at most the top token, never nothing */
	p.top_p = 0.3f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, 2000);
	assert_int_equal(counts[0], 2000);
	sampler_free(s);
	p.top_p = 1e-7f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, 2000);
	assert_int_equal(counts[0], 2000);
	sampler_free(s);
}

/* top-p applies to the distribution renormalised over the top-k set */
static void test_top_k_then_top_p(void **state)
{
	static const double prob[4] = { 0.4, 0.3, 0.2, 0.1 };
	struct sampler_params p = base_params();
	uint32_t counts[4];
	struct sampler *s;
	float x[4];

	(void)state;
	logs_of(prob, x, 4);
	p.top_p = 0.75f;
	s = mk(&p, 4, NULL, 0);		/* 0.4, 0.7, 0.9: three tokens */
	draw_counts(s, x, 4, counts, 20000);
	assert_true(counts[2] > 0);
	assert_int_equal(counts[3], 0);
	sampler_free(s);
	p.top_k = 3;
	s = mk(&p, 4, NULL, 0);		/* 0.444, 0.778: two tokens */
	draw_counts(s, x, 4, counts, 20000);
	assert_true(counts[0] > 0 && counts[1] > 0);
	assert_int_equal(counts[2], 0);
	assert_int_equal(counts[3], 0);
	sampler_free(s);
}

/*
 * A big vocabulary where the nucleus is 13 of 20 hot tokens hidden among
 * 40000 cold ones: the tokens drawn are exactly the reference nucleus, with
 * and without a top-k larger than it (top-p then sees the top-k mass only),
 * and with and without a min-p below it.
 */
static void test_top_p_large(void **state)
{
	const uint32_t n = 40000, hot = 20, want = 13;
	struct sampler_params p = base_params();
	uint32_t *idx, *counts, i, k, variant;
	double *prob, cum[20], mass;
	struct sampler *s;
	float *x;

	(void)state;
	x = malloc(n * sizeof(*x));
	idx = malloc(n * sizeof(*idx));
	prob = malloc(n * sizeof(*prob));
	counts = malloc(n * sizeof(*counts));
	srand(11);
	for (i = 0; i < n; i++)
		x[i] = frand() * 4.0f - 4.0f;
	for (i = 0; i < hot; i++)
		x[(i * 7919 + 13) % n] = 6.0f + frand() * 2.0f;
	for (i = 0; i < n; i++)
		idx[i] = i;
	qsort_r(idx, n, sizeof(*idx), cmp_desc_idx, x);
	softmax(x, n, 1.0, prob);

	for (variant = 0; variant < 4; variant++) {
		/* top-p works on the distribution renormalised over top-k */
		p.top_k = variant & 1 ? 100 : 0;
		mass = 0;
		for (i = 0; i < (p.top_k ? p.top_k : n); i++)
			mass += prob[idx[i]];
		cum[0] = prob[idx[0]] / mass;
		for (i = 1; i < hot; i++)
			cum[i] = cum[i - 1] + prob[idx[i]] / mass;
		/* halfway between the 12th and 13th cumulative sums */
		p.top_p = (float)((cum[want - 2] + cum[want - 1]) / 2);
		assert_true(cum[want - 1] - p.top_p > 1e-4 && p.top_p - cum[want - 2] > 1e-4);
		/* below the least likely of the nucleus, relative to the best */
		p.min_p = variant & 2 ? (float)(prob[idx[want - 1]] / prob[idx[0]] * 0.5) : 0;
		p.seed = 99 + variant;
		s = mk(&p, n, NULL, 0);
		draw_counts(s, x, n, counts, 3000);
		for (k = 0; k < n; k++) {
			if (k < want && !counts[idx[k]])
				fail_msg("variant %u: rank %u never drawn", variant, k);
			if (k >= want && counts[idx[k]])
				fail_msg("variant %u: rank %u drawn", variant, k);
		}
		sampler_free(s);
	}
	free(x);
	free(idx);
	free(prob);
	free(counts);
}

static void test_min_p(void **state)
{
	static const double prob[4] = { 0.5, 0.3, 0.15, 0.05 };
	struct sampler_params p = base_params();
	double expect[4];
	uint32_t counts[4];
	struct sampler *s;
	float x[4];

	(void)state;
	logs_of(prob, x, 4);
	/* threshold 0.25 * 0.5 = 0.125: 0.05 goes */
	p.min_p = 0.25f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, DRAWS);
	expect[0] = 0.5 / 0.95;
	expect[1] = 0.3 / 0.95;
	expect[2] = 0.15 / 0.95;
	expect[3] = 0;
	check_distribution(counts, expect, 4, DRAWS);
	sampler_free(s);

	/* threshold 0.35: only the best */
	p.min_p = 0.7f;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, 2000);
	assert_int_equal(counts[0], 2000);
	sampler_free(s);

	/* the cut is on the tempered distribution: at T = 0.5 the
	 * probabilities go as p^2, 0.685 0.247 0.0616 0.0068, and a threshold
	 * of 0.0685 keeps two (at T = 1 it would keep three)
	 */
	p.min_p = 0.1f;
	p.temperature = 0.5f;
	for (p.top_k = 0; p.top_k <= 3; p.top_k += 3) {
		s = mk(&p, 4, NULL, 0);
		draw_counts(s, x, 4, counts, DRAWS);
		expect[0] = 0.25 / 0.34;
		expect[1] = 0.09 / 0.34;
		expect[2] = expect[3] = 0;
		check_distribution(counts, expect, 4, DRAWS);
		sampler_free(s);
	}
	p.temperature = 1.0f;

	/* with top-k, same cut */
	expect[0] = 0.5 / 0.95;
	expect[1] = 0.3 / 0.95;
	expect[2] = 0.15 / 0.95;
	expect[3] = 0;
	p.min_p = 0.25f;
	p.top_k = 3;
	s = mk(&p, 4, NULL, 0);
	draw_counts(s, x, 4, counts, DRAWS);
	check_distribution(counts, expect, 4, DRAWS);
	sampler_free(s);
}

/* ---- penalties ---- */

static void accept_n(struct sampler *s, uint32_t token, int n)
{
	const char *e;
	size_t el;

	while (n--)
		assert_int_equal(sampler_accept(s, token, "", 0, &e, &el), SAMPLER_CONTINUE);
}

/*
 * Pin the penalised logit of @tok (raw value @raw) to exactly @want:
 * greedy with a competitor at id 0 (untouched, wins ties) placed at
 * @want wins, placed one float below @want loses.
 */
static void pin(struct sampler *s, uint32_t tok, float raw, float want)
{
	float x[4] = { 0, -50.0f, -50.0f, -50.0f };

	x[tok] = raw;
	x[0] = want;
	assert_int_equal(sampler_sample(s, x, NULL), 0);
	x[0] = nextafterf(want, -INFINITY);
	assert_int_equal(sampler_sample(s, x, NULL), tok);
	assert_true(x[tok] == raw);	/* row restored */
}

static void test_repetition_penalty(void **state)
{
	struct sampler_params p = base_params();
	uint32_t prompt[2] = { 1, 1 };
	float x[3] = { 1.9f, 2.0f, -5.0f };
	float y[3] = { -1.05f, -1.0f, -5.0f };
	struct sampler *s;

	(void)state;
	p.temperature = 0;
	p.repetition_penalty = 1.1f;
	/* a choice that flips: 2.0 / 1.1 < 1.9, and -1.0 * 1.1 < -1.05 */
	s = mk(&p, 3, NULL, 0);
	assert_int_equal(sampler_sample(s, x, NULL), 1);
	assert_int_equal(sampler_sample(s, y, NULL), 1);
	sampler_free(s);
	s = mk(&p, 3, prompt, 2);
	assert_int_equal(sampler_sample(s, x, NULL), 0);
	assert_int_equal(sampler_sample(s, y, NULL), 0);
	sampler_free(s);

	/* exact values: prompt tokens, positive and negative logits */
	s = mk(&p, 4, prompt, 2);
	pin(s, 1, 2.2f, 2.2f / 1.1f);
	pin(s, 1, -0.7f, -0.7f * 1.1f);
	pin(s, 1, 0.0f, 0.0f);
	pin(s, 2, 2.2f, 2.2f);		/* not seen: unchanged */
	/* output tokens count too, once, however often they occur */
	accept_n(s, 2, 3);
	pin(s, 2, 2.2f, 2.2f / 1.1f);
	pin(s, 1, 2.2f, 2.2f / 1.1f);
	sampler_free(s);
}

static void test_presence_frequency(void **state)
{
	struct sampler_params p = base_params();
	uint32_t prompt[1] = { 3 };
	struct sampler *s;

	(void)state;
	p.temperature = 0;
	p.presence_penalty = 0.25f;
	p.frequency_penalty = 0.5f;
	s = mk(&p, 4, prompt, 1);
	pin(s, 3, 1.0f, 1.0f);		/* prompt only: no change */
	pin(s, 1, 1.0f, 1.0f);
	accept_n(s, 1, 1);
	pin(s, 1, 1.0f, 1.0f - 0.5f - 0.25f);
	accept_n(s, 1, 2);
	accept_n(s, 3, 1);
	pin(s, 1, 1.0f, 1.0f - 0.5f * 3 - 0.25f);
	pin(s, 3, 1.0f, 1.0f - 0.5f - 0.25f);
	pin(s, 2, 1.0f, 1.0f);
	sampler_free(s);

	/* negative penalties encourage */
	p.presence_penalty = -1.0f;
	p.frequency_penalty = 0;
	s = mk(&p, 4, NULL, 0);
	accept_n(s, 2, 5);
	pin(s, 2, 0.3f, 0.3f + 1.0f);
	sampler_free(s);

	/* all three: repetition first, then frequency and presence */
	p.repetition_penalty = 2.0f;
	p.presence_penalty = 0.125f;
	p.frequency_penalty = 0.25f;
	s = mk(&p, 4, prompt, 1);
	pin(s, 3, 3.0f, 1.5f);
	accept_n(s, 3, 2);
	pin(s, 3, 3.0f, 1.5f - 0.25f * 2 - 0.125f);
	pin(s, 3, -3.0f, -6.0f - 0.25f * 2 - 0.125f);
	sampler_free(s);
}

/* Penalties reach sampling too: a token penalised to -inf-ish never comes. */
static void test_penalty_sampled(void **state)
{
	struct sampler_params p = base_params();
	float x[3] = { 0.0f, 0.0f, 0.0f };
	uint32_t counts[3];
	struct sampler *s;

	(void)state;
	p.frequency_penalty = 2.0f;
	s = mk(&p, 3, NULL, 0);
	accept_n(s, 0, 20);		/* logit 0 - 40 */
	draw_counts(s, x, 3, counts, 20000);
	assert_int_equal(counts[0], 0);
	assert_true(counts[1] > 9000 && counts[2] > 9000);
	sampler_free(s);
}

/* ---- seeds and logprobs ---- */

static void test_seed(void **state)
{
	struct sampler_params p = base_params();
	struct sampler *a, *b, *c;
	uint32_t i, ta, same = 0;
	float x[1000];

	(void)state;
	for (i = 0; i < 1000; i++)
		x[i] = (float)(i % 17) * 0.1f;
	p.top_k = 500;
	p.top_p = 0.95f;
	a = mk(&p, 1000, NULL, 0);
	b = mk(&p, 1000, NULL, 0);
	p.seed = 1235;
	c = mk(&p, 1000, NULL, 0);
	for (i = 0; i < 100; i++) {
		ta = sampler_sample(a, x, NULL);
		assert_int_equal(sampler_sample(b, x, NULL), ta);
		same += sampler_sample(c, x, NULL) == ta;
	}
	assert_true(same < 20);
	sampler_free(a);
	sampler_free(b);
	sampler_free(c);
}

/*
 * sampler_next_draw(): what a drawer elsewhere gets: greedy takes no draw
 * and ignores top-k, top-p and min-p; a top-k of the whole vocabulary
 * reads as 0 (all); without a penalty no list; with one, every distinct
 * token of the prompt and the output with its output count and prompt bit,
 * and sampler_pen_room() one more than their number; the draws are the
 * seeded generator's, the same for the same seed, in [0, 1).
 */
static void test_next_draw(void **state)
{
	const uint32_t prompt[] = { 5, 9, 5, 4000 };
	struct sampler_params p = base_params();
	struct sampler_draw a, b;
	struct sampler *s, *t;
	uint32_t i, j, differ = 0, seen = 0;
	float prev = -1.0f;
	const char *emit;
	size_t len;

	(void)state;
	p.temperature = 0.0f;
	p.top_k = 7;
	p.min_p = 0.2f;
	s = mk(&p, 5000, NULL, 0);
	sampler_next_draw(s, &a);
	assert_true(a.temperature == 0.0f && a.top_p == 1.0f && a.u == 0.0f);
	assert_true(a.top_k == 0 && a.min_p == 0.0f);
	assert_true(a.rep == 1.0f && a.pres == 0.0f && a.freq == 0.0f);
	assert_null(a.pen);
	assert_int_equal(sampler_pen_room(s), 0);
	sampler_free(s);

	p = base_params();
	p.min_p = 0.05f;
	p.top_k = 2000;
	s = mk(&p, 5000, NULL, 0);
	sampler_next_draw(s, &a);
	assert_true(a.min_p == 0.05f && a.top_k == 2000 && !a.pen);
	sampler_free(s);
	p.top_k = 5000;
	s = mk(&p, 5000, NULL, 0);
	sampler_next_draw(s, &a);
	assert_int_equal(a.top_k, 0);
	sampler_free(s);

	/* Penalties: 5 (twice), 9 and 4000 in the prompt; 9, 7, 7 out. */
	p = base_params();
	p.temperature = 0.0f;
	p.repetition_penalty = 1.1f;
	p.presence_penalty = 0.5f;
	p.frequency_penalty = -0.25f;
	s = mk(&p, 5000, prompt, 4);
	assert_int_equal(sampler_pen_room(s), 4);
	sampler_accept(s, 9, "", 0, &emit, &len);
	sampler_accept(s, 7, "", 0, &emit, &len);
	sampler_accept(s, 7, "", 0, &emit, &len);
	sampler_next_draw(s, &a);
	assert_true(a.temperature == 0.0f);
	assert_true(a.rep == 1.1f && a.pres == 0.5f && a.freq == -0.25f);
	assert_non_null(a.pen);
	assert_int_equal(a.n_pen, 4);
	assert_int_equal(sampler_pen_room(s), 5);
	for (i = 0; i < a.n_pen; i++) {
		for (j = 0; j < i; j++)
			assert_int_not_equal(a.pen[i].id, a.pen[j].id);
		switch (a.pen[i].id) {
		case 5:
		case 4000:
			assert_int_equal(a.pen[i].n, SAMPLER_PEN_PROMPT);
			break;
		case 9:
			assert_int_equal(a.pen[i].n, SAMPLER_PEN_PROMPT | 1);
			break;
		case 7:
			assert_int_equal(a.pen[i].n, 2);
			break;
		default:
			fail_msg("token %u listed", a.pen[i].id);
		}
		seen |= 1u << (a.pen[i].id % 8);
	}
	assert_int_equal(seen, 1u << 5 | 1u << 1 | 1u << 0 | 1u << 7);
	sampler_free(s);
	/* A penalty with nothing seen yet still gives a list, empty. */
	s = mk(&p, 5000, NULL, 0);
	sampler_next_draw(s, &a);
	assert_non_null(a.pen);
	assert_int_equal(a.n_pen, 0);
	assert_int_equal(sampler_pen_room(s), 1);
	sampler_free(s);

	p = base_params();
	p.temperature = 0.7f;
	p.top_k = 40;
	p.top_p = 0.9f;
	s = mk(&p, 5000, NULL, 0);
	t = mk(&p, 5000, NULL, 0);
	for (i = 0; i < 1000; i++) {
		sampler_next_draw(s, &a);
		sampler_next_draw(t, &b);
		assert_true(a.temperature == 0.7f && a.top_k == 40 && a.top_p == 0.9f);
		assert_true(a.min_p == 0.0f && !a.pen);
		assert_true(a.u >= 0.0f && a.u < 1.0f);
		assert_true(a.u == b.u);
		differ += a.u != prev;
		prev = a.u;
	}
	assert_true(differ > 990);
	sampler_free(s);
	sampler_free(t);
}

static double ref_logprob(const float *x, uint32_t n, uint32_t tok)
{
	return (double)x[tok] - testenv_lse(x, n);
}

static void test_logprob(void **state)
{
	struct sampler_params p = base_params();
	uint32_t prompt[3] = { 0, 5, 9 }, i, tok, n = 4096;
	struct sampler *s;
	float lp, *x, *copy;
	int mode;

	(void)state;
	x = malloc(n * sizeof(*x));
	copy = malloc(n * sizeof(*x));
	srand(3);
	for (i = 0; i < n; i++)
		x[i] = frand() * 20.0f - 10.0f;
	x[100] = -INFINITY;
	memcpy(copy, x, n * sizeof(*x));
	for (mode = 0; mode < 3; mode++) {
		p.temperature = mode == 0 ? 0 : mode == 1 ? 0.5f : 1.7f;
		p.repetition_penalty = 1.3f;
		p.presence_penalty = 1.0f;
		p.frequency_penalty = 0.5f;
		p.top_k = mode == 2 ? 50 : 0;
		s = mk(&p, n, prompt, 3);
		for (i = 0; i < 200; i++) {
			tok = sampler_sample(s, x, &lp);
			assert_true(fabs(lp - ref_logprob(copy, n, tok)) < 1e-5);
			assert_memory_equal(x, copy, n * sizeof(*x));
			accept_n(s, tok, 1);
		}
		sampler_free(s);
	}
	free(x);
	free(copy);
}

/* ---- stopping ---- */

struct out {
	char	text[4096];
	size_t	len;
};

static int feed(struct sampler *s, struct out *o, uint32_t tok, const char *piece)
{
	const char *e;
	size_t el;
	int r;

	r = sampler_accept(s, tok, piece, piece ? strlen(piece) : 0, &e, &el);
	if (r >= 0) {
		assert_true(o->len + el < sizeof(o->text));
		memcpy(o->text + o->len, e, el);
		o->len += el;
		o->text[o->len] = 0;
	}
	return r;
}

static void test_eos_stop_ids(void **state)
{
	struct sampler_params p = base_params();
	uint32_t eos[2] = { 2, 7 }, stop_ids[1] = { 5 };
	const char *stops[1] = { "END" };
	struct out o = { .len = 0 };
	struct sampler *s;
	const char *e;
	size_t el;

	(void)state;
	p.eos_ids = eos;
	p.nr_eos_ids = 2;
	p.stop_ids = stop_ids;
	p.nr_stop_ids = 1;
	s = mk(&p, 10, NULL, 0);
	assert_int_equal(feed(s, &o, 1, "hello"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 7, "</s>"), SAMPLER_STOP);
	assert_string_equal(o.text, "hello");
	/* finished: nothing more */
	assert_int_equal(feed(s, &o, 1, "x"), SAMPLER_STOP);
	assert_string_equal(o.text, "hello");
	sampler_free(s);

	o.len = 0;
	s = mk(&p, 10, NULL, 0);
	assert_int_equal(feed(s, &o, 5, "<stop>"), SAMPLER_STOP);
	assert_int_equal(o.len, 0);
	sampler_free(s);

	/* ignore_eos: eos is text like any other; stop ids still stop */
	p.ignore_eos = true;
	o.len = 0;
	s = mk(&p, 10, NULL, 0);
	assert_int_equal(feed(s, &o, 2, "</s>"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 7, "<eot>"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 5, "<stop>"), SAMPLER_STOP);
	assert_string_equal(o.text, "</s><eot>");
	sampler_free(s);

	/* text held back for a stop string comes out at eos */
	p.ignore_eos = false;
	p.stop = stops;
	p.nr_stop = 1;
	o.len = 0;
	s = mk(&p, 10, NULL, 0);
	assert_int_equal(feed(s, &o, 1, "aEN"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "a");
	assert_int_equal(feed(s, &o, 2, "</s>"), SAMPLER_STOP);
	assert_string_equal(o.text, "aEN");
	assert_int_equal(sampler_flush(s, &e, &el), 0);
	assert_int_equal(el, 0);
	/* bad tokens are refused and not recorded */
	sampler_free(s);
	s = mk(&p, 10, NULL, 0);
	assert_int_equal(sampler_accept(s, 10, "x", 1, &e, &el), -EINVAL);
	assert_int_equal(sampler_accept(s, 1, NULL, 1, &e, &el), -EINVAL);
	assert_int_equal(sampler_accept(s, 1, NULL, 0, &e, &el), SAMPLER_CONTINUE);
	assert_int_equal(el, 0);
	sampler_free(s);
}

static struct sampler *mk_stop(const char *const *stops, uint32_t nr, uint32_t max_tokens)
{
	struct sampler_params p = base_params();

	p.stop = stops;
	p.nr_stop = nr;
	p.max_tokens = max_tokens;
	return mk(&p, 100, NULL, 0);
}

static void test_stop_strings(void **state)
{
	const char *end[1] = { "END" };
	const char *several[3] = { "STOP", "\n\n", "END" };
	const char *ab_bcd[2] = { "ab", "bcd" };
	const char *overlap[1] = { "ABABC" };
	const char *de_nde[2] = { "DE", "NDE" };
	struct out o = { .len = 0 };
	struct sampler *s;

	(void)state;
	/* "EN" + "D": nothing of END, the text before it exactly once */
	s = mk_stop(end, 1, 100);
	assert_int_equal(feed(s, &o, 1, "Hello "), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "Hello ");
	assert_int_equal(feed(s, &o, 1, "wEN"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "Hello w");
	assert_int_equal(feed(s, &o, 1, "D and more"), SAMPLER_STOP);
	assert_string_equal(o.text, "Hello w");
	sampler_free(s);

	/* a false start comes out in full */
	o.len = 0;
	s = mk_stop(end, 1, 100);
	assert_int_equal(feed(s, &o, 1, "EN"), SAMPLER_CONTINUE);
	assert_int_equal(o.len, 0);
	assert_int_equal(feed(s, &o, 1, "X"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "ENX");
	assert_int_equal(feed(s, &o, 1, "E"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "E"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "ENXE");
	assert_int_equal(feed(s, &o, 1, "N"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "D"), SAMPLER_STOP);
	assert_string_equal(o.text, "ENXE");
	sampler_free(s);

	/* at the very start, whole or a byte at a time */
	o.len = 0;
	s = mk_stop(end, 1, 100);
	assert_int_equal(feed(s, &o, 1, "END"), SAMPLER_STOP);
	assert_int_equal(o.len, 0);
	sampler_free(s);
	s = mk_stop(end, 1, 100);
	assert_int_equal(feed(s, &o, 1, "E"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "N"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "DEND"), SAMPLER_STOP);
	assert_int_equal(o.len, 0);
	sampler_free(s);

	/* in the middle of one piece */
	s = mk_stop(end, 1, 100);
	assert_int_equal(feed(s, &o, 1, "fooEND bar"), SAMPLER_STOP);
	assert_string_equal(o.text, "foo");
	sampler_free(s);

	/* several strings; the first to complete wins */
	o.len = 0;
	s = mk_stop(several, 3, 100);
	assert_int_equal(feed(s, &o, 1, "a\n"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "a");
	assert_int_equal(feed(s, &o, 1, "x\nST"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "a\nx\n");
	assert_int_equal(feed(s, &o, 1, "O"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "\n\nP"), SAMPLER_STOP);
	assert_string_equal(o.text, "a\nx\nSTO");
	sampler_free(s);

	/* the longest possible start is held: "b" for bcd, then "bc" */
	o.len = 0;
	s = mk_stop(ab_bcd, 2, 100);
	assert_int_equal(feed(s, &o, 1, "zb"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "z");
	assert_int_equal(feed(s, &o, 1, "c"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "z");
	assert_int_equal(feed(s, &o, 1, "a"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "zbc");
	assert_int_equal(feed(s, &o, 1, "b"), SAMPLER_STOP);
	assert_string_equal(o.text, "zbc");
	sampler_free(s);

	/* two complete at the same byte: the longer one cuts */
	o.len = 0;
	s = mk_stop(de_nde, 2, 100);
	assert_int_equal(feed(s, &o, 1, "xN"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "DE"), SAMPLER_STOP);
	assert_string_equal(o.text, "x");
	sampler_free(s);

	/* self-overlapping string across pieces */
	o.len = 0;
	s = mk_stop(overlap, 1, 100);
	assert_int_equal(feed(s, &o, 1, "xABAB"), SAMPLER_CONTINUE);
	assert_string_equal(o.text, "x");
	assert_int_equal(feed(s, &o, 1, "ABC!"), SAMPLER_STOP);
	assert_string_equal(o.text, "xAB");
	sampler_free(s);
}

static void test_max_tokens(void **state)
{
	const char *end[1] = { "END" };
	struct out o = { .len = 0 };
	struct sampler *s;
	const char *e;
	size_t el;

	(void)state;
	s = mk_stop(NULL, 0, 3);
	assert_int_equal(feed(s, &o, 1, "a"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "b"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "c"), SAMPLER_LENGTH);
	assert_string_equal(o.text, "abc");
	assert_int_equal(feed(s, &o, 1, "d"), SAMPLER_LENGTH);
	assert_string_equal(o.text, "abc");
	sampler_free(s);

	/* held text is flushed with SAMPLER_LENGTH */
	o.len = 0;
	s = mk_stop(end, 1, 2);
	assert_int_equal(feed(s, &o, 1, "x"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "yEN"), SAMPLER_LENGTH);
	assert_string_equal(o.text, "xyEN");
	assert_int_equal(sampler_flush(s, &e, &el), 0);
	assert_int_equal(el, 0);
	sampler_free(s);

	/* a stop string on the last token is a stop */
	o.len = 0;
	s = mk_stop(end, 1, 2);
	assert_int_equal(feed(s, &o, 1, "EN"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 1, "D"), SAMPLER_STOP);
	assert_int_equal(o.len, 0);
	sampler_free(s);

	/* flush gives the held text once */
	s = mk_stop(end, 1, 100);
	assert_int_equal(sampler_accept(s, 1, "abEN", 4, &e, &el), SAMPLER_CONTINUE);
	assert_int_equal(el, 2);
	assert_memory_equal(e, "ab", 2);
	assert_int_equal(sampler_flush(s, &e, &el), 0);
	assert_int_equal(el, 2);
	assert_memory_equal(e, "EN", 2);
	assert_int_equal(sampler_flush(s, &e, &el), 0);
	assert_int_equal(el, 0);
	sampler_free(s);
}

/* The longest end of @text that begins one of @stops. */
static size_t held_ref(const char *text, size_t tlen, const char *const *stops, uint32_t nr)
{
	size_t l, sl, best = 0;
	uint32_t k;

	for (k = 0; k < nr; k++) {
		sl = strlen(stops[k]);
		for (l = 1; l < sl && l <= tlen; l++)
			if (l > best && !memcmp(text + tlen - l, stops[k], l))
				best = l;
	}
	return best;
}

/*
 * Random pieces over a small alphabet against a reference: the output is
 * the text before the first place a stop string completes, emitted exactly
 * once, and the request stops at the token that completes it.  Also grows
 * the buffer with long pieces.
 */
static void test_stop_fuzz(void **state)
{
	const char *stops[4] = { "ENDE", "NN", "DEN", "DE" };
	static char text[70000], piece[3000];
	struct out *o = malloc(sizeof(*o));
	uint32_t round, t, i, k, nr;
	size_t tlen, cut, pl, end, e;
	struct sampler *s;
	int r, want;

	(void)state;
	srand(5);
	for (round = 0; round < 3000; round++) {
		nr = 1 + round % 4;
		s = mk_stop(stops, nr, 40);
		o->len = 0;
		tlen = 0;
		cut = SIZE_MAX;
		for (t = 0; t < 40; t++) {
			pl = (size_t)(rand() % 5);
			if (round % 100 == 0 && t == 3)
				pl = 2500;
			for (i = 0; i < pl; i++)
				piece[i] = "ENDxE"[rand() % 5];
			piece[pl] = 0;
			memcpy(text + tlen, piece, pl);
			/* reference: first end of any stop string in the new bytes */
			for (e = tlen + 1; e <= tlen + pl && cut == SIZE_MAX; e++) {
				for (k = 0; k < nr; k++) {
					size_t sl = strlen(stops[k]);

					if (sl <= e && !memcmp(text + e - sl, stops[k], sl) &&
					    e - sl < cut)
						cut = e - sl;
				}
			}
			tlen += pl;
			want = cut != SIZE_MAX ? SAMPLER_STOP :
			       t == 39 ? SAMPLER_LENGTH : SAMPLER_CONTINUE;
			r = feed(s, o, 1, piece);
			assert_int_equal(r, want);
			if (r == SAMPLER_CONTINUE) {
				/* holds back exactly what could still be cut */
				assert_int_equal(o->len, tlen - held_ref(text, tlen, stops, nr));
				assert_memory_equal(o->text, text, o->len);
				continue;
			}
			end = r == SAMPLER_STOP ? cut : tlen;
			assert_int_equal(o->len, end);
			assert_memory_equal(o->text, text, end);
			break;
		}
		sampler_free(s);
	}
	free(o);
}

/* The sampler keeps copies: the caller's arrays may go away. */
static void test_copies(void **state)
{
	struct sampler_params p = base_params();
	uint32_t *eos = malloc(sizeof(*eos)), *prompt = malloc(sizeof(*prompt));
	char **stops = malloc(sizeof(*stops));
	struct out o = { .len = 0 };
	struct sampler *s;

	(void)state;
	eos[0] = 3;
	prompt[0] = 1;
	stops[0] = strdup("xy");
	p.eos_ids = eos;
	p.nr_eos_ids = 1;
	p.stop = (const char *const *)stops;
	p.nr_stop = 1;
	p.repetition_penalty = 2.0f;
	p.temperature = 0;
	s = mk(&p, 4, prompt, 1);
	free(stops[0]);
	free(stops);
	free(eos);
	free(prompt);
	pin(s, 1, 1.0f, 0.5f);
	assert_int_equal(feed(s, &o, 2, "ax"), SAMPLER_CONTINUE);
	assert_int_equal(feed(s, &o, 2, "y"), SAMPLER_STOP);
	assert_string_equal(o.text, "a");
	sampler_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_create_bad),
		cmocka_unit_test(test_greedy),
		cmocka_unit_test(test_temperature),
		cmocka_unit_test(test_top_k),
		cmocka_unit_test(test_top_k_large),
		cmocka_unit_test(test_top_p),
		cmocka_unit_test(test_top_k_then_top_p),
		cmocka_unit_test(test_top_p_large),
		cmocka_unit_test(test_min_p),
		cmocka_unit_test(test_repetition_penalty),
		cmocka_unit_test(test_presence_frequency),
		cmocka_unit_test(test_penalty_sampled),
		cmocka_unit_test(test_seed),
		cmocka_unit_test(test_next_draw),
		cmocka_unit_test(test_logprob),
		cmocka_unit_test(test_eos_stop_ids),
		cmocka_unit_test(test_stop_strings),
		cmocka_unit_test(test_max_tokens),
		cmocka_unit_test(test_stop_fuzz),
		cmocka_unit_test(test_copies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
