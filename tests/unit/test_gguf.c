// SPDX-License-Identifier: GPL-2.0
/*
 * GGUF and element types: every metadata type and every dtype through the
 * writer and the reader; dequantisation bit for bit against an independent
 * numpy reference; the file read back by an independent parser
 * (@huggingface/gguf); and hostile files (truncated at every offset, absurd
 * dims, offsets past the end, overflowing sizes, unknown types, duplicate
 * keys) refused with a message that names the culprit; and llmq's
 * tokenize and detokenize commands on a model file.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "dtype.h"
#include "gguf.h"
#include "model.h"
#include "rng.h"
#include "testenv.h"

static char tmpdir[] = "/tmp/llmq-gguf-XXXXXX";
static char srcdir[1024];

/* A fixed stream: these tests want the same blocks every run. */
static uint64_t rs[4] = { 88172645463325252ULL, 1, 2, 3 };

static uint64_t xr(void)
{
	return rng_next(rs);
}

static float frand(void)
{
	return (float)((double)(xr() >> 11) / (double)(1ULL << 53) * 2.0 - 1.0);
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	void *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- element types ------------------------------------------------------- */

static void test_fp16_all(void **state)
{
	uint32_t h;

	(void)state;
	for (h = 0; h < 65536; h++) {
		float f = fp16_to_fp32((uint16_t)h);

		if (isnan(f))
			assert_true(isnan(fp16_to_fp32(fp32_to_fp16(f))));
		else
			assert_int_equal(fp32_to_fp16(f), h);
	}
	/* Rounding: halfway cases go to even; overflow to infinity. */
	assert_int_equal(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);
	assert_int_equal(fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);
	assert_int_equal(fp32_to_fp16(65520.0f), 0x7c00);
	assert_int_equal(fp32_to_fp16(65519.0f), 0x7bff);
	assert_int_equal(fp32_to_fp16(5.9604645e-8f), 0x0001);
	assert_int_equal(fp32_to_fp16(2.9802322e-8f), 0x0000);	/* tie to even: 0 */
	assert_int_equal(fp32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(fp32_to_bf16(1.00390625f), 0x3f80);	/* tie to even */
	assert_int_equal(fp32_to_bf16(1.01171875f), 0x3f82);
}

static void test_dtype_sizes(void **state)
{
	uint64_t b;

	(void)state;
	assert_int_equal(dtype_row_bytes(GGML_TYPE_Q8_0, 64, &b), 0);
	assert_int_equal(b, 68);
	assert_int_equal(dtype_row_bytes(GGML_TYPE_Q4_K, 512, &b), 0);
	assert_int_equal(b, 288);
	assert_int_equal(dtype_row_bytes(GGML_TYPE_Q4_0, 33, &b), -EINVAL);
	assert_int_equal(dtype_row_bytes(GGML_TYPE_F32, UINT64_MAX / 2, &b), -EOVERFLOW);
	assert_int_equal(dtype_row_bytes(5, 32, &b), -EINVAL);		/* 4, 5: removed types */
	assert_int_equal(dtype_row_bytes(GGML_TYPE_COUNT + 7, 32, &b), -EINVAL);
	assert_null(dtype_info(99));
	assert_int_equal(dtype_row_bytes(GGML_TYPE_Q5_K, 512, &b), 0);
	assert_int_equal(b, 352);
	assert_int_equal(dtype_row_bytes(GGML_TYPE_Q6_K, 256, &b), 0);
	assert_int_equal(b, 210);
	assert_true(dtype_info(GGML_TYPE_Q6_K)->supported);
	assert_false(dtype_info(GGML_TYPE_Q3_K)->supported);
}

/* Quantising then dequantising stays within each format's step. */
static void test_quant_roundtrip(void **state)
{
	static const uint32_t types[] = { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
					  GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
					  GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_Q4_1,
					  GGML_TYPE_Q5_0, GGML_TYPE_Q5_1 };
	/* about half a step of each format on values in [-1, 1] */
	static const float tol[] = { 0, 1e-3f, 8e-3f, 1.0f / 127, 1.0f / 7, 0.1f, 0.05f, 0.04f,
				     0.07f, 1.0f / 15, 0.04f };
	float x[1024], y[1024];
	uint8_t buf[4096];
	unsigned int t, i;

	(void)state;
	for (i = 0; i < 1024; i++)
		x[i] = frand();
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		float worst = 0;

		assert_int_equal(quantize(types[t], x, buf, 1024), 0);
		assert_int_equal(dequantize(types[t], buf, y, 1024), 0);
		for (i = 0; i < 1024; i++)
			worst = fmaxf(worst, fabsf(x[i] - y[i]));
		if (worst > tol[t])
			fail_msg("%s: worst error %g > %g", dtype_info(types[t])->name, worst, tol[t]);
	}
	assert_int_equal(quantize(GGML_TYPE_Q3_K, x, buf, 256), -EINVAL);
	assert_int_equal(quantize(GGML_TYPE_Q6_K, x, buf, 255), -EINVAL);
	assert_int_equal(dequantize(GGML_TYPE_Q5_K, buf, y, 128), -EINVAL);
}

/* Random finite blocks, dequantised here and by numpy: identical bits. */
static void test_dequant_vs_numpy(void **state)
{
	static const struct { uint32_t type; const char *name; } t[] = {
		{ GGML_TYPE_F16, "F16" }, { GGML_TYPE_BF16, "BF16" }, { GGML_TYPE_Q8_0, "Q8_0" },
		{ GGML_TYPE_Q4_0, "Q4_0" }, { GGML_TYPE_Q4_K, "Q4_K" }, { GGML_TYPE_Q5_K, "Q5_K" },
		{ GGML_TYPE_Q6_K, "Q6_K" }, { GGML_TYPE_Q4_1, "Q4_1" }, { GGML_TYPE_Q5_0, "Q5_0" },
		{ GGML_TYPE_Q5_1, "Q5_1" },
	};
	const uint64_t n = 256 * 64;
	char in[1200], out[1200], cmd[4096];
	uint64_t bytes, i, k;
	float *ours = malloc(n * 4), *ref;
	uint8_t *raw;
	unsigned int j;
	size_t len;
	FILE *f;

	(void)state;
	if (access("/usr/bin/python3", X_OK) ||
	    system("/usr/bin/python3 -c 'import numpy' 2>/dev/null"))
		skip();		/* CI installs python3-numpy; a bare machine may not */
	for (j = 0; j < sizeof(t) / sizeof(t[0]); j++) {
		assert_int_equal(dtype_row_bytes(t[j].type, n, &bytes), 0);
		raw = malloc(bytes);
		for (i = 0; i < bytes; i++)
			raw[i] = (uint8_t)xr();
		/* Half and bfloat16 fields finite, so NaN payloads do not enter. */
		for (i = 0; i < bytes; i += 2) {
			bool half = t[j].type == GGML_TYPE_F16 || t[j].type == GGML_TYPE_BF16 ||
				    (t[j].type == GGML_TYPE_Q8_0 && i % 34 == 0) ||
				    (t[j].type == GGML_TYPE_Q4_0 && i % 18 == 0) ||
				    (t[j].type == GGML_TYPE_Q4_K && (i % 144 == 0 || i % 144 == 2)) ||
				    (t[j].type == GGML_TYPE_Q5_K && (i % 176 == 0 || i % 176 == 2)) ||
				    (t[j].type == GGML_TYPE_Q6_K && i % 210 == 208) ||
				    (t[j].type == GGML_TYPE_Q4_1 && (i % 20 == 0 || i % 20 == 2)) ||
				    (t[j].type == GGML_TYPE_Q5_0 && i % 22 == 0) ||
				    (t[j].type == GGML_TYPE_Q5_1 && (i % 24 == 0 || i % 24 == 2));

			if (half)
				raw[i + 1] &= t[j].type == GGML_TYPE_BF16 ? 0xbf : 0xbb;
		}
		path_of(in, sizeof(in), "raw.bin");
		path_of(out, sizeof(out), "ref.bin");
		f = fopen(in, "wb");
		fwrite(raw, 1, bytes, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/gguf/dequant_ref.py %s %s %s",
			 srcdir, t[j].name, in, out);
		assert_int_equal(system(cmd), 0);
		ref = slurp(out, &len);
		assert_int_equal(len, n * 4);
		assert_int_equal(dequantize(t[j].type, raw, ours, n), 0);
		for (k = 0; k < n; k++)
			if (memcmp(&ours[k], &ref[k], 4))
				fail_msg("%s element %llu: %a != numpy %a", t[j].name,
					 (unsigned long long)k, ours[k], ref[k]);
		free(raw);
		free(ref);
	}
	free(ours);
}

/* ---- writer and reader ---------------------------------------------------- */

static void write_all_types(const char *path, unsigned int threads)
{
	static const uint8_t u8s[] = { 1, 2, 255 };
	static const int32_t i32s[] = { -1, 0, 7 };
	static const float f32s[] = { 0.5f, -2.0f };
	static const uint8_t bools[] = { 1, 0, 1 };
	static const char *const strs[] = { "alpha", "", "\xe6\x97\xa5\xe6\x9c\xac" };
	struct gguf_writer *w = gguf_writer_new(64);
	uint64_t ne2[2] = { 32, 3 }, ne3[3] = { 64, 2, 2 }, ne1 = 7;
	static float m[96], v[7], c[256];
	static uint8_t q[8 * 34];
	unsigned int i;

	for (i = 0; i < 96; i++)
		m[i] = (float)i / 8;
	for (i = 0; i < 7; i++)
		v[i] = -(float)i;
	for (i = 0; i < 256; i++)
		c[i] = 3.0f * sinf(0.37f * (float)i);	/* the same in every file */
	quantize(GGML_TYPE_Q8_0, c, q, 256);
	assert_non_null(w);
	gguf_add_u32(w, "t.u32", 4000000000u);
	gguf_add_i32(w, "t.i32", -12345);
	gguf_add_f32(w, "t.f32", 3.25f);
	gguf_add_bool(w, "t.bool", true);
	gguf_add_str(w, "t.str", "hello gguf");
	gguf_add_arr(w, "t.arr.u8", GGUF_TYPE_UINT8, u8s, 3);
	gguf_add_arr(w, "t.arr.i32", GGUF_TYPE_INT32, i32s, 3);
	gguf_add_arr(w, "t.arr.f32", GGUF_TYPE_FLOAT32, f32s, 2);
	gguf_add_arr(w, "t.arr.bool", GGUF_TYPE_BOOL, bools, 3);
	gguf_add_str_arr(w, "t.arr.str", strs, NULL, 3);
	gguf_add_tensor(w, "m", GGML_TYPE_F32, 2, ne2, m);
	gguf_add_tensor(w, "v", GGML_TYPE_F32, 1, &ne1, v);
	gguf_add_tensor(w, "q", GGML_TYPE_Q8_0, 3, ne3, q);
	gguf_writer_set_threads(w, threads);
	assert_int_equal(gguf_write_file(w, path), 0);
	gguf_writer_free(w);
}

static void test_all_types_roundtrip(void **state)
{
	const struct gguf_tensor *t;
	const struct gguf_kv *kv;
	struct gguf_str s;
	struct gguf g;
	char path[1200];
	uint32_t u;
	float f;
	bool b;
	int32_t i32;

	(void)state;
	path_of(path, sizeof(path), "types.gguf");
	write_all_types(path, 1);
	assert_int_equal(gguf_open(&g, path), 0);
	assert_int_equal(g.version, 3);
	assert_int_equal(g.alignment, 64);
	assert_int_equal(gguf_get_u32(&g, "t.u32", &u), 0);
	assert_int_equal(u, 4000000000u);
	assert_int_equal(gguf_get_u32(&g, "t.i32", &u), -ERANGE);
	kv = gguf_find(&g, "t.i32");
	memcpy(&i32, kv->data, 4);
	assert_int_equal(i32, -12345);
	assert_int_equal(gguf_get_f32(&g, "t.f32", &f), 0);
	assert_true(f == 3.25f);
	assert_int_equal(gguf_get_bool(&g, "t.bool", &b), 0);
	assert_true(b);
	assert_int_equal(gguf_get_str(&g, "t.str", &s), 0);
	assert_true(gguf_str_eq(s, "hello gguf"));
	assert_int_equal(gguf_get_arr(&g, "t.arr.str", GGUF_TYPE_STRING, &kv), 0);
	assert_int_equal(kv->n, 3);
	assert_true(gguf_str_eq(kv->strs[0], "alpha"));
	assert_true(gguf_str_eq(kv->strs[1], ""));
	assert_true(gguf_str_eq(kv->strs[2], "\xe6\x97\xa5\xe6\x9c\xac"));
	assert_int_equal(gguf_get_arr(&g, "t.arr.i32", GGUF_TYPE_INT32, &kv), 0);
	memcpy(&i32, kv->data + 8, 4);
	assert_int_equal(i32, 7);
	assert_int_equal(gguf_get_arr(&g, "t.arr.i32", GGUF_TYPE_UINT8, &kv), -EINVAL);
	assert_int_equal(gguf_get_u32(&g, "nope", &u), -ENOENT);
	t = gguf_find_tensor(&g, "m");
	assert_non_null(t);
	assert_int_equal(t->ne[0], 32);
	assert_int_equal(t->ne[1], 3);
	assert_int_equal(((const float *)t->data)[95], 95.0f / 8);
	assert_int_equal((uintptr_t)t->data % 64, 0);
	t = gguf_find_tensor(&g, "q");
	assert_int_equal(t->n_dims, 3);
	assert_int_equal(t->nelem, 256);
	assert_int_equal(t->size, 8 * 34);
	gguf_close(&g);
}

/* llmq-mkmodel @args -o @path, quietly: its exit status. */
static int mkmodel(const char *args, const char *path)
{
	char cmd[4096];
	int ret;

	snprintf(cmd, sizeof(cmd), "%s/llmq-mkmodel %s -o %s 2>/dev/null", getenv("LLMQ_BIN_DIR"),
		 args, path);
	ret = system(cmd);
	return WIFEXITED(ret) ? WEXITSTATUS(ret) : -1;
}

/* Every dtype through mkmodel, the reader and the model checks. */
static void test_mkmodel_every_dtype(void **state)
{
	static const char *const dtypes[] = { "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
					      "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K" };
	char path[1200], args[64];
	struct model m;
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
		path_of(path, sizeof(path), "tiny.gguf");
		snprintf(args, sizeof(args), "--preset tiny --dtype %s --seed 3", dtypes[i]);
		assert_int_equal(mkmodel(args, path), 0);
		if (model_load(&m, path))
			fail_msg("%s: %s", dtypes[i], m.err);
		assert_int_equal(m.hp.n_layer, 2);
		assert_int_equal(m.hp.n_embd, 256);
		assert_int_equal(m.hp.n_head_kv, 2);
		assert_int_equal(m.hp.head_dim, 64);
		assert_int_equal(m.hp.n_vocab, 260);
		assert_false(m.hp.tied_embeddings);
		assert_string_equal(dtype_info(m.layers[1].w_down->type)->name, dtypes[i]);
		assert_int_equal(m.layers[0].attn_norm->type, GGML_TYPE_F32);
		assert_int_equal(m.vocab.model, TOK_MODEL_SPM);
		assert_int_equal(m.vocab.bos, 1);
		assert_true(m.vocab.add_bos);
		model_free(&m);
	}
	/* llama.cpp's Q4_K_M: Q6_K for the head and, of 2 layers, the last's attn_v, ffn_down */
	path_of(path, sizeof(path), "tiny.gguf");
	assert_int_equal(mkmodel("--preset tiny --dtype q4_k_m", path), 0);
	if (model_load(&m, path))
		fail_msg("Q4_K_M: %s", m.err);
	assert_int_equal(m.tok_embd->type, GGML_TYPE_Q4_K);
	assert_int_equal(m.output->type, GGML_TYPE_Q6_K);
	assert_int_equal(m.layers[0].wv->type, GGML_TYPE_Q4_K);
	assert_int_equal(m.layers[0].w_down->type, GGML_TYPE_Q4_K);
	assert_int_equal(m.layers[1].wv->type, GGML_TYPE_Q6_K);
	assert_int_equal(m.layers[1].w_down->type, GGML_TYPE_Q6_K);
	assert_int_equal(m.layers[1].wq->type, GGML_TYPE_Q4_K);
	model_free(&m);
	assert_int_equal(mkmodel("--preset tiny --dtype Q3_K", path), 2);
	/* micro's rows of 32 and 64 are not blocks of 256: llama.cpp's fallbacks */
	assert_int_equal(mkmodel("--preset micro --dtype Q4_K_M", path), 0);
	if (model_load(&m, path))
		fail_msg("micro Q4_K_M: %s", m.err);
	assert_int_equal(m.tok_embd->type, GGML_TYPE_Q8_0);	/* the tied head: Q6_K's */
	assert_int_equal(m.layers[0].wq->type, GGML_TYPE_Q5_0);
	assert_int_equal(m.layers[0].wv->type, GGML_TYPE_Q8_0);
	assert_int_equal(m.layers[0].w_down->type, GGML_TYPE_Q8_0);
	model_free(&m);
	/* a plain K type does not fall back: it says why it cannot */
	assert_int_equal(mkmodel("--preset micro --dtype Q4_K", path), 1);

	path_of(path, sizeof(path), "tq.gguf");
	assert_int_equal(mkmodel("--preset tiny-qwen2", path), 0);
	assert_int_equal(model_load(&m, path), 0);
	assert_int_equal(m.hp.arch, ARCH_QWEN2);
	assert_int_equal(m.hp.rope, ROPE_NEOX);
	assert_true(m.hp.tied_embeddings);
	assert_non_null(m.layers[0].bq);
	model_free(&m);
}

