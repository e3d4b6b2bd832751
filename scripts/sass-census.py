#!/usr/bin/env python3
"""Instruction census of the register-resident flash-attention kernels' main
loops, read from their SASS: what a machine without a GPU can say about a
kernel change before a GPU times it.

    scripts/sass-census.py [--build build-gpu] [REF ...]

For each REF (a git commit, or `worktree` for the files as they are; default
`worktree`) the script copies cuda/ to a scratch directory, replaces the tests
that pick a key tile's path by their common outcome (`whole`: no mask touches
the tile; `fetch_rows`' bounds test: every row there), compiles
cuda/flash_attention.cu with the compile command of the CUDA build in --build
(a Ninja build configured with LOOM_CUDA), disassembles it, and prints per
kernel and architecture the longest loop's instructions: in all, mma.sync
(HMMA), per HMMA, a few classes (ldmatrix, the special-function unit, FMUL,
FSETP) and local-memory loads and stores (spills).

The loop is the unmasked, in-bounds path that long sequences spend their time
in, counted statically: a branch inside it (the forward's rescale of O, skipped
when no row's max moved) counts as taken, if the compiler placed its block
inside the loop's span. Forcing `whole` also folds away the per-element mask
tests an unforced loop carries, so a census never counts those. Issue slots are not time: the
figures rank changes, a GPU measures them.

cuobjdump and nvdisasm come from PyPI (nvidia-cuda-cuobjdump,
nvidia-cuda-nvdisasm) into ~/.cache/loom/sass-tools when not on PATH.
"""
import argparse
import collections
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.expanduser("~/.cache/loom/sass-tools")
FUNCTIONS = re.compile(r"Function : (\w+)")
KERNELS = re.compile(r"_ZN4loom5flash\w*?mma_(?:forward|backward)")


def tool(name):
    found = shutil.which(name)
    if found:
        return found
    pattern = os.path.join(TOOLS, "nvidia", "*", "bin", name)  # cu13/bin in the 13.x wheels
    if not glob.glob(pattern):
        print(f"sass-census: installing {name} from PyPI into {TOOLS}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", TOOLS,
                        "nvidia-cuda-cuobjdump", "nvidia-cuda-nvdisasm"], check=True)
    paths = sorted(glob.glob(pattern))
    if not paths:
        sys.exit(f"sass-census: no {name} under {TOOLS} after installing nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm")
    os.chmod(paths[-1], 0o755)
    return paths[-1]


def compile_command(build):
    obj = "CMakeFiles/loom.dir/cuda/flash_attention.cu.o"
    try:
        out = subprocess.run(["ninja", "-C", build, "-t", "commands", obj], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"sass-census: no compile command for {obj} in {build} (a Ninja build with LOOM_CUDA=ON): {e}")
    line = out.strip().splitlines()[-1]
    words = shlex.split(line)
    # Drop the dependency-file flags and the output; the caller adds its own.
    keep, skip = [], 0
    for w in words:
        if skip:
            skip -= 1
            continue
        if w in ("-MD",):
            continue
        if w in ("-MT", "-MF", "-o"):
            skip = 1
            continue
        keep.append(w)
    return keep


def force_common_paths(cuda_dir):
    for name in ("flash_forward_mma.cuh", "flash_backward_mma.cuh"):
        path = os.path.join(cuda_dir, name)
        text = open(path).read()
        text, n = re.subn(r"const bool whole = ([^;]*);", r"const bool whole = true; (void)(\1);", text)
        if n == 0:
            sys.exit(f"sass-census: no `const bool whole` in {name}: the script needs updating")
        text = text.replace("row0 + kRows > total", "false")
        open(path, "w").write(text)


def sources(ref, scratch):
    if ref == "worktree":
        shutil.copytree(os.path.join(ROOT, "cuda"), os.path.join(scratch, "cuda"))
    else:
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref, "cuda"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
    return os.path.join(scratch, "cuda")


def loops(sass):
    """(start, end, opcode counts) of each loop: a backward branch over more than 64 instructions."""
    ins = []
    for line in sass.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2).strip()))
    found = []
    for addr, text in ins:
        m = re.search(r"BRA (?:`\(\.L_x_\d+\)\s*)?0x([0-9a-f]+)", text)
        if m and int(m.group(1), 16) < addr - 64 * 16:
            start = int(m.group(1), 16)
            body = [t for a, t in ins if start <= a <= addr]
            ops = collections.Counter(re.sub(r"^@!?U?P\S+\s+", "", t).split()[0].split(".")[0] for t in body)
            found.append((start, addr, ops))
    return found


def census(ref, build, command, cuobjdump):
    with tempfile.TemporaryDirectory() as scratch:
        cuda_dir = sources(ref, scratch)
        force_common_paths(cuda_dir)
        obj = os.path.join(scratch, "flash.o")
        cmd = [w if not w.endswith("cuda/flash_attention.cu") else os.path.join(cuda_dir, "flash_attention.cu")
               for w in command]
        subprocess.run(cmd + ["-o", obj], check=True, cwd=build)
        env = dict(os.environ, PATH=os.path.dirname(tool("nvdisasm")) + os.pathsep + os.environ["PATH"])
        sass = subprocess.run([cuobjdump, "-sass", obj], check=True, capture_output=True, text=True, env=env).stdout
    # cuobjdump prints "code for sm_XX" before each architecture's functions.
    rows = []
    for arch, code in zip(*[iter(re.split(r"code for (sm_\w+)", sass)[1:])] * 2):
        rows += census_of(arch, code)
    return rows


def census_of(arch, sass):
    parts = FUNCTIONS.split(sass)
    rows = []
    for mangled, body in zip(parts[1::2], parts[2::2]):
        if not KERNELS.match(mangled):
            continue
        name = subprocess.run(["c++filt", mangled], capture_output=True, text=True).stdout.strip()
        name = re.sub(r"loom::flash::\w+::", "", name).replace("void ", "").replace("(Args)", "")
        name = re.sub(r"mma_forward::kernel<mma_forward::Shape<(.*)> >", r"mma_forward::kernel<\1>", name)
        found = loops(body)
        if not found:
            print(f"sass-census: no loop found in {name} ({arch})", file=sys.stderr)
            continue
        ops = max(found, key=lambda f: sum(f[2].values()))[2]
        rows.append((f"{name} {arch}", ops))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build-gpu"))
    parser.add_argument("refs", nargs="*", default=["worktree"])
    args = parser.parse_args()
    command = compile_command(args.build)
    cuobjdump = tool("cuobjdump")
    for ref in args.refs:
        print(f"# {ref}")
        print(f"{'kernel':44s} {'instr':>6s} {'HMMA':>5s} {'/HMMA':>6s} {'LDSM':>5s} {'MUFU':>5s} {'FMUL':>5s} "
              f"{'FSETP':>6s} {'LDL+STL':>8s}")
        for name, ops in census(ref, args.build, command, cuobjdump):
            total, hmma = sum(ops.values()), ops["HMMA"]
            print(f"{name:44s} {total:6d} {hmma:5d} {total / max(hmma, 1):6.2f} {ops['LDSM']:5d} {ops['MUFU']:5d} "
                  f"{ops['FMUL']:5d} {ops['FSETP']:6d} {ops['LDL'] + ops['STL']:8d}")


if __name__ == "__main__":
    main()
