"""SciTune model configuration.

SciTune (Horawalavithana et al., 2023) is a LLaVA-v0-style model: a CLIP vision tower whose penultimate-layer
patch features go through a multimodal adapter (the paper: one ``Linear``) into a LLaMA decoder.
The config mirrors transformers' own ``LlavaConfig`` field for field so every client that reads a LLaVA config
reads this one, and adds ``projector_type``. It travels to the Hub next to the weights: it imports only
transformers (never the rest of the ``modeling_scitune`` package).
"""

from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")
FEATURE_SELECT_STRATEGIES = ("default", "full")

# auto_map written into every saved config.json: `AutoModel` returns the generating class on purpose, because
# SciTune users load it with `AutoModel.from_pretrained(..., trust_remote_code=True)` and then call `.generate()`.
DEFAULT_AUTO_MAP = {
    "AutoConfig": "configuration_scitune.SciTuneConfig",
    "AutoModel": "modeling_scitune.SciTuneForConditionalGeneration",
    "AutoModelForImageTextToText": "modeling_scitune.SciTuneForConditionalGeneration",
    "AutoProcessor": "processing_scitune.SciTuneProcessor",
}


class SciTuneConfig(PreTrainedConfig):
    r"""
    Configuration of a [`SciTuneForConditionalGeneration`]. The defaults describe the paper's model:
    CLIP ViT-L/14 at 224 px (16x16 = 256 patch tokens, CLS dropped, layer -2), a single linear projector
    1024 -> 4096 and a LLaMA-7B decoder whose vocabulary holds LLaMA's 32000 tokens plus `[PAD]` and the image token.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*): the vision tower (default: CLIP ViT-L/14, 224 px).
        text_config (`dict` or `PreTrainedConfig`, *optional*): the language model (default: LLaMA-7B).
        projector_type (`str`, defaults to `"linear"`): `"linear"` (the paper, one Linear) or `"mlp2x_gelu"`
            (LLaVA-1.5: Linear -> GELU -> Linear, the layout of transformers' `LlavaMultiModalProjector`).
        image_token_id (`int`, defaults to 32001): id of the `<image>` placeholder token in the text vocabulary.
        image_seq_length (`int`, defaults to 256): number of image tokens one image expands to.
        vision_feature_layer (`int` or `list[int]`, defaults to -2): hidden-state index (or indices, concatenated)
            of the vision tower that feeds the projector.
        vision_feature_select_strategy (`str`, defaults to `"default"`): `"default"` drops the CLS token,
            `"full"` keeps it.
        projector_hidden_act (`str`, defaults to `"gelu"`): activation of the `mlp2x_gelu` projector.
        multimodal_projector_bias (`bool`, defaults to `True`): whether the projector linears have a bias.
        tie_word_embeddings (`bool`, defaults to `False`): tie `lm_head` to the input embeddings.
        truncate_vision_tower (`bool`, defaults to `True`): build the vision tower only up to the deepest layer in
            `vision_feature_layer` (with -2, the last CLIP layer and its post-layernorm are never used, so they are
            neither computed nor kept in memory; their checkpoint weights are ignored).
    """

    model_type = "scitune"
    attribute_map = {"image_token_index": "image_token_id"}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "patch_size": 14,
                "image_size": 224,
                "projection_dim": 768,
            },
        ),
        "text_config": SubConfigSpec(
            config_class=AutoConfig, model_type="llama", init_kwargs={"vocab_size": 32002, "pad_token_id": 32000}
        ),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = "linear"
    image_token_id: int = 32001
    image_seq_length: int = 256
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: str = "default"
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    tie_word_embeddings: bool = False
    truncate_vision_tower: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not self.tie_word_embeddings and getattr(self.text_config, "tie_word_embeddings", False):
            self.tie_word_embeddings = True
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(DEFAULT_AUTO_MAP)
        self.validate_scitune_fields()

    @property
    def num_image_patches(self) -> int:
        """Patch tokens the vision tower makes per image (without CLS)."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2

    @property
    def vision_feature_layers(self) -> list[int]:
        """`vision_feature_layer` as a list of non-negative hidden-state indices (0 = embeddings)."""
        return self.feature_layer_indices(self.vision_feature_layer)

    def feature_layer_indices(self, layers: int | list[int]) -> list[int]:
        """Any feature-layer setting (an index, or a list of them, negative counting from the end) as non-negative
        hidden-state indices of this vision tower."""
        layers = [layers] if isinstance(layers, int) else list(layers)
        total = self.vision_config.num_hidden_layers + 1
        return [layer % total for layer in layers]

    def validate_scitune_fields(self):
        """Raise a ValueError that names the field for any value the model cannot be built or run with."""
        if self.projector_type not in PROJECTOR_TYPES:
            raise ValueError(f"SciTuneConfig.projector_type must be one of {PROJECTOR_TYPES}, got {self.projector_type!r}")
        if self.vision_feature_select_strategy not in FEATURE_SELECT_STRATEGIES:
            raise ValueError(
                "SciTuneConfig.vision_feature_select_strategy must be one of "
                f"{FEATURE_SELECT_STRATEGIES}, got {self.vision_feature_select_strategy!r}"
            )
        layers = self.vision_feature_layer
        layer_list = [layers] if isinstance(layers, int) else layers
        if not isinstance(layer_list, (list, tuple)) or not layer_list:
            raise ValueError(f"SciTuneConfig.vision_feature_layer must be an int or a non-empty list of ints, got {layers!r}")
        n_states = self.vision_config.num_hidden_layers + 1  # hidden_states = embeddings + one per layer
        for layer in layer_list:
            if isinstance(layer, bool) or not isinstance(layer, int) or not -n_states <= layer < n_states:
                raise ValueError(
                    f"SciTuneConfig.vision_feature_layer={layers!r} is out of range: the vision tower has "
                    f"{self.vision_config.num_hidden_layers} layers, so valid indices are {-n_states}..{n_states - 1}"
                )
        vocab_size = self.text_config.vocab_size
        if not isinstance(self.image_token_id, int) or not 0 <= self.image_token_id < vocab_size:
            raise ValueError(
                f"SciTuneConfig.image_token_id={self.image_token_id!r} must be a token id inside the text "
                f"vocabulary (0..{vocab_size - 1}); add the <image> token to the tokenizer and resize text_config.vocab_size"
            )
        expected = self.num_image_patches + (1 if self.vision_feature_select_strategy == "full" else 0)
        if self.image_seq_length != expected:
            raise ValueError(
                f"SciTuneConfig.image_seq_length={self.image_seq_length} does not match the vision tower: "
                f"image_size {self.vision_config.image_size} / patch_size {self.vision_config.patch_size} gives "
                f"{self.num_image_patches} patches, so with vision_feature_select_strategy="
                f"{self.vision_feature_select_strategy!r} it must be {expected}"
            )


__all__ = ["SciTuneConfig"]
