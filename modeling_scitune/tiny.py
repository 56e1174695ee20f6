"""Small random-weight SciTune models and an offline-trained tokenizer.

Nothing here reaches a hub: the tokenizer is a byte-level BPE trained with `tokenizers` on local text, the
backbones are transformers' own CLIP vision and LLaMA classes built from small configs. Tests, the demo and the
training presets use these; the saved folders are ordinary SciTune checkpoints.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlamaConfig

from .configuration_scitune import SciTuneConfig
from .data.records import FIGURE_TYPES
from .modeling_scitune import SciTuneForConditionalGeneration
from .processing_scitune import SciTuneProcessor
from .training.assemble import generation_config_for
from .training.backbones import figure_image_processor
from .training.tokenizer import train_tokenizer



def default_corpus(n_sentences: int = 600, seed: int = 0) -> list[str]:
    """Deterministic scientific-sounding sentences (figure words, QA words, digits, option letters).

    Enough text for a BPE with a useful vocabulary when no corpus is at hand; the training pipeline trains
    its tokenizer on the real instruction corpus instead.
    """
    rng = random.Random(seed)
    subjects = ["accuracy", "loss", "temperature", "pressure", "velocity", "energy", "population", "voltage"]
    verbs = ["increases", "decreases", "stays flat", "peaks", "oscillates", "saturates"]
    objects = ["over time", "with depth", "per epoch", "across models", "for each sample", "at high load"]
    qa = [
        "Question: Which figure type is shown? Options: (A) Graph Plot (B) Scatterplot (C) Bar Chart",
        "The answer is A.", "The answer is B.", "The answer is C.", "The answer is D.", "The answer is E.",
        "LECTURE: A graph plot shows lines. SOLUTION: Look at the axes.", "Context: N/A",
        "### Human: Describe the following image in detail.", "### Assistant:",
    ]
    lines = list(qa) * 5
    for _ in range(n_sentences):
        kind = rng.choice(FIGURE_TYPES)
        lines.append(
            f"{kind} {rng.randint(1, 12)}: the {rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}, "
            f"from {rng.uniform(0, 10):.1f} to {rng.uniform(10, 100):.1f} ({rng.randint(2, 6)} series)."
        )
    return lines


def tiny_config(
    tokenizer,
    projector_type: str = "linear",
    image_size: int = 32,
    patch_size: int = 8,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    text_hidden: int = 64,
    text_layers: int = 2,
    vision_feature_select_strategy: str = "default",
) -> SciTuneConfig:
    """A small SciTune config around `tokenizer`: CLIP vision + LLaMA text, vocab = len(tokenizer)."""
    vision = CLIPVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 2,
        num_hidden_layers=vision_layers,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 2,
        num_hidden_layers=text_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    patches = (image_size // patch_size) ** 2
    return SciTuneConfig(
        vision_config=vision,
        text_config=text,
        projector_type=projector_type,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=patches + (1 if vision_feature_select_strategy == "full" else 0),
        vision_feature_select_strategy=vision_feature_select_strategy,
    )


def processor_for(config: SciTuneConfig, tokenizer) -> SciTuneProcessor:
    """The processor that matches `config` (image size, patch size, CLS handling)."""
    return SciTuneProcessor(
        image_processor=figure_image_processor(config.vision_config.image_size),
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1,
    )


def build_tiny_scitune(
    output_dir: str | Path | None = None,
    projector_type: str = "linear",
    seed: int = 0,
    tokenizer=None,
    texts: Iterable[str] | None = None,
    **config_kwargs,
) -> tuple[SciTuneForConditionalGeneration, SciTuneProcessor]:
    """Build a random-weight SciTune model and its processor; save both to `output_dir` when given."""
    if tokenizer is None:
        tokenizer = train_tokenizer(texts if texts is not None else default_corpus())
    config = tiny_config(tokenizer, projector_type=projector_type, **config_kwargs)
    torch.manual_seed(seed)
    model = SciTuneForConditionalGeneration(config)
    model.generation_config = generation_config_for(tokenizer)
    processor = processor_for(config, tokenizer)
    if output_dir is not None:
        output_dir = Path(output_dir)
        model.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
    return model, processor


def demo_figure(kind: str = "Bar Chart", seed: int = 0, size: int = 96):
    """A small, deterministic scientific figure drawn with PIL (no matplotlib needed)."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"{kind}-{seed}")
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(8, size - 8), (size - 4, size - 8)], fill="black")
    draw.line([(8, size - 8), (8, 4)], fill="black")
    colors = itertools.cycle(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"])
    if kind == "Bar Chart":
        for i in range(4):
            height = rng.randint(10, size - 20)
            x0 = 14 + i * (size - 20) // 4
            draw.rectangle([x0, size - 8 - height, x0 + 10, size - 8], fill=next(colors))
    else:
        points = [(10 + i * (size - 16) // 8, rng.randint(6, size - 12)) for i in range(9)]
        draw.line(points, fill=next(colors), width=2)
    return image
