"""Region-level lesion classification: lesion and healthy regions of the same films.

A film-level classifier can tell a bone's lesion films from its normal films by how the
films differ (anatomy, view, centre, exposure) without seeing a lesion. Here the
classifier sees square *regions* at the lesion scale instead, and the healthy regions
come from the lesion films too: the same film, the same style, only the lesion differs.

- A **lesion region** (label 1) holds a lesion box in its middle; its side is
  ``max(min_side, context x the box's longest side)`` film pixels, at most the film's
  shorter side, and at least one pixel more than the box (it always holds the whole box).
  Where it would leave the film it is moved in: healthy regions always lie inside the
  film, so a mirrored border must not tell the two kinds apart.
- A **healthy region** (label 0) is centred on bone (`boneaug.patches.bone_region`)
  where the bone's lesions lie in films like this one (`where_bone_lies`, and the same
  locator on films with a mask of the bone: lesions sit at some places of a bone, the
  metaphyses, and healthy regions drawn anywhere on it differ from lesion regions by
  site); it copies one of the bone's train lesion regions: its side is a shorter film side
  times that region's relative side, and it holds that region's share of bone within
  0.1 (`SHARE_TOLERANCE`; with sides given by the caller, at least `min_bone`). It
  overlaps no lesion box of its film. Each film, normal or with a lesion, gives up to
  `healthy_per_film` of them. Matched so, a lesion-blind probe of the regions finds
  neither site, scale nor amount of bone to tell them apart by.

Every region is resized to ``size`` x ``size``. Region ids are ``<image_id>#L<k>`` (the
k-th lesion box) and ``<image_id>#H<k>``; a region's group is its film's patient.

The regions of a film depend on nothing but that film, the settings and a seed: the
healthy sites come from a generator seeded by (seed, the film's id), the sides and the
bone's place from the real train lesion films of the bone alone. So the test regions
(drawn with `EVAL_SEED`) are the same for every strategy and every training seed.

`classify_regions` trains one strategy's classifier on regions and writes what
`boneaug.classify.run.classify` writes; a prediction is a region (``image_id`` is the
region id, ``film_id`` its film).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from boneaug.classify.run import ClassifyReport, score_metrics
from boneaug.classify.strategies import BY_NAME, select
from boneaug.classify.train import ClassifierConfig, TrainingSet, predict, train_classifier
from boneaug.config import build_config, check_number
from boneaug.data import Manifest
from boneaug.data.films import positives_of
from boneaug.data.skips import Skips
from boneaug.errors import BoneaugError
from boneaug.files import atomic_path, check_not_an_input, check_out_dir, write_json_atomic
from boneaug.patches import (
    bone_region,
    crop_reflect,
    draw_healthy_crops,
    read_film,
    resize_square,
    square_box,
    where_bone_lies,
)
from boneaug.patches.extract import TRIES_PER_PATCH
from boneaug.patches.location import THUMB, BoneLocator, film_thumbnail
from boneaug.runinfo import write_run_json

EVAL_SEED = 0          # the val and test regions: one draw for every strategy and seed
HEALTHY_TRIES = 4 * TRIES_PER_PATCH  # lesion films leave healthy regions less room
CACHE_VERSION = 3      # bump when the regions of the same inputs change


@dataclass
class RegionConfig:
    """How regions are cut (see the module doc)."""

    size: int = 32              # classifier input side, px
    context: float = 1.5        # lesion region side = context x longest lesion-box side
    min_side: int = 16          # px in the film: the smallest region side
    healthy_per_film: int = 2
    min_bone: float = 0.3       # the least share of a healthy region that is bone
    # the region classifiers' budget in epochs, when it is to differ from the classifier's
    # (`classifier.epochs` is then the image level's alone); None: the classifier's
    epochs: int | None = None
    # the region classifiers' members (`classifier.members`), when they are to differ
    members: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "regions") -> RegionConfig:
        return build_config(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        """The settings; `epochs` only when set (runs from before it existed keep their
        records and stage keys)."""
        values = asdict(self)
        for key in ("epochs", "members"):
            if values[key] is None:
                del values[key]
        return values

    def cut_settings(self) -> dict[str, Any]:
        """How regions (and tiles) are cut: the settings without the training budget."""
        values = self.to_dict()
        values.pop("epochs", None)
        values.pop("members", None)
        return values

    def classifier(self, config: ClassifierConfig) -> ClassifierConfig:
        """The classifier settings of a region classifier: `config` at the region size,
        square, with the regions' own budget when they have one."""
        return dataclasses.replace(config, size=self.size, aspect=1.0,
                                   epochs=self.epochs or config.epochs,
                                   members=self.members or config.members)

    def validate(self, where: str = "regions") -> None:
        # the classifier's smallest input; the region must hold its box; one negative a film
        for key, lowest in (("size", 32), ("min_side", 2), ("healthy_per_film", 1)):
            check_number(where, key, getattr(self, key), lowest, integer=True)
        check_number(where, "context", self.context, 1)
        check_number(where, "min_bone", self.min_bone, 0, 1)
        if self.epochs is not None:
            check_number(where, "epochs", self.epochs, 1, integer=True)
        if self.members is not None:
            check_number(where, "members", self.members, 1, 64, integer=True)


