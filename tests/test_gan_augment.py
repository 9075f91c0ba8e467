"""`gan.d_augment`: the discriminators see every patch through random, differentiable
transforms (`boneaug.gan.augment`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from boneaug.errors import BoneaugError
from boneaug.gan import GanConfig, train_cyclegan
from boneaug.gan.augment import augment_generator, d_augment

P = 32


def test_geometry_moves_every_channel_alike_by_whole_pixels() -> None:
    """A lone bright pixel stays one pixel (flip and shift land on pixel centres), within
    P // 8 of where it was or of its mirror, and the mask channel moves with the image."""
    x = torch.zeros(16, 2, P, P)
    x[:, :, 12, 9] = 1.0
    out = d_augment(x, augment_generator(0, 5), photometric=False)
    assert out.shape == x.shape
    assert torch.equal(out[:, 0], out[:, 1])
    for patch in out[:, 0]:
        assert patch.max() == pytest.approx(1.0, abs=1e-5)
        assert (patch > 1e-4).sum() == 1
        y, xx = divmod(int(patch.argmax()), P)
        assert abs(y - 12) <= P // 8
        assert min(abs(xx - 9), abs(xx - (P - 1 - 9))) <= P // 8
    flipped = [int(p.argmax()) % P for p in out[:, 0]]
    assert any(abs(v - 9) > P // 8 for v in flipped) and any(abs(v - 9) <= P // 8
                                                             for v in flipped)


def test_the_draws_follow_seed_iteration_and_rank_and_the_gradient_passes() -> None:
    x = torch.rand(4, 2, P, P, requires_grad=True)
    a = d_augment(x, augment_generator(3, 10))
    assert torch.equal(a, d_augment(x, augment_generator(3, 10)))     # resumable draws
    for other in (augment_generator(3, 11), augment_generator(4, 10),
                  augment_generator(3, 10, rank=1)):
        assert not torch.equal(a, d_augment(x, other))
    assert torch.equal(a[:, 1], d_augment(x, augment_generator(3, 10),
                                          photometric=False)[:, 1])  # masks: geometry only
    cut = (a[:, 0] == 0).flatten(1).sum(1)
    assert torch.all(cut >= (P // 4) ** 2)                            # a cut-out square
    a[:, 0].sum().backward()
    assert x.grad is not None and x.grad[:, 0].abs().sum() > 0


def test_a_run_with_augmented_discriminators_resumes_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    healthy, lesion = rng.random((5, P, P), dtype=np.float32), rng.random((3, P, P),
                                                                            dtype=np.float32)
    config = GanConfig(n_blocks=1, ngf=4, ndf=4, iterations=6, pool_size=2, batch_size=2,
                       sample_every=1000, checkpoint_every=2, log_every=2, seed=3,
                       threads=1, d_augment=True)
    whole = train_cyclegan(healthy, lesion, config, tmp_path / "whole", progress=False)
    train_cyclegan(healthy, lesion, config, tmp_path / "split", progress=False,
                   stop_after=3)
    rest = train_cyclegan(healthy, lesion, config, tmp_path / "split", resume=True,
                          progress=False)
    for name, module in whole.networks.items():
        other = rest.networks[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    plain = train_cyclegan(healthy, lesion, GanConfig(**{**config.__dict__, "d_augment": False}),
                           tmp_path / "plain", progress=False)
    first = [next(iter(r.networks["d_lesion"].parameters())) for r in (plain, whole)]
    assert not torch.equal(*first)  # the discriminator learned from other views
    assert "d_augment" not in GanConfig().to_dict()
    assert config.to_dict()["d_augment"] is True
    with pytest.raises(BoneaugError, match="gan.d_augment: must be one of"):
        GanConfig(d_augment="yes").validate()
