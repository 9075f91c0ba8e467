"""The shortcut probe: in-painting, decoys, grouped folds, and the probes themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boneaug.classify.metrics import roc_auc
from boneaug.classify.probe import (
    WARN_AUC,
    ProbeResult,
    _assign_folds,
    decoy_boxes,
    film_features,
    format_probe,
    grouped_cv_scores,
    inpaint_boxes,
    metadata_features,
    probe_arrays,
    probe_films,
)
from boneaug.data import Manifest, new_table, write_png16
from boneaug.errors import BoneaugError

N_BOOT = 100  # the interval's width is not under test; keep the bootstrap cheap


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth background: a linear ramp in both directions, in [0.2, 0.9]."""
    yy, xx = np.mgrid[0:height, 0:width]
    return (0.2 + 0.5 * xx / width + 0.2 * yy / height).astype(np.float32)


# --------------------------------------------------------------------------- in-painting


@pytest.mark.parametrize("blob", [0.6, -0.2])
def test_inpaint_removes_a_blob_and_keeps_the_rest(blob: float) -> None:
    background = gradient()
    image = background.copy()
    image[20:30, 25:40] += blob           # a bright or dark lesion filling the box
    before = image.copy()
    out = inpaint_boxes(image, [[25, 20, 40, 30]])
    assert np.array_equal(image, before)  # the input is not modified
    assert out.dtype == np.float32 and out.shape == image.shape
    inside = (slice(18, 32), slice(23, 42))   # the box grown by 2 px
    assert abs(out[inside].mean() - background[inside].mean()) < 0.05
    assert np.abs(out[inside] - background[inside]).max() < 0.02  # a ramp is reproduced
    outside = np.ones(image.shape, bool)
    outside[inside] = False
    assert np.array_equal(out[outside], image[outside])


def test_inpaint_is_smooth_on_noise_and_handles_edges_and_neighbours() -> None:
    rng = np.random.default_rng(1)
    image = (0.5 + 0.05 * rng.standard_normal((48, 48))).astype(np.float32)
    image[0:10, 0:10] = 1.0              # a lesion in the corner of the film
    image[20:26, 20:26] = 1.0            # two lesions side by side: neither may leak
    image[20:26, 29:35] = 1.0            # into the other's blank
    boxes = [[0, 0, 10, 10], [20, 20, 26, 26], [29, 20, 35, 26], [100, 100, 120, 120]]
    out = inpaint_boxes(image, boxes)
    assert np.isfinite(out).all()
    for sl in [(slice(0, 12), slice(0, 12)), (slice(18, 28), slice(18, 37))]:
        assert abs(out[sl].mean() - 0.5) < 0.05
        assert out[sl].std() < 0.03      # smooth: less than the surroundings' noise
    assert np.array_equal(out[40:, :], image[40:, :])


def test_inpaint_is_fast() -> None:
    image = np.random.default_rng(0).random((256, 256)).astype(np.float32)
    boxes = [[30, 30, 90, 80], [100, 150, 160, 200], [200, 10, 250, 60]]
    best = min(_timed(inpaint_boxes, image, boxes) for _ in range(5))
    assert best < 0.05  # target well under 10 ms; the margin is for a busy machine


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- decoys, features


def test_decoys_keep_relative_position_and_size() -> None:
    references = [[[10, 20, 30, 40]], [], [[0, 0, 50, 25], [60, 10, 80, 30]]]
    shapes = [(100, 50), (64, 64), (50, 100)]
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        decoys = decoy_boxes(references, shapes, (200, 200), rng)
        assert decoys in ([[40.0, 40.0, 120.0, 80.0]],
                          [[0.0, 0.0, 100.0, 100.0], [120.0, 40.0, 160.0, 120.0]])
        seen.add(len(decoys))
    assert seen == {1, 2}  # both positives with boxes are drawn, never the one without
    assert decoy_boxes([[]], [(10, 10)], (20, 20), rng) == []


def test_film_features_is_an_area_average_thumbnail() -> None:
    image = np.zeros((32, 48), np.float32)
    image[:, 24:] = 1.0                   # right half bright
    features = film_features(image, side=4)
    assert features.shape == (16,)
    assert np.allclose(features.reshape(4, 4), [[0, 0, 1, 1]] * 4)
    assert film_features(gradient(), side=8).mean() == pytest.approx(gradient().mean(),
                                                                     abs=1e-3)


# --------------------------------------------------------------------------- metadata


