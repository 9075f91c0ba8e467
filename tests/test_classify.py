"""Classifier inputs, strategies (`select`), training, `classify` and its CLI.

The strategy tests read tables only (no pixels), so they build their extra and augmented
manifests by relabelling copies of real rows. Training runs on a 32 px toy set or on
64 px phantoms with a 4-channel CNN, for 2-4 epochs: seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import boneaug.classify.train as train_module
from boneaug.classify import (
    ClassifierConfig,
    TrainingSet,
    build_training_set,
    classify,
    load_inputs,
    predict,
    select,
    train_classifier,
)
from boneaug.classify.inputs import bone_crop, fit_square
from boneaug.classify.metrics import roc_auc
from boneaug.data import Manifest, load_manifest, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError

# Tiny and fast: a 4-channel CNN on 32 px inputs, fp32 on the CPU (bit-reproducible).
TINY = {"size": 32, "width": 4, "epochs": 2, "batch_size": 8, "lr": 3e-3, "amp": False,
        "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Manifest, Manifest]:
    """(folder, the unsplit phantom manifest, its split version saved as manifest.csv)."""
    root = tmp_path_factory.mktemp("classify")
    raw = make_phantom(root / "phantom", PhantomConfig(
        bones=("femur", "tibia"), normal=12, lesion=8, size=64, difficulty=0.0, seed=2))
    split = split_manifest(load_manifest(raw), val=0.25, test=0.25, seed=0).manifest
    save_manifest(split, root / "manifest.csv")
    return root, load_manifest(raw), load_manifest(root / "manifest.csv")


def rows_of(table: pd.DataFrame, split: str, bone: str, label: int | None = None) -> list:
    """Index labels of the real rows of one split and bone (optionally one label)."""
    chosen = (table["split"] == split) & (table["origin"] == "real") & (table["bone"] == bone)
    if label is not None:
        chosen &= table["label"] == label
    return table.index[chosen].tolist()


def relabelled(table: pd.DataFrame, prefix: str, **values) -> pd.DataFrame:
    """Copies of `table`'s rows with new ids and the given column values."""
    out = table.copy()
    out["image_id"] = [f"{prefix}-{i}" for i in out["image_id"]]
    for key, value in values.items():
        out[key] = value
    return out


def extra_manifest(split: Manifest, n_femur: int = 12) -> Manifest:
    """A synthesis-like manifest: `n_femur` usable femur positives, plus rows `select`
    must skip (a tibia positive, a synthetic normal, a val row, a real positive)."""
    table = split.table
    femur = table[table["bone"] == "femur"]
    tibia = table[table["bone"] == "tibia"]
    parts = [
        relabelled(femur.iloc[:n_femur], "syn", label=1, split="train", origin="synthetic"),
        relabelled(tibia.iloc[:3], "syn-t", label=1, split="train", origin="synthetic"),
        relabelled(femur.iloc[:1], "syn-neg", label=0, split="train", origin="synthetic"),
        relabelled(femur.iloc[1:2], "syn-val", label=1, split="val", origin="synthetic"),
        relabelled(femur.iloc[2:3], "real-pos", label=1, split="train", origin="real"),
    ]
    return Manifest(pd.concat(parts, ignore_index=True), split.root, Path("extra.csv"))


def usable_extra_ids(extra: Manifest) -> set[str]:
    return {i for i in extra.table["image_id"] if i.startswith("syn-femur")}


# --------------------------------------------------------------------------- inputs


def test_fit_square_keeps_aspect_and_centres():
    out = fit_square(np.ones((20, 40), np.float32), 32)
    assert out.shape == (32, 32) and out.dtype == np.float32
    # 40 -> 32 wide, so 20 -> 16 high, centred: rows 8..23 are the image, the rest black
    assert np.allclose(out[8:24], 1.0, atol=1e-5)
    assert np.all(out[:8] == 0) and np.all(out[24:] == 0)
    tall = fit_square(np.ones((40, 20), np.float32), 32)
    assert np.allclose(tall[:, 8:24], 1.0, atol=1e-5)
    assert np.all(tall[:, :8] == 0) and np.all(tall[:, 24:] == 0)
    # values stay in [0, 1] even where interpolation overshoots
    rng = np.random.default_rng(0)
    noisy = fit_square(rng.integers(0, 2, (50, 30)).astype(np.float32), 48)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0


