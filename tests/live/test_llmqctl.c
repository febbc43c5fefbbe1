// SPDX-License-Identifier: GPL-2.0
/*
 * llmqctl against live llmqd instances (null engine, userspace transport):
 * every command, its JSON parsed and checked, live configuration seen in
 * the step counter, each error's exit status, and the Prometheus text
 * through a strict format check.
 */
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "harness.h"
#include "requests.h"
#include "metrics.h"

#define WAIT_MS 20000
#define OUT_MAX (256 * 1024)

static char out[OUT_MAX], err[8192];

/* Run llmqctl --socket @sock ARGS...; returns its exit status. */
static int ctl(const char *sock, ...)
{
	const char *argv[16];
	char bin[PATH_MAX + 16];
	const char *a;
	va_list ap;
	int i = 0;

	snprintf(bin, sizeof(bin), "%s/llmqctl", harness_bin_dir);
	argv[i++] = bin;
	argv[i++] = "--socket";
	argv[i++] = sock;
	va_start(ap, sock);
	while ((a = va_arg(ap, const char *)) && i < 15)
		argv[i++] = a;
	va_end(ap);
	argv[i] = NULL;
	return run_cmd(argv, out, sizeof(out), err, sizeof(err));
}

static struct json_object *ctl_json(const char *sock, const char *cmd, const char *arg)
{
	struct json_object *o;

