// SPDX-License-Identifier: GPL-2.0
/*
 * The tokenizer's public face: builds a tokenizer from a model's vocabulary
 * (validating everything, since it comes from a model file), splits input
 * text at special tokens before handing the pieces in between to the
 * SentencePiece or byte-level BPE encoder, and turns ids back into text —
 * whole sequences, single pieces, and a stream that never cuts a UTF-8
 * character in two.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/**
 * tok_hash_bytes() - hash of a byte string (token texts, merge pairs)
 * @p: bytes
 * @n: their number
 *
 * Return: a 64-bit hash.
 */
uint64_t tok_hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
	uint64_t w;

	while (n >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		s += 8;
		n -= 8;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0x94d049bb133111ebull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

/**
 * tok_lookup() - id of the token whose text is exactly @s
 * @t: tokenizer
 * @s: text
 * @n: its length
 *
 * Return: the id, or TOK_NONE.
 */
uint32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
	uint32_t i, id;

	if (!n || n > t->max_len)
		return TOK_NONE;
	i = (uint32_t)tok_hash_bytes(s, n) & t->map.mask;
	while ((id = t->map.slot[i]) != 0) {
		id--;
		if (tok_len(t, id) == n && !memcmp(tok_text(t, id), s, n))
			return id;
		i = (i + 1) & t->map.mask;
	}
	return TOK_NONE;
}

/**
 * tok_ids_push() - append an id to the encoder's output
 * @o:  output vector
 * @id: token id
 *
 * Return: 0 or -ENOMEM.
 */
