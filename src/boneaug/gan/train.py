"""Train a CycleGAN between two stacks of grayscale patches: healthy bone <-> bone with lesion.

Read it top to bottom: the config, the data stream, the one training step, then
`train_cyclegan`, whose body is the loop. Domain A of the reference is `healthy`, domain B
is `lesion`; the generator that synthesis uses is `healthy_to_lesion` (the reference's G_A),
judged by `d_lesion` (the reference's D_A).

Same seed, same device and `threads` -> the same weights (the intra-op thread count is
pinned to `threads` while training, whatever OMP_NUM_THREADS says), and a run stopped and resumed
from `checkpoints/last.pt` ends with the same bits as one that never stopped: everything
that decides the next iteration is in the checkpoint (weights, Adam moments, history pools
and their generators, the data streams' positions, the iteration, torch's RNG states). The
learning rate is a pure function of the iteration (nanoGPT style), so it needs no state of
its own. The data streams draw from seeded numpy generators created per epoch, so their
state is their position; numpy's and Python's global generators are not used.

Many processes: launched by `torchrun`, this same function sees RANK / WORLD_SIZE, joins the
process group (nccl on CUDA, gloo on CPU), wraps both networks pairs in
DistributedDataParallel and gives each rank its own shard of every epoch; only rank 0
writes files. `batch_size` is per process.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from boneaug.data.files import atomic_path, remove_interrupted_writes
from boneaug.data.runinfo import write_run_json
from boneaug.distributed import DEFAULT_THREADS, fixed_threads, join, pick_device
from boneaug.errors import BoneaugError
from boneaug.gan.losses import cycle_loss, discriminator_loss, identity_loss, lsgan_loss
from boneaug.gan.networks import (
    PatchGANDiscriminator,
    ResnetGenerator,
    check_patch_size,
    from_model_range,
    to_model_range,
)
from boneaug.gan.pool import ImagePool

__all__ = ["GanConfig", "TrainResult", "train_cyclegan", "load_generator", "train_step",
           "Generators", "Discriminators", "LOSS_NAMES", "lr_factor", "make_adam",
           "GENERATOR_FILE"]

LOSS_NAMES = ("g_adv_lesion", "g_adv_healthy", "cycle_healthy", "cycle_lesion",
              "identity_lesion", "identity_healthy", "g_total", "d_lesion", "d_healthy")
GENERATOR_FILE = "generator_healthy_to_lesion.pt"
_CHECKPOINT_FORMAT = "boneaug-cyclegan-checkpoint"
_GENERATOR_FORMAT = "boneaug-cyclegan-generator"


# ------------------------------------------------------------------------------------------
# Config


@dataclass
class GanConfig:
    """CycleGAN training settings; the defaults are the reference's.

    `iterations` counts optimiser steps (one batch of each domain each). The learning rate
    is `lr` until `decay_start` (default: half of `iterations`, as the reference's n epochs
    constant + n epochs decay), then falls linearly towards 0. `amp`: "auto" (bf16 autocast
    on CUDA, and on CPUs with native bf16 convolutions), "bf16" or "off"; `channels_last`:
    "auto" (off: it measured slower everywhere), True or False.
    """

    n_blocks: int = 9
    ngf: int = 64
    ndf: int = 64
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    iterations: int = 20000
    decay_start: int | None = None
    sample_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: str | bool = "auto"
    compile: bool = False
    threads: int = DEFAULT_THREADS  # intra-op threads (pinned: results depend on the count)

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool):  # YAML `amp: true` / `amp: false`
            self.amp = "bf16" if self.amp else "off"
        if self.decay_start is None and isinstance(self.iterations, int):
            self.decay_start = self.iterations // 2
        self._validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GanConfig:
        """Build from a plain mapping (e.g. a YAML section); unknown keys and bad values
        raise `BoneaugError` with one line naming the key."""
        if not isinstance(values, dict):
            raise BoneaugError(f"gan config: expected a mapping of settings, got "
                               f"{type(values).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise BoneaugError(f"gan config: unknown key {key!r} (known: "
                                   f"{', '.join(known)})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _validate(self) -> None:
        def bad(key: str, why: str) -> BoneaugError:
            return BoneaugError(f"gan config: {key}={getattr(self, key)!r}: {why}")

        for key in ("n_blocks", "ngf", "ndf", "batch_size", "iterations", "sample_every",
                    "checkpoint_every", "log_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, "expected a positive integer")
        for key in ("pool_size", "seed"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(key, "expected an integer >= 0")
        d = self.decay_start
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= self.iterations:
            raise bad("decay_start", f"expected an integer in [0, iterations={self.iterations}]")
        for key, lo, hi in (("lr", 0.0, math.inf), ("beta1", 0.0, 1.0), ("beta2", 0.0, 1.0),
                            ("lambda_cycle", 0.0, math.inf), ("lambda_identity", 0.0, math.inf)):
            value = getattr(self, key)
            if not isinstance(value, int | float) or isinstance(value, bool) \
                    or not math.isfinite(value) or not lo <= value < hi:
                raise bad(key, f"expected a number in [{lo}, {hi})")
        if self.lr <= 0:
            raise bad("lr", "expected a positive number")
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise bad("device", "expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.amp not in ("auto", "bf16", "off"):
            raise bad("amp", "expected 'auto', 'bf16' or 'off' (or true/false)")
        if self.channels_last not in ("auto", True, False):
            raise bad("channels_last", "expected 'auto', true or false")
        if not isinstance(self.compile, bool):
            raise bad("compile", "expected true or false")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) \
                or not 1 <= self.threads <= 256:
            raise bad("threads", "expected a whole number from 1 to 256")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds convolutions up on `device` (CUDA, or AVX-512 bf16/AMX)."""
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def make_adam(params: Any, lr: float, betas: tuple[float, float],
              device: torch.device) -> torch.optim.Adam:
    """The reference's Adam, with torch's fused kernel on CPU and CUDA.

    Same algorithm and hyper-parameters as the default per-parameter loop; the fused
    kernel makes one pass over each parameter instead of one per arithmetic step, which
    took the CPU optimiser steps from ~35 ms to ~10 ms per iteration at the reference
    size (docs/performance.md). Results agree with the loop to float rounding, not bit
    for bit. A checkpoint keeps the flag: resuming one saved without it continues with the
    loop.
    """
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused)


