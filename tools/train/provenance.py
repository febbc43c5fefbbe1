#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# The provenance file of the bundled model, from train.py's report.json, the
# GGUF file and golden.py's continuations.  "key: value" lines first (the
# tests read sha256 from here), then the greedy samples.
#
#   provenance.py REPORT.json MODEL.gguf GOLDEN.json "TRAIN ARGS" > FILE
import hashlib
import json
import math
import os
import sys


def cpu_name(reported):
    """The CPU's model name when the report has only the architecture."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return "%s (%s)" % (line.split(":", 1)[1].strip(), reported)
    except OSError:
        pass
    return reported


def main():
    if len(sys.argv) != 5:
        sys.exit('usage: provenance.py REPORT.json MODEL.gguf GOLDEN.json "TRAIN ARGS"')
    r = json.load(open(sys.argv[1]))
    model, golden = sys.argv[2], json.load(open(sys.argv[3]))
    a = r["args"]
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    lines = [
        ("file", os.path.basename(model)),
        ("sha256", sha),
        ("bytes", os.path.getsize(model)),
        ("architecture", "llama (RMSNorm, RoPE, grouped-query attention, SwiGLU), "
         "tied input/output embedding"),
        ("shape", "%d layers, width %d, %d heads of %d, %d KV heads, FFN %d, context %d" %
         (a["layers"], a["dim"], a["heads"], a["dim"] // a["heads"], a["kv_heads"], a["ffn"],
          a["max_ctx"])),
        ("parameters", r["parameters"]),
        ("weights", "Q8_0 matrices, F32 norms (trained in F32)"),
        ("tokenizer", "SentencePiece BPE, %d pieces, byte fallback, digits split, "
         "identity normalisation (models/kjv-11m.tokenizer.model)" % a["vocab"]),
        ("corpus", "King James Version of the Bible, Debian package bible-kjv-text 4.38, "
         "extracted with bible(1) of bible-kjv; 1159 chapters train, 30 held out "
         "(every 40th from the 8th)"),
        ("licence", "the KJV text is in the public domain except in the United Kingdom, "
         "where the Crown's letters patent still govern printing it; the Debian package "
         "(section main) states it may be copied, modified and distributed at will. "
         "The weights are GPL-2.0, as llmq"),
        ("training tokens", "%d (held out: %d)" % (r["train_tokens"], r["heldout_tokens"])),
        ("training", "%d steps of %d sequences x %d tokens = %d tokens, %.2f epochs; AdamW "
         "(0.9, 0.95), weight decay %g, lr %g warm-up %d steps then cosine to %g, "
         "gradient clip 1.0, seed %d" %
         (a["steps"], a["batch"], a["ctx"], r["tokens_seen"], r["epochs"], a["weight_decay"],
          a["lr"], a["warmup"], a["min_lr"], a["seed"])),
        ("command", "make model (scripts/make-model.sh): train.py %s" % sys.argv[4]),
        ("hardware", "%s, %d torch threads, PyTorch %s (Debian python3-torch) on OpenBLAS" %
         (cpu_name(r["cpu"]), r["threads"], r["torch"])),
        ("training time", "%.0f s (%.1f min) of optimisation, %.0f s in all" %
         (r["train_seconds"], r["train_seconds"] / 60, r["total_seconds"])),
        ("train loss", "%.3f (per token, on 4 x the held-out size of training text)" %
         r["train_loss"]),
        ("held-out loss", "%.3f, perplexity %.1f" % (r["heldout_loss"], r["heldout_ppl"])),
        ("unigram baseline", "held-out perplexity %.1f (add-one smoothed training token "
         "frequencies): the model's is %.1fx lower" %
         (r["unigram_heldout_ppl"], r["unigram_heldout_ppl"] / r["heldout_ppl"])),
        ("reproducible", "the same command, torch build and thread count give the same "
         "bytes (torch deterministic algorithms, every draw from the seed)"),
    ]
    for k, v in lines:
        print("%s: %s" % (k, v))
    print("\nheld-out loss along training:")
    for c in r["curve"]:
        print("  step %5d  train (moving average) %.3f  held-out %.3f  (ppl %.1f)" %
              (c["step"], c["train_loss_ema"], c["heldout_loss"], math.exp(c["heldout_loss"])))
    print("\ngreedy continuations (%d tokens, PyTorch float64 reference on this file):" %
          golden["n_tokens"])
    for c in golden["cases"]:
        print("  %s|%s" % (c["prompt"], c["text"].replace("\n", " / ")))
    print("\nWhat it is: a small model that writes in the style of the King James Bible. "
          "What it is not: an assistant; it knows nothing but that text, follows no "
          "instructions and states no facts reliably.")


if __name__ == "__main__":
    main()
