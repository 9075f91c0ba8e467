"""Rendering one film of the mixed phantom: several bones, each with its own exact mask.

`render_film` projects every bone of a `phantom_layout.Film` as the single-bone renderer
projects its bone (cortex, trabecular ends, marrow, soft tissue), adds growth plates
whose openness follows the patient's age, paints the lesion (if any) on the main bone,
and exposes the film the way its centre does, with its marks and text. The random
stream is split as in `phantom.render_radiograph` (anatomy, lesion, detector, marks),
so the same stream with another age, or without the lesion, gives a twin that differs
only in the growth plates, or at the lesion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from boneaug.data.phantom import (
    MU_BONE,
    MU_FAT,
    MU_LEAD,
    MU_MUSCLE,
    RHO_CORTEX,
    RHO_MARROW,
    RHO_TRABECULAR,
    collimate,
)
from boneaug.data.phantom_anatomy import (
    Lesion,
    bandpass_noise,
    lesion_fields,
    lesion_outline,
    pixel_grid,
    sample_lesion,
    union_chords,
)
from boneaug.data.phantom_films import FILM_KINDS, VIEWS, build_film, keep_corners, sample_film_pose
from boneaug.data.phantom_layout import Film
from boneaug.data.phantom_marks import MarkPlan, burn_texts, plan_marks
from boneaug.data.phantom_style import AWKWARD, CENTRE_STYLES, FilmSpec, expose
from boneaug.errors import BoneaugError


@dataclass
class FilmImage:
    """One rendered mixed film; arrays are ``(size, size)``.

    ``image`` float32 in [0, 1] (bone bright, except on an inverted film); ``masks`` the
    visible pixels of each visible bone (manifest bone names, main bone first; bones may
    overlap where they superimpose); ``main_mask`` the imaged bone's mask (for a joint
    film without a long bone, the union of its bones; empty on a film without anatomy);
    ``lesion_mask`` inside the lesion bone's mask; ``boxes`` one tight ``[x0, y0, x1,
    y1]`` per lesion (x1/y1 exclusive); ``words`` the burned-in text.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    main_mask: np.ndarray
    lesion_mask: np.ndarray
    boxes: list[list[float]]
    spec: FilmSpec
    lesion_type: str = ""
    lesion_bone: str = ""
    words: list[str] = field(default_factory=list)


def check_spec(spec: FilmSpec) -> None:
    """Raise `BoneaugError` (one line) for a spec that cannot be rendered."""
    if spec.awkward not in ("", *AWKWARD):
        raise BoneaugError(f"phantom: unknown awkward film {spec.awkward!r}; expected one of "
                           f"{', '.join(AWKWARD)}")
    if spec.kind not in FILM_KINDS and spec.kind != spec.awkward:
        raise BoneaugError(f"phantom: unknown film kind {spec.kind!r}; expected one of "
                           f"{', '.join(FILM_KINDS)}")
    if spec.view not in VIEWS:
        raise BoneaugError(f"phantom: unknown view {spec.view!r}; expected frontal or lateral")
    if spec.center not in CENTRE_STYLES:
        raise BoneaugError(f"phantom: unknown centre {spec.center!r}; expected 1, 2 or 3")
    if spec.lesion and (spec.kind not in FILM_KINDS or not FILM_KINDS[spec.kind].lesion_bone):
        raise BoneaugError(f"phantom: a {spec.kind} film carries no lesion")


def growth_openness(age: float, closure: float) -> float:
    """How open the growth plates are: 1 until two years before `closure`, then closing
    to 0 at `closure` (years), when only a faint sclerotic scar remains."""
    return float(np.clip((closure - age) / 2.0, 0.0, 1.0))


