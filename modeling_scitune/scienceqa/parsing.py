"""Answer parsing: generated text -> option index, or -1 (a failed parse is wrong).

Order, as current LLaVA `eval_science_qa.py`: a bare letter ("B"), a "B. text" prefix, then the answer sentence
("The answer is B." or SciTune's "ANSWER: B."). When the answer sentence occurs several times with *different*
letters the output is ambiguous and fails; repeated identical answers are accepted. A letter beyond the options
fails. `random_fallback` (a `random.Random`) reproduces the paper's behaviour: a failure becomes a random option.
"""

from __future__ import annotations

import random
import re

from .problems import LETTERS

ANSWER_SENTENCE = re.compile(r"(?i:the answer is|answer:)\s*\(?([A-Z])\)?(?=[.\s]|$)")


def parse_letter(text: str) -> str | None:
    """The letter the output commits to, or None."""
    text = (text or "").split("</s>")[0].strip()
    if len(text) == 1 and text.isupper():
        return text
    prefix = re.match(r"^\(?([A-Z])\)?[.:)]\s", text + " ")
    if prefix and not ANSWER_SENTENCE.search(text):
        return prefix.group(1)
    letters = set(ANSWER_SENTENCE.findall(text))
    return letters.pop() if len(letters) == 1 else None


def parse_answer(text: str, n_choices: int, random_fallback: random.Random | None = None) -> int:
    letter = parse_letter(text)
    index = LETTERS.find(letter) if letter else -1
    if not 0 <= index < n_choices:
        index = -1
    if index == -1 and random_fallback is not None:
        return random_fallback.randrange(n_choices)
    return index