	assert_int_equal(ctl(sock, "--json", cmd, arg, NULL), 0);
	o = json_tokener_parse(out);
	assert_non_null(o);
	return o;
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static bool jbool(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	assert_true(json_object_is_type(v, json_type_boolean));
	return json_object_get_boolean(v);
}

/* A child process with one long request; its result comes back on a pipe. */
struct bg {
	pid_t	pid;
	int	fd;
};

static void bg_start(struct bg *b, const char *sock, uint32_t max_tokens)
{
	int p[2];
	int res;

	assert_int_equal(pipe(p), 0);
	b->pid = fork();
	assert_true(b->pid >= 0);
	if (!b->pid) {
		close(p[0]);
		res = test_generate_n(sock, 1, max_tokens, 0);
		(void)!write(p[1], &res, sizeof(res));
		_exit(0);
	}
	close(p[1]);
	b->fd = p[0];
}

static int bg_result(struct bg *b)
{
	int res = -EPIPE;

	if (read(b->fd, &res, sizeof(res)) != sizeof(res))
		res = -EPIPE;
	close(b->fd);
	waitpid(b->pid, NULL, 0);
	return res;
}

/* Wait until `clients` lists @pid with a request in flight and a token. */
static void wait_client_busy(const char *sock, pid_t pid)
{
	uint64_t end = now_ns() + WAIT_MS * 1000000ULL;
	struct json_object *arr, *c;
	size_t i;

	while (now_ns() < end) {
		arr = ctl_json(sock, "clients", NULL);
		assert_true(json_object_is_type(arr, json_type_array));
		for (i = 0; i < json_object_array_length(arr); i++) {
			c = json_object_array_get_idx(arr, i);
			if (jint(c, "pid") == pid && jint(c, "requests") == 1 &&
			    jint(c, "tokens") >= 1) {
				assert_int_equal(jint(c, "uid"), (int64_t)getuid());
				assert_true(jint(c, "id") > 0);
				json_object_put(arr);
				return;
			}
		}
		json_object_put(arr);
		usleep(10000);
	}
	fail_msg("pid %d never showed up busy in llmqctl clients", (int)pid);
}

static void test_status(void **state)
{
	struct json_object *o;
	struct daemon d = { 0 };

	(void)state;
	assert_int_equal(daemon_start(&d, "status", NULL), 0);
	assert_int_equal(test_generate_n(d.sock, 2, 4, 0), 8);
	o = ctl_json(d.sock, "status", NULL);
	assert_string_equal(jstr(o, "transport"), "shm");
	assert_string_equal(jstr(o, "engine"), "null");
	assert_non_null(strstr(jstr(o, "model"), "null engine"));
	assert_true(jint(o, "uptime_ms") >= 0);
	assert_int_equal(jint(o, "requests_running"), 0);
	assert_int_equal(jint(o, "requests_waiting"), 0);
	assert_true(jint(o, "kv_blocks_total") > 0);
	assert_true(jint(o, "kv_blocks_used") <= jint(o, "kv_blocks_total"));
	assert_false(jbool(o, "draining"));
	assert_true(json_object_object_get_ex(o, "tokens_per_sec", NULL));
	assert_true(json_object_object_get_ex(o, "kv_cache_usage", NULL));
	json_object_put(o);
	/* The text form too. */
	assert_int_equal(ctl(d.sock, "status", NULL), 0);
	assert_non_null(strstr(out, "transport:         shm"));
	assert_non_null(strstr(out, "tokens/s:"));
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static void test_stats(void **state)
{
	static const char *const names[] = {
		"clients_active", "clients_total", "clients_broken", "requests_active",
		"requests_waiting", "requests_total", "requests_failed", "requests_cancelled",
		"steps", "tokens_generated", "cqes_posted", "cqes_overflowed", "overflow_now",
		"wakeups", "doorbells", "requests_running", "kv_blocks_used", "kv_blocks_total",
		"preemptions", "prefix_cache_queries", "prefix_cache_hits", "prompt_tokens",
		"ttft_p50_us", "ttft_p99_us", "itl_p50_us", "itl_p99_us", "e2e_p50_us",
		"e2e_p99_us", "queue_p50_us", "queue_p99_us", "graph_steps",
		"device_sampled_tokens", "steps_ahead",
	};
	struct llmq_stats st;
	struct json_object *o;
	struct daemon d = { 0 };
	size_t i;

	(void)state;
	assert_int_equal(daemon_start(&d, "stats", NULL), 0);
	assert_int_equal(test_generate_n(d.sock, 3, 5, 0), 15);
	o = ctl_json(d.sock, "stats", NULL);
	assert_int_equal(json_object_object_length(o), sizeof(names) / sizeof(names[0]));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_true(jint(o, names[i]) >= 0);
	assert_int_equal(jint(o, "requests_total"), 3);
	assert_int_equal(jint(o, "tokens_generated"), 15);
	assert_true(jint(o, "steps") >= 5);
	assert_true(jint(o, "ttft_p50_us") > 0);
	/* The same counters as the old STATS message. */
	assert_int_equal(llmq_get_stats(d.sock, &st), 0);
	assert_int_equal(jint(o, "steps"), (int64_t)st.steps);
	assert_int_equal(jint(o, "kv_blocks_total"), (int64_t)st.kv_blocks_total);
	json_object_put(o);
	assert_int_equal(ctl(d.sock, "stats", NULL), 0);
	assert_non_null(strstr(out, "tokens_generated       15\n"));
	assert_int_equal(ctl(d.sock, "--json", "stats", "--prometheus", NULL), 2);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/*
 * The Prometheus text exposition format, strictly: every line a comment,
 * HELP, TYPE or sample; a metric's HELP and TYPE before its samples, once;
 * sample names of the family (histogram: _bucket with le ascending and
 * ending in +Inf, _sum, _count; summary: quantile, _sum, _count); values
 * that parse as floats.  Returns NULL or what was wrong.
 */
static const char *prom_check(const char *text, int *nr_families)
{
	static char why[2048];
	regex_t name_re, sample_re;
	char *copy = strdup(text), *line, *save, fam[256] = "", type[32] = "";
	char helped[256] = "", seen[64][256];
	double last_le = -1.0, last_cum = -1.0, inf_cum = -1.0;
	bool inf_seen = false, have_sum = false, have_count = false, have_sample = false;
	int nseen = 0, i;
	const char *ret = NULL;

	*nr_families = 0;
	assert_int_equal(regcomp(&name_re, "^[a-zA-Z_:][a-zA-Z0-9_:]*$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regcomp(&sample_re,
				 "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")"
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})? ([^ ]+)$",
				 REG_EXTENDED), 0);
#define BAD(...) do { snprintf(why, sizeof(why), __VA_ARGS__); ret = why; goto out; } while (0)
#define END_FAMILY() do {							\
	if (fam[0] && !have_sample && strcmp(type, "histogram") && strcmp(type, "summary")) \
		BAD("%s: no sample", fam);					\
	if (fam[0] && (!strcmp(type, "histogram") || !strcmp(type, "summary")) && \
	    (!have_sum || !have_count))						\
		BAD("%s: %s without _sum and _count", fam, type);		\
	if (fam[0] && !strcmp(type, "histogram") && !inf_seen)			\
		BAD("%s: no le=\"+Inf\" bucket", fam);				\
} while (0)
	if (!*text || text[strlen(text) - 1] != '\n')
		BAD("output does not end in a newline");
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		regmatch_t mm[6];
		char name[256], help_name[256], tname[256], labels[512] = "", val[64];
		char *endp;

		if (!strncmp(line, "# HELP ", 7)) {
			if (sscanf(line + 7, "%255s", help_name) != 1 ||
			    regexec(&name_re, help_name, 0, NULL, 0))
				BAD("bad HELP line: %s", line);
			if (strlen(line + 7) <= strlen(help_name) + 1)
				BAD("HELP without text: %s", line);
			END_FAMILY();
			for (i = 0; i < nseen; i++)
				if (!strcmp(seen[i], help_name))
					BAD("%s described twice", help_name);
			if (nseen < 64)
				strcpy(seen[nseen++], help_name);
			strcpy(helped, help_name);
			fam[0] = type[0] = '\0';
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			if (sscanf(line + 7, "%255s %31s", tname, type) != 2)
				BAD("bad TYPE line: %s", line);
			if (strcmp(tname, helped))
				BAD("TYPE %s not right after its HELP", tname);
			if (strcmp(type, "counter") && strcmp(type, "gauge") &&
			    strcmp(type, "histogram") && strcmp(type, "summary") &&
			    strcmp(type, "untyped"))
				BAD("unknown type %s", type);
			if (!strcmp(type, "counter") &&
			    (strlen(tname) < 6 || strcmp(tname + strlen(tname) - 6, "_total")))
				BAD("counter %s does not end in _total", tname);
			strcpy(fam, tname);
			(*nr_families)++;
			last_le = last_cum = inf_cum = -1.0;
			inf_seen = have_sum = have_count = have_sample = false;
			continue;
		}
		if (line[0] == '#')
			continue;
		if (regexec(&sample_re, line, 6, mm, 0))
			BAD("not a sample line: %s", line);
		snprintf(name, sizeof(name), "%.*s", (int)(mm[1].rm_eo - mm[1].rm_so),
			 line + mm[1].rm_so);
		if (mm[2].rm_so >= 0)
			snprintf(labels, sizeof(labels), "%.*s", (int)(mm[2].rm_eo - mm[2].rm_so),
				 line + mm[2].rm_so);
		snprintf(val, sizeof(val), "%.*s", (int)(mm[5].rm_eo - mm[5].rm_so),
			 line + mm[5].rm_so);
		if (!fam[0])
			BAD("sample %s before its HELP and TYPE", name);
		if (strcmp(val, "+Inf") && strcmp(val, "-Inf") && strcmp(val, "NaN")) {
			strtod(val, &endp);
			if (*endp)
				BAD("%s: value '%s' is not a float", name, val);
		}
		have_sample = true;
		if (!strcmp(name, fam)) {
			if (!strcmp(type, "histogram"))
				BAD("%s: a histogram sample without a suffix", name);
			if (!strcmp(type, "summary") && !strstr(labels, "quantile=\""))
				BAD("%s: a summary sample without quantile", name);
			if (strcmp(type, "summary") && labels[0])
				BAD("%s: unexpected labels %s", name, labels);
			continue;
		}
		if (strncmp(name, fam, strlen(fam)))
			BAD("sample %s under %s", name, fam);
		if (!strcmp(name + strlen(fam), "_sum")) {
			have_sum = true;
		} else if (!strcmp(name + strlen(fam), "_count")) {
			have_count = true;
			if (!strcmp(type, "histogram") && !inf_seen)
				BAD("%s: _count before the +Inf bucket", fam);
			if (!strcmp(type, "histogram") && strtod(val, NULL) != inf_cum)
				BAD("%s: _count %s is not the +Inf bucket's %g", fam, val, inf_cum);
		} else if (!strcmp(name + strlen(fam), "_bucket") && !strcmp(type, "histogram")) {
			const char *le = strstr(labels, "le=\"");
			double v;

			if (!le)
				BAD("%s: bucket without le", name);
			le += 4;
			if (inf_seen)
				BAD("%s: bucket after +Inf", name);
			/* Cumulative: never fewer samples under a larger le. */
			if (strtod(val, NULL) < last_cum)
				BAD("%s: bucket counts fall at %s", name, labels);
			last_cum = strtod(val, NULL);
			if (!strncmp(le, "+Inf\"", 5)) {
				inf_seen = true;
				inf_cum = last_cum;
				continue;
			}
			v = strtod(le, &endp);
			if (*endp != '"' || v <= last_le)
				BAD("%s: le not ascending at %s", name, labels);
			last_le = v;
		} else {
			BAD("sample %s does not belong to %s %s", name, type, fam);
		}
	}
	END_FAMILY();
