"""Which device and number format training runs in: CUDA when present, bf16 only where the hardware has it."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def on_cuda() -> bool:
    return torch.cuda.is_available()


def bf16_available() -> bool:
    """bf16 pays off on GPUs that support it and on CPUs with native bf16 instructions (AVX512-BF16 / AMX);
    elsewhere it would be emulated and slower than fp32, so the presets' `bf16: true` falls back to fp32."""
    if on_cuda():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(requested: bool) -> bool:
    if requested and not bf16_available():
        logger.warning("bf16 requested but this %s has no native bf16 support: training in fp32",
                       "GPU" if on_cuda() else "CPU")
    return requested and bf16_available()