@dataclass
class RegionSet:
    """Regions of some films.

    `inputs` `(N, size, size)` float32 in [0, 1], `labels` `(N,)` int64 (1: lesion).
    `boxes[i]`: a lesion region's lesion box ``[x0, y0, x1, y1]`` in its input's pixels,
    ``[]`` for a healthy region. `skipped`: (image_id, reason) of the films that gave no
    region. `crops[i]`: the region's square ``[x0, y0, x1, y1]`` in its film's pixels
    (ends exclusive; a lesion region's may leave the film, which is then mirrored).
    """

    inputs: np.ndarray
    labels: np.ndarray
    ids: list[str]
    image_ids: list[str]
    groups: list[str]
    boxes: list[list[float]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    crops: list[list[int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls, size: int) -> RegionSet:
        return cls(np.zeros((0, size, size), np.float32), np.zeros(0, np.int64), [], [], [],
                   [])

    def joined(self, other: RegionSet) -> RegionSet:
        return RegionSet(np.concatenate([self.inputs, other.inputs]),
                         np.concatenate([self.labels, other.labels]),
                         self.ids + other.ids, self.image_ids + other.image_ids,
                         self.groups + other.groups, self.boxes + other.boxes,
                         self.skipped + other.skipped, self.crops + other.crops)

    def to_arrays(self) -> dict[str, np.ndarray]:
        text = json.dumps({"ids": self.ids, "image_ids": self.image_ids, "groups": self.groups,
                           "boxes": self.boxes, "skipped": self.skipped,
                           "crops": self.crops})
        return {"inputs": self.inputs, "labels": self.labels, "text": np.array(text)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RegionSet:
        text = json.loads(str(arrays["text"]))
        return cls(arrays["inputs"].astype(np.float32, copy=False),
                   arrays["labels"].astype(np.int64, copy=False), text["ids"],
                   text["image_ids"], text["groups"], text["boxes"],
                   [(str(a), str(b)) for a, b in text["skipped"]], text["crops"])


# --------------------------------------------------------------------------- where, how big


class _Sites:
    """A bone's lesion scale and place, from its real train lesion films alone: the
    relative sides of their lesion regions and the share of bone in each (a healthy region
    draws its side and its bone share from one of them), and a locator of where the bone's
    lesions lie in films like a given one, built on first use."""

    def __init__(self, side_rel: list[float], shares: list[float] | None, thumbs: np.ndarray,
                 centres: np.ndarray, locator: BoneLocator | None = None) -> None:
        self.side_rel = [float(v) for v in side_rel]
        # None (sides given by the caller): healthy regions hold at least min_bone bone
        self.shares = None if shares is None else [float(v) for v in shares]
        self.thumbs, self.centres, self.given = thumbs, centres, locator

    @cached_property
    def locator(self) -> BoneLocator | None:
        if self.given is not None:
            return self.given
        return BoneLocator(self.thumbs, self.centres) if len(self.thumbs) else None

    def key(self) -> list[Any]:
        """What the regions depend on, for a cache key."""
        given = self.given
        source: Any = given if given is not None else self
        digest = hashlib.sha256(np.ascontiguousarray(source.thumbs, np.uint8).tobytes()
                                + np.ascontiguousarray(source.centres, np.float32).tobytes())
        settings = ([given.k, given.bandwidth, given.support, given.unlike]
                    if given is not None else "default")
        return [[round(v, 6) for v in self.side_rel],
                None if self.shares is None else [round(v, 6) for v in self.shares],
                digest.hexdigest()[:16], settings]


def _lesion_crop(box: list[float], shape: tuple[int, int], config: RegionConfig
                 ) -> tuple[int, int, int, int]:
    """A lesion region's square in film pixels (see the module doc). One pixel more than
    the box, so that rounding a corner never cuts the box; a square that fits in the film
    moved into it, which keeps the box in it (the box is in the film)."""
    height, width = shape
    longest = max(box[2] - box[0], box[3] - box[1])
    side = min(max(config.min_side, config.context * longest), min(height, width))
    side = int(math.ceil(max(side, longest + 1)))
    x0, y0, _, _ = square_box((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, side)
    if side <= width:
        x0 = min(max(x0, 0), width - side)
    if side <= height:
        y0 = min(max(y0, 0), height - side)
    return x0, y0, x0 + side, y0 + side


def _survey(manifest: Manifest, bone: str, config: RegionConfig,
            cache_dir: str | Path | None) -> _Sites:
    """The `_Sites` of `bone` from the real train lesion films with boxes of `manifest`."""
    table = manifest.table
    chosen = positives_of(table, bone) & (table["split"] == "train") \
        & (table["origin"] == "real") & table["boxes"].map(bool)
    rows = table.index[chosen].tolist()

    def compute() -> dict[str, np.ndarray]:
        side_rel, shares, thumbs, centres = [], [], [], []
        for row_id in rows:
            row = table.loc[row_id].to_dict()
            image = read_film(manifest, row, Skips("regions"))
            if image is None:
                continue  # its own regions skip it, with the reason
            height, width = image.shape
            thumb = film_thumbnail(image, blank=row["boxes"])
            try:
                bone_mask, _ = bone_region(manifest, row, image, bone)
            except (BoneaugError, ValueError):  # a bad mask: its own regions say so
                continue
            for box in row["boxes"]:
                crop = _lesion_crop(box, image.shape, config)
                side_rel.append((crop[2] - crop[0]) / min(height, width))
                shares.append(float(bone_mask[crop[1]:crop[3], crop[0]:crop[2]].mean()))
                thumbs.append(thumb)
                centres.append([(box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height])
        return {"side_rel": np.asarray(side_rel, np.float64),
                "shares": np.asarray(shares, np.float64),
                "thumbs": np.asarray(thumbs, np.uint8).reshape(-1, THUMB, THUMB),
                "centres": np.asarray(centres, np.float32).reshape(-1, 2)}

    key = ["survey", bone, config.context, config.min_side, _rows_key(manifest, rows)]
    arrays = _cached(cache_dir, key, compute)
    if not len(arrays["side_rel"]):
        raise BoneaugError(f"{manifest.source or 'manifest'}: no readable {bone} lesion film "
                           "with a box in the real train split: healthy regions take their "
                           "size from those films' lesions")
    return _Sites(arrays["side_rel"].tolist(), arrays["shares"].tolist(), arrays["thumbs"],
                  arrays["centres"])


# --------------------------------------------------------------------------- one film


@dataclass
class _Region:
    patch: np.ndarray
    label: int
    id: str
    box: list[float]
    crop: list[int]


def _lesion_regions(image: np.ndarray, row: dict, config: RegionConfig) -> list[_Region]:
    made = []
    for k, box in enumerate(row["boxes"]):
        crop = _lesion_crop(box, image.shape, config)
        scale = config.size / (crop[2] - crop[0])
        local = [round((box[i] - crop[i % 2]) * scale, 3) for i in range(4)]
        made.append(_Region(resize_square(crop_reflect(image, crop), config.size), 1,
                            f"{row['image_id']}#L{k}", local, list(crop)))
    return made


def _healthy_regions(manifest: Manifest, image: np.ndarray, row: dict, bone: str,
                     config: RegionConfig, seed: int, sites: _Sites
                     ) -> tuple[list[_Region], str]:
    """A film's healthy regions, and why there are none when there are none."""
    region, source = bone_region(manifest, row, image, bone)
    if not region.any():
        return [], "no bone found"
    locator = sites.locator
    centres = where_bone_lies(image, region, source, locator)
    anywhere = None
    if source == "mask" and locator is not None:
        # A mask is all of the bone, but lesions sit at some places of it (metaphyses):
        # healthy regions drawn anywhere on it differ from lesion regions by site alone
        # (probe 0.71 on the confounded phantom's humerus). Draw them where this bone's
        # lesions lie in films like this one, as on films without a mask; a lesion film
        # whose lesion fills those places gives the rest from anywhere on the bone (the
        # healthy parts of lesion films are the negatives no film style can win).
        likely = locator.restrict(image, region)
        centres, anywhere = (likely, region) if likely.any() else (region, None)
    if not centres.any():
        return [], f"no bone where {bone} lies in films like it"
    # One generator per film: its sites do not depend on which other films are drawn.
    rng = np.random.default_rng([seed, zlib.crc32(str(row["image_id"]).encode())])

    def draw(where: np.ndarray, count: int) -> list:
        return draw_healthy_crops(image, region, where, config.size, count, sites.side_rel,
                                  config.min_bone, rng, avoid=row["boxes"],
                                  tries=HEALTHY_TRIES, keep_side=True, shares=sites.shares)

    made = draw(centres, config.healthy_per_film)
    short = config.healthy_per_film - len(made)
    if anywhere is not None and row["boxes"] and short:  # a lesion film fills up
        made += draw(anywhere, short)
    regions = [_Region(crop.patch, 0, f"{row['image_id']}#H{k}", [], list(crop.box))
               for k, (crop, _) in enumerate(made)]
    wanted = (f">= {config.min_bone:.0%} bone" if sites.shares is None
              else "as much bone as a lesion region")
    return regions, (f"no region with {wanted}" +
                     (" clear of its lesions" if row["boxes"] else ""))


def _film_regions(manifest: Manifest, row: dict, bone: str, config: RegionConfig, seed: int,
                  lesions_only: bool, sites: _Sites | None) -> tuple[list[_Region], str]:
    """One film's regions, and why it gave none when it gave none."""
    skips = Skips("regions")
    image = read_film(manifest, row, skips)
    if image is None:
        return [], skips.rows[0]["reason"]
    lesion = int(row["label"]) == 1
    if (lesion or lesions_only) and not row["boxes"]:
        return [], "no lesion box"
    try:
        made = _lesion_regions(image, row, config) if lesion or lesions_only else []
        if lesions_only:
            return made, ""
        assert sites is not None
        healthy, why = _healthy_regions(manifest, image, row, bone, config, seed, sites)
    except (BoneaugError, ValueError) as exc:  # a bad bone mask, a box off the film
        return [], str(exc)
    return made + healthy, why


# --------------------------------------------------------------------------- many films


def region_set(manifest: Manifest, rows: list, bone: str, config: RegionConfig, seed: int,
               *, lesions_only: bool = False, side_rel: list[float] | None = None,
               locator: BoneLocator | None = None,
               cache_dir: str | Path | None = None) -> RegionSet:
    """The regions of the films `rows` (index labels of `manifest.table`) of `bone`.

    `lesions_only`: lesion regions only (extra positives: synthetic, copy-paste, held-back
    films). `side_rel` (healthy region side / shorter film side) and `locator` (where the
    bone lies on films without its mask): by default from the real train lesion films of
    `bone` in `manifest`. `cache_dir`: keep the arrays there, keyed by everything they
    depend on. A film that gives no region is skipped with its reason
    (`RegionSet.skipped`); only when every film is skipped is it an error.
    """
    config.validate()
    sites = None
    if lesions_only:
        pass  # a lesion region needs neither a healthy side nor the bone's place
    elif side_rel is not None and locator is not None:
        sites = _Sites(side_rel, None, np.zeros((0, THUMB, THUMB), np.uint8),
                       np.zeros((0, 2)), locator)
    else:
        survey = _survey(manifest, bone, config, cache_dir)
        mine = side_rel is None
        sites = _Sites(survey.side_rel if mine else side_rel, survey.shares if mine else None,
                       survey.thumbs, survey.centres, locator)
    return _region_set(manifest, list(rows), bone, config, seed, lesions_only, sites,
                       cache_dir)


def _region_set(manifest: Manifest, rows: list, bone: str, config: RegionConfig, seed: int,
                lesions_only: bool, sites: _Sites | None,
                cache_dir: str | Path | None) -> RegionSet:
    table = manifest.table

    def compute() -> dict[str, np.ndarray]:
        made: list[_Region] = []
        groups: list[str] = []
        image_ids: list[str] = []
        skipped: list[tuple[str, str]] = []
        for row_id in rows:
            row = table.loc[row_id].to_dict()
            regions, why = _film_regions(manifest, row, bone, config, seed, lesions_only,
                                         sites)
            if not regions:
                skipped.append((str(row["image_id"]), why))
            made += regions
            image_ids += [str(row["image_id"])] * len(regions)
            groups += [str(row.get("patient_id") or row["image_id"])] * len(regions)
        inputs = (np.stack([r.patch for r in made]).astype(np.float32) if made
                  else np.zeros((0, config.size, config.size), np.float32))
        return RegionSet(inputs, np.array([r.label for r in made], np.int64),
                         [r.id for r in made], image_ids, groups, [r.box for r in made],
                         skipped, [r.crop for r in made]).to_arrays()

    key = ["regions", bone, config.cut_settings(), seed, lesions_only,
           sites.key() if sites else None, _rows_key(manifest, rows)]
    regions = RegionSet.from_arrays(_cached(cache_dir, key, compute))
    if rows and len(regions.skipped) == len(rows):
        first, why = regions.skipped[0]
        raise BoneaugError(f"{manifest.source or 'manifest'}: none of the {len(rows)} {bone} "
                           f"films gave a region; first: {first}: {why}")
    return regions


def _rows_key(manifest: Manifest, rows: list) -> list[Any]:
    """The rows as a cache key: every cell (boxes, masks, labels) and where paths lead."""
    records = manifest.table.loc[rows].to_dict("records") if rows else []
    return [str(Path(manifest.root).resolve()), records]


def _cached(cache_dir: str | Path | None, key: list[Any],
            compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`compute()`, or what an earlier call with the same `key` stored under `cache_dir`."""
    if cache_dir is None:
        return compute()
    text = json.dumps([CACHE_VERSION, key], sort_keys=True, default=str)
    file = Path(cache_dir) / "regions" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # a damaged entry is made again
    arrays = compute()
    with atomic_path(file) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return arrays


# --------------------------------------------------------------------------- training


def build_region_training(manifest: Manifest, strategy: str, config: ClassifierConfig,
                          regions: RegionConfig, *, bone: str, extra: Manifest | None = None,
                          ratio: float | None = None, seed: int = 0,
                          negatives_from: tuple[str, ...] = (),
                          cache_dir: str | Path | None = None
                          ) -> tuple[TrainingSet, tuple[np.ndarray, np.ndarray], RegionSet]:
    """`strategy`'s region training set, the val (inputs, labels) and the test regions.

    The films are `select`'s, as at the film level; train films give all their regions
    (drawn with `seed`), extra films their lesion regions, val and test films all theirs
    (drawn with `EVAL_SEED`). Oversampling repeats lesion regions (`ratio`, or without
    one until lesion and healthy regions are about balanced); weighting weighs a lesion
    region by healthy / lesion regions. `config` is not read: the regions are its inputs.
    """
    regions.validate()
    sel = select(manifest, strategy, bone=bone, extra=extra, ratio=ratio, seed=seed,
                 negatives_from=negatives_from)
    sites = _survey(manifest, bone, regions, cache_dir)

    def of(rows: list, draw: int) -> RegionSet:
        return _region_set(manifest, rows, bone, regions, draw, False, sites, cache_dir)

    train, val, test = of(sel.train, seed), of(sel.val, EVAL_SEED), of(sel.test, EVAL_SEED)
    extras = RegionSet.empty(regions.size)
    if sel.extra:
        assert sel.extra_manifest is not None
        extras = _region_set(sel.extra_manifest, sel.extra, bone, regions, seed, True, None,
                             cache_dir)
        if extras.skipped:  # boneaug made them: a missing one is a broken run, not a film
            raise BoneaugError(f"{sel.extra_manifest.source}: an extra positive cannot be "
                               f"used: {': '.join(extras.skipped[0])}")
    lesion, healthy = int(train.labels.sum()), int((train.labels == 0).sum())
    repeat, pos_weight = sel.repeat_positives, 1.0
    record = BY_NAME[strategy]
    if record.repeats_positives and ratio is None:
        repeat = max(1, round(healthy / max(lesion, 1)))
    if record.weighs_loss:
        pos_weight = healthy / max(lesion, 1)
    both = train.joined(extras)
    info = _training_info(sel.info or {}, regions, train, extras, val, test)
    info.update(repeat_positives=repeat, pos_weight=pos_weight)
    training = TrainingSet(both.inputs, both.labels,
                           repeat=np.where(both.labels == 1, repeat, 1).astype(np.int64),
                           pos_weight=pos_weight, augment=sel.augment, info=info)
    return training, (val.inputs, val.labels), test


def _training_info(selection: dict[str, Any], regions: RegionConfig, train: RegionSet,
                   extras: RegionSet, val: RegionSet, test: RegionSet) -> dict[str, Any]:
    """The selection's info with region counts in the film-level keys (``n_train_*``);
    the film counts keep their values as ``n_train_films_*``."""
    info = dict(selection)
    for key in ("n_train_pos_real", "n_train_neg", "n_train_pos_extra"):
        if key in info:
            info[key.replace("n_train_", "n_train_films_")] = info[key]
    lesion = int(train.labels.sum())
    info.update({"level": "region", "regions": regions.to_dict(),
                 "n_train": len(train) + len(extras), "n_train_pos_real": lesion,
                 "n_train_pos_extra": len(extras), "n_train_neg": len(train) - lesion,
                 "n_val": len(val), "n_val_pos": int(val.labels.sum()),
                 "n_test_films": len(set(test.image_ids))})
    skipped = train.skipped + val.skipped + test.skipped
    if skipped:
        info["skipped_films"] = sorted(f"{image_id}: {why}" for image_id, why in skipped)
    return info


def classify_regions(manifest: Manifest, strategy: str, out_dir: str | Path, *,
                     config: ClassifierConfig | None = None,
                     regions: RegionConfig | None = None, bone: str,
                     extra: Manifest | None = None, ratio: float | None = None, seed: int = 0,
                     cache_dir: str | Path | None = None,
                     negatives_from: tuple[str, ...] = (), on_epoch: Any = None
                     ) -> ClassifyReport:
    """Train `strategy`'s region classifier of `bone`; write what `classify` writes, with
    one prediction per test region (columns image_id = the region, film_id, bone, label,
    score) and ``"level": "region"`` in metrics.json."""
    started = time.time()
    regions = regions or RegionConfig()
    regions.validate()
    config = regions.classifier(config or ClassifierConfig())
    out_dir = Path(out_dir)
    check_out_dir(out_dir, "classify")
    check_not_an_input(out_dir, [*manifest.files(), *(extra.files() if extra else [])],
                       "classify")
    training, (val_x, val_y), test = build_region_training(
        manifest, strategy, config, regions, bone=bone, extra=extra, ratio=ratio, seed=seed,
        negatives_from=negatives_from, cache_dir=cache_dir)
    trained = train_classifier(training, val_x, val_y, config, seed=seed, on_epoch=on_epoch)
    scores = predict(trained.model, test.inputs, config)
    metrics = score_metrics(test.labels, scores)
    info = dict(training.info)
    info.update({"seed": seed, "extra_manifest": str(extra.source) if extra else None})
    summary = {"test": metrics, "best_epoch": trained.best_epoch,
               "val_auc": trained.best_val_auc, "epochs_run": len(trained.history),
               "train_seconds": round(trained.seconds, 2), "device": trained.device,
               "n_test": len(test), "n_test_pos": int(test.labels.sum()), **info}

    def write(folder: Path) -> None:
        torch.save({"state_dict": trained.model.state_dict(), "config": config.to_dict(),
                    "regions": regions.to_dict(), "selection": info}, folder / "model.pt")
        pd.DataFrame(trained.history).to_csv(folder / "history.csv", index=False)
        pd.DataFrame({"image_id": test.ids, "film_id": test.image_ids, "bone": bone,
                      "label": test.labels, "score": scores}).to_csv(
            folder / "predictions.csv", index=False)
        write_json_atomic(folder / "metrics.json", summary)
        write_run_json(folder, "classify", {
            "strategy": strategy, "bone": bone, "ratio": ratio, "level": "region",
            "classifier": config.to_dict(), "regions": regions.to_dict(),
            "manifest": str(manifest.source)}, seed, started, extra={"metrics": metrics})

    _publish(out_dir, write)
    return ClassifyReport(out_dir, out_dir / "predictions.csv", metrics["auc"],
                          metrics["pr_auc"], metrics["sens90"], trained.best_val_auc,
                          trained.best_epoch, info)


def _publish(out_dir: Path, write: Callable[[Path], None]) -> None:
    """`write` a run into a staging folder beside `out_dir`, then move it in whole: no
    reader, and no interrupted run, ever sees half of a run's outputs."""
    target = out_dir.resolve()
    staging = target.parent / f".{target.name}.classify.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
