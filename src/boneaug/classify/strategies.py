"""Strategies: the named ways to build a classifier's training set from real and extra data.

Every strategy trains on the real ``train`` rows of the bone (or of all bones, pooled) and
chooses its model on the real ``val`` rows; only the training set differs:

=================  ===========================================================================
``baseline``       the real training images as they are
``weighted``       the same, with the loss of a positive weighted by negatives / positives
``oversample``     the same, each real positive repeated 1 + R times per epoch (R = ratio;
                   without a ratio, repeated until the classes are about balanced)
``classic``        the same, with flips, small rotations / scaling, elastic and intensity
                   augmentation (`augment.ClassicAugmentation`)
``copypaste``      plus R x (real positives) extra positives: real lesions pasted into
                   normal train images (`boneaug.synth.copy_paste_translator`)
``gan``            plus R x (real positives) CycleGAN synthetic positives of this bone
``gan-gated``      the same, after the quality gate dropped the unconvincing ones
``gan-transfer``   plus R x (real positives) synthetic positives from another bone's generator
``oracle``         plus R x (real positives) *real* positives held back from training
                   (the training positives that rarity held back: the upper bound that
                   augmentation tries to reach)
``tstr``           train-synthetic-test-real: the real negatives and the extra (synthetic)
                   positives only, no real positive; a measure of how real the synthetic
                   lesions look to a classifier
=================  ===========================================================================

The extra positives come from a second manifest (`extra`): a synthesis run's
``synthetic.csv`` (or ``augmented.csv``), or for the oracle a manifest of held-back real
positives. Which R x n of them are used is a seeded random choice; for one seed a smaller
ratio's extras are a subset of a larger ratio's.

Everything else the code knows about a strategy (its legend line, where its extra
positives come from, which ratios it runs at, its part in the goal and the headline) is
one `Strategy` record in `TABLE`; every list of strategies is derived from it, and other
modules ask a record's properties (`reference`, `needs_generator`, `gated`, ...) instead
of comparing names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from boneaug.data import Manifest
from boneaug.data.films import check_negatives_from, normals_of, positives_of
from boneaug.errors import BoneaugError


class Extra(Enum):
    """Where a strategy's extra positives come from (the experiment names the folders)."""

    NONE = "none"
    PASTE = "real lesions pasted into the bone's normal films (copy-paste synthesis)"
    GENERATOR = "the synthesis of the bone's own generator"
    GATED = "the synthesis of the bone's own generator that the quality gate kept"
    TRANSFER = "the synthesis of another bone's generator"
    POOL = "real training positives that rarity held back"


class Ratio(Enum):
    """Which ratios (extra positives per real positive) a strategy runs at."""

    NONE = "none"
    SWEPT = "the protocol's ratios when the config sweeps it, else the main ratio"
    MAIN = "the main ratio only"


@dataclass(frozen=True)
class Strategy:
    """Everything the code says about one strategy; every list of strategies (the config's
    vocabulary, the table order, the report's legend, the experiment's conditions) is
    derived from `TABLE`, so a new strategy is one new record."""

    name: str
    meaning: str                     # the report's legend (one line)
    extra: Extra = Extra.NONE
    ratio: Ratio = Ratio.NONE
    reference: bool = False          # every comparison is against it (no augmentation)
    focus: bool = False              # what the benchmark is about: the goal's main test
    generative: bool = False         # its extra positives are painted by a generator
    real_positives: bool = True      # False: trains on extra positives and real negatives
    weighs_loss: bool = False        # the loss of a positive weighted by neg / pos
    repeats_positives: bool = False  # each real positive repeated 1 + ratio times
    augments: bool = False           # classic augmentation
    swept_by_default: bool = False   # in the config's default `protocol.sweep`
    goal_share: float = 0.0          # the share of the baseline-to-oracle gap the goal
                                     # asks it to close (0: no part in the goal)
    goal_rival: bool = False         # the focus must beat it for the goal

    @property
    def uses_extra(self) -> bool:
        return self.extra is not Extra.NONE

    @property
    def uses_ratio(self) -> bool:
        return self.ratio is not Ratio.NONE

    @property
    def sweepable(self) -> bool:
        return self.ratio is Ratio.SWEPT

    @property
    def gated(self) -> bool:
        """Trains on what the quality gate kept (which may be nothing)."""
        return self.extra is Extra.GATED

    @property
    def transfer(self) -> bool:
        """Its generator is another bone's: one condition per generator bone."""
        return self.extra is Extra.TRANSFER

    @property
    def upper_bound(self) -> bool:
        """Its extra positives are real (held back): the bound augmentation aims at."""
        return self.extra is Extra.POOL

    @property
    def needs_generator(self) -> bool:
        return self.extra in (Extra.GENERATOR, Extra.GATED, Extra.TRANSFER)

    @property
    def needs_patches(self) -> bool:
        return self.needs_generator or self.extra is Extra.PASTE

    @property
    def image_level_only(self) -> bool:
        """The quality gate scores films with the image-level reference classifier."""
        return self.gated

    @property
    def rank(self) -> int:
        """Its place in tables: from no augmentation, through the honest alternatives and
        the generative ones, to the upper bound and the synthetic-only check."""
        return STRATEGIES.index(self.name)

    def condition_name(self, ratio: float | None = None, generator: str = "") -> str:
        """The name of its condition at `ratio` (``gan-r3``; ``gan-transfer-r3-from-tibia``
        for another bone's generator); also the classifier's folder name."""
        name = self.name if ratio is None else f"{self.name}-{ratio_name(ratio)}"
        return f"{name}-from-{generator}" if self.transfer and generator else name


