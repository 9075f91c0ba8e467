"""`import_folder`: class folders (optionally under bone folders) into a label-only manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.importers import import_folder
from boneaug.data.manifest import load_manifest
from boneaug.errors import BoneaugError
from conftest import write_gray_png


def make(root: Path, files: list[str]) -> Path:
    for i, name in enumerate(files):
        write_gray_png(root / name, seed=i)
    return root


def test_class_folders_with_bone_option(tmp_path: Path) -> None:
    root = make(tmp_path / "ds", ["Normal/a.png", "normal/../Healthy/b.jpg",
                                  "Lesion/c.png", "TUMOR/sub/d.png", "1/e.png"])
    (root / "Lesion" / "notes.txt").write_text("not an image")
    out = tmp_path / "run" / "manifest.csv"
    report = import_folder(root, out, bone="tibia")
    assert report.rows == 5
    table = load_manifest(out).table.set_index("image_id")
    assert table["label"].to_dict() == {"1/e": 1, "Healthy/b": 0, "Lesion/c": 1, "Normal/a": 0,
                                        "TUMOR/sub/d": 1}
    assert set(table["bone"]) == {"tibia"}
    assert all(boxes == [] for boxes in table["boxes"])
    # positives without boxes are counted: classification only, no lesion patches
    assert any(w.startswith("3 images: positive without lesion boxes") for w in report.warnings)


def test_bone_folders(tmp_path: Path) -> None:
    root = make(tmp_path / "ds", ["Femur/normal/a.png", "Femur/abnormal/b.png",
                                  "hip bone/negative/c.png", "tibia/positive/d.png"])
    import_folder(root, tmp_path / "m.csv", bone=None)
    table = load_manifest(tmp_path / "m.csv").table.set_index("image_id")
    assert table["bone"].to_dict() == {"Femur/abnormal/b": "femur", "Femur/normal/a": "femur",
                                       "hip bone/negative/c": "pelvis",
                                       "tibia/positive/d": "tibia"}
    assert table["label"].tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize(("files", "bone", "expected"), [
    (["normal/a.png", "lesion/b.png"], None, ["pass --bone"]),
    (["normal/a.png", "maybe/b.png"], "femur", ["maybe", "not a class folder"]),
    (["maybe/a.png"], None, ["maybe", "neither a class folder", "nor a bone folder"]),
    (["femur/normal/a.png", "femur/unsure/b.png"], None, ["unsure", "not a class folder"]),
    (["femur/normal/a.png"], "tibia", ["bone folders", "drop --bone"]),
    (["normal/a.png"], "wing", ["unknown bone 'wing'"]),
    (["normal/readme.txt"], "femur", ["no images found"]),
])
def test_bad_folders(tmp_path, files, bone, expected) -> None:
    root = tmp_path / "ds"
    for name in files:
        if name.endswith(".png"):
            write_gray_png(root / name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("x")
    out = tmp_path / "out" / "m.csv"
    with pytest.raises(BoneaugError) as info:
        import_folder(root, out, bone=bone)
    message = str(info.value)
    assert "\n" not in message and not out.parent.exists()
    for part in expected:
        assert part in message, message


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    root = make(tmp_path / "ds", ["normal/a.png"])
    (root / "lesion").mkdir()
    (root / "lesion" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BoneaugError, match="broken.png"):
        import_folder(root, tmp_path / "m.csv", bone="femur")


def test_cli_folder(tmp_path: Path) -> None:
    root = make(tmp_path / "ds", ["normal/a.png", "lesion/b.png"])
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["import", "folder", str(root), "--out", str(out),
                                      "--bone", "femur"])
    assert result.exit_code == 0, result.output
    assert "positive without lesion boxes" in result.output  # warnings reach the user
    assert len(load_manifest(out)) == 2
    bad = subprocess.run([sys.executable, "-m", "boneaug", "import", "folder", str(root),
                          "--out", str(tmp_path / "bad.csv")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--bone" in lines[0]
