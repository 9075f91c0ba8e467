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
from boneaug.data.films import check_negatives_from, normals_of, positives_of
from boneaug.data.imageio import is_dicom, write_png16, write_synthetic_dicom
from boneaug.data.manifest import file_columns, rebase_path
from boneaug.data.skips import MAX_SKIPPED_SHARE, Skips, film_problem
from boneaug.distributed import (
    DEFAULT_THREADS,
    Ranks,
    bf16_is_fast,
    fixed_threads,
    join,
    pick_device,
)
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_not_an_input, check_out_dir, write_json_atomic
from boneaug.gan import from_model_range, load_generator, to_model_range
from boneaug.gan.masks import site_mask, with_mask
from boneaug.patches import bone_region, resize_square, where_bone_lies
from boneaug.patches.location import BoneLocator
from boneaug.runinfo import write_run_json
from boneaug.synth.blend import blend_mask, painted_mask, paste_change, seam_ratio
from boneaug.synth.copypaste import METHOD as COPY_PASTE
from boneaug.synth.copypaste import copy_paste_translator
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


def synthesize(generator: str | Path | None, manifest: Manifest, bone: str,
               out_dir: str | Path, *,
               count: int | None = None, ratio: float | None = None, seed: int = 0,
               batch_size: int = 16, feather: float = 0.25, margin: float = 0.5,
               negatives_from: tuple[str, ...] = (), lesion_stats: str | Path | None = None,
               device: str = "auto", progress: bool = True,
               translator: tuple[torch.nn.Module, dict[str, Any]] | None = None,
               locate: bool = True, copy_paste: str | Path | None = None) -> SynthReport:
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
        copy_paste: instead of a generator, a bone's patch folder (``PATCHES/<bone>``)
            whose real lesion patches are pasted with the same blending (the copy-paste
            baseline; `copy_paste_translator`). Exactly one of `generator` and
            `copy_paste` (or `translator`).
        translator: instead of loading `generator`, a module mapping healthy patches to
            lesion patches (in the generator's [-1, 1] range) and its info (``sha256``,
            ``patch_size``, ``bone``, ``lesion_stats``, ``patches``, ``method``); this is
            how `copy_paste_translator` pastes real lesions with the same blending.
        locate: on a source film without a mask of `bone`, paint only where `bone` lies in
            such films, learned from the real lesions' films (`boneaug.patches.location`):
            a femur lesion goes on a knee film's femur, not its tibia.

    A source film that cannot be used is skipped with its reason (``skipped.csv``) and its
    images go to other sources; the run stops (one line) only when more than half of the
    films tried, or of the images, found nothing usable (`boneaug.data.skips`).
    """
    started = time.time()
    out_dir = Path(out_dir)
    bone = bone.strip().lower()
    ranks = join(device)
    torch_device = pick_device(device, ranks)
    generator, model, info = choose_translator(generator, copy_paste, translator, seed,
                                               torch_device)
    stats_doc, stats_source = lesion_stats_of(info, generator, lesion_stats)
    stats = usable_stats(stats_doc, stats_source)
    generator_bone = str(info.get("bone") or stats_doc.get("bone") or "unknown")
    context = float((info.get("patches") or {}).get("context", DEFAULT_CONTEXT))
    patch_size = int(info["patch_size"])

    table = manifest.table
    name = str(manifest.source or "manifest")
    sources, real_positives = _sources(table, bone, negatives_from, name)
    n_images = _how_many(count, ratio, real_positives, bone, name)
    check_out_dir(out_dir, "synthesize")
    # an earlier synthesis run is replaced whole: never the one this run reads
    check_not_an_input(out_dir, [*manifest.files(), generator], "synthesize")

    # Every image's inputs (source, rng) depend only on its index and the seed, so the
    # result does not depend on the number of ranks or on the batch size.
    order = np.random.default_rng(seed).permutation(len(sources))
    per_source = np.full(len(sources), n_images // len(sources))
    per_source[: n_images % len(sources)] += 1
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
    locator = BoneLocator.from_stats(stats) if locate else None

    staging = out_dir.resolve().parent / f".{out_dir.resolve().name}.synthesize.partial"
    if ranks.rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "images").mkdir(parents=True)
        (staging / "masks").mkdir()
    ranks.barrier()
    try:
        painter = _Painter(manifest, model, torch_device, stats, locator, bone, generator_bone,
                           generator, info, staging, sources, Blend(context, patch_size,
                                                                    feather, margin), seed)
        rows, sheet = painter.paint(mine, batch_size, progress and ranks.rank == 0)
        write_json_atomic(staging / f"rows-{ranks.rank}.json",
                          {"rows": rows, "skipped": painter.skips.rows,
                           "dropped": painter.dropped})
        if ranks.rank == 0 and sheet:
            _write_sheet(staging / "sheet.png", sheet)
        ranks.barrier()
        if ranks.rank == 0:
            report = _finish(staging, out_dir, manifest, ranks.world_size, bone, generator_bone,
                             n_images, {
                                 "generator": str(generator), "generator_sha256": info["sha256"],
                                 "bone": bone, "count": count, "ratio": ratio, "seed": seed,
                                 "batch_size": batch_size, "feather": feather,
                                 "margin": margin, "locate": locator is not None,
                                 "negatives_from": list(negatives_from), "context": context,
                                 "lesion_stats": stats_source, "device": str(torch_device),
                                 "world_size": ranks.world_size, "sources": len(sources),
                             }, started)
        ranks.barrier()
    finally:
        if ranks.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
        if ranks.created:
            torch.distributed.destroy_process_group()
    if ranks.rank != 0:  # rank 0 holds the report; the others say only what they were
        return SynthReport(None, None, None, len(mine), len(sources), generator_bone, bone,
                           float("nan"))
    return report


# --------------------------------------------------------------------------- painting

FALLBACK_TRIES = 8   # other source films tried for an image whose own source failed


@dataclass(frozen=True)
class Blend:
    """How a site's crop is cut, translated and pasted back."""

    context: float     # crop side = longest lesion side x (1 + context)
    patch_size: int    # the generator's patch side, px
    feather: float
    margin: float


