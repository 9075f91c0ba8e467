"""Classifier training throughput: milliseconds per training step (batch 32) per setting.

    .venv/bin/python benchmarks/bench_classifier.py [--archs cnn,resnet18] [--sizes 64,96,128]
        [--widths 8,16] [--steps 10] [--device cpu] [--no-onednn]

Each setting runs 3 warm-up steps and then `--steps` timed steps of forward, backward and
AdamW on random inputs, with bf16 autocast off and on; then the `classic` strategy's
augmentation time per batch of 32 at each size. `--no-onednn` turns PyTorch's oneDNN CPU
kernels off (the kernels that make results depend on the thread count;
docs/performance.md). Run it on a quiet machine: a second CPU-heavy process on 2 cores
slows torch 10x or more (OpenMP threads spin on each other).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from boneaug.classify.augment import ClassicAugmentation
from boneaug.classify.model import build_classifier


def step_ms(arch: str, width: int, size: int, amp: bool, steps: int,
            device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_classifier(arch, width).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(32, 1, size, size, device=device)
    y = torch.randint(0, 2, (32,), device=device).float()
    for i in range(steps + 3):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps * 1000


def augment_ms(size: int, batches: int = 5) -> float:
    """The `classic` strategy's augmentation of one batch of 32 (batched, in torch)."""
    transform = ClassicAugmentation(0)
    x = torch.rand(32, 1, size, size)
    transform(x)  # warm-up
    started = time.perf_counter()
    for _ in range(batches):
        transform(x)
    return (time.perf_counter() - started) / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="cnn,resnet18")
    parser.add_argument("--sizes", default="64,96,128")
    parser.add_argument("--widths", default="8,16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-onednn", action="store_true", help="oneDNN CPU kernels off")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.no_onednn:
        torch.backends.mkldnn.enabled = False
    print(f"device {device}, oneDNN {'off' if args.no_onednn else 'on'}, "
          f"{torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.2f}, torch {torch.__version__}")
    print("| arch | width | input | fp32 ms/step | bf16 ms/step | images/s (best) |")
    print("|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        for width in (int(w) for w in args.widths.split(",")):
            for size in (int(s) for s in args.sizes.split(",")):
                fp32 = step_ms(arch, width, size, False, args.steps, device)
                bf16 = step_ms(arch, width, size, True, args.steps, device)
                print(f"| {arch} | {width} | {size} | {fp32:.0f} | {bf16:.0f} | "
                      f"{32000 / min(fp32, bf16):.0f} |", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"classic augmentation, batch of 32 at {size} px: {augment_ms(size):.0f} ms")


if __name__ == "__main__":
    main()
