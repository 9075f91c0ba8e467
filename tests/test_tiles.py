"""Tile classifiers (`boneaug.classify.tiles`): the grid, the labels, the weights, the
pooled film scores, and `classify` / the experiment with ``crop: tiles``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import boneaug.classify.tiles as tiles_module
from boneaug.classify import ClassifierConfig, classify, predict, roc_auc
from boneaug.classify.model import build_classifier
from boneaug.classify.regions import RegionConfig, _survey
from boneaug.classify.tiles import (
    MIN_BONE,
    STRIDE,
    TileSet,
    build_tile_training,
    film_tiles,
    tile_set,
    tile_side_rel,
)
from boneaug.data import Manifest, load_manifest
from boneaug.errors import BoneaugError
from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

REGIONS = RegionConfig(context=1.5)
FAST = ClassifierConfig(crop="tiles", size=32, width=8, epochs=20, steps_per_epoch=10,
                        batch_size=16, lr=3e-3, amp=False, device="cpu")


@pytest.fixture(scope="module")
def films(femur_films) -> Manifest:
    return femur_films  # conftest.py


def rows_of(manifest: Manifest, split: str) -> list:
    return manifest.table.index[manifest.table["split"] == split].tolist()


def overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


# --------------------------------------------------------------------------- one film


def bar_film() -> tuple[np.ndarray, np.ndarray]:
    """A 100 x 100 film with an upright bone (a 24 px wide bar) and a ramp on it."""
    image = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (100, 1))
    bone = np.zeros((100, 100), bool)
    bone[8:92, 38:62] = True
    return image, bone


@pytest.mark.parametrize("offset", [(0, 0), (3, 7), (9, 1)])
def test_tiles_cover_the_bone_and_every_lesion_has_a_lesion_tile(offset):
    image, bone = bar_film()
    lesions = [[44.0, 30.0, 56.0, 40.0], [40.0, 70.0, 48.0, 78.0]]
    side = 20
    patches, labels, squares = film_tiles(image, bone, lesions, side, 16, offset)
    assert len(patches) == len(labels) == len(squares) > 0
    assert all(p.shape == (16, 16) for p in patches)
    assert all(x1 - x0 == y1 - y0 == side for x0, y0, x1, y1 in squares)
    assert len(set(squares)) == len(squares)  # no tile twice
    covered = np.zeros_like(bone)
    for x0, y0, x1, y1 in squares:
        assert 0 <= x0 and 0 <= y0 and x1 <= 100 and y1 <= 100  # inside the film
        assert bone[y0:y1, x0:x1].mean() >= MIN_BONE
        covered[y0:y1, x0:x1] = True
    assert covered[bone].all()
    quarter = side * (1 - STRIDE) / 2
    for lesion in lesions:
        mx, my = (lesion[0] + lesion[2]) / 2, (lesion[1] + lesion[3]) / 2
        holding = [s for s, v in zip(squares, labels, strict=True) if v == 1
                   and s[0] + quarter <= mx < s[2] - quarter
                   and s[1] + quarter <= my < s[3] - quarter]
        assert holding, f"lesion {lesion} has no lesion tile at offset {offset}"
    for square, label in zip(squares, labels, strict=True):
        touches = any(overlaps(square, lesion) for lesion in lesions)
        assert (label == 0) == (not touches)  # healthy tiles touch no lesion
    # the tiles are the film's pixels, resized
    first = squares[0]
    crop = image[first[1]:first[3], first[0]:first[2]]
    assert abs(float(patches[0].mean()) - float(crop.mean())) < 0.02


def test_a_film_without_bone_is_tiled_all_over():
    image, _ = bar_film()
    _, labels, squares = film_tiles(image, np.zeros((100, 100), bool), [], 20, 16)
    covered = np.zeros((100, 100), bool)
    for x0, y0, x1, y1 in squares:
        covered[y0:y1, x0:x1] = True
    assert covered.all() and set(labels) == {0}


def test_a_film_scores_as_its_highest_tile():
    tiles = TileSet(np.zeros((4, 8, 8), np.float32), np.array([0, 1, 0, 0]),
                    np.array([0, 0, 2, 2]), ["a", "b", "c"], np.array([1, 0, 0]))
    assert tiles.pooled(np.array([0.2, 0.9, 0.4, 0.1])).tolist() == [0.9, 0.0, 0.4]


# --------------------------------------------------------------------------- many films


def test_tile_sets_of_val_and_training_films(films, tmp_path, monkeypatch):
    side_rel = tile_side_rel(films, "femur", REGIONS)
    assert 0 < side_rel < 1
    test_rows = rows_of(films, "test")
    test = tile_set(films, test_rows, "femur", side_rel, 32, None)
    assert test.film_ids == films.table.loc[test_rows, "image_id"].tolist()
    assert test.film_labels.tolist() == films.table.loc[test_rows, "label"].tolist()
    assert set(np.unique(test.film)) == set(range(len(test_rows)))  # every film has tiles
    assert test.inputs.shape[1:] == (32, 32)

    train_rows = rows_of(films, "train")
    train = tile_set(films, train_rows, "femur", side_rel, 32, seed=1)
    lesion_films = {i for i, v in enumerate(train.film_labels) if v == 1}
    assert set(train.film[train.labels == 1]) == lesion_films  # a lesion tile a lesion film
    # a film's tiles depend on the seed and the film, not on the other films drawn
    alone = tile_set(films, train_rows[-1:], "femur", side_rel, 32, seed=1)
    last = train.film == len(train_rows) - 1
    assert np.array_equal(alone.inputs, train.inputs[last])
    other = tile_set(films, train_rows, "femur", side_rel, 32, seed=2)
    assert len(other) != len(train) or not np.array_equal(other.inputs, train.inputs)
    lesions = tile_set(films, train_rows, "femur", side_rel, 32, seed=1, lesions_only=True)
    assert set(lesions.labels) == {1} and len(lesions) == int(train.labels.sum())

    # the cache gives the same tiles back without reading a film
    first = tile_set(films, test_rows, "femur", side_rel, 32, None, cache_dir=tmp_path)

    def no_tiling(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(tiles_module, "film_tiles", no_tiling)
    again = tile_set(films, test_rows, "femur", side_rel, 32, None, cache_dir=tmp_path)
    assert np.array_equal(again.inputs, first.inputs) and again.film_ids == first.film_ids


def test_films_without_a_bone_mask_are_tiled_where_the_bone_lies(films):
    """No mask (a joint film shows other bones): the estimated region is narrowed by the
    locator of where this bone's lesions lie, so fewer tiles, still some on every film."""
    table = films.table.copy()
    table["bone_mask_path"] = ""
    estimated = Manifest(table, films.root)
    sites = _survey(films, "femur", REGIONS, None)
    side_rel = float(np.median(sites.side_rel))
    rows = rows_of(films, "test")
    anywhere = tile_set(estimated, rows, "femur", side_rel, 32, None)
    located = tile_set(estimated, rows, "femur", side_rel, 32, None, sites=sites)
    assert 0 < len(located) < len(anywhere)
    assert set(np.unique(located.film)) == set(range(len(rows)))


