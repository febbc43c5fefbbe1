/* SPDX-License-Identifier: GPL-2.0 */
/*
 * llmq-bench: the serving load generator.  What the pieces share: the
 * options, the workload (prompts and arrival times), one request's
 * measurements, and the statistics computed from them.
 *
 *   main.c      flags, their validation, one run or a sweep, exit status
 *   workload.c  random and file datasets, calibration prompts, arrivals
 *   client.c    client threads, each with its own ring; SIGINT; progress
 *   stats.c     percentiles, TPOT, ITL, throughput and goodput
 *   report.c    the text table, the sweep table and the JSON document
 *   plot.c      --plot: the sweep drawn by gnuplot into a PNG
 */
#ifndef LLMQ_BENCH_H
#define LLMQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

#define BENCH_MAX_PCTS		16
#define BENCH_MAX_SWEEP		32
#define BENCH_MAX_CONC		4096
#define BENCH_MAX_ERRS		32	/* distinct failure reasons reported */
#define BENCH_ETIMEOUT		(-1)	/* bench_req.err: --timeout-s ran out */
#define BENCH_MAX_OUTPUT_LEN	16777216	/* llmqd's --max-tokens-limit ceiling */

/* What the command line asked for; main.c fills and validates it. */
struct bench_opts {
	const char	*socket;	/* NULL: libllmq's default, $LLMQ_SOCKET */
	bool		file_dataset;	/* --dataset file */
	const char	*dataset_path;
	unsigned long	num_prompts;	/* 0: not given */
	unsigned long	input_len;
	unsigned long	output_len;
	unsigned long	prefix_len;
	double		range_ratio;
	bool		ignore_eos;
	uint64_t	seed;
	unsigned long	max_concurrency;	/* 0: not given */
	double		request_rate;	/* INFINITY: all at once */
	double		burstiness;
	double		pcts[BENCH_MAX_PCTS];
	unsigned int	nr_pcts;
	double		slo_ttft_ms;	/* 0: no such SLO */
	double		slo_tpot_ms;
	double		slo_e2el_ms;
	unsigned long	sweep[BENCH_MAX_SWEEP];
	unsigned int	nr_sweep;
	unsigned long	timeout_s;
	const char	*json_path;
	const char	*plot_path;	/* --plot, with --sweep */
	const char	*plot_title;	/* --plot-title, NULL: the default */
	bool		progress;	/* stderr is a terminal, no --no-progress */
};

/* One prompt of the workload, shared by every run of a sweep. */
struct bench_prompt {
	char		*text;
	uint32_t	len;		/* bytes */
	uint32_t	max_tokens;	/* the output length asked for */
};

enum bench_status {
	BENCH_REQ_UNSENT = 0,	/* never submitted: the run stopped first */
	BENCH_REQ_OK,		/* final CQE with res >= 0 */
	BENCH_REQ_FAILED,	/* res < 0, a ring error or a timeout: see err */
	BENCH_REQ_CANCELLED,	/* cancelled by us because of SIGINT */
};

/**
 * struct bench_req - one request of a run: what was sent, what was measured
 * @prompt:	the workload entry it sends
 * @arrival_ns:	open loop: when it is due, from the run's start
 * @status:	how it ended (enum bench_status)
 * @err:	BENCH_REQ_FAILED: positive errno, or BENCH_ETIMEOUT
 * @prompt_tokens: from the final CQE's @token field
 * @output_tokens: from the final CQE's @res
 * @t_send:	CLOCK_MONOTONIC ns just before llmq_submit()
 * @t_first:	when the first token CQE was reaped, 0 if none was
 * @t_last:	when the latest token CQE was reaped
 * @t_end:	when the final CQE was reaped (or the request was given up)
 * @itl:	gaps between consecutive token CQEs, ns
 * @nr_itl:	entries in @itl
 * @cap_itl:	room in @itl
 */
struct bench_req {
	const struct bench_prompt *prompt;
	uint64_t	arrival_ns;
	int		status;
	int		err;
	uint32_t	prompt_tokens;
	uint32_t	output_tokens;
	uint64_t	t_send;
	uint64_t	t_first;
	uint64_t	t_last;
	uint64_t	t_end;
	uint64_t	*itl;
	uint32_t	nr_itl;
	uint32_t	cap_itl;
};

/* Summary of one metric over its samples, in milliseconds; NaN when n is 0. */
struct bench_dist {
	size_t		n;
	double		mean;
	double		median;
	double		std;
	double		p99;		/* always, for the sweep table */
	double		pct[BENCH_MAX_PCTS];
};

