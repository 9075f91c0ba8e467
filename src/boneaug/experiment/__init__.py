"""boneaug.experiment: the protocol (issue 4) and, for now, the demo of the stages built.

Public face: `run_demo`, `DemoConfig`.
"""

from boneaug.experiment.demo import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