out:
#undef BAD
#undef END_FAMILY
	regfree(&name_re);
	regfree(&sample_re);
	free(copy);
	return ret;
}

/*
 * The exposition of one histogram, sample by sample: a bucket's le is an
 * exact bound (a sample on it counts, one nanosecond more does not), and
 * what outlasts the last le is only under +Inf.
 */
static void test_hist_exposition(void **state)
{
	static const uint64_t ns[] = {
		500, 1000, 2000, 2001, 1048576000ULL, 5000000000ULL, 3ULL * 3600 * 1000000000ULL,
	};
	struct hist h = { 0 };
	char *buf = NULL;
	const char *why;
	size_t len = 0;
	unsigned int i;
	FILE *f;
	int n;

	(void)state;
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++)
		hist_add(&h, ns[i]);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	hist_print(f, "t_seconds", "test", &h);
	fclose(f);
	why = prom_check(buf, &n);
	if (why)
		fail_msg("%s", why);
	assert_int_equal(n, 1);
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"2e-06\"} 3\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"4e-06\"} 4\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"0.524288\"} 4\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"1.048576\"} 5\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"8.388608\"} 6\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"2147.483648\"} 6\n"));
	assert_non_null(strstr(buf, "\nt_seconds_bucket{le=\"+Inf\"} 7\n"));
	assert_non_null(strstr(buf, "\nt_seconds_count 7\n"));
	assert_non_null(strstr(buf, "\nt_seconds_sum 10806.048581501\n"));
	free(buf);
}

/*
 * Prometheus' own checker on @text: `promtool check metrics` (Debian's
 * prometheus package) must parse it, and may object to nothing but the
 * colon in the names, which recording rules conventionally own and which
 * vLLM's names, and so ours, carry anyway.  Returns NULL or what was wrong.
 */
static const char *promtool_check(const char *text)
{
	static char why[4096];
	char path[] = "/tmp/llmq-prom-XXXXXX", cmd[256], line[512];
	const char *ret = NULL;
	size_t have = 0;
	FILE *p;
	int fd, st;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics <%s 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	why[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "metric names should not contain ':'"))
			continue;
		if (have + strlen(line) < sizeof(why)) {
			strcpy(why + have, line);
			have += strlen(line);
		}
		ret = why;
	}
	st = pclose(p);
	unlink(path);
	/* 0: clean; 3: lint problems only (all of them the colon, above). */
	if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 3))
		return have ? why : "promtool failed";
	return ret;
}

