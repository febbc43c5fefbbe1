// SPDX-License-Identifier: GPL-2.0
/*
 * llmq-bench: load generator for llmqd, reporting what vllm bench serve
 * reports (TTFT, TPOT, ITL, end-to-end latency, throughput, goodput), over
 * the ring instead of HTTP.  Documentation/admin-guide/llmq-bench.rst
 * describes every flag and metric.
 *
 * Exit status: 0 when every request completed; 1 when one failed or was
 * not sent, or the runtime could not be reached; 2 for a bad command line
 * or dataset; 130 after SIGINT (the report is printed in every case but 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "libllmq.h"

#define DEF_NUM_PROMPTS		100
#define DEF_INPUT_LEN		128
#define DEF_OUTPUT_LEN		64
#define DEF_TIMEOUT_S		600
#define MAX_NUM_PROMPTS		1000000
#define MAX_LEN			1000000
#define OPEN_CLIENTS		16	/* clients of a run without --max-concurrency */
#define OPEN_PER_CLIENT		256	/* llmqd's default --max-client-requests */
#define SWEEP_MIN_PROMPTS	8
#define MAX_PLOT_TITLE		200
#define DEF_PLOT_TITLE		"llmq-bench: output throughput and p99 latency against concurrency"

enum {
	OPT_NUM_PROMPTS = 256,
	OPT_DATASET,
	OPT_DATASET_PATH,
	OPT_INPUT_LEN,
	OPT_OUTPUT_LEN,
	OPT_RANGE_RATIO,
	OPT_PREFIX_LEN,
	OPT_IGNORE_EOS,
	OPT_SEED,
	OPT_MAX_CONC,
	OPT_RATE,
	OPT_BURSTINESS,
	OPT_SOCKET,
	OPT_PERCENTILES,
	OPT_GOODPUT,
	OPT_SWEEP,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_PLOT,
	OPT_PLOT_TITLE,
	OPT_NO_PROGRESS,
};

