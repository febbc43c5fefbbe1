/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the tokenizer's files share: the built tokenizer, its token-text hash,
 * the growable id vector, and the entry points of the model-specific files
 * (SentencePiece in tokenizer_spm.c, byte-level BPE in tokenizer_bpe.c, the
 * BPE pre-tokenizer in tokenizer_pretok.c, UTF-8 and NFC in tokenizer_utf8.c).
 * Not part of the runtime's API: only runtime/tokenizer*.c include it.
 */
#ifndef LLMQD_TOKENIZER_IMPL_H
#define LLMQD_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Limits on what tok_create() accepts from a (possibly hostile) model file. */
#define TOK_MAX_TOKENS		(1u << 23)
#define TOK_MAX_TOKEN_LEN	(1u << 16)
#define TOK_MAX_MERGES		(1u << 24)
#define TOK_MAX_TEXT_BYTES	(1u << 30)	/* all token texts together */
/* Longest text tok_encode() takes: ids and offsets stay in 32 bits. */
#define TOK_MAX_INPUT		((size_t)1 << 30)

#define TOK_NONE		UINT32_MAX	/* "no token" in id-valued slots */

/* Token classes as the encoder and decoder see them. */
enum tok_class {
	TOK_CLASS_TEXT,		/* normal: merged into and decoded as text */
	TOK_CLASS_BYTE,		/* SPM <0xXX>: one raw byte */
	TOK_CLASS_CONTROL,	/* control/unknown: parsed only on request, skippable */
	TOK_CLASS_USER,		/* user-defined: always parsed, decoded verbatim */
	TOK_CLASS_UNUSED,	/* never produced, decodes to nothing */
};

/**
 * struct tok_strhash - open-addressing map from token text to id
 * @slot:	id + 1 per slot, 0 for empty; linear probing
 * @mask:	number of slots - 1 (a power of two)
 */
struct tok_strhash {
	uint32_t	*slot;
	uint32_t	mask;
};

/**
 * struct tok_ids - growable vector of token ids (the encoder's output)
 * @v:		the ids
 * @n:		how many are used
 * @cap:	how many fit
 */
struct tok_ids {
	uint32_t	*v;
	size_t		n;
	size_t		cap;
};

struct tok_bpe;

/**
 * struct tokenizer - a tokenizer built by tok_create(); immutable afterwards,
 * so any number of threads may encode and decode with it at once
 * @model:	TOK_MODEL_*
 * @n_tokens:	vocabulary size
 * @text:	all token texts back to back (GGUF form)
 * @off:	@n_tokens + 1 offsets into @text
 * @cls:	enum tok_class per token
 * @score:	SPM merge score per token (NaN replaced by -inf)
 * @map:	token text -> id (the last of equal texts wins, as in llama.cpp)
 * @max_len:	longest token text in bytes
 * @piece:	decoded bytes of every token back to back (what tok_piece gives)
 * @piece_off:	@n_tokens + 1 offsets into @piece
 * @special:	ids of the control, unknown and user-defined tokens matched in
 *		input text, grouped by first byte, longest first in each group
 * @n_special:	how many
 * @special_at: index into @special of each first byte's group (257 entries)
 * @byte_id:	SPM: token for each raw byte (<0xXX>, else the byte as text,
 *		else unk), TOK_NONE if none
 * @spm_ws_cut:	SPM: no token has U+2581 after another character, so text
 *		can be merged word by word, cut before each U+2581 that
 *		follows another character
 * @bpe:	BPE state (merges, byte map, pre-tokenizer), NULL for SPM
 * @bos, @eos, @unk, @add_bos, @add_eos, @add_space_prefix: from the vocab
 */
struct tokenizer {
	enum tok_model	model;
	uint32_t	n_tokens;
	char		*text;
	uint32_t	*off;
	uint8_t		*cls;
	float		*score;
	struct tok_strhash map;
	uint32_t	max_len;
	char		*piece;
	uint32_t	*piece_off;
	uint32_t	*special;
	uint32_t	n_special;
	uint32_t	special_at[257];
	uint32_t	byte_id[256];
	bool		spm_ws_cut;
	struct tok_bpe	*bpe;
	int32_t		bos;
	int32_t		eos;
	int32_t		unk;
	bool		add_bos;
	bool		add_eos;
	bool		add_space_prefix;
};

static inline const char *tok_text(const struct tokenizer *t, uint32_t id)
{
	return t->text + t->off[id];
}

static inline uint32_t tok_len(const struct tokenizer *t, uint32_t id)
{
	return t->off[id + 1] - t->off[id];
}

/* tokenizer.c */
uint64_t tok_hash_bytes(const void *p, size_t n);
uint32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n);
int tok_ids_push(struct tok_ids *o, uint32_t id);

/* tokenizer_utf8.c */
size_t tok_utf8_valid_prefix(const uint8_t *s, size_t n);
size_t tok_utf8_repair(const uint8_t *s, size_t n, char *out, bool hold_tail,
		       size_t *consumed);
unsigned int tok_utf8_len(uint8_t lead);
int tok_utf8_put(uint32_t cp, char *out);
uint32_t tok_utf8_get(const uint8_t *s, size_t n, unsigned int *len);
int tok_nfc(const char *s, size_t n, char **out, size_t *out_len);

/* tokenizer_spm.c */
int tok_spm_init(struct tokenizer *t, const struct tok_vocab *v, char *err, size_t errlen);
int tok_spm_encode(const struct tokenizer *t, const char *s, size_t n, bool prefix_space,
		   struct tok_ids *out);

/* tokenizer_bpe.c */
int tok_bpe_init(struct tokenizer *t, const struct tok_vocab *v, char *err, size_t errlen);
void tok_bpe_free(struct tok_bpe *b);
int tok_bpe_encode(const struct tokenizer *t, const char *s, size_t n, struct tok_ids *out);
int tok_bpe_piece(const struct tokenizer *t, uint32_t id, char *out);

/* tokenizer_pretok.c: regex pre-tokenizers by their GGUF name */
struct tok_pretok;

/**
 * struct tok_split - one pre-tokenizer run's output: word boundaries
 * @off:	start of each word in the text
 * @len:	its length
 * @n:		number of words
 * @cap:	capacity of @off and @len
 */
struct tok_split {
	uint32_t	*off;
	uint32_t	*len;
	size_t		n;
	size_t		cap;
};

struct tok_pretok *tok_pretok_create(const char *name, bool *ignore_merges, bool *nfc,
				     char *err, size_t errlen);
void tok_pretok_free(struct tok_pretok *p);
int tok_pretok_split(const struct tok_pretok *p, const char *s, size_t n,
		     struct tok_split *out);
void tok_split_free(struct tok_split *sp);

#endif /* LLMQD_TOKENIZER_IMPL_H */
