"""The manifest: one CSV row per radiograph, the contract between all stages.

Columns (DESIGN.md); extra columns are kept and written back unchanged:

==============  ==============================================================
``image_id``    unique id
``path``        image file, relative to the manifest's folder, or absolute
``patient_id``  the unit of splitting; defaults to ``image_id``
``bone``        lower-case bone name (`BONES`) or, for films that only know their
                limb region (or nothing), a region name or ``unknown`` (`REGIONS`)
``label``       0 = no lesion, 1 = lesion
``boxes``       JSON list of ``[x0, y0, x1, y1]`` lesion boxes in pixels
``mask_path``   optional lesion mask (same folder rule as ``path``)
``split``       ``train`` / ``val`` / ``test``, or empty before splitting
``origin``      ``real`` or ``synthetic``
``provenance``  JSON object, required for synthetic rows
==============  ==============================================================

In memory a manifest is a `Manifest`: a pandas table whose core columns are typed
(``label`` int, ``boxes`` a list of 4-float lists, everything else str, ``""`` when
empty) and the folder its relative paths are resolved against.

Invariants, enforced by `validate_manifest` and by `save_manifest`: ids are unique; a
synthetic row is never in ``val`` or ``test``; a patient never spans two splits.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from boneaug.data.imageio import cut_short, image_size
from boneaug.data.skips import film_problem
from boneaug.errors import BoneaugError, ManifestError
from boneaug.files import MESSAGE_LIMIT, atomic_path, read_csv_text, short

COLUMNS = ("image_id", "path", "patient_id", "bone", "label", "boxes", "mask_path", "split",
           "origin", "provenance")
REQUIRED = ("image_id", "path", "bone", "label")
BONES = frozenset({
    "femur", "tibia", "fibula", "humerus", "radius", "ulna", "hand", "foot", "pelvis",
    "spine", "rib", "clavicle", "scapula", "skull", "patella",
    "knee", "ankle", "hip", "elbow", "shoulder", "wrist",
})
# Labels that name no bone: a limb region, or nothing known ("unknown"); `boneaug bones`
# assigns bones to such films (boneaug.data.films).
REGIONS = frozenset({"lower_limb", "upper_limb", "unknown"})
SPLITS = ("train", "val", "test")
ORIGINS = ("real", "synthetic")

Box = list[float]


@dataclass(frozen=True)
class Problem:
    """One finding about one manifest row (or the whole file when `line` is None)."""

    file: str
    line: int | None
    column: str | None
    message: str
    image_id: str | None = None
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}"
            if self.image_id:
                where += f" (image_id {self.image_id})"
        if self.column:
            where += f", column {self.column}"
        prefix = "" if self.severity == "error" else "warning: "
        return f"{prefix}{short(where, 2 * MESSAGE_LIMIT)}: {short(self.message)}"


@dataclass
class Manifest:
    """A manifest table and the folder its relative paths are resolved against."""

    table: pd.DataFrame
    root: Path
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.table)

    def resolve(self, path: str) -> Path:
        """The file a ``path``/``mask_path`` value points at."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def image_path(self, index: Any) -> Path:
        return self.resolve(str(self.table.at[index, "path"]))

    def copy(self) -> Manifest:
        return Manifest(self.table.copy(deep=True), self.root, self.source)

    def files(self) -> list[Path]:
        """The manifest file and every file its rows point at (images, masks): what a
        command must never write over."""
        found = [self.source] if self.source is not None else []
        columns = [c for c in self.table.columns if c == "path" or c.endswith("mask_path")]
        for column in columns:
            found += [self.resolve(str(v)) for v in self.table[column].unique() if str(v)]
        return found


# --------------------------------------------------------------------------- boxes