def ratio_name(ratio: float) -> str:
    return f"r{ratio:g}"


TABLE: tuple[Strategy, ...] = (
    Strategy("baseline", "real training images only", reference=True),
    Strategy("weighted", "real images, loss weighted by inverse class frequency",
             weighs_loss=True),
    Strategy("oversample", "real lesion images repeated (ratio = extra copies per real "
             "positive)", ratio=Ratio.SWEPT, repeats_positives=True, goal_rival=True),
    Strategy("classic", "real images with classic augmentation (flips, intensity, small "
             "affine)", augments=True),
    Strategy("copypaste", "real lesion patches pasted onto lesion-free radiographs",
             extra=Extra.PASTE, ratio=Ratio.SWEPT, goal_rival=True),
    Strategy("gan", "CycleGAN lesions painted onto lesion-free radiographs of the same bone",
             extra=Extra.GENERATOR, ratio=Ratio.SWEPT, focus=True, generative=True,
             swept_by_default=True, goal_share=1 / 2),
    Strategy("gan-gated", "as gan, after the quality gate dropped the least plausible "
             "synthetics", extra=Extra.GATED, ratio=Ratio.MAIN, generative=True),
    Strategy("gan-transfer", "as gan, with the generator trained on another bone",
             extra=Extra.TRANSFER, ratio=Ratio.MAIN, generative=True, goal_share=1 / 3),
    Strategy("oracle", "extra REAL lesion images, held back from training by the rarity "
             "step: the upper bound", extra=Extra.POOL, ratio=Ratio.SWEPT,
             swept_by_default=True),
    Strategy("tstr", "train on synthetic positives + real negatives only, test on real",
             extra=Extra.GENERATOR, ratio=Ratio.MAIN, generative=True, real_positives=False),
)
BY_NAME = {s.name: s for s in TABLE}
STRATEGIES = tuple(BY_NAME)
USES_EXTRA = frozenset(s.name for s in TABLE if s.uses_extra)
USES_RATIO = frozenset(s.name for s in TABLE if s.uses_ratio)
SWEEPABLE = tuple(s.name for s in TABLE if s.sweepable)


def _the(what: str, chosen: list[Strategy]) -> Strategy:
    if len(chosen) != 1:
        raise AssertionError(f"the strategy table needs exactly one {what}")
    return chosen[0]


REFERENCE = _the("reference", [s for s in TABLE if s.reference])
FOCUS = _the("focus", [s for s in TABLE if s.focus])


def strategy_of(name: Any) -> Strategy | None:
    """The record of a strategy name (a cell of a table: any type); None if unknown."""
    return BY_NAME.get(name) if isinstance(name, str) else None


def rank(name: Any) -> int:
    """The table order of a strategy name; unknown names after every known one."""
    known = strategy_of(name)
    return len(TABLE) if known is None else known.rank


def known_strategy(name: str) -> Strategy:
    """The record of `name`; one line naming the known strategies if there is none."""
    known = strategy_of(name)
    if known is None:
        raise BoneaugError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    return known


@dataclass
class Selection:
    """The rows a strategy uses: index labels of the main manifest (`train`, `val`, `test`)
    and of the extra manifest (`extra`), and how the training set is shaped."""

    train: list
    val: list
    test: list
    extra: list
    repeat_positives: int = 1
    pos_weight: float = 1.0
    augment: bool = False
    info: dict[str, Any] | None = None
    extra_manifest: Manifest | None = None  # the manifest `extra` indexes


def _real(table: pd.DataFrame, split: str, bone: str | None,
          negatives_from: tuple[str, ...] = ()) -> pd.Series:
    chosen = (table["split"] == split) & (table["origin"] == "real")
    if bone is not None:
        chosen &= positives_of(table, bone) | normals_of(table, bone, negatives_from)
    return chosen


