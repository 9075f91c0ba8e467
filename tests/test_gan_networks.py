"""The CycleGAN networks match the reference's layer shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from boneaug.gan import PatchGANDiscriminator, ResnetGenerator, count_parameters
from boneaug.gan.networks import from_model_range, to_model_range


@pytest.mark.parametrize(("n_blocks", "expected"), [(9, 11_365_633), (6, 7_825_153)])
def test_generator_parameter_count_matches_reference(n_blocks: int, expected: int) -> None:
    assert count_parameters(ResnetGenerator(n_blocks=n_blocks, ngf=64)) == expected


def test_discriminator_parameter_count_matches_reference() -> None:
    assert count_parameters(PatchGANDiscriminator(ndf=64)) == 2_762_689


def test_generator_layers_are_the_reference_layers() -> None:
    g = ResnetGenerator(n_blocks=2, ngf=8)
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    # 7x7 in, two stride-2 downs, 2 per block, two stride-2 transposed ups, 7x7 out
    assert [(type(c).__name__, c.kernel_size[0], c.stride[0]) for c in convs] == (
        [("Conv2d", 7, 1), ("Conv2d", 3, 2), ("Conv2d", 3, 2)] + [("Conv2d", 3, 1)] * 4
        + [("ConvTranspose2d", 3, 2)] * 2 + [("Conv2d", 7, 1)])
    assert all(c.bias is not None for c in convs)
    assert convs[-3].output_padding == (1, 1)
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 * 2 + 2 and not any(n.affine for n in norms)
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == 2 + 2 * 2
    assert not any(isinstance(m, nn.Dropout | nn.BatchNorm2d) for m in g.modules())
    assert isinstance(g.model[-1], nn.Tanh)


def test_discriminator_layers_are_the_reference_layers() -> None:
    d = PatchGANDiscriminator(ndf=8)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0])
            for c in convs] == [(1, 8, 4, 2, 1), (8, 16, 4, 2, 1), (16, 32, 4, 2, 1),
                                (32, 64, 4, 1, 1), (64, 1, 4, 1, 1)]
    assert all(c.bias is not None for c in convs)
    norms = [m for m in d.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 and not any(n.affine for n in norms)
    slopes = [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 4
    assert not any(isinstance(m, nn.Dropout | nn.BatchNorm2d) for m in d.modules())


def test_weights_start_as_normal_0_002() -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(n_blocks=9, ngf=64)
    w = torch.cat([m.weight.flatten() for m in g.modules()
                   if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.all(m.bias == 0) for m in g.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("p", [32, 64, 128])
@torch.no_grad()
def test_shapes_and_ranges(p: int) -> None:
    torch.manual_seed(0)
    g, d = ResnetGenerator().eval(), PatchGANDiscriminator().eval()
    x = to_model_range(torch.rand(2, 1, p, p))
    y = g(x)
    assert y.shape == (2, 1, p, p) and y.dtype == torch.float32
    assert float(y.abs().max()) <= 1.0
    s = d(y)
    assert s.shape == (2, 1, p // 8 - 2, p // 8 - 2)
    assert torch.isfinite(s).all()


def test_range_helpers_round_trip() -> None:
    x = torch.rand(3, 1, 8, 8)
    m = to_model_range(x)
    assert float(m.min()) >= -1 and float(m.max()) <= 1
    assert torch.allclose(from_model_range(m), x, atol=1e-6)
    assert float(from_model_range(torch.tensor([-3.0, 3.0])).min()) == 0.0


def test_generator_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError):
        ResnetGenerator(n_blocks=0)


def _checkerboard(y: torch.Tensor) -> float:
    """The share of a map's spread that alternates pixel by pixel (a 2x2 checker)."""
    y = y[0, 0, 8:-8, 8:-8]
    checker = (y[::2, ::2] + y[1::2, 1::2] - y[::2, 1::2] - y[1::2, ::2]).abs().mean() / 4
    return float(checker / y.std())


def test_resize_upsampling_leaves_no_checkerboard() -> None:
    """On a smooth input, freshly initialised generators: the transposed convolutions'
    uneven overlap puts a 2x2 checker into the output (0.35-0.59 of its spread over seeds
    0-4), resize-then-convolve much less (0.11-0.15)."""
    ramp = torch.linspace(-1, 1, 64)
    x = (ramp[None, :] * 0.5 + ramp[:, None] * 0.3)[None, None]
    x = x + 0.05 * torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    found = {}
    for mode in ("transpose", "resize"):
        values = []
        for seed in range(3):
            torch.manual_seed(seed)
            net = ResnetGenerator(2, 8, upsample=mode).eval()
            with torch.no_grad():
                out = net(x)
            assert out.shape == x.shape
            values.append(_checkerboard(out))
        found[mode] = values
    assert max(found["resize"]) < 0.5 * min(found["transpose"])
    assert ResnetGenerator(1, 4).config() == {"n_blocks": 1, "ngf": 4, "in_channels": 1,
                                              "out_channels": 1}  # files as before
    assert ResnetGenerator(1, 4, upsample="resize").config()["upsample"] == "resize"
    with pytest.raises(ValueError, match="upsample"):
        ResnetGenerator(1, 4, upsample="bilinear")
