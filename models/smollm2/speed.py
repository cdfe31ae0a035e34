"""Decode and prefill speed through onnxruntime-genai, and where a decode step's time goes."""

from __future__ import annotations

import json
import time
from pathlib import Path


SPEED_MODELS = ("genai-int4", "genai-lut4", "genai-lut2", "genai-ternary")  # what bench and profile compare (those built)


def timed_generation(model, tokenizer, prompt_tokens: int, new_tokens: int) -> tuple[float, float]:
    """Seconds for the prefill of `prompt_tokens` and per decoded token (greedy)."""
    import onnxruntime_genai as og

    ids = list(range(1000, 1000 + prompt_tokens))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=prompt_tokens + new_tokens, min_length=prompt_tokens + new_tokens,
                              do_sample=False)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(ids)
    generator.generate_next_token()
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    steps = 0
    while not generator.is_done():
        generator.generate_next_token()
        steps += 1
    return prefill, (time.perf_counter() - start) / max(steps, 1)


def stage_bench(work: Path, threads: int, rounds: int, out: Path, only: list[str] | None = None) -> None:
    import statistics

    import onnxruntime_genai as og

    names = [n for n in (only or SPEED_MODELS) if (work / n).exists()]
    models = {}
    for name in names:
        config = og.Config(str(work / name))
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
        model = og.Model(config)
        models[name] = (model, og.Tokenizer(model))
        timed_generation(*models[name], 16, 8)  # warm-up
    prefill = {n: [] for n in names}
    decode = {n: [] for n in names}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits every model alike
        for name in names:
            p, d = timed_generation(*models[name], 128, 64)
            prefill[name].append(128 / p)
            decode[name].append(1 / d)
    result = {n: {"prefill_tok_s": statistics.median(prefill[n]), "decode_tok_s": statistics.median(decode[n])}
              for n in names}
    out.write_text(json.dumps(result, indent=1))


def stage_profile(work: Path, threads: int, out: Path) -> None:
    """Share of a decode step (one token, empty cache) spent in each op type, from ORT's profiler."""
    import collections

    import onnxruntime as ort

    import tmac_ort
    from tmac_ort.verify import genai_head_size, make_inputs

    steps = 20
    result = {}
    for name in (n for n in SPEED_MODELS if (work / n).exists()):
        options = tmac_ort.session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(out.parent / name)
        session = ort.InferenceSession(str(work / name / "model.onnx"), options)
        feed = make_inputs(session, seq_len=1, head_size=genai_head_size(work / name / "model.onnx"))
        for _ in range(steps):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text())
        per_op = collections.Counter()
        for event in trace:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                per_op[event["args"]["op_name"]] += event["dur"]
        total = sum(per_op.values())
        result[name] = {op: dur / total for op, dur in per_op.most_common(4)}
        result[name]["step_ms"] = total / steps / 1e3  # profiler durations are in microseconds
    out.write_text(json.dumps(result, indent=1))


def bench_table(result: dict, threads: int, model: str) -> str:
    base = result["genai-int4"]
    title = {"smollm2": "SmolLM2-135M-Instruct", "llama-1b-random": "Llama 1.1B shape, random weights",
             "bitnet-2b-random": "BitNet b1.58 2B shapes, random ternary weights"}[model]
    rows = [f"{title}, onnxruntime-genai, {threads} thread(s), prompt 128 tokens, 64 decoded, medians",
            "", "| model | prefill tok/s | decode tok/s | decode vs int4 MatMulNBits |", "|---|---|---|---|"]
    for name, r in result.items():
        rows.append(f"| {name} | {r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} | "
                    f"{r['decode_tok_s'] / base['decode_tok_s']:.2f} |")
    return "\n".join(rows)
