// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of the bundled model (models/kjv-11m-q8_0.gguf): it is the file its
 * provenance names, it loads, its tokenizer encodes as SentencePiece's own
 * library does, its greedy continuations are the ones the float64 PyTorch
 * reference computed from the same file (models/kjv-11m-q8_0.golden.json),
 * in the engine and through `llmq run`, and `make demo` in its short form
 * gives every client a complete answer.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "backend.h"
#include "model.h"
#include "testenv.h"

#define MODEL		"models/kjv-11m-q8_0.gguf"
#define PROVENANCE	"models/kjv-11m-q8_0.provenance"
#define GOLDEN		"models/kjv-11m-q8_0.golden.json"
#define SPM_MODEL	"models/kjv-11m.tokenizer.model"
#define MAX_BYTES	(25u << 20)

/* The standard output of a shell command, NUL-terminated; exit status in *rc. */
static char *run(const char *cmd, int *rc)
{
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	FILE *p = popen(cmd, "r");

	assert_non_null(buf);
	assert_non_null(p);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	*rc = pclose(p);
	*rc = WIFEXITED(*rc) ? WEXITSTATUS(*rc) : -1;
	return buf;
}

static void test_provenance(void **state)
{
	char line[512], want[80] = "", *got;
	struct stat st;
	FILE *f;
	int rc;

	(void)state;
	f = fopen(PROVENANCE, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "sha256: %64s", want) == 1)
			break;
	fclose(f);
	assert_int_equal(strlen(want), 64);
	got = run("sha256sum " MODEL, &rc);
	assert_int_equal(rc, 0);
	if (strncmp(got, want, 64))
		fail_msg("%s has sha256 %.64s, its provenance says %s", MODEL, got, want);
	free(got);
	assert_int_equal(stat(MODEL, &st), 0);
	assert_true(st.st_size > 0 && (size_t)st.st_size < MAX_BYTES);
	print_message("[          ] %s: %lld bytes, sha256 as its provenance says\n", MODEL,
		      (long long)st.st_size);
}

struct golden {
	json_object	*root;
	size_t		n_cases;
	uint32_t	n_tokens;
};

static void golden_load(struct golden *g)
{
	g->root = json_object_from_file(GOLDEN);
	assert_non_null(g->root);
	g->n_cases = json_object_array_length(json_object_object_get(g->root, "cases"));
	g->n_tokens = (uint32_t)json_object_get_int(json_object_object_get(g->root, "n_tokens"));
	assert_true(g->n_cases >= 4);
	assert_true(g->n_tokens >= 32);
}

static json_object *golden_case(const struct golden *g, size_t i, const char *key)
{
	return json_object_object_get(
		json_object_array_get_idx(json_object_object_get(g->root, "cases"), i), key);
}

static void ids_equal(json_object *want, const uint32_t *got, size_t n, const char *what)
{
	size_t i;

	assert_int_equal(json_object_array_length(want), n);
	for (i = 0; i < n; i++) {
		uint32_t w = (uint32_t)json_object_get_int(json_object_array_get_idx(want, i));

		if (w != got[i])
			fail_msg("%s: token %zu is %u, the reference has %u", what, i, got[i], w);
	}
}

/*
 * The engine's greedy continuation of each golden prompt, token by token,
 * equals the PyTorch reference's: the prompt encodes to the same ids and
 * every argmax agrees.
 */
