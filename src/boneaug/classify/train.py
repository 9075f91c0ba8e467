"""Train one lesion classifier: a plain loop, early stopping and model choice on val AUC.

`train_classifier(train, val, config, seed)` trains on a `TrainingSet` (inputs, labels,
how positives are weighted or repeated, whether to augment) and keeps the weights of the
epoch with the best validation ROC AUC (ties: the lower validation loss, then the
earlier epoch). Training stops when the validation AUC has not improved for `patience`
epochs. `predict` scores inputs with a trained model.

Same seed + same device -> the same model: the shuffling, the augmentation and the
initial weights all come from generators seeded by `seed`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    Rand2DElastic,
    RandAdjustContrast,
    RandAffine,
    RandFlip,
    RandGaussianNoise,
    RandScaleIntensity,
)
from torch import nn

from boneaug.classify.inputs import CROPS
from boneaug.classify.metrics import roc_auc
from boneaug.classify.model import ARCHS, LesionClassifier, build_classifier
from boneaug.config import build_config
from boneaug.distributed import Ranks, pick_device
from boneaug.errors import BoneaugError
from boneaug.gan import bf16_is_fast


@dataclass
class ClassifierConfig:
    """How to build and train a classifier. Defaults are the CPU benchmark's."""

    arch: str = "cnn"
    width: int = 16             # first-stage channels of the ResNets
    size: int = 128             # input side in pixels
    crop: str = "bone"          # "bone": the bone's bounding box; "image": the whole radiograph
    epochs: int = 30            # at most
    steps_per_epoch: int = 0    # batches between validations; 0 = one pass over the set
    patience: int = 8           # epochs without a better val AUC before stopping
    min_epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    amp: str | bool = "auto"    # bf16 autocast where it is fast (CUDA, CPUs with bf16)
    device: str = "auto"

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "classifier") -> ClassifierConfig:
        return build_config(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self, where: str = "classifier") -> None:
        def bad(key: str, why: str) -> BoneaugError:
            return BoneaugError(f"{where}: {key} {why}, got {getattr(self, key)!r}")

        if self.arch not in ARCHS:
            raise bad("arch", f"must be one of {', '.join(ARCHS)}")
        if self.crop not in CROPS:
            raise bad("crop", f"must be one of {', '.join(CROPS)}")
        for key in ("width", "size", "epochs", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, "must be a positive whole number")
        if self.size < 32:
            raise bad("size", "must be at least 32")
        if self.batch_size < 2:
            raise bad("batch_size", "must be at least 2 (batch normalisation)")
        for key in ("patience", "min_epochs", "steps_per_epoch"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(key, "must be a whole number >= 0")
        for key in ("lr", "weight_decay"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 \
                    or not math.isfinite(value):
                raise bad(key, "must be a number >= 0")
        if self.amp not in ("auto", True, False):
            raise bad("amp", "must be auto, true or false")


@dataclass
class TrainingSet:
    """What one strategy trains on.

    `inputs` `(N, S, S)` float32 in [0, 1], `labels` `(N,)` 0/1. `repeat` `(N,)` how many
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
            raise ValueError("inputs must be (N, S, S) with one label each")
        if self.repeat is None:
            self.repeat = np.ones(len(self.labels), np.int64)

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        assert self.repeat is not None
        return rng.permutation(np.repeat(np.arange(len(self.labels)), self.repeat))


@dataclass
class TrainedClassifier:
    model: LesionClassifier
    history: list[dict[str, float]]
    best_epoch: int
    best_val_auc: float
    seconds: float
    device: str


def classic_augmentation(seed: int) -> Compose:
    """The `classic` strategy's transforms on one `(1, S, S)` image in [0, 1]: left-right
    flip (left and right limbs), small rotation / scale / shift, a mild elastic warp,
    gamma, intensity scale and detector-like noise. Seeded."""
    transform = Compose([
        RandFlip(prob=0.5, spatial_axis=1),
        RandAffine(prob=0.7, rotate_range=0.17, scale_range=0.08, translate_range=(4, 4),
                   padding_mode="zeros"),
        Rand2DElastic(spacing=(24, 24), magnitude_range=(0.5, 1.5), prob=0.3,
                      padding_mode="zeros"),
        RandAdjustContrast(prob=0.5, gamma=(0.8, 1.25)),
        RandScaleIntensity(factors=0.1, prob=0.5),
        RandGaussianNoise(prob=0.3, std=0.01),
    ])
    transform.set_random_state(seed=seed)
    return transform


def _autocast(config: ClassifierConfig, device: torch.device) -> contextlib.AbstractContextManager:
    enabled = bf16_is_fast(device) if config.amp == "auto" else bool(config.amp)
    if not enabled:
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


@torch.no_grad()
def predict(model: nn.Module, inputs: np.ndarray, config: ClassifierConfig,
            device: torch.device | None = None, batch_size: int = 128) -> np.ndarray:
    """Lesion probabilities `(N,)` in [0, 1] for inputs `(N, S, S)`."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size]))
        with _autocast(config, device):
            logits = model(x[:, None].to(device))
        out.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _val_score(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    eps = 1e-6
    p = np.clip(probs, eps, 1 - eps)
    loss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    auc = roc_auc(labels, probs) if 0 < labels.sum() < len(labels) else float("nan")
    return auc, loss


def train_classifier(train: TrainingSet, val_inputs: np.ndarray, val_labels: np.ndarray,
                     config: ClassifierConfig, seed: int = 0,
                     on_epoch: Any = None) -> TrainedClassifier:
    """Train on `train`, choose the epoch on (`val_inputs`, `val_labels`); see module doc.

    `val_labels` must hold both classes (model choice is on val ROC AUC).
    """
    started = time.time()
    val_labels = np.asarray(val_labels, np.int64)
    if not 0 < val_labels.sum() < len(val_labels):
        raise BoneaugError("the validation set needs both lesion and normal images to choose "
                           f"a model by AUC (it has {int(val_labels.sum())} lesion of "
                           f"{len(val_labels)})")
    if not 0 < train.labels.sum() < len(train.labels):
        raise BoneaugError("the training set needs both lesion and normal images (it has "
                           f"{int(train.labels.sum())} lesion of {len(train.labels)})")
    device = pick_device(config.device, Ranks())  # one process: no torchrun here
    torch.manual_seed(seed)
    model = build_classifier(config.arch, config.width).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(train.pos_weight),
                                                           device=device))
    rng = np.random.default_rng([seed, 1])
    augment = classic_augmentation(seed) if train.augment else None
    inputs = torch.from_numpy(np.ascontiguousarray(train.inputs, np.float32))
    labels = torch.from_numpy(train.labels.astype(np.float32))

    pending: list[int] = []  # the rest of a pass that an epoch of fixed steps cut short
    history: list[dict[str, float]] = []
    best: tuple[float, float, int] | None = None
    best_state: dict[str, torch.Tensor] = {}
    since_best = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for index in _batches(train, rng, config, pending):
            x = inputs[index][:, None]
            if augment is not None:
                x = torch.stack([torch.as_tensor(augment(img)).float().clamp(0, 1)
                                 for img in x])
            x, y = x.to(device), labels[index].to(device)
            with _autocast(config, device):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        probs = predict(model, val_inputs, config, device)
        val_auc, val_loss = _val_score(val_labels, probs)
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "val_auc": val_auc,
               "val_loss": val_loss}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        key = (val_auc, -val_loss, -epoch)
        if best is None or key > best:
            best = key
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            since_best = 0
        else:
            since_best += 1
        if epoch >= config.min_epochs and since_best >= config.patience:
            break
    assert best is not None
    model.load_state_dict(best_state)
    model.eval()
    return TrainedClassifier(model, history, -best[2], best[0], time.time() - started,
                             str(device))
