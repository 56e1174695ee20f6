"""Stage 2's answer-letter weight: the loss of each row's answer letter counts `answer_loss_weight` times.

A ScienceQA target is a long lecture and solution followed by one letter; averaged over the row, the letter is a
fraction of a percent of the loss, yet it is all the benchmark scores. A small LLM learns to write the right solution
long before it learns to find that solution's letter among the options; weighting the letter closes the gap. The
letter is found in the labels, so every target format that ends with it (QCM-LEPA "ANSWER: X.", QCM-A, QCM-LEA) and
both collators (plain and feature cache) are covered. Weight 1 is TRL's own loss, unchanged; another weight
computes the loss from the full logits, without TRL's fused LM head and its entropy / token-accuracy logs.

The same full-logits loss at weight 1 is what `fused_lm_head: false` asks for: TRL's fused head runs its vocabulary
chunks through a dozen elementwise passes when there is no Triton (a CPU), which for a small vocabulary costs more
than the full logits it saves (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import torch
from trl import SFTTrainer

OPTION_LETTERS = "ABCDE"


def option_letter_ids(tokenizer) -> torch.Tensor:
    """Ids of the tokens that are a lone option letter ("B", " B", "▁B")."""
    vocab = tokenizer.get_vocab()
    return torch.tensor(sorted(i for token, i in vocab.items()
                               if token.replace("▁", "").replace("Ġ", "").strip() in OPTION_LETTERS
                               and len(token.replace("▁", "").replace("Ġ", "").strip()) == 1))


def answer_letter_weights(labels: torch.Tensor, letter_ids: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-label weights: `weight` on each row's last labelled option-letter token (its answer), 1 elsewhere."""
    is_letter = torch.isin(labels, letter_ids.to(labels.device)) & (labels != -100)
    positions = torch.arange(labels.shape[1], device=labels.device).expand_as(labels)
    last = torch.where(is_letter, positions, -1).max(dim=1).values
    weights = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    rows = torch.nonzero(last >= 0).squeeze(1)
    weights[rows, last[rows]] = weight
    return weights


class AnswerWeightedSFTTrainer(SFTTrainer):
    """TRL's SFTTrainer whose causal-LM loss weights each row's answer letter, or is computed from the full logits
    (`fused_lm_head=False`); see the module docstring."""

    def __init__(self, *args, answer_loss_weight: float = 1.0, fused_lm_head: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer_loss_weight = answer_loss_weight
        self.fused_lm_head = fused_lm_head
        self.letter_ids = option_letter_ids(getattr(self.processing_class, "tokenizer", self.processing_class))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.answer_loss_weight == 1.0 and self.fused_lm_head:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"]
        outputs = model(**{key: value for key, value in inputs.items() if key != "labels"}, use_cache=False)
        targets = labels[:, 1:]
        per_token = torch.nn.functional.cross_entropy(outputs.logits[:, :-1].flatten(0, 1).float(),
                                                      targets.flatten(), ignore_index=-100, reduction="none")
        weights = answer_letter_weights(labels, self.letter_ids, self.answer_loss_weight)[:, 1:].flatten()
        count = (targets != -100).sum() if num_items_in_batch is None else num_items_in_batch
        loss = (per_token * weights).sum() / torch.as_tensor(count, device=per_token.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as TRL does: DDP averages the gradients across ranks
        return (loss, outputs) if return_outputs else loss
