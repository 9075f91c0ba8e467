"""Synthesis invariants: lesion box on bone, sources untouched, provenance complete,
no synthetic row outside train, determinism, DICOM in -> DICOM out, one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from boneaug.data import load_manifest, read_image
from boneaug.data.imageio import is_marked_synthetic
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError
from boneaug.gan import ResnetGenerator
from boneaug.gan.checkpoint import save_generator
from boneaug.patches import extract_patches
from boneaug.synth import synthesize
from conftest import free_port

PATCH = 32


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A split phantom set, the femur's patches and a tiny (untrained) femur generator."""
    root = tmp_path_factory.mktemp("synth")
    manifest_path = make_phantom(root / "phantom", PhantomConfig(
        bones=("femur", "tibia"), normal=10, lesion=5, size=96, seed=2))
    split = split_manifest(load_manifest(manifest_path), val=0.2, test=0.2, seed=0).manifest
    from boneaug.data import save_manifest
    save_manifest(split, root / "manifest.csv")
    split = load_manifest(root / "manifest.csv")
    report = extract_patches(split, "femur", PATCH, root / "patches", per_lesion=2,
                             progress=False)
    stats = json.loads(report.stats_path.read_text())
    torch.manual_seed(0)
    generator = ResnetGenerator(n_blocks=1, ngf=4)
    with torch.no_grad():  # make it change its input visibly, like a lesion generator would
        generator.model[-2].bias.fill_(-0.5)
    ckpt = root / "generator_healthy_to_lesion.pt"
    save_generator(generator, ckpt, PATCH, extra={
        "bone": "femur", "lesion_stats": stats, "patches": {"context": 0.5}})
    return root, split, ckpt