/* @huggingface/gguf, which nobody here wrote, reads what we write. */
static void test_independent_parser(void **state)
{
	char path[1200], cmd[8192], out[1200];
	size_t len;
	char *json;

	(void)state;
	snprintf(cmd, sizeof(cmd), "%s/tests/gguf/node_modules/@huggingface/gguf", srcdir);
	if (access(cmd, R_OK))
		skip();		/* make check installs it; a bare build may not have */
	path_of(path, sizeof(path), "tiny-q4k.gguf");
	path_of(out, sizeof(out), "dump.json");
	assert_int_equal(mkmodel("--preset tiny --dtype Q4_K", path), 0);
	snprintf(cmd, sizeof(cmd), "node %s/tests/gguf/dump.mjs %s > %s", srcdir, path, out);
	assert_int_equal(system(cmd), 0);
	json = slurp(out, &len);
	json = realloc(json, len + 1);
	json[len] = '\0';
	assert_non_null(strstr(json, "\"general.architecture\":\"llama\""));
	assert_non_null(strstr(json, "\"llama.block_count\":2"));
	assert_non_null(strstr(json, "\"tokenizer.ggml.model\":\"llama\""));
	assert_non_null(strstr(json, "\"tokenizer.ggml.tokens\":{\"n\":260,"));
	assert_non_null(strstr(json, "{\"name\":\"token_embd.weight\",\"shape\":[\"256\",\"260\"],"
				     "\"dtype\":12,\"offset\":\"0\"}"));
	assert_non_null(strstr(json, "{\"name\":\"blk.1.ffn_down.weight\",\"shape\":[\"768\","
				     "\"256\"],\"dtype\":12,"));
	assert_non_null(strstr(json, "\"tensor_count\":\"21\""));
	free(json);
}

