"""One CycleGAN training step and the bookkeeping of its losses.

`Generators` / `Discriminators` pair the networks so that DDP sees one forward per
backward; `train_step` is the reference's iteration in fewer, batched passes; `LossLog`
moves the loss terms to the host in batches and keeps `losses.csv`.
"""

from __future__ import annotations

import contextlib
import csv
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from boneaug.errors import BoneaugError
from boneaug.files import atomic_path
from boneaug.gan.augment import d_augment
from boneaug.gan.losses import (
    cycle_loss,
    darken_loss,
    discriminator_loss,
    identity_loss,
    lsgan_loss,
)
from boneaug.gan.masks import centre_mask, with_mask
from boneaug.gan.networks import PatchGANDiscriminator, ResnetGenerator
from boneaug.gan.pool import ImagePool

__all__ = ["LOSS_NAMES", "Discriminators", "Generators", "LossLog", "judged", "lesion_area",
           "lesion_site", "make_adam", "train_step"]

LOSS_NAMES = ("g_adv_lesion", "g_adv_healthy", "cycle_healthy", "cycle_lesion",
              "identity_lesion", "identity_healthy", "darken", "g_total", "d_lesion",
              "d_healthy")


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

    def forward(self, real_healthy: torch.Tensor, real_lesion: torch.Tensor,
                mask_healthy: torch.Tensor | None = None,
                mask_lesion: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """`(B, 1, P, P)` each -> (fake_lesion, fake_healthy, rec_healthy, rec_lesion,
        idt_lesion, idt_healthy), all `(B, 1, P, P)`; the identity outputs are empty
        `(0, 1, P, P)` tensors when identity is off.

        Mask-conditioned generators (`MaskedGenerator`) also take the masks, in the model
        range: `mask_healthy` says where each healthy patch is to get its lesion,
        `mask_lesion` where each real lesion is; a patch keeps its mask through its cycle
        and its identity pass."""
        n = real_healthy.shape[0]
        healthy_in = with_mask(real_healthy, mask_healthy)
        lesion_in = with_mask(real_lesion, mask_lesion)
        if self.identity:
            out_hl = self.healthy_to_lesion(torch.cat([healthy_in, lesion_in]))
            out_lh = self.lesion_to_healthy(torch.cat([lesion_in, healthy_in]))
        else:
            out_hl = self.healthy_to_lesion(healthy_in)
            out_lh = self.lesion_to_healthy(lesion_in)
        fake_lesion, idt_lesion = out_hl[:n], out_hl[n:]
        fake_healthy, idt_healthy = out_lh[:n], out_lh[n:]
        rec_healthy = self.lesion_to_healthy(with_mask(fake_lesion, mask_healthy))
        rec_lesion = self.healthy_to_lesion(with_mask(fake_healthy, mask_lesion))
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


def lesion_area(mask: torch.Tensor) -> torch.Tensor:
    """`(B, 1, P, P)` lesion masks in the model range -> the area a discriminator judges
    with `gan.judge_area: lesion`, in [0, 1]: the mask grown by `P // 12` pixels (4 at the
    48 px patches of the benchmark) by a max filter, so the lesion's edge and the bone just
    around it are seen, the rest of the patch is not."""
    weight = (mask.float() + 1.0) * 0.5
    grow = max(1, mask.shape[-1] // 12)
    return F.max_pool2d(weight, 2 * grow + 1, stride=1, padding=grow)


def judged(x: torch.Tensor, judge: str, area: torch.Tensor | None = None) -> torch.Tensor:
    """What a discriminator sees of patches `(B, 1, P, P)`: `"grey"` the patches as they are,
    `"contrast"` each less its own mean (a constant added to a patch changes nothing).

    With an `area` (`lesion_area`, `gan.judge_area: lesion`) only that area is seen: the
    patch is multiplied by it (outside it is 0, mid-grey), and the contrast judge takes the
    mean over the area only."""
    if area is None:
        return x - x.mean(dim=(2, 3), keepdim=True) if judge == "contrast" else x
    area = area.to(x.dtype)
    if judge == "contrast":
        mean = (x * area).sum(dim=(2, 3), keepdim=True) / \
            area.sum(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        x = x - mean
    return x * area


def lesion_site(patches: torch.Tensor, mask: torch.Tensor | None, context: float = 0.5
                ) -> torch.Tensor:
    """Where each healthy patch's lesion is to be, in [0, 1]: its mask (model range) in a
    mask-conditioned run, else the central site every lesion patch is cut around with the
    patch stage's `context` (`centre_mask`), `(1, 1, P, P)`."""
    if mask is not None:
        return (mask.float() + 1) / 2
    return _centre_site(int(patches.shape[-1]), float(context)).to(patches.device)


@functools.lru_cache(maxsize=8)
def _centre_site(size: int, context: float) -> torch.Tensor:
    """`centre_mask` as a `(1, 1, P, P)` tensor, made once per patch size and context (the
    training loop asks for it every iteration)."""
    return torch.from_numpy(centre_mask(size, context))[None, None]


# ------------------------------------------------------------------------------------------
# One training step


def train_step(generators: nn.Module, discriminators: nn.Module,
               opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               pool_lesion: ImagePool, pool_healthy: ImagePool,
               real_healthy: torch.Tensor, real_lesion: torch.Tensor,
               lambda_cycle: float = 10.0, lambda_identity: float = 0.5,
               autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
               d_lesion: nn.Module | None = None, d_healthy: nn.Module | None = None,
               mask_healthy: torch.Tensor | None = None,
               mask_lesion: torch.Tensor | None = None, judge: str = "grey",
               judge_area: str = "patch", augment: torch.Generator | None = None,
               lambda_darken: float = 0.0, site_context: float = 0.5) -> torch.Tensor:
    """One CycleGAN iteration: a generator step, then a discriminator step.

    Same math as the reference (`boneaug.gan.reference.reference_step`) with fewer passes:
    4 batched generator passes instead of 6, and one discriminator pass per domain over
    [real; pooled fake] instead of two. `generators` / `discriminators` are `Generators` /
    `Discriminators`, possibly wrapped in DDP or torch.compile; `d_lesion` / `d_healthy`
    (default: the unwrapped discriminators) score the fakes for the generator loss - they
    are called outside DDP because D's parameters get no gradient there.
    Inputs `(B, 1, P, P)` in [-1, 1]. Mask-conditioned runs (`gan.mask`) pass the masks
    (model range) of the healthy patches' lesions-to-be and of the real lesions: the
    generators take them (`Generators.forward`) and the lesion discriminator judges each
    lesion patch with its mask, so a fake lesion must look real where its mask says.
    `judge` / `judge_area` (`GanConfig`): what of each patch the discriminators see
    (`judged`); with `judge_area="lesion"` both see only the lesion area of each patch's
    mask (a healthy patch's: the mask it is given). `augment` (`gan.d_augment`): the
    generator of this iteration's draws; every patch either discriminator scores, real or
    fake, is then seen through `boneaug.gan.augment.d_augment`. `lambda_darken`
    (`gan.lambda_darken`): the weight of `darken_loss` on each fake lesion against its
    healthy source, at its mask (mask-conditioned runs) or the patch's central site
    (`centre_mask`, for patches cut with the patch stage's context `site_context`).
    Returns the detached loss terms, `LOSS_NAMES` order, without a host sync.
    """
    discs = _unwrap(discriminators)
    d_lesion = d_lesion if d_lesion is not None else discs.lesion
    d_healthy = d_healthy if d_healthy is not None else discs.healthy
    def seen(x: torch.Tensor) -> torch.Tensor:
        return x if augment is None else d_augment(x, augment)

    area_healthy = area_lesion = None
    if judge_area == "lesion":
        if mask_healthy is None or mask_lesion is None:
            raise ValueError("judge_area 'lesion' needs the masks of both domains")
        area_healthy, area_lesion = lesion_area(mask_healthy), lesion_area(mask_lesion)

    # 1) generators; D is frozen so the G loss leaves no gradient in it
    _requires_grad(discs, False)
    with autocast():
        fake_lesion, fake_healthy, rec_healthy, rec_lesion, idt_lesion, idt_healthy = \
            generators(real_healthy, real_lesion, mask_healthy, mask_lesion)
        scores_fake_lesion = d_lesion(seen(with_mask(judged(fake_lesion, judge, area_healthy),
                                                     mask_healthy)))
        scores_fake_healthy = d_healthy(seen(judged(fake_healthy, judge, area_lesion)))
    adv_lesion = lsgan_loss(scores_fake_lesion, True)
    adv_healthy = lsgan_loss(scores_fake_healthy, True)
    cyc_healthy = cycle_loss(rec_healthy, real_healthy, lambda_cycle)
    cyc_lesion = cycle_loss(rec_lesion, real_lesion, lambda_cycle)
    if lambda_identity > 0:
        idt_l = identity_loss(idt_lesion, real_lesion, lambda_cycle, lambda_identity)
        idt_h = identity_loss(idt_healthy, real_healthy, lambda_cycle, lambda_identity)
    else:
        idt_l = idt_h = torch.zeros((), device=real_healthy.device)
    if lambda_darken > 0:
        darken = darken_loss(fake_lesion, real_healthy,
                             lesion_site(real_healthy, mask_healthy, site_context),
                             lambda_darken)
    else:
        darken = torch.zeros((), device=real_healthy.device)
    loss_g = adv_lesion + adv_healthy + cyc_healthy + cyc_lesion + idt_l + idt_h + darken
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()

    # 2) discriminators: real vs. a mix of new and past fakes (the history pools)
    _requires_grad(discs, True)
    shown_lesion = pool_lesion.query(with_mask(judged(fake_lesion, judge, area_healthy),
                                               mask_healthy))
    shown_healthy = pool_healthy.query(judged(fake_healthy, judge, area_lesion))
    with autocast():
        scores_lesion, scores_healthy = discriminators(
            seen(with_mask(judged(real_lesion, judge, area_lesion), mask_lesion)),
            seen(shown_lesion), seen(judged(real_healthy, judge, area_healthy)),
            seen(shown_healthy))
    n = real_lesion.shape[0]
    loss_d_lesion = discriminator_loss(scores_lesion[:n], scores_lesion[n:])
    loss_d_healthy = discriminator_loss(scores_healthy[:n], scores_healthy[n:])
    opt_d.zero_grad(set_to_none=True)
    # D_lesion and D_healthy share no parameters: one backward of the sum gives each the
    # gradient the reference's two backward calls give it.
    (loss_d_lesion + loss_d_healthy).backward()
    opt_d.step()
    return torch.stack([adv_lesion, adv_healthy, cyc_healthy, cyc_lesion, idt_l, idt_h,
                        darken, loss_g, loss_d_lesion, loss_d_healthy]).detach()


# ------------------------------------------------------------------------------------------
# The losses: on the device until a flush, then rows of losses.csv


class LossLog:
    """The loss terms of every iteration: `add` keeps them on the device, `flush` moves
    those pending to the host in one transfer (one sync per flush) and appends them to
    `rows`, the rows of `losses.csv`."""

    COLUMNS = ("iteration", *LOSS_NAMES, "lr", "seconds")

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = rows if rows is not None else []
        self.last: dict[str, float] = {}   # the terms of the latest flushed iteration
        self._pending: list[tuple[int, float, float, torch.Tensor]] = []

    def add(self, iteration: int, lr: float, seconds: float, terms: torch.Tensor) -> None:
        self._pending.append((iteration, lr, seconds, terms))

    def flush(self) -> dict[str, float]:
        """Move the pending terms to `rows`; returns `last` (kept when nothing was pending)."""
        if not self._pending:
            return self.last
        values = torch.stack([p[3] for p in self._pending]).float().cpu().tolist()
        for (it, lr, secs, _), terms in zip(self._pending, values, strict=True):
            self.rows.append({"iteration": it, **dict(zip(LOSS_NAMES, terms, strict=True)),
                              "lr": lr, "seconds": round(secs, 3)})
        self._pending.clear()
        self.last = dict(zip(LOSS_NAMES, values[-1], strict=True))
        return self.last

    @classmethod
    def read(cls, path: Path, up_to: int) -> LossLog:
        """The rows of an earlier run's losses.csv up to iteration `up_to` (the
        checkpoint's); none when there is no such file."""
        if not path.is_file():
            return cls()
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                return cls([row for row in csv.DictReader(fh)
                            if int(row["iteration"]) <= up_to])
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BoneaugError(f"{path}: not the losses.csv of this run "
                               f"({type(exc).__name__}: {exc}); move it away to resume "
                               "without the earlier losses") from None

    def write(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.COLUMNS))
            writer.writeheader()
            writer.writerows(self.rows)
