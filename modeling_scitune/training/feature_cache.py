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


def _text_key(base_collator) -> str:
    """Changes whenever the pre-tokenized text would: tokenizer, chat template, truncation and loss masking."""
    processor = base_collator.processor
    tokenizer = json.loads(processor.tokenizer.backend_tokenizer.to_str())
    tokenizer.pop("padding", None), tokenizer.pop("truncation", None)  # runtime state the collator itself changes
    settings = {"tokenizer": tokenizer, "template": processor.chat_template,
                "max_length": base_collator.max_length, "assistant_only_loss": base_collator.assistant_only_loss}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def add_cached_features(dataset, model, processor, cache_dir: str | Path, batch_size: int = 64, base_collator=None):
    """`dataset` plus cached `vision_features` (n_images x tokens x hidden, float32), ready for stage-1 training.

    With `base_collator` (TRL's vision collator) the same pass also tokenizes each conversation once
    (`input_ids`, `labels`, exactly as that collator builds them), since in stage 1 the text never changes either;
    `CachedFeatureCollator` then only pads. The figures stay in the returned dataset, undecoded (SFTTrainer and the
    collator read only how many there are). Written under `cache_dir/<key>` and reused while the key matches.
    """
    import datasets

    folder = Path(cache_dir) / cache_key(model, processor)
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    stand_in = stand_in_image(processor)

    def encode(batch):
        images = [_open(image) for row in batch["images"] for image in row]
        counts = [len(row) for row in batch["images"]]
        pixel_values = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            features = model.model.encode_images(pixel_values.to(model.dtype)).last_hidden_state.float().numpy()
        out, start = {"vision_features": []}, 0
        for count in counts:
            out["vision_features"].append(features[start:start + count])
            start += count
        if base_collator is not None:  # one collator call per map batch; each row then loses its (right) padding
            text = base_collator([{"messages": messages, "images": [stand_in] * count}
                                  for messages, count in zip(batch["messages"], counts)])
            lengths = text["attention_mask"].sum(dim=1).tolist()
            out["input_ids"] = [ids[:n].tolist() for ids, n in zip(text["input_ids"], lengths)]
            out["labels"] = [labels[:n].tolist() for labels, n in zip(text["labels"], lengths)]
        return out

    with torch.no_grad():  # one blank image tells the feature shape
        probe = model.model.encode_images(processor.image_processor([stand_in], return_tensors="pt")["pixel_values"]
                                          .to(model.dtype)).last_hidden_state
    features = datasets.Features(dict(dataset.features))
    features["images"] = datasets.List(datasets.Image(decode=False))  # kept as PNG bytes, never decoded again
    fingerprint_source = dataset._fingerprint
    dataset = dataset.cast(features=datasets.Features({**dataset.features, "images": features["images"]}))
    features["vision_features"] = datasets.Array3D(shape=(None, *probe.shape[1:]), dtype="float32")
    text_key = "pixels-only"
    if base_collator is not None:
        features["input_ids"] = features["labels"] = datasets.List(datasets.Value("int64"))
        text_key = _text_key(base_collator)
    fingerprint = hashlib.sha256(f"{fingerprint_source}-{folder.name}-{text_key}".encode()).hexdigest()[:16]
    cached = dataset.map(encode, batched=True, batch_size=batch_size, features=features,
                         desc="caching frozen vision features", new_fingerprint=fingerprint,
                         cache_file_name=str(folder / f"features-{fingerprint}.arrow"))
    return cached.with_format("numpy", columns=["vision_features"], output_all_columns=True)


def _open(image: dict):
    """A figure stored undecoded ({"bytes", "path"}) as an RGB PIL image: decoded once, here, and never re-encoded."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]).convert("RGB")


def stand_in_image(processor):
    """A blank image of the processor's output size: the text side needs only the *number* of images per row."""
    from PIL import Image

    image_processor = processor.image_processor
    size = image_processor.crop_size if getattr(image_processor, "do_center_crop", False) else image_processor.size
    height = size.get("height") or size.get("shortest_edge")
    width = size.get("width") or size.get("shortest_edge")
    return Image.new("RGB", (width, height))


class CachedFeatureCollator:
    """Stage-1 batches from the feature cache: cached features instead of pixels, no figure decoded or preprocessed.

    Rows pre-tokenized by `add_cached_features(..., base_collator=...)` are only padded (right side, as TRL does);
    other rows go through TRL's collator with each figure swapped for a blank stand-in of the processed size, so
    `<image>` expands to the same number of tokens, and the stand-in's pixel values are dropped.
    """

    def __init__(self, base_collator, processor=None):
        self.base = base_collator
        self.processor = processor if processor is not None else base_collator.processor
        self.stand_in = stand_in_image(self.processor)

    def __call__(self, examples):
        features = [np.asarray(example.pop("vision_features"), dtype=np.float32) for example in examples]
        if all("input_ids" in example for example in examples):
            batch = self._pad(examples)
        else:
            for example, row_features in zip(examples, features):
                example["images"] = [self.stand_in] * len(row_features)
            batch = self.base(examples)
            batch.pop("pixel_values", None)
        stacked = [f for f in features if len(f)]
        if stacked:
            cached = torch.from_numpy(np.concatenate(stacked, axis=0))
            batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(last_hidden_state=cached)}
        return batch

    def _pad(self, examples) -> dict:
        lengths = [len(example["input_ids"]) for example in examples]
        width = max(lengths)
        multiple = getattr(self.base, "pad_to_multiple_of", None)
        if multiple:
            width = -(-width // multiple) * multiple
        pad_id = self.processor.tokenizer.pad_token_id
        input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (example, length) in enumerate(zip(examples, lengths)):
            input_ids[i, :length] = torch.as_tensor(example["input_ids"])
            labels[i, :length] = torch.as_tensor(example["labels"])
            attention_mask[i, :length] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
