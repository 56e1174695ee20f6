"""SciTune processor: a CLIP image processor + a LLaMA-style tokenizer + the SciTune chat template.

It follows transformers' `LlavaProcessor` hooks: the generic `ProcessorMixin.__call__` checks that the number of
`<image>` placeholders equals the number of images, calls `replace_image_token` to expand each `<image>` to exactly
as many tokens as the model makes features for one image, and refuses a truncation that cuts through image tokens.
This file travels to the Hub next to the weights: it imports only transformers.
"""

from transformers.image_utils import get_image_size, to_numpy_array
from transformers.processing_utils import MultiModalData, ProcessorMixin

# The conversation layout of SciTune's LLaVA-v0 training code ("### Human: ... ### Assistant: ..."), with BOS emitted
# by the template (TRL tokenizes with add_special_tokens=False) and each assistant turn, EOS included, inside
# {% generation %} markers so that TRL's `assistant_only_loss=True` trains on answers only. The space after
# "### Assistant:" belongs to the answer: byte-level BPE glues it to the first answer word, and the generation prompt
# ends at the colon, so training and inference see the same token boundary. Content items of a turn are
# joined by a newline in the order given; an image item renders as the `<image>` placeholder.
SCITUNE_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set ns = namespace(parts=[]) -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or item['type'] == 'image_url' -%}{%- set ns.parts = ns.parts + ['<image>'] -%}"
    "{%- elif item['type'] == 'text' -%}{%- set ns.parts = ns.parts + [item['text']] -%}{%- endif -%}"
    "{%- endfor -%}{%- set text = ns.parts | join('\n') -%}{%- endif -%}"
    "{%- if message['role'] == 'system' -%}{{- text + '\n\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- '### Assistant:' -}}"
    "{%- generation -%}{{- ' ' + text + eos_token -}}{%- endgeneration -%}{{- '\n' -}}"
    "{%- else -%}{{- '### Human: ' + text + '\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '### Assistant:' -}}{%- endif -%}"
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
        **kwargs,
    ):
        # Extra attributes are stored before ProcessorMixin.__init__, which rejects unknown kwargs in v5.
        self.patch_size = patch_size
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.num_additional_image_tokens = num_additional_image_tokens
        self.image_token = getattr(tokenizer, "image_token", None) or image_token
        token_ids = tokenizer.encode(self.image_token, add_special_tokens=False)
        if len(token_ids) != 1:
            raise ValueError(
                f"The tokenizer splits the image token {self.image_token!r} into {len(token_ids)} pieces; add it as a "
                "special token (tokenizer.add_special_tokens({'additional_special_tokens': ['<image>']}))"
            )
        self.image_token_id = token_ids[0]
        if chat_template is None:
            chat_template = SCITUNE_CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs):
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
        return self.image_token * self.num_image_tokens(height, width)

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


__all__ = ["SciTuneProcessor", "SCITUNE_CHAT_TEMPLATE"]
