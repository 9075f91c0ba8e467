"""Patient-level train / val / test splits, stratified by bone x label.

How a split is made (docs/splits-and-stats.md tells it for users):

1. **Units.** Rows that must land in one split form a unit: all rows of one
   ``patient_id`` and, with ``group_by``, all rows sharing a non-empty value of that
   column (e.g. ``center``). A unit is a connected component of both relations, so a
   patient seen at two centres joins the two centres into one unit.
2. **Fixed units.** A unit with a synthetic row goes to train, with every real row of
   its patients: synthetic images may never be evaluated on, and a patient never spans
   splits. With ``holdout``, the patients with a row whose ``group_by`` value is held out
   form the test split (an external test set), and val is drawn, patient by patient,
   from the rest: the group has done its work once the test split is external, and
   keeping whole groups together would leave too few units to draw a val split from.
3. **Strata.** Every other unit gets a stratum: its bone (the bone most of its real
   images show) and whether it has a positive. Within a stratum the units are shuffled
   with a generator of the seed and the stratum (so one bone's split does not depend on
   which other bones the manifest holds) and handed out so that the *image* counts
   approach the ratios: integer image targets by the largest-remainder method, then each
   unit, in shuffled order, goes to the split furthest below its target. A stratum of at
   least three units gives val and test one unit each when their ratio is above zero, so
   that rare positives are measured at all.

Nothing here reads an image; the split is a function of the table and the seed only.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from boneaug.data.manifest import REGIONS, Manifest
from boneaug.errors import BoneaugError

# The order in which ties are broken and targets are listed: test first, because a
# missing positive hurts the measurement more than the model selection or the training.
_ORDER = ("test", "val", "train")
# A split whose share of real images is this far (absolute) from the request is reported.
_RATIO_TOLERANCE = 0.05


@dataclass
class SplitResult:
    """A new manifest with every row's ``split`` set, and what the user should know."""

    manifest: Manifest
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    """Rows that go to one split together (positions in the table)."""

    rows: list[int]
    real_images: int = 0
    bone: str = ""
    positive: bool = False
    synthetic: bool = False
    groups: frozenset[str] = frozenset()
    bone_counts: Counter[str] = field(default_factory=Counter)


def split_manifest(
    manifest: Manifest,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    group_by: str | None = None,
    holdout: tuple[str, ...] = (),
) -> SplitResult:
    """Assign every row of `manifest` to train, val or test; the input is left untouched.

    Args:
        manifest: a typed manifest (`load_manifest`); its ``split`` column is overwritten.
        val, test: shares of the real images (each in ``[0, 1)``, sum below 1). With
            `holdout`, `test` is ignored and `val` is the share of the non-holdout images.
        seed: the shuffle within each stratum; the same seed gives the same split.
        group_by: an extra column whose equal non-empty values stay in one split.
        holdout: values of `group_by` whose patients form the test split; the other
            patients are split into train and val patient by patient.

    Returns:
        `SplitResult` with a new `Manifest` (same rows, same order) and warnings.

    Raises:
        BoneaugError: one line, for bad ratios, an unknown `group_by` column, `holdout`
            without `group_by` or with a value the column does not have.
    """
    name = str(manifest.source) if manifest.source else "manifest"
    holdout = tuple(str(h).strip() for h in holdout if str(h).strip())
    table = manifest.table
    _check_arguments(name, table, val, test, group_by, holdout)

    warnings: list[str] = []
    already = int((table["split"] != "").sum())
    if already:
        warnings.append(f"{already} of {len(table)} rows already had a split; it is "
                        "overwritten")
    if group_by is not None:
        blank = int((table[group_by].map(lambda v: str(v).strip()) == "").sum())
        if blank:
            warnings.append(f"{blank} rows have no {group_by!r} value; they are kept "
                            "together by patient only")

    group_values = ([str(g).strip() for g in table[group_by]] if group_by is not None
                    else [""] * len(table))
    units = _build_units(table, group_values, link_groups=not holdout)
    assigned: dict[int, str] = {}  # unit index -> split
    holdout_set = set(holdout)
    for index, unit in enumerate(units):
        in_holdout = bool(unit.groups & holdout_set)
        if unit.synthetic:
            assigned[index] = "train"
            if in_holdout:
                warnings.append(f"patient(s) {_patients(table, unit)} of holdout group(s) "
                                f"{', '.join(sorted(unit.groups & holdout_set))} have "
                                "synthetic images; they stay in train, not test")
        elif in_holdout:
            assigned[index] = "test"
            others = unit.groups - holdout_set
            if others:
                warnings.append(f"patient(s) {_patients(table, unit)} have images in holdout "
                                f"{group_by} {', '.join(sorted(unit.groups & holdout_set))} "
                                f"and in {group_by} {', '.join(sorted(others))}; all of "
                                "them go to test")

    fixed = set(assigned)
    ratios = {"test": 0.0 if holdout else test, "val": val}
    ratios["train"] = 1.0 - ratios["test"] - ratios["val"]
    strata: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for index, unit in enumerate(units):
        if assigned.get(index) != "test" and unit.real_images:
            strata[(unit.bone, unit.positive)].append(index)
    for key in sorted(strata):
        # Each stratum shuffles with its own generator, so that adding a bone (new strata)
        # leaves the split of the other bones as it was, and an extended experiment can
        # reuse their stages.
        bone, positive = key
        rng = np.random.default_rng([seed, zlib.crc32(bone.encode("utf-8")), int(positive)])
        _allocate(units, strata[key], ratios, assigned, fixed, rng)
    # Coarse units (whole centres) can leave every stratum too small to feed val or test;
    # then the pooled strata give those splits one unit each, as a stratum would.
    _ensure_each_split(units, [i for key in sorted(strata) for i in strata[key]], ratios,
                       assigned, fixed)

    split = [""] * len(table)
    for index, unit in enumerate(units):
        for pos in unit.rows:
            split[pos] = assigned[index]
    out = manifest.copy()
    out.table["split"] = pd.Series(split, index=out.table.index, dtype=object)

    warnings += _ratio_warnings(out.table, val, test, holdout)
    warnings += _coverage_warnings(out.table)
    real = out.table["origin"] == "real"
    if real.any() and not (real & (out.table["split"] == "train")).any():
        warnings.append(f"{name}: no real image is left in train; check --holdout / the ratios")
    return SplitResult(out, warnings)


