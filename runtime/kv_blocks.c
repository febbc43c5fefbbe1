// SPDX-License-Identifier: GPL-2.0
/*
 * The KV block manager: reference counts, the free lists and the prefix
 * cache over block ids (see kv_blocks.h for the contract).
 *
 * Everything is an array indexed by block id, allocated once by
 * kvb_create(), so no operation allocates.  A free block sits on exactly one
 * of two circular lists threaded through prev[]/next[]: the never-committed
 * free list, or the LRU list of committed free blocks in the order their
 * reference count last dropped to zero (oldest first).  The lists' heads are
 * two extra slots at the end of prev[]/next[], so linking and unlinking need
 * no special cases.  A block in use is on neither list, which is what keeps
 * it from being evicted.
 *
 * The prefix cache is a hash table of 2^k buckets (about one per block)
 * chained through hnext[], keyed by the block's kv_key.  Keys are already
 * XXH3 output, so the low bits of the key pick the bucket directly.  A
 * committed block stays in the table until kvb_alloc() evicts it; only free
 * committed blocks can be evicted, and keys are unique in the table, since
 * kvb_commit() refuses a key that is already there.
 *
 * Costs: alloc, put and the counters are O(1); a lookup is O(1) expected
 * (the load factor is at most 1, apart from tables above 2^31 blocks);
 * commit and each matched block cost O(block_size) for the hash and the
 * token compare.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Compile xxHash in rather than call libxxhash: kvb_key() keeps its
 * streaming state on the stack so that it cannot fail, and xxhash.h allows
 * a state declared outside the library only when the library's code comes
 * with it; against the shared library the state's size may differ.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kv_blocks.h"

#define KVB_NONE	UINT32_MAX	/* end of a hash chain, empty bucket */
#define KVB_KEY_CHUNK	64		/* tokens encoded per XXH3 update */

struct kv_blocks {
	uint32_t		n_blocks;
	uint32_t		block_size;
	bool			prefix_caching;

	uint32_t		*ref;		/* reference count */
	bool			*committed;	/* in the hash table */
	uint32_t		*prev;		/* list links; heads at n_blocks, +1 */
	uint32_t		*next;
	uint32_t		n_free;		/* ref == 0 */
	uint32_t		n_cached;	/* ref == 0 and committed: the LRU list */

	/* The prefix cache; all NULL when prefix caching is off. */
	struct kv_key		*key;		/* the key it is registered under */
	struct kv_key		*parent;	/* what kvb_match() verifies */
	uint64_t		*salt;
	uint32_t		*tokens;	/* block_size per block */
	uint32_t		*hnext;		/* hash chain */
	uint32_t		*bucket;	/* first block of each chain */
	uint32_t		hmask;		/* buckets - 1 */

	struct kv_blocks_stats	stats;
};

static inline uint32_t free_head(const struct kv_blocks *kv)
{
	return kv->n_blocks;
}

static inline uint32_t lru_head(const struct kv_blocks *kv)
{
	return kv->n_blocks + 1;
}

static void link_before(struct kv_blocks *kv, uint32_t id, uint32_t at)
{
	uint32_t p = kv->prev[at];

	kv->prev[id] = p;
	kv->next[id] = at;
	kv->next[p] = id;
	kv->prev[at] = id;
}

static void unlink_block(struct kv_blocks *kv, uint32_t id)
{
	kv->next[kv->prev[id]] = kv->next[id];
	kv->prev[kv->next[id]] = kv->prev[id];
}

static inline bool key_eq(const struct kv_key *a, const struct kv_key *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}

static inline uint32_t *bucket_of(const struct kv_blocks *kv, const struct kv_key *k)
{
	return &kv->bucket[k->lo & kv->hmask];
}

static uint32_t hash_find(const struct kv_blocks *kv, const struct kv_key *k)
{
	uint32_t id;

	for (id = *bucket_of(kv, k); id != KVB_NONE; id = kv->hnext[id])
		if (key_eq(&kv->key[id], k))
			return id;
	return KVB_NONE;
}

static void hash_add(struct kv_blocks *kv, uint32_t id)
{
	uint32_t *b = bucket_of(kv, &kv->key[id]);

	kv->hnext[id] = *b;
	*b = id;
}

static void hash_del(struct kv_blocks *kv, uint32_t id)
{
	uint32_t *p = bucket_of(kv, &kv->key[id]);

	while (*p != id)
		p = &kv->hnext[*p];
	*p = kv->hnext[id];
}

