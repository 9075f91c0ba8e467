"""Matched negatives: a bone's negatives chosen to look like its positives on the metadata
the manifest has (centre, view, sex, age band).

A bone's positives and negatives may come from different centres, views or ages; a
classifier can then tell them apart without seeing a lesion. Matching is case-control
frequency matching, per bone and per split, so that the train set teaches lesions and the
test set measures them:

- a film's *stratum* is its values of the matched columns (age in bands; a missing value is
  a level of its own);
- within a split, every stratum keeps the stated number of negatives per positive
  (`MatchingConfig.ratio`); a stratum with fewer negatives than that keeps as many of its
  positives as its negatives allow. The share of positives is then the same in every
  stratum, and a stratum says nothing about the label;
- positives that no negative can match are dropped (and listed); negatives in strata
  without a positive are dropped. Matching comes before rarity, which keeps only a few
  positives anyway: dropping positives there costs little, while a lower ratio would cost
  negatives in every stratum. A split that has no positives, or no negatives, has
  nothing to match and is kept as it is.

Nothing is removed from the manifest: `apply_matching` writes into each row's
``matched_out`` column the bones for which matching left its film out, and
`boneaug.data.films` (rule 4) leaves such a film out of those bones only. Matching cannot
remove a shortcut that lies in the pixels themselves (DESIGN.md, "Shortcuts").
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from boneaug.config import check_number
from boneaug.data.films import MATCHED_OUT_COLUMN, normals_of, positives_of, split_bones
from boneaug.data.manifest import SPLITS
from boneaug.errors import BoneaugError

# What may be matched on, and the manifest columns that hold it (first present one wins).
KNOWN: dict[str, tuple[str, ...]] = {
    "center": ("center", "centre"), "view": ("view",), "sex": ("sex", "gender"), "age": ("age",),
}
AUTO = "auto"
MISSING = "missing"
UNSPLIT = "unsplit"  # the split name of rows whose split column is empty

_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(?:y|yr|yrs|year|years)?\s*$", re.IGNORECASE)


def _key(name: str) -> str | None:
    """The `KNOWN` key that `name` (a key or one of its column aliases) stands for."""
    return next((key for key, aliases in KNOWN.items() if name == key or name in aliases), None)


@dataclass
class MatchingConfig:
    """Which metadata to match a bone's negatives to its positives on, and how many.

    columns: keys of `KNOWN` (``center``, ``view``, ``sex``, ``age``; a column alias such as
    ``gender`` also works), or ``["auto"]``: every known column the manifest has a value
    in. ``[]`` turns matching off.
    ratio: negatives per positive, at most.
    age_band: years per age band (``age`` is matched by band).
    """

    columns: list[str] = field(default_factory=list)
    ratio: float = 4.0
    age_band: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.columns, str):  # YAML "columns: auto"
            self.columns = [self.columns]

    def validate(self, where: str = "matching") -> None:
        """Raise a one-line `BoneaugError` for anything that cannot be matched on."""
        known = ", ".join(KNOWN)
        names = self.columns
        if not isinstance(names, list | tuple) or not all(isinstance(k, str) for k in names):
            raise BoneaugError(f"{where}: columns must be a list of {known}, or auto; "
                               f"got {self.columns!r}")
        for name in self.columns:
            if name != AUTO and _key(name) is None:
                raise BoneaugError(f"{where}: cannot match on {name!r} (known: {known}, "
                                   f"or auto)")
        if AUTO in self.columns and len(self.columns) > 1:
            raise BoneaugError(f"{where}: columns is either [auto] or a list of {known}; "
                               f"got {self.columns!r}")
        check_number(where, "ratio", self.ratio, 0, bounds="()")  # negatives per positive
        check_number(where, "age_band", self.age_band, 1, integer=True)  # years

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "ratio": self.ratio, "age_band": self.age_band}


@dataclass
class BoneMatch:
    """What matching did to one bone.

    per_split: split -> ``positives``/``negatives`` before matching and
    ``positives_kept``/``negatives_kept`` after it. ratios: split -> the negatives per
    positive every stratum of it was matched at (splits with nothing to match are absent).
    """

    bone: str
    columns: list[str]
    per_split: dict[str, dict[str, int]]
    dropped_positives: list[str]
    ratios: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- strata


def _blank(value: object) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return not str(value).strip()


def parse_age(value: object) -> float | None:
    """Years from an age cell (``34``, ``"34.0"``, ``"34Y"``); None when blank or unreadable."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        age = float(value)
    else:
        found = _AGE.match(str(value))
        if found is None:
            return None
        age = float(found.group(1))
    return age if math.isfinite(age) and age >= 0 else None


