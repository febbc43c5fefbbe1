#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh: llmq's standard serving scenario on the embedded default, the
# bundled CPU model models/kjv-11m-q8_0.gguf (the null engine, with a
# simulated 1 ms step, until that model exists, which it says on stderr):
# llmq-bench --sweep 1,8,16, closed loop, 32 random prompts of 64 tokens
# answered with exactly 64 tokens per point, seed 1.  Prints the sweep
# table and draws it into BUILD_DIR/bench.png.
#
#   scripts/bench.sh [BUILD_DIR]      (make bench)
#
# Needs BUILD_DIR/bin/{llmqd,llmq,llmq-bench}, and gnuplot for the plot.
# Environment: MODEL (the model file), THREADS (llmqd --threads; default one
# per core), NULL_DELAY_US (the null engine's step, default 1000),
# LLMQD_ARGS (more llmqd flags), PLOT (the PNG, default BUILD_DIR/bench.png).
set -euo pipefail
# shellcheck source=scripts/llmqd-wait.sh
. "$(dirname "$0")/llmqd-wait.sh"

O=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${MODEL:-$root/models/kjv-11m-q8_0.gguf}
THREADS=${THREADS:-0}
NULL_DELAY_US=${NULL_DELAY_US:-1000}
PLOT=${PLOT:-$O/bench.png}
LLMQD=$O/bin/llmqd
LLMQ=$O/bin/llmq
BENCH=$O/bin/llmq-bench

for b in "$LLMQD" "$LLMQ" "$BENCH"; do
	if [[ ! -x $b ]]; then
		echo "bench: $b is missing; run make all $BENCH" >&2
		exit 1
	fi
done

llmqd_scratch bench

if [[ -f $MODEL ]]; then
	engine=(--engine cpu --model "$MODEL" --threads "$THREADS")
	what="CPU engine, $(basename "$MODEL")"
else
	echo "bench: $MODEL does not exist (yet): measuring the null engine" \
	     "(llmqd --engine null --null-delay-us $NULL_DELAY_US) instead" >&2
	engine=(--engine null --null-delay-us "$NULL_DELAY_US")
	what="null engine, ${NULL_DELAY_US} us per step (no model)"
fi

echo "llmq bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs:" \
     "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "llmqd: $what"
sock=$dir/llmq.sock
# shellcheck disable=SC2086	# LLMQD_ARGS is a list of flags
"$LLMQD" --foreground --socket "$sock" "${engine[@]}" ${LLMQD_ARGS:-} 2>"$dir/llmqd.log" &
pid=$!
llmqd_wait bench "$LLMQ" "$sock" "$pid" "$dir/llmqd.log" || exit 1

# shellcheck disable=SC2054	# 1,8,16 is one word
args=(--dataset random --random-input-len 64 --random-output-len 64 --ignore-eos
      --num-prompts 32 --sweep 1,8,16 --seed 1)
echo "llmq-bench ${args[*]}"
status=0
"$BENCH" --socket "$sock" "${args[@]}" --plot "$PLOT" --plot-title "llmq make bench: $what" ||
	status=$?
exit "$status"
