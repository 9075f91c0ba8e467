"""Make the two patch domains of one bone from the train split of a manifest.

Domain B (lesion): square crops around every real lesion box, with a context margin and
scale/position jitter. Domain A (healthy): crops from normal (label 0) images of the bone,
centred on the bone region, at the same anatomy scale as the lesion crops (crop sides are
drawn from the lesion crops' sides relative to image size), and kept only if bone fills
enough of them. Only ``split == "train"`` rows of origin ``real`` are used, so that no
validation or test image leaks into the generator.

Output layout (under ``out_dir/<bone>/``): ``healthy/`` and ``lesion/`` patch stores
(see `boneaug.patches.store`), ``lesion_stats.json`` and ``patches.json``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from boneaug.data import Manifest, read_image
from boneaug.data.films import check_negatives_from, normals_of, of_bone, positives_of
from boneaug.data.imageio import image_size
from boneaug.data.skips import SKIPPED_FILE, Skips, film_problem
from boneaug.errors import BoneaugError
from boneaug.files import write_json_atomic
from boneaug.patches.crop import crop_reflect, resize_square
from boneaug.patches.location import BoneLocator, encode_thumbnail, film_thumbnail
from boneaug.patches.region import bone_region, region_bbox, where_bone_lies
from boneaug.patches.store import INFO_FILE, to_uint16, write_patch_store

MIN_BONE_FRACTION = 0.3   # a healthy crop with less bone than this shows mostly soft tissue
TRIES_PER_PATCH = 25      # centre draws per healthy patch before giving up on it
SHARE_TOLERANCE = 0.1     # bone share of a healthy crop around its template's (shares=)
PROGRESS_MIN = 50         # images; below this a progress bar is noise


@dataclass
class PatchReport:
    """What `extract_patches` wrote: paths, counts and warnings."""

    bone: str
    bone_dir: Path
    healthy_dir: Path
    lesion_dir: Path
    stats_path: Path
    info_path: Path
    n_healthy: int
    n_lesion: int
    n_lesion_boxes: int
    n_lesion_images: int
    n_healthy_images: int
    warnings: list[str] = field(default_factory=list)
    skipped: Skips = field(default_factory=lambda: Skips("patches"))


@dataclass
class _Crop:
    patch: np.ndarray          # (size, size) float32 in [0, 1]
    box: tuple[int, int, int, int]
    row: dict[str, Any]


def extract_patches(
    manifest: Manifest,
    bone: str,
    size: int,
    out_dir: Path,
    *,
    per_lesion: int = 8,
    healthy_per_image: int = 4,
    context: float = 0.5,
    jitter: float = 0.15,
    seed: int = 0,
    min_healthy: int | None = None,
    negatives_from: tuple[str, ...] = (),
    min_bone_fraction: float = MIN_BONE_FRACTION,
    locate: bool = True,
    progress: bool = True,
) -> PatchReport:
    """Extract the healthy (A) and lesion (B) patch domains of `bone`; write them to disk.

    Args:
        manifest: a split manifest; only rows with ``split == "train"`` and origin
            ``real`` are read.
        bone: the bone whose domains to build (``femur``, ``tibia``, ...).
        size: patch side P in pixels; patches are ``(P, P)`` float in ``[0, 1]``.
        out_dir: the stores go to ``out_dir/<bone>/``.
        per_lesion: crops per lesion box (each with its own jitter).
        healthy_per_image: crops per normal image.
        context: margin around a lesion; crop side = longest box side * (1 + context).
        jitter: relative scale jitter (side * U(1 - j, 1 + j)) and position jitter (the
            box centre moves up to j * side from the crop centre, never leaving the crop).
        seed: seeds the one random generator threaded through everything.
        min_healthy: if given, draw more crops per normal image so that at least this
            many healthy patches are made, and raise if fewer could be made.
        negatives_from: extra bone or region names (e.g. ``("lower_limb",)``) whose
            normal images also count as healthy images of `bone` (BTXRD lists its normals
            by limb, not by bone).
        min_bone_fraction: a healthy crop is rejected if less of it than this is bone.
        locate: on a normal film without a mask of `bone`, cut healthy crops only where
            `bone` lies in such films (`boneaug.patches.location`): on a knee film, the
            femur's crops come from the distal femur, not the tibia.
        progress: show a progress bar on stderr for 50 images or more.

    Raises:
        BoneaugError: the manifest has no split, `bone` is not in the train split, it has
            no lesion box or no normal image there, too few healthy patches could be made,
            or more than half of its lesion films or of its normal films could not be used
            (unreadable, too small, no bone found: each skipped with its reason in
            ``skipped.csv``, `boneaug.data.skips`).
    """
    _check_settings(size, per_lesion, healthy_per_image, context, jitter)
    _check_out(Path(out_dir), bone)
    name = str(manifest.source) if manifest.source else "manifest"
    lesion_rows, healthy_rows, warnings = _select_rows(manifest, bone, negatives_from, name)
    check_patch_fits(manifest, lesion_rows, bone, size, name)
    if min_healthy is not None and min_healthy > 0:
        healthy_per_image = max(healthy_per_image, math.ceil(min_healthy / len(healthy_rows)))
    # An earlier run's completion marker goes first: if this run is interrupted, the folder
    # must not pass for complete with a mix of old and new stores.
    (Path(out_dir) / bone / INFO_FILE).unlink(missing_ok=True)
    settings = {
        "per_lesion": per_lesion, "healthy_per_image": healthy_per_image,
        "context": context, "jitter": jitter, "seed": seed, "min_healthy": min_healthy,
        "negatives_from": list(negatives_from), "min_bone_fraction": min_bone_fraction,
        "locate": locate,
    }
    cuts = _cut(manifest, bone, size, lesion_rows, healthy_rows, settings, progress)
    warnings += cuts.warnings
    skips = cuts.skips
    lesion_ids = {r["image_id"] for r in lesion_rows}
    skips.check(len(lesion_rows), f"{bone} lesion films in train",
                skipped=len(skips.ids() & lesion_ids))
    skips.check(len(healthy_rows), f"normal train films of {bone}",
                skipped=len(skips.ids() - lesion_ids))
    if not cuts.healthy:
        raise BoneaugError(f"{name}: no healthy {bone} patch could be cut: no normal train "
                           f"image had >= {min_bone_fraction:.0%} bone in its crops")
    if min_healthy is not None and len(cuts.healthy) < min_healthy:
        raise BoneaugError(f"{name}: only {len(cuts.healthy)} healthy {bone} patches could "
                           f"be cut, fewer than min_healthy={min_healthy}")

    bone_dir = Path(out_dir) / bone
    write_patch_store(bone_dir / "lesion", _stack(cuts.lesion, size), _index(cuts.lesion))
    write_patch_store(bone_dir / "healthy", _stack(cuts.healthy, size), _index(cuts.healthy))
    write_json_atomic(bone_dir / "lesion_stats.json", _stats_json(bone, cuts.lesion_stats))
    skips.write(bone_dir)
    info = {
        "bone": bone, "size": size, "dtype": "uint16", "scale": 65535, "manifest": name,
        "split": "train", "settings": settings,
        "counts": {
            "healthy": len(cuts.healthy), "lesion": len(cuts.lesion),
            "lesion_boxes": len(cuts.lesion_stats), "lesion_images": len(lesion_rows),
            "healthy_images": len(healthy_rows),
            "healthy_images_used": cuts.healthy_images_used, "skipped_films": len(skips),
        },
        "crop_side_rel": {"lesion": _summary(cuts.side_rel),
                          "healthy": _summary([c.row["side_rel"] for c in cuts.healthy])},
        "warnings": warnings,
    }
    write_json_atomic(bone_dir / INFO_FILE, info)  # last: its presence marks a complete folder
    return PatchReport(
        bone=bone, bone_dir=bone_dir, healthy_dir=bone_dir / "healthy",
        lesion_dir=bone_dir / "lesion", stats_path=bone_dir / "lesion_stats.json",
        info_path=bone_dir / INFO_FILE, n_healthy=len(cuts.healthy),
        n_lesion=len(cuts.lesion), n_lesion_boxes=len(cuts.lesion_stats),
        n_lesion_images=len(lesion_rows), n_healthy_images=len(healthy_rows),
        warnings=warnings + ([skips.summary()] if len(skips) else []), skipped=skips,
    )


def _check_settings(size: int, per_lesion: int, healthy_per_image: int, context: float,
                    jitter: float) -> None:
    if size < 8:
        raise BoneaugError(f"patch size must be at least 8 px, got {size}")
    if per_lesion < 1 or healthy_per_image < 1:
        raise BoneaugError("per_lesion and healthy_per_image must be at least 1")
    if context < 0 or not 0 <= jitter < 1:
        raise BoneaugError(f"need context >= 0 and 0 <= jitter < 1 (got {context}, {jitter})")


def check_patch_fits(manifest: Manifest, rows: list[dict], bone: str, size: int,
                     name: str) -> None:
    """Refuse a patch `size` larger than the shorter side of every lesion film of `rows`
    (their headers only): each patch would be blown up from a film smaller than itself.
    Films that cannot be read are not judged here (they are skipped when read)."""
    sides = []
    for row in rows:
        with contextlib.suppress(BoneaugError):
            sides.append(min(image_size(manifest.resolve(row["path"]))))
    if sides and size > max(sides):
        raise BoneaugError(f"{name}: patch size {size} px is larger than every {bone} lesion "
                           f"film (the largest is {max(sides)} px on its shorter side); "
                           f"choose a patch size of at most {max(sides)}")


@dataclass
class _Cuts:
    """The crops `_cut` made, with what it learnt on the way."""

    lesion: list[_Crop] = field(default_factory=list)
    healthy: list[_Crop] = field(default_factory=list)
    lesion_stats: list[dict[str, Any]] = field(default_factory=list)
    side_rel: list[float] = field(default_factory=list)  # lesion crop side / shorter side
    healthy_images_used: int = 0
    warnings: list[str] = field(default_factory=list)
    skips: Skips = field(default_factory=lambda: Skips("patches"))


def _cut(manifest: Manifest, bone: str, size: int, lesion_rows: list[dict],
         healthy_rows: list[dict], settings: dict[str, Any], progress: bool) -> _Cuts:
    """Read each film once and cut its crops: lesion films first, because the healthy crop
    sizes are drawn from the lesion crops' sizes and A's place in a film from B's sites."""
    seed = settings["seed"]
    rng = np.random.default_rng(seed)
    todo = [("lesion", r) for r in lesion_rows] + [("healthy", r) for r in healthy_rows]
    bar = tqdm(todo, desc=f"patches {bone}", unit="img", file=sys.stderr,
               disable=not progress or len(todo) < PROGRESS_MIN or not sys.stderr.isatty())
    cuts = _Cuts()
    locator: BoneLocator | None = None
    for kind, row in bar:
        image = read_film(manifest, row, cuts.skips)
        if image is None:
            continue
        if kind == "lesion":
            region, region_source = bone_region(manifest, row, image, bone)
            thumb = encode_thumbnail(film_thumbnail(image, blank=row["boxes"]))
            for box in row["boxes"]:
                cuts.lesion_stats.append(_lesion_stat(row, box, image.shape, region,
                                                      region_source, thumb))
                for crop in lesion_crops(image, box, size, settings["per_lesion"],
                                          settings["context"], settings["jitter"], rng):
                    crop.row = _index_row(row, manifest, crop.box, seed, box=box,
                                          side_rel=_rel(crop.box, image.shape))
                    cuts.lesion.append(crop)
                    cuts.side_rel.append(crop.row["side_rel"])
            continue
        if locator is None and cuts.lesion_stats:
            locator = BoneLocator.from_stats(cuts.lesion_stats)
        region, region_source = bone_region(manifest, row, image, bone)
        centres = where_bone_lies(image, region, region_source,
                                  locator if settings["locate"] else None)
        if not centres.any():
            cuts.skips.add(row["image_id"], row["path"], "no bone found" if not region.any()
                           else f"no bone where {bone} lies in films like it")
            continue
        wanted, fraction_min = settings["healthy_per_image"], settings["min_bone_fraction"]
        made = draw_healthy_crops(image, region, centres, size, wanted, cuts.side_rel,
                                  fraction_min, rng)
        if len(made) < wanted:
            cuts.warnings.append(f"{row['image_id']}: only {len(made)} of {wanted} healthy "
                                 f"crops had >= {fraction_min:.0%} bone")
        cuts.healthy_images_used += bool(made)
        for crop, fraction in made:
            crop.row = _index_row(row, manifest, crop.box, seed,
                                  side_rel=_rel(crop.box, image.shape),
                                  bone_fraction=round(fraction, 4))
            cuts.healthy.append(crop)
    bar.close()
    return cuts


