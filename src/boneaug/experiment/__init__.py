"""boneaug.experiment: the whole protocol from one YAML config, the report, and the demo.

Public face: `load_experiment_config` / `experiment_config` -> `ExperimentConfig`,
`run_experiment(config, out_dir)` -> `ExperimentResult`, `conditions(config)`,
`write_report(run_dir)` (in `boneaug.experiment.report`), `run_demo(out_dir)`.
"""

from boneaug.experiment.config import (
    ExperimentConfig,
    experiment_config,
    load_experiment_config,
)
from boneaug.experiment.demo import demo_config_path, run_demo
from boneaug.experiment.protocol import (
    Condition,
    ExperimentResult,
    conditions,
    run_experiment,
)

__all__ = ["Condition", "ExperimentConfig", "ExperimentResult", "conditions",
           "demo_config_path", "experiment_config", "load_experiment_config", "run_demo",
           "run_experiment"]
