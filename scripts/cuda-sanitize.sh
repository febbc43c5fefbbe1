#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cuda-sanitize.sh: the CUDA kernel tests (test_cuda) under compute-sanitizer,
# memcheck (out-of-bounds and misaligned accesses, leaks of device memory)
# then racecheck (shared-memory hazards), on a GPU machine. Each must end
# with "ERROR SUMMARY: 0 errors".
#
#   scripts/cuda-sanitize.sh [BUILD_DIR]     (make cuda-sanitize)
set -uo pipefail

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
	echo "=== compute-sanitizer --tool $tool $T"
	extra=()
	[[ $tool == memcheck ]] && extra=(--leak-check full)
	out=$("$CS" --tool "$tool" "${extra[@]}" --error-exitcode 99 "$T" 2>&1)
	rc=$?
	echo "$out" | grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|SKIP|Invalid|Race' |
		head -40
	if [[ $rc -ne 0 ]]; then
		echo "!!! $tool: exit status $rc"
		status=1
	fi
done
exit $status