class _Painter:
    """Paints the synthetic images of one process: sites, translation, paste, files, rows.

    A source film that cannot be used (unreadable, too small, no bone where the bone lies)
    is recorded in `skips`; its images go to other sources, tried in an order fixed by
    the seed and the image's index, so the result still does not depend on the ranks.
    """

    def __init__(self, manifest: Manifest, model: torch.nn.Module, device: torch.device,
                 stats: list[dict[str, Any]], locator: BoneLocator | None, bone: str,
                 generator_bone: str, generator: Path, info: dict[str, Any], staging: Path,
                 sources: list[int], blend: Blend, seed: int) -> None:
        self.manifest, self.model, self.device = manifest, model, device
        self.stats, self.locator, self.bone = stats, locator, bone
        self.generator_bone, self.generator, self.info = generator_bone, generator, info
        self.staging, self.sources, self.blend, self.seed = staging, sources, blend, seed
        self.method = str(info.get("method", "cyclegan"))
        self.prefix = id_prefix(bone, generator_bone, seed, self.method)
        self.skips = Skips("synthesize")
        self.dropped: list[dict[str, Any]] = []   # images no source could take
        self._films: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}

    def film(self, row_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(image, region of the bone, where lesion centres may go) of a source film, or
        None when it is unusable. The last film is kept: a source's images are adjacent."""
        if row_id in self._films:
            return self._films[row_id]
        row = self.manifest.table.loc[row_id]
        path = self.manifest.resolve(row["path"])
        result: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        try:
            image = read_image(path)
            problem = film_problem(image.shape)
            if problem is None:
                mask, source = bone_region(self.manifest, row.to_dict(), image, self.bone)
                centres = where_bone_lies(image, mask, source, self.locator)
                problem = None if centres.any() else (
                    "no bone found" if not mask.any()
                    else f"no bone where {self.bone} lies in films like it")
                result = (image, mask, centres)
        except BoneaugError as exc:
            problem = str(exc).removeprefix(f"{path}: ")
        if problem is not None:
            self.skips.add(str(row["image_id"]), str(row["path"]), problem)
            result = None
        self._films = {row_id: result}
        return result

    def place(self, index: int, row_id: int) -> tuple[int, Site] | None:
        """The source film and site of image `index`: its own source, else fallbacks."""
        candidates = [row_id] + [self.sources[j] for j in np.random.default_rng(
            [self.seed, index, 1]).permutation(len(self.sources))[:FALLBACK_TRIES]
            if self.sources[j] != row_id]
        for attempt, source in enumerate(candidates):
            film = self.film(source)
            if film is None:
                continue
            key = [self.seed, index] if attempt == 0 else [self.seed, index, 2, attempt]
            try:
                return source, draw_site(film[1], self.stats, self.blend.context,
                                         np.random.default_rng(key), centres=film[2])
            except BoneaugError:
                continue
        return None

    def paint(self, jobs: list[tuple[int, int]], batch_size: int, progress: bool
              ) -> tuple[list[dict[str, Any]], list[list[Image.Image]]]:
        rows: list[dict[str, Any]] = []
        sheet: list[list[Image.Image]] = []
        bar = tqdm(total=len(jobs), desc=f"synthesize {self.bone}", unit="img",
                   file=sys.stderr, disable=not progress or not sys.stderr.isatty())
        for start in range(0, len(jobs), batch_size):
            placed = []
            for index, row_id in jobs[start:start + batch_size]:
                found = self.place(index, row_id)
                if found is None:
                    self.dropped.append({"index": index, "source_row": int(row_id)})
                    continue
                source, site = found
                image = self.film(source)
                assert image is not None
                x0, y0, x1, y1 = site.crop_box
                placed.append((index, source, site, image[0],
                               resize_square(image[0][y0:y1, x0:x1], self.blend.patch_size)))
            if placed:
                masks = np.stack([site_mask(p[2].lesion_box, p[2].crop_box,
                                            self.blend.patch_size) for p in placed])
                translated = translate(self.model, np.stack([p[4] for p in placed]),
                                       self.device, masks)
                for (index, source, site, image, patch), out_patch in zip(
                        placed, translated, strict=True):
                    result, row = self.write(index, source, site, image, patch, out_patch)
                    rows.append(row)
                    if len(sheet) < 8:
                        sheet.append(_sheet_row(image, result, site))
            bar.update(len(jobs[start:start + batch_size]))
        bar.close()
        return rows, sheet

    def write(self, index: int, row_id: int, site: Site, image: np.ndarray, patch: np.ndarray,
              out_patch: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Paste one translated patch, write the image; its manifest row."""
        cx0, cy0, cx1, cy1 = site.crop_box
        lx0, ly0, lx1, ly1 = site.lesion_box
        mask = blend_mask(cy1 - cy0, cx1 - cx0, (lx0 - cx0, ly0 - cy0, lx1 - cx0, ly1 - cy0),
                          margin=self.blend.margin, feather=self.blend.feather)
        result = paste_change(image, site.crop_box, patch, out_patch, mask)
        seam = seam_ratio(result, image, site.crop_box, mask)
        painted, found_by = painted_mask(image, result, site.crop_box, site.lesion_box)
        source = self.manifest.table.loc[row_id]
        source_path = self.manifest.resolve(source["path"])
        image_id = f"{self.prefix}-{index:05d}"
        sha = self.info["sha256"]
        if is_dicom(source_path):
            rel = f"images/{image_id}.dcm"
            write_synthetic_dicom(self.staging / rel, result, source_path,
                                  f"Lesion synthesised at {list(site.lesion_box)} by "
                                  f"{self.method} sha256 {sha[:16]}")
        else:
            rel = f"images/{image_id}.png"
            write_png16(self.staging / rel, result)
        mask_rel = f"masks/{image_id}.png"
        with atomic_path(self.staging / mask_rel) as tmp:
            Image.fromarray(painted.astype(np.uint8) * 255).save(tmp, format="PNG")
        seam_value = round(seam, 4) if np.isfinite(seam) else None
        provenance = {
            "method": self.method, "generator": str(self.generator), "generator_sha256": sha,
            "generator_bone": self.generator_bone, "target_bone": self.bone,
            "source_image_id": str(source["image_id"]), "source_path": str(source_path),
            "lesion_box": list(site.lesion_box), "crop_box": list(site.crop_box),
            "site_from_lesion": site.stat_index, "site_fallback": site.fallback,
            "bone_share_in_box": round(site.bone_share, 3), "seed": self.seed,
            "index": index, "seam_ratio": seam_value, "mask": found_by,
        }
        row = {
            "image_id": image_id, "path": rel,
            "patient_id": str(source["patient_id"]), "bone": self.bone, "label": 1,
            "boxes": [list(site.lesion_box)], "mask_path": mask_rel, "split": "train",
            "origin": "synthetic",
            "provenance": json.dumps(provenance, sort_keys=True),
            "source_image_id": str(source["image_id"]), "generator_bone": self.generator_bone,
            "seam_ratio": seam_value if seam_value is not None else float("nan"),
            # the source's bone mask fits the synthetic image too: a classifier that
            # crops to the bone then crops real and synthetic images alike
            "bone_mask_path": _beside(self.manifest, str(source.get("bone_mask_path", "")),
                                      self.staging),
            "_index": index,
        }
        return result, row


def _sources(table: pd.DataFrame, bone: str, negatives_from: tuple[str, ...], name: str
             ) -> tuple[list, int]:
    """The rows to paint on (real normal train films of `bone` and of `negatives_from`) and
    the number of real positive train films of `bone`."""
    if not (table["split"] != "").any():
        raise BoneaugError(f"{name}: has no split; run `boneaug split` first (synthetic images "
                           "may only come from train images)")
    check_negatives_from(table, negatives_from, name)
    train_real = (table["split"] == "train") & (table["origin"] == "real")
    sources = table.index[train_real & normals_of(table, bone, negatives_from)].tolist()
    if not sources:
        raise BoneaugError(f"{name}: no normal train image of {bone!r} to paint lesions on "
                           f"(bones in train: {', '.join(sorted(set(table['bone'])))}; films "
                           "labelled by region need `boneaug bones` first)")
    return sources, int((train_real & positives_of(table, bone)).sum())


def choose_translator(generator: str | Path | None, copy_paste: str | Path | None,
                translator: tuple[torch.nn.Module, dict[str, Any]] | None, seed: int,
                device: torch.device) -> tuple[Path, torch.nn.Module, dict[str, Any]]:
    """What paints the lesions: the generator file, the real lesions of a patch folder
    (copy-paste), or a given translator; with the path recorded as its source."""
    if translator is None and (generator is None) == (copy_paste is None):
        raise BoneaugError("give exactly one of a generator (--generator) and a patch folder "
                           "to copy-paste from (--copy-paste)")
    if copy_paste is not None:
        translator = copy_paste_translator(copy_paste, seed)
    source = Path(generator if generator is not None else copy_paste or "")
    if translator is None:
        model, info = load_generator(source, device)
        return source, model, info
    return source, translator[0].to(device), translator[1]


@torch.no_grad()
def translate(model: torch.nn.Module, patches: np.ndarray, device: torch.device,
              masks: np.ndarray | None = None, threads: int | None = None,
              bf16: bool | None = None) -> np.ndarray:
    """Healthy -> lesion for a stack of patches `(N, P, P)` in [0, 1]; returns the same shape.

    `masks` `(N, P, P)` in [0, 1]: where each lesion is to be (`boneaug.gan.masks`); a
    mask-conditioned generator needs them and changes each patch only under its mask,
    other translators ignore them.

    The generator runs under bf16 autocast where that is fast (CUDA; CPUs with native
    bf16 convolutions: 1.9x on the development CPU, docs/performance.md); the output is
    returned in float32. The thread count is pinned (`boneaug.distributed.fixed_threads`),
    so that the painted pixels do not depend on it. `threads` and `bf16` override those
    choices (`boneaug.transforms` paints in float32 on one thread per DataLoader worker).
    """
    x = to_model_range(torch.from_numpy(np.ascontiguousarray(patches, np.float32))[:, None])
    if getattr(model, "masked", False):
        if masks is None:
            raise BoneaugError("this generator is mask-conditioned: it needs the lesion "
                               "masks of its patches")
        m = torch.from_numpy(np.ascontiguousarray(masks, np.float32))[:, None]
        x = with_mask(x, to_model_range(m))
    x = x.to(device)
    fast = bf16_is_fast(device) if bf16 is None else bf16
    with fixed_threads(threads or DEFAULT_THREADS), torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=fast):
        y = model(x)
    return from_model_range(y.float()).clamp(0, 1)[:, 0].cpu().numpy()


# --------------------------------------------------------------------------- bookkeeping


def id_prefix(bone: str, generator_bone: str, seed: int, method: str = "cyclegan") -> str:
    """``syn-<bone>[-from-<generator bone>]-s<seed>``: ids never clash across seeds.

    Copy-paste images start with ``cp-`` instead of ``syn-``.
    """
    transfer = "" if generator_bone in (bone, "unknown") else f"-from-{generator_bone}"
    start = "cp" if method == COPY_PASTE else "syn"
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


def lesion_stats_of(info: dict[str, Any], generator: Path, override: str | Path | None
                    ) -> tuple[dict[str, Any], str]:
    """The lesion statistics that place the lesions (a file given, else those the
    generator carries) and where they came from."""
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
            generator_bone: str, wanted: int, config: dict[str, Any], started: float
            ) -> SynthReport:
    rows: list[dict[str, Any]] = []
    skips = Skips("synthesize")
    dropped: list[dict[str, Any]] = []
    for rank in range(world_size):
        part = json.loads((staging / f"rows-{rank}.json").read_text(encoding="utf-8"))
        (staging / f"rows-{rank}.json").unlink()
        rows += part["rows"]
        dropped += part["dropped"]
        for skip in part["skipped"]:
            skips.add(skip["image_id"], skip["path"], skip["reason"])
    rows.sort(key=lambda r: r.pop("_index"))
    skips.rows.sort(key=lambda r: r["image_id"])  # the same file whatever the ranks
    used = {r["source_image_id"] for r in rows}
    skips.check(len(used) + len(skips), f"source films of {bone} tried")
    if len(dropped) > MAX_SKIPPED_SHARE * wanted:
        raise BoneaugError(f"synthesize: {len(dropped)} of {wanted} synthetic {bone} images "
                           f"found no usable source film (more than {MAX_SKIPPED_SHARE:.0%}); "
                           + (skips.summary() or "no lesion site fitted on their bone"))
    warnings = [skips.summary()] if len(skips) else []
    if dropped:
        warnings.append(f"{len(dropped)} of {wanted} images found no usable source film; "
                        f"{len(rows)} made")
    skips.write(staging)
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
                   extra={"images": len(rows), "sources_used": len(used),
                          "skipped_films": len(skips), "dropped_images": len(dropped),
                          "generator_bone": generator_bone,
                          "target_bone": bone, "seam_ratio_median": float(np.median(seams)),
                          "seam_ratio_p90": float(np.percentile(seams, 90))})
    if out_dir.exists():
        shutil.rmtree(out_dir)  # check_out_dir made sure it is empty or our own
    os.replace(staging, out_dir)
    return SynthReport(out_dir, out_dir / "synthetic.csv", out_dir / "augmented.csv", len(rows),
                       len(used), generator_bone, bone, float(np.median(seams)), warnings)


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
