// SPDX-License-Identifier: GPL-2.0
/*
 * What make install ships around the binaries, checked for real: it
 * installs into a scratch prefix; every flag of llmqd, llmqctl and
 * llmq-bench --help is in its man page and every flag a page names is
 * one the tool has; the pages render through man(1) without a warning;
 * the systemd units pass systemd-analyze verify and the sysusers file
 * systemd-sysusers; and llmqd tells $NOTIFY_SOCKET READY=1 once it serves
 * and STOPPING=1 when a SIGTERM begins its stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define OUT_MAX (256 * 1024)

static char out[OUT_MAX], err[OUT_MAX];
static char prefix[128];	/* the scratch install, PREFIX=prefix/usr */
static bool installed;

static bool have(const char *cmd)
{
	char sh[256];

	snprintf(sh, sizeof(sh), "command -v %s >/dev/null 2>&1", cmd);
	return system(sh) == 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool exists(const char *fmt, ...)
{
	char path[PATH_MAX];
	struct stat st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * make install PREFIX=<scratch>/usr from this build directory, with its
 * binaries as they are (-o all: nothing is rebuilt, whatever the flags).
 */
static int setup_install(void **state)
{
	char build[PATH_MAX], o_arg[PATH_MAX + 8], p_arg[PATH_MAX + 16];
	const char *argv[] = { "/usr/bin/env", "-u", "MAKEFLAGS", "-u", "MAKELEVEL", "-u", "MFLAGS",
			       "make", "--no-print-directory", "-s", "-C", LLMQ_SRCDIR,
			       "-o", "all", o_arg, p_arg, "install", NULL };
	char *slash;
	int rc;

	(void)state;
	snprintf(prefix, sizeof(prefix), "/tmp/llmq-install-XXXXXX");
	if (!mkdtemp(prefix))
		return -1;
	snprintf(build, sizeof(build), "%s", harness_bin_dir);
	slash = strrchr(build, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	snprintf(o_arg, sizeof(o_arg), "O=%s", build);
	snprintf(p_arg, sizeof(p_arg), "PREFIX=%s/usr", prefix);
	rc = run_cmd(argv, out, sizeof(out), err, sizeof(err));
	if (rc) {
		fprintf(stderr, "make install: %d\n%s%s", rc, out, err);
		return -1;
	}
	installed = true;
	return 0;
}

static int teardown_install(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	if (prefix[0] && !strncmp(prefix, "/tmp/llmq-install-", 18)) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", prefix);
		return system(cmd) ? -1 : 0;
	}
	return 0;
}

static void test_install_tree(void **state)
{
	(void)state;
	assert_true(installed);
	assert_true(exists("%s/usr/bin/llmqd", prefix));
	assert_true(exists("%s/usr/bin/llmqctl", prefix));
	assert_true(exists("%s/usr/bin/llmq-bench", prefix));
	assert_true(exists("%s/usr/lib/systemd/system/llmqd.service", prefix));
	assert_true(exists("%s/usr/lib/systemd/system/llmq-textfile.service", prefix));
	assert_true(exists("%s/usr/lib/systemd/system/llmq-textfile.timer", prefix));
	assert_true(exists("%s/usr/lib/sysusers.d/llmq.conf", prefix));
	if (!have("rst2man")) {
		fprintf(stderr, "rst2man missing (python3-docutils): no man pages to check\n");
		skip();
	}
	assert_true(exists("%s/usr/share/man/man8/llmqd.8", prefix));
	assert_true(exists("%s/usr/share/man/man8/llmqctl.8", prefix));
	assert_true(exists("%s/usr/share/man/man1/llmq-bench.1", prefix));
}

/* Is @word in @text, bounded by what cannot be part of a flag's name? */
static bool has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *p;

	for (p = strstr(text, word); p; p = strstr(p + 1, word)) {
		char after = p[n];

		if ((p == text || (p[-1] != '-' && p[-1] != '_' &&
				   !(p[-1] >= 'a' && p[-1] <= 'z'))) &&
		    !(after == '-' || after == '_' || (after >= 'a' && after <= 'z') ||
		      (after >= '0' && after <= '9')))
			return true;
	}
	return false;
}

/*
 * Every flag @text names (--long, and -x short ones standing alone),
 * each checked against @other with @fmt ("**%s**" for a man page's rst).
 * Returns how many are missing, each printed.
 */
static int flags_missing(const char *what, const char *text, const char *other,
			 const char *fmt)
{
	const char *p = text;
	char flag[96], want[128];
	int missing = 0, seen = 0;
	regmatch_t m[3];
	regex_t re;

	assert_int_equal(regcomp(&re, "(^|[^-a-zA-Z0-9_*])(--?[a-zA-Z][a-zA-Z0-9-]*)",
				 REG_EXTENDED | REG_NEWLINE), 0);
	while (!regexec(&re, p, 3, m, p == text ? 0 : REG_NOTBOL)) {
		snprintf(flag, sizeof(flag), "%.*s", (int)(m[2].rm_eo - m[2].rm_so),
			 p + m[2].rm_so);
		p += m[2].rm_eo;
		/* A short flag is one letter: "-EBUSY" in a sentence is not one. */
		if (flag[1] != '-' && flag[2])
			continue;
		/* Every tool takes -h and --help, listed or not. */
		if (!strcmp(fmt, "%s") && (!strcmp(flag, "-h") || !strcmp(flag, "--help")))
			continue;
		seen++;
		snprintf(want, sizeof(want), fmt, flag);
		if (!has_word(other, want)) {
			fprintf(stderr, "%s: %s is missing\n", what, want);
			missing++;
		}
	}
	regfree(&re);
	assert_true(seen > 0);
	return missing;
}

/* The man page's rst beside the tool's --help: the same flags, both ways. */
static void check_page(const char *tool, const char *page)
{
	const char *argv[] = { NULL, "--help", NULL };
	char bin[PATH_MAX + 32], path[PATH_MAX], what[128];
	char *rst, *help, *stars;
	size_t i, j;

	snprintf(bin, sizeof(bin), "%s/%s", harness_bin_dir, tool);
	argv[0] = bin;
	assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 0);
	help = strdup(out);
	snprintf(path, sizeof(path), "%s/Documentation/man/%s.rst", LLMQ_SRCDIR, page);
	rst = slurp(path);
	assert_non_null(rst);

	snprintf(what, sizeof(what), "%s --help -> %s.rst", tool, page);
	assert_int_equal(flags_missing(what, help, rst, "**%s**"), 0);

	/* And back: the flags the page sets in bold, against --help. */
	stars = malloc(strlen(rst) + 1);
	assert_non_null(stars);
	for (i = j = 0; rst[i]; i++)
		if (!strncmp(rst + i, "**-", 3)) {
			const char *end = strstr(rst + i + 2, "**");

			if (!end)
				break;
			stars[j++] = ' ';
			memcpy(stars + j, rst + i + 2, (size_t)(end - rst - i - 2));
			j += (size_t)(end - rst - i - 2);
			stars[j++] = '\n';
			i = (size_t)(end - rst) + 1;
		}
	stars[j] = '\0';
	snprintf(what, sizeof(what), "%s.rst -> %s --help", page, tool);
	assert_int_equal(flags_missing(what, stars, help, "%s"), 0);
	free(stars);
	free(rst);
	free(help);
}

