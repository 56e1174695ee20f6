"""The main job in one command: data -> backbones -> stage 1 -> stage 2 -> benchmarks -> summary.

`make demo` runs this on the embedded default (synthetic scientific figures + the embedded ScienceQA-format set)
on a CPU (measured times: benchmarks/RESULTS.md), and prints and writes a summary: figure-type accuracy and
captioning scores of the stage-1 model, ScienceQA-format accuracy per category of the stage-2 model next to chance, the loss curves of
both stages, the wall time of each step and where the checkpoints are. Same seed, same numbers.

    python -m modeling_scitune.main_job [--output-dir outputs/main] [--seed 0] [--text-model smollm2 [--no-lora]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from .run_comparison import MINIATURE

DEFAULTS = {"figures": 2000, "problems": 5000}
REAL_LLM_NAMES = {"smollm2": "SmolLM2-135M-Instruct"}


class Steps:
    """Runs named steps, timing each, and prints a banner so a long run shows where it is."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    def run(self, name: str, function, *args, **kwargs):
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.timings[name] = round(time.perf_counter() - start, 1)
        print(f"--- {name}: {self.timings[name]} s", flush=True)
        return result


def plot_losses(stage_dirs: dict[str, Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.2), dpi=100)
    for i, (name, folder) in enumerate(stage_dirs.items()):
        ax = figure.add_subplot(1, len(stage_dirs), i + 1)
        history = json.loads((folder / "training_summary.json").read_text())["loss_history"]
        ax.plot([row["step"] for row in history], [row["loss"] for row in history], marker=".")
        ax.set_title(f"{name} training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
    figure.tight_layout()
    figure.savefig(path)


def format_summary(summary: dict) -> str:
    from .scienceqa.scoring import COLUMNS

    fig = summary["figure_tasks"]
    sqa = summary["scienceqa"]
    lines = [
        "# SciTune main job: summary",
        "",
        f"Language model: {summary['text_model']} (stage 2: {summary.get('stage2_training', '-')}). "
        f"Training precision: {summary['precision']}; data and backbones: "
        + ", ".join(f"{name} {how}" for name, how in summary["provenance"].items()) + ".",
        "",
        *([f"Pretrained miniature LLaMA alone, teacher-forced answer letters on the {lookup['split']} split's "
           f"{lookup['text_only_problems']} text-only ScienceQA problems: {lookup['accuracy']}%", ""]
          if (lookup := summary.get("llama_letter_lookup")) else []),
        f"Stage-1 model (projector only, both towers frozen), held-out figures ({fig['examples']}):",
        f"- figure-type accuracy: **{fig['figure_type_accuracy']}%** (chance {fig['chance']}%)",
        "- per type: " + ", ".join(f"{k} {v}%" for k, v in fig["per_type_accuracy"].items()),
        f"- captioning: Google-BLEU {fig['google_bleu']}, ROUGE-L {fig['rougeL']}",
        "",
        f"Stage-2 model, embedded ScienceQA-format test set ({sqa['counts']['problems']} problems, "
        f"{sqa['parse_failures']} parse failures):",
        "",
        "| | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        "| accuracy, official | " + " | ".join(f"{sqa['official'][c]}" for c in COLUMNS) + " |",
        "| accuracy, SciTune-style | " + " | ".join(f"{sqa['scitune_style'][c]}" for c in COLUMNS) + " |",
        "| chance, official | " + " | ".join(f"{sqa['chance']['official'][c]}" for c in COLUMNS) + " |",
        "| chance, SciTune-style | " + " | ".join(f"{sqa['chance']['scitune_style'][c]}" for c in COLUMNS) + " |",
        "",
        "Wall time per step (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings"].items())
        + f"; total {summary['total_wall_time_s']} s",
        "",
        "Checkpoints: " + ", ".join(f"{k}: `{v}`" for k, v in summary["checkpoints"].items()),
        f"Loss curves: `{summary['loss_curves']}`",
    ]
    if "comparison" in summary:
        lines += ["", f"## {summary['text_model']} against the miniature LLaMA (seed {summary['seed']}, same data)", ""]
        lines.append(summary["comparison"] or "No miniature-LLaMA run with this seed and data is recorded on this "
                     "machine: run `make demo` (same seed) first, then this run again, for the side-by-side table.")
    return "\n".join(lines)


