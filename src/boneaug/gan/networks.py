"""The CycleGAN networks: a ResNet generator and a 70x70 PatchGAN discriminator, grayscale.

Layer for layer these are the networks of the reference CycleGAN (Zhu et al. 2017,
junyanz/pytorch-CycleGAN-and-pix2pix, `--netG resnet_9blocks --netD basic --norm instance`),
at one input and one output channel:

- generator: reflection pad 3, conv 7x7 + instance norm + ReLU; two stride-2 3x3 convs
  (+ IN + ReLU) doubling the channels; `n_blocks` residual blocks at `4 * ngf` channels;
  two stride-2 transposed 3x3 convs (output padding 1, + IN + ReLU); reflection pad 3,
  conv 7x7, tanh. 9 blocks at ngf=64: 11,365,633 parameters; 6 blocks: 7,825,153.
- discriminator: conv 4x4 stride 2 + LeakyReLU(0.2); conv 4x4 stride 2 + IN + LeakyReLU to
  2*ndf and 4*ndf; conv 4x4 stride 1 + IN + LeakyReLU to 8*ndf; conv 4x4 stride 1 to one
  channel; padding 1 throughout. ndf=64: 2,762,689 parameters.

Instance norm has no affine parameters there, so every conv carries a bias; there is no
dropout. Weights start as N(0, 0.02), biases at 0.

Building blocks: the conv + norm + activation units are MONAI's `Convolution` (with
`norm=INSTANCE`, which is affine-free, and `bias=True`), and the discriminator is MONAI's
`PatchDiscriminator` configured to the reference (instance norm instead of its default batch
norm, biases on, 3 layers). MONAI has no ResNet generator with reflection padding, so the
generator's padding layers and residual blocks are assembled here from plain `torch.nn`.

Tensors are channel-first, `(B, 1, P, P)` in `[-1, 1]`; `P` must be a multiple of 4 for the
generator to return its input size, and at least 24 for the discriminator's output to be
non-empty (its output is `(B, 1, P/8 - 2, P/8 - 2)`).
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import PatchDiscriminator
from monai.networks.utils import normal_init
from torch import nn

from boneaug.errors import BoneaugError

__all__ = ["MIN_PATCH", "check_patch_size", "ResnetGenerator", "MaskedGenerator",
           "PatchGANDiscriminator", "build_generator", "count_parameters", "to_model_range",
           "from_model_range"]

MIN_PATCH = 24  # below this the 70x70 PatchGAN's output is empty


def check_patch_size(size: object, where: str) -> None:
    """The one patch-size rule of the CycleGAN: a whole number, a multiple of 4 (two
    stride-2 steps down and up), at least `MIN_PATCH`. `where` names the setting."""
    whole = isinstance(size, int) and not isinstance(size, bool)
    if not whole or size % 4 or size < MIN_PATCH:  # type: ignore[operator]
        below, above = (max(MIN_PATCH, size - size % 4), max(MIN_PATCH, size + 4 - size % 4)) \
            if whole else (0, 0)  # type: ignore[operator]
        near = f" (e.g. {below} or {above})" if whole and below != above else \
            (f" (e.g. {above})" if whole else "")
        raise BoneaugError(f"{where} {size!r}: the CycleGAN needs a patch side that is a "
                           f"multiple of 4 and at least {MIN_PATCH}{near}")


def _conv_in_relu(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0,
                  act: str | None = "RELU", transposed: bool = False) -> Convolution:
    """conv (bias) -> InstanceNorm (no affine) -> activation, as a MONAI `Convolution`."""
    return Convolution(
        spatial_dims=2, in_channels=in_ch, out_channels=out_ch, strides=stride,
        kernel_size=kernel, padding=padding, act=act, norm="INSTANCE", bias=True,
        is_transposed=transposed, output_padding=1 if transposed else None,
    )


class ResidualBlock(nn.Module):
    """x + (reflpad 1, conv 3x3, IN, ReLU, reflpad 1, conv 3x3, IN)(x); shape-preserving."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            _conv_in_relu(channels, channels, 3),
            nn.ReflectionPad2d(1),
            _conv_in_relu(channels, channels, 3, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The reference CycleGAN ResNet generator, `(B, in_channels, P, P) -> (B, out_channels,
    P, P)`, output in `[-1, 1]` (tanh).

    Args:
        n_blocks: residual blocks at the bottleneck (the reference uses 9, or 6 for small
            images); any positive integer is accepted so tests can use tiny nets.
        ngf: channels of the first layer; the bottleneck has `4 * ngf`.
        in_channels, out_channels: 1 for grayscale radiographs.
        upsample: "transpose" (the reference: stride-2 transposed 3x3 convolutions) or
            "resize" (nearest-neighbour x2, reflection pad, 3x3 convolution: every output
            pixel gets the same number of kernel taps, so no checkerboard pattern).
    """

    masked = False  # takes no lesion mask (see `MaskedGenerator`)

    def __init__(self, n_blocks: int = 9, ngf: int = 64, in_channels: int = 1,
                 out_channels: int = 1, upsample: str = "transpose") -> None:
        super().__init__()
        if n_blocks < 1 or ngf < 1:
            raise ValueError(f"n_blocks and ngf must be positive, got {n_blocks}, {ngf}")
        if upsample not in ("transpose", "resize"):
            raise ValueError(f"upsample must be transpose or resize, got {upsample!r}")
        self.n_blocks, self.ngf, self.upsample = n_blocks, ngf, upsample
        self.in_channels, self.out_channels = in_channels, out_channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), _conv_in_relu(in_channels, ngf, 7)]
        for mult in (1, 2):  # downsample x4, channels x4
            layers.append(_conv_in_relu(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1))
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # back up to the input size
            if upsample == "transpose":
                layers.append(_conv_in_relu(ngf * mult, ngf * mult // 2, 3, stride=2,
                                            padding=1, transposed=True))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           _conv_in_relu(ngf * mult, ngf * mult // 2, 3)]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0, bias=True),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)
        self.apply(normal_init)  # N(0, 0.02) weights, zero biases, as the reference

    def config(self) -> dict[str, Any]:
        """The constructor arguments, to rebuild this network from a checkpoint (a file
        written before `upsample` existed has none: the reference's transpose)."""
        values: dict[str, Any] = {"n_blocks": self.n_blocks, "ngf": self.ngf,
                                  "in_channels": self.in_channels,
                                  "out_channels": self.out_channels}
        if self.upsample != "transpose":
            values["upsample"] = self.upsample
        return values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: `(B, in_channels, P, P)` in `[-1, 1]`, `P % 4 == 0` -> same size, in `[-1, 1]`."""
        return self.model(x)


class MaskedGenerator(ResnetGenerator):
    """The mask-conditioned generator (`gan.mask: true`): `(B, 2, P, P)` -> `(B, 1, P, P)`.

    Channel 0 is the patch, channel 1 the mask of where the lesion is to be, both in the
    model range (`boneaug.gan.masks.with_mask`: mask ``m`` in [0, 1] travels as
    ``2 m - 1``). The ResNet generator sees both and its output is kept only under the
    mask: ``out = patch + m * (G(patch, mask) - patch)``. Where ``m`` is 0 the output is the
    patch, exactly; size, shape and site of the lesion are the mask's.
    """

    masked = True

    def __init__(self, n_blocks: int = 9, ngf: int = 64, in_channels: int = 2,
                 out_channels: int = 1, upsample: str = "transpose", masked: bool = True
                 ) -> None:
        if (in_channels, out_channels, masked) != (2, 1, True):
            raise ValueError("a mask-conditioned generator takes a patch and a mask (2 "
                             f"channels) to one patch, got {in_channels} -> {out_channels}")
        super().__init__(n_blocks, ngf, in_channels=2, out_channels=1, upsample=upsample)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "masked": True}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patch, weight = x[:, :1], (x[:, 1:2] + 1.0) * 0.5
        return patch + weight * (self.model(x) - patch)


def build_generator(config: dict[str, Any]) -> ResnetGenerator:
    """A generator from its `config()` (a checkpoint's "network"): masked or not."""
    settings = dict(config)
    return MaskedGenerator(**settings) if settings.get("masked") else ResnetGenerator(**settings)


class PatchGANDiscriminator(nn.Module):
    """The reference 70x70 PatchGAN, `(B, in_channels, P, P) -> (B, 1, P/8 - 2, P/8 - 2)` logits
    (unbounded: the LSGAN loss regresses them to 1 for real and 0 for fake).

    MONAI's `PatchDiscriminator` with the reference's choices in place of MONAI's defaults:
    instance norm (not batch norm) and biases in every conv. MONAI's forward returns all
    intermediate features; only the last (the patch scores) is returned here.
    """

    def __init__(self, ndf: int = 64, in_channels: int = 1, n_layers: int = 3) -> None:
        super().__init__()
        self.ndf, self.in_channels, self.n_layers = ndf, in_channels, n_layers
        self.net = PatchDiscriminator(
            spatial_dims=2, channels=ndf, in_channels=in_channels, out_channels=1,
            num_layers_d=n_layers, kernel_size=4, norm="INSTANCE", bias=True, padding=1,
            dropout=None, last_conv_kernel_size=4,  # None: no (p=0) Dropout module at all
        )
        self.apply(normal_init)

    def config(self) -> dict[str, int]:
        return {"ndf": self.ndf, "in_channels": self.in_channels, "n_layers": self.n_layers}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net.children():
            x = layer(x)
        return x


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def to_model_range(patches: torch.Tensor) -> torch.Tensor:
    """Patches stored in `[0, 1]` -> the networks' `[-1, 1]`."""
    return patches * 2.0 - 1.0


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """Network outputs in `[-1, 1]` -> `[0, 1]`, clamped."""
    return ((images + 1.0) * 0.5).clamp(0.0, 1.0)
