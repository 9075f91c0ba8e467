"""What a CycleGAN run writes to resume and to hand on: its checkpoints and the generator file.

A checkpoint (`checkpoints/last.pt`, and `iter_NNNNNN.pt` every `checkpoint_every`
iterations) holds everything that decides the next iteration (`TrainState`: weights, Adam
moments, each rank's history pools and torch RNG states, the data streams' positions, the
iteration), plus what it must match to be resumed (`RunKey`: the settings, the patch size,
the patches' hashes, the number of processes). The generator file
(`generator_healthy_to_lesion.pt`) is self-contained: weights, their SHA-256 (checked on
load), the network settings and whatever the caller adds (the bone, its lesion statistics).
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from boneaug.distributed import Ranks
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path
from boneaug.gan.config import GanConfig
from boneaug.gan.networks import ResnetGenerator, build_generator
from boneaug.gan.pool import ImagePool
from boneaug.gan.step import Discriminators, Generators, LossLog
from boneaug.gan.stream import PatchStream

__all__ = ["GENERATOR_FILE", "RunFolder", "RunKey", "TrainState", "data_id", "load_checkpoint",
           "load_generator", "restore", "save_checkpoint", "save_generator", "state_dict_hash"]

GENERATOR_FILE = "generator_healthy_to_lesion.pt"
_CHECKPOINT_FORMAT = "boneaug-cyclegan-checkpoint"
_GENERATOR_FORMAT = "boneaug-cyclegan-generator"

# what `load_checkpoint` reads of a checkpoint (written by `save_checkpoint`)
_CHECKPOINT_KEYS = ("config", "patch_size", "data", "world_size", "iteration", "networks",
                    "optimizers", "ranks", "streams", "elapsed_seconds")

# Settings that may change between a run and its resumption: they change what is written
# and how fast, not the math. `iterations` / `decay_start` may change to extend a run (the
# learning-rate schedule then follows the new values).
_RESUMABLE_CHANGES = {"iterations", "decay_start", "sample_every", "checkpoint_every",
                      "log_every", "device", "compile"}


# ------------------------------------------------------------------------------------------
# The run's folder, its identity and its state


@dataclass(frozen=True)
class RunFolder:
    """The files of a run in `out`."""

    out: Path

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def losses(self) -> Path:
        return self.out / "losses.csv"

    def numbered(self, iteration: int) -> Path:
        return self.checkpoints / f"iter_{iteration:06d}.pt"


@dataclass(frozen=True)
class RunKey:
    """What a checkpoint must match to be resumed."""

    config: GanConfig
    patch_size: int
    data: dict[str, Any]    # per domain: [number of patches, hash of the stack]
    world_size: int


def data_id(healthy: np.ndarray, lesion: np.ndarray, masks: np.ndarray | None = None
            ) -> dict[str, Any]:
    """The `RunKey.data` of two patch stacks (and of the lesion patches' masks, when the
    generator is mask-conditioned)."""
    data = {"healthy": [len(healthy), _array_hash(healthy)],
            "lesion": [len(lesion), _array_hash(lesion)]}
    if masks is not None:
        data["masks"] = [len(masks), _array_hash(masks)]
    return data


@dataclass
class TrainState:
    """Everything that decides the next iteration on this rank: what a checkpoint holds."""

    generators: Generators
    discriminators: Discriminators
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    pool_lesion: ImagePool
    pool_healthy: ImagePool
    stream_healthy: PatchStream
    stream_lesion: PatchStream
    losses: LossLog = field(default_factory=LossLog)
    # mask-conditioned runs: which lesion patch's mask each healthy patch is given
    stream_mask: PatchStream | None = None
    iteration: int = 0
    elapsed_before: float = 0.0   # seconds trained by the runs this one resumes

    def networks(self) -> dict[str, nn.Module]:
        """The four networks by their checkpoint names (the reference's G_A, G_B, D_A, D_B)."""
        return {"healthy_to_lesion": self.generators.healthy_to_lesion,
                "lesion_to_healthy": self.generators.lesion_to_healthy,
                "d_lesion": self.discriminators.lesion,
                "d_healthy": self.discriminators.healthy}


# ------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(state: TrainState, key: RunKey, folder: RunFolder, ranks: Ranks,
                    device: torch.device, seconds: float, numbered: bool) -> None:
    """Write `last.pt` (and, when `numbered`, `iter_NNNNNN.pt` first) and `losses.csv`.

    Every rank calls it: each hands rank 0 its pools and RNG states; rank 0 writes.
    `seconds`: the run's training time so far, resumed runs included.
    """
    rank_state = {"pool_lesion": state.pool_lesion.state_dict(),
                  "pool_healthy": state.pool_healthy.state_dict(), "rng": _rng_state(device)}
    if ranks.enabled:
        gathered: list[Any] = [None] * ranks.world_size
        dist.all_gather_object(gathered, rank_state)
    else:
        gathered = [rank_state]
    if ranks.rank == 0:
        ckpt = {
            "format": _CHECKPOINT_FORMAT, "version": 1, "iteration": state.iteration,
            "config": key.config.to_dict(), "patch_size": key.patch_size, "data": key.data,
            "world_size": key.world_size, "elapsed_seconds": seconds,
            "networks": {name: _plain_state(m) for name, m in state.networks().items()},
            "optimizers": {"generators": state.opt_g.state_dict(),
                           "discriminators": state.opt_d.state_dict()},
            "streams": {"healthy": state.stream_healthy.position,
                        "lesion": state.stream_lesion.position,
                        **({"mask": state.stream_mask.position} if state.stream_mask
                           is not None else {})},
            "ranks": gathered,
        }
        state.losses.write(folder.losses)
        if numbered:
            path = folder.numbered(state.iteration)
            _save_torch(ckpt, path)
            with atomic_path(folder.last) as tmp:
                shutil.copyfile(path, tmp)
        else:
            _save_torch(ckpt, folder.last)
    if ranks.enabled:
        dist.barrier()


