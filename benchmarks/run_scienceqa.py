#!/usr/bin/env python
"""Evaluate a model on ScienceQA (lupantech layout, HF parquet, or the embedded set) under a published protocol.

    python benchmarks/run_scienceqa.py --model DIR --data DIR --output-dir OUT [--protocol scitune|llava|lmms-eval]
        [--conversation simple|model] [--split test] [--batch-size 8] [--limit N] [--temperature 0.7 --seed S]
    python benchmarks/run_scienceqa.py --score-only --predictions FILE --data DIR --output-dir OUT [--protocol P]

Protocols (see modeling_scitune/scienceqa/protocols.py): `scitune` (default; pnnl/SciTune's evaluation: the "simple"
conversation, stop at "###", the answer-prompter second pass, exactly-one "The answer is X." with a seeded random
fallback), `llava` (LLaVA-1.5: CQM-A, image first, direct-answer instruction, its parser) and `lmms-eval`
(`scienceqa_img`: its prompt, 16 new tokens, its scorer). Decoding is greedy unless --temperature is given.
Writes OUT/predictions.jsonl (appended as it goes; a rerun resumes), OUT/answers.jsonl (the original format),
OUT/scores.json (official and SciTune-style categories, parse statuses, errored problems), OUT/report.md and
OUT/accuracy.png.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_parser() -> argparse.ArgumentParser:
    from modeling_scitune.scienceqa.protocols import CONVERSATIONS, IMAGE_NEWLINES, PROTOCOLS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (required unless --score-only)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--protocol", default="scitune", choices=PROTOCOLS)
    parser.add_argument("--conversation", default="simple", choices=CONVERSATIONS,
                        help="scitune protocol: the original evaluation conversation, or the model's own chat template")
    parser.add_argument("--image-newline", default="kept", choices=IMAGE_NEWLINES,
                        help="scitune protocol: tokenize the newline before an image as the published evaluation did "
                             "(kept) or as training did (stripped)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="only the first N problems of the split")
    parser.add_argument("--max-new-tokens", type=int, help="first-pass budget (default: the protocol's)")
    parser.add_argument("--temperature", type=float, default=0.0, help="> 0 samples (the original scitune: 0.7)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed and the scitune fallback's seed")
    parser.add_argument("--allow-images-outside", action="store_true",
                        help="read image paths that leave the data folder (refused by default)")
    parser.add_argument("--compile-decoding", action="store_true",
                        help="static KV cache + compiled language model: the same answers, faster over thousands of "
                             "problems (each new batch shape compiles first)")
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--predictions", help="predictions file to (re)score with --score-only")
    return parser


def main(argv=None):
    from modeling_scitune.scienceqa.evaluate import run_scienceqa
    from modeling_scitune.scienceqa.predictions import PredictionsError
    from modeling_scitune.speed.allocator import keep_freed_memory_for_reuse

    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory_for_reuse()
    if not args.score_only and not args.model:
        parser.error("--model is required unless --score-only")
    for name in ("batch_size", "limit", "max_new_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    try:
        result = run_scienceqa(
            args.model, args.data, args.output_dir, split=args.split, protocol=args.protocol,
            conversation=args.conversation, batch_size=args.batch_size, limit=args.limit,
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed,
            image_newline=args.image_newline, allow_images_outside=args.allow_images_outside,
            score_only=args.score_only, predictions_file=args.predictions, compile_decoding=args.compile_decoding,
        )
    except (PredictionsError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"run_scienceqa: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"protocol": result["protocol"], "official": result["official"],
                      "scitune_style": result["scitune_style"], "parse": result["parse"]["statuses"],
                      "errors": result["counts"]["errors"]}, indent=2))
    print(f"written: {args.output_dir}/scores.json, report.md, accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
