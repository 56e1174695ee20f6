"""Any SciTune folder -> a native `LlavaForConditionalGeneration` folder with identical logits.

So llava-hf clients and servers (vLLM, TGI, `pipeline` without `trust_remote_code`) run every SciTune model:
- the paper's linear projector is LLaVA's 2-layer MLP with an identity activation (`projector_hidden_act="linear"`)
  and an identity second layer (weight = I, bias = 0): the same numbers, exactly;
- a truncated SciTune tower (built only up to its feature layer) becomes a LLaVA tower with that many layers, whose
  feature layer is the same hidden state; the post-layernorm LLaVA's tower carries but never uses for features gets
  LayerNorm's identity initialisation;
- the chat templates are regenerated for LLaVA's processor: `<im_start>` / `<im_end>` (which SciTune's processor adds
  around each image) written around the image token, and no BOS in the text (LLaVA's processor adds it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..modeling_scitune import SciTuneForConditionalGeneration
from ..processing_scitune import CHAT_STYLES, scitune_chat_template

logger = logging.getLogger(__name__)


def identify_chat_style(template: str, image_token: str) -> str | None:
    """Which of SciTune's conversation styles `template` is (None for a template written by hand)."""
    return next((style for style in CHAT_STYLES if template == scitune_chat_template(style, image_token)), None)


def llava_chat_templates(processor) -> dict[str, str] | str | None:
    """The processor's chat templates rewritten for LlavaProcessor (see the module docstring)."""
    image = processor.image_token
    if getattr(processor, "image_start_token", None):
        image = processor.image_start_token + image + processor.image_end_token
    templates = processor.chat_template
    named = templates if isinstance(templates, dict) else {"default": templates}
    out = {}
    for name, template in named.items():
        style = identify_chat_style(template, processor.image_token) if template else None
        if style is None:
            logger.warning("chat template %r is not one of SciTune's styles: copied unchanged (check BOS and image "
                           "tokens with LlavaProcessor)", name)
            out[name] = template
        else:
            out[name] = scitune_chat_template(style, image, bos=False)
    return out if isinstance(templates, dict) else out["default"]


def llava_state_dict(model: SciTuneForConditionalGeneration) -> dict[str, torch.Tensor]:
    """SciTune's state dict in LLaVA's layout and shapes."""
    config = model.config
    state = dict(model.state_dict())
    weight = state["model.multi_modal_projector.linear_1.weight"]
    if config.projector_type == "linear":
        hidden = weight.shape[0]
        state["model.multi_modal_projector.linear_2.weight"] = torch.eye(hidden, dtype=weight.dtype)
        if config.multimodal_projector_bias:
            state["model.multi_modal_projector.linear_2.bias"] = torch.zeros(hidden, dtype=weight.dtype)
    tower = model.model.vision_tower
    if isinstance(tower.post_layernorm, torch.nn.Identity):
        hidden = config.vision_config.hidden_size
        state["model.vision_tower.post_layernorm.weight"] = torch.ones(hidden, dtype=weight.dtype)
        state["model.vision_tower.post_layernorm.bias"] = torch.zeros(hidden, dtype=weight.dtype)
    return state


def export_to_llava(scitune_dir: str | Path, output_dir: str | Path):
    """Write `output_dir` (LlavaForConditionalGeneration + LlavaProcessor) from the SciTune folder `scitune_dir`."""
    from transformers import AutoProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    model = SciTuneForConditionalGeneration.from_pretrained(scitune_dir)
    config = model.config
    vision_config = config.vision_config.to_dict()
    if model.model.vision_layers_kept is not None:
        vision_config["num_hidden_layers"] = model.model.vision_layers_kept
    layers = config.vision_feature_layers
    llava_config = LlavaConfig(
        vision_config=vision_config, text_config=config.text_config.to_dict(),
        image_token_index=config.image_token_id, image_seq_length=config.image_seq_length,
        vision_feature_layer=layers[0] if len(layers) == 1 else layers,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        projector_hidden_act="linear" if config.projector_type == "linear" else config.projector_hidden_act,
        multimodal_projector_bias=config.multimodal_projector_bias, tie_word_embeddings=config.tie_word_embeddings,
    )
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(llava_config)
    state = llava_state_dict(model)
    expected = llava.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{scitune_dir}: SciTune and LLaVA layouts differ: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    llava = llava.to(model.dtype)
    llava.generation_config = model.generation_config
    llava.save_pretrained(output_dir, state_dict=state)
    ours = AutoProcessor.from_pretrained(scitune_dir, trust_remote_code=True)
    LlavaProcessor(image_processor=ours.image_processor, tokenizer=ours.tokenizer, patch_size=ours.patch_size,
                   vision_feature_select_strategy=ours.vision_feature_select_strategy,
                   chat_template=llava_chat_templates(ours), image_token=ours.image_token,
                   num_additional_image_tokens=ours.num_additional_image_tokens).save_pretrained(output_dir)
    return LlavaForConditionalGeneration.from_pretrained(output_dir)
