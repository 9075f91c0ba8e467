"""LabelMe annotations: a folder of images, each with its LabelMe JSON beside it.

An image whose JSON has at least one shape is a positive. Its shapes - rectangles (two
corner points in any order), polygons, circles (their box) - are merged into findings by
`common.merge_findings` (a rectangle and the polygon it encloses are one lesion), and each
finding is one lesion box: the polygon's tight box, or the rectangle. Polygons are also
rasterised into a lesion mask. An image without a JSON, or whose JSON has no shapes, is a
negative. `read_labelme` is shared with the BTXRD importer, whose annotations are LabelMe
files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from boneaug.data.imageio import RASTER_SUFFIXES, image_size
from boneaug.data.importers.common import (
    Box,
    Finding,
    FindingTally,
    ImportReport,
    LesionShapes,
    Shape,
    bounding_box,
    clip_points,
    finish,
    lesion_shapes,
    load_json,
    masks_folder,
    merge_findings,
    require_bone,
    summarise,
)
from boneaug.errors import BoneaugError

# shape types whose outline we cannot turn into a lesion area (LabelMe 5.x names)
_SKIPPED = {"point", "points", "line", "linestrip", "mask"}


@dataclass
class LabelmeAnnotation:
    """The lesions of one LabelMe file, in pixels of the image as displayed.

    `findings` are its lesions (`common.merge_findings` of its shapes); `boxes` one
    ``[x0, y0, x1, y1]`` per finding, with ``0 <= x0 < x1 <= width`` (likewise y);
    `shapes` what to rasterise into the mask (each finding's polygon, or its rectangle
    when it has none); `labels` the shapes' label texts (lesion types), one per shape with
    an area; `n_shapes` counts every shape in the file, usable or not.
    """

    findings: list[Finding]
    shapes: LesionShapes
    labels: list[str]
    n_shapes: int
    warnings: list[str] = field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        """One ``[x0, y0, x1, y1]`` box per finding, in pixels: the manifest's boxes."""
        return [finding.box for finding in self.findings]

    @property
    def n_findings(self) -> int:
        """Lesions in the file: a rectangle and its polygon count once."""
        return len(self.findings)

    def __str__(self) -> str:
        return f"{self.n_findings} finding(s) from {self.n_shapes} shape(s)"


def read_labelme(json_path: Path, image_file: Path, context: str = "") -> LabelmeAnnotation:
    """Read a LabelMe JSON drawn on `image_file` (whose header gives the true size).

    Raises a one-line BoneaugError naming the JSON (and `context`, such as the CSV row it
    belongs to) when the file is not JSON, not LabelMe, was drawn on an image of another
    size, or has a shape that is malformed or far outside the image. Points slightly
    outside the image (see `common.clip_tolerance`) are clipped, with a warning.
    """
    label = f"{json_path}" + (f" ({context})" if context else "")
    data = load_json(json_path, context or None)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise BoneaugError(f"{label}: not a LabelMe JSON (expected an object with a 'shapes' "
                           "list)")
    height, width = image_size(image_file)
    json_w, json_h = data.get("imageWidth"), data.get("imageHeight")
    if (json_w is not None or json_h is not None) and (json_w, json_h) != (width, height):
        raise BoneaugError(f"{label}: imageWidth x imageHeight is {json_w}x{json_h} but "
                           f"{image_file.name} is {width}x{height}; the annotation was drawn "
                           "on an image of another size")
    warnings: list[str] = []
    image_path = data.get("imagePath")
    if isinstance(image_path, str) and image_path:
        named = Path(image_path.replace("\\", "/")).stem
        if named != image_file.stem:
            warnings.append(f"{label}: imagePath names {image_path!r}, not {image_file.name}; "
                            "using the image beside it")
    drawn: list[Shape] = []
    for i, shape in enumerate(data["shapes"]):
        where = f"{label} shape {i}"
        if not isinstance(shape, dict) or not isinstance(shape.get("points"), list):
            raise BoneaugError(f"{where}: not a LabelMe shape (expected an object with "
                               "'points')")
        kind = str(shape.get("shape_type") or "polygon")  # LabelMe 3 wrote no shape_type
        points = shape["points"]
        if kind in _SKIPPED:
            warnings.append(f"{where}: a {kind} shape has no area; skipped")
            continue
        if kind == "rectangle":
            if len(points) < 2:
                raise BoneaugError(f"{where}: a rectangle needs 2 corner points, has "
                                   f"{len(points)}")
            clipped, moved = clip_points(points, width, height, where)
            found = Shape("box", bounding_box(clipped, where))
        elif kind == "polygon":
            if len(points) < 3:
                raise BoneaugError(f"{where}: a polygon needs at least 3 points, has "
                                   f"{len(points)}")
            clipped, moved = clip_points(points, width, height, where)
            found = Shape("polygon", bounding_box(clipped, where), [clipped])
        elif kind == "circle":
            if len(points) != 2:
                raise BoneaugError(f"{where}: a circle needs a centre and a rim point, has "
                                   f"{len(points)} points")
            try:
                (cx, cy), (rx, ry) = ((float(x), float(y)) for x, y in points)
            except (TypeError, ValueError):
                raise BoneaugError(f"{where}: points must be [x, y] numbers") from None
            radius = math.hypot(rx - cx, ry - cy)
            corners = [[cx - radius, cy - radius], [cx + radius, cy + radius]]
            clipped, moved = clip_points(corners, width, height, where)
            found = Shape("box", bounding_box(clipped, where))
        else:
            raise BoneaugError(f"{where}: unknown shape_type {kind!r}; expected rectangle, "
                               "polygon or circle")
        if moved:
            warnings.append(f"{where}: points outside the {width}x{height} image were clipped "
                            "to it")
        found.label = str(shape.get("label") or "")
        drawn.append(found)
    findings = merge_findings(drawn)
    return LabelmeAnnotation(findings, lesion_shapes(findings, width, height),
                             [s.label for s in drawn], len(data["shapes"]), warnings)


