"""`gan.lambda_darken`: a hinge that asks each fake lesion to darken its source at the
lesion's site, for bones whose real lesions are lytic (docs/synthesis.md, "Brightening")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from boneaug.errors import BoneaugError
from boneaug.gan import GanConfig, train_cyclegan
from boneaug.gan.losses import DARKEN_MARGIN, darken_loss, site_change
from boneaug.gan.masks import centre_mask
from boneaug.gan.step import lesion_site

P = 24


def test_darken_loss_by_hand() -> None:
    source = torch.zeros(2, 1, 4, 4)
    site = torch.zeros(1, 1, 4, 4)
    site[..., 1:3, 1:3] = 1.0                                   # a 2 x 2 site
    fake = source.clone()
    fake[0, 0, 1:3, 1:3] = torch.tensor([[0.2, 0.2], [0.0, 0.0]])   # +0.1 at the site
    fake[1, 0, 1:3, 1:3] = -0.4                                 # -0.4 at the site
    fake[1, 0, 0, 0] = 5.0                                      # off the site: not counted
    torch.testing.assert_close(site_change(fake, source, site), torch.tensor([0.1, -0.4]))
    # sample 0: relu(0.1 + 0.05) = 0.15; sample 1: relu(-0.4 + 0.05) = 0 -> mean 0.075, x 2
    loss = darken_loss(fake, source, site, 2.0)
    assert loss.item() == pytest.approx(2.0 * (0.1 + DARKEN_MARGIN) / 2)
    assert darken_loss(fake, source, site, 0.0).item() == 0.0


def test_the_site_is_the_mask_or_the_patch_centre() -> None:
    centre = centre_mask(P)
    assert centre[P // 2, P // 2] == 1.0 and centre[0, 0] == 0.0 and centre[P // 2, 0] == 0.0
    # the default context 0.5: the ellipse spans the central 2/3 of the patch
    assert centre[P // 2, P // 6 + 2] == 1.0 and centre[P // 2, P // 6 - 2] == 0.0
    x = torch.zeros(3, 1, P, P)
    torch.testing.assert_close(lesion_site(x, None)[0, 0], torch.from_numpy(centre))
    # patches cut with a wider context put their lesion in a smaller central site
    assert lesion_site(x, None, 1.0).sum() < lesion_site(x, None).sum()
    torch.testing.assert_close(lesion_site(x, None, 1.0)[0, 0],
                               torch.from_numpy(centre_mask(P, 1.0)))
    from boneaug.gan.loop import patch_context
    assert patch_context({"patches": {"context": 1.0}}) == 1.0 and patch_context(None) == 0.5
    mask = torch.full((3, 1, P, P), -1.0)
    mask[1, 0, :4, :4] = 1.0
    site = lesion_site(x, mask)
    assert site.shape == (3, 1, P, P) and site[1, 0, :4, :4].min() == 1.0
    assert site.sum() == 16


def _domains(lesion_shift: float) -> tuple[np.ndarray, np.ndarray]:
    # dark healthy patches (an untrained generator's output, near mid-grey, brightens them)
    rng = np.random.default_rng(0)
    healthy = (0.15 + 0.03 * rng.standard_normal((6, P, P))).astype(np.float32)
    lesion = (0.3 + 0.03 * rng.standard_normal((4, P, P))).astype(np.float32)
    lesion += lesion_shift * centre_mask(P)                     # darker (< 0) at the centre
    return healthy.clip(0, 1), lesion.clip(0, 1)


def _config(**changes: object) -> GanConfig:
    return GanConfig(**{**dict(n_blocks=1, ngf=4, ndf=4, iterations=12, pool_size=2,
                               batch_size=2, sample_every=1000, checkpoint_every=4,
                               log_every=2, seed=1, threads=1, lr=2e-3), **changes})


def test_training_with_the_prior_logs_it_and_darkens_more(tmp_path: Path) -> None:
    import pandas as pd

    healthy, lesion = _domains(-0.25)
    plain = train_cyclegan(healthy, lesion, _config(), tmp_path / "plain", progress=False)
    dark = train_cyclegan(healthy, lesion, _config(lambda_darken=50.0), tmp_path / "dark",
                          progress=False)
    logged = pd.read_csv(tmp_path / "dark" / "losses.csv")
    assert (logged["darken"] >= 0).all() and logged["darken"].iloc[0] > 0
    assert logged["darken"].iloc[-1] < 0.5 * logged["darken"].iloc[0]   # it falls
    assert (pd.read_csv(tmp_path / "plain" / "losses.csv")["darken"] == 0).all()
    x = torch.from_numpy(healthy[:, None] * 2 - 1)
    site = torch.from_numpy(centre_mask(P))[None, None]
    with torch.no_grad():
        changes = [site_change(run.networks["healthy_to_lesion"](x), x, site).mean().item()
                   for run in (plain, dark)]
    assert changes[1] < changes[0] - 0.05          # a heavy prior: clearly darker
    assert changes[1] < 0


def test_the_prior_is_refused_where_lesions_are_not_lytic(tmp_path: Path) -> None:
    healthy, lesion = _domains(+0.2)                             # sclerotic: brighter
    with pytest.raises(BoneaugError, match="lambda_darken.*not lytic"):
        train_cyclegan(healthy, lesion, _config(lambda_darken=1.0), tmp_path / "r",
                       progress=False)
    assert not (tmp_path / "r" / "losses.csv").exists()


def test_the_setting_is_checked_and_keeps_old_keys() -> None:
    assert "lambda_darken" not in GanConfig().to_dict()
    assert GanConfig(lambda_darken=2.0).to_dict()["lambda_darken"] == 2.0
    with pytest.raises(BoneaugError, match="gan.lambda_darken"):
        GanConfig(lambda_darken=-1.0).validate()
