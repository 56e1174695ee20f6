"""Figure-type classification and captioning scores on an instruction dataset (`scitune-data` output).

As in SciTune's analysis notebooks: the predicted type is the first of the five SciCap type names found in the
generated text; captions are scored per example with Google-BLEU (nltk's GLEU, what HF `evaluate`'s google_bleu
wraps) and ROUGE-L F1 (rouge-score), then averaged. The generated caption is the first output line with a leading
type name removed; the reference is the row's caption.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tqdm.auto import tqdm

from ..data.records import FIGURE_TYPES

_TYPE_PATTERN = re.compile("|".join(re.escape(t) for t in FIGURE_TYPES), flags=re.IGNORECASE)


def first_figure_type(text: str) -> str | None:
    match = _TYPE_PATTERN.search(text or "")
    return next(t for t in FIGURE_TYPES if t.lower() == match.group(0).lower()) if match else None


def caption_from_output(text: str) -> str:
    line = (text or "").strip().split("\n")[0]
    for figure_type in FIGURE_TYPES:
        if line.lower().startswith(figure_type.lower()):
            return line[len(figure_type):].strip()
    return line.strip()


def caption_scores(prediction: str, reference: str) -> dict:
    from nltk.translate.gleu_score import sentence_gleu
    from rouge_score import rouge_scorer

    tokens = lambda text: re.findall(r"\w+|[^\w\s]", text.lower())  # noqa: E731
    gleu = sentence_gleu([tokens(reference)], tokens(prediction)) if prediction.strip() else 0.0
    rouge = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    return {"google_bleu": gleu, "rougeL": rouge}


def run_figure_tasks(model_dir: str, data_dir: str, output_dir: str, split: str = "test", limit: int | None = None,
                     batch_size: int = 8, max_new_tokens: int = 48, model=None, processor=None,
                     progress: bool = True) -> dict:
    import datasets

    from .generation import generate_texts, load_model

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = datasets.load_from_disk(str(data_dir))[split]
    if limit:
        dataset = dataset.select(range(min(limit, len(dataset))))
    if model is None:
        model, processor = load_model(model_dir)
    rows = []
    for start in tqdm(range(0, len(dataset), batch_size), desc=f"figure tasks {split}", disable=not progress):
        batch = dataset[start:start + batch_size]
        prompts = [processor.apply_chat_template([{"role": "user", "content": [
            {"type": "text", "text": messages[0]["content"][0]["text"]}, {"type": "image"}]}], add_generation_prompt=True)
            for messages in batch["messages"]]
        images = [row_images[0].convert("RGB") for row_images in batch["images"]]
        texts = generate_texts(model, processor, prompts, images, max_new_tokens)
        for figure_id, truth, caption, text in zip(batch["figure_id"], batch["figure_type"], batch["caption"], texts):
            predicted_caption = caption_from_output(text)
            rows.append({"figure_id": figure_id, "figure_type": truth, "predicted_type": first_figure_type(text),
                         "output": text, "caption": caption, "predicted_caption": predicted_caption,
                         **caption_scores(predicted_caption, caption)})
    result = summarize(rows)
    result.update({"model": model_dir, "data": str(data_dir), "split": split})
    with (out / "figure_predictions.jsonl").open("w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    (out / "figure_tasks.json").write_text(json.dumps(result, indent=2))
    plot_confusion(result, out / "confusion.png")
    return result


def summarize(rows: list[dict]) -> dict:
    typed = [r for r in rows if r["figure_type"] in FIGURE_TYPES]
    labels = list(FIGURE_TYPES) + ["none"]
    confusion = {t: {p: 0 for p in labels} for t in FIGURE_TYPES}
    for row in typed:
        confusion[row["figure_type"]][row["predicted_type"] or "none"] += 1
    per_type = {t: round(100 * confusion[t][t] / max(sum(confusion[t].values()), 1), 2) for t in FIGURE_TYPES}
    correct = sum(r["predicted_type"] == r["figure_type"] for r in typed)
    n = max(len(rows), 1)
    return {
        "figure_type_accuracy": round(100 * correct / max(len(typed), 1), 2) if typed else None,
        "chance": round(100 / len(FIGURE_TYPES), 2),
        "per_type_accuracy": per_type,
        "confusion": confusion,
        "google_bleu": round(sum(r["google_bleu"] for r in rows) / n, 4),
        "rougeL": round(sum(r["rougeL"] for r in rows) / n, 4),
        "examples": len(rows),
    }


def plot_confusion(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    labels = list(FIGURE_TYPES) + ["none"]
    matrix = np.array([[result["confusion"][t][p] for p in labels] for t in FIGURE_TYPES])
    figure = Figure(figsize=(6.5, 4.5), dpi=100)
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(FIGURE_TYPES)), FIGURE_TYPES)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xlabel("predicted (first type name in the output)")
    ax.set_ylabel("true type")
    ax.set_title(f"Figure type accuracy {result['figure_type_accuracy']}% (chance {result['chance']}%)")
    figure.tight_layout()
    figure.savefig(path)
