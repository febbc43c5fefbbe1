// SPDX-License-Identifier: GPL-2.0
/*
 * The numbers llmq-bench reports, from the timestamps of each request, with
 * the definitions of vllm bench serve so that the two can be compared:
 *
 *   TTFT	first token CQE reaped - request submitted
 *   E2EL	final CQE reaped - request submitted
 *   TPOT	(E2EL - TTFT) / (output tokens - 1), requests with > 1 token
 *   ITL	every gap between consecutive token CQEs of a request, pooled
 *		over all requests
 *
 * Only completed requests contribute to them.  Percentiles interpolate
 * linearly between the two nearest ranks (numpy's default, which vLLM
 * uses): over n sorted values x[0..n-1], the p-th percentile sits at rank
 * r = p / 100 * (n - 1) and is x[floor(r)] + (r - floor(r)) *
 * (x[floor(r) + 1] - x[floor(r)]).  The standard deviation is the
 * population one (numpy's ddof=0).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/**
 * bench_percentile() - the p-th percentile of sorted samples
 * @sorted:	samples in ascending order
 * @n:		how many
 * @p:		the percentile, 0..100
 *
 * Linear interpolation between the closest ranks, as numpy.percentile().
 *
 * Return: the value, or NaN when @n is 0.
 */
double bench_percentile(const double *sorted, size_t n, double p)
{
	double rank, frac;
	size_t lo;

	if (!n)
		return NAN;
	rank = p / 100.0 * (double)(n - 1);
	lo = (size_t)floor(rank);
	if (lo >= n - 1)
		return sorted[n - 1];
	frac = rank - (double)lo;
	return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

/**
 * bench_dist_compute() - mean, median, deviation and percentiles of samples
 * @v:		the samples; sorted in place
 * @n:		how many
 * @pcts:	the percentiles wanted, 0..100
 * @nr_pcts:	how many, at most BENCH_MAX_PCTS
 * @d:		filled; every value NaN when @n is 0
 */
void bench_dist_compute(double *v, size_t n, const double *pcts, unsigned int nr_pcts,
			struct bench_dist *d)
{
	double sum = 0, sq = 0;
	unsigned int i;
	size_t k;

	memset(d, 0, sizeof(*d));
	d->n = n;
	if (!n) {
		d->mean = d->median = d->std = d->p99 = NAN;
		for (i = 0; i < BENCH_MAX_PCTS; i++)
			d->pct[i] = NAN;
		return;
	}
	qsort(v, n, sizeof(*v), cmp_double);
	for (k = 0; k < n; k++)
		sum += v[k];
	d->mean = sum / (double)n;
	/* Two passes: the one-pass formula cancels badly on close samples. */
	for (k = 0; k < n; k++)
		sq += (v[k] - d->mean) * (v[k] - d->mean);
	d->std = sqrt(sq / (double)n);
	d->median = bench_percentile(v, n, 50);
	d->p99 = bench_percentile(v, n, 99);
	for (i = 0; i < nr_pcts && i < BENCH_MAX_PCTS; i++)
		d->pct[i] = bench_percentile(v, n, pcts[i]);
}

/**
 * bench_ttft_ms() - a request's time to first token
 * @r:		the request
 *
 * Return: milliseconds, or NaN when no token came.
 */
double bench_ttft_ms(const struct bench_req *r)
{
	if (!r->t_first)
		return NAN;
	return (double)(r->t_first - r->t_send) / 1e6;
}

/**
 * bench_tpot_ms() - a request's time per output token after the first
 * @r:		the request
 *
 * (latency - TTFT) / (output tokens - 1): the decode rate one client saw,
 * with the prefill and the queueing before it left out.
 *
 * Return: milliseconds, or NaN for a request with fewer than 2 tokens.
 */
double bench_tpot_ms(const struct bench_req *r)
{
	if (r->output_tokens < 2 || !r->t_first)
		return NAN;
	return (double)(r->t_end - r->t_first) / 1e6 / (double)(r->output_tokens - 1);
}

static void count_err(struct bench_result *res, int err)
{
	struct bench_errcount t;
	unsigned int i;

	for (i = 0; i < res->nr_errs; i++) {
		if (res->errs[i].err == err) {
			res->errs[i].count++;
			goto sort;
		}
	}
	if (res->nr_errs == BENCH_MAX_ERRS)
		return;		/* still in res->failed; only the breakdown is short */
	i = res->nr_errs++;
	res->errs[i] = (struct bench_errcount){ .err = err, .count = 1 };
sort:
	/* The most frequent first: the reason that matters heads the list. */
	while (i > 0 && res->errs[i].count > res->errs[i - 1].count) {
		t = res->errs[i];
		res->errs[i] = res->errs[i - 1];
		res->errs[i - 1] = t;
		i--;
	}
}

/*
 * Whether a completed request met every SLO given.  A request with fewer
 * than 2 tokens has no TPOT and meets any TPOT SLO (as in vLLM); one with no
 * token at all has no TTFT, and its latency stands in for it.
 */
static bool meets_slos(const struct bench_req *r, const struct bench_stat_cfg *cfg)
{
	double e2el = (double)(r->t_end - r->t_send) / 1e6;
	double ttft = bench_ttft_ms(r), tpot = bench_tpot_ms(r);

	if (isnan(ttft))
		ttft = e2el;
	if (cfg->slo_ttft_ms > 0 && ttft > cfg->slo_ttft_ms)
		return false;
	if (cfg->slo_tpot_ms > 0 && !isnan(tpot) && tpot > cfg->slo_tpot_ms)
		return false;
	if (cfg->slo_e2el_ms > 0 && e2el > cfg->slo_e2el_ms)
		return false;
	return true;
}

/**
 * bench_compute() - every reported number of a run
 * @reqs:	the run's requests
 * @n:		how many
 * @t0:		CLOCK_MONOTONIC ns when the run started
 * @cfg:	percentiles and SLOs
 * @res:	filled
 *
 * The duration runs from @t0 to the last final CQE (or give-up) of any
 * request sent; the throughputs divide completed requests and their tokens
 * by it.  Total token throughput counts prompt and output tokens.
 *
 * Return: 0, or -ENOMEM.
 */
int bench_compute(const struct bench_req *reqs, size_t n, uint64_t t0,
		  const struct bench_stat_cfg *cfg, struct bench_result *res)
{
	double *ttft = NULL, *tpot = NULL, *e2el = NULL, *itl = NULL, v;
	size_t i, nr_itl = 0, a = 0, b = 0, c = 0, d = 0;
	uint64_t end = t0;
	uint32_t k;
	int err = -ENOMEM;

	memset(res, 0, sizeof(*res));
	for (i = 0; i < n; i++)
		if (reqs[i].status == BENCH_REQ_OK)
			nr_itl += reqs[i].nr_itl;
	/* One extra element each, so that n == 0 allocates something. */
	ttft = malloc((n + 1) * sizeof(*ttft));
	tpot = malloc((n + 1) * sizeof(*tpot));
	e2el = malloc((n + 1) * sizeof(*e2el));
	itl = malloc((nr_itl + 1) * sizeof(*itl));
	if (!ttft || !tpot || !e2el || !itl)
		goto out;

	for (i = 0; i < n; i++) {
		const struct bench_req *r = &reqs[i];

		if (r->status != BENCH_REQ_UNSENT && r->t_end > end)
			end = r->t_end;
		switch (r->status) {
		case BENCH_REQ_UNSENT:
			res->unsent++;
			continue;
		case BENCH_REQ_FAILED:
			res->failed++;
			count_err(res, r->err);
			continue;
		case BENCH_REQ_CANCELLED:
			res->cancelled++;
			continue;
		}
		res->completed++;
		res->total_input += r->prompt_tokens;
		res->total_output += r->output_tokens;
		v = bench_ttft_ms(r);
		if (!isnan(v))
			ttft[a++] = v;
		v = bench_tpot_ms(r);
		if (!isnan(v))
			tpot[b++] = v;
		e2el[c++] = (double)(r->t_end - r->t_send) / 1e6;
		for (k = 0; k < r->nr_itl; k++)
			itl[d++] = (double)r->itl[k] / 1e6;
		if (meets_slos(r, cfg))
			res->good++;
	}
	res->duration_s = (double)(end - t0) / 1e9;
	if (res->completed)
		res->mean_input = (double)res->total_input / (double)res->completed;
	if (res->duration_s > 0) {
		res->req_throughput = (double)res->completed / res->duration_s;
		res->out_throughput = (double)res->total_output / res->duration_s;
		res->total_throughput = (double)(res->total_input + res->total_output) /
					res->duration_s;
		res->goodput = (double)res->good / res->duration_s;
	}
	res->has_goodput = cfg->slo_ttft_ms > 0 || cfg->slo_tpot_ms > 0 || cfg->slo_e2el_ms > 0;
	bench_dist_compute(ttft, a, cfg->pcts, cfg->nr_pcts, &res->ttft);
	bench_dist_compute(tpot, b, cfg->pcts, cfg->nr_pcts, &res->tpot);
	bench_dist_compute(itl, d, cfg->pcts, cfg->nr_pcts, &res->itl);
	bench_dist_compute(e2el, c, cfg->pcts, cfg->nr_pcts, &res->e2el);
	err = 0;
out:
	free(ttft);
	free(tpot);
	free(e2el);
	free(itl);
	return err;
}
