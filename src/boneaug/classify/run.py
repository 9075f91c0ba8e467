"""`boneaug classify`: one strategy, one seed -> a trained classifier and its test predictions.

Outputs in ``out_dir`` (written into a staging folder beside it, moved in when complete):

- ``model.pt``: the chosen epoch's weights, the classifier config and the selection info;
- ``history.csv``: train loss, val AUC and val loss per epoch;
- ``predictions.csv``: one row per real *test* image: image_id, bone, label, score;
- ``metrics.json``: test ROC AUC, PR AUC, sensitivity at 90 % specificity, the chosen
  epoch, its val AUC and the training-set counts;
- ``run.json``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from boneaug.classify.inputs import load_inputs
from boneaug.classify.metrics import pr_auc, roc_auc, sensitivity_at_specificity
from boneaug.classify.strategies import select
from boneaug.classify.train import (
    ClassifierConfig,
    TrainingSet,
    member_seed,
    predict,
    train_classifier,
)
from boneaug.data import Manifest
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_not_an_input, check_out_dir, write_json_atomic
from boneaug.runinfo import write_run_json

if TYPE_CHECKING:
    from boneaug.classify.regions import RegionConfig


@dataclass
class ClassifyReport:
    out_dir: Path
    predictions: Path
    test_auc: float
    test_pr_auc: float
    test_sens90: float
    val_auc: float
    best_epoch: int
    info: dict[str, Any]


def score_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC and sensitivity at 90 % specificity of one set of test scores."""
    return {"auc": roc_auc(labels, scores), "pr_auc": pr_auc(labels, scores),
            "sens90": sensitivity_at_specificity(labels, scores, 0.9)}


def build_training_set(manifest: Manifest, strategy: str, config: ClassifierConfig, *,
                       bone: str | None = None, extra: Manifest | None = None,
                       ratio: float | None = None, seed: int = 0,
                       cache_dir: str | Path | None = None,
                       negatives_from: tuple[str, ...] = ()
                       ) -> tuple[TrainingSet, tuple[np.ndarray, np.ndarray],
                                  tuple[np.ndarray, np.ndarray, list[str]]]:
    """The strategy's training set, the (inputs, labels) of val and of test (+ test ids)."""
    sel = select(manifest, strategy, bone=bone, extra=extra, ratio=ratio, seed=seed,
                 negatives_from=negatives_from)
    table = manifest.table
    failures: dict[Any, str] = {}

    def inputs(source: Manifest, rows: list) -> np.ndarray:
        return load_inputs(source, rows, config.size, config.crop, cache_dir, failures,
                           config.aspect)

    def usable(rows: list) -> tuple[np.ndarray, np.ndarray, list]:
        """Inputs and labels of `rows` without the films that could not be read: a film
        that fails fails for every strategy, so the sets stay the same across them."""
        x = inputs(manifest, rows)
        keep = [k for k, r in enumerate(rows) if r not in failures]
        kept = [rows[k] for k in keep]
        return x[keep], table.loc[kept, "label"].to_numpy(np.int64), kept

    train_x, train_y, _ = usable(sel.train)
    if sel.extra:
        assert sel.extra_manifest is not None
        extra_failures: dict[Any, str] = {}
        extra_x = load_inputs(sel.extra_manifest, sel.extra, config.size, config.crop,
                              cache_dir, extra_failures, config.aspect)
        if extra_failures:  # boneaug made them: a missing one is a broken run, not a film
            raise BoneaugError(f"{sel.extra_manifest.source}: an extra positive cannot be "
                               f"read: {next(iter(extra_failures.values()))}")
        train_x = np.concatenate([train_x, extra_x])
        train_y = np.concatenate([train_y, np.ones(len(sel.extra), np.int64)])
    repeat = np.where(train_y == 1, sel.repeat_positives, 1).astype(np.int64)
    info = dict(sel.info or {})
    val_x, val_y, _ = usable(sel.val)
    test_x, test_y, test_rows = usable(sel.test)
    if failures:
        info["skipped_films"] = sorted(f"{table.at[r, 'image_id']}: {why}"
                                       for r, why in failures.items() if r in table.index)
    training = TrainingSet(train_x, train_y, repeat=repeat, pos_weight=sel.pos_weight,
                           augment=sel.augment, info=info)
    test_ids = table.loc[test_rows, "image_id"].astype(str).tolist()
    return training, (val_x, val_y), (test_x, test_y, test_ids)


