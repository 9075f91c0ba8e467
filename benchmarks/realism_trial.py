"""A first trial of a realism measure for synthetic lesions (issue 12): not yet a tool.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/realism_trial.py runs/phantom-full femur

Kernel inception distance (KID: the unbiased MMD^2 with the cubic polynomial kernel,
averaged over 100 subsets; the interval is the 2.5-97.5 % of the subsets' values) between
sets of 48 px lesion patches and a reference set, on features of a small CNN
(`SmallCNN(8)`, the mean of its last three stages' maps) trained here, 300 steps, to tell
the run's healthy patches from its lesion patches, with rotations, flips, intensity and
noise augmentation (without them the network memorised the 9 training lesions: training
lesions came out farther from unseen lesions than healthy patches).

The reference is held-out real lesions: 4 crops (the patch stage's context and jitter)
of every lesion of the bone's **val** films, split by lesion into two halves; distances
are to the second half. Rows: the first half (the real-vs-real floor), the train lesion
patches, healthy patches, the run's generator and copy-paste applied to healthy patches,
and degradations of the first half (blur, noise, intensity shift) at two strengths.
Results and their limits: docs/synthesis.md, "Realism: a first trial".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from boneaug.classify.model import SmallCNN
from boneaug.data import load_manifest
from boneaug.data.films import positives_of
from boneaug.data.skips import Skips
from boneaug.gan import load_generator
from boneaug.patches import load_domains, read_film
from boneaug.patches.extract import _lesion_crops
from boneaug.synth.copypaste import copy_paste_translator
from boneaug.synth.synthesize import translate

STEPS, BATCH, CROPS, SUBSETS = 300, 64, 4, 100


def reference(run: Path, bone: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the val films' lesions, split by lesion into two halves."""
    manifest = load_manifest(run / "data" / "manifest.csv", check_images=False)
    table = manifest.table
    rows = table[(table["split"] == "val") & (table["origin"] == "real")
                 & positives_of(table, bone)].to_dict("records")
    rng = np.random.default_rng(5)
    crops, lesion = [], []
    for row in rows:
        film = read_film(manifest, row, Skips("realism"))
        if film is None:
            continue
        for j, box in enumerate(row["boxes"]):
            for crop in _lesion_crops(film, box, size, CROPS, 0.5, 0.15, rng):
                crops.append(crop.patch)
                lesion.append(f"{row['image_id']}-{j}")
    ids = sorted(set(lesion))
    rng.shuffle(ids)
    first = np.isin(lesion, ids[: len(ids) // 2])
    stack = np.stack(crops)
    return stack[first], stack[~first]


def train_features(healthy: np.ndarray, lesion: np.ndarray) -> SmallCNN:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = SmallCNN(8)
    optimiser = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-2)
    x_all = np.concatenate([healthy, lesion])
    y_all = np.r_[np.zeros(len(healthy)), np.ones(len(lesion))]
    weights = np.where(y_all == 1, len(healthy) / len(lesion), 1.0)
    for _ in range(STEPS):
        pick = rng.choice(len(x_all), BATCH, p=weights / weights.sum())
        x = torch.rot90(torch.from_numpy(x_all[pick])[:, None], int(rng.integers(4)), (2, 3))
        if rng.random() < 0.5:
            x = x.flip(3)
        gain = torch.from_numpy(rng.uniform(0.85, 1.15, (BATCH, 1, 1, 1))).float()
        offset = torch.from_numpy(rng.uniform(-0.1, 0.1, (BATCH, 1, 1, 1))).float()
        x = x * gain + offset + 0.03 * torch.randn_like(x)
        logits = net(x * 2 - 1)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.from_numpy(y_all[pick]).float())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def features(net: SmallCNN, patches: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(patches), 256):
            h = torch.from_numpy(np.ascontiguousarray(patches[start:start + 256],
                                                      np.float32))[:, None] * 2 - 1
            pooled = []
            for k, layer in enumerate(net.features):
                h = layer(h)
                if isinstance(layer, torch.nn.MaxPool2d) and k >= 3:
                    pooled.append(h.mean((2, 3)))
            out.append(torch.cat(pooled, 1))
    return torch.cat(out).numpy().astype(np.float64)


def kid(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    m = min(int(0.75 * min(len(a), len(b))), 100)
    d = a.shape[1]
    rng = np.random.default_rng(1)
    values = []
    for _ in range(SUBSETS):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3,
                         (x @ y.T / d + 1) ** 3)
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                      + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    v = np.asarray(values)
    return float(v.mean()), float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))


def main() -> None:
    run, bone = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    healthy, lesion, _ = load_domains(run / "patches" / bone)
    first, second = reference(run, bone, lesion.size)
    net = train_features(healthy.patches, lesion.patches)
    target = features(net, second)
    n = len(first)
    sources = healthy.patches[np.random.default_rng(3).choice(len(healthy), n, replace=False)]
    generator, _ = load_generator(run / "gan" / bone / "generator_healthy_to_lesion.pt")
    pasted, _ = copy_paste_translator(run / "patches" / bone)
    noise = np.random.default_rng(2)
    sets = {
        "floor (val half 1)": first,
        "train lesions": lesion.patches[np.random.default_rng(4).choice(len(lesion), n,
                                                                         replace=False)],
        "healthy": sources,
        "gan(healthy)": translate(generator, sources, torch.device("cpu")),
        "copypaste(healthy)": translate(pasted, sources, torch.device("cpu")),
        **{f"blur {s}": np.stack([gaussian_filter(p, s) for p in first]) for s in (1, 2)},
        **{f"noise {s}": np.clip(first + noise.normal(0, s, first.shape), 0, 1)
           for s in (0.05, 0.1)},
        **{f"shift {s}": np.clip(first + s, 0, 1) for s in (0.05, 0.1)},
    }
    print(f"{bone}: {len(first)} + {len(second)} val lesion crops; KID x 1000 [2.5-97.5 %]")
    for name, patches in sets.items():
        value, lo, hi = kid(features(net, patches.astype(np.float32)), target)
        print(f"{name:20s} {1000 * value:9.1f} [{1000 * lo:8.1f}, {1000 * hi:8.1f}]")


if __name__ == "__main__":
    main()
