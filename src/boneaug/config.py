"""Typed configs loaded from YAML, with one-line errors naming the file and the key.

Each stage owns its config dataclass (e.g. `boneaug.gan.GanConfig`); this module only
reads YAML into plain mappings and picks sections, so a config file can be written
per stage or as one document with a section per stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from boneaug.errors import BoneaugError

T = TypeVar("T")


def check_known(cls: type, values: dict[str, Any], where: str) -> None:
    """Refuse a setting `cls` (a dataclass) does not have: a typo must not silently run the
    default."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BoneaugError(f"{where}: unknown setting {unknown[0]!r} (known: "
                           f"{', '.join(sorted(known))})")


def build_config(cls: type[T], values: dict[str, Any], where: str) -> T:
    """`cls(**values)` after `check_known`, then its own `validate(where)`."""
    check_known(cls, values, where)
    config = cls(**values)
    config.validate(where)  # type: ignore[attr-defined]
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or empty file, bad YAML or a non-mapping
    is one clear line (an empty file would silently run every default)."""
    path = Path(path)
    if not path.is_file():
        raise BoneaugError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BoneaugError(f"{path}: not a UTF-8 text file (byte {exc.start}); a config is "
                           "YAML text") from None
    except OSError as exc:
        raise BoneaugError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BoneaugError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None or data == {}:
        raise BoneaugError(f"{path}: the config file is empty; write the settings to change "
                           "(or leave out --config for the defaults)")
    if not isinstance(data, dict):
        raise BoneaugError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def section(data: dict[str, Any], name: str, path: str | Path) -> dict[str, Any]:
    """`data[name]` if the document has that section, else the whole document."""
    if name not in data:
        return data
    value = data[name]
    if not isinstance(value, dict):
        raise BoneaugError(f"{path}: section {name!r} must be a mapping of settings")
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` command-line overrides; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BoneaugError(f"--set {item!r}: expected KEY=VALUE")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise BoneaugError(f"--set {item!r}: value is not a valid scalar") from None
        if isinstance(parsed, str):  # YAML 1.1 reads "2e-4" as text; a user means a number
            with contextlib.suppress(ValueError):
                parsed = float(parsed)
        out[key.strip()] = parsed
    return out
