// SPDX-License-Identifier: GPL-2.0
/*
 * UTF-8 for the tokenizer: validation, repair of invalid input the way the
 * WHATWG decoder (TextDecoder, which the reference tokenizers use) does it —
 * one U+FFFD per maximal ill-formed subpart —, code point helpers, and NFC
 * normalization (libunistring) for vocabularies whose tokenizer normalizes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

#include "tokenizer_impl.h"

static const char replacement[3] = { '\xef', '\xbf', '\xbd' };	/* U+FFFD */

/**
 * tok_utf8_len() - length of the character a valid lead byte starts
 * @lead: first byte of the character
 *
 * Return: 1 to 4; 1 for bytes that cannot lead (callers only pass valid text).
 */
unsigned int tok_utf8_len(uint8_t lead)
{
	static const uint8_t len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };

	return len[lead >> 4];
}

/**
 * tok_utf8_get() - decode one character of valid UTF-8
 * @s:   text
 * @n:   bytes left in @s (at least 1)
 * @len: where to store the character's length
 *
 * Return: the code point.  A truncated sequence yields its lead byte, length 1.
 */
uint32_t tok_utf8_get(const uint8_t *s, size_t n, unsigned int *len)
{
	unsigned int l = tok_utf8_len(s[0]);
	uint32_t cp;

	if (l > n)
		l = 1;
	*len = l;
	switch (l) {
	case 2:
		cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		break;
	case 3:
		cp = (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
		break;
	case 4:
		cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
		     (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
		break;
	default:
		cp = s[0];
		break;
	}
	return cp;
}

/**
 * tok_utf8_put() - encode one code point
 * @cp:  code point (at most 0x10ffff)
 * @out: room for 4 bytes
 *
 * Return: bytes written.
 */
int tok_utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Bounds of the second byte after a lead byte (Unicode table 3-7); 0 for a
 * byte that cannot lead a multi-byte sequence.
 */
static unsigned int seq_need(uint8_t b, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b >= 0xc2 && b <= 0xdf)
		return 1;
	if (b >= 0xe0 && b <= 0xef) {
		if (b == 0xe0)
			*lo = 0xa0;
		else if (b == 0xed)
			*hi = 0x9f;
		return 2;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (b == 0xf0)
			*lo = 0x90;
		else if (b == 0xf4)
			*hi = 0x8f;
		return 3;
	}
	return 0;
}

/**
 * tok_utf8_valid_prefix() - how much of a byte string is valid UTF-8
 * @s: bytes
 * @n: their number
 *
 * Return: length of the longest valid prefix; @n when all of it is valid.
 */
size_t tok_utf8_valid_prefix(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t lo, hi;
		unsigned int need, k;

		/* ASCII eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;

			memcpy(&w, s + i, 8);
			if (w & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		need = seq_need(s[i], &lo, &hi);
		if (!need || n - i <= need)
			return i;
		for (k = 1; k <= need; k++) {
			if (s[i + k] < lo || s[i + k] > hi)
				return i;
			lo = 0x80;
			hi = 0xbf;
		}
		i += need + 1;
	}
	return n;
}

/**
 * tok_utf8_repair() - copy bytes as valid UTF-8, replacing what is invalid
 * @s:         bytes
 * @n:         their number
 * @out:       destination (3 * @n bytes always suffice), or NULL to count only
 * @hold_tail: stop before an incomplete sequence at the very end instead of
 *             replacing it (streaming: the next bytes may complete it)
 * @consumed:  where to store how many bytes of @s were used, or NULL
 *
 * Each maximal ill-formed subpart becomes one U+FFFD, as the WHATWG decoder
 * (and so the reference tokenizers' TextDecoder) does.
 *
 * Return: number of bytes written (or that would be written).
 */
size_t tok_utf8_repair(const uint8_t *s, size_t n, char *out, bool hold_tail,
		       size_t *consumed)
{
	size_t i = 0, o = 0;

	while (i < n) {
		uint8_t b = s[i], lo, hi;
		unsigned int need;
		size_t j;

		if (b < 0x80) {
			if (out)
				out[o] = (char)b;
			o++;
			i++;
			continue;
		}
		need = seq_need(b, &lo, &hi);
		if (!need)
			goto bad_one;
		for (j = i + 1; j <= i + need; j++) {
			if (j >= n) {
				if (hold_tail)
					goto out;
				i = n;
				goto bad;
			}
			if (s[j] < lo || s[j] > hi) {
				i = j;		/* this byte starts over */
				goto bad;
			}
			lo = 0x80;
			hi = 0xbf;
		}
		if (out)
			memcpy(out + o, s + i, need + 1);
		o += need + 1;
		i += need + 1;
		continue;
bad_one:
		i++;
bad:
		if (out)
			memcpy(out + o, replacement, 3);
		o += 3;
	}
out:
	if (consumed)
		*consumed = i;
	return o;
}

/*
 * Characters that NFC leaves alone whatever surrounds them: quick-check Yes
 * and combining class 0.  A conservative list; anything else goes to
 * libunistring.
 */
static bool nfc_inert(uint32_t cp)
{
	return cp < 0x300 ||
	       (cp >= 0x400 && cp <= 0x45f) ||
	       (cp >= 0x3041 && cp <= 0x3096) ||
	       (cp >= 0x30a1 && cp <= 0x30fa) ||
	       (cp >= 0x3400 && cp <= 0x4dbf) ||
	       (cp >= 0x4e00 && cp <= 0x9fff) ||
	       (cp >= 0xac00 && cp <= 0xd7a3);
}

/**
 * tok_nfc() - Unicode NFC of valid UTF-8 text
 * @s:       text
 * @n:       its length
 * @out:     where to store a malloc'ed normalized copy, or NULL when the text
 *           is already normalized (the common case, found without copying)
 * @out_len: its length
 *
 * Return: 0, or -ENOMEM / -EINVAL from the normalizer.
 */
int tok_nfc(const char *s, size_t n, char **out, size_t *out_len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0, len;
	uint8_t *r;

	*out = NULL;
	*out_len = 0;
	while (i < n) {
		unsigned int l;

		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if (!nfc_inert(tok_utf8_get(u + i, n - i, &l)))
			break;
		i += l;
	}
	if (i == n)
		return 0;

	r = u8_normalize(UNINORM_NFC, u, n, NULL, &len);
	if (!r)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	*out = (char *)r;
	*out_len = len;
	return 0;
}
