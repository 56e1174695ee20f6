"""Checks a stage runs on its rows before training starts: a bad row or setting fails in seconds, with its reason,
instead of minutes into training (or never, with a silently truncated image)."""

from __future__ import annotations


def check_stage1_rows(dataset, processor, max_length: int | None, image_seq_length: int) -> None:
    """Every stage-1 row needs its figure, and a max_length that keeps all of its image tokens."""
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