static const struct option lopts[] = {
	{ "num-prompts",	required_argument, NULL, OPT_NUM_PROMPTS },
	{ "dataset",		required_argument, NULL, OPT_DATASET },
	{ "dataset-path",	required_argument, NULL, OPT_DATASET_PATH },
	{ "random-input-len",	required_argument, NULL, OPT_INPUT_LEN },
	{ "random-output-len",	required_argument, NULL, OPT_OUTPUT_LEN },
	{ "random-range-ratio",	required_argument, NULL, OPT_RANGE_RATIO },
	{ "random-prefix-len",	required_argument, NULL, OPT_PREFIX_LEN },
	{ "ignore-eos",		no_argument,	   NULL, OPT_IGNORE_EOS },
	{ "seed",		required_argument, NULL, OPT_SEED },
	{ "max-concurrency",	required_argument, NULL, OPT_MAX_CONC },
	{ "request-rate",	required_argument, NULL, OPT_RATE },
	{ "burstiness",		required_argument, NULL, OPT_BURSTINESS },
	{ "socket",		required_argument, NULL, OPT_SOCKET },
	{ "percentiles",	required_argument, NULL, OPT_PERCENTILES },
	{ "goodput",		required_argument, NULL, OPT_GOODPUT },
	{ "sweep",		required_argument, NULL, OPT_SWEEP },
	{ "timeout-s",		required_argument, NULL, OPT_TIMEOUT },
	{ "json",		required_argument, NULL, OPT_JSON },
	{ "plot",		required_argument, NULL, OPT_PLOT },
	{ "plot-title",		required_argument, NULL, OPT_PLOT_TITLE },
	{ "no-progress",	no_argument,	   NULL, OPT_NO_PROGRESS },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llmq-bench [OPTIONS]\n"
		"workload:\n"
		"  --num-prompts N            requests to send, 1..%d (default %d; a sweep:\n"
		"                             max(%d, 2 x concurrency) per point)\n"
		"  --dataset random|file      random words (default) or --dataset-path\n"
		"  --dataset-path FILE        JSON Lines: {\"prompt\": S, \"output_len\": N}\n"
		"  --random-input-len N       prompt tokens, 1..%d (default %d)\n"
		"  --random-output-len N      output tokens, 1..%d (default %d); also the\n"
		"                             output_len of file lines without one\n"
		"  --random-range-ratio R     lengths uniform in len x [1 - R, 1 + R], 0 <= R < 1\n"
		"                             (default 0)\n"
		"  --random-prefix-len N      tokens of a prefix shared by every prompt,\n"
		"                             0..%d (default 0)\n"
		"  --ignore-eos               generate exactly the output length asked for\n"
		"  --seed N                   prompts and arrivals, 0..2^64-1 (default 0)\n"
		"traffic:\n"
		"  --max-concurrency C        C clients, each one request at a time, 1..%d\n"
		"  --request-rate R           open loop: R requests/s on average, or inf\n"
		"                             (default inf: all at once)\n"
		"  --burstiness B             gamma shape of the gaps, 1 = Poisson (default 1)\n"
		"  --sweep C1,C2,...          closed loop at each concurrency, one row each\n"
		"  --socket PATH              runtime socket (default $LLMQ_SOCKET, else\n"
		"                             %s)\n"
		"  --timeout-s N              a request still running after N s fails,\n"
		"                             1..86400 (default %d)\n"
		"report:\n"
		"  --percentiles P1,P2,...    percentiles of TTFT, TPOT, ITL, E2EL, 0..100\n"
		"                             (default 99)\n"
		"  --goodput SLO...           ttft:MS tpot:MS e2el:MS, requests/s meeting all\n"
		"  --json FILE                the results as JSON, per-request data included\n"
		"  --plot FILE.png            with --sweep: throughput and p99 TTFT and ITL\n"
		"                             against concurrency, drawn by gnuplot\n"
		"  --plot-title TEXT          the plot's title (default: what it shows)\n"
		"  --no-progress              no progress line, even on a terminal\n"
		"  -h, --help                 this text\n",
		MAX_NUM_PROMPTS, DEF_NUM_PROMPTS, SWEEP_MIN_PROMPTS, MAX_LEN, DEF_INPUT_LEN,
		BENCH_MAX_OUTPUT_LEN, DEF_OUTPUT_LEN, MAX_LEN, BENCH_MAX_CONC,
		LLMQ_DEFAULT_SOCKET, DEF_TIMEOUT_S);
}

/* --json's and --plot's files until written: a run that ends early leaves none. */
static const char *json_unwritten;
static const char *plot_unwritten;

static void remove_unwritten(void)
{
	if (json_unwritten)
		unlink(json_unwritten);
	if (plot_unwritten)
		unlink(plot_unwritten);
}

static void __attribute__((noreturn)) bad(const char *flag, const char *val, const char *why)
{
	fprintf(stderr, "llmq-bench: --%s: '%s' %s\n", flag, val, why);
	exit(2);
}

static unsigned long parse_ul(const char *flag, const char *s, unsigned long lo,
			      unsigned long hi)
{
	unsigned long long v;
	char why[80];
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < lo || v > hi) {
		snprintf(why, sizeof(why), "is not an integer in %lu..%lu", lo, hi);
		bad(flag, s, why);
	}
	return (unsigned long)v;
}

/* A finite number in [lo, hi], or (lo, hi] with @lo_open, [lo, hi) with @hi_open. */
static double parse_num(const char *flag, const char *s, double lo, double hi, bool lo_open,
			bool hi_open, const char *why)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi ||
	    (lo_open && v == lo) || (hi_open && v == hi))
		bad(flag, s, why);
	return v;
}

static void parse_pcts(struct bench_opts *o, const char *s)
{
	char buf[256], *tok, *save;

	if (strlen(s) >= sizeof(buf))
		bad("percentiles", s, "is too long");
	snprintf(buf, sizeof(buf), "%s", s);
	if (!*s || s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		bad("percentiles", s, "is not a comma-separated list of numbers in 0..100");
	o->nr_pcts = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->nr_pcts == BENCH_MAX_PCTS)
			bad("percentiles", s, "has more than 16 entries");
		o->pcts[o->nr_pcts++] = parse_num("percentiles", tok, 0, 100, false, false,
						  "is not a number in 0..100");
	}
}

