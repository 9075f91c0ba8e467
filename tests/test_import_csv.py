"""`import_csv`: a user CSV with a column mapping becomes a valid manifest, or one clear line."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.importers import ImportReport, import_csv
from boneaug.data.manifest import load_manifest
from boneaug.errors import BoneaugError
from conftest import write_gray_png


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A hospital-style CSV: own column names, one row per box, text findings."""
    for i, name in enumerate(("a", "b", "c")):
        write_gray_png(tmp_path / "data" / "scans" / f"{name}.png", height=40, width=60, seed=i)
    rows = [
        {"Study": "S1", "File": "scans/a.png", "Finding": "Abnormal", "Bone": "Femur",
         "X0": "2", "Y0": "3", "X1": "10", "Y1": "12", "Site": "north", "label": "old"},
        {"Study": "S1", "File": "scans/a.png", "Finding": "abnormal", "Bone": "Femur",
         "X0": "20", "Y0": "5", "X1": "30", "Y1": "15", "Site": "north", "label": "old"},
        {"Study": "S2", "File": "scans/b.png", "Finding": "normal", "Bone": "Hip bone",
         "X0": "", "Y0": "", "X1": "", "Y1": "", "Site": "south", "label": "old"},
        {"Study": "S3", "File": "scans/c.png", "Finding": "cyst", "Bone": "knee-joint",
         "X0": "", "Y0": "", "X1": "", "Y1": "", "Site": "south", "label": "old"},
    ]
    return write_csv(tmp_path / "data" / "study.csv", rows)


MAPPING = {"image_id": "Study", "path": "File", "label": "Finding", "bone": "Bone",
           "x0": "X0", "y0": "Y0", "x1": "X1", "y1": "Y1"}


