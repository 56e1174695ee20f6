#!/usr/bin/env python
"""The backbone pretraining step (the main job's longest part): eager vs torch.compile, glibc malloc defaults vs
SciTune's tuning, side by side.

    python benchmarks/bench_backbone_step.py --output-dir OUT [--repeats 2] [--steps 30]

The step is the one `scitune-train backbones` runs for the tiny preset's LLaMA (same model config, batch and
block size, bf16 autocast where the CPU has it, AdamW, gradient clipping, deterministic kernels). Each configuration runs
in a fresh process (malloc thresholds and compiled graphs are process-wide), in alternating order over the repeats;
each process warms up (compiles) first, then times `--steps` steps (mean ms/step). Prints the median over repeats per
configuration and the speed-up over eager + default malloc; writes OUT/backbone_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONFIGS = {  # name -> (compile, malloc tuning)
    "eager, default malloc": (False, False),
    "eager, tuned malloc": (False, True),
    "compiled, default malloc": (True, False),
    "compiled, tuned malloc": (True, True),
}
WARMUP_STEPS = 3


def child(compile_step: bool, steps: int) -> dict:
    """Time the pretraining step in this process: mean milliseconds per step after the warm-up."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from modeling_scitune.speed.allocator import keep_freed_memory_for_reuse
    from modeling_scitune.training.backbones import _run_steps
    from modeling_scitune.speed.compiling import CompiledWithFallback, deterministic_algorithms
    from modeling_scitune.training.precision import attention_implementation, use_bf16
    from modeling_scitune.training.backbone_config import load_backbone_config

    tuned = keep_freed_memory_for_reuse()
    cfg = load_backbone_config()
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.text_hidden, intermediate_size=cfg.text_hidden * 2,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_kv_heads,
        max_position_embeddings=2048, tie_word_embeddings=False))
    model.set_attn_implementation(attention_implementation(cfg.attn_implementation))
    blocks = torch.randint(0, cfg.vocab_size, (cfg.llm_batch_size * 4, cfg.block_size), generator=torch.Generator().manual_seed(0))

    def batches():
        while True:
            for start in range(0, len(blocks), cfg.llm_batch_size):
                yield torch.arange(start, start + cfg.llm_batch_size)

    def loss_fn(forward, index):
        return forward(input_ids=blocks[index], labels=blocks[index]).loss

    forward = CompiledWithFallback(model, enabled=compile_step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.llm_lr, weight_decay=0.01)
    bf16 = use_bf16(cfg.bf16)
    stream, log = batches(), []
    model.train()
    with deterministic_algorithms():
        _run_steps(model, forward, optimizer, stream, WARMUP_STEPS, cfg.llm_lr, "warm-up", log, loss_fn, bf16, "cpu")
        start = time.perf_counter()
        _run_steps(model, forward, optimizer, stream, steps, cfg.llm_lr, "timed", log, loss_fn, bf16, "cpu")
        mean_ms = (time.perf_counter() - start) * 1000 / steps
    return {"ms": mean_ms, "compiled": forward.is_compiled, "malloc_tuned": tuned, "bf16": bf16}


def run_child(name: str, steps: int) -> dict:
    compile_step, tuned = CONFIGS[name]
    env = {**os.environ, "SCITUNE_MALLOC_TUNING": "1" if tuned else "0"}
    result = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps)], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name}: the benchmark process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--child", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(CONFIGS[args.child][0], args.steps)))
        return 0
    if not args.output_dir:
        parser.error("--output-dir is required")
    runs = {name: [] for name in CONFIGS}
    for repeat in range(args.repeats):
        order = list(CONFIGS) if repeat % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            print(f"repeat {repeat + 1}/{args.repeats}: {name} ...", flush=True)
            runs[name].append(run_child(name, args.steps))
    baseline = statistics.median(run["ms"] for run in runs["eager, default malloc"])
    table = {}
    for name, results in runs.items():
        median = statistics.median(run["ms"] for run in results)
        table[name] = {"median_ms": round(median, 1), "speedup": round(baseline / median, 2),
                       "per_repeat_ms": [round(run["ms"], 1) for run in results],
                       "compiled": results[0]["compiled"], "malloc_tuned": results[0]["malloc_tuned"],
                       "bf16": results[0]["bf16"]}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backbone_step.json").write_text(json.dumps({"steps": args.steps, "repeats": args.repeats,
                                                        "configs": table}, indent=2))
    print(f"\n{'configuration':<26} {'ms/step':>8} {'speed-up':>9}  per repeat")
    for name, row in table.items():
        print(f"{name:<26} {row['median_ms']:>8} {row['speedup']:>8}x  {row['per_repeat_ms']}")
    print(f"written: {out / 'backbone_step.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
