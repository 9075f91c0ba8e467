"""Train a CycleGAN between two stacks of grayscale patches: healthy bone <-> bone with lesion.

Read `train_cyclegan` top to bottom: check the inputs and the folder, choose the hardware,
build (or resume) the training state, then the loop, then the files a finished run leaves.
Domain A of the reference is `healthy`, domain B is `lesion`; the generator that synthesis
uses is `healthy_to_lesion` (the reference's G_A), judged by `d_lesion` (the reference's
D_A). The pieces live beside this module: `config` (GanConfig), `stream` (the data),
`step` (one iteration, the losses), `checkpoint` (resume, the generator file).

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
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from boneaug.config import config_error
from boneaug.distributed import Ranks, fixed_threads, join, pick_device, use_bf16
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, remove_interrupted_writes
from boneaug.gan.augment import augment_generator
from boneaug.gan.checkpoint import (
    GENERATOR_FILE,
    RunFolder,
    RunKey,
    TrainState,
    data_id,
    load_checkpoint,
    restore,
    save_checkpoint,
    save_generator,
)
from boneaug.gan.config import SECTION, GanConfig, lr_factor
from boneaug.gan.masks import centre_mask, patch_masks, with_mask
from boneaug.gan.networks import (
    MaskedGenerator,
    PatchGANDiscriminator,
    ResnetGenerator,
    from_model_range,
)
from boneaug.gan.pool import ImagePool
from boneaug.gan.step import Discriminators, Generators, make_adam, train_step
from boneaug.gan.stream import PatchStream, check_domains, check_masks, to_batch
from boneaug.runinfo import write_run_json

__all__ = ["TrainResult", "train_cyclegan"]


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


def train_cyclegan(healthy: np.ndarray, lesion: np.ndarray, config: GanConfig,
                   out_dir: str | Path, resume: bool = False, progress: bool = True,
                   stop_after: int | None = None,
                   generator_info: dict[str, Any] | None = None,
                   report: Callable[[int, int, float], None] | None = None,
                   lesion_masks: np.ndarray | None = None) -> TrainResult:
    """Train the CycleGAN healthy <-> lesion on two unpaired patch stacks.

    Args:
        healthy: domain A, float32 `(N, P, P)` in [0, 1]. `P % 4 == 0`, `P >= 24`.
        lesion: domain B, float32 `(M, P, P)` in [0, 1], same `P`.
        config: the settings (checked here, `GanConfig.validate`).
        out_dir: receives `checkpoints/last.pt` (+ `iter_NNNNNN.pt`), `losses.csv`,
            `samples.png` (+ `samples/iter_NNNNNN.png`), `generator_healthy_to_lesion.pt`
            (when the last iteration is done) and `run.json`. Rank 0 only.
        resume: continue from `out_dir/checkpoints/last.pt`.
        progress: show a progress bar (rank 0).
        stop_after: stop (with a checkpoint) once this many iterations are done in total,
            as an interruption would; for tests and time-boxed jobs.
        generator_info: stored in the generator file beside the weights (synthesis reads
            the bone, its lesion statistics and the patch settings from there).
        report: called on rank 0 at every `checkpoint_every` iterations with (iterations
            done, iterations in all, iterations per second of this session): progress
            for a log, where a progress bar is not shown.
        lesion_masks: float32 `(M, P, P)` in [0, 1], where each lesion patch's lesion is
            (`boneaug.gan.masks.patch_masks`); needed by a mask-conditioned run
            (`config.mask`), which gives each healthy patch one of them at random.
    """
    config.validate()
    ask = _Request(RunFolder(Path(out_dir)), resume, progress, stop_after, generator_info,
                   report)
    masks = check_masks(lesion_masks, lesion, config.mask)
    with fixed_threads(config.threads):
        return _train(healthy, lesion, masks, config, ask)


def patch_context(generator_info: dict[str, Any] | None) -> float:
    """The patch stage's context of a run's patches (`train_bone_generator` records it in
    the generator info), else the patch stage's default 0.5."""
    patches = (generator_info or {}).get("patches") or {}
    return float(patches.get("context", 0.5))