def test_strategies_shape_the_tile_training_set(films, monkeypatch):
    def built(strategy: str, **kwargs):
        return build_tile_training(films, strategy, FAST, REGIONS, bone="femur", seed=0,
                                   **kwargs)[0]

    baseline, oversample, weighted = built("baseline"), built("oversample", ratio=2), \
        built("weighted")
    per_film = baseline.info["tiles"]["per_film"]
    # each film weighs as much as at the film level: a lesion is seen in the tiles of 4
    # shifted grids, each lesion tile drawn a quarter of per_film times
    shifts = len(tiles_module.LESION_SHIFTS)
    assert shifts == 4
    assert per_film > 1
    assert set(baseline.repeat[baseline.labels == 1]) == {round(per_film / shifts)}
    assert set(baseline.repeat[baseline.labels == 0]) == {1}
    assert set(oversample.repeat[oversample.labels == 1]) == {3 * round(per_film / shifts)}
    monkeypatch.setattr(tiles_module, "LESION_SHIFTS", ((0.0, 0.0),))
    one_grid = built("baseline")
    assert one_grid.info["n_train_tiles_pos"] * 2 < baseline.info["n_train_tiles_pos"]
    # per_film: the tiles of a normal film, whatever the shifts add to lesion films
    assert one_grid.info["tiles"]["per_film"] == per_film
    assert set(one_grid.repeat[one_grid.labels == 1]) == {per_film}
    monkeypatch.undo()
    # class weighting is by films, as at the film level
    assert weighted.pos_weight == pytest.approx(
        baseline.info["n_train_neg"] / baseline.info["n_train_pos_real"])
    assert baseline.pos_weight == 1

    table = films.table
    chosen = table[(table["split"] == "train") & (table["label"] == 1)].head(4).copy()
    chosen["image_id"] = [f"syn-{i}" for i in chosen["image_id"]]
    chosen["origin"] = "synthetic"
    extra = Manifest(chosen.reset_index(drop=True), films.root)
    gan = built("gan", extra=extra)
    n_extra = gan.info["n_train_tiles_extra"]
    assert n_extra >= len(chosen)  # extra films give their lesion tiles only
    assert len(gan.labels) == len(baseline.labels) + n_extra
    assert gan.labels[-n_extra:].tolist() == [1] * n_extra

    # draw: another member's grids (classifier.members): the same films, other tiles;
    # the seed's own draw is the seed's tile set bit for bit
    same, other = built("baseline", draw=0), built("baseline", draw=7)
    assert np.array_equal(same.inputs, baseline.inputs)
    assert other.info["n_train_films"] == baseline.info["n_train_films"]
    assert other.info["n_train_pos_real"] == baseline.info["n_train_pos_real"]
    assert (other.inputs.shape != baseline.inputs.shape
            or not np.array_equal(other.inputs, baseline.inputs))

    with pytest.raises(BoneaugError, match="needs a bone"):
        build_tile_training(films, "baseline", FAST, REGIONS, bone=None)


