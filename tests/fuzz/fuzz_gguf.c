// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: any byte string through the GGUF reader and the model
 * checks.  Must never crash, leak or read outside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	uint8_t *copy = malloc(size ? size : 1);

	/* An exact-size copy, so any read past the end is caught. */
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (!model_parse(&m, copy, size))
		model_free(&m);
	free(copy);
	return 0;
}
