"""SciCap challenge JSON (+ image folder) -> figure records.

Layout of the 1st SciCap Challenge release (CrowdAILab/scicap): `images` records with `id`, `file_name`,
`figure_type`, `ocr` (list of strings), and `annotations` records with `image_id`, `caption_no_index`,
`paragraph` (list) and `mention` (list of lists). Images live in a separate folder, named by `file_name`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .records import FigureRecord


def _flatten(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out = []
    for item in value:
        out.extend(_flatten(item))
    return out


def read_scicap(json_path: str | Path, images_dir: str | Path) -> Iterator[FigureRecord]:
    """One record per `images` entry; a figure without annotation gets an empty caption (skipped downstream)."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    data = json.loads(json_path.read_text())
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError(f"{json_path}: not a SciCap challenge file (expected an object with an 'images' list)")
    annotations = {}
    for annotation in data.get("annotations", []):
        annotations.setdefault(annotation.get("image_id"), annotation)
    for entry in data["images"]:
        annotation = annotations.get(entry.get("id"), {})
        file_name = entry.get("file_name") or ""
        yield FigureRecord(
            figure_id=str(entry.get("id", file_name)),
            image=images_dir / file_name if file_name else None,
            caption=annotation.get("caption_no_index") or "",
            figure_type=entry.get("figure_type") or None,
            ocr=_flatten(entry.get("ocr")),
            paragraphs=_flatten(annotation.get("paragraph")),
            mentions=_flatten(annotation.get("mention")),
            source={"paper_id": str(entry.get("paper_id", "")), "file": file_name, "page": 0},
        )
