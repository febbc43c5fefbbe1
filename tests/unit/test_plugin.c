// SPDX-License-Identifier: GPL-2.0
/*
 * The CUDA backend as a plugin (runtime/backend_cuda_load.c): llmqd and
 * llmq start without the CUDA libraries, load $(O)/lib/llmq/backend-cuda.so
 * for --engine cuda, and say clearly why when it is missing, is some other
 * library, or finds no GPU.  Built only when nvcc is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testenv.h"

/* stdout and stderr of a shell command, NUL-terminated; exit status in *rc. */
static char *run(int *rc, const char *fmt, ...)
{
	char cmd[4096], *buf = calloc(1, 1 << 16);
	size_t len = 0, n;
	va_list ap;
	FILE *p;

	assert_non_null(buf);
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (len < (1 << 16) - 1 && (n = fread(buf + len, 1, (1 << 16) - 1 - len, p)) > 0)
		len += n;
	*rc = pclose(p);
	*rc = WIFEXITED(*rc) ? WEXITSTATUS(*rc) : -1;
	return buf;
}

static const char *bin(void)
{
	return getenv("LLMQ_BIN_DIR");
}

/* Neither program needs a CUDA library to start; the plugin brings them. */
static void test_no_cuda_libraries(void **state)
{
	char *out;
	int rc;

	(void)state;
	out = run(&rc, "ldd %s/llmqd %s/llmq 2>&1", bin(), bin());
	assert_int_equal(rc, 0);
	assert_null(strstr(out, "libcudart"));
	assert_null(strstr(out, "libcublas"));
	free(out);
	out = run(&rc, "ldd %s/../lib/llmq/backend-cuda.so 2>&1", bin());
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "libcudart"));
	assert_non_null(strstr(out, "libcublas"));
	assert_null(strstr(out, "not found"));
	free(out);
}

static void test_plugin_missing(void **state)
{
	char *out;
	int rc;

	(void)state;
	out = run(&rc, "LLMQ_CUDA_BACKEND=/nonexistent/backend-cuda.so %s/llmq run --engine cuda "
		  "--max-tokens 2 hi 2>&1", bin());
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "cannot load the CUDA backend"));
	assert_non_null(strstr(out, "/nonexistent/backend-cuda.so"));
	free(out);
	out = run(&rc, "LLMQ_CUDA_BACKEND=/nonexistent/backend-cuda.so %s/llmqd --foreground "
		  "--engine cuda --socket /tmp/llmq-plugin-%d.sock 2>&1", bin(), (int)getpid());
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(out, "cannot load the CUDA backend"));
	free(out);
}

/* A library that is not our plugin (libllmq itself) is refused, not called. */
static void test_plugin_foreign(void **state)
{
	char *out;
	int rc;

	(void)state;
	out = run(&rc, "LLMQ_CUDA_BACKEND=%s/../lib/libllmq.so %s/llmq run --engine cuda "
		  "--max-tokens 2 hi 2>&1", bin(), bin());
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "is not a CUDA backend of this llmq build"));
	free(out);
}

/*
 * The real plugin, found beside the binary: with a GPU it generates, without
 * one it says so (the CUDA runtime's own reason, not a crash).
 */
static void test_plugin_loads(void **state)
{
	char *out;
	int rc;

	(void)state;
	out = run(&rc, "env -u LLMQ_CUDA_BACKEND %s/llmq run --engine cuda --max-tokens 2 "
		  "'In the beginning' 2>&1", bin());
	if (rc == 0) {
		assert_true(strlen(out) > 0);
	} else {
		assert_int_equal(rc, 1);
		assert_non_null(strstr(out, "CUDA"));
		assert_null(strstr(out, "cannot load"));
		print_message("[          ] no GPU here: %s", out);
	}
	free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_cuda_libraries),
		cmocka_unit_test(test_plugin_missing),
		cmocka_unit_test(test_plugin_foreign),
		cmocka_unit_test(test_plugin_loads),
	};

	(void)argc;
	if (testenv_bin_dir(argv[0]))
		return 1;
	return cmocka_run_group_tests_name("cuda plugin", tests, NULL, NULL);
}
