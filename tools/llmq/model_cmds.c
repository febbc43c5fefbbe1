// SPDX-License-Identifier: GPL-2.0
/*
 * llmq's model commands, run in-process on a GGUF file: model-info prints
 * what the file describes; tokenize and detokenize use its tokenizer.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "model.h"
#include "model_cmds.h"
#include "tokenizer.h"

static void count_types(const struct gguf *g, uint64_t *bytes, uint64_t *params)
{
	uint64_t i;

	for (i = 0; i < g->n_tensors; i++) {
		bytes[g->tensors[i].type] += g->tensors[i].size;
		params[g->tensors[i].type] += g->tensors[i].nelem;
	}
}

/**
 * cmd_model_info() - llmq model-info FILE
 * @argc:	arguments after "model-info"
 * @argv:	FILE
 *
 * Return: exit status.
 */
int cmd_model_info(int argc, char **argv)
{
	uint64_t bytes[GGML_TYPE_COUNT] = { 0 }, params[GGML_TYPE_COUNT] = { 0 }, total = 0;
	const struct model_hparams *hp;
	const struct tok_vocab *v;
	struct model m;
	unsigned int t;

	if (argc != 2) {
		fprintf(stderr, "usage: llmq model-info FILE.gguf\n");
		return 2;
	}
	if (model_load(&m, argv[1])) {
		fprintf(stderr, "llmq: %s\n", m.err);
		return 1;
	}
	hp = &m.hp;
	v = &m.vocab;
	count_types(&m.gguf, bytes, params);
	for (t = 0; t < GGML_TYPE_COUNT; t++)
		total += params[t];
	printf("%-22s %s\n", "file", argv[1]);
	printf("%-22s %s\n", "name", m.name[0] ? m.name : "-");
	printf("%-22s %s (GGUF v%u, %" PRIu64 " keys, %" PRIu64 " tensors)\n", "architecture",
	       model_arch_name(hp->arch), m.gguf.version, m.gguf.n_kv, m.gguf.n_tensors);
	printf("%-22s %.1fM\n", "parameters", total / 1e6);
	printf("%-22s %u\n", "layers", hp->n_layer);
	printf("%-22s %u\n", "embedding", hp->n_embd);
	printf("%-22s %u (kv %u, GQA %u, head dim %u)\n", "attention heads", hp->n_head,
	       hp->n_head_kv, hp->n_head / hp->n_head_kv, hp->head_dim);
	printf("%-22s %u\n", "feed forward", hp->n_ff);
	printf("%-22s %u\n", "context (trained)", hp->n_ctx_train);
	printf("%-22s %s, base %g, %u dims\n", "rope", hp->rope == ROPE_NEOX ? "neox" : "normal",
	       hp->rope_freq_base, hp->n_rot);
	printf("%-22s %g\n", "rms_norm_eps", hp->rms_eps);
	printf("%-22s %s\n", "embeddings", hp->tied_embeddings ? "tied" : "separate output");
	printf("%-22s %s\n", "qkv bias", hp->qkv_bias ? "yes" : "no");
	for (t = 0; t < GGML_TYPE_COUNT; t++)
		if (bytes[t])
			printf("%-22s %-5s %" PRIu64 " parameters, %.2f MiB\n", "dtype",
			       dtype_info(t)->name, params[t], bytes[t] / 1048576.0);
	printf("%-22s %s, %u tokens, %u merges%s%s\n", "tokenizer",
	       v->model == TOK_MODEL_SPM ? "llama (SentencePiece BPE)" : "gpt2 (byte-level BPE)",
	       v->n_tokens, v->n_merges, v->pre ? ", pre " : "", v->pre ? v->pre : "");
	printf("%-22s bos %d%s, eos %d, unk %d\n", "special tokens", v->bos,
	       v->add_bos ? " (added)" : "", v->eos, v->unk);
	model_free(&m);
	return 0;
}

/* Load @path and build its tokenizer; messages go to stderr. */
static struct tokenizer *open_tokenizer(const char *path, struct model *m)
{
	struct tokenizer *t;
	char err[256];

