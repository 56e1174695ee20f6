"""The frozen-tower feature cache: a data step that adds each row's vision features and its tokens, computed once.

The vision tower is frozen in both stages, so the features it gives a figure never change while a stage trains, and
neither does a row's text. One `datasets.map` pass (cached on disk under `<cache root>/feature-cache/<key>`, the key
changing with the tower's weights, the image preprocessing, the feature layer, the tokenizer and the chat template)
adds three columns: `vision_features` (the selected tower features, before the projector), and `input_ids` /
`labels` exactly as TRL's vision collator would build them (the processor's chat template with the row's real figures,
labels only on the assistant's answer). Each training step then only pads (TRL's `DataCollatorForLanguageModeling`)
and hands the features to the model as `mm_encoder_outputs`, so a step runs the projector and the LLM and no tower,
no image decoding, no preprocessing. With any tower weight trainable the cache would be stale: it is not used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

logger = logging.getLogger(__name__)


def tower_is_frozen(model) -> bool:
    return not any(p.requires_grad for p in model.model.vision_tower.parameters())


def cache_key(model, processor, max_length: int | None) -> str:
    """Changes whenever the cached columns would: tower weights, preprocessing, feature layer, tokenizer, template."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.vision_tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    tokenizer = json.loads(processor.tokenizer.backend_tokenizer.to_str())
    tokenizer.pop("padding", None), tokenizer.pop("truncation", None)  # runtime state, not content
    settings = {"image_processor": processor.image_processor.to_dict(), "layer": model.config.vision_feature_layer,
                "strategy": model.config.vision_feature_select_strategy, "tokenizer": tokenizer,
                "template": processor.chat_template, "max_length": max_length}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _open(image: dict):
    """A figure stored undecoded ({"bytes", "path"}) as an RGB PIL image: decoded once, here."""
    from PIL import Image

    return Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]).convert("RGB")


def _blank_like(pixel_values: torch.Tensor):
    """A blank RGB image of a processed figure's size, which the processor keeps as it is: what the processor expands
    an image's `<image>` into depends on that size alone (`SciTuneProcessor.replace_image_token`), so the tokens come
    out the same as with the figure, without resizing the full-size figure again for every row that shows it."""
    from PIL import Image

    height, width = pixel_values.shape[-2:]
    return Image.new("RGB", (width, height))


def tokenize_row(processor, messages: list, images: list, max_length: int | None) -> dict:
    """`input_ids` and `labels` of one conversation, as TRL's vision collator builds them (before padding)."""
    from trl.data_utils import prepare_multimodal_messages

    output = processor.apply_chat_template(
        [prepare_multimodal_messages(messages, images=images)], tokenize=True, return_dict=True,
        return_assistant_tokens_mask=True,
        processor_kwargs={"add_special_tokens": False, "truncation": max_length is not None, "max_length": max_length},
    )
    input_ids = list(output["input_ids"][0])
    labels = [token if mask else -100 for token, mask in zip(input_ids, output["assistant_masks"][0])]
    return {"input_ids": input_ids, "labels": labels}


def add_cached_features(dataset, model, processor, cache_dir, max_length: int | None = None, batch_size: int = 64):
    """`dataset` plus `vision_features`, `input_ids` and `labels` (see the module docstring); figures stay undecoded."""
    import datasets
    from pathlib import Path

    folder = Path(cache_dir) / cache_key(model, processor, max_length)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    with torch.no_grad():  # one probe image tells the feature shape
        size = processor.image_processor.crop_size if getattr(processor.image_processor, "do_center_crop", False) \
            else processor.image_processor.size
        probe = torch.zeros(1, 3, size.get("height") or size.get("shortest_edge"),
                            size.get("width") or size.get("shortest_edge"), dtype=model.dtype)
        shape = model.model.encode_images(probe).last_hidden_state.shape[1:]

    def encode(batch):
        # Rows that share a figure (a ScienceQA problem in several option orders sits in consecutive rows) share one
        # decode and one tower pass: the features of a figure do not depend on the row it is in.
        distinct: dict = {}  # stored figure (its bytes, or its path) -> (index among the batch's figures, figure)

        def index_of(image: dict) -> int:
            return distinct.setdefault(image.get("bytes") or image.get("path"), (len(distinct), image))[0]

        rows = [[index_of(image) for image in row] for row in batch["images"]]
        decoded = [_open(image) for _, image in distinct.values()]
        out = {"vision_features": [], "input_ids": [], "labels": []}
        features = np.zeros((0, *shape), dtype=np.float32)
        stand_ins = []
        if decoded:
            pixel_values = processor.image_processor(decoded, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                features = model.model.encode_images(pixel_values.to(model.dtype)).last_hidden_state.float().numpy()
            stand_ins = [_blank_like(values) for values in pixel_values]
        for messages, indices in zip(batch["messages"], rows):
            out["vision_features"].append(features[indices] if indices else np.zeros((0, *shape), dtype=np.float32))
            tokens = tokenize_row(processor, messages, [stand_ins[index] for index in indices], max_length)
            out["input_ids"].append(tokens["input_ids"])
            out["labels"].append(tokens["labels"])
        return out

    undecoded = datasets.Features({**dataset.features, "images": datasets.List(datasets.Image(decode=False))})
    from datasets.fingerprint import Hasher

    source = Hasher.hash(dataset)  # the rows' own fingerprint (datasets keeps it), before the images are left undecoded
    dataset = dataset.cast(undecoded)
    features = datasets.Features({**undecoded, "vision_features": datasets.Array3D(shape=(None, *shape), dtype="float32"),
                                  "input_ids": datasets.List(datasets.Value("int64")),
                                  "labels": datasets.List(datasets.Value("int64"))})
    fingerprint = hashlib.sha256(f"{source}-{folder.name}".encode()).hexdigest()[:16]
    cached = dataset.map(encode, batched=True, batch_size=batch_size, features=features,
                         desc="caching frozen vision features and tokens", new_fingerprint=fingerprint,
                         cache_file_name=str(folder / f"features-{fingerprint}.arrow"))
    return cached.with_format("numpy", columns=["vision_features"], output_all_columns=True)


class CachedFeatureCollator:
    """A batch of cached rows: TRL's `DataCollatorForLanguageModeling` pads `input_ids` / `labels` (right side), and
    the rows' cached features go to the model as `mm_encoder_outputs`."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.pad = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, pad_to_multiple_of=pad_to_multiple_of)

    def __call__(self, examples):
        batch = self.pad([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        features = [np.asarray(e["vision_features"], dtype=np.float32) for e in examples]
        stacked = [f for f in features if len(f)]
        if stacked:
            cached = torch.from_numpy(np.concatenate(stacked, axis=0))
            batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=cached)}
        return batch
