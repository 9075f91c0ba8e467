"""Export a manifest's films and lesions for detection and segmentation tools.

`export_manifest` writes the rows of a manifest (real, synthetic or both; any splits) in
one of three layouts under an output folder:

- ``coco``: ``annotations.json``. One image entry per film (``file_name`` relative to the
  JSON's folder, ``width``, ``height``, and boneaug's fields ``bone``, ``split``,
  ``synthetic`` and, for a synthetic film, ``provenance``); one annotation per lesion box
  (``bbox`` ``[x, y, w, h]``, ``area``, ``iscrowd`` 0, the category ``lesion``) with the
  outline of the film's lesion mask inside that box as polygon ``segmentation`` where the
  film has a mask. Normal films are image entries without annotations. `boneaug import
  coco` reads it back (boxes, masks, bones).
- ``yolo``: ``labels/<image_id>.txt``, a line ``0 cx cy w h`` per box in [0, 1] of the
  film's width and height (an empty file for a normal film), ``images.txt`` (the films'
  paths, one per line, in the labels' order) and ``data.yaml`` (the class name).
- ``masks``: ``masks/<image_id>.png``, the film's lesion mask (its ``mask_path``; a film
  without one gets its boxes filled), 0 or 255, the film's size.

``coco`` keeps the synthetic mark in the image entries; ``yolo`` and ``masks`` write
``index.csv`` beside (image_id, the film's path, split, origin, the file written), so the
mark is never lost. The images themselves are not copied.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from boneaug.data.imageio import image_size, read_image
from boneaug.data.importers.common import relative_to, safe_name
from boneaug.data.manifest import Manifest
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_not_an_input, check_out_dir, write_text_atomic
from boneaug.runinfo import write_run_json

FORMATS = ("coco", "yolo", "masks")
ORIGINS = ("real", "synthetic", "all")
CATEGORY = "lesion"
MIN_POLYGON = 3  # points


@dataclass
class ExportReport:
    """What `export_manifest` wrote."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    synthetic: int = 0


def export_manifest(manifest: Manifest, out_dir: str | Path, fmt: str, *,
                    splits: Iterable[str] | None = None, origin: str = "all") -> ExportReport:
    """Write the rows of `manifest` in `splits` (None: all) of `origin` as `fmt`."""
    if fmt not in FORMATS:
        raise BoneaugError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if origin not in ORIGINS:
        raise BoneaugError(f"--origin {origin!r}: expected one of {', '.join(ORIGINS)}")
    out_dir = Path(out_dir)
    check_not_an_input(out_dir, manifest.files(), "export")
    check_out_dir(out_dir, "export")
    table = manifest.table
    keep = pd.Series(True, index=table.index)
    if splits is not None:
        wanted = {s.strip() for s in splits}
        unknown = wanted - {"train", "val", "test", ""}
        if unknown:
            raise BoneaugError(f"--split {sorted(unknown)[0]!r}: expected train, val or test")
        keep &= table["split"].isin(wanted)
    if origin != "all":
        keep &= table["origin"] == origin
    rows = table[keep]
    if rows.empty:
        raise BoneaugError(f"{manifest.source}: no row of origin {origin} in the split(s) "
                           f"{', '.join(sorted(splits)) if splits else 'any'}: nothing to export")
    started = time.time()
    report = ExportReport(out_dir, images=len(rows),
                          boxes=int(rows["boxes"].map(len).sum()),
                          synthetic=int((rows["origin"] == "synthetic").sum()))
    writer = {"coco": _write_coco, "yolo": _write_yolo, "masks": _write_masks}[fmt]
    # written apart and moved in whole: a bad mask half-way leaves no half export
    staging = out_dir.resolve().parent / f".{out_dir.resolve().name}.export.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        names = writer(manifest, rows, staging, out_dir)
        write_run_json(staging, "export", {"manifest": str(manifest.source), "format": fmt,
                                           "splits": sorted(splits) if splits else None,
                                           "origin": origin}, None, started,
                       extra={"images": report.images, "boxes": report.boxes,
                              "synthetic": report.synthetic})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.files = [out_dir / name for name in names]
    return report


# --------------------------------------------------------------------------- masks


