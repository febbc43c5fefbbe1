#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cuda-gpu-run.sh: everything issue 10 asks of a GPU, in one go, from a pack
# made by scripts/cuda-pack.sh (run inside it, on the GPU machine): the
# GPU, test_cuda, test_cuda under compute-sanitizer (memcheck, racecheck),
# then the benchmark. Logs go to $OUT (the device tool's folder) when set,
# else to ./out; the summary is printed last.
#
#   cd build/gpu && scripts/cuda-gpu-run.sh [test|sanitize|bench]...
#
# With no argument it runs all three. The device tool's call, from the
# source tree after make and scripts/cuda-pack.sh build:
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
[ ${#steps[@]} -eq 0 ] && steps=(test sanitize bench)
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
	*)
		echo "cuda-gpu-run: unknown step '$s' (test, sanitize, bench)" >&2
		exit 2
		;;
	esac
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
