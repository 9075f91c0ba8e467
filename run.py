#!/usr/bin/env python3
"""Set up boneaug in its own virtual environment, then run the demo or the tests.

    python3 run.py demo    # set up, then run the main job on the built-in phantom data
    python3 run.py test    # set up, then run the test suite (and the linter)

Only the Python standard library is used here, so this works on a machine that has
nothing but Python >= 3.11 and pip. The environment lives in `.venv/`; it is reinstalled
only when requirements-cpu.txt or pyproject.toml change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".boneaug-installed"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def wanted_stamp() -> str:
    digest = hashlib.sha256()
    for name in ("requirements-cpu.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def call(*args: str | Path) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def set_up() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py may run under an old python3
        sys.exit("boneaug needs Python >= 3.11; this is " + sys.version.split()[0])
    python = venv_python()
    if not python.exists():
        print(f"creating the virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = wanted_stamp()
    if not STAMP.exists() or STAMP.read_text() != stamp:
        print("installing boneaug and its pinned CPU dependencies (torch==2.13.0)", flush=True)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "-q"]
        call(*pip, "-r", ROOT / "requirements-cpu.txt")
        # --no-deps: everything is pinned above; the package's own ranges must not
        # pull a different (CUDA) torch build.
        call(*pip, "--no-deps", "-e", ROOT)
        STAMP.write_text(stamp)
    return python


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        sys.exit(__doc__)
    python = set_up()
    what, rest = argv[0], argv[1:]
    if what == "demo":
        call(python, "-m", "boneaug", "demo", *rest)
    elif what == "test":
        call(python, "-m", "ruff", "check", "src", "tests", "benchmarks", "run.py")
        call(python, "-m", "pytest", *(rest or ["-q"]))


if __name__ == "__main__":
    main(sys.argv[1:])
