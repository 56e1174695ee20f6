"""`report.md` (our rows beside the published ones) and `accuracy.png` (per-category bars) for a ScienceQA run."""

from __future__ import annotations

from pathlib import Path

from .scoring import COLUMNS

# Published ScienceQA test numbers (4,241 problems), as reported by the ScienceQA leaderboard / SciTune's notebooks.
PUBLISHED = [
    ("LLaMA-SciTune 13B (CTOM) [published]", [89.30, 95.61, 87.00, 93.08, 86.67, 91.75, 84.37, 91.30, 90.03]),
    ("LLaMA-SciTune 7B [published]", [84.50, 94.15, 82.91, 88.35, 83.64, 88.74, 85.05, 85.60, 86.11]),
    ("Human [published]", [90.23, 84.97, 87.48, 89.60, 87.50, 88.10, 91.59, 82.42, 88.40]),
    ("LLaVA 13B [published]", [90.36, 95.95, 88.00, 89.49, 88.00, 90.66, 90.93, 90.90, 90.92]),
    ("MM-CoT Large [published]", [95.91, 82.00, 90.82, 95.26, 88.80, 92.89, 92.44, 90.31, 91.68]),
    ("GPT-3.5 CoT (2-shot) [published]", [75.44, 70.87, 78.09, 74.68, 67.43, 79.93, 78.23, 69.68, 75.17]),
]


def _row(name: str, values) -> str:
    cells = ["-" if v is None else f"{v:.2f}" for v in values]
    return f"| {name} | " + " | ".join(cells) + " |"


def write_report(result: dict, out: Path) -> None:
    out = Path(out)
    header = "| model | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS)
    ours = [
        _row("this run, official categories", [result["official"][c] for c in COLUMNS]),
        _row("this run, SciTune-style categories", [result["scitune_style"][c] for c in COLUMNS]),
        _row("chance (uniform guess), official", [result["chance"]["official"][c] for c in COLUMNS]),
    ]
    published = [_row(name, values) for name, values in PUBLISHED]
    counts = result["counts"]
    parse = result.get("parse", {})
    lines = [
        f"# ScienceQA results: {result.get('model') or 'predictions'}",
        "",
        f"Protocol **{result.get('protocol')}**"
        + (f" ({result['conversation']} conversation)" if result.get("conversation") else "")
        + f", {result.get('decoding', 'greedy')}; data `{result.get('data')}` split `{result.get('split')}`: "
        f"{counts['problems']} problems, {counts['correct']} correct, {counts.get('errors', 0)} errored problems "
        "(scored as wrong).",
        "",
        "Answers parsed as the protocol's original scorer does: " + ", ".join(
            f"{status} {n}" for status, n in sorted(parse.get("statuses", {}).items()))
        + (f" (a random option from seed {parse['fallback_seed']} where the regex did not match exactly once)"
           if parse.get("fallback_seed") is not None else "") + ".",
        "",
        "Official categories follow lupantech `tools/evaluate_acc.py` (TXT = has a hint, G1-6 pooled); SciTune-style",
        "follow the paper's table (TXT = no image, NO = empty hint, G1-6 = mean of per-grade accuracies).",
        "Rows marked [published] are numbers reported on the real ScienceQA test set, not measured here.",
        "",
        header,
        *ours,
        *published,
        "",
        "Per grade: " + ", ".join(f"{g} {v:.1f}" for g, v in result["per_grade"].items()),
        "",
        "Per topic: " + ", ".join(f"{t} {v:.1f}" for t, v in result["per_topic"].items()),
    ]
    file_report = result.get("predictions_file", {})
    issues = {key: file_report.get(key) for key in ("malformed_lines", "rows_without_pid", "duplicate_pids",
                                                      "pids_outside_split") if file_report.get(key)}
    if result.get("load_notes"):
        lines += ["", "## Data notes", ""] + [f"- {note}" for note in result["load_notes"]]
    if issues or parse.get("letter_predictions_accepted"):
        lines += ["", "## Predictions file", ""]
        lines += [f"- {key.replace('_', ' ')}: {value if not isinstance(value, list) else value[:50]}"
                  for key, value in issues.items()]
        if file_report.get("duplicate_pids"):
            lines.append(f"- duplicates: {file_report['duplicate_rule']}")
        if parse.get("letter_predictions_accepted"):
            lines.append(f"- letter predictions accepted as option indices: {parse['letter_predictions_accepted']}")
    if result.get("errors"):
        lines += ["", "## Errored problems", ""] + [f"- {e['pid']}: {e['reason']}" for e in result["errors"][:100]]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plot_accuracy(result, out / "accuracy.png")


def plot_accuracy(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), dpi=100)
    ax = figure.add_subplot()
    x = np.arange(len(COLUMNS))
    series = [("official", result["official"]), ("SciTune-style", result["scitune_style"]),
              ("chance", result["chance"]["official"])]
    for offset, (name, values) in zip((-0.27, 0, 0.27), series):
        ax.bar(x + offset, [values[c] or 0 for c in COLUMNS], width=0.27, label=name)
    ax.set_xticks(x, COLUMNS)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"ScienceQA accuracy by category ({result['counts']['problems']} problems)")
    ax.legend(fontsize="small", ncol=3, loc="upper center")
    figure.tight_layout()
    figure.savefig(path)
