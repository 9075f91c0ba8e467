"""`import_coco`: COCO boxes, polygons and crowd RLE into a manifest with lesion masks."""

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
from boneaug.data.importers import import_coco
from boneaug.data.manifest import load_manifest
from boneaug.errors import BoneaugError
from conftest import write_gray_png

W, H = 64, 48


def coco_fixture(folder: Path, **changes: Any) -> Path:
    """Three images: a polygon lesion, a box + crowd RLE lesion, and a negative."""
    for i, name in enumerate(("p1.png", "p2.png", "n1.png")):
        write_gray_png(folder / "images" / name, height=H, width=W, seed=i)
    data: dict[str, Any] = {
        "images": [
            {"id": 1, "file_name": "images/p1.png", "width": W, "height": H},
            {"id": 2, "file_name": "images/p2.png", "width": W, "height": H},
            {"id": 3, "file_name": "images/n1.png", "width": W, "height": H},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 8, 20, 12],
             "segmentation": [[10, 8, 30, 8, 30, 20, 10, 20]], "iscrowd": 0},
            {"id": 11, "image_id": 2, "category_id": 7, "bbox": [0, 0, 5, 6], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 8, "bbox": [40, 30, 10, 10],
             "segmentation": {"counts": [0, 5, 10], "size": [H, W]}, "iscrowd": 1},
        ],
        "categories": [{"id": 7, "name": "osteosarcoma"}, {"id": 8, "name": "cyst"}],
    }
    data.update(changes)
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_round_trip_boxes_masks_and_negatives(tmp_path: Path) -> None:
    ann = coco_fixture(tmp_path / "coco")
    out = tmp_path / "run" / "manifest.csv"
    report = import_coco(ann, out, images_root=None, bone="femur")
    assert report.rows == 3
    assert any("crowd" in w and "1 " in w for w in report.warnings)
    table = load_manifest(out).table.set_index("image_id")
    assert list(table.index) == ["images/p1", "images/p2", "images/n1"]
    assert table["label"].tolist() == [1, 1, 0]
    assert table["bone"].tolist() == ["femur"] * 3
    assert table.at["images/p1", "boxes"] == [[10.0, 8.0, 30.0, 20.0]]  # [x,y,w,h] -> corners
    assert table.at["images/p2", "boxes"] == [[0.0, 0.0, 5.0, 6.0], [40.0, 30.0, 50.0, 40.0]]
    assert table.at["images/n1", "boxes"] == []
    assert table.at["images/p2", "lesion_types"] == "osteosarcoma;cyst"
    assert table.at["images/p2", "mask_path"] == ""  # no polygon: boxes alone
    mask_path = out.parent / table.at["images/p1", "mask_path"]
    assert mask_path.parent == out.parent / f"{out.stem}_masks"
    mask = np.asarray(Image.open(mask_path))
    assert mask.shape == (H, W)
    ys, xs = np.nonzero(mask)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (10, 8, 30, 20)
    assert mask[14, 20] == 255 and mask[0, 0] == 0


def test_category_names_as_bones(tmp_path: Path) -> None:
    ann = coco_fixture(tmp_path, categories=[{"id": 7, "name": "Tibia"},
                                             {"id": 8, "name": "tibia"}])
    data = json.loads(ann.read_text())
    data["images"][2]["bone"] = "Humerus"  # the negative says its bone itself
    ann.write_text(json.dumps(data))
    import_coco(ann, tmp_path / "m.csv", images_root=None, bone=None)
    assert load_manifest(tmp_path / "m.csv").table["bone"].tolist() == ["tibia", "tibia",
                                                                         "humerus"]


def test_images_root_option(tmp_path: Path) -> None:
    ann = coco_fixture(tmp_path / "elsewhere")
    moved = tmp_path / "json" / "a.json"
    moved.parent.mkdir()
    ann.rename(moved)
    with pytest.raises(BoneaugError, match="--images"):
        import_coco(moved, tmp_path / "m.csv", images_root=None, bone="femur")
    report = import_coco(moved, tmp_path / "m.csv", images_root=tmp_path / "elsewhere",
                         bone="femur")
    assert report.rows == 3


def _error(tmp_path: Path, ann: Path, bone: str | None = "femur") -> str:
    out = tmp_path / "out" / "m.csv"
    with pytest.raises(BoneaugError) as info:
        import_coco(ann, out, images_root=None, bone=bone)
    assert not out.parent.exists()  # no manifest, no masks
    message = str(info.value)
    assert "\n" not in message
    return message


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    ann = coco_fixture(tmp_path)
    ann.write_text('{"images": [\n  {"id": 1,,}\n]}')
    message = _error(tmp_path, ann)
    assert str(ann) in message and "not valid JSON" in message and "line 2" in message


