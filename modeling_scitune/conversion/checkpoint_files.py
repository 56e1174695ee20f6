"""Reading the tensors of a checkpoint folder in any form the original code or the Hub wrote it.

Original SciTune / LLaVA-v0 checkpoints come from transformers 4.28-4.34 `save_pretrained`: `pytorch_model.bin` or
`pytorch_model-0000k-of-0000n.bin` shards with `pytorch_model.bin.index.json` (later ones: safetensors, sharded or
not). `.bin` files are read with `torch.load(weights_only=True)`, which unpickles tensors only and never runs code.
Every problem is a `CheckpointError` that names the folder and the file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
# Buffers older transformers (<= 4.30) saved with LLaMA weights; today's LLaMA recomputes them.
LEGACY_BUFFER_SUFFIXES = (".rotary_emb.inv_freq",)


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be converted as it is; the message says what is wrong and where."""


def weight_files(folder: Path) -> list[Path]:
    """The weight files of `folder`, from its shard index when there is one."""
    for name in INDEX_FILES:
        index_file = folder / name
        if index_file.is_file():
            try:
                weight_map = json.loads(index_file.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise CheckpointError(f"{index_file} is not a shard index ({err})") from err
            files = [folder / shard for shard in dict.fromkeys(weight_map.values())]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(f"{folder}: {index_file.name} lists shards that are not there: {missing} "
                                      "(a half-copied checkpoint?)")
            return files
    for name in SINGLE_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise CheckpointError(f"{folder} holds no weights: expected model.safetensors, pytorch_model.bin or a shard index "
                          f"({', '.join(INDEX_FILES)})")


def load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    """One safetensors or `.bin` file (tensors only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - a truncated or foreign file: say which one
        raise CheckpointError(f"cannot read {path}: {type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def read_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in `folder` (all shards), as stored."""
    folder = Path(folder)
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        state.update(load_weight_file(path))
    return state


def drop_legacy_buffers(state: dict[str, torch.Tensor], source: str | Path) -> dict[str, torch.Tensor]:
    """`state` without the buffers old transformers saved (`rotary_emb.inv_freq`), with one notice when any were."""
    dropped = [key for key in state if key.endswith(LEGACY_BUFFER_SUFFIXES)]
    if dropped:
        logger.warning("%s: dropped %d legacy buffers (%s ...) that transformers <= 4.30 saved and today's LLaMA "
                       "recomputes", source, len(dropped), dropped[0])
    return {key: value for key, value in state.items() if key not in dropped}


def stored_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating-point dtype most of the checkpoint's parameters are stored in."""
    counts = Counter()
    for tensor in state.values():
        if tensor.is_floating_point():
            counts[tensor.dtype] += tensor.numel()
    if not counts:
        raise CheckpointError("the checkpoint holds no floating-point weights")
    return counts.most_common(1)[0][0]


def parse_dtype(name: str | None) -> torch.dtype | None:
    """`--dtype` values: float32 / float16 / bfloat16 (None keeps the stored dtype)."""
    if name in (None, "", "stored", "auto"):
        return None
    choices = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
               "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name not in choices:
        raise CheckpointError(f"--dtype {name!r}: choose float32, float16 or bfloat16")
    return choices[name]
