"""ScienceQA accuracy by category, two ways.

`official` = lupantech tools/evaluate_acc.py: TXT = the hint is non-empty (image or not), IMG = has an image,
NO = neither; G1-6 / G7-12 pooled over the problems of those grades; Avg = correct / all.
`scitune_style` = the columns SciTune's published table actually used (its analysis notebook): TXT = no image,
IMG = image, NO = empty hint (image or not), G1-6 / G7-12 = unweighted mean of the per-grade accuracies.
NAT / SOC / LAN (by subject) and Avg are the same in both. All values are percentages.
"""

from __future__ import annotations

from collections import defaultdict

from .problems import Problem

SUBJECTS = {"NAT": "natural science", "SOC": "social science", "LAN": "language science"}
COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")


def _grade_number(grade: str) -> int | None:
    digits = "".join(ch for ch in str(grade) if ch.isdigit())
    return int(digits) if digits else None


def _accuracy(flags: list[bool]) -> float | None:
    return round(100.0 * sum(flags) / len(flags), 2) if flags else None


def column_membership(problem: Problem) -> tuple[set[str], set[str]]:
    """The (official, scitune_style) columns a problem counts in (grade columns handled separately)."""
    official, scitune = set(), set()
    for column, subject in SUBJECTS.items():
        if problem.subject == subject:
            official.add(column)
            scitune.add(column)
    has_hint = bool(problem.hint.strip())
    if has_hint:
        official.add("TXT")
    if problem.has_image:
        official.add("IMG")
        scitune.add("IMG")
    else:
        scitune.add("TXT")
    if not has_hint and not problem.has_image:
        official.add("NO")
    if not has_hint:
        scitune.add("NO")
    return official, scitune


def _table(problems: list[Problem], values: dict[str, float]) -> dict:
    """Per-column means of `values` (pid -> 0..1) under both definitions, plus per-grade and per-topic."""
    official, scitune = defaultdict(list), defaultdict(list)
    per_grade, per_topic = defaultdict(list), defaultdict(list)
    for p in problems:
        value = values[p.pid]
        in_official, in_scitune = column_membership(p)
        for column in in_official:
            official[column].append(value)
        for column in in_scitune:
            scitune[column].append(value)
        grade = _grade_number(p.grade)
        if grade is not None:
            per_grade[grade].append(value)
            official["G1-6" if grade <= 6 else "G7-12"].append(value)
        per_topic[p.topic or "unknown"].append(value)
    grade_acc = {g: _accuracy(v) for g, v in sorted(per_grade.items())}
    out_official = {c: _accuracy(official[c]) for c in COLUMNS if c != "Avg"}
    out_scitune = {c: _accuracy(scitune[c]) for c in COLUMNS if c not in ("G1-6", "G7-12", "Avg")}
    for column, grades in (("G1-6", range(1, 7)), ("G7-12", range(7, 13))):
        accs = [grade_acc[g] for g in grades if g in grade_acc]
        out_scitune[column] = round(sum(accs) / len(accs), 2) if accs else None
    out_official["Avg"] = out_scitune["Avg"] = _accuracy(list(values.values()))
    return {
        "official": {c: out_official[c] for c in COLUMNS},
        "scitune_style": {c: out_scitune[c] for c in COLUMNS},
        "per_grade": {f"grade{g}": acc for g, acc in grade_acc.items()},
        "per_topic": {t: _accuracy(v) for t, v in sorted(per_topic.items())},
        "sizes": {c: len(official[c]) for c in COLUMNS if c != "Avg"},
    }


def score(problems: list[Problem], predictions: dict[str, int], parse_failures: int = 0) -> dict:
    """`predictions` maps pid -> option index (-1 = failed). Problems without a prediction count as wrong.

    Also reports `chance`: the same table for uniform random guessing (1 / number of options per problem).
    """
    correct = {p.pid: float(predictions.get(p.pid, -1) == p.answer and not p.extra.get("error")) for p in problems}
    table = _table(problems, correct)
    chance = _table(problems, {p.pid: 1.0 / len(p.choices) for p in problems})
    return {
        **{key: table[key] for key in ("official", "scitune_style", "per_grade", "per_topic")},
        "chance": {"official": chance["official"], "scitune_style": chance["scitune_style"]},
        "counts": {"problems": len(problems), "correct": int(sum(correct.values())), "official_sizes": table["sizes"]},
        "parse_failures": parse_failures,
    }
