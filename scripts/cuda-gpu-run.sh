#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cuda-gpu-run.sh: everything issue 10 asks of a GPU, in one go, from a pack
# made by scripts/cuda-pack.sh (run inside it, on the GPU machine): the
# GPU, test_cuda, the benchmark, then the kernel tests under
# compute-sanitizer (memcheck, racecheck), in that order so that a lease
# that ends early has the results that matter most. Logs go to $OUT (the
# device tool's folder) when set, else to ./out, as they are written; the
# summary is printed last.
#
#   cd build/gpu && scripts/cuda-gpu-run.sh [test|bench|sanitize|quant|cpu]...
#
# With no argument it runs the first three. "quant" runs bench_cuda on the
# llama3-8b preset in each of $QUANT_DTYPES (default Q8_0 Q4_K; any
# llmq-mkmodel --dtype, Q5_K, Q6_K and Q4_K_M included): its weights kept
# as they are against widened to BF16 (no llmq-bench). "cpu" runs the CPU
# engine on the GPU machine's own cores, which the 2-core development machines cannot
# stand in for: test_kernels (the native AVX-512 kernels against the
# portable ones, where the CPU has them), bench-engine and bench-serve
# (build them first: make O=... tests/test_kernels tests/bench_engine).
# The device tool's call, from the source tree after make and
# scripts/cuda-pack.sh build:
#   run(command="cd build/gpu && scripts/cuda-gpu-run.sh", carry=["build/gpu"])
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here" || exit 1
out=${OUT:-$here/out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# cuBLAS and cudart: the toolkit's, else the ones pip installed for PyTorch.
if ! ldd lib/llmq/backend-cuda.so | grep -q 'libcublas.*=> /'; then
	for d in $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib")
		   for p in nvidia.__path__ for s in os.listdir(p)))' 2>/dev/null); do
		[ -d "$d" ] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d
	done
fi
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(test bench sanitize)
summary=()

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader |
	tee "$out/gpu.txt"
for s in "${steps[@]}"; do
	case $s in
	test)
		tests/test_cuda 2>&1 | tee "$out/test_cuda.log"
		summary+=("test_cuda: $(grep -E 'PASSED|FAILED' "$out/test_cuda.log" | head -2 |
			  tr '\n' ' ')")
		;;
	sanitize)
		scripts/cuda-sanitize.sh . 2>&1 | tee "$out/sanitize.log"
		clean=$(grep -c 'ERROR SUMMARY: 0 errors' "$out/sanitize.log")
		summary+=("sanitize: $clean of 2 tools report 0 errors")
		;;
	bench)
		TMPDIR=${TMPDIR:-/tmp} scripts/bench-cuda.sh . 2>&1 | tee "$out/bench.log"
		summary+=("bench: see bench.log")
		;;
	quant)
		for t in ${QUANT_DTYPES:-Q8_0 Q4_K}; do
			DTYPE=$t SERVE=0 TMPDIR=${TMPDIR:-/tmp} scripts/bench-cuda.sh . 2>&1 |
				tee "$out/bench-$t.log"
			summary+=("$t: $(grep -E '^decode b=1 ' "$out/bench-$t.log" | tr '\n' ' ')")
		done
		;;
	cpu)
		lscpu | grep -E '^(Model name|CPU\(s\)|Flags)' | cut -c1-300 | tee "$out/cpu.txt"
		tests/test_kernels 2>&1 | tee "$out/test_kernels.log"
		summary+=("test_kernels: $(grep -E 'PASSED|FAILED' "$out/test_kernels.log" |
			  head -2 | tr '\n' ' ')")
		scripts/bench-engine.sh . 2>&1 | tee "$out/bench-engine.log"
		summary+=("bench-engine: $(grep targets "$out/bench-engine.log" | tr '\n' ' ')")
		scripts/bench-serve.sh . 2>&1 | tee "$out/bench-serve.log"
		summary+=("bench-serve: $(grep -E '^(throughput|ITL)' "$out/bench-serve.log" |
			  tr '\n' ' ')")
		;;
	*)
		echo "cuda-gpu-run: unknown step '$s' (test, bench, sanitize, quant, cpu)" >&2
		exit 2
		;;
	esac
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
