"""Classifier inputs: a radiograph (or its bone's bounding crop) as a fixed-size array.

`classifier_input` turns one radiograph into a `(size, size // aspect)` float32 array in
`[0, 1]`: the bone's bounding box (from the exact bone mask where the manifest has one,
else the estimated bone region, `boneaug.patches.bone_region`) plus a margin, resized with
its aspect ratio kept so that it fits, and centred on a black field (black is the
radiograph background). With ``aspect`` above 1 the field is upright (a long bone is
tall and narrow: at aspect 2 a 192 x 96 field holds its crop at twice the resolution of a
96 x 96 square with the same pixel count as 136 x 136, and small lesions stay visible), and
a crop wider than tall is turned a quarter (`np.rot90`) so that the bone runs along it.
Real and synthetic rows go through the same function, and synthetic rows carry their
source's bone mask, so the crop cannot tell them apart.

`load_inputs` does this for many rows, with an optional on-disk cache keyed by the
resolved image path and the settings, so that the dozens of classifiers of an experiment
read and crop each radiograph once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from boneaug.data import Manifest, read_image
from boneaug.data.skips import film_problem
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path
from boneaug.patches import bone_region, region_bbox, resize_to

CROPS = ("bone", "image")
BONE_MARGIN = 0.05  # of the bone box's longer side, on every side


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize `(H, W)` so that its longer side is `size`, centred on a black `(size, size)`."""
    return fit_box(image, size, size)


def fit_box(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize `(H, W)`, aspect kept, to the largest size that fits `(height, width)`, and
    centre it on a black `(height, width)` field."""
    rows, cols = image.shape
    scale = min(height / rows, width / cols)
    new_h = min(height, max(1, round(rows * scale)))
    new_w = min(width, max(1, round(cols * scale)))
    resized = np.clip(resize_to(image, new_h, new_w), 0.0, 1.0)
    out = np.zeros((height, width), np.float32)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resized
    return out


def input_shape(size: int, aspect: float = 1.0) -> tuple[int, int]:
    """The `(height, width)` of a classifier input: `size` tall, `size / aspect` wide."""
    return size, max(1, round(size / aspect))


def bone_crop(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The bounding box of `mask` widened by `BONE_MARGIN`, clipped to the image."""
    box = region_bbox(mask)
    if box is None:  # no bone found: the whole image is the honest fallback
        return image
    x0, y0, x1, y1 = box
    pad = round(BONE_MARGIN * max(x1 - x0, y1 - y0))
    height, width = image.shape
    return image[max(0, y0 - pad):min(height, y1 + pad), max(0, x0 - pad):min(width, x1 + pad)]


def classifier_input(manifest: Manifest, row: dict, size: int, crop: str = "bone",
                     aspect: float = 1.0) -> np.ndarray:
    """One row's classifier input: `input_shape(size, aspect)` float32 in `[0, 1]`."""
    if crop not in CROPS:
        raise BoneaugError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    image = read_image(manifest.resolve(row["path"]))
    problem = film_problem(image.shape)
    if problem:
        raise BoneaugError(f"{manifest.resolve(row['path'])}: {problem}")
    if crop == "bone":
        mask, _ = bone_region(manifest, row, image)
        image = bone_crop(image, mask)
    if aspect != 1 and image.shape[1] > image.shape[0]:
        image = np.ascontiguousarray(np.rot90(image))  # the long side along the field
    return fit_box(image, *input_shape(size, aspect))


def _cache_key(path: Path, size: int, crop: str, mask: str, aspect: float) -> str:
    settings = [str(path), size, crop, mask] + ([] if aspect == 1 else [aspect])
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]


def load_inputs(manifest: Manifest, rows: list | None, size: int, crop: str = "bone",
                cache_dir: str | Path | None = None,
                failures: dict[Any, str] | None = None, aspect: float = 1.0) -> np.ndarray:
    """Classifier inputs of `rows` (index labels of `manifest.table`; all when None).

    Returns `(N, *input_shape(size, aspect))` float32 in `[0, 1]`. With `cache_dir`, each
    input is stored there as a small ``.npy`` named by a hash of its resolved path and the
    settings, and read back on the next call (the radiographs of a run never change).
    With `failures` (a dict), a film that cannot be read or is too small is not an error:
    its row label maps to the reason and its input stays black; without it, the first
    such film raises its one-line error.
    """
    table = manifest.table
    rows = list(table.index) if rows is None else list(rows)
    out = np.zeros((len(rows), *input_shape(size, aspect)), np.float32)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    for i, row_id in enumerate(rows):
        row = table.loc[row_id].to_dict()
        file = None
        if cache is not None:
            path = manifest.resolve(row["path"]).resolve()
            mask = str(row.get("bone_mask_path", "") or "")
            file = cache / f"{_cache_key(path, size, crop, mask, aspect)}.npy"
            if file.is_file():
                out[i] = np.load(file)
                continue
        try:
            out[i] = classifier_input(manifest, row, size, crop, aspect)
        except BoneaugError as exc:
            if failures is None:
                raise
            failures[row_id] = str(exc)
            continue
        if file is not None:
            with atomic_path(file) as tmp, open(tmp, "wb") as handle:
                np.save(handle, out[i])
    return out
