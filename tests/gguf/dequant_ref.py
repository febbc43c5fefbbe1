#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Reference dequantisation of ggml block formats in numpy, written from the
# format definitions (ggml-common.h block layouts) independently of llmq's C
# code: read raw blocks from IN, write float32 values to OUT.
#
#   dequant_ref.py TYPE IN OUT      TYPE: F16 BF16 Q8_0 Q4_0 Q4_K
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
    if kind == "Q4_K":
        b = raw.reshape(-1, 144)
        d = f16(b[:, 0:2].copy())
        dmin = f16(b[:, 2:4].copy())
        s = b[:, 4:16].astype(np.uint8)
        qs = b[:, 16:]
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
                dj = (d * sc[:, j].astype(np.float32))[:, None]
                mj = (dmin * mn[:, j].astype(np.float32))[:, None]
                out[:, 32 * j:32 * j + 32] = dj * nib.astype(np.float32) - mj
        return out.reshape(-1)
    raise SystemExit("unknown type " + kind)


def main():
    kind, src, dst = sys.argv[1:4]
    raw = np.fromfile(src, dtype=np.uint8)
    dequant(kind, raw).astype("<f4").tofile(dst)


if __name__ == "__main__":
    main()
