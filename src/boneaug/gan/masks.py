"""Lesion masks of the mask-conditioned generator (`gan.mask: true`).

The mask-conditioned generator (`networks.MaskedGenerator`; in the spirit of Faryna et
al. 2021, mask-guided CycleGAN lesion synthesis) takes a patch and a mask of where the
lesion is to be, and changes the patch only under that mask. Its masks are drawn from
lesion boxes: an ellipse inscribed in the box, with a soft rim. A box gives the size,
shape and site of a lesion without needing a pixel mask of every lesion (most data sets
draw boxes), and the same rule serves every place a mask is needed:

- training: each real lesion patch's mask comes from its lesion box in the patch store's
  index (`patch_masks`); a healthy patch is given the mask of a real lesion patch drawn
  at random, so the lesions it learns to paint have the real lesions' sizes and sites;
- synthesis and `boneaug.transforms`: the mask of the site's lesion box in its crop
  (`site_mask`).

`box_mask` is 1 inside ``r <= 1 - RIM`` and 0 outside ``r >= 1 + RIM``, where ``r`` is
the normalised elliptical radius of the box's inscribed ellipse, linear between: the
generator's change fades out over the rim instead of ending at a seam.

In the networks, a mask travels as a second input channel in the model range, like the
image: ``2 * mask - 1`` (`with_mask`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["RIM", "box_mask", "centre_mask", "patch_box", "patch_masks", "site_mask", "with_mask"]

RIM = 0.15  # half-width of the soft rim, in the ellipse's normalised radius


def box_mask(box: Sequence[float], size: int) -> np.ndarray:
    """`(size, size)` float32 in [0, 1]: the soft ellipse inscribed in `box`
    (``[x0, y0, x1, y1]`` in patch pixels, ends exclusive; half-axes of at least 1 px)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = max((x1 - x0) / 2, 1.0), max((y1 - y0) / 2, 1.0)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    radius = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    return np.clip((1 + RIM - radius) / (2 * RIM), 0.0, 1.0).astype(np.float32)


def centre_mask(size: int, context: float = 0.5) -> np.ndarray:
    """Where a lesion sits in a patch cut around it with `context` (the patch stage's
    default 0.5: the box's longest side is 1 / 1.5 of the crop's): the soft ellipse
    inscribed in the central square of side `size / (1 + context)`."""
    half = size / (1.0 + context) / 2
    return box_mask((size / 2 - half, size / 2 - half, size / 2 + half, size / 2 + half), size)


def patch_box(lesion_box: Sequence[float], crop_box: Sequence[float], size: int
              ) -> tuple[float, float, float, float]:
    """A film's lesion box in the pixels of the `size` patch resized from `crop_box`."""
    cx0, cy0, cx1, cy1 = (float(v) for v in crop_box)
    sx, sy = size / (cx1 - cx0), size / (cy1 - cy0)
    lx0, ly0, lx1, ly1 = (float(v) for v in lesion_box)
    return ((lx0 - cx0) * sx, (ly0 - cy0) * sy, (lx1 - cx0) * sx, (ly1 - cy0) * sy)


def site_mask(lesion_box: Sequence[float], crop_box: Sequence[float], size: int
              ) -> np.ndarray:
    """The mask of a synthesis site: its lesion box in its crop, at the patch size."""
    return box_mask(patch_box(lesion_box, crop_box, size), size)


def patch_masks(index: pd.DataFrame, size: int) -> np.ndarray:
    """`(N, size, size)` float32: the mask of each lesion patch of a store's `index`
    (columns ``x0..y1``: the crop in the film; ``lesion_x0..lesion_y1``: its lesion)."""
    crops = index[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
    boxes = index[["lesion_x0", "lesion_y0", "lesion_x1", "lesion_y1"]].to_numpy(np.float64)
    if len(index) == 0:
        return np.zeros((0, size, size), np.float32)
    return np.stack([site_mask(box, crop, size) for box, crop in zip(boxes, crops,
                                                                      strict=True)])


def with_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`(B, 1, P, P)` images and their masks (already in the model range, `(B, 1, P, P)`)
    -> the `(B, 2, P, P)` input of a mask-conditioned network; `x` itself without masks."""
    return x if mask is None else torch.cat([x, mask.to(x.dtype)], dim=1)
