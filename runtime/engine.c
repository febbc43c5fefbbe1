// SPDX-License-Identifier: GPL-2.0
/*
 * Opening an engine: the model file, its tokenizer and a backend sized from
 * the KV budget; or, for the null backend, a small built-in vocabulary.
 *
 * The null vocabulary is a SentencePiece one: the three control tokens, the
 * 256 byte tokens and 64 words.  Prompts encode to bytes (there are no
 * merges), and the null backend answers in words, so its output reads like
 * lorem ipsum and every byte count is exact.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_null.h"
#include "engine.h"

#define NULL_FIRST_BYTE	3
#define NULL_FIRST_WORD	(NULL_FIRST_BYTE + 256)
#define NULL_N_WORDS	64
#define NULL_N_VOCAB	(NULL_FIRST_WORD + NULL_N_WORDS)
#define NULL_MAX_CTX	4096
/*
 * The KV bytes a token would take in a small model (2 layers of K and V,
 * 256 floats each), so that --kv-cache-mb means the same order of blocks
 * as for a real model; the null cache itself keeps 8 bytes a token.
 */
#define NULL_KV_TOKEN_BYTES	4096

/* U+2581, SentencePiece's space, then the word. */
static const char *const null_words[NULL_N_WORDS] = {
	"\u2581lorem", "\u2581ipsum", "\u2581dolor", "\u2581sit", "\u2581amet",
	"\u2581consectetur", "\u2581adipiscing", "\u2581elit", "\u2581sed", "\u2581do",
	"\u2581eiusmod", "\u2581tempor", "\u2581incididunt", "\u2581ut", "\u2581labore",
	"\u2581et", "\u2581dolore", "\u2581magna", "\u2581aliqua", "\u2581enim", "\u2581ad",
	"\u2581minim", "\u2581veniam", "\u2581quis", "\u2581nostrud", "\u2581exercitation",
	"\u2581ullamco", "\u2581laboris", "\u2581nisi", "\u2581aliquip", "\u2581ex", "\u2581ea",
	"\u2581commodo", "\u2581consequat", "\u2581duis", "\u2581aute", "\u2581irure",
	"\u2581in", "\u2581reprehenderit", "\u2581voluptate", "\u2581velit", "\u2581esse",
	"\u2581cillum", "\u2581eu", "\u2581fugiat", "\u2581nulla", "\u2581pariatur",
	"\u2581excepteur", "\u2581sint", "\u2581occaecat", "\u2581cupidatat", "\u2581non",
	"\u2581proident", "\u2581sunt", "\u2581culpa", "\u2581qui", "\u2581officia",
	"\u2581deserunt", "\u2581mollit", "\u2581anim", "\u2581id", "\u2581est",
	"\u2581laborum", "\u2581llmq",
};

static struct tokenizer *null_tokenizer(char *err, size_t errlen)
{
	static char bytes[256][8];
	const char *tokens[NULL_N_VOCAB];
	uint32_t lens[NULL_N_VOCAB];
	int32_t types[NULL_N_VOCAB];
	struct tok_vocab v = {
		.model = TOK_MODEL_SPM,
		.n_tokens = NULL_N_VOCAB,
		.tokens = tokens,
		.token_lens = lens,
		.types = types,
		.unk = 0,
		.bos = 1,
		.eos = 2,
		.add_bos = true,
		.add_space_prefix = true,
	};
	uint32_t i;

	tokens[0] = "<unk>";
	tokens[1] = "<s>";
	tokens[2] = "</s>";
	types[0] = TOK_TYPE_UNKNOWN;
	types[1] = types[2] = TOK_TYPE_CONTROL;
	for (i = 0; i < 256; i++) {
		snprintf(bytes[i], sizeof(bytes[i]), "<0x%02X>", i);
		tokens[NULL_FIRST_BYTE + i] = bytes[i];
		types[NULL_FIRST_BYTE + i] = TOK_TYPE_BYTE;
	}
	for (i = 0; i < NULL_N_WORDS; i++) {
		tokens[NULL_FIRST_WORD + i] = null_words[i];
		types[NULL_FIRST_WORD + i] = TOK_TYPE_NORMAL;
	}
	for (i = 0; i < NULL_N_VOCAB; i++)
		lens[i] = strlen(tokens[i]);
	return tok_create(&v, err, errlen);
}

static int open_null(struct engine *e, const struct engine_config *c, char *err, size_t errlen)
{
	struct backend_null_params p = {
		.n_vocab = NULL_N_VOCAB,
		.first_word = NULL_FIRST_WORD,
		.n_words = NULL_N_WORDS,
		.block_size = c->block_size,
		.max_tokens = c->max_step_tokens,
		.max_context = c->max_model_len ? c->max_model_len : NULL_MAX_CTX,
		.delay_ns = c->null_delay_ns,
	};

	p.n_blocks = c->kv_blocks;
	if (!p.n_blocks)
		p.n_blocks = c->kv_bytes / ((size_t)c->block_size * NULL_KV_TOKEN_BYTES);
	if (!p.n_blocks) {
		snprintf(err, errlen, "KV cache of %zu bytes holds no block", c->kv_bytes);
		return -EINVAL;
	}
	e->tok = null_tokenizer(err, errlen);
	if (!e->tok)
		return -EINVAL;
	e->be = backend_null_create(&p, err, errlen);
	if (!e->be)
		return -ENOMEM;
	e->eos_ids[0] = 2;
	e->nr_eos = 1;
	return 0;
}