def check_lytic(healthy: np.ndarray, lesion: np.ndarray, context: float = 0.5) -> float:
    """The lesion patches' mean grey at their central site less the healthy patches' (in
    [0, 1]); refuses `gan.lambda_darken` with one line where it is not negative: asking
    every fake lesion to darken its film is only right where the real ones do."""
    site = centre_mask(int(healthy.shape[-1]), context)
    def centre(patches: np.ndarray) -> float:
        return float((patches * site).sum(axis=(1, 2)).mean() / site.sum())
    change = centre(lesion) - centre(healthy)
    if not change < 0:
        raise BoneaugError(f"gan.lambda_darken: this bone's real lesion patches are not darker "
                           f"at their centre than its healthy patches ({change:+.3f} of the "
                           "grey range): its lesions are not lytic; set gan.lambda_darken: 0")
    return change


def train_bone_generator(patch_dir: str | Path, config: GanConfig, out_dir: str | Path, *,
                         resume: bool = False, progress: bool = True,
                         report: Callable[[int, int, float], None] | None = None
                         ) -> TrainResult:
    """Train the CycleGAN of one bone's patch folder (``PATCHES/<bone>`` of `boneaug
    patches`): the one entry that `boneaug gan train` and the experiment both call, so
    every generator file carries the same metadata: the bone, its real lesions' statistics
    (where synthesis places lesions) and the patch settings with their folder."""
    from boneaug.patches import load_domains, read_json_object

    patch_dir = Path(patch_dir)
    healthy, lesion, info = load_domains(patch_dir)
    stats_path = patch_dir / "lesion_stats.json"
    if not stats_path.is_file():
        raise BoneaugError(f"{patch_dir}: has no lesion_stats.json; not a patch folder of "
                           "`boneaug patches` (run it again)")
    masks = patch_masks(lesion.index, lesion.size) if config.mask else None
    return train_cyclegan(
        healthy.patches, lesion.patches, config, out_dir, resume=resume, progress=progress,
        report=report, lesion_masks=masks,
        generator_info={"bone": info.get("bone"), "lesion_stats": read_json_object(stats_path),
                        "patches": {**info.get("settings", {}), "folder": str(patch_dir)}})


@dataclass(frozen=True)
class _Request:
    """What the caller asked of this run, besides the settings."""

    folder: RunFolder
    resume: bool
    progress: bool
    stop_after: int | None
    generator_info: dict[str, Any] | None
    report: Callable[[int, int, float], None] | None = None


def _train(healthy: np.ndarray, lesion: np.ndarray, masks: np.ndarray | None,
           config: GanConfig, ask: _Request) -> TrainResult:
    started = time.time()
    healthy, lesion = check_domains(healthy, lesion, config.batch_size)
    if config.lambda_darken > 0:
        check_lytic(healthy, lesion, patch_context(ask.generator_info))
    _check_folder(ask.folder, ask.resume)
    hw = _hardware(config)
    key = RunKey(config, int(healthy.shape[1]), data_id(healthy, lesion, masks),
                 hw.ddp.world_size)
    state = _new_state(config, len(healthy), len(lesion), hw)
    if ask.resume:
        restore(state, load_checkpoint(ask.folder.last, key), hw.ddp.rank, hw.device,
                ask.folder)
    steps = _wrap(state, config, hw)
    # Fixed patches for the sample sheets: the first few of each domain.
    k = np.arange(min(4, len(healthy), len(lesion)))
    run = _Run(key, ask.folder, hw, state, hw.batch(healthy, k), hw.batch(lesion, k),
               None if masks is None else hw.batch(masks, k), masks)
    if hw.is_main:
        ask.folder.out.mkdir(parents=True, exist_ok=True)
    end = config.iterations if ask.stop_after is None else min(ask.stop_after,
                                                                config.iterations)
    start_iteration = state.iteration
    with _GracefulStop(enabled=not hw.ddp.enabled) as stop:
        samples_path = _loop(run, steps, healthy, lesion, end, stop, ask)
    state.losses.flush()
    completed = state.iteration >= config.iterations
    if state.iteration > start_iteration:
        run.save_checkpoint(numbered=completed
                            or state.iteration % config.checkpoint_every == 0)
    if hw.is_main:
        samples_path = _leave_files(run, ask, completed, samples_path, started)
    if stop.requested:
        if hw.ddp.created:
            dist.destroy_process_group()
        raise KeyboardInterrupt(f"stopped at iteration {state.iteration}; resume from "
                                f"{ask.folder.last}")
    seconds = time.time() - run.started
    if hw.ddp.created:
        dist.barrier()
        dist.destroy_process_group()
    return _result(run, completed, seconds, state.iteration - start_iteration, samples_path)


