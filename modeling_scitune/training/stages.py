"""The two SciTune training stages, each a thin layer over TRL's `SFTTrainer`.

Stage 1 (scientific concept alignment): vision tower and LLM frozen, only the projector trains, on the stage-1
instruction dataset (`scitune-data`), its answers built for the chosen variant (C / CT / CTO / CTOM). Stage 2
(scientific instruction tuning): projector + LLM train (or LoRA on the LLM with the projector in `modules_to_save`,
merged at the end), vision frozen, on ScienceQA conversations. The loss is on assistant tokens only
(`assistant_only_loss` with the template's `{% generation %}` markers). What TRL and transformers already do
(collation, checkpoints, resume with optimizer / scheduler / RNG state, logging, DDP) is not written again here.

A stage's folder: the trained SciTune model at `--output_dir` (loadable as is, with `training_summary.json`), the
Trainer's checkpoints under `--output_dir/checkpoints`; the feature cache lives in the build cache, not here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from ..build_cache import cache_root
from .arguments import StageArguments
from .checks import check_max_length, check_stage1_rows
from ..speed.compiling import compile_in_place
from ..speed.frozen_bf16 import FrozenWeightsInBf16
from .output_guard import exclusive_output_dir, named_disk_full, newest_valid_checkpoint
from .precision import attention_implementation

logger = logging.getLogger(__name__)
LORA_TARGETS = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def freeze_for_stage(model, stage: str) -> list[str]:
    """Set requires_grad for the stage; returns the names of the trainable parameters."""
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    if stage == "stage2":
        model.model.language_model.requires_grad_(True)
        model.lm_head.requires_grad_(True)
    model.model.vision_tower.eval()
    return [name for name, p in model.named_parameters() if p.requires_grad]


def parameter_checksum(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _train(model, processor, dataset, settings: StageArguments, peft_config=None, data_collator=None) -> dict:
    from .answer_loss import AnswerWeightedSFTTrainer

    start = time.perf_counter()
    output_dir = settings.output_dir
    args = dataclasses.replace(settings.training, output_dir=str(checkpoints_dir(output_dir)))
    model.set_attn_implementation(attention_implementation(settings.model.attn_implementation or "auto"))
    # LoRA merges into the frozen base weights: they keep their dtype there
    callbacks = [FrozenWeightsInBf16(model)] if args.bf16 and peft_config is None else []
    trainer = AnswerWeightedSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor,
                                       peft_config=peft_config, data_collator=data_collator, callbacks=callbacks,
                                       answer_loss_weight=settings.script.answer_loss_weight,
                                       fused_lm_head=settings.script.fused_lm_head)
    checkpoint, skipped = newest_valid_checkpoint(args.output_dir) if settings.script.resume else (None, [])
    if settings.script.resume and checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s, starting from the beginning", args.output_dir)
    elif checkpoint:
        logger.info("--resume: continuing from %s", checkpoint)
    compile_in_place(model.model.language_model, settings.script.compile)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trained = trainer.model
    if peft_config is not None:
        trained = trained.merge_and_unload()
    if trainer.args.world_size > 1:  # all ranks must end with the same weights: each logs its checksum
        logger.info("rank %d of %d: parameter checksum %s", trainer.args.process_index, trainer.args.world_size,
                    parameter_checksum(trained))
    if not trainer.is_world_process_zero():
        return {}
    trained.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    history = [row for row in trainer.state.log_history if "loss" in row]
    summary = {"stage": settings.stage, "train_loss": result.training_loss, "global_step": trainer.state.global_step,
               "loss_history": history, "wall_time_s": round(time.perf_counter() - start, 1),
               "resumed_from": checkpoint, "checkpoints_skipped": skipped, "config": settings.to_dict(),
               "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
    Path(output_dir, "training_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def train_split(data_dir: str):
    """The `train` split of a `scitune-data` dataset folder; a clear error when there is none or it is empty."""
    import datasets

    try:
        dataset = datasets.load_from_disk(str(data_dir))
    except FileNotFoundError as err:
        raise ValueError(f"{data_dir} is not a dataset folder (build one with scitune-data): {err}") from err
    except (IndexError, ValueError, OSError) as err:  # datasets cannot read back a split with no rows
        raise ValueError(f"{data_dir} cannot be read as a dataset: a split is empty or damaged "
                         f"({type(err).__name__}); rebuild it with scitune-data") from err
    if "train" not in dataset:
        raise ValueError(f"{data_dir} has no 'train' split (it has: {', '.join(dataset) or 'none'})")
    if len(dataset["train"]) == 0:
        raise ValueError(f"the 'train' split of {data_dir} is empty: nothing to train on (see its summary.json)")
    return dataset["train"]


def with_variant(train, variant: str):
    """The stage-1 rows with their answers rebuilt for `variant` (C, CT, CTO, CTOM) from the record fields."""
    from ..data.instructions import VARIANTS, messages_for_variant

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    needed = {"messages", "caption", "figure_type", "ocr", "paragraphs", "mentions"}
    if not needed <= set(train.column_names):
        raise ValueError(f"the stage-1 dataset lacks {sorted(needed - set(train.column_names))}: rebuild it with "
                         "scitune-data (its rows keep each figure's fields so any variant can be trained)")
    if set(train.unique("variant") if "variant" in train.column_names else []) == {variant}:
        return train  # built for this variant already
    return train.map(lambda row: {"messages": messages_for_variant(row, variant), "variant": variant},
                     desc=f"stage-1 answers for variant {variant}")


def with_feature_cache(train, model, processor, settings: StageArguments):
    """(dataset, collator) for training on cached frozen-tower features when `feature_cache` is on (see
    speed/feature_cache.py); with a trainable tower, or the setting off, the rows as they are and TRL's own collator."""
    if not settings.script.feature_cache:
        return train, None
    from ..speed.feature_cache import CachedFeatureCollator, add_cached_features, tower_is_frozen

    if not tower_is_frozen(model):
        logger.warning("feature cache not used: the vision tower has trainable weights")
        return train, None
    train = add_cached_features(train, model, processor, cache_root() / "feature-cache", settings.training.max_length)
    return train, CachedFeatureCollator(processor.tokenizer.pad_token_id, settings.training.pad_to_multiple_of)