def load_checkpoint(path: Path, key: RunKey) -> dict[str, Any]:
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
    saved, config = ckpt["config"], key.config
    for name, value in config.to_dict().items():
        if name not in _RESUMABLE_CHANGES and saved.get(name) != value:
            raise BoneaugError(f"{path}: cannot resume with {name}={value!r}; the run used "
                               f"{saved.get(name)!r}")
    if ckpt["patch_size"] != key.patch_size:
        raise BoneaugError(f"{path}: the run used {ckpt['patch_size']}-pixel patches, these "
                           f"are {key.patch_size}")
    if ckpt["data"] != key.data:
        raise BoneaugError(f"{path}: the patches differ from those the run was trained on")
    if ckpt["world_size"] != key.world_size:
        raise BoneaugError(f"{path}: the run used {ckpt['world_size']} processes, this one "
                           f"{key.world_size}; resume with the same number")
    if ckpt["iteration"] > config.iterations:
        raise BoneaugError(f"{path}: already at iteration {ckpt['iteration']}, beyond "
                           f"iterations={config.iterations}")
    return ckpt


def restore(state: TrainState, ckpt: dict[str, Any], rank: int, device: torch.device,
            folder: RunFolder) -> None:
    """Put a checked checkpoint (`load_checkpoint`) back into `state`, as rank `rank`;
    the losses up to its iteration come from the folder's losses.csv."""
    for name, module in state.networks().items():
        module.load_state_dict(ckpt["networks"][name])
    state.opt_g.load_state_dict(ckpt["optimizers"]["generators"])
    state.opt_d.load_state_dict(ckpt["optimizers"]["discriminators"])
    mine = ckpt["ranks"][rank]
    state.pool_lesion.load_state_dict(mine["pool_lesion"], device)
    state.pool_healthy.load_state_dict(mine["pool_healthy"], device)
    state.stream_healthy.position = int(ckpt["streams"]["healthy"])
    state.stream_lesion.position = int(ckpt["streams"]["lesion"])
    if state.stream_mask is not None:
        state.stream_mask.position = int(ckpt["streams"]["mask"])
    _set_rng_state(mine["rng"], device)
    state.iteration = int(ckpt["iteration"])
    state.elapsed_before = float(ckpt["elapsed_seconds"])
    state.losses = LossLog.read(folder.losses, state.iteration)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ------------------------------------------------------------------------------------------
# The generator file


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
        generator = build_generator(net_cfg)
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
