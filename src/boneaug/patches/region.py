"""Where the bone is in a radiograph: from a mask when there is one, else estimated.

The estimate (`estimate_bone_region`) assumes what radiographs show in display
orientation: bone is the brightest large structure, soft tissue is dimmer, air darkest.

1. Work at a reduced size (long side <= `work_side`): the region is coarse anatomy, and
   this keeps a 3000 px radiograph as cheap as a phantom.
2. Smooth with a Gaussian (sigma = long side / 128, at least 1 px) so that noise and
   trabecular texture do not fragment the threshold.
3. Otsu threshold (two classes). If the bright class still holds a clearly separated
   brighter sub-population (bone inside soft tissue), threshold again inside it with Otsu.
   "Clearly" means the second split's class means differ by more than `SECOND_SPLIT`
   times the first split's; a cortex/medulla split inside bone alone stays well below it.
4. Morphology: opening (removes thin bright lines such as markers and collimation
   edges), closing (bridges the darker medulla and lytic lesions), keep the largest
   component and any other at least `KEEP_FRACTION` of its area (tibia and fibula,
   radius and ulna), fill holes.

Shapes: images are ``(H, W)`` float32 in ``[0, 1]``; masks are ``(H, W)`` bool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from boneaug.data import Manifest, read_image
from boneaug.errors import BoneaugError
from boneaug.patches.crop import resize_to
from boneaug.patches.location import BoneLocator

SECOND_SPLIT = 0.6
KEEP_FRACTION = 0.5
MIN_INNER = 0.25
BAND_MAX, BAND_TOL, BAND_UNIFORM = 0.3, 0.05, 0.9


def otsu_threshold(values: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Otsu's threshold of `values` and its effectiveness (between / total variance, 0..1).

    Values above the threshold form the bright class. Constant input gives
    ``(value, 0.0)``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:
        return lo, 0.0
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    p = hist / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    mu_total = mu[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.where((w0 > 1e-12) & (w1 > 1e-12),
                           (mu_total * w0 - mu) ** 2 / (w0 * w1), 0.0)
    k = int(np.argmax(between))
    total = float((p * (centres - mu_total) ** 2).sum())
    return float(edges[k + 1]), float(between[k] / total) if total > 0 else 0.0


def _disk(radius: int) -> np.ndarray:
    r = max(int(radius), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r + r  # a slightly full disk: r=1 gives a 3x3 cross+


def _close(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary closing that does not erode regions touching the image border.

    scipy pads with zeros, which would shave a long bone where it leaves the image;
    padding with the edge values first keeps it.
    """
    pad = radius + 1
    padded = np.pad(mask, pad, mode="edge")
    closed = ndimage.binary_closing(padded, structure=_disk(radius))
    return closed[pad:-pad, pad:-pad]


def _collimation_bands(smooth: np.ndarray, bright: float, margin: int) -> np.ndarray:
    """Bright, uniform bands along the image border: the unexposed area outside a collimator.

    Walking in from each side, a row (column) belongs to the band while it is brighter than
    `bright` and nearly uniform (`BAND_UNIFORM` of it within `BAND_TOL` of its median);
    anatomy never spans a whole row like that. A band may cover at most `BAND_MAX` of the
    side; `margin` pixels more are added to swallow the blurred field edge.
    """
    height, width = smooth.shape
    bands = np.zeros_like(smooth, dtype=bool)

    def depth(lines: np.ndarray) -> int:
        k = 0
        while k < int(BAND_MAX * lines.shape[0]):
            line = lines[k]
            median = float(np.median(line))
            if median <= bright or np.mean(np.abs(line - median) < BAND_TOL) < BAND_UNIFORM:
                break
            k += 1
        return k

    top, bottom = depth(smooth), depth(smooth[::-1])
    left, right = depth(smooth.T), depth(smooth.T[::-1])
    if top:
        bands[:top + margin] = True
    if bottom:
        bands[height - bottom - margin:] = True
    if left:
        bands[:, :left + margin] = True
    if right:
        bands[:, width - right - margin:] = True
    return bands


def _clean(bright: np.ndarray, radius: int) -> np.ndarray:
    """Opening, closing, keep the large components, fill holes (step 4 of the method)."""
    mask = ndimage.binary_opening(bright, structure=_disk(radius))
    if not mask.any():  # the opening removed everything: a very thin bone; keep the raw one
        mask = bright
    mask = _close(mask, 2 * radius)
    labels, count = ndimage.label(mask)
    if count > 1:
        areas = np.bincount(labels.ravel())[1:]
        keep = np.flatnonzero(areas >= KEEP_FRACTION * areas.max()) + 1
        mask = np.isin(labels, keep)
    return ndimage.binary_fill_holes(mask)


