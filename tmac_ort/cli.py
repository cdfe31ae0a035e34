"""The `tmac-ort` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmac-ort", description="T-MAC low-bit LUT matmul for ONNX Runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a LutGemm layer, run it and check it against the references")
    demo.add_argument("--threads", type=int, default=1)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"tmac-ort: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
