"""Keep freed memory in the process for reuse, instead of handing it back to the OS after every training step.

Why: glibc's malloc serves every block above 128 KiB (activations, gradients, logits) with a fresh `mmap` and
returns it with `munmap` when freed. A training step frees and re-allocates the same large tensors every time, so
each step pays the kernel for mapping pages and zero-filling them on first touch; it pays most where steps are short
(the miniature backbones' pretraining step; `python benchmarks/bench_backbone_step.py` measures it). Numerics are
untouched (same kernels, same order); the cost is that the process keeps its peak heap instead of shrinking between
steps.

Same effect as `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` in the environment (or tcmalloc / jemalloc, which
Intel's PyTorch CPU guide recommends), but applied from inside the process, so `scitune-train`, the main job and the
benchmarks get it without a wrapper. No-op where the C library is not glibc; `SCITUNE_MALLOC_TUNING=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum; larger blocks are still mmapped
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_applied: bool | None = None


def keep_freed_memory_for_reuse() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once). Returns whether the tuning is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("SCITUNE_MALLOC_TUNING", "1") == "0":
        logger.info("malloc tuning off (SCITUNE_MALLOC_TUNING=0)")
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        logger.info("malloc tuning skipped: the C library (%s) has no mallopt (not glibc)", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if not ok:
        logger.info("malloc tuning skipped: mallopt refused the thresholds")
    _applied = ok
    return ok
