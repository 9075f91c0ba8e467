"""Shortcut probes: can the classes of a bone be told apart without seeing a lesion?

A comparison of augmentation strategies on whole films is only about lesions if a
classifier that cannot see the lesion does no better than chance. The probes measure that:

- the **lesion-blind image probe** in-paints every lesion box of the positive films
  (`inpaint_boxes`) and, so that a blank is no cue either, the same number of boxes at the
  same relative site and size in every negative film (`decoy_boxes`); it then fits a
  linear classifier on a small thumbnail of each blanked film (`film_features`) with
  patient-grouped cross-validation (`grouped_cv_scores`) and reports the pooled
  out-of-fold ROC AUC with a bootstrap interval;
- the **metadata probe** does the same on the metadata a manifest carries (age, sex,
  centre, view; `metadata_features`).

An AUC near 0.5 says the films (or the metadata) hold no shortcut that such a classifier
can find; an AUC above `WARN_AUC` says a comparison can be won without seeing a lesion
(`ProbeResult.warning`). A low probe AUC is no proof that no shortcut exists: a stronger
classifier might find one that a 16 x 16 thumbnail hides.

Images are ``(H, W)`` float32 in ``[0, 1]``; boxes are ``[x0, y0, x1, y1]`` in pixels, as
in the manifest's ``boxes`` column. Only numpy, scipy and pandas: scikit-learn is not a
dependency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy.optimize import minimize
from scipy.special import expit

from boneaug.classify.metrics import bootstrap_ci, roc_auc
from boneaug.data import Manifest, read_image
from boneaug.data.manifest import parse_boxes
from boneaug.data.skips import film_problem
from boneaug.errors import BoneaugError

WARN_AUC = 0.6   # above this the report warns plainly


def undecided(auc: float, ci_low: float) -> bool:
    """A lesion-blind AUC above `WARN_AUC` whose 95 % interval still holds 0.5: too few
    films to show a shortcut, or to rule one out."""
    return auc > WARN_AUC and ci_low <= 0.5


def warn_text(auc: float) -> str:
    """An AUC for a sentence that compares it with `WARN_AUC`: two decimals, three where
    two would print the line itself ("0.600 (> 0.6)", not "0.60 (> 0.6)")."""
    text = f"{auc:.2f}"
    return f"{auc:.3f}" if float(text) == WARN_AUC else text

# Annotators draw tight boxes, and a lesion's rim (sclerosis, reactive bone, blur) reaches
# past them: the blank is grown by this share of the box's longer side on every side (at
# least _GROW px), so that no rim survives around it. Measured on region-level probes of
# the BTXRD-layout phantom: 2 px left a rim worth about 0.07 AUC.
_GROW = 2
_GROW_SHARE = 0.15
# Each border line of a blank is the mean of this many pixels outside the box, so that the
# noise of one row is not printed across the whole fill.
_BAND = 3

# Metadata columns the probe knows, by kind; each tuple is one fact under its spellings,
# and only the first spelling a table fills is used (sex and gender are one column).
_NUMERIC = (("age",),)
_CATEGORICAL = (("sex", "gender"), ("center", "centre"), ("view",))
_MISSING = "missing"
_AGE_UNITS = {"y": 1.0, "m": 1.0 / 12.0, "w": 1.0 / 52.0, "d": 1.0 / 365.0}  # DICOM "045Y"
_AGE_BAND = 10.0   # years per one-hot age band


# --------------------------------------------------------------------------- blanking


def _pixel_box(box: Sequence[float], height: int, width: int, grow: int
               ) -> tuple[int, int, int, int] | None:
    """``(r0, r1, c0, c1)`` (ends exclusive) of the pixels a box touches, grown by `grow` px
    or `_GROW_SHARE` of its longer side, whichever is more, and clipped; None for a box
    that misses the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > 0 and y1 > 0 and x0 < width and y0 < height):
        return None
    grow = max(grow, math.ceil(_GROW_SHARE * max(x1 - x0, y1 - y0)))
    c0, c1 = max(math.floor(x0) - grow, 0), min(math.ceil(x1) + grow, width)
    r0, r1 = max(math.floor(y0) - grow, 0), min(math.ceil(y1) + grow, height)
    if c1 <= c0 or r1 <= r0:
        return None
    return r0, r1, c0, c1