static void parse_sweep(struct bench_opts *o, const char *s)
{
	char buf[512], *tok, *save;
	unsigned int i;

	if (strlen(s) >= sizeof(buf))
		bad("sweep", s, "is too long");
	snprintf(buf, sizeof(buf), "%s", s);
	if (!*s || s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		bad("sweep", s, "is not a comma-separated list of concurrencies");
	o->nr_sweep = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->nr_sweep == BENCH_MAX_SWEEP)
			bad("sweep", s, "has more than 32 entries");
		o->sweep[o->nr_sweep] = parse_ul("sweep", tok, 1, BENCH_MAX_CONC);
		for (i = 0; i < o->nr_sweep; i++)
			if (o->sweep[i] == o->sweep[o->nr_sweep])
				bad("sweep", s, "names a concurrency twice");
		o->nr_sweep++;
	}
}

/* "ttft:500,tpot:50": the SLOs in milliseconds. */
static void parse_goodput(struct bench_opts *o, const char *s)
{
	char buf[256], *tok, *save, *colon, *end;
	double *slot, v;

	if (strlen(s) >= sizeof(buf))
		bad("goodput", s, "is too long");
	snprintf(buf, sizeof(buf), "%s", s);
	if (!*s || s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		bad("goodput", s, "is not a list of ttft:MS, tpot:MS, e2el:MS");
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		colon = strchr(tok, ':');
		if (!colon)
			bad("goodput", s, "is not a list of ttft:MS, tpot:MS, e2el:MS");
		*colon = '\0';
		if (!strcmp(tok, "ttft"))
			slot = &o->slo_ttft_ms;
		else if (!strcmp(tok, "tpot"))
			slot = &o->slo_tpot_ms;
		else if (!strcmp(tok, "e2el"))
			slot = &o->slo_e2el_ms;
		else
			bad("goodput", s, "names a metric other than ttft, tpot, e2el");
		v = strtod(colon + 1, &end);
		if (!colon[1] || *end || !isfinite(v) || v <= 0 || v > 1e9)
			bad("goodput", s, "has an SLO that is not a number of ms in (0, 1e9]");
		if (*slot)
			bad("goodput", s, "names a metric twice");
		*slot = v;
	}
}

/*
 * vLLM takes "--goodput ttft:500 tpot:50", several words after one flag;
 * getopt takes one.  Join the words that follow --goodput into its value.
 * Returns a new argv (free it and *joined) or NULL without memory.
 */
static char **join_goodput(int argc, char **argv, int *new_argc, char **joined)
{
	char **nv = calloc((size_t)argc + 1, sizeof(*nv)), *val, *j;
	size_t len;
	int i, k = 0, e;

	*joined = NULL;
	if (!nv)
		return NULL;
	for (i = 0; i < argc; i++) {
		nv[k++] = argv[i];
		if (!strcmp(argv[i], "--"))
			break;
		if (strcmp(argv[i], "--goodput") && strncmp(argv[i], "--goodput=", 10))
			continue;
		if (*joined || (!strcmp(argv[i], "--goodput") && i + 1 == argc))
			continue;	/* getopt says what is wrong */
		val = argv[i][9] == '=' ? argv[i] + 10 : argv[++i];
		len = strlen(val) + 16;
		for (e = i + 1; e < argc && argv[e][0] != '-' && strchr(argv[e], ':'); e++)
			len += strlen(argv[e]) + 1;
		j = malloc(len);
		if (!j) {
			free(nv);
			return NULL;
		}
		len = (size_t)sprintf(j, "--goodput=%s", val);
		for (i++; i < e; i++)
			len += (size_t)sprintf(j + len, ",%s", argv[i]);
		i--;
		nv[k - 1] = j;
		*joined = j;
	}
	for (i++; i < argc; i++)
		nv[k++] = argv[i];
	*new_argc = k;
	return nv;
}

