#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Train llmq's bundled model: a LLaMA-architecture transformer (RMSNorm,
# RoPE, grouped-query attention, SwiGLU) with a SentencePiece BPE tokenizer
# (byte fallback, as LLaMA's), both trained here on the corpus of corpus.py.
#
#   train.py --corpus DIR --out DIR [--steps N] [--threads N] [--seed S] ...
#
# OUT receives a Hugging Face style checkpoint that llmq-mkmodel converts to
# GGUF: config.json, model.safetensors (LlamaForCausalLM tensor names and
# rotate-half RoPE layout), tokenizer.model and tokenizer.vocab, plus
# report.json (losses, perplexities, timings) for the provenance file and
# check.tokens / check.f32 (held-out tokens and the model's logits on them).
#
# Reproducible: the tokenizer trainer sees the whole corpus in file order,
# every random draw comes from the seed, torch runs its deterministic
# algorithms on a fixed number of threads, so the same command, torch build
# and thread count give the same bytes.
import argparse
import json
import math
import os
import platform
import struct
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from torch import nn


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus", required=True, help="directory with train.txt, heldout.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=1024)
    p.add_argument("--ctx", type=int, default=256, help="training sequence length")
    p.add_argument("--max-ctx", type=int, default=1024, help="context the model declares")
    p.add_argument("--rope-base", type=float, default=10000.0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=250)
    return p.parse_args()


# ---- tokenizer -----------------------------------------------------------

def train_tokenizer(a):
    prefix = os.path.join(a.out, "tokenizer")
    spm.SentencePieceTrainer.train(
        input=os.path.join(a.corpus, "train.txt"), model_prefix=prefix,
        model_type="bpe", vocab_size=a.vocab, character_coverage=1.0,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, input_sentence_size=0,
        shuffle_input_sentence=False, num_threads=1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=prefix + ".model")


def encode(sp, path):
    """Chapters as BOS, verses joined by a newline byte, EOS."""
    nl = sp.piece_to_id("<0x0A>")
    ids = []
    for chapter in open(path).read().split("\n\n"):
        verses = [v for v in chapter.split("\n") if v]
        if not verses:
            continue
        ids.append(sp.bos_id())
        for i, piece in enumerate(sp.encode(verses)):
            if i:
                ids.append(nl)
            ids.extend(piece)
        ids.append(sp.eos_id())
    return torch.tensor(ids, dtype=torch.long)


# ---- model ---------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(n)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        hd = a.dim // a.heads
        self.nh, self.nkv, self.hd = a.heads, a.kv_heads, hd
        self.input_layernorm = RMSNorm(a.dim, 1e-5)
        self.q_proj = nn.Linear(a.dim, a.heads * hd, bias=False)
        self.k_proj = nn.Linear(a.dim, a.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(a.dim, a.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(a.heads * hd, a.dim, bias=False)
        self.post_attention_layernorm = RMSNorm(a.dim, 1e-5)
        self.gate_proj = nn.Linear(a.dim, a.ffn, bias=False)
        self.up_proj = nn.Linear(a.dim, a.ffn, bias=False)
        self.down_proj = nn.Linear(a.ffn, a.dim, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = self.nh // self.nkv
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, -1)
        x = x + self.o_proj(o)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim, 1e-5)
        hd = a.dim // a.heads
        inv = 1.0 / a.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(a.max_ctx, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), -1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                    std /= math.sqrt(2 * a.layers)
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x) @ self.embed_tokens.weight.T	 # tied LM head


def hf_state(model):
    """Tensor names of transformers' LlamaForCausalLM."""
    out = {}
    for name, t in model.state_dict().items():
        if name.startswith("layers."):
            i, rest = name.split(".")[1], name.split(".", 2)[2]
            sub = "mlp" if rest.split(".")[0] in ("gate_proj", "up_proj", "down_proj") else \
                "self_attn" if rest.endswith("_proj.weight") else None
            name = "layers.%s.%s%s" % (i, sub + "." if sub else "", rest)
        out["model." + name] = t.detach().float().contiguous()
    return out


def write_safetensors(path, tensors):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(tensors):
        n = tensors[name].numel() * 4
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name in sorted(tensors):
            f.write(tensors[name].numpy().astype("<f4").tobytes())


# ---- training ------------------------------------------------------------

