"""Shared fixtures: tiny images and manifests written in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_gray_png(path: Path, height: int = 32, width: int = 48, seed: int = 0) -> Path:
    """An 8-bit grayscale PNG with random content."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tiny_images(tmp_path: Path) -> list[Path]:
    return [write_gray_png(tmp_path / "img" / f"im{i}.png", seed=i) for i in range(4)]
