"""How a multi-bone phantom film is laid out: bones in their own frames, placed on a film.

A film of the mixed phantom (`phantom_films`) shows several bones, each built from the
solids of `phantom_anatomy` in its *own* frame (``u`` along its long axis from its
articular end, ``v`` across it, canonical units) and placed on the film by a rigid
`Placement`. The film frame is the frame of the film's main (imaged) bone, so lesions
and the pose work exactly as on the single-bone films. Only geometry lives here; the
projection is in `phantom_mixed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from boneaug.data.phantom_anatomy import Anatomy, Shaft

Array = np.ndarray


@dataclass(frozen=True)
class Placement:
    """Bone frame -> film frame: ``film = offset + u * axis + v * across``.

    ``axis`` and ``across`` are orthonormal (U, V) directions, so the map is a rotation,
    possibly with a reflection: a bone across a joint is turned by 180 degrees but keeps
    its medial (or anterior) side on the same side of the film.
    """

    axis: tuple[float, float] = (1.0, 0.0)
    across: tuple[float, float] = (0.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def turned(angle: float, offset: tuple[float, float] = (0.0, 0.0),
               keep_side: bool = True) -> Placement:
        """A bone whose axis points at `angle` (radians from +U towards +V).

        With `keep_side` the bone's +v keeps pointing to +V for an axis that points
        away (angle near pi), as for the bone on the far side of a joint.
        """
        c, s = math.cos(angle), math.sin(angle)
        sign = -1.0 if keep_side and c < 0 else 1.0
        return Placement((c, s), (-s * sign, c * sign), offset)

    def to_local(self, big_u: Array, big_v: Array) -> tuple[Array, Array]:
        """Bone-frame coordinates of film-frame points (same shapes)."""
        if self == IDENTITY:
            return big_u, big_v
        du, dv = big_u - self.offset[0], big_v - self.offset[1]
        u = self.axis[0] * du + self.axis[1] * dv
        v = self.across[0] * du + self.across[1] * dv
        return u.astype(np.float32, copy=False), v.astype(np.float32, copy=False)

    def to_film(self, u: float, v: float) -> tuple[float, float]:
        return (self.offset[0] + u * self.axis[0] + v * self.across[0],
                self.offset[1] + u * self.axis[1] + v * self.across[1])

    def seen_from(self, frame: Placement) -> Placement:
        """This placement re-expressed in the frame of a bone placed by `frame`."""
        def local_dir(d: tuple[float, float]) -> tuple[float, float]:
            return (frame.axis[0] * d[0] + frame.axis[1] * d[1],
                    frame.across[0] * d[0] + frame.across[1] * d[1])
        du, dv = self.offset[0] - frame.offset[0], self.offset[1] - frame.offset[1]
        return Placement(local_dir(self.axis), local_dir(self.across), local_dir((du, dv)))


IDENTITY = Placement()


@dataclass(frozen=True)
class Physis:
    """A growth plate: a band across a bone, in the bone's frame.

    Centred at (``u``, ``v``), running along ``angle`` (radians from +u towards +v; pi/2
    is straight across the shaft) for ``half_length`` on either side, ``width`` thick
    (canonical units), with a gentle wave of amplitude ``wave`` as real physes undulate.
    """

    u: float
    v: float
    half_length: float
    width: float = 0.012
    angle: float = math.pi / 2
    wave: float = 0.004

    def band(self, u: Array, v: Array) -> Array:
        """1 on the plate, falling to 0 away from it; ``(H, W)`` float32."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        du, dv = u - self.u, v - self.v
        along = c * du + s * dv
        normal = -s * du + c * dv - self.wave * np.sin(along * (2 * math.pi / 0.09))
        across = np.exp(-((normal / (0.5 * self.width)) ** 2))
        ends = np.clip((self.half_length - np.abs(along)) / 0.02, 0.0, 1.0)
        return (across * ends).astype(np.float32)


@dataclass
class BoneLayer:
    """One bone of a film: its solids (in its own frame) and where it lies.

    ``name`` is its manifest bone name (`manifest.BONES`); ``spongy_until`` the ``u``
    (own frame) where trabecular bone gives way to the marrow cavity (``inf``: all
    trabecular, as in short and flat bones); ``physes`` its growth plates.
    """

    name: str
    parts: list
    place: Placement = IDENTITY
    spongy_until: float = math.inf
    physes: list[Physis] = field(default_factory=list)


@dataclass
class SoftLayer:
    """Soft tissue as solids whose cortex is the subcutaneous fat layer.

    ``torso`` marks the chest or pelvis wall, which is drawn as uniform soft tissue
    under the limb's fat and muscle.
    """

    parts: list
    place: Placement = IDENTITY
    torso: bool = False


@dataclass
class Film:
    """The anatomy of one film, in the frame of its main bone.

    ``bones[0]`` is the imaged bone; ``main`` is its lesion and framing handle (an
    `Anatomy` whose ``shaft``, ``u_proximal`` and ``half_width`` are used). The pose
    turns the film frame by ``angle`` (plus a random tilt) and puts the frame origin at
    a height within ``origin_y`` (fractions of the image side); at least ``min_visible``
    canonical units of the main bone's axis must be in the image. ``keep`` is an
    explicit (u0, u1, half-width) box that must stay in the image, for films without
    lesions; ``None`` keeps the lesion-bearing part (as the single-bone films do).
    """

    kind: str
    view: str
    bones: list[BoneLayer]
    soft: list[SoftLayer]
    main: Anatomy
    angle: float
    origin_y: tuple[float, float]
    min_visible: float
    keep: tuple[float, float, float] | None = None

    def bone(self, name: str) -> BoneLayer:
        return next(b for b in self.bones if b.name == name)


def lesion_handle(bone: str, shaft: Shaft, u_proximal: float, half_width: float) -> Anatomy:
    """An `Anatomy` for `sample_lesion` and `roi_corners`, which read only the imaged
    bone's shaft, proximal end and half width (the soft-tissue fields stay unused)."""
    return Anatomy(bone, shaft, [shaft], [], u_proximal=u_proximal, half_width=half_width,
                   soft_radius=0.0, soft_shift=0.0, soft_taper=0.0, fat=0.0,
                   trabecular_until=0.0)


def widest(shaft: Shaft, u0: float, length: float, extra: float = 0.0) -> float:
    """The largest shaft radius over ``[u0, u0 + length]`` plus a margin (canonical)."""
    us = np.linspace(u0, u0 + length, 48)
    return float(np.max(shaft.radius(us)[0])) + 0.02 + extra


def reframe(bones: list[BoneLayer], soft: list[SoftLayer], main: str
            ) -> tuple[list[BoneLayer], list[SoftLayer]]:
    """The same anatomy seen from the frame of bone `main`, which comes first."""
    frame = next(b for b in bones if b.name == main).place
    moved = [BoneLayer(b.name, b.parts, b.place.seen_from(frame), b.spongy_until, b.physes)
             for b in bones]
    moved.sort(key=lambda b: b.name != main)
    return moved, [SoftLayer(s.parts, s.place.seen_from(frame), s.torso) for s in soft]


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw of U(lo, hi) as a float (the anatomy modules draw hundreds of them)."""
    return float(rng.uniform(lo, hi))
