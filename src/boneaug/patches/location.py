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
of femur-centred knee films vote for the distal femur, not for the tibia below it. A film
like none of B's lesion films (its nearest one further off than `unlike` times their own
typical spacing) gets no region: B is not placed where boneaug cannot tell where it is.

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


def blank_boxes(image: np.ndarray, boxes: list[list[float]]) -> np.ndarray:
    """A copy of `image` `(H, W)` with each box ``[x0, y0, x1, y1]`` filled with the median
    of a ring around it: the film without its lesions, as far as coarse anatomy goes."""
    image = np.array(image, np.float32, copy=True)
    height, width = image.shape
    for x0, y0, x1, y1 in boxes:
        bx0, by0 = max(int(x0), 0), max(int(y0), 0)
        bx1, by1 = min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height)
        pad = max(2, int(0.5 * max(bx1 - bx0, by1 - by0)))
        rx0, ry0 = max(bx0 - pad, 0), max(by0 - pad, 0)
        rx1, ry1 = min(bx1 + pad, width), min(by1 + pad, height)
        ring = image[ry0:ry1, rx0:rx1].copy()
        ring[by0 - ry0:by1 - ry0, bx0 - rx0:bx1 - rx0] = np.nan
        if np.isfinite(ring).any():
            image[by0:by1, bx0:bx1] = float(np.nanmedian(ring))
    return image


def film_thumbnail(image: np.ndarray, blank: list[list[float]] | None = None) -> np.ndarray:
    """A `(THUMB, THUMB)` uint8 thumbnail of a `(H, W)` film in [0, 1].

    `blank`: lesion boxes to fill first (`blank_boxes`), so that a lesion film is compared
    with normal films by its anatomy, not by its lesion.
    """
    image = blank_boxes(image, blank) if blank else np.asarray(image, np.float32)
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


def _shifted_distances(films: np.ndarray, refs: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean squared distances `(F, R)` between standardised thumbnails `films` `(F, T, T)`
    and `refs` `(R, T, T)`, each pair at the best of the reference as it is or mirrored
    and moved by up to `SHIFT` pixels; with that move `(F, R, 2)` (dx, dy) and whether the
    mirror matched `(F, R)`. Only the middle of a film is compared, so every move sees
    the same pixels."""
    inner = slice(SHIFT, THUMB - SHIFT)
    middle = films[:, inner, inner].reshape(len(films), -1)
    size = middle.shape[1]
    best = np.full((len(films), len(refs)), np.inf, np.float32)
    moved = np.zeros((len(films), len(refs), 2), np.float32)
    mirrored = np.zeros((len(films), len(refs)), bool)
    for flip in (False, True):
        source = refs[:, :, ::-1] if flip else refs
        for dy in range(-SHIFT, SHIFT + 1):
            for dx in range(-SHIFT, SHIFT + 1):
                # the reference moved by (dx, dy): its pixel (y - dy, x - dx) lands on (y, x)
                shifted = source[:, inner.start - dy:inner.stop - dy,
                                 inner.start - dx:inner.stop - dx].reshape(len(refs), -1)
                distance = ((middle ** 2).sum(1)[:, None] + (shifted ** 2).sum(1)[None, :]
                            - 2.0 * middle @ shifted.T) / size
                better = distance < best
                best[better] = distance[better]
                moved[better] = (dx, dy)
                mirrored[better] = flip
    return np.maximum(best, 0.0), moved, mirrored


@dataclass
class BoneLocator:
    """B's real lesion films (thumbnails) and where their lesions sit; see the module doc.

    `thumbs` `(N, THUMB, THUMB)` uint8; `centres` `(N, 2)` lesion centres as (x, y)
    fractions of the film's width and height. A film whose nearest reference is further
    than `unlike` times the reference films' own typical nearest-neighbour distance looks
    like none of B's lesion films: B is not located in it (an assignment error, or a film
    of a kind B's lesions never came on).
    """

    thumbs: np.ndarray
    centres: np.ndarray
    k: int = 5
    bandwidth: float = 0.08
    support: float = 0.3
    unlike: float = 3.0

    def __post_init__(self) -> None:
        self._refs = _standard(self.thumbs).reshape(-1, THUMB, THUMB)
        self.typical = float("nan")
        if len(self._refs) >= 3:
            among, _, _ = _shifted_distances(self._refs, self._refs)
            np.fill_diagonal(among, np.inf)
            self.typical = float(np.median(among.min(axis=1)))

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

    def votes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The lesion centres `(k, 2)` (relative x, y) of the films most like `image`,
        their weights `(k,)` (1 for the nearest, falling with the distance beyond it: a
        film much less alike than the nearest barely votes), and the nearest distance.

        Films are compared as they are and mirrored, each moved by up to `SHIFT` thumbnail
        pixels (a film framed a little differently is still alike); a vote moves with the
        mirror and the shift that matched best.
        """
        own = _standard(film_thumbnail(image)[None]).reshape(1, THUMB, THUMB)
        best, moved, mirrored = (a[0] for a in _shifted_distances(own, self._refs))
        nearest = np.argsort(best, kind="stable")[: min(self.k, len(best))]
        centres = self.centres[nearest].copy()
        centres[mirrored[nearest], 0] = 1.0 - centres[mirrored[nearest], 0]
        centres += moved[nearest] / THUMB
        closest = float(best[nearest[0]])
        weights = np.exp(-(best[nearest] - closest) / max(closest, 0.02))
        return centres, weights.astype(np.float32), closest

    def is_unlike(self, closest: float) -> bool:
        return bool(np.isfinite(self.typical)) and closest > self.unlike * max(self.typical,
                                                                              0.02)

    def prior(self, image: np.ndarray) -> np.ndarray:
        """The prior map `(H, W)` in [0, 1] (1 at its peak) of where B is in `image`; all
        zero when the film is like none of B's lesion films."""
        height, width = image.shape
        centres, weights, closest = self.votes(image)
        total = np.zeros((height, width), np.float32)
        if self.is_unlike(closest):
            return total
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height
        scale = 2.0 * self.bandwidth ** 2
        for (cx, cy), weight in zip(centres, weights, strict=True):
            total += weight * np.outer(np.exp(-((ys - cy) ** 2) / scale),
                                       np.exp(-((xs - cx) ** 2) / scale))
        peak = float(total.max())
        return total / peak if peak > 0 else total

    def restrict(self, image: np.ndarray, region: np.ndarray) -> np.ndarray:
        """`region` (bool `(H, W)`) where the prior reaches `support`; may be empty."""
        return region & (self.prior(image) >= self.support)
