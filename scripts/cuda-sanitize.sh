#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cuda-sanitize.sh: the CUDA kernel tests of test_cuda under
# compute-sanitizer, memcheck (out-of-bounds and misaligned accesses, leaks
# of device memory) then racecheck (shared-memory hazards), on a GPU
# machine. Each must end with "ERROR SUMMARY: 0 errors".
#
#   scripts/cuda-sanitize.sh [BUILD_DIR]     (make cuda-sanitize)
#
# TESTS: the tests to run (LLMQ_TEST_ONLY's comma-separated patterns;
# default: the kernel tests, not the whole-model ones, which the tools
# would slow past a device lease). LIMIT: seconds each tool may take (240).
set -uo pipefail

TESTS=${TESTS:-test_embed,test_rmsnorm,test_bias,test_rope,test_swiglu,test_quant,test_argmax,test_sample,test_attention}
LIMIT=${LIMIT:-240}

O=${1:-build}
T=$O/tests/test_cuda
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [[ ! -x $T ]]; then
	echo "cuda-sanitize: $T missing (make $T with nvcc)" >&2
	exit 1
fi
if [[ ! -x $CS ]]; then
	echo "cuda-sanitize: compute-sanitizer not found (it ships with the CUDA toolkit)" >&2
	exit 1
fi
status=0
for tool in memcheck racecheck; do
	echo "=== compute-sanitizer --tool $tool $T ($TESTS)"
	extra=()
	[[ $tool == memcheck ]] && extra=(--leak-check full)
	out=$(LLMQ_TEST_ONLY=$TESTS timeout "$LIMIT" "$CS" --tool "$tool" "${extra[@]}" \
	      --error-exitcode 99 "$T" 2>&1)
	rc=$?
	echo "$out" | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|SKIP|Invalid|Race' |
		head -40
	if [[ $rc -eq 124 ]]; then
		echo "!!! $tool: not done in $LIMIT s"
		status=1
	elif [[ $rc -ne 0 ]]; then
		echo "!!! $tool: exit status $rc"
		status=1
	fi
done
exit $status
