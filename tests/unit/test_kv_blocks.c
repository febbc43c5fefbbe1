// SPDX-License-Identifier: GPL-2.0
/*
 * The KV block manager: allocation down to -ENOSPC and back, reference
 * sharing through kvb_match(), prefix matching (a shared prompt prefix,
 * salts, mismatches, chain order, duplicate commits), LRU eviction and
 * its limits, prefix caching off, bad sizes, pinned kvb_key() values, and
 * a seeded random run checked step by step against a model of the
 * contract.  kvb_check() runs after every operation.
 *
 * Keys are computed only through kvb_key(); the pinned values in
 * test_key() came from libxxhash's one-shot XXH3_128bits() over the byte
 * layout kv_blocks.c documents, a separate path from its streaming one.
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

#include "../../runtime/kv_blocks.h"

#define check(kv)	check_at(kv, __LINE__)

static void check_at(const struct kv_blocks *kv, int line)
{
	char err[256] = "";
	int ret = kvb_check(kv, err, sizeof(err));

	if (ret)
		fail_msg("line %d: kvb_check: %d: %s", line, ret, err);
}

static struct kv_blocks *mk(uint32_t n_blocks, uint32_t block_size, bool prefix_caching)
{
	struct kv_blocks *kv = kvb_create(n_blocks, block_size, prefix_caching);

	assert_non_null(kv);
	check(kv);
	return kv;
}

/* @n tokens that differ from those of any other @seed */
static void fill(uint32_t *t, uint32_t n, uint32_t seed)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		t[i] = seed * 100003u + i * 7919u + 1;
}

static bool key_eq(const struct kv_key *a, const struct kv_key *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}

static void assert_key_equal(const struct kv_key *a, const struct kv_key *b)
{
	assert_true(key_eq(a, b));
}

/* The key of the last of the first @n blocks of @tokens: what kvb_match() reports. */
static struct kv_key chain_key(const struct kv_blocks *kv, uint64_t salt,
			       const uint32_t *tokens, uint32_t n)
{
	uint32_t bs = kvb_block_size(kv), i;
	struct kv_key k = { 0, 0 };

	for (i = 0; i < n; i++)
		kvb_key(i ? &k : NULL, salt, tokens + i * bs, bs, &k);
	return k;
}

/* What prefill does: allocate a block per full block of @tokens and commit it. */
static void prefill(struct kv_blocks *kv, uint64_t salt, const uint32_t *tokens, uint32_t n,
		    uint32_t *ids)
{
	uint32_t bs = kvb_block_size(kv), i;
	struct kv_key parent;

	for (i = 0; i < n; i++) {
		assert_int_equal(kvb_alloc(kv, &ids[i]), 0);
		check(kv);
		parent = chain_key(kv, salt, tokens, i);
		kvb_commit(kv, ids[i], i ? &parent : NULL, salt, tokens + i * bs);
		check(kv);
	}
}

static void put_all(struct kv_blocks *kv, const uint32_t *ids, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		kvb_put(kv, ids[i]);
		check(kv);
	}
}

static uint32_t match(struct kv_blocks *kv, uint64_t salt, const uint32_t *tokens,
		      uint32_t n_tokens, uint32_t *ids, struct kv_key *last)
{
	uint32_t n = kvb_match(kv, salt, tokens, n_tokens, ids, last);

	check(kv);
	return n;
}

static void assert_counts(const struct kv_blocks *kv, uint32_t free, uint32_t used,
			  uint32_t cached)
{
	assert_int_equal(kvb_num_free(kv), free);
	assert_int_equal(kvb_num_used(kv), used);
	assert_int_equal(kvb_num_cached(kv), cached);
}

static uint64_t evictions(const struct kv_blocks *kv)
{
	struct kv_blocks_stats st;

	kvb_stats(kv, &st);
	return st.evictions;
}

static void test_create_bad(void **state)
{
	struct kv_blocks *kv;
	uint32_t id;

	(void)state;
	errno = 0;
	assert_null(kvb_create(0, 16, true));
	assert_int_equal(errno, EINVAL);
	assert_null(kvb_create(16, 0, true));
	assert_null(kvb_create(0, 0, false));
	assert_null(kvb_create(UINT32_MAX, 16, true));
	kvb_destroy(NULL);

	/* The smallest cache there is still works. */
	kv = mk(1, 1, true);
	assert_int_equal(kvb_alloc(kv, &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
	kvb_put(kv, 0);
	check(kv);
	kvb_destroy(kv);
}

static void test_initial(void **state)
{
	struct kv_blocks_stats st;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(10, 4, true);
	assert_int_equal(kvb_num_blocks(kv), 10);
	assert_int_equal(kvb_block_size(kv), 4);
	assert_counts(kv, 10, 0, 0);
	memset(&st, 0xff, sizeof(st));
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, 0);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.evictions, 0);
	kvb_destroy(kv);
}

