"""Synthesis: paint generated lesions onto normal radiographs of the train split.

For each synthetic image: take a normal (label 0) train radiograph of the target bone,
draw a lesion site on its bone region from the generator bone's real lesion statistics
(`sites.draw_site`), crop the square the generator was trained on, translate it healthy
-> lesion in a batch, add the generator's change back under a smooth mask around the
lesion (`blend.blend_mask`, `blend.paste_change`), and write a new image. Sources are
read, never written. DICOM sources give DICOM outputs marked synthetic; others 16-bit PNG.

Outputs in ``out_dir``: ``images/``, ``synthetic.csv`` (the synthetic rows: origin
synthetic, label 1, split train, the lesion box, provenance), ``augmented.csv`` (the input
manifest plus those rows), ``sheet.png`` (synthetic radiographs and their lesion crops
before and after),
``run.json``. Everything is written into a staging folder beside ``out_dir`` and moved
into place at the end. Under ``torchrun`` the images are shared out across ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from boneaug.data import Manifest, new_table, read_image, save_manifest
from boneaug.data.files import check_out_dir, write_json_atomic
from boneaug.data.imageio import is_dicom, write_png16, write_synthetic_dicom
from boneaug.data.manifest import file_columns, rebase_path
from boneaug.data.runinfo import write_run_json
from boneaug.distributed import Ranks, join, pick_device
from boneaug.errors import BoneaugError
from boneaug.gan import bf16_is_fast, from_model_range, load_generator, to_model_range
from boneaug.patches import bone_region, resize_square
from boneaug.synth.blend import blend_mask, paste_change, seam_ratio
from boneaug.synth.sites import Site, draw_site, usable_stats

DEFAULT_CONTEXT = 0.5   # the patches stage's default margin around a lesion


@dataclass
class SynthReport:
    """What a synthesis run made."""

    out_dir: Path | None          # None on ranks other than 0 under torchrun
    synthetic_manifest: Path | None
    augmented_manifest: Path | None
    images: int
    sources: int
    generator_bone: str
    target_bone: str
    seam_ratio_median: float
    warnings: list[str] = field(default_factory=list)


def synthesize(generator: str | Path, manifest: Manifest, bone: str, out_dir: str | Path, *,
               count: int | None = None, ratio: float | None = None, seed: int = 0,
               batch_size: int = 16, feather: float = 0.25, margin: float = 0.5,
               negatives_from: tuple[str, ...] = (), lesion_stats: str | Path | None = None,
               device: str = "auto", progress: bool = True,
               translator: tuple[torch.nn.Module, dict[str, Any]] | None = None
               ) -> SynthReport:
    """Make `count` synthetic lesion radiographs of `bone` (or `ratio` x real positives).

    Args:
        generator: `generator_healthy_to_lesion.pt` of `boneaug gan train`. A generator of
            another bone transfers: its lesion statistics place the lesions.
        manifest: a split manifest; sources are its real, label-0, train rows of `bone`
            (and of `negatives_from` bones or regions).
        count / ratio: exactly one: the number of images, or that many per real positive
            train image of `bone`.
        lesion_stats: a lesion_stats.json to use instead of the one in the generator.
        feather, margin: the blend (`blend.blend_mask`): the change is added in full over
            the lesion box and fades out `margin` times its half size beyond it.
        device: "auto" (CUDA if present), "cpu" or "cuda".
        translator: instead of loading `generator`, a module mapping healthy patches to
            lesion patches (in the generator's [-1, 1] range) and its info (``sha256``,
            ``patch_size``, ``bone``, ``lesion_stats``, ``patches``, ``method``); this is
            how `copy_paste_translator` pastes real lesions with the same blending.
    """
    started = time.time()
    out_dir = Path(out_dir)
    generator = Path(generator)
    bone = bone.strip().lower()
    ranks = join(device)
    torch_device = pick_device(device, ranks)
    if translator is None:
        model, info = load_generator(generator, torch_device)
    else:
        model, info = translator[0].to(torch_device), translator[1]
    stats_doc, stats_source = _stats(info, generator, lesion_stats)
    stats = usable_stats(stats_doc, stats_source)
    generator_bone = str(info.get("bone") or stats_doc.get("bone") or "unknown")
    context = float((info.get("patches") or {}).get("context", DEFAULT_CONTEXT))
    patch_size = int(info["patch_size"])

    table = manifest.table
    name = str(manifest.source or "manifest")
    if not (table["split"] != "").any():
        raise BoneaugError(f"{name}: has no split; run `boneaug split` first (synthetic images "
                           "may only come from train images)")
    bones = {bone, *negatives_from}
    is_source = ((table["split"] == "train") & (table["origin"] == "real")
                 & (table["label"] == 0) & table["bone"].isin(bones))
    sources = table.index[is_source].tolist()
    if not sources:
        raise BoneaugError(f"{name}: no normal train image of {bone!r} to paint lesions on "
                           f"(bones in train: {', '.join(sorted(set(table['bone'])))})")
    real_positives = int(((table["split"] == "train") & (table["origin"] == "real")
                          & (table["label"] == 1) & (table["bone"] == bone)).sum())
    n_images = _how_many(count, ratio, real_positives, bone, name)
    check_out_dir(out_dir, "synthesize")

    # Every image's inputs (source, rng) depend only on its index and the seed, so the
    # result does not depend on the number of ranks or on the batch size.
    order = np.random.default_rng(seed).permutation(len(sources))
    per_source = np.full(len(sources), n_images // len(sources))
    per_source[: n_images % len(sources)] += 1
    sources_used = int((per_source > 0).sum())
    jobs: list[tuple[int, int]] = []  # (image index, manifest row); a source's jobs adjacent
    for k, position in enumerate(order):
        jobs += [(len(jobs) + j, sources[position]) for j in range(per_source[k])]
    prefix = id_prefix(bone, generator_bone, seed, info.get("method", "cyclegan"))
    clash = sorted(set(table["image_id"]) & {f"{prefix}-{i:05d}" for i, _ in jobs})
    if clash:
        raise BoneaugError(f"{name}: already has synthetic image {clash[0]} (and "
                           f"{len(clash) - 1} more) of this bone and seed; use another --seed "
                           "to add more")
    mine = [job for job in jobs if _owner(job[1], ranks) == ranks.rank]

    staging = out_dir.resolve().parent / f".{out_dir.resolve().name}.synthesize.partial"
    if ranks.rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "images").mkdir(parents=True)
    ranks.barrier()
    try:
        rows, sheet = _paint(mine, manifest, model, torch_device, stats, context, patch_size,
                             batch_size, feather, margin, seed, staging, bone, generator_bone,
                             generator, info, progress and ranks.rank == 0)
        write_json_atomic(staging / f"rows-{ranks.rank}.json", rows)
        if ranks.rank == 0 and sheet:
            _write_sheet(staging / "sheet.png", sheet)
        ranks.barrier()
        if ranks.rank == 0:
            report = _finish(staging, out_dir, manifest, ranks.world_size, bone, generator_bone,
                             sources_used, {
                                 "generator": str(generator), "generator_sha256": info["sha256"],
                                 "bone": bone, "count": count, "ratio": ratio, "seed": seed,
                                 "batch_size": batch_size, "feather": feather,
                                 "margin": margin,
                                 "negatives_from": list(negatives_from), "context": context,
                                 "lesion_stats": stats_source, "device": str(torch_device),
                                 "world_size": ranks.world_size,
                             }, started)
        ranks.barrier()
    finally:
        if ranks.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
        if ranks.created:
            torch.distributed.destroy_process_group()
    if ranks.rank != 0:  # rank 0 holds the report; the others say only what they were
        return SynthReport(None, None, None, len(mine), sources_used, generator_bone, bone,
                           float("nan"))
    return report


# --------------------------------------------------------------------------- painting


def _paint(jobs: list[tuple[int, int]], manifest: Manifest, model: torch.nn.Module,
           device: torch.device, stats: list[dict[str, Any]], context: float, patch_size: int,
           batch_size: int, feather: float, margin: float, seed: int, staging: Path,
           bone: str, generator_bone: str, generator: Path, info: dict[str, Any], progress: bool
           ) -> tuple[list[dict[str, Any]], list[list[Image.Image]]]:
    table = manifest.table
    rows: list[dict[str, Any]] = []
    sheet: list[list[Image.Image]] = []
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    bar = tqdm(total=len(jobs), desc=f"synthesize {bone}", unit="img", file=sys.stderr,
               disable=not progress or not sys.stderr.isatty())
    prefix = id_prefix(bone, generator_bone, seed, info.get("method", "cyclegan"))
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        sites: list[Site] = []
        patches = []
        # A source's jobs are adjacent: keep the last source (it may go on in this batch)
        # and every source of this batch, so each image is read once.
        cache = {row_id: cache[row_id] for row_id in list(cache)[-1:]}
        for index, row_id in batch:
            if row_id not in cache:
                row = table.loc[row_id]
                image = read_image(manifest.resolve(row["path"]))
                mask, _ = bone_region(manifest, row.to_dict(), image)
                cache[row_id] = (image, mask)
            image, mask = cache[row_id]
            rng = np.random.default_rng([seed, index])
            try:
                site = draw_site(mask, stats, context, rng)
            except BoneaugError as exc:
                raise BoneaugError(f"{manifest.resolve(table.at[row_id, 'path'])}: {exc}") from None
            x0, y0, x1, y1 = site.crop_box
            sites.append(site)
            patches.append(resize_square(image[y0:y1, x0:x1], patch_size))
        translated = translate(model, np.stack(patches), device)
        for (index, row_id), site, patch, out_patch in zip(batch, sites, patches, translated,
                                                            strict=True):
            image, _ = cache[row_id]
            cx0, cy0, cx1, cy1 = site.crop_box
            lx0, ly0, lx1, ly1 = site.lesion_box
            mask = blend_mask(cy1 - cy0, cx1 - cx0, (lx0 - cx0, ly0 - cy0, lx1 - cx0, ly1 - cy0),
                              margin=margin, feather=feather)
            result = paste_change(image, site.crop_box, patch, out_patch, mask)
            seam = seam_ratio(result, image, site.crop_box, mask)
            source = table.loc[row_id]
            source_path = manifest.resolve(source["path"])
            image_id = f"{prefix}-{index:05d}"
            if is_dicom(source_path):
                rel = f"images/{image_id}.dcm"
                write_synthetic_dicom(staging / rel, result, source_path,
                                      f"Lesion synthesised at {list(site.lesion_box)} by "
                                      f"{info.get('method', 'cyclegan')} sha256 "
                                      f"{info['sha256'][:16]}")
            else:
                rel = f"images/{image_id}.png"
                write_png16(staging / rel, result)
            provenance = {
                "method": info.get("method", "cyclegan"),
                "generator": str(generator), "generator_sha256": info["sha256"],
                "generator_bone": generator_bone, "target_bone": bone,
                "source_image_id": str(source["image_id"]), "source_path": str(source_path),
                "lesion_box": list(site.lesion_box), "crop_box": list(site.crop_box),
                "site_from_lesion": site.stat_index, "site_fallback": site.fallback,
                "bone_share_in_box": round(site.bone_share, 3),
                "seed": seed, "index": index,
                "seam_ratio": round(seam, 4) if np.isfinite(seam) else None,
            }
            rows.append({
                "image_id": image_id, "path": rel,
                "patient_id": str(source["patient_id"]), "bone": bone, "label": 1,
                "boxes": [list(site.lesion_box)], "split": "train", "origin": "synthetic",
                "provenance": json.dumps(provenance, sort_keys=True),
                "source_image_id": str(source["image_id"]), "generator_bone": generator_bone,
                "seam_ratio": round(seam, 4) if np.isfinite(seam) else float("nan"),
                # the source's bone mask fits the synthetic image too: a classifier that
                # crops to the bone then crops real and synthetic images alike
                "bone_mask_path": _beside(manifest, str(source.get("bone_mask_path", "")),
                                          staging),
                "_index": index,
            })
            if len(sheet) < 8:
                sheet.append(_sheet_row(image, result, site))
        bar.update(len(batch))
    bar.close()
    return rows, sheet


@torch.no_grad()
def translate(model: torch.nn.Module, patches: np.ndarray, device: torch.device) -> np.ndarray:
    """Healthy -> lesion for a stack of patches `(N, P, P)` in [0, 1]; returns the same shape.

    The generator runs under bf16 autocast where that is fast (CUDA; CPUs with native
    bf16 convolutions: 1.9x on the development CPU, docs/performance.md); the output is
    returned in float32.
    """
    x = to_model_range(torch.from_numpy(np.ascontiguousarray(patches, np.float32))[:, None])
    x = x.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16_is_fast(device)):
        y = model(x)
    return from_model_range(y.float()).clamp(0, 1)[:, 0].cpu().numpy()


# --------------------------------------------------------------------------- bookkeeping


def id_prefix(bone: str, generator_bone: str, seed: int, method: str = "cyclegan") -> str:
    """``syn-<bone>[-from-<generator bone>]-s<seed>``: ids never clash across seeds.

    Copy-paste images start with ``cp-`` instead of ``syn-``.
    """
    transfer = "" if generator_bone in (bone, "unknown") else f"-from-{generator_bone}"
    start = "cp" if method == "copypaste" else "syn"
    return f"{start}-{bone}{transfer}-s{seed}"


def _beside(manifest: Manifest, mask_path: str, staging: Path) -> str:
    """A source file path rewritten relative to the staging folder, which is a sibling of
    (so at the same depth as) the output folder it becomes."""
    if not mask_path:
        return ""
    return os.path.relpath(manifest.resolve(mask_path).resolve(), staging.resolve())


def _how_many(count: int | None, ratio: float | None, real_positives: int, bone: str,
              name: str) -> int:
    if (count is None) == (ratio is None):
        raise BoneaugError("give exactly one of --count and --ratio")
    if count is not None:
        if count < 1:
            raise BoneaugError(f"--count must be at least 1, got {count}")
        return int(count)
    assert ratio is not None
    if ratio <= 0:
        raise BoneaugError(f"--ratio must be positive, got {ratio}")
    if real_positives == 0:
        raise BoneaugError(f"{name}: no real positive train image of {bone!r}, so --ratio "
                           "has nothing to multiply; use --count")
    return max(1, int(round(ratio * real_positives)))


def _stats(info: dict[str, Any], generator: Path, override: str | Path | None
           ) -> tuple[dict[str, Any], str]:
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise BoneaugError(f"{path}: no such lesion statistics file")
        try:
            return json.loads(path.read_text(encoding="utf-8")), str(path)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BoneaugError(f"{path}: not valid JSON ({exc})") from None
    embedded = info.get("lesion_stats")
    if not isinstance(embedded, dict):
        raise BoneaugError(f"{generator}: the generator carries no lesion statistics; pass "
                           "--lesion-stats <patches>/<bone>/lesion_stats.json")
    return embedded, f"{generator} (embedded)"


def _finish(staging: Path, out_dir: Path, manifest: Manifest, world_size: int, bone: str,
            generator_bone: str, n_sources: int, config: dict[str, Any], started: float
            ) -> SynthReport:
    rows: list[dict[str, Any]] = []
    for rank in range(world_size):
        rows += json.loads((staging / f"rows-{rank}.json").read_text(encoding="utf-8"))
        (staging / f"rows-{rank}.json").unlink()
    rows.sort(key=lambda r: r.pop("_index"))
    staging = staging.resolve()
    synthetic = Manifest(new_table(rows), root=staging)
    save_manifest(synthetic, staging / "synthetic.csv")  # paths now relative: images/...
    # augmented.csv will live in out_dir, a sibling of the staging folder: the real rows'
    # paths are written relative to out_dir, and the synthetic ones are already.
    real = Manifest(manifest.table.copy(), root=manifest.root)
    real_table = real.table
    final = out_dir.resolve()
    for column in file_columns(real_table):
        real_table[column] = [rebase_path(v, manifest.root, final) for v in real_table[column]]
    combined = pd.concat([real_table, synthetic.table], ignore_index=True).fillna("")
    save_manifest(Manifest(combined, root=staging), staging / "augmented.csv")
    seams = [r["seam_ratio"] for r in rows if np.isfinite(r["seam_ratio"])] or [float("nan")]
    write_run_json(staging, "synthesize", config, config["seed"], started,
                   extra={"images": len(rows), "generator_bone": generator_bone,
                          "target_bone": bone, "seam_ratio_median": float(np.median(seams)),
                          "seam_ratio_p90": float(np.percentile(seams, 90))})
    if out_dir.exists():
        shutil.rmtree(out_dir)  # check_out_dir made sure it is empty or our own
    os.replace(staging, out_dir)
    return SynthReport(out_dir, out_dir / "synthetic.csv", out_dir / "augmented.csv", len(rows),
                       n_sources, generator_bone, bone, float(np.median(seams)))


SHEET_SIDE = 192


def _tile(img: np.ndarray, width: int, height: int) -> Image.Image:
    gray = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return gray.resize((width, height), Image.Resampling.BICUBIC).convert("RGB")


def _sheet_row(source: np.ndarray, result: np.ndarray, site: Site) -> list[Image.Image]:
    """One row of the sheet, made at once so that no full-size image is kept for it: the
    synthetic radiograph (lesion box outlined), then the crop before and after, enlarged."""
    scale = SHEET_SIDE / max(source.shape)
    whole = _tile(result, int(source.shape[1] * scale), int(source.shape[0] * scale))
    x0, y0, x1, y1 = (v * scale for v in site.lesion_box)
    ImageDraw.Draw(whole).rectangle([x0 - 2, y0 - 2, x1 + 2, y1 + 2], outline=(255, 80, 80))
    cx0, cy0, cx1, cy1 = site.crop_box
    return [whole] + [_tile(img[cy0:cy1, cx0:cx1], SHEET_SIDE, SHEET_SIDE)
                      for img in (source, result)]


def _write_sheet(path: Path, rows: list[list[Image.Image]]) -> None:
    gap = 6
    sheet = Image.new("RGB", (3 * SHEET_SIDE + 2 * gap, len(rows) * (SHEET_SIDE + gap)),
                      (20, 20, 20))
    for i, tiles in enumerate(rows):
        for j, tile in enumerate(tiles):
            sheet.paste(tile, (j * (SHEET_SIDE + gap), i * (SHEET_SIDE + gap)))
    sheet.save(path)


# --------------------------------------------------------------------------- ranks


def _owner(row_id: int, ranks: Ranks) -> int:
    """Jobs of one source stay on one rank, so each rank reads each of its sources once."""
    return int(row_id) % ranks.world_size
