"""Main-job runs kept side by side: each run's summary is recorded in the build cache under its seed and data, so a
run on a real LLM (`--text-model`) can be compared with the miniature-LLaMA run on the same seed and the same data.

The record is keyed by the seed and the fingerprints of the data folders the stages trained and were scored on, so a
comparison never mixes runs on different figures or problems.
"""

from __future__ import annotations

import json
from pathlib import Path

from .build_cache import cache_key, cache_root, folder_fingerprint

MINIATURE = "pretrained tiny LLaMA"
# (row label, how to read it from a summary); ScienceQA columns are the official ones.
ROWS = (
    ("figure type, held-out figures (%)", lambda s: s["figure_tasks"]["figure_type_accuracy"]),
    ("captions, Google-BLEU", lambda s: s["figure_tasks"]["google_bleu"]),
    ("captions, ROUGE-L", lambda s: s["figure_tasks"]["rougeL"]),
    *((f"ScienceQA {column} (%)", lambda s, c=column: s["scienceqa"]["official"][c])
      for column in ("Avg", "NAT", "SOC", "LAN", "TXT", "IMG", "NO")),
    ("stage 1 wall time (s)", lambda s: _timing(s, "stage 1")),
    ("stage 2 wall time (s)", lambda s: _timing(s, "stage 2")),
    ("total wall time (s)", lambda s: s["total_wall_time_s"]),
)


def _timing(summary: dict, prefix: str):
    return next((seconds for name, seconds in summary["timings"].items() if name.startswith(prefix)), None)


def data_key(seed: int, figures_dir: str | Path, scienceqa_dir: str | Path) -> str:
    """The key of a run's seed and data: the figure dataset's own Arrow shards (not the `cache-*.arrow` files that
    `datasets.map` adds next to them while a stage runs), the problems and their splits."""
    return cache_key({"seed": seed, "figures": folder_fingerprint(figures_dir, ("data-*.arrow",)),
                      "scienceqa": folder_fingerprint(scienceqa_dir, ("problems.json", "pid_splits.json"))})


def _record_path(key: str, text_model: str, precision: str) -> Path:
    slug = "".join(ch if ch.isalnum() else "-" for ch in text_model).strip("-")
    return cache_root() / "runs" / key / f"{slug}-{precision}.json"


def record_run(summary: dict, key: str) -> Path:
    """Store the summary of a finished run under its data key (the latest run of that LLM and precision wins)."""
    path = _record_path(key, summary["text_model"], summary["precision"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return path


def miniature_run(key: str, precision: str) -> dict | None:
    """The recorded miniature-LLaMA run on the same seed and data (same precision first, then any), or None."""
    for candidate in (precision, "fp32", "bf16"):
        path = _record_path(key, MINIATURE, candidate)
        if path.is_file():
            return json.loads(path.read_text())
    return None


def comparison_table(runs: dict[str, dict]) -> str:
    """A Markdown table, one column per run (name -> summary), one row per figure that tells them apart."""
    names = list(runs)
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, read in ROWS:
        cells = []
        for name in names:
            try:
                cells.append(str(read(runs[name])))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    precisions = {runs[name]["precision"] for name in names}
    if len(precisions) > 1:
        lines.append("")
        lines.append("Precisions differ: " + ", ".join(f"{name} {runs[name]['precision']}" for name in names) + ".")
    return "\n".join(lines)