def parse_boxes(text: Any) -> list[Box]:
    """Parse the ``boxes`` cell: a JSON list of ``[x0, y0, x1, y1]``; empty means none.

    Raises ValueError with a short reason for anything else.
    """
    if isinstance(text, list):
        raw = text
    else:
        text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
        if not text.strip():
            return []
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None
        except RecursionError:  # "[[[[..." nested past Python's limit
            raise ValueError("not a list of boxes (nested too deep)") from None
    if not isinstance(raw, list):
        raise ValueError("must be a JSON list of [x0, y0, x1, y1] boxes")
    boxes: list[Box] = []
    for i, box in enumerate(raw):
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise ValueError(f"box {i} is {short(json.dumps(box), 80)}; expected "
                             "[x0, y0, x1, y1]")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise ValueError(f"box {i} has a non-numeric value: {short(json.dumps(box), 80)}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise ValueError(f"box {i} has a non-finite value")
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box {i} {short(json.dumps(box), 80)} needs x1 > x0 and y1 > y0")
        boxes.append([x0, y0, x1, y1])
    return boxes


def format_boxes(boxes: Iterable[Iterable[float]]) -> str:
    """The JSON text of a box list, integers written without a decimal point."""
    out = [[int(v) if float(v).is_integer() else round(float(v), 2) for v in box]
           for box in boxes]
    return json.dumps(out, separators=(",", ":"))


# --------------------------------------------------------------------------- building


def new_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A typed manifest table from row dicts, filling the contract's defaults.

    Missing ``patient_id`` becomes ``image_id``; missing ``origin`` becomes ``real``;
    ``boxes`` may be given as lists or JSON text. Extra keys become extra columns.
    """
    table = pd.DataFrame(list(rows))
    if table.empty:
        table = pd.DataFrame(columns=list(COLUMNS))
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """Fill defaults and coerce the core columns; raises ValueError on bad cells."""
    table = table.copy()
    for column in COLUMNS:
        if column not in table.columns:
            table[column] = ""
    for column in table.columns:
        if column in ("label", "boxes"):
            continue
        table[column] = table[column].map(lambda v: "" if _is_blank(v) else str(v)).astype(object)
    table["patient_id"] = [p or i for p, i in zip(table["patient_id"], table["image_id"],
                                                  strict=True)]
    table["origin"] = [o or "real" for o in table["origin"]]
    table["label"] = [int(v) if not _is_blank(v) else -1 for v in table["label"]]
    table["boxes"] = [parse_boxes(v) for v in table["boxes"]]
    ordered = list(COLUMNS) + [c for c in table.columns if c not in COLUMNS]
    return table[ordered].reset_index(drop=True)


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


# --------------------------------------------------------------------------- loading


def read_manifest(path: str | Path) -> tuple[Manifest, list[Problem]]:
    """Read a manifest CSV without touching its images.

    Returns the manifest (rows that could not be typed keep safe defaults) and the
    problems found while typing it. Raises `ManifestError` only when the file itself is
    unusable (missing, not CSV, required columns absent).
    """
    path = Path(path)
    name = str(path)
    raw = read_csv_text(path, "manifest", ManifestError)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ManifestError(f"{name}: missing required column(s) {', '.join(missing)}; "
                            f"it has {', '.join(raw.columns) or 'none'}")
    problems: list[Problem] = []
    labels: list[int] = []
    boxes: list[list[Box]] = []
    for pos, (image_id, label, box_text) in enumerate(
        zip(raw["image_id"], raw["label"],
            raw["boxes"] if "boxes" in raw.columns else [""] * len(raw), strict=True)
    ):
        line = pos + 2
        text = label.strip()
        if text in ("0", "1"):
            labels.append(int(text))
        else:
            labels.append(-1)
            problems.append(Problem(name, line, "label", f"label is {label!r}; must be 0 or 1",
                                    image_id))
        try:
            boxes.append(parse_boxes(box_text))
        except ValueError as exc:
            boxes.append([])
            problems.append(Problem(name, line, "boxes", f"malformed boxes: {exc}", image_id))
    raw = raw.copy()
    raw["label"] = labels
    raw["boxes"] = boxes
    return Manifest(_typed(raw), path.parent.resolve(), path.resolve()), problems


def load_manifest(path: str | Path, *, check_images: bool = True,
                  unreadable_ok: bool = False) -> Manifest:
    """Read and validate a manifest; raise `ManifestError` (one line) if it has errors.

    Warnings (such as positives without boxes) do not raise; `validate_manifest` lists
    them. With `check_images`, every image is checked to exist and be readable, and
    boxes are checked against the image size (headers only, no pixel decoding);
    `unreadable_ok`: an image that cannot be read is no error (its caller counts it),
    everything else still is.
    """
    manifest, problems = check_manifest(path, check_images=check_images)
    errors = [p for p in problems if p.severity == "error"
              and not (unreadable_ok and p.column == "path")]
    if errors:
        more = (f" (and {len(errors) - 1} more; `boneaug validate {path}` lists them all)"
                if len(errors) > 1 else "")
        raise ManifestError(f"{errors[0]}{more}")
    return manifest


def check_manifest(path: str | Path, *, check_images: bool = True
                   ) -> tuple[Manifest, list[Problem]]:
    """Read a manifest and list all its problems, each cell reported once, in row order."""
    manifest, problems = read_manifest(path)
    seen = {(p.line, p.column) for p in problems}  # e.g. a label that did not parse
    problems += [p for p in validate_manifest(manifest, check_images=check_images)
                 if (p.line, p.column) not in seen]
    problems.sort(key=lambda p: (p.line or 0))
    return manifest, problems


def validate_manifest(manifest: Manifest, *, check_images: bool = True) -> list[Problem]:
    """Every problem of a typed manifest, in row order; warnings have severity 'warning'."""
    table = manifest.table
    name = str(manifest.source) if manifest.source else "manifest"
    problems: list[Problem] = []

    def add(pos: int | None, column: str | None, message: str, severity: str = "error",
            image_id: str | None = None) -> None:
        line = None if pos is None else pos + 2
        problems.append(Problem(name, line, column, message, image_id, severity))

    seen_ids: dict[str, int] = {}
    patient_split: dict[str, tuple[str, int]] = {}
    mask_columns = [k for k, c in enumerate(table.columns) if str(c).endswith("mask_path")]
    for pos, row in enumerate(table.itertuples(index=False)):
        image_id = str(row.image_id)
        if not image_id:
            add(pos, "image_id", "image_id is empty")
        elif image_id in seen_ids:
            add(pos, "image_id", f"duplicate image_id (first on line {seen_ids[image_id] + 2})",
                image_id=image_id)
        else:
            seen_ids[image_id] = pos
        if row.label not in (0, 1):
            add(pos, "label", f"label is {row.label!r}; must be 0 or 1", image_id=image_id)
        if row.bone not in BONES and row.bone not in REGIONS:
            add(pos, "bone", f"unknown bone {row.bone!r}; expected one of "
                f"{', '.join(sorted(BONES | REGIONS))}", image_id=image_id)
        if row.origin not in ORIGINS:
            add(pos, "origin", f"origin is {row.origin!r}; must be real or synthetic",
                image_id=image_id)
        if row.split and row.split not in SPLITS:
            add(pos, "split", f"split is {row.split!r}; must be train, val, test or empty",
                image_id=image_id)
        if row.origin == "synthetic" and row.split in ("val", "test"):
            add(pos, "split", f"synthetic image in the {row.split} split; synthetic images "
                "may only be in train", image_id=image_id)
        if row.origin == "synthetic":
            try:
                prov = json.loads(row.provenance) if row.provenance else None
            except json.JSONDecodeError:
                prov = "bad"
            if not isinstance(prov, dict):
                add(pos, "provenance", "a synthetic row needs a JSON object of provenance",
                    image_id=image_id)
        if row.split:
            first = patient_split.setdefault(row.patient_id, (row.split, pos))
            if first[0] != row.split:
                add(pos, "split", f"patient {row.patient_id!r} is in {row.split} here but in "
                    f"{first[0]} on line {first[1] + 2}; a patient must not span splits",
                    image_id=image_id)
        if row.label == 0 and row.boxes:
            add(pos, "boxes", "label 0 (no lesion) but lesion boxes are given",
                image_id=image_id)
        if row.label == 1 and not row.boxes:
            add(pos, "boxes", "positive without lesion boxes: usable for classification, "
                "not for lesion patches", "warning", image_id)
        if check_images:
            image_file = manifest.resolve(row.path)
            if not row.path:
                add(pos, "path", "path is empty", image_id=image_id)
                continue
            try:
                height, width = image_size(image_file)
                broken = cut_short(image_file)
            except BoneaugError as exc:
                add(pos, "path", str(exc), image_id=image_id)
                continue
            if broken:
                add(pos, "path", f"{image_file}: {broken}", image_id=image_id)
                continue
            small = film_problem((height, width))
            if small:  # every stage skips such a film; its boxes and masks still checked
                add(pos, "path", f"{image_file}: {small}; every stage will skip it",
                    "warning", image_id)
            for i, (x0, y0, x1, y1) in enumerate(row.boxes):
                if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                    box = short(format_boxes([[x0, y0, x1, y1]]), 80)
                    add(pos, "boxes", f"box {i} {box} is outside the {width}x{height} image",
                        image_id=image_id)
            for column in mask_columns:
                problem = _mask_problem(manifest, table.iat[pos, column], (height, width))
                if problem:
                    add(pos, table.columns[column], problem, image_id=image_id)
    return problems


def _mask_problem(manifest: Manifest, value: Any, shape: tuple[int, int]) -> str | None:
    """Why the mask file of a ``*mask_path`` cell cannot serve its image of `shape`
    ``(H, W)`` (missing, unreadable, another size), or None."""
    if not isinstance(value, str) or not value:
        return None
    mask_file = manifest.resolve(value)
    if not mask_file.is_file():
        return f"{mask_file}: no such mask file"
    try:
        size = image_size(mask_file)
    except BoneaugError as exc:
        return str(exc)
    if size != shape:
        return (f"{mask_file}: the mask is {size[1]}x{size[0]} px but its image is "
                f"{shape[1]}x{shape[0]}")
    return None


# --------------------------------------------------------------------------- saving


def check_invariants(manifest: Manifest) -> None:
    """Raise `ManifestError` if the manifest breaks an invariant that no output may break."""
    for problem in validate_manifest(manifest, check_images=False):
        if problem.severity == "error" and problem.column in ("image_id", "split", "label",
                                                               "origin", "provenance"):
            raise ManifestError(f"refusing to write a manifest that breaks the contract: "
                                f"{problem}")


def save_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write the manifest atomically to `path`, re-basing relative paths on its folder.

    Every file column (`file_columns`: ``path``, ``mask_path`` and any ``*_path``) is
    re-based. Refuses (ManifestError) a manifest that breaks the invariants.
    """
    path = Path(path)
    check_invariants(manifest)
    new_root = path.parent.resolve()
    out = manifest.table.copy()
    path_columns = file_columns(out)
    if new_root != manifest.root:
        for column in path_columns:
            out[column] = [rebase_path(str(v), manifest.root, new_root) for v in out[column]]
    out["label"] = out["label"].astype(int).astype(str)
    out["boxes"] = [format_boxes(b) if b else "" for b in out["boxes"]]
    if path.is_dir():
        raise ManifestError(f"{path}: is a folder; give the manifest file to write "
                            "(e.g. manifest.csv)")
    try:
        with atomic_path(path) as tmp:
            out.to_csv(tmp, index=False)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot write the manifest ({exc.strerror})") from None
    manifest.root, manifest.source = new_root, path.resolve()
    manifest.table[path_columns] = out[path_columns]
    return path


def file_columns(table: pd.DataFrame) -> list[str]:
    """The columns that hold file paths: ``path`` and every column named ``*_path``.

    They are all relative to the manifest's folder (or absolute) and re-based together
    when a manifest is saved elsewhere, so extra files such as the phantom's
    ``bone_mask_path`` keep pointing at the right place.
    """
    return [c for c in table.columns if c == "path" or str(c).endswith("_path")]


def rebase_path(value: str, old_root: Path, new_root: Path) -> str:
    """A relative file path under `old_root`, re-written relative to `new_root`."""
    if not value or Path(value).is_absolute():
        return value
    target = (old_root / value).resolve()
    try:
        return os.path.relpath(target, new_root)
    except ValueError:  # another drive (Windows): keep it absolute
        return str(target)
