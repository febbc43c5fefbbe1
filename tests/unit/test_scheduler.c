// SPDX-License-Identifier: GPL-2.0
/*
 * The scheduler, driven the way serve.c drives it but with a fake clock and
 * a fake engine: the batch window, chunked prefill under the token budget,
 * decode-first ordering, max_num_seqs, priority, the queue bound and the
 * argument checks, preemption (victim order, requeue, recomputation),
 * cancellation in every state, the prefix cache seen through the scheduler,
 * a seeded random run, and the same driven the way a caller running ahead
 * of the engine does (tokens appended pending, their values given a step or
 * two later).
 *
 * The fake engine keeps a fake K/V cache: slot (block, offset) holds a hash
 * of the salt and every token up to and including that position, the way a
 * real model's K/V at a position depends on the whole prefix.  Before a step
 * it checks that every position the chunk attends to holds what it should,
 * read through the sequence's block table; then it writes the chunk and
 * samples from a hash of all the context it read back.  A stale, foreign or
 * overwritten block therefore fails at once, and would change the tokens if
 * it did not: the sampled token is a pure function of the salt and the
 * tokens so far, which model_token() computes with no scheduler at all.
 * Like a GPU running ahead, the engine keeps the tokens it sampled (@dev)
 * and reads a pending token from there, but only as the input of a decode:
 * anything else would need a value the host does not have.
 *
 * After every plan the harness checks the batch (limits, chunk arithmetic,
 * decodes first, no running sequence left out of a step with room, victims
 * and their order) and the blocks (every running sequence holds exactly the
 * blocks its positions need, blocks written this step have one holder,
 * shared blocks are fully computed by each holder, kvb_num_used() counts
 * exactly the blocks held, kvb_check() passes).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../runtime/scheduler.h"

#define VOCAB		32000u
#define NOW0		1000000000ULL	/* the clock's start: 0 would read as "never scheduled" */
#define STEP_NS		1000ULL		/* what one fake step takes */
#define WINDOW		1000000ULL	/* a batch window many steps long */

/* A sequence with its own token and block arrays. */
struct tseq {
	struct sched_seq	q;
	uint32_t		*tok;
	uint32_t		*blk;
	uint32_t		*dev;		/* what the engine sampled, by position */
	uint32_t		target;		/* n_tokens at which the engine ends it */
	bool			live;		/* added and not yet finished */
	bool			cancelled;
	/* one step's scratch */
	bool			was_running;	/* before the plan */
	bool			in_batch;
	uint32_t		left;		/* n_tokens - n_computed before the plan */
	uint32_t		preemptions;	/* before the plan */
	uint32_t		sampled;	/* what the engine sampled for it */
};

/* One batch entry as planned, kept past sched_finish() (which clears step_len). */
struct rec {
	struct tseq	*t;
	uint32_t	pos;
	uint32_t	len;
	bool		sample;
};

struct harness {
	struct sched_config	cfg;
	struct kv_blocks	*kv;
	struct sched		s;
	uint32_t		bs;
	uint32_t		nb;
	uint64_t		now;
	uint64_t		*mem;		/* fake K/V, a word per slot; 0: unwritten */
	uint32_t		*holders;	/* per block, scratch */
	struct tseq		**all;
	uint32_t		n_all;
	uint32_t		cap_all;
	struct rec		*rec;		/* the last step */
	uint32_t		n_rec;
	uint32_t		rec_decode;
	uint32_t		rec_tokens;
	uint32_t		rec_preempted;
	uint64_t		steps;
	/*
	 * How sampled tokens come back: 0, known at once (sched_append());
	 * 1 or 2, appended pending and resolved that many steps later, as a
	 * caller running ahead of the engine does; -1, appended pending and
	 * resolved by the test (h_resolve()).
	 */
	int			lag;
	struct tseq		**ring[3];	/* pending ones, by step */
	uint32_t		n_ring[3];
	uint64_t		ticks;		/* h_step() calls */
	/* what the pending tokens made happen */
	uint64_t		pend_victims;	/* preempted with a token pending */
	uint64_t		pend_idle;	/* at max_len, left out of a plan */
	uint64_t		pend_deferred;	/* computed full blocks not committed */
	uint64_t		pend_passed;	/* admitted past a waiting pending one */
};

static uint32_t div_up(uint32_t a, uint32_t b)
{
	return a / b + !!(a % b);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* The fake model: K/V of a position chains the salt and the tokens up to it. */
static uint64_t kv_seed(uint64_t salt)
{
	return mix64(salt + 0x9e3779b97f4a7c15ULL);
}

static uint64_t kv_next(uint64_t h, uint32_t tok)
{
	return mix64(h ^ (tok + 0x100000001b3ULL));
}

/* What a slot holds; never 0, so an unwritten slot never passes. */
static uint64_t kv_word(uint64_t h)
{
	return h | 1;
}

/* Attention over the context: order matters, every position counts. */
static uint64_t fold(uint64_t acc, uint64_t word)
{
	return mix64(acc * 31 + word);
}

static uint32_t to_token(uint64_t acc)
{
	return 1 + (uint32_t)(acc % (VOCAB - 1));
}

/* The token sampled after t[0 .. n), computed with no cache at all. */
static uint32_t model_token(uint64_t salt, const uint32_t *t, uint32_t n)
{
	uint64_t h = kv_seed(salt), acc = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		h = kv_next(h, t[i]);
		acc = fold(acc, kv_word(h));
	}
	return to_token(acc);
}

/* @n prompt tokens of their own for each @seed */
static void fill(uint32_t *t, uint32_t n, uint64_t seed)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		t[i] = to_token(mix64(seed << 32 | i));
}

static bool before(const struct sched_seq *a, const struct sched_seq *b)
{
	if (a->priority != b->priority)
		return a->priority < b->priority;
	return a->arrival < b->arrival;
}

static struct harness *h_new(const struct sched_config *cfg, uint32_t nb, uint32_t bs, bool pc)
{
	struct harness *h = calloc(1, sizeof(*h));
	uint32_t i;

	assert_non_null(h);
	h->cfg = *cfg;
	h->kv = kvb_create(nb, bs, pc);
	assert_non_null(h->kv);
	assert_int_equal(sched_init(&h->s, cfg, h->kv), 0);
	h->bs = bs;
	h->nb = nb;
	h->now = NOW0;
	h->mem = calloc((size_t)nb * bs, sizeof(*h->mem));
	h->holders = calloc(nb, sizeof(*h->holders));
	h->rec = calloc(cfg->max_num_seqs, sizeof(*h->rec));
	assert_non_null(h->mem);
	assert_non_null(h->holders);
	assert_non_null(h->rec);
	for (i = 0; i < 3; i++) {
		h->ring[i] = calloc(cfg->max_num_seqs, sizeof(*h->ring[i]));
		assert_non_null(h->ring[i]);
	}
	return h;
}

static void h_free(struct harness *h)
{
	uint32_t i;

	for (i = 0; i < h->n_all; i++) {
		free(h->all[i]->tok);
		free(h->all[i]->blk);
		free(h->all[i]->dev);
		free(h->all[i]);
	}
	for (i = 0; i < 3; i++)
		free(h->ring[i]);
	free(h->all);
	free(h->rec);
	free(h->holders);
	free(h->mem);
	sched_fini(&h->s);
	kvb_destroy(h->kv);
	free(h);
}

static struct sched_config cfg_default(void)
{
	return (struct sched_config){
		.batch_timeout_ns	= 0,
		.max_batch_size		= 8,
		.max_num_seqs		= 8,
		.max_num_batched_tokens	= 256,
		.max_queued		= 64,
		.max_model_len		= 256,
		.watermark_blocks	= 0,
	};
}

/* A sequence of @n_prompt tokens from @seed that ends after @n_gen more. */
static struct tseq *t_new(struct harness *h, uint32_t n_prompt, uint32_t n_gen, int32_t prio,
			  uint64_t salt, uint64_t seed)
{
	struct tseq *t = calloc(1, sizeof(*t));
	uint32_t max_len = n_prompt + n_gen;

	assert_non_null(t);
	t->tok = calloc(max_len ? max_len : 1, sizeof(*t->tok));
	t->blk = calloc(sched_max_blocks(&h->s), sizeof(*t->blk));
	t->dev = calloc(max_len ? max_len : 1, sizeof(*t->dev));
	assert_non_null(t->tok);
	assert_non_null(t->blk);
	assert_non_null(t->dev);
	fill(t->tok, n_prompt, seed);
	t->q.tokens = t->tok;
	t->q.blocks = t->blk;
	t->q.n_tokens = n_prompt;
	t->q.n_prompt = n_prompt;
	t->q.max_len = max_len;
	t->q.priority = prio;
	t->q.salt = salt;
	t->q.priv = t;
	t->target = max_len;
	if (h->n_all == h->cap_all) {
		h->cap_all = h->cap_all ? 2 * h->cap_all : 16;
		h->all = realloc(h->all, h->cap_all * sizeof(*h->all));
		assert_non_null(h->all);
	}
	h->all[h->n_all++] = t;
	return t;
}

static int t_add(struct harness *h, struct tseq *t)
{
	int ret = sched_add(&h->s, &t->q, h->now);

	if (!ret) {
		t->live = true;
		assert_int_equal(t->q.state, SEQ_WAITING);
		assert_int_equal(t->q.t_arrival, h->now);
	}
	return ret;
}

/* Every token known so far is the one the model picks after its prefix. */
static void expect_tokens(const struct tseq *t)
{
	uint32_t n;

	for (n = t->q.n_prompt; n < t->q.n_tokens - t->q.n_pending; n++)
		if (t->tok[n] != model_token(t->q.salt, t->tok, n))
			fail_msg("seq %llu: token %u is %u, the model says %u",
				 (unsigned long long)t->q.arrival, n, t->tok[n],
				 model_token(t->q.salt, t->tok, n));
}

/*
 * A sequence that ran to its end has exactly the tokens the model makes; run
 * ahead, it may have sampled past its stop a token nobody reads.
 */
static void expect_done(const struct tseq *t)
{
	assert_false(t->live);
	assert_int_equal(t->q.state, SEQ_DONE);
	assert_int_equal(t->q.n_tokens - t->q.n_pending, t->target);
	assert_int_equal(t->q.n_blocks, 0);
	expect_tokens(t);
}

/*
 * The lists and the blocks.  @pending: a planned step is not computed yet,
 * so the chunk's positions need blocks too and their blocks must be the
 * writer's alone.
 */
