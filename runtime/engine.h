/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The engine interface: run one step over a batch of sequences.  Engines know
 * nothing of rings, clients or scheduling; they see prompts and positions.
 */
#ifndef LLMQD_ENGINE_H
#define LLMQD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

/**
 * struct engine_seq - one sequence's part of a step
 * @prompt:	the prompt bytes (runtime-owned copy)
 * @prompt_len:	their length
 * @pos:	tokens generated so far
 * @state:	engine-private, zero before the first step
 * @token:	out: the next token
 * @text:	out: its text, valid until the next step
 * @text_len:	out: bytes of @text
 * @eos:	out: the sequence ended with @token
 */
struct engine_seq {
	const char	*prompt;
	uint32_t	prompt_len;
	uint32_t	pos;
	uint64_t	state;
	uint32_t	token;
	const char	*text;
	uint32_t	text_len;
	bool		eos;
};

struct engine;

/**
 * struct engine_ops - what a backend provides
 * @name:	as given to --engine
 * @init:	set up; returns 0 or -errno
 * @fini:	release everything
 * @prompt_tokens: how many tokens a prompt has (for usage reporting)
 * @step:	produce one token for each of @n sequences; 0 or -errno
 */
struct engine_ops {
	const char *name;
	int (*init)(struct engine *e);
	void (*fini)(struct engine *e);
	uint32_t (*prompt_tokens)(struct engine *e, const char *prompt, uint32_t len);
	int (*step)(struct engine *e, struct engine_seq *const *seqs, unsigned int n);
};

/**
 * struct engine - an engine instance
 * @ops:		its operations
 * @step_delay_ns:	simulated compute time per step (null engine)
 */
struct engine {
	const struct engine_ops *ops;
	uint64_t step_delay_ns;
};

extern const struct engine_ops engine_null_ops;

#endif /* LLMQD_ENGINE_H */
