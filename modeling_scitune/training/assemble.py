"""Build a SciTune model + processor from a vision encoder and a language model (paths or Hub names).

This is how stage 1 starts, on a GPU machine from `openai/clip-vit-large-patch14` + a LLaMA checkpoint, here from
the miniature backbones that `scitune-train backbones` pretrains (or, with no paths, small random ones). The vision
tower is the vision half of a CLIP checkpoint (or a CLIPVisionModel), the language model and LM head come from a
causal LM; `<image>` (and a pad token) are added to the tokenizer when missing and the embeddings resized, the new
rows initialised to the mean embedding (as LLaVA-v0 did for its new tokens).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessorPil, CLIPVisionConfig,
                          CLIPVisionModel, GenerationConfig)

from ..configuration_scitune import SciTuneConfig
from ..modeling_scitune import SciTuneForConditionalGeneration
from ..processing_scitune import SCITUNE_CHAT_TEMPLATE, SciTuneProcessor

IMAGE_TOKEN = "<image>"
logger = logging.getLogger(__name__)


def generation_config_for(tokenizer) -> GenerationConfig:
    return GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=64,
        do_sample=False,
    )


def load_vision_tower(name_or_path: str) -> tuple[CLIPVisionModel, CLIPImageProcessorPil]:
    """The CLIP vision encoder and its image processor from a CLIPModel or CLIPVisionModel checkpoint."""
    config = AutoConfig.from_pretrained(name_or_path)
    vision_config = config.vision_config if hasattr(config, "vision_config") else config
    if not isinstance(vision_config, CLIPVisionConfig):
        raise ValueError(f"{name_or_path}: expected a CLIP checkpoint, found model_type {config.model_type!r}")
    tower = CLIPVisionModel.from_pretrained(name_or_path, config=vision_config)
    try:
        image_processor = CLIPImageProcessorPil.from_pretrained(name_or_path)
    except OSError:
        size = vision_config.image_size
        image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return tower, image_processor


PROBE_CONVERSATION = [{"role": "user", "content": "Which figure type is this?"},
                      {"role": "assistant", "content": "Bar Chart"}, {"role": "user", "content": "And its caption?"}]


def chatml_default_system(tokenizer) -> str | None | bool:
    """When the tokenizer's own chat template is ChatML, the system text it writes for a conversation without one
    (None: it writes none); False when it has no template or another layout."""
    from ..processing_scitune import chatml_chat_template

    if not tokenizer.chat_template or not isinstance(tokenizer.chat_template, str):
        return False
    try:
        own = tokenizer.apply_chat_template(PROBE_CONVERSATION, tokenize=False, add_generation_prompt=True)
    except Exception:  # a template that cannot render the probe is not one we can reproduce
        return False
    system = None
    if own.startswith("<|im_start|>system\n"):
        system = own[len("<|im_start|>system\n"):].split("<|im_end|>", 1)[0]
    ours = tokenizer.apply_chat_template(PROBE_CONVERSATION, chat_template=chatml_chat_template(system), tokenize=False,
                                         add_generation_prompt=True)
    return system if ours == own else False


def training_chat_template(tokenizer) -> str:
    """The chat template SciTune trains and evaluates with: the LLM's own layout when it is ChatML (reproduced with
    image items and `{% generation %}` markers), the SciTune template when the LLM has none. Another layout falls
    back to the SciTune template with a warning (the LLM then learns that layout in stage 2)."""
    from ..processing_scitune import chatml_chat_template

    system = chatml_default_system(tokenizer)
    if system is not False:
        return chatml_chat_template(system, IMAGE_TOKEN)
    if tokenizer.chat_template and tokenizer.chat_template != SCITUNE_CHAT_TEMPLATE:
        logger.warning("the language model's chat template is not ChatML: SciTune's template is used instead")
    return SCITUNE_CHAT_TEMPLATE


def prepare_tokenizer(tokenizer):
    """Add `<image>` (special) and a pad token when missing; set the chat template SciTune trains with (the LLM's own
    when it has one SciTune can reproduce, see `training_chat_template`)."""
    added = {}
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        added["additional_special_tokens"] = [IMAGE_TOKEN]
    if tokenizer.pad_token is None:
        added["pad_token"] = "<pad>"
    if added:
        tokenizer.add_special_tokens(added)
    if getattr(tokenizer, "image_token", None) is None:
        tokenizer.image_token = IMAGE_TOKEN
    tokenizer.chat_template = training_chat_template(tokenizer)
    return tokenizer


def _resize_with_mean(model, vocab_size: int):
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size == old:
        return
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        for embedding in {model.get_input_embeddings(), model.get_output_embeddings()}:
            if embedding is not None and vocab_size > old:
                embedding.weight[old:] = embedding.weight[:old].mean(dim=0, keepdim=True)


def assemble_scitune(
    vision_model: str,
    text_model: str,
    projector_type: str = "linear",
    vision_feature_layer: int = -2,
    dtype: torch.dtype = torch.float32,
) -> tuple[SciTuneForConditionalGeneration, SciTuneProcessor]:
    """A SciTune model whose tower and LM carry the given pretrained weights; the projector is freshly initialised."""
    tower, image_processor = load_vision_tower(vision_model)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(text_model))
    language_model = AutoModelForCausalLM.from_pretrained(text_model, dtype=dtype)
    _resize_with_mean(language_model, len(tokenizer))
    text_config = language_model.config
    text_config.pad_token_id = tokenizer.pad_token_id
    vision_config = tower.config
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    config = SciTuneConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        projector_type=projector_type,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=patches,
        vision_feature_layer=vision_feature_layer,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    model = SciTuneForConditionalGeneration(config).to(dtype)
    model.model.load_vision_tower_weights(tower.state_dict())
    model.model.language_model.load_state_dict(language_model.model.state_dict())
    model.lm_head.load_state_dict(language_model.lm_head.state_dict())
    model.generation_config = generation_config_for(tokenizer)
    processor = SciTuneProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 patch_size=vision_config.patch_size, vision_feature_select_strategy="default",
                                 num_additional_image_tokens=1, chat_template=tokenizer.chat_template)
    return model, processor


def load_scitune(path: str | Path, dtype: torch.dtype = torch.float32):
    """A SciTune checkpoint and its processor; a clear error when `path` is not one."""
    from transformers import AutoProcessor

    config_file = Path(path) / "config.json"
    if Path(path).is_dir() and not config_file.is_file():
        raise ValueError(f"{path} is not a SciTune checkpoint: it has no config.json")
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    if config.model_type != "scitune":
        raise ValueError(f"{path} is not a SciTune checkpoint (model_type {config.model_type!r}); "
                         "stage 2 starts from a stage-1 output folder")
    model = SciTuneForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    return model, processor


def build_stage1_model(train, vision_model: str | None, text_model: str | None, projector_type: str, seed: int):
    """SciTune from the given backbones, or (no paths) small random ones with a tokenizer trained on the rows."""
    if vision_model and text_model:
        return assemble_scitune(vision_model, text_model, projector_type=projector_type)
    if vision_model or text_model:
        raise ValueError("give both --vision_model and --text_model, or neither (random tiny backbones)")
    from ..data.instructions import DESCRIBE_PROMPTS
    from ..tiny import build_tiny_scitune
    from .tokenizer import train_tokenizer

    texts = [m[1]["content"][0]["text"] for m in train["messages"]]
    tokenizer = train_tokenizer(texts + list(DESCRIBE_PROMPTS), vocab_size=800)
    return build_tiny_scitune(None, projector_type=projector_type, tokenizer=tokenizer, seed=seed, image_size=64,
                              patch_size=16)