static void test_alloc_all(void **state)
{
	bool seen[8] = { false };
	uint32_t ids[8], id, i;
	struct kv_blocks *kv;
	int round;

	(void)state;
	kv = mk(8, 16, true);
	for (round = 0; round < 2; round++) {
		memset(seen, 0, sizeof(seen));
		for (i = 0; i < 8; i++) {
			assert_int_equal(kvb_alloc(kv, &ids[i]), 0);
			check(kv);
			assert_in_range(ids[i], 0, 7);
			assert_false(seen[ids[i]]);
			seen[ids[i]] = true;
			assert_counts(kv, 7 - i, i + 1, 0);
		}
		id = 12345;
		assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
		assert_int_equal(id, 12345);
		check(kv);
		/* in an order unrelated to allocation */
		for (i = 0; i < 8; i++) {
			kvb_put(kv, ids[(i * 3) % 8]);
			check(kv);
			assert_counts(kv, i + 1, 7 - i, 0);
		}
	}
	assert_counts(kv, 8, 0, 0);
	assert_int_equal(evictions(kv), 0);
	kvb_destroy(kv);
}

static void test_refcount_share(void **state)
{
	uint32_t t[8], a[2], b[2], c[2], x[6], id, i;
	struct kv_key last, want;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	fill(t, 8, 1);
	prefill(kv, 0, t, 2, a);
	assert_counts(kv, 6, 2, 0);

	/* B shares A's blocks while A still runs: no new block is used. */
	assert_int_equal(match(kv, 0, t, 8, b, &last), 2);
	assert_memory_equal(a, b, sizeof(a));
	want = chain_key(kv, 0, t, 2);
	assert_key_equal(&last, &want);
	assert_counts(kv, 6, 2, 0);

	/* A finishes; B's references keep the blocks in use. */
	put_all(kv, a, 2);
	assert_counts(kv, 6, 2, 0);

	/* B finishes: free, but still findable. */
	put_all(kv, b, 2);
	assert_counts(kv, 8, 0, 2);

	/* Two more matches take two references each; a match takes them off the free list. */
	assert_int_equal(match(kv, 0, t, 8, b, NULL), 2);
	assert_counts(kv, 6, 2, 0);
	assert_int_equal(match(kv, 0, t, 8, c, NULL), 2);
	assert_memory_equal(b, c, sizeof(b));
	assert_counts(kv, 6, 2, 0);
	put_all(kv, b, 2);
	assert_counts(kv, 6, 2, 0);

	/* Six blocks left to hand out, never the two still referenced. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(kvb_alloc(kv, &x[i]), 0);
		check(kv);
		assert_true(x[i] != c[0] && x[i] != c[1]);
	}
	assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
	put_all(kv, x, 6);
	put_all(kv, c, 2);
	assert_counts(kv, 8, 0, 2);
	assert_int_equal(evictions(kv), 0);
	kvb_destroy(kv);
}

static void test_shared_prefix(void **state)
{
	uint32_t ta[100], tb[130], a[7], b[9], c[9], i;
	struct kv_blocks_stats st;
	struct kv_key last, want;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(64, 16, true);
	fill(ta, 100, 1);
	memcpy(tb, ta, sizeof(ta));
	fill(tb + 100, 30, 2);

	/* A: six full blocks committed, a seventh holding the last 4 tokens */
	prefill(kv, 0, ta, 6, a);
	assert_int_equal(kvb_alloc(kv, &a[6]), 0);
	check(kv);

	/* B shares the first 100 tokens: 6 full blocks of them */
	assert_int_equal(match(kv, 0, tb, 130, b, &last), 6);
	assert_memory_equal(a, b, 6 * sizeof(*a));
	want = chain_key(kv, 0, ta, 6);
	assert_key_equal(&last, &want);
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, 130);
	assert_int_equal(st.hits, 96);
	assert_int_equal(st.evictions, 0);
	assert_counts(kv, 57, 7, 0);

	/* B computes and commits its own blocks 6 and 7 after the match. */
	for (i = 6; i < 9; i++) {
		assert_int_equal(kvb_alloc(kv, &b[i]), 0);
		check(kv);
		if (i < 8) {
			kvb_commit(kv, b[i], &last, 0, tb + i * 16);
			check(kv);
			kvb_key(&last, 0, tb + i * 16, 16, &last);
		}
	}
	assert_counts(kv, 54, 10, 0);

	put_all(kv, a, 7);
	assert_counts(kv, 55, 9, 0);
	put_all(kv, b, 9);
	assert_counts(kv, 64, 0, 8);

	/* C, the same prompt as B, now finds all 8 full blocks. */
	assert_int_equal(match(kv, 0, tb, 130, c, &last), 8);
	assert_memory_equal(b, c, 8 * sizeof(*b));
	want = chain_key(kv, 0, tb, 8);
	assert_key_equal(&last, &want);
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, 260);
	assert_int_equal(st.hits, 96 + 128);
	put_all(kv, c, 8);
	assert_counts(kv, 64, 0, 8);
	kvb_destroy(kv);
}

