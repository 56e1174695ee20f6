import pytest
from transformers import AutoConfig, CLIPVisionConfig, LlamaConfig

from modeling_scitune import SciTuneConfig


def test_defaults_describe_the_paper_model():
    config = SciTuneConfig()
    assert config.model_type == "scitune"
    assert isinstance(config.vision_config, CLIPVisionConfig)
    assert isinstance(config.text_config, LlamaConfig)
    assert (config.vision_config.hidden_size, config.vision_config.patch_size, config.vision_config.image_size) == (1024, 14, 224)
    assert config.vision_config.num_hidden_layers == 24
    assert config.image_seq_length == 256 == config.num_image_patches
    assert config.projector_type == "linear"
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert config.text_config.hidden_size == 4096 and config.text_config.num_hidden_layers == 32
    assert config.image_token_id == 32001 < config.text_config.vocab_size
    assert config.get_text_config() is config.text_config
    assert config.image_token_index == config.image_token_id  # LLaVA's attribute name works too


def test_round_trip_and_auto_config(tmp_path):
    config = SciTuneConfig(projector_type="mlp2x_gelu", vision_feature_layer=[-2, -3])
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path, trust_remote_code=True)
    assert isinstance(loaded, SciTuneConfig)
    assert loaded.projector_type == "mlp2x_gelu" and loaded.vision_feature_layer == [-2, -3]
    assert loaded.auto_map["AutoModelForImageTextToText"] == "modeling_scitune.SciTuneForConditionalGeneration"
    assert loaded.vision_feature_layers == [23, 22]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"projector_type": "mlp3x"}, "projector_type"),
        ({"vision_feature_select_strategy": "cls"}, "vision_feature_select_strategy"),
        ({"vision_feature_layer": 30}, "vision_feature_layer"),
        ({"vision_feature_layer": []}, "vision_feature_layer"),
        ({"image_token_id": 99999}, "image_token_id"),
        ({"image_seq_length": 576}, "image_seq_length"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"SciTuneConfig.{field}"):
        SciTuneConfig(**kwargs)


def test_full_strategy_counts_cls():
    assert SciTuneConfig(vision_feature_select_strategy="full", image_seq_length=257).image_seq_length == 257
    with pytest.raises(ValueError, match="must be 257"):
        SciTuneConfig(vision_feature_select_strategy="full", image_seq_length=256)
