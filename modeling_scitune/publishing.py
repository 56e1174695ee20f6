"""Preparing a SciTune folder for the Hub: stage exactly what a user needs, prove it loads, write the card.

`hub_scripts/push_model.py` calls these, then uploads with `huggingface_hub`. Nothing is uploaded unless the staged
folder loads in a clean interpreter (where this package is *not* importable) with `trust_remote_code=True` and
generates.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HUB_CODE_FILES = ("configuration_scitune.py", "modeling_scitune.py", "processing_scitune.py")
REQUIRED = ("config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja",
            *HUB_CODE_FILES)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
DEFAULT_TAGS = ("scitune", "llava", "vision-language", "scientific-figures", "image-text-to-text", "custom_code")


class StagingError(ValueError):
    """The folder cannot be published as it is; the message says what is wrong and where."""


def parse_size(size: str | int) -> int:
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9}
    for unit, factor in units.items():
        if size.upper().endswith(unit):
            return int(float(size[: -len(unit)]) * factor)
    return int(size)


def check_model_folder(folder: Path) -> None:
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise StagingError(f"{folder} is missing {', '.join(missing)}: save the model and the processor with "
                           "save_pretrained (the code files are written when the modeling_scitune classes are used)")
    if not list(folder.glob("*.safetensors")):
        raise StagingError(f"{folder} has no .safetensors weights")
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise StagingError(f"{folder} holds pickle weight files {pickles}: SciTune publishes safetensors only")
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "scitune":
        raise StagingError(f"{folder}/config.json has model_type {config.get('model_type')!r}, not 'scitune'")
    needed = {"AutoConfig", "AutoModel", "AutoModelForImageTextToText", "AutoProcessor"}
    if not needed <= set(config.get("auto_map", {})):
        raise StagingError(f"{folder}/config.json auto_map lacks {sorted(needed - set(config.get('auto_map', {})))}")


def reshard(weights: Path, out: Path, max_shard_size: int) -> list[str]:
    """Split one safetensors file into shards of at most `max_shard_size` bytes plus the standard index."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    split = split_torch_state_dict_into_shards(state, max_shard_size=max_shard_size)
    for filename, names in split.filename_to_tensors.items():
        save_file({name: state[name].contiguous() for name in names}, str(out / filename), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
             "weight_map": split.tensor_to_filename}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return list(split.filename_to_tensors)


def model_card(card_source: Path, base_models: list[str], datasets: list[str], license_id: str = "bsd-3-clause") -> str:
    """MODEL_CARD.md with Hub YAML metadata in front (license, library, pipeline tag, tags, base models, datasets)."""
    body = card_source.read_text() if card_source.is_file() else "# SciTune\n"
    if body.startswith("---"):
        body = body.split("---", 2)[2].lstrip()
    meta = [f"license: {license_id}", "library_name: transformers", "pipeline_tag: image-text-to-text", "tags:"]
    meta += [f"- {tag}" for tag in DEFAULT_TAGS]
    if base_models:
        meta += ["base_model:"] + [f"- {m}" for m in base_models]
    if datasets:
        meta += ["datasets:"] + [f"- {d}" for d in datasets]
    return "---\n" + "\n".join(meta) + "\n---\n\n" + body


def stage_model_folder(folder: str | Path, staging: str | Path, card_source: Path, max_shard_size: str | int = "5GB",
                       base_models=(), datasets=()) -> dict[str, int]:
    """Copy what a user needs into `staging` (resharding big weights) and write README.md; returns name -> size."""
    folder, staging = Path(folder), Path(staging)
    check_model_folder(folder)
    staging.mkdir(parents=True, exist_ok=True)
    limit = parse_size(max_shard_size)
    # A stage folder holds the model and nothing else at its top level (checkpoints live in checkpoints/, caches in
    # the build cache), so everything there is staged; hidden files (a run's lock) are not.
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.name == "model.safetensors" and path.stat().st_size > limit:
            reshard(path, staging, limit)
        elif path.name != "README.md":
            shutil.copy2(path, staging / path.name)
    additional = folder / "additional_chat_templates"
    if additional.is_dir():
        shutil.copytree(additional, staging / additional.name, dirs_exist_ok=True)
    (staging / "README.md").write_text(model_card(card_source, list(base_models), list(datasets)))
    return {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()}


VERIFY_SCRIPT = r"""
import json, re, sys
sys.modules["modeling_scitune"] = None  # the folder must work without this package
import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.dynamic_module_utils import get_class_from_dynamic_module
folder = sys.argv[1]
def refuse(reason):
    print(reason, file=sys.stderr)
    raise SystemExit(3)
config = json.load(open(f"{folder}/config.json"))
for auto_class, reference in config.get("auto_map", {}).items():
    try:
        get_class_from_dynamic_module(reference, folder)
    except Exception as err:
        refuse(f"auto_map {auto_class} -> {reference} does not load: {type(err).__name__}: {err}")
model, info = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
ignorable = [re.compile(p) for p in getattr(model.model, "_keys_to_ignore_on_load_unexpected", None) or []]
problems = {kind: sorted(k for k in keys if not any(p.search(k) for p in ignorable))
            for kind, keys in info.items() if kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
problems = {kind: keys for kind, keys in problems.items() if keys}
if problems:
    refuse("the weights do not match the config (" + "; ".join(f"{k}: {v[:5]}" for k, v in problems.items()) + ")")
bad = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
if bad:
    refuse(f"{len(bad)} weight tensors hold NaN or Inf values ({', '.join(bad[:5])})")
model.eval()
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
image = Image.new("RGB", (96, 96), "white")
ImageDraw.Draw(image).rectangle([20, 30, 40, 90], fill="blue")
messages = [{"role": "user", "content": [{"type": "text", "text": "What type of figure is this?"}, {"type": "image"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(images=[image], text=prompt, return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
if out.shape[1] <= inputs["input_ids"].shape[1]:
    refuse("generate() produced no token")
print("GENERATED", processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
"""


def verify_in_clean_process(folder: str | Path, timeout: int = 900) -> str:
    """Do in a fresh interpreter what users will do: resolve every `auto_map` entry, load the weights with a load
    report free of missing / unexpected / mismatched keys (beyond the unused tower layers a truncated vision tower
    ignores), find no NaN / Inf weight, and generate. Raise StagingError naming the first failure."""
    with tempfile.TemporaryDirectory() as home:
        env = {"HF_HUB_OFFLINE": "1", "HF_HOME": home, "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
        result = subprocess.run([sys.executable, "-c", VERIFY_SCRIPT, str(folder)], capture_output=True, text=True,
                                env=env, cwd=home, timeout=timeout)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "exit code " + str(result.returncode)
        raise StagingError(f"the staged folder would not work for users: {reason}")
    return result.stdout.strip().splitlines()[-1]
