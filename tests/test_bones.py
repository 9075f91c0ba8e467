"""Which bone a film shows (`boneaug bones`, `boneaug.classify.bones`) and the rule every
per-bone stage applies to the result (`boneaug.data.films`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from boneaug.classify.bones import BonesConfig, assign_bones, known_bones, write_bones_sheet
from boneaug.cli import app
from boneaug.data import Manifest, load_manifest, new_table, save_manifest
from boneaug.data.films import fits_label, normals_of, of_bone, positives_of
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.errors import BoneaugError

REGION = {"femur": "lower_limb", "tibia": "lower_limb", "humerus": "upper_limb"}
# Small and fast; accuracy on realistic sets is measured by benchmarks/bone_placement.py.
FAST = BonesConfig(size=48, width=8, steps=400, min_films=3, device="cpu")
QUICK = BonesConfig(size=32, width=4, steps=30, min_films=3, device="cpu")  # rules, not skill


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Phantom films of three bones (no masks needed: the bone is in the pixels)."""
    out = tmp_path_factory.mktemp("bones") / "phantom"
    return make_phantom(out, PhantomConfig(normal=14, lesion=8, size=64, seed=2))


def region_labelled(path: Path, share: float = 0.8) -> tuple[Manifest, dict[str, str]]:
    """The phantom manifest with `share` of its normal films relabelled by limb region, as
    BTXRD labels them; and every film's true bone."""
    manifest = load_manifest(path)
    table = manifest.table
    truth = dict(zip(table["image_id"], table["bone"], strict=True))
    rng = np.random.default_rng(0)
    hide = (table["label"] == 0) & (rng.random(len(table)) < share)
    table.loc[hide, "bone"] = table.loc[hide, "bone"].map(REGION)
    return manifest, truth


def test_assignment_learns_the_bone_of_region_labelled_films(phantom: Path, one_thread) -> None:
    manifest, truth = region_labelled(phantom)
    report = assign_bones(manifest, FAST)
    table = report.manifest.table
    assert report.classes == ["femur", "humerus", "tibia"]
    model = table[table["bone_source"] == "model"]
    assert len(model) >= 25
    top = [a.split(";")[0] for a in model["assigned_bones"]]
    accuracy = np.mean([t == truth[i] for t, i in zip(top, model["image_id"], strict=True)])
    assert accuracy >= 0.85  # chance within a limb region is about 0.5
    # region labels bound the answer: a lower-limb film is never given a humerus
    for bone, assigned in zip(model["bone"], model["assigned_bones"], strict=True):
        assert all(fits_label(b, bone) for b in assigned.split(";") if b)
    # every real film carries its scores; a film that names its bone keeps it
    labelled = table[table["bone_source"] == "label"]
    assert (labelled["assigned_bones"] == labelled["bone"]).all()
    scores = json.loads(model["bone_scores"].iloc[0])
    assert set(scores) == {"femur", "humerus", "tibia"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert report.holdout_films > 0 and report.holdout_accuracy >= 0.7
    assert sum(c["model"] for c in report.counts.values()) >= len(model) - report.unassigned
    # the input is untouched
    assert "assigned_bones" not in manifest.table.columns


def test_same_seed_same_assignment(phantom: Path, one_thread) -> None:
    manifest, _ = region_labelled(phantom)
    first = assign_bones(manifest, QUICK).manifest.table
    again = assign_bones(manifest, QUICK).manifest.table
    pd.testing.assert_series_equal(first["bone_scores"], again["bone_scores"])


def test_a_users_assignment_wins(phantom: Path, one_thread) -> None:
    manifest, _ = region_labelled(phantom)
    table = manifest.table
    region_rows = table.index[table["bone"] == "lower_limb"]
    table["assigned_bones"] = ""
    table["bone_source"] = ""
    table.loc[region_rows[0], "assigned_bones"] = "tibia"   # the user's own answer
    table.loc[region_rows[1], "assigned_bones"] = "femur"
    table.loc[region_rows[1], "bone_source"] = "model"      # an earlier model answer
    out = assign_bones(manifest, QUICK).manifest.table
    assert out.at[region_rows[0], "assigned_bones"] == "tibia"
    assert out.at[region_rows[0], "bone_source"] == "user"
    assert out.at[region_rows[1], "bone_source"] == "model"  # re-decided by the model


def test_too_few_known_bones_is_one_line(phantom: Path) -> None:
    manifest, _ = region_labelled(phantom)
    table = manifest.table
    manifest.table = table[table["bone"].isin(["femur", "lower_limb"])].reset_index(drop=True)
    with pytest.raises(BoneaugError, match="at least two bones") as info:
        assign_bones(manifest, QUICK)
    assert "\n" not in str(info.value)


def test_unreadable_films_are_skipped_not_fatal(phantom: Path, tmp_path: Path,
                                                one_thread) -> None:
    manifest, _ = region_labelled(phantom)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    tiny = tmp_path / "tiny.png"
    from PIL import Image
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tiny)
    table = manifest.table
    rows = table[table["bone"] == "lower_limb"].index[:2]
    table.loc[rows[0], "path"] = str(broken)
    table.loc[rows[1], "path"] = str(tiny)
    report = assign_bones(manifest, QUICK)
    assert len(report.skipped) == 2
    reasons = " ".join(r["reason"] for r in report.skipped.rows)
    assert "smaller than 32 px" in reasons
    out = report.manifest.table
    assert (out.loc[rows, "assigned_bones"] == "").all()
    assert (out.loc[rows, "bone_source"] == "none").all()
    sheet = write_bones_sheet(report.manifest, tmp_path / "sheet.png")
    from PIL import Image as PILImage
    assert PILImage.open(sheet).size[0] > 300