static void test_man_flags(void **state)
{
	(void)state;
	check_page("llmqd", "llmqd.8");
	check_page("llmqctl", "llmqctl.8");
	check_page("llmq-bench", "llmq-bench.1");
}

/* llmqctl's commands are in its page too. */
static void test_man_llmqctl_commands(void **state)
{
	static const char *const cmds[][2] = {
		{ "status", "**status**" }, { "stats", "**stats**" },
		{ "config get", "**config get**" }, { "config set", "**config set**" },
		{ "clients", "**clients**" }, { "cancel --client", "**cancel** **--client**" },
		{ "drain", "**drain**" }, { "shutdown", "**shutdown**" },
		{ "monitor", "**monitor**" },
	};
	const char *argv[] = { NULL, "--help", NULL };
	char bin[PATH_MAX + 32], path[PATH_MAX];
	char *rst;
	size_t i;

	(void)state;
	snprintf(path, sizeof(path), "%s/Documentation/man/llmqctl.8.rst", LLMQ_SRCDIR);
	rst = slurp(path);
	assert_non_null(rst);
	snprintf(bin, sizeof(bin), "%s/llmqctl", harness_bin_dir);
	argv[0] = bin;
	assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 0);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		/* the help names it, and so does the page */
		if (!strstr(out, cmds[i][0]))
			fail_msg("llmqctl --help lacks %s", cmds[i][0]);
		if (!strstr(rst, cmds[i][1]))
			fail_msg("llmqctl.8.rst lacks %s", cmds[i][1]);
	}
	free(rst);
}