static void test_salt(void **state)
{
	uint32_t t[8], a[2], b[2], ids[2];
	struct kv_key last;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	fill(t, 8, 3);
	prefill(kv, 1, t, 2, a);
	put_all(kv, a, 2);

	last.lo = last.hi = 7;
	assert_int_equal(match(kv, 2, t, 8, ids, &last), 0);
	assert_int_equal(last.lo, 0);
	assert_int_equal(last.hi, 0);

	/* The same tokens under another salt are other blocks, not duplicates. */
	prefill(kv, 2, t, 2, b);
	assert_true(b[0] != a[0] && b[0] != a[1] && b[1] != a[0] && b[1] != a[1]);
	put_all(kv, b, 2);
	assert_counts(kv, 8, 0, 4);

	assert_int_equal(match(kv, 1, t, 8, ids, NULL), 2);
	assert_memory_equal(ids, a, sizeof(a));
	put_all(kv, ids, 2);
	assert_int_equal(match(kv, 2, t, 8, ids, NULL), 2);
	assert_memory_equal(ids, b, sizeof(b));
	put_all(kv, ids, 2);
	assert_counts(kv, 8, 0, 4);
	kvb_destroy(kv);
}

static void test_mismatch(void **state)
{
	uint32_t t[12], u[12], v[4], a[3], ids[3], x;
	struct kv_key last, want, p = { 0x1234, 0x5678 };
	struct kv_blocks_stats st;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	fill(t, 12, 4);
	prefill(kv, 0, t, 3, a);

	/* the last token of block 0 differs: nothing */
	memcpy(u, t, sizeof(t));
	u[3]++;
	assert_int_equal(match(kv, 0, u, 12, ids, &last), 0);

	/* the first token of block 1 differs: block 0 only */
	memcpy(u, t, sizeof(t));
	u[4]++;
	assert_int_equal(match(kv, 0, u, 12, ids, &last), 1);
	assert_int_equal(ids[0], a[0]);
	want = chain_key(kv, 0, t, 1);
	assert_key_equal(&last, &want);
	put_all(kv, ids, 1);

	/* the last token of block 2 differs: blocks 0 and 1 */
	memcpy(u, t, sizeof(t));
	u[11]++;
	assert_int_equal(match(kv, 0, u, 12, ids, NULL), 2);
	assert_memory_equal(ids, a, 2 * sizeof(*a));
	put_all(kv, ids, 2);

	/* Only full blocks count: 11 tokens are 2 blocks, 3 tokens none. */
	assert_int_equal(match(kv, 0, t, 11, ids, NULL), 2);
	put_all(kv, ids, 2);
	assert_int_equal(match(kv, 0, t, 3, ids, NULL), 0);
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, 12 + 12 + 12 + 11 + 3);
	assert_int_equal(st.hits, (1 + 2 + 2) * 4);

	/*
	 * A block committed under some parent key is the continuation of that
	 * prefix: its tokens alone, as a first block, do not find it.
	 */
	fill(v, 4, 5);
	assert_int_equal(kvb_alloc(kv, &x), 0);
	kvb_commit(kv, x, &p, 0, v);
	check(kv);
	assert_int_equal(match(kv, 0, v, 4, ids, NULL), 0);
	put_all(kv, &x, 1);
	put_all(kv, a, 3);
	assert_counts(kv, 8, 0, 4);
	kvb_destroy(kv);
}

