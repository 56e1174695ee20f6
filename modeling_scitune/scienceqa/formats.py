"""ScienceQA prompt formats, written exactly as LLaVA's `convert_sqa_to_llava` (used by SciTune) writes them.

Names are input letters - output letters. Input: Q = question, C = context (the hint, "N/A" when empty), M = options
"(A) x (B) y". Output: L = lecture, E = explanation (solution), P = a "###" separator, A = answer.
- QCM-LEPA (SciTune / LLaVA-v0, the paper's stage 2): "LECTURE: ...\\nSOLUTION: ...\\n###\\nANSWER: X."
- QCM-LEA (LLaVA v1): "{lecture} {solution} The answer is X."
- QCM-A: "The answer is X."
- CQM-A (LLaVA-1.5 style training here): context first, "Answer with the option's letter from the given choices
  directly." appended, answer "X"
- lmms-eval: lmms-eval's `scienceqa` text: "Context: ..." only when there is a hint, "A. choice" lines, the same
  instruction, answer "X".
The original text processing is kept to the character: the context is `" ".join([hint, ""]).strip()`; a lecture or
solution's literal "\\n" pairs become newlines; double spaces are replaced once (`.replace("  ", " ")`), then the text
is stripped; and every "Question: " is removed from a QCM input. The image (when the problem has one) follows the
text, as in SciTune's data ("{input}\\n<image>").
"""

from __future__ import annotations

from .problems import LETTERS, Problem

FORMATS = ("QCM-LEPA", "QCM-LEA", "QCM-A", "CQM-A", "lmms-eval")
DIRECT_ANSWER = "Answer with the option's letter from the given choices directly."


def context_text(problem: Problem) -> str:
    return " ".join([problem.hint, ""]).strip() or "N/A"


def options_text(problem: Problem) -> str:
    return " ".join(f"({LETTERS[i]}) {choice}" for i, choice in enumerate(problem.choices))


def _tidy(text: str) -> str:
    return text.replace("  ", " ").strip()


def qcm_input(problem: Problem) -> str:
    """The QCM input of LLaVA's converter: "{question}\\nContext: {context}\\nOptions: {options}"."""
    text = _tidy(f"Question: {problem.question}\nContext: {context_text(problem)}\nOptions: {options_text(problem)}\n")
    return text.replace("Question: ", "") if text.startswith("Question: ") else text


def cqm_input(problem: Problem) -> str:
    """The CQM input of LLaVA's converter (LLaVA-1.5's ScienceQA prompt)."""
    return _tidy(f"Context: {context_text(problem)}\nQuestion: {problem.question}\nOptions: {options_text(problem)}\n")


def lmms_eval_input(problem: Problem) -> str:
    """lmms-eval `sqa_doc_to_text` (default format, without its post-prompt)."""
    context = f"Context: {problem.hint}\n" if problem.hint else ""
    choices = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(problem.choices))
    return f"{context}{problem.question}\n{choices}"


def build_question(problem: Problem, fmt: str = "QCM-LEPA") -> str:
    """The user text (without the image placeholder)."""
    if fmt in ("QCM-LEPA", "QCM-LEA", "QCM-A"):
        return qcm_input(problem)
    if fmt == "CQM-A":
        return cqm_input(problem) + "\n" + DIRECT_ANSWER
    if fmt == "lmms-eval":
        return lmms_eval_input(problem) + "\n" + DIRECT_ANSWER
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def _unescape(text: str) -> str:
    """LLaVA writes newlines as "\\\\n" and turns every "\\\\n" back into a newline: literal pairs become newlines."""
    return text.replace("\\n", "\n")


def build_answer(problem: Problem, fmt: str = "QCM-LEPA") -> str:
    """The target text the model is trained to produce."""
    letter = problem.answer_letter
    lecture, solution = _unescape(problem.lecture), _unescape(problem.solution)
    if fmt == "QCM-LEPA":
        output = f"LECTURE: {lecture}\n" if lecture.strip() else ""
        output += f"SOLUTION: {solution}\n" if solution.strip() else ""
        return _tidy(output + f"###\nANSWER: {letter}.")
    if fmt in ("QCM-LEA", "QCM-A"):
        body = f"{lecture} {solution} The answer is {letter}." if fmt == "QCM-LEA" else f"The answer is {letter}."
        output = _tidy(f"Answer: {body}")
        return output.replace("Answer: ", "") if output.startswith("Answer: ") else output
    if fmt in ("CQM-A", "lmms-eval"):
        return letter
    raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")


def user_message(problem: Problem, fmt: str = "QCM-LEPA") -> dict:
    content = [{"type": "text", "text": build_question(problem, fmt)}]
    if problem.has_image:
        content.append({"type": "image", "text": None})
    return {"role": "user", "content": content}


def to_conversation(problem: Problem, fmt: str = "QCM-LEPA", load_image=Problem.load_image) -> dict:
    """TRL conversational vision row: `messages` (user + assistant) and `images` (0 or 1 image, as `load_image`
    returns it: a decoded RGB image by default)."""
    return {
        "messages": [user_message(problem, fmt),
                     {"role": "assistant", "content": [{"type": "text", "text": build_answer(problem, fmt)}]}],
        "images": [load_image(problem)] if problem.has_image else [],
    }
