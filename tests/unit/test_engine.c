// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the CPU backend's forward step: logits against the float64
 * PyTorch reference (tests/ref/forward_ref.py) on tiny llama and qwen2
 * models of each dtype, greedy continuations, and the invariances of the
 * paged, batched step: batching, chunking and block placement change nothing.
 *
 * The reference tests skip, saying so, when /usr/bin/python3 (or
 * $LLMQ_TEST_PYTHON) cannot import torch (Debian's python3-torch).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "dtype.h"
#include "model.h"
#include "testenv.h"

#define PROMPT_LEN	64
#define GEN_LEN		32
#define N_BLOCKS	128

static char tmpdir[] = "/tmp/llmq-engine-XXXXXX";
static char srcdir[1024];

struct loaded {
	struct model	m;
	struct backend	*b;
};

static void load_path_kv(struct loaded *l, const char *path, enum backend_kv_dtype kv)
{
	struct backend_params p = {
		.n_threads = 2, .max_tokens = 256, .max_context = 512, .kv_dtype = kv,
	};
	char err[256];

	if (model_load(&l->m, path))
		fail_msg("%s: %s", path, l->m.err);
	p.kv_bytes = N_BLOCKS * backend_kv_block_bytes(&l->m, 16, kv);
	l->b = backend_cpu_create(&l->m, &p, err, sizeof(err));
	if (!l->b)
		fail_msg("backend: %s", err);
	assert_int_equal(l->b->n_blocks, N_BLOCKS);
}

static void load_path(struct loaded *l, const char *path)
{
	load_path_kv(l, path, BACKEND_KV_AUTO);
}

/* A tiny model of a preset and dtype, written once into tmpdir, loaded. */
static void load_kv(struct loaded *l, const char *preset, const char *dtype,
		    enum backend_kv_dtype kv, char *path, size_t len)
{
	char cmd[3000];

	snprintf(path, len, "%s/%s-%s.gguf", tmpdir, preset, dtype);
	if (access(path, R_OK)) {
		snprintf(cmd, sizeof(cmd),
			 "%s/llmq-mkmodel --preset %s --dtype %s -o %s >/dev/null 2>&1",
			 getenv("LLMQ_BIN_DIR"), preset, dtype, path);
		assert_int_equal(system(cmd), 0);
	}
	load_path_kv(l, path, kv);
}

static void load(struct loaded *l, const char *preset, const char *dtype, char *path,
		 size_t len)
{
	load_kv(l, preset, dtype, BACKEND_KV_AUTO, path, len);
}

static void unload(struct loaded *l)
{
	backend_destroy(l->b);
	model_free(&l->m);
}

/* Deterministic tokens in [3, n_vocab): no BOS/EOS/UNK. */
static void tokens_fill(uint32_t *t, size_t n, uint32_t n_vocab, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		t[i] = 3 + x % (n_vocab - 3);
	}
}

/*
 * Run one sequence alone: tokens fed in chunks of @chunk through @table,
 * logits of every position into @out (n rows).
 */
static void run_alone(struct backend *b, const uint32_t *tok, uint32_t n, uint32_t chunk,
		      const uint32_t *table, float *out)
{
	uint32_t pos;

	for (pos = 0; pos < n; pos += chunk) {
		struct backend_seq s = {
			.block_table = table, .n_blocks = (n + 15) / 16, .pos = pos,
			.tokens = tok + pos, .n_tokens = n - pos < chunk ? n - pos : chunk,
			.logits = BACKEND_LOGITS_ALL,
		};

		assert_int_equal(backend_step(b, &s, 1, out + (size_t)pos * b->n_vocab), 0);
	}
}

static double rel_err(const float *a, const double *ref, size_t n)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		num += (a[i] - ref[i]) * (a[i] - ref[i]);
		den += ref[i] * ref[i];
	}
	return sqrt(num / den);
}

static double rel_err_f(const float *a, const float *b, size_t n)
{
	double num = 0, den = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		den += (double)b[i] * b[i];
	}
	return den ? sqrt(num / den) : sqrt(num);
}

/* Debian's interpreter: the only one with Debian's python3-torch. */
static const char *python(void)
{
	const char *p = getenv("LLMQ_TEST_PYTHON");

	return p && *p ? p : "/usr/bin/python3";
}

static bool have_torch(void)
{
	static int have = -1;
	char cmd[1200];

	if (have < 0) {
		snprintf(cmd, sizeof(cmd), "%s -c 'import torch' 2>/dev/null", python());
		have = !access(python(), X_OK) && !system(cmd);
	}
	return have;
}

/* The reference, started once: requests on ref_in, answers on ref_out. */
static FILE *ref_in, *ref_out;
static pid_t ref_pid;

