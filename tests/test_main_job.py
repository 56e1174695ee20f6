"""The main job end to end (miniature settings): every step runs, the summary is complete, and the same seed gives
the same numbers."""

import json

from modeling_scitune.main_job import run_main_job


def numbers(summary):
    return {k: summary[k] for k in ("figure_tasks", "scienceqa")}


def test_main_job_runs_end_to_end_and_is_reproducible(tmp_path):
    first = run_main_job(str(tmp_path / "a"), seed=1, figures=30, problems=40, smoke=True)
    report = tmp_path / "a" / "report"
    assert json.loads((report / "summary.json").read_text())["seed"] == 1
    assert "figure-type accuracy" in (report / "summary.md").read_text()
    assert (report / "loss_curves.png").stat().st_size > 5000
    assert set(first["timings"]) >= {"stage 1: concept alignment (projector only)", "stage 2: ScienceQA instruction tuning"}
    assert first["scienceqa"]["counts"]["problems"] == 4 and first["figure_tasks"]["examples"] == 5
    for name in ("backbones", "stage1", "stage2"):
        assert (tmp_path / "a" / name).is_dir()
    assert first["provenance"] == {"figures": "built", "scienceqa": "built", "backbones": "pretrained"}
    # the second run reuses the data and the pretrained backbones (tests use their own SCITUNE_CACHE) and gives the
    # same numbers
    second = run_main_job(str(tmp_path / "b"), seed=1, figures=30, problems=40, smoke=True)
    assert second["provenance"] == {"figures": "reused from the cache", "scienceqa": "reused from the cache",
                                    "backbones": "reused from the cache"}
    assert numbers(second) == numbers(first)
    assert second["timings"]["pretrain backbones (CLIP + LLaMA)"] < first["timings"]["pretrain backbones (CLIP + LLaMA)"]
    assert "Training precision" in (tmp_path / "b" / "report" / "summary.md").read_text()


def test_main_job_with_a_given_llm_pretrains_clip_only(tmp_path, monkeypatch):
    """A real LLM behind the projector (here: any local LLaMA folder) skips the miniature LLaMA's pretraining, and its
    summary compares it with the miniature run recorded on the same seed and data."""
    from modeling_scitune.main_job import format_summary

    monkeypatch.setenv("SCITUNE_CACHE", str(tmp_path / "cache"))
    from modeling_scitune.training.backbone_config import load_backbone_config
    from modeling_scitune.training.backbones import pretrain_backbones
    from modeling_scitune.main_job import SMOKE, embedded_figures, embedded_scienceqa

    embedded_figures(30, tmp_path / "figures", 1), embedded_scienceqa(40, tmp_path / "sqa", 1)
    cfg = load_backbone_config(overrides=SMOKE["backbones"])
    pretrain_backbones(str(tmp_path / "figures"), str(tmp_path / "given"), cfg, sqa_dir=str(tmp_path / "sqa"))
    summary = run_main_job(str(tmp_path / "run"), seed=1, figures=30, problems=40, smoke=True,
                           text_model=str(tmp_path / "given" / "llama"))
    assert "pretrain backbones (CLIP only: the LLM is given)" in summary["timings"]
    assert not any("CLIP + LLaMA" in step for step in summary["timings"])
    assert (tmp_path / "run" / "backbones" / "clip").is_dir() and not (tmp_path / "run" / "backbones" / "llama").exists()
    assert summary["text_model"] == str(tmp_path / "given" / "llama")
    assert summary["scienceqa"]["counts"]["problems"] == 4
    assert summary["comparison"] is None  # no miniature run on this seed and data yet
    assert "No miniature-LLaMA run with this seed and data" in format_summary(summary)

    miniature = run_main_job(str(tmp_path / "mini"), seed=1, figures=30, problems=40, smoke=True)
    other_seed = run_main_job(str(tmp_path / "run2"), seed=2, figures=30, problems=40, smoke=True,
                              text_model=str(tmp_path / "given" / "llama"))
    assert other_seed["comparison"] is None  # the seed-1 run is not compared with a seed-2 one
    again = run_main_job(str(tmp_path / "run3"), seed=1, figures=30, problems=40, smoke=True,
                         text_model=str(tmp_path / "given" / "llama"))
    table = again["comparison"].splitlines()
    assert table[0] == f"| | miniature LLaMA | {again['text_model']} |"
    row = next(line for line in table if line.startswith("| ScienceQA Avg"))
    assert row == (f"| ScienceQA Avg (%) | {miniature['scienceqa']['official']['Avg']} | "
                   f"{again['scienceqa']['official']['Avg']} |")
    row = next(line for line in table if line.startswith("| figure type"))
    assert row.endswith(f"| {miniature['figure_tasks']['figure_type_accuracy']} | "
                        f"{again['figure_tasks']['figure_type_accuracy']} |")
    assert again["comparison"] in (tmp_path / "run3" / "report" / "summary.md").read_text()


def test_backbones_config_file_sets_the_miniature_backbones(tmp_path):
    """`--backbones-config` values reach the backbones; the job's own seed and precision win over the file."""
    import pytest

    from modeling_scitune.main_job import backbone_settings

    config = tmp_path / "backbones.yaml"
    config.write_text("text_hidden: 96\nllm_steps: 7\nseed: 5\n")
    cfg = backbone_settings(str(config), seed=2, bf16=False, smoke=False)
    assert (cfg.text_hidden, cfg.llm_steps, cfg.seed, cfg.bf16) == (96, 7, 2, False)
    assert backbone_settings(None, seed=0, bf16=True, smoke=False).text_hidden != 96
    config.write_text("text_hiden: 96\n")
    with pytest.raises(ValueError, match="text_hiden"):
        backbone_settings(str(config), seed=0, bf16=True, smoke=False)
