"""Manifest statistics checked against a small hand-made manifest of tiny PNG images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.manifest import Manifest, new_table, save_manifest
from boneaug.data.stats import describe_manifest, format_stats, manifest_stats

PROVENANCE = json.dumps({"generator": "abc", "source": "f2.png", "seed": 0})

# (image_id, bone, (H, W), label, boxes, split, origin)
ROWS = [
    ("f1", "femur", (20, 30), 0, [], "train", "real"),
    ("f2", "femur", (24, 30), 1, [[0, 0, 6, 4]], "train", "real"),
    ("f3", "femur", (28, 40), 1, [[0, 0, 10, 7], [5, 5, 9, 9]], "test", "real"),
    ("f4", "femur", (20, 32), 1, [], "val", "real"),
    ("s1", "femur", (24, 30), 1, [[1, 1, 5, 5]], "train", "synthetic"),
    ("t1", "tibia", (16, 16), 0, [], "", "real"),
    ("t2", "tibia", (16, 24), 1, [[2, 2, 10, 6]], "", "real"),
]


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    rows = []
    for image_id, bone, (height, width), label, boxes, split, origin in ROWS:
        Image.fromarray(np.zeros((height, width), np.uint8)).save(tmp_path / f"{image_id}.png")
        rows.append({"image_id": image_id, "path": f"{image_id}.png", "bone": bone,
                     "label": label, "boxes": boxes, "split": split, "origin": origin,
                     "provenance": PROVENANCE if origin == "synthetic" else ""})
    return Manifest(new_table(rows), tmp_path)


def test_counts_by_bone_split_label_and_origin(manifest: Manifest) -> None:
    stats = manifest_stats(manifest)
    assert (stats["images"], stats["real"], stats["synthetic"], stats["patients"]) == (7, 6, 1, 6)
    assert stats["splits"] == ["train", "val", "test", "unsplit"]
    assert stats["counts"]["femur"] == {"train": {"neg": 1, "pos": 1}, "val": {"neg": 0, "pos": 1},
                                        "test": {"neg": 0, "pos": 1},
                                        "unsplit": {"neg": 0, "pos": 0}}
    assert stats["counts"]["tibia"]["unsplit"] == {"neg": 1, "pos": 1}
    assert stats["synthetic_counts"] == {"femur": {"train": {"neg": 0, "pos": 1},
                                                   "val": {"neg": 0, "pos": 0},
                                                   "test": {"neg": 0, "pos": 0},
                                                   "unsplit": {"neg": 0, "pos": 0}}}
    femur, tibia, total = stats["bones"]["femur"], stats["bones"]["tibia"], stats["total"]
    assert (femur["images"], femur["positives"], femur["prevalence"]) == (4, 3, 0.75)
    assert (tibia["images"], tibia["positives"], tibia["prevalence"]) == (2, 1, 0.5)
    assert (total["images"], total["positives"]) == (6, 4)
    assert femur["positives_without_boxes"] == 1 and tibia["positives_without_boxes"] == 0
    assert femur["boxes"] == 3 and femur["boxes_per_positive"] == {"mean": 1.5, "max": 2}
    # a box is a lesion (the importers merge a finding's shapes): f2 has 1, f3 has 2
    assert femur["lesions"] == 3
    assert femur["lesions_per_positive"] == {"mean": 1.5, "max": 2, "distribution": {
        "1": 1, "2": 1, "3": 0, "4+": 0}}
    assert total["lesions_per_positive"]["distribution"] == {"1": 2, "2": 1, "3": 0, "4+": 0}


def test_image_size_ranges_from_headers(manifest: Manifest) -> None:
    femur = manifest_stats(manifest)["bones"]["femur"]
    # Real femur images only: heights 20, 24, 28, 20 and widths 30, 30, 40, 32.
    assert femur["image_height"] == {"min": 20, "median": 22, "max": 28}
    assert femur["image_width"] == {"min": 30, "median": 31, "max": 40}
    tibia = manifest_stats(manifest)["bones"]["tibia"]
    assert tibia["image_width"] == {"min": 16, "median": 20, "max": 24}


def test_box_sizes_in_pixels_and_relative_to_the_image(manifest: Manifest) -> None:
    femur = manifest_stats(manifest)["bones"]["femur"]
    # Femur boxes (w x h on a W x H image): 6x4 on 30x24, 10x7 and 4x4 on 40x28.
    # numpy's linear percentiles of [4, 6, 10]: p10 = 4 + 0.2 * 2, p90 = 6 + 0.8 * 4.
    assert femur["box_width_px"] == pytest.approx({"p10": 4.4, "median": 6, "p90": 9.2})
    assert femur["box_height_px"] == pytest.approx({"p10": 4, "median": 4, "p90": 6.4})
    # Relative widths 0.2, 0.25, 0.1 -> sorted [0.1, 0.2, 0.25].
    assert femur["box_width_rel"] == pytest.approx({"p10": 0.12, "median": 0.2, "p90": 0.24})
    # Relative heights 4/24, 7/28, 4/28.
    assert femur["box_height_rel"]["median"] == pytest.approx(4 / 24)
    tibia = manifest_stats(manifest)["bones"]["tibia"]
    assert tibia["box_width_rel"] == pytest.approx({"p10": 8 / 24, "median": 8 / 24,
                                                    "p90": 8 / 24})


def test_missing_images_are_counted_not_fatal(manifest: Manifest) -> None:
    (manifest.root / "f1.png").unlink()
    femur = manifest_stats(manifest)["bones"]["femur"]
    assert femur["unreadable_images"] == 1
    assert femur["image_height"] == {"min": 20, "median": 24, "max": 28}


def test_stats_are_json_able_and_the_text_formats_them(manifest: Manifest) -> None:
    stats = manifest_stats(manifest)
    assert format_stats(json.loads(json.dumps(stats))) == describe_manifest(manifest)


def test_description_tables(manifest: Manifest) -> None:
    text = describe_manifest(manifest)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("bone ") and "prevalence" in line)
    assert header.split() == ["bone"] + ["neg", "pos"] * 5 + ["prevalence"]
    assert lines[lines.index(header) - 1].split() == ["train", "val", "test", "unsplit", "total"]
    femur = lines[lines.index(header) + 1].split()
    assert femur == ["femur", "1", "1", "0", "1", "0", "1", "0", "0", "1", "3", "75.0%"]
    total = lines[lines.index(header) + 3].split()
    assert total == ["total", "1", "1", "0", "1", "0", "1", "1", "1", "2", "4", "66.7%"]
    assert "Synthetic images" in text
    assert any(line.split()[:4] == ["femur", "4", "20", "/"] for line in lines)  # sizes
    assert "0.120 / 0.200 / 0.240" in text
    assert "Positives without boxes" in text
    title = lines.index("Lesions per positive image (real positives; one box per lesion)")
    assert lines[title + 1].split() == ["positives", "with", "n", "lesions"]
    assert lines[title + 2].split() == ["bone", "positives", "without", "boxes", "lesions",
                                        "lesions/positive", "mean", "/", "max", "1", "2", "3",
                                        "4+"]
    assert lines[title + 3].split() == ["femur", "3", "1", "3", "1.50", "/", "2", "1", "1",
                                        "0", "0"]
    assert lines[title + 5].split() == ["total", "4", "1", "4", "1.33", "/", "2", "2", "1",
                                        "0", "0"]


def test_lesions_per_positive_distribution_has_a_four_or_more_bin(tmp_path: Path) -> None:
    rows = []
    for image_id, n in (("a", 1), ("b", 4), ("c", 6), ("d", 3)):
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / f"{image_id}.png")
        boxes = [[2 * k, 2 * k, 2 * k + 3, 2 * k + 3] for k in range(n)]
        rows.append({"image_id": image_id, "path": f"{image_id}.png", "bone": "tibia",
                     "label": 1, "boxes": boxes})
    stats = manifest_stats(Manifest(new_table(rows), tmp_path))["bones"]["tibia"]
    assert stats["lesions"] == 14
    assert stats["lesions_per_positive"] == {"mean": 3.5, "max": 6, "distribution": {
        "1": 1, "2": 0, "3": 1, "4+": 2}}


def test_a_stats_dict_saved_before_lesions_were_counted_still_formats(
        manifest: Manifest) -> None:
    stats = json.loads(json.dumps(manifest_stats(manifest)))
    for bone in [*stats["bones"].values(), stats["total"]]:
        del bone["lesions"], bone["lesions_per_positive"]
    lines = format_stats(stats).splitlines()
    femur = next(line for line in lines if line.startswith("femur") and "1.50" in line)
    assert femur.split() == ["femur", "3", "1", "3", "1.50", "/", "2", "-", "-", "-", "-"]


def test_cli_stats(manifest: Manifest, tmp_path: Path) -> None:
    # Synthetic rows in train and unsplit rows keep the contract, so the file saves and loads.
    path = save_manifest(manifest, tmp_path / "manifest.csv")
    result = CliRunner().invoke(app, ["stats", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == describe_manifest(manifest) + "\n"
    assert "Lesions per positive image" in result.output


@pytest.mark.parametrize(("change", "expected"), [
    ({"boxes": [[-5.0, 1.0, 4.0, 6.0]]}, "is outside the"),
    ({"boxes": [[1.0, 1.0, 1e308, 6.0]]}, "is outside the"),
    ({"mask_path": "nowhere.png"}, "no such mask file"),
])
def test_cli_stats_checks_what_validate_checks(manifest: Manifest, tmp_path: Path,
                                               change: dict, expected: str) -> None:
    table = manifest.table.copy()
    positive = table.index[table["label"] == 1][0]
    for column, value in change.items():
        table.at[positive, column] = value
    path = save_manifest(Manifest(table, manifest.root), tmp_path / "bad.csv")
    result = CliRunner().invoke(app, ["stats", str(path)])
    assert result.exit_code != 0
    assert expected in str(result.exception)


def test_cli_stats_counts_an_unreadable_image(manifest: Manifest, tmp_path: Path) -> None:
    path = save_manifest(manifest, tmp_path / "manifest.csv")
    (tmp_path / manifest.table["path"].iloc[0]).unlink()
    result = CliRunner().invoke(app, ["stats", str(path)])
    assert result.exit_code == 0, result.output
