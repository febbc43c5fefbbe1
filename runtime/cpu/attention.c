// SPDX-License-Identifier: GPL-2.0
/*
 * The attention kernel's front door: the choice of path and the size of its
 * scratch. The kernels are in attn_{portable,avx2,avx512}.c over
 * attn_tmpl.h; the caller (backend_cpu.c) splits the work into calls.
 */
#include "attention.h"

/**
 * attn_kernels() - a path's attention kernel
 * @isa:	the path
 *
 * Return: the kernel, or NULL if the CPU or this build cannot run @isa.
 */
const struct attn_kernels *attn_kernels(enum cpu_isa isa)
{
	if (!cpu_isa_supported(isa))
		return NULL;
	switch (isa) {
	case CPU_ISA_PORTABLE:
		return &attn_portable;
	case CPU_ISA_AVX2:
		return attn_avx2.run ? &attn_avx2 : NULL;
	case CPU_ISA_AVX512:
		return attn_avx512.run ? &attn_avx512 : NULL;
	default:
		return NULL;
	}
}

/**
 * cpu_attn_work_floats() - scratch one kernel call needs
 * @queries:	rows times heads of the call
 * @d:		head dimension
 *
 * Return: floats for @work of &struct cpu_attn (per query a running sum
 * vector and maximum for the span and for the total, and the span's output;
 * one chunk's weights for ATTN_GROUP heads; a chunk's K and V rows widened to floats; each on a
 * 64-byte boundary), on any path; @work
 * itself is 64-byte aligned.
 */
size_t cpu_attn_work_floats(uint32_t queries, uint32_t d)
{
	return (size_t)queries * (2 * ATTN_MAX_LANES + 2 + d) + ATTN_GROUP * ATTN_CHUNK +
	       2 * (size_t)ATTN_CHUNK * d +	/* a chunk's K and V, widened */
	       3 * 16;		/* + 3 alignments to 64 bytes */
}

/**
 * cpu_attn_part_floats() - floats one query's result for one span takes
 * @d:		head dimension
 *
 * Return: the stride of &cpu_attn.part: its maximum, running sum, output.
 */
size_t cpu_attn_part_floats(uint32_t d)
{
	return 1 + ATTN_MAX_LANES + (size_t)d;
}