def estimate_bone_region(image: np.ndarray, *, work_side: int = 256) -> np.ndarray:
    """Estimate the bone region of a radiograph (see the module docstring for the method).

    `image` is ``(H, W)`` float in ``[0, 1]``, bone bright. Returns a bool ``(H, W)`` mask;
    all False only for a constant image.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected an (H, W) image, got shape {image.shape}")
    height, width = image.shape
    scale = min(1.0, work_side / max(height, width))
    if scale < 1.0:
        small = resize_to(image, max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        small = image
    sigma = max(1.0, max(small.shape) / 128.0)
    smooth = ndimage.gaussian_filter(small, sigma=sigma, mode="reflect")

    radius = max(1, round(sigma))
    bands = _collimation_bands(smooth, otsu_threshold(smooth)[0], margin=2 * radius)
    field = ~bands
    if not field.any():
        return np.zeros((height, width), dtype=bool)
    t1, _ = otsu_threshold(smooth[field])
    # Clean before the second split, so that a small bright marker cannot pose as the
    # "brighter sub-population" of the foreground.
    mask = _clean((smooth > t1) & field, radius)
    if not mask.any() or mask[field].all():
        return np.zeros((height, width), dtype=bool)
    contrast1 = float(smooth[mask].mean() - smooth[field & ~mask].mean())
    t2, _ = otsu_threshold(smooth[mask])
    brighter = mask & (smooth > t2)
    rest = mask & ~brighter
    if brighter.any() and rest.any():
        contrast2 = float(smooth[brighter].mean() - smooth[rest].mean())
        if contrast2 > SECOND_SPLIT * contrast1:
            inner = _clean(brighter, radius)
            # When the foreground was already the bone alone, its brighter class is the
            # cortex: thin lines, under a fifth of the bone (measured on the phantom).
            # Bone inside soft tissue keeps a larger share of its foreground.
            if inner.sum() >= MIN_INNER * mask.sum():
                mask = inner

    if scale < 1.0:
        mask = resize_to(mask.astype(np.float32), height, width) > 0.5
    return mask


def read_bone_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Read a bone mask image (nonzero = bone) that must have the image's `(H, W)` shape."""
    mask = read_image(path) > 0.5
    if mask.shape != tuple(shape):
        raise BoneaugError(f"{path}: bone mask is {mask.shape[1]}x{mask.shape[0]} but its "
                           f"image is {shape[1]}x{shape[0]}")
    return mask


def region_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of a mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def overlap_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, recall (share of the true region covered) and precision of a predicted mask."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    inter = float(np.logical_and(predicted, truth).sum())
    p, t = float(predicted.sum()), float(truth.sum())
    return {
        "dice": 2 * inter / (p + t) if p + t else 1.0,
        "recall": inter / t if t else 1.0,
        "precision": inter / p if p else 1.0,
    }


MASK_COLUMN = "bone_mask_path"


def mask_column(bone: str) -> str:
    """The manifest column of one bone's mask on a multi-bone film, e.g. ``femur_mask_path``."""
    return f"{bone}_mask_path"


def bone_region(manifest: Manifest, row: dict, image: np.ndarray, bone: str | None = None
                ) -> tuple[np.ndarray, str]:
    """The mask of `bone` (default: the row's own bone) in a row's image, and its source.

    In order: the row's ``<bone>_mask_path`` (a multi-bone film with a mask per bone); its
    ``bone_mask_path`` when `bone` is the row's own bone (the phantom's exact mask); else
    the estimated bone region (``estimated``: on a joint film, every bone of it). The mask
    may be empty.
    """
    own = str(row.get("bone", ""))
    bone = bone or own
    for column in (mask_column(bone), MASK_COLUMN if bone == own else ""):
        mask_path = str(row.get(column, "") or "") if column else ""
        if mask_path:
            return read_bone_mask(manifest.resolve(mask_path), image.shape), "mask"
    return estimate_bone_region(image), "estimated"


def where_bone_lies(image: np.ndarray, region: np.ndarray, source: str,
                    locator: BoneLocator | None) -> np.ndarray:
    """The pixels of `region` where the bone's lesion or crop centres may go: all of a
    mask of the bone; of an estimated region (several bones on a joint film), those near
    where the bone lies in films like it (`boneaug.patches.location`), when a locator
    is given. May be empty."""
    if source == "mask" or locator is None or not region.any():
        return region
    return locator.restrict(image, region)
