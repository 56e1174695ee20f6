"""Run a model on ScienceQA under one of the published protocols: batched generation, resumable predictions, scores.

Predictions are appended to `OUT/predictions.jsonl` as each batch finishes (pid, protocol, the raw text of each pass,
the final text, the parsed letter and how it was parsed); a rerun skips the pids already there. A problem whose image
is missing or unreadable, or whose record is malformed, is written with an `error`, scored as wrong and listed - it
never stops the run. `OUT/answers.jsonl` holds the same answers in the original `model_vqa_science.py` format, so the
original `eval_science_qa.py` can score them too.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from ..evaluation.generation import Sampling, compile_for_decoding, generate_texts, load_model
from .loaders import load_scienceqa
from .predictions import PredictionsFile, drop_partial_last_line, given_prediction, read_predictions
from .problems import Problem
from .protocols import CONVERSATIONS, IMAGE_NEWLINES, Protocol, get_protocol, published_eval_processor
from .report import write_report
from .scoring import score

logger = logging.getLogger(__name__)

def _images(problems: list[Problem]) -> list:
    return [problem.image for problem in problems if problem.has_image]


def answer_batch(model, processor, protocol: Protocol, problems: list[Problem], conversation: str = "simple",
                 max_new_tokens: int | None = None, sampling: Sampling | None = None) -> list[dict]:
    """Run the protocol's generation passes on a batch of problems (images already loaded); one row per problem."""
    prompts = [protocol.prompt(processor, problem, conversation) for problem in problems]
    budget = max_new_tokens or protocol.max_new_tokens
    first = generate_texts(model, processor, prompts, _images(problems), budget, list(protocol.stop_strings), sampling)
    rows = []
    for problem, raw in zip(problems, first):
        text = protocol.first_pass_text(raw)
        rows.append({"pid": problem.pid, "output_pass1": raw, "text": text})
    if protocol.answer_prompter:
        second_prompts = [protocol.answer_prompt(prompt, row["text"], conversation) for prompt, row in zip(prompts, rows)]
        second = generate_texts(model, processor, second_prompts, _images(problems), protocol.answer_max_new_tokens,
                                list(protocol.stop_strings), sampling)
        for row, raw in zip(rows, second):
            row.update(reasoning=row["text"], output_pass2=raw, text=protocol.combine(row["text"], raw))
    return rows


def _length_key(protocol: Protocol, problem: Problem) -> tuple:
    """Sort key that puts problems of similar prompt length in one batch (image problems together)."""
    text = next(item["text"] for item in protocol.user_content(problem) if item["type"] == "text")
    return problem.has_image, len(text)


def _question_for_answers_file(protocol: Protocol, problem: Problem) -> str:
    """The original's `cur_prompt`: the user text with "<image>" where the image goes."""
    parts = [item.get("text") if item["type"] == "text" else "<image>" for item in protocol.user_content(problem)]
    return "\n".join(parts)


def score_predictions(problems: list[Problem], broken: list[Problem], predictions: PredictionsFile,
                      protocol: Protocol, seed: int = 0) -> dict:
    """Score every problem of the split (missing predictions are wrong) under the protocol's own answer rules."""
    rng = random.Random(seed)
    chosen, statuses, sources = {}, Counter(), Counter()
    split_pids = {p.pid for p in problems} | {p.pid for p in broken}
    for problem in problems:
        row = predictions.rows.get(problem.pid)
        if row is None:
            statuses["missing"] += 1
            continue
        if row.get("error"):
            statuses["errored"] += 1
            continue
        if isinstance(row.get("text"), str):
            parsed = protocol.parse(row["text"], len(problem.choices), rng)
            chosen[problem.pid] = parsed.index
            statuses[parsed.status] += 1
            sources["text"] += 1
            continue
        given = given_prediction(row, len(problem.choices))
        if given is None:
            statuses["unreadable_row"] += 1
            continue
        chosen[problem.pid] = given[0]
        statuses["parsed" if given[0] >= 0 else "failed"] += 1
        sources[f"pred_{given[1]}"] += 1
    result = score(problems + broken, chosen, parse_failures=statuses["failed"] + statuses["fallback"])
    errors = [{"pid": p.pid, "reason": p.extra["error"]} for p in broken]
    errors += [{"pid": pid, "reason": row["error"]} for pid, row in predictions.rows.items()
               if row.get("error") and pid in split_pids]
    result["errors"] = sorted(errors, key=lambda e: e["pid"])
    result["counts"]["errors"] = len(result["errors"])
    result["parse"] = {"protocol": protocol.name, "statuses": dict(statuses), "sources": dict(sources),
                       "fallback_seed": seed if protocol.name == "scitune" else None,
                       "letter_predictions_accepted": sources.get("pred_letter", 0)}
    result["predictions_file"] = {**predictions.report(),
                                  "pids_outside_split": sorted(set(predictions.rows) - split_pids)}
    return result