def test_known_bones_reads_sites() -> None:
    assert known_bones({"bone": "tibia", "sites": "tibia;fibula"}) == ["tibia", "fibula"]
    assert known_bones({"bone": "lower_limb", "sites": ""}) == []
    assert known_bones({"bone": "unknown"}) == []


def test_films_of_a_bone() -> None:
    table = new_table([
        {"image_id": "a", "path": "a.png", "bone": "femur", "label": 1,
         "boxes": [[1, 1, 4, 4]]},
        {"image_id": "b", "path": "b.png", "bone": "femur", "label": 0},
        {"image_id": "c", "path": "c.png", "bone": "lower_limb", "label": 0,
         "assigned_bones": "femur;tibia"},
        {"image_id": "d", "path": "d.png", "bone": "lower_limb", "label": 0,
         "assigned_bones": ""},
        {"image_id": "e", "path": "e.png", "bone": "tibia", "label": 0,
         "assigned_bones": "femur"},          # the label wins over an assignment
        {"image_id": "f", "path": "f.png", "bone": "lower_limb", "label": 1,
         "assigned_bones": "femur"},          # a lesion of unknown bone is no femur positive
    ])
    ids = table["image_id"]
    assert list(ids[of_bone(table, "femur")]) == ["a", "b", "c", "f"]
    assert list(ids[normals_of(table, "femur")]) == ["b", "c"]
    assert list(ids[positives_of(table, "femur")]) == ["a"]
    assert list(ids[normals_of(table, "tibia")]) == ["c", "e"]
    # the older rule, on request only: every normal of the limb
    assert list(ids[normals_of(table, "femur", ("lower_limb",))]) == ["b", "c", "d"]


def test_cli_bones(phantom: Path, tmp_path: Path, one_thread) -> None:
    manifest, truth = region_labelled(phantom)
    source = tmp_path / "m.csv"
    save_manifest(manifest, source)
    before = source.read_bytes()
    out = tmp_path / "assigned.csv"
    result = CliRunner().invoke(app, ["bones", str(source), "--out", str(out), "--size", "32",
                                      "--steps", "30", "--seed", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "held-back" in result.output or "held-out" in result.output
    assert source.read_bytes() == before
    assigned = load_manifest(out).table
    assert {"assigned_bones", "bone_scores", "bone_source"} <= set(assigned.columns)
    assert (tmp_path / "assigned.png").is_file() and (tmp_path / "assigned.json").is_file()
    # boneaug stats counts the films of each bone by where their bone came from
    stats = CliRunner().invoke(app, ["stats", str(out)])
    assert stats.exit_code == 0 and "Films of each bone" in stats.output
    model_rows = assigned[assigned["bone_source"] == "model"]
    femur_by_model = sum("femur" in a.split(";") for a in model_rows["assigned_bones"])
    section = stats.output.split("Films of each bone")[1].split("\n\n")[0]
    femur_line = next(line for line in section.splitlines() if line.startswith("femur"))
    assert femur_line.split()[3] == str(femur_by_model)
    same = CliRunner().invoke(app, ["bones", str(source), "--out", str(source)])
    assert same.exit_code != 0
    assert "input manifest" in (same.output + str(same.exception))
