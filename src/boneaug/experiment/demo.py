"""The demo: the experiment `configs/phantom-demo.yaml` on the built-in phantom radiographs.

It runs every stage (phantom -> split -> rarity -> per-bone patches -> per-bone CycleGAN
-> synthesis and transfer -> every strategy's classifiers -> evaluation -> report) with
smaller images, networks and sets than the benchmark (`configs/phantom-full.yaml`), so
that it finishes in minutes on a 2-core CPU, and prints the results table. It says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from boneaug.errors import BoneaugError
from boneaug.experiment.config import load_experiment_config
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
    """Run (or resume) the demo experiment into `out_dir` and print its results table."""
    config = load_experiment_config(demo_config_path(), overrides)
    result = run_experiment(config, out_dir, say=say, fresh=fresh)
    say("\n" + result.table)
    say(f"\ndemo done in {result.seconds / 60:.1f} min. Report: {result.report}\n"
        "This demo uses smaller images, networks, sets and fewer seeds than the benchmark "
        "(configs/phantom-full.yaml, docs/results.md); its numbers are a smoke test of the "
        "protocol, not the benchmark's result.")
    return result
