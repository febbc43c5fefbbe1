// SPDX-License-Identifier: GPL-2.0
/*
 * A Hugging Face checkpoint as llama.cpp's converter reads it: config.json
 * for the hyper-parameters, model.safetensors (an 8-byte header length, a
 * JSON header of name -> dtype, shape, byte range, then the data) mapped
 * read-only.  Tensor names are translated to GGUF's, and the Q and K rows of
 * a "llama" checkpoint are permuted from Hugging Face's rotate-half RoPE
 * layout to GGUF's interleaved pairs, as convert_hf_to_gguf.py does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>

#include "dtype.h"
#include "hf_model.h"

#define HEADER_MAX	(64u << 20)

static json_object *get(json_object *o, const char *k)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* An integer key in [lo, hi]; @def when absent and @def >= 0. */
static int get_u32(json_object *cfg, const char *k, int64_t def, uint32_t lo, uint32_t hi,
		   uint32_t *out, char *err, size_t errlen)
{
	json_object *v = get(cfg, k);
	int64_t x;

	if (!v || json_object_is_type(v, json_type_null)) {
		if (def < 0) {
			snprintf(err, errlen, "config.json: no %s", k);
			return -EINVAL;
		}
		*out = (uint32_t)def;
		return 0;
	}
	x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || x < lo || x > hi) {
		snprintf(err, errlen, "config.json: %s is not an integer in [%u, %u]", k, lo, hi);
		return -EINVAL;
	}
	*out = (uint32_t)x;
	return 0;
}

static int get_f32(json_object *cfg, const char *k, double def, float *out, char *err,
		   size_t errlen)
{
	json_object *v = get(cfg, k);
	double x;

	if (!v || json_object_is_type(v, json_type_null)) {
		*out = (float)def;
		return 0;
	}
	x = json_object_get_double(v);
	if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
	    !(x > 0 && x < 1e12)) {
		snprintf(err, errlen, "config.json: %s is not a positive number", k);
		return -EINVAL;
	}
	*out = (float)x;
	return 0;
}

static int read_config(struct hf_model *m, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	json_object *cfg, *v;
	const char *type;
	uint32_t head_dim;
	int ret = -EINVAL;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	cfg = json_object_from_file(path);
	if (!cfg) {
		snprintf(err, errlen, "%s: %s", path, access(path, R_OK) ? strerror(errno) :
			 "not JSON");
		return -EINVAL;
	}
	type = json_object_get_string(get(cfg, "model_type"));
	if (!type || (strcmp(type, "llama") && strcmp(type, "qwen2"))) {
		snprintf(err, errlen, "%s: model_type %s is not llama or qwen2", path,
			 type ? type : "(none)");
		goto out;
	}
	snprintf(m->arch, sizeof(m->arch), "%s", type);
	v = get(cfg, "rope_scaling");
	if (v && !json_object_is_type(v, json_type_null)) {
		snprintf(err, errlen, "%s: rope_scaling is not supported", path);
		goto out;
	}
	if (get_u32(cfg, "hidden_size", -1, 1, 65536, &m->n_embd, err, errlen) ||
	    get_u32(cfg, "num_hidden_layers", -1, 1, 1024, &m->n_layer, err, errlen) ||
	    get_u32(cfg, "num_attention_heads", -1, 1, 1024, &m->n_head, err, errlen) ||
	    get_u32(cfg, "num_key_value_heads", m->n_head, 1, 1024, &m->n_head_kv, err,
		    errlen) ||
	    get_u32(cfg, "intermediate_size", -1, 1, 1 << 20, &m->n_ff, err, errlen) ||
	    get_u32(cfg, "max_position_embeddings", 2048, 1, 1 << 24, &m->n_ctx, err, errlen) ||
	    get_u32(cfg, "vocab_size", -1, 1, 1 << 24, &m->n_vocab, err, errlen) ||
	    get_f32(cfg, "rope_theta", 10000.0, &m->rope_base, err, errlen) ||
	    get_f32(cfg, "rms_norm_eps", 1e-6, &m->rms_eps, err, errlen))
		goto out;
	if (m->n_embd % m->n_head || m->n_head % m->n_head_kv || (m->n_embd / m->n_head) % 2) {
		snprintf(err, errlen, "%s: %u heads of %u with %u KV heads do not divide evenly",
			 path, m->n_head, m->n_embd, m->n_head_kv);
		goto out;
	}
	if (!get_u32(cfg, "head_dim", m->n_embd / m->n_head, 1, 65536, &head_dim, err, errlen) &&
	    head_dim != m->n_embd / m->n_head) {
		snprintf(err, errlen, "%s: head_dim %u is not hidden_size / heads", path, head_dim);
		goto out;
	}
	v = get(cfg, "tie_word_embeddings");
	m->tied = v ? json_object_get_boolean(v) : !strcmp(m->arch, "qwen2");
	ret = 0;
out:
	json_object_put(cfg);
	return ret;
}

