// SPDX-License-Identifier: GPL-2.0
/*
 * llmq run: load a GGUF model, prefill one prompt on the CPU backend (or the
 * CUDA one: --engine cuda), sample a continuation and stream only the
 * generated text to stdout.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "model.h"
#include "run_cmd.h"
#include "sampler.h"
#include "tokenizer.h"

#define RUN_PREFILL_CHUNK	512

static const struct option run_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "max-tokens", required_argument, NULL, 'n' },
	{ "temperature", required_argument, NULL, 't' },
	{ "top-p", required_argument, NULL, 'p' },
	{ "top-k", required_argument, NULL, 'k' },
	{ "min-p", required_argument, NULL, 'P' },
	{ "repetition-penalty", required_argument, NULL, 'R' },
	{ "presence-penalty", required_argument, NULL, 'S' },
	{ "frequency-penalty", required_argument, NULL, 'F' },
	{ "seed", required_argument, NULL, 's' },
	{ "threads", required_argument, NULL, 'j' },
	{ "kv-cache-mb", required_argument, NULL, 'c' },
	{ "kv-cache-dtype", required_argument, NULL, 'D' },
	{ "engine", required_argument, NULL, 'e' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "enforce-eager", no_argument, NULL, 'E' },
	{ "gpu-weights", required_argument, NULL, 'W' },
	{ NULL, 0, NULL, 0 },
};

struct run_opts {
	const char		*model;
	const char		*prompt;
	unsigned int		threads;
	unsigned long long	kv_mb;		/* 0: exactly prompt + max_tokens */
	enum backend_kv_dtype	kv_dtype;
	bool			cuda;		/* --engine cuda */
	bool			eager;		/* --enforce-eager */
	bool			bf16_weights;	/* --gpu-weights bf16 */
	bool			verbose;
	struct sampler_params	sp;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' || *out > max ? -EINVAL : 0;
}

static int parse_float(const char *s, float *out)
{
	char *end;

	errno = 0;
	*out = strtof(s, &end);
	return errno || end == s || *end ? -EINVAL : 0;
}

