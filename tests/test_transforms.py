"""`boneaug.transforms`: the online lesion painter and its MONAI dictionary transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from boneaug.data import read_image
from boneaug.errors import BoneaugError
from boneaug.transforms import LesionPainter, RandLesiond
from conftest import tiny_femur_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """Phantom femur films, their patch folder and a tiny generator."""
    manifest, bone_dir, generator = tiny_femur_world(tmp_path_factory.mktemp("transforms"))
    normals = manifest.table[(manifest.table["label"] == 0)
                             & (manifest.table["split"] == "train")]
    return manifest, bone_dir, generator, normals


def _films(world, count: int = 6) -> list[tuple[str, np.ndarray]]:
    manifest, _, _, normals = world
    return [(row.image_id, read_image(manifest.resolve(row.path)))
            for row in normals.head(count).itertuples()]


@pytest.mark.parametrize("source", ["generator", "copy_paste"])
def test_a_painted_film_changes_around_its_lesion_only(world, source) -> None:
    _, patch_dir, generator, _ = world
    painter = LesionPainter(**({"generator": generator} if source == "generator"
                               else {"copy_paste": patch_dir}), prob=1.0, seed=1)
    painted = 0
    for key, film in _films(world):
        result = painter(film, key)
        if not result.painted:
            continue
        painted += 1
        x0, y0, x1, y1 = result.box
        assert 0 <= x0 < x1 <= film.shape[1] and 0 <= y0 < y1 <= film.shape[0]
        changed = np.abs(result.image - film) > 1e-6
        assert changed.any() and result.mask.any()
        assert (changed | ~result.mask).all()    # the mask is painted pixels
        far = np.ones_like(changed)              # nothing changes far from the lesion
        w, h = x1 - x0, y1 - y0
        far[max(int(y0 - h), 0):int(y1 + h) + 1, max(int(x0 - w), 0):int(x1 + w) + 1] = False
        assert not changed[far].any()
        assert result.image.dtype == np.float32 and 0 <= result.image.min() <= 1
    assert painted >= 4
    never = LesionPainter(copy_paste=patch_dir, prob=0.0)
    key, film = _films(world, 1)[0]
    result = never(film, key)
    assert not result.painted and result.image is not None and not result.mask.any()
    assert np.array_equal(result.image, film)


def test_draws_are_keyed_by_sample_seed_and_epoch(world) -> None:
    _, patch_dir, _, _ = world
    films = _films(world)
    a = LesionPainter(copy_paste=patch_dir, prob=0.5, seed=3)
    b = LesionPainter(copy_paste=patch_dir, prob=0.5, seed=3)
    first = [a(film, key) for key, film in films]
    # the same samples in another order give the same results (workers, batches)
    again = {key: b(film, key) for key, film in reversed(films)}
    for (key, _), result in zip(films, first, strict=True):
        assert result.painted == again[key].painted
        assert np.array_equal(result.image, again[key].image)
    a.set_epoch(1)
    other = [a(film, key) for key, film in films]
    assert any(x.painted != y.painted or x.box != y.box
               for x, y in zip(first, other, strict=True))
    assert 0 < sum(r.painted for r in first) < len(films)  # prob 0.5


def test_the_dictionary_transform_sets_label_box_and_mask(world) -> None:
    _, _, generator, _ = world
    paint = RandLesiond(LesionPainter(generator, prob=1.0, seed=0))
    key, film = _films(world, 1)[0]
    sample = {"image": torch.from_numpy(film)[None], "label": 0, "image_id": key,
              "boxes": []}
    out = paint(sample)
    assert out is not sample and sample["label"] == 0  # the input is left as it was
    assert int(out["label"]) == 1 and len(out["boxes"]) == 1
    assert isinstance(out["image"], torch.Tensor) and out["image"].shape == (1, *film.shape)
    assert out["mask"].shape == (1, *film.shape) and out["mask"].sum() > 0
    lesion = {"image": film, "label": 1, "image_id": "x", "boxes": [[1, 1, 5, 5]]}
    assert paint(lesion) is lesion  # a lesion film is not painted again
    with pytest.raises(BoneaugError, match="no 'image_id' key"):
        paint({"image": film, "label": 0})


def test_a_film_of_another_bone_is_not_painted(world) -> None:
    """A femur painter leaves a film that names other bones as it is; one that names
    the femur among its bones, or names none, is painted."""
    _, patch_dir, generator, _ = world
    painters = [LesionPainter(generator, prob=1.0, seed=0),
                LesionPainter(copy_paste=patch_dir, prob=1.0, seed=0)]
    key, film = _films(world, 1)[0]
    for painter in painters:
        assert painter.bone == "femur"
        paint = RandLesiond(painter)
        tibia = {"image": film, "label": 0, "image_id": key, "bone": "tibia"}
        assert paint(tibia) is tibia
        assert paint({**tibia, "bone": ["tibia", "fibula"]})["label"] == 0
        for named in ("femur", "Femur", "tibia;femur", ["femur"]):
            assert int(paint({**tibia, "bone": named})["label"]) == 1
        assert int(paint({k: v for k, v in tibia.items() if k != "bone"})["label"]) == 1
        assert int(RandLesiond(painter, bone_key=None)(tibia)["label"]) == 1
        joint = {**tibia, "bone": "knee", "assigned_bones": "femur;tibia"}
        assert paint(joint)["label"] == 0
        assert int(RandLesiond(painter, bone_key="assigned_bones")(joint)["label"]) == 1


def test_a_two_worker_loader_paints_the_same_samples_as_one_process(world) -> None:
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, Lambdad

    manifest, patch_dir, _, normals = world
    samples = [{"image": str(manifest.resolve(row.path)), "label": 0,
                "image_id": row.image_id, "boxes": []} for row in normals.itertuples()]

    def run(workers: int) -> list[dict]:
        paint = RandLesiond(LesionPainter(copy_paste=patch_dir, prob=0.5, seed=7))
        pipeline = Compose([Lambdad("image", lambda p: read_image(p)[None]), paint])
        loader = DataLoader(Dataset(samples, pipeline), batch_size=3, num_workers=workers,
                            collate_fn=lambda batch: batch)
        return [s for batch in loader for s in batch]

    one, two = run(0), run(2)
    assert [s["image_id"] for s in one] == [s["image_id"] for s in two]
    assert 0 < sum(int(s["label"]) for s in one) < len(samples)
    for a, b in zip(one, two, strict=True):
        assert int(a["label"]) == int(b["label"]) and a["boxes"] == b["boxes"]
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))


def test_bad_settings_are_one_line(world, tmp_path: Path) -> None:
    _, patch_dir, generator, _ = world
    with pytest.raises(BoneaugError, match="prob must be in"):
        LesionPainter(copy_paste=patch_dir, prob=1.5)
    with pytest.raises(BoneaugError, match="exactly one of"):
        LesionPainter(generator, copy_paste=patch_dir)
    with pytest.raises(BoneaugError, match="exactly one of"):
        LesionPainter()
    with pytest.raises(BoneaugError, match="expected a .H, W. film"):
        LesionPainter(copy_paste=patch_dir, prob=1.0)(np.zeros((2, 8, 8)), "k")
