// SPDX-License-Identifier: GPL-2.0
/*
 * tokenizer.json (Hugging Face tokenizers) to GGUF tokenizer metadata, as
 * llama.cpp's converter does: byte-level BPE becomes "gpt2" with its merges
 * and the pre-tokenizer named by its regex; BPE with byte fallback becomes
 * "llama" with scores from merge ranks; added tokens become control or
 * user-defined tokens.  Parsed with json-c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "hf_tokenizer.h"
#include "tokenizer.h"

/* The pre-tokenizer regexes llama.cpp knows by name. */
static const struct {
	const char *name;
	const char *regex;
} known_pre[] = {
	{ "llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
		       "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
	{ "qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
		   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
};

static const char *const eos_names[] = {
	"<|end_of_text|>", "<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", NULL,
};

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return NULL;
	return v;
}

static const char *get_str(json_object *o, const char *k)
{
	json_object *v = get(o, k);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Does this (possibly Sequence) component contain a part of @type? */
static json_object *find_type(json_object *o, const char *type)
{
	json_object *seq;
	const char *t = get_str(o, "type");
	size_t i;

	if (!o)
		return NULL;
	if (t && !strcmp(t, type))
		return o;
	seq = get(o, "pretokenizers");
	if (!seq)
		seq = get(o, "processors");
	if (!seq)
		seq = get(o, "decoders");
	if (!seq)
		seq = get(o, "normalizers");
	if (!seq || !json_object_is_type(seq, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(seq); i++) {
		json_object *r = find_type(json_object_array_get_idx(seq, i), type);

		if (r)
			return r;
	}
	return NULL;
}

static int set_token(struct hf_tokenizer *t, int64_t id, const char *s, size_t len)
{
	if (id < 0 || id >= t->n)
		return -EINVAL;
	free(t->tokens[id]);
	t->tokens[id] = malloc(len + 1);
	if (!t->tokens[id])
		return -ENOMEM;
	memcpy(t->tokens[id], s, len);
	t->tokens[id][len] = '\0';
	t->lens[id] = (uint32_t)len;
	return 0;
}

static int alloc_vocab(struct hf_tokenizer *t, uint32_t n)
{
	t->n = n;
	t->tokens = calloc(n, sizeof(*t->tokens));
	t->lens = calloc(n, sizeof(*t->lens));
	t->scores = calloc(n, sizeof(*t->scores));
	t->types = calloc(n, sizeof(*t->types));
	return t->tokens && t->lens && t->scores && t->types ? 0 : -ENOMEM;
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (uint8_t)p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Open-addressing index from token text to id; slots hold id + 1. */
static int build_index(struct hf_tokenizer *t)
{
	uint32_t i, mask;

	free(t->index);
	t->index_size = 1;
	while (t->index_size < 2 * (uint64_t)t->n)
		t->index_size <<= 1;
	t->index = calloc(t->index_size, sizeof(*t->index));
	if (!t->index)
		return -ENOMEM;
	mask = t->index_size - 1;
	for (i = 0; i < t->n; i++) {
		uint32_t h = (uint32_t)fnv1a(t->tokens[i], t->lens[i]) & mask;

		while (t->index[h])
			h = (h + 1) & mask;
		t->index[h] = i + 1;
	}
	return 0;
}

static int lookup(const struct hf_tokenizer *t, const char *s, size_t len)
{
	uint32_t mask = t->index_size - 1, h = (uint32_t)fnv1a(s, len) & mask, id;

	while ((id = t->index[h])) {
		id--;
		if (t->lens[id] == len && !memcmp(t->tokens[id], s, len))
			return (int)id;
		h = (h + 1) & mask;
	}
	return -1;
}

/**
 * hf_tokenizer_find() - the id of a token text
 * @t:		the vocabulary
 * @text:	token text
 *
 * Return: the id, or -1.
 */
int hf_tokenizer_find(const struct hf_tokenizer *t, const char *text)
{
	return text && t->index ? lookup(t, text, strlen(text)) : -1;
}

static int load_merges(struct hf_tokenizer *t, json_object *merges, char *err, size_t errlen)
{
	size_t i, n = json_object_array_length(merges);

	t->merges = calloc(n ? n : 1, sizeof(*t->merges));
	if (!t->merges)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(merges, i);

		if (json_object_is_type(m, json_type_string)) {
			t->merges[i] = strdup(json_object_get_string(m));
		} else if (json_object_is_type(m, json_type_array) &&
			   json_object_array_length(m) == 2) {
			const char *a = json_object_get_string(json_object_array_get_idx(m, 0));
			const char *b = json_object_get_string(json_object_array_get_idx(m, 1));
			size_t la = strlen(a), lb = strlen(b);

			t->merges[i] = malloc(la + lb + 2);
			if (t->merges[i]) {
				memcpy(t->merges[i], a, la);
				t->merges[i][la] = ' ';
				memcpy(t->merges[i] + la + 1, b, lb + 1);
			}
		} else {
			snprintf(err, errlen, "model.merges[%zu] is neither \"a b\" nor [a, b]", i);
			return -EINVAL;
		}
		if (!t->merges[i])
			return -ENOMEM;
		t->n_merges++;
	}
	return 0;
}

/* SentencePiece-style scores from merge ranks: earlier merges score higher. */
static int scores_from_merges(struct hf_tokenizer *t)
{
	char buf[2048];
	uint32_t i;
	int id;

	for (i = 0; i < t->n; i++)
		t->scores[i] = -1e9f;
	for (i = 0; i < t->n_merges; i++) {
		char *sp = strchr(t->merges[i], ' ');
		size_t la, lb;

		if (!sp)
			continue;
		la = (size_t)(sp - t->merges[i]);
		lb = strlen(sp + 1);
		if (la + lb > sizeof(buf))
			return -EINVAL;
		memcpy(buf, t->merges[i], la);
		memcpy(buf + la, sp + 1, lb);
		id = lookup(t, buf, la + lb);
		if (id >= 0 && t->scores[id] < -(float)i)
			t->scores[id] = -(float)i;
	}
	return 0;
}

/**
 * hf_tokenizer_load() - read a tokenizer.json
 * @t:		filled on success
 * @path:	the file
 * @err:	why not, on failure
 * @errlen:	its size
 *
 * Return: 0 or -errno.
 */
int hf_tokenizer_load(struct hf_tokenizer *t, const char *path, char *err, size_t errlen)
{
	json_object *j, *model, *vocab, *added, *merges, *post, *tp;
	struct json_object_iterator it, end;
	const char *type, *regex = NULL;
	int64_t max_id = -1;
	uint32_t i;
	size_t k;
	int ret = -EINVAL;
	bool byte_level;

	memset(t, 0, sizeof(*t));
	t->bos = t->eos = t->unk = -1;
	j = json_object_from_file(path);
	if (!j) {
		snprintf(err, errlen, "%s: not readable JSON (%s)", path, json_util_get_last_err());
		return -EINVAL;
	}
	model = get(j, "model");
	type = get_str(model, "type");
	vocab = get(model, "vocab");
	if (!type || strcmp(type, "BPE") || !vocab || !json_object_is_type(vocab, json_type_object)) {
		snprintf(err, errlen, "%s: only BPE models with a vocab object are supported", path);
		goto out;
	}
	added = get(j, "added_tokens");
	it = json_object_iter_begin(vocab);
	end = json_object_iter_end(vocab);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		int64_t id = json_object_get_int64(json_object_iter_peek_value(&it));

		if (id > max_id)
			max_id = id;
	}
	for (k = 0; added && k < json_object_array_length(added); k++) {
		int64_t id = json_object_get_int64(get(json_object_array_get_idx(added, k), "id"));

		if (id > max_id)
			max_id = id;
	}
	if (max_id < 0 || max_id >= 1 << 24) {
		snprintf(err, errlen, "%s: vocabulary of %lld tokens", path, (long long)max_id + 1);
		goto out;
	}
	ret = alloc_vocab(t, (uint32_t)max_id + 1);
	if (ret)
		goto out;
	it = json_object_iter_begin(vocab);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *s = json_object_iter_peek_name(&it);

		ret = set_token(t, json_object_get_int64(json_object_iter_peek_value(&it)), s,
				strlen(s));
		if (ret) {
			snprintf(err, errlen, "%s: bad id for token '%s'", path, s);
			goto out;
		}
		t->types[json_object_get_int64(json_object_iter_peek_value(&it))] =
			TOK_TYPE_NORMAL;
	}
	for (k = 0; added && k < json_object_array_length(added); k++) {
		json_object *a = json_object_array_get_idx(added, k);
		const char *s = get_str(a, "content");
		int64_t id = json_object_get_int64(get(a, "id"));

		if (!s || set_token(t, id, s, strlen(s))) {
			snprintf(err, errlen, "%s: bad added_tokens[%zu]", path, k);
			ret = -EINVAL;
			goto out;
		}
		t->types[id] = json_object_get_boolean(get(a, "special")) ?
			       TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
	}
	/* Holes get placeholder names, as llama.cpp's converter does. */
	for (i = 0; i < t->n; i++) {
		if (!t->tokens[i]) {
			char pad[32];

			snprintf(pad, sizeof(pad), "[PAD%u]", i);
			ret = set_token(t, i, pad, strlen(pad));
			if (ret)
				goto out;
			t->types[i] = TOK_TYPE_UNUSED;
		}
	}
	ret = build_index(t);
	if (ret)
		goto out;
	merges = get(model, "merges");
	if (merges && json_object_is_type(merges, json_type_array)) {
		ret = load_merges(t, merges, err, errlen);
		if (ret)
			goto out;
	}

	byte_level = find_type(get(j, "pre_tokenizer"), "ByteLevel") ||
		     find_type(get(j, "decoder"), "ByteLevel");
	if (byte_level) {
		json_object *split = find_type(get(j, "pre_tokenizer"), "Split");

		snprintf(t->model, sizeof(t->model), "gpt2");
		snprintf(t->pre, sizeof(t->pre), "default");
		if (split)
			regex = get_str(get(split, "pattern"), "Regex");
		for (k = 0; regex && k < sizeof(known_pre) / sizeof(known_pre[0]); k++)
			if (!strcmp(regex, known_pre[k].regex))
				snprintf(t->pre, sizeof(t->pre), "%s", known_pre[k].name);
	} else {
		snprintf(t->model, sizeof(t->model), "llama");
		t->add_space_prefix = true;
		for (i = 0; i < t->n; i++) {
			if (t->lens[i] == 6 && !strncmp(t->tokens[i], "<0x", 3) &&
			    t->tokens[i][5] == '>')
				t->types[i] = TOK_TYPE_BYTE;
		}
		ret = scores_from_merges(t);
		if (ret) {
			snprintf(err, errlen, "%s: a merge longer than 2 KiB", path);
			goto out;
		}
		t->unk = hf_tokenizer_find(t, get_str(model, "unk_token") ?
					   get_str(model, "unk_token") : "<unk>");
		if (t->unk >= 0)
			t->types[t->unk] = TOK_TYPE_UNKNOWN;
		t->bos = hf_tokenizer_find(t, "<s>");
		t->add_bos = t->bos >= 0;
	}
	/* BOS from a TemplateProcessing post-processor: "$A" preceded by a special. */
	post = get(j, "post_processor");
	tp = find_type(post, "TemplateProcessing");
	if (tp) {
		json_object *single = get(tp, "single"), *first;

		t->add_bos = false;
		first = single && json_object_array_length(single) ?
			get(json_object_array_get_idx(single, 0), "SpecialToken") : NULL;
		if (first) {
			t->bos = hf_tokenizer_find(t, get_str(first, "id"));
			t->add_bos = t->bos >= 0;
		}
	}
	for (k = 0; eos_names[k] && t->eos < 0; k++)
		t->eos = hf_tokenizer_find(t, eos_names[k]);
	ret = 0;
out:
	json_object_put(j);
	if (ret)
		hf_tokenizer_free(t);
	return ret;
}

/**
 * hf_tokenizer_load_spm_vocab() - read a SentencePiece vocabulary listing
 * @t:		filled on success
 * @path:	the trainer's MODEL.vocab: "piece<TAB>score" per line, in id order
 * @err:	a message on failure
 * @errlen:	its size
 *
 * The listing has no token types, so they are those SentencePiece gives:
 * <unk> unknown, <s> and </s> control, <0xHH> byte pieces, the rest normal.
 * Encoding adds BOS and a space prefix, as SentencePiece's defaults (and
 * LLaMA's) do; --add-bos overrides the first.
 *
 * Return: 0, or -errno with @err set.
 */
int hf_tokenizer_load_spm_vocab(struct hf_tokenizer *t, const char *path, char *err,
				size_t errlen)
{
	char *line = NULL, *tab, *end;
	size_t cap = 0;
	uint32_t n = 0, i;
	ssize_t len;
	FILE *f;
	int ret;

	memset(t, 0, sizeof(*t));
	t->bos = t->eos = t->unk = -1;
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	while (getline(&line, &cap, f) > 0)
		n++;
	if (!n || n > (1u << 24)) {
		snprintf(err, errlen, "%s: %u lines, not a vocabulary", path, n);
		ret = -EINVAL;
		goto out;
	}
	ret = alloc_vocab(t, n);
	if (ret)
		goto out;
	rewind(f);
	for (i = 0; i < n && (len = getline(&line, &cap, f)) > 0; i++) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		tab = strrchr(line, '\t');
		if (!tab || tab == line) {
			snprintf(err, errlen, "%s:%u: not \"piece<TAB>score\"", path, i + 1);
			ret = -EINVAL;
			goto out;
		}
		errno = 0;
		t->scores[i] = strtof(tab + 1, &end);
		if (errno || end == tab + 1 || *end) {
			snprintf(err, errlen, "%s:%u: bad score '%s'", path, i + 1, tab + 1);
			ret = -EINVAL;
			goto out;
		}
		ret = set_token(t, i, line, (size_t)(tab - line));
		if (ret)
			goto out;
		if (!strcmp(t->tokens[i], "<unk>"))
			t->types[i] = TOK_TYPE_UNKNOWN;
		else if (!strcmp(t->tokens[i], "<s>") || !strcmp(t->tokens[i], "</s>"))
			t->types[i] = TOK_TYPE_CONTROL;
		else if (t->lens[i] == 6 && !strncmp(t->tokens[i], "<0x", 3) &&
			 t->tokens[i][5] == '>')
			t->types[i] = TOK_TYPE_BYTE;
		else
			t->types[i] = TOK_TYPE_NORMAL;
	}
	if (i != n) {
		snprintf(err, errlen, "%s: changed while reading", path);
		ret = -EIO;
		goto out;
	}
	ret = build_index(t);
	if (ret)
		goto out;
	snprintf(t->model, sizeof(t->model), "llama");
	t->unk = hf_tokenizer_find(t, "<unk>");
	t->bos = hf_tokenizer_find(t, "<s>");
	t->eos = hf_tokenizer_find(t, "</s>");
	t->add_bos = t->bos >= 0;
	t->add_space_prefix = true;
out:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", path);
	free(line);
	fclose(f);
	if (ret)
		hf_tokenizer_free(t);
	return ret;
}

