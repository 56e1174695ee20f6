"""The PDF reader on real scientific PDFs: the Debian R vignettes (fetched by the project, never committed)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from modeling_scitune.data.pdf import count_reference_captions, read_layout, read_pdf
from modeling_scitune.data.vignettes import fetch_r_vignettes

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "r-vignettes"
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils is not installed")


@pytest.fixture(scope="module")
def vignettes():
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils is not installed (make setup installs it)")
    try:
        pdfs = fetch_r_vignettes(CACHE)
    except Exception as err:  # no apt-get or no registry access: nothing to read
        pytest.skip(f"cannot fetch the R vignette packages here: {err}")
    return {pdf.name: pdf for pdf in pdfs}


@needs_poppler
def test_finds_90_percent_of_captions_across_the_seven_packages(vignettes):
    reference = found = 0
    per_pdf = {}
    for name, pdf in sorted(vignettes.items()):
        shown = count_reference_captions(pdf)
        result = read_pdf(pdf, ocr=False)
        numbers = {r.meta["figure_number"] for r in result.records} | {s[0].rsplit("-fig", 1)[-1] for s in result.skipped}
        reference += shown
        found += min(len(numbers), shown)
        per_pdf[name] = (shown, result.captions_found, len(result.records))
        for record in result.records:
            x0, y0, x1, y1 = record.meta["bbox_pt"]
            assert y1 <= record.meta["caption_bbox_pt"][1] or record.meta["caption_bbox_pt"][3] - record.meta["caption_bbox_pt"][1] > 100
            pixels = np.asarray(record.load_image().convert("L"))  # the crop, PNG-encoded once
            assert (pixels < 200).mean() > 0.002, f"{record.figure_id}: blank crop"
    assert reference >= 90, per_pdf  # the seven packages show ~100 numbered captions
    assert found >= 0.9 * reference, per_pdf
    kept = sum(v[2] for v in per_pdf.values())
    assert kept >= 0.9 * reference, per_pdf


@needs_poppler
def test_running_text_references_are_not_captions(vignettes):
    """strucchange-intro has lines starting "Figure 3." inside paragraphs; only the 7 real captions are taken."""
    result = read_pdf(vignettes["strucchange-intro.pdf"], ocr=False)
    assert sorted(int(r.meta["figure_number"]) for r in result.records) == [1, 2, 3, 4, 5, 6, 7]
    assert all(not r.caption.lower().startswith(("shows", "and", "the")) for r in result.records)


@needs_poppler
def test_sideways_caption_on_rotated_page(vignettes):
    result = read_pdf(vignettes["residual-shadings.pdf"], ocr=False)
    fig2 = next(r for r in result.records if r.meta["figure_number"] == "2")
    assert fig2.caption.startswith("Upper row: Mosaic plot for the arthritis data")
    assert fig2.load_image().width > fig2.load_image().height  # turned upright (landscape figure)


@needs_poppler
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
def test_one_pdf_end_to_end_with_ocr(vignettes):
    pdf = vignettes["zoo.pdf"]
    result = read_pdf(pdf, ocr=True)
    assert len(result.records) == count_reference_captions(pdf) == 4
    pages = {p.number: p for p in read_layout(pdf)}
    overlaps = 0
    for record in result.records:
        x0, y0, x1, y1 = record.meta["bbox_pt"]
        page = pages[record.source["page"]]
        labels = {w.lower() for line in page.lines if x0 <= line.x0 and line.x1 <= x1 and y0 <= line.y0 and line.y1 <= y1
                  for w in re.findall(r"[A-Za-z]{3,}", line.text)}
        ocr = {w.lower() for token in record.ocr for w in re.findall(r"[A-Za-z]{3,}", token)}
        overlaps += bool(labels & ocr)
        assert record.paragraphs or record.mentions or record.meta["figure_number"]
    assert overlaps >= 3, "OCR text of the crops should overlap the figures' own labels"
    assert sum(len(r.mentions) for r in result.records) >= 3  # body text that cites "Figure N" is linked