/* llmq tokenize and detokenize round-trip through a model's tokenizer. */
static void test_cli_tokenize(void **state)
{
	char path[1200], cmd[8192], out[4096];
	FILE *p;
	size_t n;

	(void)state;
	path_of(path, sizeof(path), "cli.gguf");
	assert_int_equal(mkmodel("--preset tiny", path), 0);
	snprintf(cmd, sizeof(cmd), "%s/llmq detokenize --model %s $(%s/llmq tokenize --model %s "
		 "'h\xc3\xa9llo  w\xf0\x9f\x99\x82')", getenv("LLMQ_BIN_DIR"), path,
		 getenv("LLMQ_BIN_DIR"), path);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	/* BOS shown as text; the space prefix decodes as the space it was. */
	assert_string_equal(out, "<s> h\xc3\xa9llo  w\xf0\x9f\x99\x82\n");
	snprintf(cmd, sizeof(cmd), "%s/llmq detokenize --skip-special --model %s "
		 "$(%s/llmq tokenize --model %s 'h\xc3\xa9llo')", getenv("LLMQ_BIN_DIR"), path,
		 getenv("LLMQ_BIN_DIR"), path);
	p = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, "h\xc3\xa9llo\n");
	snprintf(cmd, sizeof(cmd), "%s/llmq tokenize --model %s --no-special 'A'",
		 getenv("LLMQ_BIN_DIR"), path);
	p = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	/* The space prefix, then 'A' by byte fallback (0x41 + 3). */
	assert_string_equal(out, "259 68\n");
	snprintf(cmd, sizeof(cmd), "%s/llmq detokenize --model %s 260 2>/dev/null",
		 getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 1);
	snprintf(cmd, sizeof(cmd), "%s/llmq detokenize --model %s x 2>/dev/null",
		 getenv("LLMQ_BIN_DIR"), path);
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
	snprintf(cmd, sizeof(cmd), "%s/llmq tokenize 'no model' 2>/dev/null",
		 getenv("LLMQ_BIN_DIR"));
	assert_int_equal(WEXITSTATUS(system(cmd)), 2);
}