def test_tiles_config_is_checked():
    with pytest.raises(BoneaugError, match="aspect"):
        ClassifierConfig(crop="tiles", aspect=2.0).validate()
    with pytest.raises(BoneaugError, match="crop: must be one of bone, image, tiles"):
        ClassifierConfig(crop="tile").validate()


# --------------------------------------------------------------------------- classify


def test_classify_with_tiles_scores_each_test_film(films, tmp_path):
    out = tmp_path / "cls"
    report = classify(films, "baseline", out, config=FAST, bone="femur", seed=0,
                      regions=REGIONS, cache_dir=tmp_path / "cache")
    test_rows = rows_of(films, "test")
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions["image_id"].tolist() == films.table.loc[test_rows, "image_id"].tolist()
    assert predictions["label"].tolist() == films.table.loc[test_rows, "label"].tolist()
    assert predictions["score"].between(0, 1).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == len(test_rows) and metrics["tiles"]["size"] == 32
    saved = torch.load(out / "model.pt", weights_only=False)
    assert saved["selection"]["tiles"]["side_rel"] == pytest.approx(
        tile_side_rel(films, "femur", REGIONS), abs=1e-6)
    history = pd.read_csv(out / "history.csv")
    assert history["train_loss"].iloc[-1] < 0.7 * history["train_loss"].iloc[0]
    # obvious lesions: the test films' lesion tiles score above their healthy tiles, and
    # the films' highest tiles tell lesion films from normal ones (16 test films: 0.68 to
    # 0.93 over seeds and budgets)
    model = build_classifier(FAST.arch, FAST.width, FAST.pool)
    model.load_state_dict(saved["state_dict"])
    tiles = tile_set(films, test_rows, "femur", saved["selection"]["tiles"]["side_rel"], 32,
                     None, cache_dir=tmp_path / "cache")
    tile_scores = predict(model, tiles.inputs, FAST)
    # lesion tiles against the tiles of normal films (a lesion film's other tiles may cut
    # its lesion, and tile labels count those as healthy): 0.75 here (0.83 over all tiles
    # before the shifted lesion grids, which spread this tiny budget over 4x the tiles)
    clear = (tiles.labels == 1) | (tiles.film_labels[tiles.film] == 0)
    assert roc_auc(tiles.labels[clear], tile_scores[clear]) > 0.7
    assert np.allclose(tiles.pooled(tile_scores), predictions["score"], atol=1e-6)
    assert report.test_auc > 0.6, report.test_auc


def test_an_experiment_with_tiles_runs_its_quality_gate(tmp_path):
    """The gate scores synthetic films with the tile baseline, film by film, as when tested."""
    tiny = {
        "data.bones": ["femur"], "data.normal": 16, "data.lesion": 12, "data.size": 96,
        "data.prevalence": 0.2, "patches.size": 24, "patches.per_lesion": 2,
        "patches.healthy_per_image": 2, "gan.n_blocks": 1, "gan.ngf": 4, "gan.ndf": 4,
        "gan.iterations": 2, "gan.sample_every": 2, "gan.checkpoint_every": 2,
        "gan.device": "cpu", "classifier.crop": "tiles", "classifier.size": 32,
        "classifier.width": 4, "classifier.epochs": 1, "classifier.steps_per_epoch": 2,
        "classifier.device": "cpu", "protocol.seeds": 1, "protocol.n_boot": 20,
        "protocol.strategies": ["baseline", "gan-gated"], "protocol.ratios": [1],
        "protocol.main_ratio": 1, "protocol.sweep": [], "protocol.levels": ["image"],
        "classifier.members": 2,  # the gate loads a two-member model
    }
    config = load_experiment_config(demo_config_path(), tiny)
    run = tmp_path / "run"
    run_experiment(config, run, say=lambda line: None, progress=False, report=False)
    scores = pd.read_csv(run / "gate" / "femur" / "scores.csv")
    synthetic = load_manifest(run / "synth" / "gan" / "femur-s0" / "synthetic.csv")
    assert scores["image_id"].tolist() == synthetic.table["image_id"].tolist()
    assert scores["score"].between(0, 1).all()
    predictions = pd.read_csv(run / "cls" / "femur" / "gan-gated-r1" / "seed0" /
                              "predictions.csv")
    assert len(predictions) == len(pd.read_csv(run / "cls" / "femur" / "baseline" / "seed0" /
                                               "predictions.csv"))
    assert (run / "evaluation" / "predictions.csv").is_file()
    saved = torch.load(run / "cls" / "femur" / "baseline" / "seed0" / "model.pt",
                       weights_only=False)
    assert saved["config"]["members"] == 2
    assert any(k.startswith("members.1.") for k in saved["state_dict"])
    history = pd.read_csv(run / "cls" / "femur" / "baseline" / "seed0" / "history.csv")
    assert history["member"].tolist() == [0, 1]
