"""An experiment spread over torchrun processes gives the one-process results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment
from test_experiment_extend import TINY

GRID = {**TINY, "data.bones": ["femur", "tibia"], "protocol.seeds": 2,
        "protocol.strategies": ["baseline", "copypaste", "gan", "gan-gated"],
        "protocol.sweep": []}

SCRIPT = """
import json, sys
from boneaug.experiment import demo_config_path, load_experiment_config, run_experiment
config = load_experiment_config(demo_config_path(), json.loads(sys.argv[2]))
run_experiment(config, sys.argv[1], say=print, progress=False)
"""


@pytest.mark.slow
def test_two_processes_give_the_results_of_one(tmp_path: Path) -> None:
    config = load_experiment_config(demo_config_path(), GRID)
    run_experiment(config, tmp_path / "one", say=lambda _: None, progress=False)
    script = tmp_path / "grid.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", str(script), str(tmp_path / "two"), json.dumps(GRID)],
        capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    one = pd.read_csv(tmp_path / "one" / "results.csv")
    two = pd.read_csv(tmp_path / "two" / "results.csv")
    pd.testing.assert_frame_equal(one, two)
    for name in ("predictions.csv", "runs.csv"):
        a = pd.read_csv(tmp_path / "one" / "evaluation" / name)
        b = pd.read_csv(tmp_path / "two" / "evaluation" / name)
        pd.testing.assert_frame_equal(a.drop(columns=["train_seconds"], errors="ignore"),
                                      b.drop(columns=["train_seconds"], errors="ignore"))
    # the work was shared: both ranks trained classifiers, each condition once
    mine = [line for line in done.stdout.splitlines()
            if re.search(r"\] classifier \d+/", line)]  # one line per classifier trained
    assert any(line.startswith("[rank 1]") for line in mine)
    assert any(not line.startswith("[rank 1]") for line in mine)
    stages = sorted(p.name for p in (tmp_path / "two" / "stages").glob("cls_*.json"))
    assert stages == sorted(p.name for p in (tmp_path / "one" / "stages").glob("cls_*.json"))
    # a rerun under the grid finds everything done
    again = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", str(script), str(tmp_path / "two"), json.dumps(GRID)],
        capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0
    assert not re.search(r"\] classifier \d+/", again.stdout)  # no classifier trained again
