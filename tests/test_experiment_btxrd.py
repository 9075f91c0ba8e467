"""The real-data experiment path end to end on a tiny fake BTXRD folder.

`import_btxrd` -> `load_experiment_config("configs/btxrd.yaml", tiny CPU overrides)` ->
`run_experiment`. Checked: the per-bone negatives are the normals of the bone's limb region
(never another region's), val and test keep every imported image, only the training
positives are subsampled (by the documented prevalence rule), no synthetic image is ever
evaluated on, and the oracle is refused for a manifest source.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from boneaug.classify import select
from boneaug.data import load_manifest
from boneaug.data.importers import import_btxrd
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment import load_experiment_config, run_experiment
from test_import_btxrd import annotation, csv_row, rect

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "btxrd.yaml"
SIDE = 112                       # px; the fake radiographs are SIDE x SIDE grey JPEGs
BAR = (36, 76)                   # the columns of the bright vertical "bone"
VAL, TEST, PREVALENCE = 0.25, 0.25, 0.2
# (count, sites, region) of the fake set; every image its own patient (distinct ages)
GROUPS: list[tuple[int, tuple[str, ...], str]] = [
    (10, ("femur",), "lower limb"),
    (6, ("tibia",), "lower limb"),
    (4, ("humerus",), "upper limb"),
    (16, (), "lower limb"),
    (8, (), "upper limb"),
]


def radiograph(seed: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """A (SIDE, SIDE) uint8 radiograph: dark air, a bright noisy bar, a dark lytic blob."""
    rng = np.random.default_rng(seed)
    image = rng.normal(25, 6, (SIDE, SIDE))
    image[:, BAR[0]:BAR[1]] = rng.normal(200, 12, (SIDE, BAR[1] - BAR[0]))
    if box is not None:
        x0, y0, x1, y1 = box
        yy, xx = np.mgrid[:SIDE, :SIDE]
        inside = (((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
                  + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2) <= 1
        image[inside] -= 90
    return np.clip(image, 0, 255).astype(np.uint8)


def write_fake_btxrd(root: Path) -> Path:
    """The BTXRD layout (images/, Annotations/, dataset.csv) with len(GROUPS) kinds of row."""
    (root / "images").mkdir(parents=True)
    (root / "Annotations").mkdir()
    rows = []
    number = 0
    for count, sites, region in GROUPS:
        for _ in range(count):
            number += 1
            name = f"IMG{number:06d}.jpeg"
            tumour = bool(sites)
            entry = (name, str(1 + number % 2), str(20 + number), "MF"[number % 2], sites,
                     "malignant" if tumour else "", "osteosarcoma" if tumour else "", region,
                     "frontal")
            rows.append(csv_row(entry))
            box = None
            if tumour:
                y0 = 10 + (7 * number) % 60
                box = (44, y0, 68, y0 + 24)
                annotation(root / "Annotations" / f"IMG{number:06d}.json",
                           [rect([[box[0], box[1]], [box[2], box[3]]])],
                           imagePath=f"..\\images\\{name}", imageHeight=SIDE, imageWidth=SIDE)
            Image.fromarray(radiograph(number, box), mode="L").save(root / "images" / name,
                                                                     quality=95)
    with open(root / "dataset.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


OVERRIDES = {
    "data.bones": ["femur", "tibia"], "data.prevalence": PREVALENCE, "data.val": VAL,
    "data.test": TEST,
    "patches.size": 24, "patches.per_lesion": 2, "patches.healthy_per_image": 2,
    "gan.n_blocks": 1, "gan.ngf": 4, "gan.ndf": 4, "gan.iterations": 2, "gan.device": "cpu",
    "gan.sample_every": 1, "gan.checkpoint_every": 1,
    "classifier.arch": "cnn", "classifier.width": 4, "classifier.size": 32,
    "classifier.epochs": 2, "classifier.device": "cpu", "classifier.steps_per_epoch": 2,
    "classifier.crop": "image",
    "protocol.seeds": 1, "protocol.n_boot": 20,
    "protocol.strategies": ["baseline", "weighted", "gan", "tstr"], "protocol.ratios": [1],
    "protocol.main_ratio": 1, "protocol.sweep": ["gan"],
}


def kept_by_rule(n_pos: int, n_neg: int) -> int:
    """configs/btxrd.yaml's rarity rule: train positives = p / (1 - p) x train normals."""
    return min(n_pos, max(2, int(round(PREVALENCE / (1 - PREVALENCE) * n_neg))))


