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


def test_training_rows_store_the_image_files_pixels(sqa_dir, tmp_path):
    """RGB files go into the training rows as their own bytes (no decode and re-encode); another mode is converted;
    a damaged file is named with its problem."""
    import shutil

    import numpy as np
    from PIL import Image

    from modeling_scitune.scienceqa.training_rows import scienceqa_dataset

    folder = tmp_path / "sqa"
    shutil.copytree(sqa_dir, folder)
    problems = load_lupantech(folder, "train").problems
    with_image = [p for p in problems if p.has_image]
    rgba, damaged = with_image[0], with_image[1]
    Image.open(rgba.image).convert("RGBA").save(rgba.image)
    expected = {p.pid: np.asarray(p.load_image()) for p in with_image}
    stored_bytes = Path(with_image[2].image).read_bytes()
    rows = scienceqa_dataset(str(folder), "QCM-LEPA", "train")
    decoded = [row["images"][0] for row in rows if row["images"]]
    assert len(decoded) == len(with_image) and all(image.mode == "RGB" for image in decoded)
    assert all(np.array_equal(np.asarray(image), expected[p.pid]) for image, p in zip(decoded, with_image))
    undecoded = rows.cast_column("images", datasets.List(datasets.Image(decode=False)))
    assert undecoded[problems.index(with_image[2])]["images"][0]["bytes"] == stored_bytes
    Path(damaged.image).write_bytes(Path(damaged.image).read_bytes()[:200])
    with pytest.raises(OSError, match=f"problem {damaged.pid}: image .*image.png cannot be read"):
        scienceqa_dataset(str(folder), "QCM-LEPA", "train")


