/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A LLaMA-family model as described by a GGUF file: hyper-parameters,
 * per-layer tensors with their shapes checked, and the tokenizer vocabulary.
 */
#ifndef LLMQD_MODEL_H
#define LLMQD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tokenizer.h"

/* The bundled model (models/ in the source tree, make install copies it). */
#define LLMQ_DEFAULT_MODEL	"kjv-11m-q8_0.gguf"
#ifndef LLMQ_SRC_MODEL_DIR
#define LLMQ_SRC_MODEL_DIR	"models"
#endif
#ifndef LLMQ_MODEL_DIR
#define LLMQ_MODEL_DIR		"/usr/local/share/llmq/models"
#endif

enum model_arch {
	ARCH_LLAMA,	/* LLaMA 1/2/3, TinyLlama, SmolLM, Mistral (no sliding window) */
	ARCH_QWEN2,	/* QKV bias, NeoX RoPE */
};

enum rope_type {
	ROPE_NORMAL,	/* rotate adjacent pairs (x0, x1) */
	ROPE_NEOX,	/* rotate halves (x_i, x_i+d/2) */
};

/**
 * struct model_hparams - what the metadata says
 */
struct model_hparams {
	enum model_arch	arch;
	uint32_t	n_vocab;
	uint32_t	n_ctx_train;
	uint32_t	n_embd;
	uint32_t	n_layer;
	uint32_t	n_head;
	uint32_t	n_head_kv;
	uint32_t	head_dim;
	uint32_t	n_ff;
	uint32_t	n_rot;
	float		rms_eps;
	float		rope_freq_base;
	enum rope_type	rope;
	bool		tied_embeddings;
	bool		qkv_bias;
};

struct model_layer {
	const struct gguf_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv;
	const struct gguf_tensor *ffn_norm, *w_gate, *w_up, *w_down;
};

/**
 * struct model - a loaded model: the mapped file and views into it
 * @vocab:	tokenizer vocabulary; its arrays point into @vocab_mem
 */
struct model {
	struct gguf		gguf;
	struct model_hparams	hp;
	const struct gguf_tensor *tok_embd, *output_norm, *output;
	struct model_layer	*layers;
	struct tok_vocab	vocab;
	void			*vocab_mem;
	char			name[128];
	char			pre[64];
	char			err[512];
};

int model_load(struct model *m, const char *path);
int model_parse(struct model *m, const void *buf, size_t size);
const char *model_default_path(char *buf, size_t len);
void model_free(struct model *m);
const char *model_arch_name(enum model_arch a);

#endif /* LLMQD_MODEL_H */
