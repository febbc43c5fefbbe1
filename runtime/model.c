// SPDX-License-Identifier: GPL-2.0
/*
 * Model description from GGUF: the llama.cpp key and tensor names of the
 * "llama" and "qwen2" architectures, every shape checked against the
 * hyper-parameters, and the tokenizer vocabulary gathered for tok_create().
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "model.h"

static int fail(struct model *m, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->err, sizeof(m->err), fmt, ap);
	va_end(ap);
	return err;
}

/**
 * model_arch_name() - the GGUF general.architecture string
 * @a:		the architecture
 *
 * Return: "llama" or "qwen2".
 */
const char *model_arch_name(enum model_arch a)
{
	return a == ARCH_QWEN2 ? "qwen2" : "llama";
}

/* "<arch>.<suffix>" as a u32, required or with a default. */
static int hp_u32(struct model *m, const char *suffix, uint32_t *out, bool required)
{
	char key[128];
	int err;

	snprintf(key, sizeof(key), "%s.%s", model_arch_name(m->hp.arch), suffix);
	err = gguf_get_u32(&m->gguf, key, out);
	if (err == -ENOENT && !required)
		return 0;
	if (err == -ENOENT)
		return fail(m, -EINVAL, "missing key '%s'", key);
	if (err)
		return fail(m, -EINVAL, "key '%s' is not an unsigned 32-bit integer", key);
	return 0;
}

static int hp_f32(struct model *m, const char *suffix, float *out, bool required)
{
	char key[128];
	int err;

	snprintf(key, sizeof(key), "%s.%s", model_arch_name(m->hp.arch), suffix);
	err = gguf_get_f32(&m->gguf, key, out);
	if (err == -ENOENT && !required)
		return 0;
	if (err)
		return fail(m, -EINVAL, err == -ENOENT ? "missing key '%s'" :
			    "key '%s' is not a float", key);
	return 0;
}

static int read_hparams(struct model *m)
{
	struct model_hparams *hp = &m->hp;
	struct gguf_str arch;
	int err;

	if (gguf_get_str(&m->gguf, "general.architecture", &arch))
		return fail(m, -EINVAL, "missing key 'general.architecture'");
	if (gguf_str_eq(arch, "llama")) {
		hp->arch = ARCH_LLAMA;
		hp->rope = ROPE_NORMAL;
	} else if (gguf_str_eq(arch, "qwen2")) {
		hp->arch = ARCH_QWEN2;
		hp->rope = ROPE_NEOX;
		hp->qkv_bias = true;
	} else {
		return fail(m, -EOPNOTSUPP, "architecture '%.*s' is not supported (llama, qwen2)",
			    (int)(arch.len > 32 ? 32 : arch.len), arch.p);
	}
	hp->rms_eps = 1e-5f;
	hp->rope_freq_base = 10000.0f;
	hp->n_ctx_train = 2048;
	err = hp_u32(m, "embedding_length", &hp->n_embd, true);
	err = err ? err : hp_u32(m, "block_count", &hp->n_layer, true);
	err = err ? err : hp_u32(m, "feed_forward_length", &hp->n_ff, true);
	err = err ? err : hp_u32(m, "attention.head_count", &hp->n_head, true);
	err = err ? err : hp_u32(m, "context_length", &hp->n_ctx_train, false);
	err = err ? err : hp_f32(m, "attention.layer_norm_rms_epsilon", &hp->rms_eps, false);
	err = err ? err : hp_f32(m, "rope.freq_base", &hp->rope_freq_base, false);
	if (err)
		return err;
	hp->n_head_kv = hp->n_head;
	err = hp_u32(m, "attention.head_count_kv", &hp->n_head_kv, false);
	if (err)
		return err;
	if (!hp->n_embd || !hp->n_layer || !hp->n_ff || !hp->n_head || !hp->n_head_kv ||
	    hp->n_embd > 65536 || hp->n_layer > 1024 || hp->n_ff > 1 << 20 ||
	    hp->n_head > 1024)
		return fail(m, -EINVAL, "absurd hyper-parameters: embd %u layers %u ff %u heads %u",
			    hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head);
	if (hp->n_head % hp->n_head_kv)
		return fail(m, -EINVAL, "head_count %u is not a multiple of head_count_kv %u",
			    hp->n_head, hp->n_head_kv);
	if (hp->n_embd % hp->n_head)
		return fail(m, -EINVAL, "embedding_length %u is not a multiple of head_count %u",
			    hp->n_embd, hp->n_head);
	hp->head_dim = hp->n_embd / hp->n_head;
	err = hp_u32(m, "attention.key_length", &hp->head_dim, false);
	if (err)
		return err;
	if (!hp->head_dim || hp->head_dim > 1024 || hp->head_dim % 2)
		return fail(m, -EINVAL, "head dimension %u", hp->head_dim);
	hp->n_rot = hp->head_dim;
	err = hp_u32(m, "rope.dimension_count", &hp->n_rot, false);
	if (err)
		return err;
	if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
		return fail(m, -EINVAL, "rope.dimension_count %u for head dimension %u",
			    hp->n_rot, hp->head_dim);
	if (!(hp->rms_eps > 0 && hp->rms_eps < 1) ||
	    !(hp->rope_freq_base > 0 && hp->rope_freq_base < 1e12f))
		return fail(m, -EINVAL, "rms epsilon %g or rope base %g out of range",
			    hp->rms_eps, hp->rope_freq_base);
	return 0;
}

