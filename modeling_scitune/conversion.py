"""Checkpoint conversion: original SciTune / LLaVA-v0 -> SciTune folder, and SciTune (MLP projector) -> native LLaVA.

Original layout (pnnl/SciTune `training/llava`, LLaVA before v1.0): a LLaMA checkpoint whose state dict also holds
`model.mm_projector.{weight,bias}` (one Linear; LLaVA-1.5 checkpoints hold `model.mm_projector.{0,2}.*`), a config
with `mm_vision_tower` (a CLIP name), `mm_vision_select_layer` (-2) and `mm_use_im_start_end`, and a tokenizer with
`[PAD]`, `<im_patch>` (the image placeholder, one per patch) and optionally `<im_start>` / `<im_end>`. The CLIP tower
is not in the checkpoint: it is loaded by name. Original `.bin` shards are read with `torch.load(weights_only=True)`
(tensors only, no code); everything written is safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig

from .configuration_scitune import SciTuneConfig
from .modeling_scitune import SciTuneForConditionalGeneration
from .processing_scitune import SCITUNE_CHAT_TEMPLATE, SciTuneProcessor

ORIGINAL_IMAGE_TOKEN = "<im_patch>"
LLAMA_FIELDS = set(LlamaConfig().to_dict())


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder: safetensors files, else `.bin` shards loaded with weights_only=True."""
    files = sorted(folder.glob("*.safetensors"))
    if files:
        state = {}
        for file in files:
            state.update(load_file(str(file)))
        return state
    files = sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"{folder} has no *.safetensors or pytorch_model*.bin weights")
    state = {}
    for file in files:
        state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def convert_original(original: str | Path, output_dir: str | Path, vision_model: str | None = None):
    """Build a SciTune folder from an original SciTune / LLaVA-v0 checkpoint; returns (model, processor)."""
    from .training.assemble import load_vision_tower

    original = Path(original)
    raw = json.loads((original / "config.json").read_text())
    vision_name = vision_model or raw.get("mm_vision_tower")
    if not vision_name:
        raise ValueError(f"{original}/config.json has no mm_vision_tower: pass the CLIP checkpoint with --vision-model")
    tower, image_processor = load_vision_tower(vision_name)
    state = read_state_dict(original)
    projector = {k[len("model.mm_projector."):]: v for k, v in state.items() if k.startswith("model.mm_projector.")}
    if not projector:
        raise ValueError(f"{original} has no model.mm_projector.* weights: not a SciTune / LLaVA-v0 checkpoint")
    if "weight" in projector:
        projector_type, projector_state = "linear", {"linear_1.weight": projector["weight"], "linear_1.bias": projector.get("bias")}
    else:
        projector_type = "mlp2x_gelu"
        projector_state = {"linear_1.weight": projector["0.weight"], "linear_1.bias": projector.get("0.bias"),
                           "linear_2.weight": projector["2.weight"], "linear_2.bias": projector.get("2.bias")}
    projector_state = {k: v for k, v in projector_state.items() if v is not None}
    tokenizer = AutoTokenizer.from_pretrained(original)
    if ORIGINAL_IMAGE_TOKEN not in tokenizer.get_vocab():
        raise ValueError(f"{original}: the tokenizer has no {ORIGINAL_IMAGE_TOKEN} token")
    tokenizer.image_token = ORIGINAL_IMAGE_TOKEN  # the processor expands this token, one per image patch
    text_config = LlamaConfig(**{k: v for k, v in raw.items() if k in LLAMA_FIELDS and k not in ("model_type", "architectures")})
    vision_config = tower.config
    layer = raw.get("mm_vision_select_layer", -2)
    config = SciTuneConfig(
        vision_config=vision_config.to_dict(), text_config=text_config.to_dict(), projector_type=projector_type,
        image_token_id=tokenizer.convert_tokens_to_ids(ORIGINAL_IMAGE_TOKEN),
        image_seq_length=(vision_config.image_size // vision_config.patch_size) ** 2, vision_feature_layer=layer,
        multimodal_projector_bias="linear_1.bias" in projector_state,
    )
    model = SciTuneForConditionalGeneration(config)
    language = {k[len("model."):]: v for k, v in state.items()
                if k.startswith("model.") and not k.startswith(("model.mm_projector.", "model.vision_tower."))}
    model.model.language_model.load_state_dict(language, strict=True)
    model.lm_head.load_state_dict({"weight": state["lm_head.weight"]})
    model.model.multi_modal_projector.load_state_dict(projector_state, strict=True)
    model.model.load_vision_tower_weights(tower.state_dict())
    processor = SciTuneProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=vision_config.patch_size,
        vision_feature_select_strategy="default", image_token=ORIGINAL_IMAGE_TOKEN, num_additional_image_tokens=1,
        chat_template=SCITUNE_CHAT_TEMPLATE.replace("'<image>'", f"'{ORIGINAL_IMAGE_TOKEN}'"),
    )
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return model, processor


def export_to_llava(scitune_dir: str | Path, output_dir: str | Path):
    """Write a native `LlavaForConditionalGeneration` folder (MLP projector only) for servers without custom code."""
    from transformers import AutoProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    model = SciTuneForConditionalGeneration.from_pretrained(scitune_dir)
    config = model.config
    if config.projector_type != "mlp2x_gelu":
        raise ValueError(f"{scitune_dir} has a {config.projector_type!r} projector; native LLaVA only has the 2-layer "
                         "MLP projector (projector_type='mlp2x_gelu'), so this model cannot be exported")
    llava_config = LlavaConfig(
        vision_config=config.vision_config.to_dict(), text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_id, image_seq_length=config.image_seq_length,
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        projector_hidden_act=config.projector_hidden_act, multimodal_projector_bias=config.multimodal_projector_bias,
        tie_word_embeddings=config.tie_word_embeddings,
    )
    llava = LlavaForConditionalGeneration(llava_config)
    missing, unexpected = llava.load_state_dict(model.state_dict(), strict=False)
    # A truncated SciTune tower has no weights for the layers after the feature layer: LLaVA computes but never uses
    # them (it reads hidden_states[vision_feature_layer]), so they keep their fresh initialisation.
    kept = model.model.vision_layers_kept
    unused_tail = [k for k in missing if k.startswith("model.vision_tower.post_layernorm.") or (
        kept is not None and k.startswith("model.vision_tower.encoder.layers.")
        and int(k.split(".")[4]) >= kept)]
    if set(missing) - set(unused_tail) or unexpected:
        raise ValueError(f"state dicts differ: missing {sorted(set(missing) - set(unused_tail))[:5]}, "
                         f"unexpected {unexpected[:5]}")
    llava.generation_config = model.generation_config
    llava.save_pretrained(output_dir)
    ours = AutoProcessor.from_pretrained(scitune_dir, trust_remote_code=True)
    LlavaProcessor(image_processor=ours.image_processor, tokenizer=ours.tokenizer, patch_size=ours.patch_size,
                   vision_feature_select_strategy=ours.vision_feature_select_strategy, chat_template=ours.chat_template,
                   image_token=ours.image_token, num_additional_image_tokens=ours.num_additional_image_tokens,
                   ).save_pretrained(output_dir)
    return llava