/* man -l renders each installed page with no warning from groff. */
static void test_man_render(void **state)
{
	static const char *const pages[][3] = {
		{ "man8/llmqd.8", "LLMQD(8)", "--max-num-seqs-limit" },
		{ "man8/llmqctl.8", "LLMQCTL(8)", "config set" },
		{ "man1/llmq-bench.1", "LLMQ-BENCH(1)", "--sweep" },
	};
	char path[PATH_MAX];
	size_t i;

	(void)state;
	if (!have("rst2man") || !have("man") || !have("groff")) {
		fprintf(stderr, "rst2man, man or groff missing: pages not rendered\n");
		skip();
	}
	assert_true(installed);
	setenv("MANWIDTH", "80", 1);
	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		const char *argv[] = { "/usr/bin/env", "man", "--warnings", "-l", path, NULL };

		snprintf(path, sizeof(path), "%s/usr/share/man/%s", prefix, pages[i][0]);
		assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 0);
		if (err[0])
			fail_msg("man -l %s: %s", path, err);
		assert_non_null(strstr(out, pages[i][1]));
		assert_non_null(strstr(out, "NAME"));
		assert_non_null(strstr(out, "SYNOPSIS"));
		assert_non_null(strstr(out, "EXIT STATUS"));
		assert_non_null(strstr(out, pages[i][2]));
	}
}

static void test_systemd_verify(void **state)
{
	char svc[PATH_MAX], tf[PATH_MAX], tm[PATH_MAX];
	const char *argv[] = { "/usr/bin/env", "systemd-analyze", "verify", "--man=no", svc, tf, tm,
			       NULL };
	char *unit;

	(void)state;
	assert_true(installed);
	snprintf(svc, sizeof(svc), "%s/usr/lib/systemd/system/llmqd.service", prefix);
	snprintf(tf, sizeof(tf), "%s/usr/lib/systemd/system/llmq-textfile.service", prefix);
	snprintf(tm, sizeof(tm), "%s/usr/lib/systemd/system/llmq-textfile.timer", prefix);
	/* The binaries the units start are the installed ones. */
	unit = slurp(svc);
	assert_non_null(unit);
	snprintf(out, sizeof(out), "ExecStart=%s/usr/bin/llmqd --foreground", prefix);
	assert_non_null(strstr(unit, out));
	assert_non_null(strstr(unit, "Type=notify\n"));
	free(unit);
	unit = slurp(tf);
	assert_non_null(unit);
	snprintf(out, sizeof(out), "%s/usr/bin/llmqctl --socket /run/llmq/llmq.sock stats "
		 "--prometheus", prefix);
	assert_non_null(strstr(unit, out));
	free(unit);
	if (!have("systemd-analyze")) {
		fprintf(stderr, "systemd-analyze missing (systemd): units not verified\n");
		skip();
	}
	/* Any complaint at all, even one it calls a warning, fails. */
	assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 0);
	if (err[0] || out[0])
		fail_msg("systemd-analyze verify: %s%s", out, err);
}