SMOKE = {"backbones": {"image_size": 32, "patch_size": 8, "vision_hidden": 32, "vision_layers": 2,
                        "clip_text_hidden": 32, "clip_text_layers": 1, "clip_projection": 32, "clip_steps": 4,
                        "clip_batch_size": 8, "text_hidden": 48, "text_layers": 2, "vocab_size": 600, "llm_steps": 4,
                        "llm_batch_size": 4, "compile": False},
         "stage": {"max_steps": 3, "per_device_train_batch_size": 4}}


# The code each cached product is made by: a change to any of it makes a new cache key.
FIGURES_CODE = ("modeling_scitune.data.synthetic", "modeling_scitune.data.synthetic_figures", "modeling_scitune.data.build",
                "modeling_scitune.data.instructions", "modeling_scitune.data.records")
SCIENCEQA_CODE = ("modeling_scitune.scienceqa.synthetic", "modeling_scitune.data.synthetic_figures")
BACKBONES_CODE = ("modeling_scitune.training.backbones", "modeling_scitune.tiny", "modeling_scitune.scienceqa.formats",
                  "modeling_scitune.scienceqa.problems", "modeling_scitune.scienceqa.loaders")


def backbone_settings(config_file: str | None, seed: int, bf16: bool, smoke: bool):
    """The miniature backbones' settings: defaults, then the YAML file, then the job's seed and precision (and the
    smoke sizes, which win over everything)."""
    from .training.backbone_config import load_backbone_config

    return load_backbone_config(config_file, overrides={"seed": seed, "bf16": bf16,
                                                        **(SMOKE["backbones"] if smoke else {})})


def embedded_figures(n: int, folder: Path, seed: int) -> str:
    """The stage-1 figure corpus, built or reused from the cache; returns how it was obtained."""
    from .build_cache import build_or_reuse, source_fingerprint
    from .data.builders import build_synthetic

    parts = {"n": n, "seed": seed, "variant": "CTOM", "code": source_fingerprint(*FIGURES_CODE)}
    reused = build_or_reuse("figures", parts, folder, lambda target: build_synthetic(n, target, seed=seed))
    return "reused from the cache" if reused else "built"


def embedded_scienceqa(n: int, folder: Path, seed: int) -> str:
    from .build_cache import build_or_reuse, source_fingerprint
    from .scienceqa.synthetic import write_synthetic_scienceqa

    parts = {"n": n, "seed": seed, "code": source_fingerprint(*SCIENCEQA_CODE)}
    reused = build_or_reuse("scienceqa", parts, folder, lambda target: write_synthetic_scienceqa(n, target, seed=seed))
    return "reused from the cache" if reused else "built"


def miniature_backbones(figures_dir: Path, sqa_dir: Path, folder: Path, cfg, language_model: bool = True) -> str:
    """The pretrained miniature CLIP + LLaMA (CLIP only when `language_model` is False: a real LLM is given), keyed
    by their settings (precision resolved), seed, data and code."""
    import dataclasses

    import torch

    from .build_cache import build_or_reuse, folder_fingerprint, source_fingerprint
    from .training.backbones import pretrain_backbones
    from .training.precision import bf16_available

    parts = {"config": {**dataclasses.asdict(cfg), "bf16": cfg.bf16 and bf16_available()},
             "figures": folder_fingerprint(figures_dir, ("*.arrow",)),
             "scienceqa": folder_fingerprint(sqa_dir, ("problems.json", "pid_splits.json")),
             "code": source_fingerprint(*BACKBONES_CODE), "torch": torch.__version__,
             **({} if language_model else {"language_model": False})}
    reused = build_or_reuse("backbones", parts, folder,
                            lambda target: pretrain_backbones(str(figures_dir), str(target), cfg, sqa_dir=str(sqa_dir),
                                                              language_model=language_model))
    if reused:
        print("pretrained backbones reused from the cache (delete .cache/scitune/backbones to retrain)", flush=True)
    return "reused from the cache" if reused else "pretrained"