/* Options into @o; a one-line complaint and -EINVAL when one is bad. */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
	unsigned long long u;
	int opt, idx = 0, err = 0;

	o->sp = (struct sampler_params){
		.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .repetition_penalty = 1.0f,
		.max_tokens = 128, .seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32),
	};
	optind = 1;
	opterr = 0;
	while (!err && (opt = getopt_long(argc, argv, "", run_opts, &idx)) != -1) {
		switch (opt) {
		case 'm':
			o->model = optarg;
			break;
		case 'n':
			err = parse_u64(optarg, 1u << 20, &u);
			o->sp.max_tokens = u;
			break;
		case 't':
			err = parse_float(optarg, &o->sp.temperature);
			break;
		case 'p':
			err = parse_float(optarg, &o->sp.top_p);
			break;
		case 'k':
			err = parse_u64(optarg, UINT32_MAX, &u);
			o->sp.top_k = u;
			break;
		case 'P':
			err = parse_float(optarg, &o->sp.min_p);
			break;
		case 'R':
			err = parse_float(optarg, &o->sp.repetition_penalty);
			break;
		case 'S':
			err = parse_float(optarg, &o->sp.presence_penalty);
			break;
		case 'F':
			err = parse_float(optarg, &o->sp.frequency_penalty);
			break;
		case 's':
			err = parse_u64(optarg, UINT64_MAX, &u);
			o->sp.seed = u;
			break;
		case 'j':
			err = parse_u64(optarg, 1024, &u);
			o->threads = u;
			break;
		case 'c':
			err = parse_u64(optarg, 1ULL << 20, &u);
			if (!err && !u)
				err = -EINVAL;
			o->kv_mb = u;
			break;
		case 'D':
			err = backend_kv_dtype_parse(optarg, &o->kv_dtype);
			break;
		case 'e':
			if (!strcmp(optarg, "cuda"))
				o->cuda = true;
			else if (strcmp(optarg, "cpu"))
				err = -EINVAL;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'E':
			o->eager = true;
			break;
		case 'W':
			if (strcmp(optarg, "auto") && strcmp(optarg, "bf16"))
				err = -EINVAL;
			o->bf16_weights = !strcmp(optarg, "bf16");
			break;
		default:
			fprintf(stderr, "llmq run: unknown or incomplete option '%s'\n",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (err) {
		fprintf(stderr, "llmq run: bad value '%s' for --%s\n", optarg, run_opts[idx].name);
		return -EINVAL;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: llmq run [--model FILE] [--max-tokens N] [--temperature T] "
			"[--top-p P] [--top-k K] [--min-p P] [--repetition-penalty R] "
			"[--presence-penalty P] [--frequency-penalty F] [--seed S] [--threads N] [--kv-cache-mb N] "
			"[--kv-cache-dtype auto|f32|f16] "
			"[--engine cpu|cuda] [--enforce-eager] [--gpu-weights auto|bf16] "
			"[--verbose] PROMPT\n");
		return -EINVAL;
	}
	if (!o->model) {
		static char path[PATH_MAX];

		o->model = model_default_path(path, sizeof(path));
		if (!o->model) {
			fprintf(stderr, "llmq run: no --model given and the bundled model is not "
				"installed (%s) nor in a source tree beside this binary\n", path);
			return -ENOENT;
		}
	}
	o->prompt = argv[optind];
	return 0;
}

/* Write @len bytes of @s to stdout, flushed so the text streams. */
static void emit(const char *s, size_t len)
{
	if (len) {
		fwrite(s, 1, len, stdout);
		fflush(stdout);
	}
}

/*
 * One step of @s; when it ends with a row to sample, the next token into
 * @tok: drawn by the backend if it can (a GPU then returns one id, not the
 * row), else by @smp from @logits.
 */
static int step(struct backend *b, struct backend_seq *s, struct sampler *smp, float *logits,
		uint32_t *tok)
{
	struct backend_sample bs = { .token = BACKEND_NO_TOKEN };
	int err;

	s->sample = NULL;
	if (s->logits == BACKEND_LOGITS_LAST && b->draws_tokens &&
	    sampler_pen_room(smp) <= b->pen_room) {
		sampler_next_draw(smp, &bs.set);
		s->sample = &bs;
	}
	err = backend_step(b, s, 1, logits);
	if (err || s->logits != BACKEND_LOGITS_LAST) {
		s->sample = NULL;
		return err;
	}
	*tok = s->sample ? bs.token : sampler_sample(smp, logits, NULL);
	s->sample = NULL;
	return 0;
}

/* Prefill @ids in chunks, then decode until the sampler stops. */
static int generate(struct backend *b, struct tokenizer *t, struct sampler *smp,
		    const uint32_t *ids, uint32_t n, uint32_t *table, uint32_t n_blocks,
		    bool verbose)
{
	struct tok_stream st = { 0 };
	struct backend_seq s = { .block_table = table, .n_blocks = n_blocks };
	float *logits = malloc((size_t)b->n_vocab * sizeof(float));
	double t0 = now(), t1, t2;
	uint32_t pos, n_dec = 0, tok = 0;
	char piece[256];
	const char *out;
	size_t out_len;
	int err = 0, r, fin = SAMPLER_CONTINUE;

	if (!logits)
		return -ENOMEM;
	for (pos = 0; pos < n && !err; pos += s.n_tokens) {
		s.pos = pos;
		s.tokens = ids + pos;
		s.n_tokens = n - pos < b->max_tokens ? n - pos : b->max_tokens;
		s.logits = pos + s.n_tokens == n ? BACKEND_LOGITS_LAST : BACKEND_LOGITS_NONE;
		err = step(b, &s, smp, logits, &tok);
	}
	t1 = now();
	while (!err && fin == SAMPLER_CONTINUE) {
		r = tok_stream_next(t, &st, tok, piece, sizeof(piece));
		if (r < 0) {
			err = r;
			break;
		}
		fin = sampler_accept(smp, tok, piece, r, &out, &out_len);
		if (fin < 0) {
			err = fin;
			break;
		}
		emit(out, out_len);
		if (fin != SAMPLER_CONTINUE)
			break;
		s.pos = pos++;
		s.tokens = &tok;
		s.n_tokens = 1;
		s.logits = BACKEND_LOGITS_LAST;
		err = step(b, &s, smp, logits, &tok);
		n_dec++;
	}
	t2 = now();
	if (verbose) {
		fprintf(stderr, "\nprefill: %.1f tokens/s (%u tokens)\n", n / (t1 - t0), n);
		fprintf(stderr, "decode: %.1f tokens/s (%u tokens)\n",
			n_dec ? n_dec / (t2 - t1) : 0.0, n_dec);
	}
	free(logits);
	return err;
}

/**
 * cmd_run() - llmq run [--model FILE] [options] PROMPT
 * @argc:	arguments after "run"
 * @argv:	the options and the prompt
 *
 * Tokenizes PROMPT with BOS as the model's metadata says, runs it through
 * the CPU backend with a KV cache just big enough for the prompt and
 * --max-tokens, and streams the sampled continuation, whole UTF-8
 * characters only, until end of sequence or --max-tokens.
 *
 * Return: exit status: 0, 1 on a failure, 2 on bad arguments.
 */
int cmd_run(int argc, char **argv)
{
	struct backend_params bp = { 0 };
	struct backend *b = NULL;
	struct tokenizer *t = NULL;
	struct sampler *smp = NULL;
	struct run_opts o = { 0 };
	uint32_t *ids = NULL, *table = NULL, eos, n_blocks, i;
	size_t n = 0, ctx;
	char err[512];
	struct model m;
	int ret = 1, e;

	if (parse_args(argc, argv, &o))
		return 2;
	if (sampler_check(&o.sp, err, sizeof(err))) {
		fprintf(stderr, "llmq run: %s\n", err);
		return 2;
	}
	if (model_load(&m, o.model)) {
		fprintf(stderr, "llmq run: %s\n", m.err);
		return 1;
	}
	t = tok_create(&m.vocab, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "llmq run: tokenizer: %s\n", err);
		goto out;
	}
	e = tok_encode(t, o.prompt, strlen(o.prompt), true, false, &ids, &n);
	if (e || !n) {
		fprintf(stderr, "llmq run: tokenize: %s\n", e ? strerror(-e) : "empty prompt");
		goto out;
	}
	ctx = n + o.sp.max_tokens;
	bp.block_size = BACKEND_DEFAULT_BLOCK_SIZE;
	n_blocks = (ctx + bp.block_size - 1) / bp.block_size;
	bp.n_threads = o.threads;
	bp.kv_dtype = o.kv_dtype;
	bp.kv_bytes = n_blocks * backend_kv_block_bytes(&m, bp.block_size, o.kv_dtype);
	if (o.kv_mb) {
		/* One allocation of exactly the size asked for, if the request fits. */
		if ((o.kv_mb << 20) < bp.kv_bytes) {
			fprintf(stderr, "llmq run: --kv-cache-mb %llu is too small for %zu prompt "
				"tokens + %u (needs %llu MiB)\n", o.kv_mb, n, o.sp.max_tokens,
				(unsigned long long)((bp.kv_bytes + (1 << 20) - 1) >> 20));
			goto out;
		}
		bp.kv_bytes = o.kv_mb << 20;
	}
	bp.max_tokens = n < RUN_PREFILL_CHUNK ? n : RUN_PREFILL_CHUNK;
	bp.max_context = ctx;
	if (o.cuda) {
		struct backend_cuda_params cp = {
			.n_blocks = n_blocks, .enforce_eager = o.eager,
			.bf16_weights = o.bf16_weights,
		};

		/* The cache just fits this prompt and output, as on the CPU. */
		if (o.kv_mb)
			cp.n_blocks = (o.kv_mb << 20) / backend_cuda_kv_block_bytes(&m,
										bp.block_size);
		b = backend_cuda_create(&m, &bp, &cp, err, sizeof(err));
	} else {
		b = backend_cpu_create(&m, &bp, err, sizeof(err));
	}
	if (!b) {
		fprintf(stderr, "llmq run: backend: %s\n", err);
		goto out;
	}
	table = calloc(n_blocks, sizeof(*table));
	if (!table)
		goto out;
	for (i = 0; i < n_blocks; i++)
		table[i] = i;
	if (m.vocab.eos >= 0) {
		eos = m.vocab.eos;
		o.sp.eos_ids = &eos;
		o.sp.nr_eos_ids = 1;
	}
	smp = sampler_create(&o.sp, b->n_vocab, ids, n);
	if (!smp)
		goto out;
	e = generate(b, t, smp, ids, n, table, n_blocks, o.verbose);
	if (e)
		fprintf(stderr, "llmq run: %s\n", strerror(-e));
	else
		ret = 0;
out:
	sampler_free(smp);
	free(table);
	backend_destroy(b);
	free(ids);
	tok_free(t);
	model_free(&m);
	return ret;
}
