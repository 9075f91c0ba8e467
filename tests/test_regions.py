"""Region-level classification (`boneaug.classify.regions`) on a small phantom of femurs.

The phantom's exact masks check what a region holds: a lesion region its whole lesion, a
healthy region enough bone and no lesion. Training runs on 32 px regions with an 8-channel
CNN for a dozen epochs: a few seconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import boneaug.classify.regions as regions_module
from boneaug.classify import ClassifierConfig
from boneaug.classify.regions import (
    EVAL_SEED,
    RegionConfig,
    RegionSet,
    build_region_training,
    classify_regions,
    region_set,
)
from boneaug.data import Manifest, read_image
from boneaug.errors import BoneaugError
from boneaug.patches import crop_reflect, resize_square
from boneaug.patches.extract import SHARE_TOLERANCE

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

REGIONS = RegionConfig(context=1.5)  # phantom lesions are large: room for healthy regions
FAST = ClassifierConfig(width=8, epochs=20, patience=20, batch_size=16, lr=3e-3, amp=False,
                        device="cpu")


@pytest.fixture(scope="module")
def films(femur_films) -> Manifest:
    return femur_films  # conftest.py


def rows_of(manifest: Manifest, split: str) -> list:
    return manifest.table.index[manifest.table["split"] == split].tolist()


def read(manifest: Manifest, path: str) -> np.ndarray:
    return read_image(manifest.resolve(path))


@pytest.fixture(scope="module")
def train_regions(films) -> RegionSet:
    return region_set(films, rows_of(films, "train"), "femur", REGIONS, seed=3)


# --------------------------------------------------------------------------- the regions


def test_region_config_validates_and_round_trips():
    assert RegionConfig.from_dict(REGIONS.to_dict()) == REGIONS
    for values, key in (({"size": 16}, "size"), ({"context": 0.5}, "context"),
                        ({"min_bone": 1.5}, "min_bone"), ({"healthy_per_film": 0}, "healthy"),
                        ({"min_side": True}, "min_side"), ({"context": float("nan")}, "context"),
                        ({"colour": 1}, "unknown")):
        with pytest.raises(BoneaugError, match=key) as caught:
            RegionConfig.from_dict(values, "cfg: regions")
        message = str(caught.value)  # cfg: regions.<key>: ..., or cfg: regions: unknown ...
        assert message.startswith(("cfg: regions.", "cfg: regions:")) and "\n" not in message


def test_the_regions_may_have_their_own_budget(films, tmp_path):
    assert "epochs" not in REGIONS.to_dict()  # older runs' records and keys unchanged
    own = RegionConfig(context=1.5, epochs=2)
    assert own.to_dict()["epochs"] == 2 and own.cut_settings() == REGIONS.to_dict()
    assert REGIONS.classifier(FAST).epochs == 20 and own.classifier(FAST).epochs == 2
    assert own.classifier(FAST).size == own.size
    with pytest.raises(BoneaugError, match="regions.epochs"):
        RegionConfig.from_dict({"epochs": 0}, "cfg: regions")
    # members alike: the classifier's unless the regions set their own
    assert "members" not in REGIONS.to_dict() and "members" not in own.cut_settings()
    many = dataclasses.replace(FAST, members=3)
    assert REGIONS.classifier(many).members == 3
    assert RegionConfig(members=1).classifier(many).members == 1
    with pytest.raises(BoneaugError, match="regions.members"):
        RegionConfig.from_dict({"members": 0}, "cfg: regions")
    classify_regions(films, "baseline", tmp_path / "r", config=FAST, regions=own,
                     bone="femur", seed=0)
    assert len(pd.read_csv(tmp_path / "r" / "history.csv")) == 2


def test_lesion_regions_hold_their_whole_lesion(films, train_regions):
    table = films.table.set_index("image_id")
    lesion = [i for i, label in enumerate(train_regions.labels) if label == 1]
    assert len(lesion) == sum(len(b) for b in table.loc[
        table["split"] == "train", "boxes"])  # one per box
    size = REGIONS.size
    for i in lesion:
        row = table.loc[train_regions.image_ids[i]]
        k = int(train_regions.ids[i].rsplit("#L", 1)[1])
        x0, y0, x1, y1 = row["boxes"][k]
        cx0, cy0, cx1, cy1 = train_regions.crops[i]
        assert cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1  # the region covers it
        side, longest = cx1 - cx0, max(x1 - x0, y1 - y0)
        height, width = read(films, row["path"]).shape
        assert cy1 - cy0 == side >= min(max(REGIONS.min_side, REGIONS.context * longest),
                                         min(height, width))
        # inside the film, like every healthy region: no mirrored border gives it away
        assert 0 <= cx0 and 0 <= cy0 and cx1 <= width and cy1 <= height
        # the box in the region's input pixels: inside it, where the lesion mask is
        bx0, by0, bx1, by1 = train_regions.boxes[i]
        assert 0 <= bx0 < bx1 <= size and 0 <= by0 < by1 <= size
        assert bx0 == pytest.approx((x0 - cx0) * size / side, abs=1e-2)
        ys, xs = np.nonzero(read(films, row["mask_path"]) > 0.5)
        assert ys.size and cx0 <= xs.min() and xs.max() < cx1 and cy0 <= ys.min() \
            and ys.max() < cy1
        image = read(films, row["path"])
        assert np.allclose(train_regions.inputs[i],
                           resize_square(crop_reflect(image, (cx0, cy0, cx1, cy1)), size))


def test_healthy_regions_are_bone_without_lesion(films, train_regions):
    table = films.table.set_index("image_id")
    healthy = [i for i, label in enumerate(train_regions.labels) if label == 0]
    assert healthy and all(train_regions.boxes[i] == [] for i in healthy)

    def share(i: int) -> float:  # of the region's film pixels, how many are bone
        x0, y0, x1, y1 = train_regions.crops[i]
        row = table.loc[train_regions.image_ids[i]]
        return float((read(films, row["bone_mask_path"]) > 0.5)[y0:y1, x0:x1].mean())

    # each healthy region copies a lesion region's bone share (within SHARE_TOLERANCE),
    # not "at least min_bone": it holds as much bone as lesion regions do, not more
    templates = [share(i) for i, label in enumerate(train_regions.labels)
                 if label == 1 and table.loc[train_regions.image_ids[i], "split"] == "train"]
    for i in healthy:
        row = table.loc[train_regions.image_ids[i]]
        x0, y0, x1, y1 = train_regions.crops[i]
        assert share(i) > 0 and min(abs(share(i) - t) for t in templates) <= \
            SHARE_TOLERANCE + 1e-9
        for bx0, by0, bx1, by1 in row["boxes"]:
            assert min(x1, bx1) <= max(x0, bx0) or min(y1, by1) <= max(y0, by0)
        if row["mask_path"]:
            assert not (read(films, row["mask_path"]) > 0.5)[y0:y1, x0:x1].any()
        image = read(films, row["path"])
        assert np.allclose(train_regions.inputs[i],
                           resize_square(image[y0:y1, x0:x1], REGIONS.size))


def test_ids_groups_and_healthy_regions_of_lesion_films(films, train_regions):
    table = films.table.set_index("image_id")
    assert len(set(train_regions.ids)) == len(train_regions)
    assert train_regions.groups == table.loc[train_regions.image_ids, "patient_id"].tolist()
    assert train_regions.inputs.shape == (len(train_regions), 32, 32)
    assert train_regions.inputs.dtype == np.float32
    assert 0 <= train_regions.inputs.min() and train_regions.inputs.max() <= 1
    labels_of_film = table.loc[train_regions.image_ids, "label"].to_numpy()
    from_lesion_films = (train_regions.labels == 0) & (labels_of_film == 1)
    from_normal_films = (train_regions.labels == 0) & (labels_of_film == 0)
    # the key negatives: healthy parts of lesion films, as well as normal films
    assert from_lesion_films.sum() >= 0.5 * (labels_of_film == 1).sum()
    assert from_normal_films.sum() >= (table.loc[table["split"] == "train", "label"] == 0).sum()
    assert not train_regions.skipped


def test_a_films_regions_do_not_depend_on_the_other_films(films):
    rows = rows_of(films, "test")
    whole = region_set(films, rows, "femur", REGIONS, seed=5)
    part = region_set(films, rows[::3], "femur", REGIONS, seed=5)
    where = {region_id: i for i, region_id in enumerate(whole.ids)}
    assert part.ids and all(i in where for i in part.ids)
    assert np.array_equal(part.inputs, whole.inputs[[where[i] for i in part.ids]])
    other = region_set(films, rows, "femur", REGIONS, seed=6)
    assert other.crops != whole.crops  # the seed moves the healthy sites
    only = region_set(films, rows, "femur", REGIONS, seed=5, lesions_only=True)
    assert set(only.labels) == {1} and set(only.ids) < set(whole.ids)


def test_test_regions_are_the_same_for_every_strategy_and_seed(films):
    sets = [build_region_training(films, strategy, FAST, REGIONS, bone="femur", seed=seed)
            for strategy, seed in (("baseline", 0), ("oversample", 1), ("weighted", 2),
                                   ("classic", 3))]
    first = sets[0][2]
    assert set(first.labels) == {0, 1} and len(set(first.ids)) == len(first)
    assert first.ids == region_set(films, rows_of(films, "test"), "femur", REGIONS,
                                   EVAL_SEED).ids
    for _, (val_x, val_y), test in sets[1:]:
        assert test.ids == first.ids and np.array_equal(test.inputs, first.inputs)
        assert np.array_equal(val_x, sets[0][1][0]) and np.array_equal(val_y, sets[0][1][1])
    assert not np.array_equal(sets[0][0].inputs, sets[1][0].inputs)  # train: seed's draw


def test_strategies_shape_the_region_training_set(films):
    def built(strategy: str, **kwargs) -> tuple:
        training = build_region_training(films, strategy, FAST, REGIONS, bone="femur",
                                         seed=0, **kwargs)[0]
        lesion = int(training.labels.sum())
        return training, lesion, len(training.labels) - lesion

    baseline, lesion, healthy = built("baseline")
    assert healthy > lesion > 0 and set(baseline.repeat) == {1}
    assert baseline.info["level"] == "region" and baseline.info["n_train_neg"] == healthy
    assert baseline.info["n_train_films_neg"] < healthy  # film counts are kept beside
    weighted = built("weighted")[0]
    assert weighted.pos_weight == pytest.approx(healthy / lesion)
    balanced = built("oversample")[0]  # no ratio: lesion regions about as many as healthy
    assert set(balanced.repeat[balanced.labels == 1]) == {round(healthy / lesion)}
    assert set(balanced.repeat[balanced.labels == 0]) == {1}
    ratio = built("oversample", ratio=2.0)[0]
    assert set(ratio.repeat[ratio.labels == 1]) == {3}
    assert built("classic")[0].augment


def test_extra_films_give_lesion_regions_only(films):
    table = films.table
    chosen = table[(table["split"] == "train") & (table["label"] == 1)].head(4).copy()
    chosen["image_id"] = [f"syn-{i}" for i in chosen["image_id"]]
    chosen["origin"] = "synthetic"
    extra = Manifest(chosen.reset_index(drop=True), films.root)
    training, _, _ = build_region_training(films, "gan", FAST, REGIONS, bone="femur",
                                           extra=extra)
    baseline, _, _ = build_region_training(films, "baseline", FAST, REGIONS, bone="femur")
    n_extra = training.info["n_train_pos_extra"]
    assert n_extra == sum(len(b) for b in chosen["boxes"]) > 0  # a region a box, no more
    assert training.info["n_train_films_pos_extra"] == len(chosen)
    assert len(training.labels) == len(baseline.labels) + n_extra
    assert training.labels[-n_extra:].tolist() == [1] * n_extra
    assert training.info["n_train_neg"] == baseline.info["n_train_neg"]


# --------------------------------------------------------------------------- awkward films


def test_an_unusable_film_is_skipped_not_fatal(films, tmp_path):
    table = films.table.copy()
    rows = rows_of(films, "test")
    normal = [r for r in rows if table.at[r, "label"] == 0]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    table.loc[normal[0], "path"] = str(tmp_path / "missing.png")
    table.loc[normal[1], "path"] = str(tmp_path / "broken.png")
    broken = Manifest(table, films.root)
    regions = region_set(broken, rows, "femur", REGIONS, seed=0)
    skipped = dict(regions.skipped)
    assert set(skipped) == {table.at[normal[0], "image_id"], table.at[normal[1], "image_id"]}
    assert all(why and "\n" not in why for why in skipped.values())
    assert len(set(regions.image_ids)) == len(rows) - 2
    with pytest.raises(BoneaugError, match="none of the 2 femur films") as caught:
        region_set(broken, normal[:2], "femur", REGIONS, seed=0)
    assert "\n" not in str(caught.value)


def test_films_without_a_bone_mask_use_the_estimate_and_the_locator(films):
    table = films.table.copy()
    table["bone_mask_path"] = ""
    estimated = Manifest(table, films.root)
    rows = rows_of(films, "test")
    regions = region_set(estimated, rows, "femur", REGIONS, seed=0)
    truth = table.set_index("image_id")
    assert (regions.labels == 0).sum() >= len(rows)
    for i in np.flatnonzero(regions.labels == 0):
        x0, y0, x1, y1 = regions.crops[i]
        for bx0, by0, bx1, by1 in truth.at[regions.image_ids[i], "boxes"]:
            assert min(x1, bx1) <= max(x0, bx0) or min(y1, by1) <= max(y0, by0)


def test_the_cache_gives_back_the_same_regions(films, tmp_path, monkeypatch):
    rows = rows_of(films, "val")
    first = region_set(films, rows, "femur", REGIONS, seed=1, cache_dir=tmp_path)
    assert list((tmp_path / "regions").glob("*.npz"))

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(regions_module, "_film_regions", no_reading)
    again = region_set(films, rows, "femur", REGIONS, seed=1, cache_dir=tmp_path)
    assert again.ids == first.ids and np.array_equal(again.inputs, first.inputs)
    assert again.boxes == first.boxes and again.crops == first.crops
    with pytest.raises(AssertionError, match="cache was not used"):  # another seed: new
        region_set(films, rows, "femur", REGIONS, seed=2, cache_dir=tmp_path)


# --------------------------------------------------------------------------- classify


def test_classify_regions_writes_its_outputs_and_learns(films, tmp_path):
    test_ids = region_set(films, rows_of(films, "test"), "femur", REGIONS, EVAL_SEED).ids
    reports = {}
    for strategy in ("baseline", "oversample"):
        out = tmp_path / strategy
        reports[strategy] = classify_regions(films, strategy, out, config=FAST,
                                             regions=REGIONS, bone="femur", seed=0,
                                             cache_dir=tmp_path / "cache")
        assert {p.name for p in out.iterdir()} == {"model.pt", "history.csv",
                                                   "predictions.csv", "metrics.json",
                                                   "run.json"}
        predictions = pd.read_csv(out / "predictions.csv")
        assert list(predictions.columns) == ["image_id", "film_id", "bone", "label", "score"]
        assert predictions["image_id"].tolist() == test_ids
        assert (predictions["image_id"].str.split("#").str[0] == predictions["film_id"]).all()
        assert set(predictions["label"]) == {0, 1} and predictions["score"].between(0, 1).all()
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["level"] == "region" and metrics["strategy"] == strategy
        assert metrics["n_test"] == len(test_ids)
        assert metrics["n_test_pos"] == int(predictions["label"].sum())
        assert np.isfinite(metrics["test"]["auc"])
        assert metrics["test"]["auc"] == pytest.approx(reports[strategy].test_auc)
        saved = torch.load(out / "model.pt", weights_only=False)
        assert saved["config"]["size"] == REGIONS.size and saved["regions"] == REGIONS.to_dict()
        run = json.loads((out / "run.json").read_text())
        assert run["command"] == "classify" and run["config"]["level"] == "region"
    assert not list(tmp_path.glob(".*partial"))
    history = pd.read_csv(tmp_path / "baseline" / "history.csv")
    assert history["train_loss"].iloc[-1] < 0.5 * history["train_loss"].iloc[0]
    # obvious lesions: the region baseline finds them (0.74-0.97 over phantoms and seeds)
    assert reports["baseline"].test_auc > 0.7
    # an earlier output is replaced; a folder of someone else's is not touched
    classify_regions(films, "baseline", tmp_path / "oversample", config=FAST, regions=REGIONS,
                     bone="femur", cache_dir=tmp_path / "cache")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("precious")
    with pytest.raises(BoneaugError, match="not empty"):
        classify_regions(films, "baseline", theirs, config=FAST, regions=REGIONS, bone="femur")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
