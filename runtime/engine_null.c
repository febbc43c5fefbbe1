// SPDX-License-Identifier: GPL-2.0
/*
 * The null engine, like ublk's null target: no model, a deterministic token
 * stream for testing and for measuring the ring itself.
 *
 * Token k of a prompt P has id (fnv1a32(P) + k) mod 4096, and its text is
 * " " followed by the word null_words[id mod 64].  It never ends a sequence
 * by itself: requests run to max_tokens (or a stop id).  A step takes
 * --null-delay-us of simulated compute, whatever the batch size, as a
 * memory-bound decode step would.
 */
#include <string.h>

#include "engine.h"

#define NULL_VOCAB	4096

static const char *const null_words[64] = {
	" lorem", " ipsum", " dolor", " sit", " amet", " consectetur", " adipiscing",
	" elit", " sed", " do", " eiusmod", " tempor", " incididunt", " ut", " labore",
	" et", " dolore", " magna", " aliqua", " enim", " ad", " minim", " veniam",
	" quis", " nostrud", " exercitation", " ullamco", " laboris", " nisi",
	" aliquip", " ex", " ea", " commodo", " consequat", " duis", " aute", " irure",
	" in", " reprehenderit", " voluptate", " velit", " esse", " cillum", " eu",
	" fugiat", " nulla", " pariatur", " excepteur", " sint", " occaecat",
	" cupidatat", " non", " proident", " sunt", " culpa", " qui", " officia",
	" deserunt", " mollit", " anim", " id", " est", " laborum", " llmq",
};

static uint32_t fnv1a32(const char *p, uint32_t len)
{
	uint32_t h = 2166136261u, i;

	for (i = 0; i < len; i++) {
		h ^= (uint8_t)p[i];
		h *= 16777619u;
	}
	return h;
}

static int null_init(struct engine *e)
{
	(void)e;
	return 0;
}

static void null_fini(struct engine *e)
{
	(void)e;
}

/* One "token" per whitespace-separated word, as a crude prompt length. */
static uint32_t null_prompt_tokens(struct engine *e, const char *p, uint32_t len)
{
	uint32_t i, n = 0;
	int in_word = 0;

	(void)e;
	for (i = 0; i < len; i++) {
		int sp = p[i] == ' ' || p[i] == '\n' || p[i] == '\t';

		if (!sp && !in_word)
			n++;
		in_word = !sp;
	}
	return n;
}

static int null_step(struct engine *e, struct engine_seq *const *seqs, unsigned int n)
{
	unsigned int i;

	(void)e;
	for (i = 0; i < n; i++) {
		struct engine_seq *s = seqs[i];
		const char *w;

		/* bit 32 marks the cached prompt hash as valid */
		if (!(s->state >> 32))
			s->state = 1ULL << 32 | fnv1a32(s->prompt, s->prompt_len);
		s->token = ((uint32_t)s->state + s->pos) % NULL_VOCAB;
		w = null_words[s->token % 64];
		s->text = w;
		s->text_len = (uint32_t)strlen(w);
		s->eos = false;
	}
	return 0;
}

const struct engine_ops engine_null_ops = {
	.name = "null",
	.init = null_init,
	.fini = null_fini,
	.prompt_tokens = null_prompt_tokens,
	.step = null_step,
};
