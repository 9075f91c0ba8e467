"""The mixed phantom data set: which films are rendered, their manifest rows, the sheet.

Per bone in ``config.bones``: ``config.lesion`` lesion films of that bone (its film
kinds, `phantom_films.LESION_FILMS`) and ``config.normal`` normal films of its limb
region (all of the region's kinds). Per region: ``config.awkward`` awkward normal films
(blank, nothing but marks and text, inverted, in turn). Each film's generator comes from
(seed, group, label, index) as in single mode, so adding films never changes earlier
ones. Labels are written the way real sets label films: a positive names its lesion bone
and its sites; a normal names only its region, except a share ``labelled_normals`` that
keep their main bone. The truth is always written beside: ``true_bone``, ``true_bones``,
``film``, one mask per visible bone.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from boneaug.data.imageio import write_png16
from boneaug.data.phantom_films import BONE_REGION, FILM_KINDS
from boneaug.data.phantom_mixed import FilmImage, render_film
from boneaug.data.phantom_style import AWKWARD, sample_spec
from boneaug.files import atomic_path

if TYPE_CHECKING:
    from boneaug.data.phantom import PhantomConfig

# Every bone a mixed film can show, in the order of the manifest's mask columns.
MASK_BONES = ("femur", "tibia", "fibula", "patella", "pelvis", "humerus", "scapula",
              "clavicle", "radius", "ulna", "foot")
_EXTRA_SITE_SHARE = 0.15


@dataclass(frozen=True)
class Job:
    """One film to render: a lesion film of bone `group` (label 1), or a normal film of
    region `group` (label 0), awkward or not; `index` counts within its kind of job."""

    group: str
    label: int
    awkward: bool
    index: int

    @property
    def image_id(self) -> str:
        what = "lesion" if self.label else ("awkward" if self.awkward else "normal")
        return f"{self.group}-{what}-{self.index:04d}"

    def rng(self, seed: int) -> np.random.Generator:
        from boneaug.data.phantom import image_rng

        # Keys distinct from single mode's, so the two modes' films are unrelated.
        stream = f"mixed/{self.group}" + ("/awkward" if self.awkward else "")
        return image_rng(seed, stream, self.label, self.index)


def regions_of(bones: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(BONE_REGION[bone] for bone in bones))


def mixed_jobs(config: PhantomConfig) -> list[Job]:
    jobs = [Job(bone, 1, False, i) for bone in config.bones for i in range(config.lesion)]
    for region in regions_of(config.bones):
        share = sum(BONE_REGION[bone] == region for bone in config.bones)
        jobs += [Job(region, 0, False, i) for i in range(config.normal * share)]
    for region in regions_of(config.bones):
        jobs += [Job(region, 0, True, i) for i in range(config.awkward)]
    return jobs


def render_job(job: Job, config: PhantomConfig) -> tuple[FilmImage, dict[str, str]]:
    """Render one job's film; its labels (bone, region, sites) as real data carry them."""
    spec_rng, film_rng = job.rng(config.seed).spawn(2)
    awkward = AWKWARD[job.index % len(AWKWARD)] if job.awkward else ""
    spec, uniform = sample_spec(job.group, job.label, awkward, config.confound, spec_rng)
    film = render_film(spec, config.size, config.difficulty, film_rng, config.distractors)
    kind = FILM_KINDS.get(spec.kind)
    if job.label:
        region, bone, sites = BONE_REGION[job.group], job.group, [job.group]
        if kind is not None and kind.extra_sites and uniform < _EXTRA_SITE_SHARE:
            sites.append(kind.extra_sites[int(uniform / _EXTRA_SITE_SHARE
                                              * len(kind.extra_sites))])
    else:
        region, sites = job.group, []
        labelled = kind is not None and not awkward and uniform < config.labelled_normals
        bone = kind.main_bone if labelled and kind is not None else region
    return film, {"bone": bone, "region": region, "sites": ";".join(sites),
                  "true_bone": kind.main_bone if kind is not None else ""}


def iterate_films(config: PhantomConfig) -> Iterator[tuple[Job, FilmImage, dict[str, str]]]:
    """Every job of `config` rendered in order, with a progress bar on a terminal."""
    from tqdm import tqdm

    jobs = mixed_jobs(config)
    bar = tqdm(jobs, desc="phantom", unit="img", file=sys.stderr,
               disable=not sys.stderr.isatty() or len(jobs) < 50)
    for job in bar:
        film, labels = render_job(job, config)
        yield job, film, labels


def write_masks(root: Path, folder: str, stem: str, film: FilmImage) -> dict[str, str]:
    """Write a film's masks under ``root/folder``; their paths relative to `root`.

    Keys: ``<bone>_mask_path`` per bone of `MASK_BONES` (empty when not visible),
    ``bone_mask_path`` (the main bone's, or the joint's for ankle and elbow films; empty
    without anatomy) and ``mask_path`` (the lesion's, empty for normals).
    """
    from boneaug.data.phantom import write_mask

    paths = {f"{bone}_mask_path": "" for bone in MASK_BONES}
    for bone, mask in film.masks.items():
        paths[f"{bone}_mask_path"] = f"{folder}/{stem}_{bone}.png"
        write_mask(root / paths[f"{bone}_mask_path"], mask)
    main = FILM_KINDS[film.spec.kind].main_bone if film.spec.kind in FILM_KINDS else ""
    paths["bone_mask_path"] = paths.get(f"{main}_mask_path", "")
    if main and not paths["bone_mask_path"] and film.main_mask.any():
        paths["bone_mask_path"] = f"{folder}/{stem}_bone.png"
        write_mask(root / paths["bone_mask_path"], film.main_mask)
    paths["mask_path"] = ""
    if film.spec.lesion:
        paths["mask_path"] = f"{folder}/{stem}_lesion.png"
        write_mask(root / paths["mask_path"], film.lesion_mask)
    return paths