def _border_line(band: np.ndarray, pending: np.ndarray) -> np.ndarray | None:
    """The mean over axis 0 of a ``(depth, length)`` band of surroundings, shape
    ``(length,)``; pixels still `pending` (inside a box not yet blanked) do not count, and
    the gaps they leave are interpolated along the line. None when nothing is left."""
    if band.shape[0] == 0:
        return None
    usable = ~pending
    count = usable.sum(axis=0)
    if not count.any():
        return None
    line = np.where(usable, band, 0.0).sum(axis=0) / np.maximum(count, 1)
    if not count.all():
        known = np.flatnonzero(count)
        line = np.interp(np.arange(line.shape[0]), known, line[known])
    return line


def _blend(first: np.ndarray | None, first_at: float, second: np.ndarray | None,
           second_at: float, at: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The estimate between two parallel border lines at positions `at`, and its weight.

    Linear interpolation between the lines (constant extension when one is missing), so a
    linear gradient of the surroundings is reproduced exactly; the weight is the sum of
    inverse squared distances to the lines present, so the line nearest to a pixel
    dominates it and the fill meets the surroundings without a step. `at` is a column
    ``(n, 1)`` or a row ``(1, n)``; the lines broadcast along the other axis.
    """
    if first is None and second is None:
        return None
    if first is not None and second is not None:
        t = (at - first_at) / (second_at - first_at)
        value = (1.0 - t) * first + t * second
        weight = 1.0 / (at - first_at) ** 2 + 1.0 / (second_at - at) ** 2
    elif first is not None:
        value, weight = first + 0.0 * at, 1.0 / (at - first_at) ** 2
    else:
        assert second is not None
        value, weight = second + 0.0 * at, 1.0 / (second_at - at) ** 2
    return value, weight


def _fill_box(out: np.ndarray, pending: np.ndarray, r0: int, r1: int, c0: int, c1: int
              ) -> None:
    """In-paint ``out[r0:r1, c0:c1]`` in place from the bands of surroundings around it."""
    height, width = out.shape
    top, bottom = max(r0 - _BAND, 0), min(r1 + _BAND, height)
    left, right = max(c0 - _BAND, 0), min(c1 + _BAND, width)
    lines = (  # (values, position of the band's centre line)
        (_border_line(out[top:r0, c0:c1], pending[top:r0, c0:c1]), (top + r0 - 1) / 2.0),
        (_border_line(out[r1:bottom, c0:c1], pending[r1:bottom, c0:c1]),
         (r1 + bottom - 1) / 2.0),
        (_border_line(out[r0:r1, left:c0].T, pending[r0:r1, left:c0].T),
         (left + c0 - 1) / 2.0),
        (_border_line(out[r0:r1, c1:right].T, pending[r0:r1, c1:right].T),
         (c1 + right - 1) / 2.0),
    )
    (t_line, t_at), (b_line, b_at), (l_line, l_at), (r_line, r_at) = lines
    rows = np.arange(r0, r1, dtype=np.float64)[:, None]
    cols = np.arange(c0, c1, dtype=np.float64)[None, :]
    vertical = _blend(None if t_line is None else t_line[None, :], t_at,
                      None if b_line is None else b_line[None, :], b_at, rows)
    horizontal = _blend(None if l_line is None else l_line[:, None], l_at,
                        None if r_line is None else r_line[:, None], r_at, cols)
    estimates = [e for e in (vertical, horizontal) if e is not None]
    if not estimates:  # no surroundings at all: any constant hides the lesion equally well
        known = out[~pending]
        out[r0:r1, c0:c1] = float(known.mean()) if known.size else 0.5
        return
    total = sum(w * v for v, w in estimates)
    weight = sum(w for _, w in estimates)
    out[r0:r1, c0:c1] = total / weight


def inpaint_boxes(image: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """A copy of `image` with every box replaced by a smooth fill from its surroundings.

    image: ``(H, W)`` float in ``[0, 1]``. boxes: ``[x0, y0, x1, y1]`` in pixels; each is
    clipped to the image and grown by 15 % of its longer side, at least 2 px (a box that
    misses the image is ignored).
    Returns ``(H, W)`` float32, equal to `image` outside the grown boxes.

    The fill is a transfinite interpolation of the box's four border lines, each the mean
    of a 3 px band just outside the box: inside, every pixel blends the linear
    interpolation between the top and bottom lines with that between the left and right
    lines, weighted by inverse squared distance to them. It reproduces a linear gradient
    of the surroundings exactly, meets them without a step, and holds nothing of what was
    inside the box. A side on the image's edge has no line and the others carry the fill.
    Pixels inside another box not yet filled never feed a border line, so one lesion does
    not leak into the blank of its neighbour.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise BoneaugError(f"inpaint_boxes: expected a non-empty (H, W) image, got shape "
                           f"{image.shape}")
    out = image.astype(np.float32, copy=True)
    height, width = out.shape
    spans = [s for s in (_pixel_box(b, height, width, _GROW) for b in boxes) if s is not None]
    if not spans:
        return out
    # How many boxes not yet filled cover each pixel: overlapping boxes stay hidden until
    # the last of them is filled.
    pending_count = np.zeros(out.shape, np.int32)
    for r0, r1, c0, c1 in spans:
        pending_count[r0:r1, c0:c1] += 1
    work = out.astype(np.float64)
    for r0, r1, c0, c1 in spans:
        _fill_box(work, pending_count > 0, r0, r1, c0, c1)
        pending_count[r0:r1, c0:c1] -= 1
    return work.astype(np.float32)


def decoy_boxes(reference_boxes: Sequence[Sequence[Sequence[float]]],
                shapes: Sequence[tuple[int, int]], shape: tuple[int, int],
                rng: np.random.Generator) -> list[list[float]]:
    """Lesion-like blanks for a negative film of ``shape = (H, W)``.

    reference_boxes[k] are the boxes of positive film k, whose shape is ``shapes[k]``
    ``(H_k, W_k)``. One positive film with boxes is drawn with `rng`, and its boxes are
    returned at the same relative position and size in this film, so that negatives get
    blanks of the number, size and site that positives get and a blank is no cue.
    Returns ``[]`` when no positive film has a box (nothing to imitate).
    """
    if len(reference_boxes) != len(shapes):
        raise BoneaugError(f"decoy_boxes: {len(reference_boxes)} box lists but "
                           f"{len(shapes)} shapes")
    candidates = [k for k, boxes in enumerate(reference_boxes) if len(boxes)]
    if not candidates:
        return []
    k = candidates[int(rng.integers(len(candidates)))]
    ref_h, ref_w = shapes[k]
    sy, sx = shape[0] / ref_h, shape[1] / ref_w
    return [[float(x0) * sx, float(y0) * sy, float(x1) * sx, float(y1) * sy]
            for x0, y0, x1, y1 in reference_boxes[k]]


# --------------------------------------------------------------------------- features


def film_features(image: np.ndarray, side: int = 16) -> np.ndarray:
    """The whole film as a ``(side * side,)`` float32 vector: its ``(side, side)``
    area-average thumbnail (aspect ratio ignored), row by row.

    Area averaging (not a sharper filter) is the point: the probe should see exposure,
    anatomy and layout, the things a shortcut is made of, and no fine texture.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise BoneaugError(f"film_features: expected a non-empty (H, W) image, got shape "
                           f"{image.shape}")
    if side < 1:
        raise BoneaugError(f"film_features: side must be at least 1, got {side}")
    thumb = Image.fromarray(np.ascontiguousarray(image)).resize(
        (side, side), Image.Resampling.BOX)
    return np.asarray(thumb, dtype=np.float32).reshape(-1)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return not str(value).strip()


def _age_years(value: Any) -> float:
    """An age in years from ``45``, ``"45"``, ``"45.5"`` or DICOM ``"045Y"``/``"006M"``;
    NaN when blank or unreadable."""
    if _blank(value):
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([ymwdYMWD]?)\s*", str(value))
    if match is None:
        return math.nan
    return float(match.group(1)) * _AGE_UNITS.get(match.group(2).lower(), 1.0)


def _age_block(values: pd.Series) -> np.ndarray:
    """``(n, 1 + bands)``: standardised age (missing -> 0, the mean) and one-hot 10-year
    bands plus a missing band; the bands let a linear model use a non-linear age effect."""
    years = np.array([_age_years(v) for v in values], dtype=np.float64)
    known = np.isfinite(years)
    z = np.zeros_like(years)
    if known.any():
        sd = years[known].std()
        z[known] = (years[known] - years[known].mean()) / (sd if sd > 0 else 1.0)
    bands = pd.Series([f"{int(y // _AGE_BAND) * int(_AGE_BAND)}" if k else _MISSING
                       for y, k in zip(years, known, strict=True)])
    return np.column_stack([z, _one_hot(bands)])


def _one_hot(values: pd.Series) -> np.ndarray:
    """``(n, levels)`` indicators; blank values are their own level, text is compared
    case- and space-insensitively (``"Male"`` and ``" male"`` are one level)."""
    text = [_MISSING if _blank(v) else str(v).strip().lower() for v in values]
    codes, levels = pd.factorize(pd.Series(text, dtype=object), sort=True)
    out = np.zeros((len(text), len(levels)), dtype=np.float64)
    out[np.arange(len(text)), codes] = 1.0
    return out


def _known_columns(table: pd.DataFrame) -> list[str]:
    """The table's known metadata columns that hold at least one non-empty value."""
    by_lower = {str(c).strip().lower(): c for c in table.columns}
    found = []
    for spellings in _NUMERIC + _CATEGORICAL:
        for name in spellings:
            column = by_lower.get(name)
            if column is not None and not all(_blank(v) for v in table[column]):
                found.append(str(column))
                break
    return found


def metadata_features(table: pd.DataFrame, columns: list[str] | None = None
                      ) -> tuple[np.ndarray, list[str]]:
    """The design matrix ``(n_rows, n_features)`` float64 of a table's metadata.

    ``age`` (any case; numbers, or DICOM age strings such as ``"045Y"``) gives its
    standardised value and one-hot 10-year bands; ``sex``/``gender``, ``center``/``centre``
    and ``view`` give one-hot levels. Blank values are a level of their own (``missing``),
    never dropped rows. `columns` None uses every known column with at least one non-empty
    value; a given list is used as is (``age`` numeric, anything else categorical).
    Returns ``(X, columns used)``; X has 0 columns when there are none.
    """
    if columns is None:
        columns = _known_columns(table)
    else:
        absent = [c for c in columns if c not in table.columns]
        if absent:
            raise BoneaugError(f"metadata_features: no column {absent[0]!r} in the table "
                               f"(it has {', '.join(map(str, table.columns))})")
    blocks = [_age_block(table[c]) if str(c).strip().lower() == "age" else _one_hot(table[c])
              for c in columns]
    if not blocks:
        return np.zeros((len(table), 0), dtype=np.float64), []
    return np.column_stack(blocks), list(columns)


# --------------------------------------------------------------------------- classifier


def _group_codes(groups: Any, n: int) -> np.ndarray:
    codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object).reshape(-1)))
    if codes.shape[0] != n:
        raise BoneaugError(f"grouped_cv_scores: {codes.shape[0]} groups for {n} items")
    return codes