static void reference_start(void)
{
	int to[2], from[2];
	char script[1200];

	snprintf(script, sizeof(script), "%s/tests/ref/forward_ref.py", srcdir);
	signal(SIGPIPE, SIG_IGN);	/* a dead reference fails the test, not the run */
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	ref_pid = fork();
	assert_true(ref_pid >= 0);
	if (!ref_pid) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[0]);
		close(to[1]);
		close(from[0]);
		close(from[1]);
		execl(python(), "python3", script, "--serve", (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	ref_in = fdopen(to[1], "w");
	ref_out = fdopen(from[0], "r");
	assert_non_null(ref_in);
	assert_non_null(ref_out);
}

static void reference_stop(void)
{
	if (!ref_pid)
		return;
	fclose(ref_in);
	fclose(ref_out);
	waitpid(ref_pid, NULL, 0);
	ref_pid = 0;
}

/* The reference's logits (float64) of every position of @tok. */
/* Float64 logits of tok[0..n) from forward_ref.py, K and V as the cache holds them. */
static double *reference(const char *model, const uint32_t *tok, size_t n, size_t n_vocab,
			 enum backend_kv_dtype kv)
{
	char tpath[1200], opath[1200], line[512] = "no answer";
	double *ref = malloc(n * n_vocab * sizeof(double));
	FILE *f;
	size_t i;

	snprintf(tpath, sizeof(tpath), "%s/tokens.txt", tmpdir);
	snprintf(opath, sizeof(opath), "%s/logits.f64", tmpdir);
	f = fopen(tpath, "w");
	assert_non_null(f);
	for (i = 0; i < n; i++)
		fprintf(f, "%u\n", tok[i]);
	fclose(f);
	if (!ref_pid)
		reference_start();
	fprintf(ref_in, "%s %s %s %s\n", model, tpath, opath, backend_kv_dtype_name(kv));
	fflush(ref_in);
	if (!fgets(line, sizeof(line), ref_out) || strcmp(line, "ok\n"))
		fail_msg("reference on %s: %s", model, line);
	f = fopen(opath, "rb");
	assert_non_null(f);
	assert_int_equal(fread(ref, sizeof(double), n * n_vocab, f), n * n_vocab);
	fclose(f);
	return ref;
}

struct ref_case {
	const char		*preset;
	const char		*dtype;
	double			tol;
	enum backend_kv_dtype	kv;
};

/*
 * Logits of a 64-token prompt against the reference; for F32 also the
 * greedy continuation of 32 tokens, position by position.
 */
static void test_reference(void **state)
{
	const struct ref_case *rc = *state;
	/* Greedy tokens must match where the logits do to 1e-5: F32 throughout. */
	bool greedy = !strcmp(rc->dtype, "F32") && rc->kv != BACKEND_KV_F16;
	uint32_t tok[PROMPT_LEN + GEN_LEN], table[8], i, n_gen = greedy ? GEN_LEN : 0;
	struct loaded l;
	char path[1200];
	double *ref, err, margin = INFINITY;
	size_t v;
	float *out;

	if (!have_torch()) {
		print_message("[  SKIP    ] %s cannot import torch: reference not checked "
			      "(apt-get install python3-torch)\n", python());
		skip();
	}
	load_kv(&l, rc->preset, rc->dtype, rc->kv, path, sizeof(path));
	v = l.b->n_vocab;
	for (i = 0; i < 8; i++)
		table[i] = 7 * i + 3;
	out = malloc((PROMPT_LEN + GEN_LEN) * v * sizeof(float));
	tokens_fill(tok, PROMPT_LEN, v, 1);
	run_alone(l.b, tok, PROMPT_LEN, PROMPT_LEN, table, out);
	/* Greedy decode, one token per step, after the prompt. */
	for (i = 0; i + 1 < n_gen; i++) {
		uint32_t pos = PROMPT_LEN + i;
		struct backend_seq s = {
			.block_table = table, .n_blocks = 8, .pos = pos, .tokens = &tok[pos],
			.n_tokens = 1,
		};

		tok[pos] = argmax(out + (size_t)(pos - 1) * v, v);
		assert_int_equal(backend_step(l.b, &s, 1, out + (size_t)pos * v), 0);
	}
	if (n_gen)
		tok[PROMPT_LEN + n_gen - 1] = argmax(out + (size_t)(PROMPT_LEN + n_gen - 2) * v, v);

	ref = reference(path, tok, PROMPT_LEN + (n_gen ? n_gen - 1 : 0), v, l.b->kv_dtype);
	err = rel_err(out, ref, PROMPT_LEN * v);
	print_message("[          ] %s %s, KV %s: relative error %.3g (limit %.0e)\n",
		      rc->preset, rc->dtype, backend_kv_dtype_name(l.b->kv_dtype), err, rc->tol);
	assert_true(err < rc->tol);
	for (i = 0; i < n_gen; i++) {
		uint32_t pos = PROMPT_LEN + i - 1;
		double best = -INFINITY, second = -INFINITY;
		uint32_t j, arg = 0;

		for (j = 0; j < v; j++) {
			double x = ref[pos * v + j];

			if (x > best) {
				second = best;
				best = x;
				arg = j;
			} else if (x > second) {
				second = x;
			}
		}
		if (arg != tok[pos + 1])
			fail_msg("greedy token %u: engine %u, reference %u", i, tok[pos + 1], arg);
		if (best - second < margin)
			margin = best - second;
	}
	if (n_gen)
		print_message("[          ] greedy continuation of %u tokens identical "
			      "(smallest top-2 logit gap %.3g)\n", n_gen, margin);
	free(ref);
	free(out);
	unload(&l);
}

struct hf_case {
	const char	*arch;
	bool		bf16;
};

/*
 * llmq-mkmodel --hf-model: a random Hugging Face checkpoint converted to
 * GGUF gives, in the engine, the logits of an independent float64 forward
 * written in Hugging Face's conventions (rotate-half RoPE, [out, in]
 * weights), so the Q/K permutation, the names, biases and tied heads are
 * checked.  BF16 safetensors are read exactly.
 */
static void test_hf_import(void **state)
{
	const struct hf_case *hc = *state;
	char dir[1100], path[1200], cmd[8000];
	uint32_t tok[48], table[4] = { 5, 1, 9, 2 };
	double *ref, err;
	struct loaded l;
	float *out;
	size_t i, v = 300;
	FILE *f;

	if (!have_torch()) {
		print_message("[  SKIP    ] %s cannot import torch: conversion not checked "
			      "(apt-get install python3-torch)\n", python());
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/hf-%s%s", tmpdir, hc->arch, hc->bf16 ? "-bf16" : "");
	assert_int_equal(mkdir(dir, 0700), 0);
	tokens_fill(tok, 48, v, 5);
	snprintf(path, sizeof(path), "%s/tokens.txt", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (i = 0; i < 48; i++)
		fprintf(f, "%u\n", tok[i]);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s %s/tests/ref/hf_checkpoint.py %s %s %s/logits.f64 %s && "
		 "%s/llmq-mkmodel --hf-model %s --dtype F32 -o %s/m.gguf >/dev/null 2>&1",
		 python(), srcdir, dir, hc->arch, dir, hc->bf16 ? "--bf16" : "",
		 getenv("LLMQ_BIN_DIR"), dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/m.gguf", dir);
	load_path(&l, path);
	assert_int_equal(l.b->n_vocab, v);
	out = malloc(48 * v * sizeof(float));
	ref = malloc(48 * v * sizeof(double));
	run_alone(l.b, tok, 48, 48, table, out);
	snprintf(path, sizeof(path), "%s/logits.f64", dir);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(ref, sizeof(double), 48 * v, f), 48 * v);
	fclose(f);
	err = rel_err(out, ref, 48 * v);
	print_message("[          ] %s from %s safetensors: relative error %.3g (limit 1e-5)\n",
		      hc->arch, hc->bf16 ? "BF16" : "F32", err);
	assert_true(err < 1e-5);
	free(out);
	free(ref);
	unload(&l);
}

#define NSEQ	8
#define EXTRA	3	/* decode tokens after each prompt */

/*
 * 8 sequences of different lengths advance together, each by a different
 * chunk size each step (prefill chunks and single decode tokens mixed), with
 * interleaved block tables: the logits equal those of each run alone.
 */
static void batch_vs_alone(const char *preset, const char *dtype)
{
	static const uint32_t len[NSEQ] = { 1, 5, 16, 17, 33, 40, 64, 3 };
	static const uint32_t chunks[] = { 1, 7, 64, 3, 1 };
	uint32_t *tok[NSEQ], table[NSEQ][8], done[NSEQ] = { 0 }, i, j, step;
	float *alone[NSEQ], *together[NSEQ], *out;
	struct backend_seq s[NSEQ];
	struct loaded l;
	char path[1200];
	size_t v;
	double worst = 0;
	bool exact = true;

	load(&l, preset, dtype, path, sizeof(path));
	v = l.b->n_vocab;
	out = malloc(256 * v * sizeof(float));
	for (i = 0; i < NSEQ; i++) {
		uint32_t n = len[i] + EXTRA;

		tok[i] = malloc(n * sizeof(uint32_t));
		tokens_fill(tok[i], n, v, 10 + i);
		alone[i] = malloc(n * v * sizeof(float));
		together[i] = malloc(n * v * sizeof(float));
		/* Alone: contiguous blocks 0.., prompt at once, then decodes. */
		for (j = 0; j < 8; j++)
			table[i][j] = j;
		run_alone(l.b, tok[i], len[i], len[i], table[i], alone[i]);
		for (j = len[i]; j < n; j++) {
			struct backend_seq d = {
				.block_table = table[i], .n_blocks = 8, .pos = j,
				.tokens = &tok[i][j], .n_tokens = 1,
			};

			assert_int_equal(backend_step(l.b, &d, 1, alone[i] + (size_t)j * v), 0);
		}
		/* Together: interleaved, scattered, descending block ids. */
		for (j = 0; j < 8; j++)
			table[i][j] = N_BLOCKS - 1 - (j * NSEQ + (i * 3) % NSEQ);
	}
	for (step = 0;; step++) {
		uint32_t n = 0, o = 0;

		for (i = 0; i < NSEQ; i++) {
			uint32_t left = len[i] + EXTRA - done[i], c = chunks[(i + step) % 5];

			if (!left)
				continue;
			s[n] = (struct backend_seq){
				.block_table = table[i], .n_blocks = 8, .pos = done[i],
				.tokens = tok[i] + done[i], .n_tokens = c < left ? c : left,
				.logits = BACKEND_LOGITS_ALL,
			};
			n++;
		}
		if (!n)
			break;
		assert_int_equal(backend_step(l.b, s, n, out), 0);
		for (i = 0, j = 0; i < NSEQ; i++) {
			if (done[i] == len[i] + EXTRA)
				continue;
			memcpy(together[i] + (size_t)done[i] * v, out + (size_t)o * v,
			       s[j].n_tokens * v * sizeof(float));
			o += s[j].n_tokens;
			done[i] += s[j].n_tokens;
			j++;
		}
	}
	for (i = 0; i < NSEQ; i++) {
		size_t n = (size_t)(len[i] + EXTRA) * v;
		double e = rel_err_f(together[i], alone[i], n);

		if (memcmp(together[i], alone[i], n * sizeof(float)))
			exact = false;
		if (e > worst)
			worst = e;
		free(tok[i]);
		free(alone[i]);
		free(together[i]);
	}
	print_message("[          ] %s %s: %u steps, worst relative difference %.3g%s\n", preset,
		      dtype, step, worst, exact ? " (bit-identical)" : "");
	assert_true(worst < 1e-6);
	free(out);
	unload(&l);
}

static void test_batch_llama(void **state)
{
	(void)state;
	batch_vs_alone("tiny", "F32");
	batch_vs_alone("tiny", "Q8_0");
}

static void test_batch_qwen2(void **state)
{
	(void)state;
	batch_vs_alone("tiny-qwen2", "F32");
	batch_vs_alone("tiny-qwen2", "BF16");
}

/*
 * A long decode alone, whose attention the backend splits by span over the
 * threads and merges, gives the bits it gives in a step with others (enough
 * tasks: no split).
 */
static void test_long_decode_split(void **state)
{
	enum { LEN = 700, DEC = 4, OTHERS = 3, BLK = 48 };
	struct backend_params p = {
		.n_threads = 2, .max_tokens = 256, .max_context = 1024, .kv_dtype = BACKEND_KV_F16,
	};
	uint32_t tok[LEN + DEC], otok[OTHERS][8], table[1 + OTHERS][BLK], i, j;
	struct backend_seq s[1 + OTHERS];
	float *alone, *together, *out;
	char path[1200], err[256];
	struct loaded l;
	struct backend *b;
	size_t v;

	(void)state;
	load(&l, "tiny", "F16", path, sizeof(path));
	p.kv_bytes = (1 + OTHERS) * BLK * backend_kv_block_bytes(&l.m, 16, BACKEND_KV_F16);
	b = backend_cpu_create(&l.m, &p, err, sizeof(err));
	assert_non_null(b);
	v = b->n_vocab;
	tokens_fill(tok, LEN + DEC, v, 21);
	for (i = 0; i < 1 + OTHERS; i++)
		for (j = 0; j < BLK; j++)
			table[i][j] = (1 + OTHERS) * BLK - 1 - (j * (1 + OTHERS) + i);
	alone = malloc(DEC * v * sizeof(float));
	together = malloc((1 + OTHERS) * v * sizeof(float));
	out = malloc(256 * v * sizeof(float));
	/* The prompt, then DEC decodes alone: 1 tile x 2 KV heads < 2 x 2 threads. */
	assert_int_equal(b->attn_split_steps, 0);
	for (i = 0; i < LEN; i += 256) {
		s[0] = (struct backend_seq){
			.block_table = table[0], .n_blocks = BLK, .pos = i, .tokens = tok + i,
			.n_tokens = LEN - i < 256 ? LEN - i : 256, .logits = BACKEND_LOGITS_NONE,
		};
		assert_int_equal(backend_step(b, s, 1, out), 0);
	}
	for (i = 0; i < DEC; i++) {
		s[0] = (struct backend_seq){
			.block_table = table[0], .n_blocks = BLK, .pos = LEN + i, .tokens = tok + LEN + i,
			.n_tokens = 1,
		};
		assert_int_equal(backend_step(b, s, 1, alone + i * v), 0);
	}
	/* Every layer of every decode split its attention; the prompt did not. */
	assert_int_equal(b->attn_split_steps, (uint64_t)DEC * l.m.hp.n_layer);
	/* The same decodes again (rewriting the same K/V), beside 3 others. */
	for (j = 0; j < OTHERS; j++) {
		tokens_fill(otok[j], 8, v, 30 + j);
		s[0] = (struct backend_seq){
			.block_table = table[1 + j], .n_blocks = BLK, .tokens = otok[j],
			.n_tokens = 4, .logits = BACKEND_LOGITS_NONE,
		};
		assert_int_equal(backend_step(b, s, 1, out), 0);
	}
	for (i = 0; i < DEC; i++) {
		s[0] = (struct backend_seq){
			.block_table = table[0], .n_blocks = BLK, .pos = LEN + i, .tokens = tok + LEN + i,
			.n_tokens = 1,
		};
		for (j = 0; j < OTHERS; j++)
			s[1 + j] = (struct backend_seq){
				.block_table = table[1 + j], .n_blocks = BLK, .pos = 4 + i,
				.tokens = &otok[j][4 + i], .n_tokens = 1,
			};
		assert_int_equal(backend_step(b, s, 1 + OTHERS, together), 0);
		assert_int_equal(b->attn_split_steps, (uint64_t)DEC * l.m.hp.n_layer);
		if (memcmp(together, alone + i * v, v * sizeof(float)))
			fail_msg("decode at %u: split alone differs from unsplit in a batch "
				 "(relative %.3g)", LEN + i,
				 rel_err_f(together, alone + i * v, v));
	}
	free(alone);
	free(together);
	free(out);
	backend_destroy(b);
	unload(&l);
}

/* A 64-token prompt fed in chunks of 1, 7 and 64 gives the same logits. */
static void test_chunks(void **state)
{
	static const uint32_t chunk[] = { 1, 7, 64 };
	uint32_t tok[PROMPT_LEN], table[4] = { 9, 2, 40, 17 }, i;
	float *ref, *out;
	struct loaded l;
	char path[1200];
	size_t v, n;

	(void)state;
	load(&l, "tiny-qwen2", "F16", path, sizeof(path));
	v = l.b->n_vocab;
	n = PROMPT_LEN * v;
	tokens_fill(tok, PROMPT_LEN, v, 5);
	ref = malloc(n * sizeof(float));
	out = malloc(n * sizeof(float));
	run_alone(l.b, tok, PROMPT_LEN, PROMPT_LEN, table, ref);
	for (i = 0; i < 3; i++) {
		double e;

		memset(out, 0, n * sizeof(float));
		run_alone(l.b, tok, PROMPT_LEN, chunk[i], table, out);
		e = rel_err_f(out, ref, n);
		print_message("[          ] chunks of %u: relative difference %.3g\n", chunk[i], e);
		assert_true(e < 1e-6);
	}
	free(ref);
	free(out);
	unload(&l);
}

/* LOGITS_LAST gives the last row of LOGITS_ALL; LOGITS_NONE gives nothing. */
static void test_logits_modes(void **state)
{
	uint32_t tok[20], table[2] = { 5, 6 };
	struct backend_seq s[2];
	float *all, *two;
	struct loaded l;
	char path[1200];
	size_t v;

	(void)state;
	load(&l, "tiny", "F16", path, sizeof(path));
	v = l.b->n_vocab;
	tokens_fill(tok, 20, v, 3);
	all = malloc(20 * v * sizeof(float));
	two = malloc(2 * v * sizeof(float));
	run_alone(l.b, tok, 20, 20, table, all);
	s[0] = (struct backend_seq){ .block_table = table, .n_blocks = 2, .pos = 0,
				     .tokens = tok, .n_tokens = 12,
				     .logits = BACKEND_LOGITS_NONE };
	assert_int_equal(backend_step(l.b, s, 1, NULL), 0);
	s[0] = (struct backend_seq){ .block_table = table, .n_blocks = 2, .pos = 12,
				     .tokens = tok + 12, .n_tokens = 8 };
	assert_int_equal(backend_step(l.b, s, 1, two), 0);
	assert_memory_equal(two, all + 19 * v, v * sizeof(float));
	free(all);
	free(two);
	unload(&l);
}

/* Bad steps are refused with the documented errors, before any work. */
static void test_bad_steps(void **state)
{
	uint32_t tok[300] = { 0 }, table[32] = { 0 };
	struct backend_seq s = { .block_table = table, .n_blocks = 1, .tokens = tok,
				 .n_tokens = 1 };
	struct backend_seq t;
	struct loaded l;
	char path[1200];
	float *out;

	(void)state;
	load(&l, "tiny", "F32", path, sizeof(path));
	out = malloc(300 * l.b->n_vocab * sizeof(float));
	assert_int_equal(backend_step(l.b, &s, 0, out), -EINVAL);
	assert_int_equal(backend_step(l.b, &s, 1, NULL), -EINVAL);	/* logits wanted */
	t = s;
	t.n_tokens = 0;
	assert_int_equal(backend_step(l.b, &t, 1, out), -EINVAL);
	t = s;
	tok[0] = l.b->n_vocab;
	assert_int_equal(backend_step(l.b, &t, 1, out), -EINVAL);
	tok[0] = 0;
	t.n_tokens = 17;	/* one block holds 16 */
	assert_int_equal(backend_step(l.b, &t, 1, out), -EINVAL);
	t = s;
	table[0] = N_BLOCKS;
	assert_int_equal(backend_step(l.b, &t, 1, out), -EINVAL);
	table[0] = 0;
	t.logits = 7;
	assert_int_equal(backend_step(l.b, &t, 1, out), -EINVAL);
	t = s;
	t.n_blocks = 32;
	t.n_tokens = 257;	/* max_tokens 256 */
	assert_int_equal(backend_step(l.b, &t, 1, out), -E2BIG);
	t.n_tokens = 1;
	t.pos = 512;		/* max_context 512 */
	t.n_blocks = 32;
	assert_int_equal(backend_step(l.b, &t, 1, out), -E2BIG);
	free(out);
	unload(&l);
}

/*
 * llmq run --model @model @args refused: status @rc, nothing on stdout, one
 * line on stderr, holding @needle unless that is NULL.
 */
static void run_refused(const char *model, const char *args, int rc, const char *needle)
{
	char cmd[3000], *o, *e;

	snprintf(cmd, sizeof(cmd), "%s/llmq run --model %s %s", getenv("LLMQ_BIN_DIR"), model,
		 args);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o, &e), rc);
	assert_string_equal(o, "");
	assert_int_equal(testenv_lines(e), 1);
	if (needle && !strstr(e, needle))
		fail_msg("llmq run %s: '%s' lacks '%s'", args, e, needle);
	free(o);
	free(e);
}