static uint32_t st_type(const char *s)
{
	if (!strcmp(s, "F32"))
		return GGML_TYPE_F32;
	if (!strcmp(s, "F16"))
		return GGML_TYPE_F16;
	if (!strcmp(s, "BF16"))
		return GGML_TYPE_BF16;
	return UINT32_MAX;	/* reported only if a needed tensor has it */
}

static int parse_entry(struct hf_model *m, const char *name, json_object *e, uint64_t data_size,
		       const uint8_t *data, char *err, size_t errlen)
{
	json_object *shape = get(e, "shape"), *offs = get(e, "data_offsets");
	struct hf_tensor *t = &m->tensors[m->n_tensors];
	uint64_t nelem = 1, b, end, esize;
	size_t i, nd;

	if (!json_object_is_type(get(e, "dtype"), json_type_string) ||
	    !json_object_is_type(shape, json_type_array) ||
	    !json_object_is_type(offs, json_type_array) || json_object_array_length(offs) != 2) {
		snprintf(err, errlen, "model.safetensors: %s: no dtype, shape or data_offsets",
			 name);
		return -EINVAL;
	}
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	m->n_tensors++;
	t->type = st_type(json_object_get_string(get(e, "dtype")));
	nd = json_object_array_length(shape);
	t->n_dims = nd >= 1 && nd <= 2 ? (uint32_t)nd : 0;
	for (i = 0; i < nd; i++) {
		int64_t d = json_object_get_int64(json_object_array_get_idx(shape, i));

		if (d < 0 || d > (1ll << 40) || (d && nelem > UINT64_MAX / (uint64_t)d)) {
			snprintf(err, errlen, "model.safetensors: %s: bad shape", name);
			return -EINVAL;
		}
		nelem *= (uint64_t)d;
		if (i < 2)
			t->shape[i] = (uint64_t)d;
	}
	b = (uint64_t)json_object_get_int64(json_object_array_get_idx(offs, 0));
	end = (uint64_t)json_object_get_int64(json_object_array_get_idx(offs, 1));
	esize = t->type == GGML_TYPE_F32 ? 4 : 2;
	if (b > end || end > data_size ||
	    (t->type != UINT32_MAX && (nelem > UINT64_MAX / esize || end - b != nelem * esize))) {
		snprintf(err, errlen, "model.safetensors: %s: data_offsets [%llu, %llu] do not "
			 "fit its shape or the file", name, (unsigned long long)b,
			 (unsigned long long)end);
		return -EINVAL;
	}
	t->data = data + b;
	return 0;
}

static int read_safetensors(struct hf_model *m, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX], *hdr = NULL;
	json_object *j = NULL;
	uint64_t hlen;
	struct stat st;
	int fd, ret;

	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s (sharded checkpoints are not supported)", path,
			 strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) || st.st_size < 8) {
		snprintf(err, errlen, "%s: too short for a safetensors file", path);
		close(fd);
		return -EINVAL;
	}
	m->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		ret = -errno;
		m->map = NULL;
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(-ret));
		return ret;
	}
	m->map_size = (size_t)st.st_size;
	memcpy(&hlen, m->map, 8);	/* little-endian, as is every machine we run on */
	ret = -EINVAL;
	if (hlen > HEADER_MAX || hlen > m->map_size - 8) {
		snprintf(err, errlen, "%s: header length %llu does not fit", path,
			 (unsigned long long)hlen);
		goto out;
	}
	hdr = strndup((const char *)m->map + 8, hlen);
	j = hdr ? json_tokener_parse(hdr) : NULL;
	if (!j || !json_object_is_type(j, json_type_object)) {
		snprintf(err, errlen, "%s: the header is not a JSON object", path);
		goto out;
	}
	m->tensors = calloc(json_object_object_length(j) + 1, sizeof(*m->tensors));
	if (!m->tensors) {
		ret = -ENOMEM;
		goto out;
	}
	json_object_object_foreach(j, name, e) {
		if (!strcmp(name, "__metadata__"))
			continue;
		ret = parse_entry(m, name, e, m->map_size - 8 - hlen,
				  (const uint8_t *)m->map + 8 + hlen, err, errlen);
		if (ret)
			goto out;
	}
	ret = 0;
out:
	json_object_put(j);
	free(hdr);
	return ret;
}

/**
 * hf_model_open() - read a checkpoint directory
 * @m:		filled on success
 * @dir:	holds config.json and model.safetensors
 * @err:	a message on failure
 * @errlen:	its size
 *
 * Return: 0, or -errno with @err set; hf_model_close() in either case.
 */
int hf_model_open(struct hf_model *m, const char *dir, char *err, size_t errlen)
{
	int ret;

	memset(m, 0, sizeof(*m));
	ret = read_config(m, dir, err, errlen);
	if (!ret)
		ret = read_safetensors(m, dir, err, errlen);
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", dir);
	return ret;
}

