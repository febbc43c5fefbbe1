// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler: "the bus leaves when full or on time", then continuous
 * batching.  When the engine is idle and a request arrives, the batch window
 * opens for batch_timeout_ns or until max_batch_size requests wait.  From
 * then on steps run back to back; at every step boundary finished sequences
 * have already left and waiting ones join.
 *
 * A step is planned as vLLM's chunked prefill does it: running decodes
 * first (one token each), then running prefills, then waiting sequences,
 * each taking what is left of max_num_batched_tokens, so a long prompt is
 * cut into chunks and never stalls the decodes.  Every sequence is simply
 * "n_computed of n_tokens": a prompt, a half-done prompt and a preempted
 * sequence to recompute differ only in how far behind they are.
 *
 * When a running sequence needs a KV block and none is free, the running
 * sequence with the lowest priority and the latest arrival is preempted,
 * losing the work it was already given in this step if any: its blocks are
 * freed (the full ones stay in the prefix cache, so recomputing them is
 * often a lookup) and it goes back to the waiting queue, ahead of
 * everything that arrived after it.
 *
 * A caller running ahead of the engine appends a sampled token before its
 * value is known (sched_append_pending()) and gives the value later
 * (sched_resolve()).  The engine feeds the token to the next step itself,
 * so a pending token is a fine decode input; what needs its value waits:
 * a prefix-cache key (a block is committed only once all its tokens are
 * known), a prefix-cache lookup and a recomputation from scratch (a
 * preempted sequence is not readmitted while a token is pending).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

static uint32_t div_up(uint32_t a, uint32_t b)
{
	return a / b + !!(a % b);
}

/* Lower priority value first; among equals, earlier arrival first. */
static bool seq_before(const struct sched_seq *a, const struct sched_seq *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority;
	return a->arrival < b->arrival;
}

static void insert_sorted(struct list_head *head, struct sched_seq *q)
{
	struct list_head *pos = head->prev;

	while (pos != head && seq_before(q, list_entry(pos, struct sched_seq, link)))
		pos = pos->prev;
	list_add(&q->link, pos);
}

/**
 * sched_init() - set up a scheduler over a block manager
 * @s:		the scheduler
 * @cfg:	its configuration (copied)
 * @kv:		the KV block manager; must outlive @s
 *
 * Return: 0, -EINVAL for a configuration that could never run a sequence
 * (a zero limit, max_num_seqs_limit below max_num_seqs, or max_model_len
 * beyond what the KV pool holds), -ENOMEM.
 */
int sched_init(struct sched *s, const struct sched_config *cfg, struct kv_blocks *kv)
{
	uint64_t pool = (uint64_t)kvb_num_blocks(kv) * kvb_block_size(kv);
	uint32_t room = cfg->max_num_seqs_limit ? cfg->max_num_seqs_limit : cfg->max_num_seqs;

	memset(s, 0, sizeof(*s));
	if (!cfg->max_batch_size || !cfg->max_num_seqs || !cfg->max_num_batched_tokens ||
	    !cfg->max_queued || cfg->max_model_len < 2 || cfg->max_model_len > pool ||
	    room < cfg->max_num_seqs)
		return -EINVAL;
	s->cfg = *cfg;
	s->kv = kv;
	INIT_LIST_HEAD(&s->waiting);
	INIT_LIST_HEAD(&s->running);
	s->next_arrival = 1;
	s->cfg.max_num_seqs_limit = room;
	s->batch.seqs = calloc(room, sizeof(*s->batch.seqs));
	return s->batch.seqs ? 0 : -ENOMEM;
}

/**
 * sched_fini() - free the scheduler's memory
 * @s:		the scheduler, with no sequences left
 */
void sched_fini(struct sched *s)
{
	free(s->batch.seqs);
	s->batch.seqs = NULL;
}

/**
 * sched_max_blocks() - the block table size a sequence needs
 * @s:		the scheduler
 *
 * Return: entries for &sched_seq.blocks: enough for max_model_len tokens.
 */
uint32_t sched_max_blocks(const struct sched *s)
{
	return div_up(s->cfg.max_model_len, kvb_block_size(s->kv));
}

