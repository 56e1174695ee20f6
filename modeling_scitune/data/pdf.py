"""Scientific PDFs -> figure records: numbered captions, cropped figure regions, linked mentions, OCR.

Uses poppler (`pdftotext -bbox-layout` for words with coordinates, `pdftoppm` to render pages) and tesseract for
OCR of each crop. Vector figures have no embedded images, so the figure region is found from the text layout:
it lies between the caption and the nearest *body text* above it (wide, sentence-like lines, R code, or the running
header), within the caption's column. Running-text references that happen to start a line ("Figure 3. shows ...")
are not captions: a caption starts its own block, or uses the "Figure N:" form. Figure type is left unknown.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .records import FigureRecord

CAPTION_START = re.compile(r"^(?:Figure|Fig\.?)\s*(\d+(?:\.\d+)*)\s*([:.])(?!\d)\s*(.*)$")
REFERENCE = r"\b(?:Figures?|Figs?\.?)\s*(?:\d+\s*(?:,|and|&|-|–)\s*)*{n}\b(?![.:]?\d)"
RENDER_DPI = 200


@dataclass
class Line:
    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    block: int
    first_in_block: bool
    words: int = 0
    median_gap: float = 0.0  # median horizontal gap between words (pt): prose ~ a space, axis tick rows much wider
    direction: int = 0  # 0 horizontal; +1 vertical top-to-bottom, -1 bottom-to-top (rotated landscape pages)


@dataclass
class Page:
    number: int
    width: float
    height: float
    lines: list[Line] = field(default_factory=list)


def tool_available(name: str) -> bool:
    return shutil.which(name) is not None


def read_layout(pdf: Path) -> list[Page]:
    """Pages with their text lines and boxes (points), from `pdftotext -bbox-layout`."""
    result = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"pdftotext failed on {pdf}: {result.stderr.decode(errors='replace')[-300:]}")
    text = result.stdout.decode("utf-8", errors="replace")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)  # ligature glyphs some TeX fonts map to controls
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text).replace('xmlns="http://www.w3.org/1999/xhtml"', "")
    root = ET.fromstring(text)
    pages = []
    block_id = 0
    for number, page_el in enumerate(root.iter("page"), start=1):
        page = Page(number, float(page_el.get("width")), float(page_el.get("height")))
        for block_el in page_el.iter("block"):
            block_id += 1
            for i, line_el in enumerate(block_el.iter("line")):
                word_els = list(line_el.iter("word"))
                words = [w.text or "" for w in word_els]
                gaps = sorted(float(b.get("xMin")) - float(a.get("xMax")) for a, b in zip(word_els, word_els[1:]))
                box = [float(line_el.get(k)) for k in ("xMin", "yMin", "xMax", "yMax")]
                direction = 0
                if len(word_els) > 1 and box[3] - box[1] > 3 * (box[2] - box[0]):
                    direction = 1 if float(word_els[-1].get("yMin")) > float(word_els[0].get("yMin")) else -1
                page.lines.append(Line(number, *box, text=" ".join(words).strip(), block=block_id,
                                       first_in_block=i == 0, words=len(words),
                                       median_gap=gaps[len(gaps) // 2] if gaps else 0.0, direction=direction))
        pages.append(page)
    return pages


def count_reference_captions(pdf: Path) -> int:
    """Distinct "Figure N:" / "Fig. N:" caption lines that `pdftotext -layout` shows (the yardstick for recall)."""
    result = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, timeout=300)
    pattern = r"(?m)^\s*(?:Figure|Fig\.)\s*(\d+(?:\.\d+)*)\s*:"
    numbers = set(re.findall(pattern, result.stdout.decode(errors="replace")))
    return len(numbers)


def _is_body_text(line: Line, page: Page) -> bool:
    """Running text, code or page furniture: what bounds a figure region from above."""
    if line.y1 < page.height * 0.12:  # running header
        return True
    if line.text.startswith(("R> ", "> ", "+ ")) and line.words >= 2:  # R code in a vignette
        return True
    height = max(line.y1 - line.y0, 1.0)
    words = [w.strip(".,;:()[]'\"") for w in line.text.split()]
    prose_words = sum(w.isalpha() and w.islower() for w in words)  # "the", "and", ...: tick rows have none
    return (line.words >= 6 and (line.x1 - line.x0) > 0.3 * page.width and line.median_gap < 0.8 * height
            and prose_words >= 3 and prose_words >= 0.4 * len(words))


def find_captions(page: Page) -> list[tuple[str, list[Line]]]:
    """(figure number, caption lines) for every caption on the page."""
    lines = sorted(page.lines, key=lambda l: (round(l.y0), l.x0))
    captions = []
    for index, line in enumerate(lines):
        match = CAPTION_START.match(line.text)
        if not match:
            continue
        # "Figure 3. shows" inside a paragraph is a reference; a caption starts a block or uses the colon form.
        if match.group(2) == "." and not line.first_in_block:
            continue
        if not match.group(3) and match.group(2) == ".":
            following = [l for l in lines if l.y0 > line.y1 - 1 and abs(l.y0 - line.y0) < 2 and l.x0 > line.x1]
            if not following:
                continue
        if line.direction:  # caption printed sideways in the margin of a rotated page: next lines run away from the figure
            width, step = line.x1 - line.x0, -line.direction
            side = sorted((l for l in lines if l.direction == line.direction and l is not line and
                           (l.x0 - line.x0) * step > 0 and l.y0 < line.y1 and l.y1 > line.y0),
                          key=lambda l: (l.x0 - line.x0) * step)
            caption_lines, edge = [line], line.x0
            for follower in side:
                if abs(follower.x0 - edge) > 2 * width:
                    break
                caption_lines.append(follower)
                edge = follower.x0
            captions.append((match.group(1), caption_lines))
            continue
        caption_lines = [line] + [l for l in lines if l is not line and abs(l.y0 - line.y0) < 2 and l.x0 > line.x0]
        height = max(line.y1 - line.y0, 6.0)
        bottom = line.y1
        left = min(l.x0 for l in caption_lines)
        for follower in lines[index + 1:]:
            if follower in caption_lines or follower.y0 < bottom - 1:
                continue
            if follower.y0 - bottom > 0.9 * height or CAPTION_START.match(follower.text) or len(caption_lines) > 12:
                break
            if follower.x0 >= left - 20:
                caption_lines.append(follower)
                bottom = max(bottom, follower.y1)
        captions.append((match.group(1), caption_lines))
    return captions


def figure_region(page: Page, caption: list[Line]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in points: from the nearest body text above the caption down to the caption, in its column.

    On a rotated (landscape) page the caption runs up the margin and "above" it means towards the page edge it faces.
    """
    if caption[0].direction:
        y0, y1 = min(l.y0 for l in caption), max(l.y1 for l in caption)
        if caption[0].direction == -1:  # reads bottom-to-top: the figure is left of the caption
            return page.width * 0.04, y0, min(l.x0 for l in caption) - 1, y1
        return max(l.x1 for l in caption) + 1, y0, page.width * 0.96, y1
    top_of_caption = min(l.y0 for l in caption)
    cap_x0, cap_x1 = min(l.x0 for l in caption), max(l.x1 for l in caption)
    # A caption inside one half of the page belongs to a column; a centred one (even a short one) spans the page.
    two_column = cap_x1 < page.width * 0.55 or cap_x0 > page.width * 0.45
    x0, x1 = (cap_x0 - 10, cap_x1 + 10) if two_column else (page.width * 0.05, page.width * 0.95)
    above = [l for l in page.lines if l.y1 <= top_of_caption - 1 and l.x1 > x0 and l.x0 < x1]
    bounds = [l.y1 for l in above if _is_body_text(l, page)]
    y0 = max(bounds) + 2 if bounds else page.height * 0.06
    return x0, y0, x1, top_of_caption - 1


