/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sampler: picks the next token from a row of logits the way vLLM's
 * SamplingParams describe, per request, and decides when a request stops.
 * It knows token ids and text pieces, nothing of rings or engines.
 */
#ifndef LLMQD_SAMPLER_H
#define LLMQD_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAMPLER_MAX_STOP	32	/* stop strings per request */

/**
 * struct sampler_params - one request's sampling, in natural units
 * @temperature:	0 = greedy (argmax, lowest id on ties; so is anything below
 *			1e-5, as in vLLM); else logits / temperature
 * @top_k:		keep the k most likely tokens (and any tied with the k-th),
 *			0 = all
 * @top_p:		keep the smallest set with cumulative probability >= top_p, (0, 1]
 * @min_p:		drop tokens with probability < min_p * max probability, [0, 1];
 *			top-k, then top-p, then min-p
 * @repetition_penalty:	> 1 discourages tokens already in prompt or output (1 = off);
 *			a positive logit is divided by it, a negative one multiplied
 * @presence_penalty:	subtracted once from the logit of every token in the output
 * @frequency_penalty:	subtracted per occurrence in the output
 * @seed:		the generator's seed: same seed and inputs, same tokens
 * @max_tokens:		stop after this many generated tokens
 * @ignore_eos:		do not stop at end-of-sequence tokens
 * @eos_ids:		end-of-sequence token ids of the model
 * @nr_eos_ids:		how many
 * @stop_ids:		further token ids that stop generation (not emitted)
 * @nr_stop_ids:	how many
 * @stop:		stop strings (at most 32, each 1 to 256 bytes); output stops
 *			before the first occurrence, which is not emitted, even
 *			when split across tokens
 * @nr_stop:		how many
 *
 * sampler_create() copies all of it; see runtime/sampler.c for the exact
 * semantics and the kernel-doc of each function.
 */
struct sampler_params {
	float		temperature;
	uint32_t	top_k;
	float		top_p;
	float		min_p;
	float		repetition_penalty;
	float		presence_penalty;
	float		frequency_penalty;
	uint64_t	seed;
	uint32_t	max_tokens;
	bool		ignore_eos;
	const uint32_t	*eos_ids;
	uint32_t	nr_eos_ids;
	const uint32_t	*stop_ids;
	uint32_t	nr_stop_ids;
	const char *const *stop;
	uint32_t	nr_stop;
};

enum sampler_finish {
	SAMPLER_CONTINUE = 0,
	SAMPLER_LENGTH,		/* max_tokens reached */
	SAMPLER_STOP,		/* eos, stop id or stop string */
};

/* &sampler_pen.n: the token is in the prompt; the other bits count it in the output. */
#define SAMPLER_PEN_PROMPT	(1u << 31)

/**
 * struct sampler_pen - a token the penalties touch
 * @id:		the token
 * @n:		its occurrences in the output, | SAMPLER_PEN_PROMPT if it is in
 *		the prompt
 */
struct sampler_pen {
	uint32_t	id;
	uint32_t	n;
};

/**
 * struct sampler_draw - everything the next draw needs, for a drawer elsewhere
 * @temperature:	0 = greedy, else > 0
 * @top_k:		0 = all
 * @top_p:		(0, 1]
 * @min_p:		[0, 1]
 * @u:			the draw, uniform in [0, 1)
 * @rep:		repetition penalty, 1 = off
 * @pres:		presence penalty
 * @freq:		frequency penalty
 * @pen:		with a penalty on, each distinct token of the prompt and
 *			the output so far, in no order (not NULL even when
 *			there are none); NULL: no penalty
 * @n_pen:		entries in @pen
 *
 * @pen is the sampler's own list, valid until its next sampler_accept():
 * a backend copies it when it takes the step.
 */
struct sampler_draw {
	float				temperature;
	uint32_t			top_k;
	float				top_p;
	float				min_p;
	float				u;
	float				rep;
	float				pres;
	float				freq;
	const struct sampler_pen	*pen;
	uint32_t			n_pen;
};

struct sampler;

int sampler_check(const struct sampler_params *p, char *err, size_t errlen);
struct sampler *sampler_create(const struct sampler_params *p, uint32_t vocab_size,
			       const uint32_t *prompt, uint32_t nr_prompt);
void sampler_free(struct sampler *s);
uint32_t sampler_sample(struct sampler *s, float *logits, float *logprob);
void sampler_next_draw(struct sampler *s, struct sampler_draw *p);
uint32_t sampler_pen_room(const struct sampler *s);
int sampler_accept(struct sampler *s, uint32_t token, const char *piece, size_t len,
		   const char **emit, size_t *emit_len);
int sampler_flush(struct sampler *s, const char **emit, size_t *emit_len);

#endif /* LLMQD_SAMPLER_H */
