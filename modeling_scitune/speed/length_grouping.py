"""Row lengths for transformers' `train_sampling_strategy="group_by_length"` (`--train_sampling_strategy`).

A batch is padded to its longest row, and a ScienceQA row with an image holds its image tokens besides its text, so
randomly drawn batches of image and text-only rows are largely padding. transformers' `LengthGroupedSampler` draws
batches of rows of similar length (still in random order) when the dataset has a `length` column; this adds that
column: each conversation's tokens as the stage feeds them to the model, every image expanded to its image tokens.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def conversation_lengths(conversations: list[list[dict]], processor, image_seq_length: int) -> list[int]:
    """Tokens of each conversation (TRL's `messages`) rendered by the processor's chat template, with each image
    placeholder counted as the `image_seq_length` tokens the processor expands it to."""
    texts = processor.apply_chat_template(conversations, tokenize=False)
    token_counts = [len(ids) for ids in processor.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    image_counts = [sum(item.get("type") == "image" for message in messages for item in message["content"])
                    for messages in conversations]
    return [tokens + images * (image_seq_length - 1) for tokens, images in zip(token_counts, image_counts)]


def with_token_lengths(dataset, processor, image_seq_length: int, column: str = "length"):
    """`dataset` plus a `column` of conversation lengths (see `conversation_lengths`); kept as is when it has one."""
    if column in dataset.column_names:
        return dataset
    lengths = conversation_lengths(list(dataset.select_columns(["messages"])["messages"]), processor,
                                   image_seq_length)
    logger.info("group_by_length: rows of %d to %d tokens", min(lengths), max(lengths))
    return dataset.add_column(column, lengths)
