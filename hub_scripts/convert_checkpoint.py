#!/usr/bin/env python
"""Convert checkpoints: original SciTune / LLaVA-v0 releases -> SciTune folders, and SciTune -> native LLaVA.

    python hub_scripts/convert_checkpoint.py from-original ORIGINAL_DIR --output-dir OUT [--vision-model CLIP] [--dtype D]
    python hub_scripts/convert_checkpoint.py from-delta DELTA_DIR --base-model LLAMA_DIR --output-dir OUT [--vision-model CLIP]
    python hub_scripts/convert_checkpoint.py from-adapter mm_projector.bin --base-model LLAMA_DIR --vision-model CLIP \\
        --output-dir OUT [--no-im-start-end] [--vision-select-layer -2]
    python hub_scripts/convert_checkpoint.py to-llava SCITUNE_DIR --output-dir OUT

Weights keep the dtype they were stored in unless --dtype (float32, float16, bfloat16) says otherwise. A folder that
cannot be converted exits with status 2 and one line saying what is wrong and where.
"""

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("from-original", help="full original SciTune / LLaVA-v0 checkpoint -> SciTune folder")
    p.add_argument("original")
    p = sub.add_parser("from-delta", help="LLaVA-v0 delta release + its base LLaMA -> SciTune folder")
    p.add_argument("delta")
    p.add_argument("--base-model", required=True, help="the base LLaMA folder the delta was made against")
    p = sub.add_parser("from-adapter", help="adapter-only release (mm_projector.bin) + base LLaMA + CLIP -> SciTune")
    p.add_argument("adapter", help="the released projector file (projector + input embeddings)")
    p.add_argument("--base-model", required=True, help="the base LLaMA folder (HF layout, tokenizer.model)")
    p.add_argument("--im-start-end", action=argparse.BooleanOptionalAction, default=True,
                   help="the adapter was trained with <im_start>/<im_end> (SciTune's stage 1: yes)")
    p.add_argument("--vision-select-layer", type=int, default=-2)
    for name, p in sub.choices.items():  # the three original forms
        p.add_argument("--output-dir", required=True)
        p.add_argument("--vision-model", required=name == "from-adapter",
                       help="CLIP checkpoint (default: the config's mm_vision_tower)")
        p.add_argument("--dtype", help="float32, float16 or bfloat16 (default: as stored)")
    p = sub.add_parser("to-llava", help="SciTune folder -> LlavaForConditionalGeneration folder")
    p.add_argument("scitune")
    p.add_argument("--output-dir", required=True)
    return parser


def main(argv=None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from modeling_scitune.conversion import (CheckpointError, OriginalTokenizerError, convert_adapter, convert_delta,
                                             convert_original, export_to_llava)

    args = build_parser().parse_args(argv)
    try:
        if args.command == "from-original":
            convert_original(args.original, args.output_dir, args.vision_model, args.dtype)
        elif args.command == "from-delta":
            convert_delta(args.base_model, args.delta, args.output_dir, args.vision_model, args.dtype)
        elif args.command == "from-adapter":
            convert_adapter(args.base_model, args.adapter, args.vision_model, args.output_dir, args.im_start_end,
                            args.vision_select_layer, args.dtype)
        else:
            export_to_llava(args.scitune, args.output_dir)
    except (CheckpointError, OriginalTokenizerError, ValueError, OSError) as err:
        print(f"conversion failed: {err}", file=sys.stderr)
        return 2
    print(f"written: {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