/**
 * sched_add() - queue a new sequence
 * @s:		the scheduler
 * @q:		the sequence: @tokens holds the @n_prompt prompt tokens
 *		(@n_tokens == @n_prompt), @max_len and @priority and @salt set,
 *		@blocks sized by sched_max_blocks()
 * @now:	the clock
 *
 * Return: 0, -EINVAL for an empty prompt or inconsistent lengths, -E2BIG
 * for a prompt that leaves no room to generate within max_model_len,
 * -EBUSY when max_queued sequences already wait.
 */
int sched_add(struct sched *s, struct sched_seq *q, uint64_t now)
{
	if (!q->n_prompt || q->n_tokens != q->n_prompt || q->max_len <= q->n_prompt)
		return -EINVAL;
	if (q->n_prompt >= s->cfg.max_model_len || q->max_len > s->cfg.max_model_len)
		return -E2BIG;
	if (s->nr_waiting >= s->cfg.max_queued)
		return -EBUSY;
	if (!s->nr_waiting && !s->nr_running)
		s->window_start = now;
	q->arrival = s->next_arrival++;
	q->t_arrival = now;
	q->t_scheduled = 0;
	q->n_computed = 0;
	q->n_pending = 0;
	q->n_blocks = 0;
	q->n_committed = 0;
	memset(&q->key, 0, sizeof(q->key));
	q->preemptions = 0;
	q->cached_tokens = 0;
	q->step_len = 0;
	q->step_sample = false;
	q->state = SEQ_WAITING;
	insert_sorted(&s->waiting, q);
	s->nr_waiting++;
	return 0;
}

/**
 * sched_poll() - what the caller should do now
 * @s:		the scheduler
 * @now:	the clock
 * @deadline:	out, for SCHED_ACT_WAIT: when to call again
 *
 * Return: SCHED_ACT_STEP when sequences run, or wait and the window has
 * closed (timed out, full, or no window configured); SCHED_ACT_WAIT while the
 * window is open; SCHED_ACT_IDLE when nothing waits.
 */
enum sched_action sched_poll(struct sched *s, uint64_t now, uint64_t *deadline)
{
	uint64_t dl;

	if (s->nr_running)
		return SCHED_ACT_STEP;
	if (!s->nr_waiting)
		return SCHED_ACT_IDLE;
	if (!s->cfg.batch_timeout_ns || s->nr_waiting >= s->cfg.max_batch_size)
		return SCHED_ACT_STEP;
	dl = s->window_start + s->cfg.batch_timeout_ns;
	if (now >= dl)
		return SCHED_ACT_STEP;
	*deadline = dl;
	return SCHED_ACT_WAIT;
}

/* Give @q blocks for positions 0 .. @n_pos - 1; -ENOSPC if the pool is dry. */
static int seq_grow(struct sched *s, struct sched_seq *q, uint32_t n_pos)
{
	uint32_t need = div_up(n_pos, kvb_block_size(s->kv));
	int err;

	while (q->n_blocks < need) {
		err = kvb_alloc(s->kv, &q->blocks[q->n_blocks]);
		if (err)
			return err;
		q->n_blocks++;
	}
	return 0;
}

/*
 * Drop every block, the last first: a chain's tail then becomes the least
 * recently freed and is evicted before the head other prompts may share.
 */
static void seq_release(struct sched *s, struct sched_seq *q)
{
	while (q->n_blocks)
		kvb_put(s->kv, q->blocks[--q->n_blocks]);
	q->n_computed = 0;
	q->n_committed = 0;
	memset(&q->key, 0, sizeof(q->key));
}

/*
 * Commit every block both computed and free of pending tokens: a key over a
 * pending token would name a prefix nobody has, and the block could never
 * be committed under its real key afterwards.
 */
static void seq_commit(struct sched *s, struct sched_seq *q)
{
	uint32_t bs = kvb_block_size(s->kv), known = q->n_tokens - q->n_pending;
	uint32_t upto = (q->n_computed < known ? q->n_computed : known) / bs;

	while (q->n_committed < upto) {
		const uint32_t *t = q->tokens + (size_t)q->n_committed * bs;

		kvb_commit(s->kv, q->blocks[q->n_committed], &q->key, q->salt, t);
		kvb_key(&q->key, q->salt, t, bs, &q->key);
		q->n_committed++;
	}
}

