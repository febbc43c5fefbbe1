/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tensor element types as GGUF (ggml) numbers them: sizes, conversion of
 * half-precision scalars, and (de)quantisation of the block formats.
 */
#ifndef LLMQD_DTYPE_H
#define LLMQD_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ggml_type {
	GGML_TYPE_F32	= 0,
	GGML_TYPE_F16	= 1,
	GGML_TYPE_Q4_0	= 2,
	GGML_TYPE_Q4_1	= 3,
	GGML_TYPE_Q5_0	= 6,
	GGML_TYPE_Q5_1	= 7,
	GGML_TYPE_Q8_0	= 8,
	GGML_TYPE_Q8_1	= 9,
	GGML_TYPE_Q2_K	= 10,
	GGML_TYPE_Q3_K	= 11,
	GGML_TYPE_Q4_K	= 12,
	GGML_TYPE_Q5_K	= 13,
	GGML_TYPE_Q6_K	= 14,
	GGML_TYPE_Q8_K	= 15,
	GGML_TYPE_I8	= 24,
	GGML_TYPE_I16	= 25,
	GGML_TYPE_I32	= 26,
	GGML_TYPE_I64	= 27,
	GGML_TYPE_F64	= 28,
	GGML_TYPE_BF16	= 30,
	GGML_TYPE_COUNT	= 40,
};

#define QK8_0	32
#define QK4_0	32
#define QK_K	256

/**
 * struct dtype_info - layout of one element type
 * @name:	as llama.cpp prints it
 * @block:	elements per block (1 for scalar types)
 * @size:	bytes per block, 0 for types GGUF does not define
 * @supported:	llmq can dequantise it
 */
struct dtype_info {
	const char	*name;
	uint32_t	block;
	uint32_t	size;
	bool		supported;
};

const struct dtype_info *dtype_info(uint32_t type);
int dtype_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

int dequantize(uint32_t type, const void *src, float *dst, uint64_t n);
int quantize(uint32_t type, const float *src, void *dst, uint64_t n);

#endif /* LLMQD_DTYPE_H */
