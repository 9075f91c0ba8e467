"""The real-data experiment path end to end on a tiny fake BTXRD folder.

`import_btxrd` -> `load_experiment_config("configs/btxrd.yaml", tiny CPU overrides)` ->
`run_experiment`. The fake films have coarse anatomy by kind (a femur, a tibia with its
fibula, a humerus, an ankle), and like BTXRD, only the tumour films name their bone: the
normal films say "lower limb" or "upper limb". Checked: the run learns which bone each
normal film shows and a bone's negatives are the normal films of that bone (never an
ankle, never another limb); val and test keep every imported image; only the training
positives are subsampled (by the documented prevalence rule); synthetic lesions land only
on films of their bone and are never evaluated on; the oracle adds the held-back real
training tumours.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from boneaug.classify import select
from boneaug.data import load_manifest
from boneaug.data.films import normals_of
from boneaug.data.importers import import_btxrd
from boneaug.data.splits import split_manifest
from boneaug.experiment import load_experiment_config, run_experiment
from test_import_btxrd import annotation, csv_row, rect

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "btxrd.yaml"
SIDE = 112                       # px; the fake radiographs are SIDE x SIDE grey JPEGs
VAL, TEST, PREVALENCE = 0.25, 0.25, 0.2
# (count, sites, region, kind) of the fake set; every image its own patient (distinct ages)
GROUPS: list[tuple[int, tuple[str, ...], str, str]] = [
    (12, ("femur",), "lower limb", "femur"),
    (10, ("tibia",), "lower limb", "tibia"),
    (8, ("humerus",), "upper limb", "humerus"),
    (12, (), "lower limb", "femur"),
    (10, (), "lower limb", "tibia"),
    (8, (), "lower limb", "ankle"),
    (8, (), "upper limb", "humerus"),
]


def radiograph(seed: int, kind: str, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """A (SIDE, SIDE) uint8 film of one kind: dark air, bright noisy bone shapes, and a
    dark lytic blob in `box`."""
    rng = np.random.default_rng(seed)
    image = rng.normal(25, 6, (SIDE, SIDE))
    yy, xx = np.mgrid[:SIDE, :SIDE]

    def bone(mask: np.ndarray) -> None:
        image[mask] = rng.normal(200, 12, int(mask.sum()))

    if kind == "femur":      # a shaft with a round head up and to the right
        bone((xx >= 36) & (xx < 76) & (yy >= 20))
        bone((xx - 78) ** 2 + (yy - 18) ** 2 <= 15 ** 2)
    elif kind == "tibia":    # a shaft with a wide plateau, the thin fibula beside it
        bone((xx >= 36) & (xx < 76))
        bone((xx >= 22) & (xx < 90) & (yy < 16))
        bone((xx >= 84) & (xx < 92) & (yy >= 22))
    elif kind == "humerus":  # a slimmer shaft under a large head to the left
        bone((xx >= 44) & (xx < 72) & (yy >= 24))
        bone((xx - 46) ** 2 + (yy - 22) ** 2 <= 20 ** 2)
    else:                    # an ankle: a short vertical shaft on a horizontal foot
        bone((xx >= 44) & (xx < 68) & (yy < 70))
        bone((yy >= 70) & (yy < 96) & (xx >= 10) & (xx < 104))
    if box is not None:
        x0, y0, x1, y1 = box
        inside = (((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
                  + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2) <= 1
        image[inside] -= 90
    return np.clip(image, 0, 255).astype(np.uint8)


def write_fake_btxrd(root: Path) -> tuple[Path, dict[str, str]]:
    """The BTXRD layout (images/, Annotations/, dataset.csv); and each image's kind."""
    (root / "images").mkdir(parents=True)
    (root / "Annotations").mkdir()
    rows = []
    kinds: dict[str, str] = {}
    number = 0
    for count, sites, region, kind in GROUPS:
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
                y0 = 30 + (7 * number) % 50
                box = (46, y0, 66, y0 + 20)
                annotation(root / "Annotations" / f"IMG{number:06d}.json",
                           [rect([[box[0], box[1]], [box[2], box[3]]])],
                           imagePath=f"..\\images\\{name}", imageHeight=SIDE, imageWidth=SIDE)
            Image.fromarray(radiograph(number, kind, box), mode="L").save(
                root / "images" / name, quality=95)
            kinds[Path(name).stem] = kind
    with open(root / "dataset.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root, kinds


OVERRIDES = {
    "data.bones": ["femur", "tibia"], "data.prevalence": PREVALENCE, "data.val": VAL,
    "data.test": TEST,
    "assign.size": 32, "assign.width": 8, "assign.steps": 150, "assign.min_films": 3,
    "assign.device": "cpu",
    "patches.size": 24, "patches.per_lesion": 2, "patches.healthy_per_image": 2,
    "gan.n_blocks": 1, "gan.ngf": 4, "gan.ndf": 4, "gan.iterations": 2, "gan.device": "cpu",
    "gan.sample_every": 1, "gan.checkpoint_every": 1,
    "classifier.arch": "cnn", "classifier.width": 4, "classifier.size": 32,
    "classifier.epochs": 2, "classifier.device": "cpu", "classifier.steps_per_epoch": 2,
    "classifier.crop": "image",
    "protocol.seeds": 1, "protocol.n_boot": 20,
    "protocol.strategies": ["baseline", "weighted", "gan", "oracle", "tstr"],
    "protocol.ratios": [1], "protocol.main_ratio": 1, "protocol.sweep": ["gan", "oracle"],
    # every fake film is its own patient of a distinct age: no lesion film shares an age
    # band with a normal one, so matching (tests/test_experiment_evidence.py) is off here
    "matching.columns": [],
}


def kept_by_rule(n_pos: int, n_neg: int) -> int:
    """configs/btxrd.yaml's rarity rule: train positives = p / (1 - p) x train normals."""
    return min(n_pos, max(2, int(round(PREVALENCE / (1 - PREVALENCE) * n_neg))))


def test_btxrd_experiment_end_to_end(tmp_path: Path, one_thread: None) -> None:
    started = time.time()
    imported_path = tmp_path / "import" / "manifest.csv"
    root, kinds = write_fake_btxrd(tmp_path / "BTXRD")
    import_btxrd(root, imported_path)
    imported = load_manifest(imported_path).table
    assert len(imported) == sum(g[0] for g in GROUPS) and (imported["split"] == "").all()

    config = load_experiment_config(CONFIG, {**OVERRIDES, "data.manifest": str(imported_path)})
    assert not config.data.negatives_from and config.data.assign == "auto"
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
    for split in ("val", "test"):
        assert (table["split"] == split).sum() == (expected["split"] == split).sum() > 0
    assert len(table) + len(pool) == len(imported)
    assert set(pool["split"]) == {"train"} and set(pool["label"]) == {1}

    # which bone each normal film shows: learned from the tumour films; the assignment
    # picks the films of the bone's own anatomy, never an ankle or an upper-limb film
    bones = json.loads((run_dir / "data" / "bones.json").read_text())
    assert set(bones["classes"]) == {"femur", "tibia", "humerus"}
    assert (run_dir / "data" / "bones-sheet.png").is_file()
    for bone in ("femur", "tibia"):
        normals = table[normals_of(table, bone)]
        assert len(normals) > 0
        assert {kinds[i] for i in normals["image_id"]} == {bone}
        assert set(normals["bone"]) == {"lower_limb"}
        own_kind = [i for i in table.loc[table["label"] == 0, "image_id"] if kinds[i] == bone]
        assert len(normals) >= 0.8 * len(own_kind)  # most of them found

    info = json.loads((run_dir / "stages" / "data.json").read_text())
    train = table[table["split"] == "train"]
    for bone in ("femur", "tibia"):
        n_neg = int(normals_of(train, bone).sum())
        n_pos = int(((expected["split"] == "train") & (expected["bone"] == bone)
                     & (expected["label"] == 1)).sum())
        kept = kept_by_rule(n_pos, n_neg)
        have = int(((train["bone"] == bone) & (train["label"] == 1)).sum())
        assert have == kept == info["counts"][bone]["train_pos"]
        assert int((pool["bone"] == bone).sum()) == n_pos - kept
        assert info["counts"][bone]["train_neg"] == n_neg
    femur_held = int((pool["bone"] == "femur").sum())
    assert femur_held > 0  # the rarity simulation did something on this set
    # the GAN saw only the kept femur lesions (one box each), never the held-back ones
    patches = json.loads((run_dir / "stages" / "patches_femur.json").read_text())
    assert patches["lesion"] == 2 * info["counts"]["femur"]["train_pos"]

    # femur's classifier sets: its tumour films and its assigned normals, in every split
    selection = select(run, "baseline", bone="femur")
    for split, rows in (("train", selection.train), ("val", selection.val),
                        ("test", selection.test)):
        normals = {r for r in rows if table.at[r, "label"] == 0}
        wanted = set(table.index[(table["split"] == split) & normals_of(table, "femur")])
        assert normals == wanted and wanted
        assert {kinds[table.at[r, "image_id"]] for r in rows} == {"femur"}
    runs = pd.read_csv(run_dir / "evaluation" / "runs.csv")
    femur_runs = runs[runs["bone"] == "femur"].set_index("condition")
    assert sorted(femur_runs.index) == ["baseline", "gan-r1", "oracle-r1", "tstr-r1", "weighted"]
    kept_femur = info["counts"]["femur"]["train_pos"]
    real_pos = femur_runs["n_train_pos_real"]
    assert real_pos["baseline"] == real_pos["gan-r1"] == real_pos["oracle-r1"] == kept_femur
    assert real_pos["tstr-r1"] == 0  # train-synthetic-test-real: no real positive trains
    assert femur_runs.at["gan-r1", "n_train_pos_extra"] == kept_femur
    # the oracle on real data: the held-back real training tumours of the same bone
    assert femur_runs.at["oracle-r1", "n_train_pos_extra"] == kept_femur <= femur_held

    # synthetic lesions: train-only, on normal films of their own bone, never evaluated on
    synthetic = load_manifest(run_dir / "synth" / "gan" / "femur-s0" / "synthetic.csv").table
    assert len(synthetic) >= kept_femur and set(synthetic["split"]) == {"train"}
    assert set(synthetic["origin"]) == {"synthetic"}
    assert {kinds[s] for s in synthetic["source_image_id"]} == {"femur"}
    predictions = pd.read_csv(run_dir / "evaluation" / "predictions.csv",
                              dtype={"image_id": str})
    test_ids = set(table.loc[table["split"] == "test", "image_id"])
    assert set(predictions["image_id"]) <= test_ids
    assert not set(predictions["image_id"]) & set(synthetic["image_id"])
    femur_pred = predictions[predictions["bone"] == "femur"]
    assert set(femur_pred["image_id"]) == set(table.loc[selection.test, "image_id"])
    assert femur_pred.groupby("condition").size().eq(len(selection.test)).all()
    assert (run_dir / "evaluation" / "skipped.csv").is_file()
    assert time.time() - started < 180  # tiny settings: seconds, not minutes
