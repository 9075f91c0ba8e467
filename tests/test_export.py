"""`boneaug export`: COCO, YOLO and mask PNGs, round-tripped through `import coco`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath
from PIL import Image
from scipy.ndimage import binary_dilation
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data import Manifest, load_manifest, read_image, save_manifest
from boneaug.data.export import export_manifest, lesion_mask, mask_polygons
from boneaug.data.importers import import_coco
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """Phantom femur and tibia films (lesion masks), split, with one synthetic train row
    (a copy of a lesion film, box only)."""
    root = tmp_path_factory.mktemp("export")
    manifest = load_manifest(make_phantom(root / "films", PhantomConfig(
        bones=("femur", "tibia"), normal=4, lesion=4, size=96, seed=3)))
    table = split_manifest(manifest, val=0.25, test=0.25, seed=0).manifest.table.copy()
    lesion = table[(table["label"] == 1) & (table["split"] == "train")].iloc[0].copy()
    lesion["image_id"] = "syn-0"
    copy = root / "films" / "synthetic" / "syn-0.png"  # a synthetic film is a file of its own
    copy.parent.mkdir()
    copy.write_bytes(manifest.resolve(lesion["path"]).read_bytes())
    lesion["path"] = str(copy)
    lesion["origin"] = "synthetic"
    lesion["mask_path"] = ""
    lesion["provenance"] = json.dumps({"generator": "test", "source": "x", "seed": 0})
    table = pd.concat([table, lesion.to_frame().T], ignore_index=True)
    return load_manifest(save_manifest(Manifest(table, manifest.root), root / "all.csv"))


def test_coco_round_trip_keeps_boxes_masks_bones_and_the_synthetic_mark(films, tmp_path):
    report = export_manifest(films, tmp_path / "coco", "coco")
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    table = films.table
    assert report.images == len(table) == len(data["images"])
    assert report.boxes == sum(len(b) for b in table["boxes"]) == len(data["annotations"])
    marked = {e["boneaug_image_id"]: e["synthetic"] for e in data["images"]}
    assert marked.pop("syn-0") is True and not any(marked.values())
    [synthetic] = [e for e in data["images"] if e["synthetic"]]
    assert json.loads(synthetic["provenance"])["generator"] == "test"

    back = load_manifest(import_coco(tmp_path / "coco" / "annotations.json",
                                     tmp_path / "back.csv", images_root=None,
                                     bone=None).manifest_path)
    assert len(back) == len(table)
    by_path = {str(films.resolve(p).resolve()): k for k, p in enumerate(table["path"])}
    masks_checked = 0
    for k in range(len(back)):
        row = back.table.iloc[k]
        original = table.iloc[by_path[str(back.resolve(row["path"]).resolve())]]
        assert row["bone"] == original["bone"] and row["label"] == original["label"]
        assert np.allclose(row["boxes"], original["boxes"], atol=1e-6) or \
            (not row["boxes"] and not original["boxes"])
        if original["mask_path"]:
            shape = read_image(films.resolve(original["path"])).shape
            mine = lesion_mask(films, original, shape)
            theirs = read_image(back.resolve(row["mask_path"])) > 0
            # COCO polygons run along pixel edges; the importer draws them with their
            # outline (Pillow puts a pixel's centre at integer coordinates), which adds at
            # most a ring of one pixel
            assert (mine <= theirs).all() and (theirs <= binary_dilation(mine)).all()
            masks_checked += 1
    assert masks_checked >= 4


def test_mask_polygons_follow_pixel_edges():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:7] = True  # x 3..6, y 2..4
    [polygon] = mask_polygons(mask, [0, 0, 12, 10])
    xs, ys = polygon[0::2], polygon[1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (3, 7, 2, 5)
    assert mask_polygons(mask, [8, 6, 12, 10]) == []  # nothing of the mask in that box
    # a blob: the pixels whose centres lie inside the polygons are exactly the mask's
    yy, xx = np.mgrid[0:40, 0:40]
    blob = ((xx - 18.3) / 9) ** 2 + ((yy - 21.7) / 6) ** 2 < 1
    blob[20, 5:9] = True  # a spur
    inside = np.zeros_like(blob)
    centres = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
    for flat in mask_polygons(blob, [0, 0, 40, 40]):
        outline = MplPath(np.reshape(flat, (-1, 2)))
        inside |= outline.contains_points(centres).reshape(blob.shape)
    assert (inside == blob).all()


def test_yolo_labels_match_the_boxes(films, tmp_path):
    export_manifest(films, tmp_path / "yolo", "yolo", splits=["train"], origin="all")
    index = pd.read_csv(tmp_path / "yolo" / "index.csv", keep_default_na=False)
    train = films.table[films.table["split"] == "train"]
    assert index["image_id"].tolist() == train["image_id"].astype(str).tolist()
    assert set(index["origin"]) == {"real", "synthetic"}
    images = (tmp_path / "yolo" / "images.txt").read_text().splitlines()
    for (_, row), name, image in zip(train.iterrows(), index["file"], images, strict=True):
        assert Path(image) == films.resolve(row["path"]).resolve()
        height, width = read_image(image).shape
        lines = (tmp_path / "yolo" / name).read_text().splitlines()
        assert len(lines) == len(row["boxes"])
        for line, (x0, y0, x1, y1) in zip(lines, row["boxes"], strict=True):
            cls, cx, cy, w, h = line.split()
            assert cls == "0"
            got = [(float(cx) - float(w) / 2) * width, (float(cy) - float(h) / 2) * height,
                   (float(cx) + float(w) / 2) * width, (float(cy) + float(h) / 2) * height]
            assert np.allclose(got, [x0, y0, x1, y1], atol=1e-3)
    assert "names: [lesion]" in (tmp_path / "yolo" / "data.yaml").read_text()


def test_mask_pngs_are_the_lesion_masks_or_the_filled_boxes(films, tmp_path):
    export_manifest(films, tmp_path / "m", "masks", origin="synthetic")
    index = pd.read_csv(tmp_path / "m" / "index.csv", keep_default_na=False)
    assert index["image_id"].tolist() == ["syn-0"]
    mask = np.asarray(Image.open(tmp_path / "m" / index["file"][0])) > 0
    x0, y0, x1, y1 = films.table.set_index("image_id").loc["syn-0", "boxes"][0]
    assert mask.sum() > 0 and mask[int(y0) + 1, int(x0) + 1] and not mask[0, 0]
    export_manifest(films, tmp_path / "r", "masks", splits=["test"], origin="real")
    index = pd.read_csv(tmp_path / "r" / "index.csv", keep_default_na=False)
    test = films.table[films.table["split"] == "test"]
    for (_, row), name in zip(test.iterrows(), index["file"], strict=True):
        written = np.asarray(Image.open(tmp_path / "r" / name)) > 0
        if row["mask_path"]:
            assert (written == (read_image(films.resolve(row["mask_path"])) > 0)).all()
        else:
            assert not written.any()


def test_bad_exports_are_one_line_and_leave_nothing(films, tmp_path):
    with pytest.raises(BoneaugError, match="--format 'voc'"):
        export_manifest(films, tmp_path / "a", "voc")
    with pytest.raises(BoneaugError, match="--split 'holdout'"):
        export_manifest(films, tmp_path / "a", "coco", splits=["holdout"])
    with pytest.raises(BoneaugError, match="nothing to export"):
        export_manifest(films, tmp_path / "a", "coco", splits=["val"], origin="synthetic")
    with pytest.raises(BoneaugError, match="holds the input"):
        export_manifest(films, films.root, "coco")
    # a mask of another size half-way: no export, no staging folder left
    table = films.table.copy()
    last = table.index[table["mask_path"] != ""][-1]
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    table.at[last, "mask_path"] = str(small)
    broken = Manifest(table, films.root, source=films.source)
    with pytest.raises(BoneaugError, match="the mask is 8x8 px"):
        export_manifest(broken, tmp_path / "b", "masks")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


def test_cli_export_and_a_second_export_into_the_same_folder(films, tmp_path):
    runner = CliRunner()
    args = ["export", str(films.source), "--out", str(tmp_path / "e"), "--format", "yolo",
            "--split", "train,val"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "yolo:" in result.output and "1 synthetic" in result.output
    assert runner.invoke(app, args).exit_code == 0  # an earlier export is ours to replace
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    result = runner.invoke(app, [*args[:3], str(tmp_path / "theirs")])
    assert isinstance(result.exception, BoneaugError)
    assert "not an earlier `boneaug export`" in str(result.exception)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"