	if (model_load(m, path)) {
		fprintf(stderr, "llmq: %s\n", m->err);
		return NULL;
	}
	t = tok_create(&m->vocab, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "llmq: %s: tokenizer: %s\n", path, err);
		model_free(m);
	}
	return t;
}

static const struct option tok_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "no-special", no_argument, NULL, 'S' },
	{ "parse-special", no_argument, NULL, 'P' },
	{ "skip-special", no_argument, NULL, 'K' },
	{ NULL, 0, NULL, 0 },
};

/**
 * cmd_tokenize() - llmq tokenize --model FILE [--no-special] [--parse-special] TEXT
 * @argc:	arguments after "tokenize"
 * @argv:	the options and TEXT
 *
 * Prints the ids on one line.  BOS/EOS are added as the model says unless
 * --no-special; special-token text in TEXT is matched with --parse-special.
 *
 * Return: exit status.
 */
int cmd_tokenize(int argc, char **argv)
{
	const char *path = NULL;
	bool special = true, parse = false;
	struct tokenizer *t;
	struct model m;
	uint32_t *ids;
	size_t n, i;
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", tok_opts, NULL)) != -1) {
		if (opt == 'm')
			path = optarg;
		else if (opt == 'S')
			special = false;
		else if (opt == 'P')
			parse = true;
		else
			goto usage;
	}
	if (!path || optind != argc - 1)
		goto usage;
	t = open_tokenizer(path, &m);
	if (!t)
		return 1;
	err = tok_encode(t, argv[optind], strlen(argv[optind]), special, parse, &ids, &n);
	if (err) {
		fprintf(stderr, "llmq: tokenize: %s\n", strerror(-err));
	} else {
		for (i = 0; i < n; i++)
			printf("%s%u", i ? " " : "", ids[i]);
		putchar('\n');
		free(ids);
	}
	tok_free(t);
	model_free(&m);
	return err ? 1 : 0;
usage:
	fprintf(stderr, "usage: llmq tokenize --model FILE [--no-special] [--parse-special] TEXT\n");
	return 2;
}

/**
 * cmd_detokenize() - llmq detokenize --model FILE [--skip-special] ID...
 * @argc:	arguments after "detokenize"
 * @argv:	the options and ids
 *
 * Return: exit status.
 */
int cmd_detokenize(int argc, char **argv)
{
	const char *path = NULL;
	bool skip = false;
	struct tokenizer *t;
	struct model m;
	uint32_t *ids;
	size_t n = 0, len;
	char *text, *end;
	int opt, err, i;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", tok_opts, NULL)) != -1) {
		if (opt == 'm')
			path = optarg;
		else if (opt == 'K')
			skip = true;
		else
			goto usage;
	}
	if (!path || optind >= argc)
		goto usage;
	ids = calloc((size_t)(argc - optind), sizeof(*ids));
	if (!ids)
		return 1;
	for (i = optind; i < argc; i++) {
		unsigned long v;

		errno = 0;
		v = strtoul(argv[i], &end, 10);
		if (!*argv[i] || *end || errno || v > UINT32_MAX || *argv[i] == '-') {
			fprintf(stderr, "llmq: detokenize: '%s' is not a token id\n", argv[i]);
			free(ids);
			return 2;
		}
		ids[n++] = (uint32_t)v;
	}
	t = open_tokenizer(path, &m);
	if (!t) {
		free(ids);
		return 1;
	}
	err = tok_decode(t, ids, n, skip, &text, &len);
	if (err) {
		fprintf(stderr, "llmq: detokenize: %s\n", err == -EINVAL ?
			"a token id is outside the vocabulary" : strerror(-err));
	} else {
		fwrite(text, 1, len, stdout);
		putchar('\n');
		free(text);
	}
	free(ids);
	tok_free(t);
	model_free(&m);
	return err ? 1 : 0;
usage:
	fprintf(stderr, "usage: llmq detokenize --model FILE [--skip-special] ID...\n");
	return 2;
}
