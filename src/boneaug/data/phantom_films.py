"""The film kinds of the mixed phantom, which films carry lesions, and how a film is posed.

One table, `FILM_KINDS`, says per kind its limb region, its main (imaged) bone, the bone
a lesion may be painted on, the extra sites an annotator may name beside it and the
builder of its anatomy; the mixes below say which kinds a bone's lesion films and a
region's normal films are drawn from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from boneaug.data.phantom_anatomy import Pose
from boneaug.data.phantom_layout import Film
from boneaug.data.phantom_lower import ankle, hip, knee
from boneaug.data.phantom_upper import elbow, shoulder

VIEWS = ("frontal", "lateral")


@dataclass(frozen=True)
class FilmKind:
    """One kind of film.

    ``main_bone`` is the manifest bone of the imaged bone (``true_bone``): a long bone,
    or the joint (``ankle``, ``elbow``) for joint films without a lesion-bearing bone.
    ``lesion_bone`` is the bone lesions are painted on (``""``: normal films only);
    ``extra_sites`` the sites an annotator sometimes names beside it (BTXRD has 185
    multi-site tumour images among 1,867, e.g. tibia and fibula).
    """

    name: str
    region: str
    main_bone: str
    lesion_bone: str
    extra_sites: tuple[str, ...]
    build: Callable[[str, np.random.Generator], Film]


FILM_KINDS: dict[str, FilmKind] = {k.name: k for k in (
    FilmKind("hip", "lower_limb", "femur", "femur", ("hip",), hip),
    FilmKind("knee_femur", "lower_limb", "femur", "femur", ("knee",),
             partial(knee, centred_on="femur")),
    FilmKind("knee_tibia", "lower_limb", "tibia", "tibia", ("fibula", "knee"),
             partial(knee, centred_on="tibia")),
    FilmKind("ankle", "lower_limb", "ankle", "", (), ankle),
    FilmKind("shoulder", "upper_limb", "humerus", "humerus", ("shoulder",), shoulder),
    FilmKind("elbow", "upper_limb", "elbow", "", (), elbow),
)}
# Which kinds a bone's lesion films are (the distal femur is the commonest tumour site).
LESION_FILMS: dict[str, dict[str, float]] = {
    "femur": {"hip": 0.45, "knee_femur": 0.55},
    "tibia": {"knee_tibia": 1.0},
    "humerus": {"shoulder": 1.0},
}
# Which kinds a region's normal films are: all of its joints, ankles and elbows included,
# so that "all normals of the limb" are not films of the lesion bones alone.
NORMAL_FILMS: dict[str, dict[str, float]] = {
    "lower_limb": {"knee_tibia": 0.3, "knee_femur": 0.2, "hip": 0.2, "ankle": 0.3},
    "upper_limb": {"shoulder": 0.6, "elbow": 0.4},
}
BONE_REGION = {bone: FILM_KINDS[next(iter(kinds))].region for bone, kinds in
               LESION_FILMS.items()}


def pick(mix: dict[str, float], uniform: float) -> str:
    """The key of `mix` (weights summing to 1) that `uniform` in [0, 1) falls on."""
    total = 0.0
    for key, weight in mix.items():
        total += weight
        if uniform < total:
            return key
    return key


def build_film(kind: str, view: str, rng: np.random.Generator) -> Film:
    """The random anatomy of one film of `kind` seen in `view` (frontal or lateral)."""
    return FILM_KINDS[kind].build(view, rng)


def keep_corners(film: Film, pose: Pose, until: float = 0.85) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (fractions) of the corners of what must stay in the image: the
    lesion-bearing part of the main bone (or the film's explicit ``keep`` box)."""
    if film.keep is not None:
        u0, u1, hw = film.keep
    else:
        u0 = film.main.u_proximal
        u1 = u0 + until * pose.axis_length_in_image(u0)
        hw = film.main.half_width
    return pose.to_image(np.array([u0, u0, u1, u1]), np.array([-hw, hw, -hw, hw]))


def film_fits(film: Film, pose: Pose) -> bool:
    x, y = keep_corners(film, pose)
    length = pose.axis_length_in_image(film.main.u_proximal) * pose.scale
    inside = np.all((x > 0.01) & (x < 0.99) & (y > 0.01) & (y < 0.99))
    return bool(inside and length > film.min_visible)


def sample_film_pose(film: Film, rng: np.random.Generator) -> Pose:
    """A random pose that keeps the film's region of interest entirely in the image."""
    for _ in range(64):
        pose = Pose(angle=film.angle + math.radians(float(rng.uniform(-12.0, 12.0))),
                    scale=float(rng.uniform(0.8, 1.05)),
                    origin=(float(rng.uniform(0.36, 0.64)), float(rng.uniform(*film.origin_y))),
                    mirror=1 if rng.random() < 0.5 else -1)
        if film_fits(film, pose):
            return pose
    return Pose(film.angle, 0.8, (0.5, sum(film.origin_y) / 2), 1)