/**
 * hf_tokenizer_byte_vocab() - the built-in vocabulary: <unk>, <s>, </s>, the
 * 256 byte tokens of SentencePiece byte fallback, and U+2581 for the space
 * @t:		filled
 *
 * Without the U+2581 token a space would fall back to its three bytes and
 * decode as U+2581 itself, as SentencePiece does.
 */
void hf_tokenizer_byte_vocab(struct hf_tokenizer *t)
{
	static const char *const special[] = { "<unk>", "<s>", "</s>" };
	char b[8];
	uint32_t i;

	memset(t, 0, sizeof(*t));
	if (alloc_vocab(t, 3 + 256 + 1))
		return;
	snprintf(t->model, sizeof(t->model), "llama");
	for (i = 0; i < 3; i++) {
		set_token(t, i, special[i], strlen(special[i]));
		t->types[i] = i ? TOK_TYPE_CONTROL : TOK_TYPE_UNKNOWN;
	}
	for (i = 0; i < 256; i++) {
		snprintf(b, sizeof(b), "<0x%02X>", i);
		set_token(t, 3 + i, b, 6);
		t->types[3 + i] = TOK_TYPE_BYTE;
	}
	set_token(t, 259, "\xe2\x96\x81", 3);
	t->types[259] = TOK_TYPE_NORMAL;
	t->unk = 0;
	t->bos = 1;
	t->eos = 2;
	t->add_bos = true;
	t->add_space_prefix = true;
	build_index(t);
}

