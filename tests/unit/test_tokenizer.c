// SPDX-License-Identifier: GPL-2.0
/*
 * The tokenizer against the npm reference tokenizers (LLaMA-2 SentencePiece,
 * LLaMA-3 and Qwen3 byte-level BPE): identical ids for every string of
 * tests/tokenizer/strings.json, identical decoded text, round trips, the
 * streaming decoder, special tokens, and every kind of bad input.  The
 * reference tests skip when tests/tokenizer/node_modules is absent; the tests
 * on small hand-made vocabularies always run.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "../../runtime/tokenizer.h"
#include "../tokenizer/tokref.h"

/* ---- reference data, loaded once ---- */

struct ref_model {
	uint32_t	*ids;
	size_t		n;
	uint32_t	*ws_ids;	/* the reference with White_Space \s, if different */
	size_t		n_ws;
	char		*dec;		/* decode, skipping special tokens */
	size_t		dec_len;
	char		*dec_sp;	/* decode keeping them (BPE references only) */
	size_t		dec_sp_len;
	bool		roundtrip;
};

struct ref_case {
	uint8_t		*text;
	size_t		len;
	struct ref_model m[TOKREF_NR];
};

static struct {
	int		state;		/* 0 ready, 1 skip, -1 broken */
	char		why[1024];
	struct tokref_vocab voc[TOKREF_NR];
	struct tokenizer *tok[TOKREF_NR];
	struct ref_case	*cases;
	size_t		n_cases;
} R;

