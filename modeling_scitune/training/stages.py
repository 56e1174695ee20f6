"""The two SciTune training stages, each a thin layer over TRL's `SFTTrainer`.

Stage 1 (scientific concept alignment): vision tower and LLM frozen, only the projector trains, on the stage-1
instruction dataset (`scitune-data`). Stage 2 (scientific instruction tuning): projector + LLM train (or LoRA on the
LLM with the projector in `modules_to_save`, merged at the end), vision frozen, on ScienceQA conversations. The loss
is on assistant tokens only (`assistant_only_loss=True` with the template's `{% generation %}` markers), so prompt
and image tokens never count. What TRL and transformers already do (collation, checkpoints, resume with optimizer /
scheduler / RNG state, logging, DDP) is not written again here. Each stage ends as a plain SciTune folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from .compiling import compiled_in_place
from .frozen_bf16 import FrozenWeightsInBf16
from .output_guard import exclusive_output_dir, named_disk_full, newest_valid_checkpoint
from .precision import attention_implementation, on_cuda, use_bf16
from .presets import StageConfig

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


def check_stage1_rows(dataset, processor, max_length: int | None, image_seq_length: int) -> None:
    """Fail before training on rows without an image, or a max_length that would cut through image tokens."""
    if "images" not in dataset.column_names:
        raise ValueError("stage-1 dataset has no 'images' column: every row must hold its figure")
    image_counts = [len(images or []) for images in dataset["images"]]
    missing = [i for i, count in enumerate(image_counts) if count == 0]
    if missing:
        raise ValueError(f"stage-1 dataset rows {missing[:10]} ({len(missing)} in all) have no image; stage 1 aligns "
                         "figures with text, so every row needs one (rebuild it with `scitune-data`)")
    check_max_length(dataset, processor, max_length, image_seq_length)


def check_max_length(dataset, processor, max_length: int | None, image_seq_length: int) -> None:
    """The user turn of every row (text + expanded image tokens) must fit, or truncation would cut image tokens."""
    if max_length is None:
        return
    prompts = [processor.apply_chat_template([m[0]], add_generation_prompt=False) for m in dataset["messages"]]
    lengths = [len(ids) for ids in processor.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    counts = [len(images or []) for images in dataset["images"]] if "images" in dataset.column_names else [0] * len(lengths)
    needed = [length + count * (image_seq_length - 1) for length, count in zip(lengths, counts)]
    worst = max(range(len(needed)), key=needed.__getitem__)
    if needed[worst] > max_length:
        raise ValueError(f"max_length={max_length} would truncate through the image tokens: row {worst} needs "
                         f"{needed[worst]} tokens before its answer ({counts[worst]} image(s) x {image_seq_length} "
                         "tokens). Raise max_length (or pass max_length=None).")


def sft_arguments(cfg: StageConfig, output_dir: str):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=output_dir,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_length=cfg.max_length,
        bf16=use_bf16(cfg.bf16),
        activation_checkpointing=cfg.gradient_checkpointing,
        assistant_only_loss=True,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False,
        report_to="none",
        use_cpu=not on_cuda(),
        ddp_find_unused_parameters=False,
    )


def parameter_checksum(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _trainer_class():
    from trl import SFTTrainer

    class SciTuneSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer; checkpoints hold frozen weights at their fp32 values while they train in bf16."""

        frozen_weights: FrozenWeightsInBf16 | None = None

        def _save(self, output_dir=None, state_dict=None):
            if self.frozen_weights is not None:
                state_dict = self.frozen_weights.state_dict(state_dict)
            super()._save(output_dir, state_dict=state_dict)

    return SciTuneSFTTrainer


