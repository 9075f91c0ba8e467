"""Train one lesion classifier: a fixed step budget, weight averaging, flip-averaged scores.

`train_classifier(train, val, config, seed)` trains on a `TrainingSet` (inputs, labels,
how positives are weighted or repeated, whether to augment). Two ways to end up with one
model (`ClassifierConfig.select`):

- ``ema`` (the default): a fixed budget of ``epochs x steps_per_epoch`` steps, the
  learning rate falling along a cosine to 5 % of `lr`, and the model returned is the
  exponential moving average of the weights (decay `ema`, warmed up as
  ``min(ema, (1 + t) / (10 + t))``; batch-norm statistics averaged alike). The
  validation set is scored for the history only, at `VAL_POINTS` evenly spaced epochs
  (the last included; the other epochs' rows have no val AUC): nothing is chosen on it,
  so the answer does not chase a small validation set's noise, a seed whose validation
  AUC happens to peak in epoch 1 is not stopped there, and the model is the same bits
  whichever epochs are scored (tested).
- ``best-val`` (the older rule): the weights of the epoch with the best validation ROC
  AUC (ties: the lower validation loss, then the earlier epoch), stopping when it has not
  improved for `patience` epochs. Measured less stable across seeds (docs/results.md).

With ``members`` > 1 (``select: ema`` only) that many classifiers are trained on the same
set, member ``k`` with its own seed (`member_seed`; member 0 with `seed` itself, so one
member is the classifier as before), and the model is their `Members` (the mean logit).
The history holds every member's rows (a ``member`` column); its last row per member is
that member's; the val AUC reported is the whole ensemble's.

`predict` scores inputs with a trained model; with ``tta`` (default on) each score is the
mean of the image's and its left-right mirror's (left and right limbs are both lesion
sites).

Same seed + same device + same `threads` -> the same model: the shuffling, the
augmentation and the initial weights come from generators seeded by `seed`, and the
intra-op thread count is pinned (`boneaug.distributed.fixed_threads`) because CPU kernels
sum in a different order with another count.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from boneaug.classify.augment import ClassicAugmentation
from boneaug.classify.inputs import CROPS
from boneaug.classify.metrics import roc_auc
from boneaug.classify.model import ARCHS, POOLS, Members, build_classifier
from boneaug.config import (
    build_config,
    check_amp,
    check_choice,
    check_device,
    check_number,
    config_error,
    normalise_amp,
    settings_dict,
)
from boneaug.distributed import DEFAULT_THREADS, Ranks, fixed_threads, pick_device, use_bf16
from boneaug.errors import BoneaugError

SELECTIONS = ("ema", "best-val")
# settings added after runs existed, at the value that behaves as before they existed:
# `to_dict` leaves them out there, so those runs' stage keys stay valid
ADDED_LATER: dict[str, Any] = {"members": 1}
# What the classifier sees: a film (its bone's box, or all of it), or lesion-scale tiles of
# the bone whose highest score is the film's (`boneaug.classify.tiles`)
CLASSIFIER_CROPS = (*CROPS, "tiles")


@dataclass
class ClassifierConfig:
    """How to build and train a classifier. Defaults are the CPU benchmark's."""

    arch: str = "cnn"
    width: int = 16             # first-stage channels of the ResNets
    size: int = 128             # input height (the long side) in pixels
    aspect: float = 1.0         # height / width of the input; 2 = an upright 2:1 field
    pool: str = "mean"          # cnn head: mean (global average) or lse (smooth max, MIL)
    crop: str = "bone"          # bone: the bone's box; image: the whole film; tiles: see tiles.py
    epochs: int = 30            # the budget (select: ema), at most (select: best-val)
    steps_per_epoch: int = 0    # batches between validations; 0 = one pass over the set
    select: str = "ema"         # ema: fixed budget, averaged weights; best-val: see module doc
    ema: float = 0.99           # decay of the weight average per step (select: ema)
    patience: int = 8           # best-val: epochs without a better val AUC before stopping
    min_epochs: int = 3         # best-val: never stop before this epoch
    tta: bool = True            # score = mean of the image's and its mirror's
    threads: int = DEFAULT_THREADS  # intra-op threads while training and scoring
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    amp: str | bool = "auto"    # auto: bf16 autocast where fast (CUDA, CPUs with bf16); bf16; off
    device: str = "auto"
    members: int = 1            # classifiers trained apart, logits averaged (select: ema)

    def __post_init__(self) -> None:
        self.amp = normalise_amp(self.amp)  # YAML true / false: bf16 / off

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "classifier") -> ClassifierConfig:
        return build_config(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        """The settings; one added after runs existed is left out at its default, so that
        those runs' records and stage keys stay what they were."""
        return settings_dict(self, ADDED_LATER)

    def validate(self, where: str = "classifier") -> None:
        check_choice(where, "arch", self.arch, ARCHS)
        check_choice(where, "pool", self.pool, POOLS)
        if self.pool != "mean" and self.arch != "cnn":
            raise config_error(where, "pool", self.pool, "must be mean unless arch is cnn")
        check_choice(where, "crop", self.crop, CLASSIFIER_CROPS)
        for key, lowest in (("width", 1), ("size", 32), ("epochs", 1), ("batch_size", 2),
                            ("patience", 0), ("min_epochs", 0), ("steps_per_epoch", 0)):
            # size: the smallest input the networks take; batch_size: batch normalisation
            check_number(where, key, getattr(self, key), lowest, integer=True)
        check_number(where, "aspect", self.aspect, 1, 4)
        if self.crop == "tiles" and self.aspect != 1:
            raise config_error(where, "aspect", self.aspect, "must be 1 with crop tiles "
                               "(square tiles)")
        if self.size / self.aspect < 16:
            raise config_error(where, "aspect", self.aspect, f"must leave the input at least "
                               f"16 px wide (size {self.size} / aspect)")
        for key in ("lr", "weight_decay"):
            check_number(where, key, getattr(self, key), 0)
        check_amp(where, self.amp)
        check_choice(where, "select", self.select, SELECTIONS)
        check_number(where, "ema", self.ema, 0, 1, bounds="[)")
        check_choice(where, "tta", self.tta, (True, False))
        check_number(where, "threads", self.threads, 1, 256, integer=True)
        check_device(where, "device", self.device)
        check_number(where, "members", self.members, 1, 64, integer=True)
        if self.members > 1 and self.select != "ema":
            raise config_error(where, "members", self.members, "needs select: ema (each "
                               "member's own best validation epoch is not implemented)")


@dataclass
class TrainingSet:
    """What one strategy trains on.

    `inputs` `(N, H, W)` float32 in [0, 1], `labels` `(N,)` 0/1. `repeat` `(N,)` how many
    times each item is seen per epoch (oversampling), `pos_weight` the loss weight of a
    positive (class weighting), `augment` whether the classic augmentation is applied.
    """

    inputs: np.ndarray
    labels: np.ndarray
    repeat: np.ndarray | None = None
    pos_weight: float = 1.0
    augment: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int64)
        if self.inputs.ndim != 3 or len(self.inputs) != len(self.labels):
            raise ValueError("inputs must be (N, H, W) with one label each")
        if self.repeat is None:
            self.repeat = np.ones(len(self.labels), np.int64)

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        assert self.repeat is not None
        return rng.permutation(np.repeat(np.arange(len(self.labels)), self.repeat))


