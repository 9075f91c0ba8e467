"""Mixed-phantom throughput: films per second, rendering alone, against single-bone films.

    .venv/bin/python benchmarks/bench_phantom_mixed.py [--size 256] [--films 120]

Renders the same number of single-bone films (`render_radiograph`) and mixed films (the
jobs of a mixed `make_phantom`, with their metadata), and prints one line each; the
numbers in docs/phantom.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from boneaug.data.phantom import PHANTOM_BONES, PhantomConfig, image_rng, render_radiograph
from boneaug.data.phantom_mixedset import mixed_jobs, render_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--films", type=int, default=120, help="films of each mode")
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.platform()}")
    per = max(1, args.films // (2 * len(PHANTOM_BONES)))
    started = time.perf_counter()
    count = 0
    for bone in PHANTOM_BONES:
        for label in (0, 1):
            for index in range(per):
                render_radiograph(bone, bool(label), args.size, 0.5,
                                  image_rng(0, bone, label, index))
                count += 1
    seconds = time.perf_counter() - started
    print(f"single films: {count} of {args.size}x{args.size} in {seconds:.2f} s = "
          f"{count / seconds:.1f} films/s")

    config = PhantomConfig(films="mixed", normal=per, lesion=per, awkward=0, size=args.size)
    jobs = mixed_jobs(config)
    started = time.perf_counter()
    for job in jobs:
        render_job(job, config)
    seconds = time.perf_counter() - started
    print(f"mixed films: {len(jobs)} of {args.size}x{args.size} in {seconds:.2f} s = "
          f"{len(jobs) / seconds:.1f} films/s")


if __name__ == "__main__":
    main()