static int fill_fail(void *arg, void *dst, uint64_t bytes)
{
	(void)arg;
	memset(dst, 0, bytes);
	return -EIO;
}

/*
 * Tensors filled on 4 threads give the file one thread gives, byte for
 * byte; a fill that fails among them fails the write, leaving no file.
 */
static void test_write_threads(void **state)
{
	char one[1200], four[1200];
	uint8_t *a, *b;
	size_t la, lb;
	struct gguf_writer *w;
	uint64_t ne = 64;
	float x[64] = { 1 };

	(void)state;
	path_of(one, sizeof(one), "one.gguf");
	path_of(four, sizeof(four), "four.gguf");
	write_all_types(one, 1);
	write_all_types(four, 4);
	a = slurp(one, &la);
	b = slurp(four, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(a);
	free(b);

	w = gguf_writer_new(0);
	gguf_add_tensor(w, "a", GGML_TYPE_F32, 1, &ne, x);
	gguf_add_tensor_fill(w, "b", GGML_TYPE_F32, 1, &ne, fill_fail, NULL);
	gguf_add_tensor(w, "c", GGML_TYPE_F32, 1, &ne, x);
	gguf_writer_set_threads(w, 3);
	unlink(four);
	assert_int_equal(gguf_write_file(w, four), -EIO);
	assert_int_equal(access(four, F_OK), -1);
	gguf_writer_free(w);
}

/* ---- hostile files ---------------------------------------------------------- */

/* A whole small model in memory: 1 layer of 32, a 16-token vocabulary. */
static uint8_t *small_model(size_t *len)
{
	static const char *const toks[16] = { "<unk>", "<s>", "</s>", "a", "b", "c", "d", "e",
					      "f", "g", "h", "i", "j", "k", "l", "m" };
	static float data[64 * 64];
	float scores[16] = { 0 };
	int32_t types[16];
	struct gguf_writer *w = gguf_writer_new(0);
	char path[1200];
	unsigned int i;
	uint64_t e[2];

	for (i = 0; i < 16; i++)
		types[i] = i < 3 ? 3 : 1;
	for (i = 0; i < 64 * 64; i++)
		data[i] = 1.0f / (float)(i + 1);
	gguf_add_str(w, "general.architecture", "llama");
	gguf_add_u32(w, "llama.embedding_length", 32);
	gguf_add_u32(w, "llama.block_count", 1);
	gguf_add_u32(w, "llama.feed_forward_length", 64);
	gguf_add_u32(w, "llama.attention.head_count", 2);
	gguf_add_u32(w, "llama.attention.head_count_kv", 1);
	gguf_add_str(w, "tokenizer.ggml.model", "llama");
	gguf_add_str_arr(w, "tokenizer.ggml.tokens", toks, NULL, 16);
	gguf_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 16);
	gguf_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 16);
	gguf_add_bool(w, "tokenizer.ggml.add_bos_token", true);
