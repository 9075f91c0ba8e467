"""Evidence about lesions on a confounded phantom: the shortcut probe is high, matching
brings it down, the region level's probe is near 0.5, and all of it reaches the results
and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from boneaug.data import load_manifest
from boneaug.data.films import normals_of, positives_of
from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment

# Confounded films: 70 % of lesion films come from centre 1, young, frontal; 70 % of
# normals from centres 2-3, adults, lateral. Every normal names its bone (no assignment).
CONFOUNDED = {
    "data.bones": ["humerus"], "data.normal": 600, "data.lesion": 200, "data.size": 96,
    "data.prevalence": 0.2,
    "data.phantom": {"films": "mixed", "labelled_normals": 1.0, "confound": 0.7},
    "matching.columns": ["auto"], "matching.ratio": 1, "matching.age_band": 10,
    "regions.size": 32, "regions.healthy_per_film": 1,
    "classifier.size": 32, "classifier.width": 4, "classifier.epochs": 1,
    "classifier.steps_per_epoch": 2, "classifier.device": "cpu", "classifier.crop": "image",
    "protocol.seeds": 1, "protocol.n_boot": 50, "protocol.levels": ["image", "region"],
    "protocol.strategies": ["baseline", "oversample"], "protocol.ratios": [1],
    "protocol.main_ratio": 1, "protocol.sweep": [],
}


def test_probe_matching_and_region_level(tmp_path: Path, one_thread) -> None:
    config = load_experiment_config(demo_config_path(), CONFOUNDED)
    lines: list[str] = []
    result = run_experiment(config, tmp_path / "run", say=lines.append, progress=False)
    run = tmp_path / "run"
    probes = {(p["level"], p["when"]): p for p in json.loads(
        (run / "evaluation" / "probe.json").read_text())["results"]}
    before = probes[("image", "before matching")]
    after = probes[("image", "after matching")]
    region = probes[("region", "")]
    # the confounded films give themselves away without a lesion; matching takes that away
    assert before["auc"] > 0.75 and before["metadata_auc"] > 0.75
    assert after["auc"] < before["auc"] - 0.2 and after["auc"] <= 0.65
    assert after["n_pos"] < before["n_pos"]
    # regions of the same films: style cannot tell a lesion region from a healthy one
    assert 0.3 <= region["auc"] <= 0.7
    # matching is recorded per film and honoured: every test negative is a matched one
    table = load_manifest(run / "data" / "manifest.csv").table
    assert (table["matched_out"] == "humerus").any()
    test = table[table["split"] == "test"]
    n_pos = int(positives_of(test, "humerus").sum())
    n_neg = int(normals_of(test, "humerus").sum())
    assert n_neg == n_pos  # ratio 1 in every stratum
    predictions = pd.read_csv(run / "evaluation" / "predictions.csv")
    assert len(predictions[predictions["condition"] == "baseline"]) == n_pos + n_neg
    # the region level: its own results beside the image level's
    regions = pd.read_csv(run / "results-region.csv")
    assert set(regions["condition"]) == {"baseline", "oversample-r1"}
    region_predictions = pd.read_csv(run / "evaluation" / "predictions-region.csv")
    assert region_predictions["image_id"].str.contains("#").all()
    assert region_predictions["label"].nunique() == 2
    # the headline and the probe reach the printed table and the report
    # ... and to headline.csv: one row per (level, bone), probe and verdict included
    top_csv = pd.read_csv(run / "headline.csv")
    assert list(zip(top_csv["level"], top_csv["bone"], strict=True)) == [
        ("image", "humerus"), ("region", "humerus")]
    assert top_csv["probe_auc"].tolist() == pytest.approx([after["auc"], region["auc"]])
    assert top_csv["verdict"].str.startswith("humerus (").all()
    image_part, region_part = result.table.split("region level:")
    assert "test images," in image_part and "test regions," in region_part
    assert "test images," not in region_part.split("\nheadline")[0]
    top = result.table.split("\nheadline")[1]
    assert "\nimage  humerus  probe" in top and "\nregion humerus  probe" in top
    # after matching the image level is about lesions; the region probe of these 19
    # lesion regions (0.65 [0.52, 0.80]) is within the bound above, and what it still sees
    # is the phantom lesion's fading edge (docs/architecture.md), so no verdict is asserted
    assert "humerus (image level): NOT about lesions" not in top
    assert "humerus (image level): " in top
    report = (run / "report.html").read_text()
    for text in ("Headline", "Shortcut probes", "before matching", "Matched negatives",
                 "Region level", "results-region.csv"):
        assert text in report
    assert any("shortcut probe humerus" in line for line in lines)