/*
 * llmq run: greedy output is the same twice and stops at --max-tokens;
 * --verbose reports both rates on stderr, never on stdout; a bad flag
 * exits 2 with one line. Skipped while llmq has no run command.
 */
static void test_cli_run(void **state)
{
	char cmd[3000], path[1200], *o1, *e1, *o2, *e2;
	struct loaded l;
	int rc;

	(void)state;
	load(&l, "tiny", "F16", path, sizeof(path));
	unload(&l);
	snprintf(cmd, sizeof(cmd), "%s/llmq run", getenv("LLMQ_BIN_DIR"));
	rc = testenv_sh(tmpdir, cmd, &o1, &e1);
	if (!strstr(e1, "usage: llmq run"))
		fail_msg("llmq run without a prompt: rc %d, '%s'", rc, e1);
	assert_int_equal(rc, 2);
	free(o1);
	free(e1);

	snprintf(cmd, sizeof(cmd), "%s/llmq run --model %s --temperature 0 --max-tokens 12 "
		 "--threads 2 --verbose 'Once upon a time'", getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o1, &e1), 0);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o2, &e2), 0);
	assert_string_equal(o1, o2);
	assert_non_null(strstr(e1, "prefill: "));
	assert_non_null(strstr(e1, "decode: "));
	assert_null(strstr(o1, "tokens/s"));
	free(o1);
	free(e1);
	free(o2);
	free(e2);

	run_refused(path, "--bogus x", 2, NULL);
	run_refused(path, "--top-k -1 x", 2, NULL);
	run_refused(path, "--min-p 1.5 x", 2, "min_p");
	/* The KV cache's type: a bad name is a flag error; bf16 is CUDA's only. */
	run_refused(path, "--kv-cache-dtype fp8 x", 2, "kv-cache-dtype");
	run_refused(path, "--gpu-weights q4 x", 2, "gpu-weights");
	run_refused(path, "--kv-cache-dtype bf16 x", 1, "KV cache dtype bf16");
	snprintf(cmd, sizeof(cmd), "%s/llmq run --model %s --kv-cache-dtype f32 --temperature 0 "
		 "--max-tokens 12 x", getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o1, &e1), 0);
	assert_true(strlen(o1) > 0);
	free(o1);
	free(e1);

	/* min-p 1 keeps only the likeliest token: at any temperature, greedy. */
	snprintf(cmd, sizeof(cmd), "%s/llmq run --model %s --temperature 0 --max-tokens 12 x",
		 getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o1, &e1), 0);
	snprintf(cmd, sizeof(cmd), "%s/llmq run --model %s --temperature 1.5 --top-k 0 "
		 "--top-p 1 --min-p 1 --seed 7 --max-tokens 12 x", getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(testenv_sh(tmpdir, cmd, &o2, &e2), 0);
	assert_true(strlen(o1) > 0);
	assert_string_equal(o1, o2);
	free(o1);
	free(e1);
	free(o2);
	free(e2);
}

