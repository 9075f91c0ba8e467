"""`run.json`: what produced an output folder (config, seed, versions, commit, wall time)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from boneaug.files import write_json_atomic

_PACKAGES = ("boneaug", "numpy", "scipy", "pandas", "pillow", "pydicom", "torch", "monai")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the boneaug source tree, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def write_run_json(out_dir: str | Path, command: str, config: dict[str, Any],
                   seed: int | None, started: float, extra: dict[str, Any] | None = None) -> Path:
    """Write `out_dir/run.json`; `started` is the `time.time()` at which the work began."""
    info: dict[str, Any] = {
        "command": command,
        "config": config,
        "seed": seed,
        "started": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(),
        "wall_seconds": round(time.time() - started, 3),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }
    if extra:
        info.update(extra)
    path = Path(out_dir) / "run.json"
    write_json_atomic(path, info)
    return path
