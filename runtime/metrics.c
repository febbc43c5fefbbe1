// SPDX-License-Identifier: GPL-2.0
/*
 * Latency histograms: log-scale buckets, so that p50 and p99 stay within
 * 9% of the truth from microseconds to minutes at a fixed 2 KiB per
 * histogram and O(1) per sample.
 */
#include <math.h>

#include "metrics.h"

static unsigned int bucket_of(uint64_t ns)
{
	double x;
	int i;

	if (ns <= 1000)
		return 0;
	x = log2((double)ns / 1000.0) * HIST_SUB;
	i = (int)ceil(x) - 1;
	if (i < 0)
		i = 0;
	return i >= HIST_BUCKETS ? HIST_BUCKETS - 1 : (unsigned int)i;
}

static uint64_t bucket_upper(unsigned int i)
{
	return (uint64_t)(1000.0 * exp2((double)(i + 1) / HIST_SUB));
}

/**
 * hist_add() - count one sample
 * @h:		the histogram
 * @ns:		the value, in nanoseconds
 */
void hist_add(struct hist *h, uint64_t ns)
{
	h->b[bucket_of(ns)]++;
	h->count++;
	h->sum_ns += ns;
}

/**
 * hist_quantile() - an upper estimate of a quantile
 * @h:		the histogram
 * @q:		in [0, 1]
 *
 * Return: the upper bound of the bucket holding the q-th sample, in ns
 * (at most 9% above the true value), or 0 for an empty histogram.
 */
uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;
	unsigned int i;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return bucket_upper(i);
	}
	return bucket_upper(HIST_BUCKETS - 1);
}

/**
 * hist_print() - write @h as a Prometheus summary
 * @f:		where
 * @name:	metric name, e.g. "llmq:time_to_first_token_seconds"
 * @help:	its HELP text
 * @h:		the histogram
 */
void hist_print(FILE *f, const char *name, const char *help, const struct hist *h)
{
	static const double qs[] = { 0.5, 0.9, 0.99 };
	unsigned int i;

	fprintf(f, "# HELP %s %s\n# TYPE %s summary\n", name, help, name);
	for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
		fprintf(f, "%s{quantile=\"%g\"} %.6f\n", name, qs[i],
			hist_quantile(h, qs[i]) / 1e9);
	fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, h->sum_ns / 1e9, name,
		(unsigned long long)h->count);
}
