"""Paste a translated patch back into a radiograph without a visible seam.

A generated patch is small (P x P) and the crop it replaces is usually larger, so pasting
the patch itself would blur the crop's fine texture and leave an edge where the blur ends.
Instead the *change* the generator made, ``G(x) - x`` at patch resolution, is resized to
the crop and added to the original pixels under a smooth weight mask (`blend_mask`): 1 over
the lesion box, falling with a raised cosine to 0 a margin beyond it (an ellipse), and
never reaching the crop border. A CycleGAN also shifts the brightness of the whole patch a
little (lesion patches come from other exposures); the mask keeps that shift out of the
surrounding bone and soft tissue, where it would show as a soft square. Everywhere the
mask is 0 the image is exactly the source.

Shapes: images and masks are ``(H, W)`` float arrays; boxes are ``[x0, y0, x1, y1]`` in
pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import label

from boneaug.patches import resize_to


def _raised_cosine(t: np.ndarray) -> np.ndarray:
    """1 at t <= 0, 0 at t >= 1, a raised cosine between."""
    t = np.clip(t, 0.0, 1.0)
    return 0.5 + 0.5 * np.cos(np.pi * t)


def feather_mask(height: int, width: int, feather: float = 0.25) -> np.ndarray:
    """A `(height, width)` mask: 1 in the middle, a raised-cosine fall to 0 at the edges.

    `feather` is the fraction of each half-side over which the mask falls (0 < f <= 1).
    """
    if not 0 < feather <= 1:
        raise ValueError(f"feather must be in (0, 1], got {feather}")

    def ramp(n: int) -> np.ndarray:
        # distance to the nearer edge, in units of the half side, sampled at pixel centres
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / (n / 2.0)
        return _raised_cosine(1.0 - d / feather)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def blend_mask(height: int, width: int, lesion_box: tuple[float, float, float, float] | None
               = None, margin: float = 0.5, feather: float = 0.25) -> np.ndarray:
    """The weights, `(height, width)` in [0, 1], with which a crop's change is added.

    With `lesion_box` (in crop pixels): 1 inside the ellipse through the box's corners'
    half-axes, falling to 0 at `1 + margin` times them, multiplied by `feather_mask` so
    that it is 0 at the crop border whatever the box. Without it: `feather_mask` alone.
    """
    mask = feather_mask(height, width, feather)
    if lesion_box is None:
        return mask
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    x0, y0, x1, y1 = lesion_box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half_w, half_h = max((x1 - x0) / 2.0, 1.0), max((y1 - y0) / 2.0, 1.0)
    ys = (np.arange(height) + 0.5 - cy) / half_h
    xs = (np.arange(width) + 0.5 - cx) / half_w
    r = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return (mask * _raised_cosine((r - 1.0) / margin)).astype(np.float32)


def paste_change(image: np.ndarray, crop_box: tuple[int, int, int, int], source_patch: np.ndarray,
                 translated_patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Add the generator's change to `image` inside `crop_box`, weighted by `mask`.

    `source_patch` is the P x P patch the generator was given (the crop resized) and
    `translated_patch` its output, both in [0, 1]; `mask` has the crop's shape (see
    `blend_mask`). Returns a new image; the input `image` is not modified. The crop box
    must lie inside the image.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    height, width = image.shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"crop box {crop_box} is not inside the {width}x{height} image")
    if mask.shape != (y1 - y0, x1 - x0):
        raise ValueError(f"mask shape {mask.shape} is not the crop's {(y1 - y0, x1 - x0)}")
    change = np.asarray(translated_patch, np.float32) - np.asarray(source_patch, np.float32)
    change = resize_to(change, y1 - y0, x1 - x0)
    out = np.array(image, dtype=np.float32, copy=True)
    out[y0:y1, x0:x1] += mask * change
    return np.clip(out, 0.0, 1.0)


def seam_ratio(result: np.ndarray, source: np.ndarray, crop_box: tuple[int, int, int, int],
               mask: np.ndarray) -> float:
    """How much the paste raised the gradient energy along its boundary.

    The boundary is the outer half of the blend's transition, where the weight `mask`
    (the crop's, as given to `paste_change`) is between 0.02 and 0.5: there a seam would
    show, and the lesion itself is not. Returns the mean squared gradient magnitude over
    that band in `result` over the same in `source`: 1.0 means the boundary is as smooth
    as the image was; a hard-edged paste of a different patch gives two to three times more.
    NaN where the source is flat in that band (nothing to compare against).
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    # np.gradient at the crop's edge needs one pixel beyond it; nothing further matters.
    ya, yb = max(y0 - 1, 0), min(y1 + 1, source.shape[0])
    xa, xb = max(x0 - 1, 0), min(x1 + 1, source.shape[1])
    band = np.zeros((yb - ya, xb - xa), dtype=bool)
    band[y0 - ya:y1 - ya, x0 - xa:x1 - xa] = (mask > 0.02) & (mask < 0.5)
    if not band.any():
        return 1.0

    def energy(img: np.ndarray) -> float:
        gy, gx = np.gradient(np.asarray(img[ya:yb, xa:xb], dtype=np.float64))
        return float(np.mean((gx**2 + gy**2)[band]))

    base = energy(source)
    return energy(result) / base if base > 0 else float("nan")  # a flat band has no seam scale


CHANGE_SHARE = 0.25   # a pixel is painted where its change is this share of the largest
MIN_CHANGE = 1 / 255  # a change below one 8-bit grey level shows no shape


def painted_mask(before: np.ndarray, after: np.ndarray, crop_box: tuple[int, int, int, int],
                 lesion_box: tuple[float, float, float, float]) -> tuple[np.ndarray, str]:
    """The painted lesion of a synthetic film (bool, the film's shape) and how it was
    found: ``"change"``: the pixels of the crop whose change is at least `CHANGE_SHARE` of
    the largest change there (and `MIN_CHANGE`), in the connected parts that touch the
    lesion box (a generator's faint texture elsewhere in the crop is not a lesion);
    ``"box"``: the lesion box filled, where the change is too faint to show a shape."""
    height, width = before.shape
    mask = np.zeros((height, width), bool)
    x0, y0 = max(int(crop_box[0]), 0), max(int(crop_box[1]), 0)
    x1, y1 = min(int(crop_box[2]), width), min(int(crop_box[3]), height)
    change = np.abs(after[y0:y1, x0:x1].astype(np.float64) - before[y0:y1, x0:x1])
    top = float(change.max()) if change.size else 0.0
    lx0, ly0 = max(int(np.floor(lesion_box[0])), 0), max(int(np.floor(lesion_box[1])), 0)
    lx1 = min(int(np.ceil(lesion_box[2])), width)
    ly1 = min(int(np.ceil(lesion_box[3])), height)
    if top >= MIN_CHANGE:
        parts, _ = label(change >= max(CHANGE_SHARE * top, MIN_CHANGE))
        inside = parts[max(ly0 - y0, 0):max(ly1 - y0, 0), max(lx0 - x0, 0):max(lx1 - x0, 0)]
        touching = np.setdiff1d(np.unique(inside), [0])
        if len(touching):
            mask[y0:y1, x0:x1] = np.isin(parts, touching)
            return mask, "change"
    mask[ly0:ly1, lx0:lx1] = True
    return mask, "box"
