"""`scitune-train`: pretrain miniature backbones, then SciTune stage 1 and stage 2.

    scitune-train backbones --data DIR --output-dir OUT [--sqa DIR] [--preset tiny] [--clip-extra-figures N] [--no-compile]
    scitune-train stage1 --data DIR --output-dir OUT [--vision-model P] [--text-model P] [--config YAML]
                         [--preset tiny] [--variant CTOM] [--max-steps N] [--feature-cache] [--compile] [--resume]
    scitune-train stage2 --model STAGE1_DIR --data SQA_DIR --output-dir OUT [--lora] [--format QCM-LEPA] [...]

Runs unchanged under `torchrun --nproc_per_node N` or `accelerate launch --config_file configs/accelerate/...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .allocator import keep_freed_memory_for_reuse
from .precision import ATTENTION_CHOICES


def positive(kind):
    """An argparse type: a number of `kind` that must be > 0 (counts, lengths, rates)."""
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _common(parser):
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--config", help="YAML file of settings (overrides the stage defaults and the preset)")
    parser.add_argument("--preset", help="named settings, e.g. 'tiny' for a CPU run in minutes")
    parser.add_argument("--max-steps", type=positive(int))
    parser.add_argument("--num-train-epochs", type=positive(float))
    parser.add_argument("--learning-rate", type=positive(float))
    parser.add_argument("--per-device-train-batch-size", type=positive(int))
    parser.add_argument("--gradient-accumulation-steps", type=positive(int))
    parser.add_argument("--save-steps", type=positive(int))
    parser.add_argument("--max-length", type=positive(int))
    parser.add_argument("--limit-train-samples", type=positive(int))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--projector-type", choices=("linear", "mlp2x_gelu"))
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--attn-implementation", choices=ATTENTION_CHOICES,
                        help="attention kernel; auto: eager on CPU, flash_attention_2 (or sdpa) on CUDA")
    parser.add_argument("--feature-cache", action=argparse.BooleanOptionalAction, default=None,
                        help="train on frozen-tower features computed once (tiny preset: on in stage 1, off in stage 2)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the language model while training (eager fallback without a C++ compiler)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint that reads back")
    parser.add_argument("--overwrite-output-dir", action="store_true",
                        help="train over a folder that already holds a finished stage")


OVERRIDE_KEYS = ("max_steps", "num_train_epochs", "learning_rate", "per_device_train_batch_size",
                 "gradient_accumulation_steps", "save_steps", "max_length", "limit_train_samples", "seed",
                 "projector_type", "bf16", "attn_implementation", "variant", "format", "lora", "feature_cache",
                 "compile")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scitune-train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backbones", help="pretrain a small CLIP and LLaMA on the embedded corpus")
    p.add_argument("--data", required=True, help="stage-1 instruction dataset (scitune-data synthetic)")
    p.add_argument("--sqa", help="ScienceQA folder whose train text is added to the LLM corpus")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--config")
    p.add_argument("--clip-steps", type=positive(int))
    p.add_argument("--clip-extra-figures", type=int, help="more synthetic figures (another seed) for CLIP pretraining")
    p.add_argument("--llm-steps", type=positive(int))
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--attn-implementation", choices=ATTENTION_CHOICES)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the LLaMA pretraining step (default on; eager fallback without a C++ compiler)")
    p.add_argument("--seed", type=int)

    p = sub.add_parser("stage1", help="scientific concept alignment: projector only")
    p.add_argument("--data", required=True)
    p.add_argument("--vision-model", help="CLIP checkpoint (path or Hub name)")
    p.add_argument("--text-model", help="LLaMA-style causal LM (path or Hub name)")
    p.add_argument("--variant", choices=("C", "CT", "CTO", "CTOM"))
    _common(p)

    p = sub.add_parser("stage2", help="scientific instruction tuning on ScienceQA")
    p.add_argument("--model", required=True, help="a stage-1 output folder")
    p.add_argument("--data", required=True, help="ScienceQA folder (lupantech layout or HF parquet), or a "
                   "scitune-data instruction dataset")
    p.add_argument("--lora", action="store_true", default=None, help="LoRA on the LLM, merged at the end")
    p.add_argument("--format", help="target format, default QCM-LEPA")
    _common(p)

    return parser


def stage_config(args):
    """The StageConfig of a parsed `stage1` / `stage2` command line: YAML defaults -> preset -> --config -> flags."""
    from .presets import load_stage_config

    overrides = {key: getattr(args, key, None) for key in OVERRIDE_KEYS}
    return load_stage_config(args.command, args.preset, args.config, overrides)


def main(argv=None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    keep_freed_memory_for_reuse()
    if args.command == "backbones":
        from .backbones import pretrain_backbones
        from .presets import load_backbone_config

        cfg = load_backbone_config(args.preset, args.config, {"clip_steps": args.clip_steps,
                                                              "clip_extra_figures": args.clip_extra_figures,
                                                              "llm_steps": args.llm_steps, "bf16": args.bf16,
                                                              "attn_implementation": args.attn_implementation,
                                                              "compile": args.compile, "seed": args.seed})
        summary = pretrain_backbones(args.data, args.output_dir, cfg, sqa_dir=args.sqa)
        summary.pop("log")
    else:
        from .output_guard import NoSpaceLeft, OutputDirBusy
        from .stages import run_stage1, run_stage2

        try:
            cfg = stage_config(args)
            if args.command == "stage1":
                summary = run_stage1(args.data, args.output_dir, cfg, args.vision_model, args.text_model, args.resume,
                                     args.overwrite_output_dir)
            else:
                summary = run_stage2(args.model, args.data, args.output_dir, cfg, args.resume,
                                     args.overwrite_output_dir)
        except (OutputDirBusy, NoSpaceLeft, ValueError) as err:
            print(f"scitune-train {args.command}: {err}", file=sys.stderr)
            return 2
        if summary:
            summary.pop("loss_history", None)
    if summary:
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
