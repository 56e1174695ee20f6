#!/usr/bin/env python
"""Convert checkpoints: original SciTune / LLaVA-v0 -> SciTune folder, or SciTune (MLP projector) -> native LLaVA.

    python hub_scripts/convert_checkpoint.py from-original ORIGINAL_DIR --output-dir OUT [--vision-model CLIP]
    python hub_scripts/convert_checkpoint.py to-llava SCITUNE_DIR --output-dir OUT
"""

import argparse
import os
import sys


def main(argv=None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from modeling_scitune.conversion import convert_original, export_to_llava

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("from-original", help="original SciTune / LLaVA-v0 checkpoint -> SciTune folder")
    p.add_argument("original")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--vision-model", help="CLIP checkpoint (default: the config's mm_vision_tower)")
    p = sub.add_parser("to-llava", help="SciTune folder with an MLP projector -> LlavaForConditionalGeneration folder")
    p.add_argument("scitune")
    p.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "from-original":
            convert_original(args.original, args.output_dir, args.vision_model)
        else:
            export_to_llava(args.scitune, args.output_dir)
    except (ValueError, FileNotFoundError) as err:
        print(f"conversion failed: {err}", file=sys.stderr)
        return 2
    print(f"written: {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
