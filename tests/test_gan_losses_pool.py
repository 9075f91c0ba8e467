"""LSGAN / cycle / identity losses, the history pool, and the batched training step."""

from __future__ import annotations

import copy

import pytest
import torch

from boneaug.gan import ImagePool, PatchGANDiscriminator, ResnetGenerator
from boneaug.gan.losses import cycle_loss, discriminator_loss, identity_loss, lsgan_loss
from boneaug.gan.reference import reference_step
from boneaug.gan.step import LOSS_NAMES, Discriminators, Generators, train_step


def test_losses_have_the_reference_weights() -> None:
    s = torch.full((2, 1, 3, 3), 0.5)
    assert lsgan_loss(s, True).item() == pytest.approx(0.25)
    assert lsgan_loss(s, False).item() == pytest.approx(0.25)
    assert discriminator_loss(torch.ones(2, 1, 3, 3), torch.ones(2, 1, 3, 3)).item() == \
        pytest.approx(0.5)  # 0.5 * (0 + 1)
    a, b = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1)
    assert cycle_loss(a, b, 10.0).item() == pytest.approx(1.0)
    assert identity_loss(a, b, 10.0, 0.5).item() == pytest.approx(0.5)
    # bf16 inputs are reduced in float32
    assert lsgan_loss(s.bfloat16(), True).dtype == torch.float32


def test_pool_fills_then_swaps_half_the_time() -> None:
    pool = ImagePool(size=4, seed=0)
    first = [torch.full((1, 1, 2, 2), float(i)) for i in range(4)]
    for im in first:  # filling: every image comes straight back
        assert torch.equal(pool.query(im), im)
    assert len(pool) == 4
    returned_old = 0
    for i in range(4, 404):
        out = pool.query(torch.full((1, 1, 2, 2), float(i)))
        returned_old += int(out[0, 0, 0, 0].item() != i)
        assert len(pool) == 4
    assert 150 < returned_old < 250  # ~50 %
    assert ImagePool(size=0).query(first[1]) is not None
    assert torch.equal(ImagePool(size=0).query(first[1]), first[1])


def test_pool_resumes_exactly_from_its_state() -> None:
    a = ImagePool(size=3, seed=7)
    for i in range(10):
        a.query(torch.full((2, 1, 2, 2), float(i)))
    b = ImagePool(size=3, seed=999)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    for i in range(10, 30):
        x = torch.full((2, 1, 2, 2), float(i))
        assert torch.equal(a.query(x), b.query(x))
    with pytest.raises(ValueError):
        ImagePool(size=5).load_state_dict(a.state_dict())


def _nets(seed: int) -> tuple:
    # float64: batched and one-by-one convolutions sum in different orders, and Adam's
    # normalised steps amplify float32 rounding across steps (with one thread the float32
    # losses differed by 2e-3 relative after 4 steps); in float64 only the math can differ
    torch.manual_seed(seed)
    return tuple(m.double() for m in (ResnetGenerator(1, 4), ResnetGenerator(1, 4),
                                      PatchGANDiscriminator(4), PatchGANDiscriminator(4)))


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_batched_step_is_the_reference_math(lambda_identity: float) -> None:
    """4 batched G passes + 1 D pass per domain == the reference's 6 + 4 passes."""
    ref = _nets(0)
    ours = tuple(copy.deepcopy(m) for m in ref)
    gens, discs = Generators(ours[0], ours[1], identity=lambda_identity > 0), \
        Discriminators(ours[2], ours[3])

    def adam(params):
        return torch.optim.Adam(params, lr=2e-3, betas=(0.5, 0.999))

    ref_opt_g = adam([*ref[0].parameters(), *ref[1].parameters()])
    ref_opt_d = adam([*ref[2].parameters(), *ref[3].parameters()])
    opt_g, opt_d = adam(gens.parameters()), adam(discs.parameters())
    ref_pools = (ImagePool(2, seed=1), ImagePool(2, seed=2))
    pools = (ImagePool(2, seed=1), ImagePool(2, seed=2))
    g = torch.Generator().manual_seed(3)
    for _ in range(4):  # pools fill after one step of batch 2, then swap
        healthy = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
        lesion = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
        ref_terms = reference_step(*ref, ref_opt_g, ref_opt_d, *ref_pools, healthy, lesion,
                                   10.0, lambda_identity)
        terms = train_step(gens, discs, opt_g, opt_d, *pools, healthy, lesion, 10.0,
                           lambda_identity)
        assert terms.shape == (len(LOSS_NAMES),)
        torch.testing.assert_close(terms, ref_terms, rtol=1e-7, atol=1e-9)
    x = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    for a, b in zip(ref, ours, strict=True):
        assert all(p.requires_grad for p in b.parameters())
        with torch.no_grad():
            torch.testing.assert_close(b(x), a(x), rtol=1e-4, atol=2e-5)
        for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
            # A conv bias followed by instance norm has no effect on the output and a
            # gradient that is rounding noise, which Adam scales up to full steps: it
            # cannot be compared. The weights and the output biases can.
            if name.endswith("conv.bias"):
                continue
            torch.testing.assert_close(pb, pa, rtol=1e-4, atol=2e-5, msg=name)



@pytest.mark.parametrize("judge", ["grey", "contrast"])
def test_a_contrast_judge_shows_the_discriminators_each_patch_less_its_mean(judge: str
                                                                            ) -> None:
    """`gan.judge: contrast`: every patch a discriminator scores in a step (real, fake for
    the generator loss, pooled fake) is zero-mean, so the lesion domain's grey level is
    not something a fake can match; the reference judge ("grey") sees the patches as they
    are."""
    from boneaug.gan.step import judged

    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    assert torch.equal(judged(x, "grey"), x)
    assert judged(x, "contrast").mean(dim=(2, 3)).abs().max() < 1e-12

    seen: list[torch.Tensor] = []
    nets = _nets(0)
    for d in nets[2:]:
        d.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    gens, discs = Generators(nets[0], nets[1]), Discriminators(nets[2], nets[3])
    opt_g = torch.optim.Adam(gens.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=2e-3, betas=(0.5, 0.999))
    pools = (ImagePool(2, seed=1), ImagePool(2, seed=2))
    g = torch.Generator().manual_seed(3)
    for _ in range(2):  # the second step's pools return earlier fakes
        healthy = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
        lesion = torch.rand(2, 1, 32, 32, generator=g, dtype=torch.float64) - 0.8
        train_step(gens, discs, opt_g, opt_d, *pools, healthy, lesion, 10.0, 0.5,
                   judge=judge)
    assert len(seen) == 8  # per step: each D on its fakes (G loss), then on [real; fake]
    means = torch.cat([s.mean(dim=(2, 3)).flatten() for s in seen]).abs()
    if judge == "contrast":
        assert means.max() < 1e-9
    else:
        assert means.max() > 0.1  # the real lesion patches' mean is about -0.3