/* The pending tokens are the trailing n_pending, and no committed block holds one. */
static void check_tokens(struct harness *h, const struct sched_seq *q)
{
	uint32_t i, known = q->n_tokens - q->n_pending;

	assert_true(q->n_pending <= q->n_tokens - q->n_prompt);
	for (i = 0; i < q->n_tokens; i++)
		if ((q->tokens[i] == SCHED_TOKEN_PENDING) != (i >= known))
			fail_msg("seq %llu: token %u of %u is %u, %u pending",
				 (unsigned long long)q->arrival, i, q->n_tokens, q->tokens[i],
				 q->n_pending);
	/* everything computed and known is committed, nothing else */
	assert_int_equal(q->n_committed, min_u32(q->n_computed, known) / h->bs);
}

static void check_state(struct harness *h, bool pending)
{
	uint32_t n, used = 0, i, first, last, want, blk, idle = 0;
	struct sched_seq *q, *prev;
	struct list_head *pos;
	char err[256] = "";

	n = 0;
	prev = NULL;
	list_for_each(pos, &h->s.waiting) {
		q = list_entry(pos, struct sched_seq, link);
		assert_int_equal(q->state, SEQ_WAITING);
		assert_int_equal(q->n_blocks, 0);
		assert_int_equal(q->n_computed, 0);
		check_tokens(h, q);
		if (prev && !before(prev, q))
			fail_msg("waiting: seq %llu (priority %d) before seq %llu (priority %d)",
				 (unsigned long long)prev->arrival, prev->priority,
				 (unsigned long long)q->arrival, q->priority);
		prev = q;
		n++;
	}
	assert_int_equal(n, h->s.nr_waiting);

	memset(h->holders, 0, h->nb * sizeof(*h->holders));
	n = 0;
	prev = NULL;
	list_for_each(pos, &h->s.running) {
		q = list_entry(pos, struct sched_seq, link);
		assert_int_equal(q->state, SEQ_RUNNING);
		check_tokens(h, q);
		/* at max_len, its last token pending: it waits to be ended */
		if (q->n_tokens >= q->max_len) {
			assert_int_equal(q->n_tokens, q->max_len);
			assert_true(q->n_pending > 0);
			idle++;
		}
		if (prev && !before(prev, q))
			fail_msg("running: seq %llu before seq %llu",
				 (unsigned long long)prev->arrival, (unsigned long long)q->arrival);
		want = div_up(q->n_computed + (pending ? q->step_len : 0), h->bs);
		if (q->n_blocks != want)
			fail_msg("seq %llu holds %u blocks for %u+%u positions, needs %u",
				 (unsigned long long)q->arrival, q->n_blocks, q->n_computed,
				 pending ? q->step_len : 0, want);
		assert_true(q->n_blocks <= sched_max_blocks(&h->s));
		for (i = 0; i < q->n_blocks; i++) {
			assert_true(q->blocks[i] < h->nb);
			if (!h->holders[q->blocks[i]]++)
				used++;
		}
		prev = q;
		n++;
	}
	assert_int_equal(n, h->s.nr_running);
	/* those at max_len take no place in a step, so others were admitted */
	assert_true(h->s.nr_running <= h->cfg.max_num_seqs + idle);
	assert_int_equal(used, kvb_num_used(h->kv));

	list_for_each(pos, &h->s.running) {
		q = list_entry(pos, struct sched_seq, link);
		for (i = 0; i < q->n_blocks; i++) {
			blk = q->blocks[i];
			if (h->holders[blk] > 1 && (i + 1) * h->bs > q->n_computed)
				fail_msg("seq %llu shares block %u (entry %u) with %u computed",
					 (unsigned long long)q->arrival, blk, i, q->n_computed);
		}
		if (!pending || !q->step_len)
			continue;
		first = q->step_pos / h->bs;
		last = (q->step_pos + q->step_len - 1) / h->bs;
		for (i = first; i <= last; i++)
			if (h->holders[q->blocks[i]] != 1)
				fail_msg("seq %llu writes block %u, which %u sequences hold",
					 (unsigned long long)q->arrival, q->blocks[i],
					 h->holders[q->blocks[i]]);
	}
	if (kvb_check(h->kv, err, sizeof(err)))
		fail_msg("kvb_check: %s", err);
}

/* The batch against the state before the plan. */
static void check_plan(struct harness *h, const struct sched_batch *b, uint64_t preempt_pre)
{
	uint32_t i, sum = 0, n_dec = 0, n_pre = 0, budget = h->cfg.max_num_batched_tokens;
	struct sched_seq *q, *r;
	struct list_head *pos;
	bool other = false, full, admitted = false;
	struct tseq *t;

	assert_true(b->n_seqs <= h->cfg.max_num_seqs);
	assert_true(b->n_tokens <= budget);
	for (i = 0; i < b->n_seqs; i++) {
		q = b->seqs[i];
		t = q->priv;
		assert_false(t->in_batch);
		t->in_batch = true;
		assert_int_equal(q->state, SEQ_RUNNING);
		assert_int_equal(q->step_pos, q->n_computed);
		assert_true(q->step_len >= 1);
		assert_true(q->step_pos + q->step_len <= q->n_tokens);
		/* nothing to do at max_len: it could only sample past it */
		assert_true(q->n_tokens < q->max_len);
		assert_int_equal(q->step_sample, q->step_pos + q->step_len == q->n_tokens);
		/*
		 * Every chunk is what its sequence has left or what the step has
		 * left; a preemption may have taken back budget planned earlier.
		 */
		if (h->s.stats.preemptions == preempt_pre)
			assert_int_equal(q->step_len,
					 min_u32(q->n_tokens - q->step_pos, budget - sum));
		else
			assert_true(q->step_len <= min_u32(q->n_tokens - q->step_pos,
							   budget - sum));
		if (q->n_tokens - q->step_pos == 1 && q->step_pos >= q->n_prompt)
			n_dec++;
		if (t->was_running && t->left == 1) {
			if (other)
				fail_msg("decode of seq %llu comes after a prefill chunk",
					 (unsigned long long)q->arrival);
			assert_int_equal(q->step_len, 1);
		} else {
			other = true;
		}
		if (t->was_running) {
			assert_int_equal(q->step_pos + t->left, q->n_tokens);
		} else {
			/* recomputing needs every token's value */
			assert_int_equal(q->n_pending, 0);
			admitted = true;
			list_for_each(pos, &h->s.waiting) {
				r = list_entry(pos, struct sched_seq, link);
				if (r->n_pending && before(r, q)) {
					h->pend_passed++;
					break;
				}
			}
		}
		sum += q->step_len;
	}
	assert_int_equal(sum, b->n_tokens);
	assert_int_equal(n_dec, b->n_decode);

	full = b->n_seqs == h->cfg.max_num_seqs || b->n_tokens == budget;
	for (i = 0; i < h->n_all; i++) {
		t = h->all[i];
		q = &t->q;
		if (!t->live)
			continue;
		if (q->preemptions != t->preemptions) {
			/* a victim: was running, freed, back in the queue, not in the step */
			assert_int_equal(q->preemptions, t->preemptions + 1);
			assert_true(t->was_running);
			assert_int_equal(q->state, SEQ_WAITING);
			assert_false(t->in_batch);
			assert_int_equal(q->n_computed, 0);
			assert_int_equal(q->n_blocks, 0);
			h->pend_victims += !!q->n_pending;
			n_pre++;
			/* everything running that sorts after it had work in this step */
			list_for_each(pos, &h->s.running) {
				r = list_entry(pos, struct sched_seq, link);
				if (before(q, r) && !((struct tseq *)r->priv)->in_batch)
					fail_msg("seq %llu preempted, seq %llu after it idle",
						 (unsigned long long)q->arrival,
						 (unsigned long long)r->arrival);
			}
		} else if (t->was_running) {
			assert_int_equal(q->state, SEQ_RUNNING);
			if (q->n_tokens >= q->max_len)
				h->pend_idle++;
			else if (!t->in_batch && !full)
				fail_msg("running seq %llu left out of a step with room",
					 (unsigned long long)q->arrival);
		}
	}
	assert_int_equal(h->s.stats.preemptions - preempt_pre, n_pre);
	if (n_pre && admitted)
		fail_msg("a step that preempted %u also admitted waiting sequences", n_pre);
	h->rec_preempted = n_pre;
	check_state(h, true);
}

/*
 * The fake engine: check the context each chunk attends to, then write the
 * chunks and sample from everything read back through the block tables.
 */
/* Token @p of @q as the engine sees it: a pending one is the one it sampled. */
static uint32_t dev_token(const struct sched_seq *q, uint32_t p)
{
	const struct tseq *t = q->priv;

	if (q->tokens[p] != SCHED_TOKEN_PENDING)
		return q->tokens[p];
	if (!t->dev[p])
		fail_msg("seq %llu position %u: pending, never sampled",
			 (unsigned long long)q->arrival, p);
	return t->dev[p];
}

static void engine(struct harness *h, const struct sched_batch *b)
{
	uint32_t i, p, bs = h->bs;
	struct sched_seq *q;
	uint64_t kvh, acc;
	size_t slot;

	for (i = 0; i < b->n_seqs; i++) {
		q = b->seqs[i];
		/* a pending token can only be fed to the decode that follows it */
		for (p = q->step_pos; p < q->step_pos + q->step_len; p++)
			if (q->tokens[p] == SCHED_TOKEN_PENDING &&
			    (q->step_len != 1 || p != q->n_tokens - 1))
				fail_msg("seq %llu: chunk %u+%u computes pending token %u",
					 (unsigned long long)q->arrival, q->step_pos,
					 q->step_len, p);
		kvh = kv_seed(q->salt);
		for (p = 0; p < q->step_pos; p++) {
			kvh = kv_next(kvh, dev_token(q, p));
			slot = (size_t)q->blocks[p / bs] * bs + p % bs;
			if (h->mem[slot] != kv_word(kvh))
				fail_msg("seq %llu position %u: block %u holds %s K/V",
					 (unsigned long long)q->arrival, p, q->blocks[p / bs],
					 h->mem[slot] ? "foreign" : "no");
		}
	}
	for (i = 0; i < b->n_seqs; i++) {
		q = b->seqs[i];
		kvh = kv_seed(q->salt);
		acc = 0;
		for (p = 0; p < q->step_pos + q->step_len; p++) {
			kvh = kv_next(kvh, dev_token(q, p));
			slot = (size_t)q->blocks[p / bs] * bs + p % bs;
			if (p >= q->step_pos)
				h->mem[slot] = kv_word(kvh);
			acc = fold(acc, h->mem[slot]);
		}
		if (q->step_sample) {
			((struct tseq *)q->priv)->sampled = to_token(acc);
			((struct tseq *)q->priv)->dev[q->n_tokens] = to_token(acc);
		}
	}
}

