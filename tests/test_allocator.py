"""The malloc tuning (speed/allocator.py): large tensors come from the reusable heap instead of fresh mmaps.

Each case runs in a fresh interpreter: mallopt settings are process-wide and the test process has its own history.
glibc's mallinfo2() reports `hblkhd`, the bytes currently held in mmapped blocks; a 4 MiB tensor adds to it under
the default thresholds and does not once the tuning is on.
"""

import ctypes
import ctypes.util
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc"
    or not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"),
    reason="mallopt/mallinfo2 are glibc (>= 2.33) functions; elsewhere the tuning is a documented no-op")

PROBE = r"""
import ctypes, ctypes.util, json
import torch
from modeling_scitune.speed.allocator import keep_freed_memory_for_reuse

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory_for_reuse()
before = libc.mallinfo2().hblkhd
tensor = torch.ones(1024 * 1024)  # 4 MiB of float32
during = libc.mallinfo2().hblkhd
print(json.dumps({"applied": applied, "again": keep_freed_memory_for_reuse(), "mmapped_growth": during - before,
                  "sum": float(tensor.sum())}))
"""


def probe(**env):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tuned_process_serves_large_tensors_from_the_heap():
    tuned = probe(SCITUNE_MALLOC_TUNING="1")
    assert tuned["applied"] is True and tuned["again"] is True  # idempotent
    assert tuned["mmapped_growth"] == 0
    assert tuned["sum"] == 1024 * 1024


def test_opt_out_keeps_glibc_defaults():
    default = probe(SCITUNE_MALLOC_TUNING="0")
    assert default["applied"] is False
    assert default["mmapped_growth"] >= 4 * 1024 * 1024  # the same tensor is a fresh mmap without the tuning