/*
 * The KV cache's element type: names both ways, AUTO by the model's
 * matrices, an F16 cache holding twice the blocks of an F32 one in the same
 * bytes, and BF16 (the CUDA backend's) refused with its reason.
 */
static void test_kv_dtype(void **state)
{
	static const char *const names[] = { "auto", "f32", "f16", "bf16" };
	struct backend_params p = { .n_threads = 1, .max_tokens = 16, .max_context = 64 };
	enum backend_kv_dtype t;
	struct loaded f32, f16;
	struct backend *b;
	char path[1200], err[256];
	size_t bb;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		assert_int_equal(backend_kv_dtype_parse(names[i], &t), 0);
		assert_string_equal(backend_kv_dtype_name(t), names[i]);
	}
	assert_int_equal(backend_kv_dtype_parse("F16", &t), -EINVAL);
	assert_int_equal(backend_kv_dtype_parse("", &t), -EINVAL);
	assert_int_equal(backend_kv_dtype_parse("fp8", &t), -EINVAL);

	load(&f32, "tiny", "F32", path, sizeof(path));
	load(&f16, "tiny", "Q8_0", path, sizeof(path));
	assert_int_equal(f32.b->kv_dtype, BACKEND_KV_F32);
	assert_int_equal(f16.b->kv_dtype, BACKEND_KV_F16);
	assert_int_equal(backend_kv_dtype_cpu(&f32.m, BACKEND_KV_F16), BACKEND_KV_F16);
	bb = backend_kv_block_bytes(&f32.m, 16, BACKEND_KV_F32);
	assert_int_equal(backend_kv_block_bytes(&f32.m, 16, BACKEND_KV_AUTO), bb);
	assert_int_equal(backend_kv_block_bytes(&f16.m, 16, BACKEND_KV_AUTO), bb / 2);
	assert_int_equal(backend_kv_block_bytes(&f32.m, 16, BACKEND_KV_F16), bb / 2);

	p.kv_bytes = 6 * bb;
	p.kv_dtype = BACKEND_KV_F16;
	b = backend_cpu_create(&f32.m, &p, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(b->n_blocks, 12);
	assert_int_equal(b->kv_bytes, 6 * bb);
	backend_destroy(b);
	p.kv_dtype = BACKEND_KV_BF16;
	assert_null(backend_cpu_create(&f32.m, &p, err, sizeof(err)));
	assert_non_null(strstr(err, "KV cache dtype bf16"));
	unload(&f32);
	unload(&f16);
}