/* Find @name and check its shape (ne0, ne1; ne1 = 0 for a vector). */
static int tensor(struct model *m, const char *name, uint64_t ne0, uint64_t ne1,
		  bool required, const struct gguf_tensor **out)
{
	const struct gguf_tensor *t = gguf_find_tensor(&m->gguf, name);
	const struct dtype_info *ti;

	*out = NULL;
	if (!t)
		return required ? fail(m, -EINVAL, "missing tensor '%s'", name) : 0;
	ti = dtype_info(t->type);
	if (!ti->supported)
		return fail(m, -EOPNOTSUPP, "tensor '%s': type %s is not supported "
			    "(F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, "
			    "Q6_K)", name, ti->name);
	if (ne1 ? (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1) :
		  (t->n_dims != 1 || t->ne[0] != ne0))
		return fail(m, -EINVAL, "tensor '%s': shape [%llu, %llu], want [%llu, %llu]",
			    name, (unsigned long long)t->ne[0],
			    (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 0),
			    (unsigned long long)ne0, (unsigned long long)ne1);
	*out = t;
	return 0;
}

static int layer_tensors(struct model *m, uint32_t i)
{
	const struct model_hparams *hp = &m->hp;
	struct model_layer *l = &m->layers[i];
	uint64_t q = (uint64_t)hp->n_head * hp->head_dim, kv = (uint64_t)hp->n_head_kv * hp->head_dim;
	char n[96];
	int err;

#define T(field, suffix, ne0, ne1, req)						\
	do {									\
		snprintf(n, sizeof(n), "blk.%u.%s", i, suffix);			\
		err = tensor(m, n, ne0, ne1, req, &l->field);			\
		if (err)							\
			return err;						\
	} while (0)
	T(attn_norm, "attn_norm.weight", hp->n_embd, 0, true);
	T(wq, "attn_q.weight", hp->n_embd, q, true);
	T(wk, "attn_k.weight", hp->n_embd, kv, true);
	T(wv, "attn_v.weight", hp->n_embd, kv, true);
	T(wo, "attn_output.weight", q, hp->n_embd, true);
	T(bq, "attn_q.bias", q, 0, hp->qkv_bias);
	T(bk, "attn_k.bias", kv, 0, hp->qkv_bias);
	T(bv, "attn_v.bias", kv, 0, hp->qkv_bias);
	T(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, true);
	T(w_gate, "ffn_gate.weight", hp->n_embd, hp->n_ff, true);
	T(w_up, "ffn_up.weight", hp->n_embd, hp->n_ff, true);
	T(w_down, "ffn_down.weight", hp->n_ff, hp->n_embd, true);
#undef T
	return 0;
}

static int read_tensors(struct model *m)
{
	struct model_hparams *hp = &m->hp;
	const struct gguf_tensor *e = gguf_find_tensor(&m->gguf, "token_embd.weight");
	uint32_t i;
	int err;

	if (!e)
		return fail(m, -EINVAL, "missing tensor 'token_embd.weight'");
	if (e->n_dims != 2 || e->ne[0] != hp->n_embd || !e->ne[1] || e->ne[1] > 1 << 24)
		return fail(m, -EINVAL, "tensor 'token_embd.weight': shape [%llu, %llu] for "
			    "embedding_length %u", (unsigned long long)e->ne[0],
			    (unsigned long long)e->ne[1], hp->n_embd);
	hp->n_vocab = (uint32_t)e->ne[1];
	err = tensor(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd);
	err = err ? err : tensor(m, "output_norm.weight", hp->n_embd, 0, true, &m->output_norm);
	err = err ? err : tensor(m, "output.weight", hp->n_embd, hp->n_vocab, false, &m->output);
	if (err)
		return err;
	hp->tied_embeddings = !m->output;
	m->layers = calloc(hp->n_layer, sizeof(*m->layers));
	if (!m->layers)
		return fail(m, -ENOMEM, "out of memory");
	for (i = 0; i < hp->n_layer; i++) {
		err = layer_tensors(m, i);
		if (err)
			return err;
	}
	return 0;
}