int tok_ids_push(struct tok_ids *o, uint32_t id)
{
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint32_t *v = realloc(o->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = id;
	return 0;
}

static int build_map(struct tokenizer *t)
{
	uint64_t size = 16;
	uint32_t id;

	while (size < 2ull * t->n_tokens)
		size <<= 1;
	t->map.slot = calloc(size, sizeof(*t->map.slot));
	if (!t->map.slot)
		return -ENOMEM;
	t->map.mask = (uint32_t)(size - 1);

	for (id = 0; id < t->n_tokens; id++) {
		uint32_t n = tok_len(t, id), i, cur;
		const char *s = tok_text(t, id);

		if (!n)
			continue;
		i = (uint32_t)tok_hash_bytes(s, n) & t->map.mask;
		while ((cur = t->map.slot[i]) != 0) {
			cur--;
			if (tok_len(t, cur) == n && !memcmp(tok_text(t, cur), s, n))
				break;	/* same text: the later id wins */
			i = (i + 1) & t->map.mask;
		}
		t->map.slot[i] = id + 1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* "<0xXX>": SentencePiece's byte-fallback token */
static bool is_byte_token(const char *s, uint32_t n)
{
	return n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' &&
	       hexval(s[3]) >= 0 && hexval(s[4]) >= 0;
}

static uint8_t class_of(const struct tok_vocab *v, uint32_t id)
{
	int32_t type = v->types ? v->types[id] : TOK_TYPE_NORMAL;

	switch (type) {
	case TOK_TYPE_CONTROL:
	case TOK_TYPE_UNKNOWN:
		return TOK_CLASS_CONTROL;
	case TOK_TYPE_USER_DEFINED:
		return TOK_CLASS_USER;
	case TOK_TYPE_UNUSED:
		return TOK_CLASS_UNUSED;
	case TOK_TYPE_BYTE:
		if (v->model == TOK_MODEL_SPM && is_byte_token(v->tokens[id], v->token_lens[id]))
			return TOK_CLASS_BYTE;
		return TOK_CLASS_TEXT;
	default:
		return TOK_CLASS_TEXT;
	}
}

static int check_vocab(const struct tok_vocab *v, char *err, size_t errlen)
{
	uint64_t total = 0;
	uint32_t i;

	if (v->model != TOK_MODEL_SPM && v->model != TOK_MODEL_BPE) {
		set_err(err, errlen, "unknown tokenizer model %d", (int)v->model);
		return -EINVAL;
	}
	if (!v->n_tokens || v->n_tokens > TOK_MAX_TOKENS) {
		set_err(err, errlen, "vocabulary size %u out of range (1..%u)",
			v->n_tokens, TOK_MAX_TOKENS);
		return -EINVAL;
	}
	if (!v->tokens || !v->token_lens) {
		set_err(err, errlen, "vocabulary without token texts");
		return -EINVAL;
	}
	for (i = 0; i < v->n_tokens; i++) {
		if (v->token_lens[i] > TOK_MAX_TOKEN_LEN) {
			set_err(err, errlen, "token %u is %u bytes long (max %u)", i,
				v->token_lens[i], TOK_MAX_TOKEN_LEN);
			return -EINVAL;
		}
		if (v->token_lens[i] && !v->tokens[i]) {
			set_err(err, errlen, "token %u has no text", i);
			return -EINVAL;
		}
		if (v->types && (v->types[i] < TOK_TYPE_UNDEFINED || v->types[i] > TOK_TYPE_BYTE)) {
			set_err(err, errlen, "token %u has unknown type %d", i, v->types[i]);
			return -EINVAL;
		}
		total += v->token_lens[i];
	}
	if (total > TOK_MAX_TEXT_BYTES) {
		set_err(err, errlen, "token texts total %llu bytes (max %u)",
			(unsigned long long)total, TOK_MAX_TEXT_BYTES);
		return -EINVAL;
	}
	if ((v->bos < -1 || v->bos >= (int64_t)v->n_tokens) ||
	    (v->eos < -1 || v->eos >= (int64_t)v->n_tokens) ||
	    (v->unk < -1 || v->unk >= (int64_t)v->n_tokens)) {
		set_err(err, errlen, "bos %d, eos %d or unk %d outside the vocabulary of %u",
			v->bos, v->eos, v->unk, v->n_tokens);
		return -EINVAL;
	}
	if ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0)) {
		set_err(err, errlen, "add_bos/add_eos set without a bos/eos token");
		return -EINVAL;
	}
	if (v->model == TOK_MODEL_BPE && v->n_merges && !v->merges) {
		set_err(err, errlen, "%u merges announced, none given", v->n_merges);
		return -EINVAL;
	}
	return 0;
}

static int copy_texts(struct tokenizer *t, const struct tok_vocab *v)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < v->n_tokens; i++)
		total += v->token_lens[i];
	t->text = malloc(total ? total : 1);
	t->off = malloc((v->n_tokens + 1ull) * sizeof(*t->off));
	t->cls = malloc(v->n_tokens);
	if (!t->text || !t->off || !t->cls)
		return -ENOMEM;

	total = 0;
	for (i = 0; i < v->n_tokens; i++) {
		t->off[i] = (uint32_t)total;
		if (v->token_lens[i])
			memcpy(t->text + total, v->tokens[i], v->token_lens[i]);
		total += v->token_lens[i];
		if (v->token_lens[i] > t->max_len)
			t->max_len = v->token_lens[i];
		t->cls[i] = class_of(v, i);
	}
	t->off[i] = (uint32_t)total;
	return 0;
}

/* Control, unknown and user-defined tokens: found in input text whole. */
static int build_specials(struct tokenizer *t)
{
	uint32_t id, n = 0, b, *fill;

	for (id = 0; id < t->n_tokens; id++)
		if ((t->cls[id] == TOK_CLASS_CONTROL || t->cls[id] == TOK_CLASS_USER) &&
		    tok_len(t, id))
			n++;
	t->special = malloc((n ? n : 1) * sizeof(*t->special));
	fill = calloc(257, sizeof(*fill));
	if (!t->special || !fill) {
		free(fill);
		return -ENOMEM;
	}
	t->n_special = n;

	/* counting sort by first byte */
	memset(t->special_at, 0, sizeof(t->special_at));
	for (id = 0; id < t->n_tokens; id++)
		if ((t->cls[id] == TOK_CLASS_CONTROL || t->cls[id] == TOK_CLASS_USER) &&
		    tok_len(t, id))
			t->special_at[(uint8_t)tok_text(t, id)[0] + 1]++;
	for (b = 1; b <= 256; b++)
		t->special_at[b] += t->special_at[b - 1];
	memcpy(fill, t->special_at, 257 * sizeof(*fill));
	for (id = 0; id < t->n_tokens; id++) {
		if ((t->cls[id] == TOK_CLASS_CONTROL || t->cls[id] == TOK_CLASS_USER) &&
		    tok_len(t, id)) {
			uint32_t at = fill[(uint8_t)tok_text(t, id)[0]]++;

			/* insertion into the group: longest first */
			while (at > t->special_at[(uint8_t)tok_text(t, id)[0]] &&
			       tok_len(t, t->special[at - 1]) < tok_len(t, id)) {
				t->special[at] = t->special[at - 1];
				at--;
			}
			t->special[at] = id;
		}
	}
	free(fill);
	return 0;
}