def run_main_job(output_dir: str = "outputs/main", seed: int = 0, text_model: str | None = None,
                 figures: int = DEFAULTS["figures"], problems: int = DEFAULTS["problems"], smoke: bool = False,
                 bf16: bool = True, backbones_config: str | None = None, lora: bool | None = None) -> dict:
    """Run every step; `smoke=True` shrinks models and steps so the whole path runs in about a minute (tests).
    `bf16=False` trains in fp32 even where the hardware has native bf16 (what a CPU without it does).
    `backbones_config` is a YAML of BackboneConfig settings for the miniature backbones (as `scitune-train backbones
    --config` reads), over the defaults. `lora` trains stage 2 with LoRA on the LLM (True) or fine-tunes it in full
    (False); None keeps the preset's choice (LoRA for a real LLM, full for the miniature one)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .evaluation.figure_tasks import run_figure_tasks
    from .run_comparison import comparison_table, data_key, miniature_run, record_run
    from .scienceqa.evaluate import run_scienceqa
    from .speed.allocator import keep_freed_memory_for_reuse
    from .training.precision import use_bf16
    from .training.arguments import stage_arguments
    from .training.stages import run_stage1, run_stage2

    keep_freed_memory_for_reuse()
    out = Path(output_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    steps = Steps()
    start = time.perf_counter()
    figures_dir, sqa_dir = out / "data" / "figures", out / "data" / "scienceqa"
    precision = "bf16" if use_bf16(bf16) else "fp32"
    print(f"training precision: {precision}" + ("" if bf16 else " (--no-bf16)"), flush=True)
    provenance = {
        "figures": steps.run("stage-1 data (synthetic figures, CTOM)", embedded_figures, figures, figures_dir, seed),
        "scienceqa": steps.run("ScienceQA-format data", embedded_scienceqa, problems, sqa_dir, seed),
    }
    key = data_key(seed, figures_dir, sqa_dir)  # before any stage adds its `datasets.map` caches to the folders
    backbone_cfg = backbone_settings(backbones_config, seed, bf16, smoke)
    if text_model:  # a real LLM stands behind the projector: only CLIP is pretrained
        provenance["backbones"] = steps.run("pretrain backbones (CLIP only: the LLM is given)", miniature_backbones,
                                            figures_dir, sqa_dir, out / "backbones", backbone_cfg, False)
    else:
        provenance["backbones"] = steps.run("pretrain backbones (CLIP + LLaMA)", miniature_backbones, figures_dir,
                                            sqa_dir, out / "backbones", backbone_cfg)
    text = str(out / "backbones" / "llama")
    if text_model == "smollm2":
        from .real_backbones import smollm2_folder

        text = str(steps.run("convert SmolLM2-135M-Instruct (GGUF)", smollm2_folder, out / "smollm2"))
    elif text_model:
        text = text_model
    # a given (real) LLM gets its own CPU schedule (configs/stage*-real-llm.yaml), the miniature one the tiny preset
    preset = "real-llm" if text_model else "tiny"
    stage_flags = {"seed": seed, "bf16": bf16, **(SMOKE["stage"] if smoke else {})}
    flags = [item for key, value in stage_flags.items() for item in (f"--{key}", str(value))]
    stage1 = stage_arguments("stage1", "--preset", preset, "--data", str(figures_dir), "--output_dir",
                             str(out / "stage1"), "--vision_model", str(out / "backbones" / "clip"), "--text_model",
                             text, *flags)
    steps.run("stage 1: concept alignment (projector only)", run_stage1, stage1)
    figure_result = steps.run("benchmark: figure type + captions (stage 1)", run_figure_tasks, str(out / "stage1"),
                              str(figures_dir), str(out / "eval" / "figure_tasks"), split="test", batch_size=32,
                              max_new_tokens=32)
    lora_flags = [] if lora is None else ["--use_peft", str(lora)]
    stage2 = stage_arguments("stage2", "--preset", preset, "--model", str(out / "stage1"), "--data", str(sqa_dir),
                             "--output_dir", str(out / "stage2"), *flags, *lora_flags)
    steps.run("stage 2: ScienceQA instruction tuning", run_stage2, stage2)
    # SciTune's published protocol (stop at "###", answer-prompter pass, exactly-one-match scorer) on the model's
    # own chat template: the stage-2 model was trained in it, not in the original evaluation conversation.
    sqa_result = steps.run("benchmark: ScienceQA (stage 2)", run_scienceqa, str(out / "stage2"), str(sqa_dir),
                           str(out / "eval" / "scienceqa"), split="test", protocol="scitune", conversation="model",
                           batch_size=16, max_new_tokens=16 if smoke else 160)
    report_dir = out / "report"
    report_dir.mkdir()
    plot_losses({"stage 1": out / "stage1", "stage 2": out / "stage2"}, report_dir / "loss_curves.png")
    summary = {
        "seed": seed,
        "precision": precision,
        "provenance": provenance,
        "text_model": REAL_LLM_NAMES.get(text_model, text_model) if text_model else MINIATURE,
        "stage2_training": "LoRA on the LLM" if stage2.model.use_peft else "LLM fine-tuned in full",
        "llama_letter_lookup": json.loads((out / "backbones" / "backbones.json").read_text()).get("llama_letter_lookup")
        if not text_model else None,
        "figure_tasks": {k: figure_result[k] for k in ("figure_type_accuracy", "chance", "per_type_accuracy",
                                                        "google_bleu", "rougeL", "examples")},
        "scienceqa": {k: sqa_result[k] for k in ("official", "scitune_style", "chance", "per_grade", "counts",
                                                 "parse_failures")},
        "timings": steps.timings,
        "total_wall_time_s": round(time.perf_counter() - start, 1),
        "checkpoints": {"backbones": str(out / "backbones"), "stage1": str(out / "stage1"), "stage2": str(out / "stage2")},
        "loss_curves": str(report_dir / "loss_curves.png"),
    }
    if text_model and (miniature := miniature_run(key, precision)) is not None:
        summary["comparison"] = comparison_table({"miniature LLaMA": miniature, summary["text_model"]: summary})
    elif text_model:
        summary["comparison"] = None  # the miniature run on this seed and data has not been recorded here
    summary["run_record"] = str(record_run(summary, key))
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    (report_dir / "summary.md").write_text(format_summary(summary) + "\n")
    return summary


def record_results(summary: dict, results_file: str, arguments: list[str] | None = None) -> None:
    """The summary as a section of the results file, named by the precision and LLM it ran with; `arguments` are the
    command line's (the section shows the command as run)."""
    from .results_file import machine_description, machine_line, write_results_section

    name = f"main_job ({summary['precision']}, {summary['text_model']})"
    if arguments is None:
        arguments = [] if summary["precision"] == "bf16" else ["--no-bf16"]
    body = (f"`{' '.join(['python -m modeling_scitune.main_job', *arguments])}`. "
            + machine_line(machine_description()) + "\n\n" + format_summary(summary).split("\n", 2)[2])
    write_results_section(results_file, name, body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="outputs/main")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-model", help="'smollm2' for the real SmolLM2-135M-Instruct backbone, or a path")
    parser.add_argument("--figures", type=int, default=DEFAULTS["figures"])
    parser.add_argument("--problems", type=int, default=DEFAULTS["problems"])
    parser.add_argument("--smoke", action="store_true", help="miniature models and steps: checks the path in ~1 min")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 where the hardware has it (default); --no-bf16 trains in fp32 everywhere")
    parser.add_argument("--backbones-config", help="YAML of miniature-backbone settings over the defaults "
                        "(as `scitune-train backbones --config`)")
    parser.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None,
                        help="stage 2 with LoRA on the LLM (--lora) or the LLM fine-tuned in full (--no-lora); "
                        "default: LoRA for a real --text-model, full for the miniature LLaMA")
    parser.add_argument("--results-file", help="also write the summary into this results file (benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    summary = run_main_job(args.output_dir, args.seed, args.text_model, args.figures, args.problems, args.smoke,
                           args.bf16, args.backbones_config, args.lora)
    if args.results_file:
        record_results(summary, args.results_file, list(argv if argv is not None else sys.argv[1:]))
    print("\n" + format_summary(summary))
    print(f"\nwritten: {Path(args.output_dir) / 'report'} (summary.json, summary.md, loss_curves.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
