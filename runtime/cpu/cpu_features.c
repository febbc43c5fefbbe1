// SPDX-License-Identifier: GPL-2.0
/*
 * Run-time CPU feature detection (CPUID leaves 1 and 7, XCR0 through XGETBV)
 * and the choice of kernel path, honouring LLMQ_CPU=portable|avx2|avx512 as
 * an upper bound for tests and comparisons.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu_features.h"

static struct cpu_features features;
static enum cpu_isa isa_default;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static const char *const isa_names[CPU_ISA_COUNT] = {
	[CPU_ISA_PORTABLE]	= "portable",
	[CPU_ISA_AVX2]		= "avx2",
	[CPU_ISA_AVX512]	= "avx512",
};

#if defined(__x86_64__) || defined(__i386__)
/* XCR0: which register files the OS saves on a context switch. */
static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static void detect(struct cpu_features *f)
{
	unsigned int a, b, c, d, max_leaf;
	bool os_avx, os_avx512;
	uint64_t xcr0 = 0;

	max_leaf = __get_cpuid_max(0, NULL);
	if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d))
		return;
	if (c & bit_OSXSAVE)
		xcr0 = xgetbv0();
	os_avx = (xcr0 & 0x06) == 0x06;		/* XMM and YMM state */
	os_avx512 = (xcr0 & 0xe6) == 0xe6;	/* and opmask, ZMM0-15 upper, ZMM16-31 */
	f->avx = os_avx && (c & bit_AVX);
	f->fma = f->avx && (c & bit_FMA);
	f->f16c = f->avx && (c & bit_F16C);
	if (max_leaf < 7)
		return;
	__cpuid_count(7, 0, a, b, c, d);
	f->avx2 = f->avx && (b & bit_AVX2);
	f->avx512f = os_avx512 && (b & bit_AVX512F);
	f->avx512dq = f->avx512f && (b & bit_AVX512DQ);
	f->avx512bw = f->avx512f && (b & bit_AVX512BW);
	f->avx512vl = f->avx512f && (b & bit_AVX512VL);
	f->avx512_vnni = f->avx512f && (c & (1u << 11));
	if (a >= 1) {
		__cpuid_count(7, 1, a, b, c, d);
		f->avx512_bf16 = f->avx512f && (a & (1u << 5));
		f->avx_vnni = f->avx2 && (a & (1u << 4));
	}
}
#else
static void detect(struct cpu_features *f)
{
	(void)f;
}
#endif

static bool supported(const struct cpu_features *f, enum cpu_isa isa)
{
	switch (isa) {
	case CPU_ISA_PORTABLE:
		return true;
	case CPU_ISA_AVX2:
		return f->avx2 && f->fma && f->f16c;
	case CPU_ISA_AVX512:
		/* F16C stays for scalar half conversion inside the path */
		return f->avx512f && supported(f, CPU_ISA_AVX2);
	default:
		return false;
	}
}

static enum cpu_isa best(const struct cpu_features *f)
{
	int i;

	for (i = CPU_ISA_COUNT - 1; i > CPU_ISA_PORTABLE; i--)
		if (supported(f, (enum cpu_isa)i))
			return (enum cpu_isa)i;
	return CPU_ISA_PORTABLE;
}

static void init(void)
{
	const char *req = getenv("LLMQ_CPU");
	bool capped = false;

	detect(&features);
	isa_default = cpu_isa_choose(req, best(&features), &capped);
	if (req && *req && capped)
		fprintf(stderr, "llmq: LLMQ_CPU=%s: using %s, the best this CPU runs\n",
			req, cpu_isa_name(isa_default));
}

/**
 * cpu_features() - the extensions this process may use
 *
 * Return: a description filled once, on first use, and never changed.
 */
const struct cpu_features *cpu_features(void)
{
	pthread_once(&detect_once, init);
	return &features;
}

/**
 * cpu_isa_supported() - whether a kernel path can run here
 * @isa:	the path
 *
 * Return: true if the CPU and OS support every instruction the path uses.
 */
bool cpu_isa_supported(enum cpu_isa isa)
{
	return supported(cpu_features(), isa);
}

/**
 * cpu_isa_best() - the most capable path this CPU runs
 *
 * Return: that path, CPU_ISA_PORTABLE at least.
 */
enum cpu_isa cpu_isa_best(void)
{
	return best(cpu_features());
}

/**
 * cpu_isa_name() - a path's name as LLMQ_CPU spells it
 * @isa:	the path
 *
 * Return: "portable", "avx2", "avx512", or "?" for a value out of range.
 */
const char *cpu_isa_name(enum cpu_isa isa)
{
	return (unsigned int)isa < CPU_ISA_COUNT ? isa_names[isa] : "?";
}

/**
 * cpu_isa_parse() - a path from its name, case-insensitively
 * @s:		"portable", "avx2" or "avx512"
 * @isa:	the path
 *
 * Return: 0, or -EINVAL for another string.
 */
int cpu_isa_parse(const char *s, enum cpu_isa *isa)
{
	int i;

	for (i = 0; s && i < CPU_ISA_COUNT; i++) {
		if (!strcasecmp(s, isa_names[i])) {
			*isa = (enum cpu_isa)i;
			return 0;
		}
	}
	return -EINVAL;
}

/**
 * cpu_isa_choose() - the path to use given a request and what the CPU has
 * @request:	LLMQ_CPU's value, or NULL / "" for no request
 * @best:	the best path available
 * @capped:	set when the request named a path above @best, or an unknown one
 *
 * A request is an upper bound: asking for avx512 on an AVX2 machine gives
 * avx2, asking for portable always gives portable. An unknown name is
 * treated as no request (and reported through @capped).
 *
 * Return: the path.
 */
enum cpu_isa cpu_isa_choose(const char *request, enum cpu_isa best, bool *capped)
{
	enum cpu_isa want;

	*capped = false;
	if (!request || !*request)
		return best;
	if (cpu_isa_parse(request, &want)) {
		*capped = true;
		return best;
	}
	if (want > best) {
		*capped = true;
		return best;
	}
	return want;
}

/**
 * cpu_isa_default() - the path kernels use when the caller names none
 *
 * Return: cpu_isa_best(), lowered by LLMQ_CPU as read at first use.
 */
enum cpu_isa cpu_isa_default(void)
{
	pthread_once(&detect_once, init);
	return isa_default;
}