static int get_ids(struct json_object *arr, uint32_t **ids, size_t *n)
{
	size_t i, len = json_object_array_length(arr);

	*ids = malloc((len ? len : 1) * sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		(*ids)[i] = (uint32_t)json_object_get_int64(json_object_array_get_idx(arr, i));
	*n = len;
	return 0;
}

static int get_hex(struct json_object *o, const char *key, char **s, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return -EINVAL;
	return tokref_unhex(json_object_get_string(v), (uint8_t **)s, len);
}

static int load_refs(const char *datadir)
{
	struct json_object *root, *cases;
	char path[PATH_MAX];
	size_t i;
	int m, ret = 0;

	tokref_path(path, sizeof(path), datadir, "refs.json");
	root = json_object_from_file(path);
	if (!root || !json_object_object_get_ex(root, "cases", &cases)) {
		snprintf(R.why, sizeof(R.why), "cannot read %.300s", path);
		json_object_put(root);
		return -EINVAL;
	}
	R.n_cases = json_object_array_length(cases);
	R.cases = calloc(R.n_cases, sizeof(*R.cases));
	if (!R.cases)
		ret = -ENOMEM;
	for (i = 0; !ret && i < R.n_cases; i++) {
		struct json_object *c = json_object_array_get_idx(cases, i), *o, *v;
		struct ref_case *rc = &R.cases[i];

		ret = get_hex(c, "hex", (char **)&rc->text, &rc->len);
		for (m = 0; !ret && m < TOKREF_NR; m++) {
			struct ref_model *rm = &rc->m[m];

			if (!json_object_object_get_ex(c, tokref_names[m], &o) ||
			    !json_object_object_get_ex(o, "ids", &v)) {
				ret = -EINVAL;
				break;
			}
			ret = get_ids(v, &rm->ids, &rm->n);
			if (!ret && json_object_object_get_ex(o, "ws_ids", &v))
				ret = get_ids(v, &rm->ws_ids, &rm->n_ws);
			if (!ret)
				ret = get_hex(o, "text", &rm->dec, &rm->dec_len);
			if (!ret && m != TOKREF_LLAMA2)
				ret = get_hex(o, "text_special", &rm->dec_sp, &rm->dec_sp_len);
			rm->roundtrip = json_object_object_get_ex(o, "roundtrip", &v) &&
					json_object_get_boolean(v);
		}
	}
	json_object_put(root);
	if (ret)
		snprintf(R.why, sizeof(R.why), "%.300s: unexpected layout (%d)", path, ret);
	return ret;
}

static int group_setup(void **state)
{
	char datadir[PATH_MAX], err[256];
	const char *dir = tokref_dir();
	int m, rc;

	(void)state;
	rc = tokref_prepare(dir, datadir, sizeof(datadir), R.why, sizeof(R.why));
	if (rc) {
		R.state = rc > 0 ? 1 : -1;
		return 0;
	}
	for (m = 0; m < TOKREF_NR; m++) {
		if (tokref_load(m, dir, datadir, &R.voc[m], err, sizeof(err))) {
			snprintf(R.why, sizeof(R.why), "loading %s: %s", tokref_names[m], err);
			R.state = -1;
			return 0;
		}
		R.tok[m] = tok_create(&R.voc[m].v, err, sizeof(err));
		if (!R.tok[m]) {
			snprintf(R.why, sizeof(R.why), "tok_create(%s): %s", tokref_names[m], err);
			R.state = -1;
			return 0;
		}
	}
	if (load_refs(datadir))
		R.state = -1;
	return 0;
}

static int group_teardown(void **state)
{
	size_t i;
	int m;

	(void)state;
	for (i = 0; i < R.n_cases; i++) {
		free(R.cases[i].text);
		for (m = 0; m < TOKREF_NR; m++) {
			free(R.cases[i].m[m].ids);
			free(R.cases[i].m[m].ws_ids);
			free(R.cases[i].m[m].dec);
			free(R.cases[i].m[m].dec_sp);
		}
	}
	free(R.cases);
	for (m = 0; m < TOKREF_NR; m++) {
		tok_free(R.tok[m]);
		tokref_free(&R.voc[m]);
	}
	return 0;
}

/* Skip (not pass) without the npm references; fail if they broke. */
#define NEED_REFS()							\
	do {								\
		if (R.state == 1) {					\
			print_message("SKIP: %s\n", R.why);		\
			skip();						\
		}							\
		if (R.state < 0)					\
			fail_msg("reference data: %s", R.why);		\
	} while (0)

/* ---- printing ---- */

static void print_escaped(const char *label, const void *p, size_t n)
{
	const uint8_t *s = p;
	size_t i, max = n > 300 ? 300 : n;

	print_message("%s (%zu bytes): \"", label, n);
	for (i = 0; i < max; i++) {
		if (s[i] == '\\' || s[i] == '"')
			print_message("\\%c", s[i]);
		else if (s[i] >= 0x20 && s[i] != 0x7f)
			print_message("%c", s[i]);
		else
			print_message("\\x%02x", s[i]);
	}
	print_message("\"%s\n", n > max ? "..." : "");
}

static void print_ids(const char *label, const struct tokenizer *t, const uint32_t *ids,
		      size_t n, size_t from, size_t to)
{
	size_t i;

	print_message("  %s [%zu..%zu of %zu]:", label, from, to < n ? to : n, n);
	for (i = from; i < to && i < n; i++) {
		char piece[64];
		int l = tok_piece(t, ids[i], piece, sizeof(piece) - 1);

		print_message(" %u", ids[i]);
		if (l >= 0) {
			int j;

			print_message("<");
			for (j = 0; j < l; j++)
				print_message((uint8_t)piece[j] >= 0x20 ? "%c" : "\\x%02x",
					      (uint8_t)piece[j]);
			print_message(">");
		}
	}
	print_message("\n");
}

static void print_mismatch(const struct tokenizer *t, const char *model, size_t idx,
			   const struct ref_case *c, const uint32_t *want, size_t n_want,
			   const uint32_t *got, size_t n_got)
{
	size_t d = 0, from, to;

	while (d < n_want && d < n_got && want[d] == got[d])
		d++;
	from = d > 6 ? d - 6 : 0;
	to = d + 8;
	print_message("%s: first mismatch, strings.json[%zu], at token %zu\n", model, idx, d);
	print_escaped("  text", c->text, c->len);
	print_ids("reference", t, want, n_want, from, to);
	print_ids("llmq     ", t, got, n_got, from, to);
}

static bool same_ids(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
	return na == nb && (!na || !memcmp(a, b, na * sizeof(*a)));
}

static bool same_text(const char *a, size_t na, const char *b, size_t nb)
{
	return na == nb && (!na || !memcmp(a, b, na));
}

/* Strict UTF-8 check, independent of the tokenizer's own. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		unsigned int l, k;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0)
			l = 2, cp = s[i] & 0x1f;
		else if ((s[i] & 0xf0) == 0xe0)
			l = 3, cp = s[i] & 0x0f;
		else if ((s[i] & 0xf8) == 0xf0)
			l = 4, cp = s[i] & 0x07;
		else
			return false;
		if (i + l > n)
			return false;
		for (k = 1; k < l; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += l;
	}
	return true;
}

/* ---- against the references ---- */

static void check_reference(enum tokref_model m)
{
	const struct tokenizer *t;
	size_t i, ok_ids = 0, ws = 0, ok_dec = 0, rt = 0, rt_ok = 0, bad = 0;
	bool parse_special = m != TOKREF_LLAMA2;

	NEED_REFS();
	t = R.tok[m];
	for (i = 0; i < R.n_cases; i++) {
		const struct ref_case *c = &R.cases[i];
		const struct ref_model *rm = &c->m[m];
		uint32_t *ids;
		size_t n, len;
		char *text;
		bool good = true, dec_good = true;

		assert_int_equal(tok_encode(t, (char *)c->text, c->len, false, parse_special,
					    &ids, &n), 0);
		if (same_ids(ids, n, rm->ids, rm->n)) {
			ok_ids++;
		} else if (rm->ws_ids && same_ids(ids, n, rm->ws_ids, rm->n_ws)) {
			ok_ids++;
			ws++;
			print_message("%s: strings.json[%zu] matches the reference with White_Space "
				      "\\s, not JavaScript's:\n", tokref_names[m], i);
			print_escaped("  text", c->text, c->len);
		} else {
			if (!bad)
				print_mismatch(t, tokref_names[m], i, c, rm->ids, rm->n, ids, n);
			good = false;
		}

		/* decoding the reference's ids */
		assert_int_equal(tok_decode(t, rm->ids, rm->n, true, &text, &len), 0);
		if (same_text(text, len, rm->dec, rm->dec_len)) {
			if (rm->dec_sp) {
				free(text);
				assert_int_equal(tok_decode(t, rm->ids, rm->n, false, &text, &len), 0);
				if (!same_text(text, len, rm->dec_sp, rm->dec_sp_len)) {
					if (!bad && good)
						print_message("%s: strings.json[%zu] decode with special "
							      "tokens differs\n", tokref_names[m], i);
					dec_good = false;
				}
			}
		} else {
			if (!bad && good) {
				print_message("%s: strings.json[%zu] decode differs\n",
					      tokref_names[m], i);
				print_escaped("  reference", rm->dec, rm->dec_len);
				print_escaped("  llmq     ", text, len);
			}
			dec_good = false;
		}
		free(text);
		if (dec_good)
			ok_dec++;
		good = good && dec_good;

		/* our own round trip, where the reference has one */
		if (rm->roundtrip) {
			rt++;
			assert_int_equal(tok_decode(t, ids, n, m == TOKREF_LLAMA2, &text, &len), 0);
			if (same_text(text, len, (char *)c->text, c->len)) {
				rt_ok++;
			} else {
				if (!bad && good) {
					print_message("%s: strings.json[%zu] does not round-trip\n",
						      tokref_names[m], i);
					print_escaped("  text   ", c->text, c->len);
					print_escaped("  decoded", text, len);
				}
				good = false;
			}
			free(text);
		}
		if (!good)
			bad++;
		free(ids);
	}
	print_message("%s: %zu/%zu encodings identical to the reference (%zu of them to its "
		      "White_Space variant), %zu/%zu decodings identical, %zu/%zu round trips\n",
		      tokref_names[m], ok_ids, R.n_cases, ws, ok_dec, R.n_cases, rt_ok, rt);
	assert_int_equal(bad, 0);
}

static void test_ref_llama2(void **state)
{
	(void)state;
	check_reference(TOKREF_LLAMA2);
}

static void test_ref_llama3(void **state)
{
	(void)state;
	check_reference(TOKREF_LLAMA3);
}

static void test_ref_qwen3(void **state)
{
	(void)state;
	check_reference(TOKREF_QWEN3);
}

/* Streamed text of ids; a trailing control token flushes what is held. */
static char *stream_all(const struct tokenizer *t, const uint32_t *ids, size_t n, uint32_t flush,
			size_t *len)
{
	struct tok_stream st = { 0 };
	size_t i, o = 0, cap = 64;
	char *out = malloc(cap), chunk[4096];

	assert_non_null(out);
	for (i = 0; i <= n; i++) {
		int r = tok_stream_next(t, &st, i < n ? ids[i] : flush, chunk, sizeof(chunk));

		assert_true(r >= 0);
		assert_true(st.nr_pending <= 3);
		/* every chunk is whole characters */
		assert_true(valid_utf8((uint8_t *)chunk, (size_t)r));
		if (o + (size_t)r + 1 > cap) {
			cap = 2 * (o + (size_t)r + 1);
			out = realloc(out, cap);
			assert_non_null(out);
		}
		memcpy(out + o, chunk, (size_t)r);
		o += (size_t)r;
	}
	assert_int_equal(st.nr_pending, 0);
	*len = o;
	return out;
}

static void check_stream(enum tokref_model m)
{
	const struct tokenizer *t;
	size_t i;

	NEED_REFS();
	t = R.tok[m];
	for (i = 0; i < R.n_cases; i++) {
		const struct ref_model *rm = &R.cases[i].m[m];
		size_t len, dlen;
		char *s = stream_all(t, rm->ids, rm->n, (uint32_t)R.voc[m].v.eos, &len), *d;
		bool same;

		assert_int_equal(tok_decode(t, rm->ids, rm->n, true, &d, &dlen), 0);
		same = same_text(s, len, d, dlen) ||
		       (R.voc[m].v.add_space_prefix && len && s[0] == ' ' &&
			same_text(s + 1, len - 1, d, dlen));
		if (!same) {
			print_message("%s: stream of strings.json[%zu] differs from decode\n",
				      tokref_names[m], i);
			print_escaped("  stream", s, len);
			print_escaped("  decode", d, dlen);
		}
		free(s);
		free(d);
		assert_true(same);
	}
}

static void test_stream_llama2(void **state)
{
	(void)state;
	check_stream(TOKREF_LLAMA2);
}

static void test_stream_llama3(void **state)
{
	(void)state;
	check_stream(TOKREF_LLAMA3);
}

static void test_stream_qwen3(void **state)
{
	(void)state;
	check_stream(TOKREF_QWEN3);
}

static uint32_t find_token(enum tokref_model m, const char *text)
{
	const struct tok_vocab *v = &R.voc[m].v;
	uint32_t i;

	for (i = 0; i < v->n_tokens; i++)
		if (v->token_lens[i] == strlen(text) && !memcmp(v->tokens[i], text, strlen(text)))
			return i;
	fail_msg("no token \"%s\" in %s", text, tokref_names[m]);
	return 0;
}

/* A character split over byte tokens comes out once, whole. */
static void test_stream_split_character(void **state)
{
	const struct tokenizer *t;
	struct tok_stream st = { 0 };
	uint32_t *ids, a, e4;
	size_t n, i;
	char out[64];
	int r;

	(void)state;
	NEED_REFS();
	t = R.tok[TOKREF_LLAMA2];
	assert_int_equal(tok_encode(t, "\xf0\x9f\xa6\x99", 4, true, false, &ids, &n), 0);
	/* <s> ▁ <0xF0> <0x9F> <0xA6> <0x99>: the reference's own test case */
	assert_int_equal(n, 6);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 29871);
	assert_int_equal(tok_stream_next(t, &st, ids[0], out, sizeof(out)), 0);
	assert_int_equal(tok_stream_next(t, &st, ids[1], out, sizeof(out)), 1);
	assert_memory_equal(out, " ", 1);
	for (i = 2; i < 5; i++) {
		assert_int_equal(tok_stream_next(t, &st, ids[i], out, sizeof(out)), 0);
		assert_int_equal(st.nr_pending, i - 1);
	}
	/* too small a buffer: -ENOSPC, nothing consumed */
	assert_int_equal(tok_stream_next(t, &st, ids[5], out, 3), -ENOSPC);
	assert_int_equal(st.nr_pending, 3);
	assert_int_equal(tok_stream_next(t, &st, ids[5], out, sizeof(out)), 4);
	assert_memory_equal(out, "\xf0\x9f\xa6\x99", 4);
	assert_int_equal(st.nr_pending, 0);
	free(ids);

	/* an unfinished character followed by text: U+FFFD, then the text */
	e4 = find_token(TOKREF_LLAMA2, "<0xE4>");
	a = find_token(TOKREF_LLAMA2, "a");
	assert_int_equal(tok_stream_next(t, &st, e4, out, sizeof(out)), 0);
	r = tok_stream_next(t, &st, a, out, sizeof(out));
	assert_int_equal(r, 4);
	assert_memory_equal(out, "\xef\xbf\xbd" "a", 4);
	/* ... or followed by EOS: flushed as U+FFFD */
	assert_int_equal(tok_stream_next(t, &st, e4, out, sizeof(out)), 0);
	assert_int_equal(tok_stream_next(t, &st, 2, out, sizeof(out)), 3);
	assert_memory_equal(out, "\xef\xbf\xbd", 3);
	assert_int_equal(st.nr_pending, 0);
	/* a lone continuation byte */
	assert_int_equal(tok_stream_next(t, &st, find_token(TOKREF_LLAMA2, "<0x9F>"), out,
					 sizeof(out)), 3);

	/* byte-level BPE: 中 (e4 b8 ad) one byte token at a time */
	t = R.tok[TOKREF_QWEN3];
	memset(&st, 0, sizeof(st));
	assert_int_equal(tok_stream_next(t, &st, find_token(TOKREF_QWEN3, "\xc3\xa4"), out,
					 sizeof(out)), 0);		/* GPT-2's char for e4 */
	assert_int_equal(tok_stream_next(t, &st, find_token(TOKREF_QWEN3, "\xc2\xb8"), out,
					 sizeof(out)), 0);		/* b8 */
	assert_int_equal(st.nr_pending, 2);
	assert_int_equal(tok_stream_next(t, &st, find_token(TOKREF_QWEN3, "\xc5\x83"), out,
					 sizeof(out)), 3);		/* ad is U+0143 */
	assert_memory_equal(out, "\xe4\xb8\xad", 3);
}

