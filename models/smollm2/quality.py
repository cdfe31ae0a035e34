"""Quality per quantisation (docs/quality.md): perplexity, KL divergence against genai-fp32,
decode speed and the answers, for rtn, mse and ORT's HQQ at 1-4 bits."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from building import HF_STEP, fetch_gguf, run_plan, tmac_rewrite
from envs import in_env, log, stage_result


# every matmul (lm_head included) at `bits`, from genai-fp32; ORT's genai-int4 is the baseline
QUALITY_CONFIGS = [*((bits, method, group) for group in (32, 128) for bits in (4, 3, 2) for method in ("rtn", "mse")),
                   (1, "mse", 32)]
# ORT's own calibration-free low-bit quantiser (HQQ, MatMulNBits with float zero points), run
# by ORT and, converted losslessly, by LutGemm: (bits, group)
ORT_HQQ_CONFIGS = [(4, 32), (4, 128), (2, 32), (2, 128)]
QUALITY_PLAN = [HF_STEP, ("genai-int4", "genai", "genai-int4"), ("genai-fp32", "genai", "genai-fp32")]
RAINBOW = ("red", "orange", "yellow", "green", "blue", "indigo", "violet")


def quality_name(bits: int, method: str, group: int) -> str:
    return f"genai-q{bits}-{method}-g{group}"


def answers_correctly(prompt: str, text: str) -> bool:
    """The recipe's two prompts: Paris; three colours of the rainbow."""
    text = text.lower()
    if "france" in prompt.lower():
        return "paris" in text
    return sum(colour in text for colour in RAINBOW) >= 3


def ort_hqq_name(bits: int, group: int, lut: bool) -> str:
    return f"genai-{'q' if lut else ''}{bits}-ort-hqq-g{group}"


def ort_hqq_quantize(work: Path, bits: int, group: int) -> None:
    """genai-fp32 through onnxruntime.quantization's HQQ (needs torch: the genai environment)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    source = work / "genai-fp32"
    quantizer = MatMulNBitsQuantizer(onnx.load(source / "model.onnx"),
                                     algo_config=HQQWeightOnlyQuantConfig(block_size=group, bits=bits))
    quantizer.process()
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".genai-"))
    for item in source.iterdir():
        if not item.name.startswith("model.onnx"):
            shutil.copy2(item, tmp / item.name)
    quantizer.model.save_model_to_file(str(tmp / "model.onnx"), use_external_data_format=True)
    tmp.rename(work / ort_hqq_name(bits, group, lut=False))


def stage_quality_build(work: Path) -> None:
    for bits, method, group in QUALITY_CONFIGS:
        if not (work / quality_name(bits, method, group)).exists():
            tmac_rewrite(work / "genai-fp32", work / quality_name(bits, method, group), "--bits", str(bits),
                         "--group-size", str(group), "--method", method)
    for bits, group in ORT_HQQ_CONFIGS:
        if not (work / ort_hqq_name(bits, group, lut=False)).exists():
            log(f"ORT HQQ {bits} bits, block {group}")
            ort_hqq_quantize(work, bits, group)
        if not (work / ort_hqq_name(bits, group, lut=True)).exists():
            tmac_rewrite(work / ort_hqq_name(bits, group, lut=False), work / ort_hqq_name(bits, group, lut=True))


def matmul_bits_per_weight(path: Path) -> float:
    """Stored bits per weight over the model's matmul layers (32 for float ones)."""
    import onnx_ir as ir

    from tmac_ort.inspection import layer_row

    weights = bits = 0.0
    for node in ir.traversal.RecursiveGraphIterator(ir.load(str(path)).graph):
        if (row := layer_row(node)) is not None:
            weights += row[4] * row[5]
            bits += row[4] * row[5] * (32.0 if row[6] is None else row[6])
    return bits / weights


def stage_quality(work: Path, out: Path) -> None:
    """verify's statistics of each model against genai-fp32 over the default text."""
    from tmac_ort.convert import model_size
    from tmac_ort.verify import default_text, genai_head_size, next_token_statistics, open_session, text_windows

    reference = work / "genai-fp32" / "model.onnx"
    windows = text_windows(default_text(), work / "genai-fp32" / "tokenizer.json", 1024, 256)
    s_ref = open_session(reference, 1)
    result = {}
    for name in quality_models():
        path = work / name / "model.onnx"
        stats = next_token_statistics(s_ref, open_session(path, 1), windows, genai_head_size(reference))
        result[name] = {**stats, "mb": model_size(path) / 1e6, "matmul_bits": matmul_bits_per_weight(path)}
        log(f"{name}: perplexity {stats['perplexity_rewritten']:.3f}, KL {stats['kl']:.4f}")
    out.write_text(json.dumps(result, indent=1))


def quality_models() -> list[str]:
    hqq = [ort_hqq_name(bits, group, lut) for bits, group in ORT_HQQ_CONFIGS for lut in (False, True)]
    return ["genai-fp32", "genai-int4", *(quality_name(*c) for c in QUALITY_CONFIGS), *hqq]


def quality_row_label(name: str) -> tuple:
    """(bits, method, group) of a quality model, for the table."""
    configs = {quality_name(*c): c for c in QUALITY_CONFIGS}
    configs.update({ort_hqq_name(b, g, lut): (b, "ORT HQQ" + (" -> LutGemm" if lut else ", ORT"), g)
                    for b, g in ORT_HQQ_CONFIGS for lut in (False, True)})
    configs["genai-fp32"] = ("fp32", "-", "-")
    configs["genai-int4"] = (4, "ORT builder int4 (RTN), ORT", 32)
    return configs[name]


def quality(work: Path, threads: int) -> None:
    fetch_gguf(work)
    run_plan(work, QUALITY_PLAN)
    in_env("genai", "quality-build", work)
    in_env("genai", "refresh-libraries", work)
    names = quality_models()
    stats = stage_result("genai", "quality", work)
    speed = stage_result("genai", "bench", work, "--threads", str(threads), "--rounds", "3", "--only", *names)
    answers = stage_result("genai", "generate", work, "--side", "genai", "--new-tokens", "24", "--only", *names)
    print(f"SmolLM2-135M-Instruct; statistics against genai-fp32 over pydoc_data.topics (1020 predicted tokens, "
          f"windows of 256); decode: onnxruntime-genai, {threads} thread(s), median of 3\n")
    print("| model | bits | method | group | bits/weight | MB | perplexity | KL (nats/token) | top-1 | decode tok/s "
          "| answers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        bits, method, group = quality_row_label(name)
        right = sum(answers_correctly(a["prompt"], a["text"]) for a in answers[name])
        r = stats[name]
        print(f"| {name} | {bits} | {method} | {group} | {r['matmul_bits']:.2f} | {r['mb']:.1f} | "
              f"{r['perplexity_rewritten']:.2f} | "
              f"{r['kl']:.4f} | {r['top1_agreement']:.1%} | {speed[name]['decode_tok_s']:.0f} | {right}/2 |")
    print()
    for name in names:
        print(f"{name}: " + " | ".join(repr(a["text"].strip()[:80]) for a in answers[name]))
