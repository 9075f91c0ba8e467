"""CycleGAN objectives (Zhu et al. 2017, with the reference's LSGAN and weights).

- adversarial: least squares (LSGAN): the discriminator regresses its patch scores to 1 for
  real and 0 for fake; a generator is scored by how close the discriminator puts its fakes
  to 1. The discriminator loss is halved, as the reference does, to slow D relative to G.
- cycle consistency: L1 between an image and its round trip, weight `lambda_cycle` (10).
- identity: L1 between a generator's output on an image already of its target domain and
  that image, weight `lambda_identity * lambda_cycle` (0.5 * 10).

All losses are computed in float32 (inputs are cast), so bf16 autocast changes only the
networks' arithmetic, not the loss reduction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["lsgan_loss", "discriminator_loss", "cycle_loss", "identity_loss"]


def lsgan_loss(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean squared distance of patch scores (any shape) to 1 (real) or 0 (fake); a scalar."""
    scores = scores.float()
    target = torch.ones_like(scores) if target_is_real else torch.zeros_like(scores)
    return F.mse_loss(scores, target)


def discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (LSGAN(real -> 1) + LSGAN(fake -> 0)); a scalar."""
    return 0.5 * (lsgan_loss(scores_real, True) + lsgan_loss(scores_fake, False))


def cycle_loss(reconstructed: torch.Tensor, original: torch.Tensor,
               lambda_cycle: float) -> torch.Tensor:
    """`lambda_cycle * L1(reconstructed, original)`; images `(B, 1, P, P)` in `[-1, 1]`."""
    return lambda_cycle * F.l1_loss(reconstructed.float(), original.float())


def identity_loss(mapped: torch.Tensor, original: torch.Tensor, lambda_cycle: float,
                  lambda_identity: float) -> torch.Tensor:
    """`lambda_identity * lambda_cycle * L1(G(y), y)` for G mapping into y's domain."""
    return lambda_identity * lambda_cycle * F.l1_loss(mapped.float(), original.float())
