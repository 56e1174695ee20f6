"""Frozen weights held in bf16 while a stage trains under bf16 autocast; every save writes their exact fp32 values.

Under autocast each fp32 weight is cast to bf16 again on every forward. A frozen weight never changes, so casting it
once gives the same computation without the per-step copies (it pays on CPUs with native bf16; nothing changes in an
fp32 run). Only whole frozen parts are cast (the vision tower in both stages; the LLM and LM head in stage 1), with
`nn.Module.to`; the projector and whatever else trains stay fp32 (the optimizer's master weights). As a Trainer
callback: cast when training begins, back to the original fp32 values (kept aside) right before each checkpoint is
written, cast again after it, and restored when training ends, so checkpoints and the final folder hold the frozen
weights bit-identical to the backbones they came from.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback


def frozen_parts(model) -> list[torch.nn.Module]:
    """The top-level parts of a SciTune model that have no trainable parameter."""
    parts = [model.model.vision_tower, model.model.language_model, model.lm_head]
    return [part for part in parts if not any(p.requires_grad for p in part.parameters())]


class FrozenWeightsInBf16(TrainerCallback):
    def __init__(self, model):
        self.parts = frozen_parts(model)
        self.originals = [{k: v.detach().clone() for k, v in part.state_dict().items()} for part in self.parts]

    def cast(self) -> None:
        for part in self.parts:
            part.to(torch.bfloat16)

    def restore(self) -> None:
        with torch.no_grad():
            for part, original in zip(self.parts, self.originals):
                part.to(torch.float32)
                part.load_state_dict(original)

    def on_train_begin(self, args, state, control, **kwargs):
        self.cast()

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:  # the Trainer writes the checkpoint right after this event
            self.restore()

    def on_save(self, args, state, control, **kwargs):
        self.cast()

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()
