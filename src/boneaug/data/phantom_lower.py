"""Lower-limb films of the mixed phantom: hip, knee (two framings) and ankle, AP and lateral.

Each builder returns a `phantom_layout.Film` in the frame of the film's main bone, with
every bone as its own layer. Sizes are canonical (fractions of the image side at pose
scale 1) and follow the single-bone films of `phantom_anatomy` where the bone is the
same; ``w`` is the random calibre of the limb. In frontal films ``v`` points medially,
in lateral films anteriorly. The lateral films are approximations that keep what a
reader recognises: superimposed condyles, the fibula over the tibia, the patella in
front, some flexion; the foot in profile; the femoral head over a foreshortened neck.
"""

from __future__ import annotations

import math

import numpy as np

from boneaug.data.phantom_anatomy import Capsule, Ellipsoid, Shaft
from boneaug.data.phantom_layout import (
    BoneLayer,
    Film,
    Physis,
    Placement,
    SoftLayer,
    lesion_handle,
    reframe,
    widest,
)
from boneaug.data.phantom_layout import (
    uniform as _u,
)


def _arc(centre: tuple[float, float], radius: float, start: float, stop: float,
         thickness: float, pieces: int = 4) -> list[Capsule]:
    """A curved cortical band (e.g. the acetabular roof) as short capsules.

    Angles in radians from -u (up the bone) towards +v.
    """
    angles = np.linspace(start, stop, pieces + 1)
    points = [(centre[0] - radius * math.cos(a), centre[1] + radius * math.sin(a))
              for a in angles]
    return [Capsule(p, q, thickness, cortex=0.008) for p, q in zip(points, points[1:],
                                                                    strict=False)]


# --------------------------------------------------------------------------- hip


