"""Fuzz: seeded malformed manifests, configs, annotation files and images through every
command's entry point, in-process.

Each case writes one malformed input into its own folder and runs one command on it with
a fresh output location. Whatever the input, the command either succeeds or stops with a
`BoneaugError` (a one-line message; `validate` exits 2 after listing its problems); any
other exception fails the test. Either way no input changes (every file is hashed before
and after), and a refused command leaves nothing where its output would have gone.

Every mutation below makes the input wrong for the commands it is given to, so nearly all
cases must be refused; the test also checks that (a fuzz test that only ever passes
inputs through would prove nothing).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from boneaug.cli import app
from boneaug.data import load_manifest, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.errors import BoneaugError
from boneaug.gan import ResnetGenerator
from boneaug.gan.checkpoint import save_generator
from boneaug.patches import extract_patches

SEED = 20261203
CASES = {"manifest": 160, "config": 60, "annotations": 60}
PATCH = 24

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# --------------------------------------------------------------------------- valid inputs


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs, each of which a mutation breaks: a split manifest of phantom films,
    femur patches, a tiny generator, configs, a LabelMe folder, a COCO file, a CSV table."""
    root = tmp_path_factory.mktemp("fuzz-world")
    raw = make_phantom(root / "phantom", PhantomConfig(bones=("femur", "tibia"), normal=6,
                                                       lesion=4, size=64, seed=3))
    split = split_manifest(load_manifest(raw), val=0.25, test=0.25, seed=0).manifest
    manifest = save_manifest(split, root / "manifest.csv")
    loaded = load_manifest(manifest)
    extract_patches(loaded, "femur", PATCH, root / "patches", per_lesion=1,
                    healthy_per_image=1, progress=False)
    torch.manual_seed(0)
    generator = root / "generator.pt"
    stats = json.loads((root / "patches" / "femur" / "lesion_stats.json").read_text())
    save_generator(ResnetGenerator(n_blocks=1, ngf=4), generator, PATCH,
                   extra={"bone": "femur", "lesion_stats": stats, "patches": {"context": 0.5}})
    configs = root / "configs"
    configs.mkdir()
    (configs / "gan.yaml").write_text(yaml.safe_dump({"gan": {
        "n_blocks": 1, "ngf": 4, "ndf": 4, "iterations": 2, "batch_size": 1,
        "sample_every": 2, "checkpoint_every": 2, "device": "cpu"}}))
    (configs / "classifier.yaml").write_text(yaml.safe_dump({"classifier": {
        "size": 32, "width": 4, "epochs": 1, "steps_per_epoch": 1, "batch_size": 4,
        "device": "cpu"}}))
    demo = yaml.safe_load((Path(__file__).parents[1] / "configs" / "phantom-demo.yaml")
                          .read_text(encoding="utf-8"))
    demo["data"].update({"bones": ["femur"], "normal": 8, "lesion": 6, "size": 64})
    demo["gan"].update({"n_blocks": 1, "ngf": 4, "ndf": 4, "iterations": 2})
    demo["protocol"].update({"seeds": 1, "strategies": ["baseline"], "n_boot": 20})
    (configs / "experiment.yaml").write_text(yaml.safe_dump(demo))

    labelme = root / "labelme"
    labelme.mkdir()
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(labelme / "a.png")
    (labelme / "a.json").write_text(json.dumps({
        "version": "5.2.1", "flags": {}, "imagePath": "a.png", "imageData": None,
        "imageWidth": 60, "imageHeight": 40, "shapes": [
            {"label": "lesion", "points": [[10, 5], [30, 25]], "group_id": None,
             "shape_type": "rectangle", "flags": {}}]}))
    coco = root / "coco"
    (coco / "images").mkdir(parents=True)
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(coco / "images" / "p.png")
    (coco / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "images/p.png", "width": 60, "height": 40}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [10, 8, 20, 12],
                         "iscrowd": 0}],
        "categories": [{"id": 7, "name": "lesion"}]}))
    table = root / "table"
    table.mkdir()
    Image.fromarray(np.full((40, 60), 90, np.uint8)).save(table / "x.png")
    (table / "labels.csv").write_text("File,Finding,Boxes\nx.png,lesion,\"[[1,1,9,9]]\"\n")
    return {"root": root, "manifest": manifest, "generator": generator, "configs": configs,
            "labelme": labelme, "coco": coco, "table": table}


