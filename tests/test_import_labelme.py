"""`import_labelme`: images with LabelMe JSONs beside them; rectangles, polygons, clipping."""

from __future__ import annotations

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
from boneaug.data.importers import import_labelme
from boneaug.data.manifest import load_manifest
from boneaug.errors import BoneaugError
from conftest import write_gray_png

W, H = 60, 40


def labelme(path: Path, shapes: list[dict[str, Any]], **changes: Any) -> Path:
    data = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": path.stem + ".png",
            "imageData": None, "imageWidth": W, "imageHeight": H}
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def shape(kind: str, points: list[list[float]], label: str = "osteosarcoma") -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": None, "shape_type": kind, "flags": {}}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """rect (corners given bottom-right first), sub/poly (polygon), plain (no JSON),
    empty (JSON without shapes), edge.jpg (a point 1 px outside the image)."""
    root = tmp_path / "lm"
    for i, name in enumerate(("rect.png", "sub/poly.png", "plain.png", "empty.png")):
        write_gray_png(root / name, height=H, width=W, seed=i)
    rgb = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "edge.jpg", quality=90)
    labelme(root / "rect.json", [shape("rectangle", [[30, 25], [10, 5]])])
    labelme(root / "sub" / "poly.json", [shape("polygon", [[5, 5], [25, 8], [15, 30]], "cyst")])
    labelme(root / "empty.json", [])
    labelme(root / "edge.json", [shape("polygon", [[40, 20], [61, 30], [50, 39.5]])])
    return root


def test_labelme_round_trip(folder: Path, tmp_path: Path) -> None:
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    out = tmp_path / "run" / "manifest.csv"
    report = import_labelme(folder, out, bone="Humerus")
    assert report.rows == 5
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == snapshot
    assert any("edge.json" in w and "clipped" in w for w in report.warnings)
    # a warning is its reason, not the reason plus a stray "LabelMe shape notes"
    assert not any(w.endswith("notes") for w in report.warnings), report.warnings
    table = load_manifest(out).table.set_index("image_id")
    assert sorted(table.index) == ["edge", "empty", "plain", "rect", "sub/poly"]
    assert set(table["bone"]) == {"humerus"}
    assert table["label"].to_dict() == {"edge": 1, "empty": 0, "plain": 0, "rect": 1,
                                        "sub/poly": 1}
    assert table.at["rect", "boxes"] == [[10.0, 5.0, 30.0, 25.0]]
    assert table.at["sub/poly", "boxes"] == [[5.0, 5.0, 25.0, 30.0]]
    assert table.at["edge", "boxes"] == [[40.0, 20.0, 60.0, 39.5]]  # clipped to x = 60
    assert table.at["sub/poly", "lesion_types"] == "cyst"
    assert table.at["rect", "mask_path"] == ""  # a rectangle alone needs no mask
    mask = np.asarray(Image.open(out.parent / table.at["sub/poly", "mask_path"]))
    assert mask.shape == (H, W) and mask[12, 15] == 255 and mask[35, 55] == 0
    assert 100 < int((mask > 0).sum()) < 400  # about the triangle's area (~245 px)


def test_rerun_into_the_folder_skips_its_own_masks(folder: Path) -> None:
    out = folder / "manifest.csv"
    import_labelme(folder, out, bone="femur")
    assert (folder / "manifest_masks").is_dir()
    assert import_labelme(folder, out, bone="femur").rows == 5


def _error(folder: Path, tmp_path: Path, bone: str = "femur") -> str:
    out = tmp_path / "out" / "m.csv"
    with pytest.raises(BoneaugError) as info:
        import_labelme(folder, out, bone=bone)
    assert not out.parent.exists()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_malformed_json(folder: Path, tmp_path: Path) -> None:
    (folder / "rect.json").write_text('{"shapes": [}')
    message = _error(folder, tmp_path)
    assert "rect.json" in message and "not valid JSON" in message


@pytest.mark.parametrize(("shapes", "changes", "expected"), [
    ([shape("rectangle", [[10, 5], [200, 25]])], {}, ["rect.json shape 0", "(200, 25)",
                                                      "outside the 60x40 image"]),
    ([shape("rectangle", [[10, 5], [10, 25]])], {}, ["rect.json shape 0", "no area"]),
    ([shape("polygon", [[1, 1], [5, 5]])], {}, ["rect.json shape 0", "at least 3 points"]),
    ([shape("blob", [[1, 1], [5, 5]])], {}, ["rect.json shape 0", "unknown shape_type"]),
    ([shape("rectangle", [[1, 1], [5, 5]])], {"imageWidth": 600}, ["rect.json", "600x40",
                                                                   "60x40"]),
])
def test_bad_shapes(folder, tmp_path, shapes, changes, expected) -> None:
    labelme(folder / "rect.json", shapes, **changes)
    message = _error(folder, tmp_path)
    for part in expected:
        assert part in message, message


def test_not_labelme_and_unknown_bone(folder: Path, tmp_path: Path) -> None:
    assert "unknown bone 'wing'" in _error(folder, tmp_path, bone="wing")
    (folder / "rect.json").write_text(json.dumps({"annotations": []}))
    message = _error(folder, tmp_path)
    assert "rect.json" in message and "not a LabelMe JSON" in message


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "none").mkdir()
    assert "no images" in _error(tmp_path / "none", tmp_path)


def test_cli_labelme(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["import", "labelme", str(folder), "--out", str(out),
                                      "--bone", "femur"])
    assert result.exit_code == 0, result.output
    assert len(load_manifest(out)) == 5
    labelme(folder / "rect.json", [shape("rectangle", [[10, 5], [500, 25]])])
    bad = subprocess.run([sys.executable, "-m", "boneaug", "import", "labelme", str(folder),
                          "--out", str(tmp_path / "bad.csv"), "--bone", "femur"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "rect.json" in lines[0]


def test_a_users_own_masks_folder_is_never_written_into(folder: Path) -> None:
    own = folder / "masks"
    own.mkdir()
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(own / "poly.png")
    before = (own / "poly.png").read_bytes()
    import_labelme(folder, folder / "manifest.csv", bone="femur")
    assert (own / "poly.png").read_bytes() == before


def test_shapes_of_one_finding_are_one_lesion(folder: Path, tmp_path: Path) -> None:
    """A rectangle and its polygon, a circle and its polygon, a polygon drawn twice: one
    lesion each; two rectangles apart stay two."""
    labelme(folder / "rect.json", [
        shape("rectangle", [[8, 4], [32, 26]], "tumour box"),
        shape("polygon", [[10, 6], [30, 6], [30, 24], [10, 24]], "tumour"),
        shape("rectangle", [[40, 5], [55, 15]]),
        shape("rectangle", [[40, 25], [55, 35]]),
    ])
    labelme(folder / "sub" / "poly.json", [
        shape("polygon", [[5, 5], [25, 8], [15, 30]]),
        shape("polygon", [[5, 5], [25, 8.5], [15, 30]]),       # the same outline again
        shape("circle", [[45, 20], [45, 30]]),                 # box [35, 10, 55, 30]
        shape("polygon", [[38, 14], [52, 14], [45, 28]]),
    ])
    out = tmp_path / "m.csv"
    report = import_labelme(folder, out, bone="femur")
    table = load_manifest(out).table.set_index("image_id")
    assert table.at["rect", "boxes"] == [[10.0, 6.0, 30.0, 24.0], [40.0, 5.0, 55.0, 15.0],
                                         [40.0, 25.0, 55.0, 35.0]]
    assert table.at["sub/poly", "boxes"] == [[5.0, 5.0, 25.0, 30.0], [38.0, 14.0, 52.0, 28.0]]
    assert table.at["rect", "lesion_types"] == "tumour box;tumour;osteosarcoma"
    # rect: the paired rectangle adds nothing to the mask; the lone rectangles are filled
    mask = np.asarray(Image.open(out.parent / table.at["rect", "mask_path"]))
    assert mask[15, 20] == 255 and mask[5, 9] == 0 and mask[25, 31] == 0
    assert mask[10, 47] == 255 and mask[30, 47] == 255 and mask[20, 47] == 0
    # 8 shapes -> 5 lesions on the two files; edge.json's single polygon merges nothing
    merged = [w for w in report.warnings if "merged" in w]
    assert merged == [next(w for w in report.warnings if w.startswith("6 LabelMe shapes"))]
    assert "into 3 lesions on 2 images" in merged[0]
    assert "9 LabelMe shapes -> 6 lesions" in merged[0]


def test_read_labelme_counts_findings_and_shapes(folder: Path) -> None:
    from boneaug.data.importers.labelme import read_labelme

    labelme(folder / "rect.json", [
        shape("rectangle", [[8, 4], [32, 26]]),
        shape("polygon", [[10, 6], [30, 6], [30, 24], [10, 24]]),
        shape("point", [[3, 3]]),
    ])
    note = read_labelme(folder / "rect.json", folder / "rect.png")
    assert (note.n_findings, note.n_shapes) == (1, 3)
    assert str(note) == "1 finding(s) from 3 shape(s)"
    assert note.boxes == [[10.0, 6.0, 30.0, 24.0]]
    assert [f.n_shapes for f in note.findings] == [2]
    assert note.shapes.rectangles == [] and len(note.shapes.polygons) == 1
