"""A stage's output folder, kept safe: one run at a time, resume only from a whole checkpoint, a full disk named.

- `exclusive_output_dir`: a lock file holding the owner's PID and host; a second run refuses with the holder's PID; a
  lock whose process is gone (same host) is stale and taken over with a warning. Only the main process of a
  multi-process run (torchrun / accelerate) takes it. A folder that already holds a finished stage is not trained over
  unless the run resumes or `overwrite` is given.
- `newest_valid_checkpoint`: the newest `checkpoint-N` whose weights, trainer state, optimizer, scheduler and RNG
  state all read back; the ones skipped are logged with the reason.
- `named_disk_full` / `explain_failure`: turn the errors a full disk raises deep inside torch / safetensors ("basic_ios::clear:
  iostream error", "StorageFull") into one sentence naming the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import time
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".scitune-train.lock"
FINISHED_MARKER = "training_summary.json"
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")
NO_SPACE_SIGNS = ("no space left", "storagefull", "iostream error", "pytorchstreamwriter failed", "disk quota")


class OutputDirBusy(RuntimeError):
    """Another run holds the output folder, or it holds a finished stage that would be overwritten."""


class NoSpaceLeft(OSError):
    """Saving failed because the output folder's file system is full."""


def is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def _holder(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def exclusive_output_dir(output_dir: str | Path, resume: bool = False, overwrite: bool = False):
    """Hold `output_dir` for this run (see the module docstring)."""
    out = Path(output_dir)
    if not is_main_process():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    if (out / FINISHED_MARKER).is_file() and not (resume or overwrite):
        raise OutputDirBusy(f"{out} already holds a finished stage ({FINISHED_MARKER}); pass --overwrite-output-dir "
                            "to replace it, --resume to continue it, or give another --output-dir")
    lock = out / LOCK_NAME
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = _holder(lock)
            same_host = holder.get("host") == socket.gethostname()
            if not same_host or _alive(holder.get("pid")):
                raise OutputDirBusy(
                    f"{out} is in use by scitune-train PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
                    f"(since {holder.get('started', '?')}); wait for it or give another --output-dir (if that run "
                    f"is gone, delete {lock})") from None
            logger.warning("%s: taking over a stale lock of PID %s, which is no longer running", out, holder.get("pid"))
            lock.unlink(missing_ok=True)
    with os.fdopen(handle, "w") as file:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S")}, file)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from (None when it can): every file the Trainer reads back is checked."""
    from safetensors import safe_open

    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    for name in CHECKPOINT_FILES:
        if not (folder / name).is_file():
            return f"{name} is missing"
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
        if not isinstance(state, dict) or "global_step" not in state:
            return "trainer_state.json has no global_step"
    except (OSError, json.JSONDecodeError) as err:
        return f"trainer_state.json is unreadable ({err})"
    for path in weights:
        try:
            with safe_open(str(path), "pt") as file:
                list(file.keys())
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error type
            return f"{path.name} is unreadable ({str(err).splitlines()[0][:120]})"
    for path in [folder / "optimizer.pt", folder / "scheduler.pt", *folder.glob("rng_state*.pth")]:
        # torch.save writes a zip archive: checking it (central directory and CRCs) unpickles nothing
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
        except (OSError, zipfile.BadZipFile) as err:
            return f"{path.name} is unreadable ({err})"
        if broken is not None:
            return f"{path.name} is unreadable (corrupt member {broken})"
    return None


def newest_valid_checkpoint(checkpoints_dir: str | Path) -> tuple[str | None, list[dict]]:
    """(the newest resumable `checkpoint-N`, the newer ones skipped with their reasons)."""
    def step(path):
        tail = path.name.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    skipped = []
    for folder in sorted(Path(checkpoints_dir).glob("checkpoint-*"), key=step, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder), skipped
        skipped.append({"checkpoint": folder.name, "reason": problem})
        logger.warning("--resume: skipping %s: %s", folder, problem)
    return None, skipped


@contextlib.contextmanager
def named_disk_full(output_dir: str | Path):
    """Inside the block, a failure caused by a full disk (caches, checkpoints, the final save) becomes `NoSpaceLeft`."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - re-raised as it is unless a full disk caused it
        explained = explain_failure(err, output_dir)
        if explained is err:
            raise
        raise explained from err


def explain_failure(error: BaseException, output_dir: str | Path) -> BaseException:
    """A `NoSpaceLeft` naming the folder when `error` comes from a full disk; else `error` itself."""
    chain, current = [], error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    full = any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain) or any(
        sign in str(e).lower() for e in chain for sign in NO_SPACE_SIGNS)
    if not full:
        return error
    try:
        free = shutil.disk_usage(output_dir).free
    except OSError:
        free = None
    return NoSpaceLeft(errno.ENOSPC, f"no space left on {output_dir} while saving"
                       + (f" ({free:,} bytes free)" if free is not None else "")
                       + "; free some space (or give another --output-dir) and rerun with --resume")
