"""One finding, one lesion: `merge_findings`, and what it changes downstream.

The rule on its own (pairing, duplicates, thresholds), then a BTXRD-layout set whose
tumours are drawn as a rectangle and a polygon each, imported and passed to `boneaug
stats` and to `extract_patches`: every stage counts one lesion per finding, not per shape.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data import load_manifest, save_manifest
from boneaug.data.importers import import_btxrd
from boneaug.data.importers.common import (
    DUPLICATE_IOU,
    ENCLOSED_FRACTION,
    PAIR_IOU,
    Shape,
    box_iou,
    lesion_shapes,
    merge_findings,
)
from boneaug.patches import extract_patches
from test_import_btxrd import annotation, csv_row, poly, rect


def box(x0: float, y0: float, x1: float, y1: float) -> Shape:
    return Shape("box", [x0, y0, x1, y1])


def outline(x0: float, y0: float, x1: float, y1: float) -> Shape:
    """A polygon (a diamond) whose tight box is the given box."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    points = [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    return Shape("polygon", [x0, y0, x1, y1], [points])


def boxes_and_sizes(shapes: list[Shape]) -> list[tuple[list[float], int]]:
    return [(f.box, f.n_shapes) for f in merge_findings(shapes)]


def test_the_thresholds_are_what_the_docs_say() -> None:
    assert (ENCLOSED_FRACTION, PAIR_IOU, DUPLICATE_IOU) == (0.8, 0.5, 0.9)
    assert merge_findings([]) == []


def test_a_rectangle_pairs_with_its_own_polygon_first() -> None:
    # The big rectangle encloses both polygons; the tight one belongs to the second.
    # Taken in file order, the big one would grab P2 and leave three findings.
    shapes = [box(0, 0, 100, 100), outline(60, 60, 90, 90), outline(10, 10, 30, 30),
              box(58, 58, 92, 92)]
    # findings come in the order of their first shape: the big rectangle's comes first
    assert boxes_and_sizes(shapes) == [([10, 10, 30, 30], 2), ([60, 60, 90, 90], 2)]


def test_a_rectangle_around_two_polygons_takes_one() -> None:
    shapes = [box(0, 0, 100, 100), outline(5, 5, 25, 25), outline(50, 50, 80, 80)]
    # the larger polygon fills more of the rectangle (higher IoU): it is the pair
    assert boxes_and_sizes(shapes) == [([50, 50, 80, 80], 2), ([5, 5, 25, 25], 1)]


@pytest.mark.parametrize(("x0", "findings"), [(2.0, 1), (2.1, 2)])
def test_enclosed_fraction_boundary(x0: float, findings: int) -> None:
    # polygon box 10 x 10; the rectangle covers (10 - x0) / 10 of it, IoU well under 0.5
    shapes = [outline(0, 0, 10, 10), box(x0, 0, 100, 10)]
    assert box_iou(shapes[0].box, shapes[1].box) < PAIR_IOU
    assert len(merge_findings(shapes)) == findings


def test_a_rectangle_inside_its_polygon_pairs_by_iou() -> None:
    # 16x16 inside 20x20: only 64 % of the polygon box is covered, but IoU is 0.64
    assert boxes_and_sizes([box(2, 2, 18, 18), outline(0, 0, 20, 20)]) == [([0, 0, 20, 20], 2)]
    # a small rectangle inside a big polygon describes something else
    assert len(merge_findings([box(2, 2, 8, 8), outline(0, 0, 20, 20)])) == 2


def test_neighbouring_lesions_stay_apart() -> None:
    # two lesions of one size side by side, each boxed, the boxes touching
    shapes = [box(0, 0, 21, 20), outline(1, 1, 19, 19), box(19, 0, 40, 20),
              outline(21, 1, 39, 19)]
    assert boxes_and_sizes(shapes) == [([1, 1, 19, 19], 2), ([21, 1, 39, 19], 2)]
    # two rectangles of one kind overlapping a lot, but not near-identical, stay two
    assert box_iou([0, 0, 20, 20], [2, 0, 22, 20]) < DUPLICATE_IOU
    assert len(merge_findings([box(0, 0, 20, 20), box(2, 0, 22, 20)])) == 2


def test_a_shape_drawn_twice_is_one() -> None:
    assert boxes_and_sizes([box(0, 0, 20, 20), box(0, 0, 20, 21)]) == [([0, 0, 20, 21], 2)]
    # two copies of the polygon and its rectangle: one finding of three shapes
    found = merge_findings([outline(5, 5, 15, 15), outline(5, 5, 15, 15.5), box(3, 3, 17, 17)])
    assert [(f.box, f.n_shapes, len(f.polygons)) for f in found] == [([5, 5, 15, 15.5], 3, 2)]


