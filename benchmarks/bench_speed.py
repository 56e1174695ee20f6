#!/usr/bin/env python
"""SciTune vs transformers' own LlavaForConditionalGeneration: same backbones, same weights, same data, one process.

    python benchmarks/bench_speed.py --output-dir OUT [--quick] [--sizes tiny mid] [--repeats 5] [--dtypes float32 bfloat16]

For each size and dtype, A/B runs alternate (SciTune, then LLaVA, repeated) and every figure is reported as the ratio
SciTune / LLaVA with min / median / max over the repeats (each figure from the fastest of a few steps or calls): stage-1 train step samples/s as the Trainer runs a step
(read the rows, collate, forward/backward/update; SciTune from its frozen-tower feature cache, which also spares the
figure decoding and preprocessing, and its language model compiled as `compile: true` trains it; LLaVA from the PNG
figures, eager as TRL runs it by default), the same with LLaVA's language model compiled too
(`stage1_train_both_compiled`: what is left when both use that lever), the same step from an already collated batch
(`stage1_model_step`: the model alone, both eager), stage-2 train step samples/s (projector + LLM trainable) as a multi-epoch
stage 2 runs it (`stage2_train`: the tower is frozen in stage 2 too, so SciTune trains from the feature cache, as
`feature_cache: true` does; it pays off from the second epoch, the paper's stage 2 runs 12; its language model compiled
as `compile: true` in configs/stage2.yaml trains it) and from the same collated
pixel batch for both models (`stage2_model_step`: both run the tower, both eager),
greedy generation tokens/s at batch 1 and 8 (SciTune as its long evaluations decode: a static KV cache and a compiled
language model, `evaluation.generation.compile_for_decoding`; LLaVA as `generate` runs by default; the same tokens,
checked: `generate_same_tokens`), and peak memory of a stage-1 step (resident-set growth, each model in a
fresh process; lower is better, so that ratio should be <= 1). MFU = 6 * (LLM + projector params) * LLM tokens/s over the fp32/bf16 matmul
FLOP/s this script measures on the same machine. Writes OUT/speed.json and OUT/speed.png and prints a table.

Both models run the same attention kernel: by default the one SciTune training picks on this device
(`training.precision.attention_implementation`: eager on a CPU); `--attn-implementation sdpa` compares on PyTorch
SDPA instead. In bf16 runs SciTune's stage-1 and stage-2 steps keep the frozen weights in bf16 as its trainer does
(`speed.frozen_bf16`); LLaVA trains as TRL runs it, fp32 weights under autocast.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from modeling_scitune.results_file import machine_description, machine_line, write_results_section  # noqa: E402

SIZES = {
    "micro": {"image_size": 32, "patch_size": 8, "vision_hidden": 32, "vision_layers": 2, "text_hidden": 64, "text_layers": 2},
    "tiny": {"image_size": 64, "patch_size": 8, "vision_hidden": 128, "vision_layers": 4, "text_hidden": 192, "text_layers": 4},
    "mid": {"image_size": 64, "patch_size": 8, "vision_hidden": 384, "vision_layers": 12, "text_hidden": 512, "text_layers": 8},
}
BATCH = 8
NEW_TOKENS = 24
SQA_PROBLEMS, SQA_NEW_TOKENS = 16, 32  # scienceqa_eval: embedded problems per timing, first-pass budget of both


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Resident-set growth over a block, sampled every 2 ms (CPU has no allocator counters like CUDA's)."""

    def __enter__(self):
        gc.collect()
        self.base = self.peak = rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.growth = self.peak - self.base


