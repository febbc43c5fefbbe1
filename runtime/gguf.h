/* SPDX-License-Identifier: GPL-2.0 */
/*
 * GGUF v3 files as llama.cpp writes them: a validated, read-only view of a
 * mapped file (metadata and tensor infos point into the mapping), and a
 * writer that produces the same format.
 */
#ifndef LLMQD_GGUF_H
#define LLMQD_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GGUF_MAGIC		0x46554747U	/* "GGUF" */
#define GGUF_VERSION		3
#define GGUF_DEFAULT_ALIGNMENT	32
#define GGUF_MAX_DIMS		4

enum gguf_type {
	GGUF_TYPE_UINT8		= 0,
	GGUF_TYPE_INT8		= 1,
	GGUF_TYPE_UINT16	= 2,
	GGUF_TYPE_INT16		= 3,
	GGUF_TYPE_UINT32	= 4,
	GGUF_TYPE_INT32		= 5,
	GGUF_TYPE_FLOAT32	= 6,
	GGUF_TYPE_BOOL		= 7,
	GGUF_TYPE_STRING	= 8,
	GGUF_TYPE_ARRAY		= 9,
	GGUF_TYPE_UINT64	= 10,
	GGUF_TYPE_INT64		= 11,
	GGUF_TYPE_FLOAT64	= 12,
	GGUF_TYPE_COUNT,
};

struct gguf_str {
	const char	*p;	/* not NUL-terminated */
	uint64_t	len;
};

/**
 * struct gguf_kv - one metadata entry
 * @key:	its name
 * @type:	GGUF_TYPE_*
 * @arr_type:	element type when @type is GGUF_TYPE_ARRAY
 * @n:		element count (1 for scalars)
 * @data:	scalar or array payload in the mapping (unaligned)
 * @strs:	string arrays: each element, indexed at load
 */
struct gguf_kv {
	struct gguf_str	key;
	uint32_t	type;
	uint32_t	arr_type;
	uint64_t	n;
	const uint8_t	*data;
	struct gguf_str	*strs;
};

/**
 * struct gguf_tensor - one tensor's info
 * @name:	its name
 * @n_dims:	1..GGUF_MAX_DIMS
 * @ne:		elements per dimension, innermost first (ggml order)
 * @type:	enum ggml_type
 * @offset:	from the start of the data section
 * @nelem:	product of @ne
 * @size:	bytes
 * @data:	in the mapping
 */
struct gguf_tensor {
	struct gguf_str	name;
	uint32_t	n_dims;
	uint64_t	ne[GGUF_MAX_DIMS];
	uint32_t	type;
	uint64_t	offset;
	uint64_t	nelem;
	uint64_t	size;
	const void	*data;
};

/**
 * struct gguf - a parsed file
 */
struct gguf {
	const uint8_t		*base;
	size_t			size;
	bool			mapped;
	uint32_t		version;
	uint64_t		n_kv;
	uint64_t		n_tensors;
	struct gguf_kv		*kv;
	struct gguf_tensor	*tensors;
	uint64_t		alignment;
	uint64_t		data_off;
	char			err[256];
};

int gguf_open(struct gguf *g, const char *path);
int gguf_parse(struct gguf *g, const void *buf, size_t size);
void gguf_close(struct gguf *g);

const struct gguf_kv *gguf_find(const struct gguf *g, const char *key);
const struct gguf_tensor *gguf_find_tensor(const struct gguf *g, const char *name);
int gguf_get_u32(const struct gguf *g, const char *key, uint32_t *out);
int gguf_get_f32(const struct gguf *g, const char *key, float *out);
int gguf_get_bool(const struct gguf *g, const char *key, bool *out);
int gguf_get_str(const struct gguf *g, const char *key, struct gguf_str *out);
int gguf_get_arr(const struct gguf *g, const char *key, uint32_t type,
		 const struct gguf_kv **out);
bool gguf_str_eq(struct gguf_str s, const char *c);
const char *gguf_type_name(uint32_t type);

/* Writer (gguf_write.c). */
struct gguf_writer;

struct gguf_writer *gguf_writer_new(uint64_t alignment);
void gguf_writer_free(struct gguf_writer *w);
int gguf_add_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_add_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_add_f32(struct gguf_writer *w, const char *key, float v);
int gguf_add_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_add_str(struct gguf_writer *w, const char *key, const char *v);
int gguf_add_arr(struct gguf_writer *w, const char *key, uint32_t type, const void *data,
		 uint64_t n);
int gguf_add_str_arr(struct gguf_writer *w, const char *key, const char *const *strs,
		     const uint32_t *lens, uint64_t n);
int gguf_add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
		    const uint64_t *ne, const void *data);

/* Fills @bytes of tensor data at @dst when the file is written; 0 or -errno. */
typedef int (*gguf_fill_fn)(void *arg, void *dst, uint64_t bytes);

int gguf_add_tensor_fill(struct gguf_writer *w, const char *name, uint32_t type,
			 uint32_t n_dims, const uint64_t *ne, gguf_fill_fn fill, void *arg);
void gguf_writer_set_threads(struct gguf_writer *w, unsigned int n);
int gguf_write_file(struct gguf_writer *w, const char *path);

#endif /* LLMQD_GGUF_H */