/*
 * A sequence at max_len has nothing left to produce: its last token can
 * only be pending (a known one would have ended it), and computing it would
 * sample a token past the end.
 */
static bool at_end(const struct sched_seq *q)
{
	return q->n_tokens >= q->max_len;
}

static bool is_decode(const struct sched_seq *q)
{
	return q->n_tokens - q->n_computed == 1 && q->n_computed >= q->n_prompt;
}

/* Take back the work @q was given in the step being planned. */
static void batch_drop(struct sched *s, struct sched_seq *q)
{
	struct sched_batch *b = &s->batch;
	uint32_t i;

	for (i = 0; i < b->n_seqs && b->seqs[i] != q; i++)
		;
	if (i == b->n_seqs)
		return;
	b->n_tokens -= q->step_len;
	if (is_decode(q))
		b->n_decode--;
	else
		s->stats.prompt_tokens -= q->step_len;
	memmove(&b->seqs[i], &b->seqs[i + 1], (b->n_seqs - i - 1) * sizeof(*b->seqs));
	b->n_seqs--;
	q->step_len = 0;
	q->step_sample = false;
}

/* Its tokens, pending ones included, stay as they are: only K/V is lost. */
static void preempt(struct sched *s, struct sched_seq *q)
{
	batch_drop(s, q);
	list_del_init(&q->link);
	s->nr_running--;
	seq_release(s, q);
	q->state = SEQ_WAITING;
	q->preemptions++;
	s->stats.preemptions++;
	insert_sorted(&s->waiting, q);
	s->nr_waiting++;
}

static void batch_add(struct sched *s, struct sched_seq *q, uint32_t len, uint64_t now)
{
	struct sched_batch *b = &s->batch;

	q->step_pos = q->n_computed;
	q->step_len = len;
	q->step_sample = q->n_computed + len == q->n_tokens && !at_end(q);
	if (!q->t_scheduled)
		q->t_scheduled = now;
	if (is_decode(q))
		b->n_decode++;
	else
		s->stats.prompt_tokens += len;
	b->seqs[b->n_seqs++] = q;
	b->n_tokens += len;
}

/*
 * One pass over the running sequences: decodes (@decode) or chunks of
 * prefill.  Returns false once the step is full.  A sequence at max_len
 * gets no work and takes no place in the step: it keeps its blocks (and its
 * place in the running list, so it can still be preempted) until the
 * caller, learning its last token, ends it; the place in the step goes to
 * a sequence that can use it.
 */
static bool plan_running(struct sched *s, bool decode, uint64_t now)
{
	struct sched_batch *b = &s->batch;
	struct list_head *pos = s->running.next;
	struct sched_seq *q, *victim;
	uint32_t left, len;

	while (pos != &s->running) {
		q = list_entry(pos, struct sched_seq, link);
		left = q->n_tokens - q->n_computed;
		if (q->step_len || !left || (left == 1) != decode || at_end(q)) {
			pos = pos->next;
			continue;
		}
		if (b->n_seqs >= s->cfg.max_num_seqs || b->n_tokens >= s->cfg.max_num_batched_tokens)
			return false;
		len = left;
		if (len > s->cfg.max_num_batched_tokens - b->n_tokens)
			len = s->cfg.max_num_batched_tokens - b->n_tokens;
		/*
		 * The victim is the last running sequence, even one already
		 * given work in this step (decodes are planned first): @q, if
		 * nothing runs behind it.
		 */
		victim = NULL;
		while (victim != q && seq_grow(s, q, q->n_computed + len)) {
			victim = list_entry(s->running.prev, struct sched_seq, link);
			preempt(s, victim);
		}
		/* Nothing runs behind @q any more. */
		if (victim == q)
			return true;
		batch_add(s, q, len, now);
		pos = q->link.next;
	}
	return true;
}

