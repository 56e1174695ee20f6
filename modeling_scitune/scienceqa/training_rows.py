"""ScienceQA problems as stage-2 training rows (TRL's conversational vision format: `messages` + `images`)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from PIL import Image

from ..schema import CONVERSATION_FEATURES
from .formats import to_conversation
from .loaders import load_scienceqa
from .problems import Problem, with_shuffled_options

logger = logging.getLogger(__name__)


def stored_image(problem: Problem):
    """The problem's image as a `datasets.Image` value. An RGB image file goes in as the file's own bytes: decoding it
    only to have `datasets` encode it again as PNG costs a decode and an encode per row and stores the same pixels.
    Any other image (another mode, already decoded, unreadable) goes through `Problem.load_image`, which converts it to
    RGB or says which file is missing or broken."""
    if isinstance(problem.image, (str, Path)):
        try:
            with Image.open(problem.image) as image:  # reads the header, not the pixels
                if image.mode == "RGB":
                    image.verify()  # a truncated or damaged file fails here, then with its reason below
                    return {"bytes": Path(problem.image).read_bytes(), "path": None}
        except Exception:  # noqa: BLE001 - load_image reports it
            pass
    return problem.load_image()


def scienceqa_dataset(sqa_dir: str, fmt: str = "QCM-LEPA", split: str = "train", limit: int | None = None,
                      option_orders: int = 1, seed: int = 0):
    """The split's problems as a `datasets.Dataset` (text-only problems have no image). `option_orders` > 1 adds
    copies of each problem with its options shuffled (see `with_shuffled_options`)."""
    import datasets

    loaded = load_scienceqa(sqa_dir, split)
    if loaded.errors:
        logger.warning("%d malformed ScienceQA records skipped for training: %s", len(loaded.errors), loaded.errors[:5])
    problems = loaded.problems[:limit] if limit else loaded.problems
    if not problems:
        raise ValueError(f"no ScienceQA problems in split {split!r} of {sqa_dir}")
    rng = random.Random(f"option-orders-{seed}")
    problems = [p if copy == 0 else with_shuffled_options(p, rng) for p in problems for copy in range(option_orders)]
    rows = [to_conversation(p, fmt, load_image=stored_image) for p in problems]
    return datasets.Dataset.from_list(rows, features=CONVERSATION_FEATURES)