# --------------------------------------------------------------------------- mutations


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    return lines[0], lines[1:]


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])


def _bad_image(folder: Path, rng: np.random.Generator, source: Path) -> Path:
    """A file named like an image that is not a usable one."""
    kind = rng.integers(4)
    path = folder / f"bad{kind}.png"
    if kind == 0:
        path.write_bytes(source.read_bytes()[: max(8, source.stat().st_size // 3)])
    elif kind == 1:
        path.write_text("not an image at all")
    elif kind == 2:
        path.write_bytes(b"")
    else:
        path.mkdir()  # a folder where the image should be
    return path


def mutate_manifest(world: dict[str, Path], folder: Path, rng: np.random.Generator
                    ) -> tuple[Path, str]:
    """A broken copy of the world's manifest in `folder`, and what was broken. Paths are
    made absolute, so the films stay the world's (and hashed as inputs)."""
    manifest = load_manifest(world["manifest"])
    header, rows = _rows(world["manifest"])
    col = {name: header.index(name) for name in header}
    for row in rows:
        for name, i in col.items():
            if name.endswith("path") and row[i]:
                row[i] = str(manifest.resolve(row[i]))
    lesion_rows = [i for i, r in enumerate(rows) if r[col["label"]] == "1"]
    k = int(rng.choice(lesion_rows))
    out = folder / "manifest.csv"
    kind = str(rng.choice([
        "drop column", "duplicate column", "bone", "label", "boxes", "missing image",
        "bad image", "split", "patient", "encoding", "extra field", "empty", "negative box",
        "duplicate id", "synthetic in test"]))
    if kind == "drop column":
        gone = col[str(rng.choice(["image_id", "path", "bone", "label"]))]
        header = header[:gone] + header[gone + 1:]
        rows = [r[:gone] + r[gone + 1:] for r in rows]
    elif kind == "duplicate column":
        header = [*header, str(rng.choice(["label", "bone", "path"]))]
        rows = [[*r, r[0]] for r in rows]
    elif kind == "bone":
        rows[k][col["bone"]] = str(rng.choice(["femr", "Femur!", "x" * 5000, "12", "🦴"]))
    elif kind == "label":
        rows[k][col["label"]] = str(rng.choice(["2", "yes", "-1", "", "1.5", "lesion"]))
    elif kind == "boxes":
        rows[k][col["boxes"]] = str(rng.choice([
            "[", "[[1,2,3]]", "[[5,5,1,1]]", "[[0,0,1e309,4]]", '"x"', '{"a": 1}',
            "[" * 4000, "[[0,0,1e308,4]]", "[[NaN,0,4,4]]", "[[0,0,true,4]]"]))
    elif kind == "negative box":
        rows[k][col["boxes"]] = str(rng.choice(["[[-9,-9,3,3]]", "[[2,2,900,900]]"]))
    elif kind == "missing image":
        rows[k][col["path"]] = str(folder / "gone" / "nowhere.png")
    elif kind == "bad image":
        rows[k][col["path"]] = str(_bad_image(folder, rng, manifest.image_path(0)))
    elif kind == "split":
        rows[k][col["split"]] = str(rng.choice(["training", "TEST", "valid", "x"]))
    elif kind == "patient":
        other = next(i for i, r in enumerate(rows) if r[col["split"]] != rows[k][col["split"]])
        rows[k][col["patient_id"]] = rows[other][col["patient_id"]]
    elif kind == "extra field":
        rows[k] = [*rows[k], "surplus"]
    elif kind == "duplicate id":
        rows[k][col["image_id"]] = rows[(k + 1) % len(rows)][col["image_id"]]
    elif kind == "synthetic in test":
        rows[k][col["origin"]] = "synthetic"
        rows[k][col["split"]] = "test"
    if kind == "empty":
        out.write_bytes(b"")
    else:
        _write_rows(out, header, rows)
    if kind == "encoding":
        data = out.read_bytes()
        cut = int(rng.integers(len(data) // 2, len(data)))
        out.write_bytes(data[:cut] + b"\xff\xfe\xc3" + data[cut:])
    return out, kind


CONFIG_BREAKS: list[tuple[str, Callable[[dict[str, Any], str], Any]]] = [
    ("unknown key", lambda d, s: d[s].update({"iteratoins": 3})),
    ("string for a number", lambda d, s: d[s].update({next(iter(d[s])): "many"})),
    ("negative", lambda d, s: d[s].update({"batch_size": -4})),
    ("mapping for a number", lambda d, s: d[s].update({"batch_size": {"a": 1}})),
    ("section not a mapping", lambda d, s: d.update({s: [1, 2]})),
]


def mutate_config(world: dict[str, Path], folder: Path, rng: np.random.Generator,
                  name: str) -> tuple[Path, str]:
    """A broken copy of the world's `name` config (gan, classifier or experiment)."""
    text = (world["configs"] / f"{name}.yaml").read_text(encoding="utf-8")
    out = folder / f"{name}.yaml"
    kind = str(rng.choice(["bad yaml", "empty", "not a mapping", "encoding", "break"]))
    if kind == "bad yaml":
        out.write_text(text + "\n  broken: [unclosed\n")
    elif kind == "empty":
        out.write_text(str(rng.choice(["", "# nothing\n", "{}\n"])))
    elif kind == "not a mapping":
        out.write_text("- 1\n- 2\n")
    elif kind == "encoding":
        out.write_bytes(text.encode() + b"\nnote: \xff\xfe\n")
    else:
        data = yaml.safe_load(text)
        section = {"gan": "gan", "classifier": "classifier"}.get(name) or str(
            rng.choice(["gan", "classifier", "patches", "synthesis"]))
        what, breaks = CONFIG_BREAKS[int(rng.integers(len(CONFIG_BREAKS)))]
        breaks(data, section)
        kind = f"{section}: {what}"
        out.write_text(yaml.safe_dump(data))
    return out, kind


def mutate_annotations(world: dict[str, Path], folder: Path, rng: np.random.Generator
                       ) -> tuple[list[str], str]:
    """A broken LabelMe folder, COCO file or CSV table in `folder`, and the import
    command's arguments (without --out)."""
    fmt = str(rng.choice(["labelme", "coco", "csv"]))
    if fmt == "labelme":
        shutil.copytree(world["labelme"], folder / "lm")
        data = json.loads((folder / "lm" / "a.json").read_text())
        kind = str(rng.choice(["json", "shapes", "points", "image", "size", "encoding"]))
        if kind == "shapes":
            data["shapes"] = {"not": "a list"}
        elif kind == "points":
            data["shapes"][0]["points"] = str(rng.choice(["[[1,2]]", "x"]))
        elif kind == "image":
            (folder / "lm" / "a.png").write_text("not an image")
        elif kind == "size":
            data["imageWidth"] = -60
        text = json.dumps(data)
        if kind == "json":
            text = text[: int(rng.integers(1, len(text) - 1))]
        (folder / "lm" / "a.json").write_bytes(
            text.encode() + (b"\xff" if kind == "encoding" else b""))
        return ["import", "labelme", str(folder / "lm"), "--bone", "femur"], f"labelme {kind}"
    if fmt == "coco":
        shutil.copytree(world["coco"], folder / "coco")
        path = folder / "coco" / "annotations.json"
        data = json.loads(path.read_text())
        kind = str(rng.choice(["json", "images", "bbox", "image id", "category", "file"]))
        if kind == "images":
            data["images"] = "none"
        elif kind == "bbox":
            data["annotations"][0]["bbox"] = [[1, 2], [0, 0, -5, 3]][int(rng.integers(2))]
        elif kind == "image id":
            data["annotations"][0]["image_id"] = 99
        elif kind == "category":
            data["annotations"][0]["category_id"] = "seven"
        elif kind == "file":
            data["images"][0]["file_name"] = "images/gone.png"
        text = json.dumps(data, default=int)
        if kind == "json":
            text = text[: int(rng.integers(1, len(text) - 1))]
        path.write_text(text)
        return ["import", "coco", str(path), "--bone", "femur"], f"coco {kind}"
    shutil.copytree(world["table"], folder / "t")
    path = folder / "t" / "labels.csv"
    kind = str(rng.choice(["boxes", "file", "finding", "columns", "encoding"]))
    text = {"boxes": 'File,Finding,Boxes\nx.png,lesion,"[[1,1"\n',
            "file": "File,Finding,Boxes\ngone.png,lesion,\n",
            "finding": "File,Finding,Boxes\nx.png,maybe,\n",
            "columns": "Image,Label\nx.png,lesion\n",
            "encoding": "File,Finding,Boxes\nx.png,lesion,\n"}[kind]
    path.write_bytes(text.encode() + (b"\xff\xfe" if kind == "encoding" else b""))
    return ["import", "csv", str(path), "-c", "path=File", "-c", "label=Finding", "-c",
            "boxes=Boxes", "--bone", "femur", "--positive", "lesion"], f"csv {kind}"


# --------------------------------------------------------------------------- the run


def hashes(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def commands(kind: str, world: dict[str, Path], case: Path, given: Path | list[str],
             rng: np.random.Generator) -> list[tuple[str, list[str], Path]]:
    """(name, argv, output location) of the commands a broken input goes through."""
    out = case / "out"
    if kind == "manifest":
        m = str(given)
        return [
            ("validate", ["validate", m], out),
            ("split", ["split", m, "--out", str(out / "split.csv")], out),
            ("stats", ["stats", m], out),
            ("patches", ["patches", "--manifest", m, "--bone", "femur", "--size", str(PATCH),
                         "--out", str(out)], out),
            ("classify", ["classify", "--manifest", m, "--strategy", "baseline", "--bone",
                          "femur", "--out", str(out), "--config",
                          str(world["configs"] / "classifier.yaml")], out),
            ("synthesize", ["synthesize", "--generator", str(world["generator"]),
                            "--manifest", m, "--bone", "femur", "--count", "1", "--out",
                            str(out)], out),
        ]
    if kind == "config":
        assert isinstance(given, Path)
        name = given.stem
        argv = {
            "gan": ["gan", "train", "--patches", str(world["root"] / "patches" / "femur"),
                    "--out", str(out), "--config", str(given)],
            "classifier": ["classify", "--manifest", str(world["manifest"]), "--strategy",
                           "baseline", "--bone", "femur", "--out", str(out), "--config",
                           str(given)],
            "experiment": ["experiment", "--config", str(given), "--out", str(out)],
        }[name]
        return [(name, argv, out)]
    assert isinstance(given, list)
    return [(given[1], [*given, "--out", str(out / "manifest.csv")], out)]


@pytest.mark.parametrize("kind", list(CASES))
def test_fuzz(world: dict[str, Path], tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng([SEED, list(CASES).index(kind)])
    runner = CliRunner()
    refused = total = 0
    passed: list[str] = []
    for n in range(CASES[kind]):
        case = tmp_path / f"case{n:03d}"
        case.mkdir()
        if kind == "manifest":
            given, what = mutate_manifest(world, case, rng)
        elif kind == "config":
            name = str(rng.choice(["gan", "classifier", "experiment"]))
            given, what = mutate_config(world, case, rng, name)
        else:
            given, what = mutate_annotations(world, case, rng)
        for name, argv, out in commands(kind, world, case, given, rng):
            before = hashes(world["root"], case)
            result = runner.invoke(app, argv)
            label = f"case {n} ({what}) `{name}`"
            error = result.exception
            if error is not None and not isinstance(error, BoneaugError | SystemExit):
                raise AssertionError(f"{label}: {type(error).__name__}: {error}") from error
            if isinstance(error, BoneaugError):
                message = str(error)
                assert message and "\n" not in message and len(message) < 1000, label
            total += 1
            after = hashes(world["root"], case)
            if result.exit_code == 0:
                passed.append(label)
                shutil.rmtree(out, ignore_errors=True)
                after = {k: v for k, v in after.items() if not k.startswith(str(out))}
            else:
                refused += 1
                assert not out.exists(), f"{label}: left {sorted(out.rglob('*'))[:3]}"
                assert not list(case.glob(".*partial")), f"{label}: left a partial folder"
            assert after == before, f"{label}: an input changed"
    # the mutations break what each command reads: nearly every case is refused
    assert refused >= 0.75 * total, (refused, total, passed[:10])