# --------------------------------------------------------------------------- rows


# what `extract_patches` writes into OUT/<bone>/: an earlier run's, replaced
PATCH_OUTPUTS = frozenset({"healthy", "lesion", "lesion_stats.json", SKIPPED_FILE, INFO_FILE})


def _check_out(out_dir: Path, bone: str) -> None:
    """Refuse an output that is a file, or a bone folder holding anything this command did
    not write there (someone's files are never written among or over)."""
    for folder in (out_dir, out_dir / bone):
        if folder.exists() and not folder.is_dir():
            raise BoneaugError(f"{folder}: exists and is not a folder; --out must be a folder")
    bone_dir = out_dir / bone
    theirs = sorted(p.name for p in bone_dir.iterdir() if p.name not in PATCH_OUTPUTS) \
        if bone_dir.is_dir() else []
    if theirs:
        raise BoneaugError(f"{bone_dir}: holds {theirs[0]!r}, which `boneaug patches` does not "
                           "write; choose an empty or new --out")


def _select_rows(manifest: Manifest, bone: str, negatives_from: tuple[str, ...],
                 name: str) -> tuple[list[dict], list[dict], list[str]]:
    """The lesion rows and healthy rows of `bone` in the real train split, and warnings."""
    table = manifest.table
    if not (table["split"].astype(str) != "").any():
        raise BoneaugError(f"{name}: has no split column values; run `boneaug split` first "
                           "(patches are cut from the train split only)")
    check_negatives_from(table, negatives_from, name)
    train = table[(table["split"] == "train") & (table["origin"] == "real")]
    bones_there = sorted(set(train["bone"]))
    if not of_bone(train, bone).any():
        raise BoneaugError(f"{name}: no {bone!r} image in the train split; bones there: "
                           f"{', '.join(bones_there) or 'none'}")
    records = train.to_dict("records")
    positives = [r for r, p in zip(records, positives_of(train, bone), strict=True) if p]
    lesion_rows = [r for r in positives if r["boxes"]]
    warnings: list[str] = []
    unboxed = len(positives) - len(lesion_rows)
    if unboxed:
        warnings.append(f"{unboxed} {bone} positive(s) in train have no lesion box; skipped")
    if not lesion_rows:
        raise BoneaugError(f"{name}: no lesion box for {bone!r} in the train split "
                           f"({len(positives)} positive(s), none with boxes)")
    healthy_rows = [r for r, n in zip(records, normals_of(train, bone, negatives_from),
                                      strict=True) if n]
    if not healthy_rows:
        hint = "" if negatives_from else "; if its normals are labelled by region, run " \
            "`boneaug bones` to learn which of them show it"
        raise BoneaugError(f"{name}: no normal (label 0) {bone!r} image in the train split"
                           f"{hint}")
    return lesion_rows, healthy_rows, warnings


