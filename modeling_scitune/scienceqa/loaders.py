"""Load ScienceQA problems from the lupantech layout or the Hugging Face parquet layout (local files only).

lupantech (github.com/lupantech/ScienceQA): `problems.json` (pid -> record), `pid_splits.json` (split -> pids),
`images/{split}/{pid}/image.png`. HF parquet (derek-thomas/ScienceQA, lmms-lab/ScienceQA): columns image, question,
choices, answer, hint, task, grade, subject, topic, category, skill, lecture, solution; no pid, so rows get
`{split}-{row}` ids. Malformed records are not dropped: they come back in `errors` with their ids. A split that lists
a pid twice is used once (and the repeat reported in `notes`); an image path that leaves the data folder is refused
unless `allow_outside_images=True`. A file that cannot be read at all is a `ScienceQALayoutError` (one line).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..data.scicap import resolve_inside
from .problems import Problem, validate_problem

# Fields some ScienceQA-format sets add (the embedded set names each image's figure type), kept in Problem.extra.
EXTRA_FIELDS = ("figure_type",)
FIELDS = ("hint", "task", "grade", "subject", "topic", "category", "skill", "lecture", "solution")


class ScienceQALayoutError(ValueError):
    """The ScienceQA files cannot be read as a whole (missing, wrong shape, unknown split)."""


@dataclass
class LoadResult:
    problems: list[Problem]
    errors: list[dict] = field(default_factory=list)  # {"pid", "reason"}
    notes: list[str] = field(default_factory=list)  # what was repaired while loading (duplicate pids)

    def add(self, pid: str, record: dict, image, split: str) -> None:
        """One record as a validated Problem (ValueError / TypeError naming what is malformed)."""
        problem = Problem(pid=pid, question=record.get("question"), choices=record.get("choices"),
                          answer=record.get("answer"), image=image, split=split,
                          **{key: record.get(key) or "" for key in FIELDS},
                          extra={key: record[key] for key in EXTRA_FIELDS if isinstance(record.get(key), str)})
        validate_problem(problem)
        self.problems.append(problem)

    def broken_problems(self) -> list[Problem]:
        """Stand-ins for malformed records so they are scored (as failed) instead of vanishing."""
        return [Problem(pid=e["pid"], question="", choices=["", ""], answer=-1, extra={"error": e["reason"]})
                for e in self.errors]


def _read_json(path: Path, expected: type, what: str):
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ScienceQALayoutError(f"{path}: cannot read {what} ({err})") from err
    if not isinstance(value, expected):
        raise ScienceQALayoutError(f"{path} must hold {what} (a JSON {expected.__name__}), got a "
                                   f"{type(value).__name__}")
    return value


def load_lupantech(data_dir: str | Path, split: str = "test", allow_outside_images: bool = False) -> LoadResult:
    data_dir = Path(data_dir)
    problems_path = data_dir / "problems.json"
    if not problems_path.is_file():
        raise ScienceQALayoutError(f"{problems_path} not found: expected the lupantech ScienceQA layout "
                                   "(problems.json, pid_splits.json, images/{split}/{pid}/image.png)")
    records = _read_json(problems_path, dict, "pid -> problem objects")
    splits_path = data_dir / "pid_splits.json"
    if splits_path.is_file():
        splits = _read_json(splits_path, dict, "split name -> list of pids")
        if split not in splits:
            raise ScienceQALayoutError(f"split {split!r} is not in {splits_path} (it has: {', '.join(splits)})")
        pids = splits[split]
        if not isinstance(pids, list):
            raise ScienceQALayoutError(f"{splits_path}: split {split!r} must be a list of pids")
    else:
        pids = [pid for pid, record in records.items() if isinstance(record, dict) and record.get("split") == split]
        if not pids:
            raise ScienceQALayoutError(f"no problem of {problems_path} has split {split!r} (and there is no "
                                       "pid_splits.json)")
    result = LoadResult([])
    unique = list(dict.fromkeys(map(str, pids)))
    if len(unique) < len(pids):
        repeated = sorted({str(p) for p in pids if list(map(str, pids)).count(str(p)) > 1})
        result.notes.append(f"split {split!r} lists {len(pids) - len(unique)} pid(s) more than once "
                            f"({', '.join(repeated[:10])}): each is scored once")
    for pid in unique:
        record = records.get(pid)
        if not isinstance(record, dict):
            result.errors.append({"pid": pid, "reason": "malformed_record: not in problems.json or not an object"})
            continue
        try:
            image = None
            if record.get("image"):
                if not isinstance(record["image"], str):
                    raise TypeError(f"image must be a file name, got {record['image']!r}")
                image = resolve_inside(data_dir / "images" / split / pid, record["image"], allow_outside_images)
                if image is None:
                    raise ValueError(f"image path {record['image']!r} leaves the data folder {data_dir} (pass "
                                     "--allow-images-outside to read it)")
            result.add(pid, record, image, split)
        except (TypeError, ValueError) as err:
            result.errors.append({"pid": pid, "reason": f"malformed_record: {err}"})
    return result


def load_hf_parquet(path: str | Path, split: str = "test", allow_outside_images: bool = False) -> LoadResult:
    """A parquet file, or a folder holding `{split}*.parquet` / `data/{split}-*.parquet`, read with `datasets`."""
    import datasets

    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob(f"{split}*.parquet")) or sorted(path.rglob(f"*{split}*.parquet"))
        if not files and split == "validation":
            files = sorted(path.rglob("val*.parquet"))
        if not files:
            raise ScienceQALayoutError(f"no parquet file for split {split!r} under {path}")
    else:
        files = [path]
    table = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    table = table.cast_column("image", datasets.Image(decode=False)) if "image" in table.column_names else table
    result = LoadResult([])
    for row_index, row in enumerate(table):
        pid = str(row.get("pid") or row.get("id") or f"{split}-{row_index}")
        try:
            image = None
            if row.get("image"):
                image_data = row["image"]
                if image_data.get("bytes"):
                    image = Image.open(io.BytesIO(image_data["bytes"]))
                else:
                    root = path if path.is_dir() else path.parent
                    image = resolve_inside(root, image_data.get("path") or "", allow_outside_images)
                    if image is None:
                        raise ValueError(f"image path {image_data.get('path')!r} leaves {root}")
            result.add(pid, {**row, "choices": list(row.get("choices") or [])}, image, split)
        except (TypeError, ValueError, OSError, Image.DecompressionBombError) as err:
            result.errors.append({"pid": pid, "reason": f"malformed_record: {err}"})
    return result


def load_scienceqa(path: str | Path, split: str = "test", allow_outside_images: bool = False) -> LoadResult:
    """Pick the loader by what `path` holds."""
    path = Path(path)
    if (path / "problems.json").is_file():
        return load_lupantech(path, split, allow_outside_images)
    if not path.exists():
        raise ScienceQALayoutError(f"{path} does not exist: give the lupantech folder (problems.json, "
                                   "pid_splits.json, images/) or a parquet file / folder")
    return load_hf_parquet(path, split, allow_outside_images)
