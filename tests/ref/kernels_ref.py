#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Float64 reference for the CPU backend's kernels, in numpy, from the
# definitions (not from llmq's C): the C test writes inputs and a list of
# cases to DIR, this script writes each case's expected output next to them.
#
#   kernels_ref.py DIR
#
# DIR/cases.txt has one case per line, "OP NAME ARGS...", floats in C's %a
# hex notation. Inputs are NAME.<field> raw little-endian files; outputs are
# NAME.ref (and NAME.abs) as float64.
#
#   matmul  NAME TYPE M N K     .w (GGUF bytes) .x (f32 M*K)
#                               -> .ref y = x W^T, .abs sum_k |x W| (M*N)
#   rmsnorm NAME N EPS          .x .g (f32)      -> .ref
#   rope    NAME ROWS HEADS HEAD_DIM N_ROT BASE SCALE MODE(0 normal, 2 neox)
#                               .x (f32) .pos (i32 ROWS) -> .ref
#   swiglu  NAME N              .g .u            -> .ref
#   add     NAME N              .a .b            -> .ref
#   getrows NAME TYPE ROWS DIM NIDS  .w .ids (i32) -> .ref (f64 NIDS*DIM)
#   attention NAME ROWS HEADS D POS  .q (f32 ROWS*HEADS*D) .k .v (f32 (POS+ROWS)*D,
#                               in position order) -> .ref causal softmax(q k^T /
#                               sqrt(D)) v, row r over positions 0..POS+r; .abs
#                               sum_p w_p |v_p|
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gguf"))
from dequant_ref import dequant  # noqa: E402  (the independent block decoder)


def weights(kind, raw, rows, cols):
    """A GGUF tensor's bytes as float64 rows (dequantised exactly)."""
    if kind == "F32":
        w = raw.view("<f4")
    else:
        w = dequant(kind, raw)
    return w.astype(np.float64).reshape(rows, cols)


def f32(path, count=None):
    a = np.fromfile(path, dtype="<f4").astype(np.float64)
    assert count is None or a.size == count, (path, a.size, count)
    return a


def run(d, line):
    op, name, *args = line.split()
    base = os.path.join(d, name)
    out = base + ".ref"
    if op == "matmul":
        kind = args[0]
        m, n, k = map(int, args[1:4])
        w = weights(kind, np.fromfile(base + ".w", dtype=np.uint8), n, k)
        x = f32(base + ".x", m * k).reshape(m, k)
        (x @ w.T).tofile(out)
        (np.abs(x) @ np.abs(w).T).tofile(base + ".abs")
    elif op == "rmsnorm":
        n, eps = int(args[0]), float.fromhex(args[1])
        x, g = f32(base + ".x", n), f32(base + ".g", n)
        (x / np.sqrt(np.mean(x * x) + eps) * g).tofile(out)
    elif op == "rope":
        rows, heads, hd, n_rot = map(int, args[0:4])
        fbase, fscale = float.fromhex(args[4]), float.fromhex(args[5])
        neox = int(args[6]) == 2
        x = f32(base + ".x", rows * heads * hd).reshape(rows, heads, hd)
        pos = np.fromfile(base + ".pos", dtype="<i4").astype(np.float64)
        half = n_rot // 2
        inv = fscale * fbase ** (-2.0 * np.arange(half) / n_rot)
        th = pos[:, None] * inv[None, :]                  # rows x half
        c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
        if neox:
            i0, i1 = np.arange(half), np.arange(half) + half
        else:
            i0, i1 = 2 * np.arange(half), 2 * np.arange(half) + 1
        y = x.copy()
        a, b = x[:, :, i0], x[:, :, i1]
        y[:, :, i0] = a * c - b * s
        y[:, :, i1] = a * s + b * c
        y.tofile(out)
    elif op == "swiglu":
        n = int(args[0])
        g, u = f32(base + ".g", n), f32(base + ".u", n)
        with np.errstate(over="ignore"):
            (g / (1.0 + np.exp(-g)) * u).tofile(out)
    elif op == "add":
        n = int(args[0])
        (f32(base + ".a", n) + f32(base + ".b", n)).tofile(out)
    elif op == "getrows":
        kind = args[0]
        rows, dim, nids = map(int, args[1:4])
        w = weights(kind, np.fromfile(base + ".w", dtype=np.uint8), rows, dim)
        ids = np.fromfile(base + ".ids", dtype="<i4")
        assert ids.size == nids
        w[ids].tofile(out)
    elif op == "attention":
        rows, heads, d, pos = map(int, args[0:4])
        n = pos + rows
        q = f32(base + ".q", rows * heads * d).reshape(rows, heads, d)
        k = f32(base + ".k", n * d).reshape(n, d)
        v = f32(base + ".v", n * d).reshape(n, d)
        y = np.zeros((rows, heads, d))
        a = np.zeros((rows, heads, d))
        for r in range(rows):
            s = q[r] @ k[: pos + r + 1].T / np.sqrt(d)      # heads x positions
            w = np.exp(s - s.max(axis=1, keepdims=True))
            w /= w.sum(axis=1, keepdims=True)
            y[r] = w @ v[: pos + r + 1]
            a[r] = w @ np.abs(v[: pos + r + 1])
        y.tofile(out)
        a.tofile(base + ".abs")
    else:
        raise SystemExit("kernels_ref: unknown op " + op)


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "cases.txt")) as f:
        for line in f:
            if line.strip():
                run(d, line)


if __name__ == "__main__":
    main()
