#!/usr/bin/env python
"""Teacher-forced answer-letter accuracy on ScienceQA: the option lookup alone, without generation.

    python benchmarks/run_letter_lookup.py --model DIR --data SQA_DIR [--split test] [--limit N] [--output FILE.json]

Each problem's gold lecture and solution are given; the model's letter is its argmax over the problem's option letters
(see modeling_scitune/scienceqa/letter_lookup.py). Prints and optionally writes the accuracy per category.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None):
    from modeling_scitune.evaluation.generation import load_model
    from modeling_scitune.scienceqa import load_scienceqa
    from modeling_scitune.scienceqa.letter_lookup import letter_lookup_report, teacher_forced_letters

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="a ScienceQA folder (lupantech layout or parquet)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--output", help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    model, processor = load_model(args.model)
    problems = load_scienceqa(args.data, args.split).problems[:args.limit]
    report = {"model": args.model, "split": args.split,
              **letter_lookup_report(problems, teacher_forced_letters(model, processor, problems))}
    print(json.dumps(report, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
