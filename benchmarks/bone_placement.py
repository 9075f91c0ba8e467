"""Which bone a film shows, and whether synthetic lesions land on their bone: measured on
mixed phantom films (joint and multi-bone films, region labels) with their masks hidden.

1. Render mixed phantom films (`--films mixed`): hip, knee, shoulder, ankle and elbow
   films, frontal and lateral, normals labelled only by region except a labelled share.
2. Hide every bone mask (the pipeline sees what a real data set gives it), split by patient.
   With `--layout btxrd` the films go through BTXRD's layout instead: exported, then read
   by `boneaug import btxrd` (every normal labelled by region, each lesion drawn twice).
3. `assign_bones`: score the assignment of every region-labelled film against its true main
   bone: a film is right when the bones assigned to it among the lesion bones are exactly
   its main bone (or none, for an ankle or elbow film, whose main bone is no lesion bone).
4. Per lesion bone: `extract_patches` (the located healthy crops) and copy-paste synthesis
   (the same sites as the CycleGAN's, without training one) onto the train films assigned
   to the bone; score each synthetic lesion's centre against the film's true mask of that
   bone. Every phantom film shows several bones, so every lesion counts as "in a
   multi-bone film".

    .venv/bin/python benchmarks/bone_placement.py --out runs/bench-placement
    .venv/bin/python benchmarks/bone_placement.py --out runs/bench-placement-btxrd --layout btxrd
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from boneaug.classify.bones import BonesConfig, assign_bones
from boneaug.data import Manifest, load_manifest, read_image
from boneaug.data.films import normals_of, split_bones
from boneaug.data.importers import import_btxrd
from boneaug.data.manifest import file_columns
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.phantom_btxrd import export_btxrd
from boneaug.data.splits import split_manifest
from boneaug.patches import extract_patches
from boneaug.synth import copy_paste_translator, synthesize

LESION_BONES = ("femur", "tibia", "humerus")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-placement"))
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--normal", type=int, default=120, help="normals per bone's region")
    parser.add_argument("--lesion", type=int, default=60, help="lesion films per bone")
    parser.add_argument("--count", type=int, default=150, help="synthetic lesions per bone")
    parser.add_argument("--steps", type=int, default=BonesConfig.steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=("boneaug", "btxrd"), default="boneaug",
                        help="btxrd: export the films in BTXRD's layout and import them")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()

    phantom_config = PhantomConfig(normal=args.normal, lesion=args.lesion, size=args.size,
                                   seed=args.seed, difficulty=0.0, films="mixed", awkward=2)
    if args.layout == "btxrd":
        # BTXRD's layout: every normal film labelled by region (no labelled share), each
        # lesion drawn as a rectangle and a polygon, no bone masks; the truth beside it
        root = args.out / "btxrd"
        export_btxrd(root, phantom_config)
        import_btxrd(root, args.out / "import" / "manifest.csv")
        blind = load_manifest(args.out / "import" / "manifest.csv")
        truth_table = pd.read_csv(root / "truth.csv", dtype=str, keep_default_na=False)
        truth = Manifest(truth_table, root.resolve())
        blind.table = blind.table.merge(truth_table[["image_id", "true_bone", "film"]],
                                        on="image_id")
    else:
        truth = load_manifest(make_phantom(args.out / "phantom", phantom_config))
        blind = truth.copy()
        for column in file_columns(blind.table):
            if column.endswith("mask_path") and column != "mask_path":
                blind.table[column] = ""
    blind = split_manifest(blind, val=0.15, test=0.25, seed=args.seed).manifest
    print(f"{len(blind)} films rendered at {args.size} px in {time.time() - started:.0f} s")

    t0 = time.time()
    report = assign_bones(blind, BonesConfig(steps=args.steps, seed=args.seed))
    table = report.manifest.table
    model = table[table["bone_source"] == "model"]
    right = []
    for assigned, true_bone in zip(model["assigned_bones"], model["true_bone"], strict=True):
        chosen = {b for b in split_bones(assigned) if b in LESION_BONES}
        right.append(chosen == ({true_bone} & set(LESION_BONES)))
    per_film: dict[str, list[bool]] = {}
    for film, ok in zip(model["film"], right, strict=True):
        per_film.setdefault(film, []).append(ok)
    results = {
        "films": len(table), "region_labelled": len(model),
        "classes": report.classes, "holdout_accuracy": report.holdout_accuracy,
        "assignment_accuracy": float(np.mean(right)),
        "assignment_accuracy_by_film": {k: round(float(np.mean(v)), 3)
                                        for k, v in sorted(per_film.items())},
        "assign_seconds": round(time.time() - t0, 1), "placement": {},
    }
    print(f"assignment: {results['assignment_accuracy']:.1%} of {len(model)} region-labelled "
          f"films right ({report.holdout_accuracy:.1%} on held-out known films) in "
          f"{results['assign_seconds']} s; by film: {results['assignment_accuracy_by_film']}")

    truth_rows = truth.table.set_index("image_id")
    for bone in LESION_BONES:
        t0 = time.time()
        patches = args.out / "patches"
        extract_patches(report.manifest, bone, 32, patches, per_lesion=4, healthy_per_image=2,
                        seed=args.seed, progress=False)
        out = args.out / "synth" / bone
        made = synthesize(patches / bone, report.manifest, bone, out, count=args.count,
                          seed=args.seed, device="cpu", progress=False,
                          translator=copy_paste_translator(patches / bone, args.seed))
        synthetic = load_manifest(out / "synthetic.csv").table
        on_bone, right_film = [], []
        for source, boxes in zip(synthetic["source_image_id"], synthetic["boxes"],
                                 strict=True):
            x0, y0, x1, y1 = boxes[0]
            cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
            mask_path = truth_rows.at[source, f"{bone}_mask_path"]
            on = bool(mask_path) and bool(read_image(truth.resolve(mask_path))[cy, cx] > 0.5)
            on_bone.append(on)
            right_film.append(truth_rows.at[source, "true_bone"] == bone)
        sources = table[normals_of(table, bone) & (table["split"] == "train")]
        results["placement"][bone] = {
            "synthetic": int(made.images), "source_films": len(sources),
            "on_bone": float(np.mean(on_bone)), "on_main_bone_film": float(np.mean(right_film)),
            "skipped_films": len(made.warnings) and made.warnings[0],
            "seconds": round(time.time() - t0, 1)}
        print(f"{bone}: {np.mean(on_bone):.1%} of {made.images} synthetic lesions on the "
              f"{bone} ({np.mean(right_film):.1%} on films whose main bone is it), "
              f"{len(sources)} train films assigned")
    results["seconds"] = round(time.time() - started, 1)
    results["settings"] = vars(args) | {"out": str(args.out)}
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"done in {results['seconds']:.0f} s -> {args.out / 'results.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