def test_hf_parquet_layout_loads_the_same_problems(sqa_dir, tmp_path):
    lupantech = load_lupantech(sqa_dir, "test").problems
    rows = [{"image": {"bytes": p.image.read_bytes(), "path": None} if p.has_image else None, "question": p.question, "choices": p.choices,
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
            "--max-new-tokens", "8"]  # protocol scitune (the default): two passes
    assert script.main(args) == 0
    lines = (out / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(test_pids) - 1
    answered = [row for row in rows if not row.get("error")]
    assert all({"pid", "output_pass1", "output_pass2", "text", "protocol"} <= set(row) for row in answered)
    assert all(row["text"].startswith(row["reasoning"] + "\n The answer is ") for row in answered)
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"} <= set(answers[0])
    assert len(answers) == len(answered)
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) >= {"official", "scitune_style", "per_grade", "per_topic", "parse", "errors"}
    assert scores["protocol"] == "scitune" and sum(scores["parse"]["statuses"].values()) == len(test_pids) - 1
    assert {e["pid"] for e in scores["errors"]} == {with_image, malformed}
    assert scores["counts"]["problems"] == len(test_pids)
    report = (out / "report.md").read_text()
    assert report.count("[published]") >= 5 and "Protocol **scitune**" in report
    assert (out / "accuracy.png").stat().st_size > 5000

    # Interrupt: keep 5 finished lines plus half a line, rerun, and nothing finished is redone.
    (out / "predictions.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    assert script.main(args) == 0
    rerun = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()[:5]]
    assert rerun == rows[:5]
    final = [json.loads(l) for l in (out / "predictions.jsonl").read_text().splitlines()[5:]]
    assert len({r["pid"] for r in rerun + final}) == len(rerun) + len(final) == len(rows)

    # Rescoring only: the same answers, the same seeded fallback -> the same scores; the original answers file too.
    for source in ("predictions.jsonl", "answers.jsonl"):
        assert script.main(["--score-only", "--predictions", str(out / source), "--data", str(data),
                            "--output-dir", str(tmp_path / source)]) == 0
        rescored = json.loads((tmp_path / source / "scores.json").read_text())
        assert rescored["parse"]["fallback_seed"] == 0 and rescored["counts"]["problems"] == len(test_pids)
        assert rescored["official"] == json.loads((out / "scores.json").read_text())["official"]


def test_hostile_scienceqa_inputs_are_refused_or_reported(sqa_dir, tmp_path):
    import shutil

    from modeling_scitune.scienceqa.loaders import ScienceQALayoutError

    data = tmp_path / "sqa"
    shutil.copytree(sqa_dir, data)
    splits = json.loads((data / "pid_splits.json").read_text())
    problems = json.loads((data / "problems.json").read_text())
    test = splits["test"]
    splits["test"] = test + test[:2]                              # two pids listed twice
    problems[test[3]]["answer"] = True                            # a bool is not an index
    problems[test[4]]["image"] = "../../../../secret.png"         # a path out of the data folder
    from PIL import Image

    Image.new("RGB", (20, 20)).save(tmp_path / "secret.png")
    bomb_pid = next(pid for pid in test[5:] if problems[pid]["image"])
    Image.new("1", (14000, 14000)).save(data / "images" / "test" / bomb_pid / "image.png")
    (data / "pid_splits.json").write_text(json.dumps(splits))
    (data / "problems.json").write_text(json.dumps(problems))
    loaded = load_lupantech(data, "test")
    assert len(loaded.problems) + len(loaded.errors) == len(test)
    assert loaded.notes and "more than once" in loaded.notes[0]
    reasons = {e["pid"]: e["reason"] for e in loaded.errors}
    assert "answer True" in reasons[test[3]] and "leaves the data folder" in reasons[test[4]]
    allowed = load_lupantech(data, "test", allow_outside_images=True)  # only when the user says so
    assert test[4] not in {e["pid"] for e in allowed.errors}
    script = load_script("run_scienceqa")
    out = tmp_path / "out"
    assert script.main(["--model", "unused", "--data", str(data), "--output-dir", str(out), "--score-only",
                        "--predictions", str(tmp_path / "typo.jsonl")]) == 2  # a missing predictions file
    rows = [{"pid": pid, "pred": "B"} for pid in test] + [{"pid": test[0], "pred": 0}, {"pid": "99999", "pred": 1}]
    lines = [json.dumps(r) for r in rows] + ["42", "{not json", json.dumps({"text": "no pid"})]
    (tmp_path / "preds.jsonl").write_text("\n".join(lines[:3] + lines[-3:] + lines[3:-3]) + "\n")
    assert script.main(["--score-only", "--predictions", str(tmp_path / "preds.jsonl"), "--data", str(data),
                        "--output-dir", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    report = scores["predictions_file"]
    assert report["malformed_lines"] == [4, 5] and report["rows_without_pid"] == [6]
    assert report["duplicate_pids"] == {test[0]: 1} and report["pids_outside_split"] == ["99999"]
    assert scores["parse"]["letter_predictions_accepted"] == len(test) - len(loaded.errors)
    assert scores["counts"]["problems"] == len(test)  # each pid once, errored ones included as wrong
    report_md = (out / "report.md").read_text()
    assert "malformed lines: [4, 5]" in report_md and "first row of a pid counts" in report_md
    assert "more than once" in report_md
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "problems.json").write_text("[]")
    with pytest.raises(ScienceQALayoutError, match="must hold"):
        load_lupantech(tmp_path / "list", "test")
    with pytest.raises(ScienceQALayoutError, match="split 'nope' is not in"):
        load_lupantech(data, "nope")
    assert script.main(["--model", "x", "--data", str(data), "--output-dir", str(out), "--score-only",
                        "--predictions", str(tmp_path / "preds.jsonl"), "--split", "nope"]) == 2
    # the decompression bomb becomes an errored row of the benchmark, never a crash
    from modeling_scitune.scienceqa.evaluate import _load_images

    bomb = next(p for p in loaded.problems if p.pid == bomb_pid)
    ready, errors = _load_images([bomb])
    assert not ready and errors[0]["pid"] == bomb_pid and "decompression" in errors[0]["error"].lower()


def test_letter_lookup_scores_the_letter_right_after_the_gold_solution(sqa_dir, tiny_linear_dir, tmp_path):
    import torch

    from modeling_scitune.evaluation.generation import load_model
    from modeling_scitune.scienceqa.letter_lookup import answer_position, same_form_letter_ids
    from modeling_scitune.training.answer_loss import option_letter_ids

    out = tmp_path / "lookup.json"
    assert load_script("run_letter_lookup").main(["--model", str(tiny_linear_dir), "--data", str(sqa_dir), "--limit",
                                                  "12", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    model, processor = load_model(str(tiny_linear_dir))
    letters = set(option_letter_ids(processor.tokenizer).tolist())
    problems = load_lupantech(sqa_dir, "test").problems[:12]
    assert any(p.has_image for p in problems) and any(not p.has_image for p in problems)
    hits = 0
    for problem in problems:
        conversation = to_conversation(problem)
        text = processor.apply_chat_template(conversation["messages"], tokenize=False)
        inputs = processor(text=text, images=conversation["images"] or None, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
        position = answer_position(ids, letters)
        assert processor.tokenizer.decode(ids[position - 8:position + 2]).replace(" ", "").endswith(
            f"ANSWER:{problem.answer_letter}.")
        candidates = same_form_letter_ids(processor.tokenizer, ids[position], len(problem.choices))
        assert candidates[problem.answer] == ids[position]
        prefix = {**inputs, "input_ids": inputs["input_ids"][:, :position],
                  "attention_mask": inputs["attention_mask"][:, :position]}
        with torch.inference_mode():  # the same letter through generate, from the tokens before the answer
            generated = model.generate(**prefix, max_new_tokens=1, do_sample=False, output_scores=True,
                                       return_dict_in_generate=True)
        hits += int(torch.argmax(generated.scores[0][0][candidates])) == problem.answer
    assert report["problems"] == len(problems) == sum(report["picked_letters"].values())
    assert report["accuracy"] == round(100 * hits / len(problems), 2)
