"""The demo: every stage built so far, on the built-in phantom radiographs, in minutes.

phantom -> validate -> patient-level split -> stats -> femur patches -> a small CycleGAN
-> synthetic femur lesions -> the femur generator transferred to the tibia. It uses a
smaller generator and fewer iterations than the reference (which needs hours on a CPU),
and says so. The classifiers, the evaluation and the report come with the experiment
protocol (issue 4).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from boneaug.data import load_manifest, save_manifest
from boneaug.data.files import check_out_dir
from boneaug.data.phantom import PhantomConfig, make_phantom
from boneaug.data.runinfo import write_run_json
from boneaug.data.splits import split_manifest
from boneaug.data.stats import describe_manifest
from boneaug.gan import GanConfig, train_cyclegan
from boneaug.patches import extract_patches, load_domains
from boneaug.synth import synthesize


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults run in about two minutes on a 2-core CPU."""

    seed: int = 0
    normal: int = 60            # normal phantom radiographs per bone
    lesion: int = 12            # lesion radiographs per bone
    size: int = 256             # radiograph side
    patch: int = 64             # patch side
    n_blocks: int = 3           # the reference generator has 9
    filters: int = 16           # ngf = ndf; the reference has 64
    iterations: int = 1500      # the reference trains for ~100k+ iterations
    ratio: float = 5.0          # synthetic per real positive train image


def run_demo(out_dir: str | Path, config: DemoConfig | None = None,
             say: Callable[[str], None] = print) -> dict:
    """Run the demo into `out_dir` (empty, new, or an earlier demo, which is replaced)."""
    config = config or DemoConfig()
    started = time.time()
    out_dir = Path(out_dir)
    check_out_dir(out_dir, "demo")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    # Marks the folder as the demo's at once, so an interrupted demo can be re-run into it.
    write_run_json(out_dir, "demo", asdict(config), config.seed, started,
                   extra={"completed": False})
    steps = 8

    def step(i: int, text: str) -> None:
        say(f"[{i}/{steps}] {text} ({time.time() - started:.0f} s)")

    say("boneaug demo on phantom radiographs. It trains a SMALL CycleGAN "
        f"({config.n_blocks} residual blocks, {config.filters} filters, {config.patch} px "
        f"patches, {config.iterations} iterations) so that it runs in minutes on a CPU; the "
        "reference network (9 blocks, 64 filters) is `boneaug gan train`'s default.")
    manifest_path = make_phantom(out_dir / "phantom", PhantomConfig(
        normal=config.normal, lesion=config.lesion, size=config.size, seed=config.seed))
    step(1, f"phantom radiographs of femur, tibia, humerus: {manifest_path}")
    manifest = load_manifest(manifest_path)
    step(2, f"manifest valid: {len(manifest)} images")
    result = split_manifest(manifest, val=0.2, test=0.3, seed=config.seed)
    for warning in result.warnings:
        say(f"warning: {warning}")
    split_path = save_manifest(result.manifest, out_dir / "manifest.csv")
    split = load_manifest(split_path)
    step(3, f"patient-level split: {split_path}\n\n{describe_manifest(split)}\n")

    patches = extract_patches(split, "femur", config.patch, out_dir / "patches",
                              per_lesion=24, healthy_per_image=6, seed=config.seed,
                              progress=False)
    step(4, f"femur patches: {patches.n_healthy} healthy, {patches.n_lesion} lesion "
            f"(from {patches.n_lesion_boxes} real lesions in train)")

    healthy, lesion, info = load_domains(patches.bone_dir)
    gan = GanConfig(n_blocks=config.n_blocks, ngf=config.filters, ndf=config.filters,
                    iterations=config.iterations, sample_every=500, checkpoint_every=500,
                    seed=config.seed)
    stats = json.loads(patches.stats_path.read_text())
    trained = train_cyclegan(healthy.patches, lesion.patches, gan, out_dir / "gan" / "femur",
                             generator_info={"bone": "femur", "lesion_stats": stats,
                                             "patches": info.get("settings", {})})
    step(5, f"CycleGAN healthy <-> lesion on femur patches: {trained.iterations} iterations, "
            f"{trained.iterations_per_second:.1f} it/s; samples: {trained.samples_path}")

    femur = synthesize(trained.generator_path, split, "femur", out_dir / "synth" / "femur",
                       ratio=config.ratio, seed=config.seed, progress=False)
    step(6, f"{femur.images} synthetic femur radiographs (median seam ratio "
            f"{femur.seam_ratio_median:.2f}); look at {femur.out_dir / 'sheet.png'}")
    tibia = synthesize(trained.generator_path, split, "tibia",
                       out_dir / "synth" / "tibia-from-femur", ratio=config.ratio,
                       seed=config.seed, progress=False)
    step(7, f"transfer: {tibia.images} synthetic tibia radiographs from the femur generator "
            f"(median seam ratio {tibia.seam_ratio_median:.2f}): {tibia.out_dir / 'sheet.png'}")
    augmented = load_manifest(femur.augmented_manifest)
    counts = augmented.table.groupby(["split", "origin"]).size().to_dict()
    step(8, "augmented femur training set: "
            + ", ".join(f"{s or 'unsplit'}/{o}: {n}" for (s, o), n in sorted(counts.items())))
    summary = {"images": len(split), "femur_patches": [patches.n_healthy, patches.n_lesion],
               "gan_iterations": trained.iterations, "synthetic_femur": femur.images,
               "synthetic_tibia_from_femur": tibia.images,
               "seam_ratio_median": [femur.seam_ratio_median, tibia.seam_ratio_median]}
    write_run_json(out_dir, "demo", asdict(config), config.seed, started,
                   extra={"completed": True, "summary": summary})
    say(f"\ndone in {time.time() - started:.0f} s -> {out_dir}. Still to come in boneaug: "
        "lesion classifiers trained on real vs augmented sets, their evaluation on the real "
        "test split, and the report (issue 4).")
    return summary
