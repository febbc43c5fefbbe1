/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The KV block manager: the KV cache's blocks as ids, their reference
 * counts, the free list and the prefix cache.  It hands out block ids and
 * never touches K/V data; the backend owns the memory the ids index.
 *
 * Prefix cache: a full block (block_size tokens) whose K/V is computed can be
 * committed under a key, the 128-bit XXH3 hash of (the key of the block
 * before it in the sequence, a salt, its tokens).  The key therefore names
 * the whole prefix up to the block's end.  A later sequence whose prompt
 * starts with the same tokens (and uses the same salt) finds the chain and
 * takes a reference on each block instead of computing it again.  A match
 * also compares the stored tokens, salt and parent key, so a hash collision
 * can cost a miss but never a wrong answer.
 *
 * A block whose reference count drops to zero is free.  If it was committed
 * it stays findable until it is evicted; allocation takes never-committed
 * free blocks first and then evicts committed ones in least-recently-freed
 * order.  A block with references is never evicted.
 */
#ifndef LLMQD_KV_BLOCKS_H
#define LLMQD_KV_BLOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * struct kv_key - a prefix-cache key
 * @lo:	low 64 bits of the XXH3 128-bit hash
 * @hi:	high 64 bits
 *
 * The all-zero key stands for "no parent" (the first block of a sequence).
 */
struct kv_key {
	uint64_t	lo;
	uint64_t	hi;
};

/**
 * struct kv_blocks_stats - counters since kvb_create()
 * @queries:	tokens looked up by kvb_match() (its @n_tokens, summed)
 * @hits:	of those, tokens found (matched blocks * block_size)
 * @evictions:	committed blocks evicted to satisfy kvb_alloc()
 */
struct kv_blocks_stats {
	uint64_t	queries;
	uint64_t	hits;
	uint64_t	evictions;
};

struct kv_blocks;

struct kv_blocks *kvb_create(uint32_t n_blocks, uint32_t block_size, bool prefix_caching);
void kvb_destroy(struct kv_blocks *kv);

uint32_t kvb_block_size(const struct kv_blocks *kv);
uint32_t kvb_num_blocks(const struct kv_blocks *kv);
/* Blocks kvb_alloc() can still hand out: those with no reference. */
uint32_t kvb_num_free(const struct kv_blocks *kv);
/* Blocks with at least one reference. */
uint32_t kvb_num_used(const struct kv_blocks *kv);
/* Free blocks that are committed (findable by kvb_match()). */
uint32_t kvb_num_cached(const struct kv_blocks *kv);
void kvb_stats(const struct kv_blocks *kv, struct kv_blocks_stats *st);

int kvb_alloc(struct kv_blocks *kv, uint32_t *id);
void kvb_put(struct kv_blocks *kv, uint32_t id);

void kvb_key(const struct kv_key *parent, uint64_t salt, const uint32_t *tokens,
	     uint32_t n, struct kv_key *out);
uint32_t kvb_match(struct kv_blocks *kv, uint64_t salt, const uint32_t *tokens,
		   uint32_t n_tokens, uint32_t *ids, struct kv_key *last);
void kvb_commit(struct kv_blocks *kv, uint32_t id, const struct kv_key *parent,
		uint64_t salt, const uint32_t *tokens);

int kvb_check(const struct kv_blocks *kv, char *err, size_t errlen);

#endif /* LLMQD_KV_BLOCKS_H */
