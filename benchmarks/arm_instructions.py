"""Instructions executed per LutGemm GEMV by the ARM kernels, under qemu-user (an
instruction count under emulation, not a time), and by the x86 kernels under callgrind.

    python benchmarks/arm_instructions.py [--shape 1024x256] [--bits 1 2 3 4] [--layout 1|2]
    python benchmarks/arm_instructions.py --ternary [--shape 4096x1024] [--m 1 2 8]

Builds custom_ops/tests/kernel_check for aarch64 and natively (kernel_check.sh), runs its
`gemv KERNEL K N BITS LAYOUT [GROUP ternary M]` mode (M=1, group 128, symmetric weights; with
--ternary: ternary weights, one group per row, as two planes (layout 2) and as triples
(layout 3), on the ARM kernels, per row of M) and counts the instructions
executed inside LutGemm::Run and the kernels it calls (tables, tiles, epilogue): under
qemu-aarch64 -cpu max from the translation-block trace (`-d in_asm,exec,nochain`, filtered to
those functions' addresses), on x86 with callgrind's --toggle-collect.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "custom_ops" / "tests" / "kernel_check.sh"
KERNEL_FUNCTIONS = re.compile(r"LutGemm::Run|GemmTiles|BuildTables|QuantizeQuads|ComputeBlockStats|tmac::neon::|"
                              r"FinishBlockStats|Triple")  # (not libm: the constructor calls it per scale)


def build(target: str, out: Path) -> Path:
    subprocess.run(["bash", str(SCRIPT), target], env={**os.environ, "KERNEL_CHECK_BUILD": str(out)},
                   check=True, capture_output=True)
    return out / ("kernel_check_aarch64" if target == "aarch64" else "kernel_check")


def kernel_ranges(binary: Path) -> list[tuple[int, int]]:
    nm = subprocess.run(["aarch64-linux-gnu-nm", "-C", "-S", "--defined-only", str(binary)],
                        capture_output=True, text=True, check=True).stdout
    ranges = []
    for line in nm.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "tTwW" and KERNEL_FUNCTIONS.search(parts[3]):
            start = int(parts[0], 16)
            ranges.append((start, start + int(parts[1], 16)))
    return ranges


def qemu_count(binary: Path, kernel: str, K: int, N: int, bits: int, layout: int, extra: tuple = ()) -> int:
    ranges = kernel_ranges(binary)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "trace"
        dfilter = ",".join(f"{a:#x}..{b - 1:#x}" for a, b in ranges)
        subprocess.run(["qemu-aarch64", "-cpu", "max", "-d", "in_asm,exec,nochain", "-dfilter", dfilter, "-D", str(log),
                        str(binary), "gemv", kernel, str(K), str(N), str(bits), str(layout), *extra], check=True,
                       capture_output=True)
        size: dict[int, int] = {}
        executed: collections.Counter = collections.Counter()
        block = None
        with open(log) as f:
            for line in f:
                if line.startswith("IN:"):
                    block = None
                elif line.startswith("0x") and ":" in line[:20]:
                    address = int(line.split(":")[0], 16)
                    if block is None:
                        block = address
                        size[block] = 0
                    size[block] += 1
                elif line.startswith("Trace"):
                    executed[int(line.split("[")[1].split("/")[1], 16)] += 1
        return sum(size.get(pc, 0) * n for pc, n in executed.items())


def callgrind_count(binary: Path, kernel: str, K: int, N: int, bits: int, layout: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["valgrind", "--tool=callgrind", "--toggle-collect=tmac::LutGemm::Run(*",
                               f"--callgrind-out-file={tmp}/out", str(binary), "gemv", kernel, str(K), str(N),
                               str(bits), str(layout)], capture_output=True, text=True, check=True)
        return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="4096x1024")
    parser.add_argument("--bits", nargs="*", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--layout", type=int, choices=(1, 2), default=2,
                        help="packed layout version of the weights (2: K-chunked, the packer's default)")
    parser.add_argument("--m", nargs="*", type=int, default=[1], help="activation rows (--ternary)")
    parser.add_argument("--ternary", action="store_true",
                        help="ternary weights (group = K): two planes (layout 2) against triples (layout 3)")
    args = parser.parse_args()
    K, N = map(int, args.shape.split("x"))
    if args.ternary:
        return ternary(K, N, args.m)
    with tempfile.TemporaryDirectory() as tmp:
        arm, native = build("aarch64", Path(tmp) / "arm"), build("native", Path(tmp) / "native")
        print(f"instructions per GEMV, K={K} N={N} group 128 M=1, layout {args.layout} (tables, tiles and epilogue)")
        print("| kernel | how counted | " + " | ".join(f"{b}-bit" for b in args.bits) + " |")
        print("|---|---|" + "---|" * len(args.bits))
        rows = [("neon-dotprod", "qemu -cpu max", arm, qemu_count), ("neon", "qemu -cpu max", arm, qemu_count),
                ("scalar", "qemu -cpu max (aarch64 build)", arm, qemu_count),
                ("avx2", "callgrind (x86-64)", native, callgrind_count),
                ("scalar", "callgrind (x86-64 build)", native, callgrind_count)]
        for kernel, how, binary, count in rows:
            cells = [count(binary, kernel, K, N, b, args.layout) for b in args.bits]
            print(f"| {kernel} | {how} | " + " | ".join(f"{c / 1e3:,.0f} k" for c in cells) + " |", flush=True)
    return 0


def ternary(K: int, N: int, rows: list[int]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        arm = build("aarch64", Path(tmp) / "arm")
        print(f"instructions per row of a ternary GEMM, K={K} N={N} one group per row (tables, tiles and epilogue)")
        print("| kernel | how counted | M | planes (layout 2) | triples (layout 3) | triples / planes |")
        print("|---|---|---|---|---|---|")
        for kernel in ("neon-dotprod", "neon", "scalar"):
            for m in rows:
                planes, triples = (qemu_count(arm, kernel, K, N, 2, layout, (str(K), "ternary", str(m))) / m
                                   for layout in (2, 3))
                print(f"| {kernel} | qemu -cpu max | {m} | {planes / 1e3:,.0f} k | {triples / 1e3:,.0f} k | "
                      f"{triples / planes:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
