"""Anatomy, pose, textures and lesions of the phantom radiographs (used by `phantom.py`).

Everything is evaluated analytically on the output pixel grid, so there is no resampling
and a mask is exactly the set of pixels whose centre lies inside a shape.

Units and frames
----------------
Lengths are fractions of the image side at pose scale 1 ("canonical units"), so the
anatomy does not depend on the pixel size. The bone frame has ``u`` along the long axis,
0 at the proximal end and growing distally (downwards in the image), and ``v`` across
it, positive towards the medial side. A `Pose` maps the bone frame onto the image:
rotation, scale, translation and a mirror (left/right limb).

Projection model
----------------
A radiograph shows line integrals of attenuation. Each part of a bone is a solid whose
projected thickness ("chord") has a closed form: a body of revolution about the axis
(shaft, metaphysis), an ellipsoid (trochanters, condyles, heads), a capsule (femoral
neck, fibula). Its cortex is the difference of the chords of the outer surface and the
surface one cortical thickness inside; the union of parts takes the largest chord, which
is exact where parts do not overlap and a fair approximation where they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray

LESION_TYPES = ("geographic", "sclerotic_rim", "expansile", "permeative")


# --------------------------------------------------------------------------- pose


@dataclass(frozen=True)
class Pose:
    """Bone frame -> image frame: ``[x, y] = origin + scale * R(angle) @ [mirror * v, u]``.

    ``origin`` is where the bone frame's origin (proximal end on the axis) lies, in
    fractions of the image side; ``angle`` in radians (positive turns the distal end to
    the image's left); ``mirror`` is +1 (medial to the image's right) or -1.
    """

    angle: float
    scale: float
    origin: tuple[float, float]
    mirror: int

    def to_image(self, u: Array, v: Array) -> tuple[Array, Array]:
        """Image coordinates (fractions of the side) of bone-frame points."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        vm = self.mirror * np.asarray(v)
        x = self.origin[0] + self.scale * (c * vm - s * np.asarray(u))
        y = self.origin[1] + self.scale * (s * vm + c * np.asarray(u))
        return x, y

    def to_bone(self, x: Array, y: Array) -> tuple[Array, Array]:
        """Bone-frame coordinates of image points (fractions of the side)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.origin[0], y - self.origin[1]
        u = (-s * dx + c * dy) / self.scale
        v = self.mirror * (c * dx + s * dy) / self.scale
        return u, v

    def axis_length_in_image(self, u_start: float) -> float:
        """Length (canonical units) of the bone axis from ``u_start`` to the image edge."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        x0, y0 = self.to_image(np.array(u_start), np.array(0.0))
        dx, dy = -s * self.scale, c * self.scale  # image step per unit of u
        exits = []
        for pos, step in ((float(x0), dx), (float(y0), dy)):
            if step > 1e-9:
                exits.append((1.0 - pos) / step)
            elif step < -1e-9:
                exits.append(-pos / step)
        return max(min(exits), 0.0) if exits else 0.0


def pixel_grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates ``(x, y)``, each ``(size, size)`` float32, as fractions."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.broadcast_to(centres[None, :], (size, size)), np.broadcast_to(
        centres[:, None], (size, size))


# --------------------------------------------------------------------------- solids


def _sqrt_pos(x: Array) -> Array:
    return np.sqrt(np.maximum(x, 0.0))


