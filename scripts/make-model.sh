#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make model: rebuild the bundled model from nothing but Debian packages.
#
#   scripts/make-model.sh [BUILD_DIR]
#
# 1. tools/train/corpus.py: the King James Bible from bible-kjv-text,
#    through bible(1), split into training and held-out chapters;
# 2. tools/train/train.py: a SentencePiece BPE tokenizer and a LLaMA
#    model trained on it with PyTorch on the CPU (about an hour on 2 cores);
# 3. llmq-mkmodel --hf-model: the checkpoint to GGUF in Q8_0;
# 4. tools/train/golden.py: the greedy continuations the tests compare with;
# 5. models/$NAME.provenance: what was done, on what, with which result.
#
# Environment: WORK (scratch directory, default /tmp/llmq-model), THREADS
# (torch threads, default 2: the bytes depend on it), STEPS (default 1200).
set -euo pipefail

O=${1:-build}
NAME=kjv-11m
WORK=${WORK:-/tmp/llmq-model}
THREADS=${THREADS:-2}
STEPS=${STEPS:-1200}
PY=/usr/bin/python3
# The arguments the committed model was trained with.
TRAIN_ARGS=(--vocab 4096 --dim 384 --layers 6 --heads 6 --kv-heads 2 --ffn 1024 --ctx 256
	    --max-ctx 1024 --batch 16 --steps "$STEPS" --warmup 60 --lr 1.5e-3 --min-lr 1e-4
	    --weight-decay 0.1 --seed 1 --threads "$THREADS" --eval-every 200)

missing=()
command -v bible >/dev/null || missing+=(bible-kjv)
[ -f /usr/lib/bible.data ] || missing+=(bible-kjv-text)
$PY -c 'import torch' 2>/dev/null || missing+=(python3-torch)
$PY -c 'import sentencepiece' 2>/dev/null || missing+=(python3-sentencepiece)
if [ ${#missing[@]} -gt 0 ]; then
	echo "make-model: please install ${missing[*]} (apt-get install ${missing[*]})" >&2
	exit 1
fi

mkdir -p "$WORK" models
$PY tools/train/corpus.py "$WORK/corpus"
$PY tools/train/train.py --corpus "$WORK/corpus" --out "$WORK/hf" "${TRAIN_ARGS[@]}" |
	tee "$WORK/train.log"
"$O/bin/llmq-mkmodel" --hf-model "$WORK/hf" --dtype Q8_0 --name "llmq-$NAME" \
	-o "models/$NAME-q8_0.gguf"
cp "$WORK/hf/tokenizer.model" "models/$NAME.tokenizer.model"
$PY tools/train/golden.py "models/$NAME-q8_0.gguf" "models/$NAME.tokenizer.model" \
	"models/$NAME-q8_0.golden.json"
$PY tools/train/provenance.py "$WORK/hf/report.json" "models/$NAME-q8_0.gguf" \
	"models/$NAME-q8_0.golden.json" "${TRAIN_ARGS[*]}" >"models/$NAME-q8_0.provenance"
cat "models/$NAME-q8_0.provenance"