#define T(n, a, b) do { e[0] = a; e[1] = b; gguf_add_tensor(w, n, GGML_TYPE_F32, b ? 2 : 1, e, data); } while (0)
	T("token_embd.weight", 32, 16);
	T("blk.0.attn_norm.weight", 32, 0);
	T("blk.0.attn_q.weight", 32, 32);
	T("blk.0.attn_k.weight", 32, 16);
	T("blk.0.attn_v.weight", 32, 16);
	T("blk.0.attn_output.weight", 32, 32);
	T("blk.0.ffn_norm.weight", 32, 0);
	T("blk.0.ffn_gate.weight", 32, 64);
	T("blk.0.ffn_up.weight", 32, 64);
	T("blk.0.ffn_down.weight", 64, 32);
	T("output_norm.weight", 32, 0);
#undef T
	path_of(path, sizeof(path), "small.gguf");
	assert_int_equal(gguf_write_file(w, path), 0);
	gguf_writer_free(w);
	return slurp(path, len);
}

/* Parse an exact-size heap copy, so ASan sees any read past the end. */
static int parse_copy(const uint8_t *img, size_t len, struct model *m)
{
	uint8_t *c = malloc(len ? len : 1);
	int err;

	memcpy(c, img, len);
	err = model_parse(m, c, len);
	if (!err)
		model_free(m);
	free(c);
	return err;
}