@dataclass
class Shaft:
    """A body of revolution about the bone axis: the diaphysis and its flared end.

    The radius falls from ``r_end`` at the articular end ``u_end`` to ``r_shaft`` with
    decay length ``flare``; the end is rounded over ``rounding``. ``direction`` is +1 when
    the shaft runs distally from ``u_end`` (the imaged bone) and -1 when it runs
    proximally (the opposite bone of a joint). ``depth`` scales the chord at the end,
    where metaphyses are wider than deep. The cortex thickens from ``cortex_end`` to
    ``cortex_shaft`` around ``u_diaphysis``.
    """

    u_end: float
    r_end: float
    r_shaft: float
    flare: float
    rounding: float
    depth_end: float = 1.0
    cortex_end: float = 0.01
    cortex_shaft: float = 0.03
    u_diaphysis: float = 0.45
    v_shift_end: float = 0.0
    direction: int = 1
    bulges: list[tuple[float, float, float, float]] = field(default_factory=list)

    def radius(self, u: Array) -> tuple[Array, Array, Array, Array]:
        """Outer radius, cortex, depth factor and axis offset along ``u``."""
        s = (np.asarray(u) - self.u_end) * self.direction  # distance from the end
        decay = np.exp(-np.maximum(s, 0.0) / self.flare)
        radius = self.r_shaft + (self.r_end - self.r_shaft) * decay
        # Elliptic rounding of the articular corner; zero beyond the end.
        corner = np.clip(s / self.rounding, 0.0, 1.0)
        radius = radius * np.sqrt(1.0 - (1.0 - corner) ** 2)
        depth = 1.0 - (1.0 - self.depth_end) * decay
        cortex = self.cortex_end + (self.cortex_shaft - self.cortex_end) / (
            1.0 + np.exp(-(s - self.u_diaphysis) / 0.05))
        for u_c, length, amount, thinning in self.bulges:
            bump = np.exp(-(((np.asarray(u) - u_c) / length) ** 2))
            radius = radius + amount * bump
            cortex = cortex * (1.0 - thinning * bump)
        return radius, cortex, depth, self.v_shift_end * decay

    def chords(self, u: Array, v: Array) -> tuple[Array, Array]:
        radius, cortex, depth, shift = self.radius(u)
        dv2 = (v - shift) ** 2
        outer = 2.0 * depth * _sqrt_pos(radius**2 - dv2)
        inner = 2.0 * depth * _sqrt_pos(np.maximum(radius - cortex, 0.0) ** 2 - dv2)
        return outer, inner


@dataclass
class Ellipsoid:
    """An ellipsoid with semi-axes ``a`` (along u), ``b`` (along v), ``depth`` (beam)."""

    u: float
    v: float
    a: float
    b: float
    depth: float
    cortex: float = 0.008

    def chords(self, u: Array, v: Array) -> tuple[Array, Array]:
        du, dv = u - self.u, v - self.v
        outer = 2.0 * self.depth * _sqrt_pos(1.0 - (du / self.a) ** 2 - (dv / self.b) ** 2)
        c = self.cortex
        inner = 2.0 * (self.depth - c) * _sqrt_pos(
            1.0 - (du / (self.a - c)) ** 2 - (dv / (self.b - c)) ** 2)
        return outer, inner


