// SPDX-License-Identifier: GPL-2.0
/*
 * What llmq-bench prints: the result table of one run (laid out as vllm
 * bench serve lays out its own, so the two read side by side), the sweep
 * table, and the JSON document of --json, whose keys are vLLM's where vLLM
 * has one (mean_ttft_ms, p99_itl_ms, request_throughput, ...).
 */
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "libllmq.h"

#define COL	40

/**
 * bench_err_name() - the symbolic name of a failure reason
 * @err:	positive errno, or BENCH_ETIMEOUT
 * @buf:	room for a name glibc does not know
 * @len:	its size
 *
 * Return: "ECONNRESET", "timeout", or "errno N" in @buf.
 */
const char *bench_err_name(int err, char *buf, size_t len)
{
	const char *name;

	if (err == BENCH_ETIMEOUT)
		return "timeout";
	name = strerrorname_np(err);
	if (name)
		return name;
	snprintf(buf, len, "errno %d", err);
	return buf;
}

/**
 * bench_report_pct_label() - how a percentile is named: "99", "99.9"
 * @p:		the percentile
 * @buf:	filled
 * @len:	its size
 */
void bench_report_pct_label(double p, char *buf, size_t len)
{
	snprintf(buf, len, "%g", p);
}

static void row(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void row(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%-*s ", COL, label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void row_ms(const char *label, double v)
{
	if (isnan(v))
		row(label, "n/a");
	else
		row(label, "%.2f", v);
}

static void section(const char *title)
{
	int width = 50, len = (int)strlen(title), left = (width - len) / 2;

	printf("%.*s%s%.*s\n", left, "--------------------------------------------------",
	       title, width - len - left, "--------------------------------------------------");
}

static void dist_rows(const struct bench_opts *o, const char *name, const struct bench_dist *d)
{
	char label[64], p[32];
	unsigned int i;

	snprintf(label, sizeof(label), "Mean %s (ms):", name);
	row_ms(label, d->mean);
	snprintf(label, sizeof(label), "Median %s (ms):", name);
	row_ms(label, d->median);
	for (i = 0; i < o->nr_pcts; i++) {
		bench_report_pct_label(o->pcts[i], p, sizeof(p));
		snprintf(label, sizeof(label), "P%s %s (ms):", p, name);
		row_ms(label, d->pct[i]);
	}
}

static void traffic_text(const struct bench_traffic *t, char *buf, size_t len)
{
	if (isfinite(t->rate))
		snprintf(buf, len, "open loop, %.2f req/s, burstiness %.2f, %lu clients%s",
			 t->rate, t->burstiness, t->clients,
			 t->cap ? " (max concurrency)" : "");
	else if (t->cap)
		snprintf(buf, len, "closed loop, max concurrency %lu", t->cap);
	else
		snprintf(buf, len, "all at once, %lu clients", t->clients);
}

/**
 * bench_report_text() - print one run's result table to stdout
 * @o:		the options (percentiles, asked lengths)
 * @t:		how the requests were sent
 * @r:		the numbers
 * @interrupted: SIGINT cut the run short
 */
void bench_report_text(const struct bench_opts *o, const struct bench_traffic *t,
		       const struct bench_result *r, bool interrupted)
{
	char buf[128], name[32], label[96];
	unsigned int i;

	printf("============ Serving Benchmark Result ============\n");
	row("Socket:", "%s", llmq_socket_path(o->socket));
	traffic_text(t, buf, sizeof(buf));
	row("Traffic:", "%s", buf);
	if (interrupted)
		row("Interrupted:", "yes (SIGINT)");
	row("Successful requests:", "%lu", r->completed);
	row("Failed requests:", "%lu", r->failed);
	for (i = 0; i < r->nr_errs; i++) {
		int e = r->errs[i].err;

		snprintf(label, sizeof(label), "  %s (%s):", bench_err_name(e, name, sizeof(name)),
			 e == BENCH_ETIMEOUT ? "past --timeout-s" : strerror(e));
		row(label, "%lu", r->errs[i].count);
	}
	if (r->cancelled || interrupted)
		row("Cancelled requests:", "%lu", r->cancelled);
	if (r->unsent)
		row("Requests not sent:", "%lu", r->unsent);
	row("Benchmark duration (s):", "%.2f", r->duration_s);
	row("Total input tokens:", "%llu", (unsigned long long)r->total_input);
	if (!r->completed)
		row("Mean input tokens:", "n/a");
	else if (!o->file_dataset)
		row("Mean input tokens (asked):", "%.1f (%lu)", r->mean_input,
		    o->input_len + o->prefix_len);
	else
		row("Mean input tokens:", "%.1f", r->mean_input);
	row("Total generated tokens:", "%llu", (unsigned long long)r->total_output);
	row("Request throughput (req/s):", "%.2f", r->req_throughput);
	if (r->has_goodput)
		row("Request goodput (req/s):", "%.2f", r->goodput);
	row("Output token throughput (tok/s):", "%.2f", r->out_throughput);
	row("Total token throughput (tok/s):", "%.2f", r->total_throughput);
	section("Time to First Token");
	dist_rows(o, "TTFT", &r->ttft);
	section("Time per Output Token (excl. 1st token)");
	dist_rows(o, "TPOT", &r->tpot);
	section("Inter-token Latency");
	dist_rows(o, "ITL", &r->itl);
	section("End-to-end Latency");
	dist_rows(o, "E2EL", &r->e2el);
	printf("==================================================\n");
	fflush(stdout);
}

static void cell_ms(double v)
{
	if (isnan(v))
		printf(" %9s", "n/a");
	else
		printf(" %9.2f", v);
}

/**
 * bench_report_sweep() - print one row per concurrency of a sweep
 * @conc:	the concurrency of each row
 * @rs:		the results, one per row
 * @n:		rows measured
 *
 * "in tok" is the mean prompt length achieved, from the final CQEs.  The
 * ratio is output tokens/s over that of the concurrency-1 row, or of the
 * first row when the sweep has no 1.
 */
void bench_report_sweep(const unsigned long *conc, const struct bench_result *rs,
			unsigned int n)
{
	unsigned int i, base = bench_sweep_base(conc, n);

	printf("============ Concurrency Sweep ============\n");
	printf("%5s %5s %5s %7s %8s %9s %9s %9s %9s %9s %7s\n", "conc", "ok", "fail", "in tok",
	       "req/s", "out tok/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "ratio");
	for (i = 0; i < n; i++) {
		const struct bench_result *r = &rs[i];

		printf("%5lu %5lu %5lu %7.1f %8.2f %9.2f", conc[i], r->completed,
		       r->failed + r->cancelled + r->unsent, r->mean_input, r->req_throughput,
		       r->out_throughput);
		/* p50 and p99, whatever --percentiles says. */
		cell_ms(r->ttft.median);
		cell_ms(r->ttft.p99);
		cell_ms(r->itl.median);
		cell_ms(r->itl.p99);
		if (n && rs[base].out_throughput > 0)
			printf(" %6.2fx\n", r->out_throughput / rs[base].out_throughput);
		else
			printf(" %7s\n", "n/a");
	}
	printf("(latencies in ms; in tok: mean prompt tokens; ratio: output tok/s over the\n"
	       " concurrency-%lu row)\n", n ? conc[base] : 1UL);
	fflush(stdout);
}

static struct json_object *num(double v)
{
	return isfinite(v) ? json_object_new_double(v) : NULL;
}

static void add_dist(struct json_object *o, const struct bench_opts *opts, const char *name,
		     const struct bench_dist *d)
{
	char key[64], p[32];
	unsigned int i;

	snprintf(key, sizeof(key), "mean_%s_ms", name);
	json_object_object_add(o, key, num(d->mean));
	snprintf(key, sizeof(key), "median_%s_ms", name);
	json_object_object_add(o, key, num(d->median));
	snprintf(key, sizeof(key), "std_%s_ms", name);
	json_object_object_add(o, key, num(d->std));
	for (i = 0; i < opts->nr_pcts; i++) {
		bench_report_pct_label(opts->pcts[i], p, sizeof(p));
		snprintf(key, sizeof(key), "p%s_%s_ms", p, name);
		json_object_object_add(o, key, num(d->pct[i]));
	}
	snprintf(key, sizeof(key), "n_%s", name);
	json_object_object_add(o, key, json_object_new_int64((int64_t)d->n));
}

static const char *req_error(const struct bench_req *r, char *buf, size_t len)
{
	switch (r->status) {
	case BENCH_REQ_OK:
		return "";
	case BENCH_REQ_CANCELLED:
		return "cancelled";
	case BENCH_REQ_UNSENT:
		return "not sent";
	default:
		return bench_err_name(r->err, buf, len);
	}
}

static void add_requests(struct json_object *o, const struct bench_req *reqs, size_t n)
{
	struct json_object *in = json_object_new_array(), *out = json_object_new_array();
	struct json_object *ttft = json_object_new_array(), *e2el = json_object_new_array();
	struct json_object *itls = json_object_new_array(), *errs = json_object_new_array();
	struct json_object *one;
	char buf[32];
	uint32_t k;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct bench_req *r = &reqs[i];
		bool ok = r->status == BENCH_REQ_OK;

		json_object_array_add(in, json_object_new_int64(ok ? r->prompt_tokens : 0));
		json_object_array_add(out, json_object_new_int64(ok ? r->output_tokens : 0));
		json_object_array_add(ttft, ok ? num(bench_ttft_ms(r)) : NULL);
		json_object_array_add(e2el, ok ? num((double)(r->t_end - r->t_send) / 1e6) : NULL);
		one = json_object_new_array();
		for (k = 0; ok && k < r->nr_itl; k++)
			json_object_array_add(one, json_object_new_double((double)r->itl[k] / 1e6));
		json_object_array_add(itls, one);
		json_object_array_add(errs, json_object_new_string(req_error(r, buf, sizeof(buf))));
	}
	json_object_object_add(o, "input_lens", in);
	json_object_object_add(o, "output_lens", out);
	json_object_object_add(o, "ttfts_ms", ttft);
	json_object_object_add(o, "e2els_ms", e2el);
	json_object_object_add(o, "itls_ms", itls);
	json_object_object_add(o, "errors", errs);
}

/**
 * bench_report_json() - one run as a JSON object
 * @o:		the options
 * @t:		how the requests were sent
 * @reqs:	the requests, for the per-request arrays
 * @n:		how many
 * @r:		the numbers
 * @interrupted: SIGINT cut the run short
 *
 * Values that do not exist (a percentile of no sample) are null.
 *
 * Return: a new object (json_object_put() it), or NULL without memory.
 */
struct json_object *bench_report_json(const struct bench_opts *o, const struct bench_traffic *t,
				      const struct bench_req *reqs, size_t n,
				      const struct bench_result *r, bool interrupted)
{
	struct json_object *j = json_object_new_object(), *errs;
	char name[32];
	unsigned int i;

	if (!j)
		return NULL;
	json_object_object_add(j, "backend", json_object_new_string("llmq"));
	json_object_object_add(j, "socket", json_object_new_string(llmq_socket_path(o->socket)));
	json_object_object_add(j, "num_prompts", json_object_new_int64((int64_t)n));
	json_object_object_add(j, "request_rate", isfinite(t->rate) ?
			       json_object_new_double(t->rate) : json_object_new_string("inf"));
	json_object_object_add(j, "burstiness", json_object_new_double(t->burstiness));
	json_object_object_add(j, "max_concurrency",
			       t->cap ? json_object_new_int64((int64_t)t->cap) : NULL);
	json_object_object_add(j, "clients", json_object_new_int64((int64_t)t->clients));
	json_object_object_add(j, "interrupted", json_object_new_boolean(interrupted));
	json_object_object_add(j, "completed", json_object_new_int64((int64_t)r->completed));
	json_object_object_add(j, "failed", json_object_new_int64((int64_t)r->failed));
	json_object_object_add(j, "cancelled", json_object_new_int64((int64_t)r->cancelled));
	json_object_object_add(j, "not_sent", json_object_new_int64((int64_t)r->unsent));
	errs = json_object_new_object();
	for (i = 0; i < r->nr_errs; i++)
		json_object_object_add(errs, bench_err_name(r->errs[i].err, name, sizeof(name)),
				       json_object_new_int64((int64_t)r->errs[i].count));
	json_object_object_add(j, "failures", errs);
	json_object_object_add(j, "duration", json_object_new_double(r->duration_s));
	json_object_object_add(j, "total_input_tokens",
			       json_object_new_int64((int64_t)r->total_input));
	json_object_object_add(j, "total_output_tokens",
			       json_object_new_int64((int64_t)r->total_output));
	json_object_object_add(j, "mean_input_tokens", json_object_new_double(r->mean_input));
	json_object_object_add(j, "request_throughput", json_object_new_double(r->req_throughput));
	json_object_object_add(j, "request_goodput",
			       r->has_goodput ? json_object_new_double(r->goodput) : NULL);
	json_object_object_add(j, "output_throughput", json_object_new_double(r->out_throughput));
	json_object_object_add(j, "total_token_throughput",
			       json_object_new_double(r->total_throughput));
	add_dist(j, o, "ttft", &r->ttft);
	add_dist(j, o, "tpot", &r->tpot);
	add_dist(j, o, "itl", &r->itl);
	add_dist(j, o, "e2el", &r->e2el);
	add_requests(j, reqs, n);
	return j;
}
