#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# The bundled model's golden continuations, computed by the float64 PyTorch
# reference (tests/ref/forward_ref.py) from the GGUF file itself, so the test
# that compares llmq with them compares two independent implementations of
# the same weights.
#
#   golden.py MODEL.gguf TOKENIZER.model OUT.json [N_TOKENS]
#
# For each prompt: its token ids (SentencePiece, BOS first), the greedy
# continuation's ids and text, and the smallest gap between the two best
# logits along it (how far from a tie the argmax ever was).
import json
import os
import sys

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "ref"))
from forward_ref import forward, read_gguf  # noqa: E402

PROMPTS = [
    "In the beginning God created",
    "And the LORD said unto Moses,",
    "Blessed are the",
    "The LORD is my shepherd;",
]


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: golden.py MODEL.gguf TOKENIZER.model OUT.json [N_TOKENS]")
    n = int(sys.argv[4]) if len(sys.argv) == 5 else 32
    kv, t = read_gguf(sys.argv[1])
    sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
    cases = []
    for p in PROMPTS:
        ids = [sp.bos_id()] + sp.encode(p)
        out, gap = [], float("inf")
        with torch.no_grad():
            for _ in range(n):
                logits = forward(kv, t, ids + out)[-1]
                top = torch.topk(logits, 2).values
                gap = min(gap, (top[0] - top[1]).item())
                out.append(int(torch.argmax(logits)))
        cases.append({"prompt": p, "prompt_ids": ids, "ids": out,
                      "text": sp.decode(out), "min_top2_gap": gap})
        print("%s|%s   (gap %.3f)" % (p, sp.decode(out).replace("\n", " / "), gap))
    json.dump({"n_tokens": n, "cases": cases}, open(sys.argv[3], "w"), indent=1)


if __name__ == "__main__":
    main()