static void test_prometheus(void **state)
{
	struct daemon d = { 0 };
	const char *why;
	int n;

	(void)state;
	/* The checker itself catches what it should. */
	assert_null(prom_check("# HELP a_total x\n# TYPE a_total counter\na_total 1\n", &n));
	assert_non_null(prom_check("a_total 1\n", &n));
	assert_non_null(prom_check("# HELP a x\n# TYPE a counter\na 1\n", &n));
	assert_non_null(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\n"
				   "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
				   "h_count 1\n", &n));
	assert_null(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
			       "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
			       "h_count 1\n", &n));
	assert_non_null(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
				   "h_sum 1\nh_count 1\n", &n));
	assert_non_null(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
				   "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
				   "h_count 2\n", &n));
	assert_non_null(prom_check("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
				   "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", &n));
	assert_non_null(prom_check("# HELP g x\n# TYPE g gauge\ng one\n", &n));

	assert_int_equal(daemon_start(&d, "prom", NULL), 0);
	assert_int_equal(test_generate_n(d.sock, 2, 3, 0), 6);
	assert_int_equal(ctl(d.sock, "stats", "--prometheus", NULL), 0);
	why = prom_check(out, &n);
	if (why)
		fail_msg("llmqctl stats --prometheus: %s", why);
	if (access("/usr/bin/promtool", X_OK))
		fail_msg("promtool missing: apt-get install --no-install-recommends prometheus "
			 "(make check's scripts/install-deps.sh --test does)");
	/* The checker sees what it should, then our output. */
	assert_non_null(promtool_check("# HELP a x\n# TYPE a counter\na{ 1\n"));
	assert_non_null(promtool_check("# HELP g_total x\n# TYPE g_total gauge\ng_total 1\n"));
	why = promtool_check(out);
	if (why)
		fail_msg("promtool check metrics: %s", why);
	assert_int_equal(n, 19);
	assert_non_null(strstr(out, "\nllmq:generation_tokens_total 6\n"));
	/* The null engine runs no graphs and draws nothing itself. */
	assert_non_null(strstr(out, "\nllmq:graph_steps_total 0\n"));
	assert_non_null(strstr(out, "\nllmq:device_sampled_tokens_total 0\n"));
	assert_non_null(strstr(out, "\nllmq:steps_ahead_total 0\n"));
	assert_non_null(strstr(out, "\nllmq:time_to_first_token_seconds_count 2\n"));
	assert_non_null(strstr(out, "# TYPE llmq:e2e_request_latency_seconds histogram\n"));
	/* The null engine answers within a second: both under le 2^20 us. */
	assert_non_null(strstr(out, "\nllmq:time_to_first_token_seconds_bucket{le=\"1.048576\"} 2\n"));
	assert_non_null(strstr(out, "\nllmq:e2e_request_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static int64_t steps_of(const char *sock)
{
	struct llmq_stats st;

	assert_int_equal(llmq_get_stats(sock, &st), 0);
	return (int64_t)st.steps;
}

/* Four one-token requests 30 ms apart: how many steps do they take? */
static int64_t steps_for_four(const char *sock)
{
	int64_t before = steps_of(sock);

	assert_int_equal(test_generate_n(sock, 4, 1, 30), 4);
	return steps_of(sock) - before;
}

static void test_config_live(void **state)
{
	const char *args[] = { "--batch-timeout-ms", "0", NULL };
	struct json_object *o;
	struct daemon d = { 0 };

	(void)state;
	assert_int_equal(daemon_start(&d, "config", args), 0);
	o = ctl_json(d.sock, "config", "get");
	assert_int_equal(json_object_object_length(o), 5);
	assert_int_equal(jint(o, "batch_timeout_ms"), 0);
	assert_int_equal(jint(o, "max_batch_size"), 64);
	assert_int_equal(jint(o, "max_num_seqs"), 64);
	assert_int_equal(jint(o, "max_num_batched_tokens"), 128);
	assert_int_equal(jint(o, "max_queued_requests"), 4096);
	json_object_put(o);

	/* No window: each request its own step. */
	assert_int_equal(steps_for_four(d.sock), 4);
	/* A one-second window: all four in one step, no restart. */
	assert_int_equal(ctl(d.sock, "config", "set", "batch_timeout_ms", "1000", NULL), 0);
	assert_string_equal(out, "1000\n");
	assert_int_equal(ctl(d.sock, "config", "get", "batch_timeout_ms", NULL), 0);
	assert_string_equal(out, "1000\n");
	assert_int_equal(steps_for_four(d.sock), 1);
	/* And back. */
	assert_int_equal(ctl(d.sock, "--json", "config", "set", "batch_timeout_ms", "0", NULL), 0);
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_int_equal(jint(o, "batch_timeout_ms"), 0);
	json_object_put(o);
	assert_int_equal(steps_for_four(d.sock), 4);

	/* The other keys take too. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_queued_requests", "7", NULL), 0);
	assert_int_equal(ctl(d.sock, "config", "set", "max_batch_size", "3", NULL), 0);
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "8", NULL), 0);
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_batched_tokens", "16", NULL), 0);
	o = ctl_json(d.sock, "config", "get");
	assert_int_equal(jint(o, "max_queued_requests"), 7);
	assert_int_equal(jint(o, "max_batch_size"), 3);
	assert_int_equal(jint(o, "max_num_seqs"), 8);
	assert_int_equal(jint(o, "max_num_batched_tokens"), 16);
	json_object_put(o);
	assert_int_equal(test_generate_n(d.sock, 4, 3, 0), 12);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* Eight one-token requests at once, the window closing on all eight. */
static int64_t steps_for_eight(const char *sock)
{
	int64_t before = steps_of(sock);

	assert_int_equal(test_generate_n(sock, 8, 1, 0), 8);
	return steps_of(sock) - before;
}

/*
 * max_num_seqs and max_num_batched_tokens go up live as far as the
 * ceilings llmqd sized its step for, and the steps show it.
 */
static void test_config_raise(void **state)
{
	const char *args[] = { "--batch-timeout-ms", "1000", "--max-batch-size", "8",
			       "--max-num-seqs", "2", "--max-num-batched-tokens", "32",
			       "--max-num-seqs-limit", "8",
			       "--max-num-batched-tokens-limit", "128", NULL };
	const char *bad[] = { "--engine", "null", "--max-num-seqs", "8",
			      "--max-num-seqs-limit", "4", NULL };
	const char *bad2[] = { "--engine", "null", "--max-num-batched-tokens", "64",
			       "--max-num-batched-tokens-limit", "32", NULL };
	char bin[PATH_MAX + 16];
	const char *argv[8];
	struct json_object *o;
	struct daemon d = { 0 };
	int i;

	(void)state;
	assert_int_equal(daemon_start(&d, "raise", args), 0);
	/* Two sequences a step: eight one-token prompts take four steps. */
	assert_int_equal(steps_for_eight(d.sock), 4);
	/* Raised to the ceilings, no restart: one step takes all eight. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "8", NULL), 0);
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_batched_tokens", "128", NULL), 0);
	o = ctl_json(d.sock, "config", "get");
	assert_int_equal(jint(o, "max_num_seqs"), 8);
	assert_int_equal(jint(o, "max_num_batched_tokens"), 128);
	json_object_put(o);
	assert_int_equal(steps_for_eight(d.sock), 1);
	/* Down again, and up again: the ceiling stays where it was. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "2", NULL), 0);
	assert_int_equal(steps_for_eight(d.sock), 4);
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "8", NULL), 0);
	assert_int_equal(steps_for_eight(d.sock), 1);
	/* Past them: a clear refusal that names the ceiling and its flag. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "9", NULL), 3);
	assert_non_null(strstr(err, "max_num_seqs: 9 is out of range 1..8"));
	assert_non_null(strstr(err, "--max-num-seqs-limit"));
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_batched_tokens", "129", NULL), 3);
	assert_non_null(strstr(err, "max_num_batched_tokens: 129 is out of range 1..128"));
	assert_non_null(strstr(err, "--max-num-batched-tokens-limit"));
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);

	/* A ceiling below its start value is a bad command line. */
	snprintf(bin, sizeof(bin), "%s/llmqd", harness_bin_dir);
	for (i = 0; i < 2; i++) {
		const char *const *a = i ? bad2 : bad;
		int n = 0;

		argv[n++] = bin;
		while (*a)
			argv[n++] = *a++;
		argv[n] = NULL;
		assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 2);
		assert_non_null(strstr(err, "is below"));
	}
}

static void test_config_errors(void **state)
{
	struct json_object *o;
	struct daemon d = { 0 };
	pid_t pid;
	int st, p[2];
	char buf[512] = "";
	ssize_t n;

	(void)state;
	assert_int_equal(daemon_start(&d, "cfgerr", NULL), 0);
	/* An empty socket path: usage, 2, not "cannot reach llmqd at ''" (5). */
	assert_int_equal(ctl("", "status", NULL), 2);
	assert_non_null(strstr(err, "--socket: '' is empty"));
	/* A bad key: usage, 2, before anything is sent. */
	assert_int_equal(ctl(d.sock, "config", "set", "batch_window", "5", NULL), 2);
	assert_non_null(strstr(err, "unknown key 'batch_window'"));
	assert_int_equal(ctl(d.sock, "config", "get", "nope", NULL), 2);
	assert_non_null(strstr(err, "unknown key 'nope'"));
	/* Not a number: usage, 2. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "12abc", NULL), 2);
	assert_non_null(strstr(err, "not a whole number"));
	/* A negative value: llmqd refuses it, 3. */
	assert_int_equal(ctl(d.sock, "config", "set", "batch_timeout_ms", "-5", NULL), 3);
	assert_non_null(strstr(err, "batch_timeout_ms: -5 is out of range 0..60000"));
	/* Beyond the flag's bound, or above the ceiling the step was sized for. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_queued_requests", "2000000", NULL), 3);
	assert_non_null(strstr(err, "out of range 1..1048576"));
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_seqs", "65", NULL), 3);
	assert_non_null(strstr(err, "max_num_seqs: 65 is out of range 1..64 (the step's buffers "
			       "were sized for that at start; restart llmqd with a larger "
			       "--max-num-seqs-limit)"));
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_batched_tokens", "129", NULL), 3);
	assert_non_null(strstr(err, "--max-num-batched-tokens-limit)"));
	/* A combination llmqd's flags refuse too. */
	assert_int_equal(ctl(d.sock, "config", "set", "max_num_batched_tokens", "32", NULL), 3);
	assert_non_null(strstr(err, "below max_num_seqs"));

	/* Unprivileged: reading works, setting is EPERM, 4. */
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(p[0]);
		if (setgid(65534) || setuid(65534))
			_exit(90);
		if (ctl(d.sock, "status", NULL) != 0)
			_exit(91);
		st = ctl(d.sock, "config", "set", "batch_timeout_ms", "5", NULL);
		(void)!write(p[1], err, strlen(err));
		if (ctl(d.sock, "drain", NULL) != 4 || ctl(d.sock, "shutdown", NULL) != 4 ||
		    ctl(d.sock, "cancel", "--client", "1", NULL) != 4)
			_exit(92);
		_exit(st);
	}
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 4);
	assert_non_null(strstr(buf, "needs root, CAP_NET_ADMIN or CAP_SYS_ADMIN"));

	/* None of it changed anything. */
	o = ctl_json(d.sock, "config", "get");
	assert_int_equal(jint(o, "batch_timeout_ms"), 2);
	assert_int_equal(jint(o, "max_num_seqs"), 64);
	assert_int_equal(jint(o, "max_num_batched_tokens"), 128);
	assert_int_equal(jint(o, "max_queued_requests"), 4096);
	json_object_put(o);
	o = ctl_json(d.sock, "status", NULL);
	assert_false(jbool(o, "draining"));
	json_object_put(o);

	/* Usage errors and an unreachable daemon. */
	assert_int_equal(ctl(d.sock, "frobnicate", NULL), 2);
	assert_int_equal(ctl(d.sock, "cancel", "--client", "x", NULL), 2);
	assert_int_equal(ctl("/tmp/llmq-test-nonexistent.sock", "status", NULL), 5);
	assert_non_null(strstr(err, "cannot reach llmqd"));
	/* No such client: llmqd refuses, 1. */
	assert_int_equal(ctl(d.sock, "cancel", "--client", "999999999", NULL), 1);
	assert_non_null(strstr(err, "no client with pid 999999999"));
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/*
 * Send @cmd (no attributes) on an admin connection already made; returns
 * the reply's LLMQ_ATTR_ERRNO, or -1 for no well-formed reply.
 */
static int admin_cmd(int fd, uint8_t cmd)
{
	struct {
		struct nlmsghdr		nh;
		struct genlmsghdr	gh;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = LLMQ_GENL_SOCK_TYPE,
			.nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
		.gh = { .cmd = cmd, .version = LLMQ_GENL_VERSION },
	};
	static char rep[65536];
	struct nlattr *a;
	ssize_t n;
	size_t off;

	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return -1;
	n = recv(fd, rep, sizeof(rep), 0);
	if (n < (ssize_t)(NLMSG_HDRLEN + GENL_HDRLEN))
		return -1;
	for (off = NLMSG_HDRLEN + GENL_HDRLEN; off + NLA_HDRLEN <= (size_t)n;
	     off += NLA_ALIGN(a->nla_len)) {
		a = (struct nlattr *)(rep + off);
		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > (size_t)n)
			return -1;
		if ((a->nla_type & NLA_TYPE_MASK) == LLMQ_ATTR_ERRNO && a->nla_len == NLA_HDRLEN + 4)
			return (int)*(uint32_t *)(rep + off + NLA_HDRLEN);
	}
	return -1;
}

