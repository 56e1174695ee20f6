"""One ScienceQA problem, whatever layout it came from (lupantech JSON, HF parquet, the embedded set)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

LETTERS = "ABCDE"


@dataclass
class Problem:
    pid: str
    question: str
    choices: list[str]
    answer: int
    hint: str = ""
    image: str | Path | Image.Image | None = None  # path, decoded image, or None for text-only problems
    task: str = "closed choice"
    grade: str = ""
    subject: str = ""
    topic: str = ""
    category: str = ""
    skill: str = ""
    lecture: str = ""
    solution: str = ""
    split: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def has_image(self) -> bool:
        return self.image is not None

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer]

    def load_image(self) -> Image.Image:
        """The problem's image as RGB; FileNotFoundError / OSError say which file is missing or broken."""
        if isinstance(self.image, Image.Image):
            return self.image.convert("RGB")
        if self.image is None:
            raise ValueError(f"problem {self.pid} has no image")
        path = Path(self.image)
        if not path.is_file():
            raise FileNotFoundError(f"problem {self.pid}: image file {path} does not exist")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except Image.DecompressionBombError as err:  # not an OSError: a crafted header, refused with its reason
            raise ValueError(f"problem {self.pid}: image {path} refused ({err})") from err
        except OSError as err:  # not an image, truncated, damaged: PIL's message alone names no file
            raise OSError(f"problem {self.pid}: image {path} cannot be read ({err})") from err


def with_shuffled_options(problem: Problem, rng) -> Problem:
    """The same problem with its options in another order (the answer index follows its option).

    Training on several orders of each problem makes the letter depend on where the answer sits, not on the problem:
    a small model otherwise memorises "this question -> B" instead of looking the answer up among the options."""
    order = list(range(len(problem.choices)))
    rng.shuffle(order)
    return replace(problem, choices=[problem.choices[i] for i in order], answer=order.index(problem.answer),
                   extra={**problem.extra, "option_order": order})


def validate_problem(problem: Problem) -> None:
    """Raise ValueError naming what is malformed (choices, answer index, question)."""
    if not isinstance(problem.question, str) or not problem.question.strip():
        raise ValueError(f"problem {problem.pid}: empty question")
    if not isinstance(problem.choices, list) or not 2 <= len(problem.choices) <= len(LETTERS):
        raise ValueError(f"problem {problem.pid}: needs 2-5 choices, got {problem.choices!r}")
    if not all(isinstance(choice, str) for choice in problem.choices):
        raise ValueError(f"problem {problem.pid}: choices must be strings, got {problem.choices!r}")
    if isinstance(problem.answer, bool) or not isinstance(problem.answer, int) \
            or not 0 <= problem.answer < len(problem.choices):
        raise ValueError(f"problem {problem.pid}: answer {problem.answer!r} is not an index into "
                         f"{len(problem.choices)} choices")
    for name in ("hint", "lecture", "solution", "grade", "subject", "topic"):
        if not isinstance(getattr(problem, name), str):
            raise ValueError(f"problem {problem.pid}: {name} must be a string, got {getattr(problem, name)!r}")