def read_film(manifest: Manifest, row: dict, skips: Skips) -> np.ndarray | None:
    """The row's image, or None (recorded in `skips` with the reason) when it is unusable."""
    path = manifest.resolve(row["path"])
    try:
        image = read_image(path)
    except BoneaugError as exc:
        skips.add(row["image_id"], row["path"], str(exc).removeprefix(f"{path}: "))
        return None
    problem = film_problem(image.shape)
    if problem:
        skips.add(row["image_id"], row["path"], problem)
        return None
    return image


# --------------------------------------------------------------------------- crops


def square_box(cx: float, cy: float, side: int) -> tuple[int, int, int, int]:
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    return x0, y0, x0 + side, y0 + side


def lesion_crops(image: np.ndarray, box: list[float], size: int, count: int, context: float,
                 jitter: float, rng: np.random.Generator) -> list[_Crop]:
    """`count` square crops around the lesion `box` (side: its longest side x (1 +
    `context`), scale and position jittered by `jitter`, the box always inside), each
    resized to `size`; `crop.patch` is the patch, `crop.box` where it was cut."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    longest = max(w, h)
    base = longest * (1.0 + context)
    crops = []
    for _ in range(count):
        side = max(base * rng.uniform(1.0 - jitter, 1.0 + jitter), longest, 2.0)
        # The shift never pushes the box out of the crop, so every patch shows its lesion.
        dx, dy = rng.uniform(-1.0, 1.0, size=2)
        dx *= min(jitter * side, max(0.0, (side - w) / 2))
        dy *= min(jitter * side, max(0.0, (side - h) / 2))
        crop_box = square_box((x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy, int(round(side)))
        crops.append(_Crop(resize_square(crop_reflect(image, crop_box), size), crop_box, {}))
    return crops


def draw_healthy_crops(image: np.ndarray, region: np.ndarray, centres: np.ndarray, size: int,
                       count: int, side_rel: list[float], min_bone: float,
                       rng: np.random.Generator, *, avoid: list[list[float]] | None = None,
                       tries: int = TRIES_PER_PATCH, keep_side: bool = False,
                       shares: list[float] | None = None
                       ) -> list[tuple[_Crop, float]]:
    """Up to `count` crops centred on pixels of `centres` (where the bone lies), each with
    a share >= `min_bone` of bone (`region`) and overlapping none of the boxes `avoid`
    (``[x0, y0, x1, y1]``: the lesions of a lesion film, whose healthy parts are wanted).
    Returns (crop, bone share) pairs; a crop's side is a shorter image side times one of
    `side_rel`, its `row` is empty. `keep_side`: a crop keeps the side first drawn over all
    its tries, so that the sides made follow `side_rel` (redrawing favours small sides,
    which fit on bone and beside lesions more easily, and the region level's healthy
    regions would differ from its lesion regions by scale). `shares` (one per `side_rel`):
    a crop drawn with the k-th side must hold the k-th share of bone within
    `SHARE_TOLERANCE` (and some bone) instead of `min_bone`, so that the crops made hold
    as much bone as the regions the sides came from: not more, not less."""
    ys, xs = np.nonzero(centres)
    if ys.size == 0:
        return []
    height, width = image.shape
    short = min(height, width)
    rel = np.asarray(side_rel, dtype=np.float64)
    if shares is not None and len(shares) != rel.size:
        raise ValueError(f"{len(shares)} bone shares for {rel.size} sides")
    made: list[tuple[_Crop, float]] = []
    for _ in range(count):
        side, low, high = 0, min_bone, 1.0
        for _ in range(tries):
            if not (keep_side and side):
                pick = int(rng.integers(rel.size))
                side = int(np.clip(round(rel[pick] * short), 2, short))
                if shares is not None:
                    low = max(shares[pick] - SHARE_TOLERANCE, 0.01)  # and some bone
                    high = shares[pick] + SHARE_TOLERANCE
            k = rng.integers(ys.size)
            # Keep the crop inside the image: normal images have no lesion that forces a
            # position, so there is no reason to invent reflected borders.
            cx = float(np.clip(xs[k] + 0.5, side / 2, width - side / 2))
            cy = float(np.clip(ys[k] + 0.5, side / 2, height - side / 2))
            crop_box = square_box(cx, cy, side)
            if avoid and any(boxes_overlap(crop_box, box) for box in avoid):
                continue
            bx0, by0, bx1, by1 = crop_box
            fraction = float(region[max(by0, 0):by1, max(bx0, 0):bx1].sum()) / (side * side)
            if low <= fraction <= high:
                patch = resize_square(crop_reflect(image, crop_box), size)
                made.append((_Crop(patch, crop_box, {}), fraction))
                break
    return made


def boxes_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two ``[x0, y0, x1, y1]`` boxes (ends exclusive) share any area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _rel(crop_box: tuple[int, int, int, int], shape: tuple[int, int]) -> float:
    return round((crop_box[2] - crop_box[0]) / min(shape), 6)


# --------------------------------------------------------------------------- outputs


def _index_row(row: dict, manifest: Manifest, crop_box: tuple[int, int, int, int], seed: int,
               *, box: list[float] | None = None, side_rel: float,
               bone_fraction: float | None = None) -> dict[str, Any]:
    lesion = box if box is not None else ["", "", "", ""]
    return {
        "image_id": row["image_id"],
        "path": str(manifest.resolve(row["path"])),
        "bone": row["bone"],
        "x0": crop_box[0], "y0": crop_box[1], "x1": crop_box[2], "y1": crop_box[3],
        "lesion_x0": lesion[0], "lesion_y0": lesion[1],
        "lesion_x1": lesion[2], "lesion_y1": lesion[3],
        "side_rel": side_rel,
        "bone_fraction": "" if bone_fraction is None else bone_fraction,
        "seed": seed,
    }


def _stack(crops: list[_Crop], size: int) -> np.ndarray:
    if not crops:
        return np.zeros((0, size, size), np.uint16)
    return to_uint16(np.stack([c.patch for c in crops]))


def _index(crops: list[_Crop]) -> pd.DataFrame:
    table = pd.DataFrame([c.row for c in crops])
    table.insert(0, "patch", np.arange(len(table)))
    return table


def _lesion_stat(row: dict, box: list[float], shape: tuple[int, int], region: np.ndarray,
                 region_source: str, thumb: str) -> dict[str, Any]:
    """Where a lesion sits and how big it is, relative to the image and the bone's box; the
    film's thumbnail, by which `BoneLocator` finds the bone in similar films."""
    height, width = shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    stat: dict[str, Any] = {
        "image_id": row["image_id"], "box": [float(v) for v in box],
        "image_height": height, "image_width": width,
        "width_rel": round((x1 - x0) / width, 6), "height_rel": round((y1 - y0) / height, 6),
        "centre_rel": [round(cx / width, 6), round(cy / height, 6)], "thumb": thumb,
        "region_source": region_source,
    }
    bbox = region_bbox(region)
    if bbox is None:
        stat.update(region_bbox=None, long_axis=None, along=None, across=None)
        return stat
    rx0, ry0, rx1, ry1 = bbox
    rel_x, rel_y = (cx - rx0) / (rx1 - rx0), (cy - ry0) / (ry1 - ry0)
    vertical = (ry1 - ry0) >= (rx1 - rx0)
    stat.update(region_bbox=list(bbox), long_axis="y" if vertical else "x",
                along=round(rel_y if vertical else rel_x, 6),
                across=round(rel_x if vertical else rel_y, 6))
    return stat


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    v = np.asarray(values, dtype=np.float64)
    return {"n": int(v.size), "median": float(np.median(v)), "min": float(v.min()),
            "max": float(v.max())}


def _stats_json(bone: str, stats: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(key: str) -> list[float]:
        return [s[key] for s in stats if s.get(key) is not None]

    return {
        "bone": bone,
        "split": "train",
        "n_boxes": len(stats),
        "summary": {key: _summary(pick(key))
                    for key in ("width_rel", "height_rel", "along", "across")},
        "boxes": stats,
    }
