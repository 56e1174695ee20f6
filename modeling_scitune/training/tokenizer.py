"""A byte-level BPE trained offline on local text, wrapped as a LLaMA-style fast tokenizer: the tokenizer of the
miniature LLaMA (`scitune-train backbones`) and of the tests' tiny models. Nothing is downloaded."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from ..processing_scitune import SCITUNE_CHAT_TEMPLATE

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]


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
