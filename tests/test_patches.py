"""Per-bone patch extraction: domains, geometry, leakage, scale, determinism, stores, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from boneaug.data import Manifest, load_manifest, new_table, read_image, save_manifest
from boneaug.errors import BoneaugError
from boneaug.patches import (
    estimate_bone_region,
    extract_patches,
    load_domains,
    load_patch_store,
    overlap_scores,
    write_patch_store,
)
from boneaug.patches.crop import crop_reflect, resize_square

SIZE = 96  # fixture image side


def tube_image(size: int, angle: float, rng: np.random.Generator, *, soft: bool = True,
               marker: bool = True, lesion: bool = False
               ) -> tuple[np.ndarray, np.ndarray, list[float] | None]:
    """A bright hollow tube (bone) in a dimmer soft-tissue band, with noise.

    Returns the image (float32 [0, 1]), the true bone mask and the lesion box (a dark
    ellipse inside the tube) or None.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    c = size / 2
    across = (xx - c) * np.cos(angle) - (yy - c) * np.sin(angle)
    along = (xx - c) * np.sin(angle) + (yy - c) * np.cos(angle)
    radius = 0.09 * size
    rr = np.clip(np.abs(across) / radius, 0, 1)
    bone = np.abs(across) < radius
    # chord lengths through a hollow cylinder: bright cortex, darker medulla
    density = np.sqrt(np.clip(1 - rr**2, 0, 1)) - 0.5 * np.sqrt(np.clip(0.36 - rr**2, 0, 1))
    image = 0.08 + 0.6 * density * bone
    if soft:
        image += 0.2 * np.sqrt(np.clip(1 - (across / (2.6 * radius)) ** 2, 0, 1))
    box = None
    if lesion:
        t = float(rng.uniform(-0.25, 0.25)) * size
        ax, ay = 0.6 * radius, 1.1 * radius
        inside = (across / ax) ** 2 + ((along - t) / ay) ** 2 < 1
        image = image - 0.25 * inside
        ys, xs = np.nonzero(inside)
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    if marker:
        image[4:10, size - 12:size - 5] = 0.95
    image = image + rng.normal(0, 0.03, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), bone, box


