"""docs/api.md runs: every ```python block, in order, in one namespace (toy sizes)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_api_page_has_an_example_per_package() -> None:
    text = DOC.read_text(encoding="utf-8")
    for package in ("data", "patches", "gan", "synth", "classify", "experiment"):
        assert f"## `boneaug.{package}`" in text, package
    assert len(_blocks()) >= 7


@pytest.mark.slow
def test_the_api_examples_run(tmp_path: Path, one_thread) -> None:
    namespace: dict = {}
    printed = io.StringIO()
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        for number, block in enumerate(_blocks(), start=1):
            with contextlib.redirect_stdout(printed):
                exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
    finally:
        os.chdir(here)
    out = printed.getvalue()
    # what the walk made, and what it printed
    assert (tmp_path / "work" / "gan" / "femur" / "generator_healthy_to_lesion.pt").is_file()
    assert namespace["painted"].images > 0 and namespace["pasted"].images > 0
    assert (tmp_path / "work" / "coco" / "annotations.json").is_file()
    assert "gan - baseline:" in out and "conditions in the demo" in out
    assert "painted in the last epoch:" in out
