"""Reading a predictions file honestly: every line is used, or counted with the reason it was not.

Accepted rows (JSON objects, one per line): this package's `predictions.jsonl` (`pid`, `text`, ...), the original
`model_vqa_science.py` answers (`question_id`, `text`), or bare predictions (`pid`, `pred` as an option index or a
letter). What cannot be scored is not dropped silently: malformed lines (by line number), rows without a pid,
duplicates (the first row of a pid counts), letter predictions (accepted, counted) and pids outside the split are all
reported in `scores.json` and `report.md`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .problems import LETTERS


class PredictionsError(ValueError):
    """A predictions file that cannot be scored at all (missing, empty)."""


@dataclass
class PredictionsFile:
    rows: dict[str, dict] = field(default_factory=dict)  # pid -> row (the first row of each pid)
    malformed_lines: list[int] = field(default_factory=list)
    without_pid: list[int] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)  # pid -> extra rows ignored
    interrupted_last_line: bool = False

    def report(self) -> dict:
        return {"rows": len(self.rows), "malformed_lines": self.malformed_lines, "rows_without_pid": self.without_pid,
                "duplicate_pids": self.duplicates, "duplicate_rule": "the first row of a pid counts",
                "interrupted_last_line": self.interrupted_last_line}


def _pid(row: dict) -> str | None:
    pid = row.get("pid", row.get("question_id"))
    if pid is None or isinstance(pid, (dict, list, bool)) or str(pid).strip() == "":
        return None
    return str(pid)


def read_predictions(path: str | Path, must_exist: bool = False) -> PredictionsFile:
    """Parse `path`; a half-written last line (an interrupted run) is noted, not counted as malformed."""
    path = Path(path)
    result = PredictionsFile()
    if not path.is_file():
        if must_exist:
            raise PredictionsError(f"predictions file {path} does not exist")
        return result
    data = path.read_bytes()
    lines = data.decode("utf-8", errors="replace").split("\n")
    last_complete = data.endswith(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) and not last_complete:
                result.interrupted_last_line = True
            else:
                result.malformed_lines.append(number)
            continue
        if not isinstance(row, dict):
            result.malformed_lines.append(number)
            continue
        pid = _pid(row)
        if pid is None:
            result.without_pid.append(number)
            continue
        if pid in result.rows:
            result.duplicates[pid] = result.duplicates.get(pid, 0) + 1
            continue
        result.rows[pid] = row
    if must_exist and not result.rows:
        raise PredictionsError(f"predictions file {path} holds no usable prediction "
                               f"({len(result.malformed_lines)} malformed lines, {len(result.without_pid)} without a pid)")
    return result


def given_prediction(row: dict, n_choices: int) -> tuple[int, str] | None:
    """A row's own `pred` when it has no text to parse: (index, "index" | "letter"); None when there is none."""
    pred = row.get("pred")
    if isinstance(pred, bool) or pred is None:
        return None
    if isinstance(pred, int):
        return (pred if 0 <= pred < n_choices else -1), "index"
    if isinstance(pred, str) and len(pred.strip()) == 1 and pred.strip().upper() in LETTERS:
        index = LETTERS.index(pred.strip().upper())
        return (index if index < n_choices else -1), "letter"
    return None


def drop_partial_last_line(path: Path) -> None:
    """An interrupted run can leave half a JSON line: cut it so appended rows start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
