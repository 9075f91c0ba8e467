"""The whole command line on a tiny phantom set: every stage, in order.

phantom -> import (csv) -> validate -> split -> stats -> patches -> gan train ->
synthesize (and transfer to another bone, and copy-paste) -> classify (baseline, gan) ->
experiment -> report, each through the `boneaug` CLI, checking what each stage hands the
next.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from boneaug.data import load_manifest
from boneaug.patches import load_domains


def boneaug(*args: str | Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "boneaug", *map(str, args)],
                            capture_output=True, text=True)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(*args: str | Path) -> str:
    result = boneaug(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_pipeline_on_tiny_phantom(tmp_path):
    phantom_dir = tmp_path / "phantom"
    ok("phantom", "--out", phantom_dir, "--bones", "femur,tibia", "--normal", 12, "--lesion", 6,
       "--size", 96, "--seed", 3)
    source = load_manifest(phantom_dir / "manifest.csv")
    assert len(source) == 36
    assert sorted(source.table["bone"].unique()) == ["femur", "tibia"]

    # import the phantom's table as a user CSV with renamed columns, as a user would
    user_csv = tmp_path / "user.csv"
    pd.DataFrame({
        "File": [str(source.image_path(i)) for i in source.table.index],
        "Bone": source.table["bone"].str.upper(),
        "Finding": np.where(source.table["label"] == 1, "lesion", "normal"),
        "Boxes": [str(b).replace(" ", "") if b else "" for b in source.table["boxes"]],
        "BoneMask": [str(source.resolve(p)) for p in source.table["bone_mask_path"]],
    }).to_csv(user_csv, index=False)
    work = tmp_path / "work"
    ok("import", "csv", user_csv, "--out", work / "manifest.csv", "-c", "path=File",
       "-c", "bone=Bone", "-c", "label=Finding", "-c", "boxes=Boxes", "--positive", "lesion")
    imported = load_manifest(work / "manifest.csv")
    assert len(imported) == 36 and int(imported.table["label"].sum()) == 12
    assert imported.table["boxes"].tolist() == source.table["boxes"].tolist()
    # the user's extra column is kept, so the exact bone masks travel with the rows
    assert "BoneMask" in imported.table.columns

    assert "0 errors" in ok("validate", work / "manifest.csv")
    split_out = ok("split", work / "manifest.csv", "--val", 0.2, "--test", 0.3, "--seed", 1)
    split_path = work / "manifest.split.csv"
    assert str(split_path) in split_out
    split = load_manifest(split_path)
    assert set(split.table["split"]) == {"train", "val", "test"}
    per_patient = split.table.groupby("patient_id")["split"].nunique()
    assert per_patient.max() == 1

    stats = ok("stats", split_path)
    assert "femur" in stats and "tibia" in stats and "prevalence" in stats

    ok("patches", "--manifest", split_path, "--bone", "femur", "--size", 32, "--out",
       work / "patches", "--per-lesion", 2, "--healthy-per-image", 2)
    healthy_store, lesion_store, info = load_domains(work / "patches" / "femur")
    healthy, lesion = healthy_store.patches, lesion_store.patches
    train_femur = split.table[(split.table["split"] == "train") & (split.table["bone"] == "femur")]
    assert lesion.shape[1:] == (32, 32) and healthy.shape[1:] == (32, 32)
    assert len(lesion) == 2 * int(train_femur["label"].sum())
    assert 0.0 <= healthy.min() and healthy.max() <= 1.0

    gan_out = ok("gan", "train", "--patches", work / "patches" / "femur", "--out",
                 work / "gan" / "femur", "--set", "n_blocks=1", "--set", "ngf=4", "--set",
                 "ndf=4", "--set", "iterations=4", "--set", "sample_every=2", "--set",
                 "checkpoint_every=2", "--set", "device=cpu")
    generator = work / "gan" / "femur" / "generator_healthy_to_lesion.pt"
    assert "finished at iteration 4" in gan_out and generator.is_file()
    losses = pd.read_csv(work / "gan" / "femur" / "losses.csv")
    assert len(losses) >= 1 and np.isfinite(losses.select_dtypes("number").to_numpy()).all()

    ok("synthesize", "--generator", generator, "--manifest", split_path, "--bone", "femur",
       "--ratio", 2, "--out", work / "synth", "--device", "cpu")
    augmented = load_manifest(work / "synth" / "augmented.csv")
    synthetic = augmented.table[augmented.table["origin"] == "synthetic"]
    assert len(synthetic) == 2 * int(train_femur["label"].sum())
    assert set(synthetic["split"]) == {"train"} and set(synthetic["label"]) == {1}
    assert len(augmented) == len(split) + len(synthetic)

    transfer = ok("synthesize", "--generator", generator, "--manifest", split_path, "--bone",
                  "tibia", "--count", 2, "--out", work / "synth-tibia", "--device", "cpu")
    assert "transfer: femur generator" in transfer

    # the inputs of every stage are untouched, and bad input is one line with exit 2
    assert load_manifest(phantom_dir / "manifest.csv").table.equals(source.table)
    bad = boneaug("patches", "--manifest", work / "manifest.csv", "--bone", "femur",
                  "--size", 32, "--out", work / "p2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "split" in bad.stderr and not (work / "p2").exists()
    bad = boneaug("synthesize", "--generator", work / "none.pt", "--manifest", split_path,
                  "--bone", "femur", "--count", 1, "--out", work / "s2")
    assert bad.returncode == 2 and "generator checkpoint not found" in bad.stderr
    assert bad.stderr.count("\n") == 1 and not (work / "s2").exists()

    # classify: a baseline and a gan classifier of the femur; predictions on real test rows
    small = ["--set", "size=32", "--set", "width=4", "--set", "epochs=2", "--set",
             "device=cpu"]
    out = ok("classify", "--manifest", split_path, "--bone", "femur", "--strategy",
             "baseline", "--out", work / "cls" / "baseline", *small)
    assert "test ROC AUC" in out
    ok("classify", "--manifest", split_path, "--bone", "femur", "--strategy", "gan",
       "--extra", work / "synth" / "synthetic.csv", "--ratio", 1, "--out",
       work / "cls" / "gan", *small)
    test_ids = set(split.table.loc[(split.table["split"] == "test")
                                   & (split.table["bone"] == "femur"), "image_id"])
    for name in ("baseline", "gan"):
        predictions = pd.read_csv(work / "cls" / name / "predictions.csv", dtype=str)
        assert set(predictions["image_id"]) == test_ids
    metrics = json.loads((work / "cls" / "gan" / "metrics.json").read_text())
    assert metrics["n_train_pos_extra"] == int(train_femur["label"].sum())

    # copy-paste synthesis, then the whole protocol from a config, and its report
    ok("synthesize", "--copy-paste", work / "patches" / "femur", "--manifest", split_path,
       "--bone", "femur", "--count", 2, "--out", work / "synth-cp", "--device", "cpu")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "seed": 0,
        "data": {"source": "manifest", "manifest": str(work / "manifest.csv"),
                 "bones": ["femur"], "prevalence": None},
        "patches": {"size": 24, "per_lesion": 2, "healthy_per_image": 2},
        "gan": {"n_blocks": 1, "ngf": 4, "ndf": 4, "iterations": 2, "device": "cpu"},
        "classifier": {"size": 32, "width": 4, "epochs": 2, "device": "cpu"},
        "protocol": {"strategies": ["baseline", "copypaste", "gan"], "ratios": [1],
                     "main_ratio": 1, "seeds": 1, "n_boot": 20},
    }))
    run = tmp_path / "run"
    out = ok("experiment", "--config", config, "--out", run)
    assert "gan-r1" in out and "copypaste-r1" in out and "report:" in out
    (run / "report.html").unlink()
    assert "report.html" in ok("report", run)
    assert "data:image/png;base64," in (run / "report.html").read_text()
    results = pd.read_csv(run / "results.csv")
    assert set(results["condition"]) == {"baseline", "copypaste-r1", "gan-r1"}