static void test_chain_order(void **state)
{
	uint32_t ta[8], tb[8], tc[8], a[2], b[2], ids[2];
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	fill(ta, 8, 6);
	memcpy(tb, ta, sizeof(ta));
	fill(tb, 4, 7);			/* another first block, the same second */
	prefill(kv, 0, ta, 2, a);
	put_all(kv, a, 2);

	assert_int_equal(match(kv, 0, tb, 8, ids, NULL), 0);
	/* the blocks swapped */
	memcpy(tc, ta + 4, 4 * sizeof(*ta));
	memcpy(tc + 4, ta, 4 * sizeof(*ta));
	assert_int_equal(match(kv, 0, tc, 8, ids, NULL), 0);

	/* B's second block has A's tokens but another prefix: a block of its own. */
	prefill(kv, 0, tb, 2, b);
	put_all(kv, b, 2);
	assert_counts(kv, 8, 0, 4);
	assert_int_equal(match(kv, 0, tb, 8, ids, NULL), 2);
	assert_memory_equal(ids, b, sizeof(b));
	put_all(kv, ids, 2);
	assert_int_equal(match(kv, 0, ta, 8, ids, NULL), 2);
	assert_memory_equal(ids, a, sizeof(a));
	put_all(kv, ids, 2);
	kvb_destroy(kv);
}

static void test_duplicate_commit(void **state)
{
	uint32_t t[8], w[4], a[2], b[2], ids[2], x[6], i;
	struct kv_key k0;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	fill(t, 8, 8);
	fill(w, 4, 9);

	/* Two sequences compute the same two blocks at once; A commits first. */
	for (i = 0; i < 2; i++) {
		assert_int_equal(kvb_alloc(kv, &a[i]), 0);
		assert_int_equal(kvb_alloc(kv, &b[i]), 0);
	}
	check(kv);
	k0 = chain_key(kv, 0, t, 1);
	kvb_commit(kv, a[0], NULL, 0, t);
	check(kv);
	kvb_commit(kv, b[0], NULL, 0, t);
	check(kv);
	kvb_commit(kv, a[1], &k0, 0, t + 4);
	check(kv);
	kvb_commit(kv, b[1], &k0, 0, t + 4);
	check(kv);

	assert_int_equal(match(kv, 0, t, 8, ids, NULL), 2);
	assert_memory_equal(ids, a, sizeof(a));
	put_all(kv, ids, 2);

	/* A committed block keeps its first registration. */
	kvb_commit(kv, a[0], NULL, 0, w);
	check(kv);
	assert_int_equal(match(kv, 0, w, 4, ids, NULL), 0);
	assert_int_equal(match(kv, 0, t, 4, ids, NULL), 1);
	assert_int_equal(ids[0], a[0]);
	put_all(kv, ids, 1);

	/* B's blocks free as ordinary blocks: nothing more is cached. */
	put_all(kv, b, 2);
	assert_counts(kv, 6, 2, 0);
	put_all(kv, a, 2);
	assert_counts(kv, 8, 0, 2);

	/* The six uncommitted blocks, B's among them, go before any eviction. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(kvb_alloc(kv, &x[i]), 0);
		check(kv);
		assert_true(x[i] != a[0] && x[i] != a[1]);
	}
	assert_int_equal(evictions(kv), 0);
	assert_int_equal(match(kv, 0, t, 8, ids, NULL), 2);
	assert_memory_equal(ids, a, sizeof(a));
	put_all(kv, ids, 2);
	put_all(kv, x, 6);
	kvb_destroy(kv);
}

static void test_lru_eviction(void **state)
{
	uint32_t t[3][8], c[3][2], x[6], ids[2], id, i, j;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	for (i = 0; i < 3; i++) {
		fill(t[i], 8, 10 + i);
		prefill(kv, 0, t[i], 2, c[i]);
	}
	assert_counts(kv, 2, 6, 0);

	/* freed in the order 1, 0, 2 (block 0 before block 1 in each) */
	put_all(kv, c[1], 2);
	put_all(kv, c[0], 2);
	put_all(kv, c[2], 2);
	assert_counts(kv, 8, 0, 6);

	/* the two never-committed blocks first, evicting nothing */
	for (i = 0; i < 2; i++) {
		assert_int_equal(kvb_alloc(kv, &x[i]), 0);
		check(kv);
		for (j = 0; j < 6; j++)
			assert_int_not_equal(x[i], c[j / 2][j % 2]);
	}
	assert_int_equal(evictions(kv), 0);
	assert_counts(kv, 6, 2, 6);

	/* then the least recently freed: chain 1 */
	assert_int_equal(kvb_alloc(kv, &x[2]), 0);
	check(kv);
	assert_int_equal(x[2], c[1][0]);
	assert_int_equal(evictions(kv), 1);
	assert_counts(kv, 5, 3, 5);
	assert_int_equal(match(kv, 0, t[1], 8, ids, NULL), 0);

	assert_int_equal(kvb_alloc(kv, &x[3]), 0);
	check(kv);
	assert_int_equal(x[3], c[1][1]);
	assert_int_equal(kvb_alloc(kv, &x[4]), 0);
	check(kv);
	assert_int_equal(x[4], c[0][0]);
	assert_int_equal(evictions(kv), 3);

	/* Chain 2, matched, is in use again: c[0][1] is the only one evictable. */
	assert_int_equal(match(kv, 0, t[2], 8, ids, NULL), 2);
	assert_memory_equal(ids, c[2], sizeof(ids));
	assert_counts(kv, 1, 7, 1);
	assert_int_equal(kvb_alloc(kv, &x[5]), 0);
	check(kv);
	assert_int_equal(x[5], c[0][1]);
	assert_int_equal(evictions(kv), 4);
	assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
	check(kv);
	assert_int_equal(evictions(kv), 4);
	assert_counts(kv, 0, 8, 0);

	/* Evicted blocks come back uncommitted. */
	put_all(kv, x, 6);
	assert_counts(kv, 6, 2, 0);
	put_all(kv, ids, 2);
	assert_counts(kv, 8, 0, 2);
	assert_int_equal(match(kv, 0, t[0], 8, ids, NULL), 0);
	kvb_destroy(kv);
}

