"""`scitune-data`: build SciTune instruction datasets from the embedded corpus, SciCap JSON or scientific PDFs.

Each sub-command shows a progress bar, prints a per-input summary and writes `OUT/summary.json`, the dataset
(`save_to_disk` + `parquet/`) and its card (`OUT/README.md`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from .instructions import VARIANTS


def build_synthetic(n: int, out: str | Path, seed: int = 0, variant: str = "CTOM", workers: int = 2) -> dict:
    """The embedded corpus: `n` figures (5 balanced types), train/validation/test splits."""
    from .build import BuildReport, build_dataset, save_dataset
    from .synthetic import generate_synthetic_records, split_of

    input_name = f"synthetic (seed {seed})"
    report = BuildReport()

    def records():
        for index, record in enumerate(generate_synthetic_records(n, seed=seed, workers=workers)):
            report.found(input_name)
            yield split_of(index, n, seed), input_name, record

    dataset, report = build_dataset(records(), variant=variant, seed=seed, report=report)
    return save_dataset(
        dataset, report, out, variant=variant, source="synthetic", source_license="cc-by-4.0",
        description=(f"{n} synthetic scientific figures (Graph Plot, Scatterplot, Bar Chart, Node Diagram, Equation) "
                     f"drawn with matplotlib by `scitune-data synthetic --seed {seed}`, with captions, OCR text, "
                     "paragraphs and mentions written from what each figure shows."),
        extra={"seed": seed, "n": n},
    )


def build_scicap(json_path: str, images: str, out: str | Path, variant: str = "CTOM", split: str = "train",
                 allow_images_outside: bool = False) -> dict:
    from .build import BuildReport, build_dataset, save_dataset
    from .scicap import Skipped, read_scicap

    report = BuildReport()
    input_name = Path(json_path).name

    def records():
        for item in tqdm(read_scicap(json_path, images, allow_images_outside), desc=f"reading {input_name}",
                         unit="fig"):
            if isinstance(item, Skipped):
                report.skip(input_name, item.item_id, item.reason, item.detail)
                continue
            report.found(input_name)
            yield split, input_name, item

    dataset, report = build_dataset(records(), variant=variant, report=report)
    return save_dataset(dataset, report, out, variant=variant, source="SciCap challenge",
                        source_license="cc-by-nc-sa-4.0",
                        description=f"SciTune instructions built from SciCap challenge file `{input_name}`.")


def _pdf_files(paths: list[str]) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(path.rglob("*.pdf"))
        else:
            yield path


def build_pdfs(paths: list[str], out: str | Path, variant: str = "CTOM", ocr: bool = True) -> dict:
    from .build import BuildReport, build_dataset, save_dataset
    from .pdf import count_reference_captions, read_pdf

    report = BuildReport()
    reference = {}

    def records():
        for pdf in tqdm(list(_pdf_files(paths)), desc="reading PDFs", unit="pdf"):
            if not pdf.is_file():
                report.skip(pdf.name, pdf.name, "missing_file", f"{pdf} does not exist")
                continue
            result = read_pdf(pdf, ocr=ocr)
            report.found(pdf.name, result.captions_found)
            reference[pdf.name] = count_reference_captions(pdf) if result.captions_found or not result.skipped else 0
            for item_id, reason, detail in result.skipped:
                report.skip(pdf.name, item_id, reason, detail)
            for record in result.records:
                yield "train", pdf.name, record

    dataset, report = build_dataset(records(), variant=variant, report=report)
    return save_dataset(dataset, report, out, variant=variant, source="scientific PDFs", source_license="other",
                        description="SciTune instructions built from the captioned figures of scientific PDFs "
                                    "(figure crops rendered with poppler, OCR by tesseract; figure type unknown).",
                        extra={"reference_captions": reference})


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