def test_bone_crop_is_the_mask_box_plus_margin():
    image = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    mask = np.zeros((100, 100), bool)
    mask[20:60, 30:50] = True  # 40 high, 20 wide: margin 5% of 40 = 2 px
    crop = bone_crop(image, mask)
    assert crop.shape == (44, 24)
    assert np.array_equal(crop, image[18:62, 28:52])
    edge = np.zeros((100, 100), bool)
    edge[0:40, 90:100] = True  # the margin is clipped at the image border
    assert np.array_equal(bone_crop(image, edge), image[0:42, 88:100])
    assert np.array_equal(bone_crop(image, np.zeros((100, 100), bool)), image)


def test_load_inputs_cache(world, tmp_path):
    _, _, split = world
    rows = split.table.index[:5].tolist()
    plain = load_inputs(split, rows, 32)
    assert plain.shape == (5, 32, 32) and plain.dtype == np.float32
    assert 0.0 <= plain.min() and plain.max() <= 1.0 and plain.std() > 0
    cache = tmp_path / "cache"
    first = load_inputs(split, rows, 32, cache_dir=cache)
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 5
    assert np.array_equal(first, plain)
    second = load_inputs(split, rows, 32, cache_dir=cache)
    assert np.array_equal(second, first)
    assert sorted(cache.glob("*.npy")) == files
    # the second call reads the cache: a changed cache file comes back as it is
    for file in files:
        np.save(file, np.full((32, 32), 0.25, np.float32))
    assert np.all(load_inputs(split, rows, 32, cache_dir=cache) == 0.25)
    # other settings are other cache entries
    load_inputs(split, rows, 32, crop="image", cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 10
    upright = load_inputs(split, rows, 32, cache_dir=cache, aspect=2.0)
    assert upright.shape == (5, 32, 16) and len(list(cache.glob("*.npy"))) == 15


def test_upright_inputs_turn_a_wide_crop_and_use_the_field(monkeypatch):
    """aspect 2: a (64, 32) field; a wide bone crop is turned a quarter so that its long
    side runs down the field."""
    import types

    import boneaug.classify.inputs as inputs_module

    wide = np.zeros((100, 100), np.float32)
    wide[45:55, 10:90] = np.linspace(0.2, 1.0, 80)[None, :]  # a horizontal bone
    monkeypatch.setattr(inputs_module, "read_image", lambda path: wide)
    monkeypatch.setattr(inputs_module, "bone_region",
                        lambda manifest, row, image: (image > 0, "mask"))
    manifest = types.SimpleNamespace(resolve=lambda path: path)
    upright = inputs_module.classifier_input(manifest, {"path": "a.png"}, 64, aspect=2.0)
    square = inputs_module.classifier_input(manifest, {"path": "a.png"}, 64)
    assert upright.shape == (64, 32) and square.shape == (64, 64)
    # the bone now runs top to bottom: its brightness changes along the rows
    column = upright[:, upright.shape[1] // 2]
    assert (column > 0).sum() >= 60 and abs(column[4] - column[-5]) > 0.5
    # the square keeps it horizontal; the same 64 px carry the bone's length in both
    assert (square[square.shape[0] // 2] > 0).sum() >= 60
    with pytest.raises(BoneaugError, match="aspect"):
        ClassifierConfig.from_dict({"size": 40, "aspect": 3})


# --------------------------------------------------------------------------- strategies


def test_baseline_weighted_oversample_classic(world):
    _, _, split = world
    table = split.table
    train = rows_of(table, "train", "femur")
    n_pos = len(rows_of(table, "train", "femur", 1))
    n_neg = len(train) - n_pos
    assert n_pos >= 3 and n_neg > n_pos  # the fixture is imbalanced, as it should be

    base = select(split, "baseline", bone="femur")
    assert sorted(base.train) == sorted(train)
    assert sorted(base.val) == sorted(rows_of(table, "val", "femur"))
    assert sorted(base.test) == sorted(rows_of(table, "test", "femur"))
    assert base.extra == [] and base.repeat_positives == 1 and base.pos_weight == 1.0
    assert not base.augment
    assert not set(base.train) & set(base.val) | set(base.train) & set(base.test)

    weighted = select(split, "weighted", bone="femur")
    assert sorted(weighted.train) == sorted(train)
    assert weighted.pos_weight == pytest.approx(n_neg / n_pos)

    assert select(split, "oversample", bone="femur", ratio=2).repeat_positives == 3
    assert select(split, "oversample", bone="femur", ratio=1.2).repeat_positives == 2
    balanced = select(split, "oversample", bone="femur").repeat_positives
    assert balanced == max(1, round(n_neg / n_pos))
    assert abs(balanced * n_pos - n_neg) <= n_pos / 2  # about balanced

    classic = select(split, "classic", bone="femur")
    assert classic.augment and sorted(classic.train) == sorted(train)

    pooled = select(split, "baseline")
    assert sorted(pooled.train) == sorted(train + rows_of(table, "train", "tibia"))


def test_extra_positives_ratio_nesting_and_seed(world):
    _, _, split = world
    extra = extra_manifest(split)
    n_pos = len(rows_of(split.table, "train", "femur", 1))
    chosen = {}
    for ratio in (0.5, 1.0, 2.0):
        sel = select(split, "gan", bone="femur", extra=extra, ratio=ratio, seed=0)
        assert sel.extra_manifest is extra
        assert len(sel.extra) == round(ratio * n_pos)
        ids = set(extra.table.loc[sel.extra, "image_id"])
        assert len(ids) == len(sel.extra) and ids <= usable_extra_ids(extra)
        assert sorted(sel.train) == sorted(rows_of(split.table, "train", "femur"))
        assert sel.info["n_train_pos_extra"] == len(sel.extra)
        chosen[ratio] = ids
    assert chosen[0.5] < chosen[1.0] < chosen[2.0]  # nested for one seed
    other = select(split, "gan", bone="femur", extra=extra, ratio=1.0, seed=1)
    assert set(extra.table.loc[other.extra, "image_id"]) != chosen[1.0]
    again = select(split, "gan", bone="femur", extra=extra, ratio=1.0, seed=0)
    assert again.extra == select(split, "gan", bone="femur", extra=extra, ratio=1.0).extra
    # without a ratio: every usable extra
    assert len(select(split, "gan", bone="femur", extra=extra).extra) == 12


def test_tstr_has_no_real_positive_in_train(world):
    _, _, split = world
    extra = extra_manifest(split)
    n_pos = len(rows_of(split.table, "train", "femur", 1))
    sel = select(split, "tstr", bone="femur", extra=extra, ratio=1.0)
    assert sorted(sel.train) == sorted(rows_of(split.table, "train", "femur", 0))
    assert set(split.table.loc[sel.train, "label"]) == {0}
    assert len(sel.extra) == n_pos
    assert set(split.table.loc[sel.val, "label"]) == {0, 1}


def test_oracle_takes_real_extra_rows(world):
    _, _, split = world
    table = split.table
    femur_pos = table[(table["bone"] == "femur") & (table["label"] == 1)]
    held = Manifest(relabelled(femur_pos, "held", split="", origin="real"), split.root,
                    Path("held.csv"))
    sel = select(split, "oracle", bone="femur", extra=held, ratio=1.0)
    n_pos = len(rows_of(table, "train", "femur", 1))
    assert len(sel.extra) == n_pos
    assert set(held.table.loc[sel.extra, "origin"]) == {"real"}
    with pytest.raises(BoneaugError, match="no extra positive"):
        select(split, "gan", bone="femur", extra=held, ratio=1.0)


def test_negatives_from_adds_region_normals_only(world):
    _, _, split = world
    table = split.table.copy()
    table.loc[table["bone"] == "tibia", "bone"] = "lower_limb"
    region = Manifest(table, split.root, split.source)
    sel = select(region, "baseline", bone="femur", negatives_from=("lower_limb",))
    expected = (rows_of(table, "train", "femur") + rows_of(table, "train", "lower_limb", 0))
    assert sorted(sel.train) == sorted(expected)
    assert not set(rows_of(table, "train", "lower_limb", 1)) & set(sel.train)
    assert set(rows_of(table, "val", "lower_limb", 0)) <= set(sel.val)
    plain = select(region, "baseline", bone="femur")
    assert set(table.loc[plain.train, "bone"]) == {"femur"}
    with pytest.raises(BoneaugError, match="negatives_from 'lower_limbs': no film has"):
        select(region, "baseline", bone="femur", negatives_from=("lower_limbs",))


def test_select_errors(world):
    _, raw, split = world
    extra = extra_manifest(split, n_femur=3)
    with pytest.raises(BoneaugError, match="unknown strategy 'mixup'"):
        select(split, "mixup", bone="femur")
    with pytest.raises(BoneaugError, match="takes no ratio"):
        select(split, "baseline", bone="femur", ratio=1.0)
    with pytest.raises(BoneaugError, match="ratio must be a positive"):
        select(split, "gan", bone="femur", extra=extra, ratio=0.0)
    with pytest.raises(BoneaugError, match=r"needs \d+ extra positives, only 3"):
        select(split, "gan", bone="femur", extra=extra, ratio=5.0)
    with pytest.raises(BoneaugError, match="needs extra positives"):
        select(split, "gan", bone="femur", ratio=1.0)  # no --extra, no synthetic rows
    with pytest.raises(BoneaugError, match="has no split"):
        select(raw, "baseline", bone="femur")
    table = split.table.copy()
    table.loc[table["split"] == "val", "label"] = 0
    with pytest.raises(BoneaugError, match="val split needs lesion and normal"):
        select(Manifest(table, split.root, split.source), "baseline", bone="femur")


# --------------------------------------------------------------------------- no leak


@pytest.fixture(scope="module")
def augmented(world) -> Manifest:
    """Real rows + synthetic femur positives (split train), like `synthesize`'s
    augmented.csv, plus one synthetic row wrongly marked val: it must never be used."""
    _, _, split = world
    table = split.table
    femur = table[table["bone"] == "femur"]
    synthetic = relabelled(femur.iloc[:16], "syn", label=1, split="train", origin="synthetic")
    stray = relabelled(femur.iloc[16:17], "stray", label=1, split="val", origin="synthetic")
    combined = pd.concat([table, synthetic, stray], ignore_index=True)
    return Manifest(combined, split.root, Path("augmented.csv"))


@pytest.mark.parametrize("strategy,ratio", [
    ("baseline", None), ("weighted", None), ("oversample", 1.0), ("classic", None),
    ("copypaste", 1.0), ("gan", 2.0), ("gan-gated", None), ("gan-transfer", 1.0),
    ("tstr", 1.0)])
def test_no_synthetic_image_in_val_or_test(augmented, strategy, ratio):
    table = augmented.table
    for bone in ("femur", None):
        sel = select(augmented, strategy, bone=bone, ratio=ratio, seed=3)
        assert set(table.loc[sel.val + sel.test, "origin"]) == {"real"}
        assert set(table.loc[sel.train, "origin"]) == {"real"}  # extras are kept apart
        if sel.extra:
            extras = table.loc[sel.extra]
            assert set(extras["origin"]) == {"synthetic"} and set(extras["split"]) == {"train"}
            assert not set(sel.extra) & set(sel.val + sel.test)


def test_oracle_never_takes_synthetic_or_training_rows_as_real_positives(augmented, world):
    _, _, split = world
    # without --extra the oracle would take the augmented manifest's synthetic rows
    with pytest.raises(BoneaugError, match="oracle needs --extra"):
        select(augmented, "oracle", bone="femur", ratio=1.0)
    # the training set's own rows as "held-back" positives would be duplicates
    with pytest.raises(BoneaugError, match="also in the main manifest"):
        select(split, "oracle", bone="femur", extra=split, ratio=1.0)


def test_build_training_set_sizes(world, augmented, tmp_path):
    _, _, split = world
    config = ClassifierConfig.from_dict(TINY)
    table = augmented.table
    n_train = len(rows_of(table, "train", "femur"))
    n_pos = len(rows_of(table, "train", "femur", 1))
    val_rows, test_rows = rows_of(table, "val", "femur"), rows_of(table, "test", "femur")
    training, (val_x, val_y), (test_x, test_y, test_ids) = build_training_set(
        augmented, "gan", config, bone="femur", ratio=2.0, cache_dir=tmp_path / "cache")
    assert training.inputs.shape == (n_train + 2 * n_pos, 32, 32)
    assert int(training.labels.sum()) == 3 * n_pos  # real positives + 2x as many extras
    assert val_x.shape == (len(val_rows), 32, 32) and test_x.shape == (len(test_rows), 32, 32)
    assert val_y.tolist() == table.loc[val_rows, "label"].tolist()
    assert test_ids == table.loc[test_rows, "image_id"].tolist()
    assert not any(i.startswith(("syn", "stray")) for i in test_ids)
    assert np.array_equal(val_x, load_inputs(split, val_rows, 32))

    over, _, _ = build_training_set(split, "oversample", config, bone="femur", ratio=2.0)
    assert over.inputs.shape[0] == n_train
    assert over.repeat.tolist() == [3 if y else 1 for y in over.labels]
    assert len(over.epoch_order(np.random.default_rng(0))) == n_train + 2 * n_pos
    weighted, _, _ = build_training_set(split, "weighted", config, bone="femur")
    assert weighted.pos_weight == pytest.approx((n_train - n_pos) / n_pos)
    classic, _, _ = build_training_set(split, "classic", config, bone="femur")
    assert classic.augment


# --------------------------------------------------------------------------- training


def toy_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32 px noise; every other image has a bright 8x8 square somewhere."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, 32, 32)).astype(np.float32)
    y = np.arange(n) % 2
    for i in np.flatnonzero(y):
        r, c = rng.integers(2, 22, 2)
        x[i, r:r + 8, c:c + 8] = 0.9
    return x, y


@pytest.fixture(scope="module")
def toy():
    return toy_set(48, 0), toy_set(24, 1)


@pytest.mark.parametrize("select", ["ema", "best-val"])
def test_training_learns_a_separable_toy_set(toy, select):
    (train_x, train_y), (val_x, val_y) = toy
    config = ClassifierConfig.from_dict({**TINY, "epochs": 4, "select": select})
    seen = []
    trained = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, config, seed=0,
                               on_epoch=seen.append)
    losses = [row["train_loss"] for row in trained.history]
    assert seen == trained.history and len(losses) == 4
    assert losses[-1] < 0.6 * losses[0]
    assert trained.best_val_auc > 0.9
    probs = predict(trained.model, val_x, config)
    assert probs.shape == (24,) and 0 <= probs.min() and probs.max() <= 1
    assert roc_auc(val_y, probs) > 0.9
    if select == "best-val":  # the chosen epoch is the best one
        assert trained.best_val_auc == max(row["val_auc"] for row in trained.history)
        assert probs[val_y == 1].mean() > probs[val_y == 0].mean() + 0.2
    else:  # nothing chosen: the averaged weights at the end of the budget
        assert trained.best_epoch == 4 and trained.best_val_auc == seen[-1]["val_auc"]
        assert probs[val_y == 1].mean() > probs[val_y == 0].mean() + 0.05


def test_ema_scores_validation_at_a_few_epochs_and_the_model_does_not_depend_on_it(
        toy, monkeypatch):
    (train_x, train_y), (val_x, val_y) = toy
    config = ClassifierConfig.from_dict({**TINY, "epochs": 10, "steps_per_epoch": 2})
    sparse = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, config, seed=1)
    scored = [row["epoch"] for row in sparse.history if np.isfinite(row["val_auc"])]
    assert scored == [2, 4, 6, 8, 10] and len(sparse.history) == 10
    assert sparse.best_val_auc == sparse.history[-1]["val_auc"]
    monkeypatch.setattr(train_module, "VAL_POINTS", 1000)  # every epoch scored
    every = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, config, seed=1)
    assert all(np.isfinite(row["val_auc"]) for row in every.history)
    for (name, a), b in zip(sparse.model.state_dict().items(),
                            every.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert every.best_val_auc == sparse.best_val_auc


def faint_set(n: int, positives: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32 px noise; the first `positives` images carry a faint 6x6 square (+0.16)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, 32, 32)).astype(np.float32)
    y = (np.arange(n) < positives).astype(np.int64)
    for i in range(positives):
        r, c = rng.integers(2, 24, 2)
        x[i, r:r + 6, c:c + 6] += 0.16
    return x, y


def test_seeds_agree_on_a_small_faint_set():
    """Few, faint positives (8 of 60): the default classifier (fixed budget, averaged
    weights) gives every seed nearly the same test AUC. Stated bound: sd <= 0.06 over 4
    seeds, none below 0.85. (Choosing the epoch on this 30-image validation set left one
    seed at 0.48 while the others reached 0.96-1.0, sd 0.23: docs/results.md.)"""
    (train_x, train_y), (val_x, val_y) = faint_set(60, 8, 0), faint_set(30, 8, 1)
    test_x, test_y = faint_set(80, 20, 2)
    config = ClassifierConfig.from_dict({**TINY, "width": 8, "epochs": 8, "steps_per_epoch": 6})
    assert config.select == "ema"
    aucs = []
    for seed in range(4):
        trained = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, config,
                                   seed=seed)
        aucs.append(roc_auc(test_y, predict(trained.model, test_x, config)))
    assert min(aucs) >= 0.85, aucs
    assert np.std(aucs, ddof=1) <= 0.06, aucs