/**
 * kvb_create() - a block manager with every block free
 * @n_blocks:		blocks in the cache, ids 0 .. @n_blocks - 1; 1 to
 *			UINT32_MAX - 2 (two more ids serve as list heads)
 * @block_size:		tokens per block, >= 1
 * @prefix_caching:	keep committed blocks findable by kvb_match(); when
 *			false, kvb_commit() and kvb_match() do nothing and the
 *			cache's arrays are not allocated
 *
 * Return: the manager, or NULL with errno set: EINVAL for a size out of
 * range, ENOMEM.
 */
struct kv_blocks *kvb_create(uint32_t n_blocks, uint32_t block_size, bool prefix_caching)
{
	struct kv_blocks *kv;
	uint32_t i, buckets;
	size_t n_tokens;

	if (!n_blocks || n_blocks > UINT32_MAX - 2 || !block_size ||
	    __builtin_mul_overflow((size_t)n_blocks, (size_t)block_size, &n_tokens)) {
		errno = EINVAL;
		return NULL;
	}
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return NULL;
	kv->n_blocks = n_blocks;
	kv->block_size = block_size;
	kv->prefix_caching = prefix_caching;
	kv->ref = calloc(n_blocks, sizeof(*kv->ref));
	kv->committed = calloc(n_blocks, sizeof(*kv->committed));
	kv->prev = calloc((size_t)n_blocks + 2, sizeof(*kv->prev));
	kv->next = calloc((size_t)n_blocks + 2, sizeof(*kv->next));
	if (!kv->ref || !kv->committed || !kv->prev || !kv->next)
		goto err;

	if (prefix_caching) {
		buckets = 1;
		while (buckets < n_blocks && buckets < (1u << 31))
			buckets <<= 1;
		kv->hmask = buckets - 1;
		kv->key = calloc(n_blocks, sizeof(*kv->key));
		kv->parent = calloc(n_blocks, sizeof(*kv->parent));
		kv->salt = calloc(n_blocks, sizeof(*kv->salt));
		kv->tokens = calloc(n_tokens, sizeof(*kv->tokens));
		kv->hnext = calloc(n_blocks, sizeof(*kv->hnext));
		kv->bucket = malloc((size_t)buckets * sizeof(*kv->bucket));
		if (!kv->key || !kv->parent || !kv->salt || !kv->tokens || !kv->hnext ||
		    !kv->bucket)
			goto err;
		memset(kv->bucket, 0xff, (size_t)buckets * sizeof(*kv->bucket));
	}

	kv->prev[free_head(kv)] = kv->next[free_head(kv)] = free_head(kv);
	kv->prev[lru_head(kv)] = kv->next[lru_head(kv)] = lru_head(kv);
	for (i = 0; i < n_blocks; i++)
		link_before(kv, i, free_head(kv));
	kv->n_free = n_blocks;
	return kv;

err:
	kvb_destroy(kv);
	errno = ENOMEM;
	return NULL;
}

/**
 * kvb_destroy() - free a block manager
 * @kv:	the manager, or NULL
 */
void kvb_destroy(struct kv_blocks *kv)
{
	if (!kv)
		return;
	free(kv->bucket);
	free(kv->hnext);
	free(kv->tokens);
	free(kv->salt);
	free(kv->parent);
	free(kv->key);
	free(kv->next);
	free(kv->prev);
	free(kv->committed);
	free(kv->ref);
	free(kv);
}

/**
 * kvb_block_size() - tokens per block
 * @kv:	the manager
 *
 * Return: the block size given to kvb_create().
 */
uint32_t kvb_block_size(const struct kv_blocks *kv)
{
	return kv->block_size;
}

/**
 * kvb_num_blocks() - blocks in the cache
 * @kv:	the manager
 *
 * Return: the block count given to kvb_create().
 */
uint32_t kvb_num_blocks(const struct kv_blocks *kv)
{
	return kv->n_blocks;
}

/**
 * kvb_num_free() - blocks with no reference
 * @kv:	the manager
 *
 * Return: how many blocks kvb_alloc() can still hand out, cached ones
 * included.
 */
uint32_t kvb_num_free(const struct kv_blocks *kv)
{
	return kv->n_free;
}

/**
 * kvb_num_used() - blocks with at least one reference
 * @kv:	the manager
 *
 * Return: kvb_num_blocks() - kvb_num_free().
 */