static int build_pieces(struct tokenizer *t)
{
	uint32_t id;
	size_t o = 0;

	t->piece = malloc(t->off[t->n_tokens] ? t->off[t->n_tokens] : 1);
	t->piece_off = malloc((t->n_tokens + 1ull) * sizeof(*t->piece_off));
	if (!t->piece || !t->piece_off)
		return -ENOMEM;

	for (id = 0; id < t->n_tokens; id++) {
		const char *s = tok_text(t, id);
		uint32_t n = tok_len(t, id), i;

		t->piece_off[id] = (uint32_t)o;
		switch (t->cls[id]) {
		case TOK_CLASS_UNUSED:
			break;
		case TOK_CLASS_BYTE:
			t->piece[o++] = (char)(hexval(s[3]) << 4 | hexval(s[4]));
			break;
		case TOK_CLASS_CONTROL:
		case TOK_CLASS_USER:
			memcpy(t->piece + o, s, n);
			o += n;
			break;
		default:
			if (t->model == TOK_MODEL_BPE) {
				o += tok_bpe_piece(t, id, t->piece + o);
				break;
			}
			/* SPM: U+2581 stands for a space */
			for (i = 0; i < n; i++) {
				if (i + 2 < n && !memcmp(s + i, "\xe2\x96\x81", 3)) {
					t->piece[o++] = ' ';
					i += 2;
				} else {
					t->piece[o++] = s[i];
				}
			}
			break;
		}
	}
	t->piece_off[id] = (uint32_t)o;
	return 0;
}

/**
 * tok_create() - build a tokenizer from a vocabulary
 * @v:      the vocabulary; copied, so it may go away afterwards
 * @err:    where to describe a failure (may be NULL)
 * @errlen: size of @err
 *
 * Everything in @v is checked as hostile input: sizes, ids, token types,
 * merge syntax, the pre-tokenizer name.
 *
 * Return: the tokenizer (free with tok_free()), or NULL with @err filled in.
 */
struct tokenizer *tok_create(const struct tok_vocab *v, char *err, size_t errlen)
{
	struct tokenizer *t;
	uint32_t i;

	if (!v) {
		set_err(err, errlen, "no vocabulary");
		return NULL;
	}
	if (check_vocab(v, err, errlen))
		return NULL;

	t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->model = v->model;
	t->n_tokens = v->n_tokens;
	t->bos = v->bos;
	t->eos = v->eos;
	t->unk = v->unk;
	t->add_bos = v->add_bos;
	t->add_eos = v->add_eos;
	t->add_space_prefix = v->model == TOK_MODEL_SPM && v->add_space_prefix;

	if (copy_texts(t, v) || build_map(t) || build_specials(t))
		goto nomem;

	if (t->model == TOK_MODEL_SPM) {
		t->score = malloc(t->n_tokens * sizeof(*t->score));
		if (!t->score)
			goto nomem;
		for (i = 0; i < t->n_tokens; i++) {
			float s = v->scores ? v->scores[i] : 0.0f;

			t->score[i] = isnan(s) ? -INFINITY : s;
		}
		if (tok_spm_init(t, v, err, errlen))
			goto fail;
	} else {
		if (tok_bpe_init(t, v, err, errlen))
			goto fail;
	}
	if (build_pieces(t))
		goto nomem;
	return t;

nomem:
	set_err(err, errlen, "out of memory");
fail:
	tok_free(t);
	return NULL;
}

