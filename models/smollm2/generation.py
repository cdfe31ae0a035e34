"""Greedy answers to the recipe's prompts, through onnxruntime-genai or Optimum."""

from __future__ import annotations

import json
from pathlib import Path

from envs import ENVS, stage_result


PROMPTS = ["What is the capital of France?", "Name three colors of the rainbow."]

# One intra-op thread, so that the answers are the same from run to run and machine to machine.
# Until the fifteenth session a one-row LutGemm call on several threads summed its K-chunks in
# pieces whose count the op learnt from timing, and near ties in the logits fell either way
# (Zen 3: a 2-thread session's output matched the 1-thread one in 7 of 12 sessions).  LutGemm's
# sums no longer depend on the thread count (tests/test_lut_gemm_op.py); the recipe stays on
# one thread so that its reference answers do not rest on ORT's other ops doing the same.
GENERATION_THREADS = 1


def chat(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def generate_genai(folder: Path, prompts: list[str], new_tokens: int) -> list[dict]:
    import onnxruntime_genai as og

    config = og.Config(str(folder))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": GENERATION_THREADS}}}}))
    model = og.Model(config)
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
    model = ORTModelForCausalLM.from_pretrained(folder, session_options=tmac_ort.session_options(GENERATION_THREADS))
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


def generate_all(work: Path, new_tokens: int) -> dict:
    results = {}
    for side in ENVS:
        results.update(stage_result(side, "generate", work, "--side", side, "--new-tokens", str(new_tokens)))
    return results
