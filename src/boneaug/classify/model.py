"""The lesion classifier: a MONAI ResNet or DenseNet121, one input channel, one logit.

Architectures (`ARCHS`):

- ``cnn`` (the CPU default): four MONAI `Convolution` blocks (3x3 conv, batch norm,
  ReLU), each followed by 2x2 max-pooling, widths ``width * (1, 2, 4, 4)``, global average
  pooling, dropout and one linear unit: 61 k parameters at ``width: 16``. Trained from
  scratch on a few hundred radiographs, it generalises better than the ResNets: on
  phantom femurs with obvious lesions (300 training images, 96 px bone crops) it reached
  test AUC 0.92 where resnet18-w16 reached 0.79 (docs/phantom.md).
- ``resnet10`` / ``resnet18``: MONAI's `ResNet` with basic blocks (1 or 2 per stage),
  stage widths ``width * (1, 2, 4, 8)``, a stride-2 7x7 stem and max-pool. With
  ``width: 16`` resnet18 has 0.7 M parameters (training speed: docs/performance.md).
  ``width: 64`` is the standard ResNet-18 (11 M).
- ``densenet121``: MONAI's `DenseNet121` (7 M parameters), the usual radiograph
  classifier; far slower than the small networks on a CPU, the choice on a GPU.

Input `(B, 1, S, S)` float in `[0, 1]`; output `(B,)` logits (higher = more likely lesion).

With ``members`` > 1 `build_classifier` returns `Members`: that many networks of the arch,
trained apart (`boneaug.classify.train`), whose logits are averaged.
"""

from __future__ import annotations

import math

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import DenseNet121, ResNet
from torch import nn

from boneaug.errors import BoneaugError

ARCHS = ("cnn", "resnet10", "resnet18", "densenet121")


class LesionClassifier(nn.Module):
    """A backbone with one output logit; scales `[0, 1]` input to roughly zero mean."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x * 2.0 - 1.0).reshape(-1)


POOLS = ("mean", "lse")


class SmallCNN(nn.Module):
    """Conv-BN-ReLU + max-pool x4, then `(B, 1, H, W)` -> `(B, outputs)` by one of two heads:

    - ``mean``: global average pooling of the features, dropout, linear;
    - ``lse``: dropout and the linear unit applied at every cell of the feature map (a map
      of local lesion logits), pooled by a smooth maximum, ``log(mean(exp(r x))) / r``
      with ``r = 4``: a multiple-instance head, whose answer is the most lesion-like place
      rather than the average over the whole bone, so a small lesion is not diluted.
    """

    def __init__(self, width: int = 16, dropout: float = 0.2, outputs: int = 1,
                 pool: str = "mean") -> None:
        super().__init__()
        if pool not in POOLS:
            raise BoneaugError(f"classifier pool must be one of {', '.join(POOLS)}, got "
                               f"{pool!r}")
        self.pool = pool
        widths = [width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        previous = 1
        for channels in widths:
            layers += [Convolution(2, previous, channels, kernel_size=3, act="RELU",
                                   norm="BATCH"), nn.MaxPool2d(2)]
            previous = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(previous, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        if self.pool == "mean":
            return self.head(features.mean(dim=(2, 3)))
        local = self.head(features.flatten(2).transpose(1, 2))  # (B, cells, outputs)
        r = 4.0
        cells = local.shape[1]
        return (torch.logsumexp(r * local.float(), dim=1) - math.log(cells)) / r


class Members(nn.Module):
    """Several classifiers as one: the mean of their logits. A few-lesion classifier's
    answer depends on its initial weights and the order it saw its few lesions in; the
    mean of a few trained apart depends on them less (docs/results.md)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members]).mean(dim=0)


def build_classifier(arch: str = "cnn", width: int = 16, pool: str = "mean",
                     members: int = 1) -> nn.Module:
    """A fresh classifier; `width` is the first stage's channels (cnn and the ResNets),
    `pool` the head of the cnn (`SmallCNN`); `members` > 1: a `Members` of that many."""
    if members > 1:
        return Members([build_classifier(arch, width, pool) for _ in range(members)])
    if arch == "cnn":
        if width < 4:
            raise BoneaugError(f"classifier width must be at least 4, got {width}")
        return LesionClassifier(SmallCNN(width, pool=pool))
    if arch in ("resnet10", "resnet18"):
        if width < 4:
            raise BoneaugError(f"classifier width must be at least 4, got {width}")
        layers = [1, 1, 1, 1] if arch == "resnet10" else [2, 2, 2, 2]
        backbone: nn.Module = ResNet(
            "basic", layers, [width, 2 * width, 4 * width, 8 * width], spatial_dims=2,
            n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, num_classes=1)
    elif arch == "densenet121":
        backbone = DenseNet121(spatial_dims=2, in_channels=1, out_channels=1)
    else:
        raise BoneaugError(f"classifier arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    return LesionClassifier(backbone)
