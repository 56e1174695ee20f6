"""`torch.compile` for the backbone pretraining loop and the stages' language model, with a clean fallback to eager.

Why: a miniature LLaMA is made of small matmuls and many element-wise ops (RMSNorm, RoPE, SiLU, softmax); eager
PyTorch launches each one separately, Inductor fuses them. It pays once its one-off compilation is spread over enough
steps (benchmarks/bench_backbone_step.py and bench_speed.py measure it). On a CPU Inductor needs a C++ compiler;
without one (or when compilation fails for any other reason) training goes on in eager mode with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

import torch

logger = logging.getLogger(__name__)


def compile_available() -> tuple[bool, str]:
    """(can Inductor compile here, why not). CPU kernels are C++ built with the system compiler; CUDA uses Triton."""
    if torch.cuda.is_available():
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "the triton package is not installed"
        return True, ""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None and shutil.which("g++") is None:
        return False, f"no C++ compiler ({compiler} / g++) on PATH"
    return True, ""


class CompiledWithFallback:
    """Calls `torch.compile(module)`; if compiling fails, warns once and calls the eager module from then on.

    Parameters are shared with `module`, so the optimizer, saving and evaluation keep using `module` itself.
    A genuine error in the inputs still surfaces: the eager call that follows a failure raises it again.
    `function` (default: the module itself) is what gets compiled and, after a failure, called eagerly.
    """

    def __init__(self, module: torch.nn.Module, enabled: bool = True, function=None):
        self.module = module
        self.function = function if function is not None else module
        self.compiled = None
        if enabled:
            available, reason = compile_available()
            if available:
                self.compiled = torch.compile(self.function)
            else:
                logger.warning("torch.compile skipped (%s): training %s in eager mode", reason,
                               type(module).__name__)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - any backend failure means "run eager"
                logger.warning("torch.compile failed for %s (%s: %s); continuing in eager mode",
                               type(self.module).__name__, type(error).__name__, str(error).splitlines()[0][:200])
                self.compiled = None
        return self.function(*args, **kwargs)


@contextlib.contextmanager
def deterministic_algorithms():
    """Deterministic kernels for a training loop (forward *and* backward, which Inductor compiles at its first call).

    Inductor then lowers scatter-adds (the embedding's backward) to the deterministic ATen kernel instead of parallel
    atomic adds whose order varies from run to run: same seed -> bit-identical weights, compiled or not."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def compile_in_place(module: torch.nn.Module, enabled: bool = True) -> bool:
    """`nn.Module.compile` the module (same module, same parameters, same state-dict keys: the Trainer's
    checkpoints, the optimizer and PEFT see no difference) when Inductor can compile here; returns whether it did.
    Compilation happens at the first call. Meant for a module that trains: a saved stage is reloaded for generation,
    where a compiled module would recompile for every decoding length."""
    if not enabled:
        return False
    available, reason = compile_available()
    if not available:
        logger.warning("torch.compile skipped (%s): %s trains in eager mode", reason, type(module).__name__)
        return False
    module.compile()
    return True
