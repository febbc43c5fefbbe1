// SPDX-License-Identifier: GPL-2.0
/*
 * GGUF reader.  The file is mapped read-only and every count, length, offset
 * and size is checked before it is used: a hostile file gets a message that
 * names the key or tensor at fault, never a crash.  Strings and tensor data
 * are referenced in place; only the key and tensor tables are allocated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "gguf.h"

#define MAX_NAME	256		/* longest tensor name accepted */

struct cursor {
	const uint8_t	*p;
	const uint8_t	*end;
	struct gguf	*g;
};

static const uint8_t type_size[GGUF_TYPE_COUNT] = {
	[GGUF_TYPE_UINT8] = 1, [GGUF_TYPE_INT8] = 1, [GGUF_TYPE_UINT16] = 2,
	[GGUF_TYPE_INT16] = 2, [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4,
	[GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1, [GGUF_TYPE_UINT64] = 8,
	[GGUF_TYPE_INT64] = 8, [GGUF_TYPE_FLOAT64] = 8,
};

static const char *const type_names[GGUF_TYPE_COUNT] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
	"u64", "i64", "f64",
};

/**
 * gguf_type_name() - short name of a metadata value type
 * @type:	GGUF_TYPE_*
 *
 * Return: the name, or "?" for an unknown type.
 */
const char *gguf_type_name(uint32_t type)
{
	return type < GGUF_TYPE_COUNT ? type_names[type] : "?";
}

static int fail(struct gguf *g, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->err, sizeof(g->err), fmt, ap);
	va_end(ap);
	return err;
}

static uint64_t left(const struct cursor *c)
{
	return (uint64_t)(c->end - c->p);
}

static int take(struct cursor *c, uint64_t n, const uint8_t **out)
{
	if (n > left(c))
		return -EBADMSG;
	*out = c->p;
	c->p += n;
	return 0;
}

static int rd_u32(struct cursor *c, uint32_t *v)
{
	const uint8_t *p;

	if (take(c, 4, &p))
		return -EBADMSG;
	memcpy(v, p, 4);
	return 0;
}

static int rd_u64(struct cursor *c, uint64_t *v)
{
	const uint8_t *p;

	if (take(c, 8, &p))
		return -EBADMSG;
	memcpy(v, p, 8);
	return 0;
}

static int rd_str(struct cursor *c, struct gguf_str *s)
{
	const uint8_t *p;

	if (rd_u64(c, &s->len) || take(c, s->len, &p))
		return -EBADMSG;
	s->p = (const char *)p;
	return 0;
}

/* For messages: a key or name, shortened and made printable. */
static const char *show(struct gguf_str s, char *buf, size_t len)
{
	size_t i, n = s.len < len - 1 ? s.len : len - 1;

	for (i = 0; i < n; i++)
		buf[i] = s.p[i] >= 0x20 && s.p[i] < 0x7f ? s.p[i] : '?';
	buf[n] = '\0';
	return buf;
}