/*
 * V beyond a half's range (qwen2's V bias set to 1e6, in the model's
 * private mapping made writable) saturates in an F16 cache: the logits stay
 * finite, as on an F32 cache, instead of turning NaN.
 */
static void test_kv_f16_saturates(void **state)
{
	static const enum backend_kv_dtype kv[] = { BACKEND_KV_F32, BACKEND_KV_F16 };
	uint32_t tok[8], table[8], i, j;
	long pg = sysconf(_SC_PAGESIZE);
	struct loaded l;
	char path[1200];
	float *out, *bv;
	uintptr_t a0;
	size_t n, v;

	(void)state;
	for (i = 0; i < 2; i++) {
		load_kv(&l, "tiny-qwen2", "F32", kv[i], path, sizeof(path));
		v = l.b->n_vocab;
		bv = (float *)l.m.layers[0].bv->data;
		n = l.m.layers[0].bv->ne[0];
		a0 = (uintptr_t)bv & ~(uintptr_t)(pg - 1);
		assert_int_equal(mprotect((void *)a0, (uintptr_t)(bv + n) - a0,
					  PROT_READ | PROT_WRITE), 0);
		for (j = 0; j < n; j++)
			bv[j] = 1e6f;
		for (j = 0; j < 8; j++)
			table[j] = j;
		tokens_fill(tok, 8, v, 3);
		out = malloc(8 * v * sizeof(float));
		run_alone(l.b, tok, 8, 8, table, out);
		for (j = 0; j < 8 * v; j++)
			if (!isfinite(out[j]))
				fail_msg("KV %s: logit %u is %g", backend_kv_dtype_name(kv[i]), j,
					 out[j]);
		free(out);
		unload(&l);
	}
}