static void parse_opts(struct bench_opts *o, int argc, char **argv)
{
	bool rr_set = false, in_set = false, prefix_set = false, burst_set = false;
	const char *rr_s = NULL, *in_s = NULL, *prefix_s = NULL, *burst_s = NULL;
	const char *sweep_s = NULL;
	bool no_progress = false;
	const char *p;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_NUM_PROMPTS:
			o->num_prompts = parse_ul("num-prompts", optarg, 1, MAX_NUM_PROMPTS);
			break;
		case OPT_DATASET:
			if (!strcmp(optarg, "random"))
				o->file_dataset = false;
			else if (!strcmp(optarg, "file"))
				o->file_dataset = true;
			else
				bad("dataset", optarg, "is not random or file");
			break;
		case OPT_DATASET_PATH:
			if (!*optarg)
				bad("dataset-path", optarg, "is empty");
			o->dataset_path = optarg;
			break;
		case OPT_INPUT_LEN:
			o->input_len = parse_ul("random-input-len", optarg, 1, MAX_LEN);
			in_set = true;
			in_s = optarg;
			break;
		case OPT_OUTPUT_LEN:
			o->output_len = parse_ul("random-output-len", optarg, 1,
						 BENCH_MAX_OUTPUT_LEN);
			break;
		case OPT_RANGE_RATIO:
			o->range_ratio = parse_num("random-range-ratio", optarg, 0, 1, false, true,
						   "is not a number in [0, 1)");
			rr_set = true;
			rr_s = optarg;
			break;
		case OPT_PREFIX_LEN:
			o->prefix_len = parse_ul("random-prefix-len", optarg, 0, MAX_LEN);
			prefix_set = true;
			prefix_s = optarg;
			break;
		case OPT_IGNORE_EOS:
			o->ignore_eos = true;
			break;
		case OPT_SEED:
			o->seed = parse_ul("seed", optarg, 0, ULONG_MAX);
			break;
		case OPT_MAX_CONC:
			o->max_concurrency = parse_ul("max-concurrency", optarg, 1, BENCH_MAX_CONC);
			break;
		case OPT_RATE:
			if (!strcmp(optarg, "inf"))
				o->request_rate = INFINITY;
			else
				o->request_rate = parse_num("request-rate", optarg, 0, 1e9, true,
							    false,
							    "is not inf or a number in (0, 1e9]");
			break;
		case OPT_BURSTINESS:
			o->burstiness = parse_num("burstiness", optarg, 0, 1000, true, false,
						  "is not a number in (0, 1000]");
			burst_set = true;
			burst_s = optarg;
			break;
		case OPT_SOCKET:
			if (!*optarg)
				bad("socket", optarg, "is empty");
			if (strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				bad("socket", optarg, "is longer than a unix socket path can be");
			o->socket = optarg;
			break;
		case OPT_PERCENTILES:
			parse_pcts(o, optarg);
			break;
		case OPT_GOODPUT:
			parse_goodput(o, optarg);
			break;
		case OPT_SWEEP:
			parse_sweep(o, optarg);
			sweep_s = optarg;
			break;
		case OPT_TIMEOUT:
			o->timeout_s = parse_ul("timeout-s", optarg, 1, 86400);
			break;
		case OPT_JSON:
			if (!*optarg)
				bad("json", optarg, "is empty");
			o->json_path = optarg;
			break;
		case OPT_PLOT:
			if (!*optarg)
				bad("plot", optarg, "is empty");
			o->plot_path = optarg;
			break;
		case OPT_PLOT_TITLE:
			if (strlen(optarg) > MAX_PLOT_TITLE)
				bad("plot-title", optarg, "is longer than 200 bytes");
			for (p = optarg; *p; p++) {
				if ((unsigned char)*p >= 0x20 && *p != 0x7f)
					continue;
				/* Not echoed: the message stays one line. */
				fprintf(stderr, "llmq-bench: --plot-title: has a control "
					"character (a newline, a tab...)\n");
				exit(2);
			}
			o->plot_title = optarg;
			break;
		case OPT_NO_PROGRESS:
			no_progress = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			fprintf(stderr, "llmq-bench: %s: needs a value\n", argv[optind - 1]);
			exit(2);
		default:
			fprintf(stderr, "llmq-bench: %s: unknown option (see --help)\n",
				argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llmq-bench: '%s': unexpected argument (see --help)\n",
			argv[optind]);
		exit(2);
	}

	/* Combinations. */
	if (o->file_dataset && !o->dataset_path)
		bad("dataset", "file", "needs --dataset-path FILE");
	if (!o->file_dataset && o->dataset_path)
		bad("dataset-path", o->dataset_path, "needs --dataset file");
	if (o->file_dataset && in_set)
		bad("random-input-len", in_s, "only applies to --dataset random");
	if (o->file_dataset && rr_set)
		bad("random-range-ratio", rr_s, "only applies to --dataset random");
	if (o->file_dataset && prefix_set)
		bad("random-prefix-len", prefix_s, "only applies to --dataset random");
	if (burst_set && !isfinite(o->request_rate))
		bad("burstiness", burst_s, "needs a finite --request-rate");
	if (o->nr_sweep && isfinite(o->request_rate))
		bad("sweep", sweep_s, "is a closed loop: it takes no --request-rate");
	if (o->nr_sweep && o->max_concurrency)
		bad("sweep", sweep_s, "sets the concurrency itself: it takes no --max-concurrency");
	if (o->plot_path && !o->nr_sweep)
		bad("plot", o->plot_path, "draws a sweep: it needs --sweep");
	if (o->plot_title && !o->plot_path)
		bad("plot-title", o->plot_title, "needs --plot");
	if (o->plot_path && o->json_path && !strcmp(o->plot_path, o->json_path))
		bad("plot", o->plot_path, "is also the --json file");
	o->progress = !no_progress && isatty(STDERR_FILENO);
}

