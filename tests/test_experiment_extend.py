"""Extending a finished experiment: each stage is redone only when its own inputs changed
(`boneaug.experiment.protocol.Stages`, stage keys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boneaug.data import Manifest, load_manifest, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.errors import BoneaugError
from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment

TINY = {
    "data.bones": ["femur"], "data.normal": 16, "data.lesion": 12, "data.size": 96,
    "data.prevalence": 0.2,
    "patches.size": 24, "patches.per_lesion": 2, "patches.healthy_per_image": 2,
    "gan.n_blocks": 1, "gan.ngf": 4, "gan.ndf": 4, "gan.iterations": 2,
    "gan.sample_every": 2, "gan.checkpoint_every": 2, "gan.device": "cpu",
    "classifier.size": 32, "classifier.width": 4, "classifier.epochs": 1,
    "classifier.steps_per_epoch": 2, "classifier.device": "cpu",
    "protocol.seeds": 1, "protocol.n_boot": 20,
    "protocol.strategies": ["baseline", "gan"], "protocol.ratios": [1],
    "protocol.main_ratio": 1, "protocol.sweep": ["gan"], "protocol.levels": ["image"],
}


def run(folder: Path, **changes) -> list[str]:
    lines: list[str] = []
    config = load_experiment_config(demo_config_path(), {**TINY, **changes})
    run_experiment(config, folder, say=lines.append, progress=False, report=False)
    return lines


def stamps(folder: Path) -> dict[str, int]:
    """When each stage marker was written."""
    return {p.name: p.stat().st_mtime_ns for p in (folder / "stages").glob("*.json")}


def redone(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name, t in after.items() if before.get(name) != t}


def test_extending_a_run_redoes_only_what_changed(tmp_path: Path, one_thread) -> None:
    folder = tmp_path / "run"
    first = run(folder)
    assert any("CycleGAN femur" in line for line in first)
    start = stamps(folder)
    assert {"data.json", "patches_femur.json", "gan_femur.json", "synth_gan_femur.json",
            "cls_femur_baseline_s0.json", "cls_femur_gan-r1_s0.json"} <= set(start)

    # a new strategy: only its classifier (copy-paste also needs its synthesis)
    more = run(folder, **{"protocol.strategies": ["baseline", "gan", "weighted", "copypaste"]})
    after = stamps(folder)
    assert redone(start, after) == {"cls_femur_weighted_s0.json",
                                    "synth_copypaste_femur.json",
                                    "cls_femur_copypaste-r1_s0.json"}
    assert any("config changed" in line for line in more)
    assert not any("redoing" in line for line in more)

    # another classifier setting: every classifier again, the GAN and synthesis kept
    before = after
    run(folder, **{"protocol.strategies": ["baseline", "gan", "weighted", "copypaste"],
                   "classifier.lr": 0.002})
    after = stamps(folder)
    assert redone(before, after) == {n for n in after if n.startswith("cls_")}

    # another GAN setting: the GAN, its synthesis and the classifiers that read it; the
    # baseline, copy-paste and weighted classifiers stay
    before = after
    lines = run(folder, **{"protocol.strategies": ["baseline", "gan", "weighted", "copypaste"],
                           "classifier.lr": 0.002, "gan.iterations": 3})
    after = stamps(folder)
    assert redone(before, after) == {"gan_femur.json", "synth_gan_femur.json",
                                     "cls_femur_gan-r1_s0.json"}
    assert any("gan:femur: its inputs changed" in line for line in lines)
    gan = json.loads((folder / "stages" / "gan_femur.json").read_text())
    assert gan["iterations"] == 3

    # the same config again: nothing at all
    before = after
    run(folder, **{"protocol.strategies": ["baseline", "gan", "weighted", "copypaste"],
                   "classifier.lr": 0.002, "gan.iterations": 3})
    assert redone(before, stamps(folder)) == set()


def test_adding_a_bone_keeps_the_other_bones_stages(tmp_path: Path, one_thread) -> None:
    folder = tmp_path / "run"
    run(folder, **{"protocol.strategies": ["baseline", "copypaste"]})
    start = stamps(folder)
    run(folder, **{"protocol.strategies": ["baseline", "copypaste"],
                   "data.bones": ["femur", "tibia"]})
    changed = redone(start, stamps(folder))
    assert "data.json" in changed                       # the data were made again ...
    assert not {n for n in changed if "femur" in n}     # ... but femur's rows are the same
    assert {"patches_tibia.json", "cls_tibia_baseline_s0.json"} <= changed


def test_fresh_never_deletes_its_own_input(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    run(folder, **{"protocol.strategies": ["baseline"]})
    inside = folder / "data" / "manifest.csv"
    config = load_experiment_config(demo_config_path(), {
        **TINY, "protocol.strategies": ["baseline"], "data.source": "manifest",
        "data.manifest": str(inside)})
    with pytest.raises(BoneaugError, match="own input"):
        run_experiment(config, folder, say=lambda _: None, fresh=True, report=False)
    assert inside.is_file()
    # a manifest outside the run folder whose images lie inside it
    outside = save_manifest(load_manifest(inside), tmp_path / "outside.csv")
    images = load_manifest(outside).files()[1:]
    assert all(folder.resolve() in p.resolve().parents for p in images)
    config = load_experiment_config(demo_config_path(), {
        **TINY, "protocol.strategies": ["baseline"], "data.source": "manifest",
        "data.manifest": str(outside)})
    with pytest.raises(BoneaugError, match="own input .*png"):
        run_experiment(config, folder, say=lambda _: None, fresh=True, report=False)
    assert all(p.is_file() for p in images)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"data.bones": ["femr"]}, "unknown bone 'femr'"),
    ({"data.size": 10}, "--size 10 must be within"),
    ({"patches.size": 30}, "patches.size 30: the CycleGAN needs"),
    ({"patches.size": 128}, "patches.size 128 is larger than the phantom's films"),
    ({"data.source": "manifest", "data.manifest": "nowhere/manifest.csv"},
     "no such manifest file"),
])
def test_a_bad_config_is_refused_before_the_run_folder_is_made(tmp_path: Path, changes,
                                                                expected) -> None:
    folder = tmp_path / "run"
    with pytest.raises(BoneaugError, match=expected):
        run(folder, **changes)
    assert not folder.exists()


def user_films(tmp_path: Path, normal: int, lesion: int, size: int) -> Manifest:
    """A user's manifest of phantom femur films, unsplit."""
    return load_manifest(make_phantom(tmp_path / "films", PhantomConfig(
        bones=("femur",), normal=normal, lesion=lesion, size=size, seed=1)))


