// SPDX-License-Identifier: GPL-2.0
/*
 * The SQE validation table: every defect class with its own errno, and the
 * UTF-8 check the runtime runs on copied prompts.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../runtime/sqe_check.h"

static const struct sqe_limits lim = {
	.arena_size = 65536,
	.max_prompt_bytes = 4096,
	.max_tokens = 1000,
};

static struct llmq_sqe good_generate(void)
{
	struct llmq_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = LLMQ_OP_GENERATE;
	s.flags = LLMQ_SQE_STREAM;
	s.user_data = 42;
	s.prompt_off = 100;
	s.prompt_len = 10;
	s.max_tokens = 16;
	s.temperature = LLMQ_FP_ONE / 2;
	s.top_p = LLMQ_FP_ONE;
	return s;
}

struct row {
	const char *what;
	void (*mutate)(struct llmq_sqe *s);
	int err;
};

static void m_none(struct llmq_sqe *s) { (void)s; }
static void m_opcode(struct llmq_sqe *s) { s->opcode = LLMQ_OP_LAST; }
static void m_opcode_ff(struct llmq_sqe *s) { s->opcode = 0xff; }
static void m_flags(struct llmq_sqe *s) { s->flags |= 0x80; }
static void m_resv0(struct llmq_sqe *s) { s->resv0 = 1; }
static void m_resv_last(struct llmq_sqe *s) { s->resv[9] = 1; }
static void m_target(struct llmq_sqe *s) { s->target = 7; }
static void m_ids_misaligned(struct llmq_sqe *s) { s->stop_ids_off = 2; s->stop_ids_count = 1; }
static void m_stop_off_only(struct llmq_sqe *s) { s->stop_off = 8; }
static void m_ids_off_only(struct llmq_sqe *s) { s->stop_ids_off = 8; }
static void m_prompt_wrap(struct llmq_sqe *s) { s->prompt_off = 0xfffffff0u; s->prompt_len = 0x20; }
static void m_stop_wrap(struct llmq_sqe *s) { s->stop_off = 0xffffffffu; s->stop_len = 2; }
static void m_ids_wrap(struct llmq_sqe *s) { s->stop_ids_off = 0xfffffff0u; s->stop_ids_count = 8; }
static void m_prompt_big(struct llmq_sqe *s) { s->prompt_len = 4097; }
static void m_ids_many(struct llmq_sqe *s)
{
	s->stop_ids_off = 0;
	s->stop_ids_count = LLMQ_MAX_STOP_IDS + 1;
}
static void m_ids_max(struct llmq_sqe *s)
{
	s->stop_ids_off = 0;
	s->stop_ids_count = LLMQ_MAX_STOP_IDS;
}
/* Too many ids and past the arena: the count is refused first. */
static void m_ids_many_out(struct llmq_sqe *s)
{
	s->stop_ids_off = 65532;
	s->stop_ids_count = LLMQ_MAX_STOP_IDS + 1;
}
static void m_prompt_out(struct llmq_sqe *s) { s->prompt_off = 65530; s->prompt_len = 10; }
static void m_prompt_edge(struct llmq_sqe *s) { s->prompt_off = 65526; s->prompt_len = 10; }
static void m_stop_out(struct llmq_sqe *s) { s->stop_off = 65535; s->stop_len = 2; }
static void m_ids_out(struct llmq_sqe *s) { s->stop_ids_off = 65532; s->stop_ids_count = 2; }
static void m_max_tokens(struct llmq_sqe *s) { s->max_tokens = 1001; }
static void m_temp(struct llmq_sqe *s) { s->temperature = 100 * LLMQ_FP_ONE + 1; }
static void m_top_p(struct llmq_sqe *s) { s->top_p = LLMQ_FP_ONE + 1; }
static void m_min_p(struct llmq_sqe *s) { s->min_p = LLMQ_FP_ONE + 1; }
static void m_rep(struct llmq_sqe *s) { s->repetition_penalty = 10 * LLMQ_FP_ONE + 1; }
static void m_pres_lo(struct llmq_sqe *s) { s->presence_penalty = -2 * LLMQ_FP_ONE - 1; }
static void m_freq_hi(struct llmq_sqe *s) { s->frequency_penalty = 2 * LLMQ_FP_ONE + 1; }
static void m_pen_edges(struct llmq_sqe *s)
{
	s->presence_penalty = -2 * LLMQ_FP_ONE;
	s->frequency_penalty = 2 * LLMQ_FP_ONE;
	s->repetition_penalty = 10 * LLMQ_FP_ONE;
	s->min_p = LLMQ_FP_ONE;
	s->max_tokens = 1000;
}
static void m_nop_ok(struct llmq_sqe *s) { memset(s, 0, sizeof(*s)); s->user_data = 3; }
static void m_nop_field(struct llmq_sqe *s) { m_nop_ok(s); s->max_tokens = 1; }
static void m_nop_prio(struct llmq_sqe *s) { m_nop_ok(s); s->priority = 1; }
static void m_cancel_ok(struct llmq_sqe *s)
{
	memset(s, 0, sizeof(*s));
	s->opcode = LLMQ_OP_CANCEL;
	s->target = 42;
}
static void m_cancel_flag(struct llmq_sqe *s) { m_cancel_ok(s); s->flags = LLMQ_SQE_STREAM; }
static void m_cancel_prompt(struct llmq_sqe *s) { m_cancel_ok(s); s->prompt_len = 1; }

