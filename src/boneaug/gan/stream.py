"""The CycleGAN's data: the two patch stacks checked, and an endless, seeded, per-rank
stream of patch indices into each."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from boneaug.config import config_error
from boneaug.errors import BoneaugError
from boneaug.gan.config import SECTION
from boneaug.gan.networks import check_patch_size, to_model_range

__all__ = ["PatchStream", "check_domains", "check_masks", "check_patches", "to_batch"]


class PatchStream:
    """Indices into `n` patches: a fresh seeded permutation every epoch, sharded over ranks.

    The permutation of epoch `e` comes from `np.random.default_rng([seed, domain, e])`, so
    the stream is a pure function of `position` (samples drawn on this rank) and resumes
    exactly from it. Each epoch is padded by wrapping to a multiple of `world_size` (as
    torch's DistributedSampler does) and rank `r` takes every `world_size`-th entry.
    """

    def __init__(self, n: int, seed: int, domain: int, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.domain = n, seed, domain
        self.rank, self.world_size = rank, world_size
        self.shard_len = math.ceil(n / world_size)
        self.position = 0
        self._epoch, self._shard = -1, np.empty(0, dtype=np.int64)

    def _shard_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            perm = np.random.default_rng([self.seed, self.domain, epoch]).permutation(self.n)
            perm = np.resize(perm, self.shard_len * self.world_size)  # wraps to pad
            self._epoch, self._shard = epoch, perm[self.rank::self.world_size]
        return self._shard

    def next(self, k: int) -> np.ndarray:
        out = np.empty(k, dtype=np.int64)
        for i in range(k):
            epoch, offset = divmod(self.position, self.shard_len)
            out[i] = self._shard_of(epoch)[offset]
            self.position += 1
        return out


def to_batch(patches: np.ndarray, index: np.ndarray, device: torch.device,
             channels_last: bool) -> torch.Tensor:
    """`(N, P, P)` float32 in [0, 1] -> `(len(index), 1, P, P)` in [-1, 1] on `device`."""
    batch = torch.from_numpy(patches[index]).unsqueeze(1)
    batch = to_model_range(batch.to(device, non_blocking=True))
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def check_patches(patches: Any, name: str) -> np.ndarray:
    """A stack of `name` patches -> contiguous float32 `(N, P, P)` in [0, 1], or one line
    saying what is wrong with it."""
    if not isinstance(patches, np.ndarray):
        raise BoneaugError(f"{name} patches: expected a numpy array, got "
                           f"{type(patches).__name__}")
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise BoneaugError(f"{name} patches: expected shape (N, P, P), got {patches.shape}")
    n, p = patches.shape[0], patches.shape[1]
    if n == 0:
        raise BoneaugError(f"{name} patches: the stack is empty")
    check_patch_size(p, f"{name} patches: patch size")
    patches = np.ascontiguousarray(patches, dtype=np.float32)
    lo, hi = float(patches.min()), float(patches.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise BoneaugError(f"{name} patches: values must be finite and in [0, 1], found "
                           f"[{lo:.4g}, {hi:.4g}]")
    return patches


def check_domains(healthy: Any, lesion: Any, batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Both stacks checked, of one patch size, each holding at least a batch."""
    healthy = check_patches(healthy, "healthy")
    lesion = check_patches(lesion, "lesion")
    if healthy.shape[1] != lesion.shape[1]:
        raise BoneaugError(f"patch sizes differ: healthy {healthy.shape[1]}, lesion "
                           f"{lesion.shape[1]}")
    fewest = min((len(healthy), "healthy"), (len(lesion), "lesion"))
    if batch_size > fewest[0]:
        raise config_error(SECTION, "batch_size", batch_size,
                           f"must be at most the {fewest[0]} {fewest[1]} patches")
    return healthy, lesion


def check_masks(masks: Any, lesion: Any, wanted: bool) -> np.ndarray | None:
    """The lesion patches' masks of a mask-conditioned run: float32 `(M, P, P)` in [0, 1],
    one per lesion patch; None for a run without masks (given masks are then refused, so
    that a forgotten `mask: true` does not pass silently)."""
    if not wanted:
        if masks is not None:
            raise BoneaugError("lesion masks were given, but gan.mask is off; set "
                               "`mask: true` to train a mask-conditioned generator")
        return None
    if masks is None:
        raise BoneaugError("gan.mask needs the lesion patches' masks (train from a patch "
                           "folder, `boneaug gan train`, which draws them from its boxes)")
    masks = np.ascontiguousarray(masks, dtype=np.float32)
    shape = getattr(lesion, "shape", None)
    if masks.ndim != 3 or shape is None or masks.shape != tuple(shape):
        raise BoneaugError(f"lesion masks: expected one per lesion patch, shape {shape}, "
                           f"got {masks.shape}")
    if not np.isfinite(masks).all() or masks.min() < 0 or masks.max() > 1:
        raise BoneaugError("lesion masks: values must be finite and in [0, 1]")
    if not (masks > 0).reshape(len(masks), -1).any(axis=1).all():
        raise BoneaugError("lesion masks: some lesion patch has an empty mask")
    return masks
