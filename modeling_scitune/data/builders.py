"""The three ways to build a stage-1 instruction dataset: the embedded synthetic corpus, a SciCap challenge file,
scientific PDFs. Each reads its input into figure records, builds the dataset (`build.py`) and saves it with its
card and summary; what `scitune-data` runs and what Python users call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm


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
