"""SciTune processor: a CLIP image processor + a LLaMA-style tokenizer + the SciTune chat template.

It follows transformers' `LlavaProcessor` hooks: the generic `ProcessorMixin.__call__` checks that the number of
`<image>` placeholders equals the number of images, calls `replace_image_token` to expand each `<image>` to exactly
as many tokens as the model makes features for one image, and refuses a truncation that cuts through image tokens.
This file travels to the Hub next to the weights: it imports only transformers.
"""

from transformers.audio_utils import AudioInput
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import ImageInput, get_image_size, to_numpy_array
from transformers.processing_utils import MultiModalData, ProcessingKwargs, ProcessorMixin, Unpack
from transformers.tokenization_utils_base import PreTokenizedInput, TextInput
from transformers.video_utils import VideoInput

# The system header of the original SciTune / LLaVA-v0 code (its `conv_v1_2` and `simple` conversations).
V0_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the human's questions.")
CHAT_STYLES = ("scitune", "v0", "simple")


def _message_text(image_token: str) -> str:
    """Jinja that sets `text` for `message`: a string as is; content items joined by a newline in the order given,
    an image item rendered as `image_token` (SciTune puts the image after the instruction: "{text}\n<image>")."""
    return (
        "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
        "{%- else -%}{%- set ns = namespace(parts=[]) -%}"
        "{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'image' or item['type'] == 'image_url' -%}"
        "{%- set ns.parts = ns.parts + ['" + image_token + "'] -%}"
        "{%- elif item['type'] == 'text' -%}{%- set ns.parts = ns.parts + [item['text']] -%}{%- endif -%}"
        "{%- endfor -%}{%- set text = ns.parts | join('\n') -%}{%- endif -%}"
    )


def scitune_chat_template(style: str = "scitune", image_token: str = "<image>", bos: bool = True) -> str:
    """The Jinja chat template of one conversation style; the only place a conversation layout is written.

    - `scitune`: what this package trains with: "### Human: {q}\n### Assistant: {a}</s>\n", an optional system
      message first; each answer (EOS included) inside `{% generation %}` markers for TRL's `assistant_only_loss`.
      The generation prompt ends at "### Assistant:": the space before the answer belongs to its first token.
    - `v0`: the original SciTune / LLaVA-v0 training serialization (`_add_speaker_and_signal`): the v0 system header
      (or the given system message) + "\n\n", "### Human: {q}\n### Assistant: {a}\n" per turn, a final "### ";
      no EOS (the model learnt to stop by writing "###"). The generation prompt is "### Assistant:".
    - `simple`: the original evaluation conversation (`--conv-mode simple`): "{system}###Human: Hi!###Assistant: Hi
      there! How can I help you today?###Human: {q}###". As in the original there is no "Assistant:" cue: the model
      writes it itself.
    `bos=True` emits BOS first (TRL tokenizes rendered chats without special tokens); `image_token` is what an image
    item renders as (the processor expands it to the image's features).
    """
    if style not in CHAT_STYLES:
        raise ValueError(f"unknown chat style {style!r}; choose one of {CHAT_STYLES}")
    text = _message_text(image_token)
    head = "{{- bos_token -}}" if bos else ""
    if style == "scitune":
        return (
            head + "{%- for message in messages -%}" + text +
            "{%- if message['role'] == 'system' -%}{{- text + '\n\n' -}}"
            "{%- elif message['role'] == 'assistant' -%}{{- '### Assistant:' -}}"
            "{%- generation -%}{{- ' ' + text + eos_token -}}{%- endgeneration -%}{{- '\n' -}}"
            "{%- else -%}{{- '### Human: ' + text + '\n' -}}{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- '### Assistant:' -}}{%- endif -%}"
        )
    system = (
        "{%- if messages and messages[0]['role'] == 'system' -%}{%- set message = messages[0] -%}" + text +
        "{%- set system = text -%}{%- set turns = messages[1:] -%}"
        "{%- else -%}{%- set system = '" + V0_SYSTEM.replace("'", "\\'") + "' -%}{%- set turns = messages -%}{%- endif -%}"
    )
    if style == "v0":
        return (
            head + system + "{{- system + '\n\n' -}}"
            "{%- for message in turns -%}" + text +
            "{%- if message['role'] == 'assistant' -%}{{- '### Assistant:' -}}"
            "{%- generation -%}{{- ' ' + text + '\n' -}}{%- endgeneration -%}"
            "{%- else -%}{{- '### Human: ' + text + '\n' -}}{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{- '### Assistant:' -}}{%- else -%}{{- '### ' -}}{%- endif -%}"
        )
    return (
        head + system + "{{- system + '###Human: Hi!###Assistant: Hi there! How can I help you today?###' -}}"
        "{%- for message in turns -%}" + text +
        "{%- if message['role'] == 'assistant' -%}{{- 'Assistant: ' -}}"
        "{%- generation -%}{{- text + '###' -}}{%- endgeneration -%}"
        "{%- else -%}{{- 'Human: ' + text + '###' -}}{%- endif -%}"
        "{%- endfor -%}"
    )


SCITUNE_CHAT_TEMPLATE = scitune_chat_template("scitune")