@pytest.mark.parametrize(("change", "expected"), [
    ({"annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [50, 40, 60, 30]}]},
     ["annotations[0]", "p1.png", "outside the 64x48 image"]),
    ({"annotations": [{"id": 1, "image_id": 9, "category_id": 7, "bbox": [1, 1, 2, 2]}]},
     ["annotations[0]", "image_id 9"]),
    ({"annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 0, 2]}]},
     ["annotations[0]", "no area"]),
    ({"annotations": [{"id": 1, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}]},
     ["annotations[0]", "category_id 99"]),
    ({"images": [{"id": 1, "file_name": "images/p1.png", "width": 100, "height": H}],
      "annotations": []}, ["images[0]", "100x48", "64x48"]),
    ({"images": [{"id": 1, "file_name": "images/gone.png"}], "annotations": []},
     ["images[0]", "gone.png", "no such image"]),
    ({"images": {"id": 1}}, ["not a COCO JSON"]),
    ({"images": [{"id": 1, "file_name": "images/p1.png"}, {"id": 2, "file_name": "images/p1.png"}],
      "annotations": []}, ["images[1]", "also the id of", "images[0]"]),
])
def test_bad_coco_is_one_line(tmp_path, change, expected) -> None:
    message = _error(tmp_path, coco_fixture(tmp_path, **change))
    for part in expected:
        assert part in message, message


def test_bone_required_when_categories_are_lesions(tmp_path: Path) -> None:
    message = _error(tmp_path, coco_fixture(tmp_path), bone=None)
    assert "osteosarcoma" in message and "--bone" in message
    message = _error(tmp_path, coco_fixture(tmp_path), bone="wing")
    assert "unknown bone 'wing'" in message


def test_cli_coco(tmp_path: Path) -> None:
    ann = coco_fixture(tmp_path / "c")
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["import", "coco", str(ann), "--out", str(out),
                                      "--bone", "tibia"])
    assert result.exit_code == 0, result.output
    assert len(load_manifest(out)) == 3
    ann.write_text("{not json")
    bad = subprocess.run([sys.executable, "-m", "boneaug", "import", "coco", str(ann), "--out",
                          str(tmp_path / "bad.csv"), "--bone", "tibia"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not valid JSON" in lines[0]


def test_a_bbox_only_annotation_and_the_polygon_of_its_lesion_are_one(tmp_path: Path) -> None:
    """A tool that exports a lesion's rectangle and outline as two annotations: one lesion.
    An annotation with both a bbox and a polygon is one lesion already; a box elsewhere
    stays its own."""
    ann = coco_fixture(tmp_path / "coco", annotations=[
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [6, 4, 30, 22]},      # its box
        {"id": 2, "image_id": 1, "category_id": 8,                               # its outline
         "segmentation": [[10, 8, 30, 8, 30, 20, 10, 20]]},
        {"id": 3, "image_id": 1, "category_id": 7, "bbox": [45, 30, 10, 10]},    # elsewhere
        {"id": 4, "image_id": 2, "category_id": 7, "bbox": [10, 8, 20, 12],
         "segmentation": [[10, 8, 30, 8, 30, 20, 10, 20]]},
        {"id": 5, "image_id": 2, "category_id": 7, "bbox": [40, 10, 10, 10],
         "segmentation": [[40, 10, 50, 10, 50, 20, 40, 20]]},
    ])
    out = tmp_path / "m.csv"
    report = import_coco(ann, out, images_root=None, bone="femur")
    table = load_manifest(out).table.set_index("image_id")
    assert table.at["images/p1", "boxes"] == [[10.0, 8.0, 30.0, 20.0], [45.0, 30.0, 55.0, 40.0]]
    assert table.at["images/p2", "boxes"] == [[10.0, 8.0, 30.0, 20.0], [40.0, 10.0, 50.0, 20.0]]
    assert table.at["images/p1", "lesion_types"] == "osteosarcoma;cyst"
    mask = np.asarray(Image.open(out.parent / table.at["images/p1", "mask_path"]))
    assert mask[14, 20] == 255 and mask[5, 7] == 0   # the outline, not the looser bbox
    assert mask[35, 50] == 255                        # the box-only lesion is filled
    assert any(w.startswith("2 annotations") and "into 1 lesion on 1 image" in w
               and "5 annotations -> 4 lesions" in w for w in report.warnings), report.warnings