static void test_truncated_everywhere(void **state)
{
	struct model m;
	size_t len, cut;
	uint8_t *img = small_model(&len);

	(void)state;
	assert_int_equal(parse_copy(img, len, &m), 0);
	for (cut = 0; cut < len; cut++) {
		int err = parse_copy(img, cut, &m);

		if (!err)
			fail_msg("truncated at %zu of %zu: accepted", cut, len);
		if (!m.err[0])
			fail_msg("truncated at %zu: no message", cut);
	}
	free(img);
}

/* Byte offset of a key's or name's first occurrence (as a length-prefixed string). */
static size_t find(const uint8_t *img, size_t len, const char *s)
{
	size_t n = strlen(s), i;

	for (i = 8; i + n <= len; i++)
		if (!memcmp(img + i, s, n) && !memcmp(img + i - 8, &(uint64_t){ n }, 8))
			return i;
	fail_msg("'%s' not in the image", s);
	return 0;
}

static void expect(const uint8_t *img, size_t len, int want, const char *words)
{
	struct model m;
	int err = parse_copy(img, len, &m);

	if (err != want || !strstr(m.err, words))
		fail_msg("got %d '%s', want %d with '%s'", err, m.err, want, words);
}

static void test_hostile_fields(void **state)
{
	size_t len, o;
	uint8_t *img = small_model(&len), *c = malloc(len);
	uint64_t v64;
	uint32_t v32;

	(void)state;
#define FRESH() memcpy(c, img, len)
	FRESH();
	c[0] = 'X';
	expect(c, len, -EINVAL, "not a GGUF file");
	FRESH();
	v32 = 4;
	memcpy(c + 4, &v32, 4);
	expect(c, len, -EPROTONOSUPPORT, "version 4");
	FRESH();
	v64 = 1ULL << 60;					/* n_kv */
	memcpy(c + 16, &v64, 8);
	expect(c, len, -EBADMSG, "metadata keys cannot fit");
	FRESH();
	memcpy(c + 8, &v64, 8);					/* n_tensors */
	expect(c, len, -EBADMSG, "tensors cannot fit");
	/* A string length that runs past the end, and one that wraps. */
	FRESH();
	o = find(c, len, "llama.block_count");
	v64 = UINT64_MAX - 3;
	memcpy(c + o - 8, &v64, 8);
	expect(c, len, -EBADMSG, "runs past the end");
	/* Unknown value type and nested array type. */
	FRESH();
	o = find(c, len, "llama.block_count") + strlen("llama.block_count");
	v32 = 77;
	memcpy(c + o, &v32, 4);
	expect(c, len, -EINVAL, "key 'llama.block_count': unknown value type 77");
	FRESH();
	o = find(c, len, "tokenizer.ggml.scores") + strlen("tokenizer.ggml.scores") + 4;
	v32 = GGUF_TYPE_ARRAY;
	memcpy(c + o, &v32, 4);
	expect(c, len, -EINVAL, "unsupported array element type");
	/* An array count that overflows its byte size. */
	FRESH();
	v64 = UINT64_MAX / 2;
	memcpy(c + o + 4, &v64, 8);
	expect(c, len, -EBADMSG, "tokenizer.ggml.scores");
	/* Duplicate key and duplicate tensor: rename one to another's name. */
	FRESH();
	o = find(c, len, "tokenizer.ggml.scores");
	memcpy(c + o, "tokenizer.ggml.tokens", 21);
	expect(c, len, -EINVAL, "duplicate key 'tokenizer.ggml.tokens'");
	FRESH();
	o = find(c, len, "llama.embedding_length");
	memcpy(c + o, "llama.embedding_lengtX", 22);
	expect(c, len, -EINVAL, "missing key 'llama.embedding_length'");
	FRESH();
	o = find(c, len, "blk.0.attn_k.weight");
	memcpy(c + o, "blk.0.attn_v.weight", 19);
	expect(c, len, -EINVAL, "duplicate tensor 'blk.0.attn_v.weight'");
	/* A bool that is neither 0 nor 1. */
	FRESH();
	o = find(c, len, "tokenizer.ggml.add_bos_token") + strlen("tokenizer.ggml.add_bos_token");
	c[o + 4] = 2;
	expect(c, len, -EINVAL, "key 'tokenizer.ggml.add_bos_token': bool value 2");
	/* Absurd dims, unknown dtype, misaligned and out-of-file offsets. */
	FRESH();
	o = find(c, len, "blk.0.ffn_up.weight") + strlen("blk.0.ffn_up.weight");
	v64 = 1ULL << 62;
	memcpy(c + o + 4, &v64, 8);
	memcpy(c + o + 12, &v64, 8);
	expect(c, len, -EOVERFLOW, "tensor 'blk.0.ffn_up.weight': dimension 1");
	FRESH();
	v32 = 5;
	memcpy(c + o, &v32, 4);
	expect(c, len, -EINVAL, "tensor 'blk.0.ffn_up.weight': 5 dimensions");
	FRESH();
	v32 = 31;
	memcpy(c + o + 20, &v32, 4);
	expect(c, len, -EINVAL, "tensor 'blk.0.ffn_up.weight': unknown type 31");
	FRESH();
	v32 = GGML_TYPE_Q6_K;
	memcpy(c + o + 20, &v32, 4);
	expect(c, len, -EINVAL, "not a multiple of Q6_K");
	FRESH();
	memcpy(&v64, c + o + 24, 8);
	v64 += 4;
	memcpy(c + o + 24, &v64, 8);
	expect(c, len, -EINVAL, "tensor 'blk.0.ffn_up.weight': offset");
	FRESH();
	v64 = 1ULL << 40;
	memcpy(c + o + 24, &v64, 8);
	expect(c, len, -EBADMSG, "tensor 'blk.0.ffn_up.weight': data at");
	FRESH();
	v64 = UINT64_MAX - 31;
	memcpy(c + o + 24, &v64, 8);
	expect(c, len, -EBADMSG, "runs past the end");
	/* Shapes that disagree with the hyper-parameters. */
	FRESH();
	v64 = 48;
	memcpy(c + o + 12, &v64, 8);
	expect(c, len, -EINVAL, "tensor 'blk.0.ffn_up.weight': shape [32, 48], want [32, 64]");
	FRESH();
	o = find(c, len, "blk.0.attn_q.weight") + strlen("blk.0.attn_q.weight");
	v64 = 16;
	memcpy(c + o + 12, &v64, 8);
	expect(c, len, -EINVAL, "tensor 'blk.0.attn_q.weight': shape [32, 16], want [32, 32]");
	free(img);
	free(c);
#undef FRESH
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp16_all),
		cmocka_unit_test(test_dtype_sizes),
		cmocka_unit_test(test_quant_roundtrip),
		cmocka_unit_test(test_dequant_vs_numpy),
		cmocka_unit_test(test_all_types_roundtrip),
		cmocka_unit_test(test_write_threads),
		cmocka_unit_test(test_mkmodel_every_dtype),
		cmocka_unit_test(test_independent_parser),
		cmocka_unit_test(test_cli_tokenize),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_hostile_fields),
	};
	(void)argc;
	if (testenv_bin_dir(argv[0]))
		return 1;
	if (!getcwd(srcdir, sizeof(srcdir)))
		return 1;
	return cmocka_run_group_tests_name("gguf", tests, setup, teardown);
}