/* The oldest pending token of @t gets the value the engine sampled for it. */
static void t_resolve(struct harness *h, struct tseq *t)
{
	uint64_t gen = h->s.stats.generation_tokens;
	struct sched_seq *q = &t->q;
	uint32_t n_pending = q->n_pending, i = q->n_tokens - n_pending;

	assert_true(t->live);
	assert_true(n_pending > 0);
	sched_resolve(&h->s, q, t->dev[i]);
	assert_int_equal(q->tokens[i], t->dev[i]);
	assert_int_equal(q->n_pending, n_pending - 1);
	assert_int_equal(h->s.stats.generation_tokens, gen);
	/* a stop or max_len is seen only now */
	if (i + 1 == t->target) {
		sched_finish(&h->s, q);
		t->live = false;
		assert_int_equal(q->state, SEQ_DONE);
		assert_int_equal(q->n_blocks, 0);
	}
}

/* Every pending token of every sequence, as a caller catching up does. */
static void h_resolve_all(struct harness *h)
{
	uint32_t i;

	for (i = 0; i < h->n_all; i++)
		while (h->all[i]->live && h->all[i]->q.n_pending)
			t_resolve(h, h->all[i]);
	check_state(h, false);
}

/* One step as serve_step() runs it, with every check in between. */
static void h_step(struct harness *h)
{
	const struct sched_batch *b;
	uint32_t i, cur, old;
	struct sched_seq *q;
	uint64_t pre, gen;
	struct tseq *t;

	for (i = 0; i < h->n_all; i++) {
		t = h->all[i];
		t->was_running = t->live && t->q.state == SEQ_RUNNING;
		t->in_batch = false;
		t->left = t->q.n_tokens - t->q.n_computed;
		t->preemptions = t->q.preemptions;
	}
	pre = h->s.stats.preemptions;
	b = sched_plan(&h->s, h->now);
	check_plan(h, b, pre);
	h->n_rec = b->n_seqs;
	h->rec_decode = b->n_decode;
	h->rec_tokens = b->n_tokens;
	for (i = 0; i < b->n_seqs; i++) {
		q = b->seqs[i];
		h->rec[i] = (struct rec){ q->priv, q->step_pos, q->step_len, q->step_sample };
	}
	engine(h, b);
	sched_advance(&h->s);
	cur = h->lag > 0 ? h->ticks % (h->lag + 1) : 0;
	h->n_ring[cur] = 0;
	for (i = 0; i < b->n_seqs; i++) {
		q = b->seqs[i];
		t = q->priv;
		assert_int_equal(q->n_computed, h->rec[i].pos + h->rec[i].len);
		check_tokens(h, q);
		if (q->n_computed / h->bs > q->n_committed)
			h->pend_deferred++;
		if (!q->step_sample)
			continue;
		if (h->lag) {
			gen = h->s.stats.generation_tokens;
			sched_append_pending(&h->s, q);
			assert_int_equal(h->s.stats.generation_tokens, gen + 1);
			assert_int_equal(q->tokens[q->n_tokens - 1], SCHED_TOKEN_PENDING);
			if (h->lag > 0)
				h->ring[cur][h->n_ring[cur]++] = t;
			continue;
		}
		sched_append(&h->s, q, t->sampled);
		if (q->n_tokens == t->target) {
			sched_finish(&h->s, q);
			t->live = false;
			assert_int_equal(q->state, SEQ_DONE);
			assert_int_equal(q->n_blocks, 0);
		}
	}
	/* the values of the tokens sampled @lag steps ago arrive */
	if (h->lag > 0) {
		old = (h->ticks + 1) % (h->lag + 1);
		for (i = 0; i < h->n_ring[old]; i++)
			if (h->ring[old][i]->live)
				t_resolve(h, h->ring[old][i]);
		h->n_ring[old] = 0;
	}
	h->ticks++;
	check_state(h, false);
	if (b->n_seqs)
		h->steps++;
	h->now += STEP_NS;
}

/* What serve's loop does until nothing is left; returns the steps run. */
static uint32_t h_run(struct harness *h, uint32_t max_steps)
{
	uint32_t steps = 0;
	uint64_t dl = 0;

	for (;;) {
		switch (sched_poll(&h->s, h->now, &dl)) {
		case SCHED_ACT_IDLE:
			return steps;
		case SCHED_ACT_WAIT:
			assert_true(dl > h->now);
			h->now = dl;
			break;
		case SCHED_ACT_STEP:
			if (++steps > max_steps)
				fail_msg("still busy after %u steps", max_steps);
			h_step(h);
			break;
		}
	}
}

static void t_cancel(struct harness *h, struct tseq *t)
{
	uint32_t waiting = h->s.nr_waiting, running = h->s.nr_running;
	enum sched_seq_state st = t->q.state;

	assert_true(t->live);
	sched_finish(&h->s, &t->q);
	t->live = false;
	t->cancelled = true;
	assert_int_equal(t->q.state, SEQ_DONE);
	assert_int_equal(t->q.n_blocks, 0);
	assert_int_equal(h->s.nr_waiting, waiting - (st == SEQ_WAITING));
	assert_int_equal(h->s.nr_running, running - (st == SEQ_RUNNING));
	check_state(h, false);
	expect_tokens(t);
}

static const struct rec *rec_of(const struct harness *h, const struct tseq *t)
{
	uint32_t i;

	for (i = 0; i < h->n_rec; i++)
		if (h->rec[i].t == t)
			return &h->rec[i];
	return NULL;
}

static uint64_t kv_hits(const struct harness *h)
{
	struct kv_blocks_stats st;

	kvb_stats(h->kv, &st);
	return st.hits;
}

static uint64_t kv_queries(const struct harness *h)
{
	struct kv_blocks_stats st;

	kvb_stats(h->kv, &st);
	return st.queries;
}

static bool holds(const struct tseq *t, uint32_t blk)
{
	uint32_t i;

	for (i = 0; i < t->q.n_blocks; i++)
		if (t->blk[i] == blk)
			return true;
	return false;
}

static void test_init_bad(void **state)
{
	struct sched_config cfg = cfg_default();
	struct kv_blocks *kv = kvb_create(8, 16, true);
	struct sched s;

	(void)state;
	assert_non_null(kv);
	cfg.max_model_len = 128;		/* the whole pool */
	assert_int_equal(sched_init(&s, &cfg, kv), 0);
	assert_int_equal(sched_max_blocks(&s), 8);
	sched_fini(&s);
	cfg.max_model_len = 100;
	assert_int_equal(sched_init(&s, &cfg, kv), 0);
	assert_int_equal(sched_max_blocks(&s), 7);
	sched_fini(&s);

	/* a sequence of max_model_len would not fit even alone */
	cfg.max_model_len = 129;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg.max_model_len = 1;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg = cfg_default();
	cfg.max_model_len = 128;
	cfg.max_batch_size = 0;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg.max_batch_size = 1;
	cfg.max_num_seqs = 0;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg.max_num_seqs = 1;
	cfg.max_num_batched_tokens = 0;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg.max_num_batched_tokens = 1;
	cfg.max_queued = 0;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	cfg.max_queued = 1;
	assert_int_equal(sched_init(&s, &cfg, kv), 0);
	sched_fini(&s);
	/* room for fewer sequences than max_num_seqs: never */
	cfg.max_num_seqs = 4;
	cfg.max_num_batched_tokens = 4;
	cfg.max_num_seqs_limit = 3;
	assert_int_equal(sched_init(&s, &cfg, kv), -EINVAL);
	/* no limit: room for max_num_seqs; a limit: room for that many */
	cfg.max_num_seqs_limit = 0;
	assert_int_equal(sched_init(&s, &cfg, kv), 0);
	assert_int_equal(s.cfg.max_num_seqs_limit, 4);
	sched_fini(&s);
	cfg.max_num_seqs_limit = 16;
	assert_int_equal(sched_init(&s, &cfg, kv), 0);
	assert_int_equal(s.cfg.max_num_seqs_limit, 16);
	sched_fini(&s);
	kvb_destroy(kv);
}