/* A checkpoint directory from literal parts; @hdr NULL: no safetensors. */
static void write_ckpt(const char *dir, const char *cfg, const char *hdr, size_t data)
{
	char path[1200];
	uint64_t n;
	FILE *f;

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(cfg, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	unlink(path);
	if (!hdr)
		return;
	f = fopen(path, "w");
	assert_non_null(f);
	n = strlen(hdr);
	fwrite(&n, 8, 1, f);
	fputs(hdr, f);
	while (data--)
		fputc(0, f);
	fclose(f);
}

struct bad_ckpt {
	const char	*cfg;
	const char	*hdr;
	size_t		data;
	const char	*tok;		/* tokenizer.vocab contents */
	const char	*msg;
};

#define CFG(extra) "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, " \
	"\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 4" extra "}"
#define EMB(shape, end) "{\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": " \
	shape ", \"data_offsets\": [0, " end "]}}"

/* Hostile or broken checkpoints: one clear line, status 1, no output file. */
static void test_hf_import_errors(void **state)
{
	static const struct bad_ckpt cases[] = {
		{ "", NULL, 0, NULL, "config.json" },
		{ "{\"model_type\": \"gpt2\"}", NULL, 0, NULL, "model_type gpt2" },
		{ CFG(", \"num_key_value_heads\": 3"), NULL, 0, NULL, "divide" },
		{ CFG(", \"hidden_size\": -1"), NULL, 0, NULL, "hidden_size" },
		{ CFG(", \"rope_scaling\": {\"type\": \"linear\"}"), NULL, 0, NULL, "rope_scaling" },
		{ CFG(""), NULL, 0, NULL, "model.safetensors" },
		{ CFG(""), "[1, 2]", 0, NULL, "not a JSON object" },
		{ CFG(""), EMB("[4, 32]", "513"), 512, NULL, "data_offsets" },
		{ CFG(""), EMB("[4, 32]", "256"), 512, NULL, "data_offsets" },
		{ CFG(""), EMB("[4, 32]", "512"), 512, NULL, "has no model.layers.0" },
		{ CFG(""), EMB("[4, 16]", "256"), 256, NULL, "shape" },
		{ CFG(""), EMB("[4, 32]", "512"), 512, "<unk>\n", "piece<TAB>score" },
		{ CFG(""), EMB("[4, 32]", "512"), 512, "<unk>\tlots\n", "bad score" },
	};
	char dir[1100], cmd[4000], path[1200];
	char *out, *err;
	size_t i;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/hf-bad", tmpdir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_ckpt *c = &cases[i];

		write_ckpt(dir, c->cfg, c->hdr, c->data);
		snprintf(path, sizeof(path), "%s/tokenizer.vocab", dir);
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(c->tok ? c->tok : "<unk>\t0\n<s>\t0\n</s>\t0\n\xe2\x96\x81\t-1\n", f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "%s/llmq-mkmodel --hf-model %s -o %s/out.gguf",
			 getenv("LLMQ_BIN_DIR"), dir, dir);
		if (!c->tok)
			snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " --dtype F32");
		assert_int_equal(testenv_sh(tmpdir, cmd, &out, &err), 1);
		if (!strstr(err, c->msg) || testenv_lines(err) != 1)
			fail_msg("case %zu: wanted one line with '%s', got '%s'", i, c->msg, err);
		assert_string_equal(out, "");
		snprintf(path, sizeof(path), "%s/out.gguf", dir);
		assert_int_not_equal(access(path, F_OK), 0);
		free(out);
		free(err);
	}
}