# ------------------------------------------------------------------------------------------
# Set-up: the folder, the hardware, the training state


def _check_folder(folder: RunFolder, resume: bool) -> None:
    """A fresh run needs a folder without a run; a resumed one, its checkpoint. Either way
    the temporary files of writes killed in an earlier run go."""
    if resume and not folder.last.is_file():
        raise BoneaugError(f"{folder.last}: nothing to resume (no checkpoint)")
    if not resume and folder.last.exists():
        raise BoneaugError(f"{folder.out}: already holds a run (checkpoints/last.pt); resume "
                           "it or choose another folder")
    for path in (folder.out, folder.checkpoints):  # a run killed while writing left these
        remove_interrupted_writes(path)


@dataclass(frozen=True)
class _Hardware:
    """Where this process trains and how: its rank, device, bf16 autocast, memory format."""

    ddp: Ranks
    device: torch.device
    bf16: bool
    channels_last: bool

    @property
    def is_main(self) -> bool:
        return self.ddp.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def batch(self, patches: np.ndarray, index: np.ndarray) -> torch.Tensor:
        return to_batch(patches, index, self.device, self.channels_last)


def _hardware(config: GanConfig) -> _Hardware:
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise config_error(SECTION, "device", config.device,
                           "names CUDA, but CUDA is not available")
    ddp = join(config.device)
    device = pick_device(config.device, ddp)
    # channels-last was slower in every measured setting, on this CPU and on an H100
    # (docs/performance.md), so "auto" leaves it off; `channels_last: true` turns it on.
    return _Hardware(ddp, device, use_bf16(config.amp, device), config.channels_last is True)


def _new_state(config: GanConfig, n_healthy: int, n_lesion: int, hw: _Hardware
               ) -> TrainState:
    """Networks, optimisers, pools and data streams as iteration 0 has them."""
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    kind = MaskedGenerator if config.mask else ResnetGenerator
    g_hl = kind(config.n_blocks, config.ngf, upsample=config.upsample)
    g_lh = kind(config.n_blocks, config.ngf, upsample=config.upsample)
    d_l = PatchGANDiscriminator(config.ndf, in_channels=2 if config.mask else 1)
    d_h = PatchGANDiscriminator(config.ndf)
    generators = Generators(g_hl, g_lh, identity=config.lambda_identity > 0)
    discriminators = Discriminators(d_l, d_h)
    memory_format = torch.channels_last if hw.channels_last else torch.contiguous_format
    generators.to(hw.device, memory_format=memory_format)
    discriminators.to(hw.device, memory_format=memory_format)
    betas = (config.beta1, config.beta2)
    rank, world = hw.ddp.rank, hw.ddp.world_size
    # Pools and data streams are per rank: each rank sees its own shard and keeps its own
    # history; their seeds differ by rank so ranks do not draw in lockstep.
    return TrainState(
        generators, discriminators,
        opt_g=make_adam(generators.parameters(), config.lr, betas, hw.device),
        opt_d=make_adam(discriminators.parameters(), config.lr, betas, hw.device),
        pool_lesion=ImagePool(config.pool_size, seed=config.seed * 1000 + 2 * rank),
        pool_healthy=ImagePool(config.pool_size, seed=config.seed * 1000 + 2 * rank + 1),
        stream_healthy=PatchStream(n_healthy, config.seed, 0, rank, world),
        stream_lesion=PatchStream(n_lesion, config.seed, 1, rank, world),
        stream_mask=PatchStream(n_lesion, config.seed, 2, rank, world) if config.mask
        else None)


