#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Reference dequantisation of ggml block formats in numpy, written from the
# format definitions (ggml-common.h block layouts) independently of llmq's C
# code: read raw blocks from IN, write float32 values to OUT.
#
#   dequant_ref.py TYPE IN OUT      TYPE: F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1
#                                         Q4_K Q5_K Q6_K
import sys

import numpy as np


def f16(b):
    """One little-endian half per row of two bytes, as a flat float32 array."""
    return b.view("<f2").astype(np.float32).reshape(-1)


def dequant(kind, raw):
    if kind == "F16":
        return raw.view("<f2").astype(np.float32)
    if kind == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if kind == "Q8_0":
        b = raw.reshape(-1, 34)
        d = f16(b[:, 0:2].copy())
        q = b[:, 2:].view(np.int8).astype(np.float32)
        return (d[:, None] * q).reshape(-1)
    if kind == "Q4_0":
        b = raw.reshape(-1, 18)
        d = f16(b[:, 0:2].copy())
        qs = b[:, 2:]
        lo = (qs & 0x0F).astype(np.int32) - 8
        hi = (qs >> 4).astype(np.int32) - 8
        q = np.concatenate([lo, hi], axis=1).astype(np.float32)
        return (d[:, None] * q).reshape(-1)
    if kind in ("Q4_1", "Q5_0", "Q5_1"):
        # d, then m (Q4_1, Q5_1), then a 32-bit qh (Q5_0, Q5_1: bit j is
        # the fifth bit of value j), then 16 bytes of nibbles, low first
        size = {"Q4_1": 20, "Q5_0": 22, "Q5_1": 24}[kind]
        b = raw.reshape(-1, size)
        d = f16(b[:, 0:2].copy())
        at = 2
        m = None
        if kind != "Q5_0":
            m = f16(b[:, 2:4].copy())
            at = 4
        q = np.concatenate([b[:, -16:] & 0x0F, b[:, -16:] >> 4], axis=1).astype(np.int32)
        if kind != "Q4_1":
            qh = b[:, at:at + 4].copy().view("<u4").reshape(-1, 1).astype(np.int64)
            q |= (((qh >> np.arange(32)) & 1) << 4).astype(np.int32)
        if m is None:
            return ((q - 16).astype(np.float32) * d[:, None]).reshape(-1)
        return (q.astype(np.float32) * d[:, None] + m[:, None]).reshape(-1)
    if kind in ("Q4_K", "Q5_K"):
        size = 144 if kind == "Q4_K" else 176
        b = raw.reshape(-1, size)
        d = f16(b[:, 0:2].copy())
        dmin = f16(b[:, 2:4].copy())
        s = b[:, 4:16].astype(np.uint8)
        # Q5_K: 32 bytes of fifth bits (bit j of byte l: weight l of
        # sub-block j) between the scales and the nibbles
        qh = b[:, 16:48] if kind == "Q5_K" else None
        qs = b[:, 48:] if kind == "Q5_K" else b[:, 16:]
        # 8 six-bit scales and mins, packed as ggml's get_scale_min_k4
        sc = np.zeros((b.shape[0], 8), np.uint8)
        mn = np.zeros((b.shape[0], 8), np.uint8)
        sc[:, :4] = s[:, 0:4] & 63
        mn[:, :4] = s[:, 4:8] & 63
        sc[:, 4:] = (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)
        mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
        out = np.empty((b.shape[0], 256), np.float32)
        for pair in range(4):
            q = qs[:, 32 * pair:32 * pair + 32]
            for half, nib in ((0, q & 0x0F), (1, q >> 4)):
                j = 2 * pair + half
                val = nib.astype(np.float32)
                if qh is not None:
                    val += 16 * ((qh >> j) & 1).astype(np.float32)
                dj = (d * sc[:, j].astype(np.float32))[:, None]
                mj = (dmin * mn[:, j].astype(np.float32))[:, None]
                out[:, 32 * j:32 * j + 32] = dj * val - mj
        return out.reshape(-1)
    if kind == "Q6_K":
        # ql[128] qh[64] scales[16] (int8) d (half, last)
        b = raw.reshape(-1, 210)
        ql = b[:, 0:128]
        qh = b[:, 128:192]
        sc = b[:, 192:208].view(np.int8).astype(np.float32)
        d = f16(b[:, 208:210].copy())
        q = np.empty((b.shape[0], 256), np.int32)
        for half in range(2):
            lo = ql[:, 64 * half:64 * half + 64]
            hb = qh[:, 32 * half:32 * half + 32]
            base = 128 * half
            q[:, base + 0:base + 32] = (lo[:, 0:32] & 15) | ((hb & 3) << 4)
            q[:, base + 32:base + 64] = (lo[:, 32:64] & 15) | (((hb >> 2) & 3) << 4)
            q[:, base + 64:base + 96] = (lo[:, 0:32] >> 4) | (((hb >> 4) & 3) << 4)
            q[:, base + 96:base + 128] = (lo[:, 32:64] >> 4) | (((hb >> 6) & 3) << 4)
        # one scale per 16 weights
        scale = (d[:, None] * sc)  # [blocks, 16]
        out = np.repeat(scale, 16, axis=1) * (q - 32).astype(np.float32)
        return out.reshape(-1)
    raise SystemExit("unknown type " + kind)


def main():
    kind, src, dst = sys.argv[1:4]
    raw = np.fromfile(src, dtype=np.uint8)
    dequant(kind, raw).astype("<f4").tofile(dst)


if __name__ == "__main__":
    main()
