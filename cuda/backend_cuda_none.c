// SPDX-License-Identifier: GPL-2.0
/*
 * The CUDA backend's entry points in a build without nvcc: creating one
 * fails with a reason, so --engine cuda says what is missing instead of
 * being an unknown word.
 */
#include <errno.h>
#include <stdio.h>

#include "../runtime/backend.h"

/**
 * backend_cuda_kv_block_bytes() - bytes one KV block would take on a GPU
 * @m:		the model
 * @block_size:	tokens per block
 *
 * Return: as in the CUDA build: K and V of every layer, BF16.
 */
size_t backend_cuda_kv_block_bytes(const struct model *m, uint32_t block_size)
{
	return (size_t)2 * m->hp.n_layer * block_size * m->hp.n_head_kv * m->hp.head_dim * 2;
}

/**
 * backend_cuda_create() - fail: this build has no CUDA backend
 * @m:		unused
 * @p:		unused
 * @cp:		unused
 * @err:	the reason
 * @errlen:	its size
 *
 * Return: NULL.
 */
struct backend *backend_cuda_create(const struct model *m, const struct backend_params *p,
				    const struct backend_cuda_params *cp, char *err,
				    size_t errlen)
{
	(void)m;
	(void)p;
	(void)cp;
	snprintf(err, errlen, "this build of llmq has no CUDA backend (nvcc was not found "
		 "when it was built; rebuild with NVCC=/path/to/nvcc)");
	return NULL;
}
