"""Loaders and benchmarks/run_scienceqa.py end to end on the embedded ScienceQA-format set with a tiny model."""

import importlib.util
import json
from pathlib import Path

import datasets
import pytest

from modeling_scitune.scienceqa import load_hf_parquet, load_lupantech, to_conversation
from modeling_scitune.scienceqa.synthetic import write_synthetic_scienceqa

ROOT = Path(__file__).resolve().parent.parent


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sqa_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sqa")
    write_synthetic_scienceqa(100, out, seed=3, workers=1, progress=False)
    return out


def test_embedded_set_fills_every_category(sqa_dir):
    loaded = load_lupantech(sqa_dir, "train")
    assert not loaded.errors and len(loaded.problems) == 80
    problems = loaded.problems
    assert {p.subject for p in problems} == {"natural science", "social science", "language science"}
    assert any(p.has_image and p.hint for p in problems) and any(not p.has_image and not p.hint for p in problems)
    assert any(p.has_image and not p.hint for p in problems) and any(not p.has_image and p.hint for p in problems)
    grades = {int(p.grade[5:]) for p in problems}
    assert grades & set(range(1, 7)) and grades & set(range(7, 13))
    assert all(p.load_image().size[0] > 100 for p in problems if p.has_image)
    conversation = to_conversation(next(p for p in problems if p.has_image), "QCM-LEPA")
    assert conversation["messages"][1]["content"][0]["text"].endswith(".") and len(conversation["images"]) == 1


def test_hf_parquet_layout_loads_the_same_problems(sqa_dir, tmp_path):
    lupantech = load_lupantech(sqa_dir, "test").problems
    rows = [{"image": str(p.image) if p.has_image else None, "question": p.question, "choices": p.choices,
             "answer": p.answer, "hint": p.hint, "task": p.task, "grade": p.grade, "subject": p.subject,
             "topic": p.topic, "category": p.category, "skill": p.skill, "lecture": p.lecture, "solution": p.solution}
            for p in lupantech]
    table = datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())
    (tmp_path / "data").mkdir()
    table.to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
    parquet = load_hf_parquet(tmp_path, "test")
    assert not parquet.errors and len(parquet.problems) == len(lupantech)
    for a, b in zip(parquet.problems, lupantech):
        assert (a.question, a.choices, a.answer, a.hint, a.grade, a.has_image) == (b.question, b.choices, b.answer, b.hint, b.grade, b.has_image)
        if a.has_image:
            assert list(a.load_image().getdata()) == list(b.load_image().getdata())


def test_run_scienceqa_end_to_end_resumes_and_reports_bad_problems(sqa_dir, tiny_linear_dir, tmp_path):
    data = tmp_path / "sqa"
    import shutil

    shutil.copytree(sqa_dir, data)
    test_pids = json.loads((data / "pid_splits.json").read_text())["test"]
    problems = json.loads((data / "problems.json").read_text())
    with_image = next(pid for pid in test_pids if problems[pid]["image"])
    (data / "images" / "test" / with_image / "image.png").unlink()              # a missing image
    malformed = next(pid for pid in test_pids if pid != with_image)
    problems[malformed]["choices"] = "not a list"                                 # a malformed record
    (data / "problems.json").write_text(json.dumps(problems))

    script = load_script("run_scienceqa")
    out = tmp_path / "out"
    args = ["--model", str(tiny_linear_dir), "--data", str(data), "--output-dir", str(out), "--batch-size", "4",
            "--max-new-tokens", "8"]
    assert script.main(args) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(test_pids) - 1 and {"pid", "output", "pred"} <= set(rows[0])
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) >= {"official", "scitune_style", "per_grade", "per_topic", "parse_failures", "errors"}
    assert {e["pid"] for e in scores["errors"]} == {with_image, malformed}
    assert scores["counts"]["problems"] == len(test_pids)
    assert (out / "report.md").read_text().count("[published]") >= 5 and (out / "accuracy.png").stat().st_size > 5000

    # Interrupt: keep 5 finished lines plus half a line, rerun, and nothing finished is redone.
    (out / "predictions.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    assert script.main(args) == 0
    rerun = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()[:5]]
    assert rerun == rows[:5]
    final = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()[5:]]
    assert len({r["pid"] for r in rerun + final}) == len(rerun) + len(final) == len(rows)

    # Rescoring only, with the paper's random fallback.
    assert script.main(["--score-only", "--predictions", str(out / "predictions.jsonl"), "--data", str(data),
                        "--output-dir", str(tmp_path / "rescored"), "--random-fallback", "0"]) == 0
    rescored = json.loads((tmp_path / "rescored" / "scores.json").read_text())
    assert rescored["random_fallback"] == 0 and rescored["counts"]["problems"] == len(test_pids)
