"""What every importer shares: bone names, box clipping, lesion masks, the final check-and-write.

An importer turns a layout into row dicts (manifest fields plus extra columns), each with
a *location* (``"data.csv line 7"``, ``"Annotations/IMG000001.json"``) so that a problem
found later by `validate_manifest` is reported against the user's own file and row, not
against a manifest that was never written. `finish` validates, writes the lesion masks,
then writes the manifest atomically: bad input leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from boneaug.data.files import atomic_path
from boneaug.data.manifest import (
    BONES,
    REGIONS,
    Manifest,
    new_table,
    save_manifest,
    validate_manifest,
)
from boneaug.errors import BoneaugError

Box = list[float]
Point = tuple[float, float]

# Names a user (or a data set) writes for a manifest bone; looked up after lower-casing
# and turning spaces/hyphens into '_'. Joints drop their "_joint" suffix.
BONE_ALIASES = {
    "hip_bone": "pelvis", "pelvic_bone": "pelvis", "ilium": "pelvis",
    "lower_limb": "lower_limb", "upper_limb": "upper_limb",
    "hands": "hand", "feet": "foot", "ribs": "rib",
}

# How far outside the image an annotated point may lie and still be clipped (with a
# warning) rather than refused: annotation tools let a corner land a few pixels past the
# border, but a box far outside means the annotation belongs to another image or size.
CLIP_FRACTION = 0.02
CLIP_MIN_PX = 3.0


@dataclass
class ImportReport:
    """What an import wrote: the manifest, its number of rows, and the warnings to show."""

    manifest_path: Path
    rows: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class LesionShapes:
    """The lesion outline of one image, to rasterise into a mask once the input is valid.

    Coordinates are pixels of the image as displayed, already clipped to
    ``[0, width] x [0, height]``.
    """

    width: int
    height: int
    polygons: list[list[Point]] = field(default_factory=list)
    rectangles: list[Box] = field(default_factory=list)


def bone_name(text: str) -> str | None:
    """The manifest bone (or region) a user's bone text means, or None if it is none.

    ``"Femur"`` -> ``femur``, ``"hip bone"`` -> ``pelvis``, ``"Knee-joint"`` -> ``knee``,
    ``"lower limb"`` -> ``lower_limb``.
    """
    name = str(text).strip().lower()
    if name in BONES or name in REGIONS:
        return name
    name = re.sub(r"[\s\-]+", "_", name)
    name = BONE_ALIASES.get(name, name)
    if name.endswith("_joint"):
        name = name[: -len("_joint")]
    return name if name in BONES or name in REGIONS else None


def require_bone(text: str, where: str) -> str:
    """`bone_name`, or a one-line BoneaugError naming `where` and the known names."""
    name = bone_name(text)
    if name is None:
        raise BoneaugError(f"{where}: unknown bone {str(text)!r}; expected one of "
                           f"{', '.join(sorted(BONES | REGIONS))}")
    return name


def clip_tolerance(width: int, height: int) -> float:
    """Pixels a point may lie outside a `width` x `height` image and still be clipped."""
    return max(CLIP_MIN_PX, CLIP_FRACTION * max(width, height))


def clip_points(points: Sequence[Sequence[float]], width: int, height: int,
                where: str) -> tuple[list[Point], bool]:
    """Clip points to the image; return them and whether any had to move.

    Raises BoneaugError (naming `where`) when a point is further outside than
    `clip_tolerance`, or is not a pair of finite numbers.
    """
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise BoneaugError(f"{where}: points must be a list of [x, y] numbers") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) == 0 or not np.all(np.isfinite(arr)):
        raise BoneaugError(f"{where}: points must be a non-empty list of [x, y] numbers")
    tol = clip_tolerance(width, height)
    lo = np.minimum(arr, 0.0)
    hi = np.maximum(arr - np.array([width, height], dtype=np.float64), 0.0)
    excess = np.max(np.maximum(-lo, hi), axis=1)
    worst = int(np.argmax(excess))
    if excess[worst] > tol:
        x, y = arr[worst]
        raise BoneaugError(f"{where}: point ({x:g}, {y:g}) is outside the {width}x{height} "
                           f"image (by {excess[worst]:.0f} px, more than the {tol:.0f} px "
                           "that are clipped)")
    clipped = np.clip(arr, 0.0, [width, height])
    return [(float(x), float(y)) for x, y in clipped], bool(np.any(excess > 0))


def bounding_box(points: Sequence[Point], where: str) -> Box:
    """The ``[x0, y0, x1, y1]`` box of points; refuses a box with no area."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    box = [min(xs), min(ys), max(xs), max(ys)]
    if not (box[2] > box[0] and box[3] > box[1]):
        raise BoneaugError(f"{where}: the lesion box {_fmt(box)} has no area")
    return box


def _fmt(box: Iterable[float]) -> str:
    return "[" + ",".join(f"{v:g}" for v in box) + "]"


