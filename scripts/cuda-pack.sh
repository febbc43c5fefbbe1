#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cuda-pack.sh: what a GPU machine without apt needs to run the CUDA tests
# and benchmarks built here: the binaries, test_cuda, bench_cuda, the scripts,
# the bundled model (test_cuda draws tokens on it), and the shared libraries
# they link that are not part of CUDA or glibc (cmocka, liburing, libnl,
# json-c, pcre2, unistring), in BUILD_DIR/gpu. Where test_cuda_emu is built
# too, it then runs inside the pack, with the pack's binaries: a path the
# GPU machine would not find fails here, not in a lease.
# test_kernels and bench_engine come too when built, for the CPU step of
# cuda-gpu-run.sh (the CPU engine on the GPU machine's 16 cores).
# cuBLAS and cudart are the GPU machine's own (/usr/local/cuda/lib64, the
# binaries' rpath; else set LD_LIBRARY_PATH to pip's nvidia/*/lib).
#
#   scripts/cuda-pack.sh [BUILD_DIR]
#
# Then, with the device tool, carry BUILD_DIR/gpu and run in it
# scripts/cuda-gpu-run.sh (test_cuda, compute-sanitizer, the benchmark).
set -euo pipefail

O=${1:-build}
P=$O/gpu
rm -rf "$P"
mkdir -p "$P/bin" "$P/tests" "$P/lib" "$P/scripts"
for b in llmqd llmq llmq-bench llmq-mkmodel; do
	cp "$O/bin/$b" "$P/bin/"
done
for t in test_cuda bench_cuda; do
	cp "$O/tests/$t" "$P/tests/"
done
for t in test_kernels bench_engine; do
	if [ -x "$O/tests/$t" ]; then
		cp "$O/tests/$t" "$P/tests/"
	fi
done
# test_kernels' float64 reference, run from the pack as from a source tree.
mkdir -p "$P/models"
cp models/kjv-11m-q8_0.gguf "$P/models/"
mkdir -p "$P/tests/ref" "$P/tests/gguf"
cp tests/ref/kernels_ref.py "$P/tests/ref/"
cp tests/gguf/dequant_ref.py "$P/tests/gguf/"
# The CUDA backend plugin, where llmqd and llmq look: bin/../lib/llmq/.
mkdir -p "$P/lib/llmq"
cp "$O/lib/llmq/backend-cuda.so" "$P/lib/llmq/"
cp scripts/bench-cuda.sh scripts/cuda-sanitize.sh scripts/cuda-gpu-run.sh scripts/llmqd-wait.sh \
	scripts/bench-engine.sh scripts/bench-serve.sh "$P/scripts/"
ldd "$P"/bin/* "$P"/tests/test_* "$P"/tests/bench_* "$P"/lib/llmq/*.so | awk '/=> \// { print $3 }' | sort -u |
	grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|/libcu|/libnv' |
	while read -r lib; do cp -L "$lib" "$P/lib/"; done
du -sh "$P"
if [ -x "$O/tests/test_cuda_emu" ]; then
	emu=$(cd "$O/tests" && pwd)/test_cuda_emu
	if ! (cd "$P" && LLMQ_BIN_DIR=$PWD/bin "$emu") >"$O/gpu-check.log" 2>&1; then
		grep -E 'ERROR|FAILED' "$O/gpu-check.log" >&2
		echo "cuda-pack: test_cuda_emu fails inside $P: see $O/gpu-check.log" >&2
		exit 1
	fi
	echo "cuda-pack: test_cuda_emu passes inside $P"
fi
