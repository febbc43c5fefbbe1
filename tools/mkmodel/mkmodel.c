// SPDX-License-Identifier: GPL-2.0
/*
 * llmq-mkmodel: write a standard GGUF model (llama.cpp's tensor names and
 * metadata keys) in any dtype llmq reads, with a tokenizer imported from a
 * Hugging Face tokenizer.json, a SentencePiece .vocab listing or a built-in
 * byte vocabulary.  The weights are either seeded noise for a named preset
 * (tests and benchmarks: the shapes and formats are real) or converted from
 * a Hugging Face checkpoint (--hf-model, how the bundled model is made).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "gguf.h"
#include "hf_model.h"
#include "hf_tokenizer.h"
#include "rng.h"

/**
 * struct preset - a model shape
 */
struct preset {
	const char	*name;
	const char	*arch;
	uint32_t	n_embd;
	uint32_t	n_layer;
	uint32_t	n_head;
	uint32_t	n_head_kv;
	uint32_t	n_ff;
	uint32_t	n_ctx;
	uint32_t	n_vocab;	/* 0: the tokenizer's */
	float		rope_base;
	float		rms_eps;
	bool		tied;
	const char	*what;
};

static const struct preset presets[] = {
	{ "micro", "llama", 32, 1, 2, 1, 64, 512, 0, 10000.0f, 1e-5f, true,
	  "1 layer of 32, for tokenizer tests with large vocabularies" },
	{ "tiny", "llama", 256, 2, 4, 2, 768, 2048, 0, 10000.0f, 1e-5f, false,
	  "2 layers of 256, for unit tests" },
	{ "tiny-qwen2", "qwen2", 256, 2, 4, 2, 768, 2048, 0, 1000000.0f, 1e-6f, true,
	  "tiny with QKV bias, NeoX RoPE and tied embeddings" },
	{ "100m", "llama", 768, 12, 12, 4, 2048, 4096, 32000, 10000.0f, 1e-5f, true,
	  "about 100M parameters, for CPU benchmarks" },
	{ "llama3-8b", "llama", 4096, 32, 32, 8, 14336, 8192, 128256, 500000.0f, 1e-5f, false,
	  "LLaMA-3-8B's shapes, for GPU benchmarks" },
};

/* Per-tensor generator: xoshiro256** seeded from (seed, name). */
struct fill {
	uint64_t	s[4];
	uint32_t	type;
	uint64_t	ne0;
	uint64_t	rows;
	float		scale;		/* normal(0, scale); 0: all ones */
	const struct hf_model	*hf;	/* converting: rows come from here */
	const struct hf_tensor	*src;
	char		name[96];
};

static float uniform(uint64_t *s)
{
	return (float)((rng_next(s) >> 40) + 1) / 16777217.0f;	/* (0, 1) */
}

static int fill_tensor(void *arg, void *dst, uint64_t bytes)
{
	struct fill *f = arg;
	uint64_t r, i, row_bytes;
	float *row = malloc(f->ne0 * sizeof(float));
	int err = 0;

	if (!row)
		return -ENOMEM;
	dtype_row_bytes(f->type, f->ne0, &row_bytes);
	for (r = 0; r < f->rows && !err; r++) {
		if (f->src) {
			err = hf_model_row(f->hf, f->src, f->name, r, row);
			if (!err)
				err = quantize(f->type, row, (uint8_t *)dst + r * row_bytes,
					       f->ne0);
			continue;
		}
		for (i = 0; i < f->ne0; i += 2) {
			/* Box-Muller: two normals per pair of uniforms. */
			float u1 = uniform(f->s), u2 = uniform(f->s);
			float m = sqrtf(-2.0f * logf(u1)) * f->scale;

			row[i] = f->scale ? m * cosf(6.2831853f * u2) : 1.0f;
			if (i + 1 < f->ne0)
				row[i + 1] = f->scale ? m * sinf(6.2831853f * u2) : 1.0f;
		}
		err = quantize(f->type, row, (uint8_t *)dst + r * row_bytes, f->ne0);
	}
	free(row);
	(void)bytes;
	return err;
}

/*
 * The weight matrices' types: @base for most, @more for those llama.cpp's
 * _M mixes give more bits (the same as @base for a plain type).
 */
struct wtypes {
	const char	*name;
	uint32_t	base;
	uint32_t	more;
	bool		mix;
};

struct model_out {
	struct gguf_writer	*w;
	struct fill		*fills;
	uint32_t		nr;
	uint64_t		seed;
	bool			mix;	/* an _M mix: K types fall back */
	uint64_t		params;
	const struct hf_model	*hf;
};

