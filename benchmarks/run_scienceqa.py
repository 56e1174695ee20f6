#!/usr/bin/env python
"""Evaluate a SciTune checkpoint on ScienceQA (lupantech layout, HF parquet, or the embedded set).

    python benchmarks/run_scienceqa.py --model DIR --data DIR --output-dir OUT [--split test] [--format QCM-LEPA]
        [--batch-size 8] [--limit N] [--random-fallback SEED] [--answer-prompter]
    python benchmarks/run_scienceqa.py --score-only --predictions OUT/predictions.jsonl --data DIR --output-dir OUT

Writes OUT/predictions.jsonl (appended as it goes; a rerun resumes), OUT/scores.json (official and SciTune-style
categories, per grade / topic, parse failures, errored problems), OUT/report.md and OUT/accuracy.png.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None):
    from modeling_scitune.scienceqa.evaluate import run_scienceqa
    from modeling_scitune.scienceqa.formats import FORMATS
    from modeling_scitune.training.allocator import keep_freed_memory_for_reuse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="SciTune folder (required unless --score-only)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--format", default="QCM-LEPA", choices=FORMATS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--random-fallback", type=int, metavar="SEED",
                        help="score unparseable answers as a seeded random option (the paper's behaviour)")
    parser.add_argument("--answer-prompter", action="store_true", help="second pass asking for the answer letter")
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--predictions", help="predictions file to (re)score with --score-only")
    args = parser.parse_args(argv)
    keep_freed_memory_for_reuse()
    if not args.score_only and not args.model:
        parser.error("--model is required unless --score-only")
    result = run_scienceqa(
        args.model, args.data, args.output_dir, split=args.split, fmt=args.format, batch_size=args.batch_size,
        limit=args.limit, max_new_tokens=args.max_new_tokens, random_fallback=args.random_fallback,
        use_answer_prompter=args.answer_prompter, score_only=args.score_only, predictions_file=args.predictions,
    )
    print(json.dumps({"official": result["official"], "scitune_style": result["scitune_style"],
                      "parse_failures": result["parse_failures"], "errors": result["counts"]["errors"]}, indent=2))
    print(f"written: {args.output_dir}/scores.json, report.md, accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
