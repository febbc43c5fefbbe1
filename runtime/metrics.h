/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Serving metrics: latency histograms with bounded relative error, and the
 * dump llmqd writes on SIGUSR1, in Prometheus' text format with vLLM's
 * metric names (prefix "llmq:" for "vllm:") so dashboards carry over.
 */
#ifndef LLMQD_METRICS_H
#define LLMQD_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include <linux/llmq.h>

/*
 * Buckets grow by 2^(1/8) (9% apart) from 1 us; 256 of them reach past
 * 4000 s.  A quantile is reported as its bucket's upper bound.
 */
#define HIST_SUB	8
#define HIST_BUCKETS	256

/**
 * struct hist - a latency histogram
 * @count:	samples
 * @sum_ns:	their sum
 * @b:		samples per bucket; bucket i holds values up to
 *		1 us * 2^((i + 1) / HIST_SUB)
 */
struct hist {
	uint64_t	count;
	uint64_t	sum_ns;
	uint64_t	b[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t ns);
uint64_t hist_quantile(const struct hist *h, double q);
void hist_print(FILE *f, const char *name, const char *help, const struct hist *h);

/**
 * struct serve_metrics - what llmqd measures about requests
 * @ttft:	arrival to first token
 * @itl:	between consecutive tokens of a request
 * @e2e:	arrival to the final CQE
 * @queue:	arrival to first scheduled
 * @prefill:	first scheduled to first token
 */
struct serve_metrics {
	struct hist	ttft;
	struct hist	itl;
	struct hist	e2e;
	struct hist	queue;
	struct hist	prefill;
};

void metrics_print(FILE *f, const struct llmq_stats *st, const struct serve_metrics *m);

#endif /* LLMQD_METRICS_H */
