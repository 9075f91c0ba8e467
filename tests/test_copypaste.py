"""Copy-paste synthesis: real lesion patches pasted with the CycleGAN blending.

`RealLesionPaste` on hand-made patch stacks; `synthesize(translator=...)` and
`boneaug synthesize --copy-paste` on a tiny split phantom and its femur patches.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from boneaug.classify import load_inputs
from boneaug.cli import main as cli_main
from boneaug.data import Manifest, load_manifest, read_image, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.patches import bone_region, extract_patches, load_domains
from boneaug.synth import RealLesionPaste, copy_paste_translator, synthesize
from conftest import free_port

PATCH = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Manifest, Path]:
    """(folder, a split femur phantom saved as manifest.csv, its femur patch folder)."""
    root = tmp_path_factory.mktemp("copypaste")
    raw = make_phantom(root / "phantom", PhantomConfig(
        bones=("femur",), normal=10, lesion=6, size=96, seed=4))
    split = split_manifest(load_manifest(raw), val=0.2, test=0.2, seed=0).manifest
    save_manifest(split, root / "manifest.csv")
    split = load_manifest(root / "manifest.csv")
    report = extract_patches(split, "femur", PATCH, root / "patches", per_lesion=2,
                             progress=False)
    return root, split, report.bone_dir


# --------------------------------------------------------------------------- the module


def lesion_stack(n: int, size: int = 8) -> np.ndarray:
    """`n` patches in [0.3, 0.7], each with its own pattern and brightness."""
    rng = np.random.default_rng(11)
    return rng.uniform(0.3, 0.7, (n, size, size)).astype(np.float32)


def which(out: torch.Tensor, lesions: np.ndarray) -> list[int]:
    """The lesion each output patch is (compared with the brightness shift removed)."""
    centred = lesions * 2 - 1
    centred = centred - centred.mean(axis=(1, 2), keepdims=True)
    found = []
    for patch in out[:, 0].numpy():
        distance = np.abs(centred - (patch - patch.mean())).max(axis=(1, 2))
        assert distance.min() < 1e-5, "the output is not a pasted lesion"
        found.append(int(distance.argmin()))
    return found


def test_paste_is_the_lesion_at_the_input_brightness():
    lesions = lesion_stack(3)
    paste = RealLesionPaste(lesions, seed=0)
    healthy = torch.stack([torch.full((1, 8, 8), v) for v in (-0.3, 0.0, 0.25)])
    healthy[1, 0, 2:5, 2:5] = 0.3  # not flat: only the mean matters
    out = paste(healthy)
    assert out.shape == healthy.shape and out.dtype == healthy.dtype
    assert torch.allclose(out.mean(dim=(1, 2, 3)), healthy.mean(dim=(1, 2, 3)), atol=1e-6)
    picked = which(out, lesions)  # each output is one of the real lesions
    # the lesion's own contrast is kept: output minus its mean is the lesion minus its mean
    model = lesions[picked[0]] * 2 - 1
    assert np.allclose(out[0, 0].numpy() - out[0, 0].numpy().mean(), model - model.mean(),
                       atol=1e-6)
    # values are clamped to the model range
    bright = paste(torch.full((1, 1, 8, 8), 0.99))
    assert bright.max() <= 1.0 and bright.min() >= -1.0


def test_paste_choice_depends_on_patch_and_seed_only():
    lesions = lesion_stack(5)
    rng = np.random.default_rng(0)
    healthy = torch.from_numpy(rng.uniform(-1, 1, (200, 1, 8, 8)).astype(np.float32))

    def draws(seed: int, batch: int) -> list[int]:
        paste = RealLesionPaste(lesions, seed=seed)
        return [i for start in range(0, len(healthy), batch)
                for i in which(paste(healthy[start:start + batch]), lesions)]

    a = draws(0, 200)
    assert draws(0, 7) == a          # the batch size (and so the rank's share) changes nothing
    assert draws(0, 200) == a        # reproducible
    assert draws(1, 200) != a        # the seed matters
    counts = np.bincount(a, minlength=5)
    assert counts.min() >= 20        # every lesion is used, about evenly (40 expected)
    # the same patch gets the same lesion, wherever it is in a batch
    paste = RealLesionPaste(lesions, seed=0)
    assert which(paste(healthy[[3, 3, 3]]), lesions) == [a[3]] * 3
    with pytest.raises(ValueError):
        RealLesionPaste(np.zeros((0, 8, 8), np.float32))


def test_translator_info(world):
    _, _, bone_dir = world
    _, lesion, _ = load_domains(bone_dir)
    module, info = copy_paste_translator(bone_dir, seed=3)
    assert isinstance(module, RealLesionPaste)
    assert info["method"] == "copypaste" and info["bone"] == "femur"
    assert info["patch_size"] == PATCH
    assert info["sha256"] == hashlib.sha256(
        np.ascontiguousarray(lesion.patches).tobytes()).hexdigest()
    assert isinstance(info["lesion_stats"], dict) and info["lesion_stats"]
    assert len(module.lesions) == len(lesion)


# --------------------------------------------------------------------------- synthesize


def test_synthesize_with_copy_paste(world, tmp_path):
    root, split, bone_dir = world
    table = split.table
    report = synthesize(bone_dir, split, "femur", tmp_path / "cp", count=5, seed=0,
                        batch_size=2, device="cpu", progress=False,
                        translator=copy_paste_translator(bone_dir, seed=0))
    assert report.images == 5
    syn = load_manifest(report.synthetic_manifest)
    rows = syn.table
    assert all(i.startswith("cp-femur-s0-") for i in rows["image_id"])
    assert set(rows["origin"]) == {"synthetic"} and set(rows["split"]) == {"train"}
    by_id = table.set_index("image_id")
    for index, row in rows.iterrows():
        prov = json.loads(row["provenance"])
        assert prov["method"] == "copypaste"
        assert prov["generator_sha256"] == copy_paste_translator(bone_dir)[1]["sha256"]
        source = by_id.loc[prov["source_image_id"]]
        assert source["split"] == "train" and source["label"] == 0
        # the synthetic row's bone mask is its source's mask file
        mine = syn.resolve(row["bone_mask_path"]).resolve()
        assert mine == split.resolve(source["bone_mask_path"]).resolve() and mine.is_file()
        mask, how = bone_region(syn, row.to_dict(), read_image(syn.image_path(index)))
        assert how == "mask" and mask.any()
        # pixels changed, and only inside the crop box
        before = read_image(split.resolve(source["path"]))
        diff = np.abs(read_image(syn.image_path(index)) - before) > 1e-3
        cx0, cy0, cx1, cy1 = prov["crop_box"]
        assert diff.any()
        diff[cy0:cy1, cx0:cx1] = False
        assert not diff.any()
    # the augmented manifest resolves the same masks, so the classifier crops alike
    augmented = load_manifest(report.augmented_manifest)
    aug = augmented.table
    synthetic = aug[aug["origin"] == "synthetic"]
    assert len(synthetic) == 5
    for _, row in synthetic.iterrows():
        mine = augmented.resolve(row["bone_mask_path"]).resolve()
        same = syn.table.set_index("image_id").loc[row["image_id"], "bone_mask_path"]
        assert mine == syn.resolve(same).resolve()
    inputs = load_inputs(augmented, synthetic.index.tolist(), 32)
    assert inputs.shape == (5, 32, 32) and inputs.std() > 0
    assert json.loads((tmp_path / "cp" / "run.json").read_text())["command"] == "synthesize"


def test_copy_paste_is_deterministic_per_seed(world, tmp_path):
    _, split, bone_dir = world

    def run(name: str, seed: int, batch: int) -> list[np.ndarray]:
        report = synthesize(bone_dir, split, "femur", tmp_path / name, count=3, seed=seed,
                            batch_size=batch, device="cpu", progress=False,
                            translator=copy_paste_translator(bone_dir, seed=seed))
        syn = load_manifest(report.synthetic_manifest)
        return [read_image(syn.image_path(i)) for i in syn.table.index]

    a, b, c = run("a", 1, 3), run("b", 1, 1), run("c", 2, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


# --------------------------------------------------------------------------- CLI


def test_cli_synthesize_copy_paste(world, tmp_path):
    root, _, bone_dir = world
    done = subprocess.run(
        [sys.executable, "-m", "boneaug", "synthesize", "--copy-paste", str(bone_dir),
         "--manifest", str(root / "manifest.csv"), "--bone", "femur", "--count", "3",
         "--seed", "2", "--device", "cpu", "--out", str(tmp_path / "cli")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    syn = load_manifest(tmp_path / "cli" / "synthetic.csv")
    assert len(syn) == 3
    assert all(i.startswith("cp-femur-s2-") for i in syn.table["image_id"])
    assert {json.loads(p)["method"] for p in syn.table["provenance"]} == {"copypaste"}


@pytest.mark.parametrize("which_args", ["both", "neither"])
def test_cli_generator_and_copy_paste_is_one_error(world, tmp_path, which_args, monkeypatch,
                                                   capsys):
    root, _, bone_dir = world
    args = ["boneaug", "synthesize", "--manifest", str(root / "manifest.csv"), "--bone",
            "femur", "--count", "2", "--out", str(tmp_path / "x")]
    if which_args == "both":
        args += ["--generator", str(tmp_path / "g.pt"), "--copy-paste", str(bone_dir)]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        cli_main()  # what `python -m boneaug` runs
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == ["error: give exactly one of a generator (--generator) and a patch folder "
                     "to copy-paste from (--copy-paste)"]
    assert not (tmp_path / "x").exists()


def test_copy_paste_two_processes_give_the_same_images_as_one(world, tmp_path):
    port = free_port()
    root, split, bone_dir = world
    synthesize(bone_dir, split, "femur", tmp_path / "one", count=6, seed=3, device="cpu",
               progress=False, translator=copy_paste_translator(bone_dir, seed=3))
    args = ["synthesize", "--copy-paste", str(bone_dir), "--manifest",
            str(root / "manifest.csv"), "--bone", "femur", "--count", "6", "--seed", "3",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(port), "-m", "boneaug", *args, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=120,
                         env=env)
    assert two.returncode == 0, two.stderr
    a = load_manifest(tmp_path / "one" / "synthetic.csv").table
    b = load_manifest(tmp_path / "two" / "synthetic.csv").table
    assert a["image_id"].tolist() == b["image_id"].tolist()
    assert a["boxes"].tolist() == b["boxes"].tolist()  # the sites agree; the lesions do not
    for path in a["path"]:
        assert np.array_equal(read_image(tmp_path / "one" / path),
                              read_image(tmp_path / "two" / path))
