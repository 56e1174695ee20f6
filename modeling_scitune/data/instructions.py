"""Figure record -> one SciTune instruction conversation (variants C, CT, CTO, CTOM) in TRL's format.

The original SciTune target (preprocessing/generate_instructions_scicap.py, "v2" = CTOM) is
    "{figure_type} {caption}\\n{OCR tokens joined by TAB}\\n{paragraphs}\\n{mentions}"
with every whole word "Fig." / "Fig" / "Figure" replaced by the figure type ("Image" when the type is unknown).
CT and CTO are prefixes of the CTOM target; C is the caption alone. The human turn is one of the "describe" prompts,
drawn with a seeded RNG, followed by the image (the paper puts the image after the instruction).
"""

from __future__ import annotations

import random
import re

from .records import FigureRecord

VARIANTS = ("C", "CT", "CTO", "CTOM")
UNKNOWN_TYPE = "Image"

# Detail-description instructions in the spirit of LLaVA's list of 16 (written for this project).
DESCRIBE_PROMPTS = (
    "Describe the following image in detail.",
    "Provide a detailed description of the given image.",
    "Give an elaborate explanation of the image you see.",
    "Share a comprehensive rundown of the presented image.",
    "Offer a thorough analysis of the image.",
    "Explain the various aspects of the image before you.",
    "Clarify the contents of the displayed image with great detail.",
    "Characterize the image using a well-detailed description.",
    "Break down the elements of the image in a detailed manner.",
    "Walk through the important details of the image.",
    "Portray the image with a rich, descriptive narrative.",
    "Narrate the contents of the image with precision.",
    "Analyze the image in a comprehensive and detailed manner.",
    "Illustrate the image through a descriptive explanation.",
    "Examine the image closely and share its details.",
    "Write an exhaustive depiction of the given image.",
)

_FIGURE_WORD = re.compile(r"\b(?:fig\.|figure\b|fig\b)", flags=re.IGNORECASE)


def replace_figure_words(text: str, figure_type: str | None) -> str:
    """Replace whole-word "Fig." / "Fig" / "Figure" (any case) by the figure type, as the original builder did."""
    return _FIGURE_WORD.sub(figure_type or UNKNOWN_TYPE, text)


def build_target(record: FigureRecord, variant: str = "CTOM") -> str:
    """The assistant answer for `variant`; empty OCR / paragraph / mention parts are left out."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "C":
        return record.caption
    figure_type = record.figure_type or UNKNOWN_TYPE
    parts = [f"{figure_type} {record.caption}"]
    if variant in ("CTO", "CTOM"):
        parts.append("\t".join(record.ocr))
    if variant == "CTOM":
        parts.append("\n".join(record.paragraphs))
        parts.append("\n".join(record.mentions))
    return replace_figure_words("\n".join(part for part in parts if part), record.figure_type)


def build_conversation(record: FigureRecord, variant: str = "CTOM", rng: random.Random | None = None) -> dict:
    """`{"messages": [...], "images": [image]}`: TRL's conversational vision format, ready for SFTTrainer."""
    rng = rng or random.Random(0)
    prompt = rng.choice(DESCRIBE_PROMPTS)
    return {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "image", "text": None}]},
            {"role": "assistant", "content": [{"type": "text", "text": build_target(record, variant)}]},
        ],
        "images": [record.image],
    }


def messages_for_variant(row: dict, variant: str) -> list[dict]:
    """A dataset row's conversation rebuilt for `variant` from its stored record fields and its stored instruction:
    one stage-1 dataset serves the paper's C / CT / CTO / CTOM ablation."""
    record = FigureRecord(figure_id=row.get("figure_id") or "", image=None, caption=row["caption"],
                          figure_type=row.get("figure_type") or None, ocr=list(row.get("ocr") or []),
                          paragraphs=list(row.get("paragraphs") or []), mentions=list(row.get("mentions") or []))
    user = row["messages"][0]
    return [user, {"role": "assistant", "content": [{"type": "text", "text": build_target(record, variant)}]}]
