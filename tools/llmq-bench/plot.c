// SPDX-License-Identifier: GPL-2.0
/*
 * --plot: the sweep drawn by gnuplot into a PNG, output token throughput in
 * one panel and the p99 of TTFT and ITL in the other, against concurrency.
 *
 * gnuplot runs as a child (posix_spawnp(), no shell).  It reads the script,
 * data inline, on its standard input and writes the PNG on its standard
 * output, which is the file --plot named, opened by llmq-bench: the file's
 * name never appears in the script.  Text that does (the title, a dataset's
 * path) goes into single-quoted strings, in which gnuplot substitutes
 * nothing (no `command`, no @macro, no escapes), with quotes doubled.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define GNUPLOT		"gnuplot"
#define GNUPLOT_WAIT_MS	60000
#define LOGX_SPREAD	4.0	/* largest over smallest concurrency: log x axis */
#define LOGY_SPREAD	20.0	/* largest over smallest latency: log y axis */

extern char **environ;

/**
 * bench_sweep_base() - the row a sweep's ratios are taken against
 * @conc:	the concurrency of each row
 * @n:		rows
 *
 * Return: the index of the concurrency-1 row, or 0 when there is none.
 */
unsigned int bench_sweep_base(const unsigned long *conc, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (conc[i] == 1)
			return i;
	return 0;
}

/**
 * bench_plot_quote() - write @s as a gnuplot string expression that means @s
 * @f:		where
 * @s:		the text; a newline starts a line, other control characters
 *		become '?'
 *
 * Single-quoted strings, in which gnuplot substitutes nothing and a quote
 * is written twice, joined by "\n" at each newline: 'a' . "\n" . 'b'.
 */
void bench_plot_quote(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('\'', f);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '\'')
			fputs("''", f);
		else if (*p == '\n')
			fputs("' . \"\\n\" . '", f);
		else if (*p < 0x20 || *p == 0x7f)
			fputc('?', f);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

/* A value of the data block: "?" (gnuplot's missing value) when there is none. */
static void datum(FILE *f, double v, bool positive)
{
	if (!isfinite(v) || (positive && v <= 0))
		fputs(" ?", f);
	else
		fprintf(f, " %.6g", v);
}

/* Smallest and largest finite positive value of @v (stride in doubles). */
static bool span(const double *v, size_t stride, unsigned int n, double *lo, double *hi)
{
	bool any = false;
	unsigned int i;
	double x;

	for (i = 0; i < n; i++) {
		x = v[i * stride];
		if (!isfinite(x) || x <= 0)
			continue;
		if (!any || x < *lo)
			*lo = x;
		if (!any || x > *hi)
			*hi = x;
		any = true;
	}
	return any;
}

/**
 * bench_plot_script() - the gnuplot script that draws a sweep
 * @f:		where to write it
 * @title:	the first line of the title
 * @subtitle:	the lines under it (the workload), or NULL
 * @conc:	the concurrency of each point
 * @rs:		the results, one per point
 * @n:		points, at least 1
 *
 * The PNG goes to gnuplot's standard output: the script sets no output.
 *
 * Return: 0, or -EIO when @f could not be written.
 */