def test_btxrd_experiment_end_to_end(tmp_path: Path) -> None:
    started = time.time()
    imported_path = tmp_path / "import" / "manifest.csv"
    import_btxrd(write_fake_btxrd(tmp_path / "BTXRD"), imported_path)
    imported = load_manifest(imported_path).table
    assert len(imported) == sum(g[0] for g in GROUPS) and (imported["split"] == "").all()

    config = load_experiment_config(CONFIG, {**OVERRIDES, "data.manifest": str(imported_path)})
    assert config.data.negatives_from["femur"] == ["lower_limb"]
    messages: list[str] = []
    run_dir = tmp_path / "run"
    result = run_experiment(config, run_dir, say=messages.append, progress=False)
    assert result.report is not None and result.report.is_file()
    assert any("data:" in m for m in messages)

    # the split the run made is the seeded patient-level split of the import
    expected = split_manifest(load_manifest(imported_path), val=VAL, test=TEST,
                              seed=config.seed).manifest.table.set_index("image_id")
    run = load_manifest(run_dir / "data" / "manifest.csv")
    table = run.table
    pool = load_manifest(run_dir / "data" / "oracle-pool.csv").table
    assert (table["origin"] == "real").all()
    assert (expected.loc[table["image_id"], "split"].to_numpy() == table["split"]).all()
    # val and test keep every imported image; only train positives of a bone are held back
    for split in ("val", "test"):
        assert (table["split"] == split).sum() == (expected["split"] == split).sum() > 0
    assert len(table) + len(pool) == len(imported)
    assert set(pool["split"]) == {"train"} and set(pool["label"]) == {1}
    assert set(pool["bone"]) <= {"femur", "tibia"}
    info = json.loads((run_dir / "stages" / "data.json").read_text())
    train = expected[expected["split"] == "train"]
    lower_normals = int(((train["bone"] == "lower_limb") & (train["label"] == 0)).sum())
    for bone in ("femur", "tibia"):
        n_pos = int(((train["bone"] == bone) & (train["label"] == 1)).sum())
        kept = kept_by_rule(n_pos, lower_normals)
        have = int(((table["split"] == "train") & (table["bone"] == bone)
                    & (table["label"] == 1)).sum())
        assert have == kept == info["counts"][bone]["train_pos"]
        assert int((pool["bone"] == bone).sum()) == n_pos - kept
        assert info["counts"][bone]["train_neg"] == lower_normals
    femur_held = int((pool["bone"] == "femur").sum())
    assert femur_held > 0  # the rarity simulation did something on this set
    # the GAN saw only the kept femur lesions (one box each), never the held-back ones
    patches = json.loads((run_dir / "stages" / "patches_femur.json").read_text())
    assert patches["lesion"] == 2 * info["counts"]["femur"]["train_pos"]

    # femur's normals, in every split, are the lower-limb normals, never the upper-limb ones
    selection = select(run, "baseline", bone="femur", negatives_from=("lower_limb",))
    upper_normals = set(table.index[(table["bone"] == "upper_limb") & (table["label"] == 0)])
    assert upper_normals  # the fake set has them, in every split
    for split, rows in (("train", selection.train), ("val", selection.val),
                        ("test", selection.test)):
        normals = {r for r in rows if table.at[r, "label"] == 0}
        wanted = set(table.index[(table["split"] == split) & (table["label"] == 0)
                                 & (table["bone"] == "lower_limb")])
        assert normals == wanted and wanted
        assert not set(rows) & upper_normals
    runs = pd.read_csv(run_dir / "evaluation" / "runs.csv")
    femur_runs = runs[runs["bone"] == "femur"]
    assert sorted(femur_runs["condition"]) == ["baseline", "gan-r1", "tstr-r1", "weighted"]
    assert (femur_runs["n_train_neg"] == len(
        [r for r in selection.train if table.at[r, "label"] == 0])).all()
    kept_femur = info["counts"]["femur"]["train_pos"]
    real_pos = femur_runs.set_index("condition")["n_train_pos_real"]
    assert real_pos["baseline"] == real_pos["gan-r1"] == kept_femur
    assert real_pos["tstr-r1"] == 0  # train-synthetic-test-real: no real positive trains
    assert femur_runs.set_index("condition").at["gan-r1", "n_train_pos_extra"] == kept_femur

    # synthetic images are train-only and never in the evaluation
    synthetic = load_manifest(run_dir / "synth" / "gan" / "femur-s0" / "synthetic.csv").table
    assert len(synthetic) >= kept_femur and set(synthetic["split"]) == {"train"}
    assert set(synthetic["origin"]) == {"synthetic"}
    predictions = pd.read_csv(run_dir / "evaluation" / "predictions.csv",
                              dtype={"image_id": str})
    test_ids = set(table.loc[table["split"] == "test", "image_id"])
    assert set(predictions["image_id"]) <= test_ids
    assert not set(predictions["image_id"]) & set(synthetic["image_id"])
    femur_pred = predictions[predictions["bone"] == "femur"]
    assert set(femur_pred["image_id"]) == set(table.loc[selection.test, "image_id"])
    assert femur_pred.groupby("condition").size().eq(len(selection.test)).all()
    upper_ids = set(table.loc[list(upper_normals), "image_id"])
    assert not set(femur_pred["image_id"]) & upper_ids
    assert time.time() - started < 120  # tiny settings: seconds, not minutes


def test_oracle_refused_for_a_manifest_source(tmp_path: Path) -> None:
    overrides = {**OVERRIDES, "data.manifest": str(tmp_path / "m.csv"),
                 "protocol.strategies": ["baseline", "oracle"], "protocol.sweep": ["oracle"]}
    with pytest.raises(BoneaugError, match="oracle") as info:
        load_experiment_config(CONFIG, overrides)
    assert "\n" not in str(info.value)
