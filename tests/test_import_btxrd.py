"""`import_btxrd`: the 37-column dataset.csv, LabelMe annotations, bones, regions, patients."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.importers import import_btxrd
from boneaug.data.importers.btxrd import COLUMNS, group_patients
from boneaug.data.manifest import load_manifest
from boneaug.errors import BoneaugError
from conftest import write_gray_png

W, H = 50, 40

# (file, centre, age, gender, sites, tumour, subtype, region, view); a row is one image
ROWS: list[tuple[str, str, str, str, tuple[str, ...], str, str, str, str]] = [
    ("IMG000001.jpeg", "1", "30", "M", (), "", "", "lower limb", "frontal"),
    ("IMG000002.jpeg", "1", "30", "M", (), "", "", "lower limb", "lateral"),   # pair of 1
    ("IMG000003.jpeg", "1", "12", "F", ("femur",), "malignant", "osteosarcoma", "lower limb",
     "frontal"),
    ("IMG000004.jpg", "1", "12", "F", ("femur",), "malignant", "osteosarcoma", "lower limb",
     "lateral"),                                                                # pair of 3
    ("IMG000005.jpeg", "2", "40", "M", ("tibia", "fibula"), "benign", "osteochondroma",
     "lower limb", "frontal"),                                                  # multi-site
    ("IMG000006.jpeg", "2", "40", "M", (), "", "", "upper limb", "frontal"),
    ("IMG000007.jpeg", "3", "25", "F", ("humerus",), "benign", "simple bone cyst",
     "upper limb", "frontal"),
    ("IMG000008.jpeg", "3", "60", "M", ("hip bone", "hip-joint"), "malignant", "other mt",
     "pelvis", "frontal"),
    ("IMG000009.jpeg", "1", "33", "F", (), "", "", "pelvis", "frontal"),
    ("IMG000010.jpeg", "1", "30", "M", (), "", "", "lower limb", "frontal"),  # not adjacent to 1
]


def csv_row(entry: tuple) -> dict[str, str]:
    name, centre, age, gender, sites, tumour, subtype, region, view = entry
    row = dict.fromkeys(COLUMNS, "0")
    row.update(image_id=name, center=centre, age=age, gender=gender)
    for site in sites:
        row[site] = "1"
    if tumour:
        row["tumor"] = row[tumour] = row[subtype] = "1"
    row[region] = row[view] = "1"
    return row


def annotation(path: Path, shapes: list[dict[str, Any]], **changes: Any) -> None:
    data = {"version": "5.0.1", "flags": {}, "shapes": shapes,
            "imagePath": "..\\images\\" + path.stem + ".jpeg", "imageData": None,
            "imageHeight": H, "imageWidth": W}
    data.update(changes)
    path.write_text(json.dumps(data))


def rect(points: list[list[float]]) -> dict[str, Any]:
    return {"label": "osteosarcoma", "points": points, "group_id": None,
            "shape_type": "rectangle", "flags": {}}


def write_btxrd(root: Path, rows: list[dict[str, str]] | None = None) -> Path:
    rows = rows if rows is not None else [csv_row(r) for r in ROWS]
    for i, row in enumerate(rows):
        path = root / "images" / row["image_id"]
        if path.suffix == ".jpg":  # one of BTXRD's 27 .jpg files, as a real RGB JPEG
            rgb = np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path, quality=90)
        else:
            write_gray_png(path, height=H, width=W, seed=i)  # content only; suffix as listed
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    annotation(root / "Annotations" / "IMG000003.json", [rect([[30, 20], [10, 5]])])
    annotation(root / "Annotations" / "IMG000004.json", [
        {"label": "osteosarcoma", "points": [[5, 5], [20, 6], [12, 25]], "group_id": None,
         "shape_type": "polygon", "flags": {}}])
    annotation(root / "Annotations" / "IMG000005.json", [rect([[1, 2], [8, 9]])])
    annotation(root / "Annotations" / "IMG000007.json", [rect([[20, 10], [40, 30]])])
    annotation(root / "Annotations" / "IMG000008.json", [rect([[2, 2], [48, 38]])])
    with open(root / "dataset.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_btxrd_round_trip(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "BTXRD")
    out = tmp_path / "run" / "manifest.csv"
    report = import_btxrd(root, out)
    assert report.rows == len(ROWS)
    t = load_manifest(out).table.set_index("image_id")
    assert t.at["IMG000004", "path"].endswith("images/IMG000004.jpg")
    assert t["label"].tolist() == [0, 0, 1, 1, 1, 0, 1, 1, 0, 0]
    assert t["bone"].tolist() == ["lower_limb", "lower_limb", "femur", "femur", "tibia",
                                  "upper_limb", "humerus", "pelvis", "pelvis", "lower_limb"]
    assert t.at["IMG000005", "sites"] == "tibia;fibula"  # multi-site: tibia before fibula
    assert t.at["IMG000008", "sites"] == "pelvis;hip"
    assert t["region"].tolist() == ["lower_limb"] * 5 + ["upper_limb"] * 2 + ["pelvis"] * 2 \
        + ["lower_limb"]
    assert t.at["IMG000003", "boxes"] == [[10.0, 5.0, 30.0, 20.0]]
    assert t.at["IMG000004", "boxes"] == [[5.0, 5.0, 20.0, 25.0]]
    assert t.at["IMG000001", "boxes"] == []
    assert t.at["IMG000004", "mask_path"] and not t.at["IMG000003", "mask_path"]
    assert t.at["IMG000004", "mask_path"] == "manifest_masks/IMG000004.png"  # beside it
    assert (out.parent / t.at["IMG000004", "mask_path"]).is_file()
    assert t.at["IMG000003", "subtype"] == "osteosarcoma"
    assert t.at["IMG000007", "subtype"] == "simple bone cyst"
    assert t.at["IMG000003", "malignant"] == "1" and t.at["IMG000005", "benign"] == "1"
    assert t.at["IMG000002", "view"] == "lateral"
    assert t.at["IMG000006", "center"] == "2" and t.at["IMG000006", "gender"] == "M"
    patient = t["patient_id"]
    assert patient["IMG000001"] == patient["IMG000002"]  # frontal + lateral of one patient
    assert patient["IMG000003"] == patient["IMG000004"]
    assert patient["IMG000005"] != patient["IMG000006"]  # same centre/age/sex, other flags
    assert patient["IMG000010"] != patient["IMG000001"]  # equal, but not adjacent
    assert patient.nunique() == 8 and patient["IMG000001"] == "btxrd-p00001"
    assert any("10 images -> 8 patients" in w for w in report.warnings)
    # centre 3 holds only tumours here: the pitfall is reported with the remedy
    assert any(w.startswith("centre 3") and "--holdout 3" in w for w in report.warnings)


def test_patients_per_image_is_leaky_and_says_so(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "b")
    report = import_btxrd(root, tmp_path / "m.csv", patients="image")
    patient = load_manifest(tmp_path / "m.csv").table["patient_id"]
    assert patient.nunique() == len(ROWS) and patient[0] == "btxrd-IMG000001"
    assert any("leaky" in w for w in report.warnings)
    with pytest.raises(BoneaugError, match="--patients 'family'"):
        import_btxrd(root, tmp_path / "m.csv", patients="family")


def test_grouping_follows_image_numbers_not_row_order() -> None:
    keys = [("a",), ("b",), ("a",)]
    assert group_patients(keys, ["IMG3.jpeg", "IMG9.jpeg", "IMG4.jpeg"]) == [0, 1, 0]
    assert group_patients(keys, ["IMG3.jpeg", "IMG4.jpeg", "IMG9.jpeg"]) == [0, 1, 2]


def test_listed_suffix_differs_from_disk(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "b")
    (root / "images" / "IMG000006.jpeg").rename(root / "images" / "IMG000006.jpg")
    report = import_btxrd(root, tmp_path / "m.csv")
    assert any("IMG000006.jpg" in w for w in report.warnings)
    table = load_manifest(tmp_path / "m.csv").table.set_index("image_id")
    assert table.at["IMG000006", "path"].endswith("IMG000006.jpg")


def _error(root: Path, tmp_path: Path) -> str:
    out = tmp_path / "out" / "m.csv"
    with pytest.raises(BoneaugError) as info:
        import_btxrd(root, out)
    assert not out.parent.exists()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in csv_row(r).items() if k != "hip bone"} for r in ROWS]
    message = _error(write_btxrd(tmp_path / "b", rows), tmp_path)
    assert "dataset.csv" in message and "'hip bone'" in message


def test_listed_image_absent(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "b")
    (root / "images" / "IMG000007.jpeg").unlink()
    message = _error(root, tmp_path)
    assert "dataset.csv line 8" in message and "IMG000007.jpeg" in message


@pytest.mark.parametrize(("content", "expected"), [
    ("[1, 2, 3]", "not a LabelMe JSON"),
    ('{"shapes": [', "not valid JSON"),
])
def test_bad_annotation_names_file_and_row(tmp_path, content, expected) -> None:
    root = write_btxrd(tmp_path / "b")
    (root / "Annotations" / "IMG000005.json").write_text(content)
    message = _error(root, tmp_path)
    assert "IMG000005.json" in message and "line 6" in message and expected in message


def test_annotation_outside_image_and_bad_flag(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "b")
    annotation(root / "Annotations" / "IMG000007.json", [rect([[20, 10], [400, 30]])])
    message = _error(root, tmp_path)
    assert "IMG000007.json" in message and "line 8" in message and "outside" in message
    rows = [csv_row(r) for r in ROWS]
    rows[1]["femur"] = "2"
    message = _error(write_btxrd(tmp_path / "c", rows), tmp_path)
    assert "line 3" in message and "column femur" in message


def test_cli_btxrd(tmp_path: Path) -> None:
    root = write_btxrd(tmp_path / "b")
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["import", "btxrd", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(load_manifest(out)) == len(ROWS)
    (root / "images" / "IMG000002.jpeg").unlink()
    bad = subprocess.run([sys.executable, "-m", "boneaug", "import", "btxrd", str(root),
                          "--out", str(tmp_path / "bad.csv")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "line 3" in lines[0]


def poly(points: list[list[float]], label: str = "osteosarcoma") -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": None, "shape_type": "polygon",
            "flags": {}}


def test_a_rectangle_and_its_polygon_are_one_lesion(tmp_path: Path) -> None:
    """BTXRD draws every tumour twice (a rectangle and a polygon): one lesion each, and
    two for a film with two findings, however close or however loosely boxed."""
    root = write_btxrd(tmp_path / "b")
    notes = root / "Annotations"
    # one tumour: the box is the polygon's tight box, not the looser rectangle
    annotation(notes / "IMG000003.json", [rect([[8, 4], [32, 22]]),
                                          poly([[10, 6], [30, 8], [28, 20], [12, 18]])])
    # two lesions side by side; rectangle A reaches 1 px into polygon B's box
    annotation(notes / "IMG000004.json", [
        rect([[2, 5], [22, 30]]), poly([[4, 8], [20, 8], [20, 28], [4, 28]]),
        poly([[21, 8], [42, 8], [42, 28], [21, 28]]), rect([[19, 6], [44, 29]])])
    # a generous rectangle around a small polygon (IoU ~0.02, but it encloses it)
    annotation(notes / "IMG000005.json", [rect([[2, 2], [48, 38]]),
                                          poly([[20, 15], [26, 15], [23, 21]])])
    # a rectangle around two polygons pairs with one of them only
    annotation(notes / "IMG000007.json", [rect([[2, 2], [48, 38]]),
                                          poly([[5, 5], [15, 5], [10, 15]]),
                                          poly([[30, 25], [40, 25], [35, 35]])])
    # polygon first, then its rectangle: the order in the file does not matter
    annotation(notes / "IMG000008.json", [poly([[10, 10], [30, 12], [20, 30]]),
                                          rect([[9, 9], [31, 31]])])
    out = tmp_path / "m.csv"
    report = import_btxrd(root, out)
    t = load_manifest(out).table.set_index("image_id")
    assert t.at["IMG000003", "boxes"] == [[10.0, 6.0, 30.0, 20.0]]
    assert t.at["IMG000004", "boxes"] == [[4.0, 8.0, 20.0, 28.0], [21.0, 8.0, 42.0, 28.0]]
    assert t.at["IMG000005", "boxes"] == [[20.0, 15.0, 26.0, 21.0]]
    assert t.at["IMG000007", "boxes"] == [[5.0, 5.0, 15.0, 15.0], [30.0, 25.0, 40.0, 35.0]]
    assert t.at["IMG000008", "boxes"] == [[10.0, 10.0, 30.0, 30.0]]
    # 13 shapes -> 7 lesions; 12 of them merged into 6 (IMG000007's second polygon alone)
    merged = [w for w in report.warnings if "merged" in w]
    assert len(merged) == 1, report.warnings
    assert merged[0].startswith("12 annotation shapes") and "into 6 lesions on 5 images" \
        in merged[0] and "13 annotation shapes -> 7 lesions" in merged[0]
    # the mask is the polygons: the rectangles' margins stay empty
    mask = np.asarray(Image.open(out.parent / t.at["IMG000003", "mask_path"]))
    assert mask[12, 20] == 255 and mask[5, 9] == 0 and mask[21, 31] == 0
    assert int((mask > 0).sum()) < 0.8 * 24 * 18  # well under the rectangle's 432 px
    mask = np.asarray(Image.open(out.parent / t.at["IMG000007", "mask_path"]))
    assert mask[8, 10] == 255 and mask[30, 35] == 255 and mask[20, 22] == 0
    mask = np.asarray(Image.open(out.parent / t.at["IMG000005", "mask_path"]))
    assert 10 < int((mask > 0).sum()) < 40  # the small triangle, not the 46x36 rectangle


def test_max_side_writes_downscaled_copies(tmp_path: Path) -> None:
    """`--max-side`: large films are written downscaled beside the manifest, with boxes and
    masks scaled alike; the sources are untouched."""
    root = write_btxrd(tmp_path / "b")
    annotation(root / "Annotations" / "IMG000003.json",
               [rect([[8, 4], [32, 22]]), poly([[10, 6], [30, 8], [28, 20], [12, 18]])])
    before = {p: p.read_bytes() for p in (root / "images").iterdir()}
    out = tmp_path / "m.csv"
    report = import_btxrd(root, out, max_side=40)  # the images are 50 x 40: scale 0.8
    table = load_manifest(out).table.set_index("image_id")
    row = table.loc["IMG000003"]
    assert row["path"].startswith("m_images/") and row["source_path"] == "b/images/IMG000003.jpeg"
    assert float(row["scale"]) == pytest.approx(0.8)
    assert row["boxes"] == [[8.0, 4.8, 24.0, 16.0]]
    image = Image.open(out.parent / row["path"])
    assert image.size == (40, 32)
    mask = np.asarray(Image.open(out.parent / row["mask_path"]))
    assert mask.shape == (32, 40) and mask[10, 16] == 255 and mask[1, 1] == 0
    assert any("downscaled" in w for w in report.warnings)
    assert {p: p.read_bytes() for p in (root / "images").iterdir()} == before
    with pytest.raises(BoneaugError, match="at least 32"):
        import_btxrd(root, tmp_path / "n.csv", max_side=8)
