"""Shared fixtures: tiny images and manifests written in a temporary folder."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
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


def free_port() -> int:
    """A free local TCP port for a torchrun / torch.distributed rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def one_thread():
    """One torch thread for the test: on a shared 2-core machine two threads of two
    processes spin against each other and make a tiny CNN ~100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def femur_films(tmp_path_factory):
    """A split phantom of femurs with obvious lesions, imbalanced like real data (the
    region and tile tests share it; they copy its table before changing anything)."""
    from boneaug.data import load_manifest
    from boneaug.data.phantom import PhantomConfig, make_phantom
    from boneaug.data.splits import split_manifest

    root = tmp_path_factory.mktemp("femur-films")
    raw = make_phantom(root / "phantom", PhantomConfig(
        bones=("femur",), normal=24, lesion=40, size=128, difficulty=0.0, seed=2))
    return split_manifest(load_manifest(raw), val=0.25, test=0.25, seed=0).manifest


def tiny_femur_world(root: Path, **gan: object) -> tuple:
    """Split phantom femur films (16 normal, 8 lesion, 96 px), their patch folder and a
    tiny generator trained 4 iterations (`gan`: more GanConfig settings) under `root`:
    (manifest, patch folder, generator file)."""
    from boneaug.data import load_manifest, save_manifest
    from boneaug.data.phantom import PhantomConfig, make_phantom
    from boneaug.data.splits import split_manifest
    from boneaug.gan import GanConfig, train_bone_generator
    from boneaug.patches import extract_patches

    films = load_manifest(make_phantom(root / "films", PhantomConfig(
        bones=("femur",), normal=16, lesion=8, size=96, difficulty=0.0, seed=2)))
    manifest = load_manifest(save_manifest(split_manifest(films, val=0.25, test=0.25,
                                                          seed=0).manifest, root / "m.csv"))
    patches = extract_patches(manifest, "femur", 24, root / "patches", per_lesion=2,
                              healthy_per_image=2, progress=False)
    result = train_bone_generator(patches.bone_dir, GanConfig(
        n_blocks=1, ngf=4, ndf=4, iterations=4, batch_size=2, sample_every=4,
        checkpoint_every=4, device="cpu", **gan), root / "gan", progress=False)
    return manifest, patches.bone_dir, result.generator_path


def smooth_patches(n: int, seed: int, size: int) -> np.ndarray:
    """`n` smooth-noise patches in [0.2, 0.6] (a bone-like texture for tiny GAN tests)."""
    from scipy.ndimage import gaussian_filter

    r = np.random.default_rng(seed).random((n, size, size)).astype(np.float32)
    r = np.stack([gaussian_filter(x, 2.0) for x in r])
    r = (r - r.min()) / (r.max() - r.min())
    return (0.2 + 0.4 * r).astype(np.float32)