int bench_plot_script(FILE *f, const char *title, const char *subtitle,
		      const unsigned long *conc, const struct bench_result *rs, unsigned int n)
{
	double lat[2 * BENCH_MAX_SWEEP], clo = 0, chi = 0, llo = 0, lhi = 0, base_tput, tmax = 0;
	bool logx, logy, has_ttft, has_itl;
	unsigned int i, base;

	if (!n || n > BENCH_MAX_SWEEP)
		return -EINVAL;
	base = bench_sweep_base(conc, n);
	base_tput = rs[base].out_throughput;
	for (i = 0; i < n; i++) {
		lat[2 * i] = rs[i].ttft.p99;
		lat[2 * i + 1] = rs[i].itl.p99;
		if (!i || conc[i] < clo)
			clo = (double)conc[i];
		if (!i || conc[i] > chi)
			chi = (double)conc[i];
		if (rs[i].out_throughput > tmax)
			tmax = rs[i].out_throughput;
	}
	has_ttft = span(lat, 2, n, &llo, &lhi);
	has_itl = span(lat + 1, 2, n, &llo, &lhi);
	/* One axis for both. */
	span(lat, 1, 2 * n, &llo, &lhi);
	logx = chi / clo >= LOGX_SPREAD;
	logy = (has_ttft || has_itl) && lhi / llo >= LOGY_SPREAD;

	fputs("# llmq-bench --sweep --plot: throughput and p99 latency against concurrency\n"
	      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
	      "\tset terminal pngcairo size 1000,800 font 'sans,11' noenhanced\n"
	      "} else {\n"
	      "\tset terminal png size 1000,800 noenhanced\n"
	      "}\n", f);
	fputs("# conc, output tok/s, TTFT p99 ms, ITL p99 ms, ratio, ok, not ok\n"
	      "$sweep << EOD\n", f);
	for (i = 0; i < n; i++) {
		fprintf(f, "%lu", conc[i]);
		datum(f, rs[i].out_throughput, false);
		datum(f, rs[i].ttft.p99, logy);
		datum(f, rs[i].itl.p99, logy);
		datum(f, base_tput > 0 ? rs[i].out_throughput / base_tput : NAN, false);
		fprintf(f, " %lu %lu\n", rs[i].completed,
			rs[i].failed + rs[i].cancelled + rs[i].unsent);
	}
	fputs("EOD\n"
	      "set datafile missing '?'\n"
	      "title = ", f);
	bench_plot_quote(f, title);
	if (subtitle) {
		fputs(" . \"\\n\" . ", f);
		bench_plot_quote(f, subtitle);
	}
	fputs("\nset multiplot layout 2,1 title title font ',13'\n"
	      "set grid\n"
	      "set lmargin 12\n"
	      "set rmargin 4\n"
	      "set key top left reverse Left box opaque\n"
	      "set xlabel 'Concurrency (closed-loop clients, one request in flight each)'\n",
	      f);
	if (logx)
		fprintf(f, "set logscale x 2\nset xrange [%g:%g]\n", clo / 1.25, chi * 1.25);
	else
		fprintf(f, "set xrange [%g:%g]\n", clo - 0.5 - (chi - clo) * 0.05,
			chi + 0.5 + (chi - clo) * 0.05);
	fputs("set xtics (", f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%lu", i ? ", " : "", conc[i]);
	fputs(")\n", f);

	/* Throughput, each point labelled with its ratio to the base row. */
	fprintf(f, "set ylabel 'Output token throughput (tokens/s)'\n"
		"set yrange [0:%s]\n"
		"set offsets 0, 0, graph 0.15, 0\n", tmax > 0 ? "*" : "1");
	fputs("plot $sweep using 1:2 with linespoints lw 2 pt 7 ps 1.3 lc rgb '#1f77b4' ", f);
	if (base_tput > 0)
		fprintf(f, "title 'output tokens/s (label: ratio to concurrency %lu)', \\\n"
			"     $sweep using 1:2:(sprintf('%%.2fx', $5)) with labels offset 0,1.2 "
			"notitle\n", conc[base]);
	else
		fputs("title 'output tokens/s'\n", f);

	/* Latency. */
	fputs("set offsets 0, 0, graph 0.1, 0\n", f);
	if (logy) {
		fprintf(f, "set logscale y 10\nset yrange [%g:%g]\n"
			"set ylabel 'p99 latency (ms, log scale)'\n", llo / 1.5, lhi * 1.5);
	} else {
		fputs("set ylabel 'p99 latency (ms)'\n"
		      "set yrange [0:*]\n", f);
		if (!has_ttft && !has_itl)
			fputs("set yrange [0:1]\n"
			      "unset key\n"
			      "set label 'no latency samples' at graph 0.5, 0.5 center\n", f);
	}
	if (!has_ttft && !has_itl) {
		fputs("plot NaN notitle\n", f);
	} else {
		fputs("plot ", f);
		if (has_ttft)
			fputs("$sweep using 1:3 with linespoints lw 2 pt 5 ps 1.3 "
			      "lc rgb '#d62728' title 'TTFT p99'", f);
		if (has_ttft && has_itl)
			fputs(", \\\n     ", f);
		if (has_itl)
			fputs("$sweep using 1:4 with linespoints lw 2 pt 9 ps 1.5 "
			      "lc rgb '#2ca02c' title 'ITL p99'", f);
		fputc('\n', f);
	}
	fputs("unset multiplot\n", f);
	return ferror(f) ? -EIO : 0;
}

static void ms_sleep(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Wait for @pid, at most GNUPLOT_WAIT_MS; returns its wait status or -errno. */
static int reap(pid_t pid)
{
	int st, waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (waited >= GNUPLOT_WAIT_MS) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -ETIME;
		}
		ms_sleep(10);
		waited += 10;
	}
}

