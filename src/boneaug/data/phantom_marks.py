"""Collimation, lead side markers and burned-in text of the mixed-phantom films.

Real films carry the room's marks: a collimated field, a lead ``L``/``R`` in a corner,
and text burned in by the modality (the view, the institution, a date). They are drawn
from their own random stream, never over the region of interest (the lesion-bearing part
of the main bone) and, except for the centre's own label and date format, never
depending on anything but the film's view and centre.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from boneaug.data.phantom import marker_patch
from boneaug.data.phantom_style import CentreStyle

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, exclusive


@dataclass
class MarkPlan:
    """Where the marks go: the collimated field and the grey outside it; the lead
    marker (added to attenuation, before exposure) and text patches (burned in after),
    each as (row, col, patch in [0, 1])."""

    field: Box
    outside: float
    marker: tuple[int, int, np.ndarray] | None
    texts: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    text_level: float = 0.92  # burned-in text is white on every film


@lru_cache(maxsize=32)
def _font(pixels: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=pixels)


def text_patch(text: str, pixels: int) -> np.ndarray:
    """`text` rendered `pixels` high: ``(h, w)`` float32 in [0, 1], 1 on the strokes."""
    font = _font(pixels)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), text, font=font)
    canvas = Image.new("L", (max(right - left, 1) + 2, max(bottom - top, 1) + 2), 0)
    ImageDraw.Draw(canvas).text((1 - left, 1 - top), text, font=font, fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _free_spot(h: int, w: int, bounds: Box, taken: list[Box], pad: int,
               order: tuple[int, ...], rng: np.random.Generator) -> tuple[int, int] | None:
    """Top-left (row, col) of an ``h`` x ``w`` box in a corner or edge middle of the
    field, clear of every box in `taken`; corners in `order` are tried first."""
    x0, y0, x1, y1 = bounds
    cols = (x0 + pad, x1 - pad - w, (x0 + x1 - w) / 2)
    rows = (y0 + pad, y1 - pad - h)
    corners = [(rows[r], cols[c]) for r, c in ((0, 0), (0, 1), (1, 0), (1, 1))]
    spots = [corners[i] for i in order] + [c for i, c in enumerate(corners) if i not in order]
    middles = [(rows[0], cols[2]), (rows[1], cols[2])]
    spots += [middles[i] for i in rng.permutation(2)]
    for row, col in spots:
        box = (col, row, col + w, row + h)
        if col < x0 or row < y0 or col + w > x1 or row + h > y1:
            continue
        if all(box[2] <= t[0] or box[0] >= t[2] or box[3] <= t[1] or box[1] >= t[3]
               for t in taken):
            return int(row), int(col)
    return None


def plan_marks(roi: Box, size: int, view: str, mirror: int, style: CentreStyle,
               rng: np.random.Generator, collimation: bool = True) -> MarkPlan:
    """Collimation, side marker and text for one film whose region of interest is `roi`.

    The plan depends on the stream, the view, the side and the centre only, never on
    the label, so marks and text tell nothing about a lesion (unless the metadata do).
    """
    d = rng.random(16)
    bounds = [0.0, 0.0, float(size), float(size)]
    for side in range(4):
        if not collimation or d[side] < 0.5:
            continue
        room = roi[side] if side < 2 else size - roi[side]
        inset = min((0.02 + 0.14 * d[4 + side]) * size, max(room - 0.02 * size, 0.0))
        bounds[side] = inset if side < 2 else size - inset
    field_box = (bounds[0], bounds[1], bounds[2], bounds[3])
    outside = 0.8 + 0.17 * d[8] if d[9] < 0.6 else 0.05 * d[8]
    pad = int(0.02 * size) + 1
    taken: list[Box] = [roi]
    marker = None
    if d[10] < 0.85:
        m = max(9, int(round(size * (0.055 + 0.025 * d[11]))))
        letter = ("R" if mirror > 0 else "L") if d[12] < 0.9 else ("L" if mirror > 0 else "R")
        spot = _free_spot(m, m, field_box, taken, pad, (3, 2), rng)
        if spot is not None:
            marker = (spot[0], spot[1], marker_patch(letter, m, bool(d[13] < 0.5)))
            taken.append((spot[1], spot[0], spot[1] + m, spot[0] + m))
    words = []
    if d[14] < 0.8:
        words.append("AP" if view == "frontal" else "LAT")
    words.append(style.label)
    if d[15] < 0.6:
        day = _dt.date(2008, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 5000)))
        words.append(day.strftime(style.date))
    pixels = max(6, int(round(size * 0.04)))
    plan = MarkPlan(field_box, outside, marker)
    for word in words:
        patch = text_patch(word, pixels)
        spot = _free_spot(patch.shape[0], patch.shape[1], field_box, taken, pad,
                          style.corners, rng)
        if spot is None:
            continue
        plan.texts.append((spot[0], spot[1], patch))
        plan.words.append(word)
        taken.append((spot[1], spot[0], spot[1] + patch.shape[1], spot[0] + patch.shape[0]))
    return plan


def burn_texts(image: np.ndarray, plan: MarkPlan) -> tuple[np.ndarray, np.ndarray]:
    """Burn the plan's text into `image` (a copy); the image and the text's pixel mask."""
    out = image.copy()
    covered = np.zeros(image.shape, bool)
    for row, col, patch in plan.texts:
        h, w = patch.shape
        tile = out[row:row + h, col:col + w]
        out[row:row + h, col:col + w] = tile * (1.0 - patch) + plan.text_level * patch
        covered[row:row + h, col:col + w] |= patch > 0.25
    return out, covered
