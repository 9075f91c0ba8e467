"""Synthesis throughput: generator patches/s and whole radiographs/s (not a test).

    .venv/bin/python benchmarks/bench_synth.py                 # 9-block G, 128 px patches
    .venv/bin/python benchmarks/bench_synth.py --device cuda   # on a GPU
    .venv/bin/python benchmarks/bench_synth.py --smoke         # tiny, to check it runs
    .venv/bin/python benchmarks/bench_synth.py --mask --upsample resize   # gan.mask / upsample

Builds a small phantom set (femur, `--size` px radiographs), cuts its patches for the
lesion statistics, saves an untrained reference-size generator (speed does not depend on
the weights) and times (1) the generator on batches of patches in fp32 and in bf16
autocast (what `translate` uses on CUDA and on CPUs with native bf16), and (2)
`synthesize` end to end: read, site, crop, translate, paste, write 16-bit PNG, manifests.
`--mask` / `--upsample resize` time the generator kinds of `gan.mask` / `gan.upsample`
(a masked generator is given a lesion mask as its second channel).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boneaug.data import load_manifest, save_manifest
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.splits import split_manifest
from boneaug.gan import from_model_range, to_model_range
from boneaug.gan.checkpoint import save_generator
from boneaug.gan.masks import box_mask, with_mask
from boneaug.gan.networks import build_generator
from boneaug.patches import extract_patches
from boneaug.synth import synthesize


def time_translate(model, device, patch: int, batch: int, repeats: int, bf16: bool) -> float:
    x = np.random.default_rng(0).random((batch, patch, patch), dtype=np.float32)
    mask = torch.from_numpy(box_mask((patch / 4, patch / 4, 3 * patch / 4, 3 * patch / 4),
                                     patch))[None, None].expand(batch, 1, patch, patch)

    def run():
        t = to_model_range(torch.from_numpy(x)[:, None]).to(device)
        if getattr(model, "masked", False):
            t = with_mask(t, to_model_range(mask).to(device))
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return from_model_range(model(t).float()).cpu()
    run()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--size", type=int, default=512, help="radiograph side in pixels")
    parser.add_argument("--images", type=int, default=24, help="synthetic radiographs to time")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--mask", action="store_true", help="a mask-conditioned generator")
    parser.add_argument("--upsample", choices=("transpose", "resize"), default="transpose")
    args = parser.parse_args()
    blocks, ngf = (9, 64)
    if args.smoke:
        args.patch, args.size, args.images, args.batch, blocks, ngf = 32, 128, 4, 4, 1, 4
    device = torch.device(args.device)
    results: dict = {"device": str(device), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "patch": args.patch,
                     "radiograph": args.size,
                     "generator": f"{blocks} blocks, ngf {ngf}, upsample {args.upsample}"
                                  + (", masked" if args.mask else "")}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest_path = make_phantom(root / "phantom", PhantomConfig(
            bones=("femur",), normal=max(args.images, 8), lesion=6, size=args.size, seed=0))
        split = split_manifest(load_manifest(manifest_path), val=0.1, test=0.1, seed=0,
                               ).manifest
        # every normal is a source: put all of them in train for the timing
        split.table.loc[split.table["label"] == 0, "split"] = "train"
        split.table["patient_id"] = split.table["image_id"]
        save_manifest(split, root / "manifest.csv")
        split = load_manifest(root / "manifest.csv")
        report = extract_patches(split, "femur", args.patch, root / "patches", per_lesion=1,
                                 progress=False)
        stats = json.loads(report.stats_path.read_text())
        model = build_generator({"n_blocks": blocks, "ngf": ngf, "upsample": args.upsample,
                                 **({"masked": True} if args.mask else {})})
        ckpt = root / "g.pt"
        save_generator(model, ckpt, args.patch, extra={"bone": "femur", "lesion_stats": stats,
                                                      "patches": {"context": 0.5}})
        model = model.to(device).eval()
        repeats = 3 if device.type == "cpu" else 20
        results["patches_per_s_fp32"] = round(
            time_translate(model, device, args.patch, args.batch, repeats, False), 1)
        results["patches_per_s_bf16_autocast"] = round(
            time_translate(model, device, args.patch, args.batch, repeats, True), 1)
        start = time.perf_counter()
        synthesize(ckpt, split, "femur", root / "syn", count=args.images, seed=0,
                   batch_size=args.batch, device=args.device, progress=False)
        elapsed = time.perf_counter() - start
        results["radiographs_per_s_end_to_end"] = round(args.images / elapsed, 2)
    print(json.dumps(results, indent=1))
    if os.environ.get("OUT"):
        name = f"bench_synth_{device.type}{'_masked' if args.mask else ''}.json"
        (Path(os.environ["OUT"]) / name).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
