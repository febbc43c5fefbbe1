// SPDX-License-Identifier: GPL-2.0
/*
 * GGUF writer: metadata is serialised as it is added; tensors are described
 * up front and their data produced one tensor at a time when the file is
 * written (or one per thread, see gguf_writer_set_threads()), so a
 * multi-gigabyte model never sits in memory whole.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "gguf.h"

struct wtensor {
	char		*name;
	uint32_t	type;
	uint32_t	n_dims;
	uint64_t	ne[GGUF_MAX_DIMS];
	uint64_t	size;
	uint64_t	offset;
	gguf_fill_fn	fill;
	void		*arg;
};

struct gguf_writer {
	uint8_t		*kv;		/* serialised metadata */
	size_t		kv_len;
	size_t		kv_cap;
	uint64_t	n_kv;
	struct wtensor	*t;
	uint64_t	n_t;
	uint64_t	cap_t;
	uint64_t	alignment;
	uint64_t	data_len;
	unsigned int	threads;	/* tensors filled at once */
	int		err;		/* first error, sticky */
};

/**
 * gguf_writer_new() - start a GGUF file
 * @alignment:	tensor data alignment (a power of two; 0 for the default 32)
 *
 * Return: the writer, or NULL.
 */
struct gguf_writer *gguf_writer_new(uint64_t alignment)
{
	struct gguf_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->alignment = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;
	if (w->alignment & (w->alignment - 1))
		w->err = -EINVAL;
	if (w->alignment != GGUF_DEFAULT_ALIGNMENT)
		gguf_add_u32(w, "general.alignment", (uint32_t)w->alignment);
	w->threads = 1;
	return w;
}

/**
 * gguf_writer_set_threads() - fill up to @n tensors at once when writing
 * @w:		the writer
 * @n:		threads, the caller's among them (0 and 1: one tensor after
 *		another, the default)
 *
 * A model of random or converted weights spends its time in the fill
 * callbacks; with @n > 1 each runs on a thread of its own (so they must
 * be safe to run side by side, each on its own tensor) and writes its
 * tensor where it belongs. The file's bytes are the same for any @n; the
 * memory is a buffer of the largest tensor per thread.
 */
void gguf_writer_set_threads(struct gguf_writer *w, unsigned int n)
{
	w->threads = n ? n : 1;
}

/**
 * gguf_writer_free() - discard a writer
 * @w:		the writer
 */
void gguf_writer_free(struct gguf_writer *w)
{
	uint64_t i;

	if (!w)
		return;
	for (i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->kv);
	free(w);
}

static int put(struct gguf_writer *w, const void *p, size_t n)
{
	size_t cap;
	uint8_t *b;

	if (w->err)
		return w->err;
	if (w->kv_len + n > w->kv_cap) {
		cap = w->kv_cap ? w->kv_cap : 4096;
		while (cap < w->kv_len + n)
			cap *= 2;
		b = realloc(w->kv, cap);
		if (!b)
			return w->err = -ENOMEM;
		w->kv = b;
		w->kv_cap = cap;
	}
	memcpy(w->kv + w->kv_len, p, n);
	w->kv_len += n;
	return 0;
}

static int put_u32(struct gguf_writer *w, uint32_t v)
{
	return put(w, &v, 4);
}

static int put_u64(struct gguf_writer *w, uint64_t v)
{
	return put(w, &v, 8);
}

static int put_str(struct gguf_writer *w, const char *s, uint64_t len)
{
	put_u64(w, len);
	return put(w, s, len);
}

static int key(struct gguf_writer *w, const char *k, uint32_t type)
{
	w->n_kv++;
	put_str(w, k, strlen(k));
	return put_u32(w, type);
}

/**
 * gguf_add_u32() - add a u32 metadata entry
 * @w:		the writer
 * @k:		key
 * @v:		value
 *
 * Return: 0 or the writer's first error (errors are sticky).
 */
int gguf_add_u32(struct gguf_writer *w, const char *k, uint32_t v)
{
	key(w, k, GGUF_TYPE_UINT32);
	return put_u32(w, v);
}

/**
 * gguf_add_i32() - add an i32 metadata entry
 * @w:		the writer
 * @k:		key
 * @v:		value
 *
 * Return: 0 or the writer's first error.
 */
int gguf_add_i32(struct gguf_writer *w, const char *k, int32_t v)
{
	key(w, k, GGUF_TYPE_INT32);
	return put(w, &v, 4);
}

/**
 * gguf_add_f32() - add an f32 metadata entry
 * @w:		the writer
 * @k:		key
 * @v:		value
 *
 * Return: 0 or the writer's first error.
 */
int gguf_add_f32(struct gguf_writer *w, const char *k, float v)
{
	key(w, k, GGUF_TYPE_FLOAT32);
	return put(w, &v, 4);
}

/**
 * gguf_add_bool() - add a bool metadata entry
 * @w:		the writer
 * @k:		key
 * @v:		value
 *
 * Return: 0 or the writer's first error.
 */
int gguf_add_bool(struct gguf_writer *w, const char *k, bool v)
{
	uint8_t b = v;

	key(w, k, GGUF_TYPE_BOOL);
	return put(w, &b, 1);
}

