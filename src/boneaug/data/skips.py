"""Films a stage could not use: one awkward film costs that film, never the run.

A stage that meets a film it cannot use (unreadable, too small, no bone found, no place
for a lesion) records it here with its reason and goes on. It writes the list as
``skipped.csv`` (``stage, image_id, path, reason``) beside its outputs, and stops with
one line only when too few usable films remain: when more than `MAX_SKIPPED_SHARE` of the
films it needed were skipped, or none is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from boneaug.errors import BoneaugError
from boneaug.files import atomic_path

MAX_SKIPPED_SHARE = 0.5   # a stage stops when more than this share of its films is unusable
MIN_FILM_SIDE = 32        # px; a smaller image is not a radiograph boneaug can use
SKIPPED_FILE = "skipped.csv"
COLUMNS = ("stage", "image_id", "path", "reason")


@dataclass
class Skips:
    """The films one stage skipped, each once, in the order met."""

    stage: str
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, image_id: str, path: str | Path, reason: str) -> None:
        if any(r["image_id"] == str(image_id) for r in self.rows):
            return  # a film is skipped once, for its first reason
        self.rows.append({"stage": self.stage, "image_id": str(image_id), "path": str(path),
                          "reason": reason})

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, image_id: object) -> bool:
        return any(r["image_id"] == str(image_id) for r in self.rows)

    def ids(self) -> set[str]:
        return {r["image_id"] for r in self.rows}

    def check(self, total: int, what: str, skipped: int | None = None) -> None:
        """Raise one line when fewer usable films remain than the stage needs.

        `total` is the number of films the stage needed (`what` names them, e.g. "normal
        train films of femur") and `skipped` how many of them were skipped (default: all
        skips so far); it stops when more than `MAX_SKIPPED_SHARE` of them, or all of
        them, were skipped.
        """
        skipped = len(self.rows) if skipped is None else skipped
        if total and (skipped >= total or skipped > MAX_SKIPPED_SHARE * total):
            first = self.rows[0] if self.rows else {"image_id": "?", "reason": "?"}
            raise BoneaugError(
                f"{self.stage}: {skipped} of {total} {what} could not be used (more than "
                f"{MAX_SKIPPED_SHARE:.0%}, the most a stage skips before it stops); first: "
                f"{first['image_id']}: {first['reason']}")

    def summary(self) -> str:
        """One line for the terminal, e.g. ``3 films skipped (first: IMG1: no bone found)``."""
        if not self.rows:
            return ""
        first = self.rows[0]
        return (f"{len(self.rows)} film(s) skipped (first: {first['image_id']}: "
                f"{first['reason']})")

    def write(self, folder: str | Path, name: str = SKIPPED_FILE) -> Path:
        """Write ``skipped.csv`` (or `name`) into `folder`; a header only when nothing was
        skipped."""
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pd.DataFrame(self.rows, columns=list(COLUMNS)).to_csv(tmp, index=False)
        return path


def read_skipped(folder: str | Path) -> pd.DataFrame:
    """A stage folder's ``skipped.csv`` (empty table when there is none)."""
    path = Path(folder) / SKIPPED_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def film_problem(image_shape: tuple[int, ...]) -> str | None:
    """Why an image of this shape is not a usable radiograph, or None when it is."""
    if len(image_shape) != 2:
        return f"not a single grey image (shape {image_shape})"
    height, width = image_shape
    if min(height, width) < MIN_FILM_SIDE:
        return f"{width}x{height} px is smaller than {MIN_FILM_SIDE} px on a side"
    return None