def load_json(path: Path, where: str | None = None) -> Any:
    """Parse a JSON file; a one-line BoneaugError naming the file (and `where`) if it is not."""
    label = f"{path}" + (f" ({where})" if where else "")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BoneaugError(f"{label}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BoneaugError(f"{label}: cannot read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BoneaugError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None


def check_output(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output path that is one of the input files: inputs are never modified."""
    target = Path(out).resolve()
    for source in inputs:
        if Path(source).resolve() == target:
            raise BoneaugError(f"{out}: the output manifest would overwrite the input "
                               f"{source}; choose another --out")
    if target.is_dir():
        raise BoneaugError(f"{out}: is a folder; --out must be the manifest file to write "
                           "(e.g. manifest.csv)")


def relative_to(path: Path, root: Path) -> str:
    """`path` relative to `root` (POSIX separators, ``..`` allowed); absolute if it cannot be
    (another drive on Windows). `save_manifest` then re-bases it onto the manifest's folder."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def summarise(messages: Sequence[str], what: str, limit: int = 3) -> list[str]:
    """Up to `limit` messages, each with `what` says; more become one line: the count and
    the first."""
    if len(messages) <= limit:
        return [f"{m}: {what}" for m in messages]
    return [f"{len(messages)} {what} (first: {messages[0]})"]


def masks_folder(out: Path) -> Path:
    """Where an import writing `out` puts the lesion masks it rasterises."""
    return Path(out).parent / f"{Path(out).stem}_masks"


def finish(rows: list[dict[str, Any]], *, root: Path, out: Path, where: Sequence[str],
           warnings: list[str], inputs: Iterable[Path] = (),
           masks: dict[int, LesionShapes] | None = None) -> ImportReport:
    """Validate the rows, write their lesion masks, write the manifest, report.

    `rows` are manifest row dicts whose ``path``/``mask_path`` are relative to `root`
    (or absolute); `where[i]` names the user's file and row that row i came from, and is
    used in every message. Validation reads image headers only. Errors raise one line
    (the first problem); warnings of one kind are counted into one line. Masks go to
    ``<out folder>/<out stem>_masks/<image_id>.png`` (8-bit, 255 = lesion; a folder named
    after the manifest, so a user's own ``masks/`` is never written into) and are written only
    after the input has passed every check; the manifest is written last, atomically.
    """
    if not rows:
        raise BoneaugError(f"{where[0] if where else out}: no images to import")
    out = Path(out)
    root = Path(root).resolve()
    check_output(out, inputs)
    first_seen: dict[str, int] = {}
    for pos, row in enumerate(rows):
        image_id = str(row.get("image_id", ""))
        if image_id in first_seen:  # said here, where the user's own rows can be named
            raise BoneaugError(f"{where[pos]}: image_id {image_id!r} is also the id of "
                               f"{where[first_seen[image_id]]}; ids must be unique")
        first_seen[image_id] = pos
    manifest = Manifest(new_table(rows), root)
    # The images themselves are inputs too: --out must never land on one of them.
    check_output(out, [manifest.resolve(str(p)) for p in manifest.table["path"] if p])
    grouped: dict[str, list[str]] = defaultdict(list)
    for problem in validate_manifest(manifest, check_images=True):
        pos = (problem.line or 2) - 2
        place = where[pos] if problem.line is not None and pos < len(where) else str(out)
        if problem.image_id:
            place += f" (image_id {problem.image_id})"
        if problem.severity == "error":
            column = f", column {problem.column}" if problem.column else ""
            raise BoneaugError(f"{place}{column}: {problem.message}")
        grouped[problem.message].append(place)
    report_warnings = list(warnings)
    for message, places in grouped.items():
        if len(places) == 1:
            report_warnings.append(f"{places[0]}: {message}")
        else:
            report_warnings.append(f"{len(places)} images: {message} (first: {places[0]})")
    if masks:
        mask_paths = write_masks(manifest, masks, masks_folder(out))
        for pos, mask_file in mask_paths.items():
            manifest.table.at[pos, "mask_path"] = relative_to(mask_file, root)
    save_manifest(manifest, out)
    return ImportReport(out, len(manifest), report_warnings)


def _mask_name(image_id: str) -> str:
    """A file name for an image id that may contain folders or odd characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", image_id.replace(os.sep, "/")).strip("._") or "mask"


def write_masks(manifest: Manifest, masks: dict[int, LesionShapes], folder: Path
                ) -> dict[int, Path]:
    """Rasterise each row's lesion shapes into ``folder/<image_id>.png``; {row: file}.

    The mask is the union of the polygons and of the rectangles (shapes drawn only as a
    box); it never overwrites one of the manifest's own images.
    """
    images = {manifest.image_path(i).resolve() for i in range(len(manifest))}
    used: set[str] = set()
    written: dict[int, Path] = {}
    for pos in sorted(masks):
        shapes = masks[pos]
        if not shapes.polygons:
            continue  # box-only image: a filled rectangle would add nothing to its box
        name = _mask_name(str(manifest.table.at[pos, "image_id"]))
        stem, n = name, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        path = folder / f"{name}.png"
        if path.resolve() in images:
            raise BoneaugError(f"{path}: is an input image; refusing to write a mask over it "
                               "(choose another --out folder)")
        mask = Image.new("L", (shapes.width, shapes.height), 0)
        draw = ImageDraw.Draw(mask)
        for polygon in shapes.polygons:
            draw.polygon(polygon, fill=255, outline=255)
        for x0, y0, x1, y1 in shapes.rectangles:
            draw.rectangle([x0, y0, x1, y1], fill=255, outline=255)
        with atomic_path(path) as tmp:
            mask.save(tmp, format="PNG")
        written[pos] = path
    return written