static int read_value(struct cursor *c, struct gguf_kv *kv)
{
	struct gguf *g = c->g;
	char kb[80];
	uint64_t i, bytes;
	const uint8_t *p = NULL;

	show(kv->key, kb, sizeof(kb));
	if (rd_u32(c, &kv->type))
		return fail(g, -EBADMSG, "key '%s': truncated before its type", kb);
	if (kv->type >= GGUF_TYPE_COUNT)
		return fail(g, -EINVAL, "key '%s': unknown value type %u", kb, kv->type);
	kv->n = 1;
	if (kv->type == GGUF_TYPE_STRING) {
		struct gguf_str s;

		kv->data = c->p;
		if (rd_str(c, &s))
			return fail(g, -EBADMSG, "key '%s': string runs past the end", kb);
		return 0;
	}
	if (kv->type != GGUF_TYPE_ARRAY) {
		kv->data = c->p;
		if (take(c, type_size[kv->type], &p))
			return fail(g, -EBADMSG, "key '%s': value runs past the end", kb);
		if (kv->type == GGUF_TYPE_BOOL && *p > 1)
			return fail(g, -EINVAL, "key '%s': bool value %u", kb, *p);
		return 0;
	}
	if (rd_u32(c, &kv->arr_type) || rd_u64(c, &kv->n))
		return fail(g, -EBADMSG, "key '%s': truncated array header", kb);
	if (kv->arr_type >= GGUF_TYPE_COUNT || kv->arr_type == GGUF_TYPE_ARRAY)
		return fail(g, -EINVAL, "key '%s': unsupported array element type %u", kb,
			    kv->arr_type);
	kv->data = c->p;
	if (kv->arr_type != GGUF_TYPE_STRING) {
		if (kv->n > left(c) / type_size[kv->arr_type])
			return fail(g, -EBADMSG, "key '%s': %llu-element array runs past the end",
				    kb, (unsigned long long)kv->n);
		bytes = kv->n * type_size[kv->arr_type];
		take(c, bytes, &p);
		for (i = 0; kv->arr_type == GGUF_TYPE_BOOL && i < kv->n; i++)
			if (p[i] > 1)
				return fail(g, -EINVAL, "key '%s': bool element %llu is %u", kb,
					    (unsigned long long)i, p[i]);
		return 0;
	}
	/* Every string takes at least its 8-byte length. */
	if (kv->n > left(c) / 8)
		return fail(g, -EBADMSG, "key '%s': %llu-string array runs past the end", kb,
			    (unsigned long long)kv->n);
	kv->strs = malloc((kv->n ? kv->n : 1) * sizeof(*kv->strs));
	if (!kv->strs)
		return fail(g, -ENOMEM, "key '%s': out of memory", kb);
	for (i = 0; i < kv->n; i++)
		if (rd_str(c, &kv->strs[i]))
			return fail(g, -EBADMSG, "key '%s': string %llu runs past the end", kb,
				    (unsigned long long)i);
	return 0;
}

static int str_cmp(struct gguf_str a, struct gguf_str b)
{
	int r = memcmp(a.p, b.p, a.len < b.len ? a.len : b.len);

	return r ? r : (a.len > b.len) - (a.len < b.len);
}

static int kv_cmp(const void *a, const void *b)
{
	return str_cmp(((const struct gguf_kv *)a)->key, ((const struct gguf_kv *)b)->key);
}

static int tensor_cmp(const void *a, const void *b)
{
	const struct gguf_tensor *const *x = a, *const *y = b;

	return str_cmp((*x)->name, (*y)->name);
}

/* Duplicate keys and names are refused; sorting copies finds them in n log n. */
static int check_unique(struct gguf *g)
{
	struct gguf_kv *kvs = NULL;
	const struct gguf_tensor **ts = NULL;
	char b[80];
	uint64_t i;
	int err = 0;

	if (g->n_kv > 1) {
		kvs = malloc(g->n_kv * sizeof(*kvs));
		if (!kvs)
			return fail(g, -ENOMEM, "out of memory");
		memcpy(kvs, g->kv, g->n_kv * sizeof(*kvs));
		qsort(kvs, g->n_kv, sizeof(*kvs), kv_cmp);
		for (i = 1; i < g->n_kv && !err; i++)
			if (!str_cmp(kvs[i - 1].key, kvs[i].key))
				err = fail(g, -EINVAL, "duplicate key '%s'", show(kvs[i].key, b,
										 sizeof(b)));
		free(kvs);
	}
	if (!err && g->n_tensors > 1) {
		ts = malloc(g->n_tensors * sizeof(*ts));
		if (!ts)
			return fail(g, -ENOMEM, "out of memory");
		for (i = 0; i < g->n_tensors; i++)
			ts[i] = &g->tensors[i];
		qsort(ts, g->n_tensors, sizeof(*ts), tensor_cmp);
		for (i = 1; i < g->n_tensors && !err; i++)
			if (!str_cmp(ts[i - 1]->name, ts[i]->name))
				err = fail(g, -EINVAL, "duplicate tensor '%s'",
					   show(ts[i]->name, b, sizeof(b)));
		free(ts);
	}
	return err;
}

