"""CycleGAN training and inference throughput on this machine (a benchmark, not a test).

Every measurement runs in its own subprocess, so its peak memory is its own and one
variant's warm caches do not flatter the next. The reference architecture throughout:
9-block ResNet generators, ngf = ndf = 64, one channel.

    .venv/bin/python benchmarks/bench_gan.py                 # the default study, ~10 min
    .venv/bin/python benchmarks/bench_gan.py --quick         # levers at 128 only
    .venv/bin/python benchmarks/bench_gan.py --compile       # + torch.compile (~3 min more)
    .venv/bin/python benchmarks/bench_gan.py --json out.json
    .venv/bin/python benchmarks/bench_gan.py --ab 8      # naive vs best, interleaved

Training variants (all the same architecture and losses):
    naive       the reference's step (boneaug.gan.reference): 6 separate G passes, real and
                fake D passes apart, float32, NCHW
    batched     boneaug's step (boneaug.gan.step.train_step): 4 G passes with the identity
                pass stacked onto the real pass, one D pass per domain, fused Adam
                (boneaug.gan.step.make_adam, as train_cyclegan)
    +loopadam   the default per-parameter Adam loop instead of the fused kernel
    +bf16       bf16 autocast;  +cl  channels-last;  +compile  torch.compile (inductor);
                +cudnnbench  torch.backends.cudnn.benchmark (CUDA)
Timing: `--warmup` iterations, then the median of `--iters` timed iterations.
Memory: the peak resident set of the subprocess (CPU; it includes ~0.4 GB of Python, torch
and MONAI), or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from boneaug.gan.networks import PatchGANDiscriminator, ResnetGenerator
from boneaug.gan.pool import ImagePool
from boneaug.gan.reference import reference_step
from boneaug.gan.step import Discriminators, Generators, make_adam, train_step

VARIANTS = ("naive", "naive+bf16", "naive+cl", "batched", "batched+bf16",
            "batched+bf16+loopadam", "batched+cl", "batched+bf16+cl",
            "batched+bf16+cl+compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _make_step(variant: str, size: int, batch: int, device: torch.device,
               n_blocks: int = 9, width: int = 64) -> Any:
    """Build the networks, optimisers and pools of one training variant; returns
    `step(healthy, lesion) -> loss terms`."""
    parts = set(variant.split("+"))
    bf16, cl, comp = "bf16" in parts, "cl" in parts, "compile" in parts
    fmt = torch.channels_last if cl else torch.contiguous_format
    # "cudnnbench": let cuDNN time its algorithms for these shapes (CUDA only)
    torch.backends.cudnn.benchmark = "cudnnbench" in parts
    torch.manual_seed(0)
    nets = [ResnetGenerator(n_blocks, width), ResnetGenerator(n_blocks, width),
            PatchGANDiscriminator(width), PatchGANDiscriminator(width)]
    for n in nets:
        n.to(device, memory_format=fmt)
    g_hl, g_lh, d_l, d_h = nets
    # the reference's Adam loop for the naive step; boneaug's fused Adam for its own step
    if "naive" in parts or "loopadam" in parts:
        def adam(params: list) -> torch.optim.Optimizer:
            return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    else:
        def adam(params: list) -> torch.optim.Optimizer:
            return make_adam(params, 2e-4, (0.5, 0.999), device)
    opt_g = adam([*g_hl.parameters(), *g_lh.parameters()])
    opt_d = adam([*d_l.parameters(), *d_h.parameters()])
    pools = (ImagePool(50, seed=1), ImagePool(50, seed=2))

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    if "naive" in parts:
        def step(h: torch.Tensor, les: torch.Tensor) -> torch.Tensor:
            with autocast():
                return reference_step(g_hl, g_lh, d_l, d_h, opt_g, opt_d, *pools, h, les)
    else:
        gens: Any = Generators(g_hl, g_lh)
        discs: Any = Discriminators(d_l, d_h)
        dl_fn: Any = d_l
        dh_fn: Any = d_h
        if comp:
            gens, discs = torch.compile(gens), torch.compile(discs)
            dl_fn, dh_fn = torch.compile(d_l), torch.compile(d_h)

        def step(h: torch.Tensor, les: torch.Tensor) -> torch.Tensor:
            return train_step(gens, discs, opt_g, opt_d, *pools, h, les, 10.0, 0.5,
                              autocast, dl_fn, dh_fn)

    return step


def run_train(variant: str, size: int, batch: int, iters: int, warmup: int,
              device: torch.device, n_blocks: int = 9, width: int = 64) -> dict[str, Any]:
    """Time one training variant; returns seconds per iteration (median) and peak memory.

    `width` is ngf = ndf; 9 and 64 are the reference architecture.
    """
    parts = set(variant.split("+"))
    fmt = torch.channels_last if "cl" in parts else torch.contiguous_format
    step = _make_step(variant, size, batch, device, n_blocks, width)
    gen = torch.Generator().manual_seed(0)
    rss_before = _peak_mb(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, first = [], None
    for i in range(warmup + iters):
        h = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
        les = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
        h, les = h.contiguous(memory_format=fmt), les.contiguous(memory_format=fmt)
        _sync(device)
        t = time.perf_counter()
        terms = step(h, les)
        _sync(device)
        dt = time.perf_counter() - t
        if i == 0:
            first = dt
        if i >= warmup:
            times.append(dt)
    assert torch.isfinite(terms).all(), f"{variant}: non-finite losses {terms}"
    med = statistics.median(times)
    return {"kind": "train", "variant": variant, "size": size, "batch": batch,
            "s_per_it": med, "it_per_s": 1 / med, "patches_per_s": batch / med,
            "first_iter_s": first, "times": times, "peak_mb": _peak_mb(device),
            "mb_before_step": rss_before}


def run_infer(variant: str, size: int, batch: int, iters: int, warmup: int,
              device: torch.device, n_blocks: int = 9, width: int = 64) -> dict[str, Any]:
    """Generator (9 blocks) inference: patches per second at a given batch."""
    parts = set(variant.split("+"))
    fmt = torch.channels_last if "cl" in parts else torch.contiguous_format
    torch.manual_seed(0)
    g = ResnetGenerator(n_blocks, width).to(device, memory_format=fmt).eval()
    fn: Any = torch.compile(g) if "compile" in parts else g
    x = (torch.rand(batch, 1, size, size) * 2 - 1).to(device).contiguous(memory_format=fmt)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                enabled="bf16" in parts):
        for i in range(warmup + iters):
            _sync(device)
            t = time.perf_counter()
            y = fn(x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    assert torch.isfinite(y).all()
    med = statistics.median(times)
    return {"kind": "infer", "variant": variant, "size": size, "batch": batch,
            "s_per_batch": med, "patches_per_s": batch / med, "times": times,
            "peak_mb": _peak_mb(device)}


def run_ab(variants: list[str], rounds: int, size: int, batch: int,
           device: torch.device) -> list[dict[str, Any]]:
    """Time `variants` round-robin in this one process: one iteration of each per round, so
    a load spike from other jobs hits them all alike; the first 2 rounds are warm-up."""
    steps = [_make_step(v, size, batch, device) for v in variants]
    gen = torch.Generator().manual_seed(0)
    times: list[list[float]] = [[] for _ in variants]
    for r in range(rounds + 2):
        h = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
        les = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
        for i, step in enumerate(steps):
            _sync(device)
            t = time.perf_counter()
            step(h, les)
            _sync(device)
            if r >= 2:
                times[i].append(time.perf_counter() - t)
    out = []
    for v, ts in zip(variants, times, strict=True):
        med = statistics.median(ts)
        out.append({"kind": "train", "variant": v, "size": size, "batch": batch,
                    "s_per_it": med, "it_per_s": 1 / med, "patches_per_s": batch / med,
                    "times": ts, "peak_mb": _peak_mb(device)})
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
        info["bf16_isa"] = sorted({f for f in lscpu.split() if f.startswith("amx")
                                   or f == "avx512_bf16"})
    with contextlib.suppress(OSError):
        info["loadavg_at_start"] = os.getloadavg()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _one(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    fn = run_train if args.one == "train" else run_infer
    result = fn(args.variant, args.size, args.batch, args.iters, args.warmup, device)
    print("RESULT " + json.dumps(result), flush=True)


def _spawn(kind: str, variant: str, size: int, batch: int, iters: int, warmup: int,
           device: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", kind, "--variant", variant, "--size", str(size),
           "--batch", str(batch), "--iters", str(iters), "--warmup", str(warmup),
           "--device", device]
    started = time.time()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "variant": variant, "size": size, "batch": batch,
                "error": f"timed out after {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            result["wall_s"] = time.time() - started
            return result
    tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"kind": kind, "variant": variant, "size": size, "batch": batch, "error": tail[0]}


def _plan(quick: bool, compile_: bool) -> list[tuple]:
    """(kind, variant, size, batch, iters, warmup, timeout_s) - sized to a few minutes."""
    plan: list[tuple] = []
    for v in VARIANTS:  # the levers one by one, at 128 batch 1
        compiled = "compile" in v
        if compiled and not compile_:
            continue
        plan.append(("train", v, 128, 1, 5, 3 if compiled else 2, 900 if compiled else 300))
    if quick:
        return plan
    # the reference architecture at larger patches and batches: naive vs. the best step
    # (batching alone in float32 only at 128 x 4: at batch 1 it is measured above)
    for size, batch, iters in ((128, 4, 3), (256, 1, 3), (256, 4, 2)):
        plan.append(("train", "naive", size, batch, iters, 1, 600))
        if (size, batch) == (128, 4):
            plan.append(("train", "batched", size, batch, iters, 1, 600))
        plan.append(("train", "batched+bf16", size, batch, iters, 1, 600))
    for v in ("fp32", "bf16", "bf16+cl"):
        plan.append(("infer", v, 128, 16, 5, 1, 300))
    return plan


def _table(results: list[dict[str, Any]]) -> str:
    base = {(r["size"], r["batch"]): r["it_per_s"] for r in results
            if r.get("kind") == "train" and r["variant"] == "naive" and "error" not in r}
    lines = ["| what | size | batch | s/it | it/s | patches/s | vs naive | peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['kind']} {r['variant']} | {r['size']} | {r['batch']} | "
                         f"error: {r['error']} | | | | |")
            continue
        if r["kind"] == "train":
            ref = base.get((r["size"], r["batch"]))
            speed = f"{r['it_per_s'] / ref:.2f}x" if ref else ""
            lines.append(f"| train {r['variant']} | {r['size']} | {r['batch']} | "
                         f"{r['s_per_it']:.3f} | {r['it_per_s']:.3f} | "
                         f"{r['patches_per_s']:.2f} | {speed} | {r['peak_mb']:.0f} |")
        else:
            lines.append(f"| G inference {r['variant']} | {r['size']} | {r['batch']} | "
                         f"{r['s_per_batch']:.3f} /batch | | {r['patches_per_s']:.1f} | | "
                         f"{r['peak_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the levers at 128, batch 1")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile variant (its first step compiles for minutes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default=None, help="comma-separated variants to run")
    parser.add_argument("--ab", type=int, default=0, metavar="ROUNDS",
                        help="interleave naive and the best step in one process instead")
    parser.add_argument("--one", choices=("train", "infer"), help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="batched", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args)
        return
    info = machine()
    print(json.dumps(info), flush=True)
    if args.ab:
        variants = (args.only or "naive,batched+bf16").split(",")
        results = run_ab(variants, args.ab, args.size, args.batch, torch.device(args.device))
        print(_table(results))
        print(f"load average at end {os.getloadavg()}")
        return
    plan = _plan(args.quick, args.compile)
    if args.only:
        keep = set(args.only.split(","))
        plan = [p for p in plan if p[1] in keep]
    results = []
    for kind, variant, size, batch, iters, warmup, timeout in plan:
        r = _spawn(kind, variant, size, batch, iters, warmup, args.device, timeout)
        results.append(r)
        brief = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                 if k not in ("times",)}
        print(json.dumps(brief), flush=True)
    info["loadavg_at_end"] = os.getloadavg()
    print()
    print(_table(results))
    print(f"\nload average at start {info.get('loadavg_at_start')}, at end "
          f"{info['loadavg_at_end']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
