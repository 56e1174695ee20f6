"""The embedded figure corpus: synthetic scientific figures with captions, OCR text, paragraphs and mentions.

This is SciTune's embedded default (the main job and the tests use it): a deterministic stand-in for SciCap that
needs no download. Each figure's caption, paragraph and mention are written from the facts the drawing returned,
so the text describes what is actually drawn; the OCR field holds the words rendered in the figure (axis labels,
legend, categories, node names), which is what an ideal OCR reads and what tesseract mostly reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from tqdm.auto import tqdm

from .records import FIGURE_TYPES, FigureRecord
from .synthetic_figures import draw_figure

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def write_caption(figure_type: str, facts: dict, rng: random.Random) -> str:
    """A caption that states what the drawing shows (from its facts), in one of several phrasings."""
    if figure_type == "Graph Plot":
        trends = "; ".join(f"{name} {trend}" for name, trend in zip(facts["series"], facts["trends"]))
        head = rng.choice(("{y} versus {x} for {s}.", "{y} as a function of {x} ({s}).", "Evolution of {y} over {x} for {s}."))
        return head.format(y=facts["y_label"], x=facts["x_label"], s=_join(facts["series"])) + f" {trends}."
    if figure_type == "Scatterplot":
        corr = {"positive": "a positive correlation", "negative": "a negative correlation", "no": "no clear correlation"}
        head = rng.choice(("{y} against {x} for {s}", "Relation between {x} and {y} in {s}", "{y} plotted over {x} for {s}"))
        return head.format(y=facts["y_label"], x=facts["x_label"], s=_join(facts["series"])) + (
            f"; the points show {corr[facts['correlation']]}.")
    if figure_type == "Bar Chart":
        head = rng.choice(("{y} for {c}.", "Comparison of {y} across {c}.", "Measured {y} of {c}."))
        return head.format(y=facts["y_label"], c=_join(facts["categories"])) + (
            f" {facts['largest']} is the highest and {facts['smallest']} the lowest.")
    if figure_type == "Node Diagram":
        layout = {"chain": "a pipeline", "circle": "a cycle", "tree": "a hub"}[facts["layout"]]
        return rng.choice((
            "Overview of {layout} of {n} components ({names}) with {e} connections.",
            "Architecture as {layout}: {names}; {e} arrows link the {n} blocks.",
        )).format(layout=layout, n=facts["node_count"], names=_join(facts["nodes"]), e=facts["edge_count"])
    if figure_type == "Equation":
        return rng.choice(("The {eq} used in this work.", "Definitions: the {eq}.", "We recall the {eq}.")).format(
            eq=_join(facts["equations"]))
    raise ValueError(f"unknown figure type {figure_type!r}")


def write_paragraph_and_mention(figure_type: str, facts: dict, number: int, rng: random.Random) -> tuple[str, str]:
    """A body paragraph that discusses the figure and a one-sentence mention, both citing "Figure N"."""
    if figure_type in ("Graph Plot", "Scatterplot"):
        detail = f"{facts['y_label']} is reported against {facts['x_label']} for {facts['series_count']} series"
    elif figure_type == "Bar Chart":
        detail = f"{facts['y_label']} is compared across {len(facts['categories'])} groups, led by {facts['largest']}"
    elif figure_type == "Node Diagram":
        detail = f"the system is organised into {facts['node_count']} blocks starting at {facts['first']}"
    else:
        detail = f"we state the {_join(facts['equations'])} that the analysis relies on"
    opener = rng.choice(("In our experiments", "To make the setup concrete", "For completeness", "As a summary"))
    paragraph = f"{opener}, {detail} (Figure {number}). These results are discussed in the next section."
    mention = rng.choice(("As shown in Figure {n}, {d}.", "Figure {n} shows that {d}.", "We refer to Fig. {n}: {d}."))
    return paragraph, mention.format(n=number, d=detail)


def make_synthetic_record(index: int, seed: int = 0) -> FigureRecord:
    """Figure `index` of the corpus with seed `seed`: the type cycles through the 5 types (balanced classes)."""
    figure_type = FIGURE_TYPES[index % len(FIGURE_TYPES)]
    rng = random.Random(f"scitune-synthetic-{seed}-{index}")
    png, facts = draw_figure(figure_type, rng)
    number = rng.randint(1, 12)
    caption = write_caption(figure_type, facts, rng)
    paragraph, mention = write_paragraph_and_mention(figure_type, facts, number, rng)
    return FigureRecord(
        figure_id=f"synthetic-{seed}-{index:06d}",
        image=png,
        caption=caption,
        figure_type=figure_type,
        ocr=list(facts.pop("text")),
        paragraphs=[paragraph],
        mentions=[mention],
        source={"paper_id": f"synthetic-{seed}", "file": "generated", "page": 0},
        meta=facts,
    )


def split_of(index: int, n: int, seed: int = 0) -> str:
    """Deterministic train/validation/test assignment with the 5 types balanced inside every split."""
    block = index // len(FIGURE_TYPES)  # one block = one figure of each type
    n_blocks = max(n // len(FIGURE_TYPES), 1)
    order = list(range(n_blocks))
    random.Random(f"split-{seed}").shuffle(order)
    rank = order.index(block) if block < n_blocks else block
    held_out = max(1, round(n_blocks * SPLIT_FRACTIONS["test"])) if n_blocks >= 3 else 0
    train_end = n_blocks - 2 * held_out
    return "train" if rank < train_end else "validation" if rank < train_end + held_out else "test"


def _make_chunk(args: tuple[int, int, int]) -> list[FigureRecord]:
    start, stop, seed = args
    return [make_synthetic_record(i, seed) for i in range(start, stop)]


def generate_synthetic_records(n: int, seed: int = 0, workers: int = 2, progress: bool = True) -> Iterator[FigureRecord]:
    """Yield `n` records in index order, rendered in `workers` processes with a progress bar."""
    chunk = 25
    jobs = [(start, min(start + chunk, n), seed) for start in range(0, n, chunk)]
    bar = tqdm(total=n, desc="drawing figures", unit="fig", disable=not progress)
    if workers <= 1:
        results = map(_make_chunk, jobs)
        for records in results:
            bar.update(len(records))
            yield from records
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for records in pool.map(_make_chunk, jobs):
                bar.update(len(records))
                yield from records
    bar.close()
