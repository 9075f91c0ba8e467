"""Typed configs loaded from YAML, with one-line errors naming the file and the key.

Each stage owns its config dataclass (e.g. `boneaug.gan.GanConfig`); this module reads
YAML into plain mappings, picks sections, and holds the one set of value checks every
config's `validate(where)` uses (`check_number`, `check_choice`, `check_device`,
`check_amp`), so every bad value is reported alike:
``<where>.<name>: must be <rule> (got <value>)``, e.g.
``classifier.epochs: must be an integer >= 1 (got 0)``.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from boneaug.errors import BoneaugError

T = TypeVar("T")


# `amp` of every training config: bf16 autocast where it is fast, always, or never. YAML
# `true` / `false` mean "bf16" / "off" (`normalise_amp`).
AMP_CHOICES = ("auto", "bf16", "off")


def config_error(where: str, name: str, value: Any, rule: str) -> BoneaugError:
    """The one format of a bad setting: ``<where>.<name>: <rule> (got <value>)``."""
    return BoneaugError(f"{where}.{name}: {rule} (got {value!r})")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as YAML spells it
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_number(where: str, name: str, value: Any, lo: float | None = None,
                 hi: float | None = None, *, integer: bool = False,
                 bounds: str = "[]") -> None:
    """Refuse `value` unless it is a finite number (an int when `integer`; never a bool)
    within `lo` .. `hi`. `bounds` says which ends are included, as in interval notation:
    "[]" both, "[)" `lo` only, "(]" `hi` only, "()" neither."""
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value)
    if ok and lo is not None:
        ok = value >= lo if bounds[0] == "[" else value > lo
    if ok and hi is not None:
        ok = value <= hi if bounds[1] == "]" else value < hi
    if ok:
        return
    kind = "an integer" if integer else "a number"
    if lo is not None and hi is not None:
        rule = f"{kind} in {bounds[0]}{_shown(lo)}, {_shown(hi)}{bounds[1]}"
    elif lo is not None:
        rule = f"{kind} {'>=' if bounds[0] == '[' else '>'} {_shown(lo)}"
    elif hi is not None:
        rule = f"{kind} {'<=' if bounds[1] == ']' else '<'} {_shown(hi)}"
    else:
        rule = kind
    raise config_error(where, name, value, f"must be {rule}")


def check_choice(where: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Refuse `value` unless it is one of `choices`, of the same type (``1`` is not
    ``true``, ``"true"`` is not ``true``)."""
    if not any(value == c and type(value) is type(c) for c in choices):
        raise config_error(where, name, value,
                           f"must be one of {', '.join(_shown(c) for c in choices)}")


def is_device(value: Any) -> bool:
    """Whether `value` names a device boneaug can run on: auto, cpu, cuda or cuda:N."""
    return isinstance(value, str) and (value in ("auto", "cpu", "cuda")
                                       or value.startswith("cuda:"))


def check_device(where: str, name: str, value: Any) -> None:
    if not is_device(value):
        raise config_error(where, name, value, "must be one of auto, cpu, cuda, cuda:N")


def normalise_amp(value: Any) -> Any:
    """YAML `amp: true` / `amp: false` -> "bf16" / "off"; anything else as it is."""
    if isinstance(value, bool):
        return "bf16" if value else "off"
    return value


def check_amp(where: str, value: Any) -> None:
    """`amp` after `normalise_amp`: one of `AMP_CHOICES`."""
    if normalise_amp(value) not in AMP_CHOICES:
        raise config_error(where, "amp", value,
                           "must be one of auto, bf16, off (or true / false)")


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


def settings_dict(config: Any, added_later: dict[str, Any]) -> dict[str, Any]:
    """A settings dataclass as a dict, less each setting of `added_later` (one added after
    runs existed) that is at its default there: so those runs' records and stage keys stay
    what they were."""
    values = asdict(config)
    for key, default in added_later.items():
        if values[key] == default:
            del values[key]
    return values


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