@dataclass
class Capsule:
    """A cylinder with round ends from ``p0`` to ``p1`` (bone frame), of radius ``r``."""

    p0: tuple[float, float]
    p1: tuple[float, float]
    r: float
    cortex: float = 0.01
    depth: float = 1.0

    def chords(self, u: Array, v: Array) -> tuple[Array, Array]:
        (u0, v0), (u1, v1) = self.p0, self.p1
        du, dv = u1 - u0, v1 - v0
        lam = np.clip(((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv), 0.0, 1.0)
        d2 = (u - u0 - lam * du) ** 2 + (v - v0 - lam * dv) ** 2
        outer = 2.0 * self.depth * _sqrt_pos(self.r**2 - d2)
        inner = 2.0 * self.depth * _sqrt_pos((self.r - self.cortex) ** 2 - d2)
        return outer, inner


def union_chords(parts: list, u: Array, v: Array) -> tuple[Array, Array]:
    """Outer and inner projected thickness of a union of solids (largest chord wins)."""
    outer = np.zeros(u.shape, np.float32)
    inner = np.zeros(u.shape, np.float32)
    for part in parts:
        o, i = part.chords(u, v)
        np.maximum(outer, o, out=outer)
        np.maximum(inner, i, out=inner)
    return outer, np.minimum(inner, outer)


# --------------------------------------------------------------------------- anatomy


@dataclass
class Anatomy:
    """One limb: the imaged bone, neighbouring bones and the soft-tissue envelope.

    ``shaft`` is the imaged bone's body of revolution (lesions are placed against its
    radius); ``parts`` are all solids of the imaged bone (shaft included); ``context``
    the solids of other bones (never in the bone mask); ``u_proximal`` the bone's most
    proximal point on the axis; ``lesion_range`` the ``u`` span (canonical) whose full
    width must stay in the image; ``soft`` the envelope's (radius, v-offset) and
    ``fat`` the subcutaneous fat thickness; ``trabecular_until`` where the marrow cavity
    begins.
    """

    bone: str
    shaft: Shaft
    parts: list
    context: list
    u_proximal: float
    half_width: float
    soft_radius: float
    soft_shift: float
    soft_taper: float
    fat: float
    trabecular_until: float
    torso: Ellipsoid | None = None


def sample_anatomy(bone: str, rng: np.random.Generator) -> Anatomy:
    """Random shape of one limb of `bone` (femur, tibia or humerus)."""
    w = float(rng.uniform(0.88, 1.12))  # overall bone calibre
    if bone == "femur":
        # The shaft's flared end runs up into the greater trochanter (laterally); the
        # neck leaves its medial side at the neck-shaft angle (125-140 degrees).
        shaft = Shaft(u_end=0.10, r_end=0.14 * w, r_shaft=0.10 * w, flare=0.13, rounding=0.06,
                      depth_end=0.8, cortex_end=0.011, cortex_shaft=0.024 * w,
                      u_diaphysis=0.36, v_shift_end=-0.04 * w)
        angle = math.radians(float(rng.uniform(40.0, 55.0)))  # 180 - neck-shaft angle
        base = (0.27, 0.04 * w)
        neck_len = float(rng.uniform(0.24, 0.28)) * w
        head = (base[0] - math.cos(angle) * neck_len, base[1] + math.sin(angle) * neck_len)
        head_r = 0.1 * w * float(rng.uniform(0.94, 1.06))
        parts = [
            shaft,
            Capsule(base, head, 0.07 * w, cortex=0.012, depth=0.85),
            Ellipsoid(head[0], head[1], head_r, head_r, head_r, cortex=0.008),
            Ellipsoid(0.15, -0.10 * w, 0.085 * w, 0.07 * w, 0.065 * w, cortex=0.009),
            Ellipsoid(0.36, 0.10 * w, 0.045 * w, 0.03 * w, 0.025 * w, cortex=0.007),
        ]
        # The pelvis: the ilium, whose acetabulum overlaps the head, and its roof.
        cup = head_r + 0.012
        context = [
            Ellipsoid(head[0] - 0.15, head[1] + 0.10, 0.17, 0.27, 0.03, cortex=0.012),
            Capsule((head[0] - cup * 0.80, head[1] - cup * 0.70),
                    (head[0] - cup * 0.98, head[1] + cup * 0.35), 0.018, cortex=0.01),
        ]
        anatomy = Anatomy(bone, shaft, parts, context, u_proximal=head[0] - head_r,
                          half_width=0.0, soft_radius=float(rng.uniform(0.40, 0.52)),
                          soft_shift=float(rng.uniform(-0.06, 0.02)), soft_taper=0.06,
                          fat=float(rng.uniform(0.03, 0.08)), trabecular_until=0.36)
    elif bone == "tibia":
        shaft = Shaft(u_end=0.0, r_end=0.23 * w, r_shaft=0.092 * w, flare=0.10, rounding=0.03,
                      depth_end=0.62, cortex_end=0.008, cortex_shaft=0.022 * w,
                      u_diaphysis=0.40, v_shift_end=0.015 * w)
        fib_v = -0.185 * w
        parts = [
            shaft,
            Ellipsoid(0.005, 0.028 * w, 0.035, 0.016, 0.04, cortex=0.006),
            Ellipsoid(0.005, -0.028 * w, 0.032, 0.016, 0.04, cortex=0.006),
        ]
        context = [
            Ellipsoid(0.10, fib_v, 0.045 * w, 0.038 * w, 0.04 * w, cortex=0.007),
            Capsule((0.12, fib_v), (1.6, fib_v + 0.05), 0.028 * w, cortex=0.01),
        ]
        if rng.random() < 0.7:  # the distal femur above the joint space
            gap = float(rng.uniform(0.025, 0.045))
            context += [
                Shaft(u_end=-gap, r_end=0.21 * w, r_shaft=0.10 * w, flare=0.12, rounding=0.07,
                      depth_end=0.75, cortex_end=0.009, cortex_shaft=0.03, u_diaphysis=0.4,
                      direction=-1),
                Ellipsoid(-gap - 0.06, 0.10 * w, 0.07, 0.10 * w, 0.07, cortex=0.008),
                Ellipsoid(-gap - 0.06, -0.10 * w, 0.07, 0.10 * w, 0.07, cortex=0.008),
            ]
        anatomy = Anatomy(bone, shaft, parts, context, u_proximal=-0.02, half_width=0.0,
                          soft_radius=float(rng.uniform(0.30, 0.38)),
                          soft_shift=float(rng.uniform(-0.04, 0.02)), soft_taper=-0.05,
                          fat=float(rng.uniform(0.02, 0.06)), trabecular_until=0.30)
    elif bone == "humerus":
        shaft = Shaft(u_end=0.07, r_end=0.135 * w, r_shaft=0.082 * w, flare=0.14, rounding=0.05,
                      depth_end=0.9, cortex_end=0.01, cortex_shaft=0.021 * w,
                      u_diaphysis=0.36, v_shift_end=0.01)
        head_r = 0.14 * w * float(rng.uniform(0.94, 1.06))
        head = (0.13, 0.055 * w)
        parts = [
            shaft,
            Ellipsoid(head[0], head[1], head_r, head_r, head_r * 0.95, cortex=0.008),
            Ellipsoid(0.075, -0.095 * w, 0.075 * w, 0.06 * w, 0.06 * w, cortex=0.008),
        ]
        glenoid_v = head[1] + head_r + float(rng.uniform(0.015, 0.035))
        context = [
            Ellipsoid(head[0] + 0.01, glenoid_v + 0.03, 0.12, 0.045, 0.04, cortex=0.01),
            Capsule((head[0] + 0.02, glenoid_v + 0.06), (head[0] + 0.25, glenoid_v + 0.40),
                    0.08, cortex=0.012, depth=0.35),
            Capsule((-0.10, -0.20), (-0.06, 0.55), 0.035, cortex=0.01),  # acromion/clavicle
        ]
        anatomy = Anatomy(bone, shaft, parts, context, u_proximal=head[0] - head_r,
                          half_width=0.0, soft_radius=float(rng.uniform(0.27, 0.34)),
                          soft_shift=float(rng.uniform(-0.03, 0.03)), soft_taper=0.05,
                          fat=float(rng.uniform(0.02, 0.06)), trabecular_until=0.34,
                          torso=Ellipsoid(0.35, 0.75, 0.9, 0.45, 0.3))
    else:  # validated by the caller
        raise ValueError(f"no phantom anatomy for bone {bone!r}")
    # The widest the bone gets where lesions may lie: it must stay inside the image.
    us = np.linspace(anatomy.u_proximal, anatomy.u_proximal + 0.9, 64)
    anatomy.half_width = float(np.max(shaft.radius(us)[0])) + 0.02
    if bone == "femur":
        anatomy.half_width = max(anatomy.half_width, head[1] + head_r)
    if bone == "humerus":
        anatomy.half_width = max(anatomy.half_width, head[1] + head_r)
    return anatomy


def sample_pose(anatomy: Anatomy, rng: np.random.Generator) -> Pose:
    """A random pose that keeps the bone's lesion-bearing part entirely in the image."""
    for _ in range(64):
        pose = Pose(angle=math.radians(float(rng.uniform(-14.0, 14.0))),
                    scale=float(rng.uniform(0.86, 1.12)),
                    origin=(float(rng.uniform(0.38, 0.62)), float(rng.uniform(0.03, 0.14))),
                    mirror=1 if rng.random() < 0.5 else -1)
        if roi_fits(anatomy, pose):
            return pose
    return Pose(0.0, 0.9, (0.5, 0.08), 1)


def roi_corners(anatomy: Anatomy, pose: Pose, until: float = 0.85) -> tuple[Array, Array]:
    """Image coordinates of the corners of the region where lesions may lie."""
    u0 = anatomy.u_proximal
    length = pose.axis_length_in_image(u0)
    u1 = u0 + until * length
    hw = anatomy.half_width
    us = np.array([u0, u0, u1, u1])
    vs = np.array([-hw, hw, -hw, hw])
    return pose.to_image(us, vs)


def roi_fits(anatomy: Anatomy, pose: Pose) -> bool:
    x, y = roi_corners(anatomy, pose)
    length = pose.axis_length_in_image(anatomy.u_proximal) * pose.scale
    return bool(np.all((x > 0.01) & (x < 0.99) & (y > 0.01) & (y < 0.99)) and length > 0.7)


# --------------------------------------------------------------------------- textures


def bandpass_noise(rng: np.random.Generator, size: int, f0: float, rel_bw: float,
                   axis_angle: float | None = None, anisotropy: float = 0.0) -> Array:
    """Gaussian band-pass noise, ``(size, size)`` float32 with zero mean and unit std.

    ``f0`` is the centre frequency in cycles per image side. With ``axis_angle`` (the
    image direction, in radians from +x towards +y, that structures should run along)
    and ``anisotropy`` in [0, 1], power is moved to frequencies across that direction,
    so the texture is streaked along it (trabeculae along lines of stress).
    """
    white = rng.standard_normal((size, size), dtype=np.float32)
    spectrum = np.fft.rfft2(white)
    fy = (np.fft.fftfreq(size) * size).astype(np.float32)[:, None]
    fx = (np.fft.rfftfreq(size) * size).astype(np.float32)[None, :]
    freq = np.hypot(fx, fy)
    gain = np.exp(-0.5 * ((freq - f0) / (rel_bw * f0)) ** 2)
    if axis_angle is not None and anisotropy > 0:
        phi = np.arctan2(fy, fx)
        gain = gain * ((1.0 - anisotropy) + anisotropy * np.sin(phi - axis_angle) ** 4)
    out = np.fft.irfft2(spectrum * gain, s=(size, size)).astype(np.float32)
    std = float(out.std())
    return out / std if std > 0 else out


# --------------------------------------------------------------------------- lesions


@dataclass(frozen=True)
class LesionSpec:
    """How lesions of one bone look: type mix, size, shape and site (BTXRD-like).

    ``size_median`` and ``size_sigma`` define a log-normal law of the lesion box's
    geometric-mean side as a fraction of the image side; ``aspect`` bounds length/width
    (lesions grow along the shaft); ``eccentric`` is the chance that the lesion sits
    against the cortex instead of in the medulla; ``metaphysis`` the range of relative
    bone length of its most common site.
    """

    types: dict[str, float]
    size_median: float
    size_sigma: float
    aspect: tuple[float, float]
    eccentric: float
    metaphysis: tuple[float, float]


LESION_SPECS = {
    "femur": LesionSpec({"sclerotic_rim": 0.35, "geographic": 0.25, "permeative": 0.25,
                         "expansile": 0.15}, 0.165, 0.55, (1.2, 2.2), 0.15, (0.2, 0.45)),
    "tibia": LesionSpec({"sclerotic_rim": 0.5, "geographic": 0.2, "permeative": 0.2,
                         "expansile": 0.1}, 0.07, 0.6, (1.3, 2.5), 0.7, (0.18, 0.40)),
    "humerus": LesionSpec({"expansile": 0.4, "permeative": 0.3, "geographic": 0.2,
                           "sclerotic_rim": 0.1}, 0.15, 0.55, (1.1, 2.0), 0.1, (0.2, 0.45)),
}
# Box side / ellipse side: the rendered box of a rotated, lobulated outline is larger
# than the drawn ellipse; measured on rendered sets (docs/phantom.md) and divided out.
_BOX_GAIN = {"femur": 1.0, "tibia": 1.0, "humerus": 1.04}


@dataclass
class Lesion:
    """One lesion in the bone frame: an ellipse with lobulated outline and a margin."""

    kind: str
    u: float
    v: float
    a: float          # semi-axis along the bone (canonical units)
    b: float          # semi-axis across the bone
    tilt: float       # radians
    margin: float     # width of the soft edge, in units of the normalised radius
    contrast: float   # fraction of bone density removed at the centre, (0, 1)
    rim: float        # sclerotic rim strength (density added), >= 0
    cortex_loss: float
    lobes: tuple[tuple[int, float, float], ...]
    relative_site: float
    moth: Array | None = None


def size_scale(difficulty: float) -> float:
    """Lesion size factor: larger when easy, 1 at the default difficulty 0.5."""
    return 1.2 - 0.4 * difficulty


def lesion_contrast(difficulty: float) -> float:
    """Fraction of bone density a lesion removes: 0.9 (obvious) .. 0.1 (barely visible)."""
    return 0.1 + 0.8 * (1.0 - difficulty) ** 1.3


def sample_lesion(anatomy: Anatomy, pose: Pose, difficulty: float, size: int,
                  rng: np.random.Generator) -> Lesion:
    """A lesion of the bone's typical type, site and size, inside the bone."""
    spec = LESION_SPECS[anatomy.bone]
    kinds = list(spec.types)
    kind = kinds[int(rng.choice(len(kinds), p=np.array(list(spec.types.values()))))]
    # Site: mostly the metaphysis, then the diaphysis, rarely the ends.
    r = rng.random()
    lo, hi = spec.metaphysis
    if r < 0.62:
        site = float(rng.uniform(lo, hi))
    elif r < 0.9:
        site = float(rng.uniform(hi, 0.75))
    else:
        site = float(rng.uniform(0.08, lo)) if rng.random() < 0.5 else float(
            rng.uniform(0.75, 0.85))
    length = pose.axis_length_in_image(anatomy.u_proximal)
    u_c = anatomy.u_proximal + site * length
    # Target geometric-mean box side, in canonical units.
    side = spec.size_median * math.exp(spec.size_sigma * float(rng.standard_normal()))
    side = float(np.clip(side, 0.02, 0.42)) * size_scale(difficulty) / _BOX_GAIN[anatomy.bone]
    side = max(side, 3.0 / size) / pose.scale
    aspect = float(rng.uniform(*spec.aspect))
    b = side / 2.0 / math.sqrt(aspect)
    radius, cortex, _, shift = anatomy.shaft.radius(np.array(u_c))
    radius, cortex, shift = float(radius), float(cortex), float(shift)
    expand = 0.0
    if kind == "expansile":
        # The bulge of the cortex is as telling as the lucency: it fades with difficulty.
        expand = float(rng.uniform(0.1, 0.3)) * min(1.5, 2.0 * (1.0 - difficulty))
    room = radius * (1.0 + expand) - 0.5 * cortex
    eccentric = rng.random() < spec.eccentric
    if eccentric:
        b = min(b, 0.6 * room)
        v_c = float(rng.choice([-1.0, 1.0])) * (room - 0.85 * b)
    else:
        b = min(b, 0.92 * room)
        v_c = float(rng.uniform(-1, 1)) * max(room - b, 0.0) * 0.6
    a = min((side / 2.0) ** 2 / b, 3.2 * b, 0.3)
    a = max(a, b)
    # Contrast falls with difficulty; each type keeps its own character.
    contrast = lesion_contrast(difficulty) * float(rng.uniform(0.85, 1.1))
    rim = 0.0
    margin = 0.1
    cortex_loss = 0.5
    if kind == "sclerotic_rim":
        rim = float(rng.uniform(0.5, 0.9))
    elif kind == "expansile":
        rim = float(rng.uniform(0.1, 0.3))
        cortex_loss = 0.3
    elif kind == "permeative":
        margin = float(rng.uniform(0.35, 0.6))
        cortex_loss = 0.7
    if eccentric:
        cortex_loss = min(cortex_loss + 0.2, 0.9)
    lobes = tuple((k, float(rng.uniform(0.0, 0.09 if kind != "permeative" else 0.15)),
                   float(rng.uniform(0, 2 * math.pi))) for k in (2, 3, 4, 5))
    lesion = Lesion(kind, u_c, v_c + shift, a, b, float(rng.uniform(-0.25, 0.25)), margin,
                    min(contrast, 0.97), rim * (1.0 - 0.8 * difficulty), cortex_loss, lobes,
                    site)
    if kind == "expansile":
        anatomy.shaft.bulges.append((u_c, 0.75 * a, expand * radius, 0.6))
    if kind == "permeative":
        # Moth-eaten destruction: holes of a few trabecular spacings.
        holes = bandpass_noise(rng, size, 28.0 / pose.scale, 0.5)
        lesion.moth = np.clip(0.55 + 0.45 * np.tanh(1.5 * holes), 0.0, 1.0)
    return lesion


def lesion_fields(lesion: Lesion, u: Array, v: Array) -> tuple[Array, Array, Array]:
    """The lesion's extent ``p`` in [0, 1] (0.5 on its outline), its rim and its lysis.

    ``p`` is what an annotator outlines; ``lysis`` is the fraction of bone removed
    (``p`` times contrast, moth-eaten for permeative lesions); ``rim`` a band of
    sclerosis just outside the outline.
    """
    du, dv = u - lesion.u, v - lesion.v
    c, s = math.cos(lesion.tilt), math.sin(lesion.tilt)
    pu, pv = (c * du + s * dv) / lesion.a, (-s * du + c * dv) / lesion.b
    radius = np.sqrt(pu * pu + pv * pv)
    phi = np.arctan2(pv, pu)
    outline = np.ones_like(radius)
    for k, amp, phase in lesion.lobes:
        outline = outline + amp * np.cos(k * phi + phase)
    r_norm = radius / outline
    p = np.clip(0.5 - (r_norm - 1.0) / lesion.margin, 0.0, 1.0)
    p = p * p * (3.0 - 2.0 * p)  # smoothstep keeps 0.5 at the outline
    lysis = lesion.contrast * p
    if lesion.moth is not None:
        lysis = lysis * lesion.moth
    rim = lesion.rim * np.exp(-(((r_norm - 1.08) / 0.09) ** 2))
    return p, rim, lysis


def lesion_outline(lesion: Lesion, extent: np.ndarray, bone_mask: np.ndarray, pose: Pose,
                    size: int) -> tuple[np.ndarray, list[list[float]]]:
    """The lesion's mask (where its `extent` reaches 0.5, inside `bone_mask`, which
    gains the lesion's centre pixel if the lesion is smaller than a pixel) and its
    tight box."""
    lesion_mask = (extent >= 0.5) & bone_mask
    if not lesion_mask.any():
        cx, cy = pose.to_image(np.array(lesion.u), np.array(lesion.v))
        col = int(np.clip(float(cx) * size, 0, size - 1))
        row = int(np.clip(float(cy) * size, 0, size - 1))
        lesion_mask[row, col] = True
        bone_mask[row, col] = True
    rows = np.flatnonzero(lesion_mask.any(axis=1))
    cols = np.flatnonzero(lesion_mask.any(axis=0))
    return lesion_mask, [[float(cols[0]), float(rows[0]), float(cols[-1] + 1),
                          float(rows[-1] + 1)]]