/* The cpu and cuda engines: a GGUF model, its tokenizer, a backend. */
static int open_model(struct engine *e, const struct engine_config *c, bool cuda, char *err,
		      size_t errlen)
{
	struct backend_cuda_params cp = {
		.gpu_memory_utilization = c->gpu_memory_utilization,
		.n_blocks = c->kv_blocks,
		.enforce_eager = c->enforce_eager,
		.bf16_weights = c->gpu_bf16_weights,
	};
	struct backend_params p = {
		.n_threads = c->threads,
		.block_size = c->block_size,
		.kv_bytes = c->kv_bytes,
		.max_tokens = c->max_step_tokens,
		.max_context = c->max_model_len,
		.kv_dtype = c->kv_dtype,
	};
	const struct tok_vocab *v;
	size_t block_bytes;
	int ret;

	if (!c->model_path) {
		snprintf(err, errlen, "--engine %s needs --model FILE.gguf", c->backend);
		return -EINVAL;
	}
	ret = model_load(&e->model, c->model_path);
	if (ret) {
		snprintf(err, errlen, "%s", e->model.err);
		return ret;
	}
	e->have_model = true;
	if (c->max_model_len > e->model.hp.n_ctx_train && e->model.hp.n_ctx_train) {
		snprintf(err, errlen, "--max-model-len %u exceeds the model's training context %u",
			 c->max_model_len, e->model.hp.n_ctx_train);
		return -EINVAL;
	}
	block_bytes = backend_kv_block_bytes(&e->model, c->block_size, c->kv_dtype);
	if (c->kv_blocks && !cuda)
		p.kv_bytes = (size_t)c->kv_blocks * block_bytes;
	if (!cuda && p.kv_bytes < block_bytes) {
		snprintf(err, errlen, "KV cache of %zu bytes holds no block of %zu bytes",
			 p.kv_bytes, block_bytes);
		return -EINVAL;
	}
	e->tok = tok_create(&e->model.vocab, err, errlen);
	if (!e->tok)
		return -EINVAL;
	if (cuda)
		e->be = backend_cuda_create(&e->model, &p, &cp, err, errlen);
	else
		e->be = backend_cpu_create(&e->model, &p, err, errlen);
	if (!e->be)
		return cuda ? -ENODEV : -ENOMEM;
	v = &e->model.vocab;
	if (v->eos >= 0)
		e->eos_ids[e->nr_eos++] = v->eos;
	return 0;
}

/**
 * engine_open() - open the backend, model and tokenizer a config names
 * @e:		the engine to fill
 * @c:		the settings
 * @err:	a message on failure
 * @errlen:	its size
 *
 * max_model_len ends up at most what the KV cache holds, so that one
 * sequence alone always fits and preemption always makes progress.
 *
 * Return: 0, or -errno with a message in @err (and nothing left open).
 */
int engine_open(struct engine *e, const struct engine_config *c, char *err, size_t errlen)
{
	char weights[40] = "";
	uint64_t pool;
	int ret;

	memset(e, 0, sizeof(*e));
	if (!c->block_size || !c->max_step_tokens) {
		snprintf(err, errlen, "block size and step size must be positive");
		return -EINVAL;
	}
	if (!strcmp(c->backend, "null")) {
		ret = open_null(e, c, err, errlen);
	} else if (!strcmp(c->backend, "cpu")) {
		ret = open_model(e, c, false, err, errlen);
	} else if (!strcmp(c->backend, "cuda")) {
		ret = open_model(e, c, true, err, errlen);
	} else {
		snprintf(err, errlen, "unknown engine '%s' (cpu, cuda, null)", c->backend);
		ret = -EINVAL;
	}
	if (ret)
		goto fail;
	pool = (uint64_t)e->be->n_blocks * e->be->block_size;
	e->max_model_len = e->be->max_context;
	if (e->max_model_len > pool)
		e->max_model_len = pool;
	if (c->max_model_len && c->max_model_len > e->max_model_len) {
		snprintf(err, errlen, "--max-model-len %u exceeds what the model and the KV cache "
			 "hold (%u tokens)", c->max_model_len, e->max_model_len);
		ret = -EINVAL;
		goto fail;
	}
	if (e->max_model_len < 2) {
		snprintf(err, errlen, "the KV cache holds fewer than 2 tokens");
		ret = -EINVAL;
		goto fail;
	}
	if (e->be->weight_bytes)
		snprintf(weights, sizeof(weights), ", weights %.2f MiB",
			 e->be->weight_bytes / 1048576.0);
	snprintf(e->desc, sizeof(e->desc), "%s engine%s%s%s, %u KV blocks of %u tokens "
		 "(%zu KiB%s%s), max-model-len %u, %u threads", e->be->ops->name,
		 e->have_model ? ", model " : "", e->have_model ? e->model.name : "", weights,
		 e->be->n_blocks, e->be->block_size, e->be->kv_bytes >> 10,
		 e->have_model ? ", " : "",
		 e->have_model ? backend_kv_dtype_name(e->be->kv_dtype) : "", e->max_model_len,
		 e->be->n_threads);
	return 0;
fail:
	engine_close(e);
	return ret;
}

/**
 * engine_close() - free everything engine_open() made
 * @e:		the engine (zeroed or opened)
 */
void engine_close(struct engine *e)
{
	backend_destroy(e->be);
	e->be = NULL;
	tok_free(e->tok);
	e->tok = NULL;
	if (e->have_model)
		model_free(&e->model);
	e->have_model = false;
}
