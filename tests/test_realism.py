"""The realism measure: KID by hand, and its ordering of known degradations."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from boneaug.errors import BoneaugError
from boneaug.gan.masks import box_mask
from boneaug.synth.realism import Distance, RealismConfig, RealismJudge, kid
from conftest import smooth_patches

P = 32


def test_kid_matches_a_hand_computed_case() -> None:
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    # k(a, b) = (a.b / 2 + 1)^3; off-diagonal means and the cross mean, by hand:
    kxx = 1.0  # (0 / 2 + 1)^3, the one off-diagonal pair of x
    kyy = (2 * (1 ** 3) + 2 * (2 ** 3) + 2 * (1 ** 3)) / 6  # pairs (y0,y1) (y0,y2) (y1,y2)
    kxy = ((1.5 ** 3) + 1 + (2 ** 3) + (1.5 ** 3) + 1 + 1) / 6
    assert kid(x, y) == pytest.approx(kxx + kyy - 2 * kxy)
    same = np.random.default_rng(0).normal(size=(400, 4))
    other = np.random.default_rng(1).normal(size=(400, 4))
    assert abs(kid(same, other)) < 0.05 < kid(same, other + 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)


def _lesions(n: int, seed: int) -> np.ndarray:
    """Bone-like texture, each with a dark ellipse of its own size and place."""
    rng = np.random.default_rng(seed)
    out = smooth_patches(n, seed, P)
    for i in range(n):
        w, h = rng.uniform(7, 14, 2)
        cx, cy = rng.uniform(11, 21, 2)
        out[i] -= 0.2 * box_mask((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), P)
    return np.clip(out, 0, 1)


@pytest.fixture(scope="module")
def judge() -> RealismJudge:
    reference = _lesions(48, 1)
    return RealismJudge(smooth_patches(200, 0, P), _lesions(24, 2), reference,
                        [f"lesion{i}" for i in range(len(reference))],
                        RealismConfig(steps=200, seeds=1, resamples=100))


def test_it_ranks_known_degradations_in_order(judge: RealismJudge) -> None:
    real = _lesions(48, 3)  # unseen lesions of the same kind
    floor = judge.floor()
    d = {name: judge.distance(patches) for name, patches in {
        "real": real,
        "blur 1": np.stack([gaussian_filter(p, 1.0) for p in real]),
        "blur 2": np.stack([gaussian_filter(p, 2.0) for p in real]),
        "noise 0.05": np.clip(real + np.random.default_rng(4).normal(0, 0.05, real.shape), 0, 1),
        "noise 0.1": np.clip(real + np.random.default_rng(4).normal(0, 0.1, real.shape), 0, 1),
        "shift 0.05": np.clip(real + 0.05, 0, 1),
        "shift 0.1": np.clip(real + 0.1, 0, 1),
        "healthy": smooth_patches(48, 5, P),
    }.items()}
    assert isinstance(floor, Distance) and floor.lo <= floor.value <= floor.hi
    assert d["real"].ratio(floor) < 2.0            # unseen real lesions: near the floor
    assert d["real"].value < d["blur 1"].value < d["blur 2"].value
    assert d["real"].value < d["noise 0.05"].value < d["noise 0.1"].value
    assert d["real"].value < d["shift 0.05"].value < d["shift 0.1"].value
    assert d["healthy"].value > 3 * d["real"].value  # no lesion at all: far
    assert d["healthy"].lo > d["real"].hi
    assert all(v.n == 48 for v in d.values())


def test_too_few_reference_lesions_is_one_line() -> None:
    with pytest.raises(BoneaugError, match="at least 8 held-out real lesions"):
        RealismJudge(smooth_patches(20, 0, P), _lesions(4, 2), _lesions(6, 1),
                     [f"l{i}" for i in range(6)])


def test_synthesize_measures_the_realism_of_its_lesions(tmp_path, monkeypatch, capsys) -> None:
    """`boneaug synthesize --realism PATCHES/<bone>`: copy-paste lesions judged against the
    manifest's val lesions; the document has the floor and every set, ratios to it."""
    from boneaug.cli import main as cli_main
    from boneaug.data import load_manifest, save_manifest
    from boneaug.data.phantom import PhantomConfig, make_phantom
    from boneaug.data.splits import split_manifest
    from boneaug.patches import extract_patches

    films = load_manifest(make_phantom(tmp_path / "films", PhantomConfig(
        bones=("femur",), normal=16, lesion=40, size=96, difficulty=0.0, seed=2)))
    manifest = save_manifest(split_manifest(films, val=0.25, test=0.25, seed=0).manifest,
                             tmp_path / "m.csv")
    patches = extract_patches(load_manifest(manifest), "femur", 24, tmp_path / "patches",
                              per_lesion=2, healthy_per_image=2, progress=False)
    out = tmp_path / "syn"
    monkeypatch.setattr(sys, "argv", [
        "boneaug", "synthesize", "--copy-paste", str(patches.bone_dir), "--manifest",
        str(manifest), "--bone", "femur", "--count", "12", "--out", str(out),
        "--realism", str(patches.bone_dir)])
    with pytest.raises(SystemExit) as exit_info:
        cli_main()  # what `python -m boneaug` runs
    assert exit_info.value.code == 0
    doc = json.loads((out / "realism.json").read_text())
    assert doc["bone"] == "femur" and doc["reference_lesions"] >= 8
    assert [s["name"] for s in doc["sets"]] == ["healthy patches", "train lesion patches",
                                                "syn"]
    assert doc["floor"]["ratio"] == pytest.approx(1.0)
    for entry in doc["sets"]:
        assert entry["lo"] <= entry["kid"] <= entry["hi"]
        assert entry["ratio"] == pytest.approx(entry["kid"] / doc["floor"]["kid"])
    assert doc["sets"][2]["n"] == 12
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(
        "realism femur (KID x 1000, floor ")


def test_too_few_held_out_lesions_is_a_note_not_a_failure(tmp_path) -> None:
    from boneaug.synth.realism import format_realism, measure_sets
    from conftest import tiny_femur_world

    manifest, bone_dir, _ = tiny_femur_world(tmp_path)
    doc = measure_sets(manifest, "femur", bone_dir, [])
    assert doc["sets"] == [] and "at least 8 held-out real lesions" in doc["problem"]
    assert format_realism(doc).startswith("realism femur: not measured (")


def test_the_features_do_not_depend_on_what_the_process_drew_before() -> None:
    import torch

    reference = _lesions(16, 1)
    args = (smooth_patches(40, 0, P), _lesions(8, 2), reference,
            [f"l{i}" for i in range(16)], RealismConfig(steps=20, seeds=1, resamples=10))
    torch.manual_seed(1)
    first = RealismJudge(*args).floor()
    torch.manual_seed(2)
    torch.rand(5)
    assert RealismJudge(*args).floor() == first


def test_another_bones_patch_folder_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    from boneaug.cli import main as cli_main
    from conftest import tiny_femur_world

    manifest, bone_dir, generator = tiny_femur_world(tmp_path)
    monkeypatch.setattr(sys, "argv", [
        "boneaug", "synthesize", "--generator", str(generator), "--manifest",
        str(tmp_path / "m.csv"), "--bone", "tibia", "--count", "2", "--out",
        str(tmp_path / "syn"), "--realism", str(bone_dir)])
    with pytest.raises(SystemExit) as exit_info:
        cli_main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "needs the patch folder of tibia" in lines[0]
    assert not (tmp_path / "syn").exists()
