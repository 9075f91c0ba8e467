"""Which bone(s) a film shows: learned from the films whose bone is known.

Real data sets name the bone of their lesion films (BTXRD's site flags) but label normal
films by limb region or not at all, and joint films show several bones. `assign_bones`
trains a small film classifier on the films whose bone is known and assigns bones, with
a confidence, to the films whose ``bone`` column names only a region or ``unknown``.

- **Known films.** A real film is known when its ``bone`` column names a bone; its known
  bones are that bone plus any bone of its ``sites`` column (BTXRD's multi-site films,
  e.g. ``tibia;fibula``). A bone with fewer than `BonesConfig.min_films` known films is
  not learned. With a split, only train and val films teach the classifier, so that
  nothing about a test film shapes the sets it is measured on.
- **The classifier.** The whole film, aspect kept, on a `size` px square (coarse anatomy
  is what tells a hip from a knee), the lesions of lesion films blanked (the known films
  are mostly lesion films: where a lesion sits must not be what tells a femur), through
  the small CNN of `boneaug.classify.model` with one output per bone; one-vs-rest
  sigmoid scores, because a joint film can show several bones. Random left-right flips
  (left and right limbs), shifts and contrast.
- **Held-out check.** `holdout` of the known films (whole patients, chosen by a hash of
  the patient id) are kept out of training; the top-scoring bone's accuracy on them is
  reported, so a user knows how far to trust the assignment.
- **Assignment.** A film whose label names no bone gets every bone scored at least
  `min_confidence` (``assigned_bones``, highest first) that fits its region label (a
  ``lower_limb`` film is never given a humerus), every score (``bone_scores``) and
  ``bone_source`` ``model``. A film whose ``bone`` names a bone keeps it (``label``); a
  film whose ``assigned_bones`` a user wrote (``bone_source`` empty or ``user``) keeps it.
  `boneaug.data.films.of_bone` is the rule every per-bone stage then applies.

Films that cannot be read (or are under `boneaug.data.skips.MIN_FILM_SIDE` px) are skipped
with their reason; they get no assignment.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from torch import nn

from boneaug.classify.inputs import classifier_input, fit_square, load_inputs
from boneaug.classify.model import SmallCNN
from boneaug.config import build_config, check_device, check_number
from boneaug.data import BONES, Manifest, read_image
from boneaug.data.films import (
    ASSIGNED_COLUMN,
    SCORES_COLUMN,
    SOURCE_COLUMN,
    fits_label,
    is_region,
    split_bones,
)
from boneaug.data.skips import Skips
from boneaug.distributed import Ranks, fixed_threads, pick_device
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path
from boneaug.patches.location import blank_boxes


@dataclass
class BonesConfig:
    """How to learn and assign the bones of films."""

    min_confidence: float = 0.7   # a bone is assigned at or above this score
    size: int = 64                # the film's side on the classifier's input, px
    width: int = 16               # first-stage channels of the small CNN
    steps: int = 1500             # training steps (batches)
    batch_size: int = 32
    lr: float = 2e-3
    holdout: float = 0.15         # share of known films (whole patients) held out to check
    min_films: int = 5            # known films a bone needs to be learned
    seed: int = 0
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "bones") -> BonesConfig:
        return build_config(cls, values, where)

    def validate(self, where: str = "bones") -> None:
        for key, low in (("size", 32), ("width", 4), ("steps", 1), ("batch_size", 2),
                         ("min_films", 1), ("seed", 0)):
            check_number(where, key, getattr(self, key), low, integer=True)
        for key, low, high in (("min_confidence", 0.0, 1.0), ("holdout", 0.0, 0.9),
                               ("lr", 0.0, 1.0)):
            check_number(where, key, getattr(self, key), low, high)
        check_device(where, "device", self.device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BonesReport:
    """What `assign_bones` did: the new manifest and the numbers a user checks."""

    manifest: Manifest
    classes: list[str]
    min_confidence: float
    counts: dict[str, dict[str, int]]   # bone -> {"label": n, "user": n, "model": n}
    unassigned: int                     # open-label films that got no bone
    holdout_films: int
    holdout_accuracy: float             # NaN without held-out films
    skipped: Skips
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "min_confidence": self.min_confidence,
                "counts": self.counts, "unassigned": self.unassigned,
                "holdout_films": self.holdout_films,
                "holdout_accuracy": (None if math.isnan(self.holdout_accuracy)
                                     else round(self.holdout_accuracy, 4)),
                "skipped": len(self.skipped), "seconds": round(self.seconds, 1),
                "warnings": self.warnings}


def known_bones(row: dict[str, Any]) -> list[str]:
    """The bones a film is known to show: its ``bone`` label and its ``sites``."""
    bones = [] if is_region(row.get("bone")) else [str(row["bone"])]
    bones += [b for b in split_bones(row.get("sites", "")) if b in BONES and b not in bones]
    return bones


def _film_inputs(manifest: Manifest, rows: list, size: int, cache_dir: str | Path | None,
                 failures: dict[Any, str]) -> np.ndarray:
    """The classifier's inputs `(N, size, size)`: whole films, with the lesions of lesion
    films blanked (`boneaug.patches.location.blank_boxes`). Lesion films are the known
    films; left as they are, a lesion's place would teach "femur" as well as the anatomy,
    and normal films have none."""
    table = manifest.table
    lesion_rows = [i for i in rows if table.at[i, "label"] == 1 and table.at[i, "boxes"]]
    inputs = load_inputs(manifest, rows, size, "image", cache_dir, failures=failures)
    position = {i: k for k, i in enumerate(rows)}
    for i in lesion_rows:
        path = manifest.resolve(table.at[i, "path"])
        try:
            image = read_image(path)
        except BoneaugError as exc:
            failures[i] = str(exc)
            continue
        inputs[position[i]] = fit_square(blank_boxes(image, table.at[i, "boxes"]), size)
    return inputs


def _in_holdout(patient: str, share: float) -> bool:
    return zlib.crc32(str(patient).encode("utf-8")) % 10_000 < share * 10_000


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip left-right, shift by up to 1/16 of the side, and jitter contrast: `(B, 1, S, S)`."""
    batch, _, side, _ = x.shape
    flip = torch.rand(batch, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    reach = max(1, side // 16)
    dy, dx = (int(v) for v in torch.randint(-reach, reach + 1, (2,), generator=generator))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    gain = 1.0 + 0.2 * (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5)
    return (x * gain).clamp(0, 1)


def _train(inputs: np.ndarray, targets: np.ndarray, config: BonesConfig,
           device: torch.device) -> nn.Module:
    """The film classifier: `(N, S, S)` inputs, `(N, C)` 0/1 targets -> a trained model
    (with the thread count pinned, so that it does not change the model)."""
    with fixed_threads():
        return _fit(inputs, targets, config, device)


def _fit(inputs: np.ndarray, targets: np.ndarray, config: BonesConfig,
         device: torch.device) -> nn.Module:
    torch.manual_seed(config.seed)
    model = SmallCNN(config.width, outputs=targets.shape[1]).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr,
                                                   total_steps=config.steps)
    # Each bone's loss is weighted by how rare it is, so that the few films of a rare bone
    # are not drowned by a common one.
    positives = targets.sum(axis=0).clip(min=1)
    pos_weight = torch.tensor((len(targets) - positives) / positives, dtype=torch.float32)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight.clamp(max=20).to(device))
    generator = torch.Generator().manual_seed(config.seed)
    x_all = torch.from_numpy(np.ascontiguousarray(inputs, np.float32))[:, None]
    y_all = torch.from_numpy(targets.astype(np.float32))
    batch = min(config.batch_size, len(inputs))
    model.train()
    for _ in range(config.steps):
        index = torch.randint(0, len(inputs), (batch,), generator=generator)
        x = _augment(x_all[index], generator).to(device)
        loss = loss_fn(model(x * 2.0 - 1.0), y_all[index].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    return model


@torch.no_grad()
def _scores(model: nn.Module, inputs: np.ndarray, device: torch.device) -> np.ndarray:
    """Sigmoid scores `(N, C)`; a film and its mirror image are averaged (left/right)."""
    out = []
    with fixed_threads():
        for start in range(0, len(inputs), 256):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + 256]))[:, None]
            x = x.to(device) * 2.0 - 1.0
            probs = (torch.sigmoid(model(x)) + torch.sigmoid(model(x.flip(-1)))) / 2
            out.append(probs.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def assign_bones(manifest: Manifest, config: BonesConfig | None = None, *,
                 cache_dir: str | Path | None = None) -> BonesReport:
    """Learn the bones of films from the known ones; assign them to the others.

    Returns a `BonesReport` whose manifest is a copy of `manifest` with the columns
    ``assigned_bones``, ``bone_scores`` and ``bone_source`` (see the module doc). The
    input is not modified. Raises `BoneaugError` when fewer than two bones have
    `config.min_films` known films (nothing to tell apart), or when too many films
    cannot be read (`boneaug.data.skips`).
    """
    started = time.time()
    config = config or BonesConfig()
    config.validate()
    table = manifest.table
    name = str(manifest.source or "manifest")
    real = table.index[table["origin"] == "real"].tolist()
    rows = {i: table.loc[i].to_dict() for i in real}
    known = {i: known_bones(r) for i, r in rows.items() if known_bones(r)}
    has_split = bool((table["split"] != "").any())
    teaching = [i for i in known if not has_split or rows[i]["split"] in ("train", "val")]
    per_bone = Counter(b for i in teaching for b in known[i])
    classes = sorted(b for b, n in per_bone.items() if n >= config.min_films)
    if len(classes) < 2:
        have = ", ".join(f"{b} {n}" for b, n in sorted(per_bone.items())) or "none"
        raise BoneaugError(f"{name}: learning which bone a film shows needs known films "
                           f"(bone column naming a bone) of at least two bones, each at "
                           f"least {config.min_films}; known films: {have}")
    warnings: list[str] = []
    rare = sorted(b for b, n in per_bone.items() if n < config.min_films)
    if rare:
        warnings.append(f"bones with fewer than {config.min_films} known films are not "
                        f"learned: {', '.join(rare)}")

    skips = Skips("bones")
    failures: dict[Any, str] = {}
    inputs = _film_inputs(manifest, real, config.size, cache_dir, failures)
    for i, reason in failures.items():
        skips.add(rows[i]["image_id"], rows[i]["path"], reason)
    skips.check(len(real), "real films")
    position = {i: k for k, i in enumerate(real)}

    usable = [i for i in teaching if i not in failures]
    held = [i for i in usable if _in_holdout(rows[i]["patient_id"], config.holdout)]
    held_set = set(held)
    learn = [i for i in usable if i not in held_set] or usable
    # A known film of a bone that is not learned (a hand among femurs) stays in, with no
    # bone on: it teaches what is none of them.
    targets = np.array([[b in known[i] for b in classes] for i in learn], np.float32)
    device = pick_device(config.device, Ranks())
    model = _train(inputs[[position[i] for i in learn]], targets, config, device)
    scores = _scores(model, inputs, device)

    held = [i for i in held if set(known[i]) & set(classes)]
    correct = [classes[int(np.argmax(scores[position[i]]))] in known[i] for i in held]
    accuracy = float(np.mean(correct)) if correct else float("nan")

    out = manifest.copy()
    result = _assignment_columns(out.table, rows, position, scores, classes, config,
                                 failures)
    for column, values in result.items():
        out.table[column] = values
    counts, unassigned = _counts(out.table, classes)
    return BonesReport(out, classes, config.min_confidence, counts, unassigned, len(held),
                       accuracy, skips, time.time() - started, warnings)


def _assignment_columns(table: pd.DataFrame, rows: dict[Any, dict[str, Any]],
                        position: dict[Any, int], scores: np.ndarray, classes: list[str],
                        config: BonesConfig, failures: dict[Any, str]
                        ) -> dict[str, list[str]]:
    """The three assignment columns for every row of `table` (rules in the module doc)."""
    had = ASSIGNED_COLUMN in table.columns
    assigned, score_text, source = [], [], []
    for i in table.index:
        row = rows.get(i) or table.loc[i].to_dict()
        previous = str(row.get(ASSIGNED_COLUMN, "") or "") if had else ""
        previous_source = str(row.get(SOURCE_COLUMN, "") or "")
        k = position.get(i)
        film_scores = ({} if k is None or i in failures
                       else {b: round(float(s), 4) for b, s in zip(classes, scores[k],
                                                                   strict=True)})
        score_text.append(json.dumps(film_scores, sort_keys=True) if film_scores else "")
        if not is_region(row.get("bone")):
            assigned.append(str(row["bone"]))
            source.append("label")
        elif previous and previous_source in ("", "user"):
            assigned.append(previous)
            source.append("user")
        elif film_scores:
            chosen = sorted((b for b, s in film_scores.items()
                             if s >= config.min_confidence and fits_label(b, row.get("bone"))),
                            key=lambda b: -film_scores[b])
            assigned.append(";".join(chosen))
            source.append("model")
        else:
            assigned.append("")
            source.append("none")
    return {ASSIGNED_COLUMN: assigned, SCORES_COLUMN: score_text, SOURCE_COLUMN: source}


def _counts(table: pd.DataFrame, classes: list[str]) -> tuple[dict[str, dict[str, int]], int]:
    counts = {b: {"label": 0, "user": 0, "model": 0} for b in classes}
    unassigned = 0
    real = table[table["origin"] == "real"]
    for assigned, source, bone in zip(real[ASSIGNED_COLUMN], real[SOURCE_COLUMN],
                                      real["bone"], strict=True):
        if source == "label":
            if bone in counts:
                counts[bone]["label"] += 1
            continue
        bones = split_bones(assigned)
        if not bones:
            unassigned += 1
        for b in bones:
            counts.setdefault(b, {"label": 0, "user": 0, "model": 0})
            counts[b]["user" if source == "user" else "model"] += 1
    return counts, unassigned


def format_bones(report: BonesReport) -> str:
    """The assignment as a small text table: films per bone by where the bone came from."""
    lines = [f"bones learned: {', '.join(report.classes)}; assigned at score >= "
             f"{report.min_confidence:g}"]
    if report.holdout_films:
        lines.append(f"held-out check: the top bone is right for "
                     f"{report.holdout_accuracy:.1%} of {report.holdout_films} known films")
    width = max(len(b) for b in report.counts) if report.counts else 4
    lines.append(f"{'bone':<{width}}  {'label':>6}  {'user':>6}  {'model':>6}")
    for bone, c in sorted(report.counts.items()):
        lines.append(f"{bone:<{width}}  {c['label']:>6}  {c['user']:>6}  {c['model']:>6}")
    lines.append(f"films of a region or unknown bone that got no bone: {report.unassigned}")
    if report.skipped:
        lines.append(report.skipped.summary())
    return "\n".join(lines)


# --------------------------------------------------------------------------- review sheet

TILE = 96


def write_bones_sheet(manifest: Manifest, path: str | Path, *, per_bone: int = 8,
                      seed: int = 0) -> Path:
    """A PNG for review: per assigned bone, a random sample of the films the model gave it
    (its score under each), and a row of films that got no bone."""
    table = manifest.table
    model_rows = table[(table[SOURCE_COLUMN] == "model") & (table["origin"] == "real")]
    groups: dict[str, list[tuple[Any, str]]] = {}
    for i, assigned, scores in zip(model_rows.index, model_rows[ASSIGNED_COLUMN],
                                   model_rows[SCORES_COLUMN], strict=True):
        parsed = json.loads(scores) if scores else {}
        bones = split_bones(assigned)
        for b in bones:
            groups.setdefault(b, []).append((i, f"{b} {parsed.get(b, 0):.2f}"))
        if not bones:
            top = max(parsed, key=parsed.get) if parsed else ""
            note = f"top {top} {parsed[top]:.2f}" if top else "unreadable"
            groups.setdefault("(none)", []).append((i, note))
    rng = np.random.default_rng(seed)
    names = sorted(b for b in groups if b != "(none)") + (["(none)"] if "(none)" in groups
                                                          else [])
    label_w = 80
    sheet = Image.new("RGB", (label_w + per_bone * (TILE + 4), max(1, len(names))
                              * (TILE + 18)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, bone in enumerate(names):
        top = r * (TILE + 18) + 2
        draw.text((6, top + TILE // 2 - 6), f"{bone}\n{len(groups[bone])} films",
                  fill=(230, 230, 230))
        members = groups[bone]
        chosen = [members[j] for j in sorted(rng.permutation(len(members))[:per_bone])]
        for c, (i, note) in enumerate(chosen):
            left = label_w + c * (TILE + 4)
            try:
                thumb = classifier_input(manifest, table.loc[i].to_dict(), TILE, "image")
            except BoneaugError:
                thumb = np.zeros((TILE, TILE), np.float32)
            sheet.paste(Image.fromarray((thumb * 255).astype(np.uint8)).convert("RGB"),
                        (left, top))
            draw.text((left + 2, top + TILE + 2), note, fill=(255, 210, 90))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
