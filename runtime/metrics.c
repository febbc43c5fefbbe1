// SPDX-License-Identifier: GPL-2.0
/*
 * Latency histograms: log-scale buckets, so that p50 and p99 stay within
 * 9% of the truth from microseconds to minutes at a fixed 2 KiB per
 * histogram and O(1) per sample.
 */
#include <math.h>

#include "metrics.h"

_Static_assert(sizeof(struct hist) == sizeof(struct llmq_hist), "struct hist is struct llmq_hist");

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
 * hist_print() - write @h as a Prometheus histogram
 * @f:		where
 * @name:	metric name, e.g. "llmq:time_to_first_token_seconds"
 * @help:	its HELP text
 * @h:		the histogram
 *
 * A histogram, as vLLM exposes these, not a summary: the buckets of many
 * llmqd instances add up and histogram_quantile() works over them.  One
 * bucket per octave, 2 us to 2^31 us (36 minutes), at the end of every
 * HIST_SUB-th fine bucket; those ends are exact, so each cumulative count
 * is exactly the samples <= its le.  The last fine bucket also holds
 * everything longer: it has no le but +Inf.  The fine buckets keep their
 * resolution for llmqctl stats' own quantiles.
 */
void hist_print(FILE *f, const char *name, const char *help, const struct hist *h)
{
	uint64_t cum = 0;
	unsigned int i;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (i = 0; i < HIST_BUCKETS; i++) {
		cum += h->b[i];
		/* Fine bucket 8k - 1 ends at exactly 2^k us. */
		if ((i + 1) % HIST_SUB == 0 && i + 1 < HIST_BUCKETS)
			fprintf(f, "%s_bucket{le=\"%.12g\"} %llu\n", name,
				ldexp(1e-6, (int)((i + 1) / HIST_SUB)), (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	fprintf(f, "%s_sum %.9f\n%s_count %llu\n", name, h->sum_ns / 1e9, name,
		(unsigned long long)h->count);
}

static void gauge(FILE *f, const char *name, const char *type, const char *help, double v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

/**
 * metrics_print() - write every metric in Prometheus' text format
 * @f:		where
 * @st:		the counters and gauges, up to date
 * @m:		the histograms
 *
 * Names follow vLLM's ("vllm:" becomes "llmq:").  llmqd's SIGUSR1 dump and
 * llmqctl stats --prometheus both come through here.
 */
void metrics_print(FILE *f, const struct llmq_stats *st, const struct serve_metrics *m)
{
	gauge(f, "llmq:num_requests_running", "gauge", "Requests in the running batch.",
	      st->requests_running);
	gauge(f, "llmq:num_requests_waiting", "gauge", "Requests waiting to be scheduled.",
	      st->requests_waiting);
	gauge(f, "llmq:kv_cache_usage_perc", "gauge", "Fraction of KV blocks in use (0-1).",
	      st->kv_blocks_total ? (double)st->kv_blocks_used / st->kv_blocks_total : 0.0);
	gauge(f, "llmq:kv_cache_blocks_used", "gauge", "KV blocks in use.", st->kv_blocks_used);
	gauge(f, "llmq:kv_cache_blocks", "gauge", "KV blocks in the cache.",
	      st->kv_blocks_total);
	gauge(f, "llmq:num_preemptions_total", "counter", "Sequences preempted.",
	      st->preemptions);
	gauge(f, "llmq:prefix_cache_queries_total", "counter",
	      "Prompt tokens looked up in the prefix cache.", st->prefix_cache_queries);
	gauge(f, "llmq:prefix_cache_hits_total", "counter",
	      "Prompt tokens found in the prefix cache.", st->prefix_cache_hits);
	gauge(f, "llmq:prompt_tokens_total", "counter", "Prompt tokens computed.",
	      st->prompt_tokens);
	gauge(f, "llmq:generation_tokens_total", "counter", "Tokens generated.",
	      st->tokens_generated);
	gauge(f, "llmq:request_failure_total", "counter", "Requests that ended in an error.",
	      st->requests_failed);
	gauge(f, "llmq:graph_steps_total", "counter", "Engine steps replayed from a CUDA graph.",
	      st->graph_steps);
	gauge(f, "llmq:device_sampled_tokens_total", "counter",
	      "Tokens drawn by the engine on the GPU, not by llmqd's sampler.",
	      st->device_sampled_tokens);
	gauge(f, "llmq:steps_ahead_total", "counter",
	      "Engine steps queued while the step before still ran.", st->steps_ahead);
	hist_print(f, "llmq:time_to_first_token_seconds", "Arrival to first token.", &m->ttft);
	hist_print(f, "llmq:inter_token_latency_seconds", "Between tokens of a request.",
		   &m->itl);
	hist_print(f, "llmq:e2e_request_latency_seconds", "Arrival to final completion.",
		   &m->e2e);
	hist_print(f, "llmq:request_queue_time_seconds", "Arrival to first scheduled.",
		   &m->queue);
	hist_print(f, "llmq:request_prefill_time_seconds", "First scheduled to first token.",
		   &m->prefill);
}
