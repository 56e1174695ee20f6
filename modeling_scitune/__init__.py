"""SciTune: a Hugging Face-compatible vision-language model aligned with scientific multimodal instructions.

`AutoModel` maps to `SciTuneForConditionalGeneration` everywhere (here and in the saved `auto_map`), so
`AutoModel.from_pretrained(..., trust_remote_code=True)` can `.generate()`; `SciTuneModel` (no LM head) is imported
by name.

Importing the package registers SciTune with transformers' Auto classes (so `AutoModelForImageTextToText`,
`AutoProcessor`, `pipeline` and TRL find it in-process) and marks the classes so that `save_pretrained` copies the
three Hub files next to the weights and writes `auto_map` (so the saved folder loads with `trust_remote_code=True`
where this package is not installed).
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_scitune import SciTuneConfig
from .modeling_scitune import SciTuneForConditionalGeneration, SciTuneModel, SciTunePreTrainedModel
from .processing_scitune import SCITUNE_CHAT_TEMPLATE, SciTuneProcessor

__version__ = "0.1.0"

AutoConfig.register("scitune", SciTuneConfig, exist_ok=True)
AutoModel.register(SciTuneConfig, SciTuneForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(SciTuneConfig, SciTuneForConditionalGeneration, exist_ok=True)
AutoProcessor.register(SciTuneConfig, SciTuneProcessor, exist_ok=True)

SciTuneConfig.register_for_auto_class("AutoConfig")
SciTuneForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
SciTuneProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "SCITUNE_CHAT_TEMPLATE",
    "SciTuneConfig",
    "SciTuneForConditionalGeneration",
    "SciTuneModel",
    "SciTunePreTrainedModel",
    "SciTuneProcessor",
]
