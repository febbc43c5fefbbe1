// SPDX-License-Identifier: GPL-2.0
/*
 * SQE validation.  The caller copies the entry out of shared memory once and
 * passes the copy here; nothing is read twice.  Each class of defect has its
 * own errno, checked in this order:
 *
 *   -EOPNOTSUPP	unknown opcode
 *   -EINVAL		unknown flag bits, reserved fields set, fields that
 *			the opcode does not use set
 *   -EOVERFLOW		offset + length wraps around 32 bits
 *   -E2BIG		prompt longer than --max-prompt-bytes, more than
 *			LLMQ_MAX_STOP_IDS stop ids
 *   -EFAULT		a region outside the arena
 *   -ERANGE		a sampling parameter or max_tokens out of range
 *
 * Checks of arena contents run later, on the runtime's copy of the bytes
 * (runtime/request.c): -EILSEQ for a prompt or stop string that is not
 * UTF-8, -EINVAL for a malformed stop list.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "sqe_check.h"

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* Zero-based region check; a region of length 0 is always fine. */
static int region_check(uint32_t off, uint64_t len, uint32_t arena)
{
	if (!len)
		return 0;
	if ((uint64_t)off + len > UINT32_MAX)
		return -EOVERFLOW;
	if ((uint64_t)off + len > arena)
		return -EFAULT;
	return 0;
}

static int check_generate(const struct llmq_sqe *s, const struct sqe_limits *lim)
{
	uint64_t ids_len = (uint64_t)s->stop_ids_count * sizeof(uint32_t);
	int err;

	if (s->target)
		return -EINVAL;
	if (s->stop_ids_count && (s->stop_ids_off & 3))
		return -EINVAL;
	if ((!s->stop_len && s->stop_off) || (!s->stop_ids_count && s->stop_ids_off))
		return -EINVAL;
	if ((uint64_t)s->prompt_off + s->prompt_len > UINT32_MAX ||
	    (uint64_t)s->stop_off + s->stop_len > UINT32_MAX ||
	    (uint64_t)s->stop_ids_off + ids_len > UINT32_MAX)
		return -EOVERFLOW;
	if (s->prompt_len > lim->max_prompt_bytes || s->stop_ids_count > LLMQ_MAX_STOP_IDS)
		return -E2BIG;
	err = region_check(s->prompt_off, s->prompt_len, lim->arena_size);
	if (!err)
		err = region_check(s->stop_off, s->stop_len, lim->arena_size);
	if (!err)
		err = region_check(s->stop_ids_off, ids_len, lim->arena_size);
	if (err)
		return err;
	if (s->max_tokens > lim->max_tokens ||
	    s->temperature > 100 * LLMQ_FP_ONE ||
	    s->top_p > LLMQ_FP_ONE ||
	    s->min_p > LLMQ_FP_ONE ||
	    s->repetition_penalty > 10 * LLMQ_FP_ONE ||
	    s->presence_penalty < -2 * LLMQ_FP_ONE || s->presence_penalty > 2 * LLMQ_FP_ONE ||
	    s->frequency_penalty < -2 * LLMQ_FP_ONE || s->frequency_penalty > 2 * LLMQ_FP_ONE)
		return -ERANGE;
	return 0;
}

/**
 * sqe_check() - validate a private copy of an SQE
 * @sqe:	the copy
 * @lim:	limits, including the client's arena size
 *
 * Return: 0 or the negative errno of the first defect (see the file comment).
 */
int sqe_check(const struct llmq_sqe *sqe, const struct sqe_limits *lim)
{
	struct llmq_sqe z;

	if (sqe->opcode >= LLMQ_OP_LAST)
		return -EOPNOTSUPP;
	if (sqe->flags & ~LLMQ_SQE_FLAGS_ALL)
		return -EINVAL;
	if (sqe->resv0 || !all_zero(sqe->resv, sizeof(sqe->resv)))
		return -EINVAL;

	switch (sqe->opcode) {
	case LLMQ_OP_GENERATE:
		return check_generate(sqe, lim);
	case LLMQ_OP_CANCEL:
		/* Only user_data and target may be set. */
		z = *sqe;
		z.opcode = 0;
		z.user_data = 0;
		z.target = 0;
		return all_zero(&z, sizeof(z)) ? 0 : -EINVAL;
	default:
		z = *sqe;
		z.user_data = 0;
		return all_zero(&z, sizeof(z)) ? 0 : -EINVAL;
	}
}

/**
 * utf8_check() - is @s well-formed UTF-8 (no overlongs, no surrogates)?
 * @s:		bytes
 * @len:	how many
 *
 * Return: 0 or -EILSEQ.
 */
int utf8_check(const uint8_t *s, uint32_t len)
{
	uint32_t i = 0, cp, n, k;

	while (i < len) {
		uint8_t c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return -EILSEQ;
		}
		if (len - i <= n)
			return -EILSEQ;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return -EILSEQ;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return -EILSEQ;
		i += n + 1;
	}
	return 0;
}
