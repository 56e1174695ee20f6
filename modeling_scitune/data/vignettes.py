"""Fetch real scientific PDFs: the R package vignettes that Debian ships (GPL), never committed to the repo.

`apt-get download` + `dpkg -x` needs no root and installs nothing; the PDFs land under
`DEST/extract/usr/lib/R/site-library/<pkg>/doc/*.pdf`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

R_VIGNETTE_PACKAGES = ("r-cran-vcd", "r-cran-survival", "r-cran-strucchange", "r-cran-party", "r-cran-sandwich",
                       "r-cran-coin", "r-cran-zoo")


def fetch_r_vignettes(dest: str | Path, packages=R_VIGNETTE_PACKAGES) -> list[Path]:
    """Download and unpack the packages into `dest` (cached); returns the vignette PDFs found."""
    dest = Path(dest)
    debs, extract = dest / "debs", dest / "extract"
    debs.mkdir(parents=True, exist_ok=True)
    if not any(debs.glob("*.deb")):
        if shutil.which("apt-get") is None:
            raise RuntimeError("apt-get is not available: cannot fetch the R vignette packages")
        result = subprocess.run(["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 and os.geteuid() == 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            result = subprocess.run(["apt-get", "download", *packages], cwd=debs, capture_output=True, text=True,
                                    timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"apt-get download failed: {result.stderr.strip()[-500:]}")
    if not extract.is_dir():
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(extract)], check=True, timeout=300)
    return sorted(extract.rglob("doc/*.pdf"))
