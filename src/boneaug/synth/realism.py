"""How real do synthetic lesions look? A kernel distance to held-out real lesions.

`RealismJudge` measures, for one bone, how far a set of lesion patches (a generator's,
copy-paste's, anything's) lies from real lesions the generators never saw:

- **Reference**: crops of the real lesions of the bone's *validation* films
  (`reference_crops`: `crops` jittered crops per lesion, cut as the lesion domain's
  patches are, `boneaug.patches.lesion_crops`). Never the train lesions a generator
  learned from (judged against those, a generator that copies them looks better than
  real), never the test films.
- **Features**: a small CNN (`boneaug.classify.model.SmallCNN`) trained here, in domain,
  to tell the bone's healthy patches from lesion patches, with rotations, flips, gain,
  offset and noise (without augmentation it memorised the 9 training lesions: unseen real
  lesions came out farther than healthy bone, docs/synthesis.md). The features of a patch
  are the spatial means of its last three stages' maps. **Cross-fitted**: the reference
  lesions are split by lesion into two folds; the network that judges against fold k
  learns from the healthy patches, the train lesion patches and the *other* fold, so it
  knows more lesions than the few train ones and never saw what it judges against.
- **Distance**: KID (Bińkowski et al. 2018), the unbiased estimate of the squared MMD
  with the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)^3``, between the candidate
  patches and half of a fold's lesions. The **floor** is the fold's other half (real
  against real, disjoint lesions) against the same half. Every number is the mean over
  both folds, both halves in each role and `seeds` networks; the halves of a fold keep
  their split for all candidates, so candidates and the floor are judged alike.
- **Interval**: each evaluation is repeated on `resamples` half-samples (half of the
  candidates and half of the reference lesions, without replacement); the 95 % interval
  is the estimate ± 1.96 x their sd / sqrt(2) (a half-sample's variance is about twice a
  full sample's for this statistic): an approximate interval, of the sampling of
  candidates and reference lesions, not of the features' training.

Read a distance against the floor: `Distance.ratio` is the candidate's KID over the
floor's. What is a measure and what is not was checked on known degradations
(tests/test_realism.py; on the phantom benchmark: docs/synthesis.md).

`measure_sets` is what `boneaug synthesize --realism` and the experiment's realism stage
run: the floor, the bone's healthy patches and train lesion patches (points of
reference) and each synthesis (a crop around each synthetic lesion, cut as the lesion
patches are), as one JSON-ready document; `format_realism` is its one-line summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from boneaug.classify.model import SmallCNN
from boneaug.config import check_number
from boneaug.data import Manifest, load_manifest
from boneaug.data.films import positives_of
from boneaug.data.skips import Skips
from boneaug.distributed import fixed_threads
from boneaug.errors import BoneaugError
from boneaug.patches import lesion_crops, load_domains, read_film

__all__ = ["SAMPLE", "Distance", "RealismConfig", "RealismJudge", "format_realism", "kid",
           "measure_sets", "reference_crops", "synthetic_crops"]

SAMPLE = 200  # patches drawn from a larger set (healthy and train lesion patches)


@dataclass(frozen=True)
class RealismConfig:
    """The measure's settings (see the module doc)."""

    width: int = 8            # the feature CNN's first stage channels
    steps: int = 300          # its training steps
    batch_size: int = 64
    seeds: int = 2            # feature networks per fold
    crops: int = 4            # reference crops per real lesion
    resamples: int = 200      # half-samples for the interval
    min_lesions: int = 8      # reference lesions needed (two folds of two halves)

    def validate(self, where: str = "realism") -> None:
        for key, lowest in (("width", 4), ("steps", 1), ("batch_size", 2), ("seeds", 1),
                            ("crops", 1), ("resamples", 10), ("min_lesions", 4)):
            check_number(where, key, getattr(self, key), lowest, integer=True)


@dataclass(frozen=True)
class Distance:
    """A KID with its approximate 95 % interval and the number of candidate patches."""

    value: float
    lo: float
    hi: float
    n: int

    def ratio(self, floor: Distance) -> float:
        """This distance over the real-vs-real floor's (nan when the floor is not > 0)."""
        return self.value / floor.value if floor.value > 0 else float("nan")


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased squared MMD between feature sets `x` `(m, d)` and `y` `(n, d)` with the
    cubic polynomial kernel (KID); m, n >= 2. Can be slightly negative for close sets."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 samples a side, got {m} and {n}")
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def reference_crops(manifest: Manifest, bone: str, size: int, context: float = 0.5,
                    jitter: float = 0.15, crops: int = 4, split: str = "val", seed: int = 0
                    ) -> tuple[np.ndarray, list[str]]:
    """`crops` crops of every real lesion of `bone` in the `split` films -> (patches
    `(N, size, size)` in [0, 1], the lesion id of each: ``<image_id>#<box index>``).
    Unreadable films are left out (the stages that read them say so)."""
    table = manifest.table
    rows = table[(table["split"] == split) & (table["origin"] == "real")
                 & positives_of(table, bone)].to_dict("records")
    rng = np.random.default_rng([seed, 7])
    patches: list[np.ndarray] = []
    ids: list[str] = []
    skips = Skips("realism")
    for row in rows:
        film = read_film(manifest, row, skips)
        if film is None:
            continue
        for j, box in enumerate(row["boxes"]):
            for crop in lesion_crops(film, box, size, crops, context, jitter, rng):
                patches.append(crop.patch)
                ids.append(f"{row['image_id']}#{j}")
    if not patches:
        return np.zeros((0, size, size), np.float32), []
    return np.stack(patches).astype(np.float32), ids