/* Token texts, scores, types and merges as tok_create() wants them. */
static int read_vocab(struct model *m)
{
	struct tok_vocab *v = &m->vocab;
	const struct gguf_kv *toks, *scores = NULL, *types = NULL, *merges = NULL;
	struct gguf_str model, pre;
	uint64_t i, n, nm = 0;
	uint32_t u;
	bool b;
	char *mem;

	memset(v, 0, sizeof(*v));
	if (gguf_get_str(&m->gguf, "tokenizer.ggml.model", &model))
		return fail(m, -EINVAL, "missing key 'tokenizer.ggml.model'");
	if (gguf_str_eq(model, "llama")) {
		v->model = TOK_MODEL_SPM;
	} else if (gguf_str_eq(model, "gpt2")) {
		v->model = TOK_MODEL_BPE;
	} else {
		return fail(m, -EOPNOTSUPP, "tokenizer model '%.*s' is not supported (llama, gpt2)",
			    (int)(model.len > 32 ? 32 : model.len), model.p);
	}
	if (gguf_get_arr(&m->gguf, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &toks))
		return fail(m, -EINVAL, "missing or mistyped key 'tokenizer.ggml.tokens'");
	n = toks->n;
	if (!n || n > 1 << 24)
		return fail(m, -EINVAL, "key 'tokenizer.ggml.tokens': %llu tokens",
			    (unsigned long long)n);
	if (n != m->hp.n_vocab)
		return fail(m, -EINVAL, "tokenizer has %llu tokens, token_embd.weight %u rows",
			    (unsigned long long)n, m->hp.n_vocab);
	if (gguf_find(&m->gguf, "tokenizer.ggml.scores") &&
	    (gguf_get_arr(&m->gguf, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores) ||
	     scores->n != n))
		return fail(m, -EINVAL, "key 'tokenizer.ggml.scores' is not %llu f32",
			    (unsigned long long)n);
	if (gguf_find(&m->gguf, "tokenizer.ggml.token_type") &&
	    (gguf_get_arr(&m->gguf, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types) ||
	     types->n != n))
		return fail(m, -EINVAL, "key 'tokenizer.ggml.token_type' is not %llu i32",
			    (unsigned long long)n);
	if (gguf_find(&m->gguf, "tokenizer.ggml.merges")) {
		if (gguf_get_arr(&m->gguf, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges))
			return fail(m, -EINVAL, "key 'tokenizer.ggml.merges' is not a string array");
		nm = merges->n;
	}
	if (v->model == TOK_MODEL_BPE && !merges)
		return fail(m, -EINVAL, "gpt2 tokenizer without 'tokenizer.ggml.merges'");
	for (i = 0; i < n; i++)
		if (toks->strs[i].len > 1024)
			return fail(m, -EINVAL, "token %llu is %llu bytes long",
				    (unsigned long long)i, (unsigned long long)toks->strs[i].len);
	for (i = 0; i < nm; i++)
		if (merges->strs[i].len > 2048)
			return fail(m, -EINVAL, "merge %llu is too long", (unsigned long long)i);

	/* One block: token pointers and lengths, scores, types, merges. */
	mem = calloc(1, n * (sizeof(char *) + 4 + 4 + 4) + nm * (sizeof(char *) + 4) + 64);
	if (!mem)
		return fail(m, -ENOMEM, "out of memory");
	m->vocab_mem = mem;
	v->tokens = (const char *const *)mem;
	mem += n * sizeof(char *);
	v->merges = (const char *const *)mem;
	mem += nm * sizeof(char *);
	v->token_lens = (const uint32_t *)mem;
	mem += n * 4;
	v->scores = scores ? (const float *)mem : NULL;
	mem += n * 4;
	v->types = types ? (const int32_t *)mem : NULL;
	mem += n * 4;
	v->merge_lens = (const uint32_t *)mem;
	for (i = 0; i < n; i++) {
		((const char **)v->tokens)[i] = toks->strs[i].p;
		((uint32_t *)v->token_lens)[i] = (uint32_t)toks->strs[i].len;
	}
	if (scores)
		memcpy((float *)v->scores, scores->data, n * 4);
	if (types)
		memcpy((int32_t *)v->types, types->data, n * 4);
	for (i = 0; i < nm; i++) {
		((const char **)v->merges)[i] = merges->strs[i].p;
		((uint32_t *)v->merge_lens)[i] = (uint32_t)merges->strs[i].len;
	}
	v->n_tokens = (uint32_t)n;
	v->n_merges = (uint32_t)nm;
	v->pre = NULL;
	if (!gguf_get_str(&m->gguf, "tokenizer.ggml.pre", &pre)) {
		snprintf(m->pre, sizeof(m->pre), "%.*s", (int)(pre.len > 63 ? 63 : pre.len),
			 pre.p);
		v->pre = m->pre;
	}
	v->bos = v->eos = v->unk = -1;
	if (!gguf_get_u32(&m->gguf, "tokenizer.ggml.bos_token_id", &u))
		v->bos = u < n ? (int32_t)u : -1;
	if (!gguf_get_u32(&m->gguf, "tokenizer.ggml.eos_token_id", &u))
		v->eos = u < n ? (int32_t)u : -1;
	if (!gguf_get_u32(&m->gguf, "tokenizer.ggml.unknown_token_id", &u))
		v->unk = u < n ? (int32_t)u : -1;
	v->add_bos = v->model == TOK_MODEL_SPM;
	if (!gguf_get_bool(&m->gguf, "tokenizer.ggml.add_bos_token", &b))
		v->add_bos = b;
	if (!gguf_get_bool(&m->gguf, "tokenizer.ggml.add_eos_token", &b))
		v->add_eos = b;
	v->add_space_prefix = v->model == TOK_MODEL_SPM;
	if (!gguf_get_bool(&m->gguf, "tokenizer.ggml.add_space_prefix", &b))
		v->add_space_prefix = b;
	return 0;
}

