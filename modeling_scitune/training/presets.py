"""Training settings: the paper's values (YAML files next to this module), presets, and CLI overrides.

Precedence, lowest first: the stage's YAML defaults (the paper's hyper-parameters) -> `--preset` -> `--config YAML`
-> explicit CLI flags. The `tiny` preset is sized to run on a 2-core CPU in minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class BackboneConfig:
    """Sizes and schedules of the miniature CLIP and LLaMA pretrained by `scitune-train backbones`."""

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    clip_text_hidden: int = 128
    clip_text_layers: int = 2
    clip_projection: int = 128
    caption_tokens: int = 48
    clip_steps: int = 300
    clip_batch_size: int = 64
    clip_lr: float = 5e-4
    # Extra synthetic figures (rendered with `clip_figure_seed`, never the dataset's seed, so no held-out figure is
    # among them) added to CLIP's pretraining pairs: a real CLIP has seen far more images than a stage-1 set. What
    # the frozen tower can tell apart caps both stages (graph plot vs scatterplot above all). Measured here, stage-1 /
    # stage-2-style figure type: default 71.5 / 84.5%; 6400 extra, clip_steps 1200: 87.0 / 92.0%; 12800 extra,
    # clip_steps 2400 (configs/backbones-more-figures.yaml): 86.5 / 97.0%. Off in the main job: ~8 min more there.
    clip_extra_figures: int = 0
    clip_figure_seed: int = 1
    text_hidden: int = 192
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    vocab_size: int = 1200
    block_size: int = 128
    llm_steps: int = 5200  # option-letter lookup (ScienceQA answers) needs many more steps than fluent captions
    # Generic multiple-choice drills ("which option says X?" -> its letter) over the corpus vocabulary, added to the
    # LLM corpus: a real pretrained LLM has read plenty of such text; these never contain a ScienceQA problem.
    # Off by default: measured here, 30k drills lifted stage-2 accuracy only from 42% to 49% while the frozen-LM
    # stage 1 fell from 78-81% to 42% (the drills crowd the caption text out of the small LM); at a fixed 600 steps
    # on text-only problems, 16k drills lowered letter accuracy from 56% to 46%.
    lookup_drills: int = 0
    # Tokenize a lone option letter identically in "(B)" and "ANSWER: B." (see tiny.train_tokenizer).
    isolate_option_letters: bool = True
    # Each ScienceQA problem in the LLM corpus appears with this many orders of its options (see stage 2's setting).
    # Main job, measured: 1500 steps x 2 orders 49.2%, 3000 x 2 61.2%, 4000 x 3 68.0%, 5200 x 4 81.6%, 8000 x 4
    # 82.4% ScienceQA-format accuracy (the letter lookup is learnt by ~5000 steps; compiled + malloc tuning, the main job took 1065 s with 5200).
    option_orders: int = 4
    # How ScienceQA problems enter the LLM corpus: "chat" = the full QCM-LEPA exchange; "compact" = question, options,
    # solution and answer line only (fewer tokens per problem for the same letter-lookup practice).
    sqa_corpus: str = "chat"
    llm_batch_size: int = 32
    llm_lr: float = 1e-3
    bf16: bool = True  # bf16 autocast where the hardware has it (AVX512-BF16 / AMX CPUs, GPUs); else fp32
    attn_implementation: str = "auto"  # see precision.attention_implementation
    compile: bool = True  # torch.compile the LLaMA pretraining step (1.65x here; eager fallback, see compiling.py)
    seed: int = 0


@dataclass
class StageConfig:
    """One training stage: what trains, the optimiser schedule, and the TRL/Trainer settings that matter."""

    stage: str = "stage1"
    projector_type: str = "linear"
    variant: str = "CTOM"
    format: str = "QCM-LEPA"
    learning_rate: float = 2e-3
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 2
    max_length: int | None = 2048
    bf16: bool = True
    gradient_checkpointing: bool = True
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    seed: int = 42
    dataloader_num_workers: int = 0
    limit_train_samples: int | None = None
    feature_cache: bool = False  # stage 1: compute frozen-tower features once and train on them
    # torch.compile the language model while the stage trains (in place, eager again for saving and generation; see
    # compiling.compiled_in_place). Pays once its one-off compilation (~30 s per sequence-shape family here) is spread
    # over enough steps.
    compile: bool = False
    attn_implementation: str = "auto"  # see precision.attention_implementation (eager on CPU, flash-attn 2 on CUDA)
    option_orders: int = 1  # stage 2: each ScienceQA problem with this many orders of its options (1 = as given)


PRESETS = {
    "stage1": {
        "tiny": {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1, "bf16": True,
                 "gradient_checkpointing": False, "max_length": None, "logging_steps": 5, "save_steps": 50,
                 "num_train_epochs": 3.0, "learning_rate": 2e-3, "projector_type": "mlp2x_gelu", "variant": "CTOM",
                 # compile off: the main job's 300 steps took 99.9 s compiled (~45 s of it compiling) vs 61.5 s eager
                 "feature_cache": True, "compile": False},
    },
    "stage2": {
        "tiny": {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 1, "bf16": True,
                 "gradient_checkpointing": False, "max_length": None, "logging_steps": 5, "save_steps": 50,
                 "num_train_epochs": 1.0, "option_orders": 3, "learning_rate": 1e-3,
                 "compile": False},  # one epoch of ~156 s: ~45 s of compiling would not be won back
    },
    "backbones": {"tiny": {}},
}


def _build(cls, name: str, values: dict, preset: str | None, config_file: str | None, overrides: dict | None):
    """defaults -> preset -> YAML file -> explicit flags (None = not given); unknown keys are an error."""
    if preset:
        if preset not in PRESETS[name]:
            raise ValueError(f"unknown preset {preset!r} for {name}; choose from {sorted(PRESETS[name])}")
        values.update(PRESETS[name][preset])
    if config_file:
        values.update(yaml.safe_load(Path(config_file).read_text()) or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {name} setting(s): {sorted(unknown)}")
    return cls(**values)


def load_stage_config(stage: str, preset: str | None = None, config_file: str | None = None,
                      overrides: dict | None = None) -> StageConfig:
    defaults = yaml.safe_load((CONFIG_DIR / f"{stage}.yaml").read_text()) or {}
    return _build(StageConfig, stage, defaults, preset, config_file, overrides)


def load_backbone_config(preset: str | None = "tiny", config_file: str | None = None,
                         overrides: dict | None = None) -> BackboneConfig:
    return _build(BackboneConfig, "backbones", {}, preset or "tiny", config_file, overrides)
