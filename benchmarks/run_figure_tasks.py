#!/usr/bin/env python
"""Figure-type classification (with a confusion matrix) and captioning (Google-BLEU, ROUGE-L) on an instruction set.

    python benchmarks/run_figure_tasks.py --model DIR --data DATASET_DIR --output-dir OUT [--split test] [--limit N]

Writes OUT/figure_tasks.json, OUT/figure_predictions.jsonl and OUT/confusion.png.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None):
    from modeling_scitune.evaluation.figure_tasks import run_figure_tasks
    from modeling_scitune.speed.allocator import keep_freed_memory_for_reuse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="a dataset folder written by `scitune-data`")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args(argv)
    keep_freed_memory_for_reuse()
    result = run_figure_tasks(args.model, args.data, args.output_dir, split=args.split, limit=args.limit,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    print(json.dumps({k: result[k] for k in ("figure_type_accuracy", "chance", "per_type_accuracy", "google_bleu",
                                              "rougeL", "examples")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
