"""Phantom throughput: images per second, rendering alone and the whole data set on disk.

    .venv/bin/python benchmarks/bench_phantom.py [--size 256] [--per-bone 40]

Prints one line per measurement; the numbers in docs/phantom.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from boneaug.data.phantom import (
    PHANTOM_BONES,
    PhantomConfig,
    image_rng,
    make_phantom,
    render_radiograph,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--per-bone", type=int, default=40, help="images per bone and label")
    parser.add_argument("--difficulty", type=float, default=0.5)
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.platform()}")
    count = 0
    started = time.perf_counter()
    for bone in PHANTOM_BONES:
        for label in (0, 1):
            for index in range(args.per_bone):
                render_radiograph(bone, bool(label), args.size, args.difficulty,
                                  image_rng(0, bone, label, index))
                count += 1
    seconds = time.perf_counter() - started
    print(f"render only: {count} images of {args.size}x{args.size} in {seconds:.2f} s = "
          f"{count / seconds:.1f} images/s ({60 * count / seconds:.0f}/min)")

    with tempfile.TemporaryDirectory() as tmp:
        config = PhantomConfig(normal=args.per_bone, lesion=args.per_bone, size=args.size,
                               difficulty=args.difficulty)
        started = time.perf_counter()
        manifest = make_phantom(Path(tmp) / "phantom", config)
        seconds = time.perf_counter() - started
        total = 2 * args.per_bone * len(PHANTOM_BONES)
        assert manifest.is_file()
    print(f"make_phantom (PNG images, masks, manifest, sheet): {total} images in "
          f"{seconds:.2f} s = {total / seconds:.1f} images/s ({60 * total / seconds:.0f}/min)")


if __name__ == "__main__":
    main()
