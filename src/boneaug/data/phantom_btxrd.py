"""Writing the mixed phantom in the layout of the BTXRD data set, with its truth beside it.

``images/IMG000001.jpeg`` ... (8-bit JPEG; about one in forty named ``.jpg`` and stored
as RGB, as BTXRD's 27 such files are), ``Annotations/IMGxxxxxx.json`` for tumour films
(LabelMe 5: every lesion drawn twice, as a slightly loose hand-drawn rectangle and as a
polygon tracing its outline) and ``dataset.csv`` with BTXRD's 37 columns. What BTXRD
does not say is written for scoring: ``truth.csv`` (one row per image: film kind, main
and visible bones, the lesion, the phantom's own id) and ``truth_masks/`` (one mask per
visible bone and the lesion mask), so that bone assignment and lesion placement can be
scored after ``boneaug import btxrd``. See /work/shared/formats/btxrd.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from boneaug.data.importers.btxrd import COLUMNS, SITE_BONES
from boneaug.data.phantom import PhantomConfig, config_dict, validate_config, write_staged
from boneaug.data.phantom_mixed import FilmImage
from boneaug.data.phantom_mixedset import MASK_BONES, Job, iterate_films, truth_columns, write_masks
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path
from boneaug.runinfo import write_run_json

# Lesion type -> BTXRD subtype column and benign/malignant: the tumour whose radiographic
# look the type imitates.
SUBTYPES = {
    "geographic": ("simple bone cyst", "benign"),
    "sclerotic_rim": ("osteofibroma", "benign"),
    "expansile": ("giant cell tumor", "benign"),
    "permeative": ("osteosarcoma", "malignant"),
}
SITE_COLUMN = {bone: column for column, bone in SITE_BONES.items()}
REGION_COLUMN = {"lower_limb": "lower limb", "upper_limb": "upper limb"}
_JPG_EVERY = 40  # one image in forty is a .jpg (BTXRD: 27 of 3,746)
_POLYGON_POINTS = 32
TRUTH_COLUMNS = ("image_id", "file", "phantom_id", "label", "bone", "true_bone", "true_bones",
                 "film", "view", "region", "age", "sex", "center", "awkward", "lesion_bone",
                 "lesion_type", "sites", "text", "boxes", "mask_path", "bone_mask_path",
                 *(f"{bone}_mask_path" for bone in MASK_BONES))


def export_btxrd(out_dir: str | Path, config: PhantomConfig) -> Path:
    """Render the mixed phantom of `config` into `out_dir` in BTXRD's layout.

    Returns the path of ``dataset.csv``. Staged and replaced like `make_phantom`'s
    output (an earlier phantom folder of either layout is replaced cleanly).
    """
    started = time.time()
    validate_config(config)
    if config.films != "mixed":
        raise BoneaugError("phantom: --layout btxrd needs --films mixed (BTXRD's films are "
                           "joint and multi-bone films labelled by region)")

    def fill(staging: Path) -> None:
        records, truths = [], []
        for number, (job, film, labels) in enumerate(iterate_films(config), start=1):
            stem = f"IMG{number:06d}"
            suffix = ".jpg" if number % _JPG_EVERY == 3 else ".jpeg"
            _write_jpeg(staging / "images" / f"{stem}{suffix}", film.image, suffix == ".jpg")
            if job.label:
                shapes = lesion_shapes(film, job.rng(config.seed).spawn(3)[2])
                _write_json(staging / "Annotations" / f"{stem}.json",
                            labelme(shapes, f"{stem}{suffix}", film.image.shape))
            records.append(dataset_row(f"{stem}{suffix}", film, labels))
            truths.append(_truth_row(staging, stem, suffix, job, film, labels))
        _write_csv(staging / "dataset.csv", COLUMNS, records)
        _write_csv(staging / "truth.csv", TRUTH_COLUMNS, truths)
        write_run_json(staging, "phantom", {**config_dict(config), "layout": "btxrd"},
                       config.seed, started, extra={"images": len(records)})

    write_staged(Path(out_dir), fill)
    return Path(out_dir) / "dataset.csv"


def dataset_row(name: str, film: FilmImage, labels: dict[str, str]) -> dict[str, str]:
    """One line of dataset.csv: site flags on tumour films only, region flags on all."""
    row = dict.fromkeys(COLUMNS, "0")
    spec = film.spec
    row.update(image_id=name, center=str(spec.center), age=str(spec.age), gender=spec.sex)
    if spec.lesion:
        for site in labels["sites"].split(";"):
            row[SITE_COLUMN[site]] = "1"
        subtype, kind = SUBTYPES[film.lesion_type]
        row["tumor"] = row[kind] = row[subtype] = "1"
    row[REGION_COLUMN[labels["region"]]] = "1"
    row[spec.view] = "1"
    return row


def lesion_shapes(film: FilmImage, rng: np.random.Generator) -> list[dict[str, Any]]:
    """LabelMe shapes of a film's lesions: per lesion a loose rectangle, then a polygon."""
    height, width = film.image.shape
    label = SUBTYPES[film.lesion_type][0]
    shapes = []
    for x0, y0, x1, y1 in film.boxes:
        # A human draws a box a little outside the lesion, never exactly on its edge.
        side = math.sqrt((x1 - x0) * (y1 - y0))
        pad = side * rng.uniform(0.03, 0.12, 4) + rng.uniform(0.5, 2.0, 4)
        corners = [[max(x0 - pad[0], 0.0), max(y0 - pad[1], 0.0)],
                   [min(x1 + pad[2], float(width)), min(y1 + pad[3], float(height))]]
        shapes.append(_shape(label, corners, "rectangle"))
        inside = np.zeros_like(film.lesion_mask)
        inside[int(y0):int(y1), int(x0):int(x1)] = film.lesion_mask[int(y0):int(y1),
                                                                    int(x0):int(x1)]
        shapes.append(_shape(label, outline(inside), "polygon"))
    return shapes


