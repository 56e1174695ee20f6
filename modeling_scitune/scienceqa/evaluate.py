"""Run a SciTune checkpoint on ScienceQA: batched greedy generation, resumable predictions, scores, report.

Predictions are appended to `OUT/predictions.jsonl` as each batch finishes (pid, output, pred, answer, correct,
error); a rerun skips the pids already there. A problem whose image is missing, or whose record is malformed, is
written with an `error`, scored as failed and listed in `scores.json` - it never crashes the run or vanishes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tqdm.auto import tqdm

from .formats import build_question
from .loaders import load_scienceqa
from .parsing import parse_answer
from .problems import Problem
from .report import write_report
from .scoring import score


def read_predictions(path: Path) -> dict[str, dict]:
    """pid -> prediction row; a half-written last line (interrupted run) is ignored."""
    rows = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[str(row["pid"])] = row
    return rows


def drop_partial_last_line(path: Path) -> None:
    """An interrupted run can leave half a JSON line: cut it so appended rows start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _prompt(processor, problem: Problem, fmt: str) -> str:
    content = [{"type": "text", "text": build_question(problem, fmt)}]
    if problem.has_image:
        content.append({"type": "image"})
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def generate_batch(model, processor, problems: list[Problem], fmt: str, max_new_tokens: int) -> list[str]:
    """Greedy answers for a batch (left padding; images in prompt order)."""
    import torch

    prompts = [_prompt(processor, p, fmt) for p in problems]
    images = [p.load_image() for p in problems if p.has_image]
    processor.tokenizer.padding_side = "left"
    inputs = processor(images=images or None, text=prompts, padding=True, return_tensors="pt").to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def answer_prompter(model, processor, problem: Problem, fmt: str, reasoning: str) -> str:
    """SciTune's second pass: the prompt + reasoning cut at "###" + " ###\\nANSWER:", a few more tokens."""
    import torch

    prompt = _prompt(processor, problem, fmt) + " " + reasoning.split("###")[0].strip() + "\n###\nANSWER:"
    images = [problem.load_image()] if problem.has_image else None
    inputs = processor(images=images, text=[prompt], return_tensors="pt").to(model.device)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return "ANSWER:" + processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def load_model(model_dir: str, device: str | None = None, dtype: str = "auto"):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = {"auto": torch.bfloat16 if device == "cuda" else torch.float32, "float32": torch.float32,
                   "bfloat16": torch.bfloat16}[dtype]
    model = AutoModelForImageTextToText.from_pretrained(model_dir, trust_remote_code=True, dtype=torch_dtype)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    return model.to(device).eval(), processor


def score_predictions(problems: list[Problem], broken: list[Problem], rows: dict[str, dict], random_fallback=None):
    rng = random.Random(random_fallback) if random_fallback is not None else None
    predictions, failures = {}, 0
    for problem in problems:
        row = rows.get(problem.pid)
        if row is None or row.get("error"):
            predictions[problem.pid] = -1
            continue
        pred = parse_answer(row["output"], len(problem.choices), rng) if rng else row["pred"]
        failures += row["pred"] == -1
        predictions[problem.pid] = pred
    result = score(problems + broken, predictions, parse_failures=failures)
    result["errors"] = sorted(
        [{"pid": p.pid, "reason": p.extra["error"]} for p in broken]
        + [{"pid": pid, "reason": row["error"]} for pid, row in rows.items() if row.get("error")],
        key=lambda e: e["pid"])
    result["counts"]["errors"] = len(result["errors"])
    result["random_fallback"] = random_fallback
    return result


def run_scienceqa(model_dir: str | None, data_dir: str, output_dir: str, split: str = "test", fmt: str = "QCM-LEPA",
                  batch_size: int = 8, limit: int | None = None, max_new_tokens: int = 256,
                  random_fallback: int | None = None, use_answer_prompter: bool = False, score_only: bool = False,
                  predictions_file: str | None = None, progress: bool = True, model=None, processor=None) -> dict:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_scienceqa(data_dir, split)
    problems = loaded.problems[:limit] if limit else loaded.problems
    broken = loaded.broken_problems()
    predictions_path = Path(predictions_file) if predictions_file else out / "predictions.jsonl"
    rows = read_predictions(predictions_path)
    if not score_only:
        if model is None:
            model, processor = load_model(model_dir)
        todo = [p for p in problems if p.pid not in rows]
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc=f"ScienceQA {split}", unit="problem",
                   disable=not progress)
        drop_partial_last_line(predictions_path)
        with predictions_path.open("a") as handle:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                ready, new_rows = [], []
                for problem in batch:
                    try:
                        if problem.has_image:
                            problem.image = problem.load_image()
                        ready.append(problem)
                    except (OSError, ValueError) as err:
                        new_rows.append({"pid": problem.pid, "output": "", "pred": -1, "answer": problem.answer,
                                         "correct": False, "error": f"missing_image: {err}"})
                outputs = generate_batch(model, processor, ready, fmt, max_new_tokens) if ready else []
                for problem, output in zip(ready, outputs):
                    pred = parse_answer(output, len(problem.choices))
                    if pred == -1 and use_answer_prompter:
                        output = output + "\n" + answer_prompter(model, processor, problem, fmt, output)
                        pred = parse_answer(output.split("\n")[-1], len(problem.choices))
                    new_rows.append({"pid": problem.pid, "output": output, "pred": pred, "answer": problem.answer,
                                     "correct": pred == problem.answer})
                for row in new_rows:
                    handle.write(json.dumps(row) + "\n")
                    rows[row["pid"]] = row
                handle.flush()
                bar.update(len(batch))
        bar.close()
    result = score_predictions(problems, broken, rows, random_fallback)
    result.update({"model": model_dir, "data": str(data_dir), "split": split, "format": fmt})
    (out / "scores.json").write_text(json.dumps(result, indent=2))
    write_report(result, out)
    return result
