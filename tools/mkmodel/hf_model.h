/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a Hugging Face checkpoint (config.json + model.safetensors) of a
 * LlamaForCausalLM or Qwen2ForCausalLM, for conversion to GGUF.
 */
#ifndef LLMQ_HF_MODEL_H
#define LLMQ_HF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * struct hf_tensor - one tensor of the safetensors file
 * @name:	its Hugging Face name
 * @type:	GGML_TYPE_F32, GGML_TYPE_F16 or GGML_TYPE_BF16
 * @n_dims:	1 or 2
 * @shape:	rows first, as torch has it ([out, in] for a Linear weight)
 * @data:	the elements, inside the mapping
 */
struct hf_tensor {
	char		*name;
	uint32_t	type;
	uint32_t	n_dims;
	uint64_t	shape[2];
	const uint8_t	*data;
};

/**
 * struct hf_model - a checkpoint's hyper-parameters and mapped tensors
 * @arch:	GGUF architecture: "llama" or "qwen2"
 * @tied:	the LM head is the embedding (no lm_head.weight)
 */
struct hf_model {
	char		arch[16];
	uint32_t	n_embd;
	uint32_t	n_layer;
	uint32_t	n_head;
	uint32_t	n_head_kv;
	uint32_t	n_ff;
	uint32_t	n_ctx;
	uint32_t	n_vocab;
	float		rope_base;
	float		rms_eps;
	bool		tied;
	void		*map;
	size_t		map_size;
	struct hf_tensor *tensors;
	uint32_t	n_tensors;
};

int hf_model_open(struct hf_model *m, const char *dir, char *err, size_t errlen);
const struct hf_tensor *hf_model_tensor(const struct hf_model *m, const char *gguf_name,
					char *hf_name, size_t len);
int hf_model_row(const struct hf_model *m, const struct hf_tensor *t, const char *gguf_name,
		 uint64_t row, float *out);
void hf_model_close(struct hf_model *m);

#endif /* LLMQ_HF_MODEL_H */