/*
 * Admit waiting sequences in order while the step and the pool have room.
 * One preempted while a token of its was pending is passed over until
 * sched_resolve() gives the value: recomputing needs every token, and the
 * prefix-cache lookup must not hash a placeholder.  The wait is short (the
 * engine's step in flight) and says nothing about the pool, so the ones
 * behind it are still considered; a sequence that does not fit still stops
 * admission, so that none overtakes it on blocks.  One at max_len, which
 * its caller is about to end, has nothing to compute and is passed over
 * too.
 */
static void plan_waiting(struct sched *s, uint64_t now)
{
	struct sched_batch *b = &s->batch;
	uint32_t bs = kvb_block_size(s->kv), need, len, wm, matched;
	struct list_head *pos = s->waiting.next;
	struct sched_seq *q;

	while (pos != &s->waiting && b->n_seqs < s->cfg.max_num_seqs &&
	       b->n_tokens < s->cfg.max_num_batched_tokens) {
		q = list_entry(pos, struct sched_seq, link);
		pos = pos->next;
		if (q->n_pending || at_end(q))
			continue;
		wm = s->nr_running ? s->cfg.watermark_blocks : 0;
		/*
		 * Whatever the cache holds, the first uncached position needs a
		 * fresh block: with none to spare, do not hash the prompt again
		 * only to give the blocks back.
		 */
		if (kvb_num_free(s->kv) < 1 + wm)
			break;
		/*
		 * Leave one token to compute: its logits pick the next one.
		 * None is pending (passed over above): only real tokens are
		 * hashed.
		 */
		matched = kvb_match(s->kv, q->salt, q->tokens, q->n_tokens - 1, q->blocks, &q->key);
		q->n_blocks = matched;
		q->n_committed = matched;
		q->n_computed = matched * bs;
		len = q->n_tokens - q->n_computed;
		if (len > s->cfg.max_num_batched_tokens - b->n_tokens)
			len = s->cfg.max_num_batched_tokens - b->n_tokens;
		need = div_up(q->n_computed + len, bs) - q->n_blocks;
		if (kvb_num_free(s->kv) < need + wm) {
			seq_release(s, q);
			break;
		}
		if (seq_grow(s, q, q->n_computed + len)) {
			seq_release(s, q);	/* cannot happen: counted above */
			break;
		}
		if (!q->preemptions && !q->t_scheduled) {
			q->cached_tokens = q->n_computed;
			s->stats.cached_tokens += q->n_computed;
			s->stats.cache_queries += q->n_tokens;
		}
		list_del_init(&q->link);
		s->nr_waiting--;
		q->state = SEQ_RUNNING;
		insert_sorted(&s->running, q);
		s->nr_running++;
		batch_add(s, q, len, now);
	}
}

/**
 * sched_plan() - plan the next step
 * @s:		the scheduler
 * @now:	the clock
 *
 * Allocates the KV blocks the step writes, preempting running sequences if
 * the pool is short.  The batch may be empty (nothing fits yet).  A running
 * sequence at its max_len (its last token pending) gets no work and no
 * place in the batch, so waiting ones may be admitted in its stead: until
 * its caller ends it, more than max_num_seqs sequences may be running.
 *
 * Return: the step's batch, valid until the next sched_plan(); each of its
 * sequences has &sched_seq.step_pos, .step_len and .step_sample set.
 */
const struct sched_batch *sched_plan(struct sched *s, uint64_t now)
{
	uint64_t preemptions = s->stats.preemptions;
	struct sched_batch *b = &s->batch;
	struct list_head *pos;
	struct sched_seq *q;

	b->n_seqs = 0;
	b->n_tokens = 0;
	b->n_decode = 0;
	list_for_each(pos, &s->running) {
		q = list_entry(pos, struct sched_seq, link);
		q->step_len = 0;
		q->step_sample = false;
	}
	/*
	 * A step that had to preempt has no blocks to spare: admitting now
	 * would hand the blocks just freed for the running ones' growth to a
	 * newcomer, or back to the victim to recompute from the start, only
	 * for it to be preempted again next step.
	 */
	if (plan_running(s, true, now) && plan_running(s, false, now) &&
	    s->stats.preemptions == preemptions)
		plan_waiting(s, now);
	if (b->n_seqs) {
		s->stats.steps++;
		/*
		 * The bus has left, so the window is closed: whatever still
		 * waits when the engine next goes quiet queued behind a step,
		 * and runs at once rather than at the old deadline.  The
		 * unsigned wrap puts that deadline exactly at @now.
		 */
		s->window_start = now - s->cfg.batch_timeout_ns;
	}
	return b;
}

