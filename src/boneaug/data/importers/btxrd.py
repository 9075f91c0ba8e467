"""BTXRD (Yao et al., Sci. Data 2025): 3,746 radiographs of long bones, 1,867 with a tumour.

Layout (see docs/importing.md): ``dataset.csv`` (37 columns, one row per image),
``images/`` (JPEG; 27 files end in ``.jpg``, the CSV's ``image_id`` has the real name) and
``Annotations/<stem>.json`` (LabelMe) for tumour images. Three choices this importer
makes, because the data set leaves them open:

- **bone of a multi-site tumour image**: the first of its sites in `SITE_PRIORITY` (long
  bones first: femur > tibia > humerus > fibula > radius > ulna, then the others); every
  site is kept in the extra column ``sites``.
- **bone of a normal image**: normal images carry no site flag, only a region flag, so
  their bone is the region (``lower_limb``, ``upper_limb`` or ``pelvis``); `boneaug
  bones` learns which bone such a film shows. Every row keeps ``region`` (a tumour's
  from its bone, `boneaug.data.films.BONE_REGION`, unless its flags say otherwise).
- **patients**: there is no patient id. ``heuristic`` groups consecutive rows (by image
  number) with equal centre, age, gender, site flags, tumour flags (tumor, benign,
  malignant, subtype) and region flags into one patient, which keeps the frontal and
  lateral views of one patient in one split; ``image`` makes every image its own patient
  (leaky: the two views of one lesion can end up in train and test).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from boneaug.data.films import BONE_REGION
from boneaug.data.importers.common import (
    FindingTally,
    ImportReport,
    finish,
    load_json,
    summarise,
)
from boneaug.data.importers.csv_table import read_user_csv
from boneaug.data.importers.labelme import lesion_types, read_labelme
from boneaug.errors import BoneaugError

# dataset.csv site-flag column -> manifest bone
SITE_BONES = {
    "hand": "hand", "ulna": "ulna", "radius": "radius", "humerus": "humerus", "foot": "foot",
    "tibia": "tibia", "fibula": "fibula", "femur": "femur", "hip bone": "pelvis",
    "ankle-joint": "ankle", "knee-joint": "knee", "hip-joint": "hip", "wrist-joint": "wrist",
    "elbow-joint": "elbow", "shoulder-joint": "shoulder",
}
SITE_COLUMNS = tuple(SITE_BONES)
TUMOR_COLUMNS = ("tumor", "benign", "malignant")
SUBTYPE_COLUMNS = ("osteochondroma", "multiple osteochondromas", "simple bone cyst",
                   "giant cell tumor", "osteofibroma", "synovial osteochondroma", "other bt",
                   "osteosarcoma", "other mt")
REGION_COLUMNS = {"upper limb": "upper_limb", "lower limb": "lower_limb", "pelvis": "pelvis"}
VIEW_COLUMNS = ("frontal", "lateral", "oblique")
COLUMNS = (("image_id", "center", "age", "gender") + SITE_COLUMNS + TUMOR_COLUMNS
           + SUBTYPE_COLUMNS + tuple(REGION_COLUMNS) + VIEW_COLUMNS)
assert len(COLUMNS) == 37

# The bone of a multi-site image: long bones first (they are what per-bone work is about,
# and the most frequent sites), then flat bones, hands/feet, and joints last, since a joint
# site next to a bone site describes the same lesion less precisely.
SITE_PRIORITY = ("femur", "tibia", "humerus", "fibula", "radius", "ulna", "pelvis", "hand",
                 "foot", "knee", "hip", "shoulder", "elbow", "ankle", "wrist")
REGION_PRIORITY = ("lower_limb", "upper_limb", "pelvis")
PATIENT_MODES = ("heuristic", "image")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _flag(value: str, where: str, column: str) -> int:
    text = value.strip()
    if text in ("", "0", "0.0"):
        return 0
    if text in ("1", "1.0"):
        return 1
    raise BoneaugError(f"{where}, column {column}: {value!r} is not a 0/1 flag")


def _image_number(name: str) -> tuple[int, str]:
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else -1, name)


def group_patients(keys: list[tuple[Any, ...]], names: list[str]) -> list[int]:
    """Patient index per row: rows adjacent by image number with equal keys share one.

    `keys[i]` is what must be equal (centre, age, gender, flags); `names[i]` the image
    file name whose number orders the rows. Returns 0-based patient numbers in image order.
    """
    order = sorted(range(len(keys)), key=lambda i: _image_number(names[i]))
    patient = [0] * len(keys)
    current = -1
    previous: tuple[Any, ...] | None = None
    for i in order:
        if keys[i] != previous:
            current += 1
            previous = keys[i]
        patient[i] = current
    return patient


def import_btxrd(root: Path, out: Path, *, patients: str = "heuristic",
                 max_side: int | None = None) -> ImportReport:
    """Import the BTXRD folder `root` into a manifest at `out` (see the module docstring).

    Rows: ``image_id`` (file stem), ``path`` (``images/<file>``), ``patient_id``
    (``btxrd-p00042``, or ``btxrd-<stem>`` with ``patients="image"``), ``bone``, ``label``
    (the ``tumor`` flag), ``boxes`` and ``mask_path`` (from the LabelMe annotation: one box
    per finding, since BTXRD draws every tumour as a rectangle and a polygon, merged by
    `common.merge_findings`; the mask is the polygons), and the extra columns center, age,
    gender, benign, malignant, subtype, view, region, sites.
    Image pixels are not decoded (only headers are read), except with `max_side`: then
    images larger than that are written downscaled beside the manifest (`finish`).
    Raises a one-line BoneaugError naming the file and ``dataset.csv`` line for a missing
    column, a listed image that is absent, a flag that is not 0/1, or an annotation that
    is not LabelMe.
    """
    root, out = Path(root), Path(out)
    if patients not in PATIENT_MODES:
        raise BoneaugError(f"--patients {patients!r}: expected one of "
                           f"{', '.join(PATIENT_MODES)}")
    frame, csv_path = _read_table(root)
    images_dir, notes_dir = root / "images", root / "Annotations"
    rows: list[dict[str, Any]] = []
    where: list[str] = []
    keys: list[tuple[Any, ...]] = []
    names: list[str] = []
    masks = {}
    notes: dict[str, list[str]] = {k: [] for k in (
        "suffix", "clip", "ignored_json", "no_site", "many_regions", "inconsistent", "no_json")}
    inputs = [csv_path]
    tally = FindingTally()
    for pos, record in enumerate(frame.to_dict("records")):
        line = pos + 2
        name = record["image_id"].strip()
        row_where = f"{csv_path} line {line}"
        if not name:
            raise BoneaugError(f"{row_where}, column image_id: empty file name")
        row_where += f" ({name})"
        image_file = _image_file(images_dir, name, row_where, notes)
        flags = _Flags.of(record, row_where, notes)
        bone, region = flags.bone_and_region(row_where, notes)
        row: dict[str, Any] = {
            "image_id": image_file.stem, "path": f"images/{image_file.name}", "bone": bone,
            "label": flags.tumor, "boxes": [], "center": record["center"].strip(),
            "age": record["age"].strip(), "gender": record["gender"].strip(),
            "benign": str(flags.benign), "malignant": str(flags.malignant),
            "subtype": ";".join(flags.subtypes), "view": ";".join(flags.views),
            "region": region, "sites": ";".join(flags.sites), "lesion_types": "",
        }
        json_path = notes_dir / f"{image_file.stem}.json"
        if json_path.is_file():
            inputs.append(json_path)
            if flags.tumor:
                note = read_labelme(json_path, image_file, f"{csv_path.name} line {line}")
                notes["clip"] += note.warnings
                tally.add(note.findings)
                row["boxes"] = note.boxes
                row["lesion_types"] = lesion_types(note.labels)
                if note.shapes.polygons:
                    masks[len(rows)] = note.shapes
            else:
                data = load_json(json_path, f"{csv_path.name} line {line}")
                if isinstance(data, dict) and data.get("shapes"):
                    notes["ignored_json"].append(f"{row_where}: {json_path.name}")
        elif flags.tumor:
            notes["no_json"].append(row_where)
        rows.append(row)
        where.append(row_where)
        names.append(image_file.name)
        keys.append((row["center"], row["age"], row["gender"], tuple(flags.sites),
                     flags.tumor, flags.benign, flags.malignant, tuple(flags.subtypes),
                     tuple(flags.regions)))

    if patients == "heuristic":
        numbers = group_patients(keys, names)
        for row, number in zip(rows, numbers, strict=True):
            row["patient_id"] = f"btxrd-p{number + 1:05d}"
    else:
        for row in rows:
            row["patient_id"] = f"btxrd-{row['image_id']}"
    warnings = _warnings(rows, notes, patients) + tally.summary("annotation shapes")
    return finish(rows, root=root, out=out, where=where, warnings=warnings, inputs=inputs,
                  masks=masks, max_side=max_side)


def _read_table(root: Path) -> tuple[pd.DataFrame, Path]:
    """``dataset.csv`` of the BTXRD folder `root` (every column there) and its path."""
    if not root.is_dir():
        raise BoneaugError(f"{root}: no such folder")
    csv_path = root / "dataset.csv"
    frame = read_user_csv(csv_path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise BoneaugError(f"{csv_path}: missing column(s) {', '.join(repr(c) for c in missing)};"
                           " expected the 37 BTXRD columns (docs/importing.md)")
    if not (root / "images").is_dir():
        raise BoneaugError(f"{root / 'images'}: no such folder (BTXRD keeps its images there)")
    return frame, csv_path


def _image_file(images_dir: Path, name: str, row_where: str,
                notes: dict[str, list[str]]) -> Path:
    """The image a row names, or the one file of its stem with another suffix (noted)."""
    image_file = images_dir / name
    if image_file.is_file():
        return image_file
    found = [images_dir / (Path(name).stem + s) for s in IMAGE_SUFFIXES
             if (images_dir / (Path(name).stem + s)).is_file()]
    if not found:
        raise BoneaugError(f"{row_where}: {image_file}: no such image file")
    notes["suffix"].append(f"{row_where}: {name} is {found[0].name} on disk")
    return found[0]


@dataclass
class _Flags:
    """The 0/1 columns of one ``dataset.csv`` row, read and checked."""

    sites: list[str]
    tumor: int
    benign: int
    malignant: int
    subtypes: list[str]
    regions: list[str]
    views: list[str]

    @classmethod
    def of(cls, record: dict[str, Any], row_where: str,
           notes: dict[str, list[str]]) -> _Flags:
        sites = [SITE_BONES[c] for c in SITE_COLUMNS if _flag(record[c], row_where, c)]
        sites.sort(key=SITE_PRIORITY.index)
        tumor, benign, malignant = (_flag(record[c], row_where, c) for c in TUMOR_COLUMNS)
        subtypes = [c for c in SUBTYPE_COLUMNS if _flag(record[c], row_where, c)]
        regions = [r for c, r in REGION_COLUMNS.items() if _flag(record[c], row_where, c)]
        regions.sort(key=REGION_PRIORITY.index)
        views = [c for c in VIEW_COLUMNS if _flag(record[c], row_where, c)]
        if tumor != (benign or malignant) or (benign and malignant):
            notes["inconsistent"].append(f"{row_where}: tumor={tumor}, benign={benign}, "
                                         f"malignant={malignant}")
        if len(regions) > 1:
            notes["many_regions"].append(f"{row_where}: {', '.join(regions)}")
        return cls(sites, tumor, benign, malignant, subtypes, regions, views)

    def bone_and_region(self, row_where: str, notes: dict[str, list[str]]
                        ) -> tuple[str, str]:
        """The row's bone (its first site; a region for a normal film) and region."""
        if self.tumor and self.sites:
            bone = self.sites[0]
            # the bone's own region unless the flags say otherwise (e.g. a hip-joint image
            # flagged lower limb)
            home = BONE_REGION[bone]
            return bone, home if not self.regions or home in self.regions else self.regions[0]
        if self.regions:
            if self.tumor:
                notes["no_site"].append(row_where)
            # a normal image (or a tumour without site) knows only its region
            return self.regions[0], self.regions[0]
        raise BoneaugError(f"{row_where}: no site flag and no region flag (upper limb, lower "
                           "limb, pelvis); cannot tell the bone")