def hip(view: str, rng: np.random.Generator) -> Film:
    """Proximal femur with the pelvis around its head (femur frame, u down the shaft)."""
    w = _u(rng, 0.88, 1.12)
    head_r = 0.1 * w * _u(rng, 0.94, 1.06)
    if view == "frontal":
        shaft = Shaft(u_end=0.10, r_end=0.14 * w, r_shaft=0.10 * w, flare=0.13, rounding=0.06,
                      depth_end=0.8, cortex_end=0.011, cortex_shaft=0.024 * w,
                      u_diaphysis=0.36, v_shift_end=-0.04 * w)
        angle = math.radians(_u(rng, 40.0, 55.0))  # 180 - neck-shaft angle
        base = (0.27, 0.04 * w)
        neck_len = _u(rng, 0.24, 0.28) * w
        head = (base[0] - math.cos(angle) * neck_len, base[1] + math.sin(angle) * neck_len)
        femur = [shaft, Capsule(base, head, 0.07 * w, cortex=0.012, depth=0.85),
                 Ellipsoid(head[0], head[1], head_r, head_r, head_r, cortex=0.008),
                 Ellipsoid(0.15, -0.10 * w, 0.085 * w, 0.07 * w, 0.065 * w, cortex=0.009),
                 Ellipsoid(0.36, 0.10 * w, 0.045 * w, 0.03 * w, 0.025 * w, cortex=0.007)]
        # The capital physis crosses the head where it meets the neck; the trochanter has
        # its own apophysis.
        physes = [Physis(head[0] + 0.45 * head_r * math.cos(angle),
                         head[1] - 0.45 * head_r * math.sin(angle), 0.9 * head_r,
                         angle=math.pi / 2 - angle),
                  Physis(0.19, -0.11 * w, 0.06, width=0.01)]
        hu, hv = head
        cup = head_r + 0.013
        # The ilium rises from the acetabular roof, its outline running up and out of the
        # image; below, the pubic rami and the ischium ring the obturator foramen.
        pelvis = [Capsule((hu - cup - 0.12, hv + 0.05), (hu - 0.8, hv - 0.02), 0.12,
                          cortex=0.012, depth=0.3),
                  Ellipsoid(hu - 0.56, hv + 0.14, 0.34, 0.34, 0.035, cortex=0.012),  # wing
                  *_arc(head, cup, -0.8, 1.3, 0.02),                   # acetabular roof
                  Capsule((hu - 0.01, hv + cup + 0.01), (hu + 0.09, hv + cup + 0.02), 0.012),
                  Capsule((hu + 0.08, hv + 0.03), (hu + 0.25, hv + 0.05), 0.036, depth=0.5),
                  Ellipsoid(hu + 0.25, hv + 0.08, 0.05, 0.05, 0.03, cortex=0.01),  # ischium
                  Capsule((hu + 0.04, hv + 0.11), (hu + 0.10, hv + 0.42), 0.03, depth=0.55),
                  Capsule((hu + 0.27, hv + 0.10), (hu + 0.17, hv + 0.40), 0.022, depth=0.6)]
        hw = max(widest(shaft, 0.0, 0.9), head[1] + head_r + 0.02)
    else:
        # Lateral: the anteverted neck points at the viewer, so it is short; the head sits
        # over the top of the shaft and the greater trochanter overlaps it behind.
        shaft = Shaft(u_end=0.11, r_end=0.115 * w, r_shaft=0.095 * w, flare=0.12,
                      rounding=0.06, depth_end=1.0, cortex_end=0.011, cortex_shaft=0.024 * w,
                      u_diaphysis=0.36)
        head = (0.05, _u(rng, 0.05, 0.09) * w)
        femur = [shaft, Capsule((0.20, 0.0), head, 0.065 * w, cortex=0.012, depth=1.1),
                 Ellipsoid(head[0], head[1], head_r, head_r, head_r, cortex=0.008),
                 Ellipsoid(0.14, -0.05 * w, 0.08 * w, 0.06 * w, 0.09 * w, cortex=0.009),
                 Ellipsoid(0.33, -0.10 * w, 0.04 * w, 0.03 * w, 0.025 * w, cortex=0.007)]
        physes = [Physis(head[0] + 0.5 * head_r, head[1] - 0.2 * head_r, 0.9 * head_r,
                         angle=math.pi / 2 + 0.4)]
        hu, hv = head
        cup = head_r + 0.014
        pelvis = [*_arc(head, cup, -2.4, -0.3, 0.014, 3), *_arc(head, cup, 0.4, 2.3, 0.014, 3),
                  Capsule((hu - 0.05, hv - 0.05), (hu - 0.40, hv - 0.17), 0.07, depth=0.35),
                  Ellipsoid(hu - 0.30, hv - 0.05, 0.18, 0.1, 0.02, cortex=0.01),
                  Capsule((hu + 0.06, hv - 0.08), (hu + 0.28, hv - 0.20), 0.05, depth=0.45),
                  Capsule((hu + 0.03, hv + 0.09), (hu + 0.13, hv + 0.30), 0.035, depth=0.5)]
        hw = max(widest(shaft, 0.0, 0.9), head[1] + head_r + 0.02)
    bones = [BoneLayer("femur", femur, spongy_until=0.36, physes=physes),
             BoneLayer("pelvis", pelvis)]
    soft = [SoftLayer([Capsule((-0.1, 0.0), (2.0, -0.05), _u(rng, 0.40, 0.52),
                               cortex=_u(rng, 0.03, 0.08), depth=0.8)]),
            SoftLayer([Ellipsoid(head[0] - 0.3, head[1] + 0.65, 0.9, 0.95, 0.35)], torso=True)]
    main = lesion_handle("femur", shaft, head[0] - head_r, hw)
    return Film("hip", view, bones, soft, main, angle=0.0, origin_y=(0.2, 0.32),
                min_visible=0.55)


# --------------------------------------------------------------------------- knee