def render_film(spec: FilmSpec, size: int, difficulty: float, rng: np.random.Generator,
                distractors: bool = True) -> FilmImage:
    """Render one `size` x `size` film as `spec` says (see the module docstring)."""
    check_spec(spec)
    anatomy_rng, lesion_rng, detector_rng, marks_rng = rng.spawn(4)
    style = CENTRE_STYLES[spec.center]
    px = size / 256.0  # pixel lengths are tuned at 256 px
    empty = np.zeros((size, size), bool)
    if spec.kind not in FILM_KINDS:  # blank, or nothing but marks and text
        return _film_without_anatomy(spec, size, px, detector_rng, marks_rng, distractors)

    film = build_film(spec.kind, spec.view, anatomy_rng)
    pose = sample_film_pose(film, anatomy_rng)
    closure = (15.0 if spec.sex == "F" else 17.0) + float(anatomy_rng.uniform(-1.0, 1.0))
    axis_angle = math.atan2(math.cos(pose.angle), -math.sin(pose.angle))
    trabecular = bandpass_noise(anatomy_rng, size, 36.0 / pose.scale, 0.45, axis_angle, 0.6)
    soft_texture = bandpass_noise(anatomy_rng, size, 3.0, 0.8, axis_angle, 0.7)
    lesion = (sample_lesion(film.main, pose, difficulty, size, lesion_rng) if spec.lesion
              else None)

    x, y = pixel_grid(size)
    big_u, big_v = pose.to_bone(x, y)
    big_u, big_v = big_u.astype(np.float32), big_v.astype(np.float32)
    # The main bone's frame is the film's, so the lesion's fields serve every use.
    fields = lesion_fields(lesion, big_u, big_v) if lesion is not None else None
    density, masks = _project(film, big_u, big_v, trabecular, lesion, fields,
                              growth_openness(spec.age, closure))
    attenuation = MU_BONE * density + _soft_tissue(film, big_u, big_v, soft_texture)

    xs, ys = keep_corners(film, pose, until=0.9)
    roi = (float(xs.min()) * size, float(ys.min()) * size, float(xs.max()) * size,
           float(ys.max()) * size)
    if fields is not None:  # a lesion at the far end of the bone may reach past that
        rows, cols = np.nonzero(fields[0] >= 0.5)
        if rows.size:
            roi = (min(roi[0], float(cols.min())), min(roi[1], float(rows.min())),
                   max(roi[2], float(cols.max() + 1)), max(roi[3], float(rows.max() + 1)))
    plan = (plan_marks(roi, size, spec.view, pose.mirror, style, marks_rng) if distractors
            else None)
    if plan is not None and plan.marker is not None:
        row, col, patch = plan.marker
        attenuation[row:row + patch.shape[0], col:col + patch.shape[1]] += MU_LEAD * 0.02 * patch
    image = expose(attenuation, px, style, detector_rng)
    visible = np.ones((size, size), bool)
    if plan is not None:
        image, visible = collimate(image, plan.field, plan.outside, detector_rng)
        image, text = burn_texts(image, plan)
        visible &= ~text
    masks = {name: mask & visible for name, mask in masks.items()}
    masks = {name: mask for name, mask in masks.items() if mask.any()}

    kind = FILM_KINDS[spec.kind]
    if any(bone.name == kind.main_bone for bone in film.bones):
        main_mask = masks.get(kind.main_bone, empty.copy())
    else:  # a joint film (ankle, elbow): the joint is all of its bones
        main_mask = np.logical_or.reduce(list(masks.values())) if masks else empty.copy()
    lesion_mask, boxes = empty.copy(), []
    if lesion is not None and fields is not None:
        lesion_mask, boxes = lesion_outline(lesion, fields[0], main_mask, pose, size)
        masks[kind.lesion_bone] = main_mask  # it may have gained the lesion's centre pixel
    if spec.awkward == "inverted":
        image = 1.0 - image
    return FilmImage(image.astype(np.float32), masks, main_mask, lesion_mask, boxes, spec,
                     lesion.kind if lesion is not None else "",
                     kind.lesion_bone if lesion is not None else "",
                     plan.words if plan is not None else [])


