// SPDX-License-Identifier: GPL-2.0
/*
 * SentencePiece-style BPE ("llama" in GGUF): spaces become U+2581, the text
 * is cut into UTF-8 characters, and adjacent symbols are merged greedily,
 * always the pair whose merged token scores highest (leftmost on ties), as
 * llama.cpp's llm_tokenizer_spm and SentencePiece do.  Characters left
 * without a token fall back to <0xXX> byte tokens.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

struct spm_sym {
	int32_t		prev;
	int32_t		next;
	uint32_t	off;
	uint32_t	n;		/* 0 once merged into its left neighbour */
};

struct spm_bigram {
	float		score;
	int32_t		left;
	int32_t		right;
	uint32_t	size;
};

struct spm_heap {
	struct spm_bigram *v;
	size_t		n;
	size_t		cap;
};

/**
 * tok_spm_init() - SentencePiece part of tok_create()
 * @t:      tokenizer being built (texts, map and classes are ready)
 * @v:      the vocabulary
 * @err:    where to describe a failure
 * @errlen: its size
 *
 * Finds the token for every raw byte: "<0xXX>" as llama.cpp looks it up,
 * else the byte itself as a token, else unk; and whether merging may go word
 * by word (true of real vocabularies: U+2581 only starts tokens, or fills
 * them), which gives the same result much faster than merging a long text
 * as one sequence.
 *
 * Return: 0 (a vocabulary without byte tokens is valid; encoding then fails
 * with -EILSEQ only for text that needs them).
 */
int tok_spm_init(struct tokenizer *t, const struct tok_vocab *v, char *err, size_t errlen)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned int b;
	uint32_t id;

	(void)v;
	(void)err;
	(void)errlen;
	t->spm_ws_cut = true;
	for (id = 0; id < t->n_tokens && t->spm_ws_cut; id++) {
		const char *s = tok_text(t, id), *p = s;
		uint32_t n = tok_len(t, id);

		if ((t->cls[id] != TOK_CLASS_TEXT && t->cls[id] != TOK_CLASS_USER) || n < 4)
			continue;
		while ((p = memmem(p + 1, n - (size_t)(p + 1 - s), "\xe2\x96\x81", 3)) != NULL) {
			if (p - s < 3 || memcmp(p - 3, "\xe2\x96\x81", 3)) {
				t->spm_ws_cut = false;
				break;
			}
		}
	}
	for (b = 0; b < 256; b++) {
		char name[6] = { '<', '0', 'x', hex[b >> 4], hex[b & 15], '>' };
		char raw = (char)b;

		id = tok_lookup(t, name, sizeof(name));

		if (id == TOK_NONE)
			id = tok_lookup(t, &raw, 1);
		if (id == TOK_NONE && t->unk >= 0)
			id = (uint32_t)t->unk;
		t->byte_id[b] = id;
	}
	return 0;
}

static bool better(const struct spm_bigram *a, const struct spm_bigram *b)
{
	return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(struct spm_heap *h, const struct spm_bigram *x)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		struct spm_bigram *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	i = h->n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!better(x, &h->v[parent]))
			break;
		h->v[i] = h->v[parent];
		i = parent;
	}
	h->v[i] = *x;
	return 0;
}

