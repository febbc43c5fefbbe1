/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Importing a Hugging Face tokenizer.json as GGUF tokenizer metadata.
 */
#ifndef LLMQ_HF_TOKENIZER_H
#define LLMQ_HF_TOKENIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"

/**
 * struct hf_tokenizer - a vocabulary ready for tokenizer.ggml.* keys
 * @model:	"llama" (SentencePiece-style) or "gpt2" (byte-level BPE)
 * @pre:	tokenizer.ggml.pre for gpt2 ("llama-bpe", "qwen2", "default")
 */
struct hf_tokenizer {
	char		model[16];
	char		pre[32];
	uint32_t	n;
	char		**tokens;
	uint32_t	*lens;
	float		*scores;
	int32_t		*types;
	uint32_t	n_merges;
	char		**merges;
	int32_t		bos;
	int32_t		eos;
	int32_t		unk;
	bool		add_bos;
	bool		add_space_prefix;
	uint32_t	*index;		/* text -> id + 1, open addressing */
	uint32_t	index_size;
};

int hf_tokenizer_load(struct hf_tokenizer *t, const char *path, char *err, size_t errlen);
int hf_tokenizer_load_spm_vocab(struct hf_tokenizer *t, const char *path, char *err,
				size_t errlen);
void hf_tokenizer_byte_vocab(struct hf_tokenizer *t);
int hf_tokenizer_find(const struct hf_tokenizer *t, const char *text);
int hf_tokenizer_write(const struct hf_tokenizer *t, struct gguf_writer *w);
void hf_tokenizer_free(struct hf_tokenizer *t);

#endif /* LLMQ_HF_TOKENIZER_H */