static void test_add_errors(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *t[5], *bad;
	struct harness *h;
	uint64_t dl;
	int i;

	(void)state;
	cfg.max_model_len = 64;
	cfg.max_queued = 3;
	cfg.max_num_seqs = 1;
	h = h_new(&cfg, 8, 16, true);

	bad = t_new(h, 10, 5, 0, 0, 1);
	bad->q.n_prompt = bad->q.n_tokens = 0;
	assert_int_equal(t_add(h, bad), -EINVAL);		/* empty */
	bad = t_new(h, 10, 5, 0, 0, 1);
	bad->q.n_tokens = 11;
	assert_int_equal(t_add(h, bad), -EINVAL);		/* generated before it ran */
	bad = t_new(h, 10, 5, 0, 0, 1);
	bad->q.max_len = 10;
	assert_int_equal(t_add(h, bad), -EINVAL);		/* no room to generate */
	bad = t_new(h, 10, 5, 0, 0, 1);
	bad->q.max_len = 9;
	assert_int_equal(t_add(h, bad), -EINVAL);
	bad = t_new(h, 64, 1, 0, 0, 1);
	assert_int_equal(t_add(h, bad), -E2BIG);		/* prompt == max_model_len */
	bad = t_new(h, 70, 1, 0, 0, 1);
	assert_int_equal(t_add(h, bad), -E2BIG);
	bad = t_new(h, 63, 2, 0, 0, 1);
	assert_int_equal(t_add(h, bad), -E2BIG);		/* would grow past it */
	for (i = 0; i < (int)h->n_all; i++)
		assert_int_equal(h->all[i]->q.state, SEQ_NEW);
	assert_int_equal(h->s.nr_waiting, 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_IDLE);

	t[0] = t_new(h, 63, 1, 0, 0, 2);			/* the longest that fits */
	t[1] = t_new(h, 10, 3, 0, 0, 3);
	t[2] = t_new(h, 10, 3, 0, 0, 4);
	t[3] = t_new(h, 10, 3, 0, 0, 5);
	t[4] = t_new(h, 10, 3, 0, 0, 6);
	for (i = 0; i < 3; i++)
		assert_int_equal(t_add(h, t[i]), 0);
	assert_int_equal(t_add(h, t[3]), -EBUSY);
	assert_int_equal(t[3]->q.state, SEQ_NEW);
	assert_int_equal(h->s.nr_waiting, 3);

	/* running ones do not count against the queue */
	h_step(h);
	assert_ptr_equal(h->rec[0].t, t[0]);
	assert_int_equal(h->s.nr_waiting, 2);
	assert_int_equal(t_add(h, t[3]), 0);
	assert_int_equal(t_add(h, t[4]), -EBUSY);
	h_run(h, 100);
	for (i = 0; i < 4; i++)
		expect_done(t[i]);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

static void test_window_lone(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b;
	uint64_t t0, t1, dl;

	(void)state;
	cfg.batch_timeout_ns = WINDOW;
	cfg.max_batch_size = 4;
	h = h_new(&cfg, 64, 16, true);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_IDLE);

	a = t_new(h, 10, 3, 0, 0, 1);
	t0 = h->now;
	assert_int_equal(t_add(h, a), 0);
	dl = 0;
	assert_int_equal(sched_poll(&h->s, t0, &dl), SCHED_ACT_WAIT);
	assert_int_equal(dl, t0 + WINDOW);
	dl = 0;
	assert_int_equal(sched_poll(&h->s, t0 + WINDOW - 1, &dl), SCHED_ACT_WAIT);
	assert_int_equal(dl, t0 + WINDOW);
	assert_int_equal(sched_poll(&h->s, t0 + WINDOW, &dl), SCHED_ACT_STEP);
	h->now = t0 + WINDOW;
	h_step(h);
	assert_int_equal(h->n_rec, 1);
	assert_ptr_equal(h->rec[0].t, a);
	assert_int_equal(a->q.t_arrival, t0);
	assert_int_equal(a->q.t_scheduled, t0 + WINDOW);
	/* once it runs, steps follow back to back */
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	assert_int_equal(h_run(h, 10), 2);
	expect_done(a);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_IDLE);

	/* the next lone one waits a window of its own */
	h->now += 5 * WINDOW;
	t1 = h->now;
	b = t_new(h, 10, 3, 0, 0, 2);
	assert_int_equal(t_add(h, b), 0);
	assert_int_equal(sched_poll(&h->s, t1 + 1, &dl), SCHED_ACT_WAIT);
	assert_int_equal(dl, t1 + WINDOW);
	h_run(h, 10);
	assert_int_equal(b->q.t_scheduled, t1 + WINDOW);
	expect_done(b);
	h_free(h);
}

static void test_window_burst(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *a, *b, *c, *d;
	struct harness *h;
	uint64_t t0, dl;
	uint32_t i;

	(void)state;
	cfg.batch_timeout_ns = WINDOW;
	cfg.max_batch_size = 8;
	h = h_new(&cfg, 64, 16, true);
	a = t_new(h, 10, 5, 0, 0, 1);
	b = t_new(h, 12, 5, 0, 0, 2);
	c = t_new(h, 14, 5, 0, 0, 3);
	d = t_new(h, 16, 5, 0, 0, 4);
	t0 = h->now;
	assert_int_equal(t_add(h, a), 0);
	h->now = t0 + 300;
	assert_int_equal(t_add(h, b), 0);
	h->now = t0 + 900;
	assert_int_equal(t_add(h, c), 0);
	/* later arrivals join the window; they do not stretch it */
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_WAIT);
	assert_int_equal(dl, t0 + WINDOW);
	h->now = dl;
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);
	assert_int_equal(h->n_rec, 3);
	assert_ptr_equal(h->rec[0].t, a);
	assert_ptr_equal(h->rec[1].t, b);
	assert_ptr_equal(h->rec[2].t, c);
	for (i = 0; i < 3; i++) {
		assert_int_equal(h->rec[i].pos, 0);
		assert_int_equal(h->rec[i].t->q.t_scheduled, t0 + WINDOW);
	}
	assert_int_equal(h->rec_tokens, 36);

	/* one arriving at a busy engine joins at the next step boundary */
	assert_int_equal(t_add(h, d), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);
	assert_int_equal(h->n_rec, 4);
	assert_int_equal(h->rec_decode, 3);
	assert_ptr_equal(h->rec[3].t, d);
	assert_int_equal(h->rec[3].len, 16);
	h_run(h, 20);
	expect_done(a);
	expect_done(b);
	expect_done(c);
	expect_done(d);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

static void test_window_full(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *a, *b, *c;
	struct harness *h;
	uint64_t t0, dl;

	(void)state;
	cfg.batch_timeout_ns = WINDOW;
	cfg.max_batch_size = 3;
	h = h_new(&cfg, 64, 16, true);
	a = t_new(h, 10, 2, 0, 0, 1);
	b = t_new(h, 10, 2, 0, 0, 2);
	c = t_new(h, 10, 2, 0, 0, 3);
	t0 = h->now;
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_WAIT);
	h->now = t0 + 10;
	assert_int_equal(t_add(h, b), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_WAIT);
	assert_int_equal(dl, t0 + WINDOW);
	h->now = t0 + 20;
	assert_int_equal(t_add(h, c), 0);
	/* max_batch_size waiting: the bus leaves now, not at the deadline */
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);
	assert_int_equal(h->n_rec, 3);
	assert_int_equal(a->q.t_scheduled, t0 + 20);
	assert_int_equal(c->q.t_scheduled, t0 + 20);
	h_run(h, 10);
	expect_done(a);
	expect_done(b);
	expect_done(c);
	h_free(h);
}

/*
 * A window that closed (here early, on max_batch_size) stays closed: one
 * that queued behind the batch runs as soon as the batch leaves, instead of
 * waiting for the old window's deadline once the engine goes quiet.
 */
static void test_window_closed(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *a, *b, *c;
	struct harness *h;
	uint64_t t0, dl;

	(void)state;
	cfg.batch_timeout_ns = WINDOW;
	cfg.max_batch_size = 2;
	cfg.max_num_seqs = 2;
	h = h_new(&cfg, 64, 16, true);
	a = t_new(h, 4, 2, 0, 0, 1);
	b = t_new(h, 4, 2, 0, 0, 2);
	c = t_new(h, 4, 2, 0, 0, 3);
	t0 = h->now;
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(t_add(h, b), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);
	assert_int_equal(t_add(h, c), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);				/* a and b fill the step and end */
	assert_null(rec_of(h, c));
	assert_false(a->live);
	assert_false(b->live);
	assert_int_equal(h->s.nr_running, 0);
	assert_true(h->now < t0 + WINDOW);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	h_step(h);
	assert_int_equal(c->q.t_scheduled, t0 + 2 * STEP_NS);
	h_run(h, 10);
	expect_done(c);
	h_free(h);
}

static void test_window_zero(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a;
	uint64_t dl = 12345;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	a = t_new(h, 10, 2, 0, 0, 1);
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(sched_poll(&h->s, h->now, &dl), SCHED_ACT_STEP);
	assert_int_equal(dl, 12345);
	h_step(h);
	assert_int_equal(a->q.t_scheduled, NOW0);
	h_run(h, 10);
	expect_done(a);
	h_free(h);
}

