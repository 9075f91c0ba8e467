"""CycleGAN objectives (Zhu et al. 2017, with the reference's LSGAN and weights).

- adversarial: least squares (LSGAN): the discriminator regresses its patch scores to 1 for
  real and 0 for fake; a generator is scored by how close the discriminator puts its fakes
  to 1. The discriminator loss is halved, as the reference does, to slow D relative to G.
- cycle consistency: L1 between an image and its round trip, weight `lambda_cycle` (10).
- identity: L1 between a generator's output on an image already of its target domain and
  that image, weight `lambda_identity * lambda_cycle` (0.5 * 10).
- darkening (not in the reference; `gan.lambda_darken`, 0 = off): a hinge on how much a
  fake lesion brightens its source at the lesion's site, for bones whose real lesions are
  lytic (docs/synthesis.md, "Brightening").

All losses are computed in float32 (inputs are cast), so bf16 autocast changes only the
networks' arithmetic, not the loss reduction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DARKEN_MARGIN", "lsgan_loss", "discriminator_loss", "cycle_loss", "identity_loss",
           "darken_loss", "site_change"]

# how much darker than its source (model range [-1, 1]; 0.05 is 2.5 % of the grey range)
# a fake lesion's site must come out on average before `darken_loss` lets it be: a real
# phantom lesion darkens its patch's centre by 0.08-0.10 of the grey range
DARKEN_MARGIN = 0.05


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


def site_change(fake: torch.Tensor, source: torch.Tensor, site: torch.Tensor) -> torch.Tensor:
    """`(B,)` mean change `fake - source` at the lesion's site, weighted by `site`
    (`(B or 1, 1, P, P)` in [0, 1]); > 0: the fake is brighter there than its source."""
    site = site.float().expand_as(fake)
    change = ((fake.float() - source.float()) * site).sum(dim=(1, 2, 3))
    return change / site.sum(dim=(1, 2, 3)).clamp_min(1e-6)


def darken_loss(fake: torch.Tensor, source: torch.Tensor, site: torch.Tensor,
                lambda_darken: float, margin: float = DARKEN_MARGIN) -> torch.Tensor:
    """`lambda_darken * mean(relu(site_change + margin))`: zero for a fake lesion at least
    `margin` darker than its source at its site, rising linearly as it is less dark or
    brighter. Asks nothing of how a lesion looks, only which way it changes the film."""
    return lambda_darken * F.relu(site_change(fake, source, site) + margin).mean()
