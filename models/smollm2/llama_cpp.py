"""llama.cpp beside onnxruntime-genai on the same shapes and weights.

llama.cpp is not part of this project: pass a llama.cpp source tree built outside it (for
example from the llama-cpp-python sdist: `pip download --no-deps --no-binary llama-cpp-python
llama-cpp-python==0.3.36`, then cmake in vendor/llama.cpp with -DGGML_NATIVE=ON -DLLAMA_CURL=OFF,
targets llama-bench llama-quantize).  Its own converter (convert_hf_to_gguf.py, run in the
recipe's `gguf` environment with the tree's gguf-py) turns the model's float Hugging Face folder
into an f16 GGUF, and its llama-quantize into the type compared; llama-bench times it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

from building import GGUF_NAME, RANDOM_1B, RANDOM_BITNET
from envs import ensure_env, log, run, stage_result


# What each model is compared with: llama-quantize's type for its matmuls (None: the GGUF the
# model came from), and the LutGemm folder that the target ratio is about.  The embedding /
# lm_head (tied) is Q4_0 on both sides' terms: LutGemm gives lm_head 4 bits.
GGUF_TYPE = {"smollm2": None, RANDOM_1B: "Q4_0", RANDOM_BITNET: "TQ2_0"}


def llama_tool(tree: Path, name: str) -> Path:
    tool = tree / "build" / "bin" / name
    if not tool.is_file():
        raise SystemExit(f"{tool} is missing: build the {name} target in {tree} (cmake --build build --target {name})")
    return tool


def model_gguf(work: Path, folder: Path, model: str, tree: Path) -> Path:
    """The GGUF llama.cpp runs for `model`: SmolLM2's own Q4_1; for the random models, their
    Hugging Face folder converted (f16) and quantised, cached in the model folder."""
    qtype = GGUF_TYPE[model]
    if qtype is None:
        return work / GGUF_NAME
    target = folder / f"llama.cpp-{qtype}.gguf"
    if target.exists():
        return target
    converter = tree / "convert_hf_to_gguf.py"
    if not converter.is_file():
        raise SystemExit(f"{converter} is missing: --llama-cpp names a llama.cpp source tree")
    quantize = llama_tool(tree, "llama-quantize")  # (named before the conversion, if missing)
    f16 = folder / ".llama.cpp-f16.gguf"
    log(f"{folder / 'hf'} -> {f16} (llama.cpp's convert_hf_to_gguf.py)")
    env = {**os.environ, "PYTHONPATH": str(tree / "gguf-py"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    run([ensure_env("gguf"), converter, folder / "hf", "--outtype", "f16", "--outfile", f16],
        env=env, stdout=subprocess.DEVNULL)
    log(f"{f16} -> {target} (llama-quantize {qtype})")
    part = target.with_suffix(".part")
    run([quantize, "--token-embedding-type", "q4_0", "--output-tensor-type", "q4_0",
         f16, part, qtype], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    f16.unlink()
    part.rename(target)
    return target


def llama_bench(bench: Path, gguf: Path, threads: int) -> dict:
    """llama-bench's prompt (pp128) and generation (tg64) tok/s, one repetition."""
    done = subprocess.run([bench, "-m", gguf, "-p", "128", "-n", "64", "-t", str(threads),
                           "-r", "1", "-o", "json"], check=True, capture_output=True, text=True)
    result = {}
    for test in json.loads(done.stdout):
        result["prefill_tok_s" if test["n_prompt"] else "decode_tok_s"] = test["avg_ts"]
    return result


def compare(work: Path, folder: Path, model: str, tree: Path, threads: int, rounds: int) -> str:
    """Alternates onnxruntime-genai (every speed model of the folder) and llama-bench `rounds`
    times, so drift on a shared machine hits both; a table of medians and ratios."""
    bench = llama_tool(tree, "llama-bench")
    gguf = model_gguf(work, folder, model, tree)
    runs: dict[str, list[dict]] = {}
    for r in range(rounds):
        log(f"round {r + 1} of {rounds}")
        for name, result in stage_result("genai", "bench", folder, "--threads", str(threads), "--rounds", "1").items():
            runs.setdefault(name, []).append(result)
        runs.setdefault("llama.cpp", []).append(llama_bench(bench, gguf, threads))
    medians = {name: {key: statistics.median(run[key] for run in results) for key in results[0]}
               for name, results in runs.items()}
    base = medians["llama.cpp"]
    label = f"llama.cpp {GGUF_TYPE[model] or 'Q4_1'} ({gguf.name})"
    rows = [f"{model}, {threads} thread(s), prompt 128 tokens, 64 decoded, medians of {rounds} alternating rounds "
            "(onnxruntime-genai; llama-bench pp128 / tg64)", "",
            "| model | prefill tok/s | decode tok/s | prefill vs llama.cpp | decode vs llama.cpp |", "|---|---|---|---|---|"]
    for name, m in medians.items():
        rows.append(f"| {label if name == 'llama.cpp' else name} | {m['prefill_tok_s']:.1f} | {m['decode_tok_s']:.2f} | "
                    f"{m['prefill_tok_s'] / base['prefill_tok_s']:.2f} | {m['decode_tok_s'] / base['decode_tok_s']:.2f} |")
    return "\n".join(rows)
