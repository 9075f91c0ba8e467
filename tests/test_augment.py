"""The `classic` strategy's batched augmentation (boneaug.classify.augment)."""

from __future__ import annotations

from pathlib import Path

import torch

from boneaug.classify.augment import ClassicAugmentation

OFF = {"flip_p": 0.0, "affine_p": 0.0, "elastic_p": 0.0, "gamma_p": 0.0, "gain_p": 0.0,
       "noise_p": 0.0}


def only(seed: int = 0, **on: float) -> ClassicAugmentation:
    augment = ClassicAugmentation(seed)
    for name, p in {**OFF, **on}.items():
        setattr(augment, name, p)
    return augment


def films(n: int = 6, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 5,
                                            stride=1, padding=2, count_include_pad=False)
    return smooth.clamp(0, 1)


def test_same_seed_same_batches_in_range_and_shape() -> None:
    x = films()
    a, b, c = ClassicAugmentation(3), ClassicAugmentation(3), ClassicAugmentation(4)
    first, second = a(x), a(x)
    assert first.shape == x.shape and first.dtype == x.dtype
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    assert torch.equal(first, b(x)) and torch.equal(second, b(x))  # the stream is seeded
    assert not torch.equal(first, second)  # and goes on from batch to batch
    assert not torch.allclose(first, c(x))
    assert torch.equal(x, films())  # the input is not changed


def test_with_every_transform_off_it_is_the_identity() -> None:
    x = films()
    assert torch.allclose(only()(x), x, atol=1e-5)


def test_the_flip_mirrors_left_and_right() -> None:
    x = films()
    assert torch.allclose(only(flip_p=1.0)(x), x.flip(-1), atol=1e-5)


def test_rotations_shifts_and_warps_reflect_at_the_edges_no_black_corners() -> None:
    """A 32 px tile of bone has no black corners, so a moved tile must not get them: a
    flat grey tile stays flat grey (zero padding, the first version's, made corners 0)."""
    augment = only(affine_p=1.0, elastic_p=1.0)
    augment.rotate, augment.shift = 0.5, 8.0  # strong, so that corners must be filled
    flat = torch.full((8, 1, 32, 32), 0.6)
    assert torch.allclose(augment(flat), flat, atol=1e-5)
    x = films(8)
    moved = augment(x)
    assert (moved - x).abs().mean() > 0.01  # it did move them
    # reflection keeps the grey values of the tile: none darker than its darkest
    assert bool((moved.amin(dim=(2, 3)) >= x.amin(dim=(2, 3)) - 1e-5).all())


def test_gamma_keeps_each_images_range_and_gain_and_noise_are_bounded() -> None:
    x = films()
    gamma = only(gamma_p=1.0)(x)
    assert torch.allclose(gamma.amin(dim=(2, 3)), x.amin(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(gamma.amax(dim=(2, 3)), x.amax(dim=(2, 3)), atol=1e-5)
    assert (gamma - x).abs().max() > 1e-3
    ratio = only(gain_p=1.0)(x) / x
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-4)
    assert bool(((per_image[:, 0] - 1).abs() <= 0.1 + 1e-6).all())
    noisy = only(noise_p=1.0)(torch.full((6, 1, 32, 32), 0.5))
    assert 0 < float((noisy - 0.5).std()) <= 0.011


def test_a_change_to_the_augmentation_reruns_only_the_strategies_that_augment(
        tmp_path: Path, monkeypatch, one_thread) -> None:
    from boneaug.experiment import protocol
    from test_experiment_extend import run, stamps

    folder = tmp_path / "run"
    run(folder, **{"protocol.strategies": ["baseline", "classic"]})
    before = stamps(folder)
    monkeypatch.setattr(protocol, "AUGMENTATION", "another")
    run(folder, **{"protocol.strategies": ["baseline", "classic"]})
    after = stamps(folder)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert [n for n in changed if n.startswith("cls_")] == ["cls_femur_classic_s0.json"]