def test_lse_head_pools_local_logits_by_a_smooth_maximum():
    """pool: lse scores every cell of the feature map and pools by log-mean-exp (r = 4):
    between the mean and the maximum of the local logits; upright inputs work too."""
    torch.manual_seed(0)
    model = train_module.build_classifier("cnn", 4, "lse").eval()
    x = torch.rand(3, 1, 64, 32)
    with torch.no_grad():
        pooled = model(x)
        backbone = model.backbone
        local = backbone.head(backbone.features(x * 2 - 1).flatten(2).transpose(1, 2))[..., 0]
    assert pooled.shape == (3,)
    assert torch.all(pooled >= local.mean(dim=1) - 1e-5)
    assert torch.all(pooled <= local.max(dim=1).values + 1e-5)
    expected = (torch.logsumexp(4 * local, dim=1) - np.log(local.shape[1])) / 4
    assert torch.allclose(pooled, expected, atol=1e-5)
    with pytest.raises(BoneaugError, match="pool"):
        ClassifierConfig.from_dict({"pool": "lse", "arch": "resnet10"})


def test_thread_count_does_not_change_the_model(toy):
    """Same inputs, config and seed give the same scores with 1 or 2 threads outside:
    training pins its own count (`threads`)."""
    (train_x, train_y), (val_x, val_y) = toy
    # width 8: at width 4 this toy happens to sum alike with 1 and 2 threads even unpinned
    config = ClassifierConfig.from_dict({**TINY, "width": 8, "amp": "auto"})
    before = torch.get_num_threads()
    scores = []
    try:
        for outside in (1, 2):
            torch.set_num_threads(outside)
            trained = train_classifier(TrainingSet(train_x, train_y, augment=True), val_x,
                                       val_y, config, seed=3)
            scores.append(predict(trained.model, val_x, config))
            assert torch.get_num_threads() == outside  # restored afterwards
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(scores[0], scores[1])