# --------------------------------------------------------------------------- checks


def _check_arguments(name: str, table: pd.DataFrame, val: float, test: float,
                     group_by: str | None, holdout: tuple[str, ...]) -> None:
    for label, ratio in (("val", val), ("test", test)):
        if not math.isfinite(ratio):
            raise BoneaugError(f"{name}: the {label} ratio is {ratio}; it must be a number")
        if ratio < 0:
            raise BoneaugError(f"{name}: the {label} ratio is {ratio}; ratios must be >= 0")
    if holdout:
        if val >= 1:
            raise BoneaugError(f"{name}: the val ratio is {val}; with a holdout test split "
                               "it must be below 1 to leave training data")
    elif val + test >= 1:
        raise BoneaugError(f"{name}: val ({val}) + test ({test}) = {val + test:g} leaves no "
                           "training data; the sum must be below 1")
    if group_by is not None:
        if group_by not in table.columns:
            raise BoneaugError(f"{name}: no column {group_by!r} to group by; the manifest has "
                               f"{', '.join(map(str, table.columns))}")
        if group_by in ("split", "boxes"):
            raise BoneaugError(f"{name}: cannot group by {group_by!r}; pick a column such "
                               "as center or scanner")
    if holdout and group_by is None:
        raise BoneaugError(f"{name}: holdout {', '.join(holdout)} needs group_by (the column "
                           "whose values are held out, e.g. --group-by center)")
    if holdout:
        present = {str(v).strip() for v in table[group_by]} - {""}
        absent = [h for h in holdout if h not in present]
        if absent:
            shown = sorted(present)
            values = ", ".join(shown[:20]) + (f", ... ({len(shown)} values)"
                                              if len(shown) > 20 else "")
            raise BoneaugError(f"{name}: holdout value(s) {', '.join(absent)} not found in "
                               f"column {group_by!r} (it has {values or 'no values'})")


# --------------------------------------------------------------------------- units


