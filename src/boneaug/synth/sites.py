"""Where to paint a lesion: sites and sizes drawn from a bone's real lesion statistics.

`lesion_stats.json` (written by `boneaug patches`) lists every real lesion box of the
generator's bone in the train split: its width and height relative to the image, and its
centre relative to the bone region's bounding box, along the bone's long axis and across
it. A site for a new lesion on a target image takes one such real lesion at random and
places a box of the same relative size at the same relative position on the target's
bone; the draw is repeated until the box centre is on bone and most of the box is bone.

Boxes are ``[x0, y0, x1, y1]`` in pixels, ``x1``/``y1`` exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from boneaug.errors import BoneaugError
from boneaug.patches import region_bbox

MIN_BONE_IN_BOX = 0.6   # share of the lesion box that must be bone
TRIES = 50


@dataclass(frozen=True)
class Site:
    """A lesion box and the square crop around it that the generator translates."""

    lesion_box: tuple[int, int, int, int]
    crop_box: tuple[int, int, int, int]
    stat_index: int      # which real lesion the size and position came from
    fallback: bool       # True when the position was a random bone pixel instead
    bone_share: float    # share of the lesion box on bone (>= MIN_BONE_IN_BOX unless no
                         # draw reached it; then the best of all draws)


def usable_stats(stats: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The lesion entries of a lesion_stats.json document that carry size and position."""
    boxes = stats.get("boxes") if isinstance(stats, dict) else None
    if not isinstance(boxes, list):
        raise BoneaugError(f"{source}: lesion statistics have no 'boxes' list")
    usable = [b for b in boxes if isinstance(b, dict)
              and all(_finite(b.get(k)) and 0 < b[k] <= 1 for k in ("width_rel", "height_rel"))]
    if not usable:
        raise BoneaugError(f"{source}: lesion statistics list no lesion box with a size")
    return usable


def draw_site(bone_mask: np.ndarray, stats: list[dict[str, Any]], context: float,
              rng: np.random.Generator, centres: np.ndarray | None = None) -> Site:
    """Draw a lesion site on an image whose bone region is `bone_mask` `(H, W)` bool.

    `centres` (default: `bone_mask`) are the pixels the lesion's centre may take: on a
    joint film without a mask of the bone, where that bone lies
    (`boneaug.patches.where_bone_lies`); the positions of the statistics are read
    relative to its bounding box. The crop is a square of side ``max(w, h) * (1 +
    context)`` around the lesion box (the scale at which the generator saw lesions),
    shifted to lie inside the image.
    """
    height, width = bone_mask.shape
    centres = bone_mask if centres is None else centres
    bbox = region_bbox(centres)
    if bbox is None:
        raise BoneaugError("no bone found in the image")
    rx0, ry0, rx1, ry1 = bbox
    target_vertical = (ry1 - ry0) >= (rx1 - rx0)
    bone_ys, bone_xs = np.nonzero(centres)
    best: Site | None = None
    best_share = -1.0
    for attempt in range(TRIES):
        k = int(rng.integers(len(stats)))
        stat = stats[k]
        w_rel, h_rel = float(stat["width_rel"]), float(stat["height_rel"])
        # A lesion is elongated along its bone: keep that when the target lies the other way.
        if stat.get("long_axis") in ("x", "y") and (stat["long_axis"] == "y") != target_vertical:
            w_rel, h_rel = h_rel, w_rel
        w = float(np.clip(w_rel * width, 4, width))
        h = float(np.clip(h_rel * height, 4, height))
        along, across = stat.get("along"), stat.get("across")
        fallback = attempt >= TRIES // 2 or not (_finite(along) and _finite(across))
        if fallback:  # the real lesion's position does not fit this bone: any bone pixel
            j = int(rng.integers(len(bone_xs)))
            cx, cy = float(bone_xs[j]) + 0.5, float(bone_ys[j]) + 0.5
        else:
            a = float(along) + rng.normal(0, 0.03)
            c = float(across) + rng.normal(0, 0.03)
            if target_vertical:
                cx, cy = rx0 + c * (rx1 - rx0), ry0 + a * (ry1 - ry0)
            else:
                cx, cy = rx0 + a * (rx1 - rx0), ry0 + c * (ry1 - ry0)
        box = _box_inside(cx, cy, w, h, width, height)
        x0, y0, x1, y1 = box
        centre_y, centre_x = min((y0 + y1) // 2, height - 1), min((x0 + x1) // 2, width - 1)
        if not centres[centre_y, centre_x]:
            continue
        share = float(bone_mask[y0:y1, x0:x1].mean())
        site = Site(box, _crop_around(box, context, width, height), k, fallback, share)
        if share >= MIN_BONE_IN_BOX:
            return site
        if share > best_share:
            best, best_share = site, share
    if best is None:
        raise BoneaugError("could not place a lesion on the bone region")
    return best


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _box_inside(cx: float, cy: float, w: float, h: float, width: int, height: int
                ) -> tuple[int, int, int, int]:
    w_i, h_i = max(2, int(round(w))), max(2, int(round(h)))
    x0 = int(np.clip(round(cx - w_i / 2), 0, width - w_i))
    y0 = int(np.clip(round(cy - h_i / 2), 0, height - h_i))
    return x0, y0, x0 + w_i, y0 + h_i


def _crop_around(box: tuple[int, int, int, int], context: float, width: int, height: int
                 ) -> tuple[int, int, int, int]:
    """A square crop containing `box`, of side longest side * (1 + context), in the image."""
    x0, y0, x1, y1 = box
    side = int(round(max(x1 - x0, y1 - y0) * (1.0 + context)))
    side = max(side, x1 - x0, y1 - y0, 8)
    side = min(side, width, height)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    cx0 = int(np.clip(round(cx - side / 2), 0, width - side))
    cy0 = int(np.clip(round(cy - side / 2), 0, height - side))
    # the shift that keeps the crop inside the image never pushes the box out of it:
    cx0 = min(cx0, x0) if x1 - x0 <= side else cx0
    cy0 = min(cy0, y0) if y1 - y0 <= side else cy0
    cx0 = max(cx0, x1 - side)
    cy0 = max(cy0, y1 - side)
    return cx0, cy0, cx0 + side, cy0 + side
