"""The `datasets` features of SciTune's rows: the one place their layout is written.

- `MESSAGES`: a conversation in TRL's vision format (role + content items of type "text" or "image").
- `CONVERSATION_FEATURES`: a training row as SFTTrainer reads it (`messages` + `images`).
- `FIGURE_RECORD_FEATURES`: a stage-1 row: the conversation plus every field of its figure record (caption, type, OCR,
  paragraphs, mentions, source), so any instruction variant can be rebuilt and benchmarks can score against them.
"""

from __future__ import annotations

import datasets

TEXT = datasets.Value("string")
MESSAGES = datasets.List({"role": TEXT, "content": datasets.List({"type": TEXT, "text": TEXT})})
CONVERSATION_FEATURES = datasets.Features({"messages": MESSAGES, "images": datasets.List(datasets.Image())})
FIGURE_RECORD_FEATURES = datasets.Features({
    **CONVERSATION_FEATURES,
    "figure_id": TEXT,
    "figure_type": TEXT,
    "caption": TEXT,
    "ocr": datasets.List(TEXT),
    "paragraphs": datasets.List(TEXT),
    "mentions": datasets.List(TEXT),
    "source": {"paper_id": TEXT, "file": TEXT, "page": datasets.Value("int32")},
    "variant": TEXT,
    "meta": TEXT,  # JSON: generator facts or reader details
})