def _age_level(value: object, band: int) -> str:
    age = parse_age(value)
    if age is None:
        return MISSING
    low = math.floor(age / band) * band
    return str(low) if band == 1 else f"{low}-{low + band - 1}"


def _level(value: object) -> str:
    return MISSING if _blank(value) else str(value).strip().casefold()


def strata(table: pd.DataFrame, columns: list[str], age_band: int) -> pd.Series:
    """One stratum key per row of `table`: the tuple of its values of `columns`, age as a
    band of `age_band` years (``"30-39"``); a missing or unreadable value is a level of its
    own (``"missing"``). With no columns every row is in the one stratum ``()``."""
    parts = [table[c].map(lambda v: _age_level(v, age_band)) if c in KNOWN["age"]
             else table[c].map(_level) for c in columns]
    keys = list(zip(*parts, strict=True)) if parts else [()] * len(table)
    return pd.Series(keys, index=table.index, dtype=object)


def matched_columns(table: pd.DataFrame, config: MatchingConfig) -> list[str]:
    """The manifest columns `config.columns` means: per key the first of its `KNOWN` columns
    that has a value in a real row. A named key without one is an error; ``auto`` takes
    every key that has one, and is an error only when none has."""
    config.validate()
    real = table[table["origin"] == "real"] if "origin" in table.columns else table
    auto = config.columns == [AUTO]
    keys = list(KNOWN) if auto else list(dict.fromkeys(_key(k) for k in config.columns))
    columns = []
    for key in keys:
        assert key is not None  # validate() refused unknown names
        found = next((c for c in KNOWN[key]
                      if c in real.columns and not real[c].map(_blank).all()), None)
        if found is None and not auto:
            raise BoneaugError(f"matching: the manifest has no value to match {key!r} on "
                               f"(looked for column {' or '.join(KNOWN[key])})")
        if found is not None:
            columns.append(found)
    if auto and not columns:
        raise BoneaugError(f"matching: columns [auto], but the manifest has none of the columns "
                           f"{', '.join(c for a in KNOWN.values() for c in a)} with a value")
    return columns


# --------------------------------------------------------------------------- matching


def _candidates(table: pd.DataFrame, bone: str, negatives_from: Iterable[str]
                ) -> tuple[pd.Series, pd.Series]:
    """The real positives and real negatives of `bone` before matching (boolean Series)."""
    real = table["origin"] == "real"
    return real & positives_of(table, bone), real & normals_of(table, bone, negatives_from)


def _groups(keys: pd.Series) -> dict[tuple, list[Any]]:
    """Stratum -> the index labels in it, in table order."""
    out: dict[tuple, list[Any]] = {}
    for label, key in keys.items():
        out.setdefault(key, []).append(label)
    return out


def _match_split(positive_keys: pd.Series, negative_keys: pd.Series, ratio: float,
                 rng: np.random.Generator) -> tuple[list[Any], list[Any], float]:
    """Kept positives, kept negatives and the ratio within one split.

    Every stratum keeps `ratio` negatives per positive, so the share of positives is the
    same in every stratum. Where a stratum has fewer than `ratio` negatives per positive,
    its positives are subsampled to what its negatives allow (none when it has fewer than
    `ratio` negatives): positives are plentiful before rarity thins them, and a lower
    ratio for every stratum would throw away negatives everywhere for one poor stratum.
    """
    positives, negatives = _groups(positive_keys), _groups(negative_keys)
    kept_positives: list[Any] = []
    kept_negatives: list[Any] = []
    for key in sorted(set(positives) & set(negatives)):
        pool, cases = negatives[key], positives[key]
        n_cases = min(len(cases), math.floor(len(pool) / ratio + 1e-9))
        if n_cases == 0:
            continue
        wanted = min(len(pool), math.floor(ratio * n_cases + 0.5))
        chosen_cases = np.sort(rng.choice(len(cases), size=n_cases, replace=False))
        chosen = np.sort(rng.choice(len(pool), size=wanted, replace=False))
        kept_positives += [cases[i] for i in chosen_cases]
        kept_negatives += [pool[i] for i in chosen]
    return kept_positives, kept_negatives, (len(kept_negatives) / len(kept_positives)
                                            if kept_positives else 0.0)


