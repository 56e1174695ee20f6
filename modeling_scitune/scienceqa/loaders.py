"""Load ScienceQA problems from the lupantech layout or the Hugging Face parquet layout (local files only).

lupantech (github.com/lupantech/ScienceQA): `problems.json` (pid -> record), `pid_splits.json` (split -> pids),
`images/{split}/{pid}/image.png`. HF parquet (derek-thomas/ScienceQA, lmms-lab/ScienceQA): columns image, question,
choices, answer, hint, task, grade, subject, topic, category, skill, lecture, solution; no pid, so rows get
`{split}-{row}` ids. Malformed records are not dropped: they come back in `errors` with their ids.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .problems import Problem, validate_problem

FIELDS = ("hint", "task", "grade", "subject", "topic", "category", "skill", "lecture", "solution")


@dataclass
class LoadResult:
    problems: list[Problem]
    errors: list[dict] = field(default_factory=list)  # {"pid", "reason"}

    def broken_problems(self) -> list[Problem]:
        """Stand-ins for malformed records so they are scored (as failed) instead of vanishing."""
        return [Problem(pid=e["pid"], question="", choices=["", ""], answer=-1, extra={"error": e["reason"]})
                for e in self.errors]


def load_lupantech(data_dir: str | Path, split: str = "test") -> LoadResult:
    data_dir = Path(data_dir)
    problems_path = data_dir / "problems.json"
    if not problems_path.is_file():
        raise FileNotFoundError(f"{problems_path} not found: expected the lupantech ScienceQA layout "
                                "(problems.json, pid_splits.json, images/{split}/{pid}/image.png)")
    records = json.loads(problems_path.read_text())
    splits_path = data_dir / "pid_splits.json"
    if splits_path.is_file():
        pids = json.loads(splits_path.read_text()).get(split)
        if pids is None:
            raise KeyError(f"split {split!r} is not in {splits_path}")
    else:
        pids = [pid for pid, record in records.items() if isinstance(record, dict) and record.get("split") == split]
    result = LoadResult([])
    for pid in map(str, pids):
        record = records.get(pid)
        if not isinstance(record, dict):
            result.errors.append({"pid": pid, "reason": "malformed_record: not in problems.json or not an object"})
            continue
        try:
            image = None
            if record.get("image"):
                image = data_dir / "images" / split / pid / record["image"]
            problem = Problem(
                pid=pid, question=record.get("question"), choices=record.get("choices"), answer=record.get("answer"),
                image=image, split=split, **{key: record.get(key) or "" for key in FIELDS},
            )
            validate_problem(problem)
        except (TypeError, ValueError) as err:
            result.errors.append({"pid": pid, "reason": f"malformed_record: {err}"})
            continue
        result.problems.append(problem)
    return result


def load_hf_parquet(path: str | Path, split: str = "test") -> LoadResult:
    """A parquet file, or a folder holding `{split}*.parquet` / `data/{split}-*.parquet`, read with `datasets`."""
    import datasets

    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob(f"{split}*.parquet")) or sorted(path.rglob(f"*{split}*.parquet"))
        if not files and split == "validation":
            files = sorted(path.rglob("val*.parquet"))
        if not files:
            raise FileNotFoundError(f"no parquet file for split {split!r} under {path}")
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
                image = Image.open(io.BytesIO(image_data["bytes"])) if image_data.get("bytes") else image_data.get("path")
            problem = Problem(pid=pid, question=row.get("question"), choices=list(row.get("choices") or []),
                              answer=int(row["answer"]) if row.get("answer") is not None else None, image=image,
                              split=split, **{key: row.get(key) or "" for key in FIELDS})
            validate_problem(problem)
        except (TypeError, ValueError, OSError) as err:
            result.errors.append({"pid": pid, "reason": f"malformed_record: {err}"})
            continue
        result.problems.append(problem)
    return result


def load_scienceqa(path: str | Path, split: str = "test") -> LoadResult:
    """Pick the loader by what `path` holds."""
    path = Path(path)
    if (path / "problems.json").is_file():
        return load_lupantech(path, split)
    return load_hf_parquet(path, split)
