"""Paste a translated patch back into a radiograph without a visible seam.

A generated patch is small (P x P) and the crop it replaces is usually larger, so pasting
the patch itself would blur the crop's fine texture and leave an edge where the blur ends.
Instead the *change* the generator made, ``G(x) - x`` at patch resolution, is resized to
the crop and added to the original pixels under a feathered mask that falls smoothly to
zero at the crop border. Outside the lesion the change is near zero, inside it carries the
lesion, and at the border the mask removes whatever is left, so the seam is invisible and
the original image detail is kept everywhere the generator did not act.

Shapes: images and masks are ``(H, W)`` float arrays; boxes are ``[x0, y0, x1, y1]`` in
pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

import numpy as np

from boneaug.patches import resize_to


def feather_mask(height: int, width: int, feather: float = 0.25) -> np.ndarray:
    """A `(height, width)` mask: 1 in the middle, a raised-cosine fall to 0 at the edges.

    `feather` is the fraction of each half-side over which the mask falls (0 < f <= 1).
    """
    if not 0 < feather <= 1:
        raise ValueError(f"feather must be in (0, 1], got {feather}")

    def ramp(n: int) -> np.ndarray:
        # distance to the nearer edge, in units of the half side, sampled at pixel centres
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / (n / 2.0)
        t = np.clip(d / feather, 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(np.pi * t)

    return np.outer(ramp(height), ramp(width)).astype(np.float32)


def paste_change(image: np.ndarray, crop_box: tuple[int, int, int, int], source_patch: np.ndarray,
                 translated_patch: np.ndarray, feather: float = 0.25) -> np.ndarray:
    """Add the generator's change to `image` inside `crop_box`; return a new image.

    `source_patch` is the P x P patch the generator was given (the crop resized) and
    `translated_patch` its output, both in [0, 1]. The input `image` is not modified.
    The crop box must lie inside the image.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    height, width = image.shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"crop box {crop_box} is not inside the {width}x{height} image")
    change = np.asarray(translated_patch, np.float32) - np.asarray(source_patch, np.float32)
    change = resize_to(change, y1 - y0, x1 - x0)
    out = np.array(image, dtype=np.float32, copy=True)
    out[y0:y1, x0:x1] += feather_mask(y1 - y0, x1 - x0, feather) * change
    return np.clip(out, 0.0, 1.0)


def seam_ratio(result: np.ndarray, source: np.ndarray, crop_box: tuple[int, int, int, int],
               band: int = 2) -> float:
    """How much the paste raised the gradient energy along the crop border.

    The mean squared gradient magnitude over a band of `band` pixels on each side of the
    crop border, in `result` over the same in `source`. 1.0 means the border is as smooth as
    the image was; a hard-edged paste of a different patch gives two to three times more.
    """
    x0, y0, x1, y1 = (int(v) for v in crop_box)
    ring = np.zeros(source.shape, dtype=bool)
    ring[max(0, y0 - band):y1 + band, max(0, x0 - band):x1 + band] = True
    ring[y0 + band:max(y0 + band, y1 - band), x0 + band:max(x0 + band, x1 - band)] = False

    def energy(img: np.ndarray) -> float:
        gy, gx = np.gradient(np.asarray(img, dtype=np.float64))
        return float(np.mean((gx**2 + gy**2)[ring]))

    base = energy(source)
    return energy(result) / base if base > 0 else float("inf")
