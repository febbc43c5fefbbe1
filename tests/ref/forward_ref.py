#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Float64 reference forward pass of a LLaMA-family GGUF (llama, qwen2) in
# PyTorch, written from the model definitions and independent of llmq's C:
# its own GGUF reader, weights dequantised by tests/gguf/dequant_ref.py.
#
#   forward_ref.py MODEL.gguf TOKENS OUT [KV]
#   forward_ref.py --serve      the same words per line of stdin, answered
#                               by a line "ok" or "error: why"
#
# TOKENS is a text file of token ids (whitespace separated); OUT receives the
# logits of every position, float64 little-endian, n_tokens rows of n_vocab.
# KV "f16" rounds K (after RoPE) and V to IEEE halves, as an F16 KV cache
# holds them; "f32" (the default) keeps them. --serve lets a test pay for
# importing torch once.
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gguf"))
from dequant_ref import dequant  # noqa: E402

TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0",
         12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"}
# (block elements, block bytes) per type
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q8_0": (32, 34),
          "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24),
          "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, buf):
        self.buf, self.off = buf, 0

    def get(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.off)[0]
        self.off += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.get("<Q")
        s = bytes(self.buf[self.off:self.off + n]).decode("utf-8", "replace")
        self.off += n
        return s

    def value(self, t):
        if t in SCALARS:
            return self.get(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.get("<I"), self.get("<Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError("GGUF value type %d" % t)


def read_gguf(path):
    buf = memoryview(open(path, "rb").read())
    r = Reader(buf)
    assert bytes(buf[:4]) == b"GGUF", "not a GGUF file"
    r.off = 4
    version = r.get("<I")
    assert version in (2, 3), version
    n_tensors, n_kv = r.get("<Q"), r.get("<Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.get("<I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.get("<I")
        ne = [r.get("<Q") for _ in range(nd)]
        t = r.get("<I")
        off = r.get("<Q")
        infos.append((name, ne, t, off))
    align = kv.get("general.alignment", 32)
    base = (r.off + align - 1) // align * align
    tensors = {}
    for name, ne, t, off in infos:
        kind = TYPES[t]
        nelem = int(np.prod(ne))
        be, bb = BLOCKS[kind]
        raw = np.frombuffer(buf, dtype=np.uint8, count=nelem // be * bb, offset=base + off)
        w = raw.view("<f4") if kind == "F32" else dequant(kind, raw.copy())
        # ne[0] is the row length: a matrix of ne = [k, n] is n rows of k
        tensors[name] = torch.from_numpy(w.astype(np.float64).reshape(list(reversed(ne))))
    return kv, tensors


def rope(x, pos, n_rot, base, neox):
    """x: [T, heads, d] rotated in place of its first n_rot dims at positions pos."""
    half = n_rot // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / n_rot)
    ang = pos.to(torch.float64)[:, None] * inv[None, :]          # [T, half]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x = x.clone()
    if neox:
        a, b = x[..., :half].clone(), x[..., half:n_rot].clone()
        x[..., :half] = a * c - b * s
        x[..., half:n_rot] = a * s + b * c
    else:
        a, b = x[..., 0:n_rot:2].clone(), x[..., 1:n_rot:2].clone()
        x[..., 0:n_rot:2] = a * c - b * s
        x[..., 1:n_rot:2] = a * s + b * c
    return x


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def forward(kv, t, tokens, cache="f32"):
    arch = kv["general.architecture"]
    hp = lambda k, d=None: kv.get("%s.%s" % (arch, k), d)  # noqa: E731
    n_embd, n_layer = hp("embedding_length"), hp("block_count")
    n_head = hp("attention.head_count")
    n_head_kv = hp("attention.head_count_kv", n_head)
    head_dim = hp("attention.key_length", n_embd // n_head)
    n_rot = hp("rope.dimension_count", head_dim)
    base = hp("rope.freq_base", 10000.0)
    eps = hp("attention.layer_norm_rms_epsilon")
    neox = arch == "qwen2"
    T = len(tokens)
    pos = torch.arange(T)
    x = t["token_embd.weight"][torch.tensor(tokens)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    group = n_head // n_head_kv
    for i in range(n_layer):
        p = "blk.%d." % i
        h = rmsnorm(x, t[p + "attn_norm.weight"], eps)
        q, k, v = h @ t[p + "attn_q.weight"].T, h @ t[p + "attn_k.weight"].T, \
            h @ t[p + "attn_v.weight"].T
        if p + "attn_q.bias" in t:
            q, k, v = q + t[p + "attn_q.bias"], k + t[p + "attn_k.bias"], \
                v + t[p + "attn_v.bias"]
        q = rope(q.view(T, n_head, head_dim), pos, n_rot, base, neox)
        k = rope(k.view(T, n_head_kv, head_dim), pos, n_rot, base, neox)
        v = v.view(T, n_head_kv, head_dim)
        if cache == "f16":
            k, v = k.half().double(), v.half().double()
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        s = torch.einsum("thd,shd->hts", q, k) / head_dim ** 0.5 + mask
        a = torch.einsum("hts,shd->thd", torch.softmax(s, -1), v).reshape(T, -1)
        x = x + a @ t[p + "attn_output.weight"].T
        h = rmsnorm(x, t[p + "ffn_norm.weight"], eps)
        g, u = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ t[p + "ffn_down.weight"].T
    x = rmsnorm(x, t["output_norm.weight"], eps)
    head = t.get("output.weight", t["token_embd.weight"])
    return x @ head.T


def job(model, tokens, out, cache="f32"):
    if cache not in ("f32", "f16"):
        raise ValueError("KV %s is not f32 or f16" % cache)
    kv, t = read_gguf(model)
    ids = [int(s) for s in open(tokens).read().split()]
    with torch.no_grad():
        logits = forward(kv, t, ids, cache)
    logits.numpy().astype("<f8").tofile(out)


def main():
    if sys.argv[1:] == ["--serve"]:
        for line in sys.stdin:
            try:
                job(*line.split())
                print("ok", flush=True)
            except Exception as e:  # noqa: BLE001  (reported to the test)
                print("error: %r" % e, flush=True)
        return
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: forward_ref.py MODEL.gguf TOKENS OUT [f32|f16] | --serve")
    job(*sys.argv[1:])


if __name__ == "__main__":
    main()
