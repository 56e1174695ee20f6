"""Reuse what an earlier run already built: the synthetic datasets and the pretrained miniature backbones.

Each product is stored under `.cache/scitune/<kind>/<key>` (or `$SCITUNE_CACHE`), where the key hashes everything
that decides its content: the settings, the seed, the fingerprint of the input data, and the source of the code that
builds it (so a code change never reuses a stale product). A product is published into the cache only once it is
complete (built in a temporary folder, then renamed), and copied out with hard links where the file system allows.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("SCITUNE_CACHE", ".cache/scitune"))


def source_fingerprint(*module_names: str) -> str:
    """Hash of the source files of the modules that build a product."""
    digest = hashlib.sha256()
    for name in sorted(module_names):
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: str | Path, patterns: tuple[str, ...] = ("*",)) -> str:
    """Hash of the files of `folder` matching `patterns` (recursively), names and contents."""
    digest = hashlib.sha256()
    folder = Path(folder)
    files = sorted({path for pattern in patterns for path in folder.rglob(pattern) if path.is_file()})
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _copy_tree(source: Path, target: Path) -> None:
    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)


def build_or_reuse(kind: str, parts: dict, target: str | Path, build: Callable[[Path], object]) -> bool:
    """Fill `target` from the cache entry of (`kind`, `parts`), or build it there and store it; True when reused."""
    target = Path(target)
    entry = cache_root() / kind / cache_key(parts)
    if (entry / ".complete").is_file():
        _copy_tree(entry, target)
        (target / ".complete").unlink(missing_ok=True)
        logger.info("reused %s from the cache (%s)", kind, entry)
        return True
    build(target)
    partial = entry.with_name(entry.name + f".partial-{os.getpid()}")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        _copy_tree(target, partial)
        (partial / "cache_key.json").write_text(json.dumps(parts, indent=2, sort_keys=True, default=str))
        (partial / ".complete").write_text("")
        if entry.exists():
            shutil.rmtree(partial, ignore_errors=True)  # another run stored it first
        else:
            partial.rename(entry)
    except OSError as err:  # a cache that cannot be written only costs the next run its time
        logger.warning("could not store %s in the cache %s: %s", kind, entry, err)
        shutil.rmtree(partial, ignore_errors=True)
    return False
