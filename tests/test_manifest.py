"""The manifest contract: typing, validation messages, invariants, round-trips."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boneaug.data.manifest import (
    Manifest,
    check_manifest,
    format_boxes,
    load_manifest,
    new_table,
    parse_boxes,
    save_manifest,
    validate_manifest,
)
from boneaug.errors import ManifestError
from conftest import write_gray_png
from test_imageio import make_dicom


def good_rows() -> list[dict[str, str]]:
    return [
        {"image_id": "a", "path": "img/im0.png", "patient_id": "p1", "bone": "femur",
         "label": "1", "boxes": "[[2,3,10,12]]", "split": "train", "origin": "real",
         "provenance": "", "center": "1"},
        {"image_id": "b", "path": "img/im1.png", "patient_id": "p1", "bone": "femur",
         "label": "0", "boxes": "", "split": "train", "origin": "real", "provenance": "",
         "center": "1"},
        {"image_id": "c", "path": "img/im2.png", "patient_id": "p2", "bone": "tibia",
         "label": "0", "boxes": "[]", "split": "test", "origin": "real", "provenance": "",
         "center": "2"},
        {"image_id": "d", "path": "img/im3.png", "patient_id": "p3", "bone": "humerus",
         "label": "1", "boxes": "[[0,0,48,32]]", "split": "val", "origin": "real",
         "provenance": "", "center": "3"},
    ]


def write_manifest(folder: Path, rows: list[dict[str, str]], name: str = "manifest.csv") -> Path:
    path = folder / name
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    return path


def only_error(path: Path) -> str:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_good_manifest_loads_typed(tmp_path, tiny_images):
    m = load_manifest(write_manifest(tmp_path, good_rows()))
    assert len(m) == 4
    assert list(m.table["label"]) == [1, 0, 0, 1]
    assert m.table.at[0, "boxes"] == [[2.0, 3.0, 10.0, 12.0]]
    assert m.table.at[2, "boxes"] == []
    assert m.image_path(0) == tmp_path / "img" / "im0.png"
    assert list(m.table["center"]) == ["1", "1", "2", "3"]  # extra column kept as text


def test_defaults_fill_patient_and_origin(tmp_path, tiny_images):
    rows = [{"image_id": "x", "path": "img/im0.png", "bone": "femur", "label": "0"}]
    m = load_manifest(write_manifest(tmp_path, rows))
    assert m.table.at[0, "patient_id"] == "x"
    assert m.table.at[0, "origin"] == "real"
    assert m.table.at[0, "split"] == ""


@pytest.mark.parametrize(
    ("row", "column", "value", "expected"),
    [
        (0, "path", "img/nope.png", "no such image file"),
        (1, "bone", "banana", "unknown bone 'banana'"),
        (2, "label", "2", "label is '2'; must be 0 or 1"),
        (0, "boxes", "[[1,2,3]]", "malformed boxes"),
        (0, "boxes", "[[5,5,2,9]]", "needs x1 > x0"),
        (0, "boxes", "not json", "not valid JSON"),
        (0, "boxes", "[[40,20,49,30]]", "outside the 48x32 image"),
        (1, "image_id", "a", "duplicate image_id (first on line 2)"),
        (2, "patient_id", "p1", "patient 'p1' is in test here but in train on line 2"),
        (2, "origin", "fake", "origin is 'fake'"),
        (2, "split", "holdout", "split is 'holdout'"),
        (1, "boxes", "[[1,1,4,4]]", "label 0 (no lesion) but lesion boxes"),
    ],
)
def test_each_bad_input_is_one_line_naming_row_and_column(tmp_path, tiny_images, row, column,
                                                          value, expected):
    rows = good_rows()
    rows[row][column] = value
    message = only_error(write_manifest(tmp_path, rows))
    assert expected in message
    expect_column = "split" if column == "patient_id" else column
    assert f"line {row + 2}" in message and f"column {expect_column}" in message


def test_unreadable_image(tmp_path, tiny_images):
    (tmp_path / "img" / "im1.png").write_bytes(b"garbage")
    message = only_error(write_manifest(tmp_path, good_rows()))
    assert "line 3" in message and "not a readable image" in message


def test_synthetic_rows_never_in_val_or_test(tmp_path, tiny_images):
    rows = good_rows()
    rows[2].update(origin="synthetic", provenance='{"generator": "abc"}')
    message = only_error(write_manifest(tmp_path, rows))
    assert "synthetic image in the test split" in message
    rows[2]["split"] = "train"
    rows[2]["patient_id"] = "p9"
    load_manifest(write_manifest(tmp_path, rows))  # in train it is fine


def test_synthetic_rows_need_provenance(tmp_path, tiny_images):
    rows = good_rows()
    rows[1].update(origin="synthetic", provenance="")
    assert "needs a JSON object of provenance" in only_error(write_manifest(tmp_path, rows))


def test_positive_without_boxes_is_a_counted_warning(tmp_path, tiny_images):
    rows = good_rows()
    rows[0]["boxes"] = ""
    path = write_manifest(tmp_path, rows)
    m = load_manifest(path)  # not an error
    warnings = [p for p in validate_manifest(m) if p.severity == "warning"]
    assert len(warnings) == 1 and "positive without lesion boxes" in str(warnings[0])
    assert str(warnings[0]).startswith("warning: ")
    from boneaug.data.stats import manifest_stats

    assert manifest_stats(m)["total"]["positives_without_boxes"] == 1


def test_errors_are_all_listed_and_counted(tmp_path, tiny_images):
    rows = good_rows()
    rows[0]["bone"] = "banana"
    rows[3]["label"] = "yes"
    path = write_manifest(tmp_path, rows)
    m, problems = check_manifest(path)
    assert len([p for p in problems if p.severity == "error"]) == 2
    assert "(and 1 more;" in only_error(path)


def test_missing_columns_and_files(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        load_manifest(tmp_path / "none.csv")
    (tmp_path / "m.csv").write_text("image_id,path\na,b.png\n")
    with pytest.raises(ManifestError, match="missing required column.*bone, label"):
        load_manifest(tmp_path / "m.csv")


def test_hostile_manifests_are_one_short_line(tmp_path):
    with pytest.raises(ManifestError, match="is a folder; give the manifest CSV file"):
        load_manifest(tmp_path)
    twice = tmp_path / "twice.csv"
    twice.write_text("image_id,path,bone,label,label\na,a.png,femur,1,0\n")
    with pytest.raises(ManifestError, match="column 'label' appears more than once"):
        load_manifest(twice, check_images=False)
    huge = tmp_path / "huge.csv"  # a 2 MB cell and boxes nested past Python's limit
    huge.write_text("image_id,path,bone,label,boxes\n"
                    f"a,a.png,{'x' * 2_000_000},1,\nb,b.png,femur,1,{'[' * 100_000}\n")
    _, problems = check_manifest(huge)
    messages = [str(p) for p in problems]
    assert any("unknown bone 'xxx" in m for m in messages)
    assert any("nested too deep" in m for m in messages)
    assert all(len(m) < 800 and "\n" not in m for m in messages)


def test_save_round_trip_rebases_paths_and_keeps_extras(tmp_path, tiny_images):
    rows = good_rows()
    for row in rows:
        row["bone_mask_path"] = row["path"]  # any *_path column is a file column
    source = write_manifest(tmp_path, rows)
    before = source.read_bytes()
    m = load_manifest(source)
    out = save_manifest(m, tmp_path / "runs" / "a" / "manifest.csv")
    assert source.read_bytes() == before
    again = load_manifest(out)
    assert again.table.at[0, "path"] == "../../img/im0.png"
    assert again.table.at[0, "bone_mask_path"] == "../../img/im0.png"
    assert again.image_path(0).resolve() == (tmp_path / "img" / "im0.png").resolve()
    assert list(again.table.columns) == list(m.table.columns)
    assert again.table["boxes"].tolist() == m.table["boxes"].tolist()
    assert list(again.table["center"]) == ["1", "1", "2", "3"]


def test_save_refuses_broken_invariants_and_writes_nothing(tmp_path, tiny_images):
    table = new_table([
        {"image_id": "s", "path": "img/im0.png", "bone": "femur", "label": 1,
         "boxes": [[1, 1, 4, 4]], "split": "val", "origin": "synthetic",
         "provenance": '{"seed": 1}'},
    ])
    with pytest.raises(ManifestError, match="refusing to write"):
        save_manifest(Manifest(table, tmp_path), tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_boxes_parse_and_format_round_trip():
    boxes = [[1, 2, 3.5, 4], [0, 0, 10, 10]]
    assert parse_boxes(format_boxes(boxes)) == [[1.0, 2.0, 3.5, 4.0], [0.0, 0.0, 10.0, 10.0]]
    assert format_boxes(boxes) == "[[1,2,3.5,4],[0,0,10,10]]"
    assert parse_boxes("") == [] and parse_boxes("[]") == []
    with pytest.raises(ValueError):
        parse_boxes('{"x": 1}')
    with pytest.raises(ValueError):
        parse_boxes("[[1, 2, true, 4]]")


def test_validate_cli_lists_problems_and_fails(tmp_path, tiny_images):
    rows = good_rows()
    rows[1]["bone"] = "banana"
    rows[0]["boxes"] = ""
    path = write_manifest(tmp_path, rows)
    result = subprocess.run([sys.executable, "-m", "boneaug", "validate", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2  # bad input, as for every command (README)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "unknown bone" in lines[1] and lines[0].startswith("warning")
    assert "1 errors, 1 warnings" in result.stdout


def test_cli_bad_manifest_is_one_line_exit_2(tmp_path, tiny_images):
    rows = good_rows()
    rows[2]["label"] = "maybe"
    path = write_manifest(tmp_path, rows)
    result = subprocess.run([sys.executable, "-m", "boneaug", "stats", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "line 4" in result.stderr and "Traceback" not in result.stderr


def test_new_table_defaults():
    table = new_table([{"image_id": "a", "path": "a.png", "bone": "femur", "label": 0}])
    assert table.at[0, "patient_id"] == "a" and table.at[0, "origin"] == "real"
    assert table.at[0, "boxes"] == [] and table.at[0, "label"] == 0
    assert list(table.columns[:10]) == ["image_id", "path", "patient_id", "bone", "label",
                                        "boxes", "mask_path", "split", "origin", "provenance"]


def test_python_built_manifest_with_a_bad_label_is_refused(tmp_path, tiny_images):
    table = new_table([{"image_id": "a", "path": "img/im0.png", "bone": "femur", "label": 2}])
    problems = validate_manifest(Manifest(table, tmp_path))
    assert any(p.column == "label" and "must be 0 or 1" in p.message for p in problems)
    with pytest.raises(ManifestError, match="label"):
        save_manifest(Manifest(table, tmp_path), tmp_path / "out.csv")


def test_save_to_a_folder_is_one_line(tmp_path, tiny_images):
    m = load_manifest(write_manifest(tmp_path, good_rows()))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(ManifestError, match="is a folder"):
        save_manifest(m, tmp_path / "dir.csv")


def _cut(path: Path, keep: float = 0.6, end: int = 0) -> None:
    """Keep `keep` of the file, or all but its last `end` bytes."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - end] if end else data[:int(len(data) * keep)])


