// SPDX-License-Identifier: GPL-2.0
/*
 * Ring arithmetic without a runtime: geometry and layout, index wraparound
 * at 2^32, SQ full, and libllmq's arena allocator reclaiming by sq_head.
 * The test plays the runtime by moving sq_head and cq_tail itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "libllmq.h"
#include "ring.h"

/* A ring laid out in plain memory, indices starting at @start. */
static void fake_ring(struct llmq_ring *r, uint32_t sq, uint32_t cq, uint32_t arena,
		      uint32_t start)
{
	struct llmq_params p = { .sq_entries = sq, .cq_entries = cq, .arena_size = arena };
	struct llmq_layout lay = { 0 };

	assert_int_equal(llmq_params_check(&p, &lay), 0);
	memset(r, 0, sizeof(*r));
	r->map = aligned_alloc(4096, lay.map_size);
	assert_non_null(r->map);
	memset(r->map, 0, lay.map_size);
	r->map_size = lay.map_size;
	r->hdr = r->map;
	r->sqes = (struct llmq_sqe *)((char *)r->map + lay.sq_off);
	r->cqes = (struct llmq_cqe *)((char *)r->map + lay.cq_off);
	r->arena = (uint8_t *)r->map + lay.arena_off;
	r->sq_entries = sq;
	r->cq_entries = cq;
	r->arena_size = arena;
	r->slots = calloc(sq, sizeof(*r->slots));
	r->doorbell_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->sock_fd = -1;
	r->sqe_tail = r->sq_tail = r->cq_head = start;
	r->hdr->sq_head = r->hdr->sq_tail = r->hdr->cq_head = r->hdr->cq_tail = start;
}

static void fake_free(struct llmq_ring *r)
{
	close(r->doorbell_fd);
	close(r->wake_fd);
	free(r->slots);
	free(r->map);
}

static void test_params(void **state)
{
	struct llmq_params p = { .sq_entries = 64, .cq_entries = 1024, .arena_size = 1 << 20 };
	struct llmq_layout lay;

	(void)state;
	assert_int_equal(llmq_params_check(&p, &lay), 0);
	assert_int_equal(lay.sq_off, LLMQ_HDR_SIZE);
	assert_int_equal(lay.cq_off, 4096 + 64 * 128);
	assert_int_equal(lay.arena_off, 4096 + 64 * 128 + 1024 * 64);
	assert_int_equal(lay.map_size, lay.arena_off + (1 << 20));
	assert_int_equal(lay.cq_off % 4096, 0);
	assert_int_equal(lay.arena_off % 4096, 0);

	p.sq_entries = 3;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.sq_entries = 1;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.sq_entries = LLMQ_MAX_SQ_ENTRIES * 2;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.sq_entries = 64;
	p.cq_entries = 32;		/* smaller than the SQ */
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.cq_entries = 1024;
	p.arena_size = 4097;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.arena_size = LLMQ_MAX_ARENA + 4096;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.arena_size = 4096;
	p.resv[3] = 1;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
	p.resv[3] = 0;
	p.flags = 1;
	assert_int_equal(llmq_params_check(&p, NULL), -EINVAL);
}

static void test_index_math(void **state)
{
	(void)state;
	assert_int_equal(llmq_ring_used(0xfffffffeu, 2), 4);
	assert_true(llmq_ring_sane(0xfffffffeu, 2, 4));
	assert_false(llmq_ring_sane(0xfffffffeu, 3, 4));
	assert_false(llmq_ring_sane(5, 4, 4));		/* tail behind head */
	assert_true(llmq_ring_sane(7, 7, 4));
	assert_int_equal(offsetof(struct llmq_ring_hdr, sq_head), LLMQ_HDR_SQ_HEAD);
	assert_int_equal(offsetof(struct llmq_ring_hdr, sq_tail), LLMQ_HDR_SQ_TAIL);
	assert_int_equal(offsetof(struct llmq_ring_hdr, cq_head), LLMQ_HDR_CQ_HEAD);
	assert_int_equal(offsetof(struct llmq_ring_hdr, cq_tail), LLMQ_HDR_CQ_TAIL);
}

/* SQ fills at sq_entries, across the 2^32 wrap, and frees as sq_head moves. */
static void test_sq_full_wrap(void **state)
{
	struct llmq_ring r;
	struct llmq_sqe *sqe;
	int i;

	(void)state;
	fake_ring(&r, 4, 8, 4096, 0xfffffffdu);
	for (i = 0; i < 4; i++) {
		sqe = llmq_get_sqe(&r);
		assert_non_null(sqe);
		assert_ptr_equal(sqe, &r.sqes[(0xfffffffdu + i) & 3]);
		llmq_prep_nop(sqe, (uint64_t)i);
	}
	errno = 0;
	assert_null(llmq_get_sqe(&r));
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(llmq_submit(&r), 4);
	assert_int_equal(r.hdr->sq_tail, 0xfffffffdu + 4);
	assert_int_equal(llmq_submit(&r), 0);

	/* The "runtime" consumes two; two slots come back. */
	r.hdr->sq_head = 0xfffffffdu + 2;
	assert_non_null(llmq_get_sqe(&r));
	assert_non_null(llmq_get_sqe(&r));
	assert_null(llmq_get_sqe(&r));
	fake_free(&r);
}

