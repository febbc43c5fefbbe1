// SPDX-License-Identifier: GPL-2.0
/*
 * The attention kernel in portable C: 4-lane GCC vector extensions (one SSE2
 * register on a baseline x86-64 build, one NEON register on arm64). The body
 * is attn_tmpl.h.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../dtype.h"
#include "attention.h"

#define VL		4
#define TARGET
#define KERNELS_NAME	attn_portable
#define PATH_NAME	"portable"

#include "attn_tmpl.h"
