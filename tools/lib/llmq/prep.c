// SPDX-License-Identifier: MIT
/*
 * Filling SQEs: sampling parameters to the ABI's fixed point, and the arena
 * allocator that places prompts and stop lists where the runtime reads them.
 *
 * The runtime copies everything it needs out of the arena when it consumes
 * an SQE, so an allocation lives until sq_head passes its SQE.  Allocations
 * are made in a ring buffer and reclaimed in allocation order, stopping at
 * the first one whose SQE is still unconsumed.
 */
#include <errno.h>
#include <string.h>

#include "libllmq.h"
#include "ring.h"

/**
 * llmq_sampling_init() - default sampling: greedy, 16 tokens, streamed
 * @sp:		the parameters to fill
 */
void llmq_sampling_init(struct llmq_sampling *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->top_p = 1.0f;
	sp->repetition_penalty = 1.0f;
	sp->max_tokens = 0;	/* the runtime's default: 16, within its limit */
	sp->flags = LLMQ_SQE_STREAM;
}

static void arena_reclaim(struct llmq_ring *ring)
{
	uint32_t head = llmq_load_acquire(&ring->hdr->sq_head);
	struct llmq_arena_slot *s;

	while (ring->slot_head != ring->slot_tail) {
		s = &ring->slots[ring->slot_head % ring->sq_entries];
		if ((int32_t)(s->seq - head) >= 0)
			break;
		ring->arena_head = s->end;
		ring->slot_head++;
	}
}

/*
 * Reserve @len contiguous arena bytes for the SQE with index @seq.  Returns
 * the arena offset, -E2BIG if it can never fit, -EAGAIN if not right now.
 */
static int64_t arena_alloc(struct llmq_ring *ring, uint32_t seq, uint64_t len)
{
	uint64_t size = ring->arena_size, pos, in;

	if (len > size)
		return -E2BIG;
	arena_reclaim(ring);
	if (ring->slot_head == ring->slot_tail) {
		/* Empty: restart at the beginning so any size fits. */
		pos = (ring->arena_tail + size - 1) / size * size;
		ring->arena_head = ring->arena_tail = pos;
	}
	if (ring->slot_tail - ring->slot_head >= ring->sq_entries)
		return -EAGAIN;
	pos = ring->arena_tail;
	in = pos % size;
	if (in + len > size)
		pos += size - in;
	if (pos + len - ring->arena_head > size)
		return -EAGAIN;
	ring->arena_tail = pos + len;
	ring->slots[ring->slot_tail % ring->sq_entries] =
		(struct llmq_arena_slot){ .seq = seq, .end = ring->arena_tail };
	ring->slot_tail++;
	return (int64_t)(pos % size);
}

/* The free-running index of @sqe, one of those handed out and not published. */
static uint32_t sqe_seq(const struct llmq_ring *ring, const struct llmq_sqe *sqe)
{
	uint32_t mask = ring->sq_entries - 1, idx = (uint32_t)(sqe - ring->sqes);

	return ring->sqe_tail - 1 - ((ring->sqe_tail - 1 - idx) & mask);
}

static int to_fixed(float v, float lo, float hi, int32_t *out)
{
	if (!(v >= lo && v <= hi))	/* also rejects NaN */
		return -ERANGE;
	/* round to nearest without libm */
	*out = (int32_t)(v * LLMQ_FP_ONE + (v >= 0 ? 0.5f : -0.5f));
	return 0;
}

static int fill_sampling(struct llmq_sqe *sqe, const struct llmq_sampling *sp)
{
	int32_t t, p, m, r, pr, fr;

	if (to_fixed(sp->temperature, 0.0f, 100.0f, &t) ||
	    to_fixed(sp->top_p, 1e-6f, 1.0f, &p) ||
	    to_fixed(sp->min_p, 0.0f, 1.0f, &m) ||
	    to_fixed(sp->repetition_penalty, 1e-6f, 10.0f, &r) ||
	    to_fixed(sp->presence_penalty, -2.0f, 2.0f, &pr) ||
	    to_fixed(sp->frequency_penalty, -2.0f, 2.0f, &fr))
		return -ERANGE;
	if (sp->flags & ~LLMQ_SQE_FLAGS_ALL)
		return -EINVAL;
	sqe->flags = (uint8_t)sp->flags;
	sqe->priority = sp->priority;
	sqe->max_tokens = sp->max_tokens;
	sqe->top_k = sp->top_k;
	sqe->temperature = (uint32_t)t;
	sqe->top_p = (uint32_t)p;
	sqe->min_p = (uint32_t)m;
	sqe->repetition_penalty = (uint32_t)r;
	sqe->presence_penalty = pr;
	sqe->frequency_penalty = fr;
	sqe->seed = sp->seed;
	return 0;
}

