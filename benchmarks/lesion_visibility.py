"""How visible are real and synthetic lesions? Mean |change| inside the lesion box.

For a synthetic image the change is the synthetic image minus its source radiograph
(provenance ``source_path``); for a *real* phantom lesion it is the image minus its
lesion-free twin (the same random stream rendered without the lesion, docs/phantom.md).
Both are measured inside the lesion box, on the [0, 1] grey scale, so the numbers say
directly how strong a lesion each source paints compared with the real ones.

    .venv/bin/python benchmarks/lesion_visibility.py runs/phantom-full

Prints a markdown table per bone and source: images, median and 10th / 90th percentiles
of the mean |change| in the box, the share of lesions that make the box brighter on
average (a real lytic lesion removes bone, so it darkens; a sclerotic rim or an expansile
cortex can brighten part of it), and the median box side (share of the image side).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from boneaug.data import load_manifest, read_image
from boneaug.data.phantom import image_rng, render_radiograph
from boneaug.experiment.protocol import lesion_change


def real_changes(run: Path, bone: str, pool: bool) -> tuple[list, list[float]]:
    """Changes of the real training positives kept (or held back, `pool`) of `bone`."""
    manifest = load_manifest(run / "data" / ("oracle-pool.csv" if pool else "manifest.csv"))
    table = manifest.table
    rows = table[(table["bone"] == bone) & (table["label"] == 1) & (table["split"] == "train")]
    changes, sides = [], []
    for row in rows.itertuples():
        index = int(re.search(r"(\d+)$", row.image_id).group(1))
        image = read_image(manifest.resolve(row.path))
        twin = render_radiograph(bone, False, image.shape[0], float(row.difficulty),
                                 image_rng(int(row.phantom_seed), bone, 1, index)).image
        for box in row.boxes:
            changes.append(lesion_change(image, twin, box))
            sides.append(np.sqrt((box[2] - box[0]) * (box[3] - box[1])) / image.shape[0])
    return changes, sides


def synthetic_changes(csv: Path) -> tuple[list, list[float]]:
    manifest = load_manifest(csv)
    changes, sides = [], []
    for row in manifest.table.itertuples():
        provenance = json.loads(row.provenance)
        image = read_image(manifest.resolve(row.path))
        source = read_image(Path(provenance["source_path"]))
        box = provenance["lesion_box"]
        changes.append(lesion_change(image, source, box))
        sides.append(np.sqrt((box[2] - box[0]) * (box[3] - box[1])) / image.shape[0])
    return changes, sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    run = args.run
    bones = sorted({p.name for p in (run / "patches").iterdir() if p.is_dir()})
    print("| bone | lesions from | n | median mean abs change in box | p10 | p90 | "
          "brighter than without | median box side |")
    print("|---|---|---|---|---|---|---|---|")
    for bone in bones:
        sources = [("real, kept for training", *real_changes(run, bone, False)),
                   ("real, held back (oracle)", *real_changes(run, bone, True))]
        for folder in sorted((run / "synth").glob(f"*/{bone}-*")):
            name = f"{folder.parent.name} {folder.name}"
            sources.append((name, *synthetic_changes(folder / "synthetic.csv")))
        for name, changes, sides in sources:
            if not changes:
                continue
            c = np.asarray([a for a, _ in changes])
            brighter = np.mean([signed > 0 for _, signed in changes])
            print(f"| {bone} | {name} | {len(c)} | {np.median(c):.4f} | "
                  f"{np.percentile(c, 10):.4f} | {np.percentile(c, 90):.4f} | "
                  f"{100 * brighter:.0f} % | {np.median(sides):.3f} |", flush=True)


if __name__ == "__main__":
    main()