static const struct row table[] = {
	{ "valid generate",		m_none,			0 },
	{ "unknown opcode",		m_opcode,		-EOPNOTSUPP },
	{ "opcode 0xff",		m_opcode_ff,		-EOPNOTSUPP },
	{ "unknown flag bit",		m_flags,		-EINVAL },
	{ "resv0 set",			m_resv0,		-EINVAL },
	{ "resv[9] set",		m_resv_last,		-EINVAL },
	{ "target on generate",		m_target,		-EINVAL },
	{ "stop ids misaligned",	m_ids_misaligned,	-EINVAL },
	{ "stop_off without len",	m_stop_off_only,	-EINVAL },
	{ "stop_ids_off without count",	m_ids_off_only,		-EINVAL },
	{ "prompt off+len wraps",	m_prompt_wrap,		-EOVERFLOW },
	{ "stop off+len wraps",		m_stop_wrap,		-EOVERFLOW },
	{ "stop ids off+len wraps",	m_ids_wrap,		-EOVERFLOW },
	{ "prompt too long",		m_prompt_big,		-E2BIG },
	{ "too many stop ids",		m_ids_many,		-E2BIG },
	{ "stop ids at the limit",	m_ids_max,		0 },
	{ "too many stop ids, past the arena", m_ids_many_out,	-E2BIG },
	{ "prompt past the arena",	m_prompt_out,		-EFAULT },
	{ "prompt ends at the arena end", m_prompt_edge,	0 },
	{ "stop list past the arena",	m_stop_out,		-EFAULT },
	{ "stop ids past the arena",	m_ids_out,		-EFAULT },
	{ "max_tokens over the limit",	m_max_tokens,		-ERANGE },
	{ "temperature > 100",		m_temp,			-ERANGE },
	{ "top_p > 1",			m_top_p,		-ERANGE },
	{ "min_p > 1",			m_min_p,		-ERANGE },
	{ "repetition_penalty > 10",	m_rep,			-ERANGE },
	{ "presence_penalty < -2",	m_pres_lo,		-ERANGE },
	{ "frequency_penalty > 2",	m_freq_hi,		-ERANGE },
	{ "penalties at their edges",	m_pen_edges,		0 },
	{ "valid nop",			m_nop_ok,		0 },
	{ "nop with a field",		m_nop_field,		-EINVAL },
	{ "nop with a priority",	m_nop_prio,		-EINVAL },
	{ "valid cancel",		m_cancel_ok,		0 },
	{ "cancel with a flag",		m_cancel_flag,		-EINVAL },
	{ "cancel with a prompt",	m_cancel_prompt,	-EINVAL },
};

#define NR_ROWS (sizeof(table) / sizeof(table[0]))

/* One cmocka test per row; the row comes in as the test's state. */
static void test_row(void **state)
{
	const struct row *r = *state;
	struct llmq_sqe s = good_generate();

	r->mutate(&s);
	assert_int_equal(sqe_check(&s, &lim), r->err);
}

/* Every reserved byte, one at a time, is refused. */
static void test_every_reserved_byte(void **state)
{
	size_t i;

	(void)state;
	for (i = offsetof(struct llmq_sqe, resv); i < sizeof(struct llmq_sqe); i++) {
		struct llmq_sqe s = good_generate();

		((uint8_t *)&s)[i] = 1;
		assert_int_equal(sqe_check(&s, &lim), -EINVAL);
	}
}

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		int err;
	} t[] = {
		{ "plain ascii", 0 },
		{ "caf\xc3\xa9", 0 },
		{ "\xe6\x97\xa5\xe6\x9c\xac", 0 },
		{ "\xf0\x9f\x98\x80", 0 },
		{ "\xc3", -EILSEQ },			/* truncated */
		{ "\xc0\xaf", -EILSEQ },		/* overlong */
		{ "\xe0\x80\xaf", -EILSEQ },		/* overlong */
		{ "\xed\xa0\x80", -EILSEQ },		/* surrogate */
		{ "\xf4\x90\x80\x80", -EILSEQ },	/* > U+10FFFF */
		{ "\xff", -EILSEQ },
		{ "a\x80", -EILSEQ },			/* stray continuation */
		{ "\xe6\x97", -EILSEQ },		/* truncated 3-byte */
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(utf8_check((const uint8_t *)t[i].s, strlen(t[i].s)), t[i].err);
	assert_int_equal(utf8_check((const uint8_t *)"a\0b", 3), 0);
}

int main(void)
{
	struct CMUnitTest tests[NR_ROWS + 2];
	unsigned int i;

	for (i = 0; i < NR_ROWS; i++) {
		tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate(test_row,
									(void *)&table[i]);
		tests[i].name = table[i].what;
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_every_reserved_byte);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_utf8);
	return _cmocka_run_group_tests("sqe", tests, i, NULL, NULL);
}