def select(manifest: Manifest, strategy: str, *, bone: str | None = None,
           extra: Manifest | None = None, ratio: float | None = None,
           seed: int = 0, negatives_from: tuple[str, ...] = ()) -> Selection:
    """Choose the rows of `strategy` (see the module doc); one clear error if impossible.

    A bone's rows are its positives and the normal films of that bone
    (`boneaug.data.films`: the bone column, or the bones `boneaug bones` assigned to films
    labelled by region). `negatives_from`: bone or region names whose normal images also
    count as normals of `bone` (the older "all normals of the limb" rule).
    """
    kind = known_strategy(strategy)
    if ratio is not None and (not np.isfinite(ratio) or ratio <= 0):
        raise BoneaugError(f"ratio must be a positive number, got {ratio}")
    if ratio is not None and not kind.uses_ratio:
        raise BoneaugError(f"strategy {strategy!r} takes no ratio")
    table = manifest.table
    name = str(manifest.source or "manifest")
    if not (table["split"] != "").any():
        raise BoneaugError(f"{name}: has no split; run `boneaug split` first")
    where = f"{name}" + (f" (bone {bone})" if bone else "")
    check_negatives_from(table, negatives_from, name)
    train, val, test = (table.index[_real(table, split, bone, negatives_from)].tolist()
                        for split in ("train", "val", "test"))
    for split, rows in (("train", train), ("val", val), ("test", test)):
        labels = table.loc[rows, "label"]
        if labels.nunique() < 2 and not (split == "train" and not kind.real_positives):
            raise BoneaugError(f"{where}: the real {split} split needs lesion and normal "
                               f"images; it has {int(labels.sum())} lesion of {len(rows)}")
    positives = [r for r in train if table.at[r, "label"] == 1]
    negatives = [r for r in train if table.at[r, "label"] == 0]
    selection = Selection(train=train, val=val, test=test, extra=[])
    info: dict[str, Any] = {"strategy": strategy, "bone": bone or "pooled", "ratio": ratio,
                            "n_train_pos_real": len(positives), "n_train_neg": len(negatives)}

    if kind.weighs_loss:
        selection.pos_weight = len(negatives) / len(positives)
    elif kind.repeats_positives:
        selection.repeat_positives = (1 + int(round(ratio)) if ratio is not None
                                      else max(1, round(len(negatives) / len(positives))))
    elif kind.augments:
        selection.augment = True
    elif kind.uses_extra:
        selection.extra_manifest, selection.extra = _extras(
            manifest, extra, kind, bone, ratio, len(positives), seed, where)
        if not kind.real_positives:
            selection.train = negatives
            info["n_train_pos_real"] = 0  # it trains on none (they exist: the other runs)
    info.update({"n_train_pos_extra": len(selection.extra),
                 "repeat_positives": selection.repeat_positives,
                 "pos_weight": selection.pos_weight, "augment": selection.augment})
    selection.info = info
    return selection


def _extras(manifest: Manifest, extra: Manifest | None, kind: Strategy, bone: str | None,
            ratio: float | None, real_positives: int, seed: int, where: str
            ) -> tuple[Manifest, list]:
    strategy = kind.name
    if extra is None and kind.upper_bound:
        raise BoneaugError(f"{where}: the oracle needs --extra: a manifest of held-back real "
                           "positives (never the training set's own rows)")
    given = extra is not None
    if extra is None:  # an augmented manifest carries its synthetic rows itself
        extra = manifest
        table = extra.table
        usable = (table["origin"] == "synthetic") & (table["split"] == "train")
        if not usable.any():
            raise BoneaugError(f"{where}: strategy {strategy!r} needs extra positives: give "
                               "--extra (a synthesis run's synthetic.csv, or held-back real "
                               "positives for the oracle)")
    else:
        table = extra.table
        usable = (table["split"].isin(["train", ""])) & (table["label"] == 1)
        if not kind.upper_bound:  # the upper bound's extra positives are real
            usable &= table["origin"] == "synthetic"
    if bone is not None:
        usable &= table["bone"] == bone
    usable &= table["label"] == 1
    name = str(extra.source or "extra manifest")
    if given:
        twice = set(table.loc[usable, "image_id"]) & set(manifest.table["image_id"])
        if twice:
            raise BoneaugError(f"{name}: image {sorted(twice)[0]} is also in the main manifest "
                               f"(and {len(twice) - 1} more); extra positives must be images "
                               "the training set does not already hold")
    pool = table.index[usable].tolist()
    if not pool and kind.gated:  # the gate may drop every synthetic image
        return extra, []
    if not pool:
        raise BoneaugError(f"{name}: no extra positive train image"
                           + (f" of bone {bone}" if bone else ""))
    if ratio is None:
        wanted = len(pool)
    else:
        if real_positives == 0:
            raise BoneaugError(f"{where}: no real positive train image, so the ratio has "
                               "nothing to multiply")
        wanted = max(1, int(round(ratio * real_positives)))
        if wanted > len(pool):
            raise BoneaugError(f"{name}: ratio {ratio:g} x {real_positives} real positives "
                               f"needs {wanted} extra positives, only {len(pool)} are there")
    order = np.random.default_rng([seed, 7]).permutation(len(pool))
    return extra, [pool[i] for i in order[:wanted]]
