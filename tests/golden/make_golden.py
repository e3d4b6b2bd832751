#!/usr/bin/python3
"""Writes the PyTorch goldens for loom's op table (tests/ops/op_table.cpp).

Command (from the repository root; needs Debian's python3-torch or pip's torch):

    /usr/bin/python3 tests/golden/make_golden.py tests/golden/data

For every case: f32 inputs drawn here, the output, a random weight w, and the
gradients of sum(output * w) with respect to every floating input, as JSON.
The case names, input shapes and semantics mirror op_table.cpp; the C++ test
fails loudly if they drift apart.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261128)


def normal(shape):
    return rng.standard_normal(shape).astype(np.float32)


def spec(shape, kind="normal", high=0):
    return (tuple(shape), kind, high)


def make(s):
    shape, kind, high = s
    if kind == "normal":
        return torch.tensor(normal(shape))
    if kind == "positive":
        return torch.tensor((rng.random(shape) * 1.5 + 0.5).astype(np.float32))
    if kind == "away_from_zero":
        n = normal(shape)
        return torch.tensor(n + np.where(n >= 0, 0.1, -0.1).astype(np.float32))
    if kind == "index":
        return torch.tensor(rng.integers(0, high, shape), dtype=torch.int64)
    if kind == "mask":
        m = rng.random(shape) < 0.5
        m[..., 0] = True
        return torch.tensor(m)
    raise ValueError(kind)


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v, mask=None, causal=False):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    lq, lk = q.shape[-2], k.shape[-2]
    allowed = None
    if mask is not None:
        allowed = mask
    if causal:
        c = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
        allowed = c if allowed is None else (allowed & c)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, -1) @ v


def transformer_block(x, l1w, l1b, wqkv, bqkv, wo, bo, l2w, l2b, w1, b1, w2, b2):
    b, t, d = x.shape
    h = 2
    n1 = F.layer_norm(x, (d,), l1w, l1b)
    q, k, v = F.linear(n1, wqkv, bqkv).split(d, -1)
    heads = lambda y: y.reshape(b, t, h, d // h).transpose(1, 2)
    a = attention(heads(q), heads(k), heads(v), causal=True)
    y = x + F.linear(a.transpose(1, 2).reshape(b, t, d), wo, bo)
    n2 = F.layer_norm(y, (d,), l2w, l2b)
    return y + F.linear(F.gelu(F.linear(n2, w1, b1), approximate="tanh"), w2, b2)


def split_case(x):
    p = x.split(3, 0)
    return torch.cat([p[0] * 2.0, p[2], p[1]], 0)


def chunk_case(x):
    p = x.chunk(3, 1)
    return p[0] * p[2]


S = spec
CASES = {
    "add": ([S([3, 4]), S([4])], lambda a, b: a + b),
    "add_broadcast": ([S([2, 1, 4]), S([3, 1])], lambda a, b: a + b),
    "sub": ([S([3, 4]), S([3, 1])], lambda a, b: a - b),
    "mul": ([S([2, 3, 4]), S([3, 4])], lambda a, b: a * b),
    "div": ([S([3, 4]), S([3, 4], "positive")], lambda a, b: a / b),
    "neg": ([S([3, 4])], lambda a: -a),
    "exp": ([S([3, 4])], torch.exp),
    "log": ([S([3, 4], "positive")], torch.log),
    "sqrt": ([S([3, 4], "positive")], torch.sqrt),
    "rsqrt": ([S([3, 4], "positive")], torch.rsqrt),
    "pow_scalar": ([S([3, 4], "positive")], lambda a: a ** 2.5),
    "pow_tensor": ([S([3, 4], "positive"), S([4])], torch.pow),
    "abs": ([S([3, 4], "away_from_zero")], torch.abs),
    "clamp": ([S([4, 5])], lambda a: a.clamp(-0.5, 0.7)),
    "tanh": ([S([3, 4])], torch.tanh),
    "sigmoid": ([S([3, 4])], torch.sigmoid),
    "relu": ([S([3, 4], "away_from_zero")], torch.relu),
    "gelu_erf": ([S([3, 4])], F.gelu),
    "gelu_tanh": ([S([3, 4])], lambda a: F.gelu(a, approximate="tanh")),
    "silu": ([S([3, 4])], F.silu),
    "maximum": ([S([3, 4]), S([4])], torch.maximum),
    "where": ([S([3, 4], "mask"), S([3, 4]), S([4])], torch.where),
    "masked_fill": ([S([3, 4]), S([1, 4], "mask")], lambda a, m: a.masked_fill(m, 2.5)),
    "sum_all": ([S([3, 4])], lambda a: a.sum()),
    "sum_dim_keepdim": ([S([2, 3, 4])], lambda a: a.sum(1, keepdim=True)),
    "sum_dims": ([S([2, 3, 4])], lambda a: a.sum((0, 2))),
    "mean_dim": ([S([3, 5])], lambda a: a.mean(-1)),
    "var_dim": ([S([3, 5])], lambda a: a.var(1)),
    "amax_dim": ([S([3, 5])], lambda a: a.amax(1, keepdim=True)),
    "max_dim": ([S([4, 5])], lambda a: a.max(0).values),
    "softmax": ([S([3, 5])], lambda a: torch.softmax(a, -1)),
    "softmax_dim0": ([S([4, 3])], lambda a: torch.softmax(a, 0)),
    "log_softmax": ([S([2, 3, 5])], lambda a: torch.log_softmax(a, -1)),
    "matmul": ([S([3, 4]), S([4, 5])], torch.matmul),
    "matmul_broadcast": ([S([2, 3, 4, 5]), S([5, 2])], torch.matmul),
    "matmul_vector": ([S([4]), S([2, 4, 3])], torch.matmul),
    "bmm": ([S([2, 3, 4]), S([2, 4, 5])], torch.bmm),
    "linear": ([S([2, 3, 4]), S([5, 4]), S([5])], F.linear),
    "layer_norm": ([S([3, 6]), S([6]), S([6])], lambda x, w, b: F.layer_norm(x, (6,), w, b)),
    "rms_norm": ([S([4, 6]), S([6])], rms_norm),
    "embedding": ([S([7, 4]), S([2, 3], "index", 7)], lambda w, i: F.embedding(i, w)),
    "cross_entropy": ([S([5, 4]), S([5], "index", 4)], F.cross_entropy),
    "cross_entropy_smooth_ignore": (
        [S([6, 5]), S([6], "index", 5)],
        lambda x, t: F.cross_entropy(x, t, ignore_index=2, label_smoothing=0.1),
    ),
    "conv1d": ([S([2, 3, 7]), S([4, 3, 3]), S([4])], lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1)),
    "conv2d": ([S([2, 2, 5, 5]), S([3, 2, 3, 3]), S([3])], lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1)),
    "conv2d_patch": ([S([1, 3, 4, 4]), S([5, 3, 2, 2])], lambda x, w: F.conv2d(x, w, stride=2)),
    # a ViT patch stem as tokens: [N, C, H, W] -> [N, (H/p)*(W/p), O]
    "patch_embed": (
        [S([2, 3, 4, 6]), S([5, 3, 2, 2]), S([5])],
        lambda x, w, b: F.conv2d(x, w, b, stride=2).flatten(2).transpose(1, 2),
    ),
    "attention": ([S([2, 3, 4]), S([2, 5, 4]), S([2, 5, 3])], attention),
    "attention_causal": (
        [S([1, 2, 4, 3]), S([1, 2, 4, 3]), S([1, 2, 4, 3])],
        lambda q, k, v: attention(q, k, v, causal=True),
    ),
    "attention_padding_mask": (
        [S([2, 1, 3, 4]), S([2, 1, 5, 4]), S([2, 1, 5, 4]), S([2, 1, 1, 5], "mask")],
        lambda q, k, v, m: attention(q, k, v, mask=m),
    ),
    "reshape": ([S([3, 4])], lambda a: a.reshape(2, 6) * a.reshape(2, 6)),
    "permute": ([S([2, 3, 4])], lambda a: a.permute(2, 0, 1).contiguous()),
    "transpose": ([S([3, 4])], lambda a: torch.exp(a.transpose(0, 1))),
    "narrow": ([S([5, 4])], lambda a: a.narrow(0, 1, 3)),
    "slice_step": ([S([6, 4])], lambda a: a[1:6:2]),
    "expand": ([S([3, 1])], lambda a: a.expand(2, 3, 4) * 1.5),
    "index_select": ([S([5, 3]), S([4], "index", 5)], lambda a, i: a.index_select(0, i)),
    "gather": ([S([3, 4]), S([3, 2], "index", 4)], lambda a, i: a.gather(1, i)),
    "scatter": ([S([3, 4]), S([3, 1])], lambda a, s: a.scatter(1, torch.tensor([[2], [0], [3]]), s)),
    "scatter_add": ([S([3, 4]), S([3, 2]), S([3, 2], "index", 4)], lambda a, s, i: a.scatter_add(1, i, s)),
    "cat": ([S([2, 3]), S([4, 3])], lambda a, b: torch.cat([a, b], 0)),
    "stack": ([S([2, 3]), S([2, 3])], lambda a, b: torch.stack([a, b], 1)),
    "split": ([S([7, 2])], split_case),
    "chunk": ([S([2, 6])], chunk_case),
    "transformer_block": (
        [S([2, 4, 8]), S([8]), S([8]), S([24, 8]), S([24]), S([8, 8]), S([8]), S([8]), S([8]),
         S([32, 8]), S([32]), S([8, 32]), S([8])],
        transformer_block,
    ),
    # the shapes a fused flash-attention kernel takes (kept last: earlier cases keep their draws)
    "attention_tiles_causal_padding": (
        [S([1, 2, 70, 16]), S([1, 2, 70, 16]), S([1, 2, 70, 16]), S([1, 1, 1, 70], "mask")],
        lambda q, k, v, m: attention(q, k, v, mask=m, causal=True),
    ),
    "attention_tiles_kv_cache": (
        [S([2, 1, 9, 32]), S([2, 1, 75, 32]), S([2, 1, 75, 32])],
        lambda q, k, v: attention(q, k, v, causal=True),
    ),
    # the residual add fused with the norm after it: both outputs used, then the norm's only
    "residual_layer_norm": (
        [S([3, 6]), S([3, 6]), S([6]), S([6])],
        lambda x, r, w, b: (x + r) * 0.5 + F.layer_norm(x + r, (6,), w, b),
    ),
    "residual_rms_norm": ([S([4, 6]), S([4, 6]), S([6])], lambda x, r, w: rms_norm(x + r, w)),
    # a linear layer with its activation, fused into the product's epilogue where the backend can
    "linear_gelu_tanh": (
        [S([2, 3, 4]), S([8, 4]), S([8])],
        lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh"),
    ),
    "linear_gelu_erf": ([S([3, 4]), S([6, 4]), S([6])], lambda x, w, b: F.gelu(F.linear(x, w, b))),
}


def to_json(t):
    t = t.detach()
    if t.dtype == torch.bool:
        return {"shape": list(t.shape), "dtype": "bool", "data": [int(v) for v in t.flatten().tolist()]}
    if t.dtype == torch.int64:
        return {"shape": list(t.shape), "dtype": "i64", "data": t.flatten().tolist()}
    # repr of a float32 widened to double round-trips exactly
    return {"shape": list(t.shape), "dtype": "f32", "data": [float(v) for v in t.float().flatten().tolist()]}


OPTIMIZERS = {
    "optim_adamw": lambda p: torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
    "optim_sgd_nesterov": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "optim_sgd_momentum": lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.8, dampening=0.1),
}


def write_optimizer_goldens(out_dir):
    """Five steps of each optimizer on given gradients; the parameter after every step."""
    for name, make_opt in OPTIMIZERS.items():
        p = torch.tensor(normal((6,)), requires_grad=True)
        start = p.detach().clone()
        opt = make_opt(p)
        grads, params = [], []
        for _ in range(5):
            g = torch.tensor(normal((6,)))
            p.grad = g.clone()
            opt.step()
            grads.append(to_json(g))
            params.append(to_json(p))
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump({"op": name, "start": to_json(start), "grads": grads, "params": params}, f, separators=(",", ":"))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for name, (specs, fn) in CASES.items():
        inputs = [make(s) for s in specs]
        for t in inputs:
            if t.is_floating_point():
                t.requires_grad_(True)
        out = fn(*inputs)
        weight = torch.tensor(normal(tuple(out.shape)))
        (out * weight).sum().backward()
        record = {
            "op": name,
            "torch": torch.__version__,
            "inputs": [to_json(t) for t in inputs],
            "output": to_json(out),
            "weight": to_json(weight),
            "grads": [to_json(t.grad) if t.is_floating_point() else None for t in inputs],
        }
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(record, f, separators=(",", ":"))
    write_optimizer_goldens(out_dir)
    print(f"wrote {len(CASES)} op goldens and {len(OPTIMIZERS)} optimizer goldens to {out_dir}")


if __name__ == "__main__":
    main()