def test_metadata_features_columns_and_missing_levels() -> None:
    table = pd.DataFrame({"age": ["45", "", "067Y", 12], "Gender": ["M", "f", "", "m"],
                          "center": ["", "", "", ""], "view": ["ap", "lat", "ap", None],
                          "other": [1, 2, 3, 4]})
    x, used = metadata_features(table)
    assert used == ["age", "Gender", "view"]  # center is empty, other is unknown
    # age: z + bands {10, 40, 60, missing}; gender {f, m, missing}; view {ap, lat, missing}
    assert x.shape == (4, 1 + 4 + 3 + 3)
    assert x[1, 0] == 0.0                  # a missing age sits at the mean
    assert np.allclose(x[:, 1:].sum(axis=1), 3)   # one level per categorical block
    x_none, none = metadata_features(pd.DataFrame({"path": ["a", "b"]}))
    assert x_none.shape == (2, 0) and none == []
    with pytest.raises(BoneaugError, match="no column 'sex'"):
        metadata_features(table, ["sex"])


# --------------------------------------------------------------------------- folds


def test_folds_never_split_a_group_and_hold_both_classes() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), rng.integers(1, 4, 40))
    # patients with lesions, patients without, and patients with both kinds of film
    kind = rng.integers(0, 3, 40)[groups]
    y = np.where(kind == 2, rng.integers(0, 2, groups.shape[0]), kind).astype(float)
    fold = _assign_folds(y, groups, 5, seed=0)
    for g in np.unique(groups):
        assert np.unique(fold[groups == g]).shape[0] == 1
    for f in range(5):
        assert set(y[fold == f]) == {0.0, 1.0}
    assert np.array_equal(fold, _assign_folds(y, groups, 5, seed=0))
    assert not np.array_equal(fold, _assign_folds(y, groups, 5, seed=1))


def test_grouped_cv_scores_is_deterministic_and_needs_two_groups_per_class() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([1, 0], 30)
    x = rng.standard_normal((60, 5)) + y[:, None] * 1.5
    groups = np.arange(60) // 2
    scores = grouped_cv_scores(x, y, groups, seed=4)
    assert scores.shape == (60,)
    assert np.array_equal(scores, grouped_cv_scores(x, y, groups, seed=4))
    assert roc_auc(y, scores) > 0.9
    with pytest.raises(BoneaugError, match="at least 2 groups"):
        grouped_cv_scores(x, y, np.where(y == 1, 0, np.arange(60)))


# --------------------------------------------------------------------------- probes