/*
 * A mix's type for a matrix of rows of @ne0: a K type where the rows are
 * whole blocks of 256, else llama.cpp's fallback (Q4_K: Q5_0, Q5_K: Q5_1,
 * Q6_K: Q8_0), as a qwen2 0.5B's 896 columns get.
 */
static uint32_t mix_type(const struct model_out *o, uint32_t type, uint64_t ne0)
{
	if (!o->mix || ne0 % QK_K == 0)
		return type;
	return type == GGML_TYPE_Q4_K ? GGML_TYPE_Q5_0 :
	       type == GGML_TYPE_Q5_K ? GGML_TYPE_Q5_1 : GGML_TYPE_Q8_0;
}

static int add(struct model_out *o, const char *name, uint64_t ne0, uint64_t ne1, float scale,
	       uint32_t type)
{
	struct fill *f = &o->fills[o->nr++];
	uint64_t x = o->seed, ne[2] = { ne0, ne1 };
	const char *p;
	bool vec = !ne1;

	/* Seed from (seed, name): the same tensor gets the same values in any file. */
	for (p = name; *p; p++)
		x = x * 131 + (uint8_t)*p;
	rng_seed(f->s, x);
	f->type = vec ? GGML_TYPE_F32 : mix_type(o, type, ne0);
	f->ne0 = ne0;
	f->rows = vec ? 1 : ne1;
	f->scale = scale;
	o->params += ne0 * (vec ? 1 : ne1);
	if (o->hf) {
		char hf_name[128];
		const struct hf_tensor *t = hf_model_tensor(o->hf, name, hf_name, sizeof(hf_name));

		if (!t) {
			fprintf(stderr, "llmq-mkmodel: the checkpoint has no %s (for %s)\n",
				hf_name, name);
			return -EINVAL;
		}
		if (t->type == UINT32_MAX || t->n_dims != (vec ? 1u : 2u) ||
		    t->shape[vec ? 0 : 1] != ne0 || (!vec && t->shape[0] != ne1)) {
			fprintf(stderr, "llmq-mkmodel: %s is not an F32/F16/BF16 tensor of shape "
				"[%llu%s%llu] as config.json implies\n", hf_name,
				(unsigned long long)(vec ? ne0 : ne1), vec ? "" : ", ",
				vec ? 0ull : (unsigned long long)ne0);
			return -EINVAL;
		}
		f->hf = o->hf;
		f->src = t;
		snprintf(f->name, sizeof(f->name), "%s", name);
	}
	if (!vec && ne0 % dtype_info(f->type)->block) {
		fprintf(stderr, "llmq-mkmodel: %s: %llu columns do not fit %s blocks of %u\n",
			name, (unsigned long long)ne0, dtype_info(f->type)->name,
			dtype_info(f->type)->block);
		return -EINVAL;
	}
	return gguf_add_tensor_fill(o->w, name, f->type, vec ? 1 : 2, ne, fill_tensor, f);
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: llmq-mkmodel --preset NAME [OPTIONS] -o OUT.gguf\n"
		"       llmq-mkmodel --hf-model DIR [OPTIONS] -o OUT.gguf\n"
		"  --hf-model DIR     convert a Hugging Face LlamaForCausalLM or Qwen2ForCausalLM\n"
		"                     checkpoint: DIR/config.json, DIR/model.safetensors (F32,\n"
		"                     F16 or BF16), tokenizer from DIR/tokenizer.json or\n"
		"                     DIR/tokenizer.vocab unless --tokenizer says\n"
		"  --preset NAME      seeded random weights of a model shape, one of:\n");
	for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		fprintf(f, "                       %-10s %s\n", presets[i].name, presets[i].what);
	fprintf(f,
		"  --dtype T          weight matrices as F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,\n"
		"                     Q5_1, Q4_K, Q5_K or Q6_K, or llama.cpp's mixes Q4_K_M\n"
		"                     and Q5_K_M (Q6_K for the LM head and for attn_v and\n"
		"                     ffn_down in some layers; Q5_0, Q5_1, Q8_0 where rows\n"
		"                     are not whole blocks of 256) (default F16; norms and\n"
		"                     biases stay F32)\n"
		"  --seed N           weights generator seed (default 0)\n"
		"  --tokenizer FILE   import a Hugging Face tokenizer.json or a SentencePiece\n"
		"                     MODEL.vocab (default: a built-in byte vocabulary of 260\n"
		"                     tokens)\n"
		"  --pre NAME         override tokenizer.ggml.pre (llama-bpe, qwen2, default)\n"
		"  --bos TOKEN        override the begin-of-sequence token (by its text)\n"
		"  --eos TOKEN        override the end-of-sequence token (by its text)\n"
		"  --add-bos yes|no   override whether encoding adds BOS\n"
		"  --name NAME        general.name (default llmq-<preset>, or the checkpoint\n"
		"                     directory's name)\n"
		"  -o, --output FILE  where to write\n"
		"  -h, --help         this text\n");
}