@dataclass(frozen=True)
class _Steppers:
    """The modules `train_step` calls: both pairs (wrapped in DDP under torchrun, and
    compiled when asked) and each discriminator alone (scoring fakes for the G loss)."""

    generators: nn.Module
    discriminators: nn.Module
    d_lesion: nn.Module
    d_healthy: nn.Module


def _wrap(state: TrainState, config: GanConfig, hw: _Hardware) -> _Steppers:
    """DDP averages gradients across ranks; compile fuses the small kernels."""
    gen: nn.Module = state.generators
    disc: nn.Module = state.discriminators
    if hw.ddp.enabled:
        ids = [hw.device.index] if hw.device.type == "cuda" else None
        gen = DistributedDataParallel(gen, device_ids=ids, broadcast_buffers=False)
        disc = DistributedDataParallel(disc, device_ids=ids, broadcast_buffers=False)
    d_lesion: nn.Module = state.discriminators.lesion
    d_healthy: nn.Module = state.discriminators.healthy
    if config.compile:
        gen, disc = torch.compile(gen), torch.compile(disc)
        d_lesion, d_healthy = torch.compile(d_lesion), torch.compile(d_healthy)
    return _Steppers(gen, disc, d_lesion, d_healthy)


# ------------------------------------------------------------------------------------------
# The loop


@dataclass
class _Run:
    """One run in progress: what it must match, where it writes, where it trains, its
    state, the patches its sample sheets show, and when this process's part began."""

    key: RunKey
    folder: RunFolder
    hw: _Hardware
    state: TrainState
    show_healthy: torch.Tensor
    show_lesion: torch.Tensor
    show_masks: torch.Tensor | None   # mask-conditioned: those of the lesion patches shown
    masks: np.ndarray | None          # mask-conditioned: every lesion patch's mask
    started: float = field(default_factory=time.time)

    @property
    def config(self) -> GanConfig:
        return self.key.config

    def seconds(self) -> float:
        """Training time of the whole run so far, resumed parts included."""
        return self.state.elapsed_before + time.time() - self.started

    def save_checkpoint(self, numbered: bool) -> None:
        save_checkpoint(self.state, self.key, self.folder, self.hw.ddp, self.hw.device,
                        self.seconds(), numbered)

    def save_samples(self) -> Path:
        out = self.folder.out
        path = out / "samples" / f"iter_{self.state.iteration:06d}.png"
        g = self.state.generators
        _sample_sheet(g.healthy_to_lesion, g.lesion_to_healthy, self.show_healthy,
                      self.show_lesion, self.show_masks, self.hw.autocast, path)
        with atomic_path(out / "samples.png") as tmp:
            shutil.copyfile(path, tmp)
        return out / "samples.png"


