"""The demo config (configs/phantom-demo.yaml) at a tiny size, end to end: every stage of
the protocol, the results table, the report, resuming, and the invariants of the run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from boneaug.data import load_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment import conditions, demo_config_path, load_experiment_config, run_demo

TINY = {
    "data.normal": 16, "data.lesion": 20, "data.size": 96, "data.prevalence": 0.1,
    "patches.size": 24, "patches.per_lesion": 2, "patches.healthy_per_image": 2,
    "gan.n_blocks": 1, "gan.ngf": 4, "gan.ndf": 4, "gan.iterations": 4,
    "gan.sample_every": 2, "gan.checkpoint_every": 2, "gan.device": "cpu",
    "classifier.size": 32, "classifier.width": 4, "classifier.epochs": 2,
    "classifier.device": "cpu", "protocol.seeds": 1, "protocol.n_boot": 50,
}


def test_demo_config_runs_every_stage_then_resumes(tmp_path):
    run = tmp_path / "demo"
    lines: list[str] = []
    result = run_demo(run, say=lines.append, overrides=TINY)
    text = "\n".join(lines)
    assert "DEMO SIZE" in text
    # the last lines say in plain words what the run found, and that it is a demo
    assert "What this demo found" in text and "This is a DEMO, not the benchmark" in text
    assert any(line.startswith("- femur (region level): ") for line in text.splitlines())

    config = load_experiment_config(demo_config_path(), TINY)
    expected = {(c.bone, c.name) for c in conditions(config) if c.strategy != "gan-gated"}
    assert {(b, c) for b, c in zip(result.summary["bone"], result.summary["condition"],
                                   strict=True)} == expected
    # every strategy of the issue is in the demo, and the table says so; the demo runs the
    # region level, where gan-gated (scored by an image-level classifier) does not exist
    assert config.protocol.levels == ["region"]
    strategies = set(result.summary["strategy"])
    assert strategies == {"baseline", "weighted", "oversample", "classic", "copypaste", "gan",
                          "gan-transfer", "oracle", "tstr"}
    for name in ("baseline", "gan-r3", "gan-transfer-r3-from-tibia", "oracle-r3", "tstr-r3"):
        assert name in result.table

    # rarity: train positives subsampled; val/test keep every image, and are all real
    data = load_manifest(run / "data" / "manifest.csv")
    table = data.table
    assert set(table["origin"]) == {"real"}
    pool = load_manifest(run / "data" / "oracle-pool.csv").table
    assert set(pool["split"]) == {"train"} and set(pool["label"]) == {1}
    assert not set(pool["image_id"]) & set(table["image_id"])
    # no synthetic image in any prediction: every predicted region ("<image id>#<region>")
    # lies on a real test image
    predictions = pd.read_csv(run / "evaluation" / "predictions.csv", dtype={"image_id": str})
    test_ids = set(table.loc[table["split"] == "test", "image_id"])
    assert predictions["image_id"].str.contains("#").all()
    assert set(predictions["image_id"].str.split("#").str[0]) <= test_ids
    assert not predictions["image_id"].str.startswith(("syn-", "cp-")).any()
    for folder in (run / "synth").glob("*/*"):
        synthetic = load_manifest(folder / "synthetic.csv").table
        assert set(synthetic["split"]) == {"train"} and set(synthetic["origin"]) == {"synthetic"}

    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "https://" not in html
    assert "<th>test regions</th>" in html  # the region level's test items are regions
    assert (run / "results.csv").is_file()
    gate = json.loads((run / "evaluation" / "gate.json").read_text())
    assert gate["bones"] == []  # no image level, no quality gate

    # a second run finds every stage done: nothing is retrained, same results
    model_file = run / "cls-region" / "femur" / "baseline" / "seed0" / "model.pt"
    stamp = model_file.stat().st_mtime_ns
    again: list[str] = []
    result2 = run_demo(run, say=again.append, overrides=TINY)
    assert any("] classifier 1/" in line for line in lines)
    assert not any("] classifier " in line or "] CycleGAN" in line for line in again)
    assert model_file.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(result.summary, result2.summary)

    # extending the run: a second seed trains only the new classifiers, nothing else
    more: list[str] = []
    extended = run_demo(run, say=more.append, overrides={**TINY, "protocol.seeds": 2})
    trained = [line for line in more if "] classifier " in line]
    assert len(trained) == len(expected) and all(" seed 1:" in line for line in trained)
    assert not any("] CycleGAN" in line or "] patches" in line or "] synth" in line
                   or "redoing" in line for line in more)
    assert model_file.stat().st_mtime_ns == stamp
    assert set(pd.read_csv(run / "evaluation" / "runs.csv")["seed"]) == {0, 1}
    assert len(extended.summary) == len(result.summary)


def test_experiment_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("data")
    with pytest.raises(BoneaugError, match="not empty"):
        run_demo(tmp_path, say=lambda _: None, overrides=TINY)
    assert (tmp_path / "mine.txt").read_text() == "data"
