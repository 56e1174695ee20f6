"""`scitune-train`: pretrain miniature backbones, then SciTune stage 1 and stage 2.

    scitune-train backbones --data DIR --output_dir OUT [--sqa DIR] [--config YAML] [--llm_steps N] [--bf16 false]
    scitune-train stage1 --data DIR --output_dir OUT [--vision_model P --text_model P] [--preset tiny | --config YAML]
                         [--variant C|CT|CTO|CTOM] [any trl.SFTConfig / trl.ModelConfig flag]
    scitune-train stage2 --model STAGE1_DIR --data SQA_DIR --output_dir OUT [--use_peft] [--preset tiny] [...]

Stage settings are TRL's (see arguments.py): `scitune-train stage1 --help` lists every flag of SciTuneArguments,
SFTConfig and ModelConfig; flags take dashes or underscores. Runs unchanged under `torchrun --nproc_per_node N` or
`accelerate launch --config_file configs/accelerate/...`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

from ..speed.allocator import keep_freed_memory_for_reuse

COMMANDS = ("backbones", "stage1", "stage2")


@dataclass
class BackboneArguments:
    data: str = field(metadata={"help": "stage-1 instruction dataset (scitune-data synthetic)"})
    output_dir: str = field(metadata={"help": "where OUT/clip and OUT/llama are written"})
    sqa: str | None = field(default=None, metadata={"help": "ScienceQA folder whose train text joins the LLM corpus"})


def backbones_main(argv: list[str]) -> int:
    import dataclasses

    from trl import TrlParser

    from .backbone_config import BackboneConfig
    from .backbones import pretrain_backbones

    parser = TrlParser((BackboneArguments, BackboneConfig), prog="scitune-train backbones")
    paths, cfg = parser.parse_args_and_config(argv)
    summary = pretrain_backbones(paths.data, paths.output_dir, cfg, sqa_dir=paths.sqa)
    summary.pop("log")
    print(json.dumps({**summary, "config": dataclasses.asdict(cfg)}, indent=2, default=str))
    return 0


def stage_main(stage: str, argv: list[str]) -> int:
    from .arguments import stage_arguments
    from .output_guard import NoSpaceLeft, OutputDirBusy
    from .stages import run_stage1, run_stage2

    try:
        settings = stage_arguments(stage, *argv)
        summary = (run_stage1 if stage == "stage1" else run_stage2)(settings)
    except (OutputDirBusy, NoSpaceLeft, ValueError) as err:
        print(f"scitune-train {stage}: {err}", file=sys.stderr)
        return 2
    if summary:
        summary.pop("loss_history", None)
        print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    keep_freed_memory_for_reuse()
    command, rest = argv[0], argv[1:]
    return backbones_main(rest) if command == "backbones" else stage_main(command, rest)


if __name__ == "__main__":
    sys.exit(main())