def chatml_chat_template(default_system: str | None = None, image_token: str = "<image>") -> str:
    """ChatML ("<|im_start|>{role}\n{text}<|im_end|>\n"), the layout of SmolLM2, Qwen2 and many other LLMs, for a
    SciTune model whose language model came with it: text turns render exactly as the LLM's own template renders
    them, plus image items (as `image_token`, joined like the SciTune template) and `{% generation %}` markers around
    each answer and its "<|im_end|>" for TRL's `assistant_only_loss`. `default_system` is the system turn the LLM's
    template writes when the conversation has none (SmolLM2's "You are a helpful AI assistant named SmolLM...")."""
    text = _message_text(image_token)
    default = ""
    if default_system is not None:
        default = ("{%- if not messages or messages[0]['role'] != 'system' -%}{{- '<|im_start|>system\n' + "
                   + repr(default_system) + " + '<|im_end|>\n' -}}{%- endif -%}")
    return (
        default + "{%- for message in messages -%}" + text +
        "{{- '<|im_start|>' + message['role'] + '\n' -}}"
        "{%- if message['role'] == 'assistant' -%}"
        "{%- generation -%}{{- text + '<|im_end|>' -}}{%- endgeneration -%}{{- '\n' -}}"
        "{%- else -%}{{- text + '<|im_end|>\n' -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
    )


class SciTuneProcessor(ProcessorMixin):
    r"""
    Constructs a SciTune processor from a CLIP image processor and a tokenizer.

    Args:
        image_processor: a CLIP image processor (224 px center crop for the paper's model).
        tokenizer: a LLaMA-style tokenizer holding `<image>` as a special token.
        patch_size (`int`): patch size of the vision tower.
        vision_feature_select_strategy (`str`): as in the model config; `"default"` drops the CLS feature.
        chat_template (`str`, *optional*): defaults to the SciTune template (`SCITUNE_CHAT_TEMPLATE`).
        image_token (`str`, defaults to `"<image>"`): the placeholder, unless the tokenizer defines `image_token`.
        num_additional_image_tokens (`int`, defaults to 1): tokens the tower adds besides patches (CLIP: CLS).
        image_start_token / image_end_token (`str`, *optional*): text tokens written around every expanded image
            (`<im_start>` / `<im_end>` of checkpoints trained with LLaVA-v0's `mm_use_im_start_end`); their own
            embeddings are used, only the image tokens between them are replaced by features.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        patch_size=None,
        vision_feature_select_strategy="default",
        chat_template=None,
        image_token="<image>",
        num_additional_image_tokens=1,
        image_start_token=None,
        image_end_token=None,
        **kwargs,
    ):
        # Extra attributes are stored before ProcessorMixin.__init__, which rejects unknown kwargs in v5.
        self.patch_size = patch_size
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.num_additional_image_tokens = num_additional_image_tokens
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        if (image_start_token is None) != (image_end_token is None):
            raise ValueError("give both image_start_token and image_end_token, or neither")
        self.image_start_token, self.image_end_token = image_start_token, image_end_token
        for token in filter(None, (self.image_token, image_start_token, image_end_token)):
            pieces = tokenizer.encode(token, add_special_tokens=False)
            if len(pieces) != 1:
                raise ValueError(
                    f"The tokenizer splits {token!r} into {len(pieces)} pieces; add it as a special token "
                    f"(tokenizer.add_special_tokens({{'additional_special_tokens': [{token!r}]}}))"
                )
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        # Always carried (as the config carries its own), so `to_dict()` is the same however the processor was loaded.
        self.auto_map = kwargs.pop("auto_map", None) or {"AutoProcessor": "processing_scitune.SciTuneProcessor"}
        if chat_template is None:
            chat_template = SCITUNE_CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(
        self,
        images: ImageInput | None = None,
        text: TextInput | PreTokenizedInput | list[TextInput] | list[PreTokenizedInput] | None = None,
        videos: VideoInput | None = None,
        audio: AudioInput | None = None,
        **kwargs: Unpack[ProcessingKwargs],
    ) -> BatchFeature:
        """Process images and text; text that already starts with BOS (a rendered chat template) gets no second BOS."""
        bos = getattr(self.tokenizer, "bos_token", None)
        if text is not None and bos and "add_special_tokens" not in kwargs:
            texts = [text] if isinstance(text, str) else list(text)
            if texts and all(isinstance(t, str) and t.startswith(bos) for t in texts):
                kwargs["add_special_tokens"] = False
        return super().__call__(images=images, text=text, videos=videos, audio=audio, **kwargs)

    def num_image_tokens(self, height: int, width: int) -> int:
        """How many `<image>` tokens one processed image of this size expands to (= features the model makes)."""
        count = (height // self.patch_size) * (width // self.patch_size) + self.num_additional_image_tokens
        if self.vision_feature_select_strategy == "default":
            count -= 1
        return count

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        pixel_values = image_inputs["pixel_values"][image_idx]
        height, width = get_image_size(to_numpy_array(pixel_values))
        tokens = self.image_token * self.num_image_tokens(height, width)
        if self.image_start_token is not None:
            tokens = self.image_start_token + tokens + self.image_end_token
        return tokens

    def _get_num_multimodal_tokens(self, image_sizes=None, **kwargs):
        """Placeholder tokens per image for the given sizes (used by vLLM and other servers)."""
        vision_data = {}
        if image_sizes is not None:
            images_kwargs = self._merge_kwargs(**kwargs)["images_kwargs"]
            do_center_crop = images_kwargs.get("do_center_crop", getattr(self.image_processor, "do_center_crop", True))
            if do_center_crop:
                final_size = images_kwargs.get("crop_size", None) or self.image_processor.crop_size
            else:
                final_size = images_kwargs.get("size", None) or self.image_processor.size
            count = self.num_image_tokens(final_size["height"], final_size["width"])
            vision_data["num_image_tokens"] = [count] * len(image_sizes)
            vision_data["num_image_patches"] = [1] * len(image_sizes)
        return MultiModalData(**vision_data)


__all__ = ["CHAT_STYLES", "SCITUNE_CHAT_TEMPLATE", "SciTuneProcessor", "V0_SYSTEM", "chatml_chat_template",
           "scitune_chat_template"]
