"""One-shot check of the CycleGAN on a CUDA GPU: correctness, DDP, and speed (~4 minutes).

    .venv/bin/python benchmarks/gpu_check.py              # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --smoke      # tiny sizes on the CPU, to test it
    OUT=/some/folder .venv/bin/python benchmarks/gpu_check.py   # also writes gpu_check.json

1. train: `train_cyclegan` as the CLI runs it on CUDA (bf16 autocast and channels-last via
   "auto"), the reference architecture on toy patches for 40 iterations: losses finite,
   the generator loss not blowing up, the discriminator losses in range, the generator
   file loads and translates.
2. ddp: `torchrun --nproc_per_node 1` running `train_cyclegan` (nccl), 3 iterations.
3. speed: training iterations/s of the reference architecture at 128 and 256, batch 1
   and 4: the naive reference step (fp32, NCHW; convs use TF32 as torch's default allows),
   boneaug's step in fp32, + bf16, + bf16 + channels-last, + cudnn.benchmark; the
   torch.compile variant at 128 x 1 in a time-boxed subprocess; and 9-block generator
   inference patches/s at 128.
Prints a compact table at the end; exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gan import run_infer, run_train  # noqa: E402

from boneaug.gan import (  # noqa: E402
    GanConfig,
    from_model_range,
    load_generator,
    to_model_range,
    train_cyclegan,
)
from boneaug.gan.masks import box_mask, with_mask  # noqa: E402


def _toy(p: int, n: int, seed: int, disc: bool) -> np.ndarray:
    """Smooth-ish noise in [0.2, 0.6] (+ a bright central disc for the lesion domain)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, p // 8, p // 8)).astype(np.float32)
    x = np.kron(coarse, np.ones((8, 8), np.float32))
    x = 0.2 + 0.4 * x
    if disc:
        yy, xx = np.mgrid[:p, :p]
        x = x + 0.35 * (((yy - p / 2) ** 2 + (xx - p / 2) ** 2) <= (p / 6) ** 2)
    return np.clip(x, 0, 1).astype(np.float32)


def check_train(smoke: bool, device: str, compile_: bool, work: Path,
                masked: bool = False) -> dict[str, Any]:
    """Train a few iterations and load the generator. `masked`: the mask-conditioned path
    (`gan.mask`, `upsample: resize`, `judge: contrast`, `judge_area: lesion`), its masks
    the lesion domain's central disc."""
    p = 32 if smoke else 128
    mask_settings: dict[str, Any] = dict(mask=True, upsample="resize", judge="contrast",
                                         judge_area="lesion") if masked else {}
    config = GanConfig(
        n_blocks=1 if smoke else 9, ngf=8 if smoke else 64, ndf=8 if smoke else 64,
        iterations=6 if smoke else 40, batch_size=2, lr=2e-4, sample_every=20,
        checkpoint_every=20, log_every=5, seed=0, device=device, compile=compile_,
        **mask_settings)
    disc = box_mask((p / 3, p / 3, 2 * p / 3, 2 * p / 3), p)
    masks = np.repeat(disc[None], 16, axis=0) if masked else None
    name = "train" + ("+mask" if masked else "") + ("+compile" if compile_ else "")
    out = work / name.replace("+", "_")
    started = time.time()
    result = train_cyclegan(_toy(p, 16, 0, False), _toy(p, 16, 1, True), config, out,
                            progress=False, lesion_masks=masks)
    wall = time.time() - started
    import pandas as pd

    losses = pd.read_csv(result.losses_path)
    names = [c for c in losses.columns if c not in ("iteration", "lr", "seconds")]
    finite = bool(np.isfinite(losses[names].to_numpy()).all())
    k = max(1, len(losses) // 4)
    g_first, g_last = losses["g_total"].iloc[:k].mean(), losses["g_total"].iloc[-k:].mean()
    d_max = float(losses[["d_lesion", "d_healthy"]].to_numpy().max())
    g, info = load_generator(result.generator_path, device=device)
    with torch.no_grad():
        x = to_model_range(torch.from_numpy(_toy(p, 4, 2, False))[:, None]).to(device)
        given = with_mask(x, to_model_range(torch.from_numpy(masks[:4])[:, None]).to(device)) \
            if masked else x
        y = from_model_range(g(given))
    ok = (finite and g_last < 1.5 * g_first and d_max < 5.0 and bool(torch.isfinite(y).all())
          and y.shape == x.shape and result.completed)
    return {"check": name, "ok": ok,
            "finite": finite, "g_total_first": float(g_first), "g_total_last": float(g_last),
            "d_max": d_max, "wall_s": wall, "it_per_s": result.iterations_per_second,
            "device": str(y.device), "generator_sha256": info["sha256"][:12]}


def check_ddp(smoke: bool, work: Path) -> dict[str, Any]:
    out = work / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "1", str(Path(__file__).resolve()), "--ddp-worker", str(out)]
    if smoke:
        cmd.append("--smoke")
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    report = out / "ddp_result.json"
    result = json.loads(report.read_text()) if report.is_file() else {}
    ok = proc.returncode == 0 and result.get("world_size") == 1 and \
        result.get("iterations") == 3 and (out / "run" / "generator_healthy_to_lesion.pt").is_file()
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"check": "ddp (torchrun, 1 process)", "ok": ok, "rc": proc.returncode,
            "backend": result.get("backend"), "wall_s": time.time() - started,
            **({} if ok else {"tail": tail})}


