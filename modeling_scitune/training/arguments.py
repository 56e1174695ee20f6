"""Training configuration, TRL's way: `TrlParser` over `SciTuneArguments` (what a SciTune stage needs that TRL does not
have), TRL's `SFTConfig` and TRL's `ModelConfig` (attention kernel, LoRA), from YAML and the command line.

Precedence, lowest first: the dataclass defaults and this machine's (CPU or CUDA) -> the stage's packaged YAML, the
paper's values (configs/stage1.yaml, configs/stage2.yaml) -> `--config FILE` (e.g. configs/stage1-tiny.yaml, the CPU
preset, which `--preset tiny` names) -> command-line flags. Every field of the three dataclasses is a flag.
A few settings are SciTune's by construction and set in `finalize` (the loss is on answers only, rows keep their
images, bf16 only where the hardware has it); the stage's model folder is `--output_dir`, its Trainer checkpoints go
to `--output_dir/checkpoints`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from .precision import on_cuda, use_bf16

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
STAGES = ("stage1", "stage2")


@dataclass
class SciTuneArguments:
    """SciTune's own stage settings; the optimiser, schedule, batch and saving are `SFTConfig`'s."""

    data: str | None = field(default=None, metadata={
        "help": "stage 1: a scitune-data dataset folder; stage 2: a ScienceQA folder (lupantech layout or parquet) or a "
                "scitune-data dataset"})
    model: str | None = field(default=None, metadata={"help": "stage 2: the stage-1 output folder"})
    vision_model: str | None = field(default=None, metadata={"help": "stage 1: CLIP checkpoint (path or Hub name)"})
    text_model: str | None = field(default=None, metadata={"help": "stage 1: LLaMA-style causal LM (path or Hub name)"})
    projector_type: Literal["linear", "mlp2x_gelu"] = field(default="linear", metadata={
        "help": "linear: the paper's one Linear; mlp2x_gelu: LLaVA-1.5's MLP"})
    variant: Literal["C", "CT", "CTO", "CTOM"] = field(default="CTOM", metadata={
        "help": "stage 1 answers: Caption, +Type, +OCR, +Mentions (built from each row's fields when the stage runs)"})
    format: Literal["QCM-LEPA", "QCM-LEA", "QCM-A", "CQM-A", "lmms-eval"] = field(default="QCM-LEPA", metadata={
        "help": "stage 2 ScienceQA target format"})
    option_orders: int = field(default=1, metadata={
        "help": "stage 2: each ScienceQA problem with this many orders of its options (1 = as given)"})
    answer_loss_weight: float = field(default=1.0, metadata={
        "help": "stage 2: the loss of each row's answer letter counts this many times (1 = TRL's own loss)"})
    fused_lm_head: bool = field(default=True, metadata={
        "help": "TRL's fused LM head: the loss (and the entropy / token-accuracy logs) computed over vocabulary chunks, "
                "never the full logits, which saves memory on a large vocabulary; false: the loss from the full logits, "
                "without those two logs (faster on a CPU when the vocabulary is small). A weighted answer letter "
                "(answer_loss_weight != 1) always uses the full logits"})
    feature_cache: bool = field(default=False, metadata={
        "help": "train on frozen-tower features computed once (the tower is frozen in both stages)"})
    compile: bool = field(default=False, metadata={
        "help": "nn.Module.compile the language model while the stage trains (pays over long runs)"})
    limit_train_samples: int | None = field(default=None, metadata={"help": "train on the first N rows only"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint that reads back"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train over a folder that already holds a finished stage"})


@dataclass
class StageArguments:
    """Everything one stage run reads: SciTune's arguments, TRL's SFTConfig, TRL's ModelConfig."""

    stage: str
    script: SciTuneArguments
    training: object  # trl.SFTConfig
    model: object  # trl.ModelConfig

    @property
    def output_dir(self) -> str:
        return self.training.output_dir

    def to_dict(self) -> dict:
        """What the stage ran with, for training_summary.json."""
        keys = ("learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "max_steps",
                "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "bf16", "seed",
                "activation_checkpointing", "save_steps", "logging_steps", "train_sampling_strategy")
        return {"stage": self.stage, **dataclasses.asdict(self.script),
                **{key: getattr(self.training, key, None) for key in keys},
                "attn_implementation": self.model.attn_implementation, "use_peft": self.model.use_peft,
                "lora_r": self.model.lora_r, "lora_alpha": self.model.lora_alpha}