/**
 * gguf_add_str() - add a string metadata entry
 * @w:		the writer
 * @k:		key
 * @v:		NUL-terminated value
 *
 * Return: 0 or the writer's first error.
 */
int gguf_add_str(struct gguf_writer *w, const char *k, const char *v)
{
	key(w, k, GGUF_TYPE_STRING);
	return put_str(w, v, strlen(v));
}

static const uint8_t elem_size[GGUF_TYPE_COUNT] = {
	[GGUF_TYPE_UINT8] = 1, [GGUF_TYPE_INT8] = 1, [GGUF_TYPE_UINT16] = 2,
	[GGUF_TYPE_INT16] = 2, [GGUF_TYPE_UINT32] = 4, [GGUF_TYPE_INT32] = 4,
	[GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1, [GGUF_TYPE_UINT64] = 8,
	[GGUF_TYPE_INT64] = 8, [GGUF_TYPE_FLOAT64] = 8,
};

/**
 * gguf_add_arr() - add an array of fixed-size elements
 * @w:		the writer
 * @k:		key
 * @type:	element type (not STRING or ARRAY)
 * @data:	@n little-endian elements
 * @n:		count
 *
 * Return: 0, -EINVAL for a bad type, or the writer's first error.
 */
int gguf_add_arr(struct gguf_writer *w, const char *k, uint32_t type, const void *data,
		 uint64_t n)
{
	if (type >= GGUF_TYPE_COUNT || !elem_size[type])
		return w->err = -EINVAL;
	key(w, k, GGUF_TYPE_ARRAY);
	put_u32(w, type);
	put_u64(w, n);
	return put(w, data, n * elem_size[type]);
}

/**
 * gguf_add_str_arr() - add an array of strings
 * @w:		the writer
 * @k:		key
 * @strs:	the strings
 * @lens:	their byte lengths, or NULL for NUL-terminated strings
 * @n:		count
 *
 * Return: 0 or the writer's first error.
 */
int gguf_add_str_arr(struct gguf_writer *w, const char *k, const char *const *strs,
		     const uint32_t *lens, uint64_t n)
{
	uint64_t i;

	key(w, k, GGUF_TYPE_ARRAY);
	put_u32(w, GGUF_TYPE_STRING);
	put_u64(w, n);
	for (i = 0; i < n; i++)
		put_str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
	return w->err;
}

/**
 * gguf_add_tensor_fill() - describe a tensor whose data comes at write time
 * @w:		the writer
 * @name:	tensor name
 * @type:	enum ggml_type
 * @n_dims:	1..4
 * @ne:		elements per dimension, innermost first
 * @fill:	produces the data when the file is written
 * @arg:	for @fill
 *
 * Return: 0, -EINVAL for a bad shape or type, or the writer's first error.
 */
int gguf_add_tensor_fill(struct gguf_writer *w, const char *name, uint32_t type,
			 uint32_t n_dims, const uint64_t *ne, gguf_fill_fn fill, void *arg)
{
	struct wtensor *t;
	uint64_t n = 1, cap;
	uint32_t d;

	if (w->err)
		return w->err;
	if (!n_dims || n_dims > GGUF_MAX_DIMS)
		return w->err = -EINVAL;
	if (w->n_t == w->cap_t) {
		cap = w->cap_t ? w->cap_t * 2 : 64;
		t = realloc(w->t, cap * sizeof(*t));
		if (!t)
			return w->err = -ENOMEM;
		w->t = t;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	for (d = 0; d < GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	for (d = 0; d < n_dims; d++)
		n *= ne[d];
	if (dtype_row_bytes(type, n, &t->size) || ne[0] % dtype_info(type)->block)
		return w->err = -EINVAL;
	t->name = strdup(name);
	if (!t->name)
		return w->err = -ENOMEM;
	t->type = type;
	t->n_dims = n_dims;
	t->fill = fill;
	t->arg = arg;
	t->offset = w->data_len;
	w->data_len += (t->size + w->alignment - 1) / w->alignment * w->alignment;
	w->n_t++;
	return 0;
}

static int fill_copy(void *arg, void *dst, uint64_t bytes)
{
	memcpy(dst, arg, bytes);
	return 0;
}

/**
 * gguf_add_tensor() - describe a tensor whose data is in memory
 * @w:		the writer
 * @name:	tensor name
 * @type:	enum ggml_type
 * @n_dims:	1..4
 * @ne:		elements per dimension, innermost first
 * @data:	packed data; must stay valid until gguf_write_file()
 *
 * Return: as gguf_add_tensor_fill().
 */
int gguf_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
		    const uint64_t *ne, const void *data)
{
	return gguf_add_tensor_fill(w, name, type, n_dims, ne, fill_copy, (void *)data);
}

/* @n bytes of @p; none, and @p may be NULL (no metadata yet), for 0. */
static int wr(FILE *f, const void *p, size_t n)
{
	if (!n)
		return 0;
	return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

static int pad(FILE *f, uint64_t pos, uint64_t align)
{
	static const uint8_t zero[64];
	uint64_t n = (align - pos % align) % align;
	int err = 0;

	while (n && !err) {
		size_t k = n > sizeof(zero) ? sizeof(zero) : n;

		err = wr(f, zero, k);
		n -= k;
	}
	return err;
}

/* The tensors' data, filled on several threads at once. */
struct fill_pool {
	struct gguf_writer	*w;
	int			fd;
	uint64_t		base;		/* file offset of the data */
	uint64_t		maxsz;
	atomic_uint_fast64_t	next;		/* the next tensor to take */
	atomic_int		err;		/* the first error */
};

/* All @n bytes of @p at @off of @fd. */
static int pwrite_all(int fd, const uint8_t *p, uint64_t n, uint64_t off)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n > (1u << 30) ? 1u << 30 : n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (uint64_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* Take tensors one at a time, fill each and write it at its offset. */
static void *fill_worker(void *arg)
{
	struct fill_pool *p = arg;
	uint8_t *buf = malloc(p->maxsz);
	int err = buf ? 0 : -ENOMEM, none = 0;
	uint64_t i;

	while (!err && !atomic_load(&p->err) &&
	       (i = atomic_fetch_add(&p->next, 1)) < p->w->n_t) {
		const struct wtensor *t = &p->w->t[i];

		err = t->fill(t->arg, buf, t->size);
		if (!err)
			err = pwrite_all(p->fd, buf, t->size, p->base + t->offset);
	}
	if (err)
		atomic_compare_exchange_strong(&p->err, &none, err);
	free(buf);
	return NULL;
}

/*
 * The tensors' data from @base of @f on w->threads threads (the caller's
 * one of them), then the file's length up to the last one's padding.
 */
static int fill_parallel(struct gguf_writer *w, FILE *f, uint64_t base, uint64_t maxsz)
{
	struct fill_pool p = { .w = w, .fd = fileno(f), .base = base, .maxsz = maxsz };
	const struct wtensor *last = &w->t[w->n_t - 1];
	uint64_t end = base + last->offset + last->size;
	unsigned int i, n = w->threads < w->n_t ? w->threads : (unsigned int)w->n_t;
	unsigned int started = 0;
	pthread_t *tid;

	if (fflush(f))
		return -errno;
	tid = calloc(n, sizeof(*tid));
	if (!tid)
		return -ENOMEM;
	/* A thread that cannot start leaves its tensors to the others. */
	for (i = 1; i < n; i++)
		if (!pthread_create(&tid[started], NULL, fill_worker, &p))
			started++;
	fill_worker(&p);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	free(tid);
	if (atomic_load(&p.err))
		return atomic_load(&p.err);
	end += (w->alignment - end % w->alignment) % w->alignment;
	return ftruncate(p.fd, (off_t)end) ? -errno : 0;
}

/**
 * gguf_write_file() - write everything out
 * @w:		the writer
 * @path:	the file to create (replaced atomically via a temporary)
 *
 * Return: 0, the writer's first error, a fill callback's error, or -errno.
 */
int gguf_write_file(struct gguf_writer *w, const char *path)
{
	char tmp[4096];
	uint64_t i, pos, maxsz = 0;
	uint32_t magic = GGUF_MAGIC, ver = GGUF_VERSION;
	void *buf = NULL;
	FILE *f;
	int err = w->err;

	if (err)
		return err;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "wb");
	if (!f)
		return -errno;
	err = wr(f, &magic, 4);
	if (!err)
		err = wr(f, &ver, 4);
	if (!err)
		err = wr(f, &w->n_t, 8);
	if (!err)
		err = wr(f, &w->n_kv, 8);
	if (!err)
		err = wr(f, w->kv, w->kv_len);
	pos = 24 + w->kv_len;
	for (i = 0; i < w->n_t && !err; i++) {
		struct wtensor *t = &w->t[i];
		uint64_t len = strlen(t->name);

		err = wr(f, &len, 8);
		if (!err)
			err = wr(f, t->name, len);
		if (!err)
			err = wr(f, &t->n_dims, 4);
		if (!err)
			err = wr(f, t->ne, 8 * t->n_dims);
		if (!err)
			err = wr(f, &t->type, 4);
		if (!err)
			err = wr(f, &t->offset, 8);
		pos += 8 + len + 4 + 8 * t->n_dims + 4 + 8;
		if (t->size > maxsz)
			maxsz = t->size;
	}
	if (!err && w->n_t)
		err = pad(f, pos, w->alignment);
	if (!err && w->threads > 1 && w->n_t > 1) {
		err = fill_parallel(w, f, pos + (w->alignment - pos % w->alignment) %
				    w->alignment, maxsz);
		goto close;
	}
	if (!err && maxsz) {
		buf = malloc(maxsz);
		if (!buf)
			err = -ENOMEM;
	}
	for (i = 0; i < w->n_t && !err; i++) {
		struct wtensor *t = &w->t[i];

		err = t->fill(t->arg, buf, t->size);
		if (!err)
			err = wr(f, buf, t->size);
		if (!err)
			err = pad(f, t->size, w->alignment);
	}
close:
	free(buf);
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
