"""The training step written the way the reference CycleGAN writes it: the naive baseline.

`reference_step` follows `CycleGANModel.optimize_parameters` of
junyanz/pytorch-CycleGAN-and-pix2pix: six separate generator passes (fake, reconstruction
and identity for each direction), one discriminator pass per real or fake image set, the
two discriminator losses back-propagated one after the other, float32 and NCHW. It is
kept for two jobs: the benchmark's in-run baseline (`benchmarks/bench_gan.py`), and a test
oracle that shows `boneaug.gan.step.train_step` does the same math in fewer, batched
passes. It is not used for training.
"""

from __future__ import annotations

import torch
from torch import nn

from boneaug.gan.losses import cycle_loss, discriminator_loss, identity_loss, lsgan_loss
from boneaug.gan.pool import ImagePool

__all__ = ["reference_step"]


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def reference_step(g_healthy_to_lesion: nn.Module, g_lesion_to_healthy: nn.Module,
                   d_lesion: nn.Module, d_healthy: nn.Module,
                   opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                   pool_lesion: ImagePool, pool_healthy: ImagePool,
                   real_healthy: torch.Tensor, real_lesion: torch.Tensor,
                   lambda_cycle: float = 10.0, lambda_identity: float = 0.5) -> torch.Tensor:
    """One reference-style iteration on `(B, 1, P, P)` batches in `[-1, 1]`.

    Returns the detached loss terms in `boneaug.gan.step.LOSS_NAMES` order.
    """
    g_hl, g_lh = g_healthy_to_lesion, g_lesion_to_healthy
    # forward(): both cycles
    fake_lesion = g_hl(real_healthy)
    rec_healthy = g_lh(fake_lesion)
    fake_healthy = g_lh(real_lesion)
    rec_lesion = g_hl(fake_healthy)

    # generators
    _set_requires_grad([d_lesion, d_healthy], False)
    opt_g.zero_grad()
    if lambda_identity > 0:
        idt_lesion = identity_loss(g_hl(real_lesion), real_lesion, lambda_cycle, lambda_identity)
        idt_healthy = identity_loss(g_lh(real_healthy), real_healthy, lambda_cycle,
                                    lambda_identity)
    else:
        idt_lesion = idt_healthy = torch.zeros((), device=real_healthy.device)
    adv_lesion = lsgan_loss(d_lesion(fake_lesion), True)
    adv_healthy = lsgan_loss(d_healthy(fake_healthy), True)
    cyc_healthy = cycle_loss(rec_healthy, real_healthy, lambda_cycle)
    cyc_lesion = cycle_loss(rec_lesion, real_lesion, lambda_cycle)
    loss_g = adv_lesion + adv_healthy + cyc_healthy + cyc_lesion + idt_lesion + idt_healthy
    loss_g.backward()
    opt_g.step()

    # discriminators, one after the other, real and fake in separate passes
    _set_requires_grad([d_lesion, d_healthy], True)
    opt_d.zero_grad()
    shown_lesion = pool_lesion.query(fake_lesion)
    loss_d_lesion = discriminator_loss(d_lesion(real_lesion), d_lesion(shown_lesion.detach()))
    loss_d_lesion.backward()
    shown_healthy = pool_healthy.query(fake_healthy)
    loss_d_healthy = discriminator_loss(d_healthy(real_healthy),
                                        d_healthy(shown_healthy.detach()))
    loss_d_healthy.backward()
    opt_d.step()
    no_darken = torch.zeros((), device=loss_g.device)   # not in the reference
    return torch.stack([adv_lesion, adv_healthy, cyc_healthy, cyc_lesion, idt_lesion,
                        idt_healthy, no_darken, loss_g, loss_d_lesion,
                        loss_d_healthy]).detach()