def test_same_seed_same_model_other_seed_other_model(toy):
    (train_x, train_y), (val_x, val_y) = toy
    config = ClassifierConfig.from_dict(TINY)

    def scores(seed: int, augment: bool = False) -> np.ndarray:
        trained = train_classifier(TrainingSet(train_x, train_y, augment=augment), val_x, val_y,
                                   config, seed=seed)
        return predict(trained.model, val_x, config)

    a, b, c = scores(0), scores(0), scores(1)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-4)
    # the classic augmentation is seeded too
    assert np.array_equal(scores(2, augment=True), scores(2, augment=True))


def test_training_needs_both_classes(toy):
    (train_x, train_y), (val_x, val_y) = toy
    config = ClassifierConfig.from_dict(TINY)
    with pytest.raises(BoneaugError, match="validation set needs both"):
        train_classifier(TrainingSet(train_x, train_y), val_x, np.zeros_like(val_y), config)
    with pytest.raises(BoneaugError, match="training set needs both"):
        train_classifier(TrainingSet(train_x, np.ones_like(train_y)), val_x, val_y, config)


def count_training_batches(monkeypatch) -> list[int]:
    """Make `train_classifier` record the size of every training-mode forward pass."""
    sizes: list[int] = []
    build = train_module.build_classifier

    def spying(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_hook(
            lambda module, inputs, output: sizes.append(len(inputs[0])) if module.training
            else None)
        return model

    monkeypatch.setattr(train_module, "build_classifier", spying)
    return sizes


def test_steps_per_epoch_is_exact(toy, monkeypatch):
    (train_x, train_y), (val_x, val_y) = toy
    sizes = count_training_batches(monkeypatch)
    epochs: list[dict] = []
    small = TrainingSet(train_x[:10], train_y[:10])  # 10 images, batches of 8: passes overlap
    config = ClassifierConfig.from_dict({**TINY, "epochs": 3, "steps_per_epoch": 5})
    trained = train_classifier(small, val_x, val_y, config, on_epoch=epochs.append)
    assert len(trained.history) == len(epochs) == 3
    assert sizes == [8] * 15

    sizes.clear()
    one_pass = ClassifierConfig.from_dict({**TINY, "epochs": 1})
    train_classifier(TrainingSet(train_x[:20], train_y[:20]), val_x, val_y, one_pass)
    assert sizes == [8, 8, 4]  # one pass over 20 images
    sizes.clear()
    train_classifier(TrainingSet(train_x[:17], train_y[:17]), val_x, val_y, one_pass)
    assert sizes == [8, 8]  # a last batch of one is skipped (BatchNorm needs two)


def test_batch_size_one_trains_or_is_refused(toy, monkeypatch):
    (train_x, train_y), (val_x, val_y) = toy
    sizes = count_training_batches(monkeypatch)
    try:
        config = ClassifierConfig.from_dict({**TINY, "epochs": 1, "batch_size": 1})
    except BoneaugError:
        return  # refusing it is a fine answer
    trained = train_classifier(TrainingSet(train_x[:6], train_y[:6]), val_x, val_y, config)
    assert sizes, "no training step was taken"
    assert trained.history[0]["train_loss"] > 0


@pytest.mark.parametrize("values,match", [
    ({"widht": 8}, "unknown setting 'widht'"),
    ({"arch": "vgg16"}, "arch: must be one of cnn, "),
    ({"crop": "lesion"}, "crop: must be one of bone, image, tiles"),
    ({"size": 16}, r"size: must be an integer >= 32 \(got 16\)"),
    ({"width": 0}, "width: must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs: must be an integer >= 1"),
    ({"batch_size": True}, "batch_size: must be an integer >= 2"),
    ({"steps_per_epoch": -1}, "steps_per_epoch: must be an integer >= 0"),
    ({"lr": -0.1}, "lr: must be a number >= 0"),
    ({"lr": float("nan")}, "lr: must be a number >= 0"),
    ({"weight_decay": "0.1"}, "weight_decay: must be a number >= 0"),
    ({"amp": "yes"}, r"amp: must be one of auto, bf16, off \(or true / false\)"),
    ({"device": "gpu"}, "device: must be one of auto, cpu, cuda, cuda:N"),
])
def test_config_refuses_unknown_keys_and_bad_values(values, match):
    with pytest.raises(BoneaugError, match=match):
        ClassifierConfig.from_dict(values, where="cfg.yaml: classifier")
    with pytest.raises(BoneaugError, match=r"^cfg.yaml: classifier[.:]"):
        ClassifierConfig.from_dict(values, where="cfg.yaml: classifier")


def test_config_round_trip():
    config = ClassifierConfig.from_dict(TINY)
    assert ClassifierConfig.from_dict(config.to_dict()) == config
    assert config.size == 32 and config.amp == "off"  # YAML false: the same as "off"


# --------------------------------------------------------------------------- classify


def test_classify_writes_its_outputs(world, tmp_path):
    _, _, split = world
    table = split.table
    test_rows = rows_of(table, "test", "femur")
    config = ClassifierConfig.from_dict(TINY)
    out = tmp_path / "cls"
    epochs: list[dict] = []
    report = classify(split, "oversample", out, config=config, bone="femur", seed=1,
                      on_epoch=epochs.append)
    assert {p.name for p in out.iterdir()} >= {"model.pt", "history.csv", "predictions.csv",
                                               "metrics.json", "run.json"}
    assert not list(tmp_path.glob(".*partial"))  # the staging folder is gone

    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["image_id", "bone", "label", "score"]
    assert predictions["image_id"].tolist() == table.loc[test_rows, "image_id"].tolist()
    assert predictions["label"].tolist() == table.loc[test_rows, "label"].tolist()
    assert set(predictions["bone"]) == {"femur"}
    assert predictions["score"].between(0, 1).all()

    history = pd.read_csv(out / "history.csv")
    assert len(history) == len(epochs) == 2
    assert list(history.columns) == ["epoch", "train_loss", "val_auc", "val_loss"]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == len(test_rows)
    assert metrics["n_test_pos"] == int(table.loc[test_rows, "label"].sum())
    assert metrics["strategy"] == "oversample" and metrics["seed"] == 1
    assert metrics["test"]["auc"] == pytest.approx(report.test_auc)
    assert 0 <= report.test_auc <= 1 and 1 <= report.best_epoch <= 2

    saved = torch.load(out / "model.pt", weights_only=False)
    assert saved["config"] == config.to_dict()
    assert saved["selection"]["strategy"] == "oversample"
    assert json.loads((out / "run.json").read_text())["command"] == "classify"

    # an earlier classify output may be replaced; someone's folder may not
    classify(split, "baseline", out, config=config, bone="femur")
    assert json.loads((out / "metrics.json").read_text())["strategy"] == "baseline"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("precious")
    with pytest.raises(BoneaugError, match="not empty"):
        classify(split, "baseline", theirs, config=config, bone="femur")
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    # an earlier output that now holds the input manifest is not replaced
    save_manifest(split, out / "manifest.csv")
    inside = load_manifest(out / "manifest.csv")
    with pytest.raises(BoneaugError, match="holds the input"):
        classify(inside, "baseline", out, config=config, bone="femur")
    assert (out / "manifest.csv").is_file() and (out / "model.pt").is_file()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "boneaug", *args], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize("case", ["unknown strategy", "no split"])
