"""Phantom radiographs of long bones with exact ground truth: the built-in data set.

`render_radiograph` draws one radiograph-like image of a proximal femur (head, neck,
trochanters, with the acetabulum), a proximal tibia (flared plateau, fibula, often the
distal femur) or a proximal humerus (round head, tubercle, glenoid): a cortical tube
around a darker medullary canal, trabecular texture at the ends, inside a soft-tissue
envelope, in a random pose with random exposure, blur and detector noise, optionally
with collimation edges and a lead side marker. A lesion is lucent, geographic (with or
without a sclerotic rim), expansile or permeative, with per-bone site, size and type
(`phantom_anatomy.LESION_SPECS`). `make_phantom` writes a whole data set and its
manifest. With ``films="mixed"`` it writes instead joint and multi-bone films with views,
centres, ages and region labels like real data (`phantom_mixedset`, which renders with
`phantom_mixed`). See docs/phantom.md for the model and its measured statistics.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from boneaug.data.imageio import write_png16
from boneaug.data.manifest import Manifest, new_table, save_manifest
from boneaug.data.phantom_anatomy import (
    Anatomy,
    Lesion,
    Pose,
    bandpass_noise,
    lesion_fields,
    lesion_outline,
    pixel_grid,
    roi_corners,
    sample_anatomy,
    sample_lesion,
    sample_pose,
    union_chords,
)
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_out_dir
from boneaug.runinfo import write_run_json

PHANTOM_BONES = ("femur", "tibia", "humerus")
FILM_MODES = ("single", "mixed")

# Linear attenuation per canonical unit of path (soft tissue ~1); bone is ~16x denser.
MU_FAT, MU_MUSCLE, MU_BONE, MU_LEAD = 0.75, 1.0, 16.0, 60.0
RHO_CORTEX, RHO_TRABECULAR, RHO_MARROW = 1.0, 0.17, 0.035


@dataclass
class PhantomConfig:
    """How many images of which bones to render, and how hard the lesions are."""

    bones: tuple[str, ...] = PHANTOM_BONES
    normal: int = 60          # normal images per bone
    lesion: int = 6           # lesion images per bone
    size: int = 256           # image side in pixels (square images)
    difficulty: float = 0.5   # 0 = obvious lesions, 1 = barely visible
    seed: int = 0
    distractors: bool = True  # collimation edges, side markers (and text, mixed films)
    # "single": one long bone per film (the benchmark); "mixed": joint and multi-bone
    # films with views, centres, ages and region labels like real data (docs/phantom.md).
    films: str = "single"
    labelled_normals: float = 0.2  # mixed: share of normals that name their main bone
    confound: float = 0.0     # mixed: chance that metadata follow the label's profile
    awkward: int = 0          # mixed: blank, marks-only and inverted films per region
    extra: dict = field(default_factory=dict)


@dataclass
class PhantomImage:
    """One rendered radiograph: image in [0, 1] (H, W), masks bool (H, W), boxes in px.

    ``boxes`` holds one ``[x0, y0, x1, y1]`` per lesion (x1/y1 exclusive, inside the
    image), empty for a normal image. ``lesion_type`` is one of
    `phantom_anatomy.LESION_TYPES` or ``""``; ``lesion_site`` the lesion centre's position
    along the visible bone, 0 at the proximal end and 1 where the axis leaves the image.
    """

    image: np.ndarray
    bone_mask: np.ndarray
    lesion_mask: np.ndarray
    boxes: list[list[float]]
    lesion_type: str = ""
    lesion_site: float = float("nan")


# --------------------------------------------------------------------------- rendering


def render_radiograph(bone: str, with_lesion: bool, size: int, difficulty: float,
                      rng: np.random.Generator, distractors: bool = True) -> PhantomImage:
    """Render one `size` x `size` phantom radiograph of `bone`.

    The random stream is split into anatomy, lesion, detector and distractor streams,
    so that the same `rng` state with and without a lesion gives the same limb, pose,
    exposure, noise and distractors, differing only by the lesion (a lesion-free twin).

    Returns a `PhantomImage`: ``image`` float32 (size, size) in [0, 1], bone bright on a
    dark background; ``bone_mask`` the visible pixels of the named bone (neighbouring
    bones excluded); ``lesion_mask`` a subset of it, empty without a lesion.
    """
    if bone not in PHANTOM_BONES:
        raise BoneaugError(f"phantom: unknown bone {bone!r}; the phantom renders only "
                           f"{', '.join(PHANTOM_BONES)}")
    if not 0.0 <= difficulty <= 1.0:
        raise BoneaugError(f"phantom: difficulty {difficulty} is outside [0, 1]")
    if size < 32:
        raise BoneaugError(f"phantom: image size {size} is below 32 pixels")
    anatomy_rng, lesion_rng, detector_rng, distractor_rng = rng.spawn(4)
    anatomy = sample_anatomy(bone, anatomy_rng)
    pose = sample_pose(anatomy, anatomy_rng)
    px = size / 256.0  # pixel lengths below are tuned at 256 px
    axis_angle = math.atan2(math.cos(pose.angle), -math.sin(pose.angle))
    trabecular = bandpass_noise(anatomy_rng, size, 36.0 / pose.scale, 0.45, axis_angle, 0.6)
    soft_texture = bandpass_noise(anatomy_rng, size, 3.0, 0.8, axis_angle, 0.7)

    lesion = sample_lesion(anatomy, pose, difficulty, size, lesion_rng) if with_lesion else None

    x, y = pixel_grid(size)
    u, v = pose.to_bone(x, y)
    u, v = u.astype(np.float32), v.astype(np.float32)
    density, bone_mask = _bone_density(anatomy, u, v, trabecular, lesion)
    attenuation = MU_BONE * density + _soft_tissue(anatomy, u, v, soft_texture)

    plan = _distractor_plan(anatomy, pose, size, distractor_rng) if distractors else None
    if plan is not None and plan.marker is not None:
        row, col, patch = plan.marker
        attenuation[row:row + patch.shape[0], col:col + patch.shape[1]] += MU_LEAD * 0.02 * patch

    image = _expose(attenuation, px, detector_rng)
    field_mask = np.ones((size, size), bool)
    if plan is not None:
        image, field_mask = collimate(image, plan.field, plan.outside, detector_rng)
    bone_mask &= field_mask

    lesion_mask = np.zeros((size, size), bool)
    boxes: list[list[float]] = []
    if lesion is not None:
        extent, _, _ = lesion_fields(lesion, u, v)
        lesion_mask, boxes = lesion_outline(lesion, extent, bone_mask, pose, size)
    return PhantomImage(image, bone_mask, lesion_mask, boxes,
                        lesion.kind if lesion is not None else "",
                        lesion.relative_site if lesion is not None else float("nan"))


def _bone_density(anatomy: Anatomy, u: np.ndarray, v: np.ndarray, trabecular: np.ndarray,
                  lesion: Lesion | None) -> tuple[np.ndarray, np.ndarray]:
    """Projected bone density (imaged bone + neighbours) and the imaged bone's mask."""
    outer, inner = union_chords(anatomy.parts, u, v)
    mask = outer > 0
    # Trabeculae: a network of thin struts, drawn as the zero crossings of band-pass noise.
    struts = np.exp(-((trabecular / 0.55) ** 2))
    spongy = RHO_TRABECULAR * (0.25 + 1.3 * struts)
    at_end = 1.0 / (1.0 + np.exp((u - anatomy.trabecular_until) / 0.05))
    interior = RHO_MARROW + at_end * spongy + (1 - at_end) * 0.15 * spongy
    cortex = RHO_CORTEX * (outer - inner)
    if lesion is not None:
        _, rim, lysis = lesion_fields(lesion, u, v)
        rim = rim * mask
        # A lytic lesion replaces bone by soft tissue: trabeculae and part of the cortex
        # go; a sclerotic rim is reactive bone just outside its margin.
        interior = interior * (1.0 - lysis) + lysis * RHO_MARROW * 0.5
        cortex = cortex * (1.0 - lesion.cortex_loss * lysis)
        interior = interior + rim * RHO_TRABECULAR * 1.2
    density = cortex + inner * interior
    if anatomy.context:
        c_outer, c_inner = union_chords(anatomy.context, u, v)
        # Neighbouring bones superimpose on the imaged one, as in any projection.
        density = density + RHO_CORTEX * (c_outer - c_inner) + c_inner * (RHO_MARROW + spongy)
    return density.astype(np.float32), mask


