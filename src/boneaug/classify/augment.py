"""The `classic` strategy's augmentation: one batch at a time, in torch, seeded.

`ClassicAugmentation(seed)(x)` takes a batch `(B, 1, S, S)` of images in [0, 1] and
returns an augmented copy: a left-right flip (left and right limbs), a small rotation,
scaling and shift and a mild elastic warp (both in **one** resampling, edges reflected:
no black corners that a tile of a film never has), then gamma, an intensity scale and
detector-like noise. Each transform is applied to an image with its own probability.

Why not MONAI's per-sample dictionary transforms (the first version): run image by image
they cost a `classic` classifier 5x the time of any other (45-60 s against 7-11 s, ~15
min of the phantom benchmark), and their zero padding filled a rotated or shifted 32 px
tile's corners with black (docs/results.md: `classic` came out worse than no
augmentation at the image level).

All random draws come from a CPU `torch.Generator` seeded by `seed` and are made in a
fixed order per batch, so the same seed gives the same augmented batches on any device
(the resampling itself runs where `x` is).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATION", "ClassicAugmentation"]

# In the classifiers' stage keys of the strategies that augment: a change here reruns
# only them (docs/experiment.md, "Stages").
AUGMENTATION = "batched-reflect-1"


class ClassicAugmentation:
    """Seeded batch augmentation; the settings are the `classic` strategy's."""

    flip_p = 0.5
    affine_p, rotate, scale, shift = 0.7, 0.17, 0.08, 4.0  # radians, fraction, pixels
    elastic_p, elastic_spacing, elastic_magnitude = 0.3, 24, (0.5, 1.5)  # pixels
    gamma_p, gamma = 0.5, (0.8, 1.25)
    gain_p, gain = 0.5, 0.1
    noise_p, noise_std = 0.3, 0.01

    def __init__(self, seed: int) -> None:
        self.rng = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.rng, dtype=torch.float64)

    def _chosen(self, n: int, p: float) -> torch.Tensor:
        return torch.rand(n, generator=self.rng, dtype=torch.float64) < p

    def _grid(self, n: int, size: int) -> torch.Tensor:
        """The sampling grid `(B, S, S, 2)`: flip, affine and elastic displacement in the
        normalised coordinates of `grid_sample` (align_corners=False)."""
        flip = torch.where(self._chosen(n, self.flip_p), -1.0, 1.0)
        affine = self._chosen(n, self.affine_p)
        angle = torch.where(affine, self._uniform(n, -self.rotate, self.rotate), 0.0)
        zoom = torch.where(affine, 1 + self._uniform(n, -self.scale, self.scale), 1.0)
        move = torch.where(affine[:, None], self._uniform(2 * n, -self.shift, self.shift)
                           .view(n, 2), 0.0) * 2 / size
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * flip, -sin, move[:, 0]], 1),
                             torch.stack([sin * flip, cos, move[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
        # elastic: normal displacements on a coarse lattice (`elastic_spacing` px apart),
        # smoothly interpolated to every pixel, of `elastic_magnitude` pixels
        knots = math.ceil(size / self.elastic_spacing) + 2
        warp = self._chosen(n, self.elastic_p)
        strength = torch.where(warp, self._uniform(n, *self.elastic_magnitude), 0.0)
        coarse = torch.randn(n, 2, knots, knots, generator=self.rng, dtype=torch.float64)
        field = F.interpolate(coarse * strength[:, None, None, None] * 2 / size,
                              size=(size, size), mode="bicubic", align_corners=True)
        return grid + field.permute(0, 2, 3, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
            raise ValueError(f"expected a batch (B, 1, S, S), got {tuple(x.shape)}")
        n, size = x.shape[0], x.shape[-1]
        grid = self._grid(n, size)
        gamma = torch.where(self._chosen(n, self.gamma_p), self._uniform(n, *self.gamma), 1.0)
        gain = torch.where(self._chosen(n, self.gain_p),
                           1 + self._uniform(n, -self.gain, self.gain), 1.0)
        std = torch.where(self._chosen(n, self.noise_p), self._uniform(n, 0, self.noise_std),
                          0.0)
        noise = torch.randn(x.shape, generator=self.rng, dtype=torch.float32)

        def put(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)

        out = F.grid_sample(x, grid.to(device=x.device, dtype=x.dtype), mode="bilinear",
                            padding_mode="reflection", align_corners=False)
        # gamma on each image's own range, as a radiograph's windowing would change it
        low = out.amin(dim=(2, 3), keepdim=True)
        span = out.amax(dim=(2, 3), keepdim=True) - low
        out = ((out - low) / (span + 1e-7)).clamp(0, 1) ** put(gamma) * span + low
        out = out * put(gain) + noise.to(device=x.device, dtype=x.dtype) * put(std)
        return out.clamp(0, 1)
