"""Phantom calibration: the default classifier's learning curve against real positives.

The benchmark is only meaningful if the low-data regime is hard and the high-data regime
is good. This renders phantom radiographs, splits them by patient, fixes the training
negatives, and trains the baseline classifier (the experiment config's `classifier`
section) on 10, 30, 100, 300 real positives per bone (subsets nested per seed), K seeds
each; val and test keep every image. It prints a markdown table of test ROC AUC mean ± sd
per bone and writes the per-run numbers to --out/curve.csv.

    .venv/bin/python benchmarks/phantom_calibration.py --config configs/phantom-full.yaml \
        --positives 10,30,100,300 --seeds 2 --out runs/calibration
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from boneaug.classify import classify
from boneaug.config import parse_overrides
from boneaug.data import Manifest, load_manifest, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.experiment import load_experiment_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/phantom-full.yaml")
    parser.add_argument("--positives", default="10,30,100,300")
    parser.add_argument("--negatives", type=int, default=300, help="train normals per bone")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--bones", default=None, help="default: the config's bones")
    parser.add_argument("--difficulty", type=float, default=None,
                        help="default: the config's data.difficulty")
    parser.add_argument("--out", default="runs/calibration")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="config override SECTION.KEY=VALUE, e.g. classifier.arch=resnet18")
    args = parser.parse_args()

    config = load_experiment_config(args.config, parse_overrides(args.overrides))
    data = config.data
    bones = args.bones.split(",") if args.bones else data.bones
    difficulty = data.difficulty if args.difficulty is None else args.difficulty
    positives = [int(p) for p in args.positives.split(",")]
    out = Path(args.out)
    # Train gets 1 - val - test of each class: render enough for the largest curve point.
    train_share = 1 - data.val - data.test
    n_lesion = int(np.ceil(max(positives) / train_share)) + 4
    n_normal = int(np.ceil(args.negatives / train_share)) + 4
    phantom_dir = out / f"phantom-d{difficulty:g}-n{n_normal}-l{n_lesion}"
    if not (phantom_dir / "manifest.csv").is_file():
        make_phantom(phantom_dir, PhantomConfig(
            bones=tuple(bones), normal=n_normal, lesion=n_lesion, size=data.size,
            difficulty=difficulty, seed=config.seed, distractors=data.distractors))
    split = split_manifest(load_manifest(phantom_dir / "manifest.csv"), val=data.val,
                           test=data.test, seed=config.seed).manifest
    table = split.table
    rows = []
    started = time.time()
    for bone in bones:
        train = (table["split"] == "train") & (table["bone"] == bone)
        negatives = table.index[train & (table["label"] == 0)][:args.negatives]
        all_pos = table.index[train & (table["label"] == 1)]
        others = table.index[~train | (table["bone"] != bone)]
        for seed in range(args.seeds):
            order = np.random.default_rng([config.seed, seed]).permutation(all_pos)
            for n in positives:
                if n > len(order):
                    raise SystemExit(f"{bone}: only {len(order)} train positives for n={n}")
                keep = list(others) + list(negatives) + list(order[:n])
                subset = Manifest(table.loc[sorted(keep)].reset_index(drop=True),
                                  root=split.root)
                folder = (out / f"d{difficulty:g}-{config.classifier.arch}" / bone / f"p{n}"
                          / f"seed{seed}")
                subset_path = save_manifest(
                    subset, out / f"d{difficulty:g}-{config.classifier.arch}" / "subset.csv")
                t0 = time.time()
                report = classify(load_manifest(subset_path), "baseline", folder,
                                  config=config.classifier, bone=bone, seed=seed,
                                  cache_dir=out / "cache")
                rows.append({"bone": bone, "difficulty": difficulty, "positives": n,
                             "negatives": len(negatives), "seed": seed,
                             "test_auc": report.test_auc, "val_auc": report.val_auc,
                             "best_epoch": report.best_epoch,
                             "seconds": round(time.time() - t0, 1)})
                print(f"{bone} n={n} seed {seed}: test AUC {report.test_auc:.3f} "
                      f"({time.time() - t0:.0f} s)", flush=True)
    curve = pd.DataFrame(rows)
    curve.to_csv(out / f"curve-d{difficulty:g}-{config.classifier.arch}.csv", index=False)
    summary = curve.groupby(["bone", "positives"])["test_auc"].agg(["mean", "std"])
    print(f"\ndifficulty {difficulty:g}, {args.negatives} train normals per bone, "
          f"{args.seeds} seed(s), classifier {config.classifier.arch} "
          f"w{config.classifier.width} @ {config.classifier.size} px; "
          f"{(time.time() - started) / 60:.1f} min on {os.cpu_count()} CPUs\n")
    print("| bone | " + " | ".join(f"{n} positives" for n in positives) + " |")
    print("|---|" + "---|" * len(positives))
    for bone in bones:
        cells = []
        for n in positives:
            mean, std = summary.loc[(bone, n)]
            cells.append(f"{mean:.3f} ± {0 if np.isnan(std) else std:.3f}")
        print(f"| {bone} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
