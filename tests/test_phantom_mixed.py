"""Mixed phantom films: kinds and bones, masks, lesions, age, centres, labels, confounding,
awkward films, determinism and the manifest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data.manifest import BONES, REGIONS, load_manifest
from boneaug.data.phantom import PhantomConfig, image_rng, make_phantom
from boneaug.data.phantom_films import FILM_KINDS, LESION_FILMS
from boneaug.data.phantom_mixed import render_film
from boneaug.data.phantom_mixedset import MASK_BONES, mixed_jobs, render_job
from boneaug.data.phantom_style import FilmSpec, sample_spec
from boneaug.errors import BoneaugError

# What each kind must show (written here, not read from the code under test).
EXPECTED_BONES = {
    "hip": {"femur", "pelvis"},
    "knee_tibia": {"tibia", "fibula", "femur", "patella"},
    "knee_femur": {"femur", "tibia", "fibula", "patella"},
    "ankle": {"tibia", "fibula", "foot"},
    "shoulder": {"humerus", "scapula", "clavicle"},
    "elbow": {"humerus", "radius", "ulna"},
}
# Pairs that a joint space or soft tissue always separates in the image.
APART = {
    "knee_tibia": [("femur", "tibia"), ("femur", "fibula"), ("tibia", "patella"),
                   ("fibula", "patella")],
    "knee_femur": [("femur", "tibia"), ("femur", "fibula"), ("tibia", "patella")],
    "shoulder": [("humerus", "clavicle")],
    "elbow": [("humerus", "radius")],
}


def _film(kind, view="frontal", lesion=False, age=30, sex="M", center=1, index=0, size=64,
          distractors=False, awkward=""):
    """A film whose generator depends on (kind, view, index) only: changing anything else
    gives its twin."""
    spec = FilmSpec(kind, view, lesion, age, sex, center, awkward)
    return render_film(spec, size, 0.3, image_rng(0, f"test/{kind}/{view}", 0, index),
                       distractors)


@pytest.mark.parametrize("kind", list(FILM_KINDS))
def test_every_kind_and_view_shows_its_bones(kind):
    for view in ("frontal", "lateral"):
        out = _film(kind, view)
        assert out.image.shape == (64, 64) and out.image.dtype == np.float32
        assert 0.0 <= out.image.min() and out.image.max() <= 1.0
        assert set(out.masks) == EXPECTED_BONES[kind], (kind, view)
        assert set(out.masks) <= BONES
        for mask in out.masks.values():
            assert mask.dtype == bool and mask.shape == (64, 64) and mask.any()
        main = FILM_KINDS[kind].main_bone
        if main in out.masks:
            assert np.array_equal(out.main_mask, out.masks[main])
        else:  # a joint: all of its bones
            assert np.array_equal(out.main_mask, np.logical_or.reduce(list(out.masks.values())))
        bone = np.logical_or.reduce(list(out.masks.values()))
        # Bone is bright on a darker background.
        assert out.image[bone].mean() > out.image[~bone].mean() + 0.05


@pytest.mark.parametrize("kind", list(APART))
def test_masks_are_disjoint_where_bones_do_not_meet(kind):
    for view, index in itertools.product(("frontal", "lateral"), range(3)):
        out = _film(kind, view, index=index, distractors=True)
        for a, b in APART[kind]:
            if a in out.masks and b in out.masks:
                assert not (out.masks[a] & out.masks[b]).any(), (kind, view, a, b)


def test_lateral_views_superimpose_what_frontal_views_separate():
    # Knee: the fibula beside the tibia on an AP film, over it on a lateral one.
    frontal, lateral = _film("knee_tibia", "frontal"), _film("knee_tibia", "lateral")
    assert not (frontal.masks["tibia"] & frontal.masks["fibula"]).any()
    assert (lateral.masks["tibia"] & lateral.masks["fibula"]).sum() > 10
    # The patella over the femur on an AP film, in front of it on a lateral one.
    assert (frontal.masks["patella"] & frontal.masks["femur"]).sum() > 10
    assert not (lateral.masks["patella"] & lateral.masks["femur"]).any()


@pytest.mark.parametrize("kind", [k for k, v in FILM_KINDS.items() if v.lesion_bone])
def test_lesions_lie_inside_their_bone(kind):
    for view, index in itertools.product(("frontal", "lateral"), range(3)):
        out = _film(kind, view, lesion=True, index=index, distractors=True)
        bone = FILM_KINDS[kind].lesion_bone
        assert out.lesion_bone == bone and out.lesion_type
        assert out.lesion_mask.any()
        assert not (out.lesion_mask & ~out.masks[bone]).any(), (kind, view, index)
        rows, cols = np.nonzero(out.lesion_mask)
        assert out.boxes == [[cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0]]


@pytest.mark.parametrize("kind", [k for k, v in FILM_KINDS.items() if v.lesion_bone])
def test_marks_and_text_never_cover_the_lesion(kind):
    for view, index in itertools.product(("frontal", "lateral"), range(3)):
        marked = _film(kind, view, lesion=True, index=index, size=96, distractors=True)
        plain = _film(kind, view, lesion=True, index=index, size=96, distractors=False)
        assert np.array_equal(marked.lesion_mask, plain.lesion_mask)
        assert np.abs(marked.image - plain.image)[plain.lesion_mask].max() < 1e-3


def test_lesion_twin_differs_only_at_the_lesion():
    sick = _film("knee_femur", "frontal", lesion=True, index=2, size=80)
    twin = _film("knee_femur", "frontal", lesion=False, index=2, size=80)
    diff = np.abs(sick.image - twin.image)
    x0, y0, x1, y1 = (int(v) for v in sick.boxes[0])
    away = np.ones_like(diff, bool)
    away[max(y0 - 8, 0):y1 + 8, max(x0 - 8, 0):x1 + 8] = False
    assert diff[sick.lesion_mask].mean() > 0.01 and diff[away].mean() < 0.002


@pytest.mark.parametrize("kind", ["knee_tibia", "shoulder", "ankle"])
def test_growth_plates_show_the_age(kind):
    young = _film(kind, age=10, size=96)
    adult = _film(kind, age=40, size=96)
    for name in young.masks:  # twins: same limb, pose and exposure
        assert np.array_equal(young.masks[name], adult.masks[name])
    bone = young.main_mask
    diff = young.image - adult.image
    away = ~ndimage.binary_dilation(np.logical_or.reduce(list(young.masks.values())),
                                    iterations=6)
    assert np.abs(diff[away]).max() < 1e-3  # Gaussian blur tails only
    # Open physes are lucent bands: the young bone is darker somewhere along a band.
    assert diff[bone].min() < -0.08 and diff[bone].mean() < 0
    # Closure is sex-dependent and gradual, never an abrupt change a year after 18.
    late = _film(kind, age=19, size=96)
    assert np.abs(late.image - adult.image).max() < 1e-6


def _centre_features(image: np.ndarray) -> tuple[float, float]:
    background = float(np.percentile(image, 5))
    sharp = float(np.abs(np.diff(image, axis=1)).mean())
    return background, sharp


def test_centres_can_be_told_from_the_pixels():
    features = {c: [] for c in (1, 2, 3)}
    for index, center in itertools.product(range(4), (1, 2, 3)):
        out = _film("knee_tibia", "frontal", center=center, index=index, size=96,
                    distractors=True)
        features[center].append(_centre_features(out.image))
    background = {c: np.array([f[0] for f in v]) for c, v in features.items()}
    sharp = {c: np.array([f[1] for f in v]) for c, v in features.items()}
    # Centre 1 is a digital room (black background, sharp), centre 2 flat and grey,
    # centre 3 a fogged, blurred film scan.
    assert background[1].max() < min(background[2].min(), background[3].min())
    assert sharp[3].max() < sharp[1].min()
    # Each centre burns in its own text.
    words = {c: set() for c in (1, 2, 3)}
    for index, center in itertools.product(range(3), (1, 2, 3)):
        words[center] |= set(_film("hip", center=center, index=index, size=128,
                                   distractors=True).words)
    assert all(words[a].isdisjoint(words[b] - {"AP", "LAT"}) or a == b
               for a in words for b in words)


def _specs(confound: float, n: int = 400):
    rows = []
    for label, index in itertools.product((0, 1), range(n)):
        group = "femur" if label else "lower_limb"
        rng = image_rng(3, f"spec/{group}", label, index)
        spec, _ = sample_spec(group, label, "", confound, rng)
        rows.append((label, spec))
    return rows


def _blind_accuracy(rows) -> float:
    """The best single metadata rule a lesion-blind classifier could use."""
    rules = [lambda s: s.center == 1, lambda s: s.view == "frontal", lambda s: s.age < 20,
             lambda s: s.center == 1 and s.view == "frontal"]
    return max(np.mean([rule(spec) == bool(label) for label, spec in rows]) for rule in rules)


def test_confounding_makes_metadata_predict_the_label():
    assert _blind_accuracy(_specs(0.0)) < 0.6
    assert _blind_accuracy(_specs(0.8)) > 0.8
    independent = _specs(0.0)
    for label in (0, 1):
        specs = [s for lab, s in independent if lab == label]
        assert 0.35 < np.mean([s.center == 1 for s in specs]) < 0.55
        assert 0.5 < np.mean([s.view == "frontal" for s in specs]) < 0.7


def _mixed(tmp_path, name="ph", **changes):
    settings = dict(bones=("femur", "tibia", "humerus"), normal=6, lesion=3, size=40, seed=2,
                    films="mixed", awkward=3)
    settings.update(changes)
    return make_phantom(tmp_path / name, PhantomConfig(**settings))


def test_mixed_manifest_labels_like_real_data(tmp_path):
    manifest = load_manifest(_mixed(tmp_path, labelled_normals=0.3))
    table = manifest.table
    assert len(table) == 3 * 3 + 6 * 3 + 3 * 2
    for column in ("film", "view", "age", "sex", "center", "region", "sites", "true_bone",
                   "true_bones", "awkward", "bone_mask_path",
                   *(f"{bone}_mask_path" for bone in MASK_BONES)):
        assert column in table.columns, column
    assert set(table["view"]) <= {"frontal", "lateral"}
    assert set(table["sex"]) <= {"M", "F"} and set(table["center"]) <= {"1", "2", "3"}
    assert all(0 < int(age) < 100 for age in table["age"])
    positives = table[table["label"] == 1]
    assert (positives["bone"] == positives["lesion_bone"]).all()
    assert all(s.split(";")[0] == b for s, b in zip(positives["sites"], positives["bone"],
                                                    strict=True))
    for row in positives.itertuples():
        assert row.film in LESION_FILMS[row.bone]
        lesion = np.asarray(Image.open(manifest.resolve(row.mask_path))) > 0
        bone = np.asarray(Image.open(manifest.resolve(getattr(row, f"{row.bone}_mask_path"))))
        assert lesion.any() and not (lesion & (bone == 0)).any()
        assert row.bone_mask_path == getattr(row, f"{row.bone}_mask_path")
    normals = table[(table["label"] == 0) & (table["awkward"] == "")]
    assert (normals["sites"] == "").all()
    named = normals[~normals["bone"].isin(REGIONS)]
    assert (named["bone"] == named["true_bone"]).all()
    assert 0 < len(named) < len(normals)
    assert {"ankle", "elbow"} & set(normals["film"]), "normals include joints without lesions"
    for row in table.itertuples():
        visible = [b for b in row.true_bones.split(";") if b]
        for bone in MASK_BONES:
            path = getattr(row, f"{bone}_mask_path")
            assert bool(path) == (bone in visible), (row.image_id, bone)
            if path:
                mask = np.asarray(Image.open(manifest.resolve(path)))
                assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}


def test_labelled_share_is_a_setting(tmp_path):
    none = load_manifest(_mixed(tmp_path, "a", labelled_normals=0.0, awkward=0)).table
    every = load_manifest(_mixed(tmp_path, "b", labelled_normals=1.0, awkward=0)).table
    assert set(none.loc[none["label"] == 0, "bone"]) <= REGIONS
    normals = every[every["label"] == 0]
    assert (normals["bone"] == normals["true_bone"]).all()
    # The films themselves do not depend on how they are labelled.
    a, b = tmp_path / "a" / "images", tmp_path / "b" / "images"
    assert all((a / p.name).read_bytes() == p.read_bytes() for p in b.iterdir())


def test_awkward_films_are_there(tmp_path):
    manifest = load_manifest(_mixed(tmp_path, normal=1, lesion=1))
    table = manifest.table
    awkward = table[table["awkward"] != ""]
    assert len(awkward) == 6 and (awkward["label"] == 0).all()
    assert set(awkward["bone"]) <= REGIONS
    for region in ("lower_limb", "upper_limb"):
        assert set(awkward.loc[awkward["region"] == region, "awkward"]) == {
            "blank", "markers", "inverted"}
    for row in awkward.itertuples():
        image = np.asarray(Image.open(manifest.resolve(row.path)), dtype=np.float64) / 65535
        if row.awkward == "blank":
            assert row.true_bones == "" and row.bone_mask_path == "" and image.std() < 0.08
        elif row.awkward == "markers":
            assert row.true_bones == "" and row.text
        else:  # inverted: bone dark on a bright background
            bone = np.asarray(Image.open(manifest.resolve(row.bone_mask_path))) > 0
            assert image[bone].mean() < image[~bone].mean()


def test_same_seed_same_bytes_and_more_films_keep_the_earlier(tmp_path):
    config = PhantomConfig(films="mixed", normal=2, lesion=1, size=40, seed=4)
    job = mixed_jobs(config)[0]
    a, _ = render_job(job, config)
    b, _ = render_job(job, config)
    assert a.image.tobytes() == b.image.tobytes() and a.spec == b.spec
    small = _mixed(tmp_path, "small", bones=("tibia",), normal=2, lesion=1, awkward=1).parent
    large = _mixed(tmp_path, "large", bones=("humerus", "tibia"), normal=3, lesion=2,
                   awkward=3).parent
    names = sorted(p.name for p in (small / "images").iterdir())
    assert names and all((small / "images" / n).read_bytes()
                         == (large / "images" / n).read_bytes() for n in names)


def test_rerun_replaces_an_earlier_phantom_of_the_other_mode(tmp_path):
    out = tmp_path / "ph"
    make_phantom(out, PhantomConfig(films="mixed", normal=1, lesion=1, size=40,
                                    bones=("femur",)))
    make_phantom(out, PhantomConfig(normal=1, lesion=0, size=40, bones=("tibia",)))
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["images/tibia-normal-0000.png", "manifest.csv",
                     "masks/tibia-normal-0000_bone.png", "run.json", "sheet.png"]


@pytest.mark.parametrize("change, message", [
    ({"confound": 1.5}, "confound"),
    ({"labelled_normals": -0.1}, "labelled-normals"),
    ({"awkward": -1}, "awkward"),
    ({"films": "both"}, "films"),
    ({"normal": 0, "lesion": 0, "awkward": 0}, "nothing to render"),
])
def test_bad_mixed_config_is_one_line_error(tmp_path, change, message):
    settings = dict(films="mixed", normal=1, lesion=1, size=40)
    settings.update(change)
    with pytest.raises(BoneaugError, match=message) as info:
        make_phantom(tmp_path / "out", PhantomConfig(**settings))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_bad_spec_is_one_line_error():
    rng = image_rng(0, "x", 0, 0)
    for spec, message in ((FilmSpec("wrist", "frontal", False, 30, "M", 1), "film kind"),
                          (FilmSpec("ankle", "frontal", True, 30, "M", 1), "carries no lesion"),
                          (FilmSpec("hip", "oblique", False, 30, "M", 1), "view"),
                          (FilmSpec("hip", "frontal", False, 30, "M", 4), "centre")):
        with pytest.raises(BoneaugError, match=message):
            render_film(spec, 40, 0.5, rng)


def test_cli_renders_a_mixed_set(tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["phantom", "--out", str(out), "--bones", "humerus",
                                      "--normal", "1", "--lesion", "1", "--size", "40",
                                      "--films", "mixed", "--confound", "0.5", "--awkward",
                                      "1", "--labelled-normals", "0"])
    assert result.exit_code == 0, result.output
    table = load_manifest(out / "manifest.csv").table
    assert len(table) == 3 and set(table["region"]) == {"upper_limb"}
