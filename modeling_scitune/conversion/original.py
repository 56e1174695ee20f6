"""Original SciTune / LLaVA-v0 releases -> SciTune folders that answer exactly as the original code.

Three released forms (pnnl/SciTune `training/llava`, LLaVA before v1.0):
- a full checkpoint: a LLaMA state dict that also holds `model.mm_projector.{weight,bias}` (one Linear; LLaVA-1.5's
  `model.mm_projector.{0,2}.*` is the 2-layer MLP), a config with `mm_vision_tower` (a CLIP name: the tower is not in
  the weights), `mm_vision_select_layer` and `mm_use_im_start_end`, and a slow sentencepiece tokenizer;
- an adapter-only release (the SciTune-SciCap stage 1): `mm_projector.bin` with the projector and the input embedding
  matrix (the rows of the added tokens are the trained part), on top of a base LLaMA and CLIP ViT-L/14;
- a LLaVA-v0 delta: every weight minus the base LLaMA's, applied as the original `apply_delta` did (in fp16).
Each becomes the same `OriginalRelease`, written by `write_scitune`: weights in the dtype they were stored in (unless
asked otherwise), the tokenizer rebuilt exactly (`original_tokenizer.py`), `<im_start>`/`<im_end>` around every image
when the checkpoint was trained with them, and the original conversations as chat templates (`v0` = the training
serialization, the default; `simple` = the evaluation conversation). Where the original code applied a default for a
missing config key, the same default is applied here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import AddedToken, processors
from transformers import GenerationConfig, LlamaConfig

from ..configuration_scitune import SciTuneConfig
from ..modeling_scitune import SciTuneForConditionalGeneration
from ..processing_scitune import SciTuneProcessor, scitune_chat_template
from .checkpoint_files import CheckpointError, drop_legacy_buffers, load_weight_file, read_state_dict, stored_dtype
from .original_tokenizer import IMAGE_END_TOKEN, IMAGE_PATCH_TOKEN, IMAGE_START_TOKEN, load_original_tokenizer

logger = logging.getLogger(__name__)

# What the original code did when a config key was missing (LlavaLlamaModel.forward; model_vqa_science.patch_config).
DEFAULT_VISION_TOWER = "openai/clip-vit-large-patch14"
DEFAULT_SELECT_LAYER = -1
LLAMA_FIELDS = set(LlamaConfig().to_dict()) - {"model_type", "architectures", "transformers_version", "dtype",
                                               "torch_dtype", "_name_or_path"}


@dataclass
class OriginalRelease:
    """An original release, read and put together: everything a SciTune folder is written from."""

    source: str
    text_config: dict
    state: dict[str, torch.Tensor]  # LLaMA keys (`model.*`, `lm_head.weight`) + `model.mm_projector.*`
    tokenizer: object
    vision_model: str
    select_layer: int
    use_im_start_end: bool
    dtype: torch.dtype
    notes: list[str] = field(default_factory=list)


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} has no config.json: not a checkpoint folder")
    return json.loads(path.read_text())


def _text_config(raw: dict, vocab_size: int, tokenizer) -> dict:
    """The LLaMA config of the checkpoint, with the token ids of its tokenizer (LLaVA-v0 delta configs carry wrong
    ones: bos 0, eos 1, pad -1) and the vocabulary size of its weights."""
    config = {k: v for k, v in raw.items() if k in LLAMA_FIELDS}
    pad = tokenizer.pad_token_id
    config.update(vocab_size=vocab_size, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=pad if pad is not None and pad < vocab_size else None)
    return LlamaConfig(**config).to_dict()


def _usable_pad_token(tokenizer, vocab_size: int, notes: list[str]) -> None:
    """Batched generation feeds the pad id to the embedding: it must be inside the weights' vocabulary."""
    pad = tokenizer.pad_token_id
    if pad is None or pad >= vocab_size:
        notes.append(f"pad token {tokenizer.pad_token!r} (id {pad}) is outside the {vocab_size}-row vocabulary of the "
                     f"weights: padding uses {tokenizer.unk_token!r} instead (never a prompt token)")
        tokenizer.pad_token = tokenizer.unk_token