def matmul_flops(dtype, sizes=(1024, 2048, 4096), rounds=3) -> float:
    """The best square-matmul FLOP/s over a few sizes and rounds: the MFU denominator, measured, not looked up."""
    import torch

    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        repeats = max(1, 2**33 // (2 * n**3))
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(repeats):
                torch.mm(a, b)
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def build_pair(size: dict, seed: int = 0, attn_implementation: str = "eager"):
    """A SciTune model and a native LLaVA with identical weights and attention kernel, their processor, and one
    collated batch."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from modeling_scitune.data.synthetic import make_synthetic_record
    from modeling_scitune.tiny import default_corpus, processor_for, tiny_config
    from modeling_scitune.training.assemble import generation_config_for
    from modeling_scitune.training.tokenizer import train_tokenizer

    from modeling_scitune import SciTuneForConditionalGeneration

    tokenizer = train_tokenizer(default_corpus(), vocab_size=1200)
    config = tiny_config(tokenizer, projector_type="mlp2x_gelu", **size)
    torch.manual_seed(seed)
    scitune = SciTuneForConditionalGeneration(config)
    llava_config = LlavaConfig(vision_config=config.vision_config.to_dict(), text_config=config.text_config.to_dict(),
                               image_token_index=config.image_token_id, image_seq_length=config.image_seq_length)
    llava = LlavaForConditionalGeneration(llava_config)
    llava.load_state_dict(scitune.state_dict(), strict=False)  # the tail SciTune never computes stays as initialised
    for model in (scitune, llava):
        model.generation_config = generation_config_for(tokenizer)
        model.set_attn_implementation(attn_implementation)
    processor = processor_for(config, tokenizer)
    rows = []
    for i in range(BATCH):
        record = make_synthetic_record(i, seed)
        from PIL import Image
        import io

        rows.append({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "Describe the following image in detail."}, {"type": "image"}]},
            {"role": "assistant", "content": [{"type": "text", "text": f"{record.figure_type} {record.caption}"}]}],
            "images": [Image.open(io.BytesIO(record.image)).convert("RGB")]})
    batch = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)(rows)
    return scitune, llava, processor, batch, rows


def stage1_datasets(scitune, processor, seed: int, cache_dir: str):
    """The stage-1 rows as training reads them: LLaVA's with PNG figures (decoded on access), SciTune's with the
    frozen-tower feature cache (figures left undecoded), built exactly as `run_stage1` builds them."""
    import datasets

    from modeling_scitune.data.synthetic import make_synthetic_record
    from modeling_scitune.schema import CONVERSATION_FEATURES
    from modeling_scitune.speed.feature_cache import add_cached_features

    records = [make_synthetic_record(i, seed) for i in range(BATCH)]
    features = CONVERSATION_FEATURES
    pixels = datasets.Dataset.from_list([{"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Describe the following image in detail."},
                                     {"type": "image", "text": None}]},
        {"role": "assistant", "content": [{"type": "text", "text": f"{r.figure_type} {r.caption}"}]}],
        "images": [{"bytes": r.image, "path": None}]} for r in records], features=features)
    return pixels, add_cached_features(pixels, scitune, processor, cache_dir)


@contextmanager
def trained_as_packaged(model, label: str, stage: str, dtype_name: str):
    """A stage as each package trains it: SciTune's trainer keeps the frozen weights in bf16 in a bf16 run
    (`speed.frozen_bf16`); LLaVA under TRL keeps fp32 weights and autocast casts them on every step."""
    from modeling_scitune.speed.frozen_bf16 import FrozenWeightsInBf16
    from modeling_scitune.training.stages import freeze_for_stage

    freeze_for_stage(model, stage)
    frozen = FrozenWeightsInBf16(model) if label == "scitune" and dtype_name == "bfloat16" else None
    if frozen is not None:
        frozen.cast()
    try:
        yield model
    finally:
        if frozen is not None:
            frozen.restore()


def train_steps(model, inputs: dict | None, steps: int, autocast, next_batch=None) -> float:
    """samples/s of the fastest of `steps` optimizer steps (one warm-up step first), on the collated `inputs`, or on
    a fresh batch from `next_batch()` each step (then the data work the Trainer does per step is timed too)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step():
        batch = next_batch() if next_batch is not None else inputs
        with autocast():
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return BATCH / min(times)  # the fastest step: the least disturbed by this shared machine (as timeit does)


def whole_step_batches(dataset, collator):
    """What the Trainer does for each step before the model runs: read BATCH rows, collate them."""
    return lambda: collator([dataset[i] for i in range(BATCH)])


def generate_speed(model, processor, rows, batch_size: int, autocast, calls: int = 3):
    """Greedy tokens/s of the fastest of `calls` generate calls (after one untimed call of the same shape: a compiled
    model compiles there), and the generated ids."""
    import torch

    processor.tokenizer.padding_side = "left"
    chats = [[row["messages"][0]] for row in rows[:batch_size]]
    prompts = [processor.apply_chat_template(chat, add_generation_prompt=True) for chat in chats]
    inputs = processor(images=[row["images"][0] for row in rows[:batch_size]], text=prompts, padding=True,
                       return_tensors="pt")
    model.eval()
    kwargs = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "do_sample": False}
    with torch.inference_mode(), autocast():
        model.generate(**inputs, **kwargs)
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            output = model.generate(**inputs, **kwargs)
            times.append(time.perf_counter() - start)
        return batch_size * NEW_TOKENS / min(times), output