def build_parser():
    from trl import ModelConfig, SFTConfig, TrlParser

    return TrlParser((SciTuneArguments, SFTConfig, ModelConfig))


def machine_defaults() -> dict:
    """Defaults set before any YAML: the CPU where there is no CUDA device, no experiment tracker, the attention kernel
    picked per device, and SciTune's fixed settings (so only an explicit, ignored override warns)."""
    return {"use_cpu": not on_cuda(), "report_to": "none", "ddp_find_unused_parameters": False,
            "attn_implementation": "auto", "assistant_only_loss": True, "remove_unused_columns": False}


def expand_preset(stage: str, argv: list[str]) -> list[str]:
    """`--preset NAME` -> `--config configs/{stage}-NAME.yaml` (the packaged settings of that name)."""
    argv = list(argv)
    if "--preset" not in argv:
        return argv
    index = argv.index("--preset")
    name = argv[index + 1]
    path = CONFIG_DIR / f"{stage}-{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem.split("-", 1)[1] for p in CONFIG_DIR.glob(f"{stage}-*.yaml"))
        raise ValueError(f"unknown preset {name!r} for {stage}; packaged presets: {known}")
    if "--config" in argv:
        raise ValueError("give --preset or --config, not both (a preset is a packaged --config file)")
    return argv[:index] + ["--config", str(path)] + argv[index + 2:]


def _check_counts(script: SciTuneArguments, training) -> None:
    if training.max_steps == 0 or training.max_steps < -1:
        raise ValueError(f"max_steps must be -1 (use num_train_epochs) or at least 1, got {training.max_steps}")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps"):
        if getattr(training, name) is not None and getattr(training, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(training, name)}")
    if training.num_train_epochs <= 0:
        raise ValueError(f"num_train_epochs must be > 0, got {training.num_train_epochs}")
    if training.max_length is not None and training.max_length <= 0:
        raise ValueError(f"max_length must be > 0 (or null for no limit), got {training.max_length}")
    for name in ("limit_train_samples", "option_orders"):
        value = getattr(script, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if script.answer_loss_weight <= 0:
        raise ValueError(f"answer_loss_weight must be > 0, got {script.answer_loss_weight}")


def finalize(stage: str, script: SciTuneArguments, training, model) -> StageArguments:
    """Apply what SciTune fixes and validate the counts; bf16 falls back to fp32 where the hardware lacks it."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if not training.output_dir:
        raise ValueError("--output_dir is required")
    _check_counts(script, training)
    fixed = {"assistant_only_loss": True, "remove_unused_columns": False, "logging_first_step": True,
             "save_strategy": "steps", "bf16": use_bf16(training.bf16),
             "data_seed": training.data_seed if training.data_seed is not None else training.seed}
    for key in ("assistant_only_loss", "remove_unused_columns"):
        if getattr(training, key) != fixed[key]:
            logger.warning("%s=%s ignored: SciTune trains on answers only, from rows that keep their images", key,
                           getattr(training, key))
    changes = {key: value for key, value in fixed.items() if getattr(training, key) != value}
    training = dataclasses.replace(training, **changes) if changes else training
    return StageArguments(stage, script, training, model)


def stage_arguments(stage: str, *argv: str) -> StageArguments:
    """Parse one stage's settings as `scitune-train STAGE ...` does: `stage_arguments("stage1", "--preset", "tiny",
    "--data", DIR, "--output_dir", OUT, "--max_steps", "4")`."""
    parser = build_parser()
    packaged = yaml.safe_load((CONFIG_DIR / f"{stage}.yaml").read_text()) or {}
    unused = parser.set_defaults_with_config(**machine_defaults(), **packaged)
    if unused:
        raise ValueError(f"{CONFIG_DIR / f'{stage}.yaml'}: unknown settings {unused[::2]}")
    script, training, model = parser.parse_args_and_config(expand_preset(stage, list(argv)))
    return finalize(stage, script, training, model)