static int read_tensor_info(struct cursor *c, struct gguf_tensor *t, uint64_t idx)
{
	struct gguf *g = c->g;
	const struct dtype_info *ti;
	char nb[80];
	uint32_t d;

	if (rd_str(c, &t->name))
		return fail(g, -EBADMSG, "tensor %llu: name runs past the end",
			    (unsigned long long)idx);
	show(t->name, nb, sizeof(nb));
	if (!t->name.len || t->name.len > MAX_NAME)
		return fail(g, -EINVAL, "tensor %llu: name of %llu bytes",
			    (unsigned long long)idx, (unsigned long long)t->name.len);
	if (rd_u32(c, &t->n_dims))
		return fail(g, -EBADMSG, "tensor '%s': truncated", nb);
	if (!t->n_dims || t->n_dims > GGUF_MAX_DIMS)
		return fail(g, -EINVAL, "tensor '%s': %u dimensions", nb, t->n_dims);
	t->nelem = 1;
	for (d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	for (d = 0; d < t->n_dims; d++) {
		if (rd_u64(c, &t->ne[d]))
			return fail(g, -EBADMSG, "tensor '%s': truncated", nb);
		if (!t->ne[d] || t->ne[d] > INT64_MAX / t->nelem)
			return fail(g, -EOVERFLOW, "tensor '%s': dimension %u of %llu", nb, d,
				    (unsigned long long)t->ne[d]);
		t->nelem *= t->ne[d];
	}
	if (rd_u32(c, &t->type) || rd_u64(c, &t->offset))
		return fail(g, -EBADMSG, "tensor '%s': truncated", nb);
	ti = dtype_info(t->type);
	if (!ti)
		return fail(g, -EINVAL, "tensor '%s': unknown type %u", nb, t->type);
	if (t->ne[0] % ti->block)
		return fail(g, -EINVAL, "tensor '%s': %llu columns is not a multiple of %s's %u",
			    nb, (unsigned long long)t->ne[0], ti->name, ti->block);
	if (dtype_row_bytes(t->type, t->nelem, &t->size))
		return fail(g, -EOVERFLOW, "tensor '%s': size overflows", nb);
	return 0;
}

static int parse(struct gguf *g)
{
	struct cursor c = { .p = g->base, .end = g->base + g->size, .g = g };
	const struct gguf_kv *al;
	uint32_t magic;
	uint64_t i, data;
	char nb[80];
	int err;

	if (rd_u32(&c, &magic) || rd_u32(&c, &g->version) || rd_u64(&c, &g->n_tensors) ||
	    rd_u64(&c, &g->n_kv))
		return fail(g, -EBADMSG, "file of %zu bytes is too short for a GGUF header",
			    g->size);
	if (magic != GGUF_MAGIC)
		return fail(g, -EINVAL, "not a GGUF file (magic 0x%08x)", magic);
	if (g->version < 2 || g->version > GGUF_VERSION)
		return fail(g, -EPROTONOSUPPORT, "GGUF version %u (llmq reads 2 and 3)",
			    g->version);
	/* A key needs >= 12 bytes, a tensor info >= 32: bound the tables first. */
	if (g->n_kv > left(&c) / 12)
		return fail(g, -EBADMSG, "%llu metadata keys cannot fit in the file",
			    (unsigned long long)g->n_kv);
	if (g->n_tensors > left(&c) / 32)
		return fail(g, -EBADMSG, "%llu tensors cannot fit in the file",
			    (unsigned long long)g->n_tensors);
	g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
	g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
	if (!g->kv || !g->tensors)
		return fail(g, -ENOMEM, "out of memory");
	for (i = 0; i < g->n_kv; i++) {
		if (rd_str(&c, &g->kv[i].key))
			return fail(g, -EBADMSG, "key %llu runs past the end",
				    (unsigned long long)i);
		if (!g->kv[i].key.len)
			return fail(g, -EINVAL, "key %llu is empty", (unsigned long long)i);
		err = read_value(&c, &g->kv[i]);
		if (err)
			return err;
	}
	for (i = 0; i < g->n_tensors; i++) {
		err = read_tensor_info(&c, &g->tensors[i], i);
		if (err)
			return err;
	}
	err = check_unique(g);
	if (err)
		return err;

	g->alignment = GGUF_DEFAULT_ALIGNMENT;
	al = gguf_find(g, "general.alignment");
	if (al) {
		uint32_t a;

		if (al->type != GGUF_TYPE_UINT32)
			return fail(g, -EINVAL, "key 'general.alignment': type %s, want u32",
				    gguf_type_name(al->type));
		memcpy(&a, al->data, 4);
		if (!a || (a & (a - 1)) || a > (1u << 20))
			return fail(g, -EINVAL, "key 'general.alignment': %u is not a power of two",
				    a);
		g->alignment = a;
	}
	data = (uint64_t)(c.p - g->base);
	data = (data + g->alignment - 1) / g->alignment * g->alignment;
	g->data_off = data;
	if (g->n_tensors && data > g->size)
		return fail(g, -EBADMSG, "data section starts past the end of the file");
	for (i = 0; i < g->n_tensors; i++) {
		struct gguf_tensor *t = &g->tensors[i];

		show(t->name, nb, sizeof(nb));
		if (t->offset % g->alignment)
			return fail(g, -EINVAL, "tensor '%s': offset %llu is not %llu-aligned", nb,
				    (unsigned long long)t->offset,
				    (unsigned long long)g->alignment);
		if (t->offset > g->size - data || t->size > g->size - data - t->offset)
			return fail(g, -EBADMSG, "tensor '%s': data at %llu+%llu runs past the end",
				    nb, (unsigned long long)t->offset,
				    (unsigned long long)t->size);
		t->data = g->base + data + t->offset;
	}
	return 0;
}

static void release(struct gguf *g)
{
	uint64_t i;

	if (g->kv)
		for (i = 0; i < g->n_kv; i++)
			free(g->kv[i].strs);
	free(g->kv);
	free(g->tensors);
	g->kv = NULL;
	g->tensors = NULL;
}

/**
 * gguf_parse() - validate and index a GGUF image in memory
 * @g:		filled on success; g->err holds the reason on failure
 * @buf:	the image; must outlive @g
 * @size:	its bytes
 *
 * Return: 0; -EINVAL / -EBADMSG / -EOVERFLOW / -EPROTONOSUPPORT for a bad
 * file (g->err names the key or tensor), -ENOMEM.
 */
int gguf_parse(struct gguf *g, const void *buf, size_t size)
{
	int err;

	memset(g, 0, sizeof(*g));
	g->base = buf;
	g->size = size;
	err = parse(g);
	if (err)
		release(g);
	return err;
}

/**
 * gguf_open() - map and validate a GGUF file
 * @g:		filled on success; g->err holds the reason on failure
 * @path:	the file
 *
 * Return: as gguf_parse(), or the -errno of open/fstat/mmap.
 */
int gguf_open(struct gguf *g, const char *path)
{
	struct stat st;
	void *map;
	int fd, err;

	memset(g, 0, sizeof(*g));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(g, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		close(fd);
		return fail(g, err, "%s: not a regular file", path);
	}
	if (!st.st_size) {
		close(fd);
		return fail(g, -EBADMSG, "%s: empty file", path);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	err = -errno;
	close(fd);
	if (map == MAP_FAILED)
		return fail(g, err, "%s: mmap: %s", path, strerror(-err));
	err = gguf_parse(g, map, (size_t)st.st_size);
	if (err) {
		char msg[sizeof(g->err)];

		snprintf(msg, sizeof(msg), "%s", g->err);
		munmap(map, (size_t)st.st_size);
		fail(g, err, "%s", msg);
		return err;
	}
	g->mapped = true;
	return 0;
}

/**
 * gguf_close() - release a parsed file
 * @g:		from gguf_open() or gguf_parse()
 */
void gguf_close(struct gguf *g)
{
	release(g);
	if (g->mapped)
		munmap((void *)g->base, g->size);
	g->mapped = false;
	g->base = NULL;
}

/**
 * gguf_str_eq() - compare a file string with a C string
 * @s:		from the file
 * @c:		NUL-terminated
 *
 * Return: true when equal.
 */
bool gguf_str_eq(struct gguf_str s, const char *c)
{
	size_t n = strlen(c);

	return s.len == n && !memcmp(s.p, c, n);
}

/**
 * gguf_find() - a metadata entry by key
 * @g:		the file
 * @key:	the key
 *
 * Return: the entry, or NULL.
 */
const struct gguf_kv *gguf_find(const struct gguf *g, const char *key)
{
	uint64_t i;

	for (i = 0; i < g->n_kv; i++)
		if (gguf_str_eq(g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

/**
 * gguf_find_tensor() - a tensor by name
 * @g:		the file
 * @name:	the name
 *
 * Return: the tensor, or NULL.
 */
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name)
{
	uint64_t i;

	for (i = 0; i < g->n_tensors; i++)
		if (gguf_str_eq(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

/**
 * gguf_get_u32() - an integer entry that fits 32 bits unsigned
 * @g:		the file
 * @key:	the key
 * @out:	its value
 *
 * Accepts any integer type, as llama.cpp's writers differ.
 *
 * Return: 0, -ENOENT if absent, -EINVAL if not an integer, -ERANGE if it
 * does not fit.
 */
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out)
{
	const struct gguf_kv *kv = gguf_find(g, key);
	int64_t s = 0;
	uint64_t u = 0;
	bool sgn = false;

	if (!kv)
		return -ENOENT;
	switch (kv->type) {
	case GGUF_TYPE_UINT8:	u = *kv->data; break;
	case GGUF_TYPE_UINT16:	{ uint16_t v; memcpy(&v, kv->data, 2); u = v; break; }
	case GGUF_TYPE_UINT32:	{ uint32_t v; memcpy(&v, kv->data, 4); u = v; break; }
	case GGUF_TYPE_UINT64:	memcpy(&u, kv->data, 8); break;
	case GGUF_TYPE_INT8:	s = (int8_t)*kv->data; sgn = true; break;
	case GGUF_TYPE_INT16:	{ int16_t v; memcpy(&v, kv->data, 2); s = v; sgn = true; break; }
	case GGUF_TYPE_INT32:	{ int32_t v; memcpy(&v, kv->data, 4); s = v; sgn = true; break; }
	case GGUF_TYPE_INT64:	memcpy(&s, kv->data, 8); sgn = true; break;
	default:
		return -EINVAL;
	}
	if (sgn) {
		if (s < 0)
			return -ERANGE;
		u = (uint64_t)s;
	}
	if (u > UINT32_MAX)
		return -ERANGE;
	*out = (uint32_t)u;
	return 0;
}

/**
 * gguf_get_f32() - a floating-point entry
 * @g:		the file
 * @key:	the key
 * @out:	its value
 *
 * Return: 0, -ENOENT, or -EINVAL if not f32/f64.
 */
int gguf_get_f32(const struct gguf *g, const char *key, float *out)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type == GGUF_TYPE_FLOAT32) {
		memcpy(out, kv->data, 4);
	} else if (kv->type == GGUF_TYPE_FLOAT64) {
		double d;

		memcpy(&d, kv->data, 8);
		*out = (float)d;
	} else {
		return -EINVAL;
	}
	return 0;
}

/**
 * gguf_get_bool() - a boolean entry
 * @g:		the file
 * @key:	the key
 * @out:	its value
 *
 * Return: 0, -ENOENT, or -EINVAL if not a bool.
 */
int gguf_get_bool(const struct gguf *g, const char *key, bool *out)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != GGUF_TYPE_BOOL)
		return -EINVAL;
	*out = *kv->data;
	return 0;
}

/**
 * gguf_get_str() - a string entry
 * @g:		the file
 * @key:	the key
 * @out:	its value, pointing into the file
 *
 * Return: 0, -ENOENT, or -EINVAL if not a string.
 */
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != GGUF_TYPE_STRING)
		return -EINVAL;
	memcpy(&out->len, kv->data, 8);
	out->p = (const char *)kv->data + 8;
	return 0;
}

/**
 * gguf_get_arr() - an array entry of a given element type
 * @g:		the file
 * @key:	the key
 * @type:	the element type wanted
 * @out:	the entry (n, data or strs)
 *
 * Return: 0, -ENOENT, or -EINVAL if not an array of @type.
 */
int gguf_get_arr(const struct gguf *g, const char *key, uint32_t type,
		 const struct gguf_kv **out)
{
	const struct gguf_kv *kv = gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != type)
		return -EINVAL;
	*out = kv;
	return 0;
}