def digests(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_synthesis_invariants(world, tmp_path):
    root, split, ckpt = world
    sources = [split.image_path(i) for i in split.table.index]
    before = digests(sources)
    report = synthesize(ckpt, split, "femur", tmp_path / "syn", count=7, seed=5,
                        batch_size=3, progress=False)
    assert digests(sources) == before  # sources never modified
    assert report.images == 7 and report.target_bone == report.generator_bone == "femur"

    syn = load_manifest(report.synthetic_manifest)
    assert len(syn) == 7
    assert set(syn.table["origin"]) == {"synthetic"} and set(syn.table["split"]) == {"train"}
    assert set(syn.table["label"]) == {1}
    train_normals = split.table[(split.table["split"] == "train") & (split.table["label"] == 0)
                                & (split.table["bone"] == "femur")]
    by_id = train_normals.set_index("image_id")
    for _, row in syn.table.iterrows():
        prov = json.loads(row["provenance"])
        for key in ("generator", "generator_sha256", "generator_bone", "target_bone",
                    "source_image_id", "lesion_box", "crop_box", "seed", "index",
                    "bone_share_in_box"):
            assert key in prov, key
        assert prov["source_image_id"] in by_id.index  # a normal train image of the bone
        source = by_id.loc[prov["source_image_id"]]
        assert row["patient_id"] == source["patient_id"]
        # the lesion box lies on the source's bone
        bone_mask = read_image(split.resolve(source["bone_mask_path"])) > 0.5
        x0, y0, x1, y1 = row["boxes"][0]
        assert bone_mask[int(y0):int(y1), int(x0):int(x1)].mean() >= 0.6
        assert bone_mask[int((y0 + y1) // 2), int((x0 + x1) // 2)]
        cx0, cy0, cx1, cy1 = prov["crop_box"]
        assert cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1
        # the image changed around the lesion only: inside the crop, and within 1.5x the
        # lesion box's half-axes (the blend mask's margin)
        before_img = read_image(split.resolve(source["path"]))
        after_img = read_image(syn.image_path(_))
        diff = np.abs(after_img - before_img) > 1e-3
        assert diff.any()
        outside = np.ones_like(diff)
        outside[int(cy0):int(cy1), int(cx0):int(cx1)] = False
        assert not diff[outside].any()
        ys, xs = np.nonzero(diff)
        r = np.hypot((ys + 0.5 - (y0 + y1) / 2) / ((y1 - y0) / 2),
                     (xs + 0.5 - (x0 + x1) / 2) / ((x1 - x0) / 2))
        assert r.max() <= 1.5 + 1e-6
        # the painted lesion's mask: the film's size, inside the crop, only where the film
        # changed, and touching the lesion box
        assert prov["mask"] in ("change", "box")
        painted = read_image(syn.resolve(row["mask_path"])) > 0
        assert painted.shape == before_img.shape and painted.any()
        assert not painted[outside].any()
        if prov["mask"] == "change":
            assert (diff | ~painted).all()
        assert painted[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].any()
        # recorded for every image (the crude test generator darkens its whole patch, so
        # the value itself is judged in test_blend.py and on trained generators)
        assert np.isfinite(float(row["seam_ratio"])) and float(row["seam_ratio"]) > 0

    augmented = load_manifest(report.augmented_manifest)  # valid: invariants hold
    assert len(augmented) == len(split) + 7
    assert augmented.table[augmented.table["origin"] == "synthetic"]["split"].eq("train").all()
    assert (tmp_path / "syn" / "sheet.png").is_file()
    assert json.loads((tmp_path / "syn" / "run.json").read_text())["command"] == "synthesize"


def test_deterministic_per_seed_and_independent_of_batch(world, tmp_path):
    root, split, ckpt = world
    a = synthesize(ckpt, split, "femur", tmp_path / "a", count=4, seed=1, batch_size=4,
                   progress=False)
    b = synthesize(ckpt, split, "femur", tmp_path / "b", count=4, seed=1, batch_size=1,
                   progress=False)
    c = synthesize(ckpt, split, "femur", tmp_path / "c", count=4, seed=2, progress=False)
    ta, tb, tc = (load_manifest(r.synthetic_manifest).table for r in (a, b, c))
    assert ta["boxes"].tolist() == tb["boxes"].tolist()
    for i in range(4):
        assert np.allclose(read_image(tmp_path / "a" / ta.at[i, "path"]),
                           read_image(tmp_path / "b" / tb.at[i, "path"]), atol=2e-5)
    assert ta["boxes"].tolist() != tc["boxes"].tolist()


def test_transfer_records_both_bones_and_ratio(world, tmp_path):
    root, split, ckpt = world
    report = synthesize(ckpt, split, "tibia", tmp_path / "t", ratio=1.0, seed=0,
                        progress=False)
    positives = int(((split.table["split"] == "train") & (split.table["label"] == 1)
                     & (split.table["bone"] == "tibia")).sum())
    assert report.images == positives
    syn = load_manifest(report.synthetic_manifest).table
    assert set(syn["bone"]) == {"tibia"} and set(syn["generator_bone"]) == {"femur"}
    prov = json.loads(syn.at[0, "provenance"])
    assert prov["generator_bone"] == "femur" and prov["target_bone"] == "tibia"
    assert syn.at[0, "image_id"].startswith("syn-tibia-from-femur-s0-")


def test_dicom_source_gives_marked_dicom(world, tmp_path):
    from test_imageio import make_dicom

    root, split, ckpt = world
    table = split.table.copy()
    target = table.index[(table["split"] == "train") & (table["label"] == 0)
                         & (table["bone"] == "femur")][0]
    pixels = (read_image(split.image_path(target)) * 4095).astype(np.uint16)
    dicom = make_dicom(tmp_path / "src.dcm", pixels)
    before = dicom.read_bytes()
    table.loc[target, "path"] = str(dicom)
    only = table.loc[[target]].copy()
    only["bone_mask_path"] = [str(split.resolve(only.at[target, "bone_mask_path"]))]
    from boneaug.data import Manifest
    report = synthesize(ckpt, Manifest(only.reset_index(drop=True), split.root), "femur",
                        tmp_path / "d", count=2, progress=False)
    syn = load_manifest(report.synthetic_manifest)
    assert all(str(p).endswith(".dcm") for p in syn.table["path"])
    assert all(is_marked_synthetic(syn.image_path(i)) for i in syn.table.index)
    assert dicom.read_bytes() == before


def test_bad_inputs_are_one_line(world, tmp_path):
    root, split, ckpt = world
    with pytest.raises(BoneaugError, match="generator checkpoint not found"):
        synthesize(tmp_path / "none.pt", split, "femur", tmp_path / "x", count=1)
    with pytest.raises(BoneaugError, match="no normal train image of 'radius'"):
        synthesize(ckpt, split, "radius", tmp_path / "x", count=1)
    with pytest.raises(BoneaugError, match="negatives_from 'tibai': no film has"):
        synthesize(ckpt, split, "femur", tmp_path / "x", count=1, negatives_from=("tibai",))
    with pytest.raises(BoneaugError, match="exactly one of --count and --ratio"):
        synthesize(ckpt, split, "femur", tmp_path / "x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(BoneaugError, match="not empty"):
        synthesize(ckpt, split, "femur", tmp_path / "mine", count=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    assert not (tmp_path / "x").exists()


def test_an_earlier_run_that_is_the_input_is_not_replaced(world, tmp_path):
    """--out at the synthesis run whose augmented.csv is the input: refused, nothing lost."""
    _, split, ckpt = world
    first = synthesize(ckpt, split, "femur", tmp_path / "s1", count=2, seed=1, progress=False)
    augmented = load_manifest(first.augmented_manifest)
    files = [p for p in augmented.files() if p.is_file()]
    before = digests(files)
    with pytest.raises(BoneaugError, match="holds the input"):
        synthesize(ckpt, augmented, "femur", tmp_path / "s1", count=2, seed=2, progress=False)
    assert digests(files) == before
    assert not list(tmp_path.glob(".*partial"))


def test_two_processes_give_the_same_images_as_one(world, tmp_path):
    """torchrun with 2 CPU processes (gloo) shares the sources out; the result is unchanged."""
    import subprocess
    import sys

    port = free_port()
    root, split, ckpt = world
    args = ["synthesize", "--generator", str(ckpt), "--manifest", str(root / "manifest.csv"),
            "--bone", "femur", "--count", "6", "--seed", "3", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "boneaug", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(port), "-m", "boneaug", *args, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    a = load_manifest(tmp_path / "one" / "synthetic.csv").table
    b = load_manifest(tmp_path / "two" / "synthetic.csv").table
    assert a["image_id"].tolist() == b["image_id"].tolist()
    assert a["boxes"].tolist() == b["boxes"].tolist()
    for path in a["path"]:
        assert np.array_equal(read_image(tmp_path / "one" / path),
                              read_image(tmp_path / "two" / path))


def test_adding_more_with_the_same_seed_is_refused_before_painting(world, tmp_path):
    root, split, ckpt = world
    first = synthesize(ckpt, split, "femur", tmp_path / "a", count=2, seed=4, progress=False)
    augmented = load_manifest(first.augmented_manifest)
    with pytest.raises(BoneaugError, match="already has synthetic image syn-femur-s4-00000"):
        synthesize(ckpt, augmented, "femur", tmp_path / "b", count=2, seed=4, progress=False)
    assert not (tmp_path / "b").exists()
    more = synthesize(ckpt, augmented, "femur", tmp_path / "c", count=2, seed=5,
                      progress=False)
    assert len(load_manifest(more.augmented_manifest)) == len(augmented) + 2


def test_bad_lesion_statistics_are_one_line(world, tmp_path):
    root, split, ckpt = world
    bad = tmp_path / "stats.json"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(BoneaugError, match="not valid JSON"):
        synthesize(ckpt, split, "femur", tmp_path / "x", count=1, lesion_stats=bad)
    bad.write_text('{"boxes": [{"width_rel": NaN, "height_rel": 0.3}]}')
    with pytest.raises(BoneaugError, match="no lesion box with a size"):
        synthesize(ckpt, split, "femur", tmp_path / "x", count=1, lesion_stats=bad)
    # a size without a usable position falls back to a random bone pixel
    bad.write_text('{"boxes": [{"width_rel": 0.1, "height_rel": 0.2, "along": 0.5}]}')
    report = synthesize(ckpt, split, "femur", tmp_path / "y", count=1, lesion_stats=bad,
                        progress=False)
    prov = json.loads(load_manifest(report.synthetic_manifest).table.at[0, "provenance"])
    assert prov["site_fallback"] is True
