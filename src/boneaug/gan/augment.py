"""What the discriminators see, augmented (`gan.d_augment: true`): few-lesion GANs.

At 3 % prevalence a bone's lesion domain is a few real lesions (9 per phantom bone), each
cut 24 times with a little jitter. A discriminator that sees them as they are can learn
them by heart and call anything else fake; the generator is then judged against those few
lesions, not against what a lesion looks like. The ablation's discriminators did that
(docs/synthesis.md, "The ablation": the lesion discriminator's loss near 0.02 by 5,000
iterations), even shown only the lesion and its rim (`judge_area: lesion`).

The remedy of the few-image GAN literature (differentiable augmentation: Zhao et al. 2020,
DiffAugment; Karras et al. 2020, ADA) is to show the discriminator every patch, real and
fake alike, through random transforms that the generator's gradient passes through, so
that memorising the few reals no longer separates them from fakes and the generator is
not taught to reproduce the transforms (they are applied to its output too). Here, per
patch:

- geometry, on every channel alike (the image and, in mask-conditioned runs, its mask):
  a horizontal flip with probability 1/2 and a shift by a whole number of pixels, up to
  `P // 8` along each axis, edges reflected;
- the image channel only: contrast x0.75-1.25 about the patch mean, brightness +-0.1
  (model range, i.e. +-0.05 of the [0, 1] grey), and a cut-out square of side `P // 4`
  (set to 0, mid-grey) at a random place.

The draws come from a `torch.Generator` that the training loop seeds from the run's seed,
the iteration and the rank (`augment_generator`), so a resumed run draws what the
uninterrupted one drew and nothing has to be checkpointed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment_generator", "d_augment"]

CONTRAST = (0.75, 1.25)
BRIGHTNESS = 0.1


def augment_generator(seed: int, iteration: int, rank: int = 0) -> torch.Generator:
    """The CPU generator of one iteration's augmentation draws."""
    return torch.Generator().manual_seed((seed * 1_000_003 + iteration) * 64 + rank)


def d_augment(x: torch.Tensor, generator: torch.Generator, photometric: bool = True
              ) -> torch.Tensor:
    """`(B, C, P, P)` patches (channel 0 the image, the others masks) -> the same,
    augmented per patch (module doc); differentiable in `x`. `photometric=False` leaves
    out the image-only transforms (for tests: then every channel moves alike)."""
    b, _, p, _ = x.shape
    draws = torch.rand(b, 8, generator=generator, dtype=torch.float64)
    reach = max(1, p // 8)
    flip = torch.where(draws[:, 0] < 0.5, -1.0, 1.0)
    shift = torch.round((draws[:, 1:3] * 2 - 1) * reach)       # whole pixels, x and y
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 1, 1] = flip, 1.0
    theta[:, :, 2] = shift * 2.0 / p                            # pixels -> [-1, 1] units
    grid = F.affine_grid(theta.to(x.device, torch.float32), list(x.shape), align_corners=False)
    moved = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection",
                          align_corners=False).to(x.dtype)
    if not photometric:
        return moved
    image, rest = moved[:, :1], moved[:, 1:]
    contrast = (CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * draws[:, 3]).to(x.device, x.dtype)
    bright = ((draws[:, 4] * 2 - 1) * BRIGHTNESS).to(x.device, x.dtype)
    mean = image.mean(dim=(2, 3), keepdim=True)
    image = (image - mean) * contrast.view(b, 1, 1, 1) + mean + bright.view(b, 1, 1, 1)
    side = max(1, p // 4)
    corner = torch.floor(draws[:, 5:7] * (p - side + 1)).to(x.device)   # (B, 2): x, y
    coords = torch.arange(p, device=x.device)
    inside_x = (coords[None] >= corner[:, :1]) & (coords[None] < corner[:, :1] + side)
    inside_y = (coords[None] >= corner[:, 1:]) & (coords[None] < corner[:, 1:] + side)
    cut = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]       # (B, 1, P, P)
    image = image.masked_fill(cut, 0.0)
    return torch.cat([image, rest], dim=1)