static int admin_connect(const char *sock)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Run @fn in a child; its exit status. */
static int in_child(int (*fn)(const char *), const char *sock)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (!pid)
		_exit(fn(sock));
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/*
 * Connect unprivileged, then become privileged under the same pid before
 * the request is read: as a setuid-root exec after connect() would.  The
 * request is judged by the connect-time uid, so it is refused.
 */
static int regain_root_after_connect(const char *sock)
{
	int fd, e;

	if (setresgid(65534, 65534, 0) || setresuid(65534, 65534, 0))
		return 90;
	fd = admin_connect(sock);
	if (fd < 0)
		return 91;
	if (setresuid(-1, 0, -1) || setresgid(-1, 0, -1))
		return 92;
	e = admin_cmd(fd, LLMQ_CMD_DRAIN);
	close(fd);
	return e == EPERM ? 0 : 100 + (e < 0 ? 0 : e % 100);
}

/* A non-root user holding CAP_NET_ADMIN (ambient, as systemd grants it). */
static int net_admin_user(const char *sock)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2] = { 0 };

	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) ||
	    setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		return 90;
	c[0].effective = c[0].permitted = c[0].inheritable = 1U << CAP_NET_ADMIN;
	if (syscall(SYS_capset, &h, c) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0))
		return 91;
	return ctl(sock, "config", "set", "batch_timeout_ms", "7", NULL);
}

