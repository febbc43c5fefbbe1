#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# A tiny random Hugging Face checkpoint and its logits, for testing
# llmq-mkmodel --hf-model.  The forward is written from transformers'
# modeling_llama / modeling_qwen2 conventions (rotate-half RoPE on [out, in]
# weights, q/k/v biases for qwen2), in float64, independent of llmq and of
# GGUF's layout, so a wrong Q/K permutation or name in the converter shows.
#
#   hf_checkpoint.py DIR llama|qwen2 OUT
#
# DIR receives config.json, model.safetensors (F32; BF16 with --bf16) and
# tokenizer.vocab (a SentencePiece listing: <unk> <s> </s>, 256 byte
# pieces, a few words); OUT the float64 logits of DIR/tokens.txt's tokens.
import json
import os
import struct
import sys

import torch

VOCAB = 300
DIM, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128


def rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def forward(t, cfg, ids):
    T, hd = len(ids), DIM // HEADS
    inv = cfg["rope_theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat((ang, ang), -1)
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    eps = cfg["rms_norm_eps"]
    x = t["model.embed_tokens.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        h = rms(x, t[p + "input_layernorm.weight"], eps)
        proj = {}
        for n in "qkv":
            proj[n] = h @ t[p + "self_attn.%s_proj.weight" % n].T
            if p + "self_attn.%s_proj.bias" % n in t:
                proj[n] = proj[n] + t[p + "self_attn.%s_proj.bias" % n]
        q = proj["q"].view(T, HEADS, hd)
        k = proj["k"].view(T, KV_HEADS, hd)
        v = proj["v"].view(T, KV_HEADS, hd)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, 1)
        v = v.repeat_interleave(HEADS // KV_HEADS, 1)
        s = torch.einsum("thd,shd->hts", q, k) / hd ** 0.5 + mask
        o = torch.einsum("hts,shd->thd", torch.softmax(s, -1), v).reshape(T, -1)
        x = x + o @ t[p + "self_attn.o_proj.weight"].T
        h = rms(x, t[p + "post_attention_layernorm.weight"], eps)
        g = h @ t[p + "mlp.gate_proj.weight"].T
        u = h @ t[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ t[p + "mlp.down_proj.weight"].T
    x = rms(x, t["model.norm.weight"], eps)
    head = t.get("lm_head.weight", t["model.embed_tokens.weight"])
    return x @ head.T


def main():
    args = [a for a in sys.argv[1:] if a != "--bf16"]
    bf16 = "--bf16" in sys.argv
    if len(args) != 3 or args[1] not in ("llama", "qwen2"):
        sys.exit("usage: hf_checkpoint.py DIR llama|qwen2 OUT [--bf16]")
    d, arch, out = args
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(7 if arch == "llama" else 8)
    hd, t = DIM // HEADS, {}

    def rnd(*shape, scale=0.1):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    t["model.embed_tokens.weight"] = rnd(VOCAB, DIM, scale=1.0)
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        t[p + "input_layernorm.weight"] = 1 + rnd(DIM)
        t[p + "post_attention_layernorm.weight"] = 1 + rnd(DIM)
        for n, rows in (("q", HEADS * hd), ("k", KV_HEADS * hd), ("v", KV_HEADS * hd)):
            t[p + "self_attn.%s_proj.weight" % n] = rnd(rows, DIM)
            if arch == "qwen2":
                t[p + "self_attn.%s_proj.bias" % n] = rnd(rows)
        t[p + "self_attn.o_proj.weight"] = rnd(DIM, HEADS * hd)
        t[p + "mlp.gate_proj.weight"] = rnd(FFN, DIM)
        t[p + "mlp.up_proj.weight"] = rnd(FFN, DIM)
        t[p + "mlp.down_proj.weight"] = rnd(DIM, FFN)
    t["model.norm.weight"] = 1 + rnd(DIM)
    tied = arch == "qwen2"
    if not tied:
        t["lm_head.weight"] = rnd(VOCAB, DIM)
    if bf16:	# the reference computes with what the file holds
        t = {n: w.to(torch.bfloat16).double() for n, w in t.items()}
    cfg = {"model_type": arch, "hidden_size": DIM, "intermediate_size": FFN,
           "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
           "num_key_value_heads": KV_HEADS, "max_position_embeddings": 512,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0 if arch == "llama" else 1e6,
           "vocab_size": VOCAB, "tie_word_embeddings": tied}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))

    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(t):
        w = t[name].to(torch.bfloat16 if bf16 else torch.float32).contiguous()
        raw = w.view(torch.int16).numpy().tobytes() if bf16 else w.numpy().tobytes()
        header[name] = {"dtype": "BF16" if bf16 else "F32", "shape": list(w.shape),
                        "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    words = ["\u2581", "\u2581the", "\u2581and", "th", "he", "an", "nd", "\u2581t", "\u2581a"]
    pieces += words + ["\u2581w%d" % i for i in range(VOCAB - len(pieces) - len(words))]
    with open(os.path.join(d, "tokenizer.vocab"), "w") as f:
        for i, p in enumerate(pieces):
            f.write("%s\t%s\n" % (p, "0" if i < 259 else "-%d" % (i - 259)))

    ids = [int(s) for s in open(os.path.join(d, "tokens.txt")).read().split()]
    with torch.no_grad():
        forward(t, cfg, ids).numpy().astype("<f8").tofile(out)


if __name__ == "__main__":
    main()
