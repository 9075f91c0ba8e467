"""Does the realism measure rank known degradations? (issue 12; `boneaug.synth.realism`)

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/realism_trial.py runs/phantom-full-clean femur

On a finished run's bone: the measure's judge (features learned from the bone's patches
and half of its held-out val lesions, cross-fitted; docs/synthesis.md, "Realism"), and
KID x 1000 with its interval and its multiple of the real-vs-real floor for the bone's
train lesion patches, those patches degraded (Gaussian blur, noise, a brighter shift; two
strengths each), and healthy patches. A measure ranks each degradation above the
undegraded patches, the stronger above the milder, and healthy patches farthest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from boneaug.data import load_manifest
from boneaug.patches import load_domains
from boneaug.synth.realism import RealismJudge, reference_crops


def main() -> None:
    run, bone = Path(sys.argv[1]), sys.argv[2]
    manifest = load_manifest(run / "data" / "manifest.csv", check_images=False)
    healthy, lesion, info = load_domains(run / "patches" / bone)
    settings = info.get("settings") or {}
    reference, ids = reference_crops(manifest, bone, lesion.size,
                                     float(settings.get("context", 0.5)),
                                     float(settings.get("jitter", 0.15)))
    judge = RealismJudge(healthy.patches, lesion.patches, reference, ids)
    floor = judge.floor()
    rng = np.random.default_rng(2)
    real = lesion.patches[np.sort(rng.choice(len(lesion), min(200, len(lesion)),
                                             replace=False))]
    sets = {
        "train lesion patches": real,
        **{f"  blurred, sigma {s}": np.stack([gaussian_filter(p, s) for p in real])
           for s in (1, 2)},
        **{f"  + noise, sd {s}": np.clip(real + rng.normal(0, s, real.shape), 0, 1)
           for s in (0.05, 0.1)},
        **{f"  + {s} brighter": np.clip(real + s, 0, 1) for s in (0.05, 0.1)},
        "healthy patches": healthy.patches[np.sort(rng.choice(len(healthy), 200,
                                                              replace=False))],
    }
    print(f"{bone}: {len(set(ids))} held-out lesions; floor {1000 * floor.value:.1f} "
          f"[{1000 * floor.lo:.1f}, {1000 * floor.hi:.1f}]")
    for name, patches in sets.items():
        d = judge.distance(patches.astype(np.float32))
        print(f"| {name} | {1000 * d.value:.1f} [{1000 * d.lo:.1f}, {1000 * d.hi:.1f}] | "
              f"{d.ratio(floor):.1f}x |", flush=True)


if __name__ == "__main__":
    main()