def read_full_release(folder: str | Path, vision_model: str | None = None, dtype: torch.dtype | None = None,
                      state: dict | None = None) -> OriginalRelease:
    """A full original checkpoint (or the result of applying a delta, passed as `state`)."""
    folder = Path(folder)
    raw = _read_config(folder)
    state = drop_legacy_buffers(read_state_dict(folder) if state is None else state, folder)
    if not any(key.startswith("model.mm_projector.") for key in state):
        raise CheckpointError(f"{folder} has no model.mm_projector.* weights: not a SciTune / LLaVA-v0 checkpoint")
    if "model.embed_tokens.weight" not in state:
        raise CheckpointError(f"{folder} has no model.embed_tokens.weight: not a LLaMA-based checkpoint")
    tokenizer = load_original_tokenizer(folder)
    notes = []
    vocab_size = state["model.embed_tokens.weight"].shape[0]
    _usable_pad_token(tokenizer, vocab_size, notes)
    tower = vision_model or raw.get("mm_vision_tower")
    if not tower:
        tower = DEFAULT_VISION_TOWER
        notes.append(f"config.json has no mm_vision_tower: using {DEFAULT_VISION_TOWER}, as the original evaluation did")
    if "mm_vision_select_layer" not in raw:
        notes.append(f"config.json has no mm_vision_select_layer: layer {DEFAULT_SELECT_LAYER}, the original default")
    return OriginalRelease(
        source=str(folder), text_config=_text_config(raw, vocab_size, tokenizer), state=state, tokenizer=tokenizer,
        vision_model=tower, select_layer=int(raw.get("mm_vision_select_layer", DEFAULT_SELECT_LAYER)),
        use_im_start_end=bool(raw.get("mm_use_im_start_end", False)), dtype=dtype or stored_dtype(state), notes=notes)


def apply_delta(base_folder: str | Path, delta_folder: str | Path) -> dict[str, torch.Tensor]:
    """LLaVA's `apply_delta`: both models in fp16; equal shapes are added, the embedding and LM head of the base are
    added into the top-left block (the rows of the tokens LLaVA added are absolute), the projector is absolute."""
    base = drop_legacy_buffers(read_state_dict(base_folder), base_folder)
    delta = drop_legacy_buffers(read_state_dict(delta_folder), delta_folder)
    target = {}
    for name, value in delta.items():
        value = value.to(torch.float16).clone()
        if name not in base:
            if not name.startswith("model.mm_projector."):
                raise CheckpointError(f"{delta_folder}: delta weight {name} is not in the base model {base_folder}")
        elif value.shape == base[name].shape:
            value += base[name].to(torch.float16)
        elif name in ("model.embed_tokens.weight", "lm_head.weight"):
            rows, cols = base[name].shape
            value[:rows, :cols] += base[name].to(torch.float16)
        else:
            raise CheckpointError(f"{name}: delta shape {tuple(value.shape)} does not fit the base's "
                                  f"{tuple(base[name].shape)} ({base_folder})")
        target[name] = value
    return target


