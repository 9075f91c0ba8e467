"""Tiles: a film's lesion score is that of the most suspicious lesion-scale tile of its bone.

A whole film shrunk to a classifier input keeps a large lesion and loses a small one: the
phantom tibia's lesions, 31 px on a 256 px film, are ten pixels on a 96 px input, and no
film-level classifier saw them (oracle-r10 0.62, docs/results.md). With
``classifier.crop: tiles`` the image-level classifier looks at the bone tile by tile, at
the lesion scale, and a film scores as its highest tile:

- **Side**: the median side of the bone's lesion regions (`boneaug.classify.regions`:
  `regions.context` x a lesion box's longest side, at least `regions.min_side`), as a share
  of the shorter film side, from the real train lesion films with boxes. Every tile is
  resized to `classifier.size`.
- **Grid**: tile centres every half side (`STRIDE`) over where the bone lies (its mask, or
  on a film without one the estimated bone near where this bone's lesions lie in films
  like it, `where_bone_lies`: a joint film's other bones are not tiled);
  a tile with less than `MIN_BONE` of bone is left out, and a film where no bone is found
  is tiled all over. Val and test films are tiled from the bone's corner; a training film
  from a corner shifted by a random part of the stride (seeded by the training seed and
  the film's id), so each seed sees its lesions at other places in the tiles; each
  member of a classifier (`classifier.members`) draws its own shifts (`draw`).
- **Labels** (training): a *lesion tile* holds a lesion box's centre in its middle half,
  and every lesion has one (the stride is half a side); a *healthy tile* overlaps no
  lesion box; a tile that cuts a lesion otherwise is left out. Extra films (synthetic,
  copy-paste, held-back real) give their lesion tiles only: the rest of a synthetic film
  is a copy of a normal training film.
- **Shifts**: a training lesion film gives the lesion tiles of its grid and of the grid
  shifted by half a stride along x, y and both (`LESION_SHIFTS`), so every seed sees each
  lesion at several places in a tile. With one grid, which place a seed drew decided much
  of its test AUC (femur `weighted` 0.92 / 0.84 / 0.78 over 3 seeds; 0.90 / 0.85 / 0.84
  with the shifts, humerus `baseline` sd 0.056 -> 0.005: docs/results.md).
- **Weights**: a film weighs as much as at the film level: each lesion tile is drawn as
  often as a normal training film has tiles on average (`TrainingSet.repeat`), divided by
  the shifts, times the strategy's own repeats; class weighting is the strategy's, by
  films.
- **Score**: a film's score is the highest of its tiles' scores (each mirror-averaged
  with `tta`). The validation AUC in the history is over val tiles (lesion tiles against
  healthy ones; every lesion tile and healthy ones drawn up to `VAL_TILES`); with
  ``select: ema`` nothing is chosen on it.

Measured on phantom-full (docs/results.md, "Shifted lesion grids"): oracle-r10 at the
image level 0.983 / 0.983 / 0.926 (femur / humerus / tibia; the tibia was 0.62 with 96 px
whole films, 0.887 with one grid per film), each tile classifier 9-15 s against 35-41 s
for a film classifier.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from boneaug.classify.regions import RegionConfig, _cached, _rows_key, _Sites, _survey
from boneaug.classify.strategies import select
from boneaug.classify.train import ClassifierConfig, TrainingSet, predict
from boneaug.data import Manifest
from boneaug.data.skips import Skips
from boneaug.errors import BoneaugError
from boneaug.patches import (
    bone_region,
    crop_reflect,
    read_film,
    resize_square,
    square_box,
    where_bone_lies,
)
from boneaug.patches.extract import boxes_overlap

STRIDE = 0.5        # of the tile side, between tile centres
MIN_BONE = 0.1      # the least share of a tile that is bone
TILES_VERSION = 2   # bump when the tiles of the same inputs change
# training lesion tiles come from the grid and from its shifts by half a stride along x,
# y and both: 4x the lesion tiles, each drawn a quarter as often (a film weighs the same)
LESION_SHIFTS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5))
VAL_TILES = 512     # val tiles scored after each epoch: every lesion tile, healthy ones drawn


@dataclass
class TileSet:
    """The tiles of some films. `inputs` `(N, size, size)` float32, `labels` `(N,)` (1: a
    lesion tile), `film` `(N,)` the index of its film in `film_ids`; `film_labels` the
    films' labels; `skipped` (image_id, reason) of the films that could not be read."""

    inputs: np.ndarray
    labels: np.ndarray
    film: np.ndarray
    film_ids: list[str]
    film_labels: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"inputs": self.inputs, "labels": self.labels, "film": self.film,
                "film_labels": self.film_labels,
                "ids": np.array(self.film_ids, dtype=str).reshape(-1),
                "skipped": np.array([list(s) for s in self.skipped], dtype=str).reshape(-1, 2)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TileSet:
        return cls(arrays["inputs"].astype(np.float32, copy=False),
                   arrays["labels"].astype(np.int64, copy=False),
                   arrays["film"].astype(np.int64, copy=False),
                   [str(v) for v in arrays["ids"]],
                   arrays["film_labels"].astype(np.int64, copy=False),
                   [(str(a), str(b)) for a, b in arrays["skipped"]])

    def pooled(self, scores: np.ndarray) -> np.ndarray:
        """A score per film: the highest of its tiles' `scores` (0 for a film with none)."""
        out = np.zeros(len(self.film_ids), np.float64)
        if len(scores):
            np.maximum.at(out, self.film, np.asarray(scores, np.float64))
        return out


