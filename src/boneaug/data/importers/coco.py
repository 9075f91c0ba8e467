"""COCO JSON: every image with at least one annotation is a positive.

An annotation's box comes from ``bbox`` (``[x, y, w, h]``, turned into
``[x0, y0, x1, y1]``), or from the polygon when ``bbox`` is absent; polygon segmentations
are also rasterised into a lesion mask. Crowd (RLE) segmentations are not decoded: their
``bbox`` is used alone. An annotation with a polygon is one finding; a bbox-only annotation
of the same lesion as a polygon annotation of that image (a tool that exports the
rectangle and the outline apart) is merged into it by `common.merge_findings`, so the
manifest holds one box per lesion.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from boneaug.data.imageio import image_size
from boneaug.data.importers.common import (
    FindingTally,
    ImportReport,
    Shape,
    bone_name,
    bounding_box,
    clip_points,
    finish,
    lesion_shapes,
    load_json,
    merge_findings,
    require_bone,
    summarise,
)
from boneaug.errors import BoneaugError


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _annotation_shapes(ann: dict[str, Any], width: int, height: int, where: str
                       ) -> tuple[list[float], list[list[tuple[float, float]]], bool, bool]:
    """(box, polygons, clipped, crowd) of one COCO annotation, in image pixels."""
    segmentation = ann.get("segmentation")
    crowd = isinstance(segmentation, dict)  # RLE: counts + size
    polygons: list[list[tuple[float, float]]] = []
    clipped = False
    if isinstance(segmentation, list):
        for k, flat in enumerate(segmentation):
            if (not isinstance(flat, list) or len(flat) < 6 or len(flat) % 2
                    or not all(_number(v) for v in flat)):
                raise BoneaugError(f"{where}: segmentation polygon {k} must be a flat list "
                                   "[x1, y1, x2, y2, ...] of at least 3 points")
            points, moved = clip_points(list(zip(flat[0::2], flat[1::2], strict=True)),
                                        width, height, f"{where} polygon {k}")
            polygons.append(points)
            clipped |= moved
    bbox = ann.get("bbox")
    if bbox is not None:
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
            raise BoneaugError(f"{where}: bbox must be [x, y, width, height] numbers, got "
                               f"{bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if not (w > 0 and h > 0):
            raise BoneaugError(f"{where}: bbox {bbox} has no area (width and height must be "
                               "> 0)")
        corners, moved = clip_points([(x, y), (x + w, y + h)], width, height, f"{where} bbox")
        clipped |= moved
        box = bounding_box(corners, where)
    elif polygons:
        box = bounding_box([p for polygon in polygons for p in polygon], where)
    else:
        raise BoneaugError(f"{where}: has neither a bbox nor a polygon segmentation")
    return box, polygons, clipped, crowd


def import_coco(annotations: Path, out: Path, *, images_root: Path | None,
                bone: str | None) -> ImportReport:
    """Import a COCO JSON of lesion annotations into a manifest at `out`.

    Images are resolved as ``images_root / file_name`` (default root: the JSON's folder).
    Each image's bone is `bone`; else a ``bone`` field of the image entry (a boneaug
    extension); else its annotations' category name, which must then be a bone. The
    JSON's ``width``/``height`` must match the image file. ``image_id`` is ``file_name``
    without its suffix; each image is its own patient. Boxes are one per finding
    (`common.merge_findings` of the image's annotations). Extra columns: ``coco_id`` and
    ``lesion_types`` (category names of the image's annotations).
    """
    annotations, out = Path(annotations), Path(out)
    data = load_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise BoneaugError(f"{annotations}: not a COCO JSON (expected an object with an "
                           "'images' list)")
    anns = data.get("annotations", [])
    cats = data.get("categories", [])
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise BoneaugError(f"{annotations}: 'annotations' and 'categories' must be lists")
    root = Path(images_root) if images_root is not None else annotations.parent
    if not root.is_dir():
        raise BoneaugError(f"{root}: no such folder (--images)")
    constant_bone = require_bone(bone, "--bone") if bone is not None else None
    categories: dict[Any, str] = {}
    for k, cat in enumerate(cats):
        if not isinstance(cat, dict) or "id" not in cat:
            raise BoneaugError(f"{annotations}: categories[{k}] has no 'id'")
        categories[cat["id"]] = str(cat.get("name", cat["id"]))

    images: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    for k, entry in enumerate(data["images"]):
        where = f"{annotations} images[{k}]"
        if not isinstance(entry, dict) or "id" not in entry or not entry.get("file_name"):
            raise BoneaugError(f"{where}: an image needs 'id' and 'file_name'")
        if entry["id"] in images:
            raise BoneaugError(f"{where}: duplicate image id {entry['id']!r}")
        images[entry["id"]] = entry | {"_where": where}
        order.append(entry["id"])

    by_image: dict[Any, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for k, ann in enumerate(anns):
        where = f"{annotations} annotations[{k}]"
        if not isinstance(ann, dict):
            raise BoneaugError(f"{where}: not an object")
        if ann.get("image_id") not in images:
            raise BoneaugError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        by_image[ann["image_id"]].append((k, ann))

    rows, where_rows, masks = [], [], {}
    clip_notes: list[str] = []
    crowd = 0
    tally = FindingTally()
    for coco_id in order:
        entry = images[coco_id]
        where = entry["_where"]
        file_name = str(entry["file_name"]).replace("\\", "/")
        image_file = Path(file_name) if Path(file_name).is_absolute() else root / file_name
        try:
            height, width = image_size(image_file)
        except BoneaugError as exc:
            hint = ("; pass --images with the images' folder"
                    if images_root is None and not image_file.exists() else "")
            raise BoneaugError(f"{where} ({file_name}): {exc}{hint}") from None
        if ("width" in entry or "height" in entry) and (
                entry.get("width"), entry.get("height")) != (width, height):
            raise BoneaugError(f"{where} ({file_name}): width x height is {entry.get('width')}x"
                               f"{entry.get('height')} but the image is {width}x{height}")
        drawn: list[Shape] = []
        names: list[str] = []
        for k, ann in by_image.get(coco_id, []):
            ann_where = f"{annotations} annotations[{k}] (image {file_name})"
            box, polygons, clipped, is_crowd = _annotation_shapes(ann, width, height, ann_where)
            drawn.append(Shape("polygon" if polygons else "box", box, polygons))
            if clipped:
                clip_notes.append(f"{ann_where}: points outside the {width}x{height} image "
                                  "were clipped to it")
            crowd += is_crowd
            if ann.get("category_id") not in categories:
                raise BoneaugError(f"{ann_where}: category_id {ann.get('category_id')!r} is not "
                                   "in 'categories'")
            names.append(categories[ann["category_id"]])
        names = list(dict.fromkeys(names))
        row_bone = constant_bone or _image_bone(entry, names, where, file_name)
        findings = merge_findings(drawn)
        tally.add(findings)
        boxes = [finding.box for finding in findings]
        shapes = lesion_shapes(findings, width, height)
        if shapes.polygons:
            masks[len(rows)] = shapes
        rows.append({"image_id": str(Path(file_name).with_suffix("")).replace("\\", "/"),
                     "path": file_name, "bone": row_bone, "label": int(bool(boxes)),
                     "boxes": boxes, "coco_id": str(coco_id), "lesion_types": ";".join(names)})
        where_rows.append(f"{where} ({file_name})")
    warnings = summarise(clip_notes, "annotations clipped to their image")
    warnings += tally.summary("annotations")
    if crowd:
        warnings.append(f"{crowd} crowd (RLE) segmentation(s) were not decoded: their bbox is "
                        "used as the lesion box, with no mask")
    warnings.append("COCO has no patient ids: each image is its own patient; if a patient has "
                    "several images, add a patient_id column before splitting")
    return finish(rows, root=root, out=out, where=where_rows, warnings=warnings,
                  inputs=[annotations], masks=masks)


def _image_bone(entry: dict[str, Any], names: list[str], where: str, file_name: str) -> str:
    """The bone of an image when --bone is not given: its 'bone' field, or its category."""
    if entry.get("bone"):
        return require_bone(str(entry["bone"]), f"{where} ({file_name}) bone")
    if not names:
        raise BoneaugError(f"{where} ({file_name}): has no annotations, so its bone cannot "
                           "come from a category; pass --bone or give the image a 'bone' field")
    bones = {name: bone_name(name) for name in names}
    unknown = [name for name, b in bones.items() if b is None]
    if unknown:
        raise BoneaugError(f"{where} ({file_name}): category {unknown[0]!r} is not a bone; "
                           "pass --bone when categories are lesion types")
    distinct = sorted({b for b in bones.values() if b})
    if len(distinct) > 1:
        raise BoneaugError(f"{where} ({file_name}): annotations name several bones "
                           f"({', '.join(distinct)}); one bone per image")
    return distinct[0]