def _add_training_tokens(tokenizer, base_folder: Path, use_im_start_end: bool, notes: list[str]):
    """The tokens LLaVA-v0's train.py added to a base LLaMA tokenizer, in its order and with its strip flags:
    `[PAD]` when there is no pad token, `<im_patch>`, then `<im_start>` / `<im_end>` with the flag; and its quirk of
    making `</s>` the BOS when the model path contains "llama" (every sequence then starts with id 2)."""
    def token(content):
        return AddedToken(content, lstrip=True, rstrip=True, normalized=False, special=True)

    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": token("[PAD]")})
    if "llama" in str(base_folder):
        tokenizer.add_special_tokens({"bos_token": "</s>", "eos_token": "</s>", "unk_token": "<unk>"})
        bos_id = tokenizer.convert_tokens_to_ids("</s>")
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="</s>:0 $A:0", pair="</s>:0 $A:0 </s>:1 $B:1", special_tokens=[("</s>", bos_id)])
        notes.append(f"base path {base_folder} contains 'llama': BOS is </s> (id {bos_id}), as the original train.py set")
    tokenizer.add_tokens([token(IMAGE_PATCH_TOKEN)], special_tokens=True)
    if use_im_start_end:
        tokenizer.add_tokens([token(IMAGE_START_TOKEN), token(IMAGE_END_TOKEN)], special_tokens=True)
    tokenizer.image_token = IMAGE_PATCH_TOKEN
    return tokenizer


def read_adapter_release(base_folder: str | Path, adapter_file: str | Path, vision_model: str,
                         use_im_start_end: bool = True, select_layer: int = -2,
                         dtype: torch.dtype | None = None) -> OriginalRelease:
    """A stage-1 adapter (`mm_projector.bin`: projector + input embeddings, as `LLaVATrainer._save` wrote it) on a
    base LLaMA. The embedding rows of the added tokens come from the adapter; their LM-head rows, never trained in
    stage 1, get the mean of the base rows (the original gave `[PAD]`, `<im_start>`, `<im_end>` that mean and
    `<im_patch>` a random row, which no prompt token ever reads)."""
    base_folder, adapter_file = Path(base_folder), Path(adapter_file)
    raw = _read_config(base_folder)
    base = drop_legacy_buffers(read_state_dict(base_folder), base_folder)
    if not adapter_file.is_file():
        raise CheckpointError(f"adapter file {adapter_file} does not exist")
    adapter = load_weight_file(adapter_file)
    projector = {k: v for k, v in adapter.items() if k.startswith("model.mm_projector.")}
    if not projector:
        raise CheckpointError(f"{adapter_file} has no model.mm_projector.* weights (keys: {sorted(adapter)[:5]})")
    notes = []
    tokenizer = _add_training_tokens(load_original_tokenizer(base_folder), base_folder, use_im_start_end, notes)
    base_embed, base_head = base["model.embed_tokens.weight"], base["lm_head.weight"]
    vocab_size, base_rows = len(tokenizer), base_embed.shape[0]
    embed = adapter.get("model.embed_tokens.weight")  # selected by full key: the original loader's `split('.')[-1]`
    new_rows = vocab_size - base_rows                 # made both "weight" entries collide
    if embed is None:
        raise CheckpointError(f"{adapter_file} has no model.embed_tokens.weight")
    if embed.shape[0] == vocab_size:
        pass
    elif embed.shape[0] == 2 and use_im_start_end:  # only the <im_start> / <im_end> rows (the original allowed it)
        mean = base_embed.float().mean(0, keepdim=True).to(base_embed.dtype)
        embed = torch.cat([base_embed, mean.expand(new_rows - 2, -1), embed.to(base_embed.dtype)])
    else:
        raise CheckpointError(f"{adapter_file}: embed_tokens has {embed.shape[0]} rows; the tokenizer of {base_folder} "
                              f"with the added tokens has {vocab_size}")
    mean_head = base_head.float().mean(0, keepdim=True).to(base_head.dtype)
    state = {**base, **projector, "model.embed_tokens.weight": embed.to(base_embed.dtype),
             "lm_head.weight": torch.cat([base_head, mean_head.expand(new_rows, -1)])}
    return OriginalRelease(
        source=f"{base_folder} + {adapter_file}", text_config=_text_config(raw, vocab_size, tokenizer), state=state,
        tokenizer=tokenizer, vision_model=vision_model, select_layer=select_layer, use_im_start_end=use_im_start_end,
        dtype=dtype or stored_dtype(base), notes=notes)


