/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The scheduler: the batch window, continuous batching with chunked prefill
 * and a token budget, KV block allocation through the block manager, and
 * preemption when blocks run out.  It sees sequences of token ids and a
 * clock value its caller passes in; it knows nothing of rings, requests,
 * backends or CUDA, so tests drive it with a fake clock and a fake engine.
 *
 * One step, as the caller runs it:
 *
 *	sched_poll()	IDLE, WAIT until a deadline (the batch window), or STEP
 *	sched_plan()	pick the step's sequences and token chunks, give them
 *			KV blocks (preempting if needed)
 *	(the engine computes the batch)
 *	sched_advance()	the chunks are now in the KV cache
 *	sched_append()	a sampled token joins its sequence
 *	sched_finish()	a sequence ends (done, stopped or cancelled)
 *
 * A caller that runs ahead of the engine (plans and submits step N + 1
 * while step N still computes, the engine feeding step N's sampled tokens
 * to step N + 1 itself) calls sched_append_pending() instead of
 * sched_append(), when the token's value is not known yet, and
 * sched_resolve() once it is.  Nothing enters the prefix cache and no
 * sequence is readmitted before the tokens it depends on are known.
 */
#ifndef LLMQD_SCHEDULER_H
#define LLMQD_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_blocks.h"
#include "list.h"

/* &sched_seq.tokens value of a token sampled but not known yet (sched_append_pending()). */
#define SCHED_TOKEN_PENDING	UINT32_MAX

/**
 * struct sched_config - the knobs, with vLLM's names
 * @batch_timeout_ns:	how long an idle engine waits for company (0: at once)
 * @max_batch_size:	the window closes early when this many wait
 * @max_num_seqs:	most sequences in one step
 * @max_num_batched_tokens: most tokens in one step (decodes count one each)
 * @max_num_seqs_limit:	room in a step for this many sequences, so that
 *			@max_num_seqs may be raised to it while running (0: no
 *			more room than @max_num_seqs)
 * @max_queued:		most waiting sequences; sched_add() says -EBUSY beyond
 * @max_model_len:	longest sequence, prompt and output (at most the KV
 *			pool's capacity, so that a lone sequence always fits)
 * @watermark_blocks:	blocks a new sequence must leave free when others run,
 *			so that running ones can grow without preempting at once
 */
struct sched_config {
	uint64_t	batch_timeout_ns;
	uint32_t	max_batch_size;
	uint32_t	max_num_seqs;
	uint32_t	max_num_batched_tokens;
	uint32_t	max_num_seqs_limit;
	uint32_t	max_queued;
	uint32_t	max_model_len;
	uint32_t	watermark_blocks;
};

enum sched_seq_state {
	SEQ_NEW = 0,	/* not yet added */
	SEQ_WAITING,	/* queued (new, or preempted and to be recomputed) */
	SEQ_RUNNING,	/* holds KV blocks, gets work every step it fits */
	SEQ_DONE,	/* finished or cancelled; holds nothing */
};

/**
 * struct sched_seq - one sequence as the scheduler sees it
 * @link:		waiting or running list
 * @tokens:		prompt then generated tokens (the caller's array, with
 *			room for @max_len)
 * @n_tokens:		tokens so far
 * @n_pending:		of @n_tokens, the trailing ones appended by
 *			sched_append_pending() and not yet given a value by
 *			sched_resolve(); they read SCHED_TOKEN_PENDING
 * @max_len:		capacity of @tokens; the sequence never grows past it
 * @n_prompt:		of @n_tokens, the prompt
 * @n_computed:		leading tokens whose K/V is in the cache
 * @blocks:		block table, room for max_model_len / block_size + 1
 * @n_blocks:		entries in use
 * @n_committed:	leading blocks known to the prefix cache: only blocks
 *			both computed and free of pending tokens are
 * @key:		prefix-cache key of block @n_committed - 1
 * @salt:		prefix-cache salt: only equal salts share blocks
 * @priority:		lower runs first
 * @arrival:		order of sched_add() calls, the tie-break
 * @t_arrival:		clock at sched_add()
 * @t_scheduled:	clock when first given work (0 before)
 * @state:		SEQ_*
 * @preemptions:	times preempted
 * @cached_tokens:	prompt tokens found in the prefix cache at admission
 * @step_pos:		this step: position of the chunk's first token
 * @step_len:		this step: tokens in the chunk (0: not in the step)
 * @step_sample:	this step: the chunk ends the sequence's tokens and
 *			@n_tokens < @max_len, so its last position gets logits
 *			and a new token
 * @priv:		the caller's
 */
