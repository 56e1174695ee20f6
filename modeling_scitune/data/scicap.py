"""SciCap challenge JSON (+ image folder) -> figure records.

Layout of the 1st SciCap Challenge release (CrowdAILab/scicap): `images` records with `id`, `file_name`,
`figure_type`, `ocr` (list of strings), and `annotations` records with `image_id`, `caption_no_index`,
`paragraph` (list) and `mention` (list of lists). Images live in a separate folder, named by `file_name`.

The reader never stops on one bad entry: it yields a `Skipped` (id, reason, detail) in its place, which the builder
counts and lists. A field of the wrong type is passed on as it is, and record validation names it
(`wrong_field_type`). An image path that leaves the image folder (`../x.png`, an absolute path) is refused unless
`allow_outside_images=True`: such files would otherwise be embedded in the dataset and published with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .records import FigureRecord


@dataclass(frozen=True)
class Skipped:
    """An input item that produced no record, with a short countable reason."""

    item_id: str
    reason: str
    detail: str


def _flatten(value):
    """SciCap's nested lists of strings -> one list; anything else is returned as it is, for validation to name."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        flat = _flatten(item)
        if not isinstance(flat, list):
            return value
        out.extend(flat)
    return out


def resolve_inside(root: Path, name: str, allow_outside: bool = False) -> Path | None:
    """`root / name`, or None when that path leaves `root` (unless allowed)."""
    path = (root / name)
    if allow_outside:
        return path
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return path


def read_scicap(json_path: str | Path, images_dir: str | Path,
                allow_outside_images: bool = False) -> Iterator[FigureRecord | Skipped]:
    """One record per `images` entry (or a `Skipped`); a figure without annotation gets an empty caption (skipped
    downstream). The first entry of an id counts; later duplicates of images or annotations are skipped and listed."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    try:
        data = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{json_path}: cannot read the SciCap file ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{json_path}: not a SciCap challenge file (expected an object with an 'images' list)")
    annotations = {}
    for annotation in data.get("annotations") or []:
        if not isinstance(annotation, dict):
            yield Skipped("?", "malformed_annotation", f"annotation is a {type(annotation).__name__}, not an object")
            continue
        key = str(annotation.get("image_id"))
        if key in annotations:
            yield Skipped(key, "duplicate_annotation", f"a second annotation of image {key}: the first one is used")
            continue
        annotations[key] = annotation
    seen = set()
    for entry in data["images"]:
        if not isinstance(entry, dict):
            yield Skipped("?", "malformed_entry", f"image entry is a {type(entry).__name__}, not an object")
            continue
        file_name = entry.get("file_name") or ""
        figure_id = str(entry.get("id", file_name))
        if figure_id in seen:
            yield Skipped(figure_id, "duplicate_id", f"image id {figure_id} appears again ({file_name}): the first "
                                                     "entry is used")
            continue
        seen.add(figure_id)
        image = None
        if file_name:
            if not isinstance(file_name, str):
                yield Skipped(figure_id, "wrong_field_type", f"file_name must be a string, got {file_name!r}")
                continue
            image = resolve_inside(images_dir, file_name, allow_outside_images)
            if image is None:
                yield Skipped(figure_id, "path_outside_root", f"{file_name} is outside {images_dir} (pass "
                                                               "--allow-images-outside to read it)")
                continue
        annotation = annotations.get(figure_id, {})
        yield FigureRecord(
            figure_id=figure_id,
            image=image,
            caption=annotation.get("caption_no_index") or "",
            figure_type=entry.get("figure_type") or None,
            ocr=_flatten(entry.get("ocr")),
            paragraphs=_flatten(annotation.get("paragraph")),
            mentions=_flatten(annotation.get("mention")),
            source={"paper_id": str(entry.get("paper_id", "")), "file": str(file_name), "page": 0},
        )