def _scitune_state(release: OriginalRelease, tower_state: dict) -> tuple[dict, str]:
    """Original keys -> SciTune keys (LLaVA v5 layout); returns (state, projector_type)."""
    state, projector = {}, {}
    for key, value in release.state.items():
        if key.startswith("model.mm_projector."):
            projector[key[len("model.mm_projector."):]] = value
        elif key.startswith("model."):
            state["model.language_model." + key[len("model."):]] = value
        else:
            state[key] = value
    if "weight" in projector:
        projector_type, names = "linear", {"weight": "linear_1.weight", "bias": "linear_1.bias"}
    else:
        projector_type = "mlp2x_gelu"
        names = {"0.weight": "linear_1.weight", "0.bias": "linear_1.bias", "2.weight": "linear_2.weight",
                 "2.bias": "linear_2.bias"}
    for key, value in projector.items():
        state["model.multi_modal_projector." + names.get(key, key)] = value
    state.update({"model.vision_tower." + key: value for key, value in tower_state.items()})
    return state, projector_type


def _check_keys(expected: dict, state: dict, source: str) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = [f"{name}: {keys[:6]}{' ...' if len(keys) > 6 else ''} ({len(keys)})"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
                 if keys]
        raise CheckpointError(f"{source} does not convert to the SciTune layout: " + "; ".join(parts))


def converted_processor(release: OriginalRelease, image_processor, patch_size: int) -> SciTuneProcessor:
    start, end = (IMAGE_START_TOKEN, IMAGE_END_TOKEN) if release.use_im_start_end else (None, None)
    templates = {"default": scitune_chat_template("v0", IMAGE_PATCH_TOKEN),
                 "simple": scitune_chat_template("simple", IMAGE_PATCH_TOKEN)}
    return SciTuneProcessor(image_processor=image_processor, tokenizer=release.tokenizer, patch_size=patch_size,
                            vision_feature_select_strategy="default", chat_template=templates,
                            image_token=IMAGE_PATCH_TOKEN, num_additional_image_tokens=1,
                            image_start_token=start, image_end_token=end)


def write_scitune(release: OriginalRelease, output_dir: str | Path):
    """Write the SciTune folder of `release` and load it back as users will; returns (model, processor)."""
    from ..training.assemble import load_vision_tower

    tower, image_processor = load_vision_tower(release.vision_model)
    vision = tower.config
    patches = (vision.image_size // vision.patch_size) ** 2
    probe, projector_type = _scitune_state(release, {})
    config = SciTuneConfig(
        vision_config=vision.to_dict(), text_config=release.text_config, projector_type=projector_type,
        image_token_id=release.tokenizer.convert_tokens_to_ids(IMAGE_PATCH_TOKEN), image_seq_length=patches,
        vision_feature_layer=release.select_layer,
        multimodal_projector_bias="model.multi_modal_projector.linear_1.bias" in probe,
    )
    with torch.device("meta"):  # the layout to fill, without allocating (or initialising) a second model
        model = SciTuneForConditionalGeneration(config)
    expected = model.state_dict()
    tower_state = {k: v for k, v in tower.state_dict().items() if "model.vision_tower." + k in expected}
    state, _ = _scitune_state(release, tower_state)
    _check_keys(expected, state, release.source)
    state = {key: value.to(release.dtype).contiguous() for key, value in state.items()}
    model = model.to(release.dtype)
    tokenizer = release.tokenizer
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=64)
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir, state_dict=state)
    processor = converted_processor(release, image_processor, vision.patch_size)
    processor.save_pretrained(output_dir)
    for note in release.notes:
        logger.warning("%s: %s", release.source, note)
    loaded, info = SciTuneForConditionalGeneration.from_pretrained(output_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k != "error_msgs"}
    if problems:
        raise CheckpointError(f"the converted folder {output_dir} does not load cleanly: {problems}")
    return loaded, processor
