"""benchmarks/RESULTS.md: measured numbers, each section written by the script that measured them (with the commit,
date and machine), so a rerun replaces its own section and leaves the others alone."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

RESULTS_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "RESULTS.md"


def machine_description() -> dict:
    """Where a measurement ran: commit, date, cores, CPU capability, native bf16, torch."""
    import torch

    from .training.precision import bf16_available

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    return {"commit": commit or "unknown", "date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": bf16_available(), "cuda": torch.cuda.is_available(), "torch": torch.__version__}


def machine_line(machine: dict) -> str:
    return (f"Commit `{machine['commit']}`, {machine['date']}, {machine['cpu_count']} CPU cores ({machine['machine']}, "
            f"{machine['cpu_capability']}, native bf16: {machine['native_bf16']}), CUDA: {machine['cuda']}, "
            f"torch {machine['torch']}.")


def write_results_section(path: str | Path, name: str, body: str) -> None:
    """Replace (or add) the `name` section of the results file."""
    path = Path(path)
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    text = path.read_text() if path.is_file() else "# Measured results\n\nEach section is written by the script named in it.\n"
    section = f"{begin}\n## {name}\n\n{body}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