def classify(manifest: Manifest, strategy: str, out_dir: str | Path, *,
             config: ClassifierConfig | None = None, bone: str | None = None,
             extra: Manifest | None = None, ratio: float | None = None, seed: int = 0,
             cache_dir: str | Path | None = None, negatives_from: tuple[str, ...] = (),
             on_epoch: Any = None, regions: RegionConfig | None = None) -> ClassifyReport:
    """Train `strategy`'s classifier of `bone` (None: pooled over bones); see module doc.
    `regions`: the lesion scale of ``crop: tiles`` (`boneaug.classify.tiles`)."""
    started = time.time()
    config = config or ClassifierConfig()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, "classify")
    check_not_an_input(out_dir, [*manifest.files(), *(extra.files() if extra else [])],
                       "classify")
    common = dict(bone=bone, extra=extra, ratio=ratio, seed=seed, cache_dir=cache_dir,
                  negatives_from=negatives_from)
    if config.crop == "tiles":
        # here, not at the top: tiles and regions use this module's ClassifyReport
        from boneaug.classify.regions import RegionConfig
        from boneaug.classify.tiles import build_tile_trainings

        # each member sees the same films through grids shifted by its own seed
        sets, (val_x, val_y), tiles = build_tile_trainings(
            manifest, strategy, config, regions or RegionConfig(), **common,
            draws=[member_seed(seed, k) for k in range(config.members)])
        training = sets[0]
        test_x, test_y, test_ids = tiles.inputs, tiles.film_labels, tiles.film_ids
    else:
        training, (val_x, val_y), (test_x, test_y, test_ids) = build_training_set(
            manifest, strategy, config, **common)
        sets = [training] * config.members  # other starts and batch orders only
    trained = train_classifier(sets, val_x, val_y, config, seed=seed, on_epoch=on_epoch)
    scores = predict(trained.model, test_x, config)
    if config.crop == "tiles":
        scores = tiles.pooled(scores)
    metrics = score_metrics(test_y, scores)
    info = dict(training.info)
    info.update({"n_train": int(len(training.labels)), "seed": seed,
                 "extra_manifest": str(extra.source) if extra is not None else None})

    staging = out_dir.resolve().parent / f".{out_dir.resolve().name}.classify.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with atomic_path(staging / "model.pt") as tmp:
            torch.save({"state_dict": trained.model.state_dict(), "config": config.to_dict(),
                        "selection": info}, tmp)
        pd.DataFrame(trained.history).to_csv(staging / "history.csv", index=False)
        bone_of = manifest.table.set_index(manifest.table["image_id"].astype(str))["bone"]
        pd.DataFrame({"image_id": test_ids, "bone": [bone_of[i] for i in test_ids],
                      "label": test_y, "score": scores}).to_csv(
            staging / "predictions.csv", index=False)
        summary = {"test": metrics, "best_epoch": trained.best_epoch,
                   "val_auc": trained.best_val_auc, "epochs_run": len(trained.history),
                   "train_seconds": round(trained.seconds, 2), "device": trained.device,
                   "n_test": len(test_ids), "n_test_pos": int(test_y.sum()), **info}
        write_json_atomic(staging / "metrics.json", summary)
        write_run_json(staging, "classify", {"strategy": strategy, "bone": bone,
                                             "ratio": ratio, "classifier": config.to_dict(),
                                             "manifest": str(manifest.source)}, seed, started,
                       extra={"metrics": metrics})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ClassifyReport(out_dir, out_dir / "predictions.csv", metrics["auc"],
                          metrics["pr_auc"], metrics["sens90"], trained.best_val_auc,
                          trained.best_epoch, info)
