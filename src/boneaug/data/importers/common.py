"""What every importer shares: bone names, box clipping, findings, lesion masks, the final
check-and-write.

An importer turns a layout into row dicts (manifest fields plus extra columns), each with
a *location* (``"data.csv line 7"``, ``"Annotations/IMG000001.json"``) so that a problem
found later by `validate_manifest` is reported against the user's own file and row, not
against a manifest that was never written. `finish` validates, writes the lesion masks,
then writes the manifest atomically: bad input leaves nothing behind.

`merge_findings` is the one rule by which every importer turns an image's drawn shapes
into lesions: annotation tools draw one finding as a rectangle *and* a polygon (BTXRD
does so for every tumour), and a lesion counted once per shape is counted twice.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from boneaug.data.manifest import (
    BONES,
    REGIONS,
    Manifest,
    new_table,
    save_manifest,
    validate_manifest,
)
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path

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

# One finding, one lesion (see `merge_findings` and docs/importing.md). A rectangle drawn
# around a lesion holds its polygon's tight box all but for a stray vertex, however much
# margin the annotator left: ENCLOSED_FRACTION of the polygon box inside the rectangle
# pairs them, so a generous box around a small lesion still counts once. PAIR_IOU pairs a
# rectangle drawn a little inside a polygon it clearly describes. DUPLICATE_IOU is high on
# purpose: two shapes of one kind are one finding only when they are the same drawing
# twice, never two neighbouring lesions of the same size.
ENCLOSED_FRACTION = 0.8
PAIR_IOU = 0.5
DUPLICATE_IOU = 0.9


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


@dataclass
class Shape:
    """One drawn lesion shape of an image, in pixels, already clipped to the image.

    `kind` is ``"box"`` for a rectangle-like shape (a LabelMe rectangle, a circle's box, a
    COCO annotation with only a bbox, a CSV box), whose `polygons` are empty, or
    ``"polygon"`` for an outline: `polygons` holds one or more point lists (a COCO
    segmentation may have several parts) and `box` is their ``[x0, y0, x1, y1]`` tight box
    (for COCO, the annotation's own bbox, which COCO defines as that box).
    """

    kind: Literal["box", "polygon"]
    box: Box
    polygons: list[list[Point]] = field(default_factory=list)
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("box", "polygon") or (self.kind == "polygon") != bool(
                self.polygons):
            raise ValueError(f"a {self.kind!r} shape with {len(self.polygons)} polygon(s); "
                             "expected a 'box' without or a 'polygon' with polygons")


@dataclass
class Finding:
    """One lesion of an image: the shapes that describe it, merged by `merge_findings`.

    `box` is ``[x0, y0, x1, y1]`` in pixels: the polygon's tight box when the finding has a
    polygon, else its rectangle. `polygons` are its outline (empty: the mask is `box`);
    `labels` the labels of its shapes; `n_shapes` how many drawn shapes it merges.
    """

    box: Box
    polygons: list[list[Point]]
    labels: list[str]
    n_shapes: int


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes, in [0, 1]."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    return (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))


def _union_box(boxes: Iterable[Sequence[float]]) -> Box:
    boxes = list(boxes)
    return [min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes)]


@dataclass
class _Group:
    """Shapes of one kind found to be one drawing (an intermediate of `merge_findings`)."""

    first: int              # index of its first shape, to keep the annotator's order
    box: Box
    polygons: list[list[Point]]
    labels: list[str]
    n_shapes: int


def _duplicates(shapes: Sequence[Shape], indices: list[int]) -> list[_Group]:
    """The shapes `indices` (all of one kind), near-identical ones (IoU >= DUPLICATE_IOU)
    joined into one group; a group's box covers all of its shapes."""
    parent = {i: i for i in indices}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for n, i in enumerate(indices):
        for j in indices[n + 1:]:
            if box_iou(shapes[i].box, shapes[j].box) >= DUPLICATE_IOU:
                parent[root(j)] = root(i)
    members: dict[int, list[int]] = defaultdict(list)
    for i in indices:
        members[root(i)].append(i)
    return [_Group(first=group[0], box=_union_box(shapes[i].box for i in group),
                   polygons=[p for i in group for p in shapes[i].polygons],
                   labels=[shapes[i].label for i in group], n_shapes=len(group))
            for group in members.values()]


def merge_findings(shapes: Sequence[Shape]) -> list[Finding]:
    """The findings (lesions) of one image's shapes: each lesion once, however drawn.

    1. Two shapes of the same kind whose boxes have IoU >= `DUPLICATE_IOU` are one finding
       drawn twice (box: the box around both; outline: both polygons).
    2. A rectangle-like shape and a polygon describe the same finding when the polygon's
       tight box lies mostly inside the rectangle (intersection / polygon-box area >=
       `ENCLOSED_FRACTION`) or their boxes overlap strongly (IoU >= `PAIR_IOU`). They are
       paired one-to-one, greedily, best first by IoU (then by the enclosed fraction):
       a rectangle drawn around its own polygon beats one that merely encloses it, so two
       neighbouring lesions (a rectangle and a polygon each) stay two, and a rectangle
       around two polygons takes only one of them.
    3. Everything else is a finding of its own.

    A finding's box is its polygon's tight box when it has one, else its rectangle; its
    outline is the polygon (none for a rectangle alone). Findings come in the order of
    their first shape. Pure geometry: labels never decide, since annotators label the
    rectangle and the polygon of one lesion differently as often as not.
    """
    boxes_at = [i for i, s in enumerate(shapes) if s.kind == "box"]
    outlines_at = [i for i, s in enumerate(shapes) if s.kind == "polygon"]
    rects, outlines = _duplicates(shapes, boxes_at), _duplicates(shapes, outlines_at)
    candidates = []
    for r, rect in enumerate(rects):
        for o, outline in enumerate(outlines):
            iou = box_iou(rect.box, outline.box)
            area = _area(outline.box)
            enclosed = _intersection(rect.box, outline.box) / area if area > 0 else 0.0
            if enclosed >= ENCLOSED_FRACTION or iou >= PAIR_IOU:
                candidates.append((-iou, -enclosed, r, o))
    candidates.sort()
    partner: dict[int, int] = {}  # outline -> rectangle
    taken: set[int] = set()
    for _, _, r, o in candidates:
        if r not in taken and o not in partner:
            partner[o] = r
            taken.add(r)
    findings: list[tuple[int, Finding]] = []
    for o, outline in enumerate(outlines):
        rect = rects[partner[o]] if o in partner else None
        parts = sorted([outline, rect] if rect else [outline], key=lambda g: g.first)
        findings.append((parts[0].first, Finding(
            list(outline.box), outline.polygons, [t for g in parts for t in g.labels],
            sum(g.n_shapes for g in parts))))
    for r, rect in enumerate(rects):
        if r not in taken:
            findings.append((rect.first, Finding(list(rect.box), [], rect.labels,
                                                 rect.n_shapes)))
    findings.sort(key=lambda item: item[0])
    return [finding for _, finding in findings]


def lesion_shapes(findings: Iterable[Finding], width: int, height: int) -> LesionShapes:
    """What to rasterise into an image's lesion mask: each finding's polygons, or its box
    when it has none (a rectangle paired with a polygon adds nothing: the polygon is the
    lesion)."""
    shapes = LesionShapes(width, height)
    for finding in findings:
        if finding.polygons:
            shapes.polygons += finding.polygons
        else:
            shapes.rectangles.append(list(finding.box))
    return shapes


@dataclass
class FindingTally:
    """Counts, over one import, of shapes read and findings made; one warning line."""

    shapes: int = 0
    findings: int = 0
    merged_shapes: int = 0      # shapes that share their finding with another shape
    merged_findings: int = 0    # findings made of more than one shape
    images: int = 0             # images with at least one merge

    def add(self, findings: Sequence[Finding]) -> None:
        """Count the findings of one image."""
        merged = [f for f in findings if f.n_shapes > 1]
        self.shapes += sum(f.n_shapes for f in findings)
        self.findings += len(findings)
        self.merged_shapes += sum(f.n_shapes for f in merged)
        self.merged_findings += len(merged)
        self.images += bool(merged)

    def summary(self, what: str,
                how: str = "a rectangle and its polygon, or one shape drawn twice"
                ) -> list[str]:
        """One line saying what was merged, or none if nothing was: `what` names the
        shapes (``"LabelMe shapes"``), `how` the ways they describe one lesion."""
        if not self.merged_findings:
            return []
        return [f"{self.merged_shapes} {what} describing the same lesion ({how}) were merged "
                "into "
                f"{_plural(self.merged_findings, 'lesion')} on {_plural(self.images, 'image')}: "
                f"{self.shapes} {what} -> {_plural(self.findings, 'lesion')} in all "
                "(docs/importing.md, 'One finding, one lesion')"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


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
    """Up to `limit` messages as they are; more become one line: the count of `what` and
    the first."""
    if len(messages) <= limit:
        return list(messages)
    return [f"{len(messages)} {what} (first: {messages[0]})"]


def masks_folder(out: Path) -> Path:
    """Where an import writing `out` puts the lesion masks it rasterises."""
    return Path(out).parent / f"{Path(out).stem}_masks"


def finish(rows: list[dict[str, Any]], *, root: Path, out: Path, where: Sequence[str],
           warnings: list[str], inputs: Iterable[Path] = (),
           masks: dict[int, LesionShapes] | None = None,
           max_side: int | None = None) -> ImportReport:
    """Validate the rows, write their lesion masks, write the manifest, report.

    `rows` are manifest row dicts whose ``path``/``mask_path`` are relative to `root`
    (or absolute); `where[i]` names the user's file and row that row i came from, and is
    used in every message. Validation reads image headers only. Errors raise one line
    (the first problem); warnings of one kind are counted into one line. Masks go to
    ``<out folder>/<out stem>_masks/<image_id>.png`` (8-bit, 255 = lesion; a folder named
    after the manifest, so a user's own ``masks/`` is never written into) and are written only
    after the input has passed every check; the manifest is written last, atomically.
    With `max_side`, images whose longer side exceeds it are first written, downscaled,
    into ``<out stem>_images/`` with their boxes and masks scaled alike (`shrink_images`).
    """
    if max_side is not None and max_side < 32:
        raise BoneaugError(f"--max-side {max_side}: must be at least 32 px")
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
    if max_side is not None:
        shrunk = shrink_images(manifest, masks or {}, images_folder(out), max_side)
        if shrunk:
            report_warnings.append(f"{shrunk} images larger than {max_side} px were written "
                                   f"downscaled into {images_folder(out)} (boxes and masks "
                                   "scaled alike; source_path names the original)")
    if masks:
        mask_paths = write_masks(manifest, masks, masks_folder(out))
        for pos, mask_file in mask_paths.items():
            manifest.table.at[pos, "mask_path"] = relative_to(mask_file, root)
    save_manifest(manifest, out)
    return ImportReport(out, len(manifest), report_warnings)


def images_folder(out: Path) -> Path:
    """Where an import writing `out` puts the downscaled copies of large images."""
    return Path(out).parent / f"{Path(out).stem}_images"


def shrink_images(manifest: Manifest, masks: dict[int, LesionShapes], folder: Path,
                  max_side: int) -> int:
    """Downscale every image whose longer side exceeds `max_side` into `folder`.

    The copy (16-bit PNG, antialiased bicubic) becomes the row's ``path``; the original
    is kept in ``source_path`` and the factor in ``scale``; boxes and the lesion shapes
    of `masks` are scaled by the same factors. Sources are read, never written. Returns
    how many images were downscaled. Why: a CPU run at 256 px would otherwise decode
    every 3,000 px radiograph again in each stage.
    """
    from tqdm import tqdm

    from boneaug.data.imageio import image_size, read_image, write_png16

    table = manifest.table
    table["source_path"] = ""
    table["scale"] = ""
    done = 0
    used: set[str] = set()
    bar = tqdm(range(len(table)), desc="downscale", unit="img", file=sys.stderr,
               disable=len(table) < 50 or not sys.stderr.isatty())
    for pos in bar:
        source = manifest.image_path(pos)
        height, width = image_size(source)
        scale = max_side / max(height, width)
        if scale >= 1.0:
            continue
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        pil = Image.fromarray(np.ascontiguousarray(read_image(source), np.float32))
        small = np.asarray(pil.resize((new_w, new_h), Image.Resampling.BICUBIC), np.float32)
        name = safe_name(str(table.at[pos, "image_id"]))
        while name in used:
            name += "_"
        used.add(name)
        copy = folder / f"{name}.png"
        write_png16(copy, np.clip(small, 0.0, 1.0))
        sx, sy = new_w / width, new_h / height
        table.at[pos, "source_path"] = str(table.at[pos, "path"])
        table.at[pos, "path"] = relative_to(copy, manifest.root)
        table.at[pos, "scale"] = f"{scale:.6g}"
        table.at[pos, "boxes"] = [[min(x0 * sx, new_w), min(y0 * sy, new_h),
                                   min(x1 * sx, new_w), min(y1 * sy, new_h)]
                                  for x0, y0, x1, y1 in table.at[pos, "boxes"]]
        if pos in masks:
            shapes = masks[pos]
            masks[pos] = LesionShapes(
                new_w, new_h,
                [[(x * sx, y * sy) for x, y in polygon] for polygon in shapes.polygons],
                [[x0 * sx, y0 * sy, x1 * sx, y1 * sy] for x0, y0, x1, y1 in shapes.rectangles])
        done += 1
    bar.close()
    return done


def safe_name(image_id: str) -> str:
    """A file name for an image id that may contain folders or odd characters (masks of an
    import, files of an export)."""
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
        name = safe_name(str(manifest.table.at[pos, "image_id"]))
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
