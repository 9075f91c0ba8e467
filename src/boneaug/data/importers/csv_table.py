"""A user's CSV with a column mapping: the most general way in.

`mapping` maps manifest fields to the user's column names; a field left out of it is
read from a column of its own name, if there is one. Boxes come either from a JSON
``boxes`` column or from four corner columns ``x0, y0, x1, y1`` (one box per row); several
rows of one image (one box each) are merged into one manifest row. A CSV has boxes only,
so of the rule `common.merge_findings` applies only its first part: near-identical boxes
of one image (the same finding listed twice) are one lesion.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from boneaug.data.importers.common import (
    FindingTally,
    ImportReport,
    Shape,
    finish,
    merge_findings,
    require_bone,
)
from boneaug.data.manifest import COLUMNS, parse_boxes
from boneaug.errors import BoneaugError
from boneaug.files import short

FIELDS = ("image_id", "path", "patient_id", "bone", "label", "boxes", "mask_path", "split")
CORNERS = ("x0", "y0", "x1", "y1")
TRUE_WORDS = {"1", "1.0", "true", "yes", "y"}
FALSE_WORDS = {"0", "0.0", "false", "no", "n"}


def read_user_csv(table: Path) -> pd.DataFrame:
    """The user's CSV as text cells (nothing parsed as numbers or NaN)."""
    if not table.is_file():
        raise BoneaugError(f"{table}: no such file")
    try:
        # index_col=False + warnings as errors: a row with one field too many is refused,
        # not read with every column shifted into the index (pandas' default).
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(table, dtype=str, keep_default_na=False, na_filter=False,
                                encoding="utf-8-sig", index_col=False)
    except pd.errors.ParserWarning:
        raise BoneaugError(f"{table}: a row has more fields than the header has columns "
                           "(an unquoted comma?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BoneaugError(f"{table}: not a readable CSV ({str(exc).strip()})") from None
    if len(frame.columns) == 1 and ";" in frame.columns[0]:
        raise BoneaugError(f"{table}: has one column {frame.columns[0]!r}; it looks "
                           "semicolon-separated - save it with commas")
    return frame


def _resolve_columns(frame: pd.DataFrame, table: Path, mapping: dict[str, str]
                     ) -> dict[str, str]:
    """{manifest field: the user's column} for every field the CSV provides."""
    allowed = FIELDS + CORNERS
    columns = list(frame.columns)
    listing = ", ".join(columns)
    used: dict[str, str] = {}
    for fld, theirs in mapping.items():
        if fld not in allowed:
            raise BoneaugError(f"--column {fld}={theirs}: unknown field {fld!r}; fields are "
                               f"{', '.join(allowed)}")
        if theirs not in frame.columns:
            raise BoneaugError(f"{table}: no column {theirs!r} (mapped to {fld}); the CSV has "
                               f"columns {listing}")
        used[fld] = theirs
    for fld in allowed:
        if fld not in used and fld in frame.columns:
            used[fld] = fld
    corners = [c for c in CORNERS if c in used]
    if corners and len(corners) != 4:
        missing = ", ".join(c for c in CORNERS if c not in used)
        raise BoneaugError(f"{table}: box corners need all of x0, y0, x1, y1; {missing} not "
                           f"mapped or found; the CSV has columns {listing}")
    if corners and "boxes" in used:
        raise BoneaugError(f"{table}: both a boxes column ({used['boxes']}) and corner columns "
                           "x0..y1 are given; map one of them")
    for fld, hint in (("path", "-c path=COLUMN"), ("label", "-c label=COLUMN")):
        if fld not in used:
            raise BoneaugError(f"{table}: no {fld} column; map one with {hint}; the CSV has "
                               f"columns {listing}")
    return used


def _label(value: str, positive_values: tuple[str, ...] | None, where: str,
           column: str) -> int:
    text = value.strip()
    if positive_values is not None:
        return int(text.lower() in {p.strip().lower() for p in positive_values})
    if text.lower() in TRUE_WORDS:
        return 1
    if text.lower() in FALSE_WORDS:
        return 0
    raise BoneaugError(f"{where}, column {column}: label is {value!r}; must be 0/1 or "
                       "true/false/yes/no (or pass --positive with the values meaning lesion)")


def _corner_box(values: list[str], where: str, columns: list[str]) -> list[list[float]]:
    if all(not v.strip() for v in values):
        return []
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        shown = ", ".join(f"{c}={v!r}" for c, v in zip(columns, values, strict=True))
        raise BoneaugError(f"{where}: box corners must all be numbers or all empty; got "
                           f"{shown}") from None
    if not all(math.isfinite(v) for v in numbers):
        raise BoneaugError(f"{where}: box corners must be finite numbers")
    x0, y0, x1, y1 = numbers
    if not (x1 > x0 and y1 > y0):
        raise BoneaugError(f"{where}: box [{x0:g},{y0:g},{x1:g},{y1:g}] needs x1 > x0 and "
                           "y1 > y0")
    return [[x0, y0, x1, y1]]


def import_csv(table: Path, out: Path, *, mapping: dict[str, str], bone: str | None,
               positive_values: tuple[str, ...] | None, images_root: Path | None
               ) -> ImportReport:
    """Import a user CSV (one row per image, or per box) into a manifest at `out`.

    - ``path`` (required): image file, relative to `images_root` (default: the CSV's folder)
      or absolute; ``image_id`` defaults to the file stem of ``path``.
    - ``label`` (required): 0/1, true/false, yes/no; or, with `positive_values`, 1 for
      those values (case-insensitive) and 0 for anything else.
    - ``bone``: a column (lower-cased, spaces and hyphens to '_' where that gives a known
      name, e.g. ``Hip bone`` -> ``pelvis``), or the constant `bone` - not both.
    - ``boxes`` (JSON list of ``[x0, y0, x1, y1]``) or corner columns ``x0, y0, x1, y1``;
      rows sharing an ``image_id`` are merged, their boxes joined; near-identical boxes
      of one image (IoU >= `common.DUPLICATE_IOU`) become one, the box around both.
    - ``patient_id``, ``mask_path``, ``split``: optional.

    Every other column is kept as an extra column (renamed ``source_<name>`` when its name
    is a manifest column used for something else). Raises a one-line BoneaugError naming
    the CSV line for any bad cell; nothing is written then.
    """
    table, out = Path(table), Path(out)
    frame = read_user_csv(table)
    used = _resolve_columns(frame, table, mapping)
    root = Path(images_root) if images_root is not None else table.parent
    if images_root is not None and not root.is_dir():
        raise BoneaugError(f"{root}: no such folder (--images)")
    if bone is not None and "bone" in used:
        raise BoneaugError(f"{table}: has a bone column ({used['bone']}) and --bone {bone} was "
                           "given; use one of them")
    if bone is None and "bone" not in used:
        raise BoneaugError(f"{table}: no bone column; map one with -c bone=COLUMN or pass "
                           f"--bone; the CSV has columns {', '.join(frame.columns)}")
    constant_bone = require_bone(bone, "--bone") if bone is not None else None
    consumed = set(used.values())
    extras = {c: (f"source_{c}" if c in COLUMNS else c) for c in frame.columns
              if c not in consumed}

    merged: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    normal_values: Counter[str] = Counter()  # with --positive: what made a film normal
    for pos, record in enumerate(frame.to_dict("records")):
        line = pos + 2  # the header is line 1, as in an editor
        where = f"{table} line {line}"
        path = record[used["path"]].strip()
        if not path:
            raise BoneaugError(f"{where}, column {used['path']}: the image path is empty")
        if not Path(path).is_absolute():
            path = path.replace("\\", "/")  # a path written on Windows: a\b.png is a/b.png
        image_id = record[used["image_id"]].strip() if "image_id" in used else ""
        image_id = image_id or Path(path).stem
        row: dict[str, Any] = {
            "image_id": image_id,
            "path": path,
            "label": _label(record[used["label"]], positive_values, where, used["label"]),
            "bone": constant_bone or require_bone(record[used["bone"]],
                                                  f"{where}, column {used['bone']}"),
        }
        for fld in ("patient_id", "mask_path", "split"):
            if fld in used:
                row[fld] = record[used[fld]].strip()
        if "boxes" in used:
            try:
                row["boxes"] = parse_boxes(record[used["boxes"]])
            except ValueError as exc:
                raise BoneaugError(f"{where}, column {used['boxes']}: malformed boxes: {exc}"
                                   ) from None
        elif "x0" in used:
            row["boxes"] = _corner_box([record[used[c]] for c in CORNERS], where,
                                       [used[c] for c in CORNERS])
        else:
            row["boxes"] = []
        for theirs, ours in extras.items():
            row[ours] = record[theirs]
        if positive_values is not None and not row["label"]:
            normal_values[record[used["label"]].strip()] += 1
        if image_id in merged:
            _merge(merged[image_id], row, where, first_line[image_id])
        else:
            merged[image_id] = row
            first_line[image_id] = line
    if not merged:
        raise BoneaugError(f"{table}: has no rows")
    rows = list(merged.values())
    tally = FindingTally()
    for row in rows:
        findings = merge_findings([Shape("box", box) for box in row["boxes"]])
        tally.add(findings)
        row["boxes"] = [finding.box for finding in findings]
    where_rows = [f"{table} line {first_line[r['image_id']]}" for r in rows]
    warnings = tally.summary("boxes", "one box listed twice")
    if normal_values:  # a misspelt lesion value would become a normal film without a word
        listed = ", ".join(f"{value!r} ({count} row{'s' if count != 1 else ''})"
                           for value, count
                           in sorted(normal_values.items(), key=lambda kv: (-kv[1], kv[0])))
        warnings.append(f"--positive {', '.join(positive_values or ())}: the other values of "
                        f"column {used['label']} were taken as normal: {short(listed, 300)}")
    return finish(rows, root=root, out=out, where=where_rows, warnings=warnings, inputs=[table])


def _merge(first: dict[str, Any], row: dict[str, Any], where: str, first_line: int) -> None:
    """Fold another row of the same image (more boxes) into its first row; duplicates are
    merged later, with every box of the image, by `merge_findings`."""
    for fld in ("path", "label", "bone", "patient_id", "mask_path", "split"):
        if first.get(fld, "") != row.get(fld, ""):
            raise BoneaugError(f"{where}: image {row['image_id']!r} has {fld} "
                               f"{row.get(fld, '')!r} here but {first.get(fld, '')!r} on "
                               f"line {first_line}; rows of one image must agree")
    first["boxes"].extend(row["boxes"])