def outline(mask: np.ndarray, points: int = _POLYGON_POINTS) -> list[list[float]]:
    """The longest outline of `mask` ``(H, W)`` bool, as about `points` ``[x, y]`` pixel
    coordinates (pixel edges at integers, so a pixel's centre is at +0.5)."""
    from contourpy import contour_generator

    padded = np.pad(mask.astype(np.float64), 1)
    lines = contour_generator(z=padded).lines(0.5)
    line = max(lines, key=len)[:-1]  # closed: the last point repeats the first
    step = max(1, math.ceil(len(line) / points))
    # Every step-th vertex, and the extremes, so the polygon's box is the lesion's box.
    keep = set(range(0, len(line), step)) | {int(np.argmin(line[:, 0])),
                                             int(np.argmax(line[:, 0])),
                                             int(np.argmin(line[:, 1])),
                                             int(np.argmax(line[:, 1]))}
    kept = line[sorted(keep)] - 1.0 + 0.5  # undo the padding; array index -> pixel edge
    return [[round(float(x), 2), round(float(y), 2)] for x, y in kept]


def labelme(shapes: list[dict[str, Any]], name: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """A LabelMe 5 annotation of image `name` (``shape`` = (H, W)), as BTXRD ships them."""
    return {"version": "5.0.1", "flags": {}, "shapes": shapes,
            "imagePath": f"..\\images\\{name}", "imageData": None,
            "imageHeight": int(shape[0]), "imageWidth": int(shape[1])}


def _shape(label: str, points: list[list[float]], kind: str) -> dict[str, Any]:
    return {"label": label, "points": [[round(float(x), 2), round(float(y), 2)]
                                       for x, y in points],
            "group_id": None, "description": "", "shape_type": kind, "flags": {}}


def _truth_row(root: Path, stem: str, suffix: str, job: Job, film: FilmImage,
               labels: dict[str, str]) -> dict[str, str]:
    row = {"image_id": stem, "file": f"images/{stem}{suffix}", "phantom_id": job.image_id,
           "label": str(job.label), "bone": labels["bone"], "true_bone": labels["true_bone"],
           "region": labels["region"], "sites": labels["sites"],
           "boxes": json.dumps([[int(v) for v in box] for box in film.boxes]),
           **truth_columns(film)}
    row.update(write_masks(root, "truth_masks", stem, film))
    return row


def _write_jpeg(path: Path, image: np.ndarray, rgb: bool) -> None:
    grey = Image.fromarray(np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), mode="L")
    with atomic_path(path) as tmp:
        (grey.convert("RGB") if rgb else grey).save(tmp, format="JPEG", quality=92)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
