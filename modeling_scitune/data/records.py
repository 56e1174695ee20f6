"""One scientific figure and the human-written signals around it: the unit every reader produces.

A `FigureRecord` is what SciCap's challenge JSON, a PDF page or the synthetic generator all turn into; the
instruction builder turns it into a conversation. Validation says *why* a record is unusable, so builds can
skip it, count it by reason and list it, instead of crashing or silently dropping it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# The five SciCap figure types (SciCap challenge `figure_type` labels, as used by SciTune).
FIGURE_TYPES = ("Graph Plot", "Scatterplot", "Bar Chart", "Node Diagram", "Equation")


def _where(image) -> str:
    return "image bytes" if isinstance(image, bytes) else str(image)


class InvalidRecord(ValueError):
    """A record that cannot become an instruction. `reason` is a short, countable key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class FigureRecord:
    """A figure (image) with its Caption, Type, OCR tokens and the paragraphs / sentences that Mention it."""

    figure_id: str
    image: Image.Image | str | Path | bytes | None
    caption: str
    figure_type: str | None = None
    ocr: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    mentions: list[str] = field(default_factory=list)
    source: dict = field(default_factory=dict)  # paper_id, file, page
    meta: dict = field(default_factory=dict)  # generator facts (series count, trend, ...) for benchmarks

    def load_image(self) -> Image.Image:
        """The image as an RGB PIL image; raises InvalidRecord('missing_image' / 'corrupt_image') with the path."""
        image = self.image
        if image is None:
            raise InvalidRecord("missing_image", f"{self.figure_id}: no image given")
        if isinstance(image, Image.Image):
            return image.convert("RGB")
        if not isinstance(image, bytes) and not Path(image).is_file():
            raise InvalidRecord("missing_image", f"{self.figure_id}: {image} does not exist")
        try:
            loaded = Image.open(io.BytesIO(image) if isinstance(image, bytes) else Path(image))
            loaded.load()
        except Image.DecompressionBombError as err:
            raise InvalidRecord("decompression_bomb", f"{self.figure_id}: {_where(image)} ({err})") from err
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InvalidRecord("corrupt_image", f"{self.figure_id}: {_where(image)} ({err})") from err
        return loaded.convert("RGB")

    def check_field_types(self) -> None:
        """Raise InvalidRecord('wrong_field_type') unless the text fields hold what a conversation is built from."""
        def fail(name, expected, value):
            raise InvalidRecord("wrong_field_type", f"{self.figure_id}: {name} must be {expected}, got "
                                                    f"{type(value).__name__} {str(value)[:60]!r}")

        if not isinstance(self.caption, str):
            fail("caption", "a string", self.caption)
        if self.figure_type is not None and not isinstance(self.figure_type, str):
            fail("figure_type", "a string", self.figure_type)
        for name in ("ocr", "paragraphs", "mentions"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                fail(name, "a list of strings", value)

    def validate(self) -> FigureRecord:
        """Check the fields a conversation needs; returns a copy with the image loaded and text cleaned."""
        self.check_field_types()
        caption = " ".join((self.caption or "").split())
        if not caption:
            raise InvalidRecord("empty_caption", f"{self.figure_id}: caption is empty")
        if self.figure_type is not None and self.figure_type not in FIGURE_TYPES:
            raise InvalidRecord(
                "unknown_figure_type", f"{self.figure_id}: {self.figure_type!r} is not one of {FIGURE_TYPES}"
            )
        image = self.load_image()
        if image.width < 8 or image.height < 8:
            raise InvalidRecord("corrupt_image", f"{self.figure_id}: image is {image.width}x{image.height} px")
        return FigureRecord(
            figure_id=self.figure_id,
            image=image,
            caption=caption,
            figure_type=self.figure_type,
            ocr=[t.strip() for t in self.ocr if t and t.strip()],
            paragraphs=[" ".join(p.split()) for p in self.paragraphs if p and p.strip()],
            mentions=[" ".join(m.split()) for m in self.mentions if m and m.strip()],
            source=dict(self.source),
            meta=dict(self.meta),
        )