uint32_t kvb_num_used(const struct kv_blocks *kv)
{
	return kv->n_blocks - kv->n_free;
}

/**
 * kvb_num_cached() - free blocks still findable by kvb_match()
 * @kv:	the manager
 *
 * Return: how many blocks are free and committed, i.e. evictable.
 */
uint32_t kvb_num_cached(const struct kv_blocks *kv)
{
	return kv->n_cached;
}

/**
 * kvb_stats() - copy the counters
 * @kv:	the manager
 * @st:	where to put them
 */
void kvb_stats(const struct kv_blocks *kv, struct kv_blocks_stats *st)
{
	*st = kv->stats;
}

/**
 * kvb_alloc() - take a free block
 * @kv:	the manager
 * @id:	where to put its id; left alone on failure
 *
 * Hands out a never-committed free block if there is one.  Otherwise
 * evicts the committed free block that was freed the longest time ago: it
 * leaves the prefix cache and counts as an eviction.  Blocks in use are
 * never taken.
 *
 * Return: 0 with the block's reference count 1, or -ENOSPC when every
 * block is in use.
 */
int kvb_alloc(struct kv_blocks *kv, uint32_t *id)
{
	uint32_t b;

	if (kv->next[free_head(kv)] != free_head(kv)) {
		b = kv->next[free_head(kv)];
	} else if (kv->next[lru_head(kv)] != lru_head(kv)) {
		b = kv->next[lru_head(kv)];
		hash_del(kv, b);
		kv->committed[b] = false;
		kv->n_cached--;
		kv->stats.evictions++;
	} else {
		return -ENOSPC;
	}
	unlink_block(kv, b);
	kv->ref[b] = 1;
	kv->n_free--;
	*id = b;
	return 0;
}

/**
 * kvb_put() - drop one reference to a block
 * @kv:	the manager
 * @id:	a block with at least one reference
 *
 * At zero the block is free.  A committed block stays in the prefix cache,
 * as the most recently freed, until kvb_alloc() evicts it or kvb_match()
 * takes it again.  Putting a free block or an id out of range is a bug in
 * the caller, caught by assert().
 */
