/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the CPU can run: instruction-set features read with CPUID and XGETBV,
 * and the choice of kernel path (portable C, AVX2, AVX-512) at run time,
 * which the LLMQ_CPU environment variable can lower for tests.
 */
#ifndef LLMQD_CPU_FEATURES_H
#define LLMQD_CPU_FEATURES_H

#include <stdbool.h>

/*
 * Kernel paths, in increasing order of capability: a path may run when the
 * CPU (and the OS, for the register state) supports it.
 */
enum cpu_isa {
	CPU_ISA_PORTABLE,	/* plain C (GCC vector extensions) */
	CPU_ISA_AVX2,		/* AVX2 + FMA + F16C (Haswell, Zen) */
	CPU_ISA_AVX512,		/* AVX-512F (Skylake-SP, Ice Lake, Zen 4) */
	CPU_ISA_COUNT,
};

/**
 * struct cpu_features - instruction-set extensions usable by this process
 *
 * Each flag is set only when the CPU reports the extension and the OS saves
 * the registers it needs (XCR0), so a flag means "may execute".
 */
struct cpu_features {
	bool	avx;
	bool	avx2;
	bool	fma;
	bool	f16c;
	bool	avx512f;
	bool	avx512dq;
	bool	avx512bw;
	bool	avx512vl;
	bool	avx512_vnni;
	bool	avx512_bf16;
	bool	avx_vnni;
};

const struct cpu_features *cpu_features(void);
bool cpu_isa_supported(enum cpu_isa isa);
enum cpu_isa cpu_isa_best(void);
const char *cpu_isa_name(enum cpu_isa isa);
int cpu_isa_parse(const char *s, enum cpu_isa *isa);
enum cpu_isa cpu_isa_choose(const char *request, enum cpu_isa best, bool *capped);
enum cpu_isa cpu_isa_default(void);

#endif /* LLMQD_CPU_FEATURES_H */