def ddp_worker(out: Path, smoke: bool) -> None:
    """Runs inside torchrun: train_cyclegan sees RANK / WORLD_SIZE and joins the group."""
    import torch.distributed as dist

    p = 32 if smoke else 64
    config = GanConfig(n_blocks=1 if smoke else 2, ngf=8 if smoke else 16,
                       ndf=8 if smoke else 16, iterations=3, batch_size=2, log_every=1,
                       device="cpu" if smoke else "cuda", seed=0)
    backend: list[str] = []
    real_init = dist.init_process_group

    def spy(*args: Any, **kwargs: Any) -> Any:
        backend.append(kwargs.get("backend", args[0] if args else "?"))
        return real_init(*args, **kwargs)

    dist.init_process_group = spy  # type: ignore[assignment]
    result = train_cyclegan(_toy(p, 8, 0, False), _toy(p, 8, 1, True), config, out / "run",
                            progress=False)
    if result.rank == 0:
        (out / "ddp_result.json").write_text(json.dumps({
            "world_size": result.world_size, "iterations": result.iterations,
            "backend": backend[0] if backend else None, "losses": result.final_losses}))


def speed(smoke: bool, device: torch.device, compile_: bool) -> list[dict[str, Any]]:
    if smoke:
        sizes, batches, kw, iters, warm = (32,), (1, 2), {"n_blocks": 1, "width": 8}, 2, 1
    else:
        sizes, batches, kw, iters, warm = (128, 256), (1, 4), {}, 10, 3
    variants = ["naive", "batched", "batched+bf16", "batched+bf16+cl",
                "batched+bf16+cl+cudnnbench"]
    rows = []
    for size in sizes:
        for batch in batches:
            for v in variants:
                try:
                    rows.append(run_train(v, size, batch, iters, warm, device, **kw))
                except Exception as exc:  # keep going: a table with one error beats none
                    rows.append({"kind": "train", "variant": v, "size": size, "batch": batch,
                                 "error": f"{type(exc).__name__}: {exc}"[:200]})
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False
    for v in ("fp32", "bf16", "bf16+cl"):
        rows.append(run_infer(v, 32 if smoke else 128, 4 if smoke else 64, iters, warm,
                              device, **kw))
    if compile_ and not smoke:
        cmd = [sys.executable, str(HERE / "bench_gan.py"), "--one", "train", "--variant",
               "batched+bf16+cl+compile", "--size", "128", "--batch", "1", "--iters", "10",
               "--warmup", "3", "--device", str(device)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            rows.append(json.loads(line[0][7:]) if line else {
                "kind": "train", "variant": "batched+bf16+cl+compile", "size": 128,
                "batch": 1, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]})
        except subprocess.TimeoutExpired:
            rows.append({"kind": "train", "variant": "batched+bf16+cl+compile", "size": 128,
                         "batch": 1, "error": "compile + 13 iterations took over 150 s"})
    return rows


def table(checks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    out = ["checks:"]
    for c in checks:
        extra = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items()
                 if k not in ("check", "ok")}
        out.append(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}: {extra}")
    base = {(r["size"], r["batch"]): r["it_per_s"] for r in rows
            if r.get("variant") == "naive" and "it_per_s" in r}
    out.append("\n| what | size | batch | it/s | patches/s | vs naive | peak MB |")
    out.append("|---|---|---|---|---|---|---|")
    for r in rows:
        name = f"{r['kind']} {r['variant']}"
        if "error" in r:
            out.append(f"| {name} | {r['size']} | {r['batch']} | error: {r['error']} | | | |")
        elif r["kind"] == "train":
            ref = base.get((r["size"], r["batch"]))
            out.append(f"| {name} | {r['size']} | {r['batch']} | {r['it_per_s']:.2f} | "
                       f"{r['patches_per_s']:.1f} | "
                       f"{(r['it_per_s'] / ref) if ref else float('nan'):.2f}x | "
                       f"{r['peak_mb']:.0f} |")
        else:
            out.append(f"| G inference {r['variant']} | {r['size']} | {r['batch']} | | "
                       f"{r['patches_per_s']:.0f} | | {r['peak_mb']:.0f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile checks")
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args.ddp_worker, args.smoke)
        return 0
    started = time.time()
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    env = {"torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
           "smoke": args.smoke, "cpus": os.cpu_count()}
    print(json.dumps(env), flush=True)
    compile_ = not args.no_compile and not args.smoke
    checks: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        steps: list[tuple[str, Any]] = [
            ("train", lambda: check_train(args.smoke, device.type, False, work)),
            ("train+mask", lambda: check_train(args.smoke, device.type, False, work, True)),
            ("ddp", lambda: check_ddp(args.smoke, work))]
        for name, fn in steps:
            t = time.time()
            try:
                checks.append(fn())
            except Exception as exc:
                traceback.print_exc()
                checks.append({"check": name, "ok": False,
                               "error": f"{type(exc).__name__}: {exc}"[:300]})
            print(json.dumps(checks[-1], default=str), f"({time.time() - t:.0f} s)", flush=True)
        rows = speed(args.smoke, device, compile_)
    env["wall_s"] = round(time.time() - started, 1)
    print()
    print(table(checks, rows))
    print(f"\ntotal {env['wall_s']} s")
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "gpu_check.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"env": env, "checks": checks, "speed": rows}, indent=1,
                                   default=str))
        print(f"wrote {path}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