def tile_side_rel(manifest: Manifest, bone: str, regions: RegionConfig,
                  cache_dir: str | Path | None = None) -> float:
    """The tile side of `bone` as a share of a film's shorter side (see the module doc)."""
    return float(np.median(_survey(manifest, bone, regions, cache_dir).side_rel))


def film_tiles(image: np.ndarray, where: np.ndarray, boxes: list[list[float]], side: int,
               size: int, offset: tuple[int, int] = (0, 0)
               ) -> tuple[list[np.ndarray], list[int], list[tuple[int, int, int, int]]]:
    """The tiles of one film, their labels (1 lesion, 0 healthy, -1 cuts a lesion) and
    their squares ``(x0, y0, x1, y1)`` in film pixels (ends exclusive).

    `where`: the bone (bool, the film's shape; all False: the whole film); `side`: the
    tile side in film pixels; `offset`: the grid corner's shift in pixels (x, y)."""
    height, width = image.shape
    side = int(min(max(side, 2), height, width))
    if not where.any():
        where = np.ones_like(where, dtype=bool)
    stride = max(1, int(round(side * STRIDE)))
    ys, xs = np.nonzero(where)
    quarter = side * (1 - STRIDE) / 2
    patches: list[np.ndarray] = []
    labels: list[int] = []
    squares: list[tuple[int, int, int, int]] = []
    seen: set[tuple[int, int, int, int]] = set()
    for cy in range(int(ys.min()) - stride + offset[1], int(ys.max()) + stride, stride):
        for cx in range(int(xs.min()) - stride + offset[0], int(xs.max()) + stride, stride):
            box = square_box(float(np.clip(cx + 0.5, side / 2, width - side / 2)),
                             float(np.clip(cy + 0.5, side / 2, height - side / 2)), side)
            if box in seen:  # clipped at a border onto a tile already made
                continue
            seen.add(box)
            x0, y0, x1, y1 = box
            if where[max(y0, 0):y1, max(x0, 0):x1].sum() < MIN_BONE * side * side:
                continue
            label = 0
            for lesion in boxes:
                mx, my = (lesion[0] + lesion[2]) / 2, (lesion[1] + lesion[3]) / 2
                if x0 + quarter <= mx < x1 - quarter and y0 + quarter <= my < y1 - quarter:
                    label = 1
                    break
                if boxes_overlap(box, lesion):
                    label = -1
            patches.append(resize_square(crop_reflect(image, box), size))
            labels.append(label)
            squares.append(box)
    return patches, labels, squares


def _film_where(manifest: Manifest, row: dict, image: np.ndarray, bone: str,
                sites: _Sites | None) -> np.ndarray:
    """Where `bone` lies on the film: its mask; on a film without one the estimated bone
    region near where this bone's lesions lie in films like it (`where_bone_lies`: a joint
    film shows other bones, whose lesions must not make a film of this bone score high)."""
    try:
        region, source = bone_region(manifest, row, image, bone)
    except (BoneaugError, ValueError):  # a bad mask: the film is tiled all over
        return np.zeros(image.shape, bool)
    return where_bone_lies(image, region, source, sites.locator if sites else None)


