#!/usr/bin/python3
"""loom vs PyTorch (and OpenBLAS / Eigen for GEMM) on the same shapes, in one run.

Runs `loom-bench` as a subprocess, parses its JSON lines, times the same
operation in PyTorch (same shapes, dtype, thread count, warm-up and median
method), and prints one JSON line per case with `ratio` = torch_ms / loom_ms
(> 1: loom is faster), then a plain table.

GEMM is also timed with numpy's OpenBLAS in worker subprocesses: once with
OPENBLAS_CORETYPE removed from the environment (OpenBLAS picks its own kernel
for this CPU) and once with the machine's value (e.g. Haswell), for that
comparison only; PyTorch runs with the environment as given. loom's GEMM is
Eigen today, so the Eigen column is loom's own figure.

Training steps: the same models as loom's gpt and vit tasks (same sizes,
batch, sequence length, dropout, AdamW with decay groups, clipping) on random
data of the same shapes; loom's step includes its (prefetched) data loader.

usage: compare_torch.py [--loom-bench PATH] [--threads N] [--groups gemm,memory,conv,attention,train]
                        [--max-square N] [--out results.jsonl]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def median_ms(fn, warmup=2, reps=0, budget_s=0.4):
    times = []
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    if reps <= 0:
        reps = int(min(50, max(5, budget_s * 1e3 / max(1e-3, times[-1]))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    n = len(times)
    return times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])


# --------------------------------------------------------------------------
# numpy / OpenBLAS worker (a separate process, so its environment decides the
# OpenBLAS kernel): reads [[m, n, k, ta, tb], ...] on stdin, prints ms per case.
# --------------------------------------------------------------------------
def numpy_worker():
    import numpy as np
    cases = json.load(sys.stdin)
    out = []
    rng = np.random.default_rng(0)
    for m, n, k, ta, tb in cases:
        a = rng.standard_normal((k, m), dtype=np.float32).T if ta else rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32).T if tb else rng.standard_normal((k, n), dtype=np.float32)
        out.append(median_ms(lambda: a @ b))
    try:
        cfg = np.__config__.get_info("openblas_info")
    except Exception:  # noqa: BLE001
        cfg = {}
    print(json.dumps({"ms": out, "openblas": bool(cfg)}))


def numpy_gemm_times(cases, threads, coretype_unset):
    env = dict(os.environ)
    if coretype_unset:
        env.pop("OPENBLAS_CORETYPE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--numpy-worker"], input=json.dumps(cases),
                       capture_output=True, text=True, env=env, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["ms"]


# --------------------------------------------------------------------------
# PyTorch equivalents of each loom-bench record
# --------------------------------------------------------------------------
def torch_case(rec):
    import torch
    import torch.nn.functional as F
    name, shape, pas = rec["name"], rec["shape"], rec.get("pass", "")
    dims = [int(x) for x in shape.split("x")] if re.fullmatch(r"\d+(x\d+)*", shape) else None

    def fwd_bwd(inputs, f):
        if pas == "fwd":
            def run():
                with torch.no_grad():
                    f(*inputs)
            return median_ms(run)
        with torch.no_grad():
            dy = torch.randn_like(f(*inputs))

        def run():
            for t in inputs:
                if t.requires_grad:
                    t.grad = None
            f(*inputs).backward(dy)
        return median_ms(run)

    if name == "gemm":
        m, n, k = rec["m"], rec["n"], rec["k"]
        a = torch.randn(k, m).t() if rec["trans_a"] else torch.randn(m, k)
        b = torch.randn(n, k).t() if rec["trans_b"] else torch.randn(k, n)
        with torch.no_grad():
            return median_ms(lambda: torch.matmul(a, b))
    if name == "softmax":
        return fwd_bwd([torch.randn(*dims, requires_grad=True)], lambda x: torch.softmax(x, -1))
    if name == "layer_norm":
        c = dims[-1]
        ins = [torch.randn(*dims, requires_grad=True), torch.ones(c, requires_grad=True),
               torch.zeros(c, requires_grad=True)]
        return fwd_bwd(ins, lambda x, w, b: F.layer_norm(x, (c,), w, b, 1e-5))
    if name == "rms_norm":  # torch 1.13 has no fused rms_norm: the usual composite
        c = dims[-1]
        ins = [torch.randn(*dims, requires_grad=True), torch.ones(c, requires_grad=True)]
        return fwd_bwd(ins, lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w)
    if name == "gelu_tanh":
        return fwd_bwd([torch.randn(*dims, requires_grad=True)], lambda x: F.gelu(x, approximate="tanh"))
    if name == "cross_entropy":
        tg = torch.randint(0, dims[1], (dims[0],))
        return fwd_bwd([torch.randn(*dims, requires_grad=True)], lambda x: F.cross_entropy(x, tg))
    if name == "adamw":
        p = torch.nn.Parameter(torch.randn(int(shape)))
        p.grad = torch.randn(int(shape))
        opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        return median_ms(opt.step)
    if name == "conv2d":
        g = re.fullmatch(r"x(\d+)x(\d+)x(\d+)x(\d+)_w(\d+)x(\d+)x(\d+)x(\d+)_s(\d+)(?:p(\d+))?", shape)
        v = [int(x) if x else 0 for x in g.groups()]
        x = torch.randn(*v[0:4], requires_grad=(v[1] > 1))  # the image stem's input needs no gradient
        ins = [x, torch.randn(*v[4:8], requires_grad=True), torch.zeros(v[4], requires_grad=True)]
        return fwd_bwd(ins, lambda x, w, b: F.conv2d(x, w, b, stride=v[8], padding=v[9]))
    if name in ("attention", "attention_causal"):
        causal = name == "attention_causal"
        t, d = dims[2], dims[3]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)

        def attn(q, k, v):  # loom's `_composed` rows (torch 1.13 has no fused SDPA)
            s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
            if causal:
                s = s.masked_fill(mask, float("-inf"))
            return torch.matmul(torch.softmax(s, -1), v)
        return fwd_bwd([torch.randn(*dims, requires_grad=True) for _ in range(3)], attn)
    return None


# --------------------------------------------------------------------------
# Training steps: the models of loom's gpt and vit tasks, in PyTorch
# --------------------------------------------------------------------------
def torch_train_step(recipe_path, warmup=3, steps=10):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    r = json.load(open(recipe_path))
    m, tr, op = r["model"], r["train"], r["optim"]

    class Block(nn.Module):
        def __init__(self, d, heads, hidden, causal, act, p):
            super().__init__()
            self.h, self.causal, self.act, self.p = heads, causal, act, p
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)

        def attn(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(x).split(d, -1)
            q, k, v = (y.reshape(b, t, self.h, d // self.h).transpose(1, 2) for y in (q, k, v))
            s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d // self.h)
            if self.causal:
                s = s.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
            a = torch.matmul(torch.softmax(s, -1), v).transpose(1, 2).reshape(b, t, d)
            return F.dropout(self.out(a), self.p, self.training)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            h = F.gelu(self.fc1(self.norm2(x)), approximate=self.act)
            return x + F.dropout(self.fc2(h), self.p, self.training)

    if m["kind"] == "gpt":
        d, t, vsz = m["d_model"], m["seq_len"], m["vocab_size"]
        p = m.get("dropout", 0.0)

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte = nn.Embedding(vsz, d)
                self.wpe = nn.Parameter(torch.randn(t, d) * 0.02)
                self.blocks = nn.ModuleList(Block(d, m["n_heads"], m["mlp_ratio"] * d, True, "tanh", p)
                                            for _ in range(m["n_layers"]))
                self.ln_f = nn.LayerNorm(d)

            def forward(self, ids):
                x = F.dropout(self.wte(ids) + self.wpe[: ids.shape[1]], p, self.training)
                for blk in self.blocks:
                    x = blk(x)
                return torch.matmul(self.ln_f(x), self.wte.weight.t())

        model, b = GPT(), tr["batch_size"]
        x, y = torch.randint(0, vsz, (b, t)), torch.randint(0, vsz, (b, t))
        loss_fn = lambda: F.cross_entropy(model(x).reshape(-1, vsz), y.reshape(-1))  # noqa: E731
        units, unit = b * t, "tokens"
    else:
        if m.get("arch", "vit") != "vit":
            return None  # only the gpt and vit models are mirrored here
        d, patch = m["d_model"], m["patch"]
        p = m.get("dropout", 0.0)

        class ViT(nn.Module):
            def __init__(self):
                super().__init__()
                self.patches = nn.Conv2d(1, d, patch, stride=patch)
                self.pos = nn.Parameter(torch.randn(1, (28 // patch) ** 2, d) * 0.02)
                self.blocks = nn.ModuleList(Block(d, m["n_heads"], m["mlp_ratio"] * d, False, "none", p)
                                            for _ in range(m["n_layers"]))
                self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 10)

            def forward(self, img):
                x = self.patches(img).flatten(2).transpose(1, 2) + self.pos
                for blk in self.blocks:
                    x = blk(x)
                return self.head(self.norm(x).mean(1))

        model, b = ViT(), tr["batch_size"]
        x, y = torch.randn(b, 1, 28, 28), torch.randint(0, 10, (b,))
        loss_fn = lambda: F.cross_entropy(model(x), y)  # noqa: E731
        units, unit = b, "samples"
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": op.get("weight_decay", 0.0)},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(op.get("beta1", 0.9), op.get("beta2", 0.999)), eps=op.get("eps", 1e-8))
    clip = tr.get("clip_grad_norm", 0.0)
    model.train()

    def step():
        loss_fn().backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    ms = median_ms(step, warmup=warmup, reps=steps)
    return ms, units, unit


# --------------------------------------------------------------------------
def run_loom(bench, args, extra):
    cmd = [bench] + args + extra
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"loom-bench failed ({p.returncode}): {p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--numpy-worker":
        return numpy_worker()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_bench = next((p for p in (os.path.join(ROOT, "build", "bin", "loom-bench"),
                                      os.path.join(ROOT, "build-bench", "bin", "loom-bench")) if os.path.exists(p)),
                         "loom-bench")
    ap.add_argument("--loom-bench", default=default_bench)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LOOM_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--groups", default="gemm,memory,conv,attention,train")
    ap.add_argument("--max-square", type=int, default=2048)
    ap.add_argument("--recipes", default="recipes/poetry-gpt.json,recipes/fashion-vit.json")
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    thr = ["--threads", str(a.threads)]
    peak = run_loom(a.loom_bench, ["peak"], thr)
    fma = next(r["gflops"] for r in peak if r["name"] == "peak_fma")
    bw = next(r["gbps"] for r in peak if r["name"] == "peak_copy")
    lim = thr + ["--fma-gflops", str(fma), "--copy-gbps", str(bw)]
    results = list(peak)
    groups = a.groups.split(",")

    for g in ("gemm", "memory", "conv", "attention"):
        if g not in groups:
            continue
        recs = run_loom(a.loom_bench, [g], lim + (["--max-square", str(a.max_square)] if g == "gemm" else []))
        for r in recs:
            tms = torch_case(r)
            if tms is not None:
                r["torch_ms"] = round(tms, 4)
                r["ratio"] = round(tms / r["median_ms"], 3)
        if g == "gemm":
            cases = [[r["m"], r["n"], r["k"], r["trans_a"], r["trans_b"]] for r in recs]
            # numpy's BLAS (OpenBLAS when installed) as a second, out-of-process peer;
            # loom-bench gemm itself times Eigen and OpenBLAS in the same rounds as loom.
            for key, unset in (("numpy_ms", True), ("numpy_haswell_ms", False)):
                if not unset and "OPENBLAS_CORETYPE" not in os.environ:
                    continue
                for r, ms in zip(recs, numpy_gemm_times(cases, a.threads, unset)):
                    r[key] = round(ms, 4)
                    r[key.replace("_ms", "_ratio")] = round(ms / r["median_ms"], 3)
                    r[key.replace("_ms", "_gflops")] = round(2.0 * r["m"] * r["n"] * r["k"] / (ms * 1e-3) / 1e9, 3)
        results += recs

    if "train" in groups:
        for rp in a.recipes.split(","):
            path = rp if os.path.isabs(rp) else os.path.join(ROOT, rp)
            recs = run_loom(a.loom_bench, ["train-step", "--recipe", path], lim)
            for r in recs:
                got = torch_train_step(path)
                if got is None:
                    r["torch_note"] = "model not mirrored in PyTorch (only gpt and vit)"
                    continue
                tms, units, unit = got
                r["torch_ms"] = round(tms, 3)
                r["torch_" + unit + "_per_s"] = round(units / (tms * 1e-3), 1)
                r["ratio"] = round(tms / r["median_ms"], 3)
            results += recs

    out = open(a.out, "w") if a.out else None
    for r in results:
        line = json.dumps(r)
        print(line)
        if out:
            out.write(line + "\n")
    # plain table on stderr
    print(f"\n{'name':18} {'pass':8} {'shape':34} {'loom ms':>9} {'torch ms':>9} {'ratio':>6} {'frac':>6} {'l/oblas':>7}",
          file=sys.stderr)
    for r in results:
        print(f"{r['name']:18} {r.get('pass', r.get('layer', '')):8} {r['shape'][:34]:34} {r['median_ms']:9.3f} "
              f"{r.get('torch_ms', float('nan')):9.3f} {r.get('ratio', float('nan')):6.2f} "
              f"{r.get('fraction_of_peak', float('nan')):6.3f} {r.get('loom_over_openblas', float('nan')):7.2f}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