void kvb_put(struct kv_blocks *kv, uint32_t id)
{
	assert(id < kv->n_blocks);
	assert(kv->ref[id] > 0);
	if (--kv->ref[id])
		return;
	kv->n_free++;
	if (kv->committed[id]) {
		link_before(kv, id, lru_head(kv));
		kv->n_cached++;
	} else {
		/* Any order would do; LIFO reuses the K/V memory touched last. */
		link_before(kv, id, kv->next[free_head(kv)]);
	}
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/**
 * kvb_key() - the prefix-cache key of a block
 * @parent:	the key of the block before it in the sequence; NULL (or the
 *		zero key) for the first block
 * @salt:	separates caches that must not share blocks (e.g. per adapter)
 * @tokens:	the block's tokens
 * @n:		how many
 * @out:	the key; may be @parent, to step along a chain
 *
 * The 128-bit XXH3 hash, with no seed, of @parent->lo, @parent->hi and @salt
 * as little-endian 64-bit words followed by @tokens as little-endian 32-bit
 * words.  Fixing the byte order makes keys the same on every host and run.
 */
void kvb_key(const struct kv_key *parent, uint64_t salt, const uint32_t *tokens,
	     uint32_t n, struct kv_key *out)
{
	uint8_t buf[4 * KVB_KEY_CHUNK];
	XXH128_hash_t h;
	XXH3_state_t st;
	uint32_t i, j, c;

	XXH3_128bits_reset(&st);
	put_le64(buf, parent ? parent->lo : 0);
	put_le64(buf + 8, parent ? parent->hi : 0);
	put_le64(buf + 16, salt);
	XXH3_128bits_update(&st, buf, 24);
	for (i = 0; i < n; i += c) {
		c = n - i < KVB_KEY_CHUNK ? n - i : KVB_KEY_CHUNK;
		for (j = 0; j < c; j++) {
			buf[4 * j] = (uint8_t)tokens[i + j];
			buf[4 * j + 1] = (uint8_t)(tokens[i + j] >> 8);
			buf[4 * j + 2] = (uint8_t)(tokens[i + j] >> 16);
			buf[4 * j + 3] = (uint8_t)(tokens[i + j] >> 24);
		}
		XXH3_128bits_update(&st, buf, 4 * (size_t)c);
	}
	h = XXH3_128bits_digest(&st);
	out->lo = h.low64;
	out->hi = h.high64;
}

/**
 * kvb_match() - find the cached blocks a sequence starts with
 * @kv:		the manager
 * @salt:	the sequence's salt, as given to kvb_commit()
 * @tokens:	the sequence's tokens
 * @n_tokens:	how many; only the @n_tokens / block_size full blocks count
 * @ids:	where to put the matched block ids; room for @n_tokens /
 *		block_size
 * @last:	where to put the key of the last matched block (the zero key
 *		when none matched), or NULL
 *
 * Looks up block i under kvb_key(key of block i - 1, @salt, its tokens) and
 * stops at the first block that is not cached or whose stored parent key,
 * salt or tokens differ from the ones asked for (a hash collision).  Each
 * matched block gains a reference; a free one leaves the LRU list and so
 * cannot be evicted while the caller holds it.  Counts @n_tokens queries
 * and block_size hits per matched block.  With prefix caching off it
 * matches and counts nothing.
 *
 * Return: the number of blocks matched, written to @ids[0 ..].
 */
uint32_t kvb_match(struct kv_blocks *kv, uint64_t salt, const uint32_t *tokens,
		   uint32_t n_tokens, uint32_t *ids, struct kv_key *last)
{
	struct kv_key parent = { 0, 0 }, k;
	uint32_t bs = kv->block_size, n, id;
	const uint32_t *t;

	if (!kv->prefix_caching) {
		if (last)
			*last = parent;
		return 0;
	}
	for (n = 0; n < n_tokens / bs; n++) {
		t = tokens + (size_t)n * bs;
		kvb_key(&parent, salt, t, bs, &k);
		id = hash_find(kv, &k);
		if (id == KVB_NONE || kv->salt[id] != salt || !key_eq(&kv->parent[id], &parent) ||
		    memcmp(&kv->tokens[(size_t)id * bs], t, (size_t)bs * sizeof(*t)))
			break;
		if (!kv->ref[id]++) {
			unlink_block(kv, id);
			kv->n_free--;
			kv->n_cached--;
		}
		ids[n] = id;
		parent = k;
	}
	kv->stats.queries += n_tokens;
	kv->stats.hits += (uint64_t)n * bs;
	if (last)
		*last = parent;
	return n;
}

/**
 * kvb_commit() - make a computed block findable
 * @kv:		the manager
 * @id:		a block with at least one reference whose block_size tokens
 *		of K/V are computed
 * @parent:	the key of the block before it in the sequence (the @last of
 *		kvb_match() or the key of the previous commit), NULL for the
 *		first block
 * @salt:	the sequence's salt
 * @tokens:	the block's block_size tokens; copied
 *
 * Registers @id under kvb_key(@parent, @salt, @tokens, block_size).  Does
 * nothing when prefix caching is off, when @id is already committed, or
 * when another block holds that key: two sequences computed the same block
 * at once, the first one stays cached and @id remains an ordinary block.
 */
void kvb_commit(struct kv_blocks *kv, uint32_t id, const struct kv_key *parent,
		uint64_t salt, const uint32_t *tokens)
{
	uint32_t bs = kv->block_size;
	struct kv_key k;

	assert(id < kv->n_blocks);
	assert(kv->ref[id] > 0);
	if (!kv->prefix_caching || kv->committed[id])
		return;
	kvb_key(parent, salt, tokens, bs, &k);
	if (hash_find(kv, &k) != KVB_NONE)
		return;
	kv->key[id] = k;
	if (parent)
		kv->parent[id] = *parent;
	else
		memset(&kv->parent[id], 0, sizeof(kv->parent[id]));
	kv->salt[id] = salt;
	memcpy(&kv->tokens[(size_t)id * bs], tokens, (size_t)bs * sizeof(*tokens));
	kv->committed[id] = true;
	hash_add(kv, id);
}

static int __attribute__((format(printf, 3, 4)))
corrupt(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

/*
 * Walk one free list and check that every block on it is free and has the
 * committed state the list stands for.  The walk is bounded, and each link
 * checked both ways, so a cycle or a block on the list twice is caught
 * rather than looped on.
 */
static int check_list(const struct kv_blocks *kv, uint32_t head, bool committed,
		      uint32_t want, char *err, size_t errlen)
{
	const char *name = committed ? "LRU list" : "free list";
	uint32_t id, n = 0;

	for (id = kv->next[head]; id != head; id = kv->next[id]) {
		if (id >= kv->n_blocks)
			return corrupt(err, errlen, "%s: link to %u, not a block", name, id);
		if (kv->next[id] > lru_head(kv) || kv->prev[id] > lru_head(kv) ||
		    kv->prev[kv->next[id]] != id || kv->next[kv->prev[id]] != id)
			return corrupt(err, errlen, "%s: block %u: broken links", name, id);
		if (kv->ref[id])
			return corrupt(err, errlen, "%s: block %u has %u references", name, id,
				       kv->ref[id]);
		if (kv->committed[id] != committed)
			return corrupt(err, errlen, "%s: block %u is %scommitted", name, id,
				       committed ? "not " : "");
		if (++n > want)
			return corrupt(err, errlen, "%s: more than the %u blocks expected", name,
				       want);
	}
	if (n != want)
		return corrupt(err, errlen, "%s: %u blocks, expected %u", name, n, want);
	return 0;
}

/**
 * kvb_check() - verify the manager's internal invariants
 * @kv:		the manager
 * @err:	where to put a one-line description of the first problem
 *		found, or NULL
 * @errlen:	size of @err
 *
 * The free counters match the reference counts; the never-committed free
 * list holds exactly the free uncommitted blocks and the LRU list exactly
 * the free committed ones; the hash table holds exactly the committed
 * blocks, each in the bucket of its key and found by its key; the
 * statistics agree with each other.  O(n_blocks + buckets), for tests.
 *
 * Return: 0, or -EUCLEAN with @err describing the corruption.
 */
int kvb_check(const struct kv_blocks *kv, char *err, size_t errlen)
{
	uint32_t i, b, id, n_free = 0, n_cached = 0, n_committed = 0, n;
	const struct kv_blocks_stats *st = &kv->stats;
	int ret;

	/* kvb_num_used() is n_blocks - n_free, so used + free adds up if n_free is right. */
	for (i = 0; i < kv->n_blocks; i++) {
		n_free += !kv->ref[i];
		n_committed += kv->committed[i];
		n_cached += !kv->ref[i] && kv->committed[i];
	}
	if (n_free != kv->n_free)
		return corrupt(err, errlen, "%u blocks free, counter says %u", n_free, kv->n_free);
	if (n_cached != kv->n_cached)
		return corrupt(err, errlen, "%u blocks cached, counter says %u", n_cached,
			       kv->n_cached);

	ret = check_list(kv, free_head(kv), false, n_free - n_cached, err, errlen);
	if (ret)
		return ret;
	ret = check_list(kv, lru_head(kv), true, n_cached, err, errlen);
	if (ret)
		return ret;

	if (st->hits > st->queries)
		return corrupt(err, errlen, "%llu hits > %llu queries",
			       (unsigned long long)st->hits, (unsigned long long)st->queries);
	if (st->hits % kv->block_size)
		return corrupt(err, errlen, "%llu hits, not whole blocks of %u",
			       (unsigned long long)st->hits, kv->block_size);

	if (!kv->prefix_caching) {
		if (n_committed)
			return corrupt(err, errlen, "%u blocks committed without prefix caching",
				       n_committed);
		if (st->queries || st->evictions)
			return corrupt(err, errlen, "counters moved without prefix caching");
		return 0;
	}

	n = 0;
	for (b = 0; b <= kv->hmask; b++) {
		for (id = kv->bucket[b]; id != KVB_NONE; id = kv->hnext[id]) {
			if (id >= kv->n_blocks)
				return corrupt(err, errlen, "bucket %u: link to %u, not a block",
					       b, id);
			if (!kv->committed[id])
				return corrupt(err, errlen, "bucket %u: block %u not committed",
					       b, id);
			if ((kv->key[id].lo & kv->hmask) != b)
				return corrupt(err, errlen, "bucket %u: block %u hashes elsewhere",
					       b, id);
			if (++n > n_committed)
				return corrupt(err, errlen, "hash: more than the %u committed",
					       n_committed);
		}
	}
	if (n != n_committed)
		return corrupt(err, errlen, "hash: %u entries, %u blocks committed", n,
			       n_committed);
	/* With the counts equal, this also rules out a block hashed twice or a key held twice. */
	for (i = 0; i < kv->n_blocks; i++)
		if (kv->committed[i] && hash_find(kv, &kv->key[i]) != i)
			return corrupt(err, errlen, "hash: block %u not found by its key", i);
	return 0;
}
