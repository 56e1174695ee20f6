"""SciTune model: CLIP vision tower -> multimodal projector -> LLaMA decoder.

Built in the shape of transformers' own LLaVA (v5): three named parts (`vision_tower`, `multi_modal_projector`,
`language_model`) glued by `get_image_features` -> `get_placeholder_mask` -> `masked_scatter`. There is no attention
code here: the backbones do attention, so sdpa, eager, flex and flash-attention all work through transformers'
dispatch. The state-dict layout is LLaVA v5's (`model.vision_tower.vision_model.*`, `model.multi_modal_projector.*`,
`model.language_model.*`, `lm_head.*`), so an `mlp2x_gelu` SciTune checkpoint is also a native LLaVA checkpoint.

This file travels to the Hub next to the weights: it imports only torch, transformers and its sibling config.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import BaseModelOutputWithPast, BaseModelOutputWithPooling, ModelOutput
from transformers.modeling_utils import PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, logging, torch_compilable_check
from transformers.utils.generic import can_return_tuple

from .configuration_scitune import SciTuneConfig

logger = logging.get_logger(__name__)


@dataclass
class SciTuneModelOutputWithPast(BaseModelOutputWithPast):
    """`BaseModelOutputWithPast` plus the projected image features that were merged into the sequence."""

    image_hidden_states: torch.Tensor | None = None


@dataclass
class SciTuneCausalLMOutputWithPast(ModelOutput):
    """Causal-LM output of SciTune (same fields as LLaVA's)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: Cache | None = None
    hidden_states: tuple[torch.Tensor] | None = None
    attentions: tuple[torch.Tensor] | None = None
    image_hidden_states: torch.Tensor | None = None


class SciTuneMultiModalProjector(nn.Module):
    """The multimodal adapter. `linear` is the paper's single Linear (vision hidden -> text hidden);
    `mlp2x_gelu` is LLaVA-1.5's Linear -> GELU -> Linear with transformers' parameter names (`linear_1`, `linear_2`)."""

    def __init__(self, config: SciTuneConfig):
        super().__init__()
        in_features = config.vision_config.hidden_size * len(config.vision_feature_layers)
        out_features = config.text_config.hidden_size
        bias = config.multimodal_projector_bias
        self.linear_1 = nn.Linear(in_features, out_features, bias=bias)
        if config.projector_type == "mlp2x_gelu":
            self.act = ACT2FN[config.projector_hidden_act]
            self.linear_2 = nn.Linear(out_features, out_features, bias=bias)
        else:
            self.act = None
            self.linear_2 = None

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        hidden_states = self.linear_1(image_features)
        if self.linear_2 is not None:
            hidden_states = self.linear_2(self.act(hidden_states))
        return hidden_states


class SciTunePreTrainedModel(PreTrainedModel):
    config: SciTuneConfig
    config_class = SciTuneConfig
    base_model_prefix = "model"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    @classmethod
    def is_custom_code(cls) -> bool:
        """False: every weight here is initialised through transformers' own init functions (the projector by the
        generic `_init_weights`, the backbones by theirs), so the guard transformers keeps for remote code that writes
        weights in place must not apply; with it, weights missing from a checkpoint inside the CLIP tower would get
        the generic init instead of CLIP's own (as in LLaVA)."""
        return False


class SciTuneModel(SciTunePreTrainedModel):
    """Vision tower + projector + language model, without the LM head."""

    def __init__(self, config: SciTuneConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.vision_layers_kept = self._truncate_vision_tower()
        self.multi_modal_projector = SciTuneMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def _truncate_vision_tower(self) -> int | None:
        """Drop the encoder layers (and post-layernorm) after the deepest feature layer; returns the layers kept.

        With `vision_feature_layer=-2` the last layer never contributes to the features, so computing it (and keeping
        its weights) is pure waste. Checkpoints that hold those weights still load: they are ignored.
        """
        layers = getattr(getattr(self.vision_tower, "encoder", None), "layers", None)
        if not self.config.truncate_vision_tower or layers is None:
            return None
        keep = max(self.config.vision_feature_layers)
        total = len(layers)
        if keep < total:
            self.vision_tower.encoder.layers = layers[:keep]
            dropped = "|".join(str(i) for i in range(keep, total))
            self._keys_to_ignore_on_load_unexpected = [
                rf"vision_tower\.(vision_model\.)?encoder\.layers\.({dropped})\.",
                r"vision_tower\.(vision_model\.)?post_layernorm\.",
            ]
            logger.warning_once(
                f"SciTune computes the vision tower up to layer {keep} of {total} (vision_feature_layer="
                f"{self.config.vision_feature_layer}): layers {keep}..{total - 1} and the post-layernorm are not used, "
                "so they are dropped and their checkpoint weights ignored (set truncate_vision_tower=False to keep them)."
            )
        if hasattr(self.vision_tower, "post_layernorm"):
            self.vision_tower.post_layernorm = nn.Identity()
        return keep

    def load_vision_tower_weights(self, state_dict: dict) -> list[str]:
        """Load a full vision-tower state dict (e.g. a CLIP checkpoint); returns the unused keys that were dropped."""
        own = self.vision_tower.state_dict()
        unused = [k for k in state_dict if k not in own]
        self.vision_tower.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=True)
        if unused:
            logger.warning(f"vision tower truncated at layer {self.vision_layers_kept}: dropped {len(unused)} unused "
                           f"weights ({unused[0]} ...) of the layers it never computes")
        return unused

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def encode_images(self, pixel_values, vision_feature_layer=None, vision_feature_select_strategy=None,
                      **kwargs: Unpack[TransformersKwargs]) -> BaseModelOutputWithPooling:
        """The tower's outputs with `last_hidden_state` = the selected features (before the projector): what stage 1
        can cache, since the tower is frozen. `output_hidden_states` / `output_attentions` are the tower's own."""
        layer = self.config.vision_feature_layer if vision_feature_layer is None else vision_feature_layer
        strategy = vision_feature_select_strategy or self.config.vision_feature_select_strategy
        layers = self.config.feature_layer_indices(layer)
        if self.vision_layers_kept is not None and max(layers) > self.vision_layers_kept:
            raise ValueError(f"vision_feature_layer={layer} needs layer {max(layers)}, but this model's vision tower "
                             f"was truncated after layer {self.vision_layers_kept} (truncate_vision_tower=True)")
        kwargs.pop("return_dict", None)
        wants_states = bool(kwargs.get("output_hidden_states"))
        # the truncated tower's last output *is* the feature layer: no need to keep every hidden state
        last_only = layers == [self.vision_layers_kept] and not wants_states
        kwargs["output_hidden_states"] = not last_only
        outputs = self.vision_tower(pixel_values, return_dict=True, **kwargs)
        states = {layers[0]: outputs.last_hidden_state} if last_only else outputs.hidden_states
        selected = [states[index] for index in layers]
        if strategy == "default":
            selected = [hidden[:, 1:] for hidden in selected]
        return BaseModelOutputWithPooling(
            last_hidden_state=selected[0] if len(selected) == 1 else torch.cat(selected, dim=-1),
            hidden_states=outputs.hidden_states if wants_states else None,
            attentions=outputs.attentions if kwargs.get("output_attentions") else None,
        )

    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode images to projected features.

        Returns a `BaseModelOutputWithPooling` whose `last_hidden_state` is the selected (un-projected) vision
        features, whose `pooler_output` is a list with one projected `(image_seq_length, text_hidden)` tensor per image,
        as LLaVA does (generation expands it per beam), and whose `hidden_states` / `attentions` are the tower's when
        asked for.
        """
        pixel_values = pixel_values.to(dtype=self.vision_tower.dtype)
        outputs = self.encode_images(pixel_values, vision_feature_layer, vision_feature_select_strategy, **kwargs)
        outputs.pooler_output = list(self.multi_modal_projector(outputs.last_hidden_state))
        return outputs

    def get_placeholder_mask(self, input_ids, inputs_embeds, image_features):
        """Mask of the `<image>` positions; raises a ValueError when their count differs from the image features."""
        if input_ids is None:
            image_embedding = self.get_input_embeddings()(
                torch.full((), self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            special_image_mask = (inputs_embeds == image_embedding).all(-1)
        else:
            special_image_mask = input_ids == self.config.image_token_id
        n_image_tokens = special_image_mask.sum()
        per_image = self.config.image_seq_length
        torch_compilable_check(
            n_image_tokens * inputs_embeds.shape[-1] == image_features.numel(),
            lambda: (
                f"Image features and image tokens do not match, tokens: {int(n_image_tokens)}, "
                f"features: {image_features.shape[0]} ({image_features.shape[0] // max(per_image, 1)} image(s) x "
                f"{per_image} tokens each). Every image needs exactly {per_image} <image> tokens in the prompt: build "
                "inputs with SciTuneProcessor (it expands each <image> to the right count), pass one image per <image>, "
                "and do not truncate through the image tokens (raise max_length)."
            ),
        )
        return special_image_mask.unsqueeze(-1).to(inputs_embeds.device)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | SciTuneModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if pixel_values is not None and mm_encoder_outputs is not None and mm_encoder_outputs.get("image") is not None:
            raise ValueError("You cannot specify both pixel_values and mm_encoder_outputs at the same time")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)

        image_output = (mm_encoder_outputs or {}).get("image")
        if image_output is None and pixel_values is not None:
            image_output = self.get_image_features(
                pixel_values=pixel_values,
                vision_feature_layer=vision_feature_layer,
                vision_feature_select_strategy=vision_feature_select_strategy,
                return_dict=True,
            )

        image_features = None
        if image_output is not None:
            pooled = image_output.pooler_output
            if pooled is None:  # cached vision features (frozen tower): only the projector runs
                projector_dtype = self.multi_modal_projector.linear_1.weight.dtype
                pooled = self.multi_modal_projector(image_output.last_hidden_state.to(projector_dtype))
            image_features = torch.cat(list(pooled), dim=0)
            image_features = image_features.to(inputs_embeds.device, inputs_embeds.dtype)
            special_image_mask = self.get_placeholder_mask(input_ids, inputs_embeds, image_features)
            inputs_embeds = inputs_embeds.masked_scatter(special_image_mask, image_features)

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        return SciTuneModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=image_features,
        )


class SciTuneForConditionalGeneration(SciTunePreTrainedModel, GenerationMixin):
    """SciTune with its LM head: what `pipeline("image-text-to-text")`, TRL and `generate` use."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: SciTuneConfig):
        super().__init__(config)
        self.model = SciTuneModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        return self.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            **kwargs,
        )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | list[int] | None = None,
        vision_feature_select_strategy: str | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | SciTuneCausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            mm_encoder_outputs=mm_encoder_outputs,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return SciTuneCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=outputs.image_hidden_states,
        )


__all__ = ["SciTuneModel", "SciTuneForConditionalGeneration", "SciTunePreTrainedModel"]
