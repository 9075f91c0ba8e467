"""Patient-level, stratified splits: invariants, ratios, synthetic rows, groups, errors."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.manifest import (
    Manifest,
    load_manifest,
    new_table,
    save_manifest,
    validate_manifest,
)
from boneaug.data.splits import SplitResult, split_manifest
from boneaug.errors import BoneaugError

BONES = ("femur", "tibia", "humerus")


def make_manifest(rows: list[dict], source: str | None = None) -> Manifest:
    return Manifest(new_table(rows), Path("/nonexistent"), Path(source) if source else None)


def hospital(seed: int = 0, patients_per_bone: int = 60, positive_patients: int = 10,
             centers: int = 0, cross_bone: int = 5) -> list[dict]:
    """A few hundred rows: patients with 1-3 images, some positives, a few two-bone patients.

    With `centers`, every patient gets a `center` value (patient number modulo centers).
    """
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for bone in BONES:
        for p in range(patients_per_bone):
            positive = p < positive_patients
            for _ in range(int(rng.integers(1, 4))):
                row = {"image_id": f"img{len(rows)}", "path": f"img{len(rows)}.png",
                       "patient_id": f"{bone}-{p}", "bone": bone, "label": int(positive),
                       "boxes": [[1, 1, 9, 9]] if positive else []}
                if centers:
                    row["center"] = str(p % centers)
                rows.append(row)
    for p in range(cross_bone):  # patients imaged on two bones
        for bone in ("femur", "tibia"):
            row = {"image_id": f"img{len(rows)}", "path": f"img{len(rows)}.png",
                   "patient_id": f"both-{p}", "bone": bone, "label": 0, "boxes": []}
            if centers:
                row["center"] = str(p % centers)
            rows.append(row)
    return rows


def synthetic_row(image_id: str, patient_id: str, bone: str = "femur", **extra) -> dict:
    provenance = json.dumps({"generator": "abc", "source": "x", "seed": 0})
    return {"image_id": image_id, "path": f"{image_id}.png", "patient_id": patient_id,
            "bone": bone, "label": 1, "boxes": [[1, 1, 9, 9]], "origin": "synthetic",
            "provenance": provenance, **extra}


def split_of_patients(table: pd.DataFrame) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for patient, split in zip(table["patient_id"], table["split"], strict=True):
        found[patient].add(split)
    return found


def errors_of(manifest: Manifest) -> list[str]:
    return [str(p) for p in validate_manifest(manifest, check_images=False)
            if p.severity == "error"]


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_patient_never_spans_splits_and_every_row_is_split(seed: int) -> None:
    manifest = make_manifest(hospital(seed))
    assert manifest.table.groupby("patient_id").size().max() > 1  # multi-image patients
    result = split_manifest(manifest, seed=seed)
    table = result.manifest.table
    assert set(table["split"]) == {"train", "val", "test"}
    assert all(len(s) == 1 for s in split_of_patients(table).values())
    assert errors_of(result.manifest) == []
    both = table[table["patient_id"] == "both-0"]
    assert set(both["bone"]) == {"femur", "tibia"} and both["split"].nunique() == 1


def test_input_manifest_is_untouched() -> None:
    manifest = make_manifest(hospital())
    before = manifest.table.copy(deep=True)
    result = split_manifest(manifest, seed=0)
    assert isinstance(result, SplitResult)
    assert result.manifest is not manifest
    pd.testing.assert_frame_equal(manifest.table, before)
    assert list(result.manifest.table["image_id"]) == list(before["image_id"])


def test_saved_split_passes_the_manifest_contract(tmp_path: Path) -> None:
    result = split_manifest(make_manifest(hospital()), seed=0)
    path = save_manifest(result.manifest, tmp_path / "split.csv")  # refuses broken invariants
    reloaded = load_manifest(path, check_images=False)
    assert list(reloaded.table["split"]) == list(result.manifest.table["split"])


# --------------------------------------------------------------------------- stratification


def test_every_bone_label_stratum_gets_roughly_its_ratio() -> None:
    rows = hospital(seed=5, patients_per_bone=80, positive_patients=14, cross_bone=0)
    result = split_manifest(make_manifest(rows), val=0.2, test=0.15, seed=5)
    table = result.manifest.table
    assert 400 <= len(table) <= 600
    for (_bone, _label), stratum in table.groupby(["bone", "label"]):
        n = len(stratum)
        for split, ratio in (("val", 0.2), ("test", 0.15), ("train", 0.65)):
            got = int((stratum["split"] == split).sum())
            # Units hold at most 3 images, so the greedy allocation lands within a few
            # images of the largest-remainder target.
            assert abs(got - ratio * n) <= 4, (_bone, _label, split, got, n)
    assert abs((table["split"] == "val").mean() - 0.2) < 0.02
    assert abs((table["split"] == "test").mean() - 0.15) < 0.02


@pytest.mark.parametrize("seed", range(5))
def test_three_positive_patients_give_val_and_test_one_each(seed: int) -> None:
    rows = hospital(seed, patients_per_bone=40, positive_patients=3, cross_bone=0)
    table = split_manifest(make_manifest(rows), seed=seed).manifest.table
    for bone in BONES:
        positives = table[(table["bone"] == bone) & (table["label"] == 1)]
        assert positives["patient_id"].nunique() == 3
        assert set(positives["split"]) == {"train", "val", "test"}


def test_warns_when_a_bone_has_no_positive_in_test() -> None:
    rows = hospital(seed=0, patients_per_bone=40, positive_patients=8, cross_bone=0)
    rows = [r for r in rows if not (r["bone"] == "humerus" and r["label"] == 1
                                    and r["patient_id"] != "humerus-0")]
    result = split_manifest(make_manifest(rows), seed=0)
    humerus = [w for w in result.warnings if w.startswith("humerus")]
    assert len(humerus) == 1 and "test" in humerus[0]
    assert not any(w.startswith(("femur", "tibia")) for w in result.warnings)


def test_warns_for_a_bone_without_any_positive() -> None:
    rows = [r for r in hospital(cross_bone=0) if not (r["bone"] == "tibia" and r["label"])]
    warnings = split_manifest(make_manifest(rows), seed=0).warnings
    assert any(w.startswith("tibia: no positive image at all") for w in warnings)


def test_warns_when_an_existing_split_is_overwritten() -> None:
    rows = [{**r, "split": "train"} for r in hospital()]
    result = split_manifest(make_manifest(rows), seed=0)
    assert any("overwritten" in w for w in result.warnings)
    assert set(result.manifest.table["split"]) == {"train", "val", "test"}
    assert not any("overwritten" in w for w in split_manifest(make_manifest(hospital())).warnings)


def test_zero_val_ratio_gives_no_val() -> None:
    table = split_manifest(make_manifest(hospital()), val=0.0, test=0.2).manifest.table
    assert set(table["split"]) == {"train", "test"}


# --------------------------------------------------------------------------- synthetic rows


def test_synthetic_rows_and_their_patients_stay_in_train() -> None:
    rows = hospital(seed=2)
    carriers = [f"femur-{p}" for p in range(20, 45)] + [f"tibia-{p}" for p in range(20, 45)]
    for i, patient in enumerate(carriers):
        rows.append(synthetic_row(f"syn{i}", patient, bone=patient.split("-")[0]))
    rows.append(synthetic_row("syn-alone", "syn-alone"))
    manifest = make_manifest(rows)
    for seed in range(3):
        table = split_manifest(manifest, seed=seed).manifest.table
        assert set(table.loc[table["origin"] == "synthetic", "split"]) == {"train"}
        assert set(table.loc[table["patient_id"].isin(carriers), "split"]) == {"train"}
        assert {"val", "test"} <= set(table["split"])
        assert errors_of(split_manifest(manifest, seed=seed).manifest) == []


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_split_other_seed_other_split() -> None:
    manifest = make_manifest(hospital())
    first = list(split_manifest(manifest, seed=7).manifest.table["split"])
    again = list(split_manifest(manifest, seed=7).manifest.table["split"])
    other = list(split_manifest(manifest, seed=8).manifest.table["split"])
    assert first == again
    assert first != other


# --------------------------------------------------------------------------- groups


def test_group_by_keeps_each_group_in_one_split() -> None:
    rows = hospital(seed=3, centers=12)
    # A patient seen at centres 0 and 1 joins them into one unit.
    rows.append({"image_id": "bridge-a", "path": "a.png", "patient_id": "bridge", "bone": "femur",
                 "label": 0, "center": "0"})
    rows.append({"image_id": "bridge-b", "path": "b.png", "patient_id": "bridge", "bone": "femur",
                 "label": 0, "center": "1"})
    result = split_manifest(make_manifest(rows), seed=3, group_by="center")
    table = result.manifest.table
    by_center = table.groupby("center")["split"].nunique()
    assert (by_center == 1).all()
    assert table.loc[table["center"] == "0", "split"].iat[0] == \
        table.loc[table["center"] == "1", "split"].iat[0]
    assert set(table["split"]) == {"train", "val", "test"}
    assert errors_of(result.manifest) == []


def test_group_by_with_few_groups_warns_that_ratios_are_not_honoured() -> None:
    result = split_manifest(make_manifest(hospital(centers=3)), seed=0, group_by="center")
    assert set(result.manifest.table["split"]) == {"train", "val", "test"}
    assert any(w.startswith("val holds") and "asked 15.0%" in w for w in result.warnings)


def test_holdout_groups_form_the_test_split() -> None:
    rows = hospital(seed=4, centers=4)
    rows.append({"image_id": "x-3", "path": "x3.png", "patient_id": "wanderer", "bone": "tibia",
                 "label": 0, "center": "3"})
    rows.append({"image_id": "x-1", "path": "x1.png", "patient_id": "wanderer", "bone": "tibia",
                 "label": 0, "center": "1"})
    result = split_manifest(make_manifest(rows), val=0.2, seed=4, group_by="center",
                            holdout=("3",))
    table = result.manifest.table
    test = table[table["split"] == "test"]
    assert set(test["center"]) == {"3", "1"}  # centre 1 only through the wanderer
    assert set(test.loc[test["center"] == "1", "patient_id"]) == {"wanderer"}
    assert set(table.loc[table["center"] == "3", "split"]) == {"test"}
    rest = table[table["split"] != "test"]
    assert abs((rest["split"] == "val").mean() - 0.2) < 0.03  # val drawn from the rest
    assert rest["center"].nunique() == 3 and (rest.groupby("center")["split"].nunique() == 2).all()
    assert "patient(s) wanderer have images in holdout center 3 and in center 1; all of them " \
        "go to test" in result.warnings
    assert errors_of(result.manifest) == []


def test_holdout_several_values_and_synthetic_rows_in_a_holdout_group() -> None:
    rows = hospital(seed=1, centers=5)
    rows.append(synthetic_row("syn0", "femur-4", center="4"))  # femur-4 is at centre 4
    result = split_manifest(make_manifest(rows), seed=1, group_by="center", holdout=("3", "4"))
    table = result.manifest.table
    in_holdout = table["center"].isin(["3", "4"]) & (table["patient_id"] != "femur-4")
    assert set(table.loc[in_holdout, "split"]) == {"test"}
    assert set(table.loc[table["patient_id"] == "femur-4", "split"]) == {"train"}
    assert any("synthetic images; they stay in train" in w for w in result.warnings)
    assert errors_of(result.manifest) == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"group_by": "centre"}, "no column 'centre' to group by; the manifest has image_id, path"),
    ({"holdout": ("3",)}, "holdout 3 needs group_by"),
    ({"group_by": "center", "holdout": ("9",)}, "holdout value(s) 9 not found in column "
     "'center' (it has 0, 1, 2)"),
    ({"val": 0.5, "test": 0.5}, "val (0.5) + test (0.5) = 1 leaves no training data"),
    ({"val": 0.7, "test": 0.6}, "the sum must be below 1"),
    ({"val": -0.1}, "the val ratio is -0.1; ratios must be >= 0"),
    ({"test": -0.2}, "the test ratio is -0.2; ratios must be >= 0"),
    ({"val": 1.0, "group_by": "center", "holdout": ("1",)}, "must be below 1"),
])
def test_bad_input_raises_one_line(kwargs: dict, expected: str) -> None:
    manifest = make_manifest(hospital(centers=3), source="/data/hospital.csv")
    with pytest.raises(BoneaugError) as info:
        split_manifest(manifest, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("/data/hospital.csv: ")
    assert expected in message


# --------------------------------------------------------------------------- command line


def test_cli_split_with_group_by_and_holdout(tmp_path: Path) -> None:
    source = tmp_path / "manifest.csv"
    save_manifest(make_manifest(hospital(centers=4)), source)
    runner = CliRunner()
    result = runner.invoke(app, ["split", str(source), "--group-by", "center", "--holdout", "3"])
    assert result.exit_code == 0, result.output
    split = load_manifest(tmp_path / "manifest.split.csv", check_images=False).table
    assert set(split.loc[split["split"] == "test", "center"]) == {"3"}
    assert load_manifest(source, check_images=False).table["split"].eq("").all()


def test_warns_when_holdout_leaves_no_real_image_in_train() -> None:
    rows = [{"image_id": f"i{k}", "path": f"i{k}.png", "bone": "femur", "label": k % 2,
             "center": "1"} for k in range(6)]
    result = split_manifest(make_manifest(rows), group_by="center", holdout=("1",))
    assert set(result.manifest.table["split"]) == {"test"}
    assert any("no real image is left in train" in w for w in result.warnings)


def test_cli_split_never_writes_over_an_image_of_the_manifest(tmp_path: Path) -> None:
    rows = [{"image_id": f"i{k}", "path": f"images/i{k}.png", "bone": "femur",
             "label": k % 2} for k in range(8)]
    source = tmp_path / "manifest.csv"
    save_manifest(Manifest(new_table(rows), tmp_path), source)
    image = tmp_path / "images" / "i0.png"
    image.parent.mkdir()
    image.write_bytes(b"an image")
    result = CliRunner().invoke(app, ["split", str(source), "--out", str(image)])
    assert result.exit_code != 0
    assert isinstance(result.exception, BoneaugError)
    assert "is the input" in str(result.exception)
    assert image.read_bytes() == b"an image"
