/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tokenizers built from a model's vocabulary (as GGUF stores it):
 * SentencePiece-style BPE with scores and byte fallback ("llama"), and
 * byte-level BPE with merges and a named pre-tokenizer ("gpt2").  Encoding
 * and decoding match the reference tokenizers id for id.
 */
#ifndef LLMQD_TOKENIZER_H
#define LLMQD_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tok_model {
	TOK_MODEL_SPM,		/* tokenizer.ggml.model = "llama" */
	TOK_MODEL_BPE,		/* tokenizer.ggml.model = "gpt2" */
};

/* GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
enum tok_type {
	TOK_TYPE_UNDEFINED	= 0,
	TOK_TYPE_NORMAL		= 1,
	TOK_TYPE_UNKNOWN	= 2,
	TOK_TYPE_CONTROL	= 3,
	TOK_TYPE_USER_DEFINED	= 4,
	TOK_TYPE_UNUSED		= 5,
	TOK_TYPE_BYTE		= 6,
};

/**
 * struct tok_vocab - everything a tokenizer is built from
 * @model:	TOK_MODEL_*
 * @pre:	pre-tokenizer name for BPE (tokenizer.ggml.pre: "llama-bpe"
 *		(also "llama3", "llama-v3"), "qwen2" (which also normalizes
 *		to NFC, as Qwen's tokenizer.json does), "gpt2", "default";
 *		NULL means "default"; others are refused), NULL for SPM
 * @n_tokens:	vocabulary size
 * @tokens:	token texts as stored in GGUF (SPM: with U+2581 for spaces and
 *		<0xXX> byte tokens; BPE: GPT-2 byte-to-unicode mapped)
 * @token_lens:	their byte lengths (texts are not NUL-terminated)
 * @scores:	SPM merge scores (NULL: all 0), NULL for BPE
 * @types:	enum tok_type per token, or NULL (all normal)
 * @n_merges:	BPE merges ("left right", highest priority first; a merge
 *		whose parts or result are not tokens is ignored)
 * @merges:	merge texts
 * @merge_lens:	their byte lengths
 * @bos:	begin-of-sequence id, or -1
 * @eos:	end-of-sequence id, or -1
 * @unk:	unknown id, or -1
 * @add_bos:	encode() with add_special prepends @bos
 * @add_eos:	encode() with add_special appends @eos
 * @add_space_prefix: SPM: prepend a space to the text (default true)
 */
struct tok_vocab {
	enum tok_model	model;
	const char	*pre;
	uint32_t	n_tokens;
	const char *const *tokens;
	const uint32_t	*token_lens;
	const float	*scores;
	const int32_t	*types;
	uint32_t	n_merges;
	const char *const *merges;
	const uint32_t	*merge_lens;
	int32_t		bos;
	int32_t		eos;
	int32_t		unk;
	bool		add_bos;
	bool		add_eos;
	bool		add_space_prefix;
};

struct tokenizer;

/**
 * struct tok_stream - streaming decode state: bytes of an incomplete UTF-8
 * character held back until the token that completes it arrives; zero it
 * before the first token (@nr_pending is at most 3)
 */
struct tok_stream {
	char		pending[8];
	uint32_t	nr_pending;
};

/*
 * All functions are in runtime/tokenizer.c, with kernel-doc there.  A built
 * tokenizer is immutable: any number of threads may use one at once.  Errors
 * are negative errnos: -EINVAL for NULL or out-of-range arguments (ids not
 * in the vocabulary included), -ENOSPC for a buffer too small, -E2BIG for a
 * text over 1 GiB, -ENOMEM.
 */

/* NULL and a message in @err on a bad vocabulary; @v is copied. */
struct tokenizer *tok_create(const struct tok_vocab *v, char *err, size_t errlen);
void tok_free(struct tokenizer *t);
/*
 * *@ids is malloc'ed (free() it).  Invalid UTF-8 becomes U+FFFD first, as the
 * reference tokenizers' TextDecoder does.  @parse_special: control tokens
 * written in the text are those tokens (user-defined ones always are).
 */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_special,
	       bool parse_special, uint32_t **ids, size_t *n_ids);
/* Raw bytes of one token (a byte token: one byte); length, or -ENOSPC. */
int tok_piece(const struct tokenizer *t, uint32_t id, char *buf, size_t len);
/*
 * *@text is malloc'ed, NUL-terminated, valid UTF-8 (free() it).  SPM: the
 * space that encoding put in front of the text is removed.
 */
int tok_decode(const struct tokenizer *t, const uint32_t *ids, size_t n, bool skip_special,
	       char **text, size_t *len);
/*
 * Bytes written to @out: whole characters only, an unfinished one is held in
 * @st until complete; a control token (EOS) flushes it as U+FFFD.
 */
int tok_stream_next(const struct tokenizer *t, struct tok_stream *st, uint32_t id,
		    char *out, size_t cap);

#endif /* LLMQD_TOKENIZER_H */
