/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The engine: what llmqd computes with.  A backend (cpu, or null for tests
 * and ring measurements), the model it runs and that model's tokenizer,
 * opened together from the command line's settings.  It knows nothing of
 * rings, requests or scheduling.
 */
#ifndef LLMQD_ENGINE_H
#define LLMQD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"
#include "tokenizer.h"

#define ENGINE_MAX_EOS	4

/**
 * struct engine_config - how to open an engine
 * @backend:		"cpu", "cuda" or "null"
 * @model_path:		cpu, cuda: the GGUF file
 * @threads:		cpu: compute threads, 0 = one per core
 * @kv_bytes:		KV cache budget in bytes (cpu, null; cuda sizes its
 *			cache from @gpu_memory_utilization)
 * @gpu_memory_utilization: cuda: share of the GPU's memory to hold in all,
 *			0 = 0.9
 * @kv_blocks:		if not 0, exactly this many KV blocks (overrides
 *			@kv_bytes)
 * @block_size:		tokens per KV block
 * @kv_dtype:		cpu, cuda: the KV cache's element type (&backend_params)
 * @max_step_tokens:	most tokens in one step
 * @max_model_len:	longest sequence; 0 = the model's training context,
 *			capped by what the KV cache holds
 * @null_delay_ns:	null: wall time per step
 * @enforce_eager:	cuda: no CUDA graphs, every step launched kernel by kernel
 * @gpu_bf16_weights:	cuda: quantised weights widened to BF16 at load too
 */
struct engine_config {
	const char	*backend;
	const char	*model_path;
	unsigned int	threads;
	size_t		kv_bytes;
	double		gpu_memory_utilization;
	uint32_t	kv_blocks;
	uint32_t	block_size;
	enum backend_kv_dtype kv_dtype;
	uint32_t	max_step_tokens;
	uint32_t	max_model_len;
	uint64_t	null_delay_ns;
	bool		enforce_eager;
	bool		gpu_bf16_weights;
};

/**
 * struct engine - an open engine
 * @be:			the backend
 * @tok:		the tokenizer
 * @model:		the model (cpu, cuda)
 * @have_model:		@model is loaded
 * @eos_ids:		tokens that end a sequence
 * @nr_eos:		how many
 * @max_model_len:	longest sequence, prompt and output
 * @desc:		one line for the log: backend, model, sizes
 */
struct engine {
	struct backend		*be;
	struct tokenizer	*tok;
	struct model		model;
	bool			have_model;
	uint32_t		eos_ids[ENGINE_MAX_EOS];
	uint32_t		nr_eos;
	uint32_t		max_model_len;
	char			desc[512];
};

int engine_open(struct engine *e, const struct engine_config *c, char *err, size_t errlen);
void engine_close(struct engine *e);

#endif /* LLMQD_ENGINE_H */