def tile_set(manifest: Manifest, rows: list, bone: str, side_rel: float, size: int,
             seed: int | None, *, lesions_only: bool = False, sites: _Sites | None = None,
             cache_dir: str | Path | None = None) -> TileSet:
    """The tiles of the films `rows` (index labels of `manifest.table`). `seed` None: val
    and test tiles (no grid shift, every tile kept); else training tiles (the grid shifted
    per film, tiles that cut a lesion left out; `lesions_only`: lesion tiles only)."""
    table = manifest.table

    def compute() -> dict[str, np.ndarray]:
        inputs: list[np.ndarray] = []
        labels: list[int] = []
        film: list[int] = []
        ids: list[str] = []
        film_labels: list[int] = []
        skips = Skips("tiles")
        for row_id in rows:
            row = table.loc[row_id].to_dict()
            image = read_film(manifest, row, skips)
            if image is None:
                continue
            side = int(round(side_rel * min(image.shape)))
            stride = max(1, int(round(side * STRIDE)))
            offset = (0, 0)
            if seed is not None:
                rng = np.random.default_rng([seed, zlib.crc32(str(row["image_id"]).encode())])
                offset = (int(rng.integers(stride)), int(rng.integers(stride)))
            boxes = list(row["boxes"] or [])
            where = _film_where(manifest, row, image, bone, sites)
            patches, tile_labels, squares = film_tiles(image, where, boxes, side, size,
                                                       offset)
            keep = [k for k, v in enumerate(tile_labels)
                    if seed is None or (v == 1 if lesions_only else v >= 0)]
            if seed is not None and boxes:
                # the lesion tiles of the grid shifted by half a stride along x, y, both:
                # each lesion is seen at several places in a tile whatever the seed
                seen = {squares[k] for k in keep}
                for dx, dy in LESION_SHIFTS[1:]:
                    more, more_labels, more_squares = film_tiles(
                        image, where, boxes, side, size,
                        (offset[0] + int(dx * stride), offset[1] + int(dy * stride)))
                    for k, v in enumerate(more_labels):
                        if v == 1 and more_squares[k] not in seen:
                            seen.add(more_squares[k])
                            keep.append(len(patches))
                            patches.append(more[k])
                            tile_labels.append(1)
            index = len(ids)
            ids.append(str(row["image_id"]))
            film_labels.append(int(row["label"]))
            inputs += [patches[k] for k in keep]
            labels += [max(tile_labels[k], 0) for k in keep]
            film += [index] * len(keep)
        stacked = (np.stack(inputs).astype(np.float32) if inputs
                   else np.zeros((0, size, size), np.float32))
        return TileSet(stacked, np.asarray(labels, np.int64), np.asarray(film, np.int64), ids,
                       np.asarray(film_labels, np.int64),
                       [(str(r["image_id"]), str(r["reason"])) for r in skips.rows]
                       ).to_arrays()

    key = ["tiles", TILES_VERSION, bone, round(side_rel, 6), size, seed, lesions_only,
           sites.key() if sites else None,
           STRIDE, MIN_BONE, LESION_SHIFTS if seed is not None else None,
           _rows_key(manifest, list(rows))]
    return TileSet.from_arrays(_cached(cache_dir, key, compute))


def build_tile_training(manifest: Manifest, strategy: str, config: ClassifierConfig,
                        regions: RegionConfig, *, bone: str | None,
                        extra: Manifest | None = None, ratio: float | None = None,
                        seed: int = 0, negatives_from: tuple[str, ...] = (),
                        cache_dir: str | Path | None = None, draw: int | None = None
                        ) -> tuple[TrainingSet, tuple[np.ndarray, np.ndarray], TileSet]:
    """`strategy`'s tile training set, the val tiles (inputs, labels) and the test tiles.
    `seed` selects the films (and extras); `draw` (default `seed`) seeds the training
    grids' shifts (`build_tile_trainings` for several draws at once)."""
    sets, val, test = build_tile_trainings(
        manifest, strategy, config, regions, bone=bone, extra=extra, ratio=ratio, seed=seed,
        negatives_from=negatives_from, cache_dir=cache_dir,
        draws=[seed if draw is None else draw])
    return sets[0], val, test