static void test_golden_engine(void **state)
{
	struct backend_params bp = { .n_threads = 2, .max_tokens = 64, .max_context = 256 };
	uint32_t table[16], out[64], *ids, pos, i;
	struct tokenizer *t;
	struct backend *b;
	struct golden g;
	struct model m;
	char err[256];
	size_t c, n;
	float *logits;

	(void)state;
	golden_load(&g);
	if (model_load(&m, MODEL))
		fail_msg("%s: %s", MODEL, m.err);
	bp.kv_bytes = 16 * backend_kv_block_bytes(&m, 16, BACKEND_KV_AUTO);
	b = backend_cpu_create(&m, &bp, err, sizeof(err));
	if (!b)
		fail_msg("backend: %s", err);
	t = tok_create(&m.vocab, err, sizeof(err));
	if (!t)
		fail_msg("tokenizer: %s", err);
	logits = malloc(b->n_vocab * sizeof(float));
	for (i = 0; i < 16; i++)
		table[i] = 15 - i;
	for (c = 0; c < g.n_cases; c++) {
		const char *prompt = json_object_get_string(golden_case(&g, c, "prompt"));
		struct backend_seq s = { .block_table = table, .n_blocks = 16 };

		assert_int_equal(tok_encode(t, prompt, strlen(prompt), true, false, &ids, &n), 0);
		ids_equal(golden_case(&g, c, "prompt_ids"), ids, n, prompt);
		s.tokens = ids;
		s.n_tokens = (uint32_t)n;
		assert_int_equal(backend_step(b, &s, 1, logits), 0);
		pos = (uint32_t)n;
		for (i = 0; i < g.n_tokens; i++) {
			out[i] = argmax(logits, b->n_vocab);
			s.pos = pos++;
			s.tokens = &out[i];
			s.n_tokens = 1;
			assert_int_equal(backend_step(b, &s, 1, logits), 0);
		}
		ids_equal(golden_case(&g, c, "ids"), out, g.n_tokens, prompt);
		print_message("[          ] \"%s\": %u greedy tokens as the reference "
			      "(its smallest top-2 gap %.3f)\n", prompt, g.n_tokens,
			      json_object_get_double(golden_case(&g, c, "min_top2_gap")));
		free(ids);
	}
	free(logits);
	tok_free(t);
	backend_destroy(b);
	model_free(&m);
	json_object_put(g.root);
}

