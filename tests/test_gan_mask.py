"""The mask-conditioned generator (`gan.mask: true`): masks, the network, training,
resume, the generator file, synthesis and the transform with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from boneaug.data import load_manifest, read_image
from boneaug.errors import BoneaugError
from boneaug.gan import GanConfig, from_model_range, load_generator, to_model_range, train_cyclegan
from boneaug.gan.masks import RIM, box_mask, patch_box, patch_masks, site_mask, with_mask
from boneaug.gan.networks import MaskedGenerator, ResnetGenerator, build_generator
from boneaug.synth.synthesize import synthesize
from boneaug.transforms import LesionPainter
from conftest import smooth_patches, tiny_femur_world

P = 32


def _radius(box, size):
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return np.sqrt(((xs - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2
                   + ((ys - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2)


# --- masks ----------------------------------------------------------------------------------

def test_a_box_mask_is_its_soft_inscribed_ellipse() -> None:
    box = (6.0, 10.0, 22.0, 18.0)
    mask, radius = box_mask(box, P), _radius(box, P)
    assert mask.shape == (P, P) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    assert (mask[radius <= 1 - RIM] == 1).all()
    assert (mask[radius >= 1 + RIM] == 0).all()
    rim = (radius > 1 - RIM) & (radius < 1 + RIM)
    assert ((mask[rim] > 0) & (mask[rim] < 1)).mean() > 0.8
    # a sliver of a box still gives a mask (half-axes of at least a pixel)
    assert box_mask((10, 10, 10.2, 20), P).sum() > 0


def test_film_boxes_map_into_their_patch() -> None:
    # a 40 px crop at (100, 50) resized to 20 px: the lesion [110, 60, 130, 70] -> halves
    assert patch_box((110, 60, 130, 70), (100, 50, 140, 90), 20) == (5.0, 5.0, 15.0, 10.0)
    np.testing.assert_array_equal(site_mask((110, 60, 130, 70), (100, 50, 140, 90), 20),
                                  box_mask((5, 5, 15, 10), 20))
    index = pd.DataFrame({"x0": [100, 0], "y0": [50, 0], "x1": [140, 20], "y1": [90, 20],
                          "lesion_x0": [110.0, 2.0], "lesion_y0": [60.0, 2.0],
                          "lesion_x1": [130.0, 18.0], "lesion_y1": [70.0, 18.0]})
    masks = patch_masks(index, 20)
    assert masks.shape == (2, 20, 20)
    np.testing.assert_array_equal(masks[1], box_mask((2, 2, 18, 18), 20))


# --- the network ----------------------------------------------------------------------------

def test_the_masked_generator_leaves_everything_outside_its_mask_exactly() -> None:
    torch.manual_seed(0)
    g = MaskedGenerator(n_blocks=1, ngf=4)
    with torch.no_grad():  # untrained weights change every pixel they are allowed to
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    patch = torch.rand(3, 1, P, P) * 2 - 1
    masks = torch.from_numpy(np.stack([box_mask(b, P) for b in
                                       ((4, 4, 14, 20), (10, 2, 30, 12), (0, 0, 8, 8))]))
    out = g(with_mask(patch, to_model_range(masks[:, None])))
    assert out.shape == (3, 1, P, P)
    outside, inside = masks[:, None] == 0, masks[:, None] == 1
    assert torch.equal(out[outside], patch[outside])
    assert (out[inside] - patch[inside]).abs().mean() > 0.05
    # under bf16 autocast too (synthesis uses it where it is fast)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = g(with_mask(patch, to_model_range(masks[:, None])))
    assert torch.equal(low.float()[outside], patch[outside])


def test_generator_settings_rebuild_the_same_kind() -> None:
    masked, plain = MaskedGenerator(1, 4, upsample="resize"), ResnetGenerator(1, 4)
    assert masked.masked and not plain.masked
    rebuilt = build_generator(masked.config())
    assert isinstance(rebuilt, MaskedGenerator) and rebuilt.upsample == "resize"
    assert type(build_generator(plain.config())) is ResnetGenerator
    with pytest.raises(ValueError, match="2 channels"):
        MaskedGenerator(1, 4, in_channels=1)


# --- training -------------------------------------------------------------------------------

def _tiny(**kw) -> GanConfig:
    base = dict(n_blocks=1, ngf=4, ndf=4, iterations=6, pool_size=2, batch_size=2,
                sample_every=1000, checkpoint_every=1000, log_every=2, seed=3, mask=True,
                threads=1)
    base.update(kw)
    return GanConfig(**base)


def _data(n_healthy: int, n_lesion: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    boxes = [(rng.uniform(2, 12), rng.uniform(2, 12), rng.uniform(18, 30), rng.uniform(18, 30))
             for _ in range(n_lesion)]
    return (rng.random((n_healthy, P, P), dtype=np.float32),
            rng.random((n_lesion, P, P), dtype=np.float32),
            np.stack([box_mask(b, P) for b in boxes]))


def test_a_masked_run_resumes_bit_for_bit_and_leaves_a_masked_generator(tmp_path: Path
                                                                        ) -> None:
    healthy, lesion, masks = _data(5, 3)
    config = _tiny(checkpoint_every=2, sample_every=4)
    whole = train_cyclegan(healthy, lesion, config, tmp_path / "whole", progress=False,
                           lesion_masks=masks)
    train_cyclegan(healthy, lesion, config, tmp_path / "split", progress=False,
                   lesion_masks=masks, stop_after=3)
    rest = train_cyclegan(healthy, lesion, config, tmp_path / "split", resume=True,
                          progress=False, lesion_masks=masks)
    for name, module in whole.networks.items():
        other = rest.networks[name].state_dict()
        for key, value in module.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    generator, info = load_generator(whole.generator_path)
    assert isinstance(generator, MaskedGenerator) and info["network"]["masked"]
    assert info["config"]["mask"] is True
    assert whole.networks["d_lesion"].in_channels == 2  # it judges a lesion with its mask
    # other masks are another run: resuming with them is refused
    with pytest.raises(BoneaugError, match="patches differ"):
        train_cyclegan(healthy, lesion, _tiny(iterations=8), tmp_path / "split", resume=True,
                       progress=False, lesion_masks=masks[::-1].copy())


def test_masks_are_checked(tmp_path: Path) -> None:
    healthy, lesion, masks = _data(4, 3)
    cases = [(_tiny(), None, "needs the lesion patches' masks"),
             (_tiny(mask=False), masks, "gan.mask is off"),
             (_tiny(), masks[:2], "one per lesion patch"),
             (_tiny(), masks * 2, r"in \[0, 1\]"),
             (_tiny(), np.zeros_like(masks), "empty mask")]
    for config, given, fragment in cases:
        with pytest.raises(BoneaugError, match=fragment):
            train_cyclegan(healthy, lesion, config, tmp_path / "r", progress=False,
                           lesion_masks=given)
    assert "mask" not in GanConfig().to_dict()  # older runs' records and stage keys unchanged
    with pytest.raises(BoneaugError, match="gan.mask: must be one of"):
        _tiny(mask="yes").validate()


def test_it_learns_to_paint_a_dark_lesion_where_the_mask_says(tmp_path: Path) -> None:
    """Lesion patches: smooth noise darkened inside an ellipse that wanders over the patch;
    their masks: those ellipses. After training, the healthy -> lesion generator darkens a
    held-out patch inside a mask at a site it is given, and nowhere else."""
    rng = np.random.default_rng(5)
    centres = rng.uniform(10, 22, size=(64, 2))
    masks = np.stack([box_mask((x - 6, y - 6, x + 6, y + 6), P) for x, y in centres])
    lesion = smooth_patches(64, 1, P) - 0.18 * masks
    healthy, held_out = smooth_patches(64, 0, P), smooth_patches(8, 2, P)
    config = GanConfig(n_blocks=2, ngf=8, ndf=8, iterations=250, decay_start=250, lr=2e-3,
                       batch_size=4, pool_size=10, sample_every=1000, checkpoint_every=1000,
                       seed=0, mask=True, threads=1)
    result = train_cyclegan(healthy, lesion, config, tmp_path, progress=False,
                            lesion_masks=masks)
    where = np.stack([box_mask((c - 6, c - 6, c + 6, c + 6), P)
                      for c in np.linspace(11, 21, len(held_out))])
    with torch.no_grad():
        x = with_mask(to_model_range(torch.from_numpy(held_out)[:, None]),
                      to_model_range(torch.from_numpy(where)[:, None]))
        out = from_model_range(result.networks["healthy_to_lesion"](x))[:, 0].numpy()
    change = out - held_out
    assert np.abs(change[where == 0]).max() < 1e-6          # outside: the patch itself
    assert change[where == 1].mean() < -0.08                 # inside: a dark lesion
    # the cycle terms fall (the adversarial ones need not: D learns too)
    losses = pd.read_csv(result.losses_path)
    cycle = losses["cycle_healthy"] + losses["cycle_lesion"]
    assert cycle.iloc[-50:].mean() < 0.5 * cycle.iloc[:10].mean()


def test_a_lesion_judge_sees_only_the_lesion_and_its_rim(tmp_path: Path) -> None:
    """`gan.judge_area: lesion`: both discriminators see each patch only within its mask
    grown by P // 12 px (the rest is 0), so the surroundings of the few real lesions, which
    a masked generator cannot change, do not tell real from fake."""
    from boneaug.gan import ImagePool, PatchGANDiscriminator
    from boneaug.gan.step import Discriminators, Generators, judged, lesion_area, train_step

    _, _, masks = _data(0, 4)
    m = to_model_range(torch.from_numpy(masks)[:, None])
    area = lesion_area(m)
    grow = P // 12
    weight = torch.from_numpy(masks)[:, None]
    inside = weight > 0
    assert torch.all(area >= weight - 1e-6) and area.max() == pytest.approx(1.0)
    assert torch.all(area[weight == 1] > 1 - 1e-6)
    far = torch.nn.functional.max_pool2d(inside.float(), 2 * grow + 1, 1, grow) == 0
    assert torch.all(area[far] == 0) and far.any()
    assert (area > 0).sum() > inside.sum()                     # a rim around the lesion
    x = torch.rand(4, 1, P, P)
    assert torch.all(judged(x, "grey", area)[far] == 0)
    c = judged(x, "contrast", area)
    assert torch.all(c[far] == 0)
    # the contrast judge takes the mean over the area: a constant added changes nothing
    assert torch.allclose(judged(x + 0.3, "contrast", area), c, atol=1e-6)
    assert not torch.allclose(judged(x + 0.3, "grey", area), judged(x, "grey", area))

    torch.manual_seed(0)
    gens = Generators(MaskedGenerator(1, 4, upsample="resize"),
                      MaskedGenerator(1, 4, upsample="resize"))
    d_l, d_h = PatchGANDiscriminator(4, in_channels=2), PatchGANDiscriminator(4)
    seen: list[tuple[str, torch.Tensor]] = []
    for name, d in (("lesion", d_l), ("healthy", d_h)):
        d.register_forward_pre_hook(lambda _m, a, n=name: seen.append((n, a[0].detach())))
    discs = Discriminators(d_l, d_h)
    opt_g = torch.optim.Adam(gens.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discs.parameters(), lr=1e-3)
    healthy, lesion = torch.rand(2, 1, P, P) * 2 - 1, torch.rand(2, 1, P, P) * 2 - 1
    m_h, m_l = m[:2], m[2:]
    train_step(gens, discs, opt_g, opt_d, ImagePool(0), ImagePool(0), healthy, lesion,
               mask_healthy=m_h, mask_lesion=m_l, judge="contrast", judge_area="lesion")
    a_h, a_l = lesion_area(m_h), lesion_area(m_l)
    expected = {"lesion": [a_h, torch.cat([a_l, a_h])],        # G's fakes; [real; fake]
                "healthy": [a_l, torch.cat([a_h, a_l])]}
    for name, areas in expected.items():
        inputs = [t for n, t in seen if n == name]
        assert len(inputs) == 2
        for x_seen, a in zip(inputs, areas, strict=True):
            assert torch.all(x_seen[:, :1][a == 0] == 0), name
            assert x_seen[:, :1][a > 0.5].abs().max() > 0.01, name  # the lesion is seen

    # through training: recorded, and refused without masks
    h, les, les_masks = _data(5, 3)
    result = train_cyclegan(h, les, _tiny(judge_area="lesion"), tmp_path / "r",
                            progress=False, lesion_masks=les_masks)
    _, info = load_generator(result.generator_path)
    assert info["config"]["judge_area"] == "lesion"
    assert "judge_area" not in _tiny().to_dict()
    with pytest.raises(BoneaugError, match="judge_area: 'lesion' needs a lesion mask"):
        _tiny(mask=False, judge_area="lesion").validate()


# --- synthesis and the transform -------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """Phantom femur films and a tiny mask-conditioned generator."""
    manifest, _, generator = tiny_femur_world(tmp_path_factory.mktemp("masked"), mask=True,
                                              threads=1)
    return manifest, generator


def _near(box, shape, grow: float, pixel: float = 1.0) -> np.ndarray:
    """Pixels within the box grown by `grow` of its half-sides and by two patch pixels of
    side `pixel` (resizing the change from the patch to the crop spreads it that far)."""
    x0, y0, x1, y1 = box
    gx, gy = grow * (x1 - x0) / 2 + 2 * pixel, grow * (y1 - y0) / 2 + 2 * pixel
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    return (xs > x0 - gx) & (xs < x1 + gx) & (ys > y0 - gy) & (ys < y1 + gy)


def test_synthesis_with_a_masked_generator_changes_only_the_lesion_site(world, tmp_path
                                                                        ) -> None:
    manifest, generator = world
    report = synthesize(generator, manifest, "femur", tmp_path / "syn", count=4, seed=1,
                        progress=False)
    rows = load_manifest(report.synthetic_manifest, check_images=False).table
    assert len(rows) == 4
    for _, row in rows.iterrows():
        provenance = json.loads(row["provenance"])
        source = read_image(provenance["source_path"])
        painted = read_image(tmp_path / "syn" / row["path"])
        crop = provenance["crop_box"]
        outside = ~_near(provenance["lesion_box"], source.shape, RIM, (crop[2] - crop[0]) / 24)
        assert outside.mean() > 0.5
        assert np.abs(painted - source)[outside].max() <= 1.5 / 65535, row["image_id"]


def test_the_transform_paints_with_a_masked_generator(world) -> None:
    manifest, generator = world
    painter = LesionPainter(generator, prob=1.0, seed=0)
    row = manifest.table[(manifest.table["label"] == 0)].iloc[0]
    film = read_image(manifest.resolve(row["path"]))
    painted = painter(film, row["image_id"])
    assert painted.painted
    grow = (painted.box[2] - painted.box[0]) * 2 / 24  # at most the crop side / patch side
    outside = ~_near(painted.box, film.shape, RIM, grow)
    assert outside.mean() > 0.5
    assert np.abs(painted.image - film)[outside].max() < 1e-6


def test_an_experiment_with_gan_mask_trains_and_paints_with_a_masked_generator(
        tmp_path: Path, one_thread) -> None:
    """The experiment's path: the GAN stage reads the lesion masks from the patch store,
    leaves a masked generator, and synthesis and the classifiers run on its lesions."""
    from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment
    from test_experiment_extend import TINY

    config = load_experiment_config(demo_config_path(), {**TINY, "gan.mask": True,
                                                         "realism.enabled": False})
    lines: list[str] = []
    run_experiment(config, tmp_path / "run", say=lines.append, progress=False, report=False)
    gan = tmp_path / "run" / "gan" / "femur"
    generator, info = load_generator(gan / "generator_healthy_to_lesion.pt")
    assert isinstance(generator, MaskedGenerator) and info["config"]["mask"] is True
    stages = {p.name for p in (tmp_path / "run" / "stages").glob("*.json")}
    assert {"gan_femur.json", "synth_gan_femur.json", "cls_femur_gan-r1_s0.json"} <= stages
    synthetic = load_manifest(tmp_path / "run" / "synth" / "gan" / "femur-s0" / "synthetic.csv",
                              check_images=False).table
    assert len(synthetic) > 0 and (synthetic["origin"] == "synthetic").all()
