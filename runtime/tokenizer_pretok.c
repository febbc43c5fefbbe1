// SPDX-License-Identifier: GPL-2.0
/*
 * Byte-level BPE pre-tokenizers: the regular expressions, known by their GGUF
 * tokenizer.ggml.pre name, that cut text into words before BPE runs on each.
 * PCRE2 (UTF, Unicode properties, JIT where available) runs them; like
 * llama.cpp's unicode_regex_split, a list of expressions is applied one after
 * the other, each to every piece the previous one left, and the text between
 * matches is kept as words too.
 *
 * \s is spelt out as the Unicode White_Space set that the original
 * tokenizers' engines (Rust regex / Oniguruma / tiktoken) and llama.cpp use:
 * PCRE2's UCP \s would add U+180E.  The JS references differ for U+0085 (not
 * space to them) and U+FEFF (space to them); the tests list those cases.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

#define WS	"\\t\\n\\x{0b}\\f\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}" \
		"\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define S	"[" WS "]"
#define NOT_S	"[^" WS "]"

/* LLaMA-3; the (?i:...) contractions of tokenizer.json as llama.cpp adapts them */
static const char *const re_llama3[] = {
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
	"|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
	"|" S "*[\\r\\n]+|" S "+(?!" NOT_S ")|" S "+",
	NULL,
};

/* Qwen2 (and Qwen2.5/3): as LLaMA-3 but single digits */
static const char *const re_qwen2[] = {
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
	"|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*"
	"|" S "*[\\r\\n]+|" S "+(?!" NOT_S ")|" S "+",
	NULL,
};

/* GPT-2 */
static const char *const re_gpt2[] = {
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+"
	"|" S "+(?!" NOT_S ")|" S "+",
	NULL,
};

/* llama.cpp's fallback for BPE vocabularies without a known pre-tokenizer */
static const char *const re_default[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|]+",
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S "+(?!" NOT_S ")",
	"\\p{N}+",
	"[0-9][0-9][0-9]",
	NULL,
};

static const struct pretok_def {
	const char		*name;
	const char *const	*re;
	bool			ignore_merges;	/* whole word in vocab: no BPE */
	bool			nfc;		/* tokenizer.json normalizer: NFC */
} defs[] = {
	{ "llama-bpe",	re_llama3,	true,	false },
	{ "llama3",	re_llama3,	true,	false },
	{ "llama-v3",	re_llama3,	true,	false },
	{ "qwen2",	re_qwen2,	false,	true },
	{ "gpt2",	re_gpt2,	false,	false },
	{ "default",	re_default,	false,	false },
};

#define MAX_RE 4

struct tok_pretok {
	unsigned int	n_re;
	pcre2_code	*re[MAX_RE];
};

/**
 * tok_pretok_create() - compile the pre-tokenizer a vocabulary names
 * @name:          tokenizer.ggml.pre ("llama-bpe", "qwen2", "gpt2", "default";
 *                 NULL means "default")
 * @ignore_merges: set when words found whole in the vocabulary skip BPE
 * @nfc:           set when text is NFC-normalized first
 * @err:           where to describe a failure
 * @errlen:        its size
 *
 * Return: the pre-tokenizer, or NULL for an unknown name or no memory.
 */
struct tok_pretok *tok_pretok_create(const char *name, bool *ignore_merges, bool *nfc,
				     char *err, size_t errlen)
{
	const struct pretok_def *d = NULL;
	struct tok_pretok *p;
	size_t i;

	if (!name)
		name = "default";
	for (i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		if (!strcmp(defs[i].name, name))
			d = &defs[i];
	if (!d) {
		snprintf(err, errlen, "unsupported BPE pre-tokenizer \"%.64s\"", name);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; d->re[i]; i++) {
		int rc;
		PCRE2_SIZE at;

		p->re[i] = pcre2_compile((PCRE2_SPTR)d->re[i], PCRE2_ZERO_TERMINATED,
					 PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &rc, &at, NULL);
		if (!p->re[i]) {
			PCRE2_UCHAR msg[120];

			pcre2_get_error_message(rc, msg, sizeof(msg));
			snprintf(err, errlen, "pre-tokenizer %s: regex %zu at %zu: %s", name, i,
				 (size_t)at, (char *)msg);
			tok_pretok_free(p);
			return NULL;
		}
		/* the interpreter still works where JIT is not available */
		pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);
		p->n_re++;
	}
	*ignore_merges = d->ignore_merges;
	*nfc = d->nfc;
	return p;
}