def _loop(run: _Run, steps: _Steppers, healthy: np.ndarray, lesion: np.ndarray, end: int,
          stop: _GracefulStop, ask: _Request) -> Path | None:
    """Iterate until `end` or a stop request; returns the latest sample sheet, if any."""
    config, state, hw = run.config, run.state, run.hw
    bar = _progress_bar(ask.progress and hw.is_main, config.iterations, state.iteration)
    run.started, first = time.time(), state.iteration
    samples_path = None
    context = patch_context(ask.generator_info)  # where the darkening prior looks
    while state.iteration < end and not stop.requested:
        lr = config.lr * lr_factor(state.iteration, config)
        for opt in (state.opt_g, state.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        real_healthy = hw.batch(healthy, state.stream_healthy.next(config.batch_size))
        which = state.stream_lesion.next(config.batch_size)
        real_lesion = hw.batch(lesion, which)
        mask_healthy = mask_lesion = None
        if run.masks is not None and state.stream_mask is not None:
            mask_lesion = hw.batch(run.masks, which)
            mask_healthy = hw.batch(run.masks, state.stream_mask.next(config.batch_size))
        terms = train_step(steps.generators, steps.discriminators, state.opt_g, state.opt_d,
                           state.pool_lesion, state.pool_healthy, real_healthy, real_lesion,
                           config.lambda_cycle, config.lambda_identity, hw.autocast,
                           steps.d_lesion, steps.d_healthy, mask_healthy, mask_lesion,
                           config.judge, config.judge_area,
                           augment_generator(config.seed, state.iteration, hw.ddp.rank)
                           if config.d_augment else None, config.lambda_darken, context)
        state.iteration += 1
        state.losses.add(state.iteration, lr, run.seconds(), terms)
        if bar is not None:
            bar.update(1)
        if state.iteration % config.log_every == 0:
            last = state.losses.flush()
            if bar is not None:
                bar.set_postfix(g=f"{last['g_total']:.3f}", d_les=f"{last['d_lesion']:.3f}",
                                d_hea=f"{last['d_healthy']:.3f}", refresh=False)
        if hw.is_main and state.iteration % config.sample_every == 0:
            samples_path = run.save_samples()
        if state.iteration % config.checkpoint_every == 0 and state.iteration < end:
            state.losses.flush()
            run.save_checkpoint(numbered=True)
            if hw.is_main and ask.report is not None:
                rate = (state.iteration - first) / max(time.time() - run.started, 1e-9)
                ask.report(state.iteration, config.iterations, rate)
    if bar is not None:
        bar.close()
    return samples_path


# ------------------------------------------------------------------------------------------
# The end: what a run leaves


def _leave_files(run: _Run, ask: _Request, completed: bool, samples_path: Path | None,
                 started: float) -> Path | None:
    """Rank 0: a finished run's last sample sheet and generator file, and run.json (every
    run). Returns the latest sample sheet."""
    config, state, iteration = run.config, run.state, run.state.iteration
    digest = None
    if completed:
        if iteration % config.sample_every != 0 or samples_path is None:
            samples_path = run.save_samples()
        digest = save_generator(
            state.generators.healthy_to_lesion, run.folder.out / GENERATOR_FILE,
            run.key.patch_size, extra={**(ask.generator_info or {}), "iteration": iteration,
                                       "config": config.to_dict(), "data": run.key.data})
    write_run_json(run.folder.out, "gan train", config.to_dict(), config.seed, started,
                   extra={"iterations_done": iteration, "completed": completed,
                          "resumed": ask.resume, "world_size": run.hw.ddp.world_size,
                          "device": str(run.hw.device), "amp_bf16": run.hw.bf16,
                          "channels_last": run.hw.channels_last, "generator_sha256": digest})
    return samples_path


def _result(run: _Run, completed: bool, seconds: float, done: int,
            samples_path: Path | None) -> TrainResult:
    main, folder = run.hw.is_main, run.folder
    return TrainResult(
        out_dir=folder.out, iterations=run.state.iteration, completed=completed,
        seconds=seconds, iterations_per_second=done / seconds if seconds > 0 else 0.0,
        final_losses=run.state.losses.last,
        generator_path=folder.out / GENERATOR_FILE if main and completed else None,
        checkpoint_path=folder.last if main else None,
        losses_path=folder.losses if main else None,
        samples_path=samples_path if main else None, rank=run.hw.ddp.rank,
        world_size=run.hw.ddp.world_size, networks=run.state.networks())


# ------------------------------------------------------------------------------------------
# Helpers: the sample sheet, Ctrl-C, the progress bar


@torch.no_grad()
def _sample_sheet(g_hl: nn.Module, g_lh: nn.Module, healthy: torch.Tensor,
                  lesion: torch.Tensor, masks: torch.Tensor | None, autocast: Callable,
                  path: Path) -> None:
    """PNG, 6 rows of k patches: healthy, -> lesion, -> back; lesion, -> healthy, -> back.
    Mask-conditioned: the k-th healthy patch gets the k-th lesion patch's mask."""
    from PIL import Image

    with autocast():
        fake_l = g_hl(with_mask(healthy, masks))
        rec_h = g_lh(with_mask(fake_l, masks))
        fake_h = g_lh(with_mask(lesion, masks))
        rec_l = g_hl(with_mask(fake_h, masks))
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


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    # A bar redrawn into a log file (CI, nohup) is thousands of lines of noise; losses.csv
    # holds the same numbers there.
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="cyclegan", unit="it", dynamic_ncols=True,
                file=sys.stderr)