def _knee_bones(view: str, rng: np.random.Generator, w: float
                ) -> tuple[list[BoneLayer], list[SoftLayer], Shaft, Shaft]:
    """Knee anatomy in the tibia's frame (u down from the plateau); the two shafts."""
    gap = _u(rng, 0.03, 0.05)  # joint space
    thigh, leg = _u(rng, 0.34, 0.42), _u(rng, 0.28, 0.36)
    fat = _u(rng, 0.02, 0.06)
    if view == "frontal":
        tibia_shaft = Shaft(u_end=0.0, r_end=0.23 * w, r_shaft=0.092 * w, flare=0.10,
                            rounding=0.03, depth_end=0.62, cortex_end=0.008,
                            cortex_shaft=0.022 * w, u_diaphysis=0.40, v_shift_end=0.015 * w)
        tibia = [tibia_shaft,
                 Ellipsoid(0.005, 0.028 * w, 0.025, 0.016, 0.04, cortex=0.006),
                 Ellipsoid(0.005, -0.028 * w, 0.022, 0.016, 0.04, cortex=0.006)]
        fib_v = -0.185 * w
        fibula = [Ellipsoid(0.10, fib_v, 0.045 * w, 0.038 * w, 0.04 * w, cortex=0.007),
                  Capsule((0.12, fib_v), (1.6, fib_v + 0.05), 0.028 * w, cortex=0.01)]
        femur_shaft = Shaft(u_end=0.0, r_end=0.21 * w, r_shaft=0.10 * w, flare=0.12,
                            rounding=0.07, depth_end=0.75, cortex_end=0.009,
                            cortex_shaft=0.028 * w, u_diaphysis=0.4)
        femur = [femur_shaft,
                 Ellipsoid(0.07, 0.10 * w, 0.07, 0.10 * w, 0.07, cortex=0.008),
                 Ellipsoid(0.07, -0.10 * w, 0.07, 0.10 * w, 0.07, cortex=0.008)]
        patella = [Ellipsoid(_u(rng, 0.11, 0.16), -0.02 * w, 0.07 * w, 0.058 * w, 0.035,
                             cortex=0.008)]
        femur_place = Placement.turned(math.pi + math.radians(_u(rng, -4.0, 4.0)),
                                       (-gap, 0.0))
        tib_physis = [Physis(0.055, 0.01, 0.24 * w)]
        fib_physis = [Physis(0.085, fib_v, 0.04 * w, width=0.01)]
        fem_physis = [Physis(0.11, 0.0, 0.22 * w)]
    else:
        tibia_shaft = Shaft(u_end=0.0, r_end=0.17 * w, r_shaft=0.085 * w, flare=0.10,
                            rounding=0.03, depth_end=1.25, cortex_end=0.008,
                            cortex_shaft=0.022 * w, u_diaphysis=0.40, v_shift_end=-0.025 * w)
        tibia = [tibia_shaft,
                 Ellipsoid(0.11, 0.12 * w, 0.06, 0.035, 0.04, cortex=0.007),  # tuberosity
                 Ellipsoid(0.0, -0.01, 0.03, 0.025, 0.05, cortex=0.006)]
        fibula = [Ellipsoid(0.10, -0.10 * w, 0.042 * w, 0.036 * w, 0.04 * w, cortex=0.007),
                  Capsule((0.12, -0.10 * w), (1.6, -0.05 * w), 0.026 * w, cortex=0.01)]
        femur_shaft = Shaft(u_end=0.02, r_end=0.15 * w, r_shaft=0.085 * w, flare=0.14,
                            rounding=0.06, depth_end=1.2, cortex_end=0.009,
                            cortex_shaft=0.028 * w, u_diaphysis=0.4, v_shift_end=0.02 * w)
        # The two condyles superimpose, never perfectly: a double contour behind the shaft.
        offset = _u(rng, 0.006, 0.02)
        femur = [femur_shaft,
                 Ellipsoid(0.085, -0.05 * w, 0.085, 0.095 * w, 0.07, cortex=0.008),
                 Ellipsoid(0.085 + offset, -0.05 * w - offset, 0.08, 0.09 * w, 0.06,
                           cortex=0.008)]
        patella = [Ellipsoid(_u(rng, 0.12, 0.17), 0.19 * w, 0.075 * w, 0.03 * w, 0.06,
                             cortex=0.007)]
        flex = math.radians(_u(rng, 5.0, 35.0))
        femur_place = Placement.turned(math.pi - flex, (-gap, -0.015))
        tib_physis = [Physis(0.06, 0.02, 0.2 * w, angle=math.pi / 2 - 0.12)]
        fib_physis = [Physis(0.085, -0.10 * w, 0.04 * w, width=0.01)]
        fem_physis = [Physis(0.12, 0.0, 0.17 * w)]
    bones = [BoneLayer("tibia", tibia, spongy_until=0.30, physes=tib_physis),
             BoneLayer("fibula", fibula, spongy_until=0.16, physes=fib_physis),
             BoneLayer("femur", femur, femur_place, spongy_until=0.30, physes=fem_physis),
             BoneLayer("patella", patella, femur_place)]
    soft = [SoftLayer([Capsule((-0.05, 0.0), (2.0, 0.0), leg, cortex=fat, depth=0.8)]),
            SoftLayer([Capsule((-0.05, 0.0), (2.0, 0.0), thigh, cortex=fat, depth=0.8)],
                      femur_place)]
    return bones, soft, tibia_shaft, femur_shaft


