"""The demo: the experiment `configs/phantom-demo.yaml` on the built-in phantom radiographs.

It runs every stage (phantom -> split -> rarity -> per-bone patches -> per-bone CycleGAN
-> synthesis and transfer -> every strategy's classifiers -> evaluation -> report) with
smaller images, networks and sets than the benchmark (`configs/phantom-full.yaml`), so
that it finishes in minutes on a 2-core CPU, prints the results table and ends with what
it found in plain words, and that it is a demo.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from boneaug.errors import BoneaugError
from boneaug.experiment.config import load_experiment_config
from boneaug.experiment.evidence import HEADLINE_KEYS, verdict
from boneaug.experiment.protocol import ExperimentResult, run_experiment

DEMO_CONFIG = "phantom-demo.yaml"


def demo_config_path() -> Path:
    """configs/phantom-demo.yaml of the source checkout boneaug runs from (or of the
    current folder)."""
    for root in (Path(__file__).resolve().parents[3], Path.cwd()):
        path = root / "configs" / DEMO_CONFIG
        if path.is_file():
            return path
    raise BoneaugError(f"configs/{DEMO_CONFIG} not found beside the boneaug source or in the "
                       "current folder; run the demo from a boneaug checkout")


def run_demo(out_dir: str | Path = "runs/demo", *, say: Callable[[str], None] = print,
             fresh: bool = False, overrides: dict[str, Any] | None = None) -> ExperimentResult:
    """Run (or resume) the demo experiment into `out_dir`, print its results table and,
    last, what it found in plain words."""
    config = load_experiment_config(demo_config_path(), overrides)
    result = run_experiment(config, out_dir, say=say, fresh=fresh)
    say("\n" + result.table)
    say(f"\ndemo done in {result.seconds / 60:.1f} min. Report: {result.report}")
    say(findings(Path(result.run_dir) / "headline.csv"))
    return result


def findings(headline_csv: Path) -> str:
    """The demo's last lines: one plain sentence per (level, bone) of the run's headline,
    then what the demo is and is not."""
    lines = ["", "What this demo found (a strategy 'beats' the baseline when its mean test AUC "
             "is higher with p < 0.05 in a bootstrap over seeds and test items):"]
    try:
        table = pd.read_csv(headline_csv, keep_default_na=False,
                            na_values=["", "nan", "NaN"])
    except (OSError, ValueError, pd.errors.ParserError):
        table = pd.DataFrame()
    for _, row in table.iterrows():
        row = row.copy()
        for key in HEADLINE_KEYS:
            row[key] = "" if pd.isna(row[key]) else str(row[key])
        lines.append(f"- {verdict(row)}")
    if table.empty:
        lines.append("- (no headline was written)")
    lines.append(
        "This is a DEMO, not the benchmark: 2 bones, small phantom films, a small CycleGAN "
        "and classifier, a few seeds, minutes on a CPU. What it shows is that the protocol "
        "runs and can detect an effect; how large the effects are is measured by the "
        "benchmark (configs/phantom-full.yaml, docs/results.md).")
    return "\n".join(lines)