/* ---- special tokens, BOS/EOS ---- */

static void test_special_tokens(void **state)
{
	uint32_t *ids;
	size_t n, len;
	char *text;

	(void)state;
	NEED_REFS();
	/* LLaMA-3: control tokens only when asked */
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA3], "<|eot_id|>", 10, false, true,
				    &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 128009);
	free(ids);
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA3], "<|eot_id|>", 10, false, false,
				    &ids, &n), 0);
	assert_true(n > 1);
	assert_int_equal(tok_decode(R.tok[TOKREF_LLAMA3], ids, n, true, &text, &len), 0);
	assert_string_equal(text, "<|eot_id|>");
	free(text);
	free(ids);

	/* add_special: LLaMA-3 adds <|begin_of_text|>, Qwen3 nothing */
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA3], "Hello world", 11, true, true,
				    &ids, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], 128000);
	assert_int_equal(ids[1], 9906);
	assert_int_equal(ids[2], 1917);
	assert_int_equal(tok_decode(R.tok[TOKREF_LLAMA3], ids, n, false, &text, &len), 0);
	assert_string_equal(text, "<|begin_of_text|>Hello world");
	free(text);
	assert_int_equal(tok_decode(R.tok[TOKREF_LLAMA3], ids, n, true, &text, &len), 0);
	assert_string_equal(text, "Hello world");
	free(text);
	free(ids);
	assert_int_equal(tok_encode(R.tok[TOKREF_QWEN3], "Hello world", 11, true, true,
				    &ids, &n), 0);
	assert_int_equal(n, 2);
	free(ids);

	/* Qwen3: user-defined <think> is matched even without parse_special */
	assert_int_equal(tok_encode(R.tok[TOKREF_QWEN3], "<think>", 7, false, false, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 151667);
	free(ids);
	assert_int_equal(tok_encode(R.tok[TOKREF_QWEN3], "<|im_end|>", 10, false, false,
				    &ids, &n), 0);
	assert_true(n > 1);
	free(ids);

	/* LLaMA-2: BOS, "" -> [BOS] as SentencePiece and llama.cpp do */
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA2], "", 0, true, false, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], 1);
	free(ids);
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA2], NULL, 0, false, false, &ids, &n), 0);
	assert_int_equal(n, 0);
	free(ids);
	/* "<s>" parsed: the text after it gets the SentencePiece space prefix */
	assert_int_equal(tok_encode(R.tok[TOKREF_LLAMA2], "<s>Hello", 8, false, true, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 15043);	/* ▁Hello */
	assert_int_equal(tok_decode(R.tok[TOKREF_LLAMA2], ids, n, true, &text, &len), 0);
	assert_string_equal(text, "Hello");
	free(text);
	assert_int_equal(tok_decode(R.tok[TOKREF_LLAMA2], ids, n, false, &text, &len), 0);
	assert_string_equal(text, "<s> Hello");
	free(text);
	free(ids);
}