def test_cli_classify_errors_are_one_line(world, tmp_path, case):
    root, raw, _ = world
    if case == "unknown strategy":
        manifest, strategy, match = root / "manifest.csv", "mixup", "unknown strategy 'mixup'"
    else:
        manifest, strategy, match = raw.source, "baseline", "has no split"
    done = run_cli("classify", "--manifest", str(manifest), "--strategy", strategy,
                   "--out", str(tmp_path / "out"), "--bone", "femur", "--set", "size=32")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- members


def test_members_average_logits_of_classifiers_trained_apart(toy):
    """members: 2 trains member 0 exactly as the one-member classifier of the seed and
    member 1 with a seed of its own; the model's logit is their mean; the history holds
    both members' rows; the saved weights load into `build_classifier(..., members=2)`."""
    (train_x, train_y), (val_x, val_y) = toy
    one = ClassifierConfig.from_dict(TINY)
    two = ClassifierConfig.from_dict({**TINY, "members": 2})
    assert "members" not in one.to_dict() and two.to_dict()["members"] == 2  # old keys kept
    single = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, one, seed=4)
    seen: list[dict] = []
    pair = train_classifier(TrainingSet(train_x, train_y), val_x, val_y, two, seed=4,
                            on_epoch=seen.append)
    first, second = pair.model.members
    for (name, a), b in zip(single.model.state_dict().items(), first.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(next(first.parameters()), next(second.parameters()))
    x = torch.from_numpy(val_x[:5])[:, None]
    with torch.no_grad():
        assert torch.allclose(pair.model(x), (first(x) + second(x)) / 2, atol=1e-6)
    assert [row["member"] for row in pair.history] == [0] * one.epochs + [1] * one.epochs
    assert seen == pair.history
    assert pair.best_val_auc == roc_auc(val_y, predict(pair.model, val_x, two))
    loaded = train_module.build_classifier(two.arch, two.width, two.pool, two.members)
    loaded.load_state_dict(pair.model.state_dict())
    assert np.array_equal(predict(loaded, val_x, two), predict(pair.model, val_x, two))
    assert train_module.member_seed(4, 0) == 4
    assert len({train_module.member_seed(s, k) for s in range(5) for k in range(1, 4)}) == 15


@pytest.mark.parametrize("values,match", [
    ({"members": 0}, r"members: must be an integer in \[1, 64\]"),
    ({"members": 2, "select": "best-val"}, "members: .*needs select: ema"),
])
def test_members_config_errors(values, match):
    with pytest.raises(BoneaugError, match=match):
        ClassifierConfig.from_dict(values, where="cfg.yaml: classifier")