def _soft_tissue(anatomy: Anatomy, u: np.ndarray, v: np.ndarray,
                 texture: np.ndarray) -> np.ndarray:
    """Attenuation of the limb's soft tissue: fat around muscle, with fascial planes."""
    radius = anatomy.soft_radius * (1.0 + anatomy.soft_taper * (u - 0.4))
    dv2 = (v - anatomy.soft_shift) ** 2
    envelope = 1.6 * np.sqrt(np.maximum(radius**2 - dv2, 0.0))
    muscle = 1.6 * np.sqrt(np.maximum((radius - anatomy.fat) ** 2 - dv2, 0.0))
    soft = MU_FAT * envelope + (MU_MUSCLE - MU_FAT) * muscle * (1.0 + 0.08 * texture)
    if anatomy.torso is not None:
        torso, _ = anatomy.torso.chords(u, v)
        soft = np.maximum(soft, 0.8 * torso)
    return soft.astype(np.float32)


def _expose(attenuation: np.ndarray, px: float, rng: np.random.Generator) -> np.ndarray:
    """Detector and display: blur, log-signal to grey, edge enhancement, window, noise."""
    blurred = ndimage.gaussian_filter(attenuation, sigma=float(rng.uniform(0.5, 1.4)) * px)
    tau = 2.0 * float(rng.uniform(0.8, 1.25))
    grey = 1.0 - np.exp(-blurred / tau)
    # Most processed radiographs are edge-enhanced (unsharp masking).
    amount = float(rng.uniform(0.0, 0.8))
    grey = grey + amount * (grey - ndimage.gaussian_filter(grey, sigma=6.0 * px))
    lo, hi = float(rng.uniform(-0.08, 0.05)), float(rng.uniform(0.88, 1.08))
    grey = np.clip((grey - lo) / (hi - lo), 0.0, 1.0) ** float(rng.uniform(0.8, 1.25))
    sigma = float(rng.uniform(0.008, 0.03))
    noise = rng.standard_normal(grey.shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=0.6 * px) * 1.8
    grey = grey + sigma * np.sqrt(grey + 0.05) * noise
    return np.clip(grey, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- distractors


@dataclass
class _DistractorPlan:
    """Collimated field (pixel bounds, exclusive) and shutter level; marker placement."""

    field: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    outside: float
    marker: tuple[int, int, np.ndarray] | None


def _distractor_plan(anatomy: Anatomy, pose: Pose, size: int,
                     rng: np.random.Generator) -> _DistractorPlan:
    """Collimation edges and a side marker that never cover the lesion-bearing bone."""
    xs, ys = roi_corners(anatomy, pose, until=0.9)
    roi = (float(xs.min()) * size, float(ys.min()) * size, float(xs.max()) * size,
           float(ys.max()) * size)
    bounds = [0.0, 0.0, float(size), float(size)]
    for side in range(4):
        if rng.random() < 0.5:
            continue
        room = roi[side] if side < 2 else size - roi[side]
        inset = float(rng.uniform(0.02, 0.16)) * size
        inset = min(inset, max(room - 0.02 * size, 0.0))
        bounds[side] = inset if side < 2 else size - inset
    outside = float(rng.uniform(0.8, 0.97)) if rng.random() < 0.6 else float(
        rng.uniform(0.0, 0.05))
    marker = None
    if rng.random() < 0.85:
        m = max(9, int(round(size * float(rng.uniform(0.055, 0.08)))))
        letter = ("R" if pose.mirror > 0 else "L") if rng.random() < 0.9 else (
            "L" if pose.mirror > 0 else "R")
        pad = int(0.02 * size) + 1
        spots = []
        for cx in (bounds[0] + pad, bounds[2] - pad - m):
            for cy in (bounds[1] + pad, bounds[3] - pad - m):
                box = (cx, cy, cx + m, cy + m)
                inside = cx >= 0 and cy >= 0 and cx + m <= size and cy + m <= size
                clear = box[2] < roi[0] or box[0] > roi[2] or box[3] < roi[1] or box[1] > roi[3]
                if inside and clear:
                    spots.append((int(cy), int(cx)))
        if spots:
            row, col = spots[int(rng.integers(len(spots)))]
            marker = (row, col, marker_patch(letter, m, bool(rng.random() < 0.5)))
    return _DistractorPlan((bounds[0], bounds[1], bounds[2], bounds[3]), outside, marker)


def marker_patch(letter: str, m: int, framed: bool) -> np.ndarray:
    """A lead letter ``L`` or ``R`` drawn with strokes, ``(m, m)`` float32 in [0, 1]."""
    canvas = Image.new("L", (m, m), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, m // 7)
    x0, y0, x1, y1 = 0.25 * m, 0.18 * m, 0.75 * m, 0.82 * m
    if letter == "L":
        draw.line([(x0, y0), (x0, y1), (x1, y1)], fill=255, width=width, joint="curve")
    else:
        ym = 0.5 * m
        draw.line([(x0, y1), (x0, y0), (0.55 * m, y0)], fill=255, width=width, joint="curve")
        draw.arc([0.35 * m, y0, x1, ym], start=-90, end=90, fill=255, width=width)
        draw.line([(x0, ym), (0.55 * m, ym), (x1, y1)], fill=255, width=width, joint="curve")
    if framed:
        draw.rectangle([0, 0, m - 1, m - 1], outline=160, width=max(1, m // 12))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def collimate(image: np.ndarray, field: tuple[float, float, float, float], outside: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blank the image outside the collimated `field` (x0, y0, x1, y1 in pixels, soft
    penumbra) to the grey level `outside`; the image and the field mask."""
    size = image.shape[0]
    centres = np.arange(size, dtype=np.float32) + 0.5
    x0, y0, x1, y1 = field
    fx = np.clip(centres - x0 + 0.5, 0, 1) * np.clip(x1 - centres + 0.5, 0, 1)
    fy = np.clip(centres - y0 + 0.5, 0, 1) * np.clip(y1 - centres + 0.5, 0, 1)
    inside = ndimage.gaussian_filter(fy[:, None] * fx[None, :], sigma=0.8 * size / 256.0)
    level = outside + 0.01 * rng.standard_normal(image.shape, dtype=np.float32)
    out = inside * image + (1.0 - inside) * level
    return np.clip(out, 0.0, 1.0).astype(np.float32), inside > 0.5


# --------------------------------------------------------------------------- data set


def image_rng(seed: int, bone: str, label: int, index: int) -> np.random.Generator:
    """The generator of one image, from (seed, bone, label, index) only.

    Asking for more images (or other bones) never changes the earlier ones. The bone
    enters by a checksum of its name, so the order of ``bones`` does not matter.
    """
    key = [int(seed), zlib.crc32(bone.encode("utf-8")), int(label), int(index)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def validate_config(config: PhantomConfig) -> None:
    """Raise `BoneaugError` (one line) for a config the phantom cannot render."""
    if not config.bones:
        raise BoneaugError("phantom: no bones given; choose from " + ", ".join(PHANTOM_BONES))
    for bone in config.bones:
        if bone not in PHANTOM_BONES:
            raise BoneaugError(f"phantom: unknown bone {bone!r}; the phantom renders only "
                               f"{', '.join(PHANTOM_BONES)}")
    if len(set(config.bones)) != len(config.bones):
        raise BoneaugError(f"phantom: bone listed twice in {','.join(config.bones)}")
    if config.normal < 0 or config.lesion < 0:
        raise BoneaugError("phantom: --normal and --lesion must be 0 or more")
    if config.films not in FILM_MODES:
        raise BoneaugError(f"phantom: --films {config.films!r} must be one of "
                           f"{', '.join(FILM_MODES)}")
    for name in ("labelled_normals", "confound"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0.0 <= value <= 1.0):
            raise BoneaugError(f"phantom: --{name.replace('_', '-')} {value!r} must be a "
                               "number within [0, 1]")
    if isinstance(config.awkward, bool) or not isinstance(config.awkward, int) or (
            config.awkward < 0):
        raise BoneaugError(f"phantom: --awkward {config.awkward!r} must be a whole number, "
                           "0 or more")
    if config.films == "single" and (config.confound > 0 or config.awkward > 0):
        raise BoneaugError("phantom: --confound and --awkward need --films mixed")
    if config.normal + config.lesion + (config.awkward if config.films == "mixed" else 0) == 0:
        raise BoneaugError("phantom: nothing to render (--normal 0 --lesion 0)")
    if not 32 <= config.size <= 4096:
        raise BoneaugError(f"phantom: --size {config.size} must be within 32..4096 pixels")
    if not 0.0 <= config.difficulty <= 1.0:
        raise BoneaugError(f"phantom: --difficulty {config.difficulty} must be within [0, 1]")
    if config.seed < 0:
        raise BoneaugError(f"phantom: --seed {config.seed} must be 0 or more")


# Everything a phantom folder can hold, in either layout; run.json last, so that the
# folder is recognised as ours again only when it is complete.
_OUTPUTS = ("images", "masks", "manifest.csv", "sheet.png", "Annotations", "dataset.csv",
            "truth.csv", "truth_masks", "run.json")


def make_phantom(out_dir: str | Path, config: PhantomConfig) -> Path:
    """Render the data set into `out_dir` and return the path of its manifest.csv.

    Writes ``images/<id>.png`` (16-bit), ``masks/<id>_bone.png`` and, for lesion images,
    ``masks/<id>_lesion.png`` (8-bit, 0/255), ``manifest.csv``, ``sheet.png`` (a contact
    sheet) and ``run.json`` (mixed films: one mask per visible bone instead of
    ``_bone.png``, see `phantom_mixedset`). Everything is rendered into a staging folder
    beside `out_dir` and moved in at the end, so a failure leaves `out_dir` as it was; an
    earlier phantom in `out_dir` is replaced without leaving stale files.
    """
    started = time.time()
    validate_config(config)

    def fill(staging: Path) -> None:
        if config.films == "mixed":
            from boneaug.data.phantom_mixedset import render_mixed_set

            rows, extra = render_mixed_set(staging, config)
        else:
            rows, stats = _render_set(staging, config)
            extra = {"lesion_box_side": stats}
        table = new_table(rows)
        save_manifest(Manifest(table, root=staging.resolve()), staging / "manifest.csv")
        write_run_json(staging, "phantom", config_dict(config), config.seed, started,
                       extra={"images": len(rows), **extra})

    write_staged(Path(out_dir), fill)
    return Path(out_dir) / "manifest.csv"


def write_staged(out_dir: Path, fill: Callable[[Path], None]) -> None:
    """Let `fill` write a phantom folder into a staging folder beside `out_dir`, then
    replace `out_dir`'s phantom outputs by it (`out_dir` must be new, empty or an
    earlier phantom; a failure leaves it as it was)."""
    check_out_dir(out_dir, "phantom")
    parent = out_dir.resolve().parent  # resolved: `--out .` must stage beside, not inside
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.resolve().name}.phantom-", dir=parent))
    try:
        fill(staging)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in _OUTPUTS:
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for name in _OUTPUTS:
            if (staging / name).exists():
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def config_dict(config: PhantomConfig) -> dict:
    """The config as plain JSON-able data (for run.json)."""
    data = dataclasses.asdict(config)
    data["bones"] = list(config.bones)
    return data


def _render_set(root: Path, config: PhantomConfig) -> tuple[list[dict], dict]:
    """Render every image into `root`; the manifest rows and lesion-size statistics."""
    from tqdm import tqdm

    jobs = [(bone, label, index) for bone in config.bones
            for label, count in ((0, config.normal), (1, config.lesion))
            for index in range(count)]
    rows: list[dict] = []
    sheet: dict[tuple[str, int], list[PhantomImage]] = {}
    sides: dict[str, list[float]] = {bone: [] for bone in config.bones}
    bar = tqdm(jobs, desc="phantom", unit="img", file=sys.stderr,
               disable=not sys.stderr.isatty() or len(jobs) < 50)
    for bone, label, index in bar:
        kind = "lesion" if label else "normal"
        image_id = f"{bone}-{kind}-{index:04d}"
        rendered = render_radiograph(bone, bool(label), config.size, config.difficulty,
                                     image_rng(config.seed, bone, label, index),
                                     config.distractors)
        write_png16(root / "images" / f"{image_id}.png", rendered.image)
        write_mask(root / "masks" / f"{image_id}_bone.png", rendered.bone_mask)
        mask_path = ""
        if label:
            mask_path = f"masks/{image_id}_lesion.png"
            write_mask(root / mask_path, rendered.lesion_mask)
            for x0, y0, x1, y1 in rendered.boxes:
                sides[bone].append(math.sqrt((x1 - x0) * (y1 - y0)) / config.size)
        rows.append({
            "image_id": image_id, "path": f"images/{image_id}.png", "patient_id": image_id,
            "bone": bone, "label": label, "boxes": rendered.boxes, "mask_path": mask_path,
            "origin": "real", "bone_mask_path": f"masks/{image_id}_bone.png",
            "difficulty": f"{config.difficulty:g}", "phantom_seed": str(config.seed),
            "lesion_type": rendered.lesion_type,
        })
        group = sheet.setdefault((bone, label), [])
        if len(group) < 4:
            group.append(rendered)
    _write_sheet(root / "sheet.png", config.bones, sheet)
    stats = {bone: quantiles(values) for bone, values in sides.items() if values}
    return rows, stats


def quantiles(values: list[float]) -> dict[str, float]:
    q10, q50, q90 = np.quantile(np.asarray(values), [0.1, 0.5, 0.9])
    return {"n": len(values), "p10": round(float(q10), 4), "median": round(float(q50), 4),
            "p90": round(float(q90), 4)}


def write_mask(path: Path, mask: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG")


def _write_sheet(path: Path, bones: tuple[str, ...],
                 groups: dict[tuple[str, int], list[PhantomImage]], tile: int = 160) -> None:
    """A contact sheet: one row per bone and label, lesion boxes outlined in red."""
    rows = [(bone, label) for bone in bones for label in (0, 1) if groups.get((bone, label))]
    cols = max((len(groups[key]) for key in rows), default=1)
    label_w = 90
    sheet = Image.new("RGB", (label_w + cols * (tile + 4), max(len(rows), 1) * (tile + 4)),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (bone, label) in enumerate(rows):
        top = r * (tile + 4) + 2
        draw.text((6, top + tile // 2 - 6), f"{bone}\n{'lesion' if label else 'normal'}",
                  fill=(230, 230, 230))
        for c, item in enumerate(groups[(bone, label)]):
            grey = Image.fromarray(np.round(item.image * 255).astype(np.uint8), mode="L")
            scale = tile / item.image.shape[1]
            thumb = grey.resize((tile, tile), Image.Resampling.BILINEAR).convert("RGB")
            left = label_w + c * (tile + 4) + 2
            sheet.paste(thumb, (left, top))
            for x0, y0, x1, y1 in item.boxes:
                draw.rectangle([left + x0 * scale - 1, top + y0 * scale - 1,
                                left + x1 * scale, top + y1 * scale], outline=(255, 60, 60))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


__all__ = ["FILM_MODES", "PHANTOM_BONES", "PhantomConfig", "PhantomImage", "image_rng",
           "make_phantom", "render_radiograph", "validate_config"]