def _train(model, processor, dataset, cfg: StageConfig, output_dir: str, resume: bool, peft_config=None,
           data_collator=None) -> dict:
    start = time.perf_counter()
    args = sft_arguments(cfg, output_dir)
    model.set_attn_implementation(attention_implementation(cfg.attn_implementation))
    # LoRA merges into the frozen base weights, so they stay as they are there
    frozen = FrozenWeightsInBf16(model).cast() if args.bf16 and peft_config is None else None
    trainer = _trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=processor,
                               peft_config=peft_config, data_collator=data_collator)
    trainer.frozen_weights = frozen
    checkpoint, skipped = newest_valid_checkpoint(output_dir) if resume else (None, [])
    if resume and checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s, starting from the beginning", output_dir)
    elif checkpoint:
        logger.info("--resume: continuing from %s", checkpoint)
    with compiled_in_place(model.model.language_model, cfg.compile):
        result = trainer.train(resume_from_checkpoint=checkpoint)
    trained = trainer.model
    if frozen is not None:
        frozen.restore()
    if peft_config is not None:
        trained = trained.merge_and_unload()
    world = trainer.args.world_size
    rank = trainer.args.process_index
    if world > 1:  # each rank reports what it holds, so a test can check that all ranks agree
        report = {"rank": rank, "world_size": world, "checksum": parameter_checksum(trained)}
        Path(output_dir, f"rank_{rank}.json").write_text(json.dumps(report))
    if trainer.is_world_process_zero():
        trained.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
        history = [row for row in trainer.state.log_history if "loss" in row]
        summary = {"stage": cfg.stage, "train_loss": result.training_loss, "global_step": trainer.state.global_step,
                   "loss_history": history, "wall_time_s": round(time.perf_counter() - start, 1),
                   "resumed_from": checkpoint, "checkpoints_skipped": skipped, "config": dict(cfg.__dict__),
                   "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)}
        Path(output_dir, "training_summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    return {}


def _train_split(data_dir: str):
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


def build_stage1_model(cfg: StageConfig, data, vision_model: str | None, text_model: str | None):
    """SciTune from the given backbones, or (tiny preset, no paths) small random ones with a corpus tokenizer."""
    if vision_model and text_model:
        from .assemble import assemble_scitune

        return assemble_scitune(vision_model, text_model, projector_type=cfg.projector_type)
    if vision_model or text_model:
        raise ValueError("give both --vision-model and --text-model, or neither (random tiny backbones)")
    from ..data.instructions import DESCRIBE_PROMPTS
    from ..tiny import build_tiny_scitune, train_tokenizer

    texts = [m[1]["content"][0]["text"] for m in data["messages"]]
    tokenizer = train_tokenizer(texts + list(DESCRIBE_PROMPTS), vocab_size=800)
    return build_tiny_scitune(None, projector_type=cfg.projector_type, tokenizer=tokenizer, seed=cfg.seed,
                              image_size=64, patch_size=16)


def run_stage1(data_dir: str, output_dir: str, cfg: StageConfig, vision_model: str | None = None,
               text_model: str | None = None, resume: bool = False, overwrite_output_dir: bool = False) -> dict:
    """Stage 1: train only the projector on the stage-1 instruction dataset; save a SciTune folder."""
    with exclusive_output_dir(output_dir, resume, overwrite_output_dir), named_disk_full(output_dir):
        return _run_stage1(data_dir, output_dir, cfg, vision_model, text_model, resume)


def _run_stage1(data_dir, output_dir, cfg, vision_model, text_model, resume) -> dict:
    train = _train_split(data_dir)
    if cfg.limit_train_samples:
        train = train.select(range(min(cfg.limit_train_samples, len(train))))
    train = with_variant(train, cfg.variant)
    train = train.select_columns([c for c in ("messages", "images") if c in train.column_names])
    torch.manual_seed(cfg.seed)  # the projector's initialisation is part of a reproducible run
    model, processor = build_stage1_model(cfg, train, vision_model, text_model)
    check_stage1_rows(train, processor, cfg.max_length, model.config.image_seq_length)
    trainable = freeze_for_stage(model, "stage1")
    logger.info("stage 1 trains %d tensors: %s", len(trainable), trainable)
    train, collator = with_feature_cache(train, model, processor, cfg, output_dir)
    return _train(model, processor, train, cfg, output_dir, resume, data_collator=collator)


def with_feature_cache(train, model, processor, cfg: StageConfig, output_dir: str):
    """(dataset, collator) for training on cached frozen-tower features when `cfg.feature_cache` allows it.

    The tower is frozen in both stages of the method, so its features per figure never change while training: they
    are computed once (see feature_cache.py) and each step runs only projector + LLM. With a trainable tower, or the
    setting off, the dataset is returned as is and TRL's own collator is used (None)."""
    if not cfg.feature_cache:
        return train, None
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from .feature_cache import CachedFeatureCollator, add_cached_features, tower_is_frozen

    if not tower_is_frozen(model):
        logger.warning("feature cache not used: the vision tower has trainable weights")
        return train, None
    base = DataCollatorForVisionLanguageModeling(processor, max_length=cfg.max_length, assistant_only_loss=True)
    train = add_cached_features(train, model, processor, Path(output_dir) / "feature-cache", base_collator=base)
    return train, CachedFeatureCollator(base)


def scienceqa_dataset(sqa_dir: str, fmt: str, split: str = "train", limit: int | None = None, option_orders: int = 1,
                      seed: int = 0):
    """ScienceQA problems as a TRL conversational vision dataset (text-only problems have no image).

    `option_orders` > 1 adds copies of each problem with its options shuffled (see `with_shuffled_options`)."""
    import random

    import datasets

    from ..scienceqa import load_scienceqa, to_conversation
    from ..scienceqa.problems import with_shuffled_options

    loaded = load_scienceqa(sqa_dir, split)
    if loaded.errors:
        logger.warning("%d malformed ScienceQA records skipped for training: %s", len(loaded.errors), loaded.errors[:5])
    problems = loaded.problems[:limit] if limit else loaded.problems
    if not problems:
        raise ValueError(f"no ScienceQA problems in split {split!r} of {sqa_dir}")
    features = datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"),
                                   "content": datasets.List({"type": datasets.Value("string"),
                                                             "text": datasets.Value("string")})}),
        "images": datasets.List(datasets.Image()),
    })
    rng = random.Random(f"option-orders-{seed}")
    problems = [p if copy == 0 else with_shuffled_options(p, rng) for p in problems for copy in range(option_orders)]
    return datasets.Dataset.from_list([to_conversation(p, fmt) for p in problems], features=features)


