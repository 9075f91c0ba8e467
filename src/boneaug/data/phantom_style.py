"""Who, where and how a mixed-phantom film was taken: its metadata and each centre's look.

`sample_spec` draws the film kind, view, age, sex and centre of one film. By default
they do not depend on the label (beyond which kinds can carry a lesion); with
``confound`` > 0 a positive's metadata come, with that probability, from a "positive
profile" (centre 1, young, frontal) and a negative's from a "negative profile" (centres
2-3, adults, lateral), so that a classifier can separate them without seeing a lesion,
as on real data. `expose` turns attenuation into a displayed film the way the film's
centre does (exposure, processing, noise), so the centre shows in the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from boneaug.data.phantom_films import LESION_FILMS, NORMAL_FILMS, pick

CENTERS = (1, 2, 3)
AWKWARD = ("blank", "markers", "inverted")


@dataclass(frozen=True)
class FilmSpec:
    """What one film shows and how it was taken.

    ``kind`` is a `phantom_films.FILM_KINDS` name, or ``blank`` / ``markers`` for the
    awkward films without anatomy; ``view`` frontal or lateral; ``age`` in years;
    ``sex`` M or F; ``center`` 1-3; ``awkward`` one of `AWKWARD` or ``""``.
    """

    kind: str
    view: str
    lesion: bool
    age: int
    sex: str
    center: int
    awkward: str = ""


@dataclass(frozen=True)
class Profile:
    """Metadata that go with one label when the set is confounded."""

    centers: tuple[int, ...]
    ages: tuple[int, int]
    view: str


POSITIVE_PROFILE = Profile((1,), (8, 18), "frontal")
NEGATIVE_PROFILE = Profile((2, 3), (30, 75), "lateral")
_CENTER_SHARE = (0.45, 0.35, 0.20)
_YOUNG_SHARE = 0.4      # of films of patients under 18 (bone tumours peak in the teens)
_FRONTAL_SHARE = 0.6


def sample_spec(group: str, label: int, awkward: str, confound: float,
                rng: np.random.Generator) -> tuple[FilmSpec, float]:
    """The spec of one film, and a uniform in [0, 1) for labelling decisions.

    `group` is the lesion bone of a positive, the limb region of a normal. A fixed
    number of draws is taken whatever the branch, so that changing `confound` only
    changes the films it moves into a profile.
    """
    d = rng.random(9)
    if label:
        kind = pick(LESION_FILMS[group], d[0])
    elif awkward in ("blank", "markers"):
        kind = awkward
    else:
        kind = pick(NORMAL_FILMS[group], d[0])
    sex = "M" if d[1] < 0.55 else "F"
    if d[2] < confound:
        profile = POSITIVE_PROFILE if label else NEGATIVE_PROFILE
        center = profile.centers[int(d[3] * len(profile.centers))]
        lo, hi = profile.ages
        view = profile.view
    else:
        center = CENTERS[int(np.searchsorted(np.cumsum(_CENTER_SHARE), d[3], side="right"))]
        lo, hi = (5, 18) if d[4] < _YOUNG_SHARE else (18, 80)
        view = "frontal" if d[5] < _FRONTAL_SHARE else "lateral"
    age = int(lo + d[6] * (hi - lo))
    spec = FilmSpec(kind, view, bool(label), age, sex, int(center), awkward)
    return spec, float(d[8])


# --------------------------------------------------------------------------- centres


@dataclass(frozen=True)
class CentreStyle:
    """One centre's acquisition and processing (ranges are drawn per film).

    Pixel lengths are at 256 px and scale with the image. ``tau`` scales attenuation to
    signal; ``edge`` is the unsharp-mask amount at radius ``edge_sigma``; ``lo``/``hi``
    the display window and ``gamma`` its curve; ``noise`` the detector noise sigma with
    correlation ``grain``; ``fog`` a base density (scanned film) and ``vignette`` the
    fall-off towards the corners. ``label`` and ``date`` are its burned-in text.
    """

    label: str
    date: str
    blur: tuple[float, float]
    tau: tuple[float, float]
    edge: tuple[float, float]
    edge_sigma: float
    lo: tuple[float, float]
    hi: tuple[float, float]
    gamma: tuple[float, float]
    noise: tuple[float, float]
    grain: float
    fog: tuple[float, float]
    vignette: float
    corners: tuple[int, ...]  # preferred text corners: 0 top-left, 1 top-right, 2/3 bottom


CENTRE_STYLES = {
    # A digital room: sharp, strongly edge-enhanced, contrasty, black background.
    1: CentreStyle("NORTHFIELD DR", "%Y-%m-%d", (0.4, 0.8), (1.7, 2.1), (0.7, 1.1), 4.0,
                   (0.0, 0.06), (0.86, 0.94), (1.1, 1.3), (0.005, 0.01), 0.5, (0.0, 0.0),
                   0.0, (0, 1)),
    # Computed radiography: soft, flat, grey background, noisy.
    2: CentreStyle("ST ELMO CR", "%d.%m.%Y", (0.9, 1.4), (2.3, 2.9), (0.0, 0.2), 6.0,
                   (-0.16, -0.09), (1.02, 1.15), (0.75, 0.9), (0.02, 0.032), 0.6, (0.0, 0.0),
                   0.0, (1, 3)),
    # Scanned film: fogged base, blurred, coarse grain, darker corners.
    3: CentreStyle("RIVERBEND", "%m/%d/%y", (1.3, 1.9), (1.9, 2.4), (0.15, 0.4), 8.0,
                   (-0.04, 0.02), (0.92, 1.02), (0.95, 1.1), (0.012, 0.02), 1.5, (0.08, 0.15),
                   0.3, (2, 3)),
}


def expose(attenuation: np.ndarray, px: float, style: CentreStyle,
           rng: np.random.Generator) -> np.ndarray:
    """Detector and display of one centre: attenuation ``(H, W)`` -> grey in [0, 1]."""
    size = attenuation.shape[0]
    blurred = ndimage.gaussian_filter(attenuation, sigma=float(rng.uniform(*style.blur)) * px)
    grey = 1.0 - np.exp(-blurred / float(rng.uniform(*style.tau)))
    amount = float(rng.uniform(*style.edge))
    if amount > 0:
        grey = grey + amount * (grey - ndimage.gaussian_filter(grey, style.edge_sigma * px))
    lo, hi = float(rng.uniform(*style.lo)), float(rng.uniform(*style.hi))
    grey = np.clip((grey - lo) / (hi - lo), 0.0, 1.0) ** float(rng.uniform(*style.gamma))
    fog = float(rng.uniform(*style.fog))
    grey = fog + (1.0 - fog) * grey
    if style.vignette > 0:
        r = np.linspace(-1.0, 1.0, size, dtype=np.float32) ** 2
        grey = grey * (1.0 - style.vignette * 0.5 * (r[:, None] + r[None, :]))
    noise = rng.standard_normal(grey.shape, dtype=np.float32)
    # Filtering lowers the noise's sigma by about 1 / (2 sqrt(pi) sigma); undo that.
    sigma_px = style.grain * px
    noise = ndimage.gaussian_filter(noise, sigma=sigma_px) * (2.0 * np.sqrt(np.pi) * max(
        sigma_px, 0.3))
    grey = grey + float(rng.uniform(*style.noise)) * np.sqrt(grey + 0.05) * noise
    return np.clip(grey, 0.0, 1.0).astype(np.float32)
