// SPDX-License-Identifier: GPL-2.0
/*
 * Byte-level BPE ("gpt2" in GGUF; LLaMA-3, Qwen2/3): text is cut into words
 * by the pre-tokenizer, every byte of a word starts as the token of its GPT-2
 * byte-to-unicode character, and adjacent tokens are merged by rank (lowest
 * first, leftmost on ties) through a hash of (left id, right id) pairs, as
 * llama.cpp's llm_tokenizer_bpe and the Hugging Face tokenizers do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

struct merge_slot {
	uint32_t	left;		/* TOK_NONE: empty */
	uint32_t	right;
	uint32_t	rank;
	uint32_t	result;
};

/**
 * struct tok_bpe - what byte-level BPE adds to a tokenizer
 * @pre:           the pre-tokenizer
 * @ignore_merges: a word that is a token as a whole is taken as is
 * @nfc:           normalize text to NFC first
 * @byte_tok:      token of each byte's GPT-2 character, TOK_NONE if missing
 * @pairs:         merge table, open addressing
 * @pair_mask:     its size - 1
 */
struct tok_bpe {
	struct tok_pretok *pre;
	bool		ignore_merges;
	bool		nfc;
	uint32_t	byte_tok[256];
	struct merge_slot *pairs;
	uint32_t	pair_mask;
};

/*
 * GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes for U+0100 upwards in byte order.
 */
static bool byte_printable(unsigned int b)
{
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

static uint32_t byte_to_cp(unsigned int b)
{
	unsigned int i, k = 0;

	if (byte_printable(b))
		return b;
	for (i = 0; i < b; i++)
		if (!byte_printable(i))
			k++;
	return 0x100 + k;
}

/* The byte a GPT-2 character stands for, or -1. */
static int cp_to_byte(uint32_t cp)
{
	unsigned int b, k = 0;

	if (cp < 0x100)
		return byte_printable(cp) ? (int)cp : -1;
	if (cp >= 0x100 + 68)
		return -1;
	for (b = 0; b < 256; b++)
		if (!byte_printable(b) && k++ == cp - 0x100)
			return (int)b;
	return -1;
}

static uint32_t pair_hash(uint32_t l, uint32_t r)
{
	uint64_t h = ((uint64_t)l << 32 | r) * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h >> 32 ^ h);
}

static const struct merge_slot *pair_find(const struct tok_bpe *b, uint32_t l, uint32_t r)
{
	uint32_t i = pair_hash(l, r) & b->pair_mask;

	for (;;) {
		const struct merge_slot *s = &b->pairs[i];

		if (s->left == TOK_NONE)
			return NULL;
		if (s->left == l && s->right == r)
			return s;
		i = (i + 1) & b->pair_mask;
	}
}

