import json

import pytest

from modeling_scitune.data.builders import build_synthetic
from modeling_scitune.evaluation.figure_tasks import (caption_from_output, caption_scores, first_figure_type,
                                                      run_figure_tasks, summarize)


def test_first_type_name_wins():
    assert first_figure_type("It is a bar chart, not a Graph Plot") == "Bar Chart"
    assert first_figure_type("Scatterplot of loss") == "Scatterplot"
    assert first_figure_type("a picture") is None
    assert caption_from_output("Graph Plot Loss versus epoch.\nEpoch\tLoss") == "Loss versus epoch."


def test_caption_scores_reward_overlap():
    same = caption_scores("loss versus epoch for two models", "loss versus epoch for two models")
    other = caption_scores("a bar chart of cats", "loss versus epoch for two models")
    assert same["google_bleu"] == pytest.approx(1.0) and same["rougeL"] == pytest.approx(1.0)
    assert other["google_bleu"] < 0.1 and other["rougeL"] < 0.2


def test_summary_confusion_and_accuracy():
    rows = [{"figure_type": t, "predicted_type": p, "google_bleu": 0.5, "rougeL": 0.25}
            for t, p in [("Bar Chart", "Bar Chart"), ("Bar Chart", "Graph Plot"), ("Equation", None), ("Equation", "Equation")]]
    result = summarize(rows)
    assert result["figure_type_accuracy"] == 50.0
    assert result["confusion"]["Bar Chart"]["Graph Plot"] == 1 and result["confusion"]["Equation"]["none"] == 1
    assert result["per_type_accuracy"]["Equation"] == 50.0 and result["google_bleu"] == 0.5


def test_end_to_end_writes_scores_and_plot(tiny_linear_dir, tmp_path):
    build_synthetic(15, tmp_path / "data", workers=1)
    result = run_figure_tasks(str(tiny_linear_dir), str(tmp_path / "data"), str(tmp_path / "out"), split="test",
                              max_new_tokens=6, progress=False)
    assert result["examples"] == 5 and 0 <= result["figure_type_accuracy"] <= 100
    assert json.loads((tmp_path / "out" / "figure_tasks.json").read_text())["examples"] == 5
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 5000
    assert len((tmp_path / "out" / "figure_predictions.jsonl").read_text().splitlines()) == 5