def run_stage2(model_dir: str, sqa_dir: str, output_dir: str, cfg: StageConfig, resume: bool = False,
               overwrite_output_dir: bool = False) -> dict:
    """Stage 2: projector + LLM (or LoRA on the LLM) on ScienceQA conversations; save a merged SciTune folder."""
    with exclusive_output_dir(output_dir, resume, overwrite_output_dir), named_disk_full(output_dir):
        return _run_stage2(model_dir, sqa_dir, output_dir, cfg, resume)


def _run_stage2(model_dir, sqa_dir, output_dir, cfg, resume) -> dict:
    from .assemble import load_scitune

    model, processor = load_scitune(model_dir)
    if (Path(sqa_dir) / "dataset_dict.json").is_file():  # an instruction dataset (scitune-data) instead of ScienceQA
        train = _train_split(sqa_dir).select_columns(["messages", "images"])
        if cfg.limit_train_samples:
            train = train.select(range(min(cfg.limit_train_samples, len(train))))
    else:
        train = scienceqa_dataset(sqa_dir, cfg.format, "train", cfg.limit_train_samples, cfg.option_orders, cfg.seed)
    check_max_length(train, processor, cfg.max_length, model.config.image_seq_length)
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        model.requires_grad_(False)
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=LORA_TARGETS, modules_to_save=["multi_modal_projector"],
                                 task_type="CAUSAL_LM")
    else:
        freeze_for_stage(model, "stage2")
    os.makedirs(output_dir, exist_ok=True)
    train, collator = with_feature_cache(train, model, processor, cfg, output_dir)
    return _train(model, processor, train, cfg, output_dir, resume, peft_config, data_collator=collator)