/**
 * tok_free() - free a tokenizer
 * @t: tokenizer from tok_create(), or NULL
 */
void tok_free(struct tokenizer *t)
{
	if (!t)
		return;
	tok_bpe_free(t->bpe);
	free(t->text);
	free(t->off);
	free(t->cls);
	free(t->score);
	free(t->map.slot);
	free(t->piece);
	free(t->piece_off);
	free(t->special);
	free(t);
}

/* Longest special token starting at @s, or TOK_NONE. */
static uint32_t match_special(const struct tokenizer *t, const char *s, size_t n,
			      bool parse_special, uint32_t *mlen)
{
	uint8_t b = (uint8_t)s[0];
	uint32_t i;

	for (i = t->special_at[b]; i < t->special_at[b + 1]; i++) {
		uint32_t id = t->special[i], l = tok_len(t, id);

		if (!parse_special && t->cls[id] == TOK_CLASS_CONTROL)
			continue;
		if (l <= n && !memcmp(s, tok_text(t, id), l)) {
			*mlen = l;
			return id;
		}
	}
	return TOK_NONE;
}

/*
 * Text between special tokens.  SentencePiece prefixes every such stretch
 * with a space (llama.cpp: the start of the text and whatever follows a
 * special token; stretches never follow each other).
 */
static int encode_text(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out)
{
	if (t->model == TOK_MODEL_SPM)
		return tok_spm_encode(t, s, n, t->add_space_prefix, out);
	return tok_bpe_encode(t, s, n, out);
}

/**
 * tok_encode() - text to token ids
 * @t:             tokenizer
 * @text:          UTF-8 text (may be NULL when @len is 0)
 * @len:           its length in bytes, at most 1 GiB (also after invalid
 *                 bytes are replaced)
 * @add_special:   add BOS/EOS as the vocabulary asks (add_bos, add_eos)
 * @parse_special: match control tokens written in the text (e.g.
 *                 "<|eot_id|>") as those tokens; user-defined tokens are
 *                 matched always, as llama.cpp does
 * @ids:           where to store the malloc'ed ids (free() them)
 * @n_ids:         where to store their number
 *
 * Invalid UTF-8 in @text is first replaced by U+FFFD (one per maximal
 * ill-formed subpart), as the reference tokenizers see such input through
 * TextDecoder.  With SentencePiece, the text and every stretch that follows a
 * special token get a leading space when the vocabulary asks for it.
 * Byte-level BPE with the "qwen2" pre-tokenizer normalizes text to NFC, as
 * the Qwen2/3 tokenizer.json does.
 *
 * Return: 0; -EINVAL for NULL arguments, -E2BIG for too long a text, -ENOMEM,
 * -EILSEQ when a byte has no token (vocabulary without byte tokens or unk).
 * On error *@ids is NULL and *@n_ids 0.
 */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
	       bool parse_special, uint32_t **ids, size_t *n_ids)
{
	struct tok_ids out = { 0 };
	char *fixed = NULL;
	const char *s = text;
	size_t n = len, pos, start;
	int ret;

	if (!ids || !n_ids)
		return -EINVAL;
	*ids = NULL;
	*n_ids = 0;
	if (!t || (!text && len))
		return -EINVAL;
	if (len > TOK_MAX_INPUT)
		return -E2BIG;

	if (tok_utf8_valid_prefix((const uint8_t *)text, len) < len) {
		fixed = malloc(3 * len);
		if (!fixed)
			return -ENOMEM;
		n = tok_utf8_repair((const uint8_t *)text, len, fixed, false, NULL);
		s = fixed;
		ret = -E2BIG;	/* offsets inside the encoders stay 32-bit */
		if (n > TOK_MAX_INPUT)
			goto fail;
	}

	out.cap = (n < (1u << 22) ? n : (1u << 22)) / 4 + 16;
	out.v = malloc(out.cap * sizeof(*out.v));
	ret = -ENOMEM;
	if (!out.v)
		goto fail;

	if (add_special && t->add_bos) {
		ret = tok_ids_push(&out, (uint32_t)t->bos);
		if (ret)
			goto fail;
	}

	for (pos = start = 0; pos < n; ) {
		uint32_t id = TOK_NONE, mlen = 0;

		if (t->special_at[(uint8_t)s[pos]] != t->special_at[(uint8_t)s[pos] + 1])
			id = match_special(t, s + pos, n - pos, parse_special, &mlen);
		if (id == TOK_NONE) {
			pos++;
			continue;
		}
		if (pos > start) {
			ret = encode_text(t, s + start, pos - start, &out);
			if (ret)
				goto fail;
		}
		ret = tok_ids_push(&out, id);
		if (ret)
			goto fail;
		pos += mlen;
		start = pos;
	}
	if (start < n) {
		ret = encode_text(t, s + start, n - start, &out);
		if (ret)
			goto fail;
	}

	if (add_special && t->add_eos) {
		ret = tok_ids_push(&out, (uint32_t)t->eos);
		if (ret)
			goto fail;
	}
	free(fixed);
	*ids = out.v;
	*n_ids = out.n;
	return 0;

fail:
	free(out.v);
	free(fixed);
	return ret;
}

