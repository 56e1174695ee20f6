"""ScienceQA prompt formats (named as in LLaVA / SciTune: input letters - output letters) and TRL conversations.

Input: Q = question, C = context (the hint, "N/A" when empty), M = options "(A) x (B) y".
Output: L = lecture, E = explanation (solution), P = a "###" separator, A = answer.
- QCM-LEPA (SciTune / LLaVA-v0, the paper's stage 2): "LECTURE: ...\\nSOLUTION: ...\\n###\\nANSWER: X."
- QCM-LEA (LLaVA v1): "{lecture} {solution} The answer is X."
- QCM-A: "The answer is X."
- CQM-A (LLaVA-1.5): context first, "Answer with the option's letter from the given choices directly.", answer "X"
- lmms-eval: "Context: ..." only when there is a hint, "A. choice" lines, same instruction, answer "X".
The image (when the problem has one) follows the text, as in SciTune's data.
"""

from __future__ import annotations

from .problems import LETTERS, Problem

FORMATS = ("QCM-LEPA", "QCM-LEA", "QCM-A", "CQM-A", "lmms-eval")
DIRECT_ANSWER = "Answer with the option's letter from the given choices directly."


def _options(problem: Problem) -> str:
    return " ".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(problem.choices))


def build_question(problem: Problem, fmt: str = "QCM-LEPA") -> str:
    """The user text (without the image placeholder)."""
    context = problem.hint.strip() or "N/A"
    if fmt in ("QCM-LEPA", "QCM-LEA", "QCM-A"):
        return f"{problem.question}\nContext: {context}\nOptions: {_options(problem)}"
    if fmt == "CQM-A":
        return f"Context: {context}\nQuestion: {problem.question}\nOptions: {_options(problem)}\n{DIRECT_ANSWER}"
    if fmt == "lmms-eval":
        lines = [f"Context: {problem.hint.strip()}"] if problem.hint.strip() else []
        lines.append(problem.question)
        lines += [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(problem.choices)]
        return "\n".join(lines) + "\n" + DIRECT_ANSWER
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def build_answer(problem: Problem, fmt: str = "QCM-LEPA") -> str:
    """The target text the model is trained to produce."""
    letter = problem.answer_letter
    if fmt == "QCM-LEPA":
        lines = []
        if problem.lecture.strip():
            lines.append(f"LECTURE: {problem.lecture.strip()}")
        if problem.solution.strip():
            lines.append(f"SOLUTION: {problem.solution.strip()}")
        return "\n".join(lines + ["###", f"ANSWER: {letter}."])
    if fmt == "QCM-LEA":
        return " ".join(p for p in (problem.lecture.strip(), problem.solution.strip()) if p) + f" The answer is {letter}."
    if fmt == "QCM-A":
        return f"The answer is {letter}."
    if fmt in ("CQM-A", "lmms-eval"):
        return letter
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def user_message(problem: Problem, fmt: str = "QCM-LEPA") -> dict:
    content = [{"type": "text", "text": build_question(problem, fmt)}]
    if problem.has_image:
        content.append({"type": "image", "text": None})
    return {"role": "user", "content": content}


def to_conversation(problem: Problem, fmt: str = "QCM-LEPA") -> dict:
    """TRL conversational vision row: `messages` (user + assistant) and `images` (0 or 1 image)."""
    return {
        "messages": [user_message(problem, fmt),
                     {"role": "assistant", "content": [{"type": "text", "text": build_answer(problem, fmt)}]}],
        "images": [problem.load_image()] if problem.has_image else [],
    }