/**
 * hf_tokenizer_write() - add the tokenizer.ggml.* keys
 * @t:		the vocabulary
 * @w:		the writer
 *
 * Return: 0 or the writer's error.
 */
int hf_tokenizer_write(const struct hf_tokenizer *t, struct gguf_writer *w)
{
	gguf_add_str(w, "tokenizer.ggml.model", t->model);
	if (!strcmp(t->model, "gpt2"))
		gguf_add_str(w, "tokenizer.ggml.pre", t->pre);
	gguf_add_str_arr(w, "tokenizer.ggml.tokens", (const char *const *)t->tokens, t->lens,
			 t->n);
	if (!strcmp(t->model, "llama"))
		gguf_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, t->scores, t->n);
	gguf_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, t->types, t->n);
	if (t->n_merges)
		gguf_add_str_arr(w, "tokenizer.ggml.merges", (const char *const *)t->merges,
				 NULL, t->n_merges);
	if (t->bos >= 0)
		gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
	if (t->eos >= 0)
		gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
	if (t->unk >= 0)
		gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
	gguf_add_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
	gguf_add_bool(w, "tokenizer.ggml.add_eos_token", false);
	if (!strcmp(t->model, "llama"))
		return gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
	return 0;
}

/**
 * hf_tokenizer_free() - release a vocabulary
 * @t:		the vocabulary
 */
void hf_tokenizer_free(struct hf_tokenizer *t)
{
	uint32_t i;

	for (i = 0; t->tokens && i < t->n; i++)
		free(t->tokens[i]);
	for (i = 0; t->merges && i < t->n_merges; i++)
		free(t->merges[i]);
	free(t->tokens);
	free(t->lens);
	free(t->scores);
	free(t->types);
	free(t->merges);
	free(t->index);
	memset(t, 0, sizeof(*t));
}