static int teardown(void **state)
{
	char cmd[1200];

	(void)state;
	reference_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) ? -1 : 0;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static struct hf_case hf_cases[] = {
	{ "llama", false }, { "qwen2", true },
};

/*
 * The reference rounds K and V as the cache does, so an F16 cache is held to
 * the same limits (unrounded, it costs about 2e-4 relative on these models).
 * What remains, 2e-6 to 4e-5, is halves that round the other way because the
 * float and float64 values beside a rounding boundary differ: one half-ulp
 * (5e-4 relative) in a K or V element now and then. The last two cases name
 * the cache's type instead of taking the default; an F32 model on an F16
 * cache is held to 1e-4 for that reason.
 */
#define REF(p, d, t) { .preset = p, .dtype = d, .tol = t }
#define REF_KV(p, d, t, k) { .preset = p, .dtype = d, .tol = t, .kv = k }
static struct ref_case refs[] = {
	REF("tiny", "F32", 1e-5), REF("tiny-qwen2", "F32", 1e-5),
	REF("tiny", "F16", 1e-2), REF("tiny-qwen2", "F16", 1e-2),
	REF("tiny", "BF16", 1e-2), REF("tiny-qwen2", "BF16", 1e-2),
	REF("tiny", "Q8_0", 1e-2), REF("tiny-qwen2", "Q8_0", 1e-2),
	REF("tiny", "Q4_0", 5e-2), REF("tiny-qwen2", "Q4_K", 5e-2),
	REF("tiny", "Q5_K", 1e-3), REF("tiny-qwen2", "Q6_K", 1e-3),
	REF("tiny", "Q4_K_M", 1e-3), REF("tiny-qwen2", "Q5_K_M", 1e-3),
	REF("tiny", "Q4_1", 1e-3), REF("tiny-qwen2", "Q5_0", 1e-3), REF("tiny", "Q5_1", 1e-3),
	/* micro's rows of 32 and 64: Q4_K_M falls back to Q5_0 and Q8_0 */
	REF("micro", "Q4_K_M", 1e-3),
	REF_KV("tiny", "F32", 1e-4, BACKEND_KV_F16),
	REF_KV("tiny-qwen2", "F16", 1e-5, BACKEND_KV_F32),
};

