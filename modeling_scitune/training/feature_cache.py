"""Stage-1 frozen-tower feature cache.

In stage 1 the vision tower is frozen, so the features it gives an image never change during training. They are
computed once (a `datasets.map` pass, written under a cache folder keyed by the tower's weights, the image
processor's settings and the feature layer) and fed to the model instead of pixels, as
`mm_encoder_outputs={"image": BaseModelOutputWithPooling(last_hidden_state=features)}`: the model then runs only the
projector and the LLM. When any tower weight is trainable the cache would be stale, so it is not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

logger = logging.getLogger(__name__)


def tower_is_frozen(model) -> bool:
    return not any(p.requires_grad for p in model.model.vision_tower.parameters())


def cache_key(model, processor) -> str:
    """Changes whenever the cached features would: tower weights, preprocessing, feature layer and strategy."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.vision_tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    settings = {"image_processor": processor.image_processor.to_dict(), "layer": model.config.vision_feature_layer,
                "strategy": model.config.vision_feature_select_strategy}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def add_cached_features(dataset, model, processor, cache_dir: str | Path, batch_size: int = 64):
    """`dataset` plus a `vision_features` column (n_images x tokens x hidden, float32), cached on disk by key."""
    folder = Path(cache_dir) / cache_key(model, processor)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()

    def encode(batch):
        images = [image.convert("RGB") for row in batch["images"] for image in row]
        counts = [len(row) for row in batch["images"]]
        pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            features = model.model.encode_images(pixel_values.to(model.dtype)).float().numpy()
        out, start = [], 0
        for count in counts:
            out.append(features[start:start + count])
            start += count
        return {"vision_features": out}

    fingerprint = hashlib.sha256(f"{dataset._fingerprint}-{folder.name}".encode()).hexdigest()[:16]
    return dataset.map(encode, batched=True, batch_size=batch_size, desc="caching frozen vision features",
                       cache_file_name=str(folder / f"features-{fingerprint}.arrow"), new_fingerprint=fingerprint)


class CachedFeatureCollator:
    """Wraps TRL's vision collator: the text side is built as usual, pixels are replaced by the cached features."""

    def __init__(self, base_collator):
        self.base = base_collator

    def __call__(self, examples):
        features = [np.asarray(example.pop("vision_features"), dtype=np.float32) for example in examples]
        batch = self.base(examples)
        batch.pop("pixel_values", None)
        stacked = [f for f in features if len(f)]
        if stacked:
            cached = torch.from_numpy(np.concatenate(stacked, axis=0))
            batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=cached)}
        return batch