static const char *skip_space(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* `llmq run` with no --model finds the bundled model and prints the text. */
static void test_golden_cli(void **state)
{
	char cmd[2048], *q, *out;
	struct golden g;
	const char *p;
	int rc;

	(void)state;
	golden_load(&g);
	p = json_object_get_string(golden_case(&g, 0, "prompt"));
	q = cmd + snprintf(cmd, sizeof(cmd),
			   "%s/llmq run --temperature 0 --max-tokens %u --threads 2 '",
			   getenv("LLMQ_BIN_DIR"), g.n_tokens);
	for (; *p; p++) {	/* the prompts have no quotes; refuse if one ever does */
		assert_true(*p != '\'');
		*q++ = *p;
	}
	strcpy(q, "'");
	out = run(cmd, &rc);
	assert_int_equal(rc, 0);
	if (strcmp(skip_space(out),
		   skip_space(json_object_get_string(golden_case(&g, 0, "text")))))
		fail_msg("llmq run printed '%s', the reference '%s'", out,
			 json_object_get_string(golden_case(&g, 0, "text")));
	free(out);
	json_object_put(g.root);
}

/* Texts SentencePiece and llmq must split alike, byte fallback included. */
static const char *const tok_texts[] = {
	"In the beginning God created the heaven and the earth.",
	"And the LORD spake unto Moses, saying,",
	"Thou shalt not.\nAnd it came to pass,  that   the people\tcried.",
	"In the 600th year, 12 days, 3.14 and 1,000,000 shekels",
	"Zerubbabel, Mahershalalhashbaz; Jehoshaphat! Melchizedek?",
	"unto thee, O God, unto thee do we give thanks",
	"café naïve — “quoted” ‘single’ Ωμέγα 漢字 emoji \xf0\x9f\x99\x8f",
	" leading space and trailing space ",
	"",
};

static void test_tokenizer_vs_sentencepiece(void **state)
{
	char cmd[4096], path[] = "/tmp/llmq-test-model-XXXXXX", *out, *line, *save;
	struct tokenizer *t;
	struct model m;
	char err[256];
	uint32_t *ids;
	size_t i, j, n;
	FILE *f;
	int fd, rc;

	(void)state;
	rc = system("/usr/bin/python3 -c 'import sentencepiece' 2>/dev/null");
	if (rc) {
		print_message("[  SKIP    ] /usr/bin/python3 cannot import sentencepiece: the "
			      "tokenizer is not compared (apt-get install python3-sentencepiece)\n");
		skip();
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	for (i = 0; i < sizeof(tok_texts) / sizeof(tok_texts[0]); i++)
		fprintf(f, "%s%c", tok_texts[i], 0);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c '"
		 "import sys, sentencepiece as s\n"
		 "sp = s.SentencePieceProcessor(model_file=\"%s\")\n"
		 "for x in open(sys.argv[1], \"rb\").read().split(b\"\\0\")[:-1]:\n"
		 "    print(\" \".join(map(str, [sp.bos_id()] + sp.encode(x.decode()))))\n"
		 "' %s", SPM_MODEL, path);
	out = run(cmd, &rc);
	unlink(path);
	assert_int_equal(rc, 0);
	if (model_load(&m, MODEL))
		fail_msg("%s: %s", MODEL, m.err);
	t = tok_create(&m.vocab, err, sizeof(err));
	assert_non_null(t);
	line = strtok_r(out, "\n", &save);
	for (i = 0; i < sizeof(tok_texts) / sizeof(tok_texts[0]); i++) {
		char *tokp, *s2;

		assert_non_null(line);
		assert_int_equal(tok_encode(t, tok_texts[i], strlen(tok_texts[i]), true, false,
					    &ids, &n), 0);
		for (j = 0, tokp = strtok_r(line, " ", &s2); tokp;
		     j++, tokp = strtok_r(NULL, " ", &s2)) {
			if (j >= n || ids[j] != (uint32_t)atoi(tokp))
				fail_msg("\"%s\": token %zu: llmq %d, SentencePiece %s", tok_texts[i],
					 j, j < n ? (int)ids[j] : -1, tokp);
		}
		assert_int_equal(j, n);
		free(ids);
		line = strtok_r(NULL, "\n", &save);
	}
	print_message("[          ] %zu texts tokenized as SentencePiece does\n", i);
	free(out);
	tok_free(t);
	model_free(&m);
}

/* make demo's short form: every client answered, llmqd stopped cleanly. */
static void test_demo_fast(void **state)
{
	char cmd[2048], *out;
	int rc, i;

	(void)state;
	snprintf(cmd, sizeof(cmd), "DEMO_FAST=1 scripts/demo.sh %s/.. 2>&1 </dev/null",
		 getenv("LLMQ_BIN_DIR"));
	out = run(cmd, &rc);
	if (rc)
		fail_msg("demo exited %d:\n%s", rc, out);
	for (i = 0; i < 6; i++) {
		char label[32];

		snprintf(label, sizeof(label), "[client %d, pid", i);
		if (!strstr(out, label))
			fail_msg("no answer for client %d:\n%s", i, out);
	}
	assert_null(strstr(out, "did not get a complete answer"));
	assert_non_null(strstr(out, "12 tokens"));
	assert_non_null(strstr(out, "llmqd stopped cleanly"));
	free(out);
}

static bool have_python_module(const char *mod)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c 'import %s' 2>/dev/null", mod);
	return !system(cmd);
}

/* A corpus of made-up words, chapters of ten lines, as corpus.py writes. */
static void write_corpus(const char *dir)
{
	static const char letters[] = "abcdefghijklmnoprstuvwy";
	const char *names[] = { "train.txt", "heldout.txt" };
	char words[200][10], path[1200];
	uint64_t x = 88172645463325252ull;
	int i, j, k, f;

	for (i = 0; i < 200; i++) {
		int len = 2 + (int)((x = x * 6364136223846793005ull + 1) >> 61);

		for (j = 0; j < len; j++)
			words[i][j] = letters[((x = x * 6364136223846793005ull + 1) >> 59) & 15];
		words[i][len] = '\0';
	}
	for (f = 0; f < 2; f++) {
		FILE *o;

		snprintf(path, sizeof(path), "%s/%s", dir, names[f]);
		o = fopen(path, "w");
		assert_non_null(o);
		for (i = 0; i < (f ? 10 : 150); i++) {
			for (j = 0; j < 10; j++) {
				int n = 4 + (int)((x = x * 6364136223846793005ull + 1) >> 61);

				for (k = 0; k < n; k++)
					fprintf(o, "%s%s", k ? " " : "",
						words[((x = x * 6364136223846793005ull + 1) >> 56) % 200]);
				fputs(".\n", o);
			}
			fputc('\n', o);
		}
		fclose(o);
	}
}

