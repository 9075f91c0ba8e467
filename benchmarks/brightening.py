"""Where do a run's generators brighten instead of darken? (issue 12: the brightening)

    .venv/bin/python benchmarks/brightening.py runs/phantom-full-clean

Per bone, each synthetic lesion of the own generator (``synth/gan/<bone>-s0``) with the
signed mean change inside its box (``lesion_change``: > 0 brighter than the source film),
split by what the site was: the source film's mean grey value in the box (terciles), the
bone's share of the box (``bone_share_in_box``), the box's size, and which real training
lesion's box the site was copied from (``site_from_lesion``). A share of brightened lesions
that follows the site says the data of the site decide it; one that follows the template
lesion says the generator learned something from that lesion's patches.

Then, on the patch level, the generator translates the bone's own healthy patches
(``patches/<bone>``): the mean change in the central third, by tercile of the patch's
central grey value, beside how dark the real lesion patches' centres are. Inference only
(seconds on a CPU).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from boneaug.data import load_manifest, read_image
from boneaug.experiment.protocol import lesion_change
from boneaug.gan import load_generator
from boneaug.gan.masks import patch_masks
from boneaug.patches import load_domains
from boneaug.synth.synthesize import translate


def film_table(folder: Path) -> pd.DataFrame:
    """One row per synthetic lesion: its signed change and what its site was."""
    manifest = load_manifest(folder / "synthetic.csv")
    rows = []
    for row in manifest.table.itertuples():
        provenance = json.loads(row.provenance)
        image = read_image(manifest.resolve(row.path))
        source = read_image(Path(provenance["source_path"]))
        x0, y0, x1, y1 = (int(round(v)) for v in provenance["lesion_box"])
        _, signed = lesion_change(image, source, provenance["lesion_box"])
        rows.append({"signed": signed, "source_mean": float(source[y0:y1, x0:x1].mean()),
                     "bone_share": float(provenance.get("bone_share_in_box", np.nan)),
                     "side": float(np.sqrt((x1 - x0) * (y1 - y0)) / image.shape[0]),
                     "template": provenance.get("site_from_lesion")})
    return pd.DataFrame(rows)


def by_tercile(table: pd.DataFrame, column: str) -> str:
    """'brighter share (n)' per tercile of `column`, low to high."""
    bins = pd.qcut(table[column], 3, duplicates="drop")
    parts = [f"{100 * (g['signed'] > 0).mean():.0f} % of {len(g)}"
             for _, g in table.groupby(bins, observed=True)]
    return " / ".join(parts)


def patch_level(run: Path, bone: str) -> str:
    """The generator on the bone's healthy patches: mean central change per tercile of
    the patch's central grey value, and the real lesion patches' centres beside."""
    healthy, lesion, _ = load_domains(run / "patches" / bone)
    generator, _ = load_generator(run / "gan" / bone / "generator_healthy_to_lesion.pt")
    patches = healthy.patches[:400]
    masks = None
    if getattr(generator, "masked", False):  # each healthy patch gets a real lesion's mask
        lesion_masks = patch_masks(lesion.index, lesion.size)
        pick = np.random.default_rng(0).integers(0, len(lesion_masks), len(patches))
        masks = lesion_masks[pick]
    out = translate(generator, patches, torch.device("cpu"), masks=masks, threads=1)
    size = patches.shape[-1]
    c = slice(size // 3, size - size // 3)
    before = patches[:, c, c].mean((1, 2))
    change = (out[:, c, c] - patches[:, c, c]).mean((1, 2))
    frame = pd.DataFrame({"before": before, "change": change})
    bins = pd.qcut(frame["before"], 3)
    parts = [f"{g['change'].mean():+.3f} ({100 * (g['change'] > 0).mean():.0f} % up; "
             f"centre {g['before'].mean():.2f})"
             for _, g in frame.groupby(bins, observed=True)]
    lesion_centre = float(lesion.patches[:, c, c].mean())
    healthy_centre = float(before.mean())
    return (" / ".join(parts) + f"; healthy centres {healthy_centre:.2f}, real lesion "
            f"centres {lesion_centre:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    bones = sorted(p.name for p in (args.run / "patches").iterdir() if p.is_dir())
    print("| bone | brighter | by source grey in box (dark → light) | by bone share of box "
          "| by box side | by template lesion (brighter share, n) |")
    print("|---|---|---|---|---|---|")
    for bone in bones:
        table = film_table(args.run / "synth" / "gan" / f"{bone}-s0")
        templates = ", ".join(
            f"{k}: {100 * (g['signed'] > 0).mean():.0f} % ({len(g)})"
            for k, g in table.groupby("template"))
        print(f"| {bone} | {100 * (table['signed'] > 0).mean():.0f} % of {len(table)} "
              f"| {by_tercile(table, 'source_mean')} | {by_tercile(table, 'bone_share')} "
              f"| {by_tercile(table, 'side')} | {templates} |")
    print()
    print("| bone | healthy patches translated: central change by tercile of central grey "
          "(dark → light) |")
    print("|---|---|")
    for bone in bones:
        print(f"| {bone} | {patch_level(args.run, bone)} |")


if __name__ == "__main__":
    main()
