#!/usr/bin/env python3
"""same_layout.py CKPT_A CKPT_B: two checkpoint directories hold the same
tensors (names, dtypes, shapes) in weights.safetensors and
optimizer.safetensors, e.g. a ZeRO or tensor-parallel run's checkpoint and a
one-process run's. Exits 1 naming the first difference."""
import json
import os
import struct
import sys


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return {k: (v["dtype"], tuple(v["shape"])) for k, v in h.items()}


def main():
    a, b = sys.argv[1], sys.argv[2]
    for name in ("weights.safetensors", "optimizer.safetensors"):
        ha, hb = header(os.path.join(a, name)), header(os.path.join(b, name))
        if not ha:
            sys.exit(f"FAIL {a}/{name} holds no tensors")
        for k in sorted(set(ha) | set(hb)):
            if ha.get(k) != hb.get(k):
                sys.exit(f"FAIL {name}: '{k}' is {ha.get(k)} in {a} but {hb.get(k)} in {b}")
        print(f"OK {name}: {len(ha)} tensors with the same names, dtypes and shapes")


if __name__ == "__main__":
    main()