def test_mapped_csv_round_trips_and_merges_box_rows(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "run" / "manifest.csv"
    before = study.read_bytes()
    report = import_csv(study, out, mapping=MAPPING, bone=None, positive_values=("abnormal",),
                        images_root=None)
    assert isinstance(report, ImportReport)
    assert report.manifest_path == out and report.rows == 3
    assert study.read_bytes() == before  # the input is never modified
    manifest = load_manifest(out)
    table = manifest.table.set_index("image_id")
    assert list(table.index) == ["S1", "S2", "S3"]
    assert table.at["S1", "boxes"] == [[2.0, 3.0, 10.0, 12.0], [20.0, 5.0, 30.0, 15.0]]
    assert table.at["S2", "boxes"] == []
    # "abnormal" matches case-insensitively; "cyst" is not listed, so it is a negative,
    # and the import says which values it took as normal (a misspelt lesion value shows)
    assert table["label"].tolist() == [1, 0, 0]
    [taken] = [w for w in report.warnings if "taken as normal" in w]
    assert "column Finding" in taken and "'cyst' (1 row)" in taken
    assert table["bone"].tolist() == ["femur", "pelvis", "knee"]
    assert table["patient_id"].tolist() == ["S1", "S2", "S3"]
    # extras are kept; a user column named like a manifest column is renamed
    assert table["Site"].tolist() == ["north", "south", "south"]
    assert table["source_label"].tolist() == ["old", "old", "old"]
    # paths were re-based from the CSV's folder onto the manifest's folder
    assert manifest.image_path(0).resolve() == (study.parent / "scans" / "a.png").resolve()


def test_defaults_same_named_columns_and_constant_bone(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    write_gray_png(images / "x1.png", seed=1)
    write_gray_png(images / "x2.png", seed=2)
    table = write_csv(tmp_path / "meta" / "t.csv", [
        {"path": "x1.png", "label": "yes", "boxes": "[[1,1,8,9]]", "patient_id": "p7"},
        {"path": "x2.png", "label": "No", "boxes": "", "patient_id": "p7"},
    ])
    out = tmp_path / "m.csv"
    report = import_csv(table, out, mapping={}, bone="Tibia", positive_values=None,
                        images_root=images)
    assert report.rows == 2 and report.warnings == []
    loaded = load_manifest(out).table
    assert loaded["image_id"].tolist() == ["x1", "x2"]  # file stem of path
    assert loaded["bone"].tolist() == ["tibia", "tibia"]
    assert loaded["label"].tolist() == [1, 0]
    assert loaded["patient_id"].tolist() == ["p7", "p7"]
    assert loaded["boxes"].tolist() == [[[1.0, 1.0, 8.0, 9.0]], []]


def _bad(tmp_path: Path, rows: list[dict[str, str]], **kwargs) -> tuple[str, Path]:
    write_gray_png(tmp_path / "i.png", height=20, width=30)
    write_gray_png(tmp_path / "j.png", height=20, width=30, seed=3)
    table = write_csv(tmp_path / "t.csv", rows)
    out = tmp_path / "out" / "manifest.csv"
    args = {"mapping": {}, "bone": "femur", "positive_values": None, "images_root": None}
    args.update(kwargs)
    with pytest.raises(BoneaugError) as info:
        import_csv(table, out, **args)
    message = str(info.value)
    assert "\n" not in message
    assert not out.exists() and not out.parent.exists()  # nothing half-written
    return message, table


GOOD = {"path": "i.png", "label": "1", "boxes": "[[1,1,5,5]]"}


@pytest.mark.parametrize(("rows", "kwargs", "expected"), [
    ([GOOD], {"mapping": {"label": "Finding"}}, ["no column 'Finding'", "path, label, boxes"]),
    ([GOOD], {"mapping": {"colour": "path"}}, ["unknown field 'colour'"]),
    ([GOOD, {**GOOD, "path": "j.png", "label": "maybe"}], {}, ["line 3", "'maybe'"]),
    ([{**GOOD, "bone": "wing"}], {"bone": None}, ["line 2", "unknown bone 'wing'"]),
    ([GOOD], {"bone": "wing"}, ["--bone", "unknown bone 'wing'"]),
    ([{**GOOD, "bone": "femur"}], {}, ["bone column", "--bone"]),
    ([{"path": "i.png", "boxes": ""}], {}, ["no label column", "-c label="]),
    ([GOOD, {**GOOD, "path": "missing.png"}], {}, ["line 3", "missing.png", "no such image"]),
    ([{**GOOD, "boxes": "[[1,1,50,5]]"}], {}, ["line 2", "outside the 30x20 image"]),
    ([{**GOOD, "boxes": "[[1,1,5]"}], {}, ["line 2", "malformed boxes"]),
    ([{**GOOD, "label": "0"}], {}, ["line 2", "label 0", "boxes"]),
    ([GOOD, {**GOOD, "label": "0", "boxes": ""}], {}, ["line 3", "label 0", "line 2"]),
    ([{**GOOD, "image_id": "s", "path": ""}], {}, ["line 2", "path is empty"]),
])
def test_bad_csv_is_one_line_naming_the_row(tmp_path, rows, kwargs, expected) -> None:
    message, table = _bad(tmp_path, rows, **kwargs)
    for part in expected:
        assert part in message, message


def test_corner_columns_need_all_four_and_numbers(tmp_path: Path) -> None:
    rows = [{"path": "i.png", "label": "1", "x0": "1", "y0": "1", "x1": "5", "y1": "5"}]
    message, _ = _bad(tmp_path / "a", [{k: v for k, v in rows[0].items() if k != "y1"}])
    assert "x0, y0, x1, y1" in message and "y1" in message
    message, _ = _bad(tmp_path / "b", [{**rows[0], "x1": "five"}])
    assert "line 2" in message and "x1='five'" in message


def test_refuses_to_overwrite_its_input(study: Path) -> None:
    with pytest.raises(BoneaugError, match="overwrite the input"):
        import_csv(study, study, mapping=MAPPING, bone=None, positive_values=("abnormal",),
                   images_root=None)


def test_refuses_to_overwrite_an_input_image(study: Path) -> None:
    image = study.parent / "scans" / "b.png"
    before = image.read_bytes()
    with pytest.raises(BoneaugError, match="overwrite the input"):
        import_csv(study, image, mapping=MAPPING, bone=None, positive_values=("abnormal",),
                   images_root=None)
    assert image.read_bytes() == before


def test_cli_csv(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli" / "manifest.csv"
    args = ["import", "csv", str(study), "--out", str(out), "--positive", "abnormal,lesion"]
    for field, theirs in MAPPING.items():
        args += ["-c", f"{field}={theirs}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 images" in result.output
    assert len(load_manifest(out)) == 3

    bad = subprocess.run([sys.executable, "-m", "boneaug", "import", "csv", str(study), "--out",
                          str(tmp_path / "bad.csv"), "-c", "label=Diagnosis"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Diagnosis" in lines[0]
    assert not (tmp_path / "bad.csv").exists()


def test_duplicate_ids_name_both_rows_and_windows_paths_work(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "sub" / "i.png")
    write_gray_png(tmp_path / "other" / "i.png", seed=4)
    table = write_csv(tmp_path / "t.csv", [
        {"path": "sub\\i.png", "label": "0"},
        {"path": "other/i.png", "label": "0"},
    ])
    with pytest.raises(BoneaugError) as info:
        import_csv(table, tmp_path / "m.csv", mapping={}, bone="femur", positive_values=None,
                   images_root=None)
    # same stem "i" from two folders: rows of one image must agree on the path
    assert "line 3" in str(info.value) and "line 2" in str(info.value)
    table = write_csv(tmp_path / "t.csv", [
        {"id": "a", "path": "sub\\i.png", "label": "0"},
        {"id": "b", "path": "other/i.png", "label": "0"},
    ])
    import_csv(table, tmp_path / "m.csv", mapping={"image_id": "id"}, bone="femur",
               positive_values=None, images_root=None)
    assert load_manifest(tmp_path / "m.csv").table["path"].tolist() == ["sub/i.png",
                                                                        "other/i.png"]


def test_a_row_with_an_extra_field_is_refused(tmp_path: Path) -> None:
    write_gray_png(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("path,label\na.png,0,oops\n")
    with pytest.raises(BoneaugError, match="more fields than the header"):
        import_csv(tmp_path / "t.csv", tmp_path / "m.csv", mapping={}, bone="femur",
                   positive_values=None, images_root=None)


def test_near_identical_boxes_of_one_image_are_one_lesion(tmp_path: Path) -> None:
    """One finding listed twice (two rows, or twice in one boxes cell) is one lesion; two
    boxes side by side, or of one size but apart, stay two. Boxes alone never pair."""
    write_gray_png(tmp_path / "a.png", height=40, width=60)
    write_gray_png(tmp_path / "b.png", height=40, width=60, seed=1)
    table = write_csv(tmp_path / "t.csv", [
        {"path": "a.png", "label": "1", "boxes": "[[10,10,30,30]]"},
        {"path": "a.png", "label": "1", "boxes": "[[10,10,30,31],[31,10,51,30]]"},
        {"path": "b.png", "label": "1", "boxes": "[[2,2,58,38],[20,15,26,21],[20,15,26,21]]"},
    ])
    out = tmp_path / "m.csv"
    report = import_csv(table, out, mapping={}, bone="femur", positive_values=None,
                        images_root=None)
    boxes = load_manifest(out).table.set_index("image_id")["boxes"]
    # IoU 400/420 = 0.95: one lesion, the box around both drawings
    assert boxes["a"] == [[10.0, 10.0, 30.0, 31.0], [31.0, 10.0, 51.0, 30.0]]
    # a box around a smaller one is not a duplicate (CSV has no polygons to pair)
    assert boxes["b"] == [[2.0, 2.0, 58.0, 38.0], [20.0, 15.0, 26.0, 21.0]]
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("4 boxes") and "6 boxes -> 4 lesions" in \
        report.warnings[0]
