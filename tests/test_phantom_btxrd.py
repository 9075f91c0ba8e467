"""The mixed phantom in BTXRD's layout: 37 columns, LabelMe rectangle + polygon pairs,
JPEGs, the truth beside it, and `boneaug import btxrd` reading it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.importers.btxrd import COLUMNS
from boneaug.data.manifest import load_manifest
from boneaug.data.phantom import PhantomConfig
from boneaug.data.phantom_btxrd import export_btxrd, outline
from boneaug.errors import BoneaugError

SITE_FLAGS = COLUMNS[4:19]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("btxrd") / "set"
    config = PhantomConfig(films="mixed", normal=3, lesion=3, awkward=3, size=48, seed=1)
    assert export_btxrd(root, config) == root / "dataset.csv"
    return root


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_dataset_csv_has_btxrd_columns_and_flags(export):
    with open(export / "dataset.csv", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == COLUMNS and len(header) == 37
    rows = _rows(export / "dataset.csv")
    truth = _rows(export / "truth.csv")
    assert len(rows) == len(truth) == 3 * 3 + 3 * 3 + 3 * 2
    names = sorted(p.name for p in (export / "images").iterdir())
    assert names == sorted(r["image_id"] for r in rows)
    assert any(n.endswith(".jpg") for n in names) and any(n.endswith(".jpeg") for n in names)
    for row, true in zip(rows, truth, strict=True):
        tumour = row["tumor"] == "1"
        assert tumour == (true["label"] == "1")
        assert any(row[c] == "1" for c in SITE_FLAGS) == tumour  # sites on tumours only
        assert [row[c] for c in ("upper limb", "lower limb")].count("1") == 1
        assert [row[c] for c in ("frontal", "lateral", "oblique")].count("1") == 1
        if tumour:
            assert [row["benign"], row["malignant"]].count("1") == 1
            assert [row[c] for c in COLUMNS[22:31]].count("1") == 1
            assert row[true["lesion_bone"]] == "1"
        assert row["center"] in {"1", "2", "3"} and row["gender"] in {"M", "F"}


def test_images_are_8_bit_jpegs(export):
    for path in (export / "images").iterdir():
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (48, 48)
            assert image.mode == ("RGB" if path.suffix == ".jpg" else "L")


def test_every_lesion_is_a_rectangle_and_a_polygon(export):
    truth = {r["image_id"]: r for r in _rows(export / "truth.csv")}
    notes = sorted((export / "Annotations").iterdir())
    assert {p.stem for p in notes} == {k for k, r in truth.items() if r["label"] == "1"}
    for path in notes:
        data = json.loads(path.read_text())
        assert data["imageWidth"] == data["imageHeight"] == 48 and data["version"]
        kinds = [s["shape_type"] for s in data["shapes"]]
        assert kinds.count("rectangle") == kinds.count("polygon") >= 1
        for rect, poly in zip(data["shapes"][::2], data["shapes"][1::2], strict=True):
            (x0, y0), (x1, y1) = rect["points"]
            xs, ys = zip(*poly["points"], strict=True)
            assert 3 <= len(xs) <= 40 and rect["label"] == poly["label"]
            # A loose box around the outline, inside the image.
            assert 0 <= x0 <= min(xs) and max(xs) <= x1 <= 48
            assert 0 <= y0 <= min(ys) and max(ys) <= y1 <= 48
            box = json.loads(truth[path.stem]["boxes"])[0]
            assert (min(xs), min(ys), max(xs), max(ys)) == tuple(float(v) for v in box)


def test_outline_traces_the_mask():
    mask = np.zeros((20, 20), bool)
    mask[4:9, 6:15] = True
    points = np.array(outline(mask))
    assert points[:, 0].min() == 6 and points[:, 0].max() == 15
    assert points[:, 1].min() == 4 and points[:, 1].max() == 9


def test_truth_masks_and_columns(export):
    for row in _rows(export / "truth.csv"):
        bones = [b for b in row["true_bones"].split(";") if b]
        for bone in bones:
            mask = np.asarray(Image.open(export / row[f"{bone}_mask_path"])) > 0
            assert mask.shape == (48, 48) and mask.any()
        if row["label"] == "1":
            lesion = np.asarray(Image.open(export / row["mask_path"])) > 0
            bone = np.asarray(Image.open(export / row[f"{row['lesion_bone']}_mask_path"])) > 0
            assert lesion.any() and not (lesion & ~bone).any()
            assert row["bone"] == row["lesion_bone"] == row["true_bone"]
        else:
            assert row["bone"] in ("lower_limb", "upper_limb") or row["bone"] == row["true_bone"]


def test_import_btxrd_reads_the_export(export, tmp_path):
    out = tmp_path / "imported" / "manifest.csv"
    result = CliRunner().invoke(app, ["import", "btxrd", str(export), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = load_manifest(out).table
    truth = pd.read_csv(export / "truth.csv", dtype=str, keep_default_na=False)
    assert len(table) == len(truth)
    merged = table.merge(truth, on="image_id", suffixes=("", "_truth"))
    assert len(merged) == len(truth)
    assert (merged["label"].astype(str) == merged["label_truth"]).all()
    positives = merged[merged["label"] == 1]
    assert (positives["bone"] == positives["lesion_bone"]).all()
    assert all(len(boxes) >= 1 for boxes in positives["boxes"])
    normals = merged[merged["label"] == 0]
    assert set(normals["bone"]) <= {"lower_limb", "upper_limb"}


def test_btxrd_layout_needs_mixed_films(tmp_path):
    with pytest.raises(BoneaugError, match="needs --films mixed"):
        export_btxrd(tmp_path / "x", PhantomConfig(normal=1, size=40))
    result = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "y"), "--layout",
                                      "coco", "--normal", "1", "--size", "40"])
    assert result.exit_code != 0 and not (tmp_path / "y").exists()


def test_export_replaces_an_earlier_phantom_cleanly(tmp_path):
    from boneaug.data.phantom import make_phantom

    out = tmp_path / "ph"
    make_phantom(out, PhantomConfig(films="mixed", normal=1, lesion=1, size=40,
                                    bones=("tibia",)))
    export_btxrd(out, PhantomConfig(films="mixed", normal=1, lesion=0, size=40,
                                    bones=("tibia",)))
    assert sorted(p.name for p in out.iterdir()) == ["dataset.csv", "images", "run.json",
                                                     "truth.csv", "truth_masks"]
