"""The bench's outputs: a CSV, a markdown table and (with matplotlib) a plot."""

from __future__ import annotations

import csv
from pathlib import Path


TIMING_TEXT = {
    "warm": "warm: repeated calls, weights partly or wholly in the caches",
    "cold": "cold: caches emptied before every timed call, weights (and code) come from DRAM",
    "stream": "stream: each call on the next of several copies of the weights (four times the last-level "
              "cache in all), so weights come from DRAM while code stays cached, as in decoding",
}


def write_outputs(rows, out_dir: Path, bandwidth: dict, timing: str = "warm", zero_points: bool = False):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    measured = ", ".join(f"{gbs:.1f} GB/s on {t} thread(s)" for t, gbs in sorted(bandwidth.items()))
    mode = TIMING_TEXT[timing]
    weights = "asymmetric (a zero point per group)" if zero_points else "symmetric"
    lines = [f"Measured read bandwidth: {measured}.  Timing: {mode}.  Weights: {weights}.", "",
             "| K×N | M | bits | threads | LutGemm ms (kernel) | best ORT quantised ms (kernel) | fp32 MatMul ms | LutGemm / best ORT "
             "| LutGemm weight GB/s (share of read bandwidth) | ratio at the read bandwidth |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r["K"], r["N"], r["M"], r["bits"], r["threads"])  # noqa: E731
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    for (K, N, M, bits, threads), rs in groups.items():
        lut = rs[0]  # the first kernel named (or the default)
        ort = min((r for r in rs if r["kernel"].startswith("MatMulNBits")), key=lambda r: r["ms"])
        fp32 = next(r for r in rs if r["kernel"] == "MatMul fp32")
        lines.append(f"| {K}×{N} | {M} | {bits} | {threads} | {lut['ms']:.3f} ({lut['kernel'].split(maxsplit=2)[-1]}) | {ort['ms']:.3f} ({ort['kernel']}) | "
                     f"{fp32['ms']:.3f} | **{lut['ratio_lut_vs_best_ort']:.2f}** | "
                     f"{lut['weight_gbs']:.1f} ({lut['bw_share']:.0%}) | {lut['ratio_at_read_bandwidth']:.2f} |")
    (out_dir / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'tmac-ort[bench]')")
        return
    fig, ax = plt.subplots(figsize=(10, 4))
    labels = [f"{K}x{N}\nM{M} {b}b t{t}" for (K, N, M, b, t) in groups]
    ax.bar(range(len(groups)), [rs[0]["ratio_lut_vs_best_ort"] for rs in groups.values()])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(groups)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("LutGemm time / best ORT quantised time")
    fig.tight_layout()
    fig.savefig(out_dir / "bench.png", dpi=120)
