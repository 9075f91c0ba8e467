"""Which films show which bone: the one rule that every per-bone stage uses.

Real data sets name the bone of a lesion film, but label normal films by limb region or
not at all, and a joint film shows several bones. A film is **of bone B** when

1. its ``bone`` column names B: the data set's or the user's own label always wins;
2. or its ``bone`` column names only a region (``lower_limb``, ``upper_limb``) or
   ``unknown``, and its ``assigned_bones`` column lists B. `boneaug bones` fills that
   column with every bone its film classifier gives at least the stated confidence
   (``bone_scores`` keeps every score, ``bone_source`` says ``model``); a user who writes
   ``assigned_bones`` themselves is never overwritten (``bone_source`` ``user``);
3. or, only where a caller asks for it, its ``bone`` column is one of `negatives_from`
   (the older rule "all normals of the bone's limb region", kept for old configs: it lets
   a classifier tell positives from negatives by anatomy);
4. and, whatever rules 1-3 say, its ``matched_out`` column does not list B: matching
   (`boneaug.data.matching`) left that film out of B's positives and negatives. It stays
   a film of every other bone it shows: a knee film left out for the femur is still a
   tibia negative.

A bone's positives are its films with a lesion *whose bone column names it* (and that
matching kept for it): a lesion on a film of unknown bone may sit on any of its bones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from boneaug.data.manifest import REGIONS
from boneaug.errors import BoneaugError

# The region of a bone: a film labelled "lower_limb" is never assigned a humerus. (BTXRD's
# importer also takes a tumour's region from here when its flags name none.)
BONE_REGION = {
    "femur": "lower_limb", "tibia": "lower_limb", "fibula": "lower_limb", "foot": "lower_limb",
    "knee": "lower_limb", "ankle": "lower_limb", "patella": "lower_limb",
    "humerus": "upper_limb", "radius": "upper_limb", "ulna": "upper_limb", "hand": "upper_limb",
    "elbow": "upper_limb", "shoulder": "upper_limb", "wrist": "upper_limb",
    "clavicle": "upper_limb", "scapula": "upper_limb",
    "pelvis": "pelvis", "hip": "pelvis",
}

ASSIGNED_COLUMN = "assigned_bones"
SCORES_COLUMN = "bone_scores"
SOURCE_COLUMN = "bone_source"
# The bones for which matching left a film out (rule 4), ";"-separated like assigned_bones.
MATCHED_OUT_COLUMN = "matched_out"


def split_bones(value: object) -> list[str]:
    """The bones of a ``;``-separated cell (``"femur;tibia"``), lower-case, in order."""
    blank = value is None or (isinstance(value, float) and math.isnan(value))
    text = "" if blank else str(value)
    return [b.strip().lower() for b in text.split(";") if b.strip()]


def is_region(bone: object) -> bool:
    """True when a ``bone`` cell names a region or nothing, not a bone."""
    text = "" if bone is None else str(bone).strip()
    return not text or text in REGIONS


def fits_label(bone: str, label: object) -> bool:
    """Whether a film labelled `label` (a region or ``unknown``) may show `bone`."""
    region = BONE_REGION.get(bone)
    text = "" if label is None else str(label).strip()
    return region is None or text in ("", "unknown") or text == region


def of_bone(table: pd.DataFrame, bone: str, negatives_from: Iterable[str] = ()) -> pd.Series:
    """Boolean Series over `table`: the rows whose film is of `bone` (rules in the module
    doc)."""
    named = table["bone"] == bone
    if ASSIGNED_COLUMN in table.columns:
        open_label = table["bone"].map(is_region)
        listed = table[ASSIGNED_COLUMN].map(lambda v: bone in split_bones(v))
        named = named | (open_label & listed)
    extra = set(negatives_from) - {bone}
    if extra:
        named = named | table["bone"].isin(extra)
    return named.astype(bool) & ~matched_out(table, bone)


def check_negatives_from(table: pd.DataFrame, negatives_from: Iterable[str], where: str
                         ) -> None:
    """Refuse a `negatives_from` name that no film's ``bone`` column holds: a misspelt
    region would otherwise be ignored and the bone trained without those negatives."""
    present = {str(v) for v in table["bone"].unique()}
    for name in negatives_from:
        if name not in present:
            raise BoneaugError(f"{where}: negatives_from {name!r}: no film has that bone or "
                               f"region (the manifest has {', '.join(sorted(present))})")


def matched_out(table: pd.DataFrame, bone: str) -> pd.Series:
    """Boolean Series over `table`: the rows that matching left out for `bone` (rule 4);
    all False when the table has no ``matched_out`` column."""
    if MATCHED_OUT_COLUMN not in table.columns:
        return pd.Series(False, index=table.index)
    return table[MATCHED_OUT_COLUMN].map(lambda v: bone in split_bones(v)).astype(bool)


def normals_of(table: pd.DataFrame, bone: str, negatives_from: Iterable[str] = ()
               ) -> pd.Series:
    """Rows without a lesion whose film is of `bone`: the bone's negatives."""
    return of_bone(table, bone, negatives_from) & (table["label"] == 0)


def positives_of(table: pd.DataFrame, bone: str) -> pd.Series:
    """Rows with a lesion of `bone`: the ``bone`` column must name it (rule 4 applies)."""
    return (table["bone"] == bone) & (table["label"] == 1) & ~matched_out(table, bone)
