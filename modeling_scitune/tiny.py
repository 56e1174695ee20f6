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
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, GenerationConfig, LlamaConfig, PreTrainedTokenizerFast

from .configuration_scitune import SciTuneConfig
from .data.records import FIGURE_TYPES
from .modeling_scitune import SciTuneForConditionalGeneration
from .processing_scitune import SCITUNE_CHAT_TEMPLATE, SciTuneProcessor

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


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


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1000, chat_template: str = SCITUNE_CHAT_TEMPLATE, model_max_length=2048,
    isolate_option_letters: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` offline and wrap it as a LLaMA-style fast tokenizer.

    `<image>`, BOS, EOS, PAD and UNK are special tokens with the lowest ids; the tokenizer prepends BOS
    (the chat template emits it itself and transformers then skips the tokenizer's). With `isolate_option_letters`,
    a lone option letter (the "B" of "(B)" and of "ANSWER: B.") is always the same token, whatever precedes it.
    """
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if isolate_option_letters:
        letters = pre_tokenizers.Split(Regex(r"(?<![A-Za-z])[A-E](?![A-Za-z])"), behavior="isolated")
        backend.pre_tokenizer = pre_tokenizers.Sequence([letters, byte_level])
    else:
        backend.pre_tokenizer = byte_level
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        chat_template=chat_template,
        padding_side="left",
        model_max_length=model_max_length,
    )


def tiny_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP preprocessing (CLIP mean/std) that resizes the whole figure to `image_size` x `image_size`.

    No center crop: a crop would cut off the sides of a wide figure (its legend, its first bars)."""
    return CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size},
        do_center_crop=False,
        crop_size={"height": image_size, "width": image_size},
    )


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
        image_processor=tiny_image_processor(config.vision_config.image_size),
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1,
    )


def generation_config_for(tokenizer) -> GenerationConfig:
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=64,
        do_sample=False,
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