/* How a single (not swept) run sends its @n requests. */
static void traffic_of(const struct bench_opts *o, size_t n, struct bench_traffic *t)
{
	memset(t, 0, sizeof(*t));
	t->rate = o->request_rate;
	t->burstiness = o->burstiness;
	t->cap = o->max_concurrency;
	if (t->cap) {
		/* One request per client: the clients are the cap. */
		t->clients = t->cap < n ? t->cap : n;
		t->per_client = 1;
	} else {
		t->clients = n < OPEN_CLIENTS ? n : OPEN_CLIENTS;
		t->per_client = (n + t->clients - 1) / t->clients;
		if (t->per_client > OPEN_PER_CLIENT)
			t->per_client = OPEN_PER_CLIENT;
	}
}

static const char *sock_name(const struct bench_opts *o)
{
	return llmq_socket_path(o->socket);
}

/*
 * Prompts for *@n requests (a file dataset: 0 is one per line, and *@n is
 * set); exits on a bad dataset or a runtime that does not answer.
 */
static struct bench_prompt *make_workload(const struct bench_opts *o, size_t *n,
					  struct bench_calib *calib)
{
	struct bench_prompt *p = NULL;
	char why[256], *probe;
	size_t got = *n;
	int err, i;

	if (o->file_dataset) {
		err = bench_workload_file(o, &got, &p, why, sizeof(why));
		if (err == -ENOMEM)
			goto nomem;
		if (err)
			bad("dataset-path", o->dataset_path, why);
		/* A liveness check before the clock starts. */
		err = bench_probe(o, "hello", &calib->probe_tokens[0]);
		if (err)
			goto probe_failed;
		*n = got;
		return p;
	}
	for (i = 0; i < 3; i++) {
		probe = bench_calib_prompt(i);
		if (!probe)
			goto nomem;
		err = bench_probe(o, probe, &calib->probe_tokens[i]);
		free(probe);
		if (err)
			goto probe_failed;
	}
	if (bench_calib_solve(calib)) {
		fprintf(stderr, "llmq-bench: calibration: prompt token counts %u, %u, %u make "
			"no sense\n", calib->probe_tokens[0], calib->probe_tokens[1],
			calib->probe_tokens[2]);
		exit(1);
	}
	if (o->progress)
		fprintf(stderr, "llmq-bench: %.2f tokens per word, %.0f more per prompt\n",
			calib->per_word, calib->overhead);
	err = bench_workload_random(o, calib, *n, &p);
	if (err)
		goto nomem;
	return p;
probe_failed:
	bench_workload_free(p, got);
	if (err == -EINTR)
		exit(130);
	fprintf(stderr, "llmq-bench: %s: llmqd did not answer a first request: %s\n",
		sock_name(o), err == -ETIME ? "nothing within --timeout-s" : strerror(-err));
	exit(1);
nomem:
	fprintf(stderr, "llmq-bench: out of memory making the workload\n");
	exit(1);
}