/*
 * What the forward step computes with (backend_check_model(), shared by the
 * CPU and CUDA backends): a model that breaks one rule is refused with its
 * reason by backend_cpu_create(), and passes again once mended.
 */
static void test_check_model(void **state)
{
	struct backend_params p = { .n_threads = 1, .max_tokens = 16, .max_context = 64 };
	struct loaded l;
	const struct gguf_tensor *bk;
	struct gguf_tensor *norm;
	char path[PATH_MAX], err[256];
	struct backend *b;
	uint32_t kv;

	(void)state;
	load(&l, "tiny-qwen2", "F32", path, sizeof(path));
	p.kv_bytes = 4 * backend_kv_block_bytes(&l.m, 16, BACKEND_KV_AUTO);
	assert_int_equal(backend_check_model(&l.m, err, sizeof(err)), 0);

	kv = l.m.hp.n_head_kv;
	l.m.hp.n_head_kv = l.m.hp.n_head + 1;
	assert_null(backend_cpu_create(&l.m, &p, err, sizeof(err)));
	assert_non_null(strstr(err, "kv heads"));
	l.m.hp.n_head_kv = kv;

	norm = (struct gguf_tensor *)l.m.layers[1].ffn_norm;
	norm->type = GGML_TYPE_F16;
	assert_int_equal(backend_check_model(&l.m, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "layer 1: norms and biases must be F32");
	norm->type = GGML_TYPE_F32;

	bk = l.m.layers[0].bk;
	assert_non_null(bk);
	l.m.layers[0].bk = NULL;
	assert_null(backend_cpu_create(&l.m, &p, err, sizeof(err)));
	assert_string_equal(err, "layer 0: some QKV biases missing");
	l.m.layers[0].bk = bk;

	b = backend_cpu_create(&l.m, &p, err, sizeof(err));
	assert_non_null(b);
	backend_destroy(b);
	unload(&l);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define R(i) cmocka_unit_test_prestate(test_reference, &refs[i])
		R(0), R(1), R(2), R(3), R(4), R(5), R(6), R(7), R(8), R(9), R(10), R(11),
		R(12), R(13), R(14), R(15), R(16), R(17), R(18), R(19),
#undef R
		cmocka_unit_test_prestate(test_hf_import, &hf_cases[0]),
		cmocka_unit_test_prestate(test_hf_import, &hf_cases[1]),
		cmocka_unit_test(test_hf_import_errors),
		cmocka_unit_test(test_batch_llama),
		cmocka_unit_test(test_batch_qwen2),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_long_decode_split),
		cmocka_unit_test(test_logits_modes),
		cmocka_unit_test(test_bad_steps),
		cmocka_unit_test(test_check_model),
		cmocka_unit_test(test_kv_dtype),
		cmocka_unit_test(test_kv_f16_saturates),
		cmocka_unit_test(test_cli_run),
	};
	(void)argc;
	if (testenv_bin_dir(argv[0]))
		return 1;
	if (!getcwd(srcdir, sizeof(srcdir)))
		return 1;
	return cmocka_run_group_tests_name("engine", tests, setup, teardown);
}
