"""The `tmac-ort` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parse_bits_for(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        regex, sep, bits = item.rpartition("=")
        if not sep or not bits.isdigit():
            raise ValueError(f"--bits-for takes REGEX=BITS, got {item!r}")
        out[regex] = int(bits)
    return out


# where float weights are quantised here; None = not given (the defaults are below)
QUANTIZATION_FLAGS = {"bits": "--bits", "group_size": "--group-size", "method": "--method"}


def _options(args):
    from .quantize import DEFAULT_METHOD
    from .rewriter import RewriteOptions

    given = lambda value, default: default if value is None else value  # noqa: E731
    return RewriteOptions(bits=given(args.bits, 4), group_size=given(args.group_size, 128), symmetric=args.symmetric,
                          method=given(args.method, DEFAULT_METHOD), include=args.include, exclude=args.exclude,
                          bits_for=_parse_bits_for(args.bits_for), ternary_layout=args.ternary_layout)


class ProgressBar:
    """A tqdm bar per model on a terminal (stderr), with the total and an ETA; silent when
    stderr is not a terminal (tqdm's disable=None)."""

    def __init__(self):
        self.bar = None

    def start(self, model_name: str, candidates: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=candidates, desc=f"rewriting {model_name}", unit="matmul", file=sys.stderr,
                        disable=None, leave=False, dynamic_ncols=True)

    def advance(self, node_name: str) -> None:
        self.bar.update(1)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_report(name: str, report, verbose: bool = False) -> None:
    print(f"{name}:")
    for pattern_name, count in sorted(report.converted.items()):
        print(f"  converted  {count:5d}  {pattern_name}")
    by_reason: dict[tuple[str, str], list[str]] = {}
    for node, (pattern_name, reason) in sorted(report.skipped.items()):
        by_reason.setdefault((pattern_name, reason), []).append(node)
    for (pattern_name, reason), nodes in sorted(by_reason.items()):
        # one row per reason; the node names only when few (an LLM has dozens of activation matmuls)
        shown = nodes if verbose or len(nodes) <= 3 else nodes[:2] + [f"... ({len(nodes) - 2} more, --verbose lists them)"]
        print(f"  skipped    {len(nodes):5d}  {pattern_name}: {reason}: {', '.join(shown)}")
    if not report.converted:
        print("  no node matched a supported pattern")
    ops = sorted(set(report.ops_before) | set(report.ops_after))
    changed = [op for op in ops if report.ops_before[op] != report.ops_after[op]]
    for op in changed:
        print(f"  op {op:28s} {report.ops_before[op]:5d} -> {report.ops_after[op]:5d}")
    for node, initializer, size in report.shared_weights:
        print(f"  note: {node}'s source weight {initializer} ({size / 1e6:.1f} MB) is also read by other nodes (a tied "
              f"embedding, for example), so the file keeps it beside the LutGemm copy; --exclude '{node}' keeps one copy")
    if report.bits_per_weight is not None:
        print(f"  LutGemm weights: {report.lut_gemm_weights / 1e6:.1f} M at {report.bits_per_weight:.2f} bits per weight "
              "(planes, scales, zero points, offsets)")


def _warn_quantized_nodes_left(reports) -> None:
    """A quantised MatMul that stays runs on ORT's kernels: say so once, below the reasons."""
    from .rewriter import SOURCE_QUANTIZED_PATTERNS

    left = sum(pattern in SOURCE_QUANTIZED_PATTERNS for r in reports.values() for pattern, _ in r.skipped.values())
    if left:
        print(f"warning: {left} quantised MatMul node(s) stay as they are (the reasons are listed above)",
              file=sys.stderr)


def _warn_unused_quantization_flags(args, reports) -> None:
    """--bits / --group-size / --method quantise float weights; a quantised source keeps its own."""
    given = [flag for key, flag in QUANTIZATION_FLAGS.items() if getattr(args, key) is not None]
    kept = sum(r.kept_source_quantization for r in reports.values())
    if given and kept:
        print(f"note: {', '.join(given)} apply to float weights only; {kept} already quantised node(s) kept their "
              "own quantisation (converted losslessly)", file=sys.stderr)


def _rewrite(args) -> int:
    from . import convert

    src, dst = Path(args.input), Path(args.output)
    options = _options(args)
    for stale in convert.remove_stale_temporaries(dst.parent if not dst.is_dir() or src.is_dir() else dst):
        print(f"removed {stale}: left by an interrupted rewrite", file=sys.stderr)
    progress = ProgressBar()
    try:
        if src.is_dir():
            reports = convert.rewrite_folder(src, dst, options, args.dry_run, progress, overwrite=args.force)
        else:
            if dst.is_dir():
                dst = dst / src.name
            reports = {src.name: convert.rewrite_file(src, dst, options, args.dry_run, progress, overwrite=args.force)}
    except convert.NothingConverted as e:  # say why every candidate was skipped, then fail
        for name, report in e.reports.items():
            _print_report(name, report, args.verbose)
        raise
    for name, report in reports.items():
        _print_report(name, report, args.verbose)
    _warn_quantized_nodes_left(reports)
    _warn_unused_quantization_flags(args, reports)
    if args.dry_run:
        print("dry run: nothing written")
    else:
        before = sum(convert.model_size(src / n) if src.is_dir() else convert.model_size(src) for n in reports)
        after = sum(convert.model_size(dst / n) if dst.is_dir() else convert.model_size(dst) for n in reports)
        print(f"size: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB, written to {dst}")
    return 0


def _inspect(args) -> int:
    from .inspection import describe

    print(describe(Path(args.model)))
    return 0


def _verify(args) -> int:
    from .verify import verify

    return verify(Path(args.original), Path(args.rewritten), threads=args.threads, text=args.text, tokens=args.tokens,
                  context=args.context, tolerance=args.tolerance)


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .quantize import DEFAULT_METHOD, METHODS

    parser = argparse.ArgumentParser(prog="tmac-ort", description="T-MAC low-bit LUT matmul for ONNX Runtime")
    parser.add_argument("--version", action="version", version=f"tmac-ort {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rw = sub.add_parser("rewrite", help="replace quantised/float MatMuls by com.tmac.LutGemm")
    rw.add_argument("input", help="model.onnx, or a folder (onnxruntime-genai or Optimum export)")
    rw.add_argument("-o", "--output", required=True, help="output model file, or a folder for a folder input (an existing one needs --force)")
    rw.add_argument("--bits", type=int, help="bits for float weights (1-4, default 4); quantised sources keep theirs")
    rw.add_argument("--group-size", type=int, help="group size for float weights (default 128; -1: whole rows)")
    rw.add_argument("--method", choices=METHODS,
                    help=f"how float weights are quantised: mse = least-squares scale and offset per group "
                         f"(the better one at 4 bits; docs/quality.md has where each wins), rtn = round to "
                         f"nearest (default {DEFAULT_METHOD})")
    sym = rw.add_mutually_exclusive_group()
    sym.add_argument("--symmetric", dest="symmetric", action="store_true", default=True,
                     help="--method rtn: zero point 2^(bits-1), scale from the largest magnitude (default)")
    sym.add_argument("--asymmetric", dest="symmetric", action="store_false",
                     help="--method rtn: min/max range with an integer zero point per group")
    rw.add_argument("--include", action="append", default=[], metavar="REGEX", help="only nodes whose name matches")
    rw.add_argument("--exclude", action="append", default=[], metavar="REGEX", help="leave matching nodes (e.g. lm_head)")
    rw.add_argument("--verbose", action="store_true", help="list every skipped node")
    rw.add_argument("--bits-for", action="append", default=[], metavar="REGEX=BITS", help="mixed precision by node name")
    rw.add_argument("--ternary-layout", type=int, choices=(2, 3), default=2,
                    help="ternary weights as 2: two bit planes (default, fast on every CPU) or 3: base-3 triples, "
                         "1.67 bits a weight, for AVX-512 VBMI and ARM CPUs (AVX2-only ones run it with the "
                         "portable kernel)")
    rw.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    rw.add_argument("--force", action="store_true", help="replace an existing output file or folder")
    rw.set_defaults(func=_rewrite)

    ins = sub.add_parser("inspect", help="what is quantised how in a model")
    ins.add_argument("model", help="a model file, or a folder of them (onnxruntime-genai, Optimum)")
    ins.set_defaults(func=_inspect)

    ver = sub.add_parser("verify", help="compare original and rewritten models: perplexity, KL divergence and "
                                        "top-1 agreement for language models, output errors otherwise")
    ver.add_argument("original", help="the model before rewriting (a file, or a genai/Optimum folder)")
    ver.add_argument("rewritten", help="the rewritten model (a file, or a folder)")
    ver.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ver.add_argument("--text", type=Path, help="language models: a text file to evaluate on "
                                               "(default: Python's pydoc_data.topics)")
    ver.add_argument("--tokens", type=int, default=1024, help="language models: tokens of the text (default 1024)")
    ver.add_argument("--context", type=int, default=256, help="language models: tokens per window (default 256)")
    ver.add_argument("--tolerance", type=float, help="exit 1 when the mean KL divergence (language models, "
                                                     "nats/token) or the largest output NMSE exceeds it")
    ver.set_defaults(func=_verify)

    demo = sub.add_parser("demo", help="a LutGemm layer at 1-4 bits against the references")
    demo.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    demo.set_defaults(func=_demo)

    from . import bench

    bench_parser = sub.add_parser("bench", help="kernel benchmark: LutGemm vs MatMulNBits vs MatMul",
                                  description=bench.__doc__)
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=bench.run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("tmac-ort: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"tmac-ort: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