def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(model, data, ctx, batch=16):
    """Mean loss per token over non-overlapping windows covering data."""
    model.eval()
    n = (len(data) - 1) // ctx
    total, count = 0.0, 0
    for i in range(0, n, batch):
        idx = torch.arange(i, min(n, i + batch)) * ctx
        x = torch.stack([data[j:j + ctx] for j in idx])
        y = torch.stack([data[j + 1:j + 1 + ctx] for j in idx])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum")
        total, count = total + loss.item(), count + y.numel()
    model.train()
    return total / count


def unigram_loss(train, held, vocab):
    """Cross-entropy of add-one smoothed training token frequencies."""
    c = torch.bincount(train, minlength=vocab).double() + 1.0
    logp = (c / c.sum()).log()
    return -logp[held].mean().item()


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    sp = train_tokenizer(a)
    train, held = encode(sp, os.path.join(a.corpus, "train.txt")), \
        encode(sp, os.path.join(a.corpus, "heldout.txt"))
    print("tokenizer: vocab %d, %d training tokens, %d held out (%.1fs)" %
          (sp.get_piece_size(), len(train), len(held), time.time() - t0), flush=True)

    model = Llama(a)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)
    print("model: %.2fM parameters; %d steps of %d x %d tokens" %
          (n_params / 1e6, a.steps, a.batch, a.ctx), flush=True)
    t1, curve, loss_avg = time.time(), [], None
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(a, step)
        start = torch.randint(0, len(train) - a.ctx - 1, (a.batch,), generator=gen)
        x = torch.stack([train[s:s + a.ctx] for s in start])
        y = torch.stack([train[s + 1:s + 1 + a.ctx] for s in start])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if (step + 1) % 10 == 0 or step == 0:
            dt = time.time() - t1
            print("step %d/%d loss %.3f lr %.2e %.0f tok/s" %
                  (step + 1, a.steps, loss_avg, lr_at(a, step),
                   (step + 1) * a.batch * a.ctx / dt), flush=True)
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            h = evaluate(model, held, a.ctx)
            curve.append({"step": step + 1, "train_loss_ema": loss_avg, "heldout_loss": h})
            print("eval step %d held-out loss %.3f ppl %.1f" % (step + 1, h, math.exp(h)),
                  flush=True)
    train_time = time.time() - t1

    train_loss = evaluate(model, train[:len(held) * 4], a.ctx)
    held_loss = evaluate(model, held, a.ctx)
    uni = unigram_loss(train, held, a.vocab)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": a.dim, "intermediate_size": a.ffn,
           "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
           "num_key_value_heads": a.kv_heads, "max_position_embeddings": a.max_ctx,
           "rms_norm_eps": 1e-5, "rope_theta": a.rope_base, "vocab_size": a.vocab,
           "tie_word_embeddings": True, "bos_token_id": sp.bos_id(),
           "eos_token_id": sp.eos_id(), "hidden_act": "silu", "torch_dtype": "float32"}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    # The trained model's own logits on held-out text: what a conversion
    # must reproduce (tests/unit/test_model.c checks llmq against them).
    check = held[:min(64, a.ctx)]
    model.eval()
    with torch.no_grad():
        model(check[None])[0].numpy().astype("<f4").tofile(os.path.join(a.out, "check.f32"))
    open(os.path.join(a.out, "check.tokens"), "w").write(" ".join(map(str, check.tolist())))
    write_safetensors(os.path.join(a.out, "model.safetensors"), hf_state(model))
    report = {
        "args": vars(a), "parameters": n_params,
        "train_tokens": len(train), "heldout_tokens": len(held),
        "tokens_seen": a.steps * a.batch * a.ctx,
        "epochs": a.steps * a.batch * a.ctx / len(train),
        "train_loss": train_loss, "heldout_loss": held_loss,
        "heldout_ppl": math.exp(held_loss), "unigram_heldout_ppl": math.exp(uni),
        "train_seconds": train_time, "total_seconds": time.time() - t0,
        "curve": curve, "torch": torch.__version__, "threads": a.threads,
        "cpu": platform.processor() or platform.machine(),
    }
    json.dump(report, open(os.path.join(a.out, "report.json"), "w"), indent=2)
    print("done: train loss %.3f, held-out loss %.3f (ppl %.1f; unigram %.1f), %.0f s" %
          (train_loss, held_loss, math.exp(held_loss), math.exp(uni), train_time))


if __name__ == "__main__":
    main()