/* GGUF's per-layer suffixes and Hugging Face's. */
static const char *const layer_names[][2] = {
	{ "attn_norm.weight", "input_layernorm.weight" },
	{ "attn_q.weight", "self_attn.q_proj.weight" },
	{ "attn_k.weight", "self_attn.k_proj.weight" },
	{ "attn_v.weight", "self_attn.v_proj.weight" },
	{ "attn_q.bias", "self_attn.q_proj.bias" },
	{ "attn_k.bias", "self_attn.k_proj.bias" },
	{ "attn_v.bias", "self_attn.v_proj.bias" },
	{ "attn_output.weight", "self_attn.o_proj.weight" },
	{ "ffn_norm.weight", "post_attention_layernorm.weight" },
	{ "ffn_gate.weight", "mlp.gate_proj.weight" },
	{ "ffn_up.weight", "mlp.up_proj.weight" },
	{ "ffn_down.weight", "mlp.down_proj.weight" },
};

static int hf_name_of(const char *gguf, char *out, size_t len)
{
	unsigned int layer;
	size_t i;
	int n;

	if (!strcmp(gguf, "token_embd.weight"))
		return snprintf(out, len, "model.embed_tokens.weight") < (int)len ? 0 : -EINVAL;
	if (!strcmp(gguf, "output_norm.weight"))
		return snprintf(out, len, "model.norm.weight") < (int)len ? 0 : -EINVAL;
	if (!strcmp(gguf, "output.weight"))
		return snprintf(out, len, "lm_head.weight") < (int)len ? 0 : -EINVAL;
	if (sscanf(gguf, "blk.%u.%n", &layer, &n) != 1)
		return -ENOENT;
	for (i = 0; i < sizeof(layer_names) / sizeof(layer_names[0]); i++)
		if (!strcmp(gguf + n, layer_names[i][0]))
			return snprintf(out, len, "model.layers.%u.%s", layer,
					layer_names[i][1]) < (int)len ? 0 : -EINVAL;
	return -ENOENT;
}

/**
 * hf_model_tensor() - the checkpoint's tensor for a GGUF tensor name
 * @m:		the checkpoint
 * @gguf_name:	e.g. "blk.3.attn_q.weight"
 * @hf_name:	receives the Hugging Face name looked for (for messages)
 * @len:	its size
 *
 * Return: the tensor, or NULL if the checkpoint lacks it.
 */
const struct hf_tensor *hf_model_tensor(const struct hf_model *m, const char *gguf_name,
					char *hf_name, size_t len)
{
	uint32_t i;

	if (hf_name_of(gguf_name, hf_name, len))
		return NULL;
	for (i = 0; i < m->n_tensors; i++)
		if (!strcmp(m->tensors[i].name, hf_name))
			return &m->tensors[i];
	return NULL;
}

/*
 * Hugging Face keeps each head's rotated pairs as (first half, second half);
 * GGUF "llama" keeps them interleaved.  GGUF row h*hd + 2*j + s holds
 * Hugging Face row h*hd + s*hd/2 + j.
 */
static uint64_t source_row(const struct hf_model *m, const char *gguf_name, uint64_t row)
{
	const char *suffix = strrchr(gguf_name, '.');
	uint64_t hd = m->n_embd / m->n_head, h, j, s;

	if (strcmp(m->arch, "llama") || !suffix || suffix - gguf_name < 6 ||
	    (strncmp(suffix - 6, "attn_q", 6) && strncmp(suffix - 6, "attn_k", 6)))
		return row;
	h = row / hd;
	j = (row % hd) / 2;
	s = row % 2;
	return h * hd + s * (hd / 2) + j;
}

/**
 * hf_model_row() - one row of a tensor in GGUF order, as floats
 * @m:		the checkpoint
 * @t:		from hf_model_tensor()
 * @gguf_name:	the GGUF tensor it becomes (decides the Q/K permutation)
 * @row:	GGUF row (a 1-D tensor has one)
 * @out:	receives the row's elements
 *
 * Return: 0, or -EINVAL for a dtype the converter does not read.
 */
int hf_model_row(const struct hf_model *m, const struct hf_tensor *t, const char *gguf_name,
		 uint64_t row, float *out)
{
	uint64_t ne0 = t->n_dims == 2 ? t->shape[1] : t->shape[0];
	uint64_t src = t->n_dims == 2 ? source_row(m, gguf_name, row) : 0;

	if (t->type == UINT32_MAX)
		return -EINVAL;
	return dequantize(t->type, t->data + src * ne0 * (t->type == GGML_TYPE_F32 ? 4 : 2),
			  out, ne0);
}

/**
 * hf_model_close() - unmap and free
 * @m:		the checkpoint
 */
void hf_model_close(struct hf_model *m)
{
	uint32_t i;

	for (i = 0; i < m->n_tensors; i++)
		free(m->tensors[i].name);
	free(m->tensors);
	if (m->map)
		munmap(m->map, m->map_size);
	memset(m, 0, sizeof(*m));
}