def knee(view: str, rng: np.random.Generator, centred_on: str) -> Film:
    """A knee film centred on the proximal tibia or on the distal femur.

    Tibia-centred (``knee_tibia``): the frame of the tibia, plateau near the top of the
    image, the distal femur as context above. Femur-centred (``knee_femur``): the frame
    of the distal femur, whose axis runs up the image from the condyles; the joint and
    the proximal tibia and fibula below it.
    """
    w = _u(rng, 0.88, 1.12)
    bones, soft, tibia_shaft, femur_shaft = _knee_bones(view, rng, w)
    if centred_on == "tibia":
        main = lesion_handle("tibia", tibia_shaft, -0.02, widest(tibia_shaft, 0.0, 0.9))
        return Film("knee_tibia", view, bones, soft, main, angle=0.0, origin_y=(0.24, 0.38),
                    min_visible=0.5)
    bones, soft = reframe(bones, soft, "femur")
    main = lesion_handle("femur", femur_shaft, 0.0, widest(femur_shaft, 0.0, 0.9))
    return Film("knee_femur", view, bones, soft, main, angle=math.pi, origin_y=(0.6, 0.76),
                min_visible=0.5)


# --------------------------------------------------------------------------- ankle


def ankle(view: str, rng: np.random.Generator) -> Film:
    """Distal tibia and fibula with the talus and calcaneus (tibia frame, u up the leg).

    The lateral film is the awkward one of real sets: the foot in profile runs across
    the image, its tarsal and metatarsal bones superimposed.
    """
    w = _u(rng, 0.88, 1.12)
    fat = _u(rng, 0.02, 0.05)
    if view == "frontal":
        shaft = Shaft(u_end=0.0, r_end=0.15 * w, r_shaft=0.08 * w, flare=0.08,
                      rounding=0.02, depth_end=0.75, cortex_end=0.007,
                      cortex_shaft=0.02 * w, u_diaphysis=0.3, v_shift_end=0.01)
        tibia = [shaft, Ellipsoid(-0.025, 0.125 * w, 0.06, 0.03 * w, 0.035, cortex=0.007)]
        # The fibula runs down beside the tibia, overlapping it at the syndesmosis, and
        # its malleolus flanks the talus lower than the medial one.
        fibula = [Ellipsoid(-0.045, -0.15 * w, 0.075, 0.032 * w, 0.035, cortex=0.007),
                  Capsule((-0.01, -0.145 * w), (0.25, -0.115 * w), 0.03 * w, cortex=0.009),
                  Capsule((0.25, -0.115 * w), (1.5, -0.125 * w), 0.026 * w, cortex=0.009)]
        foot = [Ellipsoid(-0.07, 0.0, 0.055, 0.115 * w, 0.09, cortex=0.008),    # talus
                Ellipsoid(-0.17, -0.02, 0.075, 0.1 * w, 0.1, cortex=0.008),      # calcaneus
                Ellipsoid(-0.14, 0.08 * w, 0.045, 0.06 * w, 0.04, cortex=0.007)]
        soft_parts = [Capsule((0.0, 0.0), (2.0, 0.0), _u(rng, 0.22, 0.27), cortex=fat,
                              depth=0.8),
                      Ellipsoid(-0.14, 0.0, 0.2, 0.25, 0.2, cortex=fat)]
        tib_physis = [Physis(0.045, 0.0, 0.15 * w)]
        fib_physis = [Physis(0.0, -0.145 * w, 0.035 * w, width=0.01)]
    else:
        shaft = Shaft(u_end=0.0, r_end=0.12 * w, r_shaft=0.075 * w, flare=0.09,
                      rounding=0.02, depth_end=1.1, cortex_end=0.007,
                      cortex_shaft=0.02 * w, u_diaphysis=0.3, v_shift_end=0.01)
        tibia = [shaft, Ellipsoid(-0.02, 0.01, 0.05, 0.04, 0.06, cortex=0.007)]
        fibula = [Ellipsoid(-0.045, -0.04 * w, 0.07, 0.035 * w, 0.035, cortex=0.007),
                  Capsule((0.0, -0.045 * w), (1.5, -0.02 * w), 0.025 * w, cortex=0.009)]
        foot = [Ellipsoid(-0.065, 0.0, 0.055, 0.085 * w, 0.08, cortex=0.008),   # talar dome
                Capsule((-0.08, 0.04), (-0.095, 0.15 * w), 0.035, cortex=0.008),  # neck
                Ellipsoid(-0.095, 0.16 * w, 0.04, 0.04, 0.07, cortex=0.008),     # head
                Capsule((-0.185, -0.09 * w), (-0.17, 0.1 * w), 0.055, cortex=0.009,
                        depth=1.2),                                               # calcaneus
                Ellipsoid(-0.19, -0.11 * w, 0.065, 0.05, 0.07, cortex=0.009),    # its tuber
                Ellipsoid(-0.10, 0.22 * w, 0.045, 0.025, 0.06, cortex=0.007),    # navicular
                Ellipsoid(-0.175, 0.2 * w, 0.045, 0.04, 0.05, cortex=0.007),     # cuboid
                Ellipsoid(-0.12, 0.28 * w, 0.045, 0.04, 0.07, cortex=0.007)]     # cuneiforms
        for du, dv in ((-0.012, 0.0), (0.0, 0.01), (0.014, 0.02)):  # metatarsals, overlapping
            foot.append(Capsule((-0.14 + du, 0.32 * w + dv), (-0.235 + du, 0.72 * w + dv),
                                0.024, cortex=0.008))
        soft_parts = [Capsule((0.0, 0.0), (2.0, 0.0), _u(rng, 0.17, 0.22), cortex=fat,
                              depth=0.9),
                      Capsule((-0.14, -0.16), (-0.2, 0.95), 0.12, cortex=fat, depth=0.9)]
        tib_physis = [Physis(0.045, 0.0, 0.12 * w, angle=math.pi / 2 + 0.08)]
        fib_physis = [Physis(0.0, -0.04 * w, 0.03 * w, width=0.01)]
    bones = [BoneLayer("tibia", tibia, spongy_until=0.22, physes=tib_physis),
             BoneLayer("fibula", fibula, spongy_until=0.12, physes=fib_physis),
             BoneLayer("foot", foot)]
    main = lesion_handle("ankle", shaft, -0.26, 0.0)
    return Film("ankle", view, bones, [SoftLayer(soft_parts)], main, angle=math.pi,
                origin_y=(0.5, 0.64), min_visible=0.3, keep=(-0.26, 0.3, 0.2))