static struct spm_bigram heap_pop(struct spm_heap *h)
{
	struct spm_bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && better(&h->v[c + 1], &h->v[c]))
			c++;
		if (!better(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

/* Tokens a merge may produce: what SentencePiece keeps in its piece table. */
static bool mergeable(const struct tokenizer *t, uint32_t id)
{
	return id != TOK_NONE && (t->cls[id] == TOK_CLASS_TEXT || t->cls[id] == TOK_CLASS_USER);
}

static int try_bigram(const struct tokenizer *t, const char *text, const struct spm_sym *sym,
		      int32_t left, int32_t right, struct spm_heap *h)
{
	struct spm_bigram b;
	uint32_t id, n;

	if (left < 0 || right < 0)
		return 0;
	n = sym[left].n + sym[right].n;
	if (n > t->max_len)
		return 0;
	id = tok_lookup(t, text + sym[left].off, n);
	if (!mergeable(t, id))
		return 0;
	b.score = t->score[id];
	b.left = left;
	b.right = right;
	b.size = n;
	return heap_push(h, &b);
}

/* Merge text[a, b) and append its ids; @sym and @heap are scratch space. */
static int spm_chunk(const struct tokenizer *t, const char *text, size_t a, size_t b,
		     struct spm_sym *sym, struct spm_heap *heap, struct tok_ids *out)
{
	size_t i, nsym = 0;
	int32_t k;
	int ret;

	for (i = a; i < b; ) {
		unsigned int l = tok_utf8_len((uint8_t)text[i]);

		if (l > b - i)
			l = (unsigned int)(b - i);
		sym[nsym].prev = (int32_t)nsym - 1;
		sym[nsym].next = (int32_t)nsym + 1;
		sym[nsym].off = (uint32_t)i;
		sym[nsym].n = l;
		nsym++;
		i += l;
	}
	sym[nsym - 1].next = -1;

	heap->n = 0;
	for (i = 1; i < nsym; i++) {
		ret = try_bigram(t, text, sym, (int32_t)i - 1, (int32_t)i, heap);
		if (ret)
			return ret;
	}
	while (heap->n) {
		struct spm_bigram bg = heap_pop(heap);
		struct spm_sym *l = &sym[bg.left], *r = &sym[bg.right];

		if (!l->n || !r->n || l->n + r->n != bg.size)
			continue;	/* one side already merged elsewhere */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = bg.left;
		ret = try_bigram(t, text, sym, l->prev, bg.left, heap);
		if (!ret)
			ret = try_bigram(t, text, sym, bg.left, l->next, heap);
		if (ret)
			return ret;
	}

	for (k = 0; k != -1; k = sym[k].next) {
		uint32_t id = tok_lookup(t, text + sym[k].off, sym[k].n);

		if (mergeable(t, id)) {
			ret = tok_ids_push(out, id);
			if (ret)
				return ret;
			continue;
		}
		for (i = 0; i < sym[k].n; i++) {
			id = t->byte_id[(uint8_t)text[sym[k].off + i]];
			ret = id == TOK_NONE ? -EILSEQ : tok_ids_push(out, id);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static bool is_ws(const char *p)
{
	return !memcmp(p, "\xe2\x96\x81", 3);
}

/**
 * tok_spm_encode() - SentencePiece-encode text that holds no special tokens
 * @t:            tokenizer
 * @s:            valid UTF-8 text
 * @n:            its length
 * @prefix_space: prepend a space first (add_space_prefix at the start of the
 *                text or after a special token)
 * @out:          ids are appended here
 *
 * Return: 0, -ENOMEM, or -EILSEQ for a character that has neither a token nor
 * byte tokens to fall back on.
 */
int tok_spm_encode(const struct tokenizer *t, const char *s, size_t n, bool prefix_space,
		   struct tok_ids *out)
{
	struct spm_heap heap = { 0 };
	struct spm_sym *sym = NULL;
	char *text;
	size_t i, len = 0, start;
	int ret = -ENOMEM;

	if (!n && !prefix_space)
		return 0;

	/* escape spaces: ' ' -> U+2581 */
	text = malloc(3 * n + 3);
	if (!text)
		return -ENOMEM;
	if (prefix_space) {
		memcpy(text, "\xe2\x96\x81", 3);
		len = 3;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == ' ') {
			memcpy(text + len, "\xe2\x96\x81", 3);
			len += 3;
		} else {
			text[len++] = s[i];
		}
	}
	sym = malloc(len * sizeof(*sym));
	if (!sym)
		goto out;

	/* word by word where no token can span the cut, else all at once */
	ret = 0;
	start = 0;
	for (i = 0; !ret && t->spm_ws_cut && i < len; i += tok_utf8_len((uint8_t)text[i])) {
		if (i >= 3 && i + 3 <= len && is_ws(text + i) && !is_ws(text + i - 3) &&
		    i > start) {
			ret = spm_chunk(t, text, start, i, sym, &heap, out);
			start = i;
		}
	}
	if (!ret && start < len)
		ret = spm_chunk(t, text, start, len, sym, &heap, out);
out:
	free(heap.v);
	free(sym);
	free(text);
	return ret;
}
