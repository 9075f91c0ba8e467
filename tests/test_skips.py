"""No single film stops a run: awkward films are skipped with their reason, listed in
``skipped.csv``, and a stage stops (one line) only when most of its films are unusable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from boneaug.data import Manifest, load_manifest, read_image, save_manifest
from boneaug.data.imageio import write_png16
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.skips import Skips, read_skipped
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError
from boneaug.patches import extract_patches
from boneaug.synth import copy_paste_translator, synthesize


def awkward_films(folder: Path, normal: np.ndarray) -> dict[str, Path]:
    """A blank film, an inverted film, a film of markers and text only, a truncated file
    and a film too small to be a radiograph."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["blank"] = write_png16(folder / "blank.png", np.full((96, 96), 0.8, np.float32))
    files["inverted"] = write_png16(folder / "inverted.png", 1.0 - normal)
    marks = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(marks)
    draw.text((6, 6), "L", fill=255)
    draw.text((60, 80), "AP 2019", fill=255)
    files["markers"] = folder / "markers.png"
    marks.save(files["markers"])
    good = folder / "good.png"
    Image.fromarray((normal * 255).astype(np.uint8)).save(good)
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(good.read_bytes()[:200])
    files["tiny"] = folder / "tiny.png"
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(files["tiny"])
    good.unlink()
    return files


@pytest.fixture(scope="module")
def manifest_with_awkward_films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("awkward")
    phantom = load_manifest(make_phantom(root / "phantom", PhantomConfig(
        bones=("femur",), normal=12, lesion=6, size=96, seed=4, difficulty=0.0)))
    table = phantom.table
    split = split_manifest(phantom, val=0.2, test=0.2, seed=0).manifest
    normal = read_image(phantom.image_path(table.index[table["label"] == 0][0]))
    files = awkward_films(root / "awkward", normal)
    rows = [{"image_id": f"awkward-{name}", "path": str(path), "patient_id": f"a-{name}",
             "bone": "femur", "label": 0, "split": "train"} for name, path in files.items()]
    combined = pd.concat([split.table, pd.DataFrame(rows)], ignore_index=True).fillna("")
    from boneaug.data import new_table
    out = root / "manifest.csv"
    save_manifest(Manifest(new_table(combined.to_dict("records")), root=split.root), out)
    return out


def test_patches_skip_awkward_films(manifest_with_awkward_films: Path, tmp_path: Path) -> None:
    manifest = load_manifest(manifest_with_awkward_films, check_images=False)
    report = extract_patches(manifest, "femur", 16, tmp_path, per_lesion=2,
                             healthy_per_image=2, seed=0, progress=False)
    skipped = read_skipped(tmp_path / "femur")
    reasons = dict(zip(skipped["image_id"], skipped["reason"], strict=True))
    # unreadable and too small: each costs its film; a blank film has no bone
    assert "smaller than 32 px" in reasons["awkward-tiny"]
    assert "awkward-truncated" in reasons
    assert reasons["awkward-blank"].startswith("no bone")
    assert report.n_healthy > 0 and len(report.skipped) == len(skipped)
    assert any("skipped" in w for w in report.warnings)


def test_synthesis_skips_awkward_sources_and_keeps_the_count(
        manifest_with_awkward_films: Path, tmp_path: Path, one_thread) -> None:
    manifest = load_manifest(manifest_with_awkward_films, check_images=False)
    extract_patches(manifest, "femur", 16, tmp_path / "patches", per_lesion=2,
                    healthy_per_image=2, seed=0, progress=False)
    bone_dir = tmp_path / "patches" / "femur"
    report = synthesize(bone_dir, manifest, "femur", tmp_path / "synth", count=30, seed=1,
                        device="cpu", progress=False,
                        translator=copy_paste_translator(bone_dir, 1))
    assert report.images == 30  # the images of unusable sources went to other films
    synthetic = load_manifest(tmp_path / "synth" / "synthetic.csv").table
    assert not synthetic["source_image_id"].str.startswith("awkward-").any()
    skipped = read_skipped(tmp_path / "synth")
    assert set(skipped["image_id"]) <= {f"awkward-{n}" for n in
                                        ("blank", "inverted", "markers", "truncated", "tiny")}
    assert {"awkward-tiny", "awkward-truncated"} <= set(skipped["image_id"])


def test_too_many_unusable_films_stop_with_one_line(manifest_with_awkward_films: Path,
                                                    tmp_path: Path) -> None:
    manifest = load_manifest(manifest_with_awkward_films, check_images=False)
    table = manifest.table
    good = table.index[(table["label"] == 0) & (table["split"] == "train")
                       & ~table["image_id"].str.startswith("awkward-")]
    manifest.table = table.drop(index=good[2:]).reset_index(drop=True)  # 2 good, 5 awkward
    wanted = r"5 of 7 normal train films of femur could not be used \(more than 50%"
    with pytest.raises(BoneaugError, match=wanted) as e:
        extract_patches(manifest, "femur", 16, tmp_path, per_lesion=2, healthy_per_image=2,
                        progress=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "femur" / "patches.json").exists()  # nothing half-written


def test_skips_record_each_film_once() -> None:
    skips = Skips("x")
    skips.add("a", "a.png", "first")
    skips.add("a", "a.png", "second")
    skips.add("b", "b.png", "other")
    assert len(skips) == 2 and skips.rows[0]["reason"] == "first"
    skips.check(5, "films")  # 2 of 5: fine
    with pytest.raises(BoneaugError, match="2 of 3 films"):
        skips.check(3, "films")
    with pytest.raises(BoneaugError, match="2 of 2"):
        skips.check(2, "films")
