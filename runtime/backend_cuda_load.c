// SPDX-License-Identifier: GPL-2.0
/*
 * The CUDA backend is a plugin, backend-cuda.so, loaded when --engine cuda
 * first asks for it.  llmqd and llmq themselves then need none of the CUDA
 * libraries (cudart and cuBLAS are half a gigabyte): the one build runs on
 * machines with and without them, and a machine without them learns why
 * --engine cuda cannot work from dlerror() instead of from the dynamic
 * loader refusing to start the program.
 *
 * Where it is looked for: $LLMQ_CUDA_BACKEND if set; else lib/llmq/ beside
 * the running binary's bin/ (a source tree's build/lib/llmq/, or an
 * installed PREFIX/lib/llmq/); else LLMQ_PLUGIN_DIR, where make install
 * puts it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

#ifndef LLMQ_PLUGIN_DIR
#define LLMQ_PLUGIN_DIR "/usr/local/lib/llmq"
#endif
#define CUDA_PLUGIN	"backend-cuda.so"

static const struct backend_plugin *cuda_plugin;

/* Fill @buf with the plugin's path; the first of the candidates that exists. */
static const char *plugin_path(char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	const char *env = getenv("LLMQ_CUDA_BACKEND");
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../lib/llmq/%s", exe, CUDA_PLUGIN);
			if (!access(buf, R_OK))
				return buf;
		}
	}
	snprintf(buf, len, "%s/%s", LLMQ_PLUGIN_DIR, CUDA_PLUGIN);
	return buf;
}

/* Load the plugin once; NULL with the reason in @err when it cannot be. */
static const struct backend_plugin *load(char *err, size_t errlen)
{
	const struct backend_plugin *bp;
	char path[PATH_MAX + 64];
	void *h;

	if (cuda_plugin)
		return cuda_plugin;
	plugin_path(path, sizeof(path));
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "cannot load the CUDA backend: %s", dlerror());
		return NULL;
	}
	bp = dlsym(h, "llmq_backend_plugin");
	if (!bp || bp->abi != BACKEND_PLUGIN_ABI || !bp->create || !bp->kv_block_bytes) {
		snprintf(err, errlen, "%s is not a CUDA backend of this llmq build "
			 "(plugin ABI %u, ours %u)", path, bp ? bp->abi : 0, BACKEND_PLUGIN_ABI);
		dlclose(h);
		return NULL;
	}
	/* Never unloaded: its backends' ops point into it. */
	cuda_plugin = bp;
	return bp;
}

/**
 * backend_cuda_create() - a CUDA backend, from the plugin
 * @m:		the model
 * @p:		what every backend is asked for
 * @cp:		the CUDA backend's own parameters
 * @err:	the reason, on failure
 * @errlen:	its size
 *
 * Return: the backend, or NULL: the plugin missing or of another build, or
 * the plugin's own failure (no GPU, out of device memory, ...).
 */
struct backend *backend_cuda_create(const struct model *m, const struct backend_params *p,
				    const struct backend_cuda_params *cp, char *err,
				    size_t errlen)
{
	const struct backend_plugin *bp = load(err, errlen);

	return bp ? bp->create(m, p, cp, err, errlen) : NULL;
}

/**
 * backend_cuda_kv_block_bytes() - bytes one KV block takes on the GPU
 * @m:		the model
 * @block_size:	tokens per block
 *
 * Return: the plugin's answer, or 0 when it cannot be loaded (then
 * backend_cuda_create() fails too, and says why).
 */
size_t backend_cuda_kv_block_bytes(const struct model *m, uint32_t block_size)
{
	char err[256];
	const struct backend_plugin *bp = load(err, sizeof(err));

	return bp ? bp->kv_block_bytes(m, block_size) : 0;
}