static struct bench_req *make_reqs(const struct bench_prompt *p, size_t n)
{
	struct bench_req *reqs = calloc(n, sizeof(*reqs));
	size_t i;

	if (!reqs) {
		fprintf(stderr, "llmq-bench: out of memory\n");
		exit(1);
	}
	for (i = 0; i < n; i++)
		reqs[i].prompt = &p[i];
	return reqs;
}

static void free_reqs(struct bench_req *reqs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(reqs[i].itl);
	free(reqs);
}

/* Run @reqs and compute; returns enum bench_stop. */
static int run_one(const struct bench_opts *o, const struct bench_traffic *t,
		   struct bench_req *reqs, size_t n, struct bench_result *res)
{
	struct bench_stat_cfg cfg = {
		.pcts = o->pcts, .nr_pcts = o->nr_pcts, .slo_ttft_ms = o->slo_ttft_ms,
		.slo_tpot_ms = o->slo_tpot_ms, .slo_e2el_ms = o->slo_e2el_ms,
	};
	char name[32];
	uint64_t t0 = 0;
	int stop, gone = 0;

	stop = bench_run(o, t, reqs, n, &t0, &gone);
	if (stop < 0) {
		fprintf(stderr, "llmq-bench: cannot start the client threads: %s\n",
			strerror(-stop));
		exit(1);
	}
	if (bench_compute(reqs, n, t0, &cfg, res)) {
		fprintf(stderr, "llmq-bench: out of memory computing the results\n");
		exit(1);
	}
	if (stop == BENCH_STOP_GONE)
		fprintf(stderr, "llmq-bench: %s: the run stopped: %s (%s)\n", sock_name(o),
			strerror(gone), bench_err_name(gone, name, sizeof(name)));
	return stop;
}

static void json_add_calib(struct json_object *j, const struct bench_opts *o,
			   const struct bench_calib *c)
{
	struct json_object *cj;

	if (o->file_dataset)
		return;
	cj = json_object_new_object();
	json_object_object_add(cj, "tokens_per_word", json_object_new_double(c->per_word));
	json_object_object_add(cj, "overhead_tokens", json_object_new_double(c->overhead));
	json_object_object_add(j, "calibration", cj);
}

static void json_write(const struct bench_opts *o, FILE *f, struct json_object *j)
{
	const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE);

	if (!s || fputs(s, f) < 0 || fputc('\n', f) < 0 || fclose(f)) {
		fprintf(stderr, "llmq-bench: --json: '%s' could not be written: %s\n",
			o->json_path, strerror(errno));
		exit(1);
	}
	json_unwritten = NULL;
}

static int status_of(int stop, const struct bench_result *r)
{
	if (stop == BENCH_STOP_INTERRUPT || bench_interrupted())
		return 130;
	return stop || r->failed || r->unsent || r->cancelled ? 1 : 0;
}

/* Requests of the sweep point at concurrency @c: enough for two rounds. */
static size_t sweep_prompts(const struct bench_opts *o, unsigned long c)
{
	if (o->num_prompts)
		return o->num_prompts;
	return 2 * c > SWEEP_MIN_PROMPTS ? 2 * c : SWEEP_MIN_PROMPTS;
}

