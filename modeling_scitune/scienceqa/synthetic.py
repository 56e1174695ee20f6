"""The embedded ScienceQA-format set, generated from the synthetic figure corpus, in the lupantech layout.

Half the problems need the image (figure type, trend, series count, correlation, largest bar, node or equation
count: all read off a freshly drawn figure); the rest are text-only, with or without a hint (context), in natural,
social and language science, at grades 1-12, so every official and SciTune-style category column has members.
Answers are shuffled among the options, so chance is 1 / number of options. Written by
`scitune-data sqa-synthetic --n N --out DIR`; read back by the same loader as the real ScienceQA.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from ..data.records import FIGURE_TYPES
from ..data.synthetic_figures import TRENDS, draw_figure

SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
FIGURE_LECTURE = "Figures show data as lines, points, bars, boxes with arrows, or formulas."
TYPE_EVIDENCE = {"Graph Plot": "lines over an axis", "Scatterplot": "separate points", "Bar Chart": "bars",
                 "Node Diagram": "boxes joined by arrows", "Equation": "a formula"}
CONTINENTS = {"Kenya": "Africa", "Peru": "South America", "Japan": "Asia", "Norway": "Europe", "Canada": "North America",
              "Fiji": "Oceania", "Egypt": "Africa", "Chile": "South America", "India": "Asia", "Spain": "Europe",
              "Mexico": "North America", "Samoa": "Oceania"}
WORDS = {"noun": ["river", "teacher", "planet", "window", "garden", "pencil", "rocket", "island"],
         "verb": ["jump", "write", "build", "swim", "listen", "carry", "paint", "climb"],
         "adjective": ["bright", "quiet", "heavy", "narrow", "gentle", "sharp", "tiny", "brave"]}
MEANINGS = {"arid": "very dry", "vast": "very large", "swift": "very fast", "frigid": "very cold", "ancient": "very old",
            "feeble": "very weak", "dim": "not bright", "rapid": "happening quickly"}
NON_CONTINENTS = ["Amazon", "Sahara", "Pacific", "Himalaya", "Danube", "Andes"]


def _options(correct: str, pool: list[str], k: int, rng: random.Random) -> tuple[list[str], int]:
    others = rng.sample([p for p in pool if p != correct], min(k - 1, len(pool) - 1))
    choices = others + [correct]
    rng.shuffle(choices)
    return choices, choices.index(correct)


def image_problem(rng: random.Random) -> tuple[dict, bytes]:
    """A natural-science problem about a freshly drawn figure: (record without pid, PNG bytes)."""
    figure_type = rng.choice(FIGURE_TYPES)
    png, facts = draw_figure(figure_type, rng)
    kind = "figure_type" if rng.random() < 0.5 else "detail"
    if kind == "figure_type":
        question = "Which type of figure is shown?"
        choices, answer = _options(figure_type, list(FIGURE_TYPES), rng.randint(3, 5), rng)
        solution = f"The figure shows {TYPE_EVIDENCE[figure_type]}, so it is a {figure_type}."
        topic, skill = "figure types", "Identify the type of a scientific figure"
    elif figure_type == "Graph Plot" and facts["series_count"] == 1:
        question = "How does the plotted quantity change from left to right?"
        choices, answer = _options(facts["trends"][0], list(TRENDS), rng.randint(2, 4), rng)
        solution = f"Follow the line from left to right: it {facts['trends'][0]}."
        topic, skill = "reading graphs", "Describe a trend in a graph"
    elif figure_type in ("Graph Plot", "Scatterplot"):
        question = "How many data series are plotted?"
        count = str(facts["series_count"])
        choices, answer = _options(count, ["1", "2", "3", "4"], rng.randint(2, 4), rng)
        solution = f"Count the line or marker styles: {count}."
        topic, skill = "reading graphs", "Count the series in a graph"
    elif figure_type == "Bar Chart":
        question = "Which category has the highest bar?"
        choices, answer = _options(facts["largest"], facts["categories"], rng.randint(2, 4), rng)
        solution = f"The tallest bar belongs to {facts['largest']}."
        topic, skill = "reading graphs", "Compare bars in a bar chart"
    elif figure_type == "Node Diagram":
        question = "How many boxes does the diagram have?"
        count = str(facts["node_count"])
        choices, answer = _options(count, ["3", "4", "5", "6"], rng.randint(2, 4), rng)
        solution = f"Count the boxes: {count}."
        topic, skill = "diagrams", "Count the parts of a diagram"
    else:
        question = "How many equations are shown?"
        count = str(facts["equation_count"])
        choices, answer = _options(count, ["1", "2", "3"], rng.randint(2, 3), rng)
        solution = f"Count the formulas: {count}."
        topic, skill = "equations", "Count equations"
    hint = "" if rng.random() < 0.7 else rng.choice(("This figure comes from a research paper.",
                                                     "The figure is part of a lab report."))
    return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": "image.png",
            "subject": "natural science", "topic": topic, "category": kind, "skill": skill,
            "lecture": FIGURE_LECTURE, "solution": solution, "figure_type": figure_type}, png


def text_problem(rng: random.Random) -> dict:
    """A text-only problem in natural, social or language science, with or without a hint."""
    kind = rng.choice(("trend_hint", "continent_hint", "continent", "meaning_hint", "word_class", "question_mark"))
    if kind == "trend_hint":
        series, trend = rng.choice(["Sample A", "Control", "Baseline", "Copper"]), rng.choice(TRENDS)
        hint = f"In the experiment, the {series} curve {trend} over time."
        question = f"What does the {series} curve do over time?"
        choices, answer = _options(trend, list(TRENDS), rng.randint(2, 4), rng)
        subject, topic, lecture = "natural science", "experiments", "A hint can describe what an experiment measured."
        solution = f"The context says the {series} curve {trend}."
    elif kind in ("continent_hint", "continent"):
        country = rng.choice(list(CONTINENTS))
        continent = CONTINENTS[country]
        if kind == "continent_hint":
            hint, question = f"{country} is a country in {continent}.", f"Which continent is {country} in?"
            choices, answer = _options(continent, sorted(set(CONTINENTS.values())), rng.randint(2, 4), rng)
            solution = f"The context says {country} is in {continent}."
        else:
            hint, question = "", "Which of these is a continent?"
            choices, answer = _options(continent, NON_CONTINENTS + [continent], rng.randint(2, 4), rng)
            solution = f"{continent} is a continent; the other options are rivers, deserts, oceans or mountains."
        subject, topic, lecture = "social science", "geography", "The seven continents are large areas of land."
    elif kind == "meaning_hint":
        word = rng.choice(list(MEANINGS))
        hint, question = f"The word {word} means {MEANINGS[word]}.", f"What does the word {word} mean?"
        choices, answer = _options(MEANINGS[word], sorted(set(MEANINGS.values())), rng.randint(2, 4), rng)
        subject, topic, lecture = "language science", "vocabulary", "Context can tell you what a word means."
        solution = f"The context says {word} means {MEANINGS[word]}."
    elif kind == "word_class":
        word_class = rng.choice(list(WORDS))
        word = rng.choice(WORDS[word_class])
        hint, question = "", f"Which word is a {word_class}?"
        pool = [word] + [rng.choice(WORDS[c]) for c in WORDS if c != word_class]
        choices, answer = _options(word, pool, len(pool), rng)
        subject, topic, lecture = "language science", "grammar", "Nouns name things, verbs show actions, adjectives describe."
        solution = f"{word} is a {word_class}."
    else:
        subject_word = rng.choice(["the cat", "my sister", "the river", "our teacher"])
        statement = f"{subject_word.capitalize()} {rng.choice(['sleeps', 'runs', 'sings', 'waits'])} today."
        question_text = f"Does {subject_word} {rng.choice(['sleep', 'run', 'sing', 'wait'])} today?"
        hint, question = "", "Which sentence is a question?"
        choices, answer = _options(question_text, [statement, question_text], 2, rng)
        subject, topic, lecture = "language science", "punctuation", "A question ends with a question mark."
        solution = f"'{question_text}' ends with a question mark."
    return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": None,
            "subject": subject, "topic": topic, "category": kind, "skill": topic, "lecture": lecture,
            "solution": solution}


def make_problem(index: int, seed: int) -> tuple[dict, bytes | None]:
    rng = random.Random(f"scitune-sqa-{seed}-{index}")
    record, png = image_problem(rng) if index % 2 == 0 else (text_problem(rng), None)
    record.update(task="closed choice", grade=f"grade{rng.randint(1, 12)}")
    return record, png


def _make_chunk(args):
    start, stop, seed = args
    return [(i, *make_problem(i, seed)) for i in range(start, stop)]


def write_synthetic_scienceqa(n: int, out: str | Path, seed: int = 0, workers: int = 2, progress: bool = True) -> dict:
    """Write `problems.json`, `pid_splits.json` and `images/{split}/{pid}/image.png` for `n` problems."""
    out = Path(out)
    order = list(range(n))
    random.Random(f"sqa-split-{seed}").shuffle(order)
    n_test = n_val = max(1, round(n * SPLITS["test"]))
    split_of = {index: "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
                for rank, index in enumerate(order)}
    jobs = [(start, min(start + 50, n), seed) for start in range(0, n, 50)]
    problems, pid_splits = {}, {"train": [], "val": [], "test": []}
    bar = tqdm(total=n, desc="ScienceQA problems", unit="problem", disable=not progress)
    with ProcessPoolExecutor(max_workers=max(workers, 1)) as pool:
        for chunk in pool.map(_make_chunk, jobs):
            for index, record, png in chunk:
                pid = str(index + 1)
                split = split_of[index]
                record["split"] = split
                problems[pid] = record
                pid_splits[split].append(pid)
                if png is not None:
                    image_dir = out / "images" / split / pid
                    image_dir.mkdir(parents=True, exist_ok=True)
                    (image_dir / "image.png").write_bytes(png)
            bar.update(len(chunk))
    bar.close()
    pid_splits["trainval"] = pid_splits["train"] + pid_splits["val"]
    (out / "problems.json").write_text(json.dumps(problems, indent=1))
    (out / "pid_splits.json").write_text(json.dumps(pid_splits))
    counts = {split: len(pids) for split, pids in pid_splits.items()}
    summary = {"n": n, "seed": seed, "counts": counts,
               "with_image": sum(p["image"] is not None for p in problems.values())}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
