/* SPDX-License-Identifier: MIT */
/*
 * Ring arithmetic shared by both ends: geometry validation, layout from
 * sizes, index masking and the acquire/release accessors.  Header-only so
 * the runtime and libllmq compute exactly the same thing.
 */
#ifndef LLMQ_RING_H
#define LLMQ_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/llmq.h>

#define llmq_load_acquire(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define llmq_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* A polite busy-wait step. */
static inline void llmq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/**
 * struct llmq_layout - where each part of a ring lives in its mapping
 * @sq_off:	SQ array offset
 * @cq_off:	CQ array offset
 * @arena_off:	arena offset
 * @map_size:	total bytes
 */
struct llmq_layout {
	uint32_t sq_off;
	uint32_t cq_off;
	uint32_t arena_off;
	uint32_t map_size;
};

static inline bool llmq_is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static inline uint64_t llmq_align4k(uint64_t v)
{
	return (v + 4095) & ~(uint64_t)4095;
}

/**
 * llmq_params_check() - validate ring geometry and compute its layout
 * @p:		the geometry asked for
 * @lay:	filled with the layout when valid (may be NULL)
 *
 * Return: 0, or -EINVAL naming no field (callers print @p).
 */
static inline int llmq_params_check(const struct llmq_params *p, struct llmq_layout *lay)
{
	uint64_t sq, cq, ar;
	unsigned int i;

	if (p->flags)
		return -EINVAL;
	for (i = 0; i < sizeof(p->resv) / sizeof(p->resv[0]); i++)
		if (p->resv[i])
			return -EINVAL;
	if (!llmq_is_pow2(p->sq_entries) || p->sq_entries < LLMQ_MIN_ENTRIES ||
	    p->sq_entries > LLMQ_MAX_SQ_ENTRIES)
		return -EINVAL;
	if (!llmq_is_pow2(p->cq_entries) || p->cq_entries < p->sq_entries ||
	    p->cq_entries > LLMQ_MAX_CQ_ENTRIES)
		return -EINVAL;
	if (p->arena_size < LLMQ_MIN_ARENA || p->arena_size > LLMQ_MAX_ARENA ||
	    p->arena_size % 4096)
		return -EINVAL;

	sq = LLMQ_HDR_SIZE;
	cq = llmq_align4k(sq + (uint64_t)p->sq_entries * sizeof(struct llmq_sqe));
	ar = llmq_align4k(cq + (uint64_t)p->cq_entries * sizeof(struct llmq_cqe));
	if (ar + p->arena_size > UINT32_MAX)
		return -EINVAL;
	if (lay) {
		lay->sq_off = (uint32_t)sq;
		lay->cq_off = (uint32_t)cq;
		lay->arena_off = (uint32_t)ar;
		lay->map_size = (uint32_t)(ar + p->arena_size);
	}
	return 0;
}

/* Entries in use between a consumer's head and a producer's tail. */
static inline uint32_t llmq_ring_used(uint32_t head, uint32_t tail)
{
	return tail - head;
}

/* True when head..tail is a possible state for a ring of @entries. */
static inline bool llmq_ring_sane(uint32_t head, uint32_t tail, uint32_t entries)
{
	return llmq_ring_used(head, tail) <= entries;
}

#endif /* LLMQ_RING_H */
