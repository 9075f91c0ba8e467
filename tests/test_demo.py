"""The demo runs every stage built so far, end to end, at a tiny size."""

from __future__ import annotations

import json

import pytest

from boneaug.data import load_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment import DemoConfig, run_demo


def test_demo_runs_every_stage_and_can_be_rerun(tmp_path):
    config = DemoConfig(normal=8, lesion=6, size=96, patch=32, n_blocks=1, filters=4,
                        iterations=3, ratio=1.0)
    lines: list[str] = []
    summary = run_demo(tmp_path / "demo", config, say=lines.append)
    text = "\n".join(lines)
    for i in range(1, 9):
        assert f"[{i}/8]" in text
    assert "SMALL CycleGAN" in text and "Still to come" in text
    assert summary["gan_iterations"] == 3 and summary["synthetic_femur"] >= 1
    augmented = load_manifest(tmp_path / "demo" / "synth" / "femur" / "augmented.csv")
    assert set(augmented.table.loc[augmented.table["origin"] == "synthetic", "split"]) == {
        "train"}
    run = json.loads((tmp_path / "demo" / "run.json").read_text())
    assert run["command"] == "demo" and run["completed"] is True
    run_demo(tmp_path / "demo", config, say=lambda _: None)  # an earlier demo is replaced


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("data")
    with pytest.raises(BoneaugError, match="not empty"):
        run_demo(tmp_path, DemoConfig(iterations=1), say=lambda _: None)
    assert (tmp_path / "mine.txt").read_text() == "data"