def test_a_manifest_with_a_box_off_its_film_is_refused_up_front(tmp_path: Path) -> None:
    manifest = user_films(tmp_path, 8, 4, 64)
    table = manifest.table.copy()
    first = table.index[table["label"] == 1][0]
    table.at[first, "boxes"] = [[50.0, 50.0, 90.0, 90.0]]
    save_manifest(Manifest(table, manifest.root), tmp_path / "bad.csv")
    folder = tmp_path / "run"
    with pytest.raises(BoneaugError, match="is outside the 64x64 image"):
        run(folder, **{"data.source": "manifest", "data.manifest": str(tmp_path / "bad.csv")})
    assert not folder.exists()


def test_patches_larger_than_the_users_films_are_refused_up_front(tmp_path: Path) -> None:
    save_manifest(user_films(tmp_path, 8, 4, 64), tmp_path / "films.csv")
    folder = tmp_path / "run"
    with pytest.raises(BoneaugError, match="patch size 96 px is larger than every femur "
                       "lesion film"):
        run(folder, **{"data.source": "manifest", "data.manifest": str(tmp_path / "films.csv"),
                       "patches.size": 96})
    assert not folder.exists()


def test_a_split_without_lesions_is_found_before_anything_is_trained(tmp_path: Path) -> None:
    manifest = user_films(tmp_path, 16, 12, 96)
    table = manifest.table.copy()
    lesion = table["label"] == 1
    table["split"] = "train"  # the user's own split: val holds normal films only
    table.loc[table.index[~lesion][:4], "split"] = "val"
    table.loc[table.index[lesion][:3].tolist() + table.index[~lesion][4:8].tolist(),
              "split"] = "test"
    save_manifest(Manifest(table, manifest.root), tmp_path / "split.csv")
    folder = tmp_path / "run"
    with pytest.raises(BoneaugError, match="in the val split; every classifier needs both"):
        run(folder, **{"data.source": "manifest", "data.manifest": str(tmp_path / "split.csv")})
    assert not (folder / "patches").exists() and not (folder / "gan").exists()