static int build_pairs(struct tokenizer *t, const struct tok_vocab *v, char *err, size_t errlen)
{
	struct tok_bpe *b = t->bpe;
	uint64_t size = 16;
	char *cat;
	uint32_t r;

	if (v->n_merges > TOK_MAX_MERGES) {
		snprintf(err, errlen, "%u merges (max %u)", v->n_merges, TOK_MAX_MERGES);
		return -EINVAL;
	}
	if (v->n_merges && !v->merge_lens) {
		snprintf(err, errlen, "merges without lengths");
		return -EINVAL;
	}
	while (size < 2ull * v->n_merges)
		size <<= 1;
	b->pairs = malloc(size * sizeof(*b->pairs));
	cat = malloc(2 * (size_t)t->max_len + 1);
	if (!b->pairs || !cat) {
		free(cat);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memset(b->pairs, 0xff, size * sizeof(*b->pairs));
	b->pair_mask = (uint32_t)(size - 1);

	for (r = 0; r < v->n_merges; r++) {
		const char *m = v->merges[r], *sp;
		uint32_t ml = v->merge_lens[r], l, rt, res, ll, rl, i;

		/* "left right", split at the first space after the first byte */
		sp = ml > 2 && m ? memchr(m + 1, ' ', ml - 2) : NULL;
		if (!sp) {
			snprintf(err, errlen, "merge %u is not \"left right\"", r);
			free(cat);
			return -EINVAL;
		}
		ll = (uint32_t)(sp - m);
		rl = ml - ll - 1;
		if (ll > t->max_len || rl > t->max_len)
			continue;
		l = tok_lookup(t, m, ll);
		rt = tok_lookup(t, sp + 1, rl);
		memcpy(cat, m, ll);
		memcpy(cat + ll, sp + 1, rl);
		res = tok_lookup(t, cat, ll + rl);
		/* a merge whose parts or result are not tokens can never apply */
		if (l == TOK_NONE || rt == TOK_NONE || res == TOK_NONE)
			continue;

		i = pair_hash(l, rt) & b->pair_mask;
		while (b->pairs[i].left != TOK_NONE &&
		       (b->pairs[i].left != l || b->pairs[i].right != rt))
			i = (i + 1) & b->pair_mask;
		if (b->pairs[i].left != TOK_NONE)
			continue;	/* repeated merge: the first rank stays */
		b->pairs[i].left = l;
		b->pairs[i].right = rt;
		b->pairs[i].rank = r;
		b->pairs[i].result = res;
	}
	free(cat);
	return 0;
}

/**
 * tok_bpe_init() - byte-level BPE part of tok_create()
 * @t:      tokenizer being built (texts, map and classes are ready)
 * @v:      the vocabulary
 * @err:    where to describe a failure
 * @errlen: its size
 *
 * Return: 0, -EINVAL (unknown pre-tokenizer, malformed merge), -ENOMEM.
 */
int tok_bpe_init(struct tokenizer *t, const struct tok_vocab *v, char *err, size_t errlen)
{
	struct tok_bpe *b;
	unsigned int i;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->bpe = b;
	b->pre = tok_pretok_create(v->pre, &b->ignore_merges, &b->nfc, err, errlen);
	if (!b->pre)
		return -EINVAL;

	for (i = 0; i < 256; i++) {
		char c[4];
		int n = tok_utf8_put(byte_to_cp(i), c);

		b->byte_tok[i] = tok_lookup(t, c, (size_t)n);
	}
	ret = build_pairs(t, v, err, errlen);
	return ret;
}

/**
 * tok_bpe_free() - free what tok_bpe_init() built
 * @b: BPE state, or NULL
 */
void tok_bpe_free(struct tok_bpe *b)
{
	if (!b)
		return;
	tok_pretok_free(b->pre);
	free(b->pairs);
	free(b);
}

/**
 * tok_bpe_piece() - raw bytes of a normal byte-level BPE token
 * @t:   tokenizer
 * @id:  token
 * @out: room for the token's text length
 *
 * Characters outside the GPT-2 byte map (never in real vocabularies) and
 * invalid UTF-8 are copied as they are.
 *
 * Return: bytes written, at most the token text's length.
 */
int tok_bpe_piece(const struct tokenizer *t, uint32_t id, char *out)
{
	const uint8_t *s = (const uint8_t *)tok_text(t, id);
	uint32_t n = tok_len(t, id), i = 0;
	int o = 0;

	if (tok_utf8_valid_prefix(s, n) < n) {
		memcpy(out, s, n);
		return (int)n;
	}
	while (i < n) {
		unsigned int l;
		int byte = cp_to_byte(tok_utf8_get(s + i, n - i, &l));

		if (byte >= 0) {
			out[o++] = (char)byte;
		} else {
			memcpy(out + o, s + i, l);
			o += (int)l;
		}
		i += l;
	}
	return o;
}

struct bpe_sym {
	int32_t		prev;
	int32_t		next;
	uint32_t	id;		/* TOK_NONE: byte without a token */
	uint32_t	alive;
};

struct bpe_cand {
	uint32_t	rank;
	int32_t		left;
	int32_t		right;
	uint32_t	lid;
	uint32_t	rid;
	uint32_t	result;
};

/* Scratch space for one tok_bpe_encode() call, reused word after word. */
struct bpe_work {
	struct bpe_sym	*sym;
	size_t		sym_cap;
	struct bpe_cand	*heap;
	size_t		heap_n;
	size_t		heap_cap;
	char		*mapped;
	size_t		mapped_cap;
};

static bool cand_before(const struct bpe_cand *a, const struct bpe_cand *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int cand_push(struct bpe_work *w, const struct bpe_cand *x)
{
	size_t i;

	if (w->heap_n == w->heap_cap) {
		size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
		struct bpe_cand *v = realloc(w->heap, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		w->heap = v;
		w->heap_cap = cap;
	}
	i = w->heap_n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!cand_before(x, &w->heap[parent]))
			break;
		w->heap[i] = w->heap[parent];
		i = parent;
	}
	w->heap[i] = *x;
	return 0;
}

static struct bpe_cand cand_pop(struct bpe_work *w)
{
	struct bpe_cand top = w->heap[0], last = w->heap[--w->heap_n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= w->heap_n)
			break;
		if (c + 1 < w->heap_n && cand_before(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!cand_before(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->heap_n)
		w->heap[i] = last;
	return top;
}

static int try_pair(const struct tok_bpe *b, struct bpe_work *w, int32_t l, int32_t r)
{
	const struct merge_slot *m;
	struct bpe_cand c;

	if (l < 0 || r < 0 || w->sym[l].id == TOK_NONE || w->sym[r].id == TOK_NONE)
		return 0;
	m = pair_find(b, w->sym[l].id, w->sym[r].id);
	if (!m)
		return 0;
	c.rank = m->rank;
	c.left = l;
	c.right = r;
	c.lid = m->left;
	c.rid = m->right;
	c.result = m->result;
	return cand_push(w, &c);
}

static int emit_byte(const struct tokenizer *t, uint32_t id, struct tok_ids *out)
{
	if (id != TOK_NONE)
		return tok_ids_push(out, id);
	/* a vocabulary without this byte's token: unk, or nothing (llama.cpp) */
	return t->unk >= 0 ? tok_ids_push(out, (uint32_t)t->unk) : 0;
}

static int bpe_word(const struct tokenizer *t, struct bpe_work *w, const uint8_t *s, size_t n,
		    struct tok_ids *out)
{
	const struct tok_bpe *b = t->bpe;
	size_t i;
	int32_t k;
	int ret;

	if (n == 1)
		return emit_byte(t, b->byte_tok[s[0]], out);

	if (b->ignore_merges && n <= t->max_len) {
		size_t m = 0;
		uint32_t id;

		if (w->mapped_cap < 2 * n) {
			char *p = realloc(w->mapped, 2 * n);

			if (!p)
				return -ENOMEM;
			w->mapped = p;
			w->mapped_cap = 2 * n;
		}
		for (i = 0; i < n; i++)
			m += (size_t)tok_utf8_put(byte_to_cp(s[i]), w->mapped + m);
		id = tok_lookup(t, w->mapped, m);
		if (id != TOK_NONE)
			return tok_ids_push(out, id);
	}

	if (w->sym_cap < n) {
		struct bpe_sym *p = realloc(w->sym, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		w->sym = p;
		w->sym_cap = n;
	}
	for (i = 0; i < n; i++) {
		w->sym[i].prev = (int32_t)i - 1;
		w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
		w->sym[i].id = b->byte_tok[s[i]];
		w->sym[i].alive = 1;
	}
	w->heap_n = 0;
	for (i = 1; i < n; i++) {
		ret = try_pair(b, w, (int32_t)i - 1, (int32_t)i);
		if (ret)
			return ret;
	}
	while (w->heap_n) {
		struct bpe_cand c = cand_pop(w);
		struct bpe_sym *l = &w->sym[c.left], *r = &w->sym[c.right];

		if (!l->alive || !r->alive || l->next != c.right || l->id != c.lid ||
		    r->id != c.rid)
			continue;	/* stale: a neighbour merged first */
		l->id = c.result;
		r->alive = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = c.left;
		ret = try_pair(b, w, l->prev, c.left);
		if (!ret)
			ret = try_pair(b, w, c.left, l->next);
		if (ret)
			return ret;
	}
	for (k = 0; k != -1; k = w->sym[k].next) {
		ret = emit_byte(t, w->sym[k].id, out);
		if (ret)
			return ret;
	}
	return 0;
}

/**
 * tok_bpe_encode() - byte-level-BPE-encode text that holds no special tokens
 * @t:   tokenizer
 * @s:   valid UTF-8 text
 * @n:   its length
 * @out: ids are appended here
 *
 * Return: 0, -ENOMEM, or -EIO when the regex engine gives up.
 */
int tok_bpe_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out)
{
	struct tok_split words = { 0 };
	struct bpe_work w = { 0 };
	char *norm = NULL;
	size_t norm_len, i;
	int ret;

	if (t->bpe->nfc) {
		ret = tok_nfc(s, n, &norm, &norm_len);
		if (ret)
			return ret;
		if (norm) {
			s = norm;
			n = norm_len;
		}
	}
	ret = tok_pretok_split(t->bpe->pre, s, n, &words);
	for (i = 0; !ret && i < words.n; i++)
		ret = bpe_word(t, &w, (const uint8_t *)s + words.off[i], words.len[i], out);

	tok_split_free(&words);
	free(w.sym);
	free(w.heap);
	free(w.mapped);
	free(norm);
	return ret;
}
