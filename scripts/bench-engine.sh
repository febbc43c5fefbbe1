#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-engine.sh: the CPU backend on the 100m model in F16 and in Q8_0, in
# one run: copy (and read) bandwidth measured there and then, single-sequence
# decode tokens/s beside the floor it implies (weight bytes per token /
# bandwidth), prefill tokens/s for a 512-token prompt, and batched decode
# throughput at batch 1, 8 and 32; then the targets (decode at 80%
# of the copy floor or better, batch 32 at least 8x batch 1).
#
#   scripts/bench-engine.sh [BUILD_DIR]     (make bench-engine)
#
# Needs BUILD_DIR/bin/llmq-mkmodel and BUILD_DIR/tests/bench_engine.
# Environment: THREADS (default: one per core), DTYPES ("F16 Q8_0").
set -euo pipefail

O=${1:-build}
MK=$O/bin/llmq-mkmodel
BENCH=$O/tests/bench_engine
DTYPES=${DTYPES:-F16 Q8_0}
THREADS=${THREADS:-}

for f in "$MK" "$BENCH"; do
	if [ ! -x "$f" ]; then
		echo "bench-engine: $f missing (make all $BENCH)" >&2
		exit 1
	fi
done
dir=$(mktemp -d /tmp/llmq-bench-engine-XXXXXX)
trap 'rm -rf "$dir"' EXIT

echo "llmq bench-engine, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:" \
     "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
for t in $DTYPES; do
	"$MK" --preset 100m --dtype "$t" -o "$dir/100m-$t.gguf" >/dev/null 2>&1
	out=$("$BENCH" "$dir/100m-$t.gguf" $THREADS)
	echo "$out" | sed "s|$dir/||"
	echo "$out" | awk -v t="$t" '
		/decode, 1 sequence/ { pct = $(NF - 2); gsub(/[(%]/, "", pct) }
		/batched decode b=32/ { x = $(NF - 1); gsub(/[(x]/, "", x) }
		END {
			ok1 = pct + 0 >= 80 ? "met" : "NOT met"
			ok2 = x + 0 >= 8 ? "met" : "NOT met"
			printf "  targets: decode %s%% of copy floor (>= 80: %s), " \
			       "b=32 %sx b=1 (>= 8: %s)\n", pct, ok1, x, ok2
		}'
done
