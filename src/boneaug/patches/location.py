"""Where bone B lies in a film that has no mask of B: near where B's real lesions sit in
the most similar films of B.

A joint film shows several bones (a knee film: femur, tibia, fibula, patella), and the
estimated bone region (`region.estimate_bone_region`) is all of them. Without a mask of B,
boneaug places B by example: every real lesion of B in the train split is remembered with
a thumbnail of its film and its centre relative to the film (``lesion_stats.json``). For a
new film, the `k` most similar thumbnails (a film or its mirror image: left and right
limbs) vote with their lesion centres, each weighted by how close it is compared with the
nearest; the votes, smoothed by a Gaussian of `bandwidth` (relative to the film's sides),
form a prior map, and B's region is the estimated bone
region where the prior reaches `support` of its peak. On a knee film, the femur's lesions
of femur-centred knee films vote for the distal femur, not for the tibia below it.

Thumbnails are `THUMB` x `THUMB` (the film squeezed to a square: only coarse layout
matters), with the lesions of lesion films blanked (filled from around them: a film is
alike by its anatomy, not by its lesion), compared after subtracting their mean and
dividing by their spread, so that exposure does not decide similarity.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from boneaug.patches.crop import resize_to

THUMB = 24
SHIFT = 2   # thumbnail pixels a film may be framed off its look-alike


def film_thumbnail(image: np.ndarray, blank: list[list[float]] | None = None) -> np.ndarray:
    """A `(THUMB, THUMB)` uint8 thumbnail of a `(H, W)` film in [0, 1].

    `blank`: lesion boxes ``[x0, y0, x1, y1]`` to fill with the median of a ring around
    them first, so that a lesion film is compared with normal films by its anatomy, not
    by its lesion.
    """
    image = np.asarray(image, np.float32)
    if blank:
        image = image.copy()
        height, width = image.shape
        for x0, y0, x1, y1 in blank:
            bx0, by0 = max(int(x0), 0), max(int(y0), 0)
            bx1, by1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
            pad = max(2, int(0.5 * max(bx1 - bx0, by1 - by0)))
            rx0, ry0 = max(bx0 - pad, 0), max(by0 - pad, 0)
            rx1, ry1 = min(bx1 + pad, width), min(by1 + pad, height)
            ring = image[ry0:ry1, rx0:rx1].copy()
            ring[by0 - ry0:by1 - ry0, bx0 - rx0:bx1 - rx0] = np.nan
            if np.isfinite(ring).any():
                image[by0:by1, bx0:bx1] = float(np.nanmedian(ring))
    small = resize_to(image, THUMB, THUMB)
    return np.round(np.clip(small, 0.0, 1.0) * 255).astype(np.uint8)


def encode_thumbnail(thumb: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(thumb, np.uint8).tobytes()).decode("ascii")


def decode_thumbnail(text: str) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), np.uint8)
    if raw.size != THUMB * THUMB:
        raise ValueError(f"a thumbnail has {THUMB * THUMB} values, got {raw.size}")
    return raw.reshape(THUMB, THUMB)


def _standard(thumbs: np.ndarray) -> np.ndarray:
    x = thumbs.astype(np.float32).reshape(len(thumbs), -1)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.maximum(x.std(axis=1, keepdims=True), 1e-3)


@dataclass
class BoneLocator:
    """B's real lesion films (thumbnails) and where their lesions sit; see the module doc.

    `thumbs` `(N, THUMB, THUMB)` uint8; `centres` `(N, 2)` lesion centres as (x, y)
    fractions of the film's width and height.
    """

    thumbs: np.ndarray
    centres: np.ndarray
    k: int = 5
    bandwidth: float = 0.08
    support: float = 0.3

    def __post_init__(self) -> None:
        self._refs = _standard(self.thumbs).reshape(-1, THUMB, THUMB)
        self._refs_flipped = self._refs[:, :, ::-1]

    @classmethod
    def from_stats(cls, stats: list[dict[str, Any]], **settings: Any) -> BoneLocator | None:
        """A locator from lesion-statistics entries that carry ``thumb`` and
        ``centre_rel``; None when none does (statistics written before they were kept)."""
        thumbs, centres = [], []
        for entry in stats:
            centre, thumb = entry.get("centre_rel"), entry.get("thumb")
            if not (isinstance(thumb, str) and isinstance(centre, list) and len(centre) == 2):
                continue
            try:
                thumbs.append(decode_thumbnail(thumb))
            except ValueError:
                continue
            centres.append([float(centre[0]), float(centre[1])])
        if not thumbs:
            return None
        return cls(np.stack(thumbs), np.asarray(centres, np.float32), **settings)

    def votes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lesion centres `(k, 2)` (relative x, y) of the films most like `image`, and
        their weights `(k,)`: 1 for the nearest, falling with the distance beyond it (a
        film much less alike than the nearest barely votes).

        Films are compared as they are and mirrored, each shifted by up to `SHIFT` thumbnail
        pixels (a film framed a little differently is still alike); a vote moves with the
        shift and the mirror that matched best.
        """
        own = _standard(film_thumbnail(image)[None])[0].reshape(THUMB, THUMB)
        best = np.full(len(self._refs), np.inf, np.float32)
        moved = np.zeros((len(self._refs), 2), np.float32)
        mirrored = np.zeros(len(self._refs), bool)
        inner = slice(SHIFT, THUMB - SHIFT)
        for flip, refs in ((False, self._refs), (True, self._refs_flipped)):
            for dy in range(-SHIFT, SHIFT + 1):
                for dx in range(-SHIFT, SHIFT + 1):
                    # the film seen as the reference moved by (dx, dy): compare the middle
                    shifted = refs[:, inner.start - dy:inner.stop - dy,
                                   inner.start - dx:inner.stop - dx]
                    distance = ((shifted - own[inner, inner]) ** 2).mean(axis=(1, 2))
                    better = distance < best
                    best[better] = distance[better]
                    moved[better] = (dx, dy)
                    mirrored[better] = flip
        nearest = np.argsort(best, kind="stable")[: min(self.k, len(best))]
        centres = self.centres[nearest].copy()
        centres[mirrored[nearest], 0] = 1.0 - centres[mirrored[nearest], 0]
        centres += moved[nearest] / THUMB
        closest = float(best[nearest[0]])
        weights = np.exp(-(best[nearest] - closest) / max(closest, 0.02))
        return centres, weights.astype(np.float32)

    def prior(self, image: np.ndarray) -> np.ndarray:
        """The prior map `(H, W)` in [0, 1] (1 at its peak) of where B is in `image`."""
        height, width = image.shape
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height
        total = np.zeros((height, width), np.float32)
        scale = 2.0 * self.bandwidth ** 2
        centres, weights = self.votes(image)
        for (cx, cy), weight in zip(centres, weights, strict=True):
            total += weight * np.outer(np.exp(-((ys - cy) ** 2) / scale),
                                       np.exp(-((xs - cx) ** 2) / scale))
        peak = float(total.max())
        return total / peak if peak > 0 else total

    def restrict(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        """`region` (bool `(H, W)`) where the prior reaches `support`; may be empty."""
        return region & (self.prior(image) >= self.support)
