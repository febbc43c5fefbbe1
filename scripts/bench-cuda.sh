#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-cuda.sh: issue 10's benchmark of the CUDA backend, on a GPU machine.
# A llama3-8b preset in BF16 (llmq-mkmodel, seeded random weights), then
# bench_cuda: the copy bandwidth and BF16 matmul rate measured there and
# then, decode tokens/s at batch 1 beside the bandwidth floor (target 85%),
# decode at batch 64 and 256, prefill TFLOP/s of a 2048-token prompt beside
# the matmul rate (target 60%); then llmq-bench end to end against
# llmqd --engine cuda: 256 concurrent clients, random 512 in / 128 out.
#
#   scripts/bench-cuda.sh [BUILD_DIR]      (make bench-cuda)
#
# Needs BUILD_DIR/bin/{llmqd,llmq,llmq-bench,llmq-mkmodel} and
# BUILD_DIR/tests/bench_cuda. Environment: PRESET (llama3-8b), DTYPE (BF16;
# Q8_0, Q4_0 and Q4_K, which the backend keeps as they are, also decode
# with the weights widened to BF16, to compare), MODEL
# (an existing GGUF instead), CLIENTS (256), NUM_PROMPTS (2 x CLIENTS),
# INPUT_LEN (512), OUTPUT_LEN (128), SERVE (1; 0 skips llmq-bench),
# LLMQD_ARGS (more llmqd flags). Record the table in
# Documentation/admin-guide/cuda.rst with the date and the GPU.
set -euo pipefail
# shellcheck source=scripts/llmqd-wait.sh
. "$(dirname "$0")/llmqd-wait.sh"

O=${1:-build}
PRESET=${PRESET:-llama3-8b}
DTYPE=${DTYPE:-BF16}
CLIENTS=${CLIENTS:-256}
NUM_PROMPTS=${NUM_PROMPTS:-$((2 * CLIENTS))}
INPUT_LEN=${INPUT_LEN:-512}
OUTPUT_LEN=${OUTPUT_LEN:-128}
SERVE=${SERVE:-1}

for b in "$O/bin/llmq-mkmodel" "$O/bin/llmqd" "$O/bin/llmq" "$O/bin/llmq-bench" \
	 "$O/tests/bench_cuda"; do
	if [[ ! -x $b ]]; then
		echo "bench-cuda: $b is missing; make all $O/tests/bench_cuda with nvcc" >&2
		exit 1
	fi
done

llmqd_scratch bench-cuda

echo "llmq bench-cuda, $(date -u '+%Y-%m-%d %H:%M UTC'):" \
     "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo '?')"
model=${MODEL:-}
if [[ -z $model ]]; then
	model=$dir/$PRESET-$DTYPE.gguf
	t0=$(date +%s)
	"$O/bin/llmq-mkmodel" --preset "$PRESET" --dtype "$DTYPE" -o "$model" >"$dir/mk.log" 2>&1 ||
		{ cat "$dir/mk.log" >&2; exit 1; }
	echo "model: llmq-mkmodel --preset $PRESET --dtype $DTYPE ($(($(date +%s) - t0)) s)"
fi
"$O/tests/bench_cuda" "$model"

if [[ $SERVE != 1 ]]; then
	exit 0
fi
sock=$dir/llmq.sock
# Steps of up to 256 sequences and 2048 tokens, the whole of max-model-len.
"$O/bin/llmqd" --foreground --engine cuda --model "$model" --socket "$sock" \
	--transport shm --max-num-seqs "$CLIENTS" --max-num-batched-tokens 2048 \
	--max-model-len 2048 --max-queued-requests $((4 * CLIENTS)) ${LLMQD_ARGS:-} \
	2>"$dir/llmqd.log" &
pid=$!
llmqd_wait bench-cuda "$O/bin/llmq" "$sock" "$pid" "$dir/llmqd.log" || exit 1
args=(--socket "$sock" --max-concurrency "$CLIENTS" --num-prompts "$NUM_PROMPTS"
      --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" --ignore-eos
      --percentiles 50,99 --no-progress)
echo "llmq-bench ${args[*]}" | sed "s|$dir/||g"
"$O/bin/llmq-bench" "${args[@]}"
