"""Upper-limb films of the mixed phantom: shoulder and elbow, AP and lateral.

Conventions as in `phantom_lower`: each builder returns a `phantom_layout.Film` in the
frame of the main bone, ``v`` medial in frontal films and anterior in lateral ones. The
lateral shoulder is the scapular "Y" view (the scapula edge-on, its body the stem of the
Y, acromion and coracoid the arms, the humeral head over the centre); the lateral elbow
is flexed to a right angle, the forearm running across the image.
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
    widest,
)
from boneaug.data.phantom_layout import (
    uniform as _u,
)


def shoulder(view: str, rng: np.random.Generator) -> Film:
    """Proximal humerus, scapula and clavicle (humerus frame, u down the arm)."""
    w = _u(rng, 0.88, 1.12)
    head_r = 0.14 * w * _u(rng, 0.94, 1.06)
    if view == "frontal":
        shaft = Shaft(u_end=0.07, r_end=0.135 * w, r_shaft=0.082 * w, flare=0.14,
                      rounding=0.05, depth_end=0.9, cortex_end=0.01, cortex_shaft=0.021 * w,
                      u_diaphysis=0.36, v_shift_end=0.01)
        hu, hv = 0.13, 0.055 * w
        humerus = [shaft, Ellipsoid(hu, hv, head_r, head_r, head_r * 0.95, cortex=0.008),
                   Ellipsoid(0.075, -0.095 * w, 0.075 * w, 0.06 * w, 0.06 * w, cortex=0.008)]
        # The proximal humeral physis runs obliquely, higher laterally (tubercle side).
        physes = [Physis(0.15, 0.01, 0.16 * w, angle=math.pi / 2 - 0.45)]
        gv = hv + head_r + _u(rng, 0.015, 0.035)  # glenoid, across the joint space
        scapula = [Ellipsoid(hu + 0.01, gv + 0.03, 0.12, 0.045, 0.04, cortex=0.01),
                   Capsule((hu + 0.02, gv + 0.06), (hu + 0.25, gv + 0.40), 0.08, cortex=0.012,
                           depth=0.35),
                   Ellipsoid(hu + 0.36, gv + 0.3, 0.3, 0.16, 0.015, cortex=0.008),
                   Capsule((-0.05, gv + 0.03), (-0.035, hv - 0.09), 0.03, cortex=0.01),
                   Ellipsoid(hu - 0.07, gv + 0.06, 0.035, 0.06, 0.04, cortex=0.008)]
        clavicle = [Capsule((-0.075, gv + 0.02), (-0.17, gv + 0.6), 0.032, cortex=0.01)]
        origin_y = (0.12, 0.24)
    else:
        shaft = Shaft(u_end=0.07, r_end=0.12 * w, r_shaft=0.08 * w, flare=0.14,
                      rounding=0.05, depth_end=1.0, cortex_end=0.01, cortex_shaft=0.021 * w,
                      u_diaphysis=0.36)
        hu, hv = 0.13, -0.015
        humerus = [shaft, Ellipsoid(hu, hv, head_r, head_r * 0.95, head_r, cortex=0.008),
                   Ellipsoid(0.10, 0.10 * w, 0.04, 0.03, 0.05, cortex=0.007),
                   Ellipsoid(0.08, -0.02, 0.07, 0.06, 0.07, cortex=0.008)]
        physes = [Physis(0.16, 0.0, 0.15 * w, angle=math.pi / 2 + 0.15)]
        # The scapula edge-on: a dense "Y" centred on the humeral head.
        scapula = [Capsule((hu + 0.05, hv), (hu + 0.6, hv - 0.05), 0.04, cortex=0.012,
                           depth=1.0),
                   Capsule((hu - 0.02, hv - 0.02), (hu - 0.23, hv - 0.17), 0.028, cortex=0.01,
                           depth=1.2),
                   Capsule((hu - 0.02, hv + 0.02), (hu - 0.17, hv + 0.17), 0.024, cortex=0.01),
                   Ellipsoid(hu, hv, 0.06, 0.06, 0.09, cortex=0.01)]
        clavicle = [Ellipsoid(hu - 0.22, hv + 0.06, 0.04, 0.065, 0.1, cortex=0.01)]
        origin_y = (0.24, 0.32)
    bones = [BoneLayer("humerus", humerus, spongy_until=0.34, physes=physes),
             BoneLayer("scapula", scapula), BoneLayer("clavicle", clavicle)]
    soft = [SoftLayer([Capsule((0.0, 0.0), (2.0, 0.0), _u(rng, 0.27, 0.34),
                               cortex=_u(rng, 0.02, 0.06), depth=0.8)]),
            SoftLayer([Ellipsoid(0.35, 0.75, 0.9, 0.45, 0.3)], torso=True)]
    hw = max(widest(shaft, 0.0, 0.9), abs(hv) + head_r + 0.02)
    main = lesion_handle("humerus", shaft, hu - head_r, hw)
    return Film("shoulder", view, bones, soft, main, angle=0.0, origin_y=origin_y,
                min_visible=0.55)


def elbow(view: str, rng: np.random.Generator) -> Film:
    """Distal humerus, radius and ulna (humerus frame, u up the arm from the joint)."""
    w = _u(rng, 0.88, 1.12)
    fat = _u(rng, 0.02, 0.05)
    if view == "frontal":
        shaft = Shaft(u_end=0.0, r_end=0.19 * w, r_shaft=0.075 * w, flare=0.07,
                      rounding=0.05, depth_end=0.5, cortex_end=0.008, cortex_shaft=0.02 * w,
                      u_diaphysis=0.3)
        humerus = [shaft,
                   Ellipsoid(0.06, 0.15 * w, 0.035, 0.04, 0.03, cortex=0.007),  # epicondyles
                   Ellipsoid(0.06, -0.135 * w, 0.03, 0.035, 0.03, cortex=0.007),
                   Ellipsoid(0.015, 0.045 * w, 0.03, 0.06 * w, 0.05, cortex=0.008),
                   Ellipsoid(0.02, -0.065 * w, 0.03, 0.05 * w, 0.045, cortex=0.008)]
        hum_physes = [Physis(0.065, 0.0, 0.14 * w)]
        radius_place = Placement.turned(math.pi, (-0.02, -0.07 * w))
        ulna_place = Placement.turned(math.pi, (-0.025, 0.055 * w))
        radius = [Ellipsoid(0.02, 0.0, 0.022, 0.05 * w, 0.05, cortex=0.006),
                  Capsule((0.03, 0.0), (0.12, 0.005), 0.026, cortex=0.007),
                  Ellipsoid(0.14, 0.025, 0.03, 0.025, 0.025, cortex=0.006),
                  Capsule((0.12, 0.005), (1.3, -0.04), 0.033 * w, cortex=0.009)]
        ulna = [Ellipsoid(0.025, 0.0, 0.05, 0.055 * w, 0.05, cortex=0.008),
                Ellipsoid(-0.035, 0.005, 0.045, 0.045, 0.035, cortex=0.008),  # olecranon
                Capsule((0.04, 0.0), (0.35, 0.01), 0.04 * w, cortex=0.009),
                Capsule((0.3, 0.01), (1.3, 0.02), 0.03 * w, cortex=0.009)]
        rad_physes = [Physis(0.035, 0.0, 0.045 * w, width=0.01)]
        uln_physes = [Physis(-0.03, 0.0, 0.035, width=0.01)]
        forearm = radius_place
    else:
        shaft = Shaft(u_end=0.03, r_end=0.09 * w, r_shaft=0.07 * w, flare=0.1, rounding=0.04,
                      depth_end=1.3, cortex_end=0.008, cortex_shaft=0.02 * w,
                      u_diaphysis=0.3)
        ju, jv = 0.05, 0.05 * w  # centre of the capitellum-trochlea circle
        humerus = [shaft, Ellipsoid(ju, jv, 0.045, 0.045, 0.1, cortex=0.008),
                   Ellipsoid(ju + 0.006, jv - 0.008, 0.036, 0.036, 0.08, cortex=0.008)]
        hum_physes = [Physis(0.1, 0.0, 0.09 * w)]
        # Forearm flexed at a right angle: its axis runs anteriorly (+V), its own +v up
        # the film towards the humerus.
        radius_place = ulna_place = Placement((0.0, 1.0), (1.0, 0.0), (ju - 0.07, jv - 0.10))
        ulna = [Ellipsoid(0.04, 0.06, 0.05, 0.045, 0.05, cortex=0.008),       # olecranon
                Ellipsoid(0.125, 0.03, 0.028, 0.032, 0.05, cortex=0.007),     # coronoid
                Capsule((0.05, 0.02), (0.25, -0.01), 0.04, cortex=0.009),
                Capsule((0.22, -0.01), (1.3, 0.0), 0.032 * w, cortex=0.009)]
        radius = [Ellipsoid(0.165, 0.07, 0.022, 0.048, 0.05, cortex=0.006),
                  Capsule((0.18, 0.065), (0.25, 0.055), 0.024, cortex=0.007),
                  Capsule((0.24, 0.055), (1.3, 0.02), 0.031 * w, cortex=0.009)]
        rad_physes = [Physis(0.185, 0.065, 0.03)]
        uln_physes = [Physis(0.03, 0.06, 0.03, angle=math.pi / 2 - 0.3)]
        forearm = Placement((0.0, 1.0), (1.0, 0.0), (ju - 0.05, jv - 0.10))
    bones = [BoneLayer("humerus", humerus, spongy_until=0.22, physes=hum_physes),
             BoneLayer("radius", radius, radius_place, spongy_until=0.21 if view != "frontal"
                       else 0.12, physes=rad_physes),
             BoneLayer("ulna", ulna, ulna_place, spongy_until=0.2 if view != "frontal"
                       else 0.15, physes=uln_physes)]
    soft = [SoftLayer([Capsule((-0.05, 0.0), (2.0, 0.0), _u(rng, 0.18, 0.23), cortex=fat,
                               depth=0.8)]),
            SoftLayer([Capsule((-0.1, 0.0), (2.0, 0.0), _u(rng, 0.16, 0.21), cortex=fat,
                               depth=0.8)], forearm)]
    main = lesion_handle("elbow", shaft, -0.12, 0.0)
    return Film("elbow", view, bones, soft, main, angle=math.pi, origin_y=(0.45, 0.6),
                min_visible=0.3, keep=(-0.12, 0.25, 0.2))
