"""`scitune-data`: build SciTune instruction datasets from the embedded corpus, SciCap JSON or scientific PDFs.

Each sub-command shows a progress bar, prints a per-input summary and writes `OUT/summary.json`, the dataset
(`save_to_disk` + `parquet/`) and its card (`OUT/README.md`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .builders import build_pdfs, build_scicap, build_synthetic
from .instructions import VARIANTS


def print_summary(summary: dict, out: str | Path):
    report = summary["report"]
    print(f"\n{'input':<40} {'captions':>9} {'kept':>6} {'mentions':>9}")
    for name, counts in report["inputs"].items():
        print(f"{name[:40]:<40} {counts['captions_found']:>9} {counts['figures_kept']:>6} {counts['mentions_linked']:>9}")
    print(f"splits: {json.dumps(summary['splits'])}")
    print(f"skipped by reason: {json.dumps(report['skipped_by_reason']) if report['skipped_by_reason'] else 'none'}")
    print(f"written: {out} (save_to_disk, parquet/, README.md, summary.json)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="scitune-data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthetic", help="the embedded synthetic figure corpus")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=VARIANTS, default="CTOM")
    p.add_argument("--workers", type=int, default=2)

    p = sub.add_parser("scicap", help="a SciCap challenge JSON file and its image folder")
    p.add_argument("--json", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="CTOM")
    p.add_argument("--split", default="train")
    p.add_argument("--allow-images-outside", action="store_true",
                   help="read image paths that leave the --images folder (../x.png, absolute paths)")

    p = sub.add_parser("pdf", help="scientific PDFs (files or folders)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="CTOM")
    p.add_argument("--no-ocr", action="store_true", help="skip tesseract OCR of the crops")

    p = sub.add_parser("fetch-vignettes", help="download the Debian R vignette PDFs used to develop the PDF reader")
    p.add_argument("--dest", default=".cache/r-vignettes")

    p = sub.add_parser("sqa-synthetic", help="the embedded ScienceQA-format set (lupantech layout)")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)

    args = parser.parse_args(argv)
    for name in ("n", "workers"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.command == "fetch-vignettes":
        from .vignettes import fetch_r_vignettes

        pdfs = fetch_r_vignettes(args.dest)
        print(f"{len(pdfs)} PDFs under {Path(args.dest) / 'extract'}")
        return 0
    if args.command == "sqa-synthetic":
        from ..scienceqa.synthetic import write_synthetic_scienceqa

        summary = write_synthetic_scienceqa(args.n, args.out, seed=args.seed, workers=args.workers)
        print(json.dumps(summary["counts"], indent=2))
        print(f"written: {args.out} (problems.json, pid_splits.json, images/)")
        return 0
    from .build import NothingKept

    builders = {
        "synthetic": lambda: build_synthetic(args.n, args.out, args.seed, args.variant, args.workers),
        "scicap": lambda: build_scicap(args.json, args.images, args.out, args.variant, args.split,
                                       args.allow_images_outside),
        "pdf": lambda: build_pdfs(args.paths, args.out, args.variant, ocr=not args.no_ocr),
    }
    try:
        summary = builders[args.command]()
    except NothingKept as err:  # the summary and card are written; nothing usable was found
        print(f"scitune-data {args.command}: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # the input file itself is unusable
        print(f"scitune-data {args.command}: {err}", file=sys.stderr)
        return 2
    print_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
