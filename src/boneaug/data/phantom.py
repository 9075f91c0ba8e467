"""Phantom radiographs of long bones with exact ground truth (TO BE IMPLEMENTED)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHANTOM_BONES = ("femur", "tibia", "humerus")


@dataclass
class PhantomConfig:
    """How many images of which bones to render, and how hard the lesions are."""

    bones: tuple[str, ...] = PHANTOM_BONES
    normal: int = 60          # normal images per bone
    lesion: int = 6           # lesion images per bone
    size: int = 256           # image side in pixels (square images)
    difficulty: float = 0.5   # 0 = obvious lesions, 1 = barely visible
    seed: int = 0
    distractors: bool = True  # collimation edges and side-marker letters
    extra: dict = field(default_factory=dict)


@dataclass
class PhantomImage:
    """One rendered radiograph: image in [0, 1] (H, W), masks bool (H, W), boxes in px."""

    image: np.ndarray
    bone_mask: np.ndarray
    lesion_mask: np.ndarray
    boxes: list[list[float]]


def render_radiograph(bone: str, with_lesion: bool, size: int, difficulty: float,
                      rng: np.random.Generator, distractors: bool = True) -> PhantomImage:
    raise NotImplementedError


def make_phantom(out_dir: str | Path, config: PhantomConfig) -> Path:
    """Render the data set into `out_dir` and return the path of its manifest.csv."""
    raise NotImplementedError