def _class_groups(y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (indexed by code): does it hold a positive, does it hold a negative."""
    n_groups = int(codes.max()) + 1 if codes.size else 0
    has_pos = np.bincount(codes, weights=(y == 1), minlength=n_groups) > 0
    has_neg = np.bincount(codes, weights=(y == 0), minlength=n_groups) > 0
    return has_pos, has_neg


def _fold_count(y: np.ndarray, codes: np.ndarray, folds: int) -> int:
    """``min(folds, groups holding a positive, groups holding a negative)``; a
    BoneaugError when either class lives in fewer than 2 groups (no fold could be held
    out with the class still in training)."""
    has_pos, has_neg = _class_groups(y, codes)
    n_pos, n_neg = int(has_pos.sum()), int(has_neg.sum())
    if n_pos < 2 or n_neg < 2:
        raise BoneaugError(f"grouped cross-validation needs positives and negatives in at "
                           f"least 2 groups each; positives are in {n_pos}, negatives in "
                           f"{n_neg}")
    return max(2, min(int(folds), n_pos, n_neg))


def _assign_folds(y: np.ndarray, codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold ``(n,)`` int of every item: whole groups go to one fold, and every fold
    gets groups of both classes as far as the groups allow.

    Groups are taken in a seeded random order, those holding both classes first, then
    those holding positives only, then negatives only; each goes to the fold with fewest
    groups of its class(es) so far (ties: fewest items of its class, then lowest fold). A
    fold without a class is therefore always filled first, so with at least `folds`
    groups per class every fold, and every training set, holds both classes.
    """
    has_pos, has_neg = _class_groups(y, codes)
    n_groups = has_pos.shape[0]
    pos_items = np.bincount(codes, weights=(y == 1), minlength=n_groups)
    neg_items = np.bincount(codes, weights=(y == 0), minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    kind = np.where(has_pos & has_neg, 0, np.where(has_pos, 1, 2))[order]
    order = order[np.argsort(kind, kind="stable")]
    fold_pos_groups = np.zeros(folds)
    fold_neg_groups = np.zeros(folds)
    fold_pos_items = np.zeros(folds)
    fold_neg_items = np.zeros(folds)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        groups_held = fold_pos_groups * has_pos[g] + fold_neg_groups * has_neg[g]
        items_held = fold_pos_items * has_pos[g] + fold_neg_items * has_neg[g]
        f = int(np.lexsort((np.arange(folds), items_held, groups_held))[0])
        fold_of_group[g] = f
        fold_pos_groups[f] += has_pos[g]
        fold_neg_groups[f] += has_neg[g]
        fold_pos_items[f] += pos_items[g]
        fold_neg_items[f] += neg_items[g]
    return fold_of_group[codes]


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights ``(p,)`` and intercept of an L2 logistic regression of ``y (n,)`` on
    ``x (n, p)``: minimises the mean log-loss plus ``l2 / (2 n) * ||w||^2`` (the
    intercept is not penalised) with L-BFGS-B."""
    n, p = x.shape
    penalty = l2 / n

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:p], theta[p]
        z = x @ w + b
        # log(1 + e^z) - y z, written so that large |z| neither overflows nor cancels
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * penalty * (w @ w))
        residual = (expit(z) - y) / n
        grad = np.concatenate([x.T @ residual + penalty * w, [residual.sum()]])
        return loss, grad

    fit = minimize(objective, np.zeros(p + 1), jac=True, method="L-BFGS-B",
                   options={"maxiter": 1000})
    return fit.x[:p], float(fit.x[p])


def grouped_cv_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                      seed: int = 0, l2: float = 1.0) -> np.ndarray:
    """Out-of-fold scores ``(n,)`` (log-odds, higher = lesion) of an L2 logistic regression.

    x: ``(n, p)`` features; y: ``(n,)`` labels in {0, 1}; groups: ``(n,)`` any hashable ids
    (patients). Folds never split a group and are stratified as far as groups allow
    (`_assign_folds`); their number is ``min(folds, groups with a positive, groups with a
    negative)``, at least 2. Features are standardised on the training folds. The same
    inputs and `seed` give the same scores.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise BoneaugError(f"grouped_cv_scores: expected x (n, p) and y (n,), got shapes "
                           f"{x.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise BoneaugError(f"grouped_cv_scores: labels must be 0 or 1, got {np.unique(y)[:5]}")
    if not np.isfinite(x).all():
        raise BoneaugError("grouped_cv_scores: features must be finite")
    if l2 <= 0:
        raise BoneaugError(f"grouped_cv_scores: l2 must be positive, got {l2}")
    y = y.astype(np.float64)
    codes = _group_codes(groups, y.shape[0])
    k = _fold_count(y, codes, folds)
    fold = _assign_folds(y, codes, k, seed)
    scores = np.zeros(y.shape[0], dtype=np.float64)
    for f in range(k):
        test, train = fold == f, fold != f
        mean = x[train].mean(axis=0)
        sd = x[train].std(axis=0)
        sd[sd < 1e-12] = 1.0  # a constant feature carries nothing; keep it at 0
        w, b = _fit_logistic((x[train] - mean) / sd, y[train], l2)
        scores[test] = ((x[test] - mean) / sd) @ w + b
    return scores


# --------------------------------------------------------------------------- result


@dataclass
class ProbeResult:
    """One probe of one bone: the lesion-blind AUC and the metadata AUC, out of fold."""

    bone: str
    level: str                 # "image" or "region"
    when: str                  # free text from the caller, e.g. "after matching" or ""
    n_pos: int
    n_neg: int
    auc: float                 # lesion-blind probe, pooled out-of-fold ROC AUC in [0, 1]
    ci: tuple[float, float]    # its 95 % stratified bootstrap interval
    metadata_auc: float | None  # None when no metadata column
    metadata_ci: tuple[float, float] | None
    metadata_columns: list[str]
    folds: int
    skipped: int = 0           # films left out: unreadable, or a positive without boxes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (floats, ints, strings, lists, None)."""
        return {
            "bone": self.bone, "level": self.level, "when": self.when,
            "n_pos": int(self.n_pos), "n_neg": int(self.n_neg),
            "auc": float(self.auc), "ci": [float(v) for v in self.ci],
            "metadata_auc": None if self.metadata_auc is None else float(self.metadata_auc),
            "metadata_ci": (None if self.metadata_ci is None
                            else [float(v) for v in self.metadata_ci]),
            "metadata_columns": [str(c) for c in self.metadata_columns],
            "folds": int(self.folds), "skipped": int(self.skipped),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        """The inverse of `to_dict`; ``skipped`` may be absent (older files)."""
        meta_ci = d.get("metadata_ci")
        meta_auc = d.get("metadata_auc")
        lo, hi = d["ci"]
        return cls(
            bone=str(d["bone"]), level=str(d["level"]), when=str(d.get("when") or ""),
            n_pos=int(d["n_pos"]), n_neg=int(d["n_neg"]), auc=float(d["auc"]),
            ci=(float(lo), float(hi)),
            metadata_auc=None if meta_auc is None else float(meta_auc),
            metadata_ci=None if meta_ci is None else (float(meta_ci[0]), float(meta_ci[1])),
            metadata_columns=[str(c) for c in d.get("metadata_columns") or []],
            folds=int(d.get("folds", 0)), skipped=int(d.get("skipped", 0)),
        )

    @property
    def warning(self) -> str:
        """``""`` when both AUCs are at most `WARN_AUC`, else one plain sentence per AUC
        above it (joined by a newline). A lesion-blind AUC above the line whose 95 % interval
        still holds 0.5 is reported as undecided, not as a shortcut."""
        where = f"{self.bone} ({self.level} level{', ' + self.when if self.when else ''})"
        what = "lesion regions from healthy regions" if self.level == "region" else \
            "lesion films from normal films"
        lines = []
        if undecided(self.auc, self.ci[0]):
            lines.append(f"{where}: a lesion-blind classifier reaches AUC {warn_text(self.auc)} "
                         f"[{self.ci[0]:.2f}, {self.ci[1]:.2f}] on {what} (> {WARN_AUC}, but "
                         "the interval holds 0.5): too few films to rule a shortcut in or "
                         "out.")
        elif self.auc > WARN_AUC:
            lines.append(f"{where}: a lesion-blind classifier separates {what} at AUC "
                         f"{warn_text(self.auc)} (> {WARN_AUC}): the comparison can be won without "
                         "seeing a lesion.")
        if self.metadata_auc is not None and self.metadata_auc > WARN_AUC:
            lines.append(f"{where}: the metadata alone ({', '.join(self.metadata_columns)}) "
                         f"separate {what} at AUC {warn_text(self.metadata_auc)} (> {WARN_AUC}): "
                         "the classes come from different kinds of patient or film.")
        return "\n".join(lines)


# --------------------------------------------------------------------------- probes


def _film(image: Any) -> np.ndarray:
    """A ``(H, W)`` float32 view of an image, also from a ``(1, H, W)`` channel-first one."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.size == 0:
        raise BoneaugError(f"probe: expected (H, W) images, got shape {array.shape}")
    return array


def _box_list(item: Any) -> list[list[float]]:
    """One item's boxes as a list of ``[x0, y0, x1, y1]``: a list of boxes, or a single
    flat box (as `boneaug.classify.regions.RegionSet.boxes` holds), or empty."""
    values = list(item) if item is not None else []
    if len(values) == 4 and all(np.ndim(v) == 0 for v in values):
        return [[float(v) for v in values]]
    return [[float(v) for v in box] for box in values]


def _check_counts(y: np.ndarray, groups: Sequence[Any], bone: str, level: str) -> None:
    codes = _group_codes(groups, y.shape[0])
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    has_pos, has_neg = _class_groups(y, codes)
    if n_pos < 2 or n_neg < 2 or has_pos.sum() < 2 or has_neg.sum() < 2:
        raise BoneaugError(
            f"{bone} ({level} level) shortcut probe: needs at least 2 lesion and 2 normal "
            f"items from at least 2 patients each; has {n_pos} lesion items from "
            f"{int(has_pos.sum())} patients and {n_neg} normal from {int(has_neg.sum())}")


class _Blinder:
    """Collects lesion-blind features: positives first (their boxes are the decoys'
    templates), then negatives with decoys drawn from them in the order given."""

    def __init__(self, side: int, seed: int) -> None:
        self.side = side
        self.rng = np.random.default_rng(seed)
        self.templates: list[list[list[float]]] = []
        self.shapes: list[tuple[int, int]] = []
        self.features: list[np.ndarray] = []

    def positive(self, image: np.ndarray, boxes: list[list[float]]) -> None:
        self.templates.append(boxes)
        self.shapes.append((image.shape[0], image.shape[1]))
        self.features.append(film_features(inpaint_boxes(image, boxes), self.side))

    def negative(self, image: np.ndarray) -> None:
        decoys = decoy_boxes(self.templates, self.shapes, (image.shape[0], image.shape[1]),
                             self.rng)
        self.features.append(film_features(inpaint_boxes(image, decoys), self.side))


def _probe(x: np.ndarray, y: np.ndarray, groups: list[Any], metadata: pd.DataFrame | None,
           *, bone: str, level: str, when: str, folds: int, seed: int, n_boot: int,
           skipped: int) -> ProbeResult:
    """Both probes on ready features ``x (n, p)``, labels ``y (n,)`` and ``groups (n,)``."""
    _check_counts(y, groups, bone, level)
    codes = _group_codes(groups, y.shape[0])
    scores = grouped_cv_scores(x, y, codes, folds=folds, seed=seed)
    auc = roc_auc(y, scores)
    ci = bootstrap_ci(y, scores, roc_auc, n_boot=n_boot, seed=seed)
    meta_auc: float | None = None
    meta_ci: tuple[float, float] | None = None
    meta_x, meta_columns = (metadata_features(metadata) if metadata is not None
                            else (np.zeros((y.shape[0], 0)), []))
    if meta_columns:
        meta_scores = grouped_cv_scores(meta_x, y, codes, folds=folds, seed=seed)
        meta_auc = roc_auc(y, meta_scores)
        meta_ci = bootstrap_ci(y, meta_scores, roc_auc, n_boot=n_boot, seed=seed)
    return ProbeResult(bone=bone, level=level, when=when, n_pos=int((y == 1).sum()),
                       n_neg=int((y == 0).sum()), auc=auc, ci=ci, metadata_auc=meta_auc,
                       metadata_ci=meta_ci, metadata_columns=meta_columns,
                       folds=_fold_count(y, codes, folds), skipped=skipped)


def probe_arrays(images: Sequence[np.ndarray], labels: np.ndarray,
                 boxes: Sequence[Sequence[Sequence[float]]], groups: np.ndarray, *,
                 bone: str, level: str = "image", when: str = "",
                 metadata: pd.DataFrame | None = None, side: int = 16, folds: int = 5,
                 seed: int = 0, n_boot: int = 1000) -> ProbeResult:
    """The lesion-blind probe (and the metadata probe) on images in memory.

    images: ``(H, W)`` (or ``(1, H, W)``) float arrays in ``[0, 1]``, sizes may differ;
    labels ``(n,)`` in {0, 1}; boxes[i] the lesion boxes of a positive, a list of
    ``[x0, y0, x1, y1]`` or one such box (ignored for a negative, which gets decoys from
    the positives' boxes); groups ``(n,)`` patient ids;
    metadata: a table with one row per image, in the same order, or None. A positive
    without boxes cannot be made lesion-blind and is left out (counted in ``skipped``).
    Raises BoneaugError when fewer than 2 positives or 2 negatives in 2 groups each remain.
    """
    y_all = np.asarray(labels).reshape(-1)
    group_list = list(np.asarray(groups, dtype=object).reshape(-1))
    n = len(images)
    if not (y_all.shape[0] == len(boxes) == len(group_list) == n):
        raise BoneaugError(f"{bone} ({level} level) shortcut probe: {n} images, "
                           f"{y_all.shape[0]} labels, {len(boxes)} box lists and "
                           f"{len(group_list)} groups differ in number")
    if metadata is not None and len(metadata) != n:
        raise BoneaugError(f"{bone} ({level} level) shortcut probe: {len(metadata)} metadata "
                           f"rows for {n} images")
    if not np.isin(y_all, (0, 1)).all():
        raise BoneaugError(f"{bone} ({level} level) shortcut probe: labels must be 0 or 1")
    box_lists = [_box_list(b) for b in boxes]
    positives = [i for i in range(n) if y_all[i] == 1 and box_lists[i]]
    negatives = [i for i in range(n) if y_all[i] == 0]
    blinder = _Blinder(side, seed)
    for i in positives:
        blinder.positive(_film(images[i]), box_lists[i])
    for i in negatives:
        blinder.negative(_film(images[i]))
    kept = positives + negatives
    return _probe(np.stack(blinder.features) if kept else np.zeros((0, side * side)),
                  y_all[kept].astype(np.int64), [group_list[i] for i in kept],
                  None if metadata is None else metadata.iloc[kept].reset_index(drop=True),
                  bone=bone, level=level, when=when, folds=folds, seed=seed, n_boot=n_boot,
                  skipped=n - len(kept))


def _read_film(manifest: Manifest, row: Any) -> np.ndarray | None:
    """The row's film, or None when it cannot be read or is no usable radiograph."""
    try:
        image = read_image(manifest.resolve(str(manifest.table.at[row, "path"])))
    except (BoneaugError, OSError, ValueError):
        return None
    return None if film_problem(image.shape) else image


def _row_boxes(table: pd.DataFrame, row: Any) -> list[list[float]]:
    try:
        return parse_boxes(table.at[row, "boxes"]) if "boxes" in table.columns else []
    except ValueError:  # a malformed cell is a positive we cannot blank, not a crash
        return []


def _patient(table: pd.DataFrame, row: Any) -> Any:
    """The row's patient: ``patient_id``, else ``image_id``, else the row label."""
    for column in ("patient_id", "image_id"):
        if column in table.columns and not _blank(table.at[row, column]):
            return table.at[row, column]
    return row


def probe_films(manifest: Manifest, positive_rows: Iterable[Any],
                negative_rows: Iterable[Any], *, bone: str, when: str = "", side: int = 16,
                folds: int = 5, seed: int = 0, n_boot: int = 1000) -> ProbeResult:
    """The image-level probes on manifest rows (labels of ``manifest.table``'s index).

    Each film is read at native resolution, blanked and reduced to its thumbnail at once,
    so memory holds thumbnails only. Lesion boxes come from the ``boxes`` column, groups
    from ``patient_id``, metadata from the rows' other columns (`metadata_features`). A
    film that cannot be read, is no usable radiograph, or is a positive without boxes is
    left out and counted in ``skipped``.
    """
    table = manifest.table
    blinder = _Blinder(side, seed)
    kept: list[Any] = []
    labels: list[int] = []
    skipped = 0
    for label, rows in ((1, list(positive_rows)), (0, list(negative_rows))):
        for row in rows:
            boxes = _row_boxes(table, row) if label == 1 else []
            image = None if label == 1 and not boxes else _read_film(manifest, row)
            if image is None:
                skipped += 1
                continue
            if label == 1:
                blinder.positive(image, boxes)
            else:
                blinder.negative(image)
            kept.append(row)
            labels.append(label)
    x = np.stack(blinder.features) if kept else np.zeros((0, side * side))
    return _probe(x, np.asarray(labels, dtype=np.int64), [_patient(table, r) for r in kept],
                  table.loc[kept].reset_index(drop=True), bone=bone, level="image",
                  when=when, folds=folds, seed=seed, n_boot=n_boot, skipped=skipped)


# --------------------------------------------------------------------------- text


def _with_ci(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    if ci is None:
        return f"{value:.2f}"
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def format_probe(results: Sequence[ProbeResult]) -> str:
    """A plain-text table of probes, one line each, then their warnings, one per line."""
    header = ["bone", "level", "when", "pos/neg", "lesion-blind AUC [95% CI]",
              "metadata AUC [95% CI]", "metadata used", "skipped"]
    rows = [[r.bone, r.level, r.when or "-", f"{r.n_pos}/{r.n_neg}", _with_ci(r.auc, r.ci),
             _with_ci(r.metadata_auc, r.metadata_ci), ", ".join(r.metadata_columns) or "-",
             str(r.skipped)] for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    warnings = [w for r in results for w in r.warning.splitlines()]
    return "\n".join(lines + [f"warning: {w}" for w in warnings])