static struct wtypes parse_dtype(const char *s)
{
	static const struct wtypes ok[] = {
		{ "F32", GGML_TYPE_F32, GGML_TYPE_F32, false },
		{ "F16", GGML_TYPE_F16, GGML_TYPE_F16, false },
		{ "BF16", GGML_TYPE_BF16, GGML_TYPE_BF16, false },
		{ "Q8_0", GGML_TYPE_Q8_0, GGML_TYPE_Q8_0, false },
		{ "Q4_0", GGML_TYPE_Q4_0, GGML_TYPE_Q4_0, false },
		{ "Q4_1", GGML_TYPE_Q4_1, GGML_TYPE_Q4_1, false },
		{ "Q5_0", GGML_TYPE_Q5_0, GGML_TYPE_Q5_0, false },
		{ "Q5_1", GGML_TYPE_Q5_1, GGML_TYPE_Q5_1, false },
		{ "Q4_K", GGML_TYPE_Q4_K, GGML_TYPE_Q4_K, false },
		{ "Q5_K", GGML_TYPE_Q5_K, GGML_TYPE_Q5_K, false },
		{ "Q6_K", GGML_TYPE_Q6_K, GGML_TYPE_Q6_K, false },
		{ "Q4_K_M", GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, true },
		{ "Q5_K_M", GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, true },
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcasecmp(s, ok[i].name))
			return ok[i];
	fprintf(stderr, "llmq-mkmodel: --dtype: '%s' is not F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
		"Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q4_K_M or Q5_K_M\n", s);
	exit(2);
}

/*
 * Whether layer @l of @n gets an _M mix's extra bits in attn_v and ffn_down:
 * llama.cpp's use_more_bits(), the first and last eighth and every third
 * layer between.
 */
static bool more_bits(uint32_t l, uint32_t n)
{
	return l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
}


