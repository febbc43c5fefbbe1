// SPDX-License-Identifier: GPL-2.0
/*
 * What backend-cuda.so offers the program that loads it
 * (runtime/backend_cuda_load.c).  Linked with -Bsymbolic, so these point at
 * the plugin's own functions, not at the loader's of the same names.
 */
#include "../runtime/backend.h"

const struct backend_plugin llmq_backend_plugin = {
	.abi		= BACKEND_PLUGIN_ABI,
	.create		= backend_cuda_create,
	.kv_block_bytes	= backend_cuda_kv_block_bytes,
};
