"""Processes under `torchrun`: join the process group, pick the device, wait for the others.

The same code runs as one plain process (nothing to join) and under
``torchrun --nproc-per-node K`` (RANK / WORLD_SIZE / LOCAL_RANK set): nccl on GPUs, gloo
on CPUs. A leaf module, like `errors`, so that every stage that shares work out can use it.
`fixed_threads` pins the intra-op thread count of training, so that results do not
depend on it; `use_bf16` turns a config's `amp` into "autocast in bf16 or not" on a device.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from boneaug.config import is_device, normalise_amp
from boneaug.errors import BoneaugError


@dataclass
class Ranks:
    """This process's place among the processes torchrun started."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False   # under torchrun
    created: bool = False   # this code made the process group (and may destroy it)

    def barrier(self) -> None:
        if self.enabled and self.world_size > 1:
            dist.barrier()


def join(device: str = "auto") -> Ranks:
    """Join the torchrun process group when RANK and WORLD_SIZE are set, else a lone process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Ranks()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    created = False
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    return Ranks(rank, local_rank, world, True, created)


def pick_device(name: str, ranks: Ranks) -> torch.device:
    """`auto` (CUDA if present), `cpu`, `cuda` or `cuda:N`; each torchrun process its own GPU."""
    if name == "cpu":
        return torch.device("cpu")
    if not is_device(name):
        raise BoneaugError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        if name == "auto":
            return torch.device("cpu")
        raise BoneaugError(f"device {name!r} asked for, but CUDA is not available")
    if ranks.enabled:
        return torch.device("cuda", ranks.local_rank)
    return torch.device(name if name.startswith("cuda:") else "cuda")


# The intra-op thread count of every training and translation. CPU kernels split their
# sums by thread, so the same seed gives results that differ in the last digits between
# thread counts, and those digits grow into different classifiers (docs/architecture.md).
# A fixed count makes results the same whatever OMP_NUM_THREADS or the machine's cores.
DEFAULT_THREADS = 2


@contextlib.contextmanager
def fixed_threads(count: int = DEFAULT_THREADS) -> Iterator[None]:
    """Run the block with exactly `count` intra-op threads (then restore the old count).

    On a GPU the count only affects host-side work; a count above the machine's cores
    still gives the same numbers, only slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast speeds convolutions up on `device` (CUDA, or AVX-512 bf16/AMX)."""
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(amp: str | bool, device: torch.device) -> bool:
    """A config's `amp` ("auto", "bf16", "off"; YAML true / false) -> whether to autocast
    in bf16 on `device`: "auto" where it is fast (`bf16_is_fast`)."""
    amp = normalise_amp(amp)
    return amp == "bf16" or (amp == "auto" and bf16_is_fast(device))