/**
 * llmq_prep_nop() - an entry that completes at once with res 0
 * @sqe:	from llmq_get_sqe()
 * @user_data:	copied to the completion
 */
void llmq_prep_nop(struct llmq_sqe *sqe, uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = LLMQ_OP_NOP;
	sqe->user_data = user_data;
}

/**
 * llmq_prep_cancel() - an entry that cancels requests by user_data
 * @sqe:	from llmq_get_sqe()
 * @target:	user_data of the request(s) to cancel
 * @user_data:	user_data of the cancellation's own completion
 */
void llmq_prep_cancel(struct llmq_sqe *sqe, uint64_t target, uint64_t user_data)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = LLMQ_OP_CANCEL;
	sqe->user_data = user_data;
	sqe->target = target;
}

/**
 * llmq_prep_generate() - a generation request
 * @ring:	the ring @sqe came from; its arena receives the prompt
 * @sqe:	from llmq_get_sqe(), not yet submitted
 * @prompt:	UTF-8 prompt
 * @len:	its length in bytes
 * @sp:		sampling, or NULL for llmq_sampling_init()'s defaults
 * @user_data:	copied to every completion of the request
 *
 * Copies the prompt, stop strings and stop ids into the arena.
 *
 * Return: 0; -ERANGE for a parameter out of range, -EINVAL for unknown
 * flags, -E2BIG if the data can never fit the arena or there are more than
 * LLMQ_MAX_STOP_IDS stop ids, -EAGAIN if it does not fit now (reap
 * completions and retry).
 */
int llmq_prep_generate(struct llmq_ring *ring, struct llmq_sqe *sqe, const char *prompt,
		       size_t len, const struct llmq_sampling *sp, uint64_t user_data)
{
	struct llmq_sampling def;
	uint64_t stop_len = 0, ids_len, total;
	int64_t off;
	uint8_t *p;
	unsigned int i;
	int err;

	if (!sp) {
		llmq_sampling_init(&def);
		sp = &def;
	}
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = LLMQ_OP_GENERATE;
	sqe->user_data = user_data;
	err = fill_sampling(sqe, sp);
	if (err)
		return err;
	for (i = 0; sp->stop && sp->stop[i]; i++) {
		if (!sp->stop[i][0])
			return -EINVAL;
		stop_len += strlen(sp->stop[i]) + 1;
	}
	ids_len = (uint64_t)sp->nr_stop_ids * sizeof(uint32_t);
	/* Layout in the allocation: stop ids (4-aligned), prompt, stop list. */
	total = ids_len + len + stop_len;
	if (total > ring->arena_size || len > UINT32_MAX || sp->nr_stop_ids > LLMQ_MAX_STOP_IDS)
		return -E2BIG;
	off = arena_alloc(ring, sqe_seq(ring, sqe), (total + 3) & ~3ULL);
	if (off < 0)
		return (int)off;
	p = ring->arena + off;
	if (ids_len) {
		memcpy(p, sp->stop_ids, ids_len);
		sqe->stop_ids_off = (uint32_t)off;
		sqe->stop_ids_count = sp->nr_stop_ids;
	}
	memcpy(p + ids_len, prompt, len);
	sqe->prompt_off = (uint32_t)(off + ids_len);
	sqe->prompt_len = (uint32_t)len;
	if (stop_len) {
		p += ids_len + len;
		sqe->stop_off = (uint32_t)(off + ids_len + len);
		sqe->stop_len = (uint32_t)stop_len;
		for (i = 0; sp->stop[i]; i++) {
			size_t n = strlen(sp->stop[i]) + 1;

			memcpy(p, sp->stop[i], n);
			p += n;
		}
	}
	return 0;
}