struct sched_seq {
	struct list_head	link;
	uint32_t		*tokens;
	uint32_t		n_tokens;
	uint32_t		n_pending;
	uint32_t		max_len;
	uint32_t		n_prompt;
	uint32_t		n_computed;
	uint32_t		*blocks;
	uint32_t		n_blocks;
	uint32_t		n_committed;
	struct kv_key		key;
	uint64_t		salt;
	int32_t			priority;
	uint64_t		arrival;
	uint64_t		t_arrival;
	uint64_t		t_scheduled;
	enum sched_seq_state	state;
	uint32_t		preemptions;
	uint32_t		cached_tokens;
	uint32_t		step_pos;
	uint32_t		step_len;
	bool			step_sample;
	void			*priv;
};

/**
 * struct sched_stats - counters since sched_init()
 * @steps:		steps planned with at least one sequence
 * @preemptions:	sequences preempted
 * @prompt_tokens:	prompt tokens computed (recomputation included)
 * @generation_tokens:	tokens appended by sched_append() or
 *			sched_append_pending() (not counted again when resolved)
 * @cached_tokens:	prompt tokens taken from the prefix cache
 * @cache_queries:	prompt tokens of admitted sequences (each counted once,
 *			at its first admission: retries and recomputation are
 *			not queries), the denominator of @cached_tokens
 */
struct sched_stats {
	uint64_t	steps;
	uint64_t	preemptions;
	uint64_t	prompt_tokens;
	uint64_t	generation_tokens;
	uint64_t	cached_tokens;
	uint64_t	cache_queries;
};

/**
 * struct sched_batch - one planned step
 * @seqs:	its sequences, decodes first, each with step_pos/step_len set
 * @n_seqs:	how many
 * @n_tokens:	their chunk lengths summed
 * @n_decode:	of @n_seqs, single-token decodes
 */
struct sched_batch {
	struct sched_seq	**seqs;
	uint32_t		n_seqs;
	uint32_t		n_tokens;
	uint32_t		n_decode;
};

enum sched_action {
	SCHED_ACT_IDLE,	/* nothing to do */
	SCHED_ACT_WAIT,	/* the batch window is open: call again at the deadline */
	SCHED_ACT_STEP,	/* plan and run a step now */
};

/**
 * struct sched - scheduler state
 * @cfg:	its configuration
 * @kv:		the block manager (not owned)
 * @waiting:	by priority, then arrival
 * @running:	by priority, then arrival: the tail is preempted first
 * @nr_waiting:	entries in @waiting
 * @nr_running:	entries in @running
 * @window_start: clock when the first request arrived at an idle engine
 * @next_arrival: the next &sched_seq.arrival
 * @batch:	the planned step; room for max_num_seqs
 * @stats:	counters
 */
struct sched {
	struct sched_config	cfg;
	struct kv_blocks	*kv;
	struct list_head	waiting;
	struct list_head	running;
	uint32_t		nr_waiting;
	uint32_t		nr_running;
	uint64_t		window_start;
	uint64_t		next_arrival;
	struct sched_batch	batch;
	struct sched_stats	stats;
};

int sched_init(struct sched *s, const struct sched_config *cfg, struct kv_blocks *kv);
void sched_fini(struct sched *s);
uint32_t sched_max_blocks(const struct sched *s);
int sched_add(struct sched *s, struct sched_seq *q, uint64_t now);
enum sched_action sched_poll(struct sched *s, uint64_t now, uint64_t *deadline);
const struct sched_batch *sched_plan(struct sched *s, uint64_t now);
void sched_advance(struct sched *s);
void sched_append(struct sched *s, struct sched_seq *q, uint32_t token);
void sched_append_pending(struct sched *s, struct sched_seq *q);
void sched_resolve(struct sched *s, struct sched_seq *q, uint32_t token);
void sched_finish(struct sched *s, struct sched_seq *q);

#endif /* LLMQD_SCHEDULER_H */