def reference_scienceqa_loop(llava, processor, problems, max_new_tokens: int) -> list[str]:
    """What a LLaVA user writes to run the scitune protocol: one problem at a time through
    `LlavaForConditionalGeneration.generate`, same prompts, budgets and "###" stop, then the answer-prompter pass."""
    import torch

    from modeling_scitune.scienceqa import get_protocol

    protocol = get_protocol("scitune")
    tokenizer = processor.tokenizer

    def run(prompt, images, budget):
        inputs = processor(images=images, text=[prompt], return_tensors="pt")
        with torch.inference_mode():
            out = llava.generate(**inputs, max_new_tokens=budget, do_sample=False, stop_strings=["###"],
                                 tokenizer=tokenizer, pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    texts = []
    for problem in problems:
        images = [problem.load_image()] if problem.has_image else None
        prompt = protocol.prompt(processor, problem)
        reasoning = protocol.first_pass_text(run(prompt, images, max_new_tokens))
        texts.append(protocol.combine(reasoning, run(protocol.answer_prompt(prompt, reasoning), images,
                                                     protocol.answer_max_new_tokens)))
    return texts


def scienceqa_eval_seconds(scitune, llava, processor, data_dir: str, n: int, max_new_tokens: int) -> dict:
    """Wall seconds of `run_scienceqa` (protocol scitune, its default batch size) on `n` embedded problems and of the
    LLaVA user's loop on the same problems, and whether both wrote the same answers."""
    import tempfile

    from modeling_scitune.scienceqa import load_scienceqa
    from modeling_scitune.scienceqa.evaluate import run_scienceqa

    problems = load_scienceqa(data_dir, "train").problems[:n]
    for model in (scitune, llava):
        model.eval()
    start = time.perf_counter()
    reference = reference_scienceqa_loop(llava, processor, problems, max_new_tokens)
    llava_s = time.perf_counter() - start
    out = tempfile.mkdtemp(prefix="bench-sqa-")
    start = time.perf_counter()
    run_scienceqa(None, data_dir, out, split="train", limit=n, max_new_tokens=max_new_tokens, model=scitune,
                  processor=processor, progress=False)
    scitune_s = time.perf_counter() - start
    rows = {json.loads(line)["pid"]: json.loads(line)["text"] for line in open(Path(out) / "predictions.jsonl")}
    shutil.rmtree(out, ignore_errors=True)
    same = sum(rows[p.pid] == text for p, text in zip(problems, reference))
    return {"scitune_s": scitune_s, "llava_s": llava_s, "same_answers": same, "problems": len(problems)}


def peak_memory_in_child(size_name: str, dtype_name: str, label: str, attn: str) -> int:
    import subprocess

    result = subprocess.run([sys.executable, __file__, "--peak-memory-child", size_name, dtype_name, label, attn],
                            capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"peak-memory child failed: {result.stderr[-1000:]}")
    return int(result.stdout.strip().splitlines()[-1])


def child_peak_memory(size_name: str, dtype_name: str, label: str, attn: str) -> int:
    """RSS growth of one stage-1 training step (SciTune: cached features; LLaVA: pixels), measured in this process."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    scitune, llava, _, batch, _ = build_pair(SIZES[size_name], attn_implementation=attn)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype_name == "bfloat16" else nullcontext
    if label == "scitune":
        with torch.no_grad():
            features = scitune.model.encode_images(batch["pixel_values"]).last_hidden_state
        inputs = {k: v for k, v in batch.items() if k != "pixel_values"}
        inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=features)}
        model = scitune
        del llava
    else:
        inputs, model = batch, llava
        del scitune
    with trained_as_packaged(model, label, "stage1", dtype_name), PeakMemory() as memory:
        train_steps(model, inputs, 1, autocast)
    return memory.growth


def summarize(ratios: list[float]) -> dict:
    return {"min": round(min(ratios), 3), "median": round(statistics.median(ratios), 3), "max": round(max(ratios), 3)}


def bench_size(name: str, size: dict, dtype_name: str, repeats: int, steps: int, peak_flops: float,
               attn: str = "eager", sqa_dir: str | None = None, memory_probes: int = 3) -> dict:
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == torch.bfloat16 else nullcontext
    import copy
    import tempfile

    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from modeling_scitune.evaluation.generation import compile_for_decoding
    from modeling_scitune.speed.compiling import compile_in_place
    from modeling_scitune.speed.feature_cache import CachedFeatureCollator

    torch._dynamo.reset()  # every size and dtype compiles afresh, within Dynamo's recompile limit
    scitune, llava, processor, batch, rows = build_pair(size, attn_implementation=attn)
    # Generation and the ScienceQA loop run on copies taken before any training step: the timed steps below update
    # each model's weights along its own path, and "same answers" needs the same weights on both sides.
    untrained = {"scitune": copy.deepcopy(scitune), "llava": copy.deepcopy(llava)}
    # Generation as SciTune's evaluation runs it over long benchmarks (static KV cache, compiled language model:
    # evaluation.generation.compile_for_decoding); LLaVA's as `generate` runs by default.
    decoding = copy.deepcopy(scitune)
    compile_for_decoding(decoding)
    start = time.perf_counter()
    with torch.no_grad():
        features = scitune.model.encode_images(batch["pixel_values"]).last_hidden_state  # the stage-1 cache, built once
    cache_build_s = time.perf_counter() - start
    cached = {k: v for k, v in batch.items() if k != "pixel_values"}
    cached["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=features)}
    cache_dir = tempfile.mkdtemp(prefix="bench-feature-cache-")
    base_collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)
    pixel_rows, cached_rows = stage1_datasets(scitune, processor, 0, cache_dir)
    pipelines = {"scitune": (cached_rows, CachedFeatureCollator(processor.tokenizer.pad_token_id)),
                 "llava": (pixel_rows, base_collator)}
    # Training as packaged: SciTune's language model compiled (`compile: true`, nn.Module.compile), LLaVA's eager as TRL
    # runs it; copies, since compiled modules stay compiled and the model steps and generation compare eager models.
    scitune_trained, llava_compiled = copy.deepcopy(scitune), copy.deepcopy(llava)
    compile_in_place(scitune_trained.model.language_model)
    compile_in_place(llava_compiled.model.language_model)
    keys = ("stage1_train", "stage1_train_both_compiled", "stage1_model_step", "stage2_train", "stage2_model_step",
            "generate_b1", "generate_b8", "scienceqa_eval")
    raw = {key: {"scitune": [], "llava": []} for key in keys}
    for _ in range(repeats):
        for label, trained, model, inputs in (("scitune", scitune_trained, scitune, cached),
                                              ("llava", llava, llava, batch)):
            with trained_as_packaged(trained, label, "stage1", dtype_name):
                raw["stage1_train"][label].append(train_steps(trained, None, steps, autocast,
                                                              next_batch=whole_step_batches(*pipelines[label])))
            if label == "llava":  # the same lever on LLaVA's side: what is left of the gap
                with trained_as_packaged(llava_compiled, label, "stage1", dtype_name):
                    raw["stage1_train_both_compiled"][label].append(train_steps(
                        llava_compiled, None, steps, autocast, next_batch=whole_step_batches(*pipelines[label])))
            else:
                raw["stage1_train_both_compiled"][label].append(raw["stage1_train"][label][-1])
            with trained_as_packaged(model, label, "stage1", dtype_name):
                raw["stage1_model_step"][label].append(train_steps(model, inputs, steps, autocast))
        for label, trained, model in (("scitune", scitune_trained, scitune), ("llava", llava, llava)):
            with trained_as_packaged(trained, label, "stage2", dtype_name):  # the tower is frozen in stage 2 too
                raw["stage2_train"][label].append(train_steps(trained, None, steps, autocast,
                                                              next_batch=whole_step_batches(*pipelines[label])))
            with trained_as_packaged(model, label, "stage2", dtype_name):
                raw["stage2_model_step"][label].append(train_steps(model, batch, steps, autocast))
        for batch_size in (1, 8):
            outputs = {}
            for label, model in (("scitune", decoding), ("llava", untrained["llava"])):
                speed, outputs[label] = generate_speed(model, processor, rows, batch_size, autocast)
                raw[f"generate_b{batch_size}"][label].append(speed)
            raw.setdefault("generate_same_tokens", []).append(bool(torch.equal(outputs["scitune"], outputs["llava"])))
        if sqa_dir is not None:  # end-to-end ScienceQA evaluation, problems/s (scitune protocol, both passes)
            with autocast():
                timed = scienceqa_eval_seconds(untrained["scitune"], untrained["llava"], processor, sqa_dir,
                                               SQA_PROBLEMS, SQA_NEW_TOKENS)
            raw["scienceqa_eval"]["scitune"].append(timed["problems"] / timed["scitune_s"])
            raw["scienceqa_eval"]["llava"].append(timed["problems"] / timed["llava_s"])
            raw.setdefault("scienceqa_same_answers", []).append(f"{timed['same_answers']}/{timed['problems']}")
    shutil.rmtree(cache_dir, ignore_errors=True)
    same_answers = raw.pop("scienceqa_same_answers", [])
    same_tokens = raw.pop("generate_same_tokens", [])
    if not raw["scienceqa_eval"]["scitune"]:
        raw.pop("scienceqa_eval")
    # Peak memory of a stage-1 step, each model in a fresh process (a shared allocator would blur the comparison).
    raw["peak_memory"] = {label: [peak_memory_in_child(name, dtype_name, label, attn)
                                  for _ in range(min(repeats, memory_probes))] for label in ("scitune", "llava")}
    result = {}
    for key, values in raw.items():
        ratios = [max(a, 1) / max(b, 1) for a, b in zip(values["scitune"], values["llava"])]
        result[key] = summarize(ratios)
    lm_params = sum(p.numel() for p in scitune.model.language_model.parameters()) + \
        sum(p.numel() for p in scitune.model.multi_modal_projector.parameters()) + scitune.lm_head.weight.numel()
    tokens_per_sample = int(batch["attention_mask"].sum()) / BATCH
    mfu = {label: round(6 * lm_params * tokens_per_sample * statistics.median(raw["stage2_model_step"][label]) / peak_flops, 4)
           for label in ("scitune", "llava")}
    params = {"scitune": sum(p.numel() for p in scitune.parameters()), "llava": sum(p.numel() for p in llava.parameters())}
    return {"ratios": result, "raw": raw, "mfu": mfu, "attn_implementation": attn, "params": params,
            "scienceqa_same_answers": same_answers, "generate_same_tokens": same_tokens, "cache_build_s": round(cache_build_s, 3),
            "tokens_per_sample": tokens_per_sample, "matmul_flops": peak_flops}


def plot(results: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    keys = ["stage1_train", "stage1_train_both_compiled", "stage1_model_step", "stage2_train", "stage2_model_step",
            "generate_b1", "generate_b8", "scienceqa_eval", "peak_memory"]
    figure = Figure(figsize=(11, 3.8), dpi=100)
    ax = figure.add_subplot()
    labels = [f"{size}/{dtype}" for size in results for dtype in results[size]["by_dtype"]]
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        size, dtype = label.split("/")
        values = [results[size]["by_dtype"][dtype]["ratios"].get(k, {}).get("median", 0) for k in keys]
        ax.bar([k + i * width for k in range(len(keys))], values, width=width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([k + width * (len(labels) - 1) / 2 for k in range(len(keys))], keys, rotation=15, fontsize="small")
    ax.set_ylabel("SciTune / LLaVA (median)")
    ax.set_title("speed ratios (>1 faster; peak_memory <1 smaller)")
    ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path)


def main(argv=None):
    import torch

    from modeling_scitune.results_file import RESULTS_FILE
    from modeling_scitune.speed.allocator import keep_freed_memory_for_reuse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir")
    parser.add_argument("--quick", action="store_true",
                        help="tiny size, the dtype this machine trains in, 3 repeats, 1 memory probe per model")
    parser.add_argument("--sizes", nargs="+", default=None, choices=sorted(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=None, choices=["float32", "bfloat16"],
                        help="default: both, the one SciTune trains in here first (bf16 where the hardware has it); "
                             "the first one's medians are the top-level keys of speed.json")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--attn-implementation", default="auto", choices=["auto", "eager", "sdpa"],
                        help="attention kernel of both models; auto = what SciTune training picks on this device")
    parser.add_argument("--results-file", default=str(RESULTS_FILE),
                        help="the markdown file whose bench_speed section this run rewrites")
    parser.add_argument("--peak-memory-child", nargs=4, metavar=("SIZE", "DTYPE", "MODEL", "ATTN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    keep_freed_memory_for_reuse()  # process-wide: both models of an A/B alike
    if args.peak_memory_child:
        print(child_peak_memory(*args.peak_memory_child))
        return 0
    if not args.output_dir:
        parser.error("--output-dir is required")
    sizes = args.sizes or (["tiny"] if args.quick else ["tiny", "mid"])
    repeats = args.repeats or (3 if args.quick else 5)
    torch.set_num_threads(os.cpu_count() or 1)
    from modeling_scitune.training.precision import attention_implementation, bf16_available

    attn = attention_implementation(args.attn_implementation)
    trains_in = "bfloat16" if bf16_available() else "float32"
    skipped = []
    if args.dtypes is None:
        other = "float32" if trains_in == "bfloat16" else "bfloat16"
        args.dtypes = [trains_in] if args.quick else [trains_in, other]
        if args.quick:
            skipped.append(f"{other} (--quick times only the dtype this machine trains in)")
    memory_probes = 1 if args.quick else 3
    if args.quick:
        skipped.append("mid size; peak memory from 1 fresh process per model instead of 3")
    flops = {name: matmul_flops(dtype) for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
             if name in args.dtypes}
    import tempfile

    from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa

    sqa_dir = tempfile.mkdtemp(prefix="bench-scienceqa-")
    write_synthetic_scienceqa(2 * SQA_PROBLEMS + 8, sqa_dir, seed=0, workers=1, progress=False)
    results = {}
    for size in sizes:
        by_dtype = {}
        for dtype in args.dtypes:
            print(f"benchmarking {size} / {dtype} ...", flush=True)
            by_dtype[dtype] = bench_size(size, SIZES[size], dtype, repeats, args.steps, flops[dtype], attn,
                                         sqa_dir=sqa_dir, memory_probes=memory_probes)
        primary = by_dtype[args.dtypes[0]]
        results[size] = {**{k: v["median"] for k, v in primary["ratios"].items()}, "mfu": primary["mfu"],
                         "primary_dtype": args.dtypes[0], "by_dtype": by_dtype}
    shutil.rmtree(sqa_dir, ignore_errors=True)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"matmul_flops": flops, "repeats": repeats, "batch": BATCH, "attn_implementation": attn,
              "trains_in": trains_in, "skipped": skipped, "machine": machine_description(), "quick": args.quick,
              "command": " ".join(["python benchmarks/bench_speed.py", *(sys.argv[1:] if argv is None else argv)]),
              "sizes": results}
    (out / "speed.json").write_text(json.dumps(report, indent=2))
    plot(results, out / "speed.png")
    print(f"\nmatmul FLOP/s: " + ", ".join(f"{k} {v / 1e9:.0f} G" for k, v in flops.items())
          + f"; attention: {attn} (both models); this machine trains in {trains_in}")
    print(f"{'size/dtype':<16} {'metric':<27} {'min':>7} {'median':>7} {'max':>7}")
    for size, result in results.items():
        for dtype, block in result["by_dtype"].items():
            for key, stats in block["ratios"].items():
                print(f"{size + '/' + dtype:<16} {key:<27} {stats['min']:>7} {stats['median']:>7} {stats['max']:>7}")
            print(f"{size + '/' + dtype:<16} {'MFU':<27} scitune {block['mfu']['scitune']:.2%}  llava {block['mfu']['llava']:.2%}")
            if block.get("scienceqa_same_answers"):
                print(f"{size + '/' + dtype:<16} scienceqa_eval same answers: {', '.join(block['scienceqa_same_answers'])}")
            if block.get("generate_same_tokens"):
                print(f"{size + '/' + dtype:<16} generate same tokens: {block['generate_same_tokens']}")
    for item in skipped:
        print(f"skipped: {item}")
    write_results_section(Path(args.results_file), "bench_speed", speed_markdown(report))
    print(f"written: {out / 'speed.json'}, {out / 'speed.png'}, {args.results_file}")
    return 0


def speed_markdown(report: dict) -> str:
    """The RESULTS.md section of a bench_speed run: medians SciTune / LLaVA per size and dtype."""
    machine = report["machine"]
    keys = ["stage1_train", "stage1_train_both_compiled", "stage2_train", "generate_b1", "generate_b8",
            "scienceqa_eval", "peak_memory"]
    command = report.get("command", "python benchmarks/bench_speed.py" + (" --quick" if report.get("quick") else ""))
    lines = [f"`{command}`. " + machine_line(machine)
             + f" Attention {report['attn_implementation']}; medians of {report['repeats']} repeats, SciTune / LLaVA "
             "(> 1: SciTune faster; peak_memory < 1: SciTune smaller).", "",
             "| size / dtype | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for size, result in report["sizes"].items():
        for dtype, block in result["by_dtype"].items():
            cells = [str(block["ratios"].get(k, {}).get("median", "-")) for k in keys]
            lines.append(f"| {size} / {dtype} | " + " | ".join(cells) + " |")
    checks = [f"{size} / {dtype}: generation same tokens {block.get('generate_same_tokens')}, ScienceQA same answers "
              f"{block.get('scienceqa_same_answers')}" for size, result in report["sizes"].items()
              for dtype, block in result["by_dtype"].items()]
    lines += ["", "Same outputs as LLaVA (per repeat): " + "; ".join(checks) + "."]
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(report["skipped"]) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