/* CQEs are seen in order across the wrap; peek says -EAGAIN when empty. */
static void test_cq_wrap(void **state)
{
	struct llmq_ring r;
	struct llmq_cqe *cqe;
	uint32_t i, start = 0xfffffffau;

	(void)state;
	fake_ring(&r, 4, 8, 4096, start);
	assert_int_equal(llmq_peek_cqe(&r, &cqe), -EAGAIN);
	for (i = 0; i < 20; i++) {
		r.cqes[(start + i) & 7].user_data = i;
		r.hdr->cq_tail = start + i + 1;
		assert_int_equal(llmq_peek_cqe(&r, &cqe), 0);
		assert_int_equal(cqe->user_data, i);
		llmq_cqe_seen(&r, cqe);
		assert_int_equal(r.hdr->cq_head, start + i + 1);
	}
	assert_int_equal(llmq_peek_cqe(&r, &cqe), -EAGAIN);
	/* A dead runtime is reported once the CQ is empty, with its errno. */
	r.hdr->rt_errno = ESHUTDOWN;
	r.hdr->rt_flags = LLMQ_RING_DEAD;
	assert_int_equal(llmq_peek_cqe(&r, &cqe), -ESHUTDOWN);
	assert_int_equal(llmq_wait_cqe_timeout(&r, &cqe, 10), -ESHUTDOWN);
	fake_free(&r);
}

static int prep(struct llmq_ring *r, size_t len, uint64_t ud)
{
	static char buf[8192];
	struct llmq_sqe *sqe = llmq_get_sqe(r);

	if (!sqe)
		return -EAGAIN;
	memset(buf, 'a' + (int)(ud % 26), len);
	return llmq_prep_generate(r, sqe, buf, len, NULL, ud);
}

/* Prompts land in the arena, wrap around it, and come back via sq_head. */
static void test_arena(void **state)
{
	struct llmq_ring r;
	struct llmq_sqe *sqe;
	uint32_t k;

	(void)state;
	fake_ring(&r, 8, 8, 4096, 0xfffffff0u);
	assert_int_equal(prep(&r, 5000, 1), -E2BIG);
	r.sqe_tail--;		/* give back the entry the failed prep took */

	assert_int_equal(prep(&r, 1500, 1), 0);
	assert_int_equal(prep(&r, 1500, 2), 0);
	/* 3000 of 4096 used: 1500 more does not fit yet. */
	assert_int_equal(prep(&r, 1500, 3), -EAGAIN);
	r.sqe_tail--;
	sqe = &r.sqes[r.sq_tail & 7];
	assert_int_equal(sqe->prompt_off, 0);
	assert_int_equal(sqe->prompt_len, 1500);
	assert_int_equal(r.arena[0], 'b');
	assert_int_equal(llmq_submit(&r), 2);

	/* The runtime consumed the first: its 1500 bytes come back, at the front. */
	r.hdr->sq_head = r.hdr->sq_head + 1;
	assert_int_equal(prep(&r, 1500, 3), 0);
	sqe = &r.sqes[(r.sqe_tail - 1) & 7];
	assert_int_equal(sqe->prompt_off, 0);		/* wrapped to the start */
	assert_int_equal(r.arena[0], 'd');
	assert_int_equal(r.arena[1500], 'c');		/* the second is untouched */

	/* Consume everything; a long run of prompts keeps cycling the arena. */
	assert_int_equal(llmq_submit(&r), 1);
	for (k = 0; k < 200; k++) {
		r.hdr->sq_head = r.hdr->sq_tail;
		assert_int_equal(prep(&r, 100 + (k * 37) % 3000, k), 0);
		sqe = &r.sqes[(r.sqe_tail - 1) & 7];
		assert_true(sqe->prompt_off + sqe->prompt_len <= 4096);
		assert_int_equal(r.arena[sqe->prompt_off], 'a' + (int)(k % 26));
		assert_int_equal(llmq_submit(&r), 1);
	}
	fake_free(&r);
}

