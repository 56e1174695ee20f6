"""Settings of the miniature backbones `scitune-train backbones` pretrains (the stages' settings: arguments.py).

The defaults are sized to run on a 2-core CPU in minutes; a YAML file (`--config`) or flags override them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml


IMAGE_SLOTS = ("none", "image_tokens", "figure_type")
SQA_CORPUS_LAYOUTS = ("chat", "compact")


@dataclass
class BackboneConfig:
    """Sizes and schedules of the miniature CLIP and LLaMA pretrained by `scitune-train backbones`."""

    image_size: int = 64
    # 16-pixel patches: 16 image tokens per figure. Every stage row with a figure is shorter (both stages train and
    # score faster), and the fewer foreign tokens stand between a problem's options and its answer letter, the less
    # they disturb the option lookup the LLaMA learned without images (measured against 8-pixel patches:
    # benchmarks/RESULTS.md, "make demo wall time").
    patch_size: int = 16
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
    # among them) added to CLIP's pretraining pairs: a real CLIP has seen far more images than a stage-1 set, and what
    # the frozen tower can tell apart caps both stages (graph plot vs scatterplot above all). Off in the main job, which
    # it would lengthen by minutes (configs/backbones-more-figures.yaml turns it on).
    clip_extra_figures: int = 0
    clip_figure_seed: int = 1
    # A narrow LLaMA at a high learning rate: per step about half the work of hidden 192, so the main job fits a CPU
    # without native bf16 (what it reaches: benchmarks/RESULTS.md, the main_job sections).
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    vocab_size: int = 1200
    # 16 blocks of 256 tokens per step, filled first fit (see backbones.pack_texts): most corpus texts are longer than
    # a third of 128 tokens, so 128-token blocks held one or two whole texts and much of each step was padding; longer
    # blocks filled first fit carry more text per step for the same number of tokens (measured: benchmarks/RESULTS.md).
    block_size: int = 256
    # True: each packed text attends only to itself (its position ids restart; see backbones.text_position_ids), as
    # every conversation is seen alone in the stages. Off by default: the LLM pretrained so learned to ignore what
    # precedes an answer that its own text does not decide, and the stage-1 projector could then no longer steer it
    # to the figure type (measured in benchmarks/RESULTS.md); the answer-letter lookup was not learned reliably
    # earlier either.
    attend_within_text: bool = False
    # True: the multiple-choice texts (ScienceQA problems, lookup drills) are packed in blocks of their own, in
    # shuffled order, each attending only to itself (see backbones.pack_corpus), as the stages show every problem.
    # Packed with full attention, a block held two or three option orders of the same problem side by side: the
    # answer's words stood in several option lists with different letters, and finding the letter by the solution's
    # words was what the miniature LLM learned last (measured: benchmarks/RESULTS.md). The stage-1 answers keep their
    # full attention (see attend_within_text).
    multiple_choice_alone: bool = True
    llm_steps: int = 2000  # option-letter lookup (ScienceQA answers) needs many more steps than fluent captions
    # Generic multiple-choice drills ("which option says X?" -> its letter) over the corpus vocabulary, added to the
    # LLM corpus: a real pretrained LLM has read plenty of such text; these never contain a ScienceQA problem. Off by
    # default: they crowd the caption text out of a small LM, which the frozen-LM stage 1 then pays for.
    lookup_drills: int = 0
    # Tokenize a lone option letter identically in "(B)" and "ANSWER: B." (see tiny.train_tokenizer).
    isolate_option_letters: bool = True
    # Each ScienceQA problem in the LLM corpus appears with this many orders of its options (see stage 2's setting):
    # finding the answer's letter among the options, not memorising it, is what takes the miniature LLM longest.
    option_orders: int = 8
    # How ScienceQA problems enter the LLM corpus: "chat" = the full QCM-LEPA exchange; "compact" = question, options,
    # solution and answer line only (fewer tokens per problem for the same letter-lookup practice).
    sqa_corpus: Literal["chat", "compact"] = "chat"
    # The loss of each ScienceQA answer letter counts this many times in LLM pretraining: the letter is the only token
    # that teaches finding the answer among the options, the skill the miniature LLM learns last.
    answer_loss_weight: float = 5.0
    # What stands at each image's place in the LLM corpus: "none" = nothing (the image is left out); "image_tokens" =
    # (image_size / patch_size)^2 image tokens, as many as the stages will fill; "figure_type" = as many tokens again,
    # holding the figure's type words over and over. Never scored. Without them the miniature LLM learns answers that
    # nothing before them decides (the figure type of a caption) and letter lookups with no image between the options
    # and the answer; with "figure_type" it learns to read what the image's place says, the way a real LLM reads its
    # context, and stage 1 teaches the projector to say it. A text with its image places is longer: raise
    # block_size so it stays whole (pack_texts warns about texts it cuts).
    corpus_image_slots: Literal["none", "image_tokens", "figure_type"] = "none"
    # Whether ScienceQA texts keep their image's place too (else only the stage-1 answers do): an image between the
    # options and the answer makes the letter lookup, the skill the miniature LLM learns last, harder to learn.
    scienceqa_image_slots: bool = True
    # Whether the stage-1 answers' texts keep their image's place (else only the ScienceQA texts do). With
    # `image_tokens` on the ScienceQA texts alone the LLM practises the letter lookup across the image tokens the stages
    # put between the options and the answer; measured, the stage-1 model then finds a figure type's letter across the
    # figure far more often, but the LLM's text lookups and stage 2's ScienceQA came out lower (benchmarks/RESULTS.md).
    stage1_image_slots: bool = True
    llm_batch_size: int = 16
    llm_lr: float = 2e-3
    bf16: bool = True  # bf16 autocast where the hardware has it (AVX512-BF16 / AMX CPUs, GPUs); else fp32
    attn_implementation: str = "auto"  # see precision.attention_implementation
    compile: bool = True  # torch.compile the LLaMA pretraining step (one fixed shape: compiles once; speed/compiling.py)
    seed: int = 0

    def __post_init__(self):
        if self.corpus_image_slots not in IMAGE_SLOTS:
            raise ValueError(f"corpus_image_slots must be one of {IMAGE_SLOTS}, got {self.corpus_image_slots!r}")
        if self.sqa_corpus not in SQA_CORPUS_LAYOUTS:
            raise ValueError(f"sqa_corpus must be one of {SQA_CORPUS_LAYOUTS}, got {self.sqa_corpus!r}")


def load_backbone_config(config_file: str | None = None, overrides: dict | None = None) -> BackboneConfig:
    """defaults -> YAML file -> explicit values (None = not given); unknown keys are an error."""
    values = yaml.safe_load(Path(config_file).read_text()) or {} if config_file else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(BackboneConfig)}
    if unknown:
        raise ValueError(f"unknown backbone setting(s): {sorted(unknown)}")
    return BackboneConfig(**values)