def _jpeg(path: Path) -> None:
    Image.fromarray(np.full((32, 48), 128, np.uint8)).save(path.with_suffix(".jpg"))
    path.with_suffix(".jpg").replace(path)


def _dicom(path: Path, frames: int = 1, side: int = 40) -> None:
    pixels = np.arange(frames * side * side, dtype=np.uint16).reshape(frames, side, side)
    make_dicom(path, pixels[0] if frames == 1 else pixels,
               **({"NumberOfFrames": frames} if frames > 1 else {}))


@pytest.mark.parametrize(
    ("damage", "column", "expected"),
    [
        # the last chunk or marker gone: a header that Pillow reads without complaint
        (lambda p: _cut(p, end=12), "path", "PNG is cut short"),
        (lambda p: (_jpeg(p), _cut(p, end=2)), "path", "JPEG is cut short"),
        # cut deeper, Pillow finds it while reading the header
        (lambda p: (_jpeg(p), _cut(p)), "path", "JPEG is cut short|Truncated"),
        (lambda p: (_dicom(p), _cut(p, 0.8)), "path", "the file is cut short"),
        (lambda p: _dicom(p, frames=3), "path", r"multi-frame DICOM \(3 frames\)"),
        (lambda p: write_gray_png(p.parent / "mask.png", height=20, width=20), "mask_path",
         "the mask is 20x20 px but its image is 48x32"),
        (lambda p: write_gray_png(p.parent / "mask.png", height=32, width=48), None, None),
    ],
)
def test_damaged_images_and_masks_name_row_and_column(tmp_path, tiny_images, damage, column,
                                                      expected):
    """Cut-short files, several frames, a 3x3 'radiograph', a mask of another size: found
    by `validate` (so before any stage), each on its row and column."""
    rows = good_rows()
    for row in rows:
        row["mask_path"] = ""
    rows[1]["mask_path"] = "img/mask.png"
    damage(tmp_path / "img" / "im1.png")
    if column is None:  # the control: a mask of the image's size is fine
        load_manifest(write_manifest(tmp_path, rows))
        return
    message = only_error(write_manifest(tmp_path, rows))
    assert re.search(expected, message), message
    assert "line 3" in message and f"column {column}" in message


def test_a_3x3_radiograph_is_a_warning_on_its_row(tmp_path, tiny_images):
    """Every stage skips a film this small; `validate` says so on its row (a data set with
    a few thumbnails stays importable)."""
    _dicom(tmp_path / "img" / "im1.png", side=3)
    manifest, problems = check_manifest(write_manifest(tmp_path, good_rows()))
    [warning] = [p for p in problems if p.line == 3]
    assert warning.severity == "warning" and warning.column == "path"
    assert "3x3 px is smaller than 32 px on a side; every stage will skip it" in str(warning)