def _project(film: Film, big_u: np.ndarray, big_v: np.ndarray, trabecular: np.ndarray,
             lesion: Lesion | None, fields: tuple[np.ndarray, ...] | None, openness: float
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Projected bone density of all bones (superimposed) and each bone's mask.

    `fields` are the lesion's (extent, rim, lysis) on the pixel grid, painted on the
    main bone, ``film.bones[0]``.
    """
    struts = np.exp(-((trabecular / 0.55) ** 2))
    spongy = RHO_TRABECULAR * (0.25 + 1.3 * struts)
    density = np.zeros(big_u.shape, np.float32)
    masks: dict[str, np.ndarray] = {}
    for index, bone in enumerate(film.bones):
        u, v = bone.place.to_local(big_u, big_v)
        outer, inner = union_chords(bone.parts, u, v)
        if math.isinf(bone.spongy_until):
            interior = RHO_MARROW + spongy
        else:
            at_end = 1.0 / (1.0 + np.exp((u - bone.spongy_until) / 0.05))
            interior = RHO_MARROW + at_end * spongy + (1 - at_end) * 0.15 * spongy
        cortex = RHO_CORTEX * (outer - inner)
        if lesion is not None and fields is not None and index == 0:
            _, rim, lysis = fields
            rim = rim * (outer > 0)
            interior = interior * (1.0 - lysis) + lysis * RHO_MARROW * 0.5
            cortex = cortex * (1.0 - lesion.cortex_loss * lysis)
            interior = interior + rim * RHO_TRABECULAR * 1.2
        bone_density = cortex + inner * interior
        if bone.physes:
            # An open physis is cartilage, a lucent band across the bone; once closed it
            # leaves a faint dense scar.
            band = np.maximum.reduce([p.band(u, v) for p in bone.physes])
            bone_density = bone_density * (1.0 - 0.85 * openness * band
                                           + 0.25 * (1.0 - openness) * band)
        density += bone_density
        mask = outer > 0
        masks[bone.name] = masks[bone.name] | mask if bone.name in masks else mask
    return density, masks


def _soft_tissue(film: Film, big_u: np.ndarray, big_v: np.ndarray,
                 texture: np.ndarray) -> np.ndarray:
    """Attenuation of the soft tissue: the limb's fat and muscle, over any torso."""
    envelope = np.zeros(big_u.shape, np.float32)
    muscle = np.zeros(big_u.shape, np.float32)
    torso = np.zeros(big_u.shape, np.float32)
    for layer in film.soft:
        u, v = layer.place.to_local(big_u, big_v)
        outer, inner = union_chords(layer.parts, u, v)
        if layer.torso:
            np.maximum(torso, outer, out=torso)
        else:
            np.maximum(envelope, outer, out=envelope)
            np.maximum(muscle, inner, out=muscle)
    soft = MU_FAT * envelope + (MU_MUSCLE - MU_FAT) * muscle * (1.0 + 0.08 * texture)
    return np.maximum(soft, 0.8 * torso).astype(np.float32)


def _film_without_anatomy(spec: FilmSpec, size: int, px: float, detector_rng: np.random.Generator,
                          marks_rng: np.random.Generator, distractors: bool) -> FilmImage:
    """A blank film (open field or unexposed), or one with nothing but marks and text."""
    empty = np.zeros((size, size), bool)
    style = CENTRE_STYLES[spec.center]
    level = float(detector_rng.uniform(0.0, 1.0))
    # An open field is black once displayed, an unexposed plate white: blank films are
    # either; a film of marks alone was exposed, or its lead and text would not show.
    exposed = level < 0.5 or spec.kind == "markers"
    attenuation = np.full((size, size), 0.02 if exposed else 40.0, np.float32)
    plan: MarkPlan | None = None
    if spec.kind == "markers" or (distractors and level < 0.25):
        centre = size / 2.0
        plan = plan_marks((centre, centre, centre + 1, centre + 1), size, spec.view,
                          1 if level < 0.5 else -1, style, marks_rng,
                          collimation=spec.kind == "markers")
        if plan.marker is not None:
            row, col, patch = plan.marker
            attenuation[row:row + patch.shape[0], col:col + patch.shape[1]] += (
                MU_LEAD * 0.02 * patch)
    image = expose(attenuation, px, style, detector_rng)
    if plan is not None:
        image, _ = collimate(image, plan.field, plan.outside, detector_rng)
        image, _ = burn_texts(image, plan)
    return FilmImage(image, {}, empty, empty.copy(), [], spec,
                     words=plan.words if plan is not None else [])
