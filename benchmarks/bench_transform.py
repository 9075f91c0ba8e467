"""Cost per sample of the online lesion transform (`boneaug.transforms`) on the CPU.

    .venv/bin/python benchmarks/bench_transform.py \
        --generator runs/phantom-full/gan/femur/generator_healthy_to_lesion.pt \
        --patches runs/phantom-full/patches/femur \
        --films runs/phantom-full/data/manifest.csv [--n 200]

Paints every one of `--n` normal femur films of the manifest (prob 1) with the generator
and with copy-paste, one thread (as in a DataLoader worker), and prints milliseconds per
painted sample (median and p90), beside the cost of reading the film. Run it on a quiet
machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from boneaug.data import load_manifest, read_image
from boneaug.transforms import LesionPainter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, required=True)
    parser.add_argument("--patches", type=Path, required=True)
    parser.add_argument("--films", type=Path, required=True)
    parser.add_argument("--bone", default="femur")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = load_manifest(args.films, check_images=False)
    table = manifest.table
    rows = table[(table["label"] == 0) & (table["bone"] == args.bone)
                 & (table["origin"] == "real")].head(args.n)
    started = time.perf_counter()
    films = [(r.image_id, read_image(manifest.resolve(r.path))) for r in rows.itertuples()]
    read_ms = 1000 * (time.perf_counter() - started) / len(films)
    print(f"{len(films)} films of {films[0][1].shape}; reading: {read_ms:.1f} ms per film")
    for name, painter in (("generator", LesionPainter(args.generator, prob=1.0)),
                          ("copy-paste", LesionPainter(copy_paste=args.patches, prob=1.0))):
        times = []
        painted = 0
        for key, film in films:
            t = time.perf_counter()
            painted += painter(film, key).painted
            times.append(1000 * (time.perf_counter() - t))
        print(f"{name:10s} {np.median(times):6.1f} ms median, {np.percentile(times, 90):6.1f}"
              f" ms p90 per sample ({painted} of {len(films)} painted)")


if __name__ == "__main__":
    main()
