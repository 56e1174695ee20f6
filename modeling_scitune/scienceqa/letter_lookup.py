"""Teacher-forced answer letters: given a problem's gold lecture and solution, which option letter does the model pick?

The ScienceQA score mixes two skills: writing the right solution and then finding that solution's option letter
among the options. A small LLM learns the second last, and a wrong letter after a right solution looks the same as a
wrong solution in the score. Scoring the letter alone (one forward pass per problem over its training conversation,
the argmax over the problem's own option letters where the answer letter stands) measures the lookup by itself, in
seconds, without generation.
"""

from __future__ import annotations

from collections import Counter

import torch

from .formats import to_conversation
from .problems import LETTERS, Problem


def answer_position(input_ids: list[int], letter_ids: set[int]) -> int:
    """Where the answer letter stands: the last lone option-letter token of the conversation ("ANSWER: X.")."""
    positions = [i for i, token in enumerate(input_ids) if token in letter_ids]
    if not positions:
        raise ValueError("no lone option-letter token (A-E) in the conversation: this tokenizer writes the answer "
                         "letter inside a longer token, so the letter cannot be scored alone")
    return positions[-1]


def same_form_letter_ids(tokenizer, gold_id: int, n: int) -> list[int]:
    """The first `n` option letters written as the gold letter token is ("B", "ĠB" or "▁B": the space marker kept)."""
    marker = tokenizer.convert_ids_to_tokens(gold_id)[:-1]
    return [tokenizer.convert_tokens_to_ids(marker + letter) for letter in LETTERS[:n]]


def teacher_forced_letters(model, processor, problems: list[Problem]) -> list[int]:
    """The option index each problem's answer letter gets under teacher forcing: one forward pass over the problem's
    QCM-LEPA training conversation (gold lecture and solution), the argmax over its option letters at the answer.
    `processor` may be a bare tokenizer with a chat template (a plain causal LM such as a pretrained backbone): then
    only text-only problems can be read."""
    from ..training.answer_loss import option_letter_ids

    tokenizer = getattr(processor, "tokenizer", processor)
    letter_ids = set(option_letter_ids(tokenizer).tolist())
    picks = []
    with torch.inference_mode():
        for problem in problems:
            conversation = to_conversation(problem, "QCM-LEPA")
            text = processor.apply_chat_template(conversation["messages"], tokenize=False)
            if tokenizer is processor:
                if conversation["images"]:
                    raise ValueError(f"problem {problem.pid} has an image: a tokenizer alone cannot read it")
                inputs = tokenizer(text, add_special_tokens=not text.startswith(tokenizer.bos_token or "\0"),
                                   return_tensors="pt").to(model.device)
            else:
                inputs = processor(text=text, images=conversation["images"] or None,
                                   return_tensors="pt").to(model.device)
            ids = inputs["input_ids"][0].tolist()
            position = answer_position(ids, letter_ids)
            logits = model(**inputs).logits[0, position - 1]
            candidates = same_form_letter_ids(tokenizer, ids[position], len(problem.choices))
            picks.append(int(torch.argmax(logits[candidates])))
    return picks


def letter_lookup_report(problems: list[Problem], picks: list[int]) -> dict:
    """Accuracy overall and per category (image problems marked "/image"), and how often each letter was picked."""
    hits, totals = Counter(), Counter()
    for problem, pick in zip(problems, picks):
        key = problem.category + ("/image" if problem.has_image else "")
        hits[key] += pick == problem.answer
        totals[key] += 1
    return {"problems": len(problems),
            "accuracy": round(100 * sum(hits.values()) / max(1, len(problems)), 2),
            "per_category": {key: round(100 * hits[key] / totals[key], 2) for key in sorted(totals)},
            "picked_letters": dict(sorted(Counter(LETTERS[pick] for pick in picks).items()))}