static int write_model(const struct preset *p, const struct hf_model *hf,
		       struct hf_tokenizer *tok, struct wtypes wt, uint64_t seed, const char *name,
		       const char *out)
{
	struct model_out o = { .seed = seed, .mix = wt.mix, .hf = hf };
	uint32_t hd = p->n_embd / p->n_head, n_vocab = p->n_vocab ? p->n_vocab : tok->n, l;
	uint64_t q = (uint64_t)p->n_head * hd, kv = (uint64_t)p->n_head_kv * hd;
	char key[128], tn[96];
	const char *a = p->arch;
	int err;

	if (p->n_vocab && tok->n > p->n_vocab) {
		fprintf(stderr, "llmq-mkmodel: the tokenizer has %u tokens, preset %s only %u\n",
			tok->n, p->name, p->n_vocab);
		return -EINVAL;
	}
	o.w = gguf_writer_new(0);
	o.fills = calloc(4 + 12 * (size_t)p->n_layer, sizeof(*o.fills));
	if (!o.w || !o.fills) {
		fprintf(stderr, "llmq-mkmodel: out of memory\n");
		gguf_writer_free(o.w);
		free(o.fills);
		return -ENOMEM;
	}
	gguf_add_str(o.w, "general.architecture", a);
	gguf_add_str(o.w, "general.name", name);
#define KU(k, v) do { snprintf(key, sizeof(key), "%s." k, a); gguf_add_u32(o.w, key, v); } while (0)
#define KF(k, v) do { snprintf(key, sizeof(key), "%s." k, a); gguf_add_f32(o.w, key, v); } while (0)
	KU("context_length", p->n_ctx);
	KU("embedding_length", p->n_embd);
	KU("block_count", p->n_layer);
	KU("feed_forward_length", p->n_ff);
	KU("attention.head_count", p->n_head);
	KU("attention.head_count_kv", p->n_head_kv);
	KU("rope.dimension_count", hd);
	KU("vocab_size", n_vocab);
	KF("attention.layer_norm_rms_epsilon", p->rms_eps);
	KF("rope.freq_base", p->rope_base);
#undef KU
#undef KF
	/* Pad the vocabulary to the preset's size with unused tokens. */
	if (n_vocab > tok->n) {
		uint32_t i, old = tok->n;

		tok->tokens = realloc(tok->tokens, n_vocab * sizeof(*tok->tokens));
		tok->lens = realloc(tok->lens, n_vocab * sizeof(*tok->lens));
		tok->scores = realloc(tok->scores, n_vocab * sizeof(*tok->scores));
		tok->types = realloc(tok->types, n_vocab * sizeof(*tok->types));
		if (!tok->tokens || !tok->lens || !tok->scores || !tok->types) {
			fprintf(stderr, "llmq-mkmodel: out of memory\n");
			err = -ENOMEM;	/* @tok is freed by the caller */
			goto out;
		}
		for (i = old; i < n_vocab; i++) {
			char pad[32];

			snprintf(pad, sizeof(pad), "[PAD%u]", i);
			tok->tokens[i] = strdup(pad);
			tok->lens[i] = (uint32_t)strlen(pad);
			tok->scores[i] = -1e9f;
			tok->types[i] = 5;	/* unused */
		}
		tok->n = n_vocab;
	}
	hf_tokenizer_write(tok, o.w);

	/* a tied LM head is the embedding table: it gets the head's type */
	err = add(&o, "token_embd.weight", p->n_embd, n_vocab, 0.02f, p->tied ? wt.more : wt.base);
	for (l = 0; l < p->n_layer && !err; l++) {
		uint32_t more = more_bits(l, p->n_layer) ? wt.more : wt.base;

#define T(suffix, ne0, ne1, scale, type) do {				\
		snprintf(tn, sizeof(tn), "blk.%u." suffix, l);			\
		err = err ? err : add(&o, tn, ne0, ne1, scale, type);		\
	} while (0)
		T("attn_norm.weight", p->n_embd, 0, 0, GGML_TYPE_F32);
		T("attn_q.weight", p->n_embd, q, 0.02f, wt.base);
		T("attn_k.weight", p->n_embd, kv, 0.02f, wt.base);
		T("attn_v.weight", p->n_embd, kv, 0.02f, more);
		if (!strcmp(a, "qwen2")) {
			T("attn_q.bias", q, 0, 0.02f, GGML_TYPE_F32);
			T("attn_k.bias", kv, 0, 0.02f, GGML_TYPE_F32);
			T("attn_v.bias", kv, 0, 0.02f, GGML_TYPE_F32);
		}
		T("attn_output.weight", q, p->n_embd, 0.02f, wt.base);
		T("ffn_norm.weight", p->n_embd, 0, 0, GGML_TYPE_F32);
		T("ffn_gate.weight", p->n_embd, p->n_ff, 0.02f, wt.base);
		T("ffn_up.weight", p->n_embd, p->n_ff, 0.02f, wt.base);
		T("ffn_down.weight", p->n_ff, p->n_embd, 0.02f, more);
#undef T
	}
	if (!err)
		err = add(&o, "output_norm.weight", p->n_embd, 0, 0, GGML_TYPE_F32);
	if (!err && !p->tied)
		err = add(&o, "output.weight", p->n_embd, n_vocab, 0.02f, wt.more);
	if (!err) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		/* Random weights cost Box-Muller and logf: 80 s for 8B on one core. */
		gguf_writer_set_threads(o.w, cpus > 1 ? (unsigned int)(cpus < 32 ? cpus : 32) : 1);
		err = gguf_write_file(o.w, out);
		if (err)
			fprintf(stderr, "llmq-mkmodel: cannot write %s: %s\n", out, strerror(-err));
	}
	if (!err)
		fprintf(stderr, "llmq-mkmodel: wrote %s: %s %s, %.1fM parameters, %s, vocab %u (%s)\n",
			out, p->name, a, o.params / 1e6, wt.name, n_vocab,
			tok->model);