/* A match makes a free cached block the most recently freed once put again. */
static void test_lru_touch(void **state)
{
	uint32_t t[3][4], c[3], x[5], id, i;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, true);
	for (i = 0; i < 3; i++) {
		fill(t[i], 4, 20 + i);
		prefill(kv, 0, t[i], 1, &c[i]);
	}
	put_all(kv, c, 3);
	assert_int_equal(match(kv, 0, t[0], 4, &id, NULL), 1);
	assert_int_equal(id, c[0]);
	put_all(kv, &id, 1);

	for (i = 0; i < 5; i++) {
		assert_int_equal(kvb_alloc(kv, &x[i]), 0);
		check(kv);
	}
	assert_int_equal(evictions(kv), 0);
	assert_int_equal(kvb_alloc(kv, &id), 0);
	assert_int_equal(id, c[1]);
	assert_int_equal(kvb_alloc(kv, &id), 0);
	assert_int_equal(id, c[2]);
	assert_int_equal(kvb_alloc(kv, &id), 0);
	assert_int_equal(id, c[0]);
	check(kv);
	assert_int_equal(evictions(kv), 3);
	kvb_destroy(kv);
}

static void test_in_use_never_evicted(void **state)
{
	uint32_t t[4], a[2], m[2], x[2], id;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(4, 2, true);
	fill(t, 4, 30);
	prefill(kv, 0, t, 2, a);
	assert_int_equal(kvb_alloc(kv, &x[0]), 0);
	assert_int_equal(kvb_alloc(kv, &x[1]), 0);
	check(kv);
	id = 99;
	assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
	assert_int_equal(id, 99);
	check(kv);
	assert_int_equal(evictions(kv), 0);

	/* Shared and released by its first owner, the chain is still in use. */
	assert_int_equal(match(kv, 0, t, 4, m, NULL), 2);
	put_all(kv, a, 2);
	put_all(kv, x, 2);
	assert_counts(kv, 2, 2, 0);
	assert_int_equal(kvb_alloc(kv, &x[0]), 0);
	assert_int_equal(kvb_alloc(kv, &x[1]), 0);
	assert_int_equal(kvb_alloc(kv, &id), -ENOSPC);
	check(kv);
	assert_int_equal(evictions(kv), 0);
	assert_true(x[0] != m[0] && x[0] != m[1] && x[1] != m[0] && x[1] != m[1]);

	put_all(kv, x, 2);
	put_all(kv, m, 2);
	assert_counts(kv, 4, 0, 2);
	kvb_destroy(kv);
}