def build_tile_trainings(manifest: Manifest, strategy: str, config: ClassifierConfig,
                         regions: RegionConfig, *, bone: str | None, draws: list[int],
                         extra: Manifest | None = None, ratio: float | None = None,
                         seed: int = 0, negatives_from: tuple[str, ...] = (),
                         cache_dir: str | Path | None = None
                         ) -> tuple[list[TrainingSet], tuple[np.ndarray, np.ndarray], TileSet]:
    """One training set per draw of the training grids' shifts (the members of a
    classifier, `ClassifierConfig.members`: the same films through other grids), and the
    val and test tiles, made once."""
    if bone is None:
        raise BoneaugError("classifier.crop tiles needs a bone: tiles take their size from "
                           "that bone's lesions")
    sel = select(manifest, strategy, bone=bone, extra=extra, ratio=ratio, seed=seed,
                 negatives_from=negatives_from)
    sites = _survey(manifest, bone, regions, cache_dir)
    side_rel = float(np.median(sites.side_rel))

    def of(source: Manifest, rows: list, draw: int | None, lesions_only: bool = False
           ) -> TileSet:
        return tile_set(source, rows, bone, side_rel, config.size, draw,
                        lesions_only=lesions_only, sites=sites, cache_dir=cache_dir)

    val, test = of(manifest, sel.val, None), of(manifest, sel.test, None)

    def training(draw: int) -> TrainingSet:
        train = of(manifest, sel.train, draw)
        inputs, labels = train.inputs, train.labels
        n_extra_tiles = 0
        if sel.extra:
            assert sel.extra_manifest is not None
            extras = of(sel.extra_manifest, sel.extra, draw, lesions_only=True)
            if extras.skipped:  # boneaug made them: a missing one is a broken run
                raise BoneaugError(f"{sel.extra_manifest.source}: an extra positive cannot "
                                   f"be used: {': '.join(extras.skipped[0])}")
            inputs = np.concatenate([inputs, extras.inputs])
            labels = np.concatenate([labels, extras.labels])
            n_extra_tiles = len(extras)
        films = len(train.film_ids) + len(sel.extra)
        normal = train.film_labels[train.film] == 0  # the tiles of normal films
        per_film = max(1, int(round(normal.sum() / max((train.film_labels == 0).sum(), 1))))
        lesion_repeat = max(1, int(round(per_film / len(LESION_SHIFTS))))
        repeat = np.where(labels == 1, lesion_repeat * sel.repeat_positives, 1
                          ).astype(np.int64)
        info = dict(sel.info or {})
        info.update({"tiles": {"side_rel": round(side_rel, 6), "size": config.size,
                               "stride": STRIDE, "min_bone": MIN_BONE, "per_film": per_film},
                     "n_train_tiles": int(len(labels)),
                     "n_train_tiles_pos": int(labels.sum()),
                     "n_train_tiles_extra": n_extra_tiles, "n_train_films": films,
                     "n_test_tiles": len(test)})
        skipped = train.skipped + val.skipped + test.skipped
        if skipped:
            info["skipped_films"] = sorted(f"{image_id}: {why}" for image_id, why in skipped)
        return TrainingSet(inputs, labels, repeat=repeat, pos_weight=sel.pos_weight,
                           augment=sel.augment, info=info)

    keep = val_sample(val.labels)
    return [training(d) for d in draws], (val.inputs[keep], val.labels[keep]), test


def val_sample(labels: np.ndarray, limit: int = VAL_TILES) -> np.ndarray:
    """The val tiles scored after every epoch: the lesion tiles (up to half of `limit`)
    and healthy ones drawn to fill `limit`, the same for every strategy and seed. All of
    them (50 per film) would cost 20x the training steps, for a curve that is history
    only with ``select: ema``."""
    rng = np.random.default_rng(0)
    lesion, healthy = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    lesion = rng.permutation(lesion)[:limit // 2]
    healthy = rng.permutation(healthy)[:limit - len(lesion)]
    return np.sort(np.concatenate([lesion, healthy]))


def score_films(model: torch.nn.Module, manifest: Manifest, rows: list, bone: str,
                side_rel: float, config: ClassifierConfig, sites: _Sites | None = None,
                cache_dir: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """A tile classifier's score of each readable film of `rows` and the films' ids
    (`sites`: where the bone lies on films without its mask, as in training)."""
    tiles = tile_set(manifest, rows, bone, side_rel, config.size, None, sites=sites,
                     cache_dir=cache_dir)
    return tiles.pooled(predict(model, tiles.inputs, config)), tiles.film_ids
