"""Seed spread of a few tile classifiers under other classifier settings (issue 10).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/tile_budget_trial.py runs/phantom-full \\
        'now={}' 'e50={"epochs": 50}'

Trains, on a finished phantom-full run's data and synthetic sets, the image-level (tile)
classifiers of the conditions that spread most over seeds (femur `weighted`, femur
`gan-r1`, tibia `gan-transfer-r3-from-femur`), seeds 0-2, once per NAME=JSON setting
(classifier settings over the run's own), and prints each seed's test AUC, the mean and
the standard deviation. `now={}` reproduces the run's own classifiers.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from boneaug.classify.regions import RegionConfig
from boneaug.classify.run import classify
from boneaug.classify.train import ClassifierConfig
from boneaug.data import load_manifest

CONDITIONS = (("femur", "weighted", None, None), ("femur", "gan", 1, "femur-s0"),
              ("tibia", "gan-transfer", 3, "tibia-from-femur-s0"))


def main() -> None:
    run = Path(sys.argv[1])
    settings = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])}
    config = yaml.safe_load((run / "config.yaml").read_text())
    manifest = load_manifest(run / "data" / "manifest.csv", check_images=False)
    regions = RegionConfig.from_dict(config.get("regions") or {})
    scratch = Path(tempfile.mkdtemp(prefix="tile-budget-"))
    try:
        for name, changes in settings.items():
            classifier = ClassifierConfig.from_dict({**config["classifier"], **changes})
            for bone, strategy, ratio, synthetic in CONDITIONS:
                extra = (load_manifest(run / "synth" / "gan" / synthetic / "synthetic.csv",
                                       check_images=False) if synthetic else None)
                started, aucs = time.time(), []
                for seed in range(3):
                    out = scratch / f"{name}-{bone}-{strategy}-{seed}"
                    aucs.append(classify(manifest, strategy, out, config=classifier,
                                         bone=bone, extra=extra, ratio=ratio, seed=seed,
                                         cache_dir=run / "cache", regions=regions).test_auc)
                print(f"{name} {bone} {strategy}{'-r' + str(ratio) if ratio else ''}: "
                      f"{' / '.join(f'{a:.3f}' for a in aucs)}; mean {np.mean(aucs):.3f} "
                      f"sd {np.std(aucs, ddof=1):.3f} ({(time.time() - started) / 3:.0f} s "
                      "each)", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
