#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-serve.sh: the serving curve of llmqd on a 100m model (Q8_0, CPU
# engine): llmq-bench --sweep over concurrencies, closed loop, random
# prompts of INPUT_LEN tokens answered with exactly OUTPUT_LEN tokens, then
# the throughput and ITL p99 of the last sweep point over the first.
#
#   scripts/bench-serve.sh [BUILD_DIR]      (make bench-serve)
#
# Needs BUILD_DIR/bin/{llmqd,llmq,llmq-bench,llmq-mkmodel}.
# Environment: SWEEP (1,8,32), INPUT_LEN (128), OUTPUT_LEN (64),
# NUM_PROMPTS (per point; default max(8, 2 x concurrency)), THREADS
# (llmqd --threads; default one per core), LLMQD_ARGS (more llmqd flags).
set -euo pipefail
# shellcheck source=scripts/llmqd-wait.sh
. "$(dirname "$0")/llmqd-wait.sh"

O=${1:-build}
MK=$O/bin/llmq-mkmodel
LLMQD=$O/bin/llmqd
LLMQ=$O/bin/llmq
BENCH=$O/bin/llmq-bench
SWEEP=${SWEEP:-1,8,32}
INPUT_LEN=${INPUT_LEN:-128}
OUTPUT_LEN=${OUTPUT_LEN:-64}
NUM_PROMPTS=${NUM_PROMPTS:-}
THREADS=${THREADS:-0}

for b in "$MK" "$LLMQD" "$LLMQ" "$BENCH"; do
	if [[ ! -x $b ]]; then
		echo "bench-serve: $b is missing; run make all $BENCH" >&2
		exit 1
	fi
done

llmqd_scratch bench-serve

echo "llmq bench-serve, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:" \
     "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
if ! "$MK" --preset 100m --dtype Q8_0 -o "$dir/100m.gguf" >"$dir/mkmodel.log" 2>&1; then
	cat "$dir/mkmodel.log" >&2
	exit 1
fi
sock=$dir/llmq.sock
"$LLMQD" --foreground --socket "$sock" --model "$dir/100m.gguf" --threads "$THREADS" ${LLMQD_ARGS:-} \
	2>"$dir/llmqd.log" &
pid=$!
llmqd_wait bench-serve "$LLMQ" "$sock" "$pid" "$dir/llmqd.log" || exit 1

args=(--socket "$sock" --sweep "$SWEEP" --random-input-len "$INPUT_LEN"
      --random-output-len "$OUTPUT_LEN" --ignore-eos)
if [[ -n $NUM_PROMPTS ]]; then
	args+=(--num-prompts "$NUM_PROMPTS")
fi
echo "llmq-bench ${args[*]}" | sed "s|$dir/||g"
status=0
out=$("$BENCH" "${args[@]}") || status=$?
echo "$out"
# Sweep rows: conc ok fail in-tok req/s out-tok/s ttft50 ttft99 itl50 itl99 ratio
echo "$out" | awk '
	$1 ~ /^[0-9]+$/ && NF == 11 {
		if (!n++) { c0 = $1; tok0 = $6; itl0 = $10 }
		c1 = $1; tok1 = $6; itl1 = $10
	}
	END {
		if (n < 2 || tok0 <= 0 || itl0 <= 0)
			exit
		printf "throughput at %s over %s: %.2fx (%.1f vs %.1f output tok/s)\n",
		       c1, c0, tok1 / tok0, tok1, tok0
		printf "ITL p99 at %s over %s: %.2fx (%.1f vs %.1f ms)\n",
		       c1, c0, itl1 / itl0, itl1, itl0
	}'
exit "$status"