def lesion_mask(manifest: Manifest, row: pd.Series, shape: tuple[int, int]) -> np.ndarray:
    """The film's lesion mask (bool, `shape`): its ``mask_path`` file, else its boxes
    filled."""
    value = str(row.get("mask_path") or "")
    if value:
        mask = read_image(manifest.resolve(value)) > 0
        if mask.shape != shape:
            raise BoneaugError(f"{manifest.resolve(value)}: the mask is {mask.shape[1]}x"
                               f"{mask.shape[0]} px but its image is {shape[1]}x{shape[0]}")
        return mask
    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in row["boxes"]:
        mask[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
    return mask


def mask_polygons(mask: np.ndarray, box: list[float]) -> list[list[float]]:
    """The outlines of `mask` inside `box` as COCO polygons ``[x1, y1, x2, y2, ...]`` in
    film pixels (pixel edges: a mask pixel (x, y) spans x..x+1)."""
    import contourpy  # a dependency of matplotlib

    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), mask.shape[1]), min(int(np.ceil(box[3])), mask.shape[0])
    window = np.pad(mask[y0:y1, x0:x1].astype(np.float64), 1)
    if not window.any():
        return []
    # each pixel's value sits at its centre; upsampled by repeating, the 0.5 level runs
    # along the pixel edges
    fine = np.repeat(np.repeat(window, 2, axis=0), 2, axis=1)
    lines = contourpy.contour_generator(z=fine).lines(0.5)
    polygons = []
    for line in lines:
        points = np.asarray(line, np.float64)[:-1]  # closed: the last point is the first
        if len(points) < MIN_POLYGON:
            continue
        xs = (points[:, 0] + 0.5) / 2 - 1 + x0
        ys = (points[:, 1] + 0.5) / 2 - 1 + y0
        polygons.append([round(float(v), 2) for xy in zip(xs, ys, strict=True) for v in xy])
    return polygons


# --------------------------------------------------------------------------- writers


def _size(manifest: Manifest, row: pd.Series) -> tuple[int, int]:
    return image_size(manifest.resolve(str(row["path"])))


def _write_coco(manifest: Manifest, rows: pd.DataFrame, folder: Path, out_dir: Path
                ) -> list[str]:
    images, annotations = [], []
    for number, (_, row) in enumerate(rows.iterrows(), start=1):
        height, width = _size(manifest, row)
        film = manifest.resolve(str(row["path"]))
        entry = {"id": number, "file_name": relative_to(film, out_dir),
                 "width": width, "height": height, "bone": str(row["bone"]),
                 "split": str(row["split"]), "synthetic": row["origin"] == "synthetic",
                 "boneaug_image_id": str(row["image_id"])}
        if row["origin"] == "synthetic":
            entry["provenance"] = str(row.get("provenance") or "")
        images.append(entry)
        mask = lesion_mask(manifest, row, (height, width)) if row.get("mask_path") else None
        for box in row["boxes"]:
            x0, y0, x1, y1 = (float(v) for v in box)
            annotation = {"id": len(annotations) + 1, "image_id": number, "category_id": 1,
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                          "iscrowd": 0, "segmentation": []}
            if mask is not None:
                annotation["segmentation"] = mask_polygons(mask, box)
            annotations.append(annotation)
    data = {"info": {"description": f"exported by boneaug from {manifest.source}"},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": CATEGORY}]}
    write_text_atomic(folder / "annotations.json", json.dumps(data, indent=1))
    return ["annotations.json"]


def _write_index(rows: pd.DataFrame, written: list[str], folder: Path,
                 manifest: Manifest) -> str:
    index = pd.DataFrame({"image_id": rows["image_id"].astype(str).tolist(),
                          "path": [str(manifest.resolve(str(p))) for p in rows["path"]],
                          "split": rows["split"].tolist(), "origin": rows["origin"].tolist(),
                          "file": written})
    with atomic_path(folder / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    return "index.csv"


def _names(rows: pd.DataFrame) -> list[str]:
    """A file name per row: its image_id made safe, unique."""
    used: set[str] = set()
    names = []
    for image_id in rows["image_id"].astype(str):
        stem = name = safe_name(image_id)
        n = 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        names.append(name)
    return names


def _write_yolo(manifest: Manifest, rows: pd.DataFrame, folder: Path, out_dir: Path
                ) -> list[str]:
    labels = folder / "labels"
    labels.mkdir(exist_ok=True)
    written = []
    for name, (_, row) in zip(_names(rows), rows.iterrows(), strict=True):
        height, width = _size(manifest, row)
        lines = [f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                 f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
                 for x0, y0, x1, y1 in row["boxes"]]
        write_text_atomic(labels / f"{name}.txt", "".join(line + "\n" for line in lines))
        written.append(f"labels/{name}.txt")
    write_text_atomic(folder / "images.txt", "".join(
        f"{manifest.resolve(str(p)).resolve()}\n" for p in rows["path"]))
    write_text_atomic(folder / "data.yaml", f"nc: 1\nnames: [{CATEGORY}]\n")
    return ["images.txt", "data.yaml", _write_index(rows, written, folder, manifest),
            *written]


def _write_masks(manifest: Manifest, rows: pd.DataFrame, folder: Path, out_dir: Path
                 ) -> list[str]:
    (folder / "masks").mkdir()
    written = []
    for name, (_, row) in zip(_names(rows), rows.iterrows(), strict=True):
        mask = lesion_mask(manifest, row, _size(manifest, row))
        with atomic_path(folder / "masks" / f"{name}.png") as tmp:
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG")
        written.append(f"masks/{name}.png")
    return [_write_index(rows, written, folder, manifest), *written]