static int model_init(struct model *m, const char *path)
{
	struct gguf_str name;
	int err;

	err = read_hparams(m);
	if (!err)
		err = read_tensors(m);
	if (!err)
		err = read_vocab(m);
	if (err) {
		char msg[sizeof(m->err)];

		snprintf(msg, sizeof(msg), "%.200s: %.300s", path, m->err);
		model_free(m);
		snprintf(m->err, sizeof(m->err), "%s", msg);
		return err;
	}
	if (!gguf_get_str(&m->gguf, "general.name", &name))
		snprintf(m->name, sizeof(m->name), "%.*s", (int)(name.len > 127 ? 127 : name.len),
			 name.p);
	return 0;
}

/**
 * model_load() - map a GGUF model and check that llmq can run it
 * @m:		filled on success; m->err says why not on failure
 * @path:	the .gguf file
 *
 * Return: 0, or -errno with m->err naming the key or tensor at fault.
 */
int model_load(struct model *m, const char *path)
{
	int err;

	memset(m, 0, sizeof(*m));
	err = gguf_open(&m->gguf, path);
	if (err)
		return fail(m, err, "%s", m->gguf.err);
	return model_init(m, path);
}

/**
 * model_parse() - model_load() for a GGUF image already in memory
 * @m:		filled on success
 * @buf:	the image, which must outlive @m
 * @size:	its bytes
 *
 * Return: as model_load().
 */
int model_parse(struct model *m, const void *buf, size_t size)
{
	int err;

	memset(m, 0, sizeof(*m));
	err = gguf_parse(&m->gguf, buf, size);
	if (err)
		return fail(m, err, "%s", m->gguf.err);
	return model_init(m, "(memory)");
}

/**
 * model_default_path() - where the bundled model is
 * @buf:	receives the path
 * @len:	its size
 *
 * Installed, it is LLMQ_MODEL_DIR/LLMQ_DEFAULT_MODEL (make install puts it
 * there); in a source tree it is models/ two levels above the running
 * binary (build/bin/llmqd finds models/), so a fresh clone serves it without
 * installing anything; a build made elsewhere (make O=/tmp/x) finds the
 * models/ of the tree it was built from, LLMQ_SRC_MODEL_DIR, when nothing
 * is installed.
 *
 * Return: @buf, or NULL when neither exists; @buf then names the installed
 * path, for the message.
 */
const char *model_default_path(char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../../models/%s", exe, LLMQ_DEFAULT_MODEL);
			if (!access(buf, R_OK))
				return buf;
		}
	}
	snprintf(buf, len, "%s/%s", LLMQ_MODEL_DIR, LLMQ_DEFAULT_MODEL);
	if (!access(buf, R_OK))
		return buf;
	/* A build made outside its tree (make O=/tmp/x): that tree's models/. */
	snprintf(buf, len, "%s/%s", LLMQ_SRC_MODEL_DIR, LLMQ_DEFAULT_MODEL);
	if (!access(buf, R_OK))
		return buf;
	snprintf(buf, len, "%s/%s", LLMQ_MODEL_DIR, LLMQ_DEFAULT_MODEL);
	return NULL;
}

/**
 * model_free() - release a model
 * @m:		from model_load()
 */
void model_free(struct model *m)
{
	free(m->layers);
	free(m->vocab_mem);
	gguf_close(&m->gguf);
	m->layers = NULL;
	m->vocab_mem = NULL;
}
