"""ScienceQA problems as stage-2 training rows (TRL's conversational vision format: `messages` + `images`)."""

from __future__ import annotations

import logging
import random

from ..schema import CONVERSATION_FEATURES
from .formats import to_conversation
from .loaders import load_scienceqa
from .problems import with_shuffled_options

logger = logging.getLogger(__name__)


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
    return datasets.Dataset.from_list([to_conversation(p, fmt) for p in problems], features=CONVERSATION_FEATURES)