/**
 * sched_advance() - the planned step has been computed
 * @s:		the scheduler
 *
 * Every chunk's K/V is now in the cache; blocks it filled are committed to
 * the prefix cache, except those holding a pending token (sched_resolve()
 * commits them).  Call before sched_append(), sched_append_pending() and
 * sched_finish().
 */
void sched_advance(struct sched *s)
{
	struct sched_seq *q;
	uint32_t i;

	for (i = 0; i < s->batch.n_seqs; i++) {
		q = s->batch.seqs[i];
		q->n_computed += q->step_len;
		seq_commit(s, q);
	}
}

/**
 * sched_append() - a token was sampled for @q
 * @s:		the scheduler
 * @q:		a running sequence whose step had &sched_seq.step_sample set
 * @token:	the token
 *
 * The caller ends the sequence (sched_finish()) when it is complete; one
 * that reaches &sched_seq.max_len must be ended.
 */
void sched_append(struct sched *s, struct sched_seq *q, uint32_t token)
{
	/* a known token behind a pending one would be resolved in its place */
	assert(q->state == SEQ_RUNNING && q->n_tokens < q->max_len && !q->n_pending);
	q->tokens[q->n_tokens++] = token;
	s->stats.generation_tokens++;
}

/**
 * sched_append_pending() - a token was sampled for @q, its value not known yet
 * @s:		the scheduler
 * @q:		a running sequence whose step had &sched_seq.step_sample set
 *
 * As sched_append(), the token counted in generation_tokens here, but
 * &sched_seq.tokens holds SCHED_TOKEN_PENDING until sched_resolve() gives
 * the value.  The sequence may be planned meanwhile: the engine feeds the
 * token to its next step itself.  Its end is decided at sched_resolve():
 * one that reaches &sched_seq.max_len gets no more work, and must be ended
 * once its tokens are known.
 */
void sched_append_pending(struct sched *s, struct sched_seq *q)
{
	assert(q->state == SEQ_RUNNING && q->n_tokens < q->max_len);
	q->tokens[q->n_tokens++] = SCHED_TOKEN_PENDING;
	q->n_pending++;
	s->stats.generation_tokens++;
}

/**
 * sched_resolve() - the oldest pending token of @q is now known
 * @s:		the scheduler
 * @q:		a sequence with &sched_seq.n_pending > 0, running or preempted
 *		(waiting)
 * @token:	its value
 *
 * Writes @token at &sched_seq.tokens[n_tokens - n_pending] and commits to
 * the prefix cache the blocks that were computed but waited for it.  A
 * preempted sequence becomes admissible again once none is pending.  The
 * caller ends the sequence (sched_finish()) when the token completes it.
 */
void sched_resolve(struct sched *s, struct sched_seq *q, uint32_t token)
{
	uint32_t i = q->n_tokens - q->n_pending;

	assert(q->n_pending && token != SCHED_TOKEN_PENDING &&
	       (q->state == SEQ_RUNNING || q->state == SEQ_WAITING));
	assert(q->tokens[i] == SCHED_TOKEN_PENDING);
	q->tokens[i] = token;
	q->n_pending--;
	/* a waiting one holds no blocks: its n_computed is 0 */
	seq_commit(s, q);
}

/**
 * sched_finish() - take @q off the scheduler and free its blocks
 * @s:		the scheduler
 * @q:		the sequence, in any state (finished, cancelled, never run),
 *		pending tokens or not
 */
void sched_finish(struct sched *s, struct sched_seq *q)
{
	if (q->state == SEQ_WAITING) {
		list_del_init(&q->link);
		s->nr_waiting--;
	} else if (q->state == SEQ_RUNNING) {
		list_del_init(&q->link);
		s->nr_running--;
	}
	seq_release(s, q);
	q->step_len = 0;
	q->state = SEQ_DONE;
}