class RealismJudge:
    """The realism measure of one bone (module doc). `healthy`, `lesion`: the bone's
    patch domains `(N, P, P)` in [0, 1] (features learn from them); `reference`, `ids`:
    held-out real lesion crops and their lesion ids (`reference_crops`)."""

    def __init__(self, healthy: np.ndarray, lesion: np.ndarray, reference: np.ndarray,
                 ids: Sequence[str], config: RealismConfig | None = None,
                 seed: int = 0) -> None:
        self.config = config or RealismConfig()
        self.config.validate()
        if len(reference) != len(ids):
            raise ValueError(f"{len(reference)} reference crops, {len(ids)} ids")
        lesions = sorted(set(ids))
        if len(lesions) < self.config.min_lesions:
            raise BoneaugError(
                f"the realism measure needs at least {self.config.min_lesions} held-out real "
                f"lesions of the bone (validation films), found {len(lesions)}")
        rng = np.random.default_rng([seed, 11])
        order = [lesions[i] for i in rng.permutation(len(lesions))]
        quarter = [order[k::4] for k in range(4)]  # fold k = halves 2k and 2k + 1
        ids_arr = np.asarray(ids)
        self._rng_seed = [seed, 13]
        self._evaluations: list[tuple[SmallCNN, np.ndarray, np.ndarray, np.ndarray,
                                      np.ndarray]] = []
        for fold in range(2):
            halves = [np.isin(ids_arr, quarter[2 * fold + h]) for h in range(2)]
            other = ~(halves[0] | halves[1])
            for s in range(self.config.seeds):
                net = _train_features(healthy, np.concatenate([lesion, reference[other]]),
                                      self.config, seed=[seed, fold, s])
                feats = [_embed(net, reference[h]) for h in halves]
                groups = [ids_arr[h] for h in halves]
                for judge_by in range(2):  # half `judge_by` is the reference, the other the floor
                    self._evaluations.append((net, feats[judge_by], groups[judge_by],
                                              feats[1 - judge_by], groups[1 - judge_by]))

    def floor(self) -> Distance:
        """Real lesions against real lesions (disjoint halves of the held-out ones)."""
        return self._distance([(e[3], e[4]) for e in self._evaluations])

    def distance(self, patches: np.ndarray) -> Distance:
        """KID of the candidate lesion patches `(N, P, P)` in [0, 1] against the held-out
        real lesions, with its interval."""
        patches = np.asarray(patches, np.float32)
        if patches.ndim != 3 or len(patches) < 4:
            raise BoneaugError(f"realism: need at least 4 candidate patches (N, P, P), got "
                               f"shape {patches.shape}")
        cache: dict[int, np.ndarray] = {}
        sets = []
        for net, *_ in self._evaluations:
            key = id(net)
            if key not in cache:
                cache[key] = _embed(net, patches)
            sets.append((cache[key], np.arange(len(patches)).astype(str)))
        return self._distance(sets)

    def _distance(self, candidates: list[tuple[np.ndarray, np.ndarray]]) -> Distance:
        values = [kid(c, ref) for (c, _), (_, ref, _, _, _) in zip(
            candidates, self._evaluations, strict=True)]
        value = float(np.mean(values))
        rng = np.random.default_rng(self._rng_seed)
        halves = []
        for _ in range(self.config.resamples):
            each = []
            for (c, c_groups), (_, ref, r_groups, _, _) in zip(candidates, self._evaluations,
                                                               strict=True):
                each.append(kid(c[_half(c_groups, rng)], ref[_half(r_groups, rng)]))
            halves.append(np.mean(each))
        spread = 1.96 * float(np.std(halves, ddof=1)) / np.sqrt(2)
        return Distance(value, value - spread, value + spread, len(candidates[0][0]))


