"""Strategies: the named ways to build a classifier's training set from real and extra data.

Every strategy trains on the real ``train`` rows of the bone (or of all bones, pooled) and
chooses its model on the real ``val`` rows; only the training set differs:

=================  ===========================================================================
``baseline``       the real training images as they are
``weighted``       the same, with the loss of a positive weighted by negatives / positives
``oversample``     the same, each real positive repeated 1 + R times per epoch (R = ratio;
                   without a ratio, repeated until the classes are about balanced)
``classic``        the same, with flips, small rotations / scaling, elastic and intensity
                   augmentation (`train.classic_augmentation`)
``copypaste``      plus R x (real positives) extra positives: real lesions pasted into
                   normal train images (`boneaug.synth.copy_paste_translator`)
``gan``            plus R x (real positives) CycleGAN synthetic positives of this bone
``gan-gated``      the same, after the quality gate dropped the unconvincing ones
``gan-transfer``   plus R x (real positives) synthetic positives from another bone's generator
``oracle``         plus R x (real positives) *real* positives held back from training
                   (the training positives that rarity held back: the upper bound that
                   augmentation tries to reach)
``tstr``           train-synthetic-test-real: the real negatives and the extra (synthetic)
                   positives only, no real positive; a measure of how real the synthetic
                   lesions look to a classifier
=================  ===========================================================================

The extra positives come from a second manifest (`extra`): a synthesis run's
``synthetic.csv`` (or ``augmented.csv``), or for the oracle a manifest of held-back real
positives. Which R x n of them are used is a seeded random choice; for one seed a smaller
ratio's extras are a subset of a larger ratio's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from boneaug.data import Manifest
from boneaug.data.films import check_negatives_from, normals_of, positives_of
from boneaug.errors import BoneaugError

STRATEGIES = ("baseline", "weighted", "oversample", "classic", "copypaste", "gan",
              "gan-gated", "gan-transfer", "oracle", "tstr")
USES_EXTRA = frozenset({"copypaste", "gan", "gan-gated", "gan-transfer", "oracle", "tstr"})
USES_RATIO = USES_EXTRA | {"oversample"}


@dataclass
class Selection:
    """The rows a strategy uses: index labels of the main manifest (`train`, `val`, `test`)
    and of the extra manifest (`extra`), and how the training set is shaped."""

    train: list
    val: list
    test: list
    extra: list
    repeat_positives: int = 1
    pos_weight: float = 1.0
    augment: bool = False
    info: dict[str, Any] | None = None
    extra_manifest: Manifest | None = None  # the manifest `extra` indexes


def _real(table: pd.DataFrame, split: str, bone: str | None,
          negatives_from: tuple[str, ...] = ()) -> pd.Series:
    chosen = (table["split"] == split) & (table["origin"] == "real")
    if bone is not None:
        chosen &= positives_of(table, bone) | normals_of(table, bone, negatives_from)
    return chosen


def select(manifest: Manifest, strategy: str, *, bone: str | None = None,
           extra: Manifest | None = None, ratio: float | None = None,
           seed: int = 0, negatives_from: tuple[str, ...] = ()) -> Selection:
    """Choose the rows of `strategy` (see the module doc); one clear error if impossible.

    A bone's rows are its positives and the normal films of that bone
    (`boneaug.data.films`: the bone column, or the bones `boneaug bones` assigned to films
    labelled by region). `negatives_from`: bone or region names whose normal images also
    count as normals of `bone` (the older "all normals of the limb" rule).
    """
    if strategy not in STRATEGIES:
        raise BoneaugError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if ratio is not None and (not np.isfinite(ratio) or ratio <= 0):
        raise BoneaugError(f"ratio must be a positive number, got {ratio}")
    if ratio is not None and strategy not in USES_RATIO:
        raise BoneaugError(f"strategy {strategy!r} takes no ratio")
    table = manifest.table
    name = str(manifest.source or "manifest")
    if not (table["split"] != "").any():
        raise BoneaugError(f"{name}: has no split; run `boneaug split` first")
    where = f"{name}" + (f" (bone {bone})" if bone else "")
    check_negatives_from(table, negatives_from, name)
    train, val, test = (table.index[_real(table, split, bone, negatives_from)].tolist()
                        for split in ("train", "val", "test"))
    for split, rows in (("train", train), ("val", val), ("test", test)):
        labels = table.loc[rows, "label"]
        if labels.nunique() < 2 and not (split == "train" and strategy == "tstr"):
            raise BoneaugError(f"{where}: the real {split} split needs lesion and normal "
                               f"images; it has {int(labels.sum())} lesion of {len(rows)}")
    positives = [r for r in train if table.at[r, "label"] == 1]
    negatives = [r for r in train if table.at[r, "label"] == 0]
    selection = Selection(train=train, val=val, test=test, extra=[])
    info: dict[str, Any] = {"strategy": strategy, "bone": bone or "pooled", "ratio": ratio,
                            "n_train_pos_real": len(positives), "n_train_neg": len(negatives)}

    if strategy == "weighted":
        selection.pos_weight = len(negatives) / len(positives)
    elif strategy == "oversample":
        selection.repeat_positives = (1 + int(round(ratio)) if ratio is not None
                                      else max(1, round(len(negatives) / len(positives))))
    elif strategy == "classic":
        selection.augment = True
    elif strategy in USES_EXTRA:
        selection.extra_manifest, selection.extra = _extras(
            manifest, extra, strategy, bone, ratio, len(positives), seed, where)
        if strategy == "tstr":
            selection.train = negatives
            info["n_train_pos_real"] = 0  # it trains on none (they exist: the other runs)
    info.update({"n_train_pos_extra": len(selection.extra),
                 "repeat_positives": selection.repeat_positives,
                 "pos_weight": selection.pos_weight, "augment": selection.augment})
    selection.info = info
    return selection


def _extras(manifest: Manifest, extra: Manifest | None, strategy: str, bone: str | None,
            ratio: float | None, real_positives: int, seed: int, where: str
            ) -> tuple[Manifest, list]:
    if extra is None and strategy == "oracle":
        raise BoneaugError(f"{where}: the oracle needs --extra: a manifest of held-back real "
                           "positives (never the training set's own rows)")
    given = extra is not None
    if extra is None:  # an augmented manifest carries its synthetic rows itself
        extra = manifest
        table = extra.table
        usable = (table["origin"] == "synthetic") & (table["split"] == "train")
        if not usable.any():
            raise BoneaugError(f"{where}: strategy {strategy!r} needs extra positives: give "
                               "--extra (a synthesis run's synthetic.csv, or held-back real "
                               "positives for the oracle)")
    else:
        table = extra.table
        usable = (table["split"].isin(["train", ""])) & (table["label"] == 1)
        if strategy != "oracle":
            usable &= table["origin"] == "synthetic"
    if bone is not None:
        usable &= table["bone"] == bone
    usable &= table["label"] == 1
    name = str(extra.source or "extra manifest")
    if given:
        twice = set(table.loc[usable, "image_id"]) & set(manifest.table["image_id"])
        if twice:
            raise BoneaugError(f"{name}: image {sorted(twice)[0]} is also in the main manifest "
                               f"(and {len(twice) - 1} more); extra positives must be images "
                               "the training set does not already hold")
    pool = table.index[usable].tolist()
    if not pool and strategy == "gan-gated":  # the gate may drop every synthetic image
        return extra, []
    if not pool:
        raise BoneaugError(f"{name}: no extra positive train image"
                           + (f" of bone {bone}" if bone else ""))
    if ratio is None:
        wanted = len(pool)
    else:
        if real_positives == 0:
            raise BoneaugError(f"{where}: no real positive train image, so the ratio has "
                               "nothing to multiply")
        wanted = max(1, int(round(ratio * real_positives)))
        if wanted > len(pool):
            raise BoneaugError(f"{name}: ratio {ratio:g} x {real_positives} real positives "
                               f"needs {wanted} extra positives, only {len(pool)} are there")
    order = np.random.default_rng([seed, 7]).permutation(len(pool))
    return extra, [pool[i] for i in order[:wanted]]