def _load_images(batch: list[Problem]) -> tuple[list[Problem], list[dict]]:
    """(problems whose image loaded, error rows for the others)."""
    ready, errors = [], []
    for problem in batch:
        try:
            if problem.has_image:
                problem.image = problem.load_image()
            ready.append(problem)
        except (OSError, ValueError) as err:  # missing, corrupt, or refused as a decompression bomb
            errors.append({"pid": problem.pid, "text": None, "pred": -1, "answer": problem.answer, "correct": False,
                           "error": f"unreadable_image: {type(err).__name__}: {err}"})
    return ready, errors


def run_scienceqa(model_dir: str | None, data_dir: str, output_dir: str, split: str = "test",
                  protocol: str = "scitune", conversation: str = "simple", batch_size: int = 8,
                  limit: int | None = None, max_new_tokens: int | None = None, temperature: float = 0.0,
                  seed: int = 0, image_newline: str = "kept", score_only: bool = False,
                  predictions_file: str | None = None, progress: bool = True, model=None, processor=None,
                  allow_images_outside: bool = False, compile_decoding: bool = False) -> dict:
    """Evaluate (or, with `score_only`, rescore) one split; writes predictions, answers, scores and the report.

    `image_newline` (scitune protocol): "kept" tokenizes as the published evaluation did (the newline before an
    image stays), "stripped" as training did (and as the processor does). `compile_decoding` decodes with a static
    KV cache and a compiled language model (`evaluation.generation.compile_for_decoding`: same answers; pays over
    thousands of problems)."""
    chosen = get_protocol(protocol)
    if conversation not in CONVERSATIONS:
        raise ValueError(f"conversation {conversation!r}: choose one of {CONVERSATIONS}")
    if image_newline not in IMAGE_NEWLINES:
        raise ValueError(f"image_newline {image_newline!r}: choose one of {IMAGE_NEWLINES}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_scienceqa(data_dir, split, allow_outside_images=allow_images_outside)
    problems = loaded.problems[:limit] if limit else loaded.problems
    broken = loaded.broken_problems()
    predictions_path = Path(predictions_file) if predictions_file else out / "predictions.jsonl"
    predictions = read_predictions(predictions_path, must_exist=score_only)
    sampling = Sampling(temperature=temperature, seed=seed) if temperature > 0 else None
    if not score_only:
        if model is None:
            model, processor = load_model(model_dir)
        if compile_decoding:
            compile_for_decoding(model)
        if protocol == "scitune" and image_newline == "kept":
            processor = published_eval_processor(processor)
        # Problems of similar prompt length share a batch (image problems together): less padding to compute.
        todo = sorted((p for p in problems if p.pid not in predictions.rows), key=lambda p: _length_key(chosen, p))
        bar = tqdm(total=len(problems), initial=len(problems) - len(todo), desc=f"ScienceQA {split} ({protocol})",
                   unit="problem", disable=not progress)
        drop_partial_last_line(predictions_path)
        with predictions_path.open("a") as handle:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                ready, new_rows = _load_images(batch)
                if ready:
                    new_rows += answer_batch(model, processor, chosen, ready, conversation, max_new_tokens, sampling)
                for row in new_rows:
                    row.update(protocol=protocol, conversation=conversation)
                    handle.write(json.dumps(row) + "\n")
                    predictions.rows[row["pid"]] = row
                handle.flush()
                bar.update(len(batch))
        bar.close()
        write_answers_file(out / "answers.jsonl", chosen, problems, predictions, model_dir)
    result = score_predictions(problems, broken, predictions, chosen, seed)
    result["load_notes"] = loaded.notes
    for note in loaded.notes:
        logger.warning("%s: %s", data_dir, note)
    result.update({"model": model_dir, "data": str(data_dir), "split": split, "protocol": protocol,
                   "conversation": conversation if protocol == "scitune" else None,
                   "image_newline": image_newline if protocol == "scitune" else None,
                   "decoding": f"sampling T={temperature} top-k 50 seed {seed}" if sampling else "greedy"})
    (out / "scores.json").write_text(json.dumps(result, indent=2))
    write_report(result, out)
    return result


def write_answers_file(path: Path, protocol: Protocol, problems: list[Problem], predictions: PredictionsFile,
                       model_dir: str | None) -> None:
    """The answers in `model_vqa_science.py`'s JSONL format (question_id, prompt, text, answer_id, model_id)."""
    with path.open("w") as handle:
        for problem in problems:
            row = predictions.rows.get(problem.pid)
            if row is None or row.get("error") or not isinstance(row.get("text"), str):
                continue
            handle.write(json.dumps({"question_id": problem.pid,
                                     "prompt": _question_for_answers_file(protocol, problem),
                                     "text": row["text"], "answer_id": uuid.uuid4().hex[:22],
                                     "model_id": str(model_dir), "metadata": {}}) + "\n")