def mention_sentences(pages: list[Page], number: str, caption_blocks: set[int]) -> tuple[list[str], list[str]]:
    """Body paragraphs (text blocks) that refer to figure `number`, and the sentences that do."""
    pattern = re.compile(REFERENCE.format(n=re.escape(number)))
    paragraphs, mentions = [], []
    for page in pages:
        blocks: dict[int, list[str]] = {}
        for line in page.lines:
            if line.block not in caption_blocks:
                blocks.setdefault(line.block, []).append(line.text)
        for block_lines in blocks.values():
            text = re.sub(r"-\s+(?=[a-z])", "", " ".join(block_lines))
            if len(text.split()) < 8 or not pattern.search(text):
                continue
            paragraphs.append(text)
            mentions += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if pattern.search(s)]
    return paragraphs, mentions


def render_page(pdf: Path, page: int, dpi: int, workdir: Path) -> Image.Image:
    prefix = workdir / f"page-{page}"
    subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-png", "-singlefile",
                    str(pdf), str(prefix)], check=True, capture_output=True, timeout=300)
    return Image.open(f"{prefix}.png").convert("RGB")


def trim_whitespace(image: Image.Image, threshold: int = 245, pad: int = 4) -> Image.Image | None:
    """Crop to the non-white content; None when nothing is drawn."""
    pixels = np.asarray(image.convert("L"))
    ys, xs = np.nonzero(pixels < threshold)
    if len(xs) < 50:
        return None
    box = (max(xs.min() - pad, 0), max(ys.min() - pad, 0), min(xs.max() + pad + 1, image.width), min(ys.max() + pad + 1, image.height))
    return image.crop(box)


