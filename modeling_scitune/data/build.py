"""Records -> a `datasets.DatasetDict` that TRL's SFTTrainer consumes directly, saved with its card and summary.

Every row holds the conversation (`messages` + `images`, TRL's conversational vision format) *and* the record
fields (figure_type, caption, ocr, paragraphs, mentions, source), so benchmarks can score against them. Records that
cannot be used are skipped, counted by reason and listed in `summary.json` and the dataset card: bad input never
stops a build and is never dropped silently.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict
from PIL import Image

from ..schema import FIGURE_RECORD_FEATURES
from .instructions import build_conversation
from .records import FigureRecord, InvalidRecord

FEATURES = FIGURE_RECORD_FEATURES  # the layout of a stage-1 row (schema.py)


class NothingKept(ValueError):
    """Every input item was skipped: the summary and the card are written, listing why; the build failed."""


@dataclass
class BuildReport:
    """What a build read, kept and skipped (by reason, with ids), per input file."""

    inputs: dict = field(default_factory=lambda: defaultdict(lambda: Counter(captions_found=0, figures_kept=0, mentions_linked=0)))
    skipped: list = field(default_factory=list)

    def found(self, input_name: str, captions: int = 1):
        self.inputs[input_name]["captions_found"] += captions

    def kept(self, input_name: str, record: FigureRecord):
        self.inputs[input_name]["figures_kept"] += 1
        self.inputs[input_name]["mentions_linked"] += len(record.mentions)

    def skip(self, input_name: str, item_id: str, reason: str, detail: str):
        self.skipped.append({"input": input_name, "id": item_id, "reason": reason, "detail": detail})

    def to_dict(self) -> dict:
        return {
            "inputs": {name: dict(counts) for name, counts in self.inputs.items()},
            "skipped_by_reason": dict(Counter(item["reason"] for item in self.skipped)),
            "skipped": self.skipped,
        }


def _png_bytes(image: Image.Image | bytes | str | Path) -> bytes:
    if isinstance(image, bytes):
        return image
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def record_to_row(record: FigureRecord, variant: str, rng: random.Random) -> dict:
    """Validate `record` and turn it into a dataset row (raises InvalidRecord with the reason)."""
    original_image = record.image
    checked = record.validate()
    conversation = build_conversation(checked, variant, rng)
    stored = original_image if isinstance(original_image, (bytes, str, Path)) else checked.image
    return {
        "messages": conversation["messages"],
        "images": [{"bytes": _png_bytes(stored), "path": None}],
        "figure_id": checked.figure_id,
        "figure_type": checked.figure_type,
        "caption": checked.caption,
        "ocr": checked.ocr,
        "paragraphs": checked.paragraphs,
        "mentions": checked.mentions,
        "source": {
            "paper_id": str(checked.source.get("paper_id", "")),
            "file": str(checked.source.get("file", "")),
            "page": int(checked.source.get("page", 0) or 0),
        },
        "variant": variant,
        "meta": json.dumps(checked.meta, sort_keys=True),
    }


def build_dataset(
    records: Iterable[tuple[str, str, FigureRecord]],
    variant: str = "CTOM",
    seed: int = 0,
    report: BuildReport | None = None,
) -> tuple[DatasetDict, BuildReport]:
    """`records` yields (split, input_name, record). Returns the DatasetDict and the build report."""
    report = report or BuildReport()
    rng = random.Random(f"prompts-{seed}")
    rows: dict[str, list] = defaultdict(list)
    for split, input_name, record in records:
        try:
            row = record_to_row(record, variant, rng)
        except InvalidRecord as err:
            report.skip(input_name, record.figure_id, err.reason, err.detail)
            continue
        rows[split].append(row)
        report.kept(input_name, record)
    dataset = DatasetDict({split: Dataset.from_list(split_rows, features=FEATURES) for split, split_rows in rows.items()})
    return dataset, report


def dataset_card(dataset: DatasetDict, summary: dict, description: str, source_license: str) -> str:
    """README.md with YAML metadata (license, source, variant, counts, skipped reasons)."""
    counts = {split: len(ds) for split, ds in dataset.items()}
    types = Counter(t for ds in dataset.values() for t in ds["figure_type"])
    yaml_lines = [
        "---",
        f"license: {source_license}",
        "task_categories:\n- image-text-to-text",
        "tags:\n- scitune\n- scientific-figures\n- instruction-tuning",
        f"pretty_name: SciTune {summary.get('variant', '')} instructions ({summary.get('source', '')})",
        "configs:\n- config_name: default\n  data_files:",
        *[f"  - split: {split}\n    path: parquet/{split}.parquet" for split in counts],
        "---",
    ]
    skipped = summary["report"]["skipped_by_reason"]
    body = [
        f"# SciTune instruction dataset: {summary.get('source', '')}",
        "",
        description,
        "",
        f"- **Variant**: {summary.get('variant')} (C = caption, T = figure type, O = OCR text, M = paragraphs and mentions)",
        f"- **Source**: {summary.get('source')}; license of the sources: {source_license}",
        f"- **Rows per split**: {json.dumps(counts)}",
        f"- **Figure types**: {json.dumps(dict(sorted((str(k), v) for k, v in types.items())))}",
        f"- **Skipped items by reason**: {json.dumps(skipped) if skipped else 'none'}",
        "",
        "Columns: `messages` + `images` (TRL conversational vision format, ready for `SFTTrainer`), and the record",
        "fields `figure_id`, `figure_type`, `caption`, `ocr`, `paragraphs`, `mentions`, `source`, `variant`, `meta`.",
        "",
        "Load with `datasets.load_from_disk(DIR)` or `datasets.load_dataset(\"parquet\", data_dir=DIR + \"/parquet\")`.",
    ]
    if summary["report"]["skipped"]:
        body += ["", "## Skipped items", "", "| input | id | reason | detail |", "|---|---|---|---|"]
        body += [f"| {s['input']} | {s['id']} | {s['reason']} | {s['detail']} |" for s in summary["report"]["skipped"][:200]]
    return "\n".join(yaml_lines + body) + "\n"


def save_dataset(
    dataset: DatasetDict,
    report: BuildReport,
    out: str | Path,
    *,
    variant: str,
    source: str,
    description: str,
    source_license: str,
    extra: dict | None = None,
) -> dict:
    """Write `save_to_disk` files, `parquet/{split}.parquet`, `README.md` and `summary.json` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset.save_to_disk(str(out))
    (out / "parquet").mkdir(exist_ok=True)
    for split, ds in dataset.items():
        ds.to_parquet(str(out / "parquet" / f"{split}.parquet"))
    summary = {
        "source": source,
        "variant": variant,
        "splits": {split: len(ds) for split, ds in dataset.items()},
        "report": report.to_dict(),
        **(extra or {}),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "README.md").write_text(dataset_card(dataset, summary, description, source_license))
    if not any(len(ds) for ds in dataset.values()):
        reasons = summary["report"]["skipped_by_reason"]
        raise NothingKept(f"no usable item in the input ({sum(reasons.values())} skipped: "
                          f"{', '.join(f'{k} {v}' for k, v in reasons.items()) or 'nothing found'}); "
                          f"see {out / 'summary.json'}")
    return summary