static void test_chunked_prefill(void **state)
{
	static const uint32_t len[] = { 256, 256, 256, 232 };
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a;
	uint32_t i, pos = 0;

	(void)state;
	cfg.max_model_len = 1024;
	cfg.max_num_batched_tokens = 256;
	h = h_new(&cfg, 128, 16, true);
	a = t_new(h, 1000, 3, 0, 0, 1);
	assert_int_equal(t_add(h, a), 0);
	for (i = 0; i < 4; i++) {
		h_step(h);
		assert_int_equal(h->n_rec, 1);
		assert_int_equal(h->rec[0].pos, pos);
		assert_int_equal(h->rec[0].len, len[i]);
		assert_int_equal(h->rec[0].sample, i == 3);
		assert_int_equal(h->rec_decode, 0);
		pos += len[i];
		assert_int_equal(a->q.n_computed, pos);
		assert_int_equal(a->q.n_blocks, div_up(pos, 16));
		assert_int_equal(a->q.n_tokens, i == 3 ? 1001 : 1000);
	}
	h_step(h);
	assert_int_equal(h->rec[0].pos, 1000);
	assert_int_equal(h->rec[0].len, 1);
	assert_true(h->rec[0].sample);
	assert_int_equal(h->rec_decode, 1);
	assert_int_equal(h_run(h, 10), 1);
	expect_done(a);
	assert_int_equal(h->s.stats.prompt_tokens, 1000);
	assert_int_equal(h->s.stats.generation_tokens, 3);
	assert_int_equal(h->s.stats.steps, 6);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

static void test_max_num_seqs(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *t[5];
	uint32_t i;

	(void)state;
	cfg.max_num_seqs = 2;
	h = h_new(&cfg, 64, 16, true);
	for (i = 0; i < 5; i++) {
		t[i] = t_new(h, 8, 3, 0, 0, i + 1);
		assert_int_equal(t_add(h, t[i]), 0);
	}
	h_step(h);
	assert_int_equal(h->n_rec, 2);
	assert_ptr_equal(h->rec[0].t, t[0]);
	assert_ptr_equal(h->rec[1].t, t[1]);
	assert_int_equal(h->s.nr_waiting, 3);
	/* two decodes fill the step although budget and blocks abound */
	h_step(h);
	assert_int_equal(h->n_rec, 2);
	assert_int_equal(h->rec_decode, 2);
	assert_int_equal(h->s.nr_waiting, 3);
	h_step(h);
	assert_false(t[0]->live);
	assert_false(t[1]->live);
	h_step(h);
	assert_ptr_equal(h->rec[0].t, t[2]);
	assert_ptr_equal(h->rec[1].t, t[3]);
	h_run(h, 20);
	for (i = 0; i < 5; i++)
		expect_done(t[i]);
	for (i = 1; i < 5; i++)
		assert_true(t[i]->q.t_scheduled >= t[i - 1]->q.t_scheduled);
	assert_true(t[2]->q.t_scheduled > t[1]->q.t_scheduled);
	h_free(h);
}

static void test_decode_first(void **state)
{
	static const uint32_t len[] = { 253, 253, 253, 241 };
	struct sched_config cfg = cfg_default();
	struct tseq *d[3], *p;
	struct harness *h;
	uint32_t i, j, n[3];

	(void)state;
	cfg.max_model_len = 1100;
	cfg.max_num_batched_tokens = 256;
	h = h_new(&cfg, 128, 16, true);
	for (i = 0; i < 3; i++) {
		d[i] = t_new(h, 10, 50, 0, 0, i + 1);
		assert_int_equal(t_add(h, d[i]), 0);
	}
	h_step(h);
	p = t_new(h, 1000, 2, 0, 0, 9);
	assert_int_equal(t_add(h, p), 0);
	for (i = 0; i < 4; i++) {
		for (j = 0; j < 3; j++)
			n[j] = d[j]->q.n_tokens;
		h_step(h);
		assert_int_equal(h->n_rec, 4);
		assert_int_equal(h->rec_decode, 3);
		for (j = 0; j < 3; j++) {
			assert_ptr_equal(h->rec[j].t, d[j]);
			assert_int_equal(h->rec[j].len, 1);
			assert_true(h->rec[j].sample);
			assert_int_equal(d[j]->q.n_tokens, n[j] + 1);
		}
		/* the prompt gets what the decodes leave */
		assert_ptr_equal(h->rec[3].t, p);
		assert_int_equal(h->rec[3].len, len[i]);
		assert_int_equal(h->rec[3].sample, i == 3);
		assert_int_equal(h->rec_tokens, 3 + len[i]);
	}
	h_step(h);
	assert_int_equal(h->n_rec, 4);
	assert_int_equal(h->rec_decode, 4);
	h_run(h, 100);
	for (i = 0; i < 3; i++)
		expect_done(d[i]);
	expect_done(p);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/* Three sequences of 5 + 10 tokens in a pool of 6 blocks of 4: the run of test_preempt_requeue. */
static void run_abc(struct harness *h, struct tseq **t)
{
	uint32_t i;

	for (i = 0; i < 3; i++) {
		t[i] = t_new(h, 5, 10, 0, 0, i + 1);
		assert_int_equal(t_add(h, t[i]), 0);
	}
}

static void test_preempt_requeue(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h, *big;
	struct tseq *t[3], *r[3];
	const struct rec *re;
	bool b_back = false, c_back = false;
	uint32_t i;

	(void)state;
	cfg.max_model_len = 24;
	cfg.max_num_batched_tokens = 64;
	big = h_new(&cfg, 64, 4, false);
	run_abc(big, r);
	h_run(big, 100);
	assert_int_equal(big->s.stats.preemptions, 0);

	h = h_new(&cfg, 6, 4, false);
	run_abc(h, t);
	h_step(h);
	assert_int_equal(h->n_rec, 3);
	assert_int_equal(kvb_num_used(h->kv), 6);
	for (i = 0; i < 3; i++)
		h_step(h);			/* positions 5, 6, 7 */
	assert_int_equal(h->s.stats.preemptions, 0);

	/* position 8 needs a third block for a and b: c, the latest, makes room */
	h_step(h);
	assert_int_equal(h->s.stats.preemptions, 1);
	assert_int_equal(h->rec_preempted, 1);
	assert_int_equal(t[2]->q.state, SEQ_WAITING);
	assert_int_equal(t[2]->q.preemptions, 1);
	assert_int_equal(t[2]->q.n_computed, 0);
	assert_int_equal(t[2]->q.n_blocks, 0);
	assert_int_equal(t[2]->q.n_tokens, 9);
	assert_int_equal(h->n_rec, 2);
	assert_ptr_equal(h->rec[0].t, t[0]);
	assert_ptr_equal(h->rec[1].t, t[1]);
	assert_int_equal(h->rec[0].pos, 8);
	assert_int_equal(t[0]->q.n_blocks, 3);
	assert_int_equal(t[1]->q.n_blocks, 3);

	for (i = 0; i < 3; i++)
		h_step(h);			/* 9, 10, 11 */
	assert_int_equal(h->s.stats.preemptions, 1);
	/* position 12: now b goes, and queues ahead of c, which came later */
	h_step(h);
	assert_int_equal(h->s.stats.preemptions, 2);
	assert_int_equal(t[1]->q.state, SEQ_WAITING);
	assert_int_equal(t[1]->q.preemptions, 1);
	assert_int_equal(t[1]->q.n_tokens, 13);
	assert_int_equal(t[0]->q.preemptions, 0);
	assert_ptr_equal(list_first_entry(&h->s.waiting, struct sched_seq, link), &t[1]->q);
	assert_int_equal(h->n_rec, 1);

	/* each comes back as a prefill of its prompt and what it had generated */
	while (t[1]->live || t[2]->live) {
		h_step(h);
		re = rec_of(h, t[1]);
		if (re && t[1]->q.preemptions && !b_back) {
			assert_false(c_back);
			assert_int_equal(re->pos, 0);
			assert_int_equal(re->len, 13);
			assert_true(re->sample);
			b_back = true;
		}
		re = rec_of(h, t[2]);
		if (re && !c_back) {
			assert_true(b_back);
			assert_int_equal(re->pos, 0);
			assert_int_equal(re->len, 9);
			assert_true(re->sample);
			c_back = true;
		}
		assert_true(h->steps < 100);
	}
	assert_true(b_back && c_back);
	assert_int_equal(h->s.stats.preemptions, 2);
	assert_int_equal(h->s.stats.prompt_tokens, 3 * 5 + 13 + 9);
	assert_int_equal(h->s.stats.generation_tokens, 30);
	for (i = 0; i < 3; i++) {
		expect_done(t[i]);
		assert_memory_equal(t[i]->tok, r[i]->tok, 15 * sizeof(uint32_t));
	}
	assert_int_equal(kvb_num_used(h->kv), 0);
	assert_int_equal(kvb_num_used(big->kv), 0);
	h_free(big);
	h_free(h);
}

/* Priority outranks arrival in choosing the victim and in the requeue. */
static void test_preempt_priority(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b, *c;
	struct sched_seq *w;

	(void)state;
	cfg.max_model_len = 24;
	cfg.max_num_batched_tokens = 64;
	h = h_new(&cfg, 6, 4, true);
	a = t_new(h, 5, 10, 1, 0, 1);		/* first, but the lowest priority */
	b = t_new(h, 5, 10, 0, 0, 2);
	c = t_new(h, 5, 10, 0, 0, 3);
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(t_add(h, b), 0);
	assert_int_equal(t_add(h, c), 0);
	h_step(h);
	assert_ptr_equal(h->rec[0].t, b);
	assert_ptr_equal(h->rec[1].t, c);
	assert_ptr_equal(h->rec[2].t, a);
	while (!h->s.stats.preemptions)
		h_step(h);
	assert_int_equal(a->q.preemptions, 1);
	assert_int_equal(a->q.state, SEQ_WAITING);
	assert_int_equal(b->q.preemptions + c->q.preemptions, 0);
	while (h->s.stats.preemptions == 1)
		h_step(h);
	assert_int_equal(c->q.preemptions, 1);
	/* c is back in the queue ahead of a, which arrived first */
	w = list_first_entry(&h->s.waiting, struct sched_seq, link);
	assert_ptr_equal(w, &c->q);
	assert_ptr_equal(list_entry(w->link.next, struct sched_seq, link), &a->q);
	/* and is taken back no later than a */
	while (a->q.state == SEQ_WAITING)
		h_step(h);
	assert_int_not_equal(c->q.state, SEQ_WAITING);
	h_run(h, 200);
	expect_done(a);
	expect_done(b);
	expect_done(c);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/*
 * The victim is the last running sequence in priority order, even one that
 * already has its work in the step: here the lower-priority decode d, planned
 * first (decodes go first), gives way to the higher-priority prefill p that
 * needs a block, and loses its token for this step.
 */
static void test_preempt_planned_victim(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *d, *p;

	(void)state;
	cfg.max_model_len = 24;
	cfg.max_num_batched_tokens = 8;
	h = h_new(&cfg, 6, 4, false);
	d = t_new(h, 3, 20, 1, 0, 1);
	p = t_new(h, 19, 1, 0, 0, 2);
	assert_int_equal(t_add(h, d), 0);
	h_step(h);
	assert_int_equal(t_add(h, p), 0);
	h_step(h);				/* d 3; p 0..6 */
	assert_int_equal(rec_of(h, p)->len, 7);
	h_step(h);				/* d 4; p 7..13: the pool is dry */
	assert_int_equal(rec_of(h, p)->pos, 7);
	assert_int_equal(kvb_num_free(h->kv), 0);

	h_step(h);				/* p 14..18 needs a block: d goes */
	assert_int_equal(d->q.preemptions, 1);
	assert_int_equal(d->q.state, SEQ_WAITING);
	assert_null(rec_of(h, d));
	assert_int_equal(h->n_rec, 1);
	assert_int_equal(rec_of(h, p)->pos, 14);
	assert_int_equal(rec_of(h, p)->len, 5);
	assert_int_equal(p->q.preemptions, 0);
	assert_false(p->live);			/* its one token: done */
	h_run(h, 100);
	expect_done(p);
	expect_done(d);
	assert_int_equal(h->s.stats.preemptions, 1);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/*
 * A preempted sequence's full blocks stay in the prefix cache, so it comes
 * back from the last block still cached, not from zero; and that is a
 * recomputation, not a prompt served from the cache, so cached_tokens keeps
 * what the first admission found.
 */
static void test_preempt_resume_cached(void **state)
{
	struct sched_config cfg = cfg_default();
	const struct rec *re = NULL;
	struct harness *h;
	struct tseq *a, *c;

	(void)state;
	cfg.max_model_len = 24;
	cfg.max_num_batched_tokens = 64;
	h = h_new(&cfg, 6, 4, true);
	a = t_new(h, 5, 10, 0, 0, 1);
	c = t_new(h, 9, 6, 1, 0, 2);
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(t_add(h, c), 0);
	while (!c->q.preemptions)
		h_step(h);
	/* c asked for its fourth block at position 12, and a already had work */
	assert_int_equal(c->q.n_tokens, 13);
	assert_int_equal(kvb_num_cached(h->kv), 3);
	/* a's fourth block evicts the tail of c's chain, the head stays */
	while (!(re = rec_of(h, c)))
		h_step(h);
	assert_false(a->live);
	assert_int_equal(re->pos, 8);
	assert_int_equal(re->len, 5);
	assert_true(re->sample);
	assert_int_equal(c->q.cached_tokens, 0);
	assert_int_equal(h->s.stats.cached_tokens, 0);
	assert_int_equal(h->s.stats.prompt_tokens, 5 + 9 + 5);
	h_run(h, 50);
	expect_done(a);
	expect_done(c);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/*
 * With others running, a newcomer must leave watermark_blocks free for
 * their growth; with nothing running it may take the whole pool.
 */
static void test_watermark(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b, *c;

	(void)state;
	cfg.max_model_len = 32;
	cfg.watermark_blocks = 2;
	h = h_new(&cfg, 8, 4, false);
	a = t_new(h, 5, 3, 0, 0, 1);
	b = t_new(h, 17, 2, 0, 0, 2);		/* 5 blocks */
	c = t_new(h, 30, 2, 0, 0, 3);		/* 8 blocks: all of them */
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	assert_null(rec_of(h, b));
	assert_int_equal(kvb_num_free(h->kv), 6);	/* enough for b, not for b and the mark */
	h_step(h);
	assert_false(a->live);
	h_step(h);
	assert_int_equal(rec_of(h, b)->len, 17);
	h_run(h, 10);
	assert_int_equal(t_add(h, c), 0);
	h_step(h);
	assert_int_equal(rec_of(h, c)->len, 30);
	assert_int_equal(kvb_num_free(h->kv), 0);
	h_run(h, 10);
	expect_done(a);
	expect_done(b);
	expect_done(c);
	h_free(h);
}

static void test_priority(void **state)
{
	static const int32_t prio[] = { 5, 1, 5, 1, 0, -3 };
	static const uint32_t order[] = { 5, 4, 1, 3, 0, 2 };
	struct sched_config cfg = cfg_default();
	struct list_head *pos;
	struct harness *h;
	struct tseq *t[6];
	uint32_t i;

	(void)state;
	cfg.max_num_seqs = 1;
	cfg.batch_timeout_ns = WINDOW;
	h = h_new(&cfg, 64, 16, true);
	for (i = 0; i < 6; i++) {
		t[i] = t_new(h, 4, 1, prio[i], 0, i + 1);
		assert_int_equal(t_add(h, t[i]), 0);
		h->now += 10;
	}
	i = 0;
	list_for_each(pos, &h->s.waiting)
		assert_ptr_equal(list_entry(pos, struct sched_seq, link), &t[order[i++]]->q);
	assert_int_equal(i, 6);
	h_run(h, 20);
	for (i = 0; i < 6; i++)
		expect_done(t[i]);
	for (i = 1; i < 6; i++)
		assert_true(t[order[i]]->q.t_scheduled > t[order[i - 1]]->q.t_scheduled);
	h_free(h);
}

static void test_cancel(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *k1, *k2, *w, *pf, *dc, *nv, *t[3], *v;
	uint32_t used, i;
	struct harness *h;

	(void)state;
	cfg.max_model_len = 512;
	cfg.max_num_batched_tokens = 64;
	h = h_new(&cfg, 64, 16, true);
	k1 = t_new(h, 10, 20, 0, 0, 1);
	k2 = t_new(h, 10, 20, 0, 0, 2);
	dc = t_new(h, 10, 20, 0, 0, 3);
	pf = t_new(h, 150, 5, 0, 0, 4);
	w = t_new(h, 20, 5, 0, 0, 5);
	nv = t_new(h, 20, 5, 0, 0, 6);
	assert_int_equal(t_add(h, k1), 0);
	assert_int_equal(t_add(h, k2), 0);
	assert_int_equal(t_add(h, dc), 0);
	assert_int_equal(t_add(h, pf), 0);
	h_step(h);
	assert_int_equal(rec_of(h, pf)->len, 34);
	h_step(h);
	assert_int_equal(rec_of(h, pf)->pos, 34);

	/* waiting, never run */
	assert_int_equal(t_add(h, w), 0);
	used = kvb_num_used(h->kv);
	t_cancel(h, w);
	assert_int_equal(kvb_num_used(h->kv), used);

	/* prefilling, 95 of 150 computed */
	assert_int_equal(pf->q.n_computed, 95);
	assert_int_equal(pf->q.n_blocks, 6);
	t_cancel(h, pf);
	assert_int_equal(kvb_num_used(h->kv), used - 6);

	/* decoding */
	h_step(h);
	assert_int_equal(dc->q.n_tokens, 13);
	used = kvb_num_used(h->kv);
	t_cancel(h, dc);
	assert_int_equal(kvb_num_used(h->kv), used - 1);

	/* never added, and twice: nothing to undo */
	sched_finish(&h->s, &nv->q);
	assert_int_equal(nv->q.state, SEQ_DONE);
	sched_finish(&h->s, &dc->q);
	check_state(h, false);
	assert_int_equal(h->s.nr_running, 2);

	h_run(h, 100);
	expect_done(k1);
	expect_done(k2);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);

	/* preempted, waiting to be recomputed */
	cfg.max_model_len = 24;
	h = h_new(&cfg, 6, 4, false);
	run_abc(h, t);
	while (!h->s.stats.preemptions)
		h_step(h);
	assert_int_equal(t[2]->q.state, SEQ_WAITING);
	assert_int_equal(t[2]->q.preemptions, 1);
	used = kvb_num_used(h->kv);
	t_cancel(h, t[2]);
	assert_int_equal(kvb_num_used(h->kv), used);
	assert_int_equal(h->s.nr_waiting, 0);
	h_run(h, 100);
	expect_done(t[0]);
	expect_done(t[1]);
	assert_int_equal(h->s.stats.preemptions, 2);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);

	/* preempted and back, mid-recompute: a small budget spreads it over steps */
	cfg.max_num_batched_tokens = 4;
	h = h_new(&cfg, 6, 4, false);
	run_abc(h, t);
	for (v = NULL; !v;) {
		h_step(h);
		assert_true(h->steps < 200);
		for (i = 0; i < 3; i++)
			if (t[i]->live && t[i]->q.preemptions && t[i]->q.state == SEQ_RUNNING &&
			    t[i]->q.n_tokens - t[i]->q.n_computed > 1)
				v = t[i];
	}
	assert_true(v->q.n_computed > 0);
	t_cancel(h, v);
	h_run(h, 200);
	for (i = 0; i < 3; i++)
		if (t[i] != v)
			expect_done(t[i]);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/* a: the 100-token prefix and 10 of its own; b: the prefix and 20 of its own */
static void prefix_pair(struct harness *h, struct tseq **a, struct tseq **b, uint64_t salt_b)
{
	*a = t_new(h, 110, 5, 0, 1, 1);
	*b = t_new(h, 120, 5, 0, salt_b, 2);
	memcpy((*b)->tok, (*a)->tok, 100 * sizeof(uint32_t));
}

static void test_prefix_shared(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b, *c;
	const struct rec *re;
	uint32_t i;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	prefix_pair(h, &a, &b, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(kv_hits(h), 0);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	re = rec_of(h, b);
	assert_non_null(re);
	assert_int_equal(re->pos, 96);
	assert_int_equal(re->len, 24);
	assert_int_equal(b->q.cached_tokens, 96);
	assert_int_equal(a->q.cached_tokens, 0);
	assert_int_equal(h->s.stats.cached_tokens, 96);
	assert_int_equal(kv_hits(h), 96);
	assert_int_equal(kv_queries(h), 109 + 119);
	for (i = 0; i < 6; i++)
		assert_int_equal(b->blk[i], a->blk[i]);
	assert_false(holds(a, b->blk[6]));
	assert_false(holds(a, b->blk[7]));
	assert_int_equal(kvb_num_used(h->kv), 7 + 2);
	/* the shared blocks count once */
	assert_int_equal(h->s.stats.prompt_tokens, 110 + 24);

	/*
	 * c shares b's first 116 tokens: b's seventh block, committed on top
	 * of a chain b found rather than computed, is found too.
	 */
	c = t_new(h, 120, 5, 0, 1, 3);
	memcpy(c->tok, b->tok, 116 * sizeof(uint32_t));
	assert_int_equal(t_add(h, c), 0);
	h_step(h);
	assert_int_equal(rec_of(h, c)->pos, 112);
	assert_int_equal(c->q.cached_tokens, 112);
	for (i = 0; i < 7; i++)
		assert_int_equal(c->blk[i], b->blk[i]);
	h_run(h, 20);
	expect_done(a);
	expect_done(b);
	expect_done(c);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/* a has ended: its blocks are free but still findable. */
static void test_prefix_after_finish(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	prefix_pair(h, &a, &b, 1);
	assert_int_equal(t_add(h, a), 0);
	h_run(h, 20);
	expect_done(a);
	assert_int_equal(kvb_num_used(h->kv), 0);
	assert_int_equal(kvb_num_cached(h->kv), 7);	/* 114 tokens computed */
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	assert_int_equal(h->rec[0].pos, 96);
	assert_int_equal(b->q.cached_tokens, 96);
	assert_int_equal(kv_hits(h), 96);
	h_run(h, 20);
	expect_done(b);
	h_free(h);
}

static void test_prefix_salt(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b;
	uint32_t i;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	prefix_pair(h, &a, &b, 2);		/* another uid's salt */
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	assert_int_equal(rec_of(h, b)->pos, 0);
	assert_int_equal(rec_of(h, b)->len, 120);
	assert_int_equal(b->q.cached_tokens, 0);
	assert_int_equal(kv_hits(h), 0);
	for (i = 0; i < b->q.n_blocks; i++)
		assert_false(holds(a, b->blk[i]));
	assert_int_equal(kvb_num_used(h->kv), 7 + 8);
	h_run(h, 20);
	expect_done(a);
	expect_done(b);
	h_free(h);
}

static void test_prefix_off(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b;
	uint32_t i;

	(void)state;
	h = h_new(&cfg, 64, 16, false);
	prefix_pair(h, &a, &b, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	assert_int_equal(rec_of(h, b)->pos, 0);
	assert_int_equal(b->q.cached_tokens, 0);
	assert_int_equal(h->s.stats.cached_tokens, 0);
	assert_int_equal(kv_hits(h), 0);
	assert_int_equal(kv_queries(h), 0);
	for (i = 0; i < b->q.n_blocks; i++)
		assert_false(holds(a, b->blk[i]));
	h_run(h, 20);
	expect_done(a);
	expect_done(b);
	h_free(h);
}

/*
 * Identical prompts of exactly 6 blocks: the match stops one block short,
 * since the last prompt token must be computed for its logits, and that
 * block is computed into a block of b's own, not into a's.
 */
static void test_prefix_identical(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b;
	uint32_t i;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	a = t_new(h, 96, 4, 0, 0, 1);
	b = t_new(h, 96, 4, 0, 0, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);
	assert_int_equal(rec_of(h, b)->pos, 80);
	assert_int_equal(rec_of(h, b)->len, 16);
	assert_int_equal(b->q.cached_tokens, 80);
	for (i = 0; i < 5; i++)
		assert_int_equal(b->blk[i], a->blk[i]);
	assert_false(holds(a, b->blk[5]));
	h_run(h, 20);
	expect_done(a);
	expect_done(b);
	assert_memory_equal(a->tok, b->tok, 100 * sizeof(uint32_t));
	h_free(h);
}

/*
 * A pool short enough that b's new blocks must come from evicting cached
 * ones: the blocks a is using, shared or not, are never among them.
 */
static void test_prefix_in_use(void **state)
{
	struct sched_config cfg = cfg_default();
	struct tseq *a, *b, *d, *e;
	struct kv_blocks_stats st;
	struct harness *h;
	uint32_t i;

	(void)state;
	cfg.max_model_len = 160;
	h = h_new(&cfg, 10, 16, true);
	d = t_new(h, 40, 1, 0, 1, 7);
	assert_int_equal(t_add(h, d), 0);
	h_run(h, 5);
	expect_done(d);
	assert_int_equal(kvb_num_cached(h->kv), 2);
	prefix_pair(h, &a, &b, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);				/* a: 7 blocks; 1 free, 2 cached */
	assert_int_equal(t_add(h, b), 0);
	e = t_new(h, 30, 2, 0, 1, 8);
	assert_int_equal(t_add(h, e), 0);
	h_step(h);
	assert_int_equal(rec_of(h, b)->pos, 96);
	assert_null(rec_of(h, e));		/* no room left for it */
	kvb_stats(h->kv, &st);
	assert_true(st.evictions >= 1);
	for (i = 6; i < b->q.n_blocks; i++)
		assert_false(holds(a, b->blk[i]));
	for (i = 0; i < a->q.n_blocks; i++)
		assert_true(i < 6 ? holds(b, a->blk[i]) : !holds(b, a->blk[i]));
	h_run(h, 50);
	expect_done(a);
	expect_done(b);
	expect_done(e);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

/*
 * Run ahead: each sampled token is appended pending, and its value given
 * later lands in its own slot, oldest first, without counting it again.
 */
static void test_pending_resolve(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	h->lag = -1;
	a = t_new(h, 5, 6, 0, 3, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);				/* the prompt; a token sampled, unknown */
	assert_int_equal(a->q.n_tokens, 6);
	assert_int_equal(a->q.n_pending, 1);
	assert_int_equal(a->tok[5], SCHED_TOKEN_PENDING);
	assert_int_equal(h->s.stats.generation_tokens, 1);
	h_step(h);				/* its decode, fed by the engine */
	assert_int_equal(rec_of(h, a)->pos, 5);
	assert_int_equal(rec_of(h, a)->len, 1);
	assert_true(rec_of(h, a)->sample);
	assert_int_equal(a->q.n_tokens, 7);
	assert_int_equal(a->q.n_pending, 2);
	assert_int_equal(h->s.stats.generation_tokens, 2);

	sched_resolve(&h->s, &a->q, a->dev[5]);
	assert_int_equal(a->tok[5], model_token(3, a->tok, 5));
	assert_int_equal(a->tok[6], SCHED_TOKEN_PENDING);
	assert_int_equal(a->q.n_tokens, 7);
	assert_int_equal(a->q.n_pending, 1);
	sched_resolve(&h->s, &a->q, a->dev[6]);
	assert_int_equal(a->tok[6], model_token(3, a->tok, 6));
	assert_int_equal(a->q.n_tokens, 7);
	assert_int_equal(a->q.n_pending, 0);
	assert_int_equal(h->s.stats.generation_tokens, 2);
	check_state(h, false);

	h->lag = 1;
	h_run(h, 20);
	expect_done(a);
	assert_int_equal(h->s.stats.generation_tokens, 6);
	h_free(h);
}

/*
 * A decode fills a's first block with a token still pending: the block is
 * not committed (under the real tokens or the placeholder) until the value
 * comes, and then under the key the sync path gives it.
 */
static void test_pending_commit(void **state)
{
	struct sched_config cfg = cfg_default();
	uint32_t real[16], ids[1];
	struct harness *h, *h2;
	struct kv_key key;
	struct tseq *a, *c;

	(void)state;
	h = h_new(&cfg, 64, 16, true);
	h->lag = -1;
	a = t_new(h, 15, 4, 0, 1, 1);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	h_step(h);
	assert_int_equal(a->q.n_computed, 16);
	assert_int_equal(a->q.n_pending, 2);
	assert_int_equal(a->q.n_committed, 0);
	memcpy(real, a->tok, 15 * sizeof(*real));
	real[15] = a->dev[15];
	assert_int_equal(real[15], model_token(1, real, 15));
	assert_int_equal(kvb_match(h->kv, 1, real, 16, ids, &key), 0);
	assert_int_equal(kvb_match(h->kv, 1, a->tok, 16, ids, &key), 0);
	assert_int_equal(kvb_num_used(h->kv), 1);

	t_resolve(h, a);
	assert_int_equal(a->q.n_pending, 1);
	assert_int_equal(a->q.n_committed, 1);
	assert_int_equal(kvb_match(h->kv, 1, real, 16, ids, &key), 1);
	assert_int_equal(ids[0], a->blk[0]);
	assert_memory_equal(&key, &a->q.key, sizeof(key));
	kvb_put(h->kv, ids[0]);
	check_state(h, false);

	/* the same sequence, its tokens known at once */
	h2 = h_new(&cfg, 64, 16, true);
	c = t_new(h2, 15, 4, 0, 1, 1);
	assert_int_equal(t_add(h2, c), 0);
	h_step(h2);
	h_step(h2);
	assert_int_equal(c->q.n_committed, 1);
	assert_memory_equal(c->tok, real, sizeof(real));
	assert_memory_equal(&c->q.key, &a->q.key, sizeof(key));

	h_resolve_all(h);
	h->lag = 1;
	h_run(h, 20);
	h_run(h2, 20);
	expect_done(a);
	expect_done(c);
	assert_memory_equal(a->tok, c->tok, 19 * sizeof(uint32_t));
	h_free(h2);
	h_free(h);
}

/*
 * a reaches max_len with its last token pending: it gets no work, and its
 * place in the step (max_num_seqs 1) goes to c, while it keeps its blocks
 * until its tokens are known and it ends.
 */
static void test_pending_max_len(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *c;
	uint32_t used;

	(void)state;
	cfg.max_num_seqs = 1;
	h = h_new(&cfg, 64, 16, true);
	h->lag = -1;
	a = t_new(h, 10, 2, 0, 0, 1);
	c = t_new(h, 5, 3, 0, 0, 2);
	assert_int_equal(t_add(h, a), 0);
	h_step(h);
	assert_int_equal(t_add(h, c), 0);
	h_step(h);
	assert_null(rec_of(h, c));
	assert_int_equal(a->q.n_tokens, a->q.max_len);
	assert_int_equal(a->q.n_pending, 2);

	h_step(h);
	assert_null(rec_of(h, a));
	assert_non_null(rec_of(h, c));
	assert_int_equal(h->n_rec, 1);
	assert_int_equal(a->q.state, SEQ_RUNNING);
	assert_int_equal(a->q.n_computed, 11);
	assert_int_equal(a->q.n_blocks, 1);
	assert_int_equal(h->s.nr_running, 2);

	/* alone, it makes an empty step */
	used = kvb_num_used(h->kv);
	t_cancel(h, c);
	h_step(h);
	assert_int_equal(h->n_rec, 0);
	assert_int_equal(kvb_num_used(h->kv), used - 1);

	t_resolve(h, a);
	assert_true(a->live);
	t_resolve(h, a);
	expect_done(a);
	assert_int_equal(kvb_num_used(h->kv), 0);
	assert_int_equal(h->s.nr_running, 0);
	h_free(h);
}

/*
 * b is preempted with a token pending: it is passed over, room or not,
 * while c behind it is admitted, and comes back once the value is known.
 */
static void test_pending_preempted(void **state)
{
	struct sched_config cfg = cfg_default();
	struct harness *h;
	struct tseq *a, *b, *c;

	(void)state;
	cfg.max_model_len = 16;
	h = h_new(&cfg, 4, 4, true);
	h->lag = -1;
	a = t_new(h, 7, 4, 0, 0, 1);
	b = t_new(h, 7, 4, 0, 0, 2);
	c = t_new(h, 3, 2, 0, 0, 3);
	assert_int_equal(t_add(h, a), 0);
	assert_int_equal(t_add(h, b), 0);
	h_step(h);				/* two blocks each: the pool is full */
	h_resolve_all(h);
	h_step(h);
	h_step(h);				/* a needs a third block: b goes */
	assert_non_null(rec_of(h, a));
	assert_int_equal(b->q.state, SEQ_WAITING);
	assert_int_equal(b->q.preemptions, 1);
	assert_int_equal(b->q.n_tokens, 9);
	assert_int_equal(b->q.n_pending, 1);
	assert_int_equal(b->tok[8], SCHED_TOKEN_PENDING);

	assert_int_equal(t_add(h, c), 0);
	t_cancel(h, a);				/* room for b */
	h_step(h);
	assert_null(rec_of(h, b));
	assert_non_null(rec_of(h, c));
	assert_int_equal(b->q.state, SEQ_WAITING);
	assert_true(kvb_num_free(h->kv) >= 3);
	h_step(h);
	assert_null(rec_of(h, b));

	t_resolve(h, b);			/* while it waits */
	assert_int_equal(b->tok[8], model_token(0, b->tok, 8));
	h_step(h);
	assert_non_null(rec_of(h, b));
	assert_int_equal(rec_of(h, b)->pos, 4);	/* its first block, still cached */
	assert_int_equal(rec_of(h, b)->len, 5);

	h_resolve_all(h);
	h->lag = 1;
	h_run(h, 50);
	expect_done(b);
	expect_done(c);
	assert_int_equal(kvb_num_used(h->kv), 0);
	h_free(h);
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(mix64(rng_state) % n);
}

struct stress_cfg {
	struct sched_config	sc;
	uint32_t		n_blocks;
	uint32_t		block_size;
	bool			prefix_caching;
	uint32_t		iters;
	uint64_t		seed;
};

/*
 * Random arrivals, lengths, priorities, salts, early stops and
 * cancellations on a small pool, every plan checked; at the end every
 * sequence's tokens are the model's and no block is left in use.
 */
static void stress(const struct stress_cfg *sc)
{
	uint32_t it, i, n, np, mml = sc->sc.max_model_len, base[3][256];
	uint64_t dl, cancel[4] = { 0, 0, 0, 0 }, busy = 0;
	struct harness *h;
	struct tseq *t;
	bool full;
	int ret;

	rng_state = sc->seed;
	h = h_new(&sc->sc, sc->n_blocks, sc->block_size, sc->prefix_caching);
	assert_true(mml <= 256);
	for (i = 0; i < 3; i++)
		fill(base[i], mml, 100 + i);

	for (it = 0; it < sc->iters; it++) {
		if (rnd(100) < 35) {
			np = 1 + rnd(mml - 1);
			n = 1 + rnd(min_u32(mml - np, 24));
			t = t_new(h, np, n, (int32_t)rnd(4) - 1, rnd(2), 1000 + it);
			if (rnd(2)) {
				/* a shared start, so that the prefix cache has work */
				i = rnd(3);
				memcpy(t->tok, base[i], rnd(np + 1) * sizeof(uint32_t));
			}
			t->target = np + 1 + rnd(n);	/* sometimes a stop token ends it early */
			full = h->s.nr_waiting >= sc->sc.max_queued;
			ret = t_add(h, t);
			assert_int_equal(ret, full ? -EBUSY : 0);
			busy += full;
		}
		if (rnd(100) < 4 && h->n_all) {
			/* the first live one from a random start */
			t = NULL;
			for (i = rnd(h->n_all), n = 0; n < h->n_all && !t; n++)
				if (h->all[(i + n) % h->n_all]->live)
					t = h->all[(i + n) % h->n_all];
			if (t) {
				if (t->q.state == SEQ_WAITING)
					cancel[t->q.preemptions ? 1 : 0]++;
				else if (t->q.n_tokens - t->q.n_computed > 1)
					cancel[2]++;
				else
					cancel[3]++;
				t_cancel(h, t);
			}
		}
		switch (sched_poll(&h->s, h->now, &dl)) {
		case SCHED_ACT_IDLE:
			h->now += rnd(5 * STEP_NS);
			break;
		case SCHED_ACT_WAIT:
			assert_true(dl > h->now);
			h->now += rnd(2 * STEP_NS) + 1;
			if (h->now > dl)
				h->now = dl;
			break;
		case SCHED_ACT_STEP:
			h_step(h);
			break;
		}
	}
	h_run(h, 100000);
	assert_int_equal(h->s.nr_waiting + h->s.nr_running, 0);
	assert_int_equal(kvb_num_used(h->kv), 0);
	for (i = 0; i < h->n_all; i++) {
		t = h->all[i];
		assert_false(t->live);
		expect_tokens(t);
	}
	print_message("stress: %u seqs, %llu steps, %llu preemptions, %llu cached tokens, "
		      "%llu -EBUSY, cancelled %llu waiting, %llu preempted, %llu prefilling, "
		      "%llu decoding\n",
		      h->n_all, (unsigned long long)h->steps,
		      (unsigned long long)h->s.stats.preemptions,
		      (unsigned long long)h->s.stats.cached_tokens, (unsigned long long)busy,
		      (unsigned long long)cancel[0], (unsigned long long)cancel[1],
		      (unsigned long long)cancel[2], (unsigned long long)cancel[3]);
	/* the run reached what it is for */
	assert_true(h->s.stats.preemptions > 10);
	assert_true(!sc->prefix_caching || h->s.stats.cached_tokens > 0);
	for (i = 0; i < 4; i++)
		assert_true(cancel[i] > 0);
	h_free(h);
}

/* The workloads of test_stress, and in the run-ahead pattern of test_stress_ahead. */
static const struct stress_cfg stress_runs[] = {
	{
		.sc = {
			.batch_timeout_ns	= 3 * STEP_NS,
			.max_batch_size		= 3,
			.max_num_seqs		= 6,
			.max_num_batched_tokens	= 12,
			.max_queued		= 10,
			.max_model_len		= 48,
			.watermark_blocks	= 1,
		},
		.n_blocks = 16, .block_size = 4, .prefix_caching = true,
		.iters = 6000, .seed = 0x5eed0001,
	},
	{
		.sc = {
			.batch_timeout_ns	= 0,
			.max_batch_size		= 1,
			.max_num_seqs		= 4,
			.max_num_batched_tokens	= 9,
			.max_queued		= 6,
			.max_model_len		= 40,
			.watermark_blocks	= 0,
		},
		.n_blocks = 14, .block_size = 3, .prefix_caching = false,
		.iters = 6000, .seed = 0x5eed0002,
	},
	{
		.sc = {
			.batch_timeout_ns	= 2 * STEP_NS,
			.max_batch_size		= 4,
			.max_num_seqs		= 8,
			.max_num_batched_tokens	= 40,
			.max_queued		= 16,
			.max_model_len		= 160,
			.watermark_blocks	= 2,
		},
		.n_blocks = 12, .block_size = 16, .prefix_caching = true,
		.iters = 6000, .seed = 0x5eed0003,
	},
};

static void test_stress(void **state)
{
	uint32_t i;

	(void)state;
	for (i = 0; i < sizeof(stress_runs) / sizeof(stress_runs[0]); i++)
		stress(&stress_runs[i]);
}

/*
 * A random workload, its decisions drawn whatever the scheduler does, so
 * that it is the same for every @lag; run to the end, every plan checked.
 */
static struct harness *workload(const struct stress_cfg *sc, int lag)
{
	uint32_t it, i, n, np, mml = sc->sc.max_model_len, base[3][256];
	struct harness *h;
	struct tseq *t;
	uint64_t dl;

	rng_state = sc->seed;
	h = h_new(&sc->sc, sc->n_blocks, sc->block_size, sc->prefix_caching);
	h->lag = lag;
	assert_true(mml <= 256);
	for (i = 0; i < 3; i++)
		fill(base[i], mml, 100 + i);

	for (it = 0; it < sc->iters; it++) {
		if (rnd(100) < 30) {
			np = 1 + rnd(mml - 1);
			n = 1 + rnd(min_u32(mml - np, 24));
			t = t_new(h, np, n, (int32_t)rnd(4) - 1, rnd(2), 1000 + it);
			if (rnd(2)) {
				i = rnd(3);
				memcpy(t->tok, base[i], rnd(np + 1) * sizeof(uint32_t));
			}
			t->target = np + 1 + rnd(n);
			assert_int_equal(t_add(h, t), 0);
		}
		if (rnd(100) < 3 && h->n_all) {
			t = h->all[rnd(h->n_all)];
			if (t->live)
				t_cancel(h, t);
		}
		switch (sched_poll(&h->s, h->now, &dl)) {
		case SCHED_ACT_IDLE:
			h->now += STEP_NS;
			break;
		case SCHED_ACT_WAIT:
			assert_true(dl > h->now);
			h->now = dl;
			break;
		case SCHED_ACT_STEP:
			h_step(h);
			break;
		}
	}
	h_run(h, 100000);
	assert_int_equal(h->s.nr_waiting + h->s.nr_running, 0);
	assert_int_equal(kvb_num_used(h->kv), 0);
	for (i = 0; i < h->n_all; i++) {
		t = h->all[i];
		assert_false(t->live);
		if (!t->cancelled)
			expect_done(t);
		expect_tokens(t);
	}
	return h;
}

/*
 * The run-ahead pattern (plan k, advance k, append the sampled tokens
 * pending, then resolve those of step k - 1, or k - 2), ending sequences
 * when their stop or max_len is known: every sequence gets the token stream
 * it gets when each token is known at once, and no block is left in use.
 */
static void test_stress_ahead(void **state)
{
	static const uint64_t seeds[] = { 0xa4ead001, 0xa4ead002, 0xa4ead003 };
	struct stress_cfg run;
	struct harness *ref, *h;
	struct tseq *r, *t;
	uint32_t i, j, kr, kt;
	int lag;

	(void)state;
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		run = stress_runs[i];
		/* Every add taken, so that each pattern sees the same workload. */
		run.sc.max_queued = 4096;
		run.iters = 4000;
		run.seed = seeds[i];
		ref = workload(&run, 0);
		for (lag = 1; lag <= 2; lag++) {
			h = workload(&run, lag);
			assert_int_equal(h->n_all, ref->n_all);
			for (j = 0; j < h->n_all; j++) {
				r = ref->all[j];
				t = h->all[j];
				assert_int_equal(t->q.n_prompt, r->q.n_prompt);
				assert_int_equal(t->target, r->target);
				kr = r->q.n_tokens - r->q.n_pending;
				kt = t->q.n_tokens - t->q.n_pending;
				if (!r->cancelled && !t->cancelled)
					assert_int_equal(kt, kr);
				assert_memory_equal(t->tok, r->tok, min_u32(kr, kt) * sizeof(uint32_t));
			}
			print_message("stress ahead %d: %u seqs, %llu steps, %llu preemptions "
				      "(%llu pending), %llu idle at max_len, %llu deferred "
				      "commits, %llu admitted past a pending one\n",
				      lag, h->n_all, (unsigned long long)h->steps,
				      (unsigned long long)h->s.stats.preemptions,
				      (unsigned long long)h->pend_victims,
				      (unsigned long long)h->pend_idle,
				      (unsigned long long)h->pend_deferred,
				      (unsigned long long)h->pend_passed);
			/* the run reached what it is for */
			assert_true(h->pend_victims > 0);
			assert_true(h->pend_idle > 0);
			assert_true(h->pend_deferred > 0);
			assert_true(lag < 2 || h->pend_passed > 0);
			h_free(h);
		}
		h_free(ref);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_bad),
		cmocka_unit_test(test_add_errors),
		cmocka_unit_test(test_window_lone),
		cmocka_unit_test(test_window_burst),
		cmocka_unit_test(test_window_full),
		cmocka_unit_test(test_window_closed),
		cmocka_unit_test(test_window_zero),
		cmocka_unit_test(test_chunked_prefill),
		cmocka_unit_test(test_max_num_seqs),
		cmocka_unit_test(test_decode_first),
		cmocka_unit_test(test_preempt_requeue),
		cmocka_unit_test(test_preempt_priority),
		cmocka_unit_test(test_preempt_planned_victim),
		cmocka_unit_test(test_preempt_resume_cached),
		cmocka_unit_test(test_watermark),
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_prefix_shared),
		cmocka_unit_test(test_prefix_after_finish),
		cmocka_unit_test(test_prefix_salt),
		cmocka_unit_test(test_prefix_off),
		cmocka_unit_test(test_prefix_identical),
		cmocka_unit_test(test_prefix_in_use),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_pending_resolve),
		cmocka_unit_test(test_pending_commit),
		cmocka_unit_test(test_pending_max_len),
		cmocka_unit_test(test_pending_preempted),
		cmocka_unit_test(test_stress_ahead),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