def lr_factor(iteration: int, config: GanConfig) -> float:
    """Multiplier of `config.lr` at 0-based `iteration`: 1 before `decay_start`, then
    linear towards 0 (the reference's `1 - max(0, e - n) / (n_decay + 1)` per iteration)."""
    span = config.iterations - config.decay_start + 1
    return 1.0 - max(0, iteration - config.decay_start + 1) / span


# ------------------------------------------------------------------------------------------
# Data: an endless, seeded, per-rank stream of patch indices


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


def _to_batch(patches: np.ndarray, index: np.ndarray, device: torch.device,
              channels_last: bool) -> torch.Tensor:
    """`(N, P, P)` float32 in [0, 1] -> `(len(index), 1, P, P)` in [-1, 1] on `device`."""
    batch = torch.from_numpy(patches[index]).unsqueeze(1)
    batch = to_model_range(batch.to(device, non_blocking=True))
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


# ------------------------------------------------------------------------------------------
# The networks, paired so that DDP sees one forward per backward


class Generators(nn.Module):
    """Both generators; `forward` runs the two cycles (and the identity maps) in 4 passes.

    The reference runs 6 passes: G_hl(healthy), G_lh(fake lesion), G_lh(lesion),
    G_hl(fake healthy), and the identity passes G_hl(lesion), G_lh(healthy). A pass on a real
    image and its identity pass use the same network on independent inputs, and instance
    norm normalises each sample on its own, so stacking them into one batch is the same math
    in fewer, larger (faster) convolutions.
    """

    def __init__(self, healthy_to_lesion: ResnetGenerator, lesion_to_healthy: ResnetGenerator,
                 identity: bool = True) -> None:
        super().__init__()
        self.healthy_to_lesion = healthy_to_lesion
        self.lesion_to_healthy = lesion_to_healthy
        self.identity = identity

    def forward(self, real_healthy: torch.Tensor, real_lesion: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        """`(B, 1, P, P)` each -> (fake_lesion, fake_healthy, rec_healthy, rec_lesion,
        idt_lesion, idt_healthy), all `(B, 1, P, P)`; the identity outputs are empty
        `(0, 1, P, P)` tensors when identity is off."""
        n = real_healthy.shape[0]
        if self.identity:
            out_hl = self.healthy_to_lesion(torch.cat([real_healthy, real_lesion]))
            out_lh = self.lesion_to_healthy(torch.cat([real_lesion, real_healthy]))
        else:
            out_hl = self.healthy_to_lesion(real_healthy)
            out_lh = self.lesion_to_healthy(real_lesion)
        fake_lesion, idt_lesion = out_hl[:n], out_hl[n:]
        fake_healthy, idt_healthy = out_lh[:n], out_lh[n:]
        rec_healthy = self.lesion_to_healthy(fake_lesion)
        rec_lesion = self.healthy_to_lesion(fake_healthy)
        return fake_lesion, fake_healthy, rec_healthy, rec_lesion, idt_lesion, idt_healthy


class Discriminators(nn.Module):
    """Both discriminators; `forward` scores real and (pooled) fake of a domain in one batch."""

    def __init__(self, lesion: PatchGANDiscriminator, healthy: PatchGANDiscriminator) -> None:
        super().__init__()
        self.lesion = lesion
        self.healthy = healthy

    def forward(self, real_lesion: torch.Tensor, fake_lesion: torch.Tensor,
                real_healthy: torch.Tensor, fake_healthy: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (scores of [real_lesion; fake_lesion], scores of [real_healthy; fake_healthy]),
        each `(2B, 1, s, s)`: reals first."""
        lesion = self.lesion(torch.cat([real_lesion, fake_lesion.to(real_lesion.dtype)]))
        healthy = self.healthy(torch.cat([real_healthy, fake_healthy.to(real_healthy.dtype)]))
        return lesion, healthy


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP and/or torch.compile wrappers."""
    module = getattr(module, "_orig_mod", module)
    return module.module if isinstance(module, DistributedDataParallel) else module


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


# ------------------------------------------------------------------------------------------
# One training step


def train_step(generators: nn.Module, discriminators: nn.Module,
               opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               pool_lesion: ImagePool, pool_healthy: ImagePool,
               real_healthy: torch.Tensor, real_lesion: torch.Tensor,
               lambda_cycle: float = 10.0, lambda_identity: float = 0.5,
               autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               d_lesion: nn.Module | None = None, d_healthy: nn.Module | None = None,
               ) -> torch.Tensor:
    """One CycleGAN iteration: a generator step, then a discriminator step.

    Same math as the reference (`boneaug.gan.reference.reference_step`) with fewer passes:
    4 batched generator passes instead of 6, and one discriminator pass per domain over
    [real; pooled fake] instead of two. `generators` / `discriminators` are `Generators` /
    `Discriminators`, possibly wrapped in DDP or torch.compile; `d_lesion` / `d_healthy`
    (default: the unwrapped discriminators) score the fakes for the generator loss - they
    are called outside DDP because D's parameters get no gradient there.
    Inputs `(B, 1, P, P)` in [-1, 1]. Returns the detached loss terms, `LOSS_NAMES` order,
    without a host sync.
    """
    discs = _unwrap(discriminators)
    d_lesion = d_lesion if d_lesion is not None else discs.lesion
    d_healthy = d_healthy if d_healthy is not None else discs.healthy

    # 1) generators; D is frozen so the G loss leaves no gradient in it
    _requires_grad(discs, False)
    with autocast():
        fake_lesion, fake_healthy, rec_healthy, rec_lesion, idt_lesion, idt_healthy = \
            generators(real_healthy, real_lesion)
        scores_fake_lesion = d_lesion(fake_lesion)
        scores_fake_healthy = d_healthy(fake_healthy)
    adv_lesion = lsgan_loss(scores_fake_lesion, True)
    adv_healthy = lsgan_loss(scores_fake_healthy, True)
    cyc_healthy = cycle_loss(rec_healthy, real_healthy, lambda_cycle)
    cyc_lesion = cycle_loss(rec_lesion, real_lesion, lambda_cycle)
    if lambda_identity > 0:
        idt_l = identity_loss(idt_lesion, real_lesion, lambda_cycle, lambda_identity)
        idt_h = identity_loss(idt_healthy, real_healthy, lambda_cycle, lambda_identity)
    else:
        idt_l = idt_h = torch.zeros((), device=real_healthy.device)
    loss_g = adv_lesion + adv_healthy + cyc_healthy + cyc_lesion + idt_l + idt_h
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    # 2) discriminators: real vs. a mix of new and past fakes (the history pools)
    _requires_grad(discs, True)
    shown_lesion = pool_lesion.query(fake_lesion)
    shown_healthy = pool_healthy.query(fake_healthy)
    with autocast():
        scores_lesion, scores_healthy = discriminators(real_lesion, shown_lesion,
                                                       real_healthy, shown_healthy)
    n = real_lesion.shape[0]
    loss_d_lesion = discriminator_loss(scores_lesion[:n], scores_lesion[n:])
    loss_d_healthy = discriminator_loss(scores_healthy[:n], scores_healthy[n:])
    opt_d.zero_grad(set_to_none=True)
    # D_lesion and D_healthy share no parameters: one backward of the sum gives each the
    # gradient the reference's two backward calls give it.
    (loss_d_lesion + loss_d_healthy).backward()
    opt_d.step()
    return torch.stack([adv_lesion, adv_healthy, cyc_healthy, cyc_lesion, idt_l, idt_h,
                        loss_g, loss_d_lesion, loss_d_healthy]).detach()


# ------------------------------------------------------------------------------------------
# Results, checkpoints, the generator file


@dataclass
class TrainResult:
    """What `train_cyclegan` did. Paths are None on ranks other than 0 (they write nothing).

    `networks` holds the trained modules (unwrapped, on the training device):
    "healthy_to_lesion", "lesion_to_healthy", "d_lesion", "d_healthy".
    """

    out_dir: Path
    iterations: int
    completed: bool
    seconds: float
    iterations_per_second: float
    final_losses: dict[str, float]
    generator_path: Path | None
    checkpoint_path: Path | None
    losses_path: Path | None
    samples_path: Path | None
    rank: int = 0
    world_size: int = 1
    networks: dict[str, nn.Module] = field(default_factory=dict, repr=False)


def state_dict_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _array_hash(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _plain_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """CPU, contiguous (NCHW) float tensors, independent of the training memory format."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _save_torch(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_generator(generator: ResnetGenerator, path: Path, patch_size: int,
                   extra: dict[str, Any] | None = None) -> str:
    """Write the healthy -> lesion generator for synthesis; returns its content hash."""
    state = _plain_state(generator)
    digest = state_dict_hash(state)
    _save_torch({"format": _GENERATOR_FORMAT, "version": 1, "direction": "healthy_to_lesion",
                 "network": generator.config(), "patch_size": int(patch_size),
                 "sha256": digest, "state_dict": state, **(extra or {})}, path)
    return digest


def load_generator(path: str | Path, device: str | torch.device = "cpu"
                   ) -> tuple[ResnetGenerator, dict[str, Any]]:
    """Load `generator_healthy_to_lesion.pt` -> (generator in eval mode on `device`, info).

    `info` has "network" (constructor arguments), "patch_size", "sha256" (of the weights;
    checked here), "direction", "iteration" and "config". A missing, unreadable, malformed
    or corrupted file raises `BoneaugError` with one line.
    """
    path = Path(path)
    if not path.is_file():
        raise BoneaugError(f"{path}: generator checkpoint not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BoneaugError(f"{path}: not a readable torch checkpoint ({first[:120]})") from None
    if not isinstance(blob, dict) or blob.get("format") != _GENERATOR_FORMAT:
        raise BoneaugError(f"{path}: not a boneaug generator checkpoint (no format "
                           f"{_GENERATOR_FORMAT!r})")
    for key in ("network", "patch_size", "sha256", "state_dict"):
        if key not in blob:
            raise BoneaugError(f"{path}: generator checkpoint lacks {key!r}")
    net_cfg = blob["network"]
    try:
        generator = ResnetGenerator(**net_cfg)
    except (TypeError, ValueError) as exc:
        raise BoneaugError(f"{path}: bad network settings {net_cfg!r} ({exc})") from None
    state = blob["state_dict"]
    if not isinstance(state, dict) or state_dict_hash(state) != blob["sha256"]:
        raise BoneaugError(f"{path}: weights do not match their sha256 (corrupted file?)")
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise BoneaugError(f"{path}: weights do not fit the network "
                           f"({str(exc).splitlines()[0][:120]})") from None
    info = {k: v for k, v in blob.items() if k != "state_dict"}
    return generator.to(device).eval(), info


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# Settings that may change between a run and its resumption: they change what is written
# and how fast, not the math. `iterations` / `decay_start` may change to extend a run (the
# learning-rate schedule then follows the new values).
_RESUMABLE_CHANGES = {"iterations", "decay_start", "sample_every", "checkpoint_every",
                      "log_every", "device", "compile"}


# ------------------------------------------------------------------------------------------
# Sample sheet


@torch.no_grad()
def _sample_sheet(g_hl: nn.Module, g_lh: nn.Module, healthy: torch.Tensor,
                  lesion: torch.Tensor, autocast: Callable, path: Path) -> None:
    """PNG, 6 rows of k patches: healthy, -> lesion, -> back; lesion, -> healthy, -> back."""
    from PIL import Image

    with autocast():
        fake_l = g_hl(healthy)
        rec_h = g_lh(fake_l)
        fake_h = g_lh(lesion)
        rec_l = g_hl(fake_h)
    rows = [healthy, fake_l, rec_h, lesion, fake_h, rec_l]
    rows = [from_model_range(r.float()).cpu().numpy()[:, 0] for r in rows]
    k, p = rows[0].shape[0], rows[0].shape[-1]
    gap = 2
    sheet = np.ones((6 * p + 5 * gap, k * p + (k - 1) * gap), dtype=np.float32)
    for i, row in enumerate(rows):
        for j in range(k):
            sheet[i * (p + gap):i * (p + gap) + p, j * (p + gap):j * (p + gap) + p] = row[j]
    with atomic_path(path) as tmp:
        Image.fromarray(np.round(sheet * 255).astype(np.uint8)).save(tmp)


# ------------------------------------------------------------------------------------------
# Set-up helpers


def _check_patches(patches: Any, name: str) -> np.ndarray:
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


class _GracefulStop:
    """First Ctrl-C: finish the iteration, checkpoint, then stop. Second: stop at once."""

    def __init__(self, enabled: bool) -> None:
        self.requested = False
        self._enabled = enabled and threading.current_thread() is threading.main_thread()
        self._previous: Any = None

    def __enter__(self) -> _GracefulStop:
        if self._enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            signal.signal(signal.SIGINT, self._previous)


def _read_loss_rows(path: Path, up_to: int) -> list[dict[str, Any]]:
    """Rows of an earlier run's losses.csv up to iteration `up_to` (the checkpoint's)."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [row for row in csv.DictReader(fh) if int(row["iteration"]) <= up_to]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise BoneaugError(f"{path}: not the losses.csv of this run ({type(exc).__name__}: "
                           f"{exc}); move it away to resume without the earlier losses") from None


def _write_loss_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["iteration", *LOSS_NAMES, "lr", "seconds"]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------------------
# The training loop


def train_cyclegan(healthy: np.ndarray, lesion: np.ndarray, config: GanConfig,
                   out_dir: str | Path, resume: bool = False, progress: bool = True,
                   stop_after: int | None = None,
                   generator_info: dict[str, Any] | None = None) -> TrainResult:
    """Train the CycleGAN healthy <-> lesion on two unpaired patch stacks.

    Args:
        healthy: domain A, float32 `(N, P, P)` in [0, 1]. `P % 4 == 0`, `P >= 24`.
        lesion: domain B, float32 `(M, P, P)` in [0, 1], same `P`.
        config: the settings.
        out_dir: receives `checkpoints/last.pt` (+ `iter_NNNNNN.pt`), `losses.csv`,
            `samples.png` (+ `samples/iter_NNNNNN.png`), `generator_healthy_to_lesion.pt`
            (when the last iteration is done) and `run.json`. Rank 0 only.
        resume: continue from `out_dir/checkpoints/last.pt`.
        progress: show a progress bar (rank 0).
        stop_after: stop (with a checkpoint) once this many iterations are done in total,
            as an interruption would; for tests and time-boxed jobs.
        generator_info: stored in the generator file beside the weights (synthesis reads
            the bone, its lesion statistics and the patch settings from there).
    """
    with fixed_threads(config.threads):
        return _train_cyclegan(healthy, lesion, config, out_dir, resume, progress,
                               stop_after, generator_info)


def _train_cyclegan(healthy: np.ndarray, lesion: np.ndarray, config: GanConfig,
                    out_dir: str | Path, resume: bool, progress: bool,
                    stop_after: int | None, generator_info: dict[str, Any] | None
                    ) -> TrainResult:
    started = time.time()
    healthy = _check_patches(healthy, "healthy")
    lesion = _check_patches(lesion, "lesion")
    if healthy.shape[1] != lesion.shape[1]:
        raise BoneaugError(f"patch sizes differ: healthy {healthy.shape[1]}, lesion "
                           f"{lesion.shape[1]}")
    patch_size = int(healthy.shape[1])
    fewest = min((len(healthy), "healthy"), (len(lesion), "lesion"))
    if config.batch_size > fewest[0]:
        raise BoneaugError(f"gan config: batch_size {config.batch_size} is more than the "
                           f"{fewest[0]} {fewest[1]} patches; use a batch of at most "
                           f"{fewest[0]}")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    if resume and not last_path.is_file():
        raise BoneaugError(f"{last_path}: nothing to resume (no checkpoint)")
    if not resume and last_path.exists():
        raise BoneaugError(f"{out_dir}: already holds a run (checkpoints/last.pt); resume it "
                           "or choose another folder")
    for folder in (out_dir, ckpt_dir):  # a run killed while writing left these
        remove_interrupted_writes(folder)

    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise BoneaugError(f"gan config: device={config.device!r} but CUDA is not available")
    ddp = join(config.device)
    is_main = ddp.rank == 0
    device = pick_device(config.device, ddp)
    on_cuda = device.type == "cuda"
    use_amp = config.amp == "bf16" or (config.amp == "auto" and bf16_is_fast(device))
    # channels-last was slower in every measured setting, on this CPU and on an H100
    # (docs/performance.md), so "auto" leaves it off; `channels_last: true` turns it on.
    channels_last = config.channels_last is True
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)

    # Networks, optimisers, pools, data streams: the whole training state.
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    g_hl = ResnetGenerator(config.n_blocks, config.ngf)
    g_lh = ResnetGenerator(config.n_blocks, config.ngf)
    d_l = PatchGANDiscriminator(config.ndf)
    d_h = PatchGANDiscriminator(config.ndf)
    generators = Generators(g_hl, g_lh, identity=config.lambda_identity > 0)
    discriminators = Discriminators(d_l, d_h)
    generators.to(device, memory_format=memory_format)
    discriminators.to(device, memory_format=memory_format)
    betas = (config.beta1, config.beta2)
    opt_g = make_adam(generators.parameters(), config.lr, betas, device)
    opt_d = make_adam(discriminators.parameters(), config.lr, betas, device)
    # Pools and data streams are per rank: each rank sees its own shard and keeps its own
    # history; their seeds differ by rank so ranks do not draw in lockstep.
    pool_lesion = ImagePool(config.pool_size, seed=config.seed * 1000 + 2 * ddp.rank)
    pool_healthy = ImagePool(config.pool_size, seed=config.seed * 1000 + 2 * ddp.rank + 1)
    stream_healthy = PatchStream(len(healthy), config.seed, 0, ddp.rank, ddp.world_size)
    stream_lesion = PatchStream(len(lesion), config.seed, 1, ddp.rank, ddp.world_size)
    data_id = {"healthy": [len(healthy), _array_hash(healthy)],
               "lesion": [len(lesion), _array_hash(lesion)]}
    iteration, elapsed_before = 0, 0.0
    loss_rows: list[dict[str, Any]] = []

    if resume:
        ckpt = _load_checkpoint(last_path, config, patch_size, data_id, ddp.world_size)
        for name, module in (("healthy_to_lesion", g_hl), ("lesion_to_healthy", g_lh),
                             ("d_lesion", d_l), ("d_healthy", d_h)):
            module.load_state_dict(ckpt["networks"][name])
        opt_g.load_state_dict(ckpt["optimizers"]["generators"])
        opt_d.load_state_dict(ckpt["optimizers"]["discriminators"])
        mine = ckpt["ranks"][ddp.rank]
        pool_lesion.load_state_dict(mine["pool_lesion"], device)
        pool_healthy.load_state_dict(mine["pool_healthy"], device)
        stream_healthy.position = int(ckpt["streams"]["healthy"])
        stream_lesion.position = int(ckpt["streams"]["lesion"])
        _set_rng_state(mine["rng"], device)
        iteration, elapsed_before = int(ckpt["iteration"]), float(ckpt["elapsed_seconds"])
        loss_rows = _read_loss_rows(out_dir / "losses.csv", iteration)
        del ckpt

    # Wrappers: DDP averages gradients across ranks; compile fuses the small kernels.
    gen_step: nn.Module = generators
    disc_step: nn.Module = discriminators
    if ddp.enabled:
        ids = [device.index] if on_cuda else None
        gen_step = DistributedDataParallel(generators, device_ids=ids, broadcast_buffers=False)
        disc_step = DistributedDataParallel(discriminators, device_ids=ids,
                                            broadcast_buffers=False)
    d_lesion_fn: nn.Module = d_l
    d_healthy_fn: nn.Module = d_h
    if config.compile:
        gen_step, disc_step = torch.compile(gen_step), torch.compile(disc_step)
        d_lesion_fn, d_healthy_fn = torch.compile(d_l), torch.compile(d_h)

    # Fixed patches for the sample sheets: the first few of each domain.
    k = min(4, len(healthy), len(lesion))
    show_healthy = _to_batch(healthy, np.arange(k), device, channels_last)
    show_lesion = _to_batch(lesion, np.arange(k), device, channels_last)

    def save_checkpoint(numbered: bool) -> Path | None:
        rank_state = {"pool_lesion": pool_lesion.state_dict(),
                      "pool_healthy": pool_healthy.state_dict(), "rng": _rng_state(device)}
        if ddp.enabled:
            ranks: list[Any] = [None] * ddp.world_size
            dist.all_gather_object(ranks, rank_state)
        else:
            ranks = [rank_state]
        path = None
        if is_main:
            ckpt = {
                "format": _CHECKPOINT_FORMAT, "version": 1, "iteration": iteration,
                "config": config.to_dict(), "patch_size": patch_size, "data": data_id,
                "world_size": ddp.world_size,
                "elapsed_seconds": elapsed_before + time.time() - run_started,
                "networks": {"healthy_to_lesion": _plain_state(g_hl),
                             "lesion_to_healthy": _plain_state(g_lh),
                             "d_lesion": _plain_state(d_l), "d_healthy": _plain_state(d_h)},
                "optimizers": {"generators": opt_g.state_dict(),
                               "discriminators": opt_d.state_dict()},
                "streams": {"healthy": stream_healthy.position,
                            "lesion": stream_lesion.position},
                "ranks": ranks,
            }
            _write_loss_rows(out_dir / "losses.csv", loss_rows)
            if numbered:
                path = ckpt_dir / f"iter_{iteration:06d}.pt"
                _save_torch(ckpt, path)
                with atomic_path(last_path) as tmp:
                    shutil.copyfile(path, tmp)
            else:
                _save_torch(ckpt, last_path)
            path = last_path
        if ddp.enabled:
            dist.barrier()
        return path

    def save_samples() -> Path:
        path = out_dir / "samples" / f"iter_{iteration:06d}.png"
        _sample_sheet(g_hl, g_lh, show_healthy, show_lesion, autocast, path)
        with atomic_path(out_dir / "samples.png") as tmp:
            shutil.copyfile(path, tmp)
        return out_dir / "samples.png"

    pending: list[tuple[int, float, float, torch.Tensor]] = []

    def flush() -> dict[str, float]:
        """Move the pending loss terms to the host in one transfer (one sync per flush)."""
        if not pending:
            return {}
        values = torch.stack([p[3] for p in pending]).float().cpu().tolist()
        for (it, lr, secs, _), terms in zip(pending, values, strict=True):
            loss_rows.append({"iteration": it, **dict(zip(LOSS_NAMES, terms, strict=True)),
                              "lr": lr, "seconds": round(secs, 3)})
        pending.clear()
        return dict(zip(LOSS_NAMES, values[-1], strict=True))

    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    end = config.iterations if stop_after is None else min(stop_after, config.iterations)
    bar = _progress_bar(progress and is_main, config.iterations, iteration)
    run_started = time.time()
    start_iteration = iteration
    last_losses: dict[str, float] = {}
    checkpoint_path: Path | None = None
    samples_path: Path | None = None
    with _GracefulStop(enabled=not ddp.enabled) as stop:
        while iteration < end and not stop.requested:
            lr = config.lr * lr_factor(iteration, config)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = lr
            real_healthy = _to_batch(healthy, stream_healthy.next(config.batch_size), device,
                                     channels_last)
            real_lesion = _to_batch(lesion, stream_lesion.next(config.batch_size), device,
                                    channels_last)
            terms = train_step(gen_step, disc_step, opt_g, opt_d, pool_lesion, pool_healthy,
                               real_healthy, real_lesion, config.lambda_cycle,
                               config.lambda_identity, autocast, d_lesion_fn, d_healthy_fn)
            iteration += 1
            pending.append((iteration, lr, elapsed_before + time.time() - run_started, terms))
            if bar is not None:
                bar.update(1)
            if iteration % config.log_every == 0:
                last_losses = flush() or last_losses
                if bar is not None:
                    bar.set_postfix(g=f"{last_losses['g_total']:.3f}",
                                    d_les=f"{last_losses['d_lesion']:.3f}",
                                    d_hea=f"{last_losses['d_healthy']:.3f}", refresh=False)
            if is_main and iteration % config.sample_every == 0:
                samples_path = save_samples()
            if iteration % config.checkpoint_every == 0 and iteration < end:
                last_losses = flush() or last_losses
                save_checkpoint(numbered=True)
    if bar is not None:
        bar.close()
    last_losses = flush() or last_losses
    completed = iteration >= config.iterations
    if iteration > start_iteration:
        save_checkpoint(numbered=completed or iteration % config.checkpoint_every == 0)
    generator_path = None
    if is_main:
        checkpoint_path = last_path
        if completed:
            if iteration % config.sample_every != 0 or samples_path is None:
                samples_path = save_samples()
            generator_path = out_dir / GENERATOR_FILE
            digest = save_generator(g_hl, generator_path, patch_size,
                                    extra={**(generator_info or {}), "iteration": iteration,
                                           "config": config.to_dict(), "data": data_id})
        else:
            digest = None
        write_run_json(out_dir, "gan train", config.to_dict(), config.seed, started,
                       extra={"iterations_done": iteration, "completed": completed,
                              "resumed": resume, "world_size": ddp.world_size,
                              "device": str(device), "amp_bf16": use_amp,
                              "channels_last": channels_last, "generator_sha256": digest})
    if stop.requested:
        if ddp.created:
            dist.destroy_process_group()
        raise KeyboardInterrupt(f"stopped at iteration {iteration}; resume from {last_path}")
    seconds = time.time() - run_started
    if ddp.created:
        dist.barrier()
        dist.destroy_process_group()
    done = iteration - start_iteration
    return TrainResult(
        out_dir=out_dir, iterations=iteration, completed=completed, seconds=seconds,
        iterations_per_second=done / seconds if seconds > 0 else 0.0,
        final_losses=last_losses, generator_path=generator_path,
        checkpoint_path=checkpoint_path if is_main else None,
        losses_path=out_dir / "losses.csv" if is_main else None,
        samples_path=samples_path if is_main else None, rank=ddp.rank,
        world_size=ddp.world_size,
        networks={"healthy_to_lesion": g_hl, "lesion_to_healthy": g_lh, "d_lesion": d_l,
                  "d_healthy": d_h})


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    # A bar redrawn into a log file (CI, nohup) is thousands of lines of noise; losses.csv
    # holds the same numbers there.
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="cyclegan", unit="it", dynamic_ncols=True,
                file=sys.stderr)