static void test_no_prefix_caching(void **state)
{
	uint32_t t[8], a[2], ids[2], x[8], i;
	struct kv_blocks_stats st;
	struct kv_key last;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(8, 4, false);
	fill(t, 8, 40);
	prefill(kv, 0, t, 2, a);
	put_all(kv, a, 2);
	assert_counts(kv, 8, 0, 0);

	last.lo = last.hi = 1;
	assert_int_equal(match(kv, 0, t, 8, ids, &last), 0);
	assert_int_equal(last.lo, 0);
	assert_int_equal(last.hi, 0);
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, 0);
	assert_int_equal(st.hits, 0);

	/* every block is an ordinary one: a full cycle evicts nothing */
	for (i = 0; i < 8; i++)
		assert_int_equal(kvb_alloc(kv, &x[i]), 0);
	check(kv);
	assert_int_equal(kvb_alloc(kv, &ids[0]), -ENOSPC);
	put_all(kv, x, 8);
	assert_counts(kv, 8, 0, 0);
	assert_int_equal(evictions(kv), 0);
	kvb_destroy(kv);
}

static void test_key(void **state)
{
	static const uint32_t a[4] = { 1, 2, 0x80000000u, 0xdeadbeefu };
	const struct kv_key p = { 0x0123456789abcdefull, 0xfedcba9876543210ull };
	const struct kv_key zero = { 0, 0 };
	struct kv_key k, k2;
	uint32_t b[200], i;

	(void)state;
	for (i = 0; i < 200; i++)
		b[i] = i * 2654435761u;

	/* pinned: the same keys on every run and host */
	kvb_key(&p, 0x5a17, a, 4, &k);
	assert_int_equal(k.lo, 0x4e95f672e7d14522ull);
	assert_int_equal(k.hi, 0x6951115e8d392c04ull);
	kvb_key(NULL, 0, a, 4, &k);
	assert_int_equal(k.lo, 0xce3d5eefc926ad79ull);
	assert_int_equal(k.hi, 0x667a5986e4a926f8ull);
	kvb_key(&p, 7, b, 200, &k);
	assert_int_equal(k.lo, 0x8c84835efdb719d5ull);
	assert_int_equal(k.hi, 0xb51270994ff5703aull);
	kvb_key(NULL, 0, NULL, 0, &k);
	assert_int_equal(k.lo, 0x743df94ee4c78a2aull);
	assert_int_equal(k.hi, 0x10e45c7ce2292320ull);

	/* no parent is the zero key */
	kvb_key(NULL, 3, b, 16, &k);
	kvb_key(&zero, 3, b, 16, &k2);
	assert_key_equal(&k, &k2);

	/* every input counts */
	kvb_key(&p, 3, b, 16, &k2);
	assert_false(key_eq(&k, &k2));
	kvb_key(NULL, 4, b, 16, &k2);
	assert_false(key_eq(&k, &k2));
	kvb_key(NULL, 3, b, 15, &k2);
	assert_false(key_eq(&k, &k2));
	kvb_key(NULL, 3, b + 1, 16, &k2);
	assert_false(key_eq(&k, &k2));
	b[15] ^= 1u << 31;
	kvb_key(NULL, 3, b, 16, &k2);
	assert_false(key_eq(&k, &k2));
}

/*
 * The random run.  The model holds what the contract fixes: reference
 * counts, which blocks are committed under which key, and when each free
 * committed block was freed.  From it every result is predicted exactly:
 * the blocks a match returns, whether an allocation must take a
 * never-committed block (any of them), evict a given one, or fail, and all
 * counters.  Prompts come from a few shared bases over a 4-token alphabet,
 * so prefixes, duplicate commits and eviction all happen often.
 */
#define ST_BLOCKS	24
#define ST_BS		4
#define ST_SEQS		6
#define ST_MAX_TOK	27		/* up to 7 blocks, the last partial */
#define ST_MAX_IDS	((ST_MAX_TOK + ST_BS - 1) / ST_BS)
#define ST_BASES	4
#define ST_OPS		6000
#define ST_NONE		UINT32_MAX

struct st_seq {
	bool		live;
	uint64_t	salt;
	uint32_t	tok[ST_MAX_TOK];
	uint32_t	n_tok;
	uint32_t	ids[ST_MAX_IDS];
	uint32_t	n_ids;
	uint32_t	n_done;		/* leading full blocks matched or committed */
	struct kv_key	keys[ST_MAX_IDS];	/* the chain key of each of those */
};

struct st_model {
	uint32_t		ref[ST_BLOCKS];
	bool			committed[ST_BLOCKS];
	struct kv_key		key[ST_BLOCKS];
	uint64_t		freed_at[ST_BLOCKS];
	uint64_t		clock;
	struct kv_blocks_stats	st;
	uint64_t		enospc, dup_commits;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32) % n;
}

