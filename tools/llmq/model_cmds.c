// SPDX-License-Identifier: GPL-2.0
/*
 * llmq's model commands, run in-process on a GGUF file: model-info prints
 * what the file describes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dtype.h"
#include "model.h"
#include "model_cmds.h"

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