def make_films(n: int, *, shortcut: float, lesion: float, seed: int, size: int = 32
               ) -> tuple[list[np.ndarray], np.ndarray, list[list[list[float]]], np.ndarray]:
    """`n` lesion and `n` normal films with random smooth backgrounds and noise.

    Positives carry a bright square `lesion` strictly inside their box, and are `shortcut`
    brighter everywhere; normals have no box. Two films per patient, of one class. The
    film-to-film level varies with SD 0.1, so `shortcut` 0.25 is a clear but not perfect cue.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, boxes = [], []
    labels = np.repeat([1, 0], n)
    for label in labels:
        level = 0.4 + 0.1 * rng.standard_normal() + shortcut * label
        slope_x, slope_y = 0.2 * rng.standard_normal(2)
        image = level + slope_x * (xx - 0.5) + slope_y * (yy - 0.5)
        image = image + 0.03 * rng.standard_normal((size, size))
        film_boxes: list[list[float]] = []
        if label:
            x0, y0 = (int(v) for v in rng.integers(6, size - 16, 2))
            image[y0 + 2:y0 + 8, x0 + 2:x0 + 8] += lesion
            film_boxes = [[float(x0), float(y0), x0 + 10.0, y0 + 10.0]]
        images.append(np.clip(image, 0, 1).astype(np.float32))
        boxes.append(film_boxes)
    return images, labels, boxes, np.arange(2 * n) // 2


def test_probe_finds_a_shortcut_outside_the_lesion() -> None:
    images, labels, boxes, groups = make_films(60, shortcut=0.25, lesion=0.3, seed=0)
    result = probe_arrays(images, labels, boxes, groups, bone="femur", n_boot=N_BOOT)
    assert result.auc > 0.8
    assert result.ci[0] <= result.auc <= result.ci[1]
    assert (result.n_pos, result.n_neg, result.folds) == (60, 60, 5)
    assert result.metadata_auc is None and result.metadata_ci is None
    assert "femur (image level): a lesion-blind classifier" in result.warning
    assert f"(> {WARN_AUC})" in result.warning


def test_probe_is_blind_to_the_lesion_itself() -> None:
    images, labels, boxes, groups = make_films(60, shortcut=0.0, lesion=0.3, seed=1)
    # The lesion is visible to the same classifier when it is not blanked ...
    raw = np.stack([film_features(im) for im in images])
    assert roc_auc(labels, grouped_cv_scores(raw, labels, groups)) > 0.8
    # ... and the probe does not see it.
    result = probe_arrays(images, labels, boxes, groups, bone="tibia", n_boot=N_BOOT)
    assert abs(result.auc - 0.5) < 0.15
    assert result.warning == ""
    # One flat box per item (as a RegionSet holds them) means the same; channel-first too.
    flat = [b[0] if b else [] for b in boxes]
    same = probe_arrays([im[None] for im in images], labels, flat, groups, bone="tibia",
                        n_boot=N_BOOT)
    assert same == result


def test_metadata_probe() -> None:
    images, labels, boxes, groups = make_films(60, shortcut=0.0, lesion=0.3, seed=2)
    rng = np.random.default_rng(5)
    old = pd.DataFrame({"age": np.where(labels == 1, 60, 30) + rng.normal(0, 8, 120),
                        "sex": rng.choice(["F", "M"], 120)})
    result = probe_arrays(images, labels, boxes, groups, bone="humerus", when="after matching",
                          metadata=old, n_boot=N_BOOT)
    assert result.metadata_columns == ["age", "sex"]
    assert result.metadata_auc is not None and result.metadata_auc > 0.9
    assert "humerus (image level, after matching): the metadata alone (age, sex)" in \
        result.warning
    random = pd.DataFrame({"age": rng.normal(45, 15, 120), "gender": rng.choice(["F", "M"], 120),
                           "view": rng.choice(["ap", "lat", ""], 120)})
    result = probe_arrays(images, labels, boxes, groups, bone="humerus", metadata=random,
                          n_boot=N_BOOT)
    assert result.metadata_auc is not None and result.metadata_auc < 0.65


def test_round_trip_and_format() -> None:
    result = ProbeResult(bone="femur", level="region", when="", n_pos=10, n_neg=12,
                         auc=0.71, ci=(0.6, 0.8), metadata_auc=0.55, metadata_ci=(0.4, 0.7),
                         metadata_columns=["age"], folds=5, skipped=2)
    data = json.loads(json.dumps(result.to_dict()))
    assert ProbeResult.from_dict(data) == result
    data.pop("skipped")
    assert ProbeResult.from_dict(data).skipped == 0
    text = format_probe([result])
    assert "0.71 [0.60, 0.80]" in text and "0.55 [0.40, 0.70]" in text
    assert "warning: femur (region level): a lesion-blind classifier separates lesion " \
           "regions from healthy regions at AUC 0.71" in text
    assert "metadata alone" not in text
    # above the line, but the interval holds chance: undecided, not a shortcut
    unsure = ProbeResult.from_dict({**result.to_dict(), "auc": 0.63, "ci": [0.41, 0.8]})
    assert "0.63 [0.41, 0.80]" in unsure.warning and "too few films" in unsure.warning
    assert "can be won" not in unsure.warning
    # just above the line: three decimals, never "0.60 (> 0.6)"
    edge = ProbeResult.from_dict({**result.to_dict(), "auc": 0.6004, "ci": [0.55, 0.65]})
    assert "AUC 0.600 (> 0.6)" in edge.warning


def test_too_few_positives_is_one_clear_error() -> None:
    images, labels, boxes, groups = make_films(10, shortcut=0.0, lesion=0.3, seed=3)
    keep = [0, 1] + list(range(10, 20))   # two positives, of one patient
    with pytest.raises(BoneaugError, match=r"femur \(image level\) shortcut probe: needs"):
        probe_arrays([images[i] for i in keep], labels[keep], [boxes[i] for i in keep],
                     groups[keep], bone="femur", n_boot=N_BOOT)


def test_probe_films_reads_the_manifest_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    images, labels, boxes, groups = make_films(20, shortcut=0.3, lesion=0.3, seed=4)
    rows = []
    for i, (image, label, film_boxes) in enumerate(zip(images, labels, boxes, strict=True)):
        write_png16(tmp_path / f"f{i}.png", image)
        rows.append({"image_id": f"f{i}", "path": f"f{i}.png", "patient_id": f"p{groups[i]}",
                     "bone": "femur", "label": int(label), "boxes": film_boxes,
                     "age": str(50 + 10 * label + i % 7), "split": "train"})
    rows.append({"image_id": "gone", "path": "gone.png", "patient_id": "px", "bone": "femur",
                 "label": 0, "boxes": [], "split": "train"})
    rows.append({"image_id": "nobox", "path": "f0.png", "patient_id": "py", "bone": "femur",
                 "label": 1, "boxes": [], "split": "train"})
    manifest = Manifest(new_table(rows), root=tmp_path)
    table = manifest.table
    positives = table.index[table["label"] == 1].tolist()
    negatives = table.index[table["label"] == 0].tolist()
    result = probe_films(manifest, positives, negatives, bone="femur", when="before matching",
                         n_boot=N_BOOT)
    assert (result.n_pos, result.n_neg, result.skipped) == (20, 20, 2)
    assert result.auc > 0.8
    assert result.metadata_columns == ["age"] and result.metadata_auc is not None
    assert result.metadata_auc > 0.9
    assert result.when == "before matching" and result.level == "image"