static void test_sysusers(void **state)
{
	char root[256], conf[PATH_MAX], root_arg[PATH_MAX];
	const char *argv[] = { "/usr/bin/env", "systemd-sysusers", root_arg, conf, NULL };
	char *passwd, *group;

	(void)state;
	assert_true(installed);
	if (!have("systemd-sysusers")) {
		fprintf(stderr, "systemd-sysusers missing: llmq.conf not applied\n");
		skip();
	}
	snprintf(root, sizeof(root), "%s/sysroot", prefix);
	assert_int_equal(mkdir(root, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/etc", root);
	assert_int_equal(mkdir(conf, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/usr/lib/sysusers.d/llmq.conf", prefix);
	snprintf(root_arg, sizeof(root_arg), "--root=%s", root);
	if (run_cmd(argv, out, sizeof(out), err, sizeof(err)))
		fail_msg("systemd-sysusers: %s%s", out, err);
	snprintf(conf, sizeof(conf), "%s/etc/passwd", root);
	passwd = slurp(conf);
	snprintf(conf, sizeof(conf), "%s/etc/group", root);
	group = slurp(conf);
	assert_non_null(passwd);
	assert_non_null(group);
	/* A system account in its own group llmq, no shell, no home. */
	assert_non_null(strstr(passwd, "llmq:x:"));
	assert_non_null(strstr(passwd, ":llmq runtime:/nonexistent:/usr/sbin/nologin\n"));
	assert_non_null(strstr(group, "llmq:x:"));
	free(passwd);
	free(group);
}

/*
 * llmq-textfile.service's command, as systemd would run it ($$ is $), on a
 * test llmqd's socket instead of /run/llmq's: llmq.prom appears whole, a
 * failure leaves the old one and no temporary file.
 */
static void test_textfile_command(void **state)
{
	char unit_path[PATH_MAX], dir[192], prom[256], tmp[256], cmd[4096];
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	char *unit, *line, *q0, *q1, *before;
	struct daemon d;
	size_t j;

	(void)state;
	assert_true(installed);
	snprintf(unit_path, sizeof(unit_path), "%s/usr/lib/systemd/system/llmq-textfile.service",
		 prefix);
	unit = slurp(unit_path);
	assert_non_null(unit);
	line = strstr(unit, "\nExecStart=/bin/sh -c '");
	assert_non_null(line);
	q0 = strchr(line, '\'');
	q1 = strchr(q0 + 1, '\n');
	assert_non_null(q1);
	while (q1 > q0 && *q1 != '\'')
		q1--;
	assert_true(q1 > q0);
	assert_int_equal(daemon_start(&d, "textfile", NULL), 0);
	/* Unescape $$, and point it at this llmqd. */
	for (j = 0, q0++; q0 < q1 && j < sizeof(cmd) - 256; q0++) {
		if (q0[0] == '$' && q0[1] == '$')
			q0++;
		if (!strncmp(q0, "/run/llmq/llmq.sock", 19)) {
			j += (size_t)snprintf(cmd + j, sizeof(cmd) - j, "%s", d.sock);
			q0 += 18;
			continue;
		}
		cmd[j++] = *q0;
	}
	cmd[j] = '\0';
	free(unit);
	assert_non_null(strstr(cmd, d.sock));

	snprintf(dir, sizeof(dir), "%s/prom", prefix);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(prom, sizeof(prom), "%s/llmq.prom", dir);
	snprintf(tmp, sizeof(tmp), "%s/llmq.prom.tmp", dir);
	setenv("LLMQ_PROM_DIR", dir, 1);
	assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 0);
	before = slurp(prom);
	assert_non_null(before);
	assert_non_null(strstr(before, "# TYPE llmq:generation_tokens_total counter\n"));
	assert_false(exists("%s", tmp));

	/* llmqd gone: the unit fails, the last good file stays. */
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
	assert_int_equal(run_cmd(argv, out, sizeof(out), err, sizeof(err)), 1);
	assert_non_null(strstr(err, "cannot reach llmqd"));
	unit = slurp(prom);
	assert_non_null(unit);
	assert_string_equal(unit, before);
	assert_false(exists("%s", tmp));
	free(unit);
	free(before);
	unsetenv("LLMQ_PROM_DIR");
}

/* A datagram on @fd within @ms, NUL-terminated in @buf; its length or -1. */
static ssize_t recv_within(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -1;
	n = recv(fd, buf, len - 1, 0);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/*
 * llmqd under a NOTIFY_SOCKET (a path, then an abstract name): READY=1
 * arrives only when the socket already serves, STOPPING=1 on SIGTERM.
 */
static void notify_run(bool abstract)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char sock[128], env[128], bin[PATH_MAX + 16], msg[512];
	const char *argv[] = { bin, "--foreground", "--engine", "null", "--transport", "shm",
			       "--socket", sock, NULL };
	struct llmq_stats st;
	socklen_t len;
	pid_t pid;
	int fd, status;
	ssize_t n;

	snprintf(sock, sizeof(sock), "/tmp/llmq-test-%d-notify.sock", (int)getpid());
	snprintf(env, sizeof(env), "/tmp/llmq-test-%d-notify.%s", (int)getpid(),
		 abstract ? "abs" : "dgram");
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	unlink(env);
	memcpy(sun.sun_path, env, strlen(env));
	len = offsetof(struct sockaddr_un, sun_path) + strlen(env);
	if (abstract) {
		sun.sun_path[0] = '\0';
		env[0] = '@';
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, len), 0);
	snprintf(bin, sizeof(bin), "%s/llmqd", harness_bin_dir);

	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		setenv("NOTIFY_SOCKET", env, 1);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	n = recv_within(fd, msg, sizeof(msg), 20000);
	if (n <= 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("no notification from llmqd");
	}
	/* Ready means serving: the socket answers at once. */
	assert_int_equal(llmq_get_stats(sock, &st), 0);
	assert_non_null(strstr(msg, "READY=1\n"));
	snprintf(env, sizeof(env), "MAINPID=%d\n", (int)pid);
	assert_non_null(strstr(msg, env));
	assert_non_null(strstr(msg, "STATUS=serving "));
	assert_null(strstr(msg, "STOPPING=1"));

	assert_int_equal(kill(pid, SIGTERM), 0);
	n = recv_within(fd, msg, sizeof(msg), 20000);
	assert_true(n > 0);
	assert_string_equal(msg, "STOPPING=1");
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Nothing more after the stop. */
	assert_true(recv_within(fd, msg, sizeof(msg), 100) < 0);
	close(fd);
	if (!abstract) {
		snprintf(env, sizeof(env), "/tmp/llmq-test-%d-notify.dgram", (int)getpid());
		unlink(env);
	}
}

static void test_sd_notify(void **state)
{
	(void)state;
	notify_run(false);
	notify_run(true);
}

/* Without NOTIFY_SOCKET nothing is sent and nothing changes. */
static void test_sd_notify_absent(void **state)
{
	struct daemon d;

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(daemon_start(&d, "nonotify", NULL), 0);
	assert_int_equal(daemon_stop(&d, SIGTERM), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_install_tree),
		cmocka_unit_test(test_man_flags),
		cmocka_unit_test(test_man_llmqctl_commands),
		cmocka_unit_test(test_man_render),
		cmocka_unit_test(test_systemd_verify),
		cmocka_unit_test(test_sysusers),
		cmocka_unit_test(test_textfile_command),
		cmocka_unit_test(test_sd_notify),
		cmocka_unit_test(test_sd_notify_absent),
	};

	(void)argc;
	signal(SIGPIPE, SIG_IGN);
	harness_init(argv[0]);
	return cmocka_run_group_tests(tests, setup_install, teardown_install);
}
