// SPDX-License-Identifier: GPL-2.0
/*
 * Timing of llmq's tokenizer on the 1 MiB text bench.mjs writes, with the
 * three reference vocabularies: encode, decode and streaming decode, best of
 * five runs, beside the JavaScript references' numbers from bench.mjs.
 *
 *   node tests/tokenizer/bench.mjs && build/tests/bench_tokenizer [TEXT]
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokref.h"

#define RUNS 5

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bench(const char *name, const struct tokenizer *t, const char *text, size_t len)
{
	double te = 1e9, td = 1e9, ts = 1e9, t0;
	uint32_t *ids = NULL;
	size_t n = 0, i, dlen = 0;
	char *dec = NULL, chunk[1 << 16];
	bool same;
	int r;

	for (r = 0; r < RUNS; r++) {
		free(ids);
		t0 = now();
		if (tok_encode(t, text, len, true, true, &ids, &n)) {
			fprintf(stderr, "%s: tok_encode failed\n", name);
			return -1;
		}
		t0 = now() - t0;
		if (t0 < te)
			te = t0;
	}
	for (r = 0; r < RUNS; r++) {
		free(dec);
		t0 = now();
		if (tok_decode(t, ids, n, true, &dec, &dlen)) {
			fprintf(stderr, "%s: tok_decode failed\n", name);
			free(ids);
			return -1;
		}
		t0 = now() - t0;
		if (t0 < td)
			td = t0;
	}
	for (r = 0; r < RUNS; r++) {
		struct tok_stream st = { 0 };

		t0 = now();
		for (i = 0; i < n; i++)
			if (tok_stream_next(t, &st, ids[i], chunk, sizeof(chunk)) < 0)
				break;
		t0 = now() - t0;
		if (t0 < ts)
			ts = t0;
	}
	same = dlen == len && !memcmp(dec, text, len);
	printf("%-8s encode %8.1f ms %7.2f MiB/s %6.2f Mtok/s | decode %6.1f ms %7.2f Mtok/s | "
	       "stream %6.1f ms %6.2f Mtok/s | %zu tokens, %s\n",
	       name, te * 1e3, len / te / (1 << 20), n / te / 1e6, td * 1e3, n / td / 1e6,
	       ts * 1e3, n / ts / 1e6, n, same ? "round trip ok" : "ROUND TRIP DIFFERS");
	free(ids);
	free(dec);
	return same ? 0 : -1;
}

int main(int argc, char **argv)
{
	char datadir[PATH_MAX], why[1024], err[256], textpath[PATH_MAX];
	const char *dir = tokref_dir(), *file;
	size_t len;
	char *text;
	int m, rc, ret = 0;

	rc = tokref_prepare(dir, datadir, sizeof(datadir), why, sizeof(why));
	if (rc) {
		fprintf(stderr, "bench_tokenizer: %s\n", why);
		return rc > 0 ? 77 : 1;
	}
	file = argc > 1 ? argv[1] : textpath;
	if (argc <= 1 && tokref_path(textpath, sizeof(textpath), datadir, "bench.txt"))
		return 1;
	rc = tokref_read_file(file, &text, &len);
	if (rc) {
		fprintf(stderr, "bench_tokenizer: %s: %s (node %s/bench.mjs writes it)\n", file,
			strerror(-rc), dir);
		return 1;
	}
	printf("llmq tokenizer, %zu bytes of %s, best of %d\n", len, file, RUNS);
	for (m = 0; m < TOKREF_NR; m++) {
		struct tokref_vocab v;
		struct tokenizer *t;
		double t0 = now(), t1;

		if (tokref_load(m, dir, datadir, &v, err, sizeof(err))) {
			fprintf(stderr, "bench_tokenizer: %s\n", err);
			ret = 1;
			continue;
		}
		t1 = now();
		t = tok_create(&v.v, err, sizeof(err));
		if (!t) {
			fprintf(stderr, "bench_tokenizer: tok_create: %s\n", err);
			tokref_free(&v);
			ret = 1;
			continue;
		}
		t0 = t1 - t0;
		t1 = now() - t1;
		if (bench(tokref_names[m], t, text, len))
			ret = 1;
		printf("%-8s (%u tokens, %u merges: GGUF load in %.0f ms, tok_create %.0f ms)\n",
		       "", v.v.n_tokens, v.v.n_merges, t0 * 1e3, t1 * 1e3);
		tok_free(t);
		tokref_free(&v);
	}
	free(text);
	return ret;
}