@dataclass
class TrainedClassifier:
    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_auc: float
    seconds: float
    device: str


def _autocast(config: ClassifierConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if not use_bf16(config.amp, device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _batches(train: TrainingSet, rng: np.random.Generator, config: ClassifierConfig,
             pending: list[int]) -> Any:
    """One epoch's batches of indices: one shuffled pass, or `steps_per_epoch` batches
    taken from consecutive shuffled passes (continued across epochs through `pending`)."""
    if not config.steps_per_epoch:
        order = train.epoch_order(rng)
        for start in range(0, len(order), config.batch_size):
            if len(order[start:start + config.batch_size]) >= 2:  # BatchNorm needs two
                yield order[start:start + config.batch_size]
        return
    for _ in range(config.steps_per_epoch):
        while len(pending) < config.batch_size:
            pending += train.epoch_order(rng).tolist()
        batch = pending[:config.batch_size]
        del pending[:config.batch_size]
        yield np.asarray(batch)


# ema: epochs whose validation score the history keeps (scoring every epoch cost ~1/4 of a
# small tile classifier's time)
VAL_POINTS = 5


def _scored(epoch: int, epochs: int) -> bool:
    """Whether the ema rule scores validation after `epoch` of `epochs` (1-based)."""
    return epochs <= VAL_POINTS or any(
        epoch == round(k * epochs / VAL_POINTS) for k in range(1, VAL_POINTS + 1))


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, config: ClassifierConfig,
            device: torch.device | None = None, batch_size: int = 128) -> np.ndarray:
    """Lesion probabilities `(N,)` in [0, 1] for inputs `(N, S, S)` (with `config.tta`, the
    mean of each image's and its left-right mirror's probability)."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with fixed_threads(config.threads):
        for start in range(0, len(inputs), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size]))
            x = x[:, None].to(device)
            views = (x, x.flip(-1)) if config.tta else (x,)
            probs = []
            for view in views:
                with _autocast(config, device):
                    logits = model(view)
                probs.append(torch.sigmoid(logits.float()))
            out.append((sum(probs) / len(probs)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _val_score(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    eps = 1e-6
    p = np.clip(probs, eps, 1 - eps)
    loss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    auc = roc_auc(labels, probs) if 0 < labels.sum() < len(labels) else float("nan")
    return auc, loss


def train_classifier(train: TrainingSet | list[TrainingSet], val_inputs: np.ndarray,
                     val_labels: np.ndarray, config: ClassifierConfig, seed: int = 0,
                     on_epoch: Any = None) -> TrainedClassifier:
    """Train on `train`; score (`val_inputs`, `val_labels`) after each epoch; see module doc.

    `val_labels` must hold both classes (the history's val AUC; the model choice of
    ``select: best-val``). `train` may be a list of one training set per member
    (`config.members` of them: the same films drawn apart, e.g. tiles on other grids).
    """
    sets = train if isinstance(train, list) else [train] * config.members
    if len(sets) != config.members:
        raise BoneaugError(f"{len(sets)} training sets for {config.members} members")
    with fixed_threads(config.threads):
        if config.members == 1:
            return _train(sets[0], val_inputs, val_labels, config, seed, on_epoch)
        return _train_members(sets, val_inputs, val_labels, config, seed, on_epoch)


def member_seed(seed: int, member: int) -> int:
    """The seed of member `member` of the classifier of `seed`: `seed` itself for member 0,
    else one drawn from both (no two (seed, member) pairs of a run share one in practice)."""
    if member == 0:
        return seed
    return int(np.random.SeedSequence([seed, member, 0x6D656D]).generate_state(1)[0])


def _train_members(sets: list[TrainingSet], val_inputs: np.ndarray, val_labels: np.ndarray,
                   config: ClassifierConfig, seed: int, on_epoch: Any) -> TrainedClassifier:
    started = time.time()
    trained, history = [], []
    for k in range(config.members):
        def tagged(row: dict[str, float], k: int = k) -> None:
            if on_epoch is not None:
                on_epoch({**row, "member": k})
        one = _train(sets[k], val_inputs, val_labels, config, member_seed(seed, k), tagged)
        trained.append(one)
        history += [{**row, "member": k} for row in one.history]
    model = Members([one.model for one in trained])
    model.eval()
    device = next(model.parameters()).device
    val_auc, _ = _val_score(np.asarray(val_labels, np.int64),
                            predict(model, val_inputs, config, device))
    return TrainedClassifier(model, history, trained[0].best_epoch, val_auc,
                             time.time() - started, trained[0].device)


def _train(train: TrainingSet, val_inputs: np.ndarray, val_labels: np.ndarray,
           config: ClassifierConfig, seed: int, on_epoch: Any) -> TrainedClassifier:
    started = time.time()
    val_labels = np.asarray(val_labels, np.int64)
    if not 0 < val_labels.sum() < len(val_labels):
        raise BoneaugError("the validation set needs both lesion and normal images (it has "
                           f"{int(val_labels.sum())} lesion of {len(val_labels)})")
    if not 0 < train.labels.sum() < len(train.labels):
        raise BoneaugError("the training set needs both lesion and normal images (it has "
                           f"{int(train.labels.sum())} lesion of {len(train.labels)})")
    device = pick_device(config.device, Ranks())  # one process: no torchrun here
    torch.manual_seed(seed)
    model = build_classifier(config.arch, config.width, config.pool).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(train.pos_weight),
                                                           device=device))
    rng = np.random.default_rng([seed, 1])
    augment = ClassicAugmentation(seed) if train.augment else None
    inputs = torch.from_numpy(np.ascontiguousarray(train.inputs, np.float32))
    labels = torch.from_numpy(train.labels.astype(np.float32))
    averaging = config.select == "ema"
    average = _WeightAverage(model, config.ema) if averaging else None
    total_steps = config.epochs * _steps_per_epoch(train, config)

    pending: list[int] = []  # the rest of a pass that an epoch of fixed steps cut short
    history: list[dict[str, float]] = []
    best: tuple[float, float, int] | None = None
    best_state: dict[str, torch.Tensor] = {}
    since_best = 0
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for index in _batches(train, rng, config, pending):
            if averaging:  # cosine from lr down to 5 % of it over the whole budget
                fraction = min(step / max(total_steps - 1, 1), 1.0)
                for group in optimiser.param_groups:
                    group["lr"] = config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(
                        math.pi * fraction)))
            x = inputs[index][:, None]
            x, y = x.to(device), labels[index].to(device)
            if augment is not None:
                x = augment(x)
            with _autocast(config, device):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            if average is not None:
                average.update(model)
            total += float(loss.detach()) * len(index)
            seen += len(index)
        val_auc = val_loss = float("nan")
        if average is None or _scored(epoch, config.epochs):
            scored = average.model if average is not None else model
            val_auc, val_loss = _val_score(val_labels, predict(scored, val_inputs, config,
                                                               device))
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "val_auc": val_auc,
               "val_loss": val_loss}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if averaging:
            continue
        key = (val_auc, -val_loss, -epoch)
        if best is None or key > best:
            best = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            since_best = 0
        else:
            since_best += 1
        if epoch >= config.min_epochs and since_best >= config.patience:
            break
    if average is not None:
        final = history[-1]
        average.model.eval()
        return TrainedClassifier(average.model, history, int(final["epoch"]),
                                 float(final["val_auc"]), time.time() - started, str(device))
    assert best is not None
    model.load_state_dict(best_state)
    model.eval()
    return TrainedClassifier(model, history, -best[2], best[0], time.time() - started,
                             str(device))


def _steps_per_epoch(train: TrainingSet, config: ClassifierConfig) -> int:
    """Batches in one epoch: `steps_per_epoch`, or those of one pass (the last batch is
    dropped when it would hold a single item)."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    assert train.repeat is not None
    items = int(train.repeat.sum())
    full, rest = divmod(items, config.batch_size)
    return full + (1 if rest >= 2 else 0)


class _WeightAverage:
    """An exponential moving average of a model's weights and batch-norm statistics.

    After step t: ``avg = d * avg + (1 - d) * current`` with ``d = min(decay, (1 + t) /
    (10 + t))``, so that a short run is not dominated by the initial weights; integer
    buffers (batch-norm's step count) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.decay = decay
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        current = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(current[name].detach(), alpha=1 - decay)
            else:
                value.copy_(current[name])