/*
 * tools/train: the same command twice gives the same GGUF file, and llmq
 * runs the converted model as the trainer's own PyTorch forward does.
 */
static void test_train_reproducible(void **state)
{
	char dir[] = "/tmp/llmq-test-train-XXXXXX", cmd[8192], path[1200];
	struct backend_params bp = { .n_threads = 2, .max_tokens = 64, .max_context = 64 };
	uint32_t ids[64], table[4] = { 2, 0, 3, 1 }, n = 0;
	double num = 0, den = 0;
	float *want, *got;
	struct backend *b;
	struct model m;
	char err[256];
	size_t i, v;
	FILE *f;
	int r;

	(void)state;
	if (!have_python_module("torch") || !have_python_module("sentencepiece")) {
		print_message("[  SKIP    ] /usr/bin/python3 lacks torch or sentencepiece: training "
			      "not checked (apt-get install python3-torch python3-sentencepiece)\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	write_corpus(dir);
	for (r = 1; r <= 2; r++) {
		snprintf(cmd, sizeof(cmd),
			 "/usr/bin/python3 tools/train/train.py --corpus %s --out %s/hf%d "
			 "--vocab 400 --dim 32 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --ctx 32 "
			 "--max-ctx 64 --batch 4 --steps 3 --warmup 1 --eval-every 100 >/dev/null && "
			 "%s/llmq-mkmodel --hf-model %s/hf%d --name t --dtype F32 -o %s/m%d.gguf 2>/dev/null",
			 dir, dir, r, getenv("LLMQ_BIN_DIR"), dir, r, dir, r);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(cmd, sizeof(cmd), "cmp %s/m1.gguf %s/m2.gguf", dir, dir);
	assert_int_equal(system(cmd), 0);

	snprintf(path, sizeof(path), "%s/m1.gguf", dir);
	if (model_load(&m, path))
		fail_msg("%s: %s", path, m.err);
	bp.kv_bytes = 4 * backend_kv_block_bytes(&m, 16, BACKEND_KV_AUTO);
	b = backend_cpu_create(&m, &bp, err, sizeof(err));
	assert_non_null(b);
	snprintf(path, sizeof(path), "%s/hf1/check.tokens", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (n < 64 && fscanf(f, "%u", &ids[n]) == 1)
		n++;
	fclose(f);
	assert_true(n >= 16);
	v = b->n_vocab;
	want = malloc(n * v * sizeof(float));
	got = malloc(n * v * sizeof(float));
	snprintf(path, sizeof(path), "%s/hf1/check.f32", dir);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(want, sizeof(float), n * v, f), n * v);
	fclose(f);
	{
		struct backend_seq s = { .block_table = table, .n_blocks = 4, .tokens = ids,
					 .n_tokens = n, .logits = BACKEND_LOGITS_ALL };

		assert_int_equal(backend_step(b, &s, 1, got), 0);
	}
	for (i = 0; i < n * v; i++) {
		num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
		den += (double)want[i] * want[i];
	}
	print_message("[          ] two trainings, one GGUF; llmq vs the trainer's forward: "
		      "relative error %.3g (limit 1e-4)\n", sqrt(num / den));
	assert_true(sqrt(num / den) < 1e-4);
	free(want);
	free(got);
	backend_destroy(b);
	model_free(&m);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_provenance),
		cmocka_unit_test(test_golden_engine),
		cmocka_unit_test(test_golden_cli),
		cmocka_unit_test(test_tokenizer_vs_sentencepiece),
		cmocka_unit_test(test_demo_fast),
		cmocka_unit_test(test_train_reproducible),
	};

	(void)argc;
	if (testenv_bin_dir(argv[0]))
		return 1;
	return cmocka_run_group_tests_name("bundled model", tests, NULL, NULL);
}