/**
 * tok_piece() - the bytes one token stands for
 * @t:   tokenizer
 * @id:  token id
 * @buf: destination (not NUL-terminated); NULL with @len 0 asks for the size
 * @len: its size
 *
 * Normal tokens give their text (SentencePiece: U+2581 as a space; byte-level
 * BPE: the raw bytes), byte tokens their one byte — possibly part of a UTF-8
 * character —, control and user-defined tokens their text verbatim, unused
 * tokens nothing.
 *
 * Return: number of bytes; -ENOSPC if @len is too small (nothing written);
 * -EINVAL for a bad @t, @buf or @id.
 */
int tok_piece(const struct tokenizer *t, uint32_t id, char *buf, size_t len)
{
	uint32_t n;

	if (!t || id >= t->n_tokens || (!buf && len))
		return -EINVAL;
	n = t->piece_off[id + 1] - t->piece_off[id];
	if (!buf)
		return (int)n;
	if (len < n)
		return -ENOSPC;
	memcpy(buf, t->piece + t->piece_off[id], n);
	return (int)n;
}

/**
 * tok_decode() - token ids to text
 * @t:            tokenizer
 * @ids:          token ids (may be NULL when @n is 0)
 * @n:            their number
 * @skip_special: leave out control (and unknown) tokens
 * @text:         where to store the malloc'ed, NUL-terminated text (free() it)
 * @len:          where to store its length without the NUL
 *
 * The result is always valid UTF-8: bytes that do not form characters become
 * U+FFFD as in the references' TextDecoder.  Control and user-defined tokens
 * end a run of bytes (an unfinished character before one is replaced).
 * With SentencePiece and add_space_prefix, one leading space of the whole
 * text is removed: the one encoding put there.  Decoding a sequence in parts
 * thus loses spaces; use tok_stream_next() for generated text.
 *
 * Return: 0; -EINVAL for NULL arguments or an id outside the vocabulary;
 * -E2BIG when the text would pass 1 GiB; -ENOMEM.  On error *@text is NULL
 * and *@len 0.
 */