static void test_add_eos(void **state)
{
	struct tok_vocab v;
	struct tokenizer *t;
	uint32_t *ids;
	size_t n;
	char err[128];

	(void)state;
	NEED_REFS();
	v = R.voc[TOKREF_QWEN3].v;
	v.add_bos = false;
	v.add_eos = true;
	t = tok_create(&v, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(tok_encode(t, "hi", 2, true, true, &ids, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ids[1], 151645);
	free(ids);
	assert_int_equal(tok_encode(t, "hi", 2, false, true, &ids, &n), 0);
	assert_int_equal(n, 1);
	free(ids);
	tok_free(t);
}

/* ---- long and hostile input through the real vocabularies ---- */

static void check_long(enum tokref_model m, const char *unit, size_t reps, bool exact)
{
	size_t ul = strlen(unit), n, len, i;
	char *s = malloc(ul * reps), *text;
	uint32_t *ids;

	assert_non_null(s);
	for (i = 0; i < reps; i++)
		memcpy(s + i * ul, unit, ul);
	assert_int_equal(tok_encode(R.tok[m], s, ul * reps, false, false, &ids, &n), 0);
	assert_true(n > 0);
	assert_int_equal(tok_decode(R.tok[m], ids, n, true, &text, &len), 0);
	if (exact) {
		assert_int_equal(len, ul * reps);
		assert_memory_equal(text, s, len);
	} else {
		assert_true(valid_utf8((uint8_t *)text, len));
	}
	free(text);
	free(ids);
	free(s);
}

static void test_long_inputs(void **state)
{
	(void)state;
	NEED_REFS();
	check_long(TOKREF_LLAMA3, " ", 1 << 20, true);
	check_long(TOKREF_LLAMA3, "\n", 1 << 18, true);
	check_long(TOKREF_LLAMA3, "a", 1 << 20, true);
	check_long(TOKREF_LLAMA3, "7", 1 << 18, true);
	check_long(TOKREF_LLAMA3, " \t\r\n", 1 << 16, true);
	check_long(TOKREF_QWEN3, "e\xcc\x81 ", 1 << 16, false);	/* NFC on every word */
	check_long(TOKREF_QWEN3, "\xe4\xb8\xad", 1 << 18, true);
	check_long(TOKREF_LLAMA2, "a", 1 << 18, true);
	check_long(TOKREF_LLAMA2, " ", 1 << 18, true);
	check_long(TOKREF_LLAMA2, "\xf0\x9f\xa6\x99", 1 << 16, true);
	check_long(TOKREF_LLAMA2, "\xff", 1 << 16, false);
	check_long(TOKREF_LLAMA3, "\xc0", 1 << 16, false);
}

static void test_invalid_utf8_real(void **state)
{
	uint32_t *ids;
	size_t n, len;
	char *text;
	int m;

	(void)state;
	NEED_REFS();
	for (m = 0; m < TOKREF_NR; m++) {
		/* E4 B8 is one maximal subpart: one U+FFFD, then "A" */
		assert_int_equal(tok_encode(R.tok[m], "\xe4\xb8" "A\xff", 4, false, false,
					    &ids, &n), 0);
		assert_int_equal(tok_decode(R.tok[m], ids, n, true, &text, &len), 0);
		assert_string_equal(text, "\xef\xbf\xbd" "A\xef\xbf\xbd");
		free(text);
		free(ids);
	}
}

/* ---- small hand-made vocabularies: no references needed ---- */

#define SPM_BASE 259
static const char *const spm_extra[] = {
	"\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81" "a", "\xe2\x96\x81" "ab", "c", "<tool>",
};

struct tiny {
	struct tok_vocab v;
	const char	*tok[600];
	uint32_t	len[600];
	float		score[600];
	int32_t		type[600];
	const char	*merge[8];
	uint32_t	merge_len[8];
	char		names[256][8];
};

static void tiny_spm(struct tiny *x)
{
	unsigned int i;

	memset(x, 0, sizeof(*x));
	x->tok[0] = "<unk>";
	x->type[0] = TOK_TYPE_UNKNOWN;
	x->tok[1] = "<s>";
	x->type[1] = TOK_TYPE_CONTROL;
	x->tok[2] = "</s>";
	x->type[2] = TOK_TYPE_CONTROL;
	for (i = 0; i < 256; i++) {
		snprintf(x->names[i], sizeof(x->names[i]), "<0x%02X>", i);
		x->tok[3 + i] = x->names[i];
		x->type[3 + i] = TOK_TYPE_BYTE;
	}
	for (i = 0; i < sizeof(spm_extra) / sizeof(spm_extra[0]); i++) {
		x->tok[SPM_BASE + i] = spm_extra[i];
		x->type[SPM_BASE + i] = TOK_TYPE_NORMAL;
		x->score[SPM_BASE + i] = -(float)i;
	}
	x->type[SPM_BASE + 7] = TOK_TYPE_USER_DEFINED;
	for (i = 0; i < SPM_BASE + 8; i++)
		x->len[i] = (uint32_t)strlen(x->tok[i]);
	x->v.model = TOK_MODEL_SPM;
	x->v.n_tokens = SPM_BASE + 8;
	x->v.tokens = x->tok;
	x->v.token_lens = x->len;
	x->v.scores = x->score;
	x->v.types = x->type;
	x->v.bos = 1;
	x->v.eos = 2;
	x->v.unk = 0;
	x->v.add_bos = true;
	x->v.add_space_prefix = true;
}

/* GPT-2 byte alphabet: token i is byte i's character */
static void tiny_bpe(struct tiny *x, const char *pre)
{
	unsigned int b, k = 0;

	memset(x, 0, sizeof(*x));
	for (b = 0; b < 256; b++) {
		bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) ||
				 b >= 0xae;
		uint32_t cp = printable ? b : 0x100 + k++;

		if (cp < 0x80) {
			x->names[b][0] = (char)cp;
		} else {
			x->names[b][0] = (char)(0xc0 | cp >> 6);
			x->names[b][1] = (char)(0x80 | (cp & 0x3f));
		}
		x->tok[b] = x->names[b];
		x->type[b] = TOK_TYPE_NORMAL;
	}
	x->tok[256] = "ab";
	x->tok[257] = "\xc4\xa0" "ab";	/* Ġab */
	x->tok[258] = "<|end|>";
	x->type[258] = TOK_TYPE_CONTROL;
	for (b = 0; b < 259; b++)
		x->len[b] = (uint32_t)strlen(x->tok[b]);
	x->merge[0] = "a b";
	x->merge[1] = "\xc4\xa0 ab";
	x->merge_len[0] = 3;
	x->merge_len[1] = 5;
	x->v.model = TOK_MODEL_BPE;
	x->v.pre = pre;
	x->v.n_tokens = 259;
	x->v.tokens = x->tok;
	x->v.token_lens = x->len;
	x->v.types = x->type;
	x->v.n_merges = 2;
	x->v.merges = x->merge;
	x->v.merge_lens = x->merge_len;
	x->v.bos = -1;
	x->v.eos = 258;
	x->v.unk = -1;
}

static void expect_ids(struct tokenizer *t, const char *s, size_t len, bool add_special,
		       bool parse_special, const uint32_t *want, size_t n_want)
{
	uint32_t *ids;
	size_t n, i;

	assert_int_equal(tok_encode(t, s, len, add_special, parse_special, &ids, &n), 0);
	if (!same_ids(ids, n, want, n_want)) {
		print_escaped("text", s, len);
		print_ids("want", t, want, n_want, 0, n_want);
		print_ids("got ", t, ids, n, 0, n);
	}
	for (i = 0; i < n && i < n_want; i++)
		assert_int_equal(ids[i], want[i]);
	assert_int_equal(n, n_want);
	free(ids);
}

static void expect_text(struct tokenizer *t, const uint32_t *ids, size_t n, bool skip,
			const char *want)
{
	char *text;
	size_t len;

	assert_int_equal(tok_decode(t, ids, n, skip, &text, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(text, want);
	free(text);
}

static void test_tiny_spm(void **state)
{
	struct tiny x;
	struct tokenizer *t;
	char err[128];

	(void)state;
	tiny_spm(&x);
	t = tok_create(&x.v, err, sizeof(err));
	assert_non_null(t);
	/* ▁ a b: "ab" scores higher than "▁a", then "▁ab" */
	expect_ids(t, "ab", 2, true, false, (uint32_t[]){ 1, SPM_BASE + 5 }, 2);
	/* no token for 'z': byte fallback */
	expect_ids(t, "abz", 3, false, false, (uint32_t[]){ SPM_BASE + 5, 3 + 'z' }, 2);
	/* invalid UTF-8 becomes U+FFFD, which falls back to bytes */
	expect_ids(t, "\xff", 1, false, false,
		   (uint32_t[]){ SPM_BASE, 3 + 0xef, 3 + 0xbf, 3 + 0xbd }, 4);
	/* user-defined token: matched even without parse_special, then "▁c" */
	expect_ids(t, "<tool>c", 7, false, false, (uint32_t[]){ SPM_BASE + 7, SPM_BASE, SPM_BASE + 6 },
		   3);
	/* control tokens only with parse_special */
	expect_ids(t, "</s>", 4, false, true, (uint32_t[]){ 2 }, 1);
	expect_ids(t, "b c", 3, false, false,
		   (uint32_t[]){ SPM_BASE, SPM_BASE + 2, SPM_BASE, SPM_BASE + 6 }, 4);

	expect_text(t, (uint32_t[]){ 1, SPM_BASE + 5 }, 2, true, "ab");
	expect_text(t, (uint32_t[]){ 1, SPM_BASE + 5 }, 2, false, "<s> ab");
	expect_text(t, (uint32_t[]){ SPM_BASE + 5, 3 + 0xc3, 3 + 0xa9 }, 3, true, "ab\xc3\xa9");
	expect_text(t, (uint32_t[]){ 3 + 0xc3 }, 1, true, "\xef\xbf\xbd");
	expect_text(t, (uint32_t[]){ 3 + 0xc3, 2, 3 + 0xa9 }, 3, true,
		    "\xef\xbf\xbd\xef\xbf\xbd");
	expect_text(t, NULL, 0, true, "");
	tok_free(t);

	/* a token with U+2581 inside: merging may not go word by word */
	x.tok[SPM_BASE + 8] = "\xe2\x96\x81" "c";
	x.tok[SPM_BASE + 9] = "b\xe2\x96\x81" "c";
	x.len[SPM_BASE + 8] = 4;
	x.len[SPM_BASE + 9] = 5;
	x.type[SPM_BASE + 8] = x.type[SPM_BASE + 9] = TOK_TYPE_NORMAL;
	x.score[SPM_BASE + 8] = -8;
	x.score[SPM_BASE + 9] = -7;
	x.v.n_tokens = SPM_BASE + 10;
	t = tok_create(&x.v, err, sizeof(err));
	assert_non_null(t);
	expect_ids(t, "b c", 3, false, false, (uint32_t[]){ SPM_BASE, SPM_BASE + 9 }, 2);
	expect_ids(t, "ab c", 4, false, false, (uint32_t[]){ SPM_BASE + 5, SPM_BASE + 8 }, 2);
	tok_free(t);
}

static void test_tiny_bpe(void **state)
{
	static const char *const pres[] = { "gpt2", "default", "llama-bpe", "qwen2", NULL };
	struct tiny x;
	struct tokenizer *t;
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pres) / sizeof(pres[0]); i++) {
		tiny_bpe(&x, pres[i]);
		t = tok_create(&x.v, err, sizeof(err));
		if (!t)
			fail_msg("pre %s: %s", pres[i] ? pres[i] : "(null)", err);
		/* "ab ab" -> ab, Ġab */
		expect_ids(t, "ab ab", 5, false, true, (uint32_t[]){ 256, 257 }, 2);
		/* "ba" has no merge */
		expect_ids(t, "ba", 2, false, true, (uint32_t[]){ 'b', 'a' }, 2);
		expect_ids(t, "ab<|end|>", 9, true, true, (uint32_t[]){ 256, 258 }, 2);
		expect_text(t, (uint32_t[]){ 256, 257, 258 }, 3, false, "ab ab<|end|>");
		expect_text(t, (uint32_t[]){ 256, 257, 258 }, 3, true, "ab ab");
		expect_text(t, (uint32_t[]){ 0xe4, 256 }, 2, true, "\xef\xbf\xbd" "ab");
		tok_free(t);
	}
}

/* Megabytes of one character class through the tiny vocabularies. */
static void test_tiny_long(void **state)
{
	static const char *const units[] = { " ", "\n", "a", "9", ".", " \n", "\xe4\xb8\xad",
					      "\xff", "\t \r\n" };
	struct tiny x, y;
	struct tokenizer *bpe, *spm;
	char err[128];
	size_t u;

	(void)state;
	tiny_bpe(&x, "llama-bpe");
	tiny_spm(&y);
	bpe = tok_create(&x.v, err, sizeof(err));
	spm = tok_create(&y.v, err, sizeof(err));
	assert_non_null(bpe);
	assert_non_null(spm);
	for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t ul = strlen(units[u]), reps = (1 << 20) / ul, n, len, i;
		char *s = malloc(ul * reps), *text;
		uint32_t *ids;

		assert_non_null(s);
		for (i = 0; i < reps; i++)
			memcpy(s + i * ul, units[u], ul);
		assert_int_equal(tok_encode(bpe, s, ul * reps, true, true, &ids, &n), 0);
		assert_int_equal(tok_decode(bpe, ids, n, true, &text, &len), 0);
		if (units[u][0] != '\xff')
			assert_true(len == ul * reps && !memcmp(text, s, len));
		free(text);
		free(ids);
		assert_int_equal(tok_encode(spm, s, ul * reps, true, true, &ids, &n), 0);
		assert_int_equal(tok_decode(spm, ids, n, true, &text, &len), 0);
		if (units[u][0] != '\xff')
			assert_true(len == ul * reps && !memcmp(text, s, len));
		free(text);
		free(ids);
		free(s);
	}
	tok_free(bpe);
	tok_free(spm);
}

