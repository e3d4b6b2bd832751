#!/usr/bin/env python3
"""compare_metrics.py RUN_A RUN_B [options]: the training lines of two runs'
metrics.jsonl must agree step by step.

  --steps FIRST-LAST  the steps to compare (default: every step of RUN_A);
                      each must be in both runs
  --rtol R            largest relative difference allowed (default 1e-5)
  --bitwise           the values must be equal (same doubles)
  --keys K1,K2        the fields compared (default loss,grad_norm,lr)
  --what TEXT         names the comparison in the output
  --eval              also compare the metrics of the runs' eval.json
Exits 1 naming the first step and field that differ.
"""
import argparse
import json
import os
import sys


def training_lines(run):
    path = os.path.join(run, "metrics.jsonl")
    lines = {}
    with open(path) as f:
        for text in f:
            line = json.loads(text)
            if "loss" in line:
                lines[line["step"]] = line
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--steps")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--bitwise", action="store_true")
    p.add_argument("--keys", default="loss,grad_norm,lr")
    p.add_argument("--what", default="")
    p.add_argument("--eval", action="store_true")
    args = p.parse_args()
    a, b = training_lines(args.a), training_lines(args.b)
    if args.steps:
        first, last = (int(s) for s in args.steps.split("-"))
        steps = list(range(first, last + 1))
    else:
        steps = sorted(a)
    what = args.what or f"{args.a} vs {args.b}"
    worst = 0.0
    for step in steps:
        for run, lines in ((args.a, a), (args.b, b)):
            if step not in lines:
                sys.exit(f"FAIL {what}: step {step} missing from {run}/metrics.jsonl (has {sorted(lines)})")
        for key in args.keys.split(","):
            x, y = a[step][key], b[step][key]
            rel = abs(x - y) / max(abs(x), 1e-12)
            worst = max(worst, rel)
            if (args.bitwise and x != y) or rel > args.rtol:
                sys.exit(f"FAIL {what}: step {step} {key}: {x!r} vs {y!r} (relative {rel:.3g}, "
                         f"allowed {'0 (bitwise)' if args.bitwise else args.rtol})")
    if args.eval:
        ea, eb = (json.load(open(os.path.join(run, "eval.json")))["metrics"] for run in (args.a, args.b))
        if sorted(ea) != sorted(eb):
            sys.exit(f"FAIL {what}: eval.json metrics {sorted(ea)} vs {sorted(eb)}")
        for key in sorted(ea):
            rel = abs(ea[key] - eb[key]) / max(abs(ea[key]), 1e-12)
            worst = max(worst, rel)
            if (args.bitwise and ea[key] != eb[key]) or rel > args.rtol:
                sys.exit(f"FAIL {what}: eval.json {key}: {ea[key]!r} vs {eb[key]!r} (relative {rel:.3g})")
    mode = "bitwise equal" if args.bitwise else f"worst relative difference {worst:.3g} (allowed {args.rtol})"
    evaluated = " and eval.json" if args.eval else ""
    print(f"OK {what}: steps {steps[0]}-{steps[-1]} {args.keys}{evaluated} {mode}")


if __name__ == "__main__":
    main()