/**
 * tok_pretok_free() - free a pre-tokenizer
 * @p: from tok_pretok_create(), or NULL
 */
void tok_pretok_free(struct tok_pretok *p)
{
	unsigned int i;

	if (!p)
		return;
	for (i = 0; i < MAX_RE; i++)
		pcre2_code_free(p->re[i]);
	free(p);
}

/**
 * tok_split_free() - free a split's arrays
 * @sp: split
 */
void tok_split_free(struct tok_split *sp)
{
	free(sp->off);
	free(sp->len);
	memset(sp, 0, sizeof(*sp));
}

static int split_push(struct tok_split *sp, size_t off, size_t len)
{
	if (sp->n == sp->cap) {
		size_t cap = sp->cap ? sp->cap * 2 : 256;
		uint32_t *o = realloc(sp->off, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		sp->off = o;
		o = realloc(sp->len, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		sp->len = o;
		sp->cap = cap;
	}
	sp->off[sp->n] = (uint32_t)off;
	sp->len[sp->n] = (uint32_t)len;
	sp->n++;
	return 0;
}

struct matcher {
	pcre2_match_data	*md;
	pcre2_match_context	*mc;
	pcre2_jit_stack		*js;
};

static int match(const pcre2_code *re, struct matcher *m, const char *s, size_t n, size_t from)
{
	int rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, m->md, m->mc);

	if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->js) {
		/* long runs of whitespace: give JIT a stack that can grow */
		m->mc = pcre2_match_context_create(NULL);
		m->js = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, NULL);
		if (!m->mc || !m->js)
			return PCRE2_ERROR_NOMEMORY;
		pcre2_jit_stack_assign(m->mc, NULL, m->js);
		rc = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, m->md, m->mc);
	}
	return rc;
}

/* Split s[off, off + len) with one expression; matches and gaps go to @out. */
static int split_one(const pcre2_code *re, struct matcher *m, const char *s, size_t off,
		     size_t len, struct tok_split *out)
{
	size_t pos = 0, last = 0;
	int ret;

	while (pos < len) {
		PCRE2_SIZE *ov;
		size_t a, b;
		int rc = match(re, m, s + off, len, pos);

		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0)
			return rc == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EIO;
		ov = pcre2_get_ovector_pointer(m->md);
		a = ov[0];
		b = ov[1];
		if (a > last) {
			ret = split_push(out, off + last, a - last);
			if (ret)
				return ret;
		}
		if (b > a) {
			ret = split_push(out, off + a, b - a);
			if (ret)
				return ret;
			last = pos = b;
		} else {
			/* empty match: step over one character */
			last = a;
			pos = a + tok_utf8_len((uint8_t)s[off + a]);
		}
	}
	if (last < len)
		return split_push(out, off + last, len - last);
	return 0;
}

/**
 * tok_pretok_split() - cut text into words
 * @p:   pre-tokenizer
 * @s:   valid UTF-8 text
 * @n:   its length (below 4 GiB)
 * @out: receives the words' offsets and lengths (emptied first)
 *
 * Return: 0, -ENOMEM, or -EIO when PCRE2 gives up (match limits).
 */
int tok_pretok_split(const struct tok_pretok *p, const char *s, size_t n,
		     struct tok_split *out)
{
	struct tok_split tmp = { 0 };
	struct matcher m = { 0 };
	unsigned int r;
	int ret = 0;

	out->n = 0;
	if (!n)
		return 0;
	m.md = pcre2_match_data_create(1, NULL);
	if (!m.md)
		return -ENOMEM;

	ret = split_one(p->re[0], &m, s, 0, n, out);
	for (r = 1; !ret && r < p->n_re; r++) {
		struct tok_split swap;
		size_t i;

		tmp.n = 0;
		for (i = 0; !ret && i < out->n; i++)
			ret = split_one(p->re[r], &m, s, out->off[i], out->len[i], &tmp);
		swap = *out;
		*out = tmp;
		tmp = swap;
	}

	tok_split_free(&tmp);
	pcre2_match_data_free(m.md);
	pcre2_match_context_free(m.mc);
	pcre2_jit_stack_free(m.js);
	return ret;
}