int tok_decode(const struct tokenizer *t, const uint32_t *ids, size_t n, bool skip_special,
	       char **text, size_t *len)
{
	size_t total = 0, i, o = 0, run = 0;
	char *out, *raw;

	if (!text || !len)
		return -EINVAL;
	*text = NULL;
	*len = 0;
	if (!t || (!ids && n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (ids[i] >= t->n_tokens)
			return -EINVAL;
		total += t->piece_off[ids[i] + 1] - t->piece_off[ids[i]];
		if (total > TOK_MAX_INPUT)
			return -E2BIG;
	}

	out = malloc(3 * total + 1);
	raw = malloc(total ? total : 1);
	if (!out || !raw) {
		free(out);
		free(raw);
		return -ENOMEM;
	}

	for (i = 0; i < n; i++) {
		uint32_t id = ids[i];
		const char *p = t->piece + t->piece_off[id];
		uint32_t pn = t->piece_off[id + 1] - t->piece_off[id];

		switch (t->cls[id]) {
		case TOK_CLASS_UNUSED:
			continue;
		case TOK_CLASS_TEXT:
		case TOK_CLASS_BYTE:
			memcpy(raw + run, p, pn);
			run += pn;
			continue;
		default:
			break;
		}
		o += tok_utf8_repair((uint8_t *)raw, run, out + o, false, NULL);
		run = 0;
		if (t->cls[id] == TOK_CLASS_CONTROL && skip_special)
			continue;
		/* verbatim, but a model file's text is not trusted to be UTF-8 */
		o += tok_utf8_repair((const uint8_t *)p, pn, out + o, false, NULL);
	}
	o += tok_utf8_repair((uint8_t *)raw, run, out + o, false, NULL);
	free(raw);

	if (t->add_space_prefix && o && out[0] == ' ') {
		memmove(out, out + 1, o - 1);
		o--;
	}
	out[o] = '\0';
	*text = out;
	*len = o;
	return 0;
}

/**
 * tok_stream_next() - text for the next generated token, UTF-8 safe
 * @t:   tokenizer
 * @st:  stream state, zeroed before the first token
 * @id:  the token
 * @out: destination (not NUL-terminated)
 * @cap: its size; 3 * (3 + the token's tok_piece() length) always suffices
 *
 * Emits every complete character as soon as its last byte arrives and holds
 * back an unfinished one (at most 3 bytes) in @st: a character split over
 * byte tokens comes out once, whole.  Bytes that cannot become a character
 * come out as U+FFFD.  Control tokens (EOS, end of turn, ...) produce no text
 * but flush what is held back (as U+FFFD, since nothing can finish it);
 * user-defined tokens flush it and then give their text.  No leading space is
 * removed: streamed text continues the prompt.  The concatenated output of a
 * sequence thus equals tok_decode(skip_special=true) of it, less that
 * function's SentencePiece leading-space removal.
 *
 * Return: bytes written to @out; -ENOSPC if @cap is too small (@st is then
 * unchanged); -EINVAL for a bad @t, @st, @out or @id, or a corrupt @st;
 * -ENOMEM (only for pieces over 60 bytes).
 */
int tok_stream_next(const struct tokenizer *t, struct tok_stream *st, uint32_t id,
		    char *out, size_t cap)
{
	uint8_t small[64], *buf = small;
	const char *p;
	uint32_t pn;
	size_t n, need, used, o;
	int cls;

	if (!t || !st || (!out && cap) || id >= t->n_tokens || st->nr_pending > 3)
		return -EINVAL;
	cls = t->cls[id];
	if (cls == TOK_CLASS_UNUSED)
		return 0;
	p = t->piece + t->piece_off[id];
	pn = t->piece_off[id + 1] - t->piece_off[id];

	if (cls == TOK_CLASS_CONTROL || cls == TOK_CLASS_USER) {
		need = tok_utf8_repair((uint8_t *)st->pending, st->nr_pending, NULL, false, NULL);
		if (cls == TOK_CLASS_USER)
			need += tok_utf8_repair((const uint8_t *)p, pn, NULL, false, NULL);
		if (need > cap)
			return -ENOSPC;
		o = tok_utf8_repair((uint8_t *)st->pending, st->nr_pending, out, false, NULL);
		if (cls == TOK_CLASS_USER)
			o += tok_utf8_repair((const uint8_t *)p, pn, out + o, false, NULL);
		st->nr_pending = 0;
		return (int)o;
	}

	n = st->nr_pending + pn;
	if (n > sizeof(small)) {
		buf = malloc(n);
		if (!buf)
			return -ENOMEM;
	}
	memcpy(buf, st->pending, st->nr_pending);
	memcpy(buf + st->nr_pending, p, pn);

	need = tok_utf8_repair(buf, n, NULL, true, &used);
	if (need > cap) {
		if (buf != small)
			free(buf);
		return -ENOSPC;
	}
	o = tok_utf8_repair(buf, n, out, true, &used);
	st->nr_pending = (uint32_t)(n - used);
	memcpy(st->pending, buf + used, n - used);
	if (buf != small)
		free(buf);
	return (int)o;
}