struct bench_errcount {
	int		err;		/* positive errno, or BENCH_ETIMEOUT */
	unsigned long	count;
};

/* What the statistics need to know besides the requests. */
struct bench_stat_cfg {
	const double	*pcts;
	unsigned int	nr_pcts;
	double		slo_ttft_ms;	/* 0: none */
	double		slo_tpot_ms;
	double		slo_e2el_ms;
};

struct bench_result {
	unsigned long	completed;
	unsigned long	failed;
	unsigned long	cancelled;
	unsigned long	unsent;
	struct bench_errcount errs[BENCH_MAX_ERRS];
	unsigned int	nr_errs;
	double		duration_s;
	uint64_t	total_input;
	uint64_t	total_output;
	double		mean_input;
	double		req_throughput;
	double		out_throughput;
	double		total_throughput;
	bool		has_goodput;
	unsigned long	good;
	double		goodput;
	struct bench_dist ttft;
	struct bench_dist tpot;
	struct bench_dist itl;
	struct bench_dist e2el;
};

/* How one run sends its requests. */
struct bench_traffic {
	unsigned long	clients;	/* threads, each with its own ring */
	unsigned long	per_client;	/* requests one client keeps in flight */
	unsigned long	cap;		/* requests in flight in all, 0: no cap */
	double		rate;		/* for the report only */
	double		burstiness;
};

/* Why a run stopped early (bench_run()'s return). */
enum bench_stop {
	BENCH_STOP_NONE = 0,
	BENCH_STOP_INTERRUPT,	/* SIGINT */
	BENCH_STOP_GONE,	/* a ring failed: the runtime went away */
};

/* workload.c */
struct bench_calib {
	double		overhead;	/* tokens a prompt costs beyond its words */
	double		per_word;	/* tokens per word, on average */
	uint32_t	probe_tokens[3];
};

struct bench_rng {
	uint64_t	s[4];
};

void bench_rng_seed(struct bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(struct bench_rng *r);
double bench_rng_uniform(struct bench_rng *r);
double bench_rng_gamma(struct bench_rng *r, double shape, double scale);
char *bench_calib_prompt(int which);
int bench_calib_solve(struct bench_calib *c);
int bench_workload_random(const struct bench_opts *o, const struct bench_calib *c, size_t n,
			  struct bench_prompt **out);
int bench_workload_file(const struct bench_opts *o, size_t *n, struct bench_prompt **out,
			char *why, size_t why_len);
void bench_workload_free(struct bench_prompt *p, size_t n);
void bench_arrivals(struct bench_req *reqs, size_t n, double rate, double burstiness,
		    uint64_t seed);

/* client.c */
void bench_signals_init(void);
bool bench_interrupted(void);
int bench_probe(const struct bench_opts *o, const char *prompt, uint32_t *prompt_tokens);
int bench_run(const struct bench_opts *o, const struct bench_traffic *t, struct bench_req *reqs,
	      size_t n, uint64_t *t0, int *gone_err);

/* stats.c */
double bench_percentile(const double *sorted, size_t n, double p);
void bench_dist_compute(double *v, size_t n, const double *pcts, unsigned int nr_pcts,
			struct bench_dist *d);
double bench_tpot_ms(const struct bench_req *r);
double bench_ttft_ms(const struct bench_req *r);
int bench_compute(const struct bench_req *reqs, size_t n, uint64_t t0,
		  const struct bench_stat_cfg *cfg, struct bench_result *res);

/* report.c */
const char *bench_err_name(int err, char *buf, size_t len);
void bench_report_text(const struct bench_opts *o, const struct bench_traffic *t,
		       const struct bench_result *r, bool interrupted);
void bench_report_sweep(const unsigned long *conc, const struct bench_result *rs,
			unsigned int n);
struct json_object *bench_report_json(const struct bench_opts *o, const struct bench_traffic *t,
				      const struct bench_req *reqs, size_t n,
				      const struct bench_result *r, bool interrupted);
void bench_report_pct_label(double p, char *buf, size_t len);

/* plot.c */
unsigned int bench_sweep_base(const unsigned long *conc, unsigned int n);
void bench_plot_quote(FILE *f, const char *s);
int bench_plot_script(FILE *f, const char *title, const char *subtitle,
		      const unsigned long *conc, const struct bench_result *rs, unsigned int n);
int bench_plot_draw(int out_fd, const char *title, const char *subtitle,
		    const unsigned long *conc, const struct bench_result *rs, unsigned int n,
		    char *why, size_t why_len);

#endif /* LLMQ_BENCH_H */