def png_bytes(image: Image.Image) -> bytes:
    """The crop encoded once: the same bytes go to OCR and into the dataset row."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ocr_tokens(png: bytes) -> list[str]:
    """Words tesseract reads in the crop (sparse-text mode, suited to plots), [] when tesseract is missing."""
    if not tool_available("tesseract"):
        return []
    result = subprocess.run(["tesseract", "stdin", "-", "--psm", "11"], input=png, capture_output=True, timeout=120)
    return [token for token in result.stdout.decode(errors="replace").split() if any(c.isalnum() for c in token)]


@dataclass
class PdfResult:
    records: list[FigureRecord]
    captions_found: int
    skipped: list[tuple[str, str, str]]  # (id, reason, detail)


def read_pdf(pdf: str | Path, ocr: bool = True, dpi: int = RENDER_DPI) -> PdfResult:
    """All captioned figures of one PDF as records (image = crop), plus what was skipped and why."""
    pdf = Path(pdf)
    try:
        pages = read_layout(pdf)
    except (RuntimeError, ET.ParseError) as err:
        return PdfResult([], 0, [(pdf.stem, "unreadable_pdf", str(err)[:300])])
    if not any(line.text for page in pages for line in page.lines):
        return PdfResult([], 0, [(pdf.stem, "no_text_layer", f"{pdf.name}: no extractable text (scanned?)")])
    found: dict[str, tuple[Page, list[Line]]] = {}
    for page in pages:
        for number, caption in find_captions(page):
            found.setdefault(number, (page, caption))
    caption_blocks = {line.block for _, caption in found.values() for line in caption}
    records, skipped = [], []
    with tempfile.TemporaryDirectory() as workdir:
        rendered: dict[int, Image.Image] = {}
        for number, (page, caption) in sorted(found.items(), key=lambda item: [int(p) for p in item[0].split(".")]):
            figure_id = f"{pdf.stem}-fig{number}"
            text = " ".join(line.text for line in caption)
            caption_text = CAPTION_START.sub(r"\3", text).strip()
            x0, y0, x1, y1 = figure_region(page, caption)
            if y1 - y0 < 20:
                skipped.append((figure_id, "no_figure_region", f"page {page.number}: no room above the caption"))
                continue
            if page.number not in rendered:
                rendered[page.number] = render_page(pdf, page.number, dpi, Path(workdir))
            image = rendered[page.number]
            scale = image.width / page.width
            crop = trim_whitespace(image.crop(tuple(int(v * scale) for v in (x0, y0, x1, y1))))
            if crop is not None and caption[0].direction:  # turn a sideways figure upright
                crop = crop.rotate(90 * caption[0].direction, expand=True)
            if crop is None or crop.width < 40 or crop.height < 40:
                skipped.append((figure_id, "blank_crop", f"page {page.number}: nothing drawn above the caption"))
                continue
            paragraphs, mentions = mention_sentences(pages, number, caption_blocks)
            png = png_bytes(crop)
            records.append(FigureRecord(
                figure_id=figure_id, image=png, caption=caption_text, figure_type=None,
                ocr=ocr_tokens(png) if ocr else [], paragraphs=paragraphs, mentions=mentions,
                source={"paper_id": pdf.stem, "file": pdf.name, "page": page.number},
                meta={"figure_number": number, "bbox_pt": [round(v, 1) for v in (x0, y0, x1, y1)],
                      "caption_bbox_pt": [round(min(l.x0 for l in caption), 1), round(min(l.y0 for l in caption), 1),
                                          round(max(l.x1 for l in caption), 1), round(max(l.y1 for l in caption), 1)]},
            ))
    return PdfResult(records, len(found), skipped)
