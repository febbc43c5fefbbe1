#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run every test binary of each build directory given, count cmocka's
# verdicts, and end with the one line "N passed, N failed".
set -uo pipefail

passed=0
failed=0
skipped=0
for dir in "$@"; do
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		echo "=== $t"
		out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		      timeout 600 "$t" 2>&1)
		rc=$?
		echo "$out"
		p=$(echo "$out" | sed -n 's/.*\[  PASSED  \] \([0-9]*\) test(s)\..*/\1/p' | tail -n1)
		f=$(echo "$out" | sed -n 's/.*\[  FAILED  \] \([0-9]*\) test(s), listed below.*/\1/p' |
		    tail -n1)
		s=$(echo "$out" | sed -n 's/.*\[  SKIPPED \] \([0-9]*\) test(s).*/\1/p' | tail -n1)
		p=${p:-0}
		f=${f:-0}
		skipped=$((skipped + ${s:-0}))
		# A binary that crashed, hung or printed no verdict is a failure.
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			echo "!!! $t exited $rc without a cmocka verdict"
			f=1
		fi
		passed=$((passed + p))
		failed=$((failed + f))
	done
done
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