/* Out-of-order preps: nothing is reclaimed before its own SQE is consumed. */
static void test_arena_out_of_order(void **state)
{
	struct llmq_ring r;
	struct llmq_sqe *a, *b;
	char p[2000];

	(void)state;
	memset(p, 'x', sizeof(p));
	fake_ring(&r, 4, 4, 4096, 0);
	a = llmq_get_sqe(&r);
	b = llmq_get_sqe(&r);
	assert_int_equal(llmq_prep_generate(&r, b, p, 2000, NULL, 2), 0);
	assert_int_equal(llmq_prep_generate(&r, a, p, 2000, NULL, 1), 0);
	assert_int_equal(llmq_submit(&r), 2);
	/* Only a (allocated second) is consumed: b's bytes must stay. */
	r.hdr->sq_head = 1;
	assert_non_null(a = llmq_get_sqe(&r));
	assert_int_equal(llmq_prep_generate(&r, a, p, 100, NULL, 3), -EAGAIN);
	r.hdr->sq_head = 2;
	assert_int_equal(llmq_prep_generate(&r, a, p, 100, NULL, 3), 0);
	fake_free(&r);
}

/* Sampling in natural units becomes the ABI's fixed point, checked. */
static void test_prep_sampling(void **state)
{
	const char *stops[] = { "END", "\n\n", NULL };
	uint32_t ids[] = { 7, 9 };
	struct llmq_sampling sp;
	struct llmq_ring r;
	struct llmq_sqe *sqe;

	(void)state;
	fake_ring(&r, 4, 4, 4096, 0);
	llmq_sampling_init(&sp);
	sp.temperature = 0.7f;
	sp.top_p = 0.9f;
	sp.min_p = 0.05f;
	sp.presence_penalty = -1.5f;
	sp.top_k = 40;
	sp.seed = 1234;
	sp.priority = -3;
	sp.stop = stops;
	sp.stop_ids = ids;
	sp.nr_stop_ids = 2;
	sqe = llmq_get_sqe(&r);
	assert_int_equal(llmq_prep_generate(&r, sqe, "hi", 2, &sp, 77), 0);
	assert_int_equal(sqe->temperature, 700000);
	assert_int_equal(sqe->top_p, 900000);
	assert_int_equal(sqe->min_p, 50000);
	assert_int_equal(sqe->presence_penalty, -1500000);
	assert_int_equal(sqe->repetition_penalty, LLMQ_FP_ONE);
	assert_int_equal(sqe->top_k, 40);
	assert_int_equal(sqe->seed, 1234);
	assert_int_equal(sqe->priority, -3);
	assert_int_equal(sqe->flags, LLMQ_SQE_STREAM);
	assert_int_equal(sqe->stop_ids_off % 4, 0);
	assert_int_equal(sqe->stop_ids_count, 2);
	assert_memory_equal(r.arena + sqe->stop_ids_off, ids, sizeof(ids));
	assert_int_equal(sqe->stop_len, 7);
	assert_memory_equal(r.arena + sqe->stop_off, "END\0\n\n\0", 7);
	assert_memory_equal(r.arena + sqe->prompt_off, "hi", 2);

	sp.temperature = -0.1f;
	assert_int_equal(llmq_prep_generate(&r, sqe, "hi", 2, &sp, 1), -ERANGE);
	sp.temperature = 0.0f / 0.0f;
	assert_int_equal(llmq_prep_generate(&r, sqe, "hi", 2, &sp, 1), -ERANGE);
	sp.temperature = 1;
	sp.flags = 0x80;
	assert_int_equal(llmq_prep_generate(&r, sqe, "hi", 2, &sp, 1), -EINVAL);
	/* More stop ids than the runtime takes, though they fit the arena. */
	{
		static uint32_t many[LLMQ_MAX_STOP_IDS + 1];
		struct llmq_ring big;

		fake_ring(&big, 4, 4, 8192, 0);
		sp.flags = LLMQ_SQE_STREAM;
		sp.stop = NULL;
		sp.stop_ids = many;
		sp.nr_stop_ids = LLMQ_MAX_STOP_IDS;
		sqe = llmq_get_sqe(&big);
		assert_int_equal(llmq_prep_generate(&big, sqe, "hi", 2, &sp, 1), 0);
		assert_int_equal(sqe->stop_ids_count, LLMQ_MAX_STOP_IDS);
		sp.nr_stop_ids = LLMQ_MAX_STOP_IDS + 1;
		sqe = llmq_get_sqe(&big);
		assert_int_equal(llmq_prep_generate(&big, sqe, "hi", 2, &sp, 1), -E2BIG);
		fake_free(&big);
	}
	fake_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_index_math),
		cmocka_unit_test(test_sq_full_wrap),
		cmocka_unit_test(test_cq_wrap),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_arena_out_of_order),
		cmocka_unit_test(test_prep_sampling),
	};

	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