static uint32_t model_find(const struct st_model *m, const struct kv_key *k)
{
	uint32_t i;

	for (i = 0; i < ST_BLOCKS; i++)
		if (m->committed[i] && key_eq(&m->key[i], k))
			return i;
	return ST_NONE;
}

static void model_verify(const struct kv_blocks *kv, const struct st_model *m)
{
	uint32_t i, free = 0, cached = 0;
	struct kv_blocks_stats st;

	check(kv);
	for (i = 0; i < ST_BLOCKS; i++) {
		if (!m->ref[i]) {
			free++;
			cached += m->committed[i];
		}
	}
	assert_counts(kv, free, ST_BLOCKS - free, cached);
	kvb_stats(kv, &st);
	assert_int_equal(st.queries, m->st.queries);
	assert_int_equal(st.hits, m->st.hits);
	assert_int_equal(st.evictions, m->st.evictions);
}

static void model_put(struct kv_blocks *kv, struct st_model *m, uint32_t id)
{
	assert_true(m->ref[id] > 0);
	kvb_put(kv, id);
	if (!--m->ref[id])
		m->freed_at[id] = ++m->clock;
}

/* kvb_alloc() against the model; false on -ENOSPC */
static bool model_alloc(struct kv_blocks *kv, struct st_model *m, uint32_t *id)
{
	uint32_t i, lru = ST_NONE;
	bool uncommitted = false;
	int ret;

	for (i = 0; i < ST_BLOCKS; i++) {
		if (m->ref[i])
			continue;
		if (!m->committed[i])
			uncommitted = true;
		else if (lru == ST_NONE || m->freed_at[i] < m->freed_at[lru])
			lru = i;
	}
	ret = kvb_alloc(kv, id);
	if (!uncommitted && lru == ST_NONE) {
		assert_int_equal(ret, -ENOSPC);
		m->enospc++;
		return false;
	}
	assert_int_equal(ret, 0);
	assert_in_range(*id, 0, ST_BLOCKS - 1);
	assert_int_equal(m->ref[*id], 0);
	if (uncommitted) {
		assert_false(m->committed[*id]);
	} else {
		assert_int_equal(*id, lru);
		m->committed[*id] = false;
		m->st.evictions++;
	}
	m->ref[*id] = 1;
	return true;
}

/* kvb_match() against the model; the matched blocks and their keys in @ids, @keys */
static uint32_t model_match(struct kv_blocks *kv, struct st_model *m, uint64_t salt,
			    const uint32_t *tok, uint32_t n_tok, uint32_t *ids,
			    struct kv_key *keys)
{
	struct kv_key k = { 0, 0 }, last;
	uint32_t want[ST_MAX_IDS], n, i, got;

	for (n = 0; n < n_tok / ST_BS; n++) {
		kvb_key(n ? &k : NULL, salt, tok + n * ST_BS, ST_BS, &k);
		want[n] = model_find(m, &k);
		if (want[n] == ST_NONE)
			break;
		keys[n] = k;
	}
	got = kvb_match(kv, salt, tok, n_tok, ids, &last);
	assert_int_equal(got, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(ids[i], want[i]);
		m->ref[ids[i]]++;
	}
	if (n)
		assert_key_equal(&last, &keys[n - 1]);
	else
		assert_true(!last.lo && !last.hi);
	m->st.queries += n_tok;
	m->st.hits += (uint64_t)n * ST_BS;
	return n;
}

/* kvb_commit() of full block @i of @s against the model */
static void model_commit(struct kv_blocks *kv, struct st_model *m, struct st_seq *s, uint32_t i)
{
	const struct kv_key *parent = i ? &s->keys[i - 1] : NULL;
	uint32_t id = s->ids[i];
	struct kv_key k;

	kvb_key(parent, s->salt, s->tok + i * ST_BS, ST_BS, &k);
	kvb_commit(kv, id, parent, s->salt, s->tok + i * ST_BS);
	if (!m->committed[id]) {
		if (model_find(m, &k) == ST_NONE) {
			m->committed[id] = true;
			m->key[id] = k;
		} else {
			m->dup_commits++;
		}
	}
	s->keys[i] = k;
}

static void seq_finish(struct kv_blocks *kv, struct st_model *m, struct st_seq *s)
{
	uint32_t i, j, tmp;

	/* in a random order, which the LRU order then follows */
	for (i = s->n_ids; i > 1; i--) {
		j = rnd(i);
		tmp = s->ids[i - 1];
		s->ids[i - 1] = s->ids[j];
		s->ids[j] = tmp;
	}
	for (i = 0; i < s->n_ids; i++)
		model_put(kv, m, s->ids[i]);
	s->live = false;
}