/**
 * bench_plot_draw() - run gnuplot to draw a sweep into a PNG
 * @out_fd:	the PNG file, open for writing, empty
 * @title:	first line of the title
 * @subtitle:	the lines under it, or NULL
 * @conc:	the concurrency of each point
 * @rs:		the results, one per point
 * @n:		points, at least 1
 * @why:	on failure, what went wrong, a sentence without "llmq-bench:"
 * @why_len:	its size
 *
 * gnuplot's own messages go to our standard error.
 *
 * Return: 0, or -errno (-ENOENT: gnuplot is not installed; -ETIME: it
 * did not finish within 60 s; -EIO: it failed, see @why).
 */
int bench_plot_draw(int out_fd, const char *title, const char *subtitle,
		    const unsigned long *conc, const struct bench_result *rs, unsigned int n,
		    char *why, size_t why_len)
{
	char *const argv[] = { GNUPLOT, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t def;
	int pfd[2], err, st;
	FILE *f;
	pid_t pid;

	why[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC)) {
		err = -errno;
		snprintf(why, why_len, "cannot make a pipe to gnuplot: %s", strerror(-err));
		return err;
	}
	err = -posix_spawn_file_actions_init(&fa);
	if (err)
		goto out_pipe;
	err = -posix_spawnattr_init(&attr);
	if (err)
		goto out_fa;
	/* dup2() clears close-on-exec on the copies. */
	err = -posix_spawn_file_actions_adddup2(&fa, pfd[0], STDIN_FILENO);
	if (!err)
		err = -posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	/* We ignore SIGPIPE and catch SIGINT; gnuplot starts with neither. */
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	if (!err)
		err = -posix_spawnattr_setsigdefault(&attr, &def);
	if (!err)
		err = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
	if (err)
		goto out_attr;
	err = -posix_spawnp(&pid, GNUPLOT, &fa, &attr, argv, environ);
	if (err) {
		snprintf(why, why_len, "cannot run %s: %s%s", GNUPLOT, strerror(-err),
			 err == -ENOENT ? " (install it: apt-get install gnuplot-nox)" : "");
		goto out_attr;
	}
	close(pfd[0]);
	pfd[0] = -1;
	f = fdopen(pfd[1], "w");
	if (!f) {
		err = -errno;
		close(pfd[1]);
	} else {
		err = bench_plot_script(f, title, subtitle, conc, rs, n);
		/* EPIPE: gnuplot stopped reading; its status says why. */
		if (fclose(f) && !err)
			err = -errno;
	}
	pfd[1] = -1;
	st = reap(pid);
	if (st == -ETIME) {
		err = st;
		snprintf(why, why_len, "%s did not finish within %d s", GNUPLOT,
			 GNUPLOT_WAIT_MS / 1000);
	} else if (st < 0) {
		err = st;
		snprintf(why, why_len, "cannot wait for %s: %s", GNUPLOT, strerror(-st));
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		err = -EIO;
		if (WIFEXITED(st))
			snprintf(why, why_len, "%s exited with status %d (its messages are above)",
				 GNUPLOT, WEXITSTATUS(st));
		else
			snprintf(why, why_len, "%s was killed by signal %d", GNUPLOT,
				 WTERMSIG(st));
	} else if (err) {
		snprintf(why, why_len, "cannot send the script to %s: %s", GNUPLOT,
			 strerror(-err));
	}
out_attr:
	posix_spawnattr_destroy(&attr);
out_fa:
	posix_spawn_file_actions_destroy(&fa);
out_pipe:
	if (err && !why[0])
		snprintf(why, why_len, "cannot start %s: %s", GNUPLOT, strerror(-err));
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return err;
}