def _warnings(rows: list[dict[str, Any]], notes: dict[str, list[str]], patients: str
              ) -> list[str]:
    """Summaries of what the import noticed, and the pitfalls a user should not miss."""
    warnings: list[str] = []
    warnings += summarise(notes["suffix"], "images have another suffix on disk than in "
                          "dataset.csv; the file on disk is used")
    warnings += summarise(notes["clip"], "annotation notes")
    warnings += summarise(notes["inconsistent"], "rows whose tumor flag is not benign or "
                          "malignant (the tumor flag is the label)")
    warnings += summarise(notes["many_regions"], "rows with several region flags (the first "
                          "of lower_limb, upper_limb, pelvis is the region)")
    warnings += summarise(notes["no_site"], "tumour rows without a site flag; their bone is "
                          "their region")
    warnings += summarise(notes["ignored_json"], "normal rows with an annotation; the "
                          "annotation is ignored, the row stays normal")
    warnings += summarise(notes["no_json"], "tumour rows without an annotation in "
                          "Annotations/ (no lesion box)")
    n_patients = len({row["patient_id"] for row in rows})
    if patients == "heuristic":
        warnings.append(f"patients grouped by the adjacent-rows heuristic: {len(rows)} images "
                        f"-> {n_patients} patients (no patient id in BTXRD; see "
                        "docs/importing.md)")
    else:
        warnings.append("--patients image: each image is its own patient, so the frontal and "
                        "lateral views of one patient can land in different splits (leaky)")
    per_centre = Counter(row["center"] for row in rows)
    tumours = Counter(row["center"] for row in rows if row["label"] == 1)
    overall = sum(tumours.values()) / len(rows)
    for centre in sorted(per_centre):
        share = tumours[centre] / per_centre[centre]
        if abs(share - overall) > 0.25:
            warnings.append(
                f"centre {centre}: {tumours[centre]} of {per_centre[centre]} images are "
                f"tumours ({share:.0%}, against {overall:.0%} overall): a random split lets a "
                "classifier learn the centre; consider `boneaug split --group-by center "
                f"--holdout {centre}`")
    return warnings