static void random_prompt(uint32_t base[ST_BASES][ST_MAX_TOK], uint32_t *tok, uint32_t *n_tok)
{
	uint32_t b = rnd(ST_BASES), n = 1 + rnd(ST_MAX_TOK), split = rnd(n + 1), i;

	for (i = 0; i < n; i++)
		tok[i] = i < split ? base[b][i] : rnd(4);
	*n_tok = n;
}

static void seq_start(struct kv_blocks *kv, struct st_model *m, struct st_seq *s,
		      uint32_t base[ST_BASES][ST_MAX_TOK])
{
	uint32_t need;

	memset(s, 0, sizeof(*s));
	s->live = true;
	s->salt = rnd(2);
	random_prompt(base, s->tok, &s->n_tok);
	s->n_done = model_match(kv, m, s->salt, s->tok, s->n_tok, s->ids, s->keys);
	s->n_ids = s->n_done;
	need = (s->n_tok + ST_BS - 1) / ST_BS;
	while (s->n_ids < need) {
		if (!model_alloc(kv, m, &s->ids[s->n_ids])) {
			seq_finish(kv, m, s);
			return;
		}
		s->n_ids++;
	}
}

static void test_stress(void **state)
{
	uint32_t base[ST_BASES][ST_MAX_TOK], tok[ST_MAX_TOK], ids[ST_MAX_IDS];
	struct kv_key keys[ST_MAX_IDS];
	struct st_seq seqs[ST_SEQS];
	uint32_t op, i, n, n_tok;
	struct st_model m;
	struct st_seq *s;
	struct kv_blocks *kv;

	(void)state;
	kv = mk(ST_BLOCKS, ST_BS, true);
	memset(&m, 0, sizeof(m));
	memset(seqs, 0, sizeof(seqs));
	for (i = 0; i < ST_BASES * ST_MAX_TOK; i++)
		base[i / ST_MAX_TOK][i % ST_MAX_TOK] = rnd(4);

	for (op = 0; op < ST_OPS; op++) {
		s = &seqs[rnd(ST_SEQS)];
		switch (rnd(8)) {
		case 0:
		case 1:
			if (!s->live)
				seq_start(kv, &m, s, base);
			break;
		case 2:
		case 3:
		case 4:
			/* commit the next computed full block */
			if (s->live && s->n_done < s->n_tok / ST_BS)
				model_commit(kv, &m, s, s->n_done++);
			break;
		case 5:
			/* commit again a block already done: a no-op unless it lost a race */
			if (s->live && s->n_done)
				model_commit(kv, &m, s, rnd(s->n_done));
			break;
		case 6:
			if (s->live)
				seq_finish(kv, &m, s);
			break;
		case 7:
			/* a lookup that lets go at once */
			random_prompt(base, tok, &n_tok);
			n = model_match(kv, &m, rnd(2), tok, n_tok, ids, keys);
			while (n)
				model_put(kv, &m, ids[--n]);
			break;
		}
		model_verify(kv, &m);
	}
	for (i = 0; i < ST_SEQS; i++)
		if (seqs[i].live)
			seq_finish(kv, &m, &seqs[i]);
	model_verify(kv, &m);
	assert_counts(kv, ST_BLOCKS, 0, kvb_num_cached(kv));

	/* the run reached every interesting case */
	print_message("stress: %llu queries, %llu hits, %llu evictions, %llu ENOSPC, "
		      "%llu duplicate commits\n",
		      (unsigned long long)m.st.queries, (unsigned long long)m.st.hits,
		      (unsigned long long)m.st.evictions, (unsigned long long)m.enospc,
		      (unsigned long long)m.dup_commits);
	assert_true(m.st.hits > 0);
	assert_true(m.st.evictions > 0);
	assert_true(m.enospc > 0);
	assert_true(m.dup_commits > 0);
	kvb_destroy(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bad),
		cmocka_unit_test(test_initial),
		cmocka_unit_test(test_alloc_all),
		cmocka_unit_test(test_refcount_share),
		cmocka_unit_test(test_shared_prefix),
		cmocka_unit_test(test_salt),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_chain_order),
		cmocka_unit_test(test_duplicate_commit),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_lru_touch),
		cmocka_unit_test(test_in_use_never_evicted),
		cmocka_unit_test(test_no_prefix_caching),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