static void test_bad_arguments(void **state)
{
	struct tok_stream st = { 0 };
	struct tokenizer *t;
	struct tiny x;
	uint32_t *ids = (uint32_t *)&st, id = 5, bad = 100000;
	size_t n = 7, len = 7;
	char *text = (char *)&st, buf[8], err[128];

	(void)state;
	tiny_spm(&x);
	t = tok_create(&x.v, err, sizeof(err));
	assert_non_null(t);

	assert_int_equal(tok_encode(NULL, "a", 1, true, true, &ids, &n), -EINVAL);
	assert_null(ids);
	assert_int_equal(n, 0);
	assert_int_equal(tok_encode(t, NULL, 1, true, true, &ids, &n), -EINVAL);
	assert_int_equal(tok_encode(t, "a", 1, true, true, NULL, &n), -EINVAL);
	assert_int_equal(tok_encode(t, "a", 1, true, true, &ids, NULL), -EINVAL);
	assert_int_equal(tok_encode(t, "a", ((size_t)1 << 30) + 1, true, true, &ids, &n), -E2BIG);
	assert_int_equal(tok_encode(t, "a", SIZE_MAX, true, true, &ids, &n), -E2BIG);

	assert_int_equal(tok_decode(NULL, &id, 1, true, &text, &len), -EINVAL);
	assert_null(text);
	assert_int_equal(len, 0);
	assert_int_equal(tok_decode(t, NULL, 1, true, &text, &len), -EINVAL);
	assert_int_equal(tok_decode(t, &bad, 1, true, &text, &len), -EINVAL);
	assert_null(text);
	assert_int_equal(tok_decode(t, &id, 1, true, NULL, &len), -EINVAL);
	assert_int_equal(tok_decode(t, &id, 1, true, &text, NULL), -EINVAL);

	assert_int_equal(tok_piece(NULL, 5, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_piece(t, bad, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_piece(t, x.v.n_tokens, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_piece(t, 5, NULL, 4), -EINVAL);
	assert_int_equal(tok_piece(t, SPM_BASE + 5, NULL, 0), 3);	/* "▁ab" -> " ab" */
	assert_int_equal(tok_piece(t, SPM_BASE + 5, buf, 2), -ENOSPC);
	assert_int_equal(tok_piece(t, SPM_BASE + 5, buf, 3), 3);
	assert_memory_equal(buf, " ab", 3);
	assert_int_equal(tok_piece(t, 3 + 0xe4, buf, sizeof(buf)), 1);
	assert_int_equal((uint8_t)buf[0], 0xe4);
	assert_int_equal(tok_piece(t, 1, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "<s>", 3);

	assert_int_equal(tok_stream_next(NULL, &st, 5, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_stream_next(t, NULL, 5, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_stream_next(t, &st, bad, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tok_stream_next(t, &st, 5, NULL, 4), -EINVAL);
	st.nr_pending = 9;
	assert_int_equal(tok_stream_next(t, &st, 5, buf, sizeof(buf)), -EINVAL);
	st.nr_pending = 0;
	assert_int_equal(tok_stream_next(t, &st, SPM_BASE + 5, buf, 0), -ENOSPC);

	tok_free(t);
	tok_free(NULL);
}

static void expect_create_fails(const struct tok_vocab *v, const char *what)
{
	char err[160] = "";
	struct tokenizer *t = tok_create(v, err, sizeof(err));

	if (t) {
		tok_free(t);
		fail_msg("tok_create accepted %s", what);
	}
	if (!err[0])
		fail_msg("tok_create rejected %s without a reason", what);
}

static void test_create_rejects(void **state)
{
	static const char *const bad_merge[] = { "ab", " ab", "a ", "" };
	struct tiny x;
	int32_t type;
	uint32_t len;
	size_t i;

	(void)state;
	expect_create_fails(NULL, "NULL");
	assert_null(tok_create(NULL, NULL, 0));

	tiny_spm(&x);
	x.v.n_tokens = 0;
	expect_create_fails(&x.v, "an empty vocabulary");
	x.v.n_tokens = (1u << 23) + 1;
	expect_create_fails(&x.v, "an oversized vocabulary");
	tiny_spm(&x);
	x.v.model = (enum tok_model)7;
	expect_create_fails(&x.v, "an unknown model");
	tiny_spm(&x);
	x.v.tokens = NULL;
	expect_create_fails(&x.v, "no tokens");
	tiny_spm(&x);
	x.tok[5] = NULL;
	expect_create_fails(&x.v, "a token without text");
	tiny_spm(&x);
	len = x.len[5];
	x.len[5] = (1u << 16) + 1;
	expect_create_fails(&x.v, "an overlong token");
	x.len[5] = len;
	type = x.type[5];
	x.type[5] = 7;
	expect_create_fails(&x.v, "an unknown token type");
	x.type[5] = -1;
	expect_create_fails(&x.v, "a negative token type");
	x.type[5] = type;
	x.v.bos = (int32_t)x.v.n_tokens;
	expect_create_fails(&x.v, "bos outside the vocabulary");
	x.v.bos = -1;
	expect_create_fails(&x.v, "add_bos without bos");
	x.v.bos = 1;
	x.v.unk = -2;
	expect_create_fails(&x.v, "unk -2");
	x.v.unk = 0;
	x.v.eos = -1;
	x.v.add_eos = true;
	expect_create_fails(&x.v, "add_eos without eos");

	tiny_bpe(&x, "no-such-pre");
	expect_create_fails(&x.v, "an unknown pre-tokenizer");
	for (i = 0; i < sizeof(bad_merge) / sizeof(bad_merge[0]); i++) {
		tiny_bpe(&x, "gpt2");
		x.merge[1] = bad_merge[i];
		x.merge_len[1] = (uint32_t)strlen(bad_merge[i]);
		expect_create_fails(&x.v, "a merge without two parts");
	}
	tiny_bpe(&x, "gpt2");
	x.v.merges = NULL;
	expect_create_fails(&x.v, "merges announced but missing");
	tiny_bpe(&x, "gpt2");
	x.v.merge_lens = NULL;
	expect_create_fails(&x.v, "merges without lengths");
	tiny_bpe(&x, "gpt2");
	x.v.n_merges = (1u << 24) + 1;
	expect_create_fails(&x.v, "too many merges");

	/* what is odd but valid: no types, no scores, merges naming no token */
	tiny_spm(&x);
	x.v.types = NULL;
	x.v.scores = NULL;
	{
		struct tokenizer *t = tok_create(&x.v, NULL, 0);

		assert_non_null(t);
		/* all scores equal: leftmost first, "▁a" then "▁ab"; "<s>" is text */
		expect_ids(t, "ab", 2, true, true, (uint32_t[]){ 1, SPM_BASE + 5 }, 2);
		expect_ids(t, "<s>", 3, false, true, (uint32_t[]){ SPM_BASE, 3 + '<', 3 + 's', 3 + '>' },
			   4);
		tok_free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiny_spm),
		cmocka_unit_test(test_tiny_bpe),
		cmocka_unit_test(test_tiny_long),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_create_rejects),
		cmocka_unit_test(test_ref_llama2),
		cmocka_unit_test(test_ref_llama3),
		cmocka_unit_test(test_ref_qwen3),
		cmocka_unit_test(test_stream_llama2),
		cmocka_unit_test(test_stream_llama3),
		cmocka_unit_test(test_stream_qwen3),
		cmocka_unit_test(test_stream_split_character),
		cmocka_unit_test(test_special_tokens),
		cmocka_unit_test(test_add_eos),
		cmocka_unit_test(test_invalid_utf8_real),
		cmocka_unit_test(test_long_inputs),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