def with_length_column(train, processor, model, settings: StageArguments):
    """With `--train_sampling_strategy group_by_length`, the rows' token lengths as the Trainer's length column (see
    speed/length_grouping.py); otherwise the rows as they are."""
    if settings.training.train_sampling_strategy != "group_by_length":
        return train
    from ..speed.length_grouping import with_token_lengths

    return with_token_lengths(train, processor, model.config.image_seq_length, settings.training.length_column_name)


def run_stage1(settings: StageArguments) -> dict:
    """Stage 1: train only the projector on the stage-1 instruction dataset; save a SciTune folder."""
    script = settings.script
    with exclusive_output_dir(settings.output_dir, script.resume, script.overwrite_output_dir), \
            named_disk_full(settings.output_dir):
        from .assemble import build_stage1_model

        train = train_split(script.data)
        if script.limit_train_samples:
            train = train.select(range(min(script.limit_train_samples, len(train))))
        train = with_variant(train, script.variant)
        train = train.select_columns([c for c in ("messages", "images") if c in train.column_names])
        torch.manual_seed(settings.training.seed)  # the projector's initialisation is part of a reproducible run
        model, processor = build_stage1_model(train, script.vision_model, script.text_model, script.projector_type,
                                              settings.training.seed)
        check_stage1_rows(train, processor, settings.training.max_length, model.config.image_seq_length)
        trainable = freeze_for_stage(model, "stage1")
        logger.info("stage 1 trains %d tensors: %s", len(trainable), trainable)
        train = with_length_column(train, processor, model, settings)
        train, collator = with_feature_cache(train, model, processor, settings)
        return _train(model, processor, train, settings, data_collator=collator)


def run_stage2(settings: StageArguments) -> dict:
    """Stage 2: projector + LLM (or LoRA on the LLM) on ScienceQA conversations; save a merged SciTune folder."""
    script = settings.script
    with exclusive_output_dir(settings.output_dir, script.resume, script.overwrite_output_dir), \
            named_disk_full(settings.output_dir):
        from ..scienceqa.training_rows import scienceqa_dataset
        from .assemble import load_scitune

        if not script.model:
            raise ValueError("stage 2 starts from a stage-1 folder: give --model")
        model, processor = load_scitune(script.model)
        if (Path(script.data) / "dataset_dict.json").is_file():  # a scitune-data instruction dataset, not ScienceQA
            train = train_split(script.data).select_columns(["messages", "images"])
            if script.limit_train_samples:
                train = train.select(range(min(script.limit_train_samples, len(train))))
        else:
            train = scienceqa_dataset(script.data, script.format, "train", script.limit_train_samples,
                                      script.option_orders, settings.training.seed)
        check_max_length(train, processor, settings.training.max_length, model.config.image_seq_length)
        peft_config = None
        if settings.model.use_peft:
            from peft import LoraConfig

            model.requires_grad_(False)
            peft_config = LoraConfig(r=settings.model.lora_r, lora_alpha=settings.model.lora_alpha,
                                     lora_dropout=settings.model.lora_dropout, target_modules=LORA_TARGETS,
                                     modules_to_save=["multi_modal_projector"], task_type="CAUSAL_LM")
        else:
            freeze_for_stage(model, "stage2")
        train = with_length_column(train, processor, model, settings)
        train, collator = with_feature_cache(train, model, processor, settings)
        return _train(model, processor, train, settings, peft_config, data_collator=collator)