# what `_load_checkpoint` reads of a checkpoint (written by the training loop)
_CHECKPOINT_KEYS = ("config", "patch_size", "data", "world_size", "iteration", "networks",
                    "optimizers", "ranks", "streams", "elapsed_seconds")


def _load_checkpoint(path: Path, config: GanConfig, patch_size: int,
                     data_id: dict[str, Any], world_size: int) -> dict[str, Any]:
    """Read `last.pt` and check it belongs to this run; any mismatch is one clear line."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BoneaugError(f"{path}: not a readable checkpoint ({first[:120]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise BoneaugError(f"{path}: not a boneaug CycleGAN checkpoint")
    missing = [k for k in _CHECKPOINT_KEYS if k not in ckpt]
    if missing or not isinstance(ckpt["config"], dict):
        raise BoneaugError(f"{path}: an incomplete boneaug CycleGAN checkpoint (no "
                           f"{missing[0] if missing else 'config mapping'!r}); start afresh")
    saved = ckpt["config"]
    for key, value in config.to_dict().items():
        if key not in _RESUMABLE_CHANGES and saved.get(key) != value:
            raise BoneaugError(f"{path}: cannot resume with {key}={value!r}; the run used "
                               f"{saved.get(key)!r}")
    if ckpt["patch_size"] != patch_size:
        raise BoneaugError(f"{path}: the run used {ckpt['patch_size']}-pixel patches, these "
                           f"are {patch_size}")
    if ckpt["data"] != data_id:
        raise BoneaugError(f"{path}: the patches differ from those the run was trained on")
    if ckpt["world_size"] != world_size:
        raise BoneaugError(f"{path}: the run used {ckpt['world_size']} processes, this one "
                           f"{world_size}; resume with the same number")
    if ckpt["iteration"] > config.iterations:
        raise BoneaugError(f"{path}: already at iteration {ckpt['iteration']}, beyond "
                           f"iterations={config.iterations}")
    return ckpt