/* The plot's title lines under the first: the workload, and when it ran. */
static void plot_subtitle(const struct bench_opts *o, char *buf, size_t len)
{
	char date[32] = "", per[64], prefix[48] = "", range[64] = "";
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm))
		strftime(date, sizeof(date), "; %Y-%m-%d %H:%M UTC", &tm);
	if (o->num_prompts)
		snprintf(per, sizeof(per), "%lu requests per point", o->num_prompts);
	else
		snprintf(per, sizeof(per), "max(%d, 2 x concurrency) requests per point",
			 SWEEP_MIN_PROMPTS);
	if (o->file_dataset) {
		snprintf(buf, len, "prompts from %s\n%s%s", o->dataset_path, per, date);
		return;
	}
	if (o->prefix_len)
		snprintf(prefix, sizeof(prefix), " + %lu shared", o->prefix_len);
	if (o->range_ratio > 0)
		snprintf(range, sizeof(range), ", lengths x %g..%g", 1 - o->range_ratio,
			 1 + o->range_ratio);
	snprintf(buf, len, "random prompts of %lu%s tokens, %s %lu output tokens%s, seed %llu\n"
		 "%s%s", o->input_len, prefix, o->ignore_eos ? "exactly" : "up to", o->output_len,
		 range, (unsigned long long)o->seed, per, date);
}

/* Draw the sweep's @done points into --plot's @fd; returns an exit status. */
static int plot(const struct bench_opts *o, int fd, const struct bench_result *rs,
		unsigned int done)
{
	char sub[512], why[256];
	int err;

	if (!done) {
		fprintf(stderr, "llmq-bench: --plot: '%s': no point was measured, nothing to "
			"draw\n", o->plot_path);
		close(fd);
		return 1;
	}
	plot_subtitle(o, sub, sizeof(sub));
	if (done < o->nr_sweep)
		snprintf(sub + strlen(sub), sizeof(sub) - strlen(sub),
			 "; stopped after %u of %u points", done, o->nr_sweep);
	err = bench_plot_draw(fd, o->plot_title ? o->plot_title : DEF_PLOT_TITLE, sub,
			      o->sweep, rs, done, why, sizeof(why));
	if (!err && close(fd)) {
		err = -errno;
		snprintf(why, sizeof(why), "%s", strerror(errno));
	} else if (err) {
		close(fd);
	}
	if (err) {
		fprintf(stderr, "llmq-bench: --plot: '%s': %s\n", o->plot_path, why);
		return 1;
	}
	plot_unwritten = NULL;
	printf("(plot: %s)\n", o->plot_path);
	fflush(stdout);
	return 0;
}

static int sweep(const struct bench_opts *o, FILE *jf, int pfd)
{
	struct bench_result rs[BENCH_MAX_SWEEP];
	struct json_object *doc = NULL, *arr = NULL, *j;
	struct bench_calib calib = { 0 };
	struct bench_prompt *p;
	struct bench_traffic t;
	struct bench_req *reqs;
	size_t n, nmax = 0;
	unsigned int i, done = 0;
	int stop = 0, status = 0, s;

	for (i = 0; i < o->nr_sweep; i++) {
		n = sweep_prompts(o, o->sweep[i]);
		if (n > nmax)
			nmax = n;
	}
	/* One workload; each point sends its first n prompts. */
	p = make_workload(o, &nmax, &calib);
	if (jf) {
		doc = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(doc, "backend", json_object_new_string("llmq"));
		json_add_calib(doc, o, &calib);
		json_object_object_add(doc, "sweep", arr);
	}
	for (i = 0; i < o->nr_sweep && !stop && !bench_interrupted(); i++) {
		n = sweep_prompts(o, o->sweep[i]);
		memset(&t, 0, sizeof(t));
		t.clients = o->sweep[i] < n ? o->sweep[i] : n;
		t.cap = o->sweep[i];
		t.per_client = 1;
		t.rate = INFINITY;
		t.burstiness = 1;
		reqs = make_reqs(p, n);
		stop = run_one(o, &t, reqs, n, &rs[i]);
		done++;
		s = status_of(stop, &rs[i]);
		if (s > status)
			status = s;
		if (doc) {
			j = bench_report_json(o, &t, reqs, n, &rs[i], stop == BENCH_STOP_INTERRUPT);
			json_object_array_add(arr, j);
		}
		free_reqs(reqs, n);
	}
	bench_report_sweep(o->sweep, rs, done);
	if (done < o->nr_sweep)
		printf("(stopped after %u of %u points)\n", done, o->nr_sweep);
	if (doc) {
		json_write(o, jf, doc);
		json_object_put(doc);
	}
	if (pfd >= 0) {
		s = plot(o, pfd, rs, done);
		if (s > status)
			status = s;
	}
	bench_workload_free(p, nmax);
	return status;
}

