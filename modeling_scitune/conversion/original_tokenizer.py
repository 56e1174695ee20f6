"""The tokenizer of an original SciTune / LLaVA-v0 checkpoint, rebuilt so it gives the training ids exactly.

The original code tokenized with the *slow* sentencepiece `LlamaTokenizer` of transformers 4.28-4.34 (legacy mode):
added tokens (`[PAD]`, `<im_patch>`, `<im_start>`, `<im_end>`, and the specials) are split out of the text first,
whitespace next to them is eaten when the token says so (`lstrip` / `rstrip`: the training code added every token as a
plain string, which those versions turned into "strip both sides", so "\\n<im_patch>" loses its newline), and *every*
remaining text piece gets sentencepiece's dummy "▁" prefix (so "### Assistant" after an image starts with "▁###").
transformers v5 reads `tokenizer.model` into a fast tokenizer whose pre-tokenizer prepends "▁" only to the first piece
and never to text that already starts with a space; loaded through `AutoTokenizer` it even drops the prefix of the
first word. Here the same vocabulary and merges run behind the legacy normalizer (prepend "▁" to every piece, spaces
-> "▁"), the original strip flags are restored, and the result is saved as a plain `tokenizer.json`
(`PreTrainedTokenizerFast`), so a converted folder reloads with exactly this behaviour and needs no sentencepiece.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, normalizers, processors
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

IMAGE_PATCH_TOKEN = "<im_patch>"
IMAGE_START_TOKEN = "<im_start>"
IMAGE_END_TOKEN = "<im_end>"
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "pad_token")


class OriginalTokenizerError(ValueError):
    """The folder's tokenizer cannot be rebuilt; the message says what is missing."""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _content(value) -> str | None:
    """A special-token entry of a tokenizer config: a string, or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def _original_strip_flags(folder: Path) -> dict[str, tuple[bool, bool]]:
    """token -> (lstrip, rstrip) as the original slow tokenizer applied them.

    transformers 4.34 writes every added token with its flags in `tokenizer_config.json["added_tokens_decoder"]`;
    4.28 wrote only `added_tokens.json`, and stripped both sides of any added or special token that was not an
    `AddedToken` object with flags of its own."""
    config = _read_json(folder / "tokenizer_config.json")
    flags = {}
    for entry in (config.get("added_tokens_decoder") or {}).values():
        flags[entry["content"]] = (bool(entry.get("lstrip")), bool(entry.get("rstrip")))
    if flags:
        return flags
    specials = {**config, **_read_json(folder / "special_tokens_map.json")}
    for key in SPECIAL_KEYS:
        value = specials.get(key)
        if isinstance(value, dict):
            flags[value["content"]] = (bool(value.get("lstrip")), bool(value.get("rstrip")))
        elif isinstance(value, str):
            flags[value] = (True, True)
    for token in _read_json(folder / "added_tokens.json"):
        flags.setdefault(token, (True, True))
    return flags


def _adds_dummy_prefix(model_file: Path) -> bool:
    """Whether the sentencepiece model prepends "▁" to each piece (LLaMA: yes); refuses normalizations not rebuilt."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    spec = proto.normalizer_spec
    if spec.remove_extra_whitespaces or spec.name not in ("identity", ""):
        raise OriginalTokenizerError(
            f"{model_file}: sentencepiece normalizer {spec.name!r} (remove_extra_whitespaces="
            f"{spec.remove_extra_whitespaces}) is not LLaMA's identity normalizer; this converter rebuilds LLaMA "
            "tokenizers only")
    return spec.add_dummy_prefix


def load_original_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """The original checkpoint's tokenizer (`tokenizer.model` + its configs) as an exact fast tokenizer."""
    folder = Path(folder)
    model_file = folder / "tokenizer.model"
    if not model_file.is_file():
        raise OriginalTokenizerError(f"{folder} has no tokenizer.model (the sentencepiece file original SciTune / "
                                     "LLaVA-v0 checkpoints ship); pass the folder the checkpoint was saved to")
    try:
        import sentencepiece  # noqa: F401
        from google import protobuf  # noqa: F401
    except ImportError as err:
        raise OriginalTokenizerError(f"reading {model_file} needs the sentencepiece and protobuf packages "
                                     f"(pip install sentencepiece protobuf): {err}") from err
    from transformers import LlamaTokenizer

    # The vocabulary, merges, special tokens and added-token ids, read by transformers from the original files.
    source = LlamaTokenizer.from_pretrained(folder, legacy=True)
    strip_flags = _original_strip_flags(folder)
    backend = Tokenizer(source.backend_tokenizer.model)
    pieces = [normalizers.Replace(" ", "▁")]
    if _adds_dummy_prefix(model_file):
        pieces.insert(0, normalizers.Prepend("▁"))
    backend.normalizer = normalizers.Sequence(pieces)
    backend.pre_tokenizer = None
    backend.decoder = source.backend_tokenizer.decoder
    added = sorted(source.added_tokens_decoder.items())
    backend.add_special_tokens([
        AddedToken(token.content, lstrip=strip_flags.get(token.content, (True, True))[0],
                   rstrip=strip_flags.get(token.content, (True, True))[1], normalized=False, special=True)
        for _, token in added
    ])
    for token_id, token in added:
        if backend.token_to_id(token.content) != token_id:
            raise OriginalTokenizerError(f"{folder}: added token {token.content!r} has id {token_id} in the original "
                                         f"files but {backend.token_to_id(token.content)} when rebuilt")
    config = _read_json(folder / "tokenizer_config.json")
    bos, eos = source.bos_token, source.eos_token
    if config.get("add_bos_token", True):
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, backend.token_to_id(bos))])
    extra = {"image_token": IMAGE_PATCH_TOKEN} if backend.token_to_id(IMAGE_PATCH_TOKEN) is not None else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token=source.unk_token,
        pad_token=source.pad_token, model_max_length=config.get("model_max_length", 2048),
        padding_side=config.get("padding_side", "right"), clean_up_tokenization_spaces=False,
        extra_special_tokens=extra,
    )
    return tokenizer


def original_vocabulary_ids(tokenizer) -> dict[str, int | None]:
    """Ids of the tokens the original code added (absent ones are None): they differ between releases."""
    return {token: tokenizer.convert_tokens_to_ids(token) if token in tokenizer.get_vocab() else None
            for token in ("[PAD]", IMAGE_PATCH_TOKEN, IMAGE_START_TOKEN, IMAGE_END_TOKEN)}