def test_the_mask_is_the_polygon_and_a_lone_rectangle_is_filled() -> None:
    found = merge_findings([box(0, 0, 30, 30), outline(5, 5, 25, 25), box(40, 0, 50, 10)])
    shapes = lesion_shapes(found, 60, 40)
    assert len(shapes.polygons) == 1 and shapes.rectangles == [[40, 0, 50, 10]]


# --------------------------------------------------------------------------- end to end

SIDE = 96
BAR = (30, 66)  # columns of the bright vertical "bone"
# image -> its annotation shapes (rectangle + polygon per finding); None: a normal image
FILMS: dict[str, list[dict] | None] = {
    "IMG000001": [rect([[36, 20], [60, 44]]), poly([[38, 22], [58, 22], [58, 42], [38, 42]])],
    "IMG000002": [rect([[32, 10], [64, 32]]), poly([[34, 12], [62, 12], [48, 30]]),
                  rect([[32, 30], [64, 54]]), poly([[34, 33], [62, 33], [48, 52]])],
    "IMG000003": [rect([[31, 30], [65, 80]]), poly([[42, 48], [54, 48], [48, 60]])],
    "IMG000004": None, "IMG000005": None, "IMG000006": None, "IMG000007": None,
}
FINDINGS = 4  # 1 + 2 + 1; the films hold 8 shapes


def write_films(root: Path) -> Path:
    """A BTXRD folder of femur tumours (drawn twice each) and lower-limb normals."""
    (root / "images").mkdir(parents=True)
    (root / "Annotations").mkdir()
    rows = []
    for number, (stem, shapes) in enumerate(FILMS.items(), start=1):
        rng = np.random.default_rng(number)
        image = rng.normal(30, 5, (SIDE, SIDE))
        image[:, BAR[0]:BAR[1]] = rng.normal(200, 10, (SIDE, BAR[1] - BAR[0]))
        tumour = shapes is not None
        if tumour:
            annotation(root / "Annotations" / f"{stem}.json", shapes,
                       imagePath=f"{stem}.jpeg", imageHeight=SIDE, imageWidth=SIDE)
            for shape in shapes[1::2]:  # darken each polygon's box: a lytic lesion
                xs, ys = zip(*shape["points"], strict=True)
                image[int(min(ys)):int(max(ys)), int(min(xs)):int(max(xs))] -= 80
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            root / "images" / f"{stem}.jpeg", quality=95)
        rows.append(csv_row((f"{stem}.jpeg", "1", str(20 + number), "F",
                             ("femur",) if tumour else (), "malignant" if tumour else "",
                             "osteosarcoma" if tumour else "", "lower limb", "frontal")))
    with open(root / "dataset.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    out = tmp_path / "import" / "manifest.csv"
    import_btxrd(write_films(tmp_path / "BTXRD"), out, patients="image")
    return out


def test_imported_films_hold_one_box_per_finding(imported: Path) -> None:
    table = load_manifest(imported).table.set_index("image_id")
    assert [len(b) for b in table["boxes"]] == [1, 2, 1, 0, 0, 0, 0]
    assert table.at["IMG000003", "boxes"] == [[42.0, 48.0, 54.0, 60.0]]  # the small polygon


def test_stats_count_lesions_per_positive_image(imported: Path) -> None:
    result = CliRunner().invoke(app, ["stats", str(imported)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    title = lines.index("Lesions per positive image (real positives; one box per lesion)")
    femur = next(line for line in lines[title:] if line.startswith("femur"))
    # 3 positives, 4 lesions (not 8 shapes): 1.33 per positive, two with 1, one with 2
    assert femur.split() == ["femur", "3", "0", "4", "1.33", "/", "2", "2", "1", "0", "0"]


def test_patches_count_one_real_lesion_per_finding(imported: Path, tmp_path: Path) -> None:
    manifest = load_manifest(imported)
    manifest.table["split"] = "train"
    manifest = load_manifest(save_manifest(manifest, imported.with_name("train.csv")))
    report = extract_patches(manifest, "femur", 16, tmp_path / "patches", per_lesion=2,
                             healthy_per_image=1, negatives_from=("lower_limb",), seed=0,
                             progress=False)
    assert report.n_lesion_images == 3
    assert report.n_lesion_boxes == FINDINGS
    assert report.n_lesion == 2 * FINDINGS