static int single(const struct bench_opts *o, FILE *jf)
{
	struct bench_calib calib = { 0 };
	struct bench_result res;
	struct bench_prompt *p;
	struct bench_traffic t;
	struct bench_req *reqs;
	struct json_object *j;
	size_t n = o->num_prompts;
	int stop;

	/* A file dataset: one request per line unless --num-prompts says. */
	if (!n && !o->file_dataset)
		n = DEF_NUM_PROMPTS;
	p = make_workload(o, &n, &calib);
	reqs = make_reqs(p, n);
	traffic_of(o, n, &t);
	bench_arrivals(reqs, n, o->request_rate, o->burstiness, o->seed);
	stop = run_one(o, &t, reqs, n, &res);
	bench_report_text(o, &t, &res, stop == BENCH_STOP_INTERRUPT);
	if (jf) {
		j = bench_report_json(o, &t, reqs, n, &res, stop == BENCH_STOP_INTERRUPT);
		if (!j) {
			fprintf(stderr, "llmq-bench: out of memory writing --json\n");
			exit(1);
		}
		json_add_calib(j, o, &calib);
		json_write(o, jf, j);
		json_object_put(j);
	}
	free_reqs(reqs, n);
	bench_workload_free(p, n);
	return status_of(stop, &res);
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.input_len = DEF_INPUT_LEN,
		.output_len = DEF_OUTPUT_LEN,
		.request_rate = INFINITY,
		.burstiness = 1.0,
		.pcts = { 99 },
		.nr_pcts = 1,
		.timeout_s = DEF_TIMEOUT_S,
	};
	char **nv, *joined;
	FILE *jf = NULL;
	int nc, status, pfd = -1;

	nv = join_goodput(argc, argv, &nc, &joined);
	if (!nv) {
		fprintf(stderr, "llmq-bench: out of memory\n");
		return 1;
	}
	parse_opts(&o, nc, nv);
	atexit(remove_unwritten);
	status = 2;
	if (o.json_path) {
		/* Now, so that a bad path costs no benchmark run. */
		jf = fopen(o.json_path, "w");
		if (!jf) {
			fprintf(stderr, "llmq-bench: --json: '%s' cannot be written: %s\n",
				o.json_path, strerror(errno));
			goto out;
		}
		json_unwritten = o.json_path;
	}
	if (o.plot_path) {
		/* gnuplot writes to this descriptor: the name is never in its script. */
		pfd = open(o.plot_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (pfd < 0) {
			fprintf(stderr, "llmq-bench: --plot: '%s' cannot be written: %s\n",
				o.plot_path, strerror(errno));
			goto out_json;
		}
		plot_unwritten = o.plot_path;
	}
	/* Doubles in --json with enough digits, without 17 of noise. */
	json_c_set_serialization_double_format("%.10g", JSON_C_OPTION_GLOBAL);
	bench_signals_init();
	status = o.nr_sweep ? sweep(&o, jf, pfd) : single(&o, jf);
	goto out;
out_json:
	if (jf)
		fclose(jf);
out:
	free(joined);
	free(nv);
	return status;
}