def _split_names(values: Iterable[str]) -> list[str]:
    present = set(values)
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def match_bone(table: pd.DataFrame, bone: str, config: MatchingConfig, seed: int,
               negatives_from: Iterable[str] = ()) -> tuple[pd.Index, pd.Index, BoneMatch]:
    """Match the negatives of `bone` to its positives, per split (module doc).

    Only real rows take part. Candidate negatives are `normals_of` the bone (with
    `negatives_from`). The draw uses ``np.random.default_rng([seed, 13, crc32(bone)])``:
    the same seed gives the same choice, whichever other bones are matched.

    Returns the index labels of the kept positives and kept negatives (in table order)
    and the report. Raises `BoneaugError` when a split that had positives and negatives
    has no positive left that shares a stratum with a negative.
    """
    columns = matched_columns(table, config)  # validates the config
    is_positive, is_negative = _candidates(table, bone, negatives_from)
    keys = strata(table, columns, config.age_band)
    split = (table["split"].map(lambda v: UNSPLIT if _blank(v) else str(v))
             if "split" in table.columns else pd.Series(UNSPLIT, index=table.index))
    rng = np.random.default_rng([seed, 13, zlib.crc32(bone.encode("utf-8"))])
    kept: set[Any] = set()
    per_split: dict[str, dict[str, int]] = {}
    ratios: dict[str, float] = {}
    for name in _split_names(split[is_positive | is_negative]):
        positives = table.index[is_positive & (split == name)]
        negatives = table.index[is_negative & (split == name)]
        if len(positives) and len(negatives):
            kept_positives, kept_negatives, ratios[name] = _match_split(
                keys[positives], keys[negatives], float(config.ratio), rng)
            if not kept_positives:
                raise BoneaugError(
                    f"matching {bone} on {', '.join(columns)}: no {name} positive keeps a "
                    f"matched negative ({len(positives)} positives and {len(negatives)} "
                    f"negatives share no stratum); match on fewer columns or a wider "
                    f"age_band")
        else:  # nothing to match against: matching cannot help, so it takes nothing away
            kept_positives, kept_negatives = list(positives), list(negatives)
        kept.update(kept_positives, kept_negatives)
        per_split[name] = {"positives": len(positives), "positives_kept": len(kept_positives),
                           "negatives": len(negatives), "negatives_kept": len(kept_negatives)}
    is_kept = table.index.isin(list(kept))
    dropped = table.loc[is_positive & ~is_kept, "image_id"].astype(str).tolist()
    report = BoneMatch(bone, columns, per_split, dropped, ratios)
    return table.index[is_positive & is_kept], table.index[is_negative & is_kept], report


def apply_matching(table: pd.DataFrame, bones: list[str], config: MatchingConfig, seed: int,
                   negatives_from: dict[str, tuple[str, ...]] | None = None
                   ) -> tuple[pd.DataFrame, list[BoneMatch]]:
    """Match every bone of `bones` (`match_bone`) and mark the result in the manifest.

    Returns a copy of `table` whose ``matched_out`` column lists, per row, the bones for
    which matching left its film out (appended to a value it had), and one report per
    bone. Rows are never removed: a film left out for one bone may be a negative of
    another that keeps it. Each bone is matched on `table` as given, so no bone's matching
    depends on another's. With ``config.columns == []`` the copy is unchanged and the reports
    are ``[]``.
    """
    config.validate()
    out = table.copy()
    if not config.columns:
        return out, []
    left_out: dict[Any, list[str]] = {}
    matches = []
    for bone in dict.fromkeys(bones):
        extra = (negatives_from or {}).get(bone, ())
        positives, negatives, match = match_bone(table, bone, config, seed, extra)
        is_positive, is_negative = _candidates(table, bone, extra)
        candidates = table.index[is_positive | is_negative]
        for label in candidates.difference(positives.union(negatives)):
            left_out.setdefault(label, []).append(bone)
        matches.append(match)
    before = (out[MATCHED_OUT_COLUMN] if MATCHED_OUT_COLUMN in out.columns
              else pd.Series("", index=out.index))
    marks = []
    for label, value in before.items():
        listed = split_bones(value)
        listed += [b for b in left_out.get(label, []) if b not in listed]
        marks.append(";".join(listed))
    out[MATCHED_OUT_COLUMN] = pd.Series(marks, index=out.index, dtype=object)
    return out, matches


def format_matching(matches: list[BoneMatch]) -> str:
    """A short plain-text table: per bone and split, the positives and negatives kept of
    those there were, the negatives per positive matched at, and the positives dropped."""
    if not matches:
        return "matching: off"
    head = ["bone", "matched on", "split", "positives", "negatives", "neg/pos", "dropped"]
    rows = []
    for match in matches:
        for name, n in match.per_split.items():
            ratio = match.ratios.get(name)
            rows.append([match.bone, ", ".join(match.columns), name,
                         f"{n['positives_kept']} of {n['positives']}",
                         f"{n['negatives_kept']} of {n['negatives']}",
                         "-" if ratio is None else f"{ratio:.2f}",
                         str(n["positives"] - n["positives_kept"])])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [head, *rows]]
    return "\n".join(lines)