out:
	gguf_writer_free(o.w);
	free(o.fills);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "preset", required_argument, NULL, 'p' },
		{ "hf-model", required_argument, NULL, 'H' },
		{ "dtype", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 's' },
		{ "tokenizer", required_argument, NULL, 't' },
		{ "pre", required_argument, NULL, 'P' },
		{ "bos", required_argument, NULL, 'B' },
		{ "eos", required_argument, NULL, 'E' },
		{ "add-bos", required_argument, NULL, 'A' },
		{ "name", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct preset *p = NULL;
	struct preset hp = { .name = "hf" };
	struct hf_model hf = { 0 };
	const char *hfdir = NULL;
	char tokpath[4096];
	const char *tokfile = NULL, *out = NULL, *pre = NULL, *name = NULL, *bos = NULL;
	const char *eos = NULL;
	int add_bos = -1;
	struct hf_tokenizer tok;
	struct wtypes dtype = { "F16", GGML_TYPE_F16, GGML_TYPE_F16, false };
	uint64_t seed = 0;
	char err[512], defname[64], *end;
	size_t i;
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
				if (!strcmp(optarg, presets[i].name))
					p = &presets[i];
			if (!p) {
				fprintf(stderr, "llmq-mkmodel: --preset: '%s' is not a preset; "
					"see --help\n", optarg);
				return 2;
			}
			break;
		case 'H':
			hfdir = optarg;
			break;
		case 'd':
			dtype = parse_dtype(optarg);
			break;
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (!*optarg || *end || errno || *optarg == '-') {
				fprintf(stderr, "llmq-mkmodel: --seed: '%s' is not a number\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			tokfile = optarg;
			break;
		case 'P':
			pre = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'B':
			bos = optarg;
			break;
		case 'E':
			eos = optarg;
			break;
		case 'A':
			if (strcmp(optarg, "yes") && strcmp(optarg, "no")) {
				fprintf(stderr, "llmq-mkmodel: --add-bos: '%s' is not yes or no\n",
					optarg);
				return 2;
			}
			add_bos = !strcmp(optarg, "yes");
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "llmq-mkmodel: %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "llmq-mkmodel: unknown option '%s'; see --help\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (!!p == !!hfdir || !out || optind != argc) {
		fprintf(stderr, "llmq-mkmodel: one of --preset or --hf-model, and -o, are required; "
			"see --help\n");
		return 2;
	}
	if (hfdir) {
		if (hf_model_open(&hf, hfdir, err, sizeof(err))) {
			fprintf(stderr, "llmq-mkmodel: %s\n", err);
			hf_model_close(&hf);
			return 1;
		}
		hp.arch = hf.arch;
		hp.n_embd = hf.n_embd;
		hp.n_layer = hf.n_layer;
		hp.n_head = hf.n_head;
		hp.n_head_kv = hf.n_head_kv;
		hp.n_ff = hf.n_ff;
		hp.n_ctx = hf.n_ctx;
		hp.n_vocab = hf.n_vocab;
		hp.rope_base = hf.rope_base;
		hp.rms_eps = hf.rms_eps;
		hp.tied = hf.tied;
		p = &hp;
		if (!tokfile) {
			snprintf(tokpath, sizeof(tokpath), "%s/tokenizer.json", hfdir);
			if (access(tokpath, F_OK))
				snprintf(tokpath, sizeof(tokpath), "%s/tokenizer.vocab", hfdir);
			tokfile = tokpath;
		}
		if (!name) {
			name = strrchr(hfdir, '/') && strrchr(hfdir, '/')[1] ?
			       strrchr(hfdir, '/') + 1 : hfdir;
		}
	}
	if (tokfile) {
		size_t tl = strlen(tokfile);

		ret = tl > 6 && !strcmp(tokfile + tl - 6, ".vocab") ?
		      hf_tokenizer_load_spm_vocab(&tok, tokfile, err, sizeof(err)) :
		      hf_tokenizer_load(&tok, tokfile, err, sizeof(err));
		if (ret) {
			hf_model_close(&hf);
			fprintf(stderr, "llmq-mkmodel: %s\n", err);
			return 1;
		}
	} else {
		hf_tokenizer_byte_vocab(&tok);
		if (!tok.n) {
			hf_model_close(&hf);
			return 1;
		}
	}
	if (pre)
		snprintf(tok.pre, sizeof(tok.pre), "%s", pre);
	if (bos && (tok.bos = hf_tokenizer_find(&tok, bos)) < 0) {
		fprintf(stderr, "llmq-mkmodel: --bos: no token '%s'\n", bos);
		hf_tokenizer_free(&tok);
		hf_model_close(&hf);
		return 1;
	}
	if (eos && (tok.eos = hf_tokenizer_find(&tok, eos)) < 0) {
		fprintf(stderr, "llmq-mkmodel: --eos: no token '%s'\n", eos);
		hf_tokenizer_free(&tok);
		hf_model_close(&hf);
		return 1;
	}
	if (add_bos >= 0)
		tok.add_bos = add_bos;
	snprintf(defname, sizeof(defname), "llmq-%s", p->name);
	ret = write_model(p, hfdir ? &hf : NULL, &tok, dtype, seed, name ? name : defname, out);
	hf_tokenizer_free(&tok);
	hf_model_close(&hf);
	return ret ? 1 : 0;	/* write_model() said why */
	return 0;
}