def _build_units(table: pd.DataFrame, group_values: list[str], *,
                 link_groups: bool) -> list[_Unit]:
    """Connected components of rows linked by patient_id (and, if asked, by group value)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(key: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving keeps the trees flat
            key = parent[key]
        return key

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)

    patients = [str(p) for p in table["patient_id"]]
    for patient, group in zip(patients, group_values, strict=True):
        find(("patient", patient))
        if group and link_groups:  # an empty cell means "unknown": it must not join strangers
            union(("patient", patient), ("group", group))

    by_root: dict[tuple[str, str], _Unit] = {}
    units: list[_Unit] = []  # in order of first row, so the result does not depend on hashing
    origins = list(table["origin"])
    bones = [str(b) for b in table["bone"]]
    labels = [int(v) for v in table["label"]]
    for pos, (patient, group) in enumerate(zip(patients, group_values, strict=True)):
        root = find(("patient", patient))
        if root not in by_root:
            by_root[root] = _Unit(rows=[])
            units.append(by_root[root])
        unit = by_root[root]
        unit.rows.append(pos)
        if group:
            unit.groups = unit.groups | {group}
        if origins[pos] == "synthetic":
            unit.synthetic = True
            continue
        unit.real_images += 1
        unit.bone_counts[bones[pos]] += 1
        if labels[pos] == 1:
            unit.positive = True
    for unit in units:
        counts = unit.bone_counts
        if counts:  # most images; ties go to the first name, for determinism
            unit.bone = min(counts, key=lambda b: (-counts[b], b))
    return units


def _patients(table: pd.DataFrame, unit: _Unit) -> str:
    names = sorted({str(table["patient_id"].iat[p]) for p in unit.rows})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


# --------------------------------------------------------------------------- allocation


def _largest_remainder(total: int, ratios: Sequence[float]) -> list[int]:
    """Integer shares of `total` proportional to `ratios` (summing to 1), summing to total."""
    quotas = [total * r for r in ratios]
    counts = [math.floor(q + 1e-9) for q in quotas]
    order = sorted((i for i, r in enumerate(ratios) if r > 0),
                   key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:max(total - sum(counts), 0)]:
        counts[i] += 1
    return counts


def _allocate(units: list[_Unit], members: list[int], ratios: dict[str, float],
              assigned: dict[int, str], fixed: set[int], rng: np.random.Generator) -> None:
    """Hand the free units of one stratum to splits; fixed units count where they are."""
    total = sum(units[i].real_images for i in members)
    targets = dict(zip(_ORDER, _largest_remainder(total, [ratios[s] for s in _ORDER]),
                       strict=True))
    got = dict.fromkeys(_ORDER, 0)
    for i in members:
        if i in fixed:
            got[assigned[i]] += units[i].real_images
    open_splits = [s for s in _ORDER if ratios[s] > 0]
    shuffled = [members[j] for j in rng.permutation(len(members))]
    for i in shuffled:
        if i in fixed:
            continue
        # Furthest below target first; for one-image units this meets the targets exactly.
        best = max(open_splits, key=lambda s: (targets[s] - got[s], -_ORDER.index(s)))
        assigned[i] = best
        got[best] += units[i].real_images
    _ensure_each_split(units, shuffled, ratios, assigned, fixed)


def _ensure_each_split(units: list[_Unit], members: list[int], ratios: dict[str, float],
                       assigned: dict[int, str], fixed: set[int]) -> None:
    """Give test, then val, one of `members` if its ratio is > 0 and it has none.

    Only when there are at least three units, so that train keeps one: the unit moved is
    the smallest free one (fewest images moved; the first in `members` order among equals)
    of the split with the most units.
    """
    if len(members) < 3:
        return
    count = Counter(assigned[i] for i in members)
    for wanting in ("test", "val"):
        if ratios[wanting] <= 0 or count[wanting] > 0:
            continue
        donors = [s for s in _ORDER if s != wanting and count[s] >= 2
                  and any(assigned[i] == s and i not in fixed for i in members)]
        if not donors:
            continue
        donor = max(donors, key=lambda s: (count[s], -_ORDER.index(s)))
        candidates = [i for i in members if assigned[i] == donor and i not in fixed]
        moved = min(candidates, key=lambda i: units[i].real_images)
        assigned[moved] = wanting
        count[donor] -= 1
        count[wanting] += 1


# --------------------------------------------------------------------------- warnings


def _ratio_warnings(table: pd.DataFrame, val: float, test: float,
                    holdout: tuple[str, ...]) -> list[str]:
    real = table[table["origin"] != "synthetic"]
    if real.empty:
        return []
    counts = real["split"].value_counts()
    out: list[str] = []
    if holdout:
        rest = len(real) - int(counts.get("test", 0))
        wanted = {"val": (val, rest, "non-holdout real images")}
    else:
        wanted = {"val": (val, len(real), "real images"), "test": (test, len(real),
                                                                  "real images")}
    for split, (ratio, base, what) in wanted.items():
        if base == 0 or ratio <= 0:
            continue
        share = int(counts.get(split, 0)) / base
        if share == 0 or abs(share - ratio) > _RATIO_TOLERANCE:
            out.append(f"{split} holds {share:.1%} of the {what} (asked {ratio:.1%}): the "
                       "patients (or groups) are too few or too large to honour the ratio")
    return out


def _coverage_warnings(table: pd.DataFrame) -> list[str]:
    """A bone without a positive in val or test cannot be measured there."""
    real = table[table["origin"] != "synthetic"]
    used = [s for s in ("val", "test") if (real["split"] == s).any()]
    out: list[str] = []
    for bone in sorted(set(real["bone"])):
        rows = real[real["bone"] == bone]
        positives = rows[rows["label"] == 1]
        if positives.empty:
            # A limb region (BTXRD's normals) holds negatives of its bones by design.
            if used and bone not in REGIONS:
                out.append(f"{bone}: no positive image at all, so none in "
                           f"{' or '.join(used)}")
            continue
        missing = [s for s in used if not (positives["split"] == s).any()]
        if missing:
            patients = positives["patient_id"].nunique()
            out.append(f"{bone}: no positive image in {' or '.join(missing)} "
                       f"({len(positives)} positive images of {patients} patient(s); "
                       "a stratum needs 3 patients to give train, val and test one each)")
    return out