def truth_columns(film: FilmImage) -> dict[str, Any]:
    """What a film really shows, for scoring: film kind, view, visible bones, lesion."""
    spec = film.spec
    return {"film": spec.kind, "view": spec.view, "age": str(spec.age), "sex": spec.sex,
            "center": str(spec.center), "true_bones": ";".join(film.masks),
            "lesion_bone": film.lesion_bone, "lesion_type": film.lesion_type,
            "awkward": spec.awkward, "text": " | ".join(film.words)}


def render_mixed_set(root: Path, config: PhantomConfig) -> tuple[list[dict], dict]:
    """Render the mixed set into `root` (images/, masks/, sheet.png); rows and stats."""
    from boneaug.data.phantom import quantiles

    rows: list[dict] = []
    sides: dict[str, list[float]] = {bone: [] for bone in config.bones}
    kinds: dict[str, int] = {}
    sheet: list[FilmImage] = []
    for job, film, labels in iterate_films(config):
        image_id = job.image_id
        write_png16(root / "images" / f"{image_id}.png", film.image)
        row: dict[str, Any] = {
            "image_id": image_id, "path": f"images/{image_id}.png", "patient_id": image_id,
            "bone": labels["bone"], "label": job.label, "boxes": film.boxes, "origin": "real",
            "difficulty": f"{config.difficulty:g}", "phantom_seed": str(config.seed),
            "region": labels["region"], "sites": labels["sites"],
            "true_bone": labels["true_bone"], **truth_columns(film),
        }
        row.update(write_masks(root, "masks", image_id, film))
        rows.append(row)
        kinds[film.spec.kind] = kinds.get(film.spec.kind, 0) + 1
        for x0, y0, x1, y1 in film.boxes:
            sides[job.group].append(math.sqrt((x1 - x0) * (y1 - y0)) / config.size)
        sheet.append(film)
        sheet = _sheet_pick(sheet)
    write_sheet(root / "sheet.png", sheet)
    stats = {"lesion_box_side": {bone: quantiles(v) for bone, v in sides.items() if v},
             "films": kinds}
    return rows, stats


_SHEET_ROWS = (*FILM_KINDS, "awkward")
_SHEET_COLS = 6


def _sheet_row(film: FilmImage) -> str:
    return "awkward" if film.spec.awkward else film.spec.kind


def _sheet_pick(films: list[FilmImage]) -> list[FilmImage]:
    """Keep a varied handful per sheet row: lesion and normal, frontal and lateral."""
    kept: list[FilmImage] = []
    for row in _SHEET_ROWS:
        group = [f for f in films if _sheet_row(f) == row]
        seen: set[tuple] = set()
        chosen: list[FilmImage] = []
        for film in group:  # first one of each (lesion, view, awkward), then the rest
            key = (film.spec.lesion, film.spec.view, film.spec.awkward)
            if key not in seen:
                seen.add(key)
                chosen.append(film)
        chosen += [f for f in group if all(f is not g for g in chosen)]
        kept += chosen[:_SHEET_COLS]
    return kept


def write_sheet(path: Path, films: list[FilmImage], tile: int = 160) -> None:
    """A contact sheet: a row per film kind (and one of awkward films), each film
    captioned with view, sex, age and centre; lesion boxes outlined in red."""
    rows = [r for r in _SHEET_ROWS if any(_sheet_row(f) == r for f in films)]
    label_w, caption = 96, 14
    sheet = Image.new("RGB", (label_w + _SHEET_COLS * (tile + 4),
                              max(len(rows), 1) * (tile + caption + 6)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, name in enumerate(rows):
        top = r * (tile + caption + 6) + 3
        draw.text((6, top + tile // 2 - 6), name, fill=(230, 230, 230))
        for c, film in enumerate([f for f in films if _sheet_row(f) == name]):
            left = label_w + c * (tile + 4) + 2
            grey = Image.fromarray(np.round(film.image * 255).astype(np.uint8), mode="L")
            sheet.paste(grey.resize((tile, tile), Image.Resampling.BILINEAR).convert("RGB"),
                        (left, top))
            scale = tile / film.image.shape[1]
            for x0, y0, x1, y1 in film.boxes:
                draw.rectangle([left + x0 * scale - 1, top + y0 * scale - 1,
                                left + x1 * scale, top + y1 * scale], outline=(255, 60, 60))
            spec = film.spec
            words = [spec.awkward or "", "AP" if spec.view == "frontal" else "LAT",
                     f"{spec.sex}{spec.age}", f"c{spec.center}",
                     f"{film.lesion_type}" if spec.lesion else "normal"]
            draw.text((left, top + tile + 1), " ".join(w for w in words if w),
                      fill=(200, 200, 200))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