static void test_admin_privilege(void **state)
{
	struct json_object *o;
	struct daemon d = { 0 };

	(void)state;
	assert_int_equal(daemon_start(&d, "priv", NULL), 0);
	assert_int_equal(in_child(regain_root_after_connect, d.sock), 0);
	o = ctl_json(d.sock, "status", NULL);
	assert_false(jbool(o, "draining"));
	json_object_put(o);
	/* Root on its own connection may, of course. */
	{
		int fd = admin_connect(d.sock);

		assert_true(fd >= 0);
		assert_int_equal(admin_cmd(fd, LLMQ_CMD_GET_STATUS), 0);
		close(fd);
	}
	/* Capabilities without root count, when they are the peer's own. */
	assert_int_equal(in_child(net_admin_user, d.sock), 0);
	assert_int_equal(ctl(d.sock, "config", "get", "batch_timeout_ms", NULL), 0);
	assert_string_equal(out, "7\n");
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static void test_clients_cancel(void **state)
{
	const char *args[] = { "--null-delay-us", "5000", NULL };
	struct json_object *o;
	struct daemon d = { 0 };
	struct bg b;
	char pid[32];

	(void)state;
	assert_int_equal(daemon_start(&d, "cancel", args), 0);
	o = ctl_json(d.sock, "clients", NULL);
	assert_int_equal(json_object_array_length(o), 0);
	json_object_put(o);
	bg_start(&b, d.sock, 2000);
	wait_client_busy(d.sock, b.pid);
	assert_int_equal(ctl(d.sock, "clients", NULL), 0);
	snprintf(pid, sizeof(pid), "%d", (int)b.pid);
	assert_non_null(strstr(out, pid));
	assert_int_equal(ctl(d.sock, "--json", "cancel", "--client", pid, NULL), 0);
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_int_equal(jint(o, "cancelled"), 1);
	assert_int_equal(jint(o, "pid"), b.pid);
	json_object_put(o);
	assert_int_equal(bg_result(&b), -ECANCELED);
	o = ctl_json(d.sock, "stats", NULL);
	assert_int_equal(jint(o, "requests_cancelled"), 1);
	json_object_put(o);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

/* Clients for the paging test: more than one 64 KiB reply holds (~1,250). */
#define PAGE_KIDS	6
#define PAGE_RINGS	250	/* per child: 750 descriptors, below a 1024 limit */
#define PAGE_CLIENTS	(PAGE_KIDS * PAGE_RINGS)

/* A child: attach PAGE_RINGS rings, say how many on @up, hold them until @hold closes. */
static void hold_rings(const char *ring, int up, int hold)
{
	struct llmq_params p = { .sq_entries = 2, .cq_entries = 2, .arena_size = 4096 };
	struct llmq_ring *r = calloc(PAGE_RINGS, sizeof(*r));
	char c;
	int n = 0;

	while (r && n < PAGE_RINGS && !llmq_queue_init(&r[n], ring, &p))
		n++;
	(void)!write(up, &n, sizeof(n));
	(void)!read(hold, &c, 1);
	_exit(0);
}

/*
 * One GET_CLIENTS page over the admin socket: without LLMQ_ATTR_CLIENTS_START
 * when @start is 0, as an llmqctl from before paging asks.  The ids listed
 * go to @ids (@n of them, PAGE_CLIENTS at most), LLMQ_ATTR_CLIENTS_NEXT to
 * @next (0: none).  Returns the reply's LLMQ_ATTR_ERRNO, -1 for no
 * well-formed reply; its length goes to @len.
 */
static int clients_page(const char *sock, uint64_t start, uint64_t *ids, size_t *n,
			uint64_t *next, size_t *len)
{
	struct {
		struct nlmsghdr		nh;
		struct genlmsghdr	gh;
		struct nlattr		na;
		uint64_t		start;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = LLMQ_GENL_SOCK_TYPE,
			.nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
		.gh = { .cmd = LLMQ_CMD_GET_CLIENTS, .version = LLMQ_GENL_VERSION },
		.na = { .nla_len = NLA_HDRLEN + 8, .nla_type = LLMQ_ATTR_CLIENTS_START },
		.start = start,
	};
	static char rep[2 * 65536];
	size_t off, sub, reqlen = start ? sizeof(req) : NLMSG_HDRLEN + GENL_HDRLEN;
	struct nlattr *a, *b;
	int fd, e = -1;
	ssize_t got;

	*n = 0;
	*next = 0;
	*len = 0;
	req.nh.nlmsg_len = (uint32_t)reqlen;
	fd = admin_connect(sock);
	if (fd < 0)
		return -1;
	if (send(fd, &req, reqlen, 0) != (ssize_t)reqlen) {
		close(fd);
		return -1;
	}
	got = recv(fd, rep, sizeof(rep), 0);
	close(fd);
	if (got < (ssize_t)(NLMSG_HDRLEN + GENL_HDRLEN))
		return -1;
	*len = (size_t)got;
	for (off = NLMSG_HDRLEN + GENL_HDRLEN; off + NLA_HDRLEN <= (size_t)got;
	     off += NLA_ALIGN(a->nla_len)) {
		a = (struct nlattr *)(rep + off);
		if (a->nla_len < NLA_HDRLEN || off + a->nla_len > (size_t)got)
			return -1;
		switch (a->nla_type & NLA_TYPE_MASK) {
		case LLMQ_ATTR_ERRNO:
			memcpy(&e, rep + off + NLA_HDRLEN, 4);
			break;
		case LLMQ_ATTR_CLIENTS_NEXT:
			memcpy(next, rep + off + NLA_HDRLEN, 8);
			break;
		case LLMQ_ATTR_CLIENT:
			for (sub = off + NLA_HDRLEN; sub + NLA_HDRLEN <= off + a->nla_len;
			     sub += NLA_ALIGN(b->nla_len)) {
				b = (struct nlattr *)(rep + sub);
				if (b->nla_len < NLA_HDRLEN)
					return -1;
				if (b->nla_type == LLMQ_ATTR_CLIENT_ID && *n < PAGE_CLIENTS)
					memcpy(&ids[(*n)++], rep + sub + NLA_HDRLEN, 8);
			}
			break;
		}
	}
	return e;
}

/*
 * More clients than one reply holds: llmqctl asks page after page and
 * lists every client once, with its pid; an llmqctl that does not page
 * gets the first page and LLMQ_ATTR_CLIENTS_NEXT.
 */
static void test_clients_pages(void **state)
{
	static uint64_t ids[PAGE_CLIENTS], ids2[PAGE_CLIENTS];
	pid_t kids[PAGE_KIDS];
	int up[2], hold[2], got, seen[PAGE_KIDS] = { 0 };
	struct json_object *arr, *c;
	size_t i, n, n2, len, lines;
	uint64_t next, next2;
	/* Static: the harness kills it at exit even if an assertion leaves early. */
	static struct daemon d;
	struct rlimit rl;
	int64_t prev = 0;
	const char *q;
	int k;

	(void)state;
	/* A ring holds three descriptors here and three in llmqd, which inherits this. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(daemon_start(&d, "pages", NULL), 0);
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(hold), 0);
	for (k = 0; k < PAGE_KIDS; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (!kids[k]) {
			close(up[0]);
			close(hold[1]);
			hold_rings(daemon_ring(&d), up[1], hold[0]);
		}
	}
	close(up[1]);
	close(hold[0]);
	for (k = 0; k < PAGE_KIDS; k++) {
		assert_int_equal(read(up[0], &got, sizeof(got)), sizeof(got));
		assert_int_equal(got, PAGE_RINGS);
	}
	close(up[0]);

	/* As an llmqctl that does not page: a first page, and where to go on. */
	assert_int_equal(clients_page(d.sock, 0, ids, &n, &next, &len), 0);
	assert_true(len <= 65536);
	assert_true(n > 0 && n < PAGE_CLIENTS);
	for (i = 1; i < n; i++)
		assert_true(ids[i] > ids[i - 1]);
	assert_true(next > ids[n - 1]);
	assert_int_equal(clients_page(d.sock, next, ids2, &n2, &next2, &len), 0);
	assert_true(n2 > 0 && ids2[0] == next);
	assert_true(n + n2 <= PAGE_CLIENTS);

	/* llmqctl --json: every client once, in id order, with its child's pid. */
	arr = ctl_json(d.sock, "clients", NULL);
	assert_true(json_object_is_type(arr, json_type_array));
	assert_int_equal(json_object_array_length(arr), PAGE_CLIENTS);
	for (i = 0; i < PAGE_CLIENTS; i++) {
		c = json_object_array_get_idx(arr, i);
		assert_true(jint(c, "id") > prev);
		prev = jint(c, "id");
		for (k = 0; k < PAGE_KIDS && kids[k] != jint(c, "pid"); k++)
			;
		assert_true(k < PAGE_KIDS);
		seen[k]++;
		assert_int_equal(jint(c, "uid"), (int64_t)getuid());
	}
	for (k = 0; k < PAGE_KIDS; k++)
		assert_int_equal(seen[k], PAGE_RINGS);
	json_object_put(arr);
	/* The text form: a heading, then one line per client. */
	assert_int_equal(ctl(d.sock, "clients", NULL), 0);
	for (lines = 0, q = out; (q = strchr(q, '\n')); q++)
		lines++;
	assert_int_equal(lines, PAGE_CLIENTS + 1);

	close(hold[1]);
	for (k = 0; k < PAGE_KIDS; k++)
		assert_int_equal(waitpid(kids[k], NULL, 0), kids[k]);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

static void test_drain_shutdown(void **state)
{
	const char *args[] = { "--null-delay-us", "5000", NULL };
	struct json_object *o;
	struct daemon d = { 0 };
	struct bg b;
	int st, i, res;

	(void)state;
	assert_int_equal(daemon_start(&d, "drain", args), 0);
	bg_start(&b, d.sock, 60);
	wait_client_busy(d.sock, b.pid);
	o = ctl_json(d.sock, "drain", NULL);
	assert_true(jbool(o, "draining"));
	assert_int_equal(jint(o, "requests_running"), 1);
	json_object_put(o);
	/* New requests fail with ESHUTDOWN: a new ring is refused. */
	res = test_generate_n(d.sock, 1, 2, 0);
	assert_int_equal(res, -ESHUTDOWN);
	/* The running one finishes. */
	assert_int_equal(bg_result(&b), 60);
	o = ctl_json(d.sock, "status", NULL);
	assert_true(jbool(o, "draining"));
	assert_int_equal(jint(o, "requests_running"), 0);
	json_object_put(o);
	/* Draining twice is fine. */
	assert_int_equal(ctl(d.sock, "drain", NULL), 0);
	assert_non_null(strstr(out, "draining"));

	assert_int_equal(ctl(d.sock, "shutdown", NULL), 0);
	assert_non_null(strstr(out, "shutting down"));
	for (i = 0; i < 500; i++) {
		if (waitpid(d.pid, &st, WNOHANG) == d.pid)
			break;
		usleep(10000);
	}
	assert_true(i < 500);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	d.pid = 0;
	assert_int_equal(ctl(d.sock, "status", NULL), 5);
}

/* --json shutdown prints {} */
static void test_shutdown_json(void **state)
{
	struct json_object *o;
	struct daemon d = { 0 };
	int st, i;

	(void)state;
	assert_int_equal(daemon_start(&d, "shutj", NULL), 0);
	o = ctl_json(d.sock, "shutdown", NULL);
	assert_int_equal(json_object_object_length(o), 0);
	json_object_put(o);
	for (i = 0; i < 500 && waitpid(d.pid, &st, WNOHANG) != d.pid; i++)
		usleep(10000);
	assert_true(i < 500);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	d.pid = 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_hist_exposition),
		cmocka_unit_test(test_prometheus),
		cmocka_unit_test(test_config_live),
		cmocka_unit_test(test_config_raise),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_admin_privilege),
		cmocka_unit_test(test_clients_cancel),
		cmocka_unit_test(test_clients_pages),
		cmocka_unit_test(test_drain_shutdown),
		cmocka_unit_test(test_shutdown_json),
	};

	(void)argc;
	signal(SIGPIPE, SIG_IGN);
	harness_init(argv[0]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