def lesion_types(labels: list[str]) -> str:
    """The distinct shape labels, in first-seen order, joined by ';'."""
    return ";".join(dict.fromkeys(label for label in labels if label))


def import_labelme(folder: Path, out: Path, *, bone: str) -> ImportReport:
    """Import a folder of images with LabelMe JSONs beside them (recursive).

    Every raster image under `folder` (PNG, JPEG, TIFF, BMP; hidden folders and the
    output's masks folder skipped) becomes one row of bone `bone`; its JSON is the
    file of the same stem beside it. ``image_id`` is the image's path under `folder`
    without its suffix; each image is its own patient (LabelMe has no patient ids).
    Boxes are one per finding (`common.merge_findings`). Extra column: ``lesion_types``
    (the shapes' labels).
    """
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise BoneaugError(f"{folder}: no such folder")
    bone = require_bone(bone, "--bone")
    masks_dir = masks_folder(out).resolve()
    images: list[Path] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if masks_dir in path.resolve().parents:
            continue  # our own masks from an earlier import into this folder
        if path.is_file() and path.suffix.lower() in RASTER_SUFFIXES:
            images.append(path)
    if not images:
        raise BoneaugError(f"{folder}: no images found (looked for "
                           f"{', '.join(sorted(RASTER_SUFFIXES))}, recursively)")
    by_stem: dict[Path, Path] = {}
    for image in images:
        key = image.with_suffix("")
        if key in by_stem:
            raise BoneaugError(f"{image}: shares its name with {by_stem[key].name}, so a "
                               f"LabelMe file {key.name}.json would be ambiguous; rename one")
        by_stem[key] = image

    rows, where, masks = [], [], {}
    warnings: list[str] = []
    clip_notes: list[str] = []
    json_files: list[Path] = []
    tally = FindingTally()
    for image in images:
        rel = image.relative_to(folder)
        json_path = image.with_suffix(".json")
        row = {"image_id": rel.with_suffix("").as_posix(), "path": rel.as_posix(),
               "bone": bone, "label": 0, "boxes": [], "lesion_types": ""}
        if json_path.is_file():
            json_files.append(json_path)
            note = read_labelme(json_path, image)
            clip_notes += note.warnings
            tally.add(note.findings)
            if note.n_shapes:
                row.update(label=1, boxes=note.boxes, lesion_types=lesion_types(note.labels))
                masks[len(rows)] = note.shapes
        rows.append(row)
        where.append(str(image))
    warnings += summarise(clip_notes, "LabelMe shape notes")
    warnings += tally.summary("LabelMe shapes")
    known = {p.resolve() for p in json_files}
    orphans = [p for p in sorted(folder.rglob("*.json"))
               if p.resolve() not in known
               and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if orphans:
        warnings.append(f"{len(orphans)} JSON file(s) have no image of the same name beside "
                        f"them and were ignored (first: {orphans[0]})")
    warnings.append("LabelMe has no patient ids: each image is its own patient; if a "
                    "patient has several images, add a patient_id column before splitting")
    return finish(rows, root=folder, out=out, where=where, warnings=warnings,
                  inputs=images + json_files, masks=masks)