def _png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split manifest of tube radiographs: femur lesions and normals in train/val/test,
    lower_limb normals, tibia normals only, humerus outside train."""
    root = tmp_path_factory.mktemp("tubes")
    rng = np.random.default_rng(7)
    rows = []

    def add(image_id: str, bone: str, split: str, lesion: bool, angle: float) -> None:
        image, _, box = tube_image(SIZE, angle, rng, lesion=lesion)
        _png(root / "img" / f"{image_id}.png", image)
        rows.append({"image_id": image_id, "path": f"img/{image_id}.png", "bone": bone,
                     "label": int(lesion), "boxes": [box] if box else [], "split": split})

    for i in range(4):
        add(f"tr_les{i}", "femur", "train", True, 0.1 * i)
    for i in range(5):
        add(f"tr_nor{i}", "femur", "train", False, -0.1 * i)
    for i in range(2):
        add(f"tr_limb{i}", "lower_limb", "train", False, 0.2)
        add(f"tr_tib{i}", "tibia", "train", False, 0.0)
    for split in ("val", "test"):
        for i in range(2):
            add(f"{split}_les{i}", "femur", split, True, 0.0)
            add(f"{split}_nor{i}", "femur", split, False, 0.0)
    add("val_hum", "humerus", "val", True, 0.0)
    # a positive without boxes: counted in a warning, never cut
    rows.append({**rows[0], "image_id": "tr_nobox", "boxes": []})
    path = root / "manifest.csv"
    save_manifest(Manifest(new_table(rows), root), path)
    return path


@pytest.fixture(scope="module")
def extracted(dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("patches")
    report = extract_patches(load_manifest(dataset), "femur", 32, out, per_lesion=4,
                             healthy_per_image=5, seed=3)
    return report, out


def _manifest(path: Path) -> Manifest:
    return load_manifest(path)


# --------------------------------------------------------------------------- outputs


def test_domains_shapes_dtypes_ranges(extracted) -> None:
    report, out = extracted
    healthy, lesion, info = load_domains(out / "femur")
    assert lesion.patches.shape == (4 * 4, 32, 32)          # 4 lesions x per_lesion 4
    assert healthy.patches.shape == (report.n_healthy, 32, 32)
    assert report.n_healthy >= 20                           # 5 images x 5, few rejections
    for store in (healthy, lesion):
        assert store.patches.dtype == np.float32
        assert store.patches.min() >= 0.0 and store.patches.max() <= 1.0
        assert store.patches.std() > 0.01                   # not blank
        assert len(store.index) == len(store)
        assert (store.path / "sheet.png").is_file()
        assert np.load(store.path / "patches.npy").dtype == np.uint16
    assert info["counts"]["lesion"] == 16 and info["counts"]["healthy"] == report.n_healthy
    assert info["size"] == 32 and info["settings"]["seed"] == 3
    assert info["manifest"].endswith("manifest.csv")
    assert any("no lesion box" in w for w in report.warnings)


def test_lesion_patches_contain_their_lesion(extracted, dataset: Path) -> None:
    report, out = extracted
    lesion = load_patch_store(out / "femur" / "lesion")
    jitter = 0.15
    for k, row in lesion.index.iterrows():
        side = row.x1 - row.x0
        assert side == row.y1 - row.y0
        lx0, ly0, lx1, ly1 = row.lesion_x0, row.lesion_y0, row.lesion_x1, row.lesion_y1
        # the lesion box centre is near the crop centre, and the box lies inside the crop
        assert abs((lx0 + lx1) / 2 - (row.x0 + row.x1) / 2) <= jitter * side + 1
        assert abs((ly0 + ly1) / 2 - (row.y0 + row.y1) / 2) <= jitter * side + 1
        assert row.x0 <= lx0 + 1 and lx1 <= row.x1 + 1
        assert row.y0 <= ly0 + 1 and ly1 <= row.y1 + 1
        # the crop side follows the context rule within the scale jitter
        base = max(lx1 - lx0, ly1 - ly0) * 1.5
        assert base * (1 - jitter) - 1 <= side <= base * (1 + jitter) + 1
        # the stored crop box is where the pixels came from
        source = read_image(row.path)
        again = resize_square(crop_reflect(source, (row.x0, row.y0, row.x1, row.y1)), 32)
        np.testing.assert_allclose(lesion.patches[k], again, atol=1 / 65535 + 1e-6)


def test_no_val_test_or_positive_leaks_into_domains(extracted, dataset: Path) -> None:
    _, out = extracted
    healthy, lesion, _ = load_domains(out / "femur")
    table = _manifest(dataset).table
    train_normals = set(table[(table.split == "train") & (table.label == 0)
                              & (table.bone == "femur")].image_id)
    train_lesions = set(table[(table.split == "train") & (table.label == 1)].image_id)
    held_out = set(table[table.split != "train"].image_id)
    assert set(healthy.index.image_id) <= train_normals
    assert set(healthy.index.image_id) == train_normals     # every normal image contributes
    assert set(lesion.index.image_id) <= train_lesions - {"tr_nobox"}
    for store in (healthy, lesion):
        assert not set(store.index.image_id) & held_out
    assert (healthy.index.lesion_x0.astype(str) == "").all()


def test_healthy_and_lesion_crop_scales_match(extracted) -> None:
    _, out = extracted
    healthy, lesion, info = load_domains(out / "femur")
    h_med = float(np.median(healthy.index.side_rel))
    l_med = float(np.median(lesion.index.side_rel))
    assert abs(h_med - l_med) / l_med < 0.15
    # healthy sides are drawn from the lesion sides: same range
    assert healthy.index.side_rel.min() >= lesion.index.side_rel.min() - 0.02
    assert healthy.index.side_rel.max() <= lesion.index.side_rel.max() + 0.02
    assert (healthy.index.bone_fraction >= 0.3).all()
    assert info["crop_side_rel"]["lesion"]["median"] == pytest.approx(l_med)


def test_lesion_stats(extracted, dataset: Path) -> None:
    report, _ = extracted
    stats = json.loads(report.stats_path.read_text())
    table = _manifest(dataset).table
    train_boxes = [(r.image_id, b) for r in table.itertuples()
                   if r.split == "train" and r.bone == "femur" for b in r.boxes]
    assert stats["n_boxes"] == len(train_boxes) == 4
    for entry, (image_id, box) in zip(stats["boxes"], train_boxes, strict=True):
        assert entry["image_id"] == image_id and entry["box"] == box
        assert entry["width_rel"] == pytest.approx((box[2] - box[0]) / SIZE, abs=1e-5)
        assert entry["height_rel"] == pytest.approx((box[3] - box[1]) / SIZE, abs=1e-5)
        assert entry["region_source"] == "estimated" and entry["long_axis"] == "y"
        # the lesions sit in the middle half of a vertical tube, centred across it
        assert 0.2 < entry["along"] < 0.8
        assert abs(entry["across"] - 0.5) < 0.15
        assert (entry["image_height"], entry["image_width"]) == (SIZE, SIZE)


def test_negatives_from_adds_region_normals(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    plain = extract_patches(manifest, "femur", 16, tmp_path / "a", per_lesion=1,
                            healthy_per_image=1)
    wide = extract_patches(manifest, "femur", 16, tmp_path / "b", per_lesion=1,
                           healthy_per_image=1, negatives_from=("lower_limb",))
    ids_plain = set(load_patch_store(plain.healthy_dir).index.image_id)
    ids_wide = set(load_patch_store(wide.healthy_dir).index.image_id)
    assert not any(i.startswith("tr_limb") for i in ids_plain)
    assert {"tr_limb0", "tr_limb1"} <= ids_wide
    assert not any(i.startswith("tr_tib") for i in ids_wide)
    assert wide.n_healthy_images == plain.n_healthy_images + 2
    with pytest.raises(BoneaugError, match="negatives_from 'lowerlimb': no film has"):
        extract_patches(manifest, "femur", 16, tmp_path / "c", per_lesion=1,
                        healthy_per_image=1, negatives_from=("lowerlimb",))
    assert not (tmp_path / "c").exists()


def test_min_healthy_tops_up_and_raises(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    report = extract_patches(manifest, "femur", 16, tmp_path / "a", per_lesion=1,
                             healthy_per_image=1, min_healthy=12)
    assert report.n_healthy >= 12
    with pytest.raises(BoneaugError, match="min_healthy"):
        # few crops of a thin tube are 75% bone: some are made, fewer than asked
        extract_patches(manifest, "femur", 16, tmp_path / "b", per_lesion=1,
                        healthy_per_image=1, min_healthy=12, min_bone_fraction=0.75)


def test_bone_mask_column_is_used(tmp_path: Path) -> None:
    """With a bone_mask_path, healthy crops overlap that mask (here: a disc, not the tube)."""
    rng = np.random.default_rng(0)
    rows = []
    disc = np.hypot(*np.mgrid[0:SIZE, 0:SIZE] - 30.0) < 18     # centred at (30, 30)
    for i in range(3):
        image, _, box = tube_image(SIZE, 0.0, rng, lesion=i == 0)
        _png(tmp_path / f"im{i}.png", image)
        _png(tmp_path / f"m{i}.png", disc.astype(np.float32))
        rows.append({"image_id": f"im{i}", "path": f"im{i}.png", "bone": "femur",
                     "label": int(box is not None), "boxes": [box] if box else [],
                     "split": "train", "bone_mask_path": f"m{i}.png"})
    save_manifest(Manifest(new_table(rows), tmp_path), tmp_path / "m.csv")
    report = extract_patches(_manifest(tmp_path / "m.csv"), "femur", 16, tmp_path / "out",
                             per_lesion=2, healthy_per_image=4)
    healthy = load_patch_store(report.healthy_dir)
    for row in healthy.index.itertuples():
        window = disc[max(row.y0, 0):row.y1, max(row.x0, 0):row.x1]
        assert window.sum() / (row.x1 - row.x0) ** 2 >= 0.3
        assert row.bone_fraction == pytest.approx(window.mean(), abs=1e-3)
    stats = json.loads(report.stats_path.read_text())
    assert stats["boxes"][0]["region_source"] == "mask"
    assert stats["boxes"][0]["region_bbox"] == [13, 13, 48, 48]  # the disc's pixel extent


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_patches(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    kwargs = {"per_lesion": 2, "healthy_per_image": 2}
    a = extract_patches(manifest, "femur", 16, tmp_path / "a", seed=5, **kwargs)
    b = extract_patches(manifest, "femur", 16, tmp_path / "b", seed=5, **kwargs)
    c = extract_patches(manifest, "femur", 16, tmp_path / "c", seed=6, **kwargs)
    for kind in ("healthy", "lesion"):
        pa = (a.bone_dir / kind / "patches.npy").read_bytes()
        assert pa == (b.bone_dir / kind / "patches.npy").read_bytes()
        assert pa != (c.bone_dir / kind / "patches.npy").read_bytes()
        assert ((a.bone_dir / kind / "index.csv").read_text()
                == (b.bone_dir / kind / "index.csv").read_text())
    assert a.stats_path.read_text() == b.stats_path.read_text()


def test_out_is_a_folder_of_its_own(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    kwargs = {"per_lesion": 2, "healthy_per_image": 2}
    (tmp_path / "file").write_text("mine")
    with pytest.raises(BoneaugError, match="exists and is not a folder"):
        extract_patches(manifest, "femur", 16, tmp_path / "file", **kwargs)
    theirs = tmp_path / "theirs" / "femur"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(BoneaugError, match="holds 'notes.txt'"):
        extract_patches(manifest, "femur", 16, tmp_path / "theirs", **kwargs)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    # an earlier run is ours to replace
    first = extract_patches(manifest, "femur", 16, tmp_path / "ours", **kwargs)
    extract_patches(manifest, "femur", 16, tmp_path / "ours", seed=1, **kwargs)
    assert first.bone_dir.is_dir()


# --------------------------------------------------------------------------- stores


def test_store_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    patches = rng.random((5, 12, 12)).astype(np.float32)
    index = pd.DataFrame({"image_id": [f"i{k}" for k in range(5)], "x0": range(5)})
    write_patch_store(tmp_path / "s", patches, index)
    store = load_patch_store(tmp_path / "s")
    assert store.patches.dtype == np.float32 and store.patches.shape == (5, 12, 12)
    np.testing.assert_allclose(store.patches, patches, atol=0.5 / 65535 + 1e-7)
    pd.testing.assert_frame_equal(store.index, index)
    assert len(store) == 5 and store.size == 12
    sheet = np.asarray(Image.open(tmp_path / "s" / "sheet.png"))
    assert sheet.ndim == 2 and sheet.shape[1] > 5 * 12


def test_empty_and_missing_store_errors(tmp_path: Path) -> None:
    write_patch_store(tmp_path / "e", np.zeros((0, 8, 8), np.float32),
                      pd.DataFrame({"image_id": []}))
    with pytest.raises(BoneaugError, match="empty patch store") as err:
        load_patch_store(tmp_path / "e")
    assert "\n" not in str(err.value) and str(tmp_path / "e") in str(err.value)
    with pytest.raises(BoneaugError, match="no such patch store"):
        load_patch_store(tmp_path / "nothing")
    with pytest.raises(BoneaugError, match="patches.json"):
        load_domains(tmp_path)


# --------------------------------------------------------------------------- bad input


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def test_manifest_without_split(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    manifest.table["split"] = ""
    with pytest.raises(BoneaugError, match="boneaug split") as err:
        extract_patches(manifest, "femur", 16, tmp_path)
    _one_line(err)


def test_patch_larger_than_the_films_is_refused(dataset: Path, tmp_path: Path) -> None:
    """A patch larger than every lesion film would be blown up from less than itself."""
    with pytest.raises(BoneaugError, match=f"patch size {SIZE + 1} px is larger than every "
                       f"femur lesion film .the largest is {SIZE} px") as err:
        extract_patches(_manifest(dataset), "femur", SIZE + 1, tmp_path / "out")
    _one_line(err)
    assert not (tmp_path / "out" / "femur").exists()
    assert extract_patches(_manifest(dataset), "femur", SIZE, tmp_path / "ok",
                           per_lesion=1, healthy_per_image=1).n_lesion > 0


def test_bone_not_in_train_lists_bones(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BoneaugError) as err:
        extract_patches(_manifest(dataset), "humerus", 16, tmp_path)  # only in val
    message = _one_line(err)
    assert "humerus" in message and "femur, lower_limb, tibia" in message
    assert not (tmp_path / "humerus").exists()


def test_bone_without_lesion_boxes(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BoneaugError, match="no lesion box for 'tibia'") as err:
        extract_patches(_manifest(dataset), "tibia", 16, tmp_path)
    _one_line(err)


def test_bone_without_normals(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(dataset)
    table = manifest.table
    manifest.table = table[~((table.label == 0) & (table.bone == "femur"))].reset_index(drop=True)
    with pytest.raises(BoneaugError, match="no normal .* run `boneaug bones`") as err:
        extract_patches(manifest, "femur", 16, tmp_path)
    _one_line(err)


# --------------------------------------------------------------------------- bone region


def test_region_covers_synthetic_tubes() -> None:
    """Measured: Dice 0.90-1.00, recall 0.82-1.00 over these cases (64-128 px)."""
    rng = np.random.default_rng(1)
    for size in (64, 128):
        for angle in (0.0, 0.4, 1.3):
            for soft in (False, True):
                image, bone, _ = tube_image(size, angle, rng, soft=soft, lesion=True)
                scores = overlap_scores(estimate_bone_region(image), bone)
                assert scores["dice"] > 0.85, (size, angle, soft, scores)
                assert scores["recall"] > 0.75, (size, angle, soft, scores)


def test_region_ignores_collimation_band_and_marker() -> None:
    rng = np.random.default_rng(2)
    image, bone, _ = tube_image(96, 0.2, rng, soft=True, marker=True)
    image[:, 82:] = 0.9      # bright unexposed band outside a collimator
    image[:10, :] = 0.9
    region = estimate_bone_region(image)
    assert not region[:, 86:].any() and not region[:6].any()
    assert not region[4:10, 84:91].any()
    assert overlap_scores(region, bone)["dice"] > 0.85


def test_region_covers_phantom_bones() -> None:
    """Coverage of the true bone mask of phantom radiographs (see docs/patches.md)."""
    from boneaug.data import phantom

    rng = np.random.default_rng(0)
    try:
        phantom.render_radiograph("femur", False, 64, 0.5, rng)
    except NotImplementedError:
        pytest.skip("phantom renderer not implemented yet")
    recalls, dices = [], []
    for bone in phantom.PHANTOM_BONES:
        for k in range(3):
            shot = phantom.render_radiograph(bone, k == 0, 128, 0.5, rng)
            scores = overlap_scores(estimate_bone_region(shot.image), shot.bone_mask)
            recalls.append(scores["recall"])
            dices.append(scores["dice"])
    assert min(recalls) > 0.95 and np.median(recalls) > 0.98
    assert np.median(dices) > 0.8


def test_phantom_end_to_end_uses_bone_masks(tmp_path: Path) -> None:
    """On a phantom data set (which writes bone_mask_path) the masks are used."""
    from boneaug.data import phantom

    try:
        manifest_path = phantom.make_phantom(tmp_path / "ph", phantom.PhantomConfig(
            bones=("femur",), normal=3, lesion=2, size=96, seed=0))
    except NotImplementedError:
        pytest.skip("phantom renderer not implemented yet")
    manifest = load_manifest(manifest_path)
    manifest.table["split"] = "train"
    report = extract_patches(manifest, "femur", 16, tmp_path / "out", per_lesion=2,
                             healthy_per_image=2)
    stats = json.loads(report.stats_path.read_text())
    assert {b["region_source"] for b in stats["boxes"]} == {"mask"}
    healthy = load_patch_store(report.healthy_dir)
    for row in healthy.index.itertuples():
        mask = read_image(tmp_path / "ph" / "masks" / f"{row.image_id}_bone.png") > 0.5
        window = mask[max(row.y0, 0):row.y1, max(row.x0, 0):row.x1]
        assert window.sum() / (row.x1 - row.x0) ** 2 >= 0.3
