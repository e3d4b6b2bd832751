#!/usr/bin/env python3
"""safetensors interop: loom's reader and writer against the reference
`safetensors` package (Hugging Face, Rust core), in both directions.

usage: safetensors_interop.py LOOM_SAFETENSORS_TOOL WORK_DIR

1. Python -> loom: the reference package writes the sample (with
   safetensors.numpy, and bf16 through safetensors.serialize_file since numpy
   has no bfloat16); `loom_safetensors_tool check-sample` must read exactly
   the same bytes.
2. loom -> Python: `loom_safetensors_tool write-sample` writes it; the
   reference package must parse the file (its parser is strict about offsets)
   and every tensor must match bit for bit, with the metadata.

Exits 77 (ctest: skipped) when safetensors or numpy cannot be imported.
"""
import os
import subprocess
import sys

try:
    import numpy as np
    import safetensors
    import safetensors.numpy as stnp
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"SKIPPED: {e} (pip install safetensors numpy)")
    sys.exit(77)

METADATA = {"format": "pt", "producer": "loom-interop"}


def bits(values, bit_type, dtype, shape):
    return np.array(values, dtype=bit_type).view(dtype).reshape(shape)


# Must match sample() in safetensors_tool.cpp. bf16 is kept as its raw bits.
SAMPLE = {
    "f32": bits([0x00000000, 0x80000000, 0x3FC00000, 0xC0100000, 0x7F800000, 0x00000001, 0x7F7FFFFF, 0x7FC00001],
                np.uint32, np.float32, (2, 4)),
    "f64": bits([0x400921FB54442D18, 0x8000000000000000, 0x7FEFFFFFFFFFFFFF, 0x1], np.uint64, np.float64, (4,)),
    "f16": bits([0x3C00, 0xC100, 0x7BFF, 0x0001], np.uint16, np.float16, (2, 2)),
    "i32": np.array([-(2**31), -1, 2**31 - 1], dtype=np.int32),
    "i64": np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64).reshape(2, 1, 2),
    "u8": np.array([0, 1, 127, 128, 255], dtype=np.uint8),
    "bool": np.array([[True, False], [False, True]]),
    "scalar": np.array(42.5, dtype=np.float64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "big": (0.25 * np.arange(64 * 33, dtype=np.float32) - 100.0).astype(np.float32).reshape(64, 33),
}
BF16_BITS = np.array([0x3F80, 0xC040, 0x7F80], dtype=np.uint16)
ST_DTYPE = {"f32": "F32", "f64": "F64", "f16": "F16", "i32": "I32", "i64": "I64", "u8": "U8", "bool": "BOOL",
            "scalar": "F64", "empty": "F32", "big": "F32"}

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def run_tool(tool, *args):
    r = subprocess.run([tool, *args], capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.returncode


def write_with_bf16(path):
    """The sample with bf16, through the reference serializer. Returns False
    when this version of the package offers no way to pass raw bf16 bytes."""
    buffers = []
    if hasattr(safetensors, "TensorSpec"):  # safetensors >= 0.6: TensorSpec(dtype, shape, data_ptr, data_len)
        def spec(dtype, shape, arr):
            arr = np.ascontiguousarray(arr)
            buffers.append(arr)
            return safetensors.TensorSpec(dtype=dtype, shape=tuple(shape), data_ptr=arr.ctypes.data,
                                          data_len=arr.nbytes)
    else:  # older: plain dicts with the bytes
        def spec(dtype, shape, arr):
            return {"dtype": dtype, "shape": list(shape), "data": np.ascontiguousarray(arr).tobytes()}
    try:
        tensors = {name: spec(arr.dtype.name, arr.shape, arr) for name, arr in SAMPLE.items()}
        tensors["bf16"] = spec("bfloat16", BF16_BITS.shape, BF16_BITS)
        safetensors.serialize_file(tensors, path, metadata=METADATA)
        return True
    except Exception as e:  # noqa: BLE001 - report and skip that one direction
        print(f"note: the reference package cannot write raw bf16 here ({type(e).__name__}: {e})")
        return False


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    print(f"safetensors {safetensors.__version__}, numpy {np.__version__}")

    # 1. Python -> loom.
    py_np = os.path.join(work, "from_python_numpy.safetensors")
    stnp.save_file(SAMPLE, py_np, metadata=METADATA)
    check(run_tool(tool, "check-sample", py_np, "--without", "bf16") == 0,
          "loom reads the file written by safetensors.numpy (all dtypes but bf16)")
    py_bf16 = os.path.join(work, "from_python_bf16.safetensors")
    if write_with_bf16(py_bf16):
        check(run_tool(tool, "check-sample", py_bf16) == 0,
              "loom reads the file written by safetensors.serialize_file (all dtypes with bf16)")
    else:
        print("skip bf16 python -> loom")

    # 2. loom -> Python.
    loom_path = os.path.join(work, "from_loom.safetensors")
    check(run_tool(tool, "write-sample", loom_path) == 0, "loom writes the sample")
    with safetensors.safe_open(loom_path, framework="np") as f:
        keys = set(f.keys())
        check(keys == set(SAMPLE) | {"bf16"}, f"the reference reader lists the sample's tensors ({sorted(keys)})")
        check(f.metadata() == METADATA, f"metadata round trips ({f.metadata()})")
        for name, want in SAMPLE.items():
            got = f.get_tensor(name)
            check(same_bits(got, want), f"{name}: {got.dtype}{list(got.shape)} matches bit for bit")
    with open(loom_path, "rb") as fh:
        raw = dict(safetensors.deserialize(fh.read()))
    check(raw["bf16"]["dtype"] == "BF16" and list(raw["bf16"]["shape"]) == [3]
          and bytes(raw["bf16"]["data"]) == BF16_BITS.tobytes(), "bf16: dtype, shape and bits match")
    for name, want in SAMPLE.items():
        check(raw[name]["dtype"] == ST_DTYPE[name] and bytes(raw[name]["data"]) == want.tobytes(),
              f"{name}: raw dtype {raw[name]['dtype']} and bytes match")

    # loom -> Python -> loom: the tensors the reference reader got from loom's
    # file, written again by the reference writer, read by loom.
    with safetensors.safe_open(loom_path, framework="np") as f:
        relayed = {name: f.get_tensor(name) for name in SAMPLE}
    again = os.path.join(work, "relayed.safetensors")
    stnp.save_file(relayed, again, metadata=METADATA)
    check(run_tool(tool, "check-sample", again, "--without", "bf16") == 0, "loom -> Python -> loom keeps every value")

    print(f"{len(failures)} failed" if failures else "all interop checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
