"""What the report reads besides the predictions: the run's config and provenance, its
levels, the classifier runs, the quality gate and the shortcut probes. A missing input is
None (its section says "not in this run"); an unreadable one is None with a note why."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from boneaug.errors import BoneaugError
from boneaug.experiment.paths import RunPaths
from boneaug.experiment.report_format import first_line


def bootstrap_settings(paths: RunPaths, n_boot: int | None, seed: int | None) -> tuple[int, int]:
    """The run config's ``protocol.n_boot`` and ``seed`` where not given (from
    ``config.yaml``, else the config recorded in ``run.json``; a folder with neither: 2000
    and 0), so that `boneaug report` reproduces the intervals the experiment printed. A
    config that is there but cannot be read is one line: guessing would change the CIs
    without a word."""
    if n_boot is not None and seed is not None:
        return int(n_boot), int(seed)
    config: dict[str, Any] | None = None
    problem = ""
    path = paths.config
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else None
            problem = "" if config is not None else "not a mapping"
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = first_line(exc)
    if config is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            recorded = json.loads(paths.run_json.read_text(encoding="utf-8"))
            config = recorded.get("config") if isinstance(recorded.get("config"), dict) \
                else None
    if config is None and problem:
        raise BoneaugError(f"{path}: cannot be read ({problem}), and run.json keeps no "
                           "config: the bootstrap settings of the run are unknown; give "
                           "--n-boot and --seed")
    config = config or {}
    protocol = config.get("protocol") if isinstance(config.get("protocol"), dict) else {}
    if n_boot is None:
        n_boot = protocol.get("n_boot") if isinstance(protocol.get("n_boot"), int) else 2000
    if seed is None:
        seed = config.get("seed") if isinstance(config.get("seed"), int) else 0
    return int(n_boot), int(seed)


def run_levels(paths: RunPaths) -> dict[str, str]:
    """The run's levels, first one first, each with the suffix of its evaluation files
    (``evaluation/levels.json``; a run without it has the image level only)."""
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        saved = json.loads(paths.levels.read_text(encoding="utf-8"))
        files = saved.get("files") or {}
        return {str(v): str(files.get(v, "")) for v in saved["levels"]}
    return {"image": ""}


@dataclass
class Inputs:
    """The optional inputs of a run; a None value means the file is absent, `notes` why."""

    config: dict[str, Any] | None
    config_text: str | None
    run_info: dict[str, Any] | None
    runs: pd.DataFrame | None
    gate: dict[str, Any] | None
    notes: dict[str, str]
    probes: list[dict[str, Any]] | None = None   # evaluation/probe.json's results

    @classmethod
    def read(cls, paths: RunPaths) -> Inputs:
        notes: dict[str, str] = {}
        config, config_text = None, None
        path = paths.config
        if path.is_file():
            try:
                config_text = path.read_text(encoding="utf-8")
                loaded = yaml.safe_load(config_text)
                config = loaded if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                notes["config"] = f"{path.name} could not be read ({first_line(exc)})"
        run_info = read_json(paths.run_json, notes, "run")
        gate = read_json(paths.gates, notes, "gate")
        runs = None
        path = paths.runs()
        if path.is_file():
            try:
                runs = pd.read_csv(path)
            except (OSError, UnicodeDecodeError, pd.errors.ParserError,
                    pd.errors.EmptyDataError) as exc:
                notes["runs"] = f"{path.name} could not be read ({first_line(exc)})"
        if config is None and run_info is not None and isinstance(run_info.get("config"), dict):
            # run.json keeps the resolved config too; it stands in when config.yaml is gone.
            config = run_info["config"]
            if config_text is None:
                config_text = yaml.safe_dump(config, sort_keys=False)
                notes["config_source"] = ("config.yaml is not in this run; the config below "
                                          "is the one recorded in run.json")
        probe = read_json(paths.probes, notes, "probe")
        probes = probe.get("results") if isinstance(probe, dict) else None
        return cls(config, config_text, run_info, runs, gate, notes,
                   probes if isinstance(probes, list) else None)


def read_json(path: Path, notes: dict[str, str], key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes[key] = f"{path.name} could not be read ({first_line(exc)})"
        return None
    if not isinstance(data, dict):
        notes[key] = f"{path.name} is not a JSON object"
        return None
    return data