def _half(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mask of the items of a random half of the groups (at least one group, and at
    least two items)."""
    names = np.unique(groups)
    pick = rng.choice(names, max(1, len(names) // 2), replace=False)
    mask = np.isin(groups, pick)
    if mask.sum() < 2:
        mask = np.isin(groups, rng.choice(names, min(len(names), 2), replace=False))
    return mask


def _train_features(healthy: np.ndarray, lesion: np.ndarray, config: RealismConfig,
                    seed: list[int]) -> SmallCNN:
    """A SmallCNN taught healthy vs lesion with augmentation (module doc), in eval mode."""
    rng = np.random.default_rng(seed)
    x_all = np.concatenate([healthy, lesion]).astype(np.float32)
    y_all = np.r_[np.zeros(len(healthy)), np.ones(len(lesion))].astype(np.float32)
    weights = np.where(y_all == 1, len(healthy) / len(lesion), 1.0)
    weights /= weights.sum()
    b = config.batch_size
    # torch's own draws (initial weights, dropout) from a seeded state of their own: the
    # same features whatever the process drew before, and the caller's state left alone
    with torch.random.fork_rng(devices=[]), fixed_threads(1):
        torch.manual_seed(int(rng.integers(2**31)))
        net = SmallCNN(config.width)
        optimiser = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-2)
        for _ in range(config.steps):
            pick = rng.choice(len(x_all), b, p=weights)
            x = torch.rot90(torch.from_numpy(x_all[pick])[:, None], int(rng.integers(4)), (2, 3))
            if rng.random() < 0.5:
                x = x.flip(3)
            gain = torch.from_numpy(rng.uniform(0.85, 1.15, (b, 1, 1, 1))).float()
            offset = torch.from_numpy(rng.uniform(-0.1, 0.1, (b, 1, 1, 1))).float()
            noise = torch.from_numpy(rng.normal(0, 0.03, x.shape)).float()
            x = x * gain + offset + noise
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                net(x * 2 - 1)[:, 0], torch.from_numpy(y_all[pick]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def _embed(net: SmallCNN, patches: np.ndarray) -> np.ndarray:
    """Features `(N, 10 width)`: spatial means of the last three stages' maps."""
    out = []
    with torch.no_grad(), fixed_threads(1):
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


def synthetic_crops(csv: str | Path, size: int, context: float = 0.5, jitter: float = 0.15,
                    seed: int = 0) -> np.ndarray:
    """One crop around each lesion of each film of a synthesis manifest, cut as the
    lesion domain's patches are; unreadable films are left out."""
    manifest = load_manifest(csv)
    rng = np.random.default_rng([seed, 19])
    skips = Skips("realism")
    patches = []
    for row in manifest.table.to_dict("records"):
        film = read_film(manifest, row, skips)
        if film is None:
            continue
        for box in row["boxes"]:
            patches += [c.patch for c in lesion_crops(film, box, size, 1, context, jitter, rng)]
    return (np.stack(patches).astype(np.float32) if patches
            else np.zeros((0, size, size), np.float32))


def measure_sets(manifest: Manifest, bone: str, patch_dir: str | Path,
                 sets: Sequence[tuple[str, str, str | Path]],
                 config: RealismConfig | None = None, seed: int = 0) -> dict[str, Any]:
    """The realism document of `bone` (module doc). `patch_dir`: the bone's patch folder
    (``PATCHES/<bone>``: the features learn from it; its settings say how lesions are
    cropped); `sets`: (name, label, synthesis manifest) of each set to judge. A bone with
    too few held-out real lesions in `manifest` gets ``problem`` and no sets."""
    config = config or RealismConfig()
    healthy, lesion, info = load_domains(patch_dir)
    settings = info.get("settings") or {}
    context = float(settings.get("context", 0.5))
    jitter = float(settings.get("jitter", 0.15))
    size = lesion.size
    reference, ids = reference_crops(manifest, bone, size, context, jitter, config.crops,
                                     seed=seed)
    doc: dict[str, Any] = {"bone": bone, "reference_lesions": len(set(ids)),
                           "reference_crops": len(ids), "patch_size": size, "sets": []}
    try:
        judge = RealismJudge(healthy.patches, lesion.patches, reference, ids, config, seed)
    except BoneaugError as exc:
        return {**doc, "problem": str(exc)}
    floor = judge.floor()
    doc["floor"] = _entry("real lesions (other half)", "", floor, floor)
    rng = np.random.default_rng([seed, 23])
    candidates = [("healthy patches", "", _sample(healthy.patches, rng)),
                  ("train lesion patches", "", _sample(lesion.patches, rng))]
    candidates += [(name, str(label), synthetic_crops(csv, size, context, jitter, seed))
                   for name, label, csv in sets]
    for name, label, patches in candidates:
        if len(patches) < 4:
            doc["sets"].append({"name": name, "folder": label,
                                "problem": f"only {len(patches)} patches"})
            continue
        doc["sets"].append(_entry(name, label, judge.distance(patches), floor))
    return doc


def format_realism(doc: dict[str, Any]) -> str:
    """One line: the floor and each set's distance as a multiple of it."""
    if doc.get("problem"):
        return f"realism {doc['bone']}: not measured ({doc['problem']})"
    parts = [f"{s['name']} {s['ratio']:.1f}x" for s in doc["sets"] if "ratio" in s]
    return (f"realism {doc['bone']} (KID x 1000, floor {1000 * doc['floor']['kid']:.1f} "
            f"from {doc['reference_lesions']} held-out lesions): " + ", ".join(parts))


def _sample(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(patches) <= SAMPLE:
        return patches
    return patches[np.sort(rng.choice(len(patches), SAMPLE, replace=False))]


def _entry(name: str, label: str, d: Distance, floor: Distance) -> dict[str, Any]:
    return {"name": name, "folder": label, "kid": d.value, "lo": d.lo, "hi": d.hi,
            "n": d.n, "ratio": d.ratio(floor)}
