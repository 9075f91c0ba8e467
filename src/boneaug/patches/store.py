"""Patch stores: one folder per domain with the patches, an index and a contact sheet.

A store folder holds

- ``patches.npy``: ``uint16`` array ``(N, P, P)``; value ``v`` means ``v / 65535``. uint16
  keeps 16-bit radiograph precision exactly at the size of float16 (float16 has only
  ~11 bits near 1.0, which would band bright bone).
- ``index.csv``: one row per patch, in the order of ``patches.npy``.
- ``sheet.png``: a contact sheet of up to 64 patches spread over the store, for a
  human to look at.

`load_patch_store` gives the patches back as float32 in ``[0, 1]``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from boneaug.errors import BoneaugError
from boneaug.files import atomic_path

PATCHES_FILE = "patches.npy"
INDEX_FILE = "index.csv"
SHEET_FILE = "sheet.png"
INFO_FILE = "patches.json"
SCALE = 65535.0
SHEET_MAX = 64


@dataclass
class PatchStore:
    """One patch domain: `patches` float32 ``(N, P, P)`` in ``[0, 1]``, one `index` row each."""

    patches: np.ndarray
    index: pd.DataFrame
    path: Path

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    @property
    def size(self) -> int:
        """The patch side P in pixels."""
        return int(self.patches.shape[-1])


def to_uint16(patches: np.ndarray) -> np.ndarray:
    """Float patches in ``[0, 1]`` (clipped) to the store's uint16 encoding."""
    return np.round(np.clip(patches, 0.0, 1.0) * SCALE).astype(np.uint16)


def contact_sheet(patches: np.ndarray, columns: int = 8, gap: int = 2) -> np.ndarray:
    """A uint8 image tiling up to `SHEET_MAX` patches ``(N, P, P)`` (float in [0, 1]) in a grid."""
    patches = np.asarray(patches, dtype=np.float32)[:SHEET_MAX]
    n = patches.shape[0]
    size = patches.shape[-1] if patches.ndim == 3 else 1
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    sheet = np.full((rows * (size + gap) + gap, cols * (size + gap) + gap), 128, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = gap + r * (size + gap), gap + c * (size + gap)
        sheet[y:y + size, x:x + size] = np.round(np.clip(patches[i], 0, 1) * 255).astype(np.uint8)
    return sheet


def write_patch_store(folder: str | Path, patches: np.ndarray, index: pd.DataFrame) -> Path:
    """Write a store: `patches` ``(N, P, P)`` (float in [0, 1], or already uint16) and `index`.

    Every file is written atomically; the index must have one row per patch.
    """
    folder = Path(folder)
    patches = np.asarray(patches)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must be (N, P, P), got shape {patches.shape}")
    if len(index) != patches.shape[0]:
        raise ValueError(f"{len(index)} index rows for {patches.shape[0]} patches")
    data = patches if patches.dtype == np.uint16 else to_uint16(patches)
    with atomic_path(folder / PATCHES_FILE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, data, allow_pickle=False)
    with atomic_path(folder / INDEX_FILE) as tmp:
        index.to_csv(tmp, index=False)
    # Evenly spaced over the store, so the sheet shows many source images, not the
    # per_lesion jittered copies of the first few lesions.
    picks = np.unique(np.linspace(0, max(len(data) - 1, 0), min(len(data), SHEET_MAX))
                      .round().astype(int))
    sheet = contact_sheet(data[picks].astype(np.float32) / SCALE)
    with atomic_path(folder / SHEET_FILE) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    return folder


def load_patch_store(folder: str | Path) -> PatchStore:
    """Load a store written by `write_patch_store`; patches come back float32 in ``[0, 1]``.

    Raises `BoneaugError` (one line naming the folder) when it is missing, unreadable,
    inconsistent, or holds no patch ("empty patch store").
    """
    folder = Path(folder)
    npy, csv = folder / PATCHES_FILE, folder / INDEX_FILE
    if not folder.is_dir():
        raise BoneaugError(f"{folder}: no such patch store folder; run `boneaug patches` first")
    for needed in (npy, csv):
        if not needed.is_file():
            raise BoneaugError(f"{folder}: not a patch store (no {needed.name}); "
                               "run `boneaug patches` first")
    try:
        raw = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BoneaugError(f"{npy}: not a readable patch array ({exc})") from None
    if raw.ndim != 3 or raw.shape[1] != raw.shape[2]:
        raise BoneaugError(f"{npy}: patch array has shape {raw.shape}; expected (N, P, P)")
    try:
        index = pd.read_csv(csv, keep_default_na=False)
    except pd.errors.EmptyDataError:
        index = pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BoneaugError(f"{csv}: not a readable CSV ({str(exc).strip()})") from None
    if raw.shape[0] == 0:
        raise BoneaugError(f"{folder}: empty patch store (0 patches)")
    if len(index) != raw.shape[0]:
        raise BoneaugError(f"{folder}: {PATCHES_FILE} has {raw.shape[0]} patches but "
                           f"{INDEX_FILE} has {len(index)} rows")
    if raw.dtype == np.uint16:
        patches = raw.astype(np.float32) / np.float32(SCALE)
    elif np.issubdtype(raw.dtype, np.floating):  # tolerate float stores written by hand
        patches = np.clip(raw.astype(np.float32), 0.0, 1.0)
    else:
        raise BoneaugError(f"{npy}: patch dtype {raw.dtype}; expected uint16")
    return PatchStore(patches=patches, index=index, path=folder)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else is one clear line."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BoneaugError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise BoneaugError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise BoneaugError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_domains(bone_dir: str | Path) -> tuple[PatchStore, PatchStore, dict[str, Any]]:
    """The two domains of one bone: ``(healthy, lesion, info)`` from ``<out>/<bone>/``.

    `info` is the parsed ``patches.json`` (settings, counts, source manifest).
    """
    bone_dir = Path(bone_dir)
    info_path = bone_dir / INFO_FILE
    if not info_path.is_file():
        raise BoneaugError(f"{bone_dir}: no {INFO_FILE}; not a patch folder written by "
                           "`boneaug patches`")
    info = read_json_object(info_path)
    healthy = load_patch_store(bone_dir / "healthy")
    lesion = load_patch_store(bone_dir / "lesion")
    if healthy.size != lesion.size:
        raise BoneaugError(f"{bone_dir}: healthy patches are {healthy.size} px but lesion "
                           f"patches are {lesion.size} px")
    return healthy, lesion, info
